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
use super::tail;
use super::witness::{self, Mark};

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
    /// The trail has no records and no head: nothing was ever written, or everything was
    /// removed (only a witness can tell which).
    Empty,
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

    /// A checker that continues a chain already checked up to `(seq, hash)` of `trail`: the
    /// next record must be `seq + 1` and link to `hash`.
    pub(crate) fn continuing(
        linker: &'a Linker,
        trail: uuid::Uuid,
        seq: u64,
        hash: String,
    ) -> Self {
        Checker {
            linker,
            trail: Some(trail),
            trail_source: "the records already checked",
            last: Some((seq, hash)),
            from_start: true,
            alg: Some(linker.alg()),
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

/// Verify the trail whose live file is `trail`, with all its rotated files and its chain head
/// `<trail>.head`. Unlike [`verify`] of a list of files, the head is required whenever the
/// trail has records, even when the live file itself is gone.
pub fn verify_trail(trail: &Path, key: Option<&Key>) -> Result<VerifyReport, AuditError> {
    verify_trail_witnessed(trail, key, None)
}

/// [`verify_trail`], then [`check_witness`]. A trail with no files at all is vanished when a
/// mark exists ([`AuditError::NoFiles`] when none does).
pub fn verify_trail_witnessed(
    trail: &Path,
    key: Option<&Key>,
    mark: Option<&Mark>,
) -> Result<VerifyReport, AuditError> {
    let files = files::discover(trail)?;
    let head = head_path(trail);
    let linker = Linker::new(key.cloned());
    if files.is_empty() {
        let left = Head::load(&head, &linker)?;
        if let Some(mark) = mark {
            return Err(witness::vanished(
                trail,
                mark,
                "no file of it is left".into(),
            ));
        }
        return Err(match left {
            Some(h) => AuditError::Broken(Break {
                file: trail.to_owned(),
                line: 1,
                seq: 1,
                reason: format!(
                    "the trail has no files but its chain head records seq {}: records seq 1..{} are missing (deleted)",
                    h.seq, h.seq
                ),
            }),
            None => AuditError::NoFiles {
                path: trail.to_owned(),
            },
        });
    }
    let live = files.last().filter(|f| f.as_path() == trail).cloned();
    let (report, _) = walk(Walk {
        files,
        live,
        head: Some(head),
        linker: &linker,
        probe: None,
    })?;
    if let Some(mark) = mark {
        check_witness(trail, &report, mark, key)?;
    }
    Ok(report)
}

/// Compare a verified trail (`report`, of the trail whose live file is `trail`) with its
/// witness's mark (see [`Witness`]): the trail must be the witnessed one, reach the witnessed
/// seq and hold the witnessed record there; otherwise [`AuditError::Vanished`].
///
/// [`Witness`]: super::Witness
pub fn check_witness(
    trail: &Path,
    report: &VerifyReport,
    mark: &Mark,
    key: Option<&Key>,
) -> Result<(), AuditError> {
    let last = report
        .trail
        .filter(|_| report.last_seq > 0)
        .map(|id| (id, report.last_seq, report.last_hash.as_str()));
    let at_mark = match last {
        Some((id, last_seq, _)) if id == mark.trail && mark.seq < last_seq => {
            tail::hash_at(&Linker::new(key.cloned()), id, &report.files, mark.seq)?
        }
        _ => None,
    };
    witness::check(
        trail,
        mark,
        witness::Found {
            last,
            at_mark: at_mark.as_deref(),
        },
    )
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
    let head = live.as_deref().map(head_path);
    walk(Walk {
        files,
        live,
        head,
        linker: &linker,
        probe: None,
    })
    .map(|(report, _)| report)
}

/// One verification: which files, in chain order, and what to check them against.
pub(crate) struct Walk<'a> {
    /// The files, in chain order.
    pub files: Vec<PathBuf>,
    /// The live file, when it is the last of `files`: only there may a last record be cut
    /// short (a write in progress).
    pub live: Option<PathBuf>,
    /// The chain head to check (`None`: not checked).
    pub head: Option<PathBuf>,
    /// The link function (and key).
    pub linker: &'a Linker,
    /// A sequence number whose record's hash is wanted (a witness's mark).
    pub probe: Option<u64>,
}

/// Check every record of `walk.files` and the chain head; returns the report and the hash of
/// the record at `walk.probe`, when the trail holds it.
pub(crate) fn walk(walk: Walk<'_>) -> Result<(VerifyReport, Option<String>), AuditError> {
    let Walk {
        files,
        live,
        head: head_file,
        linker,
        probe,
    } = walk;
    // A head whose seal fails is reported after the records: if records were rewritten, naming
    // the first bad record says more than "the head is invalid".
    let mut head_error = None;
    let head = match &head_file {
        Some(path) => match Head::load(path, linker) {
            Ok(head) => head.map(|head| (path.clone(), head)),
            Err(err @ AuditError::HeadInvalid { .. }) => {
                head_error = Some(err);
                None
            }
            Err(err) => return Err(err),
        },
        None => None,
    };
    if files.is_empty() {
        return Err(AuditError::NoFiles {
            path: PathBuf::from(""),
        });
    }
    let mut checker = Checker::new(linker, head.as_ref().map(|(_, h)| h.trail), true);
    let mut records = 0u64;
    let mut at_head: Option<(PathBuf, u64, String)> = None;
    let mut probed: Option<String> = None;
    let mut end = (files[0].clone(), 0u64);
    let mut cut_at: Option<(PathBuf, u64)> = None;
    for (index, file) in files.iter().enumerate() {
        let (lines, cut) = for_each_line(file, |line, bytes| {
            let record = checker.check(file, line, bytes)?;
            records += 1;
            if let Some((_, h)) = &head
                && record.seq == h.seq
            {
                at_head = Some((file.clone(), line, record.hash.clone()));
            }
            if probe == Some(record.seq) {
                probed = Some(record.hash);
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
    let head_check = match (&head_file, &head) {
        (None, _) => HeadCheck::NotChecked,
        (Some(path), None) => {
            if records > 0 {
                return Err(AuditError::HeadMissing { path: path.clone() });
            }
            HeadCheck::Empty
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
    let report = VerifyReport {
        trail: checker.trail(),
        alg: linker.alg(),
        records,
        files,
        last_seq,
        last_hash,
        head: head_check,
        partial_tail,
    };
    Ok((report, probed))
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
