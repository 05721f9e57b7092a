//! Approval tokens in the run store (schema version 9): the `verify_tokens` table behind
//! [`TokenStore`]. Each operation is a job of the store's writer thread; a consume is one
//! `UPDATE ... WHERE used_at IS NULL` (then the request's other tokens, in the same
//! transaction), so of two processes redeeming one token, or two answers to one request,
//! only one changes the row. The table holds token ids (hashes), never tokens.

use futures::future::BoxFuture;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::sqlite::{AtPath, Deferred, Job, Reply, SqliteStore, defer, settle};
use crate::verify::token::{Decision, TokenRecord, TokenStore, TokenStoreError};

/// One approval-token job for the writer thread.
pub(super) enum TokenJob {
    Insert(Box<TokenRecord>, Reply<Result<(), TokenStoreError>>),
    Get(String, Reply<Option<TokenRecord>>),
    Consume(String, Timestamp, Reply<bool>),
}

/// The answer of a job that never ran (its transaction could not start).
pub(super) fn defer_error(job: TokenJob) -> Deferred {
    let e = || StoreError::CommitFailed(String::new());
    match job {
        TokenJob::Insert(_, r) => defer(r, Err(e())),
        TokenJob::Get(_, r) => defer(r, Err(e())),
        TokenJob::Consume(_, _, r) => defer(r, Err(e())),
    }
}

/// Run one job on the writer's connection; whether it succeeded (to keep its savepoint).
pub(super) fn execute(conn: &Connection, path: &str, job: TokenJob) -> (bool, Deferred) {
    let db = TokenDb { conn, path };
    match job {
        TokenJob::Insert(record, reply) => {
            let result = db.insert(&record);
            let ok = matches!(result, Ok(Ok(())));
            (ok, defer(reply, result))
        }
        TokenJob::Get(id, reply) => settle(reply, db.get(&id)),
        TokenJob::Consume(id, at, reply) => settle(reply, db.consume(&id, at)),
    }
}

/// The SQL of each operation.
struct TokenDb<'a> {
    conn: &'a Connection,
    path: &'a str,
}

impl AtPath for TokenDb<'_> {
    fn path(&self) -> &str {
        self.path
    }
}

impl TokenDb<'_> {
    fn insert(&self, r: &TokenRecord) -> Result<Result<(), TokenStoreError>, StoreError> {
        let written = self
            .conn
            .execute(
                "INSERT INTO verify_tokens
                   (id, request_id, approver, decision, expires, expires_ms, used_at, used_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO NOTHING",
                params![
                    r.id,
                    r.request,
                    r.approver,
                    r.decision.as_str(),
                    r.expires.to_string(),
                    r.expires.as_millisecond(),
                    r.used_at.map(|t| t.to_string()),
                    r.used_at.map(|t| t.as_millisecond()),
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        if written == 0 {
            return Ok(Err(TokenStoreError::Duplicate(r.id.clone())));
        }
        Ok(Ok(()))
    }

    fn get(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        type Row = (String, String, String, i64, Option<i64>);
        let row: Option<Row> = self
            .conn
            .query_row(
                "SELECT request_id, approver, decision, expires_ms, used_ms
                 FROM verify_tokens WHERE id = ?1",
                [id],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        let Some((request, approver, decision, expires_ms, used_ms)) = row else {
            return Ok(None);
        };
        let time = |what, ms: i64| {
            Timestamp::from_millisecond(ms).map_err(|_| self.corrupt(what, &ms.to_string()))
        };
        Ok(Some(TokenRecord {
            id: id.to_owned(),
            request,
            approver,
            decision: Decision::parse(&decision)
                .ok_or_else(|| self.corrupt("verify_tokens.decision", &decision))?,
            expires: time("verify_tokens.expires_ms", expires_ms)?,
            used_at: used_ms
                .map(|ms| time("verify_tokens.used_ms", ms))
                .transpose()?,
        }))
    }

    fn consume(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE verify_tokens SET used_at = ?2, used_ms = ?3
                 WHERE id = ?1 AND used_ms IS NULL AND expires_ms > ?3",
                params![id, at.to_string(), at.as_millisecond()],
            )
            .map_err(|e| self.sqlite(e))?;
        if changed != 1 {
            return Ok(false);
        }
        // The request is decided: its other links (the paired answer, the card's and the
        // SMS's) are spent in the same transaction, so no second answer can race this one.
        self.conn
            .execute(
                "UPDATE verify_tokens SET used_at = ?2, used_ms = ?3
                 WHERE used_ms IS NULL
                   AND request_id = (SELECT request_id FROM verify_tokens WHERE id = ?1)",
                params![id, at.to_string(), at.as_millisecond()],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(true)
    }
}

fn backend(e: StoreError) -> TokenStoreError {
    TokenStoreError::Backend(e.to_string())
}

/// Approval tokens live in the run store, beside the requests they answer.
impl TokenStore for SqliteStore {
    fn insert<'a>(&'a self, record: &'a TokenRecord) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        Box::pin(async move {
            self.ask(|reply| Job::Token(TokenJob::Insert(Box::new(record.clone()), reply)))
                .await
                .map_err(backend)?
        })
    }

    fn token<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, TokenStoreError>> {
        Box::pin(async move {
            self.ask(|reply| Job::Token(TokenJob::Get(id.to_owned(), reply)))
                .await
                .map_err(backend)
        })
    }

    fn consume<'a>(
        &'a self,
        id: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        Box::pin(async move {
            self.ask(|reply| Job::Token(TokenJob::Consume(id.to_owned(), at, reply)))
                .await
                .map_err(backend)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::verify::token::{Client, Refusal, Tokens, conformance};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sqlite_store_behaves_and_a_used_token_stays_used_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.sqlite");
        let expires = Timestamp::from_second(1_700_000_900).unwrap();
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let token = {
            let store = Arc::new(SqliteStore::open(&path).unwrap());
            conformance::check(store.clone()).await;
            let tokens = Tokens::new(conformance::key(), store);
            let token = tokens
                .mint("vr-a", "mgr-1", Decision::Approve, expires)
                .await
                .unwrap();
            tokens
                .redeem(
                    token.expose(),
                    Some("vr-a"),
                    Decision::Approve,
                    &Client::default(),
                    now,
                )
                .await
                .unwrap();
            token
        };
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        let tokens = Tokens::new(conformance::key(), store);
        assert_eq!(
            tokens
                .redeem(
                    token.expose(),
                    Some("vr-a"),
                    Decision::Approve,
                    &Client::default(),
                    now,
                )
                .await,
            Err(Refusal::Replayed)
        );
        // The file holds the token's id, never the token or its random part.
        drop(tokens);
        let conn = Connection::open(&path).unwrap();
        let random = token.expose().split_once('.').unwrap().0;
        let leaked: i64 = conn
            .query_row(
                "SELECT count(*) FROM verify_tokens
                 WHERE instr(id || request_id || approver, ?1) > 0",
                [random],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(leaked, 0);
    }
}
