//! `resetctl tabletop`: rehearse a playbook end to end and write the report people read.
//!
//! By default an emulated tenant is started in-process (`--users`, `--seed`) with Graph's
//! quotas and latency compressed by `--time-scale`; every time in the report is scaled back
//! and labelled projected. Against a configured tenant (`--tenant NAME`) the exercise only
//! reads: the directory is wrapped so every write is simulated, and messages go to a
//! recording sink (an emulator's outbox on loopback), never to a real channel. Approvals
//! come from simulated operators `tabletop-operator-N`, recorded as such in the trail.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use resetctl::comms::delivery::{DeliveryJournal, DeliveryState};
use resetctl::comms::message::Content;
use resetctl::comms::template::Form;
use resetctl::emulator::EmulatorConfig;
use resetctl::emulator::staging::{Kind, Picked};
use resetctl::engine::execute::Progress;
use resetctl::engine::lifecycle::{
    ExecuteOptions, Executed, Lifecycle, LifecycleError, PlanOptions,
};
use resetctl::engine::operator::{Operator, OperatorName};
use resetctl::engine::plan::Plan;
use resetctl::playbook::{Channel, Playbook, Step, Target};
use resetctl::store::{Outcome, RunStore, SqliteStore};
use resetctl::tabletop::chart::{Chart, XAxis};
use resetctl::tabletop::forecast::{self, Assumptions};
use resetctl::tabletop::inject::Inject;
use resetctl::tabletop::report::{self, Approval, Manual, Preview, Report, Row};
use resetctl::tabletop::simulated::SimulatedWrites;
use resetctl::tabletop::{readiness, timeline};
use resetctl::targeting::{Bucket, ResolveOptions};

use super::console::Console;
use super::context::Context;
use super::tenant::{self, Tenant};
use super::{CmdResult, Exit, Failure, comms, validate};
use crate::cli::{GlobalArgs, OutputFormat, TabletopArgs};

/// Users of the manual queue listed in the report (the rest are in manual-queue.csv).
const MANUAL_SHOWN: usize = 50;
/// Origin recorded with each simulated operator's approval.
const SIMULATED_ORIGIN: &str = "tabletop exercise: simulated operator";

/// `resetctl tabletop`.
pub async fn run(global: &GlobalArgs, args: TabletopArgs) -> CmdResult {
    let injects = args
        .inject
        .iter()
        .map(|s| Inject::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::new(Exit::Invalid, e))?;
    let assumptions = assumptions(&args)?;
    if args
        .time_scale
        .is_some_and(|k| !(k.is_finite() && k >= 1.0))
    {
        return Err(Failure::new(
            Exit::Invalid,
            "--time-scale must be a number of at least 1",
        ));
    }
    let context = Context::load(global)?;
    let lifecycle = context.lifecycle(None).await?;
    let result = exercise(global, &args, &context, &lifecycle, &injects, assumptions).await;
    if let Err(err) = lifecycle.close().await {
        eoutln!("warning: audit trail: {err}");
    }
    result
}

/// The forecast's assumptions from the flags, checked.
fn assumptions(args: &TabletopArgs) -> Result<Assumptions, Failure> {
    let bad = |what: &str| Failure::new(Exit::Invalid, what.to_owned());
    if !(0.0..=1.0).contains(&args.call_share) {
        return Err(bad("--call-share must be between 0 and 1"));
    }
    if !(args.minutes_per_ticket > 0.0 && args.minutes_per_ticket.is_finite()) {
        return Err(bad("--minutes-per-ticket must be more than 0"));
    }
    if !(0.0..=72.0).contains(&args.shift_hours) {
        return Err(bad("--shift-hours must be between 0 and 72"));
    }
    Ok(Assumptions {
        capable_call_share: args.call_share,
        minutes_per_ticket: args.minutes_per_ticket,
        agents: args.agents,
        shift_hours: args.shift_hours,
    })
}

/// The time scale of an exercise on `users` users: 60 (a projected minute is a second),
/// more for a large tenant, whose slowest channel (a mailbox sends 30 mails a minute) would
/// otherwise hold the exercise for minutes.
fn default_time_scale(users: u32) -> f64 {
    (f64::from(users) / 15.0).round().max(60.0)
}

/// The tenant name an exercise's run is stored under: its own for each exercise, so it
/// never meets a real run's users (a simulated write is no remediation) nor an earlier
/// exercise's (whose tenant, started afresh, is gone).
fn exercise_tenant(name: &str) -> String {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("tabletop-{name}-{}", &nonce[..8])
}

/// Where the exercise acts: the tenant, and what stands in for writes and channels.
struct Stage {
    tenant: Tenant,
    /// A configured tenant: the decorator that simulated every write.
    simulated: Option<Arc<SimulatedWrites>>,
    /// A configured tenant: the emulator whose sinks recorded the messages.
    sinks: Option<Tenant>,
    /// What the tenant is, for the report.
    description: String,
    /// The users injects put among the targets, with the inject.
    staged: Vec<(Inject, Picked)>,
    /// The breach list with the staged users added, used instead of the playbook's.
    targets: Option<PathBuf>,
}

impl Stage {
    async fn close(self) {
        if let Some(path) = &self.targets {
            let _ = std::fs::remove_file(path);
        }
        self.tenant.close().await;
        if let Some(sinks) = self.sinks {
            sinks.close().await;
        }
    }
}

