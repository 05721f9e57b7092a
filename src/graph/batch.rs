//! JSON batching (<https://learn.microsoft.com/graph/json-batching>): up to 20 requests per
//! `$batch`, results matched by id, `dependsOn`, and per-item throttling handled by re-sending
//! only the throttled items (and the items that depended on them) in a later batch after their
//! Retry-After.
//!
//! Graph evaluates every item against the throttling limits on its own, so a batch of `k`
//! writes is charged `k` cells of the write budget before it is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::client::GraphClient;
use super::error::{GraphError, GraphErrorKind};
use super::request::{Request, Response};
use crate::throttle::{Bucket, Charge, parse_retry_after};

/// Graph's limit of requests per `$batch`.
pub const MAX_BATCH: usize = 20;
/// Envelopes in flight at once for one `batch()` call.
pub const ENVELOPES_IN_FLIGHT: usize = 16;

/// One request of a batch, and the positions (in the same `batch()` call, all earlier) of
/// the items that must succeed before it runs (`dependsOn`).
#[derive(Debug)]
pub struct BatchItem {
    /// The request (its path template is used as the item's relative `url`).
    pub request: Request,
    /// Earlier items it depends on.
    pub depends_on: Vec<usize>,
}

impl BatchItem {
    /// An item with no dependency.
    pub fn new(request: Request) -> Self {
        BatchItem {
            request,
            depends_on: Vec::new(),
        }
    }

    /// An item that runs only if item `index` succeeded.
    pub fn after(request: Request, index: usize) -> Self {
        BatchItem {
            request,
            depends_on: vec![index],
        }
    }
}

/// The outcome of one item: its response, or a typed error (`DependencyFailed` for a 424
/// caused by a failed prerequisite).
pub type BatchOutcome = Result<Response, GraphError>;

/// `{"responses": [...]}`.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    responses: Vec<ItemResponse>,
}

/// One item's response.
#[derive(Deserialize)]
struct ItemResponse {
    id: String,
    status: u16,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    body: Option<Value>,
}

/// Per-item round outcomes of one envelope, or the envelope's own failure.
type EnvelopeResult = Result<Vec<(usize, Round)>, GraphError>;

/// What happened to an item in one round.
enum Round {
    /// Final.
    Done(BatchOutcome),
    /// Throttled: send again after the gate opens.
    Throttled(Option<Duration>),
    /// Transient failure of an idempotent item (or 503): send again.
    Transient,
    /// 424: final or retried depending on what happened to its prerequisites.
    Dependency(GraphError),
}

fn bucket_rank(b: Bucket) -> u8 {
    match b {
        Bucket::DirectoryRead => 0,
        Bucket::DirectoryWrite => 1,
        Bucket::Mail => 2,
        Bucket::IdentityProtection => 3,
    }
}

fn item_header(headers: &Map<String, Value>, name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
        })
}

