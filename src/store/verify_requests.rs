//! Verification requests in the run store (schema version 8): the `verify_requests`,
//! `verify_timers` and `verify_actions` tables behind [`RequestStore`]. Each operation is a
//! job of the store's writer thread, so a save (version check, timers, flow, actions) is one
//! transaction, and a save that fails leaves nothing behind.
//!
//! Times that are compared in SQL (timer due times, creation times) are stored as integer
//! milliseconds since the Unix epoch, beside the RFC 3339 text for people reading the file.

use futures::future::BoxFuture;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::sqlite::{AtPath, Deferred, Job, Reply, SqliteStore, defer, settle};
use crate::verify::store::{
    ArmedTimer, NewRequest, PendingAction, RequestStore, RequestStoreError, Save, StoredRequest,
    number_actions,
};
use crate::verify::{Flow, Timer};

/// One verification job for the writer thread.
pub(super) enum VerifyJob {
    Create(Box<NewRequest>, Reply<Result<(), RequestStoreError>>),
    Load(String, Reply<Option<StoredRequest>>),
    Save {
        id: String,
        expected: u64,
        save: Box<Save>,
        reply: Reply<Result<(u64, Vec<PendingAction>), RequestStoreError>>,
    },
    DueTimers(Timestamp, Reply<Vec<(String, ArmedTimer)>>),
    Timers(String, Reply<Vec<ArmedTimer>>),
    OfUser {
        tenant: String,
        user_id: String,
        since: Timestamp,
        reply: Reply<Vec<StoredRequest>>,
    },
    Pending(Reply<Vec<PendingAction>>),
    ActionsOf(String, Reply<Vec<PendingAction>>),
    Done {
        request: String,
        action_id: String,
        at: Timestamp,
        reply: Reply<()>,
    },
}

/// The answer of a job that never ran (its transaction could not start).
pub(super) fn defer_error(job: VerifyJob) -> Deferred {
    let e = || StoreError::CommitFailed(String::new());
    match job {
        VerifyJob::Create(_, r) => defer(r, Err(e())),
        VerifyJob::Load(_, r) => defer(r, Err(e())),
        VerifyJob::Save { reply, .. } => defer(reply, Err(e())),
        VerifyJob::DueTimers(_, r) => defer(r, Err(e())),
        VerifyJob::Timers(_, r) => defer(r, Err(e())),
        VerifyJob::OfUser { reply, .. } => defer(reply, Err(e())),
        VerifyJob::Pending(r) => defer(r, Err(e())),
        VerifyJob::ActionsOf(_, r) => defer(r, Err(e())),
        VerifyJob::Done { reply, .. } => defer(reply, Err(e())),
    }
}

/// Run one job on the writer's connection; whether it succeeded (to keep its savepoint).
/// A refused save (conflict, unknown request) counts as failed so its savepoint rolls back.
pub(super) fn execute(conn: &Connection, path: &str, job: VerifyJob) -> (bool, Deferred) {
    let db = VerifyDb { conn, path };
    match job {
        VerifyJob::Create(request, reply) => refusable(reply, db.create(&request)),
        VerifyJob::Load(id, reply) => settle(reply, db.load(&id)),
        VerifyJob::Save {
            id,
            expected,
            save,
            reply,
        } => refusable(reply, db.save(&id, expected, &save)),
        VerifyJob::DueTimers(now, reply) => settle(reply, db.due_timers(now)),
        VerifyJob::Timers(id, reply) => settle(reply, db.timers(&id)),
        VerifyJob::OfUser {
            tenant,
            user_id,
            since,
            reply,
        } => settle(reply, db.of_user(&tenant, &user_id, since)),
        VerifyJob::Pending(reply) => settle(reply, db.pending()),
        VerifyJob::ActionsOf(id, reply) => settle(reply, db.actions_of(&id)),
        VerifyJob::Done {
            request,
            action_id,
            at,
            reply,
        } => settle(reply, db.done(&request, &action_id, at)),
    }
}

/// Settle a job whose refusal is an answer (not a store failure), rolling it back.
fn refusable<T: Send + 'static>(
    reply: Reply<Result<T, RequestStoreError>>,
    result: Result<Result<T, RequestStoreError>, StoreError>,
) -> (bool, Deferred) {
    let ok = matches!(result, Ok(Ok(_)));
    (ok, defer(reply, result))
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn timer_name(timer: Timer) -> &'static str {
    match timer {
        Timer::Push => "push",
        Timer::Card => "card",
        Timer::Link => "link",
        Timer::Approvers => "approvers",
        Timer::AccessGroup => "access_group",
    }
}

