//! What a command that touches runs needs, made once per process: the configuration (read
//! once, validated whole), the run store and the audit trail opened from it, and the run
//! lifecycle over both.

use std::path::PathBuf;
use std::sync::Arc;

use resetctl::audit::AuditHandle;
use resetctl::config::{Config, Env};
use resetctl::engine::lifecycle::Lifecycle;
use resetctl::store::SqliteStore;

use super::tenant::{self, Tenant};
use super::{Failure, paths};
use crate::cli::GlobalArgs;

/// The audit actor of commands run from the command line.
pub const ACTOR: &str = "resetctl";

/// One command's configuration and environment.
pub struct Context {
    /// Where environment variables come from.
    pub env: Env,
    /// `resetctl.yaml` (or an empty configuration when none is named).
    pub config: Config,
}

impl Context {
    /// Read and validate the configuration `--config` / `RESETCTL_CONFIG` names.
    pub fn load(global: &GlobalArgs) -> Result<Context, Failure> {
        let env = Env::Process;
        let config = Config::load_or_default(global.config.as_deref(), &env)?;
        Ok(Context { env, config })
    }

    /// Open the audit trail the configuration's `audit:` section describes (by default
    /// `<data dir>/audit.jsonl`, unkeyed).
    pub async fn open_audit(&self) -> Result<AuditHandle, Failure> {
        let config = self.config.audit_config(paths::audit_path()?);
        Ok(AuditHandle::open(&config).await?)
    }

    /// Open the run store: `--store`, else the data directory's.
    pub fn open_store(&self, explicit: Option<PathBuf>) -> Result<SqliteStore, Failure> {
        Ok(SqliteStore::open(&paths::store_path(explicit)?)?)
    }

    /// The run lifecycle over the store and the trail.
    pub async fn lifecycle(
        &self,
        store: Option<PathBuf>,
    ) -> Result<Lifecycle<SqliteStore>, Failure> {
        let store = Arc::new(self.open_store(store)?);
        let audit = self.open_audit().await?;
        Ok(Lifecycle::new(
            store,
            audit,
            ACTOR,
            paths::data_dir()?.join("runs"),
        ))
    }

    /// Connect to `--tenant` (see [`tenant::connect`]).
    pub async fn connect(&self, requested: Option<&str>) -> Result<Tenant, Failure> {
        tenant::connect(&self.config, &self.env, requested).await
    }
}
