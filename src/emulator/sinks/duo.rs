//! Duo Auth API v2 on the emulated tenant (<https://duo.com/docs/authapi>), under `/duo`:
//! `POST /duo/auth/v2/preauth`, `POST /duo/auth/v2/auth` (`factor=push`; `async=1` answers a
//! `txid`, otherwise the answer itself), `GET /duo/auth/v2/auth_status?txid=…`. Users are the
//! tenant's, by UPN; how each answers is scripted ([`super::push::scripted`]).
//!
//! Every request's signature is recomputed here, written from Duo's documented recipe and
//! sharing nothing with `crate::providers::push::duo`: HTTP Basic with the integration key
//! and the hex HMAC (SHA-1, 40 digits, or SHA-512, 128 digits) of
//! `Date\nMETHOD\nhost\npath\nparams`, the params sorted and encoded per RFC 5849
//! §3.4.1.3.2 (duosecurity/duo_client_python `duo_client/client.py`, `canonicalize`). The host
//! is the request's `Host` header (with the port, as a client of a non-default port signs
//! it). Errors are Duo's `{"stat":"FAIL","code","message","message_detail"}`: 40101 missing
//! credentials, 40102 unknown integration key, 40103 bad signature (401); 40001 missing and
//! 40002 invalid parameters (400).
//!
//! Only push is emulated: every device of the emulated tenant is a phone with Duo Mobile, and
//! another `factor` is answered 40002 (invalid parameter). Duo does not document a clock-skew
//! limit for the `Date`, so none is enforced.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use super::push::{Answer, Script, scripted};
use super::{header, json_response, same_secret};
use crate::emulator::odata::query_pairs;
use crate::emulator::outbox::OutboxEntry;
use crate::emulator::state::{Emu, now_rfc3339_ms};

/// How long Duo waits for a push answer (real time, before the time scale).
const PUSH_LIFETIME: Duration = Duration::from_secs(60);

