//! [`Runtime`]: carries the verification flow out. It applies an event to a stored request
//! (load, [`step`], save), then does what the transition asked: send the push and feed its
//! answer back, post the manager's card, text the manager, open a ticket, reset the
//! password, write the audit record.
//!
//! Order and crashes: a transition is saved, with its timers and its actions, before any
//! action runs, and each action is reported done after it ran. After a crash,
//! [`Runtime::resume`] runs the actions still pending; a message sent again carries the same
//! idempotency key (derived from the request and the action's id), so a channel that takes
//! one (ACS `repeatability-request-id`) delivers it once. A push sent again is a second
//! prompt: push providers take no idempotency key.
//!
//! Timers: [`Runtime::fire_due_timers`] fires every armed timer that is due. The store
//! decides who fires one: the save that consumes the timer deletes its row, so of two
//! processes (or a process and its restarted self) only one moves the request.

mod mfa;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use super::action::{Action, AuditRecord};
use super::clock::Clock;
use super::context::{Context, Manager, Person};
use super::facts::{Facts, FactsError};
use super::machine::{Flow, StepError, step};
use super::policy::Policy;
use super::state::snake_name as snake;
use super::state::{
    EscalationReason, Event, Outcome as Wanted, PushAnswer, State, StateName, Timer,
};
use super::store::{ArmedTimer, NewRequest, PendingAction, RequestStore, RequestStoreError, Save};
use crate::audit::{AuditHandle, Details, Event as AuditEvent, Outcome};
use crate::comms::context::{FlowContext, Organisation, Person as MessagePerson};
use crate::comms::message::{Address, Content, Outbound};
use crate::comms::recipient::Contact;
use crate::comms::template::{Catalog, Form};
use crate::comms::{Channel as Sender, ChannelError};
use crate::directory::{Directory, ObjectKind, PasswordChange};
use crate::playbook::Channel as Kind;
use crate::providers::push::{PushProvider, PushStatus, PushTransaction};

/// The approve and deny links of one approval message. Each is a credential until used:
/// its `Debug` hides both.
#[derive(Clone, PartialEq, Eq)]
pub struct ApprovalLinks {
    /// Opens the approval.
    pub approve_url: String,
    /// Opens the denial.
    pub deny_url: String,
}

impl std::fmt::Debug for ApprovalLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApprovalLinks(..)")
    }
}

/// Mints the signed one-time approval links put into the manager's card and SMS. Signing
/// and checking them is the approval service's job (`verify::token::TokenMinter`); the
/// runtime only asks for them. Asynchronous: minting stores each token's record.
pub trait LinkMinter: Send + Sync {
    /// Links for `approver` to answer request `request` until `expires`.
    fn mint<'a>(
        &'a self,
        request: &'a str,
        approver: &'a Person,
        expires: Timestamp,
    ) -> BoxFuture<'a, Result<ApprovalLinks, String>>;
}

pub use crate::providers::tickets::{
    AuditTicketSink, Ticket, TicketError, TicketRef, TicketSink, TrailLine,
};

/// Everything the runtime is built from.
pub struct Parts {
    /// The tenant (configuration name) requests belong to.
    pub tenant: String,
    /// Timeouts and limits.
    pub policy: Policy,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Where requests live.
    pub store: Arc<dyn RequestStore>,
    /// The MFA push provider.
    pub push: Arc<dyn PushProvider>,
    /// How often a push is polled for its answer (real time).
    pub push_poll: Duration,
    /// The senders: a Teams one for cards, an SMS one for texts, optionally mail.
    pub channels: Vec<Arc<dyn Sender>>,
    /// The templates.
    pub catalog: Arc<Catalog>,
    /// The organisation as messages name it.
    pub organisation: Organisation,
    /// Who the escalation card @-mentions (the L1 queue's Teams identity), if anyone.
    pub service_desk: Option<MessagePerson>,
    /// Users, managers and the reset.
    pub directory: Arc<dyn Directory>,
    /// Risk, open runs and roles of a user, looked up before any path.
    pub facts: Arc<dyn Facts>,
    /// The trail.
    pub audit: AuditHandle,
    /// The approval links.
    pub links: Arc<dyn LinkMinter>,
    /// The escalation tickets.
    pub tickets: Arc<dyn TicketSink>,
}

