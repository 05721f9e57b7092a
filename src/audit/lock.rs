//! The trail's OS lock, taken for one append batch at a time, so that several resetctl
//! processes (and several writers in one process) can append to one trail in turn.
//!
//! `<trail>.lock` holds an advisory lock (`flock` on Unix), released by the OS when a process
//! ends, so a crash leaves nothing to clean up. Whoever holds it may read the chain head,
//! append and rotate; every write to the trail's files happens under it, and only for one
//! batch (one write, fsync and head update), so a busy run leaves room between its batches
//! for `runs approve` or `plan` in another process. A writer waiting for the lock is woken
//! when it is released (the test below checks that a writer re-taking it at once does not
//! starve the waiter).
//!
//! Locks belong to an open file description, so each writer opens its own file: two writers
//! in one process exclude each other exactly as two processes do.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::error::AuditError;

/// The lock file of one trail, opened once per writer and locked once per batch.
#[derive(Debug)]
pub(crate) struct TrailLock {
    file: File,
    path: PathBuf,
}

/// Proof that the trail lock is held; releases it when dropped.
#[derive(Debug)]
pub(crate) struct Held<'a> {
    lock: &'a TrailLock,
}

impl TrailLock {
    /// Open (creating if needed) the lock file beside `trail`.
    pub(crate) fn open(trail: &Path) -> Result<TrailLock, AuditError> {
        let mut name = trail.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = crate::files::owner_only()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(AuditError::io("open", &path))?;
        Ok(TrailLock { file, path })
    }

    /// Take the trail lock, waiting for other writers' batches. The wait has no limit: the
    /// holder releases it within one batch, or when its process ends.
    pub(crate) fn acquire(&self) -> Result<Held<'_>, AuditError> {
        self.file
            .lock()
            .map_err(AuditError::io("lock", &self.path))?;
        Ok(Held { lock: self })
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Closing the file would release it too; an unlock error leaves it to process exit.
        if let Err(err) = self.lock.file.unlock() {
            tracing::error!(path = %self.lock.path.display(), error = %err, "cannot release the audit trail lock");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::time::Duration;

    #[test]
    fn two_holders_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join("audit.jsonl");
        let inside = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let trail = trail.clone();
                let inside = Arc::clone(&inside);
                std::thread::spawn(move || {
                    // Each thread its own files, as each writer (or process) has.
                    let lock = TrailLock::open(&trail).unwrap();
                    for _ in 0..50 {
                        let _held = lock.acquire().unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn a_waiter_gets_its_turn_while_another_writer_keeps_relocking() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join("audit.jsonl");
        let stop = Arc::new(AtomicBool::new(false));
        let busy = {
            let trail = trail.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let lock = TrailLock::open(&trail).unwrap();
                let mut turns = 0u64;
                // Re-takes the lock at once after each release, like a writer under load.
                while !stop.load(Ordering::SeqCst) {
                    let _held = lock.acquire().unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                    turns += 1;
                }
                turns
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        let (done_tx, done) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let lock = TrailLock::open(&trail).unwrap();
            let start = std::time::Instant::now();
            for _ in 0..20 {
                drop(lock.acquire().unwrap());
            }
            let _ = done_tx.send(start.elapsed());
        });
        let waited = done.recv_timeout(Duration::from_secs(10));
        stop.store(true, Ordering::SeqCst);
        assert!(busy.join().unwrap() > 0);
        waiter.join().unwrap();
        let waited = waited.expect("the waiter never got its turns");
        // Twenty turns, each behind at most one 2 ms batch of the busy writer.
        assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    }
}
