//! What a SOC watches the server with: `/metrics` read by Prometheus's own text-format
//! parser (Python `prometheus_client`, installed by `.ci/python-deps`), `/readyz` following
//! the store and the tenant, the access log of a whole approval (routes, never tokens), and
//! the per-client rate limits.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use resetctl::serve::{Limit, MetricsAccess};
use resetctl::store::{NewApproval, NewRun, PlanDocument, RunId, RunStore};

use super::*;

/// A Python with `prometheus_client`: `RESETCTL_TEST_PYTHON`, the venv `.ci/python-deps`
/// makes under `target/`, or `python3`.
fn python_with_prometheus() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("RESETCTL_TEST_PYTHON").map(PathBuf::from),
        Some(root.join("target/pyenv/bin/python3")),
        Some(PathBuf::from("python3")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|python| {
            Command::new(python)
                .args(["-c", "import prometheus_client"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect(
            "this test needs Python's prometheus_client (the reference text-format parser): \
             run `.ci/python-deps`, or set RESETCTL_TEST_PYTHON",
        )
}

/// Every sample of an exposition, parsed by `prometheus_client`, as
/// `name{label="value",…}` (labels sorted) → value. Panics on text the parser refuses.
pub(super) fn parse(text: &str) -> BTreeMap<String, f64> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    assert family.type in ("counter", "gauge"), family.type
    assert family.documentation, family.name
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print(json.dumps(["%s{%s}" % (s.name, labels), s.value]))
"#;
    let mut child = Command::new(python_with_prometheus())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the page: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v): (String, f64) = serde_json::from_str(l).unwrap();
            (k, v)
        })
        .collect()
}

impl Served {
    /// `/metrics` with the API's bearer token, parsed.
    async fn metrics(&self) -> BTreeMap<String, f64> {
        let resp = self
            .api(reqwest::Method::GET, "/metrics")
            .bearer_auth(BEARER)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        parse(&resp.text().await.unwrap())
    }
}

