//! ServiceNow incidents through the Table API
//! (<https://www.servicenow.com/docs/bundle/zurich-api-reference/page/integrate/inbound-rest/concept/c_TableAPI.html>):
//!
//! - open: `GET /api/now/table/incident?sysparm_query=correlation_id={key}` first (an
//!   earlier attempt's incident is reused), else `POST /api/now/table/incident` with
//!   `short_description`, `description`, `urgency`/`impact` (1 high, 2 medium),
//!   `correlation_id` (the field the platform keeps for an external system's id), and the
//!   configured `caller_id`/`assignment_group`; the reply is 201
//!   `{"result":{"sys_id":…,"number":"INC…",…}}`.
//! - update: `PATCH /api/now/table/incident/{sys_id}` with `work_notes` (the internal
//!   journal; `comments` would be shown to the caller).
//! - close: the same PATCH with `state` (6, Resolved), `close_code` and `close_notes`, the
//!   fields the incident form requires to resolve.
//!
//! Basic auth (an integration user with the `itil` role) or an OAuth bearer token. Errors
//! are `{"error":{"message":…,"detail":…},"status":"failure"}`.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{Caller, RetryPolicy, host_of};
use super::{Priority, Ticket, TicketError, TicketRef, TicketSink};
use crate::config::{ConfigError, Env, ServiceNowAuth, ServiceNowSettings};

const NAME: &str = "servicenow";

enum Auth {
    Basic(String, SecretString),
    Bearer(SecretString),
}

/// The ServiceNow sink.
pub struct ServiceNow {
    system: String,
    base: String,
    host: String,
    auth: Auth,
    settings: ServiceNowSettings,
    caller: Caller,
}

