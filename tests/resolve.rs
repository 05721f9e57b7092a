//! Resolving targets by lookup and by listing the tenant plan the same: the same users in the
//! same order, buckets, reasons, steps, unresolved rows and hash, against the same emulated
//! tenant over real HTTP. Only the plan's note of how it resolved differs.

use std::sync::Arc;

use resetctl::directory::GraphDirectory;
use resetctl::emulator::RunningEmulator;
use resetctl::engine::plan::Plan;
use resetctl::engine::planner::{self, PlanRequest};
use resetctl::playbook;
use resetctl::store::{NewRun, PlanDocument, RunId, RunStore, SqliteStore};
use resetctl::targeting::{Method, ResolveOptions, Strategy};
use serde_json::Value;

use crate::util::{TenantConfig, start_emulator, tenant_file_config};

const SALES: &str = "5a1e5000-0000-4000-8000-000000000001";
const SALES_EU: &str = "5a1e5000-0000-4000-8000-000000000002";
const CAROL: &str = "c0000000-0000-4000-8000-00000000000c";

/// Every bucket and source kind: risky, privileged (eligible, through a role-assignable
/// group), hybrid, disabled, excluded (break-glass, pattern), a mobile no SMS can reach,
/// departments a `when:` reads, a nested group.
fn tenant() -> String {
    format!(
        r#"
verified_domain: contoso.example
users:
  - {{ upn: alice@contoso.example, department: Finance, mobile_phone: "+1 425 555 0101", risk: {{ level: high }} }}
  - {{ upn: bob@contoso.example, department: IT, eligible_roles: [Global Administrator] }}
  - {{ upn: carol@contoso.example, id: {CAROL}, department: Finance, synced: true }}
  - {{ upn: dave@contoso.example, account_enabled: false }}
  - {{ upn: erin@contoso.example, mobile_phone: "n/a", risk: {{ level: medium }} }}
  - {{ upn: frank@contoso.example, department: IT }}
  - {{ upn: grace@contoso.example }}
  - {{ upn: henry@contoso.example, department: Sales, mobile_phone: "+1 425 555 0108" }}
  - {{ upn: ivy@contoso.example, department: Sales, risk: {{ level: low }} }}
  - {{ upn: judy@contoso.example, risk: {{ level: medium }} }}
  - {{ upn: kim@contoso.example, department: Sales }}
  - {{ upn: svc-backup@contoso.example, service: true }}
  - {{ upn: untouched@contoso.example }}
groups:
  - {{ id: {SALES}, display_name: Sales, members: [henry@contoso.example, ivy@contoso.example], member_groups: [Sales EU] }}
  - {{ id: {SALES_EU}, display_name: Sales EU, members: [kim@contoso.example, svc-backup@contoso.example] }}
  - {{ display_name: Tier0, role_assignable: true, members: [frank@contoso.example], eligible_roles: [Global Administrator] }}
"#
    )
}

const CSV: &str = "upn
ALICE@contoso.example
bob@contoso.example
c0000000-0000-4000-8000-00000000000C
dave@contoso.example
erin@contoso.example
frank@contoso.example
grace@contoso.example
ivy@contoso.example
nobody@contoso.example
0badbeef-0000-4000-8000-000000000000
svc-backup@contoso.example
";

fn playbook_yaml() -> String {
    format!(
        "name: both-ways
targets:
  - csv: {{ path: breach.csv, column: upn }}
  - group: {{ id: {SALES}, transitive: true }}
  - risky_users: {{ levels: [medium] }}
exclude:
  break_glass: [grace@contoso.example]
  upn_patterns: ['svc-*@*']
privileged: {{ roles: critical, include_eligible: true }}
guards: {{ max_fraction_of_tenant: 1.0 }}
steps:
  - revoke_sessions
  - reset_password: {{ mode: scramble, force_change: true, require_mfa: true }}
    when: department in ['Finance', 'Sales'] or risk_level >= medium
"
    )
}

fn directory(emulator: &RunningEmulator) -> GraphDirectory {
    TenantConfig::emulator("t", emulator.info(), 10.0)
        .secret_app(emulator.info(), 0, "RESOLVE_SECRET")
        .directory()
}

