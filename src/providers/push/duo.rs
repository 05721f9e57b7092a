//! Duo Auth API v2 (<https://duo.com/docs/authapi>): `POST /auth/v2/preauth` (is the user
//! enrolled, with which devices), `POST /auth/v2/auth` with `factor=push`, `device=auto`,
//! `async=1` (returns a `txid`), `GET /auth/v2/auth_status?txid=…` (`result` `waiting`,
//! `allow` or `deny`, with a `status` word: `deny`, `fraud`, `timeout`, `push_failed`,
//! `locked_out`…). Answers are `{"stat":"OK","response":{…}}`; errors are non-200
//! `{"stat":"FAIL","code":…,"message":…,"message_detail":…}`.
//!
//! Every request is signed as Duo's own client signs it (duosecurity/duo_client_python,
//! `duo_client/client.py`, `canon_params`, `canonicalize` and `sign`, signature version 2):
//! the canonical string is `date\nMETHOD\nhost\npath\nparams`, where the date is the RFC 2822
//! `Date` header sent with the request, the host is lower-cased, and the params are
//! `key=value` pairs URL-encoded as OAuth 1.0 normalises them (RFC 5849 §3.4.1.3.2:
//! everything but `A-Z a-z 0-9 - . _ ~` percent-encoded from UTF-8, upper-case hex), sorted
//! and joined by `&`. The signature is the hex HMAC of that string with the secret key
//! (SHA-1 in the v2 client; SHA-512 in current clients, which Duo also accepts), sent as
//! HTTP Basic with the integration key as the user name. POST parameters go form-encoded in
//! the body, GET parameters in the query string.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::{PushError, PushProvider, PushStatus, PushTransaction, split_base};

const NAME: &str = "duo";

/// The HMAC digest a request is signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// HMAC-SHA1 (40 hex digits), the v2 signature as first documented.
    Sha1,
    /// HMAC-SHA512 (128 hex digits), what current Duo clients send.
    Sha512,
}

/// A Duo Auth API application: its API hostname, integration key and secret key.
pub struct DuoSettings {
    /// `https://api-XXXXXXXX.duosecurity.com` (or the emulator's `{root}/duo`).
    pub base_url: String,
    /// The integration key (`DI…`), not secret.
    pub integration_key: String,
    /// The secret key.
    pub secret_key: SecretString,
    /// The digest to sign with.
    pub digest: Digest,
    /// The `type` shown in the Duo Mobile notification.
    pub push_type: String,
}

impl std::fmt::Debug for DuoSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoSettings")
            .field("base_url", &self.base_url)
            .field("integration_key", &self.integration_key)
            .field("secret_key", &"<redacted>")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// The Duo push provider.
pub struct DuoPush {
    settings: DuoSettings,
    authority: String,
    prefix: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for DuoPush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoPush")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Duo's answer envelope.
#[derive(Deserialize)]
struct Envelope {
    stat: String,
    response: Option<Value>,
    message: Option<String>,
    message_detail: Option<String>,
}

impl DuoPush {
    /// A client for `settings` over `http`.
    pub fn new(settings: DuoSettings, http: reqwest::Client) -> Result<Self, PushError> {
        let (authority, prefix) =
            split_base(&settings.base_url).map_err(|detail| PushError::Protocol {
                provider: NAME,
                detail,
            })?;
        Ok(DuoPush {
            settings,
            authority,
            prefix,
            http,
        })
    }

    /// One signed call; the `response` object of a `stat: OK` answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Value, PushError> {
        let date = rfc2822_now();
        let full_path = format!("{}{path}", self.prefix);
        let canonical = canonical(
            &date,
            method.as_str(),
            &self.authority,
            &full_path,
            &canon_params(params),
        );
        let signature = sign(
            self.settings.secret_key.expose_secret().as_bytes(),
            &canonical,
            self.settings.digest,
        );
        let body = form_encode(params);
        let url = format!("{}{path}", self.settings.base_url.trim_end_matches('/'));
        let request = if method == reqwest::Method::GET {
            let url = if body.is_empty() {
                url
            } else {
                format!("{url}?{body}")
            };
            self.http.get(url)
        } else {
            self.http
                .request(method, url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        };
        let response = request
            .header("date", &date)
            .basic_auth(&self.settings.integration_key, Some(signature))
            .send()
            .await
            .map_err(|e| PushError::Transport {
                provider: NAME,
                cause: e.without_url().to_string(),
            })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| PushError::Transport {
            provider: NAME,
            cause: e.without_url().to_string(),
        })?;
        let envelope: Option<Envelope> = serde_json::from_str(&text).ok();
        if status != 200 {
            let message = envelope
                .map(|e| match (e.message, e.message_detail) {
                    (Some(m), Some(d)) => format!("{m} ({d})"),
                    (Some(m), None) => m,
                    _ => String::new(),
                })
                .unwrap_or_default();
            return Err(if status == 401 {
                PushError::Unauthorized {
                    provider: NAME,
                    status,
                    message,
                }
            } else {
                PushError::Provider {
                    provider: NAME,
                    status,
                    message,
                }
            });
        }
        match envelope {
            Some(Envelope {
                stat,
                response: Some(r),
                ..
            }) if stat == "OK" => Ok(r),
            _ => Err(protocol("a 200 without stat OK and a response")),
        }
    }
}

