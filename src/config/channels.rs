//! The validated `channels:` and `audiences:` sections: which senders the organisation
//! configured and who receives run-level messages. Inert data: names of variables and files,
//! never a secret; the secrets are read by [`SecretSource::load`] only when a channel is
//! built (`comms::channels::build`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde_saphyr::{Location, Spanned};

use super::channels_raw::{
    RawAcs, RawAudience, RawAudiences, RawChannels, RawEmail, RawGraphMail, RawSms, RawSmtp,
    RawTeams, RawTwilio, RawWebhook, RawWorkflow, Refused,
};
use super::tenant::{is_env_name, position, resolve};
use super::{ConfigError, ConfigErrorKind, Env};
use crate::files::{MAX_SECRET_BYTES, is_world_readable, read_to_string_bounded};

/// Where a channel's secret comes from: a variable or a file, by name. `Debug` shows the
/// name, which is not secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// This environment variable.
    Env(String),
    /// This file (resolved against the configuration's directory); a trailing newline is
    /// ignored.
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret. `key` is the configuration key that named it
    /// (`channels.sms.twilio.auth_token`), for errors that name the key, never the value.
    pub fn load(&self, key: &str, env: &Env) -> Result<SecretString, ConfigError> {
        let fail = |m: String| ConfigError::new(ConfigErrorKind::Credential, m);
        let value = match self {
            SecretSource::Env(var) => env.var(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                fail(format!(
                    "{key}: the environment variable {var} named by `{}_env` is not set or is \
                     empty",
                    leaf(key)
                ))
            })?,
            SecretSource::File(path) => {
                if is_world_readable(path) {
                    tracing::warn!(
                        message = "A secret file can be read by every user of this machine; \
                                   make it owner-only (chmod 600).",
                        key = %key,
                        file = %path.display()
                    );
                }
                let text = read_to_string_bounded(path, MAX_SECRET_BYTES).map_err(|e| {
                    fail(format!(
                        "{key}: cannot read the file named by `{}_file` ({}): {e}",
                        leaf(key),
                        path.display()
                    ))
                })?;
                let value = text.trim_end_matches(['\r', '\n']).to_owned();
                if value.is_empty() {
                    return Err(fail(format!(
                        "{key}: the file named by `{}_file` ({}) is empty",
                        leaf(key),
                        path.display()
                    )));
                }
                value
            }
        };
        Ok(SecretString::from(value))
    }
}

/// The last component of a dotted key (`channels.sms.twilio.auth_token` → `auth_token`).
fn leaf(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// `channels.email.graph`: Graph `sendMail` as a pool of mailboxes.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphMailSettings {
    /// Mailboxes (UPNs) messages are sent as, spread over.
    pub mailboxes: Vec<String>,
    /// Messages per minute one mailbox may send (Exchange Online: about 30).
    pub per_mailbox_per_minute: f64,
}

/// How the SMTP relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, required before any credential (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all: accepted only for a relay on a loopback address (a local test server).
    None,
}

impl SmtpTls {
    /// The submission port of the mode (RFC 8314: 465 implicit TLS, 587 STARTTLS).
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }
    }
}

/// SMTP AUTH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpAuth {
    /// No authentication (a relay that accepts us by address).
    None,
    /// AUTH PLAIN or LOGIN with this user and password.
    Password {
        /// User name.
        username: String,
        /// The password.
        password: SecretSource,
    },
    /// AUTH XOAUTH2 with this user and an OAuth access token.
    Xoauth2 {
        /// User name (the mailbox the token is for).
        username: String,
        /// The access token.
        token: SecretSource,
    },
}

/// `channels.email.smtp`: an external relay (the out-of-band mail channel).
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpSettings {
    /// Relay host.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// Authentication.
    pub auth: SmtpAuth,
    /// The `From:` mailbox, as written (`Name <address>` or an address).
    pub from: String,
    /// Messages per minute.
    pub per_minute: f64,
}

