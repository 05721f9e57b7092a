//! What every HTTP ticket sink shares: one call with the retry policy for 429 and 5xx
//! (waiting `Retry-After` when sent, else a doubling backoff), and the mapping of statuses
//! to [`TicketError`]. The sending and body reading is the message channels' own
//! (`crate::comms::channels::http`): errors name the host, never the URL.

use std::time::Duration;

use serde_json::Value;

use super::TicketError;
use crate::comms::ChannelErrorKind;
use crate::comms::channels::http::{Answer, send};

/// How often and how long a call is retried when the system throttles (429) or fails
/// (5xx, no connection). Shared by every sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first included).
    pub attempts: u32,
    /// The wait before the second attempt when the system sent no `Retry-After`; doubled
    /// each time.
    pub backoff: Duration,
    /// The longest wait honoured: a `Retry-After` beyond it ends the retries (the caller
    /// gets `Throttled` with the system's value).
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
        }
    }
}

/// A sink's caller: its name (for errors), its HTTP client, its policy.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub system: &'static str,
    pub http: reqwest::Client,
    pub policy: RetryPolicy,
}

/// A successful answer's JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub(crate) struct Reply {
    pub json: Value,
}

impl Caller {
    /// Send the request `build` makes (once per attempt) to `host`; a 2xx answer, or the
    /// error its status means, with the system's message from `message` (which reads the
    /// system's error body). 429 and 5xx are retried per the policy.
    pub async fn call(
        &self,
        host: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
        message: fn(&Value) -> Option<String>,
    ) -> Result<Reply, TicketError> {
        let mut wait = self.policy.backoff;
        let mut attempt = 1;
        loop {
            let outcome = send(build(), host).await;
            let (error, retry_after) = match outcome {
                Ok(answer) if answer.is_success() => {
                    return Ok(Reply {
                        json: json_of(&answer),
                    });
                }
                Ok(answer) => {
                    let retry_after = answer.retry_after();
                    (self.error_of(&answer, message, retry_after), retry_after)
                }
                Err(e) => {
                    // A request that left without an answer may have created the ticket:
                    // retrying it is what the idempotency key is for.
                    let cause = e.message.clone();
                    let error = match e.kind {
                        ChannelErrorKind::Unavailable | ChannelErrorKind::OutcomeUnknown => {
                            TicketError::Unavailable {
                                system: self.system,
                                cause,
                            }
                        }
                        _ => TicketError::Rejected {
                            system: self.system,
                            status: 0,
                            message: cause,
                        },
                    };
                    (error, None)
                }
            };
            let retryable = matches!(
                error,
                TicketError::Throttled { .. } | TicketError::Unavailable { .. }
            );
            let pause = retry_after.unwrap_or(wait);
            if !retryable || attempt >= self.policy.attempts || pause > self.policy.max_wait {
                return Err(error);
            }
            tracing::info!(
                system = self.system,
                attempt,
                "ticket call retried in {} ms: {error}",
                pause.as_millis()
            );
            tokio::time::sleep(pause).await;
            wait *= 2;
            attempt += 1;
        }
    }

    fn error_of(
        &self,
        answer: &Answer,
        message: fn(&Value) -> Option<String>,
        retry_after: Option<Duration>,
    ) -> TicketError {
        let status = answer.status;
        let text = message(&json_of(answer))
            .map(|m| short(&m))
            .unwrap_or_else(|| format!("HTTP {status}"));
        match status {
            429 => TicketError::Throttled {
                system: self.system,
                retry_after,
            },
            401 | 403 => TicketError::Denied {
                system: self.system,
                status,
                message: text,
            },
            500..=599 => TicketError::Unavailable {
                system: self.system,
                cause: format!("HTTP {status}: {text}"),
            },
            _ => TicketError::Rejected {
                system: self.system,
                status,
                message: text,
            },
        }
    }

    /// A `Rejected` for an answer without the documented shape.
    pub fn unexpected(&self, what: &str) -> TicketError {
        TicketError::Rejected {
            system: self.system,
            status: 0,
            message: format!("unexpected answer: {what}"),
        }
    }
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
}

/// A system's message cut to one line of at most 200 characters.
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(200).collect()
}

/// The host (and port) of `base_url`, for errors.
pub(crate) fn host_of(base_url: &str) -> String {
    reqwest::Url::parse(base_url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| "the ticket system".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_from_base_urls_without_paths_or_queries() {
        assert_eq!(
            host_of("https://acme.service-now.com/x?token=secret"),
            "acme.service-now.com"
        );
        assert_eq!(host_of("http://127.0.0.1:8080/cw"), "127.0.0.1:8080");
        assert_eq!(host_of("not a url"), "the ticket system");
    }

    #[test]
    fn messages_are_one_short_line() {
        let long = format!("{}\nsecond line", "x".repeat(300));
        assert_eq!(short(&long).len(), 200);
        assert!(!short("a\nb").contains('b'));
    }
}
