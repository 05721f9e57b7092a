//! The approve and deny links. `GET` only shows what the link would answer (mail, Teams and
//! SMS link previewers fetch links; a fetch must never decide) and sets the CSRF pair; the
//! form's `POST` checks the pair and the origin, redeems the token and applies the answer
//! to the request's tenant runtime. Every refusal is a page (4xx) and an audit record
//! `verify.link_refused` with the kind, the client's address and user agent and the token's
//! id where the store knows it, never the token.

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, extract::rejection::FormRejection};
use jiff::Timestamp;
use serde::Deserialize;

use super::app::{App, Peer};
use super::csrf::new_cookie;
use super::pages::Confirm;
use crate::audit::{Details, Event as AuditEvent, Outcome};
use crate::verify::state::{Event, State as FlowState};
use crate::verify::store::StoredRequest;
use crate::verify::token::{self, Bound, Client, Decision, Refusal};

/// Longest user agent kept in an audit record.
const MAX_USER_AGENT: usize = 256;

/// Why a link was not used: the audit record's `kind` and the page's status and words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The token itself was refused.
    Token(Refusal),
    /// The form came without the CSRF cookie and field, or they do not match.
    Csrf,
    /// The form was posted from another site.
    CrossSite,
    /// The request no longer waits for the manager (answered, escalated, expired).
    Closed,
    /// The request's tenant is not served by this server.
    NotServed,
}

