//! `resetctl runs`: list, show and approve stored runs, and end temporary memberships.
//!
//! `runs show` takes a run's id, a unique prefix of it, or `latest`. Times are UTC and say
//! so (`Z`).
//!
//! An approval is bound to the run's plan hash: `run --execute` counts only approvals of the
//! exact plan it is about to carry out. Every approval is written to the audit trail.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::context::Context;
use super::{CmdResult, Exit, Failure, paths};
use crate::cli::{GlobalArgs, OutputFormat, RunsAction, RunsArgs};
use resetctl::audit::AuditHandle;
use resetctl::engine::expire;
use resetctl::engine::lifecycle::{ApprovalReceipt, Lifecycle};
use resetctl::engine::operator::OperatorName;
use resetctl::engine::plan::Plan;
use resetctl::store::{Facts, JournalEntry, RunId, RunRecord, RunStore, SqliteStore};
use resetctl::targeting::Bucket;

/// Dispatch `runs list | show | approve | expire`.
pub async fn run(global: &GlobalArgs, args: RunsArgs) -> CmdResult {
    let action = args.action.unwrap_or(RunsAction::List);
    let path = paths::store_path(args.store)?;
    if !path.exists() {
        // Reading commands must not create a store as a side effect.
        return match action {
            RunsAction::List => {
                print_list(global, &[]);
                Ok(Exit::Success)
            }
            RunsAction::Expire { .. } => {
                print_expired(global, &[], 0, 0);
                Ok(Exit::Success)
            }
            _ => Err(Failure::new(
                Exit::Invalid,
                format!(
                    "no run store at {}: no run has been planned yet",
                    path.display()
                ),
            )),
        };
    }
    let context = Context::load(global)?;
    let store = SqliteStore::open(&path)?;
    match action {
        RunsAction::List => {
            let runs = store.runs().await?;
            print_list(global, &runs);
            Ok(Exit::Success)
        }
        RunsAction::Show { run_id } => {
            let id = find_run(&store, &run_id).await?;
            show(global, &store, &id).await
        }
        RunsAction::Approve { run_id, operator } => {
            approve(global, &context, store, &RunId(run_id), &operator).await
        }
        RunsAction::Expire { at } => expire(global, &context, &store, at.as_deref()).await,
    }
}

/// The run `text` names: an exact id, `latest` (the newest run), or a prefix of exactly one
/// run's id.
async fn find_run(store: &SqliteStore, text: &str) -> Result<RunId, Failure> {
    let runs = store.runs().await?;
    if text == "latest" {
        return runs
            .first()
            .map(|r| r.id.clone())
            .ok_or_else(|| Failure::new(Exit::Invalid, "no runs yet: `latest` names none"));
    }
    if let Some(run) = runs.iter().find(|r| r.id.0 == text) {
        return Ok(run.id.clone());
    }
    let matching: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| !text.is_empty() && r.id.0.starts_with(text))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(Failure::new(
            Exit::Invalid,
            format!("no run with id {text}"),
        )),
        many => {
            let ids: Vec<&str> = many.iter().take(10).map(|r| r.id.0.as_str()).collect();
            let more = if many.len() > ids.len() { ", ..." } else { "" };
            Err(Failure::new(
                Exit::Invalid,
                format!(
                    "{text} names {} runs ({}{more}): give more of the id",
                    many.len(),
                    ids.join(", ")
                ),
            ))
        }
    }
}

/// Remove every temporary group membership that is due, run by run.
async fn expire(
    global: &GlobalArgs,
    context: &Context,
    store: &SqliteStore,
    at: Option<&str>,
) -> CmdResult {
    let at: Timestamp = match at {
        Some(text) => text.parse().map_err(|e| {
            Failure::new(
                Exit::Invalid,
                format!("--at `{text}` is not an RFC 3339 time: {e}"),
            )
        })?,
        None => Timestamp::now(),
    };
    let audit = context.open_trail(store).await?.handle;
    let result = expire_runs(global, context, store, &audit, at).await;
    if let Err(err) = audit.close().await {
        eoutln!("warning: audit trail: {err}");
    }
    result
}

