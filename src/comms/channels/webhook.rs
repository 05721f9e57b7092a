//! The generic JSON webhook (a SOAR, a chat bridge): `POST {url}` with the message's JSON
//! document, signed so the receiver can tell it came from us and is not a replay:
//! `X-Resetctl-Timestamp: <unix seconds>` and `X-Resetctl-Signature: sha256=<lowercase hex
//! HMAC-SHA256(secret, "<timestamp>.<body>")>` (the pattern of Stripe's and GitHub's webhook
//! signatures: the timestamp is bound into the MAC). Any 2xx is delivered.

use std::fmt;

use futures::FutureExt;
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::http::{self, host_of, provider_error};
use crate::comms::{
    Channel, ChannelError, ChannelErrorKind, ChannelTraits, Content, Limits, Outbound, Receipt,
};
use crate::config::{ConfigError, Env, WebhookSettings};
use crate::playbook::Channel as Kind;

/// The header with the signing time.
pub const TIMESTAMP_HEADER: &str = "X-Resetctl-Timestamp";
/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "X-Resetctl-Signature";
/// Posts in flight at once.
const CONCURRENCY: usize = 4;

/// `sha256=<hex>` of `"<timestamp>.<body>"` under `secret`: what a receiver recomputes.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A signed JSON webhook.
pub struct Webhook {
    http: reqwest::Client,
    url: reqwest::Url,
    secret: SecretString,
    per_minute: f64,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("host", &host_of(&self.url))
            .field("per_minute", &self.per_minute)
            .finish()
    }
}

impl Webhook {
    /// The channel for `settings`, its key read now.
    pub fn new(
        settings: &WebhookSettings,
        http: reqwest::Client,
        env: &Env,
    ) -> Result<Self, ConfigError> {
        let secret = settings.secret.load("channels.webhook.secret", env)?;
        let url = reqwest::Url::parse(&settings.url).map_err(|e| {
            ConfigError::new(
                crate::config::ConfigErrorKind::Invalid,
                format!("channels.webhook.url: {e}"),
            )
        })?;
        Ok(Webhook {
            http,
            url,
            secret,
            per_minute: settings.per_minute,
        })
    }

    async fn send_one(&self, message: &Outbound) -> Result<Receipt, ChannelError> {
        let Content::Json(document) = &message.content else {
            return Err(ChannelError::new(
                ChannelErrorKind::Rejected,
                "the webhook channel sends JSON documents only",
            ));
        };
        let body = serde_json::to_vec(document).expect("a JSON value serialises");
        let timestamp = jiff::Timestamp::now().as_second();
        let signed = signature(self.secret.expose_secret().as_bytes(), timestamp, &body);
        let host = host_of(&self.url);
        let request = self
            .http
            .post(self.url.clone())
            .header("Content-Type", "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signed)
            .body(body);
        let answer = http::send(request, &host).await?;
        if answer.is_success() {
            return Ok(Receipt::default());
        }
        Err(provider_error(
            http::kind_of_status(answer.status),
            answer.status,
            None,
            format!("{host} answered {}", answer.status),
            answer.retry_after(),
        ))
    }
}

impl Channel for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn kind(&self) -> Kind {
        Kind::Webhook
    }

    fn traits(&self) -> ChannelTraits {
        ChannelTraits {
            in_tenant: false,
            idempotent: false,
            carries_secrets: false,
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
    fn the_signature_binds_the_timestamp_and_the_body() {
        // HMAC-SHA256("secret", "1700000000.{}"), computed independently with
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac secret`.
        let s = signature(b"secret", 1_700_000_000, b"{}");
        assert_eq!(
            s,
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(s, signature(b"secret", 1_700_000_001, b"{}"));
        assert_ne!(s, signature(b"secret", 1_700_000_000, b"{ }"));
        assert_ne!(s, signature(b"other", 1_700_000_000, b"{}"));
    }
}
