//! Caps on open connections: per client and in all. Without them one client can hold every
//! file descriptor the process has (idle keep-alive connections cost it nothing), and the
//! approval pages go dark in the middle of an incident. The client is the TCP peer's address,
//! an IPv6 client by its /64, as for the rate limits ([`super::limits`]); `X-Forwarded-For`
//! is not trusted. Behind a reverse proxy every connection comes from the proxy, so there the
//! per-client cap should be raised to the proxy's upstream connection pool.
//!
//! A connection over a cap is closed at accept, before anything is read from it (an HTTP
//! answer would need the request read, and over TLS a handshake, which is the work the cap
//! saves). Refusals are counted for `/metrics` and logged at most once a minute per client
//! (and once a minute for the total cap), so a client hammering the server cannot flood the
//! log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::limits::client_key;

/// How often a client's refusals are logged, at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The caps (inert: part of the options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections one client address (an IPv6 /64) may hold open at once.
    pub per_client: usize,
    /// Connections open at once, from everyone.
    pub total: usize,
}

impl Default for ConnectionLimits {
    /// 64 per client (a browser opens 6, a busy SOC tool a few dozen), 1,024 in all (the
    /// common soft limit on open files).
    fn default() -> Self {
        ConnectionLimits {
            per_client: 64,
            total: 1024,
        }
    }
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cap {
    /// The client already holds its share.
    PerClient,
    /// The server holds all it will.
    Total,
}

impl Cap {
    /// Its name in metrics and the log.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Cap::PerClient => "per_client",
            Cap::Total => "total",
        }
    }
}

/// A refused connection: which cap, and whether this refusal is the one to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    pub cap: Cap,
    /// The client, as the cap counts it (an IPv6 address cut to its /64).
    pub client: IpAddr,
    pub log: bool,
}

#[derive(Debug, Default)]
struct Open {
    by_client: HashMap<IpAddr, usize>,
    total: usize,
    logged: HashMap<IpAddr, Instant>,
    logged_total: Option<Instant>,
}

/// The open connections, by client.
#[derive(Debug)]
pub(crate) struct Connections {
    limits: ConnectionLimits,
    open: Mutex<Open>,
}

/// An admitted connection's place: given back when dropped (the connection's task ends).
#[derive(Debug)]
pub(crate) struct Slot {
    connections: Arc<Connections>,
    client: IpAddr,
}

impl Connections {
    pub(crate) fn new(limits: ConnectionLimits) -> Connections {
        Connections {
            limits,
            open: Mutex::new(Open::default()),
        }
    }

    /// Admit a connection from `peer` at `now`, or say which cap refuses it.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr, now: Instant) -> Result<Slot, Refused> {
        let client = client_key(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let held = open.by_client.get(&client).copied().unwrap_or(0);
        let cap = if open.total >= self.limits.total.max(1) {
            Some(Cap::Total)
        } else if held >= self.limits.per_client.max(1) {
            Some(Cap::PerClient)
        } else {
            None
        };
        if let Some(cap) = cap {
            let log = match cap {
                Cap::Total => due(&mut open.logged_total, now),
                Cap::PerClient => {
                    // Bounded: a client is refused only while it holds `per_client`
                    // connections, so at most `total / per_client` clients at once; entries a
                    // minute old carry nothing and go first.
                    if open.logged.len() >= self.limits.total.max(1024) {
                        open.logged
                            .retain(|_, at| now.saturating_duration_since(*at) < LOG_EVERY);
                    }
                    let mut last = open.logged.get(&client).copied();
                    let log = due(&mut last, now);
                    if log {
                        open.logged.insert(client, now);
                    }
                    log
                }
            };
            return Err(Refused { cap, client, log });
        }
        *open.by_client.entry(client).or_default() += 1;
        open.total += 1;
        Ok(Slot {
            connections: self.clone(),
            client,
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    fn release(&self, client: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(held) = open.by_client.get_mut(&client) {
            *held -= 1;
            if *held == 0 {
                open.by_client.remove(&client);
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.release(self.client);
    }
}

/// Whether a refusal last logged at `last` should be logged at `now` (then `last` becomes
/// `now`).
fn due(last: &mut Option<Instant>, now: Instant) -> bool {
    match last {
        Some(at) if now.saturating_duration_since(*at) < LOG_EVERY => false,
        _ => {
            *last = Some(now);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(per_client: usize, total: usize) -> Arc<Connections> {
        Arc::new(Connections::new(ConnectionLimits { per_client, total }))
    }

    #[test]
    fn a_client_holds_its_share_and_gets_a_place_back_when_one_closes() {
        let c = caps(2, 10);
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = c.admit(ip, t0).unwrap();
        let _b = c.admit(ip, t0).unwrap();
        let refused = c.admit(ip, t0).unwrap_err();
        assert_eq!((refused.cap, refused.log), (Cap::PerClient, true));
        // Logged once a minute, not once a connection.
        assert!(!c.admit(ip, t0 + Duration::from_secs(59)).unwrap_err().log);
        assert!(c.admit(ip, t0 + Duration::from_secs(60)).unwrap_err().log);
        // Another client is not affected; the same client as IPv4-mapped IPv6 is the same.
        let _other = c.admit("192.0.2.2".parse().unwrap(), t0).unwrap();
        assert!(c.admit("::ffff:192.0.2.1".parse().unwrap(), t0).is_err());
        assert_eq!(c.open(), 3);
        drop(a);
        assert_eq!(c.open(), 2);
        let _c = c.admit(ip, t0).unwrap();
    }

    #[test]
    fn an_ipv6_64_is_one_client_and_the_total_caps_everyone() {
        let c = caps(2, 3);
        let t0 = Instant::now();
        let a = c.admit("2001:db8::1".parse().unwrap(), t0).unwrap();
        let _b = c.admit("2001:db8::2".parse().unwrap(), t0).unwrap();
        let refused = c.admit("2001:db8::ffff".parse().unwrap(), t0).unwrap_err();
        assert_eq!(refused.cap, Cap::PerClient);
        assert_eq!(refused.client, "2001:db8::".parse::<IpAddr>().unwrap());
        let _c = c.admit("2001:db8:0:1::1".parse().unwrap(), t0).unwrap();
        let full = c.admit("198.51.100.7".parse().unwrap(), t0).unwrap_err();
        assert_eq!((full.cap, full.log), (Cap::Total, true));
        let again = c.admit("198.51.100.8".parse().unwrap(), t0).unwrap_err();
        assert_eq!((again.cap, again.log), (Cap::Total, false));
        drop(a);
        assert!(c.admit("198.51.100.7".parse().unwrap(), t0).is_ok());
    }
}