impl PushProvider for DuoPush {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<PushStatus, PushError>> {
        Box::pin(async move {
            let pre = self
                .call(
                    reqwest::Method::POST,
                    "/auth/v2/preauth",
                    &[("username", user)],
                )
                .await?;
            // `auth`: the user must authenticate; `allow` (bypass) proves nothing; `enroll`:
            // not enrolled; `deny`: Duo will not authenticate the user (locked out).
            match pre.get("result").and_then(Value::as_str) {
                Some("auth") => {}
                Some("allow" | "enroll") => return Ok(PushStatus::NotEnrolled),
                Some("deny") => {
                    return Err(PushError::Failed {
                        provider: NAME,
                        status: status_word(&pre, "deny"),
                    });
                }
                _ => return Err(protocol("preauth without a known result")),
            }
            let can_push = pre
                .get("devices")
                .and_then(Value::as_array)
                .is_some_and(|devices| {
                    devices.iter().any(|d| {
                        d.get("capabilities")
                            .and_then(Value::as_array)
                            .is_some_and(|c| c.iter().any(|c| c == "push"))
                    })
                });
            if !can_push {
                return Ok(PushStatus::NotEnrolled);
            }
            let auth = self
                .call(
                    reqwest::Method::POST,
                    "/auth/v2/auth",
                    &[
                        ("username", user),
                        ("factor", "push"),
                        ("device", "auto"),
                        ("async", "1"),
                        ("type", &self.settings.push_type),
                    ],
                )
                .await?;
            let txid = auth
                .get("txid")
                .and_then(Value::as_str)
                .ok_or_else(|| protocol("auth without a txid"))?;
            Ok(PushStatus::Waiting {
                transaction: PushTransaction {
                    provider: NAME.into(),
                    id: txid.to_string(),
                },
            })
        })
    }

    fn poll<'a>(
        &'a self,
        transaction: &'a PushTransaction,
    ) -> BoxFuture<'a, Result<PushStatus, PushError>> {
        Box::pin(async move {
            let r = self
                .call(
                    reqwest::Method::GET,
                    "/auth/v2/auth_status",
                    &[("txid", &transaction.id)],
                )
                .await?;
            match r.get("result").and_then(Value::as_str) {
                Some("waiting") => Ok(PushStatus::Waiting {
                    transaction: transaction.clone(),
                }),
                Some("allow") => Ok(PushStatus::Approved),
                Some("deny") => match status_word(&r, "deny").as_str() {
                    "deny" | "fraud" => Ok(PushStatus::Denied),
                    "timeout" => Ok(PushStatus::TimedOut),
                    other => Err(PushError::Failed {
                        provider: NAME,
                        status: other.to_string(),
                    }),
                },
                _ => Err(protocol("auth_status without a known result")),
            }
        })
    }
}

fn protocol(detail: &str) -> PushError {
    PushError::Protocol {
        provider: NAME,
        detail: detail.into(),
    }
}

/// The `status` word of a response, or `default`.
fn status_word(r: &Value, default: &str) -> String {
    r.get("status")
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string()
}

/// Now as `email.utils.formatdate()` writes it: `Fri, 07 Dec 2012 17:18:00 -0000`.
fn rfc2822_now() -> String {
    jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S -0000")
        .to_string()
}