async fn plan(
    directory: &GraphDirectory,
    playbook: &playbook::Playbook,
    strategy: Strategy,
) -> Plan {
    planner::build_plan(
        directory,
        PlanRequest {
            playbook,
            tenant: "t",
            apps: 1,
            quotas: &resetctl::throttle::Quotas::graph_defaults(
                resetctl::config::TenantSize::Small,
                10.0,
            ),
            runner_accounts: &[],
            resolve: ResolveOptions {
                strategy,
                ..ResolveOptions::default()
            },
            remediated: &std::collections::HashMap::new(),
            include_remediated: false,
            skip_report_only_reads: false,
        },
    )
    .await
    .unwrap()
}

/// Store `plan` as a run and read its document back, as `run` and `resume` do.
async fn stored(store: &SqliteStore, plan: Plan) -> (String, Value) {
    let plan = Arc::new(plan);
    let run = RunId::generate(jiff::Timestamp::now());
    store
        .create_run(NewRun {
            id: run.clone(),
            created_at: jiff::Timestamp::now(),
            playbook_name: "both-ways".into(),
            playbook_path: "both-ways.yaml".into(),
            tenant: "t".into(),
            plan_hash: plan.hash(),
            plan: PlanDocument::of(Arc::clone(&plan)),
        })
        .await
        .unwrap();
    let json = store.plan_json(&run).await.unwrap();
    (plan.hash(), serde_json::from_str(&json).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_and_listing_plan_the_same() {
    let dir = tempfile::tempdir().unwrap();
    // Graph's quotas ten times faster on both sides, as the client is configured.
    let mut config = tenant_file_config(dir.path(), &tenant());
    config.time_scale = 10.0;
    let emulator = start_emulator(config).await;
    std::fs::write(dir.path().join("breach.csv"), CSV).unwrap();
    let path = dir.path().join("both-ways.yaml");
    std::fs::write(&path, playbook_yaml()).unwrap();
    let playbook = playbook::load(&path).unwrap().playbook;
    let store = SqliteStore::open(&dir.path().join("runs.sqlite")).unwrap();

    let directory = directory(&emulator);
    let looked_up = plan(&directory, &playbook, Strategy::Lookup).await;
    let listed = plan(&directory, &playbook, Strategy::Listing).await;
    let chose = plan(&directory, &playbook, Strategy::Auto).await;
    assert_eq!(
        looked_up.resolved_by.as_ref().map(|r| r.method),
        Some(Method::Lookup)
    );
    assert_eq!(
        listed.resolved_by.as_ref().map(|r| r.method),
        Some(Method::Listing)
    );
    // One page of users beats two rounds of lookups: the cost model lists a tiny tenant.
    let why = chose.resolved_by.clone().unwrap();
    assert_eq!(why.method, Method::Listing, "{}", why.why);
    assert!(why.why.contains("1 pages of 999"), "{}", why.why);

    // The plan is not trivial: every bucket the tenant was built for is in it.
    let buckets: Vec<&str> = listed.users.iter().map(|u| u.bucket.as_str()).collect();
    for bucket in ["automated", "privileged", "hybrid", "disabled", "excluded"] {
        assert!(buckets.contains(&bucket), "{bucket} missing: {buckets:?}");
    }
    assert_eq!(listed.unresolved.len(), 2, "{:?}", listed.unresolved);
    assert_eq!(listed.tenant_users, 13);

    let (hash_lookup, mut doc_lookup) = stored(&store, looked_up).await;
    let (hash_listing, mut doc_listing) = stored(&store, listed).await;
    assert_eq!(hash_lookup, hash_listing);
    for doc in [&mut doc_lookup, &mut doc_listing] {
        doc.as_object_mut()
            .unwrap()
            .remove("resolved_by")
            .expect("the stored plan says how it resolved");
    }
    assert_eq!(doc_lookup, doc_listing);
    emulator.shutdown().await;
}

/// Planning's reads overlap: at 200 ms a request, the dozen reads of this playbook (role
/// assignments, eligibilities, three risk levels, the count, the lookups, the group source,
/// the role-holding group, the role holders' kinds, the break-glass account) take about
/// 2.5 s one after another; overlapped, the longest chain is three or four requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_reads_run_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tenant_file_config(dir.path(), &tenant());
    config.time_scale = 10.0;
    // 2,000 ms of Graph time is 200 ms at this time scale.
    config.latency_ms = 2_000;
    let emulator = start_emulator(config).await;
    std::fs::write(dir.path().join("breach.csv"), CSV).unwrap();
    let path = dir.path().join("both-ways.yaml");
    std::fs::write(&path, playbook_yaml()).unwrap();
    let playbook = playbook::load(&path).unwrap().playbook;
    // The first plan fetches the token; the second is all reads.
    let directory = directory(&emulator);
    let _ = plan(&directory, &playbook, Strategy::Lookup).await;
    let started = std::time::Instant::now();
    let planned = plan(&directory, &playbook, Strategy::Lookup).await;
    let took = started.elapsed();
    assert_eq!(planned.unresolved.len(), 2);
    assert!(
        took < std::time::Duration::from_millis(1_500),
        "planning took {took:?}: its reads ran one after another"
    );
    emulator.shutdown().await;
}

/// Every kind of administrator, each named by a short breach list, and decoys that must
/// not change the plan: an admin the list does not name, a role-assignable group without a
/// role, a plain user.
const ADMINS: &str = r#"
verified_domain: contoso.example
users:
  - { upn: active@contoso.example, roles: [Global Administrator] }
  - { upn: eligible@contoso.example, eligible_roles: [Privileged Authentication Administrator] }
  - { upn: both@contoso.example, roles: [Security Administrator], eligible_roles: [Global Administrator] }
  - { upn: via-active@contoso.example }
  - { upn: via-eligible@contoso.example }
  - { upn: idle-group@contoso.example }
  - { upn: reader@contoso.example, roles: [Directory Readers] }
  - { upn: plain@contoso.example }
  - { upn: unnamed-admin@contoso.example, roles: [Global Administrator] }
groups:
  - { display_name: Tier0 Active, role_assignable: true, members: [via-active@contoso.example], roles: [Privileged Role Administrator] }
  - { display_name: Tier0 Eligible, role_assignable: true, members: [via-eligible@contoso.example], eligible_roles: [Security Administrator] }
  - { display_name: Tier0 Idle, role_assignable: true, members: [idle-group@contoso.example] }
"#;

/// A short breach list reads only its users' grants and those of the role-assignable
/// groups, and still catches every kind of administrator: active, PIM-eligible, and
/// through a group holding a role either way; the plan is the one every grant of the
/// tenant gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_list_reads_only_its_grants_and_misses_no_admin() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tenant_file_config(dir.path(), ADMINS);
    config.time_scale = 10.0;
    let emulator = start_emulator(config).await;
    std::fs::write(
        dir.path().join("breach.csv"),
        "upn\nactive@contoso.example\neligible@contoso.example\nboth@contoso.example\n\
         via-active@contoso.example\nvia-eligible@contoso.example\nidle-group@contoso.example\n\
         reader@contoso.example\nplain@contoso.example\n",
    )
    .unwrap();
    let path = dir.path().join("admins.yaml");
    std::fs::write(
        &path,
        "name: admins
targets: [csv: { path: breach.csv, column: upn }]
privileged: { roles: critical, include_eligible: true }
guards: { max_fraction_of_tenant: 1.0 }
steps:
  - revoke_sessions
",
    )
    .unwrap();
    let playbook = playbook::load(&path).unwrap().playbook;
    let directory = directory(&emulator);

    let targeted = plan(&directory, &playbook, Strategy::Lookup).await;
    let listed = plan(&directory, &playbook, Strategy::Listing).await;

    let placed = |upn: &str| {
        let user = targeted.users.iter().find(|u| u.upn == upn).unwrap();
        (user.bucket.as_str(), user.reason.to_string())
    };
    for (upn, role) in [
        ("active@contoso.example", "Global Administrator"),
        (
            "eligible@contoso.example",
            "Privileged Authentication Administrator (PIM-eligible)",
        ),
        (
            "both@contoso.example",
            "Global Administrator (PIM-eligible)",
        ),
        ("both@contoso.example", "Security Administrator"),
        (
            "via-active@contoso.example",
            "Privileged Role Administrator via group",
        ),
        (
            "via-eligible@contoso.example",
            "Security Administrator (PIM-eligible) via group",
        ),
    ] {
        let (bucket, reason) = placed(upn);
        assert_eq!(bucket, "privileged", "{upn}: {reason}");
        assert!(reason.contains(role), "{upn}: {reason}");
    }
    // Directory Readers is not critical, and a role-assignable group without a role
    // grants nothing, listed or not.
    for upn in [
        "reader@contoso.example",
        "plain@contoso.example",
        "idle-group@contoso.example",
    ] {
        assert_eq!(placed(upn).0, "automated", "{upn}: {}", placed(upn).1);
    }
    assert_eq!(targeted.hash(), listed.hash());
    emulator.shutdown().await;
}
