//! [`step`]: the verification flow's one transition function. Pure: the time is an
//! argument and the result is data, so the 5-minute card timer is tested without waiting
//! and a stored request resumes exactly where it was.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::action::{Action, AuditRecord, Channel, mask_email, mask_phone};
use super::context::{Context, Person};
use super::policy::Policy;
use super::state::snake_name as snake;
use super::state::{
    Approver, EscalationReason, Event, FirstStage, MfaStep, Outcome, PathBReason, PushAnswer,
    RefusalReason, State, StateName, Timer, Via,
};

/// One verification request: its id, the facts it started with and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// The request's id (the runtime's; it appears in every audit record).
    pub id: String,
    /// The facts looked up when the request was made.
    pub context: Context,
    /// Where it is.
    pub state: State,
}

impl Flow {
    /// A new request, in [`State::Requested`].
    pub fn new(id: impl Into<String>, context: Context) -> Self {
        Flow {
            id: id.into(),
            context,
            state: State::Requested,
        }
    }
}

/// An event the current state cannot take. The flow is unchanged; the runtime should drop
/// the event (a late timer) or refuse it (an answer from the wrong person).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// This event means nothing in this state (an answer to a push never sent, anything
    /// after a final state).
    #[error("event {event} is not allowed in state {state}")]
    Illegal {
        /// The current state.
        state: StateName,
        /// The event.
        event: &'static str,
    },
    /// The timer is not the one this state armed (the flow moved on since).
    #[error("timer {timer:?} is not armed in state {state}")]
    StaleTimer {
        /// The current state.
        state: StateName,
        /// The timer that fired.
        timer: Timer,
    },
    /// The timer fired before its due time.
    #[error("timer {timer:?} fired at {now}, before it is due at {due}")]
    TimerEarly {
        /// The timer.
        timer: Timer,
        /// Its due time.
        due: Timestamp,
        /// The time it fired.
        now: Timestamp,
    },
    /// Someone other than the user's manager answered the approval.
    #[error("the approval came from {approver}, who is not the user's manager")]
    WrongApprover {
        /// The approver's object id.
        approver: String,
    },
    /// The SMS link was used after it expired.
    #[error("the approval link expired at {due}")]
    LinkExpired {
        /// When it expired.
        due: Timestamp,
    },
}

/// Move `flow` on `event` at `now` under `policy`: the next flow and the actions the
/// runtime must take, in order (the last one is always the transition's audit record).
pub fn step(
    flow: &Flow,
    event: &Event,
    now: Timestamp,
    policy: &Policy,
) -> Result<(Flow, Vec<Action>), StepError> {
    let mut t = Transition::new(flow, event, now);
    let state = match (&flow.state, event) {
        (State::Requested, Event::Start) => start(&mut t, policy),
        (State::PushSent { .. }, Event::PushAnswered { answer }) => {
            t.actions.push(Action::DisarmTimer { timer: Timer::Push });
            match answer {
                PushAnswer::Approved => t.verified(Via::Push, Channel::Push),
                PushAnswer::Denied => {
                    t.suspicious = true;
                    t.channel = Some(Channel::Push);
                    t.escalate(vec![EscalationReason::PushDenied])
                }
                PushAnswer::TimedOut => path_b(&mut t, PathBReason::PushTimedOut, policy),
            }
        }
        (State::PushSent { .. }, Event::PushUnavailable { .. }) => {
            t.actions.push(Action::DisarmTimer { timer: Timer::Push });
            path_b(&mut t, PathBReason::PushUnavailable, policy)
        }
        (State::PushSent { due, .. }, Event::TimerFired { timer }) => {
            t.due(Timer::Push, *timer, *due)?;
            path_b(&mut t, PathBReason::PushTimedOut, policy)
        }
        (
            State::ManagerCardSent { .. } | State::ManagerSmsSent { .. },
            Event::CardAnswered { approve, approver },
        ) => {
            let armed = match flow.state {
                State::ManagerCardSent { .. } => Timer::Card,
                _ => Timer::Link,
            };
            t.answer(
                *approve,
                approver,
                armed,
                Via::ManagerCard,
                Channel::Teams,
                policy,
            )?
        }
        (State::ManagerCardSent { due, reason, .. }, Event::TimerFired { timer }) => {
            t.due(Timer::Card, *timer, *due)?;
            send_sms(&mut t, *reason, policy)
        }
        (State::ManagerSmsSent { due, .. }, Event::LinkUsed { approve, approver }) => {
            if now > *due {
                return Err(StepError::LinkExpired { due: *due });
            }
            t.answer(
                *approve,
                approver,
                Timer::Link,
                Via::ManagerLink,
                Channel::Sms,
                policy,
            )?
        }
        (State::ManagerSmsSent { due, .. }, Event::TimerFired { timer }) => {
            t.due(Timer::Link, *timer, *due)?;
            t.escalate(vec![EscalationReason::ManagerNoAnswer])
        }
        (State::ApproversPending { first, .. }, Event::ApproversFound { members }) => {
            ask_approvers(&mut t, first, members, policy)
        }
        (State::ApproversPending { .. }, Event::ApproversUnavailable { .. }) => {
            t.escalate(vec![EscalationReason::NoApprovers])
        }
        (
            State::ApproversAsked {
                first,
                approvers,
                due,
                ..
            },
            Event::LinkUsed { approve, approver } | Event::CardAnswered { approve, approver },
        ) => {
            if now > *due {
                return Err(StepError::LinkExpired { due: *due });
            }
            approver_answer(&mut t, first, approvers, *approve, approver)?
        }
        (State::ApproversAsked { due, .. }, Event::TimerFired { timer }) => {
            t.due(Timer::Approvers, *timer, *due)?;
            t.escalate(vec![EscalationReason::ApproversNoAnswer])
        }
        (
            State::MfaResetting {
                step: MfaStep::Methods,
                approved_by,
                ..
            },
            Event::MethodsRemoved { .. },
        ) => {
            t.channel = Some(Channel::Directory);
            t.reasons.push("methods_removed".into());
            let c = &t.flow.context;
            let mut recipients = vec![c.requester.clone()];
            if let Some(m) = &c.manager
                && m.person.id != c.requester.id
            {
                recipients.push(m.person.clone());
            }
            t.actions.push(Action::IssueTap {
                user: c.user.clone(),
                recipients,
                lifetime_minutes: policy.mfa.tap_lifetime_minutes,
                usable_once: policy.mfa.tap_usable_once,
            });
            State::MfaResetting {
                step: MfaStep::Tap,
                approved_by: approved_by.clone(),
                at: now,
            }
        }
        (
            State::MfaResetting {
                step: MfaStep::Tap,
                approved_by,
                ..
            },
            Event::TapIssued { .. },
        ) => {
            t.channel = Some(Channel::Directory);
            t.reasons.push("tap_issued".into());
            match &policy.mfa.access_group {
                Some(group) => {
                    t.actions.push(Action::CheckGroup {
                        user: t.flow.context.user.clone(),
                        group: group.clone(),
                    });
                    State::MfaResetting {
                        step: MfaStep::AccessGroupCheck,
                        approved_by: approved_by.clone(),
                        at: now,
                    }
                }
                None => t.mfa_completed(),
            }
        }
        (
            State::MfaResetting {
                step: MfaStep::AccessGroupCheck,
                approved_by,
                ..
            },
            Event::GroupChecked { member_before },
        ) => {
            let group = access_group(policy, event)?;
            t.channel = Some(Channel::Directory);
            if *member_before {
                t.reasons.push("access_group_member_before".into());
                t.hold_access_group(group, true, policy)
            } else {
                t.actions.push(Action::AddToGroup {
                    user: t.flow.context.user.clone(),
                    group,
                });
                State::MfaResetting {
                    step: MfaStep::AccessGroup,
                    approved_by: approved_by.clone(),
                    at: now,
                }
            }
        }
        (
            State::MfaResetting {
                step: MfaStep::AccessGroup,
                ..
            },
            Event::GroupAdded,
        ) => {
            let group = access_group(policy, event)?;
            t.channel = Some(Channel::Directory);
            t.reasons.push("access_group_added".into());
            t.hold_access_group(group, false, policy)
        }
        (
            State::AccessGroupHeld {
                group,
                until,
                member_before,
            },
            Event::TimerFired { timer },
        ) => {
            t.due(Timer::AccessGroup, *timer, *until)?;
            t.channel = Some(Channel::Directory);
            if *member_before {
                // Not this request's membership: it stays.
                t.reasons.push("access_group_member_before".into());
                State::Completed {
                    via: Via::ApproverGroup,
                    at: now,
                }
            } else {
                t.actions.push(Action::RemoveFromGroup {
                    user: t.flow.context.user.clone(),
                    group: group.clone(),
                });
                flow.state.clone()
            }
        }
        (State::AccessGroupHeld { .. }, Event::GroupRemoved) => {
            t.channel = Some(Channel::Directory);
            t.reasons.push("access_group_removed".into());
            State::Completed {
                via: Via::ApproverGroup,
                at: now,
            }
        }
        (State::MfaResetting { .. } | State::AccessGroupHeld { .. }, Event::ResetFailed { .. }) => {
            t.escalate(vec![EscalationReason::ResetFailed])
        }
        (State::Verified { via, .. }, Event::ResetDone) => State::Completed { via: *via, at: now },
        (State::Verified { .. }, Event::ResetFailed { .. }) => {
            t.escalate(vec![EscalationReason::ResetFailed])
        }
        (state, Event::TimerFired { timer }) => {
            return Err(StepError::StaleTimer {
                state: state.name(),
                timer: *timer,
            });
        }
        (state, event) => {
            return Err(StepError::Illegal {
                state: state.name(),
                event: event.name(),
            });
        }
    };
    Ok(t.finish(state))
}