/// Any `/duo/auth/v2/…` request.
pub(crate) async fn handle(
    State(emu): State<Arc<Emu>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(delay) = emu.faults.latency() {
        tokio::time::sleep(delay).await;
    }
    let raw = if method == Method::GET || method == Method::DELETE {
        uri.query().unwrap_or("").to_string()
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let params = query_pairs(&raw);
    if let Err((code, message)) = authenticate(&emu, &method, uri.path(), &headers, &params) {
        return fail(401, code, message, None);
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match (method.as_str(), uri.path()) {
        ("POST", "/duo/auth/v2/preauth") => preauth(&emu, get("username").or(get("user_id"))),
        ("POST", "/duo/auth/v2/auth") => auth(&emu, &params).await,
        ("GET", "/duo/auth/v2/auth_status") => status(&emu, get("txid")),
        _ => fail(404, 40401, "Resource not found", None),
    }
}

/// Check the request's credentials and signature: Duo's error code and message if wrong.
fn authenticate(
    emu: &Emu,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<(), (u32, &'static str)> {
    let missing = || (40101, "Missing request credentials");
    let (ikey, signature) = header(headers, "authorization")
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
        .ok_or_else(missing)?;
    let date = header(headers, "date").ok_or_else(missing)?;
    let host = header(headers, "host").unwrap_or("").to_ascii_lowercase();
    if ikey != emu.sinks.duo_integration_key {
        return Err((40102, "Invalid integration key in request credentials"));
    }
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (rfc5849(k), rfc5849(v)))
        .collect();
    encoded.sort();
    let canon_params: Vec<String> = encoded.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let canonical = format!(
        "{date}\n{}\n{host}\n{path}\n{}",
        method.as_str().to_ascii_uppercase(),
        canon_params.join("&")
    );
    let key = emu.sinks.duo_secret_key.as_bytes();
    let expected = match signature.len() {
        40 => hex::encode(ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key),
            canonical.as_bytes(),
        )),
        128 => {
            let mut mac =
                Hmac::<sha2::Sha512>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(canonical.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        _ => String::new(),
    };
    if expected.is_empty() || !same_secret(expected.as_bytes(), signature.to_lowercase().as_bytes())
    {
        return Err((40103, "Invalid signature in request credentials"));
    }
    Ok(())
}

/// RFC 5849 §3.4.1.3.2: unreserved characters kept, other UTF-8 bytes `%XX` (upper case).
fn rfc5849(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `preauth`: `enroll` for an unknown user or one without a device, else `auth` with the
/// user's phone.
fn preauth(emu: &Emu, username: Option<&str>) -> Response {
    let Some(username) = username.filter(|u| !u.is_empty()) else {
        return fail(
            400,
            40001,
            "Missing required request parameters",
            Some("username"),
        );
    };
    let user = emu.read().find_user(username);
    let script = scripted(emu.sinks.push_seed, username);
    match user {
        Some(idx) if script != Script::NotEnrolled => ok(json!({
            "result": "auth",
            "status_msg": "Account is active",
            "devices": [{
                "device": device_id(idx),
                "type": "phone",
                "number": "XXX-XXX-0150",
                "name": "",
                "display_name": "iOS (XXX-XXX-0150)",
                "capabilities": ["auto", "push", "sms", "phone", "mobile_otp"],
            }],
        })),
        _ => ok(json!({
            "result": "enroll",
            "status_msg": "Enroll an authentication device to proceed",
            "enroll_portal_url": format!("{}/duo/portal?code=enroll", emu.base),
        })),
    }
}

/// `auth` with `factor=push`.
async fn auth(emu: &Emu, params: &[(String, String)]) -> Response {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(username) = get("username").or(get("user_id")) else {
        return fail(
            400,
            40001,
            "Missing required request parameters",
            Some("username"),
        );
    };
    let Some(factor) = get("factor") else {
        return fail(
            400,
            40001,
            "Missing required request parameters",
            Some("factor"),
        );
    };
    if factor != "push" && factor != "auto" {
        return fail(400, 40002, "Invalid request parameters", Some("factor"));
    }
    let Some(idx) = emu.read().find_user(username) else {
        return fail(400, 40002, "Invalid request parameters", Some("username"));
    };
    let script = scripted(emu.sinks.push_seed, username);
    let device = get("device").unwrap_or("auto");
    if script == Script::NotEnrolled || (device != "auto" && device != device_id(idx)) {
        return fail(400, 40002, "Invalid request parameters", Some("device"));
    }
    let asynchronous = get("async") == Some("1");
    let tx = emu.pushes.start(idx, script);
    emu.outbox.push(OutboxEntry {
        time: now_rfc3339_ms(),
        channel: "push",
        provider: "duo",
        provider_id: Some(tx.clone()),
        delivered: true,
        from: emu.sinks.duo_integration_key.clone(),
        to: vec![emu.read().upn(idx)],
        content: get("type").unwrap_or("Login request").to_string(),
        payload: Some(json!({
            "factor": factor,
            "device": device,
            "async": asynchronous,
            "pushinfo": get("pushinfo"),
            "scripted": script,
        })),
        ..OutboxEntry::default()
    });
    if asynchronous {
        return ok(json!({ "txid": tx }));
    }
    // Synchronous: the answer, once the user gives it (or the push expires).
    if script == Script::Timeout {
        tokio::time::sleep(lifetime(emu)).await;
    }
    ok(result(match script {
        Script::Approve => Answer::Approved,
        Script::Deny => Answer::Denied,
        _ => Answer::Expired,
    }))
}

/// `auth_status`.
fn status(emu: &Emu, txid: Option<&str>) -> Response {
    let Some(txid) = txid.filter(|t| !t.is_empty()) else {
        return fail(
            400,
            40001,
            "Missing required request parameters",
            Some("txid"),
        );
    };
    match emu.pushes.poll(txid, lifetime(emu)) {
        Some((_, answer)) => ok(result(answer)),
        None => fail(400, 40002, "Invalid request parameters", Some("txid")),
    }
}

/// The body of an answer.
fn result(answer: Answer) -> Value {
    let (result, status, msg) = match answer {
        Answer::Waiting => (
            "waiting",
            "pushed",
            "Pushed a login request to your device...",
        ),
        Answer::Approved => ("allow", "allow", "Success. Logging you in..."),
        Answer::Denied => ("deny", "deny", "Login request denied."),
        Answer::Expired => ("deny", "timeout", "Login timed out."),
    };
    json!({ "result": result, "status": status, "status_msg": msg })
}

/// A push's lifetime on this emulator's clock.
fn lifetime(emu: &Emu) -> Duration {
    PUSH_LIFETIME.div_f64(emu.scale.max(1e-6))
}

/// The user's phone's device id (`DP` + 18 characters, as Duo's look).
fn device_id(idx: u32) -> String {
    format!("DP{:018X}", idx as u64 * 7919 + 0x5EED)
}

fn ok(response: Value) -> Response {
    json_response(200, &json!({ "stat": "OK", "response": response }))
}

fn fail(status: u16, code: u32, message: &str, detail: Option<&str>) -> Response {
    let mut body = json!({ "stat": "FAIL", "code": code, "message": message });
    if let Some(detail) = detail {
        body["message_detail"] = json!(detail);
    }
    json_response(status, &body)
}
