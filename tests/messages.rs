//! Communications end to end: the real binary runs a playbook against an emulated tenant
//! whose Twilio, ACS, Teams and webhook sinks and Graph mailbox are configured as channels
//! (`emulator::channels::config_yaml`), and the emulator's outbox says what arrived.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use resetctl::emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;

use crate::util::{TenantConfig, bin, code, inspect, start_emulator, stderr, stdout};

/// An emulated tenant configured with every channel, and a scratch folder for the runs.
struct Lab {
    dir: tempfile::TempDir,
    emulator: RunningEmulator,
    env: Vec<(String, String)>,
}

impl Lab {
    async fn start(users: u32, time_scale: f64) -> Lab {
        let mut config = EmulatorConfig::seeded(users, 11);
        config.time_scale = time_scale;
        let emulator = start_emulator(config).await;
        let info = emulator.info();
        let tenant =
            TenantConfig::emulator("lab", info, time_scale).secret_app(info, 0, "LAB_SECRET");
        let mut yaml = tenant.yaml();
        yaml.push_str(&resetctl::emulator::channels::config_yaml(
            &info.channels,
            &info.verified_domain,
            "LAB",
        ));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("resetctl.yaml"), yaml).unwrap();
        let mut env: Vec<(String, String)> = tenant.env().to_vec();
        env.extend(resetctl::emulator::channels::secret_env(
            &info.channels,
            "LAB",
        ));
        Lab { dir, emulator, env }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin());
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RESETCTL_CONFIG")
            .env_remove("RUST_LOG")
            .env("RESETCTL_DATA_DIR", self.path("data"))
            .env("RESETCTL_OPERATOR", "tester")
            .env("NO_COLOR", "1");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    async fn outbox(&self, channel: &str) -> Vec<Value> {
        inspect(self.emulator.info(), &format!("outbox?channel={channel}")).await["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Every user of the tenant, with a notice by mail and one by SMS.
const NOTICES: &str = "name: notices
targets: [all_users: {}]
exclude: { upn_patterns: ['svc-*@*'] }
guards: { max_fraction_of_tenant: 1.0, max_users: 5000, approvals_required: 0 }
steps:
  - revoke_sessions
  - notify: { template: credential-dump-notice, channels: [email] }
  - notify: { template: credential-dump-sms, channels: [sms] }
    when: has_mobile
communications:
  helpdesk_brief: { template: helpdesk-brief, channels: [email, teams] }
  soc_summary: { template: soc-summary, channels: [teams, webhook] }
";

/// The recipients of a channel's messages, counted.
fn recipients(messages: &[Value]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in messages {
        for to in m["to"].as_array().into_iter().flatten() {
            *seen
                .entry(to.as_str().unwrap_or_default().to_owned())
                .or_insert(0) += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_steps_send_one_message_per_user_per_channel() {
    let lab = Lab::start(60, 50.0).await;
    let playbook = lab.write("notices.yaml", NOTICES);
    let out = lab.run(&[
        "run",
        playbook.to_str().unwrap(),
        "--tenant",
        "lab",
        "--execute",
        "--yes",
        "--output",
        "json",
    ]);
    assert_eq!(code(&out), 0, "{} {}", stderr(&out), stdout(&out));
    let summary: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let automated = summary["buckets"]["automated"].as_u64().unwrap() as usize;
    assert!(automated > 20, "{summary}");

    let mails = lab.outbox("email").await;
    let notices: Vec<&Value> = mails
        .iter()
        .filter(|m| m["provider"] == "graph_mime")
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| !s.contains("help desk"))
        })
        .collect();
    let per_user = recipients(&notices.iter().map(|v| (*v).clone()).collect::<Vec<_>>());
    assert!(
        per_user.values().all(|n| *n == 1),
        "a mailbox got two notices: {per_user:?}"
    );
    // Every notice went out as one multipart/alternative message from the shared mailbox.
    for mail in &notices {
        let mime = mail["mime"].to_string();
        assert!(
            mime.contains("text/plain") && mime.contains("text/html"),
            "{mail}"
        );
    }
    let sms = lab.outbox("sms").await;
    let per_phone = recipients(&sms);
    assert!(!sms.is_empty());
    assert!(
        per_phone.values().all(|n| *n == 1),
        "a phone got two texts: {per_phone:?}"
    );
    let delivered = summary["messages"]["delivered"].as_u64().unwrap() as usize;
    assert_eq!(
        delivered,
        per_user.len() + sms.len(),
        "the summary counts what the sinks received: {summary}"
    );
    // The run-level messages: the help desk before, the SOC after, over their channels.
    let teams = lab.outbox("teams").await;
    assert_eq!(
        teams.len(),
        2,
        "helpdesk brief and SOC summary cards: {teams:?}"
    );
    assert!(teams.iter().all(|t| t["delivered"] == true), "{teams:?}");
    assert_eq!(lab.outbox("webhook").await.len(), 1);
    // The delivery journal: one row per user, step and channel, recipients masked.
    let trail = std::fs::read_to_string(lab.path("data/audit.jsonl")).unwrap();
    let sent = trail
        .lines()
        .filter(|l| l.contains("\"message.sent\""))
        .count();
    assert_eq!(
        sent,
        delivered + 2 + 2,
        "per-user notices and run-level messages"
    );
    for line in trail.lines().filter(|l| l.contains("\"message.sent\"")) {
        let record: Value = serde_json::from_str(line).unwrap();
        let to = record["details"]["to"].as_str().unwrap_or_default();
        assert!(
            to.contains("***") || to.starts_with("teams:") || to == "webhook",
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_password_reaches_the_user_by_sms_and_nowhere_else() {
    let lab = Lab::start(60, 50.0).await;
    let playbook = lab.write(
        "spray.yaml",
        "name: spray
targets: [all_users: {}]
exclude: { upn_patterns: ['svc-*@*'] }
guards: { max_fraction_of_tenant: 1.0, max_users: 5000, approvals_required: 0 }
steps:
  - reset_password: { mode: temporary, force_change: true, require_mfa: true }
    when: has_mobile
  - reset_password: { mode: scramble, force_change: true }
    when: not has_mobile
  - notify: { template: temporary-password-sms, channels: [sms] }
    when: has_mobile
",
    );
    let out = lab.run(&[
        "run",
        playbook.to_str().unwrap(),
        "--tenant",
        "lab",
        "--execute",
        "--yes",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let sms = lab.outbox("sms").await;
    assert!(sms.len() > 10, "{sms:?}");
    // `<org> IT: … <upn>: <password> - …`: the password follows the UPN (and has no space).
    let domain = format!("{}: ", lab.emulator.info().verified_domain);
    let passwords: Vec<String> = sms
        .iter()
        .map(|m| {
            let body = m["content"].as_str().unwrap_or_default();
            body.split_once(domain.as_str())
                .and_then(|(_, rest)| rest.split(' ').next())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        passwords.iter().all(|p| p.len() >= 12),
        "{passwords:?} {sms:?}"
    );

    // Nowhere else: the command's output, the run's files, the store, the audit trail.
    let mut haystacks = vec![stdout(&out), stderr(&out)];
    let files = walk(&lab.path("data"));
    assert!(
        files.iter().any(|f| f.ends_with("audit.jsonl"))
            && files.iter().any(|f| f.ends_with("results.csv"))
            && files.iter().any(|f| f.ends_with("plan.json"))
            && files.iter().any(|f| f.ends_with("runs.sqlite")),
        "{files:?}"
    );
    for file in files {
        haystacks.push(String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned());
    }
    for password in &passwords {
        for text in &haystacks {
            assert!(!text.contains(password.as_str()), "the password leaked");
        }
    }
    // The mail sink got nothing with a password in it either.
    for mail in lab.outbox("email").await {
        let text = mail.to_string();
        assert!(passwords.iter().all(|p| !text.contains(p.as_str())));
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_sending_resumes_without_sending_anything_twice() {
    // Mail at 30 a minute, 10 times faster: 5 a second, so the run is mid-way after 3 s.
    let lab = Lab::start(80, 10.0).await;
    let playbook = lab.write("notices.yaml", NOTICES);
    let mut child = lab
        .command(&[
            "run",
            playbook.to_str().unwrap(),
            "--tenant",
            "lab",
            "--execute",
            "--yes",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = lab.outbox("email").await.len();
    assert!(before > 0, "nothing was sent before the kill");
    eprintln!("mails before the kill: {before}");

    let shown = lab.run(&["runs", "show", "latest", "--output", "json"]);
    let run: Value = serde_json::from_str(&stdout(&shown)).unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    let out = lab.run(&["run", "--resume", &id, "--output", "json"]);
    assert!(matches!(code(&out), 0 | 2), "{}", stderr(&out));
    let summary: Value = serde_json::from_str(&stdout(&out)).unwrap();
    eprintln!(
        "after the resume: {} {}",
        summary["messages"], summary["users"]
    );

    let mails: Vec<Value> = lab
        .outbox("email")
        .await
        .into_iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| !s.contains("help desk"))
        })
        .collect();
    let per_user = recipients(&mails);
    assert!(
        per_user.values().all(|n| *n == 1),
        "a notice went out twice across the kill: {per_user:?}"
    );
    let sms = recipients(&lab.outbox("sms").await);
    assert!(
        sms.values().all(|n| *n == 1),
        "a text went out twice: {sms:?}"
    );
    // Whatever was in flight at the kill over a channel without idempotency is reported for
    // a person to check, never sent again; everything else was delivered.
    let automated = summary["buckets"]["automated"].as_u64().unwrap() as usize;
    let delivered = summary["messages"]["delivered"].as_u64().unwrap() as usize;
    let to_check = summary["messages"]["to_check"].as_u64().unwrap() as usize;
    assert_eq!(summary["messages"]["failed"], 0, "{summary}");
    assert!(delivered + to_check >= automated, "{summary}");
    assert_eq!(
        per_user.len() + sms.len() + to_check,
        delivered + to_check,
        "delivered notices are exactly those the sinks hold: {summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_previews_a_notice_for_a_real_user() {
    let lab = Lab::start(30, 50.0).await;
    let users = inspect(lab.emulator.info(), "outbox").await; // warm up
    drop(users);
    let out = lab.run(&[
        "render",
        "credential-dump-notice",
        "--user",
        &format!("incident-noreply@{}", lab.emulator.info().verified_domain),
        "--tenant",
        "lab",
        "--channel",
        "email",
        "--output",
        "json",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let html = std::fs::read_to_string(doc["email"]["html_file"].as_str().unwrap()).unwrap();
    assert!(html.contains("<html") || html.contains("<p"), "{html}");
    assert!(
        doc["email"]["text"]
            .as_str()
            .unwrap()
            .contains("aka.ms/sspr")
    );
    assert!(
        lab.outbox("email").await.is_empty(),
        "a preview sends nothing"
    );
}
