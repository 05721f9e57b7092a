//! `resetctl serve`: the approval pages and the verification request API for every tenant
//! (an MSP serves its customers from one server), the flow's timers, and live forwarding of
//! the audit trail to the sinks of `forward:`. Stops on Ctrl-C or SIGTERM: in-flight requests
//! drain, timers stop after their tick, forwarders after their pass.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use resetctl::serve::triggers::TriggerPlanner;
use resetctl::serve::{
    ApiCredentials, BearerHash, HmacKey, MetricsAccess, ServeContext, ServeOptions, Server,
    TlsFiles,
};
use resetctl::verify::clock::{Clock, SystemClock};
use resetctl::verify::token::{TokenMinter, Tokens};

use super::context::Context;
use super::tenant::Tenant;
use super::verify::{ephemeral_key, flow};
use super::{CmdResult, Exit, Failure};
use crate::cli::{GlobalArgs, ServeArgs};

/// How often forwarders look for new audit records.
const FORWARD_EVERY: Duration = Duration::from_secs(5);

/// Run `resetctl serve`.
pub async fn run(global: &GlobalArgs, args: ServeArgs) -> CmdResult {
    let context = Context::load(global)?;
    let demo_only = args
        .tenants
        .iter()
        .all(|t| t == resetctl::config::DEMO_TENANT)
        && !args.tenants.is_empty();
    // The demo tenant may be served without `serve:`: on loopback, with a key that lives as
    // long as this process (links die with it), and an API nobody can call.
    let mut demo_listener = None;
    let mut guarded = None;
    let (listen, public_url, key, api, tls) = match (&context.config.serve, demo_only) {
        (Some(serve), _) => {
            let listen = args.bind.unwrap_or(serve.listen);
            let key = super::reset::token_key(serve, &context)?;
            guarded = Some((serve.metrics, serve.rate_limits, serve.connections));
            (
                listen,
                serve.public_url.clone(),
                key,
                api(serve, &context)?,
                serve.tls.clone(),
            )
        }
        (None, true) => {
            let listen = args
                .bind
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
            let listener = std::net::TcpListener::bind(listen).map_err(|e| {
                Failure::new(Exit::Config, format!("cannot listen on {listen}: {e}"))
            })?;
            let addr = listener
                .local_addr()
                .map_err(|e| Failure::new(Exit::Config, e.to_string()))?;
            demo_listener = Some(listener);
            let url = format!("http://{addr}");
            (addr, url, ephemeral_key()?, ApiCredentials::default(), None)
        }
        (None, false) => {
            return Err(Failure::new(
                Exit::Config,
                "resetctl serve needs a `serve:` section in resetctl.yaml (public_url, \
                 token_key_env or token_key_file, and `api:` credentials for the request API); \
                 `resetctl serve --tenant demo` tries it on the built-in tenant",
            ));
        }
    };

    let store = Arc::new(context.open_store(None)?);
    let trail = context.open_trail(&store).await?;
    let tokens = Tokens::new(key, store.clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let catalog = super::validate::Templates::new(&context.config, None)?.catalog();
    let names = tenant_names(&context, &args.tenants)?;
    let mut tenants: BTreeMap<String, Arc<Tenant>> = BTreeMap::new();
    let mut runtimes = BTreeMap::new();
    for name in &names {
        let tenant = Arc::new(context.connect(Some(name)).await?);
        let links = Arc::new(TokenMinter::new(tokens.clone(), &public_url));
        let built = flow(
            &context,
            &tenant,
            store.clone(),
            trail.handle.clone(),
            links,
            clock.clone(),
            catalog.clone(),
        )?;
        runtimes.insert(name.clone(), built.runtime);
        tenants.insert(name.clone(), tenant);
    }
    let triggers = triggers(&context, &tenants, &store, &trail, &catalog)?;
    let mut options = ServeOptions::new(listen, &public_url, api);
    options.tls = tls.map(|(cert, key)| TlsFiles { cert, key });
    options.run_store = Some(store.path().to_path_buf());
    match guarded {
        Some((metrics, rate_limits, connections)) => {
            options.metrics = metrics;
            options.rate_limits = rate_limits;
            options.connections = connections;
        }
        // The demo's API takes no credentials, so its metrics are for this machine only.
        None => options.metrics = MetricsAccess::Loopback,
    }
    let ctx = ServeContext {
        runtimes,
        tokens,
        requests: store.clone() as Arc<dyn resetctl::verify::store::RequestStore>,
        audit: trail.handle.clone(),
        clock,
        triggers: triggers.clone().map(|t| t as Arc<dyn TriggerPlanner>),
    };
    let bound = match demo_listener {
        Some(listener) => Server::from_listener(listener, options, ctx),
        None => Server::bind(options, ctx).await,
    }
    .map_err(|e| Failure::new(Exit::Config, e.to_string()))?;
    outln!(
        "serving {} on {} (links: {public_url})",
        names.join(", "),
        bound.local_addr()
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let forwarders = super::forward::forwarders(&context, &[])?;
    let mut forwarding = Vec::new();
    for forwarder in forwarders {
        let lag = bound.telemetry().forward_lag(forwarder.name());
        let forwarder = forwarder.with_lag(lag);
        let mut stop = stop_rx.clone();
        forwarding.push(tokio::spawn(async move {
            let name = forwarder.name().to_owned();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = forwarder.follow(FORWARD_EVERY, stopped, |_| {}).await {
                tracing::error!(sink = %name, "audit forwarding stopped: {e}");
            }
        }));
    }
    bound.serve(shutdown()).await;
    if let Some(triggers) = &triggers {
        triggers.drain().await;
    }
    let _ = stop_tx.send(true);
    for task in forwarding {
        let _ = task.await;
    }
    trail.handle.close().await.ok();
    for tenant in tenants.into_values() {
        if let Ok(tenant) = Arc::try_unwrap(tenant) {
            tenant.close().await;
        }
    }
    Ok(Exit::Success)
}

/// The incident triggers of `triggers:`, each rule's playbook loaded and validated now (a
/// broken playbook stops the server before it takes a request), or none.
fn triggers(
    context: &Context,
    tenants: &BTreeMap<String, Arc<Tenant>>,
    store: &Arc<resetctl::store::SqliteStore>,
    trail: &resetctl::engine::lifecycle::Trail,
    catalog: &Arc<resetctl::comms::template::Catalog>,
) -> Result<Option<Arc<super::triggers::LifecycleTriggers>>, Failure> {
    if context.config.triggers.is_empty() {
        return Ok(None);
    }
    let templates = super::validate::Templates::new(&context.config, None)?;
    let mut rules = Vec::new();
    for rule in &context.config.triggers {
        if !tenants.contains_key(&rule.tenant) {
            return Err(Failure::new(
                Exit::Config,
                format!(
                    "triggers: the rule for {} plans on tenant {}, which this server does not serve",
                    rule.playbook.display(),
                    rule.tenant
                ),
            ));
        }
        let source = super::validate::load_playbook(&rule.playbook, &templates)?;
        rules.push(super::triggers::Rule {
            rule: rule.clone(),
            source,
        });
    }
    let messaging = tenants
        .iter()
        .map(|(name, tenant)| {
            let messaging = tenant
                .messaging
                .clone()
                .unwrap_or_else(|| super::comms::Messaging::configured(context, tenant));
            (name.clone(), messaging)
        })
        .collect();
    Ok(Some(Arc::new(super::triggers::LifecycleTriggers::new(
        rules,
        tenants.clone(),
        store.clone(),
        trail.clone(),
        super::paths::data_dir()?,
        super::triggers::Messages {
            messaging,
            catalog: Arc::clone(catalog),
        },
    ))))
}

/// Ctrl-C, or SIGTERM (systemd, `docker stop`).
async fn shutdown() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    tokio::signal::ctrl_c().await.ok();
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.ok();
}

/// The tenants `--tenant` names, else every configured one.
fn tenant_names(context: &Context, asked: &[String]) -> Result<Vec<String>, Failure> {
    if !asked.is_empty() {
        return Ok(asked.to_vec());
    }
    let names: Vec<String> = context.config.tenants.keys().cloned().collect();
    if names.is_empty() {
        return Err(Failure::new(
            Exit::Config,
            "no tenant to serve: configure `tenants:` in resetctl.yaml, or name one with --tenant",
        ));
    }
    Ok(names)
}

/// The request API's credentials from `serve.api`.
fn api(
    serve: &resetctl::config::ServeSection,
    context: &Context,
) -> Result<ApiCredentials, Failure> {
    use secrecy::ExposeSecret;
    let config = |e: String| Failure::new(Exit::Config, format!("serve.api: {e}"));
    let bearer = serve
        .bearer_sha256
        .iter()
        .map(|h| BearerHash::from_hex(h).map_err(|e| config(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let hmac = match &serve.hmac_key {
        None => None,
        Some(source) => {
            let secret = source.load("serve.api.hmac_key", &context.env)?;
            Some(
                HmacKey::new(secret.expose_secret().as_bytes())
                    .map_err(|e| config(e.to_string()))?,
            )
        }
    };
    Ok(ApiCredentials { bearer, hmac })
}
