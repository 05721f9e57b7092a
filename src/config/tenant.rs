//! Validated configuration: [`Config`] (the file) and [`TenantSettings`] (one tenant, from the
//! file or from the Azure SDK environment variables).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::channels::{Audience, ChannelsSection, audiences_from_raw};
use super::cloud::Cloud;
use super::push::PushSettings;
use super::raw::{RawApp, RawAudit, RawConfig, RawTenant};
use super::serve::ServeSection;
use super::tickets::TicketsConfig;
use super::{ConfigError, ConfigErrorKind, QuotaOverrides};
use crate::audit::AuditConfig;

/// Graph's public-cloud base URL (with version), the default `graph_url`.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";
/// The public-cloud authority host, the default for building `token_url`.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Where environment variables come from: the process, or a fixed map (tests, and callers
/// that must not read the process environment).
#[derive(Clone, Default)]
pub enum Env {
    /// `std::env::var`.
    #[default]
    Process,
    /// A fixed set of variables.
    Map(BTreeMap<String, String>),
}

impl Env {
    /// The value of `name`, if set and valid UTF-8.
    pub fn var(&self, name: &str) -> Option<String> {
        match self {
            Env::Process => std::env::var(name).ok(),
            Env::Map(map) => map.get(name).cloned(),
        }
    }

    /// A map-backed environment from pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl std::fmt::Debug for Env {
    // Values may be secrets: show only which variables exist.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Env::Process => f.write_str("Env::Process"),
            Env::Map(map) => f
                .debug_tuple("Env::Map")
                .field(&map.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// Certificate-assertion signing algorithm. Entra's current documentation uses PS256; RS256
/// is kept selectable for older registrations and emulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PSS with SHA-256 (default).
    #[default]
    #[serde(rename = "PS256")]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[serde(rename = "RS256")]
    Rs256,
}

/// Tenant size class, which sets the read (resource unit) quota: Graph's S < 50 users,
/// M 50-500, L > 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantSize {
    /// 3,500 RU / 10 s (the conservative default).
    #[default]
    Small,
    /// 5,000 RU / 10 s.
    Medium,
    /// 8,000 RU / 10 s.
    Large,
}

/// Where one app's secret comes from. Holds names and paths only, never secret values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Client secret in this environment variable.
    SecretEnv(String),
    /// Client secret in this file.
    SecretFile(PathBuf),
    /// Certificate assertion: certificate PEM, key PEM (same file when `None`), algorithm.
    Certificate {
        /// PEM with the certificate (and the key when `private_key_file` is `None`).
        certificate_file: PathBuf,
        /// PEM with the private key, when separate.
        private_key_file: Option<PathBuf>,
        /// Signing algorithm of the assertion.
        alg: SigningAlg,
    },
}

/// One app registration of a tenant's credential pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// Application (client) id.
    pub client_id: String,
    /// Where its secret comes from.
    pub credential: CredentialSource,
}

/// Everything needed to talk to one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSettings {
    /// The name used with `--tenant`.
    pub name: String,
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Graph base URL including version, without trailing slash.
    pub graph_url: String,
    /// OAuth2 v2.0 token endpoint.
    pub token_url: String,
    /// OAuth scope requested (`{graph origin}/.default` unless configured).
    pub scope: String,
    /// The credential pool (at least one app).
    pub apps: Vec<AppSpec>,
    /// Accounts resetctl itself runs as; the engine never writes to them.
    pub runner_accounts: Vec<String>,
    /// Quota windows are divided by this (emulated tenants run faster than real time).
    pub time_scale: f64,
    /// Read budget class.
    pub tenant_size: TenantSize,
    /// Throttle overrides.
    pub quotas: QuotaOverrides,
    /// Per-request timeout in seconds.
    pub request_timeout_secs: f64,
}

/// The parsed and validated `resetctl.yaml`.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The operator's name (`operator:`), when configured.
    pub operator: Option<String>,
    /// Tenants by name.
    pub tenants: BTreeMap<String, TenantSettings>,
    /// The `audit:` section, validated; [`Config::audit_config`] turns it into the trail's
    /// settings.
    pub audit: AuditSection,
    /// The `channels:` section: the configured senders (none when absent).
    pub channels: ChannelsSection,
    /// The `audiences:` section: who receives run-level messages, by name.
    pub audiences: BTreeMap<String, Audience>,
    /// The `tickets:` section: the ticket systems escalations go to (none when absent).
    pub tickets: TicketsConfig,
    /// The file it came from, for diagnostics.
    pub source: Option<PathBuf>,
    /// `organisation:`: what messages call the organisation, when configured.
    pub organisation: Option<crate::comms::context::Organisation>,
    /// `templates:`: the template override directory, resolved against the file's directory.
    pub templates: Option<PathBuf>,
    /// `push:`: the single-user flow's push provider, when configured.
    pub push: Option<PushSettings>,
    /// `triggers:`: which playbook an incident starts, in order.
    pub triggers: Vec<super::triggers::TriggerRule>,
    /// `forward:`: live audit sinks by name.
    pub forward: BTreeMap<String, super::forward::ForwardSink>,
    /// `serve:`: the approval server, when configured.
    pub serve: Option<ServeSection>,
    /// `verify:`: the single-user flow's timeouts and limits (the defaults when absent).
    pub verify: crate::verify::Policy,
}

impl Config {
    /// Reads (at most [`crate::files::MAX_CONFIG_BYTES`]) and validates a file. Errors carry
    /// `file:line:col`. `env` supplies `AZURE_TENANT_ID` for a tenant that omits `tenant_id`.
    pub fn load(path: &Path, env: &Env) -> Result<Self, ConfigError> {
        let text = crate::files::read_to_string_bounded(path, crate::files::MAX_CONFIG_BYTES)
            .map_err(|e| {
                ConfigError::new(
                    ConfigErrorKind::Io,
                    format!("cannot read configuration: {e}"),
                )
                .at(Some(path.to_path_buf()), None)
            })?;
        Self::parse(&text, Some(path), env)
    }

