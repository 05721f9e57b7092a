//! Hostile input through the real binary: look-alike and combo-list breach CSVs, secrets
//! pasted into the configuration, huge or endless files, spreadsheet formulas, file modes and
//! links, endpoints of two clouds, a non-loopback emulator.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use resetctl::emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;

use crate::util::{bin, code, stderr, stdout};

const SECRET_VAR: &str = "HOSTILE_TEST_SECRET";

/// What an operator might paste by mistake: an Entra client secret.
const PASTED: &str = "Zx8Q~kV3.pP-aBcDeFgHiJkLmNoPqRsTuVwXyZ0123";

/// An emulated tenant, a `resetctl.yaml` naming it `t`, and a folder for everything else.
struct Lab {
    emulator: RunningEmulator,
    dir: tempfile::TempDir,
}

impl Lab {
    async fn new(tenant: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tenant.yaml");
        std::fs::write(&file, tenant).unwrap();
        let mut config = EmulatorConfig::from_tenant_file(&file).unwrap();
        config.time_scale = 10.0;
        let emulator = RunningEmulator::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let lab = Lab { emulator, dir };
        lab.write_config(&format!("client_secret_env: {SECRET_VAR}"));
        lab
    }

    /// `resetctl.yaml` for the emulator with `credential` as the app's credential line.
    fn write_config(&self, credential: &str) {
        let info = self.emulator.info();
        self.write(
            "resetctl.yaml",
            &format!(
                "tenants:\n  t:\n    tenant_id: {}\n    graph_url: {}\n    token_url: {}\n    \
                 time_scale: 10\n    apps:\n      - client_id: {}\n        {credential}\n",
                info.tenant_id, info.graph_url, info.token_url, info.client_id
            ),
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// `resetctl --config resetctl.yaml ARGS` in the lab with umask 022 (so that a file's
    /// mode says what resetctl asked for) and at most `limit_kib` of address space when set.
    fn command(&self, args: &[&str], limit_kib: Option<u64>) -> Command {
        self.command_with_config(&self.path("resetctl.yaml"), args, limit_kib)
    }

    fn command_with_config(&self, config: &Path, args: &[&str], limit_kib: Option<u64>) -> Command {
        let limit = limit_kib.map_or(String::new(), |k| format!("ulimit -v {k}; "));
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("umask 022; {limit}exec \"$0\" \"$@\""))
            .arg(bin())
            .args(["--config", config.to_str().unwrap()])
            .args(args)
            // Few malloc arenas: their reserved address space counts against the limit.
            .env("MALLOC_ARENA_MAX", "2")
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
        self.resetctl_limited(args, None).await
    }

    async fn resetctl_limited(&self, args: &[&str], limit_kib: Option<u64>) -> Output {
        let mut command = self.command(args, limit_kib);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// `resetctl --output json plan PLAYBOOK --tenant t EXTRA...`, parsed.
    async fn plan_json(&self, playbook: &Path, extra: &[&str]) -> (Output, Value) {
        let mut args = vec![
            "--output",
            "json",
            "plan",
            playbook.to_str().unwrap(),
            "--tenant",
            "t",
        ];
        args.extend_from_slice(extra);
        let out = self.resetctl(&args).await;
        let summary = serde_json::from_str(&stdout(&out)).unwrap_or(Value::Null);
        (out, summary)
    }
}

/// Every file under `dir` (recursively), with its content.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

/// Standard error with miette's wrapping undone: one space between words, frames dropped.
fn flat(out: &Output) -> String {
    stderr(out)
        .split_whitespace()
        .filter(|w| !matches!(*w, "│" | "×" | "╰─▶" | "├─▶"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Both outputs with every space and frame removed: a secret cannot hide behind a line break.
fn squashed(out: &Output) -> String {
    format!("{} {}", stdout(out), flat(out))
        .split_whitespace()
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    let haystack = String::from_utf8_lossy(haystack).to_lowercase();
    haystack.contains(&needle.to_lowercase())
}

const TENANT: &str = "verified_domain: contoso.example
users:
  - { upn: frank.ruiz@contoso.example, display_name: Frank Ruiz }
  - { upn: alice@contoso.example, display_name: Alice }
  - { upn: bob@contoso.example, display_name: Bob }
  - { upn: carol@contoso.example, display_name: Carol }
";

const CSV_PLAYBOOK: &str = "name: dump
targets: [csv: { path: dump.csv, column: upn }]
guards: { max_users: 100, max_fraction_of_tenant: 1.0, approvals_required: 0 }
steps: [revoke_sessions]
";

/// A Kelvin sign (U+212A) lower-cases to `k`: the row must be a bad row by line, never a
/// match for frank.ruiz.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_alike_upn_is_a_bad_row_never_a_match() {
    let lab = Lab::new(TENANT).await;
    lab.write(
        "dump.csv",
        "upn\nalice@contoso.example\nfran\u{212A}.ruiz@contoso.example\n",
    );
    let playbook = lab.write("dump.yaml", CSV_PLAYBOOK);
    let (out, _) = lab.plan_json(&playbook, &[]).await;
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        flat(&out).contains("line 3") && flat(&out).contains("U+212A"),
        "{}",
        stderr(&out)
    );
    let (out, summary) = lab.plan_json(&playbook, &["--skip-bad-rows"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(summary["bad_rows"], 1, "{summary}");
    assert_eq!(summary["automated_with_steps"], 1, "{summary}");
    let planned: Value = serde_json::from_str(
        &std::fs::read_to_string(
            lab.path("data/runs")
                .join(summary["id"].as_str().unwrap())
                .join("plan.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let upns: Vec<&str> = planned["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["upn"].as_str().unwrap())
        .collect();
    assert_eq!(upns, ["alice@contoso.example"]);
}

/// `email:password` (and `;`, `|`, tab, space) rows: the identifier is the target, the
/// password is dropped before anything is stored, one warning counts the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combo_list_rows_keep_the_identifier_and_drop_the_password() {
    let lab = Lab::new(TENANT).await;
    let passwords = [
        "Hunter2!",
        "S3cret;x",
        "Pa55|word",
        "tab-pass",
        "space pass",
    ];
    lab.write(
        "dump.csv",
        &format!(
            "upn\nalice@contoso.example:{}\nbob@contoso.example;{}\ncarol@contoso.example|{}\n\
             \"frank.ruiz@contoso.example\t{}\"\nAlice@Contoso.example {}\n",
            passwords[0], passwords[1], passwords[2], passwords[3], passwords[4]
        ),
    );
    let playbook = lab.write("dump.yaml", CSV_PLAYBOOK);
    let (out, summary) = lab.plan_json(&playbook, &[]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(summary["automated_with_steps"], 4, "{summary}");
    assert_eq!(summary["unresolved"], 0, "{summary}");
    let err = stderr(&out);
    assert_eq!(err.matches("combo list").count(), 1, "warned once: {err}");
    assert!(err.contains("rows=5"), "{err}");
    let mut files = all_files(&lab.path("data"));
    files.push((PathBuf::from("output"), squashed(&out).into_bytes()));
    for (path, bytes) in &files {
        for password in passwords
            .iter()
            .flat_map(|p| [p.to_string(), p.replace(' ', "")])
        {
            assert!(
                !contains(bytes, &password),
                "{password} in {}",
                path.display()
            );
        }
    }
    // A combo list with no header: the error does not print its first line.
    lab.write("dump.csv", "alice@contoso.example:Hunter2!\n");
    let (out, _) = lab.plan_json(&playbook, &[]).await;
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(flat(&out).contains("looks like data"), "{}", stderr(&out));
    assert!(!squashed(&out).contains("Hunter2"), "{}", stderr(&out));
}

/// A secret pasted where the configuration wants a variable's name, a file name or another
/// value is never printed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_pasted_into_the_configuration_is_never_printed() {
    let lab = Lab::new(TENANT).await;
    let playbook = lab.write("dump.yaml", CSV_PLAYBOOK);
    lab.write("dump.csv", "upn\nalice@contoso.example\n");
    for credential in [
        format!("client_secret_env: \"{PASTED}\""),
        format!("client_secret_file: \"{PASTED}\""),
        format!("client_secret_env: {SECRET_VAR}\n        signing_alg: {PASTED}"),
        format!("certificate_file: \"{PASTED}\""),
        format!("certificate_file: cert.pem\n        private_key_file: \"{PASTED}\""),
        format!("client_secret_env: {SECRET_VAR}\n        {PASTED}: x"),
        format!("client_secret_env: {SECRET_VAR}\n    tenant_size: {PASTED}"),
    ] {
        lab.write_config(&credential);
        let (out, _) = lab.plan_json(&playbook, &[]).await;
        assert_eq!(code(&out), 4, "{credential}: {}", stderr(&out));
        assert!(
            !squashed(&out).contains("Zx8Q~kV3"),
            "{credential}: {}",
            stderr(&out)
        );
    }
}

/// After a parse error each top-level section was parsed again from the start of the file:
/// quadratic. A megabyte of top-level keys is reported at once.
#[test]
fn a_large_invalid_playbook_is_reported_in_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("name: big\nsteps: [revoke_sessions]\n");
    let mut n = 0;
    while text.len() < 1_000_000 {
        text.push_str(&format!("k{n}: 1\n"));
        n += 1;
    }
    let file = dir.path().join("big.yaml");
    std::fs::write(&file, &text).unwrap();
    let started = Instant::now();
    let out = Command::new(bin())
        .args(["validate", file.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_timeout(out, Duration::from_secs(30));
    let took = started.elapsed();
    let out = out.unwrap_or_else(|| panic!("validate still running after {took:?}"));
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        flat(&out).contains("unknown field `k0`"),
        "{}",
        stderr(&out)
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
}

/// Wait for `child`, killing it after `limit`; `None` when it had to be killed.
fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> Option<Output> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// 3 GiB of address space: plenty for resetctl, and a bound on what reading an endless file
/// could take from the machine.
const MEMORY_KIB: u64 = 3 * 1024 * 1024;

/// Reads stop at their limit: an endless playbook, configuration or secret file, a tenant
/// file, and a CSV "header" of millions of commas are refused, not exhausted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_and_huge_files_are_refused_not_read() {
    let lab = Lab::new(TENANT).await;
    let out = lab
        .resetctl_limited(&["validate", "/dev/zero"], Some(MEMORY_KIB))
        .await;
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        flat(&out).contains("larger than 1024 KiB"),
        "{}",
        stderr(&out)
    );

    let playbook = lab.write("dump.yaml", CSV_PLAYBOOK);
    let mut commas = String::from("upn");
    commas.push_str(&",".repeat(20_000_000));
    commas.push_str("\nalice@contoso.example\n");
    lab.write("dump.csv", &commas);
    let args = ["plan", playbook.to_str().unwrap(), "--tenant", "t"];
    let out = lab.resetctl_limited(&args, Some(MEMORY_KIB)).await;
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        flat(&out).contains("header row is longer than 64 KiB"),
        "{}",
        stderr(&out)
    );

    lab.write("dump.csv", "upn\nalice@contoso.example\n");
    lab.write_config("client_secret_file: /dev/zero");
    let out = lab.resetctl_limited(&args, Some(MEMORY_KIB)).await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        flat(&out).contains("larger than 64 KiB"),
        "{}",
        stderr(&out)
    );

    let mut command = lab.command_with_config(Path::new("/dev/zero"), &args, Some(MEMORY_KIB));
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        flat(&out).contains("larger than 1024 KiB"),
        "{}",
        stderr(&out)
    );

    let out = lab
        .resetctl_limited(
            &["emulator", "--tenant-file", "/dev/zero"],
            Some(MEMORY_KIB),
        )
        .await;
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(flat(&out).contains("larger than"), "{}", stderr(&out));
}

const SPREADSHEET_TENANT: &str = "verified_domain: contoso.example
users:
  - { upn: -dash@contoso.example, display_name: \"\\uFF1DHYPERLINK(\\\"http://evil\\\")\" }
  - { upn: pipe@contoso.example, display_name: \"|cmd!A1\" }
  - { upn: space@contoso.example, display_name: \" =1+1\" }
  - { upn: lf@contoso.example, display_name: \"\\n=1+1\" }
  - { upn: pct@contoso.example, display_name: \"%0A\" }
  - { upn: plain@contoso.example, display_name: Plain Name }
";

/// Formula starts are neutralised in every report, and a `results.csv` fed back as targets
/// names the same users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_neutralise_formulas_and_read_back_as_targets() {
    let lab = Lab::new(SPREADSHEET_TENANT).await;
    let playbook = lab.write(
        "all.yaml",
        "name: all\ntargets: [all_users: {}]\nguards: { max_users: 100, max_fraction_of_tenant: 1.0, stop_when_error_rate_above: 0.5, approvals_required: 0 }\nsteps: [revoke_sessions]\n",
    );
    let out = lab
        .resetctl(&[
            "run",
            playbook.to_str().unwrap(),
            "--tenant",
            "t",
            "--execute",
            "--yes",
            "--out",
            "first",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut reader = csv::Reader::from_path(lab.path("first/targets.csv")).unwrap();
    let names: Vec<String> = reader.records().map(|r| r.unwrap()[2].to_owned()).collect();
    for name in &names {
        assert!(
            name == "Plain Name" || name.starts_with('\''),
            "not neutralised: {name:?}"
        );
    }
    assert_eq!(names.len(), 6);
    assert!(
        lab.read("first/results.csv")
            .contains("'-dash@contoso.example")
    );

    // The results of one run are the targets of the next.
    let again = lab.write(
        "again.yaml",
        "name: again\ntargets: [csv: { path: first/results.csv, column: upn }]\nguards: { max_users: 100, max_fraction_of_tenant: 1.0, include_remediated: true }\nsteps: [revoke_sessions]\n",
    );
    let (out, summary) = lab.plan_json(&again, &[]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(summary["unresolved"], 0, "{summary}");
    assert_eq!(summary["bad_rows"], 0, "{summary}");
    assert_eq!(summary["automated_with_steps"], 6, "{summary}");
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The run store, the trail and the run's files are owner-only.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_data_is_created_owner_only() {
    let lab = Lab::new(TENANT).await;
    lab.write("dump.csv", "upn\nalice@contoso.example\n");
    let playbook = lab.write("dump.yaml", CSV_PLAYBOOK);
    let (out, summary) = lab.plan_json(&playbook, &[]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let data = lab.path("data");
    let run = data.join("runs").join(summary["id"].as_str().unwrap());
    let mut checked = 0;
    for dir in [&data, &data.join("runs"), &run] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    for (file, _) in all_files(&data) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
        checked += 1;
    }
    // runs.sqlite (and its WAL), the trail, its head and lock, plan.json and two CSVs.
    assert!(checked >= 7, "{checked}");
}

/// Report files never write through a link and never replace a file unless asked.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_files_do_not_follow_links_or_overwrite() {
    let lab = Lab::new(TENANT).await;
    lab.write("dump.csv", "upn\nalice@contoso.example\n");
    let playbook = lab.write("dump.yaml", CSV_PLAYBOOK);
    let victim = lab.write("victim.txt", "precious");
    std::fs::create_dir(lab.path("out")).unwrap();
    std::os::unix::fs::symlink(&victim, lab.path("out/targets.csv")).unwrap();
    let (out, _) = lab.plan_json(&playbook, &["--out", "out"]).await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(flat(&out).contains("--overwrite"), "{}", stderr(&out));
    assert_eq!(lab.read("victim.txt"), "precious");

    let (out, _) = lab
        .plan_json(&playbook, &["--out", "out", "--overwrite"])
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lab.read("victim.txt"), "precious");
    assert!(
        lab.read("out/targets.csv")
            .contains("alice@contoso.example")
    );
    assert_eq!(mode(&lab.path("out/targets.csv")), 0o600);

    // A second plan into the same folder leaves the first one's files alone.
    std::fs::write(lab.path("out/plan.json"), "kept").unwrap();
    let (out, _) = lab.plan_json(&playbook, &["--out", "out"]).await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(lab.read("out/plan.json"), "kept");
}

/// A secret file every user can read is warned about (the key named, not the path).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_readable_secret_file_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new(TENANT).await;
    lab.write("dump.csv", "upn\nalice@contoso.example\n");
    let playbook = lab.write("dump.yaml", CSV_PLAYBOOK);
    let secret = lab.write("secret.txt", &lab.emulator.info().client_secret);
    lab.write_config("client_secret_file: secret.txt");
    for (mode, warned) in [(0o644, true), (0o600, false)] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        let (out, _) = lab.plan_json(&playbook, &[]).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(
            flat(&out).contains("readable by every user"),
            warned,
            "{mode:o}: {}",
            stderr(&out)
        );
        assert_eq!(
            flat(&out).contains("client_secret_file"),
            warned,
            "{}",
            stderr(&out)
        );
    }
}

/// The token service and Graph of one tenant are in one cloud: the secret is not sent to a
/// token service of another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_and_token_urls_of_two_clouds_are_refused() {
    let lab = Lab::new(TENANT).await;
    lab.write("dump.csv", "upn\nalice@contoso.example\n");
    let playbook = lab.write("dump.yaml", CSV_PLAYBOOK);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    lab.write(
        "resetctl.yaml",
        &format!(
            "tenants:\n  t:\n    tenant_id: x\n    graph_url: https://graph.microsoft.us/v1.0\n    \
             token_url: http://127.0.0.1:{port}/x/oauth2/v2.0/token\n    apps:\n      \
             - client_id: a\n        client_secret_env: {SECRET_VAR}\n"
        ),
    );
    let (out, _) = lab.plan_json(&playbook, &[]).await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        flat(&out).contains("the US Government cloud")
            && flat(&out).contains("loopback (a local emulator)"),
        "{}",
        stderr(&out)
    );
}

/// The emulator hands out credentials and an unauthenticated inspection API: it listens on
/// loopback unless told `--allow-remote`.
#[test]
fn the_emulator_refuses_a_non_loopback_address() {
    let child = Command::new(bin())
        .args(["emulator", "--users", "10", "--bind", "0.0.0.0:0"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(20))
        .expect("the emulator refuses at once instead of serving");
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(flat(&out).contains("--allow-remote"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "no credentials printed");
}
