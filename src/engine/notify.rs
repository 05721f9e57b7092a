//! The notify step's plug point: where the engine hands a message, and the secret a user
//! needs, to the communications module.
//!
//! A `reset_password: { mode: temporary }` or `temporary_access_pass` step creates a secret
//! the user must receive; it exists only in the memory of that user's pipeline and goes to
//! the [`Notifier`] of the later `notify` steps, and nowhere else (not the journal, the audit
//! trail, the results or a log line). A secret that cannot reach the user is worse than
//! none, so the gate refuses `--execute` unless the notifier can deliver every secret the
//! playbook creates ([`undeliverable`]). This build has no communications module yet: its
//! notifier, [`RecordOnly`], records each notice's intent and delivers nothing.

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
    /// The user the run is about.
    pub user: &'a PlannedUser,
    /// The template to render.
    pub template: &'a str,
    /// Channels to send over, in the playbook's order of preference.
    pub channels: &'a [Channel],
    /// Who receives it.
    pub to: Recipient,
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
}

/// The communications module as the engine sees it.
pub trait Notifier: Send + Sync {
    /// Whether a notice over `channels` to `to` reaches its recipient over a verified
    /// channel, so that it may carry a secret.
    fn delivers_secrets(&self, channels: &[Channel], to: Recipient) -> bool;

    /// Render and send one notice.
    fn notify<'a>(&'a self, notice: Notice<'a>) -> BoxFuture<'a, Delivery>;
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
