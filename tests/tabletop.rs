//! `resetctl tabletop` end to end: the real binary on the in-process demo tenant, and on an
//! emulated tenant configured as if it were real (which the exercise must only read).

use std::path::Path;
use std::process::{Command, Output};

use resetctl::emulator::EmulatorConfig;
use serde_json::Value;

use crate::util::{TenantConfig, bin, code, inspect, start_emulator, stderr, stdout};

/// Run `resetctl` in `dir` with its own data directory (and `env`), off the async runtime.
async fn resetctl(dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let mut command = Command::new(bin());
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RESETCTL_DATA_DIR", dir.join("data"))
        .env_remove("RESETCTL_CONFIG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .envs(env.iter().cloned());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// The number in the table row labelled `label` (`<td>label</td><td class="n">N</td>`).
fn figure(html: &str, label: &str) -> u64 {
    let cell = format!("<td>{label}</td><td class=\"n\">");
    let at = html.find(&cell).unwrap_or_else(|| panic!("no row {label}")) + cell.len();
    html[at..].split('<').next().unwrap().parse().unwrap()
}

/// The report's sections, each present once, and nothing that needs a network or a script.
fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    for id in [
        "answer",
        "timeline",
        "buckets",
        "manual-queue",
        "messages",
        "decisions",
        "forecast",
        "previews",
    ] {
        assert_eq!(
            html.matches(&format!("<section id=\"{id}\">")).count(),
            1,
            "section {id}"
        );
    }
    assert!(!html.contains("<script"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(html.matches("<svg").count() >= 3);
    assert!(html.contains("projected"));
}

async fn show_latest(dir: &Path) -> Value {
    let out = resetctl(dir, &["--output", "json", "runs", "show", "latest"], &[]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_demo_tabletop_writes_a_report_whose_figures_are_the_run_stores() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("out/report.html");
    let out = resetctl(
        dir.path(),
        &[
            "--output",
            "json",
            "tabletop",
            "playbooks/password-spray.yaml",
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let html = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&html);
    // The Markdown summary sits beside the report.
    let md = std::fs::read_to_string(dir.path().join("out/report.md")).unwrap();
    assert!(md.starts_with("# Tabletop: password-spray"), "{md}");

    let run = show_latest(dir.path()).await;
    assert_eq!(run["id"], doc["id"]);
    assert_eq!(run["status"], "finished");
    assert_eq!(figure(&html, "automated"), run["buckets"]["automated"]);
    assert_eq!(figure(&html, "succeeded"), run["journal"]["succeeded"]);
    assert_eq!(
        figure(&html, "failed"),
        run["journal"]["failed"].as_u64().unwrap_or(0)
    );

    // Projected times are the exercise's scaled back: never more than the attempt's wall
    // time times the scale.
    let attempt = &run["attempts"][0];
    let started: jiff::Timestamp = attempt["started_at"].as_str().unwrap().parse().unwrap();
    let ended: jiff::Timestamp = attempt["end"]["ended_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let wall = ended.duration_since(started).as_secs_f64();
    let scale = doc["time_scale"].as_f64().unwrap();
    let projected = doc["projected_minutes"].as_f64().unwrap();
    assert_eq!(scale, 133.0, "the default for the 2,000 users of the demo");
    assert!(projected > 0.0, "{projected}");
    assert!(
        projected <= wall * scale / 60.0 + 1e-6,
        "{projected} {wall}"
    );

    // The playbook requires one approval: a simulated operator gave it, and the trail and
    // the report say so.
    let approvals = run["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["operator"], "tabletop-operator-1");
    let trail = std::fs::read_to_string(dir.path().join("data/audit.jsonl")).unwrap();
    let approval: Value = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["action"] == "run.approve")
        .unwrap();
    assert_eq!(approval["actor"], "tabletop-operator-1");
    assert_eq!(approval["outcome"], "success");
    assert!(
        approval["details"]["origin"]
            .as_str()
            .unwrap()
            .contains("simulated operator")
    );
    assert!(html.contains("tabletop-operator-1 <span class=\"sim\">(simulated operator)</span>"));
    // Every template the playbook uses is previewed.
    assert!(
        html.contains("<h3>password-spray-notice (email)</h3>"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_approver_stops_the_run_and_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.html");
    let out = resetctl(
        dir.path(),
        &[
            "tabletop",
            "playbooks/password-spray.yaml",
            "--inject",
            "silent-approver",
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let html = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("The run would not start"));
    assert!(html.contains("never answered"));
    assert!(html.contains("one required approver never answers: the run did not start"));
    let run = show_latest(dir.path()).await;
    assert_eq!(run["status"], "planned");
    assert!(run["journal"].as_object().is_none_or(|j| j.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_no_mobile_inject_leaves_fewer_users_reachable_by_sms() {
    let dir = tempfile::tempdir().unwrap();
    let mut sms = Vec::new();
    for inject in [None, Some("no-mobile=60")] {
        let report = dir.path().join("r.html");
        let mut args = vec![
            "tabletop",
            "playbooks/credential-dump.yaml",
            "--report",
            report.to_str().unwrap(),
        ];
        if let Some(inject) = inject {
            args.extend(["--inject", inject]);
        }
        let out = resetctl(dir.path(), &args, &[]).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let html = std::fs::read_to_string(&report).unwrap();
        sms.push(figure(&html, "sms"));
        if inject.is_some() {
            assert!(
                html.contains("no mobile number on record: "),
                "the inject is shown with how the playbook coped"
            );
        }
    }
    // About 95 % of the targets have a mobile by default, about 40 % with the inject.
    assert!(sms[1] * 3 < sms[0] * 2, "{sms:?}");
    let out = resetctl(
        dir.path(),
        &[
            "tabletop",
            "playbooks/password-spray.yaml",
            "--inject",
            "meteor",
        ],
        &[],
    )
    .await;
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("--inject meteor"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tabletop_of_a_configured_tenant_writes_nothing_and_sends_nothing() {
    let emulator = start_emulator(EmulatorConfig::seeded(2_000, 1)).await;
    let info = emulator.info();
    let tenant = TenantConfig::emulator("t", info, 10.0)
        .setting("scope: https://graph.microsoft.com/.default")
        .secret_app(info, 0, "TABLETOP_TEST_SECRET");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("resetctl.yaml");
    tenant.write(&config);
    let report = dir.path().join("r.html");
    let out = resetctl(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "tabletop",
            "playbooks/credential-dump.yaml",
            "--tenant",
            "t",
            "--report",
            report.to_str().unwrap(),
        ],
        tenant.env(),
    )
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The tenant was read (the plan resolved its users) but never written to or sent from.
    assert_eq!(emulator.write_count(), 0);
    let writes = inspect(info, "writes").await;
    assert_eq!(writes["writes"].as_array().unwrap().len(), 0, "{writes}");
    let outbox = inspect(info, "outbox").await;
    assert_eq!(outbox["messages"].as_array().unwrap().len(), 0, "{outbox}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("read only: every write and message simulated"));
    assert!(html.contains("writes were <span class=\"sim\">simulated</span>"));
    assert!(figure(&html, "automated") > 100);
    assert!(figure(&html, "succeeded") > 100);
}
