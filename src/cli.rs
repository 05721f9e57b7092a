//! The command line (README, Command line), parsed with clap's derive API.
//!
//! This file only describes arguments; `main.rs` turns them into calls into the library.
//! The names and flags here are a contract that scripts and tests rely on: add freely,
//! rename nothing.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use resetctl::engine::ticket::Ticket;

/// The version `--version` prints: the package version and the commit it was built from
/// (`-dirty` when the work tree had changes; `unknown` outside a git checkout), from
/// `build.rs`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RESETCTL_COMMIT"),
    ")"
);

/// resetctl: run an identity incident response (mass password resets, session revocation,
/// MFA re-registration) through Microsoft Graph, from a validated YAML playbook.
#[derive(Debug, Parser)]
#[command(name = "resetctl", version = VERSION, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Options every subcommand understands.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (tenants, credentials, channels). Default: ./resetctl.yaml if present.
    #[arg(long, global = true, env = "RESETCTL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Who is acting, as the audit trail records it. Default: the configuration's
    /// `operator`, else the OS user and host.
    #[arg(long, global = true, env = "RESETCTL_OPERATOR", value_name = "NAME")]
    pub operator: Option<String>,

    /// Format of log lines written to standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Format of results written to standard output.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less output (-q: errors only, no progress, and `plan`, `run` and `tabletop` print
    /// only their final one-line answer; -qq: no log lines at all).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// Machine-readable JSON.
    Json,
}

/// The subcommands (README, Command line).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check playbooks for syntax and semantic errors; exits 0 when all are valid, 1 otherwise.
    Validate(ValidateArgs),
    /// Resolve and partition a playbook's targets, store the plan as a run and write its
    /// files; nothing is written to the tenant.
    Plan(PlanArgs),
    /// Run a playbook: a dry run unless --execute is given.
    Run(RunArgs),
    /// List, show and approve stored runs; end their temporary group memberships.
    Runs(RunsArgs),
    /// Check a tenant's app registrations before a run: tokens, the Graph permissions each
    /// step needs, the directory role, Graph reachable. Exits 0 when nothing is missing, 4
    /// otherwise.
    Doctor(DoctorArgs),
    /// The SSPR audit and data-hygiene report of a tenant: who cannot reset their own
    /// password, has no usable mobile number, no manager, no authenticator app or only SMS;
    /// the privileged accounts; counts per department. Reads only.
    Readiness(ReadinessArgs),
    /// Rehearse a playbook end to end against an emulated tenant (or, read only, a
    /// configured one) and write a report of it: times projected, approvals simulated.
    Tabletop(TabletopArgs),
    /// Reset one user's password through the two-path verification flow: MFA push, else
    /// the directory manager's approval, else a ticket. Exits 0 completed, 2 escalated, 3
    /// refused.
    Reset(ResetArgs),
    /// Serve the approval pages and the verification request API over HTTPS (plain HTTP on
    /// loopback only), firing the flow's timers and forwarding the audit trail live.
    Serve(ServeArgs),
    /// Run the Graph-compatible emulated tenant on loopback.
    Emulator(EmulatorArgs),
    /// Verify or export the tamper-evident audit trail.
    Audit(AuditArgs),
    /// Preview one communication rendered for one user of a tenant (nothing is sent).
    Render(RenderArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one page per command to a folder.
    Man(ManArgs),
    /// Measure throughput of the emulator, the Graph client or a whole run.
    Bench(BenchArgs),
    /// Internal to `resetctl bench`: run `resetctl ARGS...` and write the child's own peak
    /// RSS, which the benchmark's `wait4` cannot give (see `cmd/bench/child.rs`).
    #[command(name = "bench-child", hide = true)]
    BenchChild(BenchChildArgs),
}

/// Arguments of `resetctl validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Playbook files to check.
    #[arg(required = true, value_name = "PLAYBOOK")]
    pub playbooks: Vec<PathBuf>,
    /// Template files that replace the embedded ones of the same name (default: the
    /// configuration's `templates:`).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

