//! The circuit breaker: a rolling failure rate over the last outcomes of a run. Above the
//! playbook's `stop_when_error_rate_above` it trips, and no new user starts; users in flight
//! finish their current pipeline.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Outcomes the circuit breaker looks back over.
pub const WINDOW: usize = 100;
/// Outcomes needed before the breaker may trip (a single early failure is not a rate).
pub const MIN_SAMPLES: usize = 20;

/// Rolling failure rate over the last [`WINDOW`] outcomes; once tripped it stays tripped.
#[derive(Debug)]
pub struct Breaker {
    /// Failure rate above which it trips.
    threshold: f64,
    /// The last outcomes, `true` for a failure.
    window: Mutex<VecDeque<bool>>,
    /// Whether it has tripped.
    tripped: AtomicBool,
}

impl Breaker {
    /// A breaker that trips above `threshold` (a fraction, 0 to 1).
    pub fn new(threshold: f64) -> Breaker {
        Breaker {
            threshold,
            window: Mutex::new(VecDeque::with_capacity(WINDOW + 1)),
            tripped: AtomicBool::new(false),
        }
    }

    /// Count one outcome decided in this attempt of the run.
    pub fn record(&self, failed: bool) {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        window.push_back(failed);
        if window.len() > WINDOW {
            window.pop_front();
        }
        let failures = window.iter().filter(|&&f| f).count();
        let over =
            window.len() >= MIN_SAMPLES && failures as f64 / window.len() as f64 > self.threshold;
        if over && !self.tripped.swap(true, Ordering::SeqCst) {
            tracing::error!(
                message = "Circuit breaker tripped: error rate above the playbook's threshold.",
                failures,
                window = window.len(),
                threshold = self.threshold
            );
        }
    }

    /// Whether it has tripped.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_waits_for_enough_samples() {
        let b = Breaker::new(0.1);
        for _ in 0..MIN_SAMPLES - 1 {
            b.record(true);
        }
        assert!(
            !b.tripped(),
            "{} failures are not a rate yet",
            MIN_SAMPLES - 1
        );
        b.record(true);
        assert!(b.tripped());
    }

    #[test]
    fn the_rate_must_exceed_the_threshold() {
        let b = Breaker::new(0.5);
        for i in 0..WINDOW {
            b.record(i % 2 == 1);
        }
        assert!(!b.tripped(), "exactly half is not above half");
        b.record(true);
        assert!(b.tripped(), "51 of the last 100");
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let b = Breaker::new(0.3);
        // Failures long ago, then only successes: they age out before the next burst.
        for _ in 0..5 {
            b.record(true);
        }
        for _ in 0..WINDOW {
            b.record(false);
        }
        for _ in 0..30 {
            b.record(true);
        }
        assert!(!b.tripped(), "30 of the last 100");
        b.record(true);
        assert!(b.tripped(), "31 of the last 100");
    }

    #[test]
    fn once_tripped_it_stays_tripped() {
        let b = Breaker::new(0.0);
        for _ in 0..MIN_SAMPLES {
            b.record(true);
        }
        assert!(b.tripped());
        for _ in 0..10 * WINDOW {
            b.record(false);
        }
        assert!(b.tripped());
    }
}
