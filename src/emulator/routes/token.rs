//! HTTP wrapper of the token endpoint (logic in `auth`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::emulator::auth;
use crate::emulator::state::Emu;

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(
    State(emu): State<Arc<Emu>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    emu.counters
        .token_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    let form = String::from_utf8_lossy(&body);
    let answer = auth::token(&emu, &tenant, authorization, &form);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = (status, axum::Json(answer.body)).into_response();
    let h = resp.headers_mut();
    h.insert(
        "cache-control",
        HeaderValue::from_static("no-store, no-cache"),
    );
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-ms-request-id", v.clone());
        h.insert("request-id", v);
    }
    resp
}
