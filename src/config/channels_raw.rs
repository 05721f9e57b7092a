//! Raw serde shapes of the `channels:` and `audiences:` sections of `resetctl.yaml`. Key names
//! are a contract: add keys, never rename one. Unknown keys are rejected. Keys that would hold
//! a secret inline (`password`, `auth_token`, `access_key`, `secret`, a Teams `url`) exist
//! only to be refused with their position; their value is never stored (`IgnoredAny`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

/// A key that must not be in the file, kept only for its position.
pub(crate) type Refused = Option<Spanned<IgnoredAny>>;

/// `channels:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChannels {
    /// `channels.email`.
    pub email: Option<Spanned<RawEmail>>,
    /// `channels.sms`.
    pub sms: Option<Spanned<RawSms>>,
    /// `channels.teams`.
    pub teams: Option<Spanned<RawTeams>>,
    /// `channels.webhook`.
    pub webhook: Option<Spanned<RawWebhook>>,
}

/// `channels.email`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmail {
    /// Graph `sendMail` as a pool of mailboxes.
    pub graph: Option<Spanned<RawGraphMail>>,
    /// An external SMTP relay.
    pub smtp: Option<Spanned<RawSmtp>>,
}

/// `channels.email.graph`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGraphMail {
    /// Mailboxes (UPNs) the app sends as.
    pub mailboxes: Vec<Spanned<String>>,
    /// Messages per minute one mailbox may send.
    pub per_mailbox_per_minute: Option<Spanned<f64>>,
}

/// `channels.email.smtp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmtp {
    /// Relay host name or address.
    pub host: Spanned<String>,
    /// Port; by `tls` when absent (587, 465, 25).
    pub port: Option<u16>,
    /// `starttls` (default), `implicit` or `none`.
    pub tls: Option<Spanned<String>>,
    /// User name for AUTH.
    pub username: Option<String>,
    /// Environment variable holding the AUTH password.
    pub password_env: Option<Spanned<String>>,
    /// File holding the AUTH password.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding an OAuth access token (XOAUTH2).
    pub xoauth2_token_env: Option<Spanned<String>>,
    /// File holding an OAuth access token (XOAUTH2).
    pub xoauth2_token_file: Option<PathBuf>,
    /// The `From:` mailbox (`Name <address>` or an address).
    pub from: Spanned<String>,
    /// Messages per minute the relay accepts from us.
    pub per_minute: Option<Spanned<f64>>,
    /// Refused: an inline password.
    pub password: Refused,
    /// Refused: an inline token.
    pub xoauth2_token: Refused,
}

/// `channels.sms`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSms {
    /// Twilio Programmable Messaging.
    pub twilio: Option<Spanned<RawTwilio>>,
    /// Azure Communication Services SMS.
    pub acs: Option<Spanned<RawAcs>>,
}

/// `channels.sms.twilio`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTwilio {
    /// API base URL (default `https://api.twilio.com`).
    pub base_url: Option<Spanned<String>>,
    /// Account SID (`AC` and 32 hexadecimal digits).
    pub account_sid: Spanned<String>,
    /// Environment variable holding the auth token.
    pub auth_token_env: Option<Spanned<String>>,
    /// File holding the auth token.
    pub auth_token_file: Option<PathBuf>,
    /// Sender number (E.164) or alphanumeric sender id.
    pub from: Option<Spanned<String>>,
    /// Messaging Service SID (`MG…`), instead of `from`.
    pub messaging_service_sid: Option<Spanned<String>>,
    /// Messages per second (Twilio long code: 1).
    pub per_second: Option<Spanned<f64>>,
    /// Refused: an inline auth token.
    pub auth_token: Refused,
}

/// `channels.sms.acs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcs {
    /// Resource endpoint (`https://<resource>.communication.azure.com`).
    pub endpoint: Spanned<String>,
    /// Environment variable holding the access key (base64).
    pub access_key_env: Option<Spanned<String>>,
    /// File holding the access key (base64).
    pub access_key_file: Option<PathBuf>,
    /// Sender number (E.164).
    pub from: Spanned<String>,
    /// Messages per minute (documented default: 200).
    pub per_minute: Option<Spanned<f64>>,
    /// Refused: an inline access key.
    pub access_key: Refused,
}

/// `channels.teams`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTeams {
    /// A Teams Workflows ("When a Teams webhook request is received") trigger.
    pub workflow: Option<Spanned<RawWorkflow>>,
}

/// `channels.teams.workflow`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkflow {
    /// Environment variable holding the trigger URL (it holds `sig=`: a secret).
    pub url_env: Option<Spanned<String>>,
    /// File holding the trigger URL.
    pub url_file: Option<PathBuf>,
    /// Cards per minute.
    pub per_minute: Option<Spanned<f64>>,
    /// Refused: an inline URL (its `sig=` is a credential).
    pub url: Refused,
}

/// `channels.webhook`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    /// Where the JSON is posted.
    pub url: Spanned<String>,
    /// Environment variable holding the HMAC key.
    pub secret_env: Option<Spanned<String>>,
    /// File holding the HMAC key.
    pub secret_file: Option<PathBuf>,
    /// Posts per minute.
    pub per_minute: Option<Spanned<f64>>,
    /// Refused: an inline HMAC key.
    pub secret: Refused,
}

/// `audiences:`, by name.
pub(crate) type RawAudiences = BTreeMap<String, Spanned<RawAudience>>;

/// One audience of run-level messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudience {
    /// Mail addresses.
    #[serde(default)]
    pub email: Vec<Spanned<String>>,
    /// Mobile numbers (E.164).
    #[serde(default)]
    pub sms: Vec<Spanned<String>>,
    /// Post to the configured Teams workflow.
    #[serde(default)]
    pub teams: bool,
    /// Post to the configured webhook.
    #[serde(default)]
    pub webhook: bool,
}
