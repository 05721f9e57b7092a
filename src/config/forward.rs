//! The validated `forward:` section: where the audit trail is streamed live, by sink name.
//! Inert: addresses and the sources of secrets.
//!
//! ```yaml
//! forward:
//!   siem:
//!     syslog: { address: siem.contoso.com:6514, transport: tls, ca_file: siem-ca.pem }
//!   sentinel:
//!     logs_ingestion:
//!       endpoint: https://dce-1.eastus-1.ingest.monitor.azure.com
//!       dcr_immutable_id: dcr-00000000000000000000000000000000
//!       stream: Custom-ResetctlAudit_CL
//!       tenant: contoso                   # whose app registration gets the token
//!   soar:
//!     webhook: { url: https://soar.contoso.com/hooks/resetctl, secret_env: SOAR_HMAC }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::ConfigError;
use super::channels::{SecretSource, invalid, refuse, required_secret, service_url};
use super::channels_raw::Refused;
use super::tenant::resolve;

/// One `forward.<name>` entry: exactly one kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSink {
    /// A syslog receiver.
    pub syslog: Option<Spanned<RawSyslog>>,
    /// Azure Monitor Logs Ingestion.
    pub logs_ingestion: Option<Spanned<RawIngestion>>,
    /// A signed webhook.
    pub webhook: Option<Spanned<RawHook>>,
}

/// `forward.<name>.syslog`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyslog {
    /// `host:port`.
    pub address: Spanned<String>,
    /// `tls` (default), `tcp` or `udp`.
    pub transport: Option<Spanned<String>>,
    /// PEM file of the CA(s) the receiver's certificate chains to (default: the public web
    /// roots).
    pub ca_file: Option<PathBuf>,
    /// The name the receiver's certificate carries (default: the address's host).
    pub server_name: Option<String>,
    /// HOSTNAME in each message (default: this machine's name).
    pub hostname: Option<String>,
}

/// `forward.<name>.logs_ingestion`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIngestion {
    /// The data collection endpoint (or the DCR's own logs-ingestion endpoint).
    pub endpoint: Spanned<String>,
    /// The DCR's immutable id (`dcr-…`).
    pub dcr_immutable_id: Spanned<String>,
    /// The stream (`Custom-…`).
    pub stream: Spanned<String>,
    /// The configured tenant whose app registration requests the token.
    pub tenant: Spanned<String>,
}

/// `forward.<name>.webhook`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHook {
    /// Where records are posted.
    pub url: Spanned<String>,
    /// Environment variable holding the HMAC key.
    pub secret_env: Option<Spanned<String>>,
    /// File holding the HMAC key.
    pub secret_file: Option<PathBuf>,
    /// Refused: an inline key.
    pub secret: Refused,
}

/// How syslog messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTransport {
    /// RFC 5425.
    Tls,
    /// Plain TCP, octet-counted (a trusted network only).
    Tcp,
    /// One datagram per message.
    Udp,
}

/// One configured sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardSink {
    /// Syslog.
    Syslog {
        /// `host:port`.
        address: String,
        /// Transport.
        transport: SyslogTransport,
        /// CA file for TLS.
        ca_file: Option<PathBuf>,
        /// Certificate name for TLS.
        server_name: String,
        /// HOSTNAME field.
        hostname: Option<String>,
    },
    /// Logs Ingestion.
    LogsIngestion {
        /// Endpoint base URL.
        endpoint: String,
        /// DCR immutable id.
        dcr: String,
        /// Stream name.
        stream: String,
        /// Tenant name whose app gets the token.
        tenant: String,
    },
    /// Webhook.
    Webhook {
        /// URL.
        url: String,
        /// HMAC key source.
        secret: SecretSource,
    },
}

/// Sink names become file names (the cursor): letters, digits, `-` and `_`.
fn is_sink_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn from_raw(
    raw: BTreeMap<String, Spanned<RawSink>>,
    base_dir: Option<&Path>,
) -> Result<BTreeMap<String, ForwardSink>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, sink) in raw {
        let at = sink.referenced;
        if !is_sink_name(&name) {
            return Err(invalid(
                format!("forward: sink names are letters, digits, `-` and `_` (not {name:?})"),
                &at,
            ));
        }
        let key = |leaf: &str| format!("forward.{name}.{leaf}");
        let sink = sink.value;
        let parsed = match (sink.syslog, sink.logs_ingestion, sink.webhook) {
            (Some(s), None, None) => syslog(&key, s, base_dir)?,
            (None, Some(i), None) => {
                let i = i.value;
                ForwardSink::LogsIngestion {
                    endpoint: service_url(&key("logs_ingestion.endpoint"), &i.endpoint.value)
                        .map_err(|m| invalid(m, &i.endpoint.referenced))?,
                    dcr: checked_id(
                        &key("logs_ingestion.dcr_immutable_id"),
                        i.dcr_immutable_id,
                        "dcr-",
                    )?,
                    stream: checked_id(&key("logs_ingestion.stream"), i.stream, "Custom-")?,
                    tenant: i.tenant.value,
                }
            }
            (None, None, Some(h)) => {
                let section = h.referenced;
                let h = h.value;
                refuse(&h.secret, &key("webhook.secret"), "secret")?;
                ForwardSink::Webhook {
                    url: service_url(&key("webhook.url"), &h.url.value)
                        .map_err(|m| invalid(m, &h.url.referenced))?,
                    secret: required_secret(
                        &key("webhook.secret"),
                        h.secret_env,
                        h.secret_file,
                        base_dir,
                        &section,
                    )?,
                }
            }
            _ => {
                return Err(invalid(
                    format!(
                        "forward.{name}: name exactly one of `syslog`, `logs_ingestion`, `webhook`"
                    ),
                    &at,
                ));
            }
        };
        out.insert(name, parsed);
    }
    Ok(out)
}

