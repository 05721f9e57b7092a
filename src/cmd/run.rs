//! `resetctl run`: plan, then a dry run (the default) or — with `--execute`, guards passed and
//! approvals given — the real thing; `--resume RUN_ID` continues a run that stopped.
//!
//! Ctrl-C once: no new user starts, users in flight finish (exit 5 when nothing failed);
//! twice: the run is marked `interrupted` and the process exits 130 at once (the journal
//! holds every intent, so `--resume` sorts out what was in flight).
//!
//! Under `--output json` the command prints one document: the plan with the dry run's calls,
//! or the run's summary (with the plan under `plan`), or `{"error": ..., "exit": N, "id": ...}`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use resetctl::directory::Directory;
use resetctl::engine::execute::Progress;
use resetctl::engine::gate;
use resetctl::engine::journal_key::StepKey;
use resetctl::engine::lifecycle::{
    Cleared, ExecuteOptions, Executed, Lifecycle, PlanOptions, PlannedRun, ResumeCheck,
};
use resetctl::engine::notify::RecordOnly;
use resetctl::engine::preflight;
use resetctl::playbook::Playbook;
use resetctl::report::StepCounts;
use resetctl::store::{RunId, SqliteStore};
use resetctl::targeting::{ResolveOptions, Strategy};
use tokio::sync::watch;

use resetctl::comms::notifier::CommsNotifier;

use super::comms;
use super::console::Console;
use super::context::Context;
use super::tenant::Tenant;
use super::{CmdResult, Exit, Failure, validate};
use crate::cli::{GlobalArgs, OutputFormat, RunArgs};

/// `resetctl run`.
pub async fn run(global: &GlobalArgs, args: RunArgs) -> CmdResult {
    let context = Context::load(global)?;
    let lifecycle = context
        .lifecycle(args.store.clone())
        .await?
        .with_ticket(args.ticket.clone());
    let result = match &args.resume {
        Some(id) => resume(global, &args, &context, &lifecycle, RunId(id.clone())).await,
        None => start(global, &args, &context, &lifecycle).await,
    };
    if let Err(err) = lifecycle.close().await {
        eoutln!("warning: audit trail: {err}");
    }
    result
}

async fn start(
    global: &GlobalArgs,
    args: &RunArgs,
    context: &Context,
    lifecycle: &Lifecycle<SqliteStore>,
) -> CmdResult {
    let Some(playbook_path) = args.playbook.as_deref() else {
        return Err(Failure::new(
            Exit::Invalid,
            "a playbook is needed (or --resume RUN_ID)",
        ));
    };
    let templates = validate::Templates::new(&context.config, args.templates.as_deref())?;
    let source = validate::load_playbook(playbook_path, &templates)?;
    let requested = args.tenant.tenant.as_deref();
    let tenant = if args.execute {
        context.connect(requested).await?
    } else {
        context.connect_read_only(requested).await?
    };
    let setting = Setting {
        context,
        lifecycle,
        tenant: &tenant,
        templates: &templates,
    };
    let result = plan_then_act(global, args, &setting, &source).await;
    tenant.close().await;
    result
}

/// What a run command works with: the configuration, the lifecycle, the tenant, the
/// templates.
struct Setting<'a> {
    context: &'a Context,
    lifecycle: &'a Lifecycle<SqliteStore>,
    tenant: &'a Tenant,
    templates: &'a validate::Templates,
}

impl Setting<'_> {
    /// The notifier of `planned`: the configured channels, templates and audiences.
    fn notifier(&self, planned: &PlannedRun) -> Result<Arc<CommsNotifier>, Failure> {
        comms::notifier(
            self.context,
            self.tenant,
            self.lifecycle,
            planned,
            self.templates.catalog(),
        )
        .map(Arc::new)
    }
}

