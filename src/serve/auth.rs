//! Who may call the request API: a bearer token whose SHA-256 is configured, or a body
//! signed with a shared HMAC key in `X-Resetctl-Signature: t=<unix>,v1=<hex>` (the MAC of
//! `"<t>.<body>"`, accepted within five minutes of the server's time, the scheme Stripe and
//! Slack webhooks use). Every comparison is constant-time, and every configured hash is
//! compared, so timing tells nothing about which byte or which token was wrong.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-resetctl-signature";
/// How far a signature's time may be from the server's, in seconds.
pub const SKEW_SECS: i64 = 300;
/// The shortest HMAC key accepted (the hash's output length).
pub const MIN_HMAC_KEY_LEN: usize = 32;

/// The SHA-256 of an accepted bearer token: the configuration holds this, never the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BearerHash([u8; 32]);

impl BearerHash {
    /// From 64 hex digits (what `sha256sum` prints).
    pub fn from_hex(hex_digest: &str) -> Result<BearerHash, AuthConfigError> {
        let bytes = hex::decode(hex_digest.trim()).map_err(|_| AuthConfigError::BearerHash)?;
        Ok(BearerHash(
            bytes.try_into().map_err(|_| AuthConfigError::BearerHash)?,
        ))
    }

    /// The hash of `token` (for tests and for tooling that prints a new token's hash).
    pub fn of(token: &str) -> BearerHash {
        BearerHash(Sha256::digest(token.as_bytes()).into())
    }
}

impl std::fmt::Debug for BearerHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerHash(..)")
    }
}

/// The shared key of signed requests. `Debug` hides it.
#[derive(Clone)]
pub struct HmacKey(Arc<[u8]>);

impl HmacKey {
    /// A key of at least [`MIN_HMAC_KEY_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<HmacKey, AuthConfigError> {
        if bytes.len() < MIN_HMAC_KEY_LEN {
            return Err(AuthConfigError::ShortKey { len: bytes.len() });
        }
        Ok(HmacKey(bytes.into()))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

/// A credential the configuration cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// Not 64 hex digits.
    #[error("an API bearer token hash must be 64 hex digits (a SHA-256)")]
    BearerHash,
    /// Too short to sign with.
    #[error("the API signing key has {len} bytes; at least {MIN_HMAC_KEY_LEN} are needed")]
    ShortKey {
        /// How many it had.
        len: usize,
    },
}

/// Who may call `/v1/`: any of the bearer tokens, or a request signed with the key.
/// Neither configured: no call is accepted.
#[derive(Debug, Clone, Default)]
pub struct ApiCredentials {
    /// SHA-256 hashes of the accepted bearer tokens.
    pub bearer: Vec<BearerHash>,
    /// The key of signed requests.
    pub hmac: Option<HmacKey>,
}

/// Why a call was not let in (the 401's `code`; never which token came close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// Neither a bearer token nor a signature.
    #[error("the request carries no credentials (Authorization: Bearer or X-Resetctl-Signature)")]
    Missing,
    /// A bearer token that is not configured.
    #[error("the bearer token is not accepted")]
    Bearer,
    /// A signature header that does not parse (`t=<unix>,v1=<hex>`).
    #[error("the signature header must be t=<unix seconds>,v1=<hex HMAC-SHA256>")]
    Malformed,
    /// A signature whose time is more than five minutes from the server's.
    #[error("the signature's time is more than 5 minutes from the server's")]
    Stale,
    /// A signature that does not match the body.
    #[error("the signature does not match the request")]
    Signature,
}

impl AuthFailure {
    /// The error code in the 401's body.
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::Missing => "unauthenticated",
            AuthFailure::Bearer => "bad_bearer",
            AuthFailure::Malformed => "bad_signature_header",
            AuthFailure::Stale => "stale_signature",
            AuthFailure::Signature => "bad_signature",
        }
    }
}