impl Refused {
    fn kind(&self) -> &'static str {
        match self {
            Refused::Token(r) => match r {
                Refusal::Forged => "forged",
                Refusal::Unknown => "unknown",
                Refusal::Expired => "expired",
                Refusal::Replayed => "replayed",
                Refusal::WrongRequest => "wrong_request",
                Refusal::WrongDecision => "wrong_decision",
                Refusal::Store(_) => "store_error",
            },
            Refused::Csrf => "csrf",
            Refused::CrossSite => "cross_site",
            Refused::Closed => "closed",
            Refused::NotServed => "not_served",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Refused::Token(Refusal::Unknown) => StatusCode::NOT_FOUND,
            Refused::Token(Refusal::Expired | Refusal::Replayed) => StatusCode::GONE,
            Refused::Token(Refusal::Store(_)) | Refused::NotServed => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Refused::Csrf | Refused::CrossSite => StatusCode::FORBIDDEN,
            Refused::Closed => StatusCode::CONFLICT,
            Refused::Token(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> String {
        match self {
            // The store's own words stay in the log: they may name a path.
            Refused::Token(Refusal::Store(_)) | Refused::NotServed => {
                "the approval service cannot answer this link right now; try again later".into()
            }
            Refused::Token(r) => r.to_string(),
            Refused::Csrf => {
                "the form expired or was not sent from the approval page; open the link again"
                    .into()
            }
            Refused::CrossSite => "the answer was sent from another web site".into(),
            Refused::Closed => "this request no longer waits for an answer".into(),
        }
    }

    /// Whether the store holds a token of this id (so the record may name it).
    fn names_a_minted_token(&self) -> bool {
        !matches!(
            self,
            Refused::Token(Refusal::Forged | Refusal::Unknown | Refusal::Store(_))
        )
    }
}

/// The hidden field of the form.
#[derive(Debug, Deserialize)]
pub(crate) struct Answer {
    csrf: String,
}

/// `GET /approve/{request}/{token}`: the approval's confirmation page.
pub(crate) async fn open_approve(
    state: State<Arc<App>>,
    path: Path<(String, String)>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    open(state, Decision::Approve, path, peer, headers).await
}

/// `GET /deny/{request}/{token}`: the denial's confirmation page.
pub(crate) async fn open_deny(
    state: State<Arc<App>>,
    path: Path<(String, String)>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    open(state, Decision::Deny, path, peer, headers).await
}

/// `POST /approve/{request}/{token}`: the Approve button.
pub(crate) async fn answer_approve(
    state: State<Arc<App>>,
    path: Path<(String, String)>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    form: Result<Form<Answer>, FormRejection>,
) -> Response {
    answer(state, Decision::Approve, path, peer, headers, form).await
}

/// `POST /deny/{request}/{token}`: the Deny button.
pub(crate) async fn answer_deny(
    state: State<Arc<App>>,
    path: Path<(String, String)>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    form: Result<Form<Answer>, FormRejection>,
) -> Response {
    answer(state, Decision::Deny, path, peer, headers, form).await
}

/// What one link request is about: who sent it, and what it names.
struct Visit<'a> {
    app: &'a App,
    decision: Decision,
    request: &'a str,
    token: &'a str,
    client: Client,
    method: &'static str,
}

async fn open(
    State(app): State<Arc<App>>,
    decision: Decision,
    Path((request, token)): Path<(String, String)>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    let visit = Visit {
        app: &app,
        decision,
        request: &request,
        token: &token,
        client: client(peer, &headers),
        method: "GET",
    };
    let (bound, stored) = match visit.usable().await {
        Ok(found) => found,
        Err(refused) => return visit.refuse(refused).await,
    };
    let cookie = match new_cookie() {
        Ok(cookie) => cookie,
        Err(e) => return failure(&app, &e),
    };
    let csrf = app.csrf.field(&cookie, &bound.token_id);
    let page = app.pages.confirm(&Confirm {
        requester: &stored.request.requester,
        user: &stored.flow.context.user.upn,
        reason: &stored.request.reason,
        created: stored.request.created_at,
        origin: &stored.request.origin,
        decision: decision.as_str(),
        csrf: &csrf,
        expires: bound.expires,
        now: app.ctx.clock.now(),
    });
    match page {
        Ok(html) => {
            let mut response = Html(html).into_response();
            if let Ok(value) = HeaderValue::from_str(&app.cookie.set_cookie(&cookie)) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(e) => failure(&app, &e.to_string()),
    }
}

async fn answer(
    State(app): State<Arc<App>>,
    decision: Decision,
    Path((request, token)): Path<(String, String)>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    form: Result<Form<Answer>, FormRejection>,
) -> Response {
    let visit = Visit {
        app: &app,
        decision,
        request: &request,
        token: &token,
        client: client(peer, &headers),
        method: "POST",
    };
    if cross_site(&headers, &app.origin) {
        return visit.refuse(Refused::CrossSite).await;
    }
    let (bound, stored) = match visit.usable().await {
        Ok(found) => found,
        Err(refused) => return visit.refuse(refused).await,
    };
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| app.cookie.find(v))
        .collect::<Vec<_>>();
    let paired = match (cookie.as_slice(), &form) {
        ([cookie], Ok(Form(answer))) => app.csrf.check(cookie, &bound.token_id, &answer.csrf),
        _ => false,
    };
    if !paired {
        return visit.refuse(Refused::Csrf).await;
    }
    let Some(runtime) = app.ctx.runtimes.get(&stored.request.tenant).cloned() else {
        return visit.refuse(Refused::NotServed).await;
    };
    // Redeeming and applying run in their own task: a client that goes away, or the
    // request's deadline, cannot stop an answer halfway (the token used, the flow not moved).
    let tokens = app.ctx.tokens.clone();
    let now = app.ctx.clock.now();
    let client = visit.client.clone();
    let (id, token_text) = (request.clone(), token.clone());
    let applied = tokio::spawn(async move {
        let (_, event) = tokens
            .redeem(&token_text, Some(&id), decision, &client, now)
            .await
            .map_err(Refused::Token)?;
        let event = for_state(&stored.flow.state, event);
        Ok::<_, Refused>(runtime.apply(&id, event).await)
    })
    .await;
    let applied = match applied {
        Ok(Ok(applied)) => applied,
        Ok(Err(refused)) => return visit.refuse(refused).await,
        Err(e) => return failure(&app, &format!("the answer's task failed: {e}")),
    };
    let user = &stored.flow.context.user.upn;
    let (title, message) = match applied {
        Ok(FlowState::Completed { .. } | FlowState::Verified { .. }) => (
            "Approved",
            format!(
                "Thank you. {user} must now choose a new password, with MFA, at their next \
                 sign-in."
            ),
        ),
        Ok(FlowState::Escalated { .. }) => (
            if decision == Decision::Deny {
                "Denied"
            } else {
                "Approved, but the reset failed"
            },
            if decision == Decision::Deny {
                "Thank you. No password was changed; the security team was told the request \
                 looks suspicious."
                    .to_owned()
            } else {
                format!(
                    "Thank you. The password of {user} could not be reset automatically; an \
                     engineer was asked to finish."
                )
            },
        ),
        Ok(other) => (
            "Answer recorded",
            format!("Thank you. The request is now {}.", other.name()),
        ),
        Err(e) => {
            tracing::warn!(request = %request, "an approval link's answer was not applied: {e}");
            (
                "Answer not applied",
                "The link was used, but the request could not take the answer (it may have \
                 moved on meanwhile). The help desk will follow up."
                    .to_owned(),
            )
        }
    };
    match app.pages.result(title, &message, &request) {
        Ok(html) => Html(html).into_response(),
        Err(e) => failure(&app, &e.to_string()),
    }
}

/// The manager's card links lead here too: while the card is the open question, an answer
/// on its page is the card's answer; once the SMS went out, it is the link's.
fn for_state(state: &FlowState, event: Event) -> Event {
    match (state, event) {
        (FlowState::ManagerCardSent { .. }, Event::LinkUsed { approve, approver }) => {
            Event::CardAnswered { approve, approver }
        }
        (_, event) => event,
    }
}

impl Visit<'_> {
    /// The token checked (not used) and the request it answers, still waiting for the
    /// manager.
    async fn usable(&self) -> Result<(Bound, StoredRequest), Refused> {
        let now = self.app.ctx.clock.now();
        let bound = self
            .app
            .ctx
            .tokens
            .verify(self.token, Some(self.request), self.decision, now)
            .await
            .map_err(Refused::Token)?;
        let stored = self
            .app
            .ctx
            .requests
            .load(&bound.request)
            .await
            .map_err(|e| Refused::Token(Refusal::Store(store_error(e))))?
            .ok_or(Refused::Closed)?;
        if !waits_for_manager(&stored.flow.state, now) {
            return Err(Refused::Closed);
        }
        Ok((bound, stored))
    }

