//! `resetctl bench tabletop`: wall time and peak memory of the README's exercise,
//! `resetctl tabletop playbooks/credential-dump.yaml --report report.html`, at 1,000, 10,000
//! and 100,000 demo users (or `--n` alone). Goal: 10,000 users under 30 s on 2 cores.
//!
//! Each size is measured twice, as a child process of this one (its own peak RSS from the
//! kernel, `wait4` in a thin `resetctl bench-child`, see `child.rs`):
//! - **as shipped**: the playbook's own breach list (the users of `credential-dump.csv` that
//!   the tenant of that size has), so the figure is what a newcomer sees;
//! - **everyone breached**: a breach CSV naming every user of the tenant, with the playbook's
//!   size guards (`max_users: 2000`, `max_fraction_of_tenant: 0.25`) raised to let them all
//!   through — the whole tenant planned, partitioned, written, messaged and reported.
//!
//! The exercise runs at its own default time scale (users / 15, at least 60), as the README
//! command does, and the projected containment time it prints is quoted beside the wall time.

use std::path::Path;

use resetctl::emulator::EmulatorConfig;
use serde_json::{Value, json};

use super::child::{self, Measured};
use super::plan::{tenant_upns, write_csv};
use super::{Figures, ScratchDir};
use crate::cmd::{CmdResult, Exit, Failure, tenant};

/// The README's playbook and its breach list, as shipped.
const PLAYBOOK: &str = include_str!("../../../playbooks/credential-dump.yaml");
const BREACH_LIST: &str = include_str!("../../../playbooks/credential-dump.csv");
/// The exercise's default seed (the tenant the README command builds).
const SEED: u64 = 1;
/// Sizes measured without `--n`.
const SIZES: [u32; 3] = [1_000, 10_000, 100_000];

fn fail(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Config, format!("bench tabletop: {what}: {e}"))
}

/// An exercise's figures for `--output json`.
fn figures_of(m: &Measured) -> Value {
    json!({
        "seconds": m.took.as_secs_f64(),
        "peak_rss_mb": m.peak_mb,
        "headline": m.summary["headline"],
        "projected_minutes": m.summary["projected_minutes"],
        "time_scale": m.summary["time_scale"],
    })
}

/// Run the exercise benchmark; `n` measures that one size.
pub async fn run(figures: &mut Figures, n: Option<u64>) -> CmdResult {
    let sizes: Vec<u32> = match n {
        Some(n) => vec![n.clamp(100, 1_000_000) as u32],
        None => SIZES.to_vec(),
    };
    let dir = ScratchDir::new("tabletop")?;
    figures.line(
        "bench tabletop: `resetctl tabletop playbooks/credential-dump.yaml --report report.html \
         --users N` (goal: 10,000 users under 30 s)",
    );
    let mut all = Vec::new();
    for users in sizes {
        let case = dir.path().join(users.to_string());
        std::fs::create_dir_all(&case).map_err(|e| fail("scratch", e))?;
        std::fs::write(case.join("credential-dump.yaml"), PLAYBOOK)
            .map_err(|e| fail("playbook", e))?;
        std::fs::write(case.join("credential-dump.csv"), BREACH_LIST)
            .map_err(|e| fail("breach list", e))?;
        std::fs::write(case.join("everyone.yaml"), everyone_playbook(users)?)
            .map_err(|e| fail("playbook", e))?;
        write_csv(&case.join("everyone.csv"), &upns(users).await?)?;

        let shipped = exercise(&case, users, "credential-dump.yaml", None).await?;
        line(figures, users, "as shipped", &shipped);
        let everyone = exercise(&case, users, "everyone.yaml", Some("everyone.csv")).await?;
        line(figures, users, "everyone breached", &everyone);
        all.push(json!({
            "users": users,
            "as_shipped": figures_of(&shipped),
            "everyone_breached": figures_of(&everyone),
        }));
    }
    figures.set("tabletop", Value::Array(all));
    Ok(Exit::Success)
}

/// The playbook with its size guards raised to the whole tenant of `users`.
fn everyone_playbook(users: u32) -> Result<String, Failure> {
    let mut text = PLAYBOOK.to_owned();
    for (from, to) in [
        ("max_users: 2000 ", format!("max_users: {users} ")),
        (
            "max_fraction_of_tenant: 0.25 ",
            "max_fraction_of_tenant: 1.0  ".to_owned(),
        ),
    ] {
        if !text.contains(from) {
            return Err(fail(
                "playbook",
                format!("credential-dump.yaml no longer says `{from}`: update this benchmark"),
            ));
        }
        text = text.replacen(from, &to, 1);
    }
    Ok(text)
}

/// Every UPN of the tenant the exercise builds for `users` (setup, not measured).
async fn upns(users: u32) -> Result<Vec<String>, Failure> {
    let mut config = EmulatorConfig::seeded(users, SEED);
    config.throttle = false;
    let tenant = tenant::emulated("tabletop-bench", config).await?;
    let upns = tenant_upns(tenant.directory.as_ref()).await;
    tenant.close().await;
    upns
}

fn line(figures: &Figures, users: u32, case: &str, m: &Measured) {
    figures.line(format_args!(
        "  {users:>7} users, {case:<17} {:>7.2} s wall, {:>5} MB peak RSS — {}",
        m.took.as_secs_f64(),
        m.peak_mb,
        m.summary["headline"].as_str().unwrap_or("(no headline)")
    ));
}

/// Run one exercise in `dir` as a child process and measure it.
async fn exercise(
    dir: &Path,
    users: u32,
    playbook: &str,
    targets: Option<&str>,
) -> Result<Measured, Failure> {
    let name = playbook.trim_end_matches(".yaml");
    let mut command = child::this_binary().map_err(|e| fail("tabletop", e))?;
    command
        .args(["--output", "json", "-q", "tabletop", playbook])
        .args(["--users", &users.to_string(), "--seed", &SEED.to_string()])
        .args(["--report", &format!("{name}.html")])
        .env("RESETCTL_DATA_DIR", dir.join(format!("data-{name}")));
    if let Some(csv) = targets {
        command.args(["--targets", csv]);
    }
    child::measure(command, dir, name).await.map_err(|e| {
        fail(
            "tabletop",
            format!("`resetctl tabletop {playbook}` at {users} users failed: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyone_playbook_raises_both_size_guards() {
        let Ok(text) = everyone_playbook(10_000) else {
            panic!("the playbook lost its guards")
        };
        assert!(text.contains("max_users: 10000 "), "{text}");
        assert!(text.contains("max_fraction_of_tenant: 1.0 "), "{text}");
        assert!(!text.contains("max_users: 2000 "));
    }
}
