//! The verifier: walks a trail's files in chain order, checks every record and the chain head,
//! and names the first bad record.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::chain::{Alg, Key, Linker};
use super::error::{AuditError, Break};
use super::files;
use super::head::{Head, head_path};
use super::record::{Record, canonical_bytes};

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The trail id (`None` for an empty trail).
    pub trail: Option<uuid::Uuid>,
    /// Link algorithm of the trail.
    pub alg: Alg,
    /// Records checked.
    pub records: u64,
    /// Files checked, in chain order.
    pub files: Vec<PathBuf>,
    /// Sequence number of the last record (0 when empty).
    pub last_seq: u64,
    /// Hash of the last record (empty when empty).
    pub last_hash: String,
    /// What the comparison with the chain head showed.
    pub head: HeadCheck,
    /// The live file ends with a record cut short *after* every record the head names: a write
    /// in progress or interrupted by a crash, never acknowledged. The writer removes it when it
    /// next opens the trail.
    pub partial_tail: bool,
}

/// The outcome of comparing the trail with its chain head file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadCheck {
    /// The head names the last record exactly.
    Matched {
        /// The head's seq.
        seq: u64,
    },
    /// The trail holds valid records after the head's record: written by a writer that stopped
    /// (crash) between its fsync and its head update. Nothing is missing.
    Behind {
        /// The head's seq.
        seq: u64,
        /// Records after it.
        extra: u64,
    },
    /// No head was checked: only rotated files were given (the head describes the live file).
    NotChecked,
}

/// Checks records one after another; shared by the verifier and by the writer's open check.
pub(crate) struct Checker<'a> {
    linker: &'a Linker,
    trail: Option<uuid::Uuid>,
    trail_source: &'static str,
    /// `(seq, hash)` of the last accepted record.
    last: Option<(u64, String)>,
    /// Whether the first record must be the trail's first (seq 1, genesis `prev`).
    from_start: bool,
    /// The trail's algorithm once known (from a valid head, or from the first record).
    alg: Option<Alg>,
}

impl<'a> Checker<'a> {
    /// A checker expecting the chain from its beginning (`from_start`) or from any record.
    /// `trail` comes from a valid chain head, which also fixes the algorithm to the linker's
    /// (the head was checked against it); without a head the first record fixes both.
    pub(crate) fn new(linker: &'a Linker, trail: Option<uuid::Uuid>, from_start: bool) -> Self {
        Checker {
            linker,
            trail,
            trail_source: "the chain head",
            last: None,
            from_start,
            alg: trail.map(|_| linker.alg()),
        }
    }

    /// `(seq, hash)` of the last accepted record.
    pub(crate) fn last(&self) -> Option<&(u64, String)> {
        self.last.as_ref()
    }

    /// The trail id seen (or given).
    pub(crate) fn trail(&self) -> Option<uuid::Uuid> {
        self.trail
    }

