//! Live forwarding of the audit trail to the SOC's SIEM: syslog (RFC 5424 framing, CEF
//! payload) over UDP, TCP or TLS; the Azure Monitor Logs Ingestion API; a signed webhook.
//! A [`Forwarder`] follows the trail from each sink's [`cursor`], so a SIEM outage loses
//! nothing and a restart sends nothing twice; [`Pass::lag`] says how far behind a sink is.

pub mod cursor;
pub mod follower;
pub mod http;
pub mod lag;
pub mod sink;
pub mod syslog;

pub use follower::{ForwardError, Forwarder, Pass};
pub use lag::Lag;
pub use sink::{Sink, SinkError};