    /// The configuration named by `--config` / `RESETCTL_CONFIG` (the CLI passes its
    /// `Option<PathBuf>`), or an empty one when none is named: tenants then come from the
    /// Azure SDK environment variables, or the built-in `demo` tenant.
    pub fn load_or_default(path: Option<&Path>, env: &Env) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::load(p, env),
            None => Ok(Config::default()),
        }
    }

    /// Parses and validates YAML text; `path` is used for diagnostics and to resolve relative
    /// credential file paths (relative to the file's directory).
    pub fn parse(text: &str, path: Option<&Path>, env: &Env) -> Result<Self, ConfigError> {
        let file = path.map(Path::to_path_buf);
        let raw: RawConfig = serde_saphyr::from_str(text)
            .map_err(|e| ConfigError::yaml(&e).at(file.clone(), None))?;
        let base_dir = path.and_then(Path::parent).map(Path::to_path_buf);
        let push = match raw.push {
            Some(section) => Some(
                PushSettings::from_raw(section.value, &section.referenced, base_dir.as_deref())
                    .map_err(|e| e.at(file.clone(), Some(position(&section.referenced))))?,
            ),
            None => None,
        };
        let forward = super::forward::from_raw(raw.forward, base_dir.as_deref())
            .map_err(|e| e.at(file.clone(), None))?;
        let triggers = super::triggers::from_raw(raw.triggers, base_dir.as_deref())
            .map_err(|e| e.at(file.clone(), None))?;
        let serve = match raw.serve {
            Some(section) => {
                let at = position(&section.referenced);
                Some(
                    ServeSection::from_raw(section, base_dir.as_deref())
                        .map_err(|e| e.at(file.clone(), Some(at)))?,
                )
            }
            None => None,
        };
        let channels = match raw.channels {
            Some(section) => ChannelsSection::from_raw(section.value, base_dir.as_deref())
                .map_err(|e| e.at(file.clone(), Some(position(&section.referenced))))?,
            None => ChannelsSection::default(),
        };
        let tickets = match raw.tickets {
            Some(section) => {
                TicketsConfig::from_raw(section.value, &section.referenced, base_dir.as_deref())
                    .map_err(|e| e.at(file.clone(), None))?
            }
            None => TicketsConfig::default(),
        };
        let audiences = audiences_from_raw(raw.audiences.unwrap_or_default(), &channels)
            .map_err(|e| e.at(file.clone(), None))?;
        let audit = match raw.audit {
            Some(section) => {
                let at = position(&section.referenced);
                AuditSection::from_raw(section.value, base_dir.as_deref())
                    .map_err(|e| e.at(file.clone(), Some(at)))?
            }
            None => AuditSection::default(),
        };
        let organisation = match raw.organisation {
            Some(section) => {
                let at = position(&section.referenced);
                Some(
                    organisation_from_raw(section.value)
                        .map_err(|e| e.at(file.clone(), Some(at)))?,
                )
            }
            None => None,
        };
        let templates = raw.templates.map(|dir| match &base_dir {
            Some(base) if dir.is_relative() => base.join(dir),
            _ => dir,
        });
        let mut tenants = BTreeMap::new();
        for (name, tenant) in raw.tenants {
            let settings = tenant_from_raw(&name, tenant, base_dir.as_deref(), env)
                .map_err(|e| e.at(file.clone(), None))?;
            tenants.insert(name, settings);
        }
        Ok(Config {
            operator: raw.operator,
            tenants,
            audit,
            channels,
            audiences,
            tickets,
            source: file,
            organisation,
            templates,
            push,
            serve,
            forward,
            triggers,
            verify: raw.verify.unwrap_or_default(),
        })
    }

    /// The settings of tenant `name`: from the file when it names it, otherwise from the
    /// Azure SDK environment variables when `name` is their `AZURE_TENANT_ID`. Any other
    /// name is unknown (a typo never becomes a tenant), and the error lists the known ones.
    pub fn tenant(&self, name: &str, env: &Env) -> Result<TenantSettings, ConfigError> {
        if let Some(t) = self.tenants.get(name) {
            return Ok(t.clone());
        }
        if env.var("AZURE_TENANT_ID").as_deref() == Some(name)
            && let Some(settings) = TenantSettings::from_azure_env(name, env)?
        {
            return Ok(settings);
        }
        Err(self.unknown_tenant(name, env))
    }

    /// The names of every configured tenant: the file's, then the Azure SDK variables'
    /// (named by its `AZURE_TENANT_ID`) when they are complete.
    pub fn tenant_names(&self, env: &Env) -> Vec<String> {
        let mut names: Vec<String> = self.tenants.keys().cloned().collect();
        if let Some(id) = env.var("AZURE_TENANT_ID")
            && !self.tenants.contains_key(&id)
            && matches!(TenantSettings::from_azure_env(&id, env), Ok(Some(_)))
        {
            names.push(id);
        }
        names
    }

    /// The tenant a command acts on. A requested name must be configured, or be `demo` (the
    /// built-in emulated tenant, unless the file names a tenant `demo`). With no name: the one
    /// configured tenant; several are an error listing them; none is the demo tenant only
    /// when `demo_by_default` (a dry run or a tabletop), never for a command that writes.
    pub fn select_tenant(
        &self,
        requested: Option<&str>,
        env: &Env,
        demo_by_default: bool,
    ) -> Result<TenantChoice, ConfigError> {
        let names = self.tenant_names(env);
        match requested {
            Some(DEMO_TENANT) if !names.iter().any(|n| n == DEMO_TENANT) => Ok(TenantChoice::Demo),
            Some(name) => self
                .tenant(name, env)
                .map(|t| TenantChoice::Configured(Box::new(t))),
            None => match names.as_slice() {
                [one] => self
                    .tenant(one, env)
                    .map(|t| TenantChoice::Configured(Box::new(t))),
                [] if demo_by_default => Ok(TenantChoice::Demo),
                [] => Err(ConfigError::new(
                    ConfigErrorKind::UnknownTenant,
                    "no tenant is configured: add one to resetctl.yaml or set AZURE_TENANT_ID, \
                     AZURE_CLIENT_ID and AZURE_CLIENT_SECRET; to rehearse, name the built-in \
                     emulated tenant with --tenant demo",
                )),
                several => Err(ConfigError::new(
                    ConfigErrorKind::UnknownTenant,
                    format!(
                        "{} tenants are configured ({}): name one with --tenant",
                        several.len(),
                        several.join(", ")
                    ),
                )),
            },
        }
    }

    fn unknown_tenant(&self, name: &str, env: &Env) -> ConfigError {
        let names = self.tenant_names(env);
        let known = if names.is_empty() {
            "none is configured (resetctl.yaml, or AZURE_TENANT_ID with AZURE_CLIENT_ID and \
             AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH)"
                .to_owned()
        } else {
            format!("configured: {}", names.join(", "))
        };
        ConfigError::new(
            ConfigErrorKind::UnknownTenant,
            format!(
                "tenant '{name}' is not configured; {known}; `demo` is the built-in emulated tenant"
            ),
        )
    }
}

