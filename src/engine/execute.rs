//! Execution: each planned user's steps, in order, concurrently across users, under the
//! Graph client's throttle.
//!
//! For every (user, step) the journal records the intent before the call and the outcome
//! after. When the journal already holds the step — a resumed run — the
//! outcome is reused; when it holds only the intent, the call's fate is unknown, and the
//! tenant is read back: a password changed, or sessions revoked, after the intent proves the
//! write landed. Only a read-back that proves it did *not* land lets the step run (that is
//! its first application, not a repeat); what cannot be read back goes to manual check.
//!
//! A rolling error rate above the playbook's `stop_when_error_rate_above` trips the circuit
//! breaker: no new user starts, users in flight finish their current pipeline.
//! The breaker counts only steps decided in this attempt: outcomes a resumed run reads back
//! from the journal are history, and counting them would trip a resumed run again before it
//! started anyone.
//!
//! Writes refused wholesale (the first writes of a step all answer 403 alike: a missing
//! permission or role) stop the run sooner than the breaker could ([`refusal`]): their rows
//! stay open, typed as refused, and a resume makes them once the operator fixed the cause.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use jiff::Timestamp;
use secrecy::SecretString;
use serde::Serialize;
use tokio::sync::watch;

use super::EngineError;
use super::admit::{self, WritePace};
use super::breaker::Breaker;
use super::confirm::Confirmer;
use super::journal_key::StepKey;
use super::notify::{Delivery, Notice, Notifier, UserSecret, secret_created_by};
use super::password;
use super::plan::{Plan, PlannedUser};
use super::read_back::{ReadBack, matches_type, read_back};
use super::refusal::{self, Decision, Refusals, Wholesale, Withheld};
use super::trail;
use crate::audit::{self, AuditHandle, Details, Event};
use crate::directory::{Directory, DirectoryError, DirectoryErrorKind, PasswordChange, TapRequest};
use crate::playbook::{MethodType, PasswordMode, Playbook, Step};
use crate::store::{Facts, IntentRecorded, JournalEntry, Membership, Outcome, RunId, RunStore};

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
    /// The most users' pipelines that run at once (fewer when the tenant's write budget
    /// and Graph's latency need fewer: `admit.rs`).
    pub concurrency: usize,
    /// Set to true to stop starting new users (first Ctrl-C); in-flight users finish.
    pub stop: watch::Receiver<bool>,
    /// Live counters for a progress display.
    pub progress: Arc<Progress>,
    /// Delivers the notify steps' notices, and the secrets earlier steps created.
    pub notifier: Arc<dyn Notifier>,
    /// The incident ticket the run is carried out under (a checked
    /// [`Ticket`](super::ticket::Ticket) id): written into every step's record.
    pub ticket: Option<String>,
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
    /// Writes whose unknown outcome was looked up by reading the tenant back.
    pub read_backs: AtomicU64,
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
    /// Users not started or not finished (stop, breaker, or a step refused wholesale).
    pub users_not_started: usize,
    /// The circuit breaker stopped the run (tripped with users left to start).
    pub tripped: bool,
    /// An operator stopped the run.
    pub stopped: bool,
    /// Responses Graph answered 429 while this execution ran (the client waited and
    /// re-sent them), from the directory's [`Directory::stats`].
    pub throttled: u64,
    /// Steps whose writes were refused wholesale: the run stopped for them, and their
    /// users are counted as not started (a resume makes the refused writes).
    pub refused: Vec<Wholesale>,
}

