//! The verification runtime end to end against the emulated tenant on 127.0.0.1: the user
//! and manager looked up through Graph, pushes through the emulated Duo, the manager's card
//! through the Teams Workflows sink, the SMS through the ACS sink, the reset in the
//! emulator's write log, every transition in the audit trail. Time is a manual clock, so
//! the 2-minute push and 5-minute card timers are exact.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use resetctl::audit::{AuditConfig, AuditHandle};
use resetctl::comms::channels::{self, ChannelContext};
use resetctl::comms::template::{Catalog, sample_organisation};
use resetctl::config::{Config, Env};
use resetctl::directory::Directory;
use resetctl::emulator::sinks::push::{Script, scripted};
use resetctl::emulator::{ConnectionInfo, RunningEmulator};
use resetctl::providers::push::duo::{Digest, DuoPush, DuoSettings};
use resetctl::store::SqliteStore;
use resetctl::verify::clock::ManualClock;
use resetctl::verify::facts::{LiveFacts, NoRuns};
use resetctl::verify::runtime::{
    ApprovalLinks, Ask, AuditTicketSink, LinkMinter, Parts, Runtime, TicketSink,
};
use resetctl::verify::store::{MemoryRequestStore, RequestStore, StoredRequest};
use resetctl::verify::token::{Client, Decision, Refusal, TokenKey, TokenMinter, Tokens};
use resetctl::verify::{EscalationReason, Outcome, Person, Policy, State, Timer, Via};
use secrecy::SecretString;
use serde_json::Value;

use crate::util::{TenantConfig, http, inspect, start_emulator, tenant_file_config};

const SEED: u64 = 23;
pub(crate) const MANAGER_MOBILE: &str = "+14255550199";
/// The help-desk agent's directory mobile.
pub(crate) const DESK_MOBILE: &str = "+14255550188";
/// The IT/security approver group of the MFA reset (ivan, sven, and the desk agent).
pub(crate) const APPROVERS: &str = "5c6b7d1e-0a4f-4c39-9a53-1a2b3c4d5e01";
/// The temporary Conditional Access group of the MFA reset.
pub(crate) const ACCESS_GROUP: &str = "5c6b7d1e-0a4f-4c39-9a53-1a2b3c4d5e02";

/// Links that say which request and expiry they were minted for (signing is not this
/// part's business).
pub(crate) struct TestLinks;

impl LinkMinter for TestLinks {
    fn mint<'a>(
        &'a self,
        request: &'a str,
        approver: &'a Person,
        expires: Timestamp,
    ) -> BoxFuture<'a, Result<ApprovalLinks, String>> {
        let q = format!("{request}?for={}&exp={}", approver.id, expires.as_second());
        Box::pin(async move {
            Ok(ApprovalLinks {
                approve_url: format!("https://approve.test/a/{q}"),
                deny_url: format!("https://approve.test/d/{q}"),
            })
        })
    }
}

/// The first `user<n>@contoso.example` whose push the emulator answers with `script`.
pub(crate) fn upn_scripted(script: Script) -> String {
    (0..1000)
        .map(|n| format!("user{n}@contoso.example"))
        .find(|upn| scripted(SEED, upn) == script)
        .unwrap()
}

pub(crate) struct Lab {
    pub(crate) emu: RunningEmulator,
    _dir: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) directory: Arc<dyn Directory>,
    clock: Arc<ManualClock>,
    pub(crate) audit: AuditHandle,
    channels: Vec<Arc<dyn resetctl::comms::Channel>>,
    pub(crate) requester: Person,
}

