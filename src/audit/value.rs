//! The redaction layer: what may go into a record's `details`.
//!
//! Two defences, so that the invariant "secrets never reach the audit trail"
//! does not rest on every caller remembering it:
//!
//! 1. **At compile time**: a detail value must implement the sealed [`AuditValue`] trait, which
//!    exists only for plain strings, integers, booleans, UUIDs, timestamps and this module's
//!    small enums. `secrecy::SecretString`/`SecretBox` do not implement it and no code outside
//!    this crate can add an implementation, so a secret type cannot be passed:
//!
//! ```compile_fail,E0277
//! use resetctl::audit::Details;
//! use secrecy::SecretString;
//!
//! let tap = SecretString::from("Hunter2-Tap!".to_string());
//! // error[E0277]: the trait bound `SecretBox<str>: AuditValue` is not satisfied
//! let details = Details::new().with("method", tap);
//! ```
//!
//! ```compile_fail,E0277
//! use resetctl::audit::Details;
//! use secrecy::SecretString;
//!
//! let password = SecretString::from("Hunter2!".to_string());
//! let details = Details::new().with("note", &password);
//! ```
//!
//!    Nor can a type outside this crate be let in by implementing the trait itself:
//!
//! ```compile_fail,E0277
//! use resetctl::audit::{AuditValue, DetailValue};
//! use secrecy::{ExposeSecret, SecretString};
//!
//! struct Leak(SecretString);
//! // error[E0277]: the trait bound `Leak: Sealed` is not satisfied
//! impl AuditValue for Leak {
//!     fn to_detail(&self) -> DetailValue {
//!         DetailValue::Str(self.0.expose_secret().to_owned())
//!     }
//! }
//! ```
//!
//!    The same code with a plain value compiles:
//!
//! ```
//! use resetctl::audit::Details;
//!
//! let details = Details::new().with("method", "temporary_access_pass_issued").unwrap();
//! assert_eq!(details.len(), 1);
//! ```
//!
//! 2. **At run time**: a detail whose key looks like it names a secret (`password`, `secret`,
//!    `token`, `tap`, `temporaryAccessPass`, `client_secret`, `assertion`, ...) is refused with
//!    [`AuditError::SecretKey`], whatever its value's type, and a string value that looks like a
//!    JSON Web Token is refused with [`AuditError::SecretValue`]. This catches a secret that was
//!    exposed to a plain `&str` on purpose and then handed to the trail by mistake.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::Serializer;

use super::error::AuditError;

/// Seals [`AuditValue`]. Crate-visible so that other modules of resetctl can let their own
/// small, secret-free enums into `details` (`impl sealed::Sealed for Mode {}` plus
/// `impl AuditValue for Mode`); no code outside the crate can.
pub(crate) mod sealed {
    /// The seal: only this crate can implement it.
    pub trait Sealed {}
}

/// A value that may appear in a record's `details`. Sealed: see the module documentation.
pub trait AuditValue: sealed::Sealed {
    /// The value as it is stored in the record.
    fn to_detail(&self) -> DetailValue;
}

/// A detail value as stored: a string, an integer or a boolean (JSON scalars only, so the
/// canonical bytes of a record never depend on float formatting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetailValue {
    /// Text (also UUIDs, timestamps and enum names).
    Str(String),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer too large for `i64`.
    UInt(u64),
    /// A boolean.
    Bool(bool),
}

impl Serialize for DetailValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DetailValue::Str(v) => s.serialize_str(v),
            DetailValue::Int(v) => s.serialize_i64(*v),
            DetailValue::UInt(v) => s.serialize_u64(*v),
            DetailValue::Bool(v) => s.serialize_bool(*v),
        }
    }
}

