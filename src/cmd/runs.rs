//! `resetctl runs`: list, show and approve stored runs.
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
use resetctl::engine::operator::{Operator, OperatorName};
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
                println!("no runs, nothing to expire");
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
        RunsAction::Show { run_id } => show(global, &store, &RunId(run_id)).await,
        RunsAction::Approve { run_id, operator } => {
            approve(global, &context, store, &RunId(run_id), &operator).await
        }
        RunsAction::Expire { at } => expire(&context, &store, at.as_deref()).await,
    }
}

/// Remove every temporary group membership that is due, run by run.
async fn expire(context: &Context, store: &SqliteStore, at: Option<&str>) -> CmdResult {
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
    let result = expire_runs(context, store, &audit, at).await;
    if let Err(err) = audit.close().await {
        eprintln!("warning: audit trail: {err}");
    }
    result
}

async fn expire_runs(
    context: &Context,
    store: &SqliteStore,
    audit: &AuditHandle,
    at: Timestamp,
) -> CmdResult {
    let mut tenants: BTreeMap<String, super::tenant::Tenant> = BTreeMap::new();
    let mut failed = 0;
    let mut removed = 0;
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
            println!(
                "run {}: on the built-in demo tenant, which starts afresh each time; skipped",
                run.id
            );
            continue;
        }
        let summary = expire::expire(store, tenant.directory.as_ref(), audit, &run.id, at).await?;
        println!(
            "run {}: {} membership(s) removed, {} failed",
            run.id, summary.removed, summary.failed
        );
        removed += summary.removed;
        failed += summary.failed;
    }
    for (_, tenant) in tenants {
        tenant.close().await;
    }
    if removed == 0 && failed == 0 {
        println!("nothing due");
    }
    Ok(if failed == 0 {
        Exit::Success
    } else {
        Exit::Partial
    })
}

fn print_list(global: &GlobalArgs, runs: &[RunRecord]) {
    if global.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(runs).unwrap_or_default());
        return;
    }
    if runs.is_empty() {
        println!("no runs");
        return;
    }
    println!(
        "{:<26} {:<9} {:<20} {:<10} PLAYBOOK",
        "RUN", "STATUS", "CREATED", "TENANT"
    );
    for run in runs {
        println!(
            "{:<26} {:<9} {:<20} {:<10} {}",
            run.id,
            run.status.as_str(),
            run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            run.tenant,
            run.playbook_name
        );
    }
}

/// What `runs show` reports about one run.
#[derive(Serialize)]
struct RunView<'a> {
    run: &'a RunRecord,
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
        run: &run,
        buckets,
        approvals,
        journal: journal_counts(&journal),
    };
    if global.output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view).unwrap_or_default()
        );
        return Ok(Exit::Success);
    }
    println!("run       {}", run.id);
    println!("status    {}", run.status.as_str());
    println!("playbook  {} ({})", run.playbook_name, run.playbook_path);
    println!("tenant    {}", run.tenant);
    println!("created   {}", run.created_at);
    println!("plan      {}", run.plan_hash);
    println!("users     {}", plan.users.len());
    for (bucket, count) in &view.buckets {
        println!("  {bucket:<11} {count}");
    }
    println!(
        "estimate  {} directory writes, {:.0} s at {:.0} writes/s",
        plan.estimate.directory_writes, plan.estimate.seconds, plan.estimate.writes_per_second
    );
    println!("approvals {} of this plan", view.approvals_of_this_plan);
    for approval in &view.approvals {
        let stale = if approval.plan_hash == run.plan_hash {
            ""
        } else {
            " (another plan)"
        };
        println!("  {} at {}{stale}", approval.operator, approval.approved_at);
    }
    if !view.journal.is_empty() {
        println!("journal");
        for (outcome, count) in &view.journal {
            println!("  {outcome:<13} {count}");
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
    let approver = Operator::new(name, &context.operator.origin);
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
        println!(
            "{}",
            serde_json::json!({"run": id, "operator": approval.operator, "plan_hash": approval.plan_hash, "approvals": count})
        );
    } else {
        println!(
            "approved run {id} (plan {}) as {}; {count} approval(s) of this plan",
            &approval.plan_hash[..approval.plan_hash.len().min(12)],
            approval.operator
        );
    }
    Ok(Exit::Success)
}
