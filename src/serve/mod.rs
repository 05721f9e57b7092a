//! `resetctl serve`'s library: the web side of the verification flow.
//!
//! - The manager's approve and deny links (`/approve/{request}/{token}`,
//!   `/deny/{request}/{token}`): a `GET` shows the request and one button and never uses
//!   the token (link previewers fetch links); the button's `POST`, CSRF-checked, redeems
//!   the token and applies the answer to the request's tenant runtime ([`links`]).
//! - The request API for portals (`POST /v1/requests`, `GET /v1/requests/{id}`), behind a
//!   bearer token or an HMAC-signed body ([`auth`]).
//! - `GET /healthz` (liveness), `GET /readyz` (the store and every tenant answer,
//!   [`ready`]), `GET /metrics` (Prometheus text format, [`metrics`]).
//! - Around every request: an access log event, a per-client rate limit ([`limits`]), a
//!   deadline, a body limit ([`body`]: an oversized body is read to its end, within a bound,
//!   before the `413`, so the client sees the answer and not a reset).
//! - At accept: a cap on open connections per client address and in all ([`connections`]).
//! - In the background, per tenant: the actions a crash left undone, then the timer loop.
//!
//! [`Server::bind`] takes inert [`ServeOptions`] and the live [`ServeContext`];
//! [`Bound::serve`] runs until its shutdown future resolves and then drains.

mod api;
mod app;
pub mod auth;
mod body;
pub mod connections;
pub mod csrf;
pub mod limits;
mod links;
pub mod load;
pub mod metrics;
pub mod options;
pub mod pages;
mod ready;
mod server;
pub mod telemetry;
pub mod tls;
pub mod triggers;

pub use auth::{ApiCredentials, BearerHash, HmacKey};
pub use connections::ConnectionLimits;
pub use limits::{Limit, RateLimits};
pub use metrics::MetricsAccess;
pub use options::{ServeContext, ServeOptions, TlsFiles};
pub use server::{Bound, ServeError, Server};
pub use telemetry::Telemetry;
