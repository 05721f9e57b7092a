//! Execution: each planned user's steps, in order, concurrently across users, under the
//! Graph client's throttle.
//!
//! For every (user, step) the journal records the intent before the call and the outcome
//! after (invariant 5). When the journal already holds the step — a resumed run — the
//! outcome is reused; when it holds only the intent, the call's fate is unknown, and the
//! tenant is read back: a password changed, or sessions revoked, after the intent proves the
//! write landed. Only a read-back that proves it did *not* land lets the step run (that is
//! its first application, not a repeat); what cannot be read back goes to manual check.
//!
//! A rolling error rate above the playbook's `stop_when_error_rate_above` trips the circuit
//! breaker (invariant 6): no new user starts, users in flight finish their current pipeline.
//! The breaker counts only steps decided in this attempt: outcomes a resumed run reads back
//! from the journal are history, and counting them would trip a resumed run again before it
//! started anyone.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use secrecy::SecretString;
use serde::Serialize;
use tokio::sync::watch;

use super::EngineError;
use super::confirm::Confirmer;
use super::notify::{Delivery, Notice, Notifier, UserSecret, secret_created_by};
use super::password;
use super::plan::{Plan, PlannedUser};
use crate::audit::{self, AuditHandle, Details, Event};
use crate::directory::{
    AuthMethodKind, Directory, PasswordChange, RiskLevel as GraphRisk, TapRequest,
};
use crate::graph::{GraphError, GraphErrorKind};
use crate::playbook::{MethodType, PasswordMode, Playbook, Step};
use crate::store::{IntentRecorded, JournalEntry, Outcome, RunId, RunStore};

/// Outcomes the circuit breaker looks back over.
const BREAKER_WINDOW: usize = 100;
/// Outcomes needed before the breaker may trip (a single early failure is not a rate).
const BREAKER_MIN_SAMPLES: usize = 20;
/// Clock difference tolerated between this host and Graph when reading a write back.
const READ_BACK_SKEW: Duration = Duration::from_secs(5);

/// Everything one execution needs, passed in (no globals).
pub struct Execution<S> {
    /// The tenant, through the `Directory` trait only.
    pub directory: Arc<dyn Directory>,
    /// The run store holding the journal.
    pub store: Arc<S>,
    /// The audit trail.
    pub audit: AuditHandle,
    /// The validated playbook the plan was made from.
    pub playbook: Arc<Playbook>,
    /// The plan being carried out.
    pub plan: Arc<Plan>,
    /// The run's id.
    pub run: RunId,
    /// Who is running it (recorded as the audit actor).
    pub actor: String,
    /// Users whose pipelines run at once.
    pub concurrency: usize,
    /// Set to true to stop starting new users (first Ctrl-C); in-flight users finish.
    pub stop: watch::Receiver<bool>,
    /// Live counters for a progress display.
    pub progress: Arc<Progress>,
    /// Delivers the notify steps' notices, and the secrets earlier steps created.
    pub notifier: Arc<dyn Notifier>,
}

/// Counters a progress display reads while the run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    /// Users whose pipeline finished.
    pub users_done: AtomicU64,
    /// Users to do.
    pub users_total: AtomicU64,
    /// Steps that ended succeeded.
    pub succeeded: AtomicU64,
    /// Steps that ended failed or in manual check.
    pub failed: AtomicU64,
}

/// One (user, step) result, for `results.csv` and the summary.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// User object id.
    pub user_id: String,
    /// User principal name.
    pub upn: String,
    /// Journal key of the step.
    pub step: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Secret-free detail (Graph error code, read-back evidence).
    pub detail: Option<String>,
    /// When the outcome was recorded.
    pub at: Timestamp,
}

/// How an execution ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Every step result, user by user.
    pub results: Vec<StepResult>,
    /// Users whose pipelines ran to the end.
    pub users_done: usize,
    /// Users not started (stop or breaker).
    pub users_not_started: usize,
    /// The circuit breaker stopped the run (tripped with users left to start).
    pub tripped: bool,
    /// An operator stopped the run.
    pub stopped: bool,
    /// Responses Graph answered 429 while this execution ran (the client waited and
    /// re-sent them), from the directory's [`Directory::stats`].
    pub throttled: u64,
}