fn parse_timer(name: &str) -> Option<Timer> {
    match name {
        "push" => Some(Timer::Push),
        "card" => Some(Timer::Card),
        "link" => Some(Timer::Link),
        "approvers" => Some(Timer::Approvers),
        "access_group" => Some(Timer::AccessGroup),
        _ => None,
    }
}

/// The SQL of each operation.
struct VerifyDb<'a> {
    conn: &'a Connection,
    path: &'a str,
}

/// A `verify_requests` row as stored.
type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    bool,
);

const COLUMNS: &str = "id, tenant, requester, origin, reason, created_flow_json, flow_json, version, \
                       created_at, updated_at, done";

impl AtPath for VerifyDb<'_> {
    fn path(&self) -> &str {
        self.path
    }
}

impl VerifyDb<'_> {
    fn create(&self, r: &NewRequest) -> Result<Result<(), RequestStoreError>, StoreError> {
        let id = &r.flow.id;
        let exists: Option<i64> = self
            .conn
            .query_row("SELECT 1 FROM verify_requests WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.sqlite(e))?;
        if exists.is_some() {
            return Ok(Err(RequestStoreError::Duplicate(id.clone())));
        }
        let flow =
            serde_json::to_string(&r.flow).map_err(|e| self.corrupt("flow", &e.to_string()))?;
        self.conn
            .execute(
                "INSERT INTO verify_requests
                   (id, tenant, user_id, requester, origin, reason, created_flow_json, flow_json,
                    version, created_at, created_ms, updated_at, done)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 0, ?8, ?9, ?8, ?10)",
                params![
                    id,
                    r.tenant,
                    r.flow.context.user.id,
                    r.requester,
                    r.origin,
                    r.reason,
                    flow,
                    r.created_at.to_string(),
                    ms(r.created_at),
                    r.flow.state.is_final(),
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(Ok(()))
    }

    fn read(&self, row: Row) -> Result<StoredRequest, StoreError> {
        let (
            id,
            tenant,
            requester,
            origin,
            reason,
            created_flow,
            flow,
            version,
            created,
            updated,
            done,
        ) = row;
        let parse_flow = |text: &str| {
            serde_json::from_str::<Flow>(text)
                .map_err(|_| self.corrupt("verify_requests.flow_json", &id))
        };
        let time = |what, text: &str| {
            text.parse::<Timestamp>()
                .map_err(|_| self.corrupt(what, text))
        };
        Ok(StoredRequest {
            request: NewRequest {
                flow: parse_flow(&created_flow)?,
                tenant,
                requester,
                origin,
                reason,
                created_at: time("verify_requests.created_at", &created)?,
            },
            flow: parse_flow(&flow)?,
            version: u64::try_from(version)
                .map_err(|_| self.corrupt("verify_requests.version", &id))?,
            updated_at: time("verify_requests.updated_at", &updated)?,
            done,
        })
    }

    fn rows(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StoredRequest>, StoreError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sqlite(e))?;
        let raw: Vec<Row> = stmt
            .query_map(params, |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                    row.get(9)?,
                    row.get(10)?,
                ))
            })
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.sqlite(e))?;
        raw.into_iter().map(|r| self.read(r)).collect()
    }

    fn load(&self, id: &str) -> Result<Option<StoredRequest>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM verify_requests WHERE id = ?1");
        Ok(self.rows(&sql, [id])?.into_iter().next())
    }

    fn save(
        &self,
        id: &str,
        expected: u64,
        save: &Save,
    ) -> Result<Result<(u64, Vec<PendingAction>), RequestStoreError>, StoreError> {
        let conflict = || {
            Ok(Err(RequestStoreError::Conflict {
                id: id.to_owned(),
                expected,
            }))
        };
        let version: Option<i64> = self
            .conn
            .query_row(
                "SELECT version FROM verify_requests WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        let Some(version) = version else {
            return Ok(Err(RequestStoreError::Unknown(id.to_owned())));
        };
        if u64::try_from(version).ok() != Some(expected) {
            return conflict();
        }
        if let Some(fired) = save.fired {
            // The claim: only the save that removes the row fires the timer.
            let removed = self
                .conn
                .execute(
                    "DELETE FROM verify_timers WHERE request_id = ?1 AND timer = ?2",
                    params![id, timer_name(fired)],
                )
                .map_err(|e| self.sqlite(e))?;
            if removed != 1 {
                return conflict();
            }
        }
        for timer in &save.disarm {
            self.conn
                .execute(
                    "DELETE FROM verify_timers WHERE request_id = ?1 AND timer = ?2",
                    params![id, timer_name(*timer)],
                )
                .map_err(|e| self.sqlite(e))?;
        }
        for armed in &save.arm {
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO verify_timers (request_id, timer, due, due_ms)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        id,
                        timer_name(armed.timer),
                        armed.due.to_string(),
                        ms(armed.due)
                    ],
                )
                .map_err(|e| self.sqlite(e))?;
        }
        let next = expected + 1;
        let flow =
            serde_json::to_string(&save.flow).map_err(|e| self.corrupt("flow", &e.to_string()))?;
        self.conn
            .execute(
                "UPDATE verify_requests SET flow_json = ?2, version = ?3, updated_at = ?4, done = ?5
                 WHERE id = ?1",
                params![
                    id,
                    flow,
                    i64::try_from(next).unwrap_or(i64::MAX),
                    save.at.to_string(),
                    save.flow.state.is_final()
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        let pending = number_actions(id, next, &save.actions);
        for (order, p) in pending.iter().enumerate() {
            let json = serde_json::to_string(&p.action)
                .map_err(|e| self.corrupt("action", &e.to_string()))?;
            self.conn
                .execute(
                    "INSERT INTO verify_actions (request_id, action_id, version, position,
                                                 action_json, saved_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id,
                        p.id,
                        i64::try_from(next).unwrap_or(i64::MAX),
                        order as i64,
                        json,
                        save.at.to_string()
                    ],
                )
                .map_err(|e| self.sqlite(e))?;
        }
        Ok(Ok((next, pending)))
    }

    fn timer_rows(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<(String, ArmedTimer)>, StoreError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sqlite(e))?;
        let raw: Vec<(String, String, String)> = stmt
            .query_map(params, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.sqlite(e))?;
        raw.into_iter()
            .map(|(id, timer, due)| {
                let timer = parse_timer(&timer)
                    .ok_or_else(|| self.corrupt("verify_timers.timer", &timer))?;
                let due = due
                    .parse()
                    .map_err(|_| self.corrupt("verify_timers.due", &due))?;
                Ok((id, ArmedTimer { timer, due }))
            })
            .collect()
    }

    fn due_timers(&self, now: Timestamp) -> Result<Vec<(String, ArmedTimer)>, StoreError> {
        self.timer_rows(
            "SELECT request_id, timer, due FROM verify_timers WHERE due_ms <= ?1
             ORDER BY due_ms, request_id",
            [ms(now)],
        )
    }

    fn timers(&self, id: &str) -> Result<Vec<ArmedTimer>, StoreError> {
        Ok(self
            .timer_rows(
                "SELECT request_id, timer, due FROM verify_timers WHERE request_id = ?1
                 ORDER BY due_ms",
                [id],
            )?
            .into_iter()
            .map(|(_, t)| t)
            .collect())
    }

    fn of_user(
        &self,
        tenant: &str,
        user_id: &str,
        since: Timestamp,
    ) -> Result<Vec<StoredRequest>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM verify_requests
             WHERE tenant = ?1 AND user_id = ?2 AND created_ms >= ?3 ORDER BY created_ms"
        );
        self.rows(&sql, params![tenant, user_id, ms(since)])
    }

    fn pending(&self) -> Result<Vec<PendingAction>, StoreError> {
        self.actions(
            "SELECT request_id, action_id, action_json FROM verify_actions
             WHERE done_at IS NULL ORDER BY rowid",
            params![],
        )
    }

    /// Every action saved for request `id`, done or not, in the order saved.
    fn actions_of(&self, id: &str) -> Result<Vec<PendingAction>, StoreError> {
        self.actions(
            "SELECT request_id, action_id, action_json FROM verify_actions
             WHERE request_id = ?1 ORDER BY rowid",
            params![id],
        )
    }

    fn actions(
        &self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<PendingAction>, StoreError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sqlite(e))?;
        let raw: Vec<(String, String, String)> = stmt
            .query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.sqlite(e))?;
        raw.into_iter()
            .map(|(request, id, json)| {
                let action = serde_json::from_str(&json)
                    .map_err(|_| self.corrupt("verify_actions.action_json", &id))?;
                Ok(PendingAction {
                    request,
                    id,
                    action,
                })
            })
            .collect()
    }

    fn done(&self, request: &str, action_id: &str, at: Timestamp) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE verify_actions SET done_at = ?3
                 WHERE request_id = ?1 AND action_id = ?2 AND done_at IS NULL",
                params![request, action_id, at.to_string()],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(())
    }
}

