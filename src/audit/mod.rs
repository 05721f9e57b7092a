//! The tamper-evident audit trail: an append-only, hash-chained JSONL file, its single writer,
//! its redaction layer and its verifier.
//!
//! Every later part of resetctl (engine, single-user flow, server) records what it does through
//! an [`AuditHandle`]; `resetctl audit verify` checks the result with [`verify`].
//!
//! # Record format
//!
//! One record per line (`\n`-terminated, UTF-8), a JSON object with exactly these keys in this
//! order, no whitespace between tokens (serde_json's compact form):
//!
//! ```text
//! {"v":1,"trail":"<uuid>","seq":<u64>,"time":"<RFC 3339 UTC>","alg":"sha256"|"hmac-sha256",
//!  "actor":"…","action":"…","subject":"…","outcome":"attempt|success|failure|refused|skipped",
//!  "details":{<key>:<string|integer|bool>, … sorted by key},"prev":"<64 hex>","hash":"<64 hex>"}
//! ```
//!
//! - `trail`: a random UUID chosen when the trail is created, in every record. A record copied
//!   from another trail fails verification even when its `seq` fits ("spliced in").
//! - `seq`: 1, 2, 3, … without gaps, continuous across rotated files.
//! - `time`: UTC, microseconds, `Z` (for example `2026-01-02T03:04:05.000000Z`). Not checked for
//!   order (clocks step); `seq` is the order.
//! - `alg`: the link function of the whole trail (see keyed mode).
//!
//! **Canonical bytes** of a record: the exact bytes of its line as written, without the
//! trailing `\n` and without the final `,"hash":"<64 hex>"` (so the line ends `…"prev":"<hex>"}`).
//! The verifier hashes the bytes it reads and never re-serializes, so the check does not depend
//! on any JSON library's formatting.
//!
//! **Links**: `hash` = H(canonical bytes of this record) and `prev` = the previous record's
//! `hash`, where H is SHA-256 (lowercase hex). The first record's `prev` is the **genesis
//! value** H(`"resetctl-audit-genesis-v1:" + trail id`), bound to the trail id.
//!
//! Because each record carries its own hash, an edited record is named itself (its `hash` no
//! longer matches), a deleted or reordered record shows as a `seq` gap or repeat, an inserted
//! record as a repeated `seq` or a broken `prev`, and a record from another trail by its `trail`.
//!
//! # Keyed mode
//!
//! With a key configured ([`AuditConfig::key_file`] or [`AuditConfig::key_env`], hexadecimal,
//! at least 32 bytes), H is HMAC-SHA256 with that key and every record says
//! `"alg":"hmac-sha256"`. Whoever can write the files but lacks the key cannot recompute the
//! chain. Verifying a keyed trail without the key fails with [`AuditError::KeyRequired`] (never
//! "ok"); verifying with a key refuses plain records ([`AuditError::NotKeyed`]), so a keyed
//! trail rewritten as plain SHA-256 (a downgrade) is detected.
//!
//! # Chain head and truncation
//!
//! Beside the trail, `<trail>.head` holds the last record's `seq` and `hash` (format in
//! `head.rs`), sealed with H and replaced atomically after every fsync'd batch. Dropping records
//! from the end leaves the head pointing past the end: detected. Plain mode cannot stop
//! someone who rewrites the trail *and* the head consistently; keyed mode can.
//!
//! # Files and rotation
//!
//! The live file is the configured path; when appending a record would make it exceed
//! `max_file_bytes`, it is renamed `<path>.N` (N = 1, 2, … never reused, 1 the oldest) and a new
//! live file starts. The chain carries across: the first record of the new file has the `prev`
//! of the last record of the old one. Verification takes the files in that order.
//!
//! Beside the trail: `<path>.head` (the chain head) and `<path>.lock`, an advisory OS lock held
//! by the one writer, so a second writer (another process) is refused with
//! [`AuditError::Locked`] instead of forking the chain. Opening an existing trail checks the
//! last file's records against the head and refuses a broken trail; a final line cut short by
//! a crash mid-write (never acknowledged: the head does not reach it) is removed.
//! `verify` may run while the writer appends: it reads the head before the records, and the
//! head is only ever written after the records it names are durable.
//!
//! # Limits
//!
//! Removing the whole trail together with its head, or truncating a plain trail and rewriting
//! its head, is not detectable from the files alone: ship the trail to a SIEM
//! (`resetctl audit export`) for an external copy. A trail must be verified from its first file
//! (retention that deletes old files is not supported yet).

mod chain;
mod config;
mod error;
mod files;
mod head;
mod lookup;
mod record;
mod value;
mod verify;
mod writer;

pub mod cef;

pub use chain::{Alg, Key, MIN_KEY_BYTES};
pub use config::{AuditConfig, DEFAULT_MAX_FILE_BYTES, MIN_MAX_FILE_BYTES};
pub use error::{AuditError, Break};
pub use files::{chain_order, discover};
pub use head::head_path;
pub use lookup::find;
pub use record::{Event, Record};
/// The seal of [`AuditValue`], for other modules of this crate (see `value.rs`).
#[allow(
    unused_imports,
    reason = "for the modules of later issues that let their own enums into details"
)]
pub(crate) use value::sealed;
pub use value::{AuditValue, DetailValue, Details, Outcome};
pub use verify::{HeadCheck, VerifyReport, for_each_record, verify, verify_trail};
pub use writer::{AuditHandle, Receipt};
