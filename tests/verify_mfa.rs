//! The MFA reset (two-stage approval) through the verification runtime against the
//! emulated tenant on 127.0.0.1: the manager (or the requester who is the manager), then a
//! member of the IT approver group read from the directory, then the user's methods
//! deleted, a Temporary Access Pass created and texted to the requester and the manager
//! only, the temporary access group joined and left, all in the emulator's write log and
//! the audit trail; the pass nowhere else.

use std::sync::Arc;

use futures::future::BoxFuture;
use resetctl::directory::*;
use resetctl::store::SqliteStore;
use resetctl::verify::runtime::Runtime;
use resetctl::verify::store::{MemoryRequestStore, RequestStore};
use resetctl::verify::{Approver, EscalationReason, Event, Outcome, Person, Policy, State, Via};
use serde_json::Value;

use crate::util::inspect;
use crate::verify_runtime::{
    ACCESS_GROUP, APPROVERS, DESK_MOBILE, Lab, MANAGER_MOBILE, TestLinks, until,
};

fn policy() -> Policy {
    let mut p = Policy::default();
    p.mfa.approver_group = Some(APPROVERS.into());
    p.mfa.access_group = Some(ACCESS_GROUP.into());
    p.mfa.tap_lifetime_minutes = 120;
    p
}

fn runtime(lab: &Lab, store: Arc<dyn RequestStore>) -> Runtime {
    lab.runtime_with(store, Arc::new(TestLinks), policy(), lab.directory.clone())
}

async fn mara(lab: &Lab) -> Person {
    Person {
        id: lab.user_id("mara@contoso.example").await,
        upn: "mara@contoso.example".into(),
    }
}

fn mfa_ask(lab: &Lab, requester: &Person) -> resetctl::verify::runtime::Ask {
    let mut ask = lab.ask("mfa@contoso.example", false);
    ask.outcome = Outcome::MfaReset;
    ask.requester = requester.clone();
    ask.reason = "phone lost on a trip".into();
    ask
}

/// An answer through a link, as the approval service applies it after redeeming the token.
async fn answer(lab: &Lab, upn: &str, approve: bool) -> Event {
    Event::LinkUsed {
        approve,
        approver: Approver {
            id: lab.user_id(upn).await,
            ip: Some("203.0.113.9".into()),
            user_agent: Some("Edge".into()),
            token_id: Some(format!("tok-{upn}")),
        },
    }
}

