//! `resetctl bench plan`: `resetctl plan` against a 1,000,000-user emulated tenant, three ways:
//!
//! 1. a 500-row breach CSV at 300 ms per request (Graph-like latency): resolved by lookup
//!    (goal: under 5 s; listing the tenant instead pages 1,002 times, about 5 minutes);
//! 2. `all_users` at the emulator's default latency (goal: under 10 s and 500 MB);
//! 3. a breach CSV naming every user, at the default latency (resolved by listing).
//!
//! What is measured is the real command an operator runs, `resetctl plan`, as a child
//! process against the emulator served from this one over loopback: resolution (the CSV,
//! the lookups or the tenant listing, risk levels), the privileged partition, the plan, its
//! hash, the run store and the plan's files. Each child's peak RSS comes from the kernel
//! (`wait4` in a thin `resetctl bench-child`, see `child.rs`), so the emulator's own memory
//! is not counted, as a remote Graph's would not be.
//! The emulator does not throttle, and the client paces at Graph's quotas divided by a time
//! scale of 10 (as the demo tenant does): at real quotas, Identity Protection's one request
//! a second alone needs a second per 500 high-risk users (printed), read while the targets
//! are resolved.

use std::path::Path;
use std::time::Instant;

use futures::TryStreamExt;
use resetctl::directory::{Directory, RiskLevel, UserQuery};
use resetctl::emulator::EmulatorConfig;
use serde_json::{Value, json};

use super::child::{self, Measured};
use super::{Figures, ScratchDir};
use crate::cmd::{CmdResult, Exit, Failure, tenant};

/// Users of the tenant.
const USERS: u32 = 1_000_000;
/// Rows of the short breach CSV.
const BREACH_ROWS: usize = 500;
/// Latency of the short breach CSV's tenant, in milliseconds per request.
const BREACH_LATENCY_MS: u64 = 300;
/// Client quotas run this much faster than Graph's (the demo tenant's scale).
const TIME_SCALE: f64 = 10.0;
/// Seed of the tenant (the same tenant at both latencies).
const SEED: u64 = 7;
/// Environment variable the child reads the app secret from.
const SECRET_VAR: &str = "RESETCTL_BENCH_SECRET";

const CSV_PLAYBOOK: &str = "name: plan-bench
targets: [csv: { path: targets.csv, column: upn }]
exclude: { upn_patterns: ['svc-*@*'] }
privileged: { roles: critical, include_eligible: true }
guards: { max_users: 2000000, max_fraction_of_tenant: 1.0 }
steps:
  - reset_password: { mode: scramble, force_change: true, require_mfa: true }
  - revoke_sessions
";

const ALL_USERS_PLAYBOOK: &str = "name: plan-bench-all
targets: [all_users: {}]
exclude: { upn_patterns: ['svc-*@*'] }
privileged: { roles: critical, include_eligible: true }
guards: { max_users: 2000000, max_fraction_of_tenant: 1.0 }
steps:
  - reset_password: { mode: scramble, force_change: true, require_mfa: true }
  - revoke_sessions
";

fn fail(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Config, format!("bench plan: {what}: {e}"))
}

/// Run the planning benchmark; `users` overrides the tenant size.
pub async fn run(figures: &mut Figures, users: Option<u64>) -> CmdResult {
    let users = users.map_or(USERS, |n| n.clamp(10, u64::from(USERS)) as u32);
    let dir = ScratchDir::new("plan")?;
    let seeded = Instant::now();
    let tenant = emulated(users, 0).await?;
    let seeded = seeded.elapsed();
    let upns = tenant_upns(tenant.directory.as_ref()).await?;
    write_csv(&dir.path().join("targets.csv"), &upns)?;
    let high = high_risk_users(tenant.directory.as_ref()).await;
    figures.line(format_args!(
        "bench plan: `resetctl plan` against a {users}-user emulated tenant (seeded in {:.1} s; \
         client quotas at time scale {TIME_SCALE})",
        seeded.as_secs_f64()
    ));
    let all = plan(&tenant, dir.path(), "all", ALL_USERS_PLAYBOOK).await?;
    report(
        figures,
        "all_users, default latency",
        &all,
        "under 10 s",
        dir.path(),
    );
    let every = plan(&tenant, dir.path(), "every", CSV_PLAYBOOK).await?;
    let every_title = format!("{users}-row CSV, default latency");
    report(figures, &every_title, &every, "under 10 s", dir.path());
    tenant.close().await;

    // The same tenant (same seed) served at Graph-like latency; 500 of its users, spread
    // over the whole tenant, are the breach list.
    let tenant = emulated(users, BREACH_LATENCY_MS).await?;
    let step = (upns.len() / BREACH_ROWS).max(1);
    let breach: Vec<String> = upns.into_iter().step_by(step).take(BREACH_ROWS).collect();
    let breach_dir = dir.path().join("breach");
    std::fs::create_dir_all(&breach_dir).map_err(|e| fail("scratch", e))?;
    write_csv(&breach_dir.join("targets.csv"), &breach)?;
    let short = plan(&tenant, &breach_dir, "breach", CSV_PLAYBOOK).await?;
    let short_title = format!(
        "{}-row CSV, {BREACH_LATENCY_MS} ms per request",
        breach.len()
    );
    report(figures, &short_title, &short, "under 5 s", &breach_dir);
    tenant.close().await;

    if let Some(high) = high {
        figures.line(format_args!(
            "  at real quotas: risk levels need {} s ({high} high-risk users, 500 per request, \
             1 request/s)",
            high.div_ceil(500)
        ));
    }
    let figure = |m: &Measured| {
        json!({
            "seconds": m.took.as_secs_f64(),
            "peak_rss_mb": m.peak_mb,
            "resolved_by": m.summary["resolved_by"],
            "unresolved": m.summary["unresolved"],
            "buckets": m.summary["buckets"],
        })
    };
    let size_mb = |name: &str| {
        std::fs::metadata(dir.path().join("out").join(name)).map_or(0, |m| m.len() / 1_000_000)
    };
    // The top-level figures are the every-user CSV's, as before the other two were measured.
    figures.set(
        "plan",
        json!({
            "users": users,
            "seconds": every.took.as_secs_f64(),
            "peak_rss_mb": every.peak_mb,
            "plan_json_mb": size_mb("plan.json"),
            "targets_csv_mb": size_mb("targets.csv"),
            "resolved_by": every.summary["resolved_by"],
            "time_scale": TIME_SCALE,
            "high_risk_users": high,
            "all_users": figure(&all),
            "csv_breach": {
                "rows": breach.len(),
                "latency_ms": BREACH_LATENCY_MS,
                "figures": figure(&short),
            },
        }),
    );
    Ok(Exit::Success)
}

