//! `resetctl reset UPN`: one user's password reset through the two-path verification flow,
//! each state shown as it is reached. The request lives in the run store, so `resetctl
//! serve` (answering the manager's links, firing timers) and this command can share it; if
//! this command is stopped, the request stays open for `serve` to carry on.

use std::sync::Arc;
use std::time::Duration;

use resetctl::config::ServeSection;
use resetctl::store::SqliteStore;
use std::collections::BTreeMap;

use resetctl::serve::{ApiCredentials, ServeContext, ServeOptions, Server};
use resetctl::verify::Outcome;
use resetctl::verify::clock::{Clock, SystemClock};
use resetctl::verify::runtime::{Ask, LinkMinter};
use resetctl::verify::state::snake_name as snake;
use resetctl::verify::store::RequestStore;
use resetctl::verify::token::{TokenKey, TokenMinter, Tokens};
use resetctl::verify::{Person, State};

use super::context::Context;
use super::verify::{Capabilities, ephemeral_key, flow};
use super::{CmdResult, Exit, Failure};
use crate::cli::{GlobalArgs, ResetArgs, VerificationPath};

/// How often the request's state is read for the live view.
const WATCH: Duration = Duration::from_millis(200);

/// Run `resetctl reset`.
pub async fn run(global: &GlobalArgs, args: ResetArgs) -> CmdResult {
    let context = Context::load(global)?;
    let tenant = context.connect(args.tenant.tenant.as_deref()).await?;
    let store = Arc::new(context.open_store(None)?);
    let trail = context.open_trail(&store).await?;
    let approvals = approvals(&context, &tenant, &store)?;
    let catalog = super::validate::Templates::new(&context.config, None)?.catalog();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let built = flow(
        &context,
        &tenant,
        store.clone(),
        trail.handle.clone(),
        approvals.links.clone(),
        clock.clone(),
        catalog,
    )?;
    // The demo tenant's links are answered by this process, for as long as it runs.
    let (stop_pages, pages) = match approvals.local {
        Some((listener, tokens, url)) => {
            let addr = listener
                .local_addr()
                .map_err(|e| Failure::new(Exit::Config, e.to_string()))?;
            let ctx = ServeContext {
                runtimes: BTreeMap::from([(tenant.name.clone(), built.runtime.clone())]),
                tokens,
                requests: store.clone() as Arc<dyn RequestStore>,
                audit: trail.handle.clone(),
                clock: clock.clone(),
                triggers: None,
            };
            let options = ServeOptions::new(addr, &url, ApiCredentials::default());
            let bound = Server::from_listener(listener, options, ctx)
                .map_err(|e| Failure::new(Exit::Config, e.to_string()))?;
            outln!("approval pages for this request: {url} (served by this command until it ends)");
            if let Some(emulator) = &tenant.emulator {
                let root = emulator
                    .info()
                    .graph_url
                    .trim_end_matches("/v1.0")
                    .to_owned();
                outln!(
                    "the manager's card and text land in the emulated tenant's sinks: \
                     {root}/_emulator/outbox?channel=teams (and channel=sms)"
                );
            }
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(bound.serve(async {
                rx.await.ok();
            }));
            (Some(tx), Some(task))
        }
        None => (None, None),
    };
    let links_ready = approvals.ready;
    let manager_path = args.path != VerificationPath::Push;
    check_paths(&built.capabilities, args.path, links_ready)?;

    if tenant.emulated {
        outln!(
            "tenant {} (emulated; the flow's timeouts run {}x faster: card {} s, link {} s)",
            tenant.name,
            tenant.time_scale,
            built.policy.card_timeout_secs,
            built.policy.link_ttl_secs
        );
    }
    for line in capability_lines(&built.capabilities, manager_path) {
        outln!("{line}");
    }
    let requester = requester(&context, &tenant).await;
    let ask = Ask {
        user: args.upn.clone(),
        requester,
        requester_label: format!("operator {}", context.operator.name),
        origin: "cli".into(),
        reason: args
            .reason
            .clone()
            .unwrap_or_else(|| "requested at the command line".into()),
        device_available: args.path != VerificationPath::Manager && !args.mfa,
        manager_fallback: manager_path,
        outcome: if args.mfa {
            Outcome::MfaReset
        } else {
            Outcome::PasswordReset
        },
    };
    let runtime = built.runtime.clone();
    let timers = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.run_timers(Duration::from_millis(250)).await }
    });
    let id = match runtime.request(ask).await {
        Ok(id) => id,
        Err(e) => {
            timers.abort();
            return Err(Failure::new(
                request_exit(&e),
                format!("reset {}: {e}", args.upn),
            ));
        }
    };
    outln!("request {id} for {}", args.upn);
    let outcome = watch(store.as_ref(), &id).await;
    timers.abort();
    if let (Some(stop), Some(task)) = (stop_pages, pages) {
        let _ = stop.send(());
        let _ = task.await;
    }
    trail.handle.close().await.ok();
    tenant.close().await;
    outcome
}

