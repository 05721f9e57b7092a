//! The single-user verification flow put together from the configuration, for `reset` and
//! `serve`: the tenant's directory, the `push:` provider (the demo tenant's Duo sink), the
//! senders of `channels:`, the templates, the run store as request store, open-run index
//! and token store, the audit trail, and `verify:`'s policy.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use resetctl::audit::AuditHandle;
use resetctl::comms::channels::http_client;
use resetctl::comms::template::{Catalog, sample_organisation};
use resetctl::config::PushSettings;
use resetctl::playbook::Channel as Kind;
use resetctl::providers::push::duo::{Digest, DuoPush, DuoSettings};
use resetctl::providers::push::okta::{OktaPush, OktaSettings};
use resetctl::providers::push::{PushError, PushProvider, PushStatus, PushTransaction};
use resetctl::store::SqliteStore;
use resetctl::verify::Policy;
use resetctl::verify::clock::Clock;
use resetctl::verify::facts::LiveFacts;
use resetctl::verify::runtime::{LinkMinter, Parts, Runtime};

use super::comms::{Messaging, senders};
use super::context::Context;
use super::tenant::Tenant;
use super::{Exit, Failure};

/// How often a push is polled for its answer (Duo's and Okta's own examples poll every few
/// seconds; faster only spends the provider's rate limit).
const PUSH_POLL: Duration = Duration::from_secs(2);

/// What the flow can use on a tenant, said before a request starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The push provider's name, when one is configured.
    pub push: Option<&'static str>,
    /// A Teams sender exists for the manager's card.
    pub teams: bool,
    /// An SMS sender exists for the manager's text.
    pub sms: bool,
}

/// The flow's runtime on `tenant`.
pub struct Flow {
    /// The runtime.
    pub runtime: Runtime,
    /// What it can use.
    pub capabilities: Capabilities,
    /// The policy in force (timeouts already divided by an emulated tenant's time scale).
    pub policy: Policy,
}

/// Build the runtime for `tenant`: requests in `store`, records in `audit`, links from
/// `links`, time from `clock`.
pub fn flow(
    context: &Context,
    tenant: &Tenant,
    store: Arc<SqliteStore>,
    audit: AuditHandle,
    links: Arc<dyn LinkMinter>,
    clock: Arc<dyn Clock>,
    catalog: Arc<Catalog>,
) -> Result<Flow, Failure> {
    let messaging = tenant
        .messaging
        .clone()
        .unwrap_or_else(|| Messaging::configured(context, tenant));
    let channels = senders(&messaging, tenant)?;
    let push = push_provider(&messaging)?;
    let capabilities = Capabilities {
        push: messaging.push.as_ref().map(|p| match p {
            PushSettings::Duo { .. } => "duo",
            PushSettings::Okta { .. } => "okta",
        }),
        teams: channels.iter().any(|c| c.kind() == Kind::Teams),
        sms: channels.iter().any(|c| c.kind() == Kind::Sms),
    };
    let organisation = match (&messaging.organisation, channels.is_empty()) {
        (Some(org), _) => org.clone(),
        (None, true) => sample_organisation(),
        (None, false) => {
            return Err(Failure::new(
                Exit::Config,
                "the verification flow sends messages, and resetctl.yaml has no \
                 `organisation:` section to sign them with (name, helpdesk_phone, \
                 helpdesk_url, verify_url): people must be able to tell a real message from \
                 a phishing copy",
            ));
        }
    };
    let policy = scaled(&context.config.verify, tenant.time_scale);
    // Escalations go to the default ticket system of `tickets:`, else into the trail.
    let tickets = resetctl::providers::tickets::build(
        &messaging.tickets,
        http_client().map_err(|e| Failure::new(Exit::Config, e))?,
        &messaging.env,
        &audit,
    )?;
    let runtime = Runtime::new(Parts {
        tenant: tenant.name.clone(),
        policy: policy.clone(),
        clock,
        store: store.clone(),
        push,
        push_poll: PUSH_POLL.div_f64(tenant.time_scale.max(1.0)),
        channels,
        catalog,
        organisation,
        service_desk: None,
        directory: tenant.directory.clone(),
        facts: Arc::new(LiveFacts::new(
            tenant.name.clone(),
            tenant.directory.clone(),
            store,
            &tenant.runner_accounts,
        )),
        audit: audit.clone(),
        links,
        tickets,
    });
    Ok(Flow {
        runtime,
        capabilities,
        policy,
    })
}

