//! Per-client rate limits: a token bucket per client and route class. The client is the
//! TCP peer's address (an IPv6 client by its /64, which one host usually owns whole), not a
//! `Forwarded` or `X-Forwarded-For` header, which any client can write: behind a reverse
//! proxy every request comes from the proxy, so there the limit is the proxy's as a whole
//! and should be raised, or the proxy should limit per client itself.
//!
//! Memory is bounded: at most `max_clients` buckets. A bucket that has refilled to full
//! carries no information and is dropped first; if every bucket is still in use, the least
//! recently seen are dropped (their clients start again from a full bucket).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One route class's limit: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The bucket's size: requests a client may make at once.
    pub burst: u32,
    /// Requests a client may make per minute, sustained.
    pub per_minute: u32,
}

/// The limits of every route class (inert: part of the options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// The approve and deny links (a person clicks a handful).
    pub pages: Limit,
    /// The request API (a portal or a ticketing tool: one client, many calls).
    pub api: Limit,
    /// The incident triggers (a SIEM: bursts of alerts).
    pub triggers: Limit,
    /// Most clients tracked at once.
    pub max_clients: usize,
}

impl Default for RateLimits {
    /// Pages 30 at once and 30 a minute; the API 120 and 600 a minute; triggers 200 and 600
    /// a minute; 10,000 clients tracked.
    fn default() -> Self {
        RateLimits {
            pages: Limit {
                burst: 30,
                per_minute: 30,
            },
            api: Limit {
                burst: 120,
                per_minute: 600,
            },
            triggers: Limit {
                burst: 200,
                per_minute: 600,
            },
            max_clients: 10_000,
        }
    }
}

/// Which limit a route falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    /// Approval pages, and any path the router does not know.
    Pages,
    /// `/v1/requests…`.
    Api,
    /// `/v1/triggers/…`.
    Triggers,
    /// `/healthz`, `/readyz`, `/metrics`: cheap or cached, and polled by machines.
    Unlimited,
}

impl Class {
    /// The class of a request path.
    pub(crate) fn of(path: &str) -> Class {
        if path.starts_with("/v1/triggers/") {
            Class::Triggers
        } else if path == "/v1/requests" || path.starts_with("/v1/requests/") {
            Class::Api
        } else if matches!(path, "/healthz" | "/readyz" | "/metrics") {
            Class::Unlimited
        } else {
            Class::Pages
        }
    }

    /// Its name in metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Class::Pages => "pages",
            Class::Api => "api",
            Class::Triggers => "triggers",
            Class::Unlimited => "unlimited",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every client.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<(IpAddr, Class), Bucket>>,
}

impl Limiter {
    pub(crate) fn new(limits: RateLimits) -> Limiter {
        Limiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, class: Class) -> Option<Limit> {
        match class {
            Class::Pages => Some(self.limits.pages),
            Class::Api => Some(self.limits.api),
            Class::Triggers => Some(self.limits.triggers),
            Class::Unlimited => None,
        }
    }

    /// Take one request from `ip`'s bucket of `class` at `now`: `Err(wait)` when it is
    /// empty, `wait` being how long until it holds one again.
    pub(crate) fn check(&self, ip: IpAddr, class: Class, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit(class) else {
            return Ok(());
        };
        let burst = f64::from(limit.burst.max(1));
        let rate = f64::from(limit.per_minute.max(1)) / 60.0;
        let key = (client_key(ip), class);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(&key) && buckets.len() >= self.limits.max_clients.max(1) {
            self.evict(&mut buckets, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// Make room for one more client: drop full buckets, else the least recently seen
    /// tenth.
    fn evict(&self, buckets: &mut HashMap<(IpAddr, Class), Bucket>, now: Instant) {
        buckets.retain(|(_, class), b| {
            let Some(limit) = self.limit(*class) else {
                return false;
            };
            let rate = f64::from(limit.per_minute.max(1)) / 60.0;
            let level = b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate;
            level < f64::from(limit.burst.max(1))
        });
        let max = self.limits.max_clients.max(1);
        if buckets.len() >= max {
            let mut seen: Vec<Instant> = buckets.values().map(|b| b.at).collect();
            seen.sort_unstable();
            if let Some(&cut) = seen.get((max / 10).min(seen.len().saturating_sub(1))) {
                buckets.retain(|_, b| b.at > cut);
            }
        }
    }

    /// Clients tracked now.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The key a client's requests share: an IPv4 address (IPv4-mapped IPv6 included) whole,
/// an IPv6 address by its /64.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_clients: usize) -> RateLimits {
        RateLimits {
            pages: Limit {
                burst: 3,
                per_minute: 60,
            },
            max_clients,
            ..RateLimits::default()
        }
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_for_the_refill() {
        let l = Limiter::new(limits(100));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(ip, Class::Pages, t0), Ok(()));
        }
        let wait = l.check(ip, Class::Pages, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        // Another client, another class, and the machine routes are not affected.
        assert_eq!(
            l.check("192.0.2.2".parse().unwrap(), Class::Pages, t0),
            Ok(())
        );
        assert_eq!(l.check(ip, Class::Api, t0), Ok(()));
        for _ in 0..1000 {
            assert_eq!(l.check(ip, Class::Unlimited, t0), Ok(()));
        }
        assert_eq!(
            l.check(ip, Class::Pages, t0 + Duration::from_secs(1)),
            Ok(())
        );
        assert!(
            l.check(ip, Class::Pages, t0 + Duration::from_secs(1))
                .is_err()
        );
    }

    #[test]
    fn an_ipv6_host_is_one_client_across_its_64() {
        let l = Limiter::new(limits(100));
        let t0 = Instant::now();
        for i in 0..3 {
            let ip: IpAddr = format!("2001:db8::{i}").parse().unwrap();
            assert_eq!(l.check(ip, Class::Pages, t0), Ok(()));
        }
        assert!(
            l.check("2001:db8::ffff".parse().unwrap(), Class::Pages, t0)
                .is_err()
        );
        assert_eq!(
            l.check("2001:db8:0:1::1".parse().unwrap(), Class::Pages, t0),
            Ok(())
        );
        assert_eq!(
            client_key("::ffff:192.0.2.9".parse().unwrap()),
            "192.0.2.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn memory_stays_bounded_and_idle_clients_go_first() {
        let l = Limiter::new(limits(50));
        let t0 = Instant::now();
        let busy: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..3 {
            l.check(busy, Class::Pages, t0).unwrap();
        }
        for i in 0..10_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.check(ip, Class::Pages, t0 + Duration::from_millis(u64::from(i)))
                .unwrap();
            assert!(l.tracked() <= 50);
        }
        // An idle client (its bucket full again) was dropped before any active one...
        let l = Limiter::new(limits(2));
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "203.0.113.1".parse().unwrap(),
            "203.0.113.2".parse().unwrap(),
            "203.0.113.3".parse().unwrap(),
        );
        for _ in 0..3 {
            l.check(a, Class::Pages, t0).unwrap();
        }
        l.check(b, Class::Pages, t0).unwrap();
        // A second on, `b` has refilled (idle), `a` holds one request of three.
        let later = t0 + Duration::from_secs(1);
        l.check(c, Class::Pages, later).unwrap();
        assert_eq!(l.tracked(), 2);
        // ...so `a` kept its bucket: one request, then limited.
        assert_eq!(l.check(a, Class::Pages, later), Ok(()));
        assert!(l.check(a, Class::Pages, later).is_err());
    }
}
