//! The notify step's plug point: where the engine hands a message, and the secret a user
//! needs, to the communications module.
//!
//! A `reset_password: { mode: temporary }` or `temporary_access_pass` step creates a secret
//! the user must receive; it exists only in the memory of that user's pipeline and goes to
//! the [`Notifier`] of the later `notify` steps, and nowhere else (not the journal, the audit
//! trail, the results or a log line). A secret that cannot reach the user is worse than
//! none, so the gate refuses `--execute` unless the notifier can deliver every secret the
//! playbook creates, and every channel the playbook names is configured ([`undeliverable`]).
//! The communications module (`comms::CommsNotifier`) is the notifier of a real run;
//! [`RecordOnly`] records each notice's intent and delivers nothing (benchmarks, tests).

use futures::future::BoxFuture;
use secrecy::SecretString;

use super::plan::PlannedUser;
use crate::playbook::{Channel, Playbook, Recipient, Step};

/// A secret an earlier step of the user's pipeline created for the user.
pub enum UserSecret {
    /// A temporary password (changed at the next sign-in).
    TemporaryPassword(SecretString),
    /// A Temporary Access Pass.
    AccessPass {
        /// The pass.
        pass: SecretString,
        /// How long it is valid, in minutes.
        lifetime_minutes: u32,
        /// Whether one sign-in uses it up.
        usable_once: bool,
    },
}

/// [`UserSecret::kind`] of a temporary password.
const TEMPORARY_PASSWORD: &str = "temporary password";
/// [`UserSecret::kind`] of a Temporary Access Pass.
const ACCESS_PASS: &str = "temporary access pass";

impl UserSecret {
    /// What the secret is, for details and messages (never the secret itself).
    pub fn kind(&self) -> &'static str {
        match self {
            UserSecret::TemporaryPassword(_) => TEMPORARY_PASSWORD,
            UserSecret::AccessPass { .. } => ACCESS_PASS,
        }
    }
}

impl std::fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserSecret({}, redacted)", self.kind())
    }
}

/// One notice of one user's `notify` step.
#[derive(Debug)]
pub struct Notice<'a> {
    /// The run.
    pub run: &'a str,
    /// The user the run is about.
    pub user: &'a PlannedUser,
    /// The step's journal key (`4:notify`): with the run, the user and a channel it names
    /// one delivery, so a resumed run never sends it twice.
    pub step: &'a str,
    /// The template to render.
    pub template: &'a str,
    /// Channels to send over: one message per channel.
    pub channels: &'a [Channel],
    /// Who receives it.
    pub to: Recipient,
    /// Only over channels outside the tenant.
    pub out_of_band: bool,
    /// The steps that succeeded for this user before this one, so the notice says what was
    /// done.
    pub done: &'a [&'a Step],
    /// An earlier attempt of the run began this notice (its journal row had an intent): its
    /// deliveries may be in the delivery journal already.
    pub resumed: bool,
    /// The secrets earlier steps created for the user, in step order (whether they may go to
    /// this recipient over these channels is the notifier's [`Notifier::delivers_secrets`]).
    pub secrets: &'a [UserSecret],
}

/// How a notice went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Sent; the detail names the channel (never the content).
    Delivered(String),
    /// Recorded only: nothing was sent (no communications module).
    Recorded(String),
    /// Sending failed; the detail says why.
    Failed(String),
    /// A person must look: the recipient cannot be reached as the directory stands (no
    /// manager, a mobile number that does not parse) or a message may have been sent before
    /// an interruption over a channel that cannot tell.
    ManualCheck(String),
}

/// The communications module as the engine sees it.
pub trait Notifier: Send + Sync {
    /// Whether a notice over `channels` to `to` reaches its recipient over a verified
    /// channel, so that it may carry a secret.
    fn delivers_secrets(&self, channels: &[Channel], to: Recipient) -> bool;

    /// Render and send one notice.
    fn notify<'a>(&'a self, notice: Notice<'a>) -> BoxFuture<'a, Delivery>;