impl Summary {
    /// Steps with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == outcome).count()
    }

    /// True when every planned step of every user has a final, good outcome.
    pub fn complete_success(&self) -> bool {
        self.users_not_started == 0
            && self
                .results
                .iter()
                .all(|r| matches!(r.outcome, Outcome::Succeeded | Outcome::Skipped))
    }
}

/// An execution with the helpers it spawns for itself.
struct Runner<S> {
    ex: Execution<S>,
    /// Batches `confirm_compromised` across users (Identity Protection: 1 request/s).
    confirmer: Confirmer,
}

impl<S> std::ops::Deref for Runner<S> {
    type Target = Execution<S>;
    fn deref(&self) -> &Execution<S> {
        &self.ex
    }
}

/// Rolling failure rate over the last outcomes.
struct Breaker {
    threshold: f64,
    window: Mutex<VecDeque<bool>>,
    tripped: AtomicBool,
}

impl Breaker {
    fn record(&self, failed: bool) {
        let Ok(mut window) = self.window.lock() else {
            return;
        };
        window.push_back(failed);
        if window.len() > BREAKER_WINDOW {
            window.pop_front();
        }
        let failures = window.iter().filter(|&&f| f).count();
        let over = window.len() >= BREAKER_MIN_SAMPLES
            && failures as f64 / window.len() as f64 > self.threshold;
        if over && !self.tripped.swap(true, Ordering::SeqCst) {
            tracing::error!(
                message = "Circuit breaker tripped: error rate above the playbook's threshold.",
                failures,
                window = window.len(),
                threshold = self.threshold
            );
        }
    }

    fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }
}

/// Carry out (or continue) the plan.
pub async fn execute<S: RunStore + 'static>(
    execution: Execution<S>,
) -> Result<Summary, EngineError> {
    let execution = Arc::new(Runner {
        confirmer: Confirmer::spawn(Arc::clone(&execution.directory)),
        ex: execution,
    });
    let breaker = Arc::new(Breaker {
        threshold: execution.playbook.guards.stop_when_error_rate_above,
        window: Mutex::new(VecDeque::new()),
        tripped: AtomicBool::new(false),
    });
    let users: Vec<PlannedUser> = execution
        .plan
        .users
        .iter()
        .filter(|u| !u.steps.is_empty())
        .cloned()
        .collect();
    execution
        .progress
        .users_total
        .store(users.len() as u64, Ordering::Relaxed);
    let total = users.len();
    let throttled_before = execution.directory.stats().throttled;

    let per_user = futures::stream::iter(users)
        .take_while(|_| {
            let go = !*execution.stop.borrow() && !breaker.tripped();
            async move { go }
        })
        .map(|user| {
            let execution = Arc::clone(&execution);
            let breaker = Arc::clone(&breaker);
            async move { pipeline(&execution, &breaker, &user).await }
        })
        .buffer_unordered(execution.concurrency.max(1));
    let mut per_user = std::pin::pin!(per_user);

    let mut summary = Summary::default();
    while let Some(results) = per_user.next().await {
        summary.results.extend(results?);
        summary.users_done += 1;
        execution
            .progress
            .users_done
            .fetch_add(1, Ordering::Relaxed);
    }
    summary.users_not_started = total - summary.users_done;
    // The breaker "stopped" the run only if it left users unstarted.
    summary.tripped = breaker.tripped() && summary.users_not_started > 0;
    summary.stopped = *execution.stop.borrow() && !summary.tripped;
    summary.throttled = execution
        .directory
        .stats()
        .throttled
        .saturating_sub(throttled_before);
    Ok(summary)
}

