//! Ticket systems end to end against the emulated PSAs on 127.0.0.1: each sink built from
//! a `tickets:` configuration opens, notes and resolves a ticket the emulator keeps, with
//! the PSA's authentication; wrong credentials and 429s come back as they should; and the
//! verification runtime escalates into one ticket (also across a crash), never leaking a
//! link or a number, and closes the ticket a request came from.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jiff::Timestamp;
use resetctl::config::{Config, Env};
use resetctl::emulator::sinks::push::Script;
use resetctl::emulator::{ConnectionInfo, EmulatorConfig};
use resetctl::providers::tickets::{self, Ticket, TicketError, TicketRef, TicketSink, TrailLine};
use resetctl::verify::store::{
    ArmedTimer, MemoryRequestStore, NewRequest, PendingAction, RequestStore, RequestStoreError,
    Save, StoredRequest,
};
use resetctl::verify::{Action, EscalationReason, Person, State};
use serde_json::Value;

use crate::util::{http, inspect, start_emulator};
use crate::verify_runtime::{Lab, MANAGER_MOBILE, TestLinks, until, upn_scripted};

/// The `tickets:` section and environment naming one system `desk` of `kind` at the
/// emulator, its secret `secret` (the emulator's own when `None`).
fn section(info: &ConnectionInfo, kind: &str, secret: Option<&str>) -> (String, Env) {
    let t = &info.channels.tickets;
    let (body, var, value) = match kind {
        "servicenow" => (
            format!(
                "servicenow:\n        base_url: {}\n        username: {}\n        \
                 password_env: SN_PASSWORD\n        caller: {}\n        assignment_group: Service Desk\n",
                t.servicenow_base_url, t.servicenow_user, t.servicenow_user
            ),
            "SN_PASSWORD",
            t.servicenow_password.clone(),
        ),
        "servicenow_bearer" => (
            format!(
                "servicenow:\n        base_url: {}\n        token_env: SN_TOKEN\n",
                t.servicenow_base_url
            ),
            "SN_TOKEN",
            t.servicenow_token.clone(),
        ),
        "connectwise" => (
            format!(
                "connectwise:\n        base_url: {}\n        company_id: {}\n        \
                 public_key: {}\n        private_key_env: CW_KEY\n        client_id: {}\n        \
                 company: 250\n        board: 1\n        closed_status: 7\n        high_priority: 6\n",
                t.connectwise_base_url,
                t.connectwise_company,
                t.connectwise_public_key,
                t.connectwise_client_id
            ),
            "CW_KEY",
            t.connectwise_private_key.clone(),
        ),
        "autotask" => (
            format!(
                "autotask:\n        zone_url: {}\n        username: {}\n        \
                 integration_code: {}\n        secret_env: AT_SECRET\n        company_id: 0\n        \
                 queue_id: 8\n",
                t.autotask_zone_url, t.autotask_username, t.autotask_integration_code
            ),
            "AT_SECRET",
            t.autotask_secret.clone(),
        ),
        "halopsa" => (
            format!(
                "halopsa:\n        base_url: {}\n        client_id: {}\n        \
                 client_secret_env: HALO_SECRET\n        client: 12\n        high_priority: 1\n",
                t.halo_base_url, t.halo_client_id
            ),
            "HALO_SECRET",
            t.halo_client_secret.clone(),
        ),
        "webhook" => (
            format!(
                "webhook:\n        url: {}\n        secret_env: HOOK_SECRET\n",
                info.channels.webhook.url
            ),
            "HOOK_SECRET",
            info.channels.webhook.secret.clone(),
        ),
        other => panic!("{other}"),
    };
    let yaml = format!("tickets:\n  systems:\n    desk:\n      {body}");
    let env = Env::from_pairs([(var, secret.map(str::to_owned).unwrap_or(value))]);
    (yaml, env)
}

/// The sink of `kind` at the emulator.
fn sink(info: &ConnectionInfo, kind: &str, secret: Option<&str>) -> Arc<dyn TicketSink> {
    let (yaml, env) = section(info, kind, secret);
    let config = Config::parse(&yaml, Some(Path::new("resetctl.yaml")), &env).unwrap();
    tickets::build_system(&config.tickets, "desk", http(), &env).unwrap()
}

