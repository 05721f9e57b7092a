//! [`CommsNotifier`]: the communications module as the engine sees it. For each notice it
//! looks the recipient up in the directory, renders the template in the recipient's language
//! for each channel, picks a configured sender the notice may use (out of band, allowed to
//! carry a secret), journals the delivery, sends it, and records what happened in the
//! delivery journal and the audit trail (masked recipient, provider id; never the body).
//!
//! The rules, in one place:
//!
//! - one message per channel the step names; a channel the recipient has no address for
//!   (no mobile number) is skipped and said; a number that does not parse is a manual check;
//! - a secret goes only over SMS (to the user or the manager) or mail to the manager, and only
//!   through a sender whose traits allow secrets; the other channels of the same notice are
//!   rendered without it;
//! - `out_of_band` refuses senders inside the tenant (Graph mail, Teams);
//! - on resume, a delivery journaled as sent is not sent again; one whose outcome is unknown
//!   is sent again only over an idempotent sender (ACS, with the same repeatability id), and
//!   otherwise reported as "may have been sent" for a person to check.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use jiff::Timestamp;

use super::channel::{Channel as Sender, ChannelErrorKind};
use super::context::{
    ActionsTaken, Incident, NoticeContext, Organisation, RunContext, SecretContext,
};
use super::delivery::{Begun, DeliveryJournal, DeliveryKey, DeliveryRecord, DeliveryState};
use super::message::{Address, Content, Outbound};
use super::recipient::Contact;
use super::template::{Catalog, Form, SecretKind};
use crate::audit::{self, AuditHandle, Details, Event};
use crate::config::Audience;
use crate::directory::Directory;
use crate::engine::notify::{Delivery, Notice, Notifier, UserSecret};
use crate::engine::trail;
use crate::playbook::{Channel, PasswordMode, Recipient, Step};

/// Renders a template for one channel (the template catalogue behind a seam, so the
/// notifier is tested with a fake and the catalogue without a network).
pub trait Render: Send + Sync {
    /// Render `template` for `channel` in `language` (with fallbacks) with `context`.
    fn notice(
        &self,
        template: &str,
        channel: Channel,
        language: Option<&str>,
        context: &NoticeContext,
    ) -> Result<Content, String>;

    /// Render a run-level message for `channel`; `key` identifies it (the webhook body
    /// carries it).
    fn run_level(
        &self,
        template: &str,
        channel: Channel,
        context: &RunContext,
        key: uuid::Uuid,
    ) -> Result<Content, String>;

    /// The secret `template` delivers, when the renderer knows: a user given both a
    /// temporary password and a Temporary Access Pass gets each in the notice made for it.
    fn secret_kind(&self, _template: &str) -> Option<SecretKind> {
        None
    }
}

/// The template catalogue renders for the notifier.
impl Render for Catalog {
    fn notice(
        &self,
        template: &str,
        channel: Channel,
        language: Option<&str>,
        context: &NoticeContext,
    ) -> Result<Content, String> {
        if channel == Channel::Webhook {
            return Err("a per-user notice is never posted to the webhook".into());
        }
        self.render(template, Form::for_channel(channel), language, context)
            .map_err(|e| e.to_string())
    }

    fn run_level(
        &self,
        template: &str,
        channel: Channel,
        context: &RunContext,
        key: uuid::Uuid,
    ) -> Result<Content, String> {
        match channel {
            Channel::Webhook => self.render_webhook(template, None, context, key),
            other => self.render(template, Form::for_channel(other), None, context),
        }
        .map_err(|e| e.to_string())
    }

    fn secret_kind(&self, template: &str) -> Option<SecretKind> {
        self.info(template)?.meta.as_ref().ok()?.secret
    }
}

/// The audience (`audiences.<name>` in resetctl.yaml) of a run-level message.
pub fn audience_of(message: &str) -> &'static str {
    match message {
        "helpdesk_brief" => "helpdesk",
        "manual_queue" => "manual_queue",
        _ => "soc",
    }
}

/// What the notifier needs to know about the run it serves.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The organisation as messages name it.
    pub org: Organisation,
    /// The incident (playbook, run, ticket).
    pub incident: Incident,
    /// Region to read national mobile numbers in when a user has no `usageLocation`.
    pub default_region: Option<String>,
    /// Who the audit trail names as the actor.
    pub actor: String,
}

/// Messages counted for the run's SOC summary (per-sender figures are the paced senders' own stats).
#[derive(Debug, Default)]
pub struct CommsStats {
    /// Accepted by the provider.
    pub sent: AtomicU64,
    /// Certainly not sent.
    pub failed: AtomicU64,
}

/// The notifier of a real run.
pub struct CommsNotifier {
    directory: Arc<dyn Directory>,
    senders: Vec<Arc<dyn Sender>>,
    render: Arc<dyn Render>,
    journal: Arc<dyn DeliveryJournal>,
    audit: Option<AuditHandle>,
    info: RunInfo,
    /// Who receives run-level messages, by audience name.
    audiences: std::collections::BTreeMap<String, Audience>,
    stats: Arc<CommsStats>,
    /// Recipients already looked up (a user's notices come one after another).
    contacts: Mutex<HashMap<(String, Recipient), Option<Contact>>>,
}

impl std::fmt::Debug for CommsNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let senders: Vec<&str> = self.senders.iter().map(|s| s.name()).collect();
        f.debug_struct("CommsNotifier")
            .field("senders", &senders)
            .finish_non_exhaustive()
    }
}

