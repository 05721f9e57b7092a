//! The HTTP sinks: a signed JSON webhook (a SOAR, a log shipper) and the Azure Monitor Logs
//! Ingestion API (Microsoft Sentinel's custom tables).
//!
//! Logs Ingestion (learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview):
//! `POST {endpoint}/dataCollectionRules/{dcr immutable id}/streams/{stream}?api-version=2023-01-01`
//! with a bearer token for `https://monitor.azure.com/.default` (the app needs Monitoring
//! Metrics Publisher on the DCR), a JSON array of objects matching the stream's columns, at
//! most 1 MB per call; 204 on success, 429 with `Retry-After` when over the limits. It does
//! not de-duplicate a retried call, so one call carries exactly the records the cursor moves
//! past. The stream's columns: `TimeGenerated` (datetime), `Trail`, `Seq` (long), `Actor`,
//! `Action`, `Subject`, `Outcome`, `Details` (dynamic), `Hash`.

use std::sync::Arc;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::sink::{Sink, SinkError};
use crate::audit::Record;
use crate::comms::channels::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};

/// The most bytes one Logs Ingestion call may carry.
const INGEST_MAX_BYTES: usize = 1_000_000;

/// A record as the JSON both HTTP sinks send.
pub fn record_json(record: &Record) -> Value {
    json!({
        "TimeGenerated": record.time,
        "Trail": record.trail.to_string(),
        "Seq": record.seq,
        "Actor": record.actor,
        "Action": record.action,
        "Subject": record.subject,
        "Outcome": record.outcome.as_str(),
        "Details": Value::Object(record.details.clone()),
        "Hash": record.hash,
    })
}

/// The sink error of an HTTP answer that was not a success.
fn status_error(status: reqwest::StatusCode, retry_after: Option<u64>, body: &str) -> SinkError {
    let detail = format!(
        "HTTP {}: {}",
        status.as_u16(),
        body.chars().take(300).collect::<String>()
    );
    match status.as_u16() {
        429 => SinkError::Throttled(retry_after),
        408 | 500..=599 => SinkError::Unavailable(detail),
        _ => SinkError::Refused(detail),
    }
}

async fn post(request: reqwest::RequestBuilder) -> Result<(), SinkError> {
    let response = request
        .send()
        .await
        .map_err(|e| SinkError::Unavailable(e.without_url().to_string()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = response.text().await.unwrap_or_default();
    Err(status_error(status, retry_after, &body))
}

/// A webhook receiving `{"records": [...]}`, signed as the communications webhook is.
pub struct WebhookSink {
    name: String,
    http: reqwest::Client,
    url: String,
    secret: SecretString,
}

impl WebhookSink {
    /// Post to `url`, signing with `secret`.
    pub fn new(name: &str, http: reqwest::Client, url: &str, secret: SecretString) -> Self {
        WebhookSink {
            name: name.into(),
            http,
            url: url.into(),
            secret,
        }
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<usize, SinkError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&json!({
                "records": records.iter().map(record_json).collect::<Vec<_>>()
            }))
            .map_err(|e| SinkError::Config(e.to_string()))?;
            let ts = jiff::Timestamp::now().as_second();
            let sig = signature(self.secret.expose_secret().as_bytes(), ts, &body);
            post(
                self.http
                    .post(&self.url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(TIMESTAMP_HEADER, ts.to_string())
                    .header(SIGNATURE_HEADER, sig)
                    .body(body),
            )
            .await?;
            Ok(records.len())
        })
    }

    fn max_batch(&self) -> usize {
        200
    }
}

/// Where a bearer token for the Logs Ingestion API comes from.
pub trait BearerSource: Send + Sync {
    /// A current token.
    fn bearer(&self) -> BoxFuture<'_, Result<Arc<SecretString>, String>>;
}

impl BearerSource for crate::graph::auth::TokenSource {
    fn bearer(&self) -> BoxFuture<'_, Result<Arc<SecretString>, String>> {
        Box::pin(async move { self.token().await.map_err(|e| e.to_string()) })
    }
}

/// The Logs Ingestion API for one DCR stream.
pub struct LogsIngestion {
    name: String,
    http: reqwest::Client,
    url: String,
    token: Arc<dyn BearerSource>,
}

impl LogsIngestion {
    /// Send to `stream` of the DCR `dcr` at `endpoint`, authenticated by `token`.
    pub fn new(
        name: &str,
        http: reqwest::Client,
        endpoint: &str,
        dcr: &str,
        stream: &str,
        token: Arc<dyn BearerSource>,
    ) -> Self {
        LogsIngestion {
            name: name.into(),
            http,
            url: format!(
                "{}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01",
                endpoint.trim_end_matches('/')
            ),
            token,
        }
    }
}

/// The JSON array of the leading records that fits in `max` bytes (at least one record),
/// and how many it holds.
pub fn ingest_body(records: &[Record], max: usize) -> (Vec<u8>, usize) {
    let mut body = b"[".to_vec();
    let mut n = 0;
    for record in records {
        let item = serde_json::to_vec(&record_json(record)).unwrap_or_default();
        if n > 0 && body.len() + item.len() + 2 > max {
            break;
        }
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&item);
        n += 1;
    }
    body.push(b']');
    (body, n)
}

impl Sink for LogsIngestion {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<usize, SinkError>> {
        Box::pin(async move {
            let (body, n) = ingest_body(records, INGEST_MAX_BYTES);
            let token = self.token.bearer().await.map_err(SinkError::Unavailable)?;
            post(
                self.http
                    .post(&self.url)
                    .bearer_auth(token.expose_secret())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string())
                    .body(body),
            )
            .await?;
            Ok(n)
        })
    }

    fn max_batch(&self) -> usize {
        2_000
    }
}