/// Who Twilio messages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioSender {
    /// `From`: a number in E.164 or an alphanumeric sender id.
    From(String),
    /// `MessagingServiceSid`: Twilio picks the number.
    MessagingService(String),
}

/// `channels.sms.twilio`.
#[derive(Debug, Clone, PartialEq)]
pub struct TwilioSettings {
    /// API base URL without a trailing slash.
    pub base_url: String,
    /// Account SID.
    pub account_sid: String,
    /// The auth token.
    pub auth_token: SecretSource,
    /// The sender.
    pub sender: TwilioSender,
    /// Messages per second.
    pub per_second: f64,
}

/// `channels.sms.acs`.
#[derive(Debug, Clone, PartialEq)]
pub struct AcsSettings {
    /// Resource endpoint without a trailing slash.
    pub endpoint: String,
    /// The access key (base64, as the portal shows it).
    pub access_key: SecretSource,
    /// Sender number (E.164).
    pub from: String,
    /// Messages per minute.
    pub per_minute: f64,
}

/// `channels.teams.workflow`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowSettings {
    /// The trigger URL (a secret: it carries `sig=`).
    pub url: SecretSource,
    /// Cards per minute.
    pub per_minute: f64,
}

/// `channels.webhook`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// Where the JSON is posted.
    pub url: String,
    /// The HMAC-SHA256 key of the body signature.
    pub secret: SecretSource,
    /// Posts per minute.
    pub per_minute: f64,
}

/// The validated `channels:` section. A channel that is `None` is not configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelsSection {
    /// `channels.email.graph`.
    pub email_graph: Option<GraphMailSettings>,
    /// `channels.email.smtp`.
    pub email_smtp: Option<SmtpSettings>,
    /// `channels.sms.twilio`.
    pub sms_twilio: Option<TwilioSettings>,
    /// `channels.sms.acs`.
    pub sms_acs: Option<AcsSettings>,
    /// `channels.teams.workflow`.
    pub teams_workflow: Option<WorkflowSettings>,
    /// `channels.webhook`.
    pub webhook: Option<WebhookSettings>,
}

/// Who receives a run-level message (`audiences.<name>`), over each channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    /// Mail addresses.
    pub email: Vec<String>,
    /// Mobile numbers (E.164).
    pub sms: Vec<String>,
    /// A card to the Teams workflow.
    pub teams: bool,
    /// A post to the webhook.
    pub webhook: bool,
}

impl fmt::Display for SmtpTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Implicit => "implicit",
            SmtpTls::None => "none",
        })
    }
}

/// An error at a position of the file (the caller attaches the file).
pub(super) fn at(kind: ConfigErrorKind, message: String, location: &Location) -> ConfigError {
    ConfigError::new(kind, message).at(None, Some(position(location)))
}

pub(super) fn invalid(message: String, location: &Location) -> ConfigError {
    at(ConfigErrorKind::Invalid, message, location)
}

/// Refuses an inline secret key with its position.
pub(super) fn refuse(refused: &Refused, key: &str, instead: &str) -> Result<(), ConfigError> {
    match refused {
        Some(spanned) => Err(at(
            ConfigErrorKind::InlineSecret,
            format!(
                "{key}: an inline secret is not accepted; name an environment variable \
                 (`{instead}_env`) or a file (`{instead}_file`) instead"
            ),
            &spanned.referenced,
        )),
        None => Ok(()),
    }
}

/// Exactly one of `*_env` and `*_file`, the variable's name checked (a value that is not a
/// name is likely the secret itself: never shown).
pub(super) fn secret_source(
    key: &str,
    env: Option<Spanned<String>>,
    file: Option<PathBuf>,
    base_dir: Option<&Path>,
    section: &Location,
) -> Result<Option<SecretSource>, ConfigError> {
    match (env, file) {
        (Some(_), Some(_)) => Err(invalid(
            format!(
                "{key}: name either `{}_env` or `{}_file`, not both",
                leaf(key),
                leaf(key)
            ),
            section,
        )),
        (Some(var), None) => {
            if !is_env_name(&var.value) {
                return Err(at(
                    ConfigErrorKind::InlineSecret,
                    format!(
                        "{key}_env must be the name of an environment variable (letters, \
                         digits and `_`); if its value is the secret itself, remove it from \
                         the file and rotate the secret"
                    ),
                    &var.referenced,
                ));
            }
            Ok(Some(SecretSource::Env(var.value)))
        }
        (None, Some(path)) => Ok(Some(SecretSource::File(resolve(base_dir, path)))),
        (None, None) => Ok(None),
    }
}