async fn expire_runs(
    global: &GlobalArgs,
    context: &Context,
    store: &SqliteStore,
    audit: &AuditHandle,
    at: Timestamp,
) -> CmdResult {
    let mut tenants: BTreeMap<String, super::tenant::Tenant> = BTreeMap::new();
    let mut failed = 0;
    let mut removed = 0;
    let mut per_run = Vec::new();
    let runs = store.runs().await?;
    for run in runs
        .iter()
        .filter(|r| r.status != resetctl::store::RunStatus::Planned)
    {
        let journal = store.journal(&run.id).await?;
        if expire::due(&journal, at).is_empty() {
            continue;
        }
        if !tenants.contains_key(&run.tenant) {
            let tenant = context.connect(Some(&run.tenant)).await?;
            tenants.insert(run.tenant.clone(), tenant);
        }
        let tenant = &tenants[&run.tenant];
        if tenant.emulator.is_some() {
            per_run.push(Expired {
                id: run.id.clone(),
                removed: 0,
                failed: 0,
                skipped: Some("on the built-in demo tenant, which starts afresh each time"),
            });
            continue;
        }
        let summary = expire::expire(store, tenant.directory.as_ref(), audit, &run.id, at).await?;
        per_run.push(Expired {
            id: run.id.clone(),
            removed: summary.removed,
            failed: summary.failed,
            skipped: None,
        });
        removed += summary.removed;
        failed += summary.failed;
    }
    for (_, tenant) in tenants {
        tenant.close().await;
    }
    print_expired(global, &per_run, removed, failed);
    Ok(if failed == 0 {
        Exit::Success
    } else {
        Exit::Partial
    })
}

/// What `runs expire` did for one run.
#[derive(Serialize)]
struct Expired {
    id: RunId,
    removed: usize,
    failed: usize,
    skipped: Option<&'static str>,
}

fn print_expired(global: &GlobalArgs, runs: &[Expired], removed: usize, failed: usize) {
    if global.output == OutputFormat::Json {
        outln!(
            "{}",
            serde_json::json!({ "runs": runs, "removed": removed, "failed": failed })
        );
        return;
    }
    for run in runs {
        match run.skipped {
            Some(why) => outln!("run {}: {why}; skipped", run.id),
            None => outln!(
                "run {}: {} membership(s) removed, {} failed",
                run.id,
                run.removed,
                run.failed
            ),
        }
    }
    if removed == 0 && failed == 0 {
        outln!("nothing due");
    }
}

/// A run as `runs list` and `runs show` print it in JSON, with the key names `plan` and
/// `run` use (`id`, `playbook: {name, path}`, ...).
#[derive(Serialize)]
struct RunJson<'a> {
    id: &'a RunId,
    status: resetctl::store::RunStatus,
    ticket: Option<&'a str>,
    tenant: &'a str,
    playbook: PlaybookJson<'a>,
    plan_hash: &'a str,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// The playbook of a run.
#[derive(Serialize)]
struct PlaybookJson<'a> {
    name: &'a str,
    path: &'a str,
}

impl<'a> From<&'a RunRecord> for RunJson<'a> {
    fn from(run: &'a RunRecord) -> Self {
        RunJson {
            id: &run.id,
            status: run.status,
            ticket: run.ticket.as_deref(),
            tenant: &run.tenant,
            playbook: PlaybookJson {
                name: &run.playbook_name,
                path: &run.playbook_path,
            },
            plan_hash: &run.plan_hash,
            created_at: run.created_at,
            updated_at: run.updated_at,
        }
    }
}

fn print_list(global: &GlobalArgs, runs: &[RunRecord]) {
    if global.output == OutputFormat::Json {
        let runs: Vec<RunJson<'_>> = runs.iter().map(RunJson::from).collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&runs).unwrap_or_default()
        );
        return;
    }
    if runs.is_empty() {
        outln!("no runs");
        return;
    }
    outln!(
        "{:<26} {:<11} {:<21} {:<10} PLAYBOOK",
        "RUN",
        "STATUS",
        "CREATED (UTC)",
        "TENANT"
    );
    for run in runs {
        outln!(
            "{:<26} {:<11} {:<21} {:<10} {}",
            run.id,
            run.status.as_str(),
            run.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
            run.tenant,
            run.playbook_name
        );
    }
}

/// What `runs show` reports about one run: the run's own fields (`id`, `status`, ...) at
/// the top, then its plan's buckets, approvals, execution attempts and journal.
#[derive(Serialize)]
struct RunView<'a> {
    #[serde(flatten)]
    run: RunJson<'a>,
    attempts: Vec<resetctl::store::Attempt>,
    buckets: BTreeMap<&'static str, usize>,
    approvals: Vec<resetctl::store::Approval>,
    approvals_of_this_plan: usize,
    journal: BTreeMap<String, usize>,
}

