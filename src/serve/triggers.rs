//! Incident triggers: a SOC's tooling starts a mass-reset **plan** by posting an incident. The
//! playbook's approvals still gate it; only where the playbook requires none and the matching
//! rule says `execute: true` does the plan go on to execute at once, in the background, through
//! the same gate (guards, overlapping runs, preflight) as any run.
//!
//! - `POST /v1/triggers/sentinel`: the body a Microsoft Sentinel automation rule's Logic App
//!   posts (its "Microsoft Sentinel incident" trigger body: `object.name` the incident id,
//!   `object.properties.{title, severity, incidentNumber, incidentUrl, labels,
//!   additionalData.tactics, relatedEntities}`). Accounts are the `Account` entities: the Entra
//!   object id (`aadUserId`) when given, else `accountName@upnSuffix`, else
//!   `additionalData.MailAddress`; an on-premises-only account (name and NT domain) is counted
//!   and reported, never guessed into a UPN. Built-in names (`SYSTEM`, `ADMINISTRATOR`) are
//!   dropped, as Sentinel's own entity mapping does.
//! - `POST /v1/triggers/splunk`: a Splunk webhook alert action (`{result, sid, search_name,
//!   results_link}`; only the first result row is sent): the accounts are the row's `user`,
//!   `upn` or `users` field (comma- or space-separated), the incident id the search's `sid`.
//! - `POST /v1/triggers/generic`: resetctl's own contract, `{"incident_id", "kind",
//!   "severity", "title", "users": [...]}`.
//!
//! Each is authenticated like the request API, size-limited by the server, idempotent by
//! incident id (a retried webhook answers with the run it already made, and never starts a
//! second execution), audited (`trigger.received`), and answered with the run id and how to
//! approve it: `201` for a new plan, `202` with a status link for a plan that executes, `200`
//! for a replay. `GET /v1/runs/{id}` (same credentials) shows a run's state.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::app::App;
use crate::audit::{Details, Event, Outcome};
use crate::playbook::model::Severity;

/// Where an incident came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerSource {
    /// Microsoft Sentinel.
    Sentinel,
    /// A Splunk alert.
    Splunk,
    /// resetctl's generic JSON.
    Generic,
}

impl TriggerSource {
    /// Its name in paths, configuration and the trail.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerSource::Sentinel => "sentinel",
            TriggerSource::Splunk => "splunk",
            TriggerSource::Generic => "generic",
        }
    }
}

/// An incident as a trigger describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    /// Its source.
    pub source: TriggerSource,
    /// Its id at the source (the idempotency key).
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its severity, when it has one.
    pub severity: Option<Severity>,
    /// Its kind, when the source names one (`credential_dump`; generic triggers).
    pub kind: Option<String>,
    /// MITRE tactics (Sentinel).
    pub tactics: Vec<String>,
    /// Labels (Sentinel) or tags.
    pub labels: Vec<String>,
    /// The affected accounts: object ids or UPNs.
    pub accounts: Vec<String>,
    /// Accounts that could not be named in the cloud (on-premises only), counted.
    pub unusable_accounts: usize,
}

/// What a trigger made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggered {
    /// The run (a plan awaiting approval).
    pub run: String,
    /// The playbook chosen.
    pub playbook: String,
    /// The tenant.
    pub tenant: String,
    /// Approvals the playbook requires before execution.
    pub approvals_required: u32,
    /// False when no run was made for this call: the incident had already made it (a
    /// retried webhook), or another incident naming the same accounts left the same plan
    /// waiting (one remediation, not two).
    pub created: bool,
    /// True when this call started the run's execution (in the background).
    pub executing: bool,
    /// The run's state as this answer is made (`planned`, `running`, `finished`, ...).
    pub state: String,
}

