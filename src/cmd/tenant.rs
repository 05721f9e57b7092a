//! Connecting to the tenant a command names: a configured one, one from the Azure SDK
//! environment variables, or the built-in `demo` tenant (the emulator, started in-process).

use std::sync::Arc;

use resetctl::config::{Config, Env, TenantChoice, TenantSettings};
use resetctl::directory::{Directory, GraphDirectory};
use resetctl::emulator::{ConnectionInfo, EmulatorConfig, RunningEmulator};
use resetctl::engine::lifecycle::TenantRef;
use resetctl::throttle::Quotas;

use super::{Exit, Failure};

/// Users of the demo tenant (the shipped demo CSVs name users of this exact tenant).
pub const DEMO_USERS: u32 = 2_000;
/// Seed of the demo tenant.
pub const DEMO_SEED: u64 = 1;
/// The demo runs Graph's real quotas ten times faster than real time.
pub const DEMO_TIME_SCALE: f64 = 10.0;

/// A connected tenant. Keeps the in-process emulator alive for the demo.
pub struct Tenant {
    /// The tenant's name (`demo` for the built-in one).
    pub name: String,
    /// Directory operations on it.
    pub directory: Arc<dyn Directory>,
    /// App registrations in the credential pool.
    pub apps: u32,
    /// The tenant's quotas at its time scale (the plan's estimate uses them).
    pub quotas: Quotas,
    /// Accounts resetctl itself runs as: never written to.
    pub runner_accounts: Vec<String>,
    /// The built-in emulator, when the tenant is `demo`.
    pub emulator: Option<RunningEmulator>,
    /// True for an emulated tenant (the demo, or a configured one on loopback): every
    /// output about it says so first.
    pub emulated: bool,
    /// The tenant's time scale (1 for a real tenant; an emulated one compresses time).
    pub time_scale: f64,
    /// Where this tenant's messages go when not the configuration's channels: the demo
    /// tenant's own sinks (a demo never sends to a real channel).
    pub messaging: Option<super::comms::Messaging>,
}

impl Tenant {
    /// The tenant as the run lifecycle sees it.
    pub fn as_ref(&self) -> TenantRef<'_> {
        TenantRef {
            name: &self.name,
            directory: &self.directory,
            apps: self.apps,
            quotas: &self.quotas,
            runner_accounts: &self.runner_accounts,
            ephemeral: self.emulator.is_some(),
        }
    }

    /// Stop the in-process emulator, if any.
    pub async fn close(self) {
        if let Some(emulator) = self.emulator {
            emulator.shutdown().await;
        }
    }
}

/// Connect to the tenant `--tenant` names, chosen by [`Config::select_tenant`]: with no
/// name, the one configured tenant, or the demo tenant only when nothing is configured and
/// `demo_by_default` (the command writes nothing).
pub async fn connect(
    config: &Config,
    env: &Env,
    requested: Option<&str>,
    demo_by_default: bool,
) -> Result<Tenant, Failure> {
    let settings = match config.select_tenant(requested, env, demo_by_default)? {
        TenantChoice::Demo => return demo().await,
        TenantChoice::Configured(settings) => settings,
    };
    let directory = GraphDirectory::from_settings(&settings, env)?;
    Ok(Tenant {
        emulated: is_loopback(&settings.graph_url),
        name: settings.name.clone(),
        apps: settings.apps.len() as u32,
        quotas: Quotas::for_tenant(&settings),
        runner_accounts: settings.runner_accounts.clone(),
        directory: Arc::new(directory),
        emulator: None,
        time_scale: settings.time_scale,
        messaging: None,
    })
}

