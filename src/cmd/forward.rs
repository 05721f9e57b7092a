//! `resetctl audit forward`: stream the audit trail to the sinks of `forward:` — catch up and
//! stop, or `--follow` until interrupted. Each sink keeps its own cursor in the data
//! directory, so several runs of this command (or `serve`) never send a record twice.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use resetctl::config::{ForwardSink, SyslogTransport};
use resetctl::forward::http::{LogsIngestion, WebhookSink};
use resetctl::forward::syslog::{Syslog, Transport};
use resetctl::forward::{Forwarder, Sink};
use resetctl::graph::auth::{AppCredential, TokenSource};

use super::context::Context;
use super::{CmdResult, Exit, Failure, paths};
use crate::cli::GlobalArgs;

/// The scope of a Logs Ingestion token (Azure public cloud).
const MONITOR_SCOPE: &str = "https://monitor.azure.com/.default";

/// Run `resetctl audit forward`.
pub async fn run(global: &GlobalArgs, to: Vec<String>, follow: bool, tick: Duration) -> CmdResult {
    let context = Context::load(global)?;
    let forwarders = forwarders(&context, &to)?;
    if forwarders.is_empty() {
        return Err(Failure::new(
            Exit::Config,
            "nothing to forward to: add a `forward:` section to resetctl.yaml (syslog, \
             logs_ingestion or webhook)",
        ));
    }
    let mut failed = false;
    let mut tasks = Vec::new();
    for forwarder in forwarders {
        tasks.push(tokio::spawn(async move {
            let name = forwarder.name().to_owned();
            let result = if follow {
                forwarder
                    .follow(
                        tick,
                        async {
                            tokio::signal::ctrl_c().await.ok();
                        },
                        |pass| {
                            if pass.sent > 0 || pass.new_trail {
                                outln!("{name}: sent {}, lag {}", pass.sent, pass.lag);
                            }
                        },
                    )
                    .await
                    .map(|()| None)
            } else {
                catch_up(&forwarder).await.map(Some)
            };
            (name, result)
        }));
    }
    for task in tasks {
        let (name, result) = task
            .await
            .map_err(|e| Failure::new(Exit::Config, e.to_string()))?;
        match result {
            Ok(Some((sent, lag))) => outln!("{name}: sent {sent}, lag {lag}"),
            Ok(None) => outln!("{name}: stopped"),
            Err(e) => {
                eoutln!("{name}: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { Exit::Partial } else { Exit::Success })
}

/// Passes until the sink has everything: records sent and the lag left (0).
async fn catch_up(f: &Forwarder) -> Result<(usize, u64), resetctl::forward::ForwardError> {
    let mut sent = 0;
    loop {
        let pass = f.pass().await?;
        sent += pass.sent;
        if pass.lag == 0 || pass.sent == 0 {
            return Ok((sent, pass.lag));
        }
    }
}

/// One forwarder per configured sink (only those `to` names, when it names any).
pub fn forwarders(context: &Context, to: &[String]) -> Result<Vec<Forwarder>, Failure> {
    for name in to {
        if !context.config.forward.contains_key(name) {
            let known: Vec<&str> = context.config.forward.keys().map(String::as_str).collect();
            return Err(Failure::new(
                Exit::Invalid,
                format!(
                    "no sink `{name}` under `forward:` (configured: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    let trail = context.trail_config()?;
    let key = trail
        .load_key()
        .map_err(|e| Failure::new(Exit::Config, format!("audit key: {e}")))?;
    let cursors = paths::data_dir()?.join("forward");
    let http =
        resetctl::comms::channels::http_client().map_err(|e| Failure::new(Exit::Config, e))?;
    let mut out = Vec::new();
    for (name, sink) in &context.config.forward {
        if !to.is_empty() && !to.contains(name) {
            continue;
        }
        let sink = build(context, name, sink, &http)?;
        out.push(Forwarder::new(sink, &trail.path, key.clone(), &cursors));
    }
    Ok(out)
}

fn build(
    context: &Context,
    name: &str,
    sink: &ForwardSink,
    http: &reqwest::Client,
) -> Result<Arc<dyn Sink>, Failure> {
    let config = |m: String| Failure::new(Exit::Config, format!("forward.{name}: {m}"));
    Ok(match sink {
        ForwardSink::Syslog {
            address,
            transport,
            ca_file,
            server_name,
            hostname,
        } => {
            let transport = match transport {
                SyslogTransport::Udp => Transport::Udp,
                SyslogTransport::Tcp => Transport::Tcp,
                SyslogTransport::Tls => Transport::Tls {
                    server_name: server_name.clone(),
                    roots: Arc::new(roots(ca_file.as_deref()).map_err(config)?),
                },
            };
            let host = hostname
                .clone()
                .or_else(super::context::host_name)
                .unwrap_or_else(|| "-".into());
            Arc::new(Syslog::new(name, address, transport, &host))
        }
        ForwardSink::Webhook { url, secret } => {
            let secret = secret.load(&format!("forward.{name}.webhook.secret"), &context.env)?;
            Arc::new(WebhookSink::new(name, http.clone(), url, secret))
        }
        ForwardSink::LogsIngestion {
            endpoint,
            dcr,
            stream,
            tenant,
        } => {
            let settings = context.config.tenant(tenant, &context.env)?;
            let app = settings.apps.first().ok_or_else(|| {
                config(format!(
                    "tenant {tenant} has no app registration to get a token with"
                ))
            })?;
            let credential = AppCredential::load(app, &context.env)?;
            let token = TokenSource::new(
                http.clone(),
                settings.token_url.clone(),
                MONITOR_SCOPE.into(),
                credential,
            );
            Arc::new(LogsIngestion::new(
                name,
                http.clone(),
                endpoint,
                dcr,
                stream,
                Arc::new(token),
            ))
        }
    })
}

/// The roots a syslog receiver's certificate is checked against: the CA file's, else the
/// public web PKI's.
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(file) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
                .map_err(|e| format!("ca_file {}: {e}", file.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("ca_file {}: {e}", file.display()))?;
            if certs.is_empty() {
                return Err(format!("ca_file {}: no certificate in it", file.display()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", file.display()))?;
            }
        }
    }
    Ok(roots)
}
