//! `/_emulator/*`: what tests and tabletop reports inspect — the write log, one user's
//! security state (including issued TAPs), the outbox and the counters. No token needed;
//! these paths exist only on the emulator.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::emulator::model::{MethodKind, Principal};
use crate::emulator::render;
use crate::emulator::state::{Emu, ms_rfc3339};
use crate::emulator::tenant_file::role_name;

/// `?since=N`: only records with a sequence number above N.
#[derive(Debug, Deserialize)]
pub struct Since {
    /// Last sequence number already seen.
    #[serde(default)]
    since: u64,
}

/// `GET /_emulator/writes`.
pub async fn writes(State(emu): State<Arc<Emu>>, Query(q): Query<Since>) -> Response {
    let log = emu.writes.lock().unwrap_or_else(|e| e.into_inner());
    let items: Vec<_> = log.iter().filter(|w| w.seq > q.since).collect();
    Json(json!({ "writes": items })).into_response()
}

/// `?channel=`: only the entries of one channel (`email`, `sms`, `teams`, `webhook`).
#[derive(Debug, Deserialize)]
pub struct ChannelFilter {
    /// The channel, or all.
    channel: Option<String>,
}

/// `GET /_emulator/outbox[?channel=sms]`: `{"messages":[…]}`, oldest first.
pub async fn outbox(State(emu): State<Arc<Emu>>, Query(q): Query<ChannelFilter>) -> Response {
    let messages = emu.outbox.list(q.channel.as_deref());
    Json(json!({ "messages": messages })).into_response()
}

/// `GET /_emulator/stats`.
pub async fn stats(State(emu): State<Arc<Emu>>) -> Response {
    let by_status: serde_json::Map<String, Value> = emu
        .counters
        .by_status
        .iter()
        .enumerate()
        .filter_map(|(status, c)| {
            let n = c.load(Ordering::Relaxed);
            (n > 0).then(|| (status.to_string(), json!(n)))
        })
        .collect();
    let users = emu.read().users.len();
    Json(json!({
        "requests": emu.counters.requests.load(Ordering::Relaxed),
        "throttled": emu.counters.throttled.load(Ordering::Relaxed),
        "token_requests": emu.counters.token_requests.load(Ordering::Relaxed),
        "faults": emu.counters.faults.load(Ordering::Relaxed),
        "writes": emu.write_count(),
        "by_status": by_status,
        "buckets": emu.throttle.stats(),
        "time_scale": emu.scale,
        "users": users,
    }))
    .into_response()
}

/// `GET /_emulator/users/{id|upn}`.
pub async fn user(State(emu): State<Arc<Emu>>, Path(key): Path<String>) -> Response {
    let t = emu.read();
    let Some(idx) = t.find_user(&key) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no user {key}") })),
        )
            .into_response();
    };
    let u = &t.users[idx as usize];
    let methods: Vec<&str> = MethodKind::ALL
        .into_iter()
        .filter(|k| u.methods & k.bit() != 0)
        .map(MethodKind::short)
        .collect();
    let tap = u.tap.as_ref().map(|tap| {
        let mut v = render::tap(&t, idx, false).unwrap_or_default();
        v["temporaryAccessPass"] = json!(tap.pass);
        v
    });
    let groups: Vec<&str> = t
        .groups
        .iter()
        .filter(|g| g.members.contains(&idx))
        .map(|g| g.display_name.as_str())
        .collect();
    let roles: Vec<&str> = t.active_roles(idx).into_iter().map(role_name).collect();
    let eligible: Vec<&str> = t
        .eligibilities
        .iter()
        .filter(|e| e.principal == Principal::User(idx))
        .map(|e| role_name(e.role))
        .collect();
    let risk = t
        .risky
        .get(&idx)
        .map(|r| json!({ "level": r.level, "state": r.state, "detail": r.detail }));
    Json(json!({
        "id": u.id.to_string(),
        "userPrincipalName": t.upn(idx),
        "displayName": t.display_name(idx),
        "accountEnabled": u.enabled,
        "synced": u.synced,
        "service": u.service,
        "passwordLastSet": ms_rfc3339(u.password_changed_ms),
        "passwordSetCount": u.password_sets,
        "forceChangePasswordNextSignIn": u.force_change,
        "forceChangePasswordNextSignInWithMfa": u.force_change_mfa,
        "sessionsRevokedAt": ms_rfc3339(u.sessions_valid_ms),
        "methods": methods,
        "temporaryAccessPass": tap,
        "groups": groups,
        "roles": roles,
        "eligibleRoles": eligible,
        "risk": risk,
        "mobilePhone": u.mobile.as_deref(),
    }))
    .into_response()
}
