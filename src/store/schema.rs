//! The run store's SQLite schema and connection settings.

use rusqlite::Connection;

/// Schema version written to `PRAGMA user_version`; bump with a migration when it changes.
pub const VERSION: i64 = 9;

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

/// Version 3: a journal row's typed facts get columns of their own (`facts` names which:
/// `membership` or `removal`), instead of being written into `detail` and parsed back.
const SCHEMA_V3: &str = "
ALTER TABLE journal ADD COLUMN facts TEXT;
ALTER TABLE journal ADD COLUMN group_id TEXT;
ALTER TABLE journal ADD COLUMN member_until TEXT;
ALTER TABLE journal ADD COLUMN member_before INTEGER;
ALTER TABLE journal ADD COLUMN of_step TEXT;
";

/// Marks the journal key of a removal attempt before version 3: `<step>#expire.<n>`.
const LEGACY_EXPIRE_MARK: &str = "#expire.";

/// Version 4: an approval says where it came from, which audit record announced it, and
/// when an execution consumed it. Approvals stored before have no audit link and no longer
/// count (fail closed: re-approve).
const SCHEMA_V4: &str = "
ALTER TABLE approvals ADD COLUMN origin TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN audit_seq INTEGER;
ALTER TABLE approvals ADD COLUMN audit_hash TEXT;
ALTER TABLE approvals ADD COLUMN consumed_at TEXT;
";

/// Version 5: the audit trail's second witness (see `store::witness`): per trail file, the
/// trail id and the last record its writers saw durable. Only added; older binaries that
/// open the store ignore it.
const SCHEMA_V5: &str = "
CREATE TABLE IF NOT EXISTS audit_witness (
    trail_path TEXT PRIMARY KEY,
    trail_id   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
";

/// Version 6: a run's incident ticket (`--ticket`, kept for `--resume`), and each execution
/// attempt's start and end, so a resumed run reports its cumulative time, 429s and
/// read-backs, and the audit records it spans. Only added; older binaries ignore them. The
/// column is added only where it is missing, so a store marked older than it is (a
/// downgrade's user_version) migrates again cleanly.
const SCHEMA_V6_TICKET: &str = "ALTER TABLE runs ADD COLUMN ticket TEXT;";

/// Version 6's table.
const SCHEMA_V6: &str = "
CREATE TABLE IF NOT EXISTS attempts (
    run_id     TEXT NOT NULL REFERENCES runs(id),
    n          INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    first_seq  INTEGER,
    ended_at   TEXT,
    status     TEXT,
    throttled  INTEGER,
    read_backs INTEGER,
    last_seq   INTEGER,
    PRIMARY KEY (run_id, n)
);
";

/// Version 7: the delivery journal of messages, one row per (run, user, step, channel slot),
/// written before a message leaves and completed after (see `comms::delivery`). Only added.
const SCHEMA_V7: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    run_id      TEXT NOT NULL REFERENCES runs(id),
    user_id     TEXT NOT NULL,
    step        TEXT NOT NULL,
    channel     TEXT NOT NULL,
    message_key TEXT NOT NULL,
    sender      TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    intent_at   TEXT NOT NULL,
    state       TEXT,
    outcome_at  TEXT,
    provider_id TEXT,
    detail      TEXT,
    PRIMARY KEY (run_id, user_id, step, channel)
);
";

