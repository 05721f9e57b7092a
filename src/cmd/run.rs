//! `resetctl run`: plan, then a dry run (the default) or — with `--execute`, guards passed and
//! approvals given — the real thing; `--resume RUN_ID` continues a run that stopped.
//!
//! Ctrl-C once: no new user starts, users in flight finish; twice: exit at once (the journal
//! holds every intent, so `--resume` sorts out what was in flight).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use resetctl::audit::{self, AuditHandle, Details, Event};
use resetctl::directory::Directory;
use resetctl::engine::execute::{self, Execution, Progress, Summary};
use resetctl::engine::gate::{self, Refusal};
use resetctl::engine::notify::RecordOnly;
use resetctl::engine::plan::Plan;
use resetctl::playbook::Playbook;
use resetctl::report;
use resetctl::store::{Outcome, RunId, RunRecord, RunStatus, RunStore, SqliteStore};
use resetctl::targeting::ResolveOptions;
use tokio::sync::watch;

use super::plan::{self as planning, Planned, record};
use super::tenant::{self, Tenant};
use super::{CmdResult, Exit, Failure, paths, validate};
use crate::cli::{GlobalArgs, OutputFormat, RunArgs};

/// `resetctl run`.
pub async fn run(global: &GlobalArgs, args: RunArgs) -> CmdResult {
    let store = Arc::new(planning::open_store(args.store.clone())?);
    let audit = planning::open_audit(&store).await?;
    let result = match &args.resume {
        Some(id) => resume(global, &args, &store, &audit, RunId(id.clone())).await,
        None => start(global, &args, &store, &audit).await,
    };
    if let Err(err) = audit.close().await {
        eprintln!("warning: audit trail: {err}");
    }
    result
}

async fn start(
    global: &GlobalArgs,
    args: &RunArgs,
    store: &Arc<SqliteStore>,
    audit: &AuditHandle,
) -> CmdResult {
    let Some(playbook_path) = args.playbook.as_deref() else {
        return Err(Failure::new(
            Exit::Invalid,
            "a playbook is needed (or --resume RUN_ID)",
        ));
    };
    let tenant = tenant::connect(global, args.tenant.tenant.as_deref()).await?;
    let planned = planning::plan_and_store(
        &tenant,
        store,
        audit,
        playbook_path,
        ResolveOptions {
            csv_override: args.targets.clone(),
            skip_bad_rows: args.skip_bad_rows,
        },
        args.out.clone(),
    )
    .await;
    let planned = match planned {
        Ok(planned) => planned,
        Err(failure) => {
            tenant.close().await;
            return Err(failure);
        }
    };
    planning::print_plan(global, &planned);
    let result = if args.execute {
        gate_and_execute(global, args, store, audit, &tenant, planned).await
    } else {
        dry_run(global, &planned);
        Ok(Exit::Success)
    };
    tenant.close().await;
    result
}

/// List the calls `--execute` would make, write nothing.
fn dry_run(global: &GlobalArgs, planned: &Planned) {
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
    let refusals = gate::check_guards(&planned.playbook, plan, &RecordOnly);
    for refusal in &refusals {
        println!("note: --execute would be refused: {refusal}");
    }
    if planned.playbook.guards.approvals_required > 0 {
        println!(
            "approvals: {} required; approve with `resetctl runs approve {} --as NAME`",
            planned.playbook.guards.approvals_required, planned.run.id
        );
    }
}

/// Distinct approvals of `hash`, from every run that planned it.
async fn approvals_of(
    store: &SqliteStore,
    hash: &str,
) -> Result<Vec<resetctl::store::Approval>, Failure> {
    let mut all = Vec::new();
    let runs = store
        .runs()
        .await
        .map_err(|e| Failure::new(Exit::Config, e))?;
    for run in runs.iter().filter(|r| r.plan_hash == hash) {
        all.extend(
            store
                .approvals(&run.id)
                .await
                .map_err(|e| Failure::new(Exit::Config, e))?,
        );
    }
    Ok(all)
}

