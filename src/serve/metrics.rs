//! `GET /metrics`: the server's figures in the Prometheus text exposition format, version
//! 0.0.4 (<https://prometheus.io/docs/instrumenting/exposition_formats/>): `# HELP` and
//! `# TYPE` before each family, label values escaped (`\\`, `\"`, `\n`), one sample a line.
//!
//! The encoder is written here rather than taken from `prometheus-client`: nearly every
//! figure is read at scrape time from what already holds it (the run store on a read-only
//! connection, the directories' per-app counters, the forwarders' lag gauges, the
//! [`Telemetry`] counters), which a registry of push-style metric objects would only
//! duplicate; the format itself is a few dozen lines.
//!
//! Who may read it is [`MetricsAccess`]: by default the request API's bearer tokens (what a
//! Prometheus `authorization` block sends), because the figures name tenants and show
//! incident volumes.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::app::{App, Peer};
use super::telemetry::Telemetry;
use crate::store::stats::StoreStats;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsAccess {
    /// A bearer token of the request API (`serve.api.bearer_sha256`).
    #[default]
    Bearer,
    /// Clients on a loopback address only, without credentials (a local agent scrapes).
    Loopback,
    /// Anyone who reaches the server.
    Public,
}

/// A page of metric families being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// A metric family's type.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Only goes up (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Exposition {
    /// Start family `name` with its help text.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
        self
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A label value escaped as the format requires.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value: integers without a fraction, `NaN` and infinities as the format spells
/// them.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// What the page is built from.
pub(crate) struct Sources<'a> {
    pub telemetry: &'a Telemetry,
    pub store: Option<&'a PathBuf>,
    pub app: &'a App,
}

