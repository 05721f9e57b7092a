//! Explicit recoveries, each recorded in the trail it leaves behind:
//!
//! - [`new_trail`]: the trail is gone, cut short, broken, or must change its key. The old files
//!   (whatever is left of them) are moved aside into a directory of their own, never deleted,
//!   and a new trail starts whose first record names the old trail, what its witness last
//!   saw, what was found, where it went, who did it and why.
//! - [`reseal`]: only the chain head was lost (or damaged) while the records are intact. The
//!   records are checked from seq 1 (and against the witness, which must not be ahead of
//!   them), a head is written at their end, and a record saying so is appended. A head that is
//!   present and valid is never rebuilt: a trail that disagrees with it needs `new_trail`.
//!
//! Both run under the trail lock and are blocking.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::chain::Key;
use super::config::AuditConfig;
use super::error::AuditError;
use super::files;
use super::head::{Head, head_path};
use super::record::Event;
use super::tail;
use super::trail::{Start, Trail};
use super::value::{Details, Outcome};
use super::verify::{self, Walk};
use super::witness::{self, Mark, Witness};
use super::writer::Receipt;

/// Longest description of the old trail's state kept in the new trail's first record.
const MAX_FOUND_LEN: usize = 1000;

/// Who starts a new trail or reseals a head, and why: both are written into the trail.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The operator (as for `runs approve --as`).
    pub actor: String,
    /// Why, in the operator's words.
    pub reason: String,
}

/// What [`new_trail`] did.
#[derive(Debug, Clone)]
pub struct NewTrail {
    /// The new trail's id.
    pub trail: uuid::Uuid,
    /// Its first record.
    pub receipt: Receipt,
    /// What the witness had seen of the old trail.
    pub previous: Option<Mark>,
    /// What the old trail's files showed (verified with the given key).
    pub found: String,
    /// Where the old trail's files were moved (`None` when nothing was left).
    pub archived: Option<PathBuf>,
}

/// What [`reseal`] did.
#[derive(Debug, Clone)]
pub struct Resealed {
    /// The trail id.
    pub trail: uuid::Uuid,
    /// The last record found, where the new head was sealed.
    pub sealed_seq: u64,
    /// `"missing"` or `"invalid"`: what had become of the old head.
    pub head_was: &'static str,
    /// The record that says the head was rebuilt.
    pub receipt: Receipt,
}

/// Start a new trail at `config.path` (see the module doc). Blocking.
pub fn new_trail(
    config: &AuditConfig,
    key: Option<Key>,
    witness: Option<Arc<dyn Witness>>,
    who: &Recovery,
) -> Result<NewTrail, AuditError> {
    config.validate()?;
    check_reason(&who.reason)?;
    let mut trail = Trail::unchecked(config, key.clone(), witness)?;
    let lock = trail.lock();
    let held = lock.acquire()?;
    let previous = trail.last_seen()?;
    let path = trail.path().to_owned();
    let (found, old_id) =
        match verify::verify_trail_witnessed(&path, key.as_ref(), previous.as_ref()) {
            Ok(report) => (
                format!(
                    "intact: {} records, seq 1..{}, {}",
                    report.records,
                    report.last_seq,
                    report.alg.as_str()
                ),
                report.trail,
            ),
            Err(AuditError::NoFiles { .. }) => ("no files".to_owned(), None),
            Err(err) => (err.to_string(), None),
        };
    let old_id = old_id.or(previous.as_ref().map(|m| m.trail));
    let archived = archive(&path)?;
    let mut details = Details::new()
        .with("reason", who.reason.as_str())?
        .with("found", truncate(&found, MAX_FOUND_LEN))?;
    if let Some(id) = old_id {
        details.insert("previous_trail", id)?;
    }
    if let Some(mark) = &previous {
        details.insert("witnessed_trail", mark.trail)?;
        details.insert("witnessed_seq", mark.seq)?;
        details.insert("witnessed_hash", mark.hash.as_str())?;
    }
    if let Some(dir) = &archived {
        details.insert("archived_to", dir.display().to_string())?;
    }
    let subject = old_id.map_or_else(|| "none".to_owned(), |id| id.to_string());
    let event =
        Event::new(&who.actor, "audit.trail.new", subject, Outcome::Success)?.with_details(details);
    let start = Start::new_trail(trail.linker());
    let id = start.trail;
    let receipt = first(trail.write_locked(&held, start, &[&event])?)?;
    Ok(NewTrail {
        trail: id,
        receipt,
        previous,
        found,
        archived,
    })
}

