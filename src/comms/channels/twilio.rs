//! SMS through Twilio Programmable Messaging: `POST
//! {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic (account SID and auth
//! token), form fields `To`, `From` or `MessagingServiceSid`, `Body`; 201 with the message
//! resource (its `sid`) (<https://www.twilio.com/docs/messaging/api/message-resource>).
//!
//! Errors carry `{"code","message","more_info","status"}`
//! (<https://www.twilio.com/docs/usage/twilios-response>): 429 / 20429 "Too Many Requests" is
//! never processed and safe to retry (<https://www.twilio.com/docs/errors/20429>); 21211
//! (invalid `To`), 21610 (unsubscribed recipient), 21614 (not a mobile number) and other 4xx
//! will be refused again; 401 / 20003 is a refused credential.

use std::fmt;

use futures::FutureExt;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::http::{self, host_of, provider_error, short};
use crate::comms::{
    Address, Channel, ChannelError, ChannelErrorKind, ChannelTraits, Content, Limits, Outbound,
    Receipt,
};
use crate::config::{ConfigError, ConfigErrorKind, Env, TwilioSender, TwilioSettings};
use crate::playbook::Channel as Kind;

/// Requests in flight at once (Twilio's own limit is per account concurrency, answered 20429).
const CONCURRENCY: usize = 8;

/// Twilio's error body.
#[derive(Deserialize)]
struct TwilioError {
    code: Option<u32>,
    message: Option<String>,
}

/// The created message.
#[derive(Deserialize)]
struct Created {
    sid: String,
}

/// Twilio SMS.
pub struct Twilio {
    http: reqwest::Client,
    url: reqwest::Url,
    account_sid: String,
    auth_token: SecretString,
    sender: TwilioSender,
    per_second: f64,
}

impl fmt::Debug for Twilio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Twilio")
            .field("host", &host_of(&self.url))
            .field("account_sid", &self.account_sid)
            .field("per_second", &self.per_second)
            .finish()
    }
}

impl Twilio {
    /// The channel for `settings`, its auth token read now.
    pub fn new(
        settings: &TwilioSettings,
        http: reqwest::Client,
        env: &Env,
    ) -> Result<Self, ConfigError> {
        let auth_token = settings
            .auth_token
            .load("channels.sms.twilio.auth_token", env)?;
        let url = reqwest::Url::parse(&format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            settings.base_url, settings.account_sid
        ))
        .map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("channels.sms.twilio.base_url: {e}"),
            )
        })?;
        Ok(Twilio {
            http,
            url,
            account_sid: settings.account_sid.clone(),
            auth_token,
            sender: settings.sender.clone(),
            per_second: settings.per_second,
        })
    }

    async fn send_one(&self, message: &Outbound) -> Result<Receipt, ChannelError> {
        let (Address::Phone(to), Content::Sms { text }) = (&message.to, &message.content) else {
            return Err(ChannelError::new(
                ChannelErrorKind::Rejected,
                "the SMS channel sends a text to a phone number only",
            ));
        };
        let sender = match &self.sender {
            TwilioSender::From(from) => ("From", from.as_str()),
            TwilioSender::MessagingService(sid) => ("MessagingServiceSid", sid.as_str()),
        };
        let form = [("To", to.as_str()), sender, ("Body", text.as_str())];
        let host = host_of(&self.url);
        let request = self
            .http
            .post(self.url.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&form);
        let answer = http::send(request, &host).await?;
        if answer.status == 201 || answer.is_success() {
            let created: Created = serde_json::from_slice(&answer.body).map_err(|_| {
                // Accepted, but we cannot say which message it is: sending it again would
                // duplicate it.
                ChannelError::new(
                    ChannelErrorKind::OutcomeUnknown,
                    format!("{host} accepted the message but its answer has no sid"),
                )
            })?;
            return Ok(Receipt {
                provider_id: Some(created.sid),
            });
        }
        let error: Option<TwilioError> = serde_json::from_slice(&answer.body).ok();
        let code = error.as_ref().and_then(|e| e.code);
        let kind = match (answer.status, code) {
            (_, Some(20429)) | (429, _) => ChannelErrorKind::Throttled,
            (_, Some(20003)) | (401 | 403, _) => ChannelErrorKind::Denied,
            (status, _) => http::kind_of_status(status),
        };
        let retry_after = answer.retry_after();
        Err(provider_error(
            kind,
            answer.status,
            code.map(|c| c.to_string()),
            // Twilio's messages quote the number ("The 'To' number +1… is not valid"): it is
            // masked like every address in a record.
            error
                .and_then(|e| e.message)
                .map(|m| short(&m.replace(to.as_str(), &message.to.masked())))
                .unwrap_or_else(|| format!("{host} answered {}", answer.status)),
            retry_after,
        ))
    }
}

impl Channel for Twilio {
    fn name(&self) -> &'static str {
        "sms/twilio"
    }

    fn kind(&self) -> Kind {
        Kind::Sms
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
            per_minute: self.per_second * 60.0,
            concurrency: CONCURRENCY,
            recipients_per_request: 1,
        }
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        self.send_one(message).boxed()
    }
}
