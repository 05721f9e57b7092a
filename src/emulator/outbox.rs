//! What every message sink of the emulator received: Graph sendMail (JSON and MIME), Twilio,
//! Azure Communication Services SMS, Teams Workflows and the generic webhook, one entry per
//! message (per recipient for SMS), served by `GET /_emulator/outbox` (`?channel=sms`).
//!
//! The emulator is a test double: entries hold the bodies as sent so a test can assert what
//! a person would have read. Credentials (auth tokens, keys, signatures) are never kept.

use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

/// One message a sink accepted (or, for Teams, accepted but whose flow run failed).
#[derive(Debug, Clone, Serialize, Default)]
pub struct OutboxEntry {
    /// Order of arrival, from 1.
    pub seq: u64,
    /// RFC 3339 time of arrival.
    pub time: String,
    /// `email`, `sms`, `teams` or `webhook`.
    pub channel: &'static str,
    /// `graph`, `graph_mime`, `twilio`, `acs`, `teams_workflow` or `webhook`.
    pub provider: &'static str,
    /// The provider's id of the message (Twilio `SM…`, ACS `Outgoing_…`, a MIME
    /// `Message-ID`, a Teams run id), when it has one.
    pub provider_id: Option<String>,
    /// Whether the message went on to its recipient: false for a Teams card whose flow run
    /// failed, or an SMS recipient the provider refused inside an accepted request.
    pub delivered: bool,
    /// Why it did not (the error the provider's run history or per-recipient result shows).
    pub error: Option<String>,
    /// Calling app (Graph only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Sender: mailbox, phone number or messaging service; the workflow or hook name.
    pub from: String,
    /// Recipients: addresses or phone numbers (empty for Teams and webhooks).
    pub to: Vec<String>,
    /// The subject (email).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The body's content type (`Text`/`HTML` for Graph JSON; a MIME type otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The text a person reads: the mail body, the SMS text, the first text part of a MIME
    /// message; for Teams and webhooks the JSON body as text.
    pub content: String,
    /// Graph's `saveToSentItems` (JSON sendMail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_to_sent_items: Option<bool>,
    /// Graph's `message` object as posted (JSON sendMail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Value>,
    /// What a MIME message held (MIME sendMail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime: Option<Value>,
    /// The posted JSON (Teams envelope, webhook body, ACS request) or Twilio's form fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// SMS segments as the provider counts them (Twilio `num_segments`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
}

/// The outbox: appended to by the sinks, read by the inspection API.
#[derive(Debug, Default)]
pub struct Outbox {
    entries: Mutex<Vec<OutboxEntry>>,
}

impl Outbox {
    /// Append an entry (its `seq` is assigned here) and return the sequence number.
    pub fn push(&self, mut entry: OutboxEntry) -> u64 {
        let mut list = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entry.seq = list.len() as u64 + 1;
        let seq = entry.seq;
        list.push(entry);
        seq
    }

    /// The entries of `channel` (all when `None`), oldest first.
    pub fn list(&self, channel: Option<&str>) -> Vec<OutboxEntry> {
        let list = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .filter(|e| channel.is_none_or(|c| e.channel == c))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_numbered_and_filtered_by_channel() {
        let outbox = Outbox::default();
        let sms = OutboxEntry {
            channel: "sms",
            ..OutboxEntry::default()
        };
        let mail = OutboxEntry {
            channel: "email",
            ..OutboxEntry::default()
        };
        assert_eq!(outbox.push(sms.clone()), 1);
        assert_eq!(outbox.push(mail), 2);
        assert_eq!(outbox.push(sms), 3);
        let seqs: Vec<u64> = outbox.list(Some("sms")).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(outbox.list(None).len(), 3);
        assert!(outbox.list(Some("teams")).is_empty());
    }
}
