//! Raw serde shapes of `resetctl.yaml`. Key names are a contract (scripts and tests write such
//! files): add keys, never rename one. Unknown keys are rejected so a typo cannot silently
//! drop a setting.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// Who operates resetctl from this configuration (the audit trail's actor), unless
    /// `--operator` says otherwise.
    #[serde(default)]
    pub operator: Option<String>,
    /// One entry per tenant, by the name used with `--tenant`.
    #[serde(default)]
    pub tenants: BTreeMap<String, RawTenant>,
    /// Communication channels: the senders of mail, SMS, Teams cards and webhook posts.
    #[serde(default)]
    pub channels: Option<Spanned<super::channels_raw::RawChannels>>,
    /// Who receives run-level messages, by audience name.
    #[serde(default)]
    pub audiences: Option<super::channels_raw::RawAudiences>,
    /// The MFA push provider of the single-user flow's Path A (Duo, Okta).
    #[serde(default)]
    pub push: Option<Spanned<super::push::RawPush>>,
    /// Where the audit trail is streamed live (syslog, Logs Ingestion, webhook), by name.
    #[serde(default)]
    pub forward: BTreeMap<String, Spanned<super::forward::RawSink>>,
    /// Which playbook an incident from the SOC's tooling starts, in order.
    #[serde(default)]
    pub triggers: Vec<Spanned<super::triggers::RawRule>>,
    /// `resetctl serve`: listen address, public URL, TLS, token key, API credentials.
    #[serde(default)]
    pub serve: Option<Spanned<super::serve::RawServe>>,
    /// The single-user flow's timeouts and limits (seconds and counts).
    #[serde(default)]
    pub verify: Option<crate::verify::Policy>,
    /// Ticket systems (PSAs) escalations go to.
    #[serde(default)]
    pub tickets: Option<Spanned<super::tickets::RawTickets>>,
    /// The audit trail: where it lives, when it rotates, where its HMAC key comes from.
    #[serde(default)]
    pub audit: Option<Spanned<RawAudit>>,
    /// What messages call the organisation (name, help desk, SSPR and notice-check pages).
    #[serde(default)]
    pub organisation: Option<Spanned<RawOrganisation>>,
    /// A directory of template files that replace the embedded ones of the same name
    /// (relative to the configuration file).
    #[serde(default)]
    pub templates: Option<PathBuf>,
}

/// The `organisation:` section: only `name` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrganisation {
    /// The name people recognise.
    pub name: String,
    /// The help desk's number, as people dial it.
    pub helpdesk_phone: Option<String>,
    /// The help desk's web page.
    pub helpdesk_url: Option<String>,
    /// Self-service password reset (default `https://aka.ms/sspr`).
    pub sspr_url: Option<String>,
    /// Where a notice can be checked as genuine.
    pub verify_url: Option<String>,
}

/// The `audit:` section. Every key is optional: the trail defaults to the data directory,
/// unkeyed. Unknown keys (a typo of `key_file`) are rejected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    /// The live trail file (relative to the configuration file's directory).
    pub path: Option<PathBuf>,
    /// Size after which the live file is rotated.
    pub max_file_bytes: Option<u64>,
    /// File holding the HMAC key in hexadecimal (relative to the configuration file).
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the HMAC key in hexadecimal.
    pub key_env: Option<String>,
    /// Rejected: an inline key. Present only to give a precise error; never stored.
    pub key: Option<Spanned<IgnoredAny>>,
}

