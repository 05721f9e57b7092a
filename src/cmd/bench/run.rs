//! `resetctl bench run`: a whole mass reset against the emulated tenant, and planning at
//! a million users.
//!
//! 1. Execution: N users (default 10,000), scramble + revoke, one app or a pool (`--apps`),
//!    the emulator at `--latency-ms` (default 100) mean latency with Graph's real quotas,
//!    both divided by a time scale so the benchmark takes seconds, at most `--concurrency`
//!    pipelines; then a second run right after the first, from a new connection (a fresh
//!    throttle governor) over the same run store. For each run it prints the time in real
//!    terms against the token-bucket bound `max(0, W − L) / r` (W writes, r refill of the app
//!    or pool in use, L its level at the start: the capacity C for the first run, what the
//!    first left for the second) and against the latency floor, and the share of requests
//!    answered 429; then peak RSS and how busy the journal was.
//! 2. Planning (`bench/plan.rs`, also `resetctl bench plan` alone).
//!
//! Everything runs in this process (emulator included), so RSS figures include the emulator.

use std::sync::Arc;
use std::time::Instant;

use resetctl::audit::{AuditConfig, AuditHandle};
use resetctl::config::TenantSize;
use resetctl::emulator::EmulatorConfig;
use resetctl::engine::execute::Progress;
use resetctl::engine::gate;
use resetctl::engine::lifecycle::{ExecuteOptions, Lifecycle, PlanOptions, PlaybookSource, Trail};
use resetctl::engine::notify::RecordOnly;
use resetctl::engine::operator::{Operator, OperatorName};
use resetctl::playbook;
use resetctl::store::{Outcome, SqliteStore, TimedStore};
use resetctl::throttle::{Quotas, Rate};
use tokio::sync::watch;

use super::{Figures, ScratchDir};
use crate::cli::BenchArgs;
use crate::cmd::tenant;
use crate::cmd::{CmdResult, Exit, Failure};

fn fail(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Config, format!("bench run: {what}: {e}"))
}

