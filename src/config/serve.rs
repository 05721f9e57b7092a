//! The validated `serve:` section: where `resetctl serve` listens, the public address the
//! approval links point to, TLS, the approval tokens' signing key and the request API's
//! credentials. Inert: sources of secrets, never a secret.
//!
//! ```yaml
//! serve:
//!   listen: 0.0.0.0:8443
//!   public_url: https://approvals.contoso.com    # approval links point here
//!   tls: { cert_file: /etc/resetctl/tls.pem, key_file: /etc/resetctl/tls.key }
//!   token_key_env: RESETCTL_TOKEN_KEY            # hex, at least 32 bytes; or token_key_file
//!   api:
//!     bearer_sha256: [9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08]
//!     hmac_key_env: RESETCTL_API_HMAC            # or hmac_key_file
//!   metrics: bearer                              # or loopback, public
//!   rate_limits:                                 # per client address; these are the defaults
//!     pages: { burst: 30, per_minute: 30 }
//!     api: { burst: 120, per_minute: 600 }
//!     triggers: { burst: 200, per_minute: 600 }
//!     max_clients: 10000
//!   max_connections_per_client: 64                # open at once per client address (IPv6: /64)
//!   max_connections: 1024                         # open at once in all
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::ConfigError;
use super::channels::{SecretSource, invalid, refuse, required_secret, service_url};
use super::channels_raw::Refused;
use super::tenant::resolve;
use crate::serve::{ConnectionLimits, Limit, MetricsAccess, RateLimits};

/// `serve:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServe {
    /// Address to listen on.
    pub listen: Option<Spanned<String>>,
    /// The address people's browsers reach the approval pages at.
    pub public_url: Spanned<String>,
    /// TLS certificate chain and key (PEM files).
    pub tls: Option<RawTls>,
    /// Environment variable holding the token signing key (hex).
    pub token_key_env: Option<Spanned<String>>,
    /// File holding the token signing key (hex).
    pub token_key_file: Option<PathBuf>,
    /// The request API's credentials.
    pub api: Option<Spanned<RawApi>>,
    /// Who may read `/metrics`: `bearer` (default), `loopback` or `public`.
    pub metrics: Option<Spanned<String>>,
    /// Per-client rate limits.
    pub rate_limits: Option<RawRateLimits>,
    /// Connections one client address may hold open.
    pub max_connections_per_client: Option<Spanned<u64>>,
    /// Connections open at once in all.
    pub max_connections: Option<Spanned<u64>>,
    /// Refused: an inline key.
    pub token_key: Refused,
}

/// `serve.rate_limits`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimits {
    pub pages: Option<Spanned<RawLimit>>,
    pub api: Option<Spanned<RawLimit>>,
    pub triggers: Option<Spanned<RawLimit>>,
    pub max_clients: Option<Spanned<u64>>,
}

/// One route class's limit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimit {
    pub burst: u32,
    pub per_minute: u32,
}

/// `serve.tls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// `serve.api`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    /// SHA-256 (hex) of each accepted bearer token: the file never holds a token.
    #[serde(default)]
    pub bearer_sha256: Vec<Spanned<String>>,
    /// Environment variable holding the HMAC key for signed requests.
    pub hmac_key_env: Option<Spanned<String>>,
    /// File holding the HMAC key.
    pub hmac_key_file: Option<PathBuf>,
    /// Refused: an inline key.
    pub hmac_key: Refused,
    /// Refused: an inline bearer token.
    pub bearer: Refused,
}

/// The `serve:` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSection {
    /// Address to listen on (default `127.0.0.1:8443`).
    pub listen: SocketAddr,
    /// Base of the approval links (`https://…`, or `http://` on loopback).
    pub public_url: String,
    /// Certificate chain and key files, when TLS is terminated here.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where the approval tokens' signing key comes from.
    pub token_key: SecretSource,
    /// SHA-256 digests (lower-case hex) of the accepted bearer tokens.
    pub bearer_sha256: Vec<String>,
    /// Where the request API's HMAC key comes from, if signed requests are accepted.
    pub hmac_key: Option<SecretSource>,
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
    /// Per-client rate limits.
    pub rate_limits: RateLimits,
    /// Caps on open connections.
    pub connections: ConnectionLimits,
}

/// Where `serve` listens when `listen` is absent.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