/// Which tenant a command talks to.
#[derive(Debug, Args)]
pub struct TenantArgs {
    /// Tenant name from the configuration, or `demo` for the built-in emulated tenant
    /// (the default when no tenant is configured).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
}

/// Arguments of `resetctl plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The playbook to plan.
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: PathBuf,
    #[command(flatten)]
    pub tenant: TenantArgs,
    /// A CSV of targets that replaces the playbook's csv source path.
    #[arg(long, value_name = "CSV")]
    pub targets: Option<PathBuf>,
    /// Continue when some CSV rows cannot be read (they are listed in the plan).
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Resolve the targets this way instead of the cost model's choice (both plan the
    /// same; for measurements).
    #[arg(long, value_name = "HOW", hide = true)]
    pub resolve_by: Option<ResolveBy>,
    /// Directory for plan.json, targets.csv and manual-queue.csv
    /// (default: the run's folder under the data directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace files that already exist in the --out directory (refused otherwise).
    #[arg(long)]
    pub overwrite: bool,
    /// A deliberate second wave: also plan users that earlier runs on this tenant remediated
    /// within the playbook's guards.remediated_within (default 24h).
    #[arg(long)]
    pub include_remediated: bool,
    /// Run store (SQLite). Default: under the user's data directory.
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// The incident ticket (e.g. INC-1234): stored with the run, written into every audit
    /// record about it and into its summary. Letters, digits and -_.:/#, at most 64.
    #[arg(long, value_name = "ID")]
    pub ticket: Option<Ticket>,
    /// Template files that replace the embedded ones of the same name (default: the
    /// configuration's `templates:`).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

/// `plan --resolve-by`: how to resolve the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResolveBy {
    /// Look each key up (`$batch`), read groups as members.
    Lookup,
    /// List the whole tenant and join.
    Listing,
}

/// Arguments of `resetctl run`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").args(["dry_run", "execute"])))]
pub struct RunArgs {
    /// The playbook to run (not needed with --resume).
    #[arg(value_name = "PLAYBOOK", required_unless_present = "resume")]
    pub playbook: Option<PathBuf>,
    #[command(flatten)]
    pub tenant: TenantArgs,
    /// A CSV of targets that replaces the playbook's csv source path.
    #[arg(long, value_name = "CSV")]
    pub targets: Option<PathBuf>,
    /// Continue when some CSV rows cannot be read (they are listed in the plan).
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Evaluate every step and list the calls; nothing is written to the tenant (the
    /// default). Like `plan`, it stores the plan as a run and writes its files.
    #[arg(long)]
    pub dry_run: bool,
    /// Write to the tenant, once guards and approvals pass.
    #[arg(long)]
    pub execute: bool,
    /// Do not ask for interactive confirmation before executing.
    #[arg(long)]
    pub yes: bool,
    /// Continue a run that stopped (crash, Ctrl-C) without repeating any write.
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["playbook", "targets"])]
    pub resume: Option<String>,
    /// Run store (SQLite). Default: under the user's data directory.
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// Directory for plan.json, targets.csv, manual-queue.csv and results.csv
    /// (default: the run's folder under the data directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace files that already exist in the --out directory (refused otherwise).
    #[arg(long)]
    pub overwrite: bool,
    /// A deliberate second wave: also plan users that earlier runs on this tenant remediated
    /// within the playbook's guards.remediated_within (default 24h).
    #[arg(long)]
    pub include_remediated: bool,
    /// The most users whose steps run at once. The run keeps as many going as the tenant's
    /// write budget and Graph's latency need (the throttle's in-flight limit), up to this.
    #[arg(long, default_value_t = resetctl::engine::execute::MAX_PIPELINES, value_name = "N")]
    pub concurrency: usize,
    /// The incident ticket (e.g. INC-1234): stored with the run (`--resume` keeps it),
    /// written into every audit record about it and into its summary.
    #[arg(long, value_name = "ID", conflicts_with = "resume")]
    pub ticket: Option<Ticket>,
    /// When standard error is not a terminal, log progress every SECS seconds (an info
    /// line; JSON under `--log-format json`). 0: never.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub progress_every: u64,
    /// Template files that replace the embedded ones of the same name (default: the
    /// configuration's `templates:`).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

