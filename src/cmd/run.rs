//! `resetctl run`: plan, then a dry run (the default) or — with `--execute`, guards passed and
//! approvals given — the real thing; `--resume RUN_ID` continues a run that stopped.
//!
//! Ctrl-C once: no new user starts, users in flight finish; twice: exit at once (the journal
//! holds every intent, so `--resume` sorts out what was in flight).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use resetctl::directory::Directory;
use resetctl::engine::execute::{Progress, Summary};
use resetctl::engine::gate;
use resetctl::engine::journal_key::StepKey;
use resetctl::engine::lifecycle::{
    Cleared, ExecuteOptions, Executed, Lifecycle, PlanOptions, PlannedRun, ResumeCheck,
};
use resetctl::engine::notify::RecordOnly;
use resetctl::engine::preflight;
use resetctl::playbook::Playbook;
use resetctl::store::{Outcome, RunId, SqliteStore};
use resetctl::targeting::ResolveOptions;
use tokio::sync::watch;

use super::context::Context;
use super::tenant::Tenant;
use super::{CmdResult, Exit, Failure, validate};
use crate::cli::{GlobalArgs, OutputFormat, RunArgs};

/// `resetctl run`.
pub async fn run(global: &GlobalArgs, args: RunArgs) -> CmdResult {
    let context = Context::load(global)?;
    let lifecycle = context.lifecycle(args.store.clone()).await?;
    let result = match &args.resume {
        Some(id) => resume(global, &args, &context, &lifecycle, RunId(id.clone())).await,
        None => start(global, &args, &context, &lifecycle).await,
    };
    if let Err(err) = lifecycle.close().await {
        eprintln!("warning: audit trail: {err}");
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
    let source = validate::load_playbook(playbook_path)?;
    let requested = args.tenant.tenant.as_deref();
    let tenant = if args.execute {
        context.connect(requested).await?
    } else {
        context.connect_read_only(requested).await?
    };
    let result = plan_then_act(global, args, lifecycle, &tenant, &source).await;
    tenant.close().await;
    result
}

async fn plan_then_act(
    global: &GlobalArgs,
    args: &RunArgs,
    lifecycle: &Lifecycle<SqliteStore>,
    tenant: &Tenant,
    source: &resetctl::engine::lifecycle::PlaybookSource,
) -> CmdResult {
    let planned = lifecycle
        .plan(
            tenant.as_ref(),
            source,
            PlanOptions {
                resolve: ResolveOptions {
                    csv_override: args.targets.clone(),
                    skip_bad_rows: args.skip_bad_rows,
                },
                out: args.out.clone(),
                overwrite: args.overwrite,
                include_remediated: args.include_remediated,
            },
        )
        .await?;
    super::plan::print_plan(global, &planned, tenant.emulated);
    if !args.execute {
        dry_run(global, lifecycle, &planned);
        return Ok(Exit::Success);
    }
    // Until the communications module exists: notices are recorded, never sent.
    let cleared = lifecycle.gate(planned, &RecordOnly).await?;
    // Tokens, permissions and role before the first write, not 403s after it.
    lifecycle.preflight(&cleared, tenant.as_ref()).await?;
    if !args.yes {
        confirm(&cleared, tenant)?;
    }
    execute(global, args, lifecycle, tenant, cleared).await
}

/// List the calls `--execute` would make, write nothing.
fn dry_run(global: &GlobalArgs, lifecycle: &Lifecycle<SqliteStore>, planned: &PlannedRun) {
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
    if global.output == OutputFormat::Json {
        let calls: Vec<_> = would
            .iter()
            .map(|(upn, call)| serde_json::json!({"user": upn, "call": call}))
            .collect();
        println!("{}", serde_json::json!({"dry_run": true, "would": calls}));
        return;
    }
    println!();
    println!(
        "dry run: nothing was written. --execute would make these {} calls:",
        would.len()
    );
    const SHOWN: usize = 20;
    for (upn, call) in would.iter().take(SHOWN) {
        println!("  {upn:<40} {call}");
    }
    if would.len() > SHOWN {
        println!(
            "  ... and {} more (all in {})",
            would.len() - SHOWN,
            planned.out.join("plan.json").display()
        );
    }
    for refusal in &lifecycle.would_refuse(planned, &RecordOnly) {
        println!("note: --execute would be refused: {refusal}");
    }
    if planned.playbook.guards.approvals_required > 0 {
        println!(
            "approvals: {} required; approve with `resetctl runs approve {} --as NAME`",
            planned.playbook.guards.approvals_required, planned.run.id
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
    eprint!(
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
    let resumable = match lifecycle.resumable(&id).await? {
        ResumeCheck::Finished(_) => {
            println!("run {id} is already finished");
            return Ok(Exit::Success);
        }
        ResumeCheck::Resumable(resumable) => resumable,
    };
    let path = std::path::PathBuf::from(&resumable.run.playbook_path);
    let source = validate::load_playbook(&path)?;
    let tenant = context.connect(Some(&resumable.run.tenant)).await?;
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
        lifecycle.preflight(&cleared, tenant.as_ref()).await?;
        execute(global, args, lifecycle, &tenant, cleared).await
    }
    .await;
    tenant.close().await;
    result
}

/// Execute a cleared run with Ctrl-C handling and a progress line, then print the summary.
async fn execute(
    global: &GlobalArgs,
    args: &RunArgs,
    lifecycle: &Lifecycle<SqliteStore>,
    tenant: &Tenant,
    cleared: Cleared,
) -> CmdResult {
    let playbook = Arc::clone(&cleared.planned().playbook);
    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = spawn_interrupts(stop_tx, &cleared.planned().run.id);
    let progress = Arc::new(Progress::default());
    let ticker = spawn_progress(Arc::clone(&progress), Arc::clone(&tenant.directory));
    let executed = lifecycle
        .execute(
            cleared,
            tenant.as_ref(),
            ExecuteOptions {
                concurrency: args.concurrency,
                stop: stop_rx,
                progress,
                notifier: Arc::new(RecordOnly),
            },
        )
        .await;
    if let Some(signals) = signals {
        signals.abort();
    }
    if let Some(ticker) = ticker {
        ticker.abort();
        eprintln!();
    }
    let executed = executed?;
    print_summary(global, &executed);
    if !executed.summary.refused.is_empty() {
        return Err(refused(&executed, &playbook, tenant).await);
    }
    Ok(if executed.summary.complete_success() {
        Exit::Success
    } else {
        Exit::Partial
    })
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

/// Ctrl-C once: the engine starts no new user and the users in flight finish; twice: exit
/// 130 at once (the journal holds every intent, so `--resume` sorts out what was in flight).
///
/// One listener is registered before the run starts and serves both presses: a second
/// `tokio::signal::ctrl_c()` would listen only from its first poll, losing a press that
/// lands in between. `None` (with a warning) when the listener cannot be installed.
fn spawn_interrupts(stop: watch::Sender<bool>, id: &RunId) -> Option<tokio::task::JoinHandle<()>> {
    let mut interrupts = match interrupts() {
        Ok(interrupts) => interrupts,
        Err(err) => {
            eprintln!(
                "warning: cannot listen for Ctrl-C ({err}): it will kill the run \
                 (continue it with `resetctl run --resume {id}`)"
            );
            return None;
        }
    };
    let id = id.clone();
    Some(tokio::spawn(async move {
        if interrupts.recv().await.is_none() {
            return;
        }
        // Stop first, then say so: once this line is out, no new user starts.
        let _ = stop.send(true);
        eprintln!("\nstopping: no new users start; users in flight finish (Ctrl-C again to abort)");
        if interrupts.recv().await.is_some() {
            eprintln!("aborted: resume with `resetctl run --resume {id}`");
            std::process::exit(130);
        }
    }))
}

/// SIGINT as a stream.
#[cfg(unix)]
fn interrupts() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
}

/// Ctrl-C as a stream.
#[cfg(windows)]
fn interrupts() -> std::io::Result<tokio::signal::windows::CtrlC> {
    tokio::signal::windows::ctrl_c()
}

/// On a terminal, one status line a second on stderr: users done, steps/s, failures, 429s
/// (this run's, from the directory's client), ETA.
fn spawn_progress(
    progress: Arc<Progress>,
    directory: Arc<dyn Directory>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let throttled_before = directory.stats().throttled;
    Some(tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let view = ProgressView {
                done: progress.users_done.load(Ordering::Relaxed),
                total: progress.users_total.load(Ordering::Relaxed),
                steps: progress.succeeded.load(Ordering::Relaxed)
                    + progress.failed.load(Ordering::Relaxed),
                failed: progress.failed.load(Ordering::Relaxed),
                throttled: directory.stats().throttled.saturating_sub(throttled_before),
                elapsed: started.elapsed(),
            };
            eprint!("\r{}   ", progress_line(&view));
            let _ = std::io::stderr().flush();
        }
    }))
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

/// The progress line (without the carriage return that redraws it).
fn progress_line(v: &ProgressView) -> String {
    let secs = v.elapsed.as_secs_f64();
    let rate = v.steps as f64 / secs.max(0.001);
    let eta = if v.done > 0 {
        let eta = secs / v.done as f64 * v.total.saturating_sub(v.done) as f64;
        format!("{eta:.0}s")
    } else {
        "?".to_owned()
    };
    format!(
        "  users {}/{}  steps/s {rate:.1}  failed {}  429s {}  eta {eta}",
        v.done, v.total, v.failed, v.throttled
    )
}

fn print_summary(global: &GlobalArgs, executed: &Executed) {
    let Executed {
        run,
        summary,
        elapsed,
        results,
    } = executed;
    if global.output == OutputFormat::Json {
        println!("{}", summary_json(run, summary, *elapsed, results));
    } else {
        print!("{}", summary_text(run, summary, *elapsed, results));
    }
}

/// The end-of-run summary for `--output json`.
fn summary_json(
    id: &RunId,
    summary: &Summary,
    elapsed: Duration,
    results: &std::path::Path,
) -> serde_json::Value {
    serde_json::json!({
        "run": id,
        "users_done": summary.users_done,
        "users_not_started": summary.users_not_started,
        "succeeded": summary.count(Outcome::Succeeded),
        "failed": summary.count(Outcome::Failed),
        "manual_check": summary.count(Outcome::ManualCheck),
        "skipped": summary.count(Outcome::Skipped),
        "tripped": summary.tripped,
        "stopped": summary.stopped,
        "refused": summary.refused,
        "throttled": summary.throttled,
        "seconds": elapsed.as_secs_f64(),
        "results": results,
    })
}

/// The end-of-run summary as text, one line per figure.
fn summary_text(
    id: &RunId,
    summary: &Summary,
    elapsed: Duration,
    results: &std::path::Path,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("\n");
    let ending = if summary.complete_success() {
        "finished"
    } else if !summary.refused.is_empty() {
        "stopped: a step's writes were refused wholesale, no new user started"
    } else if summary.stopped {
        "stopped: users in flight finished, no new user started"
    } else {
        "ended with problems"
    };
    let _ = writeln!(out, "run {id} {ending}");
    let _ = writeln!(out, "  users done    {}", summary.users_done);
    if summary.users_not_started > 0 {
        let _ = writeln!(
            out,
            "  not started   {} (resume with `resetctl run --resume {id}`)",
            summary.users_not_started
        );
    }
    let _ = writeln!(out, "  succeeded     {}", summary.count(Outcome::Succeeded));
    let _ = writeln!(out, "  failed        {}", summary.count(Outcome::Failed));
    let _ = writeln!(
        out,
        "  manual check  {}",
        summary.count(Outcome::ManualCheck)
    );
    let _ = writeln!(out, "  skipped       {}", summary.count(Outcome::Skipped));
    let _ = writeln!(
        out,
        "  429s          {} (Graph throttled; each was waited out and re-sent)",
        summary.throttled
    );
    if summary.tripped {
        let _ = writeln!(
            out,
            "  circuit breaker tripped: the error rate passed the playbook's threshold"
        );
    }
    let _ = writeln!(out, "  time          {:.1} s", elapsed.as_secs_f64());
    let _ = writeln!(out, "  results       {}", results.display());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_users_rate_failures_429s_and_eta() {
        let view = ProgressView {
            done: 25,
            total: 100,
            steps: 50,
            failed: 2,
            throttled: 7,
            elapsed: Duration::from_secs(10),
        };
        assert_eq!(
            progress_line(&view),
            "  users 25/100  steps/s 5.0  failed 2  429s 7  eta 30s"
        );
        let start = ProgressView {
            done: 0,
            steps: 0,
            failed: 0,
            throttled: 0,
            ..view
        };
        assert!(
            progress_line(&start).ends_with("429s 0  eta ?"),
            "{}",
            progress_line(&start)
        );
    }

    #[test]
    fn the_summary_reports_429s_in_text_and_json() {
        let summary = Summary {
            users_done: 3,
            users_not_started: 2,
            stopped: true,
            throttled: 12,
            ..Summary::default()
        };
        let id = RunId("r1".into());
        let results = std::path::Path::new("results.csv");
        let json = summary_json(&id, &summary, Duration::from_secs(1), results);
        assert_eq!(json["throttled"], 12);
        assert_eq!(json["stopped"], true);
        let text = summary_text(&id, &summary, Duration::from_secs(1), results);
        assert!(text.contains("\n  429s          12 "), "{text}");
        assert!(text.contains("run r1 stopped"), "{text}");
        assert!(
            text.contains("not started   2 (resume with `resetctl run --resume r1`)"),
            "{text}"
        );
    }
}
