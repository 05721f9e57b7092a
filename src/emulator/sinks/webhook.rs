//! The generic webhook resetctl posts run-level messages to (a SOAR, a chat bridge):
//! `POST /hooks/{name}`, JSON, signed the Stripe/GitHub way, as resetctl documents it:
//! `X-Resetctl-Timestamp: <unix seconds>` and
//! `X-Resetctl-Signature: sha256=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! The timestamp is bound into the MAC so a captured request cannot be replayed later: a
//! receiver refuses one more than 5 minutes from its clock.
//!
//! Answers: 204 when the signature and time are right (the JSON is kept in the outbox),
//! 401 when either is wrong or missing, 400 for a body that is not JSON, 404 for another name.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{header, json_response, same_secret};
use crate::emulator::outbox::OutboxEntry;
use crate::emulator::state::{Emu, now_rfc3339_ms};

/// How far the timestamp may be from the receiver's clock, in seconds.
pub const TOLERANCE_S: i64 = 5 * 60;

/// `POST /hooks/{name}`.
pub(crate) async fn receive(
    State(emu): State<Arc<Emu>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if name != emu.sinks.webhook_name {
        return refuse(404, "no such hook");
    }
    let now = jiff::Timestamp::now().as_second();
    if let Err(why) = verify(
        emu.sinks.webhook_secret.as_bytes(),
        header(&headers, "x-resetctl-timestamp"),
        header(&headers, "x-resetctl-signature"),
        &body,
        now,
    ) {
        return refuse(401, why);
    }
    let Ok(posted) = serde_json::from_slice::<Value>(&body) else {
        return refuse(400, "the body is not JSON");
    };
    let text = |k: &str| posted.get(k).and_then(Value::as_str).map(str::to_string);
    emu.outbox.push(OutboxEntry {
        time: now_rfc3339_ms(),
        channel: "webhook",
        provider: "webhook",
        provider_id: text("key"),
        delivered: true,
        from: name,
        subject: text("subject"),
        content_type: Some("application/json".into()),
        content: text("text").unwrap_or_default(),
        payload: Some(posted),
        ..OutboxEntry::default()
    });
    StatusCode::NO_CONTENT.into_response()
}

/// Check the timestamp is fresh and the signature covers it and the body.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_s: i64,
) -> Result<(), &'static str> {
    let timestamp = timestamp.ok_or("X-Resetctl-Timestamp is missing")?;
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| "X-Resetctl-Timestamp is not a number of seconds")?;
    if (sent - now_s).abs() > TOLERANCE_S {
        return Err("X-Resetctl-Timestamp is more than 5 minutes from the receiver's clock");
    }
    let given = signature
        .and_then(|s| s.strip_prefix("sha256="))
        .ok_or("X-Resetctl-Signature is missing or not sha256=<hex>")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "bad key")?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    if same_secret(expected.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err("X-Resetctl-Signature does not match the body and timestamp")
    }
}

fn refuse(status: u16, why: &str) -> Response {
    json_response(status, &json!({ "error": why }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], ts: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signature_and_time_are_both_checked() {
        let (key, body, now) = (b"k3y".as_slice(), br#"{"a":1}"#.as_slice(), 1_700_000_000);
        let ts = now.to_string();
        let sig = sign(key, &ts, body);
        assert_eq!(verify(key, Some(&ts), Some(&sig), body, now), Ok(()));
        assert!(verify(key, Some(&ts), Some(&sig), br#"{"a":2}"#, now).is_err());
        assert!(verify(b"other", Some(&ts), Some(&sig), body, now).is_err());
        assert!(verify(key, Some(&ts), Some(&sig.to_uppercase()), body, now).is_err());
        assert!(verify(key, None, Some(&sig), body, now).is_err());
        assert!(verify(key, Some(&ts), None, body, now).is_err());
        // Replayed later: the same signature, out of the window.
        assert!(verify(key, Some(&ts), Some(&sig), body, now + 301).is_err());
        assert_eq!(verify(key, Some(&ts), Some(&sig), body, now + 300), Ok(()));
        // A signature for another timestamp does not transfer.
        let later = (now + 10).to_string();
        assert!(verify(key, Some(&later), Some(&sig), body, now).is_err());
    }
}