/// The context checks, then Path A or B (or, for an MFA reset, stage 1).
fn start(t: &mut Transition<'_>, policy: &Policy) -> State {
    let c = &t.flow.context;
    if c.critical_role {
        // Never reset by this flow, whatever the policy says.
        return t.escalate(vec![EscalationReason::CriticalRole]);
    }
    if c.outcome == Outcome::MfaReset {
        return mfa_start(t, policy);
    }
    let denials = within(&c.recent_denials, t.now, policy.lockout_secs);
    if policy.lockout_after_denials > 0 && denials >= policy.lockout_after_denials as usize {
        t.suspicious = true;
        return t.refuse(RefusalReason::LockedOut);
    }
    let pushes = within(&c.recent_pushes, t.now, policy.push_window_secs);
    if pushes >= policy.max_pushes as usize {
        t.suspicious = true;
        return t.refuse(RefusalReason::PushLimit);
    }
    let skip = skip_reasons(c, t.now, policy);
    if !skip.is_empty() {
        return t.escalate(skip);
    }
    if !c.device_available {
        return path_b(t, PathBReason::DeviceUnavailable, policy);
    }
    if !c.push_enrolled {
        return path_b(t, PathBReason::NotEnrolled, policy);
    }
    let user = c.user.clone();
    let due = t.now + secs(policy.push_timeout_secs);
    t.channel = Some(Channel::Push);
    t.destination = Some(mask_email(&user.upn));
    t.actions.push(Action::SendPush { user });
    t.actions.push(Action::ArmTimer {
        timer: Timer::Push,
        due,
    });
    State::PushSent {
        sent_at: t.now,
        due,
    }
}

/// The contexts in which the policy rules the automated paths out.
fn skip_reasons(c: &Context, now: Timestamp, policy: &Policy) -> Vec<EscalationReason> {
    let mut skip = Vec::new();
    if policy.skip.high_risk && c.high_risk {
        skip.push(EscalationReason::HighRisk);
    }
    if policy.skip.open_mass_reset && c.in_open_mass_reset {
        skip.push(EscalationReason::OpenMassReset);
    }
    if policy.skip.recent_request
        && c.previous_request_at
            .is_some_and(|at| at <= now && now.duration_since(at) < secs(policy.repeat_window_secs))
    {
        skip.push(EscalationReason::RecentRequest);
    }
    skip
}

/// An MFA reset after the critical-role check: the policy's context checks (no push limits:
/// nothing is pushed to a device that is being reset), then stage 1, the directory manager.
/// A requester who is the manager approves stage 1 by asking.
fn mfa_start(t: &mut Transition<'_>, policy: &Policy) -> State {
    let c = &t.flow.context;
    let skip = skip_reasons(c, t.now, policy);
    if !skip.is_empty() {
        return t.escalate(skip);
    }
    let Some(manager) = &c.manager else {
        return t.escalate(vec![EscalationReason::NoManager]);
    };
    if manager.person.id == c.user.id {
        return t.refuse(RefusalReason::ManagerIsUser);
    }
    if manager.person.id == c.requester.id {
        t.reasons.push("requester_is_manager".into());
        let first = FirstStage {
            by: manager.person.id.clone(),
            via: Via::RequesterIsManager,
        };
        return stage_two(t, first, policy);
    }
    path_b(t, PathBReason::MfaStageOne, policy)
}

/// Stage 2 begins: read the approver group (the runtime answers with its members).
fn stage_two(t: &mut Transition<'_>, first: FirstStage, policy: &Policy) -> State {
    let Some(group) = policy.mfa.approver_group.clone() else {
        return t.escalate(vec![EscalationReason::NoApprovers]);
    };
    t.actions.push(Action::FindApprovers { group });
    State::ApproversPending { first, at: t.now }
}

/// Ask every member who may approve (not the requester, the user or the stage-1
/// approver), each with their own links; the approvers timer bounds the wait.
fn ask_approvers(
    t: &mut Transition<'_>,
    first: &FirstStage,
    members: &[Person],
    policy: &Policy,
) -> State {
    let c = &t.flow.context;
    let mut approvers: Vec<Person> = Vec::new();
    for m in members {
        let excluded = excluded_approver(c, first, &m.id);
        if let Some(why) = excluded {
            let why = format!("excluded_{why}");
            if !t.reasons.contains(&why) {
                t.reasons.push(why);
            }
        } else if !approvers.iter().any(|a| a.id == m.id) {
            approvers.push(m.clone());
        }
    }
    if approvers.is_empty() {
        return t.escalate(vec![EscalationReason::NoApprovers]);
    }
    let due = t.now + secs(policy.mfa.approval_timeout_secs);
    t.channel = Some(Channel::Approvers);
    for approver in &approvers {
        t.actions.push(Action::SendApproverRequest {
            approver: approver.clone(),
            user: c.user.clone(),
            expires: due,
        });
    }
    t.actions.push(Action::ArmTimer {
        timer: Timer::Approvers,
        due,
    });
    State::ApproversAsked {
        first: first.clone(),
        approvers,
        sent_at: t.now,
        due,
    }
}