async fn gate_and_execute(
    global: &GlobalArgs,
    args: &RunArgs,
    store: &Arc<SqliteStore>,
    audit: &AuditHandle,
    tenant: &Tenant,
    planned: Planned,
) -> CmdResult {
    // A plan whose earlier execution died must be resumed, not started again: a second run
    // of the same plan would write to every user its predecessor already did.
    let runs = store
        .runs()
        .await
        .map_err(|e| Failure::new(Exit::Config, e))?;
    if let Some(unfinished) = runs.iter().find(|r| {
        r.plan_hash == planned.run.plan_hash
            && matches!(r.status, RunStatus::Running | RunStatus::Stopped)
    }) {
        return Err(Failure::new(
            Exit::Refused,
            format!(
                "run {} of this exact plan did not finish; continue it with `resetctl run --resume {}`",
                unfinished.id, unfinished.id
            ),
        ));
    }
    let mut refusals = gate::check_guards(&planned.playbook, &planned.plan, &RecordOnly);
    let approvals = approvals_of(store, &planned.run.plan_hash).await?;
    refusals.extend(gate::check_approvals(
        &planned.playbook,
        &planned.run.plan_hash,
        &approvals,
    ));
    if !refusals.is_empty() {
        return refuse(audit, &planned.run, &refusals).await;
    }
    if !args.yes {
        confirm(&planned, tenant)?;
    }
    let Planned {
        playbook,
        plan,
        run,
        out,
        ..
    } = planned;
    execute_run(
        global,
        args,
        store,
        audit,
        tenant,
        Arc::new(playbook),
        plan,
        run,
        out,
    )
    .await
}

async fn refuse(audit: &AuditHandle, run: &RunRecord, refusals: &[Refusal]) -> CmdResult {
    let reasons: Vec<String> = refusals.iter().map(ToString::to_string).collect();
    let event = Details::new()
        .with("reasons", reasons.join("; ").as_str())
        .and_then(|d| d.with("plan_hash", run.plan_hash.as_str()))
        .and_then(|details| {
            Event::new(
                "resetctl",
                "run.refused",
                run.id.0.as_str(),
                audit::Outcome::Refused,
            )
            .map(|e| e.with_details(details))
        });
    record(audit, event).await?;
    let exit = Exit::Refused;
    Err(Failure::new(
        exit,
        format!(
            "run {} refused, nothing was written:\n  - {}",
            run.id,
            reasons.join("\n  - ")
        ),
    ))
}

/// Without `--yes`, an operator at a terminal types the number of users; anywhere else the
/// run is refused (a script must say `--yes`).
fn confirm(planned: &Planned, tenant: &Tenant) -> Result<(), Failure> {
    let count = gate::automated(&planned.plan);
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
    store: &Arc<SqliteStore>,
    audit: &AuditHandle,
    id: RunId,
) -> CmdResult {
    let run = store
        .run(&id)
        .await
        .map_err(|e| Failure::new(Exit::Invalid, e))?;
    if run.status == RunStatus::Finished {
        println!("run {id} is already finished");
        return Ok(Exit::Success);
    }
    if run.status == RunStatus::Planned {
        return Err(Failure::new(
            Exit::Invalid,
            format!("run {id} was never executed; start it with `resetctl run PLAYBOOK --execute`"),
        ));
    }
    let plan_json = store
        .plan_json(&id)
        .await
        .map_err(|e| Failure::new(Exit::Invalid, e))?;
    let plan: Plan = serde_json::from_str(&plan_json).map_err(|e| {
        Failure::new(
            Exit::Invalid,
            format!("run {id}: stored plan unreadable: {e}"),
        )
    })?;
    let playbook_path = std::path::PathBuf::from(&run.playbook_path);
    let (loaded, bytes) = validate::load_playbook(&playbook_path)?;
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    if sha != plan.playbook_sha256 {
        return Err(Failure::new(
            Exit::Invalid,
            format!(
                "{} changed since run {id} was planned; resume needs the same playbook",
                playbook_path.display()
            ),
        ));
    }
    let tenant = tenant::connect(global, Some(&run.tenant)).await?;
    if tenant.emulator.is_some() {
        tenant.close().await;
        return Err(Failure::new(
            Exit::Config,
            "runs on the built-in demo tenant cannot be resumed: it starts afresh each time",
        ));
    }
    let event = Event::new(
        "resetctl",
        "run.resume",
        id.0.as_str(),
        audit::Outcome::Attempt,
    );
    record(audit, event).await?;
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => paths::data_dir()?.join("runs").join(&id.0),
    };
    let result = execute_run(
        global,
        args,
        store,
        audit,
        &tenant,
        Arc::new(loaded.playbook),
        Arc::new(plan),
        run,
        out,
    )
    .await;
    tenant.close().await;
    result
}

