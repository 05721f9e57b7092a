//! `resetctl bench serve`: what the SOC side of `resetctl serve` sustains on this machine.
//!
//! 1. **Forwarding**: a trail of `--n` records (default 20,000) forwarded by the real
//!    [`Forwarder`] to a syslog receiver on loopback over TCP (RFC 5424 messages with CEF,
//!    octet-counted): records per second from the first pass to the sink holding them all,
//!    every frame counted back by the receiver.
//! 2. **Trigger intake**: `resetctl serve --tenant demo` (this binary, a child process, with
//!    one generic-trigger rule on the shipped credential-dump playbook) takes 100 generic
//!    webhooks at once, each a new incident naming an account of its own, from 100 clients: latency p50/p99 of the
//!    answer (a stored plan and its audit records), every answer a 201. The trigger rate
//!    limit is raised for the benchmark: one address sends everything.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use resetctl::audit::{AuditConfig, AuditHandle, Event, Outcome};
use resetctl::forward::Forwarder;
use resetctl::forward::syslog::{Syslog, Transport};
use resetctl::serve::load::drive;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader as AsyncBufReader};

use super::{Figures, ScratchDir};
use crate::cmd::{CmdResult, Exit, Failure};

/// Concurrent webhook clients.
const CLIENTS: usize = 100;
/// Webhooks sent: one per client, all at once, each a new incident naming one account of
/// its own (incidents naming the same accounts would share one plan).
const TRIGGERS: usize = CLIENTS;
/// The shipped breach list, whose accounts the demo tenant has.
const BREACH_LIST: &str = include_str!("../../../playbooks/credential-dump.csv");

fn fail(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Config, format!("bench serve: {what}: {e}"))
}

/// Run both parts.
pub async fn run(figures: &mut Figures, n: Option<u64>) -> CmdResult {
    let n = n.unwrap_or(20_000).max(1);
    let forwarding = forwarding(figures, n).await?;
    let triggers = triggers(figures).await?;
    figures.set(
        "serve",
        json!({ "forwarding": forwarding, "triggers": triggers }),
    );
    Ok(Exit::Success)
}

