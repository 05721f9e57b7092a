//! The mass-reset engine: plan, gate, execute per-user pipelines, resume.
//!
//! - [`plan`]: the plan model operators approve, and its hash.
//! - [`planner`]: resolve, partition and decide each user's steps (read-only).
//! - [`gate`]: guards and approvals that stand between a plan and `--execute`.
//! - [`lifecycle`]: a run from plan to end or resume: the one path every front end takes.
//! - [`execute`]: per-user pipelines under the throttle, journaled, with a circuit breaker;
//!   the same code resumes a dead run.
//! - `admit`: how many users' pipelines a run keeps going (what the tenant's write budget
//!   and Graph's latency need) and the playbook's writes per second.
//! - [`breaker`]: the circuit breaker's rolling failure rate.
//! - [`refusal`]: the stop for writes refused wholesale (a missing permission or role).
//! - [`permissions`]: which Graph permissions and directory role each step needs.
//! - [`preflight`]: tokens, permissions, role and Graph checked before anything is written.
//! - [`read_back`]: what the tenant says about a write whose answer was lost.
//! - [`journal_key`]: journal keys as types (`index:name`, removal attempts).
//! - [`trail`]: directory values escaped for the audit trail.
//! - [`confirm`]: `confirm_compromised` batched across users (1 request/s per tenant).
//! - [`expire`]: ending temporary group memberships (`resetctl runs expire`).
//! - [`notify`]: the notify step's plug point for the communications module, and the
//!   hand-off of temporary passwords and Temporary Access Passes to it.
//! - [`password`]: the generated passwords.
//! - [`operator`]: operator names as identities (normalised, compared, printed safely).
//!
//! Invariant: nothing is written unless `--execute` was given and the gate passed.
//! Invariant: each (run, user, step) is journaled before its call and its outcome
//! after; a journaled step whose outcome is unknown is resolved by reading the tenant back,
//! never by repeating the call blindly.

mod admit;
pub mod breaker;
pub mod confirm;
pub mod execute;
pub mod expire;
pub mod gate;
pub mod journal_key;
pub mod lifecycle;
pub mod notify;
pub mod operator;
pub mod password;
pub mod permissions;
pub mod plan;
pub mod planner;
pub mod preflight;
pub mod read_back;
pub mod recovery;
pub mod refusal;
pub mod ticket;
pub mod trail;

use crate::audit::AuditError;
use crate::store::StoreError;
use crate::targeting::ResolveError;

/// Why the engine could not do its job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Targets could not be resolved (bad CSV, Graph read failed).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit trail failed; the engine stops rather than act unrecorded.
    #[error("audit trail: {0}")]
    Audit(#[from] AuditError),
    /// The stored plan cannot be read back.
    #[error("run {run}: stored plan is unreadable: {message}")]
    CorruptPlan {
        /// The run.
        run: String,
        /// What failed.
        message: String,
    },
}