async fn plan_then_act(
    global: &GlobalArgs,
    args: &RunArgs,
    setting: &Setting<'_>,
    source: &resetctl::engine::lifecycle::PlaybookSource,
) -> CmdResult {
    let (lifecycle, tenant) = (setting.lifecycle, setting.tenant);
    let console = Console::new(global);
    let reading = console.planning(
        "planning: reading the tenant",
        Arc::clone(&tenant.directory),
    );
    let planned = lifecycle
        .plan(
            tenant.as_ref(),
            source,
            PlanOptions {
                resolve: ResolveOptions {
                    csv_override: args.targets.clone(),
                    skip_bad_rows: args.skip_bad_rows,
                    strategy: Strategy::Auto,
                },
                out: args.out.clone(),
                overwrite: args.overwrite,
                include_remediated: args.include_remediated,
                skip_report_only_reads: false,
            },
        )
        .await;
    reading.finish();
    let planned = planned?;
    // In JSON the plan goes into the command's one document; in text it is shown now
    // (under -q only the final line is).
    let plan_doc = match global.output {
        OutputFormat::Json => Some(super::plan::plan_json(&planned, tenant.emulated)),
        OutputFormat::Text => {
            if console.summary() {
                super::plan::print_plan(global, &planned, tenant.emulated);
            }
            None
        }
    };
    if !args.execute {
        // The dry run says what --execute would refuse, channels included; a channel
        // whose secret is not set here is a note, not an error (nothing is sent).
        let notifier = setting.notifier(&planned);
        dry_run(console, lifecycle, &planned, plan_doc, notifier);
        return Ok(Exit::Success);
    }
    let id = planned.run.id.clone();
    let notifier = setting.notifier(&planned).map_err(|f| f.about(&id))?;
    if console.summary() {
        let delivery = comms::capacity(notifier.senders(), &planned);
        let within = planned.playbook.communications.deliver_within;
        for line in comms::capacity_lines(&delivery, within) {
            outln!("{line}");
        }
    }
    let cleared = lifecycle.gate(planned, notifier.as_ref()).await?;
    // Tokens, permissions and role before the first write, not 403s after it.
    lifecycle.preflight(&cleared, tenant.as_ref()).await?;
    if !args.yes {
        confirm(&cleared, tenant).map_err(|f| f.about(&id))?;
    }
    execute(global, args, lifecycle, tenant, cleared, plan_doc, notifier).await
}

/// List the calls `--execute` would make; nothing is written to the tenant (the plan is
/// stored and its files written, as `plan` does). `plan_doc` is the plan's JSON document
/// under `--output json`: the calls are added to it and it is printed, as one document.
fn dry_run(
    console: Console,
    lifecycle: &Lifecycle<SqliteStore>,
    planned: &PlannedRun,
    plan_doc: Option<serde_json::Value>,
    notifier: Result<Arc<CommsNotifier>, Failure>,
) {
    let plan = &planned.plan;
    let describe = |key: &str| {
        plan.steps
            .iter()
            .find(|s| s.key == key)
            .map_or_else(|| key.to_owned(), |s| s.description.clone())
    };
    let would: Vec<(String, String)> = plan
        .users
        .iter()
        .flat_map(|u| {
            u.steps
                .iter()
                .map(move |key| (u.upn.clone(), describe(key)))
        })
        .collect();
    let (mut refusals, capacity): (Vec<String>, Vec<comms::Capacity>) = match &notifier {
        Ok(notifier) => (
            lifecycle
                .would_refuse(planned, notifier.as_ref())
                .iter()
                .map(ToString::to_string)
                .collect(),
            comms::capacity(notifier.senders(), planned),
        ),
        Err(_) => (
            lifecycle
                .would_refuse(planned, &RecordOnly)
                .iter()
                .map(ToString::to_string)
                .collect(),
            Vec::new(),
        ),
    };
    if let Err(failure) = &notifier {
        refusals.push(format!("the messages cannot be set up: {}", failure.report));
    }
    let approvals = planned.playbook.guards.approvals_required;
    if let Some(mut doc) = plan_doc {
        let calls: Vec<_> = would
            .iter()
            .map(|(upn, call)| serde_json::json!({"user": upn, "call": call}))
            .collect();
        doc["dry_run"] = true.into();
        doc["would"] = calls.into();
        doc["would_refuse"] = refusals.clone().into();
        doc["delivery"] = serde_json::to_value(&capacity).unwrap_or_default();
        doc["approvals_required"] = approvals.into();
        outln!("{doc}");
        return;
    }
    if console.quiet() {
        // The one-line answer.
        outln!(
            "dry run {}: nothing written; --execute would make {} calls{}",
            planned.run.id,
            would.len(),
            if refusals.is_empty() {
                String::new()
            } else {
                format!(" but would be refused ({})", refusals.join("; "))
            }
        );
        return;
    }
    outln!();
    outln!(
        "dry run: nothing was written to the tenant (the plan is stored as run {} and its \
         files are in {}). --execute would make these {} calls:",
        planned.run.id,
        planned.out.display(),
        would.len()
    );
    const SHOWN: usize = 20;
    for (upn, call) in would.iter().take(SHOWN) {
        outln!("  {upn:<40} {call}");
    }
    if would.len() > SHOWN {
        outln!(
            "  ... and {} more (all in {})",
            would.len() - SHOWN,
            planned.out.join("plan.json").display()
        );
    }
    for line in comms::capacity_lines(&capacity, planned.playbook.communications.deliver_within) {
        outln!("{line}");
    }
    for refusal in &refusals {
        outln!("note: --execute would be refused: {refusal}");
    }
    if approvals > 0 {
        outln!(
            "approvals: {approvals} required; approve with `resetctl runs approve {} --as NAME`",
            planned.run.id
        );
    }
}

