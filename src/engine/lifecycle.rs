//! The life of a run — planned, approved, gated, running, finished or stopped, resumed — as
//! one library type that every front end calls: `resetctl run`, `runs`, `bench run`, and the
//! coming tabletop, server and trigger intake. The binary parses, prompts and prints; every
//! decision about a run is made here, and every decision is audited here.
//!
//! ```text
//! plan ──► PlannedRun ──gate──► Cleared ──execute──► Executed
//!                                  ▲
//! resumable ──► Resumable ──resume─┘
//! ```
//!
//! Invariant: only a [`Cleared`] run can be executed, and a `Cleared` comes only from
//! [`Lifecycle::gate`] (guards, approvals, no unfinished run of the same plan) or from
//! [`Lifecycle::resume`] (the stored plan, the same playbook, a tenant that kept its state).
//! Every refusal is written to the audit trail before it is returned.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::watch;

use super::EngineError;
use super::execute::{self, Execution, Progress, Summary};
use super::gate::{self, Drift, Refusal};
use super::journal_key::StepKey;
use super::notify::Notifier;
use super::operator::Operator;
use super::plan::Plan;
use super::planner::{self, PlanRequest};
use super::preflight;
use super::ticket::Ticket;
use crate::audit::{self, AuditConfig, AuditError, AuditHandle, Details, Event, Receipt};
use crate::directory::Directory;
use crate::playbook::Playbook;
use crate::report;
use crate::store::{
    Approval, AttemptEnd, NewApproval, NewRun, Outcome, PlanDocument, Remediated, RunId, RunRecord,
    RunStatus, RunStore, StoreError,
};
use crate::targeting::ResolveOptions;
use crate::throttle::Quotas;

/// Why the lifecycle did not do what was asked. The binary picks the exit code from the
/// variant, in one place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The gate refused the execution; the refusal is in the audit trail and nothing was
    /// written to the tenant.
    #[error("run {run} refused, nothing was written:\n  - {}", join(refusals))]
    Refused {
        /// The run that was refused.
        run: RunId,
        /// Every reason, in the gate's order.
        refusals: Vec<Refusal>,
    },
    /// The run cannot be resumed as asked (never executed, plan unreadable, playbook
    /// changed): bad input, nothing was done.
    #[error("run {run}: {reason}")]
    NotResumable {
        /// The run.
        run: RunId,
        /// Why.
        reason: String,
    },
    /// Approvals are for planned runs: this one executed already (an approval authorises one
    /// execution of one plan).
    #[error("run {run} is {}: only a planned run can be approved (plan again for a new one)", status.as_str())]
    NotApprovable {
        /// The run.
        run: RunId,
        /// Its status.
        status: RunStatus,
    },
    /// The run's tenant started afresh (the built-in demo tenant): resuming would act on a
    /// different directory than the one planned.
    #[error(
        "run {run} was on tenant {tenant}, which starts afresh each time; it cannot be resumed"
    )]
    EphemeralTenant {
        /// The run.
        run: RunId,
        /// The tenant's name.
        tenant: String,
    },
    /// Planning or execution failed (boxed: the other variants are small).
    #[error(transparent)]
    Engine(Box<EngineError>),
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit trail failed: nothing goes on unrecorded.
    #[error("audit trail: {0}")]
    Audit(#[from] AuditError),
    /// A run file (plan.json, targets.csv, results.csv, ...) could not be written.
    #[error("{path}: {message}")]
    Files {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The preflight found a token, permission or directory role missing: the run was
    /// refused before its first write (and the refusal audited).
    #[error(
        "run {run} refused before any write: the tenant's app registration cannot do what \
         the plan needs (`resetctl doctor` shows every check):\n  - {}",
        missing.join("\n  - ")
    )]
    Preflight {
        /// The run.
        run: RunId,
        /// What is missing, one line each.
        missing: Vec<String>,
    },
}

impl From<EngineError> for LifecycleError {
    fn from(err: EngineError) -> Self {
        LifecycleError::Engine(Box::new(err))
    }
}

fn join(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  - ")
}

/// The tenant a run acts on, as the lifecycle needs it.
#[derive(Clone, Copy)]
pub struct TenantRef<'a> {
    /// The configured name (`--tenant`).
    pub name: &'a str,
    /// Directory operations on it.
    pub directory: &'a Arc<dyn Directory>,
    /// App registrations in its credential pool.
    pub apps: u32,
    /// Its quotas at its time scale (the plan's estimate uses them).
    pub quotas: &'a Quotas,
    /// Accounts resetctl runs as: never written to.
    pub runner_accounts: &'a [String],
    /// True for a tenant that starts afresh each time (the in-process demo tenant).
    pub ephemeral: bool,
}