impl sealed::Sealed for str {}
impl AuditValue for str {
    fn to_detail(&self) -> DetailValue {
        DetailValue::Str(self.to_owned())
    }
}
impl sealed::Sealed for String {}
impl AuditValue for String {
    fn to_detail(&self) -> DetailValue {
        DetailValue::Str(self.clone())
    }
}
impl<T: AuditValue + ?Sized> sealed::Sealed for &T {}
impl<T: AuditValue + ?Sized> AuditValue for &T {
    fn to_detail(&self) -> DetailValue {
        (**self).to_detail()
    }
}
impl sealed::Sealed for bool {}
impl AuditValue for bool {
    fn to_detail(&self) -> DetailValue {
        DetailValue::Bool(*self)
    }
}
macro_rules! signed {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl AuditValue for $t {
            fn to_detail(&self) -> DetailValue {
                DetailValue::Int(i64::from(*self))
            }
        }
    )*};
}
signed!(i8, i16, i32, i64, u8, u16, u32);
impl sealed::Sealed for u64 {}
impl AuditValue for u64 {
    fn to_detail(&self) -> DetailValue {
        match i64::try_from(*self) {
            Ok(v) => DetailValue::Int(v),
            Err(_) => DetailValue::UInt(*self),
        }
    }
}
impl sealed::Sealed for usize {}
impl AuditValue for usize {
    fn to_detail(&self) -> DetailValue {
        // usize is at most 64 bits on every supported target.
        (*self as u64).to_detail()
    }
}
impl sealed::Sealed for uuid::Uuid {}
impl AuditValue for uuid::Uuid {
    fn to_detail(&self) -> DetailValue {
        DetailValue::Str(self.hyphenated().to_string())
    }
}
impl sealed::Sealed for jiff::Timestamp {}
impl AuditValue for jiff::Timestamp {
    fn to_detail(&self) -> DetailValue {
        DetailValue::Str(self.to_string())
    }
}
impl sealed::Sealed for Outcome {}
impl AuditValue for Outcome {
    fn to_detail(&self) -> DetailValue {
        DetailValue::Str(self.as_str().to_owned())
    }
}

/// How an audited action ended. Kept small and closed so SIEM rules can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Intent recorded before the action is attempted (the journal's "before").
    Attempt,
    /// The action was done.
    Success,
    /// The action was tried and failed.
    Failure,
    /// The action was refused (a guard, a missing approval, a denial).
    Refused,
    /// The action was deliberately not done (excluded, privileged, already done).
    Skipped,
}

impl Outcome {
    /// The name as written in the trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Attempt => "attempt",
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Refused => "refused",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The `details` of a record: named scalar values, sorted by key, checked by the redaction
/// layer as they are added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Details(BTreeMap<String, DetailValue>);

/// Longest accepted detail key.
const MAX_KEY_LEN: usize = 64;

impl Details {
    /// No details.
    pub fn new() -> Self {
        Details(BTreeMap::new())
    }

    /// Add one detail, refusing keys that look like secrets and values that look like tokens.
    /// A later value for the same key replaces the earlier one.
    pub fn with(mut self, key: &str, value: impl AuditValue) -> Result<Self, AuditError> {
        self.insert(key, value)?;
        Ok(self)
    }

    /// Add one detail in place; same checks as [`Details::with`].
    pub fn insert(&mut self, key: &str, value: impl AuditValue) -> Result<(), AuditError> {
        check_key(key)?;
        let value = value.to_detail();
        if let DetailValue::Str(text) = &value
            && looks_like_jwt(text)
        {
            return Err(AuditError::SecretValue {
                key: key.to_owned(),
                kind: "a JSON Web Token",
            });
        }
        self.0.insert(key.to_owned(), value);
        Ok(())
    }

    /// Number of details.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no details.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterate the details in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &DetailValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Words that, as a whole word of a detail key, mark the key as naming a secret.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "tokens",
    "tap",
    "assertion",
    "credential",
    "credentials",
    "apikey",
    "otp",
    "pin",
    "cookie",
    "bearer",
    "jwt",
    "privatekey",
];

/// Fragments that mark a key as secret wherever they appear in its squashed lowercase form
/// (catches `newPassword`, `clientsecret`, `temporaryAccessPass`, `x-api-key`...).
const SECRET_FRAGMENTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "temporaryaccesspass",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "apikey",
    "privatekey",
    "clientassertion",
    "authorization",
];

