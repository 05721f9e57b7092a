//! HaloPSA (<https://halopsa.com/apidoc/>), under `/halo`:
//!
//! - `POST /halo/auth/token`: OAuth 2 client credentials (form `grant_type`, `client_id`,
//!   `client_secret`, `scope`); `{"access_token":…,"token_type":"Bearer","expires_in":3600}`,
//!   else 401 `{"error":"invalid_client",…}` (RFC 6749 §5.2).
//! - `POST /halo/api/Tickets`: an array of tickets (a single object is accepted too). One
//!   without `id` is new and needs `summary`; one with the `id` of a ticket changes it
//!   (`status_id` changes are kept). The answer is the ticket (an object for one).
//! - `POST /halo/api/Actions`: an array of actions; each needs the `ticket_id` of a ticket
//!   and is kept as a note (`outcome` is its kind).
//!
//! The API needs `Authorization: Bearer` with a token this emulator issued; otherwise 401.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{DeskTicket, note, status_change, throttled};
use crate::emulator::odata::query_pairs;
use crate::emulator::sinks::{header, json_response, same_secret};
use crate::emulator::state::{Emu, now_rfc3339};

const SYSTEM: &str = "halopsa";

fn error(status: u16, message: &str) -> Response {
    json_response(status, &json!({ "message": message }))
}

/// `POST /halo/auth/token`.
pub(crate) async fn token(State(emu): State<Arc<Emu>>, body: Bytes) -> Response {
    let form = std::str::from_utf8(&body)
        .map(query_pairs)
        .unwrap_or_default();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("client_credentials") {
        return json_response(
            400,
            &json!({"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"}),
        );
    }
    let c = &emu.sinks;
    let ok = get("client_id") == Some(c.halo_client_id.as_str())
        && get("client_secret")
            .is_some_and(|s| same_secret(s.as_bytes(), c.halo_client_secret.as_bytes()));
    if !ok {
        return json_response(
            401,
            &json!({"error": "invalid_client", "error_description": "Invalid client credentials"}),
        );
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    emu.desk.issue_halo_token(token.clone());
    json_response(
        200,
        &json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": get("scope").unwrap_or("all")}),
    )
}

fn authorised(emu: &Emu, headers: &HeaderMap) -> bool {
    header(headers, "authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| emu.desk.halo_token_valid(t.trim()))
}

/// The posted items: an array, or one object.
fn items(body: &[u8]) -> Option<Vec<Map<String, Value>>> {
    match serde_json::from_slice(body).ok()? {
        Value::Array(a) => a
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect(),
        Value::Object(m) => Some(vec![m]),
        _ => None,
    }
}

/// One item as the answer (a lone object for one item).
fn answer(mut out: Vec<Value>) -> Response {
    if out.len() == 1 {
        return json_response(201, &out.remove(0));
    }
    json_response(201, &Value::Array(out))
}

/// `POST /halo/api/Tickets`.
pub(crate) async fn tickets(
    State(emu): State<Arc<Emu>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorised(&emu, &headers) {
        return error(401, "Unauthorized");
    }
    if let Some(r) = throttled(&emu, &json!({"message": "Too many requests"})) {
        return r;
    }
    let Some(items) = items(&body) else {
        return error(
            400,
            "The request body must be a ticket or an array of tickets",
        );
    };
    let mut out = Vec::new();
    for item in items {
        let id = item.get("id").and_then(Value::as_u64).filter(|id| *id > 0);
        if let Some(id) = id {
            let changed = emu.desk.change(SYSTEM, &id.to_string(), |t| {
                for (k, v) in &item {
                    if k == "status_id" && t.record.get(k) != Some(v) {
                        t.status_changes.push(status_change(v.clone()));
                    }
                    t.record.insert(k.clone(), v.clone());
                }
            });
            match changed {
                Some(t) => out.push(Value::Object(t.record)),
                None => return error(404, &format!("Ticket {id} not found")),
            }
            continue;
        }
        if item
            .get("summary")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return error(400, "summary is required");
        }
        let t = emu.desk.create(SYSTEM, |n| {
            let id = 100 + n;
            let mut record = item.clone();
            record.insert("id".into(), json!(id));
            record.entry("status_id").or_insert(json!(1));
            record.insert("dateoccurred".into(), json!(now_rfc3339()));
            DeskTicket {
                system: SYSTEM,
                id: id.to_string(),
                number: id.to_string(),
                created: Value::Object(item.clone()),
                record,
                notes: Vec::new(),
                status_changes: Vec::new(),
            }
        });
        out.push(Value::Object(t.record));
    }
    answer(out)
}

/// `POST /halo/api/Actions`.
pub(crate) async fn actions(
    State(emu): State<Arc<Emu>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorised(&emu, &headers) {
        return error(401, "Unauthorized");
    }
    if let Some(r) = throttled(&emu, &json!({"message": "Too many requests"})) {
        return r;
    }
    let Some(items) = items(&body) else {
        return error(
            400,
            "The request body must be an action or an array of actions",
        );
    };
    let mut out = Vec::new();
    for item in items {
        let Some(ticket) = item.get("ticket_id").and_then(Value::as_u64) else {
            return error(400, "ticket_id is required");
        };
        let text = item.get("note").and_then(Value::as_str).unwrap_or_default();
        let kind = item
            .get("outcome")
            .and_then(Value::as_str)
            .unwrap_or("Action");
        let mut n = 0;
        if emu
            .desk
            .change(SYSTEM, &ticket.to_string(), |t| {
                t.notes.push(note(text, kind));
                n = t.notes.len();
            })
            .is_none()
        {
            return error(404, &format!("Ticket {ticket} not found"));
        }
        let mut a = item.clone();
        a.insert("id".into(), json!(n));
        out.push(Value::Object(a));
    }
    answer(out)
}