/// One user's steps, in the plan's order.
async fn pipeline<S: RunStore>(
    execution: &Runner<S>,
    breaker: &Breaker,
    user: &PlannedUser,
) -> Result<Vec<StepResult>, EngineError> {
    let mut results = Vec::with_capacity(user.steps.len());
    let mut earlier_failed = false;
    // Secrets created for this user in this attempt, for its notify steps only.
    let mut secrets: Vec<UserSecret> = Vec::new();
    // A secret created without its value reaching this attempt (before a resume, or seen
    // only by read-back): never stored, so it cannot be delivered now.
    let mut lost_secret: Option<&'static str> = None;
    for key in user.steps.iter() {
        let Some(step) = step_of(&execution.playbook, key) else {
            return Err(EngineError::CorruptPlan {
                run: execution.run.0.clone(),
                message: format!("step {key} is not in the playbook"),
            });
        };
        let created = secrets.len();
        let context = StepContext {
            earlier_failed,
            lost_secret,
            secrets: &mut secrets,
        };
        let (outcome, detail, replayed) = run_step(execution, user, key, step, context).await?;
        if outcome == Outcome::Succeeded && secrets.len() == created {
            lost_secret = secret_created_by(step).or(lost_secret);
        }
        if !replayed
            && matches!(
                outcome,
                Outcome::Succeeded | Outcome::Failed | Outcome::ManualCheck
            )
            && !matches!(step, Step::Notify { .. })
        {
            breaker.record(outcome != Outcome::Succeeded);
        }
        match outcome {
            Outcome::Succeeded => execution.progress.succeeded.fetch_add(1, Ordering::Relaxed),
            Outcome::Failed | Outcome::ManualCheck => {
                execution.progress.failed.fetch_add(1, Ordering::Relaxed)
            }
            Outcome::Skipped => 0,
        };
        earlier_failed |= matches!(outcome, Outcome::Failed | Outcome::ManualCheck);
        results.push(StepResult {
            user_id: user.id.clone(),
            upn: user.upn.clone(),
            step: key.clone(),
            outcome,
            detail,
            at: Timestamp::now(),
        });
    }
    Ok(results)
}

/// The playbook step a journal key names (`index:name`).
fn step_of<'a>(playbook: &'a Playbook, key: &str) -> Option<&'a Step> {
    let (index, name) = key.split_once(':')?;
    let spec = playbook.steps.get(index.parse::<usize>().ok()?)?;
    (spec.step.key() == name).then_some(&spec.step)
}

/// What a step of a pipeline knows of the steps before it.
struct StepContext<'a> {
    /// An earlier step failed (a notice would announce something that did not happen).
    earlier_failed: bool,
    /// The kind of a secret an earlier step created whose value this attempt does not have
    /// (created before a resume, or confirmed only by read-back): never stored, so a notice
    /// that would carry it cannot be sent.
    lost_secret: Option<&'static str>,
    /// Secrets created so far; a step that creates one adds it.
    secrets: &'a mut Vec<UserSecret>,
}

/// Journal, perform (or resolve) and record one step. The flag is true when the outcome
/// was only read from the journal (decided in an earlier attempt of this run).
async fn run_step<S: RunStore>(
    execution: &Runner<S>,
    user: &PlannedUser,
    key: &str,
    step: &Step,
    context: StepContext<'_>,
) -> Result<(Outcome, Option<String>, bool), EngineError> {
    let StepContext {
        earlier_failed,
        lost_secret,
        secrets,
    } = context;
    let store = &execution.store;
    let intent_at = Timestamp::now();
    let (outcome, detail, resumed) = match store
        .record_intent(&execution.run, &user.id, key, intent_at)
        .await?
    {
        IntentRecorded::Existing(JournalEntry {
            outcome: Some(outcome),
            detail,
            ..
        }) => return Ok((outcome, detail, true)), // done in an earlier attempt of this run
        IntentRecorded::Existing(entry) => {
            let (outcome, detail) =
                resolve_unknown(execution, user, step, entry.intent_at, true, secrets).await;
            (outcome, detail, true)
        }
        IntentRecorded::New => {
            let (outcome, detail) = match (step, lost_secret) {
                (Step::Notify { .. }, _) if earlier_failed => (
                    Outcome::Skipped,
                    Some("an earlier step failed; nothing to announce".into()),
                ),
                (Step::Notify { .. }, Some(kind)) => (
                    Outcome::ManualCheck,
                    Some(format!(
                        "the {kind} was created, but its value never reached this attempt \
                             of the run (made before a resume, or its response was lost) and \
                             it is never stored, so it cannot be delivered; issue a new one by \
                             hand"
                    )),
                ),
                _ => perform(execution, user, step, intent_at, secrets).await,
            };
            (outcome, detail, false)
        }
    };
    store
        .record_outcome(
            &execution.run,
            &user.id,
            key,
            outcome,
            detail.clone(),
            Timestamp::now(),
        )
        .await?;
    audit_step(execution, user, key, outcome, detail.as_deref(), resumed).await?;
    Ok((outcome, detail, false))
}

