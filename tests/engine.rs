//! The mass-reset engine end to end: the real binary against the emulated tenant, asserting
//! from the emulator's own write log (`/_emulator/writes`) what was written to whom.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use resetctl::emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;

use crate::util::{bin, code, stderr, stdout};

const SECRET_VAR: &str = "ENGINE_TEST_SECRET";

/// A workspace: an emulated tenant, a config naming it `t`, a data dir, playbooks.
struct Bench {
    emulator: RunningEmulator,
    dir: tempfile::TempDir,
}

impl Bench {
    async fn from_tenant_file(yaml: &str) -> Bench {
        Bench::from_tenant_file_with(yaml, |_| {}).await
    }

    /// A tenant file with the emulator's knobs adjusted by `tweak`.
    async fn from_tenant_file_with(yaml: &str, tweak: impl FnOnce(&mut EmulatorConfig)) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tenant.yaml");
        std::fs::write(&file, yaml).unwrap();
        let mut config = EmulatorConfig::from_tenant_file(&file).unwrap();
        tweak(&mut config);
        Bench::start(config, dir).await
    }

    async fn seeded(users: u32, seed: u64, time_scale: f64) -> Bench {
        let mut config = EmulatorConfig::seeded(users, seed);
        config.time_scale = time_scale;
        Bench::start(config, tempfile::tempdir().unwrap()).await
    }

    async fn start(config: EmulatorConfig, dir: tempfile::TempDir) -> Bench {
        let time_scale = config.time_scale;
        let emulator = RunningEmulator::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let info = emulator.info();
        let yaml = format!(
            "tenants:\n  t:\n    tenant_id: {}\n    graph_url: {}\n    token_url: {}\n    \
             scope: https://graph.microsoft.com/.default\n    time_scale: {time_scale}\n    \
             runner_accounts: [ops.runner@contoso.example]\n    \
             apps:\n      - client_id: {}\n        client_secret_env: {SECRET_VAR}\n",
            info.tenant_id, info.graph_url, info.token_url, info.client_id
        );
        std::fs::write(dir.path().join("resetctl.yaml"), yaml).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        Bench { emulator, dir }
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
            .args(["--config", self.path("resetctl.yaml").to_str().unwrap()])
            .args(args)
            .current_dir(self.dir.path())
            .env(SECRET_VAR, &self.emulator.info().client_secret)
            .env("RESETCTL_DATA_DIR", self.path("data"))
            .env_remove("RESETCTL_CONFIG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        command
    }

    /// Run `resetctl` in a blocking thread so the in-process emulator keeps serving.
    async fn resetctl(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// `resetctl run PLAYBOOK --tenant t --execute --yes`.
    async fn execute(&self, playbook: &std::path::Path) -> Output {
        self.resetctl(&[
            "run",
            playbook.to_str().unwrap(),
            "--tenant",
            "t",
            "--execute",
            "--yes",
        ])
        .await
    }

    async fn inspect(&self, what: &str) -> Value {
        let url = format!("{}/{what}", self.emulator.info().inspect_url);
        reqwest::get(&url).await.unwrap().json().await.unwrap()
    }

    /// Writes that changed the directory: (target user id, kind) → count.
    async fn writes(&self) -> BTreeMap<(String, String), usize> {
        let log = self.inspect("writes").await;
        let mut counts = BTreeMap::new();
        for w in log["writes"].as_array().unwrap() {
            if w["applied"] != Value::Bool(true) {
                continue;
            }
            let target = w["target"].as_str().unwrap_or_default().to_owned();
            *counts
                .entry((
                    target,
                    kind(w["method"].as_str().unwrap(), w["path"].as_str().unwrap()),
                ))
                .or_default() += 1;
        }
        counts
    }
}

/// A write's kind from its method and path.
fn kind(method: &str, path: &str) -> String {
    if path.ends_with("/revokeSignInSessions") {
        "revoke".into()
    } else if method == "PATCH" && path.starts_with("/users/") {
        "password".into()
    } else if method == "DELETE" && path.contains("/authentication/") {
        let kind = path.split('/').nth(4).unwrap_or("method");
        format!("delete:{kind}")
    } else {
        format!("{method} {path}")
    }
}

const TENANT: &str = r#"
verified_domain: contoso.example
users:
  - { upn: bg-01@contoso.example, display_name: Break Glass, roles: [Global Administrator] }
  - { upn: admin.active@contoso.example, roles: [Global Administrator] }
  - { upn: admin.eligible@contoso.example, eligible_roles: [Security Administrator] }
  - { upn: admin.group@contoso.example }
  - { upn: synced.user@contoso.example, synced: true }
  - { upn: disabled.user@contoso.example, account_enabled: false }
  - { upn: svc-backup@contoso.example }
  - { upn: ops.runner@contoso.example }
  - { upn: alice@contoso.example, methods: [phone, softwareOath, authenticator] }
  - { upn: bob@contoso.example, methods: [phone] }
  - { upn: carol@contoso.example, methods: [] }
  - { upn: dave@contoso.example, mobile_phone: "+1 425 555 0100", methods: [softwareOath, fido2] }
groups:
  - display_name: Tier0
    role_assignable: true
    members: [admin.group@contoso.example]
    roles: [Privileged Role Administrator]
"#;

const PLAYBOOK: &str = "name: e2e
targets: [all_users: {}]
exclude: { break_glass: [bg-01@contoso.example], upn_patterns: ['svc-*@*'] }
privileged: { roles: critical, include_eligible: true, handling: manual }
guards: { max_users: 100, max_fraction_of_tenant: 1.0, stop_when_error_rate_above: 0.5, approvals_required: 0 }
disabled_users: revoke_only
steps:
  - reset_password: { mode: scramble, force_change: true, require_mfa: true }
  - revoke_sessions
  - require_mfa_reregistration: { remove: [phone, softwareOath] }
";

async fn user_ids(bench: &Bench) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    for upn in [
        "bg-01",
        "admin.active",
        "admin.eligible",
        "admin.group",
        "synced.user",
        "disabled.user",
        "svc-backup",
        "ops.runner",
        "alice",
        "bob",
        "carol",
        "dave",
    ] {
        let user = bench.inspect(&format!("users/{upn}@contoso.example")).await;
        ids.insert(
            user["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{upn}: {user}"))
                .to_owned(),
            upn.to_owned(),
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_automated_users_are_written_and_exactly_as_the_steps_say() {
    let bench = Bench::from_tenant_file(TENANT).await;
    let playbook = bench.write("e2e.yaml", PLAYBOOK);
    let out = bench.execute(&playbook).await;
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));

    let names = user_ids(&bench).await;
    let mut by_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((target, kind), count) in bench.writes().await {
        assert_eq!(
            count, 1,
            "{kind} on {} written {count} times",
            names[&target]
        );
        by_user
            .entry(names[&target].clone())
            .or_default()
            .insert(kind);
    }
    let set = |kinds: &[&str]| kinds.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
    let expected = BTreeMap::from([
        (
            "alice".to_string(),
            set(&[
                "password",
                "revoke",
                "delete:phoneMethods",
                "delete:softwareOathMethods",
            ]),
        ),
        (
            "bob".to_string(),
            set(&["password", "revoke", "delete:phoneMethods"]),
        ),
        ("carol".to_string(), set(&["password", "revoke"])),
        (
            "dave".to_string(),
            set(&["password", "revoke", "delete:softwareOathMethods"]),
        ),
        ("disabled.user".to_string(), set(&["revoke"])),
    ]);
    assert_eq!(
        by_user, expected,
        "break-glass, admins, synced, service and runner accounts untouched"
    );

    // The manual queue holds the privileged and hybrid users with their reasons.
    let runs = bench.resetctl(&["--output", "json", "runs", "list"]).await;
    let runs: Value = serde_json::from_str(&stdout(&runs)).unwrap();
    let run_id = runs[0]["id"].as_str().unwrap();
    let queue = std::fs::read_to_string(
        bench
            .path("data")
            .join("runs")
            .join(run_id)
            .join("manual-queue.csv"),
    )
    .unwrap();
    for (upn, why) in [
        ("admin.active", "Global Administrator"),
        ("admin.eligible", "PIM-eligible"),
        ("admin.group", "role-assignable group"),
        ("synced.user", "hybrid"),
    ] {
        let line = queue
            .lines()
            .find(|l| l.contains(upn))
            .unwrap_or_else(|| panic!("{upn} not queued:\n{queue}"));
        assert!(line.contains(why), "{upn}: {line}");
    }
    let results = std::fs::read_to_string(
        bench
            .path("data")
            .join("runs")
            .join(run_id)
            .join("results.csv"),
    )
    .unwrap();
    assert_eq!(
        results
            .lines()
            .filter(|l| l.contains(",succeeded,"))
            .count(),
        13,
        "{results}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing_and_lists_the_calls() {
    let bench = Bench::from_tenant_file(TENANT).await;
    let playbook = bench.write("e2e.yaml", PLAYBOOK);
    let out = bench
        .resetctl(&["run", playbook.to_str().unwrap(), "--tenant", "t"])
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("dry run: nothing was written"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("alice@contoso.example"),
        "{}",
        stdout(&out)
    );
    assert!(bench.writes().await.is_empty(), "a dry run wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_refuse_with_exit_3_and_write_nothing() {
    let bench = Bench::from_tenant_file(TENANT).await;
    let playbook = bench.write(
        "e2e.yaml",
        &PLAYBOOK.replace("max_users: 100", "max_users: 2"),
    );
    let out = bench.execute(&playbook).await;
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("max_users"), "{}", stderr(&out));
    assert!(bench.writes().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_bound_to_the_exact_plan() {
    let bench = Bench::from_tenant_file(TENANT).await;
    let text = PLAYBOOK.replace("approvals_required: 0", "approvals_required: 2");
    let playbook = bench.write("e2e.yaml", &text);
    let pb = playbook.to_str().unwrap();
    let execute = ["run", pb, "--tenant", "t", "--execute", "--yes"];

    let out = bench.resetctl(&execute).await;
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("0 of 2"), "{}", stderr(&out));

    let plan = bench
        .resetctl(&["--output", "json", "plan", pb, "--tenant", "t"])
        .await;
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    let run_id = plan["run"].as_str().unwrap();
    for operator in ["alice.soc", "bob.soc"] {
        let out = bench
            .resetctl(&["runs", "approve", run_id, "--as", operator])
            .await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }

    // A changed plan (here: the playbook's bytes) needs new approvals.
    let changed = bench.write("e2e.yaml", &format!("{text}# edited\n"));
    let out = bench.execute(&changed).await;
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(bench.writes().await.is_empty());

    bench.write("e2e.yaml", &text);
    let out = bench.resetctl(&execute).await;
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    assert!(!bench.writes().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_stops_a_failing_run() {
    // The app is a Helpdesk Administrator: it may not reset Groups Administrators (not a
    // critical role, so they are automated) and every one of those writes fails with 403.
    let mut tenant = String::from(
        "verified_domain: contoso.example\napps:\n  - { display_name: runner, role: Helpdesk Administrator }\nusers:\n",
    );
    for i in 0..60 {
        tenant.push_str(&format!(
            "  - {{ upn: ga{i:02}@contoso.example, roles: [Groups Administrator] }}\n"
        ));
    }
    let bench = Bench::from_tenant_file(&tenant).await;
    let playbook = bench.write(
        "breaker.yaml",
        "name: breaker\ntargets: [all_users: {}]\nguards: { max_fraction_of_tenant: 1.0, stop_when_error_rate_above: 0.2, approvals_required: 0 }\nsteps:\n  - reset_password: { mode: scramble, force_change: true, require_mfa: true }\n",
    );
    let out = bench
        .resetctl(&[
            "--output",
            "json",
            "run",
            playbook.to_str().unwrap(),
            "--tenant",
            "t",
            "--execute",
            "--yes",
            "--concurrency",
            "4",
        ])
        .await;
    assert_eq!(code(&out), 2, "{}\n{}", stdout(&out), stderr(&out));
    let summary: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(summary["tripped"], true, "{summary}");
    assert!(
        summary["users_not_started"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert!(summary["failed"].as_u64().unwrap() >= 20, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_csv_rows_stop_the_plan_unless_skipped() {
    let bench = Bench::from_tenant_file(TENANT).await;
    let long = "x".repeat(1 << 20);
    let csv = format!(
        "\u{feff}UPN,notes\nAlice@Contoso.example,\"leaked, twice\"\nALICE@contoso.example,dup\nghost@contoso.example,gone\n{long}@contoso.example,junk\nbob@contoso.example,\n"
    );
    let targets = bench.write("dump.csv", &csv);
    let playbook = bench.write(
        "csv.yaml",
        "name: csv\ntargets: [csv: { path: dump.csv, column: upn }]\nsteps: [revoke_sessions]\n",
    );
    let pb = playbook.to_str().unwrap();
    let out = bench
        .resetctl(&[
            "plan",
            pb,
            "--tenant",
            "t",
            "--targets",
            targets.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("dump.csv") && stderr(&out).contains("line 5"),
        "{}",
        stderr(&out)
    );

    let out = bench
        .resetctl(&[
            "--output",
            "json",
            "plan",
            pb,
            "--tenant",
            "t",
            "--skip-bad-rows",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let summary: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        summary["buckets"][0],
        serde_json::json!(["automated", 2]),
        "{summary}"
    );
    assert_eq!(summary["unresolved"], 1);
    assert_eq!(summary["bad_rows"], 1);
    assert!(bench.writes().await.is_empty(), "plan is read-only");
}

/// Kill a 2,000-user run at random points, resume it each time, and check from the
/// emulator's log that every planned (user, step) was written exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_without_doing_any_user_twice_or_skipping_one() {
    // At a time scale of 15 the client paces 300 writes/s: the ~3,400 planned writes need
    // over 11 s of quota, while the five kills below land within 6.5 s of run time.
    let bench = Bench::seeded(2_000, 11, 15.0).await;
    let playbook = bench.write(
        "crash.yaml",
        "name: crash\ntargets: [all_users: {}]\nexclude: { upn_patterns: ['svc-*@*'] }\nguards: { max_users: 5000, max_fraction_of_tenant: 1.0, stop_when_error_rate_above: 0.5, approvals_required: 0 }\ndisabled_users: skip\nsteps:\n  - reset_password: { mode: scramble, force_change: true, require_mfa: true }\n  - revoke_sessions\n",
    );
    let pb = playbook.to_str().unwrap().to_owned();
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test kill seed {seed}");
    let mut rng = seed;
    let mut next_delay = || {
        // xorshift: a reproducible spread of kill points from the printed seed.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        Duration::from_millis(300 + rng % 1_000)
    };

    let run_id = |bench: &Bench| {
        let out = bench
            .command(&["--output", "json", "runs", "list"])
            .output()
            .unwrap();
        let runs: Value = serde_json::from_str(&stdout(&out)).unwrap();
        runs.as_array()
            .and_then(|r| r.iter().find(|r| r["status"] != "planned"))
            .map(|r| r["id"].as_str().unwrap().to_owned())
    };
    let mut kills = 0;
    for _ in 0..5 {
        let args: Vec<String> = match run_id(&bench) {
            Some(id) => vec!["run".into(), "--resume".into(), id],
            None => vec![
                "run".into(),
                pb.clone(),
                "--tenant".into(),
                "t".into(),
                "--execute".into(),
                "--yes".into(),
            ],
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = bench
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(next_delay()).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    // Finish: resume until the run says it is done.
    let id = run_id(&bench).expect("the run was started");
    let out = bench.resetctl(&["run", "--resume", &id]).await;
    assert!(
        matches!(code(&out), 0 | 2),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        kills >= 3,
        "only {kills} kills landed mid-run; the run is too fast for this test"
    );

    let plan: Value = serde_json::from_str(
        &std::fs::read_to_string(bench.path("data").join("runs").join(&id).join("plan.json"))
            .unwrap(),
    )
    .unwrap();
    let mut expected = BTreeSet::new();
    for user in plan["users"].as_array().unwrap() {
        for step in user["steps"].as_array().unwrap() {
            let kind = match step.as_str().unwrap() {
                "0:reset_password" => "password",
                "1:revoke_sessions" => "revoke",
                other => panic!("unexpected step {other}"),
            };
            expected.insert((user["id"].as_str().unwrap().to_owned(), kind.to_owned()));
        }
    }
    let writes = bench.writes().await;
    let twice: Vec<_> = writes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
    let written: BTreeSet<_> = writes.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&written).collect();
    let extra: Vec<_> = written.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "{} planned writes never made, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert!(
        extra.is_empty(),
        "{} unplanned writes, e.g. {:?}",
        extra.len(),
        extra.first()
    );
    assert!(
        expected.len() > 3_000,
        "the plan covers the tenant: {}",
        expected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_group_memberships_are_removed_once_when_due() {
    const GROUP: &str = "7d0c3f5e-1b2a-4c6d-8e9f-0a1b2c3d4e5f";
    let tenant = format!(
        "verified_domain: contoso.example\nusers:\n  - {{ upn: alice@contoso.example }}\n  - {{ upn: bob@contoso.example }}\ngroups:\n  - {{ id: {GROUP}, display_name: CA-Exclusion-Incident, members: [] }}\n"
    );
    let bench = Bench::from_tenant_file(&tenant).await;
    let playbook = bench.write(
        "group.yaml",
        &format!(
            "name: group\ntargets: [all_users: {{}}]\nguards: {{ max_fraction_of_tenant: 1.0, approvals_required: 0 }}\nsteps:\n  - reset_password: {{ mode: scramble, force_change: true, require_mfa: true }}\n  - add_to_group: {{ group_id: {GROUP}, expiry: 72h }}\n"
        ),
    );
    let out = bench.execute(&playbook).await;
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let adds = |w: &BTreeMap<(String, String), usize>, method: &str| {
        w.iter()
            .filter(|((_, kind), _)| kind.starts_with(method) && kind.contains(GROUP))
            .map(|(_, n)| *n)
            .sum::<usize>()
    };
    assert_eq!(adds(&bench.writes().await, "POST"), 2);

    // Not due yet: nothing happens.
    let out = bench.resetctl(&["runs", "expire"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing due"), "{}", stdout(&out));
    assert_eq!(adds(&bench.writes().await, "DELETE"), 0);

    // Four days later both memberships end, once.
    let later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(96))
        .unwrap()
        .to_string();
    for _ in 0..2 {
        let out = bench.resetctl(&["runs", "expire", "--at", &later]).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    assert_eq!(
        adds(&bench.writes().await, "DELETE"),
        2,
        "each membership removed exactly once"
    );
    let group = bench.inspect("users/alice@contoso.example").await;
    assert!(
        !group.to_string().contains(GROUP),
        "alice is still a member: {group}"
    );
}

/// The 429s Graph answers reach the run's summary: the emulator meters the authentication
/// methods API (4 requests a window) and the client, not told, draws 429s and counts them.
/// One user at a time, so the retries do not pile up into a storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_the_429s_graph_answered() {
    let mut tenant = String::from("verified_domain: contoso.example\nusers:\n");
    for i in 0..6 {
        tenant.push_str(&format!(
            "  - {{ upn: u{i}@contoso.example, methods: [phone] }}\n"
        ));
    }
    let bench = Bench::from_tenant_file_with(&tenant, |config| {
        config.time_scale = 20.0;
        config.auth_methods_per_10s = Some(4);
    })
    .await;
    let playbook = bench.write(
        "mfa.yaml",
        "name: mfa\ntargets: [all_users: {}]\nguards: { max_fraction_of_tenant: 1.0, approvals_required: 0 }\nsteps:\n  - require_mfa_reregistration: { remove: [phone] }\n",
    );
    let out = bench
        .resetctl(&[
            "--output",
            "json",
            "run",
            playbook.to_str().unwrap(),
            "--tenant",
            "t",
            "--execute",
            "--yes",
            "--concurrency",
            "1",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let summary: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    let stats = bench.inspect("stats").await;
    assert!(
        stats["throttled"].as_u64().unwrap() > 0,
        "no 429 drawn: {stats}"
    );
    assert_eq!(
        summary["throttled"], stats["throttled"],
        "{summary}\n{stats}"
    );
}
