//! The communications of a run, put together from the configuration: the senders of
//! `channels:` (or, for the demo tenant, the emulator's own sinks), paced at their documented
//! limits, the template catalogue, the audiences, and the delivery journal in the run store.

use std::collections::BTreeMap;
use std::sync::Arc;

use resetctl::comms::Channel as Sender;
use resetctl::comms::channels::{self, ChannelContext, ChannelSet};
use resetctl::comms::context::{Incident, ManualEntry, Organisation, RunContext, RunCounts};
use resetctl::comms::notifier::{CommsNotifier, RunInfo};
use resetctl::comms::pace::{PaceOptions, PacedSet};
use resetctl::comms::template::Catalog;
use resetctl::config::{Audience, ChannelsSection, Env};
use resetctl::engine::lifecycle::{Executed, Lifecycle, PlannedRun};
use resetctl::playbook::{Channel, Playbook};
use resetctl::store::SqliteStore;
use resetctl::targeting::Bucket;

use super::context::Context;
use super::tenant::Tenant;
use super::{Exit, Failure};

/// Where a tenant's messages go: the configuration's channels, or the demo tenant's sinks.
#[derive(Debug, Clone)]
pub struct Messaging {
    /// The `channels:` section in force.
    pub channels: ChannelsSection,
    /// The `audiences:` section in force.
    pub audiences: BTreeMap<String, Audience>,
    /// The `organisation:` section in force.
    pub organisation: Option<Organisation>,
    /// Where the channels' `*_env` secrets are read.
    pub env: Env,
    /// Limits are multiplied by this (an emulated tenant compresses time).
    pub time_scale: f64,
    /// The `push:` section in force: the single-user flow's push provider.
    pub push: Option<resetctl::config::PushSettings>,
    /// The `tickets:` section in force: where the single-user flow's escalations go.
    pub tickets: resetctl::config::TicketsConfig,
}

impl Messaging {
    /// The configuration's messaging, for a configured tenant.
    pub fn configured(context: &Context, tenant: &Tenant) -> Messaging {
        Messaging {
            channels: context.config.channels.clone(),
            audiences: context.config.audiences.clone(),
            organisation: context.config.organisation.clone(),
            env: context.env.clone(),
            time_scale: tenant.time_scale,
            push: context.config.push.clone(),
            tickets: context.config.tickets.clone(),
        }
    }
}

/// Whether `playbook` sends any message at all.
pub fn sends_messages(playbook: &Playbook) -> bool {
    let c = &playbook.communications;
    playbook
        .steps
        .iter()
        .any(|s| matches!(s.step, resetctl::playbook::Step::Notify { .. }))
        || c.helpdesk_brief.is_some()
        || c.manual_queue.is_some()
        || c.soc_summary.is_some()
}

/// The paced senders of `messaging` (Graph mail through `tenant`'s directory), in order of
/// preference per channel. Must run inside the runtime (the SMTP pool needs it).
pub fn senders(messaging: &Messaging, tenant: &Tenant) -> Result<Vec<Arc<dyn Sender>>, Failure> {
    let context = ChannelContext {
        http: channels::http_client().map_err(|e| Failure::new(Exit::Config, e))?,
        env: messaging.env.clone(),
        directory: Some(Arc::clone(&tenant.directory)),
    };
    let set: ChannelSet = channels::build(&messaging.channels, &context)
        .map_err(|e| Failure::new(Exit::Config, e))?;
    let paced = PacedSet::new(
        &set,
        PaceOptions {
            time_scale: messaging.time_scale,
            ..PaceOptions::default()
        },
    );
    let kinds = [
        Channel::Email,
        Channel::Sms,
        Channel::Teams,
        Channel::Webhook,
    ];
    Ok(kinds
        .into_iter()
        .flat_map(|kind| paced.for_kind(kind))
        .map(|p| p as Arc<dyn Sender>)
        .collect())
}

/// The notifier of `planned` on `tenant`: every configured sender, the templates, the
/// audiences, the run store's delivery journal and the audit trail.
pub fn notifier(
    context: &Context,
    tenant: &Tenant,
    lifecycle: &Lifecycle<SqliteStore>,
    planned: &PlannedRun,
    catalog: Arc<Catalog>,
) -> Result<CommsNotifier, Failure> {
    let messaging = tenant
        .messaging
        .clone()
        .unwrap_or_else(|| Messaging::configured(context, tenant));
    notifier_with(&messaging, tenant, lifecycle, planned, catalog)
}