/// Rebuild a lost or damaged chain head of an intact trail (see the module doc). Blocking.
pub fn reseal(
    config: &AuditConfig,
    key: Option<Key>,
    witness: Option<Arc<dyn Witness>>,
    who: &Recovery,
) -> Result<Resealed, AuditError> {
    config.validate()?;
    check_reason(&who.reason)?;
    let mut trail = Trail::unchecked(config, key, witness)?;
    let lock = trail.lock();
    let held = lock.acquire()?;
    let path = trail.path().to_owned();
    let head_was = match Head::load(&head_path(&path), trail.linker()) {
        Ok(Some(head)) => {
            return Err(AuditError::Recovery(format!(
                "{}: the chain head is present and valid (seq {}): nothing to reseal. If the trail disagrees with it, keep the files as evidence and start a new trail: `resetctl audit new-trail --as OPERATOR --reason TEXT`",
                head_path(&path).display(),
                head.seq
            )));
        }
        Ok(None) => "missing",
        Err(AuditError::HeadInvalid { .. }) => "invalid",
        Err(err) => return Err(err),
    };
    let files = files::discover(&path)?;
    // A last line cut short cannot be judged without a head; it is not a record either way.
    let mut cut_bytes = 0;
    if files.last().is_some_and(|f| *f == path) {
        let bytes = fs::read(&path).map_err(AuditError::io("read", &path))?;
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        if keep < bytes.len() {
            cut_bytes = (bytes.len() - keep) as u64;
            tail::remove_cut_tail(&path, keep as u64, cut_bytes)?;
        }
    }
    let mark = trail.last_seen()?;
    let (report, probed) = verify::walk(Walk {
        live: files.last().filter(|f| **f == path).cloned(),
        files,
        head: None,
        linker: trail.linker(),
        probe: mark.as_ref().map(|m| m.seq),
    })?;
    let Some(id) = report.trail.filter(|_| report.last_seq > 0) else {
        return Err(AuditError::Recovery(format!(
            "{}: the trail has no records: nothing to reseal. Start a new trail: `resetctl audit new-trail --as OPERATOR --reason TEXT`",
            path.display()
        )));
    };
    if let Some(mark) = &mark {
        witness::check(
            &path,
            mark,
            witness::Found {
                last: Some((id, report.last_seq, &report.last_hash)),
                at_mark: probed.as_deref(),
            },
        )?;
    }
    trail.store_head(id, report.last_seq, &report.last_hash)?;
    let mut details = Details::new()
        .with("reason", who.reason.as_str())?
        .with("head_was", head_was)?
        .with("sealed_seq", report.last_seq)?;
    match &mark {
        Some(mark) => details.insert("witnessed_seq", mark.seq)?,
        None => details.insert("witnessed", false)?,
    }
    if cut_bytes > 0 {
        details.insert("cut_tail_bytes", cut_bytes)?;
    }
    let event = Event::new(
        &who.actor,
        "audit.head.reseal",
        id.to_string(),
        Outcome::Success,
    )?
    .with_details(details);
    let start = Start {
        trail: id,
        seq: report.last_seq,
        hash: report.last_hash,
        file: None,
    };
    let receipt = first(trail.write_locked(&held, start, &[&event])?)?;
    Ok(Resealed {
        trail: id,
        sealed_seq: report.last_seq,
        head_was,
        receipt,
    })
}

fn check_reason(reason: &str) -> Result<(), AuditError> {
    if reason.trim().is_empty() {
        return Err(AuditError::Recovery(
            "a reason is required: it is written into the trail".into(),
        ));
    }
    Ok(())
}

