//! HaloPSA tickets through its REST API (<https://halopsa.com/apidoc/>):
//!
//! - token: `POST {auth_url}/token` (form `grant_type=client_credentials`, `client_id`,
//!   `client_secret`, `scope=all`; `?tenant=` for hosted tenants) → `access_token`,
//!   `expires_in`; cached until a minute before it expires.
//! - open: `POST /api/Tickets` with a JSON **array** of one ticket: `summary` (the only
//!   required field), `details`, and the configured `client_id`, `tickettype_id`,
//!   `priority_id`; the reply is the ticket (`id`), as an object or an array.
//! - update: `POST /api/Actions` with `[{"ticket_id":N,"note":…,"outcome":"Private Note",
//!   "hiddenfromuser":true}]`.
//! - close: the resolution as an action, then `POST /api/Tickets` with
//!   `[{"id":N,"status_id":closed}]` (Halo updates a ticket posted with its id).
//!
//! Errors are plain text or JSON with `error_description`/`message`. Halo has no documented
//! field to search a ticket by an external key, so an open retried after a crash can open
//! a second ticket.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::http::{Caller, RetryPolicy, host_of};
use super::servicenow::encode;
use super::{Priority, Ticket, TicketError, TicketRef, TicketSink};
use crate::config::{ConfigError, Env, HaloPsaSettings};

const NAME: &str = "halopsa";
/// How long before its expiry a token is replaced.
const EARLY: Duration = Duration::from_secs(60);

struct Token {
    value: SecretString,
    until: Instant,
}

/// The HaloPSA sink.
pub struct HaloPsa {
    system: String,
    secret: SecretString,
    settings: HaloPsaSettings,
    host: String,
    token: Mutex<Option<Token>>,
    caller: Caller,
}

impl std::fmt::Debug for HaloPsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaloPsa")
            .field("system", &self.system)
            .field("host", &self.host)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

impl HaloPsa {
    /// The sink of system `system` per `settings`, its client secret read from `env` now.
    pub fn new(
        system: &str,
        settings: &HaloPsaSettings,
        http: reqwest::Client,
        env: &Env,
        policy: RetryPolicy,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Self, ConfigError> {
        Ok(HaloPsa {
            system: system.to_owned(),
            secret: settings
                .client_secret
                .load(&key("halopsa.client_secret"), env)?,
            host: host_of(&settings.base_url),
            settings: settings.clone(),
            token: Mutex::new(None),
            caller: Caller {
                system: NAME,
                http,
                policy,
            },
        })
    }

    /// A valid access token: the cached one, or a new one.
    async fn token(&self) -> Result<SecretString, TicketError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.until
        {
            return Ok(t.value.clone());
        }
        let mut url = format!("{}/token", self.settings.auth_url.trim_end_matches('/'));
        if let Some(tenant) = &self.settings.tenant {
            url.push_str(&format!("?tenant={}", encode(tenant)));
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.settings.client_id.as_str()),
            ("client_secret", self.secret.expose_secret()),
            ("scope", "all"),
        ];
        let reply = self
            .caller
            .call(
                &host_of(&self.settings.auth_url),
                || self.caller.http.post(&url).form(&form),
                message,
            )
            .await?;
        let value = reply
            .json
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                self.caller
                    .unexpected("a token answer without access_token")
            })?;
        let lifetime = reply
            .json
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3600);
        let value = SecretString::from(value.to_owned());
        *cached = Some(Token {
            value: value.clone(),
            until: Instant::now() + Duration::from_secs(lifetime).saturating_sub(EARLY),
        });
        Ok(value)
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, TicketError> {
        let token = self.token().await?;
        let url = format!("{}{path}", self.settings.base_url.trim_end_matches('/'));
        let result = self
            .caller
            .call(
                &self.host,
                || {
                    self.caller
                        .http
                        .post(&url)
                        .bearer_auth(token.expose_secret())
                        .header("accept", "application/json")
                        .json(body)
                },
                message,
            )
            .await;
        if let Err(TicketError::Denied { .. }) = &result {
            // A token revoked before its expiry: the next call fetches a new one.
            *self.token.lock().await = None;
        }
        result.map(|r| r.json)
    }

    fn create_body(&self, ticket: &Ticket) -> Value {
        let s = &self.settings;
        let mut t = json!({ "summary": ticket.title, "details": ticket.body() });
        if let Some(c) = s.client {
            t["client_id"] = json!(c);
        }
        if let Some(tt) = s.ticket_type {
            t["tickettype_id"] = json!(tt);
        }
        let priority = match ticket.priority {
            Priority::High => s.high_priority.or(s.priority),
            Priority::Normal => s.priority,
        };
        if let Some(p) = priority {
            t["priority_id"] = json!(p);
        }
        json!([t])
    }

    fn ticket_id(&self, ticket: &TicketRef) -> Result<u64, TicketError> {
        ticket
            .id
            .parse()
            .map_err(|_| self.caller.unexpected("a ticket id that is not a number"))
    }

    async fn action(&self, ticket: &TicketRef, note: &str) -> Result<(), TicketError> {
        let body = json!([{
            "ticket_id": self.ticket_id(ticket)?,
            "note": note,
            "outcome": "Private Note",
            "hiddenfromuser": true,
        }]);
        self.post("/api/Actions", &body).await.map(|_| ())
    }
}

