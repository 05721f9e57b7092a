//! SMS through Azure Communication Services: `POST {endpoint}/sms?api-version=2021-03-07`
//! with a JSON body, signed with the resource's access key (HMAC-SHA256), answered 202 with
//! one result per recipient (a 202 can hold a refused recipient)
//! (<https://learn.microsoft.com/rest/api/communication/sms/send>).
//!
//! The message carries the outbound key as `repeatabilityRequestId` and its first attempt's
//! time as `repeatabilityFirstSent`, so a retry of a message whose answer was lost is not
//! sent twice: the channel is idempotent.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::FutureExt;
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::http::{self, host_of, provider_error, short};
use crate::comms::{
    Address, Channel, ChannelError, ChannelErrorKind, ChannelTraits, Content, Limits, Outbound,
    Receipt,
};
use crate::config::{AcsSettings, ConfigError, ConfigErrorKind, Env};
use crate::playbook::Channel as Kind;

/// The API version whose body this module writes.
const API_VERSION: &str = "2021-03-07";
/// Requests in flight at once.
const CONCURRENCY: usize = 8;

/// The three headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `x-ms-date`: the RFC 1123 time that was signed.
    pub date: String,
    /// `x-ms-content-sha256`: base64 SHA-256 of the body.
    pub content_sha256: String,
    /// `Authorization`.
    pub authorization: String,
}

/// The string an ACS request signs: `VERB\npath_and_query\ndate;host;content_hash`, `host`
/// being the authority (with a port that is not the scheme's default)
/// (<https://learn.microsoft.com/azure/communication-services/tutorials/hmac-header-tutorial>).
pub fn string_to_sign(
    method: &str,
    path_and_query: &str,
    date: &str,
    host: &str,
    content_sha256: &str,
) -> String {
    format!("{method}\n{path_and_query}\n{date};{host};{content_sha256}")
}

/// Signs a request with a decoded access key.
pub fn sign(
    key: &[u8],
    method: &str,
    path_and_query: &str,
    host: &str,
    date: &str,
    body: &[u8],
) -> Signed {
    let content_sha256 = STANDARD.encode(Sha256::digest(body));
    let text = string_to_sign(method, path_and_query, date, host, &content_sha256);
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(text.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    Signed {
        date: date.to_owned(),
        content_sha256,
        authorization: format!(
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"
        ),
    }
}

/// RFC 1123 (`Tue, 26 Mar 2019 16:06:51 GMT`), as `x-ms-date` and
/// `repeatabilityFirstSent` are written.
pub fn rfc1123(t: jiff::Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// One recipient's result in the 202.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecipientResult {
    message_id: Option<String>,
    http_status_code: Option<u16>,
    error_message: Option<String>,
    successful: bool,
}

#[derive(Deserialize)]
struct SendResults {
    value: Vec<RecipientResult>,
}

/// The Azure error body of a refused request.
#[derive(Deserialize)]
struct AzureError {
    error: Option<AzureErrorBody>,
}

#[derive(Deserialize)]
struct AzureErrorBody {
    code: Option<String>,
    message: Option<String>,
}

/// ACS SMS.
pub struct Acs {
    http: reqwest::Client,
    url: reqwest::Url,
    key: SecretSlice<u8>,
    from: String,
    per_minute: f64,
}

impl fmt::Debug for Acs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acs")
            .field("host", &host_of(&self.url))
            .field("per_minute", &self.per_minute)
            .finish()
    }
}

