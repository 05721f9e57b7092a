//! A Teams Workflows webhook: the trigger URL of a Power Automate / Logic Apps flow "When a
//! Teams webhook request is received",
//! `POST /workflows/{id}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=…`
//! (served under `/teams`). The URL's `sig` is the only authorisation
//! (<https://learn.microsoft.com/azure/logic-apps/logic-apps-securing-a-logic-app#generate-shared-access-signatures-sas>).
//!
//! As the real trigger: the reply is **202 whatever the card**, since the flow runs after
//! answering and a bad card fails only in the flow's run history
//! (<https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using>).
//! So every accepted post is kept in the outbox with whether its run would have succeeded
//! (`delivered`) and, if not, the run's error: the envelope must be `{"type":"message",
//! "attachments":[…]}`; missing `attachments` fails the template's "Send each adaptive card"
//! loop ("the 'foreach' expression … is of type 'Null'"); each attachment must have
//! `contentType` `application/vnd.microsoft.card.adaptive` and a `content` that is an
//! Adaptive Card ([`crate::comms::card::validate`]).
//!
//! Refusals, with Logic Apps' error bodies: an unknown workflow 404 `WorkflowNotFound`; no
//! `api-version` 400 `MissingApiVersionParameter`; no `sp`/`sv`/`sig` 401
//! `DirectApiAuthorizationRequired`; a wrong `sig` (or `sp`/`sv` it was not issued for)
//! 401 `DirectApiInvalidAuthorizationSignature` (as public client code records the service's
//! answer); the `teams_429` fault 429 `WorkflowRequestsThrottled` (the limits of Workflows
//! webhooks are not published).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::{json_response, same_secret};
use crate::emulator::faults::Sink;
use crate::emulator::odata::query_pairs;
use crate::emulator::outbox::OutboxEntry;
use crate::emulator::state::{Emu, now_rfc3339_ms};

/// The one attachment type a Workflows webhook posts.
pub const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

