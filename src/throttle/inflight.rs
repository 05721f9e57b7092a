//! The in-flight limit of one bucket: how many requests may be outstanding at once, set by
//! what the bucket can grant and how long Graph takes to answer.
//!
//! ## What the latency needs (Little's law)
//!
//! In a steady state, requests in flight = rate × time each is held (`N = X·T`). A slot is
//! held while its request waits for its token and while Graph answers it, so a budget that
//! grants `r` requests a second (its refill, in requests: tokens over the mean cost) at a
//! mean latency `L` keeps its bucket busy with `1 + r·L` slots: one waiting for the next
//! token, `r·L` on the wire. A bucket that still holds `R` requests' worth can use `R` more
//! at once. The limit the latency needs is therefore
//!
//! ```text
//!     need = ⌈R⌉ + ⌈r·L·(1 + m)⌉ + 1        m = 0.5: room for latency spread
//! ```
//!
//! - a fresh app (3,000 writes in the bucket) may use the ceiling: spend the bucket now;
//! - paced at 20 writes/s, 100 ms per write: 5 slots; at 1 s: 32; a pool of three apps
//!   (60 writes/s) at 2 s: 182, so the ceiling (not 32 pipelines) bounds a slow tenant;
//! - a fixed limit is either too small for a slow tenant or leaves a hundred requests to be
//!   refused together when another app drains the tenant's bucket unseen.
//!
//! `L` is the mean latency of answered requests, from the moment a request was let through
//! to its answer, exponentially weighted: quick to rise (α = 0.5), slow to fall (α = 0.1), so
//! a tenant that turns slow gets its slots within a few answers and a few fast answers do
//! not take them away. Before the first answer it is unknown and only the ceiling and the
//! AIMD cap below bound the limit.
//!
//! ## What the server says (AIMD)
//!
//! Over `need`, a cap reacts to throttling: halved on a 429 (429s of one moment, within
//! `coalesce`, halve it once), cut by a tenth when the limit percentage rises, and grown
//! back by about one slot per cap's worth of successes. Until its first decrease it grows by
//! one slot per success (TCP's slow start: doubles every round trip from the initial 8), so a
//! run reaches the concurrency it needs in a few round trips, not thousands of requests.
//!
//! The limit in force is `min(need, cap, ceiling)`, at least 1.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Room for latency spread in the Little's-law limit (`m`).
const LATENCY_MARGIN: f64 = 0.5;
/// Weight of a newest latency sample above the mean: a tenant that turns slow needs more
/// slots within a few answers, or its rate sags while the mean catches up.
const LATENCY_WEIGHT_UP: f64 = 0.5;
/// Weight of a newest latency sample below the mean: a few fast answers do not take away the
/// slots a slow tenant needs.
const LATENCY_WEIGHT_DOWN: f64 = 0.1;
/// Weight of the newest cost in the mean cost of a request.
const COST_WEIGHT: f64 = 0.1;

/// What a bucket's budgets can grant, in tokens (cells): read at each admission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Supply {
    /// Tokens the budgets hold now (the least of the budgets a request draws on).
    pub ready: f64,
    /// Tokens they refill per second.
    pub per_sec: f64,
}

impl Supply {
    /// A supply that never binds (buckets whose ceiling is the documented limit).
    pub(crate) const UNBOUNDED: Supply = Supply {
        ready: f64::INFINITY,
        per_sec: f64::INFINITY,
    };
}

/// `⌈x⌉`, forgiving the rounding error of a product that is a whole number on paper.
fn ceil(x: f64) -> f64 {
    (x - 1e-9).ceil()
}

/// Mutable part of the limiter.
#[derive(Debug)]
struct State {
    /// The AIMD cap (fractional so additive increase can be gradual).
    cap: f64,
    /// Requests holding a slot.
    in_flight: u32,
    /// When the cap was last decreased; decreases within `coalesce` of it are one event.
    last_decrease: Option<Instant>,
    /// No decrease yet: grow by one slot per success.
    slow_start: bool,
    /// Mean latency of answered requests, seconds; `None` before the first.
    latency: Option<f64>,
    /// Mean cost of a request in tokens (a `$batch` of 20 writes costs 20).
    cost: f64,
}