/// One message to deliver: which delivery, through which sender, to whom.
struct Job<'a> {
    key: DeliveryKey,
    sender: &'a Arc<dyn Sender>,
    to: &'a Address,
    /// The content holds a secret.
    carries: bool,
    /// Look for an earlier attempt's delivery first.
    look_back: bool,
    facts: AuditFacts<'a>,
}

/// What the audit record of a delivery names besides the delivery itself.
struct AuditFacts<'a> {
    /// The record's subject: the user's UPN, or `run`.
    subject: &'a str,
    /// The detail key of `DeliveryKey::step`: `step` (a notify step) or `message`.
    step_name: &'a str,
    template: &'a str,
}

/// How a delivery ended, to journal, count and audit.
struct Ended<'a> {
    key: &'a DeliveryKey,
    sender: &'static str,
    to: &'a Address,
    state: DeliveryState,
    provider_id: Option<&'a str>,
    detail: &'a str,
    carries_secret: bool,
}

/// A message whose intent could not be journaled: it was not sent.
#[derive(Debug)]
struct Unjournaled(String);

/// How one channel of a notice went.
#[derive(Debug)]
enum Leg {
    Sent(String),
    Earlier(String),
    Skipped(String),
    Manual(String),
    Failed(String),
}

impl Leg {
    /// The leg's secret-free line.
    fn detail(&self) -> &str {
        match self {
            Leg::Sent(d) | Leg::Earlier(d) | Leg::Skipped(d) | Leg::Manual(d) | Leg::Failed(d) => d,
        }
    }

    fn into_detail(self) -> String {
        match self {
            Leg::Sent(d) | Leg::Earlier(d) | Leg::Skipped(d) | Leg::Manual(d) | Leg::Failed(d) => d,
        }
    }
}

impl CommsNotifier {
    /// A notifier sending through `senders` (in order of preference per channel).
    pub fn new(
        directory: Arc<dyn Directory>,
        senders: Vec<Arc<dyn Sender>>,
        render: Arc<dyn Render>,
        journal: Arc<dyn DeliveryJournal>,
        audit: Option<AuditHandle>,
        info: RunInfo,
    ) -> CommsNotifier {
        CommsNotifier {
            directory,
            senders,
            render,
            journal,
            audit,
            info,
            audiences: std::collections::BTreeMap::new(),
            stats: Arc::new(CommsStats::default()),
            contacts: Mutex::new(HashMap::new()),
        }
    }

    /// Who receives run-level messages (`audiences:`).
    pub fn with_audiences(
        mut self,
        audiences: std::collections::BTreeMap<String, Audience>,
    ) -> Self {
        self.audiences = audiences;
        self
    }

    /// Send the run-level message `name` (`helpdesk_brief`, `manual_queue`, `soc_summary`)
    /// rendered from `template` over `channels` to its audience: one message per address
    /// (a mail address may be a distribution group, which Exchange expands). Journaled like
    /// a notice under `@<name>:<state>`, so a resumed run does not send it twice. Returns one
    /// secret-free line per delivery.
    pub async fn announce(
        &self,
        name: &str,
        template: &str,
        channels: &[Channel],
        out_of_band: bool,
        context: &RunContext,
    ) -> Vec<String> {
        let audience_name = audience_of(name);
        let Some(audience) = self.audiences.get(audience_name) else {
            return vec![format!(
                "{name}: not sent: no `audiences.{audience_name}` in resetctl.yaml"
            )];
        };
        let mut lines = Vec::new();
        for channel in channels {
            let addresses: Vec<Address> = match channel {
                Channel::Email => audience.email.iter().cloned().map(Address::Email).collect(),
                Channel::Sms => audience.sms.iter().cloned().map(Address::Phone).collect(),
                Channel::Teams if audience.teams => vec![Address::Teams { mention: None }],
                Channel::Webhook if audience.webhook => vec![Address::Webhook],
                _ => Vec::new(),
            };
            if addresses.is_empty() {
                lines.push(format!(
                    "{name}: {}: no address in audiences.{audience_name}",
                    channel.as_str()
                ));
                continue;
            }
            let Some(sender) = self.sender(*channel, out_of_band, false) else {
                lines.push(format!(
                    "{name}: {}: no configured sender",
                    channel.as_str()
                ));
                continue;
            };
            for (slot, to) in addresses.into_iter().enumerate() {
                let key = DeliveryKey {
                    run: context.incident.run_id.clone(),
                    user_id: String::new(),
                    step: format!("@{name}:{}", context.state),
                    channel: format!("{}#{slot}", channel.as_str()),
                };
                let line = self
                    .announce_one(key, sender, &to, template, *channel, context)
                    .await
                    .unwrap_or_else(|why| format!("delivery journal: {why}"));
                lines.push(format!("{name}: {line}"));
            }
        }
        lines
    }

    async fn announce_one(
        &self,
        key: DeliveryKey,
        sender: &Arc<dyn Sender>,
        to: &Address,
        template: &str,
        channel: Channel,
        context: &RunContext,
    ) -> Result<String, String> {
        let job = Job {
            key,
            sender,
            to,
            carries: false,
            look_back: true,
            facts: AuditFacts {
                subject: "run",
                step_name: "message",
                template,
            },
        };
        let leg = self
            .send_one(job, |message_key| {
                self.render
                    .run_level(template, channel, context, message_key)
            })
            .await?;
        // A run-level line says how it went (a notice's detail sits beside its outcome).
        Ok(match leg {
            Leg::Sent(detail) => format!("{detail} sent"),
            other => other.into_detail(),
        })
    }