/// Without `--yes`, an operator at a terminal types the number of users; anywhere else the
/// run is refused (a script must say `--yes`).
fn confirm(cleared: &Cleared, tenant: &Tenant) -> Result<(), Failure> {
    let count = gate::automated(&cleared.planned().plan);
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            Exit::Refused,
            "--execute without --yes needs a terminal to confirm; pass --yes in scripts",
        ));
    }
    eout!(
        "This writes to {count} users of tenant {}. Type {count} to go on: ",
        tenant.name
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(Exit::Refused, e))?;
    if answer.trim() != count.to_string() {
        return Err(Failure::new(
            Exit::Refused,
            "not confirmed; nothing was written",
        ));
    }
    Ok(())
}

/// `--resume RUN_ID`: the stored plan, the same playbook (checked by hash), the same tenant.
async fn resume(
    global: &GlobalArgs,
    args: &RunArgs,
    context: &Context,
    lifecycle: &Lifecycle<SqliteStore>,
    id: RunId,
) -> CmdResult {
    resume_run(global, args, context, lifecycle, &id)
        .await
        .map_err(|failure| match failure.run {
            Some(_) => failure,
            None => failure.about(&id),
        })
}

async fn resume_run(
    global: &GlobalArgs,
    args: &RunArgs,
    context: &Context,
    lifecycle: &Lifecycle<SqliteStore>,
    id: &RunId,
) -> CmdResult {
    let resumable = match lifecycle.resumable(id).await? {
        ResumeCheck::Finished(run) => {
            match global.output {
                OutputFormat::Json => outln!(
                    "{}",
                    serde_json::json!({
                        "id": run.id,
                        "status": run.status,
                        "ticket": run.ticket,
                        "already_finished": true,
                    })
                ),
                OutputFormat::Text => outln!("run {id} is already finished"),
            }
            return Ok(Exit::Success);
        }
        ResumeCheck::Resumable(resumable) => resumable,
    };
    let path = std::path::PathBuf::from(&resumable.run.playbook_path);
    let templates = validate::Templates::new(&context.config, args.templates.as_deref())?;
    let source = validate::load_playbook(&path, &templates)?;
    let tenant = context.connect(Some(&resumable.run.tenant)).await?;
    let setting = Setting {
        context,
        lifecycle,
        tenant: &tenant,
        templates: &templates,
    };
    let result = async {
        let cleared = lifecycle
            .resume(
                resumable,
                &source,
                tenant.as_ref(),
                args.out.clone(),
                args.overwrite,
            )
            .await?;
        let notifier = setting.notifier(cleared.planned())?;
        lifecycle.preflight(&cleared, tenant.as_ref()).await?;
        execute(global, args, lifecycle, &tenant, cleared, None, notifier).await
    }
    .await;
    tenant.close().await;
    result
}

