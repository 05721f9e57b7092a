//! Where the trail ends, established under the trail lock before every append.
//!
//! Two ways to find it:
//!
//! - [`derive`] knows nothing yet (a writer opening the trail): it loads the chain head and
//!   checks the last file's records up to it, as opening a trail always has.
//! - [`advance`] knows where the trail ended after this writer's last batch (a [`Position`]):
//!   it reads only what other writers appended since, checking that it continues the chain
//!   from that position and reaches the head they left. When nothing changed (the head and
//!   the live file's size are as this writer left them) it reads nothing at all.
//!
//! Both remove a last line cut short by a crash (never acknowledged: the head does not reach
//! it), which is safe because every writer appends only under the lock.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::chain::Linker;
use super::error::{AuditError, Break};
use super::files;
use super::head::{Head, head_path};
use super::record::Record;
use super::verify::{self, Checker, Walk};
use super::witness::{self, Mark};

/// The identity of a file (device and inode), to recognise it after a rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

/// The identity of the file behind `meta` (`None` where the platform has no inode numbers:
/// then every change by another writer is re-derived from the head).
pub(crate) fn file_id(meta: &fs::Metadata) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// A file of the trail as this writer last left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileMark {
    /// Its identity.
    pub id: Option<FileId>,
    /// Its length (complete lines only).
    pub len: u64,
    /// Its number of lines.
    pub lines: u64,
}

impl FileMark {
    /// The mark of `path` as it is now (length and lines given by the caller, who read it).
    fn of(path: &Path, len: u64, lines: u64) -> Result<FileMark, AuditError> {
        let meta = fs::metadata(path).map_err(AuditError::io("read metadata of", path))?;
        Ok(FileMark {
            id: file_id(&meta),
            len,
            lines,
        })
    }
}

/// Where the trail ended after a batch: its last record, and the file holding the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    /// Trail id.
    pub trail: uuid::Uuid,
    /// Last record's seq.
    pub seq: u64,
    /// Last record's hash.
    pub hash: String,
    /// The live file (or, when it does not exist, the last rotated file) as it was then.
    pub file: FileMark,
}

