//! ConnectWise PSA (Manage) service tickets
//! (<https://developer.connectwise.com/Products/ConnectWise_PSA/REST>), under
//! `/connectwise/v4_6_release/apis/3.0`:
//!
//! - `POST …/service/tickets`: `summary` (1 to 100 characters), `board` and `company`
//!   (each an object with `id`, or `name`/`identifier`) are required; 201 and the ticket
//!   (`id`, `status` `{"id":1,"name":"New"}`). A missing one is 400 `InvalidObject` with an
//!   `errors` entry naming the field.
//! - `GET …/service/tickets?conditions=field="value"`: the matching tickets (equality on
//!   top-level fields, conditions joined by ` and `).
//! - `GET|PATCH …/service/tickets/{id}`: PATCH takes a JSON Patch array (`replace` and
//!   `add` on a top-level path such as `status`).
//! - `POST …/service/tickets/{id}/notes`: a note (`text` required); 201 and the note.
//!
//! Authorised by Basic `{company}+{public key}:{private key}` and a `clientId` header;
//! otherwise 401 `{"code":"Unauthorized","message":…}`. Unknown tickets are 404 `NotFound`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::Engine;
use serde_json::{Map, Value, json};

use super::{DeskTicket, note, object, status_change, throttled};
use crate::emulator::odata::query_pairs;
use crate::emulator::sinks::{header, json_response, same_secret};
use crate::emulator::state::{Emu, now_rfc3339};

const SYSTEM: &str = "connectwise";

fn error(status: u16, code: &str, message: &str) -> Response {
    json_response(status, &json!({ "code": code, "message": message }))
}

fn invalid(field: &str, message: &str) -> Response {
    json_response(
        400,
        &json!({
            "code": "InvalidObject",
            "message": "ticket object is invalid",
            "errors": [{ "code": "NullObject", "message": message, "resource": "ticket", "field": field }],
        }),
    )
}

/// Why a request is not authorised, as ConnectWise words it (`None`: it is).
fn unauthorised(emu: &Emu, headers: &HeaderMap) -> Option<&'static str> {
    let creds = &emu.sinks;
    let basic = header(headers, "authorization")
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        });
    let want = format!(
        "{}+{}:{}",
        creds.connectwise_company, creds.connectwise_public_key, creds.connectwise_private_key
    );
    if !basic.is_some_and(|raw| same_secret(&raw, want.as_bytes())) {
        return Some("Authentication failed.");
    }
    if header(headers, "clientid").is_none_or(|c| c != creds.connectwise_client_id) {
        return Some("A valid clientId is required.");
    }
    None
}

/// `/connectwise/v4_6_release/apis/3.0/service/tickets`.
pub(crate) async fn tickets(
    State(emu): State<Arc<Emu>>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&emu, method, "", query, &headers, &body)
}

/// `/connectwise/v4_6_release/apis/3.0/service/tickets/{*rest}`.
pub(crate) async fn ticket(
    State(emu): State<Arc<Emu>>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&emu, method, &rest, query, &headers, &body)
}

fn handle(
    emu: &Emu,
    method: Method,
    rest: &str,
    query: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if let Some(why) = unauthorised(emu, headers) {
        return error(401, "Unauthorized", why);
    }
    if let Some(r) = throttled(
        emu,
        &json!({"code": "TooManyRequests", "message": "Too many requests"}),
    ) {
        return r;
    }
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", []) => create(emu, body),
        ("GET", []) => search(emu, query.as_deref()),
        ("GET", [id]) => match emu.desk.change(SYSTEM, id, |_| {}) {
            Some(t) => json_response(200, &Value::Object(t.record)),
            None => not_found(id),
        },
        ("PATCH", [id]) => patch(emu, id, body),
        ("POST", [id, "notes"]) => add_note(emu, id, body),
        _ => error(404, "NotFound", "The resource was not found."),
    }
}

fn not_found(id: &str) -> Response {
    error(404, "NotFound", &format!("Ticket Id {id} not found"))
}

/// A reference (`{"id":N}` or `{"name"|"identifier":…}`), as required fields take them.
fn reference(v: Option<&Value>, keys: &[&str]) -> bool {
    v.and_then(Value::as_object)
        .is_some_and(|o| keys.iter().any(|k| o.get(*k).is_some_and(|x| !x.is_null())))
}

