//! Throttle governor: run a tenant at Graph's quotas, never into them
//! (<https://learn.microsoft.com/graph/throttling-limits>).
//!
//! - [`quota`]: Graph's documented quotas, per-tenant overrides and `time_scale`, and the
//!   pacing math that keeps any window under its quota.
//! - [`governor`]: [`TenantGovernor`], budgets per (tenant, app, bucket) on the `governor`
//!   crate, the shared Retry-After gate, AIMD in-flight limits and credential-pool selection.
//! - [`backoff`]: Retry-After parsing and jittered exponential back-off.
//!
//! Invariant: every Graph request takes a [`Permit`] first (the graph client's `send()` is
//! the only caller), so no code path can bypass the budgets.

mod aimd;
pub mod backoff;
mod clock;
mod gate;
pub mod governor;
pub mod quota;

pub use backoff::{equal_jitter, full_jitter, parse_retry_after};
pub use clock::{TokioClock, TokioInstant};
pub use governor::{Bucket, Charge, Permit, TenantGovernor};
pub use quota::{Pacing, Quotas, Rate, pacing};
