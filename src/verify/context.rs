//! [`Context`]: what the caller looked up about a request before the flow starts (the
//! directory, Identity Protection, the run store). The machine trusts these facts and
//! looks nothing up itself.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A directory person: object id and UPN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Entra object id (compared to tell people apart).
    pub id: String,
    /// User principal name (shown masked in the audit trail).
    pub upn: String,
}

/// The user's directory manager and the mobile number the directory holds for them (never
/// a number given by the caller: that is the point of Path B).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    /// The manager.
    pub person: Person,
    /// The manager's mobile in E.164, from the directory, if any.
    pub mobile: Option<String>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("person", &self.person)
            .field(
                "mobile",
                &self.mobile.as_deref().map(super::action::mask_phone),
            )
            .finish()
    }
}

/// Facts about one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Whose password would be reset.
    pub user: Person,
    /// Who asked (the help-desk caller's claimed identity or the portal's signed-in user).
    pub requester: Person,
    /// The user's directory manager.
    pub manager: Option<Manager>,
    /// The user has a push-capable authenticator registered.
    pub push_enrolled: bool,
    /// The requester says the user has their device (false: lost or unavailable).
    pub device_available: bool,
    /// Whether manager approval may follow a push that did not verify the user (false: the
    /// requester asked for the push only, and a failed push escalates).
    #[serde(default = "yes")]
    pub manager_fallback: bool,
    /// Identity Protection rates the user high risk.
    pub high_risk: bool,
    /// The user is a target of an unfinished mass-reset run.
    pub in_open_mass_reset: bool,
    /// The user holds a critical directory role (active, eligible or through a group).
    pub critical_role: bool,
    /// When the previous request for this user was made, if any.
    pub previous_request_at: Option<Timestamp>,
    /// When pushes were sent to this user by earlier requests (the store's record).
    pub recent_pushes: Vec<Timestamp>,
    /// When this user denied pushes ("this wasn't me").
    pub recent_denials: Vec<Timestamp>,
}

fn yes() -> bool {
    true
}