/// The emulated tenant, or a configured one made read-only.
async fn stage(
    args: &TabletopArgs,
    context: &Context,
    playbook: &Playbook,
    injects: &[Inject],
) -> Result<Stage, Failure> {
    let configured = args.tenant.tenant.as_deref().filter(|t| *t != "demo");
    let Some(name) = configured else {
        let mut config = EmulatorConfig::seeded(args.users, args.seed);
        config.time_scale = args
            .time_scale
            .unwrap_or_else(|| default_time_scale(args.users));
        let mut faults = Vec::new();
        for inject in injects {
            match inject {
                Inject::NoMobile { percent } => config.missing_mobile = percent / 100.0,
                Inject::ThrottleStorm { seconds } => faults.push(format!("storm={seconds}")),
                Inject::ChannelOutage { channel } => faults.push(channel.faults().to_owned()),
                _ => {}
            }
        }
        let config = config
            .with_faults(&faults.join(","))
            .map_err(|e| Failure::new(Exit::Invalid, e))?;
        let tenant = tenant::emulated(&exercise_tenant("demo"), config).await?;
        let mut stage = Stage {
            description: format!("emulated tenant ({} users, seed {})", args.users, args.seed),
            tenant,
            simulated: None,
            sinks: None,
            staged: Vec::new(),
            targets: None,
        };
        if let Err(failure) = stage_targets(&mut stage, args, playbook, injects) {
            stage.close().await;
            return Err(failure);
        }
        return Ok(stage);
    };
    if !injects.is_empty() {
        return Err(Failure::new(
            Exit::Invalid,
            "--inject stages faults in the emulated tenant; it cannot be used with a configured \
             tenant",
        ));
    }
    let mut tenant = context.connect_read_only(Some(name)).await?;
    let simulated = Arc::new(SimulatedWrites::new(Arc::clone(&tenant.directory)));
    tenant.directory = Arc::clone(&simulated) as Arc<dyn resetctl::directory::Directory>;
    // Runs of an exercise are kept apart from the tenant's real runs: a simulated write must
    // never count as a remediation to a later real run.
    tenant.name = exercise_tenant(name);
    // Messages go to a recording sink on loopback, never to the configured channels.
    let sinks = tenant::emulated("tabletop-sinks", EmulatorConfig::seeded(10, args.seed)).await?;
    let mut messaging = sinks.messaging.clone();
    if let Some(m) = messaging.as_mut() {
        m.time_scale = tenant.time_scale;
    }
    tenant.messaging = messaging;
    Ok(Stage {
        description: format!(
            "configured tenant {name}, read only: every write and message simulated"
        ),
        tenant,
        simulated: Some(simulated),
        sinks: Some(sinks),
        staged: Vec::new(),
        targets: None,
    })
}

/// Put the users `privileged-in-list` and `synced-user` pick among the playbook's targets,
/// where its sources will find them: a row added to (a copy of) the breach list, a
/// membership of a group it targets, a risk level it targets. `all_users` finds them as it is.
fn stage_targets(
    stage: &mut Stage,
    args: &TabletopArgs,
    playbook: &Playbook,
    injects: &[Inject],
) -> Result<(), Failure> {
    let Some(emulator) = stage.tenant.emulator.as_ref() else {
        return Ok(());
    };
    // The breach list the staged users join: the first csv source's (or --targets'); one
    // CSV then replaces every csv source, as --targets does.
    let csv = playbook.targets.iter().find_map(|t| match t {
        Target::Csv { path, column } => {
            Some((args.targets.clone().unwrap_or(path.clone()), column))
        }
        _ => None,
    });
    let (mut table, taken) = match &csv {
        Some((path, column)) => {
            let table = Table::read(path, column)?;
            let taken = table.keys();
            (Some(table), taken)
        }
        None => (None, HashSet::new()),
    };
    for inject in injects {
        let kind = match inject {
            Inject::PrivilegedInList => Kind::ActiveAdmin,
            Inject::SyncedUser => Kind::Synced,
            _ => continue,
        };
        let picked = emulator.pick(kind, &taken).ok_or_else(|| {
            Failure::new(
                Exit::Invalid,
                format!(
                    "--inject {}: the emulated tenant has no such user (try more --users)",
                    match kind {
                        Kind::ActiveAdmin => "privileged-in-list",
                        Kind::Synced => "synced-user",
                    }
                ),
            )
        })?;
        for target in &playbook.targets {
            match target {
                Target::Csv { .. } => {
                    if let Some(table) = table.as_mut() {
                        table.add(&picked.upn);
                    }
                }
                Target::Group { id, .. } => {
                    emulator.stage_member(*id, &picked.id);
                }
                Target::RiskyUsers { levels } => {
                    if let Some(level) = levels.iter().max() {
                        emulator.stage_risk(&picked.id, level.as_str());
                    }
                }
                Target::Filter(_) | Target::AllUsers => {}
            }
        }
        stage.staged.push((*inject, picked));
    }
    if let Some(table) = table.filter(|t| t.added > 0) {
        let copy = std::env::temp_dir().join(format!(
            "resetctl-tabletop-{}.csv",
            uuid::Uuid::new_v4().simple()
        ));
        write(&copy, &table.text()?)?;
        stage.targets = Some(copy);
    }
    Ok(())
}

/// A breach list read for staging: its rows, and rows added with a key in its column.
struct Table {
    source: PathBuf,
    headers: csv::StringRecord,
    column: usize,
    rows: Vec<csv::StringRecord>,
    added: usize,
}

impl Table {
    fn fail(source: &Path, e: &dyn std::fmt::Display) -> Failure {
        Failure::new(Exit::Invalid, format!("{}: {e}", source.display()))
    }

