//! One file per subcommand: each turns parsed arguments into library calls and prints
//! the result. Library errors become a [`Failure`] carrying one of the documented exit codes
//! (README, Exit codes; [`Exit`]).
//!
//! Under `--output json` every command prints exactly one JSON document on standard output,
//! a failure included: `{"error": "...", "exit": N}` (with `"id"` when it concerns a run;
//! the message is on standard error too, for people).
//! A run is `id` in every document. The exceptions print a format of their own:
//! `completions` and `man` (a script, a manual page) and `audit export` (JSON Lines or CEF).

#[macro_use]
pub mod out;

mod audit;
mod bench;
mod comms;
mod completions;
mod console;
mod context;
mod doctor;
mod emulator;
mod forward;
mod paths;
mod plan;
mod readiness;
mod render;
mod reset;
mod run;
mod runs;
mod serve;
mod tabletop;
mod tenant;
mod triggers;
mod validate;
mod verify;

use std::fmt;

use resetctl::audit::AuditError;
use resetctl::config::ConfigError;
use resetctl::engine::EngineError;
use resetctl::engine::lifecycle::LifecycleError;
use resetctl::store::StoreError;
use resetctl::targeting::ResolveError;

use crate::cli::{Cli, Command};

/// Process exit codes, documented in the README (Exit codes). Scripts branch on these; never
/// renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything requested was done.
    Success = 0,
    /// Invalid input: a playbook, CSV, argument or audit trail that does not pass checks.
    Invalid = 1,
    /// Partial failure: some users failed (see the report).
    Partial = 2,
    /// Refused by a guard or missing approvals.
    Refused = 3,
    /// Configuration or authentication error (also: a feature this build does not have yet).
    Config = 4,
    /// Stopped by the operator (one Ctrl-C) with no failure: users in flight finished, the
    /// rest were not started; `run --resume` finishes the run.
    Stopped = 5,
    /// Aborted by a second Ctrl-C: the run is marked `interrupted`; `run --resume` reads back
    /// what was in flight and finishes it. 128 + SIGINT, as shells report an interrupt.
    Interrupted = 130,
}

/// A command that could not do its job: what to tell the user and how to exit.
pub struct Failure {
    /// Exit code to return.
    pub exit: Exit,
    /// The message with its context chain, rendered by miette.
    pub report: miette::Report,
    /// The run it concerns, when there is one (given as `id` in the JSON error).
    pub run: Option<String>,
    /// What the command had to say besides the failure (a run's summary), as the JSON
    /// document the error is added to.
    pub document: Option<serde_json::Value>,
}

impl Failure {
    /// A failure with a plain message.
    pub fn new(exit: Exit, message: impl fmt::Display) -> Self {
        Failure {
            exit,
            report: miette::miette!("{message}"),
            run: None,
            document: None,
        }
    }

    /// The same failure, whose JSON document is `document` (an object) with the error added.
    pub fn with_document(mut self, document: serde_json::Value) -> Self {
        self.document = Some(document);
        self
    }

    /// The same failure, about run `id`.
    pub fn about(mut self, id: impl fmt::Display) -> Self {
        self.run = Some(id.to_string());
        self
    }

    /// The JSON document of this failure under `--output json`.
    pub fn json(&self) -> serde_json::Value {
        let mut doc = match &self.document {
            Some(serde_json::Value::Object(fields)) => serde_json::Value::Object(fields.clone()),
            _ => serde_json::json!({}),
        };
        doc["error"] = self.report.to_string().into();
        doc["exit"] = (self.exit as u8).into();
        if let Some(id) = &self.run {
            doc["id"] = serde_json::Value::String(id.clone());
        }
        doc
    }
}

/// What every command returns.
pub type CmdResult = Result<Exit, Failure>;

// The exit-code policy: a library error becomes a `Failure` here, by variant, and nowhere
// else. Bad input is 1, a refusal 3, everything that needs an operator to fix the setup 4.

impl From<LifecycleError> for Failure {
    fn from(err: LifecycleError) -> Failure {
        let exit = match &err {
            LifecycleError::Refused { .. } => Exit::Refused,
            LifecycleError::NotResumable { .. } => Exit::Invalid,
            LifecycleError::Engine(engine) => engine_exit(engine),
            LifecycleError::Store(store) => store_exit(store),
            _ => Exit::Config,
        };
        let run = match &err {
            LifecycleError::Refused { run, .. }
            | LifecycleError::NotResumable { run, .. }
            | LifecycleError::NotApprovable { run, .. }
            | LifecycleError::EphemeralTenant { run, .. } => Some(run.to_string()),
            _ => None,
        };
        let failure = Failure::new(exit, err);
        match run {
            Some(id) => failure.about(id),
            None => failure,
        }
    }
}

impl From<EngineError> for Failure {
    fn from(err: EngineError) -> Failure {
        Failure::new(engine_exit(&err), err)
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Failure {
        Failure::new(store_exit(&err), err)
    }
}

impl From<AuditError> for Failure {
    fn from(err: AuditError) -> Failure {
        Failure::new(Exit::Config, format!("audit trail: {err}"))
    }
}

impl From<ConfigError> for Failure {
    fn from(err: ConfigError) -> Failure {
        Failure::new(Exit::Config, err)
    }
}

/// A bad breach CSV is bad input; a protected entry that protects no one, or a step that would
/// grant administrative rights, is a refusal; any
/// other engine failure is the setup's (Graph, store, trail).
fn engine_exit(err: &EngineError) -> Exit {
    match err {
        EngineError::Resolve(ResolveError::Csv(_) | ResolveError::BadRows { .. }) => Exit::Invalid,
        // A break-glass or runner account that matches nothing is a guard refusing.
        EngineError::Resolve(
            ResolveError::UnresolvedExclusions(_) | ResolveError::GrantingGroups(_),
        ) => Exit::Refused,
        _ => Exit::Config,
    }
}

/// An unknown run id or a repeated approval is the operator's input; the rest is the store's.
fn store_exit(err: &StoreError) -> Exit {
    match err {
        StoreError::UnknownRun(_) | StoreError::DuplicateApproval { .. } => Exit::Invalid,
        _ => Exit::Config,
    }
}

/// Run the chosen subcommand and turn its outcome into an exit code.
pub async fn dispatch(cli: Cli) -> Exit {
    let global = &cli.global;
    let json = global.output == crate::cli::OutputFormat::Json;
    let result = match cli.command {
        Command::Validate(args) => validate::run(global, args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => completions::man(global, args),
        Command::Emulator(args) => emulator::run(global, args).await,
        Command::Audit(args) => audit::run(global, args).await,
        Command::Plan(args) => plan::run(global, args).await,
        Command::Run(args) => run::run(global, args).await,
        Command::Runs(args) => runs::run(global, args).await,
        Command::Doctor(args) => doctor::run(global, args).await,
        Command::Readiness(args) => readiness::run(global, args).await,
        Command::Tabletop(args) => tabletop::run(global, args).await,
        Command::Reset(args) => reset::run(global, args).await,
        Command::Serve(args) => serve::run(global, args).await,
        Command::Render(args) => render::run(global, args).await,
        Command::Bench(args) => bench::run(global, args).await,
        Command::BenchChild(args) => bench::child_main(args),
    };
    match result {
        Ok(exit) => exit,
        Err(failure) => {
            // People read standard error whatever the output format; scripts read the one
            // document on standard output.
            eoutln!("{:?}", failure.report);
            if json {
                outln!("{}", failure.json());
            }
            failure.exit
        }
    }
}
