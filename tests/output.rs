//! What the binary prints and how it ends, through the real binary: one JSON document per
//! command under `--output json` (errors included, a run always `id`), the run's summary and
//! ticket, progress log lines, closed pipes, `runs show` prefixes, `--version`, the manual
//! page and completions, the README's examples, the data directory, `--resume` from
//! anywhere. Exit codes 2, 5 and 130 are asserted by the engine tests (breaker, Ctrl-C).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use resetctl::emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;

use crate::util::{TenantConfig, bin, code, start_emulator, stderr, stdout, tenant_file_config};

/// The shipped credential-dump playbook (its CSV names users of the demo tenant).
fn dump_playbook() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks/credential-dump.yaml")
        .display()
        .to_string()
}

/// A scratch folder with a data directory, where the binary runs with no configuration.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
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
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `resetctl --output json ARGS`: exactly one JSON document on stdout, or a panic.
    fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        (code(&out), one_document(&out, args))
    }
}

/// The whole of stdout as one JSON document (`from_str` refuses anything after it).
fn one_document(out: &Output, args: &[&str]) -> Value {
    let text = stdout(out);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON document ({e}):\n{text}\nstderr:\n{}",
            stderr(out)
        )
    })
}

/// A document about a run names it `id`, never `run`.
fn names_run_by_id(doc: &Value, args: &[&str]) -> String {
    assert!(doc.get("run").is_none(), "{args:?}: `run` key in {doc}");
    doc["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{args:?}: no `id` in {doc}"))
        .to_owned()
}

