//! The shared per-bucket "not before" gate: after a 429 nobody in the bucket sends until the
//! Retry-After has passed.

use std::sync::Mutex;

use tokio::time::Instant;

/// A moment before which no request of a bucket may start. Only ever moves forward.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// `None` when open.
    not_before: Mutex<Option<Instant>>,
}

impl Gate {
    /// Closes the gate until `until` (keeps a later existing deadline).
    pub(crate) fn close_until(&self, until: Instant) {
        let mut nb = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        if nb.is_none_or(|current| current < until) {
            *nb = Some(until);
        }
    }

    /// The current deadline, if it is in the future.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let nb = *self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        nb.filter(|t| *t > Instant::now())
    }

    /// Waits until the gate is open (re-checking, since it may move while we sleep).
    pub(crate) async fn wait(&self) {
        while let Some(t) = self.deadline() {
            tokio::time::sleep_until(t).await;
        }
    }
}
