//! How much of the tenant one run uses at once: how many users' pipelines run, and how
//! many writes a second the playbook allows.
//!
//! ## Pipelines
//!
//! A pipeline sends one request at a time, so the pipelines running bound the requests in
//! flight. The directory's throttle knows how many writes the tenant can usefully take at
//! once (its in-flight limit: what the write bucket holds, and Graph's latency — see
//! `throttle/inflight.rs`). Fewer pipelines than that leave the bucket idle at Graph's
//! latency: 32 pipelines at one second a write is 32 writes a second, and a fresh app's
//! 3,000-write bucket then takes a minute and a half to spend. More only queue users inside
//! the throttle, and a stop (Ctrl-C) lets every started user finish, so a long queue makes a
//! stop slow. So a run keeps
//!
//! ```text
//!     min(ceiling, limit + ⌈limit / 4⌉ + 2)
//! ```
//!
//! pipelines going — the limit, and a few more for pipelines between two writes
//! (journaling, reading, notifying) — re-read whenever a pipeline moves. The ceiling is the
//! operator's `--concurrency` and the playbook's `rate_limit.max_in_flight`; a directory
//! without a throttle (a test fake) runs the ceiling.
//!
//! ## Writes per second
//!
//! `rate_limit.max_writes_per_second` paces this run's directory writes with a token bucket
//! of one second's worth (`⌈r⌉` writes at once, then `r` a second), on top of the tenant's
//! budgets, which the throttle keeps whatever the playbook says. On an emulated tenant
//! whose clock runs faster (a tabletop), it is the same pace in that tenant's seconds.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FusedStream, FuturesUnordered, Stream, StreamExt};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::playbook::model::RateLimit;
use crate::throttle::TokenBucket;

/// Pipelines to keep going for a directory write limit `limit` (`None`: no throttle) under
/// `ceiling`; at least one.
pub(crate) fn pipelines(ceiling: usize, limit: Option<usize>) -> usize {
    let ceiling = ceiling.max(1);
    match limit {
        Some(limit) => ceiling.min(limit + limit.div_ceil(4) + 2),
        None => ceiling,
    }
}

/// The ceiling of a run's pipelines: the operator's and the playbook's, the lower.
pub(crate) fn ceiling(operator: usize, rate_limit: &RateLimit) -> usize {
    let playbook = rate_limit.max_in_flight.map_or(usize::MAX, |n| n as usize);
    operator.min(playbook).max(1)
}

/// Runs the futures `source` yields, at most `limit()` at once (re-read every time the
/// stream is polled), yielding their outputs in the order they finish: `buffer_unordered`
/// whose bound moves.
pub(crate) fn buffer_adaptive<St, L>(
    source: St,
    limit: L,
) -> impl Stream<Item = <St::Item as Future>::Output>
where
    St: Stream,
    St::Item: Future,
    L: FnMut() -> usize + Unpin,
{
    Adaptive {
        source: Box::pin(source.fuse()),
        running: FuturesUnordered::new(),
        limit,
    }
}

/// The stream behind [`buffer_adaptive`].
struct Adaptive<St: Stream, L>
where
    St::Item: Future,
{
    /// What is left to start.
    source: Pin<Box<futures::stream::Fuse<St>>>,
    /// What runs now.
    running: FuturesUnordered<St::Item>,
    /// How many may run at once.
    limit: L,
}

