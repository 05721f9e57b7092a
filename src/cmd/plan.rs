//! `resetctl plan`: resolve and partition a playbook's targets, store the plan as a run that
//! operators can approve, and write `plan.json`, `targets.csv` and `manual-queue.csv`.
//! Read-only towards the tenant.

use std::sync::Arc;

use resetctl::engine::gate;
use resetctl::engine::lifecycle::{PlanOptions, PlannedRun};
use resetctl::engine::plan::Plan;
use resetctl::targeting::{Bucket, ResolveOptions, Strategy};

use super::console::Console;
use super::context::Context;
use super::{CmdResult, Exit, validate};
use crate::cli::{GlobalArgs, OutputFormat, PlanArgs, ResolveBy};

/// `resetctl plan`.
pub async fn run(global: &GlobalArgs, args: PlanArgs) -> CmdResult {
    let context = Context::load(global)?;
    let templates = validate::Templates::new(&context.config, args.templates.as_deref())?;
    let source = validate::load_playbook(&args.playbook, &templates)?;
    let tenant = context
        .connect_read_only(args.tenant.tenant.as_deref())
        .await?;
    let lifecycle = match context.lifecycle(args.store).await {
        Ok(lifecycle) => lifecycle.with_ticket(args.ticket),
        Err(failure) => {
            tenant.close().await;
            return Err(failure);
        }
    };
    let console = Console::new(global);
    let reading = console.planning(
        "planning: reading the tenant",
        Arc::clone(&tenant.directory),
    );
    let result = lifecycle
        .plan(
            tenant.as_ref(),
            &source,
            PlanOptions {
                resolve: ResolveOptions {
                    csv_override: args.targets,
                    skip_bad_rows: args.skip_bad_rows,
                    strategy: match args.resolve_by {
                        None => Strategy::Auto,
                        Some(ResolveBy::Lookup) => Strategy::Lookup,
                        Some(ResolveBy::Listing) => Strategy::Listing,
                    },
                },
                out: args.out,
                overwrite: args.overwrite,
                include_remediated: args.include_remediated,
                skip_report_only_reads: false,
            },
        )
        .await;
    reading.finish();
    let tenant_emulated = tenant.emulated;
    // How long each channel needs for the plan's messages (nothing is sent; a channel whose
    // secret is missing here only leaves its estimate out).
    let delivery = match &result {
        Ok(planned) => super::comms::capacity_of(&context, &tenant, planned).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    tenant.close().await;
    if let Err(err) = lifecycle.close().await {
        eoutln!("warning: audit trail: {err}");
    }
    let planned = result?;
    let within = planned.playbook.communications.deliver_within;
    match global.output {
        OutputFormat::Json => {
            let mut doc = plan_json(&planned, tenant_emulated);
            doc["delivery"] = serde_json::to_value(&delivery).unwrap_or_default();
            outln!("{doc}");
        }
        OutputFormat::Text if console.quiet() => {
            // The one-line answer.
            let plan = &planned.plan;
            outln!(
                "plan {}: {} user(s) to reset automatically, {} left to people, {} unresolved \
                 (files in {})",
                planned.run.id,
                gate::automated(plan),
                plan.in_bucket(Bucket::Privileged).count() + plan.in_bucket(Bucket::Hybrid).count(),
                plan.unresolved.len(),
                planned.out.display()
            );
        }
        OutputFormat::Text => {
            print_plan(global, &planned, tenant_emulated);
            for line in super::comms::capacity_lines(&delivery, within) {
                outln!("{line}");
            }
        }
    }
    // The process exits next; freeing a million planned users one by one would only add
    // half a second before the prompt returns.
    std::mem::forget(planned);
    Ok(Exit::Success)
}

/// The plan as one JSON document (`id` is the run's), for `plan` and `run` under
/// `--output json`.
pub fn plan_json(planned: &PlannedRun, emulated: bool) -> serde_json::Value {
    let plan = &planned.plan;
    serde_json::json!({
        "id": planned.run.id,
        "emulated": emulated,
        "ticket": planned.run.ticket,
        "plan_hash": planned.run.plan_hash,
        "playbook": {
            "name": plan.playbook_name,
            "path": planned.playbook_path,
            "sha256": plan.playbook_sha256,
        },
        "tenant": plan.tenant,
        "tenant_users": plan.tenant_users,
        "buckets": bucket_counts(plan).into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "automated_with_steps": gate::automated(plan),
        "hybrid_with_cloud_steps": hybrid_with_steps(plan),
        "remediated_within_secs": planned.playbook.guards.remediated_within.as_secs(),
        "unresolved": plan.unresolved.len(),
        "bad_rows": plan.bad_rows.len(),
        "unusable_mobiles": plan.unusable_mobiles,
        "recovery": plan.recovery,
        "warnings": plan.recovery.as_ref().map(|r| r.warnings()).unwrap_or_default(),
        "estimate": plan.estimate,
        "resolved_by": plan.resolved_by,
        "out": planned.out,
    })
}

/// The plan summary: buckets, unresolved targets, estimate, where the files are.
pub fn print_plan(global: &GlobalArgs, planned: &PlannedRun, emulated: bool) {
    let plan = &planned.plan;
    if global.output == OutputFormat::Json {
        outln!("{}", plan_json(planned, emulated));
        return;
    }
    if emulated {
        outln!(
            "EMULATED TENANT {}: a rehearsal, no real directory is read or written",
            plan.tenant
        );
    }
    outln!(
        "plan      {} ({})",
        planned.run.id,
        &planned.run.plan_hash[..12]
    );
    outln!(
        "playbook  {} ({})",
        plan.playbook_name,
        planned.playbook_path.display()
    );
    outln!("tenant    {} ({} users)", plan.tenant, plan.tenant_users);
    if let Some(by) = &plan.resolved_by {
        outln!("resolved  by {}: {}", by.method.as_str(), by.why);
    }
    if let Some(ticket) = &planned.run.ticket {
        outln!("ticket    {ticket}");
    }
    outln!();
    outln!("  {:<12} {:>7}", "BUCKET", "USERS");
    for (bucket, count) in bucket_counts(plan) {
        outln!("  {bucket:<12} {count:>7}");
    }
    outln!("  {:<12} {:>7}", "unresolved", plan.unresolved.len());
    let remediated: Vec<_> = plan
        .users
        .iter()
        .filter(|u| u.bucket == Bucket::Remediated)
        .collect();
    if !remediated.is_empty() {
        outln!(
            "  remediated users were written to by an earlier run within {} and are not written \
             again (--include-remediated plans a second wave):",
            humanize(planned.playbook.guards.remediated_within)
        );
        for user in remediated.iter().take(5) {
            outln!("    {:<40} {}", user.upn, user.reason);
        }
        if remediated.len() > 5 {
            outln!("    ... and {} more (targets.csv)", remediated.len() - 5);
        }
    }
    if plan.unusable_mobiles > 0 {
        outln!(
            "  warning: {} target(s) have a mobilePhone no text message can be addressed to \
             (not a number, or national without a usageLocation): `has_mobile` is false for \
             them; fix their numbers in the directory",
            plan.unusable_mobiles
        );
    }
    if let Some(recovery) = &plan.recovery {
        if recovery.unread.is_none() {
            outln!("  {:<12} {:>7} {:>9}", "SSPR", "CAN", "CANNOT");
            for b in &recovery.buckets {
                outln!(
                    "  {:<12} {:>7} {:>9}",
                    b.bucket.as_str(),
                    b.sspr_capable,
                    b.not_sspr_capable
                );
            }
        }
        for warning in recovery.warnings() {
            outln!("  warning: {warning}");
        }
    }
    let hybrid = hybrid_with_steps(plan);
    if hybrid > 0 {
        outln!(
            "  hybrid users get the cloud-side steps ({hybrid}); their passwords are reset \
             on-premises (manual-queue.csv)"
        );
    }
    if !plan.bad_rows.is_empty() {
        outln!("  {:<12} {:>7}", "bad rows", plan.bad_rows.len());
    }
    outln!();
    let pace = match planned.playbook.rate_limit.max_writes_per_second {
        Some(_) => "Graph's quota or the playbook's rate_limit, the lower",
        None => "Graph's quota",
    };
    outln!(
        "estimate  {} directory writes, about {:.0} s: up to {} at once while the write \
         buckets are full, then {:.0} writes/s ({pace})",
        plan.estimate.directory_writes,
        plan.estimate.seconds,
        plan.estimate.at_once,
        plan.estimate.writes_per_second
    );
    outln!("files     {}", planned.out.display());
}

/// A window as the playbook would write it (`24h`, `90m`, `7d`).
fn humanize(window: std::time::Duration) -> String {
    let secs = window.as_secs();
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s => format!("{}m", s / 60),
    }
}

/// Hybrid users with steps: `hybrid_users: cloud_actions` gives them the cloud-side ones.
fn hybrid_with_steps(plan: &Plan) -> usize {
    plan.users
        .iter()
        .filter(|u| u.bucket == Bucket::Hybrid && !u.steps.is_empty())
        .count()
}

fn bucket_counts(plan: &Plan) -> Vec<(&'static str, usize)> {
    Bucket::ALL
        .into_iter()
        .map(|b| (b.as_str(), plan.count(b)))
        .collect()
}