impl ApiCredentials {
    /// Check one call: its `Authorization` and signature header values and its body, at
    /// `now`. A bearer token is tried first when both are present.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        signature: Option<&[u8]>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<(), AuthFailure> {
        let bearer = authorization.and_then(|v| {
            let v = std::str::from_utf8(v).ok()?;
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        if let Some(token) = bearer {
            return self.check_bearer(token);
        }
        if let Some(signature) = signature {
            return self.check_signature(signature, body, now);
        }
        Err(AuthFailure::Missing)
    }

    fn check_bearer(&self, token: &str) -> Result<(), AuthFailure> {
        let presented = BearerHash::of(token);
        // Every hash is compared (no early exit), each in constant time.
        let matched = self.bearer.iter().fold(0u8, |acc, known| {
            acc | u8::from(ct_eq(&known.0, &presented.0))
        });
        if matched == 1 {
            Ok(())
        } else {
            Err(AuthFailure::Bearer)
        }
    }

    fn check_signature(
        &self,
        header: &[u8],
        body: &[u8],
        now: Timestamp,
    ) -> Result<(), AuthFailure> {
        let (t, mac) = parse_signature(header).ok_or(AuthFailure::Malformed)?;
        let Some(key) = &self.hmac else {
            return Err(AuthFailure::Signature);
        };
        if (now.as_second() - t).abs() > SKEW_SECS {
            return Err(AuthFailure::Stale);
        }
        let mut expected = key.mac();
        expected.update(t.to_string().as_bytes());
        expected.update(b".");
        expected.update(body);
        expected
            .verify_slice(&mac)
            .map_err(|_| AuthFailure::Signature)
    }
}

/// `t=<unix>,v1=<hex>` → (t, MAC bytes).
fn parse_signature(header: &[u8]) -> Option<(i64, Vec<u8>)> {
    let header = std::str::from_utf8(header).ok()?;
    let (mut t, mut v1) = (None, None);
    for part in header.split(',') {
        match part.trim().split_once('=')? {
            ("t", value) if t.is_none() => t = Some(value.parse::<i64>().ok()?),
            ("v1", value) if v1.is_none() => v1 = Some(hex::decode(value).ok()?),
            _ => return None,
        }
    }
    let mac = v1?;
    (mac.len() == 32).then_some((t?, mac))
}

/// The signature header value for `body` at `t` with `key`: what a caller sends.
pub fn sign(key: &HmacKey, t: i64, body: &[u8]) -> String {
    let mut mac = key.mac();
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Equal in time that depends only on the length.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn creds() -> ApiCredentials {
        ApiCredentials {
            bearer: vec![BearerHash::of("first"), BearerHash::of("second")],
            hmac: Some(HmacKey::new(&[3u8; 32]).unwrap()),
        }
    }

    #[test]
    fn bearer_tokens_are_checked_against_their_hashes() {
        let c = creds();
        for token in ["first", "second"] {
            let header = format!("Bearer {token}");
            assert_eq!(c.check(Some(header.as_bytes()), None, b"", now()), Ok(()));
        }
        assert_eq!(
            c.check(Some(b"bearer second"), None, b"", now()),
            Ok(()),
            "the scheme is case-insensitive"
        );
        assert_eq!(
            c.check(Some(b"Bearer third"), None, b"", now()),
            Err(AuthFailure::Bearer)
        );
        assert_eq!(
            c.check(Some(b"Basic Zmlyc3Q="), None, b"", now()),
            Err(AuthFailure::Missing)
        );
        assert_eq!(c.check(None, None, b"", now()), Err(AuthFailure::Missing));
        let hash = hex::encode(Sha256::digest(b"first"));
        assert_eq!(
            BearerHash::from_hex(&hash).unwrap(),
            BearerHash::of("first")
        );
        assert_eq!(
            BearerHash::from_hex("abc"),
            Err(AuthConfigError::BearerHash)
        );
    }

    #[test]
    fn signatures_bind_the_body_and_the_time() {
        let c = creds();
        let key = c.hmac.clone().unwrap();
        let t = now().as_second();
        let good = sign(&key, t, b"{\"a\":1}");
        assert_eq!(
            c.check(None, Some(good.as_bytes()), b"{\"a\":1}", now()),
            Ok(())
        );
        assert_eq!(
            c.check(None, Some(good.as_bytes()), b"{\"a\":2}", now()),
            Err(AuthFailure::Signature)
        );
        // Five minutes either way, not a second more.
        let edge = sign(&key, t - SKEW_SECS, b"x");
        assert_eq!(c.check(None, Some(edge.as_bytes()), b"x", now()), Ok(()));
        let stale = sign(&key, t - SKEW_SECS - 1, b"x");
        assert_eq!(
            c.check(None, Some(stale.as_bytes()), b"x", now()),
            Err(AuthFailure::Stale)
        );
        let ahead = sign(&key, t + SKEW_SECS + 1, b"x");
        assert_eq!(
            c.check(None, Some(ahead.as_bytes()), b"x", now()),
            Err(AuthFailure::Stale)
        );
        let other = sign(&HmacKey::new(&[4u8; 32]).unwrap(), t, b"x");
        assert_eq!(
            c.check(None, Some(other.as_bytes()), b"x", now()),
            Err(AuthFailure::Signature)
        );
        for bad in [
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "t=1,v1=00,t=2",
            "t=1;v1=00",
        ] {
            assert_eq!(
                c.check(None, Some(bad.as_bytes()), b"x", now()),
                Err(AuthFailure::Malformed),
                "{bad}"
            );
        }
        // No key configured: a signature is never accepted.
        let bearer_only = ApiCredentials {
            hmac: None,
            ..creds()
        };
        assert_eq!(
            bearer_only.check(None, Some(good.as_bytes()), b"{\"a\":1}", now()),
            Err(AuthFailure::Signature)
        );
        assert_eq!(
            HmacKey::new(&[1u8; 31]).unwrap_err(),
            AuthConfigError::ShortKey { len: 31 }
        );
        assert_eq!(format!("{key:?}"), "HmacKey(..)");
    }
}
