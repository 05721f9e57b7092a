//! The preflight and the wholesale-403 stop through the real binary: `resetctl doctor`, the
//! check `run --execute` makes before its first write, a run whose writes are refused
//! wholesale (exit 4, nothing more sent, resumable), and transport failures named by host and
//! cause. Asserted from the emulator's own write log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use resetctl::emulator::faults::FaultSpec;
use resetctl::emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;

use crate::util::{TenantConfig, bin, code, inspect, start_emulator, stderr, stdout};

const SECRET_VAR: &str = "DOCTOR_TEST_SECRET";
const USERS: usize = 20;

/// A workspace: a tenant file served by an emulator, a config naming it `t`, a data dir.
struct Site {
    emulator: RunningEmulator,
    dir: tempfile::TempDir,
    tenant: TenantConfig,
}

impl Site {
    /// The tenant file `yaml` (written to `tenant.yaml`) with injected `faults`.
    async fn start(yaml: &str, faults: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tenant.yaml"), yaml).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let emulator = Site::serve(&dir, faults).await;
        let tenant = Site::configure(&dir, &emulator, &[]);
        Site {
            emulator,
            dir,
            tenant,
        }
    }

    /// The emulator of `dir`'s tenant file: the same tenant (ids, apps, secrets) every time.
    async fn serve(dir: &tempfile::TempDir, faults: &str) -> RunningEmulator {
        let mut config = EmulatorConfig::from_tenant_file(dir.path().join("tenant.yaml")).unwrap();
        config.faults = FaultSpec::parse(faults).unwrap();
        config.time_scale = 20.0;
        start_emulator(config).await
    }

    /// `resetctl.yaml` naming the emulator as tenant `t`, with `settings` added.
    fn configure(
        dir: &tempfile::TempDir,
        emulator: &RunningEmulator,
        settings: &[&str],
    ) -> TenantConfig {
        let mut tenant = TenantConfig::emulator("t", emulator.info(), 20.0)
            .setting("scope: https://graph.microsoft.com/.default");
        for line in settings {
            tenant = tenant.setting(line);
        }
        let tenant = tenant.secret_app(emulator.info(), 0, SECRET_VAR);
        tenant.write(&dir.path().join("resetctl.yaml"));
        tenant
    }

