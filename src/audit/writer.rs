//! The writer: one task owns the trail's files; callers hold cloneable [`AuditHandle`]s.
//!
//! A call to [`AuditHandle::record`] sends the event over a bounded channel and waits for the
//! acknowledgement, which comes only after the record is written, the file fsync'd and the
//! chain head updated. The writer drains whatever is queued into one batch, writes it,
//! fsyncs once, stores the head once, then acknowledges the whole batch — so a hundred
//! concurrent callers cost a few fsyncs, not a hundred.
//!
//! [`AuditHandle::record_nowait`] only waits for room in the channel. Use it where waiting for
//! the disk is not wanted (progress notes); a failure to write it is not lost: the writer stops
//! (fail-stop) and the next `record` or `close` returns [`AuditError::WriterFailed`].
//!
//! The writer is fail-stop: after any write, fsync or rename error it acknowledges nothing more
//! as durable. Reopening the trail re-checks its tail against its head.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};

use super::chain::{Key, Linker};
use super::config::AuditConfig;
use super::error::{AuditError, Break};
use super::files;
use super::head::{Head, head_path};
use super::record::{Event, write_record};
use super::verify::{self, Checker};

/// Queue length between callers and the writer (callers wait for room beyond it).
const CHANNEL: usize = 4096;
/// Most records written under one fsync.
const MAX_BATCH: usize = 1024;

/// Proof that a record is durable: its sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's hash (the next record's `prev`).
    pub hash: String,
}

type Ack = oneshot::Sender<Result<Receipt, AuditError>>;

enum Msg {
    Record(Box<Event>, Option<Ack>),
    Close(oneshot::Sender<Result<(), AuditError>>),
}

/// A cheap, cloneable handle to the trail's single writer. Pass it to whatever must record.
///
/// Call [`AuditHandle::close`] before the program ends to flush and stop the writer. When every
/// handle is dropped without `close`, the writer still writes everything already queued and
/// then stops. A `record` future dropped after its event was queued does not withdraw it.
#[derive(Debug, Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Record(e, _) => write!(f, "Record({})", e.action()),
            Msg::Close(_) => write!(f, "Close"),
        }
    }
}

impl AuditHandle {
    /// Open (or create) the trail described by `config`, loading its key, and start the writer.
    /// Must be called inside a tokio runtime.
    pub async fn open(config: &AuditConfig) -> Result<AuditHandle, AuditError> {
        let key = config.load_key()?;
        AuditHandle::open_with_key(config, key).await
    }

    /// Open (or create) the trail with an already loaded key (`None`: plain SHA-256).
    ///
    /// An existing trail is continued from its chain head after checking that the head is
    /// valid and that the last file's records chain up to it; a broken trail is refused
    /// ([`AuditError::Broken`], [`AuditError::HeadMissing`], key errors) and nothing is written.
    pub async fn open_with_key(
        config: &AuditConfig,
        key: Option<Key>,
    ) -> Result<AuditHandle, AuditError> {
        config.validate()?;
        let config = config.clone();
        let writer = tokio::task::spawn_blocking(move || Writer::open(&config, key))
            .await
            .map_err(|e| AuditError::WriterFailed(format!("the opening task failed: {e}")))??;
        let (tx, rx) = mpsc::channel(CHANNEL);
        tokio::task::spawn_blocking(move || writer.run(rx));
        Ok(AuditHandle { tx })
    }

    /// Record `event` and wait until it is durable (written, fsync'd, head updated).
    pub async fn record(&self, event: Event) -> Result<Receipt, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Record(Box::new(event), Some(ack)))
            .await
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Queue `event` without waiting for the disk (see the module documentation).
    pub async fn record_nowait(&self, event: Event) -> Result<(), AuditError> {
        self.tx
            .send(Msg::Record(Box::new(event), None))
            .await
            .map_err(|_| AuditError::Closed)
    }

    /// Flush everything queued before this call, then stop the writer. Every handle (all
    /// clones) is closed afterwards; later calls return [`AuditError::Closed`].
    pub async fn close(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Close(ack))
            .await
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }
}

/// The state owned by the writer task.
struct Writer {
    path: PathBuf,
    head_path: PathBuf,
    max_file_bytes: u64,
    linker: Linker,
    trail: uuid::Uuid,
    seq: u64,
    last_hash: String,
    file: File,
    size: u64,
    next_rotation: u64,
    failed: Option<String>,
    /// `<trail>.lock`, locked for as long as this writer lives (released by the OS on exit).
    _lock: File,
}

