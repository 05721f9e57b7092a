//! ServiceNow's Table API for the `incident` table
//! (<https://www.servicenow.com/docs/bundle/zurich-api-reference/page/integrate/inbound-rest/concept/c_TableAPI.html>),
//! under `/servicenow`:
//!
//! - `POST /servicenow/api/now/table/incident`: 201 `{"result":{…}}` with `sys_id` (32
//!   hex), `number` (`INC0010001` on), `state` `1` (New), `Location` header. No field is
//!   required: mandatory fields are each instance's configuration.
//! - `GET /servicenow/api/now/table/incident?sysparm_query=a=b^c=d&sysparm_fields=…&sysparm_limit=N`:
//!   `{"result":[…]}` (equality conditions joined by `^`, the encoded-query form).
//! - `GET|PATCH|PUT /servicenow/api/now/table/incident/{sys_id}`: the record; a change's
//!   `work_notes` and `comments` are journal entries (kept as notes, not fields), `state`
//!   changes are kept.
//!
//! Basic (the emulator's integration user) or `Bearer` (its OAuth token); otherwise 401
//! `{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth
//! information"},"status":"failure"}`. Unknown records are 404 "No Record found".

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use base64::Engine;
use serde_json::{Map, Value, json};

use super::{DeskTicket, note, object, status_change, throttled};
use crate::emulator::odata::query_pairs;
use crate::emulator::sinks::{header, json_response, same_secret};
use crate::emulator::state::{Emu, now_rfc3339};

const SYSTEM: &str = "servicenow";
/// Journal fields: written as entries, never read back as values.
const JOURNAL: [&str; 2] = ["work_notes", "comments"];

fn error(status: u16, message: &str, detail: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"message": message, "detail": detail}, "status": "failure"}),
    )
}

fn authorised(emu: &Emu, headers: &HeaderMap) -> bool {
    let Some(auth) = header(headers, "authorization") else {
        return false;
    };
    let creds = &emu.sinks;
    if let Some(token) = auth.strip_prefix("Bearer ") {
        return same_secret(token.trim().as_bytes(), creds.servicenow_token.as_bytes());
    }
    let Some(b64) = auth.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let want = format!("{}:{}", creds.servicenow_user, creds.servicenow_password);
    same_secret(&raw, want.as_bytes())
}

/// `/servicenow/api/now/table/incident[/{sys_id}]`.
pub(crate) async fn collection(
    State(emu): State<Arc<Emu>>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&emu, method, None, query, &headers, &body)
}

/// `/servicenow/api/now/table/incident/{sys_id}`.
pub(crate) async fn record(
    State(emu): State<Arc<Emu>>,
    method: Method,
    Path(sys_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&emu, method, Some(sys_id), query, &headers, &body)
}

fn handle(
    emu: &Emu,
    method: Method,
    sys_id: Option<String>,
    query: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !authorised(emu, headers) {
        return error(
            401,
            "User Not Authenticated",
            "Required to provide Auth information",
        );
    }
    if let Some(r) = throttled(
        emu,
        &json!({"error": {"message": "Too many requests", "detail": "Rate limit exceeded"}, "status": "failure"}),
    ) {
        return r;
    }
    let query = query_pairs(query.as_deref().unwrap_or(""));
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match (method.as_str(), sys_id) {
        ("POST", None) => create(emu, body),
        ("GET", None) => search(
            emu,
            param("sysparm_query"),
            param("sysparm_fields"),
            param("sysparm_limit"),
        ),
        ("GET", Some(id)) => match emu.desk.change(SYSTEM, &id, |_| {}) {
            Some(t) => json_response(200, &json!({ "result": t.record })),
            None => not_found(),
        },
        ("PATCH" | "PUT", Some(id)) => update(emu, &id, body),
        _ => error(
            405,
            "Method not Supported",
            "The method is not supported on this resource",
        ),
    }
}

fn not_found() -> Response {
    error(
        404,
        "No Record found",
        "Record doesn't exist or ACL restricts the record retrieval",
    )
}

fn bad_body() -> Response {
    error(
        400,
        "Exception while reading request",
        "The payload is not valid JSON.",
    )
}

fn create(emu: &Emu, body: &[u8]) -> Response {
    let Some(fields) = object(body) else {
        return bad_body();
    };
    let t = emu.desk.create(SYSTEM, |n| {
        let sys_id = uuid::Uuid::new_v4().simple().to_string();
        let number = format!("INC{:07}", 10_000 + n);
        let now = now_rfc3339();
        let mut record = Map::new();
        let mut notes = Vec::new();
        for (k, v) in &fields {
            if JOURNAL.contains(&k.as_str()) {
                notes.push(note(v.as_str().unwrap_or_default(), k));
            } else {
                record.insert(k.clone(), as_field(v));
            }
        }
        record.entry("state").or_insert(json!("1"));
        record.insert("sys_id".into(), json!(sys_id));
        record.insert("number".into(), json!(number));
        record.insert("sys_created_on".into(), json!(now));
        DeskTicket {
            system: SYSTEM,
            id: sys_id,
            number,
            created: Value::Object(fields.clone()),
            record,
            notes,
            status_changes: Vec::new(),
        }
    });
    let mut r = json_response(201, &json!({ "result": t.record }));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}/servicenow/api/now/table/incident/{}",
        emu.base, t.id
    )) {
        r.headers_mut().insert("location", v);
    }
    r
}

/// The Table API returns every value as a string.
fn as_field(v: &Value) -> Value {
    match v {
        Value::String(_) => v.clone(),
        Value::Null => json!(""),
        other => json!(other.to_string()),
    }
}

fn update(emu: &Emu, id: &str, body: &[u8]) -> Response {
    let Some(fields) = object(body) else {
        return bad_body();
    };
    let changed = emu.desk.change(SYSTEM, id, |t| {
        for (k, v) in &fields {
            if JOURNAL.contains(&k.as_str()) {
                t.notes.push(note(v.as_str().unwrap_or_default(), k));
                continue;
            }
            if k == "state" && t.record.get("state") != Some(&as_field(v)) {
                t.status_changes.push(status_change(as_field(v)));
            }
            t.record.insert(k.clone(), as_field(v));
        }
        t.record
            .insert("sys_updated_on".into(), json!(now_rfc3339()));
    });
    match changed {
        Some(t) => json_response(200, &json!({ "result": t.record })),
        None => not_found(),
    }
}

fn search(emu: &Emu, query: Option<&str>, fields: Option<&str>, limit: Option<&str>) -> Response {
    let conditions: Vec<(&str, &str)> = query
        .unwrap_or("")
        .split('^')
        .filter(|c| !c.is_empty())
        .filter_map(|c| c.split_once('='))
        .collect();
    let limit = limit
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let wanted: Option<Vec<&str>> = fields.map(|f| f.split(',').map(str::trim).collect());
    let result: Vec<Value> = emu
        .desk
        .list(Some(SYSTEM))
        .into_iter()
        .filter(|t| {
            conditions
                .iter()
                .all(|(k, v)| t.record.get(*k).and_then(Value::as_str) == Some(*v))
        })
        .take(limit)
        .map(|t| match &wanted {
            Some(w) => Value::Object(
                t.record
                    .into_iter()
                    .filter(|(k, _)| w.contains(&k.as_str()))
                    .collect(),
            ),
            None => Value::Object(t.record),
        })
        .collect();
    json_response(200, &json!({ "result": result }))
}