/// One tenant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenant {
    /// Directory (tenant) id; falls back to `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// Graph base URL including the version, e.g. `https://graph.microsoft.com/v1.0`.
    pub graph_url: Option<String>,
    /// Token endpoint; defaults to `{authority}/{tenant_id}/oauth2/v2.0/token`.
    pub token_url: Option<String>,
    /// Authority host for sovereign clouds, used only when `token_url` is absent.
    pub authority: Option<String>,
    /// OAuth scope; defaults to `{graph origin}/.default`.
    pub scope: Option<String>,
    /// App registrations of the credential pool.
    #[serde(default)]
    pub apps: Vec<Spanned<RawApp>>,
    /// Accounts the runner itself signs in with; never written to.
    #[serde(default)]
    pub runner_accounts: Vec<String>,
    /// Emulated tenants only: quota windows are divided by this factor.
    pub time_scale: Option<f64>,
    /// Tenant size class for the read (resource unit) budget: small, medium or large.
    pub tenant_size: Option<super::TenantSize>,
    /// Throttle overrides; every absent key keeps Graph's documented number.
    #[serde(default)]
    pub quotas: QuotaOverrides,
    /// Per-request timeout in seconds (default 60, Graph's own limit for several APIs).
    pub request_timeout_secs: Option<f64>,
}

/// One app registration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    /// Application (client) id.
    pub client_id: String,
    /// Name of an environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// File holding the client secret (trailing newline ignored).
    pub client_secret_file: Option<PathBuf>,
    /// PEM file with the certificate, and the private key too unless `private_key_file` is set.
    pub certificate_file: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8 or PKCS#1).
    pub private_key_file: Option<PathBuf>,
    /// Assertion signing algorithm: `PS256` (default) or `RS256`.
    pub signing_alg: Option<super::SigningAlg>,
    /// Rejected: an inline secret. Present only to give a precise error; its value is never
    /// stored (`IgnoredAny`).
    pub client_secret: Option<Spanned<IgnoredAny>>,
    /// Rejected: an inline private key. Same treatment as `client_secret`.
    pub private_key: Option<Spanned<IgnoredAny>>,
}

/// Per-tenant throttle overrides (`tenants.<name>.quotas`). Every field is optional; absent
/// ones keep the defaults of `throttle::Quotas` (Graph's documented limits).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverrides {
    /// Directory writes per window per app and tenant (Graph: 3,000).
    pub writes_per_window: Option<u32>,
    /// That window in seconds (Graph: 150).
    pub write_window_secs: Option<f64>,
    /// Directory writes per window per tenant across all apps (Graph: 18,000).
    pub tenant_writes_per_window: Option<u32>,
    /// That window in seconds (Graph: 300).
    pub tenant_write_window_secs: Option<f64>,
    /// Resource units per window per app and tenant; default by tenant size (3,500/5,000/8,000).
    pub read_units_per_window: Option<u32>,
    /// That window in seconds (Graph: 10).
    pub read_window_secs: Option<f64>,
    /// Identity Protection requests per window per tenant (Graph: 1).
    pub identity_protection_per_window: Option<u32>,
    /// That window in seconds (Graph: 1).
    pub identity_protection_window_secs: Option<f64>,
    /// Mail requests per window per app (Graph: 10,000).
    pub mail_per_window: Option<u32>,
    /// That window in seconds (Graph: 600).
    pub mail_window_secs: Option<f64>,
    /// Requests per window per app for `/users/{id}/authentication/...` (Graph's reports
    /// limit lists authenticationMethod at 5 / 10 s; whether method CRUD is metered that way
    /// is unconfirmed, so unset means "counted as ordinary directory reads/writes only").
    pub auth_methods_per_window: Option<u32>,
    /// That window in seconds (10 when only the count is set).
    pub auth_methods_window_secs: Option<f64>,
    /// Upper bound of concurrent requests per bucket (AIMD grows up to this).
    pub max_in_flight: Option<u32>,
    /// Fraction of each quota the client aims at (default 0.98): the slack absorbs clock
    /// skew and scheduling jitter so a window is never exceeded.
    pub headroom: Option<f64>,
    /// `x-ms-throttle-limit-percentage` above which the client eases off (default 0.8, the
    /// value from which Graph sends the header; raise it for a server whose percentage is
    /// a sliding-window count that sits near 1.0 whenever a client runs at quota).
    pub early_slowdown_at: Option<f64>,
}