/// The seeded tenant of `users`, served with `latency_ms` per request, throttling off.
async fn emulated(users: u32, latency_ms: u64) -> Result<tenant::Tenant, Failure> {
    let mut config = EmulatorConfig::seeded(users, SEED);
    config.throttle = false;
    config.latency_ms = latency_ms;
    tenant::emulated("plan-bench", config).await
}

/// Print one measurement.
fn report(figures: &Figures, title: &str, m: &Measured, goal: &str, dir: &Path) {
    let size_mb = |name: &str| {
        std::fs::metadata(dir.join("out").join(name)).map_or(0, |f| f.len() / 1_000_000)
    };
    figures.line(format_args!("  {title}"));
    figures.line(format_args!(
        "    time                {:.2} s (goal {goal})",
        m.took.as_secs_f64()
    ));
    figures.line(format_args!(
        "    peak RSS            {} MB (the plan process alone; goal under 500 MB)",
        m.peak_mb
    ));
    let resolved = &m.summary["resolved_by"];
    figures.line(format_args!(
        "    resolved by         {}: {}",
        resolved["method"].as_str().unwrap_or("?"),
        resolved["why"].as_str().unwrap_or("")
    ));
    figures.line(format_args!(
        "    plan                {} users, {} unresolved; plan.json {} MB, targets.csv {} MB",
        m.summary["buckets"]
            .as_object()
            .map_or(0, |b| b.values().filter_map(Value::as_u64).sum::<u64>()),
        m.summary["unresolved"],
        size_mb("plan.json"),
        size_mb("targets.csv")
    ));
}

/// Run `resetctl plan` for `playbook` in `dir` against `tenant` and measure it.
async fn plan(
    tenant: &tenant::Tenant,
    dir: &Path,
    name: &str,
    playbook: &str,
) -> Result<Measured, Failure> {
    let Some(info) = tenant.emulator.as_ref().map(|e| e.info().clone()) else {
        return Err(fail("emulator", "not started"));
    };
    let config_path = dir.join(format!("resetctl-{name}.yaml"));
    std::fs::write(
        &config_path,
        tenant::emulator_yaml("bench", &info, TIME_SCALE, SECRET_VAR),
    )
    .map_err(|e| fail("config", e))?;
    let playbook_path = format!("plan-bench-{name}.yaml");
    std::fs::write(dir.join(&playbook_path), playbook).map_err(|e| fail("playbook", e))?;
    let mut command = child::this_binary().map_err(|e| fail("plan", e))?;
    command
        .arg("--config")
        .arg(&config_path)
        .args(["--output", "json", "-q", "plan", &playbook_path])
        .args(["--tenant", "bench", "--out", "out", "--overwrite"])
        .env(SECRET_VAR, &info.client_secret)
        .env("RESETCTL_DATA_DIR", dir.join("data"));
    // Exit 0 is a plan; 3 would be a guard, which these playbooks do not trip.
    child::measure(command, dir, name)
        .await
        .map_err(|e| fail("plan", format!("`resetctl plan` failed: {e}")))
}

/// The UPNs of every user of the tenant, in listing order (setup, not measured).
pub(super) async fn tenant_upns(directory: &dyn Directory) -> Result<Vec<String>, Failure> {
    directory
        .list_users(UserQuery {
            select: Some(vec!["id".into(), "userPrincipalName".into()]),
            ..UserQuery::default()
        })
        .map_ok(|u| u.upn)
        .try_collect()
        .await
        .map_err(|e| fail("listing", e))
}

/// A breach CSV of `upns`.
pub(super) fn write_csv(path: &Path, upns: &[String]) -> Result<(), Failure> {
    let mut csv = String::with_capacity(upns.len() * 40);
    csv.push_str("upn\n");
    for upn in upns {
        csv.push_str(upn);
        csv.push('\n');
    }
    std::fs::write(path, csv).map_err(|e| fail("csv", e))
}

/// High-risk users of the tenant (what planning reads from Identity Protection).
async fn high_risk_users(directory: &dyn Directory) -> Option<u64> {
    let listed: Result<Vec<_>, _> = directory
        .list_risky_users(vec![RiskLevel::High])
        .try_collect()
        .await;
    listed.ok().map(|users| users.len() as u64)
}
