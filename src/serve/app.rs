//! The router and what every request goes through, outermost first: the access log (one
//! `access` event per request, with a request id), the per-client rate limit, then the
//! deadline, a panic turned into a 500, the security headers, and the body limit
//! ([`super::body`]).

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::FutureExt as _;
use tracing::Instrument as _;

use super::auth::ApiCredentials;
use super::body::{self, BodyLimit};
use super::connections::Connections;
use super::csrf::{CookieKind, CsrfKey};
use super::limits::{Class, Limiter};
use super::metrics::MetricsAccess;
use super::options::ServeContext;
use super::pages::Pages;
use super::ready::ReadyCache;
use super::telemetry::Telemetry;
use super::{api, links, metrics, ready, triggers};

/// The peer of a connection, put into each of its requests by the accept loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// What the handlers share.
pub(crate) struct App {
    pub ctx: ServeContext,
    pub pages: Pages,
    pub csrf: CsrfKey,
    pub cookie: CookieKind,
    /// The public origin (`https://approve.example`), lower-case, default port left out:
    /// what a browser sends as `Origin` for a form on these pages.
    pub origin: String,
    pub api: ApiCredentials,
    pub request_timeout: Duration,
    /// The in-process counters.
    pub telemetry: Telemetry,
    /// The per-client buckets.
    pub limiter: Limiter,
    /// Who may read `/metrics`.
    pub metrics_access: MetricsAccess,
    /// The run store's file, read for `/metrics` (none: its families are left out).
    pub run_store: Option<PathBuf>,
    /// The last readiness answer.
    pub ready: ReadyCache,
    /// How long a readiness answer is reused.
    pub ready_ttl: Duration,
    /// The open connections, by client (read for `/metrics`).
    pub connections: Arc<Connections>,
}

/// The origin of `base` as browsers serialise it.
pub(crate) fn origin_of(base: &str) -> Option<String> {
    let (scheme, rest) = base.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') || !["http", "https"].contains(&&*scheme) {
        return None;
    }
    let default = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// Every route.
pub(crate) fn router(app: Arc<App>, body_limit: usize) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready::show))
        .route("/metrics", get(metrics::show))
        .route(
            "/approve/{request}/{token}",
            get(links::open_approve).post(links::answer_approve),
        )
        .route(
            "/deny/{request}/{token}",
            get(links::open_deny).post(links::answer_deny),
        )
        .route("/v1/requests", axum::routing::post(api::create))
        .route("/v1/requests/{id}", get(api::show))
        .route(
            "/v1/triggers/{source}",
            axum::routing::post(triggers::receive),
        )
        .route("/v1/runs/{id}", get(triggers::status))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            BodyLimit(body_limit),
            body::limit,
        ))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(middleware::from_fn_with_state(app.clone(), limit))
        .layer(middleware::from_fn_with_state(app.clone(), access))
        .with_state(app)
}

/// The client's address: the TCP peer's.
fn peer_ip(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<Peer>()
        .map(|Peer(addr)| addr.ip().to_canonical())
}

/// One `access` event per request: method, route template (never the raw path: an approval
/// link's path holds its token), status, latency, client address and a request id, which
/// also goes back in `X-Request-Id` and onto every event logged while the request ran.
/// Headers, query strings and bodies are never logged. Counts the request for `/metrics`.
async fn access(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let trigger = (route == "/v1/triggers/{source}").then(|| {
        let path = request.uri().path();
        path.rsplit('/').next().unwrap_or_default().to_owned()
    });
    let client = peer_ip(&request);
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = next.run(request).instrument(span).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "access",
        method = %method,
        route = %route,
        status,
        latency_ms,
        client_ip = %client.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
        request_id = %request_id,
        "request"
    );
    app.telemetry.request(&route, method.as_str(), status);
    if let Some(source) = trigger {
        app.telemetry.trigger(&source, status);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The per-client rate limit of the request's route class: 429 with `Retry-After` (whole
/// seconds, at least one) once the client's bucket is empty.
async fn limit(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let class = Class::of(request.uri().path());
    let Some(ip) = peer_ip(&request) else {
        return next.run(request).await;
    };
    match app.limiter.check(ip, class, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            app.telemetry.limited(class.as_str());
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many requests from this address; retry in {secs} s\n"),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

/// The deadline, a panicking handler answered with a 500 (the connection and the server
/// live on), and the headers of every response: nothing cached (a page holds a request's
/// facts), no referrer (the token is in the URL), no framing, the page's CSP.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let run = contained(next.run(request));
    let mut response = match tokio::time::timeout(app.request_timeout, run).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the server did not finish this request in time\n",
        )
            .into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(csp) = HeaderValue::from_str(app.pages.csp()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// `handler`'s response, or a plain 500 if it panics (logged; the panic's message is not
/// sent to the client).
async fn contained(handler: impl Future<Output = Response>) -> Response {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("a request handler panicked; answered 500");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{contained, origin_of};

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500() {
        let ok = contained(async { axum::response::IntoResponse::into_response("fine") }).await;
        assert_eq!(ok.status(), 200);
        let index: Vec<u8> = Vec::new();
        let panicked = contained(async move {
            let byte = index
                .get(3)
                .copied()
                .unwrap_or_else(|| panic!("out of range"));
            axum::response::IntoResponse::into_response(byte.to_string())
        })
        .await;
        assert_eq!(panicked.status(), 500);
    }

    #[test]
    fn origins_are_serialised_as_browsers_send_them() {
        assert_eq!(
            origin_of("https://Approve.Example:443/x").as_deref(),
            Some("https://approve.example")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("ftp://x"), None);
        assert_eq!(origin_of("https://user@x"), None);
        assert_eq!(origin_of("approve.example"), None);
    }
}
