//! [`RequestStore`]: where verification requests live between events, so a request survives
//! a restart and two processes cannot both move one request. A save is optimistic (it names
//! the version it read) and atomic: the new flow, its armed timers and the actions still to
//! run are written together, before any action runs. [`MemoryRequestStore`] is the
//! in-process implementation for tests; the run store (`SqliteStore`) is the durable one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::action::Action;
use super::machine::Flow;
use super::state::Timer;

/// A request as first stored (version 0, state `requested`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    /// The flow, in [`State::Requested`](super::State::Requested).
    pub flow: Flow,
    /// The tenant (configuration name) the user belongs to.
    pub tenant: String,
    /// Who asked, as recorded (`helpdesk agent jdoe`).
    pub requester: String,
    /// Where the request came from (`cli`, `portal`, `api`).
    pub origin: String,
    /// Why, as the requester stated it (shown to the approver, never interpreted).
    pub reason: String,
    /// When.
    pub created_at: Timestamp,
}

/// A stored request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRequest {
    /// The request, as created.
    pub request: NewRequest,
    /// Where it is now.
    pub flow: Flow,
    /// Bumped by every save; a save names the version it read.
    pub version: u64,
    /// When it last moved.
    pub updated_at: Timestamp,
    /// Its flow is in a final state.
    pub done: bool,
}

/// A timer armed for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmedTimer {
    /// Which.
    pub timer: Timer,
    /// When it fires.
    pub due: Timestamp,
}

/// An action saved with a transition and not yet reported done: after a crash it is run
/// again (each is idempotent by its id: a message's idempotency key is derived from it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAction {
    /// The request.
    pub request: String,
    /// `<version>.<index>`: the save that produced it and its place in the list.
    pub id: String,
    /// What to do.
    pub action: Action,
}

/// One transition to save: the next flow, its timers and the actions to run after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Save {
    /// The flow after the transition.
    pub flow: Flow,
    /// When.
    pub at: Timestamp,
    /// The timer this transition consumes (a `TimerFired` event): it must still be armed,
    /// and is disarmed by the save. This is what makes a timer fire once: of two processes
    /// firing it, only one save finds it.
    pub fired: Option<Timer>,
    /// Timers to arm (replacing an armed one of the same kind).
    pub arm: Vec<ArmedTimer>,
    /// Timers to disarm.
    pub disarm: Vec<Timer>,
    /// Actions to run after the save, in order (timer actions excluded: the save did them).
    pub actions: Vec<Action>,
}

/// Why a request store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestStoreError {
    /// No request has this id.
    #[error("no verification request {0}")]
    Unknown(String),
    /// A request with this id exists already.
    #[error("verification request {0} exists already")]
    Duplicate(String),
    /// Another process moved the request since it was read (or fired the timer first).
    #[error("verification request {id} moved on since version {expected}")]
    Conflict {
        /// The request.
        id: String,
        /// The version the caller read.
        expected: u64,
    },
    /// The store failed or holds a value it cannot read.
    #[error("{0}")]
    Backend(String),
}

/// Persistence of verification requests. Object-safe so the runtime can hold either store.
pub trait RequestStore: Send + Sync {
    /// Store a new request at version 0.
    fn create<'a>(
        &'a self,
        request: &'a NewRequest,
    ) -> BoxFuture<'a, Result<(), RequestStoreError>>;

    /// The request `id`, if stored.
    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredRequest>, RequestStoreError>>;

    /// Save a transition of request `id` read at `expected` (see [`Save`]); the new version
    /// and the ids given to its actions. [`RequestStoreError::Conflict`] when the request
    /// moved since or the fired timer is no longer armed; then nothing is written.
    fn save<'a>(
        &'a self,
        id: &'a str,
        expected: u64,
        save: &'a Save,
    ) -> BoxFuture<'a, Result<(u64, Vec<PendingAction>), RequestStoreError>>;

    /// Every armed timer due at or before `now`, earliest first, with its request.
    fn due_timers<'a>(
        &'a self,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<(String, ArmedTimer)>, RequestStoreError>>;

    /// The armed timers of request `id`.
    fn timers<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ArmedTimer>, RequestStoreError>>;

    /// Requests for `user_id` in `tenant` created at or after `since`, oldest first.
    fn requests_of_user<'a>(
        &'a self,
        tenant: &'a str,
        user_id: &'a str,
        since: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<StoredRequest>, RequestStoreError>>;

    /// Actions saved and not yet reported done, in the order they were saved.
    fn pending_actions(&self) -> BoxFuture<'_, Result<Vec<PendingAction>, RequestStoreError>>;

    /// Every action saved for request `id`, done or not, in the order saved (its audit
    /// records are the request's trail).
    fn actions_of<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PendingAction>, RequestStoreError>>;

    /// Report the action `action_id` of `request` done.
    fn action_done<'a>(
        &'a self,
        request: &'a str,
        action_id: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), RequestStoreError>>;
}