    /// The counters, shared (the summary reads them while the run goes on).
    pub fn stats(&self) -> Arc<CommsStats> {
        Arc::clone(&self.stats)
    }

    /// What the notifier knows of the run (organisation, incident, actor).
    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    /// The senders, for capacity estimates.
    pub fn senders(&self) -> &[Arc<dyn Sender>] {
        &self.senders
    }

    /// The first sender of `channel` a notice may use.
    fn sender(
        &self,
        channel: Channel,
        out_of_band: bool,
        secret: bool,
    ) -> Option<&Arc<dyn Sender>> {
        self.senders.iter().find(|s| {
            let traits = s.traits();
            s.kind() == channel
                && !(out_of_band && traits.in_tenant)
                && (!secret || traits.carries_secrets)
        })
    }

    /// Whether a secret may go to `to` over `channel` at all: SMS to anyone verified by the
    /// directory, mail only to the manager (the user's own mailbox may be the attacker's).
    fn secret_allowed(channel: Channel, to: Recipient) -> bool {
        match channel {
            Channel::Sms => true,
            Channel::Email => to == Recipient::Manager,
            Channel::Teams | Channel::Webhook => false,
        }
    }

    async fn contact(&self, user_id: &str, to: Recipient) -> Result<Option<Contact>, String> {
        let cache_key = (user_id.to_owned(), to);
        if let Some(found) = self
            .contacts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cache_key)
        {
            return Ok(found.clone());
        }
        let region = self.info.default_region.as_deref();
        let contact = match to {
            Recipient::User => self
                .directory
                .get_user(user_id)
                .await
                .map_err(|e| format!("looking the user up failed: {e}"))?
                .map(|u| Contact::of_user(&u, region)),
            Recipient::Manager => {
                // The manager's number is read in the user's region when the manager is a
                // contact without one of their own.
                self.directory
                    .get_manager(user_id)
                    .await
                    .map_err(|e| format!("looking the manager up failed: {e}"))?
                    .map(|m| Contact::of_manager(&m, region))
            }
        };
        let mut cache = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(cache_key, contact.clone());
        Ok(contact)
    }

    /// The secret `notice` delivers: the newest of the kind its template names, else the
    /// newest the user was given.
    fn secret_for<'n>(&self, notice: &'n Notice<'_>) -> Option<&'n UserSecret> {
        match self.render.secret_kind(notice.template) {
            Some(kind) => notice.secrets.iter().rev().find(|s| is_kind(s, kind)),
            None => notice.secrets.last(),
        }
    }

    /// Send one channel of a notice.
    #[allow(clippy::too_many_arguments)]
    async fn leg(
        &self,
        notice: &Notice<'_>,
        channel: Channel,
        contact: &Contact,
        user: &Contact,
        actions: &ActionsTaken,
    ) -> Result<Leg, String> {
        let carries = !notice.secrets.is_empty() && Self::secret_allowed(channel, notice.to);
        let Some(sender) = self.sender(channel, notice.out_of_band, carries) else {
            return Ok(Leg::Failed(format!(
                "{}: no configured sender may carry this notice{}",
                channel.as_str(),
                if notice.out_of_band {
                    " out of band"
                } else {
                    ""
                }
            )));
        };
        let to = match channel {
            Channel::Email => match &contact.mail {
                Some(mail) => Address::Email(mail.clone()),
                None => {
                    return Ok(Leg::Skipped(format!(
                        "{}: no mail address",
                        channel.as_str()
                    )));
                }
            },
            Channel::Sms => match &contact.mobile {
                Some(Ok(number)) => Address::Phone(number.clone()),
                Some(Err(why)) => return Ok(Leg::Manual(format!("sms: {why}"))),
                None => return Ok(Leg::Skipped("sms: no mobile number".into())),
            },
            Channel::Teams => Address::Teams {
                mention: Some((
                    contact.person.upn.clone(),
                    contact.person.display_name.clone(),
                )),
            },
            Channel::Webhook => Address::Webhook,
        };
        let key = DeliveryKey {
            run: notice.run.to_owned(),
            user_id: notice.user.id.clone(),
            step: notice.step.to_owned(),
            channel: channel.as_str().to_owned(),
        };
        let context = NoticeContext {
            org: self.info.org.clone(),
            recipient: contact.person.clone(),
            recipient_role: match notice.to {
                Recipient::User => "user",
                Recipient::Manager => "manager",
            },
            user: user.person.clone(),
            incident: self.info.incident.clone(),
            actions: actions.clone(),
            secret: if carries {
                self.secret_for(notice).map(secret_context)
            } else {
                None
            },
        };
        let job = Job {
            key,
            sender,
            to: &to,
            carries,
            // Only a notice an earlier attempt began can have deliveries journaled already.
            look_back: notice.resumed,
            facts: AuditFacts {
                subject: &notice.user.upn,
                step_name: "step",
                template: notice.template,
            },
        };
        self.send_one(job, |_| {
            self.render.notice(
                notice.template,
                channel,
                contact.language.as_deref(),
                &context,
            )
        })
        .await
    }

    /// Deliver one message exactly once across attempts: look for an earlier attempt's
    /// delivery (sent: done; maybe sent over a channel without an idempotency key: a person
    /// checks; certainly not sent, or idempotent: again under the same key), render it, send
    /// it with its intent journaled at the last moment, and journal, count and audit how it
    /// ended.
    async fn send_one(
        &self,
        job: Job<'_>,
        render: impl FnOnce(uuid::Uuid) -> Result<Content, String>,
    ) -> Result<Leg, String> {
        let Job {
            key,
            sender,
            to,
            carries,
            look_back,
            facts,
        } = job;
        let earlier = if look_back {
            self.journal.find(&key).await.map_err(|e| e.to_string())?
        } else {
            None
        };
        let (message_key, first_sent, journaled) = match earlier {
            None => (uuid::Uuid::new_v4(), Timestamp::now(), false),
            Some(earlier) => match earlier.state {
                Some(DeliveryState::Sent) => {
                    return Ok(Leg::Earlier(format!(
                        "{} to {} sent in an earlier attempt{}",
                        earlier.sender,
                        earlier.recipient,
                        earlier
                            .provider_id
                            .map(|id| format!(" ({id})"))
                            .unwrap_or_default()
                    )));
                }
                // Certainly not sent: send now, under the same key.
                Some(DeliveryState::Failed) => (earlier.message_key, earlier.intent_at, true),
                None | Some(DeliveryState::Unknown) => {
                    let idempotent = self
                        .senders
                        .iter()
                        .find(|s| s.name() == earlier.sender)
                        .is_some_and(|s| s.traits().idempotent);
                    if !idempotent {
                        return Ok(Leg::Manual(format!(
                            "{} to {} may have been sent before the interruption: {} takes no \
                             idempotency key, so it is not sent again; check with the recipient",
                            earlier.sender, earlier.recipient, earlier.sender
                        )));
                    }
                    // The provider recognises the same key and sends it at most once.
                    (earlier.message_key, earlier.intent_at, true)
                }
            },
        };
        let content = match render(message_key) {
            Ok(content) => content,
            // Nothing was journaled or sent: a resume renders it again.
            Err(why) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                return Ok(Leg::Failed(format!(
                    "{}: template `{}`: {why}",
                    key.channel, facts.template
                )));
            }
        };
        let outbound = Outbound {
            key: message_key,
            first_sent,
            to: to.clone(),
            content,
            carries_secret: carries,
        };
        let record = DeliveryRecord {
            key: key.clone(),
            message_key,
            sender: sender.name().to_owned(),
            recipient: to.masked(),
            intent_at: first_sent,
            state: None,
            provider_id: None,
            detail: None,
        };
        let (name, masked) = (sender.name(), to.masked());
        let (state, provider_id, leg) = match self
            .send_journaled(sender, &outbound, &record, journaled)
            .await
        {
            Err(Unjournaled(why)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                return Ok(Leg::Failed(format!("{name} to {masked}: not sent: {why}")));
            }
            Ok(Ok(receipt)) => {
                let id = receipt.provider_id;
                let shown = id.as_ref().map(|id| format!(" ({id})")).unwrap_or_default();
                let leg = Leg::Sent(format!("{name} to {masked}{shown}"));
                (DeliveryState::Sent, id, leg)
            }
            Ok(Err(err)) if err.kind == ChannelErrorKind::OutcomeUnknown => {
                let leg = Leg::Manual(format!("{name} to {masked} may have been sent: {err}"));
                (DeliveryState::Unknown, None, leg)
            }
            Ok(Err(err)) => {
                let leg = Leg::Failed(format!("{name} to {masked}: {err}"));
                (DeliveryState::Failed, None, leg)
            }
        };
        let ended = Ended {
            key: &key,
            sender: name,
            to,
            state,
            provider_id: provider_id.as_deref(),
            detail: leg.detail(),
            carries_secret: carries,
        };
        self.finish(ended, &facts).await?;
        Ok(leg)
    }

    /// Send `outbound`, journaling `record`'s intent at the last moment before it leaves
    /// (after the sender's pace), unless `journaled` already. `Err` when the intent could not
    /// be journaled, so nothing was sent and there is no row to complete.
    async fn send_journaled(
        &self,
        sender: &Arc<dyn Sender>,
        outbound: &Outbound,
        record: &DeliveryRecord,
        journaled: bool,
    ) -> Result<Result<super::Receipt, super::ChannelError>, Unjournaled> {
        let began = std::sync::atomic::AtomicBool::new(journaled);
        let leaving: BoxFuture<'_, Result<(), String>> = if journaled {
            Box::pin(std::future::ready(Ok(())))
        } else {
            Box::pin(async {
                match self.journal.begin(record).await {
                    Ok(Begun::New) => {
                        began.store(true, Ordering::SeqCst);
                        Ok(())
                    }
                    Ok(Begun::Existing(_)) => Err("another attempt began this delivery".to_owned()),
                    Err(e) => Err(format!("delivery journal: {e}")),
                }
            })
        };
        let result = sender.send_when_leaving(outbound, leaving).await;
        if began.load(Ordering::SeqCst) {
            Ok(result)
        } else {
            Err(Unjournaled(match result {
                Err(err) => err.to_string(),
                Ok(_) => "sent without a journal row".to_owned(),
            }))
        }
    }

    /// Journal and audit how a delivery ended, and count it.
    async fn finish(&self, ended: Ended<'_>, facts: &AuditFacts<'_>) -> Result<(), String> {
        let Ended {
            key,
            sender,
            to,
            state,
            provider_id,
            detail,
            carries_secret,
        } = ended;
        self.journal
            .finish(key, state, provider_id, Some(detail))
            .await
            .map_err(|e| e.to_string())?;
        match state {
            DeliveryState::Sent => self.stats.sent.fetch_add(1, Ordering::Relaxed),
            DeliveryState::Failed => self.stats.failed.fetch_add(1, Ordering::Relaxed),
            DeliveryState::Unknown => 0,
        };
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let (action, outcome) = match state {
            DeliveryState::Sent => ("message.sent", audit::Outcome::Success),
            DeliveryState::Failed => ("message.failed", audit::Outcome::Failure),
            DeliveryState::Unknown => ("message.unknown", audit::Outcome::Failure),
        };
        let build = || -> Result<Event, audit::AuditError> {
            let mut details = Details::new()
                .with("run", key.run.as_str())?
                .with(facts.step_name, key.step.as_str())?
                .with("channel", key.channel.as_str())?
                .with("sender", sender)?
                .with("to", to.masked().as_str())?
                .with("template", facts.template)?
                .with("confidential", carries_secret)?;
            if let Some(id) = provider_id {
                details = details.with("provider_id", trail::escaped(id).as_ref())?;
            }
            if state != DeliveryState::Sent {
                details = details.with("detail", detail)?;
            }
            Ok(Event::new(
                self.info.actor.as_str(),
                action,
                trail::escaped(facts.subject),
                outcome,
            )?
            .with_details(details))
        };
        let event = build().map_err(|e| e.to_string())?;
        audit.record(event).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn deliver(&self, notice: Notice<'_>) -> Delivery {
        let user = match self.contact(&notice.user.id, Recipient::User).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return Delivery::Failed("the user is no longer in the directory".into());
            }
            Err(why) => return Delivery::Failed(why),
        };
        let recipient = match notice.to {
            Recipient::User => user.clone(),
            Recipient::Manager => match self.contact(&notice.user.id, Recipient::Manager).await {
                Ok(Some(manager)) => manager,
                Ok(None) => {
                    return Delivery::ManualCheck(
                        "the user has no manager in the directory; tell the user's line \
                         manager by hand"
                            .into(),
                    );
                }
                Err(why) => return Delivery::Failed(why),
            },
        };
        let actions = actions_taken(notice.done, !notice.secrets.is_empty());
        let mut legs = Vec::with_capacity(notice.channels.len());
        for channel in notice.channels {
            match self
                .leg(&notice, *channel, &recipient, &user, &actions)
                .await
            {
                Ok(leg) => legs.push(leg),
                Err(why) => legs.push(Leg::Failed(format!(
                    "{}: delivery journal: {why}",
                    channel.as_str()
                ))),
            }
        }
        summarise(legs)
    }
}

