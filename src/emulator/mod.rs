//! The emulated tenant: a Graph v1.0-compatible HTTP server on loopback for demos, tabletop
//! exercises and tests.
//!
//! Start it with [`RunningEmulator::start`]; [`ConnectionInfo`] says where the Graph root
//! (`graph_url`, ending in `/v1.0`) and the v2.0 token endpoint (`token_url`) are, and which
//! app registrations may call it. It shares no wire types with the `graph` client: every JSON
//! shape here is written from Graph's documentation (<https://learn.microsoft.com/graph/>)
//! and its v1.0 metadata (CSDL, `https://graph.microsoft.com/v1.0/$metadata`).
//!
//! Code map:
//! - [`model`]: the tenant in compact form; the "who can reset whose password" table.
//! - [`seed`]: the deterministic synthetic tenant; [`tenant_file`]: tenants from YAML/JSON.
//! - [`odata`]: `$filter`/`$select`/`$top`/`$count` and opaque `$skiptoken`s.
//! - [`throttle`]: Graph's token buckets (RU, writes, tenant, Identity Protection, Outlook).
//! - [`faults`]: latency and fault injection. [`errors`]: Graph error bodies.
//! - [`body`]: request bodies: declared properties beside OData instance annotations.
//! - `render`: entity JSON. `routes/`: handlers by area. `server`: accept loop, shutdown.
//! - [`staging`]: what a tabletop exercise puts in the tenant before it plans (a user of a
//!   kind, made a group member or risky).
//! - [`sinks`]: the message providers (Twilio, ACS SMS, Teams Workflows, a webhook) beside
//!   Graph's sendMail (JSON and MIME, `mime`); [`outbox`]: what they all received
//!   (`/_emulator/outbox`); [`channels`]: their endpoints and credentials in
//!   [`ConnectionInfo`], and the `channels:` configuration that points at them.
//!
//! Choices worth knowing:
//! - Every app registration is granted the application permissions README.md lists as
//!   required ([`permissions::DEFAULT`]) unless a tenant file says otherwise; tokens carry
//!   them in their `roles` claim, and group membership writes check them as Graph does
//!   (a role-assignable group also needs `RoleManagement.ReadWrite.Directory`).
//! - Every app registration holds the **User Administrator** role unless a tenant file says
//!   otherwise: a mass reset of ordinary users passes, while admins and members of
//!   role-assignable groups answer 403 `Authorization_RequestDenied`, as Graph does for an
//!   app granted the least role Graph's documentation names. Give an app `Privileged Authentication
//!   Administrator` in a tenant file to reach everyone.
//! - `--time-scale K` divides every throttling window, every `Retry-After`, the token
//!   lifetime and the added latency by K.
//! - Writes hit by an injected `504` or `reset` fault are applied first (see [`faults`]).
//! - An injected `403` denies a directory write without applying it: a permission or
//!   Conditional Access change mid-run, for rehearsing a run going bad (see [`faults`]).
//! - Throttling is a set of token buckets; throttled calls are charged too (see [`throttle`]).
//! - Where Graph's documentation leaves a detail open, the emulator picks the strict reading:
//!   role gating also applies to `revokeSignInSessions` and to authentication-method writes;
//!   a password complexity failure is `400 Request_BadRequest`; a `PATCH` with a
//!   `passwordProfile` but no password answers 204 and changes nothing.
//! - `$orderby` and `$search` are refused (400 `Request_UnsupportedQuery`) rather than
//!   silently ignored; `$expand` is served for `manager` (users) and `principal` (roles).
//! - Timestamps are whole seconds (`2024-05-01T10:00:00Z`), as Graph returns them: a client
//!   reading its own write back compares at second precision.

pub mod body;
pub mod channels;
pub mod errors;
pub mod faults;
pub mod model;
pub mod odata;
pub mod outbox;
pub mod permissions;
pub mod seed;
pub mod sinks;
pub mod staging;
pub mod tenant_file;
pub mod throttle;

mod auth;
mod mime;
mod registration;
mod render;
mod routes;
mod server;
mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use self::render::USER_PROPERTIES;

