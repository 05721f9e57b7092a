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

/// A tabletop of `playbook` on the demo tenant with `extra` arguments, as JSON, and its
/// report; the report's figures are checked against the emulator's own statistics.
async fn exercise(dir: &Path, playbook: &str, extra: &[&str]) -> (Value, String) {
    let report = dir.join("report.html");
    let mut args = vec![
        "--output",
        "json",
        "tabletop",
        playbook,
        "--report",
        report.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = resetctl(dir, &args, &[]).await;
    assert_eq!(code(&out), 0, "{playbook}: {}", stderr(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let html = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&html);
    let emulator = &doc["emulator"];
    // 429s: what the report shows, what resetctl's client counted, what the emulator answered.
    assert_eq!(doc["throttled"], emulator["throttled"], "{doc}");
    assert_eq!(doc["client_throttled"], emulator["throttled"], "{doc}");
    assert!(
        html.contains(&format!(
            "Graph answered 429 (throttled) {} times.",
            emulator["throttled"]
        )),
        "the report shows the emulator's count"
    );
    // Users written: the run store's journal against the emulator's write log.
    assert_eq!(doc["users_written"], emulator["users_written"], "{doc}");
    // Messages per channel: the report's against the emulator's outbox.
    let delivered = emulator["delivered"].as_object().unwrap();
    let shown = doc["messages"].as_object().unwrap();
    for (channel, n) in delivered {
        assert_eq!(&shown[channel], n, "{channel}: {doc}");
        assert_eq!(figure(&html, channel), n.as_u64().unwrap(), "{channel}");
    }
    let run = show_latest(dir).await;
    assert_eq!(run["status"], "finished", "{run}");
    assert_eq!(figure(&html, "automated"), run["buckets"]["automated"]);
    (doc, html)
}

/// Every shipped playbook completes as a tabletop on the demo tenant (`extra`: a smaller
/// demo for the tenant-wide playbooks, which keeps the suite light on a small machine).
async fn shipped(playbook: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (doc, _) = exercise(dir.path(), playbook, extra).await;
    assert!(doc["users_written"].as_u64().unwrap() > 0, "{doc}");
    // Nothing is injected, so no write's answer is lost; a notice that needs a person is
    // said once, as a message, not again as a step of unknown outcome.
    let problems = doc["problems"].as_array().unwrap();
    assert!(
        !problems
            .iter()
            .any(|p| p.as_str().unwrap().contains("unknown outcome")),
        "{problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_credential_dump_playbook_completes_as_a_tabletop() {
    shipped("playbooks/credential-dump.yaml", &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_mfa_reset_playbook_completes_as_a_tabletop() {
    shipped("playbooks/mfa-reset.yaml", &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_password_spray_playbook_completes_as_a_tabletop() {
    shipped("playbooks/password-spray.yaml", &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_privileged_compromise_playbook_completes_as_a_tabletop() {
    shipped("playbooks/privileged-compromise.yaml", &["--users", "400"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_ransomware_playbook_completes_as_a_tabletop() {
    shipped("playbooks/ransomware.yaml", &["--users", "400"]).await;
}

/// The line of the report's injects section that starts with `start`.
fn inject_line<'a>(doc: &'a Value, start: &str) -> &'a str {
    doc["injects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no inject line {start}: {doc}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttle_storm_is_answered_429_and_the_run_finishes_later() {
    let dir = tempfile::tempdir().unwrap();
    let playbook = "playbooks/credential-dump.yaml";
    let (calm, _) = exercise(dir.path(), playbook, &[]).await;
    let (storm, html) = exercise(dir.path(), playbook, &["--inject", "throttle-storm=60"]).await;
    // The calm run meets no tenant write limit; the storm's writes are answered 429 there.
    assert_eq!(calm["emulator"]["write_throttled"], 0, "{calm}");
    let writes_429 = storm["emulator"]["write_throttled"].as_u64().unwrap();
    assert!(writes_429 >= 1, "{storm}");
    // Everyone was still written, later: the storm holds writes back for 60 s (projected)
    // from the first write, so the writes cannot end sooner than a projected minute.
    assert_eq!(storm["users_written"], calm["users_written"]);
    let minutes = storm["projected_minutes"].as_f64().unwrap();
    assert!(minutes >= 1.0, "{minutes}");
    let line = inject_line(&storm, "another app drains");
    assert!(
        line.contains(&format!(
            "Graph answered {writes_429} write(s) 429 Too Many Requests on the tenant's write \
             quota ({} 429s in all",
            storm["throttled"]
        )),
        "{line}"
    );
    assert!(line.contains("the run still finished"), "{line}");
    assert!(html.contains("Graph answered"), "the report shows it");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sms_outage_leaves_notices_undelivered_and_says_who_needs_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let playbook = "playbooks/credential-dump.yaml";
    let (calm, _) = exercise(dir.path(), playbook, &[]).await;
    let (out, _) = exercise(dir.path(), playbook, &["--inject", "channel-outage=sms"]).await;
    let texts = calm["emulator"]["delivered"]["sms"].as_u64().unwrap();
    assert!(texts > 50, "{calm}");
    assert!(out["emulator"]["delivered"]["sms"].is_null(), "{out}");
    let line = inject_line(&out, "the sms provider is down");
    // Every text the calm run delivered is undelivered now; the mail reached them all.
    assert!(
        line.contains(&format!(
            "{texts} sms message(s) were not delivered (0 were)"
        )),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "{texts} user(s) missed a notice, of whom {texts} were reached over another channel \
             and 0 by none"
        )),
        "{line}"
    );
    assert_eq!(
        out["emulator"]["delivered"]["email"],
        calm["emulator"]["delivered"]["email"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_in_the_list_lands_in_the_manual_queue_unwritten() {
    let dir = tempfile::tempdir().unwrap();
    let playbook = "playbooks/credential-dump.yaml";
    let (_, calm) = exercise(dir.path(), playbook, &[]).await;
    let (doc, html) = exercise(dir.path(), playbook, &["--inject", "privileged-in-list"]).await;
    assert_eq!(
        figure(&html, "privileged (manual)"),
        figure(&calm, "privileged (manual)") + 1
    );
    let line = inject_line(&doc, "an active administrator");
    assert!(line.contains("landed in the manual queue"), "{line}");
    assert!(
        line.contains("the emulator's write log shows no write to it"),
        "{line}"
    );
    assert_eq!(doc["users_written"], doc["emulator"]["users_written"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_synced_user_in_the_list_gets_the_cloud_actions_only() {
    let dir = tempfile::tempdir().unwrap();
    let playbook = "playbooks/credential-dump.yaml";
    let (_, calm) = exercise(dir.path(), playbook, &[]).await;
    let (doc, html) = exercise(dir.path(), playbook, &["--inject", "synced-user"]).await;
    assert_eq!(
        figure(&html, "hybrid (manual password)"),
        figure(&calm, "hybrid (manual password)") + 1
    );
    let line = inject_line(&doc, "an on-premises synced");
    assert!(line.contains("hybrid_users: cloud_actions"), "{line}");
    assert!(line.contains("revokeSignInSessions"), "{line}");
    assert!(!line.contains("PATCH"), "{line}");
}