/// A run as `GET /v1/runs/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    /// The run id.
    pub run: String,
    /// Its tenant.
    pub tenant: String,
    /// Its playbook's name.
    pub playbook: String,
    /// `planned`, `running`, `finished`, `stopped`, `interrupted`, ...
    pub state: String,
    /// The ticket it was made under (`sentinel:<incident id>` for a trigger's run).
    pub ticket: Option<String>,
}

/// Why a trigger made nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// No configured rule takes this incident.
    #[error("no trigger rule takes this incident: {0}")]
    NoRule(String),
    /// The incident cannot be planned (no accounts for a playbook that needs them, ...).
    #[error("{0}")]
    Unplannable(String),
    /// Planning failed (the tenant, the store).
    #[error("planning failed: {0}")]
    Failed(String),
}

/// Turns an incident into a stored plan: the binary implements it over the run lifecycle.
pub trait TriggerPlanner: Send + Sync {
    /// Plan `incident` (or find the run it already made).
    fn plan<'a>(&'a self, incident: &'a Incident)
    -> BoxFuture<'a, Result<Triggered, TriggerError>>;

    /// The state of run `run`, or `None` when the store has no such run.
    fn status<'a>(&'a self, run: &'a str) -> BoxFuture<'a, Result<Option<RunState>, TriggerError>>;
}

/// Built-in account names Sentinel drops from entity mapping.
const BUILT_IN: &[&str] = &[
    "system",
    "administrator",
    "admin",
    "local service",
    "network service",
];

/// Sentinel's severities (`High|Medium|Low|Informational`) as the playbook's.
fn sentinel_severity(s: &str) -> Option<Severity> {
    match s.to_ascii_lowercase().as_str() {
        "high" => Some(Severity::High),
        "medium" => Some(Severity::Medium),
        "low" | "informational" => Some(Severity::Low),
        _ => None,
    }
}