#[test]
fn every_command_prints_one_json_document_errors_included() {
    let s = Scratch::new();
    let pb = dump_playbook();
    std::fs::write(s.path("bad.yaml"), "name: [oops\n").unwrap();

    let (exit, doc) = s.json(&["validate", &pb]);
    assert_eq!((exit, doc.is_array()), (0, true), "{doc}");
    let (exit, doc) = s.json(&["validate", "bad.yaml"]);
    assert_eq!(exit, 1, "{doc}");
    assert!(doc.as_array().is_some_and(|d| !d.is_empty()), "{doc}");

    let args = ["plan", &pb, "--tenant", "demo", "--ticket", "INC-9"];
    let (exit, plan) = s.json(&args);
    assert_eq!(exit, 0, "{plan}");
    let planned = names_run_by_id(&plan, &args);
    assert_eq!(plan["ticket"], "INC-9");

    let args = ["run", &pb, "--tenant", "demo"];
    let (exit, dry) = s.json(&args);
    assert_eq!(exit, 0, "{dry}");
    assert_eq!(
        names_run_by_id(&dry, &args),
        planned,
        "the dry run reuses the plan"
    );
    assert_eq!(dry["dry_run"], true);
    assert!(dry["would"].as_array().is_some_and(|w| !w.is_empty()));

    let args = ["run", &pb, "--tenant", "demo", "--execute", "--yes"];
    let (exit, done) = s.json(&args);
    assert_eq!(exit, 0, "{done}");
    assert_eq!(names_run_by_id(&done, &args), planned);
    assert_eq!(done["status"], "finished");
    assert_eq!(done["ticket"], "INC-9", "the plan's ticket is the run's");
    assert_eq!(names_run_by_id(&done["plan"], &args), planned);

    let (exit, list) = s.json(&["runs", "list"]);
    assert_eq!(exit, 0);
    for run in list.as_array().unwrap() {
        names_run_by_id(run, &["runs", "list"]);
    }
    let (exit, show) = s.json(&["runs", "show", "latest"]);
    assert_eq!(exit, 0, "{show}");
    assert_eq!(names_run_by_id(&show, &["runs", "show"]), planned);
    assert_eq!(show["attempts"].as_array().map(Vec::len), Some(1), "{show}");
    // The same key names in every document about a run.
    for doc in [&plan, &dry, &done, &list[0], &show] {
        for key in ["id", "ticket", "tenant", "plan_hash"] {
            assert!(doc.get(key).is_some(), "no `{key}` in {doc}");
        }
        assert_eq!(doc["playbook"]["name"], "credential-dump", "{doc}");
        assert_eq!(doc["playbook"]["path"], pb.as_str(), "{doc}");
    }

    // Approving a run that executed is refused: an error document naming the run.
    let args = ["runs", "approve", &planned, "--as", "alice"];
    let (exit, refused) = s.json(&args);
    assert_ne!(exit, 0, "{refused}");
    assert_eq!(refused["exit"], exit, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("only a planned run")
    );
    assert_eq!(names_run_by_id(&refused, &args), planned);
    // Planning again makes a new run, which takes approvals.
    let (_, again) = s.json(&["plan", &pb, "--tenant", "demo"]);
    let fresh = names_run_by_id(&again, &["plan"]);
    assert_ne!(fresh, planned);
    let args = ["runs", "approve", &fresh, "--as", "alice"];
    let (exit, approved) = s.json(&args);
    assert_eq!(exit, 0, "{approved}");
    assert_eq!(names_run_by_id(&approved, &args), fresh);

    let (exit, expired) = s.json(&["runs", "expire"]);
    assert_eq!(
        (exit, expired["removed"].as_u64()),
        (0, Some(0)),
        "{expired}"
    );
    let (exit, verified) = s.json(&["audit", "verify"]);
    assert_eq!(
        (exit, &verified["ok"]),
        (0, &Value::Bool(true)),
        "{verified}"
    );
    let (exit, key) = s.json(&["audit", "keygen", "k.hex"]);
    assert_eq!(exit, 0, "{key}");
    assert!(key["key_id"].is_string(), "{key}");
    let (exit, man) = s.json(&["man", "--out", "man"]);
    assert_eq!(exit, 0, "{man}");
    let (exit, doctor) = s.json(&["doctor", "--tenant", "demo"]);
    assert_eq!(
        (exit, &doctor["passed"]),
        (0, &Value::Bool(true)),
        "{doctor}"
    );
    let (exit, bench) = s.json(&["bench", "plan", "--n", "10"]);
    assert_eq!(exit, 0, "{bench}");
    assert_eq!(bench["bench"], "plan");
    assert!(bench["plan"]["seconds"].is_f64(), "{bench}");
    let (exit, bench) = s.json(&["bench", "emulator", "--n", "100"]);
    assert_eq!(exit, 0, "{bench}");
    assert_eq!(bench["emulator"]["get"]["requests"], 100, "{bench}");

    // Failures: one document each, with the exit code the process returns.
    for (args, want) in [
        (&["serve"][..], 4),
        (&["frobnicate"][..], 1),
        (&["runs", "show", "nope"][..], 1),
        (&["run", "--resume", "20990101T000000Z-000000"][..], 1),
        (
            &["plan", &pb, "--tenant", "demo", "--ticket", "INC 9"][..],
            1,
        ),
    ] {
        let (exit, doc) = s.json(args);
        assert_eq!(exit, want, "{args:?}: {doc}");
        assert_eq!(doc["exit"], want, "{args:?}: {doc}");
        assert!(doc["error"].is_string(), "{args:?}: {doc}");
    }
    let (_, resume) = s.json(&["run", "--resume", "20990101T000000Z-000000"]);
    assert_eq!(resume["id"], "20990101T000000Z-000000", "{resume}");

    // The emulator's one line is its document.
    let mut child = s
        .command(&["--output", "json", "emulator", "--users", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let info: Value = serde_json::from_str(&line).unwrap();
    assert!(info["graph_url"].is_string(), "{info}");
}

/// The exit codes that need no emulator of their own: 0, 1, 3, 4.
#[test]
fn exit_codes_are_as_documented() {
    let s = Scratch::new();
    let pb = dump_playbook();
    assert_eq!(code(&s.run(&["validate", &pb])), 0);
    std::fs::write(s.path("bad.yaml"), "name: [oops\n").unwrap();
    assert_eq!(code(&s.run(&["validate", "bad.yaml"])), 1);
    // A guard refuses: at most one user.
    let text = std::fs::read_to_string(&pb)
        .unwrap()
        .replace("max_users: 2000", "max_users: 1")
        .replace(
            "path: credential-dump.csv",
            &format!(
                "path: {}",
                Path::new(&pb)
                    .with_file_name("credential-dump.csv")
                    .display()
            ),
        );
    std::fs::write(s.path("tight.yaml"), text).unwrap();
    let out = s.run(&[
        "run",
        "tight.yaml",
        "--tenant",
        "demo",
        "--execute",
        "--yes",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // Its tabletop is refused the same way, and still writes its report.
    assert_eq!(
        code(&s.run(&["tabletop", "tight.yaml", "--report", "tight.html"])),
        3
    );
    assert!(s.path("tight.html").is_file());
    // Configuration: a tenant that is not configured.
    assert_eq!(code(&s.run(&["plan", &pb, "--tenant", "nosuch"])), 4);
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let s = Scratch::new();
    let pb = dump_playbook();
    for _ in 0..2 {
        // Two plans of the same playbook are one run; execute makes the second plan new.
        assert_eq!(code(&s.run(&["plan", &pb, "--tenant", "demo"])), 0);
        let out = s.run(&["run", &pb, "--tenant", "demo", "--execute", "--yes"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    for args in [
        &["runs", "list"][..],
        &["--output", "json", "runs", "show", "latest"][..],
        &["run", &pb, "--tenant", "demo"][..],
        &["completions", "bash"][..],
        &["man"][..],
        &["--output", "json", "serve"][..],
    ] {
        let mut child = s
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            matches!(out.status.code(), Some(0 | 4)),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}

#[test]
fn runs_show_takes_a_prefix_or_latest_and_runs_list_says_utc() {
    let s = Scratch::new();
    let pb = dump_playbook();
    let (_, first) = s.json(&["plan", &pb, "--tenant", "demo"]);
    let first = first["id"].as_str().unwrap().to_owned();
    assert_eq!(
        code(&s.run(&["run", &pb, "--tenant", "demo", "--execute", "--yes"])),
        0
    );
    let (_, second) = s.json(&["plan", &pb, "--tenant", "demo"]);
    let second = second["id"].as_str().unwrap().to_owned();

    let (_, latest) = s.json(&["runs", "show", "latest"]);
    assert_eq!(latest["id"], second.as_str());
    let prefix = &first[..first.len() - 2];
    let (exit, by_prefix) = s.json(&["runs", "show", prefix]);
    assert_eq!((exit, &by_prefix["id"]), (0, &Value::from(first.clone())));
    // Both ids start with the same year: ambiguous.
    let out = s.run(&["runs", "show", &first[..4]]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("names 2 runs"), "{}", stderr(&out));

    let list = stdout(&s.run(&["runs", "list"]));
    assert!(list.contains("CREATED (UTC)"), "{list}");
    // The columns line up under their headings.
    let status_at = list.lines().next().unwrap().find("STATUS").unwrap();
    for row in list.lines().skip(1) {
        assert!(
            row[status_at..].starts_with("finished") || row[status_at..].starts_with("planned"),
            "{list}"
        );
    }
    let created = &first[..4];
    let row = list.lines().find(|l| l.starts_with(&first)).unwrap();
    let time = row.split_whitespace().nth(3).unwrap();
    assert!(
        time.ends_with('Z') && row.contains(&format!(" {created}-")),
        "{row}"
    );
}

#[test]
fn version_names_the_commit() {
    let out = crate::util::resetctl(&["--version"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let version = env!("CARGO_PKG_VERSION");
    let commit = text
        .trim()
        .strip_prefix(&format!("resetctl {version} (commit "))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{text}"));
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert!(commit.starts_with(&head), "{commit} is not {head}"),
        None => assert_eq!(commit, "unknown"),
    }
}

#[test]
fn the_manual_page_and_powershell_completions_are_generated() {
    let s = Scratch::new();
    let out = s.run(&["man"]);
    assert_eq!(code(&out), 0);
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH resetctl 1"),
        "{page}"
    );
    assert!(page.contains("validate"), "{page}");
    assert_eq!(code(&s.run(&["man", "--out", "pages"])), 0);
    for page in ["resetctl.1", "resetctl-run.1", "resetctl-runs-show.1"] {
        let text = std::fs::read_to_string(s.path("pages").join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
    assert!(
        std::fs::read_to_string(s.path("pages/resetctl-run.1"))
            .unwrap()
            .contains("ticket")
    );
    let out = s.run(&["completions", "powershell"]);
    assert_eq!(code(&out), 0);
    let script = stdout(&out);
    assert!(
        script.contains("Register-ArgumentCompleter") && script.contains("validate"),
        "{script}"
    );
}

/// Every subcommand is available: `--help` promises nothing this build does not do.
#[test]
fn help_promises_nothing_that_is_not_available() {
    let help = stdout(&crate::util::resetctl(&["--help"]));
    assert!(!help.contains("not yet"), "{help}");
}

/// The README's short playbook, beside the shipped CSV on the demo tenant, keeps the
/// service and break-glass accounts out of the automated bucket, as the README says.
#[test]
fn the_readme_short_playbook_keeps_service_accounts_apart() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("A short one")
        .expect("the README's short playbook");
    let yaml = readme[start..]
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let s = Scratch::new();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/credential-dump.csv"),
        s.path("credential-dump.csv"),
    )
    .unwrap();
    std::fs::write(s.path("short.yaml"), yaml).unwrap();
    let (exit, plan) = s.json(&["plan", "short.yaml", "--tenant", "demo"]);
    assert_eq!(exit, 0, "{plan}");
    let targets =
        std::fs::read_to_string(Path::new(plan["out"].as_str().unwrap()).join("targets.csv"))
            .unwrap();
    let bucket = |upn: &str| {
        targets
            .lines()
            .find(|l| l.contains(upn))
            .and_then(|l| l.split(',').nth(3))
            .unwrap_or_else(|| panic!("{upn} not in targets.csv"))
            .to_owned()
    };
    assert_eq!(bucket("svc-backup@"), "excluded");
    assert_eq!(bucket("bg-01@"), "excluded");
    assert_eq!(plan["buckets"]["excluded"], 2, "{plan}");
}

/// "A dry run ... writes nothing to the tenant; like `plan`, it stores the plan as a run ...,
/// records `run.plan` in the audit trail, and writes `plan.json`, `targets.csv` and
/// `manual-queue.csv`": exactly that, and no results.
#[test]
fn the_readme_says_what_a_dry_run_writes() {
    let readme = include_str!("../README.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        readme.contains(
            "writes nothing to the tenant; like `plan`, it stores the plan as a run in the run \
             store (so it can be approved), records `run.plan` in the audit trail, and writes \
             `plan.json`, `targets.csv` and `manual-queue.csv`."
        ),
        "the README no longer says what a dry run writes"
    );
    let s = Scratch::new();
    let (exit, dry) = s.json(&["run", &dump_playbook(), "--tenant", "demo"]);
    assert_eq!(exit, 0, "{dry}");
    let out = PathBuf::from(dry["out"].as_str().unwrap());
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["manual-queue.csv", "plan.json", "targets.csv"]);
    let (_, list) = s.json(&["runs", "list"]);
    assert_eq!(list[0]["status"], "planned", "{list}");
    let trail = std::fs::read_to_string(s.path("data/audit.jsonl")).unwrap();
    let actions: Vec<String> = trail
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(actions, ["run.plan"]);
}

#[cfg(unix)]
#[test]
fn a_missing_data_directory_is_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let data = s.path("not/yet/data");
    let out = s
        .command(&[
            "plan",
            &dump_playbook(),
            "--tenant",
            "demo",
            "--store",
            s.path("elsewhere.sqlite").to_str().unwrap(),
        ])
        .env("RESETCTL_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(data.join("audit.jsonl").is_file());
}

#[test]
fn audit_verify_and_export_default_to_the_data_directory_trail() {
    let s = Scratch::new();
    assert_eq!(
        code(&s.run(&["plan", &dump_playbook(), "--tenant", "demo"])),
        0
    );
    let out = s.run(&["audit", "verify"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ok: 1 records in 1 files")
            && stdout(&out).contains("witnessed by the run store up to seq 1"),
        "{}",
        stdout(&out)
    );
    let out = s.run(&["audit", "export"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let record: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(record["action"], "run.plan");
}

// ---- Runs on a configured emulated tenant ------------------------------------------------

const SECRET_VAR: &str = "OUTPUT_TEST_SECRET";

/// An emulated tenant configured as `t`, a data directory and two working folders.
struct Lab {
    _emulator: RunningEmulator,
    dir: tempfile::TempDir,
    tenant: TenantConfig,
}

impl Lab {
    async fn start(config: EmulatorConfig, dir: tempfile::TempDir) -> Lab {
        let time_scale = config.time_scale;
        let emulator = start_emulator(config).await;
        let tenant = TenantConfig::emulator("t", emulator.info(), time_scale)
            .setting("scope: https://graph.microsoft.com/.default")
            .secret_app(emulator.info(), 0, SECRET_VAR);
        tenant.write(&dir.path().join("resetctl.yaml"));
        for sub in ["data", "a", "b"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Lab {
            _emulator: emulator,
            dir,
            tenant,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `resetctl ARGS` run in the folder `cwd` of the lab.
    async fn resetctl_in(&self, cwd: &str, args: &[&str]) -> Output {
        let mut command = Command::new(bin());
        command
            .args(["--config", self.path("resetctl.yaml").to_str().unwrap()])
            .args(args)
            .current_dir(self.path(cwd))
            .envs(self.tenant.env().iter().cloned())
            .env("RESETCTL_DATA_DIR", self.path("data"))
            .env("RESETCTL_OPERATOR", "tester")
            .env_remove("RESETCTL_CONFIG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("data/audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn plain_tenant(users: usize) -> String {
    let mut tenant = String::from("verified_domain: contoso.example\nusers:\n");
    for i in 0..users {
        tenant.push_str(&format!("  - {{ upn: u{i:02}@contoso.example }}\n"));
    }
    tenant
}

const FAULTS_PLAYBOOK: &str = "name: faults\ntargets: [all_users: {}]\nguards: { max_fraction_of_tenant: 1.0, stop_when_error_rate_above: 0.1, approvals_required: 0 }\nsteps:\n  - reset_password: { mode: scramble, force_change: true, require_mfa: true }\n  - revoke_sessions\n";

/// A run planned from folder `a` with a relative playbook path and `--ticket`, stopped by the
/// circuit breaker (injected 403s), is resumed from folder `b`: the ticket is kept, every
/// audit record about the run carries it, and the summary (printed and `summary.md`) counts
/// both attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticketed_run_resumed_from_elsewhere_keeps_its_ticket_and_sums_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tenant_file_config(dir.path(), &plain_tenant(40));
    config.faults = resetctl::emulator::faults::FaultSpec::parse("403=0.5").unwrap();
    config.time_scale = 10.0;
    let lab = Lab::start(config, dir).await;
    std::fs::write(lab.path("a/faults.yaml"), FAULTS_PLAYBOOK).unwrap();
    let first = lab
        .resetctl_in(
            "a",
            &[
                "--output",
                "json",
                "run",
                "faults.yaml",
                "--tenant",
                "t",
                "--execute",
                "--yes",
                "--concurrency",
                "1",
                "--ticket",
                "INC-4711",
            ],
        )
        .await;
    assert_eq!(code(&first), 2, "{}\n{}", stdout(&first), stderr(&first));
    let first = one_document(&first, &["run"]);
    assert_eq!(first["stopped_by"], "circuit_breaker", "{first}");
    assert_eq!(first["ticket"], "INC-4711");
    let id = first["id"].as_str().unwrap().to_owned();

    let second = lab
        .resetctl_in(
            "b",
            &[
                "--output",
                "json",
                "run",
                "--resume",
                &id,
                "--concurrency",
                "1",
            ],
        )
        .await;
    assert_eq!(code(&second), 2, "{}\n{}", stdout(&second), stderr(&second));
    let report = one_document(&second, &["run", "--resume"]);
    assert_eq!(report["id"], id.as_str());
    assert_eq!(report["ticket"], "INC-4711", "{report}");
    assert_eq!(report["attempts"], 2, "{report}");
    assert_eq!(report["tenant"], "t");
    assert_eq!(report["operator"], "tester");
    assert!(
        report["playbook"]["path"]
            .as_str()
            .unwrap()
            .ends_with("/a/faults.yaml"),
        "{report}"
    );
    assert_eq!(report["playbook"]["sha256"].as_str().unwrap().len(), 64);
    assert!(
        report["seconds"].as_f64().unwrap() > report["seconds_this_attempt"].as_f64().unwrap(),
        "{report}"
    );
    let users = &report["users"];
    assert_eq!(users["with_steps"], 40, "{report}");
    assert_eq!(
        users["done"].as_u64().unwrap() + users["not_started"].as_u64().unwrap(),
        40
    );
    let failed = report["outcomes"]["failed"].as_u64().unwrap();
    assert!(
        failed >= first["outcomes"]["failed"].as_u64().unwrap(),
        "cumulative"
    );
    assert!(report["started_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(report["buckets"]["automated"], 40);

    // The audit records of the run, from the first run.execute to the last run.end, and
    // every record about the run anywhere, carry the ticket.
    let first_seq = report["audit"]["first_seq"].as_u64().unwrap();
    let last_seq = report["audit"]["last_seq"].as_u64().unwrap();
    let records = lab.records();
    let about_run: Vec<&Value> = records
        .iter()
        .filter(|r| r["subject"] == id.as_str() || r["details"]["run"] == id.as_str())
        .collect();
    let o = &report["outcomes"];
    let decided = ["succeeded", "failed", "manual_check", "skipped"]
        .iter()
        .map(|k| o[*k].as_u64().unwrap())
        .sum::<u64>();
    // A record per step decided, and plan, resume, twice execute and end.
    assert!(
        about_run.len() as u64 >= decided + 6,
        "{} records for {decided} steps",
        about_run.len()
    );
    for record in &about_run {
        assert_eq!(record["details"]["ticket"], "INC-4711", "{record}");
    }
    let actions: Vec<&str> = about_run
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in ["run.plan", "run.execute", "run.end", "run.resume"] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }
    let seq_of = |action: &str, first: bool| {
        let mut seqs = about_run
            .iter()
            .filter(|r| r["action"] == action)
            .map(|r| r["seq"].as_u64().unwrap());
        if first { seqs.next() } else { seqs.next_back() }.unwrap()
    };
    assert_eq!(first_seq, seq_of("run.execute", true));
    assert_eq!(last_seq, seq_of("run.end", false));

    let md = std::fs::read_to_string(lab.path(&format!("data/runs/{id}/summary.md"))).unwrap();
    for needle in [
        "| Ticket | INC-4711 |",
        "| Tenant | t |",
        "over 2 attempts",
        &format!("seq {first_seq} to {last_seq}"),
        &format!("resetctl run --resume {id}"),
    ] {
        assert!(md.contains(needle), "summary.md lacks {needle}:\n{md}");
    }
}

/// Off a terminal, a run logs its progress every `--progress-every` seconds, as JSON lines
/// under `--log-format json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_logged_every_n_seconds_off_a_terminal() {
    let mut config = EmulatorConfig::seeded(60, 3);
    config.time_scale = 10.0;
    config.latency_ms = 2_000;
    let lab = Lab::start(config, tempfile::tempdir().unwrap()).await;
    std::fs::write(
        lab.path("a/slow.yaml"),
        "name: slow\ntargets: [all_users: {}]\nexclude: { upn_patterns: ['svc-*@*', 'bg-*@*', 'ops.*@*'] }\nguards: { max_users: 5000, max_fraction_of_tenant: 1.0, stop_when_error_rate_above: 0.5, approvals_required: 0 }\ndisabled_users: skip\nsteps:\n  - reset_password: { mode: scramble, force_change: true, require_mfa: true }\n  - revoke_sessions\n",
    )
    .unwrap();
    let out = lab
        .resetctl_in(
            "a",
            &[
                "--log-format",
                "json",
                "run",
                "slow.yaml",
                "--tenant",
                "t",
                "--execute",
                "--yes",
                "--concurrency",
                "4",
                "--progress-every",
                "1",
            ],
        )
        .await;
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let lines: Vec<Value> = stderr(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "Run progress.")
        .collect();
    assert!(!lines.is_empty(), "no progress lines:\n{}", stderr(&out));
    let last = &lines[lines.len() - 1];
    assert_eq!(last["target"], "progress", "{last}");
    assert_eq!(last["level"], "INFO", "{last}");
    assert!(
        last["fields"]["users_total"].as_u64().unwrap() > 0,
        "{last}"
    );
    assert!(last["fields"]["users_done"].is_u64(), "{last}");
    assert!(last["fields"]["throttled"].is_u64(), "{last}");
}