impl Position {
    /// The position as a witness mark.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            trail: self.trail,
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// What [`derive`] found.
#[derive(Debug)]
pub(crate) struct Derived {
    /// `None`: no record and no head (a trail never written, or wholly removed).
    pub position: Option<Position>,
    /// Hash of the record at the probed seq, when it was read.
    pub probed: Option<String>,
    /// The head lags behind the records (a crash between an fsync and the head update).
    pub head_behind: bool,
}

/// Establish the end of the trail at `trail` from its files and head (see the module doc).
/// `probe`: a seq whose record's hash is wanted (a witness's mark). Must be called under the
/// trail lock.
pub(crate) fn derive(
    linker: &Linker,
    trail: &Path,
    probe: Option<u64>,
) -> Result<Derived, AuditError> {
    let head_path = head_path(trail);
    let head = Head::load(&head_path, linker)?;
    let files = files::discover(trail)?;
    let mut last_nonempty = None;
    for file in files.iter().rev() {
        let len = fs::metadata(file)
            .map_err(AuditError::io("read metadata of", file))?
            .len();
        if len > 0 {
            last_nonempty = Some(file.clone());
            break;
        }
    }
    let (head, last_file) = match (head, last_nonempty) {
        (None, None) => {
            return Ok(Derived {
                position: None,
                probed: None,
                head_behind: false,
            });
        }
        (None, Some(_)) => return Err(AuditError::HeadMissing { path: head_path }),
        (Some(head), None) => {
            return Err(AuditError::Broken(Break {
                file: trail.to_owned(),
                line: 1,
                seq: 1,
                reason: format!(
                    "the trail is empty but its chain head records seq {}: records seq 1..{} are missing (truncated)",
                    head.seq, head.seq
                ),
            }));
        }
        (Some(head), Some(last_file)) => (head, last_file),
    };
    let tail = check_tail(linker, &head, &last_file, trail, &files, probe)?;
    let mut probed = tail.probed;
    if let Some(seq) = probe
        && probed.is_none()
        && seq < tail.first_seq
    {
        probed = hash_at(linker, head.trail, &files, seq)?;
    }
    // The end is in the live file; when it does not exist (a crash between the rename of a
    // rotation and the creation of the new live file), in the last rotated file.
    let file = match files.last() {
        Some(live) if live.as_path() == trail && *live != last_file => FileMark::of(live, 0, 0)?,
        _ => FileMark::of(&last_file, tail.len, tail.lines)?,
    };
    Ok(Derived {
        head_behind: tail.seq > head.seq,
        position: Some(Position {
            trail: head.trail,
            seq: tail.seq,
            hash: tail.hash,
            file,
        }),
        probed,
    })
}

/// Bring `from` (where this writer left the trail) up to date with what other writers
/// appended since, checking every new record (see the module doc). Must be called under the
/// trail lock.
pub(crate) fn advance(
    linker: &Linker,
    trail: &Path,
    from: &Position,
) -> Result<Position, AuditError> {
    let head_path = head_path(trail);
    let vanished = |found: String| witness::vanished(trail, &from.mark(), found);
    let Some(head) = Head::load(&head_path, linker)? else {
        let found = if files::discover(trail)?.is_empty() {
            "no file of it is left"
        } else {
            "its chain head is gone"
        };
        return Err(vanished(found.into()));
    };
    if head.trail != from.trail {
        return Err(vanished(format!(
            "the chain head names trail {} instead",
            head.trail
        )));
    }
    if head.seq < from.seq {
        return Err(vanished(format!(
            "the chain head went back to seq {}",
            head.seq
        )));
    }
    let live = match fs::metadata(trail) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(AuditError::io("read metadata of", trail)(e)),
    };
    let unchanged = live.as_ref().is_some_and(|meta| {
        from.file.id.is_some() && file_id(meta) == from.file.id && meta.len() == from.file.len
    });
    if unchanged && head.seq == from.seq {
        if !Linker::same(&head.hash, &from.hash) {
            return Err(vanished(format!(
                "the chain head names another record seq {}",
                head.seq
            )));
        }
        return Ok(from.clone());
    }
    // Something was appended (or rotated): find the file this writer's position is in and
    // check everything after it.
    let files = files::discover(trail)?;
    let start = files.iter().rposition(|f| {
        from.file.id.is_some() && fs::metadata(f).is_ok_and(|meta| file_id(&meta) == from.file.id)
    });
    let Some(start) = start else {
        return Err(vanished(format!(
            "the file that held record seq {} is gone",
            from.seq
        )));
    };
    let mut checker = Checker::continuing(linker, from.trail, from.seq, from.hash.clone());
    let mut at_head: Option<(PathBuf, u64, String)> = None;
    let mut end = None;
    for (index, file) in files.iter().enumerate().skip(start) {
        let (offset, first_line) = if index == start {
            (from.file.len, from.file.lines)
        } else {
            (0, 0)
        };
        let len = fs::metadata(file)
            .map_err(AuditError::io("read metadata of", file))?
            .len();
        if len < offset {
            return Err(vanished(format!(
                "{} is shorter than when record seq {} was written",
                file.display(),
                from.seq
            )));
        }
        let scan = lines_from(file, offset, first_line, |line, bytes| {
            let record = checker.check(file, line, bytes)?;
            if record.seq == head.seq {
                at_head = Some((file.clone(), line, record.hash));
            }
            Ok(())
        })?;
        if scan.cut > 0 {
            let last_seq = checker.last().map_or(from.seq, |(s, _)| *s);
            let is_live = index + 1 == files.len() && file.as_path() == trail;
            if !is_live || last_seq < head.seq {
                return Err(AuditError::Broken(Break {
                    file: file.clone(),
                    line: scan.lines + 1,
                    seq: last_seq + 1,
                    reason: "the last line is cut short (no newline): refusing to append".into(),
                }));
            }
            remove_cut_tail(file, scan.end, scan.cut)?;
        }
        end = Some((file.clone(), scan.end, scan.lines));
    }
    let (last_seq, last_hash) = checker.last().cloned().unwrap_or_default();
    if last_seq < head.seq {
        return Err(AuditError::Broken(Break {
            file: files.last().cloned().unwrap_or_else(|| trail.to_owned()),
            line: end.as_ref().map_or(1, |(_, _, lines)| lines + 1),
            seq: last_seq + 1,
            reason: format!(
                "the chain head records seq {} but the trail ends at seq {last_seq} (truncated); refusing to append",
                head.seq
            ),
        }));
    }
    let head_hash = if head.seq == from.seq {
        Some((trail.to_owned(), from.file.lines, from.hash.clone()))
    } else {
        at_head
    };
    match head_hash {
        Some((_, _, hash)) if Linker::same(&hash, &head.hash) => {}
        Some((file, line, _)) => {
            return Err(AuditError::Broken(Break {
                file,
                line,
                seq: head.seq,
                reason: "does not match the chain head: refusing to append".into(),
            }));
        }
        // Not reached: every seq from the position to the end was read.
        None => {
            return Err(AuditError::Broken(Break {
                file: trail.to_owned(),
                line: 0,
                seq: head.seq,
                reason: "the chain head's record is not in the trail: refusing to append".into(),
            }));
        }
    }
    let (file, len, lines) =
        end.unwrap_or_else(|| (trail.to_owned(), from.file.len, from.file.lines));
    Ok(Position {
        trail: from.trail,
        seq: last_seq,
        hash: last_hash,
        file: FileMark::of(&file, len, lines)?,
    })
}