pub(super) fn required_secret(
    key: &str,
    env: Option<Spanned<String>>,
    file: Option<PathBuf>,
    base_dir: Option<&Path>,
    section: &Location,
) -> Result<SecretSource, ConfigError> {
    secret_source(key, env, file, base_dir, section)?.ok_or_else(|| {
        invalid(
            format!(
                "{key}: name an environment variable (`{}_env`) or a file (`{}_file`)",
                leaf(key),
                leaf(key)
            ),
            section,
        )
    })
}

/// A positive, finite rate, or `default`.
fn rate(key: &str, value: Option<Spanned<f64>>, default: f64) -> Result<f64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if v.value.is_finite() && v.value > 0.0 => Ok(v.value),
        Some(v) => Err(invalid(
            format!("{key} must be a positive number"),
            &v.referenced,
        )),
    }
}

/// Whether `host` is a loopback name or address.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An `https` URL, or `http` to a loopback host (an emulator or a test server). Returned
/// without a trailing slash. The URL is named by key only: a value is never echoed.
pub fn service_url(key: &str, value: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("{key}: not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if url.host_str().is_some_and(is_loopback_host) => {}
        "http" => {
            return Err(format!(
                "{key}: plain http is accepted only for a loopback test server; use https"
            ));
        }
        _ => return Err(format!("{key}: the scheme must be https")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{key}: the URL has no host"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// `+` and 8 to 15 digits: an E.164 number (ITU-T E.164 allows at most 15 digits).
pub fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
        && !number.starts_with("+0")
}

/// A mail address lettre accepts (`local@domain`, no display name).
fn is_mail_address(address: &str) -> bool {
    address.parse::<lettre::Address>().is_ok()
}

impl ChannelsSection {
    pub(crate) fn from_raw(raw: RawChannels, base_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let mut out = ChannelsSection::default();
        if let Some(email) = raw.email {
            let RawEmail { graph, smtp } = email.value;
            if graph.is_none() && smtp.is_none() {
                return Err(invalid(
                    "channels.email: configure `graph`, `smtp` or both".into(),
                    &email.referenced,
                ));
            }
            if let Some(graph) = graph {
                out.email_graph = Some(graph_mail(graph.value, &graph.referenced)?);
            }
            if let Some(smtp) = smtp {
                out.email_smtp = Some(smtp_settings(smtp.value, &smtp.referenced, base_dir)?);
            }
        }
        if let Some(sms) = raw.sms {
            let RawSms { twilio, acs } = sms.value;
            if twilio.is_none() && acs.is_none() {
                return Err(invalid(
                    "channels.sms: configure `acs`, `twilio` or both".into(),
                    &sms.referenced,
                ));
            }
            if let Some(t) = twilio {
                out.sms_twilio = Some(twilio_settings(t.value, &t.referenced, base_dir)?);
            }
            if let Some(a) = acs {
                out.sms_acs = Some(acs_settings(a.value, &a.referenced, base_dir)?);
            }
        }
        if let Some(teams) = raw.teams {
            let RawTeams { workflow } = teams.value;
            let Some(w) = workflow else {
                return Err(invalid(
                    "channels.teams: configure `workflow`".into(),
                    &teams.referenced,
                ));
            };
            out.teams_workflow = Some(workflow_settings(w.value, &w.referenced, base_dir)?);
        }
        if let Some(w) = raw.webhook {
            out.webhook = Some(webhook_settings(w.value, &w.referenced, base_dir)?);
        }
        Ok(out)
    }
}

fn graph_mail(raw: RawGraphMail, section: &Location) -> Result<GraphMailSettings, ConfigError> {
    if raw.mailboxes.is_empty() {
        return Err(invalid(
            "channels.email.graph.mailboxes: name at least one mailbox".into(),
            section,
        ));
    }
    let mut mailboxes = Vec::with_capacity(raw.mailboxes.len());
    for m in raw.mailboxes {
        if !is_mail_address(&m.value) {
            return Err(invalid(
                "channels.email.graph.mailboxes: each entry must be a mailbox address \
                 (user@domain)"
                    .into(),
                &m.referenced,
            ));
        }
        if mailboxes
            .iter()
            .any(|x: &String| x.eq_ignore_ascii_case(&m.value))
        {
            return Err(invalid(
                "channels.email.graph.mailboxes: a mailbox is named twice".into(),
                &m.referenced,
            ));
        }
        mailboxes.push(m.value);
    }
    Ok(GraphMailSettings {
        mailboxes,
        per_mailbox_per_minute: rate(
            "channels.email.graph.per_mailbox_per_minute",
            raw.per_mailbox_per_minute,
            30.0,
        )?,
    })
}

fn smtp_settings(
    raw: RawSmtp,
    section: &Location,
    base_dir: Option<&Path>,
) -> Result<SmtpSettings, ConfigError> {
    refuse(&raw.password, "channels.email.smtp.password", "password")?;
    refuse(
        &raw.xoauth2_token,
        "channels.email.smtp.xoauth2_token",
        "xoauth2_token",
    )?;
    let tls = match raw.tls {
        None => SmtpTls::StartTls,
        Some(t) => match t.value.as_str() {
            "starttls" => SmtpTls::StartTls,
            "implicit" => SmtpTls::Implicit,
            "none" => {
                if !is_loopback_host(&raw.host.value) {
                    return Err(invalid(
                        "channels.email.smtp.tls: `none` is accepted only for a relay on a \
                         loopback address (a local test server); use starttls or implicit"
                            .into(),
                        &t.referenced,
                    ));
                }
                SmtpTls::None
            }
            _ => {
                return Err(invalid(
                    "channels.email.smtp.tls: expected one of starttls, implicit, none".into(),
                    &t.referenced,
                ));
            }
        },
    };
    let host = raw.host.value.trim().to_owned();
    if host.is_empty() || host.contains(['/', ' ', ':']) && !host.starts_with('[') {
        return Err(invalid(
            "channels.email.smtp.host: a host name or address, without scheme or port".into(),
            &raw.host.referenced,
        ));
    }
    let password = secret_source(
        "channels.email.smtp.password",
        raw.password_env,
        raw.password_file,
        base_dir,
        section,
    )?;
    let token = secret_source(
        "channels.email.smtp.xoauth2_token",
        raw.xoauth2_token_env,
        raw.xoauth2_token_file,
        base_dir,
        section,
    )?;
    let auth = match (raw.username, password, token) {
        (None, None, None) => SmtpAuth::None,
        (Some(username), Some(password), None) => SmtpAuth::Password { username, password },
        (Some(username), None, Some(token)) => SmtpAuth::Xoauth2 { username, token },
        (_, Some(_), Some(_)) => {
            return Err(invalid(
                "channels.email.smtp: name a password or an XOAUTH2 token, not both".into(),
                section,
            ));
        }
        (None, _, _) => {
            return Err(invalid(
                "channels.email.smtp: a password or token needs `username`".into(),
                section,
            ));
        }
        (Some(_), None, None) => {
            return Err(invalid(
                "channels.email.smtp: `username` needs `password_env`/`password_file` or \
                 `xoauth2_token_env`/`xoauth2_token_file`"
                    .into(),
                section,
            ));
        }
    };
    if raw.from.value.parse::<lettre::message::Mailbox>().is_err() {
        return Err(invalid(
            "channels.email.smtp.from: expected a mailbox (`Name <address>` or an address)".into(),
            &raw.from.referenced,
        ));
    }
    Ok(SmtpSettings {
        host,
        port: raw.port.unwrap_or(tls.default_port()),
        tls,
        auth,
        from: raw.from.value,
        per_minute: rate("channels.email.smtp.per_minute", raw.per_minute, 30.0)?,
    })
}

/// `prefix` and 32 hexadecimal digits: a Twilio SID.
fn is_twilio_sid(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An alphanumeric sender id: 1 to 11 letters, digits and spaces, at least one letter
/// (<https://help.twilio.com/articles/223181348>).
fn is_alphanumeric_sender(value: &str) -> bool {
    (1..=11).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && value.bytes().any(|b| b.is_ascii_alphabetic())
}

fn twilio_settings(
    raw: RawTwilio,
    section: &Location,
    base_dir: Option<&Path>,
) -> Result<TwilioSettings, ConfigError> {
    refuse(
        &raw.auth_token,
        "channels.sms.twilio.auth_token",
        "auth_token",
    )?;
    let base_url = match raw.base_url {
        None => "https://api.twilio.com".to_owned(),
        Some(u) => service_url("channels.sms.twilio.base_url", &u.value)
            .map_err(|m| invalid(m, &u.referenced))?,
    };
    if !is_twilio_sid(&raw.account_sid.value, "AC") {
        return Err(invalid(
            "channels.sms.twilio.account_sid: expected `AC` and 32 hexadecimal digits".into(),
            &raw.account_sid.referenced,
        ));
    }
    let auth_token = required_secret(
        "channels.sms.twilio.auth_token",
        raw.auth_token_env,
        raw.auth_token_file,
        base_dir,
        section,
    )?;
    let sender = match (raw.from, raw.messaging_service_sid) {
        (Some(from), None) => {
            if !(is_e164(&from.value) || is_alphanumeric_sender(&from.value)) {
                return Err(invalid(
                    "channels.sms.twilio.from: expected a number in E.164 (+14155550100) or \
                     an alphanumeric sender id"
                        .into(),
                    &from.referenced,
                ));
            }
            TwilioSender::From(from.value)
        }
        (None, Some(sid)) => {
            if !is_twilio_sid(&sid.value, "MG") {
                return Err(invalid(
                    "channels.sms.twilio.messaging_service_sid: expected `MG` and 32 \
                     hexadecimal digits"
                        .into(),
                    &sid.referenced,
                ));
            }
            TwilioSender::MessagingService(sid.value)
        }
        _ => {
            return Err(invalid(
                "channels.sms.twilio: name exactly one of `from` and `messaging_service_sid`"
                    .into(),
                section,
            ));
        }
    };
    Ok(TwilioSettings {
        base_url,
        account_sid: raw.account_sid.value,
        auth_token,
        sender,
        per_second: rate("channels.sms.twilio.per_second", raw.per_second, 1.0)?,
    })
}

fn acs_settings(
    raw: RawAcs,
    section: &Location,
    base_dir: Option<&Path>,
) -> Result<AcsSettings, ConfigError> {
    refuse(&raw.access_key, "channels.sms.acs.access_key", "access_key")?;
    let endpoint = service_url("channels.sms.acs.endpoint", &raw.endpoint.value)
        .map_err(|m| invalid(m, &raw.endpoint.referenced))?;
    let access_key = required_secret(
        "channels.sms.acs.access_key",
        raw.access_key_env,
        raw.access_key_file,
        base_dir,
        section,
    )?;
    if !is_e164(&raw.from.value) {
        return Err(invalid(
            "channels.sms.acs.from: expected a number in E.164 (+18005550100)".into(),
            &raw.from.referenced,
        ));
    }
    Ok(AcsSettings {
        endpoint,
        access_key,
        from: raw.from.value,
        per_minute: rate("channels.sms.acs.per_minute", raw.per_minute, 200.0)?,
    })
}

fn workflow_settings(
    raw: RawWorkflow,
    section: &Location,
    base_dir: Option<&Path>,
) -> Result<WorkflowSettings, ConfigError> {
    refuse(&raw.url, "channels.teams.workflow.url", "url")?;
    Ok(WorkflowSettings {
        url: required_secret(
            "channels.teams.workflow.url",
            raw.url_env,
            raw.url_file,
            base_dir,
            section,
        )?,
        per_minute: rate("channels.teams.workflow.per_minute", raw.per_minute, 60.0)?,
    })
}

fn webhook_settings(
    raw: RawWebhook,
    section: &Location,
    base_dir: Option<&Path>,
) -> Result<WebhookSettings, ConfigError> {
    refuse(&raw.secret, "channels.webhook.secret", "secret")?;
    Ok(WebhookSettings {
        url: service_url("channels.webhook.url", &raw.url.value)
            .map_err(|m| invalid(m, &raw.url.referenced))?,
        secret: required_secret(
            "channels.webhook.secret",
            raw.secret_env,
            raw.secret_file,
            base_dir,
            section,
        )?,
        per_minute: rate("channels.webhook.per_minute", raw.per_minute, 600.0)?,
    })
}

/// Validates `audiences:` against the channels: every audience names someone, over a channel
/// that is configured, at addresses that are addresses.
pub(crate) fn audiences_from_raw(
    raw: RawAudiences,
    channels: &ChannelsSection,
) -> Result<BTreeMap<String, Audience>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, spanned) in raw {
        let here = &spanned.referenced;
        let RawAudience {
            email,
            sms,
            teams,
            webhook,
        } = spanned.value;
        let key = format!("audiences.{name}");
        if !name.starts_with(|c: char| c.is_ascii_lowercase())
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid(
                "audiences: a name is lower-case letters, digits and `_`".into(),
                here,
            ));
        }
        if email.is_empty() && sms.is_empty() && !teams && !webhook {
            return Err(invalid(format!("{key}: names no recipient"), here));
        }
        let needs = |configured: bool, channel: &str| {
            if configured {
                Ok(())
            } else {
                Err(invalid(
                    format!("{key} uses {channel}, which `channels.{channel}` does not configure"),
                    here,
                ))
            }
        };
        if !email.is_empty() {
            needs(
                channels.email_graph.is_some() || channels.email_smtp.is_some(),
                "email",
            )?;
        }
        if !sms.is_empty() {
            needs(
                channels.sms_acs.is_some() || channels.sms_twilio.is_some(),
                "sms",
            )?;
        }
        if teams {
            needs(channels.teams_workflow.is_some(), "teams")?;
        }
        if webhook {
            needs(channels.webhook.is_some(), "webhook")?;
        }
        for address in &email {
            if !is_mail_address(&address.value) {
                return Err(invalid(
                    format!("{key}.email: expected a mail address (user@domain)"),
                    &address.referenced,
                ));
            }
        }
        for number in &sms {
            if !is_e164(&number.value) {
                return Err(invalid(
                    format!("{key}.sms: expected a number in E.164 (+14255550100)"),
                    &number.referenced,
                ));
            }
        }
        out.insert(
            name,
            Audience {
                email: email.into_iter().map(|s| s.value).collect(),
                sms: sms.into_iter().map(|s| s.value).collect(),
                teams,
                webhook,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    /// The configuration contract's example, as an operator writes it.
    const SAMPLE: &str = r#"
channels:
  email:
    graph:
      mailboxes: [incident-noreply@contoso.com, incident-noreply2@contoso.com]
      per_mailbox_per_minute: 30
    smtp:
      host: smtp.relay.example
      port: 587
      tls: starttls
      username: resetctl
      password_env: SMTP_PASSWORD
      from: "Contoso Security <security@contoso.com>"
      per_minute: 600
  sms:
    twilio:
      base_url: https://api.twilio.com
      account_sid: AC0123456789abcdef0123456789abcdef
      auth_token_env: TWILIO_TOKEN
      from: "+14155550100"
      per_second: 1
    acs:
      endpoint: https://contoso.communication.azure.com
      access_key_file: secrets/acs.key
      from: "+18005550100"
      per_minute: 200
  teams:
    workflow:
      url_env: TEAMS_WORKFLOW_URL
  webhook:
    url: https://soar.example/hooks/resetctl
    secret_env: WEBHOOK_SECRET
audiences:
  helpdesk: { email: [helpdesk@contoso.com], sms: ["+14255550100"], teams: true }
  soc:      { email: [soc@contoso.com], teams: true, webhook: true }
  manual_queue: { email: [identity-team@contoso.com], teams: true }
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(
            text,
            Some(Path::new("/etc/resetctl/r.yaml")),
            &Env::default(),
        )
    }

    #[test]
    fn the_contract_example_parses() {
        let c = parse(SAMPLE).unwrap();
        let graph = c.channels.email_graph.as_ref().unwrap();
        assert_eq!(graph.mailboxes.len(), 2);
        assert_eq!(graph.per_mailbox_per_minute, 30.0);
        let smtp = c.channels.email_smtp.as_ref().unwrap();
        assert_eq!(
            (smtp.port, smtp.tls, smtp.per_minute),
            (587, SmtpTls::StartTls, 600.0)
        );
        assert_eq!(
            smtp.auth,
            SmtpAuth::Password {
                username: "resetctl".into(),
                password: SecretSource::Env("SMTP_PASSWORD".into())
            }
        );
        let twilio = c.channels.sms_twilio.as_ref().unwrap();
        assert_eq!(twilio.sender, TwilioSender::From("+14155550100".into()));
        let acs = c.channels.sms_acs.as_ref().unwrap();
        assert_eq!(
            acs.access_key,
            SecretSource::File("/etc/resetctl/secrets/acs.key".into())
        );
        assert_eq!(c.channels.teams_workflow.as_ref().unwrap().per_minute, 60.0);
        assert_eq!(c.audiences.len(), 3);
        assert_eq!(c.audiences["helpdesk"].sms, ["+14255550100"]);
        assert!(c.audiences["soc"].webhook);
    }

    /// `(yaml, kind, line, what the message says)`: each error points at its line.
    #[test]
    fn each_error_has_its_file_line_and_column() {
        let cases: &[(&str, ConfigErrorKind, u32, &str)] = &[
            (
                "channels:\n  sms:\n    twilio:\n      account_sid: AC0123456789abcdef0123456789abcdef\n      auth_token: hunter2-token\n      from: \"+14155550100\"\n",
                ConfigErrorKind::InlineSecret,
                5,
                "auth_token",
            ),
            (
                "channels:\n  email:\n    smtp:\n      host: smtp.example\n      username: u\n      password: hunter2-token\n      from: a@b.example\n",
                ConfigErrorKind::InlineSecret,
                6,
                "password",
            ),
            (
                "channels:\n  teams:\n    workflow:\n      url: https://x.logic.azure.com/w?sig=hunter2-token\n",
                ConfigErrorKind::InlineSecret,
                4,
                "url_env",
            ),
            (
                "channels:\n  sms:\n    acs:\n      endpoint: https://c.communication.azure.com\n      access_key: hunter2-token\n      from: \"+18005550100\"\n",
                ConfigErrorKind::InlineSecret,
                5,
                "access_key",
            ),
            (
                "channels:\n  webhook:\n    url: https://soar.example/h\n    secret: hunter2-token\n",
                ConfigErrorKind::InlineSecret,
                4,
                "secret",
            ),
            (
                "channels:\n  webhook:\n    url: https://soar.example/h\n    secret_env: hunter2-token!\n",
                ConfigErrorKind::InlineSecret,
                4,
                "secret_env",
            ),
            (
                "channels:\n  email:\n    smtp:\n      host: smtp.example.com\n      tls: none\n      from: a@b.example\n",
                ConfigErrorKind::Invalid,
                5,
                "loopback",
            ),
            (
                "channels:\n  email:\n    smtp:\n      host: smtp.example.com\n      tls: sometimes\n      from: a@b.example\n",
                ConfigErrorKind::Invalid,
                5,
                "starttls",
            ),
            (
                "channels:\n  email:\n    smtp:\n      host: smtp.example.com\n      from: a@b.example\n      pasword_env: X\n",
                ConfigErrorKind::Syntax,
                6,
                "pasword_env",
            ),
            (
                "channels:\n  sms:\n    acs:\n      endpoint: http://acs.example.com\n      access_key_env: K\n      from: \"+18005550100\"\n",
                ConfigErrorKind::Invalid,
                4,
                "plain http",
            ),
            (
                "channels:\n  sms:\n    twilio:\n      account_sid: AC123\n      auth_token_env: T\n      from: \"+14155550100\"\n",
                ConfigErrorKind::Invalid,
                4,
                "account_sid",
            ),
            (
                "channels:\n  email:\n    graph:\n      mailboxes:\n        - a@contoso.com\n        - not-a-mailbox\n",
                ConfigErrorKind::Invalid,
                6,
                "mailbox",
            ),
            (
                "channels:\n  webhook:\n    url: https://soar.example/h\n    secret_env: S\naudiences:\n  soc: { email: [soc@contoso.com] }\n",
                ConfigErrorKind::Invalid,
                6,
                "channels.email",
            ),
            (
                "channels:\n  sms:\n    acs:\n      endpoint: https://c.communication.azure.com\n      access_key_env: K\n      from: \"+18005550100\"\naudiences:\n  helpdesk:\n    sms:\n      - \"+1425\"\n",
                ConfigErrorKind::Invalid,
                10,
                "E.164",
            ),
        ];
        for (yaml, kind, line, says) in cases {
            let err = parse(yaml).unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.kind, *kind, "{yaml}\n=> {shown}");
            assert!(
                shown.starts_with(&format!("/etc/resetctl/r.yaml:{line}:")),
                "{yaml}\n=> {shown}"
            );
            assert!(shown.contains(says), "{yaml}\n=> {shown}");
            assert!(!format!("{shown} {err:?}").contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn tls_none_is_for_a_loopback_relay_only() {
        let c = parse(
            "channels:\n  email:\n    smtp:\n      host: 127.0.0.1\n      port: 2525\n      tls: none\n      from: a@b.example\n",
        )
        .unwrap();
        let smtp = c.channels.email_smtp.unwrap();
        assert_eq!(
            (smtp.tls, smtp.port, smtp.auth),
            (SmtpTls::None, 2525, SmtpAuth::None)
        );
        assert!(is_loopback_host("localhost") && is_loopback_host("[::1]"));
        assert!(!is_loopback_host("smtp.example.com") && !is_loopback_host("10.0.0.1"));
    }

    #[test]
    fn secrets_load_from_env_or_file_and_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "file-secret\n").unwrap();
        let secret = SecretSource::File(file)
            .load("channels.webhook.secret", &Env::default())
            .unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&secret), "file-secret");
        let env = Env::from_pairs([("T", "env-secret")]);
        let secret = SecretSource::Env("T".into())
            .load("channels.sms.twilio.auth_token", &env)
            .unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&secret), "env-secret");
        assert!(!format!("{secret:?}").contains("env-secret"));
        let err = SecretSource::Env("MISSING".into())
            .load("channels.sms.twilio.auth_token", &env)
            .unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Credential);
        assert!(
            err.to_string().contains("channels.sms.twilio.auth_token"),
            "{err}"
        );
        assert!(err.to_string().contains("auth_token_env"), "{err}");
    }

    #[test]
    fn numbers_and_senders() {
        assert!(is_e164("+14155550100") && is_e164("+447700900123"));
        assert!(!is_e164("14155550100") && !is_e164("+1415") && !is_e164("+0123456789"));
        assert!(is_alphanumeric_sender("Contoso") && !is_alphanumeric_sender("12345"));
    }
}
