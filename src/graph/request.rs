//! Requests and responses of the Graph client. A [`Request`] is built from a path *template*
//! (`/users/{}/manager`) and its arguments, so logs can show the template (no ids, no query
//! values) and arguments are always percent-encoded.

use std::fmt;

use reqwest::Method;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{GraphError, GraphErrorKind};
use crate::throttle::{Bucket, Charge};

/// Percent-encodes everything but RFC 3986 unreserved characters and the bytes in `keep`.
fn encode(value: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encodes one path segment argument (a UPN keeps its `@`; `#EXT#` and `/` are escaped).
pub fn encode_segment(value: &str) -> String {
    encode(value, b"@")
}

/// Encodes a query name or value: spaces become `%20` (never `+`), OData punctuation that is
/// legal in a query (`$ ' , ( ) :`) stays readable.
pub fn encode_query(value: &str) -> String {
    encode(value, b"$',():@")
}

/// The media type of a JSON body.
const JSON: &str = "application/json";
/// The media type of a plain-text body (a base64 MIME message).
const TEXT_PLAIN: &str = "text/plain";

/// One Graph request. `Debug` shows method and template only: bodies may hold passwords.
pub struct Request {
    /// HTTP method.
    pub(crate) method: Method,
    /// Path template relative to the Graph base URL, `{}` where an argument went.
    pub(crate) template: String,
    /// The encoded path.
    pub(crate) path: String,
    /// Query parameters (unencoded).
    pub(crate) query: Vec<(String, String)>,
    /// A full URL (a nextLink) replacing `path` and `query`.
    pub(crate) absolute: Option<String>,
    /// Extra request headers (e.g. `ConsistencyLevel`).
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Body bytes, kept as a secret (zeroized on drop, never printed).
    pub(crate) body: Option<SecretSlice<u8>>,
    /// The body's media type: `application/json` unless [`Request::text_body`] set another.
    pub(crate) content_type: &'static str,
    /// Explicit budget charge; derived from method and template when `None`.
    pub(crate) charge: Option<Charge>,
    /// Whether re-sending after an unknown outcome is harmless.
    pub(crate) idempotent: bool,
    /// Non-2xx statuses returned as a [`Response`] instead of an error (a `$batch` envelope
    /// answered 424 still carries per-item results).
    pub(crate) accept: Vec<u16>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Request {
    /// A request for `template` with each `{}` replaced by the next (encoded) argument.
    /// Reads (GET) are idempotent; writes are not unless marked with [`Request::idempotent`].
    pub fn new(method: Method, template: &str, args: &[&str]) -> Self {
        let mut path = String::with_capacity(template.len() + 40);
        let mut args = args.iter();
        let mut rest = template;
        while let Some(pos) = rest.find("{}") {
            path.push_str(&rest[..pos]);
            path.push_str(&encode_segment(args.next().copied().unwrap_or("")));
            rest = &rest[pos + 2..];
        }
        path.push_str(rest);
        let idempotent = method == Method::GET;
        Request {
            method,
            template: template.to_string(),
            path,
            query: Vec::new(),
            absolute: None,
            headers: Vec::new(),
            body: None,
            content_type: JSON,
            charge: None,
            idempotent,
            accept: Vec::new(),
        }
    }

    /// `GET template`.
    pub fn get(template: &str, args: &[&str]) -> Self {
        Self::new(Method::GET, template, args)
    }

    /// `POST template`.
    pub fn post(template: &str, args: &[&str]) -> Self {
        Self::new(Method::POST, template, args)
    }

    /// `PATCH template`.
    pub fn patch(template: &str, args: &[&str]) -> Self {
        Self::new(Method::PATCH, template, args)
    }

    /// `DELETE template`.
    pub fn delete(template: &str, args: &[&str]) -> Self {
        Self::new(Method::DELETE, template, args)
    }

    /// Adds a query parameter (encoded when sent; only its name is ever logged).
    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Marks an advanced query (<https://learn.microsoft.com/graph/aad-advanced-queries>):
    /// `ConsistencyLevel: eventual` and `$count=true`.
    pub fn advanced_query(self) -> Self {
        self.header("ConsistencyLevel", "eventual")
            .query("$count", "true")
    }

    /// Sets a JSON body. The serialized bytes are held as a secret.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, GraphError> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            GraphError::new(
                GraphErrorKind::Decode,
                format!("cannot encode request body: {e}"),
            )
        })?;
        self.body = Some(SecretSlice::from(bytes));
        self.content_type = JSON;
        Ok(self)
    }

    /// Sets a `text/plain` body: what Graph takes where a JSON body would not do, such as a
    /// base64 MIME message to `sendMail`
    /// (<https://learn.microsoft.com/graph/api/user-sendmail>, "send mail in MIME format").
    /// The bytes are held as a secret, like a JSON body.
    pub fn text_body(mut self, text: impl Into<Vec<u8>>) -> Self {
        self.body = Some(SecretSlice::from(text.into()));
        self.content_type = TEXT_PLAIN;
        self
    }

    /// Declares whether the request may be re-sent when its outcome is unknown (e.g.
    /// `revokeSignInSessions`: doing it twice is harmless).
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }

    /// Overrides the budget charge derived from method and path.
    pub fn charge(mut self, charge: Charge) -> Self {
        self.charge = Some(charge);
        self
    }

    /// Treats `status` as a success (returns the response instead of an error).
    pub fn accept_status(mut self, status: u16) -> Self {
        self.accept.push(status);
        self
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Extra headers.
    pub(crate) fn extra_headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// Whether it may be re-sent after an unknown outcome.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// `METHOD /template?names` for logs and errors: no ids, no query values.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.method, self.template);
        if self.absolute.is_some() {
            s.push_str(" (next page)");
        } else if !self.query.is_empty() {
            s.push('?');
            s.push_str(
                &self
                    .query
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join("&"),
            );
        }
        s
    }

    /// The path template.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Path and encoded query relative to the Graph base URL (also a `$batch` item's `url`).
    pub fn relative_url(&self) -> String {
        let mut url = self.path.clone();
        for (i, (k, v)) in self.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&encode_query(k));
            url.push('=');
            url.push_str(&encode_query(v));
        }
        url
    }

    /// A follow-up request for a nextLink: same method, headers and charge.
    pub(crate) fn next_page(&self, url: String) -> Self {
        Request {
            method: self.method.clone(),
            template: self.template.clone(),
            path: String::new(),
            query: Vec::new(),
            absolute: Some(url),
            headers: self.headers.clone(),
            body: None,
            content_type: self.content_type,
            charge: Some(self.effective_charge()),
            idempotent: self.idempotent,
            accept: self.accept.clone(),
        }
    }

    /// The body bytes (for sending).
    pub(crate) fn body_bytes(&self) -> Option<&[u8]> {
        self.body.as_ref().map(|b| b.expose_secret())
    }

    /// The body's `Content-Type`.
    pub(crate) fn content_type(&self) -> &'static str {
        self.content_type
    }

    /// The budget this request draws on: explicit, or derived from the path and method with
    /// Graph's resource-unit table (<https://learn.microsoft.com/graph/throttling-limits>:
    /// `GET users` 2, `groups/{id}/members` 3, `transitiveMembers` 5, other GETs 1; `$select`
    /// -1, `$expand` +1, `$top` < 20 -1, minimum 1; every write 1).
    pub fn effective_charge(&self) -> Charge {
        if let Some(c) = self.charge {
            return c;
        }
        let t = self.template.as_str();
        let auth_methods = t.starts_with("/users/{}/authentication");
        let mut charge = if t.starts_with("/identityProtection") {
            Charge::new(Bucket::IdentityProtection, 1)
        } else if t.ends_with("/sendMail") {
            Charge::new(Bucket::Mail, 1)
        } else if self.method == Method::GET {
            let base: i32 = if t.starts_with("/groups/{}/transitiveMembers") {
                5
            } else if t.starts_with("/groups/{}/members") {
                3
            } else if t == "/users" {
                2
            } else {
                1
            };
            let has = |name: &str| self.query.iter().any(|(k, _)| k == name);
            let mut cost = base;
            if has("$select") {
                cost -= 1;
            }
            if has("$expand") {
                cost += 1;
            }
            if self
                .query
                .iter()
                .any(|(k, v)| k == "$top" && v.parse::<u32>().is_ok_and(|n| n < 20))
            {
                cost -= 1;
            }
            Charge::new(Bucket::DirectoryRead, cost.max(1) as u32)
        } else {
            Charge::new(Bucket::DirectoryWrite, 1)
        };
        charge.auth_methods = auth_methods;
        charge
    }
}

