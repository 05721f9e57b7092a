//! The [`Channel`] seam: one sender of messages (Graph `sendMail`, SMTP, Twilio, ACS SMS,
//! a Teams Workflows webhook, a generic webhook). Each is built from inert configuration and
//! knows its provider's wire format, documented limits and error codes; pacing, retries and
//! journaling are done around it, the same way for every channel.
//!
//! Its error and its limits are its own: nothing above a channel branches on a provider's
//! status codes.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;

use super::message::Outbound;
use crate::playbook::Channel as Kind;

/// What a channel is allowed to be used for, decided by what it is (not by configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelTraits {
    /// It runs inside the (possibly compromised) tenant: Graph mail, Teams. An
    /// `out_of_band` notice never uses such a channel.
    pub in_tenant: bool,
    /// It takes an idempotency key, so a message whose outcome is unknown may be sent again
    /// without reaching the recipient twice (ACS `repeatability-request-id`).
    pub idempotent: bool,
    /// It reaches one verified person at an address from the directory (SMS to a mobile,
    /// mail to a mailbox), so it may carry a secret to that person. A card posted to a Teams
    /// chat or channel, or a webhook, never may.
    pub carries_secrets: bool,
}

/// A channel's documented throughput, which pacing keeps under and capacity estimates use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Messages per minute the channel accepts in total (a pool of mailboxes multiplies the
    /// per-mailbox limit).
    pub per_minute: f64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Recipients one request may carry (ACS takes up to 100; most take 1).
    pub recipients_per_request: usize,
}

/// What the provider said when it accepted a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's id for the message (Twilio `sid`, ACS `messageId`), when it gives one.
    pub provider_id: Option<String>,
}

/// What the sender of a message can do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelErrorKind {
    /// The provider asked us to slow down (429, Twilio 20429): nothing was sent; safe to
    /// send again after `retry_after`.
    Throttled,
    /// The provider could not be reached or failed before accepting (connection refused,
    /// 5xx with nothing accepted): safe to send again.
    Unavailable,
    /// The request left and no answer came back: the message may have been sent. Sent again
    /// only over an idempotent channel.
    OutcomeUnknown,
    /// The provider refused this message and will refuse it again (an invalid number, a
    /// mailbox that does not exist, a body too long).
    Rejected,
    /// Credentials or configuration were not accepted (401, 403): no message will go out
    /// over this channel until an operator fixes it.
    Denied,
}

impl ChannelErrorKind {
    /// The kind as operators read it in reports and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelErrorKind::Throttled => "throttled",
            ChannelErrorKind::Unavailable => "unavailable",
            ChannelErrorKind::OutcomeUnknown => "outcome unknown",
            ChannelErrorKind::Rejected => "rejected",
            ChannelErrorKind::Denied => "denied",
        }
    }
}

impl fmt::Display for ChannelErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed send. Its `Display` is what the journal and reports show; it never holds the
/// message, a credential or a response body beyond the provider's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelError {
    /// What the sender can do about it.
    pub kind: ChannelErrorKind,
    /// HTTP status (or SMTP reply code), when the provider answered.
    pub status: Option<u16>,
    /// The provider's error code (`20429`, `21211`, `ErrorInvalidRecipients`).
    pub code: Option<String>,
    /// How long the provider asked us to wait, for [`ChannelErrorKind::Throttled`].
    pub retry_after: Option<Duration>,
    /// A short, secret-free explanation.
    pub message: String,
}

impl ChannelError {
    /// An error of `kind` with an explanation and nothing else.
    pub fn new(kind: ChannelErrorKind, message: impl Into<String>) -> Self {
        ChannelError {
            kind,
            status: None,
            code: None,
            retry_after: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        match (self.status, &self.code) {
            (Some(status), Some(code)) => write!(f, " ({status} {code})")?,
            (Some(status), None) => write!(f, " ({status})")?,
            (None, Some(code)) => write!(f, " ({code})")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ChannelError {}

/// One configured sender of messages.
pub trait Channel: Send + Sync {
    /// A stable name for reports and the journal: `email/graph`, `email/smtp`,
    /// `sms/twilio`, `sms/acs`, `teams/workflow`, `webhook`.
    fn name(&self) -> &'static str;

    /// The playbook's channel this sender serves.
    fn kind(&self) -> Kind;

    /// What the channel may be used for.
    fn traits(&self) -> ChannelTraits;

    /// Its documented throughput.
    fn limits(&self) -> Limits;

    /// Send one message, once: no retry, no pacing (done around the channel). The content
    /// must match the channel's kind (mail content to a mail channel, and so on); a mismatch
    /// is [`ChannelErrorKind::Rejected`].
    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<Receipt, ChannelError>>;

    /// Send one message, first awaiting `leaving` at the last moment before the first request
    /// leaves: after any wait for the channel's pace, so a delivery journal records the
    /// intent of a message that is really on its way, not one still queued (a crash while
    /// queued then leaves nothing "maybe sent"). When `leaving` fails nothing is sent and the
    /// error is [`ChannelErrorKind::Unavailable`]. A paced channel overrides this; a bare one
    /// sends at once.
    fn send_when_leaving<'a>(
        &'a self,
        message: &'a Outbound,
        leaving: BoxFuture<'a, Result<(), String>>,
    ) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        Box::pin(async move {
            leaving
                .await
                .map_err(|why| ChannelError::new(ChannelErrorKind::Unavailable, why))?;
            self.send(message).await
        })
    }
}
