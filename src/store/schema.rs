//! The run store's SQLite schema and connection settings.

use rusqlite::Connection;

/// Schema version written to `PRAGMA user_version`; bump with a migration when it changes.
pub const VERSION: i64 = 4;

/// Tables of version 1. The journal's primary key is the at-most-once invariant.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id            TEXT PRIMARY KEY,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    playbook_name TEXT NOT NULL,
    playbook_path TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    plan_hash     TEXT NOT NULL,
    plan_json     TEXT NOT NULL,
    status        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    run_id      TEXT NOT NULL REFERENCES runs(id),
    operator    TEXT NOT NULL,
    plan_hash   TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    PRIMARY KEY (run_id, operator, plan_hash)
);
CREATE TABLE IF NOT EXISTS journal (
    run_id     TEXT NOT NULL REFERENCES runs(id),
    user_id    TEXT NOT NULL,
    step       TEXT NOT NULL,
    intent_at  TEXT NOT NULL,
    outcome    TEXT,
    outcome_at TEXT,
    detail     TEXT,
    PRIMARY KEY (run_id, user_id, step)
);
";

/// Version 2: plans move to their own table, the blob last in its row, so SQLite streams a
/// plan into place without building the whole row in memory (`runs.plan_json` stays, empty
/// for new runs and read for runs planned under version 1).
const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS plans (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    json   BLOB NOT NULL
);
";

/// Version 3: an approval says where it came from, which audit record announced it, and
/// when an execution consumed it. Approvals stored before have no audit link and no longer
/// count (fail closed: re-approve).
const SCHEMA_V3: &str = "
ALTER TABLE approvals ADD COLUMN origin TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN audit_seq INTEGER;
ALTER TABLE approvals ADD COLUMN audit_hash TEXT;
ALTER TABLE approvals ADD COLUMN consumed_at TEXT;
";

/// Version 4: the audit trail's second witness (see `store::witness`): per trail file, the
/// trail id and the last record its writers saw durable. Only added; older binaries that
/// open the store ignore it.
const SCHEMA_V4: &str = "
CREATE TABLE IF NOT EXISTS audit_witness (
    trail_path TEXT PRIMARY KEY,
    trail_id   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
";

/// Open settings: WAL so readers (`runs show`) never block the writer, `synchronous=FULL`
/// so a committed intent survives power loss (the journal's whole point), foreign keys on.
pub fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version < 1 {
        conn.execute_batch(SCHEMA_V1)?;
    }
    if version < 2 {
        conn.execute_batch(SCHEMA_V2)?;
    }
    if version < 3 {
        conn.execute_batch(SCHEMA_V3)?;
    }
    if version < 4 {
        conn.execute_batch(SCHEMA_V4)?;
    }
    if version < VERSION {
        conn.pragma_update(None, "user_version", VERSION)?;
    }
    Ok(())
}