/// Split a key into lowercase words at `_`, `-`, `.`, spaces and camelCase boundaries.
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if c == '_' || c == '-' || c == '.' || c == ' ' || c == '/' || c == ':' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Refuse malformed keys and keys that look like they name a secret.
fn check_key(key: &str) -> Result<(), AuditError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(AuditError::InvalidEvent {
            field: "details",
            reason: format!("a detail key must be 1 to {MAX_KEY_LEN} bytes long"),
        });
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(AuditError::InvalidEvent {
            field: "details",
            reason: format!(
                "detail key `{key}` may only hold ASCII letters, digits, `_`, `-`, `.`"
            ),
        });
    }
    let refused = || AuditError::SecretKey {
        key: key.to_owned(),
    };
    let words = words(key);
    if words.iter().any(|w| SECRET_WORDS.contains(&w.as_str())) {
        return Err(refused());
    }
    let squashed: String = words.concat();
    if SECRET_FRAGMENTS.iter().any(|f| squashed.contains(f)) {
        return Err(refused());
    }
    Ok(())
}

/// A compact JWS/JWT: three base64url segments, the first starting with `eyJ` (`{"`).
pub(crate) fn looks_like_jwt(text: &str) -> bool {
    let text = text.trim();
    let text = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .unwrap_or(text);
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[0].len() >= 10
        && parts[1].len() >= 4
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys_are_refused_whatever_the_value() {
        for key in [
            "password",
            "newPassword",
            "new_password",
            "secret",
            "client_secret",
            "clientSecret",
            "token",
            "access_token",
            "accessToken",
            "refresh-token",
            "tap",
            "TAP",
            "tap.value",
            "temporaryAccessPass",
            "temporary_access_pass",
            "assertion",
            "client_assertion",
            "api_key",
            "apiKey",
            "x-api-key",
            "private_key",
            "Authorization",
            "otp",
            "pin",
        ] {
            match Details::new().with(key, "anything") {
                Err(AuditError::SecretKey { key: k }) => assert_eq!(k, key),
                other => panic!("{key}: expected SecretKey, got {other:?}"),
            }
            assert!(
                matches!(
                    Details::new().with(key, 1234u32),
                    Err(AuditError::SecretKey { .. })
                ),
                "{key} with a number"
            );
        }
    }

    #[test]
    fn ordinary_keys_are_accepted() {
        for key in [
            "upn",
            "user_id",
            "method",
            "mode",
            "count",
            "tapestry", // contains "tap" but is not the word
            "step",
            "run_id",
            "retry_after_s",
            "target",
            "approval_count",
        ] {
            Details::new()
                .with(key, "x")
                .unwrap_or_else(|e| panic!("{key} refused: {e}"));
        }
    }

    #[test]
    fn the_refusal_never_echoes_the_value() {
        let err = Details::new()
            .with("password", "Hunter2-SuperSecret")
            .unwrap_err();
        assert!(!err.to_string().contains("Hunter2"));
        assert!(!format!("{err:?}").contains("Hunter2"));
    }

    #[test]
    fn jwt_values_are_refused_under_any_key() {
        let jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl";
        assert!(matches!(
            Details::new().with("note", jwt),
            Err(AuditError::SecretValue { .. })
        ));
        assert!(matches!(
            Details::new().with("note", format!("Bearer {jwt}")),
            Err(AuditError::SecretValue { .. })
        ));
        // A dotted name that is not a token is fine.
        Details::new().with("note", "v1.2.3").unwrap();
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(matches!(
            Details::new().with("", "x"),
            Err(AuditError::InvalidEvent { .. })
        ));
        assert!(matches!(
            Details::new().with("a b", "x"),
            Err(AuditError::InvalidEvent { .. })
        ));
        assert!(matches!(
            Details::new().with(&"k".repeat(65), "x"),
            Err(AuditError::InvalidEvent { .. })
        ));
    }

    #[test]
    fn values_serialize_as_json_scalars_sorted_by_key() {
        let d = Details::new()
            .with("b", 7u64)
            .unwrap()
            .with("a", true)
            .unwrap()
            .with("c", u64::MAX)
            .unwrap()
            .with("d", Outcome::Refused)
            .unwrap()
            .with("e", uuid::Uuid::nil())
            .unwrap();
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"a":true,"b":7,"c":18446744073709551615,"d":"refused","e":"00000000-0000-0000-0000-000000000000"}"#
        );
    }

    #[test]
    fn words_split_camel_and_separators() {
        assert_eq!(
            words("temporaryAccessPass"),
            ["temporary", "access", "pass"]
        );
        assert_eq!(words("client_secret.v2"), ["client", "secret", "v2"]);
    }
}
