//! What a command that touches runs needs, made once per process: the configuration (read
//! once, validated whole), the operator acting, the run store and the audit trail opened
//! from the configuration, and the run lifecycle over both.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use resetctl::audit::{AuditConfig, AuditHandle};
use resetctl::config::{Config, Env};
use resetctl::engine::lifecycle::{Lifecycle, Trail};
use resetctl::engine::operator::{Operator, OperatorName};
use resetctl::store::SqliteStore;

use super::tenant::{self, Tenant};
use super::{Exit, Failure, paths};
use crate::cli::GlobalArgs;

/// The configuration file read when none is named.
const DEFAULT_CONFIG: &str = "resetctl.yaml";

/// One command's configuration, environment and operator.
pub struct Context {
    /// Where environment variables come from.
    pub env: Env,
    /// `resetctl.yaml` (or an empty configuration when there is none).
    pub config: Config,
    /// Who is acting: `--operator`, the configuration's `operator`, else the OS user@host.
    pub operator: Operator,
}

impl Context {
    /// Read and validate the configuration `--config` / `RESETCTL_CONFIG` names, else
    /// `./resetctl.yaml` when it exists; settle who the operator is.
    pub fn load(global: &GlobalArgs) -> Result<Context, Failure> {
        let env = Env::Process;
        let path = global.config.clone().or_else(|| {
            let local = Path::new(DEFAULT_CONFIG);
            local.is_file().then(|| local.to_path_buf())
        });
        let config = Config::load_or_default(path.as_deref(), &env)?;
        let origin = format!("cli {}", os_identity());
        let raw = global
            .operator
            .clone()
            .or_else(|| config.operator.clone())
            .unwrap_or_else(os_identity);
        let name = OperatorName::parse(&raw)
            .map_err(|e| Failure::new(Exit::Invalid, format!("operator: {e}")))?;
        Ok(Context {
            env,
            config,
            operator: Operator::new(name, &origin),
        })
    }

    /// Open the audit trail the configuration's `audit:` section describes (by default
    /// `<data dir>/audit.jsonl`, unkeyed), with `store` as its witness.
    pub async fn open_trail(&self, store: &SqliteStore) -> Result<Trail, Failure> {
        let config = self.trail_config()?;
        if config.path == paths::audit_path()? {
            // The data directory may not exist yet (a first run with `--store` elsewhere).
            // A trail the configuration names must be where it says: never created here.
            paths::create_data_dir()?;
        }
        let witness = store.audit_witness(&config.path)?;
        let handle = AuditHandle::open_witnessed(&config, Arc::new(witness)).await?;
        Ok(Trail { handle, config })
    }

    /// The trail the configuration's `audit:` section describes (by default
    /// `<data dir>/audit.jsonl`, unkeyed).
    pub fn trail_config(&self) -> Result<AuditConfig, Failure> {
        Ok(self.config.audit_config(paths::audit_path()?))
    }

    /// Open the run store: `--store`, else the data directory's.
    pub fn open_store(&self, explicit: Option<PathBuf>) -> Result<SqliteStore, Failure> {
        Ok(SqliteStore::open(&paths::store_path(explicit)?)?)
    }

    /// The run lifecycle over the store and the trail, acting as this context's operator.
    pub async fn lifecycle(
        &self,
        store: Option<PathBuf>,
    ) -> Result<Lifecycle<SqliteStore>, Failure> {
        let store = Arc::new(self.open_store(store)?);
        let trail = self.open_trail(&store).await?;
        Ok(Lifecycle::new(
            store,
            trail,
            self.operator.clone(),
            paths::data_dir()?.join("runs"),
        ))
    }

    /// Connect to `--tenant` for a command that may write: an unnamed tenant is never the
    /// demo tenant (see [`tenant::connect`]).
    pub async fn connect(&self, requested: Option<&str>) -> Result<Tenant, Failure> {
        tenant::connect(&self.config, &self.env, requested, false).await
    }

    /// Connect to `--tenant` for a command that writes nothing (plan, dry run): with nothing
    /// configured, the demo tenant.
    pub async fn connect_read_only(&self, requested: Option<&str>) -> Result<Tenant, Failure> {
        tenant::connect(&self.config, &self.env, requested, true).await
    }
}

/// `user@host` of this process: `$USER` (or `$LOGNAME`, else the uid) and the host name.
fn os_identity() -> String {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let user = var("USER").or_else(|| var("LOGNAME")).unwrap_or_else(uid);
    let host = host_name().unwrap_or_else(|| "unknown-host".into());
    format!("{user}@{host}")
}

/// This machine's name: the kernel's, else `$HOSTNAME` or `$COMPUTERNAME`.
pub fn host_name() -> Option<String> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| var("HOSTNAME"))
        .or_else(|| var("COMPUTERNAME"))
}

/// The process's uid as `uid N` (no libc call: the owner of `/proc/self`).
#[cfg(unix)]
fn uid() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map_or_else(|_| "unknown-user".into(), |m| format!("uid {}", m.uid()))
}

/// No uid off Unix.
#[cfg(not(unix))]
fn uid() -> String {
    "unknown-user".into()
}
