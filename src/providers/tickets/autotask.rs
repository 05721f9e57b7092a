//! Autotask (Datto) PSA through its REST API
//! (<https://www.autotask.net/help/developerhelp/Content/APIs/REST/REST_API_Home.htm>):
//!
//! 1. The zone: `GET {zone_url}/v1.0/zoneInformation?user={UserName}` →
//!    `{"url":"https://webservicesN.autotask.net/atservicesrest/",…}`, looked up once. The
//!    credentials go to that URL next, so it must be https (or loopback, for the emulator).
//! 2. open: `POST {zone}/v1.0/Tickets` with `companyID`, `title`, `description`, `status`,
//!    `priority`, `queueID`; the reply is `{"itemId":N}`.
//! 3. update: `POST {zone}/v1.0/Tickets/{id}/Notes` (a TicketNote: `title`, `description`,
//!    `noteType`, `publish`).
//! 4. close: a note, then `PATCH {zone}/v1.0/Tickets` with `{"id":N,"status":complete}`
//!    (Autotask's PATCH takes the id in the body).
//!
//! Every call carries `ApiIntegrationCode`, `UserName` and `Secret` headers. Errors are
//! `{"errors":["…"]}`. Autotask has no documented external-reference field to search a
//! ticket by, so an open retried after a crash can open a second ticket.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::http::{Caller, RetryPolicy, host_of};
use super::servicenow::encode;
use super::{Priority, Ticket, TicketError, TicketRef, TicketSink};
use crate::config::{AutotaskSettings, ConfigError, Env, service_url};

const NAME: &str = "autotask";
/// Autotask's limit on a ticket's `title`.
const TITLE_MAX: usize = 255;
/// TicketNote `noteType` 1 (Task Summary) and `publish` 2 (internal only): the values the
/// Autotask UI uses for an internal note.
const NOTE_TYPE: u64 = 1;
const PUBLISH_INTERNAL: u64 = 2;

/// The Autotask sink.
pub struct Autotask {
    system: String,
    secret: SecretString,
    settings: AutotaskSettings,
    /// The zone's API root (`…/atservicesrest/v1.0`), once looked up.
    zone: OnceCell<String>,
    caller: Caller,
}

impl std::fmt::Debug for Autotask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autotask")
            .field("system", &self.system)
            .field("username", &self.settings.username)
            .field("zone", &self.zone.get())
            .finish_non_exhaustive()
    }
}

