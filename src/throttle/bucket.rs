//! The token-bucket estimate of one Graph limit: how many requests (or resource units) the
//! server's bucket holds for us right now.
//!
//! ## The model
//!
//! Graph meters the identity and access service with token buckets
//! (<https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits>):
//! a limit "`N` per `W`" is a bucket of capacity `C = N` refilled continuously at
//! `r = N / W` per second; a request is admitted when the bucket holds its cost, and the cost
//! is taken. A client that knows the level `L` may therefore send `L` requests at once and
//! then `r` per second, and in any interval `[0, t]` it sends at most
//!
//! ```text
//!     L + r·t        (never more than the server admits, when L is right)
//! ```
//!
//! so `W` writes take at least `T = max(0, W − L) / r` — the *bucket bound* `bench` prints
//! (with `L = C` for a fresh app).
//!
//! ## Estimating the level
//!
//! The server does not say how full the bucket is until it is 80 % used, so the level is
//! estimated from what this runner itself wrote: starting full one window before now (a
//! bucket refills completely in `W = C / r`, so nothing older matters), each recorded write
//! takes one token and the bucket refills in between, capped at `C`. A fresh app therefore
//! starts full; a second run ten seconds after a first that wrote 2,600 times starts at
//! `C − 2,600 + 10·r`.
//!
//! Other apps draining a tenant-wide bucket are invisible to that estimate, so two signals
//! from the server lower it at once ([`TokenBucket::lower_to`]): a 429 (the bucket is
//! empty: level 0) and `x-ms-throttle-limit-percentage` `p` (a fraction `p` of the limit is
//! used: level at most `C·(1 − p)`).
//!
//! The estimate is kept at `headroom` (0.98) of the documented capacity and refill, so the
//! few requests between taking a token and the server counting it, and clock drift between
//! the journal's times and the server's, stay inside the real bucket.

use std::time::Duration;

use tokio::time::Instant;

/// The estimated state of one token bucket. Plain data: the caller holds the lock and
/// passes the time, so the math is testable without a clock.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    /// Tokens the bucket holds when full.
    capacity: f64,
    /// Tokens added per second.
    refill_per_sec: f64,
    /// Level at `at`; below zero when the server's word put it under the headroom's margin
    /// (a limit-percentage of 1.0), never below `-capacity`.
    level: f64,
    /// When `level` was last brought up to date.
    at: Instant,
}

impl TokenBucket {
    /// A full bucket: what a fresh app (no writes in the window) starts with.
    pub fn full(capacity: f64, refill_per_sec: f64, now: Instant) -> Self {
        let capacity = if capacity.is_finite() {
            capacity.max(1.0)
        } else {
            1.0
        };
        let refill_per_sec = if refill_per_sec.is_finite() && refill_per_sec > 0.0 {
            refill_per_sec
        } else {
            1.0
        };
        TokenBucket {
            capacity,
            refill_per_sec,
            level: capacity,
            at: now,
        }
    }

    /// Capacity in tokens.
    pub fn capacity(&self) -> f64 {
        self.capacity
    }

    /// Refill in tokens per second.
    pub fn refill_per_sec(&self) -> f64 {
        self.refill_per_sec
    }

    /// Time for an empty bucket to fill (Graph's window).
    pub fn window(&self) -> Duration {
        Duration::from_secs_f64(self.capacity / self.refill_per_sec)
    }

    /// The level after `writes` (their instants, any order, each costing one token) from a
    /// bucket that was full one window before the first of them that still matters.
    pub fn after_writes(mut self, writes: &[Instant], now: Instant) -> Self {
        let window = self.window();
        let start = now.checked_sub(window).unwrap_or(now);
        let mut times: Vec<Instant> = writes
            .iter()
            .copied()
            .filter(|t| *t >= start && *t <= now)
            .collect();
        times.sort_unstable();
        self.level = self.capacity;
        self.at = start;
        for t in times {
            self.refill(t);
            self.level -= 1.0;
        }
        self.refill(now);
        self
    }

