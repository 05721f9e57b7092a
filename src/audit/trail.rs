//! One writer's hold on the trail's files: every append batch takes the trail lock, finds
//! where the trail ends (other writers may have appended since), appends, fsyncs, rewrites
//! the head, tells the witness, and lets go.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::chain::{Key, Linker};
use super::config::AuditConfig;
use super::error::AuditError;
use super::files;
use super::head::{Head, head_path};
use super::lock::{Held, TrailLock};
use super::record::{Event, write_record};
use super::tail::{self, FileMark, Position, file_id};
use super::witness::{self, Witness};
use super::writer::Receipt;

/// Where a batch starts: the trail id and the last record before it.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    pub trail: uuid::Uuid,
    pub seq: u64,
    pub hash: String,
    /// The live file as the trail's end left it (`None` for a new trail).
    pub file: Option<FileMark>,
}

impl Start {
    /// A new trail: a fresh id, nothing before the first record but the genesis value.
    pub(crate) fn new_trail(linker: &Linker) -> Start {
        let trail = uuid::Uuid::new_v4();
        Start {
            trail,
            seq: 0,
            hash: linker.genesis(&trail),
            file: None,
        }
    }

    fn at(position: &Position) -> Start {
        Start {
            trail: position.trail,
            seq: position.seq,
            hash: position.hash.clone(),
            file: Some(position.file.clone()),
        }
    }
}

/// The files of one trail as one writer holds them (see the module doc).
pub(crate) struct Trail {
    path: PathBuf,
    head_path: PathBuf,
    max_file_bytes: u64,
    linker: Linker,
    lock: Arc<TrailLock>,
    witness: Option<Arc<dyn Witness>>,
    /// Where the trail ended after this writer's last look (`None`: no record yet).
    position: Option<Position>,
}

impl Trail {
    /// Open the trail: check what is there (refusing a broken or vanished trail) without
    /// writing a record. Blocking.
    pub(crate) fn open(
        config: &AuditConfig,
        key: Option<Key>,
        witness: Option<Arc<dyn Witness>>,
    ) -> Result<Trail, AuditError> {
        config.validate()?;
        let mut trail = Trail::unchecked(config, key, witness)?;
        let lock = Arc::clone(&trail.lock);
        let _held = lock.acquire()?;
        trail.position = trail.derive_checked()?;
        Ok(trail)
    }

