//! A `governor` clock on top of tokio's clock, so that rate limiters follow tokio's paused
//! test clock (`tokio::time::pause`) as well as real time.

use std::ops::Add;

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;

/// An instant of tokio's clock, wrapped so `governor`'s traits can be implemented for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(pub tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = Self;

    fn add(self, other: Nanos) -> Self {
        TokioInstant(self.0 + std::time::Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        TokioInstant(self.0.checked_sub(duration.into()).unwrap_or(self.0))
    }
}

/// `governor` clock reading `tokio::time::Instant::now()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}