    /// Check one line (without its newline) at `file:line`.
    pub(crate) fn check(
        &mut self,
        file: &Path,
        line: u64,
        bytes: &[u8],
    ) -> Result<Record, AuditError> {
        let expected_seq = self.last.as_ref().map_or(1, |(s, _)| s + 1);
        let broken = |seq: u64, reason: String| {
            AuditError::Broken(Break {
                file: file.to_owned(),
                line,
                seq,
                reason,
            })
        };
        if bytes.is_empty() {
            return Err(broken(
                expected_seq,
                "empty line where a record was expected".into(),
            ));
        }
        let record = Record::parse(bytes).map_err(|reason| broken(expected_seq, reason))?;
        let seq = record.seq;
        let Some(alg) = Alg::parse(&record.alg) else {
            return Err(broken(seq, format!("unknown algorithm {:?}", record.alg)));
        };
        match self.alg {
            // Once the trail's algorithm is known (from the head or the first record), a record
            // claiming another one is damage, not a reason to ask for a key.
            Some(fixed) if fixed != alg => {
                return Err(broken(
                    seq,
                    format!(
                        "its algorithm {} differs from the trail's ({}): inserted or altered",
                        alg.as_str(),
                        fixed.as_str()
                    ),
                ));
            }
            Some(_) => {}
            None => {
                match (alg, self.linker.alg()) {
                    (Alg::HmacSha256, Alg::Sha256) => {
                        return Err(AuditError::KeyRequired {
                            file: file.to_owned(),
                            line,
                        });
                    }
                    (Alg::Sha256, Alg::HmacSha256) => {
                        return Err(AuditError::NotKeyed {
                            file: file.to_owned(),
                            line,
                            alg: record.alg,
                        });
                    }
                    _ => {}
                }
                self.alg = Some(alg);
            }
        }
        match self.trail {
            None => {
                self.trail = Some(record.trail);
                self.trail_source = "the first record";
            }
            Some(trail) if trail != record.trail => {
                return Err(broken(
                    seq,
                    format!(
                        "belongs to another trail ({}), not to this one ({trail}, from {}): spliced in",
                        record.trail, self.trail_source
                    ),
                ));
            }
            Some(_) => {}
        }
        let canonical = canonical_bytes(bytes)
            .ok_or_else(|| broken(seq, "the line does not end with its `hash` field".into()))?;
        if !Linker::same(&self.linker.hash(&canonical), &record.hash) {
            let why = match self.linker.alg() {
                Alg::Sha256 => "its content does not match its hash: the record was edited",
                Alg::HmacSha256 => {
                    "its content does not match its HMAC: the record was edited (or written with another key)"
                }
            };
            return Err(broken(seq, why.into()));
        }
        let checks_link = self.last.is_some() || self.from_start || seq == 1;
        if checks_link && seq != expected_seq {
            let reason = if seq > expected_seq {
                if seq == expected_seq + 1 {
                    format!(
                        "expected seq {expected_seq} here: record seq {expected_seq} is missing (deleted) or out of order"
                    )
                } else {
                    format!(
                        "expected seq {expected_seq} here: records seq {expected_seq}..{} are missing (deleted) or out of order",
                        seq - 1
                    )
                }
            } else {
                format!(
                    "expected seq {expected_seq} here: seq {seq} repeats or goes backwards (inserted or reordered)"
                )
            };
            return Err(broken(seq, reason));
        }
        if checks_link {
            let expected_prev = match &self.last {
                Some((_, hash)) => hash.clone(),
                None => self.linker.genesis(&record.trail),
            };
            if !Linker::same(&expected_prev, &record.prev) {
                let reason = if seq == 1 {
                    "its prev is not this trail's genesis value: the first record was replaced"
                        .to_owned()
                } else {
                    format!(
                        "its prev does not match the hash of record seq {}: the chain is broken here (a record was inserted, replaced or recomputed)",
                        seq - 1
                    )
                };
                return Err(broken(seq, reason));
            }
        }
        self.last = Some((seq, record.hash.clone()));
        Ok(record)
    }
}

/// Read `path` line by line, calling `each(line_number, bytes)` for every complete line.
/// Returns the number of complete lines and whether a final line without its newline (a record
/// cut short) followed them; that line is not passed to `each`.
pub(crate) fn for_each_line(
    path: &Path,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), AuditError>,
) -> Result<(u64, bool), AuditError> {
    let file = fs::File::open(path).map_err(AuditError::io("open", path))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::with_capacity(1024);
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(AuditError::io("read", path))?;
        if n == 0 {
            return Ok((line, false));
        }
        if buf.last() != Some(&b'\n') {
            return Ok((line, true));
        }
        line += 1;
        buf.pop();
        each(line, &buf)?;
    }
}

/// The reason given for a record cut short.
const CUT_SHORT: &str = "the last line is cut short (no newline): the file was truncated mid-record or a write was interrupted";

/// Verify the trail whose live file is `trail`, with all its rotated files and its head.
pub fn verify_trail(trail: &Path, key: Option<&Key>) -> Result<VerifyReport, AuditError> {
    let files = files::discover(trail)?;
    if files.is_empty() {
        return Err(AuditError::NoFiles {
            path: trail.to_owned(),
        });
    }
    verify(&files, key)
}

