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
fn what_the_configuration_cannot_do_is_refused_before_anything_happens() {
    let dir = tempfile::tempdir().unwrap();
    let user = demo_user(Script::Approve);
    // Manager approval needs signed links answered by `resetctl serve`.
    let out = reset(
        dir.path(),
        &[&user, "--tenant", "demo", "--path", "manager"],
    );
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("serve:"), "{}", stderr(&out));
    assert!(
        !dir.path().join("audit.jsonl").exists() || {
            let trail = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
            !trail.contains("verify.")
        }
    );
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