fn backend(e: StoreError) -> RequestStoreError {
    RequestStoreError::Backend(e.to_string())
}

/// Verification requests live in the run store, beside runs and deliveries.
impl RequestStore for SqliteStore {
    fn create<'a>(
        &'a self,
        request: &'a NewRequest,
    ) -> BoxFuture<'a, Result<(), RequestStoreError>> {
        Box::pin(async move {
            self.ask(|reply| Job::Verify(VerifyJob::Create(Box::new(request.clone()), reply)))
                .await
                .map_err(backend)?
        })
    }

    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredRequest>, RequestStoreError>> {
        Box::pin(async move {
            self.ask(|reply| Job::Verify(VerifyJob::Load(id.to_owned(), reply)))
                .await
                .map_err(backend)
        })
    }

    fn save<'a>(
        &'a self,
        id: &'a str,
        expected: u64,
        save: &'a Save,
    ) -> BoxFuture<'a, Result<(u64, Vec<PendingAction>), RequestStoreError>> {
        Box::pin(async move {
            self.ask(|reply| {
                Job::Verify(VerifyJob::Save {
                    id: id.to_owned(),
                    expected,
                    save: Box::new(save.clone()),
                    reply,
                })
            })
            .await
            .map_err(backend)?
        })
    }

    fn due_timers<'a>(
        &'a self,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<(String, ArmedTimer)>, RequestStoreError>> {
        Box::pin(async move {
            self.ask(|reply| Job::Verify(VerifyJob::DueTimers(now, reply)))
                .await
                .map_err(backend)
        })
    }

    fn timers<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ArmedTimer>, RequestStoreError>> {
        Box::pin(async move {
            self.ask(|reply| Job::Verify(VerifyJob::Timers(id.to_owned(), reply)))
                .await
                .map_err(backend)
        })
    }

    fn requests_of_user<'a>(
        &'a self,
        tenant: &'a str,
        user_id: &'a str,
        since: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<StoredRequest>, RequestStoreError>> {
        Box::pin(async move {
            self.ask(|reply| {
                Job::Verify(VerifyJob::OfUser {
                    tenant: tenant.to_owned(),
                    user_id: user_id.to_owned(),
                    since,
                    reply,
                })
            })
            .await
            .map_err(backend)
        })
    }

    fn pending_actions(&self) -> BoxFuture<'_, Result<Vec<PendingAction>, RequestStoreError>> {
        Box::pin(async move {
            self.ask(|reply| Job::Verify(VerifyJob::Pending(reply)))
                .await
                .map_err(backend)
        })
    }

    fn actions_of<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PendingAction>, RequestStoreError>> {
        Box::pin(async move {
            self.ask(|reply| Job::Verify(VerifyJob::ActionsOf(id.to_owned(), reply)))
                .await
                .map_err(backend)
        })
    }

    fn action_done<'a>(
        &'a self,
        request: &'a str,
        action_id: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), RequestStoreError>> {
        Box::pin(async move {
            self.ask(|reply| {
                Job::Verify(VerifyJob::Done {
                    request: request.to_owned(),
                    action_id: action_id.to_owned(),
                    at,
                    reply,
                })
            })
            .await
            .map_err(backend)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::store::conformance;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sqlite_store_behaves_and_keeps_requests_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.sqlite");
        {
            let store = SqliteStore::open(&path).unwrap();
            conformance::check(&store).await;
        }
        let store = SqliteStore::open(&path).unwrap();
        let r1 = store.load("r1").await.unwrap().unwrap();
        assert_eq!(r1.version, 2);
        assert_eq!(store.pending_actions().await.unwrap().len(), 1);
        assert_eq!(
            store
                .requests_of_user("contoso", "bob", Timestamp::UNIX_EPOCH)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
