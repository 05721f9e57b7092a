//! Azure Communication Services SMS, "Sms - Send": `POST {endpoint}/sms?api-version=2021-03-07`
//! (<https://learn.microsoft.com/rest/api/communication/sms/send>), the later stable
//! api-versions of the published specification too (`2024-01-02`, `2024-02-05`,
//! `2025-09-17`, `2026-01-23`; github.com/Azure/azure-rest-api-specs,
//! `specification/communication/data-plane/Sms/stable`); others are refused with Azure's
//! `UnsupportedApiVersion`.
//!
//! Authentication is the access-key HMAC, recomputed here from the request as it arrived
//! (<https://learn.microsoft.com/azure/communication-services/tutorials/hmac-header-tutorial>):
//! `x-ms-content-sha256` = base64(SHA-256(body)) must match the body; the string to sign is
//! `POST\n{path and query}\n{values of SignedHeaders joined by ;}` (documented with
//! `x-ms-date;host;x-ms-content-sha256`, the host as sent, port included); the signature is
//! base64(HMAC-SHA256(base64-decoded key, that string)), sent as
//! `Authorization: HMAC-SHA256 SignedHeaders=…&Signature=…`. Anything wrong is 401 with
//! Azure's `{"error":{"code":"Denied","message"}}` (the code and the content-hash message as
//! the service answers them, github.com/Azure/azure-rest-api-specs/issues/11767).
//! How far `x-ms-date` may be from the server's clock is not documented for ACS: the
//! emulator allows 15 minutes either way, what Azure App Configuration documents for the
//! same scheme (<https://learn.microsoft.com/azure/azure-app-configuration/rest-api-authentication-hmac>).
//! An Entra bearer token (the other way ACS accepts) is not modelled: it is refused.
//!
//! The body: `from`, `smsRecipients` (1 to 100, each `to`), `message` (at most 2,048
//! characters), optional `smsSendOptions` whose `enableDeliveryReport` is then required.
//! The answer is **202 with one result per recipient**: an invalid number is
//! `successful:false`, `httpStatusCode:400`, "Invalid To phone number format." inside it.
//!
//! Repeatability (per recipient, `repeatabilityRequestId` + `repeatabilityFirstSent`,
//! results `accepted` or `rejected`, after the OASIS Repeatable Requests 1.0 rules ACS
//! follows, <https://learn.microsoft.com/rest/api/communication/repeatable-requests>): an id
//! that is not a GUID, or a first-sent time that is not RFC 1123, is `rejected` (400); a new
//! id is sent and `accepted`; an id seen before for the same message is `accepted` with the
//! first result and **not sent again**; an id seen before for a different message is
//! `rejected` (400). ACS documents a 5-minute tracking window for Email and Rooms; for SMS
//! it is unconfirmed (its own sample sends a first-sent time years old), so the emulator
//! remembers ids for its whole life and never refuses an old first-sent time.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{header, json_response, same_secret, valid_e164};
use crate::emulator::faults::Sink;
use crate::emulator::outbox::OutboxEntry;
use crate::emulator::state::{Emu, now_rfc3339_ms};

/// The stable api-versions of the SMS data plane.
pub const API_VERSIONS: &[&str] = &[
    "2021-03-07",
    "2024-01-02",
    "2024-02-05",
    "2025-09-17",
    "2026-01-23",
];

/// How far `x-ms-date` may be from the emulator's clock, in seconds.
pub const CLOCK_SKEW_S: i64 = 15 * 60;

/// The longest `message`, in characters.
const MAX_MESSAGE: usize = 2048;

/// The most recipients in one request.
const MAX_RECIPIENTS: usize = 100;

/// What a repeatable request's id stood for the first time it was seen.
#[derive(Debug, Clone)]
pub struct AcsRepeat {
    /// Digest of (from, to, message): what makes a repeat "the same request".
    fingerprint: [u8; 32],
    /// The result given then.
    result: Value,
}