/// [`notifier`] over `messaging` (a server resolves it once per tenant, at start).
pub fn notifier_with(
    messaging: &Messaging,
    tenant: &Tenant,
    lifecycle: &Lifecycle<SqliteStore>,
    planned: &PlannedRun,
    catalog: Arc<Catalog>,
) -> Result<CommsNotifier, Failure> {
    let senders = senders(messaging, tenant)?;
    // Without any sender the gate refuses the playbook's messages by channel; with senders,
    // messages must be signed by the organisation.
    let org = match (
        &messaging.organisation,
        sends_messages(&planned.playbook) && !senders.is_empty(),
    ) {
        (Some(org), _) => org.clone(),
        (None, false) => resetctl::comms::template::sample_organisation(),
        (None, true) => {
            return Err(Failure::new(
                Exit::Config,
                "the playbook sends messages, and resetctl.yaml has no `organisation:` section \
                 to sign them with (name, helpdesk_phone, helpdesk_url, verify_url): people \
                 must be able to tell a real notice from a phishing copy",
            ));
        }
    };
    let info = RunInfo {
        org,
        incident: incident(planned),
        default_region: None,
        actor: lifecycle.operator().name.to_string(),
    };
    Ok(CommsNotifier::new(
        Arc::clone(&tenant.directory),
        senders,
        catalog,
        Arc::clone(lifecycle.store()) as Arc<dyn resetctl::comms::delivery::DeliveryJournal>,
        Some(lifecycle.audit().clone()),
        info,
    )
    .with_audiences(messaging.audiences.clone()))
}

/// The incident a run's messages belong to.
pub fn incident(planned: &PlannedRun) -> Incident {
    Incident {
        playbook: planned.playbook.name.clone(),
        description: planned.playbook.description.clone(),
        run_id: planned.run.id.0.clone(),
        reference: planned.run.ticket.clone(),
        started_at: jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
    }
}

/// The delivery estimate of `planned` over the channels `tenant`'s messages would use.
pub fn capacity_of(
    context: &Context,
    tenant: &Tenant,
    planned: &PlannedRun,
) -> Result<Vec<Capacity>, Failure> {
    let messaging = tenant
        .messaging
        .clone()
        .unwrap_or_else(|| Messaging::configured(context, tenant));
    Ok(capacity(&senders(&messaging, tenant)?, planned))
}

/// The run-level messages of one execution: the help-desk brief and the manual queue before
/// the first user is reset, the SOC summary when the execution ends (finished or stopped).
pub struct Announcer {
    notifier: Arc<CommsNotifier>,
    playbook: Arc<Playbook>,
    incident: Incident,
    planned: u64,
    manual: Vec<ManualEntry>,
    manual_total: u64,
    files: Vec<String>,
}

/// Users a run-level message lists by name, at most.
const LISTED: usize = 200;

impl Announcer {
    /// The announcer of `planned`'s execution.
    pub fn new(notifier: Arc<CommsNotifier>, planned: &PlannedRun) -> Announcer {
        let plan = &planned.plan;
        let manual_users: Vec<_> = plan
            .users
            .iter()
            .filter(|u| matches!(u.bucket, Bucket::Privileged | Bucket::Hybrid))
            .collect();
        Announcer {
            incident: notifier.info().incident.clone(),
            notifier,
            playbook: Arc::clone(&planned.playbook),
            planned: resetctl::engine::gate::automated(plan) as u64,
            manual_total: manual_users.len() as u64,
            manual: manual_users
                .into_iter()
                .take(LISTED)
                .map(|u| ManualEntry {
                    upn: u.upn.clone(),
                    display_name: u.display_name.clone(),
                    reason: u.reason.to_string(),
                })
                .collect(),
            files: ["plan.json", "manual-queue.csv", "results.csv", "summary.md"]
                .iter()
                .map(|f| planned.out.join(f).display().to_string())
                .collect(),
        }
    }

    fn context(&self, state: &'static str) -> RunContext {
        RunContext {
            org: self.notifier.info().org.clone(),
            incident: self.incident.clone(),
            state,
            counts: RunCounts {
                planned: self.planned,
                manual: self.manual_total,
                ..RunCounts::default()
            },
            manual: self.manual.clone(),
            failures: Vec::new(),
            files: self.files.clone(),
            elapsed_seconds: None,
        }
    }

    /// `helpdesk_brief` and `manual_queue`, when the playbook names them.
    pub async fn start(&self) -> Vec<String> {
        let comms = &self.playbook.communications;
        let context = self.context("planned");
        let mut lines = Vec::new();
        for (name, message) in [
            ("helpdesk_brief", &comms.helpdesk_brief),
            ("manual_queue", &comms.manual_queue),
        ] {
            if name == "manual_queue" && self.manual_total == 0 {
                continue;
            }
            if let Some(m) = message {
                lines.extend(
                    self.notifier
                        .announce(name, &m.template, &m.channels, comms.out_of_band, &context)
                        .await,
                );
            }
        }
        lines
    }

