//! The request body limit, enforced before any handler runs: a body is read whole (up to the
//! limit) into memory, and one past the limit is answered `413` with a JSON error.
//!
//! A server that answers `413` and closes while the client is still sending makes the
//! client's kernel see unread data arrive on a closed socket, so it gets a TCP reset, and
//! the reset often destroys the `413` before the client has read it: the client reports
//! "connection reset" and retries a request that can never succeed. hyper closes a
//! connection whose request body was dropped unread after one read attempt, so the fix is
//! here: once the answer is `413`, the rest of the body is read and discarded, up to
//! [`drain_bound`] bytes in all and [`DRAIN_DEADLINE`], and only then is the `413` sent, with
//! `Connection: close`. A body past the bound, or one that trickles in past the deadline, is
//! not read further: the connection is closed and that client may see a reset.

use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::json;

/// Longest the server keeps reading the rest of a body it has refused.
pub(crate) const DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// The least the server reads of a refused body before closing instead (a SOC tool's
/// megabytes-large alert still gets its `413`).
const DRAIN_FLOOR: u64 = 4 * 1024 * 1024;

/// The largest request body a route accepts, in bytes (the middleware's state).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub usize);

/// The most bytes of a body over `limit` the server reads (the part within the limit
/// included) before it closes the connection: four times the limit, at least 4 MiB.
pub(crate) fn drain_bound(limit: usize) -> u64 {
    (limit as u64).saturating_mul(4).max(DRAIN_FLOOR)
}

/// The middleware: the request with its body read into memory, or the `413`.
pub(crate) async fn limit(
    State(BodyLimit(limit)): State<BodyLimit>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bound = drain_bound(limit);
    if let Some(declared) = content_length(&parts.headers)
        && declared > limit as u64
        // Nothing to drain: a client waiting for `100 Continue` has not sent its body (hyper
        // sends the `100` only once the body is read), and one that announced more than the
        // bound would not be read to its end anyway.
        && (expects_continue(&parts.headers) || declared > bound)
    {
        return too_large(limit, parts.version);
    }
    match read(body, limit, bound).await {
        Read::Whole(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Read::TooLarge { drained } => {
            if !drained {
                tracing::debug!(
                    "an oversized request body was not read to its end; the connection closes"
                );
            }
            too_large(limit, parts.version)
        }
        Read::Failed(e) => {
            tracing::debug!("reading a request body: {e}");
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {
                    "code": "invalid_body",
                    "message": "the request body could not be read",
                }})),
            )
                .into_response()
        }
    }
}

/// What reading a body gave.
#[derive(Debug)]
enum Read {
    /// All of it, within the limit.
    Whole(Bytes),
    /// More than the limit; `drained` when the rest was read to its end within the bound
    /// and the deadline.
    TooLarge { drained: bool },
    /// The client's stream broke (it went away, or sent malformed chunked framing).
    Failed(axum::Error),
}

/// Read `body` whole if it fits in `limit`; else read on, discarding, to its end or to
/// `bound` bytes in all or [`DRAIN_DEADLINE`], whichever comes first.
async fn read(body: Body, limit: usize, bound: u64) -> Read {
    let mut stream = body.into_data_stream();
    let mut kept: Vec<u8> = Vec::new();
    loop {
        match stream.next().await {
            None => return Read::Whole(Bytes::from(kept)),
            Some(Err(e)) => return Read::Failed(e),
            Some(Ok(chunk)) if kept.len() + chunk.len() <= limit => kept.extend_from_slice(&chunk),
            Some(Ok(chunk)) => {
                let seen = (kept.len() + chunk.len()) as u64;
                drop(kept);
                let drain = async {
                    let mut seen = seen;
                    while seen <= bound {
                        match stream.next().await {
                            None => return true,
                            Some(Ok(chunk)) => seen += chunk.len() as u64,
                            Some(Err(_)) => return false,
                        }
                    }
                    false
                };
                let drained = tokio::time::timeout(DRAIN_DEADLINE, drain)
                    .await
                    .unwrap_or(false);
                return Read::TooLarge { drained };
            }
        }
    }
}

/// The `Content-Length` the client announced, if it is a number.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether the client waits for `100 Continue` before it sends the body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// `413` with the API's JSON error and, on HTTP/1, `Connection: close` (HTTP/2 has no such
/// header: its stream ends, the connection lives on).
fn too_large(limit: usize, version: Version) -> Response {
    let mut response = (
        StatusCode::PAYLOAD_TOO_LARGE,
        Json(json!({"error": {
            "code": "body_too_large",
            "message": format!("the request body is larger than this server's limit of {limit} bytes"),
        }})),
    )
        .into_response();
    if matches!(
        version,
        Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
    ) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(sizes: &[usize]) -> Body {
        let parts: Vec<Result<Bytes, std::io::Error>> = sizes
            .iter()
            .map(|&n| Ok(Bytes::from(vec![b'x'; n])))
            .collect();
        Body::from_stream(futures::stream::iter(parts))
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_kept_whole() {
        match read(chunks(&[10, 20, 34]), 64, 1000).await {
            Read::Whole(b) => assert_eq!(b.len(), 64),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_oversized_body_is_drained_to_its_end_within_the_bound_and_no_further() {
        assert!(matches!(
            read(chunks(&[60, 60, 60]), 64, 1000).await,
            Read::TooLarge { drained: true }
        ));
        assert!(matches!(
            read(chunks(&[600, 600, 600]), 64, 1000).await,
            Read::TooLarge { drained: false }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_after_the_limit_is_given_up_at_the_deadline() {
        let stalled = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(vec![0; 100]))])
            .chain(futures::stream::pending());
        let started = tokio::time::Instant::now();
        assert!(matches!(
            read(Body::from_stream(stalled), 64, 1000).await,
            Read::TooLarge { drained: false }
        ));
        assert_eq!(started.elapsed(), DRAIN_DEADLINE);
    }

    #[test]
    fn the_bound_is_four_times_the_limit_and_at_least_four_mebibytes() {
        assert_eq!(drain_bound(64 * 1024), 4 * 1024 * 1024);
        assert_eq!(drain_bound(8 * 1024 * 1024), 32 * 1024 * 1024);
        let mut h = HeaderMap::new();
        h.insert(header::EXPECT, HeaderValue::from_static("100-Continue"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert!(expects_continue(&h));
        assert_eq!(content_length(&h), Some(12));
        assert_eq!(
            too_large(1, Version::HTTP_11).headers()[header::CONNECTION],
            "close"
        );
        assert!(
            !too_large(1, Version::HTTP_2)
                .headers()
                .contains_key(header::CONNECTION)
        );
    }
}
