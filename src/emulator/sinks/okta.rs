//! Okta's Factors API for Okta Verify push on the emulated tenant
//! (<https://developer.okta.com/docs/api/openapi/okta-management/management/tag/UserFactor/>),
//! under `/okta`, for the tenant's users:
//!
//! - `GET /okta/api/v1/users/{id|login|shortname}`: the user (`id` is `00u` + the Entra
//!   object id's 32 hex digits; `profile.login` is the UPN).
//! - `GET /okta/api/v1/users/{id}/factors`: one active Okta Verify push factor (`opf…`),
//!   none for a user without a push device.
//! - `POST /okta/api/v1/users/{id}/factors/{factorId}/verify`: `factorResult: WAITING`,
//!   `expiresAt` five minutes on, `_links.poll` and `_links.cancel`. The status code is not
//!   documented; 202 is what public write-ups show.
//! - `GET …/factors/{factorId}/transactions/{txId}`: `WAITING`, then `SUCCESS`, `REJECTED`
//!   or, past five minutes (divided by the time scale), `TIMEOUT`.
//!
//! Authorised by `Authorization: SSWS {token}` compared with the sink's token, else 401
//! `E0000011` "Invalid token provided"; unknown resources are 404 `E0000007`. Nothing is
//! shared with `crate::providers::push::okta`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use super::push::{Answer, Script, scripted};
use super::{header, json_response, same_secret};
use crate::emulator::outbox::OutboxEntry;
use crate::emulator::state::{Emu, now_rfc3339_ms};

/// How long Okta waits for a push answer (real time, before the time scale).
const PUSH_LIFETIME: Duration = Duration::from_secs(300);

/// Any `/okta/api/v1/users/{*rest}` request.
pub(crate) async fn handle(
    State(emu): State<Arc<Emu>>,
    method: Method,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(delay) = emu.faults.latency() {
        tokio::time::sleep(delay).await;
    }
    let authorised = header(&headers, "authorization")
        .and_then(|h| h.strip_prefix("SSWS "))
        .is_some_and(|t| same_secret(t.trim().as_bytes(), emu.sinks.okta_api_token.as_bytes()));
    if !authorised {
        return error(401, "E0000011", "Invalid token provided");
    }
    let parts: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", [user]) => get_user(&emu, user),
        ("GET", [user, "factors"]) => factors(&emu, user),
        ("POST", [user, "factors", factor, "verify"]) => verify(&emu, user, factor),
        ("GET", [user, "factors", factor, "transactions", tx]) => poll(&emu, user, factor, tx),
        _ => not_found(&rest),
    }
}

/// The user's index from an Okta id, a login (UPN) or a login shortname.
fn find(emu: &Emu, key: &str) -> Option<u32> {
    let tenant = emu.read();
    if let Some(hex) = key.strip_prefix("00u")
        && let Ok(id) = Uuid::parse_str(hex)
    {
        return tenant.find_user(&id.to_string());
    }
    if key.contains('@') {
        return tenant.find_user(key);
    }
    let lower = key.to_lowercase();
    (0..tenant.users.len() as u32)
        .find(|&i| tenant.users[i as usize].upn_local.to_lowercase() == lower)
}

/// The user's Okta id, the Entra object id as 32 hex digits after `00u`.
fn okta_id(emu: &Emu, idx: u32) -> String {
    format!("00u{}", emu.read().users[idx as usize].id.simple())
}

/// The user's push factor id.
fn factor_id(emu: &Emu, idx: u32) -> String {
    format!("opf{}", emu.read().users[idx as usize].id.simple())
}

fn script(emu: &Emu, idx: u32) -> Script {
    let upn = emu.read().upn(idx);
    scripted(emu.sinks.push_seed, &upn)
}