async fn audit_step<S>(
    execution: &Runner<S>,
    user: &PlannedUser,
    key: &str,
    outcome: Outcome,
    detail: Option<&str>,
    resumed: bool,
) -> Result<(), EngineError> {
    let audit_outcome = match outcome {
        Outcome::Succeeded => audit::Outcome::Success,
        Outcome::Failed | Outcome::ManualCheck => audit::Outcome::Failure,
        Outcome::Skipped => audit::Outcome::Skipped,
    };
    let action = format!("user.{}", key.split_once(':').map_or(key, |(_, name)| name));
    let mut details = Details::new()
        .with("run", execution.run.0.as_str())?
        .with("step", key)?
        .with("user_id", user.id.as_str())?
        .with("result", outcome.as_str())?;
    if let Some(detail) = detail {
        details = details.with("detail", detail)?;
    }
    if resumed {
        details = details.with("resolved_on_resume", true)?;
    }
    let event = Event::new(
        execution.actor.as_str(),
        action,
        user.upn.as_str(),
        audit_outcome,
    )?
    .with_details(details);
    execution.audit.record(event).await?;
    Ok(())
}

/// Make the call a step stands for. A secret it creates goes to `secrets`, for the user's
/// notify steps; a notify step hands them to the notifier.
async fn perform<S>(
    execution: &Runner<S>,
    user: &PlannedUser,
    step: &Step,
    intent_at: Timestamp,
    secrets: &mut Vec<UserSecret>,
) -> (Outcome, Option<String>) {
    let directory = execution.directory.as_ref();
    let result: Result<Option<String>, GraphError> = match step {
        Step::RevokeSessions => directory.revoke_sessions(&user.id).await.map(|()| None),
        Step::ResetPassword {
            mode,
            force_change,
            require_mfa,
        } => {
            let password: Option<SecretString> = match mode {
                PasswordMode::Scramble => Some(password::scramble()),
                // The gate lets this through only when a notify step can deliver it.
                PasswordMode::Temporary => Some(password::temporary()),
                PasswordMode::Keep => None,
            };
            let temporary = (*mode == PasswordMode::Temporary)
                .then(|| password.clone())
                .flatten();
            let change = PasswordChange {
                force_change_next_sign_in: *force_change,
                force_change_with_mfa: *require_mfa,
                password,
            };
            directory
                .force_password_change(&user.id, &change)
                .await
                .map(|()| {
                    temporary.map(|pw| {
                        secrets.push(UserSecret::TemporaryPassword(pw));
                        "temporary password set, held for the notify step".to_owned()
                    })
                })
        }
        Step::RequireMfaReregistration { remove } => {
            remove_methods(directory, &user.id, remove).await
        }
        Step::TemporaryAccessPass {
            lifetime_minutes,
            usable_once,
        } => {
            let request = TapRequest {
                start: None,
                lifetime_minutes: Some(*lifetime_minutes),
                usable_once: *usable_once,
            };
            directory.create_tap(&user.id, &request).await.map(|tap| {
                let lifetime_minutes = tap.lifetime_minutes.unwrap_or(*lifetime_minutes);
                let usable_once = tap.usable_once.unwrap_or(*usable_once);
                secrets.push(UserSecret::AccessPass {
                    pass: tap.pass,
                    lifetime_minutes,
                    usable_once,
                });
                Some(format!(
                    "temporary access pass {} created ({lifetime_minutes} min, usable once: \
                     {usable_once}), held for the notify step",
                    tap.id
                ))
            })
        }
        Step::AddToGroup { group_id, expiry } => {
            let expires = intent_at
                .checked_add(jiff::SignedDuration::try_from(*expiry).unwrap_or_default())
                .unwrap_or(intent_at);
            directory
                .add_group_member(&group_id.to_string(), &user.id)
                .await
                .map(|()| {
                    Some(super::expire::membership_detail(
                        &group_id.to_string(),
                        expires,
                    ))
                })
        }
        Step::ConfirmCompromised => execution.confirmer.confirm(&user.id).await.map(|()| None),
        Step::Notify {
            template,
            channels,
            to,
        } => {
            let notice = Notice {
                user,
                template,
                channels,
                to: *to,
                secrets: secrets.as_slice(),
            };
            return match execution.notifier.notify(notice).await {
                Delivery::Delivered(detail) => (Outcome::Succeeded, Some(detail)),
                Delivery::Recorded(detail) => (Outcome::Skipped, Some(detail)),
                Delivery::Failed(detail) => (Outcome::Failed, Some(detail)),
            };
        }
    };
    match result {
        Ok(detail) => (Outcome::Succeeded, detail),
        Err(err) if err.kind == GraphErrorKind::OutcomeUnknown => {
            // The request left; whether Graph applied it is unknown. Read it back now;
            // if the read-back cannot prove it landed, an operator must look.
            tracing::warn!(message = "Write outcome unknown; reading back.", user = %user.upn, %err);
            resolve_unknown(execution, user, step, intent_at, false, secrets).await
        }
        Err(err) => (Outcome::Failed, Some(error_detail(&err))),
    }
}