/// Version 8: verification requests (see `verify::store`): each request's flow and version
/// (a save names the version it read), its armed timers (indexed by due time, so due timers
/// are found without a scan), and the actions each save left to run. Only added.
const SCHEMA_V8: &str = "
CREATE TABLE IF NOT EXISTS verify_requests (
    id                TEXT PRIMARY KEY,
    tenant            TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    requester         TEXT NOT NULL,
    origin            TEXT NOT NULL,
    reason            TEXT NOT NULL,
    created_flow_json TEXT NOT NULL,
    flow_json         TEXT NOT NULL,
    version           INTEGER NOT NULL,
    created_at        TEXT NOT NULL,
    created_ms        INTEGER NOT NULL,
    updated_at        TEXT NOT NULL,
    done              INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS verify_requests_user ON verify_requests (tenant, user_id, created_ms);
CREATE TABLE IF NOT EXISTS verify_timers (
    request_id TEXT NOT NULL REFERENCES verify_requests(id),
    timer      TEXT NOT NULL,
    due        TEXT NOT NULL,
    due_ms     INTEGER NOT NULL,
    PRIMARY KEY (request_id, timer)
);
CREATE INDEX IF NOT EXISTS verify_timers_due ON verify_timers (due_ms);
CREATE TABLE IF NOT EXISTS verify_actions (
    request_id  TEXT NOT NULL REFERENCES verify_requests(id),
    action_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    action_json TEXT NOT NULL,
    saved_at    TEXT NOT NULL,
    done_at     TEXT,
    PRIMARY KEY (request_id, action_id)
);
";

/// Version 9: approval tokens (see `verify::token`): one row per minted token under its id
/// (the SHA-256 of its random bytes, never the token), the facts it is bound to, and when it
/// was used (a redeem sets `used_at` only where it is still NULL: single use). Only added.
const SCHEMA_V9: &str = "
CREATE TABLE IF NOT EXISTS verify_tokens (
    id         TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    approver   TEXT NOT NULL,
    decision   TEXT NOT NULL,
    expires    TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_at    TEXT,
    used_ms    INTEGER
);
CREATE INDEX IF NOT EXISTS verify_tokens_request ON verify_tokens (request_id);
";

/// Open settings: WAL so readers (`runs show`) never block the writer, `synchronous=FULL`
/// so a committed intent survives power loss (the journal's whole point), foreign keys on.
/// Migrations run in one immediate transaction, so two processes opening an old store at
/// once cannot both migrate it.
pub fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version >= VERSION {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    // Read again under the write lock: another process may have migrated meanwhile.
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2)?;
    }
    if version < 3 {
        tx.execute_batch(SCHEMA_V3)?;
        backfill_v3(&tx)?;
    }
    if version < 4 {
        tx.execute_batch(SCHEMA_V4)?;
    }
    if version < 5 {
        tx.execute_batch(SCHEMA_V5)?;
    }
    if version < 6 {
        if !has_column(&tx, "runs", "ticket")? {
            tx.execute_batch(SCHEMA_V6_TICKET)?;
        }
        tx.execute_batch(SCHEMA_V6)?;
    }
    if version < 7 {
        tx.execute_batch(SCHEMA_V7)?;
    }
    if version < 8 {
        tx.execute_batch(SCHEMA_V8)?;
    }
    if version < 9 {
        tx.execute_batch(SCHEMA_V9)?;
    }
    if version < VERSION {
        tx.pragma_update(None, "user_version", VERSION)?;
    }
    tx.commit()
}

/// Whether `table` has a column `name`.
fn has_column(conn: &Connection, table: &str, name: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt
        .query_map([], |row| row.get::<_, String>(1))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names.iter().any(|n| n == name))
}

/// Give rows written before version 3 their typed facts, so `runs expire` still ends the
/// memberships of older runs. Until then a successful `add_to_group` wrote its group and end
/// into `detail` as `member of <group> until <time>`, after `read back: ` when a read-back
/// confirmed it; this is the only place that text is still parsed. A membership added by a
/// direct call did not exist before (Graph refuses to add an existing member); one confirmed
/// by a read-back may have, and is left for an operator.
fn backfill_v3(conn: &Connection) -> rusqlite::Result<()> {
    let legacy: Vec<(i64, String)> = conn
        .prepare(
            "SELECT rowid, detail FROM journal
             WHERE outcome = 'succeeded' AND step LIKE '%:add_to_group' AND detail IS NOT NULL",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (rowid, detail) in legacy {
        let Some((group_id, until, member_before)) = legacy_membership(&detail) else {
            continue;
        };
        conn.execute(
            "UPDATE journal SET facts = 'membership', group_id = ?2, member_until = ?3,
                                member_before = ?4
             WHERE rowid = ?1",
            rusqlite::params![rowid, group_id, until, member_before],
        )?;
    }
    conn.execute(
        "UPDATE journal SET facts = 'removal',
                            of_step = substr(step, 1, instr(step, ?1) - 1),
                            group_id = (SELECT a.group_id FROM journal a
                                        WHERE a.run_id = journal.run_id
                                          AND a.user_id = journal.user_id
                                          AND a.step = substr(journal.step, 1,
                                                              instr(journal.step, ?1) - 1))
         WHERE instr(step, ?1) > 0
           AND EXISTS (SELECT 1 FROM journal a
                       WHERE a.run_id = journal.run_id AND a.user_id = journal.user_id
                         AND a.step = substr(journal.step, 1, instr(journal.step, ?1) - 1)
                         AND a.group_id IS NOT NULL)",
        [LEGACY_EXPIRE_MARK],
    )?;
    Ok(())
}

/// `(group, end, member before)` of a version-2 `add_to_group` detail.
fn legacy_membership(detail: &str) -> Option<(String, String, Option<bool>)> {
    let rest = &detail[detail.find("member of ")? + "member of ".len()..];
    let (group, until) = rest.split_once(" until ")?;
    let until: jiff::Timestamp = until.trim().parse().ok()?;
    let member_before = (!detail.starts_with("read back:")).then_some(false);
    Some((group.to_owned(), until.to_string(), member_before))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_details_give_their_membership() {
        assert_eq!(
            legacy_membership("member of g1 until 2026-11-23T10:00:00Z"),
            Some(("g1".into(), "2026-11-23T10:00:00Z".into(), Some(false)))
        );
        assert_eq!(
            legacy_membership("read back: member of g1 until 2026-11-23T10:00:00Z"),
            Some(("g1".into(), "2026-11-23T10:00:00Z".into(), None)),
            "a read-back cannot tell whether the membership was there before"
        );
        assert_eq!(legacy_membership("removed from g1"), None);
        assert_eq!(legacy_membership("member of g1 until yesterday"), None);
    }
}
