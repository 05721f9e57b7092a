//! Integration tests of the Graph client, throttle governor and `GraphDirectory` against
//! scripted Graph responses served by small axum stubs on 127.0.0.1:0. Time runs at a
//! `time_scale` so throttling windows and back-off take milliseconds.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use resetctl::config::TenantSize;
use resetctl::directory::{
    Directory, DirectoryErrorKind, GraphDirectory, PasswordChange, RiskLevel, TapRequest,
    UserQuery, UserWrite, WriteOp,
};
use resetctl::graph::{
    AppCredential, ClientAuth, ClientOptions, GraphClient, GraphErrorKind, Request, TokenSource,
    http_client,
};
use resetctl::throttle::{Quotas, TenantGovernor};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const CLIENT_SECRET: &str = "CLIENT-SECRET-5f2c9a";
const ACCESS_TOKEN: &str = "ACCESS-TOKEN-b71e04";

/// One request the stub saw.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A scripted reply.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    fn empty(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    fn throttled(retry_after: Option<&str>) -> Self {
        let mut r = Reply::json(
            429,
            json!({"error":{"code":"TooManyRequests","message":"Please retry again later.","innerError":{"request-id":"r-429"}}}),
        );
        if let Some(ra) = retry_after {
            r.headers.push(("retry-after", ra.to_string()));
        }
        r
    }
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
    fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Handler = dyn Fn(&Seen, &[Seen]) -> Reply + Send + Sync;

/// A running stub: Graph under `/v1.0`, the token endpoint under `/tenant/oauth2/v2.0/token`.
struct Stub {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    token_requests: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    fn graph_requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn token_url(&self) -> String {
        format!("{}/tenant/oauth2/v2.0/token", self.base)
    }
}