#[allow(
    clippy::too_many_arguments,
    reason = "the pieces of one run, assembled once"
)]
async fn execute_run(
    global: &GlobalArgs,
    args: &RunArgs,
    store: &Arc<SqliteStore>,
    audit: &AuditHandle,
    tenant: &Tenant,
    playbook: Arc<Playbook>,
    plan: Arc<Plan>,
    run: RunRecord,
    out: std::path::PathBuf,
) -> CmdResult {
    store
        .set_status(&run.id, RunStatus::Running, Timestamp::now())
        .await
        .map_err(|e| Failure::new(Exit::Config, e))?;
    let event = Details::new()
        .with("plan_hash", run.plan_hash.as_str())
        .and_then(|d| d.with("users", gate::automated(&plan) as u64))
        .and_then(|details| {
            Event::new(
                "resetctl",
                "run.execute",
                run.id.0.as_str(),
                audit::Outcome::Attempt,
            )
            .map(|e| e.with_details(details))
        });
    record(audit, event).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = spawn_interrupts(stop_tx, &run.id);
    let progress = Arc::new(Progress::default());
    let ticker = spawn_progress(Arc::clone(&progress), Arc::clone(&tenant.directory));
    let started = Instant::now();
    let summary = execute::execute(Execution {
        directory: Arc::clone(&tenant.directory),
        store: Arc::clone(store),
        audit: audit.clone(),
        playbook,
        plan: Arc::clone(&plan),
        run: run.id.clone(),
        actor: "resetctl".into(),
        concurrency: args.concurrency,
        stop: stop_rx,
        progress: Arc::clone(&progress),
        // Until the communications module exists: notices are recorded, never sent.
        notifier: Arc::new(RecordOnly),
    })
    .await;
    if let Some(signals) = signals {
        signals.abort();
    }
    if let Some(ticker) = ticker {
        ticker.abort();
        eprintln!();
    }
    let summary = summary.map_err(planning::engine_failure)?;
    let elapsed = started.elapsed();
    let status = if summary.users_not_started == 0 {
        RunStatus::Finished
    } else {
        RunStatus::Stopped
    };
    store
        .set_status(&run.id, status, Timestamp::now())
        .await
        .map_err(|e| Failure::new(Exit::Config, e))?;
    std::fs::create_dir_all(&out)
        .map_err(|e| Failure::new(Exit::Config, format!("{}: {e}", out.display())))?;
    let results_path = out.join("results.csv");
    report::write_results(&plan, &summary.results, &results_path)
        .map_err(|e| Failure::new(Exit::Config, e))?;
    let event = Details::new()
        .with("succeeded", summary.count(Outcome::Succeeded) as u64)
        .and_then(|d| d.with("failed", summary.count(Outcome::Failed) as u64))
        .and_then(|d| d.with("manual_check", summary.count(Outcome::ManualCheck) as u64))
        .and_then(|d| d.with("not_started", summary.users_not_started as u64))
        .and_then(|d| d.with("tripped", summary.tripped))
        .and_then(|details| {
            let outcome = if summary.complete_success() {
                audit::Outcome::Success
            } else {
                audit::Outcome::Failure
            };
            Event::new("resetctl", "run.end", run.id.0.as_str(), outcome)
                .map(|e| e.with_details(details))
        });
    record(audit, event).await?;
    print_summary(global, &run.id, &summary, elapsed, &results_path);
    Ok(if summary.complete_success() {
        Exit::Success
    } else {
        Exit::Partial
    })
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

fn print_summary(
    global: &GlobalArgs,
    id: &RunId,
    summary: &Summary,
    elapsed: Duration,
    results: &std::path::Path,
) {
    if global.output == OutputFormat::Json {
        println!("{}", summary_json(id, summary, elapsed, results));
    } else {
        print!("{}", summary_text(id, summary, elapsed, results));
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
