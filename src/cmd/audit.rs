//! `resetctl audit`: verify and export the audit trail, make a key for keyed mode, and the
//! explicit recoveries `new-trail` and `reseal`.
//!
//! `verify` prints one verdict line on standard output — `ok: N records in M files, head seq
//! S; <witness>; <keyed or not>` or `FILE:LINE: record seq S: <reason>` — and exits 0 (intact)
//! or 1 (tampered, vanished or unreadable). With `--output json` the verdict is one JSON
//! object instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::context::Context;
use super::{CmdResult, Exit, Failure, paths};
use crate::cli::{
    AuditAction, AuditArgs, AuditExportFormat, GlobalArgs, OutputFormat, RecoveryArgs,
};
use resetctl::audit::{self, AuditConfig, AuditError, HeadCheck, Key, Mark, VerifyReport, Witness};
use resetctl::engine::operator::OperatorName;
use resetctl::store::{SqliteStore, StoreWitness};

/// Verify, export, make a key, or recover the trail.
pub async fn run(global: &GlobalArgs, args: AuditArgs) -> CmdResult {
    match args.action {
        AuditAction::Verify {
            files,
            trail,
            key_file,
            store,
        } => {
            let (target, key) = chosen(global, files, trail, key_file.as_deref())?;
            verify(global, target, key.as_ref(), store)
        }
        AuditAction::Export {
            format,
            files,
            trail,
            key_file,
        } => {
            let (target, key) = chosen(global, files, trail, key_file.as_deref())?;
            let files = resolve(target)?;
            if let Err(err) = audit::verify(&files, key.as_ref()) {
                return verdict_failure(global, err);
            }
            export(&files, key.as_ref(), format)
        }
        AuditAction::Keygen { file } => keygen(global, &file),
        AuditAction::Forward { to, follow, every } => {
            let every = std::time::Duration::from_secs(every.max(1));
            super::forward::run(global, to, follow, every).await
        }
        AuditAction::NewTrail { recovery } => new_trail(global, recovery),
        AuditAction::Reseal { recovery } => reseal(global, recovery),
    }
}

/// The trail and key a command names: its files or `--trail` with `--key-file`; with
/// neither, the trail the configuration's `audit:` section describes, with its key.
fn chosen(
    global: &GlobalArgs,
    files: Vec<PathBuf>,
    trail: Option<PathBuf>,
    key_file: Option<&Path>,
) -> Result<(Target, Option<Key>), Failure> {
    if files.is_empty() && trail.is_none() {
        let config = Context::load(global)?.trail_config()?;
        let key = match key_file {
            Some(_) => load_key(key_file)?,
            None => config.load_key()?,
        };
        return Ok((Target::Trail(config.path), key));
    }
    Ok((target(files, trail), load_key(key_file)?))
}

/// What the command line names: a whole trail (its live file) or files one by one.
enum Target {
    Trail(PathBuf),
    Files(Vec<PathBuf>),
}

/// What explicit files or `--trail` name.
fn target(files: Vec<PathBuf>, trail: Option<PathBuf>) -> Target {
    match (trail, files.len()) {
        (Some(trail), _) => Target::Trail(trail),
        // A single live trail file brings its rotated files along.
        (None, 1) if !is_rotated_name(&files[0]) => Target::Trail(files[0].clone()),
        (None, _) => Target::Files(files),
    }
}

/// The files of a target (a trail's must exist).
fn resolve(target: Target) -> Result<Vec<PathBuf>, Failure> {
    let trail = match target {
        Target::Files(files) => return Ok(files),
        Target::Trail(trail) => trail,
    };
    match audit::discover(&trail) {
        Ok(found) if !found.is_empty() => Ok(found),
        Ok(_) => Err(no_such_trail(&trail)),
        Err(err) => Err(Failure::new(Exit::Invalid, err)),
    }
}

