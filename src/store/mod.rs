//! The run store: runs, their plans, approvals, and the per-user per-step journal.
//!
//! The journal is what makes a mass reset resumable without doing any user twice: each
//! (run, user, step) happens at most once, and every planned one happens or is reported.
//! Before the engine calls Graph for a (run, user, step) it records the *intent*, durably;
//! after the call it records the *outcome*. A row with an intent and no outcome is exactly
//! the set of writes whose fate is unknown after a crash, and `--resume` resolves those by
//! reading the tenant back — never by repeating them.
//!
//! [`RunStore`] is the trait the engine talks to; [`SqliteStore`] is the implementation
//! (SQLite in WAL mode, one writer thread with group commit so that thousands of concurrent
//! user pipelines do not each pay an fsync).
//!
//! The store is also the audit trail's second witness ([`StoreWitness`], table
//! `audit_witness`): it remembers how far each trail got, so a trail deleted or cut short with
//! its head is noticed.
//!
//! Invariant: a (run, user, step) has at most one journal row. The primary key enforces
//! it, and [`RunStore::record_intent`] reports an existing row instead of overwriting it.
//!
//! What the engine must read back from a row besides its outcome is typed ([`Facts`], in
//! columns of its own), never parsed out of the free-text `detail`, which is for people.

mod open_runs;
mod schema;
mod sqlite;
pub mod stats;
mod timed;
mod verify_requests;
mod verify_tokens;
mod witness;

use std::future::Future;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use sqlite::SqliteStore;
pub use timed::{Busy, TimedStore};
pub use witness::StoreWitness;

/// Identifies one run; printed to operators and passed to `--resume` and `runs approve`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

impl RunId {
    /// A fresh, sortable run id: UTC time to the second plus random bits, e.g.
    /// `20261123T104501Z-3f9a2c`. Sortable so `runs list` reads in order.
    pub fn generate(now: Timestamp) -> RunId {
        let time = now.strftime("%Y%m%dT%H%M%SZ");
        let random: u32 = rand::random();
        RunId(format!("{time}-{:06x}", random & 0x00ff_ffff))
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that `{:<26}` lines up the columns of `runs list`.
        f.pad(&self.0)
    }
}

/// Where a run stands. Stored as text; the engine moves it forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Planned, not executing (a dry run ends here too).
    Planned,
    /// Executing now, or died while executing (resume continues it).
    Running,
    /// Stopped by the operator (Ctrl-C) or by the circuit breaker; resumable.
    Stopped,
    /// Aborted by a second Ctrl-C: users in flight were cut off (the journal holds their
    /// intents); resumable like a stopped run.
    Interrupted,
    /// Every planned (user, step) has an outcome.
    Finished,
}

impl RunStatus {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Planned => "planned",
            RunStatus::Running => "running",
            RunStatus::Stopped => "stopped",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Finished => "finished",
        }
    }

    /// True for a run that began executing and did not finish (running, or died running,
    /// stopped, interrupted): it must be resumed, never started again.
    pub fn unfinished(self) -> bool {
        matches!(
            self,
            RunStatus::Running | RunStatus::Stopped | RunStatus::Interrupted
        )
    }

    fn parse(text: &str) -> Option<RunStatus> {
        Some(match text {
            "planned" => RunStatus::Planned,
            "running" => RunStatus::Running,
            "stopped" => RunStatus::Stopped,
            "interrupted" => RunStatus::Interrupted,
            "finished" => RunStatus::Finished,
            _ => return None,
        })
    }
}

/// A run's plan as the store receives it: something that writes its JSON. The store writes
/// it straight into the database, so a million-user plan (hundreds of megabytes) is never
/// held as one string. It is called twice (once to measure, once to write), so it must
/// write the same bytes each time.
#[derive(Clone)]
pub struct PlanDocument(Arc<WritePlan>);

/// What writes a plan's JSON.
type WritePlan = dyn Fn(&mut dyn std::io::Write) -> std::io::Result<()> + Send + Sync;