    /// `soc_summary`, with the counts, failures, 429s and files of the execution.
    pub async fn end(&self, executed: &Executed) -> Vec<String> {
        let comms = &self.playbook.communications;
        let Some(message) = &comms.soc_summary else {
            return Vec::new();
        };
        let report = &executed.report;
        let state = match report.stopped_by {
            None => "finished",
            Some(_) => "stopped",
        };
        let mut context = self.context(state);
        let stats = self.notifier.stats();
        context.counts = RunCounts {
            planned: self.planned,
            done: report.users.done as u64,
            succeeded: (report.users.done - report.users.with_problems.min(report.users.done))
                as u64,
            failed: report.users.with_problems as u64,
            manual: self.manual_total,
            not_started: report.users.not_started as u64,
            throttled: report.throttled,
            messages_sent: stats.sent.load(std::sync::atomic::Ordering::Relaxed),
            messages_failed: stats.failed.load(std::sync::atomic::Ordering::Relaxed),
        };
        context.failures = executed
            .summary
            .results
            .iter()
            .filter(|r| {
                matches!(
                    r.outcome,
                    resetctl::store::Outcome::Failed | resetctl::store::Outcome::ManualCheck
                )
            })
            .take(LISTED)
            .map(|r| ManualEntry {
                upn: r.upn.clone(),
                display_name: r.upn.clone(),
                reason: format!("{}: {}", r.step, r.detail.clone().unwrap_or_default()),
            })
            .collect();
        context.elapsed_seconds = Some(report.seconds.round() as u64);
        self.notifier
            .announce(
                "soc_summary",
                &message.template,
                &message.channels,
                comms.out_of_band,
                &context,
            )
            .await
    }
}

/// How long one channel's messages take at its sender's documented limit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Capacity {
    /// The channel.
    pub channel: &'static str,
    /// The sender that carries it (the first configured one).
    pub sender: &'static str,
    /// Messages the plan sends over it.
    pub messages: u64,
    /// The sender's documented limit, per minute.
    pub per_minute: f64,
    /// Minutes to send them all at that limit (real time, whatever the tenant's time scale).
    pub minutes: f64,
}

/// Per channel, the messages `planned` sends (one per user, notify step and channel) and how
/// long the first sender of that channel needs for them at its documented limit.
pub fn capacity(senders: &[Arc<dyn Sender>], planned: &PlannedRun) -> Vec<Capacity> {
    let playbook = &planned.playbook;
    let mut counts: BTreeMap<&'static str, (Channel, u64)> = BTreeMap::new();
    for user in &planned.plan.users {
        for key in user.steps.iter() {
            let step =
                resetctl::engine::journal_key::StepKey::parse(key).and_then(|k| k.step(playbook));
            if let Some(resetctl::playbook::Step::Notify { channels, .. }) = step {
                for channel in channels {
                    counts.entry(channel.as_str()).or_insert((*channel, 0)).1 += 1;
                }
            }
        }
    }
    counts
        .into_values()
        .filter_map(|(channel, messages)| {
            let sender = senders.iter().find(|s| s.kind() == channel)?;
            let per_minute = sender.limits().per_minute;
            Some(Capacity {
                channel: channel.as_str(),
                sender: sender.name(),
                messages,
                per_minute,
                minutes: messages as f64 / per_minute.max(f64::MIN_POSITIVE),
            })
        })
        .collect()
}

/// The estimate as an operator reads it, with what would bring a slow channel under
/// `deliver_within`.
pub fn capacity_lines(capacity: &[Capacity], deliver_within: std::time::Duration) -> Vec<String> {
    let within = deliver_within.as_secs_f64() / 60.0;
    let mut lines = Vec::new();
    for c in capacity {
        lines.push(format!(
            "delivery: {} {} message(s) over {} at {:.0}/min: {}",
            c.messages,
            c.channel,
            c.sender,
            c.per_minute,
            minutes_text(c.minutes)
        ));
        if c.minutes > within {
            let advice = match c.channel {
                "email" => format!(
                    "add sender mailboxes to channels.email.graph.mailboxes (about {} in all), \
                     use an SMTP relay (channels.email.smtp), or tell everyone at once with \
                     a run-level message to a distribution group (an audiences address; \
                     Exchange expands it) instead of one mail per user",
                    (c.per_minute * c.minutes / (within * 30.0)).ceil().max(1.0)
                ),
                "sms" => "raise the provider's throughput (a short code or a messaging service), or add a second SMS provider".into(),
                _ => "send one message to a channel instead of one per user".into(),
            };
            lines.push(format!(
                "warning: {} delivery takes longer than communications.deliver_within ({}): {advice}",
                c.channel,
                minutes_text(within)
            ));
        }
    }
    lines
}

/// `5.5 h`, `12 min`, `40 s`.
fn minutes_text(minutes: f64) -> String {
    if minutes >= 90.0 {
        format!("{:.1} h", minutes / 60.0)
    } else if minutes >= 1.0 {
        format!("{minutes:.0} min")
    } else {
        format!("{:.0} s", minutes * 60.0)
    }
}
