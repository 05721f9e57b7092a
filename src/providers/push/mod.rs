//! MFA push providers: send a push to a user's registered authenticator and learn the
//! answer. The verification flow (`crate::verify`) turns the answer into an event.
//!
//! - [`duo`]: Duo Auth API v2 (`/auth/v2/preauth`, `/auth/v2/auth` async, `/auth/v2/auth_status`),
//!   requests signed with HMAC over Duo's canonical string.
//! - [`okta`]: Okta Verify through the Okta Factors API (`…/factors/{id}/verify`, then poll).
//!
//! A provider sends ([`PushProvider::send`]) and polls ([`PushProvider::poll`]); between the
//! two the [`PushTransaction`] is plain data that can be stored. [`await_answer`] polls until
//! an answer or the caller's deadline.

pub mod duo;
pub mod okta;

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::verify::{Event, PushAnswer};

/// A push in flight: what the provider needs to tell its state (Duo's `txid`, Okta's poll
/// URL). Neither is a credential: both are useless without the API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTransaction {
    /// The provider's name (`duo`, `okta`).
    pub provider: String,
    /// The transaction id or poll URL.
    pub id: String,
}

/// Where a push is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PushStatus {
    /// Sent; no answer yet.
    Waiting {
        /// What to poll.
        transaction: PushTransaction,
    },
    /// The user approved.
    Approved,
    /// The user denied (Duo `deny` or `fraud`, Okta `REJECTED`).
    Denied,
    /// The provider gave up waiting, or the caller's deadline passed.
    TimedOut,
    /// The user has no push-capable device with this provider (or is unknown to it, or is
    /// set to bypass: a bypass proves nothing).
    NotEnrolled,
}

impl PushStatus {
    /// The verification flow's event for a final status (`None` while waiting).
    pub fn event(&self) -> Option<Event> {
        let answer = match self {
            PushStatus::Waiting { .. } => return None,
            PushStatus::Approved => PushAnswer::Approved,
            PushStatus::Denied => PushAnswer::Denied,
            PushStatus::TimedOut => PushAnswer::TimedOut,
            PushStatus::NotEnrolled => {
                return Some(Event::PushUnavailable {
                    detail: "not enrolled for push".into(),
                });
            }
        };
        Some(Event::PushAnswered { answer })
    }
}

/// Why a provider call failed. Never holds a key, a token or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The provider refused the credentials (wrong key, bad signature, clock skew).
    #[error("{provider} refused the credentials (HTTP {status}): {message}")]
    Unauthorized {
        /// Provider name.
        provider: &'static str,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider answered with an error.
    #[error("{provider} answered HTTP {status}: {message}")]
    Provider {
        /// Provider name.
        provider: &'static str,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The push could not be delivered or the provider refused to authenticate the user
    /// (Duo `push_failed`, `locked_out`; Okta `FAILED`, `CANCELLED`).
    #[error("{provider} could not complete the push: {status}")]
    Failed {
        /// Provider name.
        provider: &'static str,
        /// The provider's status word.
        status: String,
    },
    /// No answer (connection refused, timeout).
    #[error("{provider} did not answer: {cause}")]
    Transport {
        /// Provider name.
        provider: &'static str,
        /// The cause.
        cause: String,
    },
    /// The answer did not have the documented shape.
    #[error("{provider} answered unexpectedly: {detail}")]
    Protocol {
        /// Provider name.
        provider: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// A push provider. Object-safe so the runtime can hold whichever is configured.
pub trait PushProvider: Send + Sync {
    /// The provider's name (`duo`, `okta`).
    fn name(&self) -> &'static str;

    /// Send a push to `user` (Duo username, Okta login or user id). `Waiting` with the
    /// transaction to poll, or `NotEnrolled`.
    fn send<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<PushStatus, PushError>>;

    /// Where `transaction` is now.
    fn poll<'a>(
        &'a self,
        transaction: &'a PushTransaction,
    ) -> BoxFuture<'a, Result<PushStatus, PushError>>;
}

/// Poll `status` every `every` until it is final or `deadline` has passed (then
/// `TimedOut`: the verification flow's own push timeout, shorter than the provider's).
pub async fn await_answer(
    provider: &dyn PushProvider,
    mut status: PushStatus,
    every: Duration,
    deadline: Duration,
) -> Result<PushStatus, PushError> {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let PushStatus::Waiting { transaction } = &status else {
            return Ok(status);
        };
        let now = tokio::time::Instant::now();
        if now >= end {
            return Ok(PushStatus::TimedOut);
        }
        tokio::time::sleep(every.min(end - now)).await;
        if tokio::time::Instant::now() >= end {
            return Ok(PushStatus::TimedOut);
        }
        status = provider.poll(transaction).await?;
    }
}

/// The authority (`host[:port]`, lower case) and the path prefix of a configured base URL.
fn split_base(base_url: &str) -> Result<(String, String), String> {
    let rest = base_url
        .strip_prefix("https://")
        .or_else(|| base_url.strip_prefix("http://"))
        .ok_or_else(|| format!("base URL {base_url} is not http(s)"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(format!("base URL {base_url} has no host"));
    }
    Ok((
        authority.to_ascii_lowercase(),
        format!("/{}", path.trim_end_matches('/'))
            .trim_end_matches('/')
            .to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A provider whose polls answer from a script.
    struct Scripted(Mutex<Vec<PushStatus>>);

    impl PushProvider for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn send<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<PushStatus, PushError>> {
            Box::pin(async { Ok(PushStatus::NotEnrolled) })
        }
        fn poll<'a>(
            &'a self,
            _: &'a PushTransaction,
        ) -> BoxFuture<'a, Result<PushStatus, PushError>> {
            let next = self.0.lock().unwrap().remove(0);
            Box::pin(async move { Ok(next) })
        }
    }

    fn waiting() -> PushStatus {
        PushStatus::Waiting {
            transaction: PushTransaction {
                provider: "scripted".into(),
                id: "tx".into(),
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn polls_until_an_answer() {
        let p = Scripted(Mutex::new(vec![waiting(), PushStatus::Denied]));
        let got = await_answer(
            &p,
            waiting(),
            Duration::from_secs(2),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(got, PushStatus::Denied);
        assert_eq!(
            got.event(),
            Some(Event::PushAnswered {
                answer: PushAnswer::Denied
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_callers_deadline_times_the_push_out() {
        let p = Scripted(Mutex::new(vec![waiting(); 100]));
        let start = tokio::time::Instant::now();
        let got = await_answer(
            &p,
            waiting(),
            Duration::from_secs(2),
            Duration::from_secs(9),
        )
        .await
        .unwrap();
        assert_eq!(got, PushStatus::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(9));
        assert_eq!(p.0.lock().unwrap().len(), 96, "polled at 2, 4, 6, 8 s");
    }

    #[test]
    fn base_urls_split_into_authority_and_path() {
        assert_eq!(
            split_base("https://API-1234.duosecurity.com").unwrap(),
            ("api-1234.duosecurity.com".into(), String::new())
        );
        assert_eq!(
            split_base("http://127.0.0.1:8080/okta/").unwrap(),
            ("127.0.0.1:8080".into(), "/okta".into())
        );
        assert!(split_base("ftp://x").is_err());
        assert_eq!(
            PushStatus::NotEnrolled.event().map(|e| e.name()),
            Some("push_unavailable")
        );
    }
}
