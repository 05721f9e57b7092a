//! `resetctl bench`: `emulator` here; `graph`, `run`, `plan`, `comms` and `tabletop` in
//! `bench/`.
//!
//! `resetctl bench serve`: trail forwarding to syslog and trigger intake, see
//! `bench/serve.rs`.
//!
//! `resetctl bench emulator`: requests per second the emulated tenant sustains for
//! `GET /users/{id}` and `PATCH /users/{id}` (passwordProfile) with throttling off, driven by
//! concurrent HTTP clients over loopback. The emulator must never be the bottleneck of a
//! run (target: at least 5,000 requests/s on 2 cores, release build).
//!
//! `resetctl bench graph`: the Graph client's write rate against Graph's quotas, see
//! `bench/graph.rs`. `resetctl bench run` and `bench plan`: a whole run and planning at a
//! million users, see `bench/run.rs` and `bench/plan.rs`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use resetctl::emulator::{EmulatorConfig, RunningEmulator};
use serde_json::{Value, json};

use super::{CmdResult, Exit, Failure};

mod child;
pub use child::main as child_main;
mod comms;
mod graph;
mod plan;
mod run;
mod serve;
mod tabletop;
use crate::cli::{BenchArgs, BenchTarget, GlobalArgs, OutputFormat};

/// Concurrent client tasks.
const CONCURRENCY: usize = 64;
/// Users in the benchmark tenant.
const USERS: u32 = 10_000;

/// Run the chosen benchmark.
pub async fn run(global: &GlobalArgs, args: BenchArgs) -> CmdResult {
    let mut figures = Figures::new(global, args.target);
    let exit = match args.target {
        BenchTarget::Emulator => emulator(&mut figures, args.n.unwrap_or(50_000) as usize).await,
        BenchTarget::Graph => graph::run(&mut figures, &args).await,
        BenchTarget::Run => run::run(&mut figures, &args).await,
        BenchTarget::Plan => plan::run(&mut figures, args.n).await,
        BenchTarget::Comms => comms::run(&mut figures, args.n, args.time_scale).await,
        BenchTarget::Tabletop => tabletop::run(&mut figures, args.n).await,
        BenchTarget::Serve => serve::run(&mut figures, args.n).await,
    }?;
    figures.finish();
    Ok(exit)
}

/// Where a benchmark's results go: lines of text as it measures, or under `--output json`
/// one document of its figures (`{"bench": NAME, NAME: {...}}`; `bench run` has `run` and
/// `plan`), printed at the end.
pub struct Figures {
    json: Option<serde_json::Map<String, Value>>,
}

impl Figures {
    fn new(global: &GlobalArgs, target: BenchTarget) -> Figures {
        let json = (global.output == OutputFormat::Json).then(|| {
            let name = match target {
                BenchTarget::Emulator => "emulator",
                BenchTarget::Graph => "graph",
                BenchTarget::Run => "run",
                BenchTarget::Plan => "plan",
                BenchTarget::Comms => "comms",
                BenchTarget::Tabletop => "tabletop",
                BenchTarget::Serve => "serve",
            };
            let mut doc = serde_json::Map::new();
            doc.insert("bench".into(), name.into());
            doc
        });
        Figures { json }
    }

    /// A line for people (text output only).
    pub fn line(&self, text: impl std::fmt::Display) {
        if self.json.is_none() {
            outln!("{text}");
        }
    }

    /// One benchmark's figures (JSON output only).
    pub fn set(&mut self, name: &str, figures: Value) {
        if let Some(doc) = &mut self.json {
            doc.insert(name.into(), figures);
        }
    }

    fn finish(self) {
        if let Some(doc) = self.json {
            outln!("{}", Value::Object(doc));
        }
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Config, format!("bench emulator: {what}: {e}"))
}

