//! [`SqliteStore`]: the run store on one SQLite file, with one writer thread.
//!
//! Every operation is a job sent to the thread that owns the connection. The thread takes
//! whatever jobs are queued, runs them in ONE transaction (each under its own savepoint so
//! one failing job does not undo the others), commits — one fsync for the whole group —
//! and only then answers each caller. A caller that got `Ok` from `record_intent` therefore
//! holds a durable intent, and a thousand concurrent user pipelines cost a handful of
//! fsyncs, not a thousand.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use jiff::Timestamp;
use std::io::Write;

use futures::future::BoxFuture;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, MAIN_DB, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::comms::delivery::{
    Begun, DeliveryJournal, DeliveryKey, DeliveryRecord, DeliveryState, JournalError,
};

use super::{
    Approval, Attempt, AttemptEnd, Facts, IntentRecorded, JournalEntry, Membership, NewApproval,
    NewRun, Outcome, Remediated, Removal, RunId, RunRecord, RunStatus, RunStore, StoreError,
    schema,
};

/// Most jobs committed together; bounds the latency one commit adds to the first caller.
const MAX_GROUP: usize = 512;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One request to the writer thread.
pub(super) enum Job {
    CreateRun(NewRun, Reply<()>),
    Run(RunId, Reply<RunRecord>),
    Runs(Reply<Vec<RunRecord>>),
    PlanJson(RunId, Reply<String>),
    SetStatus(RunId, RunStatus, Timestamp, Reply<()>),
    Approve(RunId, NewApproval, Reply<Approval>),
    BeginExecution(RunId, Timestamp, Reply<()>),
    Approvals(RunId, Reply<Vec<Approval>>),
    SetTicket(RunId, Option<String>, Reply<()>),
    BeginAttempt(RunId, Timestamp, Option<u64>, Reply<u32>),
    EndAttempt(RunId, u32, AttemptEnd, Reply<()>),
    Attempts(RunId, Reply<Vec<Attempt>>),
    Intent {
        run: RunId,
        user_id: String,
        step: String,
        facts: Option<Facts>,
        at: Timestamp,
        reply: Reply<IntentRecorded>,
    },
    Facts {
        run: RunId,
        user_id: String,
        step: String,
        facts: Facts,
        reply: Reply<()>,
    },
    Outcome {
        run: RunId,
        user_id: String,
        step: String,
        outcome: Outcome,
        detail: Option<String>,
        at: Timestamp,
        reply: Reply<()>,
    },
    Journal(RunId, Reply<Vec<JournalEntry>>),
    Remediated(String, Timestamp, Reply<Vec<Remediated>>),
    Writes(String, Timestamp, Reply<Vec<Timestamp>>),
    DeliveryBegin(Box<DeliveryRecord>, Reply<Begun>),
    DeliveryFinish {
        key: DeliveryKey,
        state: DeliveryState,
        provider_id: Option<String>,
        detail: Option<String>,
        at: Timestamp,
        reply: Reply<()>,
    },
    Deliveries(String, Reply<Vec<DeliveryRecord>>),
    Delivery(DeliveryKey, Reply<Option<DeliveryRecord>>),
    /// A verification request's operation (`store::verify_requests`).
    Verify(super::verify_requests::VerifyJob),
    /// An approval token's operation (`store::verify_tokens`).
    Token(super::verify_tokens::TokenJob),
}

/// The SQLite run store. Cheap to share behind an `Arc`; dropping the last handle stops
/// the writer thread after it has answered every queued job.
#[derive(Debug)]
pub struct SqliteStore {
    /// Sends jobs to the writer thread.
    jobs: mpsc::Sender<Job>,
    /// The database file, for error messages.
    path: PathBuf,
}

impl SqliteStore {
    /// Open (creating if needed) the store at `path` and start its writer thread. A new
    /// store and its folder are owner-only (SQLite gives its `-wal` and `-shm` files the
    /// database file's mode).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let display = path.display().to_string();
        let io = |source| StoreError::Io {
            path: display.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::files::create_dir_owner_only(parent).map_err(io)?;
        }
        crate::files::owner_only()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io)?;
        let sqlite = |source| StoreError::Sqlite {
            path: display.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(sqlite)?;
        schema::prepare(&conn).map_err(sqlite)?;
        let (jobs, queue) = mpsc::channel();
        let thread_path = display.clone();
        thread::Builder::new()
            .name("run-store".into())
            .spawn(move || writer(conn, &thread_path, queue))
            .map_err(|source| StoreError::Io {
                path: display,
                source,
            })?;
        Ok(SqliteStore {
            jobs,
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Job) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(make(reply))
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}

impl RunStore for SqliteStore {
    async fn create_run(&self, run: NewRun) -> Result<(), StoreError> {
        self.ask(|reply| Job::CreateRun(run, reply)).await
    }

    async fn run(&self, id: &RunId) -> Result<RunRecord, StoreError> {
        self.ask(|reply| Job::Run(id.clone(), reply)).await
    }

    async fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.ask(Job::Runs).await
    }

    async fn plan_json(&self, id: &RunId) -> Result<String, StoreError> {
        self.ask(|reply| Job::PlanJson(id.clone(), reply)).await
    }

    async fn set_status(
        &self,
        id: &RunId,
        status: RunStatus,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.ask(|reply| Job::SetStatus(id.clone(), status, at, reply))
            .await
    }

    async fn approve(&self, id: &RunId, approval: NewApproval) -> Result<Approval, StoreError> {
        self.ask(|reply| Job::Approve(id.clone(), approval, reply))
            .await
    }

    async fn begin_execution(&self, id: &RunId, at: Timestamp) -> Result<(), StoreError> {
        self.ask(|reply| Job::BeginExecution(id.clone(), at, reply))
            .await
    }

    async fn set_ticket(&self, id: &RunId, ticket: Option<String>) -> Result<(), StoreError> {
        self.ask(|reply| Job::SetTicket(id.clone(), ticket, reply))
            .await
    }

    async fn begin_attempt(
        &self,
        id: &RunId,
        at: Timestamp,
        first_seq: Option<u64>,
    ) -> Result<u32, StoreError> {
        self.ask(|reply| Job::BeginAttempt(id.clone(), at, first_seq, reply))
            .await
    }

    async fn end_attempt(&self, id: &RunId, n: u32, end: AttemptEnd) -> Result<(), StoreError> {
        self.ask(|reply| Job::EndAttempt(id.clone(), n, end, reply))
            .await
    }

    async fn attempts(&self, id: &RunId) -> Result<Vec<Attempt>, StoreError> {
        self.ask(|reply| Job::Attempts(id.clone(), reply)).await
    }

    async fn approvals(&self, id: &RunId) -> Result<Vec<Approval>, StoreError> {
        self.ask(|reply| Job::Approvals(id.clone(), reply)).await
    }

    async fn record_intent(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        facts: Option<Facts>,
        at: Timestamp,
    ) -> Result<IntentRecorded, StoreError> {
        self.ask(|reply| Job::Intent {
            run: run.clone(),
            user_id: user_id.to_owned(),
            step: step.to_owned(),
            facts,
            at,
            reply,
        })
        .await
    }

    async fn record_facts(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        facts: Facts,
    ) -> Result<(), StoreError> {
        self.ask(|reply| Job::Facts {
            run: run.clone(),
            user_id: user_id.to_owned(),
            step: step.to_owned(),
            facts,
            reply,
        })
        .await
    }

    async fn record_outcome(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        outcome: Outcome,
        detail: Option<String>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.ask(|reply| Job::Outcome {
            run: run.clone(),
            user_id: user_id.to_owned(),
            step: step.to_owned(),
            outcome,
            detail,
            at,
            reply,
        })
        .await
    }

    async fn journal(&self, run: &RunId) -> Result<Vec<JournalEntry>, StoreError> {
        self.ask(|reply| Job::Journal(run.clone(), reply)).await
    }

    async fn remediated_since(
        &self,
        tenant: &str,
        since: Timestamp,
    ) -> Result<Vec<Remediated>, StoreError> {
        self.ask(|reply| Job::Remediated(tenant.to_owned(), since, reply))
            .await
    }

    async fn writes_since(
        &self,
        tenant: &str,
        since: Timestamp,
    ) -> Result<Vec<Timestamp>, StoreError> {
        self.ask(|reply| Job::Writes(tenant.to_owned(), since, reply))
            .await
    }
}