async fn stub_with_token(
    token_delay: Duration,
    expires_in: u64,
    handler: impl Fn(&Seen, &[Seen]) -> Reply + Send + Sync + 'static,
) -> Stub {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let token_requests: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let handler: Arc<Handler> = Arc::new(handler);
    let (s, t) = (seen.clone(), token_requests.clone());
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (seen, tokens, handler) = (s.clone(), t.clone(), handler.clone());
        async move {
            let req = Seen {
                method: method.to_string(),
                path: uri.path().to_string(),
                query: uri.query().unwrap_or("").to_string(),
                headers,
                body,
                at: Instant::now(),
            };
            if req.path.ends_with("/oauth2/v2.0/token") {
                let n = {
                    let mut t = tokens.lock().unwrap();
                    t.push(req.clone());
                    t.len()
                };
                tokio::time::sleep(token_delay).await;
                let token = if n == 1 { ACCESS_TOKEN.to_string() } else { format!("{ACCESS_TOKEN}-{n}") };
                return (StatusCode::OK, axum::Json(json!({"token_type":"Bearer","expires_in":expires_in,"access_token":token})))
                    .into_response();
            }
            let reply = {
                let mut all = seen.lock().unwrap();
                let r = handler(&req, &all);
                all.push(req);
                r
            };
            tokio::time::sleep(reply.delay).await;
            let mut resp = Response::builder().status(reply.status);
            for (k, v) in &reply.headers {
                resp = resp.header(*k, v);
            }
            resp.body(axum::body::Body::from(reply.body)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    Stub {
        base: format!("http://{addr}"),
        seen,
        token_requests,
    }
}

async fn stub(handler: impl Fn(&Seen, &[Seen]) -> Reply + Send + Sync + 'static) -> Stub {
    stub_with_token(Duration::ZERO, 3599, handler).await
}

/// A client for the stub with `apps` apps, quotas at `scale`, and a request timeout.
fn client(stub: &Stub, apps: usize, scale: f64, timeout: Duration) -> GraphClient {
    client_with_quotas(
        stub,
        apps,
        Quotas::graph_defaults(TenantSize::Small, scale),
        scale,
        timeout,
    )
}

/// Same with explicit quotas.
fn client_with_quotas(
    stub: &Stub,
    apps: usize,
    quotas: Quotas,
    scale: f64,
    timeout: Duration,
) -> GraphClient {
    let http = http_client(timeout).unwrap();
    let sources = (0..apps)
        .map(|i| {
            TokenSource::new(
                http.clone(),
                stub.token_url(),
                "https://graph.microsoft.com/.default".into(),
                AppCredential {
                    client_id: format!("app-{i}"),
                    auth: ClientAuth::Secret(SecretString::from(CLIENT_SECRET)),
                },
            )
        })
        .collect();
    let governor = TenantGovernor::new(quotas, apps);
    let options = ClientOptions::scaled(scale, timeout);
    GraphClient::new(
        &format!("{}/v1.0", stub.base),
        http,
        sources,
        governor,
        options,
    )
    .unwrap()
}

fn default_client(stub: &Stub) -> GraphClient {
    client(stub, 1, 10.0, Duration::from_secs(5))
}

fn user_json(i: usize) -> Value {
    json!({"id": format!("id-{i}"), "userPrincipalName": format!("u{i}@contoso.com"), "displayName": format!("User {i}"),
           "accountEnabled": true, "onPremisesSyncEnabled": null, "department": "Finance",
           "lastPasswordChangeDateTime": "2024-02-20T10:10:57Z"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refresh_under_20_concurrent_callers_makes_one_request() {
    let stub = stub_with_token(Duration::from_millis(150), 3599, |req, _| {
        assert_eq!(
            req.headers["authorization"],
            format!("Bearer {ACCESS_TOKEN}")
        );
        Reply::json(200, user_json(1))
    })
    .await;
    let c = default_client(&stub);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                c.send(Request::get("/users/{}", &[&format!("id-{i}")]))
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status, 200);
    }
    assert_eq!(stub.token_requests.lock().unwrap().len(), 1);
    assert_eq!(c.token_sources()[0].token_requests(), 1);
    // The form is the client-credentials grant
    // (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
    let form = String::from_utf8(stub.token_requests.lock().unwrap()[0].body.to_vec()).unwrap();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains("client_id=app-0"), "{form}");
    assert!(
        form.contains("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"),
        "{form}"
    );
    assert_eq!(stub.graph_requests().len(), 20);
}

#[tokio::test]
async fn token_is_refreshed_before_expiry() {
    // 1 s lifetime: refreshed after half of it.
    let stub = stub_with_token(Duration::ZERO, 1, |_, _| Reply::json(200, user_json(1))).await;
    let c = default_client(&stub);
    c.send(Request::get("/users/{}", &["a"])).await.unwrap();
    c.send(Request::get("/users/{}", &["a"])).await.unwrap();
    assert_eq!(stub.token_requests.lock().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.send(Request::get("/users/{}", &["a"])).await.unwrap();
    assert_eq!(stub.token_requests.lock().unwrap().len(), 2);
    let seen = stub.graph_requests();
    assert_eq!(
        seen[2].headers["authorization"],
        format!("Bearer {ACCESS_TOKEN}-2")
    );
}

#[tokio::test]
async fn paging_through_10000_users() {
    let stub = stub(|req, _| {
        let start: usize = req
            .query
            .split('&')
            .find_map(|kv| kv.strip_prefix("$skiptoken="))
            .map_or(0, |v| v.parse().unwrap());
        let end = (start + 999).min(10_000);
        let value: Vec<Value> = (start..end).map(user_json).collect();
        let mut body = json!({"@odata.context": "x", "value": value});
        if end < 10_000 {
            // An absolute nextLink on the same host, as Graph sends it.
            let host = req.headers["host"].to_str().unwrap();
            body["@odata.nextLink"] = json!(format!(
                "http://{host}/v1.0/users?$top=999&$skiptoken={end}"
            ));
        }
        Reply::json(200, body)
    })
    .await;
    let dir = GraphDirectory::new(default_client(&stub));
    let users: Vec<_> = dir
        .list_users(UserQuery::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(users.len(), 10_000);
    let ids: std::collections::BTreeSet<_> = users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids.len(), 10_000);
    assert_eq!(users[42].upn, "u42@contoso.com");
    assert_eq!(users[42].department.as_deref(), Some("Finance"));
    assert!(users[42].last_password_change.is_some());
    let seen = stub.graph_requests();
    assert_eq!(seen.len(), 11);
    assert!(seen[0].query.contains("$top=999"), "{}", seen[0].query);
    assert!(
        seen[0].query.contains("$select=id,userPrincipalName"),
        "{}",
        seen[0].query
    );
    assert!(
        seen[0].query.contains("accountEnabled") && seen[0].query.contains("onPremisesSyncEnabled")
    );
}

#[tokio::test]
async fn advanced_filter_sends_consistency_level_and_count() {
    let stub = stub(|_, _| Reply::json(200, json!({"value": [user_json(1)]}))).await;
    let dir = GraphDirectory::new(default_client(&stub));
    let q = UserQuery {
        filter: Some("endsWith(mail,'@contoso.com')".into()),
        select: None,
    };
    let users: Vec<_> = dir.list_users(q).try_collect().await.unwrap();
    assert_eq!(users.len(), 1);
    let seen = &stub.graph_requests()[0];
    assert_eq!(seen.headers["consistencylevel"], "eventual");
    assert!(seen.query.contains("$count=true"));
    // `'` travels percent-encoded (%27), as URL libraries do; Graph decodes it.
    assert!(
        seen.query
            .contains("$filter=endsWith(mail,%27@contoso.com%27)"),
        "{}",
        seen.query
    );
}

#[tokio::test]
async fn next_link_to_another_host_is_refused() {
    let stub = stub(|_, _| {
        Reply::json(200, json!({"value": [user_json(1)], "@odata.nextLink": "https://evil.example.com/v1.0/users?$skiptoken=1"}))
    })
    .await;
    let dir = GraphDirectory::new(default_client(&stub));
    let items: Vec<_> = dir.list_users(UserQuery::default()).collect().await;
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(
        items[1].as_ref().unwrap_err().kind,
        DirectoryErrorKind::Rejected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_429s_is_waited_out_and_no_retry_comes_early() {
    // Time scale 10: a "5 s" storm lasts 500 ms; every request in it gets 429 with a
    // Retry-After of 0.12 s (fractional).
    let storm_start: Arc<OnceLock<Instant>> = Arc::default();
    let s = storm_start.clone();
    let stub = stub(move |_, _| {
        let start = *s.get_or_init(Instant::now);
        if start.elapsed() < Duration::from_millis(500) {
            Reply::throttled(Some("0.12"))
        } else {
            Reply::empty(204)
        }
    })
    .await;
    let c = default_client(&stub);
    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                let req = Request::patch("/users/{}", &[&format!("user-{i}")])
                    .json(&json!({"department": "x"}))
                    .unwrap();
                c.send(req).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Per logical request: each retry arrives at least Retry-After after the 429 before it.
    let seen = stub.graph_requests();
    let storm_end = *storm_start.get().unwrap() + Duration::from_millis(500);
    let mut by_path: std::collections::BTreeMap<String, Vec<Instant>> = Default::default();
    for r in &seen {
        by_path.entry(r.path.clone()).or_default().push(r.at);
    }
    assert_eq!(by_path.len(), 20);
    let mut throttled = 0;
    for (path, times) in by_path {
        for pair in times.windows(2) {
            throttled += 1;
            let gap = pair[1].duration_since(pair[0]);
            assert!(
                gap >= Duration::from_millis(115),
                "{path}: retry after {gap:?}"
            );
        }
        assert!(
            *times.last().unwrap() >= storm_end,
            "{path} finished inside the storm"
        );
    }
    // At least the first wave (the initial in-flight limit, 8) met the storm; the others
    // waited behind the shared gate.
    assert!(throttled >= 8, "{throttled} throttled retries");
    assert_eq!(
        c.stats().throttled,
        throttled,
        "the client counts every 429"
    );
    eprintln!("storm: {} requests, {throttled} retries", seen.len());
    // The shared gate keeps the bucket from hammering: far fewer requests than a blind
    // retry loop would send.
    assert!(seen.len() < 20 * 8, "{} requests", seen.len());
}

#[tokio::test]
async fn fractional_retry_after_is_honoured_exactly() {
    let stub = stub(|_, all| {
        if all.is_empty() {
            Reply::throttled(Some("0.35"))
        } else {
            Reply::json(200, user_json(1))
        }
    })
    .await;
    let c = default_client(&stub);
    let r = c.send(Request::get("/users/{}", &["x"])).await.unwrap();
    assert_eq!(r.status, 200);
    let seen = stub.graph_requests();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(
        gap >= Duration::from_millis(345) && gap < Duration::from_millis(900),
        "{gap:?}"
    );
}

#[tokio::test]
async fn retry_after_as_http_date() {
    let stub = stub(|_, all| {
        if all.is_empty() {
            let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
            let date = jiff::fmt::rfc2822::DateTimePrinter::new()
                .timestamp_to_rfc9110_string(&when)
                .unwrap();
            Reply::throttled(Some(&date))
        } else {
            Reply::json(200, user_json(1))
        }
    })
    .await;
    let c = default_client(&stub);
    c.send(Request::get("/users/{}", &["x"])).await.unwrap();
    let seen = stub.graph_requests();
    // HTTP-dates have one-second resolution: at least ~1 s, at most 2 s.
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(
        gap >= Duration::from_millis(990) && gap <= Duration::from_millis(2_200),
        "{gap:?}"
    );
}

/// A `$batch` stub: the first envelope throttles the PATCH of user 2 (its dependent revoke
/// gets 424); later envelopes succeed. `envelope_status` is the first envelope's status.
fn batch_handler(envelope_status: u16) -> impl Fn(&Seen, &[Seen]) -> Reply + Send + Sync + 'static {
    move |req, all| {
        assert_eq!(req.path, "/v1.0/$batch");
        let first = all.is_empty();
        let body = req.json();
        let requests = body["requests"].as_array().unwrap().clone();
        assert!(requests.len() <= 20);
        let mut failed = std::collections::BTreeSet::new();
        let mut responses = Vec::new();
        for item in &requests {
            let id = item["id"].as_str().unwrap().to_string();
            let url = item["url"].as_str().unwrap();
            let deps: Vec<String> = item["dependsOn"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            if deps.iter().any(|d| failed.contains(d)) {
                failed.insert(id.clone());
                responses.push(json!({"id": id, "status": 424, "body": {"error": {"code": "FailedDependency", "message": "dependency failed"}}}));
            } else if first && item["method"] == "PATCH" && url == "/users/user-2" {
                failed.insert(id.clone());
                responses.push(
                    json!({"id": id, "status": 429, "headers": {"Retry-After": "0.2"},
                    "body": {"error": {"code": "TooManyRequests", "message": "throttled"}}}),
                );
            } else if item["method"] == "PATCH" {
                assert_eq!(item["headers"]["Content-Type"], "application/json");
                responses.push(json!({"id": id, "status": 204}));
            } else {
                responses.push(json!({"id": id, "status": 200, "body": {"value": true}}));
            }
        }
        responses.reverse(); // Graph may answer out of order.
        Reply::json(
            if first { envelope_status } else { 200 },
            json!({"responses": responses}),
        )
    }
}

async fn run_batch_case(envelope_status: u16) {
    let stub = stub(batch_handler(envelope_status)).await;
    let dir = GraphDirectory::new(default_client(&stub));
    let mut writes = Vec::new();
    for u in 0..5 {
        let change = PasswordChange {
            force_change_next_sign_in: true,
            force_change_with_mfa: true,
            password: Some(SecretString::from(format!("Pw-{u}-xyz!"))),
        };
        writes.push(UserWrite {
            user_id: format!("user-{u}"),
            op: WriteOp::ForcePasswordChange(change),
            after: None,
        });
        writes.push(UserWrite {
            user_id: format!("user-{u}"),
            op: WriteOp::RevokeSessions,
            after: Some(writes.len() - 1),
        });
    }
    let results = dir.batch_writes(writes).await.unwrap();
    assert_eq!(results.len(), 10);
    for r in &results {
        r.as_ref().unwrap();
    }
    let seen = stub.graph_requests();
    assert_eq!(seen.len(), 2, "one envelope, then one re-send");
    let first = seen[0].json();
    assert_eq!(first["requests"].as_array().unwrap().len(), 10);
    let patch = &first["requests"][0];
    assert_eq!(
        patch["body"]["passwordProfile"]["forceChangePasswordNextSignIn"],
        true
    );
    assert_eq!(
        patch["body"]["passwordProfile"]["forceChangePasswordNextSignInWithMfa"],
        true
    );
    assert_eq!(first["requests"][1]["dependsOn"], json!(["0"]));
    // Only the throttled PATCH and its dependent revoke were re-sent, after Retry-After.
    let second = seen[1].json();
    let urls: Vec<&str> = second["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        vec!["/users/user-2", "/users/user-2/revokeSignInSessions"]
    );
    assert!(second["requests"][1]["dependsOn"].is_array());
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(195));
    assert_eq!(dir.stats().throttled, 1, "one throttled item counted once");
}

#[tokio::test]
async fn per_item_429_in_batch_is_resent_alone() {
    run_batch_case(200).await;
}

#[tokio::test]
async fn batch_envelope_424_with_item_results_is_tolerated() {
    run_batch_case(424).await;
}

#[tokio::test]
async fn identity_protection_429_without_retry_after_backs_off() {
    let stub = stub(|_, all| {
        if all.len() < 3 {
            Reply::throttled(None)
        } else {
            Reply::json(200, json!({"value": [{"id": "u1", "userPrincipalName": "a@contoso.com", "riskLevel": "high", "riskState": "atRisk"}]}))
        }
    })
    .await;
    // Scale 10: own back-off base 100 ms, equal jitter: waits >= 50, 100, 200 ms.
    let dir = GraphDirectory::new(default_client(&stub));
    let risky: Vec<_> = dir
        .list_risky_users(vec![RiskLevel::High])
        .try_collect()
        .await
        .unwrap();
    assert_eq!(risky.len(), 1);
    assert_eq!(risky[0].risk_level, RiskLevel::High);
    let seen = stub.graph_requests();
    assert_eq!(seen.len(), 4);
    assert!(
        seen[0]
            .query
            .contains("$filter=riskLevel%20eq%20%27high%27"),
        "{}",
        seen[0].query
    );
    let minimum = [50u64, 100, 200];
    for (k, pair) in seen.windows(2).enumerate() {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(minimum[k] - 5),
            "retry {k} after {gap:?}"
        );
    }
}

#[tokio::test]
async fn transient_503_and_504_are_retried() {
    let stub = stub(|req, all| {
        let mine = all.iter().filter(|s| s.path == req.path).count();
        match (req.method.as_str(), mine) {
            ("GET", 0) => Reply::json(
                504,
                json!({"error": {"code": "GatewayTimeout", "message": "x"}}),
            ),
            ("GET", 1) => Reply::json(
                503,
                json!({"error": {"code": "ServiceUnavailable", "message": "x"}}),
            )
            .header("retry-after", "0.05"),
            ("GET", _) => Reply::json(200, user_json(7)),
            ("PATCH", 0) if req.path.ends_with("/u-503") => Reply::empty(503),
            ("PATCH", _) if req.path.ends_with("/u-504") => Reply::empty(504),
            _ => Reply::empty(204),
        }
    })
    .await;
    let dir = GraphDirectory::new(default_client(&stub));
    let u = dir.get_user("u7@contoso.com").await.unwrap().unwrap();
    assert_eq!(u.id, "id-7");
    let change = PasswordChange {
        force_change_next_sign_in: true,
        force_change_with_mfa: false,
        password: None,
    };
    dir.force_password_change("u-503", &change).await.unwrap();
    // A gateway error on a write: outcome unknown, not re-sent.
    let e = dir
        .force_password_change("u-504", &change)
        .await
        .unwrap_err();
    assert_eq!(e.kind, DirectoryErrorKind::OutcomeUnknown);
    let seen = stub.graph_requests();
    let count = |p: &str| seen.iter().filter(|s| s.path == p).count();
    assert_eq!(count("/v1.0/users/u7@contoso.com"), 3);
    assert_eq!(count("/v1.0/users/u-503"), 2);
    assert_eq!(count("/v1.0/users/u-504"), 1);
}

#[tokio::test]
async fn timed_out_patch_is_not_resent() {
    let stub = stub(|req, _| {
        if req.method == "PATCH" {
            Reply::empty(204).delayed(Duration::from_secs(2))
        } else {
            Reply::json(200, user_json(1))
        }
    })
    .await;
    let c = client(&stub, 1, 10.0, Duration::from_millis(300));
    let dir = GraphDirectory::new(c);
    let change = PasswordChange {
        force_change_next_sign_in: true,
        force_change_with_mfa: true,
        password: Some(SecretString::from("Tmp-Pass-123!")),
    };
    let e = dir
        .force_password_change("user-1", &change)
        .await
        .unwrap_err();
    assert_eq!(e.kind, DirectoryErrorKind::OutcomeUnknown, "{e}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        stub.graph_requests()
            .iter()
            .filter(|s| s.method == "PATCH")
            .count(),
        1
    );
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_after_bounded_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let stub = stub(|_, _| Reply::empty(204)).await;
    let http = http_client(Duration::from_secs(2)).unwrap();
    let source = TokenSource::new(
        http.clone(),
        stub.token_url(),
        "s".into(),
        AppCredential {
            client_id: "a".into(),
            auth: ClientAuth::Secret(SecretString::from(CLIENT_SECRET)),
        },
    );
    let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 100.0), 1);
    let c = GraphClient::new(
        &format!("http://{addr}/v1.0"),
        http,
        vec![source],
        gov,
        ClientOptions::scaled(100.0, Duration::from_secs(2)),
    )
    .unwrap();
    // Never sent: even a write may be retried, and then fails as a transport error.
    let req = Request::patch("/users/{}", &["u"])
        .json(&json!({"a": 1}))
        .unwrap();
    let e = c.send(req).await.unwrap_err();
    assert_eq!(e.kind, GraphErrorKind::Transport, "{e}");
    // The message names Graph's host and the cause, never the token endpoint (which
    // answered) nor authentication.
    assert!(
        e.message.starts_with(&format!(
            "no answer from Microsoft Graph at {addr}: connection refused"
        )),
        "{e}"
    );
    assert!(!e.to_string().to_lowercase().contains("auth"), "{e}");
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_a_transport_error_naming_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let stub = stub(|_, _| Reply::empty(204)).await;
    let http = http_client(Duration::from_secs(2)).unwrap();
    let source = TokenSource::new(
        http.clone(),
        format!("http://{addr}/tenant/oauth2/v2.0/token"),
        "s".into(),
        AppCredential {
            client_id: "a".into(),
            auth: ClientAuth::Secret(SecretString::from(CLIENT_SECRET)),
        },
    );
    let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 100.0), 1);
    let c = GraphClient::new(
        &format!("{}/v1.0", stub.base),
        http,
        vec![source],
        gov,
        ClientOptions::scaled(100.0, Duration::from_secs(2)),
    )
    .unwrap();
    let e = c.send(Request::get("/users/{}", &["u"])).await.unwrap_err();
    assert_eq!(e.kind, GraphErrorKind::Transport, "{e}");
    assert!(
        e.message.starts_with(&format!(
            "no token: no answer from the token endpoint {addr}: connection refused"
        )),
        "{e}"
    );
    assert!(!e.to_string().contains(CLIENT_SECRET));
    assert!(stub.graph_requests().is_empty(), "Graph was never asked");
}