impl Writer {
    /// Open the trail: create it, or continue it after checking its tail against its head.
    fn open(config: &AuditConfig, key: Option<Key>) -> Result<Writer, AuditError> {
        let path = config.path.clone();
        let lock = lock(&path)?;
        let linker = Linker::new(key);
        let head_path = head_path(&path);
        let head = Head::load(&head_path, &linker)?;
        let files = files::discover(&path)?;
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
        let (trail, seq, last_hash) = match (head, last_nonempty) {
            (None, None) => {
                let trail = uuid::Uuid::new_v4();
                let genesis = linker.genesis(&trail);
                (trail, 0, genesis)
            }
            (None, Some(_)) => return Err(AuditError::HeadMissing { path: head_path }),
            (Some(head), None) => {
                return Err(AuditError::Broken(Break {
                    file: path.clone(),
                    line: 1,
                    seq: 1,
                    reason: format!(
                        "the trail is empty but its chain head records seq {}: records seq 1..{} are missing (truncated)",
                        head.seq, head.seq
                    ),
                }));
            }
            (Some(head), Some(last_file)) => {
                let (seq, hash) = check_tail(&linker, &head, &last_file, &path, &files)?;
                (head.trail, seq, hash)
            }
        };
        let file = crate::files::owner_only()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(AuditError::io("open", &path))?;
        files::sync_dir(&path)?;
        let size = file
            .metadata()
            .map_err(AuditError::io("read metadata of", &path))?
            .len();
        let next_rotation = files::last_rotation(&path)? + 1;
        let writer = Writer {
            path,
            head_path,
            max_file_bytes: config.max_file_bytes,
            linker,
            trail,
            seq,
            last_hash,
            file,
            size,
            next_rotation,
            failed: None,
            _lock: lock,
        };
        if seq > 0 {
            // Bring a head that lagged (crash after fsync, before the head write) up to date.
            writer.store_head()?;
        }
        Ok(writer)
    }