/// Arguments of `resetctl doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The playbook whose steps to check (default: every step resetctl can run).
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: Option<PathBuf>,
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// Arguments of `resetctl readiness`.
#[derive(Debug, Args)]
pub struct ReadinessArgs {
    #[command(flatten)]
    pub tenant: TenantArgs,
    /// Also write users.csv, privileged.csv and departments.csv into this folder.
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,
    /// Replace CSV files that already exist in the folder.
    #[arg(long, requires = "csv")]
    pub overwrite: bool,
}

/// Arguments of `resetctl runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Run store (SQLite). Default: under the user's data directory.
    #[arg(long, global = true, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// What to do with stored runs (default: list).
    #[command(subcommand)]
    pub action: Option<RunsAction>,
}

/// Subcommands of `resetctl runs`.
#[derive(Debug, Subcommand)]
pub enum RunsAction {
    /// List stored runs.
    List,
    /// Show one run: plan, approvals, progress and outcomes.
    Show {
        /// The run to show: its id, a unique prefix of it, or `latest` (the newest run).
        run_id: String,
    },
    /// Approve a run's exact plan as one operator.
    Approve {
        /// The run to approve.
        run_id: String,
        /// The approving operator's name.
        #[arg(long = "as", value_name = "OPERATOR")]
        operator: String,
    },
    /// Remove temporary group memberships whose expiry has passed.
    Expire {
        /// Remove memberships due by this RFC 3339 time instead of now (a later time ends
        /// them early; tabletop exercises fast-forward with it).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
}

/// Arguments of `resetctl tabletop`.
#[derive(Debug, Args)]
pub struct TabletopArgs {
    /// The playbook to exercise.
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: PathBuf,
    /// `demo` (the default: an emulated tenant started in-process), or a configured tenant,
    /// which the exercise only reads: every write and message is simulated.
    #[command(flatten)]
    pub tenant: TenantArgs,
    /// Users of the emulated tenant.
    #[arg(long, default_value_t = 2_000, value_name = "N")]
    pub users: u32,
    /// Seed of the emulated tenant (the same seed gives the same tenant).
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// A breach CSV instead of the one the playbook names.
    #[arg(long, value_name = "CSV")]
    pub targets: Option<PathBuf>,
    /// Write the HTML report here (default: tabletop.html in the run's folder).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write the Markdown summary here (default: beside the report, .md).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Stage something going wrong (repeatable, demo tenant only): no-mobile=PCT,
    /// silent-approver, throttle-storm[=SECONDS], channel-outage=sms|email|teams,
    /// privileged-in-list, synced-user.
    #[arg(long, value_name = "SPEC")]
    pub inject: Vec<String>,
    /// How much faster than real time the emulated tenant runs Graph's quotas, latency and
    /// the channels' limits; every time in the report is scaled back. Default: 60, or more
    /// for a large tenant (users / 15), so 10,000 users finish in well under a minute.
    #[arg(long, value_name = "K")]
    pub time_scale: Option<f64>,
    /// Forecast: share (0-1) of SSPR-capable users who call the service desk anyway.
    #[arg(long, default_value_t = 0.2, value_name = "SHARE")]
    pub call_share: f64,
    /// Forecast: minutes an agent spends per ticket.
    #[arg(long, default_value_t = 10.0, value_name = "MIN")]
    pub minutes_per_ticket: f64,
    /// Forecast: agents on shift.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub agents: u32,
    /// Forecast: hours the shift lasts from the first reset.
    #[arg(long, default_value_t = 8.0, value_name = "H")]
    pub shift_hours: f64,
}

/// Which verification path the single-user flow starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerificationPath {
    /// MFA push first, manager approval when the push is not answered.
    Auto,
    /// MFA push to the user's authenticator only: a push that is not answered escalates.
    Push,
    /// Manager approval only (the user's device is lost).
    Manager,
}

