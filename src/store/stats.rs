//! [`StoreStats::read`]: the counts `resetctl serve`'s `/metrics` takes from the run store,
//! on a read-only connection of its own (WAL: it never blocks the writer thread, and the
//! writer never waits for a scrape). Every figure is what the store holds across runs and
//! processes, so a run started from the command line shows up on the server's metrics too.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// Counts from the run store, each row a set of label values and a count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Runs by (tenant, status).
    pub runs: Vec<(String, String, u64)>,
    /// Users whose every journaled step has an outcome, by tenant.
    pub users_done: Vec<(String, u64)>,
    /// Journaled Graph writes by (tenant, outcome): `succeeded`, `failed`, `manual_check`,
    /// and `pending` for an intent without an outcome yet. Skipped steps wrote nothing.
    pub writes: Vec<(String, String, u64)>,
    /// Responses answered 429 over every finished execution attempt, by tenant.
    pub throttled: Vec<(String, u64)>,
    /// Operator approvals of plans, by tenant.
    pub approvals: Vec<(String, u64)>,
    /// Messages by (channel, state): `sent`, `failed`, `unknown`, or `pending`.
    pub messages: Vec<(String, String, u64)>,
    /// Verification requests by (tenant, current state).
    pub verifications: Vec<(String, String, u64)>,
    /// Approval links used, by decision (`approve`, `deny`).
    pub links_used: Vec<(String, u64)>,
}

impl StoreStats {
    /// Read the counts from the store at `path` (blocking: call it off the async threads).
    pub fn read(path: &Path) -> Result<StoreStats, StoreError> {
        let sqlite = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(sqlite)?;
        let pairs = |sql: &str| -> Result<Vec<(String, u64)>, rusqlite::Error> {
            let mut stmt = conn.prepare(sql)?;
            let rows =
                stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?;
            rows.collect()
        };
        let triples = |sql: &str| -> Result<Vec<(String, String, u64)>, rusqlite::Error> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
            })?;
            rows.collect()
        };
        let read = || -> Result<StoreStats, rusqlite::Error> {
            Ok(StoreStats {
                runs: triples(
                    "SELECT tenant, status, count(*) FROM runs GROUP BY 1, 2 ORDER BY 1, 2",
                )?,
                users_done: pairs(
                    "SELECT tenant, count(*) FROM (
                       SELECT r.tenant AS tenant FROM journal j JOIN runs r ON r.id = j.run_id
                       GROUP BY j.run_id, j.user_id HAVING count(*) = count(j.outcome))
                     GROUP BY 1 ORDER BY 1",
                )?,
                writes: triples(
                    "SELECT r.tenant, coalesce(j.outcome, 'pending'), count(*)
                     FROM journal j JOIN runs r ON r.id = j.run_id
                     WHERE j.outcome IS NULL OR j.outcome <> 'skipped'
                     GROUP BY 1, 2 ORDER BY 1, 2",
                )?,
                throttled: pairs(
                    "SELECT r.tenant, coalesce(sum(a.throttled), 0)
                     FROM attempts a JOIN runs r ON r.id = a.run_id GROUP BY 1 ORDER BY 1",
                )?,
                approvals: pairs(
                    "SELECT r.tenant, count(*) FROM approvals a JOIN runs r ON r.id = a.run_id
                     GROUP BY 1 ORDER BY 1",
                )?,
                messages: triples(
                    "SELECT channel, coalesce(state, 'pending'), count(*) FROM deliveries
                     GROUP BY 1, 2 ORDER BY 1, 2",
                )?,
                verifications: triples(
                    "SELECT tenant, coalesce(json_extract(flow_json, '$.state.state'), 'unknown'),
                            count(*)
                     FROM verify_requests GROUP BY 1, 2 ORDER BY 1, 2",
                )?,
                links_used: pairs(
                    "SELECT decision, count(*) FROM verify_tokens WHERE used_at IS NOT NULL
                     GROUP BY 1 ORDER BY 1",
                )?,
            })
        };
        read().map_err(sqlite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewRun, RunId, RunStatus, RunStore, SqliteStore};

    #[tokio::test]
    async fn counts_come_from_what_the_store_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(StoreStats::read(&path).unwrap(), StoreStats::default());
        let now = jiff::Timestamp::now();
        let id = RunId::generate(now);
        store
            .create_run(NewRun {
                id: id.clone(),
                created_at: now,
                playbook_name: "p".into(),
                playbook_path: "p.yaml".into(),
                tenant: "contoso".into(),
                plan_hash: "h".into(),
                plan: crate::store::PlanDocument::text("{}"),
            })
            .await
            .unwrap();
        store
            .set_status(&id, RunStatus::Running, now)
            .await
            .unwrap();
        let stats = StoreStats::read(&path).unwrap();
        assert_eq!(
            stats.runs,
            vec![("contoso".to_owned(), "running".to_owned(), 1)]
        );
    }
}
