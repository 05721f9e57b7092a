//! Okta Verify push through the Okta Factors API
//! (<https://developer.okta.com/docs/api/openapi/okta-management/management/tag/UserFactor/>),
//! authorised by an API token (`Authorization: SSWS {token}`):
//!
//! 1. `GET /api/v1/users/{login}`: the user (the path takes an id, a login or a login
//!    shortname) and their `id`; 404 when Okta does not know them.
//! 2. `GET /api/v1/users/{id}/factors`: the enrolled factors; the push factor is
//!    `factorType: "push"`, `provider: "OKTA"`, `status: "ACTIVE"`.
//! 3. `POST /api/v1/users/{id}/factors/{factorId}/verify` with an empty JSON body:
//!    `factorResult: "WAITING"` and `_links.poll.href`.
//! 4. `GET` the poll link until `factorResult` is `SUCCESS`, `REJECTED` or `TIMEOUT`.
//!
//! Errors are `{"errorCode":"E0000…","errorSummary":…}`. The poll link comes from the
//! answer, so it is followed only when it is on the configured org: the token is never
//! sent anywhere else.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{PushError, PushProvider, PushStatus, PushTransaction, split_base};

const NAME: &str = "okta";

/// An Okta org and an API token that may verify factors.
pub struct OktaSettings {
    /// `https://{org}.okta.com` (or the emulator's `{root}/okta`).
    pub base_url: String,
    /// The API token.
    pub api_token: SecretString,
}

impl std::fmt::Debug for OktaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaSettings")
            .field("base_url", &self.base_url)
            .field("api_token", &"<redacted>")
            .finish()
    }
}

/// The Okta Verify push provider.
pub struct OktaPush {
    settings: OktaSettings,
    origin: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for OktaPush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaPush")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OktaPush {
    /// A client for `settings` over `http`.
    pub fn new(settings: OktaSettings, http: reqwest::Client) -> Result<Self, PushError> {
        split_base(&settings.base_url).map_err(|detail| PushError::Protocol {
            provider: NAME,
            detail,
        })?;
        let origin = settings.base_url.trim_end_matches('/').to_string();
        Ok(OktaPush {
            settings,
            origin,
            http,
        })
    }