impl Lab {
    pub(crate) async fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let mut users = String::from(
            "verified_domain: contoso.example\nusers:\n  \
             - { upn: mara@contoso.example, display_name: Mara Manager, mobile_phone: \"+1 425 555 0199\" }\n  \
             - { upn: desk@contoso.example, display_name: Desk Agent, mobile_phone: \"+1 425 555 0188\" }\n  \
             - { upn: ivan@contoso.example, display_name: Ivan Security }\n  \
             - { upn: sven@contoso.example, display_name: Sven Security }\n  \
             - { upn: mfa@contoso.example, display_name: Lost Phone, manager: mara@contoso.example, mobile_phone: \"+1 425 555 0177\", methods: [authenticator, phone, fido2] }\n  \
             - { upn: pim@contoso.example, display_name: Eligible Admin, manager: mara@contoso.example, eligible_roles: [Global Administrator] }\n  \
             - { upn: grp@contoso.example, display_name: Group Admin, manager: mara@contoso.example }\n  \
             - { upn: risky@contoso.example, display_name: Risky User, manager: mara@contoso.example, risk: { level: high } }\n",
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
        users.push_str(
            "groups:\n  \
             - { display_name: Helpdesk Admins, role_assignable: true, \
             members: [grp@contoso.example], roles: [Helpdesk Administrator] }\n",
        );
        users.push_str(&format!(
            "  - {{ id: {APPROVERS}, display_name: IT Security Approvers, \
             members: [ivan@contoso.example, sven@contoso.example, desk@contoso.example] }}\n  \
             - {{ id: {ACCESS_GROUP}, display_name: MFA Registration }}\n"
        ));
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
        let requester = directory
            .get_user("desk@contoso.example")
            .await
            .unwrap()
            .unwrap();
        Lab {
            channels: senders(&info),
            emu,
            _dir: dir,
            root,
            directory,
            clock: Arc::new(ManualClock::new(
                Timestamp::from_second(1_800_000_000).unwrap(),
            )),
            audit,
            requester: Person {
                id: requester.id,
                upn: requester.upn,
            },
        }
    }

    pub(crate) fn info(&self) -> &ConnectionInfo {
        self.emu.info()
    }

    fn runtime(&self, store: Arc<dyn RequestStore>) -> Runtime {
        self.runtime_with_links(store, Arc::new(TestLinks))
    }

    fn runtime_with_links(
        &self,
        store: Arc<dyn RequestStore>,
        links: Arc<dyn LinkMinter>,
    ) -> Runtime {
        self.runtime_with(store, links, Policy::default(), self.directory.clone())
    }

    /// A runtime over `store` whose links come from `links` and tickets go to `tickets`.
    pub(crate) fn runtime_with_tickets(
        &self,
        store: Arc<dyn RequestStore>,
        links: Arc<dyn LinkMinter>,
        tickets: Arc<dyn TicketSink>,
    ) -> Runtime {
        self.runtime_from(
            store,
            links,
            Policy::default(),
            self.directory.clone(),
            tickets,
        )
    }

    /// A runtime with its own policy and directory (a test's wrapper around the lab's).
    pub(crate) fn runtime_with(
        &self,
        store: Arc<dyn RequestStore>,
        links: Arc<dyn LinkMinter>,
        policy: Policy,
        directory: Arc<dyn Directory>,
    ) -> Runtime {
        let tickets = Arc::new(AuditTicketSink::new(self.audit.clone()));
        self.runtime_from(store, links, policy, directory, tickets)
    }

