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
    /// MFA reset, stage 2: the approver group's members are being read from the directory
    /// (stage 1, the manager's approval, is done).
    ApproversPending {
        /// Who approved stage 1, and how.
        first: FirstStage,
        /// When stage 1 was approved.
        at: Timestamp,
    },
    /// MFA reset, stage 2: each eligible member of the approver group was sent their own
    /// approve and deny links; the first answer decides. The approvers timer is armed.
    ApproversAsked {
        /// Who approved stage 1, and how.
        first: FirstStage,
        /// The members who may answer (the group read at the time, without the requester,
        /// the user and the stage-1 approver).
        approvers: Vec<super::context::Person>,
        /// When the requests went out.
        sent_at: Timestamp,
        /// When the request escalates if nobody has answered.
        due: Timestamp,
    },
    /// MFA reset approved by both stages: the runtime is carrying out `step`.
    MfaResetting {
        /// The step under way.
        step: MfaStep,
        /// The stage-2 approver's object id.
        approved_by: String,
        /// When the step started.
        at: Timestamp,
    },
    /// MFA reset done; the user is in the temporary access group until `until` (the access
    /// group timer is armed), then removed unless they were a member before.
    AccessGroupHeld {
        /// The group (from the policy at the time).
        group: String,
        /// When the membership ends.
        until: Timestamp,
        /// The user was a direct member before this request added them: not removed then.
        member_before: bool,
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
    /// An approver said no (MFA reset): the request ends, the requester is told. Final.
    Denied {
        /// The stage that denied (1: the manager, 2: the approver group).
        stage: u8,
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
    /// [`State::ApproversPending`].
    ApproversPending,
    /// [`State::ApproversAsked`].
    ApproversAsked,
    /// [`State::MfaResetting`].
    MfaResetting,
    /// [`State::AccessGroupHeld`].
    AccessGroupHeld,
    /// [`State::Denied`].
    Denied,
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
            State::ApproversPending { .. } => StateName::ApproversPending,
            State::ApproversAsked { .. } => StateName::ApproversAsked,
            State::MfaResetting { .. } => StateName::MfaResetting,
            State::AccessGroupHeld { .. } => StateName::AccessGroupHeld,
            State::Denied { .. } => StateName::Denied,
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
            State::Completed { .. }
                | State::Escalated { .. }
                | State::Refused { .. }
                | State::Denied { .. }
        )
    }
}

impl std::fmt::Display for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&snake_name(self))
    }
}

/// The snake_case name a unit variant serialises to (`push_denied`): the one name the trail,
/// the messages and the command line use for states, reasons and channels.
pub fn snake_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
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
    /// MFA reset: the approver group's members, read from the directory now.
    ApproversFound {
        /// The group's members (transitive, users only).
        members: Vec<super::context::Person>,
    },
    /// MFA reset: the approver group could not be read.
    ApproversUnavailable {
        /// The failure, without secrets.
        detail: String,
    },
    /// MFA reset: the user's methods were removed (all Graph lets an app delete).
    MethodsRemoved {
        /// How many were deleted by this request.
        removed: u32,
        /// The kinds left in place because Graph cannot delete them (`password`, unknown
        /// types).
        kept: Vec<String>,
    },
    /// MFA reset: a Temporary Access Pass was created and delivered (never the pass here).
    TapIssued {
        /// How many of the recipients it reached.
        delivered: u32,
    },
    /// MFA reset: the temporary access group was read before the add.
    GroupChecked {
        /// The user is already a direct member (so is neither added nor removed).
        member_before: bool,
    },
    /// MFA reset: the user was added to the temporary access group.
    GroupAdded,
    /// MFA reset: the temporary membership ended (removed, or found already gone).
    GroupRemoved,
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
            Event::ApproversFound { .. } => "approvers_found",
            Event::ApproversUnavailable { .. } => "approvers_unavailable",
            Event::MethodsRemoved { .. } => "methods_removed",
            Event::TapIssued { .. } => "tap_issued",
            Event::GroupChecked { .. } => "group_checked",
            Event::GroupAdded => "group_added",
            Event::GroupRemoved => "group_removed",
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
    /// MFA reset: no member of the approver group answered in time.
    Approvers,
    /// MFA reset: the temporary access group membership ends.
    AccessGroup,
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
    /// MFA reset, stage 1: the requester is the user's directory manager (implicit).
    RequesterIsManager,
    /// MFA reset, stage 2: a member of the approver group approved.
    ApproverGroup,
}

/// What a request wants done once it is approved. Stored with the request (a row written
/// before this existed reads as a password reset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Force a password change with MFA at the next sign-in (the single-stage flow).
    #[default]
    PasswordReset,
    /// Remove the user's sign-in methods and issue a Temporary Access Pass, after the
    /// manager and then the approver group approved.
    MfaReset,
}

impl Outcome {
    /// The name messages and the trail use (`password_reset`, `mfa_reset`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::PasswordReset => "password_reset",
            Outcome::MfaReset => "mfa_reset",
        }
    }
}

/// Stage 1 of an MFA reset: who approved it and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstStage {
    /// The approver's object id (the manager).
    pub by: String,
    /// How: the card, the link, or implicitly as the requester.
    pub via: Via,
}

/// The steps of an approved MFA reset, in order; each is its own saved action, so a crash
/// resumes at the step it stopped in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaStep {
    /// Delete the user's registered methods.
    Methods,
    /// Create the Temporary Access Pass and deliver it to the requester and the manager.
    Tap,
    /// Read whether the user is in the temporary access group already.
    AccessGroupCheck,
    /// Add the user to the temporary access group.
    AccessGroup,
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
    /// An MFA reset's stage 1: the manager approves (nothing is pushed to the device being
    /// reset).
    MfaStageOne,
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
    /// MFA reset: no approver group is configured, it could not be read, or no member may
    /// approve (all are the requester, the user or the stage-1 approver).
    NoApprovers,
    /// MFA reset: no member of the approver group answered in time.
    ApproversNoAnswer,
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
