//! The one error type of the audit module.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where and why a trail stopped verifying: the FIRST bad record.
///
/// Exists so that `audit verify` (and the writer refusing to append to a broken trail) can name
/// one precise place: the file, its 1-based line, the record's sequence number (the one found
/// there, or the one expected there when the line cannot be read) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The trail file holding the bad record.
    pub file: PathBuf,
    /// 1-based line number of the bad record in `file`.
    pub line: u64,
    /// Sequence number of the bad record (the expected one when the line does not parse).
    pub seq: u64,
    /// What is wrong, in words an operator can act on.
    pub reason: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: record seq {}: {}",
            self.file.display(),
            self.line,
            self.seq,
            self.reason
        )
    }
}

/// Everything that can go wrong while recording, opening or verifying a trail.
///
/// No variant ever carries a key, a secret or a detail value: only key names, paths and
/// positions, so an error message can be printed and logged safely.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file of the trail could not be read, written, synced or renamed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", "fsync", "rename", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The chain is broken: a record was edited, deleted, inserted, reordered, spliced in from
    /// another trail, or records were dropped from the end.
    #[error("{0}")]
    Broken(Break),
    /// The trail is keyed (HMAC-SHA256) and no key was given, so it cannot be verified.
    #[error(
        "{}:{line}: this trail is keyed (hmac-sha256): it cannot be verified without its key (pass --key-file or configure audit.key_file/key_env)",
        file.display()
    )]
    KeyRequired {
        /// First file that showed the keyed algorithm.
        file: PathBuf,
        /// Line in that file.
        line: u64,
    },
    /// A key was given but the trail is not keyed: either the wrong trail or a downgrade
    /// (someone rewrote a keyed trail as plain SHA-256 to recompute it without the key).
    #[error(
        "{}:{line}: a key was given but this record is not keyed (alg {alg}): the trail is plain SHA-256 or was downgraded",
        file.display()
    )]
    NotKeyed {
        /// The file concerned.
        file: PathBuf,
        /// Line in that file (0 for the head file).
        line: u64,
        /// The algorithm the record claims.
        alg: String,
    },
    /// The given key is not the key this trail was written with (its key id differs).
    #[error(
        "{}: the given key is not this trail's key (key id {given}, the chain head names {expected}; or the head was altered)",
        head.display()
    )]
    WrongKey {
        /// The chain head file that names the trail's key id.
        head: PathBuf,
        /// Key id of the given key.
        given: String,
        /// Key id recorded in the head.
        expected: String,
    },
    /// The chain head file is missing although the trail has records: truncation cannot be
    /// ruled out, so the trail is not accepted.
    #[error(
        "{}: the chain head file is missing although the trail has records; truncation cannot be ruled out. If it was lost, rebuild it explicitly (the trail records that it was): `resetctl audit reseal --as OPERATOR --reason TEXT`",
        path.display()
    )]
    HeadMissing {
        /// Where the head file was expected.
        path: PathBuf,
    },
    /// The chain head file exists but cannot be trusted (bad syntax or bad seal).
    #[error("{}: chain head file is invalid: {reason}", path.display())]
    HeadInvalid {
        /// The head file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// The HMAC key could not be loaded or is unusable. Never contains the key itself.
    #[error("audit key: {0}")]
    Key(String),
    /// The audit configuration is unusable.
    #[error("audit configuration: {0}")]
    Config(String),
    /// A detail key looks like it names a secret (`password`, `token`, `tap`, ...).
    #[error(
        "audit detail `{key}` looks like a secret and is refused: secrets never enter the audit trail"
    )]
    SecretKey {
        /// The refused detail key (the value is never shown).
        key: String,
    },
    /// A detail value looks like a credential (for example a JWT bearer token).
    #[error(
        "audit detail `{key}` holds a value that looks like a credential ({kind}) and is refused"
    )]
    SecretValue {
        /// The detail key whose value was refused.
        key: String,
        /// What the value looked like.
        kind: &'static str,
    },
    /// An event field is malformed (empty action, bad characters, too long, ...).
    #[error("audit event field `{field}`: {reason}")]
    InvalidEvent {
        /// The field concerned.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The writer has been closed (or its task ended); nothing more can be recorded.
    #[error("the audit writer is closed")]
    Closed,
    /// A write or fsync failed earlier; the writer stopped so that no record is ever acknowledged
    /// without being durable. Reopen the trail (which re-checks it) to continue.
    #[error("the audit writer stopped after an earlier failure: {0}")]
    WriterFailed(String),
    /// The trail is not where its witness (the run store, or this writer's own last batch)
    /// saw it: deleted, emptied, cut short or replaced. Nothing is appended until an operator
    /// starts a new trail explicitly.
    #[error(
        "{}: the audit trail was witnessed up to seq {seq} of trail {trail}, but {found}: it was deleted, truncated or replaced. Nothing is appended to it. Keep its files as evidence, then start a new trail that records this: `resetctl audit new-trail --as OPERATOR --reason TEXT`",
        path.display()
    )]
    Vanished {
        /// The trail's live file.
        path: PathBuf,
        /// The trail id witnessed.
        trail: uuid::Uuid,
        /// The last sequence number witnessed.
        seq: u64,
        /// What the files show instead.
        found: String,
    },
    /// The witness could not be read or updated.
    #[error("audit witness: {0}")]
    Witness(String),
    /// An explicit recovery (`new-trail`, `reseal`) was refused; the reason says what to do.
    #[error("{0}")]
    Recovery(String),
    /// No trail files were found or given.
    #[error("no audit trail files found at {}", path.display())]
    NoFiles {
        /// The trail path that was searched.
        path: PathBuf,
    },
}

impl AuditError {
    /// Build an [`AuditError::Io`] (used with `map_err`).
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| AuditError::Io {
            action,
            path,
            source,
        }
    }
}