/// Where the approval links point and who answers them.
struct Approvals {
    /// Mints the links.
    links: Arc<dyn LinkMinter>,
    /// Whether links can be answered at all (false: `--path push` only).
    ready: bool,
    /// For the demo tenant: the socket, tokens and URL of the pages this command serves.
    local: Option<(std::net::TcpListener, Tokens, String)>,
}

/// Signed tokens under `serve.public_url` when `serve:` is configured (answered by
/// `resetctl serve` over the same store); for an emulated tenant without it, pages this
/// command serves itself on loopback with a key that dies with it; else none.
fn approvals(
    context: &Context,
    tenant: &super::tenant::Tenant,
    store: &Arc<SqliteStore>,
) -> Result<Approvals, Failure> {
    if let Some(serve) = &context.config.serve {
        let tokens = Tokens::new(token_key(serve, context)?, store.clone());
        return Ok(Approvals {
            links: Arc::new(TokenMinter::new(tokens, &serve.public_url)),
            ready: true,
            local: None,
        });
    }
    if tenant.emulator.is_some() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| Failure::new(Exit::Config, format!("approval pages: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::new(Exit::Config, e.to_string()))?;
        let url = format!("http://{addr}");
        let tokens = Tokens::new(ephemeral_key()?, store.clone());
        return Ok(Approvals {
            links: Arc::new(TokenMinter::new(tokens.clone(), &url)),
            ready: true,
            local: Some((listener, tokens, url)),
        });
    }
    Ok(Approvals {
        links: Arc::new(NoLinks),
        ready: false,
        local: None,
    })
}

/// The approval tokens' signing key from `serve.token_key_env`/`_file` (hex).
pub fn token_key(serve: &ServeSection, context: &Context) -> Result<TokenKey, Failure> {
    use secrecy::ExposeSecret;
    let secret = serve.token_key.load("serve.token_key", &context.env)?;
    let bytes = hex::decode(secret.expose_secret().trim()).map_err(|_| {
        Failure::new(
            Exit::Config,
            "serve.token_key: the key must be hexadecimal (`openssl rand -hex 32`)",
        )
    })?;
    TokenKey::new(&bytes).map_err(|e| Failure::new(Exit::Config, format!("serve.token_key: {e}")))
}

/// Refuse, before anything happens, a path the configuration cannot carry out.
fn check_paths(
    capabilities: &Capabilities,
    path: VerificationPath,
    links: bool,
) -> Result<(), Failure> {
    if path == VerificationPath::Push && capabilities.push.is_none() {
        return Err(Failure::new(
            Exit::Config,
            "--path push needs a push provider: configure `push:` (duo or okta) in resetctl.yaml",
        ));
    }
    if path != VerificationPath::Push && !links {
        return Err(Failure::new(
            Exit::Config,
            "manager approval needs signed approval links: configure `serve:` (public_url, \
             token_key_env) and run `resetctl serve` to answer them, or use --path push",
        ));
    }
    if path != VerificationPath::Push && !capabilities.teams && !capabilities.sms {
        return Err(Failure::new(
            Exit::Config,
            "manager approval needs a Teams (`channels.teams`) or SMS (`channels.sms`) sender, \
             or use --path push",
        ));
    }
    Ok(())
}

/// What the flow will and will not be able to use, said up front.
fn capability_lines(c: &Capabilities, manager_path: bool) -> Vec<String> {
    let mut lines = Vec::new();
    match c.push {
        Some(p) => lines.push(format!("push: {p}")),
        None => lines.push("push: none configured; the manager is asked instead".into()),
    }
    if manager_path {
        if !c.teams {
            lines.push("manager approval: no Teams sender; the manager is texted at once".into());
        }
        if !c.sms {
            lines.push(
                "manager approval: no SMS sender; an unanswered card escalates to a ticket".into(),
            );
        }
    }
    lines
}

/// The operator as the flow's requester: their directory identity when the operator name is
/// a user of the tenant (so a manager who asks for their own report's reset is recognised),
/// else the operator name itself.
async fn requester(context: &Context, tenant: &super::tenant::Tenant) -> Person {
    let name = context.operator.name.to_string();
    if name.contains('@')
        && let Ok(Some(user)) = tenant.directory.get_user(&name).await
    {
        return Person {
            id: user.id,
            upn: user.upn,
        };
    }
    Person {
        id: format!("operator:{name}"),
        upn: name,
    }
}

/// Show each state as it is reached, until the request ends and its actions have run; the
/// exit code by how it ended.
async fn watch(store: &SqliteStore, id: &str) -> CmdResult {
    let mut shown: Option<String> = None;
    loop {
        let Some(request) = store
            .load(id)
            .await
            .map_err(|e| Failure::new(Exit::Config, e.to_string()))?
        else {
            return Err(Failure::new(Exit::Config, format!("request {id} vanished")));
        };
        let line = describe(&request.flow.state);
        if shown.as_deref() != Some(line.as_str()) {
            outln!("  {}  {line}", request.updated_at.strftime("%H:%M:%S"));
            shown = Some(line);
        }
        let settled = request.flow.state.is_final()
            && !store
                .pending_actions()
                .await
                .map_err(|e| Failure::new(Exit::Config, e.to_string()))?
                .iter()
                .any(|a| a.request == id);
        if settled {
            return Ok(match request.flow.state {
                State::Completed { .. } => Exit::Success,
                State::Refused { .. } => Exit::Refused,
                _ => Exit::Partial,
            });
        }
        tokio::time::sleep(WATCH).await;
    }
}

/// One line per state, in the words the help desk uses.
fn describe(state: &State) -> String {
    match state {
        State::Requested => "requested".into(),
        State::PushSent { due, .. } => format!(
            "push sent to the user's authenticator (answer by {})",
            due.strftime("%H:%M:%S")
        ),
        State::ManagerCardSent { reason, due, .. } => format!(
            "manager asked by Teams card ({}); SMS to the manager's directory number at {}",
            snake(reason),
            due.strftime("%H:%M:%S")
        ),
        State::ManagerSmsSent { due, .. } => format!(
            "card unanswered: manager texted a one-time link (valid until {})",
            due.strftime("%H:%M:%S")
        ),
        State::Verified { via, .. } => format!("verified ({})", snake(via)),
        State::ApproversPending { first, .. } => format!(
            "stage 1 approved ({}); reading the approver group",
            snake(&first.via)
        ),
        State::ApproversAsked { approvers, due, .. } => format!(
            "{} approver(s) asked, each with their own links (answer by {})",
            approvers.len(),
            due.strftime("%H:%M:%S")
        ),
        State::MfaResetting { step, .. } => {
            format!("approved in two stages: {}", snake(step))
        }
        State::AccessGroupHeld { until, .. } => format!(
            "MFA reset done; the user is in the temporary access group until {}",
            until.strftime("%H:%M:%S")
        ),
        State::Denied { stage, .. } => format!("denied at stage {stage}; the requester is told"),
        State::Completed {
            via: resetctl::verify::Via::ApproverGroup,
            ..
        } => "completed (approver_group): methods removed, Temporary Access Pass delivered".into(),
        State::Completed { via, .. } => format!(
            "completed ({}): password change forced at next sign-in, with MFA",
            snake(via)
        ),
        State::Escalated {
            reasons,
            suspicious,
            ..
        } => {
            let reasons: Vec<String> = reasons.iter().map(snake).collect();
            format!(
                "escalated to the service desk for manual identity proofing ({}){}",
                reasons.join(", "),
                if *suspicious {
                    "; marked SUSPICIOUS"
                } else {
                    ""
                }
            )
        }
        State::Refused { reason, .. } => format!("refused ({})", snake(reason)),
    }
}

/// A request the runtime could not start: an unknown user is the operator's input; a
/// directory or store failure is the setup's.
fn request_exit(err: &resetctl::verify::runtime::RuntimeError) -> Exit {
    match err {
        resetctl::verify::runtime::RuntimeError::Directory(d) if d.starts_with("no user") => {
            Exit::Invalid
        }
        _ => Exit::Config,
    }
}

/// No approval links can be made (`--path push`): never asked for, since the flow escalates
/// where it would ask the manager.
struct NoLinks;

impl LinkMinter for NoLinks {
    fn mint<'a>(
        &'a self,
        _request: &'a str,
        _approver: &'a Person,
        _expires: jiff::Timestamp,
    ) -> futures::future::BoxFuture<'a, Result<resetctl::verify::runtime::ApprovalLinks, String>>
    {
        Box::pin(async { Err("no approval links are configured (`serve:`)".into()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use resetctl::verify::{EscalationReason, PathBReason};

    #[test]
    fn states_read_in_the_help_desks_words() {
        let at = jiff::Timestamp::from_second(0).unwrap();
        let s = describe(&State::ManagerCardSent {
            reason: PathBReason::PushTimedOut,
            sent_at: at,
            due: at,
        });
        assert!(s.contains("push_timed_out"), "{s}");
        let s = describe(&State::Escalated {
            reasons: vec![EscalationReason::PushDenied],
            suspicious: true,
            at,
        });
        assert!(s.contains("push_denied") && s.contains("SUSPICIOUS"), "{s}");
    }

    #[test]
    fn a_path_the_configuration_cannot_carry_out_is_refused_first() {
        let none = Capabilities {
            push: None,
            teams: false,
            sms: false,
        };
        assert!(check_paths(&none, VerificationPath::Push, true).is_err());
        assert!(check_paths(&none, VerificationPath::Manager, true).is_err());
        let teams = Capabilities {
            push: Some("duo"),
            teams: true,
            sms: false,
        };
        assert!(check_paths(&teams, VerificationPath::Auto, false).is_err());
        assert!(check_paths(&teams, VerificationPath::Auto, true).is_ok());
        assert!(check_paths(&teams, VerificationPath::Push, false).is_ok());
    }
}