impl ServeSection {
    pub(crate) fn from_raw(
        raw: Spanned<RawServe>,
        base_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let section = raw.referenced;
        let raw = raw.value;
        refuse(&raw.token_key, "serve.token_key", "token_key")?;
        let listen: SocketAddr = match raw.listen {
            None => DEFAULT_LISTEN.parse().expect("a valid default"),
            Some(l) => l.value.parse().map_err(|_| {
                invalid(
                    "serve.listen: an address and port (`127.0.0.1:8443`, `[::]:443`)".into(),
                    &l.referenced,
                )
            })?,
        };
        let public_url = service_url("serve.public_url", &raw.public_url.value)
            .map_err(|m| invalid(m, &raw.public_url.referenced))?;
        let tls = raw.tls.map(|t| {
            (
                resolve(base_dir, t.cert_file),
                resolve(base_dir, t.key_file),
            )
        });
        if tls.is_none() && !listen.ip().is_loopback() {
            return Err(invalid(
                "serve: listening on a non-loopback address needs `tls:` (cert_file, key_file); \
                 plain HTTP is for a loopback address behind a TLS-terminating proxy"
                    .into(),
                &section,
            ));
        }
        let token_key = required_secret(
            "serve.token_key",
            raw.token_key_env,
            raw.token_key_file,
            base_dir,
            &section,
        )?;
        let (bearer_sha256, hmac_key) = match raw.api {
            None => (Vec::new(), None),
            Some(api) => {
                let at = api.referenced;
                let api = api.value;
                refuse(&api.hmac_key, "serve.api.hmac_key", "hmac_key")?;
                if let Some(b) = &api.bearer {
                    return Err(invalid(
                        "serve.api.bearer: a token is not accepted in the file; list its \
                         SHA-256 under `bearer_sha256` (`printf %s TOKEN | sha256sum`)"
                            .into(),
                        &b.referenced,
                    ));
                }
                let mut digests = Vec::new();
                for d in api.bearer_sha256 {
                    let hex = d.value.to_ascii_lowercase();
                    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(invalid(
                            "serve.api.bearer_sha256: each entry is a SHA-256 digest, 64 hex \
                             digits"
                                .into(),
                            &d.referenced,
                        ));
                    }
                    digests.push(hex);
                }
                let hmac = match (api.hmac_key_env, api.hmac_key_file) {
                    (None, None) => None,
                    (env, file) => Some(required_secret(
                        "serve.api.hmac_key",
                        env,
                        file,
                        base_dir,
                        &at,
                    )?),
                };
                (digests, hmac)
            }
        };
        let metrics = match raw.metrics {
            None => MetricsAccess::default(),
            Some(m) => match m.value.as_str() {
                "bearer" => MetricsAccess::Bearer,
                "loopback" => MetricsAccess::Loopback,
                "public" => MetricsAccess::Public,
                _ => {
                    return Err(invalid(
                        "serve.metrics: `bearer` (the API's bearer tokens), `loopback` (local \
                         clients only) or `public`"
                            .into(),
                        &m.referenced,
                    ));
                }
            },
        };
        let rate_limits = match raw.rate_limits {
            None => RateLimits::default(),
            Some(raw) => rate_limits(raw)?,
        };
        let connections = connection_limits(raw.max_connections_per_client, raw.max_connections)?;
        Ok(ServeSection {
            listen,
            public_url,
            tls,
            token_key,
            bearer_sha256,
            hmac_key,
            metrics,
            rate_limits,
            connections,
        })
    }
}

/// `serve.max_connections_per_client` and `serve.max_connections`, each defaulting on its
/// own; a client's share may not exceed the total.
fn connection_limits(
    per_client: Option<Spanned<u64>>,
    total: Option<Spanned<u64>>,
) -> Result<ConnectionLimits, ConfigError> {
    const MOST: u64 = 1_000_000;
    let defaults = ConnectionLimits::default();
    let read = |key: &str, raw: &Option<Spanned<u64>>, default: usize| match raw {
        None => Ok(default),
        Some(n) if n.value == 0 || n.value > MOST => Err(invalid(
            format!("serve.{key}: between 1 and {MOST}"),
            &n.referenced,
        )),
        Some(n) => Ok(n.value as usize),
    };
    let limits = ConnectionLimits {
        per_client: read(
            "max_connections_per_client",
            &per_client,
            defaults.per_client,
        )?,
        total: read("max_connections", &total, defaults.total)?,
    };
    // The defaults agree, so a mismatch has a key given to point at.
    if limits.per_client > limits.total
        && let Some(at) = per_client.as_ref().or(total.as_ref())
    {
        return Err(invalid(
            format!(
                "serve.max_connections_per_client ({}) is more than serve.max_connections \
                 ({}): one client could never use its share",
                limits.per_client, limits.total
            ),
            &at.referenced,
        ));
    }
    Ok(limits)
}