/// Execute a cleared run with Ctrl-C handling and progress, then print the summary.
///
/// Ctrl-C once: the engine starts no new user and the users in flight finish; the run ends
/// `stopped` (exit 5 when nothing failed). Twice: the run is marked `interrupted` (its open
/// attempt ended, `run.interrupted` recorded) and the process exits 130 at once; the journal
/// holds every intent, so `--resume` reads back what was in flight.
///
/// One listener is registered before the run starts and serves both presses: a second
/// `tokio::signal::ctrl_c()` would listen only from its first poll, losing a press that
/// lands in between. Without a listener (a warning says so) Ctrl-C kills the run, which
/// stays `running` until resumed.
async fn execute(
    global: &GlobalArgs,
    args: &RunArgs,
    lifecycle: &Lifecycle<SqliteStore>,
    tenant: &Tenant,
    cleared: Cleared,
    plan_doc: Option<serde_json::Value>,
    notifier: Arc<CommsNotifier>,
) -> CmdResult {
    let playbook = Arc::clone(&cleared.planned().playbook);
    let id = cleared.planned().run.id.clone();
    // The help desk and the manual queue hear before the first user is reset.
    let console = Console::new(global);
    let announcer = comms::Announcer::new(Arc::clone(&notifier), cleared.planned());
    for line in announcer.start().await {
        if !console.quiet() {
            eoutln!("message: {line}");
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut interrupts = match interrupts() {
        Ok(interrupts) => Some(interrupts),
        Err(err) => {
            eoutln!(
                "warning: cannot listen for Ctrl-C ({err}): it will kill the run \
                 (continue it with `resetctl run --resume {id}`)"
            );
            None
        }
    };
    let progress = Arc::new(Progress::default());
    let throttled_before = tenant.directory.stats().throttled;
    // On a terminal, bars; off it, the periodic log lines.
    let bars = console.execution(
        Arc::clone(&progress),
        Arc::clone(&tenant.directory),
        Some(notifier.stats()),
    );
    let ticker = if bars.drawn() {
        None
    } else {
        spawn_progress(
            Arc::clone(&progress),
            Arc::clone(&tenant.directory),
            &id,
            args.progress_every,
        )
    };
    let run = lifecycle.execute(
        cleared,
        tenant.as_ref(),
        ExecuteOptions {
            concurrency: args.concurrency,
            stop: stop_rx,
            progress: Arc::clone(&progress),
            notifier: Arc::clone(&notifier) as Arc<dyn resetctl::engine::notify::Notifier>,
        },
    );
    let mut run = std::pin::pin!(run);
    let mut presses = 0;
    let executed = loop {
        tokio::select! {
            executed = &mut run => break executed,
            () = next_press(&mut interrupts) => {
                presses += 1;
                if presses == 1 {
                    // Stop first, then say so: once this line is out, no new user starts.
                    let _ = stop_tx.send(true);
                    eoutln!(
                        "\nstopping: no new users start; users in flight finish \
                         (Ctrl-C again to abort)"
                    );
                    continue;
                }
                let throttled = tenant.directory.stats().throttled.saturating_sub(throttled_before);
                let read_backs = progress.read_backs.load(Ordering::Relaxed);
                abort(global, lifecycle, &id, throttled, read_backs).await;
            }
        }
    };
    bars.finish();
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    let executed = executed?;
    // The SOC hears how it ended, stopped or not.
    for line in announcer.end(&executed).await {
        if !console.quiet() {
            eoutln!("message: {line}");
        }
    }
    if !executed.summary.refused.is_empty() {
        // Exit 4, naming what is missing. In JSON the summary and the error are one document.
        let failure = refused(&executed, &playbook, tenant)
            .await
            .about(&executed.run);
        return Err(match global.output {
            OutputFormat::Json => failure.with_document(summary_doc(&executed, plan_doc)),
            OutputFormat::Text => {
                print_summary(console, &executed, None);
                failure
            }
        });
    }
    print_summary(console, &executed, plan_doc);
    let report = &executed.report;
    Ok(exit_of(&report.outcomes, report.stopped_by))
}

/// The exit code of an executed run: 0 when every step ended well, 2 when some failed or
/// need a manual check, 5 when the operator stopped it and nothing failed.
fn exit_of(outcomes: &StepCounts, stopped_by: Option<&str>) -> Exit {
    let o = outcomes;
    if o.failed == 0 && o.manual_check == 0 && o.not_started == 0 {
        Exit::Success
    } else if o.failed > 0 || o.manual_check > 0 || stopped_by != Some("operator") {
        Exit::Partial
    } else {
        Exit::Stopped
    }
}

/// A run stopped because a step's writes were refused wholesale: exit 4, naming what the
/// step needs and what the tokens lack, and how to go on.
async fn refused(executed: &Executed, playbook: &Playbook, tenant: &Tenant) -> Failure {
    let id = &executed.run;
    let mut message =
        format!("run {id} stopped: writes were refused wholesale, nothing more was sent");
    for refused in &executed.summary.refused {
        let step = StepKey::parse(&refused.step).and_then(|k| k.step(playbook));
        let why = match step {
            Some(step) => preflight::explain_refusal(tenant.directory.as_ref(), step).await,
            None => String::new(),
        };
        message.push_str(&format!(
            "\n  - step {}: refused for {} user(s), e.g. {}\n    {why}",
            refused.step, refused.users, refused.example
        ));
    }
    message.push_str(&format!(
        "\nNothing refused was applied. Grant what is missing, check with `resetctl doctor \
         --tenant {}`, then `resetctl run --resume {id}` makes the refused writes.",
        tenant.name
    ));
    Failure::new(Exit::Config, message)
}

/// The second Ctrl-C: mark the run `interrupted` (bounded in time: the operator wants out),
/// say how to resume, exit 130.
async fn abort(
    global: &GlobalArgs,
    lifecycle: &Lifecycle<SqliteStore>,
    id: &RunId,
    throttled: u64,
    read_backs: u64,
) -> ! {
    const LIMIT: Duration = Duration::from_secs(5);
    let marked = tokio::time::timeout(LIMIT, lifecycle.interrupt(id, throttled, read_backs)).await;
    let note = match marked {
        Ok(Ok(())) => format!("run {id} is marked interrupted"),
        Ok(Err(err)) => format!("run {id} could not be marked interrupted ({err})"),
        Err(_) => format!("run {id} could not be marked interrupted in {LIMIT:?}"),
    };
    let _ = tokio::time::timeout(LIMIT, lifecycle.close()).await;
    let message = format!("aborted: {note}; resume with `resetctl run --resume {id}`");
    eoutln!("\n{message}");
    if global.output == OutputFormat::Json {
        let failure = Failure::new(Exit::Interrupted, &message).about(id);
        outln!("{}", failure.json());
    }
    std::process::exit(Exit::Interrupted as i32);
}

/// The next Ctrl-C; never, when there is no listener.
async fn next_press(interrupts: &mut Option<Interrupts>) {
    if let Some(interrupts) = interrupts
        && interrupts.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}

/// SIGINT as a stream.
#[cfg(unix)]
type Interrupts = tokio::signal::unix::Signal;

/// Ctrl-C as a stream.
#[cfg(windows)]
type Interrupts = tokio::signal::windows::CtrlC;

/// SIGINT as a stream.
#[cfg(unix)]
fn interrupts() -> std::io::Result<Interrupts> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
}

/// Ctrl-C as a stream.
#[cfg(windows)]
fn interrupts() -> std::io::Result<Interrupts> {
    tokio::signal::windows::ctrl_c()
}

/// Progress off a terminal (a terminal gets [`Console::execution`]'s bars): the figures as
/// an info log line (target `progress`) every `every` seconds, JSON under `--log-format
/// json`, so a run under a scheduler or CI shows it is alive; `-q` filters them out.
fn spawn_progress(
    progress: Arc<Progress>,
    directory: Arc<dyn Directory>,
    id: &RunId,
    every: u64,
) -> Option<tokio::task::JoinHandle<()>> {
    if every == 0 {
        return None;
    }
    let period = Duration::from_secs(every);
    let throttled_before = directory.stats().throttled;
    let id = id.clone();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::time::sleep(period).await;
            let view = ProgressView {
                done: progress.users_done.load(Ordering::Relaxed),
                total: progress.users_total.load(Ordering::Relaxed),
                steps: progress.succeeded.load(Ordering::Relaxed)
                    + progress.failed.load(Ordering::Relaxed),
                failed: progress.failed.load(Ordering::Relaxed),
                throttled: directory.stats().throttled.saturating_sub(throttled_before),
                elapsed: started.elapsed(),
            };
            log_progress(&id, &view);
        }
    });
    Some(task)
}