/// Run both benchmarks: `--n` sizes the execution one, `--apps` its credential pool,
/// `--time-scale` how much faster than real time it runs (a build's own CPU time is scaled
/// up by as much in the real-time figures: use 1 where latency, not the quota, bounds the
/// run); `--execution-only` leaves planning out.
pub async fn run(figures: &mut Figures, args: &BenchArgs) -> CmdResult {
    let users = args.n.unwrap_or(10_000);
    let apps = args.apps.unwrap_or(1);
    if !(1..=2_000_000).contains(&users) {
        return Err(Failure::new(
            Exit::Invalid,
            "--n must be between 1 and 2,000,000",
        ));
    }
    if !(1..=16).contains(&apps) {
        return Err(Failure::new(
            Exit::Invalid,
            "--apps must be between 1 and 16",
        ));
    }
    let scale = args.time_scale;
    if !(scale.is_finite() && scale >= 1.0) {
        return Err(Failure::new(
            Exit::Invalid,
            "--time-scale must be a number of at least 1",
        ));
    }
    let shape = Shape {
        latency_ms: args.latency_ms,
        pipelines: args.concurrency.max(1),
    };
    execution(figures, users as u32, apps, scale, shape).await?;
    if args.execution_only {
        return Ok(Exit::Success);
    }
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

/// What one run did and how long it took, in real-time terms.
struct RunFigures {
    automated: usize,
    writes: u64,
    succeeded: usize,
    failed: usize,
    /// Wall time of the execution, emulated seconds.
    wall: f64,
    /// When the execution started.
    started: Instant,
    /// Requests and 429s the emulator counted during the execution.
    requests: u64,
    throttled: u64,
}

/// The lower bounds a run's wall time is measured against, in real seconds.
struct Bounds {
    /// Token-bucket bound of the app or pool in use: `max(0, W − L) / r` for every bucket
    /// the writes draw on (the pool's app buckets together, the tenant's), the largest.
    bucket: f64,
    /// The same for the tenant bucket alone (what a pool is measured against).
    tenant: f64,
    /// Latency floor: every request of the run at the mean latency, as many at once as
    /// the run may have in flight (the throttle's ceiling, or the pipelines if fewer).
    latency: f64,
}

impl Bounds {
    /// The bounds of `run`, after `before` (an earlier run's writes and how many real
    /// seconds before this one it started): the buckets start at what it left, `C − W₀ + r·Δ`
    /// capped at `C`, which counts its writes as made at its start and so never understates
    /// the level (nor overstates the bound).
    fn of(run: &RunFigures, apps: u32, shape: &Shape, before: Option<(u64, f64)>) -> Bounds {
        let q = Quotas::graph_defaults(TenantSize::default(), 1.0);
        let per_sec = |r: Rate| f64::from(r.count) / r.window.as_secs_f64();
        let w = run.writes as f64;
        let n = f64::from(apps);
        let level = |capacity: f64, refill: f64| match before {
            Some((writes, ago)) => (capacity - writes as f64 + refill * ago).clamp(0.0, capacity),
            None => capacity,
        };
        let (app_c, app_r) = (n * f64::from(q.app_write.count), n * per_sec(q.app_write));
        let (ten_c, ten_r) = (f64::from(q.tenant_write.count), per_sec(q.tenant_write));
        let pool = (w - level(app_c, app_r)).max(0.0) / app_r;
        let tenant = (w - level(ten_c, ten_r)).max(0.0) / ten_r;
        Bounds {
            bucket: pool.max(tenant),
            tenant,
            latency: run.requests as f64 * (shape.latency_ms as f64 / 1e3)
                / shape.in_flight(&q) as f64,
        }
    }
}

/// The latency and concurrency a benchmark runs at.
struct Shape {
    /// Mean latency of the emulator, real-time milliseconds.
    latency_ms: u64,
    /// The most users' pipelines at once (`resetctl run --concurrency`).
    pipelines: usize,
}

impl Shape {
    /// The most requests the run can have in flight: the throttle's ceiling, or the
    /// pipelines if fewer (each sends one request at a time).
    fn in_flight(&self, q: &Quotas) -> usize {
        self.pipelines.min(q.max_in_flight as usize).max(1)
    }
}

async fn execution(
    figures: &mut Figures,
    users: u32,
    apps: u32,
    scale: f64,
    shape: Shape,
) -> Result<(), Failure> {
    let dir = ScratchDir::new("run")?;
    let mut config = EmulatorConfig::seeded(users, 42);
    config.time_scale = scale;
    config.latency_ms = shape.latency_ms;
    config.apps = apps;
    let tenant = tenant::emulated("bench", config).await?;
    let info = tenant
        .emulator
        .as_ref()
        .map(|e| e.info().clone())
        .ok_or_else(|| fail("emulator", "not started"))?;
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
    figures.line(format_args!(
        "bench run: {users} users, scramble + revoke, {apps} app{}, emulator latency {} ms, Graph quotas, \
         at most {} pipelines, time scale {scale} (figures in real time: emulated seconds × {scale})",
        if apps == 1 { "" } else { "s" },
        shape.latency_ms,
        shape.pipelines,
    ));
    let first = one_run(
        &lifecycle,
        &tenant,
        &source,
        &info.inspect_url,
        false,
        &shape,
    )
    .await?;
    // The second run starts right after the first, from a new connection (a new process's
    // throttle governor), with the same run store: a second wave over the same users.
    let again = tenant::attach("bench", &info, scale)?;
    let second = one_run(&lifecycle, &again, &source, &info.inspect_url, true, &shape).await?;
    let journal = store.busy();
    let _ = lifecycle.close().await;
    tenant.close().await;

    let mut runs = Vec::new();
    let gap = second.started.duration_since(first.started).as_secs_f64() * scale;
    for (label, run, before) in [
        ("first run", &first, None),
        (
            "second run, right after",
            &second,
            Some((first.writes, gap)),
        ),
    ] {
        let bounds = Bounds::of(run, apps, &shape, before);
        let real = run.wall * scale;
        let share = run.throttled as f64 / run.requests.max(1) as f64;
        figures.line(format_args!("  {label}:"));
        figures.line(format_args!(
            "    automated users       {} ({} directory writes); succeeded / failed {} / {}",
            run.automated, run.writes, run.succeeded, run.failed
        ));
        figures.line(format_args!(
            "    time                  {real:.1} s real ({:.2} s emulated)",
            run.wall
        ));
        figures.line(format_args!(
            "    bucket bound          {:.1} s (max(0, W − L) / r of the {}, L its level at the start; the tenant bucket's alone {:.1} s): {}",
            bounds.bucket,
            if apps == 1 { "app" } else { "pool" },
            bounds.tenant,
            ratio(real, bounds.bucket, "bound")
        ));
        figures.line(format_args!(
            "    latency floor         {:.1} s ({} requests × {} ms / {} in flight): {}",
            bounds.latency,
            run.requests,
            shape.latency_ms,
            shape.in_flight(&Quotas::graph_defaults(TenantSize::default(), 1.0)),
            ratio(real, bounds.latency, "floor")
        ));
        figures.line(format_args!(
            "    429 share             {} of {} requests = {:.2} %",
            run.throttled,
            run.requests,
            100.0 * share
        ));
        runs.push(serde_json::json!({
            "run": label,
            "automated": run.automated,
            "directory_writes": run.writes,
            "succeeded": run.succeeded,
            "failed": run.failed,
            "wall_seconds": run.wall,
            "real_seconds": real,
            "bucket_bound_seconds": bounds.bucket,
            "tenant_bucket_bound_seconds": bounds.tenant,
            "latency_floor_seconds": bounds.latency,
            "requests": run.requests,
            "throttled": run.throttled,
            "throttled_share": share,
        }));
    }
    let wall: f64 = first.wall + second.wall;
    let journal_mean_ms = 1e3 * journal.total.as_secs_f64() / journal.calls.max(1) as f64;
    // Journal calls in progress on average, over the time of both runs.
    let journal_busy = journal.total.as_secs_f64() / wall;
    let peak = peak_rss_mb();
    figures.line(format_args!(
        "  journal               {} calls, {journal_mean_ms:.2} ms mean, {journal_busy:.1} in progress on average",
        journal.calls,
    ));
    figures.line(format_args!(
        "  peak RSS              {peak} MB (process, emulator included)"
    ));
    figures.set(
        "run",
        serde_json::json!({
            "users": users,
            "apps": apps,
            "time_scale": scale,
            "latency_ms": shape.latency_ms,
            "concurrency": shape.pipelines,
            "runs": runs,
            "journal_calls": journal.calls,
            "journal_mean_ms": journal_mean_ms,
            "journal_busy": journal_busy,
            "peak_rss_mb": peak,
        }),
    );
    Ok(())
}

/// `1.04 × the bound`, or nothing to compare with.
fn ratio(real: f64, bound: f64, what: &str) -> String {
    if bound > 0.0 {
        format!("{:.2} × the {what}", real / bound)
    } else {
        format!("no {what} (under one bucket)")
    }
}

/// Plan, gate and execute the bench playbook once on `tenant`; the emulator's counters
/// before and after the execution give its requests and 429s.
async fn one_run(
    lifecycle: &Lifecycle<TimedStore<SqliteStore>>,
    tenant: &tenant::Tenant,
    source: &PlaybookSource,
    inspect: &str,
    include_remediated: bool,
    shape: &Shape,
) -> Result<RunFigures, Failure> {
    let planned = lifecycle
        .plan(
            tenant.as_ref(),
            source,
            PlanOptions {
                include_remediated,
                ..PlanOptions::default()
            },
        )
        .await
        .map_err(|e| fail("plan", e))?;
    let automated = gate::automated(&planned.plan);
    let writes = planned.plan.estimate.directory_writes;
    let cleared = lifecycle
        .gate(planned, &RecordOnly)
        .await
        .map_err(|e| fail("gate", e))?;
    let (_stop, stop) = watch::channel(false);
    let before = stats(inspect).await?;
    let started = Instant::now();
    let executed = lifecycle
        .execute(
            cleared,
            tenant.as_ref(),
            ExecuteOptions {
                concurrency: shape.pipelines,
                stop,
                progress: Arc::new(Progress::default()),
                notifier: Arc::new(RecordOnly),
            },
        )
        .await
        .map_err(|e| fail("execute", e))?;
    let wall = started.elapsed().as_secs_f64();
    let after = stats(inspect).await?;
    let summary = executed.summary;
    Ok(RunFigures {
        automated,
        writes,
        succeeded: summary.count(Outcome::Succeeded),
        failed: summary.count(Outcome::Failed) + summary.count(Outcome::ManualCheck),
        wall,
        started,
        requests: after.0.saturating_sub(before.0),
        throttled: after.1.saturating_sub(before.1),
    })
}

/// The emulator's (requests, 429s) so far.
async fn stats(inspect: &str) -> Result<(u64, u64), Failure> {
    let stats: serde_json::Value = reqwest::get(format!("{inspect}/stats"))
        .await
        .map_err(|e| fail("stats", e))?
        .json()
        .await
        .map_err(|e| fail("stats", e))?;
    Ok((
        stats["requests"].as_u64().unwrap_or(0),
        stats["throttled"].as_u64().unwrap_or(0),
    ))
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