fn no_such_trail(trail: &Path) -> Failure {
    Failure::new(
        Exit::Invalid,
        format!("{}: no such audit trail", trail.display()),
    )
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

/// What the run store said about the trail.
enum WitnessView {
    /// Files were given one by one: no trail to look up.
    NotChecked,
    /// No run store (none at the default place, or no data directory).
    NoStore(Option<PathBuf>),
    /// The store has no mark for this trail.
    Unwitnessed(PathBuf),
    /// The store's mark, which the trail met.
    Witnessed(PathBuf, Mark),
}

/// The run store's mark for `trail`: `--store`, or the data directory's store if there is one.
fn witness_of(store: Option<PathBuf>, trail: &Path) -> Result<WitnessView, Failure> {
    let explicit = store.is_some();
    let path = match store {
        Some(path) => path,
        None => match paths::store_path(None) {
            Ok(path) => path,
            Err(_) => return Ok(WitnessView::NoStore(None)),
        },
    };
    let opened =
        StoreWitness::read_only(&path, trail).map_err(|e| Failure::new(Exit::Config, e))?;
    let Some(witness) = opened else {
        if explicit {
            return Err(Failure::new(
                Exit::Config,
                format!("{}: no run store there", path.display()),
            ));
        }
        return Ok(WitnessView::NoStore(Some(path)));
    };
    match witness.last_seen() {
        Ok(Some(mark)) => Ok(WitnessView::Witnessed(path, mark)),
        Ok(None) => Ok(WitnessView::Unwitnessed(path)),
        Err(err) => Err(Failure::new(Exit::Config, err)),
    }
}

fn verify(
    global: &GlobalArgs,
    target: Target,
    key: Option<&Key>,
    store: Option<PathBuf>,
) -> CmdResult {
    let (result, witness) = match target {
        Target::Trail(trail) => {
            let witness = witness_of(store, &trail)?;
            let mark = match &witness {
                WitnessView::Witnessed(_, mark) => Some(mark),
                _ => None,
            };
            match audit::verify_trail_witnessed(&trail, key, mark) {
                Err(AuditError::NoFiles { .. }) => return Err(no_such_trail(&trail)),
                result => (result, witness),
            }
        }
        Target::Files(files) => (audit::verify(&files, key), WitnessView::NotChecked),
    };
    match result {
        Ok(report) => {
            print_ok(global, &report, key, &witness);
            Ok(Exit::Success)
        }
        Err(err) => verdict_failure(global, err),
    }
}

fn print_ok(global: &GlobalArgs, report: &VerifyReport, key: Option<&Key>, witness: &WitnessView) {
    let head = match &report.head {
        HeadCheck::Matched { seq } => format!("head seq {seq}"),
        HeadCheck::Behind { seq, extra } => format!(
            "head seq {seq} ({extra} later records were written after the last head update; nothing is missing)"
        ),
        HeadCheck::NotChecked => "head not checked (only rotated files given)".to_owned(),
        HeadCheck::Empty => {
            "no head (nothing was ever written, or everything was removed)".to_owned()
        }
    };
    let partial = if report.partial_tail {
        "; the live file ends with an unfinished record after the head (a write in progress or interrupted, never acknowledged)"
    } else {
        ""
    };
    let witnessed = match witness {
        WitnessView::NotChecked => {
            "witness not checked (files given one by one: give the live file alone or --trail)"
                .to_owned()
        }
        WitnessView::NoStore(Some(path)) => {
            format!("not witnessed (no run store at {})", path.display())
        }
        WitnessView::NoStore(None) => "not witnessed (no run store)".to_owned(),
        WitnessView::Unwitnessed(path) => format!(
            "not witnessed (the run store {} has no record of this trail)",
            path.display()
        ),
        WitnessView::Witnessed(_, mark) => {
            format!("witnessed by the run store up to seq {}", mark.seq)
        }
    };
    let key_id = key.map(Key::id);
    let keyed = match &key_id {
        Some(id) => format!("keyed ({}, key id {id})", report.alg.as_str()),
        None => "unkeyed: proves order, not authorship".to_owned(),
    };
    match global.output {
        OutputFormat::Text => outln!(
            "ok: {} records in {} files, {head}{partial}; {witnessed}; {keyed}",
            report.records,
            report.files.len()
        ),
        OutputFormat::Json => {
            let (status, store, seq) = match witness {
                WitnessView::NotChecked => ("not_checked", None, None),
                WitnessView::NoStore(path) => ("no_store", path.as_ref(), None),
                WitnessView::Unwitnessed(path) => ("unwitnessed", Some(path), None),
                WitnessView::Witnessed(path, mark) => ("witnessed", Some(path), Some(mark.seq)),
            };
            outln!(
                "{}",
                serde_json::json!({
                    "ok": true,
                    "records": report.records,
                    "files": report.files,
                    "trail": report.trail,
                    "alg": report.alg.as_str(),
                    "keyed": key_id.is_some(),
                    "key_id": key_id,
                    "last_seq": report.last_seq,
                    "partial_tail": report.partial_tail,
                    "head_seq": match report.head {
                        HeadCheck::Matched { seq } | HeadCheck::Behind { seq, .. } => Some(seq),
                        HeadCheck::NotChecked | HeadCheck::Empty => None,
                    },
                    "witness": { "status": status, "store": store, "seq": seq },
                })
            )
        }
    }
}

/// A broken or vanished chain is the command's answer (stdout, exit 1); key problems are
/// configuration errors (exit 4); anything else could not be read (exit 1).
fn verdict_failure(global: &GlobalArgs, err: AuditError) -> CmdResult {
    match err {
        AuditError::Broken(b) => {
            match global.output {
                OutputFormat::Text => outln!("{b}"),
                OutputFormat::Json => outln!(
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
        err @ AuditError::Vanished { .. } => {
            match (global.output, &err) {
                (
                    OutputFormat::Json,
                    AuditError::Vanished {
                        path,
                        trail,
                        seq,
                        found,
                    },
                ) => outln!(
                    "{}",
                    serde_json::json!({
                        "ok": false,
                        "vanished": true,
                        "file": path,
                        "witnessed_trail": trail,
                        "witnessed_seq": seq,
                        "found": found,
                        "reason": err.to_string(),
                    })
                ),
                _ => outln!("{err}"),
            }
            Ok(Exit::Invalid)
        }
        err @ (AuditError::KeyRequired { .. }
        | AuditError::WrongKey { .. }
        | AuditError::Key(_)) => Err(Failure::new(Exit::Config, err)),
        err => Err(Failure::new(Exit::Invalid, err)),
    }
}

/// `audit keygen FILE`.
fn keygen(global: &GlobalArgs, file: &Path) -> CmdResult {
    let key = Key::generate_file(file).map_err(|err| match &err {
        AuditError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
            Failure::new(
                Exit::Invalid,
                format!(
                    "{}: the file exists; a key file is never overwritten",
                    file.display()
                ),
            )
        }
        _ => Failure::new(Exit::Config, err),
    })?;
    match global.output {
        OutputFormat::Text => outln!(
            "wrote a new HMAC key to {} (key id {}); set audit.key_file to it in resetctl.yaml",
            file.display(),
            key.id()
        ),
        OutputFormat::Json => outln!(
            "{}",
            serde_json::json!({ "file": file, "key_id": key.id() })
        ),
    }
    Ok(Exit::Success)
}

/// The trail, key and witness an explicit recovery works on.
struct Recovering {
    config: AuditConfig,
    key: Option<Key>,
    witness: Arc<dyn Witness>,
    who: audit::Recovery,
}

fn recovering(global: &GlobalArgs, args: RecoveryArgs) -> Result<Recovering, Failure> {
    let config = match args.trail {
        Some(trail) => AuditConfig::new(trail),
        None => Context::load(global)?.trail_config()?,
    };
    let key = match args.key_file {
        Some(file) => load_key(Some(&file))?,
        None => config.load_key()?,
    };
    let actor = OperatorName::parse(&args.operator)
        .map_err(|e| Failure::new(Exit::Invalid, format!("--as: {e}")))?;
    let store = SqliteStore::open(&paths::store_path(args.store)?)?;
    let witness = store.audit_witness(&config.path)?;
    Ok(Recovering {
        config,
        key,
        witness: Arc::new(witness),
        who: audit::Recovery {
            actor: actor.to_string(),
            reason: args.reason,
        },
    })
}

/// A refused recovery is exit 3 (a guard said no); anything else is exit 4.
fn recovery_failure(err: AuditError) -> Failure {
    let exit = match err {
        AuditError::Recovery(_) | AuditError::Vanished { .. } | AuditError::Broken(_) => {
            Exit::Refused
        }
        _ => Exit::Config,
    };
    Failure::new(exit, err)
}

/// `audit new-trail`.
fn new_trail(global: &GlobalArgs, args: RecoveryArgs) -> CmdResult {
    let r = recovering(global, args)?;
    let done =
        audit::new_trail(&r.config, r.key, Some(r.witness), &r.who).map_err(recovery_failure)?;
    match global.output {
        OutputFormat::Text => {
            outln!(
                "started trail {} at {} (record seq {})",
                done.trail,
                r.config.path.display(),
                done.receipt.seq
            );
            match &done.archived {
                Some(dir) => outln!("the old trail's files were moved to {}", dir.display()),
                None => outln!("no file of the old trail was left"),
            }
            outln!("the old trail was: {}", done.found);
            match &done.previous {
                Some(mark) => outln!(
                    "the run store had witnessed trail {} up to seq {}",
                    mark.trail,
                    mark.seq
                ),
                None => outln!("the run store had witnessed no earlier trail here"),
            }
        }
        OutputFormat::Json => outln!(
            "{}",
            serde_json::json!({
                "trail": done.trail,
                "path": r.config.path,
                "seq": done.receipt.seq,
                "archived_to": done.archived,
                "found": done.found,
                "previous_trail": done.previous.as_ref().map(|m| m.trail),
                "previous_seq": done.previous.as_ref().map(|m| m.seq),
            })
        ),
    }
    Ok(Exit::Success)
}

/// `audit reseal`.
fn reseal(global: &GlobalArgs, args: RecoveryArgs) -> CmdResult {
    let r = recovering(global, args)?;
    let done =
        audit::reseal(&r.config, r.key, Some(r.witness), &r.who).map_err(recovery_failure)?;
    match global.output {
        OutputFormat::Text => outln!(
            "resealed trail {} at seq {} (the head was {}); recorded as seq {}",
            done.trail,
            done.sealed_seq,
            done.head_was,
            done.receipt.seq
        ),
        OutputFormat::Json => outln!(
            "{}",
            serde_json::json!({
                "trail": done.trail,
                "sealed_seq": done.sealed_seq,
                "head_was": done.head_was,
                "seq": done.receipt.seq,
            })
        ),
    }
    Ok(Exit::Success)
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
