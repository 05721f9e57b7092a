//! The incident triggers of `resetctl serve` over the run lifecycle: the first `triggers:`
//! rule that takes an incident names a playbook and a tenant; the incident's accounts
//! replace the playbook's breach CSV; the plan is stored as a run under the ticket
//! `<source>:<incident id>` — the idempotency key: a retried webhook finds that run and makes
//! no second one (and starts no second execution). The playbook's approvals gate the run as
//! ever; a rule with `execute: true` on a playbook that requires none executes the new plan at
//! once, in the background, through `Lifecycle::gate`, `preflight` and `execute` like
//! `resetctl run --execute --yes`: its records name the trigger (actor `trigger-<source>`,
//! origin `trigger <source> incident <id>`, the ticket), and `trigger.executed` closes it.
//! A server shutting down stops the executions it started as a first Ctrl-C does (no new user
//! starts, users in flight finish; the run stays resumable) and waits for them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use resetctl::audit::{Details, Event, Outcome};
use resetctl::comms::template::Catalog;
use resetctl::config::TriggerRule;
use resetctl::engine::execute::Progress;
use resetctl::engine::lifecycle::{
    ExecuteOptions, Lifecycle, PlanOptions, PlannedRun, PlaybookSource, Trail,
};
use resetctl::engine::operator::{Operator, OperatorName};
use resetctl::engine::ticket::Ticket;
use resetctl::playbook::Target;
use resetctl::serve::triggers::{Incident, RunState, TriggerError, TriggerPlanner, Triggered};
use resetctl::store::{RunId, RunStatus, RunStore, SqliteStore, StoreError};
use resetctl::targeting::ResolveOptions;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::comms::{self, Messaging};
use super::tenant::Tenant;

/// The most users whose steps run at once in a trigger's execution (`resetctl run`'s default).
const CONCURRENCY: usize = resetctl::engine::execute::MAX_PIPELINES;

/// One rule with its playbook loaded (and validated) at start.
pub struct Rule {
    /// The rule.
    pub rule: TriggerRule,
    /// Its playbook.
    pub source: PlaybookSource,
}

/// Plans incidents on the tenants `serve` connected.
pub struct LifecycleTriggers {
    inner: Arc<Inner>,
}

/// What an execution started by a trigger needs besides the lifecycle: each tenant's
/// channels (resolved once, at start) and the templates.
pub struct Messages {
    /// Each served tenant's channels, audiences and organisation.
    pub messaging: BTreeMap<String, Messaging>,
    /// The template catalogue.
    pub catalog: Arc<Catalog>,
}

struct Inner {
    rules: Vec<Rule>,
    tenants: BTreeMap<String, Arc<Tenant>>,
    store: Arc<SqliteStore>,
    trail: Trail,
    runs_dir: PathBuf,
    csv_dir: PathBuf,
    messages: Messages,
    /// One plan at a time: two deliveries of one webhook must not both plan.
    lock: Mutex<()>,
    /// Executions started by triggers, awaited at shutdown.
    executions: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// Set at shutdown: executions start no new user.
    stop: watch::Sender<bool>,
}

impl LifecycleTriggers {
    /// Triggers over `rules` planning on `tenants`, runs in `store`, records in `trail`;
    /// executions (rules with `execute: true`) send their messages through `messages`.
    pub fn new(
        rules: Vec<Rule>,
        tenants: BTreeMap<String, Arc<Tenant>>,
        store: Arc<SqliteStore>,
        trail: Trail,
        data_dir: PathBuf,
        messages: Messages,
    ) -> Self {
        LifecycleTriggers {
            inner: Arc::new(Inner {
                rules,
                tenants,
                store,
                trail,
                runs_dir: data_dir.join("runs"),
                csv_dir: data_dir.join("triggers"),
                messages,
                lock: Mutex::new(()),
                executions: std::sync::Mutex::new(Vec::new()),
                stop: watch::channel(false).0,
            }),
        }
    }