fn get_user(emu: &Emu, key: &str) -> Response {
    let Some(idx) = find(emu, key) else {
        return not_found(key);
    };
    let upn = emu.read().upn(idx);
    json_response(
        200,
        &json!({
            "id": okta_id(emu, idx),
            "status": "ACTIVE",
            "profile": { "login": upn, "email": upn },
            "_links": { "self": { "href": format!("{}/okta/api/v1/users/{}", emu.base, okta_id(emu, idx)) } },
        }),
    )
}

/// The user by Okta id only (the factor endpoints take `userId`).
fn by_id(emu: &Emu, user: &str) -> Option<u32> {
    user.starts_with("00u").then(|| find(emu, user)).flatten()
}

fn factors(emu: &Emu, user: &str) -> Response {
    let Some(idx) = by_id(emu, user) else {
        return not_found(user);
    };
    if script(emu, idx) == Script::NotEnrolled {
        return json_response(200, &json!([]));
    }
    let id = factor_id(emu, idx);
    json_response(
        200,
        &json!([{
            "id": id,
            "factorType": "push",
            "provider": "OKTA",
            "vendorName": "OKTA",
            "status": "ACTIVE",
            "profile": { "deviceType": "SmartPhone_IPhone", "name": "iPhone", "platform": "IOS" },
        }]),
    )
}

fn verify(emu: &Emu, user: &str, factor: &str) -> Response {
    let Some(idx) = by_id(emu, user) else {
        return not_found(user);
    };
    let script = script(emu, idx);
    if script == Script::NotEnrolled || factor != factor_id(emu, idx) {
        return not_found(factor);
    }
    let tx = format!("v2t{}", emu.pushes.start(idx, script).replace('-', ""));
    let upn = emu.read().upn(idx);
    emu.outbox.push(OutboxEntry {
        time: now_rfc3339_ms(),
        channel: "push",
        provider: "okta",
        provider_id: Some(tx.clone()),
        delivered: true,
        from: "okta".into(),
        to: vec![upn],
        content: "Okta Verify push".into(),
        payload: Some(json!({ "factor": factor, "scripted": script })),
        ..OutboxEntry::default()
    });
    json_response(202, &transaction(emu, user, factor, &tx, "WAITING"))
}

fn poll(emu: &Emu, user: &str, factor: &str, tx: &str) -> Response {
    let Some(idx) = by_id(emu, user) else {
        return not_found(user);
    };
    let internal = tx.strip_prefix("v2t").unwrap_or("");
    let internal = Uuid::parse_str(internal)
        .map(|u| u.to_string())
        .unwrap_or_default();
    let lifetime = PUSH_LIFETIME.div_f64(emu.scale.max(1e-6));
    match emu.pushes.poll(&internal, lifetime) {
        Some((owner, answer)) if owner == idx && factor == factor_id(emu, idx) => {
            let word = match answer {
                Answer::Waiting => "WAITING",
                Answer::Approved => "SUCCESS",
                Answer::Denied => "REJECTED",
                Answer::Expired => "TIMEOUT",
            };
            json_response(200, &transaction(emu, user, factor, tx, word))
        }
        _ => not_found(tx),
    }
}

/// A verify or poll answer.
fn transaction(emu: &Emu, user: &str, factor: &str, tx: &str, result: &str) -> Value {
    let href = format!(
        "{}/okta/api/v1/users/{user}/factors/{factor}/transactions/{tx}",
        emu.base
    );
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(300);
    let mut body = json!({
        "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z").to_string(),
        "factorResult": result,
    });
    if result == "WAITING" {
        body["_links"] = json!({
            "poll": { "href": href, "hints": { "allow": ["GET"] } },
            "cancel": { "href": href, "hints": { "allow": ["DELETE"] } },
        });
    }
    body
}

fn not_found(what: &str) -> Response {
    error(
        404,
        "E0000007",
        &format!("Not found: Resource not found: {what} (User)"),
    )
}

fn error(status: u16, code: &str, summary: &str) -> Response {
    json_response(
        status,
        &json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": format!("oae{}", Uuid::new_v4().simple()),
            "errorCauses": [],
        }),
    )
}
