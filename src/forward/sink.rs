//! [`Sink`]: where audit records are forwarded (a syslog receiver, Log Analytics, a webhook).
//! A sink takes the leading records of a batch it was offered and says how many it accepted
//! (one request's worth: a Logs Ingestion call holds at most 1 MB); the forwarder moves its
//! cursor past exactly those, so nothing is sent twice and nothing is skipped.

use futures::future::BoxFuture;

use crate::audit::Record;

/// Why a batch was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The receiver could not be reached or dropped the connection: try again later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The receiver asked us to slow down (HTTP 429), for this long if it said.
    #[error("throttled{}", .0.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    Throttled(Option<u64>),
    /// The receiver refused the batch or our credentials: sending it again will not help.
    #[error("refused: {0}")]
    Refused(String),
    /// The sink is configured wrongly.
    #[error("configuration: {0}")]
    Config(String),
}

/// A destination for audit records.
pub trait Sink: Send + Sync {
    /// The configuration's name for it (`forward.<name>`).
    fn name(&self) -> &str;

    /// Deliver the leading records of `records` (in trail order, never empty); how many
    /// were accepted (at least one).
    fn send<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<usize, SinkError>>;

    /// At most this many records per call.
    fn max_batch(&self) -> usize;
}
