//! Quotas: Graph's documented numbers, per-tenant overrides and the time scale.
//!
//! Each limit is "`count` per `window`" as the throttling page states it
//! (<https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits>):
//! directory writes 3,000 per 150 s per app and tenant and 18,000 per 300 s per tenant,
//! resource units 3,500 / 5,000 / 8,000 per 10 s by tenant size, Identity Protection 1 per
//! second per tenant, Outlook 10,000 per 10 minutes per app and mailbox. The governor reads
//! each as the token bucket Graph meters it with: capacity `count`, refill `count / window`
//! per second (`bucket.rs` has the model and the math). `headroom` (0.98) is the fraction
//! of both aimed at.
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
    /// The window over which a budget Graph does not document (authentication methods,
    /// when `auth_methods` is not configured) is learned from its first 429s: the requests
    /// admitted in the last such window before the 429 are taken as the limit per window.
    pub learn_window: Duration,
    /// Upper bound of the adaptive in-flight limit per bucket. It must not be what limits a
    /// run: the bucket is. A bucket needs its paced rate times Graph's latency in flight (a
    /// pool at 60 writes/s with 1-2 s PATCH latency: 60-120), so the default is 128; with the
    /// former 32 a pool reached 47 % of the tenant ceiling at 1 s latency.
    pub max_in_flight: u32,
    /// Concurrency cap for mail (Graph: 4 concurrent per mailbox).
    pub mail_concurrency: u32,
    /// Fraction of each quota aimed at.
    pub headroom: f64,
    /// `x-ms-throttle-limit-percentage` above which the client slows down (Graph sends the
    /// header from 0.8 on).
    pub early_slowdown_at: f64,
    /// Base of the own back-off when a 429 carries no Retry-After (Identity Protection).
    pub no_retry_after_base: Duration,
    /// Cap of that back-off.
    pub no_retry_after_cap: Duration,
    /// How many times faster than real time the budgets run (1 for a real tenant): a pace
    /// stated in real seconds, such as a playbook's writes per second, is scaled by it too.
    pub time_scale: f64,
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
            learn_window: Duration::from_secs_f64(10.0 / scale),
            max_in_flight: o.max_in_flight.unwrap_or(128).max(1),
            mail_concurrency: 4,
            headroom: o.headroom.unwrap_or(0.98),
            early_slowdown_at: o.early_slowdown_at.unwrap_or(0.8),
            no_retry_after_base: Duration::from_secs_f64(1.0 / scale),
            no_retry_after_cap: Duration::from_secs_f64(60.0 / scale),
            time_scale: scale,
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
    fn quotas_and_scale() {
        let r = Rate::new(3_000, 150.0, 10.0);
        assert_eq!(r.window, Duration::from_secs(15));
        let q = Quotas::graph_defaults(TenantSize::Large, 1.0);
        assert_eq!(q.app_read_units.count, 8_000);
        assert_eq!(q.tenant_write.window, Duration::from_secs(300));
    }
}