/// Arguments of `resetctl reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The user whose password is reset.
    #[arg(value_name = "UPN")]
    pub upn: String,
    #[command(flatten)]
    pub tenant: TenantArgs,
    /// Verification path.
    #[arg(long, value_enum, default_value_t = VerificationPath::Auto)]
    pub path: VerificationPath,
    /// Why the reset is asked for, as the caller said it (shown to the approving manager).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Reset the user's MFA instead of the password (device lost or replaced): the manager
    /// approves (implicitly when the operator is the manager), then a member of the
    /// `verify.mfa` approver group; the methods are removed and a Temporary Access Pass goes
    /// to the requester and the manager only.
    #[arg(long)]
    pub mfa: bool,
}

/// Arguments of `resetctl serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default: `serve.listen`, else 127.0.0.1:8443).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Serve only these tenants (default: every configured tenant; `demo` for the built-in
    /// one, whose links then point at this server on loopback).
    #[arg(long = "tenant", value_name = "TENANT")]
    pub tenants: Vec<String>,
}

/// Arguments of `resetctl emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on (port 0 picks a free port; the first stdout line says which).
    /// Loopback only, unless `--allow-remote`.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub bind: SocketAddr,
    /// Accept a non-loopback `--bind`: anyone who can reach the port can then read the
    /// emulated tenant and use its test credentials (printed on the first stdout line).
    #[arg(long)]
    pub allow_remote: bool,
    /// Number of synthetic users (10 to 1,000,000).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub users: u32,
    /// Seed of the synthetic tenant: the same seed gives the same tenant.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// Load the tenant from this YAML or JSON file instead of generating one.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["users", "seed"])]
    pub tenant_file: Option<PathBuf>,
    /// Number of app registrations (each with its own app+tenant quota).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub apps: u32,
    /// Fraction of users without a mobile phone number, to exercise the data gap.
    #[arg(long, default_value_t = 0.05, value_name = "F")]
    pub missing_mobile: f64,
    /// Mean added latency per request in milliseconds (with jitter).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency_ms: u64,
    /// Injected faults, each KIND=PROBABILITY, e.g. `503=0.02,504=0.01,reset=0.005`:
    /// 503 refuses a request (retryable); 504 and reset apply a write, then time out or drop
    /// the connection; 403 denies a directory write (Authorization_RequestDenied, not
    /// applied, not retryable) to rehearse a run going bad; dup_page serves a listing's page
    /// twice and drop_nextlink ends a listing early (a page without its nextLink);
    /// twilio_429, acs_429 and teams_429 throttle the message sinks, psa_429 the emulated PSAs;
    /// twilio_503, acs_503, teams_503 and mail_503 are provider outages; storm=SECONDS has
    /// another app drain the tenant's write quota that long from the first write (429s).
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<String>,
    /// Divide every throttling window and latency by K (tabletops of large tenants).
    #[arg(long, default_value_t = 1.0, value_name = "K")]
    pub time_scale: f64,
    /// Turn throttling off (benchmarks of the emulator itself).
    #[arg(long)]
    pub no_throttle: bool,
    /// Meter /users/{id}/authentication/* at N requests per 10 s per app (Graph's reports
    /// limit is 5; whether it applies to method CRUD is unconfirmed, so off by default).
    #[arg(long, value_name = "N")]
    pub auth_methods_limit: Option<u32>,
    /// Write a resetctl.yaml naming this emulator as a tenant (URLs, time scale, size, apps;
    /// secrets are read from environment variables, never written) to FILE.
    #[arg(long, value_name = "FILE")]
    pub write_config: Option<PathBuf>,
    /// The tenant's name in the file --write-config writes (`--tenant NAME` then uses it).
    #[arg(long, default_value = "emulator", value_name = "NAME")]
    pub tenant_name: String,
    /// The environment variable the written configuration reads the first app's client
    /// secret from (app N's: VAR_N); the secret itself is the first stdout line's.
    #[arg(long, default_value = "RESETCTL_EMULATOR_SECRET", value_name = "VAR")]
    pub secret_env: String,
}

