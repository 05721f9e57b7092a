//! HTTP entry points and the Graph dispatcher.
//!
//! Graph requests (`/v1.0/...`) are not routed by axum: one entry authenticates, applies
//! latency, and hands the request to [`dispatch`], which charges the throttling buckets,
//! draws faults, calls the handler of the area (`users`, `methods`, `groups`, `roles`,
//! `risk`, `mail`) and records writes. `$batch` calls the same [`dispatch`] once per item,
//! so items are charged, throttled and logged one by one.

mod batch;
mod groups;
mod inspect;
mod mail;
mod methods;
mod reports;
mod risk;
mod roles;
mod token;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::errors::{Body, Fail, GraphResponse};
use super::faults::{Fault, PageLink};
use super::odata::{self, Query, encode_skiptoken, percent_decode, query_pairs};
use super::server::KillSwitch;
use super::sinks;
use super::state::{Emu, WriteRecord, now_rfc3339_ms};
use super::throttle::{Charge, directory_cost};

/// The axum router of the whole emulator.
pub fn router(emu: Arc<Emu>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route("/_emulator/writes", get(inspect::writes))
        .route("/_emulator/users/{id}", get(inspect::user))
        .route("/_emulator/outbox", get(inspect::outbox))
        .route("/_emulator/stats", get(inspect::stats))
        .route(
            "/twilio/2010-04-01/Accounts/{sid}/Messages.json",
            post(sinks::twilio::create),
        )
        .route("/acs/sms", post(sinks::acs::send))
        .route(
            "/teams/workflows/{id}/triggers/manual/paths/invoke",
            post(sinks::teams::invoke),
        )
        .route("/hooks/{name}", post(sinks::webhook::receive))
        .route(
            "/duo/auth/v2/{*rest}",
            axum::routing::any(sinks::duo::handle),
        )
        .route(
            "/okta/api/v1/users/{*rest}",
            axum::routing::any(sinks::okta::handle),
        )
        .route("/_emulator/tickets", get(sinks::psa::listing))
        .route(
            "/servicenow/api/now/table/incident",
            axum::routing::any(sinks::psa::servicenow::collection),
        )
        .route(
            "/servicenow/api/now/table/incident/{sys_id}",
            axum::routing::any(sinks::psa::servicenow::record),
        )
        .route(
            "/connectwise/v4_6_release/apis/3.0/service/tickets",
            axum::routing::any(sinks::psa::connectwise::tickets),
        )
        .route(
            "/connectwise/v4_6_release/apis/3.0/service/tickets/{*rest}",
            axum::routing::any(sinks::psa::connectwise::ticket),
        )
        .route(
            "/autotask/atservicesrest/v1.0/zoneInformation",
            get(sinks::psa::autotask::zone),
        )
        .route(
            "/autotask/atservicesrest/v1.0/Tickets",
            axum::routing::any(sinks::psa::autotask::tickets),
        )
        .route(
            "/autotask/atservicesrest/v1.0/Tickets/{*rest}",
            axum::routing::any(sinks::psa::autotask::ticket),
        )
        .route("/halo/auth/token", post(sinks::psa::halopsa::token))
        .route("/halo/api/Tickets", post(sinks::psa::halopsa::tickets))
        .route("/halo/api/Actions", post(sinks::psa::halopsa::actions))
        .route("/v1.0", axum::routing::any(graph_entry))
        .route("/v1.0/{*rest}", axum::routing::any(graph_entry))
        .fallback(unknown_root)
        .with_state(emu)
}

/// The context of one Graph request (or `$batch` item).
pub struct Ctx<'a> {
    /// Shared state.
    pub emu: &'a Emu,
    /// Calling app index.
    pub app: u32,
    /// This request's id.
    pub request_id: String,
    /// `ConsistencyLevel: eventual` was sent.
    pub eventual: bool,
    /// Inside a `$batch`.
    pub batch: bool,
}

