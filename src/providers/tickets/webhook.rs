//! Tickets as signed JSON posts, for a ticket system resetctl has no client for (a SOAR, an
//! in-house desk): `POST {url}` with `{"event":"ticket.opened"|"ticket.note"|"ticket.closed",
//! …}`, signed exactly as the generic webhook channel signs
//! (`crate::comms::channels::webhook::signature`: `X-Resetctl-Timestamp` and
//! `X-Resetctl-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`).
//!
//! An open carries the ticket's `key` (stable per request) so the receiver can tell a
//! retried open from a new one; the receiver's `{"id":…}` answer is the reference, else the
//! key is.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{Caller, RetryPolicy, host_of};
use super::{Priority, Ticket, TicketError, TicketRef, TicketSink};
use crate::comms::channels::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};
use crate::config::{ConfigError, Env, TicketWebhookSettings};

const NAME: &str = "webhook";

/// The webhook sink.
pub struct WebhookTickets {
    system: String,
    url: String,
    host: String,
    secret: SecretString,
    caller: Caller,
}

impl std::fmt::Debug for WebhookTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTickets")
            .field("system", &self.system)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl WebhookTickets {
    /// The sink of system `system` per `settings`, its key read from `env` now.
    pub fn new(
        system: &str,
        settings: &TicketWebhookSettings,
        http: reqwest::Client,
        env: &Env,
        policy: RetryPolicy,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Self, ConfigError> {
        Ok(WebhookTickets {
            system: system.to_owned(),
            url: settings.url.clone(),
            host: host_of(&settings.url),
            secret: settings.secret.load(&key("webhook.secret"), env)?,
            caller: Caller {
                system: NAME,
                http,
                policy,
            },
        })
    }

    async fn post(&self, document: &Value) -> Result<Value, TicketError> {
        let body = serde_json::to_vec(document).expect("a JSON value serialises");
        self.caller
            .call(
                &self.host,
                || {
                    // Signed per attempt: a retry carries a fresh timestamp.
                    let timestamp = jiff::Timestamp::now().as_second();
                    let signed =
                        signature(self.secret.expose_secret().as_bytes(), timestamp, &body);
                    self.caller
                        .http
                        .post(&self.url)
                        .header("content-type", "application/json")
                        .header(TIMESTAMP_HEADER, timestamp.to_string())
                        .header(SIGNATURE_HEADER, signed)
                        .body(body.clone())
                },
                |v| {
                    ["message", "error"]
                        .iter()
                        .find_map(|k| v.get(*k).and_then(Value::as_str))
                        .map(str::to_owned)
                },
            )
            .await
            .map(|r| r.json)
    }
}

/// The JSON of a ticket event.
pub fn opened_document(ticket: &Ticket) -> Value {
    json!({
        "event": "ticket.opened",
        "key": ticket.key,
        "request": ticket.request,
        "title": ticket.title,
        "priority": match ticket.priority { Priority::High => "high", Priority::Normal => "normal" },
        "suspicious": ticket.suspicious,
        "user": { "id": ticket.user.id, "upn": ticket.user.upn },
        "reasons": ticket.reason_words(),
        "description": ticket.body(),
        "trail": ticket.trail.iter().map(|l| json!({"at": l.at.to_string(), "text": l.text})).collect::<Vec<_>>(),
    })
}

impl TicketSink for WebhookTickets {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open<'a>(&'a self, ticket: &'a Ticket) -> BoxFuture<'a, Result<TicketRef, TicketError>> {
        Box::pin(async move {
            let answer = self.post(&opened_document(ticket)).await?;
            let id = match answer.get("id") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => ticket.key.clone(),
            };
            Ok(TicketRef {
                system: self.system.clone(),
                id: id.clone(),
                number: id,
            })
        })
    }

    fn update<'a>(
        &'a self,
        ticket: &'a TicketRef,
        note: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(async move {
            self.post(&json!({"event": "ticket.note", "ticket": ticket.id, "note": note}))
                .await
                .map(|_| ())
        })
    }

    fn close<'a>(
        &'a self,
        ticket: &'a TicketRef,
        resolution: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(async move {
            self.post(
                &json!({"event": "ticket.closed", "ticket": ticket.id, "resolution": resolution}),
            )
            .await
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Person;

    #[test]
    fn an_opened_event_carries_the_key_the_priority_and_the_trail() {
        let t = Ticket::new(
            "vr-1",
            Person {
                id: "u".into(),
                upn: "jo@contoso.example".into(),
            },
            Vec::new(),
            true,
            vec![super::super::TrailLine {
                at: jiff::Timestamp::from_second(0).unwrap(),
                text: "requested → escalated".into(),
            }],
        );
        let d = opened_document(&t);
        assert_eq!(d["event"], "ticket.opened");
        assert_eq!(d["key"], "resetctl-vr-1");
        assert_eq!(d["priority"], "high");
        assert_eq!(d["trail"][0]["text"], "requested → escalated");
    }
}