/// The policy's access group, for an event that needs one (the policy may have lost it
/// since the step began).
fn access_group(policy: &Policy, event: &Event) -> Result<String, StepError> {
    policy.mfa.access_group.clone().ok_or(StepError::Illegal {
        state: StateName::MfaResetting,
        event: event.name(),
    })
}

/// Why `id` may not approve stage 2, if it may not: four eyes means the requester, the
/// user and the stage-1 approver are not the second pair.
fn excluded_approver(c: &Context, first: &FirstStage, id: &str) -> Option<&'static str> {
    if id == c.requester.id {
        Some("requester")
    } else if id == c.user.id {
        Some("user")
    } else if id == first.by {
        Some("stage_one_approver")
    } else {
        None
    }
}

/// A stage-2 answer. From an excluded person it is refused and audited (the request stays
/// where it is); from anyone outside the asked members it is an error; the first member's
/// answer decides.
fn approver_answer(
    t: &mut Transition<'_>,
    first: &FirstStage,
    approvers: &[Person],
    approve: bool,
    approver: &Approver,
) -> Result<State, StepError> {
    let c = &t.flow.context;
    if let Some(why) = excluded_approver(c, first, &approver.id) {
        t.approver = Some(approver.clone());
        t.channel = Some(Channel::Approvers);
        t.suspicious = true;
        t.reasons.push(format!("approver_is_{why}"));
        return Ok(t.flow.state.clone());
    }
    if !approvers.iter().any(|a| a.id == approver.id) {
        return Err(StepError::WrongApprover {
            approver: approver.id.clone(),
        });
    }
    t.approver = Some(approver.clone());
    t.channel = Some(Channel::Approvers);
    t.actions.push(Action::DisarmTimer {
        timer: Timer::Approvers,
    });
    if !approve {
        t.suspicious = true;
        return Ok(t.deny(2));
    }
    t.reasons.push(snake(&Via::ApproverGroup));
    t.actions.push(Action::RemoveMethods {
        user: c.user.clone(),
    });
    Ok(State::MfaResetting {
        step: MfaStep::Methods,
        approved_by: approver.id.clone(),
        at: t.now,
    })
}

/// Path B: the manager's Teams card, unless there is no manager or the manager may not
/// approve this request.
fn path_b(t: &mut Transition<'_>, reason: PathBReason, policy: &Policy) -> State {
    t.reasons.push(snake(&reason));
    let c = &t.flow.context;
    if c.device_available && !c.manager_fallback {
        return t.escalate(vec![EscalationReason::PushOnly]);
    }
    let Some(manager) = &c.manager else {
        return t.escalate(vec![EscalationReason::NoManager]);
    };
    if manager.person.id == c.requester.id {
        return t.refuse(RefusalReason::ManagerIsRequester);
    }
    if manager.person.id == c.user.id {
        return t.refuse(RefusalReason::ManagerIsUser);
    }
    let due = t.now + secs(policy.card_timeout_secs);
    t.channel = Some(Channel::Teams);
    t.destination = Some(mask_email(&manager.person.upn));
    t.actions.push(Action::SendManagerCard {
        manager: manager.person.clone(),
        user: c.user.clone(),
    });
    t.actions.push(Action::ArmTimer {
        timer: Timer::Card,
        due,
    });
    State::ManagerCardSent {
        reason,
        sent_at: t.now,
        due,
    }
}

/// The card went unanswered: text the manager's directory mobile, or escalate without one.
fn send_sms(t: &mut Transition<'_>, reason: PathBReason, policy: &Policy) -> State {
    let c = &t.flow.context;
    let manager = c.manager.as_ref();
    let Some((manager, mobile)) = manager.and_then(|m| Some((m, m.mobile.as_ref()?))) else {
        return t.escalate(vec![EscalationReason::NoManagerMobile]);
    };
    let due = t.now + secs(policy.link_ttl_secs);
    t.channel = Some(Channel::Sms);
    t.destination = Some(mask_phone(mobile));
    t.actions.push(Action::SendManagerSms {
        manager: manager.person.clone(),
        mobile: mobile.clone(),
        user: c.user.clone(),
        link_expires: due,
    });
    t.actions.push(Action::ArmTimer {
        timer: Timer::Link,
        due,
    });
    State::ManagerSmsSent {
        reason,
        sent_at: t.now,
        due,
    }
}

/// How many of `times` fall within the last `window_secs` before `now`.
fn within(times: &[Timestamp], now: Timestamp, window_secs: u64) -> usize {
    times
        .iter()
        .filter(|&&at| at <= now && now.duration_since(at) < secs(window_secs))
        .count()
}

/// Seconds as a signed duration (saturating: a policy cannot overflow the clock).
fn secs(s: u64) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(s).unwrap_or(i64::MAX / 2))
}

/// One transition under construction: the actions so far and the audit fields.
struct Transition<'f> {
    flow: &'f Flow,
    event: &'f Event,
    now: Timestamp,
    actions: Vec<Action>,
    channel: Option<Channel>,
    destination: Option<String>,
    reasons: Vec<String>,
    suspicious: bool,
    approver: Option<Approver>,
}

impl<'f> Transition<'f> {
    fn new(flow: &'f Flow, event: &'f Event, now: Timestamp) -> Self {
        Transition {
            flow,
            event,
            now,
            actions: Vec::new(),
            channel: None,
            destination: None,
            reasons: Vec::new(),
            suspicious: false,
            approver: None,
        }
    }

    /// Check that `fired` is the `armed` timer and is due.
    fn due(&self, armed: Timer, fired: Timer, due: Timestamp) -> Result<(), StepError> {
        if fired != armed {
            return Err(StepError::StaleTimer {
                state: self.flow.state.name(),
                timer: fired,
            });
        }
        if self.now < due {
            return Err(StepError::TimerEarly {
                timer: fired,
                due,
                now: self.now,
            });
        }
        Ok(())
    }

    /// The manager's answer, by card or link. For an MFA reset it decides stage 1: a yes
    /// starts stage 2, a no ends the request.
    fn answer(
        &mut self,
        approve: bool,
        approver: &Approver,
        armed: Timer,
        via: Via,
        channel: Channel,
        policy: &Policy,
    ) -> Result<State, StepError> {
        let manager = self.flow.context.manager.as_ref();
        if manager.is_none_or(|m| m.person.id != approver.id) {
            return Err(StepError::WrongApprover {
                approver: approver.id.clone(),
            });
        }
        self.approver = Some(approver.clone());
        self.actions.push(Action::DisarmTimer { timer: armed });
        if self.flow.context.outcome == Outcome::MfaReset {
            self.channel = Some(channel);
            if !approve {
                self.suspicious = true;
                return Ok(self.deny(1));
            }
            self.reasons.push("manager_approved".into());
            let first = FirstStage {
                by: approver.id.clone(),
                via,
            };
            return Ok(stage_two(self, first, policy));
        }
        if approve {
            Ok(self.verified(via, channel))
        } else {
            self.channel = Some(channel);
            self.suspicious = true;
            Ok(self.escalate(vec![EscalationReason::ManagerDenied]))
        }
    }