    fn runtime_from(
        &self,
        store: Arc<dyn RequestStore>,
        links: Arc<dyn LinkMinter>,
        policy: Policy,
        directory: Arc<dyn Directory>,
        tickets: Arc<dyn TicketSink>,
    ) -> Runtime {
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
            policy,
            clock: self.clock.clone(),
            store,
            push: Arc::new(push),
            push_poll: Duration::from_millis(20),
            channels: self.channels.clone(),
            catalog: Arc::new(Catalog::embedded()),
            organisation: sample_organisation(),
            service_desk: None,
            directory: directory.clone(),
            facts: Arc::new(LiveFacts::new("contoso", directory, Arc::new(NoRuns), &[])),
            audit: self.audit.clone(),
            links,
            tickets,
        })
    }

    pub(crate) fn ask(&self, upn: &str, device_available: bool) -> Ask {
        Ask {
            user: upn.to_owned(),
            requester: self.requester.clone(),
            requester_label: "helpdesk agent desk".into(),
            origin: "test".into(),
            reason: "locked out after travelling".into(),
            device_available,
            manager_fallback: true,
            outcome: Outcome::PasswordReset,
        }
    }

    pub(crate) fn clock_now(&self) -> Timestamp {
        use resetctl::verify::clock::Clock;
        self.clock.now()
    }

    pub(crate) fn advance(&self, secs: i64) {
        self.clock.advance(SignedDuration::from_secs(secs));
    }

    pub(crate) async fn outbox(&self, channel: &str) -> Vec<Value> {
        inspect(self.info(), &format!("outbox?channel={channel}")).await["messages"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// SMS the ACS sink took for `number`.
    pub(crate) async fn texts_to(&self, number: &str) -> Vec<Value> {
        self.outbox("sms")
            .await
            .into_iter()
            .filter(|m| m["to"].as_array().unwrap().iter().any(|t| t == number))
            .collect()
    }

    /// Password-profile writes the emulator applied to user `id`.
    async fn resets_of(&self, id: &str) -> usize {
        inspect(self.info(), "writes").await["writes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["method"] == "PATCH" && w["target"] == id && w["applied"] == true)
            .count()
    }

    /// The trail's records of `action`, as JSON.
    pub(crate) fn trail(&self, action: &str) -> Vec<Value> {
        trail_records(&self.root.join("audit.jsonl"))
            .into_iter()
            .filter(|r| r["action"] == action)
            .collect()
    }

    pub(crate) async fn user_id(&self, upn: &str) -> String {
        self.directory.get_user(upn).await.unwrap().unwrap().id
    }
}

fn trail_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
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

/// Wait (real time, up to 15 s) until request `id` satisfies `done` and every saved
/// action has run (the state is saved before its actions run).
pub(crate) async fn until(
    store: &dyn RequestStore,
    id: &str,
    done: impl Fn(&State) -> bool,
) -> StoredRequest {
    for _ in 0..750 {
        let r = store.load(id).await.unwrap().unwrap();
        if done(&r.flow.state) && store.pending_actions().await.unwrap().is_empty() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "request {id} stuck in {:?}",
        store.load(id).await.unwrap().unwrap().flow.state
    );
}

/// Facts the caller cannot supply: an eligible or group-granted administrator, and a user
/// Identity Protection rates high risk, are never verified by push or manager; no push or
/// card goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looked_up_roles_and_risk_skip_the_automated_paths() {
    let lab = Lab::new().await;
    let store: Arc<dyn RequestStore> = Arc::new(MemoryRequestStore::new());
    let rt = lab.runtime(store.clone());
    for (upn, reason) in [
        ("pim@contoso.example", EscalationReason::CriticalRole),
        ("grp@contoso.example", EscalationReason::CriticalRole),
        ("risky@contoso.example", EscalationReason::HighRisk),
    ] {
        let id = rt.request(lab.ask(upn, true)).await.unwrap();
        let done = until(store.as_ref(), &id, State::is_final).await;
        match &done.flow.state {
            State::Escalated { reasons, .. } => assert_eq!(reasons, &vec![reason], "{upn}"),
            other => panic!("{upn}: {other:?}"),
        }
    }
    assert!(lab.outbox("push").await.is_empty());
    // The only cards are the escalations to the service desk: no approval link went out.
    let cards = format!("{:?}", lab.outbox("teams").await);
    assert!(!cards.contains("approve.test"), "{cards}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_a_an_approved_push_resets_the_password_through_graph() {
    let lab = Lab::new().await;
    let store = Arc::new(MemoryRequestStore::new());
    let rt = lab.runtime(store.clone());
    let upn = upn_scripted(Script::Approve);
    let user_id = lab.user_id(&upn).await;
    assert_eq!(lab.resets_of(&user_id).await, 0);

    let id = rt.request(lab.ask(&upn, true)).await.unwrap();
    let done = until(store.as_ref(), &id, State::is_final).await;
    assert!(
        matches!(done.flow.state, State::Completed { via: Via::Push, .. }),
        "{:?}",
        done.flow.state
    );
    // The manager was looked up through Graph at request time.
    let manager = done.flow.context.manager.as_ref().unwrap();
    assert_eq!(manager.person.upn, "mara@contoso.example");
    assert_eq!(manager.mobile.as_deref(), Some(MANAGER_MOBILE));
    // One push through Duo, one applied password-profile write, no card.
    let pushes = lab.outbox("push").await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(lab.resets_of(&user_id).await, 1);
    assert!(lab.outbox("teams").await.is_empty());
    // The user was told by SMS at their directory number: the push, then the outcome.
    let texts = lab.texts_to("+14255550110").await;
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[1]["content"]
            .as_str()
            .unwrap()
            .contains("is complete")
    );
    // The trail: requested → push_sent → verified → completed, the push masked.
    let moves: Vec<(String, String)> = lab
        .trail("verify.transition")
        .iter()
        .map(|r| {
            (
                r["details"]["from"].as_str().unwrap().to_owned(),
                r["details"]["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("requested".into(), "push_sent".into()),
            ("push_sent".into(), "verified".into()),
            ("verified".into(), "completed".into())
        ]
    );
    let first = &lab.trail("verify.transition")[0];
    assert_eq!(first["details"]["destination"], "u***@contoso.example");
    assert_eq!(first["details"]["outcome"], "password_reset");
    // Nothing is left to run, and no timer is armed.
    assert!(store.pending_actions().await.unwrap().is_empty());
    assert!(store.timers(&id).await.unwrap().is_empty());
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_a_timed_out_sends_the_card_then_the_sms_at_exactly_five_minutes() {
    let lab = Lab::new().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("runs.sqlite")).unwrap());
    let rt = lab.runtime(store.clone());
    let id = rt
        .request(lab.ask(&upn_scripted(Script::Timeout), true))
        .await
        .unwrap();
    let r = store.load(&id).await.unwrap().unwrap();
    assert!(matches!(r.flow.state, State::PushSent { .. }));

    // The push timer: not a second early.
    lab.advance(119);
    assert_eq!(rt.fire_due_timers().await.unwrap(), 0);
    lab.advance(1);
    assert_eq!(rt.fire_due_timers().await.unwrap(), 1);
    let r = store.load(&id).await.unwrap().unwrap();
    assert!(
        matches!(r.flow.state, State::ManagerCardSent { .. }),
        "{:?}",
        r.flow.state
    );
    let cards = lab.outbox("teams").await;
    assert_eq!(cards.len(), 1);
    let card = cards[0]["content"].as_str().unwrap();
    assert!(card.contains("mara@contoso.example"), "{card}");
    assert!(
        card.contains(&format!("https://approve.test/a/{id}")),
        "{card}"
    );

    // No answer: the SMS goes out 300 s after the card, not a second before.
    lab.advance(299);
    assert_eq!(rt.fire_due_timers().await.unwrap(), 0);
    assert!(lab.texts_to(MANAGER_MOBILE).await.is_empty());
    lab.advance(1);
    assert_eq!(rt.fire_due_timers().await.unwrap(), 1);
    let texts = lab.texts_to(MANAGER_MOBILE).await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    let text = texts[0]["content"].as_str().unwrap();
    assert!(
        text.contains(&format!("https://approve.test/a/{id}")),
        "{text}"
    );
    let r = store.load(&id).await.unwrap().unwrap();
    let State::ManagerSmsSent { sent_at, due, .. } = r.flow.state else {
        panic!("{:?}", r.flow.state);
    };
    assert_eq!(
        sent_at,
        Timestamp::from_second(1_800_000_000 + 420).unwrap()
    );
    assert_eq!(store.timers(&id).await.unwrap()[0].timer, Timer::Link);
    assert_eq!(store.timers(&id).await.unwrap()[0].due, due);
    // The trail has the SMS masked, never the number or the link.
    let trail = std::fs::read_to_string(lab.root.join("audit.jsonl")).unwrap();
    assert!(!trail.contains(MANAGER_MOBILE) && !trail.contains("approve.test"));
    assert!(trail.contains("+14******199"));
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_path_b_fires_the_sms_timer_once() {
    let lab = Lab::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.sqlite");
    let id = {
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        let rt = lab.runtime(store.clone());
        // No device: straight to the manager's card.
        let id = rt
            .request(lab.ask(&upn_scripted(Script::Approve), false))
            .await
            .unwrap();
        let r = store.load(&id).await.unwrap().unwrap();
        assert!(matches!(r.flow.state, State::ManagerCardSent { .. }));
        id
        // The process "dies": runtime and store dropped.
    };
    assert_eq!(lab.outbox("teams").await.len(), 1);
    lab.advance(300);
    // Two new processes on the same file race for the card timer.
    let a = lab.runtime(Arc::new(SqliteStore::open(&path).unwrap()));
    let b = lab.runtime(Arc::new(SqliteStore::open(&path).unwrap()));
    let (fa, fb) = tokio::join!(a.fire_due_timers(), b.fire_due_timers());
    assert_eq!(fa.unwrap() + fb.unwrap(), 1);
    assert_eq!(a.fire_due_timers().await.unwrap(), 0);
    assert_eq!(lab.texts_to(MANAGER_MOBILE).await.len(), 1);
    let store = SqliteStore::open(&path).unwrap();
    let r = store.load(&id).await.unwrap().unwrap();
    assert!(matches!(r.flow.state, State::ManagerSmsSent { .. }));
    assert!(store.pending_actions().await.unwrap().is_empty());
    // Resuming finds nothing left to do: nothing is sent twice.
    assert_eq!(a.resume().await.unwrap(), 0);
    assert_eq!(lab.texts_to(MANAGER_MOBILE).await.len(), 1);
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_push_escalates_and_is_audited_as_suspicious() {
    let lab = Lab::new().await;
    let store = Arc::new(MemoryRequestStore::new());
    let rt = lab.runtime(store.clone());
    let upn = upn_scripted(Script::Deny);
    let user_id = lab.user_id(&upn).await;
    let id = rt.request(lab.ask(&upn, true)).await.unwrap();
    let done = until(store.as_ref(), &id, State::is_final).await;
    let State::Escalated {
        reasons,
        suspicious,
        ..
    } = &done.flow.state
    else {
        panic!("{:?}", done.flow.state);
    };
    assert_eq!(reasons, &[EscalationReason::PushDenied]);
    assert!(suspicious);
    // Audited as suspicious, with a ticket; the escalation card went to the service desk,
    // the manager was never asked and the password never touched.
    let last = lab.trail("verify.transition").pop().unwrap();
    assert_eq!(last["details"]["to"], "escalated");
    assert_eq!(last["details"]["suspicious"], true);
    assert_eq!(last["details"]["reason"], "push_denied");
    let tickets = lab.trail("verify.ticket");
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["details"]["suspicious"], true);
    let cards = lab.outbox("teams").await;
    assert_eq!(cards.len(), 1);
    let card = cards[0]["content"].as_str().unwrap();
    assert!(
        card.contains("could not be verified automatically"),
        "{card}"
    );
    assert!(card.contains("(status: suspicious)"), "{card}");
    assert_eq!(
        tickets[0]["details"]["ticket"],
        format!("VERIFY-{id}").as_str()
    );
    assert!(lab.texts_to(MANAGER_MOBILE).await.is_empty());
    assert_eq!(lab.resets_of(&user_id).await, 0);
    lab.emu.shutdown().await;
}

/// A crash after a transition was saved and before its actions ran: the next process runs
/// them (the SMS goes out once), and a second resume runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_saved_before_a_crash_run_once_on_resume() {
    use resetctl::verify::store::{ArmedTimer, Save};
    use resetctl::verify::{Action, Event, step};
    let lab = Lab::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.sqlite");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let rt = lab.runtime(store.clone());
    let id = rt
        .request(lab.ask(&upn_scripted(Script::Approve), false))
        .await
        .unwrap();
    lab.advance(300);
    // The card timer fires and the transition is saved; then the process dies.
    let r = store.load(&id).await.unwrap().unwrap();
    let fire = Event::TimerFired { timer: Timer::Card };
    let (flow, actions) = step(&r.flow, &fire, lab.clock_now(), &Policy::default()).unwrap();
    let mut save = Save {
        flow,
        at: lab.clock_now(),
        fired: Some(Timer::Card),
        arm: Vec::new(),
        disarm: Vec::new(),
        actions: Vec::new(),
    };
    for action in actions {
        match action {
            Action::ArmTimer { timer, due } => save.arm.push(ArmedTimer { timer, due }),
            other => save.actions.push(other),
        }
    }
    store.save(&id, r.version, &save).await.unwrap();
    drop((rt, store));
    assert!(lab.texts_to(MANAGER_MOBILE).await.is_empty());

    let rt = lab.runtime(Arc::new(SqliteStore::open(&path).unwrap()));
    // The timer was consumed by the saved transition: firing finds nothing.
    assert_eq!(rt.fire_due_timers().await.unwrap(), 0);
    assert_eq!(
        rt.resume().await.unwrap(),
        2,
        "the SMS and the audit record"
    );
    assert_eq!(lab.texts_to(MANAGER_MOBILE).await.len(), 1);
    assert_eq!(rt.resume().await.unwrap(), 0);
    assert_eq!(lab.texts_to(MANAGER_MOBILE).await.len(), 1);
    let last = lab.trail("verify.transition").pop().unwrap();
    assert_eq!(last["details"]["to"], "manager_sms_sent");
    lab.emu.shutdown().await;
}

/// The link after `label` (`Yes:`, `No:`) in an SMS.
fn link_after<'a>(text: &'a str, label: &str) -> &'a str {
    text.split_once(label)
        .unwrap()
        .1
        .split_whitespace()
        .next()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_s_sms_link_is_a_signed_one_time_token_that_completes_the_reset() {
    let lab = Lab::new().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("runs.sqlite")).unwrap());
    let tokens = Tokens::new(TokenKey::new(&[0x5a; 32]).unwrap(), store.clone());
    let minter = TokenMinter::new(tokens.clone(), "https://runner.example/");
    let rt = lab.runtime_with_links(store.clone(), Arc::new(minter));
    let upn = upn_scripted(Script::Timeout);
    let user_id = lab.user_id(&upn).await;
    // No device: Path B at once; no answer to the card: the SMS after 300 s.
    let id = rt.request(lab.ask(&upn, false)).await.unwrap();
    lab.advance(300);
    assert_eq!(rt.fire_due_timers().await.unwrap(), 1);
    let texts = lab.texts_to(MANAGER_MOBILE).await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    let text = texts[0]["content"].as_str().unwrap();
    let approve = link_after(text, "Yes:")
        .strip_prefix(&format!("https://runner.example/approve/{id}/"))
        .unwrap_or_else(|| panic!("{text}"));
    let deny = link_after(text, "No:")
        .strip_prefix(&format!("https://runner.example/deny/{id}/"))
        .unwrap_or_else(|| panic!("{text}"));
    let client = Client {
        ip: Some("203.0.113.5".into()),
        user_agent: Some("Mobile Safari".into()),
    };
    let now = lab.clock_now();
    // The deny link's token does not approve; the approve link's token is bound to this
    // request only.
    assert_eq!(
        tokens
            .redeem(deny, Some(&id), Decision::Approve, &client, now)
            .await
            .unwrap_err(),
        Refusal::WrongDecision
    );
    assert_eq!(
        tokens
            .redeem(approve, Some("vr-other"), Decision::Approve, &client, now)
            .await
            .unwrap_err(),
        Refusal::WrongRequest
    );
    let (bound, event) = tokens
        .redeem(approve, Some(&id), Decision::Approve, &client, now)
        .await
        .unwrap();
    let manager_id = lab.user_id("mara@contoso.example").await;
    assert_eq!(
        (bound.request.as_str(), bound.approver.as_str()),
        (id.as_str(), manager_id.as_str())
    );
    rt.apply(&id, event).await.unwrap();
    let done = until(store.as_ref(), &id, State::is_final).await;
    assert!(
        matches!(
            done.flow.state,
            State::Completed {
                via: Via::ManagerLink,
                ..
            }
        ),
        "{:?}",
        done.flow.state
    );
    assert_eq!(lab.resets_of(&user_id).await, 1);
    // A second click is refused before it reaches the flow.
    assert_eq!(
        tokens
            .redeem(approve, Some(&id), Decision::Approve, &client, now)
            .await
            .unwrap_err(),
        Refusal::Replayed
    );
    // The trail names the token by its id and never holds a token or a link.
    let verified = lab
        .trail("verify.transition")
        .into_iter()
        .find(|r| r["details"]["to"] == "verified")
        .unwrap();
    assert_eq!(verified["details"]["approval_id"], bound.token_id.as_str());
    assert_eq!(verified["details"]["approver_id"], manager_id.as_str());
    let trail = std::fs::read_to_string(lab.root.join("audit.jsonl")).unwrap();
    for secret in [approve, deny, "runner.example"] {
        assert!(!trail.contains(secret), "{secret}");
    }
    lab.emu.shutdown().await;
}
