//! Realism knobs: added latency (mean with jitter) and injected faults.
//!
//! `--faults 503=0.02,504=0.01,reset=0.005` gives each Graph request those probabilities.
//! What a fault means for a write is fixed, so an engine's resume logic can be tested:
//! - `503`: refused **before** the write is applied (Service Unavailable, with Retry-After);
//! - `504`: the write **is applied**, then the gateway times out (Graph can do this);
//! - `reset`: the write **is applied**, then the connection is dropped without a response.
//!
//! Draws come from a generator seeded by the tenant seed, so a sequential client sees the
//! same faults on every run.

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
}

impl FaultSpec {
    /// Parse `503=0.02,504=0.01,reset=0.005`.
    pub fn parse(spec: &str) -> Result<FaultSpec, EmulatorError> {
        let mut out = FaultSpec::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                EmulatorError::Faults(format!(
                    "`{part}`: expected KIND=PROBABILITY with KIND one of 503, 504, reset"
                ))
            };
            let (kind, p) = part.split_once('=').ok_or_else(bad)?;
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=1.0).contains(&p) {
                return Err(EmulatorError::Faults(format!(
                    "`{part}`: probability must be between 0 and 1"
                )));
            }
            match kind.trim() {
                "503" => out.unavailable = p,
                "504" => out.gateway_timeout = p,
                "reset" => out.reset = p,
                _ => return Err(bad()),
            }
        }
        if out.unavailable + out.gateway_timeout + out.reset > 1.0 {
            return Err(EmulatorError::Faults(
                "the probabilities add up to more than 1".into(),
            ));
        }
        Ok(out)
    }

    /// Whether any fault is configured.
    pub fn any(&self) -> bool {
        self.unavailable + self.gateway_timeout + self.reset > 0.0
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
}

/// The fault and latency generator.
#[derive(Debug)]
pub struct Faults {
    spec: FaultSpec,
    latency_ms: f64,
    scale: f64,
    rng: Mutex<ChaCha8Rng>,
}

impl Faults {
    /// Faults per `spec`, latency mean `latency_ms` divided by `scale`.
    pub fn new(spec: FaultSpec, latency_ms: u64, scale: f64, seed: u64) -> Self {
        Faults {
            spec,
            latency_ms: latency_ms as f64,
            scale,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0xfa17)),
        }
    }

    /// The fault for the next request, if any. `allow_reset` is false inside `$batch`.
    pub fn draw(&self, allow_reset: bool) -> Option<Fault> {
        if !self.spec.any() {
            return None;
        }
        let x: f64 = self.rng.lock().ok()?.random();
        let s = &self.spec;
        if x < s.unavailable {
            Some(Fault::Unavailable)
        } else if x < s.unavailable + s.gateway_timeout {
            Some(Fault::GatewayTimeout)
        } else if allow_reset && x < s.unavailable + s.gateway_timeout + s.reset {
            Some(Fault::Reset)
        } else {
            None
        }
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
    fn draws_follow_the_probabilities() {
        let f = Faults::new(FaultSpec::parse("503=0.2,504=0.1").unwrap(), 0, 1.0, 3);
        let n = 10_000;
        let draws: Vec<_> = (0..n).map(|_| f.draw(true)).collect();
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