fn person() -> Person {
    Person {
        id: "6f1c1c1e-0000-4000-8000-000000000001".into(),
        upn: "jo@contoso.example".into(),
    }
}

fn ticket(request: &str) -> Ticket {
    Ticket::new(
        request,
        person(),
        vec![EscalationReason::PushDenied],
        true,
        vec![TrailLine {
            at: Timestamp::from_second(1_800_000_000).unwrap(),
            text: "requested → push_sent (start; push to j***@contoso.example)".into(),
        }],
    )
}

async fn desk(info: &ConnectionInfo, system: &str) -> Vec<Value> {
    inspect(info, &format!("tickets?system={system}")).await["tickets"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_psa_sink_opens_notes_and_resolves_a_ticket_the_psa_keeps() {
    let emu = start_emulator(EmulatorConfig::seeded(10, 3)).await;
    let info = emu.info().clone();
    // (sink kind, emulator system, the field that holds the title, the resolved status)
    let cases = [
        (
            "servicenow",
            "servicenow",
            "short_description",
            Value::from("6"),
        ),
        (
            "connectwise",
            "connectwise",
            "summary",
            serde_json::json!({"id": 7}),
        ),
        ("autotask", "autotask", "title", Value::from(5)),
        ("halopsa", "halopsa", "summary", Value::from(9)),
    ];
    for (i, (kind, system, title_field, resolved)) in cases.into_iter().enumerate() {
        let s = sink(&info, kind, None);
        let t = ticket(&format!("vr-{i}"));
        let r = s.open(&t).await.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(r.system, "desk");
        s.update(&r, "the user was called back").await.unwrap();
        s.close(&r, "identity proven by phone; password reset")
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));

        let kept = desk(&info, system).await;
        assert_eq!(kept.len(), 1, "{kind}: {kept:?}");
        let k = &kept[0];
        assert_eq!(k["id"], r.id.as_str(), "{kind}");
        assert_eq!(k["number"], r.number.as_str(), "{kind}");
        assert_eq!(k["created"][title_field], t.title.as_str(), "{kind}: {k}");
        let described = k["created"].to_string();
        assert!(
            described.contains("vr-"),
            "{kind}: the request is named: {described}"
        );
        assert!(
            described.contains("requested → push_sent"),
            "{kind}: the trail travels with the ticket: {described}"
        );
        let mut notes: Vec<&str> = k["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["text"].as_str().unwrap())
            .collect();
        // ServiceNow keeps the resolution in the incident's `close_notes`.
        notes.extend(k["record"]["close_notes"].as_str());
        assert!(
            notes.contains(&"the user was called back"),
            "{kind}: {notes:?}"
        );
        assert!(
            notes.contains(&"identity proven by phone; password reset"),
            "{kind}: {notes:?}"
        );
        let changes = k["status_changes"].as_array().unwrap();
        assert_eq!(changes.last().unwrap()["status"], resolved, "{kind}: {k}");
    }
    // Fields each PSA documents: ServiceNow's priority and correlation, the resolution code;
    // ConnectWise's company and board; Autotask's queue; Halo's client.
    let sn = &desk(&info, "servicenow").await[0];
    assert_eq!(sn["created"]["urgency"], "1");
    assert_eq!(sn["created"]["correlation_id"], "resetctl-vr-0");
    assert_eq!(sn["created"]["assignment_group"], "Service Desk");
    assert_eq!(sn["record"]["close_code"], "Solution provided");
    assert!(sn["number"].as_str().unwrap().starts_with("INC"));
    let cw = &desk(&info, "connectwise").await[0];
    assert_eq!(cw["created"]["company"]["id"], 250);
    assert_eq!(cw["created"]["board"]["id"], 1);
    assert_eq!(cw["created"]["priority"]["id"], 6);
    let at = &desk(&info, "autotask").await[0];
    assert_eq!(at["created"]["queueID"], 8);
    assert_eq!(at["created"]["priority"], 1);
    let halo = &desk(&info, "halopsa").await[0];
    assert_eq!(halo["created"]["client_id"], 12);
    assert_eq!(halo["created"]["priority_id"], 1);

    // ServiceNow with an OAuth bearer token, too.
    let bearer = sink(&info, "servicenow_bearer", None);
    bearer.open(&ticket("vr-bearer")).await.unwrap();
    assert_eq!(desk(&info, "servicenow").await.len(), 2);

    // The webhook: a signed post per event (the emulator's hook checks the signature).
    let hook = sink(&info, "webhook", None);
    let r = hook.open(&ticket("vr-hook")).await.unwrap();
    assert_eq!(
        r.id, "resetctl-vr-hook",
        "no id answered: the key is the reference"
    );
    hook.close(&r, "done").await.unwrap();
    let posts = inspect(&info, "outbox?channel=webhook").await["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0]["payload"]["event"], "ticket.opened");
    assert_eq!(posts[0]["payload"]["priority"], "high");
    assert_eq!(posts[1]["payload"]["event"], "ticket.closed");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_denied_with_the_psa_s_message_and_no_secret() {
    let emu = start_emulator(EmulatorConfig::seeded(10, 3)).await;
    let info = emu.info().clone();
    for kind in [
        "servicenow",
        "connectwise",
        "autotask",
        "halopsa",
        "webhook",
    ] {
        let s = sink(&info, kind, Some("not-the-secret-3141"));
        let e = s.open(&ticket("vr-x")).await.unwrap_err();
        assert!(
            matches!(e, TicketError::Denied { status: 401, .. }),
            "{kind}: {e:?}"
        );
        let text = e.to_string();
        assert!(!text.contains("not-the-secret-3141"), "{text}");
        assert!(!text.contains("127.0.0.1"), "no URL: {text}");
        if kind == "servicenow" {
            assert!(text.contains("User Not Authenticated"), "{text}");
        }
    }
    for system in ["servicenow", "connectwise", "autotask", "halopsa"] {
        assert!(desk(&info, system).await.is_empty(), "{system}");
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_its_retry_after_and_then_reported_throttled() {
    let config = EmulatorConfig::seeded(10, 3)
        .with_faults("psa_429=1")
        .unwrap();
    let emu = start_emulator(config).await;
    let info = emu.info().clone();
    let s = sink(&info, "connectwise", None);
    let started = Instant::now();
    let e = s.open(&ticket("vr-busy")).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(
        e,
        TicketError::Throttled {
            system: "connectwise",
            retry_after: Some(Duration::from_secs(1))
        }
    );
    // Three attempts, the emulator's `Retry-After: 1` honoured between them.
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    let stats = inspect(&info, "stats").await;
    assert!(desk(&info, "connectwise").await.is_empty(), "{stats}");
    emu.shutdown().await;
}

/// A store that "crashes" after a ticket is opened: reporting the open done fails, so
/// the action stays pending as if the process had died between the two.
struct CrashAfterTicket(Arc<MemoryRequestStore>);

impl RequestStore for CrashAfterTicket {
    fn create<'a>(&'a self, r: &'a NewRequest) -> BoxFuture<'a, Result<(), RequestStoreError>> {
        self.0.create(r)
    }
    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredRequest>, RequestStoreError>> {
        self.0.load(id)
    }
    fn save<'a>(
        &'a self,
        id: &'a str,
        expected: u64,
        save: &'a Save,
    ) -> BoxFuture<'a, Result<(u64, Vec<PendingAction>), RequestStoreError>> {
        self.0.save(id, expected, save)
    }
    fn due_timers<'a>(
        &'a self,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<(String, ArmedTimer)>, RequestStoreError>> {
        self.0.due_timers(now)
    }
    fn timers<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ArmedTimer>, RequestStoreError>> {
        self.0.timers(id)
    }
    fn requests_of_user<'a>(
        &'a self,
        tenant: &'a str,
        user_id: &'a str,
        since: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<StoredRequest>, RequestStoreError>> {
        self.0.requests_of_user(tenant, user_id, since)
    }
    fn pending_actions(&self) -> BoxFuture<'_, Result<Vec<PendingAction>, RequestStoreError>> {
        self.0.pending_actions()
    }
    fn actions_of<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PendingAction>, RequestStoreError>> {
        self.0.actions_of(id)
    }
    fn action_done<'a>(
        &'a self,
        request: &'a str,
        action_id: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), RequestStoreError>> {
        Box::pin(async move {
            let all = self.0.actions_of(request).await?;
            let is_ticket = all
                .iter()
                .any(|a| a.id == action_id && matches!(a.action, Action::OpenTicket { .. }));
            if is_ticket {
                return Err(RequestStoreError::Backend("crashed".into()));
            }
            self.0.action_done(request, action_id, at).await
        })
    }
}