/// A severity by the playbook's own names (`low`..`critical`).
pub fn severity_named(s: &str) -> Option<Severity> {
    match s.to_ascii_lowercase().as_str() {
        "low" | "informational" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                // Sentinel labels are objects: {"labelName": "...", "labelType": "User"}.
                Value::Object(o) => o
                    .get("labelName")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) => s
            .split([',', ' ', ';'])
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A Sentinel incident trigger body.
pub fn sentinel(body: &Value) -> Result<Incident, String> {
    // The incident trigger sends `Incident`; the alert trigger's body is another shape.
    if let Some(kind) = body.get("objectSchemaType").and_then(Value::as_str)
        && kind != "Incident"
    {
        return Err(format!(
            "objectSchemaType `{}` is not understood: resetctl takes the body of the \
             Microsoft Sentinel incident trigger (objectSchemaType `Incident`)",
            kind.chars().take(40).collect::<String>().escape_debug()
        ));
    }
    let object = body
        .get("object")
        .ok_or("no `object`: not a Sentinel incident trigger body")?;
    let props = object.get("properties").ok_or("no `object.properties`")?;
    let id = object
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("no incident id (`object.name`)")?
        .to_owned();
    let mut accounts = Vec::new();
    let mut unusable = 0;
    for entity in props
        .get("relatedEntities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if entity.get("kind").and_then(Value::as_str) != Some("Account") {
            continue;
        }
        let p = entity.get("properties").cloned().unwrap_or(Value::Null);
        let text = |k: &str| p.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let name = text("accountName");
        if name.is_some_and(|n| BUILT_IN.contains(&n.to_ascii_lowercase().as_str())) {
            continue;
        }
        let named = text("aadUserId")
            .map(str::to_owned)
            .or_else(|| Some(format!("{}@{}", name?, text("upnSuffix")?)))
            .or_else(|| {
                p.get("additionalData")
                    .and_then(|a| a.get("MailAddress"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        match named {
            Some(a) if !accounts.contains(&a) => accounts.push(a),
            Some(_) => {}
            None => unusable += 1,
        }
    }
    Ok(Incident {
        source: TriggerSource::Sentinel,
        id,
        title: props
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        severity: props
            .get("severity")
            .and_then(Value::as_str)
            .and_then(sentinel_severity),
        kind: None,
        tactics: strings(props.get("additionalData").and_then(|a| a.get("tactics"))),
        labels: strings(props.get("labels")),
        accounts,
        unusable_accounts: unusable,
    })
}

/// A Splunk webhook alert body.
pub fn splunk(body: &Value) -> Result<Incident, String> {
    let sid = body
        .get("sid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("no `sid`: not a Splunk webhook alert body")?;
    let result = body.get("result").ok_or("no `result` row")?;
    let mut accounts = Vec::new();
    for field in ["user", "upn", "users"] {
        for a in strings(result.get(field)) {
            if !accounts.contains(&a) {
                accounts.push(a);
            }
        }
    }
    Ok(Incident {
        source: TriggerSource::Splunk,
        id: sid.to_owned(),
        title: body
            .get("search_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        severity: result
            .get("severity")
            .and_then(Value::as_str)
            .and_then(severity_named),
        kind: result
            .get("kind")
            .and_then(Value::as_str)
            .map(str::to_owned),
        tactics: Vec::new(),
        labels: Vec::new(),
        accounts,
        unusable_accounts: 0,
    })
}

/// resetctl's generic trigger body.
pub fn generic(body: &Value) -> Result<Incident, String> {
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let id = text("incident_id").ok_or("`incident_id` is required")?;
    let severity = match text("severity") {
        None => None,
        Some(s) => Some(severity_named(s).ok_or("`severity`: low, medium, high or critical")?),
    };
    let users = body
        .get("users")
        .and_then(Value::as_array)
        .ok_or("`users` (an array of UPNs or object ids) is required")?;
    let mut accounts = Vec::new();
    for u in users {
        let u = u.as_str().ok_or("`users` holds strings only")?;
        if !accounts.iter().any(|a: &String| a == u) {
            accounts.push(u.to_owned());
        }
    }
    Ok(Incident {
        source: TriggerSource::Generic,
        id: id.to_owned(),
        title: text("title").unwrap_or_default().to_owned(),
        severity,
        kind: text("kind").map(str::to_owned),
        tactics: strings(body.get("tactics")),
        labels: strings(body.get("labels")),
        accounts,
        unusable_accounts: 0,
    })
}

/// Most accounts one trigger may name (a bigger list is a breach CSV for `resetctl plan`).
const MAX_ACCOUNTS: usize = 10_000;
/// Longest id, title, account.
const MAX_TEXT: usize = 512;

fn problem(incident: &Incident) -> Option<String> {
    if incident.accounts.len() > MAX_ACCOUNTS {
        return Some(format!(
            "more than {MAX_ACCOUNTS} accounts; plan a breach CSV instead"
        ));
    }
    let fields = std::iter::once(&incident.id)
        .chain(std::iter::once(&incident.title))
        .chain(incident.accounts.iter());
    for f in fields {
        if f.len() > MAX_TEXT || f.chars().any(char::is_control) {
            return Some("a field is too long or holds control characters".into());
        }
    }
    if incident
        .id
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(c)))
    {
        return Some("the incident id may hold letters, digits and -_.: only".into());
    }
    None
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

/// The answer of a server with no `triggers:` configured.
fn not_configured() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "triggers_not_configured",
        "this server takes no triggers: configure `triggers:` in resetctl.yaml",
    )
}

/// `POST /v1/triggers/{source}`.
pub(crate) async fn receive(
    State(app): State<Arc<App>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = super::api::unauthenticated(&app, &headers, &body) {
        return response;
    }
    let Some(planner) = app.ctx.triggers.clone() else {
        return not_configured();
    };
    let parse: fn(&Value) -> Result<Incident, String> = match source.as_str() {
        "sentinel" => sentinel,
        "splunk" => splunk,
        "generic" => generic,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "unknown_source",
                "triggers are /v1/triggers/sentinel, /splunk and /generic",
            );
        }
    };
    let incident = match serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("not JSON: {e}"))
        .and_then(|v| parse(&v))
    {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_body", e),
    };
    if let Some(p) = problem(&incident) {
        return error(StatusCode::BAD_REQUEST, "invalid_body", p);
    }
    // Its own task: a vanished client cannot stop a plan half made.
    let planned = {
        let incident = incident.clone();
        tokio::spawn(async move { planner.plan(&incident).await }).await
    };
    let planned = match planned {
        Ok(p) => p,
        Err(e) => Err(TriggerError::Failed(e.to_string())),
    };
    audit(&app, &incident, &planned).await;
    match planned {
        Ok(t) => {
            let status = match (t.created, t.executing) {
                (_, true) => StatusCode::ACCEPTED,
                (true, false) => StatusCode::CREATED,
                (false, false) => StatusCode::OK,
            };
            let mut body = json!({
                "run": t.run,
                "playbook": t.playbook,
                "tenant": t.tenant,
                "state": t.state,
                "replayed": !t.created,
                "executing": t.executing,
                "accounts": incident.accounts.len(),
                "unusable_accounts": incident.unusable_accounts,
                "approvals_required": t.approvals_required,
                "status": format!("/v1/runs/{}", t.run),
            });
            if t.state == "planned" && !t.executing {
                body["approve"] = format!("resetctl runs approve {} --as <OPERATOR>", t.run).into();
            }
            (status, Json(body)).into_response()
        }
        Err(TriggerError::NoRule(m)) => error(StatusCode::UNPROCESSABLE_ENTITY, "no_rule", m),
        Err(TriggerError::Unplannable(m)) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, "unplannable", m)
        }
        Err(TriggerError::Failed(m)) => error(StatusCode::BAD_GATEWAY, "planning_failed", m),
    }
}

