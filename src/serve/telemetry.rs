//! [`Telemetry`]: what the server counts in process (HTTP requests by route and status,
//! trigger intake by source and result, rate-limit refusals, connections refused at accept) and the forwarders' lag
//! gauges, behind one cloneable handle the router, the command and the metrics share. No
//! global state: a second server in the same process (a test) has its own.
//!
//! Every label value is bounded: routes are the router's templates (never a raw path, which
//! for an approval link holds a token), methods and trigger sources come from fixed lists.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::forward::Lag;

/// The server's in-process counters. Cheap to clone (a shared handle).
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    http: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    triggers: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    limited: Mutex<BTreeMap<&'static str, u64>>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    sinks: Mutex<BTreeMap<String, Arc<Lag>>>,
}

/// A snapshot of the counters, for the metrics page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Requests by (route template, method, status).
    pub http: Vec<((String, &'static str, u16), u64)>,
    /// Trigger intake by (source, result).
    pub triggers: Vec<((&'static str, &'static str), u64)>,
    /// Requests refused by the rate limit, by route class.
    pub limited: Vec<(&'static str, u64)>,
    /// Connections closed at accept by a connection cap, by cap (`per_client`, `total`).
    pub connections_refused: Vec<(&'static str, u64)>,
}

impl Telemetry {
    /// A request answered: its route template (`unmatched` when none), method and status.
    pub fn request(&self, route: &str, method: &str, status: u16) {
        let method = known_method(method);
        let mut http = self
            .inner
            .http
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *http.entry((route.to_owned(), method, status)).or_default() += 1;
    }

    /// A trigger answered: the source named in the path and the response's status.
    pub fn trigger(&self, source: &str, status: u16) {
        let source = match source {
            "sentinel" => "sentinel",
            "splunk" => "splunk",
            "generic" => "generic",
            _ => "unknown",
        };
        let mut triggers = self
            .inner
            .triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *triggers
            .entry((source, trigger_result(status)))
            .or_default() += 1;
    }

    /// A request refused by the rate limit of `class`.
    pub fn limited(&self, class: &'static str) {
        let mut limited = self
            .inner
            .limited
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *limited.entry(class).or_default() += 1;
    }

    /// A connection closed at accept by `cap` (`per_client` or `total`).
    pub fn connection_refused(&self, cap: &'static str) {
        let mut refused = self
            .inner
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *refused.entry(cap).or_default() += 1;
    }

    /// The lag gauge of sink `name` (created on first use): hand it to the sink's forwarder
    /// ([`crate::forward::Forwarder::with_lag`]).
    pub fn forward_lag(&self, name: &str) -> Arc<Lag> {
        let mut sinks = self
            .inner
            .sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sinks.entry(name.to_owned()).or_default().clone()
    }

    /// Every sink's lag gauge, by name.
    pub fn sinks(&self) -> Vec<(String, Arc<Lag>)> {
        let sinks = self
            .inner
            .sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sinks.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The counters as they are now.
    pub fn counts(&self) -> Counts {
        let http = self
            .inner
            .http
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let http = http.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let triggers = self
            .inner
            .triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let triggers = triggers.iter().map(|(k, v)| (*k, *v)).collect();
        let limited = self
            .inner
            .limited
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let limited = limited.iter().map(|(k, v)| (*k, *v)).collect();
        let refused = self
            .inner
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let connections_refused = refused.iter().map(|(k, v)| (*k, *v)).collect();
        Counts {
            http,
            triggers,
            limited,
            connections_refused,
        }
    }
}

/// The method as a label: one of the standard ones, else `other` (a client may send any
/// token as a method; labels must stay few).
fn known_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// What a trigger's status says happened to the incident.
fn trigger_result(status: u16) -> &'static str {
    match status {
        201 => "planned",
        200 => "duplicate",
        202 => "accepted",
        400 | 413 | 415 => "invalid",
        401 | 403 => "unauthorized",
        404 => "not_found",
        422 => "unmapped",
        429 => "rate_limited",
        503 => "unavailable",
        500..=599 => "failed",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded_whatever_a_client_sends() {
        let t = Telemetry::default();
        t.request("/healthz", "GET", 200);
        t.request("/healthz", "GET", 200);
        t.request("unmatched", "FROB", 404);
        t.trigger("sentinel", 201);
        t.trigger("../../etc", 404);
        t.trigger("generic", 200);
        t.limited("pages");
        t.connection_refused("per_client");
        let c = t.counts();
        assert_eq!(
            c.http,
            vec![
                (("/healthz".to_owned(), "GET", 200), 2),
                (("unmatched".to_owned(), "other", 404), 1)
            ]
        );
        assert_eq!(
            c.triggers,
            vec![
                (("generic", "duplicate"), 1),
                (("sentinel", "planned"), 1),
                (("unknown", "not_found"), 1)
            ]
        );
        assert_eq!(c.limited, vec![("pages", 1)]);
        assert_eq!(c.connections_refused, vec![("per_client", 1)]);
        assert!(Arc::ptr_eq(&t.forward_lag("siem"), &t.forward_lag("siem")));
        assert_eq!(t.sinks().len(), 1);
    }
}
