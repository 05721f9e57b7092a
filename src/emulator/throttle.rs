//! Graph's throttling as documented (<https://learn.microsoft.com/graph/throttling-limits>):
//! token buckets per scope.
//!
//! Model: every limit "N per W" is a token bucket of capacity N refilled continuously at
//! N/W per second (W divided by the time scale). A request is admitted when every bucket it
//! touches holds at least its cost; **either way its cost is debited** — Graph counts
//! throttled calls against the quota, so a client that retries before `Retry-After` only
//! digs deeper. The debt is floored at one full window (−N) so that a runaway client
//! recovers within two windows of stopping. `Retry-After` is the time until every violated
//! bucket holds the cost again, given the debit just made, so a single client that waits
//! exactly that long is admitted.
//!
//! Buckets (per emulated tenant, there is only one):
//! - app+tenant resource units: 3,500 / 5,000 / 8,000 per 10 s for S / M / L tenants;
//! - app (all tenants) resource units: 150,000 per 20 s;
//! - app+tenant writes 3,000 per 150 s; app writes 35,000 per 5 min; tenant writes 18,000 per
//!   5 min across all apps;
//! - Identity Protection: 1 request/s per tenant across apps, and **no** Retry-After;
//! - Outlook sendMail: 10,000 per 10 min per app+mailbox;
//! - identity and access reports (`/reports/authenticationMethods/...`): 5 requests per 10 s
//!   per app+tenant;
//! - optionally, `/users/{id}/authentication/*` at N requests per 10 s per app+tenant: the
//!   throttling page lists `authenticationMethod` under the reports limits (5 / 10 s), but
//!   whether method CRUD is metered that tightly is not documented, so it is off unless
//!   configured.
//!
//! A write storm (`storm=SECONDS` in the faults) stands for another app draining the
//! tenant's write bucket: from the first directory write, for SECONDS divided by the time
//! scale, that app has spent the `Tenant/Write` bucket up to the storm's end (its own
//! throttled calls are debited too), so the bucket's level is at most minus the refill still
//! to come. Our writes are answered 429 `Tenant/Write` with the Retry-After the bucket gives
//! (the rest of the storm, plus the cost's refill): the throttling guidance's answer to a
//! client that exceeded a limit it shares (<https://learn.microsoft.com/graph/throttling>).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use super::model::SizeClass;

/// Which limit a bucket implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Resource units per app+tenant.
    AppTenantRu(u32),
    /// Resource units per app, all tenants.
    AppRu(u32),
    /// Writes per app+tenant.
    AppTenantWrite(u32),
    /// Writes per app, all tenants.
    AppWrite(u32),
    /// Writes per tenant, all apps.
    TenantWrite,
    /// Identity Protection, per tenant.
    IdentityProtection,
    /// Outlook per app+mailbox (user index).
    Mailbox(u32, u32),
    /// Authentication-method requests per app+tenant (when configured).
    AuthMethods(u32),
    /// Identity and access reports per app+tenant.
    Reports(u32),
}

impl Scope {
    /// (capacity, window seconds) of this limit.
    fn limit(self, size: SizeClass, auth_methods: u32) -> (f64, f64) {
        match self {
            Scope::AppTenantRu(_) => (
                match size {
                    SizeClass::Small => 3_500.0,
                    SizeClass::Medium => 5_000.0,
                    SizeClass::Large => 8_000.0,
                },
                10.0,
            ),
            Scope::AppRu(_) => (150_000.0, 20.0),
            Scope::AppTenantWrite(_) => (3_000.0, 150.0),
            Scope::AppWrite(_) => (35_000.0, 300.0),
            Scope::TenantWrite => (18_000.0, 300.0),
            Scope::IdentityProtection => (1.0, 1.0),
            Scope::Mailbox(..) => (10_000.0, 600.0),
            Scope::AuthMethods(_) => (auth_methods as f64, 10.0),
            // "Identity and access reports service limits": any request, 5 per 10 seconds
            // per app per tenant (https://learn.microsoft.com/graph/throttling-limits).
            Scope::Reports(_) => (5.0, 10.0),
        }
    }