/// What [`check_tail`] found in the last non-empty file.
struct Tail {
    seq: u64,
    hash: String,
    /// Seq of the file's first record.
    first_seq: u64,
    /// Length of the file's complete lines (after removing a cut last line).
    len: u64,
    lines: u64,
    probed: Option<String>,
}

/// Check the last non-empty file of an existing trail against its head; return where the
/// trail ends. Falls back to verifying every file when the head lies before the last file (a
/// crash right after a rotation).
fn check_tail(
    linker: &Linker,
    head: &Head,
    last_file: &Path,
    live: &Path,
    all_files: &[PathBuf],
    probe: Option<u64>,
) -> Result<Tail, AuditError> {
    let mut checker = Checker::new(linker, Some(head.trail), false);
    let mut first: Option<(u64, String)> = None;
    let mut at_head: Option<(u64, String)> = None;
    let mut probed = None;
    let scan = lines_from(last_file, 0, 0, |line_no, line| {
        let record = checker.check(last_file, line_no, line)?;
        if first.is_none() {
            first = Some((record.seq, record.prev.clone()));
        }
        if probe == Some(record.seq) {
            probed = Some(record.hash.clone());
        }
        if record.seq == head.seq {
            at_head = Some((line_no, record.hash));
        }
        Ok(())
    })?;
    let lines = scan.lines;
    let Some((last_seq, last_hash)) = checker.last().cloned() else {
        return Err(AuditError::Broken(Break {
            file: last_file.to_owned(),
            line: 1,
            seq: head.seq,
            reason: "no record could be read".into(),
        }));
    };
    if last_seq < head.seq {
        return Err(AuditError::Broken(Break {
            file: last_file.to_owned(),
            line: lines + 1,
            seq: last_seq + 1,
            reason: format!(
                "the chain head records seq {} but the trail ends at seq {last_seq} (truncated); refusing to append",
                head.seq
            ),
        }));
    }
    if scan.cut > 0 {
        // A record cut short by a crash mid-write: it belongs to a batch that was never
        // acknowledged (the head, written after the fsync, does not reach it). Only then, and
        // only in the live file, is it removed; anything else is refused.
        if last_file != live {
            return Err(AuditError::Broken(Break {
                file: last_file.to_owned(),
                line: lines + 1,
                seq: last_seq + 1,
                reason: "the last line is cut short (no newline): refusing to append".into(),
            }));
        }
        remove_cut_tail(last_file, scan.end, scan.cut)?;
    }
    let (first_seq, first_prev) = first.unwrap_or_default();
    let tail = |seq, hash, probed| Tail {
        seq,
        hash,
        first_seq,
        len: scan.end,
        lines,
        probed,
    };
    if head.seq >= first_seq {
        match at_head {
            Some((_, hash)) if Linker::same(&hash, &head.hash) => {}
            Some((line, _)) => {
                return Err(AuditError::Broken(Break {
                    file: last_file.to_owned(),
                    line,
                    seq: head.seq,
                    reason: "does not match the chain head: refusing to append".into(),
                }));
            }
            None => {
                return Err(AuditError::Broken(Break {
                    file: last_file.to_owned(),
                    line: lines,
                    seq: head.seq,
                    reason: "the chain head's record is not in the trail: refusing to append"
                        .into(),
                }));
            }
        }
    } else if head.seq + 1 == first_seq {
        if !Linker::same(&first_prev, &head.hash) {
            return Err(AuditError::Broken(Break {
                file: last_file.to_owned(),
                line: 1,
                seq: first_seq,
                reason: "its prev does not match the chain head: refusing to append".into(),
            }));
        }
    } else {
        // The head lies in an earlier file: check the whole trail.
        let (report, whole_probe) = verify::walk(Walk {
            files: all_files.to_vec(),
            live: all_files.last().filter(|f| f.as_path() == live).cloned(),
            head: Some(head_path(live)),
            linker,
            probe,
        })?;
        return Ok(tail(report.last_seq, report.last_hash, whole_probe));
    }
    Ok(tail(last_seq, last_hash, probed))
}

