//! `resetctl emulator`: run the emulated tenant on loopback (elsewhere only with
//! `--allow-remote`) until SIGINT/SIGTERM.
//!
//! The first stdout line is the JSON [`ConnectionInfo`](resetctl::emulator::ConnectionInfo)
//! (graph_url, token_url, tenant_id, client_id, client_secret, apps, users, time_scale) so
//! scripts and tests can connect; the secret is an emulator-only test credential and is
//! printed nowhere else. With `--write-config FILE` it also writes a `resetctl.yaml` naming
//! the emulator as a tenant, so `resetctl plan --config FILE --tenant NAME` runs against it
//! once the secret is in the environment variable the file names. The file also points
//! every communication channel at the emulator's sinks (`organisation:`, `channels:`,
//! `audiences:`), their secrets named by `{secret_env}_TWILIO_TOKEN`, `_ACS_KEY`,
//! `_TEAMS_URL` and `_WEBHOOK_SECRET` (values in the first stdout line's `channels`).

use std::io::Write;

use resetctl::config::{Config, Env};
use resetctl::emulator::{ConnectionInfo, EmulatorConfig, RunningEmulator, channels};

use super::tenant::{emulator_yaml, secret_var};
use super::{CmdResult, Exit, Failure};
use crate::cli::{EmulatorArgs, GlobalArgs};

/// Start the emulator and serve until told to stop. A non-loopback address is refused
/// unless `--allow-remote` says the operator means it: the emulator's credentials are
/// printed and its inspection API has no authentication.
pub async fn run(_global: &GlobalArgs, args: EmulatorArgs) -> CmdResult {
    if !args.bind.ip().is_loopback() && !args.allow_remote {
        return Err(Failure::new(
            Exit::Refused,
            format!(
                "--bind {}: not a loopback address; the emulator serves its test credentials and \
                 an unauthenticated inspection API to whoever reaches it. Pass --allow-remote to \
                 listen there anyway",
                args.bind
            ),
        ));
    }
    if args.write_config.is_some() {
        check_config_args(&args).map_err(|e| Failure::new(Exit::Invalid, e))?;
    }
    let mut config = match &args.tenant_file {
        Some(path) => {
            EmulatorConfig::from_tenant_file(path).map_err(|e| Failure::new(Exit::Invalid, e))?
        }
        None => EmulatorConfig::seeded(args.users, args.seed),
    };
    config.apps = args.apps;
    config.missing_mobile = args.missing_mobile;
    config.latency_ms = args.latency_ms;
    config.time_scale = args.time_scale;
    config.throttle = !args.no_throttle;
    config.auth_methods_per_10s = args.auth_methods_limit;
    if let Some(spec) = &args.faults {
        config = config
            .with_faults(spec)
            .map_err(|e| Failure::new(Exit::Invalid, e))?;
    }
    let emulator = RunningEmulator::start(config, args.bind)
        .await
        .map_err(|e| match e {
            resetctl::emulator::EmulatorError::Bind { .. } => Failure::new(Exit::Config, e),
            other => Failure::new(Exit::Invalid, other),
        })?;
    if let Some(path) = &args.write_config {
        let tenant = emulator_yaml(
            &args.tenant_name,
            emulator.info(),
            args.time_scale,
            &args.secret_env,
        );
        let yaml = with_channels(tenant, emulator.info(), &args.secret_env, path)?;
        std::fs::write(path, yaml).map_err(|e| {
            Failure::new(
                Exit::Config,
                format!("cannot write the configuration {}: {e}", path.display()),
            )
        })?;
        tracing::info!(
            message = "Wrote the tenant's configuration.",
            path = %path.display(),
            tenant = %args.tenant_name,
            secret_env = %args.secret_env
        );
    }
    let line = serde_json::to_string(emulator.info()).map_err(|e| {
        Failure::new(
            Exit::Config,
            format!("cannot encode the connection info: {e}"),
        )
    })?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    wait_for_signal().await;
    emulator.shutdown().await;
    Ok(Exit::Success)
}

/// The tenant entry followed by the `organisation:`, `channels:` and `audiences:` sections
/// pointing every channel at this emulator, checked by loading it as `resetctl` would. A
/// build whose configuration does not read those sections yet gets the tenant entry alone,
/// with a warning naming why: `--write-config` never writes a file resetctl refuses.
fn with_channels(
    tenant: String,
    info: &ConnectionInfo,
    secret_env: &str,
    path: &std::path::Path,
) -> Result<String, Failure> {
    let comms = channels::config_yaml(&info.channels, &info.verified_domain, secret_env);
    let full = format!("{tenant}{comms}");
    let env = Env::from_pairs(
        channels::secret_env(&info.channels, secret_env)
            .into_iter()
            .chain(
                info.apps
                    .iter()
                    .enumerate()
                    .map(|(i, app)| (secret_var(secret_env, i), app.client_secret.clone())),
            ),
    );
    match Config::parse(&full, Some(path), &env) {
        Ok(_) => Ok(full),
        Err(refused) => {
            Config::parse(&tenant, Some(path), &env).map_err(|e| {
                Failure::new(
                    Exit::Config,
                    format!("the configuration written for the emulator does not load: {e}"),
                )
            })?;
            tracing::warn!(
                message = "This build's configuration does not read the channel sections;                            the file names the tenant only.",
                reason = %refused
            );
            Ok(tenant)
        }
    }
}

/// What `--write-config` needs to write a file `resetctl.yaml` loads: a plain tenant name,
/// an environment variable name, and a time scale the configuration accepts (>= 1: a
/// configured tenant can only run faster than real time).
fn check_config_args(args: &EmulatorArgs) -> Result<(), String> {
    let name_ok = !args.tenant_name.is_empty()
        && args
            .tenant_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(format!(
            "--tenant-name `{}`: use letters, digits, `-` and `_`",
            args.tenant_name
        ));
    }
    let var_ok = args
        .secret_env
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && args
            .secret_env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !var_ok {
        return Err(format!(
            "--secret-env `{}` is not an environment variable name",
            args.secret_env
        ));
    }
    if !(args.time_scale.is_finite() && args.time_scale >= 1.0) {
        return Err(format!(
            "--write-config needs --time-scale >= 1 (got {}): resetctl.yaml's time_scale only speeds a tenant up",
            args.time_scale
        ));
    }
    Ok(())
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
