//! Realism knobs: added latency (mean with jitter) and injected faults.
//!
//! `--faults 503=0.02,504=0.01,reset=0.005,403=0.1` gives each Graph request those
//! probabilities. What a fault means for a write is fixed, so an engine's resume logic can be
//! tested:
//! - `503`: refused **before** the write is applied (Service Unavailable, with Retry-After);
//! - `504`: the write **is applied**, then the gateway times out (Graph can do this);
//! - `reset`: the write **is applied**, then the connection is dropped without a response;
//! - `403`: a directory write is **denied and not applied**: `403 Authorization_RequestDenied`,
//!   "Insufficient privileges to complete the operation." — what Graph answers once the app
//!   loses its role or a Conditional Access policy starts blocking it mid-run. Unlike the
//!   others this failure is not transient: a client must not retry it, so a run sees failed
//!   steps (and its circuit breaker can be rehearsed). Only directory writes (`POST`,
//!   `PATCH`, `DELETE` under `/users`, `/groups`, `/roleManagement`, `/directoryObjects`,
//!   also as `$batch` items) are denied; reads, `sendMail` (Outlook) and Identity Protection
//!   actions never are, since Graph documents this error body for the directory only.
//!
//! Each request takes one draw, whatever kinds apply to it, from a generator seeded by the
//! tenant seed, so a sequential client sees the same faults on every run, and adding `403`
//! to a specification leaves where the other kinds land unchanged.
//!
//! Two more kinds make a listing lie, the way a pager that misbehaves does; they apply to
//! each page of a collection that has a next page, with a draw of their own:
//! - `dup_page`: the page's `@odata.nextLink` points back at the page itself, so the client
//!   is served the same items again (a page is repeated once, never in a loop);
//! - `drop_nextlink`: the page comes without its `@odata.nextLink`, so the listing silently
//!   ends early — Graph's paging contract is that a page without one is the last
//!   (<https://learn.microsoft.com/graph/paging>).
//!
//! A client that believes such a listing counts the tenant wrong and may act on a user
//! twice; the count Graph serves apart from the listing (`/users/$count`) stays true.
//!
//! Three more kinds throttle the message sinks, each request to a sink with a draw of its
//! own (so adding them moves no Graph fault): `twilio_429` (Twilio's 429, code 20429),
//! `acs_429` (Azure Communication Services' 429), `teams_429` (the workflow trigger's
//! 429) and `psa_429` (an emulated PSA's 429 with `Retry-After: 1`). A throttled message is
//! not delivered.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::EmulatorError;

/// Fault probabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultSpec {
    /// Probability of a 503.
    pub unavailable: f64,
    /// Probability of a 504 (after applying a write).
    pub gateway_timeout: f64,
    /// Probability of a dropped connection (after applying a write).
    pub reset: f64,
    /// Probability that a directory write is denied with 403 (not applied).
    pub denied: f64,
    /// Probability that a page of a listing is served again instead of the next one.
    pub duplicate_page: f64,
    /// Probability that a page of a listing comes without its `@odata.nextLink`.
    pub dropped_next_link: f64,
    /// Probability that a Twilio request is answered 429 (code 20429).
    pub twilio_throttled: f64,
    /// Probability that an ACS SMS request is answered 429.
    pub acs_throttled: f64,
    /// Probability that a Teams workflow trigger is answered 429.
    pub teams_throttled: f64,
    /// Probability that a request to an emulated PSA is answered 429 (`Retry-After: 1`).
    pub psa_throttled: f64,
    /// Probability that a Twilio request is answered 503 (code 20503).
    pub twilio_down: f64,
    /// Probability that an ACS SMS request is answered 503.
    pub acs_down: f64,
    /// Probability that a Teams workflow trigger is answered 503.
    pub teams_down: f64,
    /// Probability that a Graph `sendMail` is answered 503.
    pub mail_down: f64,
    /// Seconds (before the time scale) of a write storm from the first directory write;
    /// 0 for none.
    pub write_storm: f64,
}