/// The name of the built-in emulated tenant.
pub const DEMO_TENANT: &str = "demo";

/// Which tenant a command acts on.
#[derive(Debug, Clone)]
pub enum TenantChoice {
    /// The built-in emulated tenant, started in-process.
    Demo,
    /// A configured tenant (boxed: the settings are large, the demo is nothing).
    Configured(Box<TenantSettings>),
}

/// The validated `audit:` section of `resetctl.yaml`. Every key is optional; the trail's path
/// defaults to the data directory, which only the caller knows ([`Config::audit_config`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSection {
    /// The live trail file, when configured (resolved against the configuration's directory).
    pub path: Option<PathBuf>,
    /// Rotation size, when configured.
    pub max_file_bytes: Option<u64>,
    /// HMAC key file (keyed mode), resolved against the configuration's directory.
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the HMAC key (keyed mode).
    pub key_env: Option<String>,
}

impl AuditSection {
    fn from_raw(raw: RawAudit, base_dir: Option<&Path>) -> Result<Self, ConfigError> {
        if let Some(spanned) = raw.key {
            return Err(ConfigError::new(
                ConfigErrorKind::InlineSecret,
                "audit: an inline `key` is not accepted; name a file (`key_file`) or an \
                 environment variable (`key_env`) instead",
            )
            .at(None, Some(position(&spanned.referenced))));
        }
        let section = AuditSection {
            path: raw.path.map(|p| resolve(base_dir, p)),
            max_file_bytes: raw.max_file_bytes,
            key_file: raw.key_file.map(|p| resolve(base_dir, p)),
            key_env: raw.key_env,
        };
        // The audit module's own checks (rotation size, one key source, a file name),
        // made now so a bad section fails with the rest of the configuration.
        section
            .to_audit_config(PathBuf::from("audit.jsonl"))
            .validate()
            .map_err(|e| ConfigError::new(ConfigErrorKind::Invalid, format!("audit: {e}")))?;
        Ok(section)
    }

    /// The trail's settings, with `default_path` where the section names no path.
    pub fn to_audit_config(&self, default_path: PathBuf) -> AuditConfig {
        let mut config = AuditConfig::new(self.path.clone().unwrap_or(default_path));
        if let Some(bytes) = self.max_file_bytes {
            config.max_file_bytes = bytes;
        }
        config.key_file = self.key_file.clone();
        config.key_env = self.key_env.clone();
        config
    }
}

impl Config {
    /// The audit trail's settings: the `audit:` section over `default_path` (the data
    /// directory's trail).
    pub fn audit_config(&self, default_path: PathBuf) -> AuditConfig {
        self.audit.to_audit_config(default_path)
    }
}

/// A relative path in the configuration is relative to the file's directory.
pub(super) fn resolve(base_dir: Option<&Path>, path: PathBuf) -> PathBuf {
    match base_dir {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    }
}

/// 1-based line and column of a YAML location.
/// The `organisation:` section: a name, and pages that are `https://` addresses (people are
/// told to type them; a message must never point anywhere else).
fn organisation_from_raw(
    raw: super::raw::RawOrganisation,
) -> Result<crate::comms::context::Organisation, ConfigError> {
    let invalid = |m: String| ConfigError::new(ConfigErrorKind::Invalid, m);
    if raw.name.trim().is_empty() {
        return Err(invalid("organisation.name is empty".into()));
    }
    let page = |key: &str, value: Option<String>| -> Result<String, ConfigError> {
        let value = value.unwrap_or_default();
        let ok = value.is_empty()
            || (value.starts_with("https://")
                && value.len() > "https://".len()
                && !value.chars().any(|c| c.is_whitespace() || c.is_control()));
        if ok {
            Ok(value)
        } else {
            Err(invalid(format!(
                "organisation.{key} must be an https:// address without spaces"
            )))
        }
    };
    Ok(crate::comms::context::Organisation {
        name: raw.name.trim().to_owned(),
        helpdesk_phone: raw.helpdesk_phone.unwrap_or_default().trim().to_owned(),
        helpdesk_url: page("helpdesk_url", raw.helpdesk_url)?,
        sspr_url: page(
            "sspr_url",
            Some(raw.sspr_url.unwrap_or_else(|| DEFAULT_SSPR_URL.to_owned())),
        )?,
        verify_url: page("verify_url", raw.verify_url)?,
    })
}

