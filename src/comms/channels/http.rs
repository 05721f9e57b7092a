//! What every HTTP channel shares: sending one request and reading its answer, with the
//! failure classified the way [`ChannelErrorKind`] means it. Errors name the provider's host,
//! never the URL (a Teams Workflows URL carries its `sig=` credential in the query).

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::comms::{ChannelError, ChannelErrorKind};

/// The most of a response body read (an error body is a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;

/// An answer from the provider.
pub(crate) struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body, at most [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// `Retry-After` in seconds or as an HTTP-date, when sent.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.headers.get("retry-after")?.to_str().ok()?;
        crate::throttle::parse_retry_after(value, jiff::Timestamp::now())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The kind a status means when the provider documents nothing more precise: 429
/// throttled, 401/403 denied, 502/504 (a gateway: the service behind it may have acted)
/// outcome unknown, other 5xx unavailable, other 4xx rejected.
pub(crate) fn kind_of_status(status: u16) -> ChannelErrorKind {
    match status {
        429 => ChannelErrorKind::Throttled,
        401 | 403 => ChannelErrorKind::Denied,
        502 | 504 => ChannelErrorKind::OutcomeUnknown,
        500..=599 => ChannelErrorKind::Unavailable,
        _ => ChannelErrorKind::Rejected,
    }
}

/// Sends `request` to `host` (for errors). A request that never left (connection refused,
/// DNS, TLS) is [`ChannelErrorKind::Unavailable`]; one that left without an answer (a
/// timeout, a connection lost) is [`ChannelErrorKind::OutcomeUnknown`].
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    host: &str,
) -> Result<Answer, ChannelError> {
    let response = request.send().await.map_err(|e| no_answer(&e, host))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    let mut response = response;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if room <= chunk.len() {
                    break;
                }
            }
            Ok(None) => break,
            // The status arrived: the provider decided. A body cut short only loses detail.
            Err(_) => break,
        }
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A request without an answer, described by host and cause (never the URL).
fn no_answer(e: &reqwest::Error, host: &str) -> ChannelError {
    // Only a failed connect proves nothing left: a reset after the body was written may
    // follow the provider's acceptance.
    let never_left = e.is_connect() || e.is_builder();
    let cause = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        root_cause(e)
    };
    if never_left && !e.is_timeout() {
        ChannelError::new(
            ChannelErrorKind::Unavailable,
            format!("cannot reach {host}: {cause}"),
        )
    } else {
        ChannelError::new(
            ChannelErrorKind::OutcomeUnknown,
            format!("no answer from {host} (the message may have been sent): {cause}"),
        )
    }
}

/// The innermost error's text (an I/O or TLS cause), which names no URL.
fn root_cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    let text = source.to_string();
    if std::ptr::addr_eq(source, e as &dyn std::error::Error) {
        // reqwest's own text may hold the URL: drop it.
        return "request failed".to_owned();
    }
    text
}

/// The host (and port, when not the scheme's default) of a URL, for messages.
pub(crate) fn host_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => "the provider".to_owned(),
    }
}

/// An error of `kind` with the provider's status, code and message.
pub(crate) fn provider_error(
    kind: ChannelErrorKind,
    status: u16,
    code: Option<String>,
    message: String,
    retry_after: Option<Duration>,
) -> ChannelError {
    ChannelError {
        kind,
        status: Some(status),
        code,
        retry_after,
        message,
    }
}

/// A provider's message shortened to one line of at most 200 characters.
pub(crate) fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(200).collect();
    if line.chars().count() > 200 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_sender_can_do() {
        assert_eq!(kind_of_status(429), ChannelErrorKind::Throttled);
        assert_eq!(kind_of_status(401), ChannelErrorKind::Denied);
        assert_eq!(kind_of_status(403), ChannelErrorKind::Denied);
        assert_eq!(kind_of_status(400), ChannelErrorKind::Rejected);
        assert_eq!(kind_of_status(404), ChannelErrorKind::Rejected);
        assert_eq!(kind_of_status(503), ChannelErrorKind::Unavailable);
        assert_eq!(kind_of_status(500), ChannelErrorKind::Unavailable);
        assert_eq!(kind_of_status(504), ChannelErrorKind::OutcomeUnknown);
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable_and_names_no_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/hook?sig=SECRETSIG");
        let client = reqwest::Client::new();
        let err = send(client.post(&url), &format!("127.0.0.1:{port}"))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind, ChannelErrorKind::Unavailable, "{err}");
        assert!(!err.to_string().contains("SECRETSIG"), "{err}");
    }
}