impl Summary {
    /// A user whose pipeline ran to the end.
    fn done(&mut self, progress: &Progress, results: Vec<StepResult>) {
        self.results.extend(results);
        self.users_done += 1;
        progress.users_done.fetch_add(1, Ordering::Relaxed);
    }

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

/// Users whose notices are being sent at once, apart from the writes (each waits for its
/// channel's pace; the bound keeps directory lookups and memory in proportion).
const NOTICES_IN_FLIGHT: usize = 256;

/// An execution with the helpers it spawns for itself.
struct Runner<S> {
    ex: Execution<S>,
    /// The playbook's `rate_limit.max_writes_per_second`, if it sets one.
    pace: Option<WritePace>,
    /// Batches `confirm_compromised` across users (Identity Protection: 1 request/s).
    confirmer: Confirmer,
    /// The rolling failure rate of this attempt.
    breaker: Breaker,
    /// The verdicts on refused writes of this attempt.
    refusals: Refusals,
}

impl<S> Runner<S> {
    /// Waits for the playbook's pace (`rate_limit.max_writes_per_second`) before a directory
    /// write. `confirm_compromised` is not one: it is Identity Protection's, batched and
    /// paced at its own one request a second.
    async fn before_write(&self) {
        if let Some(pace) = &self.pace {
            pace.write().await;
        }
    }
}

/// One user's pipeline as far as it went.
struct UserRun {
    /// The results of the steps that ended.
    results: Vec<StepResult>,
    /// A step's write was refused and withheld: the pipeline paused there.
    withheld: bool,
}

/// How a step of a pipeline ended.
enum StepEnd {
    /// With an outcome; `replayed` when it was only read from the journal.
    Decided {
        outcome: Outcome,
        detail: Option<String>,
        replayed: bool,
    },
    /// Refused and withheld: no outcome yet, the user's pipeline pauses.
    Withheld,
}

/// What making a step's call came to.
enum Attempt {
    /// It ended (succeeded, failed, or went to manual check).
    Ended(Ended),
    /// The directory refused it (HTTP 403): nothing was applied.
    Refused(DirectoryError),
}

impl<S> std::ops::Deref for Runner<S> {
    type Target = Execution<S>;
    fn deref(&self) -> &Execution<S> {
        &self.ex
    }
}

/// The default ceiling of users' pipelines at once: above what a pool at Graph's slowest
/// latencies needs, so the throttle's in-flight limit, not this, sets the concurrency.
pub const MAX_PIPELINES: usize = 256;

/// Carry out (or continue) the plan.
pub async fn execute<S: RunStore + 'static>(
    execution: Execution<S>,
) -> Result<Summary, EngineError> {
    let execution = Arc::new(Runner {
        confirmer: Confirmer::spawn(Arc::clone(&execution.directory)),
        breaker: Breaker::new(execution.playbook.guards.stop_when_error_rate_above),
        refusals: Refusals::new(refusal::WHOLESALE),
        pace: WritePace::of(
            &execution.playbook.rate_limit,
            execution.directory.time_scale(),
        ),
        ex: execution,
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

    let ceiling = admit::ceiling(execution.concurrency, &execution.playbook.rate_limit);
    let directory = Arc::clone(&execution.directory);
    let per_user = futures::stream::iter(users)
        .take_while(|_| {
            let go = !*execution.stop.borrow()
                && !execution.breaker.tripped()
                && !execution.refusals.tripped();
            async move { go }
        })
        .map(|user| {
            let execution = Arc::clone(&execution);
            async move {
                let run = pipeline(&execution, &user, true).await;
                (user, run)
            }
        });
    let per_user = admit::buffer_adaptive(per_user, move || {
        admit::pipelines(ceiling, directory.write_concurrency())
    });
    let mut per_user = std::pin::pin!(per_user);

    let mut summary = Summary::default();
    let mut paused = Vec::new();
    // Users whose writes are done and whose notices wait for their channels: sent alongside
    // the next users' writes, a bounded number at a time (a stop lets them finish: their
    // users were reset and must be told).
    let mut waiting: VecDeque<NoticeTail> = VecDeque::new();
    let mut sending = FuturesUnordered::new();
    let mut writes_done = false;
    loop {
        while sending.len() < NOTICES_IN_FLIGHT {
            let Some(tail) = waiting.pop_front() else {
                break;
            };
            let execution = Arc::clone(&execution);
            sending.push(async move { notice_tail(&execution, tail).await });
        }
        tokio::select! {
            next = per_user.next(), if !writes_done => match next {
                None => writes_done = true,
                Some((user, run)) => match run? {
                    (run, _) if run.withheld => paused.push((user, run.results)),
                    (_, Some((from, state))) => waiting.push_back(NoticeTail { user, from, state }),
                    (run, None) => summary.done(&execution.progress, run.results),
                },
            },
            Some(sent) = sending.next(), if !sending.is_empty() => {
                let (user, run) = sent?;
                if run.withheld {
                    paused.push((user, run.results));
                } else {
                    summary.done(&execution.progress, run.results);
                }
            }
            else => break,
        }
    }
    // Users paused on a refused write: where the step's refusals turned out ordinary, their
    // rows are recorded as failed and their pipelines go on (earlier steps replay from the
    // journal); where they were wholesale, the users stay for the resume.
    while !paused.is_empty() {
        execution.refusals.finish();
        let withheld = execution.refusals.withheld_users();
        let mut still = Vec::new();
        for (user, partial) in paused {
            if withheld.contains(&user.id) {
                summary.results.extend(partial);
                continue;
            }
            let (run, _) = pipeline(&execution, &user, false).await?;
            if run.withheld {
                still.push((user, run.results));
            } else {
                summary.done(&execution.progress, run.results);
            }
        }
        paused = still;
    }
    summary.refused = execution.refusals.finish();
    summary.users_not_started = total - summary.users_done;
    // The breaker "stopped" the run only if it left users unstarted.
    summary.tripped = execution.breaker.tripped() && summary.users_not_started > 0;
    summary.stopped = *execution.stop.borrow() && !summary.tripped;
    summary.throttled = execution
        .directory
        .stats()
        .throttled
        .saturating_sub(throttled_before);
    Ok(summary)
}

/// Where a user's pipeline stands between its steps: what the steps so far leave for the
/// ones after.
#[derive(Default)]
struct PipelineState {
    /// Results of the steps that ended.
    results: Vec<StepResult>,
    /// A step failed (a later notice would announce what did not happen).
    earlier_failed: bool,
    /// Secrets created for this user in this attempt, for its notify steps only.
    secrets: Vec<UserSecret>,
    /// A secret created without its value reaching this attempt (before a resume, or seen
    /// only by read-back): never stored, so it cannot be delivered now.
    lost_secret: Option<&'static str>,
    /// Journal keys of the steps that succeeded, for the notices that say what was done.
    done: Vec<String>,
}

/// A user's trailing notify steps, left to run apart from the writes: the next user's resets
/// do not wait for a mail channel's pace.
struct NoticeTail {
    user: PlannedUser,
    /// Index in `user.steps` of the first notify step of the tail.
    from: usize,
    state: PipelineState,
}

/// One user's steps, in the plan's order, until one is withheld. With `detach_notices`, the
/// trailing run of notify steps (when every step after the writes is a notice) is returned
/// instead of run, for the caller to send alongside the next users' writes.
async fn pipeline<S: RunStore>(
    execution: &Runner<S>,
    user: &PlannedUser,
    detach_notices: bool,
) -> Result<(UserRun, Option<(usize, PipelineState)>), EngineError> {
    let tail_from = if detach_notices {
        trailing_notices(execution, user)
    } else {
        None
    };
    let end = tail_from.unwrap_or(user.steps.len());
    let (run, state) = steps(execution, user, 0, end, PipelineState::default()).await?;
    match (run, tail_from) {
        (Ok(()), Some(from)) => Ok((
            UserRun {
                results: Vec::new(),
                withheld: false,
            },
            Some((from, state)),
        )),
        (Ok(()), None) => Ok((
            UserRun {
                results: state.results,
                withheld: false,
            },
            None,
        )),
        (Err(Paused), _) => Ok((
            UserRun {
                results: state.results,
                withheld: true,
            },
            None,
        )),
    }
}

/// The index of the first of the user's trailing notify steps, if the user has any after a
/// write (a pipeline of notices only has nothing to overlap).
fn trailing_notices<S>(execution: &Runner<S>, user: &PlannedUser) -> Option<usize> {
    let mut from = user.steps.len();
    for (index, key) in user.steps.iter().enumerate().rev() {
        // A key not in the playbook stops the scan; running the steps reports it.
        if matches!(resolve_step(execution, key), Some(Step::Notify { .. })) {
            from = index;
        } else {
            break;
        }
    }
    (from > 0 && from < user.steps.len()).then_some(from)
}

/// Send a detached tail of notices; the user's whole results come back.
async fn notice_tail<S: RunStore>(
    execution: &Runner<S>,
    tail: NoticeTail,
) -> Result<(PlannedUser, UserRun), EngineError> {
    let NoticeTail { user, from, state } = tail;
    let (run, state) = steps(execution, &user, from, user.steps.len(), state).await?;
    let withheld = run.is_err();
    Ok((
        user,
        UserRun {
            results: state.results,
            withheld,
        },
    ))
}

/// The step a journal key stands for.
fn resolve_step<'p, S>(execution: &'p Runner<S>, key: &str) -> Option<&'p Step> {
    StepKey::parse(key).and_then(|k| k.step(&execution.playbook))
}