    fn verified(&mut self, via: Via, channel: Channel) -> State {
        self.channel = Some(channel);
        self.reasons.push(snake(&via));
        self.actions.push(Action::ResetPassword {
            user: self.flow.context.user.clone(),
            via,
        });
        State::Verified { via, at: self.now }
    }

    fn escalate(&mut self, reasons: Vec<EscalationReason>) -> State {
        self.reasons.extend(reasons.iter().map(snake));
        if self.channel.is_none() {
            self.channel = Some(Channel::Ticket);
        }
        self.actions.push(Action::OpenTicket {
            user: self.flow.context.user.clone(),
            reasons: reasons.clone(),
            suspicious: self.suspicious,
        });
        State::Escalated {
            reasons,
            suspicious: self.suspicious,
            at: self.now,
        }
    }

    /// An approver said no: the request ends and the requester is told.
    fn deny(&mut self, stage: u8) -> State {
        self.reasons.push(
            if stage == 1 {
                "manager_denied"
            } else {
                "approver_denied"
            }
            .into(),
        );
        self.actions.push(Action::TellRequester {
            result: "denied".into(),
        });
        State::Denied {
            stage,
            at: self.now,
        }
    }

    /// The user is in the access group until the policy's time is up (the timer ends it);
    /// the MFA reset is done, and the security channel hears of it.
    fn hold_access_group(&mut self, group: String, member_before: bool, policy: &Policy) -> State {
        let until = self.now + secs(policy.mfa.access_group_secs);
        self.actions.push(Action::NotifySecurity {
            user: self.flow.context.user.clone(),
        });
        self.actions.push(Action::ArmTimer {
            timer: Timer::AccessGroup,
            due: until,
        });
        State::AccessGroupHeld {
            group,
            until,
            member_before,
        }
    }

    /// The MFA reset is done: the security channel hears of it.
    fn mfa_completed(&mut self) -> State {
        self.actions.push(Action::NotifySecurity {
            user: self.flow.context.user.clone(),
        });
        State::Completed {
            via: Via::ApproverGroup,
            at: self.now,
        }
    }

    fn refuse(&mut self, reason: RefusalReason) -> State {
        self.reasons.push(snake(&reason));
        State::Refused {
            reason,
            at: self.now,
        }
    }