/// The one result of a one-record batch.
fn first(results: Vec<Result<Receipt, AuditError>>) -> Result<Receipt, AuditError> {
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(AuditError::Recovery("no record was written".into())))
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Move every file of the trail at `trail` (rotated files, live file, head) into a new
/// directory `<trail>.retired-<UTC time>` beside it, where `audit verify --trail
/// <dir>/<name>` still checks them. `None` when there was nothing to move.
fn archive(trail: &Path) -> Result<Option<PathBuf>, AuditError> {
    let mut moving = files::discover(trail)?;
    for extra in [head_path(trail), head_tmp_path(trail)] {
        if extra.exists() {
            moving.push(extra);
        }
    }
    if moving.is_empty() {
        return Ok(None);
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let mut name = trail.as_os_str().to_owned();
    name.push(format!(".retired-{stamp}"));
    let mut dir = PathBuf::from(&name);
    let mut n = 1;
    // Owner-only, like the trail it holds; never an existing directory.
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    loop {
        match builder.create(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n += 1;
                dir = PathBuf::from(format!("{}-{n}", name.to_string_lossy()));
            }
            Err(e) => return Err(AuditError::io("create directory", &dir)(e)),
        }
    }
    for file in &moving {
        let Some(file_name) = file.file_name() else {
            continue;
        };
        let to = dir.join(file_name);
        fs::rename(file, &to).map_err(AuditError::io("move", file))?;
    }
    files::sync_dir(&dir.join("x"))?;
    files::sync_dir(trail)?;
    Ok(Some(dir))
}