/// A trail of `n` records forwarded to a loopback syslog receiver over TCP.
async fn forwarding(figures: &Figures, n: u64) -> Result<serde_json::Value, Failure> {
    let scratch = ScratchDir::new("serve-forward")?;
    let trail = scratch.0.join("audit.jsonl");
    let audit = AuditHandle::open(&AuditConfig::new(&trail))
        .await
        .map_err(|e| fail("trail", e))?;
    for i in 0..n {
        let event = Event::new(
            "bench",
            "user.password_reset",
            format!("user{i}@contoso.example"),
            Outcome::Success,
        )
        .map_err(|e| fail("record", e))?;
        audit
            .record_nowait(event)
            .await
            .map_err(|e| fail("record", e))?;
    }
    audit.close().await.map_err(|e| fail("trail", e))?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| fail("receiver", e))?;
    let addr = listener.local_addr().map_err(|e| fail("receiver", e))?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let receiver = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut reader = AsyncBufReader::with_capacity(1 << 16, stream);
                let mut length = Vec::new();
                loop {
                    length.clear();
                    // `LEN SP MSG` (RFC 6587 §3.4.1).
                    match reader.read_until(b' ', &mut length).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let Some(len) = std::str::from_utf8(&length[..length.len() - 1])
                        .ok()
                        .and_then(|s| s.parse::<usize>().ok())
                    else {
                        return;
                    };
                    let mut message = vec![0u8; len];
                    if reader.read_exact(&mut message).await.is_err() {
                        return;
                    }
                    if message.starts_with(b"<") {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let sink = Arc::new(Syslog::new(
        "bench",
        &addr.to_string(),
        Transport::Tcp,
        "bench-host",
    ));
    let forwarder = Forwarder::new(sink, &trail, None, &scratch.0.join("forward"));
    let started = Instant::now();
    loop {
        let pass = forwarder.pass().await.map_err(|e| fail("forwarding", e))?;
        if pass.lag == 0 {
            break;
        }
    }
    // The receiver has counted every frame the sink wrote.
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    receiver.abort();
    let got = received.load(Ordering::Relaxed);
    if got != n {
        return Err(fail(
            "forwarding",
            format!("the receiver counted {got} messages of {n}"),
        ));
    }
    let rate = n as f64 / elapsed.as_secs_f64();
    figures.line(format!(
        "forwarding: {n} records to a TCP syslog receiver on loopback in {:.2} s: {rate:.0} records/s",
        elapsed.as_secs_f64()
    ));
    Ok(json!({
        "records": n,
        "seconds": elapsed.as_secs_f64(),
        "records_per_second": rate,
    }))
}

/// Stops the server child when dropped.
struct ServerChild(Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 500 generic webhooks from 100 concurrent clients into `resetctl serve --tenant demo`.
async fn triggers(figures: &Figures) -> Result<serde_json::Value, Failure> {
    let scratch = ScratchDir::new("serve-triggers")?;
    let dir = &scratch.0;
    let write =
        |name: &str, text: &str| std::fs::write(dir.join(name), text).map_err(|e| fail(name, e));
    write(
        "credential-dump.yaml",
        include_str!("../../../playbooks/credential-dump.yaml"),
    )?;
    write(
        "credential-dump.csv",
        include_str!("../../../playbooks/credential-dump.csv"),
    )?;
    let token = "bench-trigger-token-0123456789abcdef";
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    write(
        "resetctl.yaml",
        &format!(
            "serve:\n  public_url: http://127.0.0.1:9\n  token_key_env: BENCH_TOKEN_KEY\n  \
             api: {{ bearer_sha256: [{digest}] }}\n  \
             rate_limits: {{ triggers: {{ burst: 100000, per_minute: 1000000 }} }}\n  \
             max_connections_per_client: 1024\n\
             triggers:\n  - {{ playbook: credential-dump.yaml, tenant: demo, sources: [generic] }}\n"
        ),
    )?;
    let exe = std::env::current_exe().map_err(|e| fail("this binary", e))?;
    let mut child = ServerChild(
        Command::new(exe)
            .args(["serve", "--tenant", "demo", "--bind", "127.0.0.1:0"])
            .current_dir(dir)
            .env("RESETCTL_CONFIG", dir.join("resetctl.yaml"))
            .env("RESETCTL_DATA_DIR", dir)
            .env(
                "BENCH_TOKEN_KEY",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            )
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail("resetctl serve", e))?,
    );
    let addr = first_line(&mut child.0)?
        .split_whitespace()
        .nth(3)
        .map(str::to_owned)
        .ok_or_else(|| fail("resetctl serve", "no address on its first line"))?;
    let url = format!("http://{addr}/v1/triggers/generic");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .map_err(|e| fail("client", e))?;
    let run_id = std::process::id();
    let users: Arc<Vec<String>> = Arc::new(
        BREACH_LIST
            .lines()
            .skip(1)
            .filter_map(|row| row.split(',').next())
            .map(str::to_owned)
            .collect(),
    );
    let summary = drive(CLIENTS, TRIGGERS, Duration::from_secs(60), |i| {
        let (http, url, users) = (http.clone(), url.clone(), Arc::clone(&users));
        async move {
            let body = json!({
                "incident_id": format!("BENCH-{run_id}-{i}"),
                "kind": "credential_dump",
                "severity": "high",
                "title": "bench",
                "users": [users[i % users.len()]],
            });
            let r = http
                .post(&url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status() == 201 {
                Ok(())
            } else {
                Err(format!("status {}", r.status()))
            }
        }
    })
    .await;
    figures.line(format!(
        "trigger intake: {TRIGGERS} generic webhooks, {CLIENTS} concurrent: {summary}"
    ));
    if summary.failures > 0 {
        return Err(fail(
            "trigger intake",
            format!(
                "{} of {TRIGGERS} webhooks were not planned",
                summary.failures
            ),
        ));
    }
    Ok(json!({
        "webhooks": TRIGGERS,
        "clients": CLIENTS,
        "p50_ms": summary.p50.as_secs_f64() * 1000.0,
        "p99_ms": summary.p99.as_secs_f64() * 1000.0,
        "max_ms": summary.max.as_secs_f64() * 1000.0,
        "per_second": TRIGGERS as f64 / summary.elapsed.as_secs_f64(),
    }))
}

/// The server's first line (`serving … on ADDR …`).
fn first_line(child: &mut Child) -> Result<String, Failure> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail("resetctl serve", "no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| fail("resetctl serve", e))?;
    if line.is_empty() {
        return Err(fail("resetctl serve", "it exited before serving"));
    }
    Ok(line)
}
