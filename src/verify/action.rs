//! [`Action`]: what the runtime must do after a transition, and the [`AuditRecord`] every
//! transition yields. Destinations are in the actions (the runtime must reach them) but
//! only masked in audit records.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::context::Person;
use super::state::{EscalationReason, StateName, Timer, Via};
use crate::comms::message::Address;

/// One thing for the runtime to do, in order.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Send an MFA push to the user's registered authenticator.
    SendPush {
        /// The user.
        user: Person,
    },
    /// Post the approval card to the manager in Teams.
    SendManagerCard {
        /// The manager.
        manager: Person,
        /// The user the request is for.
        user: Person,
    },
    /// Text the manager's directory mobile a signed one-time approval link.
    SendManagerSms {
        /// The manager.
        manager: Person,
        /// The number (E.164, from the directory).
        mobile: String,
        /// The user the request is for.
        user: Person,
        /// When the link must stop working.
        link_expires: Timestamp,
    },
    /// Fire `timer` at `due` (as [`Event::TimerFired`](super::Event::TimerFired)).
    ArmTimer {
        /// Which.
        timer: Timer,
        /// When.
        due: Timestamp,
    },
    /// Stop waiting on `timer` (the flow moved on).
    DisarmTimer {
        /// Which.
        timer: Timer,
    },
    /// Open a ticket for an engineer to prove the identity by hand.
    OpenTicket {
        /// The user.
        user: Person,
        /// Why.
        reasons: Vec<EscalationReason>,
        /// Whether it looks like an attack (the ticket's priority).
        suspicious: bool,
    },
    /// Reset the user's password (the request is proven).
    ResetPassword {
        /// The user.
        user: Person,
        /// How the request was proven.
        via: Via,
    },
    /// MFA reset: read the approver group's members from the directory (answered with
    /// [`Event::ApproversFound`](super::Event::ApproversFound)).
    FindApprovers {
        /// The group's object id.
        group: String,
    },
    /// MFA reset: send one approver their own signed approve and deny links.
    SendApproverRequest {
        /// The approver (a member of the approver group).
        approver: Person,
        /// The user the request is for.
        user: Person,
        /// When the links stop working.
        expires: Timestamp,
    },
    /// MFA reset: delete every registered method of the user that Graph lets an app delete.
    RemoveMethods {
        /// The user.
        user: Person,
    },
    /// MFA reset: create a Temporary Access Pass and deliver it to `recipients` only (over
    /// their directory mail or mobile). The pass exists only in memory, while this runs.
    IssueTap {
        /// The user.
        user: Person,
        /// Who gets the pass: the requester and the manager.
        recipients: Vec<Person>,
        /// `lifetimeInMinutes`.
        lifetime_minutes: u32,
        /// `isUsableOnce`.
        usable_once: bool,
    },
    /// MFA reset: read whether the user is a direct member of the access group already.
    CheckGroup {
        /// The user.
        user: Person,
        /// The group.
        group: String,
    },
    /// MFA reset: add the user to the temporary access group.
    AddToGroup {
        /// The user.
        user: Person,
        /// The group.
        group: String,
    },
    /// MFA reset: end the temporary membership.
    RemoveFromGroup {
        /// The user.
        user: Person,
        /// The group.
        group: String,
    },
    /// Tell the requester how the request ended (`denied`, `completed`).
    TellRequester {
        /// The result, as messages name it.
        result: String,
    },
    /// MFA reset: tell the security channel what was done (never the pass).
    NotifySecurity {
        /// The user.
        user: Person,
    },
    /// Append this record to the audit trail.
    Audit(AuditRecord),
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::SendManagerSms {
                manager,
                mobile,
                link_expires,
                ..
            } => f
                .debug_struct("SendManagerSms")
                .field("manager", &manager.upn)
                .field("mobile", &mask_phone(mobile))
                .field("link_expires", link_expires)
                .finish_non_exhaustive(),
            Action::SendPush { user } => write!(f, "SendPush({})", user.upn),
            Action::SendManagerCard { manager, .. } => {
                write!(f, "SendManagerCard({})", manager.upn)
            }
            Action::ArmTimer { timer, due } => write!(f, "ArmTimer({timer:?} at {due})"),
            Action::DisarmTimer { timer } => write!(f, "DisarmTimer({timer:?})"),
            Action::OpenTicket {
                reasons,
                suspicious,
                ..
            } => write!(f, "OpenTicket({reasons:?}, suspicious: {suspicious})"),
            Action::ResetPassword { via, .. } => write!(f, "ResetPassword({via:?})"),
            Action::FindApprovers { group } => write!(f, "FindApprovers({group})"),
            Action::SendApproverRequest { approver, .. } => {
                write!(f, "SendApproverRequest({})", approver.upn)
            }
            Action::RemoveMethods { user } => write!(f, "RemoveMethods({})", user.upn),
            Action::IssueTap { recipients, .. } => {
                let to: Vec<&str> = recipients.iter().map(|p| p.upn.as_str()).collect();
                write!(f, "IssueTap(to {to:?})")
            }
            Action::CheckGroup { group, .. } => write!(f, "CheckGroup({group})"),
            Action::AddToGroup { group, .. } => write!(f, "AddToGroup({group})"),
            Action::RemoveFromGroup { group, .. } => write!(f, "RemoveFromGroup({group})"),
            Action::TellRequester { result } => write!(f, "TellRequester({result})"),
            Action::NotifySecurity { user } => write!(f, "NotifySecurity({})", user.upn),
            Action::Audit(r) => write!(f, "Audit({r:?})"),
        }
    }
}

/// The channel a transition used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// MFA push.
    Push,
    /// Teams card.
    Teams,
    /// SMS with a link.
    Sms,
    /// Manual proofing ticket.
    Ticket,
    /// The MFA reset's approver group (mail or card per member).
    Approvers,
    /// A directory write (methods, pass, group).
    Directory,
}

/// The audit record of one transition: when, from which state to which, on what event,
/// over which channel to which (masked) destination, why, and for an approval who answered
/// from where. Never a token, a password or an unmasked number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The request's id.
    pub request: String,
    /// When.
    pub at: Timestamp,
    /// The event that caused the transition.
    pub event: String,
    /// The state before.
    pub from: StateName,
    /// The state after.
    pub to: StateName,
    /// The channel used, if any.
    pub channel: Option<Channel>,
    /// The destination, masked (`j***@contoso.com`, `+14*******123`).
    pub destination: Option<String>,
    /// Why (snake_case reasons, comma-separated), if the transition has one.
    pub reason: Option<String>,
    /// Whether this transition marks the request suspicious.
    pub suspicious: bool,
    /// The approver's object id, for approvals.
    pub approver_id: Option<String>,
    /// The approver's IP address, for approvals.
    pub approver_ip: Option<String>,
    /// The approver's `User-Agent`, for approvals.
    pub approver_user_agent: Option<String>,
    /// The id of the token used, for approvals (never the token).
    pub token_id: Option<String>,
}

/// An email address masked for the trail.
pub(crate) fn mask_email(mail: &str) -> String {
    Address::Email(mail.to_string()).masked()
}

/// A phone number masked for the trail.
pub(crate) fn mask_phone(number: &str) -> String {
    Address::Phone(number.to_string()).masked()
}