fn head_tmp_path(trail: &Path) -> PathBuf {
    let mut name = head_path(trail).into_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::super::verify::{HeadCheck, verify_trail, verify_trail_witnessed};
    use super::super::witness::tests::MemoryWitness;
    use super::super::writer::AuditHandle;
    use super::*;

    fn who() -> Recovery {
        Recovery {
            actor: "alice@contoso.com".into(),
            reason: "trail deleted during incident INC-42".into(),
        }
    }

    fn witnessed(w: &Arc<MemoryWitness>) -> Option<Arc<dyn Witness>> {
        Some(Arc::clone(w) as Arc<dyn Witness>)
    }

    async fn write(c: &AuditConfig, w: &Arc<MemoryWitness>, n: u64) {
        let handle = AuditHandle::open_with(c, None, witnessed(w)).await.unwrap();
        for i in 0..n {
            let event =
                Event::new("resetctl", "test.write", format!("u{i}"), Outcome::Success).unwrap();
            handle.record(event).await.unwrap();
        }
        handle.close().await.unwrap();
    }

    fn last_record(path: &Path) -> serde_json::Value {
        let text = fs::read_to_string(path).unwrap();
        serde_json::from_str(text.lines().last().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_new_trail_names_the_vanished_one_and_keeps_what_was_left() {
        let dir = tempfile::tempdir().unwrap();
        let c = AuditConfig::new(dir.path().join("audit.jsonl"));
        let w = Arc::new(MemoryWitness::default());
        write(&c, &w, 4).await;
        let old = w.last_seen().unwrap().unwrap();
        // Cut short to two records, head gone: refused by writers...
        let text = fs::read_to_string(&c.path).unwrap();
        let kept: Vec<&str> = text.lines().take(2).collect();
        fs::write(&c.path, format!("{}\n", kept.join("\n"))).unwrap();
        fs::remove_file(head_path(&c.path)).unwrap();
        assert!(
            AuditHandle::open_with(&c, None, witnessed(&w))
                .await
                .is_err()
        );
        // ...until an operator starts a new trail.
        let done = new_trail(&c, None, witnessed(&w), &who()).unwrap();
        assert_eq!(done.receipt.seq, 1);
        assert_eq!(done.previous.as_ref(), Some(&old));
        assert!(
            done.found.contains("chain head file is missing"),
            "{}",
            done.found
        );
        let archived = done.archived.clone().unwrap();
        assert!(archived.join("audit.jsonl").exists());
        let first = last_record(&c.path);
        assert_eq!(first["action"], "audit.trail.new");
        assert_eq!(first["actor"], "alice@contoso.com");
        assert_eq!(first["subject"], old.trail.to_string());
        assert_eq!(first["details"]["witnessed_seq"], 4);
        assert_eq!(first["details"]["witnessed_hash"], old.hash);
        assert_eq!(first["details"]["reason"], who().reason);
        assert_eq!(
            first["details"]["archived_to"],
            archived.display().to_string()
        );
        // The witness follows the new trail, which verifies and can be written.
        let mark = w.last_seen().unwrap().unwrap();
        assert_eq!((mark.trail, mark.seq), (done.trail, 1));
        let report = verify_trail_witnessed(&c.path, None, Some(&mark)).unwrap();
        assert_eq!(report.records, 1);
        write(&c, &w, 1).await;
        // The moved-aside files are still there for the investigation, as they were.
        assert_eq!(
            fs::read_to_string(archived.join("audit.jsonl")).unwrap(),
            format!("{}\n", kept.join("\n"))
        );
    }

    #[tokio::test]
    async fn a_new_trail_where_nothing_is_left_archives_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = AuditConfig::new(dir.path().join("audit.jsonl"));
        let w = Arc::new(MemoryWitness::default());
        write(&c, &w, 2).await;
        fs::remove_file(&c.path).unwrap();
        fs::remove_file(head_path(&c.path)).unwrap();
        let done = new_trail(&c, None, witnessed(&w), &who()).unwrap();
        assert_eq!(done.archived, None);
        assert!(
            done.found.contains("no file of it is left"),
            "{}",
            done.found
        );
        let no_reason = Recovery {
            reason: "  ".into(),
            ..who()
        };
        assert!(matches!(
            new_trail(&c, None, witnessed(&w), &no_reason),
            Err(AuditError::Recovery(_))
        ));
    }

    #[tokio::test]
    async fn a_lost_head_is_resealed_and_the_reseal_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let c = AuditConfig::new(dir.path().join("audit.jsonl"));
        let w = Arc::new(MemoryWitness::default());
        write(&c, &w, 3).await;
        // A valid head is never rebuilt.
        assert!(matches!(
            reseal(&c, None, witnessed(&w), &who()),
            Err(AuditError::Recovery(reason)) if reason.contains("present and valid")
        ));
        fs::remove_file(head_path(&c.path)).unwrap();
        // A crash's cut line after the records does not stop it.
        let mut text = fs::read_to_string(&c.path).unwrap();
        text.push_str("{\"v\":1,\"tra");
        fs::write(&c.path, text).unwrap();
        let done = reseal(&c, None, witnessed(&w), &who()).unwrap();
        assert_eq!(
            (done.sealed_seq, done.head_was, done.receipt.seq),
            (3, "missing", 4)
        );
        let report = verify_trail(&c.path, None).unwrap();
        assert_eq!(report.head, HeadCheck::Matched { seq: 4 });
        let record = last_record(&c.path);
        assert_eq!(record["action"], "audit.head.reseal");
        assert_eq!(record["details"]["head_was"], "missing");
        assert_eq!(record["details"]["witnessed_seq"], 3);
        assert_eq!(record["details"]["cut_tail_bytes"], 11);
        assert_eq!(w.last_seen().unwrap().unwrap().seq, 4);
        // A damaged head too.
        fs::write(head_path(&c.path), "{}").unwrap();
        assert_eq!(
            reseal(&c, None, witnessed(&w), &who()).unwrap().head_was,
            "invalid"
        );
    }

    #[tokio::test]
    async fn a_truncated_trail_is_not_resealed() {
        let dir = tempfile::tempdir().unwrap();
        let c = AuditConfig::new(dir.path().join("audit.jsonl"));
        let w = Arc::new(MemoryWitness::default());
        write(&c, &w, 5).await;
        let text = fs::read_to_string(&c.path).unwrap();
        let kept: Vec<&str> = text.lines().take(3).collect();
        fs::write(&c.path, format!("{}\n", kept.join("\n"))).unwrap();
        fs::remove_file(head_path(&c.path)).unwrap();
        // Resealing would hide the truncation: the witness says seq 5 existed.
        assert!(matches!(
            reseal(&c, None, witnessed(&w), &who()),
            Err(AuditError::Vanished { .. })
        ));
        assert!(!head_path(&c.path).exists(), "nothing written");
        // A broken chain is not resealed either.
        let mut lines: Vec<String> = kept.iter().map(|l| (*l).to_owned()).collect();
        lines[1] = lines[1].replacen("u1", "u7", 1);
        fs::write(&c.path, format!("{}\n", lines.join("\n"))).unwrap();
        assert!(matches!(
            reseal(&c, None, None, &who()),
            Err(AuditError::Broken(_))
        ));
    }
}