/// RFC 5849 §3.4.1.3.2 percent-encoding: unreserved characters stay, every other UTF-8
/// byte becomes `%XX` with upper-case hex (Python's `quote(s, '~')`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Duo's canonical parameters: encoded `k=v` pairs sorted by key then value, joined by `&`.
pub fn canon_params(params: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The v2 canonical string: date, upper-case method, lower-case host, path, parameters.
pub fn canonical(date: &str, method: &str, host: &str, path: &str, canon_params: &str) -> String {
    [
        date,
        &method.to_ascii_uppercase(),
        &host.to_ascii_lowercase(),
        path,
        canon_params,
    ]
    .join("\n")
}

/// The hex HMAC of `canonical` with `secret_key`.
pub fn sign(secret_key: &[u8], canonical: &str, digest: Digest) -> String {
    let algorithm = match digest {
        Digest::Sha1 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        Digest::Sha512 => ring::hmac::HMAC_SHA512,
    };
    let key = ring::hmac::Key::new(algorithm, secret_key);
    hex::encode(ring::hmac::sign(&key, canonical.as_bytes()))
}

/// `application/x-www-form-urlencoded` of `params` in their order (the same encoding as
/// the canonical string, which every form decoder reads back exactly).
fn form_encode(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// The printable-ASCII vector of Duo's clients' `canon_params` tests
    /// (duosecurity/duo_client_python `tests/test_client.py`, `test_printable_ascii_characters`).
    #[test]
    fn canon_params_match_duos_printable_ascii_vector() {
        let got = canon_params(&[
            ("whitespace", "\t\n\x0b\x0c\r "),
            ("punctuation", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
            (
                "letters",
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
            ),
            ("digits", "0123456789"),
        ]);
        assert_eq!(
            got,
            "digits=0123456789&letters=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ&punctuation=%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E_%60%7B%7C%7D~&whitespace=%09%0A%0B%0C%0D%20"
        );
        assert_eq!(
            canon_params(&[("foo_bar", "2"), ("foo", "1")]),
            "foo=1&foo_bar=2"
        );
        assert_eq!(
            canon_params(&[("realname", "First Last")]),
            "realname=First%20Last"
        );
        assert_eq!(canon_params(&[]), "");
        // Repeated keys sort by value.
        assert_eq!(canon_params(&[("a", "2"), ("a", "1")]), "a=1&a=2");
    }

    /// The signature vector of Duo's clients (the same in duo_client_python,
    /// duo_api_php `testSignature`, duo_api_nodejs `HMAC-SHA1`): ikey `test_ikey`, skey
    /// `gtdfxv9YgVBYcF6dl2Eq17KUQJN2PLM2ODVTkvoT`, `PoSt` to `foO.BAr52.cOm/Foo/BaR2/qux`
    /// on `Fri, 07 Dec 2012 17:18:00 -0000` gives `Basic dGVzdF9pa2V5OmYwMTgx…`. Its
    /// parameters contain a lone UTF-16 surrogate (no Rust string can), so the canonical
    /// parameter string is taken as the PHP test writes it.
    #[test]
    fn signature_matches_duos_vector() {
        let params = "%E4%9A%9A%E2%A1%BB%E3%97%90%E8%BB%B3%E6%9C%A7%E5%80%AA%E0%A0%90%ED%82%91%C3%88%EC%85%B0=%E0%BD%85%E1%A9%B6%E3%90%9A%E6%95%8C%EC%88%BF%E9%AC%89%EA%AF%A2%E8%8D%83%E1%AC%A7%E6%83%90&%E7%91%89%E7%B9%8B%EC%B3%BB%E5%A7%BF%EF%B9%9F%E8%8E%B7%EA%B7%8C%E9%80%8C%EC%BF%91%E7%A0%93=%E8%B6%B7%E5%80%A2%E9%8B%93%E4%8B%AF%E2%81%BD%E8%9C%B0%EA%B3%BE%E5%98%97%E0%A5%86%E4%B8%B0&%E7%91%B0%E9%8C%94%E9%80%9C%E9%BA%AE%E4%83%98%E4%88%81%E8%8B%98%E8%B1%B0%E1%B4%B1%EA%81%82=%E1%9F%99%E0%AE%A8%E9%8D%98%EA%AB%9F%EA%90%AA%E4%A2%BE%EF%AE%96%E6%BF%A9%EB%9F%BF%E3%8B%B3&%EC%8B%85%E2%B0%9D%E2%98%A0%E3%98%97%E9%9A%B3F%E8%98%85%E2%83%A8%EA%B0%A1%E5%A4%B4=%EF%AE%A9%E4%86%AA%EB%B6%83%E8%90%8B%E2%98%95%E3%B9%AE%E6%94%AD%EA%A2%B5%ED%95%ABU";
        let canon = canonical(
            "Fri, 07 Dec 2012 17:18:00 -0000",
            "PoSt",
            "foO.BAr52.cOm",
            "/Foo/BaR2/qux",
            params,
        );
        assert!(canon.starts_with(
            "Fri, 07 Dec 2012 17:18:00 -0000\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n%E4"
        ));
        let sig = sign(
            b"gtdfxv9YgVBYcF6dl2Eq17KUQJN2PLM2ODVTkvoT",
            &canon,
            Digest::Sha1,
        );
        let header = base64::engine::general_purpose::STANDARD.encode(format!("test_ikey:{sig}"));
        assert_eq!(
            header,
            "dGVzdF9pa2V5OmYwMTgxMWNiYmY5NTYxNjIzYWI0NWI4OTMwOTYyNjdmZDQ2YTUxNzg="
        );
        assert_eq!(sign(b"k", &canon, Digest::Sha512).len(), 128);
    }

    #[test]
    fn dates_are_rfc2822_and_settings_hide_the_key() {
        let d = rfc2822_now();
        assert!(d.ends_with(" -0000") && d.as_bytes()[3] == b',', "{d}");
        let s = DuoSettings {
            base_url: "https://api-1.duosecurity.com".into(),
            integration_key: "DIXXXX".into(),
            secret_key: SecretString::from("very-secret-key"),
            digest: Digest::Sha1,
            push_type: "Password reset".into(),
        };
        let p = DuoPush::new(s, reqwest::Client::new()).unwrap();
        assert!(!format!("{p:?}").contains("very-secret-key"));
    }
}