impl<St, L> Stream for Adaptive<St, L>
where
    St: Stream,
    St::Item: Future,
    L: FnMut() -> usize + Unpin,
{
    type Item = <St::Item as Future>::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // The source is boxed and the set is `Unpin`: nothing here needs pinning.
        let this = self.get_mut();
        while this.running.len() < (this.limit)().max(1) && !this.source.is_terminated() {
            match this.source.as_mut().poll_next(cx) {
                Poll::Ready(Some(next)) => this.running.push(next),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        match this.running.poll_next_unpin(cx) {
            Poll::Ready(Some(output)) => Poll::Ready(Some(output)),
            Poll::Ready(None) if this.source.is_terminated() => Poll::Ready(None),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

/// The playbook's `rate_limit.max_writes_per_second` for one run.
#[derive(Debug)]
pub(crate) struct WritePace {
    /// One second's worth of writes, refilled at the playbook's rate.
    bucket: Mutex<TokenBucket>,
}

impl WritePace {
    /// The pace a playbook asks for, if any, on a tenant whose clock runs `time_scale`
    /// times faster than real time (a tabletop's emulated tenant).
    pub(crate) fn of(rate_limit: &RateLimit, time_scale: f64) -> Option<WritePace> {
        let scale = if time_scale.is_finite() && time_scale >= 1.0 {
            time_scale
        } else {
            1.0
        };
        let rate = rate_limit
            .max_writes_per_second
            .filter(|r| r.is_finite() && *r > 0.0)?
            * scale;
        Some(WritePace {
            bucket: Mutex::new(TokenBucket::full(rate.ceil(), rate, Instant::now())),
        })
    }

    /// Waits until this run may send one more write. FIFO: callers queue on the lock.
    pub(crate) async fn write(&self) {
        let mut bucket = self.bucket.lock().await;
        while let Err(wait) = bucket.try_take(1, Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn pipelines_follow_the_write_limit_under_the_ceiling() {
        assert_eq!(pipelines(256, None), 256, "no throttle: the ceiling");
        assert_eq!(pipelines(256, Some(4)), 4 + 1 + 2);
        assert_eq!(pipelines(256, Some(128)), 128 + 32 + 2);
        assert_eq!(pipelines(64, Some(128)), 64);
        assert_eq!(pipelines(0, Some(0)), 1);
        let limits = RateLimit {
            max_in_flight: Some(8),
            ..RateLimit::default()
        };
        assert_eq!(ceiling(256, &limits), 8);
        assert_eq!(ceiling(4, &limits), 4);
        assert_eq!(ceiling(256, &RateLimit::default()), 256);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bound_moves_while_the_stream_runs() {
        let limit = Arc::new(AtomicUsize::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..40).map(|i| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                i
            }
        });
        let bound = limit.clone();
        let mut stream = std::pin::pin!(buffer_adaptive(futures::stream::iter(jobs), move || {
            bound.load(Ordering::SeqCst)
        }));
        let mut done = Vec::new();
        while let Some(i) = stream.next().await {
            done.push(i);
            if done.len() == 10 {
                assert_eq!(most.load(Ordering::SeqCst), 2);
                limit.store(8, Ordering::SeqCst);
            }
        }
        assert_eq!(most.load(Ordering::SeqCst), 8);
        done.sort_unstable();
        assert_eq!(done, (0..40).collect::<Vec<_>>(), "every job ran once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_playbook_pace_holds_writes_to_its_rate() {
        let limits = RateLimit {
            max_writes_per_second: Some(2.5),
            ..RateLimit::default()
        };
        assert!(WritePace::of(&RateLimit::default(), 1.0).is_none());
        let pace = WritePace::of(&limits, 1.0).unwrap();
        let start = Instant::now();
        for _ in 0..13 {
            pace.write().await;
        }
        // Three at once (⌈2.5⌉), then ten at 2.5 a second: 4 s.
        let took = Instant::now().duration_since(start);
        assert!(
            took >= Duration::from_secs(4) && took < Duration::from_millis(4_010),
            "{took:?}"
        );
        // On a tenant at time scale 10, the same pace in its own seconds: 25 a second.
        let fast = WritePace::of(&limits, 10.0).unwrap();
        let start = Instant::now();
        for _ in 0..125 {
            fast.write().await;
        }
        let took = Instant::now().duration_since(start);
        assert!(took >= Duration::from_secs(4) && took < Duration::from_millis(4_010));
    }
}
