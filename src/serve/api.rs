//! The request API for portals and ticketing tools: `POST /v1/requests` starts a
//! verification, `GET /v1/requests/{id}` reads where it is. Every call is authenticated
//! ([`super::auth`]); errors are `{"error": {"code", "message"}}`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::app::App;
use super::auth::SIGNATURE_HEADER;
use crate::verify::runtime::{Ask, RuntimeError};
use crate::verify::store::StoredRequest;
use crate::verify::{Outcome, Person};

/// Longest free-text field (the reason) in characters; names and ids get [`MAX_NAME`].
const MAX_TEXT: usize = 1000;
/// Longest name, id or label in characters.
const MAX_NAME: usize = 256;

/// The body of `POST /v1/requests`. The risk facts (high risk, open mass reset, critical
/// role) are never taken from a caller: the runtime looks them up.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    tenant: String,
    user: String,
    requester: RequesterBody,
    requester_label: String,
    origin: String,
    reason: String,
    device_available: bool,
    /// `password_reset` (default) or `mfa_reset`.
    #[serde(default)]
    outcome: Outcome,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequesterBody {
    id: String,
    upn: String,
}

/// An API error response.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

/// The call's credentials against the configuration: the 401 if they do not pass.
pub(crate) fn unauthenticated(app: &App, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let signature = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    app.api
        .check(authorization, signature, body, app.ctx.clock.now())
        .err()
        .map(|failure| {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                failure.code(),
                failure.to_string(),
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        })
}

/// `POST /v1/requests`: start a verification; `201 {id, state}` with its `Location`.
pub(crate) async fn create(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = unauthenticated(&app, &headers, &body) {
        return response;
    }
    let body: CreateBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("the request body: {e}"),
            );
        }
    };
    let fields = [
        ("tenant", &body.tenant, MAX_NAME),
        ("user", &body.user, MAX_NAME),
        ("requester.id", &body.requester.id, MAX_NAME),
        ("requester.upn", &body.requester.upn, MAX_NAME),
        ("requester_label", &body.requester_label, MAX_NAME),
        ("origin", &body.origin, MAX_NAME),
        ("reason", &body.reason, MAX_TEXT),
    ];
    for (name, value, max) in fields {
        if let Some(problem) = text_problem(value, max) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_field",
                format!("{name}: {problem}"),
            );
        }
    }
    let Some(runtime) = app.ctx.runtimes.get(&body.tenant).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_tenant",
            format!("this server does not serve tenant {:?}", body.tenant),
        );
    };
    let ask = Ask {
        user: body.user,
        requester: Person {
            id: body.requester.id,
            upn: body.requester.upn,
        },
        requester_label: body.requester_label,
        origin: body.origin,
        reason: body.reason,
        device_available: body.device_available,
        // The two-path flow: a push that does not verify the user goes to the manager.
        manager_fallback: true,
        outcome: body.outcome,
    };
    // Its own task: the deadline or a vanished client cannot stop a request half made.
    let made = tokio::spawn(async move { runtime.request(ask).await }).await;
    let id = match made {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => return runtime_error(&e),
        Err(e) => {
            tracing::error!("a verification request's task failed: {e}");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            );
        }
    };
    let state = match app.ctx.requests.load(&id).await {
        Ok(Some(stored)) => stored.flow.state.name().to_string(),
        _ => "requested".to_owned(),
    };
    let mut response =
        (StatusCode::CREATED, Json(json!({"id": id, "state": state}))).into_response();
    if let Ok(location) = header::HeaderValue::from_str(&format!("/v1/requests/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `GET /v1/requests/{id}`: where a verification is.
pub(crate) async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = unauthenticated(&app, &headers, b"") {
        return response;
    }
    match app.ctx.requests.load(&id).await {
        Ok(Some(stored)) => Json(view(&stored)).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown_request",
            format!("no verification request {id:?}"),
        ),
        Err(e) => {
            tracing::error!("reading verification request {id}: {e}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the request store cannot be read right now",
            )
        }
    }
}

/// A stored request as the API shows it. The store keeps the current state, not a history;
/// the audit trail has every transition.
fn view(stored: &StoredRequest) -> serde_json::Value {
    json!({
        "id": stored.flow.id,
        "tenant": stored.request.tenant,
        "user": stored.flow.context.user.upn,
        "state": stored.flow.state.name().to_string(),
        "detail": stored.flow.state,
        "requester": stored.request.requester,
        "origin": stored.request.origin,
        "created_at": stored.request.created_at.to_string(),
        "updated_at": stored.updated_at.to_string(),
        "done": stored.done,
    })
}

/// What is wrong with a text field, if anything.
fn text_problem(value: &str, max: usize) -> Option<String> {
    if value.trim().is_empty() {
        return Some("must not be empty".into());
    }
    if value.chars().count() > max {
        return Some(format!("longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Some("contains control characters".into());
    }
    None
}

fn runtime_error(e: &RuntimeError) -> Response {
    match e {
        // The runtime's own words for a user the directory does not have.
        RuntimeError::Directory(message) if message.starts_with("no user ") => {
            error(StatusCode::NOT_FOUND, "unknown_user", message.clone())
        }
        RuntimeError::Directory(message) => error(
            StatusCode::BAD_GATEWAY,
            "directory_error",
            format!("directory: {message}"),
        ),
        RuntimeError::Facts(_) => {
            tracing::error!("verification request: {e}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "facts_unavailable",
                "the user's risk, roles and open runs cannot be checked right now; nothing \
                 was started",
            )
        }
        RuntimeError::Step { .. } | RuntimeError::Busy(_) => {
            error(StatusCode::CONFLICT, "conflict", e.to_string())
        }
        RuntimeError::Store(_) => {
            tracing::error!("verification request store: {e}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the request store cannot be written right now",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_bounded_and_printable() {
        assert_eq!(text_problem("locked out", 20), None);
        assert!(text_problem("  ", 20).is_some());
        assert!(text_problem(&"x".repeat(21), 20).is_some());
        assert!(text_problem("a\u{1b}[31m", 20).is_some());
    }
}
