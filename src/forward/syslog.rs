//! Audit records as RFC 5424 syslog messages carrying a CEF line, over UDP, TCP or TLS.
//!
//! Framing (rfc-editor.org/rfc/rfc5424 §6): `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
//! STRUCTURED-DATA MSG`, PRI = facility × 8 + severity (facility local0 = 16), `-` for a nil
//! field; HOSTNAME ≤ 255, APP-NAME ≤ 48, PROCID ≤ 128, MSGID ≤ 32 printable US-ASCII
//! characters. Over UDP one message per datagram (RFC 5426); over TCP and TLS each message is
//! octet-counted, `LEN SP MSG` (RFC 6587 §3.4.1, RFC 5425 §4.3), so a message may hold any
//! byte and a receiver never splits one.
//!
//! Syslog has no acknowledgement: a batch counts as delivered once the kernel took it, so a
//! receiver that dies holding unread bytes loses them, and UDP may drop datagrams on the way.
//! Where every record must arrive, forward to the Logs Ingestion API or a webhook, which
//! acknowledge each batch (or keep the trail itself as the record of truth: it is).

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;

use super::sink::{Sink, SinkError};
use crate::audit::Outcome;
use crate::audit::Record;
use crate::audit::cef;

/// Facility local0: what SIEM collectors are commonly told to expect from an application.
const FACILITY_LOCAL0: u8 = 16;

/// The largest datagram sent over UDP: a record longer than this is cut (and says so);
/// RFC 5426 §3.2 asks receivers for at least 2048 octets and IPv4 paths carry ~1,400 safely,
/// so 8 KiB relies on fragmentation that syslog receivers on a LAN handle.
const MAX_DATAGRAM: usize = 8 * 1024;

/// Syslog severity of an outcome (RFC 5424 table 2): refusals are warnings, failures errors.
fn severity(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Failure => 3,
        Outcome::Refused => 4,
        Outcome::Success | Outcome::Attempt | Outcome::Skipped => 6,
    }
}

/// `text` as a header field: printable US-ASCII (33..=126) only, at most `max` characters,
/// `-` when empty.
fn field(text: &str, max: usize) -> String {
    let s: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if s.is_empty() { "-".into() } else { s }
}

/// One RFC 5424 message (without framing) for `record`, from `host`.
pub fn message(record: &Record, host: &str) -> String {
    format!(
        "<{}>1 {} {} resetctl {} {} - {}",
        FACILITY_LOCAL0 * 8 + severity(record.outcome),
        field(&record.time, 64),
        field(host, 255),
        std::process::id(),
        field(&record.action, 32),
        cef::line(record)
    )
}

/// How messages travel.
#[derive(Debug, Clone)]
pub enum Transport {
    /// One datagram per message.
    Udp,
    /// Octet-counted over a plain TCP connection (inside a trusted network only).
    Tcp,
    /// Octet-counted over TLS (RFC 5425), checked against `roots` for `server_name`.
    Tls {
        /// The name the certificate must carry.
        server_name: String,
        /// Trusted roots.
        roots: Arc<rustls::RootCertStore>,
    },
}

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

enum Conn {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
}

/// A syslog receiver.
pub struct Syslog {
    name: String,
    addr: String,
    transport: Transport,
    host: String,
    conn: Mutex<Option<Conn>>,
}

impl Syslog {
    /// Forward as `name` to `addr` (`host:port`) over `transport`; messages name this machine
    /// as `host`.
    pub fn new(name: &str, addr: &str, transport: Transport, host: &str) -> Syslog {
        Syslog {
            name: name.into(),
            addr: addr.into(),
            transport,
            host: host.into(),
            conn: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<Conn, SinkError> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| SinkError::Unavailable(format!("connect {}: {e}", self.addr)))?;
        tcp.set_nodelay(true).ok();
        match &self.transport {
            Transport::Tls { server_name, roots } => {
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| SinkError::Config(e.to_string()))?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
                let name = rustls::pki_types::ServerName::try_from(server_name.clone())
                    .map_err(|e| SinkError::Config(format!("server name: {e}")))?;
                let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| SinkError::Unavailable(format!("TLS with {}: {e}", self.addr)))?;
                Ok(Conn::Tls(Box::new(tls)))
            }
            _ => Ok(Conn::Tcp(tcp)),
        }
    }

    async fn send_stream(&self, frames: &[u8]) -> Result<(), SinkError> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(self.connect().await?);
        }
        let conn = guard.as_mut().expect("connected above");
        let written = match conn {
            Conn::Tcp(s) => {
                async {
                    s.write_all(frames).await?;
                    s.flush().await
                }
                .await
            }
            Conn::Tls(s) => {
                async {
                    s.write_all(frames).await?;
                    s.flush().await
                }
                .await
            }
        };
        if let Err(e) = written {
            // The connection is gone: the next batch reconnects, and this one is sent again
            // (the cursor did not move).
            *guard = None;
            return Err(SinkError::Unavailable(format!(
                "send to {}: {e}",
                self.addr
            )));
        }
        Ok(())
    }

    async fn send_datagrams(&self, records: &[Record]) -> Result<(), SinkError> {
        let socket = UdpSocket::bind(if self.addr.starts_with('[') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        })
        .await
        .map_err(|e| SinkError::Unavailable(format!("UDP socket: {e}")))?;
        socket
            .connect(&self.addr)
            .await
            .map_err(|e| SinkError::Unavailable(format!("UDP {}: {e}", self.addr)))?;
        for record in records {
            let mut msg = message(record, &self.host).into_bytes();
            msg.truncate(MAX_DATAGRAM);
            socket
                .send(&msg)
                .await
                .map_err(|e| SinkError::Unavailable(format!("UDP {}: {e}", self.addr)))?;
        }
        Ok(())
    }
}

/// `LEN SP MSG` for each record.
pub fn octet_counted(records: &[Record], host: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        let msg = message(record, host);
        out.extend_from_slice(format!("{} ", msg.len()).as_bytes());
        out.extend_from_slice(msg.as_bytes());
    }
    out
}

impl Sink for Syslog {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<usize, SinkError>> {
        Box::pin(async move {
            match self.transport {
                Transport::Udp => self.send_datagrams(records).await?,
                _ => {
                    self.send_stream(&octet_counted(records, &self.host))
                        .await?
                }
            }
            Ok(records.len())
        })
    }

    fn max_batch(&self) -> usize {
        500
    }
}