/// The error of a plan naming a step its playbook does not have.
fn unknown_step<S>(execution: &Runner<S>, key: &str) -> EngineError {
    EngineError::CorruptPlan {
        run: execution.run.0.clone(),
        message: format!("step {key} is not in the playbook"),
    }
}

/// A step's write was refused and withheld: the pipeline pauses.
struct Paused;

/// Run the user's steps `from..end` on from `state`.
async fn steps<S: RunStore>(
    execution: &Runner<S>,
    user: &PlannedUser,
    from: usize,
    end: usize,
    mut state: PipelineState,
) -> Result<(Result<(), Paused>, PipelineState), EngineError> {
    for key in user.steps[from..end].iter() {
        let step = resolve_step(execution, key).ok_or_else(|| unknown_step(execution, key))?;
        let created = state.secrets.len();
        // Keys of steps that ran, so they resolve.
        let done: Vec<&Step> = state
            .done
            .iter()
            .filter_map(|k| resolve_step(execution, k))
            .collect();
        let context = StepContext {
            earlier_failed: state.earlier_failed,
            lost_secret: state.lost_secret,
            secrets: &mut state.secrets,
            done: &done,
        };
        let (outcome, detail, replayed) =
            match run_step(execution, user, key, step, context).await? {
                StepEnd::Decided {
                    outcome,
                    detail,
                    replayed,
                } => (outcome, detail, replayed),
                StepEnd::Withheld => return Ok((Err(Paused), state)),
            };
        if outcome == Outcome::Succeeded && state.secrets.len() == created {
            state.lost_secret = secret_created_by(step).or(state.lost_secret);
        }
        if outcome == Outcome::Succeeded {
            state.done.push(key.clone());
        }
        if !replayed
            && matches!(
                outcome,
                Outcome::Succeeded | Outcome::Failed | Outcome::ManualCheck
            )
            && !matches!(step, Step::Notify { .. })
        {
            execution.breaker.record(outcome != Outcome::Succeeded);
        }
        match outcome {
            Outcome::Succeeded => execution.progress.succeeded.fetch_add(1, Ordering::Relaxed),
            Outcome::Failed | Outcome::ManualCheck => {
                execution.progress.failed.fetch_add(1, Ordering::Relaxed)
            }
            Outcome::Skipped => 0,
        };
        // A notice that failed does not stop the next one (over another channel): only a
        // write that failed leaves nothing to announce.
        state.earlier_failed |= matches!(outcome, Outcome::Failed | Outcome::ManualCheck)
            && !matches!(step, Step::Notify { .. });
        state.results.push(StepResult {
            user_id: user.id.clone(),
            upn: user.upn.clone(),
            step: key.clone(),
            outcome,
            detail,
            at: Timestamp::now(),
        });
    }
    Ok((Ok(()), state))
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
    /// The steps that succeeded before this one.
    done: &'a [&'a Step],
}

/// One (user, step) being carried out: who, which step, and its journal row's intent.
struct StepCall<'a> {
    user: &'a PlannedUser,
    key: &'a str,
    step: &'a Step,
    intent_at: Timestamp,
    /// The steps that succeeded before this one (what a notice announces).
    done: &'a [&'a Step],
    /// An earlier attempt journaled this step's intent.
    resumed: bool,
}

/// How a step ended: the outcome and its secret-free detail.
type Ended = (Outcome, Option<String>);

