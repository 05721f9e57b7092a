//! [`GraphClient`]: the ONE `send()` choke point every Graph request goes through — auth
//! header, throttle permit, retries, typed errors and a tracing span per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use secrecy::ExposeSecret;
use tracing::Instrument as _;

use super::auth::{AppCredential, TokenSource};
use super::error::{GraphError, GraphErrorKind};
use super::request::{Request, Response};
use super::transport;
use crate::config::{ConfigError, ConfigErrorKind, Env, TenantSettings};
use crate::throttle::{Bucket, Quotas, TenantGovernor, full_jitter, parse_retry_after};

/// Retry and timeout policy of a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-request timeout (Graph itself gives up on several APIs after 60 s).
    pub request_timeout: Duration,
    /// Attempts for transient failures (5xx, connection errors) including the first.
    pub max_attempts: u32,
    /// Re-sends after 429 before giving up with `Throttled`.
    pub max_throttle_retries: u32,
    /// Base of the full-jitter back-off for transient failures.
    pub backoff_base: Duration,
    /// Cap of that back-off.
    pub backoff_cap: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(60),
            max_attempts: 5,
            max_throttle_retries: 50,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
        }
    }
}

impl ClientOptions {
    /// Defaults with back-off divided by `time_scale` (emulated tenants).
    pub fn scaled(time_scale: f64, request_timeout: Duration) -> Self {
        let scale = if time_scale.is_finite() && time_scale >= 1.0 {
            time_scale
        } else {
            1.0
        };
        let d = ClientOptions::default();
        ClientOptions {
            request_timeout,
            backoff_base: d.backoff_base.div_f64(scale),
            backoff_cap: d.backoff_cap.div_f64(scale),
            ..d
        }
    }
}

struct Inner {
    /// Shared HTTP connection pool (also used for token requests).
    http: reqwest::Client,
    /// Graph base URL with version, no trailing slash.
    base: String,
    /// `scheme://host[:port]` of `base`: nextLinks must stay on it.
    origin: String,
    /// One token source per app of the credential pool (index = `Permit::app`).
    apps: Vec<TokenSource>,
    /// The tenant's throttle governor.
    governor: TenantGovernor,
    /// Retry and timeout policy.
    options: ClientOptions,
    /// Responses answered 429 so far (see [`ClientStats::throttled`]).
    throttled: AtomicU64,
    /// Per app of the pool (index = `Permit::app`): write requests sent and 429s.
    per_app: Vec<AppCounters>,
}

/// One app's counters.
#[derive(Default)]
struct AppCounters {
    writes: AtomicU64,
    throttled: AtomicU64,
}

/// What one app of a tenant's credential pool has counted since the client was built:
/// exported by `resetctl serve`'s `/metrics`, so a SOC sees which app Graph pushes back on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppStats {
    /// The app's client id (an identifier, not a credential).
    pub client_id: String,
    /// Write requests sent with this app's token (a `$batch` counts its items).
    pub writes: u64,
    /// Responses to this app's requests answered 429, `$batch` items included.
    pub throttled: u64,
}

/// What a client has counted since it was built: shown on a run's progress line and in its
/// summary, so an operator sees when Graph pushes back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientStats {
    /// Responses answered 429 (Too Many Requests): each throttled request or `$batch` item
    /// counts once per 429, re-sends included.
    pub throttled: u64,
}

/// A Graph client for one tenant. Cheap to clone; clones share tokens, budgets and the
/// connection pool.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.inner.base)
            .field("apps", &self.inner.apps)
            .finish_non_exhaustive()
    }
}

