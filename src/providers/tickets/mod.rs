//! Ticket systems (PSAs) the verification flow escalates to: when neither automated path
//! proves a reset request, an L1 engineer gets a ticket to prove the identity by hand; a
//! request that came from a ticket gets notes and is closed when the flow completes.
//!
//! - [`servicenow`]: the incident Table API (`/api/now/table/incident`), Basic or bearer.
//! - [`connectwise`]: ConnectWise PSA (Manage) `/service/tickets`, Basic
//!   `company+public:private` and a `clientId` header.
//! - [`autotask`]: Autotask (Datto) REST, the zone looked up first, then `ApiIntegrationCode`,
//!   `UserName`, `Secret` headers.
//! - [`halopsa`]: HaloPSA `/api/Tickets` and `/api/Actions`, an OAuth client-credentials
//!   token cached until it expires.
//! - [`webhook`]: a signed JSON post (the generic webhook channel's signature).
//! - [`AuditTicketSink`]: no PSA; the ticket is an audit record (the default).
//!
//! Every HTTP sink goes through [`http::Caller`]: one retry policy for 429 and 5xx that
//! honours `Retry-After`, one mapping of statuses to [`TicketError`]. [`build`] makes the
//! configured default system's sink.

pub mod autotask;
pub mod connectwise;
pub mod halopsa;
mod http;
pub mod servicenow;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;

use crate::audit::{AuditHandle, Details, Event as AuditEvent, Outcome};
use crate::config::{ConfigError, Env, TicketSystemKind, TicketsConfig};
use crate::verify::{EscalationReason, Person};

pub use http::RetryPolicy;

/// How urgent a ticket is. A request that looks like an attack is `High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Someone may be trying to take the account over.
    High,
    /// The automated paths could not prove the request; nothing suggests an attack.
    Normal,
}

/// One line of a request's trail, already masked (destinations as `j***@contoso.com`,
/// `+44*******123`): safe to put in a ticket a whole service desk reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailLine {
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub text: String,
}

/// A ticket for an engineer to prove a user's identity by hand. It carries the request's
/// whole trail so the engineer need not open resetctl; it never carries a token, an
/// approval link or an unmasked phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The request.
    pub request: String,
    /// The idempotency key (stable per request): the PSA's external-reference field holds
    /// it, so an open retried after a crash finds the ticket instead of opening another.
    pub key: String,
    /// The one-line summary.
    pub title: String,
    /// The user.
    pub user: Person,
    /// Why the automated paths did not prove the request.
    pub reasons: Vec<EscalationReason>,
    /// Whether it looks like an attack.
    pub suspicious: bool,
    /// How urgent.
    pub priority: Priority,
    /// What happened so far, oldest first.
    pub trail: Vec<TrailLine>,
}

impl Ticket {
    /// A ticket for request `request` about `user`; the title and the priority follow from
    /// `suspicious`.
    pub fn new(
        request: &str,
        user: Person,
        reasons: Vec<EscalationReason>,
        suspicious: bool,
        trail: Vec<TrailLine>,
    ) -> Self {
        let title = if suspicious {
            format!("Suspicious password reset request for {}", user.upn)
        } else {
            format!("Verify identity by hand: password reset for {}", user.upn)
        };
        Ticket {
            request: request.to_owned(),
            key: format!("resetctl-{request}"),
            title,
            user,
            reasons,
            suspicious,
            priority: if suspicious {
                Priority::High
            } else {
                Priority::Normal
            },
            trail,
        }
    }

