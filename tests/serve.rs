//! The approval server (`resetctl::serve`) over real HTTP on 127.0.0.1, against the emulated
//! tenant: the manager's card and SMS links as a browser uses them (GET, then the form's
//! POST with its CSRF pair), every refusal as a page and an audit record, the request API's
//! authentication, limits, a restart in the middle of Path B, TLS, and a real headless
//! Chromium clicking the button.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use resetctl::audit::{AuditConfig, AuditHandle};
use resetctl::comms::channels::{self, ChannelContext};
use resetctl::comms::template::{Catalog, sample_organisation};
use resetctl::config::{Config, Env};
use resetctl::directory::Directory;
use resetctl::emulator::sinks::push::{Script, scripted};
use resetctl::emulator::{ConnectionInfo, RunningEmulator};
use resetctl::providers::push::duo::{Digest, DuoPush, DuoSettings};
use resetctl::serve::auth::sign;
use resetctl::serve::{
    ApiCredentials, BearerHash, HmacKey, ServeContext, ServeError, ServeOptions, Server, TlsFiles,
};
use resetctl::store::SqliteStore;
use resetctl::verify::clock::{Clock, ManualClock};
use resetctl::verify::facts::{LiveFacts, NoRuns};
use resetctl::verify::runtime::{AuditTicketSink, Parts, Runtime};
use resetctl::verify::store::RequestStore;
use resetctl::verify::token::{Decision, TokenKey, TokenMinter, Tokens};
use resetctl::verify::{Person, Policy, State, Via};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::browser::chromium;
use crate::util::{TenantConfig, http, inspect, start_emulator, tenant_file_config};

/// `/readyz`, `/metrics`, the access log and the rate limits, on this module's lab.
mod observe;

/// Oversized bodies and connection caps at the socket.
mod hardening;

const SEED: u64 = 23;
const MANAGER_MOBILE: &str = "+14255550199";
const BEARER: &str = "api-token-for-the-portal-0001";
const HMAC_KEY: [u8; 32] = [0x42; 32];
const BROWSER: &str = "Mozilla/5.0 (resetctl test browser)";

/// The first `user<n>@contoso.example` whose push the emulator answers with `script`.
fn upn_scripted(script: Script) -> String {
    (0..1000)
        .map(|n| format!("user{n}@contoso.example"))
        .find(|upn| scripted(SEED, upn) == script)
        .unwrap()
}

/// `n` users who approve their push, other than [`upn_scripted`]'s.
fn approvers(n: usize) -> Vec<String> {
    let first = upn_scripted(Script::Approve);
    (0..100_000)
        .map(|i| format!("user{i}@contoso.example"))
        .filter(|upn| *upn != first && scripted(SEED, upn) == Script::Approve)
        .take(n)
        .collect()
}

/// The emulated tenant, the trail, the clock and the SQLite store a server runs on.
struct Lab {
    emu: RunningEmulator,
    _dir: tempfile::TempDir,
    root: PathBuf,
    directory: Arc<dyn Directory>,
    clock: Arc<ManualClock>,
    audit: AuditHandle,
    store_path: PathBuf,
}

impl Lab {
    async fn new() -> Lab {
        Lab::with_approvers(0).await
    }