    /// Read `source`, whose keys are in `column`.
    fn read(source: &Path, column: &str) -> Result<Table, Failure> {
        let fail = |e: &dyn std::fmt::Display| Table::fail(source, e);
        let mut reader = csv::Reader::from_path(source).map_err(|e| fail(&e))?;
        let headers = reader.headers().map_err(|e| fail(&e))?.clone();
        let at = headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(column))
            .ok_or_else(|| fail(&format!("no column {column}")))?;
        let rows = reader
            .records()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(&e))?;
        Ok(Table {
            source: source.to_path_buf(),
            headers,
            column: at,
            rows,
            added: 0,
        })
    }

    /// The keys the list names, lower case.
    fn keys(&self) -> HashSet<String> {
        self.rows
            .iter()
            .filter_map(|r| r.get(self.column))
            .map(|k| k.trim().to_lowercase())
            .collect()
    }

    /// Add a row naming `key`.
    fn add(&mut self, key: &str) {
        let row: csv::StringRecord = (0..self.headers.len())
            .map(|i| if i == self.column { key } else { "" })
            .collect();
        self.rows.push(row);
        self.added += 1;
    }

    /// The list as CSV.
    fn text(&self) -> Result<String, Failure> {
        let fail = |e: &dyn std::fmt::Display| Table::fail(&self.source, e);
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&self.headers).map_err(|e| fail(&e))?;
        for row in &self.rows {
            writer.write_record(row).map_err(|e| fail(&e))?;
        }
        let bytes = writer.into_inner().map_err(|e| fail(&e))?;
        String::from_utf8(bytes).map_err(|e| fail(&e))
    }
}

async fn exercise(
    global: &GlobalArgs,
    args: &TabletopArgs,
    context: &Context,
    lifecycle: &Lifecycle<SqliteStore>,
    injects: &[Inject],
    assumptions: Assumptions,
) -> CmdResult {
    let templates = validate::Templates::new(&context.config, None)?;
    let source = validate::load_playbook(&args.playbook, &templates)?;
    let stage = stage(args, context, &source.playbook, injects).await?;
    let result = rehearse(
        global,
        args,
        context,
        lifecycle,
        &stage,
        &templates,
        &source,
        injects,
        assumptions,
    )
    .await;
    stage.close().await;
    result
}

/// What the exercise found, before it is turned into the report.
struct Findings {
    executed: Option<Executed>,
    refusals: Vec<String>,
    approvals: Vec<Approval>,
    escalations: Vec<String>,
    delivery: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
async fn rehearse(
    global: &GlobalArgs,
    args: &TabletopArgs,
    context: &Context,
    lifecycle: &Lifecycle<SqliteStore>,
    stage: &Stage,
    templates: &validate::Templates,
    source: &resetctl::engine::lifecycle::PlaybookSource,
    injects: &[Inject],
    assumptions: Assumptions,
) -> CmdResult {
    let tenant = &stage.tenant;
    let console = Console::new(global);
    let reading = console.planning(
        "planning: reading the tenant",
        Arc::clone(&tenant.directory),
    );
    let planned = lifecycle
        .plan(
            tenant.as_ref(),
            source,
            PlanOptions {
                resolve: ResolveOptions {
                    csv_override: stage.targets.clone().or_else(|| args.targets.clone()),
                    skip_bad_rows: false,
                    strategy: resetctl::targeting::Strategy::Auto,
                },
                ..PlanOptions::default()
            },
        )
        .await;
    reading.finish();
    let planned = planned?;
    let id = planned.run.id.clone();
    let plan = Arc::clone(&planned.plan);
    let playbook = Arc::clone(&planned.playbook);
    let out = planned.out.clone();
    let notifier = Arc::new(comms::notifier(
        context,
        tenant,
        lifecycle,
        &planned,
        templates.catalog(),
    )?);
    let delivery = comms::capacity_lines(
        &comms::capacity(notifier.senders(), &planned),
        playbook.communications.deliver_within,
    );

    // Simulated operators approve; a silent one never answers.
    let required = playbook.guards.approvals_required;
    let silent = injects.contains(&Inject::SilentApprover) as u32;
    let mut approvals = Vec::new();
    for n in 1..=required {
        let name = format!("tabletop-operator-{n}");
        if n > required.saturating_sub(silent) {
            approvals.push(Approval {
                operator: name,
                simulated: true,
                decision: "never answered".into(),
            });
            continue;
        }
        let operator = Operator::new(
            OperatorName::parse(&name).map_err(|e| Failure::new(Exit::Config, e))?,
            SIMULATED_ORIGIN,
        );
        lifecycle.approve(&id, &operator).await?;
        approvals.push(Approval {
            operator: name,
            simulated: true,
            decision: "approved".into(),
        });
    }

    let mut findings = Findings {
        executed: None,
        refusals: Vec::new(),
        approvals,
        escalations: Vec::new(),
        delivery,
    };
    match lifecycle.gate(planned, notifier.as_ref()).await {
        Err(LifecycleError::Refused { refusals, .. }) => {
            findings.refusals = refusals.iter().map(ToString::to_string).collect();
        }
        Err(other) => return Err(other.into()),
        Ok(cleared) => {
            let announcer = comms::Announcer::new(Arc::clone(&notifier), cleared.planned());
            findings.escalations.extend(announcer.start().await);
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            let progress = Arc::new(Progress::default());
            let bars = console.execution(
                Arc::clone(&progress),
                Arc::clone(&tenant.directory),
                Some(notifier.stats()),
            );
            let executed = lifecycle
                .execute(
                    cleared,
                    tenant.as_ref(),
                    ExecuteOptions {
                        concurrency: resetctl::engine::execute::MAX_PIPELINES,
                        stop: stop_rx,
                        progress,
                        notifier: Arc::clone(&notifier)
                            as Arc<dyn resetctl::engine::notify::Notifier>,
                    },
                )
                .await;
            bars.finish();
            let executed = executed?;
            findings.escalations.extend(announcer.end(&executed).await);
            findings.executed = Some(executed);
        }
    }

    let report = build_report(
        lifecycle,
        stage,
        &plan,
        &playbook,
        &id.0,
        findings,
        templates,
        context,
        assumptions,
        injects,
    )
    .await?;
    let html_path = args
        .report
        .clone()
        .unwrap_or_else(|| out.join("tabletop.html"));
    let md_path = args
        .summary
        .clone()
        .unwrap_or_else(|| html_path.with_extension("md"));
    let html = report::html(&report).map_err(|e| Failure::new(Exit::Config, e))?;
    write(&html_path, &html)?;
    write(&md_path, &report::markdown(&report))?;

    // The emulator's own statistics beside the report's figures, so that a reader (and the
    // tests) can check the one against the other: 429s, users written, messages per channel.
    let emulator = match &stage.tenant.emulator {
        Some(emulator) if stage.simulated.is_none() => {
            let url = &emulator.info().inspect_url;
            emulator_figures(
                &inspect(url, "stats").await,
                &inspect(url, "writes").await,
                &inspect(url, "outbox").await,
            )
        }
        _ => serde_json::Value::Null,
    };
    let journal = lifecycle.store().journal(&id).await?;
    let users_written = users_written(&journal, &playbook);
    match global.output {
        OutputFormat::Json => outln!(
            "{}",
            serde_json::json!({
                "id": id,
                "headline": report.headline,
                "problems": report.problems,
                "report": html_path,
                "summary": md_path,
                "time_scale": report.time_scale,
                "projected_minutes": report.contain_minutes,
                "throttled": report.throttled,
                "writes": report.writes,
                "messages": report
                    .messages
                    .iter()
                    .map(|r| (r.label.clone(), r.value))
                    .collect::<BTreeMap<_, _>>(),
                "injects": report.injects,
                "users_written": users_written,
                "client_throttled": stage.tenant.directory.stats().throttled,
                "emulator": emulator,
            })
        ),
        // The one-line answer.
        OutputFormat::Text if console.quiet() => {
            outln!("{} Report: {}", report.headline, html_path.display());
        }
        OutputFormat::Text => {
            outln!("tabletop of {} on the {}", report.playbook, report.tenant);
            outln!("{}", report.headline);
            for p in &report.problems {
                outln!("  - {p}");
            }
            outln!("report: {}", html_path.display());
            outln!("summary: {}", md_path.display());
        }
    }
    Ok(if report.gate.iter().any(|g| g.starts_with("refused")) {
        Exit::Refused
    } else {
        Exit::Success
    })
}

/// Write a report file owner-only, replacing an earlier one.
fn write(path: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let fail = |e: std::io::Error| Failure::new(Exit::Config, format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        resetctl::files::create_dir_owner_only(dir).map_err(fail)?;
    }
    let mut file = resetctl::files::owner_only()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)
}