    /// The reasons as snake_case words, comma-separated.
    pub fn reason_words(&self) -> String {
        self.reasons
            .iter()
            .map(|r| {
                serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The description text: who, why, what to do, and the trail.
    pub fn body(&self) -> String {
        let mut out = format!(
            "resetctl verification request {}\nUser: {}\nReasons: {}\n",
            self.request,
            self.user.upn,
            self.reason_words()
        );
        if self.suspicious {
            out.push_str(
                "This request looks like an attack: verify with the user through a known \
                 channel before any reset.\n",
            );
        } else {
            out.push_str("Prove the user's identity by hand before resetting the password.\n");
        }
        out.push_str("\nTrail:\n");
        for line in &self.trail {
            out.push_str(&format!("{}  {}\n", line.at, line.text));
        }
        out
    }
}

/// A ticket as its system knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRef {
    /// The system's configured name (`tickets.systems.<name>`).
    pub system: String,
    /// The id the API addresses it by (ServiceNow `sys_id`, a ConnectWise, Autotask or
    /// Halo ticket id).
    pub id: String,
    /// The number people quote (ServiceNow `INC0010001`; the id elsewhere).
    pub number: String,
}

impl TicketRef {
    /// The reference of the ticket a request came from: `origin` of the form
    /// `ticket:<system>:<id>`.
    pub fn from_origin(origin: &str) -> Option<TicketRef> {
        let rest = origin.strip_prefix("ticket:")?;
        let (system, id) = rest.split_once(':')?;
        if system.is_empty() || id.is_empty() {
            return None;
        }
        Some(TicketRef {
            system: system.to_owned(),
            id: id.to_owned(),
            number: id.to_owned(),
        })
    }
}

/// Why a ticket call failed. Never holds a credential or a request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The system refused the credentials (401/403).
    #[error("{system} refused the credentials (HTTP {status}): {message}")]
    Denied {
        /// The sink (`servicenow`, …).
        system: &'static str,
        /// HTTP status.
        status: u16,
        /// The system's message.
        message: String,
    },
    /// The system refused the request (a 4xx other than 401/403/429, or an answer without
    /// the documented shape).
    #[error("{system} refused the request (HTTP {status}): {message}")]
    Rejected {
        /// The sink.
        system: &'static str,
        /// HTTP status (0 when the answer, not the status, was wrong).
        status: u16,
        /// The system's message.
        message: String,
    },
    /// No answer, or a 5xx, after the retries.
    #[error("{system} is unavailable: {cause}")]
    Unavailable {
        /// The sink.
        system: &'static str,
        /// Why.
        cause: String,
    },
    /// 429 after the retries.
    #[error("{system} is throttling us{}", retry_hint(.retry_after))]
    Throttled {
        /// The sink.
        system: &'static str,
        /// The last `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
}

/// ` (retry after N s)` when the system said.
fn retry_hint(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (retry after {} s)", d.as_secs()))
        .unwrap_or_default()
}

/// Where escalation tickets go. Object-safe so the runtime holds whichever is configured.
pub trait TicketSink: Send + Sync {
    /// The sink's kind (`servicenow`, `connectwise`, `autotask`, `halopsa`, `webhook`,
    /// `audit`).
    fn name(&self) -> &'static str;

    /// Open `ticket` (or find the one an earlier attempt opened under `ticket.key`, where
    /// the system can be searched); its reference.
    fn open<'a>(&'a self, ticket: &'a Ticket) -> BoxFuture<'a, Result<TicketRef, TicketError>>;

    /// Add `note` to the ticket (an internal work note where the system has one).
    fn update<'a>(
        &'a self,
        ticket: &'a TicketRef,
        note: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>>;

    /// Resolve the ticket with `resolution` as its resolution note.
    fn close<'a>(
        &'a self,
        ticket: &'a TicketRef,
        resolution: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>>;
}

/// Tickets as audit records only: the reference is `VERIFY-<request>`; notes and closes are
/// records too.
#[derive(Debug, Clone)]
pub struct AuditTicketSink {
    audit: AuditHandle,
}

impl AuditTicketSink {
    /// Record tickets in `audit`.
    pub fn new(audit: AuditHandle) -> Self {
        AuditTicketSink { audit }
    }

    async fn write(
        &self,
        action: &str,
        subject: &str,
        details: Result<Details, crate::audit::AuditError>,
    ) -> Result<(), TicketError> {
        let failed = |e: crate::audit::AuditError| TicketError::Unavailable {
            system: "audit",
            cause: e.to_string(),
        };
        let event = AuditEvent::new("resetctl", action, subject, Outcome::Success)
            .map_err(failed)?
            .with_details(details.map_err(failed)?);
        self.audit.record(event).await.map_err(failed)?;
        Ok(())
    }
}

impl TicketSink for AuditTicketSink {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn open<'a>(&'a self, ticket: &'a Ticket) -> BoxFuture<'a, Result<TicketRef, TicketError>> {
        Box::pin(async move {
            let reference = format!("VERIFY-{}", ticket.request);
            let details = Details::new()
                .with("request", &ticket.request)
                .and_then(|d| d.with("ticket", &reference))
                .and_then(|d| d.with("reason", ticket.reason_words().replace(", ", ",")))
                .and_then(|d| d.with("suspicious", ticket.suspicious));
            self.write("verify.ticket", &ticket.user.id, details)
                .await?;
            Ok(TicketRef {
                system: "audit".into(),
                id: reference.clone(),
                number: reference,
            })
        })
    }

    fn update<'a>(
        &'a self,
        ticket: &'a TicketRef,
        note: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(async move {
            let details = Details::new()
                .with("ticket", &ticket.id)
                .and_then(|d| d.with("note", note));
            self.write("verify.ticket_note", &ticket.id, details).await
        })
    }

    fn close<'a>(
        &'a self,
        ticket: &'a TicketRef,
        resolution: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(async move {
            let details = Details::new()
                .with("ticket", &ticket.id)
                .and_then(|d| d.with("resolution", resolution));
            self.write("verify.ticket_closed", &ticket.id, details)
                .await
        })
    }
}

