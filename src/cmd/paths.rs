//! Where resetctl keeps its state when the configuration does not say: the run store and
//! the audit trail under the user's data directory.
//!
//! `RESETCTL_DATA_DIR` wins (tests, containers); then `$XDG_DATA_HOME/resetctl`; then
//! `$HOME/.local/share/resetctl`.

use std::path::PathBuf;

use super::{Exit, Failure};

/// The data directory (not created here: see [`create_data_dir`]).
pub fn data_dir() -> Result<PathBuf, Failure> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("RESETCTL_DATA_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = var("XDG_DATA_HOME") {
        return Ok(dir.join("resetctl"));
    }
    if let Some(home) = var("HOME") {
        return Ok(home.join(".local/share/resetctl"));
    }
    Err(Failure::new(
        Exit::Config,
        "cannot find a data directory: set RESETCTL_DATA_DIR or HOME, or pass --store",
    ))
}

/// Create the data directory and its missing parents, owner-only (0700 on Unix): it holds
/// the run store, the audit trail and the run folders. One that exists is left as it is.
pub fn create_data_dir() -> Result<PathBuf, Failure> {
    let dir = data_dir()?;
    resetctl::files::create_dir_owner_only(&dir).map_err(|e| {
        Failure::new(
            Exit::Config,
            format!("cannot create the data directory {}: {e}", dir.display()),
        )
    })?;
    Ok(dir)
}

/// The run store: `--store` if given, else `<data dir>/runs.sqlite`.
pub fn store_path(explicit: Option<PathBuf>) -> Result<PathBuf, Failure> {
    match explicit {
        Some(path) => Ok(path),
        None => Ok(data_dir()?.join("runs.sqlite")),
    }
}

/// The audit trail: `<data dir>/audit.jsonl` (the configuration's `audit:` section, once read,
/// takes precedence).
pub fn audit_path() -> Result<PathBuf, Failure> {
    Ok(data_dir()?.join("audit.jsonl"))
}
