//! `resetctl runs`: listing, showing and approving stored runs, approvals bound to the plan
//! and written to the audit trail.

use std::path::Path;

use jiff::Timestamp;
use resetctl::engine::plan::{Budget, Estimate, Plan, PlannedStep, PlannedUser};
use resetctl::store::{NewRun, PlanDocument, RunId, RunStore, SqliteStore};
use resetctl::targeting::Bucket;

use crate::util::{code, resetctl_env, stderr, stdout};

fn plan() -> Plan {
    let steps = vec![PlannedStep {
        key: "0:revoke_sessions".into(),
        description: "revoke_sessions".into(),
        requests_per_user: 1,
        budget: Budget::DirectoryWrite,
    }];
    let user = |id: &str, bucket| PlannedUser {
        id: id.into(),
        upn: format!("{id}@contoso.com"),
        display_name: id.into(),
        bucket,
        reason: "".into(),
        risk_level: None,
        roles: vec![],
        steps: vec!["0:revoke_sessions".to_owned()].into(),
    };
    Plan {
        unusable_mobiles: 0,
        resolved_by: None,
        recovery: None,
        playbook_name: "password-spray".into(),
        playbook_sha256: "0".repeat(64),
        tenant: "demo".into(),
        tenant_users: 10,
        estimate: Estimate::from_quota(&steps, 2, 1),
        steps,
        users: vec![
            user("a", Bucket::Automated),
            user("b", Bucket::Automated),
            user("g", Bucket::Privileged),
        ],
        unresolved: vec![],
        bad_rows: vec![],
    }
}

async fn stored_run(data: &Path) -> (RunId, String) {
    let store = SqliteStore::open(&data.join("runs.sqlite")).unwrap();
    let plan = plan();
    let id = RunId("20261123T100000Z-abcdef".into());
    store
        .create_run(NewRun {
            id: id.clone(),
            created_at: Timestamp::now(),
            playbook_name: plan.playbook_name.clone(),
            playbook_path: "playbooks/password-spray.yaml".into(),
            tenant: "demo".into(),
            plan_hash: plan.hash(),
            plan: PlanDocument::text(serde_json::to_string(&plan).unwrap()),
        })
        .await
        .unwrap();
    (id, plan.hash())
}

fn runs(data: &Path, args: &[&str]) -> std::process::Output {
    let mut full = vec!["runs"];
    full.extend_from_slice(args);
    resetctl_env(data, &full, &[("RESETCTL_DATA_DIR", data)])
}

#[tokio::test]
async fn list_show_and_approve_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (id, hash) = stored_run(data).await;

    let out = runs(data, &["list"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&id.0) && stdout(&out).contains("planned"),
        "{}",
        stdout(&out)
    );

    let out = runs(data, &["approve", &id.0, "--as", "alice"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("1 approval(s)"), "{}", stdout(&out));

    let again = runs(data, &["approve", &id.0, "--as", "alice"]);
    assert_eq!(code(&again), 1, "the same operator cannot approve twice");
    assert!(
        stderr(&again).contains("already approved"),
        "{}",
        stderr(&again)
    );

    let out = runs(data, &["approve", &id.0, "--as", "bob"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("2 approval(s)"), "{}", stdout(&out));

    let out = resetctl_env(
        data,
        &["--output", "json", "runs", "show", &id.0],
        &[("RESETCTL_DATA_DIR", data)],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let view: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(view["approvals_of_this_plan"], 2);
    assert_eq!(view["buckets"]["automated"], 2);
    assert_eq!(view["buckets"]["privileged"], 1);
    assert_eq!(view["plan_hash"], hash);

    // Every approval, refused ones too, is in a trail that verifies.
    let trail = data.join("audit.jsonl");
    let out = resetctl_env(
        data,
        &["audit", "verify", trail.to_str().unwrap()],
        &[("RESETCTL_DATA_DIR", data)],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("ok: 3 records"), "{}", stdout(&out));
    let text = std::fs::read_to_string(&trail).unwrap();
    assert_eq!(text.matches("\"action\":\"run.approve\"").count(), 3);
    assert!(text.contains("\"outcome\":\"refused\""));
}

#[tokio::test]
async fn unknown_runs_and_missing_stores_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = runs(data, &["list"]);
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out).trim(), "no runs");
    assert!(
        !data.join("runs.sqlite").exists(),
        "listing must not create a store"
    );

    let out = runs(data, &["show", "nope"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("no run store"), "{}", stderr(&out));

    stored_run(data).await;
    let out = runs(data, &["approve", "nope", "--as", "alice"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no run with id nope"),
        "{}",
        stderr(&out)
    );
}

/// The configuration's `audit:` section decides where the trail lives and whether it is
/// keyed: `runs approve` writes an HMAC-chained record there, which verifies only with the key.
#[tokio::test]
async fn the_audit_section_of_the_configuration_opens_a_keyed_trail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (id, _) = stored_run(&data).await;
    std::fs::write(dir.path().join("audit.key"), "5a".repeat(32)).unwrap();
    std::fs::write(
        dir.path().join("resetctl.yaml"),
        "audit:\n  path: trail/keyed.jsonl\n  key_file: audit.key\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("trail")).unwrap();
    let config = dir.path().join("resetctl.yaml");
    let env: [(&str, &Path); 2] = [("RESETCTL_DATA_DIR", &data), ("RESETCTL_CONFIG", &config)];
    let out = resetctl_env(
        dir.path(),
        &["runs", "approve", &id.0, "--as", "alice"],
        &env,
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        !data.join("audit.jsonl").exists(),
        "the default trail was used"
    );
    let trail = std::fs::read_to_string(dir.path().join("trail/keyed.jsonl")).unwrap();
    assert!(trail.contains("\"alg\":\"hmac-sha256\""), "{trail}");
    // The data directory is named so `audit verify` reads this test's run store, not $HOME's.
    let data_only: [(&str, &Path); 1] = [("RESETCTL_DATA_DIR", &data)];
    let unkeyed = resetctl_env(
        dir.path(),
        &["audit", "verify", "trail/keyed.jsonl"],
        &data_only,
    );
    assert_ne!(code(&unkeyed), 0, "a keyed trail verified without its key");
    let keyed = resetctl_env(
        dir.path(),
        &[
            "audit",
            "verify",
            "trail/keyed.jsonl",
            "--key-file",
            "audit.key",
        ],
        &data_only,
    );
    assert_eq!(code(&keyed), 0, "{}{}", stdout(&keyed), stderr(&keyed));

    // A typo under `audit:` is a configuration error naming the line, and nothing is recorded.
    std::fs::write(&config, "audit:\n  key_fiel: audit.key\n").unwrap();
    let out = resetctl_env(dir.path(), &["runs", "approve", &id.0, "--as", "bob"], &env);
    assert_eq!(code(&out), 4, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("resetctl.yaml:2:"),
        "{}",
        stderr(&out)
    );
}