use self::channels::ChannelInfo;
use self::faults::FaultSpec;
use self::state::Emu;
use self::tenant_file::TenantFile;

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// The tenant file could not be read or describes an impossible tenant.
    #[error("tenant file {}: {message}", path.display())]
    TenantFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The `--faults` specification is malformed.
    #[error("invalid --faults: {0}")]
    Faults(String),
    /// A setting is out of range.
    #[error("invalid emulator setting: {0}")]
    Config(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Everything that shapes an emulated tenant. Build it with [`EmulatorConfig::seeded`] or
/// [`EmulatorConfig::from_tenant_file`], then adjust the public fields.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Number of seeded users (10 to 1,000,000), besides the shared mailbox notices are sent
    /// from; ignored with a tenant file.
    pub users: u32,
    /// Seed of the synthetic tenant (and of generated ids, secrets, fault draws).
    pub seed: u64,
    /// A tenant described in a file instead of the seeded one.
    pub tenant_file: Option<PathBuf>,
    /// The parsed tenant file (filled by [`EmulatorConfig::from_tenant_file`]).
    tenant_spec: Option<TenantFile>,
    /// Number of app registrations when the tenant file lists none (or for seeded tenants).
    pub apps: u32,
    /// Fraction of seeded users without a mobile phone.
    pub missing_mobile: f64,
    /// Mean added latency per request (ms, jitter ±50 %), before the time scale.
    pub latency_ms: u64,
    /// Injected faults.
    pub faults: FaultSpec,
    /// Divide every window, Retry-After, token lifetime and latency by this.
    pub time_scale: f64,
    /// Enforce Graph's throttling limits.
    pub throttle: bool,
    /// Meter `/users/{id}/authentication/*` at this many requests per 10 s per app+tenant
    /// (the reports limit is 5; whether it applies to method CRUD is unconfirmed: off by default).
    pub auth_methods_per_10s: Option<u32>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig::seeded(1000, 1)
    }
}

impl EmulatorConfig {
    /// A seeded tenant of `users` users.
    pub fn seeded(users: u32, seed: u64) -> Self {
        EmulatorConfig {
            users,
            seed,
            tenant_file: None,
            tenant_spec: None,
            apps: 1,
            missing_mobile: 0.05,
            latency_ms: 0,
            faults: FaultSpec::default(),
            time_scale: 1.0,
            throttle: true,
            auth_methods_per_10s: None,
        }
    }

    /// A tenant described by a YAML or JSON file (read and checked now).
    pub fn from_tenant_file(path: impl AsRef<Path>) -> Result<Self, EmulatorError> {
        let path = path.as_ref();
        let spec = TenantFile::load(path)?;
        Ok(EmulatorConfig {
            tenant_file: Some(path.to_path_buf()),
            tenant_spec: Some(spec),
            ..EmulatorConfig::seeded(10, 1)
        })
    }

    /// Set the faults from a `503=0.02,504=0.01,reset=0.005,403=0.1` specification.
    pub fn with_faults(mut self, spec: &str) -> Result<Self, EmulatorError> {
        self.faults = FaultSpec::parse(spec)?;
        Ok(self)
    }

    fn validate(&self) -> Result<(), EmulatorError> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(EmulatorError::Config(
                "--time-scale must be a positive number".into(),
            ));
        }
        if self.tenant_file.is_none() && !(10..=1_000_000).contains(&self.users) {
            return Err(EmulatorError::Config(
                "--users must be between 10 and 1,000,000".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.missing_mobile) {
            return Err(EmulatorError::Config(
                "--missing-mobile must be between 0 and 1".into(),
            ));
        }
        if !(1..=100).contains(&self.apps) {
            return Err(EmulatorError::Config(
                "--apps must be between 1 and 100".into(),
            ));
        }
        Ok(())
    }

    /// Build the tenant this configuration describes.
    fn build_tenant(&self) -> Result<model::Tenant, EmulatorError> {
        let mut tenant = match (&self.tenant_spec, &self.tenant_file) {
            (Some(spec), Some(path)) => spec.build(self.seed, path)?,
            (None, Some(path)) => TenantFile::load(path)?.build(self.seed, path)?,
            _ => seed::generate(&seed::SeedSpec {
                seed: self.seed,
                users: self.users,
                missing_mobile: self.missing_mobile,
                apps: self.apps,
            }),
        };
        if tenant.apps.is_empty() {
            use rand::SeedableRng;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ 0xa995);
            tenant.apps = seed::apps(&mut rng, self.apps);
        }
        Ok(tenant)
    }
}

/// Credentials of one app registration, for clients of the emulator.
#[derive(Clone, Serialize)]
pub struct AppCredentials {
    /// Application (client) id.
    pub client_id: String,
    /// Client secret: a test credential valid only against this emulator.
    pub client_secret: String,
    /// Display name.
    pub display_name: String,
    /// Directory role template id the app holds.
    pub role: String,
    /// Granted application permissions (what its tokens' `roles` claim lists).
    pub permissions: Vec<String>,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("role", &self.role)
            .field("permissions", &self.permissions)
            .finish()
    }
}

