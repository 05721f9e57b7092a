//! The run store as the audit trail's second witness ([`audit::Witness`]): one row per trail
//! file in `audit_witness`, holding the trail id and the last record its writers saw durable.
//!
//! A trail deleted, emptied or cut short together with its head looks, from its own files,
//! like a trail never written or a shorter one; this row remembers otherwise. Rows are keyed by
//! the trail's live file path (its directory resolved), so one store can witness the trail of
//! each configuration it was used with.
//!
//! The witness has its own connection to the store's file rather than a job on the store's
//! writer thread: the audit writer calls it from its own blocking thread, under the trail's
//! lock, and it is one small upsert per audit batch, committed without an fsync of its own
//! (see [`SqliteStore::audit_witness`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{SqliteStore, StoreError, schema};
use crate::audit::{self, AuditError, Mark};

/// One trail's witness row in one run store. Obtain it with [`SqliteStore::audit_witness`]
/// (read and write) or [`StoreWitness::read_only`] (`audit verify`).
#[derive(Debug)]
pub struct StoreWitness {
    conn: Mutex<Connection>,
    store: PathBuf,
    key: String,
}

impl SqliteStore {
    /// The witness of the trail whose live file is `trail`, in this store.
    pub fn audit_witness(&self, trail: &Path) -> Result<StoreWitness, StoreError> {
        let store = self.path().to_owned();
        let sqlite = |source| StoreError::Sqlite {
            path: store.display().to_string(),
            source,
        };
        let conn = Connection::open(&store).map_err(sqlite)?;
        schema::prepare(&conn).map_err(sqlite)?;
        // No fsync per mark: a witness that loses its last marks to a power cut is behind the
        // trail, which only weakens it, never makes an intact trail fail. The next commit of
        // the store (FULL) makes them durable with its own.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        Ok(StoreWitness {
            conn: Mutex::new(conn),
            key: trail_key(trail),
            store,
        })
    }
}

impl StoreWitness {
    /// The witness of `trail` in the store at `store`, opened read-only: `None` when there is
    /// no store there. Never creates or migrates anything (a store from before the witness
    /// table simply has no mark).
    pub fn read_only(store: &Path, trail: &Path) -> Result<Option<StoreWitness>, StoreError> {
        if !store.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            store,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Sqlite {
            path: store.display().to_string(),
            source,
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|source| StoreError::Sqlite {
                path: store.display().to_string(),
                source,
            })?;
        Ok(Some(StoreWitness {
            conn: Mutex::new(conn),
            key: trail_key(trail),
            store: store.to_owned(),
        }))
    }

    /// The store file, for messages.
    pub fn store(&self) -> &Path {
        &self.store
    }

    fn error(&self, what: &str, err: impl std::fmt::Display) -> AuditError {
        AuditError::Witness(format!("run store {}: {what}: {err}", self.store.display()))
    }
}

impl audit::Witness for StoreWitness {
    fn last_seen(&self) -> Result<Option<Mark>, AuditError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| self.error("read", "a previous use panicked"))?;
        let has_table: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_witness'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| self.error("read", e))?;
        if !has_table {
            return Ok(None);
        }
        let row: Option<(String, i64, String)> = conn
            .query_row(
                "SELECT trail_id, seq, hash FROM audit_witness WHERE trail_path = ?1",
                params![self.key],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(|e| self.error("read", e))?;
        let Some((trail, seq, hash)) = row else {
            return Ok(None);
        };
        let corrupt = |what: &str, value: &str| {
            self.error(
                "corrupt audit_witness row",
                format!("{what} {value:?} for {}", self.key),
            )
        };
        Ok(Some(Mark {
            trail: trail.parse().map_err(|_| corrupt("trail_id", &trail))?,
            seq: u64::try_from(seq).map_err(|_| corrupt("seq", &seq.to_string()))?,
            hash,
        }))
    }

    fn record(&self, mark: &Mark) -> Result<(), AuditError> {
        let seq = i64::try_from(mark.seq)
            .map_err(|_| self.error("record", format!("seq {} is out of range", mark.seq)))?;
        let conn = self
            .conn
            .lock()
            .map_err(|_| self.error("record", "a previous use panicked"))?;
        conn.execute(
            "INSERT INTO audit_witness (trail_path, trail_id, seq, hash, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (trail_path) DO UPDATE SET
                 trail_id = excluded.trail_id, seq = excluded.seq, hash = excluded.hash,
                 updated_at = excluded.updated_at",
            params![
                self.key,
                mark.trail.to_string(),
                seq,
                mark.hash,
                Timestamp::now().to_string()
            ],
        )
        .map_err(|e| self.error("record", e))?;
        Ok(())
    }
}

/// The row key of a trail: its live file path with the directory resolved (symbolic links,
/// `..`), so `audit.jsonl` and `./dir/../audit.jsonl` name one trail. Falls back to the path
/// made absolute when the directory does not exist (yet).
fn trail_key(trail: &Path) -> String {
    let name = trail.file_name().unwrap_or(trail.as_os_str());
    let dir = match trail.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let resolved = std::fs::canonicalize(&dir)
        .or_else(|_| std::path::absolute(&dir))
        .unwrap_or(dir);
    resolved.join(name).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Witness;

    fn mark(seq: u64) -> Mark {
        Mark {
            trail: uuid::Uuid::from_u128(42),
            seq,
            hash: format!("{seq:064x}"),
        }
    }

    #[test]
    fn marks_are_kept_per_trail_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("runs.sqlite");
        let a = dir.path().join("audit.jsonl");
        let b = dir.path().join("other/audit.jsonl");
        {
            let store = SqliteStore::open(&db).unwrap();
            let wa = store.audit_witness(&a).unwrap();
            assert_eq!(wa.last_seen().unwrap(), None);
            wa.record(&mark(3)).unwrap();
            wa.record(&mark(7)).unwrap();
            assert_eq!(wa.last_seen().unwrap(), Some(mark(7)));
            assert_eq!(store.audit_witness(&b).unwrap().last_seen().unwrap(), None);
        }
        // The same trail named another way, read-only, after the store was closed.
        let same = dir.path().join("other/../audit.jsonl");
        std::fs::create_dir_all(dir.path().join("other")).unwrap();
        let ro = StoreWitness::read_only(&db, &same).unwrap().unwrap();
        assert_eq!(ro.last_seen().unwrap(), Some(mark(7)));
        assert!(ro.record(&mark(8)).is_err(), "read-only");
        assert!(
            StoreWitness::read_only(&dir.path().join("none.sqlite"), &a)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_store_from_before_the_witness_reads_as_unwitnessed_and_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("runs.sqlite");
        let trail = dir.path().join("audit.jsonl");
        {
            // A store of the version before: no audit_witness table.
            drop(SqliteStore::open(&db).unwrap());
            let conn = Connection::open(&db).unwrap();
            // Version 4: the last before the witness table.
            conn.execute_batch("DROP TABLE audit_witness; PRAGMA user_version = 4;")
                .unwrap();
        }
        let ro = StoreWitness::read_only(&db, &trail).unwrap().unwrap();
        assert_eq!(ro.last_seen().unwrap(), None);
        drop(ro);
        let store = SqliteStore::open(&db).unwrap();
        let w = store.audit_witness(&trail).unwrap();
        w.record(&mark(1)).unwrap();
        assert_eq!(w.last_seen().unwrap(), Some(mark(1)));
    }
}