/// Verify the given trail files (any order: they are put in chain order by their rotation
/// number, the live file last). The chain must start at seq 1. When the live file (a name
/// without a `.N` suffix) is among them, its chain head `<live>.head` must exist and match.
/// A keyed trail needs `key`; a key given for a plain trail is refused (downgrade).
///
/// `Ok` means intact; a tampered trail is `Err(AuditError::Broken(..))` naming the first bad
/// record.
pub fn verify(files: &[PathBuf], key: Option<&Key>) -> Result<VerifyReport, AuditError> {
    if files.is_empty() {
        return Err(AuditError::NoFiles {
            path: PathBuf::from(""),
        });
    }
    let files = files::chain_order(files);
    let linker = Linker::new(key.cloned());
    let live = files.last().filter(|p| !files::is_rotated(p)).cloned();
    // A head whose seal fails is reported after the records: if records were rewritten, naming
    // the first bad record says more than "the head is invalid".
    let mut head_error = None;
    let head = match &live {
        Some(live) => {
            let path = head_path(live);
            match Head::load(&path, &linker) {
                Ok(head) => head.map(|head| (path, head)),
                Err(err @ AuditError::HeadInvalid { .. }) => {
                    head_error = Some(err);
                    None
                }
                Err(err) => return Err(err),
            }
        }
        None => None,
    };
    let mut checker = Checker::new(&linker, head.as_ref().map(|(_, h)| h.trail), true);
    let mut records = 0u64;
    let mut at_head: Option<(PathBuf, u64, String)> = None;
    let mut end = (files[0].clone(), 0u64);
    let mut cut_at: Option<(PathBuf, u64)> = None;
    for (index, file) in files.iter().enumerate() {
        let (lines, cut) = for_each_line(file, |line, bytes| {
            let record = checker.check(file, line, bytes)?;
            records += 1;
            if let Some((_, h)) = &head
                && record.seq == h.seq
            {
                at_head = Some((file.clone(), line, record.hash));
            }
            Ok(())
        })?;
        end = (file.clone(), lines);
        if cut {
            let cut_here = (file.clone(), lines + 1);
            if index + 1 < files.len() {
                return Err(AuditError::Broken(Break {
                    file: cut_here.0,
                    line: cut_here.1,
                    seq: checker.last().map_or(1, |(s, _)| s + 1),
                    reason: CUT_SHORT.into(),
                }));
            }
            cut_at = Some(cut_here);
        }
    }
    let (last_seq, last_hash) = checker.last().cloned().unwrap_or((0, String::new()));
    // A cut last line is an interrupted write (acceptable) only in the live file and only when
    // every record the head names is complete before it; otherwise it is damage.
    let partial_tail = match cut_at {
        None => false,
        Some((file, line)) => {
            let head_reached = matches!(&head, Some((_, h)) if last_seq >= h.seq);
            if live.is_none() || !head_reached {
                return Err(AuditError::Broken(Break {
                    file,
                    line,
                    seq: last_seq + 1,
                    reason: CUT_SHORT.into(),
                }));
            }
            true
        }
    };
    if let Some(err) = head_error {
        return Err(err);
    }
    let head_check = match (&live, &head) {
        (None, _) => HeadCheck::NotChecked,
        (Some(live), None) => {
            if records > 0 {
                return Err(AuditError::HeadMissing {
                    path: head_path(live),
                });
            }
            HeadCheck::NotChecked
        }
        (Some(_), Some((head_file, h))) => {
            if last_seq < h.seq {
                let missing = if h.seq == last_seq + 1 {
                    format!("record seq {} is missing", h.seq)
                } else {
                    format!("records seq {}..{} are missing", last_seq + 1, h.seq)
                };
                return Err(AuditError::Broken(Break {
                    file: end.0,
                    line: end.1 + 1,
                    seq: last_seq + 1,
                    reason: format!(
                        "{missing}: the chain head ({}) records seq {} but the trail ends at seq {last_seq} (truncated)",
                        head_file.display(),
                        h.seq
                    ),
                }));
            }
            match &at_head {
                Some((file, line, hash)) if !Linker::same(hash, &h.hash) => {
                    return Err(AuditError::Broken(Break {
                        file: file.clone(),
                        line: *line,
                        seq: h.seq,
                        reason: format!(
                            "does not match the chain head ({}): the records from here on were replaced",
                            head_file.display()
                        ),
                    }));
                }
                _ => {}
            }
            if last_seq > h.seq {
                HeadCheck::Behind {
                    seq: h.seq,
                    extra: last_seq - h.seq,
                }
            } else {
                HeadCheck::Matched { seq: h.seq }
            }
        }
    };
    Ok(VerifyReport {
        trail: checker.trail(),
        alg: linker.alg(),
        records,
        files,
        last_seq,
        last_hash,
        head: head_check,
        partial_tail,
    })
}

/// Walk the given files in chain order, checking every record as [`verify`] does, and hand each
/// good record and its line to `each`. Stops at the first bad record (its error is returned);
/// call [`verify`] first to export nothing from a broken trail.
pub fn for_each_record(
    files: &[PathBuf],
    key: Option<&Key>,
    mut each: impl FnMut(&Record, &[u8]),
) -> Result<(), AuditError> {
    let files = files::chain_order(files);
    let linker = Linker::new(key.cloned());
    let mut checker = Checker::new(&linker, None, true);
    for file in &files {
        // A cut last line carries no record; `verify` has judged it.
        for_each_line(file, |line, bytes| {
            let record = checker.check(file, line, bytes)?;
            each(&record, bytes);
            Ok(())
        })?;
    }
    Ok(())
}
