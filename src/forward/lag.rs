//! [`Lag`]: how far one sink is behind the trail's head, as its forwarder last saw it, for
//! `resetctl serve`'s `/metrics`. Updated on every pass, including a pass whose delivery
//! fails: during a SIEM outage the records behind keep growing and the oldest record not
//! delivered keeps ageing, which is exactly what a SOC's alert on forwarding lag must see.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use jiff::Timestamp;

/// No record is waiting (the sink has everything).
const NONE: i64 = i64::MIN;

/// One sink's lag. Shared between its forwarder (writer) and the metrics (reader).
#[derive(Debug)]
pub struct Lag {
    records: AtomicU64,
    oldest_pending_ms: AtomicI64,
    delivered: AtomicU64,
    failures: AtomicU64,
}

impl Default for Lag {
    fn default() -> Self {
        Lag {
            records: AtomicU64::new(0),
            oldest_pending_ms: AtomicI64::new(NONE),
            delivered: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }
}

impl Lag {
    /// What a pass saw: `records` the sink lacks, the oldest of them written at
    /// `oldest_pending` (`None`: the sink has everything).
    pub fn observe(&self, records: u64, oldest_pending: Option<Timestamp>) {
        self.records.store(records, Ordering::Relaxed);
        let ms = oldest_pending.map_or(NONE, |t| t.as_millisecond());
        self.oldest_pending_ms.store(ms, Ordering::Relaxed);
    }

    /// `n` more records the sink accepted.
    pub fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
    }

    /// A pass that failed (sink down, throttled, refusing).
    pub fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records of the trail the sink has not received.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Seconds between `now` and the oldest record the sink has not received (zero when it
    /// has everything): the age of the SIEM's blind spot.
    pub fn seconds_behind(&self, now: Timestamp) -> f64 {
        match self.oldest_pending_ms.load(Ordering::Relaxed) {
            NONE => 0.0,
            ms => ((now.as_millisecond() - ms).max(0) as f64) / 1000.0,
        }
    }

    /// Records delivered since the process started.
    pub fn delivered_total(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Failed passes since the process started.
    pub fn failures_total(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blind_spot_ages_until_the_sink_catches_up() {
        let lag = Lag::default();
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        assert_eq!(lag.seconds_behind(t0), 0.0);
        lag.observe(3, Some(t0));
        assert_eq!(lag.records(), 3);
        assert_eq!(
            lag.seconds_behind(t0 + jiff::SignedDuration::from_millis(2500)),
            2.5
        );
        lag.observe(0, None);
        assert_eq!(
            lag.seconds_behind(t0 + jiff::SignedDuration::from_secs(60)),
            0.0
        );
        lag.delivered(3);
        lag.failed();
        assert_eq!((lag.delivered_total(), lag.failures_total()), (3, 1));
    }
}
