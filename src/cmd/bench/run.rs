//! `resetctl bench run`: a whole mass reset against the emulated tenant, and planning at
//! a million users.
//!
//! 1. Execution: N users (default 10,000), scramble + revoke, the emulator at 100 ms mean
//!    latency with Graph's real quotas, both divided by a time scale so the benchmark takes
//!    seconds; prints wall time against the quota bound (2 writes × users / 20 per s, scaled),
//!    the share of requests answered 429, peak RSS, and the journal's share of pipeline time.
//! 2. Planning (`bench/plan.rs`, also `resetctl bench plan` alone).
//!
//! Everything runs in this process (emulator included), so RSS figures include the emulator.

use std::sync::Arc;
use std::time::Instant;

use resetctl::audit::{AuditConfig, AuditHandle};
use resetctl::emulator::EmulatorConfig;
use resetctl::engine::execute::Progress;
use resetctl::engine::gate;
use resetctl::engine::lifecycle::{ExecuteOptions, Lifecycle, PlanOptions, PlaybookSource, Trail};
use resetctl::engine::notify::RecordOnly;
use resetctl::engine::operator::{Operator, OperatorName};
use resetctl::playbook;
use resetctl::store::{Outcome, SqliteStore, TimedStore};
use tokio::sync::watch;

use super::{Figures, ScratchDir};
use crate::cmd::tenant;
use crate::cmd::{CmdResult, Exit, Failure};

/// Time scale of the execution benchmark: quotas and latency run this much faster.
const TIME_SCALE: f64 = 50.0;
/// Mean latency before scaling (100 ms: a typical Graph write latency).
const LATENCY_MS: u64 = 100;
fn fail(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Config, format!("bench run: {what}: {e}"))
}

/// Run both benchmarks; `users` sizes the execution one.
pub async fn run(figures: &mut Figures, users: Option<u64>) -> CmdResult {
    execution(figures, users.unwrap_or(10_000) as u32).await?;
    super::plan::run(figures, None).await
}

const PLAYBOOK: &str = "name: bench
targets: [all_users: {}]
exclude: { upn_patterns: ['svc-*@*', 'bg-*@*'] }
guards: { max_users: 2000000, max_fraction_of_tenant: 1.0, stop_when_error_rate_above: 0.5, approvals_required: 0 }
disabled_users: skip
steps:
  - reset_password: { mode: scramble, force_change: true, require_mfa: true }
  - revoke_sessions
";