/// An answer held back until the group's commit is known.
pub(super) type Deferred = Box<dyn FnOnce(Option<&str>) + Send>;

/// Defer `result` on `reply`: sent as is when the group commits, replaced by the commit
/// error otherwise.
pub(super) fn defer<T: Send + 'static>(reply: Reply<T>, result: Result<T, StoreError>) -> Deferred {
    Box::new(move |commit_error| {
        let answer = match commit_error {
            None => result,
            Some(message) => Err(StoreError::CommitFailed(message.to_owned())),
        };
        // The caller may have given up waiting; nothing to do then.
        let _ = reply.send(answer);
    })
}

/// The writer thread: group commit until every sender is gone.
fn writer(mut conn: Connection, path: &str, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // IMMEDIATE: take the write lock up front (waiting for other connections, such as
        // another resetctl process or the audit witness), so a job that reads then writes
        // never fails with SQLITE_BUSY when another connection committed in between.
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(err) => {
                let message = err.to_string();
                for job in group {
                    fail(job, &message);
                }
                continue;
            }
        };
        let answers: Vec<Deferred> = group
            .into_iter()
            .map(|job| in_savepoint(&tx, path, job))
            .collect();
        let commit_error = tx.commit().err().map(|err| err.to_string());
        for answer in answers {
            answer(commit_error.as_deref());
        }
    }
}

/// Answer a job that could not even start a transaction.
fn fail(job: Job, message: &str) {
    defer_error(job)(Some(message));
}

/// A deferred answer for a job that never ran: it is always invoked with the error that
/// stopped it, which replaces the placeholder result.
fn defer_error(job: Job) -> Deferred {
    let unreachable = || StoreError::CommitFailed(String::new());
    match job {
        Job::CreateRun(_, r)
        | Job::SetStatus(_, _, _, r)
        | Job::SetTicket(_, _, r)
        | Job::EndAttempt(_, _, _, r)
        | Job::Outcome { reply: r, .. }
        | Job::DeliveryFinish { reply: r, .. }
        | Job::Facts { reply: r, .. } => defer(r, Err(unreachable())),
        Job::DeliveryBegin(_, r) => defer(r, Err(unreachable())),
        Job::Deliveries(_, r) => defer(r, Err(unreachable())),
        Job::Delivery(_, r) => defer(r, Err(unreachable())),
        Job::Run(_, r) => defer(r, Err(unreachable())),
        Job::Runs(r) => defer(r, Err(unreachable())),
        Job::PlanJson(_, r) => defer(r, Err(unreachable())),
        Job::Approve(_, _, r) => defer(r, Err(unreachable())),
        Job::BeginExecution(_, _, r) => defer(r, Err(unreachable())),
        Job::Approvals(_, r) => defer(r, Err(unreachable())),
        Job::BeginAttempt(_, _, _, r) => defer(r, Err(unreachable())),
        Job::Attempts(_, r) => defer(r, Err(unreachable())),
        Job::Intent { reply, .. } => defer(reply, Err(unreachable())),
        Job::Journal(_, r) => defer(r, Err(unreachable())),
        Job::Remediated(_, _, r) => defer(r, Err(unreachable())),
        Job::Writes(_, _, r) => defer(r, Err(unreachable())),
        Job::Verify(job) => super::verify_requests::defer_error(job),
        Job::Token(job) => super::verify_tokens::defer_error(job),
    }
}

/// Run one job under a savepoint: its failure rolls back only its own changes.
fn in_savepoint(conn: &Connection, path: &str, job: Job) -> Deferred {
    if let Err(err) = conn.execute_batch("SAVEPOINT job") {
        let message = err.to_string();
        let answer = defer_error(job);
        return Box::new(move |_| answer(Some(&message)));
    }
    let (ok, answer) = execute(conn, path, job);
    let end = if ok {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    if let Err(err) = conn.execute_batch(end) {
        let message = err.to_string();
        return Box::new(move |_| answer(Some(&message)));
    }
    answer
}

/// Perform one job; returns whether it succeeded (to keep or roll back its savepoint).
fn execute(conn: &Connection, path: &str, job: Job) -> (bool, Deferred) {
    let db = Db { conn, path };
    match job {
        Job::CreateRun(run, reply) => settle(reply, db.create_run(&run)),
        Job::Run(id, reply) => settle(reply, db.run(&id)),
        Job::Runs(reply) => settle(reply, db.runs()),
        Job::PlanJson(id, reply) => settle(reply, db.plan_json(&id)),
        Job::SetStatus(id, status, at, reply) => settle(reply, db.set_status(&id, status, at)),
        Job::Approve(id, approval, reply) => settle(reply, db.approve(&id, approval)),
        Job::BeginExecution(id, at, reply) => settle(reply, db.begin_execution(&id, at)),
        Job::Approvals(id, reply) => settle(reply, db.approvals(&id)),
        Job::SetTicket(id, ticket, reply) => settle(reply, db.set_ticket(&id, ticket.as_deref())),
        Job::BeginAttempt(id, at, seq, reply) => settle(reply, db.begin_attempt(&id, at, seq)),
        Job::EndAttempt(id, n, end, reply) => settle(reply, db.end_attempt(&id, n, &end)),
        Job::Attempts(id, reply) => settle(reply, db.attempts(&id)),
        Job::Intent {
            run,
            user_id,
            step,
            facts,
            at,
            reply,
        } => settle(
            reply,
            db.record_intent(&run, &user_id, &step, facts.as_ref(), at),
        ),
        Job::Facts {
            run,
            user_id,
            step,
            facts,
            reply,
        } => settle(reply, db.record_facts(&run, &user_id, &step, &facts)),
        Job::Outcome {
            run,
            user_id,
            step,
            outcome,
            detail,
            at,
            reply,
        } => settle(
            reply,
            db.record_outcome(&run, &user_id, &step, outcome, detail.as_deref(), at),
        ),
        Job::Journal(id, reply) => settle(reply, db.journal(&id)),
        Job::DeliveryBegin(record, reply) => settle(reply, db.delivery_begin(&record)),
        Job::DeliveryFinish {
            key,
            state,
            provider_id,
            detail,
            at,
            reply,
        } => settle(
            reply,
            db.delivery_finish(&key, state, provider_id.as_deref(), detail.as_deref(), at),
        ),
        Job::Deliveries(run, reply) => settle(reply, db.deliveries(&run)),
        Job::Delivery(key, reply) => settle(reply, db.delivery(&key)),
        Job::Remediated(tenant, since, reply) => settle(reply, db.remediated_since(&tenant, since)),
        Job::Writes(tenant, since, reply) => settle(reply, db.writes_since(&tenant, since)),
        Job::Verify(job) => super::verify_requests::execute(conn, path, job),
        Job::Token(job) => super::verify_tokens::execute(conn, path, job),
    }
}

pub(super) fn settle<T: Send + 'static>(
    reply: Reply<T>,
    result: Result<T, StoreError>,
) -> (bool, Deferred) {
    (result.is_ok(), defer(reply, result))
}