/// Halo's error text (`error_description` of the token endpoint, `message` elsewhere).
fn message(body: &Value) -> Option<String> {
    ["error_description", "message", "error"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

impl TicketSink for HaloPsa {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open<'a>(&'a self, ticket: &'a Ticket) -> BoxFuture<'a, Result<TicketRef, TicketError>> {
        Box::pin(async move {
            let reply = self.post("/api/Tickets", &self.create_body(ticket)).await?;
            let record = match &reply {
                Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
                other => other.clone(),
            };
            let id = record
                .get("id")
                .and_then(Value::as_u64)
                .ok_or_else(|| self.caller.unexpected("a ticket without id"))?;
            Ok(TicketRef {
                system: self.system.clone(),
                id: id.to_string(),
                number: id.to_string(),
            })
        })
    }

    fn update<'a>(
        &'a self,
        ticket: &'a TicketRef,
        note: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(async move { self.action(ticket, note).await })
    }

    fn close<'a>(
        &'a self,
        ticket: &'a TicketRef,
        resolution: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(async move {
            self.action(ticket, resolution).await?;
            let body = json!([{
                "id": self.ticket_id(ticket)?,
                "status_id": self.settings.closed_status,
            }]);
            self.post("/api/Tickets", &body).await.map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretSource;
    use crate::verify::Person;

    #[test]
    fn a_ticket_is_an_array_of_one_with_the_summary_and_the_configured_ids() {
        let settings = HaloPsaSettings {
            base_url: "https://acme.halopsa.com".into(),
            auth_url: "https://acme.halopsa.com/auth".into(),
            tenant: None,
            client_id: "client".into(),
            client_secret: SecretSource::Env("HALO".into()),
            client: Some(12),
            ticket_type: Some(1),
            priority: Some(3),
            high_priority: Some(1),
            closed_status: 9,
        };
        let s = HaloPsa::new(
            "halo",
            &settings,
            reqwest::Client::new(),
            &Env::from_pairs([("HALO", "halo-secret")]),
            RetryPolicy::default(),
            &|k| k.to_owned(),
        )
        .unwrap();
        let user = Person {
            id: "u".into(),
            upn: "jo@contoso.example".into(),
        };
        let body = s.create_body(&Ticket::new("vr-1", user, Vec::new(), true, Vec::new()));
        let t = &body.as_array().unwrap()[0];
        assert!(
            t["summary"]
                .as_str()
                .unwrap()
                .contains("jo@contoso.example")
        );
        assert_eq!(
            (t["client_id"].as_u64(), t["tickettype_id"].as_u64()),
            (Some(12), Some(1))
        );
        assert_eq!(t["priority_id"], 1);
        assert!(!format!("{s:?}").contains("halo-secret"));
        assert_eq!(
            message(
                &json!({"error": "invalid_client", "error_description": "Invalid client secret"})
            )
            .as_deref(),
            Some("Invalid client secret")
        );
    }
}