/// A validated playbook and where it was read from.
pub struct PlaybookSource {
    /// The playbook; its `sha256` is the digest of the bytes validated, which the plan binds.
    pub playbook: Arc<Playbook>,
    /// Where it was read from, as stored with the run (resume reads it again).
    pub path: PathBuf,
}

impl PlaybookSource {
    /// SHA-256 of the validated bytes, hex.
    pub fn digest(&self) -> &str {
        &self.playbook.sha256
    }
}

/// A stored plan with everything needed to gate and execute it.
pub struct PlannedRun {
    /// The playbook it was made from.
    pub playbook: Arc<Playbook>,
    /// The playbook's path as stored.
    pub playbook_path: PathBuf,
    /// The plan.
    pub plan: Arc<Plan>,
    /// The stored run.
    pub run: RunRecord,
    /// Where the run's files go.
    pub out: PathBuf,
    /// Whether files already in `out` are replaced ([`out_files`]).
    pub on_existing: report::Existing,
    /// Whether planning found this very plan already stored and waiting (`planned`), and
    /// returned that run instead of a new one, so approvals gathered for it still count.
    pub reused: bool,
}

/// A run's files in its own folder under the data directory are the run's, refreshed when
/// it is written again; in a folder the operator named (`--out`), an existing file is
/// replaced only when asked (`--overwrite`).
pub fn out_files(out: Option<&Path>, overwrite: bool) -> report::Existing {
    if out.is_none() || overwrite {
        report::Existing::Replace
    } else {
        report::Existing::Refuse
    }
}

impl PlannedRun {
    /// A stored run of `plan`, made from `source`, with its files under `out`.
    fn of(
        source: &PlaybookSource,
        plan: Arc<Plan>,
        run: RunRecord,
        out: PathBuf,
        on_existing: report::Existing,
    ) -> PlannedRun {
        PlannedRun {
            playbook: Arc::clone(&source.playbook),
            playbook_path: source.path.clone(),
            plan,
            run,
            out,
            on_existing,
            reused: false,
        }
    }
}

/// A run the gate (or a resume's checks) let through: the only thing
/// [`Lifecycle::execute`] takes.
pub struct Cleared {
    planned: PlannedRun,
    /// True for a first execution (it consumes the approvals), false for a resume.
    first: bool,
}

impl Cleared {
    /// The run about to execute.
    pub fn planned(&self) -> &PlannedRun {
        &self.planned
    }
}

/// A stored run that may be resumed, before its playbook is checked.
pub struct Resumable {
    /// The stored run.
    pub run: RunRecord,
    /// Its stored plan.
    pub plan: Arc<Plan>,
}

/// What `resumable` found.
pub enum ResumeCheck {
    /// The run finished already: nothing to do.
    Finished(RunRecord),
    /// The run stopped or died: it can be resumed.
    Resumable(Resumable),
}

/// The knobs of one execution that the front end owns.
pub struct ExecuteOptions {
    /// The most users' pipelines that run at once (`execute::MAX_PIPELINES` unless the
    /// operator lowers it): the throttle's in-flight limit sets how many do.
    pub concurrency: usize,
    /// Set to true to start no new user (first Ctrl-C).
    pub stop: watch::Receiver<bool>,
    /// Live counters for a progress display.
    pub progress: Arc<Progress>,
    /// Delivers notices and the secrets steps create.
    pub notifier: Arc<dyn Notifier>,
}

/// How a plan is made, beyond the playbook and the tenant.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// CSV override and bad-row policy.
    pub resolve: ResolveOptions,
    /// Where the plan's files go (default: the run's own folder).
    pub out: Option<PathBuf>,
    /// Replace files already in `out`.
    pub overwrite: bool,
    /// A deliberate second wave: plan users that earlier runs remediated within the window.
    pub include_remediated: bool,
    /// Leave out reads only the plan's recovery counts use (see [`PlanRequest`]).
    pub skip_report_only_reads: bool,
}

/// How an execution ended.
pub struct Executed {
    /// The run.
    pub run: RunId,
    /// What happened, user by user.
    pub summary: Summary,
    /// Wall time of this attempt.
    pub elapsed: Duration,
    /// Where `results.csv` was written.
    pub results: PathBuf,
    /// The run's summary (also written as `summary.md` beside `results.csv`).
    pub report: report::RunReport,
}