impl Ctx<'_> {
    /// 403 `Authorization_RequestDenied` unless the calling app was granted one of
    /// `permissions` (Graph's answer to a token whose `roles` lack the API's permission).
    pub fn require_any(&self, permissions: &[&str]) -> Result<(), Fail> {
        let granted = self
            .emu
            .read()
            .apps
            .get(self.app as usize)
            .is_some_and(|a| a.granted_any(permissions));
        if granted { Ok(()) } else { Err(Fail::denied()) }
    }
}

/// What the dispatcher decided.
pub enum Outcome {
    /// Send this.
    Respond(GraphResponse),
    /// Drop the connection without a response (injected fault).
    Reset,
}

/// A parsed request as handlers see it.
pub struct Req<'a> {
    /// Method.
    pub method: &'a Method,
    /// Decoded path segments under `/v1.0`.
    pub segs: Vec<String>,
    /// Decoded query pairs.
    pub pairs: Vec<(String, String)>,
    /// Raw body.
    pub body: &'a [u8],
    /// The body's `Content-Type`, when one was sent.
    pub content_type: Option<String>,
}

impl Req<'_> {
    /// The body as JSON (an empty body is `{}`).
    pub fn json(&self) -> Result<Value, Fail> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(self.body).map_err(|_| Fail::bad_json())
    }

    /// Parse the OData options for `collection`.
    pub fn query(&self, ctx: &Ctx<'_>, collection: &str) -> Result<Query, Fail> {
        Ok(odata::parse_query(collection, &self.pairs, ctx.eventual)?)
    }

    fn seg(&self, i: usize) -> Option<&str> {
        self.segs.get(i).map(String::as_str)
    }
}

/// Graph's collection response with paging: `matches(i)` says whether position `i` is in
/// the result, `render(i)` builds it. Positions run over `0..total`.
pub fn page(
    ctx: &Ctx<'_>,
    collection: &str,
    context: &str,
    q: &Query,
    total: usize,
    matches: &dyn Fn(usize) -> bool,
    render: &dyn Fn(usize) -> Value,
) -> GraphResponse {
    let top = q.top.unwrap_or(100) as usize;
    let mut values = Vec::with_capacity(top.min(total));
    let mut next = None;
    let mut i = q.skip;
    while i < total {
        if matches(i) {
            if values.len() == top {
                next = Some(i);
                break;
            }
            values.push(render(i));
        }
        i += 1;
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#{context}", ctx.emu.graph_url)),
    );
    if q.count {
        let count = if q.filter.is_none() {
            total
        } else {
            (0..total).filter(|&i| matches(i)).count()
        };
        body.insert("@odata.count".into(), json!(count));
    }
    // Injected listing faults (see `faults`): the link leads back to this page, or nowhere.
    let next = next.and_then(|pos| {
        if !ctx.emu.faults.lists_lie() {
            return Some(pos);
        }
        let link = ctx
            .emu
            .faults
            .next_link(&encode_skiptoken(collection, q, q.skip));
        if link != PageLink::Next {
            ctx.emu
                .counters
                .faults
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match link {
            PageLink::Next => Some(pos),
            PageLink::Repeat => Some(q.skip),
            PageLink::Drop => None,
        }
    });
    if let Some(pos) = next {
        body.insert(
            "@odata.nextLink".into(),
            json!(format!(
                "{}/{collection}?$skiptoken={}",
                ctx.emu.graph_url,
                encode_skiptoken(collection, q, pos)
            )),
        );
    }
    body.insert("value".into(), Value::Array(values));
    GraphResponse::json(200, Value::Object(body))
}

/// The `@odata.context` fragment of a collection with `$select`.
pub fn context_with_select(base: &str, q: &Query) -> String {
    match &q.select {
        Some(s) => format!("{base}({})", s.join(",")),
        None => base.to_string(),
    }
}

/// How a request is charged: the identity and access cost table of
/// <https://learn.microsoft.com/graph/throttling-limits>.
fn charge_for(req: &Req<'_>) -> Charge {
    let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let get = |n: &str| {
        req.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n) || k.eq_ignore_ascii_case(&n[1..]))
            .map(|(_, v)| v.as_str())
    };
    let select = get("$select").is_some();
    let expand = get("$expand").is_some();
    let top = get("$top").and_then(|t| t.parse().ok());
    if segs.first() == Some(&"identityProtection") {
        return Charge::IdentityProtection;
    }
    if segs.first() == Some(&"reports") {
        // The identity and access reports' own limit, not the directory's resource units.
        return Charge::Reports;
    }
    if segs.len() == 3 && segs[0] == "users" && segs[2] == "sendMail" {
        // Outlook, per mailbox: resolved by `dispatch`.
        return Charge::Free;
    }
    if !matches!(
        segs.first(),
        Some(&"users" | &"groups" | &"roleManagement" | &"directoryObjects")
    ) {
        return Charge::Free;
    }
    let auth_methods = segs.first() == Some(&"users") && segs.get(2) == Some(&"authentication");
    if *req.method != Method::GET {
        return Charge::Directory {
            ru: directory_cost(1, false, false, None),
            write: true,
            auth_methods,
        };
    }
    let base = match segs.as_slice() {
        ["users"] => 2,
        ["groups", _, "members"] => 3,
        ["groups", _, "transitiveMembers"] => 5,
        _ => 1,
    };
    Charge::Directory {
        ru: directory_cost(base, select, expand, top),
        write: false,
        auth_methods,
    }
}