    /// `x-ms-throttle-scope` prefix and `x-ms-throttle-information`.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Scope::AppTenantRu(_) => ("Tenant_Application/Read", "ResourceUnitLimitExceeded"),
            Scope::AppRu(_) => ("Application/Read", "ResourceUnitLimitExceeded"),
            Scope::AppTenantWrite(_) => ("Tenant_Application/Write", "WriteLimitExceeded"),
            Scope::AppWrite(_) => ("Application/Write", "WriteLimitExceeded"),
            Scope::TenantWrite => ("Tenant/Write", "WriteLimitExceeded"),
            Scope::IdentityProtection => ("Tenant/ReadWrite", "RequestLimitExceeded"),
            Scope::Mailbox(..) => (
                "Tenant_Application/ReadWrite",
                "MailboxConcurrencyLimitExceeded",
            ),
            Scope::AuthMethods(_) | Scope::Reports(_) => {
                ("Tenant_Application/ReadWrite", "RequestLimitExceeded")
            }
        }
    }

    fn name(self) -> String {
        match self {
            Scope::AppTenantRu(a) => format!("app{a}+tenant/resourceUnits"),
            Scope::AppRu(a) => format!("app{a}/resourceUnits"),
            Scope::AppTenantWrite(a) => format!("app{a}+tenant/writes"),
            Scope::AppWrite(a) => format!("app{a}/writes"),
            Scope::TenantWrite => "tenant/writes".to_string(),
            Scope::IdentityProtection => "tenant/identityProtection".to_string(),
            Scope::Mailbox(a, u) => format!("app{a}+mailbox{u}/outlook"),
            Scope::AuthMethods(a) => format!("app{a}+tenant/authenticationMethods"),
            Scope::Reports(a) => format!("app{a}+tenant/reports"),
        }
    }
}

/// How a request is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Directory (identity and access) service: resource units and writes.
    Directory {
        /// Resource units after modifiers.
        ru: u32,
        /// 1 for a write.
        write: bool,
        /// An `/authentication/*` request (metered separately when configured).
        auth_methods: bool,
    },
    /// Identity Protection (riskyUsers).
    IdentityProtection,
    /// Identity and access reports (userRegistrationDetails).
    Reports,
    /// Outlook (sendMail) for a mailbox.
    Mail {
        /// Sender user index.
        mailbox: u32,
    },
    /// Not charged.
    Free,
}

/// The decision for one request.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Resource units charged (directory requests).
    pub resource_units: Option<u32>,
    /// Highest fraction of a limit in use, when above 0.8.
    pub limit_percentage: Option<f64>,
    /// Seconds to wait (None for Identity Protection, which sends none).
    pub retry_after: Option<f64>,
    /// `x-ms-throttle-scope` prefix and information, when throttled.
    pub scope: Option<(&'static str, &'static str)>,
}

#[derive(Debug)]
struct Bucket {
    capacity: f64,
    rate: f64,
    level: f64,
    last: Instant,
    charged: f64,
    throttled: u64,
    admitted: u64,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + dt * self.rate).min(self.capacity);
        self.last = now;
    }
}

/// One bucket's counters, for `/_emulator/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct BucketStats {
    /// Which limit.
    pub bucket: String,
    /// Capacity per window.
    pub capacity: f64,
    /// Window in seconds after the time scale.
    pub window_seconds: f64,
    /// Tokens available now (negative: in debt).
    pub available: f64,
    /// Total charged (resource units or requests), throttled requests included.
    pub used: f64,
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused with 429.
    pub throttled: u64,
}

/// All buckets of the emulated tenant.
#[derive(Debug)]
pub struct Throttle {
    enabled: bool,
    scale: f64,
    size: SizeClass,
    auth_methods: Option<u32>,
    buckets: Mutex<HashMap<Scope, Bucket>>,
    /// The write storm's length in real seconds (0: none) and when it began.
    storm: f64,
    storm_began: Mutex<Option<Instant>>,
}

/// The resource-unit cost of a directory request
/// (<https://learn.microsoft.com/graph/throttling-limits>): base cost by path, then `$select`
/// −1, `$expand` +1, `$top` < 20 −1, minimum 1.
pub fn directory_cost(base: u32, select: bool, expand: bool, top: Option<u32>) -> u32 {
    let mut cost = base as i64;
    if select {
        cost -= 1;
    }
    if expand {
        cost += 1;
    }
    if top.is_some_and(|t| t < 20) {
        cost -= 1;
    }
    cost.max(1) as u32
}

impl Throttle {
    /// Buckets for a tenant of `size`, windows divided by `scale`; `enabled: false` admits all.
    /// `auth_methods`: requests per 10 s per app+tenant for `/authentication/*`, if metered.
    pub fn new(enabled: bool, scale: f64, size: SizeClass, auth_methods: Option<u32>) -> Self {
        Throttle {
            enabled,
            scale,
            size,
            auth_methods: auth_methods.filter(|n| *n > 0),
            buckets: Mutex::new(HashMap::new()),
            storm: 0.0,
            storm_began: Mutex::new(None),
        }
    }

    /// With a write storm of `seconds` (before the time scale) from the first write.
    pub fn with_storm(mut self, seconds: f64) -> Self {
        self.storm = if seconds.is_finite() && seconds > 0.0 {
            seconds / self.scale
        } else {
            0.0
        };
        self
    }