/// Delete the user's methods of the listed types (never the password). Converges: a method
/// already gone is not listed, so nothing is deleted twice.
async fn remove_methods(
    directory: &dyn Directory,
    user_id: &str,
    remove: &[MethodType],
) -> Result<Option<String>, GraphError> {
    let methods = directory.list_auth_methods(user_id).await?;
    let mut removed = 0;
    for method in methods
        .iter()
        .filter(|m| remove.iter().any(|t| matches_type(*t, &m.kind)))
    {
        directory.delete_auth_method(user_id, method).await?;
        removed += 1;
    }
    Ok(Some(format!("{removed} method(s) removed")))
}

fn matches_type(wanted: MethodType, kind: &AuthMethodKind) -> bool {
    matches!(
        (wanted, kind),
        (MethodType::Phone, AuthMethodKind::Phone)
            | (MethodType::Email, AuthMethodKind::Email)
            | (MethodType::Fido2, AuthMethodKind::Fido2)
            | (
                MethodType::MicrosoftAuthenticator,
                AuthMethodKind::MicrosoftAuthenticator
            )
            | (MethodType::SoftwareOath, AuthMethodKind::SoftwareOath)
            | (
                MethodType::WindowsHelloForBusiness,
                AuthMethodKind::WindowsHelloForBusiness
            )
            | (
                MethodType::TemporaryAccessPass,
                AuthMethodKind::TemporaryAccessPass
            )
    )
}

/// A secret-free description of a Graph failure for the journal and reports.
fn error_detail(err: &GraphError) -> String {
    let mut text = format!("{:?}", err.kind);
    if let Some(status) = err.status {
        text.push_str(&format!(" HTTP {status}"));
    }
    if let Some(code) = &err.code {
        text.push_str(&format!(" {code}"));
    }
    if let Some(id) = &err.request_id {
        text.push_str(&format!(" request-id {id}"));
    }
    text
}

/// What reading the tenant back says about a write made at `intent_at`.
enum ReadBack {
    /// The write landed.
    Applied(String),
    /// The write did not land.
    NotApplied,
    /// The tenant cannot tell.
    Unknowable(String),
}

