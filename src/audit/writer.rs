//! The writer: one task per [`AuditHandle`] family owns its hold on the trail; callers hold
//! cloneable handles.
//!
//! A call to [`AuditHandle::record`] sends the event over a bounded channel and waits for the
//! acknowledgement, which comes only after the record is written, the file fsync'd, the chain
//! head updated and the witness told. The writer drains whatever is queued into one batch,
//! takes the trail lock, writes the batch, fsyncs once, stores the head once, lets the lock go,
//! then acknowledges the whole batch — so a hundred concurrent callers cost a few fsyncs, not a
//! hundred, and other writers (other resetctl processes) append between batches.
//!
//! [`AuditHandle::record_nowait`] only waits for room in the channel. Use it where waiting for
//! the disk is not wanted (progress notes); a failure to write it is not lost: the writer stops
//! (fail-stop) and the next `record` or `close` returns [`AuditError::WriterFailed`].
//!
//! The writer is fail-stop: after any write, fsync, rename or witness error, and after finding
//! the trail changed in a way no writer would change it, it acknowledges nothing more as
//! durable. Reopening the trail re-checks it.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::chain::Key;
use super::config::AuditConfig;
use super::error::AuditError;
use super::record::Event;
use super::trail::Trail;
use super::witness::Witness;

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

/// A cheap, cloneable handle to one writer of the trail. Pass it to whatever must record.
///
/// Call [`AuditHandle::close`] before the program ends to flush and stop the writer. When every
/// handle is dropped without `close`, the writer still writes everything already queued and
/// then stops. A `record` future dropped after its event was queued does not withdraw it.
/// Several writers (in this process or others) may append to one trail; each batch is
/// appended under the trail's OS lock, so the chain stays one chain.
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
    /// No witness: see [`AuditHandle::open_witnessed`]. Must be called inside a tokio runtime.
    pub async fn open(config: &AuditConfig) -> Result<AuditHandle, AuditError> {
        let key = config.load_key()?;
        AuditHandle::open_with(config, key, None).await
    }

    /// [`AuditHandle::open`] with `witness` (the run store), which is compared with the trail
    /// on opening and told where the trail stands after every batch; see [`Witness`].
    pub async fn open_witnessed(
        config: &AuditConfig,
        witness: Arc<dyn Witness>,
    ) -> Result<AuditHandle, AuditError> {
        let key = config.load_key()?;
        AuditHandle::open_with(config, key, Some(witness)).await
    }

    /// Open (or create) the trail with an already loaded key (`None`: plain SHA-256), without
    /// a witness.
    pub async fn open_with_key(
        config: &AuditConfig,
        key: Option<Key>,
    ) -> Result<AuditHandle, AuditError> {
        AuditHandle::open_with(config, key, None).await
    }

    /// Open (or create) the trail with an already loaded key and an optional witness.
    ///
    /// An existing trail is continued from its chain head after checking that the head is
    /// valid and that the last file's records chain up to it; a broken trail is refused
    /// ([`AuditError::Broken`], [`AuditError::HeadMissing`], key errors), and so is a trail
    /// behind its witness ([`AuditError::Vanished`]). Nothing is written then.
    pub async fn open_with(
        config: &AuditConfig,
        key: Option<Key>,
        witness: Option<Arc<dyn Witness>>,
    ) -> Result<AuditHandle, AuditError> {
        config.validate()?;
        let config = config.clone();
        let trail = tokio::task::spawn_blocking(move || Trail::open(&config, key, witness))
            .await
            .map_err(|e| AuditError::WriterFailed(format!("the opening task failed: {e}")))??;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let writer = Writer {
            trail,
            failed: None,
        };
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
    trail: Trail,
    failed: Option<String>,
}

