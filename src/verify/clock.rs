//! [`Clock`]: the time the verification runtime reads and waits on, injected so the flow's
//! minutes-long timers are tested without waiting: [`SystemClock`] in production,
//! [`ManualClock`] (moved by the test) in tests.

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

/// Where the runtime gets the time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;

    /// Resolve at or after `at`.
    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'_, ()>;
}

/// The system's clock, waiting with tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'_, ()> {
        let wait = at.duration_since(Timestamp::now());
        Box::pin(async move {
            if let Ok(wait) = std::time::Duration::try_from(wait) {
                tokio::time::sleep(wait).await;
            }
        })
    }
}

/// A clock that moves only when told to; sleepers wake when it passes their time.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<Timestamp>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now: watch::Sender::new(start),
        }
    }

    /// Move the clock forward by `by` (never backwards).
    pub fn advance(&self, by: SignedDuration) {
        self.now.send_modify(|now| {
            if by.is_positive() {
                *now += by;
            }
        });
    }

    /// Set the clock to `at` if that is later than now.
    pub fn set(&self, at: Timestamp) {
        self.now.send_modify(|now| *now = (*now).max(at));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'_, ()> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, so `wait_for` ends only when the time comes.
            let _ = rx.wait_for(|now| *now >= at).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleeper_wakes_when_the_clock_passes_its_time() {
        let start = Timestamp::from_second(1_800_000_000).unwrap();
        let clock = std::sync::Arc::new(ManualClock::new(start));
        let c = clock.clone();
        let sleeper = tokio::spawn(async move {
            c.sleep_until(start + SignedDuration::from_secs(300)).await;
            c.now()
        });
        clock.advance(SignedDuration::from_secs(299));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(SignedDuration::from_secs(1));
        let woke = sleeper.await.unwrap();
        assert_eq!(woke, start + SignedDuration::from_secs(300));
        clock.advance(SignedDuration::from_secs(-10));
        assert_eq!(clock.now(), woke, "never backwards");
    }
}
