//! `POST /users/{id|upn}/sendMail` → 202, the message kept in the outbox
//! (<https://learn.microsoft.com/graph/api/user-sendmail>), in either of its documented
//! forms: JSON (`Content-Type: application/json`, `{"message":…,"saveToSentItems":…}`) or
//! MIME (`Content-Type: text/plain`, the whole RFC 5322 message base64-encoded as the body,
//! no parameters). Malformed base64 is 400 `ErrorMimeContentInvalidBase64String`, "Invalid
//! base64 string for MIME content." (the page's own example); base64 that decodes to no
//! readable message is 400 `ErrorMimeContentInvalid` (Exchange's code for invalid MIME,
//! <https://learn.microsoft.com/exchange/client-developer/web-service-reference/responsecode>);
//! a message without recipients is 400 `ErrorInvalidRecipients` as in JSON.

use serde_json::{Value, json};

use super::{Ctx, Req};
use crate::emulator::errors::{Fail, GraphResponse};
use crate::emulator::faults::Sink;
use crate::emulator::mime::{self, MimeError};
use crate::emulator::outbox::OutboxEntry;
use crate::emulator::state::now_rfc3339_ms;

/// Accept a message for delivery.
pub fn send(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    if *req.method != axum::http::Method::POST {
        return Err(Fail::method());
    }
    // An outage (`mail_503`): Graph's 503 `serviceNotAvailable` with a Retry-After
    // (https://learn.microsoft.com/graph/errors); the message is not accepted.
    if ctx.emu.faults.sink_down(Sink::Mail) {
        let wait = format!("{:.3}", 1.0 / ctx.emu.scale);
        return Ok(Fail::new(
            503,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry later.",
        )
        .response(&ctx.request_id)
        .with_header("Retry-After", wait));
    }
    let key = req.seg(1).unwrap_or("");
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
    let is_mime = req.content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/plain"))
    });
    let entry = if is_mime {
        mime_entry(req.body, from)?
    } else {
        json_entry(&req.json()?, from)?
    };
    ctx.emu.outbox.push(OutboxEntry {
        time: now_rfc3339_ms(),
        client_id: Some(client_id),
        delivered: true,
        ..entry
    });
    Ok(GraphResponse::empty(202))
}

fn no_recipients() -> Fail {
    Fail::new(
        400,
        "ErrorInvalidRecipients",
        "At least one recipient isn't valid.",
    )
}

/// The JSON form.
fn json_entry(body: &Value, from: String) -> Result<OutboxEntry, Fail> {
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
        return Err(no_recipients());
    }
    let text = |p: &str| {
        message
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(OutboxEntry {
        channel: "email",
        provider: "graph",
        from,
        to,
        subject: Some(text("/subject")),
        content_type: Some(text("/body/contentType")),
        content: text("/body/content"),
        save_to_sent_items: Some(
            body.get("saveToSentItems")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        ),
        message: Some(message.clone()),
        ..OutboxEntry::default()
    })
}

/// The MIME form. The sender is the mailbox of the URL whatever the `From` header says (it
/// is kept in `mime.from`).
fn mime_entry(body: &[u8], mailbox: String) -> Result<OutboxEntry, Fail> {
    let parsed = mime::parse_base64(body).map_err(|e| match e {
        MimeError::Base64 => Fail::new(
            400,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        ),
        MimeError::Invalid(_) => Fail::new(
            400,
            "ErrorMimeContentInvalid",
            "The MIME content is invalid.",
        ),
    })?;
    let recipients: Vec<String> = parsed
        .to
        .iter()
        .chain(&parsed.cc)
        .chain(&parsed.bcc)
        .cloned()
        .collect();
    if recipients.is_empty() || recipients.iter().any(|a| !a.contains('@')) {
        return Err(no_recipients());
    }
    let first_text = parsed
        .parts
        .iter()
        .find(|p| p.content_type == "text/plain")
        .or_else(|| parsed.parts.first());
    Ok(OutboxEntry {
        channel: "email",
        provider: "graph_mime",
        provider_id: parsed.message_id.clone(),
        from: mailbox,
        to: recipients,
        subject: parsed.subject.clone(),
        content_type: first_text.map(|p| p.content_type.clone()),
        content: first_text.map(|p| p.text.clone()).unwrap_or_default(),
        save_to_sent_items: Some(true),
        mime: Some(json!(parsed)),
        ..OutboxEntry::default()
    })
}
