//! `resetctl audit`: verify and export the audit trail.
//!
//! `verify` prints one verdict line on standard output — `ok: N records in M files, head seq S`
//! or `FILE:LINE: record seq S: <reason>` — and exits 0 (intact) or 1 (tampered or unreadable).
//! With `--output json` the verdict is one JSON object instead.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{CmdResult, Exit, Failure};
use crate::cli::{AuditAction, AuditArgs, AuditExportFormat, GlobalArgs, OutputFormat};
use resetctl::audit::{self, AuditError, HeadCheck, Key, VerifyReport};

/// Verify or export the trail.
pub fn run(global: &GlobalArgs, args: AuditArgs) -> CmdResult {
    match args.action {
        AuditAction::Verify {
            files,
            trail,
            key_file,
        } => {
            let key = load_key(key_file.as_deref())?;
            let files = resolve(files, trail)?;
            match audit::verify(&files, key.as_ref()) {
                Ok(report) => {
                    print_ok(global, &report);
                    Ok(Exit::Success)
                }
                Err(err) => verdict_failure(global, err),
            }
        }
        AuditAction::Export {
            format,
            files,
            trail,
            key_file,
        } => {
            let key = load_key(key_file.as_deref())?;
            let files = resolve(files, trail)?;
            if let Err(err) = audit::verify(&files, key.as_ref()) {
                return verdict_failure(global, err);
            }
            export(&files, key.as_ref(), format)
        }
    }
}

/// The files to check: explicit ones, the `--trail` set, or nothing configured (exit 4).
fn resolve(files: Vec<PathBuf>, trail: Option<PathBuf>) -> Result<Vec<PathBuf>, Failure> {
    let trail = match (trail, files.len()) {
        (Some(trail), _) => trail,
        // A single live trail file brings its rotated files along.
        (None, 1) if !is_rotated_name(&files[0]) => files[0].clone(),
        (None, 0) => {
            return Err(Failure::new(
                Exit::Config,
                "no audit trail given and none is configured yet: name the trail files, or pass --trail PATH",
            ));
        }
        (None, _) => return Ok(files),
    };
    match audit::discover(&trail) {
        Ok(found) if !found.is_empty() => Ok(found),
        Ok(_) => Err(Failure::new(
            Exit::Invalid,
            format!("{}: no such audit trail", trail.display()),
        )),
        Err(err) => Err(Failure::new(Exit::Invalid, err)),
    }
}

fn is_rotated_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
}

fn load_key(file: Option<&Path>) -> Result<Option<Key>, Failure> {
    file.map(Key::from_file)
        .transpose()
        .map_err(|err| Failure::new(Exit::Config, err))
}

fn print_ok(global: &GlobalArgs, report: &VerifyReport) {
    let head = match &report.head {
        HeadCheck::Matched { seq } => format!("head seq {seq}"),
        HeadCheck::Behind { seq, extra } => format!(
            "head seq {seq} ({extra} later records were written after the last head update; nothing is missing)"
        ),
        HeadCheck::NotChecked => "head not checked (only rotated files given)".to_owned(),
    };
    let partial = if report.partial_tail {
        "; the live file ends with an unfinished record after the head (a write in progress or interrupted, never acknowledged)"
    } else {
        ""
    };
    match global.output {
        OutputFormat::Text => println!(
            "ok: {} records in {} files, {head}{partial}",
            report.records,
            report.files.len()
        ),
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({
                "ok": true,
                "records": report.records,
                "files": report.files,
                "trail": report.trail,
                "alg": report.alg.as_str(),
                "last_seq": report.last_seq,
                "partial_tail": report.partial_tail,
                "head_seq": match report.head {
                    HeadCheck::Matched { seq } | HeadCheck::Behind { seq, .. } => Some(seq),
                    HeadCheck::NotChecked => None,
                },
            })
        ),
    }
}

/// A broken chain is the command's answer (stdout, exit 1); key problems are configuration
/// errors (exit 4); anything else could not be read (exit 1).
fn verdict_failure(global: &GlobalArgs, err: AuditError) -> CmdResult {
    match err {
        AuditError::Broken(b) => {
            match global.output {
                OutputFormat::Text => println!("{b}"),
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({
                        "ok": false,
                        "file": b.file,
                        "line": b.line,
                        "seq": b.seq,
                        "reason": b.reason,
                    })
                ),
            }
            Ok(Exit::Invalid)
        }
        err @ (AuditError::KeyRequired { .. }
        | AuditError::WrongKey { .. }
        | AuditError::Key(_)) => Err(Failure::new(Exit::Config, err)),
        err => Err(Failure::new(Exit::Invalid, err)),
    }
}

fn export(files: &[PathBuf], key: Option<&Key>, format: AuditExportFormat) -> CmdResult {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut write_err = None;
    let result = audit::for_each_record(files, key, |record, line| {
        if write_err.is_some() {
            return;
        }
        let written = match format {
            AuditExportFormat::Jsonl => out.write_all(line).and_then(|()| out.write_all(b"\n")),
            AuditExportFormat::Cef => writeln!(out, "{}", audit::cef::line(record)),
        };
        if let Err(e) = written {
            write_err = Some(e);
        }
    });
    if let Some(e) = write_err.or_else(|| out.flush().err()) {
        // The reader went away (`| head`): not an error of ours.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(Exit::Success);
        }
        return Err(Failure::new(
            Exit::Invalid,
            format!("cannot write the export: {e}"),
        ));
    }
    result.map_err(|e| Failure::new(Exit::Invalid, e))?;
    Ok(Exit::Success)
}
