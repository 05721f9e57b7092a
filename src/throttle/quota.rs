//! Quotas (Graph's documented numbers, per-tenant overrides, time scale) and the pacing math
//! that turns a "N per window" quota into a `governor` quota that can never exceed it.
//!
//! ## The math
//!
//! `governor` implements GCRA: with replenish period `T` and burst `b`, a limiter that starts
//! full lets `b` cells through at once and then one per `T`. In any closed interval of length
//! `W` it therefore admits at most `b + floor(W / T)` cells (the burst at the start, then one
//! per period). Graph's quota is "`N` per `W`" (3,000 per 150 s per app and tenant; 18,000 per
//! 300 s per tenant), and we do not know how the server aligns its window, so we require the
//! bound for *every* interval of length `W`:
//!
//! ```text
//!     b + floor(W / T) <= target        with  target = floor(N * headroom)
//!     =>  T = W / (target - b)
//! ```
//!
//! So the replenish interval is derived from the *window*, not per second, and a burst can
//! never push a window past its quota. The sustained rate is `(target - b) / W`; with the
//! defaults (`headroom` 0.98, `b` 40) the directory write bucket paces at 2,900 / 150 s =
//! 19.33 writes/s = 96.7 % of Graph's 20/s, and the tenant bucket at 17,600 / 300 s = 58.7/s
//! = 97.8 % of 60/s. The headroom's slack (60 cells per window) absorbs the small delay
//! between taking a cell and the request reaching Graph.
//!
//! Why `b` = 40, twice the `$batch` size: a full batch takes 20 cells in one check, and with
//! `b` = 20 that check conforms only at the exact theoretical arrival time, so every wake-up
//! that is late (tokio timers have 1 ms resolution) is lost for good and the loss
//! accumulates (5 % at a 20 ms batch period). A burst of two batches leaves one batch of
//! tolerance: a late wake-up takes cells that accrued meanwhile and nothing is lost.
//! When `target` is tiny (Identity Protection: 1 per 1 s) the burst is 1 and `T = W / headroom`.
//!
//! `time_scale` (emulated tenants) divides every window: the same counts, sooner.

use std::time::Duration;

use crate::config::{QuotaOverrides, TenantSettings, TenantSize};

/// "`count` per `window`".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests (or resource units) allowed per window.
    pub count: u32,
    /// The window.
    pub window: Duration,
}

impl Rate {
    /// A rate of `count` per `secs` seconds divided by `time_scale`.
    pub fn new(count: u32, secs: f64, time_scale: f64) -> Self {
        let scale = if time_scale.is_finite() && time_scale > 0.0 {
            time_scale
        } else {
            1.0
        };
        Rate {
            count: count.max(1),
            window: Duration::from_secs_f64((secs / scale).max(1e-6)),
        }
    }
}

/// The paced form of a [`Rate`]: what the limiter is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Replenish interval: one cell per `period`.
    pub period: Duration,
    /// Cells available at once (bucket capacity).
    pub burst: u32,
    /// Maximum cells in any window: `burst + floor(window / period)` (never above the quota).
    pub max_per_window: u32,
}

/// Computes the pacing of `rate` (see the module docs for the derivation).
pub fn pacing(rate: Rate, headroom: f64, wanted_burst: u32) -> Pacing {
    let headroom = if headroom.is_finite() && headroom > 0.0 {
        headroom.min(1.0)
    } else {
        1.0
    };
    let target = ((f64::from(rate.count) * headroom).floor() as u32).max(1);
    if target <= 1 {
        // One per window: space cells by a little more than the window.
        let period = rate.window.div_f64(headroom);
        return Pacing {
            period,
            burst: 1,
            max_per_window: 1,
        };
    }
    let burst = wanted_burst.clamp(1, (target / 2).max(1));
    let period = rate.window / (target - burst);
    // Round up to a whole nanosecond so rounding can only make pacing slower.
    let period = period + Duration::from_nanos(1);
    let max_per_window = burst + (rate.window.as_nanos() / period.as_nanos()) as u32;
    Pacing {
        period,
        burst,
        max_per_window,
    }
}

