//! A full run through the binary on an emulated tenant configured as a customer's (a client
//! secret, every channel, push, tickets, `serve:` with bearer and HMAC credentials, a trigger,
//! forwarding to a loopback SIEM): a playbook that needs an approval, is refused, approved and
//! executed (temporary passwords by SMS, Temporary Access Passes to the managers), a Path B
//! single-user reset approved from the manager's card through `resetctl serve`, a signed
//! trigger, then `resetctl audit forward`.
//!
//! Two checks over that flow: the trail holds a record of everything of consequence with the
//! fields that make it useful; and no secret used in it (client secret, channel keys,
//! passwords and passes as the sinks received them, approval tokens, HMAC keys, the bearer
//! token) appears in any output, record, forwarded record, report or the run store.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::triggers::{API_HMAC, BEARER, Served, Soc, TOKEN_KEY};
use crate::util::{code, stderr, stdout};

/// The forwarding webhook's HMAC key.
const FORWARD_HMAC: &str = "fwd-hmac-8e1c3a5b7d9f0e2c4a6b8d0f1e3c5a7b9d1f";

/// The users of the drill: the first of the shipped breach list.
const DRILL_USERS: usize = 4;

/// What the flow left behind, each under the name a failure reports.
struct Captured {
    /// `(where, text)`.
    haystacks: Vec<(String, String)>,
    /// `(what, secret)`.
    secrets: Vec<(String, String)>,
    /// The lab (its trail, its emulator).
    soc: Soc,
}

/// A loopback HTTP receiver for the forwarding webhook: every request's headers and body.
async fn siem() -> (String, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let into = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let into = Arc::clone(&into);
            async move {
                into.lock().unwrap().push(format!("{headers:?}\n{body}"));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Every row of every table of the run store, as text.
fn dump_store(path: &Path) -> String {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut text = String::new();
    for table in tables {
        let mut select = db.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = select.column_count();
        let mut rows = select.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            text.push_str(&table);
            for i in 0..columns {
                let cell = match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                    rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                    rusqlite::types::ValueRef::Real(x) => x.to_string(),
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                };
                text.push('\t');
                text.push_str(&cell);
            }
            text.push('\n');
        }
    }
    text
}

/// The token of every approval or deny link in `text`.
fn link_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for kind in ["/approve/", "/deny/"] {
        for (at, _) in text.match_indices(kind) {
            let rest = &text[at + kind.len()..];
            let path: String = rest
                .chars()
                .take_while(|c| !(c.is_whitespace() || "\"\\<>'".contains(*c)))
                .collect();
            if let Some((_, token)) = path.split_once('/')
                && token.len() >= 16
            {
                tokens.push(token.to_owned());
            }
        }
    }
    tokens
}

/// The password an SMS of `temporary-password-sms` carries: the word after `<upn>: `.
fn password_in(sms: &str, domain: &str) -> Option<String> {
    let marker = format!("{domain}: ");
    let (_, rest) = sms.split_once(marker.as_str())?;
    let word = rest.split_whitespace().next()?;
    (word.len() >= 12).then(|| word.to_owned())
}

fn keep(haystacks: &mut Vec<(String, String)>, name: &str, out: &Output) {
    haystacks.push((format!("{name}: stdout"), stdout(out)));
    haystacks.push((format!("{name}: stderr"), stderr(out)));
}

