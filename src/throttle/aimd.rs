//! Adaptive in-flight limit (AIMD): halve on 429, grow back by about one slot per limit's
//! worth of successes. Until the first decrease the limit grows by one slot per success
//! (TCP's slow start): the in-flight count a bucket needs is its paced rate times Graph's
//! latency (60 writes/s at 1 s is 60 requests in flight), and the additive climb from the
//! initial 8 took thousands of requests, so a run against a slow tenant spent its first
//! minutes far below the quota.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Mutable part of the limiter.
#[derive(Debug)]
struct State {
    /// Current limit (fractional so additive increase can be gradual).
    limit: f64,
    /// Requests holding a slot.
    in_flight: u32,
    /// When the limit was last decreased; decreases within `coalesce` of it are one event
    /// (a burst of 429s from the same moment halves once).
    last_decrease: Option<Instant>,
    /// No decrease yet: grow by one slot per success.
    slow_start: bool,
}

/// A concurrency limiter whose limit adapts to throttling.
#[derive(Debug)]
pub(crate) struct Aimd {
    /// Limit, in-flight count, last decrease.
    state: Mutex<State>,
    /// Wakes waiters when a slot frees or the limit grows.
    notify: Notify,
    /// Upper bound of the limit.
    max: f64,
    /// Decreases closer together than this count once.
    coalesce: Duration,
}

impl Aimd {
    /// A limiter starting at `initial`, never above `max`.
    pub(crate) fn new(initial: u32, max: u32, coalesce: Duration) -> Self {
        let max = f64::from(max.max(1));
        Aimd {
            state: Mutex::new(State {
                limit: f64::from(initial.max(1)).min(max),
                in_flight: 0,
                last_decrease: None,
                slow_start: true,
            }),
            notify: Notify::new(),
            max,
            coalesce,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot; the slot is released with [`Aimd::release`].
    pub(crate) async fn acquire(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if f64::from(st.in_flight) < st.limit.floor().max(1.0) {
                    st.in_flight += 1;
                    return;
                }
            }
            notified.await;
        }
    }

    /// Frees a slot.
    pub(crate) fn release(&self) {
        let mut st = self.lock();
        st.in_flight = st.in_flight.saturating_sub(1);
        drop(st);
        self.notify.notify_waiters();
    }

    /// Increase: +1 per success in slow start, then +1/limit per success (about +1 per
    /// limit's worth of requests).
    pub(crate) fn on_success(&self) {
        let mut st = self.lock();
        let before = st.limit.floor();
        let step = if st.slow_start { 1.0 } else { 1.0 / st.limit };
        st.limit = (st.limit + step).min(self.max);
        let grew = st.limit.floor() > before;
        drop(st);
        if grew {
            self.notify.notify_waiters();
        }
    }

    /// Multiplicative decrease by `factor` (0.5 on a 429), coalesced.
    pub(crate) fn decrease(&self, factor: f64) {
        let now = Instant::now();
        let mut st = self.lock();
        if st
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < self.coalesce)
        {
            return;
        }
        st.limit = (st.limit * factor).max(1.0);
        st.last_decrease = Some(now);
        st.slow_start = false;
    }

    /// The current limit (for tests and metrics).
    pub(crate) fn limit(&self) -> f64 {
        self.lock().limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn halves_and_grows_back_slowly() {
        let a = Aimd::new(16, 32, Duration::from_millis(100));
        a.decrease(0.5);
        a.decrease(0.5); // coalesced
        assert_eq!(a.limit(), 8.0);
        tokio::time::advance(Duration::from_millis(200)).await;
        a.decrease(0.5);
        assert_eq!(a.limit(), 4.0);
        for _ in 0..4 {
            a.on_success();
        }
        assert!(a.limit() >= 4.9 && a.limit() < 5.1, "{}", a.limit());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_until_the_first_decrease() {
        let a = Aimd::new(8, 128, Duration::from_millis(100));
        for _ in 0..40 {
            a.on_success();
        }
        assert_eq!(a.limit(), 48.0);
        for _ in 0..200 {
            a.on_success();
        }
        assert_eq!(a.limit(), 128.0, "capped at max");
        a.decrease(0.5);
        assert_eq!(a.limit(), 64.0);
        for _ in 0..64 {
            a.on_success();
        }
        assert!(a.limit() < 65.1, "additive after a decrease: {}", a.limit());
    }

    #[tokio::test(start_paused = true)]
    async fn blocks_at_limit() {
        let a = std::sync::Arc::new(Aimd::new(1, 4, Duration::ZERO));
        a.acquire().await;
        let b = a.clone();
        let waiter = tokio::spawn(async move { b.acquire().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        a.release();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