/// Builds the HTTP client used for Graph and token calls.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, GraphError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("resetctl/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            GraphError::new(
                GraphErrorKind::Config,
                format!("cannot build HTTP client: {e}"),
            )
        })
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl GraphClient {
    /// A client from parts. `apps` must not be empty; the governor should have been built
    /// for `apps.len()` apps.
    pub fn new(
        graph_url: &str,
        http: reqwest::Client,
        apps: Vec<TokenSource>,
        governor: TenantGovernor,
        options: ClientOptions,
    ) -> Result<Self, GraphError> {
        if apps.is_empty() {
            return Err(GraphError::new(
                GraphErrorKind::Config,
                "a tenant needs at least one app credential",
            ));
        }
        let app_count = apps.len();
        let url = reqwest::Url::parse(graph_url)
            .map_err(|e| GraphError::new(GraphErrorKind::Config, format!("bad graph_url: {e}")))?;
        Ok(GraphClient {
            inner: Arc::new(Inner {
                http,
                base: graph_url.trim_end_matches('/').to_string(),
                origin: url.origin().ascii_serialization(),
                apps,
                governor,
                options,
                throttled: AtomicU64::new(0),
                per_app: (0..app_count).map(|_| AppCounters::default()).collect(),
            }),
        })
    }

    /// A client for a configured tenant: loads every app's credential (from env or files),
    /// builds the governor from the tenant's quotas and time scale.
    pub fn from_settings(settings: &TenantSettings, env: &Env) -> Result<Self, ConfigError> {
        let cfg = |e: GraphError| ConfigError::new(ConfigErrorKind::Credential, e.message);
        let timeout = Duration::from_secs_f64(settings.request_timeout_secs);
        let http = http_client(timeout).map_err(cfg)?;
        let mut apps = Vec::with_capacity(settings.apps.len());
        for spec in &settings.apps {
            let credential = AppCredential::load(spec, env)?;
            apps.push(TokenSource::new(
                http.clone(),
                settings.token_url.clone(),
                settings.scope.clone(),
                credential,
            ));
        }
        if apps.is_empty() {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("tenants.{}: no app credential configured", settings.name),
            ));
        }
        let governor = TenantGovernor::new(Quotas::for_tenant(settings), apps.len());
        let options = ClientOptions::scaled(settings.time_scale, timeout);
        Self::new(&settings.graph_url, http, apps, governor, options).map_err(cfg)
    }

    /// The tenant's throttle governor.
    pub fn governor(&self) -> &TenantGovernor {
        &self.inner.governor
    }

    /// The token sources of the pool, in app order.
    pub fn token_sources(&self) -> &[TokenSource] {
        &self.inner.apps
    }

    /// The retry and timeout policy.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Counters since the client was built (shared by its clones).
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            throttled: self.inner.throttled.load(Ordering::Relaxed),
        }
    }

    /// Per app of the pool, in app order: write requests and 429s since the client was
    /// built.
    pub fn app_stats(&self) -> Vec<AppStats> {
        self.inner
            .apps
            .iter()
            .zip(&self.inner.per_app)
            .map(|(source, counters)| AppStats {
                client_id: source.client_id().to_owned(),
                writes: counters.writes.load(Ordering::Relaxed),
                throttled: counters.throttled.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Counts `n` responses to `app`'s requests answered 429 (`$batch` items are counted by
    /// the batch code).
    pub(super) fn count_throttled(&self, app: usize, n: u64) {
        self.inner.throttled.fetch_add(n, Ordering::Relaxed);
        if let Some(counters) = self.inner.per_app.get(app) {
            counters.throttled.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The Graph base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Whether `url` (a nextLink) points at this client's Graph origin.
    pub(crate) fn same_origin(&self, url: &str) -> bool {
        reqwest::Url::parse(url)
            .is_ok_and(|u| u.origin().ascii_serialization() == self.inner.origin)
    }

    /// Sends one request — the single choke point of every Graph call.
    ///
    /// - Takes a throttle permit (bucket and cost from the request), then the token of the
    ///   app the permit chose.
    /// - 429: reports it to the governor (which closes the bucket's gate for Retry-After, or
    ///   an own back-off when there is none) and re-sends once the gate opens; the request
    ///   was not processed, so this is safe for writes.
    /// - 401 once: drops the cached token and re-sends.
    /// - 503 (not processed), and 500/502/504 or connection failures for idempotent
    ///   requests: bounded exponential back-off with full jitter, honouring Retry-After.
    /// - A non-idempotent write whose outcome is unknown (timeout or connection lost after
    ///   sending, 500/502/504) is NOT re-sent: `GraphErrorKind::OutcomeUnknown`.
    /// - Other statuses: a typed [`GraphError`].
    pub async fn send(&self, req: Request) -> Result<Response, GraphError> {
        self.execute(&req).await
    }

    /// [`GraphClient::send`] for a borrowed request (paging and batching re-use theirs).
    pub async fn execute(&self, req: &Request) -> Result<Response, GraphError> {
        let inner = &self.inner;
        let charge = req.effective_charge();
        let describe = req.describe();
        let url = match &req.absolute {
            Some(u) => {
                if !self.same_origin(u) {
                    return Err(GraphError::new(
                        GraphErrorKind::Refused,
                        "refusing to follow a link to another host",
                    )
                    .with_request(describe));
                }
                u.clone()
            }
            None => format!("{}{}", inner.base, req.relative_url()),
        };
        let mut transient_attempts = 0u32;
        let mut throttled = 0u32;
        let mut reauthenticated = false;
        loop {
            let permit = inner.governor.acquire(charge).await;
            let app = permit.app();
            let tokens = &inner.apps[app.min(inner.apps.len() - 1)];
            let token = tokens
                .token()
                .await
                .map_err(|e| e.with_request(describe.clone()))?;
            let span = tracing::info_span!(
                "graph.request",
                method = %req.method,
                path = %req.template,
                bucket = charge.bucket.as_str(),
                app,
                attempt = transient_attempts + throttled + 1,
                status = tracing::field::Empty,
                ru = tracing::field::Empty,
                request_id = tracing::field::Empty,
            );
            let mut builder = inner
                .http
                .request(req.method.clone(), &url)
                .bearer_auth(token.expose_secret());
            for (name, value) in &req.headers {
                builder = builder.header(*name, value);
            }
            if let Some(body) = req.body_bytes() {
                builder = builder
                    .header(CONTENT_TYPE, req.content_type())
                    .body(body.to_vec());
            }
            if charge.bucket == Bucket::DirectoryWrite
                && let Some(counters) = inner.per_app.get(app)
            {
                counters
                    .writes
                    .fetch_add(u64::from(charge.cost.max(1)), Ordering::Relaxed);
            }
            let sent = builder.send().instrument(span.clone()).await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    drop(permit);
                    let never_sent = e.is_connect() || e.is_builder();
                    let e = transport::describe("Microsoft Graph at", &url, &e);
                    if never_sent || req.idempotent {
                        transient_attempts += 1;
                        if transient_attempts < inner.options.max_attempts {
                            let delay = full_jitter(
                                transient_attempts,
                                inner.options.backoff_base,
                                inner.options.backoff_cap,
                            );
                            span.in_scope(|| {
                                tracing::warn!(message = "Retrying after a transport error.", delay_ms = delay.as_millis() as u64, error = %e)
                            });
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                        let kind = if never_sent {
                            GraphErrorKind::Transport
                        } else {
                            GraphErrorKind::OutcomeUnknown
                        };
                        let kind = if req.idempotent {
                            GraphErrorKind::Transport
                        } else {
                            kind
                        };
                        return Err(GraphError::new(kind, format!("no answer from {e}"))
                            .with_request(describe));
                    }
                    span.in_scope(|| tracing::warn!(message = "Write outcome unknown; not re-sending.", error = %e));
                    return Err(GraphError::new(
                        GraphErrorKind::OutcomeUnknown,
                        format!(
                            "no response to a write (it may or may not have been applied) \
                             from {e}"
                        ),
                    )
                    .with_request(describe));
                }
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let request_id = header_str(&headers, "request-id")
                .or_else(|| header_str(&headers, "client-request-id"));
            let ru = header_str(&headers, "x-ms-resource-unit")
                .and_then(|v| v.trim().parse::<u32>().ok());
            let pct = header_str(&headers, "x-ms-throttle-limit-percentage")
                .and_then(|v| v.trim().parse::<f64>().ok());
            let retry_after = header_str(&headers, "retry-after")
                .and_then(|v| parse_retry_after(&v, jiff::Timestamp::now()));
            span.record("status", status);
            if let Some(ru) = ru {
                span.record("ru", ru);
            }
            if let Some(id) = &request_id {
                span.record("request_id", id.as_str());
            }
            let body = match response.bytes().instrument(span.clone()).await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    drop(permit);
                    let e = transport::describe("Microsoft Graph at", &url, &e);
                    if req.idempotent && transient_attempts + 1 < inner.options.max_attempts {
                        transient_attempts += 1;
                        continue;
                    }
                    let kind = if req.idempotent {
                        GraphErrorKind::Transport
                    } else {
                        GraphErrorKind::OutcomeUnknown
                    };
                    let mut err = GraphError::new(kind, format!("response body lost: {e}"))
                        .with_request(describe);
                    err.status = Some(status);
                    return Err(err);
                }
            };
            span.in_scope(|| {
                tracing::debug!(
                    message = "Graph response.",
                    status,
                    ru,
                    limit_percentage = pct
                )
            });
            match status {
                s if (200..=299).contains(&s) || req.accept.contains(&s) => {
                    permit.succeeded(pct);
                    return Ok(Response {
                        status,
                        request_id,
                        resource_units: ru,
                        headers,
                        body,
                        app,
                    });
                }
                429 => {
                    throttled += 1;
                    self.count_throttled(app, 1);
                    let wait = permit.throttled(retry_after);
                    if throttled > inner.options.max_throttle_retries {
                        let mut err = GraphError::from_response(status, &body, request_id)
                            .with_request(describe);
                        err.retry_after = retry_after;
                        return Err(err);
                    }
                    span.in_scope(|| {
                        tracing::warn!(
                            message = "Throttled; waiting before re-sending.",
                            wait_ms = wait.as_millis() as u64,
                            retry_after_given = retry_after.is_some()
                        )
                    });
                    continue;
                }
                401 if !reauthenticated => {
                    drop(permit);
                    reauthenticated = true;
                    tokens.invalidate();
                    continue;
                }
                503 | 500 | 502 | 504 if status == 503 || req.idempotent => {
                    drop(permit);
                    transient_attempts += 1;
                    if transient_attempts >= inner.options.max_attempts {
                        let mut err = GraphError::from_response(status, &body, request_id)
                            .with_request(describe);
                        err.retry_after = retry_after;
                        return Err(err);
                    }
                    let jitter = full_jitter(
                        transient_attempts,
                        inner.options.backoff_base,
                        inner.options.backoff_cap,
                    );
                    let delay = retry_after.map_or(jitter, |r| r.max(jitter));
                    span.in_scope(|| {
                        tracing::warn!(
                            message = "Transient server error; retrying.",
                            delay_ms = delay.as_millis() as u64
                        )
                    });
                    tokio::time::sleep(delay).await;
                    continue;
                }
                500 | 502 | 504 => {
                    drop(permit);
                    let mut err =
                        GraphError::from_response(status, &body, request_id).with_request(describe);
                    err.kind = GraphErrorKind::OutcomeUnknown;
                    err.message = format!(
                        "gateway/server error on a write, outcome unknown: {}",
                        err.message
                    );
                    return Err(err);
                }
                _ => {
                    drop(permit);
                    let mut err =
                        GraphError::from_response(status, &body, request_id).with_request(describe);
                    err.retry_after = retry_after;
                    return Err(err);
                }
            }
        }
    }
}