/// Resolve a step whose outcome is unknown. On resume (`may_perform`), a read-back proving
/// the write did not land lets the step run now — its first application. During the run, it
/// goes to manual check instead, since the original request may still be in flight.
async fn resolve_unknown<S>(
    execution: &Runner<S>,
    user: &PlannedUser,
    step: &Step,
    intent_at: Timestamp,
    may_perform: bool,
    secrets: &mut Vec<UserSecret>,
) -> (Outcome, Option<String>) {
    match read_back(execution.directory.as_ref(), &user.id, step, intent_at).await {
        Ok(ReadBack::Applied(evidence)) => {
            (Outcome::Succeeded, Some(format!("read back: {evidence}")))
        }
        Ok(ReadBack::NotApplied) if may_perform => {
            tracing::info!(message = "Read-back shows the write did not land; performing it.", user = %user.upn);
            // Boxed: perform may come back here on an unknown outcome (with may_perform off).
            Box::pin(perform(execution, user, step, intent_at, secrets)).await
        }
        Ok(ReadBack::NotApplied) => (
            Outcome::ManualCheck,
            Some("outcome unknown and not visible yet; check this user".into()),
        ),
        Ok(ReadBack::Unknowable(why)) => (Outcome::ManualCheck, Some(why)),
        Err(err) => (
            Outcome::ManualCheck,
            Some(format!(
                "outcome unknown; read-back failed: {}",
                error_detail(&err)
            )),
        ),
    }
}

async fn read_back(
    directory: &dyn Directory,
    user_id: &str,
    step: &Step,
    intent_at: Timestamp,
) -> Result<ReadBack, GraphError> {
    let since = intent_at
        .checked_sub(jiff::SignedDuration::try_from(READ_BACK_SKEW).unwrap_or_default())
        .unwrap_or(intent_at);
    let after = |t: Option<Timestamp>| t.filter(|t| *t >= since);
    Ok(match step {
        Step::ResetPassword { mode: PasswordMode::Keep, .. } => ReadBack::Unknowable(
            "outcome unknown: a force-change without a new password leaves no trace to read back".into(),
        ),
        Step::ResetPassword { .. } => {
            let user = directory.get_user(user_id).await?;
            match after(user.and_then(|u| u.last_password_change)) {
                Some(t) => ReadBack::Applied(format!("password changed at {t}")),
                None => ReadBack::NotApplied,
            }
        }
        Step::RevokeSessions => {
            let user = directory.get_user(user_id).await?;
            match after(user.and_then(|u| u.sign_in_sessions_valid_from)) {
                Some(t) => ReadBack::Applied(format!("sessions valid from {t}")),
                None => ReadBack::NotApplied,
            }
        }
        Step::RequireMfaReregistration { remove } => {
            let methods = directory.list_auth_methods(user_id).await?;
            if methods.iter().any(|m| remove.iter().any(|t| matches_type(*t, &m.kind))) {
                ReadBack::NotApplied
            } else {
                ReadBack::Applied("no listed method remains".into())
            }
        }
        Step::AddToGroup { group_id, expiry } => {
            use futures::TryStreamExt;
            let members: Vec<String> = directory
                .list_group_members(&group_id.to_string(), false)
                .map_ok(|u| u.id.to_ascii_lowercase())
                .try_collect()
                .await?;
            if members.contains(&user_id.to_ascii_lowercase()) {
                // The membership ends `expiry` after the intent, as if the call had answered.
                let until = intent_at
                    .checked_add(jiff::SignedDuration::try_from(*expiry).unwrap_or_default())
                    .unwrap_or(intent_at);
                ReadBack::Applied(super::expire::membership_detail(&group_id.to_string(), until))
            } else {
                ReadBack::NotApplied
            }
        }
        Step::ConfirmCompromised => {
            use futures::TryStreamExt;
            let risky: Vec<_> = directory.list_risky_users(vec![GraphRisk::High]).try_collect().await?;
            let confirmed = risky.iter().any(|r| {
                r.id.eq_ignore_ascii_case(user_id) && r.risk_state.as_deref() == Some("confirmedCompromised")
            });
            if confirmed { ReadBack::Applied("risk state confirmedCompromised".into()) } else { ReadBack::NotApplied }
        }
        Step::TemporaryAccessPass { .. } => ReadBack::Unknowable(
            "outcome unknown: a pass may exist that was never delivered; delete it or issue one by hand".into(),
        ),
        Step::Notify { .. } => ReadBack::Unknowable("outcome unknown: a message may or may not have been sent".into()),
    })
}