fn find_root(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

impl GraphClient {
    /// Runs `items` through `$batch` and returns one outcome per item, in input order.
    ///
    /// Items connected by `depends_on` travel in the same envelope (a connected group may
    /// hold at most 20 items). Items answered 429 are re-sent, alone with whatever of their
    /// group is still pending, in a later envelope once the bucket's Retry-After gate opens;
    /// successful items are never re-sent. A 424 whose prerequisite was throttled is retried
    /// with it; otherwise it is final (`DependencyFailed`). Both an envelope 200 and an
    /// envelope 424 carrying per-item responses are accepted.
    pub async fn batch(&self, items: Vec<BatchItem>) -> Result<Vec<BatchOutcome>, GraphError> {
        let n = items.len();
        let mut parent: Vec<usize> = (0..n).collect();
        for (i, item) in items.iter().enumerate() {
            for &d in &item.depends_on {
                if d >= i {
                    return Err(GraphError::new(
                        GraphErrorKind::Refused,
                        format!(
                            "batch item {i} depends on {d}: dependencies must be earlier items"
                        ),
                    ));
                }
                let (a, b) = (find_root(&mut parent, i), find_root(&mut parent, d));
                parent[a] = b;
            }
        }
        let roots: Vec<usize> = (0..n).map(|i| find_root(&mut parent, i)).collect();
        let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
        for &r in &roots {
            *sizes.entry(r).or_default() += 1;
        }
        if sizes.values().any(|&s| s > MAX_BATCH) {
            return Err(GraphError::new(
                GraphErrorKind::Refused,
                format!("a dependsOn chain may span at most {MAX_BATCH} batch items"),
            ));
        }
        let mut results: Vec<Option<BatchOutcome>> = (0..n).map(|_| None).collect();
        let mut throttle_counts = vec![0u32; n];
        let mut transient_counts = vec![0u32; n];
        let mut pending: BTreeSet<usize> = (0..n).collect();
        let options_max_throttle = self.options().max_throttle_retries;
        let options_max_attempts = self.options().max_attempts;
        while !pending.is_empty() {
            // Units: the pending members of each dependency group.
            let mut units: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for &i in &pending {
                units.entry(roots[i]).or_default().push(i);
            }
            // Pack units of the same bucket into envelopes of at most 20 items.
            let mut envelopes: Vec<(Bucket, Vec<usize>)> = Vec::new();
            for unit in units.into_values() {
                let bucket = unit
                    .iter()
                    .map(|&i| items[i].request.effective_charge().bucket)
                    .max_by_key(|b| bucket_rank(*b))
                    .unwrap_or(Bucket::DirectoryWrite);
                match envelopes
                    .iter_mut()
                    .find(|(b, e)| *b == bucket && e.len() + unit.len() <= MAX_BATCH)
                {
                    Some((_, e)) => e.extend(unit),
                    None => envelopes.push((bucket, unit)),
                }
            }
            let sent: Vec<(Vec<usize>, EnvelopeResult)> = stream::iter(envelopes)
                .map(|(bucket, members)| {
                    let pending = &pending;
                    let items = &items;
                    async move {
                        let r = self.send_envelope(items, &members, pending, bucket).await;
                        (members, r)
                    }
                })
                .buffer_unordered(ENVELOPES_IN_FLIGHT)
                .collect()
                .await;
            let mut rounds: BTreeMap<usize, Round> = BTreeMap::new();
            for (members, outcome) in sent {
                match outcome {
                    Ok(list) => rounds.extend(list),
                    Err(e) => {
                        for i in members {
                            rounds.insert(i, Round::Done(Err(e.clone())));
                        }
                    }
                }
            }
            let mut next: BTreeSet<usize> = BTreeSet::new();
            let mut deps_failed = Vec::new();
            for (i, round) in rounds {
                match round {
                    Round::Done(outcome) => results[i] = Some(outcome),
                    Round::Throttled(retry_after) => {
                        throttle_counts[i] += 1;
                        if throttle_counts[i] > options_max_throttle {
                            let mut e = GraphError::new(
                                GraphErrorKind::Throttled,
                                "batch item still throttled after retries",
                            )
                            .with_request(items[i].request.describe());
                            e.status = Some(429);
                            e.retry_after = retry_after;
                            results[i] = Some(Err(e));
                        } else {
                            next.insert(i);
                        }
                    }
                    Round::Transient => {
                        transient_counts[i] += 1;
                        if transient_counts[i] >= options_max_attempts {
                            let mut e = GraphError::new(
                                GraphErrorKind::Server,
                                "batch item kept failing transiently",
                            )
                            .with_request(items[i].request.describe());
                            e.status = Some(503);
                            results[i] = Some(Err(e));
                        } else {
                            next.insert(i);
                        }
                    }
                    Round::Dependency(e) => deps_failed.push((i, e)),
                }
            }
            // A 424 is retried when a prerequisite is retried (transitively), final otherwise.
            let mut changed = true;
            while changed {
                changed = false;
                deps_failed.retain(|(i, _)| {
                    if items[*i].depends_on.iter().any(|d| next.contains(d)) {
                        next.insert(*i);
                        changed = true;
                        false
                    } else {
                        true
                    }
                });
            }
            for (i, e) in deps_failed {
                results[i] = Some(Err(e));
            }
            if !next.is_empty() {
                tracing::warn!(
                    message = "Re-sending throttled batch items.",
                    items = next.len(),
                    wait_ms = self
                        .governor()
                        .not_before(Bucket::DirectoryWrite)
                        .map(|t| t
                            .saturating_duration_since(tokio::time::Instant::now())
                            .as_millis() as u64)
                        .unwrap_or(0)
                );
            }
            pending = next;
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(GraphError::new(
                        GraphErrorKind::Decode,
                        "batch item without outcome",
                    ))
                })
            })
            .collect())
    }

    /// Sends one envelope holding `members` and classifies each member's result.
    async fn send_envelope(
        &self,
        items: &[BatchItem],
        members: &[usize],
        pending: &BTreeSet<usize>,
        bucket: Bucket,
    ) -> EnvelopeResult {
        let in_envelope: BTreeSet<usize> = members.iter().copied().collect();
        let mut requests = Vec::with_capacity(members.len());
        let mut cost = 0u32;
        for &i in members {
            let req = &items[i].request;
            let charge = req.effective_charge();
            cost += if charge.bucket == bucket {
                charge.cost
            } else {
                1
            };
            let mut headers = Map::new();
            for (k, v) in req.extra_headers() {
                headers.insert((*k).to_string(), Value::String(v.clone()));
            }
            let mut entry = json!({"id": i.to_string(), "method": req.method().as_str(), "url": req.relative_url()});
            if let Some(bytes) = req.body_bytes() {
                let body: Value = serde_json::from_slice(bytes).map_err(|_| {
                    GraphError::new(GraphErrorKind::Decode, "batch item body is not JSON")
                })?;
                headers.insert(
                    "Content-Type".into(),
                    Value::String("application/json".into()),
                );
                entry["body"] = body;
            }
            if !headers.is_empty() {
                entry["headers"] = Value::Object(headers);
            }
            let deps: Vec<Value> = items[i]
                .depends_on
                .iter()
                .filter(|d| in_envelope.contains(d) && pending.contains(d))
                .map(|d| Value::String(d.to_string()))
                .collect();
            if !deps.is_empty() {
                entry["dependsOn"] = Value::Array(deps);
            }
            requests.push(entry);
        }
        let all_idempotent = members.iter().all(|&i| items[i].request.is_idempotent());
        let envelope = Request::post("/$batch", &[])
            .charge(Charge {
                bucket,
                cost: cost.max(1),
                auth_methods: false,
            })
            .idempotent(all_idempotent)
            .accept_status(424)
            .json(&json!({ "requests": requests }))?;
        let response = self.execute(&envelope).await?;
        let parsed: Envelope = match response.json() {
            Ok(e) => e,
            Err(e) if response.status == 424 => {
                // An envelope 424 without per-item results: treat every item as throttled.
                tracing::warn!(message = "Batch envelope failed with 424 and no item results.", error = %e);
                self.governor().throttled(bucket, None);
                return Ok(members
                    .iter()
                    .map(|&i| (i, Round::Throttled(None)))
                    .collect());
            }
            Err(e) => return Err(e),
        };
        let mut by_id: BTreeMap<String, ItemResponse> = parsed
            .responses
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut out = Vec::with_capacity(members.len());
        let mut longest_retry: Option<Option<Duration>> = None;
        let mut throttled_items = 0;
        for &i in members {
            let req = &items[i].request;
            let round = match by_id.remove(&i.to_string()) {
                None if req.is_idempotent() => Round::Transient,
                None => Round::Done(Err(GraphError::new(
                    GraphErrorKind::OutcomeUnknown,
                    "batch response lacks this write's result",
                )
                .with_request(req.describe()))),
                Some(item) => {
                    throttled_items += u64::from(item.status == 429);
                    classify(req, item, response.app, &mut longest_retry)
                }
            };
            out.push((i, round));
        }
        self.count_throttled(response.app, throttled_items);
        if let Some(retry_after) = longest_retry {
            self.governor().throttled(bucket, retry_after);
        }
        Ok(out)
    }
}