/// A Graph response. `Debug` omits the body (it may hold a TAP).
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `request-id` header.
    pub request_id: Option<String>,
    /// `x-ms-resource-unit`: resource units charged.
    pub resource_units: Option<u32>,
    /// All response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub(crate) body: Vec<u8>,
    /// The index of the pool's app that sent the request (per-app counters).
    pub(crate) app: usize,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("request_id", &self.request_id)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Response {
    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, GraphError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let mut err = GraphError::new(
                GraphErrorKind::Decode,
                format!("unexpected response shape: {e}"),
            );
            err.status = Some(self.status);
            err.request_id = self.request_id.clone();
            err
        })
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_encode_arguments_and_describe_hides_values() {
        let r = Request::get("/users/{}/manager", &["a#EXT#@x.com"])
            .query("$filter", "department eq 'R&D + Ops'");
        assert_eq!(
            r.relative_url(),
            "/users/a%23EXT%23@x.com/manager?$filter=department%20eq%20'R%26D%20%2B%20Ops'"
        );
        assert_eq!(r.describe(), "GET /users/{}/manager?$filter");
        assert_eq!(format!("{r:?}"), "GET /users/{}/manager?$filter");
    }

    #[test]
    fn charges_follow_the_ru_table() {
        let c = Request::get("/users", &[])
            .query("$select", "id")
            .query("$top", "999")
            .effective_charge();
        assert_eq!((c.bucket, c.cost), (Bucket::DirectoryRead, 1));
        let c = Request::get("/groups/{}/transitiveMembers", &["g"]).effective_charge();
        assert_eq!(c.cost, 5);
        let c = Request::get("/users/{}", &["u"])
            .query("$top", "5")
            .effective_charge();
        assert_eq!(c.cost, 1);
        let c = Request::patch("/users/{}", &["u"]).effective_charge();
        assert_eq!((c.bucket, c.cost), (Bucket::DirectoryWrite, 1));
        let c = Request::get("/identityProtection/riskyUsers", &[]).effective_charge();
        assert_eq!(c.bucket, Bucket::IdentityProtection);
        let c = Request::post("/users/{}/sendMail", &["u"]).effective_charge();
        assert_eq!(c.bucket, Bucket::Mail);
        let mime = Request::post("/users/{}/sendMail", &["u"]).text_body("TUlNRQ==");
        assert_eq!(mime.effective_charge().bucket, Bucket::Mail);
        assert_eq!(mime.content_type(), "text/plain");
        assert_eq!(mime.body_bytes(), Some(&b"TUlNRQ=="[..]));
        let c = Request::delete("/users/{}/authentication/phoneMethods/{}", &["u", "m"])
            .effective_charge();
        assert!(c.auth_methods);
    }
}