#[tokio::test]
async fn graph_errors_are_typed() {
    let stub = stub(|req, _| match req.path.as_str() {
        "/v1.0/users/missing" | "/v1.0/users/nomgr/manager" => Reply::json(
            404,
            json!({"error": {"code": "Request_ResourceNotFound", "message": "Resource 'manager' does not exist", "innerError": {"request-id": "rid-404"}}}),
        ),
        "/v1.0/users/synced" => Reply::json(
            400,
            json!({"error": {"code": "Request_BadRequest", "message": "Unable to update the specified properties for on-premises mastered Directory Sync objects"}}),
        )
        .header("request-id", "rid-400"),
        _ => Reply::json(403, json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}})),
    })
    .await;
    let dir = GraphDirectory::new(default_client(&stub));
    assert!(dir.get_user("missing").await.unwrap().is_none());
    assert!(dir.get_manager("nomgr").await.unwrap().is_none());
    let change = PasswordChange {
        force_change_next_sign_in: true,
        force_change_with_mfa: false,
        password: None,
    };
    let e = dir
        .force_password_change("synced", &change)
        .await
        .unwrap_err();
    assert_eq!(e.kind, DirectoryErrorKind::Rejected);
    assert!(e.has_code("Request_BadRequest"));
    assert_eq!(e.detail.request_id.as_deref(), Some("rid-400"));
    assert_eq!(e.detail.operation.as_deref(), Some("PATCH /users/{}"));
    let e = dir.revoke_sessions("admin").await.unwrap_err();
    assert_eq!(e.kind, DirectoryErrorKind::Denied);
    assert_eq!(e.detail.status, Some(403));
}

