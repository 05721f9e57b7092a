//! [`Forwarder`]: follows the audit trail from a sink's cursor and delivers what the sink has
//! not received, in order, a batch at a time, moving the cursor only past a batch the sink
//! accepted.
//!
//! Only verified records leave: each pass walks the trail with the same checks as `resetctl
//! audit verify` (and the trail's key, when keyed), and stops at a break. The cursor's own
//! record must still be in the trail with the hash it had; if not, the trail was rewritten
//! and nothing more is forwarded until an operator looks. A pass re-reads the trail from its
//! start (seconds for a million records); the lag it reports is what the sink is missing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::cursor::{self, Cursor};
use super::lag::Lag;
use super::sink::{Sink, SinkError};
use crate::audit::{self, Key, Record};

/// Most records collected in one pass (then sent in the sink's batches).
const PASS_LIMIT: usize = 5_000;

/// Why forwarding stopped.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The trail could not be read or failed its checks.
    #[error("audit trail: {0}")]
    Trail(String),
    /// The cursor's record is not in the trail as it was: the trail was rewritten.
    #[error(
        "the trail no longer holds record {seq} as sink {sink} received it: it was rewritten; \
         run `resetctl audit verify` before forwarding more"
    )]
    Rewritten {
        /// The sink.
        sink: String,
        /// The record.
        seq: u64,
    },
    /// The cursor file could not be read or written.
    #[error("cursor of sink {sink}: {detail}")]
    Cursor {
        /// The sink.
        sink: String,
        /// Why.
        detail: String,
    },
    /// The sink did not take a batch.
    #[error("sink {sink}: {source}")]
    Sink {
        /// The sink.
        sink: String,
        /// Why.
        #[source]
        source: SinkError,
    },
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Records the sink accepted in this pass.
    pub sent: usize,
    /// Records of the trail the sink has still not received.
    pub lag: u64,
    /// The trail's last record.
    pub last_seq: u64,
    /// A new trail was started from its first record (its id differs from the cursor's).
    pub new_trail: bool,
}

/// Forwards one trail to one sink.
pub struct Forwarder {
    sink: Arc<dyn Sink>,
    trail: PathBuf,
    key: Option<Key>,
    cursor: PathBuf,
    lag: Arc<Lag>,
}

impl Forwarder {
    /// Forward the trail at `trail` (checked with `key` when keyed) to `sink`, keeping the
    /// cursor in `cursor_dir`.
    pub fn new(sink: Arc<dyn Sink>, trail: &Path, key: Option<Key>, cursor_dir: &Path) -> Self {
        let cursor = cursor::cursor_path(cursor_dir, sink.name());
        Forwarder {
            sink,
            trail: trail.to_path_buf(),
            key,
            cursor,
            lag: Arc::default(),
        }
    }

    /// Report this sink's lag into `lag` (shared with `resetctl serve`'s metrics).
    pub fn with_lag(mut self, lag: Arc<Lag>) -> Self {
        self.lag = lag;
        self
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        self.sink.name()
    }

    fn cursor_error(&self, detail: impl ToString) -> ForwardError {
        ForwardError::Cursor {
            sink: self.sink.name().to_owned(),
            detail: detail.to_string(),
        }
    }

    /// Deliver what the sink is missing, up to one pass's worth.
    pub async fn pass(&self) -> Result<Pass, ForwardError> {
        let from = cursor::load(&self.cursor).map_err(|e| self.cursor_error(e))?;
        let (records, last_seq, trail_id, cursor_seen) = {
            let trail = self.trail.clone();
            let key = self.key.clone();
            let from = from.clone();
            tokio::task::spawn_blocking(move || read_after(&trail, key.as_ref(), from.as_ref()))
                .await
                .map_err(|e| ForwardError::Trail(e.to_string()))??
        };
        let new_trail = match (&from, trail_id) {
            (Some(c), Some(id)) => c.trail != id,
            _ => false,
        };
        if let Some(c) = &from
            && !new_trail
            && trail_id.is_some()
            && !cursor_seen
        {
            return Err(ForwardError::Rewritten {
                sink: self.sink.name().to_owned(),
                seq: c.seq,
            });
        }
        let mut sent = 0;
        let behind = |sent: usize| {
            let done = records[..sent]
                .last()
                .map(|r| r.seq)
                .or(from.as_ref().filter(|_| !new_trail).map(|c| c.seq));
            let oldest = records
                .get(sent)
                .and_then(|r| r.time.parse::<jiff::Timestamp>().ok());
            (last_seq.saturating_sub(done.unwrap_or(0)), oldest)
        };
        let (records_behind, oldest) = behind(0);
        self.lag.observe(records_behind, oldest);
        while sent < records.len() {
            let offered = &records[sent..(sent + self.sink.max_batch().max(1)).min(records.len())];
            let accepted = self
                .sink
                .send(offered)
                .await
                .map_err(|source| {
                    self.lag.failed();
                    ForwardError::Sink {
                        sink: self.sink.name().to_owned(),
                        source,
                    }
                })?
                .clamp(1, offered.len());
            let last = &offered[accepted - 1];
            let cursor = Cursor {
                trail: last.trail,
                seq: last.seq,
                hash: last.hash.clone(),
                at: jiff::Timestamp::now().to_string(),
            };
            cursor::store(&self.cursor, &cursor).map_err(|e| self.cursor_error(e))?;
            sent += accepted;
            self.lag.delivered(accepted as u64);
            let (records_behind, oldest) = behind(sent);
            self.lag.observe(records_behind, oldest);
        }
        let done = records
            .last()
            .map(|r| r.seq)
            .or(from.as_ref().filter(|_| !new_trail).map(|c| c.seq));
        Ok(Pass {
            sent,
            lag: last_seq.saturating_sub(done.unwrap_or(0)),
            last_seq,
            new_trail,
        })
    }