/// A `deliveries` row as stored.
struct DeliveryRow {
    key: DeliveryKey,
    message_key: String,
    sender: String,
    recipient: String,
    intent_at: String,
    state: Option<String>,
    provider_id: Option<String>,
    detail: Option<String>,
}

impl TryFrom<&rusqlite::Row<'_>> for DeliveryRow {
    type Error = rusqlite::Error;

    fn try_from(row: &rusqlite::Row<'_>) -> Result<Self, Self::Error> {
        Ok(DeliveryRow {
            key: DeliveryKey {
                run: row.get(0)?,
                user_id: row.get(1)?,
                step: row.get(2)?,
                channel: row.get(3)?,
            },
            message_key: row.get(4)?,
            sender: row.get(5)?,
            recipient: row.get(6)?,
            intent_at: row.get(7)?,
            state: row.get(8)?,
            provider_id: row.get(9)?,
            detail: row.get(10)?,
        })
    }
}

/// The delivery journal of messages lives in the run store, beside the journal of writes.
impl DeliveryJournal for SqliteStore {
    fn find<'a>(
        &'a self,
        key: &'a DeliveryKey,
    ) -> BoxFuture<'a, Result<Option<DeliveryRecord>, JournalError>> {
        Box::pin(async move {
            self.ask(|reply| Job::Delivery(key.clone(), reply))
                .await
                .map_err(|e| JournalError(e.to_string()))
        })
    }

    fn begin<'a>(
        &'a self,
        record: &'a DeliveryRecord,
    ) -> BoxFuture<'a, Result<Begun, JournalError>> {
        Box::pin(async move {
            self.ask(|reply| Job::DeliveryBegin(Box::new(record.clone()), reply))
                .await
                .map_err(|e| JournalError(e.to_string()))
        })
    }

    fn finish<'a>(
        &'a self,
        key: &'a DeliveryKey,
        state: DeliveryState,
        provider_id: Option<&'a str>,
        detail: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            self.ask(|reply| Job::DeliveryFinish {
                key: key.clone(),
                state,
                provider_id: provider_id.map(str::to_owned),
                detail: detail.map(str::to_owned),
                at: Timestamp::now(),
                reply,
            })
            .await
            .map_err(|e| JournalError(e.to_string()))
        })
    }

    fn deliveries<'a>(
        &'a self,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<DeliveryRecord>, JournalError>> {
        Box::pin(async move {
            self.ask(|reply| Job::Deliveries(run.to_owned(), reply))
                .await
                .map_err(|e| JournalError(e.to_string()))
        })
    }
}

/// The SQL of each operation, on the writer thread's connection.
struct Db<'a> {
    conn: &'a Connection,
    path: &'a str,
}

/// How the writer thread's SQL helpers (runs, verification requests, approval tokens) name a
/// failure: by the store's path, with SQLite's cause or the value that did not read.
pub(super) trait AtPath {
    /// The store file the helper works on.
    fn path(&self) -> &str;

    /// SQLite failed.
    fn sqlite(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path().to_owned(),
            source,
        }
    }

    /// A stored value does not read as `what`.
    fn corrupt(&self, what: &'static str, value: &str) -> StoreError {
        StoreError::Corrupt {
            path: self.path().to_owned(),
            what,
            value: value.to_owned(),
        }
    }
}

impl AtPath for Db<'_> {
    fn path(&self) -> &str {
        self.path
    }
}

