//! `AuditConfig`: where the trail lives, when it rotates, and where its HMAC key comes from.
//! Embedded by the configuration file's `audit:` section; the key is never written inline.

use std::path::PathBuf;

use serde::Deserialize;

use super::chain::Key;
use super::error::AuditError;

/// Default rotation size: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Smallest accepted rotation size (a record must fit in a file with room to spare).
pub const MIN_MAX_FILE_BYTES: u64 = 1024;

/// The `audit:` section of `resetctl.yaml`:
///
/// ```yaml
/// audit:
///   path: /var/lib/resetctl/audit.jsonl
///   max_file_bytes: 67108864          # optional, default 64 MiB
///   key_file: /etc/resetctl/audit.key # optional: hex HMAC key (or key_env: VAR), never inline
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The live trail file; rotated files and the head sit beside it.
    pub path: PathBuf,
    /// Size after which the live file is rotated.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// File holding the HMAC key in hexadecimal (keyed mode).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the HMAC key in hexadecimal (keyed mode).
    #[serde(default)]
    pub key_env: Option<String>,
}

fn default_max_file_bytes() -> u64 {
    DEFAULT_MAX_FILE_BYTES
}

impl AuditConfig {
    /// A plain (unkeyed) trail at `path` with the default rotation size.
    pub fn new(path: impl Into<PathBuf>) -> AuditConfig {
        AuditConfig {
            path: path.into(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            key_file: None,
            key_env: None,
        }
    }

    /// Check values that serde cannot (ranges, exclusive keys).
    pub fn validate(&self) -> Result<(), AuditError> {
        if self.max_file_bytes < MIN_MAX_FILE_BYTES {
            return Err(AuditError::Config(format!(
                "max_file_bytes must be at least {MIN_MAX_FILE_BYTES} (got {})",
                self.max_file_bytes
            )));
        }
        if self.key_file.is_some() && self.key_env.is_some() {
            return Err(AuditError::Config(
                "give the key through key_file or key_env, not both".into(),
            ));
        }
        if self.path.file_name().is_none() {
            return Err(AuditError::Config(format!(
                "path {} does not name a file",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Load the HMAC key, if one is configured, reading variables from the process environment.
    pub fn load_key(&self) -> Result<Option<Key>, AuditError> {
        self.load_key_with(|name| std::env::var(name).ok())
    }

    /// Load the HMAC key with `env` standing for the environment (tests pass a map).
    pub fn load_key_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Key>, AuditError> {
        self.validate()?;
        if let Some(file) = &self.key_file {
            return Key::from_file(file).map(Some);
        }
        if let Some(var) = &self.key_env {
            let text = env(var)
                .ok_or_else(|| AuditError::Key(format!("environment variable {var} is not set")))?;
            return Key::from_hex(&text).map(Some).map_err(|e| match e {
                AuditError::Key(reason) => AuditError::Key(format!("{var}: {reason}")),
                other => other,
            });
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_from_yaml_with_defaults() {
        let c: AuditConfig = serde_saphyr::from_str("path: /tmp/a.jsonl\n").unwrap();
        assert_eq!(c, AuditConfig::new("/tmp/a.jsonl"));
        let c: AuditConfig =
            serde_saphyr::from_str("path: a.jsonl\nmax_file_bytes: 4096\nkey_env: AUDIT_KEY\n")
                .unwrap();
        assert_eq!(c.max_file_bytes, 4096);
        assert_eq!(c.key_env.as_deref(), Some("AUDIT_KEY"));
    }

    #[test]
    fn an_inline_key_is_not_accepted() {
        let err = serde_saphyr::from_str::<AuditConfig>("path: a.jsonl\nkey: 00ff\n").unwrap_err();
        assert!(err.to_string().contains("key"), "{err}");
    }

    #[test]
    fn keys_load_from_env_or_file_and_errors_never_show_them() {
        let mut c = AuditConfig::new("a.jsonl");
        assert!(c.load_key().unwrap().is_none());
        c.key_env = Some("K".into());
        let hex = "1f".repeat(32);
        let key = c
            .load_key_with(|n| (n == "K").then(|| hex.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(key.id(), Key::from_hex(&hex).unwrap().id());
        assert!(matches!(c.load_key_with(|_| None), Err(AuditError::Key(_))));
        let short = c.load_key_with(|_| Some("abcdef".into())).unwrap_err();
        assert!(!short.to_string().contains("abcdef"), "{short}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        std::fs::write(&file, format!("{hex}\n")).unwrap();
        c.key_env = None;
        c.key_file = Some(file);
        assert!(c.load_key().unwrap().is_some());
        c.key_env = Some("K".into());
        assert!(matches!(c.load_key(), Err(AuditError::Config(_))));
    }

    #[test]
    fn tiny_rotation_sizes_are_refused() {
        let mut c = AuditConfig::new("a.jsonl");
        c.max_file_bytes = 10;
        assert!(matches!(c.validate(), Err(AuditError::Config(_))));
    }
}