    /// The writer loop: batch, write, fsync, store head, acknowledge. Ends on `Close` or when
    /// every handle is dropped.
    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(_) => break,
                }
            }
            let mut close = None;
            let mut records = Vec::with_capacity(batch.len());
            let mut rest = Vec::new();
            for msg in batch {
                match msg {
                    Msg::Record(event, ack) if close.is_none() => records.push((event, ack)),
                    Msg::Record(_, ack) => rest.extend(ack),
                    Msg::Close(ack) if close.is_none() => close = Some(ack),
                    Msg::Close(ack) => {
                        let _ = ack.send(Ok(()));
                    }
                }
            }
            self.write_batch(records);
            if let Some(ack) = close {
                rx.close();
                let result = match &self.failed {
                    Some(reason) => Err(AuditError::WriterFailed(reason.clone())),
                    None => Ok(()),
                };
                // Release the files and the lock before answering, so that the trail can be
                // reopened as soon as `close` returns.
                drop(self);
                let _ = ack.send(result);
                for ack in rest {
                    let _ = ack.send(Err(AuditError::Closed));
                }
                // Answer whatever was still queued behind the close.
                while let Ok(msg) = rx.try_recv() {
                    match msg {
                        Msg::Record(_, Some(ack)) => {
                            let _ = ack.send(Err(AuditError::Closed));
                        }
                        Msg::Record(_, None) => {}
                        Msg::Close(ack) => {
                            let _ = ack.send(Ok(()));
                        }
                    }
                }
                return;
            }
        }
    }

    /// Write one batch durably and acknowledge it; on failure, stop for good.
    fn write_batch(&mut self, records: Vec<(Box<Event>, Option<Ack>)>) {
        if records.is_empty() {
            return;
        }
        if let Some(reason) = &self.failed {
            for (_, ack) in records {
                if let Some(ack) = ack {
                    let _ = ack.send(Err(AuditError::WriterFailed(reason.clone())));
                }
            }
            return;
        }
        let mut acks = Vec::with_capacity(records.len());
        let result = self.append_all(records, &mut acks);
        match result {
            Ok(()) => {
                for (ack, receipt) in acks {
                    if let Some(ack) = ack {
                        let _ = ack.send(Ok(receipt));
                    }
                }
            }
            Err(err) => {
                let reason = err.to_string();
                tracing::error!(error = %reason, "audit writer stopped");
                self.failed = Some(reason.clone());
                for (ack, _) in acks {
                    if let Some(ack) = ack {
                        let _ = ack.send(Err(AuditError::WriterFailed(reason.clone())));
                    }
                }
            }
        }
    }

    /// Serialize, rotate where needed, write, fsync, store the head. `acks` collects who to
    /// answer (also on failure, so nobody waits forever).
    fn append_all(
        &mut self,
        records: Vec<(Box<Event>, Option<Ack>)>,
        acks: &mut Vec<(Option<Ack>, Receipt)>,
    ) -> Result<(), AuditError> {
        let mut buf: Vec<u8> = Vec::with_capacity(records.len() * 512);
        let mut first_err = None;
        for (event, ack) in records {
            if first_err.is_some() {
                acks.push((
                    ack,
                    Receipt {
                        seq: 0,
                        hash: String::new(),
                    },
                ));
                continue;
            }
            let seq = self.seq + 1;
            let written = match write_record(
                &self.linker,
                &self.trail,
                seq,
                &jiff::Timestamp::now(),
                &event,
                &self.last_hash,
            ) {
                Ok(w) => w,
                Err(err) => {
                    // Not written, no seq used: this caller alone gets the error.
                    if let Some(ack) = ack {
                        let _ = ack.send(Err(err));
                    }
                    continue;
                }
            };
            let len = written.line.len() as u64 + 1;
            let pending = self.size + buf.len() as u64;
            if pending > 0
                && pending + len > self.max_file_bytes
                && let Err(err) = self.flush(&mut buf).and_then(|()| self.rotate())
            {
                first_err = Some(err);
                acks.push((
                    ack,
                    Receipt {
                        seq: 0,
                        hash: String::new(),
                    },
                ));
                continue;
            }
            buf.extend_from_slice(written.line.as_bytes());
            buf.push(b'\n');
            self.seq = seq;
            self.last_hash = written.hash.clone();
            acks.push((
                ack,
                Receipt {
                    seq,
                    hash: written.hash,
                },
            ));
        }
        if let Some(err) = first_err {
            return Err(err);
        }
        self.flush(&mut buf)?;
        self.store_head()
    }

    /// Write `buf` to the live file and fsync it.
    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<(), AuditError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(buf)
            .map_err(AuditError::io("write", &self.path))?;
        self.file
            .sync_data()
            .map_err(AuditError::io("fsync", &self.path))?;
        self.size += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Close the live file, rename it to the next rotation number, start a new live file.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let rotated = files::rotated_path(&self.path, self.next_rotation);
        if rotated.exists() {
            return Err(AuditError::Io {
                action: "rotate to",
                path: rotated,
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        fs::rename(&self.path, &rotated).map_err(AuditError::io("rename", &self.path))?;
        let file = crate::files::owner_only()
            .create_new(true)
            .append(true)
            .open(&self.path)
            .map_err(AuditError::io("create", &self.path))?;
        files::sync_dir(&self.path)?;
        self.file = file;
        self.size = 0;
        self.next_rotation += 1;
        Ok(())
    }

    fn store_head(&self) -> Result<(), AuditError> {
        let file = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Head {
            v: 1,
            trail: self.trail,
            alg: self.linker.alg().as_str().to_owned(),
            kid: self.linker.key_id(),
            seq: self.seq,
            hash: self.last_hash.clone(),
            file,
        }
        .store(&self.head_path, &self.linker)
    }
}

/// Take the trail's lock file `<trail>.lock` exclusively, so that a second writer (another
/// resetctl process, or a second `open` in this one) is refused instead of forking the chain.
/// An advisory OS lock (`flock` on Unix): released when the process ends, so a crash leaves
/// nothing to clean up.
fn lock(trail: &Path) -> Result<File, AuditError> {
    let mut name = trail.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = crate::files::owner_only()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(AuditError::io("open", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(AuditError::Locked { path }),
        Err(fs::TryLockError::Error(e)) => Err(AuditError::io("lock", &path)(e)),
    }
}

/// Check the last non-empty file of an existing trail against its head; return the
/// `(seq, hash)` to continue from. Falls back to verifying every file when the head lies
/// before the last file (a crash right after a rotation).
fn check_tail(
    linker: &Linker,
    head: &Head,
    last_file: &Path,
    live: &Path,
    all_files: &[PathBuf],
) -> Result<(u64, String), AuditError> {
    let mut checker = Checker::new(linker, Some(head.trail), false);
    let mut first: Option<(u64, String)> = None;
    let mut at_head: Option<(u64, String)> = None;
    let mut lines = 0;
    // The last file is at most `max_file_bytes` (or a rotated file of that size): read it whole.
    let bytes = fs::read(last_file).map_err(AuditError::io("read", last_file))?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    for (index, line) in bytes[..complete]
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
    {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line_no = index as u64 + 1;
        let record = checker.check(last_file, line_no, line)?;
        if first.is_none() {
            first = Some((record.seq, record.prev.clone()));
        }
        if record.seq == head.seq {
            at_head = Some((line_no, record.hash));
        }
        lines = line_no;
    }
    let cut = bytes.len() - complete;
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
    if cut > 0 {
        // A record cut short by a crash mid-write: it belongs to a batch that was never
        // acknowledged (the head, written after the fsync, does not reach it). Only then, and
        // only in the live file, is it removed; anything else is refused.
        if last_file != live || last_seq < head.seq {
            return Err(AuditError::Broken(Break {
                file: last_file.to_owned(),
                line: lines + 1,
                seq: last_seq + 1,
                reason: "the last line is cut short (no newline): refusing to append".into(),
            }));
        }
        tracing::warn!(
            file = %last_file.display(),
            bytes = cut,
            "audit trail: removing a record cut short by an interrupted write (never acknowledged)"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(last_file)
            .map_err(AuditError::io("open", last_file))?;
        file.set_len(complete as u64)
            .map_err(AuditError::io("truncate", last_file))?;
        file.sync_all()
            .map_err(AuditError::io("fsync", last_file))?;
    }
    let (first_seq, first_prev) = first.unwrap_or_default();
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
        let report = verify::verify(all_files, linker_key(linker).as_ref())?;
        return Ok((report.last_seq, report.last_hash));
    }
    Ok((last_seq, last_hash))
}

/// The verifier takes a key; the writer holds a linker. Recover the key (kept inside the linker).
fn linker_key(linker: &Linker) -> Option<Key> {
    linker.key().cloned()
}

#[cfg(test)]
mod tests {
    use super::super::value::{Details, Outcome};
    use super::super::verify::{HeadCheck, verify_trail};
    use super::*;

    fn event(i: u64) -> Event {
        Event::new(
            "operator@contoso.com",
            "password.reset",
            format!("user{i}@contoso.com"),
            Outcome::Success,
        )
        .unwrap()
        .with_details(Details::new().with("i", i).unwrap())
    }

    fn config(dir: &Path) -> AuditConfig {
        AuditConfig::new(dir.join("audit.jsonl"))
    }

    async fn write(config: &AuditConfig, key: Option<Key>, n: u64) -> Vec<Receipt> {
        let handle = AuditHandle::open_with_key(config, key).await.unwrap();
        let mut receipts = Vec::new();
        for i in 0..n {
            receipts.push(handle.record(event(i)).await.unwrap());
        }
        handle.close().await.unwrap();
        receipts
    }

    #[tokio::test]
    async fn records_are_acknowledged_in_order_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let receipts = write(&c, None, 10).await;
        assert_eq!(
            receipts.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
        let report = verify_trail(&c.path, None).unwrap();
        assert_eq!((report.records, report.last_seq), (10, 10));
        assert_eq!(report.last_hash, receipts[9].hash);
        assert_eq!(report.head, HeadCheck::Matched { seq: 10 });
    }

    #[tokio::test]
    async fn reopening_continues_the_same_chain() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        write(&c, None, 3).await;
        let first = verify_trail(&c.path, None).unwrap();
        let more = write(&c, None, 2).await;
        assert_eq!(more[0].seq, 4);
        let report = verify_trail(&c.path, None).unwrap();
        assert_eq!(report.records, 5);
        assert_eq!(report.trail, first.trail);
    }

    #[tokio::test]
    async fn rotation_carries_the_chain_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.max_file_bytes = 1024;
        write(&c, None, 40).await;
        let report = verify_trail(&c.path, None).unwrap();
        assert!(report.files.len() >= 5, "{:?}", report.files);
        assert_eq!(report.records, 40);
        for f in &report.files {
            assert!(fs::metadata(f).unwrap().len() <= 1024, "{}", f.display());
        }
        // Reopen after rotation and keep going: numbering continues, nothing is overwritten.
        write(&c, None, 10).await;
        assert_eq!(verify_trail(&c.path, None).unwrap().records, 50);
    }

    #[tokio::test]
    async fn keyed_trails_need_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let key = Key::from_bytes(vec![9; 32]).unwrap();
        write(&c, Some(key.clone()), 3).await;
        assert!(verify_trail(&c.path, Some(&key)).is_ok());
        assert!(matches!(
            verify_trail(&c.path, None),
            Err(AuditError::KeyRequired { .. })
        ));
        let other = Key::from_bytes(vec![8; 32]).unwrap();
        assert!(matches!(
            verify_trail(&c.path, Some(&other)),
            Err(AuditError::WrongKey { .. })
        ));
        // Reopening without the key, or with another, is refused too.
        assert!(matches!(
            AuditHandle::open_with_key(&c, None).await,
            Err(AuditError::KeyRequired { .. })
        ));
        assert!(matches!(
            AuditHandle::open_with_key(&c, Some(other)).await,
            Err(AuditError::WrongKey { .. })
        ));
    }

    #[tokio::test]
    async fn a_broken_trail_is_not_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        write(&c, None, 5).await;
        let text = fs::read_to_string(&c.path).unwrap();
        let kept: Vec<&str> = text.lines().take(3).collect();
        fs::write(&c.path, format!("{}\n", kept.join("\n"))).unwrap();
        let before = fs::read(&c.path).unwrap();
        match AuditHandle::open_with_key(&c, None).await {
            Err(AuditError::Broken(b)) => assert_eq!(b.seq, 4, "{b}"),
            other => panic!("expected Broken, got {other:?}"),
        }
        assert_eq!(fs::read(&c.path).unwrap(), before, "nothing written");
        fs::remove_file(head_path(&c.path)).unwrap();
        assert!(matches!(
            AuditHandle::open_with_key(&c, None).await,
            Err(AuditError::HeadMissing { .. })
        ));
    }

    #[tokio::test]
    async fn a_lagging_head_is_caught_up_on_open() {
        // A crash between the fsync of a batch and its head write leaves the head behind.
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        write(&c, None, 2).await;
        let old_head = fs::read(head_path(&c.path)).unwrap();
        write(&c, None, 3).await;
        fs::write(head_path(&c.path), old_head).unwrap();
        assert_eq!(
            verify_trail(&c.path, None).unwrap().head,
            HeadCheck::Behind { seq: 2, extra: 3 }
        );
        write(&c, None, 1).await;
        assert_eq!(
            verify_trail(&c.path, None).unwrap().head,
            HeadCheck::Matched { seq: 6 }
        );
    }

    #[tokio::test]
    async fn a_record_cut_by_a_crash_is_removed_on_open_but_nothing_acknowledged_is() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let receipts = write(&c, None, 4).await;
        // An interrupted write after the last acknowledged batch: half a line, no newline.
        let mut text = fs::read_to_string(&c.path).unwrap();
        let half = text.lines().next().unwrap()[..80].to_owned();
        text.push_str(&half);
        fs::write(&c.path, &text).unwrap();
        // The verifier accepts it as unfinished (everything the head names is there)...
        let report = verify_trail(&c.path, None).unwrap();
        assert!(report.partial_tail);
        assert_eq!(report.records, 4);
        // ...and the writer removes it when it reopens the trail.
        let more = write(&c, None, 1).await;
        assert_eq!(more[0].seq, 5);
        let report = verify_trail(&c.path, None).unwrap();
        assert_eq!((report.records, report.partial_tail), (5, false));
        let lines = fs::read_to_string(&c.path).unwrap();
        assert!(lines.contains(&receipts[3].hash));
        // A cut line that the head says was acknowledged is not removed: refused instead.
        let text = fs::read_to_string(&c.path).unwrap();
        fs::write(&c.path, &text[..text.len() - 10]).unwrap();
        assert!(matches!(
            verify_trail(&c.path, None),
            Err(AuditError::Broken(_))
        ));
        assert!(matches!(
            AuditHandle::open_with_key(&c, None).await,
            Err(AuditError::Broken(_))
        ));
    }

    #[tokio::test]
    async fn a_second_writer_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let first = AuditHandle::open_with_key(&c, None).await.unwrap();
        first.record(event(1)).await.unwrap();
        assert!(matches!(
            AuditHandle::open_with_key(&c, None).await,
            Err(AuditError::Locked { .. })
        ));
        first.close().await.unwrap();
        // `close` returns after the lock is released.
        let second = AuditHandle::open_with_key(&c, None).await.unwrap();
        assert_eq!(second.record(event(2)).await.unwrap().seq, 2);
        second.close().await.unwrap();
    }

    #[tokio::test]
    async fn close_flushes_fire_and_forget_records_and_ends_every_handle() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let handle = AuditHandle::open_with_key(&c, None).await.unwrap();
        let clone = handle.clone();
        for i in 0..20 {
            clone.record_nowait(event(i)).await.unwrap();
        }
        handle.close().await.unwrap();
        assert_eq!(verify_trail(&c.path, None).unwrap().records, 20);
        assert!(matches!(
            clone.record(event(0)).await,
            Err(AuditError::Closed)
        ));
        assert!(matches!(clone.close().await, Err(AuditError::Closed)));
    }
}
