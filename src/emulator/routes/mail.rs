//! `POST /users/{id|upn}/sendMail` → 202, the message kept in the outbox
//! (<https://learn.microsoft.com/graph/api/user-sendmail>).

use serde_json::Value;

use super::{Ctx, Req};
use crate::emulator::errors::{Fail, GraphResponse};
use crate::emulator::state::{OutboxMessage, now_rfc3339};

/// Accept a message for delivery.
pub fn send(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    if *req.method != axum::http::Method::POST {
        return Err(Fail::method());
    }
    let key = req.seg(1).unwrap_or("");
    let body = req.json()?;
    let (from, client_id) = {
        let t = ctx.emu.read();
        let idx = t.find_user(key).ok_or_else(|| {
            Fail::new(
                404,
                "ErrorInvalidUser",
                format!("The requested user '{key}' is invalid."),
            )
        })?;
        let client = t
            .apps
            .get(ctx.app as usize)
            .map(|a| a.client_id.to_string())
            .unwrap_or_default();
        (t.upn(idx), client)
    };
    let Some(message) = body.get("message").filter(|m| m.is_object()) else {
        return Err(Fail::new(
            400,
            "ErrorInvalidRequest",
            "The message property is required.",
        ));
    };
    let to: Vec<String> = message
        .get("toRecipients")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|r| r.pointer("/emailAddress/address").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if to.is_empty() || to.iter().any(|a| !a.contains('@')) {
        return Err(Fail::new(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid.",
        ));
    }
    let text = |p: &str| {
        message
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut outbox = ctx.emu.outbox.lock().unwrap_or_else(|e| e.into_inner());
    let seq = outbox.len() as u64 + 1;
    outbox.push(OutboxMessage {
        seq,
        time: now_rfc3339(),
        client_id,
        from,
        to,
        subject: text("/subject"),
        content_type: text("/body/contentType"),
        content: text("/body/content"),
        save_to_sent_items: body
            .get("saveToSentItems")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        message: message.clone(),
    });
    Ok(GraphResponse::empty(202))
}