/// A DCR id or stream name: its documented prefix, then URL-path-safe characters.
fn checked_id(key: &str, value: Spanned<String>, prefix: &str) -> Result<String, ConfigError> {
    let v = &value.value;
    let ok = v.starts_with(prefix)
        && v.len() > prefix.len()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(invalid(
            format!("{key}: expected `{prefix}…` (letters, digits, `-`, `_`)"),
            &value.referenced,
        ));
    }
    Ok(v.clone())
}

fn syslog(
    key: &dyn Fn(&str) -> String,
    raw: Spanned<RawSyslog>,
    base_dir: Option<&Path>,
) -> Result<ForwardSink, ConfigError> {
    let raw = raw.value;
    let address = raw.address.value.clone();
    let host = match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        _ => {
            return Err(invalid(
                format!("{}: `host:port`", key("syslog.address")),
                &raw.address.referenced,
            ));
        }
    };
    let transport = match raw.transport.as_ref().map(|t| t.value.as_str()) {
        None | Some("tls") => SyslogTransport::Tls,
        Some("tcp") => SyslogTransport::Tcp,
        Some("udp") => SyslogTransport::Udp,
        Some(_) => {
            let t = raw.transport.as_ref().expect("matched");
            return Err(invalid(
                format!("{}: `tls`, `tcp` or `udp`", key("syslog.transport")),
                &t.referenced,
            ));
        }
    };
    Ok(ForwardSink::Syslog {
        address,
        transport,
        ca_file: raw.ca_file.map(|p| resolve(base_dir, p)),
        server_name: raw.server_name.unwrap_or(host),
        hostname: raw.hostname,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, Env};
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(
            text,
            Some(Path::new("/etc/resetctl/r.yaml")),
            &Env::default(),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_parses_with_defaults_and_secrets_by_name() {
        let c = parse(
            "forward:\n  siem:\n    syslog: { address: siem.contoso.com:6514, ca_file: ca.pem }\n  \
             sentinel:\n    logs_ingestion: { endpoint: https://dce.ingest.monitor.azure.com, \
             dcr_immutable_id: dcr-0123abcd, stream: Custom-ResetctlAudit_CL, tenant: contoso }\n  \
             soar:\n    webhook: { url: https://soar.contoso.com/h, secret_env: SOAR_HMAC }\n",
        )
        .unwrap();
        assert_eq!(
            c.forward["siem"],
            ForwardSink::Syslog {
                address: "siem.contoso.com:6514".into(),
                transport: SyslogTransport::Tls,
                ca_file: Some("/etc/resetctl/ca.pem".into()),
                server_name: "siem.contoso.com".into(),
                hostname: None,
            }
        );
        assert!(matches!(
            c.forward["sentinel"],
            ForwardSink::LogsIngestion { .. }
        ));
        assert!(matches!(
            &c.forward["soar"],
            ForwardSink::Webhook { secret: SecretSource::Env(v), .. } if v == "SOAR_HMAC"
        ));
    }

    #[test]
    fn mistakes_are_refused_at_their_place() {
        for (text, wanted) in [
            ("forward:\n  s:\n    syslog: { address: nohost }\n", ":3:"),
            (
                "forward:\n  s:\n    syslog: { address: h:514, transport: quic }\n",
                ":3:",
            ),
            ("forward:\n  s: {}\n", ":2:"),
            (
                "forward:\n  s:\n    webhook: { url: https://x.example, secret: s3cr3t }\n",
                ":3:",
            ),
            (
                "forward:\n  s:\n    logs_ingestion: { endpoint: https://x.example, \
                 dcr_immutable_id: 'dcr-1/../x', stream: Custom-A, tenant: t }\n",
                ":3:",
            ),
            (
                "forward:\n  'a/b':\n    webhook: { url: https://x.example, secret_env: K }\n",
                ":3:",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(wanted), "{text}: {err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }
}