/// `POST /acs/sms?api-version=…`.
pub(crate) async fn send(
    State(emu): State<Arc<Emu>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(delay) = emu.faults.latency() {
        tokio::time::sleep(delay).await;
    }
    let now = jiff::Timestamp::now().as_second();
    if let Err(message) = verify(&emu.sinks.acs_access_key, &uri, &headers, &body, now) {
        return error(401, "Denied", message);
    }
    let version = uri.query().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("api-version="))
            .map(str::to_string)
    });
    match version.as_deref() {
        None => {
            return error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        Some(v) if !API_VERSIONS.contains(&v) => {
            return error(
                400,
                "UnsupportedApiVersion",
                &format!(
                    "The HTTP resource that matches the request URI '{}' does not support the API version '{v}'.",
                    uri.path()
                ),
            );
        }
        Some(_) => {}
    }
    if emu.faults.sink_throttled(Sink::Acs) {
        return error(
            429,
            "TooManyRequests",
            "The request was throttled: too many requests.",
        );
    }
    // An outage (`acs_503`): the service's 503 in the Azure error shape; nothing is sent.
    if emu.faults.sink_down(Sink::Acs) {
        return error(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry later.",
        );
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return error(400, "BadRequest", "The request body is not valid JSON."),
    };
    let (from, recipients, message) = match check_body(&request) {
        Ok(parts) => parts,
        Err(message) => return error(400, "BadRequest", &message),
    };
    let results: Vec<Value> = recipients
        .iter()
        .map(|r| recipient(&emu, from, message, r, &request))
        .collect();
    json_response(202, &json!({ "value": results }))
}

/// Check the signature, the content hash and the date; the error says which failed.
fn verify(
    key: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now_s: i64,
) -> Result<(), &'static str> {
    let denied = "Denied by the resource provider.";
    let auth = header(headers, "authorization").ok_or(denied)?;
    let params = auth.strip_prefix("HMAC-SHA256 ").ok_or(denied)?;
    let (mut signed, mut signature) = (None, None);
    for part in params.trim().split('&') {
        match part.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("SignedHeaders") => signed = Some(v),
            // The signature is base64: its own `=` padding stays with it.
            Some((k, v)) if k.eq_ignore_ascii_case("Signature") => signature = Some(v),
            _ => {}
        }
    }
    let (signed, signature) = (signed.ok_or(denied)?, signature.ok_or(denied)?);
    let names: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    if !(has("host") && has("x-ms-content-sha256") && (has("x-ms-date") || has("date"))) {
        return Err(denied);
    }
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    if header(headers, "x-ms-content-sha256") != Some(hash.as_str()) {
        return Err("Request 'x-ms-content-sha256' differs from generated content hash.");
    }
    let date = header(headers, "x-ms-date")
        .or_else(|| header(headers, "date"))
        .ok_or(denied)?;
    let sent = jiff::fmt::rfc2822::parse(date)
        .map_err(|_| "The x-ms-date header is not a valid RFC 1123 date.")?
        .timestamp()
        .as_second();
    if (sent - now_s).abs() > CLOCK_SKEW_S {
        return Err("The request time in x-ms-date is too far from the server time.");
    }
    let mut values = Vec::with_capacity(names.len());
    for name in &names {
        let value = match name.as_str() {
            "host" => header(headers, "host")
                .map(str::to_string)
                .or_else(|| uri.authority().map(|a| a.to_string())),
            other => header(headers, other).map(str::to_string),
        };
        values.push(value.ok_or(denied)?);
    }
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let to_sign = format!("POST\n{path_and_query}\n{}", values.join(";"));
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| denied)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| denied)?;
    mac.update(to_sign.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if same_secret(expected.as_bytes(), signature.as_bytes()) {
        Ok(())
    } else {
        Err(denied)
    }
}

/// `from`, the recipients and the message, or what is wrong with the body.
fn check_body(request: &Value) -> Result<(&str, &Vec<Value>, &str), String> {
    let from = request
        .get("from")
        .and_then(Value::as_str)
        .ok_or("The from field is required.")?;
    let recipients = request
        .get("smsRecipients")
        .and_then(Value::as_array)
        .ok_or("The smsRecipients field is required.")?;
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(format!(
            "smsRecipients must hold between 1 and {MAX_RECIPIENTS} recipients."
        ));
    }
    if recipients
        .iter()
        .any(|r| r.get("to").and_then(Value::as_str).is_none())
    {
        return Err("Every recipient needs a to field.".into());
    }
    let message = request
        .get("message")
        .and_then(Value::as_str)
        .ok_or("The message field is required.")?;
    if message.chars().count() > MAX_MESSAGE {
        return Err(format!(
            "The message must be at most {MAX_MESSAGE} characters."
        ));
    }
    if let Some(options) = request.get("smsSendOptions").filter(|o| !o.is_null())
        && options
            .get("enableDeliveryReport")
            .and_then(Value::as_bool)
            .is_none()
    {
        return Err("The smsSendOptions.enableDeliveryReport field is required.".into());
    }
    Ok((from, recipients, message))
}

