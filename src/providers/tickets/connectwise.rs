//! ConnectWise PSA (Manage) service tickets
//! (<https://developer.connectwise.com/Products/ConnectWise_PSA/REST>):
//!
//! - open: `GET /service/tickets?conditions=externalXRef="{key}"` first (an earlier
//!   attempt's ticket is reused), else `POST /service/tickets` with the documented minimum
//!   `summary` (at most 100 characters), `company.id`, `board.id`, plus
//!   `initialDescription`, `externalXRef` and the configured `priority.id`; 201 and the
//!   ticket (`id`).
//! - update: `POST /service/tickets/{id}/notes` with `text` and `internalAnalysisFlag`.
//! - close: the resolution as a note (`resolutionFlag`), then `PATCH /service/tickets/{id}`
//!   with a JSON Patch `[{"op":"replace","path":"status","value":{"id":N}}]`.
//!
//! Authorised by `Authorization: Basic base64("{company}+{public}:{private}")` and the
//! integration's `clientId` header. Errors are `{"code":…,"message":…,"errors":[…]}`.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{Caller, RetryPolicy, host_of};
use super::servicenow::encode;
use super::{Priority, Ticket, TicketError, TicketRef, TicketSink};
use crate::config::{ConfigError, ConnectWiseSettings, Env};

const NAME: &str = "connectwise";
/// ConnectWise's limit on `summary`.
const SUMMARY_MAX: usize = 100;

/// The ConnectWise sink.
pub struct ConnectWise {
    system: String,
    base: String,
    host: String,
    user: String,
    private_key: SecretString,
    settings: ConnectWiseSettings,
    caller: Caller,
}

impl std::fmt::Debug for ConnectWise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectWise")
            .field("system", &self.system)
            .field("host", &self.host)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ConnectWise {
    /// The sink of system `system` per `settings`, its private key read from `env` now.
    pub fn new(
        system: &str,
        settings: &ConnectWiseSettings,
        http: reqwest::Client,
        env: &Env,
        policy: RetryPolicy,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Self, ConfigError> {
        Ok(ConnectWise {
            system: system.to_owned(),
            base: settings.base_url.trim_end_matches('/').to_owned(),
            host: host_of(&settings.base_url),
            user: format!("{}+{}", settings.company_id, settings.public_key),
            private_key: settings
                .private_key
                .load(&key("connectwise.private_key"), env)?,
            settings: settings.clone(),
            caller: Caller {
                system: NAME,
                http,
                policy,
            },
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.caller
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(self.private_key.expose_secret()))
            .header("clientId", &self.settings.client_id)
            .header("accept", "application/json")
    }

    fn create_body(&self, ticket: &Ticket) -> Value {
        let summary: String = ticket.title.chars().take(SUMMARY_MAX).collect();
        let mut body = json!({
            "summary": summary,
            "company": { "id": self.settings.company },
            "board": { "id": self.settings.board },
            "initialDescription": ticket.body(),
            "externalXRef": ticket.key,
        });
        let priority = match ticket.priority {
            Priority::High => self.settings.high_priority.or(self.settings.priority),
            Priority::Normal => self.settings.priority,
        };
        if let Some(id) = priority {
            body["priority"] = json!({ "id": id });
        }
        body
    }

    fn reference(&self, ticket: &Value) -> Result<TicketRef, TicketError> {
        let id = ticket
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| self.caller.unexpected("a ticket without id"))?;
        Ok(TicketRef {
            system: self.system.clone(),
            id: id.to_string(),
            number: id.to_string(),
        })
    }

    async fn note(
        &self,
        ticket: &TicketRef,
        text: &str,
        resolution: bool,
    ) -> Result<(), TicketError> {
        let path = format!("/service/tickets/{}/notes", encode(&ticket.id));
        let body = json!({
            "text": text,
            "internalAnalysisFlag": true,
            "resolutionFlag": resolution,
        });
        self.caller
            .call(
                &self.host,
                || self.request(reqwest::Method::POST, &path).json(&body),
                message,
            )
            .await
            .map(|_| ())
    }
}

/// ConnectWise's error message (`message`, then the first of `errors`).
fn message(body: &Value) -> Option<String> {
    let m = body.get("message").and_then(Value::as_str)?;
    let detail = body
        .pointer("/errors/0/message")
        .and_then(Value::as_str)
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    Some(format!("{m}{detail}"))
}

impl TicketSink for ConnectWise {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open<'a>(&'a self, ticket: &'a Ticket) -> BoxFuture<'a, Result<TicketRef, TicketError>> {
        Box::pin(async move {
            let find = format!(
                "/service/tickets?conditions={}&pageSize=1",
                encode(&format!("externalXRef=\"{}\"", ticket.key))
            );
            let found = self
                .caller
                .call(
                    &self.host,
                    || self.request(reqwest::Method::GET, &find),
                    message,
                )
                .await?;
            if let Some(first) = found.json.as_array().and_then(|a| a.first()) {
                return self.reference(first);
            }
            let body = self.create_body(ticket);
            let created = self
                .caller
                .call(
                    &self.host,
                    || {
                        self.request(reqwest::Method::POST, "/service/tickets")
                            .json(&body)
                    },
                    message,
                )
                .await?;
            self.reference(&created.json)
        })
    }

    fn update<'a>(
        &'a self,
        ticket: &'a TicketRef,
        note: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(async move { self.note(ticket, note, false).await })
    }

    fn close<'a>(
        &'a self,
        ticket: &'a TicketRef,
        resolution: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(async move {
            self.note(ticket, resolution, true).await?;
            let path = format!("/service/tickets/{}", encode(&ticket.id));
            let patch = json!([{
                "op": "replace",
                "path": "status",
                "value": { "id": self.settings.closed_status },
            }]);
            self.caller
                .call(
                    &self.host,
                    || self.request(reqwest::Method::PATCH, &path).json(&patch),
                    message,
                )
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
    fn a_ticket_carries_company_board_summary_and_the_key() {
        let settings = ConnectWiseSettings {
            base_url: "https://api-na.myconnectwise.net/v4_6_release/apis/3.0".into(),
            company_id: "acme".into(),
            public_key: "pub".into(),
            private_key: SecretSource::Env("CW".into()),
            client_id: "client-guid".into(),
            company: 250,
            board: 1,
            closed_status: 7,
            priority: Some(8),
            high_priority: Some(6),
        };
        let s = ConnectWise::new(
            "cw",
            &settings,
            reqwest::Client::new(),
            &Env::from_pairs([("CW", "priv-secret")]),
            RetryPolicy::default(),
            &|k| k.to_owned(),
        )
        .unwrap();
        let user = Person {
            id: "u".into(),
            upn: format!("{}@contoso.example", "x".repeat(120)),
        };
        let t = Ticket::new("vr-1", user, Vec::new(), true, Vec::new());
        let body = s.create_body(&t);
        assert_eq!(body["company"]["id"], 250);
        assert_eq!(body["board"]["id"], 1);
        assert_eq!(body["priority"]["id"], 6);
        assert_eq!(body["externalXRef"], "resetctl-vr-1");
        assert_eq!(body["summary"].as_str().unwrap().chars().count(), 100);
        assert_eq!(s.user, "acme+pub");
        assert!(!format!("{s:?}").contains("priv-secret"));
        assert_eq!(
            message(&json!({"code": "InvalidObject", "message": "ticket object is invalid", "errors": [{"code": "NullObject", "message": "board object cannot be null", "field": "board"}]})).unwrap(),
            "ticket object is invalid: board object cannot be null"
        );
    }
}