/// One delivery's outcome from its channels' legs: failed if any failed, a manual check if
/// any needs one, delivered if at least one went out (now or earlier), else a manual check
/// (nobody could be reached).
fn summarise(legs: Vec<Leg>) -> Delivery {
    let failed = legs.iter().any(|l| matches!(l, Leg::Failed(_)));
    let manual = legs.iter().any(|l| matches!(l, Leg::Manual(_)));
    let reached = legs
        .iter()
        .any(|l| matches!(l, Leg::Sent(_) | Leg::Earlier(_)));
    let detail = legs
        .into_iter()
        .map(|l| match l {
            Leg::Sent(d) | Leg::Earlier(d) | Leg::Skipped(d) | Leg::Manual(d) | Leg::Failed(d) => d,
        })
        .collect::<Vec<_>>()
        .join("; ");
    if failed {
        Delivery::Failed(detail)
    } else if manual {
        Delivery::ManualCheck(detail)
    } else if reached {
        Delivery::Delivered(detail)
    } else {
        Delivery::ManualCheck(format!("nobody could be reached: {detail}"))
    }
}

/// What the notice can say was done, from the steps that succeeded before it.
fn actions_taken(done: &[&Step], has_secret: bool) -> ActionsTaken {
    let mut actions = ActionsTaken::default();
    for step in done {
        match step {
            Step::ResetPassword {
                mode, force_change, ..
            } => {
                if *mode != PasswordMode::Keep {
                    actions.password_reset = true;
                }
                actions.must_change_password |= *force_change;
            }
            Step::RevokeSessions => actions.sessions_revoked = true,
            Step::RequireMfaReregistration { .. } => actions.mfa_reregistration = true,
            Step::ConfirmCompromised => actions.confirmed_compromised = true,
            Step::TemporaryAccessPass { .. } => actions.access_pass = has_secret,
            Step::AddToGroup { .. } | Step::Notify { .. } => {}
        }
    }
    actions
}