/// How to reach a running emulator; `resetctl emulator` prints it as its first line.
#[derive(Clone, Serialize)]
pub struct ConnectionInfo {
    /// Graph root, ending in `/v1.0`.
    pub graph_url: String,
    /// The v2.0 token endpoint of the tenant.
    pub token_url: String,
    /// Tenant id.
    pub tenant_id: String,
    /// The first app's client id.
    pub client_id: String,
    /// The first app's client secret (emulator-only test credential).
    pub client_secret: String,
    /// Every app registration.
    pub apps: Vec<AppCredentials>,
    /// Number of user objects.
    pub users: usize,
    /// The time scale in force.
    pub time_scale: f64,
    /// The size class that sets the tenant's read quota: `small` (< 50 users), `medium`
    /// (50 to 500) or `large` (`tenant_size` in `resetctl.yaml`).
    pub tenant_size: &'static str,
    /// The verified domain of the tenant's UPNs.
    pub verified_domain: String,
    /// Inspection API root (`/_emulator`).
    pub inspect_url: String,
    /// The message sinks: sender mailbox, Twilio, ACS, Teams workflow, webhook, audiences.
    pub channels: ChannelInfo,
}

impl std::fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("graph_url", &self.graph_url)
            .field("token_url", &self.token_url)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("apps", &self.apps)
            .field("users", &self.users)
            .field("time_scale", &self.time_scale)
            .field("channels", &self.channels)
            .finish()
    }
}

/// A started emulator: serving until [`RunningEmulator::shutdown`] (or until dropped, which
/// also stops the accept loop).
pub struct RunningEmulator {
    info: ConnectionInfo,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    state: Arc<Emu>,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("info", &self.info)
            .finish()
    }
}

impl RunningEmulator {
    /// Build the tenant, bind `bind` (port 0 picks one) and serve in the background.
    pub async fn start(
        config: EmulatorConfig,
        bind: SocketAddr,
    ) -> Result<RunningEmulator, EmulatorError> {
        config.validate()?;
        let tenant = tokio::task::spawn_blocking({
            let config = config.clone();
            move || config.build_tenant()
        })
        .await
        .map_err(|e| EmulatorError::Config(format!("building the tenant failed: {e}")))??;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|source| EmulatorError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr: bind, source })?;
        let base = format!("http://{addr}");
        let tenant_id = tenant.tenant_id.to_string();
        let info = ConnectionInfo {
            graph_url: format!("{base}/v1.0"),
            token_url: format!("{base}/{tenant_id}/oauth2/v2.0/token"),
            tenant_id: tenant_id.clone(),
            client_id: tenant.apps[0].client_id.to_string(),
            client_secret: tenant.apps[0].secret.clone(),
            apps: tenant
                .apps
                .iter()
                .map(|a| AppCredentials {
                    client_id: a.client_id.to_string(),
                    client_secret: a.secret.clone(),
                    display_name: a.display_name.clone(),
                    role: a.role.to_string(),
                    permissions: a.permissions.clone(),
                })
                .collect(),
            users: tenant.users.len(),
            time_scale: config.time_scale,
            tenant_size: match tenant.size_class() {
                model::SizeClass::Small => "small",
                model::SizeClass::Medium => "medium",
                model::SizeClass::Large => "large",
            },
            verified_domain: tenant.verified_domain.clone(),
            inspect_url: format!("{base}/_emulator"),
            channels: ChannelInfo::new(
                &base,
                &tenant,
                &sinks::SinkCredentials::generate(config.seed),
            ),
        };
        let state = Arc::new(Emu::new(tenant, &config, &base));
        let (stop, stopped) = oneshot::channel();
        let router = routes::router(state.clone());
        let task = tokio::spawn(server::serve(listener, router, stopped));
        tracing::info!(
            message = "Emulated tenant listening.",
            graph_url = %info.graph_url,
            users = info.users,
            apps = info.apps.len(),
            time_scale = info.time_scale
        );
        Ok(RunningEmulator {
            info,
            stop: Some(stop),
            task,
            state,
        })
    }

    /// Where and how to connect.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Number of write attempts recorded so far (what `/_emulator/writes` lists).
    pub fn write_count(&self) -> usize {
        self.state.write_count()
    }

    /// Stop accepting, let in-flight requests finish (up to 2 s), and return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