/// `GET /v1/runs/{id}`: the state of a run (the status link a trigger's answer gives), behind
/// the request API's credentials.
pub(crate) async fn status(
    State(app): State<Arc<App>>,
    Path(run): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = super::api::unauthenticated(&app, &headers, b"") {
        return response;
    }
    let Some(planner) = app.ctx.triggers.clone() else {
        return not_configured();
    };
    if run.len() > MAX_TEXT || !run.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return error(StatusCode::NOT_FOUND, "unknown_run", "no such run");
    }
    match planner.status(&run).await {
        Ok(Some(r)) => Json(json!({
            "run": r.run,
            "tenant": r.tenant,
            "playbook": r.playbook,
            "state": r.state,
            "ticket": r.ticket,
        }))
        .into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown_run",
            format!("no run {run}"),
        ),
        Err(e) => {
            tracing::error!("reading run {run}: {e}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the run store cannot be read right now",
            )
        }
    }
}

/// `trigger.received`: the source, the incident, how many accounts, what came of it.
async fn audit(app: &App, incident: &Incident, planned: &Result<Triggered, TriggerError>) {
    let outcome = match planned {
        Ok(_) => Outcome::Success,
        Err(TriggerError::Failed(_)) => Outcome::Failure,
        Err(_) => Outcome::Refused,
    };
    let details = Details::new()
        .with("source", incident.source.as_str())
        .and_then(|d| d.with("incident", incident.id.as_str()))
        .and_then(|d| d.with("accounts", incident.accounts.len() as u64))
        .and_then(|d| d.with("unusable_accounts", incident.unusable_accounts as u64))
        .and_then(|d| match planned {
            Ok(t) => d
                .with("run", t.run.as_str())
                .and_then(|d| d.with("playbook", t.playbook.as_str()))
                .and_then(|d| d.with("tenant", t.tenant.as_str()))
                .and_then(|d| d.with("replayed", !t.created))
                .and_then(|d| d.with("execute", t.executing)),
            Err(e) => d.with("reason", e.to_string()),
        });
    let event = details.and_then(|details| {
        Event::new(
            format!("trigger:{}", incident.source.as_str()),
            "trigger.received",
            incident.id.as_str(),
            outcome,
        )
        .map(|e| e.with_details(details))
    });
    match event {
        Ok(event) => {
            if let Err(e) = app.ctx.audit.record(event).await {
                tracing::error!("could not audit a trigger: {e}");
            }
        }
        Err(e) => tracing::error!("could not audit a trigger: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_accounts_prefer_the_object_id_and_skip_built_ins_and_on_premises_names() {
        let body = json!({
            "objectSchemaType": "Incident",
            "object": {"name": "7e2a3b1c-0000-4000-8000-000000000001", "properties": {
                "title": "Credential dump on a file share", "severity": "High",
                "labels": [{"labelName": "infostealer", "labelType": "User"}],
                "additionalData": {"tactics": ["CredentialAccess"]},
                "relatedEntities": [
                    {"kind": "Account", "properties": {"accountName": "jsmith", "upnSuffix": "contoso.com", "aadUserId": "11111111-2222-3333-4444-555555555555"}},
                    {"kind": "Account", "properties": {"accountName": "amy", "upnSuffix": "contoso.com"}},
                    {"kind": "Account", "properties": {"accountName": "SYSTEM"}},
                    {"kind": "Account", "properties": {"accountName": "legacy", "ntDomain": "CORP"}},
                    {"kind": "Account", "properties": {"additionalData": {"MailAddress": "bo@contoso.com"}}},
                    {"kind": "Ip", "properties": {"address": "203.0.113.4"}}
                ]}}
        });
        let i = sentinel(&body).unwrap();
        assert_eq!(i.id, "7e2a3b1c-0000-4000-8000-000000000001");
        assert_eq!(i.severity, Some(Severity::High));
        assert_eq!(
            i.accounts,
            [
                "11111111-2222-3333-4444-555555555555",
                "amy@contoso.com",
                "bo@contoso.com"
            ]
        );
        assert_eq!(i.unusable_accounts, 1);
        assert_eq!(i.tactics, ["CredentialAccess"]);
        assert_eq!(i.labels, ["infostealer"]);
        assert!(sentinel(&json!({"sid": "x"})).is_err());
        let alert = sentinel(&json!({"objectSchemaType": "Alert", "object": {}})).unwrap_err();
        assert!(alert.contains("`Alert` is not understood"), "{alert}");
    }

    #[test]
    fn splunk_and_generic_bodies() {
        let i = splunk(&json!({"sid": "scheduler__admin__search__RMD5_at_1", "search_name": "Impossible travel",
            "result": {"user": "ann@contoso.com, bob@contoso.com", "severity": "high"}, "results_link": "http://x"}))
        .unwrap();
        assert_eq!(i.accounts, ["ann@contoso.com", "bob@contoso.com"]);
        assert_eq!(i.severity, Some(Severity::High));
        let g = generic(&json!({"incident_id": "INC-9", "kind": "credential_dump", "severity": "critical", "users": ["a@b.c", "a@b.c"]})).unwrap();
        assert_eq!(
            (g.accounts.len(), g.severity),
            (1, Some(Severity::Critical))
        );
        assert!(generic(&json!({"incident_id": "INC-9", "users": [1]})).is_err());
        assert!(
            generic(&json!({"incident_id": "INC-9", "severity": "dire", "users": []})).is_err()
        );
    }

    #[test]
    fn ids_and_sizes_are_bounded() {
        let mut i = generic(&json!({"incident_id": "INC/../9", "users": []})).unwrap();
        assert!(problem(&i).is_some());
        i.id = "INC-9".into();
        assert!(problem(&i).is_none());
        i.accounts = vec!["x".into(); MAX_ACCOUNTS + 1];
        assert!(problem(&i).is_some());
    }
}
