//! The router and what every response goes through: the security headers, the body limit
//! and the per-request deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::auth::ApiCredentials;
use super::csrf::{CookieKind, CsrfKey};
use super::options::ServeContext;
use super::pages::Pages;
use super::{api, links, triggers};

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
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// The deadline, and the headers of every response: nothing cached (a page holds a
/// request's facts), no referrer (the token is in the URL), no framing, the page's CSP.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = match tokio::time::timeout(app.request_timeout, next.run(request)).await {
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

#[cfg(test)]
mod tests {
    use super::origin_of;

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