/// Every budget of one tenant, already scaled by `time_scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quotas {
    /// Directory writes per app and tenant (Graph: 3,000 / 150 s).
    pub app_write: Rate,
    /// Directory writes per tenant across apps (Graph: 18,000 / 300 s).
    pub tenant_write: Rate,
    /// Directory resource units per app and tenant (Graph: 3,500 / 5,000 / 8,000 per 10 s).
    pub app_read_units: Rate,
    /// Identity Protection requests per tenant across apps (Graph: 1 / s).
    pub identity_protection: Rate,
    /// Outlook (sendMail) requests per app (Graph: 10,000 / 10 min per app and mailbox).
    pub mail: Rate,
    /// Optional extra budget per app for `/users/{id}/authentication/...`.
    pub auth_methods: Option<Rate>,
    /// Upper bound of the adaptive in-flight limit per bucket. It must not be what limits a
    /// run: the pacing is. A bucket needs its paced rate times Graph's latency in flight (a
    /// pool at 60 writes/s with 1-2 s PATCH latency: 60-120), so the default is 128; with the
    /// former 32 a pool reached 47 % of the tenant ceiling at 1 s latency.
    pub max_in_flight: u32,
    /// Concurrency cap for mail (Graph: 4 concurrent per mailbox).
    pub mail_concurrency: u32,
    /// Fraction of each quota aimed at.
    pub headroom: f64,
    /// Burst of the write limiters: two `$batch` sizes, so a full batch fits one check with
    /// one batch of tolerance for late wake-ups (see the module docs).
    pub write_burst: u32,
    /// `x-ms-throttle-limit-percentage` above which the client slows down (Graph sends the
    /// header from 0.8 on).
    pub early_slowdown_at: f64,
    /// Base of the own back-off when a 429 carries no Retry-After (Identity Protection).
    pub no_retry_after_base: Duration,
    /// Cap of that back-off.
    pub no_retry_after_cap: Duration,
}

impl Quotas {
    /// Graph's documented limits for a tenant of `size`, windows divided by `time_scale`.
    pub fn graph_defaults(size: TenantSize, time_scale: f64) -> Self {
        Self::with_overrides(&QuotaOverrides::default(), size, time_scale)
    }

    /// Defaults with a tenant's `quotas:` overrides applied.
    pub fn with_overrides(o: &QuotaOverrides, size: TenantSize, time_scale: f64) -> Self {
        let ru = match size {
            TenantSize::Small => 3_500,
            TenantSize::Medium => 5_000,
            TenantSize::Large => 8_000,
        };
        let scale = if time_scale.is_finite() && time_scale >= 1.0 {
            time_scale
        } else {
            1.0
        };
        Quotas {
            app_write: Rate::new(
                o.writes_per_window.unwrap_or(3_000),
                o.write_window_secs.unwrap_or(150.0),
                scale,
            ),
            tenant_write: Rate::new(
                o.tenant_writes_per_window.unwrap_or(18_000),
                o.tenant_write_window_secs.unwrap_or(300.0),
                scale,
            ),
            app_read_units: Rate::new(
                o.read_units_per_window.unwrap_or(ru),
                o.read_window_secs.unwrap_or(10.0),
                scale,
            ),
            identity_protection: Rate::new(
                o.identity_protection_per_window.unwrap_or(1),
                o.identity_protection_window_secs.unwrap_or(1.0),
                scale,
            ),
            mail: Rate::new(
                o.mail_per_window.unwrap_or(10_000),
                o.mail_window_secs.unwrap_or(600.0),
                scale,
            ),
            auth_methods: o
                .auth_methods_per_window
                .map(|n| Rate::new(n, o.auth_methods_window_secs.unwrap_or(10.0), scale)),
            max_in_flight: o.max_in_flight.unwrap_or(128).max(1),
            mail_concurrency: 4,
            headroom: o.headroom.unwrap_or(0.98),
            write_burst: 40,
            early_slowdown_at: o.early_slowdown_at.unwrap_or(0.8),
            no_retry_after_base: Duration::from_secs_f64(1.0 / scale),
            no_retry_after_cap: Duration::from_secs_f64(60.0 / scale),
        }
    }

    /// The quotas of a configured tenant.
    pub fn for_tenant(settings: &TenantSettings) -> Self {
        Self::with_overrides(&settings.quotas, settings.tenant_size, settings.time_scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_pacing_never_exceeds_window_and_stays_near_quota() {
        let rate = Rate::new(3_000, 150.0, 1.0);
        let p = pacing(rate, 0.98, 40);
        assert_eq!(p.burst, 40);
        assert!(p.max_per_window <= 3_000, "{p:?}");
        let per_sec = f64::from(p.max_per_window - p.burst) / 150.0;
        assert!(per_sec > 0.95 * 20.0, "{per_sec}");
        // Without headroom the bound is exactly the quota.
        let p = pacing(rate, 1.0, 40);
        assert!(p.max_per_window <= 3_000, "{p:?}");
    }

    #[test]
    fn tiny_quotas_and_scale() {
        let p = pacing(Rate::new(1, 1.0, 1.0), 0.98, 20);
        assert_eq!(p.burst, 1);
        assert!(p.period > Duration::from_secs(1));
        let r = Rate::new(3_000, 150.0, 10.0);
        assert_eq!(r.window, Duration::from_secs(15));
        let q = Quotas::graph_defaults(TenantSize::Large, 1.0);
        assert_eq!(q.app_read_units.count, 8_000);
        assert_eq!(q.tenant_write.window, Duration::from_secs(300));
    }
}