/// The ticket sink of a `tickets:` section naming the emulated ServiceNow (the default).
fn servicenow_desk(lab: &Lab) -> Arc<dyn TicketSink> {
    let (yaml, env) = section(lab.info(), "servicenow", None);
    let config = Config::parse(&yaml, Some(Path::new("resetctl.yaml")), &env).unwrap();
    tickets::build(&config.tickets, http(), &env, &lab.audit).unwrap()
}

/// Escalation after no answer from anyone: the push times out, the card too, then the SMS
/// link; the manager's card and SMS carried approval links, the SMS went to the manager's
/// number. The ticket carries the trail and none of those; after a crash between opening
/// it and recording that, resuming finds it instead of opening another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_opens_one_ticket_with_the_trail_and_no_secret_even_after_a_crash() {
    let lab = Lab::new().await;
    let memory = Arc::new(MemoryRequestStore::new());
    let store = Arc::new(CrashAfterTicket(memory.clone()));
    let rt = lab.runtime_with(store.clone(), Arc::new(TestLinks), servicenow_desk(&lab));
    let upn = upn_scripted(Script::Timeout);
    let id = rt.request(lab.ask(&upn, true)).await.unwrap();
    for secs in [120, 300, 900] {
        lab.advance(secs);
        rt.fire_due_timers().await.unwrap();
    }
    let r = memory.load(&id).await.unwrap().unwrap();
    let State::Escalated { reasons, .. } = &r.flow.state else {
        panic!("{:?}", r.flow.state);
    };
    assert_eq!(reasons, &[EscalationReason::ManagerNoAnswer]);
    let pending = memory.pending_actions().await.unwrap();
    assert_eq!(pending.len(), 1, "the open is still pending: {pending:?}");

    // The process restarts: the open runs again and finds the incident by its key.
    let rt = lab.runtime_with(memory.clone(), Arc::new(TestLinks), servicenow_desk(&lab));
    assert_eq!(rt.resume().await.unwrap(), 1);
    let incidents = desk(lab.info(), "servicenow").await;
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let incident = &incidents[0];
    assert_eq!(
        incident["created"]["correlation_id"],
        format!("resetctl-{id}").as_str()
    );

    let description = incident["created"]["description"].as_str().unwrap();
    for line in [
        "requested → push_sent",
        "push_sent → manager_card_sent",
        "manager_card_sent → manager_sms_sent",
        "manager_sms_sent → escalated",
        "+14******199",
    ] {
        assert!(
            description.contains(line),
            "{line} missing from:\n{description}"
        );
    }
    let everything = incident.to_string();
    for secret in ["approve.test", MANAGER_MOBILE, "4255550199"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked into the ticket: {everything}"
        );
    }
    // The trail names the PSA's ticket (the number, never the content).
    let opened = lab.trail("verify.ticket");
    assert_eq!(opened.len(), 2, "opened, then found again: {opened:?}");
    assert_eq!(opened[0]["details"]["ticket"], incident["number"]);
    assert_eq!(
        opened[0]["details"]["system"], "desk",
        "the configured name"
    );
    lab.emu.shutdown().await;
}

