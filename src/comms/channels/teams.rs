//! Adaptive Cards to Teams through a Workflows webhook ("When a Teams webhook request is
//! received"): `POST {workflow URL}` with `{"type":"message","attachments":[{"contentType":
//! "application/vnd.microsoft.card.adaptive","contentUrl":null,"content":<card>}]}`
//! (<https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using>).
//! Any 2xx (usually 202) means the flow accepted it; a card the flow then fails on shows only
//! in the flow's run history. The URL's `sig=` is its credential: only its host is ever shown.

use std::fmt;

use futures::FutureExt;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::http::{self, provider_error};
use crate::comms::{
    Channel, ChannelError, ChannelErrorKind, ChannelTraits, Content, Limits, Outbound, Receipt,
};
use crate::config::{ConfigError, ConfigErrorKind, Env, WorkflowSettings};
use crate::playbook::Channel as Kind;

/// Posts in flight at once.
const CONCURRENCY: usize = 2;

/// A Teams Workflows webhook.
pub struct TeamsWorkflow {
    http: reqwest::Client,
    /// The whole URL, `sig=` included.
    url: SecretString,
    /// Its host, for messages.
    host: String,
    per_minute: f64,
}

impl fmt::Debug for TeamsWorkflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamsWorkflow")
            .field("host", &self.host)
            .field("per_minute", &self.per_minute)
            .finish()
    }
}

impl TeamsWorkflow {
    /// The channel for `settings`, its URL read now and checked (https, or http to a
    /// loopback test server).
    pub fn new(
        settings: &WorkflowSettings,
        http: reqwest::Client,
        env: &Env,
    ) -> Result<Self, ConfigError> {
        let url = settings.url.load("channels.teams.workflow.url", env)?;
        let checked =
            crate::config::service_url("channels.teams.workflow.url", url.expose_secret())
                .map_err(|m| ConfigError::new(ConfigErrorKind::Credential, m))?;
        let parsed = reqwest::Url::parse(&checked).map_err(|_| {
            ConfigError::new(
                ConfigErrorKind::Credential,
                "channels.teams.workflow.url: not a URL",
            )
        })?;
        Ok(TeamsWorkflow {
            http,
            host: http::host_of(&parsed),
            url: SecretString::from(checked),
            per_minute: settings.per_minute,
        })
    }

    async fn send_one(&self, message: &Outbound) -> Result<Receipt, ChannelError> {
        let Content::Card { card, .. } = &message.content else {
            return Err(ChannelError::new(
                ChannelErrorKind::Rejected,
                "the Teams channel sends Adaptive Cards only",
            ));
        };
        let envelope = json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": card,
            }],
        });
        let request = self.http.post(self.url.expose_secret()).json(&envelope);
        let answer = http::send(request, &self.host).await?;
        if answer.is_success() {
            return Ok(Receipt::default());
        }
        let kind = match answer.status {
            400 | 404 => ChannelErrorKind::Rejected,
            status => http::kind_of_status(status),
        };
        Err(provider_error(
            kind,
            answer.status,
            None,
            format!("the workflow at {} answered {}", self.host, answer.status),
            answer.retry_after(),
        ))
    }
}

impl Channel for TeamsWorkflow {
    fn name(&self) -> &'static str {
        "teams/workflow"
    }

    fn kind(&self) -> Kind {
        Kind::Teams
    }

    fn traits(&self) -> ChannelTraits {
        ChannelTraits {
            in_tenant: true,
            idempotent: false,
            carries_secrets: false,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            per_minute: self.per_minute,
            concurrency: CONCURRENCY,
            recipients_per_request: 1,
        }
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        self.send_one(message).boxed()
    }
}
