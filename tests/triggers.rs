//! SOC triggers through the real `resetctl serve`: an emulated tenant configured like a
//! customer's (`Soc`), real-shaped Sentinel and Splunk bodies (`tests/fixtures/triggers/`),
//! the generic body, and the emulator's write log as the judge of what was written.
//! `Soc` and `Served` are also the harness of `secrets.rs`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use resetctl::emulator::{EmulatorConfig, RunningEmulator};
use resetctl::serve::HmacKey;
use serde_json::{Value, json};

use crate::util::{TenantConfig, bin, code, fixture, inspect, start_emulator, stderr};

/// The request API's bearer token (its SHA-256 is in the configuration).
pub const BEARER: &str = "soc-bearer-7d0c55a1f4e94b6f8a2e1c3b5d7f9e0a";
/// The request API's HMAC key (in the environment, as `SOC_API_HMAC`).
pub const API_HMAC: &str = "soc-hmac-2f8e4a6c0b1d3e5f7a9c1e3b5d7f9a0c2e4b6d8f";
/// The approval tokens' signing key (hex, in the environment, as `SOC_TOKEN_KEY`).
pub const TOKEN_KEY: &str = "5ec7e7c0ffee00112233445566778899aabbccddeeff00112233445566778899";
/// The demo tenant's seed and size: the shipped breach list names its users.
const SEED: u64 = 1;
const USERS: u32 = 2_000;

/// An emulated tenant `lab` with the demo tenant's users, configured as a customer's would
/// be (client secret, every channel, push, tickets), with `serve:` (bearer and HMAC API
/// credentials) and whatever else a test adds (`triggers:`, `forward:`).
pub struct Soc {
    /// Scratch: the configuration, the data directory (`data/`), captured output.
    pub dir: tempfile::TempDir,
    /// The tenant.
    pub emulator: RunningEmulator,
    /// Every secret the configuration names, as `(variable, value)`.
    pub env: Vec<(String, String)>,
    /// The port `serve:` listens on.
    pub port: u16,
}