    /// The trail's handles without looking at its files (for explicit recoveries, which look
    /// themselves, under the lock).
    pub(crate) fn unchecked(
        config: &AuditConfig,
        key: Option<Key>,
        witness: Option<Arc<dyn Witness>>,
    ) -> Result<Trail, AuditError> {
        let path = config.path.clone();
        Ok(Trail {
            head_path: head_path(&path),
            lock: Arc::new(TrailLock::open(&path)?),
            path,
            max_file_bytes: config.max_file_bytes,
            linker: Linker::new(key),
            witness,
            position: None,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn linker(&self) -> &Linker {
        &self.linker
    }

    /// The trail lock, for a recovery that must hold it across several steps.
    pub(crate) fn lock(&self) -> Arc<TrailLock> {
        Arc::clone(&self.lock)
    }

    /// Append `events` as one batch: lock, find the end, write, fsync, head, witness, unlock.
    /// `Err` when the batch failed as a whole (nothing of it may be acknowledged); otherwise
    /// one result per event (an event that cannot be serialized fails alone, using no seq).
    pub(crate) fn append(
        &mut self,
        events: &[&Event],
    ) -> Result<Vec<Result<Receipt, AuditError>>, AuditError> {
        let lock = Arc::clone(&self.lock);
        let held = lock.acquire()?;
        let start = match &self.position {
            Some(position) => Start::at(&tail::advance(&self.linker, &self.path, position)?),
            None => match self.derive_checked()? {
                Some(position) => Start::at(&position),
                None => Start::new_trail(&self.linker),
            },
        };
        self.write_locked(&held, start, events)
    }

    /// Find the end of the trail from scratch and compare it with the witness; bring a
    /// lagging head up to date and tell the witness of a trail it has not seen this far.
    fn derive_checked(&self) -> Result<Option<Position>, AuditError> {
        let mark = self.last_seen()?;
        let derived = tail::derive(&self.linker, &self.path, mark.as_ref().map(|m| m.seq))?;
        if let Some(mark) = &mark {
            let last = derived
                .position
                .as_ref()
                .map(|p| (p.trail, p.seq, p.hash.as_str()));
            witness::check(
                &self.path,
                mark,
                witness::Found {
                    last,
                    at_mark: derived.probed.as_deref(),
                },
            )?;
        }
        if let Some(position) = &derived.position {
            if derived.head_behind {
                // A crash between the fsync of a batch and its head write left the head behind.
                self.store_head(position.trail, position.seq, &position.hash)?;
            }
            if let Some(witness) = &self.witness
                && mark.as_ref() != Some(&position.mark())
            {
                witness.record(&position.mark())?;
            }
        }
        Ok(derived.position)
    }

    /// What the witness last saw (`None` without a witness).
    pub(crate) fn last_seen(&self) -> Result<Option<witness::Mark>, AuditError> {
        match &self.witness {
            Some(witness) => witness.last_seen(),
            None => Ok(None),
        }
    }

    /// Write `events` after `start`, rotating where needed, then fsync, store the head and
    /// tell the witness. The caller holds the trail lock (`_held`) and has established `start`.
    pub(crate) fn write_locked(
        &mut self,
        _held: &Held<'_>,
        start: Start,
        events: &[&Event],
    ) -> Result<Vec<Result<Receipt, AuditError>>, AuditError> {
        // Until it is all durable, this writer no longer knows where the trail ends.
        self.position = None;
        let (mut file, created) = open_live(&self.path)?;
        let meta = file
            .metadata()
            .map_err(AuditError::io("read metadata of", &self.path))?;
        let mut size = meta.len();
        let mut lines = match &start.file {
            Some(mark) if mark.id.is_some() && mark.id == file_id(&meta) => mark.lines,
            _ => 0,
        };
        if created {
            files::sync_dir(&self.path)?;
        }
        let mut seq = start.seq;
        let mut last_hash = start.hash;
        let mut results = Vec::with_capacity(events.len());
        let mut buf: Vec<u8> = Vec::with_capacity(events.len() * 512);
        let now = jiff::Timestamp::now();
        for event in events {
            let written =
                match write_record(&self.linker, &start.trail, seq + 1, &now, event, &last_hash) {
                    Ok(written) => written,
                    Err(err) => {
                        results.push(Err(err));
                        continue;
                    }
                };
            let len = written.line.len() as u64 + 1;
            let pending = size + buf.len() as u64;
            if pending > 0 && pending + len > self.max_file_bytes {
                flush(&self.path, &mut file, &mut buf, &mut size)?;
                file = self.rotate()?;
                size = 0;
                lines = 0;
            }
            buf.extend_from_slice(written.line.as_bytes());
            buf.push(b'\n');
            lines += 1;
            seq += 1;
            last_hash = written.hash.clone();
            results.push(Ok(Receipt {
                seq,
                hash: written.hash,
            }));
        }
        if seq == start.seq {
            // Nothing serialized: nothing written, the trail is where it was.
            self.position = start.file.map(|file| Position {
                trail: start.trail,
                seq,
                hash: last_hash,
                file,
            });
            return Ok(results);
        }
        flush(&self.path, &mut file, &mut buf, &mut size)?;
        self.store_head(start.trail, seq, &last_hash)?;
        let meta = file
            .metadata()
            .map_err(AuditError::io("read metadata of", &self.path))?;
        let position = Position {
            trail: start.trail,
            seq,
            hash: last_hash,
            file: FileMark {
                id: file_id(&meta),
                len: size,
                lines,
            },
        };
        if let Some(witness) = &self.witness {
            witness.record(&position.mark())?;
        }
        self.position = Some(position);
        Ok(results)
    }

    /// Rename the live file to the next rotation number and start a new live file. The
    /// number is found now, under the lock: another writer may have rotated before.
    fn rotate(&self) -> Result<File, AuditError> {
        let rotated = files::rotated_path(&self.path, files::last_rotation(&self.path)? + 1);
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
        Ok(file)
    }

    /// Seal and store the chain head at `(seq, hash)` of `trail`.
    pub(crate) fn store_head(
        &self,
        trail: uuid::Uuid,
        seq: u64,
        hash: &str,
    ) -> Result<(), AuditError> {
        let file = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Head {
            v: 1,
            trail,
            alg: self.linker.alg().as_str().to_owned(),
            kid: self.linker.key_id(),
            seq,
            hash: hash.to_owned(),
            file,
        }
        .store(&self.head_path, &self.linker)
    }
}

/// Open the live file for appending, creating it if needed (`true` when created).
fn open_live(path: &Path) -> Result<(File, bool), AuditError> {
    match OpenOptions::new().append(true).open(path) {
        Ok(file) => Ok((file, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => crate::files::owner_only()
            .create(true)
            .append(true)
            .open(path)
            .map(|file| (file, true))
            .map_err(AuditError::io("create", path)),
        Err(e) => Err(AuditError::io("open", path)(e)),
    }
}

/// Write `buf` to `file` and fsync it.
fn flush(
    path: &Path,
    file: &mut File,
    buf: &mut Vec<u8>,
    size: &mut u64,
) -> Result<(), AuditError> {
    if buf.is_empty() {
        return Ok(());
    }
    file.write_all(buf).map_err(AuditError::io("write", path))?;
    file.sync_data().map_err(AuditError::io("fsync", path))?;
    *size += buf.len() as u64;
    buf.clear();
    Ok(())
}