/// Whether `secret` is of `kind`.
fn is_kind(secret: &UserSecret, kind: SecretKind) -> bool {
    matches!(
        (secret, kind),
        (
            UserSecret::TemporaryPassword(_),
            SecretKind::TemporaryPassword
        ) | (
            UserSecret::AccessPass { .. },
            SecretKind::TemporaryAccessPass
        )
    )
}

/// A secret as the template sees it.
fn secret_context(secret: &UserSecret) -> SecretContext {
    match secret {
        UserSecret::TemporaryPassword(value) => SecretContext {
            kind: "temporary_password",
            value: value.clone(),
            lifetime_minutes: None,
            usable_once: None,
        },
        UserSecret::AccessPass {
            pass,
            lifetime_minutes,
            usable_once,
        } => SecretContext {
            kind: "temporary_access_pass",
            value: pass.clone(),
            lifetime_minutes: Some(*lifetime_minutes),
            usable_once: Some(*usable_once),
        },
    }
}

impl Notifier for CommsNotifier {
    fn delivers_secrets(&self, channels: &[Channel], to: Recipient) -> bool {
        channels
            .iter()
            .any(|c| Self::secret_allowed(*c, to) && self.sender(*c, false, true).is_some())
    }

    fn notify<'a>(&'a self, notice: Notice<'a>) -> BoxFuture<'a, Delivery> {
        Box::pin(self.deliver(notice))
    }