    /// At shutdown: no execution started by a trigger starts a new user; wait until those
    /// in flight finish (each run ends `stopped`, resumable with `resetctl run --resume`).
    pub async fn drain(&self) {
        let _ = self.inner.stop.send(true);
        let running: Vec<JoinHandle<()>> = self
            .inner
            .executions
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for execution in running {
            let _ = execution.await;
        }
    }
}

impl Inner {
    /// The first rule that takes `incident`, or why none does.
    fn rule_for(&self, incident: &Incident) -> Result<&Rule, TriggerError> {
        let mut why = Vec::new();
        for r in &self.rules {
            let name = r.rule.playbook.display();
            if !r.rule.sources.iter().any(|s| s == incident.source.as_str()) {
                continue;
            }
            if let Some(t) = &r.rule.title_contains
                && !incident.title.to_lowercase().contains(t)
            {
                continue;
            }
            if !r.rule.tactics.is_empty()
                && !r.rule.tactics.iter().any(|t| incident.tactics.contains(t))
            {
                continue;
            }
            if !r.rule.labels.is_empty()
                && !r.rule.labels.iter().any(|l| incident.labels.contains(l))
            {
                continue;
            }
            if let Some(trigger) = &r.source.playbook.trigger {
                if let Some(kind) = &incident.kind
                    && *kind != trigger.incident
                {
                    why.push(format!(
                        "{name} answers `{}`, not `{kind}`",
                        trigger.incident
                    ));
                    continue;
                }
                match incident.severity {
                    Some(s) if s >= trigger.severity => {}
                    Some(_) => {
                        why.push(format!(
                            "{name} needs severity {:?} or higher",
                            trigger.severity
                        ));
                        continue;
                    }
                    None => {
                        why.push(format!(
                            "{name} needs a severity, and the incident has none"
                        ));
                        continue;
                    }
                }
            }
            return Ok(r);
        }
        Err(TriggerError::NoRule(if why.is_empty() {
            format!(
                "no rule under `triggers:` matches this {} incident ({:?})",
                incident.source.as_str(),
                incident.title
            )
        } else {
            why.join("; ")
        }))
    }
}

/// The ticket a trigger's run is stored under: `<source>:<id>`, or a digest of an id too long
/// for a ticket.
fn ticket_of(incident: &Incident) -> Result<Ticket, TriggerError> {
    let plain = format!("{}:{}", incident.source.as_str(), incident.id);
    Ticket::parse(&plain)
        .or_else(|_| {
            let digest = hex::encode(&Sha256::digest(incident.id.as_bytes())[..12]);
            Ticket::parse(&format!("{}:{digest}", incident.source.as_str()))
        })
        .map_err(|e| TriggerError::Unplannable(format!("incident id: {e}")))
}

impl TriggerPlanner for LifecycleTriggers {
    fn plan<'a>(
        &'a self,
        incident: &'a Incident,
    ) -> BoxFuture<'a, Result<Triggered, TriggerError>> {
        // The planner's future is not `Send` (its concurrent reads borrow across awaits), so
        // it runs to completion on a blocking thread, driven by this runtime.
        let inner = self.inner.clone();
        let incident = incident.clone();
        let handle = tokio::runtime::Handle::current();
        Box::pin(async move {
            let planning = inner.clone();
            let made = tokio::task::spawn_blocking(move || {
                let planned = handle.block_on(planning.plan(&incident));
                planned.map(|(triggered, execution)| {
                    // Started before the answer: a retried webhook finds the run `running`.
                    let started = execution.map(|e| planning.start(e, handle.clone()));
                    (triggered, started)
                })
            })
            .await
            .map_err(|e| TriggerError::Failed(e.to_string()))??;
            let (triggered, started) = made;
            if let Some(started) = started
                && let Ok(mut executions) = inner.executions.lock()
            {
                executions.retain(|h| !h.is_finished());
                executions.push(started);
            }
            Ok(triggered)
        })
    }

    fn status<'a>(&'a self, run: &'a str) -> BoxFuture<'a, Result<Option<RunState>, TriggerError>> {
        Box::pin(async move {
            match self.inner.store.run(&RunId(run.to_owned())).await {
                Ok(r) => Ok(Some(RunState {
                    run: r.id.0,
                    tenant: r.tenant,
                    playbook: r.playbook_name,
                    state: r.status.as_str().to_owned(),
                    ticket: r.ticket,
                })),
                Err(StoreError::UnknownRun(_)) => Ok(None),
                Err(e) => Err(TriggerError::Failed(e.to_string())),
            }
        })
    }
}