/// Self-service password reset for Microsoft Entra ID, the default `organisation.sspr_url`
/// (<https://learn.microsoft.com/entra/identity/authentication/concept-sspr-howitworks>).
pub const DEFAULT_SSPR_URL: &str = "https://aka.ms/sspr";

pub(super) fn position(location: &serde_saphyr::Location) -> (u32, u32) {
    (location.line() as u32, location.column() as u32)
}

impl TenantSettings {
    /// A tenant from the Azure SDK environment convention: `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID`, and `AZURE_CLIENT_SECRET` or `AZURE_CLIENT_CERTIFICATE_PATH`
    /// (a PEM holding certificate and key); `AZURE_AUTHORITY_HOST` selects a sovereign
    /// cloud's authority and `RESETCTL_GRAPH_URL` the Graph base URL. `Ok(None)` when the
    /// variables are not set.
    pub fn from_azure_env(name: &str, env: &Env) -> Result<Option<Self>, ConfigError> {
        let (Some(tenant_id), Some(client_id)) =
            (env.var("AZURE_TENANT_ID"), env.var("AZURE_CLIENT_ID"))
        else {
            return Ok(None);
        };
        let credential = if env.var("AZURE_CLIENT_SECRET").is_some() {
            CredentialSource::SecretEnv("AZURE_CLIENT_SECRET".into())
        } else if let Some(path) = env.var("AZURE_CLIENT_CERTIFICATE_PATH") {
            CredentialSource::Certificate {
                certificate_file: PathBuf::from(path),
                private_key_file: None,
                alg: SigningAlg::Ps256,
            }
        } else {
            return Ok(None);
        };
        let graph_url = env
            .var("RESETCTL_GRAPH_URL")
            .unwrap_or_else(|| DEFAULT_GRAPH_URL.into());
        let authority = env
            .var("AZURE_AUTHORITY_HOST")
            .unwrap_or_else(|| DEFAULT_AUTHORITY.into());
        let raw = RawTenant {
            tenant_id: Some(tenant_id),
            graph_url: Some(graph_url),
            token_url: None,
            authority: Some(authority),
            scope: None,
            apps: Vec::new(),
            runner_accounts: Vec::new(),
            time_scale: None,
            tenant_size: None,
            quotas: QuotaOverrides::default(),
            request_timeout_secs: None,
        };
        let mut settings = tenant_from_raw(name, raw, None, env)?;
        settings.apps = vec![AppSpec {
            client_id,
            credential,
        }];
        Ok(Some(settings))
    }
}

fn invalid(message: String) -> ConfigError {
    ConfigError::new(ConfigErrorKind::Invalid, message)
}

