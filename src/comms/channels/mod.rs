//! The senders: one module per provider, each a [`Channel`] built from the inert
//! `channels:` configuration ([`ChannelsSection`]) and a [`ChannelContext`]. [`build`] turns
//! the configuration into a [`ChannelSet`], where the notifier looks channels up by the
//! playbook's channel kind.
//!
//! - [`graph_mail`]: Graph `sendMail` (MIME) over a pool of mailboxes.
//! - [`smtp`]: an SMTP relay (lettre).
//! - [`twilio`], [`acs`]: SMS.
//! - [`teams`]: a Teams Workflows webhook (Adaptive Cards).
//! - [`webhook`]: a signed generic JSON webhook.
//!
//! Secrets (passwords, tokens, keys, the Teams URL) are read when a channel is built and held
//! as `secrecy` types; no error, log or `Debug` output shows one.

pub mod acs;
pub mod graph_mail;
pub(crate) mod http;
mod mime;
pub mod smtp;
pub mod teams;
pub mod twilio;
pub mod webhook;

use std::fmt;
use std::sync::Arc;

pub use mime::KEY_HEADER;

use crate::comms::Channel;
use crate::config::{ChannelsSection, ConfigError, ConfigErrorKind, Env};
use crate::directory::Directory;
use crate::playbook::Channel as Kind;

/// What building channels needs besides their configuration.
#[derive(Clone)]
pub struct ChannelContext {
    /// The HTTP client of the HTTP channels (timeouts, TLS roots).
    pub http: reqwest::Client,
    /// Where `*_env` secrets are read.
    pub env: Env,
    /// The tenant's directory, for Graph mail (sent as the tenant's mailboxes). Without it,
    /// configuring `channels.email.graph` is an error.
    pub directory: Option<Arc<dyn Directory>>,
}

impl fmt::Debug for ChannelContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelContext")
            .field("env", &self.env)
            .field("directory", &self.directory.is_some())
            .finish()
    }
}

/// The HTTP client channels use by default: a 30 s timeout per request, resetctl's user
/// agent.
pub fn http_client() -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("resetctl/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("cannot build the HTTP client: {e}"),
            )
        })
}

/// The configured channels, by kind in their order of preference: email Graph then SMTP, SMS
/// ACS then Twilio, then the Teams workflow and the webhook.
#[derive(Clone, Default)]
pub struct ChannelSet {
    channels: Vec<Arc<dyn Channel>>,
}

impl fmt::Debug for ChannelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.channels.iter().map(|c| c.name()))
            .finish()
    }
}

impl ChannelSet {
    /// A set of these channels, kept in the given order (tests and callers that build their
    /// own; [`build`] orders by preference).
    pub fn new(channels: Vec<Arc<dyn Channel>>) -> Self {
        ChannelSet { channels }
    }

    /// Every channel, in order of preference within each kind.
    pub fn all(&self) -> &[Arc<dyn Channel>] {
        &self.channels
    }

    /// The channels serving `kind`, most preferred first (empty when none is configured).
    pub fn for_kind(&self, kind: Kind) -> Vec<Arc<dyn Channel>> {
        self.channels
            .iter()
            .filter(|c| c.kind() == kind)
            .cloned()
            .collect()
    }

    /// The channel named `name` (`email/smtp`, `sms/acs`, …).
    pub fn by_name(&self, name: &str) -> Option<Arc<dyn Channel>> {
        self.channels.iter().find(|c| c.name() == name).cloned()
    }

    /// Whether no channel is configured.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

/// The configuration key that would configure `kind`, for a refusal to name
/// (`channels.sms`).
pub fn config_key(kind: Kind) -> &'static str {
    match kind {
        Kind::Email => "channels.email",
        Kind::Sms => "channels.sms",
        Kind::Teams => "channels.teams.workflow",
        Kind::Webhook => "channels.webhook",
    }
}

/// Builds every configured channel, reading its secrets now: a variable that is not set or
/// a file that cannot be read fails here, before anything is sent, naming its key. Called
/// within a tokio runtime (the SMTP channel's connection pool runs on it).
pub fn build(section: &ChannelsSection, ctx: &ChannelContext) -> Result<ChannelSet, ConfigError> {
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    if let Some(graph) = &section.email_graph {
        let directory = ctx.directory.clone().ok_or_else(|| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                "channels.email.graph sends through a tenant's Graph client, and none is \
                 connected here",
            )
        })?;
        let channel = graph_mail::GraphMail::new(graph, directory)
            .map_err(|m| ConfigError::new(ConfigErrorKind::Invalid, m))?;
        channels.push(Arc::new(channel));
    }
    if let Some(smtp) = &section.email_smtp {
        channels.push(Arc::new(smtp::Smtp::new(smtp, &ctx.env)?));
    }
    if let Some(acs) = &section.sms_acs {
        channels.push(Arc::new(acs::Acs::new(acs, ctx.http.clone(), &ctx.env)?));
    }
    if let Some(twilio) = &section.sms_twilio {
        channels.push(Arc::new(twilio::Twilio::new(
            twilio,
            ctx.http.clone(),
            &ctx.env,
        )?));
    }
    if let Some(workflow) = &section.teams_workflow {
        channels.push(Arc::new(teams::TeamsWorkflow::new(
            workflow,
            ctx.http.clone(),
            &ctx.env,
        )?));
    }
    if let Some(hook) = &section.webhook {
        channels.push(Arc::new(webhook::Webhook::new(
            hook,
            ctx.http.clone(),
            &ctx.env,
        )?));
    }
    Ok(ChannelSet { channels })
}