/// Arguments of `resetctl audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// What to do with the audit trail.
    #[command(subcommand)]
    pub action: AuditAction,
}

/// Export formats of the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditExportFormat {
    /// The records as they are, one JSON object per line.
    Jsonl,
    /// ArcSight Common Event Format lines, for SIEMs.
    Cef,
}

/// Subcommands of `resetctl audit`.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check the hash chain of a trail; names the first bad record. Exit 0 intact, 1 tampered.
    Verify {
        /// Trail files (put in chain order by their rotation number, the live file last). A single
        /// live trail file brings its rotated files `FILE.1`, `FILE.2`... along. Default: the
        /// configuration's `audit:` trail with its key, else the data directory's trail.
        #[arg(value_name = "FILE", conflicts_with = "trail")]
        files: Vec<PathBuf>,
        /// The live trail file: verify it with every rotated file and its chain head beside it.
        #[arg(long, value_name = "PATH")]
        trail: Option<PathBuf>,
        /// HMAC key file (hexadecimal) of a keyed trail.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// Run store whose witness of the trail is checked too. Default: the data directory's,
        /// if there is one.
        #[arg(long, value_name = "PATH")]
        store: Option<PathBuf>,
    },
    /// Stream the trail to the SIEM sinks of `forward:` (syslog with CEF, Logs Ingestion, a
    /// signed webhook) from each sink's cursor: catch up and stop, or follow. Nothing is
    /// sent twice, nothing is lost while a sink is down. Exit 0, or 2 when a sink failed.
    Forward {
        /// Only these sinks (default: every one).
        #[arg(long = "to", value_name = "SINK")]
        to: Vec<String>,
        /// Keep following the trail until interrupted.
        #[arg(long)]
        follow: bool,
        /// How often a following pass looks for new records.
        #[arg(long, value_name = "SECONDS", default_value_t = 5)]
        every: u64,
    },
    /// Make an HMAC key for a keyed trail: 32 random bytes in hexadecimal, written to FILE,
    /// readable by its owner only. An existing file is never overwritten. Prints the key id.
    Keygen {
        /// Where to write the key.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Start a new trail: when the old one was deleted, cut short or broken (writing commands
    /// refuse it), or to start keyed. Whatever is left of the old trail is moved aside into
    /// `TRAIL.retired-TIME/`, never deleted; the new trail's first record names the old trail,
    /// what the run store had witnessed of it, who and why.
    NewTrail {
        #[command(flatten)]
        recovery: RecoveryArgs,
    },
    /// Rebuild a lost or damaged chain head of a trail whose records are intact (checked from
    /// seq 1 and against the run store's witness), and record that it was rebuilt.
    Reseal {
        #[command(flatten)]
        recovery: RecoveryArgs,
    },
    /// Export the trail for a SIEM, after verifying it (nothing is exported from a broken trail).
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value_t = AuditExportFormat::Jsonl)]
        format: AuditExportFormat,
        /// Trail files (as for `verify`).
        #[arg(value_name = "FILE", conflicts_with = "trail")]
        files: Vec<PathBuf>,
        /// The live trail file: export it with every rotated file beside it.
        #[arg(long, value_name = "PATH")]
        trail: Option<PathBuf>,
        /// HMAC key file (hexadecimal) of a keyed trail.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
}