impl FaultSpec {
    /// Parse `503=0.02,504=0.01,reset=0.005,403=0.1,dup_page=0.1,drop_nextlink=0.1`
    /// (and the sinks' `twilio_429`, `acs_429`, `teams_429`, `psa_429`).
    pub fn parse(spec: &str) -> Result<FaultSpec, EmulatorError> {
        let mut out = FaultSpec::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                EmulatorError::Faults(format!(
                    "`{part}`: expected KIND=PROBABILITY with KIND one of 503, 504, reset, 403, \
                     dup_page, drop_nextlink, twilio_429, acs_429, teams_429, psa_429, \
                     twilio_503, acs_503, teams_503, mail_503 (or storm=SECONDS)"
                ))
            };
            let (kind, p) = part.split_once('=').ok_or_else(bad)?;
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if kind.trim() == "storm" {
                if !(p.is_finite() && (0.0..=300.0).contains(&p)) {
                    return Err(EmulatorError::Faults(format!(
                        "`{part}`: a storm lasts between 0 and 300 seconds"
                    )));
                }
                out.write_storm = p;
                continue;
            }
            if !(0.0..=1.0).contains(&p) {
                return Err(EmulatorError::Faults(format!(
                    "`{part}`: probability must be between 0 and 1"
                )));
            }
            match kind.trim() {
                "503" => out.unavailable = p,
                "504" => out.gateway_timeout = p,
                "reset" => out.reset = p,
                "403" => out.denied = p,
                "dup_page" => out.duplicate_page = p,
                "drop_nextlink" => out.dropped_next_link = p,
                "twilio_429" => out.twilio_throttled = p,
                "acs_429" => out.acs_throttled = p,
                "teams_429" => out.teams_throttled = p,
                "psa_429" => out.psa_throttled = p,
                "twilio_503" => out.twilio_down = p,
                "acs_503" => out.acs_down = p,
                "teams_503" => out.teams_down = p,
                "mail_503" => out.mail_down = p,
                _ => return Err(bad()),
            }
        }
        if out.total() > 1.0 {
            return Err(EmulatorError::Faults(
                "the probabilities add up to more than 1".into(),
            ));
        }
        if out.listing_total() > 1.0 {
            return Err(EmulatorError::Faults(
                "the probabilities of dup_page and drop_nextlink add up to more than 1".into(),
            ));
        }
        Ok(out)
    }

    /// Whether any fault is configured.
    pub fn any(&self) -> bool {
        self.total() > 0.0
            || self.listing_total() > 0.0
            || self.twilio_throttled
                + self.acs_throttled
                + self.teams_throttled
                + self.psa_throttled
                + self.twilio_down
                + self.acs_down
                + self.teams_down
                + self.mail_down
                + self.write_storm
                > 0.0
    }

    /// The request faults' share of a request's draw.
    fn total(&self) -> f64 {
        self.unavailable + self.gateway_timeout + self.reset + self.denied
    }

    /// The listing faults' share of a page's draw.
    fn listing_total(&self) -> f64 {
        self.duplicate_page + self.dropped_next_link
    }
}

/// A fault chosen for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 503 before applying.
    Unavailable,
    /// 504 after applying.
    GatewayTimeout,
    /// Drop the connection after applying.
    Reset,
    /// 403 `Authorization_RequestDenied` instead of applying (directory writes only).
    Denied,
}

/// Where a page's `@odata.nextLink` leads, faults considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageLink {
    /// To the next page, as it should.
    Next,
    /// Back to this page (`dup_page`).
    Repeat,
    /// Nowhere: the link is left out (`drop_nextlink`).
    Drop,
}

/// A message sink that can be throttled by a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Twilio Programmable Messaging.
    Twilio,
    /// Azure Communication Services SMS.
    Acs,
    /// A Teams Workflows trigger.
    Teams,
    /// An emulated PSA (ServiceNow, ConnectWise, Autotask, HaloPSA).
    Psa,
    /// Graph `sendMail` (outages only: Outlook's throttling is the mailbox's own bucket).
    Mail,
}

/// The fault and latency generator.
#[derive(Debug)]
pub struct Faults {
    spec: FaultSpec,
    latency_ms: f64,
    scale: f64,
    rng: Mutex<ChaCha8Rng>,
    /// The sinks' draws: apart, so sink traffic moves no Graph fault.
    sink_rng: Mutex<ChaCha8Rng>,
    /// Pages (by their own position token) whose link was just pointed back at them: the
    /// repeat is served plainly, so a page is repeated once and a listing always ends.
    repeated: Mutex<HashSet<String>>,
}

