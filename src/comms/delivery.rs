//! The delivery journal: one record per (run, user, step, channel), written before a message
//! is handed to its channel and completed after, exactly as the engine journals a Graph
//! write. A resumed run reads it to send only what certainly did not go out.
//!
//! The record holds the masked recipient, the sender, the provider's message id and a
//! secret-free detail; never the body.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;
use jiff::Timestamp;

/// Which delivery: a run, a user (empty for run-level messages), a step (the notify step's
/// journal key, or `@soc_summary` and the like) and a channel slot (`sms`, or `email#2` for
/// the third address of a run-level audience).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryKey {
    /// Run id.
    pub run: String,
    /// User object id; empty for run-level messages.
    pub user_id: String,
    /// Step journal key or run-level message name.
    pub step: String,
    /// Channel slot.
    pub channel: String,
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// The provider accepted it.
    Sent,
    /// It certainly did not go out (refused, throttled past the retry budget, unreachable).
    Failed,
    /// It may have gone out: the request left and no answer came back.
    Unknown,
}

impl DeliveryState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Unknown => "unknown",
        }
    }

    /// Parse the stored spelling.
    pub fn parse(text: &str) -> Option<DeliveryState> {
        match text {
            "sent" => Some(DeliveryState::Sent),
            "failed" => Some(DeliveryState::Failed),
            "unknown" => Some(DeliveryState::Unknown),
            _ => None,
        }
    }
}

/// One delivery as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Which delivery.
    pub key: DeliveryKey,
    /// The message's idempotency key (kept across attempts).
    pub message_key: uuid::Uuid,
    /// The sender (`sms/acs`).
    pub sender: String,
    /// The masked recipient.
    pub recipient: String,
    /// When the first attempt began.
    pub intent_at: Timestamp,
    /// How it ended, once it did.
    pub state: Option<DeliveryState>,
    /// The provider's message id.
    pub provider_id: Option<String>,
    /// Secret-free detail (the error, or "sent earlier").
    pub detail: Option<String>,
}

/// What [`DeliveryJournal::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// No earlier record: this one was written.
    New,
    /// An earlier attempt began (and maybe ended) this delivery.
    Existing(Box<DeliveryRecord>),
}

/// A journal operation failed; the delivery must not proceed (it could not be made
/// exactly-once).
#[derive(Debug, thiserror::Error)]
#[error("delivery journal: {0}")]
pub struct JournalError(pub String);

/// Where deliveries are journaled (the run store; a map in tests).
pub trait DeliveryJournal: Send + Sync {
    /// Record the intent of `record` unless its key has one; then return the earlier one.
    fn begin<'a>(
        &'a self,
        record: &'a DeliveryRecord,
    ) -> BoxFuture<'a, Result<Begun, JournalError>>;

    /// The record of `key`, if an earlier attempt began it.
    fn find<'a>(
        &'a self,
        key: &'a DeliveryKey,
    ) -> BoxFuture<'a, Result<Option<DeliveryRecord>, JournalError>>;

    /// Record how the delivery of `key` ended.
    fn finish<'a>(
        &'a self,
        key: &'a DeliveryKey,
        state: DeliveryState,
        provider_id: Option<&'a str>,
        detail: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), JournalError>>;

    /// Every delivery of a run, for its report.
    fn deliveries<'a>(
        &'a self,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<DeliveryRecord>, JournalError>>;
}

/// A journal in memory, for tests and previews.
#[derive(Debug, Default)]
pub struct MemoryJournal(Mutex<HashMap<DeliveryKey, DeliveryRecord>>);

impl DeliveryJournal for MemoryJournal {
    fn find<'a>(
        &'a self,
        key: &'a DeliveryKey,
    ) -> BoxFuture<'a, Result<Option<DeliveryRecord>, JournalError>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Box::pin(std::future::ready(Ok(map.get(key).cloned())))
    }

    fn begin<'a>(
        &'a self,
        record: &'a DeliveryRecord,
    ) -> BoxFuture<'a, Result<Begun, JournalError>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let begun = match map.get(&record.key) {
            Some(earlier) => Begun::Existing(Box::new(earlier.clone())),
            None => {
                map.insert(record.key.clone(), record.clone());
                Begun::New
            }
        };
        Box::pin(std::future::ready(Ok(begun)))
    }

    fn finish<'a>(
        &'a self,
        key: &'a DeliveryKey,
        state: DeliveryState,
        provider_id: Option<&'a str>,
        detail: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let result = match map.get_mut(key) {
            Some(record) => {
                record.state = Some(state);
                record.provider_id = provider_id.map(str::to_owned);
                record.detail = detail.map(str::to_owned);
                Ok(())
            }
            None => Err(JournalError(format!("no intent for {key:?}"))),
        };
        Box::pin(std::future::ready(result))
    }

    fn deliveries<'a>(
        &'a self,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<DeliveryRecord>, JournalError>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut records: Vec<DeliveryRecord> =
            map.values().filter(|r| r.key.run == run).cloned().collect();
        records.sort_by(|a, b| {
            (&a.key.user_id, &a.key.step, &a.key.channel).cmp(&(
                &b.key.user_id,
                &b.key.step,
                &b.key.channel,
            ))
        });
        Box::pin(std::future::ready(Ok(records)))
    }
}
