//! `resetctl plan`: resolve and partition a playbook's targets, store the plan as a run that
//! operators can approve, and write `plan.json`, `targets.csv` and `manual-queue.csv`.
//! Read-only towards the tenant.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use resetctl::audit::{self, AuditConfig, AuditHandle, Details, Event};
use resetctl::engine::EngineError;
use resetctl::engine::gate;
use resetctl::engine::plan::Plan;
use resetctl::engine::planner::{self, PlanRequest};
use resetctl::playbook::Playbook;
use resetctl::report;
use resetctl::store::{
    NewRun, PlanDocument, RunId, RunRecord, RunStatus, RunStore, SqliteStore, StoreError,
};
use resetctl::targeting::{Bucket, ResolveError, ResolveOptions};

use super::tenant::Tenant;
use super::{CmdResult, Exit, Failure, paths, validate};
use crate::cli::{GlobalArgs, OutputFormat, PlanArgs};

/// Everything a planned run holds, shared by `plan` and `run`.
pub struct Planned {
    /// The playbook.
    pub playbook: Playbook,
    /// The playbook file as given.
    pub playbook_path: PathBuf,
    /// The plan (shared: the store streams it, the run executes it).
    pub plan: Arc<Plan>,
    /// The stored run.
    pub run: RunRecord,
    /// Where the plan's files were written.
    pub out: PathBuf,
}

/// `resetctl plan`.
pub async fn run(global: &GlobalArgs, args: PlanArgs) -> CmdResult {
    let tenant = super::tenant::connect(global, args.tenant.tenant.as_deref()).await?;
    let store = open_store(args.store)?;
    let audit = open_audit(&store).await?;
    let result = plan_and_store(
        &tenant,
        &store,
        &audit,
        &args.playbook,
        ResolveOptions {
            csv_override: args.targets,
            skip_bad_rows: args.skip_bad_rows,
        },
        args.out,
    )
    .await;
    close(tenant, &audit).await;
    let planned = result?;
    print_plan(global, &planned);
    // The process exits next; freeing a million planned users one by one would only add
    // half a second before the prompt returns.
    std::mem::forget(planned);
    Ok(Exit::Success)
}

/// Open the run store (`--store` or the data directory).
pub fn open_store(explicit: Option<PathBuf>) -> Result<SqliteStore, Failure> {
    let path = paths::store_path(explicit)?;
    SqliteStore::open(&path).map_err(|err| Failure::new(Exit::Config, err))
}

/// Open the audit trail (the data directory's, until the configuration names one), with the
/// run store as its witness.
pub async fn open_audit(store: &SqliteStore) -> Result<AuditHandle, Failure> {
    let config = AuditConfig::new(paths::audit_path()?);
    let witness = store
        .audit_witness(&config.path)
        .map_err(|err| Failure::new(Exit::Config, err))?;
    AuditHandle::open(&config, Some(Arc::new(witness)))
        .await
        .map_err(|err| Failure::new(Exit::Config, err))
}

/// Stop the demo tenant and flush the trail.
pub async fn close(tenant: Tenant, audit: &AuditHandle) {
    tenant.close().await;
    if let Err(err) = audit.close().await {
        eprintln!("warning: audit trail: {err}");
    }
}

/// An engine error at the edge: bad input is exit 1, the rest configuration/authentication.
pub fn engine_failure(err: EngineError) -> Failure {
    let exit = match &err {
        EngineError::Resolve(ResolveError::Csv(_) | ResolveError::BadRows { .. }) => Exit::Invalid,
        _ => Exit::Config,
    };
    Failure::new(exit, err)
}

fn store_failure(err: StoreError) -> Failure {
    Failure::new(Exit::Config, err)
}

/// Record one event in the trail; a trail that cannot record stops the command.
pub async fn record(
    audit: &AuditHandle,
    event: Result<Event, audit::AuditError>,
) -> Result<(), Failure> {
    let event = event.map_err(|err| Failure::new(Exit::Config, err))?;
    audit
        .record(event)
        .await
        .map(|_| ())
        .map_err(|err| Failure::new(Exit::Config, format!("audit trail: {err}")))
}