/// Give the actions of the save that produced `version` their ids.
pub fn number_actions(id: &str, version: u64, actions: &[Action]) -> Vec<PendingAction> {
    actions
        .iter()
        .enumerate()
        .map(|(i, action)| PendingAction {
            request: id.to_owned(),
            id: format!("{version}.{i}"),
            action: action.clone(),
        })
        .collect()
}

/// A request store in memory, for tests and single-shot tools.
#[derive(Debug, Default)]
pub struct MemoryRequestStore {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    requests: BTreeMap<String, StoredRequest>,
    timers: BTreeMap<(String, TimerKey), Timestamp>,
    /// (request, action id) → (order, action, done).
    actions: Vec<(PendingAction, bool)>,
}

/// A [`Timer`] as a map key.
type TimerKey = u8;

fn key(timer: Timer) -> TimerKey {
    match timer {
        Timer::Push => 0,
        Timer::Card => 1,
        Timer::Link => 2,
    }
}

fn timer_of(key: TimerKey) -> Timer {
    match key {
        0 => Timer::Push,
        1 => Timer::Card,
        _ => Timer::Link,
    }
}

impl MemoryRequestStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

impl RequestStore for MemoryRequestStore {
    fn create<'a>(
        &'a self,
        request: &'a NewRequest,
    ) -> BoxFuture<'a, Result<(), RequestStoreError>> {
        let result = self.with(|m| {
            let id = request.flow.id.clone();
            if m.requests.contains_key(&id) {
                return Err(RequestStoreError::Duplicate(id));
            }
            m.requests.insert(
                id,
                StoredRequest {
                    request: request.clone(),
                    flow: request.flow.clone(),
                    version: 0,
                    updated_at: request.created_at,
                    done: request.flow.state.is_final(),
                },
            );
            Ok(())
        });
        Box::pin(async move { result })
    }

    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredRequest>, RequestStoreError>> {
        let found = self.with(|m| m.requests.get(id).cloned());
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(
        &'a self,
        id: &'a str,
        expected: u64,
        save: &'a Save,
    ) -> BoxFuture<'a, Result<(u64, Vec<PendingAction>), RequestStoreError>> {
        let result = self.with(|m| {
            let stored = m
                .requests
                .get(id)
                .ok_or_else(|| RequestStoreError::Unknown(id.to_owned()))?;
            let conflict = || RequestStoreError::Conflict {
                id: id.to_owned(),
                expected,
            };
            if stored.version != expected {
                return Err(conflict());
            }
            if let Some(fired) = save.fired
                && m.timers.remove(&(id.to_owned(), key(fired))).is_none()
            {
                return Err(conflict());
            }
            for timer in &save.disarm {
                m.timers.remove(&(id.to_owned(), key(*timer)));
            }
            for armed in &save.arm {
                m.timers
                    .insert((id.to_owned(), key(armed.timer)), armed.due);
            }
            let version = expected + 1;
            let stored = m.requests.get_mut(id).expect("checked above");
            stored.flow = save.flow.clone();
            stored.version = version;
            stored.updated_at = save.at;
            stored.done = save.flow.state.is_final();
            let pending = number_actions(id, version, &save.actions);
            m.actions
                .extend(pending.iter().cloned().map(|p| (p, false)));
            Ok((version, pending))
        });
        Box::pin(async move { result })
    }

    fn due_timers<'a>(
        &'a self,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<(String, ArmedTimer)>, RequestStoreError>> {
        let mut due: Vec<(String, ArmedTimer)> = self.with(|m| {
            m.timers
                .iter()
                .filter(|(_, due)| **due <= now)
                .map(|((id, k), due)| {
                    (
                        id.clone(),
                        ArmedTimer {
                            timer: timer_of(*k),
                            due: *due,
                        },
                    )
                })
                .collect()
        });
        due.sort_by_key(|(_, t)| t.due);
        Box::pin(async move { Ok(due) })
    }

    fn timers<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ArmedTimer>, RequestStoreError>> {
        let timers = self.with(|m| {
            m.timers
                .iter()
                .filter(|((r, _), _)| r == id)
                .map(|((_, k), due)| ArmedTimer {
                    timer: timer_of(*k),
                    due: *due,
                })
                .collect()
        });
        Box::pin(async move { Ok(timers) })
    }

    fn requests_of_user<'a>(
        &'a self,
        tenant: &'a str,
        user_id: &'a str,
        since: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<StoredRequest>, RequestStoreError>> {
        let mut found: Vec<StoredRequest> = self.with(|m| {
            m.requests
                .values()
                .filter(|r| {
                    r.request.tenant == tenant
                        && r.flow.context.user.id == user_id
                        && r.request.created_at >= since
                })
                .cloned()
                .collect()
        });
        found.sort_by_key(|r| r.request.created_at);
        Box::pin(async move { Ok(found) })
    }

    fn pending_actions(&self) -> BoxFuture<'_, Result<Vec<PendingAction>, RequestStoreError>> {
        let pending = self.with(|m| {
            m.actions
                .iter()
                .filter(|(_, done)| !done)
                .map(|(p, _)| p.clone())
                .collect()
        });
        Box::pin(async move { Ok(pending) })
    }

    fn actions_of<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PendingAction>, RequestStoreError>> {
        let all = self.with(|m| {
            m.actions
                .iter()
                .filter(|(p, _)| p.request == id)
                .map(|(p, _)| p.clone())
                .collect()
        });
        Box::pin(async move { Ok(all) })
    }

    fn action_done<'a>(
        &'a self,
        request: &'a str,
        action_id: &'a str,
        _at: Timestamp,
    ) -> BoxFuture<'a, Result<(), RequestStoreError>> {
        self.with(|m| {
            for (p, done) in &mut m.actions {
                if p.request == request && p.id == action_id {
                    *done = true;
                }
            }
        });
        Box::pin(async move { Ok(()) })
    }
}

