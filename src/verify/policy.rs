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
    /// The MFA reset's second stage and its actions.
    pub mfa: MfaPolicy,
}

/// The MFA reset (`Outcome::MfaReset`): who approves after the manager, how long they have,
/// and what the reset leaves the user with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfaPolicy {
    /// Object id of the IT/security group whose members approve stage 2 (read from the
    /// directory when stage 2 starts). Without one, an MFA reset escalates to a ticket.
    pub approver_group: Option<String>,
    /// How long stage 2 waits for a member's answer before it escalates to a ticket (and how
    /// long each member's links work).
    pub approval_timeout_secs: u64,
    /// The Temporary Access Pass's `lifetimeInMinutes` (Graph accepts 10 to 43200, within
    /// the tenant's TAP policy:
    /// <https://learn.microsoft.com/graph/api/authentication-post-temporaryaccesspassmethods>).
    pub tap_lifetime_minutes: u32,
    /// The pass works for one sign-in only (`isUsableOnce`).
    pub tap_usable_once: bool,
    /// Object id of the group a Conditional Access policy uses to let the user register new
    /// methods with the pass; the user is in it for `access_group_secs`. None: no group.
    pub access_group: Option<String>,
    /// How long the user stays in `access_group`.
    pub access_group_secs: u64,
}

impl Default for MfaPolicy {
    fn default() -> Self {
        MfaPolicy {
            approver_group: None,
            approval_timeout_secs: 3600,
            tap_lifetime_minutes: 60,
            tap_usable_once: true,
            access_group: None,
            access_group_secs: 8 * 3600,
        }
    }
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
            mfa: MfaPolicy::default(),
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
        let p: Policy = serde_json::from_str(
            r#"{"mfa": {"approver_group": "g-1", "tap_lifetime_minutes": 30}}"#,
        )
        .unwrap();
        assert_eq!(p.mfa.approver_group.as_deref(), Some("g-1"));
        assert_eq!(
            (p.mfa.tap_lifetime_minutes, p.mfa.approval_timeout_secs),
            (30, 3600)
        );
        assert!(serde_json::from_str::<Policy>(r#"{"mfa": {"tap_minutes": 1}}"#).is_err());
    }
}
