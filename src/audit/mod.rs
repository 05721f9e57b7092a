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
//! someone who rewrites the trail *and* the head consistently; keyed mode can, and the witness
//! (below) catches it when the rewrite ends before the witnessed record or changes it.
//!
//! # Files and rotation
//!
//! The live file is the configured path; when appending a record would make it exceed
//! `max_file_bytes`, it is renamed `<path>.N` (N = 1, 2, … never reused, 1 the oldest) and a new
//! live file starts. The chain carries across: the first record of the new file has the `prev`
//! of the last record of the old one. Verification takes the files in that order.
//!
//! Beside the trail: `<path>.head` (the chain head) and `<path>.lock`, an advisory OS lock
//! (`flock`) taken for each append batch. Verifying a trail by its path requires its head
//! whenever it has records, even when the live file itself is gone (so deleting the live file
//! and the head after a rotation is caught).
//!
//! # Several writers
//!
//! Several writers — several resetctl processes on one data directory (`plan` and `runs
//! approve` while a run executes), or several [`AuditHandle`]s in one process — may append to
//! one trail. Each writer batches its own callers' records (group commit) and appends a batch
//! under `<path>.lock`: it takes the lock, re-reads the head and checks that the records other
//! writers appended since its last batch continue the chain from where it left it and reach
//! that head (when neither the head nor the live file's size changed, it reads nothing),
//! rotates if needed, appends, fsyncs, rewrites the head, tells the witness, and releases the
//! lock. A record is acknowledged only after it and the head are fsync'd (and the witness told).
//! Opening a trail takes the lock too, checks the last file's records against the head and
//! refuses a broken trail; a final line cut short by a crash mid-write (never acknowledged: the
//! head does not reach it) is removed, under the lock, by whichever writer finds it. `verify` may
//! run while writers append: it reads the head before the records, and the head is only ever
//! written after the records it names are durable.
//!
//! # Witness and recovery
//!
//! A [`Witness`] (the run store implements it) remembers the trail id and the last `(seq, hash)`
//! of every durable batch. Opening a trail for writing and `audit verify` compare the trail with
//! it: a trail that is gone, emptied, shorter than the witnessed seq, another trail, or holding
//! another record at the witnessed seq is [`AuditError::Vanished`], and nothing is appended to
//! it. A writer that already appended also refuses to continue a trail that no longer continues
//! from its own last batch. Recovery is explicit and recorded: [`new_trail`] moves whatever is
//! left aside (never deleting it) and starts a trail whose first record names the old trail,
//! what the witness had seen, who and why; [`reseal`] rebuilds a lost or damaged head of a trail
//! whose records are intact and not behind the witness, and appends a record saying so.
//!
//! # Limits
//!
//! - Without a witness, removing the whole trail together with its head is not detectable from
//!   the files alone, and the next writer starts a new chain. With the run store as witness it
//!   is, unless the store is removed too (or the trail is verified against another store).
//! - In plain mode, a trail truncated or rewritten *after* the witnessed record, with its head
//!   re-sealed, verifies; keyed mode stops that (the head and links need the key). Ship the trail
//!   to a SIEM (`resetctl audit export`) for a copy outside the machine.
//! - The witness's marks are committed without an fsync of their own: after a power cut it may
//!   be a few batches behind, which weakens it and never fails an intact trail.
//! - A writer waits for the lock without a limit: a process stopped (SIGSTOP) in the middle of a
//!   batch holds up the others until it continues or ends.
//! - [`new_trail`] while another process writes stops that writer (its next batch finds its
//!   trail gone): run recoveries when no run is executing.
//! - A trail must be verified from its first file (retention that deletes old files is not
//!   supported yet).

mod chain;
mod config;
mod error;
mod files;
mod head;
mod lock;
mod lookup;
mod record;
mod recover;
mod tail;
mod trail;
mod value;
mod verify;
mod witness;
mod writer;

pub mod cef;

pub use chain::{Alg, Key, MIN_KEY_BYTES};
pub use config::{AuditConfig, DEFAULT_MAX_FILE_BYTES, MIN_MAX_FILE_BYTES};
pub use error::{AuditError, Break};
pub use files::{chain_order, discover};
pub use head::head_path;
pub use lookup::find;
pub use record::{Event, Record};
pub use recover::{NewTrail, Recovery, Resealed, new_trail, reseal};
/// The seal of [`AuditValue`], for other modules of this crate (see `value.rs`).
#[allow(
    unused_imports,
    reason = "for modules that will let their own enums into details; none does yet"
)]
pub(crate) use value::sealed;
pub use value::{AuditValue, DetailValue, Details, Outcome};
pub use verify::{
    HeadCheck, VerifyReport, check_witness, for_each_record, verify, verify_trail,
    verify_trail_witnessed,
};
pub use witness::{Mark, Witness};
pub use writer::{AuditHandle, Receipt};