async fn execution(figures: &mut Figures, users: u32) -> Result<(), Failure> {
    let dir = ScratchDir::new("run")?;
    let mut config = EmulatorConfig::seeded(users, 42);
    config.time_scale = TIME_SCALE;
    config.latency_ms = LATENCY_MS;
    let tenant = tenant::emulated("bench", config).await?;
    let inspect = tenant
        .emulator
        .as_ref()
        .map(|e| e.info().inspect_url.clone())
        .unwrap_or_default();
    let loaded = playbook::load_str("bench.yaml", PLAYBOOK).map_err(|e| fail("playbook", e))?;
    let source = PlaybookSource {
        playbook: Arc::new(loaded.playbook),
        path: "bench.yaml".into(),
    };
    let store = Arc::new(TimedStore::new(
        SqliteStore::open(&dir.path().join("runs.sqlite")).map_err(|e| fail("store", e))?,
    ));
    let trail = AuditConfig::new(dir.path().join("audit.jsonl"));
    let audit = AuditHandle::open(&trail)
        .await
        .map_err(|e| fail("audit", e))?;
    let operator = Operator::new(
        OperatorName::parse("bench").map_err(|e| fail("operator", e))?,
        "bench run",
    );
    // The same lifecycle as `resetctl run`: plan, store, gate, execute, results.csv.
    let lifecycle = Lifecycle::new(
        Arc::clone(&store),
        Trail {
            handle: audit,
            config: trail,
        },
        operator,
        dir.path().join("runs"),
    );
    let planned = lifecycle
        .plan(tenant.as_ref(), &source, PlanOptions::default())
        .await
        .map_err(|e| fail("plan", e))?;
    let automated = gate::automated(&planned.plan);
    let writes = planned.plan.estimate.directory_writes;
    let cleared = lifecycle
        .gate(planned, &RecordOnly)
        .await
        .map_err(|e| fail("gate", e))?;
    let (_stop, stop) = watch::channel(false);
    let concurrency = 64;
    let started = Instant::now();
    let executed = lifecycle
        .execute(
            cleared,
            tenant.as_ref(),
            ExecuteOptions {
                concurrency,
                stop,
                progress: Arc::new(Progress::default()),
                notifier: Arc::new(RecordOnly),
            },
        )
        .await
        .map_err(|e| fail("execute", e))?;
    let summary = executed.summary;
    let wall = started.elapsed();
    let _ = lifecycle.close().await;

    let stats: serde_json::Value = reqwest::get(format!("{inspect}/stats"))
        .await
        .map_err(|e| fail("stats", e))?
        .json()
        .await
        .map_err(|e| fail("stats", e))?;
    tenant.close().await;
    let requests = stats["requests"].as_u64().unwrap_or(0);
    let throttled = stats["throttled"].as_u64().unwrap_or(0);
    let quota_per_s = 20.0 * TIME_SCALE;
    let bound = writes as f64 / quota_per_s;
    let journal = store.busy();
    let wall_s = wall.as_secs_f64();
    let succeeded = summary.count(Outcome::Succeeded);
    let failed = summary.count(Outcome::Failed) + summary.count(Outcome::ManualCheck);
    let journal_mean_ms = 1e3 * journal.total.as_secs_f64() / journal.calls.max(1) as f64;
    let journal_share = journal.total.as_secs_f64() / (wall_s * concurrency as f64);
    let peak = peak_rss_mb();
    figures.line(format_args!(
        "bench run: {users} users, scramble + revoke, emulator latency {LATENCY_MS} ms, Graph quotas, time scale {TIME_SCALE}"
    ));
    figures.line(format_args!(
        "  automated users       {automated} ({writes} directory writes)"
    ));
    figures.line(format_args!(
        "  succeeded / failed    {succeeded} / {failed}"
    ));
    figures.line(format_args!(
        "  wall time             {wall_s:.2} s  (quota bound {bound:.2} s: {:.1} % of the quota's pace)",
        100.0 * bound / wall_s
    ));
    figures.line(format_args!(
        "  in real time          {:.0} s for {writes} writes = {:.2} writes/s against Graph's 20/s",
        wall_s * TIME_SCALE,
        writes as f64 / (wall_s * TIME_SCALE)
    ));
    figures.line(format_args!(
        "  429 share             {throttled} of {requests} requests = {:.2} %",
        100.0 * throttled as f64 / requests.max(1) as f64
    ));
    figures.line(format_args!(
        "  journal               {} calls, {journal_mean_ms:.2} ms mean, {:.1} % of pipeline time ({concurrency} pipelines)",
        journal.calls,
        100.0 * journal_share
    ));
    figures.line(format_args!(
        "  peak RSS              {peak} MB (process, emulator included)"
    ));
    figures.set(
        "run",
        serde_json::json!({
            "users": users,
            "automated": automated,
            "directory_writes": writes,
            "succeeded": succeeded,
            "failed": failed,
            "wall_seconds": wall_s,
            "quota_bound_seconds": bound,
            "time_scale": TIME_SCALE,
            "latency_ms": LATENCY_MS,
            "requests": requests,
            "throttled": throttled,
            "journal_calls": journal.calls,
            "journal_mean_ms": journal_mean_ms,
            "journal_share": journal_share,
            "concurrency": concurrency,
            "peak_rss_mb": peak,
        }),
    );
    Ok(())
}

/// A field of `/proc/self/status` in MB (Linux; 0 elsewhere).
fn status_mb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

pub(super) fn peak_rss_mb() -> u64 {
    status_mb("VmHWM:")
}