    /// When no configured sender can carry messages of `channel` (outside the tenant when
    /// `out_of_band`), the configuration key that would provide one (`channels.sms`).
    fn missing(&self, channel: Channel, out_of_band: bool) -> Option<String>;

    /// When the run-level message `message` (`soc_summary`) has nobody to go to over
    /// `channel`, the configuration key that would name them (`audiences.soc.email`).
    fn missing_audience(&self, message: &str, channel: Channel) -> Option<String> {
        let _ = (message, channel);
        None
    }
}

/// The notifier of a build without communications: records what would be sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordOnly;

impl Notifier for RecordOnly {
    fn delivers_secrets(&self, _channels: &[Channel], _to: Recipient) -> bool {
        false
    }

    fn notify<'a>(&'a self, notice: Notice<'a>) -> BoxFuture<'a, Delivery> {
        let channels: Vec<&str> = notice.channels.iter().map(|c| c.as_str()).collect();
        let to = match notice.to {
            Recipient::User => "user",
            Recipient::Manager => "manager",
        };
        let detail = format!(
            "communications not yet available; would send `{}` to the {to} over {}",
            notice.template,
            channels.join(", ")
        );
        Box::pin(std::future::ready(Delivery::Recorded(detail)))
    }

    fn missing(&self, _channel: Channel, _out_of_band: bool) -> Option<String> {
        None
    }
}

/// The kind of secret `step` creates for the user to be told (as [`UserSecret::kind`]
/// names it), if any.
pub fn secret_created_by(step: &Step) -> Option<&'static str> {
    match step {
        Step::ResetPassword {
            mode: crate::playbook::PasswordMode::Temporary,
            ..
        } => Some(TEMPORARY_PASSWORD),
        Step::TemporaryAccessPass { .. } => Some(ACCESS_PASS),
        _ => None,
    }
}

/// Why `playbook`'s secrets would not reach their users through `notifier`, if so: every
/// step that creates one needs a later `notify` step the notifier can deliver secrets over.
/// (Validation already demands such a step, over SMS or Teams or to the manager; this asks
/// whether this build's notifier can actually carry it.)
pub fn undeliverable(playbook: &Playbook, notifier: &dyn Notifier) -> Option<String> {
    if let Some(problem) = unconfigured(playbook, notifier) {
        return Some(problem);
    }
    for (index, spec) in playbook.steps.iter().enumerate() {
        if secret_created_by(&spec.step).is_none() {
            continue;
        }
        let delivered = playbook.steps[index + 1..].iter().any(|later| {
            matches!(&later.step, Step::Notify { channels, to, .. }
                if notifier.delivers_secrets(channels, *to))
        });
        if !delivered {
            let this_build = [Recipient::User, Recipient::Manager].iter().any(|to| {
                notifier.delivers_secrets(&[Channel::Sms, Channel::Teams, Channel::Email], *to)
            });
            return Some(format!(
                "step {} ({}) creates a secret that no later notify step can deliver over a \
                 verified channel{}",
                index + 1,
                spec.step.key(),
                if this_build {
                    ""
                } else {
                    "; this build has no communications module, so it cannot deliver any"
                }
            ));
        }
    }
    None
}