fn create(emu: &Emu, body: &[u8]) -> Response {
    let Some(fields) = object(body) else {
        return error(400, "InvalidObject", "The request body could not be read.");
    };
    match fields.get("summary").and_then(Value::as_str) {
        None | Some("") => return invalid("summary", "summary may not be empty"),
        Some(s) if s.chars().count() > 100 => {
            return invalid("summary", "summary may not be more than 100 characters");
        }
        Some(_) => {}
    }
    if !reference(fields.get("board"), &["id", "name"]) {
        return invalid("board", "board object cannot be null");
    }
    if !reference(fields.get("company"), &["id", "identifier"]) {
        return invalid("company", "company object cannot be null");
    }
    let t = emu.desk.create(SYSTEM, |n| {
        let id = 1000 + n;
        let mut record = fields.clone();
        record.insert("id".into(), json!(id));
        record
            .entry("status")
            .or_insert(json!({ "id": 1, "name": "New" }));
        record.insert(
            "_info".into(),
            json!({ "dateEntered": now_rfc3339(), "enteredBy": "resetctl" }),
        );
        DeskTicket {
            system: SYSTEM,
            id: id.to_string(),
            number: id.to_string(),
            created: Value::Object(fields.clone()),
            record,
            notes: Vec::new(),
            status_changes: Vec::new(),
        }
    });
    json_response(201, &Value::Object(t.record))
}

fn search(emu: &Emu, query: Option<&str>) -> Response {
    let pairs = query_pairs(query.unwrap_or(""));
    let conditions = pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("conditions"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for c in conditions.split(" and ").filter(|c| !c.trim().is_empty()) {
        let Some((k, v)) = c.split_once('=') else {
            return error(400, "InvalidObject", "The conditions could not be read.");
        };
        wanted.push((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()));
    }
    let found: Vec<Value> = emu
        .desk
        .list(Some(SYSTEM))
        .into_iter()
        .filter(|t| {
            wanted.iter().all(|(k, v)| match t.record.get(k) {
                Some(Value::String(s)) => s == v,
                Some(other) => serde_json::from_str::<Value>(v).is_ok_and(|x| x == *other),
                None => false,
            })
        })
        .map(|t| Value::Object(t.record))
        .collect();
    json_response(200, &Value::Array(found))
}

fn patch(emu: &Emu, id: &str, body: &[u8]) -> Response {
    let Ok(Value::Array(ops)) = serde_json::from_slice::<Value>(body) else {
        return error(400, "InvalidObject", "A JSON Patch array is expected.");
    };
    let mut changes: Vec<(String, Value)> = Vec::new();
    for op in &ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        let path = path.trim_start_matches('/');
        if !matches!(kind, "replace" | "add") || path.is_empty() || path.contains('/') {
            return error(400, "InvalidObject", "Unsupported patch operation.");
        }
        changes.push((
            path.to_owned(),
            op.get("value").cloned().unwrap_or(Value::Null),
        ));
    }
    let changed = emu.desk.change(SYSTEM, id, |t| {
        for (k, v) in changes {
            if k == "status" {
                t.status_changes.push(status_change(v.clone()));
            }
            t.record.insert(k, v);
        }
    });
    match changed {
        Some(t) => json_response(200, &Value::Object(t.record)),
        None => not_found(id),
    }
}

fn add_note(emu: &Emu, id: &str, body: &[u8]) -> Response {
    let Some(fields) = object(body) else {
        return error(400, "InvalidObject", "The request body could not be read.");
    };
    let Some(text) = fields
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return json_response(
            400,
            &json!({
                "code": "InvalidObject",
                "message": "note object is invalid",
                "errors": [{ "code": "NullObject", "message": "text may not be empty", "resource": "note", "field": "text" }],
            }),
        );
    };
    let flag = |k: &str| fields.get(k).and_then(Value::as_bool) == Some(true);
    let kind = if flag("resolutionFlag") {
        "resolution"
    } else if flag("internalAnalysisFlag") {
        "internal"
    } else {
        "detail"
    };
    let mut count = 0;
    let changed = emu.desk.change(SYSTEM, id, |t| {
        t.notes.push(note(text, kind));
        count = t.notes.len();
    });
    if changed.is_none() {
        return not_found(id);
    }
    let mut out: Map<String, Value> = fields.clone();
    out.insert("id".into(), json!(count));
    out.insert(
        "ticketId".into(),
        json!(id.parse::<u64>().unwrap_or_default()),
    );
    json_response(201, &Value::Object(out))
}
