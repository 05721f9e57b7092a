//! The approver's web pages: one embedded Tera template (`templates/pages/page.html`, HTML
//! autoescaped) in three kinds: the confirmation a link opens, the result of the button,
//! and the refusal of a link that cannot be used. The pages need no script; their one
//! inline style is allowed by its hash in the Content-Security-Policy, computed here from
//! the template, so the policy can forbid everything else.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tera::Tera;

use crate::comms::template::embedded_pages;

/// The template's name.
const PAGE: &str = "page.html";

/// Why a page could not be rendered (a broken template: a build defect, not input).
#[derive(Debug, thiserror::Error)]
#[error("approval page template: {0}")]
pub struct PageError(String);

/// The compiled pages and the policy that fits them.
#[derive(Debug)]
pub struct Pages {
    tera: Tera,
    csp: String,
}

/// What the confirmation page shows: the request as stored, the link's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Confirm<'a> {
    /// Who asked (the requester's label).
    pub requester: &'a str,
    /// The user's UPN.
    pub user: &'a str,
    /// The reason the requester gave.
    pub reason: &'a str,
    /// When the request was made.
    #[serde(serialize_with = "minute")]
    pub created: Timestamp,
    /// Where the request came from (`portal`, `api`, `cli`).
    pub origin: &'a str,
    /// `approve` or `deny`.
    pub decision: &'a str,
    /// The CSRF field's value.
    pub csrf: &'a str,
    /// When the link expires.
    #[serde(serialize_with = "minute")]
    pub expires: Timestamp,
    /// Now, by the server's clock: the expiry is also said as a time from now.
    #[serde(skip)]
    pub now: Timestamp,
}

impl Confirm<'_> {
    /// The expiry from now as people say it: `in 14 min`, `in 1 h 5 min`.
    fn expires_in(&self) -> String {
        let seconds = self.expires.duration_since(self.now).as_secs();
        // Whole minutes left, rounded down: the page never promises more time than there is.
        let minutes = seconds.max(0) / 60;
        match (minutes / 60, minutes % 60) {
            _ if seconds <= 0 => "now".to_owned(),
            (0, 0) => "in less than a minute".to_owned(),
            (0, m) => format!("in {m} min"),
            (h, 0) => format!("in {h} h"),
            (h, m) => format!("in {h} h {m} min"),
        }
    }
}

/// A time as an approver reads it: the minute, with its zone (`26 Nov 2026, 09:02 UTC`).
/// The server does not know the approver's zone, so it says UTC rather than guess.
pub fn readable(at: Timestamp) -> String {
    at.strftime("%-d %b %Y, %H:%M UTC").to_string()
}

fn minute<S: serde::Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&readable(*at))
}