impl Faults {
    /// Faults per `spec`, latency mean `latency_ms` divided by `scale`.
    pub fn new(spec: FaultSpec, latency_ms: u64, scale: f64, seed: u64) -> Self {
        Faults {
            spec,
            latency_ms: latency_ms as f64,
            scale,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0xfa17)),
            sink_rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x5147)),
            repeated: Mutex::new(HashSet::new()),
        }
    }

    /// Whether listing faults are configured (so a page needs to know its own position).
    pub fn lists_lie(&self) -> bool {
        self.spec.listing_total() > 0.0
    }

    /// Where the link of a page that has a next page leads. `page` names the page served:
    /// the skiptoken of its own position, the same for the page and its repeat.
    pub fn next_link(&self, page: &str) -> PageLink {
        if !self.lists_lie() {
            return PageLink::Next;
        }
        let Ok(mut repeated) = self.repeated.lock() else {
            return PageLink::Next;
        };
        if repeated.remove(page) {
            return PageLink::Next;
        }
        let Some(x) = self.rng.lock().ok().map(|mut rng| rng.random::<f64>()) else {
            return PageLink::Next;
        };
        if x < self.spec.duplicate_page {
            repeated.insert(page.to_owned());
            PageLink::Repeat
        } else if x < self.spec.listing_total() {
            PageLink::Drop
        } else {
            PageLink::Next
        }
    }

    /// The fault for the next request, if any. `allow_reset` is false inside `$batch`;
    /// `deniable` is true for directory writes, the only requests a `403` fault hits.
    ///
    /// One draw per request: the kinds share `[0, 1)` in a fixed order (503, 504, reset,
    /// 403), and a draw landing on a kind that does not apply to the request is no fault.
    pub fn draw(&self, allow_reset: bool, deniable: bool) -> Option<Fault> {
        if self.spec.total() <= 0.0 {
            return None;
        }
        let x: f64 = self.rng.lock().ok()?.random();
        let s = &self.spec;
        let bands = [
            (s.unavailable, Fault::Unavailable, true),
            (s.gateway_timeout, Fault::GatewayTimeout, true),
            (s.reset, Fault::Reset, allow_reset),
            (s.denied, Fault::Denied, deniable),
        ];
        let mut upper = 0.0;
        for (p, fault, applies) in bands {
            upper += p;
            if x < upper {
                return applies.then_some(fault);
            }
        }
        None
    }

    /// Whether this request to `sink` is throttled (one draw per request).
    pub fn sink_throttled(&self, sink: Sink) -> bool {
        let p = match sink {
            Sink::Twilio => self.spec.twilio_throttled,
            Sink::Acs => self.spec.acs_throttled,
            Sink::Teams => self.spec.teams_throttled,
            Sink::Psa => self.spec.psa_throttled,
            Sink::Mail => 0.0,
        };
        self.sink_draw(p)
    }

    /// Whether this request to `sink` meets an outage (one draw per request, from the
    /// sinks' generator).
    pub fn sink_down(&self, sink: Sink) -> bool {
        let p = match sink {
            Sink::Twilio => self.spec.twilio_down,
            Sink::Acs => self.spec.acs_down,
            Sink::Teams => self.spec.teams_down,
            Sink::Mail => self.spec.mail_down,
            Sink::Psa => 0.0,
        };
        self.sink_draw(p)
    }

    fn sink_draw(&self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        self.sink_rng
            .lock()
            .is_ok_and(|mut rng| rng.random::<f64>() < p)
    }

    /// The latency to add to one request: uniform in [0.5, 1.5] × mean, divided by the scale.
    pub fn latency(&self) -> Option<Duration> {
        if self.latency_ms <= 0.0 {
            return None;
        }
        let jitter: f64 = self.rng.lock().ok()?.random_range(0.5..1.5);
        Some(Duration::from_secs_f64(
            self.latency_ms * jitter / 1000.0 / self.scale,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_and_rejects() {
        let s = FaultSpec::parse("503=0.02, 504=0.01,reset=0.005").unwrap();
        assert_eq!(s.unavailable, 0.02);
        assert_eq!(s.reset, 0.005);
        assert!(FaultSpec::parse("500=0.1").is_err());
        assert!(FaultSpec::parse("503=2").is_err());
        assert!(FaultSpec::parse("503").is_err());
    }

    #[test]
    fn spec_parses_403_and_counts_it_in_the_total() {
        let s = FaultSpec::parse("403=0.5").unwrap();
        assert_eq!(
            s,
            FaultSpec {
                denied: 0.5,
                ..FaultSpec::default()
            }
        );
        assert!(s.any());
        let s = FaultSpec::parse(" 403 = 0.25 ,503=0.1").unwrap();
        assert_eq!((s.denied, s.unavailable), (0.25, 0.1));
        assert!(FaultSpec::parse("403=1.0").is_ok());
        assert!(FaultSpec::parse("403=1.5").is_err());
        assert!(FaultSpec::parse("403=-0.1").is_err());
        assert!(FaultSpec::parse("403=x").is_err());
        assert!(FaultSpec::parse("401=0.1").is_err());
        let err = FaultSpec::parse("503=0.5,403=0.6").unwrap_err();
        assert!(err.to_string().contains("add up to more than 1"), "{err}");
        assert!(!FaultSpec::parse("403=0").unwrap().any());
    }

    #[test]
    fn denials_hit_only_deniable_requests() {
        let f = Faults::new(FaultSpec::parse("403=1.0").unwrap(), 0, 1.0, 3);
        assert!((0..100).all(|_| f.draw(true, false).is_none()), "reads");
        assert!((0..100).all(|_| f.draw(false, true) == Some(Fault::Denied)));
    }

    #[test]
    fn adding_403_leaves_the_other_faults_where_they_were() {
        let before = Faults::new(FaultSpec::parse("503=0.2,reset=0.1").unwrap(), 0, 1.0, 7);
        let after = Faults::new(
            FaultSpec::parse("503=0.2,reset=0.1,403=0.3").unwrap(),
            0,
            1.0,
            7,
        );
        let mut denied = 0;
        for _ in 0..2_000 {
            let (a, b) = (before.draw(true, true), after.draw(true, true));
            match b {
                Some(Fault::Denied) => {
                    assert_eq!(a, None);
                    denied += 1;
                }
                other => assert_eq!(a, other),
            }
        }
        assert!((500..700).contains(&denied), "{denied}");
    }

    #[test]
    fn the_same_seed_denies_the_same_requests() {
        let run = || {
            let f = Faults::new(FaultSpec::parse("403=0.3").unwrap(), 0, 1.0, 11);
            (0..200).map(|_| f.draw(true, true)).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn listing_kinds_parse_and_are_bounded_on_their_own() {
        let s = FaultSpec::parse("dup_page=0.25, drop_nextlink=0.5,503=0.9").unwrap();
        assert_eq!((s.duplicate_page, s.dropped_next_link), (0.25, 0.5));
        assert!(FaultSpec::parse("dup_page=1").unwrap().any());
        let err = FaultSpec::parse("dup_page=0.6,drop_nextlink=0.6").unwrap_err();
        assert!(
            err.to_string().contains("dup_page and drop_nextlink"),
            "{err}"
        );
        assert!(FaultSpec::parse("dup_page=2").is_err());
        let f = Faults::new(FaultSpec::parse("dup_page=1").unwrap(), 0, 1.0, 1);
        assert!(f.lists_lie());
        assert_eq!(
            f.draw(true, true),
            None,
            "listing faults are not request faults"
        );
    }

    #[test]
    fn a_page_is_repeated_once_then_the_listing_goes_on() {
        let f = Faults::new(FaultSpec::parse("dup_page=1").unwrap(), 0, 1.0, 1);
        assert_eq!(f.next_link("p0"), PageLink::Repeat);
        assert_eq!(f.next_link("p0"), PageLink::Next, "the repeat leads on");
        assert_eq!(f.next_link("p1"), PageLink::Repeat);
        assert_eq!(f.next_link("p1"), PageLink::Next);
        assert_eq!(
            f.next_link("p0"),
            PageLink::Repeat,
            "a later listing lies again"
        );
        let f = Faults::new(FaultSpec::parse("drop_nextlink=1").unwrap(), 0, 1.0, 1);
        assert_eq!(f.next_link("p0"), PageLink::Drop);
        let f = Faults::new(FaultSpec::parse("503=1").unwrap(), 0, 1.0, 1);
        assert_eq!(f.next_link("p0"), PageLink::Next);
    }

    #[test]
    fn listing_draws_follow_the_probabilities() {
        let f = Faults::new(
            FaultSpec::parse("dup_page=0.2,drop_nextlink=0.3").unwrap(),
            0,
            1.0,
            5,
        );
        let n = 10_000;
        let links: Vec<_> = (0..n).map(|i| f.next_link(&format!("p{i}"))).collect();
        let count = |l: PageLink| links.iter().filter(|x| **x == l).count();
        assert!((1700..2300).contains(&count(PageLink::Repeat)));
        assert!((2700..3300).contains(&count(PageLink::Drop)));
    }

    #[test]
    fn sink_kinds_parse_and_draw_on_their_own() {
        let s = FaultSpec::parse("twilio_429=1,acs_429=0.5,teams_429=0,503=1").unwrap();
        assert_eq!(
            (s.twilio_throttled, s.acs_throttled, s.teams_throttled),
            (1.0, 0.5, 0.0)
        );
        assert!(FaultSpec::parse("twilio_429=1.5").is_err());
        assert!(FaultSpec::parse("teams_429=0.1").unwrap().any());
        let f = Faults::new(FaultSpec::parse("twilio_429=1").unwrap(), 0, 1.0, 1);
        assert!((0..50).all(|_| f.sink_throttled(Sink::Twilio)));
        assert!((0..50).all(|_| !f.sink_throttled(Sink::Acs)));
        assert_eq!(f.draw(true, true), None, "not a Graph fault");
        // Sink draws leave the Graph draws where they were.
        let spec = FaultSpec::parse("503=0.3,acs_429=0.5").unwrap();
        let (a, b) = (Faults::new(spec, 0, 1.0, 9), Faults::new(spec, 0, 1.0, 9));
        for _ in 0..200 {
            let _ = b.sink_throttled(Sink::Acs);
            assert_eq!(a.draw(true, true), b.draw(true, true));
        }
        let f = Faults::new(FaultSpec::parse("acs_429=0.5").unwrap(), 0, 1.0, 3);
        let hits = (0..2000).filter(|_| f.sink_throttled(Sink::Acs)).count();
        assert!((850..1150).contains(&hits), "{hits}");
    }

    #[test]
    fn outages_and_storms_parse_and_draw_on_their_own() {
        let s = FaultSpec::parse("twilio_503=1,acs_503=1,mail_503=0.5,storm=45").unwrap();
        assert_eq!((s.twilio_down, s.acs_down, s.mail_down), (1.0, 1.0, 0.5));
        assert_eq!(s.write_storm, 45.0);
        assert!(FaultSpec::parse("storm=30").unwrap().any());
        assert!(FaultSpec::parse("storm=301").is_err());
        assert!(FaultSpec::parse("storm=-1").is_err());
        assert!(FaultSpec::parse("teams_503=2").is_err());
        let f = Faults::new(FaultSpec::parse("teams_503=1").unwrap(), 0, 1.0, 1);
        assert!((0..20).all(|_| f.sink_down(Sink::Teams)));
        assert!((0..20).all(|_| !f.sink_down(Sink::Twilio)));
        assert!((0..20).all(|_| !f.sink_throttled(Sink::Teams)));
        assert_eq!(f.draw(true, true), None, "not a Graph fault");
    }

    #[test]
    fn draws_follow_the_probabilities() {
        let f = Faults::new(FaultSpec::parse("503=0.2,504=0.1").unwrap(), 0, 1.0, 3);
        let n = 10_000;
        let draws: Vec<_> = (0..n).map(|_| f.draw(true, true)).collect();
        let c503 = draws
            .iter()
            .filter(|d| **d == Some(Fault::Unavailable))
            .count();
        let c504 = draws
            .iter()
            .filter(|d| **d == Some(Fault::GatewayTimeout))
            .count();
        assert!((1700..2300).contains(&c503), "{c503}");
        assert!((800..1200).contains(&c504), "{c504}");
        assert!(f.latency().is_none());
    }
}