/// The hash of the record `seq` of trail `trail`, read from the file that holds it (found by
/// the first record of each file, newest file first); `None` when no file holds it. The
/// records of that file up to it are checked on the way.
pub(crate) fn hash_at(
    linker: &Linker,
    trail: uuid::Uuid,
    files: &[PathBuf],
    seq: u64,
) -> Result<Option<String>, AuditError> {
    for file in files.iter().rev() {
        let Some(first) = first_record(file)? else {
            continue;
        };
        if first.seq > seq {
            continue;
        }
        let mut checker = Checker::new(linker, Some(trail), false);
        let mut found = None;
        lines_from(file, 0, 0, |line, bytes| {
            if found.is_none() {
                let record = checker.check(file, line, bytes)?;
                if record.seq == seq {
                    found = Some(record.hash);
                }
            }
            Ok(())
        })?;
        return Ok(found);
    }
    Ok(None)
}

/// The first record of `file`, if its first line is complete and parses.
fn first_record(file: &Path) -> Result<Option<Record>, AuditError> {
    let handle = File::open(file).map_err(AuditError::io("open", file))?;
    let mut line = Vec::new();
    BufReader::new(handle)
        .read_until(b'\n', &mut line)
        .map_err(AuditError::io("read", file))?;
    if line.pop() != Some(b'\n') {
        return Ok(None);
    }
    Ok(Record::parse(&line).ok())
}

/// What [`lines_from`] read.
struct Scan {
    /// Byte offset just after the last complete line.
    end: u64,
    /// Line number of the last complete line.
    lines: u64,
    /// Bytes after it without a newline (a line cut short).
    cut: u64,
}

/// Read the complete lines of `path` from byte `offset` (the first being line
/// `first_line + 1`), calling `each(line_number, bytes)` for each.
fn lines_from(
    path: &Path,
    offset: u64,
    first_line: u64,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), AuditError>,
) -> Result<Scan, AuditError> {
    let mut file = File::open(path).map_err(AuditError::io("open", path))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(AuditError::io("seek in", path))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::with_capacity(1024);
    let mut scan = Scan {
        end: offset,
        lines: first_line,
        cut: 0,
    };
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(AuditError::io("read", path))?;
        if n == 0 {
            return Ok(scan);
        }
        if buf.last() != Some(&b'\n') {
            scan.cut = n as u64;
            return Ok(scan);
        }
        scan.lines += 1;
        scan.end += n as u64;
        buf.pop();
        each(scan.lines, &buf)?;
    }
}

/// Remove a last line cut short by an interrupted write (see [`check_tail`]).
pub(crate) fn remove_cut_tail(file: &Path, keep: u64, cut: u64) -> Result<(), AuditError> {
    tracing::warn!(
        file = %file.display(),
        bytes = cut,
        "audit trail: removing a record cut short by an interrupted write (never acknowledged)"
    );
    let handle = OpenOptions::new()
        .write(true)
        .open(file)
        .map_err(AuditError::io("open", file))?;
    handle
        .set_len(keep)
        .map_err(AuditError::io("truncate", file))?;
    handle.sync_all().map_err(AuditError::io("fsync", file))
}
