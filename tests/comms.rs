//! The channels over their real wire protocols, against small servers on 127.0.0.1: Twilio's
//! form post and error codes, ACS's signed JSON and per-recipient results, the Teams
//! Workflows envelope, the signed webhook, and SMTP delivery to a real SMTP server
//! (Python's aiosmtpd).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use resetctl::comms::channels::{self, ChannelContext, ChannelSet};
use resetctl::comms::pace::{PaceOptions, Paced};
use resetctl::comms::{Address, ChannelErrorKind, Content, Outbound};
use resetctl::config::{Config, Env};
use resetctl::playbook::Channel as Kind;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One request a test server saw.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
    fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded_pairs(&self.body)
    }
}

/// `application/x-www-form-urlencoded` pairs, decoded.
fn serde_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(body)))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// What a test server answers: status, headers, body, and a delay before it.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
}

/// A server on 127.0.0.1 answering each request with `handler(request, index)`.
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn server(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Server {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let handler = Arc::new(handler);
    let s = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (seen, handler) = (s.clone(), handler.clone());
            async move {
                let req = Seen {
                    method: method.to_string(),
                    path_and_query: uri
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    headers,
                    body,
                };
                let reply = {
                    let mut all = seen.lock().unwrap();
                    let r = handler(&req, all.len());
                    all.push(req);
                    r
                };
                tokio::time::sleep(reply.delay).await;
                let mut resp = Response::builder().status(reply.status);
                for (k, v) in &reply.headers {
                    resp = resp.header(*k, v);
                }
                resp.body(axum::body::Body::from(reply.body)).unwrap()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    Server {
        base: format!("http://{addr}"),
        seen,
    }
}

/// Channels built from a `channels:` section (YAML) with these environment variables.
fn build(yaml: &str, env: &[(&str, &str)]) -> ChannelSet {
    build_with(yaml, env, channels::http_client().unwrap())
}

fn build_with(yaml: &str, env: &[(&str, &str)], http: reqwest::Client) -> ChannelSet {
    let env = Env::from_pairs(env.iter().copied());
    let config = Config::parse(yaml, Some(Path::new("resetctl.yaml")), &env)
        .unwrap_or_else(|e| panic!("{e}"));
    channels::build(
        &config.channels,
        &ChannelContext {
            http,
            env,
            directory: None,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn sms(to: &str, text: &str) -> Outbound {
    Outbound {
        key: uuid::Uuid::new_v4(),
        first_sent: "2024-03-26T16:06:51Z".parse().unwrap(),
        to: Address::Phone(to.into()),
        content: Content::Sms { text: text.into() },
        carries_secret: true,
    }
}

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio-token-do-not-print";

fn twilio_yaml(base: &str) -> String {
    format!(
        "channels:\n  sms:\n    twilio:\n      base_url: {base}\n      account_sid: {ACCOUNT}\n      \
         auth_token_env: TWILIO_TOKEN\n      from: \"+14155550100\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_throttled_then_created_goes_out_once_with_its_sid() {
    let twilio = server(|_, n| {
        if n == 0 {
            let mut r = Reply::json(
                429,
                json!({"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}),
            );
            r.headers.push(("retry-after", "1".into()));
            r
        } else {
            Reply::json(
                201,
                json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "num_segments": "1"}),
            )
        }
    })
    .await;
    let set = build(
        &twilio_yaml(&twilio.base),
        &[("TWILIO_TOKEN", TWILIO_TOKEN)],
    );
    let channel = set.for_kind(Kind::Sms).remove(0);
    assert_eq!(channel.name(), "sms/twilio");
    let paced = Paced::new(
        channel,
        PaceOptions {
            time_scale: 10.0,
            ..PaceOptions::default()
        },
    );
    let delivered = paced
        .send(&sms("+447700900123", "Your password was reset."))
        .await
        .unwrap();
    assert_eq!(
        delivered.receipt.provider_id.as_deref(),
        Some("SM0123456789abcdef0123456789abcdef")
    );
    assert_eq!(delivered.attempts, 2);
    let seen = twilio.requests();
    assert_eq!(seen.len(), 2, "refused once, sent once");
    let req = &seen[1];
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.path_and_query,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
    assert_eq!(
        req.header("authorization"),
        format!(
            "Basic {}",
            STANDARD.encode(format!("{ACCOUNT}:{TWILIO_TOKEN}"))
        )
    );
    assert_eq!(
        req.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let form = req.form();
    assert!(
        form.contains(&("To".into(), "+447700900123".into())),
        "{form:?}"
    );
    assert!(
        form.contains(&("From".into(), "+14155550100".into())),
        "{form:?}"
    );
    assert!(form.contains(&("Body".into(), "Your password was reset.".into())));
    let stats = paced.stats();
    assert_eq!((stats.sent, stats.throttled, stats.retries), (1, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_invalid_number_is_rejected_and_not_retried() {
    let twilio = server(|_, _| {
        Reply::json(
            400,
            json!({"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}),
        )
    })
    .await;
    let set = build(
        &twilio_yaml(&twilio.base),
        &[("TWILIO_TOKEN", TWILIO_TOKEN)],
    );
    let paced = Paced::new(set.for_kind(Kind::Sms).remove(0), PaceOptions::default());
    let err = paced.send(&sms("+15005550001", "hello")).await.unwrap_err();
    assert_eq!(err.kind, ChannelErrorKind::Rejected);
    assert_eq!(err.status, Some(400));
    assert_eq!(err.code.as_deref(), Some("21211"));
    assert!(!err.to_string().contains("+15005550001"), "masked: {err}");
    assert!(!err.to_string().contains(TWILIO_TOKEN));
    assert_eq!(twilio.requests().len(), 1, "never sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_refused_credentials_stop_the_channel() {
    let twilio = server(|_, _| {
        Reply::json(
            401,
            json!({"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}),
        )
    })
    .await;
    let set = build(
        &twilio_yaml(&twilio.base),
        &[("TWILIO_TOKEN", TWILIO_TOKEN)],
    );
    let paced = Paced::new(set.for_kind(Kind::Sms).remove(0), PaceOptions::default());
    for _ in 0..3 {
        let err = paced.send(&sms("+447700900123", "x")).await.unwrap_err();
        assert_eq!(err.kind, ChannelErrorKind::Denied);
    }
    assert_eq!(twilio.requests().len(), 1);
}

const ACS_KEY: &str = "c2VjcmV0LWFjcy1hY2Nlc3Mta2V5LWZvci10ZXN0cw==";

fn acs_yaml(base: &str) -> String {
    format!(
        "channels:\n  sms:\n    acs:\n      endpoint: {base}\n      access_key_env: ACS_KEY\n      \
         from: \"+18005550100\"\n"
    )
}

/// What an ACS server checks: the content hash and the HMAC over
/// `POST\n{path_and_query}\n{date};{host};{hash}` with the decoded key.
fn acs_signature_ok(req: &Seen) -> bool {
    let hash = STANDARD.encode(Sha256::digest(&req.body));
    if req.header("x-ms-content-sha256") != hash {
        return false;
    }
    let text = format!(
        "POST\n{}\n{};{};{}",
        req.path_and_query,
        req.header("x-ms-date"),
        req.header("host"),
        hash
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&STANDARD.decode(ACS_KEY).unwrap()).unwrap();
    mac.update(text.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    req.header("authorization")
        == format!(
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acs_signs_each_request_and_reads_per_recipient_results() {
    let acs = server(|req, _| {
        if !acs_signature_ok(req) {
            return Reply::json(401, json!({"error": {"code": "Denied", "message": "bad signature"}}));
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let to = body["smsRecipients"][0]["to"].as_str().unwrap().to_owned();
        if to == "+15005550001" {
            Reply::json(
                202,
                json!({"value": [{"to": to, "httpStatusCode": 400, "errorMessage": "Invalid To phone number format.", "successful": false}]}),
            )
        } else {
            Reply::json(
                202,
                json!({"value": [{"to": to, "messageId": "Outgoing_20240326_abc", "httpStatusCode": 202, "repeatabilityResult": "accepted", "successful": true}]}),
            )
        }
    })
    .await;
    let set = build(&acs_yaml(&acs.base), &[("ACS_KEY", ACS_KEY)]);
    let channel = set.for_kind(Kind::Sms).remove(0);
    assert_eq!(channel.name(), "sms/acs");
    assert!(channel.traits().idempotent);
    let paced = Paced::new(channel, PaceOptions::default());
    let message = sms("+447700900123", "Code: 1234");
    let ok = paced.send(&message).await.unwrap();
    assert_eq!(
        ok.receipt.provider_id.as_deref(),
        Some("Outgoing_20240326_abc")
    );
    let refused = paced.send(&sms("+15005550001", "x")).await.unwrap_err();
    assert_eq!(refused.kind, ChannelErrorKind::Rejected);
    assert_eq!(refused.status, Some(400));
    assert!(
        refused.message.contains("Invalid To phone number"),
        "{refused}"
    );

    let seen = acs.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(acs_signature_ok));
    assert_eq!(seen[0].path_and_query, "/sms?api-version=2021-03-07");
    // The host that was signed includes the test server's port.
    assert!(seen[0].header("host").starts_with("127.0.0.1:"));
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "from": "+18005550100",
            "smsRecipients": [{
                "to": "+447700900123",
                "repeatabilityRequestId": message.key.to_string(),
                "repeatabilityFirstSent": "Tue, 26 Mar 2024 16:06:51 GMT",
            }],
            "message": "Code: 1234",
            "smsSendOptions": {"enableDeliveryReport": false},
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acs_is_sent_again_after_a_lost_answer_with_the_same_repeatability_id() {
    // The first request gets no answer within the client's timeout: the outcome is unknown,
    // and ACS's repeatability makes sending it again safe.
    let acs = server(|req, n| {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let mut reply = Reply::json(
            202,
            json!({"value": [{"to": body["smsRecipients"][0]["to"], "messageId": "Outgoing_1", "httpStatusCode": 202, "successful": true}]}),
        );
        if n == 0 {
            reply.delay = Duration::from_secs(3);
        }
        reply
    })
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let set = build_with(&acs_yaml(&acs.base), &[("ACS_KEY", ACS_KEY)], http);
    let paced = Paced::new(
        set.for_kind(Kind::Sms).remove(0),
        PaceOptions {
            time_scale: 100.0,
            ..PaceOptions::default()
        },
    );
    let delivered = paced.send(&sms("+447700900123", "x")).await.unwrap();
    assert_eq!(delivered.attempts, 2);
    let seen = acs.requests();
    assert_eq!(seen.len(), 2);
    let id = |s: &Seen| {
        let body: Value = serde_json::from_slice(&s.body).unwrap();
        body["smsRecipients"][0]["repeatabilityRequestId"].clone()
    };
    assert_eq!(id(&seen[0]), id(&seen[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_twilio_answer_is_not_sent_again() {
    let twilio = server(|_, _| {
        let mut r = Reply::json(201, json!({"sid": "SM1"}));
        r.delay = Duration::from_secs(3);
        r
    })
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let set = build_with(
        &twilio_yaml(&twilio.base),
        &[("TWILIO_TOKEN", TWILIO_TOKEN)],
        http,
    );
    let paced = Paced::new(set.for_kind(Kind::Sms).remove(0), PaceOptions::default());
    let err = paced.send(&sms("+447700900123", "x")).await.unwrap_err();
    assert_eq!(err.kind, ChannelErrorKind::OutcomeUnknown);
    assert_eq!(twilio.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_workflow_posts_the_envelope_and_hides_its_url() {
    let teams = server(|req, _| {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        if body["attachments"][0]["content"]["type"] == "AdaptiveCard" {
            Reply::json(202, Value::Null)
        } else {
            Reply::json(400, Value::Null)
        }
    })
    .await;
    let url = format!(
        "{}/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=TOPSECRETSIG",
        teams.base
    );
    let yaml = "channels:\n  teams:\n    workflow:\n      url_env: TEAMS_URL\n";
    let set = build(yaml, &[("TEAMS_URL", url.as_str())]);
    assert!(!format!("{set:?}").contains("TOPSECRETSIG"));
    let channel = set.for_kind(Kind::Teams).remove(0);
    let card = json!({"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "<at>Alice</at>, your password was reset"}],
        "msteams": {"entities": [{"type": "mention", "text": "<at>Alice</at>", "mentioned": {"id": "alice@contoso.com", "name": "Alice"}}]}});
    let message = Outbound {
        key: uuid::Uuid::new_v4(),
        first_sent: jiff::Timestamp::now(),
        to: Address::Teams {
            mention: Some(("alice@contoso.com".into(), "Alice".into())),
        },
        content: Content::Card {
            card: card.clone(),
            summary: "Your password was reset".into(),
        },
        carries_secret: false,
    };
    channel.send(&message).await.unwrap();
    let seen = teams.requests();
    assert_eq!(
        serde_json::from_slice::<Value>(&seen[0].body).unwrap(),
        json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}]})
    );
    assert!(seen[0].path_and_query.contains("sig=TOPSECRETSIG"));
    // Wrong content is refused before anything is sent; a refusal names only the host.
    let mut sms_content = message.clone();
    sms_content.content = Content::Sms { text: "x".into() };
    let err = channel.send(&sms_content).await.unwrap_err();
    assert_eq!(err.kind, ChannelErrorKind::Rejected);
    assert_eq!(teams.requests().len(), 1);
    let mut bad = message.clone();
    bad.content = Content::Card {
        card: json!({"type": "NotACard"}),
        summary: String::new(),
    };
    let err = channel.send(&bad).await.unwrap_err();
    assert_eq!(err.kind, ChannelErrorKind::Rejected);
    assert!(!err.to_string().contains("TOPSECRETSIG"), "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_is_signed_over_timestamp_and_body() {
    let hook = server(|_, _| Reply::json(204, Value::Null)).await;
    let yaml = format!(
        "channels:\n  webhook:\n    url: {}/hooks/resetctl\n    secret_env: HOOK_SECRET\n",
        hook.base
    );
    let set = build(&yaml, &[("HOOK_SECRET", "whsec-test")]);
    let channel = set.for_kind(Kind::Webhook).remove(0);
    let document = json!({"type": "resetctl.message", "key": "k", "template": "run-finished", "subject": "Run finished", "text": "done", "data": {"users": 3}});
    let message = Outbound {
        key: uuid::Uuid::new_v4(),
        first_sent: jiff::Timestamp::now(),
        to: Address::Webhook,
        content: Content::Json(document.clone()),
        carries_secret: false,
    };
    channel.send(&message).await.unwrap();
    let seen = &hook.requests()[0];
    assert_eq!(seen.path_and_query, "/hooks/resetctl");
    assert_eq!(seen.header("content-type"), "application/json");
    let timestamp: i64 = seen.header("x-resetctl-timestamp").parse().unwrap();
    assert!((jiff::Timestamp::now().as_second() - timestamp).abs() < 60);
    let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec-test").unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&seen.body);
    assert_eq!(
        seen.header("x-resetctl-signature"),
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&seen.body).unwrap(),
        document
    );
}

/// A Python with aiosmtpd: `RESETCTL_TEST_PYTHON`, the venv `.ci/python-deps` makes under
/// `target/`, or `python3`.
fn python_with_aiosmtpd() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("RESETCTL_TEST_PYTHON").map(PathBuf::from),
        Some(root.join("target/pyenv/bin/python3")),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|python| {
        Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The SMTP server of the test, stopped when dropped.
struct SmtpServer(Child);

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_delivers_one_alternative_message_to_a_real_server() {
    let Some(python) = python_with_aiosmtpd() else {
        panic!(
            "this test needs Python's aiosmtpd (a real SMTP server): run `.ci/python-deps` \
             (it installs it into target/pyenv), or set RESETCTL_TEST_PYTHON to a Python that \
             has it"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_sink.py");
    let _server = SmtpServer(
        Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Ready when it listens.
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the SMTP server did not start");
    let yaml = format!(
        "channels:\n  email:\n    smtp:\n      host: 127.0.0.1\n      port: {port}\n      \
         tls: none\n      username: resetctl\n      password_env: SMTP_PASSWORD\n      \
         from: \"Contoso Sécurité <security@contoso.com>\"\n"
    );
    let set = build(&yaml, &[("SMTP_PASSWORD", "smtp-pass-do-not-print")]);
    let channel = set.for_kind(Kind::Email).remove(0);
    assert_eq!(channel.name(), "email/smtp");
    assert!(!channel.traits().in_tenant);
    let message = Outbound {
        key: uuid::Uuid::new_v4(),
        first_sent: jiff::Timestamp::now(),
        to: Address::Email("zhang.wei@contoso.com".into()),
        content: Content::Email {
            subject: "张伟, your password was reset".into(),
            html: "<p>Hello 张伟 — <b>action needed</b></p>".into(),
            text: "Hello 张伟 — action needed".into(),
        },
        carries_secret: false,
    };
    channel.send(&message).await.unwrap();

    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("0.json")).expect("the server saved a message"),
    )
    .unwrap();
    assert_eq!(saved["auth"], json!(["resetctl", "smtp-pass-do-not-print"]));
    assert_eq!(saved["mail_from"], "security@contoso.com");
    assert_eq!(saved["rcpt_tos"], json!(["zhang.wei@contoso.com"]));
    let headers = &saved["headers"];
    assert_eq!(headers["From"], "Contoso Sécurité <security@contoso.com>");
    assert_eq!(headers["To"], "zhang.wei@contoso.com");
    assert_eq!(headers["Subject"], "张伟, your password was reset");
    assert_eq!(
        headers["Message-ID"],
        format!("<{}@contoso.com>", message.key)
    );
    assert_eq!(headers["X-Resetctl-Key"], message.key.to_string());
    assert!(headers["Date"].as_str().is_some_and(|d| d.len() > 20));
    assert_eq!(saved["content_type"], "multipart/alternative");
    assert_eq!(
        saved["parts"],
        json!([
            {"content_type": "text/plain", "charset": "utf-8", "text": "Hello 张伟 — action needed"},
            {"content_type": "text/html", "charset": "utf-8", "text": "<p>Hello 张伟 — <b>action needed</b></p>"},
        ])
    );

    // A refused recipient (550) is rejected; refused credentials (535) are denied.
    let mut refused = message.clone();
    refused.to = Address::Email("reject@contoso.com".into());
    let err = channel.send(&refused).await.unwrap_err();
    assert_eq!(
        (err.kind, err.status),
        (ChannelErrorKind::Rejected, Some(550))
    );
    let wrong = build(&yaml, &[("SMTP_PASSWORD", "wrong")]);
    let err = wrong.for_kind(Kind::Email)[0]
        .send(&message)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.status),
        (ChannelErrorKind::Denied, Some(535))
    );
    assert!(!err.to_string().contains("wrong"), "{err}");
}

#[tokio::test]
async fn channels_are_ordered_by_preference_and_secrets_stay_out_of_debug() {
    let yaml = "channels:\n  email:\n    smtp:\n      host: smtp.relay.example\n      \
                username: resetctl\n      password_env: SMTP_PASSWORD\n      from: \
                security@contoso.com\n  sms:\n    twilio:\n      account_sid: \
                AC0123456789abcdef0123456789abcdef\n      auth_token_env: TWILIO_TOKEN\n      \
                from: \"+14155550100\"\n    acs:\n      endpoint: https://contoso.communication.azure.com\n      \
                access_key_env: ACS_KEY\n      from: \"+18005550100\"\n";
    let env = [
        ("SMTP_PASSWORD", "smtp-pass-do-not-print"),
        ("TWILIO_TOKEN", TWILIO_TOKEN),
        ("ACS_KEY", ACS_KEY),
    ];
    let set = build(yaml, &env);
    let names: Vec<&str> = set.all().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["email/smtp", "sms/acs", "sms/twilio"]);
    assert_eq!(set.for_kind(Kind::Sms)[0].name(), "sms/acs");
    assert!(set.for_kind(Kind::Teams).is_empty());
    assert_eq!(channels::config_key(Kind::Teams), "channels.teams.workflow");
    assert_eq!(channels::config_key(Kind::Sms), "channels.sms");
    let env = Env::from_pairs(env);
    let config = Config::parse(yaml, None, &env).unwrap();
    let shown = format!("{set:?} {config:?}");
    for (_, secret) in [
        ("", "smtp-pass-do-not-print"),
        ("", TWILIO_TOKEN),
        ("", ACS_KEY),
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
    // A variable that is not set fails when the channel is built, naming the key.
    let err = channels::build(
        &config.channels,
        &ChannelContext {
            http: channels::http_client().unwrap(),
            env: Env::from_pairs([("SMTP_PASSWORD", "x"), ("ACS_KEY", ACS_KEY)]),
            directory: None,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("channels.sms.twilio.auth_token"),
        "{err}"
    );
}
