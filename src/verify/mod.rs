//! The single-user verification flow: before the help desk resets one person's password,
//! prove the request is the person's own, so a caller cannot talk the help desk into
//! handing over someone else's account.
//!
//! | path | when | how |
//! |---|---|---|
//! | A | the user has their device | an MFA push to the user's authenticator |
//! | B | no device, the push timed out or could not be sent | the directory manager approves: a Teams card, then (no answer within the card timeout) an SMS to the manager's directory mobile with a signed one-time link |
//! | escalation | both fail, a denial, or a context that rules the automated paths out | a ticket for an L1 engineer to prove the identity by hand |
//!
//! An MFA reset ([`Outcome::MfaReset`]: the user's device is what is lost, so nothing is
//! pushed to it) takes two approvals: stage 1 the directory manager (implicit when the
//! manager is the requester; otherwise Path B's card and SMS), stage 2 a member of the
//! policy's IT approver group, each member with their own links, the first answer deciding;
//! the requester, the user and the stage-1 approver cannot be that member. Then the user's
//! methods are removed, a Temporary Access Pass goes to the requester and the manager only,
//! the user joins the temporary access group until its timer ends the membership, and the
//! security channel is told. A denial at either stage ends the request.
//!
//! The flow is a pure state machine ([`step`]): it reads a [`Flow`] (the request's facts and
//! its [`State`]), an [`Event`], the time and the [`Policy`], and returns the next flow and
//! the [`Action`]s the runtime must carry out (send a push, a card, an SMS; arm a timer; open
//! a ticket; reset; write an audit record). It does no I/O and reads no clock: timers are
//! data (a due time), so every path is tested with a fake clock. Everything is `serde` so a
//! request can be stored and resumed.
//!
//! - [`policy`]: timeouts, push limits, which contexts skip the automated paths.
//! - [`context`]: the facts the caller looks up before the flow starts.
//! - [`state`]: states, events, timers, approvers, reasons.
//! - [`action`]: what the runtime must do, and the audit record of every transition.
//! - [`machine`]: the transition function and its typed error.
//! - [`runtime`]: carries the flow out (push, card, SMS, timers, ticket, reset, trail),
//!   with an injected [`clock`].
//! - [`store`]: where requests, their timers and their unfinished actions are kept.
//! - [`token`]: the signed one-time tokens of the approve and deny links.

pub mod action;
pub mod clock;
pub mod context;
pub mod facts;
pub mod machine;
pub mod policy;
pub mod runtime;
pub mod state;
pub mod store;
pub mod token;

pub use action::{Action, AuditRecord, Channel};
pub use context::{Context, Manager, Person};
pub use machine::{Flow, StepError, step};
pub use policy::{MfaPolicy, Policy, SkipRules};
pub use state::{
    Approver, EscalationReason, Event, FirstStage, MfaStep, Outcome, PathBReason, PushAnswer,
    RefusalReason, State, StateName, Timer, Via,
};