/// `serve.rate_limits`, each class defaulting on its own.
fn rate_limits(raw: RawRateLimits) -> Result<RateLimits, ConfigError> {
    let defaults = RateLimits::default();
    let limit = |name: &str, raw: Option<Spanned<RawLimit>>, default: Limit| match raw {
        None => Ok(default),
        Some(l) if l.value.burst == 0 || l.value.per_minute == 0 => Err(invalid(
            format!("serve.rate_limits.{name}: burst and per_minute must be at least 1"),
            &l.referenced,
        )),
        Some(l) => Ok(Limit {
            burst: l.value.burst,
            per_minute: l.value.per_minute,
        }),
    };
    let max_clients = match raw.max_clients {
        None => defaults.max_clients,
        Some(m) if m.value == 0 || m.value > 10_000_000 => {
            return Err(invalid(
                "serve.rate_limits.max_clients: between 1 and 10000000".into(),
                &m.referenced,
            ));
        }
        Some(m) => m.value as usize,
    };
    Ok(RateLimits {
        pages: limit("pages", raw.pages, defaults.pages)?,
        api: limit("api", raw.api, defaults.api)?,
        triggers: limit("triggers", raw.triggers, defaults.triggers)?,
        max_clients,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, Env, SecretSource};

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(
            text,
            Some(Path::new("/etc/resetctl/r.yaml")),
            &Env::default(),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_loopback_server_behind_a_proxy_needs_no_tls_and_secrets_come_by_name() {
        let c = parse(
            "serve:\n  public_url: https://approvals.contoso.com\n  \
             token_key_file: token.key\n  api:\n    bearer_sha256: \
             [9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08]\n    \
             hmac_key_env: API_HMAC\n",
        )
        .unwrap();
        let s = c.serve.unwrap();
        assert_eq!(s.listen.to_string(), super::DEFAULT_LISTEN);
        assert_eq!(
            s.token_key,
            SecretSource::File("/etc/resetctl/token.key".into())
        );
        assert_eq!(s.bearer_sha256[0], s.bearer_sha256[0].to_ascii_lowercase());
        assert_eq!(s.hmac_key, Some(SecretSource::Env("API_HMAC".into())));
        assert_eq!(s.metrics, crate::serve::MetricsAccess::Bearer);
        assert_eq!(s.rate_limits, crate::serve::RateLimits::default());
        assert_eq!(s.connections, crate::serve::ConnectionLimits::default());
    }

    #[test]
    fn connection_caps_are_read_and_checked_against_each_other() {
        let c = parse(
            "serve:\n  public_url: https://a.example\n  token_key_env: K\n  \
             max_connections_per_client: 8\n  max_connections: 100\n",
        )
        .unwrap();
        assert_eq!(
            c.serve.unwrap().connections,
            crate::serve::ConnectionLimits {
                per_client: 8,
                total: 100
            }
        );
        for (text, wanted) in [
            ("  max_connections_per_client: 0\n", ":4:"),
            ("  max_connections: 10\n", ":4:"),
            (
                "  max_connections: 5000\n  max_connections_per_client: 6000\n",
                ":5:",
            ),
        ] {
            let err = parse(&format!(
                "serve:\n  public_url: https://a.example\n  token_key_env: K\n{text}"
            ))
            .unwrap_err();
            assert!(err.contains(wanted), "{text}: {err}");
        }
    }

    #[test]
    fn metrics_access_and_rate_limits_are_read_class_by_class() {
        let c = parse(
            "serve:\n  public_url: https://a.example\n  token_key_env: K\n  metrics: loopback\n  \
             rate_limits:\n    triggers: { burst: 5, per_minute: 60 }\n    max_clients: 100\n",
        )
        .unwrap();
        let s = c.serve.unwrap();
        assert_eq!(s.metrics, crate::serve::MetricsAccess::Loopback);
        let defaults = crate::serve::RateLimits::default();
        assert_eq!(s.rate_limits.pages, defaults.pages);
        assert_eq!(
            s.rate_limits.triggers,
            crate::serve::Limit {
                burst: 5,
                per_minute: 60
            }
        );
        assert_eq!(s.rate_limits.max_clients, 100);
    }

    #[test]
    fn unsafe_or_malformed_settings_are_refused_at_their_place() {
        for (text, wanted) in [
            // A public listener without TLS.
            (
                "serve:\n  listen: 0.0.0.0:8443\n  public_url: https://a.example\n  \
                 token_key_env: K\n",
                ":2:",
            ),
            // An inline key, and an inline bearer token.
            (
                "serve:\n  public_url: https://a.example\n  token_key: s3cr3t\n",
                ":3:",
            ),
            (
                "serve:\n  public_url: https://a.example\n  token_key_env: K\n  api:\n    \
                 bearer: s3cr3t\n",
                ":5:",
            ),
            // A digest that is not one.
            (
                "serve:\n  public_url: https://a.example\n  token_key_env: K\n  api:\n    \
                 bearer_sha256: [abc]\n",
                ":5:",
            ),
            // An access mode that does not exist, and a limit of nothing.
            (
                "serve:\n  public_url: https://a.example\n  token_key_env: K\n  metrics: open\n",
                ":4:",
            ),
            (
                "serve:\n  public_url: https://a.example\n  token_key_env: K\n  rate_limits:\n    \
                 api: { burst: 0, per_minute: 5 }\n",
                ":5:",
            ),
            // Plain http to a public name.
            (
                "serve:\n  public_url: http://approvals.contoso.com\n  token_key_env: K\n",
                ":2:",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(wanted), "{text}: {err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }
}