/// Every family, from every source.
pub(crate) async fn render(sources: Sources<'_>) -> String {
    let mut page = Exposition::default();
    page.family(
        "resetctl_build_info",
        Kind::Gauge,
        "The running resetctl's version (always 1).",
    )
    .sample(
        "resetctl_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );

    let counts = sources.telemetry.counts();
    page.family(
        "resetctl_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by route template, method and status.",
    );
    for ((route, method, status), n) in &counts.http {
        let status = status.to_string();
        page.sample(
            "resetctl_http_requests_total",
            &[("route", route), ("method", method), ("status", &status)],
            *n as f64,
        );
    }
    page.family(
        "resetctl_http_rate_limited_total",
        Kind::Counter,
        "Requests refused with 429 by the per-client rate limit, by route class.",
    );
    for (class, n) in &counts.limited {
        page.sample(
            "resetctl_http_rate_limited_total",
            &[("class", class)],
            *n as f64,
        );
    }
    page.family(
        "resetctl_http_connections_refused_total",
        Kind::Counter,
        "Connections closed at accept by a connection cap (per_client or total).",
    );
    for (cap, n) in &counts.connections_refused {
        page.sample(
            "resetctl_http_connections_refused_total",
            &[("cap", cap)],
            *n as f64,
        );
    }
    page.family(
        "resetctl_http_connections_open",
        Kind::Gauge,
        "Connections open now.",
    )
    .sample(
        "resetctl_http_connections_open",
        &[],
        sources.app.connections.open() as f64,
    );
    page.family(
        "resetctl_trigger_intake_total",
        Kind::Counter,
        "Incident triggers received, by source and result (planned, duplicate, accepted, \
         invalid, unauthorized, unmapped, not_found, rate_limited, unavailable, failed).",
    );
    for ((source, result), n) in &counts.triggers {
        page.sample(
            "resetctl_trigger_intake_total",
            &[("source", source), ("result", result)],
            *n as f64,
        );
    }

    graph(&mut page, sources.app);
    forwarding(&mut page, sources.telemetry);

    if let Some(path) = sources.store {
        let path = path.clone();
        let read = tokio::task::spawn_blocking(move || StoreStats::read(&path)).await;
        let stats = match read {
            Ok(Ok(stats)) => Some(stats),
            Ok(Err(e)) => {
                tracing::warn!("metrics: the run store could not be read: {e}");
                None
            }
            Err(e) => {
                tracing::warn!("metrics: reading the run store failed: {e}");
                None
            }
        };
        page.family(
            "resetctl_store_up",
            Kind::Gauge,
            "1 when the run store could be read for this scrape, else 0.",
        )
        .sample(
            "resetctl_store_up",
            &[],
            f64::from(u8::from(stats.is_some())),
        );
        if let Some(stats) = stats {
            store(&mut page, &stats);
        }
    }
    page.finish()
}

/// Per tenant and app: Graph write requests and 429s of this process.
fn graph(page: &mut Exposition, app: &App) {
    let stats: Vec<_> = app
        .ctx
        .runtimes
        .iter()
        .map(|(tenant, runtime)| (tenant, runtime.directory().app_stats()))
        .collect();
    page.family(
        "resetctl_graph_write_requests_total",
        Kind::Counter,
        "Graph write requests this server sent, by tenant and app (client id); a $batch \
         counts its items.",
    );
    for (tenant, apps) in &stats {
        for a in apps {
            page.sample(
                "resetctl_graph_write_requests_total",
                &[("tenant", tenant), ("app", &a.client_id)],
                a.writes as f64,
            );
        }
    }
    page.family(
        "resetctl_graph_throttled_total",
        Kind::Counter,
        "Graph responses answered 429 to this server, by tenant and app; $batch items included.",
    );
    for (tenant, apps) in &stats {
        for a in apps {
            page.sample(
                "resetctl_graph_throttled_total",
                &[("tenant", tenant), ("app", &a.client_id)],
                a.throttled as f64,
            );
        }
    }
}

/// Per sink: how far behind the trail's head it is.
fn forwarding(page: &mut Exposition, telemetry: &Telemetry) {
    let sinks = telemetry.sinks();
    let now = jiff::Timestamp::now();
    page.family(
        "resetctl_forward_lag_records",
        Kind::Gauge,
        "Audit records the sink has not received yet.",
    );
    for (sink, lag) in &sinks {
        page.sample(
            "resetctl_forward_lag_records",
            &[("sink", sink)],
            lag.records() as f64,
        );
    }
    page.family(
        "resetctl_forward_lag_seconds",
        Kind::Gauge,
        "Age of the oldest audit record the sink has not received (0 when it has them all).",
    );
    for (sink, lag) in &sinks {
        page.sample(
            "resetctl_forward_lag_seconds",
            &[("sink", sink)],
            lag.seconds_behind(now),
        );
    }
    page.family(
        "resetctl_forward_records_total",
        Kind::Counter,
        "Audit records the sink accepted since the server started.",
    );
    for (sink, lag) in &sinks {
        page.sample(
            "resetctl_forward_records_total",
            &[("sink", sink)],
            lag.delivered_total() as f64,
        );
    }
    page.family(
        "resetctl_forward_failures_total",
        Kind::Counter,
        "Forwarding passes the sink did not accept (down, throttled or refusing).",
    );
    for (sink, lag) in &sinks {
        page.sample(
            "resetctl_forward_failures_total",
            &[("sink", sink)],
            lag.failures_total() as f64,
        );
    }
}

/// A family of two labels: name, type, help, label names, rows.
type Labelled2<'a> = (
    &'a str,
    Kind,
    &'a str,
    [&'a str; 2],
    &'a [(String, String, u64)],
);
/// A counter family of one label: name, help, label name, rows.
type Labelled1<'a> = (&'a str, &'a str, &'a str, &'a [(String, u64)]);

/// The run store's figures.
fn store(page: &mut Exposition, stats: &StoreStats) {
    let triples: [Labelled2<'_>; 4] = [
        (
            "resetctl_runs",
            Kind::Gauge,
            "Runs in the store, by tenant and state.",
            ["tenant", "state"],
            &stats.runs,
        ),
        (
            "resetctl_graph_writes_total",
            Kind::Counter,
            "Journaled Graph writes of every run, by tenant and outcome (pending: no outcome yet).",
            ["tenant", "outcome"],
            &stats.writes,
        ),
        (
            "resetctl_messages_total",
            Kind::Counter,
            "Messages of every run, by channel and outcome (pending: no outcome yet).",
            ["channel", "outcome"],
            &stats.messages,
        ),
        (
            "resetctl_verifications",
            Kind::Gauge,
            "Verification requests, by tenant and current state.",
            ["tenant", "state"],
            &stats.verifications,
        ),
    ];
    for (name, kind, help, [a, b], rows) in triples {
        page.family(name, kind, help);
        for (x, y, n) in rows {
            page.sample(name, &[(a, x), (b, y)], *n as f64);
        }
    }
    let pairs: [Labelled1<'_>; 4] = [
        (
            "resetctl_users_done_total",
            "Users of every run whose every journaled step has an outcome, by tenant.",
            "tenant",
            &stats.users_done,
        ),
        (
            "resetctl_run_throttled_total",
            "Graph 429s over every run's finished execution attempts, by tenant.",
            "tenant",
            &stats.throttled,
        ),
        (
            "resetctl_run_approvals_total",
            "Operator approvals of run plans, by tenant.",
            "tenant",
            &stats.approvals,
        ),
        (
            "resetctl_approval_links_used_total",
            "Approval links redeemed by an approver, by decision.",
            "decision",
            &stats.links_used,
        ),
    ];
    for (name, help, label, rows) in pairs {
        page.family(name, Kind::Counter, help);
        for (x, n) in rows {
            page.sample(name, &[(label, x)], *n as f64);
        }
    }
}

/// `GET /metrics`.
pub(crate) async fn show(
    State(app): State<Arc<App>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    match app.metrics_access {
        MetricsAccess::Public => {}
        MetricsAccess::Loopback => {
            if !peer.is_some_and(|Extension(Peer(addr))| addr.ip().to_canonical().is_loopback()) {
                return (
                    StatusCode::FORBIDDEN,
                    "metrics are served to loopback clients only\n",
                )
                    .into_response();
            }
        }
        MetricsAccess::Bearer => {
            if let Some(refused) = super::api::unauthenticated(&app, &headers, b"") {
                return refused;
            }
        }
    }
    let page = render(Sources {
        telemetry: &app.telemetry,
        store: app.run_store.as_ref(),
        app: &app,
    })
    .await;
    let mut response = page.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_labels_are_written_as_the_format_says() {
        let mut page = Exposition::default();
        page.family("x_total", Kind::Counter, "Line one\nback\\slash.")
            .sample("x_total", &[("a", "q\"uote"), ("b", "new\nline\\")], 3.0)
            .sample("x_total", &[], 0.25);
        assert_eq!(
            page.finish(),
            "# HELP x_total Line one\\nback\\\\slash.\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"uote\",b=\"new\\nline\\\\\"} 3\nx_total 0.25\n"
        );
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(-2.0), "-2");
    }
}
