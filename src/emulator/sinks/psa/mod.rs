//! Emulated PSAs (ticket systems), one module each, on the emulator's port:
//!
//! - [`servicenow`]: the incident Table API under `/servicenow` (a client's base URL is
//!   `{root}/servicenow`).
//! - [`connectwise`]: ConnectWise PSA service tickets under
//!   `/connectwise/v4_6_release/apis/3.0`.
//! - [`autotask`]: Autotask REST under `/autotask/atservicesrest` (zone lookup included; the
//!   zone is the emulator itself).
//! - [`halopsa`]: HaloPSA under `/halo` (`/auth/token`, `/api/Tickets`, `/api/Actions`).
//!
//! Each checks its PSA's authentication and answers with its own error shape, validates
//! the documented minimal fields and nothing more, assigns ids and numbers, and keeps every
//! ticket with its notes and status changes in the [`Desk`], served by
//! `GET /_emulator/tickets?system=`. Nothing is shared with `crate::providers::tickets`.
//! A `psa_429` fault answers a PSA request 429 with `Retry-After: 1`.

pub mod autotask;
pub mod connectwise;
pub mod halopsa;
pub mod servicenow;

use std::collections::HashSet;
use std::sync::Mutex;

use axum::http::HeaderValue;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::json_response;
use crate::emulator::faults::Sink;
use crate::emulator::state::{Emu, now_rfc3339};

/// A note (work note, ticket note, action) added to a ticket.
#[derive(Debug, Clone, Serialize)]
pub struct DeskNote {
    /// RFC 3339 time of arrival.
    pub time: String,
    /// The text.
    pub text: String,
    /// The PSA's kind of note (`work_notes`, `internal`, `resolution`, `Private Note`, …).
    pub kind: String,
}

/// A status change of a ticket.
#[derive(Debug, Clone, Serialize)]
pub struct StatusChange {
    /// RFC 3339 time.
    pub time: String,
    /// The new status as the PSA holds it (`6`, `{"id":7}`, `5`, `9`).
    pub status: Value,
}

/// One ticket a PSA holds.
#[derive(Debug, Clone, Serialize)]
pub struct DeskTicket {
    /// `servicenow`, `connectwise`, `autotask` or `halopsa`.
    pub system: &'static str,
    /// The id the API addresses it by (a `sys_id`, a number).
    pub id: String,
    /// What people quote (`INC0010001`; the id elsewhere).
    pub number: String,
    /// The body it was created with, as posted.
    pub created: Value,
    /// The record now (created fields, system fields, later changes).
    pub record: Map<String, Value>,
    /// Notes, oldest first.
    pub notes: Vec<DeskNote>,
    /// Status changes, oldest first.
    pub status_changes: Vec<StatusChange>,
}

/// Every ticket of every emulated PSA, and HaloPSA's issued tokens.
#[derive(Debug, Default)]
pub struct Desk {
    tickets: Mutex<Vec<DeskTicket>>,
    halo_tokens: Mutex<HashSet<String>>,
}

impl Desk {
    /// Keep a new ticket of `system`; `make` gets its sequence within the system (from 1)
    /// and returns it.
    pub fn create(&self, system: &'static str, make: impl FnOnce(u64) -> DeskTicket) -> DeskTicket {
        let mut list = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        let n = list.iter().filter(|t| t.system == system).count() as u64 + 1;
        let t = make(n);
        list.push(t.clone());
        t
    }

    /// Change the ticket `id` of `system` with `change`; the ticket after, or `None`.
    pub fn change(
        &self,
        system: &str,
        id: &str,
        change: impl FnOnce(&mut DeskTicket),
    ) -> Option<DeskTicket> {
        let mut list = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        let t = list.iter_mut().find(|t| t.system == system && t.id == id)?;
        change(t);
        Some(t.clone())
    }

    /// The tickets of `system` (all when `None`), oldest first.
    pub fn list(&self, system: Option<&str>) -> Vec<DeskTicket> {
        let list = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .filter(|t| system.is_none_or(|s| t.system == s))
            .cloned()
            .collect()
    }

    /// Remember an issued HaloPSA token.
    pub(crate) fn issue_halo_token(&self, token: String) {
        self.halo_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token);
    }

    /// Whether `token` was issued by the emulated HaloPSA.
    pub(crate) fn halo_token_valid(&self, token: &str) -> bool {
        self.halo_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(token)
    }
}

/// A note now.
fn note(text: &str, kind: &str) -> DeskNote {
    DeskNote {
        time: now_rfc3339(),
        text: text.to_owned(),
        kind: kind.to_owned(),
    }
}

/// A status change now.
fn status_change(status: Value) -> StatusChange {
    StatusChange {
        time: now_rfc3339(),
        status,
    }
}

/// The `psa_429` fault: 429 with `Retry-After: 1` and `body`.
fn throttled(emu: &Emu, body: &Value) -> Option<Response> {
    if !emu.faults.sink_throttled(Sink::Psa) {
        return None;
    }
    let mut r = json_response(429, body);
    r.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    Some(r)
}

/// `GET /_emulator/tickets?system=`.
pub(crate) async fn listing(
    axum::extract::State(emu): axum::extract::State<std::sync::Arc<Emu>>,
    axum::extract::Query(q): axum::extract::Query<SystemFilter>,
) -> Response {
    json_response(
        200,
        &json!({ "tickets": emu.desk.list(q.system.as_deref()) }),
    )
}

/// `?system=` of the listing.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SystemFilter {
    system: Option<String>,
}

/// A JSON body's object, or `None` when the body is not a JSON object.
fn object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_numbered_per_system_and_changed_in_place() {
        let desk = Desk::default();
        let make = |system: &'static str| {
            move |n: u64| DeskTicket {
                system,
                id: n.to_string(),
                number: n.to_string(),
                created: Value::Null,
                record: Map::new(),
                notes: Vec::new(),
                status_changes: Vec::new(),
            }
        };
        assert_eq!(desk.create("connectwise", make("connectwise")).id, "1");
        assert_eq!(desk.create("autotask", make("autotask")).id, "1");
        assert_eq!(desk.create("connectwise", make("connectwise")).id, "2");
        let t = desk
            .change("connectwise", "2", |t| t.notes.push(note("hi", "internal")))
            .unwrap();
        assert_eq!(t.notes.len(), 1);
        assert!(desk.change("connectwise", "9", |_| {}).is_none());
        assert_eq!(desk.list(Some("connectwise")).len(), 2);
        assert_eq!(desk.list(None).len(), 3);
    }
}