/// One recipient's result (and, when it is sent, its outbox entry).
fn recipient(emu: &Emu, from: &str, message: &str, r: &Value, request: &Value) -> Value {
    let to = r.get("to").and_then(Value::as_str).unwrap_or_default();
    let repeat_id = r.get("repeatabilityRequestId").and_then(Value::as_str);
    let first_sent = r.get("repeatabilityFirstSent").and_then(Value::as_str);
    let Some(id) = repeat_id else {
        return deliver(emu, from, to, message, request);
    };
    let rejected = |why: &str| {
        json!({
            "to": to, "httpStatusCode": 400, "repeatabilityResult": "rejected",
            "errorMessage": why, "successful": false,
        })
    };
    if uuid::Uuid::parse_str(id).is_err() {
        return rejected(
            "Request sent with Invalid value for repeatability-request-id. Expected is a GUID.",
        );
    }
    if first_sent.is_none_or(|d| jiff::fmt::rfc2822::parse(d).is_err()) {
        return rejected(
            "Request sent with Invalid DateTime value for repeatability-first-sent. Expected is DateTime ,RFC1123 pattern.",
        );
    }
    let fingerprint: [u8; 32] = Sha256::digest(format!("{from}\n{to}\n{message}")).into();
    let mut seen = emu.acs_repeats.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(first) = seen.get(id) {
        return if first.fingerprint == fingerprint {
            // The same request again: the first answer, nothing sent.
            first.result.clone()
        } else {
            rejected(
                "A request with this repeatability-request-id was already accepted with different content.",
            )
        };
    }
    let mut result = deliver(emu, from, to, message, request);
    result["repeatabilityResult"] = json!("accepted");
    seen.insert(
        id.to_string(),
        AcsRepeat {
            fingerprint,
            result: result.clone(),
        },
    );
    result
}

/// Send to one recipient: an outbox entry, and the result ACS gives.
fn deliver(emu: &Emu, from: &str, to: &str, message: &str, request: &Value) -> Value {
    let valid = valid_e164(to);
    let message_id = format!(
        "Outgoing_{}{}_noam",
        jiff::Timestamp::now().strftime("%Y%m%d%H%M%S"),
        uuid::Uuid::new_v4()
    );
    let error = (!valid).then(|| "Invalid To phone number format.".to_string());
    emu.outbox.push(OutboxEntry {
        time: now_rfc3339_ms(),
        channel: "sms",
        provider: "acs",
        provider_id: valid.then(|| message_id.clone()),
        delivered: valid,
        error: error.clone(),
        from: from.to_string(),
        to: vec![to.to_string()],
        content: message.to_string(),
        payload: Some(request.clone()),
        ..OutboxEntry::default()
    });
    match error {
        None => json!({
            "to": to, "messageId": message_id, "httpStatusCode": 202, "successful": true,
        }),
        Some(why) => json!({
            "to": to, "httpStatusCode": 400, "errorMessage": why, "successful": false,
        }),
    }
}

/// Azure's error body.
fn error(status: u16, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1123_dates_parse() {
        let t = jiff::fmt::rfc2822::parse("Tue, 26 Mar 2019 16:06:51 GMT").unwrap();
        assert_eq!(t.timestamp().as_second(), 1_553_616_411);
    }

    #[test]
    fn bodies_are_checked_as_the_specification_says() {
        let ok = json!({"from": "+18005550150", "smsRecipients": [{"to": "+14255550100"}], "message": "hi"});
        assert!(check_body(&ok).is_ok());
        let mut no_report = ok.clone();
        no_report["smsSendOptions"] = json!({"tag": "x"});
        assert!(
            check_body(&no_report)
                .unwrap_err()
                .contains("enableDeliveryReport")
        );
        no_report["smsSendOptions"]["enableDeliveryReport"] = json!(false);
        assert!(check_body(&no_report).is_ok());
        let mut empty = ok.clone();
        empty["smsRecipients"] = json!([]);
        assert!(check_body(&empty).is_err());
        let mut many = ok.clone();
        many["smsRecipients"] = json!(vec![json!({"to": "+14255550100"}); 101]);
        assert!(check_body(&many).is_err());
        let mut long = ok.clone();
        long["message"] = json!("a".repeat(2049));
        assert!(check_body(&long).is_err());
        long["message"] = json!("a".repeat(2048));
        assert!(check_body(&long).is_ok());
        assert!(check_body(&json!({"smsRecipients": [], "message": "x"})).is_err());
    }
}
