//! Autotask (Datto) REST (<https://www.autotask.net/help/developerhelp/Content/APIs/REST/REST_API_Home.htm>),
//! under `/autotask/atservicesrest`:
//!
//! - `GET …/v1.0/zoneInformation?user={UserName}`: the zone, which is this emulator
//!   (`{"zoneName":…,"url":"{root}/autotask/atservicesrest/",…}`); an unknown user is 404.
//!   Not authenticated, as Autotask's is not.
//! - `POST …/v1.0/Tickets`: `companyID`, `title`, `status` and `priority` are required
//!   (`queueID` is documented as part of the minimal body but not as required: accepted
//!   either way); `{"itemId":N}`.
//! - `PATCH …/v1.0/Tickets`: `id` in the body, the fields to change; `{"itemId":N}`.
//! - `POST …/v1.0/Tickets/{id}/Notes`: a TicketNote (`description`, `noteType`, `publish`
//!   required); `{"itemId":N}`.
//!
//! Every call but the zone lookup needs the `ApiIntegrationCode`, `UserName` and `Secret`
//! headers; otherwise 401 `{"errors":[…]}`. Errors are `{"errors":["…"]}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::{Value, json};

use super::{DeskTicket, note, object, status_change, throttled};
use crate::emulator::odata::query_pairs;
use crate::emulator::sinks::{header, json_response, same_secret};
use crate::emulator::state::{Emu, now_rfc3339};

const SYSTEM: &str = "autotask";

fn errors(status: u16, message: &str) -> Response {
    json_response(status, &json!({ "item": null, "errors": [message] }))
}

/// `GET /autotask/atservicesrest/v1.0/zoneInformation`.
pub(crate) async fn zone(State(emu): State<Arc<Emu>>, RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(query.as_deref().unwrap_or(""));
    let user = pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("user"))
        .map(|(_, v)| v.as_str());
    if user.is_none_or(|u| !u.eq_ignore_ascii_case(&emu.sinks.autotask_username)) {
        return errors(
            404,
            "Zone information could not be determined for this user.",
        );
    }
    json_response(
        200,
        &json!({
            "zoneName": "Emulated zone",
            "url": format!("{}/autotask/atservicesrest/", emu.base),
            "webUrl": format!("{}/autotask/", emu.base),
            "ci": 0,
        }),
    )
}

fn authorised(emu: &Emu, headers: &HeaderMap) -> bool {
    let c = &emu.sinks;
    header(headers, "apiintegrationcode") == Some(c.autotask_integration_code.as_str())
        && header(headers, "username").is_some_and(|u| u.eq_ignore_ascii_case(&c.autotask_username))
        && header(headers, "secret")
            .is_some_and(|s| same_secret(s.as_bytes(), c.autotask_secret.as_bytes()))
}

/// `/autotask/atservicesrest/v1.0/Tickets`.
pub(crate) async fn tickets(
    State(emu): State<Arc<Emu>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&emu, method, "", &headers, &body)
}

/// `/autotask/atservicesrest/v1.0/Tickets/{*rest}`.
pub(crate) async fn ticket(
    State(emu): State<Arc<Emu>>,
    method: Method,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&emu, method, &rest, &headers, &body)
}

fn handle(emu: &Emu, method: Method, rest: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    if !authorised(emu, headers) {
        return errors(401, "The user is not authorized to access this resource.");
    }
    if let Some(r) = throttled(emu, &json!({"errors": ["Too many requests."]})) {
        return r;
    }
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", []) => create(emu, body),
        ("PATCH", []) => update(emu, body),
        ("GET", [id]) => match emu.desk.change(SYSTEM, id, |_| {}) {
            Some(t) => json_response(200, &json!({ "item": t.record })),
            None => json_response(200, &json!({ "item": null })),
        },
        ("POST", [id, "Notes"]) => add_note(emu, id, body),
        _ => errors(404, "The resource was not found."),
    }
}

/// The first of `required` missing from `fields` (null counts as missing).
fn missing<'a>(fields: &serde_json::Map<String, Value>, required: &[&'a str]) -> Option<&'a str> {
    required
        .iter()
        .find(|k| fields.get(**k).is_none_or(Value::is_null))
        .copied()
}

fn create(emu: &Emu, body: &[u8]) -> Response {
    let Some(fields) = object(body) else {
        return errors(400, "The request body could not be read.");
    };
    if let Some(field) = missing(&fields, &["companyID", "title", "status", "priority"]) {
        return errors(500, &format!("Ticket: the field {field} is required."));
    }
    let t = emu.desk.create(SYSTEM, |n| {
        let id = 7000 + n;
        let mut record = fields.clone();
        record.insert("id".into(), json!(id));
        record.insert("ticketNumber".into(), json!(format!("T20270115.{n:04}")));
        record.insert("createDate".into(), json!(now_rfc3339()));
        DeskTicket {
            system: SYSTEM,
            id: id.to_string(),
            number: id.to_string(),
            created: serde_json::Value::Object(fields.clone()),
            record,
            notes: Vec::new(),
            status_changes: Vec::new(),
        }
    });
    json_response(
        200,
        &json!({ "itemId": t.id.parse::<u64>().unwrap_or_default() }),
    )
}

fn update(emu: &Emu, body: &[u8]) -> Response {
    let Some(fields) = object(body) else {
        return errors(400, "The request body could not be read.");
    };
    let Some(id) = fields.get("id").and_then(Value::as_u64) else {
        return errors(500, "Ticket: the field id is required.");
    };
    let changed = emu.desk.change(SYSTEM, &id.to_string(), |t| {
        for (k, v) in &fields {
            if k == "status" && t.record.get("status") != Some(v) {
                t.status_changes.push(status_change(v.clone()));
            }
            t.record.insert(k.clone(), v.clone());
        }
    });
    match changed {
        Some(_) => json_response(200, &json!({ "itemId": id })),
        None => errors(404, &format!("Ticket {id} was not found.")),
    }
}

fn add_note(emu: &Emu, id: &str, body: &[u8]) -> Response {
    let Some(fields) = object(body) else {
        return errors(400, "The request body could not be read.");
    };
    if let Some(field) = missing(&fields, &["description", "noteType", "publish"]) {
        return errors(500, &format!("TicketNote: the field {field} is required."));
    }
    let text = fields
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let publish = fields
        .get("publish")
        .map(Value::to_string)
        .unwrap_or_default();
    let mut n = 0;
    let changed = emu.desk.change(SYSTEM, id, |t| {
        t.notes.push(note(text, &format!("publish {publish}")));
        n = t.notes.len();
    });
    match changed {
        Some(_) => json_response(200, &json!({ "itemId": 9000 + n })),
        None => errors(404, &format!("Ticket {id} was not found.")),
    }
}