/// One progress log line.
fn log_progress(id: &RunId, v: &ProgressView) {
    let secs = v.elapsed.as_secs_f64();
    let eta = (v.done > 0).then(|| secs / v.done as f64 * v.total.saturating_sub(v.done) as f64);
    tracing::info!(
        target: "progress",
        run = %id,
        users_done = v.done,
        users_total = v.total,
        steps = v.steps,
        steps_per_second = v.steps as f64 / secs.max(0.001),
        failed = v.failed,
        throttled = v.throttled,
        eta_seconds = eta,
        elapsed_seconds = secs,
        "Run progress."
    );
}

/// What the progress line shows, read from the live counters.
#[derive(Debug, Clone, Copy)]
struct ProgressView {
    /// Users whose pipeline finished.
    done: u64,
    /// Users to do.
    total: u64,
    /// Steps that ended (succeeded, failed or manual check).
    steps: u64,
    /// Steps that failed or went to manual check.
    failed: u64,
    /// Responses answered 429 so far in this run.
    throttled: u64,
    /// Time since the run started.
    elapsed: Duration,
}

/// The run's JSON document: its report, with the plan's figures when this command planned it.
fn summary_doc(executed: &Executed, plan_doc: Option<serde_json::Value>) -> serde_json::Value {
    let mut doc = serde_json::to_value(&executed.report).unwrap_or_default();
    doc["dry_run"] = false.into();
    doc["seconds_this_attempt"] = executed.elapsed.as_secs_f64().into();
    if let Some(plan) = plan_doc {
        doc["plan"] = plan;
    }
    doc
}