    /// A lab whose tenant also has `extra` users who approve their push.
    async fn with_approvers(extra: usize) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let mut users = String::from(
            "verified_domain: contoso.example\nusers:\n  \
             - { upn: mara@contoso.example, display_name: Mara Manager, mobile_phone: \"+1 425 555 0199\" }\n  \
             - { upn: desk@contoso.example, display_name: Desk Agent }\n",
        );
        for (i, script) in [Script::Approve, Script::Deny, Script::Timeout]
            .into_iter()
            .enumerate()
        {
            users.push_str(&format!(
                "  - {{ upn: {}, display_name: User {i}, mobile_phone: \"+1 425 555 011{i}\", \
                 manager: mara@contoso.example, methods: [authenticator] }}\n",
                upn_scripted(script)
            ));
        }
        for upn in approvers(extra) {
            users.push_str(&format!(
                "  - {{ upn: {upn}, display_name: {upn}, manager: mara@contoso.example, \
                 methods: [authenticator] }}\n"
            ));
        }
        let mut config = tenant_file_config(dir.path(), &users);
        config.seed = SEED;
        config.time_scale = 600.0;
        let emu = start_emulator(config).await;
        let info = emu.info().clone();
        let tenant =
            TenantConfig::emulator("contoso", &info, 600.0).secret_app(&info, 0, "APP_SECRET");
        let directory: Arc<dyn Directory> = Arc::new(tenant.directory());
        let root = dir.path().to_path_buf();
        let audit = AuditHandle::open(&AuditConfig::new(root.join("audit.jsonl")))
            .await
            .unwrap();
        Lab {
            emu,
            store_path: root.join("runs.sqlite"),
            _dir: dir,
            root,
            directory,
            clock: Arc::new(ManualClock::new(
                Timestamp::from_second(1_800_000_000).unwrap(),
            )),
            audit,
        }
    }

    fn info(&self) -> &ConnectionInfo {
        self.emu.info()
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(SignedDuration::from_secs(secs));
    }

    async fn outbox(&self, channel: &str) -> Vec<Value> {
        inspect(self.info(), &format!("outbox?channel={channel}")).await["messages"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn texts_to(&self, number: &str) -> Vec<Value> {
        self.outbox("sms")
            .await
            .into_iter()
            .filter(|m| m["to"].as_array().unwrap().iter().any(|t| t == number))
            .collect()
    }

    async fn resets_of(&self, id: &str) -> usize {
        inspect(self.info(), "writes").await["writes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["method"] == "PATCH" && w["target"] == id && w["applied"] == true)
            .count()
    }

    fn trail_text(&self) -> String {
        std::fs::read_to_string(self.root.join("audit.jsonl")).unwrap_or_default()
    }

    fn trail(&self, action: &str) -> Vec<Value> {
        self.trail_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["action"] == action)
            .collect()
    }

    async fn user_id(&self, upn: &str) -> String {
        self.directory.get_user(upn).await.unwrap().unwrap().id
    }

    fn runtime(&self, store: Arc<SqliteStore>, tokens: &Tokens, base: &str) -> Runtime {
        let info = self.info();
        let push = DuoPush::new(
            DuoSettings {
                base_url: info.channels.push.duo_base_url.clone(),
                integration_key: info.channels.push.duo_integration_key.clone(),
                secret_key: SecretString::from(info.channels.push.duo_secret_key.clone()),
                digest: Digest::Sha1,
                push_type: "Password reset".into(),
            },
            http(),
        )
        .unwrap();
        Runtime::new(Parts {
            tenant: "contoso".into(),
            policy: Policy::default(),
            clock: self.clock.clone(),
            store,
            push: Arc::new(push),
            push_poll: Duration::from_millis(20),
            channels: senders(info),
            catalog: Arc::new(Catalog::embedded()),
            organisation: sample_organisation(),
            service_desk: None,
            directory: self.directory.clone(),
            facts: Arc::new(LiveFacts::new(
                "contoso",
                self.directory.clone(),
                Arc::new(NoRuns),
                &[],
            )),
            audit: self.audit.clone(),
            links: Arc::new(TokenMinter::new(tokens.clone(), base)),
            tickets: Arc::new(AuditTicketSink::new(self.audit.clone())),
        })
    }

    /// A server on a fresh loopback port over this lab's store.
    async fn serve(&self) -> Served {
        self.serve_with(|_| {}).await
    }

    async fn serve_with(&self, tweak: impl FnOnce(&mut ServeOptions)) -> Served {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let store = Arc::new(SqliteStore::open(&self.store_path).unwrap());
        let tokens = Tokens::new(TokenKey::new(&[0x5a; 32]).unwrap(), store.clone());
        let runtime = self.runtime(store.clone(), &tokens, &base);
        let ctx = ServeContext {
            runtimes: BTreeMap::from([("contoso".to_owned(), runtime)]),
            tokens: tokens.clone(),
            requests: store.clone(),
            audit: self.audit.clone(),
            clock: self.clock.clone(),
            triggers: None,
        };
        let mut options = ServeOptions::new(addr, &base, credentials());
        options.timer_tick = Duration::from_secs(1);
        tweak(&mut options);
        let bound = Server::from_listener(listener, options, ctx).unwrap();
        assert_eq!(bound.local_addr(), addr);
        let telemetry = bound.telemetry().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(bound.serve(async {
            let _ = stopped.await;
        }));
        Served {
            base,
            store,
            tokens,
            telemetry,
            stop: Some(stop),
            task,
            http: reqwest::Client::builder()
                .user_agent(BROWSER)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }
}

fn credentials() -> ApiCredentials {
    ApiCredentials {
        bearer: vec![BearerHash::of(BEARER)],
        hmac: Some(HmacKey::new(&HMAC_KEY).unwrap()),
    }
}

/// ACS SMS and the Teams workflow, pointed at the emulator.
fn senders(info: &ConnectionInfo) -> Vec<Arc<dyn resetctl::comms::Channel>> {
    let yaml = format!(
        "channels:\n  sms:\n    acs:\n      endpoint: {}\n      access_key_env: ACS_KEY\n      \
         from: \"{}\"\n  teams:\n    workflow:\n      url_env: TEAMS_URL\n",
        info.channels.acs.endpoint, info.channels.acs.from
    );
    let env = Env::from_pairs([
        ("ACS_KEY", info.channels.acs.access_key.as_str()),
        ("TEAMS_URL", info.channels.teams_workflow_url.as_str()),
    ]);
    let config = Config::parse(&yaml, Some(Path::new("resetctl.yaml")), &env).unwrap();
    channels::build(
        &config.channels,
        &ChannelContext {
            http: channels::http_client().unwrap(),
            env,
            directory: None,
        },
    )
    .unwrap()
    .all()
    .to_vec()
}

/// A running server.
struct Served {
    base: String,
    store: Arc<SqliteStore>,
    tokens: Tokens,
    telemetry: resetctl::serve::Telemetry,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

/// A link page as a browser got it: status, body, the CSRF cookie and field.
struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Served {
    /// Stop accepting, drain, stop the timers; wait for all of it.
    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the server drains")
            .unwrap();
    }

    fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// `POST /v1/requests` with the bearer token.
    async fn create(&self, body: &Value) -> reqwest::Response {
        self.api(reqwest::Method::POST, "/v1/requests")
            .bearer_auth(BEARER)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn open(&self, path: &str) -> Page {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let cookie = headers
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
        let body = resp.text().await.unwrap();
        let csrf = body
            .split_once("name=\"csrf\" value=\"")
            .map(|(_, rest)| rest.split('"').next().unwrap().to_owned());
        Page {
            status,
            headers,
            body,
            cookie,
            csrf,
        }
    }

    /// The form's post, as the browser sends it from the page.
    async fn post(&self, path: &str, cookie: Option<&str>, csrf: Option<&str>) -> Page {
        self.post_from(path, cookie, csrf, Some(&self.base)).await
    }

    async fn post_from(
        &self,
        path: &str,
        cookie: Option<&str>,
        csrf: Option<&str>,
        origin: Option<&str>,
    ) -> Page {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(csrf.map(|c| format!("csrf={c}")).unwrap_or_default());
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let resp = req.send().await.unwrap();
        Page {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
            cookie: None,
            csrf: None,
        }
    }

    /// Open the link's page, then press its button.
    async fn click(&self, path: &str) -> Page {
        let page = self.open(path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        self.post(path, page.cookie.as_deref(), page.csrf.as_deref())
            .await
    }
}

fn ask(lab_user: &str, requester: &Person, device: bool) -> Value {
    json!({
        "tenant": "contoso",
        "user": lab_user,
        "requester": {"id": requester.id, "upn": requester.upn},
        "requester_label": "helpdesk agent desk",
        "origin": "portal",
        "reason": "locked out after travelling",
        "device_available": device,
    })
}

async fn requester(lab: &Lab) -> Person {
    let u = lab
        .directory
        .get_user("desk@contoso.example")
        .await
        .unwrap()
        .unwrap();
    Person {
        id: u.id,
        upn: u.upn,
    }
}

/// The path of the link `kind` (`approve`, `deny`) for request `id` in `text`.
fn link_in(text: &str, kind: &str, id: &str) -> String {
    let start = format!("/{kind}/{id}/");
    let at = text
        .find(&start)
        .unwrap_or_else(|| panic!("no {kind} link in {text}"));
    text[at..]
        .split(|c: char| c == '"' || c == '\\' || c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

/// Wait (real time) until request `id` satisfies `done` with nothing left to run.
async fn until(store: &dyn RequestStore, id: &str, done: impl Fn(&State) -> bool) -> State {
    for _ in 0..750 {
        let r = store.load(id).await.unwrap().unwrap();
        if done(&r.flow.state) && store.pending_actions().await.unwrap().is_empty() {
            return r.flow.state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "request {id} stuck in {:?}",
        store.load(id).await.unwrap().unwrap().flow.state
    );
}

/// Wait until the trail holds `n` records of `action`.
async fn records(lab: &Lab, action: &str, n: usize) -> Vec<Value> {
    for _ in 0..250 {
        let found = lab.trail(action);
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} {action} records: {}", lab.trail_text());
}

/// A request made through the API with no device: the manager's card is out.
async fn card_request(lab: &Lab, served: &Served, script: Script) -> String {
    let who = requester(lab).await;
    let resp = served
        .create(&ask(&upn_scripted(script), &who, false))
        .await;
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/requests/{id}"));
    assert_eq!(body["state"], "manager_card_sent");
    id
}

/// The card's link of `kind` for request `id`, from the Teams sink.
async fn card_link(lab: &Lab, kind: &str, id: &str) -> String {
    let cards = lab.outbox("teams").await;
    let card = cards
        .iter()
        .map(|c| c["content"].as_str().unwrap())
        .find(|c| c.contains(id))
        .unwrap_or_else(|| panic!("no card for {id}: {cards:?}"));
    link_in(card, kind, id)
}

/// The token part of a link path.
fn token_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_b_through_the_server_completes_the_reset_from_the_card_link() {
    let lab = Lab::new().await;
    let served = lab.serve().await;
    let upn = upn_scripted(Script::Approve);
    let user_id = lab.user_id(&upn).await;
    let id = card_request(&lab, &served, Script::Approve).await;

    // The API shows where it is.
    let shown: Value = served
        .api(reqwest::Method::GET, &format!("/v1/requests/{id}"))
        .bearer_auth(BEARER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["state"], "manager_card_sent");
    assert_eq!(shown["user"], upn.as_str());
    assert_eq!(shown["tenant"], "contoso");
    assert_eq!(shown["done"], false);

    let approve = card_link(&lab, "approve", &id).await;
    let deny = card_link(&lab, "deny", &id).await;
    // Opening the link (twice, as a previewer and then the manager) decides nothing.
    let preview = served.open(&approve).await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    let page = served.open(&approve).await;
    assert_eq!(page.status, 200);
    for (name, value) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(page.headers[name], value, "{name}");
    }
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    let set_cookie = page.headers["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    assert!(page.body.contains("helpdesk agent desk"), "{}", page.body);
    assert!(page.body.contains(&upn), "{}", page.body);
    assert!(page.body.contains("locked out after travelling"));
    assert!(page.body.contains("portal"));
    assert!(page.body.contains(">Approve</button>"), "{}", page.body);
    let r = served.store.load(&id).await.unwrap().unwrap();
    assert!(matches!(r.flow.state, State::ManagerCardSent { .. }));
    assert_eq!(lab.resets_of(&user_id).await, 0);

    // The button: the card's answer, the reset through Graph.
    let done = served
        .post(&approve, page.cookie.as_deref(), page.csrf.as_deref())
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Approved"), "{}", done.body);
    assert!(done.body.contains("must now choose a new password"));
    let state = until(served.store.as_ref(), &id, State::is_final).await;
    assert!(
        matches!(
            state,
            State::Completed {
                via: Via::ManagerCard,
                ..
            }
        ),
        "{state:?}"
    );
    assert_eq!(lab.resets_of(&user_id).await, 1);

    // The approver's address, browser and the token's id are in the trail; no token is.
    let verified = lab
        .trail("verify.transition")
        .into_iter()
        .find(|r| r["details"]["to"] == "verified")
        .unwrap();
    assert_eq!(verified["details"]["approver_ip"], "127.0.0.1");
    assert_eq!(verified["details"]["approver_user_agent"], BROWSER);
    let approval_id = verified["details"]["approval_id"].as_str().unwrap();
    assert_eq!(approval_id.len(), 64);

    // The same link again, and the paired deny link: spent.
    let again = served.click_refused(&approve).await;
    assert_eq!(again.status, 410);
    assert!(again.body.contains("the approval link was used already"));
    let paired = served.open(&deny).await;
    assert_eq!(paired.status, 410, "{}", paired.body);
    let refused = records(&lab, "verify.link_refused", 2).await;
    assert_eq!(refused[0]["details"]["kind"], "replayed");
    assert_eq!(refused[0]["details"]["approval_id"], approval_id);
    assert_eq!(refused[0]["details"]["client_ip"], "127.0.0.1");
    assert_eq!(refused[0]["details"]["user_agent"], BROWSER);
    assert_eq!(refused[0]["subject"], id.as_str());
    assert_eq!(refused[1]["details"]["kind"], "replayed");
    assert_eq!(refused[1]["details"]["decision"], "deny");

    let trail = lab.trail_text();
    for link in [&approve, &deny] {
        assert!(!trail.contains(token_of(link)), "a token reached the trail");
        assert!(!trail.contains(token_of(link).split('.').next().unwrap()));
    }
    served.shutdown().await;
    lab.emu.shutdown().await;
}

impl Served {
    /// Open a link whose page is expected to be a refusal (no form on it).
    async fn click_refused(&self, path: &str) -> Page {
        let page = self.open(path).await;
        assert!(page.csrf.is_none(), "{}", page.body);
        assert!(page.cookie.is_none());
        page
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_link_is_refused_with_a_page_and_an_audit_record() {
    let lab = Lab::new().await;
    let served = lab.serve().await;
    let id = card_request(&lab, &served, Script::Approve).await;
    let other = card_request(&lab, &served, Script::Deny).await;
    let approve = card_link(&lab, "approve", &id).await;
    let token = token_of(&approve).to_owned();
    let mut expected = Vec::new();

    // Forged: one character of the MAC flipped.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let page = served
        .click_refused(&format!("/approve/{id}/{forged}"))
        .await;
    assert_eq!(page.status, 400);
    assert!(
        page.body.contains("the approval link is not valid"),
        "{}",
        page.body
    );
    expected.push("forged");

    // Another request's path; the deny page with the approve token.
    let page = served
        .click_refused(&format!("/approve/{other}/{token}"))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("does not belong to this request"));
    expected.push("wrong_request");
    let page = served.click_refused(&format!("/deny/{id}/{token}")).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("does not give this answer"));
    expected.push("wrong_decision");

    // The form without its cookie, with a field for another cookie, from another site.
    let good = served.open(&approve).await;
    let page = served.post(&approve, None, good.csrf.as_deref()).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("open the link again"));
    expected.push("csrf");
    let page = served.post(&approve, good.cookie.as_deref(), None).await;
    assert_eq!(page.status, 403);
    expected.push("csrf");
    let second = served.open(&approve).await;
    let page = served
        .post(&approve, good.cookie.as_deref(), second.csrf.as_deref())
        .await;
    assert_eq!(page.status, 403);
    expected.push("csrf");
    let page = served
        .post_from(
            &approve,
            good.cookie.as_deref(),
            good.csrf.as_deref(),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("from another web site"));
    expected.push("cross_site");
    // None of that used the token: the genuine form still works.
    let r = served.store.load(&id).await.unwrap().unwrap();
    assert!(matches!(r.flow.state, State::ManagerCardSent { .. }));

    // Expired: a token minted for this request that ran out.
    let manager = lab.user_id("mara@contoso.example").await;
    let short = served
        .tokens
        .mint(
            &other,
            &manager,
            Decision::Deny,
            lab.clock.now() + SignedDuration::from_secs(10),
        )
        .await
        .unwrap();
    lab.advance(11);
    let page = served
        .click_refused(&format!("/deny/{other}/{}", short.expose()))
        .await;
    assert_eq!(page.status, 410);
    assert!(page.body.contains("has expired"));
    expected.push("expired");

    // Unknown: well-formed, never minted.
    let page = served
        .click_refused(&format!(
            "/approve/{id}/{}.{}",
            "A".repeat(43),
            token.split_once('.').unwrap().1
        ))
        .await;
    assert_eq!(page.status, 404);
    expected.push("unknown");

    let done = served
        .post(&approve, good.cookie.as_deref(), good.csrf.as_deref())
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    // Replayed.
    let page = served
        .post(&approve, good.cookie.as_deref(), good.csrf.as_deref())
        .await;
    assert_eq!(page.status, 410);
    expected.push("replayed");

    let refused = records(&lab, "verify.link_refused", expected.len()).await;
    let kinds: Vec<&str> = refused
        .iter()
        .map(|r| r["details"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, expected);
    for r in &refused {
        assert_eq!(r["outcome"], "refused");
        assert_eq!(r["details"]["client_ip"], "127.0.0.1");
        assert_eq!(r["details"]["user_agent"], BROWSER);
    }
    // The token's id where the store knows the token; never for a forgery or an unknown one.
    let with_id: Vec<bool> = refused
        .iter()
        .map(|r| r["details"]["approval_id"].is_string())
        .collect();
    assert_eq!(
        with_id,
        [false, true, true, true, true, true, true, true, false, true]
    );
    let trail = lab.trail_text();
    assert!(!trail.contains(&token) && !trail.contains(&forged));
    assert!(!trail.contains(token.split_once('.').unwrap().0));
    served.shutdown().await;
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lets_in_only_a_known_bearer_or_a_fresh_signature() {
    let lab = Lab::new().await;
    let served = lab.serve().await;
    let who = requester(&lab).await;
    let body = ask(&upn_scripted(Script::Deny), &who, false);
    let bytes = serde_json::to_vec(&body).unwrap();
    let post = || {
        served
            .api(reqwest::Method::POST, "/v1/requests")
            .header("content-type", "application/json")
            .body(bytes.clone())
    };
    let code = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(
        code(post().send().await.unwrap()).await,
        (401, "unauthenticated".into())
    );
    assert_eq!(
        code(post().bearer_auth("guess").send().await.unwrap()).await,
        (401, "bad_bearer".into())
    );
    let key = HmacKey::new(&HMAC_KEY).unwrap();
    let now = lab.clock.now().as_second();
    let wrong = sign(&HmacKey::new(&[1; 32]).unwrap(), now, &bytes);
    assert_eq!(
        code(
            post()
                .header("x-resetctl-signature", wrong)
                .send()
                .await
                .unwrap()
        )
        .await,
        (401, "bad_signature".into())
    );
    let stale = sign(&key, now - 301, &bytes);
    assert_eq!(
        code(
            post()
                .header("x-resetctl-signature", stale)
                .send()
                .await
                .unwrap()
        )
        .await,
        (401, "stale_signature".into())
    );
    // A signature over another body.
    let other_body = sign(&key, now, b"{}");
    assert_eq!(
        code(
            post()
                .header("x-resetctl-signature", other_body)
                .send()
                .await
                .unwrap()
        )
        .await,
        (401, "bad_signature".into())
    );
    assert!(
        lab.outbox("teams").await.is_empty(),
        "nothing was asked yet"
    );
    let good = post()
        .header("x-resetctl-signature", sign(&key, now, &bytes))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 201);
    let good = served.create(&body).await;
    assert_eq!(good.status(), 201);

    // A field the API does not know (the risk facts are the runtime's to look up).
    let mut sneaky = body.clone();
    sneaky["critical_role"] = json!(false);
    let (status, error) = code(served.create(&sneaky).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_body"));
    let message: Value = served.create(&sneaky).await.json().await.unwrap();
    assert!(
        message["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `critical_role`"),
        "{message}"
    );
    let mut elsewhere = body.clone();
    elsewhere["tenant"] = json!("fabrikam");
    assert_eq!(
        code(served.create(&elsewhere).await).await,
        (404, "unknown_tenant".into())
    );
    let mut nobody = body.clone();
    nobody["user"] = json!("nobody@contoso.example");
    assert_eq!(
        code(served.create(&nobody).await).await,
        (404, "unknown_user".into())
    );
    let unknown = served
        .api(reqwest::Method::GET, "/v1/requests/vr-nope")
        .bearer_auth(BEARER)
        .send()
        .await
        .unwrap();
    assert_eq!(code(unknown).await, (404, "unknown_request".into()));
    let anonymous = served
        .api(reqwest::Method::GET, "/v1/requests/vr-nope")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // A body past the limit; health.
    let mut huge = body.clone();
    huge["reason"] = json!("x".repeat(128 * 1024));
    assert_eq!(served.create(&huge).await.status(), 413);
    let health = served
        .api(reqwest::Method::GET, "/healthz")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    served.shutdown().await;
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_path_b_fires_the_timer_once_and_keeps_the_links() {
    let lab = Lab::new().await;
    let first = lab.serve().await;
    let upn = upn_scripted(Script::Timeout);
    let user_id = lab.user_id(&upn).await;
    let id = card_request(&lab, &first, Script::Timeout).await;
    let approve = card_link(&lab, "approve", &id).await;
    assert_eq!(first.open(&approve).await.status, 200);
    first.shutdown().await;

    // Down while the card's five minutes run out; two servers come back on the store.
    lab.advance(300);
    let (a, b) = tokio::join!(lab.serve(), lab.serve());
    let state = until(a.store.as_ref(), &id, |s| {
        matches!(s, State::ManagerSmsSent { .. })
    })
    .await;
    assert!(matches!(state, State::ManagerSmsSent { .. }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lab.texts_to(MANAGER_MOBILE).await.len(), 1, "one SMS");
    b.shutdown().await;

    // The card's link, minted before the restart, answers on the new server.
    let done = a.click(&approve).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let state = until(a.store.as_ref(), &id, State::is_final).await;
    assert!(
        matches!(
            state,
            State::Completed {
                via: Via::ManagerLink,
                ..
            }
        ),
        "{state:?}"
    );
    assert_eq!(lab.resets_of(&user_id).await, 1);
    // The SMS's own links are spent with it.
    let sms = lab.texts_to(MANAGER_MOBILE).await;
    let text = sms[0]["content"].as_str().unwrap();
    let sms_deny = link_in(text, "deny", &id);
    assert_eq!(a.open(&sms_deny).await.status, 410);
    a.shutdown().await;
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_from_pem_files_and_no_plain_http_off_loopback() {
    let lab = Lab::new().await;
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let tls = TlsFiles {
        cert: cert_path.clone(),
        key: key_path.clone(),
    };
    let served = lab.serve_with(|o| o.tls = Some(tls.clone())).await;
    let https = served.base.replace("http://", "https://");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let health = client.get(format!("{https}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    // The same port does not speak plain HTTP.
    assert!(
        reqwest::get(format!("{}/healthz", served.base))
            .await
            .is_err()
    );
    served.shutdown().await;

    // Plain HTTP on a reachable address is refused; so is a key file that is not a key.
    let store = Arc::new(SqliteStore::open(&lab.store_path).unwrap());
    let tokens = Tokens::new(TokenKey::new(&[0x5a; 32]).unwrap(), store.clone());
    let ctx = ServeContext {
        runtimes: BTreeMap::from([(
            "contoso".to_owned(),
            lab.runtime(store.clone(), &tokens, "https://approve.example"),
        )]),
        tokens,
        requests: store,
        audit: lab.audit.clone(),
        clock: lab.clock.clone(),
        triggers: None,
    };
    let open = ServeOptions::new(
        "0.0.0.0:0".parse().unwrap(),
        "https://approve.example",
        credentials(),
    );
    let err = Server::bind(open.clone(), ctx.clone()).await.unwrap_err();
    assert!(matches!(err, ServeError::PlainHttp(_)), "{err}");
    assert!(err.to_string().contains("refusing plain HTTP on 0.0.0.0:0"));
    let mut bad_key = open.clone();
    bad_key.tls = Some(TlsFiles {
        cert: cert_path.clone(),
        key: cert_path.clone(),
    });
    let err = Server::bind(bad_key, ctx.clone()).await.unwrap_err();
    assert!(err.to_string().contains("cert.pem: no PKCS#8"), "{err}");
    let mut no_tenant = ctx;
    no_tenant.runtimes.clear();
    let loopback = ServeOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        "https://approve.example",
        credentials(),
    );
    assert!(matches!(
        Server::bind(loopback, no_tenant).await.unwrap_err(),
        ServeError::NoTenant
    ));
    lab.emu.shutdown().await;
}

/// A headless Chromium and one page of it, driven through the DevTools protocol.
struct Browser {
    child: tokio::process::Child,
    _profile: tempfile::TempDir,
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Browser {
    async fn launch(binary: &Path) -> Browser {
        use tokio::io::AsyncBufReadExt;
        let profile = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on standard error.
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let port = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.split_once("DevTools listening on ws://127.0.0.1:") {
                    return rest.1.split('/').next().unwrap().parse::<u16>().unwrap();
                }
            }
            panic!("chromium exited without a DevTools port");
        })
        .await
        .expect("chromium announces its DevTools port");
        // Keep draining its standard error so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let targets: Vec<Value> = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = targets
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Browser {
            child,
            _profile: profile,
            ws,
            next_id: 0,
        }
    }

    /// One DevTools command; its `result`.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::Text(command.into())).await.unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("chromium answers")
                .unwrap()
                .unwrap();
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(reply) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        result["result"]["value"].clone()
    }

    /// Wait until `expression` is a non-empty string; that string.
    async fn wait_for(&mut self, expression: &str) -> String {
        for _ in 0..200 {
            if let Some(text) = self.eval(expression).await.as_str()
                && !text.is_empty()
            {
                return text.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never showed {expression}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_approves_from_the_sms_link() {
    let Some(binary) = chromium() else {
        return;
    };
    let lab = Lab::new().await;
    let served = lab.serve().await;
    let upn = upn_scripted(Script::Timeout);
    let user_id = lab.user_id(&upn).await;
    let id = card_request(&lab, &served, Script::Timeout).await;
    // No answer to the card: the timer loop texts the manager after five minutes.
    lab.advance(300);
    until(served.store.as_ref(), &id, |s| {
        matches!(s, State::ManagerSmsSent { .. })
    })
    .await;
    let texts = lab.texts_to(MANAGER_MOBILE).await;
    assert_eq!(texts.len(), 1);
    let text = texts[0]["content"].as_str().unwrap();
    let link = format!("{}{}", served.base, link_in(text, "approve", &id));

    let mut browser = Browser::launch(&binary).await;
    browser.call("Page.enable", json!({})).await;
    browser.call("Page.navigate", json!({"url": link})).await;
    let button = browser
        .wait_for("document.getElementById('confirm') ? document.getElementById('confirm').innerText : ''")
        .await;
    assert_eq!(button, "Approve");
    // Times read as a minute with its zone, the expiry also from now (the link lives 15 min).
    let text = browser.eval("document.body.innerText").await;
    let text = text.as_str().unwrap();
    let rfc3339 =
        |w: &str| w.len() >= 20 && w.as_bytes()[10] == b'T' && w[..4].parse::<u16>().is_ok();
    assert!(!text.split_whitespace().any(rfc3339), "{text}");
    assert!(
        text.contains(" UTC") && text.contains("expires in "),
        "{text}"
    );
    // Loading the page decided nothing.
    let r = served.store.load(&id).await.unwrap().unwrap();
    assert!(matches!(r.flow.state, State::ManagerSmsSent { .. }));
    browser
        .eval("document.getElementById('confirm').click(); 'clicked'")
        .await;
    let outcome = browser
        .wait_for("document.getElementById('outcome') ? document.getElementById('outcome').innerText : ''")
        .await;
    assert!(
        outcome.contains("must now choose a new password"),
        "{outcome}"
    );
    let title = browser.eval("document.title").await;
    assert_eq!(title, "Approved");

    let state = until(served.store.as_ref(), &id, State::is_final).await;
    assert!(
        matches!(
            state,
            State::Completed {
                via: Via::ManagerLink,
                ..
            }
        ),
        "{state:?}"
    );
    assert_eq!(lab.resets_of(&user_id).await, 1);
    let verified = lab
        .trail("verify.transition")
        .into_iter()
        .find(|r| r["details"]["to"] == "verified")
        .unwrap();
    assert_eq!(verified["details"]["approver_ip"], "127.0.0.1");
    assert!(
        verified["details"]["approver_user_agent"]
            .as_str()
            .unwrap()
            .contains("HeadlessChrome"),
        "{verified}"
    );
    assert!(verified["details"]["approval_id"].is_string());
    assert!(
        lab.trail("verify.link_refused").is_empty(),
        "the real browser passed every check"
    );
    assert!(!lab.trail_text().contains(token_of(&link)));
    let _ = browser.child.start_kill();
    let _ = browser.child.wait().await;
    served.shutdown().await;
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_gets_503_and_a_stopped_server_accepts_nothing() {
    let lab = Lab::new().await;
    let served = lab
        .serve_with(|o| o.request_timeout = Duration::from_millis(1))
        .await;
    let who = requester(&lab).await;
    // Looking the user and the manager up in the directory takes longer than 1 ms.
    let resp = served
        .create(&ask(&upn_scripted(Script::Approve), &who, false))
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let addr = served.base.clone();
    served.shutdown().await;
    assert!(
        reqwest::get(format!("{addr}/healthz")).await.is_err(),
        "the listener is closed after the drain"
    );
    lab.emu.shutdown().await;
}

/// 200 concurrent clients: opening an approval page, and a whole Path A (request, push
/// approved, reset through Graph) polled through the API. Prints the figures; every job
/// must succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_clients_open_pages_and_run_path_a() {
    use resetctl::serve::load::drive;
    const CLIENTS: usize = 200;
    let lab = Lab::with_approvers(CLIENTS).await;
    // One address for every client: the per-client limits (requests and connections) would
    // refuse most of them.
    let served = lab
        .serve_with(|o| {
            let wide = resetctl::serve::Limit {
                burst: 100_000,
                per_minute: 100_000,
            };
            o.rate_limits.pages = wide;
            o.rate_limits.api = wide;
            o.connections = resetctl::serve::ConnectionLimits {
                per_client: 10_000,
                total: 10_000,
            };
        })
        .await;
    let id = card_request(&lab, &served, Script::Approve).await;
    let approve = card_link(&lab, "approve", &id).await;
    let pages = drive(CLIENTS, CLIENTS, Duration::from_secs(60), |_| {
        let (served, approve) = (&served, &approve);
        async move {
            let page = served.open(approve).await;
            (page.status == 200 && page.csrf.is_some())
                .then_some(())
                .ok_or_else(|| format!("{}", page.status))
        }
    })
    .await;
    eprintln!("GET /approve/..: {pages}");
    assert_eq!(pages.failures, 0, "{pages}");

    let who = requester(&lab).await;
    let users = approvers(CLIENTS);
    let flows = drive(CLIENTS, CLIENTS, Duration::from_secs(120), |i| {
        let (served, who, upn) = (&served, &who, users[i].clone());
        async move {
            let resp = served.create(&ask(&upn, who, true)).await;
            if resp.status() != 201 {
                return Err(format!("create: {}", resp.status()));
            }
            let made: Value = resp.json().await.map_err(|e| e.to_string())?;
            let path = format!("/v1/requests/{}", made["id"].as_str().unwrap_or_default());
            loop {
                let shown: Value = served
                    .api(reqwest::Method::GET, &path)
                    .bearer_auth(BEARER)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                if shown["done"] == true {
                    return (shown["state"] == "completed")
                        .then_some(())
                        .ok_or_else(|| format!("ended {}", shown["state"]));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
    .await;
    eprintln!("Path A (POST, push approved, reset; polled): {flows}");
    assert_eq!(flows.failures, 0, "{flows}");
    served.shutdown().await;
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_a_request_that_no_longer_waits_is_refused_unused() {
    let lab = Lab::new().await;
    let served = lab.serve().await;
    let who = requester(&lab).await;
    // Path A: the push is approved and the request completes without the manager.
    let resp = served
        .create(&ask(&upn_scripted(Script::Approve), &who, true))
        .await;
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    until(served.store.as_ref(), &id, State::is_final).await;
    let manager = lab.user_id("mara@contoso.example").await;
    let late = served
        .tokens
        .mint(
            &id,
            &manager,
            Decision::Approve,
            lab.clock.now() + SignedDuration::from_secs(600),
        )
        .await
        .unwrap();
    let path = format!("/approve/{id}/{}", late.expose());
    let page = served.click_refused(&path).await;
    assert_eq!(page.status, 409);
    assert!(
        page.body.contains("no longer waits for an answer"),
        "{}",
        page.body
    );
    let refused = records(&lab, "verify.link_refused", 1).await;
    assert_eq!(refused[0]["details"]["kind"], "closed");
    assert_eq!(refused[0]["details"]["method"], "GET");
    // Refused before it was used.
    assert!(
        served
            .tokens
            .verify(late.expose(), Some(&id), Decision::Approve, lab.clock.now())
            .await
            .is_ok()
    );
    served.shutdown().await;
    lab.emu.shutdown().await;
}

/// `resetctl serve` the command: without `serve:` only the demo tenant (on loopback, with a
/// key that dies with the process); health answered; SIGTERM drains and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_command_runs_the_demo_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let out =
        crate::util::resetctl_env(dir.path(), &["serve"], &[("RESETCTL_DATA_DIR", dir.path())]);
    assert_eq!(crate::util::code(&out), 4, "{}", crate::util::stderr(&out));
    assert!(crate::util::stderr(&out).contains("serve:"));

    let mut child = Command::new(crate::util::bin())
        .args(["serve", "--tenant", "demo"])
        .current_dir(dir.path())
        .env_remove("RESETCTL_CONFIG")
        .env("RESETCTL_DATA_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    assert!(line.starts_with("serving demo on 127.0.0.1:"), "{line}");
    let addr = line.split_whitespace().nth(3).unwrap().to_owned();
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // SIGTERM, as systemd and `docker stop` send it.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}
