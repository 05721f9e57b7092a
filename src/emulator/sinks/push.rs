//! What the emulated push providers (Duo, Okta) answer: each user's answer is scripted
//! from the tenant seed and the UPN ([`scripted`]), so a run is reproducible and a test can
//! pick a user who approves, denies, lets the push time out or has no push device. Pushes
//! in flight are kept by transaction id ([`Pushes`]).
//!
//! Timing, as the providers document it: a push is "waiting" on its first poll and answered
//! on the next; a user who does not answer lets it expire after the provider's lifetime
//! (Duo 60 s, Okta 5 minutes), divided by the emulator's time scale.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// How a user answers a push on this emulated tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Script {
    /// Taps "approve" (65 % of users).
    Approve,
    /// Taps "deny" / "this wasn't me" (10 %).
    Deny,
    /// Never answers; the push expires (15 %).
    Timeout,
    /// Has no push-capable device (10 %).
    NotEnrolled,
}

/// The scripted answer of the user `upn` (case-insensitive) on a tenant seeded with `seed`.
pub fn scripted(seed: u64, upn: &str) -> Script {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(upn.to_lowercase().as_bytes());
    let digest = h.finalize();
    match u16::from_le_bytes([digest[0], digest[1]]) % 20 {
        0..=12 => Script::Approve,
        13..=14 => Script::Deny,
        15..=17 => Script::Timeout,
        _ => Script::NotEnrolled,
    }
}

/// One push in flight.
#[derive(Debug, Clone)]
pub(crate) struct Push {
    /// Whose device (the user's index in the tenant).
    pub user: u32,
    /// The scripted answer.
    pub script: Script,
    /// When it was sent.
    pub sent: Instant,
    /// How many times it was polled.
    pub polls: u32,
}

/// Where a push is when polled now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Waiting,
    Approved,
    Denied,
    Expired,
}

/// Pushes by transaction id.
#[derive(Debug, Default)]
pub struct Pushes {
    by_tx: Mutex<HashMap<String, Push>>,
}

impl Pushes {
    /// Keep a new push; its transaction id.
    pub(crate) fn start(&self, user: u32, script: Script) -> String {
        let tx = uuid::Uuid::new_v4().to_string();
        let push = Push {
            user,
            script,
            sent: Instant::now(),
            polls: 0,
        };
        let mut map = self.by_tx.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(tx.clone(), push);
        tx
    }

    /// Poll `tx`, whose lifetime is `lifetime`: `None` if unknown, else the user and the
    /// answer now.
    pub(crate) fn poll(&self, tx: &str, lifetime: Duration) -> Option<(u32, Answer)> {
        let mut map = self.by_tx.lock().unwrap_or_else(|e| e.into_inner());
        let push = map.get_mut(tx)?;
        push.polls += 1;
        let answer = match push.script {
            Script::Timeout | Script::NotEnrolled => {
                if push.sent.elapsed() >= lifetime {
                    Answer::Expired
                } else {
                    Answer::Waiting
                }
            }
            _ if push.polls < 2 => Answer::Waiting,
            Script::Approve => Answer::Approved,
            Script::Deny => Answer::Denied,
        };
        Some((push.user, answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_follow_the_seed_and_cover_every_answer() {
        assert_eq!(
            scripted(7, "Ann@contoso.com"),
            scripted(7, "ann@CONTOSO.com")
        );
        let all: Vec<Script> = (0..400)
            .map(|i| scripted(7, &format!("u{i}@contoso.com")))
            .collect();
        let count = |s: Script| all.iter().filter(|&&x| x == s).count();
        assert!(
            (220..300).contains(&count(Script::Approve)),
            "{}",
            count(Script::Approve)
        );
        for s in [Script::Deny, Script::Timeout, Script::NotEnrolled] {
            assert!(count(s) > 15, "{s:?}: {}", count(s));
        }
        let other: Vec<Script> = (0..400)
            .map(|i| scripted(8, &format!("u{i}@contoso.com")))
            .collect();
        assert_ne!(all, other);
    }

    #[test]
    fn an_answer_comes_on_the_second_poll_and_silence_expires() {
        let p = Pushes::default();
        let tx = p.start(3, Script::Deny);
        let life = Duration::from_secs(60);
        assert_eq!(p.poll(&tx, life), Some((3, Answer::Waiting)));
        assert_eq!(p.poll(&tx, life), Some((3, Answer::Denied)));
        let tx = p.start(4, Script::Timeout);
        assert_eq!(p.poll(&tx, life), Some((4, Answer::Waiting)));
        assert_eq!(p.poll(&tx, Duration::ZERO), Some((4, Answer::Expired)));
        assert_eq!(p.poll("nope", life), None);
    }
}