/// A reset request as the help desk (or a portal) makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The user whose password is to be reset (object id or UPN).
    pub user: String,
    /// Who asked (their directory identity).
    pub requester: Person,
    /// Who asked, as messages name them (`helpdesk agent jdoe`).
    pub requester_label: String,
    /// Where the request came from (`cli`, `portal`).
    pub origin: String,
    /// Why, as the requester stated it.
    pub reason: String,
    /// The requester says the user has their device (false: straight to Path B). Risk,
    /// open runs and roles are never the caller's to say: the runtime looks them up.
    pub device_available: bool,
    /// Manager approval may follow a push that did not verify the user (false: push only).
    pub manager_fallback: bool,
    /// What is wanted once approved: a password reset (the single-stage flow) or an MFA
    /// reset (the manager, then the approver group; no push: the device is being reset).
    pub outcome: Wanted,
}

/// Why the runtime could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] RequestStoreError),
    /// The event does not fit the request's state.
    #[error("request {id}: {source}")]
    Step {
        /// The request.
        id: String,
        /// Why.
        #[source]
        source: StepError,
    },
    /// The directory failed or does not know the user.
    #[error("directory: {0}")]
    Directory(String),
    /// What decides whether the automated paths may run could not be looked up; nothing
    /// was started.
    #[error("cannot check the user before verifying them: {0}")]
    Facts(#[from] FactsError),
    /// The request kept moving under us.
    #[error("request {0} kept changing while this event was applied; try again")]
    Busy(String),
}

/// The verification runtime. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Parts>,
}

/// How many times an event is re-applied after another writer moved the request.
const RETRIES: usize = 5;

impl Runtime {
    /// A runtime over `parts`.
    pub fn new(parts: Parts) -> Self {
        Runtime {
            inner: Arc::new(parts),
        }
    }

    /// Start a request: look the user and their manager up in the directory, read the
    /// user's earlier requests of the last hour from the store, store the request and apply
    /// `start`. The request's id.
    pub async fn request(&self, ask: Ask) -> Result<String, RuntimeError> {
        let p = &self.inner;
        let now = p.clock.now();
        let user = p
            .directory
            .get_user(&ask.user)
            .await
            .map_err(|e| RuntimeError::Directory(e.to_string()))?
            .ok_or_else(|| RuntimeError::Directory(format!("no user {}", ask.user)))?;
        let manager = p
            .directory
            .get_manager(&user.id)
            .await
            .map_err(|e| RuntimeError::Directory(e.to_string()))?
            .filter(|m| m.kind == ObjectKind::User);
        let manager = manager.map(|m| {
            let contact = Contact::of_manager(&m, user.usage_location.as_deref());
            Manager {
                person: Person {
                    id: m.id.clone(),
                    upn: contact.person.upn.clone(),
                },
                mobile: contact.mobile.and_then(Result::ok),
            }
        });
        let facts = p.facts.about(&user.id, &user.upn).await?;
        let since = now - SignedDuration::from_hours(1);
        let earlier = p.store.requests_of_user(&p.tenant, &user.id, since).await?;
        let mut recent_pushes = Vec::new();
        let mut recent_denials = Vec::new();
        for r in &earlier {
            if let Some(at) = pushed_at(&r.flow.state, r.request.created_at) {
                recent_pushes.push(at);
            }
            if let State::Escalated { reasons, at, .. } = &r.flow.state
                && reasons.contains(&EscalationReason::PushDenied)
            {
                recent_denials.push(*at);
            }
        }
        let context = Context {
            user: Person {
                id: user.id.clone(),
                upn: user.upn.clone(),
            },
            requester: ask.requester.clone(),
            manager,
            // The provider's own answer decides: "not enrolled" moves the flow to Path B.
            push_enrolled: true,
            device_available: ask.device_available,
            manager_fallback: ask.manager_fallback,
            high_risk: facts.high_risk,
            in_open_mass_reset: !facts.open_runs.is_empty(),
            critical_role: facts.privileged,
            previous_request_at: earlier.iter().map(|r| r.request.created_at).max(),
            recent_pushes,
            recent_denials,
            outcome: ask.outcome,
        };
        let id = format!("vr-{}", uuid::Uuid::new_v4().simple());
        p.store
            .create(&NewRequest {
                flow: Flow::new(id.clone(), context),
                tenant: p.tenant.clone(),
                requester: ask.requester_label,
                origin: ask.origin,
                reason: ask.reason,
                created_at: now,
            })
            .await?;
        self.apply(&id, Event::Start).await?;
        Ok(id)
    }