impl Acs {
    /// The channel for `settings`, its access key read and decoded now.
    pub fn new(
        settings: &AcsSettings,
        http: reqwest::Client,
        env: &Env,
    ) -> Result<Self, ConfigError> {
        let key = settings
            .access_key
            .load("channels.sms.acs.access_key", env)?;
        let key = STANDARD.decode(key.expose_secret().trim()).map_err(|_| {
            ConfigError::new(
                ConfigErrorKind::Credential,
                "channels.sms.acs.access_key: the key is not base64 (copy it as the portal \
                 shows it)",
            )
        })?;
        let url = reqwest::Url::parse(&format!(
            "{}/sms?api-version={API_VERSION}",
            settings.endpoint
        ))
        .map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("channels.sms.acs.endpoint: {e}"),
            )
        })?;
        Ok(Acs {
            http,
            url,
            key: SecretSlice::from(key),
            from: settings.from.clone(),
            per_minute: settings.per_minute,
        })
    }

    async fn send_one(&self, message: &Outbound) -> Result<Receipt, ChannelError> {
        let (Address::Phone(to), Content::Sms { text }) = (&message.to, &message.content) else {
            return Err(ChannelError::new(
                ChannelErrorKind::Rejected,
                "the SMS channel sends a text to a phone number only",
            ));
        };
        let body = json!({
            "from": self.from,
            "smsRecipients": [{
                "to": to,
                "repeatabilityRequestId": message.key.to_string(),
                "repeatabilityFirstSent": rfc1123(message.first_sent),
            }],
            "message": text,
            "smsSendOptions": {"enableDeliveryReport": false},
        });
        let body = serde_json::to_vec(&body).expect("a JSON value serialises");
        let host = host_of(&self.url);
        let path_and_query = match self.url.query() {
            Some(q) => format!("{}?{q}", self.url.path()),
            None => self.url.path().to_owned(),
        };
        let signed = sign(
            self.key.expose_secret(),
            "POST",
            &path_and_query,
            &host,
            &rfc1123(jiff::Timestamp::now()),
            &body,
        );
        let request = self
            .http
            .post(self.url.clone())
            .header("x-ms-date", &signed.date)
            .header("x-ms-content-sha256", &signed.content_sha256)
            .header("Authorization", &signed.authorization)
            .header("Content-Type", "application/json")
            .body(body);
        let answer = http::send(request, &host).await?;
        if answer.is_success() {
            let results: SendResults = serde_json::from_slice(&answer.body).map_err(|_| {
                ChannelError::new(
                    ChannelErrorKind::OutcomeUnknown,
                    format!("{host} accepted the request but its answer has no results"),
                )
            })?;
            let Some(result) = results.value.into_iter().next() else {
                return Err(ChannelError::new(
                    ChannelErrorKind::OutcomeUnknown,
                    format!("{host} accepted the request but named no recipient"),
                ));
            };
            if result.successful {
                return Ok(Receipt {
                    provider_id: result.message_id,
                });
            }
            // The recipient's own status (400 an invalid number, 429 throttled, …).
            let status = result.http_status_code.unwrap_or(400);
            let kind = match status {
                429 => ChannelErrorKind::Throttled,
                500..=599 => ChannelErrorKind::Unavailable,
                _ => ChannelErrorKind::Rejected,
            };
            return Err(provider_error(
                kind,
                status,
                None,
                result
                    .error_message
                    .map(|m| short(&m.replace(to.as_str(), &message.to.masked())))
                    .unwrap_or_else(|| "the recipient was refused".into()),
                None,
            ));
        }
        let error = serde_json::from_slice::<AzureError>(&answer.body)
            .ok()
            .and_then(|e| e.error);
        Err(provider_error(
            http::kind_of_status(answer.status),
            answer.status,
            error.as_ref().and_then(|e| e.code.clone()),
            error
                .and_then(|e| e.message)
                .map(|m| short(&m.replace(to.as_str(), &message.to.masked())))
                .unwrap_or_else(|| format!("{host} answered {}", answer.status)),
            answer.retry_after(),
        ))
    }
}

impl Channel for Acs {
    fn name(&self) -> &'static str {
        "sms/acs"
    }

    fn kind(&self) -> Kind {
        Kind::Sms
    }

    fn traits(&self) -> ChannelTraits {
        ChannelTraits {
            in_tenant: false,
            idempotent: true,
            carries_secrets: true,
        }
    }

    fn limits(&self) -> Limits {
        // One recipient per request as this channel sends them (ACS takes up to 100, but
        // its limit counts recipients too: 200 per minute either way).
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

    /// The Azure SDK's own test vectors (azure-sdk-for-python,
    /// `sdk/communication/azure-communication-identity/tests/test_hmac.py`): access key
    /// `pw==`, date `Wed, 13 Apr 2022 18:09:12 GMT`, host
    /// `contoso.communicationservices.azure.com`, an empty body.
    #[test]
    fn signatures_match_the_documented_examples() {
        let key = STANDARD.decode("pw==").unwrap();
        let host = "contoso.communicationservices.azure.com";
        let date = "Wed, 13 Apr 2022 18:09:12 GMT";
        for (path, expected) in [
            ("/", "88MDmJhUR3m5QhFxb8ztShsSwlGrg7g/6XPnWf7QEO4="),
            ("/testPath", "RoCrHjw7fb9fpHSbqvRUY2xa8RBS0YvI1cxI1x8AS38="),
            (
                "/testPath?testQuery=yes",
                "il99+rd6V5O136roX/zVePCNle78HmvC4B7tu9zRH3I=",
            ),
        ] {
            let signed = sign(&key, "GET", path, host, date, b"");
            assert_eq!(
                signed.authorization,
                format!(
                    "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={expected}"
                ),
                "{path}"
            );
            assert_eq!(
                signed.content_sha256,
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
            );
        }
        assert_eq!(
            string_to_sign(
                "POST",
                "/sms?api-version=2021-03-07",
                "Tue, 26 Mar 2019 16:06:51 GMT",
                "127.0.0.1:8443",
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
            ),
            "POST\n/sms?api-version=2021-03-07\nTue, 26 Mar 2019 16:06:51 GMT;127.0.0.1:8443;\
             47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn dates_are_rfc_1123() {
        let t: jiff::Timestamp = "2019-03-26T16:06:51Z".parse().unwrap();
        assert_eq!(rfc1123(t), "Tue, 26 Mar 2019 16:06:51 GMT");
    }
}
