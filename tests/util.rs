//! Helpers shared by the integration tests, in three parts: the binary (run it, read its
//! output), the emulated tenant (start it, fixtures, tokens, a connection to it as a
//! configured tenant or a `GraphDirectory`), and log capture.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use resetctl::config::{Config, Env};
use resetctl::directory::GraphDirectory;
use resetctl::emulator::{ConnectionInfo, EmulatorConfig, RunningEmulator};
use serde_json::Value;

// ---- The binary -------------------------------------------------------------------------

/// Path of the binary under test, built by cargo for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_resetctl")
}

/// Run `resetctl` with `args` in `dir`, with no configuration and no colour.
pub fn resetctl_in(dir: &Path, args: &[&str]) -> Output {
    resetctl_env(dir, args, &[])
}

/// Run `resetctl` with `args` in `dir` and extra environment variables. The data directory
/// defaults to one under cargo's scratch folder, never the user's own (`$HOME`), so a test
/// reads nothing outside the repository and its build; a test that cares names its own.
pub fn resetctl_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(bin());
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RESETCTL_CONFIG")
        .env(
            "RESETCTL_DATA_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("default-data"),
        )
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the resetctl binary runs")
}

/// Run `resetctl` with `args` in the crate root.
pub fn resetctl(args: &[&str]) -> Output {
    resetctl_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The process exit code (panics if it was killed by a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

// ---- The emulated tenant ----------------------------------------------------------------

/// A file under `tests/fixtures/`.
pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// Start an emulator on a free port of 127.0.0.1.
pub async fn start_emulator(config: EmulatorConfig) -> RunningEmulator {
    RunningEmulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("the emulator starts")
}

/// An HTTP client for raw Graph requests (keeps enough idle connections for the
/// concurrency tests).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

/// Write `yaml` as `tenant.yaml` in `dir` and return its path.
pub fn write_tenant_file(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("tenant.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The emulator configuration of the tenant file `yaml`, written in `dir`.
pub fn tenant_file_config(dir: &Path, yaml: &str) -> EmulatorConfig {
    EmulatorConfig::from_tenant_file(write_tenant_file(dir, yaml)).unwrap()
}

/// An emulator serving the tenant file `yaml`, written in a fresh temporary directory (kept
/// alive by the returned handle).
pub async fn start_tenant(yaml: &str) -> (tempfile::TempDir, RunningEmulator) {
    let dir = tempfile::tempdir().unwrap();
    let emulator = start_emulator(tenant_file_config(dir.path(), yaml)).await;
    (dir, emulator)
}

/// An access token for app `index` of the emulator, with the client-secret flow (asserting
/// Entra's 200 answer).
pub async fn token(http: &reqwest::Client, info: &ConnectionInfo, index: usize) -> String {
    let app = &info.apps[index];
    let resp = http
        .post(&info.token_url)
        .form(&[
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_string()
}

/// `GET {inspect_url}/{what}` (the inspection API needs no token) as JSON.
pub async fn inspect(info: &ConnectionInfo, what: &str) -> Value {
    let url = format!("{}/{}", info.inspect_url, what.trim_start_matches('/'));
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// A `resetctl.yaml` naming an emulator as a tenant, for the library (`Config::parse` with
/// a fixed environment) or for the binary (a file and environment variables). Secrets stay
/// in the environment, as the configuration requires.
pub struct TenantConfig {
    name: String,
    settings: Vec<String>,
    apps: Vec<String>,
    env: Vec<(String, String)>,
}

impl TenantConfig {
    /// Tenant `name` at the emulator `info` describes, its quotas at `time_scale`, no apps yet.
    pub fn emulator(name: &str, info: &ConnectionInfo, time_scale: f64) -> TenantConfig {
        TenantConfig {
            name: name.to_owned(),
            settings: vec![
                format!("tenant_id: {}", info.tenant_id),
                format!("graph_url: {}", info.graph_url),
                format!("token_url: {}", info.token_url),
                format!("time_scale: {time_scale}"),
            ],
            apps: Vec::new(),
            env: Vec::new(),
        }
    }

    /// One more tenant setting, as a YAML line (`request_timeout_secs: 10`).
    pub fn setting(mut self, line: &str) -> TenantConfig {
        self.settings.push(line.to_owned());
        self
    }

    /// App `index` of the emulator, its client secret in the environment variable `var`.
    pub fn secret_app(mut self, info: &ConnectionInfo, index: usize, var: &str) -> TenantConfig {
        let app = &info.apps[index];
        self.apps.push(format!(
            "- client_id: {}\n  client_secret_env: {var}",
            app.client_id
        ));
        self.env.push((var.to_owned(), app.client_secret.clone()));
        self
    }

    /// App `index` of the emulator with the test certificate
    /// (`tests/fixtures/test-app.combined.pem`; the tenant file must register its
    /// certificate `test-app.cert.pem`).
    pub fn certificate_app(mut self, info: &ConnectionInfo, index: usize) -> TenantConfig {
        self.apps.push(format!(
            "- client_id: {}\n  certificate_file: {}",
            info.apps[index].client_id,
            fixture("test-app.combined.pem").display()
        ));
        self
    }

    /// The file's text.
    pub fn yaml(&self) -> String {
        let mut yaml = format!("tenants:\n  {}:\n", self.name);
        for line in &self.settings {
            yaml.push_str(&format!("    {line}\n"));
        }
        yaml.push_str("    apps:\n");
        for app in &self.apps {
            for line in app.lines() {
                yaml.push_str(&format!("      {line}\n"));
            }
        }
        yaml
    }

    /// The environment variables holding the apps' secrets.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Write the file to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.yaml()).unwrap();
    }

    /// The tenant as the library connects to it: parsed and validated configuration, then
    /// a `GraphDirectory` over its credential pool.
    pub fn directory(&self) -> GraphDirectory {
        let env = Env::from_pairs(self.env.iter().cloned());
        let config = Config::parse(&self.yaml(), None, &env).unwrap();
        let tenant = config.tenant(&self.name, &env).unwrap();
        GraphDirectory::from_settings(&tenant, &env).unwrap()
    }
}

// ---- Log capture ------------------------------------------------------------------------

/// A tracing writer appending to a shared buffer, for tests that search log output.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything logged so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Capture every log line of this thread, at TRACE, until the guard drops.
pub fn capture_logs() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Other tests in this binary run without a subscriber; callsites they registered first
    // cached "never interested". Recompute so this thread's subscriber sees every event.
    tracing::callsite::rebuild_interest_cache();
    (capture, guard)
}
