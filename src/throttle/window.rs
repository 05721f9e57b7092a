//! The log of what a budget granted over its last window, and the sliding-window rule the
//! governor falls back to when a server shows it meters "`N` per `W`" as a window rather
//! than as the token bucket Graph documents.
//!
//! ## Why a fallback
//!
//! Graph documents token buckets, and the emulator models them; but a server (or a proxy in
//! front of it) that counts a sliding window refuses the refill a token bucket grants right
//! after its capacity was spent, and answers with a `Retry-After` of up to a whole window
//! (until the oldest request leaves it). A token bucket's `Retry-After` is only the time to
//! refill the missing tokens: at most `cost / r`, a few hundredths of the window for a
//! `$batch` of 20 against 3,000 per 150 s. So a 429 whose `Retry-After` exceeds a tenth of
//! the window tells the two apart, and from then on the budget admits a request only while
//! what it granted in the last window, plus the request, stays within the capacity.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Grants of the last window: (when, cost), oldest first, and their sum. A grant counts
/// from when its answer came back (by then the server has counted it; it may have arrived
/// there well after it was granted), and until then as pending, which never leaves.
#[derive(Debug, Default)]
pub struct GrantLog {
    /// The answered grants still inside the window.
    grants: VecDeque<(Instant, u32)>,
    /// Their total cost.
    total: u64,
    /// Cost granted and not answered yet.
    pending: u64,
}

impl GrantLog {
    /// Forgets grants older than `window` at `now`.
    fn prune(&mut self, window: Duration, now: Instant) {
        while let Some(&(t, cost)) = self.grants.front() {
            if now.saturating_duration_since(t) < window {
                break;
            }
            self.grants.pop_front();
            self.total -= u64::from(cost);
        }
    }

    /// A grant of `cost` was made (pending until [`GrantLog::answered`]).
    pub fn granted(&mut self, cost: u32) {
        self.pending += u64::from(cost);
    }

    /// The answer to a grant of `cost` came back at `now`.
    pub fn answered(&mut self, cost: u32, window: Duration, now: Instant) {
        self.prune(window, now);
        self.pending = self.pending.saturating_sub(u64::from(cost));
        self.grants.push_back((now, cost));
        self.total += u64::from(cost);
    }

    /// Whether `cost` more fits in `capacity` per `window` at `now`, or how long until it
    /// does (the oldest grants leave the window).
    pub fn fits(
        &mut self,
        cost: u32,
        capacity: u64,
        window: Duration,
        now: Instant,
    ) -> Result<(), Duration> {
        self.prune(window, now);
        let cost = u64::from(cost).min(capacity.max(1));
        if self.total + self.pending + cost <= capacity {
            return Ok(());
        }
        let mut excess = self.total + self.pending + cost - capacity;
        for &(t, c) in &self.grants {
            let leaves = (t + window).saturating_duration_since(now);
            if u64::from(c) >= excess {
                return Err(leaves.max(Duration::from_micros(50)));
            }
            excess -= u64::from(c);
        }
        // Pending answers hold the rest: look again shortly.
        Err((window / 100).max(Duration::from_millis(1)))
    }

    /// Whether a 429's `Retry-After` shows a window rather than a token bucket: longer than
    /// a tenth of the window (a bucket's is at most `cost / r`).
    pub fn shows_a_window(retry_after: Option<Duration>, window: Duration) -> bool {
        retry_after.is_some_and(|d| d > window / 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_window_admits_again_as_the_oldest_grants_leave_it() {
        let w = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut log = GrantLog::default();
        for _ in 0..100 {
            log.granted(1);
            log.answered(1, w, t0);
        }
        log.granted(20);
        assert!(log.fits(10, 130, w, t0).is_ok(), "pending counts");
        assert!(log.fits(11, 130, w, t0).is_err(), "pending counts");
        log.answered(20, w, t0 + Duration::from_secs(4));
        // 120 granted: 10 more fit in 130, 11 do not until the first 100 leave at 10 s.
        let now = t0 + Duration::from_secs(5);
        assert!(log.fits(10, 130, w, now).is_ok());
        assert_eq!(log.fits(11, 130, w, now), Err(Duration::from_secs(5)));
        // After they left, only the 20 granted at 4 s remain until 14 s.
        let later = t0 + Duration::from_secs(10);
        assert!(log.fits(110, 130, w, later).is_ok());
        assert_eq!(log.fits(111, 130, w, later), Err(Duration::from_secs(4)));
    }

    #[test]
    fn retry_after_tells_a_window_from_a_bucket() {
        let w = Duration::from_secs(150);
        // A token bucket refilling 20/s: a batch of 20 waits at most 1 s.
        assert!(!GrantLog::shows_a_window(Some(Duration::from_secs(1)), w));
        assert!(GrantLog::shows_a_window(Some(Duration::from_secs(140)), w));
        assert!(!GrantLog::shows_a_window(None, w));
    }
}
