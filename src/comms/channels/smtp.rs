//! Mail through an external SMTP relay (the out-of-band mail channel: it does not depend on
//! the tenant). lettre's tokio transport: STARTTLS required before any credential (587),
//! implicit TLS (465), or no TLS to a loopback relay only; AUTH PLAIN/LOGIN with a password,
//! or XOAUTH2 with an OAuth access token.
//!
//! Reply codes (RFC 5321 §4.2): 4xx is transient, 5xx permanent; 421 (the service is closing
//! the channel, what relays say when a sender goes too fast) and 452 (insufficient storage,
//! too many recipients) ask us to slow down; 530/534/535/538 and `5.7.x` authentication
//! replies are refused credentials (RFC 4954 §6).

use std::fmt;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use super::mime;
use crate::comms::{
    Channel, ChannelError, ChannelErrorKind, ChannelTraits, Limits, Outbound, Receipt,
};
use crate::config::{ConfigError, ConfigErrorKind, Env, SmtpAuth, SmtpSettings, SmtpTls};
use crate::playbook::Channel as Kind;

/// How long one SMTP conversation may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Connections used at once.
const CONCURRENCY: usize = 4;

/// An SMTP relay.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    per_minute: f64,
}

impl fmt::Debug for Smtp {
    // The transport holds the credentials: never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smtp")
            .field("host", &self.host)
            .field("per_minute", &self.per_minute)
            .finish()
    }
}

impl Smtp {
    /// The channel for `settings`, its password or token read now (from `env` or a file).
    /// Must be called within a tokio runtime (the connection pool runs a task on it).
    pub fn new(settings: &SmtpSettings, env: &Env) -> Result<Self, ConfigError> {
        let invalid = |m: String| ConfigError::new(ConfigErrorKind::Invalid, m);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(invalid(
                "channels.email.smtp: the SMTP channel is built within a tokio runtime".into(),
            ));
        }
        let builder = match settings.tls {
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                    .map_err(|e| invalid(format!("channels.email.smtp: {e}")))?
            }
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)
                .map_err(|e| invalid(format!("channels.email.smtp: {e}")))?,
            SmtpTls::None => {
                if !crate::config::is_loopback_host(&settings.host) {
                    return Err(invalid(
                        "channels.email.smtp.tls: `none` only to a loopback relay".into(),
                    ));
                }
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
        };
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(TIMEOUT))
            .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(CONCURRENCY as u32));
        match &settings.auth {
            SmtpAuth::None => {}
            SmtpAuth::Password { username, password } => {
                let secret = password.load("channels.email.smtp.password", env)?;
                builder = builder
                    .credentials(Credentials::new(
                        username.clone(),
                        secret.expose_secret().to_owned(),
                    ))
                    .authentication(vec![Mechanism::Plain, Mechanism::Login]);
            }
            SmtpAuth::Xoauth2 { username, token } => {
                let secret = token.load("channels.email.smtp.xoauth2_token", env)?;
                builder = builder
                    .credentials(Credentials::new(
                        username.clone(),
                        secret.expose_secret().to_owned(),
                    ))
                    .authentication(vec![Mechanism::Xoauth2]);
            }
        }
        let from = settings
            .from
            .parse::<Mailbox>()
            .map_err(|_| invalid("channels.email.smtp.from: not a mailbox".into()))?;
        Ok(Smtp {
            transport: builder.build(),
            from,
            host: format!("{}:{}", settings.host, settings.port),
            per_minute: settings.per_minute,
        })
    }

    async fn send_one(&self, message: &Outbound) -> Result<Receipt, ChannelError> {
        let email = mime::build(&self.from, message)?;
        match self.transport.send(email).await {
            Ok(response) => Ok(Receipt {
                // The relay's queue id, when its final reply names one (`250 2.0.0 Ok: queued
                // as 4F2B1`): the last word of the reply.
                provider_id: response
                    .message()
                    .last()
                    .and_then(|line| line.split_whitespace().last())
                    .filter(|id| id.len() <= 100)
                    .map(str::to_owned),
            }),
            Err(e) => Err(classify(&e, &self.host)),
        }
    }
}

