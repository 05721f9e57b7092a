//! The states and events of a verification request. Each state holds exactly what its
//! next transitions need (the armed timer's due time, why Path B started), so a stored
//! request resumes without anything else.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a request is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Made; no check has run yet.
    Requested,
    /// Path A: a push went to the user's authenticator; the push timer is armed.
    PushSent {
        /// When the push went out.
        sent_at: Timestamp,
        /// When Path B starts if the user has not answered.
        due: Timestamp,
    },
    /// Path B: a Teams card asks the manager; the card timer is armed.
    ManagerCardSent {
        /// Why the flow is on Path B.
        reason: PathBReason,
        /// When the card went out.
        sent_at: Timestamp,
        /// When the SMS goes out if the manager has not answered.
        due: Timestamp,
    },
    /// Path B: the manager was also texted a one-time link (the card still counts).
    ManagerSmsSent {
        /// Why the flow is on Path B.
        reason: PathBReason,
        /// When the SMS went out.
        sent_at: Timestamp,
        /// When the link expires and the request escalates.
        due: Timestamp,
    },
    /// Proven: the runtime may reset the password now.
    Verified {
        /// How.
        via: Via,
        /// When.
        at: Timestamp,
    },
    /// The password was reset. Final.
    Completed {
        /// How the request was proven.
        via: Via,
        /// When the reset was reported done.
        at: Timestamp,
    },
    /// Handed to an engineer for manual identity proofing. Final.
    Escalated {
        /// Why.
        reasons: Vec<EscalationReason>,
        /// Whether the evidence suggests an attack (a denied push or a manager's no).
        suspicious: bool,
        /// When.
        at: Timestamp,
    },
    /// Refused outright; nothing is sent and no ticket opened. Final.
    Refused {
        /// Why.
        reason: RefusalReason,
        /// When.
        at: Timestamp,
    },
}

/// A state's name, for errors and audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    /// [`State::Requested`].
    Requested,
    /// [`State::PushSent`].
    PushSent,
    /// [`State::ManagerCardSent`].
    ManagerCardSent,
    /// [`State::ManagerSmsSent`].
    ManagerSmsSent,
    /// [`State::Verified`].
    Verified,
    /// [`State::Completed`].
    Completed,
    /// [`State::Escalated`].
    Escalated,
    /// [`State::Refused`].
    Refused,
}

impl State {
    /// This state's name.
    pub fn name(&self) -> StateName {
        match self {
            State::Requested => StateName::Requested,
            State::PushSent { .. } => StateName::PushSent,
            State::ManagerCardSent { .. } => StateName::ManagerCardSent,
            State::ManagerSmsSent { .. } => StateName::ManagerSmsSent,
            State::Verified { .. } => StateName::Verified,
            State::Completed { .. } => StateName::Completed,
            State::Escalated { .. } => StateName::Escalated,
            State::Refused { .. } => StateName::Refused,
        }
    }

    /// Whether no event can move the request any more.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            State::Completed { .. } | State::Escalated { .. } | State::Refused { .. }
        )
    }
}

impl std::fmt::Display for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

/// What happened, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Run the context checks and pick a path.
    Start,
    /// The push provider's final answer.
    PushAnswered {
        /// The answer.
        answer: PushAnswer,
    },
    /// The push could not be sent (not enrolled after all, provider down): go to Path B.
    PushUnavailable {
        /// What the provider said, without secrets.
        detail: String,
    },
    /// An armed timer is due.
    TimerFired {
        /// Which.
        timer: Timer,
    },
    /// The manager answered the Teams card.
    CardAnswered {
        /// Approve (true) or deny.
        approve: bool,
        /// Who answered, from where.
        approver: Approver,
    },
    /// The SMS's one-time link was used (its signature and single use already checked).
    LinkUsed {
        /// Approve (true) or deny.
        approve: bool,
        /// Who used it, from where.
        approver: Approver,
    },
    /// The runtime reset the password.
    ResetDone,
    /// The reset failed (the verification stands, but an engineer must finish).
    ResetFailed {
        /// The failure, without secrets.
        detail: String,
    },
}

impl Event {
    /// This event's name, for errors and audit records.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::PushAnswered { .. } => "push_answered",
            Event::PushUnavailable { .. } => "push_unavailable",
            Event::TimerFired { .. } => "timer_fired",
            Event::CardAnswered { .. } => "card_answered",
            Event::LinkUsed { .. } => "link_used",
            Event::ResetDone => "reset_done",
            Event::ResetFailed { .. } => "reset_failed",
        }
    }
}

/// A push's final answer (a provider's "waiting" is not an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushAnswer {
    /// The user approved.
    Approved,
    /// The user denied ("this wasn't me").
    Denied,
    /// The provider gave up waiting.
    TimedOut,
}

/// The timers the flow arms. A timer is data: the runtime fires it at its due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    /// No answer to the push.
    Push,
    /// No answer to the manager's card: send the SMS.
    Card,
    /// The SMS link expired.
    Link,
}

/// Who answered an approval and from where (for the audit record). The token's id, never
/// the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    /// The approver's directory object id (Teams' `from.aadObjectId`, or the link's
    /// recipient once signed in).
    pub id: String,
    /// The client's IP address.
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The id of the one-time token or card action used.
    pub token_id: Option<String>,
}

/// How a request was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The user approved a push.
    Push,
    /// The manager approved the Teams card.
    ManagerCard,
    /// The manager approved through the SMS link.
    ManagerLink,
}

/// Why the flow went to Path B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathBReason {
    /// The requester said the user has no device.
    DeviceUnavailable,
    /// The user has no push-capable authenticator.
    NotEnrolled,
    /// The push was not answered in time.
    PushTimedOut,
    /// The push could not be sent.
    PushUnavailable,
}

/// Why a request went to an engineer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// The user holds a critical role: never reset by this flow.
    CriticalRole,
    /// The user is rated high risk.
    HighRisk,
    /// The user is in an unfinished mass-reset run.
    OpenMassReset,
    /// Another request for the user was made within the repeat window.
    RecentRequest,
    /// The user denied the push: possibly an attacker's request.
    PushDenied,
    /// Path A did not verify the user and the requester asked for the push only (no
    /// manager approval).
    PushOnly,
    /// Path B was needed and the user has no manager in the directory.
    NoManager,
    /// The card went unanswered and the manager has no mobile in the directory.
    NoManagerMobile,
    /// The manager denied.
    ManagerDenied,
    /// Neither the card nor the link was answered in time.
    ManagerNoAnswer,
    /// The reset itself failed after verification.
    ResetFailed,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The user already had the policy's maximum of pushes in the window.
    PushLimit,
    /// The user denied too many pushes recently.
    LockedOut,
    /// The manager is the one who asked.
    ManagerIsRequester,
    /// The manager is the user (a directory loop).
    ManagerIsUser,
}