    fn missing_audience(&self, message: &str, channel: Channel) -> Option<String> {
        let name = audience_of(message);
        let audience = self.audiences.get(name);
        let has = audience.is_some_and(|a| match channel {
            Channel::Email => !a.email.is_empty(),
            Channel::Sms => !a.sms.is_empty(),
            Channel::Teams => a.teams,
            Channel::Webhook => a.webhook,
        });
        (!has).then(|| format!("audiences.{name}.{}", channel.as_str()))
    }

    fn missing(&self, channel: Channel, out_of_band: bool) -> Option<String> {
        if self.sender(channel, out_of_band, false).is_some() {
            return None;
        }
        Some(match (channel, out_of_band) {
            (Channel::Email, true) => "channels.email.smtp".into(),
            (Channel::Teams, true) => {
                "channels.sms or channels.email.smtp (Teams is inside the tenant and never out \
                 of band; use another channel)"
                    .into()
            }
            (channel, _) => format!("channels.{}", channel.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use secrecy::{ExposeSecret, SecretString};

    use super::*;
    use crate::comms::channel::{ChannelError, ChannelTraits, Limits, Receipt};
    use crate::comms::delivery::MemoryJournal;
    use crate::directory::memory::MemoryDirectory;
    use crate::engine::plan::PlannedUser;
    use crate::targeting::Bucket;

    /// A sender that keeps what it is given, answering as scripted.
    struct Fake {
        name: &'static str,
        kind: Channel,
        traits: ChannelTraits,
        sent: Mutex<Vec<Outbound>>,
        fail_with: Mutex<Option<ChannelErrorKind>>,
    }

    impl Fake {
        fn new(name: &'static str, kind: Channel, in_tenant: bool, idempotent: bool) -> Arc<Fake> {
            Arc::new(Fake {
                name,
                kind,
                traits: ChannelTraits {
                    in_tenant,
                    idempotent,
                    carries_secrets: matches!(kind, Channel::Sms | Channel::Email),
                },
                sent: Mutex::new(Vec::new()),
                fail_with: Mutex::new(None),
            })
        }

        fn sent(&self) -> Vec<Outbound> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl Sender for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn kind(&self) -> Channel {
            self.kind
        }
        fn traits(&self) -> ChannelTraits {
            self.traits
        }
        fn limits(&self) -> Limits {
            Limits {
                per_minute: 60.0,
                concurrency: 4,
                recipients_per_request: 1,
            }
        }
        fn send<'a>(
            &'a self,
            message: &'a Outbound,
        ) -> BoxFuture<'a, Result<Receipt, crate::comms::ChannelError>> {
            if let Some(kind) = self.fail_with.lock().unwrap().take() {
                return Box::pin(std::future::ready(Err(ChannelError::new(kind, "scripted"))));
            }
            self.sent.lock().unwrap().push(message.clone());
            let id = format!("{}-{}", self.name, self.sent.lock().unwrap().len());
            Box::pin(std::future::ready(Ok(Receipt {
                provider_id: Some(id),
            })))
        }
    }

    /// Renders `<template>|<recipient upn>|<secret or ->` as every form.
    struct Plain;

    impl Render for Plain {
        fn notice(
            &self,
            template: &str,
            channel: Channel,
            _language: Option<&str>,
            context: &NoticeContext,
        ) -> Result<Content, String> {
            if template == "broken" {
                return Err("variable `nope` not found".into());
            }
            let secret = context
                .secret
                .as_ref()
                .map_or("-".to_owned(), |s| s.value.expose_secret().to_owned());
            let text = format!("{template}|{}|{secret}", context.recipient.upn);
            Ok(match channel {
                Channel::Sms => Content::Sms { text },
                Channel::Email => Content::Email {
                    subject: template.into(),
                    html: text.clone(),
                    text,
                },
                Channel::Teams => Content::Card {
                    card: serde_json::json!({"type": "AdaptiveCard", "version": "1.5"}),
                    summary: text,
                },
                Channel::Webhook => Content::Json(serde_json::json!({ "text": text })),
            })
        }

        /// `tpl` delivers a temporary password, as `temporary-password-sms` does.
        fn secret_kind(&self, template: &str) -> Option<SecretKind> {
            (template == "tpl").then_some(SecretKind::TemporaryPassword)
        }

        fn run_level(
            &self,
            template: &str,
            _channel: Channel,
            context: &RunContext,
            _key: uuid::Uuid,
        ) -> Result<Content, String> {
            Ok(Content::Sms {
                text: format!("{template}|{}", context.state),
            })
        }
    }

    struct Setup {
        notifier: CommsNotifier,
        sms: Arc<Fake>,
        mail: Arc<Fake>,
        relay: Arc<Fake>,
        journal: Arc<MemoryJournal>,
    }

    fn setup(directory: MemoryDirectory, sms_idempotent: bool) -> Setup {
        let sms = Fake::new("sms/test", Channel::Sms, false, sms_idempotent);
        let mail = Fake::new("email/graph", Channel::Email, true, false);
        let relay = Fake::new("email/smtp", Channel::Email, false, false);
        let journal = Arc::new(MemoryJournal::default());
        let senders: Vec<Arc<dyn Sender>> = vec![sms.clone(), mail.clone(), relay.clone()];
        let notifier = CommsNotifier::new(
            Arc::new(directory),
            senders,
            Arc::new(Plain),
            journal.clone(),
            None,
            RunInfo {
                org: Organisation {
                    name: "Contoso".into(),
                    helpdesk_phone: "+1 425 555 0100".into(),
                    helpdesk_url: "https://help.contoso.com".into(),
                    sspr_url: "https://aka.ms/sspr".into(),
                    verify_url: "https://intranet.contoso.com/notices".into(),
                },
                incident: Incident {
                    playbook: "t".into(),
                    description: None,
                    run_id: "run-1".into(),
                    reference: None,
                    started_at: "2026-11-26T00:00:00Z".into(),
                },
                default_region: Some("US".into()),
                actor: "op@host".into(),
            },
        );
        Setup {
            notifier,
            sms,
            mail,
            relay,
            journal,
        }
    }

    fn directory() -> MemoryDirectory {
        MemoryDirectory::new()
            .with_user("alice@contoso.com")
            .with_contact(
                "alice@contoso.com",
                Some("alice@contoso.com"),
                Some("(425) 555-0101"),
                Some("en-US"),
            )
            .with_user("bob@contoso.com")
            .with_contact(
                "bob@contoso.com",
                Some("bob@contoso.com"),
                Some("n/a"),
                None,
            )
            .with_user("carol@contoso.com")
            .with_contact(
                "carol@contoso.com",
                Some("carol@contoso.com"),
                Some("+44 7911 123456"),
                None,
            )
            .with_manager("alice@contoso.com", "carol@contoso.com")
    }

    fn planned(upn: &str) -> PlannedUser {
        PlannedUser {
            id: format!("id-{upn}"),
            upn: upn.into(),
            display_name: upn.into(),
            bucket: Bucket::Automated,
            reason: Cow::Borrowed(""),
            risk_level: None,
            roles: vec![],
            steps: Arc::from(Vec::<String>::new()),
        }
    }

    fn notice<'a>(
        user: &'a PlannedUser,
        channels: &'a [Channel],
        to: Recipient,
        secrets: &'a [UserSecret],
    ) -> Notice<'a> {
        Notice {
            run: "run-1",
            user,
            step: "2:notify",
            template: "tpl",
            channels,
            to,
            out_of_band: false,
            done: &[],
            resumed: false,
            secrets,
        }
    }