impl Pages {
    /// Compile the embedded page template.
    pub fn load() -> Result<Pages, PageError> {
        let source = embedded_pages()
            .find(|(path, _)| *path == PAGE)
            .map(|(_, text)| text)
            .ok_or_else(|| PageError(format!("templates/pages/{PAGE} is not embedded")))?;
        let mut tera = Tera::default();
        tera.autoescape_on([".html"]);
        tera.add_raw_template(PAGE, source)
            .map_err(|e| PageError(e.to_string()))?;
        let style = source
            .split_once("<style>")
            .and_then(|(_, rest)| rest.split_once("</style>"))
            .map(|(style, _)| style)
            .unwrap_or_default();
        let hash = STANDARD.encode(Sha256::digest(style.as_bytes()));
        let csp = format!(
            "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        );
        Ok(Pages { tera, csp })
    }

    /// The Content-Security-Policy every page is sent with.
    pub fn csp(&self) -> &str {
        &self.csp
    }

    /// The confirmation page of a link.
    pub fn confirm(&self, page: &Confirm<'_>) -> Result<String, PageError> {
        let title = if page.decision == "approve" {
            "Approve this password reset?"
        } else {
            "Deny this password reset?"
        };
        self.render(&Kind {
            kind: "confirm",
            title,
            confirm: Some(page),
            expires_in: page.expires_in(),
            message: "",
            request: "",
        })
    }

    /// The page after the button: what happened to `request`.
    pub fn result(&self, title: &str, message: &str, request: &str) -> Result<String, PageError> {
        self.render(&Kind {
            kind: "result",
            title,
            confirm: None,
            expires_in: String::new(),
            message,
            request,
        })
    }

    /// The page of a link that cannot be used, saying why.
    pub fn refused(&self, message: &str) -> Result<String, PageError> {
        self.render(&Kind {
            kind: "refused",
            title: "This link cannot be used",
            confirm: None,
            expires_in: String::new(),
            message,
            request: "",
        })
    }

    fn render(&self, kind: &Kind<'_>) -> Result<String, PageError> {
        let ctx = tera::Context::from_serialize(kind).map_err(|e| PageError(e.to_string()))?;
        self.tera
            .render(PAGE, &ctx)
            .map_err(|e| PageError(e.to_string()))
    }
}

/// The template's context: the kind, its title, and the kind's facts (flattened).
#[derive(Serialize)]
struct Kind<'a> {
    kind: &'static str,
    title: &'a str,
    #[serde(flatten)]
    confirm: Option<&'a Confirm<'a>>,
    /// The confirmation's expiry from now (`in 14 min`).
    expires_in: String,
    message: &'a str,
    request: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_requesters_typed_and_the_policy_allows_their_style() {
        let pages = Pages::load().unwrap();
        let html = pages
            .confirm(&Confirm {
                requester: "helpdesk <b>agent</b>",
                user: "ann@contoso.example",
                reason: "\"><script>alert(1)</script>",
                created: "2027-01-15T08:00:00.123456789Z".parse().unwrap(),
                origin: "api",
                decision: "deny",
                csrf: "abc",
                expires: "2027-01-15T08:20:00Z".parse().unwrap(),
                now: "2027-01-15T08:05:30Z".parse().unwrap(),
            })
            .unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            html.contains("helpdesk &lt;b&gt;agent&lt;&#x2F;b&gt;")
                || html.contains("helpdesk &lt;b&gt;agent&lt;/b&gt;"),
            "{html}"
        );
        assert!(html.contains(">Deny</button>"), "{html}");
        assert!(html.contains("no password is changed"), "{html}");
        assert!(html.contains("name=\"csrf\" value=\"abc\""), "{html}");
        // Times read as a minute with its zone, the expiry also from now; no raw RFC 3339.
        assert!(html.contains("<dd>15 Jan 2027, 08:00 UTC</dd>"), "{html}");
        assert!(
            html.contains("expires in 14 min (15 Jan 2027, 08:20 UTC)"),
            "{html}"
        );
        assert!(!html.contains("2027-01-15T"), "{html}");
        let style = html
            .split_once("<style>")
            .unwrap()
            .1
            .split_once("</style>")
            .unwrap()
            .0;
        let hash = STANDARD.encode(Sha256::digest(style.as_bytes()));
        assert!(pages.csp().contains(&format!("'sha256-{hash}'")));
        assert!(pages.csp().starts_with("default-src 'none'"));
        let refused = pages.refused("the approval link has expired").unwrap();
        assert!(
            refused.contains("the approval link has expired."),
            "{refused}"
        );
        assert!(!refused.contains("<form"), "{refused}");
    }

    #[test]
    fn the_expiry_is_said_from_now_in_whole_minutes() {
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        let page = |expires: &str| Confirm {
            requester: "r",
            user: "u",
            reason: "x",
            created: at("2026-11-26T09:00:00Z"),
            origin: "api",
            decision: "approve",
            csrf: "c",
            expires: at(expires),
            now: at("2026-11-26T09:02:36.839670654Z"),
        };
        assert_eq!(page("2026-11-26T09:17:00Z").expires_in(), "in 14 min");
        assert_eq!(page("2026-11-26T10:08:00Z").expires_in(), "in 1 h 5 min");
        assert_eq!(page("2026-11-26T11:02:40Z").expires_in(), "in 2 h");
        assert_eq!(
            page("2026-11-26T09:03:00Z").expires_in(),
            "in less than a minute"
        );
        assert_eq!(page("2026-11-26T09:00:00Z").expires_in(), "now");
        assert_eq!(
            readable(at("2026-11-26T09:02:36.839670654Z")),
            "26 Nov 2026, 09:02 UTC"
        );
    }
}
