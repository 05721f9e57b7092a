//! `POST /$batch` (<https://learn.microsoft.com/graph/json-batching>): up to 20 requests, ids
//! unique (case-insensitive), `dependsOn` answered 424 when a prerequisite failed, envelope
//! 200 whatever the items did. Each item goes through the same dispatcher as a direct
//! request, so it is charged, throttled (per-item 429 with Retry-After in its headers) and
//! logged on its own. Items run in order, which satisfies every `dependsOn` ordering.

use axum::http::Method;
use serde_json::{Map, Value, json};

use super::{Ctx, Outcome, Req, dispatch, split_path};
use crate::emulator::errors::{Body, Fail, GraphResponse};
use crate::emulator::odata::query_pairs;

/// Largest number of requests in one batch.
pub const MAX_REQUESTS: usize = 20;

fn invalid(message: impl Into<String>) -> Fail {
    Fail::new(400, "BadRequest", message)
}

/// One validated item.
struct Item {
    id: String,
    method: Method,
    path: String,
    query: String,
    headers: Map<String, Value>,
    body: Vec<u8>,
    depends_on: Vec<String>,
}

fn parse(body: &[u8]) -> Result<Vec<Item>, Fail> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| invalid("Invalid batch payload format."))?;
    let Some(requests) = v.get("requests").and_then(Value::as_array) else {
        return Err(invalid(
            "Invalid batch payload format: the 'requests' array is missing.",
        ));
    };
    if requests.is_empty() {
        return Err(invalid("Batch request must contain at least one request."));
    }
    if requests.len() > MAX_REQUESTS {
        return Err(invalid(format!(
            "The number of requests in the batch exceeds the maximum of {MAX_REQUESTS}."
        )));
    }
    let mut items: Vec<Item> = Vec::with_capacity(requests.len());
    for r in requests {
        let Some(id) = r.get("id").and_then(|i| match i {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }) else {
            return Err(invalid("Batch request is missing a request 'id'."));
        };
        if items.iter().any(|i| i.id.eq_ignore_ascii_case(&id)) {
            return Err(invalid(format!(
                "Batch request contains duplicate request id '{id}'."
            )));
        }
        let method = r
            .get("method")
            .and_then(Value::as_str)
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .ok_or_else(|| invalid(format!("Batch request '{id}' has no valid 'method'.")))?;
        let url = r
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("Batch request '{id}' has no 'url'.")))?;
        if url.contains("://") {
            return Err(invalid(format!(
                "Batch request '{id}': the url must be relative."
            )));
        }
        let url = url.trim_start_matches('/');
        let url = url.strip_prefix("v1.0/").unwrap_or(url);
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let headers = match r.get("headers") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(h)) => h.clone(),
            Some(_) => {
                return Err(invalid(format!(
                    "Batch request '{id}': 'headers' must be an object."
                )));
            }
        };
        let body = match r.get("body") {
            None | Some(Value::Null) => Vec::new(),
            Some(b) => {
                if !headers
                    .keys()
                    .any(|k| k.eq_ignore_ascii_case("content-type"))
                {
                    return Err(invalid(format!(
                        "Batch request '{id}' has a body but no Content-Type header."
                    )));
                }
                serde_json::to_vec(b).unwrap_or_default()
            }
        };
        let depends_on = match r.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(_) => {
                return Err(invalid(format!(
                    "Batch request '{id}': 'dependsOn' must be an array."
                )));
            }
        };
        for d in &depends_on {
            if !items.iter().any(|i| i.id.eq_ignore_ascii_case(d)) {
                return Err(invalid(format!(
                    "Batch request '{id}' depends on '{d}', which is not an earlier request of the batch."
                )));
            }
        }
        items.push(Item {
            id,
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body,
            depends_on,
        });
    }
    Ok(items)
}

fn item_json(id: &str, r: GraphResponse) -> Value {
    let mut headers = Map::new();
    headers.insert("Cache-Control".into(), json!("no-cache"));
    let body = match r.body {
        Body::Empty => None,
        Body::Json(v) => {
            headers.insert("Content-Type".into(), json!("application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"));
            Some(v)
        }
        Body::Text(t) => {
            headers.insert("Content-Type".into(), json!("text/plain"));
            Some(Value::String(t))
        }
    };
    for (name, value) in r.headers {
        headers.insert(name.to_string(), json!(value));
    }
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("status".into(), json!(r.status));
    m.insert("headers".into(), Value::Object(headers));
    if let Some(b) = body {
        m.insert("body".into(), b);
    }
    Value::Object(m)
}

/// Run a batch.
pub fn handle(ctx: &Ctx<'_>, body: &[u8]) -> GraphResponse {
    let items = match parse(body) {
        Ok(items) => items,
        Err(f) => return f.response(&ctx.request_id),
    };
    let mut statuses: Vec<(String, u16)> = Vec::with_capacity(items.len());
    let mut responses = Vec::with_capacity(items.len());
    for item in &items {
        let request_id = uuid::Uuid::new_v4().to_string();
        let failed_dependency = item.depends_on.iter().any(|d| {
            statuses
                .iter()
                .find(|(id, _)| id.eq_ignore_ascii_case(d))
                .is_none_or(|(_, s)| !(200..300).contains(s))
        });
        let r = if failed_dependency {
            Fail::new(
                424,
                "FailedDependency",
                "The request could not be executed because a request it depends on failed.",
            )
            .response(&request_id)
        } else {
            let eventual = item.headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("consistencylevel")
                    && v.as_str()
                        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
            });
            let sub = Ctx {
                emu: ctx.emu,
                app: ctx.app,
                request_id: request_id.clone(),
                eventual,
                batch: true,
            };
            let content_type = item
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_string);
            // A body that is not JSON travels in a batch as a JSON string
            // (<https://learn.microsoft.com/graph/json-batching>): hand over its text.
            let text_body = content_type
                .as_deref()
                .filter(|ct| !ct.to_ascii_lowercase().contains("json"))
                .and_then(|_| serde_json::from_slice::<String>(&item.body).ok());
            let req = Req {
                method: &item.method,
                segs: split_path(&item.path),
                pairs: query_pairs(&item.query),
                body: text_body.as_ref().map_or(&item.body[..], |t| t.as_bytes()),
                content_type,
            };
            match dispatch(&sub, &req, false) {
                Outcome::Respond(r) => r,
                // Resets are never drawn inside a batch; answer like a gateway would.
                Outcome::Reset => {
                    Fail::new(502, "BadGateway", "The connection was reset.").response(&request_id)
                }
            }
        };
        ctx.emu.count_status(r.status);
        statuses.push((item.id.clone(), r.status));
        responses.push(item_json(&item.id, r));
    }
    GraphResponse::json(200, json!({ "responses": responses }))
}