    fn password() -> Vec<UserSecret> {
        vec![UserSecret::TemporaryPassword(SecretString::from(
            "Tmp-Secret-123",
        ))]
    }

    #[tokio::test]
    async fn a_secret_goes_by_sms_only_and_the_mail_of_the_same_notice_does_not_carry_it() {
        let s = setup(directory(), false);
        let alice = planned("alice@contoso.com");
        let secrets = password();
        let delivery = s
            .notifier
            .notify(notice(
                &alice,
                &[Channel::Sms, Channel::Email],
                Recipient::User,
                &secrets,
            ))
            .await;
        let Delivery::Delivered(detail) = delivery else {
            panic!("{delivery:?}")
        };
        assert!(!detail.contains("Tmp-Secret-123"), "{detail}");
        assert!(detail.contains("+14******101"), "masked number: {detail}");
        let sms = s.sms.sent();
        assert_eq!(sms.len(), 1);
        assert_eq!(sms[0].to, Address::Phone("+14255550101".into()));
        assert!(sms[0].carries_secret);
        assert_eq!(
            sms[0].content,
            Content::Sms {
                text: "tpl|alice@contoso.com|Tmp-Secret-123".into()
            }
        );
        let mail = s.mail.sent();
        assert_eq!(mail.len(), 1, "the in-tenant mail sender comes first");
        assert!(!mail[0].carries_secret);
        let Content::Email { text, .. } = &mail[0].content else {
            panic!()
        };
        assert!(
            text.ends_with("|-"),
            "no secret in the user's mailbox: {text}"
        );
        assert!(s.relay.sent().is_empty());
        let records = s.journal.deliveries("run-1").await.unwrap();
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|r| r.state == Some(DeliveryState::Sent)));
    }

    #[tokio::test]
    async fn a_user_given_a_password_and_an_access_pass_gets_each_in_its_own_notice() {
        let s = setup(directory(), false);
        let alice = planned("alice@contoso.com");
        // The password came first, the pass later: the password notice still carries the
        // password, not the newest secret.
        let mut secrets = password();
        secrets.push(UserSecret::AccessPass {
            pass: SecretString::from("Tap-Secret-999"),
            lifetime_minutes: 60,
            usable_once: true,
        });
        let delivery = s
            .notifier
            .notify(notice(&alice, &[Channel::Sms], Recipient::User, &secrets))
            .await;
        assert!(matches!(delivery, Delivery::Delivered(_)), "{delivery:?}");
        let sms = s.sms.sent();
        assert_eq!(
            sms[0].content,
            Content::Sms {
                text: "tpl|alice@contoso.com|Tmp-Secret-123".into()
            }
        );
    }

    #[tokio::test]
    async fn the_manager_is_reached_at_the_directory_s_addresses() {
        let s = setup(directory(), false);
        let alice = planned("alice@contoso.com");
        let secrets = password();
        let delivery = s
            .notifier
            .notify(notice(
                &alice,
                &[Channel::Email],
                Recipient::Manager,
                &secrets,
            ))
            .await;
        assert!(matches!(delivery, Delivery::Delivered(_)), "{delivery:?}");
        let mail = s.mail.sent();
        assert_eq!(mail[0].to, Address::Email("carol@contoso.com".into()));
        assert!(
            mail[0].carries_secret,
            "mail to the manager may carry the secret"
        );

        let bob = planned("bob@contoso.com");
        let delivery = s
            .notifier
            .notify(notice(&bob, &[Channel::Email], Recipient::Manager, &[]))
            .await;
        let Delivery::ManualCheck(detail) = delivery else {
            panic!("{delivery:?}")
        };
        assert!(detail.contains("no manager"), "{detail}");
    }

    #[tokio::test]
    async fn an_unparsable_number_is_a_manual_check_not_a_guess() {
        let s = setup(directory(), false);
        let bob = planned("bob@contoso.com");
        let delivery = s
            .notifier
            .notify(notice(&bob, &[Channel::Sms], Recipient::User, &[]))
            .await;
        let Delivery::ManualCheck(detail) = delivery else {
            panic!("{delivery:?}")
        };
        assert!(detail.contains("does not parse"), "{detail}");
        assert!(s.sms.sent().is_empty());
    }

    #[tokio::test]
    async fn out_of_band_notices_avoid_senders_inside_the_tenant() {
        let s = setup(directory(), false);
        let alice = planned("alice@contoso.com");
        let mut n = notice(&alice, &[Channel::Email], Recipient::User, &[]);
        n.out_of_band = true;
        let delivery = s.notifier.notify(n).await;
        assert!(matches!(delivery, Delivery::Delivered(_)), "{delivery:?}");
        assert!(s.mail.sent().is_empty());
        assert_eq!(s.relay.sent().len(), 1);
        assert!(s.notifier.missing(Channel::Teams, true).is_some());
        assert_eq!(s.notifier.missing(Channel::Email, true), None);
        assert_eq!(
            s.notifier.missing(Channel::Webhook, false).as_deref(),
            Some("channels.webhook")
        );
    }

    #[tokio::test]
    async fn a_resumed_notice_sends_only_what_certainly_did_not_go_out() {
        // A non-idempotent SMS sender whose answer was lost: not sent again.
        let s = setup(directory(), false);
        let alice = planned("alice@contoso.com");
        *s.sms.fail_with.lock().unwrap() = Some(ChannelErrorKind::OutcomeUnknown);
        let first = s
            .notifier
            .notify(notice(
                &alice,
                &[Channel::Sms, Channel::Email],
                Recipient::User,
                &[],
            ))
            .await;
        assert!(matches!(first, Delivery::ManualCheck(_)), "{first:?}");
        let mut resumed = notice(
            &alice,
            &[Channel::Sms, Channel::Email],
            Recipient::User,
            &[],
        );
        resumed.resumed = true;
        let again = s.notifier.notify(resumed).await;
        let Delivery::ManualCheck(detail) = again else {
            panic!("{again:?}")
        };
        assert!(detail.contains("may have been sent"), "{detail}");
        assert!(detail.contains("sent in an earlier attempt"), "{detail}");
        assert!(s.sms.sent().is_empty());
        assert_eq!(s.mail.sent().len(), 1, "the mail went out once");

        // An idempotent one is sent again, under the same key.
        let s = setup(directory(), true);
        *s.sms.fail_with.lock().unwrap() = Some(ChannelErrorKind::OutcomeUnknown);
        s.notifier
            .notify(notice(&alice, &[Channel::Sms], Recipient::User, &[]))
            .await;
        let key = s.journal.deliveries("run-1").await.unwrap()[0].message_key;
        let mut resumed = notice(&alice, &[Channel::Sms], Recipient::User, &[]);
        resumed.resumed = true;
        let again = s.notifier.notify(resumed).await;
        assert!(matches!(again, Delivery::Delivered(_)), "{again:?}");
        assert_eq!(s.sms.sent()[0].key, key);
    }

    #[tokio::test]
    async fn a_template_that_does_not_render_fails_the_notice_and_sends_nothing() {
        let s = setup(directory(), false);
        let alice = planned("alice@contoso.com");
        let mut n = notice(&alice, &[Channel::Sms], Recipient::User, &[]);
        n.template = "broken";
        let delivery = s.notifier.notify(n).await;
        let Delivery::Failed(detail) = delivery else {
            panic!("{delivery:?}")
        };
        assert!(detail.contains("template `broken`"), "{detail}");
        assert!(s.sms.sent().is_empty());
    }

    #[test]
    fn secrets_are_delivered_over_sms_or_to_the_manager_by_mail() {
        let s = setup(directory(), false);
        assert!(
            s.notifier
                .delivers_secrets(&[Channel::Sms], Recipient::User)
        );
        assert!(
            !s.notifier
                .delivers_secrets(&[Channel::Email], Recipient::User)
        );
        assert!(
            s.notifier
                .delivers_secrets(&[Channel::Email], Recipient::Manager)
        );
        assert!(
            !s.notifier
                .delivers_secrets(&[Channel::Teams], Recipient::Manager)
        );
    }
}