    /// The refusal page, after its audit record.
    async fn refuse(&self, refused: Refused) -> Response {
        if let Refused::Token(Refusal::Store(e)) = &refused {
            tracing::error!("approval tokens: {e}");
        }
        self.audit(&refused).await;
        match self.app.pages.refused(&refused.message()) {
            Ok(html) => (refused.status(), Html(html)).into_response(),
            Err(e) => failure(self.app, &e.to_string()),
        }
    }

    async fn audit(&self, refused: &Refused) {
        let subject = if is_request_id(self.request) {
            self.request
        } else {
            "malformed-request-id"
        };
        let mut details = Details::new()
            .with("kind", refused.kind())
            .and_then(|d| d.with("method", self.method))
            .and_then(|d| d.with("decision", self.decision.as_str()));
        if let Some(ip) = &self.client.ip {
            details = details.and_then(|d| d.with("client_ip", ip.as_str()));
        }
        if refused.names_a_minted_token()
            && let Some(id) = token::id_of(self.token)
        {
            details = details.and_then(|d| d.with("approval_id", id));
        }
        let with_agent = match (&details, &self.client.user_agent) {
            (Ok(d), Some(agent)) => d.clone().with("user_agent", agent.as_str()).ok(),
            _ => None,
        };
        // A user agent the trail refuses (it looks like a credential) is left out.
        let details = with_agent.map(Ok).unwrap_or(details);
        let event = details.and_then(|details| {
            AuditEvent::new("resetctl", "verify.link_refused", subject, Outcome::Refused)
                .map(|e| e.with_details(details))
        });
        let written = match event {
            Ok(event) => self.app.ctx.audit.record(event).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::error!("could not audit a refused approval link: {e}");
        }
    }
}

/// Whether the flow still takes an approver's answer at `now`: the manager's (card, then
/// SMS), or an MFA reset's second-stage approver group.
fn waits_for_manager(state: &FlowState, now: Timestamp) -> bool {
    match state {
        FlowState::ManagerCardSent { .. } => true,
        FlowState::ManagerSmsSent { due, .. } | FlowState::ApproversAsked { due, .. } => {
            now <= *due
        }
        _ => false,
    }
}

/// A request id as the runtime makes them (`vr-` and 32 hex digits): only such a path
/// segment becomes a record's subject.
fn is_request_id(id: &str) -> bool {
    id.strip_prefix("vr-")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A form post another site made the browser send: `Sec-Fetch-Site` other than
/// `same-origin`, or an `Origin` other than the server's public one. `Origin: null` says
/// nothing: under `Referrer-Policy: no-referrer` browsers send it for their own same-origin
/// form posts (the Fetch standard's origin serialisation), so `Sec-Fetch-Site` decides for
/// them; browsers that send neither are left to the CSRF pair.
fn cross_site(headers: &HeaderMap, origin: &str) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.as_bytes() != b"same-origin");
    let from = headers
        .get(header::ORIGIN)
        .filter(|v| v.as_bytes() != b"null")
        .map(|v| !v.to_str().is_ok_and(|v| v.eq_ignore_ascii_case(origin)));
    site.unwrap_or(false) || from.unwrap_or(false)
}

fn client(peer: Option<Extension<Peer>>, headers: &HeaderMap) -> Client {
    Client {
        ip: peer.map(|Extension(Peer(addr))| addr.ip().to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(MAX_USER_AGENT).collect()),
    }
}

fn store_error(e: crate::verify::store::RequestStoreError) -> token::TokenStoreError {
    token::TokenStoreError::Backend(e.to_string())
}

/// A server fault: logged, and a plain 500 that says nothing of it.
fn failure(app: &App, detail: &str) -> Response {
    tracing::error!("approval page: {detail}");
    match app
        .pages
        .refused("the approval service failed; try again later")
    {
        Ok(html) => (StatusCode::INTERNAL_SERVER_ERROR, Html(html)).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_from_another_site_is_told_apart() {
        let origin = "https://approve.example";
        let mut h = HeaderMap::new();
        assert!(
            !cross_site(&h, origin),
            "old browsers: the CSRF pair decides"
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://approve.example"),
        );
        assert!(!cross_site(&h, origin));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(cross_site(&h, origin));
        // What a browser sends for its own post under `no-referrer`.
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!cross_site(&h, origin));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h, origin));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h, origin));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(cross_site(&h, origin));
    }

    #[test]
    fn only_the_runtime_s_ids_become_a_subject() {
        assert!(is_request_id("vr-0123456789abcdef0123456789abcdef"));
        assert!(!is_request_id("vr-0123"));
        assert!(!is_request_id("abc.def"));
    }
}