/// The first channel a message of `playbook` needs that `notifier` has no sender for, said
/// with the configuration key that would provide one.
fn unconfigured(playbook: &Playbook, notifier: &dyn Notifier) -> Option<String> {
    let notices = playbook
        .steps
        .iter()
        .enumerate()
        .filter_map(|(index, spec)| {
            let Step::Notify {
                template,
                channels,
                out_of_band,
                ..
            } = &spec.step
            else {
                return None;
            };
            Some((
                format!("step {} (notify `{template}`)", index + 1),
                channels,
                *out_of_band,
            ))
        });
    let comms = &playbook.communications;
    let run_level = [
        ("helpdesk_brief", &comms.helpdesk_brief),
        ("manual_queue", &comms.manual_queue),
        ("soc_summary", &comms.soc_summary),
    ]
    .into_iter()
    .filter_map(|(name, message)| {
        message.as_ref().map(|m| {
            (
                format!("communications.{name} (`{}`)", m.template),
                &m.channels,
                comms.out_of_band,
                Some(name),
            )
        })
    });
    let notices = notices.map(|(what, channels, oob)| (what, channels, oob, None));
    for (what, channels, out_of_band, run_level) in notices.chain(run_level) {
        for channel in channels {
            if let Some(name) = run_level
                && let Some(key) = notifier.missing_audience(name, *channel)
            {
                return Some(format!(
                    "{what} goes over {} to an audience resetctl.yaml does not name: set `{key}`",
                    channel.as_str()
                ));
            }
            if let Some(key) = notifier.missing(*channel, out_of_band) {
                return Some(format!(
                    "{what} sends over {}{}, but no such channel is configured: set `{key}` in \
                     resetctl.yaml",
                    channel.as_str(),
                    if out_of_band { " out of band" } else { "" },
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::load_str;

    /// Delivers secrets over SMS to the user only.
    struct SmsOnly;

    impl Notifier for SmsOnly {
        fn delivers_secrets(&self, channels: &[Channel], to: Recipient) -> bool {
            to == Recipient::User && channels == [Channel::Sms]
        }

        fn notify<'a>(&'a self, _notice: Notice<'a>) -> BoxFuture<'a, Delivery> {
            Box::pin(std::future::ready(Delivery::Delivered("sms".into())))
        }

        fn missing(&self, channel: Channel, _out_of_band: bool) -> Option<String> {
            matches!(channel, Channel::Teams | Channel::Webhook)
                .then(|| format!("channels.{}", channel.as_str()))
        }
    }

    fn playbook(steps: &str) -> Playbook {
        load_str(
            "t.yaml",
            &format!("name: t\ntargets: [all_users: {{}}]\nsteps:\n{steps}"),
        )
        .unwrap()
        .playbook
    }

    #[test]
    fn secrets_need_a_later_notify_the_notifier_can_deliver() {
        let good = playbook(
            "  - temporary_access_pass: { lifetime_minutes: 60 }\n  - notify: { template: tap, channels: [sms] }\n",
        );
        assert_eq!(undeliverable(&good, &SmsOnly), None);
        let refusal = undeliverable(&good, &RecordOnly).unwrap();
        assert!(refusal.contains("no communications module"), "{refusal}");

        let to_manager = playbook(
            "  - reset_password: { mode: temporary }\n  - notify: { template: pw, channels: [email], to: manager }\n",
        );
        let refusal = undeliverable(&to_manager, &SmsOnly).unwrap();
        assert!(refusal.starts_with("step 1 (reset_password)"), "{refusal}");

        let scramble = playbook("  - reset_password: { mode: scramble }\n");
        assert_eq!(undeliverable(&scramble, &RecordOnly), None);
    }

    #[test]
    fn a_channel_without_a_sender_is_named_with_its_configuration_key() {
        let card = playbook(
            "  - reset_password: { mode: scramble }\n  - notify: { template: n, channels: [sms, teams] }\n",
        );
        let refusal = undeliverable(&card, &SmsOnly).unwrap();
        assert!(
            refusal.contains("step 2 (notify `n`) sends over teams")
                && refusal.contains("`channels.teams`"),
            "{refusal}"
        );
        let summary = load_str(
            "t.yaml",
            "name: t\ntargets: [all_users: {}]\nsteps:\n  - revoke_sessions\ncommunications:\n  soc_summary: { template: s, channels: [webhook] }\n",
        )
        .unwrap()
        .playbook;
        let refusal = undeliverable(&summary, &SmsOnly).unwrap();
        assert!(refusal.contains("communications.soc_summary"), "{refusal}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secret = UserSecret::AccessPass {
            pass: SecretString::from("Tap-123-secret"),
            lifetime_minutes: 60,
            usable_once: true,
        };
        let shown = format!("{secret:?}");
        assert!(!shown.contains("Tap-123-secret"), "{shown}");
        assert!(shown.contains("temporary access pass"));
    }
}
