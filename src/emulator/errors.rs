//! Graph's response shapes that are not entities: the error body
//! `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`
//! (<https://learn.microsoft.com/graph/errors>) and the emulator's transport-neutral
//! [`GraphResponse`], which the HTTP layer and `$batch` both turn into their own framing.

use serde_json::{Value, json};

/// A response before it is framed as HTTP or as a `$batch` item.
#[derive(Debug, Clone)]
pub struct GraphResponse {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (name, value); `request-id` is added by the framing.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
}

/// A response body.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body (204, 202).
    Empty,
    /// JSON.
    Json(Value),
    /// text/plain (`/users/$count`).
    Text(String),
}

impl GraphResponse {
    /// A JSON response.
    pub fn json(status: u16, value: Value) -> Self {
        GraphResponse {
            status,
            headers: Vec::new(),
            body: Body::Json(value),
        }
    }

    /// An empty response.
    pub fn empty(status: u16) -> Self {
        GraphResponse {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// Add a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Graph's `innerError.date` format: seconds, no zone.
pub fn inner_date() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// A Graph error response.
pub fn graph_error(status: u16, code: &str, message: &str, request_id: &str) -> GraphResponse {
    GraphResponse::json(
        status,
        json!({
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": inner_date(),
                    "request-id": request_id,
                    "client-request-id": request_id,
                }
            }
        }),
    )
}

/// What a handler returns when it fails: status, code, message. The request id is added
/// when the response is built.
#[derive(Debug, Clone)]
pub struct Fail {
    /// HTTP status.
    pub status: u16,
    /// Graph error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

impl Fail {
    /// A failure.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Fail {
            status,
            code,
            message: message.into(),
        }
    }

    /// 404 `Request_ResourceNotFound` for an object that does not exist
    /// (<https://learn.microsoft.com/graph/errors>).
    pub fn not_found(id: &str) -> Self {
        Fail::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// 403 `Authorization_RequestDenied` for a caller whose role is below the target's.
    pub fn denied() -> Self {
        Fail::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    /// 400 for a body that is not the JSON Graph expects.
    pub fn bad_json() -> Self {
        Fail::new(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    }

    /// 400 for an unknown path segment.
    pub fn no_segment(segment: &str) -> Self {
        Fail::new(
            400,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    /// 405 for a known path with the wrong method.
    pub fn method() -> Self {
        Fail::new(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    }

    /// Into a response carrying `request_id`.
    pub fn response(&self, request_id: &str) -> GraphResponse {
        graph_error(self.status, self.code, &self.message, request_id)
    }
}

impl From<super::odata::QueryError> for Fail {
    fn from(e: super::odata::QueryError) -> Self {
        Fail::new(400, e.code, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_graph_shape() {
        let r = Fail::denied().response("rid-1");
        assert_eq!(r.status, 403);
        let Body::Json(v) = r.body else { panic!() };
        assert_eq!(v["error"]["code"], "Authorization_RequestDenied");
        assert_eq!(v["error"]["innerError"]["request-id"], "rid-1");
        assert_eq!(v["error"]["innerError"]["date"].as_str().unwrap().len(), 19);
    }
}