/// The channel's error for lettre's. Nothing of the server's free text is kept (it may quote
/// an address): the reply code says enough.
fn classify(e: &lettre::transport::smtp::Error, host: &str) -> ChannelError {
    if let Some(code) = e.status() {
        let number: u16 = code.to_string().parse().unwrap_or(0);
        let enhanced = enhanced(&e.to_string());
        // Exchange Online's "client not authenticated" (5.7.57), "basic authentication is not
        // supported" (5.7.30) and "authentication unsuccessful" (5.7.139) come as 530/535/550.
        let refused_auth = enhanced
            .as_deref()
            .is_some_and(|c| matches!(c, "5.7.30" | "5.7.57" | "5.7.139" | "5.7.8" | "5.7.0"));
        let kind = match number {
            421 | 452 => ChannelErrorKind::Throttled,
            400..=499 => ChannelErrorKind::Unavailable,
            530 | 534 | 535 | 538 => ChannelErrorKind::Denied,
            _ if refused_auth => ChannelErrorKind::Denied,
            _ => ChannelErrorKind::Rejected,
        };
        return ChannelError {
            kind,
            status: Some(number),
            code: enhanced,
            retry_after: None,
            message: format!("the relay {host} answered {number}"),
        };
    }
    if e.is_tls() || e.is_client() {
        // No TLS where it is required, no matching AUTH mechanism, a certificate that does
        // not verify: nothing will go out until the configuration changes.
        return ChannelError::new(
            ChannelErrorKind::Denied,
            format!("cannot use the relay {host} securely: {}", lettre_kind(e)),
        );
    }
    if e.is_timeout() || !is_connect(e) {
        return ChannelError::new(
            ChannelErrorKind::OutcomeUnknown,
            format!(
                "the connection to {host} was lost mid-conversation (the message may have \
                 been sent)"
            ),
        );
    }
    ChannelError::new(
        ChannelErrorKind::Unavailable,
        format!("cannot reach the relay {host}"),
    )
}

/// Whether lettre failed to connect (nothing was sent) rather than mid-conversation. lettre
/// has no predicate for its `Connection` kind; its `Debug` names the kind.
fn is_connect(e: &lettre::transport::smtp::Error) -> bool {
    format!("{e:?}").contains("kind: Connection")
}

/// lettre's kind of client or TLS failure, without the server's text.
fn lettre_kind(e: &lettre::transport::smtp::Error) -> String {
    let text = e.to_string();
    if text.contains("STARTTLS is not supported") {
        "the relay does not offer STARTTLS".into()
    } else if text.contains("authentication mechanism") {
        "the relay offers no AUTH mechanism we may use".into()
    } else if e.is_tls() {
        "the TLS handshake failed".into()
    } else {
        "the relay's reply could not be used".into()
    }
}

/// The enhanced status code (`5.7.30`) of a reply, if any.
fn enhanced(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_digit() && c != '.'))
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
}

impl Channel for Smtp {
    fn name(&self) -> &'static str {
        "email/smtp"
    }

    fn kind(&self) -> Kind {
        Kind::Email
    }

    fn traits(&self) -> ChannelTraits {
        ChannelTraits {
            in_tenant: false,
            idempotent: false,
            carries_secrets: true,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            per_minute: self.per_minute,
            concurrency: CONCURRENCY,
            recipients_per_request: 1,
        }
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        self.send_one(message).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes_are_found() {
        assert_eq!(
            enhanced("permanent error (550): 5.7.30 Basic authentication is not supported")
                .as_deref(),
            Some("5.7.30")
        );
        assert_eq!(enhanced("transient error (421): try later"), None);
    }
}