/// Journal, perform (or resolve) and record one step. A step decided in an earlier attempt
/// of this run is only read from the journal (`replayed`); a refused write may be withheld
/// ([`refusal`]).
async fn run_step<S: RunStore>(
    execution: &Runner<S>,
    user: &PlannedUser,
    key: &str,
    step: &Step,
    context: StepContext<'_>,
) -> Result<StepEnd, EngineError> {
    let StepContext {
        earlier_failed,
        lost_secret,
        secrets,
        done,
    } = context;
    let store = &execution.store;
    let intent_at = Timestamp::now();
    let facts = intent_facts(step, intent_at);
    let (attempt, resumed) = match store
        .record_intent(&execution.run, &user.id, key, facts, intent_at)
        .await?
    {
        IntentRecorded::Existing(JournalEntry {
            outcome: Some(outcome),
            detail,
            ..
        }) => {
            // Done in an earlier attempt of this run.
            return Ok(StepEnd::Decided {
                outcome,
                detail,
                replayed: true,
            });
        }
        IntentRecorded::Existing(JournalEntry {
            facts: Some(Facts::Refused),
            ..
        }) => {
            // Refused before it was applied, and left for this resume: made now, for the
            // first time that can land.
            let call = StepCall {
                user,
                key,
                step,
                intent_at,
                done,
                resumed: false,
            };
            (attempt_or_withhold(execution, &call, secrets).await?, true)
        }
        IntentRecorded::Existing(entry) if matches!(step, Step::Notify { .. }) => {
            // A notice begun before an interruption: the notifier's delivery journal knows,
            // per channel, what went out, and sends only what certainly did not.
            let call = StepCall {
                user,
                key,
                step,
                intent_at: entry.intent_at,
                done,
                resumed: true,
            };
            let attempt = match notice_precheck(execution, step, earlier_failed, lost_secret) {
                Some(ended) => Attempt::Ended(ended),
                None => perform(execution, &call, secrets).await?,
            };
            (attempt, true)
        }
        IntentRecorded::Existing(entry) => {
            let call = StepCall {
                user,
                key,
                step,
                intent_at: entry.intent_at,
                done,
                resumed: true,
            };
            (
                resolve_unknown(execution, &call, entry.facts, true, secrets).await?,
                true,
            )
        }
        IntentRecorded::New => {
            let attempt = match notice_precheck(execution, step, earlier_failed, lost_secret) {
                Some(ended) => Attempt::Ended(ended),
                None => {
                    let call = StepCall {
                        user,
                        key,
                        step,
                        intent_at,
                        done,
                        resumed: false,
                    };
                    attempt_or_withhold(execution, &call, secrets).await?
                }
            };
            (attempt, false)
        }
    };
    let (outcome, detail) = match attempt {
        Attempt::Ended(ended) => {
            if !matches!(step, Step::Notify { .. }) {
                release(execution, execution.refusals.decided(key)).await?;
            }
            ended
        }
        Attempt::Refused(err) => {
            let row = Withheld {
                user_id: user.id.clone(),
                key: key.to_owned(),
                detail: err.to_string(),
            };
            match execution.refusals.denied(row, err.detail.code.clone()) {
                Decision::Withhold => {
                    withhold(execution, user, key, &err.to_string(), resumed).await?;
                    return Ok(StepEnd::Withheld);
                }
                Decision::Record(earlier) => {
                    release(execution, earlier).await?;
                    (Outcome::Failed, Some(err.to_string()))
                }
            }
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
    Ok(StepEnd::Decided {
        outcome,
        detail,
        replayed: false,
    })
}

/// Whether a notify step ends before anything is sent: an earlier step failed (the notice
/// would announce what did not happen), or the notice is the carrier of a secret whose value
/// this attempt never had (it is never stored). A notice that carries no secret goes out
/// even after a lost one.
fn notice_precheck<S>(
    execution: &Runner<S>,
    step: &Step,
    earlier_failed: bool,
    lost_secret: Option<&'static str>,
) -> Option<Ended> {
    let Step::Notify { channels, to, .. } = step else {
        return None;
    };
    if earlier_failed {
        return Some((
            Outcome::Skipped,
            Some("an earlier step failed; nothing to announce".into()),
        ));
    }
    let kind = lost_secret?;
    execution.notifier.delivers_secrets(channels, *to).then(|| {
        (
            Outcome::ManualCheck,
            Some(format!(
                "the {kind} was created, but its value never reached this attempt of the run \
                 (made before a resume, or its response was lost) and it is never stored, so \
                 it cannot be delivered; issue a new one by hand"
            )),
        )
    })
}

/// Make the step's call, unless its writes are already known to be refused wholesale: then
/// it is not sent, and counts as refused like the others.
async fn attempt_or_withhold<S: RunStore>(
    execution: &Runner<S>,
    call: &StepCall<'_>,
    secrets: &mut Vec<UserSecret>,
) -> Result<Attempt, EngineError> {
    if execution.refusals.refused(call.key) {
        return Ok(Attempt::Refused(DirectoryError::new(
            DirectoryErrorKind::Denied,
            "not sent: every earlier write of this step was refused",
        )));
    }
    perform(execution, call, secrets).await
}

/// Leave a refused write's row open: typed as refused (a resume makes the write without
/// reading back), audited as the failure it was.
async fn withhold<S: RunStore>(
    execution: &Runner<S>,
    user: &PlannedUser,
    key: &str,
    detail: &str,
    resumed: bool,
) -> Result<(), EngineError> {
    execution
        .store
        .record_facts(&execution.run, &user.id, key, Facts::Refused)
        .await?;
    let detail = format!("{detail}; not applied, left for the resume");
    audit_step(
        execution,
        user,
        key,
        Outcome::Failed,
        Some(&detail),
        resumed,
    )
    .await
}

/// Record withheld refusals whose step turned out to be refused only now and then: the
/// failures they are (their trail records were written when they were withheld).
async fn release<S: RunStore>(
    execution: &Runner<S>,
    rows: Vec<Withheld>,
) -> Result<(), EngineError> {
    for row in rows {
        execution
            .store
            .record_outcome(
                &execution.run,
                &row.user_id,
                &row.key,
                Outcome::Failed,
                Some(row.detail),
                Timestamp::now(),
            )
            .await?;
        // Counted as this attempt's failure once; the user's pipeline, resumed, replays it
        // (and the progress line counts it then).
        execution.breaker.record(true);
    }
    Ok(())
}

/// The typed facts a step's intent carries: for `add_to_group`, the group and when the
/// membership ends (`expiry` after the intent), whether it existed not read yet.
fn intent_facts(step: &Step, intent_at: Timestamp) -> Option<Facts> {
    match step {
        Step::AddToGroup { group_id, expiry } => Some(Facts::Membership(Membership {
            group_id: group_id.to_string(),
            until: intent_at
                .checked_add(jiff::SignedDuration::try_from(*expiry).unwrap_or_default())
                .unwrap_or(intent_at),
            member_before: None,
        })),
        _ => None,
    }
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
    let action = match StepKey::parse(key) {
        Some(step) => format!("user.{}", step.name),
        None => format!("user.{key}"),
    };
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
    if let Some(ticket) = &execution.ticket {
        details = details.with("ticket", ticket.as_str())?;
    }
    // The UPN is the directory's: escaped for the trail, so an odd one cannot stop the run.
    let event = Event::new(
        execution.actor.as_str(),
        action,
        trail::escaped(&user.upn),
        audit_outcome,
    )?
    .with_details(details);
    execution.audit.record(event).await?;
    Ok(())
}

/// Make the call a step stands for. A secret it creates goes to `secrets`, for the user's
/// notify steps; a notify step hands them to the notifier.
async fn perform<S: RunStore>(
    execution: &Runner<S>,
    call: &StepCall<'_>,
    secrets: &mut Vec<UserSecret>,
) -> Result<Attempt, EngineError> {
    let directory = execution.directory.as_ref();
    let user = call.user;
    if matches!(
        call.step,
        Step::RevokeSessions | Step::ResetPassword { .. } | Step::TemporaryAccessPass { .. }
    ) {
        execution.before_write().await;
    }
    let result: Result<Option<String>, DirectoryError> = match call.step {
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
            remove_methods(directory, execution.pace.as_ref(), &user.id, remove).await
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
        Step::AddToGroup { .. } => return add_to_group(execution, call).await,
        Step::ConfirmCompromised => execution.confirmer.confirm(&user.id).await.map(|()| None),
        Step::Notify {
            template,
            channels,
            to,
            out_of_band,
        } => {
            let notice = Notice {
                run: execution.run.0.as_str(),
                user,
                step: call.key,
                template,
                channels,
                to: *to,
                out_of_band: *out_of_band,
                done: call.done,
                resumed: call.resumed,
                secrets: secrets.as_slice(),
            };
            return Ok(Attempt::Ended(
                match execution.notifier.notify(notice).await {
                    Delivery::Delivered(detail) => (Outcome::Succeeded, Some(detail)),
                    Delivery::Recorded(detail) => (Outcome::Skipped, Some(detail)),
                    Delivery::Failed(detail) => (Outcome::Failed, Some(detail)),
                    Delivery::ManualCheck(detail) => (Outcome::ManualCheck, Some(detail)),
                },
            ));
        }
    };
    match result {
        Ok(detail) => Ok(Attempt::Ended((Outcome::Succeeded, detail))),
        Err(err) if err.kind == DirectoryErrorKind::OutcomeUnknown => {
            lost_answer(execution, call, &err, None, secrets).await
        }
        Err(err) if err.kind == DirectoryErrorKind::Denied => Ok(Attempt::Refused(err)),
        Err(err) => Ok(Attempt::Ended((Outcome::Failed, Some(err.to_string())))),
    }
}

/// The request left; whether the directory applied it is unknown. Read it back now; if the
/// read-back cannot prove it landed, an operator must look (the request may still be in
/// flight, so it is not made again).
async fn lost_answer<S: RunStore>(
    execution: &Runner<S>,
    call: &StepCall<'_>,
    err: &DirectoryError,
    facts: Option<Facts>,
    secrets: &mut Vec<UserSecret>,
) -> Result<Attempt, EngineError> {
    tracing::warn!(message = "Write outcome unknown; reading back.", user = %call.user.upn, %err);
    resolve_unknown(execution, call, facts, false, secrets).await
}

/// `add_to_group`: read whether the user is already a direct member and journal it before
/// the write, so that `runs expire` never removes a membership the run did not make, even
/// when the write's answer is lost and a read-back finds the user in the group. The write
/// is made either way (the search index the first read uses may lag); Graph's answer then
/// settles what was there before: added means it was not, "already exist" means it was.
async fn add_to_group<S: RunStore>(
    execution: &Runner<S>,
    call: &StepCall<'_>,
) -> Result<Attempt, EngineError> {
    let Some(Facts::Membership(mut membership)) = intent_facts(call.step, call.intent_at) else {
        return Err(EngineError::CorruptPlan {
            run: execution.run.0.clone(),
            message: format!("step {} is not an add_to_group step", call.key),
        });
    };
    let directory = execution.directory.as_ref();
    let user = &call.user.id;
    let group = membership.group_id.clone();
    let was_member = match directory.is_group_member(&group, user).await {
        Ok(was) => was,
        Err(err) if err.kind == DirectoryErrorKind::Denied => return Ok(Attempt::Refused(err)),
        Err(err) => {
            return Ok(Attempt::Ended((
                Outcome::Failed,
                Some(format!(
                    "reading the members of {group} before adding: {err}"
                )),
            )));
        }
    };
    membership.member_before = Some(was_member);
    record_membership(execution, call, &membership).await?;
    let added = |m: &Membership| format!("member of {} until {}", m.group_id, m.until);
    execution.before_write().await;
    match directory.add_group_member(&group, user).await {
        Ok(()) => {
            if was_member {
                // Graph added the user, so the first read saw a stale index.
                membership.member_before = Some(false);
                record_membership(execution, call, &membership).await?;
            }
            Ok(Attempt::Ended((
                Outcome::Succeeded,
                Some(added(&membership)),
            )))
        }
        Err(err) if already_a_member(&err) => {
            if !was_member {
                membership.member_before = Some(true);
                record_membership(execution, call, &membership).await?;
            }
            Ok(Attempt::Ended((
                Outcome::Succeeded,
                Some(format!(
                    "already a member of {group} before this step; it will be left in place"
                )),
            )))
        }
        Err(err) if err.kind == DirectoryErrorKind::OutcomeUnknown => {
            let facts = Some(Facts::Membership(membership));
            lost_answer(execution, call, &err, facts, &mut Vec::new()).await
        }
        Err(err) if err.kind == DirectoryErrorKind::Denied => Ok(Attempt::Refused(err)),
        Err(err) => Ok(Attempt::Ended((Outcome::Failed, Some(err.to_string())))),
    }
}

/// Graph's answer to adding a member the group already has: 400 "One or more added object
/// references already exist for the following modified properties: 'members'."
/// (https://learn.microsoft.com/graph/api/group-post-members).
fn already_a_member(err: &DirectoryError) -> bool {
    err.kind == DirectoryErrorKind::Rejected
        && err.detail.status == Some(400)
        && err
            .message
            .contains("added object references already exist")
}

async fn record_membership<S: RunStore>(
    execution: &Runner<S>,
    call: &StepCall<'_>,
    membership: &Membership,
) -> Result<(), EngineError> {
    execution
        .store
        .record_facts(
            &execution.run,
            &call.user.id,
            call.key,
            Facts::Membership(membership.clone()),
        )
        .await?;
    Ok(())
}

/// Delete the user's methods of the listed types (never the password). Converges: a method
/// already gone is not listed, so nothing is deleted twice.
async fn remove_methods(
    directory: &dyn Directory,
    pace: Option<&WritePace>,
    user_id: &str,
    remove: &[MethodType],
) -> Result<Option<String>, DirectoryError> {
    let methods = directory.list_auth_methods(user_id).await?;
    let mut removed = 0;
    for method in methods
        .iter()
        .filter(|m| remove.iter().any(|t| matches_type(*t, &m.kind)))
    {
        if let Some(pace) = pace {
            pace.write().await;
        }
        directory.delete_auth_method(user_id, method).await?;
        removed += 1;
    }
    Ok(Some(format!("{removed} method(s) removed")))
}

/// Resolve a step whose outcome is unknown. On resume (`may_perform`), a read-back proving
/// the write did not land lets the step run now — its first application. During the run, it
/// goes to manual check instead, since the original request may still be in flight. `facts`
/// are the journal row's: an `add_to_group` whose earlier membership was not read yet never
/// sent its write.
async fn resolve_unknown<S: RunStore>(
    execution: &Runner<S>,
    call: &StepCall<'_>,
    facts: Option<Facts>,
    may_perform: bool,
    secrets: &mut Vec<UserSecret>,
) -> Result<Attempt, EngineError> {
    let unsent = matches!(
        &facts,
        Some(Facts::Membership(Membership {
            member_before: None,
            ..
        }))
    );
    let found = if unsent {
        Ok(ReadBack::NotApplied)
    } else {
        execution
            .progress
            .read_backs
            .fetch_add(1, Ordering::Relaxed);
        read_back(
            execution.directory.as_ref(),
            &call.user.id,
            call.step,
            call.intent_at,
        )
        .await
    };
    Ok(Attempt::Ended(match found {
        Ok(ReadBack::Applied(evidence)) => {
            if facts.is_none()
                && let Some(Facts::Membership(mut membership)) =
                    intent_facts(call.step, call.intent_at)
            {
                // Journaled before memberships were read first: whether the user was a
                // member before cannot be known, so `runs expire` leaves it to an operator.
                membership.member_before = None;
                record_membership(execution, call, &membership).await?;
            }
            (Outcome::Succeeded, Some(format!("read back: {evidence}")))
        }
        Ok(ReadBack::NotApplied) if may_perform => {
            tracing::info!(message = "Read-back shows the write did not land; performing it.", user = %call.user.upn);
            // Boxed: perform may come back here on an unknown outcome (with may_perform off).
            return Box::pin(perform(execution, call, secrets)).await;
        }
        Ok(ReadBack::NotApplied) => (
            Outcome::ManualCheck,
            Some("outcome unknown and not visible yet; check this user".into()),
        ),
        Ok(ReadBack::Unknowable(why)) => (Outcome::ManualCheck, Some(why)),
        Err(err) => (
            Outcome::ManualCheck,
            Some(format!("outcome unknown; read-back failed: {err}")),
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditConfig;
    use crate::directory::memory::{MemoryDirectory, Op};
    use crate::engine::notify::RecordOnly;
    use crate::engine::planner::{PlanRequest, build_plan};
    use crate::engine::{breaker, refusal};
    use crate::store::{NewRun, PlanDocument, SqliteStore};
    use crate::targeting::ResolveOptions;

    const GROUP: &str = "7d0c3f5e-1b2a-4c6d-8e9f-0a1b2c3d4e5f";
    const RESET: &str =
        "  - reset_password: { mode: scramble, force_change: true, require_mfa: true }\n";
    const ADD: &str =
        "  - add_to_group: { group_id: 7d0c3f5e-1b2a-4c6d-8e9f-0a1b2c3d4e5f, expiry: 1h }\n";

    /// A run of a playbook of `steps` on an in-memory tenant, with a real store and trail.
    struct Fixture {
        dir: tempfile::TempDir,
        directory: Arc<MemoryDirectory>,
        store: Arc<SqliteStore>,
        audit: AuditHandle,
        playbook: Arc<Playbook>,
        plan: Plan,
        run: RunId,
    }

    async fn fixture(directory: MemoryDirectory, steps: &str, threshold: f64) -> Fixture {
        let text = format!(
            "name: unit\ntargets: [all_users: {{}}]\nguards: {{ max_fraction_of_tenant: 1.0, \
             stop_when_error_rate_above: {threshold}, approvals_required: 0 }}\nsteps:\n{steps}"
        );
        let playbook = crate::playbook::load_str("unit.yaml", &text)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .playbook;
        let directory = Arc::new(directory);
        let plan = build_plan(
            directory.as_ref(),
            PlanRequest {
                playbook: &playbook,
                tenant: "t",
                apps: 1,
                quotas: &crate::throttle::Quotas::graph_defaults(
                    crate::config::TenantSize::Small,
                    1.0,
                ),
                runner_accounts: &[],
                resolve: ResolveOptions::default(),
                remediated: &std::collections::HashMap::new(),
                include_remediated: false,
                skip_report_only_reads: false,
            },
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("runs.sqlite")).unwrap());
        let run = RunId("r1".into());
        store
            .create_run(NewRun {
                id: run.clone(),
                created_at: Timestamp::now(),
                playbook_name: "unit".into(),
                playbook_path: "unit.yaml".into(),
                tenant: "t".into(),
                plan_hash: plan.hash(),
                plan: PlanDocument::text("{}"),
            })
            .await
            .unwrap();
        let audit = AuditHandle::open(&AuditConfig::new(dir.path().join("audit.jsonl")))
            .await
            .unwrap();
        Fixture {
            dir,
            directory,
            store,
            audit,
            playbook: Arc::new(playbook),
            plan,
            run,
        }
    }

    impl Fixture {
        /// One attempt of the run, one user at a time.
        async fn execute(&self) -> Result<Summary, EngineError> {
            let (_stop, stop) = watch::channel(false);
            execute(Execution {
                directory: self.directory.clone(),
                store: Arc::clone(&self.store),
                audit: self.audit.clone(),
                playbook: Arc::clone(&self.playbook),
                plan: Arc::new(self.plan.clone()),
                run: self.run.clone(),
                actor: "resetctl".into(),
                concurrency: 1,
                stop,
                progress: Arc::new(Progress::default()),
                notifier: Arc::new(RecordOnly),
                ticket: None,
            })
            .await
        }

        async fn journal(&self) -> Vec<JournalEntry> {
            self.store.journal(&self.run).await.unwrap()
        }

        /// The journal row of `user`'s step `key`.
        async fn row(&self, user: &str, key: &str) -> JournalEntry {
            self.journal()
                .await
                .into_iter()
                .find(|e| e.user_id == user && e.step == key)
                .unwrap_or_else(|| panic!("no row {user} {key}"))
        }

        /// Close the trail and verify it; the number of records.
        async fn verify_trail(&self) -> u64 {
            self.audit.close().await.unwrap();
            crate::audit::verify_trail(&self.dir.path().join("audit.jsonl"), None)
                .unwrap()
                .records
        }
    }

    /// A tenant of `n` users `u00@x`, ... (ids `id-u00@x`, ...).
    fn users(n: usize) -> MemoryDirectory {
        (0..n).fold(MemoryDirectory::new(), |d, i| {
            d.with_user(&format!("u{i:02}@x"))
        })
    }

    fn member_before(entry: JournalEntry) -> Option<bool> {
        match entry.facts {
            Some(Facts::Membership(m)) => m.member_before,
            other => panic!("not a membership: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_step_key_the_playbook_does_not_have_is_a_corrupt_plan() {
        for key in ["3:reset_password", "0:revoke_sessions", "reset_password"] {
            let mut f = fixture(users(1), RESET, 0.5).await;
            f.plan.users[0].steps = vec![key.to_owned()].into();
            let err = f.execute().await.unwrap_err();
            assert!(
                matches!(&err, EngineError::CorruptPlan { message, .. } if message.contains(key)),
                "{key}: {err}"
            );
            assert_eq!(f.directory.calls(Op::ForcePasswordChange), 0);
        }
    }

    #[tokio::test]
    async fn the_breaker_stops_new_users_once_the_window_fails_and_forgets_history() {
        let f = fixture(users(40), RESET, 0.5).await;
        // Refused the way a password policy refuses: ordinary failures, not a missing
        // permission (see the refusal tests below).
        for _ in 0..breaker::MIN_SAMPLES {
            f.directory
                .fail_next(Op::ForcePasswordChange, DirectoryErrorKind::Rejected);
        }
        let summary = f.execute().await.unwrap();
        assert!(summary.tripped);
        assert_eq!(summary.users_done, breaker::MIN_SAMPLES);
        assert_eq!(summary.users_not_started, 40 - breaker::MIN_SAMPLES);
        assert_eq!(
            f.directory.calls(Op::ForcePasswordChange),
            breaker::MIN_SAMPLES
        );
        let failed = &summary.results[0];
        assert_eq!(failed.outcome, Outcome::Failed);
        assert_eq!(
            failed.detail.as_deref(),
            Some("rejected: scripted failure"),
            "the error's one Display"
        );

        // Resumed once the cause is fixed: the failures are history, not this attempt's
        // error rate, so every user left runs.
        let resumed = f.execute().await.unwrap();
        assert!(!resumed.tripped);
        assert_eq!(resumed.users_not_started, 0);
        assert_eq!(resumed.count(Outcome::Failed), breaker::MIN_SAMPLES);
        assert_eq!(resumed.count(Outcome::Succeeded), 40 - breaker::MIN_SAMPLES);
        assert_eq!(f.directory.calls(Op::ForcePasswordChange), 40);
    }

    const REVOKE: &str = "  - revoke_sessions\n";

    #[tokio::test]
    async fn writes_refused_alike_stop_the_run_and_the_resume_makes_them() {
        let f = fixture(users(40), &format!("{RESET}{REVOKE}"), 0.5).await;
        for _ in 0..refusal::WHOLESALE {
            f.directory
                .fail_next(Op::ForcePasswordChange, DirectoryErrorKind::Denied);
        }
        let summary = f.execute().await.unwrap();
        assert_eq!(summary.refused.len(), 1, "{:?}", summary.refused);
        let refused = &summary.refused[0];
        assert_eq!(refused.step, "0:reset_password");
        assert_eq!(refused.users, refusal::WHOLESALE);
        assert_eq!(refused.example, "denied: scripted failure");
        assert!(!summary.tripped, "not the breaker");
        assert_eq!(summary.users_done, 0);
        assert_eq!(summary.users_not_started, 40);
        assert!(summary.results.is_empty(), "{:?}", summary.results);
        assert_eq!(
            f.directory.calls(Op::ForcePasswordChange),
            refusal::WHOLESALE,
            "no user started after the fifth refusal"
        );
        assert_eq!(
            f.directory.calls(Op::RevokeSessions),
            0,
            "no step out of order"
        );
        let journal = f.journal().await;
        assert_eq!(journal.len(), refusal::WHOLESALE);
        assert!(
            journal
                .iter()
                .all(|e| e.outcome.is_none() && e.facts == Some(Facts::Refused)),
            "{journal:?}"
        );

        // The permission granted: the resume makes the refused writes, then everyone else's.
        let resumed = f.execute().await.unwrap();
        assert!(resumed.complete_success(), "{:?}", resumed.results);
        assert_eq!(resumed.users_done, 40);
        assert_eq!(
            f.directory.calls(Op::ForcePasswordChange),
            40 + refusal::WHOLESALE
        );
        assert_eq!(f.directory.calls(Op::RevokeSessions), 40);
        assert!(
            f.verify_trail().await > 80,
            "refusals and writes are on the trail"
        );
    }

    #[tokio::test]
    async fn refusals_among_successes_are_ordinary_failures_and_pipelines_go_on() {
        let f = fixture(users(6), &format!("{RESET}{REVOKE}"), 1.0).await;
        f.directory
            .fail_next(Op::ForcePasswordChange, DirectoryErrorKind::Denied);
        let summary = f.execute().await.unwrap();
        assert!(summary.refused.is_empty());
        assert_eq!(summary.users_done, 6);
        assert_eq!(summary.users_not_started, 0);
        assert_eq!(summary.count(Outcome::Failed), 1);
        assert_eq!(summary.count(Outcome::Succeeded), 11);
        // u00's reset was refused; its revocation still ran, after the reset was settled.
        let reset = f.row("id-u00@x", "0:reset_password").await;
        assert_eq!(reset.outcome, Some(Outcome::Failed));
        let revoke = f.row("id-u00@x", "1:revoke_sessions").await;
        assert_eq!(revoke.outcome, Some(Outcome::Succeeded));
        assert!(revoke.intent_at >= reset.outcome_at.unwrap());
        assert_eq!(f.directory.calls(Op::RevokeSessions), 6);
        let results: Vec<_> = summary
            .results
            .iter()
            .filter(|r| r.user_id == "id-u00@x")
            .map(|r| (r.step.as_str(), r.outcome))
            .collect();
        assert_eq!(
            results,
            [
                ("0:reset_password", Outcome::Failed),
                ("1:revoke_sessions", Outcome::Succeeded)
            ]
        );
    }

    #[tokio::test]
    async fn a_lost_answer_is_read_back_never_repeated() {
        let f = fixture(users(3), RESET, 1.0).await;
        // u00: applied, answer lost; u01: lost before it landed; u02: fine.
        f.directory.lose_next_answer(Op::ForcePasswordChange);
        f.directory.lose_next_request(Op::ForcePasswordChange);
        let summary = f.execute().await.unwrap();
        let by_user: Vec<(&str, Outcome)> = summary
            .results
            .iter()
            .map(|r| (r.upn.as_str(), r.outcome))
            .collect();
        assert_eq!(
            by_user,
            [
                ("u00@x", Outcome::Succeeded),
                ("u01@x", Outcome::ManualCheck),
                ("u02@x", Outcome::Succeeded),
            ]
        );
        assert!(
            summary.results[0]
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with("read back: password changed at")),
            "{:?}",
            summary.results[0]
        );
        assert_eq!(
            f.directory.calls(Op::ForcePasswordChange),
            3,
            "nothing sent twice"
        );
    }

    #[tokio::test]
    async fn a_resumed_intent_is_performed_only_when_the_read_back_proves_it_did_not_land() {
        let f = fixture(users(2), RESET, 1.0).await;
        let key = "0:reset_password";
        let earlier = Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(60))
            .unwrap();
        // Both died in flight; u00's password did change, u01's did not.
        for user in ["id-u00@x", "id-u01@x"] {
            f.store
                .record_intent(&f.run, user, key, None, earlier)
                .await
                .unwrap();
        }
        let change = PasswordChange {
            force_change_next_sign_in: true,
            force_change_with_mfa: true,
            password: None,
        };
        f.directory
            .force_password_change("id-u00@x", &change)
            .await
            .unwrap();
        let summary = f.execute().await.unwrap();
        assert!(summary.complete_success(), "{:?}", summary.results);
        assert_eq!(
            f.directory.calls(Op::ForcePasswordChange),
            2,
            "u00's landed write was not repeated; u01's was made once"
        );
        assert!(
            f.row("id-u00@x", key)
                .await
                .detail
                .is_some_and(|d| d.starts_with("read back:"))
        );
    }

    #[tokio::test]
    async fn add_to_group_journals_whether_the_user_was_a_member_before_writing() {
        // u00 and u01 were members before the run. u00's write loses its answer and the
        // read-back finds it in the group: that must not credit the membership to the run.
        let directory = users(3).with_group(GROUP, &["id-u00@x", "id-u01@x"]);
        let f = fixture(directory, ADD, 1.0).await;
        f.directory.lose_next_answer(Op::AddGroupMember);
        let summary = f.execute().await.unwrap();
        assert!(summary.complete_success(), "{:?}", summary.results);
        let key = "0:add_to_group";
        assert_eq!(member_before(f.row("id-u00@x", key).await), Some(true));
        assert_eq!(member_before(f.row("id-u01@x", key).await), Some(true));
        assert_eq!(member_before(f.row("id-u02@x", key).await), Some(false));
        assert!(
            summary.results[1]
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("already a member")),
            "{:?}",
            summary.results[1]
        );
        let later = Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(2))
            .unwrap();
        let due = crate::engine::expire::due(&f.journal().await, later);
        let due: Vec<&str> = due.iter().map(|d| d.user_id.as_str()).collect();
        assert_eq!(due, ["id-u02@x"], "only the membership the run made ends");
    }

    #[tokio::test]
    async fn an_add_to_group_that_died_before_reading_the_group_never_wrote() {
        let f = fixture(users(1).with_group(GROUP, &[]), ADD, 1.0).await;
        let key = "0:add_to_group";
        let intent_at = Timestamp::now();
        let step = StepKey::parse(key).unwrap();
        let facts = intent_facts(step.step(&f.playbook).unwrap(), intent_at);
        f.store
            .record_intent(&f.run, "id-u00@x", key, facts, intent_at)
            .await
            .unwrap();
        let summary = f.execute().await.unwrap();
        assert!(summary.complete_success(), "{:?}", summary.results);
        assert_eq!(
            f.directory.calls(Op::ListGroupMembers),
            0,
            "no read-back: the write was never sent"
        );
        assert_eq!(f.directory.calls(Op::AddGroupMember), 1);
        assert_eq!(member_before(f.row("id-u00@x", key).await), Some(false));
        assert_eq!(f.directory.members(GROUP), ["id-u00@x"]);
    }

    #[tokio::test]
    async fn a_control_character_in_a_upn_is_escaped_for_the_trail_not_fatal() {
        let directory = MemoryDirectory::new().with_user("ev\u{7}il\u{1b}[2J@x");
        let f = fixture(directory, RESET, 1.0).await;
        let summary = f.execute().await.unwrap();
        assert!(summary.complete_success(), "{:?}", summary.results);
        assert_eq!(
            f.verify_trail().await,
            1,
            "one record, and the trail verifies"
        );
        let trail = std::fs::read_to_string(f.dir.path().join("audit.jsonl")).unwrap();
        assert!(
            trail.contains(r#""subject":"ev\\u{7}il\\u{1b}[2J@x""#),
            "{trail}"
        );
    }
}
