//! `resetctl.yaml`: tenants, their app registrations (a credential pool), Graph and token
//! endpoints, runner accounts and throttle quotas (README, Configuration).
//!
//! The file is parsed into raw serde types ([`raw`]) with unknown keys rejected, then turned
//! into validated [`TenantSettings`] ([`tenant`]). Secrets are never read from the file itself:
//! a key names an environment variable or a file, and the secret is loaded only when a
//! credential is built ([`AppSpec::load`]). A tenant no file names can come from the Azure SDK
//! environment variables ([`TenantSettings::from_azure_env`]).
//!
//! Invariant: a secret never appears inline in the YAML (such a file is rejected) nor in any
//! `Debug` output, log line or error of this module; errors never quote a value of the file.
//! A tenant's `graph_url` and `token_url` belong to the same cloud ([`Cloud`]).

mod channels;
mod channels_raw;
mod cloud;
mod error;
mod forward;
mod push;
mod raw;
mod serve;
mod tenant;
mod tickets;
mod triggers;

pub use channels::{
    AcsSettings, Audience, ChannelsSection, GraphMailSettings, SecretSource, SmtpAuth,
    SmtpSettings, SmtpTls, TwilioSender, TwilioSettings, WebhookSettings, WorkflowSettings,
    is_e164, is_loopback_host, service_url,
};
pub use cloud::Cloud;
pub use error::{ConfigError, ConfigErrorKind};
pub use forward::{ForwardSink, SyslogTransport};
pub use push::PushSettings;
pub use raw::QuotaOverrides;
pub use serve::{DEFAULT_LISTEN, ServeSection};
pub use tenant::{
    AppSpec, AuditSection, Config, CredentialSource, DEFAULT_AUTHORITY, DEFAULT_GRAPH_URL,
    DEMO_TENANT, Env, SigningAlg, TenantChoice, TenantSettings, TenantSize,
};
pub use tickets::{
    AutotaskSettings, ConnectWiseSettings, HaloPsaSettings, ServiceNowAuth, ServiceNowSettings,
    TicketSystem, TicketSystemKind, TicketWebhookSettings, TicketsConfig,
};
pub use triggers::TriggerRule;