/// A scratch directory for one benchmark, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new(what: &str) -> Result<ScratchDir, Failure> {
        let path =
            std::env::temp_dir().join(format!("resetctl-bench-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| {
            Failure::new(
                Exit::Config,
                format!("bench {what}: scratch directory: {e}"),
            )
        })?;
        Ok(ScratchDir(path))
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn emulator(figures: &mut Figures, n: usize) -> CmdResult {
    let mut config = EmulatorConfig::seeded(USERS, 1);
    config.throttle = false;
    let bind = "127.0.0.1:0".parse().map_err(|e| fail("bind address", e))?;
    let emu = RunningEmulator::start(config, bind)
        .await
        .map_err(|e| fail("emulator", e))?;
    let info = emu.info().clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .map_err(|e| fail("http client", e))?;
    let token: Value = client
        .post(&info.token_url)
        .form(&[
            ("client_id", info.client_id.as_str()),
            ("client_secret", info.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .map_err(|e| fail("token", e))?
        .json()
        .await
        .map_err(|e| fail("token", e))?;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // Targets a User Administrator may reset: cloud-only users without a role.
    let get = |url: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await?
                .json::<Value>()
                .await
        }
    };
    let mut privileged = HashSet::new();
    let roles = get(format!(
        "{}/roleManagement/directory/roleAssignments?$top=999",
        info.graph_url
    ))
    .await
    .map_err(|e| fail("role assignments", e))?;
    for a in roles["value"].as_array().into_iter().flatten() {
        privileged.insert(a["principalId"].as_str().unwrap_or_default().to_string());
    }
    let groups = get(format!(
        "{}/groups?$filter=isAssignableToRole%20eq%20true",
        info.graph_url
    ))
    .await
    .map_err(|e| fail("groups", e))?;
    for g in groups["value"].as_array().into_iter().flatten() {
        let members = get(format!(
            "{}/groups/{}/members?$select=id",
            info.graph_url,
            g["id"].as_str().unwrap_or_default()
        ))
        .await
        .map_err(|e| fail("group members", e))?;
        for m in members["value"].as_array().into_iter().flatten() {
            privileged.insert(m["id"].as_str().unwrap_or_default().to_string());
        }
    }
    let mut all_ids = Vec::new();
    let mut resettable = Vec::new();
    let mut next = Some(format!(
        "{}/users?$select=id,onPremisesSyncEnabled&$top=999",
        info.graph_url
    ));
    while let Some(url) = next {
        let page = get(url).await.map_err(|e| fail("users", e))?;
        for u in page["value"].as_array().into_iter().flatten() {
            let id = u["id"].as_str().unwrap_or_default().to_string();
            if u["onPremisesSyncEnabled"] != json!(true) && !privileged.contains(&id) {
                resettable.push(id.clone());
            }
            all_ids.push(id);
        }
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    let (users, resettable_count) = (all_ids.len(), resettable.len());
    figures.line(format_args!(
        "emulator: {users} users ({resettable_count} resettable), {CONCURRENCY} concurrent clients, {n} requests per phase, throttling off"
    ));
    let body = Arc::new(
        json!({"passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "Bench-Pass-2024!"}}).to_string(),
    );
    let get_rate = phase(&client, &info.graph_url, &token, Arc::new(all_ids), n, None).await;
    figures.line(format_args!("GET   /users/{{id}}: {}", get_rate.describe()));
    let patch_rate = phase(
        &client,
        &info.graph_url,
        &token,
        Arc::new(resettable),
        n,
        Some(body),
    )
    .await;
    figures.line(format_args!(
        "PATCH /users/{{id}}: {}",
        patch_rate.describe()
    ));
    figures.set(
        "emulator",
        json!({
            "users": users,
            "resettable": resettable_count,
            "concurrency": CONCURRENCY,
            "requests_per_phase": n,
            "get": get_rate.json(),
            "patch": patch_rate.json(),
        }),
    );
    emu.shutdown().await;
    Ok(Exit::Success)
}

struct Rate {
    requests: usize,
    seconds: f64,
    statuses: BTreeMap<u16, usize>,
    errors: usize,
}

impl Rate {
    fn json(&self) -> Value {
        json!({
            "requests_per_second": self.requests as f64 / self.seconds,
            "requests": self.requests,
            "seconds": self.seconds,
            "statuses": self.statuses,
            "transport_errors": self.errors,
        })
    }

    fn describe(&self) -> String {
        format!(
            "{:.0} requests/s ({} requests in {:.2} s; statuses {:?}; transport errors {})",
            self.requests as f64 / self.seconds,
            self.requests,
            self.seconds,
            self.statuses,
            self.errors
        )
    }
}

async fn phase(
    client: &reqwest::Client,
    graph: &str,
    token: &str,
    ids: Arc<Vec<String>>,
    n: usize,
    patch_body: Option<Arc<String>>,
) -> Rate {
    let counter = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        let (client, ids, counter, body) = (
            client.clone(),
            ids.clone(),
            counter.clone(),
            patch_body.clone(),
        );
        let (graph, token) = (graph.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
            let mut errors = 0;
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= n || ids.is_empty() {
                    break;
                }
                let url = format!("{graph}/users/{}", ids[i % ids.len()]);
                let request = match &body {
                    Some(b) => client
                        .patch(url)
                        .header("content-type", "application/json")
                        .body(b.as_str().to_string()),
                    None => client.get(url),
                };
                match request.bearer_auth(&token).send().await {
                    Ok(r) => {
                        *statuses.entry(r.status().as_u16()).or_default() += 1;
                        let _ = r.bytes().await;
                    }
                    Err(_) => errors += 1,
                }
            }
            (statuses, errors)
        }));
    }
    let mut statuses = BTreeMap::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((s, e)) = t.await {
            for (k, v) in s {
                *statuses.entry(k).or_default() += v;
            }
            errors += e;
        }
    }
    Rate {
        requests: n,
        seconds: start.elapsed().as_secs_f64(),
        statuses,
        errors,
    }
}