/// Charge, fault, route, record: one Graph request or `$batch` item.
pub fn dispatch(ctx: &Ctx<'_>, req: &Req<'_>, allow_reset: bool) -> Outcome {
    let is_write = *req.method != Method::GET && *req.method != Method::HEAD;
    let mut charge = charge_for(req);
    // Outlook quotas are per mailbox: resolve the sender now.
    if req.segs.len() == 3
        && req.segs[0] == "users"
        && req.segs[2] == "sendMail"
        && let Some(mailbox) = ctx.emu.read().find_user(&req.segs[1])
    {
        charge = Charge::Mail { mailbox };
    }
    let target = write_target(ctx, req);
    // Only directory writes can be denied by an injected 403 (see `faults`).
    let deniable = is_write && matches!(charge, Charge::Directory { write: true, .. });
    let decision = ctx.emu.throttle.charge(ctx.app, charge);
    let mut fault_name = None;
    let mut reset = false;
    let response = if !decision.allowed {
        throttled(ctx, &decision)
    } else {
        let fault = ctx.emu.faults.draw(allow_reset, deniable);
        if fault.is_some() {
            ctx.emu
                .counters
                .faults
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match fault {
            Some(Fault::Unavailable) => {
                fault_name = Some("503");
                let wait = format!("{:.3}", 1.0 / ctx.emu.scale);
                Fail::new(
                    503,
                    "serviceNotAvailable",
                    "The service is temporarily unavailable. Please retry later.",
                )
                .response(&ctx.request_id)
                .with_header("Retry-After", wait)
            }
            Some(Fault::Denied) => {
                // Refused before routing: the write is not applied (logged as not applied).
                fault_name = Some("403");
                Fail::denied().response(&ctx.request_id)
            }
            other => {
                let r = route(ctx, req).unwrap_or_else(|f| f.response(&ctx.request_id));
                match other {
                    Some(Fault::GatewayTimeout) => {
                        fault_name = Some("504");
                        let applied = r.is_success();
                        if is_write {
                            record(ctx, req, target.clone(), 504, applied, fault_name);
                        }
                        return Outcome::Respond(with_charge_headers(
                            Fail::new(
                                504,
                                "UnknownError",
                                "The gateway did not receive a response in time.",
                            )
                            .response(&ctx.request_id),
                            &decision,
                        ));
                    }
                    Some(Fault::Reset) => {
                        fault_name = Some("reset");
                        reset = true;
                        if is_write {
                            record(ctx, req, target.clone(), 0, r.is_success(), fault_name);
                        }
                        r
                    }
                    _ => r,
                }
            }
        }
    };
    if reset {
        return Outcome::Reset;
    }
    if is_write {
        let applied = response.is_success() && fault_name.is_none();
        record(ctx, req, target, response.status, applied, fault_name);
    }
    Outcome::Respond(with_charge_headers(response, &decision))
}

/// The user a request is about, for the write log: `/users/{key}/...`, or the member of a
/// group-membership write.
fn write_target(ctx: &Ctx<'_>, req: &Req<'_>) -> Option<String> {
    let key = match (req.seg(0), req.seg(2), req.seg(3)) {
        (Some("users"), ..) => req.seg(1).map(str::to_string),
        (Some("groups"), Some("members"), Some("$ref")) => req.json().ok().and_then(|b| {
            b.get("@odata.id")
                .and_then(serde_json::Value::as_str)
                .and_then(|r| r.trim_end_matches('/').rsplit('/').next())
                .map(str::to_string)
        }),
        (Some("groups"), Some("members"), Some(member)) => Some(member.to_string()),
        _ => None,
    }?;
    let t = ctx.emu.read();
    t.find_user(&key)
        .map(|i| t.users[i as usize].id.to_string())
}

fn with_charge_headers(
    mut r: GraphResponse,
    decision: &super::throttle::Decision,
) -> GraphResponse {
    if let Some(ru) = decision.resource_units {
        r.headers.push(("x-ms-resource-unit", ru.to_string()));
    }
    if let Some(p) = decision.limit_percentage {
        r.headers
            .push(("x-ms-throttle-limit-percentage", format!("{p:.2}")));
    }
    r
}

fn throttled(ctx: &Ctx<'_>, d: &super::throttle::Decision) -> GraphResponse {
    let (scope, info) = d
        .scope
        .unwrap_or(("Tenant_Application/ReadWrite", "RequestLimitExceeded"));
    let (app_id, tenant_id) = {
        let t = ctx.emu.read();
        (
            t.apps
                .get(ctx.app as usize)
                .map(|a| a.client_id.to_string())
                .unwrap_or_default(),
            t.tenant_id.to_string(),
        )
    };
    // Body as observed from the directory (github.com/jsa2/AADAppAudit/issues/9; the shape of
    // https://learn.microsoft.com/graph/throttling): code TooManyRequests.
    let mut r = Fail::new(
        429,
        "TooManyRequests",
        "Too many requests from Identifier:".to_string()
            + &app_id
            + "+"
            + &tenant_id
            + " under category:throttle.aad.ags.tenant_application. Please try again later.",
    )
    .response(&ctx.request_id)
    .with_header(
        "x-ms-throttle-scope",
        format!("{scope}/{app_id}/{tenant_id}"),
    )
    .with_header("x-ms-throttle-information", info);
    if let Some(wait) = d.retry_after {
        r = r.with_header("Retry-After", format!("{wait:.3}"));
    }
    r
}

fn record(
    ctx: &Ctx<'_>,
    req: &Req<'_>,
    target: Option<String>,
    status: u16,
    applied: bool,
    fault: Option<&'static str>,
) {
    let client_id = ctx
        .emu
        .read()
        .apps
        .get(ctx.app as usize)
        .map(|a| a.client_id.to_string())
        .unwrap_or_default();
    ctx.emu.record_write(WriteRecord {
        seq: 0,
        time: now_rfc3339_ms(),
        client_id,
        method: req.method.to_string(),
        path: format!("/{}", req.segs.join("/")),
        target,
        status,
        applied,
        fault,
        batch: ctx.batch,
    });
}

/// Route to the area's handler.
fn route(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    match req.seg(0) {
        Some("users") => match req.seg(2) {
            Some("authentication") => methods::handle(ctx, req),
            Some("sendMail") => mail::send(ctx, req),
            _ => users::handle(ctx, req),
        },
        Some("groups") => groups::handle(ctx, req),
        Some("roleManagement") => roles::handle(ctx, req),
        Some("identityProtection") => risk::handle(ctx, req),
        Some("reports") => reports::handle(ctx, req),
        Some(other) => Err(Fail::no_segment(other)),
        None => Err(Fail::no_segment("v1.0")),
    }
}

/// Frame a [`GraphResponse`] as HTTP.
pub fn to_http(r: GraphResponse, request_id: &str, client_request_id: &str) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, body) = match r.body {
        Body::Empty => (None, Vec::new()),
        Body::Json(v) => (
            Some(
                "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
            ),
            serde_json::to_vec(&v).unwrap_or_default(),
        ),
        Body::Text(t) => (Some("text/plain"), t.into_bytes()),
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    if let Some(ct) = content_type {
        h.insert("content-type", HeaderValue::from_static(ct));
    } else {
        h.remove("content-type");
    }
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.append(name, v);
        }
    };
    put("request-id", request_id);
    put("client-request-id", client_request_id);
    put("cache-control", "no-cache");
    put(
        "x-ms-ags-diagnostic",
        r#"{"ServerInfo":{"DataCenter":"Emulated","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"resetctl-emulator"}}"#,
    );
    for (name, value) in &r.headers {
        put(name, value);
    }
    resp
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn graph_entry(
    State(emu): State<Arc<Emu>>,
    kill: Option<axum::Extension<KillSwitch>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = header(&headers, "client-request-id")
        .unwrap_or(&request_id)
        .to_string();
    if let Some(delay) = emu.faults.latency() {
        tokio::time::sleep(delay).await;
    }
    let app = match super::auth::check_bearer(&emu, header(&headers, "authorization")) {
        Ok(app) => app,
        Err(problem) => {
            emu.count_status(401);
            let r = Fail::new(401, "InvalidAuthenticationToken", problem.message())
                .response(&request_id)
                .with_header("WWW-Authenticate", "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"");
            return to_http(r, &request_id, &client_request_id);
        }
    };
    let path = uri.path().strip_prefix("/v1.0").unwrap_or("");
    let ctx = Ctx {
        emu: &emu,
        app,
        request_id: request_id.clone(),
        eventual: header(&headers, "consistencylevel")
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual")),
        batch: false,
    };
    let segs = split_path(path);
    let req = Req {
        method: &method,
        segs,
        pairs: query_pairs(uri.query().unwrap_or("")),
        body: &body,
        content_type: header(&headers, "content-type").map(str::to_string),
    };
    let outcome = if req.segs.len() == 1 && req.segs[0] == "$batch" {
        if method == Method::POST {
            Outcome::Respond(batch::handle(&ctx, &body))
        } else {
            Outcome::Respond(Fail::method().response(&request_id))
        }
    } else {
        dispatch(&ctx, &req, true)
    };
    match outcome {
        Outcome::Respond(r) => {
            emu.count_status(r.status);
            to_http(r, &request_id, &client_request_id)
        }
        Outcome::Reset => {
            emu.count_status(0);
            if let Some(axum::Extension(kill)) = kill {
                kill.fire();
            }
            // The connection is being dropped; never answer.
            std::future::pending::<Response>().await
        }
    }
}

/// Decoded, non-empty path segments.
pub fn split_path(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(&s.replace('+', "%2B")))
        .collect()
}

async fn unknown_root(uri: Uri) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let first = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    let r = Fail::new(400, "BadRequest", format!("Invalid version: {first}")).response(&request_id);
    to_http(r, &request_id, &request_id)
}
