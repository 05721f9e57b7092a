//! Typed errors of the Graph client: a struct with a `#[non_exhaustive]` kind.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// What kind of failure a [`GraphError`] is; callers branch on this (and on `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraphErrorKind {
    /// Configuration or credential material unusable (bad PEM, unset env var, bad URL).
    Config,
    /// The token endpoint refused us, or Graph answered 401.
    Auth,
    /// Still throttled (429) after the retry budget was spent.
    Throttled,
    /// 404, e.g. `Request_ResourceNotFound` (user or manager missing).
    NotFound,
    /// 403, e.g. `Authorization_RequestDenied` (role too low for the target).
    Forbidden,
    /// 400 and other 4xx not listed here (synced user, password policy, already a member...).
    BadRequest,
    /// 409 Conflict.
    Conflict,
    /// 424 inside `$batch`: a prerequisite item failed.
    DependencyFailed,
    /// 5xx after the retry budget, or a 5xx on a read.
    Server,
    /// The request was never sent or its response was unusable and it was safe to give up
    /// (connection refused, DNS...).
    Transport,
    /// A write was sent but no answer came back (timeout, connection lost, or a gateway
    /// 5xx): it may or may not have happened. Never re-sent blindly; the caller reads the
    /// state back and decides.
    OutcomeUnknown,
    /// A 2xx body did not have the expected shape.
    Decode,
    /// The client refused to do something unsafe (e.g. follow a nextLink to another host).
    Refused,
}

/// An error from a Graph call. `Display` shows kind, status, Graph `code`, message and
/// `request-id` (for Microsoft support); never a token, secret or request body.
#[derive(Debug, Clone)]
pub struct GraphError {
    /// The category.
    pub kind: GraphErrorKind,
    /// HTTP status, when a response came back.
    pub status: Option<u16>,
    /// Graph's `error.code` (branch on this, not on the message).
    pub code: Option<String>,
    /// Graph's `error.message` or our own explanation.
    pub message: String,
    /// Graph's `request-id` header (or the batch item's).
    pub request_id: Option<String>,
    /// Retry-After Graph gave, if any.
    pub retry_after: Option<Duration>,
    /// Method and path template of the request (ids replaced by `{}`), when known.
    pub request: Option<String>,
}

impl GraphError {
    /// An error of `kind` with a message and nothing else.
    pub fn new(kind: GraphErrorKind, message: impl Into<String>) -> Self {
        GraphError {
            kind,
            status: None,
            code: None,
            message: message.into(),
            request_id: None,
            retry_after: None,
            request: None,
        }
    }

    /// The kind matching an HTTP status.
    pub fn kind_for_status(status: u16) -> GraphErrorKind {
        match status {
            401 => GraphErrorKind::Auth,
            403 => GraphErrorKind::Forbidden,
            404 => GraphErrorKind::NotFound,
            409 => GraphErrorKind::Conflict,
            424 => GraphErrorKind::DependencyFailed,
            429 => GraphErrorKind::Throttled,
            500..=599 => GraphErrorKind::Server,
            _ => GraphErrorKind::BadRequest,
        }
    }

    /// Builds an error from a non-2xx status and its JSON body (Graph's error shape,
    /// <https://learn.microsoft.com/graph/errors>:
    /// `{"error":{"code","message","innerError":{"request-id",...}}}`).
    pub fn from_response(status: u16, body: &[u8], request_id: Option<String>) -> Self {
        let parsed: Option<ErrorEnvelope> = serde_json::from_slice(body).ok();
        let (code, message, inner_id) = match parsed.and_then(|e| e.error) {
            Some(b) => (
                b.code,
                b.message.unwrap_or_default(),
                b.inner_error.and_then(|i| i.request_id),
            ),
            None => (None, String::new(), None),
        };
        let message = if message.is_empty() {
            format!("HTTP {status}")
        } else {
            message
        };
        GraphError {
            kind: Self::kind_for_status(status),
            status: Some(status),
            code,
            message,
            request_id: request_id.or(inner_id),
            retry_after: None,
            request: None,
        }
    }

    /// Attaches the request description (method and path template).
    pub fn with_request(mut self, request: impl Into<String>) -> Self {
        self.request = Some(request.into());
        self
    }

    /// Whether Graph's `error.code` equals `code` (case-insensitive).
    pub fn has_code(&self, code: &str) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(code))
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.kind)?;
        if let Some(r) = &self.request {
            write!(f, " ({r})")?;
        }
        if let Some(s) = self.status {
            write!(f, " HTTP {s}")?;
        }
        if let Some(c) = &self.code {
            write!(f, " {c}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " [request-id {id}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for GraphError {}

/// `{"error": {...}}`.
#[derive(Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
}

/// Graph's error object.
#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    #[serde(rename = "innerError", alias = "innererror")]
    inner_error: Option<InnerError>,
}

/// `innerError`, for its request id.
#[derive(Deserialize)]
struct InnerError {
    #[serde(rename = "request-id")]
    request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_graph_error_shape() {
        let body = br#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist","innerError":{"date":"2021-05-18T19:03:10","request-id":"abc"}}}"#;
        let e = GraphError::from_response(404, body, None);
        assert_eq!(e.kind, GraphErrorKind::NotFound);
        assert!(e.has_code("request_resourcenotfound"));
        assert_eq!(e.request_id.as_deref(), Some("abc"));
        let e = GraphError::from_response(502, b"<html>", Some("rid".into()));
        assert_eq!(e.kind, GraphErrorKind::Server);
        assert_eq!(e.message, "HTTP 502");
        assert!(e.to_string().contains("request-id rid"));
    }
}
