//! `resetctl reset` on the demo tenant: the binary, end to end, with the emulator's Duo
//! sink answering each user's push as its seed scripts it.

use std::path::Path;

use resetctl::emulator::sinks::push::{Script, scripted};

use crate::util::{code, resetctl_env, stderr, stdout};

/// The demo tenant's seed (its push answers are scripted from it).
const DEMO_SEED: u64 = 1;

/// A user of the shipped breach list whose push the demo answers with `script`.
fn demo_user(script: Script) -> String {
    let csv = include_str!("../playbooks/credential-dump.csv");
    csv.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .find(|upn| scripted(DEMO_SEED, upn) == script)
        .unwrap_or_else(|| panic!("no demo user scripted {script:?}"))
        .to_owned()
}

fn reset(data: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["reset"];
    all.extend_from_slice(args);
    resetctl_env(data, &all, &[("RESETCTL_DATA_DIR", data)])
}

#[test]
fn an_approved_push_completes_the_reset_and_the_trail_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let user = demo_user(Script::Approve);
    let out = reset(dir.path(), &[&user, "--tenant", "demo", "--path", "push"]);
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("push sent"), "{text}");
    assert!(text.contains("completed (push)"), "{text}");
    let trail = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(trail.contains("\"verify.transition\""), "{trail}");
}

#[test]
fn a_denied_push_escalates_as_suspicious_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let user = demo_user(Script::Deny);
    let out = reset(dir.path(), &[&user, "--tenant", "demo", "--path", "push"]);
    assert_eq!(code(&out), 2, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("push_denied") && text.contains("SUSPICIOUS"),
        "{text}"
    );
}

#[test]
fn an_unknown_user_or_an_unnamed_tenant_is_refused_before_anything_happens() {
    let dir = tempfile::tempdir().unwrap();
    let user = demo_user(Script::Approve);
    // An unknown user is the operator's input.
    let out = reset(
        dir.path(),
        &[
            "nobody@northwind-demo.com",
            "--tenant",
            "demo",
            "--path",
            "push",
        ],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // No tenant named: never the demo tenant for a command that writes.
    let out = reset(dir.path(), &[&user]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
}

/// The demo's Path B end to end through the binary: the command serves the approval pages
/// itself; the manager (this test) finds the card in the emulated tenant's Teams sink, opens
/// the approve link, presses the button; the command ends 0 with the reset done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_manager_approves_from_the_card_and_the_command_completes() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let user = demo_user(Script::Approve);
    let mut child = Command::new(crate::util::bin())
        .args(["reset", &user, "--tenant", "demo", "--path", "manager"])
        .args(["--reason", "phone lost on a train"])
        .current_dir(dir.path())
        .env_remove("RESETCTL_CONFIG")
        .env("RESETCTL_DATA_DIR", dir.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut outbox = None;
    let mut seen = Vec::new();
    while outbox.is_none() {
        let line = lines
            .next()
            .expect("the command printed where the card lands")
            .unwrap();
        if let Some(url) = line
            .split_whitespace()
            .find(|w| w.contains("/_emulator/outbox"))
        {
            outbox = Some(url.to_owned());
        }
        seen.push(line);
    }
    let outbox = outbox.unwrap();
    let http = reqwest::Client::new();
    // The card arrives in the Teams sink.
    let mut link = None;
    for _ in 0..200 {
        let text = http
            .get(&outbox)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if let Some(at) = text.find("/approve/vr-") {
            let start = text[..at].rfind("http://").unwrap();
            let end = text[at..]
                .find(|c: char| c == '"' || c == '\\' || c.is_whitespace())
                .unwrap();
            link = Some(text[start..at + end].to_owned());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let link = link.expect("an approve link in the manager's card");
    // Open the page (as the manager's browser), then press Approve.
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = page.text().await.unwrap();
    assert!(body.contains("phone lost on a train"), "{body}");
    let csrf = body
        .split_once("name=\"csrf\" value=\"")
        .map(|(_, rest)| rest.split('"').next().unwrap().to_owned())
        .unwrap();
    let origin = link.split("/approve/").next().unwrap().to_owned();
    let done = http
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .header("origin", origin)
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    let status = tokio::task::spawn_blocking(move || {
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        (child.wait().unwrap(), rest)
    })
    .await
    .unwrap();
    let (exit, rest) = status;
    let text = format!("{}\n{}", seen.join("\n"), rest.join("\n"));
    assert_eq!(exit.code(), Some(0), "{text}");
    assert!(text.contains("completed (manager_card)"), "{text}");
}