    /// Brings the level up to `now` (no-op for an earlier `now`).
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * self.refill_per_sec).min(self.capacity);
        if now > self.at {
            self.at = now;
        }
    }

    /// The level at `now`.
    pub fn level(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.level
    }

    /// Takes `cost` tokens at `now`, or says how long until the bucket holds them. A cost
    /// above the capacity is taken as the capacity (it could never be granted otherwise).
    pub fn try_take(&mut self, cost: u32, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let cost = f64::from(cost.max(1)).min(self.capacity);
        if self.level >= cost {
            self.level -= cost;
            Ok(())
        } else {
            let missing = cost - self.level;
            Err(Duration::from_secs_f64(missing / self.refill_per_sec)
                .max(Duration::from_micros(50)))
        }
    }

    /// Lowers the level to at most `level` (never raises it): what a 429 (`0`) or a
    /// limit-percentage `p` (`capacity·(1 − p)`) says about a bucket others drain too.
    pub fn lower_to(&mut self, level: f64, now: Instant) {
        self.refill(now);
        if level.is_finite() && level < self.level {
            self.level = level.max(-self.capacity);
        }
    }

    /// The level the server's `x-ms-throttle-limit-percentage` `p` implies.
    pub fn level_at_percentage(&self, p: f64) -> f64 {
        self.capacity * (1.0 - p.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approx(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_bucket_is_full_and_spends_at_once() {
        let now = Instant::now();
        let mut b = TokenBucket::full(3_000.0, 20.0, now);
        assert_eq!(b.level(now), 3_000.0);
        assert_eq!(b.window(), Duration::from_secs(150));
        for _ in 0..3_000 {
            b.try_take(1, now)
                .expect("a full bucket grants its capacity at once");
        }
        let wait = b.try_take(1, now).expect_err("empty");
        assert_eq!(wait, Duration::from_millis(50), "one token at 20/s");
    }

    #[tokio::test(start_paused = true)]
    async fn level_after_writes_in_the_window() {
        let now = Instant::now() + Duration::from_secs(1_000);
        // 2,600 writes ten seconds ago, all at once: 3,000 − 2,600 + 10·20 = 600.
        let ten_ago = now - Duration::from_secs(10);
        let writes = vec![ten_ago; 2_600];
        let mut b = TokenBucket::full(3_000.0, 20.0, now).after_writes(&writes, now);
        assert!(approx(b.level(now), 600.0), "{}", b.level(now));
        // Writes older than one window do not count.
        let old = vec![now - Duration::from_secs(151); 2_600];
        let mut b = TokenBucket::full(3_000.0, 20.0, now).after_writes(&old, now);
        assert_eq!(b.level(now), 3_000.0);
        // Spread writes refill in between: 100 writes/s for 20 s ending now (2,000 writes)
        // against 20/s of refill: 3,000 − 2,000 + 20·20 = 1,400 (the bucket was full before).
        let spread: Vec<Instant> = (0..2_000)
            .map(|i| now - Duration::from_millis(20_000 - 10 * i))
            .collect();
        let mut b = TokenBucket::full(3_000.0, 20.0, now).after_writes(&spread, now);
        assert!((b.level(now) - 1_400.0).abs() < 1.0, "{}", b.level(now));
    }

    #[tokio::test(start_paused = true)]
    async fn refills_at_the_rate_up_to_capacity() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(100.0, 10.0, t0);
        for _ in 0..100 {
            b.try_take(1, t0).unwrap();
        }
        assert_eq!(b.level(t0), 0.0);
        assert!(approx(b.level(t0 + Duration::from_secs(3)), 30.0));
        assert_eq!(b.level(t0 + Duration::from_secs(60)), 100.0, "capped");
        // A cost larger than what is there waits for exactly the missing tokens.
        let t1 = t0 + Duration::from_secs(60);
        b.try_take(95, t1).unwrap();
        let wait = b.try_take(10, t1).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_and_the_limit_percentage_drain_the_estimate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(18_000.0, 60.0, t0);
        // Other apps used 90 % of the tenant bucket: at most 1,800 left.
        b.lower_to(b.level_at_percentage(0.9), t0);
        assert!(approx(b.level(t0), 1_800.0));
        // Lowering never raises.
        b.lower_to(b.level_at_percentage(0.5), t0);
        assert!(approx(b.level(t0), 1_800.0));
        // A 429: empty now, refilling from there.
        b.lower_to(0.0, t0);
        assert_eq!(b.level(t0), 0.0);
        assert!(b.try_take(1, t0).is_err());
        assert!(approx(b.level(t0 + Duration::from_secs(1)), 60.0));
    }
}