impl Soc {
    /// The lab with `extra` appended to `resetctl.yaml` (`{dir}` in it is the scratch folder).
    pub async fn start(extra: &str) -> Soc {
        let mut config = EmulatorConfig::seeded(USERS, SEED);
        config.time_scale = 10.0;
        let emulator = start_emulator(config).await;
        let info = emulator.info();
        let tenant = TenantConfig::emulator("lab", info, 10.0).secret_app(info, 0, "LAB_SECRET");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(BEARER.as_bytes()));
        let mut yaml = tenant.yaml();
        yaml.push_str(&resetctl::emulator::channels::config_yaml(
            &info.channels,
            &info.verified_domain,
            "LAB",
        ));
        yaml.push_str(&format!(
            "serve:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n  \
             token_key_env: SOC_TOKEN_KEY\n  api:\n    bearer_sha256: [{digest}]\n    \
             hmac_key_env: SOC_API_HMAC\n"
        ));
        yaml.push_str(&extra.replace("{dir}", &dir.path().display().to_string()));
        std::fs::write(dir.path().join("resetctl.yaml"), yaml).unwrap();
        let mut env: Vec<(String, String)> = tenant.env().to_vec();
        env.extend(resetctl::emulator::channels::secret_env(
            &info.channels,
            "LAB",
        ));
        env.push(("SOC_TOKEN_KEY".into(), TOKEN_KEY.into()));
        env.push(("SOC_API_HMAC".into(), API_HMAC.into()));
        Soc {
            dir,
            emulator,
            env,
            port,
        }
    }

    /// A path in the scratch folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `resetctl ARGS` with this lab's configuration, data directory and secrets.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin());
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("RESETCTL_CONFIG", self.path("resetctl.yaml"))
            .env("RESETCTL_DATA_DIR", self.path("data"))
            .env("RESETCTL_OPERATOR", "tester")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    /// Run `resetctl ARGS` to its end (off the async runtime).
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// `resetctl serve --tenant lab`, its standard error into `serve.stderr`.
    pub fn serve(&self) -> Served {
        let log = std::fs::File::create(self.path("serve.stderr")).unwrap();
        let mut child = self
            .command(&["serve", "--tenant", "lab"])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines
            .next()
            .expect("serve prints where it listens")
            .unwrap();
        assert!(line.starts_with("serving lab on 127.0.0.1:"), "{line}");
        Served {
            child,
            first_line: line,
            base: format!("http://127.0.0.1:{}", self.port),
            http: reqwest::Client::new(),
        }
    }

    /// Every write attempt in the emulator's log.
    pub async fn writes(&self) -> Vec<Value> {
        inspect(self.emulator.info(), "writes").await["writes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// What the emulator knows of user `upn` (its object id, its TAP if it has one).
    pub async fn user(&self, upn: &str) -> Value {
        inspect(self.emulator.info(), &format!("users/{upn}")).await
    }

    /// The messages of `channel` in the emulator's outbox.
    pub async fn outbox(&self, channel: &str) -> Vec<Value> {
        inspect(self.emulator.info(), &format!("outbox?channel={channel}")).await["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The audit trail's records.
    pub fn trail(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("data/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The trail's records of `action`.
    pub fn records(&self, action: &str) -> Vec<Value> {
        self.trail()
            .into_iter()
            .filter(|r| r["action"] == action)
            .collect()
    }

    /// The Sentinel fixture with the object id of its first account filled in.
    pub async fn sentinel_incident(&self) -> Vec<u8> {
        let id = self.user("nicole.myers@northwind-demo.com").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        std::fs::read_to_string(fixture("triggers/sentinel-incident.json"))
            .unwrap()
            .replace("00000000-0000-0000-0000-000000000001", &id)
            .into_bytes()
    }
}

/// A running `resetctl serve`.
pub struct Served {
    child: Child,
    /// Its first line of output.
    pub first_line: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client.
    pub http: reqwest::Client,
}

impl Served {
    /// `POST path` with the bearer token.
    pub async fn post_bearer(&self, path: &str, body: &[u8], bearer: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// `POST path` signed with `key` (`X-Resetctl-Signature`).
    pub async fn post_signed(&self, path: &str, body: &[u8], key: &str) -> reqwest::Response {
        let now = jiff::Timestamp::now().as_second();
        let key = HmacKey::new(key.as_bytes()).unwrap();
        self.http
            .post(format!("{}{path}", self.base))
            .header(
                "x-resetctl-signature",
                resetctl::serve::auth::sign(&key, now, body),
            )
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// `GET path` with the bearer token, as JSON.
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(BEARER)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Poll the run's status link until its state is `state`.
    pub async fn until_state(&self, run: &str, state: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            last = self.get(&format!("/v1/runs/{run}")).await;
            if last["state"] == state {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {run} never reached {state}: {last}");
    }

    /// SIGTERM (as systemd sends it), then the exit code.
    pub async fn stop(mut self) -> i32 {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        tokio::task::spawn_blocking(move || self.child.wait().unwrap())
            .await
            .unwrap()
            .code()
            .unwrap_or(-1)
    }
}

/// The rules: Sentinel incidents labelled `change-controlled` go to a playbook that needs an
/// approval; everything else of kind credential_dump to the shipped credential-dump playbook
/// (no approvals), which plans only unless `execute` says otherwise.
fn rules(execute: Option<bool>) -> String {
    let approved = fixture("triggers/approval-playbook.yaml");
    let dump = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/credential-dump.yaml");
    let execute = execute
        .map(|e| format!(", execute: {e}"))
        .unwrap_or_default();
    format!(
        "triggers:\n  \
         - {{ playbook: {}, tenant: lab, sources: [sentinel], labels: [change-controlled] }}\n  \
         - {{ playbook: {}, tenant: lab{execute} }}\n",
        approved.display(),
        dump.display()
    )
}

/// A generic incident naming the first `n` users of the shipped breach list.
fn generic(id: &str, n: usize) -> Vec<u8> {
    let users: Vec<&str> = include_str!("../playbooks/credential-dump.csv")
        .lines()
        .skip(1)
        .take(n)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    serde_json::to_vec(&json!({"incident_id": id, "kind": "credential_dump",
        "severity": "high", "title": "Infostealer log", "users": users}))
    .unwrap()
}

/// The run of every trail record whose action is `action`.
fn subjects(soc: &Soc, action: &str) -> Vec<String> {
    soc.records(action)
        .iter()
        .map(|r| r["subject"].as_str().unwrap().to_owned())
        .collect()
}

/// A generic incident naming demo users becomes a stored plan (nothing executes), a retried
/// delivery finds the same run, and bad calls are refused clearly; every intake is in the
/// trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_makes_one_plan_per_incident_and_executes_nothing() {
    let soc = Soc::start(&rules(None)).await;
    let served = soc.serve();
    let path = "/v1/triggers/generic";
    let body = generic("INC-4242", 3);
    let first = served.post_bearer(path, &body, BEARER).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["state"], "planned");
    assert_eq!(first["executing"], false);
    let run = first["run"].as_str().unwrap().to_owned();
    assert_eq!(first["status"], format!("/v1/runs/{run}"));
    // The webhook retried: the same run, not a second one.
    let again = served.post_bearer(path, &body, BEARER).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (again["run"].as_str(), again["replayed"].as_bool()),
        (Some(run.as_str()), Some(true))
    );
    // Wrong credentials; an incident no rule takes; a body past the limit.
    assert_eq!(served.post_bearer(path, &body, "wrong").await.status(), 401);
    let mut other: Value = serde_json::from_slice(&body).unwrap();
    other["incident_id"] = "INC-4243".into();
    other["kind"] = "ransomware".into();
    let refused = served
        .post_bearer(path, &serde_json::to_vec(&other).unwrap(), BEARER)
        .await;
    assert_eq!(refused.status(), 422);
    let refused: Value = refused.json().await.unwrap();
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("credential_dump"), "{refused}");
    let mut big: Value = serde_json::from_slice(&body).unwrap();
    big["title"] = "x".repeat(100_000).into();
    let big = serde_json::to_vec(&big).unwrap();
    assert_eq!(served.post_bearer(path, &big, BEARER).await.status(), 413);
    let shown = served.get(&format!("/v1/runs/{run}")).await;
    assert_eq!(shown["state"], "planned", "{shown}");
    assert_eq!(shown["ticket"], "generic:INC-4242", "{shown}");
    assert_eq!(served.stop().await, 0);

    // The run is a plan: nothing executed, nothing written.
    let out = soc.run(&["--output", "json", "runs", "show", &run]).await;
    let shown: Value = serde_json::from_str(crate::util::stdout(&out).trim()).unwrap();
    assert_eq!(shown["status"], "planned", "{shown}");
    assert!(soc.writes().await.is_empty());
    assert_eq!(soc.records("trigger.received").len(), 3);
    assert!(soc.records("run.execute").is_empty());
    let trail = std::fs::read_to_string(soc.path("data/audit.jsonl")).unwrap();
    assert!(!trail.contains(BEARER));
}

/// Real-shaped Sentinel and Splunk bodies through the binary: the accounts the entities name
/// are planned (object id first, built-in and on-premises-only accounts left out), a wrong
/// signature is refused, a replay answers with the same run, an oversized body is 413, what
/// is not understood is named, and a playbook that needs approvals makes a plan. Nothing is
/// written to the tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_and_splunk_incidents_plan_and_write_nothing() {
    let soc = Soc::start(&rules(None)).await;
    let served = soc.serve();
    let sentinel = soc.sentinel_incident().await;

    // Signed with the wrong key, or the right key over another body: refused.
    let path = "/v1/triggers/sentinel";
    let wrong = served
        .post_signed(path, &sentinel, "not-the-key-0123456789abcdef0123456789")
        .await;
    assert_eq!(wrong.status(), 401);
    let planned = served.post_signed(path, &sentinel, API_HMAC).await;
    assert_eq!(planned.status(), 201);
    let planned: Value = planned.json().await.unwrap();
    assert_eq!(planned["state"], "planned", "{planned}");
    assert!(
        planned["playbook"]
            .as_str()
            .unwrap()
            .ends_with("credential-dump.yaml"),
        "{planned}"
    );
    // nicole (by object id) and jeffrey (name@upnSuffix); SYSTEM dropped; the NT account counted.
    assert_eq!(
        (
            planned["accounts"].as_u64(),
            planned["unusable_accounts"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let run = planned["run"].as_str().unwrap().to_owned();
    let plan: Value = serde_json::from_str(
        &std::fs::read_to_string(soc.path(&format!("data/runs/{run}/plan.json"))).unwrap(),
    )
    .unwrap();
    let upns: Vec<&str> = plan["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["upn"].as_str().unwrap())
        .collect();
    assert!(
        upns.contains(&"nicole.myers@northwind-demo.com"),
        "{upns:?}"
    );
    assert!(
        upns.contains(&"jeffrey.brooks@northwind-demo.com"),
        "{upns:?}"
    );
    assert_eq!(upns.len(), 2, "{upns:?}");
    // Logic Apps retries a failed action: the same run.
    let replay = served.post_signed(path, &sentinel, API_HMAC).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.json::<Value>().await.unwrap()["run"], run.as_str());

    // The Splunk alert action's body, with the bearer token.
    let splunk = std::fs::read(fixture("triggers/splunk-alert.json")).unwrap();
    let alert = served
        .post_bearer("/v1/triggers/splunk", &splunk, BEARER)
        .await;
    assert_eq!(alert.status(), 201);
    let alert: Value = alert.json().await.unwrap();
    assert_eq!(alert["accounts"], 2, "{alert}");
    assert_ne!(alert["run"], run.as_str());
    let shown = served
        .get(&format!("/v1/runs/{}", alert["run"].as_str().unwrap()))
        .await;
    // A sid too long for a ticket is stored by its digest.
    assert!(
        shown["ticket"].as_str().unwrap().starts_with("splunk:"),
        "{shown}"
    );
    // An incident kind no playbook answers: named.
    let mut other: Value = serde_json::from_slice(&splunk).unwrap();
    other["sid"] = "scheduler__admin__search__RMD5ffff_at_1764143999_1".into();
    other["result"]["kind"] = "ransomware".into();
    let refused = served
        .post_bearer(
            "/v1/triggers/splunk",
            &serde_json::to_vec(&other).unwrap(),
            BEARER,
        )
        .await;
    assert_eq!(refused.status(), 422);
    let refused: Value = refused.json().await.unwrap();
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("`ransomware`"), "{message}");
    // The alert trigger's body (another schema) is not an incident: named.
    let mut alert_body: Value = serde_json::from_slice(&sentinel).unwrap();
    alert_body["objectSchemaType"] = "Alert".into();
    let not_incident = served
        .post_bearer(path, &serde_json::to_vec(&alert_body).unwrap(), BEARER)
        .await;
    assert_eq!(not_incident.status(), 400);
    let not_incident: Value = not_incident.json().await.unwrap();
    assert!(
        not_incident["error"]["message"]
            .as_str()
            .unwrap()
            .contains("objectSchemaType `Alert`"),
        "{not_incident}"
    );
    // Oversized (2 MB against the 64 KiB limit): the server reads the rest of the body before
    // it answers, so the client gets the 413 and not a reset.
    let mut big: Value = serde_json::from_slice(&sentinel).unwrap();
    big["object"]["properties"]["description"] = "x".repeat(2_000_000).into();
    let big = served
        .post_signed(path, &serde_json::to_vec(&big).unwrap(), API_HMAC)
        .await;
    assert_eq!(big.status(), 413);
    let big: Value = big.json().await.unwrap();
    assert_eq!(big["error"]["code"], "body_too_large", "{big}");

    // Labelled change-controlled: the playbook that needs an approval makes a plan.
    let mut controlled: Value = serde_json::from_slice(&sentinel).unwrap();
    controlled["object"]["name"] = "b7d2e9c0-1a3f-4b5e-8c7d-9e0f1a2b3c4d".into();
    controlled["object"]["properties"]["labels"] =
        json!([{"labelName": "change-controlled", "labelType": "User"}]);
    let controlled = served
        .post_signed(path, &serde_json::to_vec(&controlled).unwrap(), API_HMAC)
        .await;
    assert_eq!(controlled.status(), 201);
    let controlled: Value = controlled.json().await.unwrap();
    assert_eq!(controlled["approvals_required"], 1, "{controlled}");
    assert_eq!(controlled["state"], "planned");
    assert!(
        controlled["approve"]
            .as_str()
            .unwrap()
            .starts_with("resetctl runs approve")
    );
    assert_eq!(served.stop().await, 0);

    assert!(soc.writes().await.is_empty(), "{:?}", soc.writes().await);
    let received = soc.records("trigger.received");
    assert_eq!(received.len(), 5, "{received:?}");
    assert!(received.iter().all(|r| r["details"]["execute"] != true));
    assert!(soc.records("run.execute").is_empty());
}

/// `execute: true` on a rule whose playbook needs no approvals: the incident's plan executes
/// in the background (202 and a status link), through the gate and the preflight, its records
/// naming the trigger; a retried webhook starts neither a second run nor a second execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executing_rule_resets_the_incidents_users_once() {
    let soc = Soc::start(&rules(Some(true))).await;
    let served = soc.serve();
    let path = "/v1/triggers/generic";
    let body = generic("INC-5150", 3);
    let started = served.post_bearer(path, &body, BEARER).await;
    assert_eq!(started.status(), 202);
    let started: Value = started.json().await.unwrap();
    assert_eq!(started["executing"], true, "{started}");
    assert!(started.get("approve").is_none(), "{started}");
    let run = started["run"].as_str().unwrap().to_owned();
    let status = started["status"].as_str().unwrap().to_owned();
    let done = served.until_state(&run, "finished").await;
    assert_eq!(done["ticket"], "generic:INC-5150");
    let writes = soc.writes().await.len();
    assert!(writes > 0, "nothing was written");
    // Retried (the SOC tool timed out on its side): the same run, no second execution.
    let again = served.post_bearer(path, &body, BEARER).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (
            again["run"].as_str(),
            again["executing"].as_bool(),
            again["state"].as_str()
        ),
        (Some(run.as_str()), Some(false), Some("finished"))
    );
    assert_eq!(served.get(&status).await["state"], "finished");
    assert_eq!(served.stop().await, 0);
    assert_eq!(soc.writes().await.len(), writes, "a replay wrote again");

    // The trail names the trigger as the origin of the intake and of the execution.
    let received = soc.records("trigger.received");
    assert_eq!(received.len(), 2);
    assert_eq!(received[0]["details"]["execute"], true);
    assert_eq!(received[1]["details"]["execute"], false);
    for action in ["run.plan", "run.preflight", "run.execute", "run.end"] {
        let records = soc.records(action);
        assert_eq!(records.len(), 1, "{action}: {records:?}");
        let r = &records[0];
        assert_eq!(r["actor"], "trigger-generic", "{action}");
        assert_eq!(
            r["details"]["origin"], "trigger generic incident INC-5150",
            "{action}"
        );
        assert_eq!(r["details"]["ticket"], "generic:INC-5150", "{action}");
    }
    // Each user the plan automated was reset, as the trigger.
    let automated = soc.records("run.plan")[0]["details"]["automated"]
        .as_u64()
        .unwrap();
    assert!(automated > 0);
    let resets = soc.records("user.reset_password");
    assert_eq!(resets.len() as u64, automated, "{resets:?}");
    assert!(resets.iter().all(|r| r["actor"] == "trigger-generic"
        && r["details"]["ticket"] == "generic:INC-5150"
        && r["outcome"] == "success"));
    let executed = soc.records("trigger.executed");
    assert_eq!(executed.len(), 1);
    assert_eq!(executed[0]["outcome"], "success", "{executed:?}");
    assert_eq!(executed[0]["details"]["status"], "finished");
    assert_eq!(subjects(&soc, "trigger.executed"), [run.as_str()]);
    let out = soc.run(&["--output", "json", "runs", "list"]).await;
    let runs: Vec<Value> = serde_json::from_str(&crate::util::stdout(&out)).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
}

/// `execute: true` on a rule whose playbook needs an approval is refused when the
/// configuration is read, at its line and column: the server does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_on_a_playbook_with_approvals_stops_the_server_at_its_position() {
    let approved = fixture("triggers/approval-playbook.yaml");
    let soc = Soc::start(&format!(
        "triggers:\n  - playbook: {}\n    tenant: lab\n    execute: true\n",
        approved.display()
    ))
    .await;
    let out = soc.run(&["serve", "--tenant", "lab"]).await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let text = stderr(&out);
    let config = soc.path("resetctl.yaml");
    let line = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|l| l.trim() == "execute: true")
        .unwrap()
        + 1;
    let at = format!(
        "{}:{line}:14: triggers: `execute: true` is refused",
        config.display()
    );
    assert!(text.contains(&at), "{at}\n{text}");
    assert!(text.contains("requires 1 approval"), "{text}");
}