impl Db<'_> {
    /// Every row `sql` answers for `params`, read as the tuple type `T` (column by column).
    fn rows<T>(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>,
    {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sqlite(e))?;
        stmt.query_map(params, |row| T::try_from(row))
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<Vec<T>, _>>()
            .map_err(|e| self.sqlite(e))
    }

    fn time(&self, what: &'static str, text: &str) -> Result<Timestamp, StoreError> {
        text.parse().map_err(|_| self.corrupt(what, text))
    }

    /// Insert the run, then stream its plan into a blob of the exact size: the plan is
    /// measured first, then written through SQLite's incremental blob I/O (inside the job's
    /// savepoint, so a failed write leaves no run behind).
    fn create_run(&self, run: &NewRun) -> Result<(), StoreError> {
        let created = run.created_at.to_string();
        let mut counter = ByteCounter(0);
        run.plan
            .write_to(&mut counter)
            .map_err(|e| self.plan_error(e))?;
        self.conn
            .execute(
                "INSERT INTO runs (id, created_at, updated_at, playbook_name, playbook_path,
                                   tenant, plan_hash, plan_json, status)
                 VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, '', ?7)",
                params![
                    run.id.0,
                    created,
                    run.playbook_name,
                    run.playbook_path,
                    run.tenant,
                    run.plan_hash,
                    RunStatus::Planned.as_str()
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        self.conn
            .execute(
                "INSERT INTO plans (run_id, json) VALUES (?1, zeroblob(?2))",
                params![run.id.0, i64::try_from(counter.0).unwrap_or(i64::MAX)],
            )
            .map_err(|e| self.sqlite(e))?;
        let rowid = self.conn.last_insert_rowid();
        let blob = self
            .conn
            .blob_open(MAIN_DB, c"plans", c"json", rowid, false)
            .map_err(|e| self.sqlite(e))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, blob);
        run.plan
            .write_to(&mut out)
            .and_then(|()| out.flush())
            .map_err(|e| self.plan_error(e))
    }

    fn plan_error(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.to_owned(),
            source,
        }
    }

    fn run(&self, id: &RunId) -> Result<RunRecord, StoreError> {
        let found = self
            .conn
            .query_row(
                "SELECT id, created_at, updated_at, playbook_name, playbook_path, tenant,
                        plan_hash, status, ticket FROM runs WHERE id = ?1",
                params![id.0],
                raw_run,
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        match found {
            Some(raw) => self.run_record(raw),
            None => Err(StoreError::UnknownRun(id.clone())),
        }
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, created_at, updated_at, playbook_name, playbook_path, tenant,
                        plan_hash, status, ticket FROM runs ORDER BY created_at DESC, id DESC",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([], raw_run)
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sqlite(e))?;
        rows.into_iter().map(|raw| self.run_record(raw)).collect()
    }

    fn plan_json(&self, id: &RunId) -> Result<String, StoreError> {
        // A blob since plans are streamed in; text in stores written before that.
        let bytes: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT coalesce((SELECT json FROM plans WHERE run_id = runs.id), plan_json)
                 FROM runs WHERE id = ?1",
                params![id.0],
                |row| match row.get_ref(0)? {
                    ValueRef::Text(b) | ValueRef::Blob(b) => Ok(b.to_vec()),
                    _ => Ok(Vec::new()),
                },
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        let bytes = bytes.ok_or_else(|| StoreError::UnknownRun(id.clone()))?;
        String::from_utf8(bytes).map_err(|_| self.corrupt("runs.plan_json", "(not UTF-8)"))
    }

    fn run_record(&self, raw: RawRun) -> Result<RunRecord, StoreError> {
        Ok(RunRecord {
            created_at: self.time("runs.created_at", &raw.created_at)?,
            updated_at: self.time("runs.updated_at", &raw.updated_at)?,
            status: RunStatus::parse(&raw.status)
                .ok_or_else(|| self.corrupt("runs.status", &raw.status))?,
            id: RunId(raw.id),
            playbook_name: raw.playbook_name,
            playbook_path: raw.playbook_path,
            tenant: raw.tenant,
            plan_hash: raw.plan_hash,
            ticket: raw.ticket,
        })
    }

    fn set_ticket(&self, id: &RunId, ticket: Option<&str>) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE runs SET ticket = ?2 WHERE id = ?1",
                params![id.0, ticket],
            )
            .map_err(|e| self.sqlite(e))?;
        if changed == 0 {
            return Err(StoreError::UnknownRun(id.clone()));
        }
        Ok(())
    }

    fn begin_attempt(
        &self,
        id: &RunId,
        at: Timestamp,
        first_seq: Option<u64>,
    ) -> Result<u32, StoreError> {
        self.run(id)?;
        let n: u32 = self
            .conn
            .query_row(
                "SELECT coalesce(max(n), 0) + 1 FROM attempts WHERE run_id = ?1",
                params![id.0],
                |row| row.get(0),
            )
            .map_err(|e| self.sqlite(e))?;
        self.conn
            .execute(
                "INSERT INTO attempts (run_id, n, started_at, first_seq) VALUES (?1, ?2, ?3, ?4)",
                params![id.0, n, at.to_string(), first_seq.map(|s| s as i64)],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(n)
    }

    fn end_attempt(&self, id: &RunId, n: u32, end: &AttemptEnd) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE attempts SET ended_at = ?3, status = ?4, throttled = ?5, read_backs = ?6,
                                     last_seq = ?7
                 WHERE run_id = ?1 AND n = ?2 AND ended_at IS NULL",
                params![
                    id.0,
                    n,
                    end.ended_at.to_string(),
                    end.status.as_str(),
                    end.throttled as i64,
                    end.read_backs as i64,
                    end.last_seq.map(|s| s as i64)
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(())
    }

    fn attempts(&self, id: &RunId) -> Result<Vec<Attempt>, StoreError> {
        type Row = (
            u32,
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = self.rows(
            "SELECT n, started_at, first_seq, ended_at, status, throttled, read_backs, last_seq
             FROM attempts WHERE run_id = ?1 ORDER BY n",
            params![id.0],
        )?;
        rows.into_iter()
            .map(
                |(n, started, first_seq, ended, status, throttled, read_backs, last_seq)| {
                    let end = match (ended, status) {
                        (Some(ended), Some(status)) => Some(AttemptEnd {
                            ended_at: self.time("attempts.ended_at", &ended)?,
                            status: RunStatus::parse(&status)
                                .ok_or_else(|| self.corrupt("attempts.status", &status))?,
                            throttled: throttled.unwrap_or(0).max(0) as u64,
                            read_backs: read_backs.unwrap_or(0).max(0) as u64,
                            last_seq: last_seq.map(|s| s as u64),
                        }),
                        _ => None,
                    };
                    Ok(Attempt {
                        n,
                        started_at: self.time("attempts.started_at", &started)?,
                        end,
                        first_seq: first_seq.map(|s| s as u64),
                    })
                },
            )
            .collect()
    }

    fn set_status(&self, id: &RunId, status: RunStatus, at: Timestamp) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE runs SET status = ?2, updated_at = ?3 WHERE id = ?1",
                params![id.0, status.as_str(), at.to_string()],
            )
            .map_err(|e| self.sqlite(e))?;
        if changed == 0 {
            return Err(StoreError::UnknownRun(id.clone()));
        }
        Ok(())
    }

    fn approve(&self, id: &RunId, approval: NewApproval) -> Result<Approval, StoreError> {
        let run = self.run(id)?;
        let (seq, hash) = &approval.audit;
        let inserted = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO approvals
                   (run_id, operator, plan_hash, approved_at, origin, audit_seq, audit_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id.0,
                    approval.operator,
                    run.plan_hash,
                    approval.at.to_string(),
                    approval.origin,
                    *seq as i64,
                    hash
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        if inserted == 0 {
            return Err(StoreError::DuplicateApproval {
                run: id.clone(),
                operator: approval.operator,
            });
        }
        Ok(Approval {
            operator: approval.operator,
            plan_hash: run.plan_hash,
            approved_at: approval.at,
            origin: approval.origin,
            audit: Some(approval.audit),
            consumed_at: None,
        })
    }

    fn begin_execution(&self, id: &RunId, at: Timestamp) -> Result<(), StoreError> {
        // Both statements run in this job's savepoint: a run that moves to `running`
        // consumes its approvals, or neither happens.
        let changed = self
            .conn
            .execute(
                "UPDATE runs SET status = 'running', updated_at = ?2
                 WHERE id = ?1 AND status = 'planned'",
                params![id.0, at.to_string()],
            )
            .map_err(|e| self.sqlite(e))?;
        if changed == 0 {
            self.run(id)?;
            return Err(StoreError::AlreadyStarted(id.clone()));
        }
        self.conn
            .execute(
                "UPDATE approvals SET consumed_at = ?2 WHERE run_id = ?1 AND consumed_at IS NULL",
                params![id.0, at.to_string()],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(())
    }

    fn approvals(&self, id: &RunId) -> Result<Vec<Approval>, StoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = self.rows(
            "SELECT operator, plan_hash, approved_at, origin, audit_seq, audit_hash, consumed_at
             FROM approvals WHERE run_id = ?1 ORDER BY approved_at, operator",
            params![id.0],
        )?;
        rows.into_iter()
            .map(|(operator, plan_hash, at, origin, seq, hash, consumed)| {
                Ok(Approval {
                    operator,
                    plan_hash,
                    approved_at: self.time("approvals.approved_at", &at)?,
                    origin,
                    audit: seq.zip(hash).map(|(seq, hash)| (seq as u64, hash)),
                    consumed_at: consumed
                        .map(|c| self.time("approvals.consumed_at", &c))
                        .transpose()?,
                })
            })
            .collect()
    }

    fn entry(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
    ) -> Result<Option<JournalEntry>, StoreError> {
        let raw = self
            .conn
            .query_row(
                "SELECT user_id, step, intent_at, outcome, outcome_at, detail, facts, group_id,
                        member_until, member_before, of_step FROM journal
                 WHERE run_id = ?1 AND user_id = ?2 AND step = ?3",
                params![run.0, user_id, step],
                raw_entry,
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        raw.map(|raw| self.journal_entry(raw)).transpose()
    }

    fn record_intent(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        facts: Option<&Facts>,
        at: Timestamp,
    ) -> Result<IntentRecorded, StoreError> {
        let columns = FactColumns::of(facts);
        let inserted = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO journal (run_id, user_id, step, intent_at, facts,
                                                group_id, member_until, member_before, of_step)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    run.0,
                    user_id,
                    step,
                    at.to_string(),
                    columns.kind,
                    columns.group_id,
                    columns.member_until,
                    columns.member_before,
                    columns.of_step
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        if inserted == 1 {
            return Ok(IntentRecorded::New);
        }
        match self.entry(run, user_id, step)? {
            Some(existing) => Ok(IntentRecorded::Existing(existing)),
            // INSERT OR IGNORE ignored for another reason: the run does not exist.
            None => Err(StoreError::UnknownRun(run.clone())),
        }
    }

    fn record_facts(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        facts: &Facts,
    ) -> Result<(), StoreError> {
        let columns = FactColumns::of(Some(facts));
        let changed = self
            .conn
            .execute(
                "UPDATE journal SET facts = ?4, group_id = ?5, member_until = ?6,
                                    member_before = ?7, of_step = ?8
                 WHERE run_id = ?1 AND user_id = ?2 AND step = ?3 AND outcome IS NULL",
                params![
                    run.0,
                    user_id,
                    step,
                    columns.kind,
                    columns.group_id,
                    columns.member_until,
                    columns.member_before,
                    columns.of_step
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        self.intent_was_there(changed, run, user_id, step)
    }

    /// An update of a journal row that `changed` nothing is fine when the row exists (an
    /// outcome, once known, is kept); without the row it had no intent to update.
    fn intent_was_there(
        &self,
        changed: usize,
        run: &RunId,
        user_id: &str,
        step: &str,
    ) -> Result<(), StoreError> {
        if changed == 0 && self.entry(run, user_id, step)?.is_none() {
            return Err(StoreError::OutcomeWithoutIntent {
                run: run.clone(),
                user_id: user_id.to_owned(),
                step: step.to_owned(),
            });
        }
        Ok(())
    }

    fn record_outcome(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        outcome: Outcome,
        detail: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE journal SET outcome = ?4, outcome_at = ?5, detail = ?6
                 WHERE run_id = ?1 AND user_id = ?2 AND step = ?3 AND outcome IS NULL",
                params![
                    run.0,
                    user_id,
                    step,
                    outcome.as_str(),
                    at.to_string(),
                    detail
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        self.intent_was_there(changed, run, user_id, step)
    }

    fn journal(&self, run: &RunId) -> Result<Vec<JournalEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT user_id, step, intent_at, outcome, outcome_at, detail, facts, group_id,
                        member_until, member_before, of_step FROM journal
                 WHERE run_id = ?1 ORDER BY rowid",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map(params![run.0], raw_entry)
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sqlite(e))?;
        rows.into_iter()
            .map(|raw| self.journal_entry(raw))
            .collect()
    }

    /// Insert a delivery's intent, or return the row an earlier attempt wrote.
    fn delivery_begin(&self, record: &DeliveryRecord) -> Result<Begun, StoreError> {
        let key = &record.key;
        let earlier = self.delivery(key)?;
        if let Some(earlier) = earlier {
            return Ok(Begun::Existing(Box::new(earlier)));
        }
        self.conn
            .execute(
                "INSERT INTO deliveries (run_id, user_id, step, channel, message_key, sender,
                                         recipient, intent_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    key.run,
                    key.user_id,
                    key.step,
                    key.channel,
                    record.message_key.to_string(),
                    record.sender,
                    record.recipient,
                    record.intent_at.to_string()
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(Begun::New)
    }

    /// One delivery row.
    fn delivery(&self, key: &DeliveryKey) -> Result<Option<DeliveryRecord>, StoreError> {
        let rows: Vec<DeliveryRow> = self.rows(
            "SELECT run_id, user_id, step, channel, message_key, sender, recipient, intent_at,
                    state, provider_id, detail
             FROM deliveries WHERE run_id = ?1 AND user_id = ?2 AND step = ?3 AND channel = ?4",
            params![key.run, key.user_id, key.step, key.channel],
        )?;
        rows.into_iter()
            .next()
            .map(|r| self.delivery_record(r))
            .transpose()
    }

    /// Record how a delivery ended.
    fn delivery_finish(
        &self,
        key: &DeliveryKey,
        state: DeliveryState,
        provider_id: Option<&str>,
        detail: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE deliveries SET state = ?5, outcome_at = ?6, provider_id = ?7, detail = ?8
                 WHERE run_id = ?1 AND user_id = ?2 AND step = ?3 AND channel = ?4",
                params![
                    key.run,
                    key.user_id,
                    key.step,
                    key.channel,
                    state.as_str(),
                    at.to_string(),
                    provider_id,
                    detail
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        if changed == 0 {
            return Err(self.corrupt("deliveries", &format!("no intent for {key:?}")));
        }
        Ok(())
    }

    /// Every delivery of a run.
    fn deliveries(&self, run: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows: Vec<DeliveryRow> = self.rows(
            "SELECT run_id, user_id, step, channel, message_key, sender, recipient, intent_at,
                    state, provider_id, detail
             FROM deliveries WHERE run_id = ?1 ORDER BY user_id, step, channel",
            params![run],
        )?;
        rows.into_iter().map(|r| self.delivery_record(r)).collect()
    }

    fn delivery_record(&self, row: DeliveryRow) -> Result<DeliveryRecord, StoreError> {
        Ok(DeliveryRecord {
            message_key: row
                .message_key
                .parse()
                .map_err(|_| self.corrupt("deliveries.message_key", &row.message_key))?,
            intent_at: self.time("deliveries.intent_at", &row.intent_at)?,
            state: match row.state.as_deref() {
                None => None,
                Some(text) => Some(
                    DeliveryState::parse(text)
                        .ok_or_else(|| self.corrupt("deliveries.state", text))?,
                ),
            },
            key: row.key,
            sender: row.sender,
            recipient: row.recipient,
            provider_id: row.provider_id,
            detail: row.detail,
        })
    }

    fn remediated_since(
        &self,
        tenant: &str,
        since: Timestamp,
    ) -> Result<Vec<Remediated>, StoreError> {
        // Times are RFC 3339 text; the text comparison narrows the rows (a second early, as
        // fractions sort after the whole second), the parsed times decide.
        let coarse = since
            .checked_sub(jiff::SignedDuration::from_secs(1))
            .unwrap_or(since)
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let rows: Vec<(String, String, String)> = self.rows(
            "SELECT j.user_id, j.run_id, j.outcome_at FROM journal j
             JOIN runs r ON r.id = j.run_id
             WHERE r.tenant = ?1 AND j.outcome = 'succeeded' AND j.outcome_at >= ?2
               AND j.step NOT LIKE '%:notify'",
            params![tenant, coarse],
        )?;
        let mut latest: std::collections::HashMap<String, Remediated> =
            std::collections::HashMap::new();
        for (user_id, run, at) in rows {
            let at = self.time("journal.outcome_at", &at)?;
            if at < since {
                continue;
            }
            let newer = latest.get(&user_id).is_none_or(|seen| seen.at < at);
            if newer {
                latest.insert(
                    user_id.clone(),
                    Remediated {
                        user_id,
                        run: RunId(run),
                        at,
                    },
                );
            }
        }
        let mut out: Vec<Remediated> = latest.into_values().collect();
        out.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        Ok(out)
    }

    fn writes_since(&self, tenant: &str, since: Timestamp) -> Result<Vec<Timestamp>, StoreError> {
        // As in `remediated_since`: the text comparison narrows, the parsed times decide.
        let coarse = since
            .checked_sub(jiff::SignedDuration::from_secs(1))
            .unwrap_or(since)
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let rows: Vec<(String,)> = self.rows(
            "SELECT j.intent_at FROM journal j
             JOIN runs r ON r.id = j.run_id
             WHERE r.tenant = ?1 AND j.intent_at >= ?2
               AND (j.outcome IS NULL OR j.outcome <> 'skipped')
               AND j.step NOT LIKE '%:notify'",
            params![tenant, coarse],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (at,) in rows {
            let at = self.time("journal.intent_at", &at)?;
            if at >= since {
                out.push(at);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn journal_entry(&self, raw: RawEntry) -> Result<JournalEntry, StoreError> {
        let facts = self.facts(&raw)?;
        let outcome = match raw.outcome {
            Some(text) => {
                Some(Outcome::parse(&text).ok_or_else(|| self.corrupt("journal.outcome", &text))?)
            }
            None => None,
        };
        let outcome_at = match raw.outcome_at {
            Some(text) => Some(self.time("journal.outcome_at", &text)?),
            None => None,
        };
        Ok(JournalEntry {
            intent_at: self.time("journal.intent_at", &raw.intent_at)?,
            user_id: raw.user_id,
            step: raw.step,
            outcome,
            outcome_at,
            detail: raw.detail,
            facts,
        })
    }

    /// The typed facts of a row from their columns.
    fn facts(&self, raw: &RawEntry) -> Result<Option<Facts>, StoreError> {
        let Some(kind) = raw.facts.as_deref() else {
            return Ok(None);
        };
        if kind == REFUSED {
            return Ok(Some(Facts::Refused));
        }
        let group_id = raw
            .group_id
            .clone()
            .ok_or_else(|| self.corrupt("journal.group_id", "(missing)"))?;
        Ok(Some(match kind {
            MEMBERSHIP => {
                let until = raw
                    .member_until
                    .as_deref()
                    .ok_or_else(|| self.corrupt("journal.member_until", "(missing)"))?;
                let member_before = match raw.member_before {
                    None => None,
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    Some(other) => {
                        return Err(self.corrupt("journal.member_before", &other.to_string()));
                    }
                };
                Facts::Membership(Membership {
                    group_id,
                    until: self.time("journal.member_until", until)?,
                    member_before,
                })
            }
            REMOVAL => Facts::Removal(Removal {
                group_id,
                of_step: raw
                    .of_step
                    .clone()
                    .ok_or_else(|| self.corrupt("journal.of_step", "(missing)"))?,
            }),
            other => return Err(self.corrupt("journal.facts", other)),
        }))
    }
}

/// `journal.facts` of a [`Facts::Membership`].
const MEMBERSHIP: &str = "membership";
/// `journal.facts` of a [`Facts::Removal`].
const REMOVAL: &str = "removal";
/// `journal.facts` of [`Facts::Refused`] (no other column).
const REFUSED: &str = "refused";

/// A row's facts as their columns.
#[derive(Default)]
struct FactColumns<'a> {
    kind: Option<&'static str>,
    group_id: Option<&'a str>,
    member_until: Option<String>,
    member_before: Option<bool>,
    of_step: Option<&'a str>,
}

impl<'a> FactColumns<'a> {
    fn of(facts: Option<&'a Facts>) -> Self {
        match facts {
            None => FactColumns::default(),
            Some(Facts::Membership(m)) => FactColumns {
                kind: Some(MEMBERSHIP),
                group_id: Some(&m.group_id),
                member_until: Some(m.until.to_string()),
                member_before: m.member_before,
                of_step: None,
            },
            Some(Facts::Removal(r)) => FactColumns {
                kind: Some(REMOVAL),
                group_id: Some(&r.group_id),
                member_until: None,
                member_before: None,
                of_step: Some(&r.of_step),
            },
            Some(Facts::Refused) => FactColumns {
                kind: Some(REFUSED),
                ..FactColumns::default()
            },
        }
    }
}

/// Counts what is written to it: the size of a plan before it is streamed in.
struct ByteCounter(u64);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `runs` row as stored, before its text columns are parsed.
struct RawRun {
    id: String,
    created_at: String,
    updated_at: String,
    playbook_name: String,
    playbook_path: String,
    tenant: String,
    plan_hash: String,
    status: String,
    ticket: Option<String>,
}

fn raw_run(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRun> {
    Ok(RawRun {
        id: row.get(0)?,
        created_at: row.get(1)?,
        updated_at: row.get(2)?,
        playbook_name: row.get(3)?,
        playbook_path: row.get(4)?,
        tenant: row.get(5)?,
        plan_hash: row.get(6)?,
        status: row.get(7)?,
        ticket: row.get(8)?,
    })
}

/// A `journal` row as stored.
struct RawEntry {
    user_id: String,
    step: String,
    intent_at: String,
    outcome: Option<String>,
    outcome_at: Option<String>,
    detail: Option<String>,
    facts: Option<String>,
    group_id: Option<String>,
    member_until: Option<String>,
    member_before: Option<i64>,
    of_step: Option<String>,
}

fn raw_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntry> {
    Ok(RawEntry {
        user_id: row.get(0)?,
        step: row.get(1)?,
        intent_at: row.get(2)?,
        outcome: row.get(3)?,
        outcome_at: row.get(4)?,
        detail: row.get(5)?,
        facts: row.get(6)?,
        group_id: row.get(7)?,
        member_until: row.get(8)?,
        member_before: row.get(9)?,
        of_step: row.get(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Membership, PlanDocument, Removal};
    use std::sync::Arc;

    fn new_run(id: &str, hash: &str) -> NewRun {
        NewRun {
            id: RunId(id.into()),
            created_at: Timestamp::now(),
            playbook_name: "credential-dump-reset".into(),
            playbook_path: "playbooks/credential-dump.yaml".into(),
            tenant: "demo".into(),
            plan_hash: hash.into(),
            plan: PlanDocument::text("{}"),
        }
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("runs.sqlite")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn plans_are_streamed_in_and_read_back_whole() {
        let (dir, store) = store();
        let plan: Vec<String> = (0..50_000).map(|i| format!("user-{i}")).collect();
        let mut run = new_run("big", "h");
        run.plan = PlanDocument::of(Arc::new(plan.clone()));
        store.create_run(run).await.unwrap();
        let back: Vec<String> =
            serde_json::from_str(&store.plan_json(&RunId("big".into())).await.unwrap()).unwrap();
        assert_eq!(back, plan);
        assert!(matches!(
            store.plan_json(&RunId("nope".into())).await,
            Err(StoreError::UnknownRun(_))
        ));
        drop(store);

        // A store of schema version 1 kept the plan as text in `runs.plan_json`.
        let conn = Connection::open(dir.path().join("runs.sqlite")).unwrap();
        conn.execute(
            "INSERT INTO runs (id, created_at, updated_at, playbook_name, playbook_path,
                               tenant, plan_hash, plan_json, status)
             VALUES ('old', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'p', 'p.yaml',
                     'demo', 'h', '[\"v1\"]', 'planned')",
            [],
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&dir.path().join("runs.sqlite")).unwrap();
        assert_eq!(
            store.plan_json(&RunId("old".into())).await.unwrap(),
            r#"["v1"]"#
        );
    }

    #[tokio::test]
    async fn intent_then_outcome_round_trips() {
        let (_dir, store) = store();
        let run = RunId("r1".into());
        store.create_run(new_run("r1", "h")).await.unwrap();
        let now = Timestamp::now();
        assert_eq!(
            store
                .record_intent(&run, "u1", "0:revoke_sessions", None, now)
                .await
                .unwrap(),
            IntentRecorded::New
        );
        store
            .record_outcome(
                &run,
                "u1",
                "0:revoke_sessions",
                Outcome::Succeeded,
                None,
                now,
            )
            .await
            .unwrap();
        let journal = store.journal(&run).await.unwrap();
        assert_eq!(journal.len(), 1);
        assert_eq!(journal[0].outcome, Some(Outcome::Succeeded));
    }

    #[tokio::test]
    async fn a_second_intent_reports_the_first_instead_of_overwriting() {
        let (_dir, store) = store();
        let run = RunId("r1".into());
        store.create_run(new_run("r1", "h")).await.unwrap();
        let first = Timestamp::now();
        store
            .record_intent(&run, "u1", "s", None, first)
            .await
            .unwrap();
        let again = store
            .record_intent(&run, "u1", "s", None, Timestamp::now())
            .await
            .unwrap();
        match again {
            IntentRecorded::Existing(entry) => {
                assert_eq!(entry.intent_at, first);
                assert_eq!(entry.outcome, None);
            }
            IntentRecorded::New => panic!("intent recorded twice"),
        }
    }

    #[tokio::test]
    async fn the_first_outcome_is_kept() {
        let (_dir, store) = store();
        let run = RunId("r1".into());
        store.create_run(new_run("r1", "h")).await.unwrap();
        let now = Timestamp::now();
        store
            .record_intent(&run, "u1", "s", None, now)
            .await
            .unwrap();
        store
            .record_outcome(
                &run,
                "u1",
                "s",
                Outcome::Failed,
                Some("Request_BadRequest".into()),
                now,
            )
            .await
            .unwrap();
        store
            .record_outcome(&run, "u1", "s", Outcome::Succeeded, None, now)
            .await
            .unwrap();
        let journal = store.journal(&run).await.unwrap();
        assert_eq!(journal[0].outcome, Some(Outcome::Failed));
        assert_eq!(journal[0].detail.as_deref(), Some("Request_BadRequest"));
    }

    #[tokio::test]
    async fn outcome_without_intent_and_unknown_runs_are_errors() {
        let (_dir, store) = store();
        let run = RunId("r1".into());
        store.create_run(new_run("r1", "h")).await.unwrap();
        let err = store
            .record_outcome(&run, "u1", "s", Outcome::Succeeded, None, Timestamp::now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::OutcomeWithoutIntent { .. }),
            "{err}"
        );
        let err = store
            .record_intent(&RunId("nope".into()), "u1", "s", None, Timestamp::now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Sqlite { .. } | StoreError::UnknownRun(_)),
            "{err}"
        );
        assert!(matches!(
            store.run(&RunId("nope".into())).await.unwrap_err(),
            StoreError::UnknownRun(_)
        ));
    }

    fn approval(operator: &str, seq: u64) -> NewApproval {
        NewApproval {
            operator: operator.into(),
            origin: "cli test@host".into(),
            audit: (seq, format!("hash-{seq}")),
            at: Timestamp::now(),
        }
    }

    #[tokio::test]
    async fn approvals_are_bound_to_the_plan_hash_and_unique_per_operator() {
        let (_dir, store) = store();
        let run = RunId("r1".into());
        store.create_run(new_run("r1", "hash-a")).await.unwrap();
        let first = store.approve(&run, approval("alice", 1)).await.unwrap();
        assert_eq!(first.plan_hash, "hash-a");
        let err = store.approve(&run, approval("alice", 2)).await.unwrap_err();
        assert!(matches!(err, StoreError::DuplicateApproval { .. }));
        store.approve(&run, approval("bob", 3)).await.unwrap();
        let approvals = store.approvals(&run).await.unwrap();
        assert_eq!(approvals.len(), 2);
        assert!(approvals.iter().all(|a| a.plan_hash == "hash-a"));
        assert_eq!(approvals[0].audit, Some((1, "hash-1".into())));
        assert_eq!(approvals[0].origin, "cli test@host");
    }

    #[tokio::test]
    async fn beginning_an_execution_consumes_the_approvals_once() {
        let (_dir, store) = store();
        let run = RunId("r1".into());
        store.create_run(new_run("r1", "hash-a")).await.unwrap();
        store.approve(&run, approval("alice", 1)).await.unwrap();
        store.begin_execution(&run, Timestamp::now()).await.unwrap();
        assert_eq!(store.run(&run).await.unwrap().status, RunStatus::Running);
        assert!(
            store.approvals(&run).await.unwrap()[0]
                .consumed_at
                .is_some()
        );
        let again = store.begin_execution(&run, Timestamp::now()).await;
        assert!(
            matches!(again, Err(StoreError::AlreadyStarted(_))),
            "{again:?}"
        );
        let unknown = store
            .begin_execution(&RunId("nope".into()), Timestamp::now())
            .await;
        assert!(
            matches!(unknown, Err(StoreError::UnknownRun(_))),
            "{unknown:?}"
        );
    }

    #[tokio::test]
    async fn runs_survive_reopening_and_list_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/runs.sqlite");
        {
            let store = SqliteStore::open(&path).unwrap();
            let mut older = new_run("r-old", "h1");
            older.created_at = "2026-01-01T00:00:00Z".parse().unwrap();
            store.create_run(older).await.unwrap();
            store.create_run(new_run("r-new", "h2")).await.unwrap();
            store
                .set_status(&RunId("r-new".into()), RunStatus::Running, Timestamp::now())
                .await
                .unwrap();
            store
                .record_intent(&RunId("r-new".into()), "u", "s", None, Timestamp::now())
                .await
                .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let runs = store.runs().await.unwrap();
        let ids: Vec<_> = runs.iter().map(|r| r.id.0.as_str()).collect();
        assert_eq!(ids, ["r-new", "r-old"]);
        assert_eq!(runs[0].status, RunStatus::Running);
        assert_eq!(
            store.journal(&RunId("r-new".into())).await.unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn tickets_and_attempts_are_kept_with_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.sqlite");
        let id = RunId("r".into());
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:01:30Z".parse().unwrap();
        {
            let store = SqliteStore::open(&path).unwrap();
            store.create_run(new_run("r", "h")).await.unwrap();
            assert_eq!(store.run(&id).await.unwrap().ticket, None);
            store.set_ticket(&id, Some("INC-42".into())).await.unwrap();
            assert_eq!(store.begin_attempt(&id, t0, Some(7)).await.unwrap(), 1);
            let end = AttemptEnd {
                ended_at: t1,
                status: RunStatus::Interrupted,
                throttled: 3,
                read_backs: 2,
                last_seq: Some(90),
            };
            store.end_attempt(&id, 1, end.clone()).await.unwrap();
            // Only the first end counts.
            let later = AttemptEnd {
                status: RunStatus::Finished,
                ..end
            };
            store.end_attempt(&id, 1, later).await.unwrap();
            assert_eq!(store.begin_attempt(&id, t1, None).await.unwrap(), 2);
            assert!(matches!(
                store.set_ticket(&RunId("nope".into()), None).await,
                Err(StoreError::UnknownRun(_))
            ));
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.run(&id).await.unwrap().ticket.as_deref(),
            Some("INC-42")
        );
        let attempts = store.attempts(&id).await.unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0].first_seq, Some(7));
        let end = attempts[0].end.as_ref().unwrap();
        assert_eq!(
            (
                end.ended_at,
                end.status,
                end.throttled,
                end.read_backs,
                end.last_seq
            ),
            (t1, RunStatus::Interrupted, 3, 2, Some(90))
        );
        assert_eq!((attempts[1].n, attempts[1].end.as_ref()), (2, None));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_pipelines_are_group_committed_without_loss() {
        let (_dir, store) = store();
        let store = Arc::new(store);
        let run = RunId("r1".into());
        store.create_run(new_run("r1", "h")).await.unwrap();
        let mut tasks = Vec::new();
        for user in 0..200 {
            let store = Arc::clone(&store);
            let run = run.clone();
            tasks.push(tokio::spawn(async move {
                for step in ["0:reset_password", "1:revoke_sessions"] {
                    let user = format!("u{user}");
                    let fresh = store
                        .record_intent(&run, &user, step, None, Timestamp::now())
                        .await
                        .unwrap();
                    assert_eq!(fresh, IntentRecorded::New);
                    store
                        .record_outcome(
                            &run,
                            &user,
                            step,
                            Outcome::Succeeded,
                            None,
                            Timestamp::now(),
                        )
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let journal = store.journal(&run).await.unwrap();
        assert_eq!(journal.len(), 400);
        assert!(
            journal
                .iter()
                .all(|e| e.outcome == Some(Outcome::Succeeded))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_process_holding_the_database_delays_but_does_not_fail_us() {
        let (dir, store) = store();
        store.create_run(new_run("r1", "h")).await.unwrap();
        let path = dir.path().join("runs.sqlite");
        // Another process's writer: mid-transaction for a moment, then committing often.
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            let conn = Connection::open(&path).unwrap();
            // As if written by an older resetctl: opening it must migrate it, a write.
            conn.execute_batch(&format!(
                "PRAGMA user_version = {};
                 BEGIN IMMEDIATE; UPDATE runs SET updated_at = '2026-01-01T00:00:00Z';",
                schema::VERSION - 1
            ))
            .unwrap();
            locked_tx.send(path).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            conn.execute_batch("COMMIT").unwrap();
            for i in 0..200 {
                conn.execute(
                    "UPDATE runs SET updated_at = ?1 WHERE id = 'r1'",
                    params![format!("2026-01-01T00:00:{:02}Z", i % 60)],
                )
                .unwrap();
            }
        });
        let path = locked.recv().unwrap();
        // Opening (and migrating) waits for it instead of failing with "database is locked"...
        let second = SqliteStore::open(&path).unwrap();
        // ...and jobs that read then write, racing its commits, never fail with SQLITE_BUSY.
        for i in 0..50 {
            second
                .approve(&RunId("r1".into()), approval(&format!("op{i}"), i + 1))
                .await
                .unwrap();
        }
        other.join().unwrap();
        drop(dir);
    }

    #[tokio::test]
    async fn facts_round_trip_and_are_history_once_the_outcome_is_known() {
        let (_dir, store) = store();
        let run = RunId("r1".into());
        store.create_run(new_run("r1", "h")).await.unwrap();
        let until: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let membership = |member_before| {
            Facts::Membership(Membership {
                group_id: "g1".into(),
                until,
                member_before,
            })
        };
        let step = "2:add_to_group";
        store
            .record_intent(&run, "u1", step, Some(membership(None)), until)
            .await
            .unwrap();
        store
            .record_facts(&run, "u1", step, membership(Some(true)))
            .await
            .unwrap();
        store
            .record_outcome(&run, "u1", step, Outcome::Succeeded, None, until)
            .await
            .unwrap();
        store
            .record_facts(&run, "u1", step, membership(Some(false)))
            .await
            .unwrap();
        let removal = Facts::Removal(Removal {
            group_id: "g1".into(),
            of_step: step.into(),
        });
        store
            .record_intent(
                &run,
                "u1",
                "2:add_to_group#expire.1",
                Some(removal.clone()),
                until,
            )
            .await
            .unwrap();
        let journal = store.journal(&run).await.unwrap();
        assert_eq!(
            journal[0].facts,
            Some(membership(Some(true))),
            "kept after the outcome"
        );
        assert_eq!(journal[1].facts, Some(removal));
        // A second intent reports the first row's facts, untouched.
        match store
            .record_intent(&run, "u1", step, Some(membership(None)), until)
            .await
            .unwrap()
        {
            IntentRecorded::Existing(entry) => {
                assert_eq!(entry.facts, Some(membership(Some(true))));
            }
            IntentRecorded::New => panic!("intent recorded twice"),
        }
        let err = store
            .record_facts(&run, "u2", step, membership(None))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::OutcomeWithoutIntent { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_refused_row_stays_open_with_its_facts_until_an_outcome() {
        let (_dir, store) = store();
        let run = RunId("r1".into());
        store.create_run(new_run("r1", "h")).await.unwrap();
        let at: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let step = "0:reset_password";
        store
            .record_intent(&run, "u1", step, None, at)
            .await
            .unwrap();
        store
            .record_facts(&run, "u1", step, Facts::Refused)
            .await
            .unwrap();
        let journal = store.journal(&run).await.unwrap();
        assert_eq!(journal[0].facts, Some(Facts::Refused));
        assert_eq!(journal[0].outcome, None, "left open for the resume");
        store
            .record_outcome(&run, "u1", step, Outcome::Succeeded, None, at)
            .await
            .unwrap();
        let journal = store.journal(&run).await.unwrap();
        assert_eq!(journal[0].outcome, Some(Outcome::Succeeded));
    }

    #[tokio::test]
    async fn a_version_2_store_is_migrated_with_its_memberships_typed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.sqlite");
        {
            // The tables as version 2 left them, with a run that added two users to a group
            // (one confirmed by a read-back), removed one, and died adding a third.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE runs (id TEXT PRIMARY KEY, created_at TEXT NOT NULL,
                     updated_at TEXT NOT NULL, playbook_name TEXT NOT NULL,
                     playbook_path TEXT NOT NULL, tenant TEXT NOT NULL,
                     plan_hash TEXT NOT NULL, plan_json TEXT NOT NULL, status TEXT NOT NULL);
                 CREATE TABLE approvals (run_id TEXT NOT NULL REFERENCES runs(id),
                     operator TEXT NOT NULL, plan_hash TEXT NOT NULL,
                     approved_at TEXT NOT NULL, PRIMARY KEY (run_id, operator, plan_hash));
                 CREATE TABLE journal (run_id TEXT NOT NULL REFERENCES runs(id),
                     user_id TEXT NOT NULL, step TEXT NOT NULL, intent_at TEXT NOT NULL,
                     outcome TEXT, outcome_at TEXT, detail TEXT,
                     PRIMARY KEY (run_id, user_id, step));
                 CREATE TABLE plans (run_id TEXT PRIMARY KEY REFERENCES runs(id),
                     json BLOB NOT NULL);
                 INSERT INTO runs VALUES ('old', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z',
                     'p', 'p.yaml', 'demo', 'h', '{}', 'finished');
                 INSERT INTO journal VALUES
                     ('old', 'a', '1:add_to_group', '2026-01-01T00:00:00Z', 'succeeded',
                      '2026-01-01T00:00:01Z', 'member of g1 until 2026-01-04T00:00:00Z'),
                     ('old', 'b', '1:add_to_group', '2026-01-01T00:00:00Z', 'succeeded',
                      '2026-01-01T00:00:01Z',
                      'read back: member of g1 until 2026-01-04T00:00:00Z'),
                     ('old', 'a', '1:add_to_group#expire.1', '2026-01-05T00:00:00Z',
                      'succeeded', '2026-01-05T00:00:01Z', 'removed from g1'),
                     ('old', 'c', '1:add_to_group', '2026-01-01T00:00:00Z', NULL, NULL, NULL),
                     ('old', 'c', '0:reset_password', '2026-01-01T00:00:00Z', 'succeeded',
                      '2026-01-01T00:00:01Z', 'member of nothing until never');
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let journal = store.journal(&RunId("old".into())).await.unwrap();
        let until: Timestamp = "2026-01-04T00:00:00Z".parse().unwrap();
        let membership = |member_before| {
            Some(Facts::Membership(Membership {
                group_id: "g1".into(),
                until,
                member_before,
            }))
        };
        let facts: Vec<_> = journal.iter().map(|e| e.facts.clone()).collect();
        assert_eq!(
            facts,
            [
                membership(Some(false)),
                membership(None),
                Some(Facts::Removal(Removal {
                    group_id: "g1".into(),
                    of_step: "1:add_to_group".into(),
                })),
                None,
                None,
            ]
        );
        assert_eq!(
            journal[0].detail.as_deref(),
            Some("member of g1 until 2026-01-04T00:00:00Z")
        );
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, schema::VERSION);
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = RunId::generate("2026-11-23T10:00:00Z".parse().unwrap());
        let b = RunId::generate("2026-11-23T10:00:01Z".parse().unwrap());
        assert!(a < b, "{a} < {b}");
        assert!(a.0.starts_with("20261123T100000Z-"));
    }
}