/// A Graph URL on this machine is an emulated tenant (real Graph is never on loopback).
fn is_loopback(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or_default();
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Start the demo tenant in-process and connect to it like any other tenant.
async fn demo() -> Result<Tenant, Failure> {
    let mut config = EmulatorConfig::seeded(DEMO_USERS, DEMO_SEED);
    config.time_scale = DEMO_TIME_SCALE;
    emulated("demo", config).await
}

/// A `resetctl.yaml` naming the emulator behind `info` as tenant `name`: its URLs, time
/// scale and size class, and every app registration as the credential pool, the first
/// app's client secret read from the environment variable `secret_env` and app `n`'s from
/// [`secret_var`] (secrets are never written into the file).
pub fn emulator_yaml(
    name: &str,
    info: &ConnectionInfo,
    time_scale: f64,
    secret_env: &str,
) -> String {
    let mut yaml = format!(
        "tenants:\n  {name}:\n    tenant_id: {tenant}\n    graph_url: {graph}\n    token_url: {token}\n    \
         scope: https://graph.microsoft.com/.default\n    time_scale: {time_scale}\n    tenant_size: {size}\n    apps:\n",
        tenant = info.tenant_id,
        graph = info.graph_url,
        token = info.token_url,
        size = info.tenant_size,
    );
    for (i, app) in info.apps.iter().enumerate() {
        yaml.push_str(&format!(
            "      - client_id: {}\n        client_secret_env: {}\n",
            app.client_id,
            secret_var(secret_env, i)
        ));
    }
    yaml
}

/// The environment variable [`emulator_yaml`] names for app `index`'s secret: `secret_env`
/// for the first app, `{secret_env}_2`, `{secret_env}_3`… for the others.
pub fn secret_var(secret_env: &str, index: usize) -> String {
    if index == 0 {
        secret_env.to_owned()
    } else {
        format!("{secret_env}_{}", index + 1)
    }
}

/// Start an emulated tenant in-process (quotas at its time scale) and connect to it.
pub async fn emulated(name: &str, config: EmulatorConfig) -> Result<Tenant, Failure> {
    let time_scale = config.time_scale;
    let bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let emulator = RunningEmulator::start(config, bind).await.map_err(|err| {
        Failure::new(Exit::Config, format!("cannot start the demo tenant: {err}"))
    })?;
    let info = emulator.info();
    // The emulator's secrets reach the clients through a private environment map, the
    // same path a configured secret takes; they are never put on a command line or in a log.
    // Its messages go to its own sinks: an emulated tenant never sends to a real channel.
    let mut yaml = emulator_yaml(name, info, time_scale, "RESETCTL_DEMO_SECRET");
    yaml.push_str(&resetctl::emulator::channels::config_yaml(
        &info.channels,
        &info.verified_domain,
        "RESETCTL_DEMO",
    ));
    let env = Env::from_pairs(
        info.apps
            .iter()
            .enumerate()
            .map(|(i, app)| {
                (
                    secret_var("RESETCTL_DEMO_SECRET", i),
                    app.client_secret.clone(),
                )
            })
            .chain(resetctl::emulator::channels::secret_env(
                &info.channels,
                "RESETCTL_DEMO",
            )),
    );
    let config = Config::parse(&yaml, None, &env)
        .map_err(|err| Failure::new(Exit::Config, format!("{name} tenant: {err}")))?;
    let settings: TenantSettings = config
        .tenant(name, &env)
        .map_err(|err| Failure::new(Exit::Config, format!("{name} tenant: {err}")))?;
    let messaging = super::comms::Messaging {
        channels: config.channels.clone(),
        audiences: config.audiences.clone(),
        organisation: config.organisation.clone(),
        env: env.clone(),
        time_scale,
        push: config.push.clone(),
        tickets: config.tickets.clone(),
    };
    let directory = GraphDirectory::from_settings(&settings, &env)
        .map_err(|err| Failure::new(Exit::Config, err))?;
    Ok(Tenant {
        name: name.into(),
        directory: Arc::new(directory),
        apps: settings.apps.len() as u32,
        quotas: Quotas::for_tenant(&settings),
        // The shared mailbox the notices are sent from is never a target.
        runner_accounts: vec![info.channels.sender_mailbox.clone()],
        emulator: Some(emulator),
        emulated: true,
        time_scale,
        messaging: Some(messaging),
    })
}

/// The demo tenant at `time_scale`, with where its messages go (for `bench comms`).
pub async fn demo_with(time_scale: f64) -> Result<(Tenant, super::comms::Messaging), Failure> {
    let mut config = EmulatorConfig::seeded(DEMO_USERS, DEMO_SEED);
    config.time_scale = time_scale;
    let tenant = emulated("demo", config).await?;
    let messaging = tenant
        .messaging
        .clone()
        .ok_or_else(|| Failure::new(Exit::Config, "the demo tenant has no message sinks"))?;
    Ok((tenant, messaging))
}