    /// One authorised call: the status and the JSON answer (`Null` for an empty body).
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), PushError> {
        let mut request = self
            .http
            .request(method, url)
            .header(
                "authorization",
                format!("SSWS {}", self.settings.api_token.expose_secret()),
            )
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| PushError::Transport {
            provider: NAME,
            cause: e.without_url().to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| PushError::Transport {
            provider: NAME,
            cause: e.without_url().to_string(),
        })?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) || status == 404 {
            return Ok((status, json));
        }
        let message = json
            .get("errorSummary")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Err(if status == 401 || status == 403 {
            PushError::Unauthorized {
                provider: NAME,
                status,
                message,
            }
        } else {
            PushError::Provider {
                provider: NAME,
                status,
                message,
            }
        })
    }

    /// The user's active Okta Verify push factor: `(user id, factor id)`, or `None`.
    async fn push_factor(&self, login: &str) -> Result<Option<(String, String)>, PushError> {
        let login = super::duo::percent_encode(login);
        let (status, user) = self
            .call(
                reqwest::Method::GET,
                &format!("{}/api/v1/users/{login}", self.origin),
                None,
            )
            .await?;
        if status == 404 {
            return Ok(None);
        }
        let id = user
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| protocol("a user without an id"))?
            .to_string();
        let (status, factors) = self
            .call(
                reqwest::Method::GET,
                &format!("{}/api/v1/users/{id}/factors", self.origin),
                None,
            )
            .await?;
        if status == 404 {
            return Ok(None);
        }
        let factors = factors
            .as_array()
            .ok_or_else(|| protocol("factors that are not a list"))?;
        let push = factors.iter().find(|f| {
            f.get("factorType").and_then(Value::as_str) == Some("push")
                && f.get("provider").and_then(Value::as_str) == Some("OKTA")
                && f.get("status").and_then(Value::as_str) == Some("ACTIVE")
        });
        Ok(push
            .and_then(|f| f.get("id").and_then(Value::as_str))
            .map(|factor| (id, factor.to_string())))
    }

    /// A status from a verify or poll answer.
    fn status_of(&self, answer: &Value) -> Result<PushStatus, PushError> {
        match answer.get("factorResult").and_then(Value::as_str) {
            Some("WAITING") => {
                let href = answer
                    .pointer("/_links/poll/href")
                    .and_then(Value::as_str)
                    .ok_or_else(|| protocol("WAITING without a poll link"))?;
                if !self.on_org(href) {
                    return Err(protocol("a poll link outside the configured org"));
                }
                Ok(PushStatus::Waiting {
                    transaction: PushTransaction {
                        provider: NAME.into(),
                        id: href.to_string(),
                    },
                })
            }
            Some("SUCCESS") => Ok(PushStatus::Approved),
            Some("REJECTED") => Ok(PushStatus::Denied),
            Some("TIMEOUT") => Ok(PushStatus::TimedOut),
            Some(other) => Err(PushError::Failed {
                provider: NAME,
                status: other.to_string(),
            }),
            None => Err(protocol("an answer without factorResult")),
        }
    }

    /// Whether `url` is on the configured org (same origin, under its path).
    fn on_org(&self, url: &str) -> bool {
        url.strip_prefix(&self.origin)
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl PushProvider for OktaPush {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<PushStatus, PushError>> {
        Box::pin(async move {
            let Some((id, factor)) = self.push_factor(user).await? else {
                return Ok(PushStatus::NotEnrolled);
            };
            let (status, answer) = self
                .call(
                    reqwest::Method::POST,
                    &format!("{}/api/v1/users/{id}/factors/{factor}/verify", self.origin),
                    Some(&serde_json::json!({})),
                )
                .await?;
            if status == 404 {
                return Ok(PushStatus::NotEnrolled);
            }
            self.status_of(&answer)
        })
    }

    fn poll<'a>(
        &'a self,
        transaction: &'a PushTransaction,
    ) -> BoxFuture<'a, Result<PushStatus, PushError>> {
        Box::pin(async move {
            if !self.on_org(&transaction.id) {
                return Err(protocol("a poll link outside the configured org"));
            }
            let (status, answer) = self
                .call(reqwest::Method::GET, &transaction.id, None)
                .await?;
            if status == 404 {
                return Err(protocol("the transaction is unknown"));
            }
            self.status_of(&answer)
        })
    }
}

fn protocol(detail: &str) -> PushError {
    PushError::Protocol {
        provider: NAME,
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn okta() -> OktaPush {
        OktaPush::new(
            OktaSettings {
                base_url: "https://acme.okta.com/".into(),
                api_token: SecretString::from("00secret-token"),
            },
            reqwest::Client::new(),
        )
        .unwrap()
    }

    #[test]
    fn answers_map_to_statuses_and_foreign_poll_links_are_refused() {
        let o = okta();
        let waiting = serde_json::json!({
            "factorResult": "WAITING",
            "_links": {"poll": {"href": "https://acme.okta.com/api/v1/users/00u1/factors/opf1/transactions/v2t"}}
        });
        assert!(matches!(
            o.status_of(&waiting),
            Ok(PushStatus::Waiting { .. })
        ));
        let evil = serde_json::json!({
            "factorResult": "WAITING",
            "_links": {"poll": {"href": "https://acme.okta.com.evil.example/api/v1/x"}}
        });
        assert!(matches!(
            o.status_of(&evil),
            Err(PushError::Protocol { .. })
        ));
        for (word, want) in [
            ("SUCCESS", PushStatus::Approved),
            ("REJECTED", PushStatus::Denied),
            ("TIMEOUT", PushStatus::TimedOut),
        ] {
            let got = o
                .status_of(&serde_json::json!({ "factorResult": word }))
                .unwrap();
            assert_eq!(got, want);
        }
        assert!(matches!(
            o.status_of(&serde_json::json!({"factorResult": "CANCELLED"})),
            Err(PushError::Failed { .. })
        ));
        assert!(!format!("{o:?}").contains("00secret-token"));
    }
}