async fn show(global: &GlobalArgs, store: &SqliteStore, id: &RunId) -> CmdResult {
    let run = store.run(id).await?;
    let plan_json = store.plan_json(id).await?;
    let plan: Plan = serde_json::from_str(&plan_json).map_err(|err| {
        Failure::new(
            Exit::Invalid,
            format!("run {id}: the stored plan cannot be read: {err}"),
        )
    })?;
    let approvals = store.approvals(id).await?;
    let attempts = store.attempts(id).await?;
    let journal = store.journal(id).await?;
    let buckets = Bucket::ALL
        .into_iter()
        .map(|b| (b.as_str(), plan.count(b)))
        .collect();
    let view = RunView {
        approvals_of_this_plan: approvals
            .iter()
            .filter(|a| a.plan_hash == run.plan_hash)
            .count(),
        run: RunJson::from(&run),
        attempts,
        buckets,
        approvals,
        journal: journal_counts(&journal),
    };
    if global.output == OutputFormat::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&view).unwrap_or_default()
        );
        return Ok(Exit::Success);
    }
    outln!("run       {}", run.id);
    outln!("status    {}", run.status.as_str());
    outln!("playbook  {} ({})", run.playbook_name, run.playbook_path);
    outln!("tenant    {}", run.tenant);
    if let Some(ticket) = &run.ticket {
        outln!("ticket    {ticket}");
    }
    outln!("created   {}", run.created_at);
    outln!("plan      {}", run.plan_hash);
    outln!("users     {}", plan.users.len());
    for (bucket, count) in &view.buckets {
        outln!("  {bucket:<11} {count}");
    }
    outln!(
        "estimate  {} directory writes, {:.0} s: up to {} at once, then {:.0} writes/s",
        plan.estimate.directory_writes,
        plan.estimate.seconds,
        plan.estimate.at_once,
        plan.estimate.writes_per_second
    );
    outln!("approvals {} of this plan", view.approvals_of_this_plan);
    for approval in &view.approvals {
        let stale = if approval.plan_hash == run.plan_hash {
            ""
        } else {
            " (another plan)"
        };
        outln!("  {} at {}{stale}", approval.operator, approval.approved_at);
    }
    for attempt in &view.attempts {
        let end = match &attempt.end {
            Some(end) => format!(
                "to {} ({}, {:.1} s)",
                end.ended_at,
                end.status.as_str(),
                end.ended_at
                    .duration_since(attempt.started_at)
                    .as_secs_f64()
            ),
            None => "(no end recorded: running, or its process died)".to_owned(),
        };
        outln!("attempt {} from {} {end}", attempt.n, attempt.started_at);
    }
    if !view.journal.is_empty() {
        outln!("journal");
        for (outcome, count) in &view.journal {
            outln!("  {outcome:<13} {count}");
        }
    }
    Ok(Exit::Success)
}

fn journal_counts(journal: &[JournalEntry]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for entry in journal {
        // A refused write left open for the resume is not in flight: nothing was applied.
        let open = match entry.facts {
            Some(Facts::Refused) => "refused_left_for_resume",
            _ => "in_flight",
        };
        let key = entry.outcome.map_or(open, |o| o.as_str()).to_owned();
        *counts.entry(key).or_default() += 1;
    }
    counts
}

async fn approve(
    global: &GlobalArgs,
    context: &Context,
    store: SqliteStore,
    id: &RunId,
    operator: &str,
) -> CmdResult {
    let name = OperatorName::parse(operator)
        .map_err(|e| Failure::new(Exit::Invalid, format!("--as: {e}")))?;
    let approver = context.operator.named(name);
    let trail = context.open_trail(&store).await?;
    let lifecycle = Lifecycle::new(
        std::sync::Arc::new(store),
        trail,
        context.operator.clone(),
        paths::data_dir()?.join("runs"),
    );
    let result = lifecycle.approve(id, &approver).await;
    lifecycle.close().await?;
    let ApprovalReceipt { approval, count } = result?;
    if global.output == OutputFormat::Json {
        outln!(
            "{}",
            serde_json::json!({"id": id, "operator": approval.operator, "plan_hash": approval.plan_hash, "approvals": count})
        );
    } else {
        outln!(
            "approved run {id} (plan {}) as {}; {count} approval(s) of this plan",
            &approval.plan_hash[..approval.plan_hash.len().min(12)],
            approval.operator
        );
    }
    Ok(Exit::Success)
}
