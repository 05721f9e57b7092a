//! [`Policy`]: the inert configuration of the verification flow. It decides nothing by
//! itself; [`step`](super::step) reads it.

use serde::{Deserialize, Serialize};

/// Timeouts and limits of the flow, in seconds so the file form is plain numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// How long a push may wait for the user's answer before Path B starts. Duo and Okta
    /// themselves give up on a push after about a minute; the runtime's own deadline is this.
    pub push_timeout_secs: u64,
    /// How long the manager's Teams card may wait before the SMS goes out (5 minutes).
    pub card_timeout_secs: u64,
    /// How long the SMS's one-time link stays valid; after it, the request escalates.
    pub link_ttl_secs: u64,
    /// At most this many pushes to one user within `push_window_secs` (push-fatigue
    /// attacks send push after push until the user taps "approve" to make them stop).
    pub max_pushes: u32,
    /// The window `max_pushes` counts in.
    pub push_window_secs: u64,
    /// After this many denied pushes within `lockout_secs`, the flow refuses the user.
    pub lockout_after_denials: u32,
    /// How long denials count towards the lockout (and so how long it lasts).
    pub lockout_secs: u64,
    /// Another request for the same user within this many seconds skips the automated paths.
    pub repeat_window_secs: u64,
    /// Which contexts skip the automated paths (the holder of a critical role always does).
    pub skip: SkipRules,
}

/// Contexts in which no push or manager approval is enough, and an engineer must prove
/// the identity by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SkipRules {
    /// The user is rated high risk by Identity Protection.
    pub high_risk: bool,
    /// The user is a target of a mass-reset run that is not finished.
    pub open_mass_reset: bool,
    /// Another request for the user was made within `repeat_window_secs`.
    pub recent_request: bool,
}

impl Default for SkipRules {
    fn default() -> Self {
        SkipRules {
            high_risk: true,
            open_mass_reset: true,
            recent_request: true,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            push_timeout_secs: 120,
            card_timeout_secs: 300,
            link_ttl_secs: 900,
            max_pushes: 3,
            push_window_secs: 3600,
            lockout_after_denials: 2,
            lockout_secs: 3600,
            repeat_window_secs: 3600,
            skip: SkipRules::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_a_file_may_set_some() {
        let p = Policy::default();
        assert_eq!((p.card_timeout_secs, p.max_pushes), (300, 3));
        let p: Policy = serde_json::from_str(r#"{"card_timeout_secs": 120}"#).unwrap();
        assert_eq!(p.card_timeout_secs, 120);
        assert_eq!(p.push_window_secs, 3600);
        assert!(serde_json::from_str::<Policy>(r#"{"card_timeout": 1}"#).is_err());
    }
}
