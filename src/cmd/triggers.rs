//! The incident triggers of `resetctl serve` over the run lifecycle: the first `triggers:`
//! rule that takes an incident names a playbook and a tenant; the incident's accounts
//! replace the playbook's breach CSV; the plan is stored as a run under the ticket
//! `<source>:<incident id>` — the idempotency key: a retried webhook finds that run and makes
//! no second one. Nothing executes: the playbook's approvals gate the run as ever.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use resetctl::config::TriggerRule;
use resetctl::engine::lifecycle::{Lifecycle, PlanOptions, PlaybookSource, Trail};
use resetctl::engine::operator::{Operator, OperatorName};
use resetctl::engine::ticket::Ticket;
use resetctl::playbook::Target;
use resetctl::serve::triggers::{Incident, TriggerError, TriggerPlanner, Triggered};
use resetctl::store::{RunStore, SqliteStore};
use resetctl::targeting::ResolveOptions;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::tenant::Tenant;

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

struct Inner {
    rules: Vec<Rule>,
    tenants: BTreeMap<String, Arc<Tenant>>,
    store: Arc<SqliteStore>,
    trail: Trail,
    runs_dir: PathBuf,
    csv_dir: PathBuf,
    /// One plan at a time: two deliveries of one webhook must not both plan.
    lock: Mutex<()>,
}

impl LifecycleTriggers {
    /// Triggers over `rules` planning on `tenants`, runs in `store`, records in `trail`.
    pub fn new(
        rules: Vec<Rule>,
        tenants: BTreeMap<String, Arc<Tenant>>,
        store: Arc<SqliteStore>,
        trail: Trail,
        data_dir: PathBuf,
    ) -> Self {
        LifecycleTriggers {
            inner: Arc::new(Inner {
                rules,
                tenants,
                store,
                trail,
                runs_dir: data_dir.join("runs"),
                csv_dir: data_dir.join("triggers"),
                lock: Mutex::new(()),
            }),
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
            tokio::task::spawn_blocking(move || handle.block_on(inner.plan(&incident)))
                .await
                .map_err(|e| TriggerError::Failed(e.to_string()))?
        })
    }
}

impl Inner {
    async fn plan(&self, incident: &Incident) -> Result<Triggered, TriggerError> {
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
                return Ok(Triggered {
                    run: run.id.to_string(),
                    playbook,
                    tenant: run.tenant.clone(),
                    approvals_required,
                    created: false,
                });
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
                &format!("trigger {}", incident.source.as_str()),
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
                    },
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
            Ok(Triggered {
                run: planned.run.id.to_string(),
                playbook,
                tenant: tenant.name.clone(),
                approvals_required,
                created: true,
            })
        }
    }
}
