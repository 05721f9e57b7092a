//! [`DirectoryError`]: how a directory call failed, in the terms the engine and targeting act
//! on. The client behind the directory (Graph, or a test fake) maps its own errors into it
//! once; nothing above the directory branches on a client's error kinds.

use std::fmt;

/// What the caller of a directory operation can do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DirectoryErrorKind {
    /// The object does not exist (a user, group, manager or membership that is gone).
    NotFound,
    /// The directory understood the request and refused it for lack of permission: the app
    /// lacks a permission or role over this target (HTTP 403).
    Denied,
    /// A write was sent but no answer came back: it may or may not have happened. Never
    /// repeated blindly; the caller reads the state back and decides.
    OutcomeUnknown,
    /// Still throttled after the client's retry budget was spent.
    Throttled,
    /// The request itself was refused and sending it again unchanged will not help: a 4xx
    /// such as a password policy, an existing membership or a failed dependency, or a request
    /// the client will not make (an undeletable method type, a link to another host).
    Rejected,
    /// The directory could not be used: a transport failure, a 5xx, credentials that were
    /// not accepted, or an answer whose shape was unusable.
    Unavailable,
}

impl DirectoryErrorKind {
    /// The kind as operators read it in reports and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectoryErrorKind::NotFound => "not found",
            DirectoryErrorKind::Denied => "denied",
            DirectoryErrorKind::OutcomeUnknown => "outcome unknown",
            DirectoryErrorKind::Throttled => "throttled",
            DirectoryErrorKind::Rejected => "rejected",
            DirectoryErrorKind::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for DirectoryErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What Microsoft support needs to find a failed request: never a request or response body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetail {
    /// HTTP status, when a response came back.
    pub status: Option<u16>,
    /// The service's error code (Graph's `error.code`, e.g. `Authorization_RequestDenied`).
    pub code: Option<String>,
    /// The service's request id (Graph's `request-id`).
    pub request_id: Option<String>,
    /// The request as method and path template, ids left out (`PATCH /users/{}`).
    pub operation: Option<String>,
}

/// A failed directory operation. Its one `Display` is what the journal, `results.csv`, logs
/// and error messages show: kind, status and code, the explanation, the request id. It never
/// holds a secret or a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryError {
    /// What the caller can do about it.
    pub kind: DirectoryErrorKind,
    /// Status, code and request id.
    pub detail: ErrorDetail,
    /// A short, secret-free explanation (the service's error message or our own).
    pub message: String,
}

impl DirectoryError {
    /// An error of `kind` with an explanation and no response behind it.
    pub fn new(kind: DirectoryErrorKind, message: impl Into<String>) -> Self {
        DirectoryError {
            kind,
            detail: ErrorDetail::default(),
            message: message.into(),
        }
    }

    /// The same error with `detail`.
    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.detail = detail;
        self
    }

    /// Whether the service's error code equals `code` (case-insensitive).
    pub fn has_code(&self, code: &str) -> bool {
        self.detail
            .code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(code))
    }
}

impl fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        let ErrorDetail {
            status,
            code,
            request_id,
            operation,
        } = &self.detail;
        match (status, code) {
            (Some(s), Some(c)) => write!(f, " (HTTP {s} {c})")?,
            (Some(s), None) => write!(f, " (HTTP {s})")?,
            (None, Some(c)) => write!(f, " ({c})")?,
            (None, None) => {}
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        match (operation, request_id) {
            (Some(op), Some(id)) => write!(f, " [{op}, request-id {id}]")?,
            (Some(op), None) => write!(f, " [{op}]")?,
            (None, Some(id)) => write!(f, " [request-id {id}]")?,
            (None, None) => {}
        }
        Ok(())
    }
}

impl std::error::Error for DirectoryError {}

/// What a directory has counted so far: shown on a run's progress line and in its summary,
/// so an operator sees when the service pushes back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DirectoryStats {
    /// Requests the service answered "too many requests" (each re-send counted again).
    pub throttled: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_kind_status_code_message_and_request_id() {
        let e = DirectoryError::new(
            DirectoryErrorKind::Denied,
            "Insufficient privileges to complete the operation.",
        )
        .with_detail(ErrorDetail {
            status: Some(403),
            code: Some("Authorization_RequestDenied".into()),
            request_id: Some("rid-1".into()),
            operation: Some("POST /users/{}/revokeSignInSessions".into()),
        });
        assert_eq!(
            e.to_string(),
            "denied (HTTP 403 Authorization_RequestDenied): Insufficient privileges to \
             complete the operation. [POST /users/{}/revokeSignInSessions, request-id rid-1]"
        );
        assert!(e.has_code("authorization_requestdenied"));
        let local = DirectoryError::new(DirectoryErrorKind::Rejected, "cannot delete a password");
        assert_eq!(local.to_string(), "rejected: cannot delete a password");
        let bare =
            DirectoryError::new(DirectoryErrorKind::Unavailable, "").with_detail(ErrorDetail {
                status: Some(503),
                ..ErrorDetail::default()
            });
        assert_eq!(bare.to_string(), "unavailable (HTTP 503)");
    }
}