/// Path B through the server: the request (no device), the manager's card, the approve
/// button; `done` when the flow completes.
async fn path_b(soc: &Soc, served: &Served, users: &[&str]) -> String {
    let requester = soc.user("laura.collins@northwind-demo.com").await;
    // The next users of the breach list, until one has a manager to ask.
    let mut id = None;
    for line in include_str!("../playbooks/credential-dump.csv")
        .lines()
        .skip(1)
        .filter(|l| !users.iter().any(|u| l.starts_with(&format!("{u},"))))
        .take(10)
    {
        let upn = line.split(',').next().unwrap();
        let ask = json!({
            "tenant": "lab",
            "user": upn,
            "requester": {"id": requester["id"], "upn": requester["userPrincipalName"]},
            "requester_label": "service desk, ticket 4471",
            "origin": "portal",
            "reason": "locked out after a phone change",
            "device_available": false,
        });
        let made = served
            .post_bearer("/v1/requests", &serde_json::to_vec(&ask).unwrap(), BEARER)
            .await;
        let made: Value = made.json().await.unwrap();
        if made["state"] == "manager_card_sent" {
            id = made["id"].as_str().map(str::to_owned);
            break;
        }
    }
    let id = id.expect("a user of the list with a manager");
    let mut approve = None;
    for _ in 0..200 {
        let cards = soc.outbox("teams").await;
        if let Some(card) = cards
            .iter()
            .filter_map(|c| c["content"].as_str())
            .find(|c| c.contains(&format!("/approve/{id}/")))
        {
            let at = card.find(&format!("/approve/{id}/")).unwrap();
            let path: String = card[at..]
                .chars()
                .take_while(|c| !(c.is_whitespace() || "\"\\<>'".contains(*c)))
                .collect();
            approve = Some(path);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let approve = approve.expect("the manager's card with an approve link");
    let page = served
        .http
        .get(format!("{}{approve}", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = page.text().await.unwrap();
    let csrf = body
        .split_once("name=\"csrf\" value=\"")
        .map(|(_, rest)| rest.split('"').next().unwrap().to_owned())
        .unwrap();
    let done = served
        .http
        .post(format!("{}{approve}", served.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .header("origin", &served.base)
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    for _ in 0..400 {
        let shown = served.get(&format!("/v1/requests/{id}")).await;
        if shown["done"] == true {
            assert_eq!(shown["state"], "completed", "{shown}");
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("request {id} did not complete");
}

/// The flow, with every output and secret collected.
async fn full_flow() -> Captured {
    let (hook, forwarded) = siem().await;
    let dump = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/credential-dump.yaml");
    let soc = Soc::start(&format!(
        "triggers:\n  - {{ playbook: {}, tenant: lab, sources: [generic] }}\n\
         forward:\n  siem:\n    webhook: {{ url: \"{hook}\", secret_env: SOC_FORWARD_HMAC }}\n",
        dump.display()
    ))
    .await;
    let mut soc = soc;
    soc.env
        .push(("SOC_FORWARD_HMAC".into(), FORWARD_HMAC.into()));
    // Half with a mobile (a temporary password by SMS), half without (scrambled, and a TAP
    // sent to their manager).
    let (mut mobile, mut none) = (Vec::new(), Vec::new());
    for upn in include_str!("../playbooks/credential-dump.csv")
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
    {
        if upn.starts_with("bg-") {
            continue;
        }
        let has = !soc.user(upn).await["mobilePhone"].is_null();
        let side = if has { &mut mobile } else { &mut none };
        if side.len() < DRILL_USERS / 2 {
            side.push(upn);
        }
        if mobile.len() + none.len() == DRILL_USERS {
            break;
        }
    }
    let users: Vec<&str> = mobile.into_iter().chain(none).collect();
    assert_eq!(users.len(), DRILL_USERS);
    std::fs::write(
        soc.path("drill.csv"),
        format!("upn\n{}\n", users.join("\n")),
    )
    .unwrap();
    std::fs::write(
        soc.path("drill.yaml"),
        "name: drill
targets:
  - csv: { path: drill.csv, column: upn }
guards: { max_users: 50, max_fraction_of_tenant: 0.5, approvals_required: 1 }
steps:
  - reset_password: { mode: temporary, force_change: true, require_mfa: true }
    when: has_mobile
  - reset_password: { mode: scramble, force_change: true }
    when: not has_mobile
  - temporary_access_pass: { lifetime_minutes: 60 }
    when: not has_mobile
  - notify: { template: temporary-password-sms, channels: [sms] }
    when: has_mobile
  - notify: { template: tap-for-manager, channels: [sms], to: manager }
    when: not has_mobile
",
    )
    .unwrap();
    let mut haystacks = Vec::new();
    let drill = ["run", "drill.yaml", "--tenant", "lab", "--execute", "--yes"];

    // Refused: the approval is missing (a guard refusal in the trail).
    let refused = soc.run(&drill).await;
    assert_eq!(code(&refused), 3, "{}", stderr(&refused));
    keep(&mut haystacks, "run (refused)", &refused);
    let runs = soc.run(&["--output", "json", "runs", "list"]).await;
    let listed: Vec<Value> = serde_json::from_str(&stdout(&runs)).unwrap();
    let run = listed[0]["id"].as_str().unwrap().to_owned();
    let approved = soc.run(&["runs", "approve", &run, "--as", "alice"]).await;
    assert_eq!(code(&approved), 0, "{}", stderr(&approved));
    keep(&mut haystacks, "runs approve", &approved);
    let executed = soc.run(&drill).await;
    assert!(
        [0, 2].contains(&code(&executed)),
        "{}\n{}",
        stdout(&executed),
        stderr(&executed)
    );
    keep(&mut haystacks, "run (approved)", &executed);

    // The server: Path B from the manager's card, a signed trigger.
    let served = soc.serve();
    haystacks.push(("serve: stdout".into(), served.first_line.clone()));
    path_b(&soc, &served, &users).await;
    let incident = serde_json::to_vec(&json!({"incident_id": "INC-777", "kind": "credential_dump",
        "severity": "high", "title": "Stealer log", "users": [users[0]]}))
    .unwrap();
    let triggered = served
        .post_signed("/v1/triggers/generic", &incident, API_HMAC)
        .await;
    assert_eq!(triggered.status(), 201);
    haystacks.push(("trigger answer".into(), triggered.text().await.unwrap()));
    assert_eq!(served.stop().await, 0);
    haystacks.push((
        "serve: stderr".into(),
        std::fs::read_to_string(soc.path("serve.stderr")).unwrap(),
    ));

    // The SIEM gets the trail.
    let forward = soc.run(&["audit", "forward"]).await;
    assert_eq!(code(&forward), 0, "{}", stderr(&forward));
    keep(&mut haystacks, "audit forward", &forward);
    let shown = soc.run(&["--output", "json", "runs", "show", &run]).await;
    keep(&mut haystacks, "runs show", &shown);
    let sent = forwarded.lock().unwrap().clone();
    assert!(!sent.is_empty(), "nothing was forwarded");
    for (i, request) in sent.iter().enumerate() {
        haystacks.push((format!("forwarded request {i}"), request.clone()));
    }
    // Every file of the data directory (trail, head, reports, summaries, store), and the
    // store's rows as text.
    let data = soc.path("data");
    for file in walk(&data) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        haystacks.push((file.display().to_string(), text));
    }
    haystacks.push((
        "run store rows".into(),
        dump_store(&data.join("runs.sqlite")),
    ));
    for file in walk(soc.dir.path()) {
        if file
            .extension()
            .is_some_and(|e| e == "md" || e == "csv" || e == "json" || e == "html")
            && !file.starts_with(&data)
        {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            haystacks.push((file.display().to_string(), text));
        }
    }

    // The secrets: configured, generated, minted.
    let mut secrets: Vec<(String, String)> = soc
        .env
        .iter()
        .map(|(name, value)| (format!("${name}"), value.clone()))
        .collect();
    secrets.push(("the API bearer token".into(), BEARER.into()));
    secrets.push(("the API HMAC key".into(), API_HMAC.into()));
    secrets.push(("the token signing key".into(), TOKEN_KEY.into()));
    let domain = soc.emulator.info().verified_domain.clone();
    let mut passwords = 0;
    let mut all_messages = String::new();
    for channel in ["sms", "teams", "email", "webhook"] {
        for message in soc.outbox(channel).await {
            let content = message.to_string();
            if let Some(pw) = message["content"]
                .as_str()
                .and_then(|c| password_in(c, &domain))
            {
                passwords += 1;
                secrets.push((format!("a temporary password sent over {channel}"), pw));
            }
            all_messages.push_str(&content);
        }
    }
    let mut taps = 0;
    for upn in &users {
        if let Some(pass) =
            soc.user(upn).await["temporaryAccessPass"]["temporaryAccessPass"].as_str()
        {
            taps += 1;
            secrets.push((format!("the TAP of {upn}"), pass.to_owned()));
        }
    }
    let tokens = link_tokens(&all_messages);
    for token in &tokens {
        secrets.push(("an approval link's token".into(), token.clone()));
        // The part before the signature is as secret as the whole.
        if let Some((random, _)) = token.split_once('.') {
            secrets.push(("an approval token's random part".into(), random.to_owned()));
        }
    }
    assert!(
        passwords >= 1,
        "no temporary password reached an SMS: {all_messages}"
    );
    assert!(taps >= 1, "no TAP was issued");
    assert!(!tokens.is_empty(), "no approval link: {all_messages}");
    Captured {
        haystacks,
        secrets,
        soc,
    }
}

/// The search: every secret against every haystack; a finding names both.
fn leaks(captured: &Captured) -> Vec<String> {
    let mut found = Vec::new();
    for (what, secret) in &captured.secrets {
        assert!(secret.len() >= 8, "{what} is too short to search for");
        for (place, text) in &captured.haystacks {
            if text.contains(secret.as_str()) {
                found.push(format!("{what} is in {place}"));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_a_full_run_is_in_any_output_record_report_or_store() {
    let captured = full_flow().await;
    assert!(captured.haystacks.len() > 20, "too little captured");
    assert!(
        captured.secrets.len() > 12,
        "too few secrets: {}",
        captured.secrets.len()
    );
    let found = leaks(&captured);
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    // The search finds what is there: a haystack holding one of them is caught.
    let planted = Captured {
        haystacks: vec![("planted".into(), format!("x{}y", captured.secrets[0].1))],
        secrets: captured.secrets.clone(),
        soc: captured.soc,
    };
    assert_eq!(leaks(&planted), ["$LAB_SECRET is in planted"]);
}

/// Everything of consequence is a record with the fields that make it useful: the plan, the
/// guard refusal, the approval, the preflight, each Graph write and its outcome, each
/// message (recipient masked), each verification transition (channel, approver's address,
/// token id), the trigger's intake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_records_everything_of_consequence() {
    let captured = full_flow().await;
    let soc = &captured.soc;
    let verify = soc.run(&["audit", "verify"]).await;
    assert_eq!(code(&verify), 0, "{}", stderr(&verify));
    let one = |action: &str, fields: &[&str]| -> Vec<Value> {
        let records = soc.records(action);
        assert!(!records.is_empty(), "no {action} record");
        for r in &records {
            for field in fields {
                assert!(
                    !r["details"][*field].is_null(),
                    "{action} without {field}: {r}"
                );
            }
        }
        records
    };
    one(
        "run.plan",
        &["plan_hash", "playbook", "tenant", "users", "origin"],
    );
    let refused = one("run.refused", &["reasons", "plan_hash"]);
    assert!(
        refused[0]["details"]["reasons"]
            .as_str()
            .unwrap()
            .contains("approval")
    );
    let approvals = one("run.approve", &["plan_hash"]);
    assert_eq!(approvals[0]["actor"], "alice");
    one("run.preflight", &["checks"]);
    one("run.execute", &["plan_hash", "users"]);
    one("run.end", &["succeeded", "failed", "not_started"]);
    // Every write, with its outcome, per user.
    let automated = soc.records("run.plan")[0]["details"]["automated"]
        .as_u64()
        .unwrap();
    assert!(automated > 0);
    let resets = one("user.reset_password", &["run", "step", "user_id", "result"]);
    assert_eq!(resets.len() as u64, automated, "{resets:?}");
    one(
        "user.temporary_access_pass",
        &["run", "step", "user_id", "result"],
    );
    // Every message, the recipient masked.
    let messages = one(
        "message.sent",
        &["run", "channel", "to", "template", "confidential"],
    );
    let sms_sent = soc.outbox("sms").await;
    for m in &messages {
        let to = m["details"]["to"].as_str().unwrap();
        assert!(
            to.contains('*') || to.contains('…'),
            "unmasked recipient: {m}"
        );
        for sms in &sms_sent {
            let number = sms["to"].as_str().unwrap_or_default();
            assert!(number.is_empty() || !to.contains(number), "unmasked: {m}");
        }
    }
    assert!(
        messages
            .iter()
            .any(|m| m["details"]["template"] == "tap-for-manager")
    );
    // The verification: each transition, the approval with the approver's address and the
    // token's id, the reset's outcome.
    let transitions = one("verify.transition", &["request", "event", "from", "to"]);
    let verified = transitions
        .iter()
        .find(|t| t["details"]["to"] == "verified")
        .expect("a transition to verified");
    assert_eq!(verified["details"]["channel"], "teams", "{verified}");
    assert_eq!(verified["details"]["approver_ip"], "127.0.0.1");
    assert_eq!(
        verified["details"]["approval_id"].as_str().unwrap().len(),
        64
    );
    assert!(
        transitions
            .iter()
            .any(|t| t["details"]["to"] == "completed")
    );
    // The trigger's intake.
    let received = one(
        "trigger.received",
        &["source", "incident", "accounts", "run", "execute"],
    );
    assert_eq!(received[0]["details"]["incident"], "INC-777");
}