impl PlanDocument {
    /// The JSON of `value` (a plan), serialized when the store writes it.
    pub fn of<T: Serialize + Send + Sync + 'static>(value: Arc<T>) -> PlanDocument {
        PlanDocument(Arc::new(move |out| {
            serde_json::to_writer(out, value.as_ref()).map_err(std::io::Error::other)
        }))
    }

    /// JSON text already at hand (tests, small plans).
    pub fn text(json: impl Into<String>) -> PlanDocument {
        let json: String = json.into();
        PlanDocument(Arc::new(move |out| out.write_all(json.as_bytes())))
    }

    /// Write the document to `out`.
    pub fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        (self.0)(out)
    }
}

impl std::fmt::Debug for PlanDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanDocument")
    }
}

/// What the engine stores when it creates a run.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The run's id (see [`RunId::generate`]).
    pub id: RunId,
    /// When the run was planned.
    pub created_at: Timestamp,
    /// The playbook's `name`.
    pub playbook_name: String,
    /// The playbook file as given, for operators reading `runs show`.
    pub playbook_path: String,
    /// Tenant name (`demo` for the embedded tenant).
    pub tenant: String,
    /// SHA-256 of the canonical plan; approvals are bound to it.
    pub plan_hash: String,
    /// The plan itself, so `--resume` needs nothing else.
    pub plan: PlanDocument,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    /// The run's id.
    pub id: RunId,
    /// When it was planned.
    pub created_at: Timestamp,
    /// When its status last changed.
    pub updated_at: Timestamp,
    /// The playbook's `name`.
    pub playbook_name: String,
    /// The playbook file as given.
    pub playbook_path: String,
    /// Tenant name.
    pub tenant: String,
    /// SHA-256 of the plan.
    pub plan_hash: String,
    /// Where the run stands.
    pub status: RunStatus,
    /// The incident ticket the run is carried out under (`--ticket`), if any.
    pub ticket: Option<String>,
}

/// One execution attempt of a run: the first `--execute`, then each `--resume`. A resumed
/// run's time is the sum of its attempts'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// 1 for the first execution, then 2, 3, ... for each resume.
    pub n: u32,
    /// When it started executing.
    pub started_at: Timestamp,
    /// How it ended; `None` while it runs, or when its process died without recording it.
    pub end: Option<AttemptEnd>,
    /// The audit record that opened it (`run.execute`), by seq.
    pub first_seq: Option<u64>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptEnd {
    /// When.
    pub ended_at: Timestamp,
    /// The run's status it left (finished, stopped, interrupted).
    pub status: RunStatus,
    /// Responses Graph answered 429 during it.
    pub throttled: u64,
    /// Writes whose outcome was established by reading the tenant back during it.
    pub read_backs: u64,
    /// The last audit record it wrote (`run.end` or `run.interrupted`), by seq.
    pub last_seq: Option<u64>,
}

/// One operator's approval of one exact plan, for one execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// Who approved: the normalised operator name.
    pub operator: String,
    /// The plan hash that was approved; an approval of another plan does not count.
    pub plan_hash: String,
    /// When.
    pub approved_at: Timestamp,
    /// Where the approval came from (for example `cli alice@ws-042`); empty for approvals
    /// stored before origins were recorded.
    pub origin: String,
    /// The audit record that announced it, as (seq, hash): the gate counts an approval only
    /// when the trail shows that record. `None` for approvals stored before this binding.
    pub audit: Option<(u64, String)>,
    /// When an execution started on it: an approval authorises one execution.
    pub consumed_at: Option<Timestamp>,
}

/// An approval to store.
#[derive(Debug, Clone)]
pub struct NewApproval {
    /// The normalised operator name.
    pub operator: String,
    /// Where it came from.
    pub origin: String,
    /// The audit record that announced it (seq, hash).
    pub audit: (u64, String),
    /// When.
    pub at: Timestamp,
}

/// The outcome of one (user, step) call, as journaled after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Graph accepted the write.
    Succeeded,
    /// Graph refused it, or it could not be made; not retried automatically.
    Failed,
    /// The step's `when:` did not hold, or it was not applicable; nothing was written.
    Skipped,
    /// The call's fate could not be established, even by reading back: an operator
    /// must check this user by hand. Never repeated automatically.
    ManualCheck,
}