    /// The next flow and the actions, the audit record last.
    fn finish(mut self, state: State) -> (Flow, Vec<Action>) {
        let approver = self.approver.take();
        let record = AuditRecord {
            request: self.flow.id.clone(),
            at: self.now,
            event: self.event.name().to_string(),
            from: self.flow.state.name(),
            to: state.name(),
            channel: self.channel,
            destination: self.destination,
            reason: (!self.reasons.is_empty()).then(|| self.reasons.join(",")),
            suspicious: self.suspicious,
            approver_id: approver.as_ref().map(|a| a.id.clone()),
            approver_ip: approver.as_ref().and_then(|a| a.ip.clone()),
            approver_user_agent: approver.as_ref().and_then(|a| a.user_agent.clone()),
            token_id: approver.and_then(|a| a.token_id),
        };
        self.actions.push(Action::Audit(record));
        let flow = Flow {
            id: self.flow.id.clone(),
            context: self.flow.context.clone(),
            state,
        };
        (flow, self.actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::context::{Manager, Person};

    fn person(id: &str) -> Person {
        Person {
            id: id.into(),
            upn: format!("{id}@contoso.com"),
        }
    }

    fn context() -> Context {
        Context {
            user: person("alice"),
            requester: person("helpdesk"),
            manager: Some(Manager {
                person: person("mara"),
                mobile: Some("+14255550123".into()),
            }),
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
        }
    }

    /// The fake clock: `t(s)` is `s` seconds after a fixed start.
    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn manager(ip: &str) -> Approver {
        Approver {
            id: "mara".into(),
            ip: Some(ip.into()),
            user_agent: Some("Teams/1.6".into()),
            token_id: Some("tok-1".into()),
        }
    }

    /// A driver that steps a flow and keeps every action.
    struct Run {
        flow: Flow,
        policy: Policy,
        actions: Vec<Action>,
    }

    impl Run {
        fn new(context: Context) -> Self {
            Run {
                flow: Flow::new("req-1", context),
                policy: Policy::default(),
                actions: Vec::new(),
            }
        }

        fn on(&mut self, event: Event, at: i64) -> &mut Self {
            let (flow, actions) = step(&self.flow, &event, t(at), &self.policy)
                .unwrap_or_else(|e| panic!("{event:?} at {at}: {e}"));
            // Every transition is audited, last, from the state it left.
            let Some(Action::Audit(record)) = actions.last() else {
                panic!("no audit record: {actions:?}");
            };
            assert_eq!(
                (record.from, record.to),
                (self.flow.state.name(), flow.state.name())
            );
            assert_eq!(record.at, t(at));
            self.flow = flow;
            self.actions.extend(actions);
            self
        }

        fn fails(&self, event: Event, at: i64) -> StepError {
            step(&self.flow, &event, t(at), &self.policy).unwrap_err()
        }

        fn audits(&self) -> Vec<&AuditRecord> {
            self.actions
                .iter()
                .filter_map(|a| match a {
                    Action::Audit(r) => Some(r),
                    _ => None,
                })
                .collect()
        }

        fn last_audit(&self) -> &AuditRecord {
            self.audits().last().copied().unwrap()
        }

        fn sent(&self) -> Vec<&'static str> {
            self.actions
                .iter()
                .filter_map(|a| match a {
                    Action::SendPush { .. } => Some("push"),
                    Action::SendManagerCard { .. } => Some("card"),
                    Action::SendManagerSms { .. } => Some("sms"),
                    Action::OpenTicket { .. } => Some("ticket"),
                    Action::ResetPassword { .. } => Some("reset"),
                    _ => None,
                })
                .collect()
        }
    }

    fn push(answer: PushAnswer) -> Event {
        Event::PushAnswered { answer }
    }

    fn timer(timer: Timer) -> Event {
        Event::TimerFired { timer }
    }

    fn escalated(state: &State) -> (Vec<EscalationReason>, bool) {
        match state {
            State::Escalated {
                reasons,
                suspicious,
                ..
            } => (reasons.clone(), *suspicious),
            other => panic!("not escalated: {other:?}"),
        }
    }

    fn refused(state: &State) -> RefusalReason {
        match state {
            State::Refused { reason, .. } => *reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn path_a_approved_push_resets_and_completes() {
        let mut run = Run::new(context());
        run.on(Event::Start, 0);
        assert_eq!(
            run.flow.state,
            State::PushSent {
                sent_at: t(0),
                due: t(120)
            }
        );
        assert!(run.actions.contains(&Action::ArmTimer {
            timer: Timer::Push,
            due: t(120)
        }));
        let sent = run.last_audit();
        assert_eq!(sent.channel, Some(Channel::Push));
        assert_eq!(sent.destination.as_deref(), Some("a***@contoso.com"));
        run.on(push(PushAnswer::Approved), 30);
        assert_eq!(
            run.flow.state,
            State::Verified {
                via: Via::Push,
                at: t(30)
            }
        );
        run.on(Event::ResetDone, 31);
        assert!(matches!(
            run.flow.state,
            State::Completed { via: Via::Push, .. }
        ));
        assert_eq!(run.sent(), ["push", "reset"]);
        assert!(run.flow.state.is_final());
        assert!(matches!(
            run.fails(Event::ResetDone, 32),
            StepError::Illegal {
                state: StateName::Completed,
                ..
            }
        ));
    }

    #[test]
    fn path_a_timed_out_goes_to_b_and_the_card_approval_resets() {
        let mut run = Run::new(context());
        run.on(Event::Start, 0);
        // The runtime's deadline fires before the provider answers.
        assert!(matches!(
            run.fails(timer(Timer::Push), 119),
            StepError::TimerEarly { .. }
        ));
        run.on(timer(Timer::Push), 120);
        assert!(matches!(
            run.flow.state,
            State::ManagerCardSent {
                reason: PathBReason::PushTimedOut,
                ..
            }
        ));
        let card = run.last_audit().clone();
        assert_eq!(card.channel, Some(Channel::Teams));
        assert_eq!(card.destination.as_deref(), Some("m***@contoso.com"));
        assert_eq!(card.reason.as_deref(), Some("push_timed_out"));
        // A late answer from the provider is not accepted any more.
        assert!(matches!(
            run.fails(push(PushAnswer::Approved), 121),
            StepError::Illegal { .. }
        ));
        run.on(
            Event::CardAnswered {
                approve: true,
                approver: manager("203.0.113.7"),
            },
            200,
        );
        assert!(matches!(
            run.flow.state,
            State::Verified {
                via: Via::ManagerCard,
                ..
            }
        ));
        let approval = run.last_audit();
        assert_eq!(approval.approver_id.as_deref(), Some("mara"));
        assert_eq!(approval.approver_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(approval.approver_user_agent.as_deref(), Some("Teams/1.6"));
        assert_eq!(approval.token_id.as_deref(), Some("tok-1"));
        assert_eq!(run.sent(), ["push", "card", "reset"]);
        // The card timer armed earlier is stale now.
        assert!(matches!(
            run.fails(timer(Timer::Card), 420),
            StepError::StaleTimer { .. }
        ));
    }

    #[test]
    fn provider_timeout_answer_also_goes_to_b() {
        let mut run = Run::new(context());
        run.on(Event::Start, 0).on(push(PushAnswer::TimedOut), 60);
        assert!(matches!(run.flow.state, State::ManagerCardSent { .. }));
        assert!(
            run.actions
                .contains(&Action::DisarmTimer { timer: Timer::Push })
        );
    }

    #[test]
    fn push_only_escalates_where_the_manager_would_have_been_asked() {
        let mut c = context();
        c.manager_fallback = false;
        let mut run = Run::new(c);
        run.on(Event::Start, 0).on(push(PushAnswer::TimedOut), 60);
        match &run.flow.state {
            State::Escalated { reasons, .. } => {
                assert_eq!(reasons, &vec![EscalationReason::PushOnly]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(run.sent(), ["push", "ticket"], "no card");
        // A requester who says the device is lost asks for the manager whatever the fallback.
        let mut c = context();
        c.manager_fallback = false;
        c.device_available = false;
        let mut run = Run::new(c);
        run.on(Event::Start, 0);
        assert_eq!(run.sent(), ["card"]);
    }

    #[test]
    fn unanswered_card_sends_the_sms_at_exactly_five_minutes_and_the_link_approves() {
        let mut c = context();
        c.device_available = false;
        let mut run = Run::new(c);
        run.on(Event::Start, 0);
        assert_eq!(run.sent(), ["card"], "no push to a lost device");
        assert_eq!(
            run.flow.state,
            State::ManagerCardSent {
                reason: PathBReason::DeviceUnavailable,
                sent_at: t(0),
                due: t(300)
            }
        );
        assert!(matches!(
            run.fails(timer(Timer::Card), 299),
            StepError::TimerEarly { .. }
        ));
        run.on(timer(Timer::Card), 300);
        assert_eq!(run.sent(), ["card", "sms"]);
        let sms = run.actions.iter().find_map(|a| match a {
            Action::SendManagerSms {
                mobile,
                link_expires,
                ..
            } => Some((mobile.clone(), *link_expires)),
            _ => None,
        });
        assert_eq!(sms, Some(("+14255550123".into(), t(1200))));
        let record = run.last_audit();
        assert_eq!(record.channel, Some(Channel::Sms));
        assert_eq!(record.destination.as_deref(), Some("+14******123"));
        let json = serde_json::to_string(&run.audits()).unwrap();
        assert!(!json.contains("+14255550123"), "{json}");
        // Someone else cannot use the link.
        let stranger = Approver {
            id: "mallory".into(),
            ..manager("198.51.100.1")
        };
        assert!(matches!(
            run.fails(
                Event::LinkUsed {
                    approve: true,
                    approver: stranger
                },
                400
            ),
            StepError::WrongApprover { .. }
        ));
        run.on(
            Event::LinkUsed {
                approve: true,
                approver: manager("198.51.100.9"),
            },
            400,
        );
        assert!(matches!(
            run.flow.state,
            State::Verified {
                via: Via::ManagerLink,
                ..
            }
        ));
        assert_eq!(
            run.last_audit().approver_ip.as_deref(),
            Some("198.51.100.9")
        );
        assert!(
            run.actions
                .contains(&Action::DisarmTimer { timer: Timer::Link })
        );
    }

    #[test]
    fn the_card_still_counts_after_the_sms_but_an_expired_link_does_not() {
        let mut c = context();
        c.push_enrolled = false;
        let mut run = Run::new(c);
        run.on(Event::Start, 0).on(timer(Timer::Card), 300);
        let expired = run.fails(
            Event::LinkUsed {
                approve: true,
                approver: manager("198.51.100.9"),
            },
            1201,
        );
        assert_eq!(expired, StepError::LinkExpired { due: t(1200) });
        run.on(
            Event::CardAnswered {
                approve: true,
                approver: manager("203.0.113.7"),
            },
            600,
        );
        assert!(matches!(
            run.flow.state,
            State::Verified {
                via: Via::ManagerCard,
                ..
            }
        ));
    }

    #[test]
    fn all_paths_failing_escalates_to_a_ticket() {
        let mut run = Run::new(context());
        run.on(Event::Start, 0)
            .on(timer(Timer::Push), 120)
            .on(timer(Timer::Card), 420)
            .on(timer(Timer::Link), 1320);
        let (reasons, suspicious) = escalated(&run.flow.state);
        assert_eq!(reasons, [EscalationReason::ManagerNoAnswer]);
        assert!(!suspicious);
        assert_eq!(run.sent(), ["push", "card", "sms", "ticket"]);
        assert_eq!(run.audits().len(), 4, "one record per transition");
        assert!(matches!(
            run.fails(
                Event::LinkUsed {
                    approve: true,
                    approver: manager("198.51.100.9")
                },
                1321
            ),
            StepError::Illegal { .. }
        ));
    }

    #[test]
    fn a_manager_denial_escalates_as_suspicious() {
        let mut run = Run::new(context());
        run.on(Event::Start, 0)
            .on(push(PushAnswer::TimedOut), 60)
            .on(
                Event::CardAnswered {
                    approve: false,
                    approver: manager("203.0.113.7"),
                },
                90,
            );
        let (reasons, suspicious) = escalated(&run.flow.state);
        assert_eq!(reasons, [EscalationReason::ManagerDenied]);
        assert!(suspicious);
        assert_eq!(run.last_audit().approver_id.as_deref(), Some("mara"));
    }

    #[test]
    fn a_denied_push_escalates_as_suspicious_and_never_reaches_the_manager() {
        let mut run = Run::new(context());
        run.on(Event::Start, 0).on(push(PushAnswer::Denied), 10);
        let (reasons, suspicious) = escalated(&run.flow.state);
        assert_eq!(reasons, [EscalationReason::PushDenied]);
        assert!(suspicious);
        assert_eq!(run.sent(), ["push", "ticket"], "no card, no SMS");
        assert!(run.actions.contains(&Action::OpenTicket {
            user: person("alice"),
            reasons: vec![EscalationReason::PushDenied],
            suspicious: true
        }));
        let record = run.last_audit();
        assert!(record.suspicious);
        assert_eq!(record.reason.as_deref(), Some("push_denied"));
        // The push timer is stale: it cannot start Path B afterwards.
        assert!(matches!(
            run.fails(timer(Timer::Push), 120),
            StepError::StaleTimer { .. }
        ));
    }

    #[test]
    fn push_bombing_past_the_limit_is_refused() {
        let mut c = context();
        c.recent_pushes = vec![t(-3000), t(-2000), t(-1000)];
        let mut run = Run::new(c.clone());
        run.on(Event::Start, 0);
        assert_eq!(refused(&run.flow.state), RefusalReason::PushLimit);
        assert!(run.sent().is_empty(), "nothing sent: {:?}", run.actions);
        assert!(run.last_audit().suspicious);
        // A push older than the window no longer counts.
        c.recent_pushes[0] = t(-3600);
        let mut run = Run::new(c.clone());
        run.on(Event::Start, 0);
        assert!(matches!(run.flow.state, State::PushSent { .. }));
        // The limit is the policy's.
        let mut run = Run::new(c);
        run.policy.max_pushes = 2;
        run.on(Event::Start, 0);
        assert_eq!(refused(&run.flow.state), RefusalReason::PushLimit);
    }

    #[test]
    fn repeated_denials_lock_the_user_out_for_a_while() {
        let mut c = context();
        c.recent_denials = vec![t(-600), t(-300)];
        let mut run = Run::new(c.clone());
        run.on(Event::Start, 0);
        assert_eq!(refused(&run.flow.state), RefusalReason::LockedOut);
        let mut run = Run::new(c);
        run.on(Event::Start, 3000);
        assert!(
            matches!(run.flow.state, State::PushSent { .. }),
            "lockout over"
        );
    }

    #[test]
    fn high_risk_and_privileged_users_go_straight_to_the_manual_path() {
        type Case = (fn(&mut Context), EscalationReason);
        let cases: [Case; 4] = [
            (|c| c.high_risk = true, EscalationReason::HighRisk),
            (|c| c.critical_role = true, EscalationReason::CriticalRole),
            (
                |c| c.in_open_mass_reset = true,
                EscalationReason::OpenMassReset,
            ),
            (
                |c| c.previous_request_at = Some(t(-1800)),
                EscalationReason::RecentRequest,
            ),
        ];
        for (set, reason) in cases {
            let mut c = context();
            set(&mut c);
            let mut run = Run::new(c);
            run.on(Event::Start, 0);
            let (reasons, suspicious) = escalated(&run.flow.state);
            assert_eq!(reasons, [reason]);
            assert!(!suspicious);
            assert_eq!(run.sent(), ["ticket"], "no automated path for {reason:?}");
            assert_eq!(run.last_audit().reason, Some(snake(&reason)));
        }
        // All reasons that apply are recorded.
        let mut c = context();
        c.high_risk = true;
        c.in_open_mass_reset = true;
        let mut run = Run::new(c);
        run.on(Event::Start, 0);
        assert_eq!(
            run.last_audit().reason.as_deref(),
            Some("high_risk,open_mass_reset")
        );
    }

    #[test]
    fn the_policy_may_allow_high_risk_users_but_never_critical_roles() {
        let mut c = context();
        c.high_risk = true;
        c.critical_role = true;
        let mut run = Run::new(c.clone());
        run.policy.skip.high_risk = false;
        run.on(Event::Start, 0);
        assert_eq!(
            escalated(&run.flow.state).0,
            [EscalationReason::CriticalRole]
        );
        c.critical_role = false;
        let mut run = Run::new(c);
        run.policy.skip.high_risk = false;
        run.on(Event::Start, 0);
        assert!(matches!(run.flow.state, State::PushSent { .. }));
    }

    #[test]
    fn no_manager_or_no_manager_mobile_escalates() {
        let mut c = context();
        c.device_available = false;
        c.manager = None;
        let mut run = Run::new(c);
        run.on(Event::Start, 0);
        assert_eq!(escalated(&run.flow.state).0, [EscalationReason::NoManager]);
        assert_eq!(run.sent(), ["ticket"]);

        let mut c = context();
        c.manager.as_mut().unwrap().mobile = None;
        let mut run = Run::new(c);
        run.on(Event::Start, 0)
            .on(timer(Timer::Push), 120)
            .on(timer(Timer::Card), 420);
        assert_eq!(
            escalated(&run.flow.state).0,
            [EscalationReason::NoManagerMobile]
        );
        assert_eq!(run.sent(), ["push", "card", "ticket"]);
    }

    #[test]
    fn a_manager_who_is_the_requester_or_the_user_is_refused() {
        let mut c = context();
        c.device_available = false;
        c.requester = person("mara");
        let mut run = Run::new(c);
        run.on(Event::Start, 0);
        assert_eq!(refused(&run.flow.state), RefusalReason::ManagerIsRequester);
        assert!(run.sent().is_empty());

        let mut c = context();
        c.manager.as_mut().unwrap().person = person("alice");
        let mut run = Run::new(c);
        run.on(Event::Start, 0).on(push(PushAnswer::TimedOut), 60);
        assert_eq!(refused(&run.flow.state), RefusalReason::ManagerIsUser);
        assert_eq!(run.sent(), ["push"]);
    }

    #[test]
    fn a_failed_reset_after_verification_goes_to_an_engineer() {
        let mut run = Run::new(context());
        run.on(Event::Start, 0)
            .on(push(PushAnswer::Approved), 5)
            .on(
                Event::ResetFailed {
                    detail: "403".into(),
                },
                6,
            );
        assert_eq!(
            escalated(&run.flow.state).0,
            [EscalationReason::ResetFailed]
        );
    }

    #[test]
    fn events_out_of_place_are_typed_errors_and_change_nothing() {
        let run = Run::new(context());
        assert_eq!(
            run.fails(push(PushAnswer::Approved), 0),
            StepError::Illegal {
                state: StateName::Requested,
                event: "push_answered"
            }
        );
        assert!(matches!(
            run.fails(timer(Timer::Card), 0),
            StepError::StaleTimer { .. }
        ));
        let mut run = Run::new(context());
        run.on(Event::Start, 0);
        assert!(matches!(
            run.fails(Event::Start, 1),
            StepError::Illegal { .. }
        ));
        assert!(matches!(
            run.fails(
                Event::CardAnswered {
                    approve: true,
                    approver: manager("203.0.113.7")
                },
                1
            ),
            StepError::Illegal { .. }
        ));
        assert!(matches!(
            run.fails(Event::ResetDone, 1),
            StepError::Illegal { .. }
        ));
        assert!(matches!(
            run.fails(timer(Timer::Card), 500),
            StepError::StaleTimer { .. }
        ));
    }

    fn mfa_policy() -> Policy {
        let mut p = Policy::default();
        p.mfa.approver_group = Some("g-it".into());
        p.mfa.access_group = Some("g-ca".into());
        p
    }

    fn mfa_run(requester: &str) -> Run {
        let mut c = context();
        c.outcome = Outcome::MfaReset;
        c.requester = person(requester);
        let mut run = Run::new(c);
        run.policy = mfa_policy();
        run
    }

    fn member(id: &str) -> Approver {
        Approver {
            id: id.into(),
            ip: Some("192.0.2.4".into()),
            user_agent: Some("Edge".into()),
            token_id: Some(format!("tok-{id}")),
        }
    }

    fn found(ids: &[&str]) -> Event {
        Event::ApproversFound {
            members: ids.iter().map(|id| person(id)).collect(),
        }
    }

    fn mfa_sent(run: &Run) -> Vec<String> {
        run.actions
            .iter()
            .filter_map(|a| match a {
                Action::SendPush { .. } => Some("push".into()),
                Action::SendManagerCard { .. } => Some("card".into()),
                Action::FindApprovers { group } => Some(format!("find {group}")),
                Action::SendApproverRequest { approver, .. } => {
                    Some(format!("ask {}", approver.id))
                }
                Action::RemoveMethods { .. } => Some("remove".into()),
                Action::IssueTap { recipients, .. } => Some(format!(
                    "tap to {}",
                    recipients
                        .iter()
                        .map(|p| p.id.as_str())
                        .collect::<Vec<_>>()
                        .join("+")
                )),
                Action::CheckGroup { .. } => Some("check".into()),
                Action::AddToGroup { .. } => Some("add".into()),
                Action::RemoveFromGroup { .. } => Some("leave".into()),
                Action::NotifySecurity { .. } => Some("soc".into()),
                Action::TellRequester { result } => Some(format!("tell {result}")),
                Action::OpenTicket { .. } => Some("ticket".into()),
                Action::ResetPassword { .. } => Some("reset".into()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn mfa_reset_by_the_manager_is_stage_one_implicitly_then_a_member_approves() {
        let mut run = mfa_run("mara");
        run.on(Event::Start, 0);
        assert!(matches!(
            &run.flow.state,
            State::ApproversPending { first, .. }
                if first.by == "mara" && first.via == Via::RequesterIsManager
        ));
        assert_eq!(
            run.last_audit().reason.as_deref(),
            Some("requester_is_manager")
        );
        // The group as read now: the manager (the requester and stage-1 approver) and the user
        // are not asked.
        run.on(found(&["ivan", "mara", "alice", "ivan", "sec2"]), 1);
        let State::ApproversAsked { approvers, due, .. } = &run.flow.state else {
            panic!("{:?}", run.flow.state);
        };
        assert_eq!(approvers.len(), 2);
        assert_eq!(*due, t(1 + 3600));
        assert_eq!(
            run.last_audit().reason.as_deref(),
            Some("excluded_requester,excluded_user")
        );
        assert!(run.actions.contains(&Action::ArmTimer {
            timer: Timer::Approvers,
            due: t(3601)
        }));
        run.on(
            Event::LinkUsed {
                approve: true,
                approver: member("sec2"),
            },
            60,
        );
        let approval = run.last_audit().clone();
        assert_eq!(approval.approver_id.as_deref(), Some("sec2"));
        assert_eq!(approval.token_id.as_deref(), Some("tok-sec2"));
        assert_eq!(approval.channel, Some(Channel::Approvers));
        // The first answer decided: another member's is no longer taken.
        assert!(matches!(
            run.fails(
                Event::LinkUsed {
                    approve: false,
                    approver: member("ivan")
                },
                61
            ),
            StepError::Illegal { .. }
        ));
        run.on(
            Event::MethodsRemoved {
                removed: 3,
                kept: vec!["password".into()],
            },
            62,
        )
        .on(Event::TapIssued { delivered: 1 }, 63)
        .on(
            Event::GroupChecked {
                member_before: false,
            },
            64,
        )
        .on(Event::GroupAdded, 65);
        let State::AccessGroupHeld {
            until,
            member_before,
            ..
        } = run.flow.state.clone()
        else {
            panic!("{:?}", run.flow.state);
        };
        assert_eq!((until, member_before), (t(65 + 8 * 3600), false));
        assert!(!run.flow.state.is_final());
        assert!(matches!(
            run.fails(timer(Timer::AccessGroup), 65 + 8 * 3600 - 1),
            StepError::TimerEarly { .. }
        ));
        run.on(timer(Timer::AccessGroup), 65 + 8 * 3600)
            .on(Event::GroupRemoved, 65 + 8 * 3600 + 1);
        assert!(matches!(
            run.flow.state,
            State::Completed {
                via: Via::ApproverGroup,
                ..
            }
        ));
        // No push: the device is what is being reset. The pass goes to the requester, who
        // is the manager, once.
        assert_eq!(
            mfa_sent(&run),
            [
                "find g-it",
                "ask ivan",
                "ask sec2",
                "remove",
                "tap to mara",
                "check",
                "add",
                "soc",
                "leave"
            ]
        );
    }

    #[test]
    fn mfa_reset_by_the_help_desk_needs_the_manager_first() {
        let mut run = mfa_run("helpdesk");
        run.on(Event::Start, 0);
        assert!(matches!(
            run.flow.state,
            State::ManagerCardSent {
                reason: PathBReason::MfaStageOne,
                ..
            }
        ));
        // The card timer still sends the SMS; the manager approves through its link.
        run.on(timer(Timer::Card), 300).on(
            Event::LinkUsed {
                approve: true,
                approver: manager("198.51.100.9"),
            },
            400,
        );
        assert!(matches!(
            &run.flow.state,
            State::ApproversPending { first, .. } if first.via == Via::ManagerLink
        ));
        assert!(
            run.actions
                .contains(&Action::DisarmTimer { timer: Timer::Link })
        );
        run.on(found(&["ivan", "helpdesk"]), 401);
        assert_eq!(
            run.last_audit().reason.as_deref(),
            Some("excluded_requester")
        );
        // The requester, though a member, is refused and audited; the request waits on.
        let before = run.flow.state.clone();
        run.on(
            Event::LinkUsed {
                approve: true,
                approver: member("helpdesk"),
            },
            402,
        );
        assert_eq!(run.flow.state, before);
        let refused = run.last_audit();
        assert_eq!(refused.reason.as_deref(), Some("approver_is_requester"));
        assert!(refused.suspicious);
        assert_eq!(refused.approver_id.as_deref(), Some("helpdesk"));
        // So is the stage-1 approver with their own link, and a stranger is an error.
        run.on(
            Event::LinkUsed {
                approve: true,
                approver: manager("198.51.100.9"),
            },
            403,
        );
        assert_eq!(
            run.last_audit().reason.as_deref(),
            Some("approver_is_stage_one_approver")
        );
        assert!(matches!(
            run.fails(
                Event::LinkUsed {
                    approve: true,
                    approver: member("mallory")
                },
                404
            ),
            StepError::WrongApprover { .. }
        ));
        run.on(
            Event::LinkUsed {
                approve: true,
                approver: member("ivan"),
            },
            405,
        );
        assert!(matches!(
            run.flow.state,
            State::MfaResetting {
                step: MfaStep::Methods,
                ..
            }
        ));
        assert_eq!(
            mfa_sent(&run),
            ["card", "find g-it", "ask ivan", "remove"],
            "no push, nothing asked of the requester"
        );
        run.on(
            Event::MethodsRemoved {
                removed: 1,
                kept: Vec::new(),
            },
            406,
        );
        assert!(run.actions.iter().any(|a| matches!(
            a,
            Action::IssueTap { recipients, lifetime_minutes: 60, usable_once: true, .. }
                if recipients == &vec![person("helpdesk"), person("mara")]
        )));
    }

    #[test]
    fn mfa_stage_two_unanswered_escalates_and_a_denial_ends_the_request() {
        let mut run = mfa_run("mara");
        run.on(Event::Start, 0).on(found(&["ivan"]), 0);
        assert!(matches!(
            run.fails(timer(Timer::Approvers), 3599),
            StepError::TimerEarly { .. }
        ));
        run.on(timer(Timer::Approvers), 3600);
        assert_eq!(
            escalated(&run.flow.state).0,
            [EscalationReason::ApproversNoAnswer]
        );
        assert_eq!(mfa_sent(&run).last().unwrap(), "ticket");

        let mut run = mfa_run("mara");
        run.on(Event::Start, 0).on(found(&["ivan"]), 0).on(
            Event::CardAnswered {
                approve: false,
                approver: member("ivan"),
            },
            10,
        );
        assert!(matches!(run.flow.state, State::Denied { stage: 2, .. }));
        assert!(run.flow.state.is_final());
        assert_eq!(run.last_audit().reason.as_deref(), Some("approver_denied"));
        assert!(run.last_audit().suspicious);
        assert!(run.actions.contains(&Action::DisarmTimer {
            timer: Timer::Approvers
        }));
        assert_eq!(mfa_sent(&run), ["find g-it", "ask ivan", "tell denied"]);

        // The manager's no at stage 1 ends it too, before anyone in the group is asked.
        let mut run = mfa_run("helpdesk");
        run.on(Event::Start, 0).on(
            Event::CardAnswered {
                approve: false,
                approver: manager("203.0.113.7"),
            },
            5,
        );
        assert!(matches!(run.flow.state, State::Denied { stage: 1, .. }));
        assert_eq!(mfa_sent(&run), ["card", "tell denied"]);
    }

    #[test]
    fn mfa_reset_never_for_privileged_users_and_only_with_someone_to_approve() {
        let mut run = mfa_run("mara");
        run.flow.context.critical_role = true;
        run.on(Event::Start, 0);
        assert_eq!(
            escalated(&run.flow.state).0,
            [EscalationReason::CriticalRole]
        );
        assert_eq!(mfa_sent(&run), ["ticket"]);
        // Push limits do not apply (nothing is pushed); the risk check does.
        let mut run = mfa_run("mara");
        run.flow.context.recent_pushes = vec![t(-30), t(-20), t(-10)];
        run.flow.context.high_risk = true;
        run.on(Event::Start, 0);
        assert_eq!(escalated(&run.flow.state).0, [EscalationReason::HighRisk]);
        // No group configured, or nobody in it who may approve.
        let mut run = mfa_run("mara");
        run.policy.mfa.approver_group = None;
        run.on(Event::Start, 0);
        assert_eq!(
            escalated(&run.flow.state).0,
            [EscalationReason::NoApprovers]
        );
        let mut run = mfa_run("helpdesk");
        run.on(Event::Start, 0)
            .on(
                Event::CardAnswered {
                    approve: true,
                    approver: manager("203.0.113.7"),
                },
                1,
            )
            .on(found(&["helpdesk", "mara", "alice"]), 2);
        assert_eq!(
            escalated(&run.flow.state).0,
            [EscalationReason::NoApprovers]
        );
    }

    #[test]
    fn mfa_a_membership_the_user_had_is_neither_added_nor_removed() {
        let mut run = mfa_run("mara");
        run.on(Event::Start, 0)
            .on(found(&["ivan"]), 0)
            .on(
                Event::LinkUsed {
                    approve: true,
                    approver: member("ivan"),
                },
                1,
            )
            .on(
                Event::MethodsRemoved {
                    removed: 0,
                    kept: Vec::new(),
                },
                2,
            )
            .on(Event::TapIssued { delivered: 2 }, 3)
            .on(
                Event::GroupChecked {
                    member_before: true,
                },
                4,
            )
            .on(timer(Timer::AccessGroup), 4 + 8 * 3600);
        assert!(matches!(run.flow.state, State::Completed { .. }));
        let sent = mfa_sent(&run);
        assert!(!sent.contains(&"add".to_string()) && !sent.contains(&"leave".to_string()));
        // A failed step goes to an engineer.
        let mut run = mfa_run("mara");
        run.on(Event::Start, 0)
            .on(found(&["ivan"]), 0)
            .on(
                Event::LinkUsed {
                    approve: true,
                    approver: member("ivan"),
                },
                1,
            )
            .on(
                Event::ResetFailed {
                    detail: "403".into(),
                },
                2,
            );
        assert_eq!(
            escalated(&run.flow.state).0,
            [EscalationReason::ResetFailed]
        );
        // Out-of-order steps are errors.
        let mut run = mfa_run("mara");
        run.on(Event::Start, 0).on(found(&["ivan"]), 0);
        assert!(matches!(
            run.fails(Event::TapIssued { delivered: 1 }, 1),
            StepError::Illegal { .. }
        ));
    }

    #[test]
    fn a_row_without_an_outcome_is_a_password_reset() {
        let mut json = serde_json::to_value(Flow::new("r", context())).unwrap();
        json["context"].as_object_mut().unwrap().remove("outcome");
        let flow: Flow = serde_json::from_value(json).unwrap();
        assert_eq!(flow.context.outcome, Outcome::PasswordReset);
    }

    #[test]
    fn a_stored_request_resumes_where_it_was() {
        let mut run = Run::new(context());
        run.on(Event::Start, 0).on(timer(Timer::Push), 120);
        let stored = serde_json::to_string(&run.flow).unwrap();
        let flow: Flow = serde_json::from_str(&stored).unwrap();
        assert_eq!(flow, run.flow);
        let event: Event =
            serde_json::from_str(r#"{"event":"timer_fired","timer":"card"}"#).unwrap();
        let (flow, actions) = step(&flow, &event, t(420), &Policy::default()).unwrap();
        assert!(matches!(flow.state, State::ManagerSmsSent { .. }));
        let json = serde_json::to_value(&actions).unwrap();
        assert_eq!(json[0]["action"], "send_manager_sms");
        assert_eq!(json[1]["action"], "arm_timer");
        assert_eq!(json[2]["action"], "audit");
        // Debug masks the manager's number.
        let shown = format!("{actions:?} {flow:?}");
        assert!(!shown.contains("+14255550123"), "{shown}");
    }
}