    /// Real seconds of storm left at `now` for a write (starting it on the first write).
    fn storm_left(&self, now: Instant) -> f64 {
        if self.storm <= 0.0 {
            return 0.0;
        }
        let Ok(mut began) = self.storm_began.lock() else {
            return 0.0;
        };
        let start = *began.get_or_insert(now);
        (self.storm - now.saturating_duration_since(start).as_secs_f64()).max(0.0)
    }

    /// Charge one request from app `app` (index) and decide.
    pub fn charge(&self, app: u32, charge: Charge) -> Decision {
        let mut costs: Vec<(Scope, f64)> = Vec::with_capacity(5);
        let mut decision = Decision {
            allowed: true,
            ..Decision::default()
        };
        match charge {
            Charge::Free => return decision,
            Charge::Directory {
                ru,
                write,
                auth_methods,
            } => {
                decision.resource_units = Some(ru);
                if auth_methods && self.auth_methods.is_some() {
                    costs.push((Scope::AuthMethods(app), 1.0));
                }
                costs.push((Scope::AppTenantRu(app), ru as f64));
                costs.push((Scope::AppRu(app), ru as f64));
                if write {
                    costs.push((Scope::AppTenantWrite(app), 1.0));
                    costs.push((Scope::AppWrite(app), 1.0));
                    costs.push((Scope::TenantWrite, 1.0));
                }
            }
            Charge::IdentityProtection => costs.push((Scope::IdentityProtection, 1.0)),
            Charge::Reports => costs.push((Scope::Reports(app), 1.0)),
            Charge::Mail { mailbox } => costs.push((Scope::Mailbox(app, mailbox), 1.0)),
        }
        if !self.enabled {
            return decision;
        }
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return decision;
        };
        let storm_left = match charge {
            Charge::Directory { write: true, .. } => self.storm_left(now),
            _ => 0.0,
        };
        let mut worst_wait: Option<(f64, Scope)> = None;
        let mut used_fraction: f64 = 0.0;
        let mut violated = Vec::new();
        for &(scope, cost) in &costs {
            let (capacity, window) = scope.limit(self.size, self.auth_methods.unwrap_or(1));
            let rate = capacity / (window / self.scale);
            let b = buckets.entry(scope).or_insert_with(|| Bucket {
                capacity,
                rate,
                level: capacity,
                last: now,
                charged: 0.0,
                throttled: 0,
                admitted: 0,
            });
            b.refill(now);
            if scope == Scope::TenantWrite && storm_left > 0.0 {
                // The other app has spent the refill up to the storm's end.
                b.level = b.level.min(-storm_left * b.rate).max(-b.capacity);
            }
            // Tolerance for float drift: a client that waited exactly Retry-After is admitted.
            if b.level + 1e-6 < cost {
                violated.push(scope);
            }
        }
        let allowed = violated.is_empty();
        for &(scope, cost) in &costs {
            let Some(b) = buckets.get_mut(&scope) else {
                continue;
            };
            b.level = (b.level - cost).max(-b.capacity);
            b.charged += cost;
            if allowed {
                b.admitted += 1;
            } else {
                b.throttled += 1;
            }
            // `x-ms-throttle-limit-percentage` belongs to the identity (directory) service.
            if matches!(
                scope,
                Scope::AppTenantRu(_)
                    | Scope::AppRu(_)
                    | Scope::AppTenantWrite(_)
                    | Scope::AppWrite(_)
                    | Scope::TenantWrite
            ) {
                used_fraction = used_fraction.max((b.capacity - b.level) / b.capacity);
            }
            if violated.contains(&scope) {
                let wait = (cost - b.level) / b.rate;
                if worst_wait.is_none_or(|(w, _)| wait > w) {
                    worst_wait = Some((wait, scope));
                }
            }
        }
        decision.allowed = allowed;
        if used_fraction > 0.8 {
            decision.limit_percentage = Some((used_fraction * 100.0).round() / 100.0);
        }
        if let Some((wait, scope)) = worst_wait {
            decision.scope = Some(scope.describe());
            if scope != Scope::IdentityProtection {
                // Round up to the millisecond so a client that waits this long is admitted.
                decision.retry_after = Some(((wait * 1000.0).ceil() + 1.0) / 1000.0);
            }
        }
        decision
    }

    /// Counters of every bucket touched so far.
    pub fn stats(&self) -> Vec<BucketStats> {
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Vec::new();
        };
        let mut out: Vec<BucketStats> = buckets
            .iter_mut()
            .map(|(scope, b)| {
                b.refill(now);
                BucketStats {
                    bucket: scope.name(),
                    capacity: b.capacity,
                    window_seconds: b.capacity / b.rate,
                    available: (b.level * 1000.0).round() / 1000.0,
                    used: b.charged,
                    admitted: b.admitted,
                    throttled: b.throttled,
                }
            })
            .collect();
        out.sort_by(|a, b| a.bucket.cmp(&b.bucket));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_modifiers() {
        assert_eq!(directory_cost(2, false, false, None), 2);
        assert_eq!(directory_cost(2, true, false, Some(999)), 1);
        assert_eq!(directory_cost(2, true, false, Some(5)), 1, "minimum 1");
        assert_eq!(directory_cost(5, false, true, None), 6);
    }

    #[test]
    fn a_storm_throttles_writes_until_it_ends_and_reads_pass() {
        // 2 s of storm at scale 100: 20 ms of real time.
        let t = Throttle::new(true, 100.0, SizeClass::Large, None).with_storm(2.0);
        let w = Charge::Directory {
            ru: 1,
            write: true,
            auth_methods: false,
        };
        let r = Charge::Directory {
            ru: 1,
            write: false,
            auth_methods: false,
        };
        assert!(t.charge(0, r).allowed, "reads do not start the storm");
        let d = t.charge(0, w);
        assert!(!d.allowed);
        assert_eq!(d.scope, Some(("Tenant/Write", "WriteLimitExceeded")));
        let wait = d.retry_after.unwrap();
        assert!(wait > 0.015 && wait < 0.03, "{wait}");
        assert!(t.charge(0, r).allowed, "reads still pass");
        std::thread::sleep(std::time::Duration::from_secs_f64(wait));
        assert!(t.charge(0, w).allowed, "admitted after Retry-After");
        let stats = t.stats();
        let tenant = stats.iter().find(|b| b.bucket == "tenant/writes").unwrap();
        assert_eq!((tenant.throttled, tenant.admitted), (1, 1));
    }

    #[test]
    fn write_quota_and_debt() {
        let t = Throttle::new(true, 1.0, SizeClass::Large, None);
        let w = Charge::Directory {
            ru: 1,
            write: true,
            auth_methods: false,
        };
        for i in 0..3000 {
            assert!(t.charge(0, w).allowed, "write {i}");
        }
        let d = t.charge(0, w);
        assert!(!d.allowed);
        assert_eq!(
            d.scope,
            Some(("Tenant_Application/Write", "WriteLimitExceeded"))
        );
        let first = d.retry_after.unwrap();
        assert!(first > 0.0 && first < 1.0, "{first}");
        // Retrying early only makes it worse.
        let d2 = t.charge(0, w);
        assert!(d2.retry_after.unwrap() > first);
        assert!(d2.limit_percentage.unwrap() >= 1.0);
        // Another app has its own app+tenant quota.
        assert!(t.charge(1, w).allowed);
    }

    #[test]
    fn identity_protection_has_no_retry_after() {
        let t = Throttle::new(true, 1.0, SizeClass::Small, None);
        assert!(t.charge(0, Charge::IdentityProtection).allowed);
        let d = t.charge(1, Charge::IdentityProtection);
        assert!(!d.allowed, "1 request/s per tenant across apps");
        assert_eq!(d.retry_after, None);
    }

    #[test]
    fn waiting_retry_after_is_enough() {
        let t = Throttle::new(true, 50.0, SizeClass::Small, None);
        let w = Charge::Directory {
            ru: 1,
            write: true,
            auth_methods: false,
        };
        let mut throttled = 0;
        for _ in 0..3200 {
            let d = t.charge(0, w);
            if !d.allowed {
                throttled += 1;
                std::thread::sleep(std::time::Duration::from_secs_f64(d.retry_after.unwrap()));
                assert!(
                    t.charge(0, w).allowed,
                    "a retry after Retry-After is admitted"
                );
            }
        }
        assert!(throttled >= 1);
    }

    #[test]
    fn auth_methods_limit_is_optional() {
        let m = Charge::Directory {
            ru: 1,
            write: false,
            auth_methods: true,
        };
        let t = Throttle::new(true, 1.0, SizeClass::Large, Some(5));
        for _ in 0..5 {
            assert!(t.charge(0, m).allowed);
        }
        let d = t.charge(0, m);
        assert!(!d.allowed);
        assert!(d.retry_after.is_some());
        let t = Throttle::new(true, 1.0, SizeClass::Large, None);
        for _ in 0..50 {
            assert!(t.charge(0, m).allowed);
        }
    }

    #[test]
    fn disabled_admits_everything() {
        let t = Throttle::new(false, 1.0, SizeClass::Small, None);
        for _ in 0..10 {
            assert!(t.charge(0, Charge::IdentityProtection).allowed);
        }
    }
}