impl Outcome {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::ManualCheck => "manual_check",
        }
    }

    fn parse(text: &str) -> Option<Outcome> {
        Some(match text {
            "succeeded" => Outcome::Succeeded,
            "failed" => Outcome::Failed,
            "skipped" => Outcome::Skipped,
            "manual_check" => Outcome::ManualCheck,
            _ => return None,
        })
    }
}

/// Typed facts of a journal row, recorded with its intent and refined before its write:
/// what `runs expire` and a resumed run must know about a write besides its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Facts {
    /// An `add_to_group` step's membership.
    Membership(Membership),
    /// An attempt to end the membership another row of the same run and user made.
    Removal(Removal),
    /// The directory refused the write (HTTP 403) before applying it, and the run stopped
    /// for it with the row left open: a resume makes the write, reading nothing back.
    Refused,
}

/// The membership an `add_to_group` step is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    /// The group.
    pub group_id: String,
    /// When the membership is to end.
    pub until: Timestamp,
    /// Whether the user was already a direct member before the step's write: `None` until
    /// the group has been read (so no write was sent yet), or when it could not be known
    /// (rows written before this was recorded). A membership that existed before is never
    /// the run's to remove.
    pub member_before: Option<bool>,
}

/// An attempt to end a membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// The group.
    pub group_id: String,
    /// The journal key of the `add_to_group` step that made the membership.
    pub of_step: String,
}

/// One journal row: a (run, user, step) with its intent and, once known, its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    /// The user's directory object id.
    pub user_id: String,
    /// The step's key in the plan (e.g. `1:reset_password`).
    pub step: String,
    /// When the intent was recorded (before the call).
    pub intent_at: Timestamp,
    /// The outcome, once recorded.
    pub outcome: Option<Outcome>,
    /// When the outcome was recorded.
    pub outcome_at: Option<Timestamp>,
    /// A short, secret-free note (Graph error code, read-back evidence), for people.
    pub detail: Option<String>,
    /// The typed facts of the row, when its step has any.
    pub facts: Option<Facts>,
}