/// The end-of-run summary: the report as text, one line under `-q`, or one JSON document
/// (the report, with the plan's figures when this command planned it).
fn print_summary(console: Console, executed: &Executed, plan_doc: Option<serde_json::Value>) {
    let report = &executed.report;
    if console.json() {
        outln!("{}", summary_doc(executed, plan_doc));
    } else if console.quiet() {
        outln!("{}", one_line(executed));
    } else {
        outln!("\nrun {}", executed.run);
        out!("{}", report.text());
    }
}

/// The run's outcome in one line (`-q`).
fn one_line(executed: &Executed) -> String {
    let o = &executed.report.outcomes;
    format!(
        "run {}: {} step(s) succeeded, {} failed, {} to check by hand, {} not started \
         (results: {})",
        executed.run,
        o.succeeded,
        o.failed,
        o.manual_check,
        o.not_started,
        executed.results.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_without_failures_is_its_own_exit_code() {
        let counts = |failed, manual_check, not_started| StepCounts {
            succeeded: 1,
            failed,
            manual_check,
            not_started,
            ..StepCounts::default()
        };
        assert_eq!(exit_of(&counts(0, 0, 0), None), Exit::Success);
        assert_eq!(exit_of(&counts(0, 0, 3), Some("operator")), Exit::Stopped);
        assert_eq!(exit_of(&counts(1, 0, 3), Some("operator")), Exit::Partial);
        assert_eq!(exit_of(&counts(0, 1, 0), None), Exit::Partial);
        assert_eq!(
            exit_of(&counts(2, 0, 3), Some("circuit_breaker")),
            Exit::Partial
        );
    }
}