/// Load, plan, store (reusing a planned run of the same plan, so approvals attach to it),
/// audit, and write the plan's files.
pub async fn plan_and_store(
    tenant: &Tenant,
    store: &SqliteStore,
    audit: &AuditHandle,
    playbook_path: &Path,
    resolve: ResolveOptions,
    out: Option<PathBuf>,
) -> Result<Planned, Failure> {
    let (loaded, bytes) = validate::load_playbook(playbook_path)?;
    let playbook = loaded.playbook;
    let plan = planner::build_plan(
        tenant.directory.as_ref(),
        PlanRequest {
            playbook: &playbook,
            playbook_bytes: &bytes,
            tenant: &tenant.name,
            apps: tenant.apps,
            runner_accounts: &tenant.runner_accounts,
            resolve,
        },
    )
    .await
    .map_err(engine_failure)?;
    let plan = Arc::new(plan);
    let hash = plan.hash();
    let existing = store
        .runs()
        .await
        .map_err(store_failure)?
        .into_iter()
        .find(|r| r.plan_hash == hash && r.status == RunStatus::Planned);
    let id = existing
        .as_ref()
        .map_or_else(|| RunId::generate(Timestamp::now()), |run| run.id.clone());
    let out = match out {
        Some(dir) => dir,
        None => paths::data_dir()?.join("runs").join(&id.0),
    };
    // The plan's files and its stored copy are independent: write both at once.
    let files = tokio::task::spawn_blocking({
        let (plan, out) = (Arc::clone(&plan), out.clone());
        move || write_plan_files(&plan, &out)
    });
    let run = match existing {
        Some(run) => run,
        None => {
            store
                .create_run(NewRun {
                    id: id.clone(),
                    created_at: Timestamp::now(),
                    playbook_name: playbook.name.clone(),
                    playbook_path: playbook_path.display().to_string(),
                    tenant: tenant.name.clone(),
                    plan_hash: hash.clone(),
                    plan: PlanDocument::of(Arc::clone(&plan)),
                })
                .await
                .map_err(store_failure)?;
            let details = Details::new()
                .with("plan_hash", hash.as_str())
                .and_then(|d| d.with("playbook", playbook.name.as_str()))
                .and_then(|d| d.with("tenant", tenant.name.as_str()))
                .and_then(|d| d.with("users", plan.users.len() as u64))
                .and_then(|d| d.with("automated", gate::automated(&plan) as u64));
            let event = details.and_then(|details| {
                Event::new(
                    "resetctl",
                    "run.plan",
                    id.0.as_str(),
                    audit::Outcome::Success,
                )
                .map(|e| e.with_details(details))
            });
            record(audit, event).await?;
            store.run(&id).await.map_err(store_failure)?
        }
    };
    files
        .await
        .map_err(|e| Failure::new(Exit::Config, format!("writing the plan's files: {e}")))??;
    Ok(Planned {
        playbook,
        playbook_path: playbook_path.to_path_buf(),
        plan,
        run,
        out,
    })
}

fn write_plan_files(plan: &Plan, out: &Path) -> Result<(), Failure> {
    let fail = |err: &dyn std::fmt::Display| {
        Failure::new(Exit::Config, format!("{}: {err}", out.display()))
    };
    std::fs::create_dir_all(out).map_err(|e| fail(&e))?;
    // Streamed: a million-user plan is hundreds of megabytes of JSON.
    let file = std::fs::File::create(out.join("plan.json")).map_err(|e| fail(&e))?;
    let mut writer = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut writer, plan).map_err(|e| fail(&e))?;
    std::io::Write::flush(&mut writer).map_err(|e| fail(&e))?;
    report::write_targets(plan, &out.join("targets.csv")).map_err(|e| fail(&e))?;
    report::write_manual_queue(plan, &out.join("manual-queue.csv")).map_err(|e| fail(&e))?;
    Ok(())
}

/// The plan summary: buckets, unresolved targets, estimate, where the files are.
pub fn print_plan(global: &GlobalArgs, planned: &Planned) {
    let plan = &planned.plan;
    if global.output == OutputFormat::Json {
        let summary = serde_json::json!({
            "run": planned.run.id,
            "plan_hash": planned.run.plan_hash,
            "tenant": plan.tenant,
            "tenant_users": plan.tenant_users,
            "buckets": bucket_counts(plan),
            "automated_with_steps": gate::automated(plan),
            "unresolved": plan.unresolved.len(),
            "bad_rows": plan.bad_rows.len(),
            "estimate": plan.estimate,
            "out": planned.out,
        });
        println!("{summary}");
        return;
    }
    println!(
        "plan      {} ({})",
        planned.run.id,
        &planned.run.plan_hash[..12]
    );
    println!(
        "playbook  {} ({})",
        plan.playbook_name,
        planned.playbook_path.display()
    );
    println!("tenant    {} ({} users)", plan.tenant, plan.tenant_users);
    println!();
    println!("  {:<12} {:>7}", "BUCKET", "USERS");
    for (bucket, count) in bucket_counts(plan) {
        println!("  {bucket:<12} {count:>7}");
    }
    println!("  {:<12} {:>7}", "unresolved", plan.unresolved.len());
    if !plan.bad_rows.is_empty() {
        println!("  {:<12} {:>7}", "bad rows", plan.bad_rows.len());
    }
    println!();
    println!(
        "estimate  {} directory writes, about {:.0} s at {:.0} writes/s (Graph's quota)",
        plan.estimate.directory_writes, plan.estimate.seconds, plan.estimate.writes_per_second
    );
    println!("files     {}", planned.out.display());
}

fn bucket_counts(plan: &Plan) -> Vec<(&'static str, usize)> {
    [
        Bucket::Automated,
        Bucket::Privileged,
        Bucket::Hybrid,
        Bucket::Disabled,
        Bucket::Excluded,
    ]
    .into_iter()
    .map(|b| (b.as_str(), plan.count(b)))
    .collect()
}