    /// Apply `event` to request `id` and carry out what follows (including the events the
    /// actions produce, such as the reset's result). The state it ended in.
    pub async fn apply(&self, id: &str, event: Event) -> Result<State, RuntimeError> {
        self.apply_inner(id, event, None).await
    }

    /// A boxed [`Runtime::apply`], for tasks that feed events back.
    fn apply_boxed(&self, id: String, event: Event) -> BoxFuture<'static, ()> {
        let rt = self.clone();
        Box::pin(async move {
            if let Err(e) = rt.apply(&id, event).await {
                tracing::info!(request = %id, "verification event dropped: {e}");
            }
        })
    }

    async fn apply_inner(
        &self,
        id: &str,
        event: Event,
        fired: Option<Timer>,
    ) -> Result<State, RuntimeError> {
        let mut queue = vec![event];
        let mut fired = fired;
        let mut state = None;
        while !queue.is_empty() {
            let event = queue.remove(0);
            let (flow, pending) = self.transition(id, &event, fired.take()).await?;
            for action in &pending {
                if let Some(next) = self.run(&flow, action).await {
                    queue.push(next);
                }
            }
            state = Some(flow.state);
        }
        Ok(state.expect("at least one event"))
    }

    /// Load, step and save (retrying when another writer moved the request first).
    async fn transition(
        &self,
        id: &str,
        event: &Event,
        fired: Option<Timer>,
    ) -> Result<(Flow, Vec<PendingAction>), RuntimeError> {
        let p = &self.inner;
        for _ in 0..RETRIES {
            let stored = p
                .store
                .load(id)
                .await?
                .ok_or_else(|| RequestStoreError::Unknown(id.to_owned()))?;
            let now = p.clock.now();
            let (flow, actions) =
                step(&stored.flow, event, now, &p.policy).map_err(|source| RuntimeError::Step {
                    id: id.to_owned(),
                    source,
                })?;
            let save = to_save(&flow, now, fired, actions);
            match p.store.save(id, stored.version, &save).await {
                Ok((_, pending)) => return Ok((flow, pending)),
                Err(RequestStoreError::Conflict { .. }) if fired.is_none() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RuntimeError::Busy(id.to_owned()))
    }

    /// Fire every armed timer due now; how many this call fired (a timer another process
    /// fired first is not counted, and not fired again).
    pub async fn fire_due_timers(&self) -> Result<usize, RuntimeError> {
        let p = &self.inner;
        let due = p.store.due_timers(p.clock.now()).await?;
        let mut fired = 0;
        for (id, ArmedTimer { timer, .. }) in due {
            match self
                .apply_inner(&id, Event::TimerFired { timer }, Some(timer))
                .await
            {
                Ok(_) => fired += 1,
                Err(RuntimeError::Store(RequestStoreError::Conflict { .. })) => {}
                Err(RuntimeError::Step { source, .. }) => {
                    // The timer no longer means anything to the flow: drop its row.
                    tracing::warn!(request = %id, "stale verification timer dropped: {source}");
                    self.drop_timer(&id, timer).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(fired)
    }

    /// Fire due timers until the task is dropped, looking every `tick`.
    pub async fn run_timers(&self, tick: Duration) -> Result<(), RuntimeError> {
        loop {
            self.fire_due_timers().await?;
            let next = self.inner.clock.now()
                + SignedDuration::try_from(tick).unwrap_or(SignedDuration::from_secs(1));
            self.inner.clock.sleep_until(next).await;
        }
    }

    /// After a restart: carry out every action that was saved and not reported done. How
    /// many ran.
    pub async fn resume(&self) -> Result<usize, RuntimeError> {
        let p = &self.inner;
        let pending = p.store.pending_actions().await?;
        let mut ran = 0;
        for action in pending {
            let Some(stored) = p.store.load(&action.request).await? else {
                continue;
            };
            let follow = self.run(&stored.flow, &action).await;
            ran += 1;
            if let Some(event) = follow
                && let Err(e) = self.apply(&action.request, event).await
            {
                tracing::info!(request = %action.request, "resumed event dropped: {e}");
            }
        }
        Ok(ran)
    }

    async fn drop_timer(&self, id: &str, timer: Timer) -> Result<(), RuntimeError> {
        let p = &self.inner;
        let Some(stored) = p.store.load(id).await? else {
            return Ok(());
        };
        let save = Save {
            flow: stored.flow,
            at: p.clock.now(),
            fired: Some(timer),
            arm: Vec::new(),
            disarm: Vec::new(),
            actions: Vec::new(),
        };
        match p.store.save(id, stored.version, &save).await {
            Ok(_) | Err(RequestStoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Carry out one saved action, report it done, and return the event it produced.
    async fn run(&self, flow: &Flow, pending: &PendingAction) -> Option<Event> {
        let p = &self.inner;
        let next = match &pending.action {
            Action::SendPush { user } => self.send_push(flow, &pending.id, user).await,
            Action::SendManagerCard { manager, user } => {
                self.manager_card(flow, pending, manager, user).await;
                None
            }
            Action::SendManagerSms {
                manager,
                mobile,
                user,
                link_expires,
            } => {
                self.manager_sms(flow, pending, manager, mobile, user, *link_expires)
                    .await;
                None
            }
            Action::OpenTicket {
                user,
                reasons,
                suspicious,
            } => {
                self.escalate(flow, pending, user, reasons, *suspicious)
                    .await;
                None
            }
            Action::ResetPassword { user, .. } => Some(self.reset(flow, pending, user).await),
            Action::Audit(record) => {
                self.audit_transition(flow, record).await;
                self.tell_origin_ticket(flow, record).await;
                None
            }
            Action::FindApprovers { group } => Some(self.find_approvers(group).await),
            Action::SendApproverRequest {
                approver,
                user,
                expires,
            } => {
                self.approver_request(flow, pending, approver, user, *expires)
                    .await;
                None
            }
            Action::RemoveMethods { user } => Some(self.remove_methods(flow, user).await),
            Action::IssueTap {
                user,
                recipients,
                lifetime_minutes,
                usable_once,
            } => Some(
                self.issue_tap(
                    flow,
                    pending,
                    user,
                    recipients,
                    *lifetime_minutes,
                    *usable_once,
                )
                .await,
            ),
            Action::CheckGroup { user, group } => Some(self.check_group(user, group).await),
            Action::AddToGroup { user, group } => Some(self.add_to_group(user, group).await),
            Action::RemoveFromGroup { user, group } => {
                Some(self.remove_from_group(user, group).await)
            }
            Action::TellRequester { result } => {
                self.tell_requester(flow, pending, result).await;
                None
            }
            Action::NotifySecurity { user } => {
                self.notify_security(flow, pending, user).await;
                None
            }
            Action::ArmTimer { .. } | Action::DisarmTimer { .. } => None,
        };
        if let Err(e) = p
            .store
            .action_done(&pending.request, &pending.id, p.clock.now())
            .await
        {
            tracing::warn!(request = %pending.request, "could not record action {} done: {e}", pending.id);
        }
        next
    }

    /// Send the push; a final answer at once is the event, otherwise a task polls for it
    /// until the push timer's due time and feeds it back.
    async fn send_push(&self, flow: &Flow, action_id: &str, user: &Person) -> Option<Event> {
        let p = &self.inner;
        let status = match p.push.send(&user.upn).await {
            Ok(status) => status,
            Err(e) => {
                return Some(Event::PushUnavailable {
                    detail: e.to_string(),
                });
            }
        };
        let PushStatus::Waiting { transaction } = status else {
            return status.event();
        };
        self.tell_user(flow, action_id, "verify-push-sent", None)
            .await;
        let due = match flow.state {
            State::PushSent { due, .. } => due,
            _ => p.clock.now(),
        };
        tokio::spawn(self.clone().watch_push(flow.id.clone(), transaction, due));
        None
    }

    /// Poll a push until its answer (then apply it) or until the push timer is due (the
    /// timer moves the flow on then).
    fn watch_push(
        self,
        id: String,
        transaction: PushTransaction,
        due: Timestamp,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let p = self.inner.clone();
            loop {
                if p.clock.now() >= due {
                    return;
                }
                tokio::time::sleep(p.push_poll).await;
                if p.clock.now() >= due {
                    return;
                }
                let event = match p.push.poll(&transaction).await {
                    Ok(status) => status.event(),
                    Err(e) => Some(Event::PushUnavailable {
                        detail: e.to_string(),
                    }),
                };
                if let Some(event) = event {
                    // A provider that gave up is the push timer's business, not an answer
                    // (the flow's own timeout decides when Path B starts).
                    if event
                        == (Event::PushAnswered {
                            answer: PushAnswer::TimedOut,
                        })
                    {
                        return;
                    }
                    self.apply_boxed(id, event).await;
                    return;
                }
            }
        })
    }

    async fn manager_card(
        &self,
        flow: &Flow,
        pending: &PendingAction,
        manager: &Person,
        user: &Person,
    ) {
        let p = &self.inner;
        let expires = match flow.state {
            State::ManagerCardSent { due, .. } => {
                due + SignedDuration::from_secs(p.policy.link_ttl_secs as i64)
            }
            _ => p.clock.now(),
        };
        let (recipient, ctx) = self.approval_message(flow, manager, user, expires).await;
        let to = Address::Teams {
            mention: Some((
                recipient.person.upn.clone(),
                recipient.person.display_name.clone(),
            )),
        };
        self.send(
            flow,
            &pending.id,
            "verify-manager-approval",
            Kind::Teams,
            to,
            recipient.language.as_deref(),
            &ctx,
            false,
        )
        .await;
    }

    /// The manager's contact and the context of a message that asks them to decide: fresh
    /// approve/deny links that expire at `expires` (a card and an SMS each get their own).
    async fn approval_message(
        &self,
        flow: &Flow,
        manager: &Person,
        user: &Person,
        expires: Timestamp,
    ) -> (Contact, FlowContext) {
        let recipient = self.contact(manager).await;
        let links = self.inner.links.mint(&flow.id, manager, expires).await;
        let ctx = self
            .message_context(
                flow,
                &recipient,
                user,
                links.ok(),
                Some(expires),
                None,
                None,
            )
            .await;
        (recipient, ctx)
    }

    #[allow(clippy::too_many_arguments)]
    async fn manager_sms(
        &self,
        flow: &Flow,
        pending: &PendingAction,
        manager: &Person,
        mobile: &str,
        user: &Person,
        expires: Timestamp,
    ) {
        let (recipient, ctx) = self.approval_message(flow, manager, user, expires).await;
        // The number is the one the flow recorded from the directory at request time.
        self.send(
            flow,
            &pending.id,
            "verify-manager-sms",
            Kind::Sms,
            Address::Phone(mobile.to_owned()),
            recipient.language.as_deref(),
            &ctx,
            true,
        )
        .await;
    }

    async fn escalate(
        &self,
        flow: &Flow,
        pending: &PendingAction,
        user: &Person,
        reasons: &[EscalationReason],
        suspicious: bool,
    ) {
        let p = &self.inner;
        let ticket = Ticket::new(
            &flow.id,
            user.clone(),
            reasons.to_vec(),
            suspicious,
            self.trail(&flow.id).await,
        );
        // A request that came from a ticket escalates in that ticket, not in a second one.
        let reference = match self.origin_ticket(&flow.id).await {
            Some(origin) => match p.tickets.update(&origin, &ticket.body()).await {
                Ok(()) => Some(origin),
                Err(e) => {
                    tracing::error!(request = %flow.id, "could not escalate in the ticket the request came from: {e}");
                    None
                }
            },
            None => match p.tickets.open(&ticket).await {
                Ok(reference) => Some(reference),
                Err(e) => {
                    tracing::error!(request = %flow.id, "could not open the escalation ticket: {e}");
                    None
                }
            },
        };
        if let Some(r) = reference.as_ref().filter(|r| r.system != "audit") {
            let details = Details::new()
                .with("request", &flow.id)
                .and_then(|d| d.with("system", &r.system))
                .and_then(|d| d.with("ticket", &r.number))
                .and_then(|d| d.with("reason", ticket.reason_words().replace(", ", ",")))
                .and_then(|d| d.with("suspicious", suspicious));
            self.record(&user.id, "verify.ticket", Outcome::Success, details)
                .await;
        }
        let reference = reference.map(|r| r.number);
        let desk = p.service_desk.clone().unwrap_or_else(|| MessagePerson {
            display_name: format!("{} service desk", p.organisation.name),
            given_name: None,
            upn: String::new(),
        });
        let recipient = Contact {
            person: desk.clone(),
            mail: None,
            mobile: None,
            language: None,
        };
        let ctx = self
            .message_context(
                flow,
                &recipient,
                user,
                None,
                None,
                Some(
                    if suspicious {
                        "suspicious"
                    } else {
                        "escalated"
                    }
                    .into(),
                ),
                reference,
            )
            .await;
        let to = Address::Teams {
            mention: p
                .service_desk
                .as_ref()
                .map(|d| (d.upn.clone(), d.display_name.clone())),
        };
        self.send(
            flow,
            &pending.id,
            "verify-escalation",
            Kind::Teams,
            to,
            None,
            &ctx,
            false,
        )
        .await;
    }

    /// Force a password change with MFA at the next sign-in (no new password is set, so no
    /// secret has to be delivered); the reset's result as the flow's event.
    async fn reset(&self, flow: &Flow, pending: &PendingAction, user: &Person) -> Event {
        let p = &self.inner;
        let change = PasswordChange {
            force_change_next_sign_in: true,
            force_change_with_mfa: true,
            password: None,
        };
        match p.directory.force_password_change(&user.id, &change).await {
            Ok(()) => {
                self.tell_user(
                    flow,
                    &pending.id,
                    "verify-outcome",
                    Some("completed".into()),
                )
                .await;
                Event::ResetDone
            }
            Err(e) => Event::ResetFailed {
                detail: e.to_string(),
            },
        }
    }

    /// A notice to the user (mail if a mail channel and a mailbox exist, else SMS to the
    /// directory mobile); skipped, and logged, when neither can reach them.
    async fn tell_user(
        &self,
        flow: &Flow,
        action_id: &str,
        template: &str,
        result: Option<String>,
    ) {
        let p = &self.inner;
        let contact = self.contact(&flow.context.user).await;
        let has = |kind| p.channels.iter().any(|c| c.kind() == kind);
        let (kind, to) = match (&contact.mail, &contact.mobile) {
            (Some(mail), _) if has(Kind::Email) => (Kind::Email, Address::Email(mail.clone())),
            (_, Some(Ok(mobile))) if has(Kind::Sms) => (Kind::Sms, Address::Phone(mobile.clone())),
            _ => {
                tracing::info!(request = %flow.id, template, "no channel reaches the user");
                return;
            }
        };
        let ctx = self
            .message_context(flow, &contact, &flow.context.user, None, None, result, None)
            .await;
        self.send(
            flow,
            action_id,
            template,
            kind,
            to,
            contact.language.as_deref(),
            &ctx,
            false,
        )
        .await;
    }

    /// The message contact of a directory person (display name, language, mail, mobile),
    /// falling back to the UPN when the directory cannot be read.
    async fn contact(&self, person: &Person) -> Contact {
        match self.inner.directory.get_user(&person.id).await {
            Ok(Some(user)) => Contact::of_user(&user, None),
            _ => Contact {
                person: MessagePerson {
                    display_name: person.upn.clone(),
                    given_name: None,
                    upn: person.upn.clone(),
                },
                mail: None,
                mobile: None,
                language: None,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn message_context(
        &self,
        flow: &Flow,
        recipient: &Contact,
        user: &Person,
        links: Option<ApprovalLinks>,
        expires: Option<Timestamp>,
        result: Option<String>,
        ticket: Option<String>,
    ) -> FlowContext {
        let p = &self.inner;
        let stored = p.store.load(&flow.id).await.ok().flatten();
        let (requester, reason) = stored
            .map(|s| (s.request.requester, s.request.reason))
            .unwrap_or_default();
        let user = if recipient.person.upn.eq_ignore_ascii_case(&user.upn) {
            recipient.person.clone()
        } else {
            self.contact(user).await.person
        };
        let now = p.clock.now();
        FlowContext {
            org: p.organisation.clone(),
            recipient: recipient.person.clone(),
            user,
            requester,
            request_id: flow.id.clone(),
            outcome_wanted: flow.context.outcome.as_str(),
            reason,
            approve_url: links.as_ref().map(|l| l.approve_url.clone()),
            deny_url: links.map(|l| l.deny_url),
            expires_minutes: expires.map(|e| {
                let secs = e.duration_since(now).as_secs().max(0);
                u32::try_from((secs + 59) / 60).unwrap_or(u32::MAX)
            }),
            result,
            ticket,
            secret: None,
        }
    }

    /// Render `template` for `kind` and send it over the first channel of that kind, then
    /// audit the delivery (masked destination, never the content). Whether it was sent.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        flow: &Flow,
        action_id: &str,
        template: &str,
        kind: Kind,
        to: Address,
        language: Option<&str>,
        ctx: &FlowContext,
        carries_secret: bool,
    ) -> bool {
        let p = &self.inner;
        let destination = to.masked();
        let result: Result<(&'static str, Option<String>), String> = async {
            let sender = p
                .channels
                .iter()
                .find(|c| c.kind() == kind)
                .ok_or_else(|| format!("no {} channel is configured", kind.as_str()))?;
            let content: Content = p
                .catalog
                .render(template, Form::for_channel(kind), language, ctx)
                .map_err(|e| e.to_string())?;
            let message = Outbound {
                key: message_key(&flow.id, action_id, template),
                first_sent: p.clock.now(),
                to,
                content,
                carries_secret,
            };
            let receipt = sender
                .send(&message)
                .await
                .map_err(|e: ChannelError| format!("{}: {e}", sender.name()))?;
            Ok((sender.name(), receipt.provider_id))
        }
        .await;
        let (outcome, details) = match &result {
            Ok((sender, provider_id)) => (
                Outcome::Success,
                Details::new()
                    .with("channel", *sender)
                    .and_then(|d| match provider_id {
                        Some(id) => d.with("provider_id", id),
                        None => Ok(d),
                    }),
            ),
            Err(why) => {
                tracing::warn!(request = %flow.id, template, "verification message not sent: {why}");
                (Outcome::Failure, Details::new().with("error", why))
            }
        };
        let details = details
            .and_then(|d| d.with("request", &flow.id))
            .and_then(|d| d.with("template", template))
            .and_then(|d| d.with("destination", &destination));
        self.record(&flow.context.user.id, "verify.message", outcome, details)
            .await;
        result.is_ok()
    }

    /// The request's trail: one masked line per transition saved so far, oldest first
    /// (from the audit records the flow wrote, which hold no token and no unmasked number).
    async fn trail(&self, id: &str) -> Vec<TrailLine> {
        match self.inner.store.actions_of(id).await {
            Ok(actions) => actions
                .iter()
                .filter_map(|a| match &a.action {
                    Action::Audit(r) => Some(trail_line(r)),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(request = %id, "the request's trail could not be read: {e}");
                Vec::new()
            }
        }
    }

    /// The ticket request `id` came from, when its origin is `ticket:<system>:<id>`.
    async fn origin_ticket(&self, id: &str) -> Option<TicketRef> {
        let stored = self.inner.store.load(id).await.ok().flatten()?;
        TicketRef::from_origin(&stored.request.origin)
    }

    /// For a request that came from a ticket: a note on the ticket for the transition, and
    /// the ticket closed with a resolution note when the flow completes. (An escalation is
    /// written to the ticket by the escalation itself, with the whole trail.)
    async fn tell_origin_ticket(&self, flow: &Flow, r: &AuditRecord) {
        if r.to == StateName::Escalated {
            return;
        }
        let Some(origin) = self.origin_ticket(&flow.id).await else {
            return;
        };
        let line = trail_line(r);
        let note = format!("resetctl request {}: {}  {}", flow.id, line.at, line.text);
        let done = if r.to == StateName::Completed {
            let resolution = format!(
                "{note}\nThe password of {} was reset: a change with MFA is required at the next \
                 sign-in.",
                flow.context.user.upn
            );
            self.inner.tickets.close(&origin, &resolution).await
        } else {
            self.inner.tickets.update(&origin, &note).await
        };
        if let Err(e) = done {
            tracing::warn!(request = %flow.id, ticket = %origin.number, "the originating ticket was not updated: {e}");
        }
    }

    /// The transition's record, as the flow wrote it (destinations already masked).
    async fn audit_transition(&self, flow: &Flow, r: &AuditRecord) {
        let outcome = match r.to {
            StateName::Refused => Outcome::Refused,
            StateName::Escalated => Outcome::Failure,
            _ => Outcome::Success,
        };
        let mut details = Details::new()
            .with("request", &r.request)
            .and_then(|d| d.with("event", &r.event))
            .and_then(|d| d.with("from", r.from.to_string()))
            .and_then(|d| d.with("to", r.to.to_string()))
            .and_then(|d| d.with("suspicious", r.suspicious))
            .and_then(|d| d.with("outcome", flow.context.outcome.as_str()))
            .and_then(|d| d.with("at", r.at));
        let optional = [
            ("channel", r.channel.map(|c| snake(&c))),
            ("destination", r.destination.clone()),
            ("reason", r.reason.clone()),
            ("approver_id", r.approver_id.clone()),
            ("approver_ip", r.approver_ip.clone()),
            ("approver_user_agent", r.approver_user_agent.clone()),
            ("approval_id", r.token_id.clone()),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                details = details.and_then(|d| d.with(key, value));
            }
        }
        self.record(&flow.context.user.id, "verify.transition", outcome, details)
            .await;
    }

    async fn record(
        &self,
        subject: &str,
        action: &str,
        outcome: Outcome,
        details: Result<Details, crate::audit::AuditError>,
    ) {
        let event = details.and_then(|details| {
            AuditEvent::new("resetctl", action, subject, outcome).map(|e| e.with_details(details))
        });
        let written = match event {
            Ok(event) => self.inner.audit.record(event).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::error!("verification audit record not written: {e}");
        }
    }
}

/// The save of a transition: timer actions become the save's arm and disarm lists, the
/// rest are the actions to run.
fn to_save(flow: &Flow, now: Timestamp, fired: Option<Timer>, actions: Vec<Action>) -> Save {
    let mut save = Save {
        flow: flow.clone(),
        at: now,
        fired,
        arm: Vec::new(),
        disarm: Vec::new(),
        actions: Vec::new(),
    };
    for action in actions {
        match action {
            Action::ArmTimer { timer, due } => save.arm.push(ArmedTimer { timer, due }),
            Action::DisarmTimer { timer } => save.disarm.push(timer),
            other => save.actions.push(other),
        }
    }
    save
}

/// When a stored request sent a push, if it did (counted at its creation when the state no
/// longer says).
fn pushed_at(state: &State, created: Timestamp) -> Option<Timestamp> {
    use super::state::{PathBReason, Via};
    match state {
        State::PushSent { sent_at, .. } => Some(*sent_at),
        State::ManagerCardSent { reason, .. } | State::ManagerSmsSent { reason, .. }
            if matches!(
                reason,
                PathBReason::PushTimedOut | PathBReason::PushUnavailable
            ) =>
        {
            Some(created)
        }
        State::Verified { via: Via::Push, .. } | State::Completed { via: Via::Push, .. } => {
            Some(created)
        }
        State::Escalated { reasons, .. } if reasons.contains(&EscalationReason::PushDenied) => {
            Some(created)
        }
        _ => None,
    }
}

/// A transition as a line a service desk reads: `push_sent → manager_card_sent
/// (push_timeout; teams to m***@contoso.example)`. Only the record's masked fields.
fn trail_line(r: &AuditRecord) -> TrailLine {
    let mut extra = vec![r.event.clone()];
    if let Some(reason) = &r.reason {
        extra.push(format!("reason {reason}"));
    }
    match (r.channel, &r.destination) {
        (Some(c), Some(d)) => extra.push(format!("{} to {d}", snake(&c))),
        (Some(c), None) => extra.push(snake(&c)),
        (None, Some(d)) => extra.push(format!("to {d}")),
        (None, None) => {}
    }
    if let Some(approver) = &r.approver_id {
        extra.push(format!("approver {approver}"));
    }
    if r.suspicious {
        extra.push("suspicious".into());
    }
    TrailLine {
        at: r.at,
        text: format!("{} → {} ({})", r.from, r.to, extra.join("; ")),
    }
}

/// The idempotency key of one message: the same request, action and template always give
/// the same key, so a message re-sent after a crash is recognised by the provider.
fn message_key(request: &str, action: &str, template: &str) -> uuid::Uuid {
    let digest = Sha256::digest(format!("{request}\n{action}\n{template}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_actions_go_into_the_save_and_the_rest_run_after_it() {
        let flow = Flow::new(
            "r",
            Context {
                user: Person {
                    id: "u".into(),
                    upn: "u@x".into(),
                },
                requester: Person {
                    id: "h".into(),
                    upn: "h@x".into(),
                },
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
                outcome: Default::default(),
            },
        );
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let (next, actions) = step(&flow, &Event::Start, now, &Policy::default()).unwrap();
        let save = to_save(&next, now, None, actions);
        assert_eq!(save.arm.len(), 1);
        assert_eq!(save.arm[0].timer, Timer::Push);
        assert_eq!(save.arm[0].due, now + SignedDuration::from_secs(120));
        assert!(matches!(save.actions[0], Action::SendPush { .. }));
        assert!(matches!(save.actions[1], Action::Audit(_)));
        assert_eq!(save.actions.len(), 2);
    }

    #[test]
    fn message_keys_are_stable_per_request_action_and_template() {
        let a = message_key("r1", "2.0", "verify-manager-sms");
        assert_eq!(a, message_key("r1", "2.0", "verify-manager-sms"));
        assert_ne!(a, message_key("r1", "3.0", "verify-manager-sms"));
        assert_ne!(a, message_key("r2", "2.0", "verify-manager-sms"));
    }
}
