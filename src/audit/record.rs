//! One record: the event a caller submits, the exact line the writer produces, and the
//! parsing of a line read back. The byte layout is defined in the `audit` module doc.

use serde::{Deserialize, Serialize};

use super::chain::Linker;
use super::error::AuditError;
use super::value::{DetailValue, Details, Outcome};

/// Format version written in every record (`"v":1`).
pub const FORMAT_VERSION: u32 = 1;

/// Longest accepted actor/subject (bytes).
const MAX_NAME_LEN: usize = 512;
/// Longest accepted action (bytes).
const MAX_ACTION_LEN: usize = 64;

/// What a caller asks to record: who did what to whom, how it ended, and checked details.
/// The writer adds the sequence number, time, trail id and chain links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    actor: String,
    action: String,
    subject: String,
    outcome: Outcome,
    details: Details,
}

impl Event {
    /// A new event. `action` is a short dotted identifier (`[a-z0-9_.-]`, for example
    /// `password.reset`); `actor` is who acted (an operator's UPN, `resetctl`, an app id);
    /// `subject` is what was acted on (a user's UPN or id, a run id). Both are plain text
    /// (a `SecretString` is not `Into<String>`).
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        outcome: Outcome,
    ) -> Result<Event, AuditError> {
        let event = Event {
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            outcome,
            details: Details::new(),
        };
        check_name("actor", &event.actor, false)?;
        check_name("subject", &event.subject, true)?;
        check_action(&event.action)?;
        Ok(event)
    }

    /// The same event with these details (already checked by the redaction layer).
    pub fn with_details(mut self, details: Details) -> Event {
        self.details = details;
        self
    }

    /// Who acted.
    pub fn actor(&self) -> &str {
        &self.actor
    }
    /// What was done.
    pub fn action(&self) -> &str {
        &self.action
    }
    /// What it was done to.
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// How it ended.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
    /// The details.
    pub fn details(&self) -> &Details {
        &self.details
    }
}

fn check_name(field: &'static str, value: &str, may_be_empty: bool) -> Result<(), AuditError> {
    if value.is_empty() && !may_be_empty {
        return Err(AuditError::InvalidEvent {
            field,
            reason: "must not be empty".into(),
        });
    }
    if value.len() > MAX_NAME_LEN {
        return Err(AuditError::InvalidEvent {
            field,
            reason: format!("longer than {MAX_NAME_LEN} bytes"),
        });
    }
    if super::value::looks_like_jwt(value) {
        return Err(AuditError::SecretValue {
            key: field.to_owned(),
            kind: "a JSON Web Token",
        });
    }
    if value.chars().any(char::is_control) {
        return Err(AuditError::InvalidEvent {
            field,
            reason: "contains control characters".into(),
        });
    }
    Ok(())
}

fn check_action(action: &str) -> Result<(), AuditError> {
    let ok = !action.is_empty()
        && action.len() <= MAX_ACTION_LEN
        && action.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(AuditError::InvalidEvent {
            field: "action",
            reason: format!(
                "must be 1 to {MAX_ACTION_LEN} characters of a-z, 0-9, `_`, `.`, `-` (got {action:?})"
            ),
        })
    }
}

/// The record body as serialized: the fields in their fixed order, without `hash`.
/// serde_json writes struct fields in declaration order with no whitespace.
#[derive(Serialize)]
struct Body<'a> {
    v: u32,
    trail: &'a uuid::Uuid,
    seq: u64,
    time: &'a str,
    alg: &'a str,
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    outcome: Outcome,
    details: &'a Details,
    prev: &'a str,
}

/// Length of the suffix `,"hash":"` + 64 hex digits + `"}`.
pub const HASH_SUFFIX_LEN: usize = HASH_SUFFIX_START.len() + 64 + 2;
const HASH_SUFFIX_START: &str = ",\"hash\":\"";

/// A record as written: its line (without the newline) and its own hash.
#[derive(Debug, Clone)]
pub struct Written {
    /// The exact line, without the trailing `\n`.
    pub line: String,
    /// The record's hash (its canonical bytes through the linker).
    pub hash: String,
}

/// Serialize one record: body, then its hash appended as the last field.
pub fn write_record(
    linker: &Linker,
    trail: &uuid::Uuid,
    seq: u64,
    time: &jiff::Timestamp,
    event: &Event,
    prev: &str,
) -> Result<Written, AuditError> {
    let time = format_time(time);
    let body = Body {
        v: FORMAT_VERSION,
        trail,
        seq,
        time: &time,
        alg: linker.alg().as_str(),
        actor: &event.actor,
        action: &event.action,
        subject: &event.subject,
        outcome: event.outcome,
        details: &event.details,
        prev,
    };
    let canonical = serde_json::to_string(&body).map_err(|e| AuditError::InvalidEvent {
        field: "details",
        reason: format!("cannot be serialized: {e}"),
    })?;
    let hash = linker.hash(canonical.as_bytes());
    let mut line = canonical;
    line.pop(); // the closing `}`
    line.push_str(HASH_SUFFIX_START);
    line.push_str(&hash);
    line.push_str("\"}");
    Ok(Written { line, hash })
}

/// RFC 3339 in UTC with a `Z` and microsecond precision, a fixed width that sorts as text.
pub fn format_time(time: &jiff::Timestamp) -> String {
    format!("{time:.6}")
}

/// The canonical bytes of a line read back: the line without its `,"hash":"…"` suffix, closed
/// by `}`. `None` when the line does not end with a well-formed hash suffix.
pub fn canonical_bytes(line: &[u8]) -> Option<Vec<u8>> {
    if line.len() < HASH_SUFFIX_LEN + 2 {
        return None;
    }
    let split = line.len() - HASH_SUFFIX_LEN;
    let (body, suffix) = line.split_at(split);
    let hex = suffix
        .strip_prefix(HASH_SUFFIX_START.as_bytes())?
        .strip_suffix(b"\"}")?;
    if hex.len() != 64 || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + 1);
    out.extend_from_slice(body);
    out.push(b'}');
    Some(out)
}