pub(super) fn value(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_with_requests_and_approvals() {
    let lab = Lab::new().await;
    let store_path = lab.store_path.clone();
    let served = lab.serve_with(|o| o.run_store = Some(store_path)).await;

    // Bearer by default: the figures name tenants and incident volumes.
    let anonymous = served
        .api(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = served
        .api(reqwest::Method::GET, "/metrics")
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let before = served.metrics().await;
    assert_eq!(value(&before, "resetctl_store_up{}"), 1.0);
    let healthz = r#"resetctl_http_requests_total{method="GET",route="/healthz",status="200"}"#;
    let h0 = value(&before, healthz);
    for _ in 0..3 {
        let r = served
            .http
            .get(format!("{}/healthz", served.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A plan and its approval in the run store, as `resetctl plan` and `approve` leave them.
    let now = Timestamp::now();
    let run = RunId::generate(now);
    served
        .store
        .create_run(NewRun {
            id: run.clone(),
            created_at: now,
            playbook_name: "credential-dump".into(),
            playbook_path: "playbooks/credential-dump.yaml".into(),
            tenant: "contoso".into(),
            plan_hash: "abc".into(),
            plan: PlanDocument::text("{}"),
        })
        .await
        .unwrap();
    served
        .store
        .approve(
            &run,
            NewApproval {
                operator: "alice".into(),
                origin: "cli".into(),
                audit: (1, "00".into()),
                at: now,
            },
        )
        .await
        .unwrap();
    // A manager approves a request through the card's link: the reset goes through Graph.
    let id = card_request(&lab, &served, Script::Approve).await;
    let approve = card_link(&lab, "approve", &id).await;
    let done = served.click(&approve).await;
    assert_eq!(done.status, 200, "{}", done.body);
    until(served.store.as_ref(), &id, State::is_final).await;
    // A forwarder behind by 4 records, the oldest 30 s old.
    served
        .telemetry
        .forward_lag("siem")
        .observe(4, Some(now - SignedDuration::from_secs(30)));

    let after = served.metrics().await;
    assert_eq!(value(&after, healthz), h0 + 3.0, "{after:#?}");
    for (key, wanted) in [
        (r#"resetctl_runs{state="planned",tenant="contoso"}"#, 1.0),
        (r#"resetctl_run_approvals_total{tenant="contoso"}"#, 1.0),
        (
            r#"resetctl_approval_links_used_total{decision="approve"}"#,
            1.0,
        ),
        (
            r#"resetctl_verifications{state="completed",tenant="contoso"}"#,
            1.0,
        ),
        (
            r#"resetctl_http_requests_total{method="POST",route="/approve/{request}/{token}",status="200"}"#,
            1.0,
        ),
        (
            r#"resetctl_http_requests_total{method="POST",route="/v1/requests",status="201"}"#,
            1.0,
        ),
        (r#"resetctl_forward_lag_records{sink="siem"}"#, 4.0),
    ] {
        assert_eq!(value(&after, key), wanted, "{key} in {after:#?}");
    }
    assert!(value(&after, r#"resetctl_forward_lag_seconds{sink="siem"}"#) >= 30.0);
    assert_eq!(
        value(
            &before,
            r#"resetctl_approval_links_used_total{decision="approve"}"#
        ),
        0.0
    );
    // The reset's PATCH was sent with the tenant's one app.
    let writes: f64 = after
        .iter()
        .filter(|(k, _)| {
            k.starts_with("resetctl_graph_write_requests_total{")
                && k.contains("tenant=\"contoso\"")
        })
        .map(|(_, v)| v)
        .sum();
    assert!(writes >= 1.0, "{after:#?}");
    // No label holds a token or a raw approval path.
    let token = token_of(&approve);
    assert!(after.keys().all(|k| !k.contains(token)));
    served.shutdown().await;
}

/// Writes log lines into a buffer the test reads.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

// One thread: the subscriber set for the test's thread sees every task's events.
#[tokio::test(flavor = "current_thread")]
async fn the_access_log_of_a_whole_approval_names_routes_and_holds_no_secret() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let lab = Lab::new().await;
    let served = lab.serve().await;
    let id = card_request(&lab, &served, Script::Approve).await;
    // A signed API call too: its signature must not be logged either.
    let t = lab.clock.now().as_second();
    let signature = sign(&HmacKey::new(&HMAC_KEY).unwrap(), t, b"");
    let shown = served
        .api(reqwest::Method::GET, &format!("/v1/requests/{id}"))
        .header("x-resetctl-signature", &signature)
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    let approve = card_link(&lab, "approve", &id).await;
    let page = served.open(&approve).await;
    assert_eq!(page.status, 200);
    let cookie = page.cookie.clone().unwrap();
    let csrf = page.csrf.clone().unwrap();
    let done = served.post(&approve, Some(&cookie), Some(&csrf)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    until(served.store.as_ref(), &id, State::is_final).await;
    // A replay: refused, and still logged by route only.
    let replay = served.post(&approve, Some(&cookie), Some(&csrf)).await;
    assert_eq!(replay.status, 410);
    served.shutdown().await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let access: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["target"] == "access")
        .collect();
    let routes: Vec<(&str, &str, u64)> = access
        .iter()
        .map(|e| {
            let f = &e["fields"];
            (
                f["method"].as_str().unwrap(),
                f["route"].as_str().unwrap(),
                f["status"].as_u64().unwrap(),
            )
        })
        .collect();
    for wanted in [
        ("POST", "/v1/requests", 201),
        ("GET", "/v1/requests/{id}", 200),
        ("GET", "/approve/{request}/{token}", 200),
        ("POST", "/approve/{request}/{token}", 200),
        ("POST", "/approve/{request}/{token}", 410),
    ] {
        assert!(routes.contains(&wanted), "{wanted:?} not in {routes:?}");
    }
    let mut ids = std::collections::HashSet::new();
    for e in &access {
        let f = &e["fields"];
        assert_eq!(f["client_ip"], "127.0.0.1", "{e}");
        assert!(f["latency_ms"].as_f64().unwrap() >= 0.0);
        let rid = f["request_id"].as_str().unwrap();
        assert_eq!(rid.len(), 32, "{e}");
        assert!(ids.insert(rid.to_owned()), "request ids are unique: {rid}");
    }
    let (_, cookie_value) = cookie.split_once('=').unwrap();
    for secret in [
        token_of(&approve),
        cookie_value,
        &csrf,
        BEARER,
        signature.as_str(),
        signature.split("v1=").nth(1).unwrap(),
        &hex::encode(HMAC_KEY),
    ] {
        assert!(!log.contains(secret), "the log holds a secret ({secret})");
    }
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_limits_answer_429_with_retry_after_and_spare_other_clients() {
    let lab = Lab::new().await;
    let served = lab
        .serve_with(|o| {
            o.rate_limits.pages = Limit {
                burst: 3,
                per_minute: 2,
            };
            o.metrics = MetricsAccess::Loopback;
        })
        .await;
    let page = format!(
        "{}/approve/vr-0123456789abcdef0123456789abcdef/not-a-token",
        served.base
    );
    for _ in 0..3 {
        let r = served.http.get(&page).send().await.unwrap();
        assert_ne!(r.status(), 429);
    }
    let limited = served.http.get(&page).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    // Another route class, and the probes, are not this bucket.
    let api = served
        .api(reqwest::Method::GET, "/v1/requests/vr-x")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    let health = served
        .http
        .get(format!("{}/healthz", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // Another client (another loopback address) has its own bucket.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = other.get(&page).send().await.unwrap();
    assert_ne!(r.status(), 429);

    // `loopback` metrics: no credentials from this machine; the refusal is counted.
    let text = served
        .http
        .get(format!("{}/metrics", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 200);
    let m = parse(&text.text().await.unwrap());
    assert_eq!(
        value(&m, r#"resetctl_http_rate_limited_total{class="pages"}"#),
        1.0
    );
    assert_eq!(
        value(
            &m,
            r#"resetctl_http_requests_total{method="GET",route="/approve/{request}/{token}",status="429"}"#
        ),
        1.0
    );
    served.shutdown().await;
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_tenant_and_probe_storms_are_answered_from_the_cache() {
    let lab = Lab::new().await;
    let served = lab
        .serve_with(|o| o.ready_ttl = Duration::from_millis(500))
        .await;
    let ready = |served: &Served| {
        let req = served.http.get(format!("{}/readyz", served.base));
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = ready(&served).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["failing"], json!([]));
    // A storm of probes costs the tenant nothing more: one read per interval.
    let reads = || async {
        inspect(lab.info(), "stats").await["requests"]
            .as_u64()
            .unwrap_or(0)
    };
    let r0 = reads().await;
    let storm = futures::future::join_all((0..50).map(|_| ready(&served))).await;
    assert!(storm.iter().all(|(s, _)| *s == 200));
    let r1 = reads().await;
    assert!(r1 - r0 <= 3, "{r0} → {r1} requests for 50 probes");

    lab.emu.shutdown().await;
    // Not ready once the cached answer is stale: the body names the tenant, no more.
    let mut last = (0, Value::Null);
    for _ in 0..100 {
        last = ready(&served).await;
        if last.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = last;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["failing"][0]["component"], "tenant");
    assert_eq!(body["failing"][0]["tenant"], "contoso");
    assert!(!body.to_string().contains("http"), "{body}");
    // Liveness is not readiness.
    let health = served
        .http
        .get(format!("{}/healthz", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    served.shutdown().await;
}
