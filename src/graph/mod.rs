//! Microsoft Graph HTTP client: app-only tokens, requests under the throttle, paging,
//! `$batch` and typed errors.
//!
//! - [`auth`]: client-credentials tokens (secret or certificate assertion), cached and
//!   refreshed early, one refresh at a time.
//! - [`client`]: [`GraphClient`] and its single `send()` choke point (auth, throttle permit,
//!   retries, typed errors, a tracing span per request).
//! - [`request`]: [`Request`] built from path templates, [`Response`].
//! - [`paging`]: collections as a `Stream` following `@odata.nextLink`.
//! - [`batch`]: `$batch` with per-item retries of throttled items only.
//! - [`claims`]: what an access token says about its app (granted permissions), unverified.
//! - [`error`]: [`GraphError`] with a `#[non_exhaustive]` [`GraphErrorKind`].
//! - [`transport`]: a request with no answer described by host and cause (refused, DNS,
//!   TLS, timeout).
//!
//! This module shares no wire types with the emulator, so a wrong JSON shape cannot hide by
//! being wrong on both sides: the shapes here are written from Graph's documentation alone.
//!
//! Invariant: tokens, client secrets, assertions and request bodies never reach a log line,
//! an error or `Debug` output (`secrecy` types and hand-written `Debug`).

pub mod auth;
pub mod batch;
pub mod claims;
pub mod client;
pub mod error;
pub mod paging;
pub mod request;
pub mod transport;

pub use auth::{AppCredential, CertificateCredential, ClientAuth, TokenSource};
pub use batch::{BatchItem, BatchOutcome};
pub use claims::AccessClaims;
pub use client::{AppStats, ClientOptions, ClientStats, GraphClient, http_client};
pub use error::{GraphError, GraphErrorKind};
pub use paging::MAX_PAGE_SIZE;
pub use request::{Request, Response};
