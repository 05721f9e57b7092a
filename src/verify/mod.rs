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
pub use policy::{Policy, SkipRules};
pub use state::{
    Approver, EscalationReason, Event, PathBReason, PushAnswer, RefusalReason, State, StateName,
    Timer, Via,
};
