//! Throttle governor: run a tenant at Graph's quotas, never into them
//! (<https://learn.microsoft.com/graph/throttling-limits>).
//!
//! - [`quota`]: Graph's documented quotas, per-tenant overrides and `time_scale`.
//! - [`bucket`]: each limit as the token bucket Graph meters it with, and the estimate of its
//!   level from this runner's own writes, 429s and `x-ms-throttle-limit-percentage`.
//! - [`governor`]: [`TenantGovernor`], a bucket estimate per (tenant, app, limit), the shared
//!   Retry-After gate and credential-pool selection.
//! - `inflight`: the in-flight limit of a bucket: what its budget and Graph's latency need
//!   (Little's law), capped by AIMD on 429s.
//! - `window`: the grants of each budget's last window, and the sliding-window rule a
//!   budget falls back to when a server's `Retry-After` shows it counts one.
//! - [`backoff`]: Retry-After parsing and jittered exponential back-off.
//!
//! Invariant: every Graph request takes a [`Permit`] first (the graph client's `send()` is
//! the only caller), so no code path can bypass the budgets.

pub mod backoff;
pub mod bucket;
mod clock;
mod gate;
pub mod governor;
mod inflight;
pub mod quota;
mod window;

pub use backoff::{equal_jitter, full_jitter, parse_retry_after};
pub use bucket::TokenBucket;
pub use clock::{TokioClock, TokioInstant};
pub use governor::{Bucket, Charge, Permit, TenantGovernor};
pub use quota::{Quotas, Rate};