/// The applied writes of the emulator's log as (method, path).
async fn writes(lab: &Lab) -> Vec<(String, String)> {
    inspect(lab.info(), "writes").await["writes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["applied"] == true)
        .map(|w| {
            (
                w["method"].as_str().unwrap().to_owned(),
                w["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn count(writes: &[(String, String)], method: &str, path: &str) -> usize {
    writes
        .iter()
        .filter(|(m, p)| m == method && p.contains(path))
        .count()
}

/// Cards the Teams sink took that mention `upn`.
async fn cards_to(lab: &Lab, upn: &str) -> Vec<Value> {
    lab.outbox("teams")
        .await
        .into_iter()
        .filter(|m| m["content"].as_str().unwrap().contains(upn))
        .collect()
}

/// The `verify.transition` records' `reason`s, in order.
fn reasons(lab: &Lab) -> Vec<String> {
    lab.trail("verify.transition")
        .iter()
        .map(|r| r["details"]["reason"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_asks_a_member_approves_and_only_the_manager_gets_the_pass() {
    let lab = Lab::new().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.sqlite");
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let rt = runtime(&lab, store.clone());
    let manager = mara(&lab).await;
    let user_id = lab.user_id("mfa@contoso.example").await;

    let id = rt.request(mfa_ask(&lab, &manager)).await.unwrap();
    let r = store.load(&id).await.unwrap().unwrap();
    let State::ApproversAsked {
        first, approvers, ..
    } = &r.flow.state
    else {
        panic!("{:?}", r.flow.state);
    };
    // Stage 1 is implicit and recorded as such; no push and no card to the manager.
    assert_eq!(first.via, Via::RequesterIsManager);
    assert_eq!(reasons(&lab)[0], "requester_is_manager");
    let first_record = &lab.trail("verify.transition")[0];
    assert_eq!(first_record["details"]["outcome"], "mfa_reset");
    assert!(lab.outbox("push").await.is_empty());
    // Every member of the group as read now got their own card with their own links.
    assert_eq!(approvers.len(), 3, "{approvers:?}");
    for upn in [
        "ivan@contoso.example",
        "sven@contoso.example",
        "desk@contoso.example",
    ] {
        let cards = cards_to(&lab, upn).await;
        assert_eq!(cards.len(), 1, "{upn}");
        let card = cards[0]["content"].as_str().unwrap();
        let member = lab.user_id(upn).await;
        assert!(
            card.contains(&format!("https://approve.test/a/{id}?for={member}")),
            "{card}"
        );
        assert!(card.contains("phone lost on a trip"), "{card}");
    }
    assert!(
        writes(&lab).await.is_empty(),
        "nothing changed before stage 2"
    );

    rt.apply(&id, answer(&lab, "ivan@contoso.example", true).await)
        .await
        .unwrap();
    let r = store.load(&id).await.unwrap().unwrap();
    assert!(
        matches!(
            r.flow.state,
            State::AccessGroupHeld {
                member_before: false,
                ..
            }
        ),
        "{:?}",
        r.flow.state
    );
    // The write log: three methods deleted, one pass, one membership.
    let log = writes(&lab).await;
    let methods = format!("/users/{user_id}/authentication/");
    assert_eq!(count(&log, "DELETE", &methods), 3, "{log:?}");
    assert_eq!(
        count(
            &log,
            "POST",
            &format!("{methods}temporaryAccessPassMethods")
        ),
        1
    );
    assert_eq!(
        count(&log, "POST", &format!("/groups/{ACCESS_GROUP}/members")),
        1
    );
    let user = inspect(lab.info(), "users/mfa@contoso.example").await;
    assert_eq!(user["methods"], serde_json::json!([]));
    assert_eq!(user["groups"], serde_json::json!(["MFA Registration"]));
    let tap = user["temporaryAccessPass"]["temporaryAccessPass"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(user["temporaryAccessPass"]["lifetimeInMinutes"], 120);

    // The pass went to the manager's directory mobile, and to nobody else.
    let texts = lab.texts_to(MANAGER_MOBILE).await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0]["content"].as_str().unwrap().contains(&tap));
    for (channel, messages) in [
        ("teams", lab.outbox("teams").await),
        ("push", lab.outbox("push").await),
        ("webhook", lab.outbox("webhook").await),
        ("email", lab.outbox("email").await),
    ] {
        assert!(!format!("{messages:?}").contains(&tap), "{channel}");
    }
    let others: Vec<Value> = lab
        .outbox("sms")
        .await
        .into_iter()
        .filter(|m| {
            !m["to"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == MANAGER_MOBILE)
        })
        .collect();
    assert!(!format!("{others:?}").contains(&tap));
    // The security channel heard of it, without the pass.
    let soc: Vec<Value> = lab
        .outbox("teams")
        .await
        .into_iter()
        .filter(|m| m["content"].as_str().unwrap().contains("were reset"))
        .collect();
    assert_eq!(soc.len(), 1);
    // Not in the trail, the store (its file and its write-ahead log), or a log line.
    let trail = std::fs::read_to_string(lab.root.join("audit.jsonl")).unwrap();
    assert!(!trail.contains(&tap));
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(&tap));
    }
    // The approval and the removal counts are audited.
    let approval = lab
        .trail("verify.transition")
        .into_iter()
        .find(|r| r["details"]["reason"] == "approver_group")
        .unwrap();
    assert_eq!(
        approval["details"]["approver_id"],
        lab.user_id("ivan@contoso.example").await.as_str()
    );
    let removal = &lab.trail("verify.mfa_methods")[0];
    assert_eq!(removal["details"]["removed"], 3);

    // The membership ends through the flow's own timer, once.
    lab.advance(8 * 3600);
    assert_eq!(rt.fire_due_timers().await.unwrap(), 1);
    let done = until(store.as_ref(), &id, State::is_final).await;
    assert!(matches!(
        done.flow.state,
        State::Completed {
            via: Via::ApproverGroup,
            ..
        }
    ));
    let log = writes(&lab).await;
    assert_eq!(
        count(
            &log,
            "DELETE",
            &format!("/groups/{ACCESS_GROUP}/members/{user_id}")
        ),
        1
    );
    assert_eq!(rt.fire_due_timers().await.unwrap(), 0);
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_help_desk_asks_the_manager_first_and_the_requester_cannot_approve_stage_two() {
    let lab = Lab::new().await;
    let store = Arc::new(MemoryRequestStore::new());
    let rt = runtime(&lab, store.clone());
    let id = rt.request(mfa_ask(&lab, &lab.requester)).await.unwrap();
    let r = store.load(&id).await.unwrap().unwrap();
    assert!(
        matches!(r.flow.state, State::ManagerCardSent { .. }),
        "{:?}",
        r.flow.state
    );
    let card = cards_to(&lab, "mara@contoso.example").await;
    assert_eq!(card.len(), 1);
    assert!(card[0]["content"].as_str().unwrap().contains("(MFA)"));

    // The manager approves the card; stage 2 asks the group, without the requester.
    let manager = mara(&lab).await;
    rt.apply(
        &id,
        Event::CardAnswered {
            approve: true,
            approver: Approver {
                id: manager.id.clone(),
                ip: None,
                user_agent: Some("Teams".into()),
                token_id: Some("card-1".into()),
            },
        },
    )
    .await
    .unwrap();
    let r = store.load(&id).await.unwrap().unwrap();
    let State::ApproversAsked { approvers, .. } = &r.flow.state else {
        panic!("{:?}", r.flow.state);
    };
    assert_eq!(approvers.len(), 2);
    assert!(cards_to(&lab, "desk@contoso.example").await.is_empty());
    assert_eq!(reasons(&lab).last().unwrap(), "excluded_requester");

    // The requester answering anyway is refused and audited; nothing moves.
    let state = rt
        .apply(&id, answer(&lab, "desk@contoso.example", true).await)
        .await
        .unwrap();
    assert!(matches!(state, State::ApproversAsked { .. }));
    let refused = lab.trail("verify.transition").pop().unwrap();
    assert_eq!(refused["details"]["reason"], "approver_is_requester");
    assert_eq!(refused["details"]["suspicious"], true);
    assert_eq!(refused["details"]["approver_id"], lab.requester.id.as_str());
    assert!(writes(&lab).await.is_empty());

    // A member denies: the request ends, the requester is told at their directory mobile.
    rt.apply(&id, answer(&lab, "sven@contoso.example", false).await)
        .await
        .unwrap();
    let done = until(store.as_ref(), &id, State::is_final).await;
    assert!(matches!(done.flow.state, State::Denied { stage: 2, .. }));
    let told = lab.texts_to(DESK_MOBILE).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0]["content"].as_str().unwrap().contains("was denied"));
    assert!(writes(&lab).await.is_empty(), "nothing was changed");
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_two_unanswered_escalates_and_a_privileged_user_is_never_reset() {
    let lab = Lab::new().await;
    let store = Arc::new(MemoryRequestStore::new());
    let rt = runtime(&lab, store.clone());
    let manager = mara(&lab).await;
    let id = rt.request(mfa_ask(&lab, &manager)).await.unwrap();
    lab.advance(3599);
    assert_eq!(rt.fire_due_timers().await.unwrap(), 0);
    lab.advance(1);
    assert_eq!(rt.fire_due_timers().await.unwrap(), 1);
    let done = until(store.as_ref(), &id, State::is_final).await;
    let State::Escalated { reasons, .. } = &done.flow.state else {
        panic!("{:?}", done.flow.state);
    };
    assert_eq!(reasons, &[EscalationReason::ApproversNoAnswer]);
    assert_eq!(lab.trail("verify.ticket").len(), 1);

    // An eligible administrator: a ticket, no approver asked, nothing written.
    let mut ask = mfa_ask(&lab, &manager);
    ask.user = "pim@contoso.example".into();
    let id = rt.request(ask).await.unwrap();
    let done = until(store.as_ref(), &id, State::is_final).await;
    let State::Escalated { reasons, .. } = &done.flow.state else {
        panic!("{:?}", done.flow.state);
    };
    assert_eq!(reasons, &[EscalationReason::CriticalRole]);
    assert!(writes(&lab).await.is_empty());
    lab.emu.shutdown().await;
}

/// A crash after the methods were removed and before the pass was issued: the next process
/// resumes with the pass; nothing is deleted twice and one pass is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_removing_methods_and_issuing_the_pass_resumes_once() {
    let lab = Lab::new().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.sqlite");
    let manager = mara(&lab).await;
    let user_id = lab.user_id("mfa@contoso.example").await;
    let id = {
        let store = Arc::new(SqliteStore::open(&db).unwrap());
        // This process hangs in the pass's creation until it is killed.
        let hang: Arc<dyn Directory> = Arc::new(HangOnTap(lab.directory.clone()));
        let rt = lab.runtime_with(store.clone(), Arc::new(TestLinks), policy(), hang);
        let id = rt.request(mfa_ask(&lab, &manager)).await.unwrap();
        let approve = answer(&lab, "sven@contoso.example", true).await;
        let task = tokio::spawn({
            let (rt, id) = (rt.clone(), id.clone());
            async move { rt.apply(&id, approve).await }
        });
        for _ in 0..500 {
            let r = store.load(&id).await.unwrap().unwrap();
            if matches!(r.flow.state, State::MfaResetting { .. })
                && count(&writes(&lab).await, "DELETE", "/authentication/") == 3
                && format!("{:?}", store.pending_actions().await.unwrap()).contains("IssueTap")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        task.abort();
        let _ = task.await;
        id
    };
    let log = writes(&lab).await;
    assert_eq!(count(&log, "DELETE", "/authentication/"), 3, "{log:?}");
    assert_eq!(count(&log, "POST", "temporaryAccessPassMethods"), 0);

    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let rt = runtime(&lab, store.clone());
    assert!(rt.resume().await.unwrap() >= 1);
    let r = store.load(&id).await.unwrap().unwrap();
    assert!(
        matches!(r.flow.state, State::AccessGroupHeld { .. }),
        "{:?}",
        r.flow.state
    );
    let log = writes(&lab).await;
    assert_eq!(
        count(&log, "DELETE", "/authentication/"),
        3,
        "no second removal"
    );
    assert_eq!(
        count(
            &log,
            "POST",
            &format!("/users/{user_id}/authentication/temporaryAccessPassMethods")
        ),
        1,
        "one pass"
    );
    assert_eq!(lab.texts_to(MANAGER_MOBILE).await.len(), 1);
    assert_eq!(rt.resume().await.unwrap(), 0);
    lab.emu.shutdown().await;
}

/// The lab's directory, except that creating a pass never returns (a process stuck there
/// until it is killed).
struct HangOnTap(Arc<dyn Directory>);

impl Directory for HangOnTap {
    fn list_users(&self, query: UserQuery) -> ItemStream<'_, User> {
        self.0.list_users(query)
    }
    fn registration_details(&self, user_ids: Option<Vec<String>>) -> ItemStream<'_, Registration> {
        self.0.registration_details(user_ids)
    }
    fn list_users_with_manager(&self, query: UserQuery) -> ItemStream<'_, (User, Option<String>)> {
        self.0.list_users_with_manager(query)
    }
    fn count_users(&self) -> DirFuture<'_, u64> {
        self.0.count_users()
    }
    fn list_group_members(&self, group_id: &str, transitive: bool) -> ItemStream<'_, User> {
        self.0.list_group_members(group_id, transitive)
    }
    fn get_user<'a>(&'a self, id_or_upn: &'a str) -> DirFuture<'a, Option<User>> {
        self.0.get_user(id_or_upn)
    }
    fn get_group<'a>(&'a self, id: &'a str) -> DirFuture<'a, Option<Group>> {
        self.0.get_group(id)
    }
    fn get_manager<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, Option<Manager>> {
        self.0.get_manager(user_id)
    }
    fn list_role_assignments(&self, filter: Option<String>) -> ItemStream<'_, RoleAssignment> {
        self.0.list_role_assignments(filter)
    }
    fn list_role_eligibilities(&self, filter: Option<String>) -> ItemStream<'_, RoleEligibility> {
        self.0.list_role_eligibilities(filter)
    }
    fn list_risky_users(&self, levels: Vec<RiskLevel>) -> ItemStream<'_, RiskyUser> {
        self.0.list_risky_users(levels)
    }
    fn force_password_change<'a>(
        &'a self,
        user_id: &'a str,
        change: &'a PasswordChange,
    ) -> DirFuture<'a, ()> {
        self.0.force_password_change(user_id, change)
    }
    fn revoke_sessions<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, ()> {
        self.0.revoke_sessions(user_id)
    }
    fn list_auth_methods<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, Vec<AuthMethod>> {
        self.0.list_auth_methods(user_id)
    }
    fn delete_auth_method<'a>(
        &'a self,
        user_id: &'a str,
        method: &'a AuthMethod,
    ) -> DirFuture<'a, ()> {
        self.0.delete_auth_method(user_id, method)
    }
    fn create_tap<'a>(
        &'a self,
        _user_id: &'a str,
        _request: &'a TapRequest,
    ) -> DirFuture<'a, TemporaryAccessPass> {
        let never: BoxFuture<'a, _> = Box::pin(futures::future::pending());
        never
    }
    fn is_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, bool> {
        self.0.is_group_member(group_id, user_id)
    }
    fn add_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, ()> {
        self.0.add_group_member(group_id, user_id)
    }
    fn remove_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, ()> {
        self.0.remove_group_member(group_id, user_id)
    }
    fn confirm_compromised<'a>(&'a self, user_ids: &'a [String]) -> DirFuture<'a, ()> {
        self.0.confirm_compromised(user_ids)
    }
    fn send_mail<'a>(&'a self, sender: &'a str, mail: &'a Mail) -> DirFuture<'a, ()> {
        self.0.send_mail(sender, mail)
    }
    fn send_mime<'a>(&'a self, sender: &'a str, mime: &'a [u8]) -> DirFuture<'a, ()> {
        self.0.send_mime(sender, mime)
    }
    fn batch_writes(
        &self,
        writes: Vec<UserWrite>,
    ) -> DirFuture<'_, Vec<Result<(), DirectoryError>>> {
        self.0.batch_writes(writes)
    }
    fn access(&self) -> DirFuture<'_, Vec<AppAccess>> {
        self.0.access()
    }
}