#[allow(clippy::too_many_arguments)]
async fn build_report(
    lifecycle: &Lifecycle<SqliteStore>,
    stage: &Stage,
    plan: &Plan,
    playbook: &Playbook,
    run_id: &str,
    findings: Findings,
    templates: &validate::Templates,
    context: &Context,
    assumptions: Assumptions,
    injects: &[Inject],
) -> Result<Report, Failure> {
    let tenant = &stage.tenant;
    let scale = tenant.time_scale.max(1.0);
    let count = |b: Bucket| plan.in_bucket(b).count() as u64;
    let buckets = [
        ("automated", Bucket::Automated),
        ("privileged (manual)", Bucket::Privileged),
        ("hybrid (manual password)", Bucket::Hybrid),
        ("disabled", Bucket::Disabled),
        ("excluded", Bucket::Excluded),
        ("remediated earlier", Bucket::Remediated),
    ]
    .into_iter()
    .map(|(label, b)| Row {
        label: label.into(),
        value: count(b),
    })
    .collect();
    let manual: Vec<_> = plan
        .users
        .iter()
        .filter(|u| matches!(u.bucket, Bucket::Privileged | Bucket::Hybrid))
        .collect();
    let manual_queue = manual
        .iter()
        .take(MANUAL_SHOWN)
        .map(|u| Manual {
            upn: u.upn.clone(),
            bucket: u.reason.to_string(),
        })
        .collect();

    // The timeline: when each user's last write ended, and each delivery began.
    let id = resetctl::store::RunId(run_id.to_owned());
    let journal = lifecycle.store().journal(&id).await?;
    let deliveries = lifecycle
        .store()
        .deliveries(run_id)
        .await
        .map_err(|e| Failure::new(Exit::Config, e))?;
    let start = journal
        .iter()
        .map(|e| e.intent_at)
        .chain(deliveries.iter().map(|d| d.intent_at))
        .min();
    let secs = |t: jiff::Timestamp| start.map_or(0.0, |s| t.duration_since(s).as_secs_f64());
    let mut finished: BTreeMap<&str, f64> = BTreeMap::new();
    for entry in &journal {
        // Containment is the writes; notices have their own timeline below.
        let notice = resetctl::engine::journal_key::StepKey::parse(&entry.step)
            .and_then(|k| k.step(playbook))
            .is_some_and(|s| matches!(s, Step::Notify { .. }));
        if let (Some(outcome), Some(at), false) = (entry.outcome, entry.outcome_at, notice)
            && outcome != Outcome::Skipped
        {
            let t = finished.entry(entry.user_id.as_str()).or_insert(0.0);
            *t = t.max(secs(at));
        }
    }
    let user_times: Vec<f64> = finished.values().copied().collect();
    // Messages by when the sink received them (the emulator's outbox: what a recipient's
    // provider accepted); a channel no sink saw (mail simulated for a configured tenant)
    // by when its delivery began, from the delivery journal.
    let sink = stage
        .sinks
        .as_ref()
        .or(Some(tenant))
        .and_then(|t| t.emulator.as_ref());
    let outbox = match sink {
        Some(emulator) => inspect(&emulator.info().inspect_url, "outbox").await,
        None => serde_json::Value::Null,
    };
    let mut per_channel: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for m in outbox["messages"].as_array().into_iter().flatten() {
        let at = m["time"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if let (Some(channel), Some(at), true) = (m["channel"].as_str(), at, m["delivered"] == true)
        {
            per_channel
                .entry(channel.to_owned())
                .or_default()
                .push(secs(at));
        }
    }
    let mut journaled: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for d in &deliveries {
        if d.state == Some(DeliveryState::Sent) {
            let channel = d.key.channel.split(['/', '#']).next().unwrap_or("");
            journaled
                .entry(channel.to_owned())
                .or_default()
                .push(secs(d.intent_at));
        }
    }
    for (channel, times) in journaled {
        per_channel.entry(channel).or_insert(times);
    }
    let contain_minutes = findings.executed.as_ref().map(|_| {
        timeline::projected_minutes(user_times.iter().copied().fold(0.0, f64::max), scale)
    });
    let users_series = timeline::cumulative("users written", &user_times, scale);
    // Graph's write quota, in users per projected minute.
    let writes_per_user =
        plan.estimate.directory_writes as f64 / (count(Bucket::Automated).max(1) as f64);
    let quota_users_per_minute =
        plan.estimate.writes_per_second / scale * 60.0 / writes_per_user.max(1.0);
    let x_end = users_series.points.last().map_or(1.0, |p| p.0);
    // The write bucket's capacity: every app's own, at most the tenant's.
    let bucket_writes = (tenant.quotas.app_write.count as f64 * f64::from(tenant.apps.max(1)))
        .min(tenant.quotas.tenant_write.count as f64);
    let ceiling = timeline::ceiling(
        bucket_writes / writes_per_user.max(1.0),
        quota_users_per_minute,
        user_times.len() as f64,
        x_end,
    );
    let users_chart = Chart {
        id: "users",
        title: "Users done over time, with the quota ceiling",
        x_label: "time since the first write (projected)",
        x_axis: XAxis::Minutes,
        y_label: "users done",
        series: &[users_series, ceiling],
    }
    .html()
    .map_err(|e| Failure::new(Exit::Config, e))?;
    let message_series: Vec<_> = per_channel
        .iter()
        .map(|(channel, times)| timeline::cumulative(channel, times, scale))
        .collect();
    let messages_chart = Chart {
        id: "messages",
        title: "Messages delivered per channel",
        x_label: "time since the first write (projected)",
        x_axis: XAxis::Minutes,
        y_label: "messages delivered",
        series: &message_series,
    }
    .html()
    .map_err(|e| Failure::new(Exit::Config, e))?;
    let messages = per_channel
        .iter()
        .map(|(channel, times)| Row {
            label: channel.clone(),
            value: times.len() as u64,
        })
        .collect();

    let recovery = readiness::sspr_recovery(plan);
    let hours = timeline::per_hour(&user_times, scale);
    let forecast = forecast::forecast(&hours, recovery, assumptions);
    // Both lines are read at the end of each hour, from zero before the first reset.
    let hourly = |name: &str, value: fn(&forecast::Hour) -> f64| timeline::Series {
        name: name.to_owned(),
        points: std::iter::once((0.0, 0.0))
            .chain(
                forecast
                    .hours
                    .iter()
                    .map(|h| (f64::from(h.hour + 1), value(h))),
            )
            .collect(),
        dashed: false,
    };
    let desk = [
        hourly("new tickets in the hour", |h| h.influx),
        hourly("backlog at the end of the hour", |h| h.backlog),
    ];
    let forecast_chart = Chart {
        id: "forecast",
        title: "Service desk: tickets arriving and backlog per hour",
        x_label: "time since the first reset (projected)",
        x_axis: XAxis::Hours,
        y_label: "tickets",
        series: &desk,
    }
    .html()
    .map_err(|e| Failure::new(Exit::Config, e))?;

    let mut write_throttled = 0;
    let (throttled, writes) = match (&stage.simulated, &tenant.emulator) {
        (Some(sim), _) => (
            tenant.directory.stats().throttled,
            sim.writes().len() as u64,
        ),
        (None, Some(emulator)) => {
            let stats = inspect(&emulator.info().inspect_url, "stats").await;
            write_throttled = tenant_write_throttled(&stats);
            (
                stats["throttled"].as_u64().unwrap_or(0),
                emulator.write_count() as u64,
            )
        }
        (None, None) => (tenant.directory.stats().throttled, 0),
    };

    let mut problems = Vec::new();
    let mut gate = Vec::new();
    let (outcomes, message_outcomes) = match &findings.executed {
        Some(executed) => {
            let r = &executed.report;
            let o = &r.outcomes;
            let m = &r.messages;
            // Notify steps are the messages, said below: counted once.
            let failed_writes = o.failed.saturating_sub(m.failed);
            if failed_writes > 0 {
                problems.push(format!(
                    "{failed_writes} step(s) failed (results.csv names them)"
                ));
            }
            let unknown_writes = o.manual_check.saturating_sub(m.to_check);
            if unknown_writes > 0 {
                problems.push(format!(
                    "{unknown_writes} step(s) have an unknown outcome: someone must check them"
                ));
            }
            if m.failed > 0 {
                problems.push(format!("{} message(s) could not be delivered", m.failed));
            }
            if m.to_check > 0 {
                problems.push(format!(
                    "{} message(s) need a person: no manager, or a mobile number that does not parse",
                    m.to_check
                ));
            }
            if let Some(by) = r.stopped_by {
                let why = match by {
                    "circuit_breaker" => {
                        "the circuit breaker tripped (the error rate rose above the playbook's \
                         guards.max_error_rate)"
                    }
                    "refused_wholesale" => "the tenant refused a step's writes wholesale",
                    other => other,
                };
                problems.insert(
                    0,
                    format!(
                        "the run stopped early: {why}; {} user(s) were not reset",
                        r.users.not_started
                    ),
                );
            }
            gate.push("passed: the guards held and the approvals were given".to_owned());
            (
                vec![
                    Row {
                        label: "succeeded".into(),
                        value: o.succeeded as u64,
                    },
                    Row {
                        label: "failed".into(),
                        value: o.failed as u64,
                    },
                    Row {
                        label: "to check by hand".into(),
                        value: o.manual_check as u64,
                    },
                    Row {
                        label: "skipped (condition false)".into(),
                        value: o.skipped as u64,
                    },
                    Row {
                        label: "not started".into(),
                        value: o.not_started as u64,
                    },
                ],
                vec![
                    Row {
                        label: "notices delivered".into(),
                        value: m.delivered as u64,
                    },
                    Row {
                        label: "notices not sent".into(),
                        value: m.not_sent as u64,
                    },
                    Row {
                        label: "notices to check".into(),
                        value: m.to_check as u64,
                    },
                    Row {
                        label: "notices failed".into(),
                        value: m.failed as u64,
                    },
                ],
            )
        }
        None => {
            problems.push(format!(
                "the run would not start: {}",
                findings.refusals.join("; ")
            ));
            gate.extend(findings.refusals.iter().map(|r| format!("refused: {r}")));
            (Vec::new(), Vec::new())
        }
    };
    if !manual.is_empty() {
        problems.push(format!(
            "{} privileged or synced user(s) are not reset automatically: people must handle \
             them (the manual queue)",
            manual.len()
        ));
    }
    if plan.unusable_mobiles > 0 {
        let share = plan.unusable_mobiles as f64 * 100.0 / plan.users.len().max(1) as f64;
        problems.push(format!(
            "{share:.0} % of targets ({}) have no usable mobile number: SMS cannot reach them",
            plan.unusable_mobiles
        ));
    }
    if !plan.unresolved.is_empty() {
        problems.push(format!(
            "{} target(s) of the breach list match no user in the tenant",
            plan.unresolved.len()
        ));
    }
    for line in findings
        .delivery
        .iter()
        .filter(|l| l.starts_with("warning: "))
    {
        problems.push(line.trim_start_matches("warning: ").to_owned());
    }
    if forecast.peak_backlog >= 1.0 {
        problems.push(format!(
            "the service desk's backlog peaks at {:.0} tickets{} (see the forecast's assumptions)",
            forecast.peak_backlog,
            match forecast.cleared_after_hours {
                Some(h) => format!(" and is cleared after {h} h"),
                None => " and is not cleared within 72 h".to_owned(),
            }
        ));
    }
    // Projected times are only as good as the exercise was quota-bound: say when the
    // machine, not Graph's quota, set the pace, and what the quota alone would take.
    let quota_minutes = plan.estimate.seconds * scale / 60.0;
    // A staged throttling storm, not the machine, is what slows the writes then.
    let storm = injects
        .iter()
        .any(|i| matches!(i, Inject::ThrottleStorm { .. }));
    let machine_bound = !storm
        && contain_minutes.is_some_and(|minutes| {
            let achieved = user_times.len() as f64 / minutes.max(f64::MIN_POSITIVE);
            minutes > 1.0 && achieved < 0.5 * quota_users_per_minute
        });
    if machine_bound {
        problems.push(format!(
            "this machine replayed the writes slower than Graph's quota allows ({:.0} users/min \
             against {quota_users_per_minute:.0}): the projected containment time is an upper \
             bound; at the quota the writes take about {} (a lower --time-scale gets closer)",
            user_times.len() as f64 / contain_minutes.unwrap_or(1.0).max(f64::MIN_POSITIVE),
            report::duration(quota_minutes)
        ));
    }
    let told = per_channel.values().flatten().copied().fold(0.0, f64::max);
    let stopped = findings
        .executed
        .as_ref()
        .is_some_and(|e| e.report.stopped_by.is_some());
    let headline = match contain_minutes {
        Some(minutes) if stopped => format!(
            "Not contained: the run stopped early after {} (projected), with {} user(s) not \
             reset (see below).",
            report::duration(minutes),
            findings
                .executed
                .as_ref()
                .map_or(0, |e| e.report.users.not_started)
        ),
        Some(minutes) => format!(
            "Contained in {}{} (projected): {} user(s) reset automatically, {} left to people; \
             the last message went out after {}.",
            if machine_bound { "at most " } else { "" },
            report::duration(minutes),
            count(Bucket::Automated),
            manual.len(),
            report::duration(timeline::projected_minutes(told, scale))
        ),
        None => "The run would not start: it was refused before any write (see below).".to_owned(),
    };
    let client_throttled = tenant.directory.stats().throttled;
    let write_log = match &tenant.emulator {
        Some(emulator) if stage.simulated.is_none() => {
            inspect(&emulator.info().inspect_url, "writes").await
        }
        _ => serde_json::Value::Null,
    };
    let mut inject_lines = Vec::new();
    for inject in injects {
        let coped = match inject {
            Inject::NoMobile { .. } => format!(
                "{} of {} automated user(s) got a text message; the others could be told only \
                 over the playbook's other channels",
                per_channel.get("sms").map_or(0, Vec::len),
                count(Bucket::Automated)
            ),
            Inject::SilentApprover => match &findings.executed {
                Some(_) => "the run still started: the playbook requires fewer approvals".into(),
                None => {
                    "the run did not start: the approvals it requires were not all given".into()
                }
            },
            Inject::ThrottleStorm { .. } => storm_finding(
                write_throttled,
                throttled,
                client_throttled,
                contain_minutes,
                quota_minutes,
                stopped,
            ),
            Inject::ChannelOutage { channel } => outage_finding(channel.as_str(), &deliveries),
            Inject::PrivilegedInList | Inject::SyncedUser => {
                match stage.staged.iter().find(|(i, _)| i == inject) {
                    Some((_, picked)) => staged_finding(*inject, picked, plan, &write_log),
                    None => "no such user could be staged".to_owned(),
                }
            }
        };
        inject_lines.push(format!("{}: {coped}", inject.describe()));
    }

    Ok(Report {
        playbook: playbook.name.clone(),
        playbook_sha256: playbook.sha256.clone(),
        tenant: stage.description.clone(),
        run_id: run_id.to_owned(),
        generated_at: jiff::Timestamp::now()
            .strftime("%-d %b %Y, %H:%M UTC")
            .to_string(),
        time_scale: scale,
        contain_minutes,
        headline,
        problems,
        injects: inject_lines,
        buckets,
        outcomes,
        messages,
        message_outcomes,
        manual_queue,
        manual_total: manual.len() as u64,
        approvals: findings.approvals,
        gate,
        escalations: findings.escalations,
        delivery_estimates: findings.delivery,
        previews: previews(playbook, templates, context, tenant),
        forecast,
        throttled,
        writes,
        writes_simulated: stage.simulated.is_some(),
        users_chart,
        messages_chart,
        forecast_chart,
    })
}

/// Users the run store says were written to: those with a succeeded step that always
/// writes to the user (`revoke_sessions`, `reset_password`, `temporary_access_pass`,
/// `add_to_group`). A method removal that found nothing to remove writes nothing, and
/// `confirm_compromised` and notices are not writes to the user object.
fn users_written(journal: &[resetctl::store::JournalEntry], playbook: &Playbook) -> usize {
    journal
        .iter()
        .filter(|e| e.outcome == Some(Outcome::Succeeded))
        .filter(|e| {
            resetctl::engine::journal_key::StepKey::parse(&e.step)
                .and_then(|k| k.step(playbook))
                .is_some_and(|s| {
                    matches!(
                        s,
                        Step::RevokeSessions
                            | Step::ResetPassword { .. }
                            | Step::TemporaryAccessPass { .. }
                            | Step::AddToGroup { .. }
                    )
                })
        })
        .map(|e| e.user_id.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// The emulator's own counts, from its inspection API: 429s answered, users with an
/// applied write of the kinds [`users_written`] counts, messages delivered per channel.
fn emulator_figures(
    stats: &serde_json::Value,
    writes: &serde_json::Value,
    outbox: &serde_json::Value,
) -> serde_json::Value {
    let users: std::collections::BTreeSet<&str> = writes["writes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["applied"] == true)
        .filter(|w| {
            // The same writes the run store's count takes: the password (PATCH of the
            // user), sessions, a pass, a membership; not a mail sent from a mailbox.
            let path = w["path"].as_str().unwrap_or("");
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            matches!(
                (w["method"].as_str(), segments.as_slice()),
                (Some("PATCH"), ["users", _])
                    | (Some("POST"), ["users", _, "revokeSignInSessions"])
                    | (
                        Some("POST"),
                        ["users", _, "authentication", "temporaryAccessPassMethods"]
                    )
                    | (Some("POST"), ["groups", _, "members", "$ref"])
            )
        })
        .filter_map(|w| w["target"].as_str())
        .collect();
    let mut delivered: BTreeMap<&str, u64> = BTreeMap::new();
    for m in outbox["messages"].as_array().into_iter().flatten() {
        if let (Some(channel), true) = (m["channel"].as_str(), m["delivered"] == true) {
            *delivered.entry(channel).or_default() += 1;
        }
    }
    serde_json::json!({
        "throttled": stats["throttled"],
        "write_throttled": tenant_write_throttled(stats),
        "users_written": users.len(),
        "delivered": delivered,
    })
}

/// Requests the emulator's tenant-wide write bucket answered 429 (`/_emulator/stats`).
fn tenant_write_throttled(stats: &serde_json::Value) -> u64 {
    stats["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["bucket"] == "tenant/writes")
        .and_then(|b| b["throttled"].as_u64())
        .unwrap_or(0)
}

/// How the run coped with a throttling storm: the 429s (the emulator's count, and the
/// client's) and what they cost against the time the quota alone allows.
fn storm_finding(
    write_throttled: u64,
    throttled: u64,
    client_throttled: u64,
    contain_minutes: Option<f64>,
    quota_minutes: f64,
    stopped: bool,
) -> String {
    let answered = format!(
        "Graph answered {write_throttled} write(s) 429 Too Many Requests on the tenant's write \
         quota ({throttled} 429s in all; resetctl counted {client_throttled} and waited each \
         Retry-After out)"
    );
    match contain_minutes {
        None => format!("{answered}; the run did not start, so nothing was slowed"),
        Some(_) if stopped => format!("{answered}; the run stopped early (see above)"),
        Some(minutes) => format!(
            "{answered}; the run still finished: the writes took {} (projected) where the \
             quota alone allows {}, about {} more",
            report::duration(minutes),
            report::duration(quota_minutes),
            report::duration((minutes - quota_minutes).max(0.0))
        ),
    }
}

/// How the run coped with a channel that was down: the notices it could not deliver and
/// the users no channel reached, whom someone must now contact by hand.
fn outage_finding(
    channel: &str,
    deliveries: &[resetctl::comms::delivery::DeliveryRecord],
) -> String {
    use std::collections::BTreeSet;
    let on = |d: &&resetctl::comms::delivery::DeliveryRecord| {
        d.key.channel.split(['/', '#']).next() == Some(channel)
    };
    let failed: Vec<_> = deliveries
        .iter()
        .filter(on)
        .filter(|d| d.state == Some(DeliveryState::Failed))
        .collect();
    let users: BTreeSet<&str> = failed
        .iter()
        .filter(|d| !d.key.user_id.is_empty())
        .map(|d| d.key.user_id.as_str())
        .collect();
    let reached: BTreeSet<&str> = deliveries
        .iter()
        .filter(|d| d.state == Some(DeliveryState::Sent) && !d.key.user_id.is_empty())
        .map(|d| d.key.user_id.as_str())
        .collect();
    let by_hand = users.iter().filter(|u| !reached.contains(*u)).count();
    let run_level: BTreeSet<&str> = failed
        .iter()
        .filter(|d| d.key.user_id.is_empty())
        .map(|d| d.key.step.as_str())
        .collect();
    let sent = deliveries
        .iter()
        .filter(on)
        .filter(|d| d.state == Some(DeliveryState::Sent))
        .count();
    let mut line = format!(
        "{} {channel} message(s) were not delivered ({sent} were); {} user(s) missed a \
         notice, of whom {} were reached over another channel and {by_hand} by none: those \
         {by_hand} are manual follow-ups (results.csv lists their failed notify steps)",
        failed.len(),
        users.len(),
        users.len() - by_hand,
    );
    if !run_level.is_empty() {
        line.push_str(&format!(
            "; run-level messages that did not go out over {channel}: {}",
            run_level.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    line
}

/// Where a staged user (an admin, a synced user) ended up: the plan's bucket and reason,
/// its steps, and what the emulator's write log shows was written to it.
fn staged_finding(
    inject: Inject,
    picked: &Picked,
    plan: &Plan,
    write_log: &serde_json::Value,
) -> String {
    let who = if picked.roles.is_empty() {
        picked.upn.clone()
    } else {
        format!("{} ({})", picked.upn, picked.roles.join(", "))
    };
    let Some(user) = plan.users.iter().find(|u| u.id == picked.id) else {
        return format!("{who} was added to the targets but the plan did not resolve it");
    };
    let writes: Vec<&str> = write_log["writes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["target"] == picked.id.as_str() && w["applied"] == true)
        .filter_map(|w| w["path"].as_str())
        .collect();
    let written = if writes.is_empty() {
        "the emulator's write log shows no write to it".to_owned()
    } else {
        let mut kinds: Vec<&str> = writes
            .iter()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        format!(
            "the emulator's write log shows {} write(s) to it ({})",
            writes.len(),
            kinds.join(", ")
        )
    };
    match (inject, user.bucket) {
        (Inject::SyncedUser, Bucket::Hybrid) if !user.steps.is_empty() => format!(
            "{who} was handled per hybrid_users: cloud_actions: its {} cloud-side step(s) \
             ran ({}) and its password went to the manual queue ({}); {written}",
            user.steps.len(),
            user.steps.join(", "),
            user.reason
        ),
        (_, Bucket::Privileged | Bucket::Hybrid) => format!(
            "{who} landed in the manual queue ({}) and nothing was done to it automatically; \
             {written}",
            user.reason
        ),
        (_, bucket) => format!(
            "{who} was planned in the {bucket:?} bucket ({}); {written}",
            user.reason
        ),
    }
}

/// What the emulator's inspection API says about `what` (`stats`, `outbox`); null when it
/// cannot be read.
async fn inspect(inspect_url: &str, what: &str) -> serde_json::Value {
    let fetch = async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?;
        client
            .get(format!("{inspect_url}/{what}"))
            .send()
            .await
            .ok()?
            .json::<serde_json::Value>()
            .await
            .ok()
    };
    fetch.await.unwrap_or_default()
}

/// Every (template, channel) the playbook sends, rendered for one sample user.
fn previews(
    playbook: &Playbook,
    templates: &validate::Templates,
    context: &Context,
    tenant: &Tenant,
) -> Vec<Preview> {
    let mut used: Vec<(String, Channel)> = Vec::new();
    let mut add = |template: &str, channels: &[Channel]| {
        for c in channels {
            let key = (template.to_owned(), *c);
            if !used.contains(&key) {
                used.push(key);
            }
        }
    };
    for step in &playbook.steps {
        if let Step::Notify {
            template, channels, ..
        } = &step.step
        {
            add(template, channels);
        }
    }
    let c = &playbook.communications;
    for message in [&c.helpdesk_brief, &c.manual_queue, &c.soc_summary]
        .into_iter()
        .flatten()
    {
        add(&message.template, &message.channels);
    }
    let catalog = templates.catalog();
    let org = tenant
        .messaging
        .as_ref()
        .and_then(|m| m.organisation.clone())
        .or_else(|| context.config.organisation.clone())
        .unwrap_or_else(resetctl::comms::template::sample_organisation);
    let person = resetctl::comms::context::Person::sample();
    used.into_iter()
        .filter(|(_, channel)| *channel != Channel::Webhook)
        .map(|(template, channel)| {
            let form = Form::for_channel(channel);
            let meta = catalog.info(&template).and_then(|i| i.meta.as_ref().ok());
            let rendered = match meta {
                Some(meta) => super::render::render_one(
                    &catalog,
                    &template,
                    meta.context,
                    form,
                    None,
                    &org,
                    &person,
                    &person,
                    false,
                    meta.secret
                        .map(resetctl::comms::context::SecretContext::sample),
                ),
                None => Err(format!("template {template} has no description")),
            };
            let (subject, body) = match rendered {
                Ok(Content::Email { subject, text, .. }) => (subject, text),
                Ok(Content::Sms { text }) => (String::new(), text),
                Ok(Content::Card { card, summary }) => (
                    summary,
                    serde_json::to_string_pretty(&card).unwrap_or_default(),
                ),
                Ok(Content::Json(value)) => (
                    String::new(),
                    serde_json::to_string_pretty(&value).unwrap_or_default(),
                ),
                Err(e) => ("could not be rendered".into(), e),
            };
            Preview {
                template,
                form: form.as_str().to_owned(),
                subject,
                body,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_tenants_run_faster_so_the_exercise_stays_short() {
        assert_eq!(default_time_scale(2_000), 133.0);
        assert_eq!(default_time_scale(100), 60.0);
        assert!(default_time_scale(10_000) > 600.0);
    }
}