/// Turns one item response into a round outcome; records the longest Retry-After seen.
fn classify(
    req: &Request,
    item: ItemResponse,
    app: usize,
    longest_retry: &mut Option<Option<Duration>>,
) -> Round {
    let request_id = item_header(&item.headers, "request-id")
        .or_else(|| item_header(&item.headers, "client-request-id"));
    let body_bytes = match &item.body {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::to_vec(v).unwrap_or_default(),
    };
    match item.status {
        200..=299 => {
            let mut headers = HeaderMap::new();
            for (k, v) in &item.headers {
                if let (Ok(name), Some(Ok(value))) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    v.as_str().map(HeaderValue::from_str),
                ) {
                    headers.insert(name, value);
                }
            }
            let resource_units =
                item_header(&item.headers, "x-ms-resource-unit").and_then(|v| v.parse().ok());
            Round::Done(Ok(Response {
                status: item.status,
                request_id,
                resource_units,
                headers,
                body: body_bytes,
                app,
            }))
        }
        429 => {
            let ra = item_header(&item.headers, "retry-after")
                .and_then(|v| parse_retry_after(&v, jiff::Timestamp::now()));
            *longest_retry = Some(match (*longest_retry, ra) {
                (Some(Some(a)), Some(b)) => Some(a.max(b)),
                (Some(Some(a)), None) => Some(a),
                (_, b) => b,
            });
            Round::Throttled(ra)
        }
        424 => Round::Dependency(
            GraphError::from_response(424, &body_bytes, request_id).with_request(req.describe()),
        ),
        503 => Round::Transient,
        500 | 502 | 504 if req.is_idempotent() => Round::Transient,
        500 | 502 | 504 => {
            let mut e = GraphError::from_response(item.status, &body_bytes, request_id)
                .with_request(req.describe());
            e.kind = GraphErrorKind::OutcomeUnknown;
            Round::Done(Err(e))
        }
        status => Round::Done(Err(GraphError::from_response(
            status,
            &body_bytes,
            request_id,
        )
        .with_request(req.describe()))),
    }
}