/// What [`RunStore::record_intent`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentRecorded {
    /// The intent is now durable; the caller may make the call.
    New,
    /// The (run, user, step) was journaled before: the caller must not call again, but
    /// resolve the existing entry.
    Existing(JournalEntry),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("run store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// I/O outside SQLite failed: creating the store's directory, or writing a plan.
    #[error("run store {path}: {source}")]
    Io {
        /// The database file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No run has this id.
    #[error("no run with id {0}")]
    UnknownRun(RunId),
    /// An outcome was recorded for a (user, step) that has no intent.
    #[error("run {run}: outcome for user {user_id} step {step} without a recorded intent")]
    OutcomeWithoutIntent {
        /// The run.
        run: RunId,
        /// The user.
        user_id: String,
        /// The step.
        step: String,
    },
    /// The run's execution had already begun (another process started it): an approved plan
    /// executes once.
    #[error("run {0} is not waiting to execute: it was started already")]
    AlreadyStarted(RunId),
    /// The same operator approved the same plan twice.
    #[error("{operator} has already approved run {run}")]
    DuplicateApproval {
        /// The run.
        run: RunId,
        /// The operator.
        operator: String,
    },
    /// A stored value could not be read back (the file was edited or is from a newer version).
    #[error("run store {path}: corrupt value in {what}: {value}")]
    Corrupt {
        /// The database file.
        path: String,
        /// Which column.
        what: &'static str,
        /// The value found.
        value: String,
    },
    /// The group's transaction could not be committed; nothing of this call was stored.
    #[error("run store commit failed: {0}")]
    CommitFailed(String),
    /// The writer thread is gone (it panicked or the store was closed).
    #[error("run store writer stopped")]
    WriterGone,
}

/// The engine's view of run persistence. Async because journal writes are group-committed
/// by a writer thread: a call returns once its record is durable.
pub trait RunStore: Send + Sync {
    /// Store a new run with its plan, status [`RunStatus::Planned`].
    fn create_run(&self, run: NewRun) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Read one run.
    fn run(&self, id: &RunId) -> impl Future<Output = Result<RunRecord, StoreError>> + Send;

    /// All runs, newest first.
    fn runs(&self) -> impl Future<Output = Result<Vec<RunRecord>, StoreError>> + Send;

    /// The plan of run `id` as the engine serialized it (apart from [`RunRecord`]: a
    /// million-user plan is hundreds of megabytes, and listing runs must not read them).
    fn plan_json(&self, id: &RunId) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Move a run to a new status.
    fn set_status(
        &self,
        id: &RunId,
        status: RunStatus,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Record one operator's approval of the run's current plan hash.
    fn approve(
        &self,
        id: &RunId,
        approval: NewApproval,
    ) -> impl Future<Output = Result<Approval, StoreError>> + Send;

    /// Atomically move a planned run to `running` and consume its unconsumed approvals;
    /// [`StoreError::AlreadyStarted`] when the run is not `planned` (another process won).
    fn begin_execution(
        &self,
        id: &RunId,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Set (or clear) the incident ticket the run is carried out under.
    fn set_ticket(
        &self,
        id: &RunId,
        ticket: Option<String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Record that an execution attempt of run `id` started (after its `run.execute`
    /// record, seq `first_seq`); returns its number.
    fn begin_attempt(
        &self,
        id: &RunId,
        at: Timestamp,
        first_seq: Option<u64>,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Record how attempt `n` of run `id` ended (only the first end is kept).
    fn end_attempt(
        &self,
        id: &RunId,
        n: u32,
        end: AttemptEnd,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every execution attempt of run `id`, oldest first.
    fn attempts(&self, id: &RunId)
    -> impl Future<Output = Result<Vec<Attempt>, StoreError>> + Send;

    /// Every approval of the run, of any plan hash (the gate counts the matching ones).
    fn approvals(
        &self,
        id: &RunId,
    ) -> impl Future<Output = Result<Vec<Approval>, StoreError>> + Send;

    /// Durably record the intent to perform `step` for `user_id`, with the step's facts, or
    /// report the entry that already exists (its facts untouched).
    fn record_intent(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        facts: Option<Facts>,
        at: Timestamp,
    ) -> impl Future<Output = Result<IntentRecorded, StoreError>> + Send;

    /// Durably replace the facts of a journaled intent whose outcome is not recorded yet
    /// (what was read before the write); once the outcome is known the facts are history
    /// and this does nothing.
    fn record_facts(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        facts: Facts,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Durably record the outcome of a journaled intent. Recording an outcome twice keeps
    /// the first (an outcome, once known, is history).
    fn record_outcome(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        outcome: Outcome,
        detail: Option<String>,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The whole journal of a run, in intent order.
    fn journal(
        &self,
        run: &RunId,
    ) -> impl Future<Output = Result<Vec<JournalEntry>, StoreError>> + Send;

    /// Users that runs on `tenant` wrote to successfully since `since` (any step but a
    /// notice), each with the run and time of its latest such write: a new plan leaves them
    /// out unless a second wave is asked for.
    fn remediated_since(
        &self,
        tenant: &str,
        since: Timestamp,
    ) -> impl Future<Output = Result<Vec<Remediated>, StoreError>> + Send;

    /// When each directory write that runs on `tenant` journaled since `since` was made
    /// (the intent's time; notices and skipped steps are not writes), oldest first: the
    /// throttle governor estimates how full Graph's write buckets are from it, across runs
    /// and processes.
    fn writes_since(
        &self,
        tenant: &str,
        since: Timestamp,
    ) -> impl Future<Output = Result<Vec<Timestamp>, StoreError>> + Send;
}

/// A user an earlier run wrote to successfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remediated {
    /// The user's object id.
    pub user_id: String,
    /// The run that wrote to them last.
    pub run: RunId,
    /// When.
    pub at: Timestamp,
}