impl std::fmt::Debug for ServiceNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNow")
            .field("system", &self.system)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl ServiceNow {
    /// The sink of system `system` per `settings`, its secret read from `env` now; `key`
    /// names configuration keys for errors.
    pub fn new(
        system: &str,
        settings: &ServiceNowSettings,
        http: reqwest::Client,
        env: &Env,
        policy: RetryPolicy,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Self, ConfigError> {
        let auth = match &settings.auth {
            ServiceNowAuth::Basic { username, password } => Auth::Basic(
                username.clone(),
                password.load(&key("servicenow.password"), env)?,
            ),
            ServiceNowAuth::Bearer(token) => {
                Auth::Bearer(token.load(&key("servicenow.token"), env)?)
            }
        };
        Ok(ServiceNow {
            system: system.to_owned(),
            base: settings.base_url.trim_end_matches('/').to_owned(),
            host: host_of(&settings.base_url),
            auth,
            settings: settings.clone(),
            caller: Caller {
                system: NAME,
                http,
                policy,
            },
        })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let r = self
            .caller
            .http
            .request(method, url)
            .header("accept", "application/json");
        match &self.auth {
            Auth::Basic(user, password) => r.basic_auth(user, Some(password.expose_secret())),
            Auth::Bearer(token) => r.bearer_auth(token.expose_secret()),
        }
    }

    /// The body of a new incident.
    fn create_body(&self, ticket: &Ticket) -> Value {
        let level = match ticket.priority {
            Priority::High => "1",
            Priority::Normal => "2",
        };
        let mut body = json!({
            "short_description": ticket.title,
            "description": ticket.body(),
            "urgency": level,
            "impact": level,
            "correlation_id": ticket.key,
            "correlation_display": "resetctl",
        });
        if let Some(caller) = &self.settings.caller {
            body["caller_id"] = json!(caller);
        }
        if let Some(group) = &self.settings.assignment_group {
            body["assignment_group"] = json!(group);
        }
        body
    }

    fn reference(&self, record: &Value) -> Result<TicketRef, TicketError> {
        let sys_id = record
            .get("sys_id")
            .and_then(Value::as_str)
            .ok_or_else(|| self.caller.unexpected("an incident without sys_id"))?;
        let number = record
            .get("number")
            .and_then(Value::as_str)
            .unwrap_or(sys_id);
        Ok(TicketRef {
            system: self.system.clone(),
            id: sys_id.to_owned(),
            number: number.to_owned(),
        })
    }

    async fn patch(&self, ticket: &TicketRef, body: &Value) -> Result<(), TicketError> {
        let url = format!(
            "{}/api/now/table/incident/{}",
            self.base,
            encode(&ticket.id)
        );
        self.caller
            .call(
                &self.host,
                || self.request(reqwest::Method::PATCH, &url).json(body),
                message,
            )
            .await
            .map(|_| ())
    }
}

/// ServiceNow's error message (`error.message`, then `error.detail`).
fn message(body: &Value) -> Option<String> {
    let e = body.get("error")?;
    let m = e.get("message").and_then(Value::as_str).unwrap_or_default();
    let d = e.get("detail").and_then(Value::as_str).unwrap_or_default();
    Some(match (m.is_empty(), d.is_empty()) {
        (false, false) => format!("{m}: {d}"),
        (false, true) => m.to_owned(),
        _ => d.to_owned(),
    })
}

/// Percent-encoding of a query value or path segment (RFC 3986 unreserved kept).
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl TicketSink for ServiceNow {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open<'a>(&'a self, ticket: &'a Ticket) -> BoxFuture<'a, Result<TicketRef, TicketError>> {
        Box::pin(async move {
            let find = format!(
                "{}/api/now/table/incident?sysparm_query={}&sysparm_fields=sys_id,number&sysparm_limit=1",
                self.base,
                encode(&format!("correlation_id={}", ticket.key))
            );
            let found = self
                .caller
                .call(
                    &self.host,
                    || self.request(reqwest::Method::GET, &find),
                    message,
                )
                .await?;
            if let Some(first) = found
                .json
                .get("result")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                return self.reference(first);
            }
            let url = format!("{}/api/now/table/incident", self.base);
            let body = self.create_body(ticket);
            let created = self
                .caller
                .call(
                    &self.host,
                    || self.request(reqwest::Method::POST, &url).json(&body),
                    message,
                )
                .await?;
            let record = created
                .json
                .get("result")
                .ok_or_else(|| self.caller.unexpected("no result"))?;
            self.reference(record)
        })
    }

    fn update<'a>(
        &'a self,
        ticket: &'a TicketRef,
        note: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(async move { self.patch(ticket, &json!({ "work_notes": note })).await })
    }

    fn close<'a>(
        &'a self,
        ticket: &'a TicketRef,
        resolution: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(async move {
            let body = json!({
                "state": self.settings.resolved_state,
                "close_code": self.settings.close_code,
                "close_notes": resolution,
            });
            self.patch(ticket, &body).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretSource;
    use crate::verify::Person;

    fn sink() -> ServiceNow {
        let settings = ServiceNowSettings {
            base_url: "https://acme.service-now.com".into(),
            auth: ServiceNowAuth::Basic {
                username: "integ".into(),
                password: SecretSource::Env("SN".into()),
            },
            caller: Some("integ".into()),
            assignment_group: Some("Service Desk".into()),
            close_code: "Solution provided".into(),
            resolved_state: "6".into(),
        };
        ServiceNow::new(
            "desk",
            &settings,
            reqwest::Client::new(),
            &Env::from_pairs([("SN", "pa55word-secret")]),
            RetryPolicy::default(),
            &|k| k.to_owned(),
        )
        .unwrap()
    }

    #[test]
    fn an_incident_carries_the_minimal_fields_the_key_and_the_priority() {
        let s = sink();
        let t = Ticket::new(
            "vr-1",
            Person {
                id: "u".into(),
                upn: "jo@contoso.example".into(),
            },
            Vec::new(),
            true,
            Vec::new(),
        );
        let body = s.create_body(&t);
        assert_eq!(body["short_description"], t.title.as_str());
        assert_eq!(body["correlation_id"], "resetctl-vr-1");
        assert_eq!(
            (body["urgency"].as_str(), body["impact"].as_str()),
            (Some("1"), Some("1"))
        );
        assert_eq!(body["caller_id"], "integ");
        assert_eq!(body["assignment_group"], "Service Desk");
        assert!(!format!("{s:?}").contains("pa55word"));
    }

    #[test]
    fn errors_read_message_and_detail() {
        let body = json!({"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"});
        assert_eq!(
            message(&body).unwrap(),
            "User Not Authenticated: Required to provide Auth information"
        );
        assert_eq!(encode("correlation_id=a b"), "correlation_id%3Da%20b");
    }
}