/// The behaviour every [`RequestStore`] must have, run against each implementation.
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;
    use crate::verify::Event;
    use crate::verify::{Context, Person, Policy, State, step};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn person(id: &str) -> Person {
        Person {
            id: id.into(),
            upn: format!("{id}@contoso.com"),
        }
    }

    pub(crate) fn request(id: &str, user: &str, at: i64) -> NewRequest {
        NewRequest {
            flow: Flow::new(
                id,
                Context {
                    user: person(user),
                    requester: person("helpdesk"),
                    manager: None,
                    push_enrolled: true,
                    device_available: true,
                    manager_fallback: true,
                    high_risk: false,
                    in_open_mass_reset: false,
                    critical_role: false,
                    previous_request_at: None,
                    recent_pushes: Vec::new(),
                    recent_denials: Vec::new(),
                },
            ),
            tenant: "contoso".into(),
            requester: "helpdesk agent jdoe".into(),
            origin: "cli".into(),
            reason: "locked out".into(),
            created_at: t(at),
        }
    }

    /// The `start` transition of `request` as a save.
    fn started(r: &NewRequest) -> Save {
        let (flow, actions) = step(&r.flow, &Event::Start, t(0), &Policy::default()).unwrap();
        let State::PushSent { due, .. } = flow.state else {
            panic!("{:?}", flow.state)
        };
        Save {
            flow,
            at: t(0),
            fired: None,
            arm: vec![ArmedTimer {
                timer: Timer::Push,
                due,
            }],
            disarm: Vec::new(),
            actions: actions
                .into_iter()
                .filter(|a| !matches!(a, Action::ArmTimer { .. }))
                .collect(),
        }
    }

    pub(crate) async fn check(store: &dyn RequestStore) {
        let r = request("r1", "alice", 0);
        store.create(&r).await.unwrap();
        assert!(matches!(
            store.create(&r).await,
            Err(RequestStoreError::Duplicate(_))
        ));
        let loaded = store.load("r1").await.unwrap().unwrap();
        assert_eq!((loaded.version, loaded.done), (0, false));
        assert_eq!(loaded.request, r);
        assert!(store.load("nope").await.unwrap().is_none());

        // A save moves version 0 to 1, arms the timer, records the actions as pending.
        let save = started(&r);
        let (version, pending) = store.save("r1", 0, &save).await.unwrap();
        assert_eq!(version, 1);
        assert_eq!(
            pending.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["1.0", "1.1"]
        );
        // A second writer that read version 0 is refused, and writes nothing.
        let err = store.save("r1", 0, &save).await.unwrap_err();
        assert!(
            matches!(err, RequestStoreError::Conflict { expected: 0, .. }),
            "{err}"
        );
        assert_eq!(store.pending_actions().await.unwrap(), pending);
        let loaded = store.load("r1").await.unwrap().unwrap();
        assert_eq!(loaded.version, 1);
        assert_eq!(loaded.flow, save.flow);

        // Timers: due at 120 s; not before.
        assert!(store.due_timers(t(119)).await.unwrap().is_empty());
        let due = store.due_timers(t(120)).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, "r1");
        assert_eq!(due[0].1.timer, Timer::Push);
        assert_eq!(store.timers("r1").await.unwrap().len(), 1);

        // Firing it: only one of two savers that both read version 1 gets it.
        let fire = Save {
            fired: Some(Timer::Push),
            arm: Vec::new(),
            actions: Vec::new(),
            ..save.clone()
        };
        store.save("r1", 1, &fire).await.unwrap();
        assert!(matches!(
            store.save("r1", 2, &fire).await,
            Err(RequestStoreError::Conflict { .. })
        ));
        assert!(store.due_timers(t(10_000)).await.unwrap().is_empty());
        assert_eq!(store.load("r1").await.unwrap().unwrap().version, 2);

        // Actions reported done are no longer pending.
        store.action_done("r1", "1.0", t(1)).await.unwrap();
        let left = store.pending_actions().await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, "1.1");
        // Every action of a request, done or not, in the order saved.
        let all = store.actions_of("r1").await.unwrap();
        assert_eq!(all, pending, "done and pending alike");
        assert!(store.actions_of("nobody").await.unwrap().is_empty());

        // A user's requests since a time.
        store.create(&request("r2", "alice", 3000)).await.unwrap();
        store.create(&request("r3", "bob", 3000)).await.unwrap();
        let of_alice = store
            .requests_of_user("contoso", "alice", t(-1))
            .await
            .unwrap();
        assert_eq!(
            of_alice
                .iter()
                .map(|r| r.flow.id.as_str())
                .collect::<Vec<_>>(),
            ["r1", "r2"]
        );
        let recent = store
            .requests_of_user("contoso", "alice", t(1))
            .await
            .unwrap();
        assert_eq!(recent.len(), 1);
        assert!(
            store
                .requests_of_user("fabrikam", "alice", t(-1))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            store.save("nope", 0, &save).await,
            Err(RequestStoreError::Unknown(_))
        ));
    }

    #[tokio::test]
    async fn the_memory_store_behaves() {
        check(&MemoryRequestStore::new()).await;
    }
}
