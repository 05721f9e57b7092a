//! [`ServeOptions`]: what the approval server is told by its operator (inert data: nothing
//! here opens a socket or reads a file), and [`ServeContext`]: the live handles it serves.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditHandle;
use crate::verify::clock::Clock;
use crate::verify::runtime::Runtime;
use crate::verify::store::RequestStore;
use crate::verify::token::Tokens;

use super::auth::ApiCredentials;
use super::connections::ConnectionLimits;
use super::limits::RateLimits;
use super::metrics::MetricsAccess;

/// The PEM files of the server's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (`CERTIFICATE` blocks).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1 PEM block).
    pub key: PathBuf,
}

/// How `resetctl serve` listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The socket address to listen on.
    pub listen: SocketAddr,
    /// TLS identity; without it the listener must be loopback (a TLS-terminating proxy in
    /// front), because approval links and API credentials must never cross a network in
    /// clear text.
    pub tls: Option<TlsFiles>,
    /// Where approvers reach the server (`https://approve.example`): the origin a form post
    /// must come from, and whether the CSRF cookie can be `__Host-` (https only).
    pub public_base_url: String,
    /// Largest request body accepted (413 beyond).
    pub body_limit: usize,
    /// Longest a request may take before the server answers 503.
    pub request_timeout: Duration,
    /// Longest a graceful shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// How often each tenant's due timers are looked for.
    pub timer_tick: Duration,
    /// Who may call `/v1/`.
    pub api: ApiCredentials,
    /// Per-client rate limits by route class.
    pub rate_limits: RateLimits,
    /// Caps on open connections, per client and in all.
    pub connections: ConnectionLimits,
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
    /// The run store's SQLite file, read (read-only) for `/metrics`; none leaves the run
    /// store's families out.
    pub run_store: Option<PathBuf>,
    /// How long a `/readyz` answer is reused before the store and tenants are probed again.
    pub ready_ttl: Duration,
}

impl ServeOptions {
    /// Options with the defaults for everything but the address, the public URL and the API
    /// credentials: 64 KiB bodies, 30 s per request, 10 s drain, timers looked at every 5 s,
    /// the default rate limits and connection caps, `/metrics` behind the API's bearer tokens, readiness
    /// re-probed at most every 5 s.
    pub fn new(listen: SocketAddr, public_base_url: &str, api: ApiCredentials) -> ServeOptions {
        ServeOptions {
            listen,
            tls: None,
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            timer_tick: Duration::from_secs(5),
            api,
            rate_limits: RateLimits::default(),
            connections: ConnectionLimits::default(),
            metrics: MetricsAccess::default(),
            run_store: None,
            ready_ttl: Duration::from_secs(5),
        }
    }
}

/// The handles the server works with. An MSP serves many customer tenants from one
/// server: one [`Runtime`] per tenant (configuration name), one token and request store.
#[derive(Clone)]
pub struct ServeContext {
    /// The verification runtime of each tenant, by configuration name.
    pub runtimes: BTreeMap<String, Runtime>,
    /// The approval tokens (the same key and store as the runtimes' link minter).
    pub tokens: Tokens,
    /// Where the runtimes keep requests (read for the pages and `GET /v1/requests/{id}`).
    pub requests: Arc<dyn RequestStore>,
    /// The trail refused links are recorded in.
    pub audit: AuditHandle,
    /// The time, as the runtimes read it.
    pub clock: Arc<dyn Clock>,
    /// Turns SOC incidents into plans (`None`: `/v1/triggers/*` answers 404).
    pub triggers: Option<Arc<dyn super::triggers::TriggerPlanner>>,
}

impl std::fmt::Debug for ServeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeContext")
            .field("tenants", &self.runtimes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