/// A signing key for approval tokens that lives as long as this process: the demo tenant's,
/// whose links die with the process that served them.
pub fn ephemeral_key() -> Result<resetctl::verify::token::TokenKey, Failure> {
    use rand::TryRngCore;
    let mut random = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut random)
        .map_err(|e| Failure::new(Exit::Config, format!("the system random source: {e}")))?;
    resetctl::verify::token::TokenKey::new(&random)
        .map_err(|e| Failure::new(Exit::Config, e.to_string()))
}

/// `policy` with every timeout divided by an emulated tenant's `time_scale` (a real
/// tenant's is 1): the demo's five-minute card wait takes thirty seconds, as its Graph
/// quotas run ten times faster. Windows that count pushes and requests keep their length.
pub fn scaled(policy: &Policy, time_scale: f64) -> Policy {
    let scale = |secs: u64| -> u64 {
        if time_scale <= 1.0 {
            secs
        } else {
            ((secs as f64 / time_scale).round() as u64).max(1)
        }
    };
    Policy {
        push_timeout_secs: scale(policy.push_timeout_secs),
        card_timeout_secs: scale(policy.card_timeout_secs),
        link_ttl_secs: scale(policy.link_ttl_secs),
        ..policy.clone()
    }
}

/// The configured push provider, or [`NoPush`] when `push:` names none.
fn push_provider(messaging: &Messaging) -> Result<Arc<dyn PushProvider>, Failure> {
    let http = http_client().map_err(|e| Failure::new(Exit::Config, e))?;
    let config = |e: PushError| Failure::new(Exit::Config, format!("push: {e}"));
    Ok(match &messaging.push {
        None => Arc::new(NoPush),
        Some(PushSettings::Duo {
            base_url,
            integration_key,
            secret_key,
            sha512,
            push_type,
        }) => Arc::new(
            DuoPush::new(
                DuoSettings {
                    base_url: base_url.clone(),
                    integration_key: integration_key.clone(),
                    secret_key: secret_key.load("push.duo.secret_key", &messaging.env)?,
                    digest: if *sha512 {
                        Digest::Sha512
                    } else {
                        Digest::Sha1
                    },
                    push_type: push_type.clone(),
                },
                http,
            )
            .map_err(config)?,
        ),
        Some(PushSettings::Okta {
            base_url,
            api_token,
        }) => Arc::new(
            OktaPush::new(
                OktaSettings {
                    base_url: base_url.clone(),
                    api_token: api_token.load("push.okta.api_token", &messaging.env)?,
                },
                http,
            )
            .map_err(config)?,
        ),
    })
}

/// No push provider is configured: every push is unavailable, so the flow goes to the
/// manager (or, push only, escalates) and the trail says why.
#[derive(Debug, Clone, Copy)]
pub struct NoPush;

impl PushProvider for NoPush {
    fn name(&self) -> &'static str {
        "none"
    }

    fn send<'a>(&'a self, _user: &'a str) -> BoxFuture<'a, Result<PushStatus, PushError>> {
        Box::pin(async {
            Err(PushError::Failed {
                provider: "none",
                status: "no push provider is configured (`push:` in resetctl.yaml)".into(),
            })
        })
    }

    fn poll<'a>(
        &'a self,
        _transaction: &'a PushTransaction,
    ) -> BoxFuture<'a, Result<PushStatus, PushError>> {
        self.send("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emulated_tenant_compresses_timeouts_not_windows() {
        let p = scaled(&Policy::default(), 10.0);
        assert_eq!(
            (p.push_timeout_secs, p.card_timeout_secs, p.link_ttl_secs),
            (12, 30, 90)
        );
        assert_eq!(p.push_window_secs, 3600);
        assert_eq!(scaled(&Policy::default(), 1.0), Policy::default());
    }
}