fn check_url(tenant: &str, key: &str, value: &str) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(value)
        .map_err(|e| invalid(format!("tenants.{tenant}.{key}: not a URL ({e})")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid(format!(
            "tenants.{tenant}.{key}: scheme must be https (or http for a local emulator)"
        )));
    }
    if url.scheme() == "http"
        && !matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
    {
        return Err(invalid(format!(
            "tenants.{tenant}.{key}: plain http is accepted only for a loopback emulator"
        )));
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// `graph_url` and `token_url` must be services of the same cloud ([`Cloud`]): the secret goes
/// to the one and the token it buys to the other.
fn check_same_cloud(tenant: &str, graph_url: &str, token_url: &str) -> Result<(), ConfigError> {
    let parse =
        |key: &str, u: &str| reqwest::Url::parse(u).map_err(|e| invalid(format!("{key}: {e}")));
    let (graph, token) = (
        parse("graph_url", graph_url)?,
        parse("token_url", token_url)?,
    );
    let graph = Cloud::of_graph(&graph).ok_or_else(|| {
        invalid(format!(
            "tenants.{tenant}.graph_url: {} is not Microsoft Graph in a Microsoft cloud \
             (graph.microsoft.com, graph.microsoft.us, dod-graph.microsoft.us, \
             microsoftgraph.chinacloudapi.cn) nor a loopback emulator",
            graph.host_str().unwrap_or("")
        ))
    })?;
    let token = Cloud::of_token_service(&token).ok_or_else(|| {
        invalid(format!(
            "tenants.{tenant}.token_url: {} is not the token service of a Microsoft cloud \
             (login.microsoftonline.com, login.microsoftonline.us, login.chinacloudapi.cn) nor a \
             loopback emulator",
            token.host_str().unwrap_or("")
        ))
    })?;
    if graph != token {
        return Err(invalid(format!(
            "tenants.{tenant}: graph_url is in {} but token_url (or authority) is in {}; a \
             tenant's credentials and tokens stay in one cloud",
            graph.name(),
            token.name()
        )));
    }
    Ok(())
}

/// Whether `name` can be an environment variable's name: letters, digits and `_`, not
/// starting with a digit (POSIX). Anything else in `client_secret_env` is likely the secret.
pub(super) fn is_env_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| !c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn tenant_from_raw(
    name: &str,
    raw: RawTenant,
    base_dir: Option<&Path>,
    env: &Env,
) -> Result<TenantSettings, ConfigError> {
    let tenant_id = match raw.tenant_id {
        Some(id) => id,
        None => env.var("AZURE_TENANT_ID").ok_or_else(|| {
            invalid(format!(
                "tenants.{name}.tenant_id is missing and AZURE_TENANT_ID is not set"
            ))
        })?,
    };
    if tenant_id.is_empty() || tenant_id.contains(['/', '?', '#']) {
        return Err(invalid(format!(
            "tenants.{name}.tenant_id is not a tenant id or domain"
        )));
    }
    let graph_url = check_url(
        name,
        "graph_url",
        raw.graph_url.as_deref().unwrap_or(DEFAULT_GRAPH_URL),
    )?;
    let token_url = match raw.token_url {
        Some(u) => check_url(name, "token_url", &u)?,
        None => {
            let authority = check_url(
                name,
                "authority",
                raw.authority.as_deref().unwrap_or(DEFAULT_AUTHORITY),
            )?;
            format!("{authority}/{tenant_id}/oauth2/v2.0/token")
        }
    };
    check_same_cloud(name, &graph_url, &token_url)?;
    let scope = match raw.scope {
        Some(s) => s,
        None => {
            let url =
                reqwest::Url::parse(&graph_url).map_err(|e| invalid(format!("graph_url: {e}")))?;
            format!("{}/.default", url.origin().ascii_serialization())
        }
    };
    let time_scale = raw.time_scale.unwrap_or(1.0);
    if !(time_scale.is_finite() && time_scale >= 1.0) {
        return Err(invalid(format!(
            "tenants.{name}.time_scale must be a number >= 1"
        )));
    }
    let request_timeout_secs = raw.request_timeout_secs.unwrap_or(60.0);
    if !(request_timeout_secs.is_finite() && request_timeout_secs > 0.0) {
        return Err(invalid(format!(
            "tenants.{name}.request_timeout_secs must be > 0"
        )));
    }
    validate_quotas(name, &raw.quotas)?;
    let mut apps = Vec::with_capacity(raw.apps.len());
    for spanned in raw.apps {
        let position = Some((
            spanned.referenced.line() as u32,
            spanned.referenced.column() as u32,
        ));
        let app = app_from_raw(name, spanned.value, base_dir).map_err(|e| e.at(None, position))?;
        apps.push(app);
    }
    Ok(TenantSettings {
        name: name.to_string(),
        tenant_id,
        graph_url,
        token_url,
        scope,
        apps,
        runner_accounts: raw.runner_accounts,
        time_scale,
        tenant_size: raw.tenant_size.unwrap_or_default(),
        quotas: raw.quotas,
        request_timeout_secs,
    })
}

fn validate_quotas(name: &str, q: &QuotaOverrides) -> Result<(), ConfigError> {
    let counts = [
        ("writes_per_window", q.writes_per_window),
        ("tenant_writes_per_window", q.tenant_writes_per_window),
        ("read_units_per_window", q.read_units_per_window),
        (
            "identity_protection_per_window",
            q.identity_protection_per_window,
        ),
        ("mail_per_window", q.mail_per_window),
        ("auth_methods_per_window", q.auth_methods_per_window),
        ("max_in_flight", q.max_in_flight),
    ];
    for (key, value) in counts {
        if value == Some(0) {
            return Err(invalid(format!(
                "tenants.{name}.quotas.{key} must be at least 1"
            )));
        }
    }
    let windows = [
        ("write_window_secs", q.write_window_secs),
        ("tenant_write_window_secs", q.tenant_write_window_secs),
        ("read_window_secs", q.read_window_secs),
        (
            "identity_protection_window_secs",
            q.identity_protection_window_secs,
        ),
        ("mail_window_secs", q.mail_window_secs),
        ("auth_methods_window_secs", q.auth_methods_window_secs),
    ];
    for (key, value) in windows {
        if let Some(v) = value
            && !(v.is_finite() && v > 0.0)
        {
            return Err(invalid(format!(
                "tenants.{name}.quotas.{key} must be a positive number"
            )));
        }
    }
    if let Some(e) = q.early_slowdown_at
        && !(e.is_finite() && e > 0.0)
    {
        return Err(invalid(format!(
            "tenants.{name}.quotas.early_slowdown_at must be a positive number"
        )));
    }
    if let Some(h) = q.headroom
        && !(h.is_finite() && h > 0.0 && h <= 1.0)
    {
        return Err(invalid(format!(
            "tenants.{name}.quotas.headroom must be in (0, 1]"
        )));
    }
    Ok(())
}

fn app_from_raw(
    tenant: &str,
    raw: RawApp,
    base_dir: Option<&Path>,
) -> Result<AppSpec, ConfigError> {
    for (key, value) in [
        ("client_secret", &raw.client_secret),
        ("private_key", &raw.private_key),
    ] {
        if let Some(spanned) = value {
            return Err(ConfigError::new(
                ConfigErrorKind::InlineSecret,
                format!(
                    "tenants.{tenant}.apps: an inline `{key}` is not accepted; name an environment \
                     variable (`{key}_env`) or a file (`{key}_file`) instead"
                ),
            )
            .at(
                None,
                Some((
                    spanned.referenced.line() as u32,
                    spanned.referenced.column() as u32,
                )),
            ));
        }
    }
    if raw
        .client_secret_env
        .as_deref()
        .is_some_and(|v| !is_env_name(v))
    {
        // The value is never shown: when it is not a variable's name, it is likely the secret.
        return Err(ConfigError::new(
            ConfigErrorKind::InlineSecret,
            format!(
                "tenants.{tenant}.apps: `client_secret_env` must be the name of an environment \
                 variable (letters, digits and `_`); if its value is the secret itself, remove \
                 it from the file and rotate the secret"
            ),
        ));
    }
    if raw.client_id.trim().is_empty() {
        return Err(invalid(format!(
            "tenants.{tenant}.apps: client_id is empty"
        )));
    }
    let resolve = |p: PathBuf| match base_dir {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    };
    let sources = usize::from(raw.client_secret_env.is_some())
        + usize::from(raw.client_secret_file.is_some())
        + usize::from(raw.certificate_file.is_some());
    if sources != 1 {
        return Err(invalid(format!(
            "tenants.{tenant}.apps[{}]: exactly one of client_secret_env, client_secret_file, \
             certificate_file is required",
            raw.client_id
        )));
    }
    if raw.private_key_file.is_some() && raw.certificate_file.is_none() {
        return Err(invalid(format!(
            "tenants.{tenant}.apps[{}]: private_key_file needs certificate_file",
            raw.client_id
        )));
    }
    let credential = if let Some(var) = raw.client_secret_env {
        CredentialSource::SecretEnv(var)
    } else if let Some(file) = raw.client_secret_file {
        CredentialSource::SecretFile(resolve(file))
    } else if let Some(cert) = raw.certificate_file {
        CredentialSource::Certificate {
            certificate_file: resolve(cert),
            private_key_file: raw.private_key_file.map(resolve),
            alg: raw.signing_alg.unwrap_or_default(),
        }
    } else {
        return Err(invalid(format!(
            "tenants.{tenant}.apps[{}]: no credential",
            raw.client_id
        )));
    };
    Ok(AppSpec {
        client_id: raw.client_id,
        credential,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
tenants:
  contoso:
    tenant_id: 0f1e0000-0000-0000-0000-000000000001
    graph_url: https://graph.microsoft.com/v1.0
    token_url: https://login.microsoftonline.com/0f1e0000-0000-0000-0000-000000000001/oauth2/v2.0/token
    apps:
      - client_id: 6a1b0000-0000-0000-0000-000000000001
        client_secret_env: CONTOSO_SECRET
      - client_id: 6a1b0000-0000-0000-0000-000000000002
        certificate_file: certs/app2.pem
        signing_alg: RS256
    runner_accounts: [svc-resetctl@contoso.com]
    time_scale: 1
    quotas: { writes_per_window: 2000, write_window_secs: 150 }
  demo:
    tenant_id: demo
    graph_url: http://127.0.0.1:8080/v1.0
    authority: http://127.0.0.1:8080
    apps: [{ client_id: app, client_secret_file: secret.txt }]
    time_scale: 10
    tenant_size: large
audit: { key_file: audit.key, max_file_bytes: 4096 }
"#;

    #[test]
    fn parses_design_sample() {
        let cfg = Config::parse(
            SAMPLE,
            Some(Path::new("/etc/resetctl/resetctl.yaml")),
            &Env::default(),
        )
        .unwrap();
        let c = &cfg.tenants["contoso"];
        assert_eq!(c.scope, "https://graph.microsoft.com/.default");
        assert_eq!(c.apps.len(), 2);
        assert_eq!(
            c.apps[0].credential,
            CredentialSource::SecretEnv("CONTOSO_SECRET".into())
        );
        assert_eq!(
            c.apps[1].credential,
            CredentialSource::Certificate {
                certificate_file: PathBuf::from("/etc/resetctl/certs/app2.pem"),
                private_key_file: None,
                alg: SigningAlg::Rs256
            }
        );
        assert_eq!(c.quotas.writes_per_window, Some(2000));
        assert_eq!(
            c.runner_accounts,
            vec!["svc-resetctl@contoso.com".to_string()]
        );
        let d = &cfg.tenants["demo"];
        assert_eq!(d.token_url, "http://127.0.0.1:8080/demo/oauth2/v2.0/token");
        assert_eq!(d.scope, "http://127.0.0.1:8080/.default");
        assert_eq!(d.time_scale, 10.0);
        assert_eq!(d.tenant_size, TenantSize::Large);
        let audit = cfg.audit_config(PathBuf::from("/data/audit.jsonl"));
        assert_eq!(audit.path, PathBuf::from("/data/audit.jsonl"));
        assert_eq!(audit.max_file_bytes, 4096);
        assert_eq!(
            audit.key_file,
            Some(PathBuf::from("/etc/resetctl/audit.key"))
        );
    }

    #[test]
    fn the_audit_section_is_typed_and_validated_with_the_rest() {
        let parse = |text: &str| Config::parse(text, Some(Path::new("r.yaml")), &Env::default());
        let typo = parse("tenants: {}\naudit:\n  key_fiel: k\n").unwrap_err();
        assert_eq!(typo.kind, ConfigErrorKind::Syntax);
        assert!(typo.to_string().starts_with("r.yaml:3:"), "{typo}");
        let both = parse("audit: { key_file: k, key_env: K }\n").unwrap_err();
        assert_eq!(both.kind, ConfigErrorKind::Invalid);
        assert!(both.to_string().starts_with("r.yaml:1:"), "{both}");
        let tiny = parse("audit: { max_file_bytes: 10 }\n").unwrap_err();
        assert!(tiny.to_string().contains("max_file_bytes"), "{tiny}");
        let inline = parse("audit:\n  key: 00112233445566778899\n").unwrap_err();
        assert_eq!(inline.kind, ConfigErrorKind::InlineSecret);
        assert!(!inline.to_string().contains("0011"), "{inline}");
        let keyed = parse("audit: { path: /var/log/a.jsonl, key_env: AUDIT_KEY }\n").unwrap();
        let audit = keyed.audit_config(PathBuf::from("/default.jsonl"));
        assert_eq!(audit.path, PathBuf::from("/var/log/a.jsonl"));
        assert_eq!(audit.key_env.as_deref(), Some("AUDIT_KEY"));
    }

    #[test]
    fn push_and_verify_sections_parse_and_errors_name_the_place() {
        let ok = Config::parse(
            "push:\n  duo:\n    base_url: https://api-1a2b3c4d.duosecurity.com\n    \
             integration_key: DIWJ8X6AEYOR5OMC6TQ1\n    secret_key_env: DUO_SKEY\n\
             verify: { card_timeout_secs: 120 }\n",
            Some(Path::new("r.yaml")),
            &Env::default(),
        )
        .unwrap();
        assert!(matches!(
            ok.push,
            Some(PushSettings::Duo { sha512: true, ref secret_key, .. })
                if *secret_key == super::super::SecretSource::Env("DUO_SKEY".into())
        ));
        assert_eq!(ok.verify.card_timeout_secs, 120);
        assert_eq!(ok.verify.max_pushes, 3);
        for (text, wanted) in [
            (
                "push:\n  duo:\n    base_url: https://api-1.duosecurity.com\n    \
                 integration_key: DIWJ8X6AEYOR5OMC6TQ1\n    secret_key: abc\n",
                "r.yaml:5:",
            ),
            (
                "push:\n  okta:\n    base_url: http://acme.okta.com\n    api_token_env: T\n",
                "r.yaml:3:",
            ),
            ("push: {}\n", "r.yaml:1:"),
            ("verify: { card_timeout: 5 }\n", "r.yaml:1:"),
        ] {
            let err = Config::parse(text, Some(Path::new("r.yaml")), &Env::default()).unwrap_err();
            assert!(err.to_string().starts_with(wanted), "{text}: {err}");
            assert!(!err.to_string().contains("abc"), "{err}");
        }
    }

    #[test]
    fn inline_secret_rejected_with_position_and_without_value() {
        let text = "tenants:\n  t:\n    tenant_id: x\n    apps:\n      - client_id: a\n        client_secret: hunter2-super-secret\n";
        let err = Config::parse(text, Some(Path::new("r.yaml")), &Env::default()).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::InlineSecret);
        let shown = err.to_string();
        assert!(shown.starts_with("r.yaml:6:"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{err:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_key_has_location() {
        let text = "tenants:\n  t:\n    tenant_id: x\n    graph_ulr: https://x\n";
        let err = Config::parse(text, Some(Path::new("r.yaml")), &Env::default()).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Syntax);
        assert!(err.to_string().starts_with("r.yaml:4:"), "{err}");
    }

    #[test]
    fn app_needs_exactly_one_credential() {
        let text = "tenants:\n  t:\n    tenant_id: x\n    apps:\n      - client_id: a\n        client_secret_env: A\n        client_secret_file: f\n";
        let err = Config::parse(text, None, &Env::default()).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Invalid);
        assert!(err.to_string().starts_with("5:"), "{err}");
    }

    #[test]
    fn plain_http_only_on_loopback_and_bad_values_rejected() {
        let text =
            "tenants:\n  t:\n    tenant_id: x\n    graph_url: http://graph.example.com/v1.0\n";
        assert_eq!(
            Config::parse(text, None, &Env::default()).unwrap_err().kind,
            ConfigErrorKind::Invalid
        );
        let text = "tenants:\n  t:\n    tenant_id: x\n    time_scale: 0\n";
        assert_eq!(
            Config::parse(text, None, &Env::default()).unwrap_err().kind,
            ConfigErrorKind::Invalid
        );
        let text = "tenants:\n  t:\n    tenant_id: x\n    quotas: { writes_per_window: 0 }\n";
        assert_eq!(
            Config::parse(text, None, &Env::default()).unwrap_err().kind,
            ConfigErrorKind::Invalid
        );
    }

    #[test]
    fn the_tenant_is_chosen_never_guessed() {
        let empty = Env::from_pairs::<[(&str, &str); 0], _, _>([]);
        let azure = Env::from_pairs([
            ("AZURE_TENANT_ID", "t1"),
            ("AZURE_CLIENT_ID", "c1"),
            ("AZURE_CLIENT_SECRET", "x"),
        ]);
        let none = Config::default();
        assert!(matches!(
            none.select_tenant(None, &empty, true),
            Ok(TenantChoice::Demo)
        ));
        let err = none.select_tenant(None, &empty, false).unwrap_err();
        assert!(err.to_string().contains("--tenant demo"), "{err}");
        // The Azure variables are a configured tenant: no silent demo.
        match none.select_tenant(None, &azure, true) {
            Ok(TenantChoice::Configured(t)) => assert_eq!(t.name, "t1"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            none.select_tenant(Some("demo"), &azure, false),
            Ok(TenantChoice::Demo)
        ));
        let two = Config::parse(
            "tenants:\n  a: { tenant_id: x, apps: [{ client_id: c, client_secret_env: S }] }\n  b: { tenant_id: y, apps: [{ client_id: c, client_secret_env: S }] }\n",
            None,
            &empty,
        )
        .unwrap();
        let err = two.select_tenant(None, &empty, true).unwrap_err();
        assert!(err.to_string().contains("(a, b)"), "{err}");
        let err = two
            .select_tenant(Some("contosso"), &azure, true)
            .unwrap_err();
        assert!(err.to_string().contains("configured: a, b, t1"), "{err}");
        assert!(matches!(
            two.select_tenant(Some("b"), &empty, false),
            Ok(TenantChoice::Configured(_))
        ));
    }

    #[test]
    fn azure_env_fallback() {
        let cfg = Config::default();
        let env = Env::from_pairs([
            ("AZURE_TENANT_ID", "t1"),
            ("AZURE_CLIENT_ID", "c1"),
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
        ]);
        let t = cfg.tenant("t1", &env).unwrap();
        assert_eq!(t.tenant_id, "t1");
        let typo = cfg.tenant("prod", &env).unwrap_err();
        assert_eq!(typo.kind, ConfigErrorKind::UnknownTenant);
        assert!(typo.to_string().contains("configured: t1"), "{typo}");
        assert_eq!(
            t.apps[0].credential,
            CredentialSource::SecretEnv("AZURE_CLIENT_SECRET".into())
        );
        assert!(!format!("{t:?}{env:?}").contains("s3cr3t-value"));
        let env = Env::from_pairs([
            ("AZURE_TENANT_ID", "t1"),
            ("AZURE_CLIENT_ID", "c1"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", "/k.pem"),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us"),
            ("RESETCTL_GRAPH_URL", "https://graph.microsoft.us/v1.0"),
        ]);
        let t = cfg.tenant("t1", &env).unwrap();
        assert_eq!(
            t.token_url,
            "https://login.microsoftonline.us/t1/oauth2/v2.0/token"
        );
        assert!(matches!(
            t.apps[0].credential,
            CredentialSource::Certificate { .. }
        ));
        let err = cfg
            .tenant("none", &Env::from_pairs::<[(&str, &str); 0], _, _>([]))
            .unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::UnknownTenant);
        // The US Government authority with the global Graph: two clouds.
        let env = Env::from_pairs([
            ("AZURE_TENANT_ID", "t1"),
            ("AZURE_CLIENT_ID", "c1"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us"),
        ]);
        let err = cfg.tenant("t1", &env).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Invalid);
        assert!(
            err.message.contains("the global cloud")
                && err.message.contains("the US Government cloud"),
            "{err}"
        );
    }

    fn parse_err(text: &str) -> ConfigError {
        Config::parse(text, Some(Path::new("r.yaml")), &Env::default()).unwrap_err()
    }

    #[test]
    fn graph_and_token_services_of_one_cloud_only() {
        let tenant = |graph: &str, token: &str| {
            format!(
                "tenants:\n  t:\n    tenant_id: x\n    graph_url: {graph}\n    token_url: {token}\n"
            )
        };
        let ok = [
            (
                "https://graph.microsoft.com/v1.0",
                "https://login.microsoftonline.com/x/oauth2/v2.0/token",
            ),
            (
                "https://dod-graph.microsoft.us/v1.0",
                "https://login.microsoftonline.us/x/oauth2/v2.0/token",
            ),
            (
                "https://microsoftgraph.chinacloudapi.cn/v1.0",
                "https://login.chinacloudapi.cn/x/oauth2/v2.0/token",
            ),
            (
                "http://127.0.0.1:1/v1.0",
                "http://localhost:2/x/oauth2/v2.0/token",
            ),
        ];
        for (graph, token) in ok {
            Config::parse(&tenant(graph, token), None, &Env::default())
                .unwrap_or_else(|e| panic!("{graph} {token}: {e}"));
        }
        let bad = [
            (
                "https://graph.microsoft.com/v1.0",
                "https://login.microsoftonline.us/x/oauth2/v2.0/token",
            ),
            (
                "https://graph.microsoft.com/v1.0",
                "http://127.0.0.1:9/x/oauth2/v2.0/token",
            ),
            (
                "http://127.0.0.1:1/v1.0",
                "https://login.microsoftonline.com/x/oauth2/v2.0/token",
            ),
            (
                "https://graph.microsoft.com/v1.0",
                "https://login.evil.example/x/oauth2/v2.0/token",
            ),
            (
                "https://graph.evil.example/v1.0",
                "https://login.microsoftonline.com/x/oauth2/v2.0/token",
            ),
        ];
        for (graph, token) in bad {
            let err = parse_err(&tenant(graph, token));
            assert_eq!(err.kind, ConfigErrorKind::Invalid, "{graph} {token}: {err}");
        }
    }

    /// What an operator might paste: an Entra client secret.
    const PASTED: &str = "Zx8Q~kV3.pP-aBcDeFgHiJkLmNoPqRsTuVwXyZ0123";

    #[test]
    fn errors_never_print_a_pasted_secret() {
        let app = |line: &str| {
            format!(
                "tenants:\n  t:\n    tenant_id: x\n    apps:\n      - client_id: a\n        {line}\n"
            )
        };
        let cases = [
            app(&format!("client_secret_env: \"{PASTED}\"")),
            app(&format!("client_secret_env: {PASTED}")),
            app(&format!("signing_alg: {PASTED}")),
            app(&format!("{PASTED}: x")),
            app(&format!("client_secret_env: [\"{PASTED}\"]")),
            format!("tenants:\n  t:\n    tenant_id: x\n    time_scale: \"{PASTED}\"\n"),
            format!("tenants:\n  t:\n    tenant_id: x\n    tenant_size: {PASTED}\n"),
            format!("tenants:\n  t:\n    tenant_id: x\n    runner_accounts: {PASTED}\n"),
            format!("tenants:\n  t:\n    tenant_id: x\n    quotas: {{ headroom: \"{PASTED}\" }}\n"),
        ];
        for text in cases {
            let err = parse_err(&text);
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("Zx8Q"), "{text}\n=> {shown}");
            assert!(shown.contains("r.yaml:"), "{shown}");
        }
        // A typo in a key is still named.
        let err = parse_err("tenants:\n  t:\n    tenant_id: x\n    graph_ulr: https://x\n");
        assert!(err.message.contains("`graph_ulr`"), "{err}");
        let err = parse_err(&app(&format!("client_secret_env: {PASTED}")));
        assert_eq!(err.kind, ConfigErrorKind::InlineSecret);
        assert!(err.to_string().starts_with("r.yaml:5:"), "{err}");
    }
}