/// A help-desk ticket in the emulated ServiceNow (system `desk`): origins name it
/// `ticket:desk:<sys_id>`.
async fn origin_ticket(sink: &dyn TicketSink) -> TicketRef {
    let t = Ticket::new("helpdesk", person(), Vec::new(), false, Vec::new());
    sink.open(&t).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_a_ticket_is_noted_and_resolved_when_it_completes() {
    let lab = Lab::new().await;
    let store = Arc::new(MemoryRequestStore::new());
    let tickets = servicenow_desk(&lab);
    let rt = lab.runtime_with(store.clone(), Arc::new(TestLinks), tickets.clone());
    let origin = origin_ticket(tickets.as_ref()).await;
    let upn = upn_scripted(Script::Approve);
    let mut ask = lab.ask(&upn, true);
    ask.origin = format!("ticket:{}:{}", origin.system, origin.id);
    let id = rt.request(ask).await.unwrap();
    let done = until(store.as_ref(), &id, State::is_final).await;
    assert!(
        matches!(done.flow.state, State::Completed { .. }),
        "{:?}",
        done.flow.state
    );

    let incidents = desk(lab.info(), "servicenow").await;
    assert_eq!(incidents.len(), 1, "no second ticket: {incidents:?}");
    let t = &incidents[0];
    assert_eq!(t["record"]["state"], "6", "resolved: {t}");
    assert_eq!(t["record"]["close_code"], "Solution provided");
    let close_notes = t["record"]["close_notes"].as_str().unwrap();
    assert!(
        close_notes.contains("verified → completed"),
        "{close_notes}"
    );
    assert!(close_notes.contains(&upn), "{close_notes}");
    let notes: Vec<&str> = t["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("requested → push_sent")),
        "a note per transition: {notes:?}"
    );
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_a_ticket_escalates_in_that_ticket() {
    let lab = Lab::new().await;
    let store = Arc::new(MemoryRequestStore::new());
    let tickets = servicenow_desk(&lab);
    let rt = lab.runtime_with(store.clone(), Arc::new(TestLinks), tickets.clone());
    let origin = origin_ticket(tickets.as_ref()).await;
    let mut ask = lab.ask(&upn_scripted(Script::Deny), true);
    ask.origin = format!("ticket:{}:{}", origin.system, origin.id);
    let id = rt.request(ask).await.unwrap();
    let done = until(store.as_ref(), &id, State::is_final).await;
    assert!(
        matches!(done.flow.state, State::Escalated { .. }),
        "{:?}",
        done.flow.state
    );
    let incidents = desk(lab.info(), "servicenow").await;
    assert_eq!(
        incidents.len(),
        1,
        "escalated in the same ticket: {incidents:?}"
    );
    let notes: Vec<&str> = incidents[0]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    let escalation = notes
        .iter()
        .find(|n| n.contains("push_sent → escalated"))
        .unwrap_or_else(|| panic!("{notes:?}"));
    assert!(escalation.contains("push_denied"), "{escalation}");
    assert_ne!(incidents[0]["record"]["state"], "6", "not resolved");
    lab.emu.shutdown().await;
}

#[test]
fn a_bad_tickets_section_is_refused_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resetctl.yaml");
    std::fs::write(
        &path,
        "tickets:\n  systems:\n    desk:\n      servicenow:\n        base_url: http://snow.example.com\n        \
         username: integ\n        password_env: SN_PASSWORD\n",
    )
    .unwrap();
    let e = Config::load(&path, &Env::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("{}:5:19", path.display())), "{e}");
    assert!(e.contains("https"), "{e}");
}