/// A new plan a rule lets execute at once.
struct Execution {
    planned: PlannedRun,
    lifecycle: Lifecycle<SqliteStore>,
    tenant: Arc<Tenant>,
    incident: Incident,
}

impl Inner {
    async fn plan(
        &self,
        incident: &Incident,
    ) -> Result<(Triggered, Option<Execution>), TriggerError> {
        {
            let rule = self.rule_for(incident)?;
            let ticket = ticket_of(incident)?;
            let approvals_required = rule.source.playbook.guards.approvals_required;
            let playbook = rule.rule.playbook.display().to_string();
            let _one = self.lock.lock().await;
            let failed = |e: String| TriggerError::Failed(e);
            let runs = self.store.runs().await.map_err(|e| failed(e.to_string()))?;
            if let Some(run) = runs
                .iter()
                .find(|r| r.ticket.as_deref() == Some(ticket.as_str()))
            {
                let triggered = Triggered {
                    run: run.id.to_string(),
                    playbook,
                    tenant: run.tenant.clone(),
                    approvals_required,
                    created: false,
                    executing: false,
                    state: run.status.as_str().to_owned(),
                };
                return Ok((triggered, None));
            }
            let tenant = self
                .tenants
                .get(&rule.rule.tenant)
                .ok_or_else(|| failed(format!("tenant {} is not served", rule.rule.tenant)))?;
            // The incident's accounts stand in for the playbook's breach CSV.
            let column = rule.source.playbook.targets.iter().find_map(|t| match t {
                Target::Csv { column, .. } => Some(column.clone()),
                _ => None,
            });
            let csv_override = match column {
                Some(column) => {
                    if incident.accounts.is_empty() {
                        return Err(TriggerError::Unplannable(format!(
                            "{playbook} takes a list of accounts, and the incident names none"
                        )));
                    }
                    std::fs::create_dir_all(&self.csv_dir).map_err(|e| failed(e.to_string()))?;
                    let path = self.csv_dir.join(format!(
                        "{}.csv",
                        ticket.as_str().replace([':', '/', '#'], "-")
                    ));
                    let mut text = format!("{column}\n");
                    for a in &incident.accounts {
                        text.push_str(a);
                        text.push('\n');
                    }
                    std::fs::write(&path, text).map_err(|e| failed(e.to_string()))?;
                    Some(path)
                }
                None => None,
            };
            let operator = Operator::new(
                OperatorName::parse(&format!("trigger-{}", incident.source.as_str()))
                    .map_err(|e| failed(e.to_string()))?,
                &format!(
                    "trigger {} incident {}",
                    incident.source.as_str(),
                    incident.id
                ),
            );
            let lifecycle = Lifecycle::new(
                self.store.clone(),
                self.trail.clone(),
                operator,
                self.runs_dir.clone(),
            )
            .with_ticket(Some(ticket));
            let planned = lifecycle
                .plan(
                    tenant.as_ref().as_ref(),
                    &rule.source,
                    PlanOptions {
                        resolve: ResolveOptions {
                            csv_override,
                            skip_bad_rows: true,
                            ..ResolveOptions::default()
                        },
                        out: None,
                        overwrite: false,
                        include_remediated: false,
                        skip_report_only_reads: true,
                    },
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
            // Both the rule and the playbook as loaded must allow it: a trigger never stands
            // in for an approver.
            // An incident naming exactly the accounts of a plan still waiting gets that plan
            // (it is the same remediation): nothing new is created or started for it.
            let executes = rule.rule.execute && approvals_required == 0 && !planned.reused;
            let triggered = Triggered {
                run: planned.run.id.to_string(),
                playbook,
                tenant: tenant.name.clone(),
                approvals_required,
                created: !planned.reused,
                executing: executes,
                state: if executes {
                    RunStatus::Running.as_str().to_owned()
                } else {
                    planned.run.status.as_str().to_owned()
                },
            };
            let execution = executes.then(|| Execution {
                planned,
                lifecycle,
                tenant: Arc::clone(tenant),
                incident: incident.clone(),
            });
            Ok((triggered, execution))
        }
    }

    /// Run `execution` in the background on a thread of its own, driven by `handle`.
    fn start(
        self: &Arc<Self>,
        execution: Execution,
        handle: tokio::runtime::Handle,
    ) -> JoinHandle<()> {
        let inner = Arc::clone(self);
        let driver = handle.clone();
        handle.spawn_blocking(move || driver.block_on(inner.execute(execution)))
    }

    /// Gate, preflight and execute a trigger's plan; `trigger.executed` says how it ended.
    async fn execute(&self, execution: Execution) {
        let Execution {
            planned,
            lifecycle,
            tenant,
            incident,
        } = execution;
        let run = planned.run.id.clone();
        let ended = self.gate_and_execute(planned, &lifecycle, &tenant).await;
        let (outcome, details) = match &ended {
            Ok((status, succeeded)) => (
                if *succeeded {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
                Details::new().with("status", status.as_str()),
            ),
            Err(reason) => (
                Outcome::Refused,
                Details::new().with("reason", reason.as_str()),
            ),
        };
        if let Err(reason) = &ended {
            tracing::warn!(run = %run, "a trigger's execution did not run: {reason}");
        }
        let event = details
            .and_then(|d| d.with("source", incident.source.as_str()))
            .and_then(|d| d.with("incident", incident.id.as_str()))
            .and_then(|d| d.with("origin", lifecycle.operator().origin.as_str()))
            .and_then(|details| {
                Event::new(
                    lifecycle.operator().name.as_str(),
                    "trigger.executed",
                    run.0.as_str(),
                    outcome,
                )
                .map(|e| e.with_details(details))
            });
        let recorded = match event {
            Ok(event) => lifecycle.audit().record(event).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            tracing::error!(run = %run, "could not audit a trigger's execution: {e}");
        }
    }

    /// The run's final status and whether every step ended well, or why it did not run.
    async fn gate_and_execute(
        &self,
        planned: PlannedRun,
        lifecycle: &Lifecycle<SqliteStore>,
        tenant: &Tenant,
    ) -> Result<(RunStatus, bool), String> {
        let messaging = self
            .messages
            .messaging
            .get(&tenant.name)
            .ok_or_else(|| format!("tenant {} has no messaging", tenant.name))?;
        let notifier = comms::notifier_with(
            messaging,
            tenant,
            lifecycle,
            &planned,
            Arc::clone(&self.messages.catalog),
        )
        .map(Arc::new)
        .map_err(|f| f.report.to_string())?;
        let cleared = lifecycle
            .gate(planned, notifier.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        lifecycle
            .preflight(&cleared, tenant.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        let announcer = comms::Announcer::new(Arc::clone(&notifier), cleared.planned());
        for line in announcer.start().await {
            tracing::info!("message: {line}");
        }
        let executed = lifecycle
            .execute(
                cleared,
                tenant.as_ref(),
                ExecuteOptions {
                    concurrency: CONCURRENCY,
                    stop: self.stop.subscribe(),
                    progress: Arc::new(Progress::default()),
                    notifier: Arc::clone(&notifier) as Arc<dyn resetctl::engine::notify::Notifier>,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        for line in announcer.end(&executed).await {
            tracing::info!("message: {line}");
        }
        let status = self
            .store
            .run(&executed.run)
            .await
            .map(|r| r.status)
            .map_err(|e| e.to_string())?;
        Ok((status, executed.summary.complete_success()))
    }
}