/// The sink of the configured system `name`, its secrets read from `env` now.
pub fn build_system(
    config: &TicketsConfig,
    name: &str,
    http: reqwest::Client,
    env: &Env,
) -> Result<Arc<dyn TicketSink>, ConfigError> {
    let system = config.systems.get(name).ok_or_else(|| {
        ConfigError::new(
            crate::config::ConfigErrorKind::Invalid,
            format!("tickets: no system named {name}"),
        )
    })?;
    let key = |leaf: &str| format!("tickets.systems.{name}.{leaf}");
    let policy = RetryPolicy::default();
    Ok(match &system.kind {
        TicketSystemKind::ServiceNow(s) => Arc::new(servicenow::ServiceNow::new(
            name, s, http, env, policy, &key,
        )?),
        TicketSystemKind::ConnectWise(s) => Arc::new(connectwise::ConnectWise::new(
            name, s, http, env, policy, &key,
        )?),
        TicketSystemKind::Autotask(s) => {
            Arc::new(autotask::Autotask::new(name, s, http, env, policy, &key)?)
        }
        TicketSystemKind::HaloPsa(s) => {
            Arc::new(halopsa::HaloPsa::new(name, s, http, env, policy, &key)?)
        }
        TicketSystemKind::Webhook(s) => Arc::new(webhook::WebhookTickets::new(
            name, s, http, env, policy, &key,
        )?),
    })
}

/// Every configured system behind one sink: escalations open in the default system (the
/// audit trail when none is configured); notes and closes go to the system a
/// [`TicketRef`] names, so a request that came from any configured system is closed there.
pub struct TicketSystems {
    default: Arc<dyn TicketSink>,
    by_name: BTreeMap<String, Arc<dyn TicketSink>>,
}

impl std::fmt::Debug for TicketSystems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketSystems")
            .field("default", &self.default.name())
            .field("systems", &self.by_name.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The ticket sink of `config` (see [`TicketSystems`]); `audit` keeps escalations when no
/// system is configured. Secrets are read from `env` now.
pub fn build(
    config: &TicketsConfig,
    http: reqwest::Client,
    env: &Env,
    audit: &AuditHandle,
) -> Result<Arc<dyn TicketSink>, ConfigError> {
    let audit_sink: Arc<dyn TicketSink> = Arc::new(AuditTicketSink::new(audit.clone()));
    let mut by_name = BTreeMap::new();
    by_name.insert("audit".to_owned(), audit_sink.clone());
    for name in config.systems.keys() {
        by_name.insert(name.clone(), build_system(config, name, http.clone(), env)?);
    }
    let default = match &config.default {
        Some(name) => by_name.get(name).cloned().unwrap_or(audit_sink),
        None => audit_sink,
    };
    Ok(Arc::new(TicketSystems { default, by_name }))
}

impl TicketSystems {
    fn of(&self, ticket: &TicketRef) -> Result<&Arc<dyn TicketSink>, TicketError> {
        self.by_name
            .get(&ticket.system)
            .ok_or_else(|| TicketError::Rejected {
                system: "tickets",
                status: 0,
                message: format!("no ticket system named {} is configured", ticket.system),
            })
    }
}

impl TicketSink for TicketSystems {
    fn name(&self) -> &'static str {
        self.default.name()
    }

    fn open<'a>(&'a self, ticket: &'a Ticket) -> BoxFuture<'a, Result<TicketRef, TicketError>> {
        self.default.open(ticket)
    }

    fn update<'a>(
        &'a self,
        ticket: &'a TicketRef,
        note: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        match self.of(ticket) {
            Ok(sink) => sink.update(ticket, note),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn close<'a>(
        &'a self,
        ticket: &'a TicketRef,
        resolution: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        match self.of(ticket) {
            Ok(sink) => sink.close(ticket, resolution),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> Person {
        Person {
            id: "u1".into(),
            upn: "jo@contoso.example".into(),
        }
    }

    #[test]
    fn a_suspicious_ticket_is_high_priority_and_its_body_carries_the_trail() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let t = Ticket::new(
            "vr-1",
            person(),
            vec![EscalationReason::PushDenied],
            true,
            vec![TrailLine {
                at,
                text: "requested → push_sent (push to j***@contoso.example)".into(),
            }],
        );
        assert_eq!(t.priority, Priority::High);
        assert_eq!(t.key, "resetctl-vr-1");
        assert!(t.title.starts_with("Suspicious"));
        let body = t.body();
        assert!(body.contains("push_denied"), "{body}");
        assert!(
            body.contains("2027-01-15T08:00:00Z  requested → push_sent"),
            "{body}"
        );
        let calm = Ticket::new("vr-2", person(), Vec::new(), false, Vec::new());
        assert_eq!(calm.priority, Priority::Normal);
    }

    #[test]
    fn origins_of_the_form_ticket_system_id_name_a_ticket() {
        assert_eq!(
            TicketRef::from_origin("ticket:desk:INC0010001"),
            Some(TicketRef {
                system: "desk".into(),
                id: "INC0010001".into(),
                number: "INC0010001".into()
            })
        );
        for bad in ["cli", "ticket:", "ticket:desk", "ticket::1", "ticket:desk:"] {
            assert_eq!(TicketRef::from_origin(bad), None, "{bad}");
        }
    }
}