/// `POST /teams/workflows/{id}/triggers/manual/paths/invoke`.
pub(crate) async fn invoke(
    State(emu): State<Arc<Emu>>,
    Path(workflow): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(delay) = emu.faults.latency() {
        tokio::time::sleep(delay).await;
    }
    let creds = &emu.sinks;
    if workflow != creds.teams_workflow_id {
        return error(404, "WorkflowNotFound", "The workflow could not be found.");
    }
    let pairs = query_pairs(uri.query().unwrap_or(""));
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("api-version").is_none_or(str::is_empty) {
        return error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let (Some(sp), Some(sv), Some(sig)) = (get("sp"), get("sv"), get("sig")) else {
        return error(
            401,
            "DirectApiAuthorizationRequired",
            "The request must be authenticated only by Shared Access scheme.",
        );
    };
    let issued = sp == "/triggers/manual/run" && sv == "1.0";
    if !(issued && same_secret(sig.as_bytes(), creds.teams_sig.as_bytes())) {
        return error(
            401,
            "DirectApiInvalidAuthorizationSignature",
            "The provided authorization signature is not valid.",
        );
    }
    if emu.faults.sink_throttled(Sink::Teams) {
        return error(
            429,
            "WorkflowRequestsThrottled",
            "Number of workflow requests exceeded the limit. Please retry later.",
        );
    }
    // An outage (`teams_503`): the trigger answers 503 and no flow run starts.
    if emu.faults.sink_down(Sink::Teams) {
        return error(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry later.",
        );
    }
    let run_id = format!(
        "08584{:020}CU{:02}",
        uuid::Uuid::new_v4().as_u128() % 100_000_000_000_000_000_000,
        uuid::Uuid::new_v4().as_u128() % 100
    );
    let posted: Option<Value> = serde_json::from_slice(&body).ok();
    let run = match &posted {
        Some(envelope) => flow_run(envelope),
        None => Err("The trigger's body is not JSON; the flow has no cards to send.".into()),
    };
    emu.outbox.push(OutboxEntry {
        time: now_rfc3339_ms(),
        channel: "teams",
        provider: "teams_workflow",
        provider_id: Some(run_id.clone()),
        delivered: run.is_ok(),
        error: run.err(),
        from: workflow,
        content: String::from_utf8_lossy(&body).into_owned(),
        content_type: Some(CARD_CONTENT_TYPE.into()),
        payload: posted,
        ..OutboxEntry::default()
    });
    let mut r = json_response(202, &Value::Null);
    *r.body_mut() = axum::body::Body::empty();
    r.headers_mut().remove("content-type");
    if let Ok(v) = HeaderValue::from_str(&run_id) {
        r.headers_mut().insert("x-ms-workflow-run-id", v);
    }
    r
}

/// Whether the flow's run posts every card, or the error its run history would show.
pub fn flow_run(envelope: &Value) -> Result<(), String> {
    if envelope.get("type").and_then(Value::as_str) != Some("message") {
        return Err("The envelope's type must be \"message\".".into());
    }
    let Some(attachments) = envelope.get("attachments").filter(|a| !a.is_null()) else {
        return Err(
            "The execution of template action 'Send_each_adaptive_card' failed: the \
             result of the evaluation of 'foreach' expression \
             '@triggerOutputs()?['body']?['attachments']' is of type 'Null'. The result must \
             be a valid array."
                .into(),
        );
    };
    let Some(attachments) = attachments.as_array() else {
        return Err("The result of the evaluation of 'foreach' expression \
             '@triggerOutputs()?['body']?['attachments']' must be a valid array."
            .into());
    };
    for (i, attachment) in attachments.iter().enumerate() {
        let content_type = attachment.get("contentType").and_then(Value::as_str);
        if content_type != Some(CARD_CONTENT_TYPE) {
            return Err(format!(
                "attachments[{i}]: contentType must be '{CARD_CONTENT_TYPE}'."
            ));
        }
        let content = attachment.get("content").unwrap_or(&Value::Null);
        if content.get("type").and_then(Value::as_str) != Some("AdaptiveCard") {
            return Err(format!(
                "attachments[{i}]: Property 'type' must be 'AdaptiveCard'."
            ));
        }
        crate::comms::card::validate(content).map_err(|e| format!("attachments[{i}]: {e}"))?;
    }
    Ok(())
}

/// Logic Apps' error body.
fn error(status: u16, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Value {
        json!({"type": "AdaptiveCard", "version": "1.5",
               "body": [{"type": "TextBlock", "text": "Hello", "wrap": true}]})
    }

    #[test]
    fn a_good_envelope_runs() {
        let envelope = json!({"type": "message", "attachments": [
            {"contentType": CARD_CONTENT_TYPE, "contentUrl": null, "content": card()}]});
        assert_eq!(flow_run(&envelope), Ok(()));
        assert_eq!(
            flow_run(&json!({"type": "message", "attachments": []})),
            Ok(())
        );
    }

    #[test]
    fn each_way_a_run_fails_is_named() {
        let err = flow_run(&json!({"type": "message"})).unwrap_err();
        assert!(err.contains("'foreach'") && err.contains("'Null'"), "{err}");
        let err = flow_run(&json!({"type": "message", "attachments": null})).unwrap_err();
        assert!(err.contains("'Null'"), "{err}");
        let err = flow_run(&json!({"type": "card", "attachments": []})).unwrap_err();
        assert!(err.contains("\"message\""), "{err}");
        let err = flow_run(&json!({"type": "message", "attachments": [
            {"contentType": "application/json", "content": card()}]}))
        .unwrap_err();
        assert!(err.contains("contentType"), "{err}");
        let err = flow_run(&json!({"type": "message", "attachments": [
            {"contentType": CARD_CONTENT_TYPE, "content": {"text": "hi"}}]}))
        .unwrap_err();
        assert!(
            err.contains("Property 'type' must be 'AdaptiveCard'"),
            "{err}"
        );
        let mut bad = card();
        bad["body"][0]["type"] = json!("NoSuchElement");
        let err = flow_run(&json!({"type": "message", "attachments": [
            {"contentType": CARD_CONTENT_TYPE, "content": bad}]}))
        .unwrap_err();
        assert!(err.contains("attachments[0]"), "{err}");
    }
}