/// An approval recorded, with the count it brings the plan to.
pub struct ApprovalReceipt {
    /// The approval.
    pub approval: Approval,
    /// Distinct approvals of this plan so far.
    pub count: usize,
}

/// The audit trail as the lifecycle uses it: the writer, and the settings it was opened
/// with (to look records up). Cheap to clone: the writer is a shared handle.
#[derive(Clone)]
pub struct Trail {
    /// The writer.
    pub handle: AuditHandle,
    /// Where the trail lives and its key.
    pub config: AuditConfig,
}

/// The run lifecycle over one run store and one audit trail, acting as one operator.
pub struct Lifecycle<S> {
    store: Arc<S>,
    audit: AuditHandle,
    trail: AuditConfig,
    operator: Operator,
    runs_dir: PathBuf,
    ticket: Option<Ticket>,
}

impl<S: RunStore + 'static> Lifecycle<S> {
    /// A lifecycle acting (and recorded) as `operator`; run files go under
    /// `runs_dir/RUN_ID/` unless a command names a directory.
    pub fn new(store: Arc<S>, trail: Trail, operator: Operator, runs_dir: PathBuf) -> Self {
        Lifecycle {
            store,
            audit: trail.handle,
            trail: trail.config,
            operator,
            runs_dir,
            ticket: None,
        }
    }

    /// Plan under the incident ticket `ticket` (`--ticket`): the run stores it (a planned run
    /// planned again takes the new one), and every audit record about the run carries it.
    pub fn with_ticket(mut self, ticket: Option<Ticket>) -> Self {
        self.ticket = ticket;
        self
    }

    /// Who this lifecycle acts as.
    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    /// The run store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The audit trail this lifecycle records to.
    pub fn audit(&self) -> &AuditHandle {
        &self.audit
    }

    /// Flush and close the audit trail.
    pub async fn close(&self) -> Result<(), AuditError> {
        self.audit.close().await
    }

    /// Plan `source` against `tenant` and store it as a run, reusing a planned (never
    /// executed) run of the same plan so approvals gathered for it still attach; write
    /// `plan.json`, `targets.csv` and `manual-queue.csv` (over files already in an `out` the
    /// operator named only with `overwrite`). Users that earlier runs on this tenant
    /// remediated within the playbook's `guards.remediated_within` go to the `remediated`
    /// bucket unless a second wave is asked for. Read-only towards the tenant.
    pub async fn plan(
        &self,
        tenant: TenantRef<'_>,
        source: &PlaybookSource,
        options: PlanOptions,
    ) -> Result<PlannedRun, LifecycleError> {
        let PlanOptions {
            resolve,
            out,
            overwrite,
            include_remediated,
            skip_report_only_reads,
        } = options;
        let on_existing = out_files(out.as_deref(), overwrite);
        let include_remediated = include_remediated || source.playbook.guards.include_remediated;
        // A deliberate second wave plans everyone: the earlier runs need not be read.
        let remediated = if include_remediated {
            HashMap::new()
        } else {
            self.recently_remediated(tenant, &source.playbook).await?
        };
        let plan = planner::build_plan(
            tenant.directory.as_ref(),
            PlanRequest {
                playbook: &source.playbook,
                tenant: tenant.name,
                apps: tenant.apps,
                quotas: tenant.quotas,
                runner_accounts: tenant.runner_accounts,
                resolve,
                remediated: &remediated,
                include_remediated,
                skip_report_only_reads,
            },
        )
        .await?;
        let plan = Arc::new(plan);
        let hash = plan.hash();
        let existing = self
            .store
            .runs()
            .await?
            .into_iter()
            .find(|r| r.plan_hash == hash && r.status == RunStatus::Planned);
        let id = existing
            .as_ref()
            .map_or_else(|| RunId::generate(Timestamp::now()), |run| run.id.clone());
        let out = out.unwrap_or_else(|| self.runs_dir.join(&id.0));
        // The plan's files and its stored copy are independent: write both at once.
        let files = tokio::task::spawn_blocking({
            let (plan, out) = (Arc::clone(&plan), out.clone());
            move || write_plan_files(&plan, &out, on_existing)
        });
        let reused = existing.is_some();
        let run = match existing {
            Some(mut run) => {
                let ticket = self.ticket.as_ref().map(|t| t.as_str().to_owned());
                if ticket.is_some() && ticket != run.ticket {
                    self.store.set_ticket(&run.id, ticket.clone()).await?;
                    run.ticket = ticket;
                }
                run
            }
            None => {
                self.store
                    .create_run(NewRun {
                        id: id.clone(),
                        created_at: Timestamp::now(),
                        playbook_name: source.playbook.name.clone(),
                        playbook_path: source.path.display().to_string(),
                        tenant: tenant.name.to_owned(),
                        plan_hash: hash.clone(),
                        plan: PlanDocument::of(Arc::clone(&plan)),
                    })
                    .await?;
                if let Some(ticket) = &self.ticket {
                    let ticket = Some(ticket.as_str().to_owned());
                    self.store.set_ticket(&id, ticket).await?;
                }
                let details = Details::new()
                    .with("plan_hash", hash.as_str())
                    .and_then(|d| d.with("playbook", source.playbook.name.as_str()))
                    .and_then(|d| d.with("tenant", tenant.name))
                    .and_then(|d| d.with("users", plan.users.len() as u64))
                    .and_then(|d| d.with("automated", gate::automated(&plan) as u64));
                self.record("run.plan", &id, audit::Outcome::Success, details)
                    .await?;
                self.store.run(&id).await?
            }
        };
        files.await.map_err(|e| LifecycleError::Files {
            path: out.clone(),
            message: e.to_string(),
        })??;
        Ok(PlannedRun {
            reused,
            ..PlannedRun::of(source, plan, run, out, on_existing)
        })
    }

    /// Users that runs on `tenant` wrote to within the playbook's window, by lower-case id.
    /// A tenant that starts afresh each time (the demo) has no history to respect.
    async fn recently_remediated(
        &self,
        tenant: TenantRef<'_>,
        playbook: &Playbook,
    ) -> Result<HashMap<String, Remediated>, LifecycleError> {
        let window = playbook.guards.remediated_within;
        if tenant.ephemeral || window.is_zero() {
            return Ok(HashMap::new());
        }
        let window = jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX);
        let since = Timestamp::now()
            .checked_sub(window)
            .unwrap_or(Timestamp::MIN);
        Ok(self
            .store
            .remediated_since(tenant.name, since)
            .await?
            .into_iter()
            .map(|r| (r.user_id.to_ascii_lowercase(), r))
            .collect())
    }

    /// Record `approver`'s approval of run `id`'s plan. The trail record comes first and
    /// the stored approval names it (seq and hash), so an approval the trail does not show
    /// never counts; a store failure after the record is recorded too. Only a planned run
    /// takes approvals, and an operator approves a plan once.
    pub async fn approve(
        &self,
        id: &RunId,
        approver: &Operator,
    ) -> Result<ApprovalReceipt, LifecycleError> {
        let run = self.store.run(id).await?;
        let name = approver.name.as_str();
        let details = Details::new()
            .with("plan_hash", run.plan_hash.as_str())
            .and_then(|d| d.with("playbook", run.playbook_name.as_str()))
            .and_then(|d| d.with("origin", approver.origin.as_str()))?;
        let details = match &run.ticket {
            Some(ticket) => details.with("ticket", ticket.as_str())?,
            None => details,
        };
        let duplicate = self
            .store
            .approvals(id)
            .await?
            .iter()
            .any(|a| a.operator == name && a.plan_hash == run.plan_hash);
        let refusal = if run.status != RunStatus::Planned {
            Some(LifecycleError::NotApprovable {
                run: id.clone(),
                status: run.status,
            })
        } else if duplicate {
            Some(LifecycleError::Store(StoreError::DuplicateApproval {
                run: id.clone(),
                operator: name.to_owned(),
            }))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            // A refused attempt is recorded as refused: it is not an approval.
            let event = Event::new(name, "run.approve", id.0.as_str(), audit::Outcome::Refused)?
                .with_details(details.with("reason", refusal.to_string().as_str())?);
            self.audit.record(event).await?;
            return Err(refusal);
        }
        let event = Event::new(name, "run.approve", id.0.as_str(), audit::Outcome::Success)?
            .with_details(details.clone());
        let receipt = self.audit.record(event).await?;
        let stored = self
            .store
            .approve(
                id,
                NewApproval {
                    operator: name.to_owned(),
                    origin: approver.origin.clone(),
                    audit: (receipt.seq, receipt.hash),
                    at: Timestamp::now(),
                },
            )
            .await;
        let approval = match stored {
            Ok(approval) => approval,
            Err(err) => {
                // The record above announced an approval the store does not hold: say so,
                // so the trail never claims more than the gate will count.
                let void = details.with("error", err.to_string().as_str())?;
                let event =
                    Event::new(name, "run.approve", id.0.as_str(), audit::Outcome::Failure)?
                        .with_details(void);
                self.audit.record(event).await?;
                return Err(err.into());
            }
        };
        let count = self
            .store
            .approvals(id)
            .await?
            .iter()
            .filter(|a| a.plan_hash == run.plan_hash && a.consumed_at.is_none())
            .count();
        Ok(ApprovalReceipt { approval, count })
    }

    /// What `--execute` would be refused for, without recording anything: the guards and
    /// whether the notifier can deliver the playbook's secrets (a dry run shows these).
    pub fn would_refuse(&self, planned: &PlannedRun, notifier: &dyn Notifier) -> Vec<Refusal> {
        gate::check_guards(&planned.playbook, &planned.plan, notifier)
    }

    /// The gate between a plan and its execution: no unfinished run on the tenant that
    /// writes to any of the same users (it must be resumed, not started again), the guards,
    /// and the approvals of this run's exact plan — each shown by the audit trail, none by
    /// the executing operator, none used by an earlier execution. A refusal is audited, then
    /// returned.
    pub async fn gate(
        &self,
        planned: PlannedRun,
        notifier: &dyn Notifier,
    ) -> Result<Cleared, LifecycleError> {
        let mut refusals = self.unfinished_overlaps(&planned).await?;
        refusals.extend(gate::check_guards(
            &planned.playbook,
            &planned.plan,
            notifier,
        ));
        refusals.extend(self.approval_refusals(&planned).await?);
        if refusals.is_empty() {
            return Ok(Cleared {
                planned,
                first: true,
            });
        }
        let reasons = join(&refusals).replace("\n  - ", "; ");
        let details = Details::new()
            .with("reasons", reasons.as_str())
            .and_then(|d| d.with("plan_hash", planned.run.plan_hash.as_str()));
        self.record(
            "run.refused",
            &planned.run.id,
            audit::Outcome::Refused,
            details,
        )
        .await?;
        Err(LifecycleError::Refused {
            run: planned.run.id,
            refusals,
        })
    }

    /// Unfinished runs on the same tenant whose users overlap this plan's.
    async fn unfinished_overlaps(
        &self,
        planned: &PlannedRun,
    ) -> Result<Vec<Refusal>, LifecycleError> {
        let ours: HashSet<&str> = planned
            .plan
            .users
            .iter()
            .filter(|u| !u.steps.is_empty())
            .map(|u| u.id.as_str())
            .collect();
        let mut refusals = Vec::new();
        for run in self.store.runs().await? {
            let unfinished = run.status.unfinished();
            if !unfinished || run.tenant != planned.run.tenant || run.id == planned.run.id {
                continue;
            }
            let shared = match self.stored_plan(&run.id).await {
                Ok(plan) => plan
                    .users
                    .iter()
                    .filter(|u| !u.steps.is_empty() && ours.contains(u.id.as_str()))
                    .count(),
                // A plan that cannot be read cannot be shown to be disjoint.
                Err(_) => ours.len(),
            };
            if shared > 0 {
                refusals.push(Refusal::Unfinished {
                    run: run.id,
                    shared,
                });
            }
        }
        Ok(refusals)
    }

    /// The approvals requirement of `planned`, with the drift from an approved plan of the
    /// same playbook when the targets changed after approval.
    async fn approval_refusals(
        &self,
        planned: &PlannedRun,
    ) -> Result<Vec<Refusal>, LifecycleError> {
        let run = &planned.run;
        if planned.playbook.guards.approvals_required == 0 {
            return Ok(Vec::new());
        }
        let approvals = self.store.approvals(&run.id).await?;
        let wanted: BTreeSet<u64> = approvals
            .iter()
            .filter_map(|a| a.audit.as_ref().map(|(seq, _)| *seq))
            .collect();
        let records = audit::find(&self.trail, &wanted)?;
        let trail_shows = |approval: &Approval| {
            approval.audit.as_ref().is_some_and(|(seq, hash)| {
                records.get(seq).is_some_and(|record| {
                    &record.hash == hash
                        && record.action == "run.approve"
                        && record.actor == approval.operator
                        && record.subject == run.id.0
                        && record.outcome == audit::Outcome::Success
                })
            })
        };
        let mut refusals = gate::check_approvals(
            &planned.playbook,
            &run.id,
            &run.plan_hash,
            &approvals,
            self.operator.name.as_str(),
            &trail_shows,
        );
        if let Some(Refusal::NeedsApprovals { drift, .. }) = refusals.first_mut() {
            *drift = self.drift(planned).await?;
        }
        Ok(refusals)
    }

    /// How `planned` differs from the newest other planned run of the same playbook on the
    /// same tenant that has approvals, if any.
    async fn drift(&self, planned: &PlannedRun) -> Result<Option<Drift>, LifecycleError> {
        for run in self.store.runs().await? {
            let same_playbook =
                run.playbook_name == planned.run.playbook_name && run.tenant == planned.run.tenant;
            if !same_playbook
                || run.id == planned.run.id
                || run.plan_hash == planned.run.plan_hash
                || run.status != RunStatus::Planned
                || self.store.approvals(&run.id).await?.is_empty()
            {
                continue;
            }
            let approved = self.stored_plan(&run.id).await?;
            return Ok(Some(Drift::between(run.id, &approved, &planned.plan)));
        }
        Ok(None)
    }

    /// A stored plan, parsed.
    async fn stored_plan(&self, id: &RunId) -> Result<Plan, LifecycleError> {
        let json = self.store.plan_json(id).await?;
        serde_json::from_str(&json).map_err(|e| LifecycleError::NotResumable {
            run: id.clone(),
            reason: format!("the stored plan is unreadable: {e}"),
        })
    }

    /// The first checks of `run --resume`: the run exists, was executed, and its stored
    /// plan reads back.
    pub async fn resumable(&self, id: &RunId) -> Result<ResumeCheck, LifecycleError> {
        let run = self.store.run(id).await?;
        match run.status {
            RunStatus::Finished => return Ok(ResumeCheck::Finished(run)),
            RunStatus::Planned => {
                return Err(LifecycleError::NotResumable {
                    run: id.clone(),
                    reason:
                        "it was never executed; start it with `resetctl run PLAYBOOK --execute`"
                            .into(),
                });
            }
            RunStatus::Running | RunStatus::Stopped | RunStatus::Interrupted => {}
        }
        let json = self.store.plan_json(id).await?;
        let plan: Plan = serde_json::from_str(&json).map_err(|e| LifecycleError::NotResumable {
            run: id.clone(),
            reason: format!("the stored plan is unreadable: {e}"),
        })?;
        Ok(ResumeCheck::Resumable(Resumable {
            run,
            plan: Arc::new(plan),
        }))
    }

    /// Clear a resumable run for execution: the playbook is byte-for-byte the one planned,
    /// and the tenant kept its state. Audited as `run.resume`.
    pub async fn resume(
        &self,
        resumable: Resumable,
        source: &PlaybookSource,
        tenant: TenantRef<'_>,
        out: Option<PathBuf>,
        overwrite: bool,
    ) -> Result<Cleared, LifecycleError> {
        let on_existing = out_files(out.as_deref(), overwrite);
        let Resumable { run, plan } = resumable;
        if source.digest() != plan.playbook_sha256 {
            return Err(LifecycleError::NotResumable {
                run: run.id,
                reason: format!(
                    "{} changed since the run was planned; resume needs the same playbook",
                    source.path.display()
                ),
            });
        }
        if tenant.ephemeral {
            return Err(LifecycleError::EphemeralTenant {
                run: run.id,
                tenant: tenant.name.to_owned(),
            });
        }
        self.record(
            "run.resume",
            &run.id,
            audit::Outcome::Attempt,
            Ok(Details::new()),
        )
        .await?;
        let out = out.unwrap_or_else(|| self.runs_dir.join(&run.id.0));
        Ok(Cleared {
            planned: PlannedRun::of(source, plan, run, out, on_existing),
            first: false,
        })
    }

    /// Execute a cleared run: status `running`, `run.execute` audited, every user's steps
    /// (journaled, resumable), then status `finished` or `stopped`, `results.csv`, and
    /// `run.end` audited.
    pub async fn execute(
        &self,
        cleared: Cleared,
        tenant: TenantRef<'_>,
        options: ExecuteOptions,
    ) -> Result<Executed, LifecycleError> {
        let Cleared { planned, first } = cleared;
        let PlannedRun {
            playbook,
            plan,
            run,
            out,
            on_existing,
            ..
        } = planned;
        if first {
            // Atomically: the run leaves `planned` and its approvals are used up, so the
            // same approvals cannot start a second execution, here or in another process.
            self.store
                .begin_execution(&run.id, Timestamp::now())
                .await?;
        } else {
            self.store
                .set_status(&run.id, RunStatus::Running, Timestamp::now())
                .await?;
        }
        let details = Details::new()
            .with("plan_hash", run.plan_hash.as_str())
            .and_then(|d| d.with("users", gate::automated(&plan) as u64));
        let opened = self
            .record("run.execute", &run.id, audit::Outcome::Attempt, details)
            .await?;
        let attempt = self
            .store
            .begin_attempt(&run.id, Timestamp::now(), Some(opened.seq))
            .await?;
        // Graph's write buckets remember this runner's writes of the last window, whichever
        // run or process made them: start from what they left, not from full.
        let window = tenant
            .quotas
            .app_write
            .window
            .max(tenant.quotas.tenant_write.window);
        let now = Timestamp::now();
        let since = now
            .checked_sub(jiff::SignedDuration::try_from(window).unwrap_or_default())
            .unwrap_or(now);
        let recent = self.store.writes_since(tenant.name, since).await?;
        tenant.directory.recent_writes(&recent);
        let progress = Arc::clone(&options.progress);
        let started = Instant::now();
        let summary = execute::execute(Execution {
            directory: Arc::clone(tenant.directory),
            store: Arc::clone(&self.store),
            audit: self.audit.clone(),
            playbook,
            plan: Arc::clone(&plan),
            run: run.id.clone(),
            actor: self.operator.name.to_string(),
            concurrency: options.concurrency,
            stop: options.stop,
            progress: options.progress,
            notifier: options.notifier,
            ticket: run.ticket.clone(),
        })
        .await?;
        let elapsed = started.elapsed();
        let read_backs = progress
            .read_backs
            .load(std::sync::atomic::Ordering::Relaxed);
        let status = if summary.users_not_started == 0 {
            RunStatus::Finished
        } else {
            RunStatus::Stopped
        };
        self.store
            .set_status(&run.id, status, Timestamp::now())
            .await?;
        let results = out.join("results.csv");
        let files = |e: &dyn std::fmt::Display| LifecycleError::Files {
            path: out.clone(),
            message: e.to_string(),
        };
        crate::files::create_dir_owner_only(&out).map_err(|e| files(&e))?;
        report::write_results(&plan, &summary.results, &results, on_existing)
            .map_err(|e| files(&e))?;
        let details = Details::new()
            .with("succeeded", summary.count(Outcome::Succeeded) as u64)
            .and_then(|d| d.with("failed", summary.count(Outcome::Failed) as u64))
            .and_then(|d| d.with("manual_check", summary.count(Outcome::ManualCheck) as u64))
            .and_then(|d| d.with("not_started", summary.users_not_started as u64))
            .and_then(|d| d.with("tripped", summary.tripped))
            .and_then(|d| d.with("throttled", summary.throttled))
            .and_then(|d| d.with("read_backs", read_backs))
            .and_then(|d| {
                let refused: Vec<&str> = summary.refused.iter().map(|r| r.step.as_str()).collect();
                d.with("refused_steps", refused.join(",").as_str())
            });
        let outcome = if summary.complete_success() {
            audit::Outcome::Success
        } else {
            audit::Outcome::Failure
        };
        let closed = self.record("run.end", &run.id, outcome, details).await?;
        let end = AttemptEnd {
            ended_at: Timestamp::now(),
            status,
            throttled: summary.throttled,
            read_backs,
            last_seq: Some(closed.seq),
        };
        self.store.end_attempt(&run.id, attempt, end).await?;
        let approvals = self.store.approvals(&run.id).await?;
        let attempts = self.store.attempts(&run.id).await?;
        let report = report::RunReport::new(report::ReportInputs {
            run: &run,
            status,
            plan: &plan,
            playbook_path: &run.playbook_path,
            results: &summary.results,
            tripped: summary.tripped,
            stopped: summary.stopped,
            refused: &summary.refused,
            operator: self.operator.name.as_str(),
            approvals: &approvals,
            attempts: &attempts,
            trail: &self.trail.path,
            out: &out,
        });
        report::write_summary(&report, &report.files.summary, on_existing)
            .map_err(|e| files(&e))?;
        Ok(Executed {
            run: run.id,
            summary,
            elapsed,
            results,
            report,
        })
    }

    /// Mark run `id`, whose execution is being abandoned at once (a second Ctrl-C), as
    /// `interrupted`: resumable, never left `running`. Its open attempt ends now (with the
    /// 429s and read-backs it saw) and `run.interrupted` is recorded. Steps in flight keep
    /// their journaled intents; `--resume` reads them back.
    pub async fn interrupt(
        &self,
        id: &RunId,
        throttled: u64,
        read_backs: u64,
    ) -> Result<(), LifecycleError> {
        let now = Timestamp::now();
        self.store
            .set_status(id, RunStatus::Interrupted, now)
            .await?;
        let details = Details::new()
            .with("throttled", throttled)
            .and_then(|d| d.with("read_backs", read_backs));
        let receipt = self
            .record("run.interrupted", id, audit::Outcome::Failure, details)
            .await?;
        let open = self
            .store
            .attempts(id)
            .await?
            .into_iter()
            .rev()
            .find(|a| a.end.is_none());
        if let Some(open) = open {
            let end = AttemptEnd {
                ended_at: now,
                status: RunStatus::Interrupted,
                throttled,
                read_backs,
                last_seq: Some(receipt.seq),
            };
            self.store.end_attempt(id, open.n, end).await?;
        }
        Ok(())
    }

    /// The preflight of a cleared run, before its first write: every app's token, the
    /// application permissions the plan's steps need, and the directory role a password
    /// reset needs ([`preflight`]). Audited as `run.preflight`; a missing one refuses the
    /// run ([`LifecycleError::Preflight`]).
    pub async fn preflight(
        &self,
        cleared: &Cleared,
        tenant: TenantRef<'_>,
    ) -> Result<preflight::Report, LifecycleError> {
        let planned = &cleared.planned;
        let keys: BTreeSet<&str> = planned
            .plan
            .users
            .iter()
            .flat_map(|u| u.steps.iter().map(String::as_str))
            .collect();
        let steps = keys
            .into_iter()
            .filter_map(|key| {
                let step = StepKey::parse(key).and_then(|k| k.step(&planned.playbook))?;
                Some((key.to_owned(), step))
            })
            .collect();
        let scope = preflight::Scope {
            steps,
            planning: Vec::new(),
            reach_graph: false,
        };
        let report = preflight::check(tenant.directory.as_ref(), &scope).await;
        let missing = report.missing_lines();
        let outcome = if missing.is_empty() {
            audit::Outcome::Success
        } else {
            audit::Outcome::Refused
        };
        let details = Details::new()
            .with("checks", report.checks.len() as u64)
            .and_then(|d| d.with("missing", missing.join("; ").as_str()));
        self.record("run.preflight", &planned.run.id, outcome, details)
            .await?;
        if missing.is_empty() {
            Ok(report)
        } else {
            Err(LifecycleError::Preflight {
                run: planned.run.id.clone(),
                missing,
            })
        }
    }

    /// Append one `run.*` event about `run` as this lifecycle's actor.
    async fn record(
        &self,
        action: &str,
        run: &RunId,
        outcome: audit::Outcome,
        details: Result<Details, AuditError>,
    ) -> Result<Receipt, LifecycleError> {
        let mut details = details?.with("origin", self.operator.origin.as_str())?;
        if let Some(ticket) = self.store.run(run).await?.ticket {
            details = details.with("ticket", ticket.as_str())?;
        }
        let event = Event::new(self.operator.name.as_str(), action, run.0.as_str(), outcome)?
            .with_details(details);
        Ok(self.audit.record(event).await?)
    }
}

/// `plan.json`, `targets.csv` and `manual-queue.csv` under `out`, created owner-only.
fn write_plan_files(
    plan: &Plan,
    out: &Path,
    existing: report::Existing,
) -> Result<(), LifecycleError> {
    let fail = |err: &dyn std::fmt::Display| LifecycleError::Files {
        path: out.to_path_buf(),
        message: err.to_string(),
    };
    crate::files::create_dir_owner_only(out).map_err(|e| fail(&e))?;
    report::write_plan_json(plan, &out.join("plan.json"), existing).map_err(|e| fail(&e))?;
    report::write_targets(plan, &out.join("targets.csv"), existing).map_err(|e| fail(&e))?;
    report::write_manual_queue(plan, &out.join("manual-queue.csv"), existing)
        .map_err(|e| fail(&e))?;
    Ok(())
}
