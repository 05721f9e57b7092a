//! `resetctl bench plan`: planning a breach CSV of 1,000,000 users against a 1,000,000-user
//! emulated tenant (target: under 10 s and under 500 MB).
//!
//! What is measured is the real command an operator runs, `resetctl plan`, as a child
//! process against the emulator served from this one over loopback: resolution (the CSV,
//! the tenant listing, risk levels), the privileged partition, the plan, its hash, the run
//! store and the plan's files. The child's peak RSS comes from the kernel (`getrusage`), so
//! the emulator's own memory is not counted, as a remote Graph's would not be. The emulator
//! does not throttle, and the client paces at Graph's quotas divided by a time scale of 10
//! (as the demo tenant does): at real quotas, Identity Protection's one request a second
//! alone needs a second per 500 high-risk users (printed), read while the tenant is listed.

use std::process::Command;
use std::time::Instant;

use futures::TryStreamExt;
use resetctl::directory::{Directory, RiskLevel, UserQuery};
use resetctl::emulator::EmulatorConfig;

use super::{Figures, ScratchDir};
use crate::cmd::{CmdResult, Exit, Failure, tenant};

/// Users of the tenant and rows of the CSV.
const USERS: u32 = 1_000_000;
/// Client quotas run this much faster than Graph's (the demo tenant's scale).
const TIME_SCALE: f64 = 10.0;
/// Environment variable the child reads the app secret from.
const SECRET_VAR: &str = "RESETCTL_BENCH_SECRET";

const PLAYBOOK: &str = "name: plan-bench
targets: [csv: { path: targets.csv, column: upn }]
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
    let mut config = EmulatorConfig::seeded(users, 7);
    config.throttle = false;
    let tenant = tenant::emulated("plan-bench", config).await?;
    let seeded = seeded.elapsed();
    write_breach_csv(tenant.directory.as_ref(), &dir.path().join("targets.csv")).await?;
    let Some(info) = tenant.emulator.as_ref().map(|e| e.info().clone()) else {
        return Err(fail("emulator", "not started"));
    };
    let config_path = dir.path().join("resetctl.yaml");
    std::fs::write(
        &config_path,
        tenant::emulator_yaml("bench", &info, TIME_SCALE, SECRET_VAR),
    )
    .map_err(|e| fail("config", e))?;
    std::fs::write(dir.path().join("plan-bench.yaml"), PLAYBOOK)
        .map_err(|e| fail("playbook", e))?;

    let exe = std::env::current_exe().map_err(|e| fail("own executable", e))?;
    let mut command = Command::new(exe);
    command
        .arg("--config")
        .arg(&config_path)
        .args([
            "plan",
            "plan-bench.yaml",
            "--tenant",
            "bench",
            "--out",
            "out",
            "-q",
        ])
        .current_dir(dir.path())
        .env(SECRET_VAR, &info.client_secret)
        .env("RESETCTL_DATA_DIR", dir.path().join("data"))
        .env_remove("RESETCTL_CONFIG")
        .env_remove("RUST_LOG");
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|e| fail("plan", e))?
        .map_err(|e| fail("plan", e))?;
    let took = started.elapsed();
    let peak_mb = children_peak_rss_kb() / 1024;
    // Exit 0 is a plan; 3 would be a guard, which this playbook does not trip.
    if !output.status.success() {
        return Err(fail(
            "plan",
            format!(
                "`resetctl plan` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        ));
    }
    let size_mb = |name: &str| {
        std::fs::metadata(dir.path().join("out").join(name)).map_or(0, |m| m.len() / 1_000_000)
    };
    let took_s = took.as_secs_f64();
    figures.line(format_args!(
        "bench plan: `resetctl plan` of {users} CSV targets against a {users}-user emulated tenant \
         (seeded in {:.1} s; client quotas at time scale {TIME_SCALE})",
        seeded.as_secs_f64()
    ));
    figures.line(format_args!(
        "  time                  {took_s:.2} s (goal under 10 s)"
    ));
    figures.line(format_args!(
        "  peak RSS              {peak_mb} MB (the plan process alone; goal under 500 MB)"
    ));
    figures.line(format_args!(
        "  files                 plan.json {} MB, targets.csv {} MB",
        size_mb("plan.json"),
        size_mb("targets.csv")
    ));
    let high = high_risk_users(tenant.directory.as_ref()).await;
    if let Some(high) = high {
        figures.line(format_args!(
            "  at real quotas        risk levels need {} s ({high} high-risk users, 500 per request, 1 request/s)",
            high.div_ceil(500)
        ));
    }
    figures.set(
        "plan",
        serde_json::json!({
            "users": users,
            "seconds": took_s,
            "peak_rss_mb": peak_mb,
            "plan_json_mb": size_mb("plan.json"),
            "targets_csv_mb": size_mb("targets.csv"),
            "high_risk_users": high,
            "time_scale": TIME_SCALE,
        }),
    );
    tenant.close().await;
    Ok(Exit::Success)
}

/// The breach CSV: every user of the tenant (listing it is setup, not measured).
async fn write_breach_csv(
    directory: &dyn Directory,
    path: &std::path::Path,
) -> Result<(), Failure> {
    let upns: Vec<String> = directory
        .list_users(UserQuery {
            select: Some(vec!["id".into(), "userPrincipalName".into()]),
            ..UserQuery::default()
        })
        .map_ok(|u| u.upn)
        .try_collect()
        .await
        .map_err(|e| fail("listing", e))?;
    let mut csv = String::with_capacity(upns.len() * 40);
    csv.push_str("upn\n");
    for upn in &upns {
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

/// Peak resident set of the largest child waited for, in KiB (Linux reports KiB).
fn children_peak_rss_kb() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } == 0;
    if ok { usage.ru_maxrss.max(0) as u64 } else { 0 }
}