impl Autotask {
    /// The sink of system `system` per `settings`, its secret read from `env` now.
    pub fn new(
        system: &str,
        settings: &AutotaskSettings,
        http: reqwest::Client,
        env: &Env,
        policy: RetryPolicy,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Self, ConfigError> {
        Ok(Autotask {
            system: system.to_owned(),
            secret: settings.secret.load(&key("autotask.secret"), env)?,
            settings: settings.clone(),
            zone: OnceCell::new(),
            caller: Caller {
                system: NAME,
                http,
                policy,
            },
        })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.caller
            .http
            .request(method, url)
            .header("ApiIntegrationCode", &self.settings.integration_code)
            .header("UserName", &self.settings.username)
            .header("Secret", self.secret.expose_secret())
            .header("accept", "application/json")
    }

    /// The zone's API root, looked up on first use.
    async fn zone(&self) -> Result<&str, TicketError> {
        self.zone
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/v1.0/zoneInformation?user={}",
                    self.settings.zone_url.trim_end_matches('/'),
                    encode(&self.settings.username)
                );
                let host = host_of(&self.settings.zone_url);
                let reply = self
                    .caller
                    .call(
                        &host,
                        || {
                            self.caller
                                .http
                                .get(&url)
                                .header("accept", "application/json")
                        },
                        message,
                    )
                    .await?;
                let zone = reply
                    .json
                    .get("url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| self.caller.unexpected("zone information without url"))?;
                let zone = service_url("zone url", zone).map_err(|m| self.caller.unexpected(&m))?;
                Ok::<String, TicketError>(format!("{zone}/v1.0"))
            })
            .await
            .map(String::as_str)
    }

    fn create_body(&self, ticket: &Ticket) -> Value {
        let s = &self.settings;
        json!({
            "companyID": s.company_id,
            "title": ticket.title.chars().take(TITLE_MAX).collect::<String>(),
            "description": ticket.body(),
            "status": s.status,
            "priority": match ticket.priority {
                Priority::High => s.high_priority,
                Priority::Normal => s.priority,
            },
            "queueID": s.queue_id,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, TicketError> {
        let url = format!("{}{path}", self.zone().await?);
        let host = host_of(&url);
        self.caller
            .call(
                &host,
                || self.request(method.clone(), &url).json(body),
                message,
            )
            .await
            .map(|r| r.json)
    }

    async fn note(&self, ticket: &TicketRef, title: &str, text: &str) -> Result<(), TicketError> {
        let body = json!({
            "title": title,
            "description": text,
            "noteType": NOTE_TYPE,
            "publish": PUBLISH_INTERNAL,
        });
        self.send(
            reqwest::Method::POST,
            &format!("/Tickets/{}/Notes", encode(&ticket.id)),
            &body,
        )
        .await
        .map(|_| ())
    }
}

/// Autotask's error message: the first of `errors` (strings, or objects with `message`).
fn message(body: &Value) -> Option<String> {
    let first = body.get("errors")?.as_array()?.first()?;
    first
        .as_str()
        .or_else(|| first.get("message").and_then(Value::as_str))
        .map(str::to_owned)
}

impl TicketSink for Autotask {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open<'a>(&'a self, ticket: &'a Ticket) -> BoxFuture<'a, Result<TicketRef, TicketError>> {
        Box::pin(async move {
            let reply = self
                .send(reqwest::Method::POST, "/Tickets", &self.create_body(ticket))
                .await?;
            let id = reply
                .get("itemId")
                .and_then(Value::as_u64)
                .ok_or_else(|| self.caller.unexpected("no itemId"))?;
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
        Box::pin(async move { self.note(ticket, "resetctl", note).await })
    }

    fn close<'a>(
        &'a self,
        ticket: &'a TicketRef,
        resolution: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(async move {
            self.note(ticket, "Resolution", resolution).await?;
            let id: u64 = ticket
                .id
                .parse()
                .map_err(|_| self.caller.unexpected("a ticket id that is not a number"))?;
            let body = json!({ "id": id, "status": self.settings.complete_status });
            self.send(reqwest::Method::PATCH, "/Tickets", &body)
                .await
                .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretSource;
    use crate::verify::Person;

    #[test]
    fn a_ticket_carries_the_configured_ids_and_the_priority_of_its_kind() {
        let settings = AutotaskSettings {
            zone_url: "https://webservices.autotask.net/atservicesrest".into(),
            username: "api@acme.example".into(),
            integration_code: "TRACK".into(),
            secret: SecretSource::Env("AT".into()),
            company_id: 0,
            queue_id: 8,
            status: 1,
            priority: 2,
            high_priority: 1,
            complete_status: 5,
        };
        let s = Autotask::new(
            "at",
            &settings,
            reqwest::Client::new(),
            &Env::from_pairs([("AT", "at-secret")]),
            RetryPolicy::default(),
            &|k| k.to_owned(),
        )
        .unwrap();
        let user = Person {
            id: "u".into(),
            upn: "jo@contoso.example".into(),
        };
        let t = Ticket::new("vr-1", user.clone(), Vec::new(), false, Vec::new());
        let body = s.create_body(&t);
        for (k, v) in [
            ("companyID", 0),
            ("queueID", 8),
            ("status", 1),
            ("priority", 2),
        ] {
            assert_eq!(body[k], v, "{k}");
        }
        let high = s.create_body(&Ticket::new("vr-2", user, Vec::new(), true, Vec::new()));
        assert_eq!(high["priority"], 1);
        assert!(!format!("{s:?}").contains("at-secret"));
        assert_eq!(
            message(&json!({"errors": ["Ticket: queueID is invalid"]})).as_deref(),
            Some("Ticket: queueID is invalid")
        );
    }
}