impl State {
    /// `need` from the module comment, in requests; infinite before the first answer.
    fn need(&self, supply: Supply) -> f64 {
        let Some(latency) = self.latency else {
            return f64::INFINITY;
        };
        let cost = self.cost.max(1.0);
        let ready = ceil(supply.ready.max(0.0) / cost);
        let on_the_wire = ceil(supply.per_sec / cost * latency * (1.0 + LATENCY_MARGIN));
        ready + on_the_wire + 1.0
    }

    /// The limit in force.
    fn limit(&self, supply: Supply, ceiling: f64) -> f64 {
        self.need(supply)
            .min(self.cap)
            .min(ceiling)
            .floor()
            .max(1.0)
    }
}

/// A concurrency limiter whose limit follows the budget, the latency and the throttling.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// Cap, in-flight count, latency and cost means.
    state: Mutex<State>,
    /// Wakes waiters when a slot frees or the cap grows.
    notify: Notify,
    /// The ceiling: no limit above it, whatever the budget allows.
    ceiling: f64,
    /// Decreases closer together than this count once.
    coalesce: Duration,
}

impl InFlight {
    /// A limiter whose cap starts at `initial`, never above `ceiling`.
    pub(crate) fn new(initial: u32, ceiling: u32, coalesce: Duration) -> Self {
        let ceiling = f64::from(ceiling.max(1));
        InFlight {
            state: Mutex::new(State {
                cap: f64::from(initial.max(1)).min(ceiling),
                in_flight: 0,
                last_decrease: None,
                slow_start: true,
                latency: None,
                cost: 1.0,
            }),
            notify: Notify::new(),
            ceiling,
            coalesce,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot for a request of `cost` tokens; `supply` is read at each try. The
    /// slot is released with [`InFlight::release`].
    pub(crate) async fn acquire(&self, cost: u32, supply: impl Fn() -> Supply) {
        {
            let mut st = self.lock();
            st.cost += COST_WEIGHT * (f64::from(cost.max(1)) - st.cost);
        }
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let supply = supply();
            {
                let mut st = self.lock();
                if f64::from(st.in_flight) < st.limit(supply, self.ceiling) {
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

    /// An answer came back `latency` after its request was let through: fold it into the
    /// mean.
    pub(crate) fn observe(&self, latency: Duration) {
        let sample = latency.as_secs_f64();
        let mut st = self.lock();
        st.latency = Some(match st.latency {
            None => sample,
            Some(mean) if sample > mean => mean + LATENCY_WEIGHT_UP * (sample - mean),
            Some(mean) => mean + LATENCY_WEIGHT_DOWN * (sample - mean),
        });
    }

    /// Additive increase: +1 per success in slow start, then +1/cap per success (about +1
    /// per cap's worth of requests).
    pub(crate) fn grow(&self) {
        let mut st = self.lock();
        let before = st.cap.floor();
        let step = if st.slow_start { 1.0 } else { 1.0 / st.cap };
        st.cap = (st.cap + step).min(self.ceiling);
        let grew = st.cap.floor() > before;
        drop(st);
        if grew {
            self.notify.notify_waiters();
        }
    }

    /// Multiplicative decrease of the cap by `factor` (0.5 on a 429), coalesced.
    pub(crate) fn decrease(&self, factor: f64) {
        let now = Instant::now();
        let mut st = self.lock();
        if st
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < self.coalesce)
        {
            return;
        }
        st.cap = (st.cap * factor).max(1.0);
        st.last_decrease = Some(now);
        st.slow_start = false;
    }

    /// The AIMD cap alone.
    #[cfg(test)]
    pub(crate) fn cap(&self) -> f64 {
        self.lock().cap
    }

    /// The limit in force for `supply`.
    pub(crate) fn limit(&self, supply: Supply) -> f64 {
        self.lock().limit(supply, self.ceiling)
    }

    /// The mean latency of answered requests, if any was answered.
    pub(crate) fn latency(&self) -> Option<Duration> {
        self.lock().latency.map(Duration::from_secs_f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACED: Supply = Supply {
        ready: 0.0,
        per_sec: 20.0,
    };

    #[tokio::test(start_paused = true)]
    async fn halves_and_grows_back_slowly() {
        let a = InFlight::new(16, 32, Duration::from_millis(100));
        a.decrease(0.5);
        a.decrease(0.5); // coalesced
        assert_eq!(a.cap(), 8.0);
        tokio::time::advance(Duration::from_millis(200)).await;
        a.decrease(0.5);
        assert_eq!(a.cap(), 4.0);
        for _ in 0..4 {
            a.grow();
        }
        assert!(a.cap() >= 4.9 && a.cap() < 5.1, "{}", a.cap());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_until_the_first_decrease() {
        let a = InFlight::new(8, 128, Duration::from_millis(100));
        for _ in 0..40 {
            a.grow();
        }
        assert_eq!(a.cap(), 48.0);
        for _ in 0..200 {
            a.grow();
        }
        assert_eq!(a.cap(), 128.0, "capped at the ceiling");
        a.decrease(0.5);
        assert_eq!(a.cap(), 64.0);
        for _ in 0..64 {
            a.grow();
        }
        assert!(a.cap() < 65.1, "additive after a decrease: {}", a.cap());
    }

    #[test]
    fn the_limit_is_what_the_latency_needs_once_the_bucket_is_spent() {
        let a = InFlight::new(512, 512, Duration::ZERO);
        // Unknown latency: only the cap and the ceiling bound it.
        assert_eq!(a.limit(PACED), 512.0);
        // Paced at 20/s: 1 + ⌈20 · L · 1.5⌉.
        a.observe(Duration::from_millis(100));
        assert_eq!(a.limit(PACED), 4.0);
        let slow = InFlight::new(512, 512, Duration::ZERO);
        slow.observe(Duration::from_secs(1));
        assert_eq!(slow.limit(PACED), 31.0);
        // A pool of three apps at 2 s: 1 + 60 · 2 · 1.5 = 181.
        let pool = Supply {
            ready: 0.0,
            per_sec: 60.0,
        };
        let slower = InFlight::new(512, 512, Duration::ZERO);
        slower.observe(Duration::from_secs(2));
        assert_eq!(slower.limit(pool), 181.0);
        // A full bucket may be spent at once, up to the ceiling.
        let fresh = Supply {
            ready: 3_000.0,
            per_sec: 20.0,
        };
        assert_eq!(a.limit(fresh), 512.0);
        // Half a bucket of 40 requests' worth: 40 + 4.
        let some = Supply {
            ready: 40.0,
            per_sec: 20.0,
        };
        assert_eq!(a.limit(some), 44.0);
    }

    #[tokio::test]
    async fn the_mean_follows_latency_and_cost_counts_in_requests() {
        let a = InFlight::new(512, 512, Duration::ZERO);
        a.observe(Duration::from_millis(100));
        for _ in 0..100 {
            a.observe(Duration::from_secs(1));
        }
        let mean = a.latency().unwrap().as_secs_f64();
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
        // Quick to rise, slow to fall.
        let b = InFlight::new(512, 512, Duration::ZERO);
        b.observe(Duration::from_millis(100));
        b.observe(Duration::from_millis(1_100));
        assert_eq!(b.latency(), Some(Duration::from_millis(600)));
        b.observe(Duration::from_millis(100));
        assert_eq!(b.latency(), Some(Duration::from_millis(550)));
        // `$batch` envelopes of 20 writes: 20 writes/s is one request a second.
        for _ in 0..100 {
            a.acquire(20, || Supply::UNBOUNDED).await;
            a.release();
        }
        let limit = a.limit(PACED);
        assert_eq!(limit, 3.0, "1 + ⌈1 · 1 · 1.5⌉");
    }

    #[tokio::test(start_paused = true)]
    async fn blocks_at_limit() {
        let a = std::sync::Arc::new(InFlight::new(1, 4, Duration::ZERO));
        a.acquire(1, || Supply::UNBOUNDED).await;
        let b = a.clone();
        let waiter = tokio::spawn(async move { b.acquire(1, || Supply::UNBOUNDED).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        a.release();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
