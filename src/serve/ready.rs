//! `GET /readyz`: 200 only when the request store answers and every tenant's directory
//! answers a cheap read (`GET /users/$count`), else 503 with a JSON body naming what is not
//! ready. The answer is kept for a few seconds, and concurrent probes wait for the one
//! check in flight, so a probe storm costs Graph one read per tenant per interval. The body
//! names components and tenants, never an error's text (which could carry a URL or a
//! request detail): the full error goes to the log.
//!
//! `/healthz` stays liveness: the process answers HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::app::App;

/// How long each probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The last readiness answer and when it was made.
#[derive(Debug, Default)]
pub(crate) struct ReadyCache {
    last: Mutex<Option<(Instant, bool, Value)>>,
}

/// `GET /readyz`.
pub(crate) async fn show(State(app): State<Arc<App>>) -> Response {
    let (ready, body) = check(&app).await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The cached answer if fresh, else a new one (one check at a time).
async fn check(app: &App) -> (bool, Value) {
    let mut last = app.ready.last.lock().await;
    if let Some((at, ready, body)) = &*last
        && at.elapsed() < app.ready_ttl
    {
        return (*ready, body.clone());
    }
    let (ready, body) = probe(app).await;
    *last = Some((Instant::now(), ready, body.clone()));
    (ready, body)
}

async fn probe(app: &App) -> (bool, Value) {
    let mut failing = Vec::new();
    let store = tokio::time::timeout(
        PROBE_TIMEOUT,
        app.ctx.requests.load("vr-00000000000000000000000000000000"),
    )
    .await;
    match store {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!("readiness: the request store failed: {e}");
            failing.push(json!({"component": "store", "reason": "error"}));
        }
        Err(_) => failing.push(json!({"component": "store", "reason": "timeout"})),
    }
    let tenants = futures::future::join_all(app.ctx.runtimes.iter().map(|(name, runtime)| {
        let directory = runtime.directory().clone();
        async move {
            let answer = tokio::time::timeout(PROBE_TIMEOUT, directory.count_users()).await;
            (name, answer)
        }
    }))
    .await;
    for (tenant, answer) in tenants {
        match answer {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(%tenant, "readiness: the directory failed: {e}");
                failing.push(json!({
                    "component": "tenant",
                    "tenant": tenant,
                    "reason": e.kind.as_str(),
                }));
            }
            Err(_) => failing.push(json!({
                "component": "tenant",
                "tenant": tenant,
                "reason": "timeout",
            })),
        }
    }
    let ready = failing.is_empty();
    (
        ready,
        json!({
            "ready": ready,
            "tenants": app.ctx.runtimes.len(),
            "failing": failing,
        }),
    )
}