/// A record parsed back from a line (every field, for checks and export).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Format version.
    pub v: u32,
    /// Trail id.
    pub trail: uuid::Uuid,
    /// Sequence number, from 1, continuous across rotated files.
    pub seq: u64,
    /// UTC time, RFC 3339.
    pub time: String,
    /// Link algorithm (`sha256` or `hmac-sha256`).
    pub alg: String,
    /// Who acted.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Details: JSON scalars by key.
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Hash of the previous record (or the genesis value).
    pub prev: String,
    /// This record's own hash.
    pub hash: String,
}

impl Record {
    /// Parse a line (without its newline). The error is a reason for a `Break`.
    pub fn parse(line: &[u8]) -> Result<Record, String> {
        let record: Record =
            serde_json::from_slice(line).map_err(|e| format!("not a valid audit record ({e})"))?;
        if record.v != FORMAT_VERSION {
            return Err(format!("unknown record format version {}", record.v));
        }
        if !record.time.ends_with('Z') || record.time.parse::<jiff::Timestamp>().is_err() {
            return Err(format!(
                "time {:?} is not an RFC 3339 UTC time",
                record.time
            ));
        }
        for (key, value) in &record.details {
            if !(value.is_string() || value.is_i64() || value.is_u64() || value.is_boolean()) {
                return Err(format!(
                    "detail `{key}` is not a string, integer or boolean"
                ));
            }
        }
        Ok(record)
    }

    /// A detail as the typed value it was written from.
    pub fn detail(&self, key: &str) -> Option<DetailValue> {
        match self.details.get(key)? {
            serde_json::Value::String(s) => Some(DetailValue::Str(s.clone())),
            serde_json::Value::Bool(b) => Some(DetailValue::Bool(*b)),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(DetailValue::Int)
                .or_else(|| n.as_u64().map(DetailValue::UInt)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event::new(
            "alice@contoso.com",
            "password.reset",
            "bob@contoso.com",
            Outcome::Success,
        )
        .unwrap()
        .with_details(
            Details::new()
                .with("mode", "scramble")
                .unwrap()
                .with("attempt", 1u32)
                .unwrap(),
        )
    }

    #[test]
    fn a_record_line_has_fixed_key_order_and_its_hash_last() {
        let trail = uuid::Uuid::from_u128(7);
        let time = jiff::Timestamp::from_second(1_767_323_045).unwrap();
        let linker = Linker::new(None);
        let w = write_record(&linker, &trail, 1, &time, &event(), &"0".repeat(64)).unwrap();
        let expected_body = format!(
            concat!(
                r#"{{"v":1,"trail":"00000000-0000-0000-0000-000000000007","seq":1,"#,
                r#""time":"2026-01-02T03:04:05.000000Z","alg":"sha256","actor":"alice@contoso.com","#,
                r#""action":"password.reset","subject":"bob@contoso.com","outcome":"success","#,
                r#""details":{{"attempt":1,"mode":"scramble"}},"prev":"{}"}}"#
            ),
            "0".repeat(64)
        );
        assert_eq!(w.hash, linker.hash(expected_body.as_bytes()));
        assert_eq!(
            w.line,
            format!(
                "{},\"hash\":\"{}\"}}",
                &expected_body[..expected_body.len() - 1],
                w.hash
            )
        );
        assert_eq!(
            canonical_bytes(w.line.as_bytes()).unwrap(),
            expected_body.as_bytes()
        );
        let r = Record::parse(w.line.as_bytes()).unwrap();
        assert_eq!(
            (r.seq, r.outcome, r.hash.as_str()),
            (1, Outcome::Success, w.hash.as_str())
        );
        assert_eq!(r.detail("attempt"), Some(DetailValue::Int(1)));
    }

    #[test]
    fn canonical_bytes_need_a_well_formed_suffix() {
        assert!(canonical_bytes(b"{}").is_none());
        let bad = format!("{{\"a\":1,\"hash\":\"{}\"}}", "G".repeat(64));
        assert!(canonical_bytes(bad.as_bytes()).is_none());
        let good = format!("{{\"a\":1,\"hash\":\"{}\"}}", "a".repeat(64));
        assert_eq!(canonical_bytes(good.as_bytes()).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn events_are_checked() {
        assert!(Event::new("", "x", "y", Outcome::Success).is_err());
        assert!(Event::new("a", "Password Reset", "y", Outcome::Success).is_err());
        assert!(Event::new("a", "x", "line\nbreak", Outcome::Success).is_err());
        assert!(Event::new("a", "run.start", "", Outcome::Attempt).is_ok());
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl";
        assert!(matches!(
            Event::new("a", "x", jwt, Outcome::Success),
            Err(AuditError::SecretValue { .. })
        ));
    }

    #[test]
    fn parse_rejects_unknown_fields_and_duplicates() {
        let trail = uuid::Uuid::from_u128(7);
        let time = jiff::Timestamp::from_second(0).unwrap();
        let w = write_record(&Linker::new(None), &trail, 1, &time, &event(), "p").unwrap();
        let extra = w.line.replacen("{\"v\":1,", "{\"v\":1,\"x\":2,", 1);
        assert!(Record::parse(extra.as_bytes()).is_err());
        let dup = w.line.replacen("{\"v\":1,", "{\"v\":1,\"seq\":9,", 1);
        assert!(Record::parse(dup.as_bytes()).is_err());
    }
}