impl Writer {
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
                // Release the files before answering.
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
        let events: Vec<&Event> = records.iter().map(|(event, _)| event.as_ref()).collect();
        match self.trail.append(&events) {
            Ok(results) => {
                for ((_, ack), result) in records.into_iter().zip(results) {
                    if let Some(ack) = ack {
                        let _ = ack.send(result);
                    }
                }
            }
            Err(err) => {
                let reason = err.to_string();
                tracing::error!(error = %reason, "audit writer stopped");
                self.failed = Some(reason.clone());
                for (_, ack) in records {
                    if let Some(ack) = ack {
                        let _ = ack.send(Err(AuditError::WriterFailed(reason.clone())));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::chain::Key;
    use super::super::files;
    use super::super::head::head_path;
    use super::super::value::{Details, Outcome};
    use super::super::verify::{HeadCheck, verify_trail};
    use super::*;
    use std::fs;
    use std::path::Path;

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
    async fn two_open_writers_take_turns_on_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let first = AuditHandle::open_with_key(&c, None).await.unwrap();
        let second = AuditHandle::open_with_key(&c, None).await.unwrap();
        // Neither has written when both open: the second must not start a second trail.
        let mut seqs = Vec::new();
        for i in 0..6 {
            let handle = if i % 2 == 0 { &first } else { &second };
            seqs.push(handle.record(event(i)).await.unwrap().seq);
        }
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
        first.close().await.unwrap();
        second.record(event(7)).await.unwrap();
        second.close().await.unwrap();
        let report = verify_trail(&c.path, None).unwrap();
        assert_eq!(
            (report.records, report.head),
            (7, HeadCheck::Matched { seq: 7 })
        );
    }

    #[test]
    fn writers_on_separate_threads_append_concurrently_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.max_file_bytes = 4096;
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let c = c.clone();
                std::thread::spawn(move || {
                    // Each thread its own runtime and writer, like separate processes.
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let handle = AuditHandle::open_with_key(&c, None).await.unwrap();
                        let mut seqs = Vec::new();
                        for i in 0..50 {
                            seqs.push(handle.record(event(w * 1000 + i)).await.unwrap().seq);
                        }
                        handle.close().await.unwrap();
                        seqs
                    })
                })
            })
            .collect();
        let mut all: Vec<u64> = writers
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=200).collect::<Vec<u64>>());
        let report = verify_trail(&c.path, None).unwrap();
        assert_eq!(report.records, 200);
        assert!(report.files.len() > 3, "{:?}", report.files);
        // Every event is there exactly once.
        let mut subjects: Vec<String> = report
            .files
            .iter()
            .flat_map(|f| {
                fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(|l| {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap();
                        v["subject"].as_str().unwrap().to_owned()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        subjects.sort();
        subjects.dedup();
        assert_eq!(subjects.len(), 200);
    }

    #[tokio::test]
    async fn a_trail_replaced_under_an_open_writer_stops_it() {
        // Without any witness, the writer's own last position is one: a trail deleted while
        // it is open is not silently restarted.
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let handle = AuditHandle::open_with_key(&c, None).await.unwrap();
        handle.record(event(1)).await.unwrap();
        handle.record(event(2)).await.unwrap();
        fs::remove_file(&c.path).unwrap();
        fs::remove_file(head_path(&c.path)).unwrap();
        assert!(matches!(
            handle.record(event(3)).await,
            Err(AuditError::WriterFailed(reason)) if reason.contains("witnessed up to seq 2")
        ));
        assert!(!c.path.exists(), "no new trail was started");
        assert!(matches!(
            handle.close().await,
            Err(AuditError::WriterFailed(_))
        ));
    }

    #[tokio::test]
    async fn another_writers_damage_is_found_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let first = AuditHandle::open_with_key(&c, None).await.unwrap();
        first.record(event(1)).await.unwrap();
        let second = AuditHandle::open_with_key(&c, None).await.unwrap();
        second.record(event(2)).await.unwrap();
        // Record 2 is edited after the second writer wrote it: the first writer reads it
        // before it appends, and refuses.
        let text = fs::read_to_string(&c.path).unwrap();
        fs::write(&c.path, text.replace("user2@", "user9@")).unwrap();
        assert!(matches!(
            first.record(event(3)).await,
            Err(AuditError::WriterFailed(reason)) if reason.contains("edited")
        ));
        let _ = first.close().await;
        let _ = second.close().await;
    }

    use super::super::head::Head;
    use super::super::witness::tests::MemoryWitness;
    use super::super::witness::{Mark, Witness};

    fn witnessed(w: &Arc<MemoryWitness>) -> Option<Arc<dyn Witness>> {
        Some(Arc::clone(w) as Arc<dyn Witness>)
    }

    async fn write_witnessed(c: &AuditConfig, w: &Arc<MemoryWitness>, n: u64) -> Vec<Receipt> {
        let handle = AuditHandle::open_with(c, None, witnessed(w)).await.unwrap();
        let mut receipts = Vec::new();
        for i in 0..n {
            receipts.push(handle.record(event(i)).await.unwrap());
        }
        handle.close().await.unwrap();
        receipts
    }

    fn vanished(result: Result<AuditHandle, AuditError>, why: &str) {
        match result {
            Err(err @ AuditError::Vanished { .. }) => {
                assert!(err.to_string().contains(why), "{err}");
            }
            other => panic!("expected Vanished ({why}), got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_witness_follows_every_batch() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let w = Arc::new(MemoryWitness::default());
        let receipts = write_witnessed(&c, &w, 3).await;
        let report = verify_trail(&c.path, None).unwrap();
        assert_eq!(
            w.last_seen().unwrap(),
            Some(Mark {
                trail: report.trail.unwrap(),
                seq: 3,
                hash: receipts[2].hash.clone()
            })
        );
        assert_eq!(*w.writes.lock().unwrap(), 3, "one write per batch");
        // A trail written without the witness is taken up by it on the next open.
        let fresh = Arc::new(MemoryWitness::default());
        write(&c, None, 2).await;
        let handle = AuditHandle::open_with(&c, None, witnessed(&fresh))
            .await
            .unwrap();
        assert_eq!(fresh.last_seen().unwrap().map(|m| m.seq), Some(5));
        handle.close().await.unwrap();
    }

    #[tokio::test]
    async fn an_emptied_or_deleted_trail_is_refused_when_witnessed() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let w = Arc::new(MemoryWitness::default());
        write_witnessed(&c, &w, 4).await;
        // Emptied, head deleted: from the files alone, a trail never written.
        fs::write(&c.path, "").unwrap();
        fs::remove_file(head_path(&c.path)).unwrap();
        vanished(
            AuditHandle::open_with(&c, None, witnessed(&w)).await,
            "no record of it is left",
        );
        assert_eq!(fs::read(&c.path).unwrap(), b"", "nothing written");
        fs::remove_file(&c.path).unwrap();
        vanished(
            AuditHandle::open_with(&c, None, witnessed(&w)).await,
            "witnessed up to seq 4",
        );
        assert!(!c.path.exists());
        // Without its witness the same directory starts a new chain: the limit it closes.
        let handle = AuditHandle::open_with_key(&c, None).await.unwrap();
        handle.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_truncated_trail_with_a_resealed_head_is_refused_when_witnessed() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let w = Arc::new(MemoryWitness::default());
        let receipts = write_witnessed(&c, &w, 5).await;
        let trail = verify_trail(&c.path, None).unwrap().trail.unwrap();
        let text = fs::read_to_string(&c.path).unwrap();
        let kept: Vec<&str> = text.lines().take(2).collect();
        fs::write(&c.path, format!("{}\n", kept.join("\n"))).unwrap();
        Head {
            v: 1,
            trail,
            alg: "sha256".into(),
            kid: None,
            seq: 2,
            hash: receipts[1].hash.clone(),
            file: "audit.jsonl".into(),
        }
        .store(&head_path(&c.path), &super::super::chain::Linker::new(None))
        .unwrap();
        // The files agree with each other (plain mode cannot tell)...
        assert_eq!(verify_trail(&c.path, None).unwrap().records, 2);
        // ...but not with the witness.
        vanished(
            AuditHandle::open_with(&c, None, witnessed(&w)).await,
            "the trail ends at seq 2",
        );
    }

    #[tokio::test]
    async fn deleting_the_live_file_and_head_after_a_rotation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.max_file_bytes = 1024;
        let w = Arc::new(MemoryWitness::default());
        write_witnessed(&c, &w, 20).await;
        assert!(files::discover(&c.path).unwrap().len() > 2);
        fs::remove_file(&c.path).unwrap();
        fs::remove_file(head_path(&c.path)).unwrap();
        // Even without a witness: rotated files without their head.
        assert!(matches!(
            verify_trail(&c.path, None),
            Err(AuditError::HeadMissing { .. })
        ));
        assert!(matches!(
            AuditHandle::open_with_key(&c, None).await,
            Err(AuditError::HeadMissing { .. })
        ));
        assert!(matches!(
            AuditHandle::open_with(&c, None, witnessed(&w)).await,
            Err(AuditError::HeadMissing { .. })
        ));
    }

    #[tokio::test]
    async fn another_trail_in_place_of_the_witnessed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let w = Arc::new(MemoryWitness::default());
        write_witnessed(&c, &w, 3).await;
        for f in files::discover(&c.path).unwrap() {
            fs::remove_file(f).unwrap();
        }
        fs::remove_file(head_path(&c.path)).unwrap();
        write(&c, None, 6).await;
        vanished(
            AuditHandle::open_with(&c, None, witnessed(&w)).await,
            "is there instead",
        );
    }

    /// A witness that fails to record.
    struct Broken;
    impl Witness for Broken {
        fn last_seen(&self) -> Result<Option<Mark>, AuditError> {
            Ok(None)
        }
        fn record(&self, _: &Mark) -> Result<(), AuditError> {
            Err(AuditError::Witness("disk full".into()))
        }
    }

    #[tokio::test]
    async fn a_witness_that_cannot_record_stops_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let handle = AuditHandle::open_with(&c, None, Some(Arc::new(Broken)))
            .await
            .unwrap();
        assert!(matches!(
            handle.record(event(1)).await,
            Err(AuditError::WriterFailed(reason)) if reason.contains("disk full")
        ));
        assert!(matches!(
            handle.record(event(2)).await,
            Err(AuditError::WriterFailed(_))
        ));
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