/// The demo tenant's configuration (`emulator::channels::config_yaml`) escalates to the
/// emulated ServiceNow, its password named by a variable `secret_env` gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_configuration_escalates_to_the_emulated_servicenow() {
    use resetctl::emulator::channels::{config_yaml, secret_env};
    let emu = start_emulator(EmulatorConfig::seeded(10, 3)).await;
    let info = emu.info().clone();
    let text = config_yaml(&info.channels, &info.verified_domain, "LAB");
    assert!(
        !text.contains(&info.channels.tickets.servicenow_password),
        "{text}"
    );
    let env = Env::from_pairs(secret_env(&info.channels, "LAB"));
    let config = Config::parse(&text, Some(Path::new("resetctl.yaml")), &env).unwrap();
    assert_eq!(config.tickets.default.as_deref(), Some("servicenow"));
    let dir = tempfile::tempdir().unwrap();
    let audit = resetctl::audit::AuditHandle::open(&resetctl::audit::AuditConfig::new(
        dir.path().join("audit.jsonl"),
    ))
    .await
    .unwrap();
    let sink = tickets::build(&config.tickets, http(), &env, &audit).unwrap();
    assert_eq!(sink.name(), "servicenow");
    let r = sink.open(&ticket("vr-demo")).await.unwrap();
    assert!(r.number.starts_with("INC"), "{r:?}");
    assert_eq!(desk(&info, "servicenow").await.len(), 1);
    emu.shutdown().await;
}