    /// The same tenant served again without faults (the cause fixed), at a new address.
    async fn restart_fixed(&mut self) {
        let old = std::mem::replace(&mut self.emulator, Site::serve(&self.dir, "").await);
        old.shutdown().await;
        self.tenant = Site::configure(&self.dir, &self.emulator, &[]);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn resetctl(&self, args: &[&str]) -> Output {
        let mut command = Command::new(bin());
        command
            .args(["--config", self.path("resetctl.yaml").to_str().unwrap()])
            .args(args)
            .current_dir(self.dir.path())
            .envs(self.tenant.env().iter().cloned())
            .env("RESETCTL_DATA_DIR", self.path("data"))
            .env_remove("RESETCTL_CONFIG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// `run PLAYBOOK --tenant t --execute --yes --concurrency N --output json`.
    async fn execute(&self, playbook: &std::path::Path, concurrency: usize) -> Output {
        let n = concurrency.to_string();
        self.resetctl(&[
            "--output",
            "json",
            "run",
            playbook.to_str().unwrap(),
            "--tenant",
            "t",
            "--execute",
            "--yes",
            "--concurrency",
            &n,
        ])
        .await
    }

    /// Every write attempt in the emulator's log.
    async fn writes(&self) -> Vec<Value> {
        let log = inspect(self.emulator.info(), "writes").await;
        log["writes"].as_array().unwrap().clone()
    }

    /// The run that was executed.
    async fn run_id(&self) -> String {
        let out = self.resetctl(&["--output", "json", "runs", "list"]).await;
        let runs: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
        let run = runs.iter().find(|r| r["status"] != "planned").unwrap();
        run["id"].as_str().unwrap().to_owned()
    }

    async fn status(&self, id: &str) -> String {
        let out = self
            .resetctl(&["--output", "json", "runs", "show", id])
            .await;
        let show: Value = serde_json::from_str(&stdout(&out)).unwrap();
        show["status"].as_str().unwrap().to_owned()
    }
}

/// `USERS` ordinary users and one app registration described by `app` (YAML flow mapping
/// fields, or empty for the defaults: User Administrator and README's permissions).
fn tenant(app: &str) -> String {
    let mut yaml = String::from("verified_domain: contoso.example\n");
    if !app.is_empty() {
        yaml.push_str(&format!("apps:\n  - {{ {app} }}\n"));
    }
    yaml.push_str("users:\n");
    for i in 0..USERS {
        yaml.push_str(&format!("  - {{ upn: u{i:02}@contoso.example }}\n"));
    }
    yaml
}

const PLAYBOOK: &str = "name: reset
targets: [all_users: {}]
guards: { max_fraction_of_tenant: 1.0, stop_when_error_rate_above: 0.5, approvals_required: 0 }
steps:
  - reset_password: { mode: scramble, force_change: true, require_mfa: true }
  - revoke_sessions
";

/// Reads the planning needs, nothing a reset or a revocation needs.
const READ_ONLY_APP: &str = "permissions: [User.Read.All, RoleManagement.Read.Directory, \
     RoleEligibilitySchedule.Read.Directory, GroupMember.Read.All]";

fn json(out: &Output) -> Value {
    let text = stdout(out);
    // The whole of stdout: one document, the summary and any error together.
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}\n{}", stderr(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_tenant_that_can_run_everything() {
    let site = Site::start(&tenant(""), "").await;
    let out = site.resetctl(&["doctor", "--tenant", "t"]).await;
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("all checks passed"), "{text}");
    assert!(text.contains("holds User Administrator"), "{text}");
    assert!(
        text.contains(
            "Microsoft Graph answers (GET /users/$count): reachable; the tenant has 20 users"
        ),
        "{text}"
    );
    assert!(!text.contains("MISSING"), "{text}");
    let out = site
        .resetctl(&["--output", "json", "doctor", "--tenant", "t"])
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["passed"], true);
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["status"] == "ok"), "{report}");
    for area in ["token", "endpoint", "permission", "role"] {
        assert!(checks.iter().any(|c| c["area"] == area), "{area}: {report}");
    }
    assert!(site.writes().await.is_empty(), "doctor writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_named_by_doctor_and_refuses_execute_before_any_write() {
    let site = Site::start(&tenant(READ_ONLY_APP), "").await;
    let playbook = site.write("reset.yaml", PLAYBOOK);

    let out = site
        .resetctl(&["doctor", playbook.to_str().unwrap(), "--tenant", "t"])
        .await;
    assert_eq!(code(&out), 4, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let missing: Vec<&str> = text.lines().filter(|l| l.contains("MISSING")).collect();
    assert_eq!(missing.len(), 2, "{text}");
    assert!(
        missing[0].contains("set the password profile (PATCH /users/{id} passwordProfile) [0:reset_password]")
            && missing[0].contains(
                "grant one of User-PasswordProfile.ReadWrite.All, User.ReadWrite.All, Directory.ReadWrite.All"
            ),
        "{}",
        missing[0]
    );
    assert!(
        missing[1].contains("[1:revoke_sessions]")
            && missing[1].contains("grant one of User.RevokeSessions.All"),
        "{}",
        missing[1]
    );
    // What planning reads is granted.
    assert!(
        text.contains("list and read users (GET /users) [planning]: granted by User.Read.All"),
        "{text}"
    );
    assert!(text.contains("2 missing"), "{text}");

    let out = site.execute(&playbook, 4).await;
    assert_eq!(code(&out), 4, "{}\n{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refused before any write")
            && err.contains("User-PasswordProfile.ReadWrite.All"),
        "{err}"
    );
    assert!(site.writes().await.is_empty(), "nothing was written");
    // The refusal is in the audit trail, and the run never started.
    let trail = std::fs::read_to_string(site.path("data").join("audit.jsonl")).unwrap();
    assert!(
        trail.contains(r#""action":"run.preflight""#) && trail.contains(r#""outcome":"refused""#),
        "{trail}"
    );
    assert!(!trail.contains(r#""action":"run.execute""#), "{trail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_without_a_reset_role_is_named_by_doctor() {
    let site = Site::start(&tenant("role: Directory Readers"), "").await;
    let out = site.resetctl(&["doctor", "--tenant", "t"]).await;
    assert_eq!(code(&out), 4, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let missing: Vec<&str> = text.lines().filter(|l| l.contains("MISSING")).collect();
    assert_eq!(missing.len(), 1, "{text}");
    assert!(
        missing[0].contains("directory role of the service principal")
            && missing[0].contains("holds no tenant-wide role that may reset passwords")
            && missing[0].contains("assign it User Administrator"),
        "{}",
        missing[0]
    );
}

/// `(target, path)` → attempts, and how many were applied, from a write log.
fn tally(writes: &[Value]) -> (BTreeMap<(String, String), usize>, usize) {
    let mut attempts = BTreeMap::new();
    let mut applied = 0;
    for w in writes {
        let key = (
            w["target"].as_str().unwrap_or_default().to_owned(),
            format!(
                "{} {}",
                w["method"].as_str().unwrap(),
                w["path"].as_str().unwrap()
            ),
        );
        *attempts.entry(key).or_default() += 1;
        if w["applied"] == true {
            applied += 1;
        }
    }
    (attempts, applied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_refused_wholesale_stop_the_run_with_exit_4_and_resume_finishes_once() {
    const CONCURRENCY: usize = 3;
    let mut site = Site::start(&tenant(""), "403=1").await;
    let playbook = site.write("reset.yaml", PLAYBOOK);
    let out = site.execute(&playbook, CONCURRENCY).await;
    assert_eq!(code(&out), 4, "{}\n{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("writes were refused wholesale")
            && err.contains("step 0:reset_password")
            && err.contains("HTTP 403 Authorization_RequestDenied")
            && err.contains("User-PasswordProfile.ReadWrite.All")
            && err.contains("resetctl run --resume"),
        "{err}"
    );
    // The token grants the permissions, so the message points elsewhere.
    assert!(err.contains("grants the application permissions"), "{err}");
    let summary = json(&out);
    assert_eq!(
        summary["refused"][0]["step"], "0:reset_password",
        "{summary}"
    );
    assert_eq!(summary["users"]["done"], 0, "{summary}");
    assert_eq!(summary["users"]["not_started"], USERS, "{summary}");
    assert_eq!(summary["stopped_by"], "refused_wholesale", "{summary}");
    assert_eq!(
        summary["exit"], 4,
        "one document: the summary with the error"
    );
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("writes were refused wholesale"),
        "{summary}"
    );

    // Only the first refusals and the users in flight were tried; nothing landed, and no
    // revocation was attempted before its reset.
    let writes = site.writes().await;
    let (attempts, applied) = tally(&writes);
    assert_eq!(applied, 0, "{writes:?}");
    assert!(
        (5..5 + CONCURRENCY).contains(&writes.len()),
        "{} attempts: {writes:?}",
        writes.len()
    );
    assert!(attempts.values().all(|n| *n == 1), "{attempts:?}");
    assert!(
        writes.iter().all(|w| w["method"] == "PATCH"),
        "only resets were tried: {writes:?}"
    );
    let id = site.run_id().await;
    assert_eq!(site.status(&id).await, "stopped");
    let results =
        std::fs::read_to_string(site.path("data").join("runs").join(&id).join("results.csv"))
            .unwrap();
    assert_eq!(
        results
            .lines()
            .filter(|l| l.contains(",not_started,"))
            .count(),
        2 * USERS,
        "every step is left to do: {results}"
    );

    // The cause fixed: the resume makes every write exactly once, the refused ones included.
    site.restart_fixed().await;
    let out = site
        .resetctl(&[
            "--output",
            "json",
            "run",
            "--resume",
            &id,
            "--concurrency",
            "3",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["users"]["done"], USERS, "{summary}");
    assert_eq!(summary["outcomes"]["succeeded"], 2 * USERS, "{summary}");
    let writes = site.writes().await;
    let (attempts, applied) = tally(&writes);
    assert_eq!(applied, 2 * USERS, "{writes:?}");
    assert_eq!(attempts.len(), 2 * USERS, "{attempts:?}");
    assert!(attempts.values().all(|n| *n == 1), "{attempts:?}");
    assert_eq!(site.status(&id).await, "finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoints_are_named_by_host_and_cause() {
    let site = Site::start(&tenant(""), "").await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let info = site.emulator.info();
    // Graph unreachable, the token endpoint fine: a transport failure of Graph, not of
    // authentication.
    let mut graph_down = TenantConfig::emulator("t", info, 20.0)
        .setting("scope: https://graph.microsoft.com/.default");
    graph_down = graph_down.secret_app(info, 0, SECRET_VAR);
    let yaml = graph_down
        .yaml()
        .replace(&info.graph_url, &format!("http://{closed}/v1.0"));
    std::fs::write(site.path("resetctl.yaml"), yaml).unwrap();
    let out = site.resetctl(&["doctor", "--tenant", "t"]).await;
    assert_eq!(code(&out), 4, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "no answer from Microsoft Graph at {closed}: connection refused"
        )),
        "{text}"
    );
    assert!(text.contains("access token for app"), "{text}");
    let token_line = text.lines().find(|l| l.contains("access token")).unwrap();
    assert!(token_line.trim_start().starts_with("ok"), "{token_line}");

    // The token endpoint unreachable: named as such.
    let yaml = graph_down.yaml().replace(
        &info.token_url,
        &format!("http://{closed}/t/oauth2/v2.0/token"),
    );
    std::fs::write(site.path("resetctl.yaml"), yaml).unwrap();
    let started = std::time::Instant::now();
    let out = site.resetctl(&["doctor", "--tenant", "t"]).await;
    assert_eq!(code(&out), 4, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "no token: no answer from the token endpoint {closed}: connection refused"
        )),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// The emulator refuses each write whose permission the app's token lacks, and accepts each
/// permission Graph documents for it, the narrow ones included; an app's directory role is an
/// assignment to its service principal, the token's `oid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_checks_each_write_against_the_token_s_permissions() {
    let apps = [
        "User-PasswordProfile.ReadWrite.All",
        "User.RevokeSessions.All",
        "UserAuthMethod-Phone.ReadWrite.All",
        "UserAuthMethod-TAP.ReadWrite.All",
        "IdentityRiskyUser.Read.All",
        "IdentityRiskyUser.ReadWrite.All",
    ];
    let mut yaml = String::from("verified_domain: contoso.example\napps:\n");
    for permission in apps {
        yaml.push_str(&format!("  - {{ permissions: [{permission}] }}\n"));
    }
    yaml.push_str(
        "users:\n  - { upn: a@contoso.example, methods: [phone, softwareOath] }\n  - { upn: b@contoso.example, risk: { level: high } }\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::util::tenant_file_config(dir.path(), &yaml);
    // Identity Protection answers 1 request/s: a denied request counts too.
    config.time_scale = 50.0;
    let emulator = start_emulator(config).await;
    let info = emulator.info();
    let http = crate::util::http();
    let mut tokens = Vec::new();
    for i in 0..apps.len() {
        tokens.push(crate::util::token(&http, info, i).await);
    }
    let user = inspect(info, "users/a@contoso.example").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let risky = inspect(info, "users/b@contoso.example").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let graph = &info.graph_url;
    let send = |app: usize, method: reqwest::Method, path: String, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{graph}{path}"))
            .bearer_auth(&tokens[app]);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let password = serde_json::json!({"passwordProfile": {
        "forceChangePasswordNextSignIn": true, "password": "xW9#kLq2!vB7pZ4m"}});
    let users = format!("/users/{user}");
    let revoke = format!("/users/{user}/revokeSignInSessions");
    let phone =
        format!("/users/{user}/authentication/phoneMethods/3179e48a-750b-4051-897c-87b9720928f7");
    let tap = format!("/users/{user}/authentication/temporaryAccessPassMethods");
    let confirm = "/identityProtection/riskyUsers/confirmCompromised".to_owned();
    let ids = serde_json::json!({ "userIds": [risky] });

    // The password profile: its own narrow permission allows it, nothing else does.
    let (status, body) = send(
        1,
        reqwest::Method::PATCH,
        users.clone(),
        Some(password.clone()),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(
        send(0, reqwest::Method::PATCH, users.clone(), Some(password))
            .await
            .0,
        204
    );
    // Another property is not covered by the password permission.
    let name = serde_json::json!({"displayName": "A"});
    assert_eq!(
        send(0, reqwest::Method::PATCH, users.clone(), Some(name))
            .await
            .0,
        403
    );
    // Sessions.
    assert_eq!(
        send(0, reqwest::Method::POST, revoke.clone(), None).await.0,
        403
    );
    assert_eq!(send(1, reqwest::Method::POST, revoke, None).await.0, 200);
    // Methods: the phone permission deletes phones only; a pass needs the pass permission.
    let oath = format!("/users/{user}/authentication/softwareOathMethods");
    let (status, listed) = send(2, reqwest::Method::GET, oath.clone(), None).await;
    assert_eq!(status, 200, "{listed}");
    let oath_id = listed["value"][0]["id"].as_str().unwrap();
    let oath = format!("{oath}/{oath_id}");
    assert_eq!(
        send(2, reqwest::Method::DELETE, oath.clone(), None).await.0,
        403
    );
    assert_eq!(
        send(3, reqwest::Method::DELETE, phone.clone(), None)
            .await
            .0,
        403
    );
    assert_eq!(send(2, reqwest::Method::DELETE, phone, None).await.0, 204);
    let pass = serde_json::json!({"lifetimeInMinutes": 60, "isUsableOnce": true});
    assert_eq!(
        send(2, reqwest::Method::POST, tap.clone(), Some(pass.clone()))
            .await
            .0,
        403
    );
    assert_eq!(send(3, reqwest::Method::POST, tap, Some(pass)).await.0, 201);
    // Identity Protection: reading is not enough to confirm.
    assert_eq!(
        send(4, reqwest::Method::POST, confirm.clone(), Some(ids.clone()))
            .await
            .0,
        403
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        send(5, reqwest::Method::POST, confirm, Some(ids)).await.0,
        204
    );

    // The denied writes changed nothing and are logged as not applied.
    let log = inspect(info, "writes").await;
    let writes = log["writes"].as_array().unwrap();
    assert!(
        writes
            .iter()
            .all(|w| (w["status"].as_u64().unwrap() < 300) == (w["applied"] == true)),
        "{log}"
    );

    // The app's directory role, as its service principal's assignment.
    let claims = {
        use base64::Engine as _;
        let payload = tokens[0].split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    let principal = claims["oid"].as_str().unwrap();
    let path = format!(
        "/roleManagement/directory/roleAssignments?$filter=principalId eq '{principal}'&$expand=principal"
    );
    let (status, body) = send(0, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200, "{body}");
    let assignments = body["value"].as_array().unwrap();
    assert_eq!(assignments.len(), 1, "{body}");
    assert_eq!(
        assignments[0]["roleDefinitionId"], "fe930be7-5e62-47db-91af-98c3a49a38b1",
        "User Administrator by default"
    );
    assert_eq!(
        assignments[0]["principal"]["@odata.type"],
        "#microsoft.graph.servicePrincipal"
    );
    assert_eq!(assignments[0]["principal"]["appId"], info.apps[0].client_id);
}
