//! The emulated tenant's message sinks over real HTTP on 127.0.0.1: Twilio, Azure
//! Communication Services SMS, Teams Workflows, the generic webhook and MIME sendMail,
//! each request built here from the providers' documented recipes (not with resetctl's
//! clients), and what the outbox kept.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use resetctl::emulator::{ConnectionInfo, EmulatorConfig, RunningEmulator};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::util::{http, inspect, start_emulator, token};

async fn seeded(faults: &str) -> RunningEmulator {
    let config = EmulatorConfig::seeded(20, 5).with_faults(faults).unwrap();
    start_emulator(config).await
}

async fn outbox(info: &ConnectionInfo, channel: &str) -> Vec<Value> {
    inspect(info, &format!("outbox?channel={channel}")).await["messages"]
        .as_array()
        .unwrap()
        .clone()
}

// ---- Twilio ----

async fn twilio(
    info: &ConnectionInfo,
    user: &str,
    password: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let t = &info.channels.twilio;
    let r = http()
        .post(format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            t.base_url, t.account_sid
        ))
        .basic_auth(user, Some(password))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_checks_credentials_and_the_form_and_answers_201() {
    let emu = seeded("").await;
    let info = emu.info().clone();
    let t = info.channels.twilio.clone();
    let (sid, token) = (t.account_sid.as_str(), t.auth_token.as_str());
    let ok = [
        ("To", "+14255550123"),
        ("From", t.from.as_str()),
        ("Body", "Hi"),
    ];

    let (status, body) = twilio(&info, sid, "wrong-token", &ok).await;
    assert_eq!(
        (status, body["code"].clone()),
        (401, json!(20003)),
        "{body}"
    );
    let (status, _) = twilio(&info, &t.api_key_sid, token, &ok).await;
    assert_eq!(status, 401, "a key SID with the account's token");

    for (form, code) in [
        (vec![("From", t.from.as_str()), ("Body", "Hi")], 21604),
        (vec![("To", "+14255550123"), ("Body", "Hi")], 21603),
        (
            vec![("To", "+14255550123"), ("From", t.from.as_str())],
            21602,
        ),
        (
            vec![("To", "n/a"), ("From", t.from.as_str()), ("Body", "Hi")],
            21211,
        ),
        (
            vec![
                ("To", "+112345678901"),
                ("From", t.from.as_str()),
                ("Body", "Hi"),
            ],
            21211,
        ),
        (
            vec![
                ("To", "+14255550123"),
                ("From", "+14155550199"),
                ("Body", "Hi"),
            ],
            21606,
        ),
    ] {
        let (status, body) = twilio(&info, sid, token, &form).await;
        assert_eq!(
            (status, body["code"].clone()),
            (400, json!(code)),
            "{form:?}: {body}"
        );
        assert_eq!(body["status"], 400);
        assert_eq!(
            body["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
    }
    let long = "x".repeat(1601);
    let (status, body) = twilio(
        &info,
        sid,
        token,
        &[("To", "+14255550123"), ("From", &t.from), ("Body", &long)],
    )
    .await;
    assert_eq!((status, body["code"].clone()), (400, json!(21617)));
    assert!(
        outbox(&info, "sms").await.is_empty(),
        "nothing refused is sent"
    );

    // Formatting characters in To are dropped; unknown fields are ignored.
    let body_161 = "a".repeat(161);
    let (status, m) = twilio(
        &info,
        sid,
        token,
        &[
            ("To", "+1 (425) 555-0123"),
            ("From", &t.from),
            ("Body", &body_161),
            ("SomethingNew", "x"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{m}");
    let message_sid = m["sid"].as_str().unwrap();
    assert!(
        message_sid.len() == 34
            && message_sid.starts_with("SM")
            && message_sid[2..].chars().all(|c| c.is_ascii_hexdigit()),
        "{m}"
    );
    assert_eq!(m["status"], "queued");
    assert_eq!(m["num_segments"], "2");
    assert_eq!(m["to"], "+14255550123");
    assert_eq!(m["from"], t.from.as_str());
    assert_eq!(m["account_sid"], sid);
    assert_eq!(m["direction"], "outbound-api");
    assert_eq!(m["api_version"], "2010-04-01");
    assert_eq!(
        m["uri"],
        format!("/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json")
    );
    assert!(m["date_created"].as_str().unwrap().ends_with("+0000"));

    // An API key, and a Messaging Service instead of From: accepted, 0 segments so far.
    let (status, m) = twilio(
        &info,
        &t.api_key_sid,
        &t.api_key_secret,
        &[
            ("To", "+4915123456789"),
            ("MessagingServiceSid", &t.messaging_service_sid),
            ("Body", "Passwort zurückgesetzt ✓"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(
        (m["status"].clone(), m["num_segments"].clone()),
        (json!("accepted"), json!("0"))
    );
    assert_eq!(m["from"], Value::Null);

    let sms = outbox(&info, "sms").await;
    assert_eq!(sms.len(), 2, "{sms:?}");
    assert_eq!(sms[0]["provider"], "twilio");
    assert_eq!(sms[0]["provider_id"], message_sid);
    assert_eq!(sms[0]["to"], json!(["+14255550123"]));
    assert_eq!(sms[0]["segments"], 2);
    assert_eq!(sms[0]["delivered"], true);
    assert_eq!(sms[1]["content"], "Passwort zurückgesetzt ✓");
    assert_eq!(sms[1]["segments"], 1, "UCS-2, 24 characters");
    assert!(outbox(&info, "email").await.is_empty());
    let all = inspect(&info, "outbox").await.to_string();
    assert!(!all.contains(&t.auth_token) && !all.contains(&t.api_key_secret));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_429_fault_answers_20429_and_sends_nothing() {
    let emu = seeded("twilio_429=1").await;
    let info = emu.info().clone();
    let t = info.channels.twilio.clone();
    let (status, body) = twilio(
        &info,
        &t.account_sid,
        &t.auth_token,
        &[("To", "+14255550123"), ("From", &t.from), ("Body", "Hi")],
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (429, json!(20429)),
        "{body}"
    );
    assert!(outbox(&info, "sms").await.is_empty());
    emu.shutdown().await;
}

// ---- Azure Communication Services SMS ----

/// An ACS request signed from the documented recipe
/// (learn.microsoft.com/azure/communication-services/tutorials/hmac-header-tutorial).
struct Signed {
    path_and_query: String,
    body: Vec<u8>,
    date: String,
    content_hash: String,
    key: String,
}

impl Signed {
    fn new(info: &ConnectionInfo, api_version: &str, body: &Value) -> Signed {
        let body = serde_json::to_vec(body).unwrap();
        Signed {
            path_and_query: format!("/acs/sms?api-version={api_version}"),
            content_hash: B64.encode(Sha256::digest(&body)),
            body,
            date: jiff::Timestamp::now()
                .strftime("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
            key: info.channels.acs.access_key.clone(),
        }
    }

    async fn send(&self, info: &ConnectionInfo) -> (u16, Value) {
        let authority = info
            .channels
            .acs
            .endpoint
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let to_sign = format!(
            "POST\n{}\n{};{};{}",
            self.path_and_query, self.date, authority, self.content_hash
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&B64.decode(&self.key).unwrap()).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = B64.encode(mac.finalize().into_bytes());
        let r = http()
            .post(format!("http://{authority}{}", self.path_and_query))
            .header("x-ms-date", &self.date)
            .header("x-ms-content-sha256", &self.content_hash)
            .header(
                "authorization",
                format!(
                    "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"
                ),
            )
            .header("content-type", "application/json")
            .body(self.body.clone())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

fn acs_body(info: &ConnectionInfo, to: &[Value], message: &str) -> Value {
    json!({
        "from": info.channels.acs.from,
        "smsRecipients": to,
        "message": message,
        "smsSendOptions": {"enableDeliveryReport": true, "tag": "resetctl"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acs_verifies_the_hmac_signature_and_answers_per_recipient() {
    let emu = seeded("").await;
    let info = emu.info().clone();
    let body = acs_body(
        &info,
        &[
            json!({"to": "+14255550123"}),
            json!({"to": "+112345678901"}),
        ],
        "Your password was reset.",
    );

    // Signed right: 202 with a mixed result.
    let (status, reply) = Signed::new(&info, "2021-03-07", &body).send(&info).await;
    assert_eq!(status, 202, "{reply}");
    let results = reply["value"].as_array().unwrap();
    assert_eq!(results[0]["to"], "+14255550123");
    assert_eq!(results[0]["successful"], true);
    assert_eq!(results[0]["httpStatusCode"], 202);
    assert!(
        results[0]["messageId"]
            .as_str()
            .unwrap()
            .starts_with("Outgoing_")
    );
    assert_eq!(results[1]["successful"], false);
    assert_eq!(results[1]["httpStatusCode"], 400);
    assert_eq!(
        results[1]["errorMessage"],
        "Invalid To phone number format."
    );
    let sms = outbox(&info, "sms").await;
    assert_eq!(sms.len(), 2);
    assert_eq!(
        (sms[0]["delivered"].clone(), sms[1]["delivered"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(sms[0]["provider_id"], results[0]["messageId"]);
    let (status, _) = Signed::new(&info, "2026-01-23", &body).send(&info).await;
    assert_eq!(status, 202, "a later stable api-version");

    // A wrong key, a stale date, a hash of another body: 401 Denied, nothing sent.
    let mut wrong_key = Signed::new(&info, "2021-03-07", &body);
    wrong_key.key = B64.encode([7u8; 64]);
    let mut stale = Signed::new(&info, "2021-03-07", &body);
    stale.date = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(20))
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let mut other_hash = Signed::new(&info, "2021-03-07", &body);
    other_hash.content_hash = B64.encode(Sha256::digest(b"{}"));
    for (case, what) in [
        (wrong_key, "wrong key"),
        (stale, "stale date"),
        (other_hash, "content hash"),
    ] {
        let (status, reply) = case.send(&info).await;
        assert_eq!(status, 401, "{what}: {reply}");
        assert_eq!(reply["error"]["code"], "Denied", "{what}");
    }
    let mut hash_case = Signed::new(&info, "2021-03-07", &body);
    hash_case.content_hash = B64.encode(Sha256::digest(b"{}"));
    let (_, reply) = hash_case.send(&info).await;
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-ms-content-sha256")
    );
    // Signed for one query, sent with another: the path and query are signed.
    let (status, _) = {
        let s = Signed::new(&info, "2021-03-07", &body);
        let authority = info
            .channels
            .acs
            .endpoint
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let to_sign = format!(
            "POST\n{}\n{};{};{}",
            s.path_and_query, s.date, authority, s.content_hash
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&B64.decode(&s.key).unwrap()).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = B64.encode(mac.finalize().into_bytes());
        let r = http()
            .post(format!("http://{authority}{}&tag=1", s.path_and_query))
            .header("x-ms-date", &s.date)
            .header("x-ms-content-sha256", &s.content_hash)
            .header("authorization", format!("HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"))
            .body(s.body.clone())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(status, 401, "the query is part of the signed string");
    assert_eq!(
        outbox(&info, "sms").await.len(),
        4,
        "only the two accepted requests"
    );

    // An api-version ACS does not have.
    let (status, reply) = Signed::new(&info, "2020-01-01", &body).send(&info).await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (400, json!("UnsupportedApiVersion"))
    );
    // A body the specification refuses.
    let (status, _) = Signed::new(&info, "2021-03-07", &acs_body(&info, &[], "x"))
        .send(&info)
        .await;
    assert_eq!(status, 400, "no recipient");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acs_repeatable_requests_are_not_sent_twice() {
    let emu = seeded("").await;
    let info = emu.info().clone();
    let first_sent = jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let id = "fda6d242-46aa-4247-8bf6-619a1206f9c3";
    let recipient = json!({"to": "+14255550123", "repeatabilityRequestId": id,
                           "repeatabilityFirstSent": first_sent});
    let body = acs_body(
        &info,
        std::slice::from_ref(&recipient),
        "Your password was reset.",
    );
    let (status, first) = Signed::new(&info, "2021-03-07", &body).send(&info).await;
    assert_eq!(status, 202);
    assert_eq!(
        first["value"][0]["repeatabilityResult"], "accepted",
        "{first}"
    );
    // The client lost the answer and sends the same request again.
    let (status, again) = Signed::new(&info, "2021-03-07", &body).send(&info).await;
    assert_eq!(status, 202);
    assert_eq!(again["value"][0]["repeatabilityResult"], "accepted");
    assert_eq!(
        again["value"][0]["messageId"],
        first["value"][0]["messageId"]
    );
    assert_eq!(outbox(&info, "sms").await.len(), 1, "delivered once");
    // The same id for another message, or without a valid first-sent time: rejected.
    let changed = acs_body(&info, std::slice::from_ref(&recipient), "Another text.");
    let (_, reply) = Signed::new(&info, "2021-03-07", &changed).send(&info).await;
    assert_eq!(
        reply["value"][0]["repeatabilityResult"], "rejected",
        "{reply}"
    );
    assert_eq!(reply["value"][0]["httpStatusCode"], 400);
    let no_date = acs_body(
        &info,
        &[
            json!({"to": "+14255550124", "repeatabilityRequestId": "0b1c6c62-4b1f-4f8e-9f3e-5b1c2d3e4f50"}),
        ],
        "x",
    );
    let (_, reply) = Signed::new(&info, "2021-03-07", &no_date).send(&info).await;
    assert_eq!(
        reply["value"][0]["repeatabilityResult"], "rejected",
        "{reply}"
    );
    assert!(
        reply["value"][0]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("repeatability-first-sent")
    );
    assert_eq!(outbox(&info, "sms").await.len(), 1);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acs_429_fault_throttles() {
    let emu = seeded("acs_429=1").await;
    let info = emu.info().clone();
    let body = acs_body(&info, &[json!({"to": "+14255550123"})], "x");
    let (status, _) = Signed::new(&info, "2021-03-07", &body).send(&info).await;
    assert_eq!(status, 429);
    assert!(outbox(&info, "sms").await.is_empty());
    emu.shutdown().await;
}

// ---- Teams Workflows ----

fn envelope(card: Value) -> Value {
    json!({"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}]})
}

fn card() -> Value {
    json!({"type": "AdaptiveCard", "version": "1.5",
           "body": [{"type": "TextBlock", "text": "Your password was reset, <at>Alice</at>.", "wrap": true}],
           "msteams": {"entities": [{"type": "mention", "text": "<at>Alice</at>",
               "mentioned": {"id": "alice@contoso.example", "name": "Alice"}}]}})
}

async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let r = http().post(url).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_workflow_checks_the_sig_and_records_failed_runs() {
    let emu = seeded("").await;
    let info = emu.info().clone();
    let url = info.channels.teams_workflow_url.clone();
    let sig = url.rsplit("sig=").next().unwrap().to_string();
    let wrong = url.replace(&sig, "AAAA");
    let (status, reply) = post_json(&wrong, &envelope(card())).await;
    assert_eq!(status, 401);
    assert_eq!(
        reply["error"]["code"],
        "DirectApiInvalidAuthorizationSignature"
    );
    let (status, reply) = post_json(url.split("&sig=").next().unwrap(), &envelope(card())).await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (401, json!("DirectApiAuthorizationRequired"))
    );
    assert!(outbox(&info, "teams").await.is_empty());

    let (status, _) = post_json(&url, &envelope(card())).await;
    assert_eq!(status, 202);
    // A card the schema refuses, and an envelope without attachments: still 202.
    let mut bad = card();
    bad["body"][0]["type"] = json!("NoSuchElement");
    let (status, _) = post_json(&url, &envelope(bad)).await;
    assert_eq!(status, 202, "card errors never surface in the reply");
    let (status, _) = post_json(&url, &json!({"type": "message"})).await;
    assert_eq!(status, 202);
    let runs = outbox(&info, "teams").await;
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["delivered"], true, "{:?}", runs[0]);
    assert_eq!(
        runs[0]["payload"]["attachments"][0]["content"]["msteams"]["entities"][0]["mentioned"]["id"],
        "alice@contoso.example"
    );
    assert_eq!(runs[1]["delivered"], false);
    assert!(
        runs[1]["error"]
            .as_str()
            .unwrap()
            .contains("attachments[0]"),
        "{:?}",
        runs[1]
    );
    assert_eq!(runs[2]["delivered"], false);
    assert!(
        runs[2]["error"].as_str().unwrap().contains("'foreach'"),
        "{:?}",
        runs[2]
    );
    emu.shutdown().await;

    let emu = seeded("teams_429=1").await;
    let info = emu.info().clone();
    let (status, _) = post_json(&info.channels.teams_workflow_url, &envelope(card())).await;
    assert_eq!(status, 429);
    assert!(outbox(&info, "teams").await.is_empty());
    emu.shutdown().await;
}

// ---- Generic webhook ----

async fn hook(info: &ConnectionInfo, ts: i64, secret: &str, body: &[u8]) -> u16 {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    http()
        .post(&info.channels.webhook.url)
        .header("content-type", "application/json")
        .header("X-Resetctl-Timestamp", ts.to_string())
        .header(
            "X-Resetctl-Signature",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_checks_signature_and_timestamp() {
    let emu = seeded("").await;
    let info = emu.info().clone();
    let secret = info.channels.webhook.secret.clone();
    let body = serde_json::to_vec(&json!({"type": "resetctl.message", "key": "run-1/soc",
        "template": "soc-summary", "subject": "Run finished", "text": "42 users reset", "data": {"n": 42}}))
    .unwrap();
    let now = jiff::Timestamp::now().as_second();
    assert_eq!(hook(&info, now, "not-the-secret", &body).await, 401);
    assert_eq!(
        hook(&info, now - 600, &secret, &body).await,
        401,
        "replayed later"
    );
    assert!(outbox(&info, "webhook").await.is_empty());
    assert_eq!(hook(&info, now, &secret, &body).await, 204);
    let got = outbox(&info, "webhook").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["payload"]["data"]["n"], 42);
    assert_eq!(got[0]["subject"], "Run finished");
    assert_eq!(got[0]["provider_id"], "run-1/soc");
    emu.shutdown().await;
}

// ---- MIME sendMail ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mime_sendmail_keeps_both_parts_and_refuses_bad_base64() {
    use lettre::message::{Mailbox, MultiPart};
    let emu = seeded("").await;
    let info = emu.info().clone();
    let client = http();
    let bearer = token(&client, &info, 0).await;
    let sender = info.channels.sender_mailbox.clone();
    let message = lettre::Message::builder()
        .from(sender.parse::<Mailbox>().unwrap())
        .to("Alice Jones <alice@contoso.example>"
            .parse::<Mailbox>()
            .unwrap())
        .subject("Passwort zurückgesetzt")
        .message_id(None)
        .multipart(MultiPart::alternative_plain_html(
            "Grüße — your password was reset.".to_string(),
            "<p>Gr&uuml;&szlig;e — your password was reset.</p>".to_string(),
        ))
        .unwrap();
    let raw = message.formatted();
    let url = format!("{}/users/{sender}/sendMail", info.graph_url);
    let send = |body: Vec<u8>| {
        client
            .post(&url)
            .bearer_auth(&bearer)
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    let r = send(B64.encode(&raw).into_bytes()).await.unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
    let mail = outbox(&info, "email").await;
    assert_eq!(mail.len(), 1);
    let m = &mail[0];
    assert_eq!(m["provider"], "graph_mime");
    assert_eq!(m["from"], sender.as_str());
    assert_eq!(m["to"], json!(["alice@contoso.example"]));
    assert_eq!(m["subject"], "Passwort zurückgesetzt");
    assert!(m["provider_id"].as_str().unwrap().starts_with('<'), "{m}");
    let parts = m["mime"]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{m}");
    assert_eq!(parts[0]["content_type"], "text/plain");
    assert_eq!(
        parts[0]["text"].as_str().unwrap().trim_end(),
        "Grüße — your password was reset."
    );
    assert_eq!(parts[1]["content_type"], "text/html");
    assert!(parts[1]["text"].as_str().unwrap().contains("<p>Gr&uuml;"));

    let r = send(b"this is not base64!".to_vec()).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ErrorMimeContentInvalidBase64String");
    assert_eq!(
        body["error"]["message"],
        "Invalid base64 string for MIME content."
    );
    // Base64 of something that is no message, and a message without recipients.
    let r = send(B64.encode(b"\r\njust a body").into_bytes())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ErrorMimeContentInvalid");
    let r = send(B64.encode(b"Subject: hi\r\n\r\nbody").into_bytes())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(outbox(&info, "email").await.len(), 1);
    emu.shutdown().await;
}

// ---- Seeded directory data ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_users_have_languages_and_phones_in_realistic_shapes() {
    let emu = start_emulator(EmulatorConfig::seeded(1000, 11)).await;
    let info = emu.info().clone();
    assert_eq!(info.users, 1001, "1,000 and the shared mailbox");
    let client = http();
    let bearer = token(&client, &info, 0).await;
    let mut users = Vec::new();
    let mut next = Some(format!(
        "{}/users?$select=userPrincipalName,preferredLanguage,mobilePhone,accountEnabled&$top=999",
        info.graph_url
    ));
    while let Some(url) = next {
        let page: Value = client
            .get(&url)
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        users.extend(page["value"].as_array().unwrap().iter().cloned());
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(users.len(), 1001);
    let count = |f: &dyn Fn(&Value) -> bool| users.iter().filter(|u| f(u)).count();
    let en = count(&|u| u["preferredLanguage"] == "en-US");
    let de = count(&|u| u["preferredLanguage"] == "de-DE");
    let none = count(&|u| u["preferredLanguage"].is_null());
    assert!(en > 700 && de > 60 && none > 40, "{en} {de} {none}");
    let phone = |u: &Value| u["mobilePhone"].as_str().unwrap_or("").to_string();
    assert!(
        count(&|u| phone(u).starts_with("+49 1")) > 30,
        "German numbers"
    );
    assert!(count(&|u| phone(u).starts_with('(')) > 30, "(425) 555-0100");
    assert!(
        count(&|u| phone(u).len() == 12 && phone(u).starts_with("+1")) > 30,
        "E.164"
    );
    assert!(
        count(
            &|u| !phone(u).is_empty() && phone(u).chars().filter(char::is_ascii_digit).count() < 7
        ) > 5,
        "n/a, ext 4411"
    );
    let missing = count(&|u| u["mobilePhone"].is_null());
    assert!(
        (25..=90).contains(&missing),
        "missing_mobile 5 %: {missing}"
    );
    let mailbox = users
        .iter()
        .find(|u| u["userPrincipalName"] == info.channels.sender_mailbox.as_str())
        .expect("the sender mailbox is a user");
    assert_eq!(
        mailbox["accountEnabled"], false,
        "a shared mailbox's account"
    );
    assert!(
        info.channels
            .sender_mailbox
            .starts_with("incident-noreply@")
    );
    emu.shutdown().await;
}

// ---- The channels' configuration ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_config_points_every_channel_at_the_emulator() {
    use resetctl::emulator::channels::{config_yaml, secret_env};
    let emu = seeded("").await;
    let info = emu.info().clone();
    let text = config_yaml(&info.channels, &info.verified_domain, "LAB");
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    let env: std::collections::HashMap<String, String> =
        secret_env(&info.channels, "LAB").into_iter().collect();
    for secret in env.values() {
        assert!(
            !text.contains(secret.as_str()),
            "no secret in the text:\n{text}"
        );
    }
    let c = &doc["channels"];
    assert_eq!(
        c["email"]["graph"]["mailboxes"],
        json!([info.channels.sender_mailbox])
    );
    let twilio = &c["sms"]["twilio"];
    assert_eq!(
        twilio["account_sid"],
        info.channels.twilio.account_sid.as_str()
    );
    assert_eq!(c["sms"]["acs"]["from"], info.channels.acs.from.as_str());
    assert_eq!(doc["organisation"]["name"], "Northwind Demo");
    for who in ["helpdesk", "soc", "manual_queue"] {
        let address = doc["audiences"][who]["email"][0].as_str().unwrap();
        assert!(address.ends_with("@northwind-demo.com"), "{who}: {address}");
    }
    // Following the text (and the variables it names) reaches every sink.
    let token = &env[twilio["auth_token_env"].as_str().unwrap()];
    let r = http()
        .post(format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            twilio["base_url"].as_str().unwrap(),
            twilio["account_sid"].as_str().unwrap()
        ))
        .basic_auth(twilio["account_sid"].as_str().unwrap(), Some(token))
        .form(&[
            ("To", "+14255550123"),
            ("From", twilio["from"].as_str().unwrap()),
            ("Body", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let teams = &env[c["teams"]["workflow"]["url_env"].as_str().unwrap()];
    assert_eq!(post_json(teams, &envelope(card())).await.0, 202);
    assert_eq!(c["webhook"]["url"], info.channels.webhook.url.as_str());
    assert_eq!(
        env[c["webhook"]["secret_env"].as_str().unwrap()],
        info.channels.webhook.secret
    );
    assert_eq!(
        env[c["sms"]["acs"]["access_key_env"].as_str().unwrap()],
        info.channels.acs.access_key
    );
    assert_eq!(
        c["sms"]["acs"]["endpoint"],
        info.channels.acs.endpoint.as_str()
    );
    // The connection info's Debug shows none of the sinks' secrets.
    let shown = format!("{info:?}");
    for secret in env.values() {
        assert!(!shown.contains(secret.as_str()), "{shown}");
    }
    emu.shutdown().await;
}