/// Arguments of the explicit recoveries `audit new-trail` and `audit reseal`.
#[derive(Debug, Args)]
pub struct RecoveryArgs {
    /// The operator doing it (written into the trail).
    #[arg(long = "as", value_name = "OPERATOR")]
    pub operator: String,
    /// Why (written into the trail).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// The live trail file. Default: the configuration's `audit:` trail (with its key), else
    /// the data directory's.
    #[arg(long, value_name = "PATH")]
    pub trail: Option<PathBuf>,
    /// HMAC key file (hexadecimal): the new trail is keyed with it, or the resealed trail is
    /// checked with it. Default: the configuration's key for its trail.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Run store that witnesses the trail. Default: under the user's data directory.
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,
}

/// Arguments of `resetctl render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Template name (from templates/).
    #[arg(value_name = "TEMPLATE")]
    pub template: String,
    /// The user the communication is rendered for (looked up in the tenant).
    #[arg(long, value_name = "UPN")]
    pub user: String,
    /// Render only this channel's form (email, sms, teams); default every form it has.
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// Render for the user's manager (a notice `to: manager`).
    #[arg(long)]
    pub to_manager: bool,
    /// Template override directory (else the configuration's `templates:`).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Write the HTML preview here (default: the data directory's `previews/`).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// Shells that completions can be generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU Bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
    /// PowerShell.
    Powershell,
}

/// Arguments of `resetctl completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Arguments of `resetctl man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `resetctl.1` and one page per subcommand (`resetctl-run.1`, ...) into DIR
    /// instead of printing `resetctl.1`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Arguments of the hidden `resetctl bench-child`.
#[derive(Debug, Args)]
pub struct BenchChildArgs {
    /// Where to write `EXIT PEAK_KIB` once the child has exited.
    #[arg(long, value_name = "FILE")]
    pub peak_file: PathBuf,
    /// The child's arguments, after `--`.
    #[arg(last = true, required = true, value_name = "ARGS")]
    pub args: Vec<std::ffi::OsString>,
}

/// What `resetctl bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTarget {
    /// Requests per second the emulator sustains with throttling off.
    Emulator,
    /// Writes per second the Graph client achieves against the quota.
    Graph,
    /// A whole mass-reset run against the emulator, then `plan` below.
    Run,
    /// `resetctl plan` of a 1,000,000-row breach CSV against a 1,000,000-user tenant.
    Plan,
    /// Rendering messages (per second, peak memory) and delivering them into the emulated
    /// tenant's sinks at each channel's documented limit.
    Comms,
    /// The README's tabletop exercise at 1,000, 10,000 and 100,000 demo users (or `--n`):
    /// wall time and peak memory.
    Tabletop,
    /// `resetctl serve`'s SOC side: audit records forwarded per second to a loopback syslog
    /// receiver (TCP), and trigger intake latency under 100 concurrent webhooks.
    Serve,
}

/// Arguments of `resetctl bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub target: BenchTarget,
    /// Size of the workload (users or requests, per benchmark).
    #[arg(long, value_name = "N")]
    pub n: Option<u64>,
    /// `bench graph`, `bench run` and `bench comms`: emulated time runs this many times
    /// faster than real time (quotas, channel limits, Retry-After, latency); figures are
    /// reported in real-time terms.
    #[arg(long, value_name = "K", default_value_t = 20.0)]
    pub time_scale: f64,
    /// `bench graph` and `bench run`: mean latency Graph adds per request, in real-time
    /// milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub latency_ms: u64,
    /// `bench graph`: send the writes as `$batch` requests (dependsOn) instead of concurrent
    /// per-user pipelines.
    #[arg(long)]
    pub batch: bool,
    /// `bench run`: app registrations in the credential pool (default 1).
    #[arg(long, value_name = "N")]
    pub apps: Option<u32>,
    /// `bench run`: measure the execution only, not planning at a million users.
    #[arg(long)]
    pub execution_only: bool,
    /// `bench run`: the most users' pipelines at once (`resetctl run --concurrency`); a
    /// low value shows what a fixed concurrency costs at a given latency.
    #[arg(long, value_name = "N", default_value_t = resetctl::engine::execute::MAX_PIPELINES)]
    pub concurrency: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
