//! Twilio Programmable Messaging's "create a Message":
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic auth with the account
//! SID and auth token (or an API key SID and secret), form-encoded `To`, `From` or
//! `MessagingServiceSid`, `Body`; unknown fields are ignored, as Twilio does
//! (<https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource>).
//!
//! Answers: 201 with the Message resource (`status` `queued`, or `accepted` through a
//! Messaging Service, whose `num_segments` is `"0"` until it is sent); errors are Twilio's
//! `{"code","message","more_info","status"}` with the documented codes: 20003 bad
//! credentials (401), 21604 no `To`, 21603 no `From`, 21602 no `Body`, 21617 a body over
//! 1,600 characters, 21211 an invalid `To`, 21606 a `From` that is not the account's,
//! 21701 an unknown Messaging Service (unconfirmed code), 20429 throttled (429)
//! (<https://www.twilio.com/docs/api/errors>). Which check Twilio makes first is not
//! documented; the emulator checks in the order listed.
//!
//! Leniency where Twilio's documentation is silent: spaces, dashes, dots and brackets in
//! `To` are dropped before the number is judged; the `Content-Type` is not checked beyond
//! reading a form body.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use serde_json::{Map, Value, json};

use super::{header, json_response, same_secret, segments, valid_e164};
use crate::emulator::faults::Sink;
use crate::emulator::odata::query_pairs;
use crate::emulator::outbox::OutboxEntry;
use crate::emulator::state::{Emu, now_rfc3339_ms};

/// The longest `Body` Twilio accepts, in characters.
const MAX_BODY: usize = 1600;

/// `POST /twilio/2010-04-01/Accounts/{sid}/Messages.json`.
pub(crate) async fn create(
    State(emu): State<Arc<Emu>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(delay) = emu.faults.latency() {
        tokio::time::sleep(delay).await;
    }
    if !authorised(&emu, &account, header(&headers, "authorization")) {
        let mut r = error(401, 20003, "Authentication Error - invalid username");
        r.headers_mut().insert(
            "www-authenticate",
            axum::http::HeaderValue::from_static("Basic realm=\"Twilio API\""),
        );
        return r;
    }
    if emu.faults.sink_throttled(Sink::Twilio) {
        return error(429, 20429, "Too Many Requests");
    }
    // An outage (`twilio_503`): Twilio's error 20503, "Service Unavailable"
    // (https://www.twilio.com/docs/errors/20503); nothing is accepted.
    if emu.faults.sink_down(Sink::Twilio) {
        return error(503, 20503, "Service Unavailable");
    }
    let form: Vec<(String, String)> = std::str::from_utf8(&body)
        .map(query_pairs)
        .unwrap_or_default();
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let creds = &emu.sinks;
    let Some(to_raw) = get("To") else {
        return error(400, 21604, "A 'To' phone number is required.");
    };
    let from = get("From");
    let service = get("MessagingServiceSid");
    if from.is_none() && service.is_none() {
        return error(400, 21603, "A 'From' phone number is required.");
    }
    let text = get("Body").unwrap_or("");
    let media = form.iter().filter(|(k, _)| k == "MediaUrl").count();
    if text.is_empty() && media == 0 && get("ContentSid").is_none() {
        return error(400, 21602, "Message body is required.");
    }
    if text.chars().count() > MAX_BODY {
        return error(
            400,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let to: String = to_raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    if !valid_e164(&to) {
        return error(
            400,
            21211,
            &format!("The 'To' number {to_raw} is not a valid phone number."),
        );
    }
    if let Some(from) = from
        && service.is_none()
        && from != creds.twilio_from
    {
        return error(
            400,
            21606,
            &format!(
                "The From phone number {from} is not a valid, SMS-capable inbound phone number or short code for your account."
            ),
        );
    }
    if let Some(service) = service
        && service != creds.twilio_messaging_service_sid
    {
        return error(
            400,
            21701,
            &format!("The Messaging Service Sid {service} is invalid."),
        );
    }
    let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let (_, segments) = segments::count(text);
    let date = jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S +0000")
        .to_string();
    let account_sid = &creds.twilio_account_sid;
    let payload: Map<String, Value> = form.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    emu.outbox.push(OutboxEntry {
        time: now_rfc3339_ms(),
        channel: "sms",
        provider: "twilio",
        provider_id: Some(sid.clone()),
        delivered: true,
        from: service.or(from).unwrap_or_default().to_string(),
        to: vec![to.clone()],
        content: text.to_string(),
        payload: Some(Value::Object(payload)),
        segments: Some(segments),
        ..OutboxEntry::default()
    });
    let uri = format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}");
    json_response(
        201,
        &json!({
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "body": text,
            "date_created": date,
            "date_sent": null,
            "date_updated": date,
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": if service.is_some() { Value::Null } else { json!(from) },
            "messaging_service_sid": service,
            "num_media": media.to_string(),
            // Through a Messaging Service the count is "0" until the message is sent.
            "num_segments": if service.is_some() { "0".to_string() } else { segments.to_string() },
            "price": null,
            "price_unit": null,
            "sid": sid,
            "status": if service.is_some() { "accepted" } else { "queued" },
            "subresource_uris": { "media": format!("{uri}/Media.json") },
            "to": to,
            "uri": format!("{uri}.json"),
        }),
    )
}

/// Basic auth as the account (SID and auth token) or one of its API keys, for the account
/// named in the path.
fn authorised(emu: &Emu, account: &str, authorization: Option<&str>) -> bool {
    let creds = &emu.sinks;
    let Some((user, password)) = authorization
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        })
    else {
        return false;
    };
    let as_account = user == creds.twilio_account_sid
        && same_secret(password.as_bytes(), creds.twilio_auth_token.as_bytes());
    let as_key = user == creds.twilio_api_key_sid
        && same_secret(password.as_bytes(), creds.twilio_api_key_secret.as_bytes());
    (as_account || as_key) && account == creds.twilio_account_sid
}

/// Twilio's error body.
fn error(status: u16, code: u32, message: &str) -> Response {
    json_response(
        status,
        &json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}