#[tokio::test]
async fn directory_operations_use_the_documented_shapes() {
    let stub = stub(|req, _| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v1.0/users/u1/manager") => Reply::json(
            200,
            json!({"@odata.type": "#microsoft.graph.user", "id": "m1", "displayName": "Boss", "userPrincipalName": "boss@contoso.com", "mobilePhone": "+1 555 0100"}),
        ),
        ("GET", "/v1.0/groups/g1/transitiveMembers") => Reply::json(
            200,
            json!({"value": [user_json(1), {"@odata.type": "#microsoft.graph.device", "id": "d1"}, {"@odata.type": "#microsoft.graph.user", "id": "id-2", "userPrincipalName": "u2@contoso.com"}]}),
        ),
        ("GET", "/v1.0/roleManagement/directory/roleAssignments") => Reply::json(
            200,
            json!({"value": [{"id": "ra1", "principalId": "id-1", "roleDefinitionId": "62e90394-69f5-4237-9190-012177145e10", "directoryScopeId": "/",
                   "principal": {"@odata.type": "#microsoft.graph.group", "id": "id-1", "displayName": "Admins"}}]}),
        ),
        ("GET", "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances") => Reply::json(
            200,
            json!({"value": [{"id": "e1", "principalId": "id-3", "roleDefinitionId": "e8611ab8-c189-46e8-94e1-60213ab1f814", "directoryScopeId": "/", "memberType": "Direct", "startDateTime": "2024-01-01T00:00:00Z", "endDateTime": null}]}),
        ),
        ("GET", "/v1.0/users/u1/authentication/methods") => Reply::json(
            200,
            json!({"value": [{"@odata.type": "#microsoft.graph.phoneAuthenticationMethod", "id": "3179e48a-750b-4051-897c-87b9720928f7"},
                              {"@odata.type": "#microsoft.graph.passwordAuthenticationMethod", "id": "28c10230-6103-485e-b985-444c60001490"},
                              {"@odata.type": "#microsoft.graph.fido2AuthenticationMethod", "id": "-2_GRUg2", "displayName": "Red key"}]}),
        ),
        ("POST", "/v1.0/users/u1/authentication/temporaryAccessPassMethods") => Reply::json(
            201,
            json!({"@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod", "id": "tap1", "temporaryAccessPass": "+drkzqAD",
                   "startDateTime": "2022-06-05T00:00:00Z", "lifetimeInMinutes": 60, "isUsableOnce": true}),
        ),
        ("POST", "/v1.0/users/sender@contoso.com/sendMail") => Reply::empty(202),
        ("POST", "/v1.0/users/u1/revokeSignInSessions") => Reply::json(200, json!({"value": true})),
        _ => Reply::empty(204),
    })
    .await;
    let dir: Arc<dyn Directory> = Arc::new(GraphDirectory::new(default_client(&stub)));
    let m = dir.get_manager("u1").await.unwrap().unwrap();
    assert_eq!(m.mobile_phone.as_deref(), Some("+1 555 0100"));
    let members: Vec<_> = dir
        .list_group_members("g1", true)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        members.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        vec!["id-1", "id-2"]
    );
    let ra: Vec<_> = dir
        .list_role_assignments(Some("principalId eq 'id-1'".into()))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        ra[0].principal.as_ref().unwrap().kind,
        resetctl::directory::ObjectKind::Group
    );
    let el: Vec<_> = dir
        .list_role_eligibilities(None)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(el[0].principal_id, "id-3");
    assert!(el[0].end.is_none());
    let methods = dir.list_auth_methods("u1").await.unwrap();
    assert_eq!(methods.len(), 3);
    dir.delete_auth_method("u1", &methods[0]).await.unwrap();
    assert_eq!(
        dir.delete_auth_method("u1", &methods[1])
            .await
            .unwrap_err()
            .kind,
        DirectoryErrorKind::Rejected
    );
    dir.delete_auth_method("u1", &methods[2]).await.unwrap();
    let tap = dir
        .create_tap(
            "u1",
            &TapRequest {
                start: None,
                lifetime_minutes: Some(60),
                usable_once: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(tap.pass.expose_secret(), "+drkzqAD");
    assert!(!format!("{tap:?}").contains("+drkzqAD"));
    dir.revoke_sessions("u1").await.unwrap();
    dir.add_group_member("g9", "u1").await.unwrap();
    dir.remove_group_member("g9", "u1").await.unwrap();
    dir.confirm_compromised(&["u1".to_string(), "u2".to_string()])
        .await
        .unwrap();
    let mail = resetctl::directory::Mail {
        subject: "Action required".into(),
        html_body: "<p>Hi</p>".into(),
        to: vec!["manager@contoso.com".into()],
        save_to_sent_items: false,
    };
    dir.send_mail("sender@contoso.com", &mail).await.unwrap();

    let seen = stub.graph_requests();
    let find = |m: &str, p: &str| {
        seen.iter()
            .find(|s| s.method == m && s.path == p)
            .unwrap_or_else(|| panic!("{m} {p}"))
    };
    assert!(
        find("GET", "/v1.0/roleManagement/directory/roleAssignments")
            .query
            .contains("$expand=principal")
    );
    find(
        "DELETE",
        "/v1.0/users/u1/authentication/phoneMethods/3179e48a-750b-4051-897c-87b9720928f7",
    );
    find(
        "DELETE",
        "/v1.0/users/u1/authentication/fido2Methods/-2_GRUg2",
    );
    let tap_body = find(
        "POST",
        "/v1.0/users/u1/authentication/temporaryAccessPassMethods",
    )
    .json();
    assert_eq!(
        tap_body,
        json!({"lifetimeInMinutes": 60, "isUsableOnce": true})
    );
    let add = find("POST", "/v1.0/groups/g9/members/$ref").json();
    assert_eq!(
        add["@odata.id"],
        format!("{}/v1.0/directoryObjects/u1", stub.base)
    );
    find("DELETE", "/v1.0/groups/g9/members/u1/$ref");
    let cc = find(
        "POST",
        "/v1.0/identityProtection/riskyUsers/confirmCompromised",
    )
    .json();
    assert_eq!(cc, json!({"userIds": ["u1", "u2"]}));
    let mail = find("POST", "/v1.0/users/sender@contoso.com/sendMail").json();
    assert_eq!(
        mail["message"]["toRecipients"][0]["emailAddress"]["address"],
        "manager@contoso.com"
    );
    assert_eq!(mail["message"]["body"]["contentType"], "HTML");
    assert_eq!(mail["saveToSentItems"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_pool_spreads_writes_over_apps_with_their_own_tokens() {
    let stub = stub(|_, _| Reply::empty(204)).await;
    let c = client(&stub, 3, 100.0, Duration::from_secs(5));
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                c.send(Request::post(
                    "/users/{}/revokeSignInSessions",
                    &[&format!("u{i}")],
                ))
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(stub.token_requests.lock().unwrap().len(), 3);
    let mut per_token = std::collections::BTreeMap::<String, usize>::new();
    for s in stub.graph_requests() {
        *per_token
            .entry(s.headers["authorization"].to_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_token.len(), 3, "{per_token:?}");
    assert!(per_token.values().all(|&n| n >= 15), "{per_token:?}");
}

#[tokio::test]
async fn secrets_never_reach_a_log_line() {
    let (capture, _guard) = crate::util::capture_logs();
    const PASSWORD: &str = "Pw-SECRET-8d1f!";
    const TAP: &str = "TAP-SECRET-3c9e";
    let stub = stub(|req, all| {
        if req.path.ends_with("temporaryAccessPassMethods") {
            Reply::json(201, json!({"id": "t", "temporaryAccessPass": TAP, "lifetimeInMinutes": 60}))
        } else if req.method == "PATCH" && all.iter().all(|s| s.method != "PATCH") {
            Reply::throttled(Some("0.05"))
        } else if req.method == "PATCH" && req.path.ends_with("bad") {
            Reply::json(400, json!({"error": {"code": "Request_BadRequest", "message": "The specified password does not comply with password complexity requirements."}}))
        } else {
            Reply::empty(204)
        }
    })
    .await;
    let dir = GraphDirectory::new(default_client(&stub));
    let change = PasswordChange {
        force_change_next_sign_in: true,
        force_change_with_mfa: true,
        password: Some(SecretString::from(PASSWORD)),
    };
    dir.force_password_change("u1", &change).await.unwrap();
    let e = dir.force_password_change("bad", &change).await.unwrap_err();
    let tap = dir.create_tap("u1", &TapRequest::default()).await.unwrap();
    tracing::info!(error = %e, debug = ?e, change = ?change, tap = ?tap, "test");
    // The secrets did travel on the wire...
    let seen = stub.graph_requests();
    assert!(String::from_utf8_lossy(&seen[0].body).contains(PASSWORD));
    assert_eq!(tap.pass.expose_secret(), TAP);
    // ...but never into a log line, an error or Debug output.
    let logs = String::from_utf8(capture.bytes()).unwrap();
    assert!(logs.contains("graph.request"), "the capture works: {logs}");
    assert!(logs.contains("Throttled"), "{logs}");
    for secret in [CLIENT_SECRET, ACCESS_TOKEN, PASSWORD, TAP] {
        assert!(!logs.contains(secret), "{secret} leaked into logs");
        assert!(!e.to_string().contains(secret) && !format!("{e:?}").contains(secret));
    }
    assert!(!format!("{dir:?}").contains(CLIENT_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_writes_run_at_the_quota_and_not_into_it() {
    // The stub meters "1,000 writes per 1 s" per item as Graph documents its write limits
    // (<https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits>):
    // a token bucket of 1,000 refilled at 1,000/s (Graph's 3,000 / 150 s shape, scaled),
    // answering 429 with the Retry-After until the bucket holds the item again. The client,
    // configured with that quota, must reach >= 90 % of it with <= 1 % 429s.
    const QUOTA: usize = 1_000;
    let per_sec = QUOTA as f64;
    let bucket = Arc::new(Mutex::new((QUOTA as f64, Instant::now())));
    let throttled = Arc::new(Mutex::new(0usize));
    let (level, thr) = (bucket.clone(), throttled.clone());
    let stub = stub(move |req, _| {
        let body = req.json();
        let mut responses = Vec::new();
        let mut level = level.lock().unwrap();
        for item in body["requests"].as_array().unwrap() {
            let now = Instant::now();
            let (tokens, last) = *level;
            let tokens = (tokens + now.duration_since(last).as_secs_f64() * per_sec).min(per_sec);
            if tokens < 1.0 {
                *level = (tokens, now);
                *thr.lock().unwrap() += 1;
                let wait = (1.0 - tokens) / per_sec;
                responses.push(json!({"id": item["id"], "status": 429, "headers": {"Retry-After": format!("{wait:.3}")}}));
            } else {
                *level = (tokens - 1.0, now);
                responses.push(json!({"id": item["id"], "status": 204}));
            }
        }
        Reply::json(200, json!({ "responses": responses }))
    })
    .await;
    let overrides = resetctl::config::QuotaOverrides {
        writes_per_window: Some(QUOTA as u32),
        write_window_secs: Some(10.0),
        tenant_writes_per_window: Some(100_000),
        ..Default::default()
    };
    let quotas = Quotas::with_overrides(&overrides, TenantSize::Small, 10.0);
    let dir = GraphDirectory::new(client_with_quotas(
        &stub,
        1,
        quotas,
        10.0,
        Duration::from_secs(5),
    ));
    const USERS: usize = 1_250;
    let mut writes = Vec::with_capacity(USERS * 2);
    for u in 0..USERS {
        let change = PasswordChange {
            force_change_next_sign_in: true,
            force_change_with_mfa: true,
            password: Some(SecretString::from(format!("Pw-{u}!aA1"))),
        };
        writes.push(UserWrite {
            user_id: format!("user-{u}"),
            op: WriteOp::ForcePasswordChange(change),
            after: None,
        });
        writes.push(UserWrite {
            user_id: format!("user-{u}"),
            op: WriteOp::RevokeSessions,
            after: Some(writes.len() - 1),
        });
    }
    // Warm the token so the measurement covers the writes only.
    dir.client().token_sources()[0].token().await.unwrap();
    let started = Instant::now();
    let results = dir.batch_writes(writes).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let seen = stub.graph_requests();
    let server_span = seen
        .last()
        .unwrap()
        .at
        .duration_since(seen[0].at)
        .as_secs_f64();
    eprintln!(
        "{} envelopes over {server_span:.2} s at the server, {elapsed:.2} s at the client",
        seen.len()
    );
    assert!(results.iter().all(Result::is_ok));
    let total = (USERS * 2) as f64;
    let rate = total / elapsed;
    let share_429 = *throttled.lock().unwrap() as f64 / total;
    eprintln!(
        "batched writes: {rate:.0}/s against a quota of {QUOTA}/s ({:.1} %), 429 share {:.2} %",
        100.0 * rate / QUOTA as f64,
        100.0 * share_429
    );
    assert!(rate >= 0.9 * QUOTA as f64, "rate {rate:.0}/s");
    assert!(share_429 <= 0.01, "429 share {share_429}");
}

/// A client whose token endpoint is a path of the scripted Graph stub.
fn client_with_token_path(stub: &Stub, path: &str) -> GraphClient {
    let http = http_client(Duration::from_secs(5)).unwrap();
    let source = TokenSource::new(
        http.clone(),
        format!("{}{path}", stub.base),
        "https://graph.microsoft.com/.default".into(),
        AppCredential {
            client_id: "app-0".into(),
            auth: ClientAuth::Secret(SecretString::from(CLIENT_SECRET)),
        },
    );
    let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 10.0), 1);
    GraphClient::new(
        &format!("{}/v1.0", stub.base),
        http,
        vec![source],
        gov,
        ClientOptions::scaled(10.0, Duration::from_secs(5)),
    )
    .unwrap()
}

#[tokio::test]
async fn token_endpoint_failures_retry_when_transient_and_report_refusals() {
    let stub = stub(|req, all| {
        let token_calls = all.iter().filter(|s| s.path.ends_with("token")).count();
        match req.path.as_str() {
            "/flaky/token" if token_calls == 0 => Reply::empty(503),
            "/flaky/token" => Reply::json(200, json!({"token_type": "Bearer", "expires_in": "3599", "access_token": ACCESS_TOKEN})),
            "/refuse/token" => Reply::json(
                400,
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": [7000215]}),
            ),
            _ => Reply::json(200, user_json(1)),
        }
    })
    .await;
    let c = client_with_token_path(&stub, "/flaky/token");
    c.send(Request::get("/users/{}", &["a"])).await.unwrap();
    assert_eq!(c.token_sources()[0].token_requests(), 2);
    let c = client_with_token_path(&stub, "/refuse/token");
    let e = c.send(Request::get("/users/{}", &["a"])).await.unwrap_err();
    assert_eq!(e.kind, GraphErrorKind::Auth);
    assert!(e.message.contains("AADSTS7000215"), "{e}");
    assert!(!e.to_string().contains(CLIENT_SECRET));
    assert_eq!(
        c.token_sources()[0].token_requests(),
        1,
        "a refusal is not retried"
    );
}

#[tokio::test]
async fn unauthorized_drops_the_token_and_retries_once() {
    let stub = stub(|req, _| {
        if req.headers["authorization"] == format!("Bearer {ACCESS_TOKEN}") {
            Reply::json(401, json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired."}}))
        } else {
            Reply::json(200, user_json(1))
        }
    })
    .await;
    let c = default_client(&stub);
    c.send(Request::get("/users/{}", &["a"])).await.unwrap();
    assert_eq!(stub.token_requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn configured_tenant_with_secret_and_certificate_apps() {
    let stub = stub(|_, _| Reply::empty(204)).await;
    let yaml = format!(
        "tenants:\n  lab:\n    tenant_id: t1\n    graph_url: {base}/v1.0\n    token_url: {token}\n    time_scale: 10\n    apps:\n      - client_id: secret-app\n        client_secret_env: LAB_SECRET\n      - client_id: cert-app\n        certificate_file: {cert}\n",
        base = stub.base,
        token = stub.token_url(),
        cert = crate::util::fixture("test-app.combined.pem").display(),
    );
    let env = resetctl::config::Env::from_pairs([("LAB_SECRET", CLIENT_SECRET)]);
    let cfg = resetctl::config::Config::parse(&yaml, None, &env).unwrap();
    let tenant = cfg.tenant("lab", &env).unwrap();
    let c = GraphClient::from_settings(&tenant, &env).unwrap();
    assert_eq!(c.governor().app_count(), 2);
    for i in 0..4 {
        c.send(Request::post(
            "/users/{}/revokeSignInSessions",
            &[&format!("u{i}")],
        ))
        .await
        .unwrap();
    }
    let tokens = stub.token_requests.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2);
    let forms: Vec<String> = tokens
        .iter()
        .map(|t| String::from_utf8(t.body.to_vec()).unwrap())
        .collect();
    let secret_form = forms
        .iter()
        .find(|f| f.contains("client_id=secret-app"))
        .unwrap();
    assert!(secret_form.contains(&format!("client_secret={CLIENT_SECRET}")));
    let cert_form = forms
        .iter()
        .find(|f| f.contains("client_id=cert-app"))
        .unwrap();
    assert!(cert_form.contains(
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    ));
    assert!(!cert_form.contains("client_secret"));
    let jwt = cert_form
        .split('&')
        .find_map(|kv| kv.strip_prefix("client_assertion="))
        .unwrap();
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwt.split('.').next().unwrap())
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["alg"], "PS256");
    assert_eq!(
        header["x5t#S256"],
        "r5wto-Invxe_2dr_wO-XPRh8AVmEwtttcQXKQwz7nYc"
    );
}

/// The tenant's count and a direct-membership check are advanced queries:
/// `ConsistencyLevel: eventual` is sent by the directory, not chosen by its callers.
#[tokio::test]
async fn count_and_membership_reads_send_the_advanced_query_flags() {
    let stub = stub(|req, _| match req.path.as_str() {
        "/v1.0/users/$count" => Reply {
            status: 200,
            headers: vec![("content-type", "text/plain".into())],
            body: "42".into(),
            delay: Duration::ZERO,
        },
        "/v1.0/groups/g1/members" => {
            Reply::json(200, json!({"@odata.count": 1, "value": [{"id": "u1"}]}))
        }
        _ => Reply::empty(404),
    })
    .await;
    let dir = GraphDirectory::new(default_client(&stub));
    assert_eq!(dir.count_users().await.unwrap(), 42);
    assert!(dir.is_group_member("g1", "u1").await.unwrap());
    assert!(!dir.is_group_member("g1", "U2").await.unwrap());
    let seen = stub.graph_requests();
    assert_eq!(seen[0].headers["consistencylevel"], "eventual");
    assert_eq!(seen[1].headers["consistencylevel"], "eventual");
    assert!(seen[1].query.contains("$count=true"), "{}", seen[1].query);
    assert!(
        seen[1].query.contains("$filter=id%20eq%20%27u1%27"),
        "{}",
        seen[1].query
    );
}

/// Graph "send mail in MIME format": `Content-Type: text/plain`, the body the base64 of the
/// MIME message, answered 202 (<https://learn.microsoft.com/graph/api/user-sendmail>).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mime_mail_goes_as_base64_text_plain() {
    use base64::Engine as _;
    let stub = stub(|_, _| Reply::empty(202)).await;
    let dir: Arc<dyn Directory> = Arc::new(GraphDirectory::new(default_client(&stub)));
    let mime = b"From: noreply@contoso.com\r\nTo: a@contoso.com\r\nSubject: x\r\n\r\nHello\r\n";
    dir.send_mime("noreply@contoso.com", mime).await.unwrap();
    let seen = stub.graph_requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1.0/users/noreply@contoso.com/sendMail");
    assert_eq!(seen[0].headers["content-type"], "text/plain");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&seen[0].body)
        .expect("the body is base64");
    assert_eq!(decoded, mime);
}
