//! [`Outbound`]: one message on its way to one address over one channel.
//!
//! The content may carry a secret (a temporary password or Access Pass): its `Debug` shows
//! only sizes, so a message can be logged or put in an error without leaking what it says.

use std::fmt;

/// Where a message goes, as the channel needs it. Every address comes from the directory or
/// from the operator's configuration, never from a request.
#[derive(Clone, PartialEq, Eq)]
pub enum Address {
    /// A mailbox or a distribution group's address (Exchange expands a group).
    Email(String),
    /// A mobile number in E.164 (`+14155550100`).
    Phone(String),
    /// A card posted by the configured Teams Workflows webhook; `mention` is the UPN of the
    /// person the card @-mentions, if any (the flow decides the chat or channel).
    Teams {
        /// UPN to mention, with the display name.
        mention: Option<(String, String)>,
    },
    /// The configured webhook's endpoint.
    Webhook,
}

impl Address {
    /// The address with most of it hidden, for the journal, the trail and reports:
    /// `a***@contoso.com`, `+44*******123`.
    pub fn masked(&self) -> String {
        match self {
            Address::Email(mail) => mask_email(mail),
            Address::Phone(number) => mask_phone(number),
            Address::Teams {
                mention: Some((upn, _)),
            } => format!("teams:{}", mask_email(upn)),
            Address::Teams { mention: None } => "teams:channel".into(),
            Address::Webhook => "webhook".into(),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.masked())
    }
}

/// `alice@contoso.com` → `a***@contoso.com`; a value without `@` keeps its first character.
fn mask_email(mail: &str) -> String {
    let (local, domain) = mail.split_once('@').unwrap_or((mail, ""));
    let first: String = local.chars().take(1).collect();
    if domain.is_empty() {
        format!("{first}***")
    } else {
        format!("{first}***@{domain}")
    }
}

/// `+447700900123` → `+44*******123`: country code and the last three digits.
fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
}

/// What a message says, in the form its channel carries.
#[derive(Clone, PartialEq)]
pub enum Content {
    /// One `multipart/alternative` mail: HTML and plain text of the same message.
    Email {
        /// Subject line.
        subject: String,
        /// The HTML part (user data already escaped).
        html: String,
        /// The plain-text part.
        text: String,
    },
    /// A text message (control characters already stripped).
    Sms {
        /// The body.
        text: String,
    },
    /// A Teams Adaptive Card (1.5), with the text Teams shows in notifications.
    Card {
        /// The card (`"type": "AdaptiveCard"`).
        card: serde_json::Value,
        /// Plain-text summary (the notification preview and the webhook's fallback).
        summary: String,
    },
    /// A JSON document for the generic webhook.
    Json(serde_json::Value),
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Email { html, text, .. } => write!(
                f,
                "Content::Email(html {} bytes, text {} bytes)",
                html.len(),
                text.len()
            ),
            Content::Sms { text } => write!(f, "Content::Sms({} chars)", text.chars().count()),
            Content::Card { .. } => f.write_str("Content::Card"),
            Content::Json(_) => f.write_str("Content::Json"),
        }
    }
}

/// One message to one address over one channel.
#[derive(Clone, Debug)]
pub struct Outbound {
    /// Identifies this message across attempts and resumes: the same (run, user, step,
    /// channel) always has the same key. Providers that take an idempotency key get it (ACS
    /// `repeatability-request-id`); others carry it where they can (a mail header).
    pub key: uuid::Uuid,
    /// When the first attempt with this key was made (ACS `repeatability-first-sent`).
    pub first_sent: jiff::Timestamp,
    /// Where it goes.
    pub to: Address,
    /// What it says.
    pub content: Content,
    /// Whether the content holds a secret: such a message is never logged, stored or echoed,
    /// and goes only over channels allowed to carry secrets.
    pub carries_secret: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked() {
        assert_eq!(
            Address::Email("alice@contoso.com".into()).masked(),
            "a***@contoso.com"
        );
        assert_eq!(
            Address::Phone("+447700900123".into()).masked(),
            "+44*******123"
        );
        assert_eq!(Address::Phone("+1234".into()).masked(), "*****");
    }

    #[test]
    fn content_debug_hides_the_text() {
        let sms = Content::Sms {
            text: "Your temporary password is Hunter2!".into(),
        };
        let shown = format!("{sms:?}");
        assert!(!shown.contains("Hunter2"), "{shown}");
        let mail = Content::Email {
            subject: "s".into(),
            html: "<p>Hunter2</p>".into(),
            text: "Hunter2".into(),
        };
        assert!(!format!("{mail:?}").contains("Hunter2"));
    }
}