    /// Forward until `stop` resolves: a pass, then another at once while the sink is behind,
    /// else after `tick`; after a failed delivery, wait (the receiver's `Retry-After`, else
    /// doubling from one second to a minute) and try again. A refusal, a rewritten trail or a
    /// broken one ends it with the error.
    pub async fn follow(
        &self,
        tick: Duration,
        stop: impl std::future::Future<Output = ()>,
        mut on_pass: impl FnMut(&Pass),
    ) -> Result<(), ForwardError> {
        tokio::pin!(stop);
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = match self.pass().await {
                Ok(pass) => {
                    on_pass(&pass);
                    backoff = Duration::from_secs(1);
                    if pass.lag > 0 && pass.sent > 0 {
                        Duration::ZERO
                    } else {
                        tick
                    }
                }
                Err(ForwardError::Sink { source, sink }) => match source {
                    SinkError::Unavailable(_) | SinkError::Throttled(_) => {
                        tracing::warn!(sink = %sink, "forwarding paused: {source}");
                        let wait = match source {
                            SinkError::Throttled(Some(s)) => Duration::from_secs(s),
                            _ => backoff,
                        };
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                        wait
                    }
                    other => {
                        return Err(ForwardError::Sink {
                            sink,
                            source: other,
                        });
                    }
                },
                Err(e) => return Err(e),
            };
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The verified records after `from` (at most [`PASS_LIMIT`]), the trail's last seq, its
/// id, and whether the cursor's record was found with its hash.
fn read_after(
    trail: &Path,
    key: Option<&Key>,
    from: Option<&Cursor>,
) -> Result<(Vec<Record>, u64, Option<uuid::Uuid>, bool), ForwardError> {
    let files = audit::discover(trail).map_err(|e| ForwardError::Trail(e.to_string()))?;
    let mut out = Vec::new();
    let mut last_seq = 0;
    let mut trail_id = None;
    let mut seen = false;
    audit::for_each_record(&files, key, |record, _| {
        last_seq = record.seq;
        trail_id.get_or_insert(record.trail);
        let after = match from {
            Some(c) if c.trail == record.trail => {
                if record.seq == c.seq && record.hash == c.hash {
                    seen = true;
                }
                record.seq > c.seq
            }
            _ => true,
        };
        if after && out.len() < PASS_LIMIT {
            out.push(record.clone());
        }
    })
    .map_err(|e| ForwardError::Trail(e.to_string()))?;
    Ok((out, last_seq, trail_id, seen))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::future::BoxFuture;

    use super::*;
    use crate::audit::{AuditConfig, AuditHandle, Event, Outcome};

    /// A sink that is down until told otherwise.
    struct Flaky {
        up: AtomicBool,
    }

    impl Sink for Flaky {
        fn name(&self) -> &str {
            "siem"
        }

        fn send<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<usize, SinkError>> {
            Box::pin(async move {
                if self.up.load(Ordering::SeqCst) {
                    Ok(records.len())
                } else {
                    Err(SinkError::Unavailable("connection refused".into()))
                }
            })
        }

        fn max_batch(&self) -> usize {
            2
        }
    }

    #[tokio::test]
    async fn the_lag_is_reported_through_an_outage_and_clears_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join("audit.jsonl");
        let audit = AuditHandle::open(&AuditConfig::new(&trail)).await.unwrap();
        for i in 0..3 {
            let event = Event::new("t", "x.y", format!("s{i}"), Outcome::Success).unwrap();
            audit.record(event).await.unwrap();
        }
        audit.close().await.unwrap();
        let sink = Arc::new(Flaky {
            up: AtomicBool::new(false),
        });
        let lag = Arc::new(Lag::default());
        let forwarder = Forwarder::new(sink.clone(), &trail, None, &dir.path().join("cursors"))
            .with_lag(lag.clone());
        assert!(forwarder.pass().await.is_err());
        assert_eq!(lag.records(), 3);
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
        assert!(lag.seconds_behind(later) >= 60.0);
        assert_eq!(lag.failures_total(), 1);
        sink.up.store(true, Ordering::SeqCst);
        let pass = forwarder.pass().await.unwrap();
        assert_eq!((pass.sent, pass.lag), (3, 0));
        assert_eq!(lag.records(), 0);
        assert_eq!(lag.seconds_behind(later), 0.0);
        assert_eq!(lag.delivered_total(), 3);
    }
}
