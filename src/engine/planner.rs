//! Planning: resolve a playbook's targets, partition them, and decide each automated user's
//! steps. Read-only: nothing here writes to the tenant.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::EngineError;
use super::plan::{Budget, Estimate, Plan, PlannedStep, PlannedUser, Unresolved};
use crate::directory::Directory;
use crate::playbook::{Playbook, RiskLevel, Step, UserFacts};
use crate::store::Remediated;
use crate::targeting::{
    self, Bucket, Candidate, CostModel, PrivilegeIndex, ResolveOptions, ResolvedUser, place,
};
use crate::throttle::Quotas;

/// What planning needs besides the directory.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    /// The validated playbook.
    pub playbook: &'a Playbook,
    /// Tenant name.
    pub tenant: &'a str,
    /// App registrations in the credential pool (for the estimate).
    pub apps: u32,
    /// The tenant's quotas, at its time scale (for the estimate).
    pub quotas: &'a Quotas,
    /// The configuration's `runner_accounts`: never written to.
    pub runner_accounts: &'a [String],
    /// CSV override and bad-row policy.
    pub resolve: ResolveOptions,
    /// Users earlier runs on this tenant remediated within the playbook's window, by
    /// lower-case object id: placed in the `remediated` bucket, not written again…
    pub remediated: &'a HashMap<String, Remediated>,
    /// …unless a second wave is asked for (`--include-remediated` or the playbook's
    /// `guards.include_remediated`).
    pub include_remediated: bool,
    /// Do not wait on Graph's reports budget for what only the plan's recovery counts use
    /// (an incident trigger's plan: its answer should not queue behind that budget).
    pub skip_report_only_reads: bool,
}

/// Resolve, partition and plan. The directory reads overlap: role grants (then the role
/// holders' kinds and groups), exclusions, risk levels, group sources and the targets'
/// lookups or the tenant's listing all run at once, each within its own budget; only the
/// CSVs are read first, so a broken one fails before any Graph traffic.
pub async fn build_plan(
    directory: &dyn Directory,
    request: PlanRequest<'_>,
) -> Result<Plan, EngineError> {
    let playbook = request.playbook;
    let started = Instant::now();
    let csv = targeting::read_csv_sources(playbook, &request.resolve)?;
    let csv_keys = csv.keys();
    let model = CostModel::for_quotas(request.quotas);
    let phase = |name: &'static str, at: Instant| {
        tracing::debug!(
            message = "Planning phase done.",
            phase = name,
            took_ms = at.elapsed().as_millis() as u64,
            elapsed_ms = started.elapsed().as_millis() as u64
        );
    };
    let resolved = |resolution: &targeting::Resolution, at: Instant| {
        phase("resolve", at);
        tracing::debug!(
            message = "Resolved targets.",
            users = resolution.users.len(),
            tenant_users = resolution.tenant_users,
            elapsed_ms = started.elapsed().as_millis() as u64
        );
    };
    let excluded = async {
        let at = Instant::now();
        let exclusions =
            targeting::exclusions(directory, playbook, request.runner_accounts).await?;
        phase("exclusions", at);
        Ok::<_, EngineError>(exclusions)
    };
    // A listing forced by the resolve options lists the grants too: both ways stay comparable.
    let targeted =
        targets_few(playbook, csv_keys) && request.resolve.strategy != targeting::Strategy::Listing;
    let (privileges, resolution, exclusions) = if targeted {
        // A short list: resolve it, then read the grants of its users and of the groups
        // that could give them a role, not every grant of the tenant. The grants follow the
        // lookups at once, alongside the risk levels; the groups are listed meanwhile.
        let (groups_tx, groups_rx) = futures::channel::oneshot::channel();
        let groups = async {
            let at = Instant::now();
            let groups = targeting::role_assignable_groups(directory).await;
            phase("role-assignable groups", at);
            let _ = groups_tx.send(groups);
            Ok::<_, EngineError>(())
        };
        let grants = |ids: Vec<String>| async move {
            let groups = match groups_rx.await {
                Ok(Ok(groups)) => groups,
                // A directory that cannot list role-assignable groups: every grant, below.
                Ok(Err(err)) => {
                    tracing::debug!(message = "Listing every role grant.", %err);
                    return Ok(None);
                }
                Err(_) => return Ok(None),
            };
            let at = Instant::now();
            let grants = targeting::targeted_grants(directory, playbook, &ids, groups).await?;
            phase("targets' role grants", at);
            let at = Instant::now();
            // Every principal's kind is known here: none is looked up.
            targeting::check_step_groups(directory, playbook, &grants).await?;
            let privileges = targeting::privileges(directory, playbook, grants, &|_| false).await?;
            phase("privileges", at);
            Ok(Some(privileges))
        };
        let resolve = async {
            let at = Instant::now();
            let (resolution, privileges) =
                targeting::resolve_then(directory, playbook, csv, &request.resolve, &model, grants)
                    .await?;
            resolved(&resolution, at);
            Ok::<_, EngineError>((resolution, privileges))
        };
        let ((resolution, privileges), (), exclusions) =
            futures::try_join!(resolve, groups, excluded)?;
        let privileges = match privileges {
            Some(privileges) => privileges,
            None => all_privileges(directory, playbook, &phase).await?,
        };
        (privileges, resolution, exclusions)
    } else {
        let resolve = async {
            let at = Instant::now();
            let resolution =
                targeting::resolve(directory, playbook, csv, &request.resolve, &model).await?;
            resolved(&resolution, at);
            Ok::<_, EngineError>(resolution)
        };
        futures::try_join!(
            all_privileges(directory, playbook, &phase),
            resolve,
            excluded
        )?
    };

    // Registration state (SSPR, authenticator) of the planned users, when the playbook's
    // conditions or the plan's recovery counts need it.
    let need = super::recovery::needed(playbook);
    // Only for the counts, the report is read when it takes no longer than a plan waits.
    let too_slow = (need == super::recovery::Need::ForReport)
        .then(|| {
            if request.skip_report_only_reads {
                return Some(super::recovery::SKIPPED_FOR_A_TRIGGER.to_owned());
            }
            super::recovery::too_slow_for_report(
                resolution.users.len() as u64,
                resolution.tenant_users,
            )
        })
        .flatten();
    let registrations = match (need, &too_slow) {
        (super::recovery::Need::No, _) => Ok(Default::default()),
        (_, Some(_)) => Ok(Default::default()),
        _ => {
            let at = Instant::now();
            let ids = resolution.users.iter().map(|u| u.id.clone()).collect();
            let read = super::recovery::read(directory, ids).await;
            phase("registration details", at);
            read
        }
    };
    let (registrations, unread) = match registrations {
        Ok(r) => (r, too_slow),
        Err(source) if need == super::recovery::Need::Required => {
            return Err(targeting::ResolveError::Directory {
                what: "registration details (sspr_capable, has_authenticator)".into(),
                source,
            }
            .into());
        }
        Err(e) => {
            tracing::warn!(message = "Registration state not read.", error = %e);
            (Default::default(), Some(e.to_string()))
        }
    };

    let steps = planned_steps(playbook);
    let mut interner = StepLists::default();
    let mut unusable_mobiles = 0u64;
    let users: Vec<PlannedUser> = resolution
        .users
        .into_iter()
        .map(|resolved| {
            unusable_mobiles += u64::from(resolved.unusable_mobile);
            let registration = registrations.get(&resolved.id.to_ascii_lowercase());
            let mut user = plan_user(
                playbook,
                resolved,
                registration,
                &exclusions,
                &privileges,
                &mut interner,
            );
            if !request.include_remediated {
                hold_back_remediated(&mut user, request.remediated, &mut interner);
            }
            user
        })
        .collect();
    let automated = users.iter().filter(|u| !u.steps.is_empty()).count() as u64;
    let unresolved: Vec<Unresolved> = resolution
        .missing
        .into_iter()
        .map(|m| Unresolved {
            target: m.target,
            source: m.source,
            reason: m.reason,
        })
        .collect();
    let recovery = match (need, unread) {
        (super::recovery::Need::No, _) => None,
        (_, Some(reason)) => Some(super::recovery::Recovery::unread(reason)),
        (_, None) => Some(super::recovery::Recovery::of(
            playbook,
            &users,
            &registrations,
        )),
    };
    Ok(Plan {
        recovery,
        playbook_name: playbook.name.clone(),
        playbook_sha256: playbook.sha256.clone(),
        tenant: request.tenant.to_owned(),
        tenant_users: resolution.tenant_users,
        estimate: Estimate::from_users(&steps, &users, request.apps, request.quotas).paced(
            playbook.rate_limit.max_writes_per_second,
            request.quotas.time_scale,
        ),
        steps,
        users,
        unresolved,
        bad_rows: resolution
            .bad_rows
            .into_iter()
            .map(|(_, row)| row)
            .collect(),
        unusable_mobiles,
        resolved_by: resolution.resolved_by,
    })
    .inspect(|plan| {
        tracing::info!(
            message = "Planned.",
            users = plan.users.len(),
            automated,
            unresolved = plan.unresolved.len(),
            elapsed_ms = started.elapsed().as_millis() as u64
        );
    })
}

/// Targets this many or fewer, named only by CSVs, have their role grants read per user
/// (two requests each, 20 to a `$batch`) instead of listing every grant of the tenant
/// (one page per 100 grants, read one after another: a 10⁶-user tenant has tens of
/// thousands of grants).
pub const TARGETED_GRANTS_MAX: usize = 2_000;

/// Whether the playbook's targets are few enough to read only their grants: CSV sources
/// alone (other sources' sizes are unknown until read) naming at most
/// [`TARGETED_GRANTS_MAX`] keys.
fn targets_few(playbook: &Playbook, csv_keys: usize) -> bool {
    csv_keys <= TARGETED_GRANTS_MAX
        && playbook
            .targets
            .iter()
            .all(|t| matches!(t, crate::playbook::Target::Csv { .. }))
}

/// Every role grant of the tenant (then the role holders' kinds and groups), for a
/// playbook whose targets may be many.
async fn all_privileges(
    directory: &dyn Directory,
    playbook: &Playbook,
    phase: &(dyn Fn(&'static str, Instant) + Sync),
) -> Result<PrivilegeIndex, EngineError> {
    let at = Instant::now();
    let grants = targeting::role_grants(directory, playbook).await?;
    phase("role grants", at);
    let at = Instant::now();
    let ((), user_principals) = futures::try_join!(
        targeting::check_step_groups(directory, playbook, &grants),
        targeting::user_principals(directory, &grants),
    )?;
    phase("role holders' kinds", at);
    let at = Instant::now();
    let privileges = targeting::privileges(directory, playbook, grants, &|id| {
        user_principals.contains(id)
    })
    .await?;
    phase("privileges", at);
    Ok(privileges)
}

/// The facts `when:` conditions read about a resolved user and their registration state
/// (`None`: not read or not in the report, so neither SSPR-capable nor with an authenticator).
pub fn facts<'a>(
    user: &'a ResolvedUser,
    registration: Option<&crate::directory::Registration>,
) -> UserFacts<'a> {
    UserFacts {
        upn: &user.upn,
        department: user.department.as_deref(),
        job_title: user.job_title.as_deref(),
        has_mobile: user.has_mobile,
        synced: user.synced,
        account_enabled: user.account_enabled,
        risk_level: user.risk,
        sspr_capable: registration.is_some_and(|r| r.sspr_capable),
        has_authenticator: registration.is_some_and(|r| r.has_authenticator()),
    }
}

/// One shared copy of each distinct list of step keys: most users of a run get the same
/// steps, and a million copies of the same list would be most of a large plan's memory.
#[derive(Debug, Default)]
struct StepLists(HashSet<Arc<[String]>>);

impl StepLists {
    fn intern(&mut self, keys: Vec<String>) -> Arc<[String]> {
        if let Some(shared) = self.0.get(keys.as_slice()) {
            return Arc::clone(shared);
        }
        let shared: Arc<[String]> = keys.into();
        self.0.insert(Arc::clone(&shared));
        shared
    }
}

fn plan_user(
    playbook: &Playbook,
    user: ResolvedUser,
    registration: Option<&crate::directory::Registration>,
    exclusions: &targeting::Exclusions,
    privileges: &PrivilegeIndex,
    interner: &mut StepLists,
) -> PlannedUser {
    let placement = place(
        &Candidate {
            id: &user.id,
            upn: &user.upn,
            account_enabled: user.account_enabled,
            synced: user.synced,
        },
        exclusions,
        privileges,
    );
    let steps = match placement.bucket {
        // Hybrid users get the playbook's cloud-side steps (`hybrid_users`); their
        // password stays in the hybrid queue.
        Bucket::Automated | Bucket::Disabled | Bucket::Hybrid => {
            interner.intern(user_steps(playbook, &facts(&user, registration)))
        }
        _ => interner.intern(Vec::new()),
    };
    let roles = privileges
        .privileges(&user.id)
        .iter()
        .map(|p| p.role_name.clone())
        .collect();
    PlannedUser {
        risk_level: (user.risk != RiskLevel::None).then(|| user.risk.as_str().to_owned()),
        id: user.id,
        upn: user.upn,
        display_name: user.display_name,
        bucket: placement.bucket,
        reason: placement.reason,
        roles,
        steps,
    }
}

/// A user an earlier run already wrote to within the window is not written again: moved to
/// the `remediated` bucket with that run's id and time, no steps.
fn hold_back_remediated(
    user: &mut PlannedUser,
    remediated: &HashMap<String, Remediated>,
    interner: &mut StepLists,
) {
    if user.steps.is_empty() {
        return;
    }
    let Some(earlier) = remediated.get(&user.id.to_ascii_lowercase()) else {
        return;
    };
    user.bucket = Bucket::Remediated;
    user.reason = format!(
        "remediated by run {} at {}; not written again (a second wave needs \
         --include-remediated or guards.include_remediated)",
        earlier.run,
        earlier.at.strftime("%Y-%m-%d %H:%M:%S UTC")
    )
    .into();
    user.steps = interner.intern(Vec::new());
}

/// The journal keys of the steps `user` gets, in execution order: the playbook's order,
/// exactly as written, without the steps whose `when:` excludes the user. resetctl never
/// reorders steps (PLAYBOOKS.md says why each order is chosen).
pub fn user_steps(playbook: &Playbook, facts: &UserFacts<'_>) -> Vec<String> {
    playbook
        .steps
        .iter()
        .enumerate()
        .filter(|(_, spec)| playbook.steps_for(facts).any(|s| std::ptr::eq(s, *spec)))
        .map(|(index, spec)| step_key(index, &spec.step))
        .collect()
}

/// The journal key of the playbook's `index`-th step.
pub fn step_key(index: usize, step: &Step) -> String {
    super::journal_key::StepKey::of(index, step).to_string()
}

/// Every step of the playbook with its cost.
fn planned_steps(playbook: &Playbook) -> Vec<PlannedStep> {
    playbook
        .steps
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let (requests_per_user, budget) = cost(&spec.step);
            PlannedStep {
                key: step_key(index, &spec.step),
                description: describe(&spec.step),
                requests_per_user,
                budget,
            }
        })
        .collect()
}

/// Graph requests per user and the budget they spend (writes only; reads are cheap).
fn cost(step: &Step) -> (u32, Budget) {
    match step {
        Step::RevokeSessions
        | Step::ResetPassword { .. }
        | Step::TemporaryAccessPass { .. }
        | Step::AddToGroup { .. } => (1, Budget::DirectoryWrite),
        Step::RequireMfaReregistration { remove } => (remove.len() as u32, Budget::DirectoryWrite),
        Step::ConfirmCompromised => (1, Budget::IdentityProtection),
        Step::Notify { .. } => (1, Budget::Mail),
    }
}

/// A one-line description for plans and dry runs (never a secret: none exists yet).
pub fn describe(step: &Step) -> String {
    match step {
        Step::RevokeSessions => "revoke all sessions (revokeSignInSessions)".into(),
        Step::ResetPassword {
            mode,
            force_change,
            require_mfa,
        } => format!(
            "reset password ({}; force change: {force_change}; MFA before change: {require_mfa})",
            format!("{mode:?}").to_lowercase()
        ),
        Step::RequireMfaReregistration { remove } => format!(
            "remove authentication methods: {}",
            remove
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Step::TemporaryAccessPass {
            lifetime_minutes,
            usable_once,
        } => format!("temporary access pass ({lifetime_minutes} min, usable once: {usable_once})"),
        Step::AddToGroup { group_id, expiry } => {
            format!("add to group {group_id} for {}", humanize(*expiry))
        }
        Step::ConfirmCompromised => "confirm compromised in Identity Protection".into(),
        Step::Notify {
            template,
            channels,
            to,
            out_of_band,
        } => format!(
            "notify {} with `{template}` over {}{}",
            format!("{to:?}").to_lowercase(),
            channels
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if *out_of_band { " (out of band)" } else { "" }
        ),
    }
}

fn humanize(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::load_str;

    fn facts_with(has_mobile: bool, enabled: bool) -> UserFacts<'static> {
        UserFacts {
            upn: "u@contoso.com",
            department: Some("Finance"),
            job_title: None,
            has_mobile,
            synced: false,
            account_enabled: enabled,
            risk_level: RiskLevel::High,
            sspr_capable: false,
            has_authenticator: false,
        }
    }

    const PLAYBOOK: &str = "name: t
targets: [all_users: {}]
disabled_users: revoke_only
steps:
  - revoke_sessions
  - reset_password: { mode: scramble, force_change: true, require_mfa: true }
  - confirm_compromised
  - notify: { template: sms-notice, channels: [sms] }
    when: has_mobile
";

    #[test]
    fn steps_run_in_the_written_order_and_when_filters_them() {
        let loaded = load_str("t.yaml", PLAYBOOK).unwrap();
        let steps = user_steps(&loaded.playbook, &facts_with(true, true));
        assert_eq!(
            steps,
            [
                "0:revoke_sessions",
                "1:reset_password",
                "2:confirm_compromised",
                "3:notify"
            ]
        );
        let steps = user_steps(&loaded.playbook, &facts_with(false, true));
        assert_eq!(
            steps,
            [
                "0:revoke_sessions",
                "1:reset_password",
                "2:confirm_compromised"
            ]
        );
    }

    #[test]
    fn synced_users_get_the_cloud_side_steps_unless_manual_only() {
        let synced = UserFacts {
            synced: true,
            ..facts_with(true, true)
        };
        let loaded = load_str("t.yaml", PLAYBOOK).unwrap();
        assert_eq!(
            user_steps(&loaded.playbook, &synced),
            ["0:revoke_sessions", "2:confirm_compromised"]
        );
        let manual = PLAYBOOK.replace("disabled_users: revoke_only", "hybrid_users: manual_only");
        let loaded = load_str("t.yaml", &manual).unwrap();
        assert!(user_steps(&loaded.playbook, &synced).is_empty());
    }

    #[test]
    fn disabled_users_get_only_the_revocation_with_revoke_only() {
        let loaded = load_str("t.yaml", PLAYBOOK).unwrap();
        assert_eq!(
            user_steps(&loaded.playbook, &facts_with(true, false)),
            ["0:revoke_sessions"]
        );
    }

    /// Global Administrator's template id.
    const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";

    async fn plan_csv(
        directory: &crate::directory::memory::MemoryDirectory,
        strategy: targeting::Strategy,
    ) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("t.csv");
        std::fs::write(
            &csv,
            "upn\nadmin@contoso.com\nmember@contoso.com\nplain@contoso.com\n",
        )
        .unwrap();
        let playbook = load_str(
            "p.yaml",
            &format!(
                "name: p\ntargets: [csv: {{ path: '{}', column: upn }}]\n\
                 guards: {{ max_fraction_of_tenant: 1.0 }}\nsteps:\n  - revoke_sessions\n",
                csv.display()
            ),
        )
        .unwrap()
        .playbook;
        build_plan(
            directory,
            PlanRequest {
                playbook: &playbook,
                tenant: "t",
                apps: 1,
                quotas: &Quotas::graph_defaults(crate::config::TenantSize::Small, 1.0),
                runner_accounts: &[],
                resolve: ResolveOptions {
                    strategy,
                    ..ResolveOptions::default()
                },
                remediated: &HashMap::new(),
                include_remediated: false,
                skip_report_only_reads: false,
            },
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_trigger_s_plan_does_not_wait_on_the_reports_budget_for_advisory_counts() {
        use crate::directory::memory::MemoryDirectory;
        let directory = MemoryDirectory::new().with_user("plain@contoso.com");
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("t.csv");
        std::fs::write(&csv, "upn\nplain@contoso.com\n").unwrap();
        let playbook = load_str(
            "p.yaml",
            &format!(
                "name: p\ntargets: [csv: {{ path: '{}', column: upn }}]\n\
                 guards: {{ max_fraction_of_tenant: 1.0 }}\nsteps:\n  \
                 - reset_password: {{ mode: scramble }}\n",
                csv.display()
            ),
        )
        .unwrap()
        .playbook;
        let quotas = Quotas::graph_defaults(crate::config::TenantSize::Small, 1.0);
        let unread = |skip: bool| {
            let (directory, playbook, quotas) = (&directory, &playbook, &quotas);
            async move {
                build_plan(
                    directory,
                    PlanRequest {
                        playbook,
                        tenant: "t",
                        apps: 1,
                        quotas,
                        runner_accounts: &[],
                        resolve: ResolveOptions::default(),
                        remediated: &HashMap::new(),
                        include_remediated: false,
                        skip_report_only_reads: skip,
                    },
                )
                .await
                .unwrap()
                .recovery
                .and_then(|r| r.unread)
            }
        };
        assert_eq!(
            unread(true).await.as_deref(),
            Some(crate::engine::recovery::SKIPPED_FOR_A_TRIGGER)
        );
        assert_ne!(
            unread(false).await.as_deref(),
            Some(crate::engine::recovery::SKIPPED_FOR_A_TRIGGER)
        );
    }

    #[tokio::test]
    async fn a_short_list_reads_its_own_grants_and_its_groups_not_every_grant() {
        use crate::directory::memory::{MemoryDirectory, Op};
        let directory = || {
            MemoryDirectory::new()
                .with_user("admin@contoso.com")
                .with_user("member@contoso.com")
                .with_user("plain@contoso.com")
                .with_user("elsewhere@contoso.com")
                .with_group("tier0", &["id-member@contoso.com"])
                .with_role_assignable("tier0")
                .with_role_assignment("id-admin@contoso.com", GLOBAL_ADMIN)
                .with_role_assignment("tier0", GLOBAL_ADMIN)
                .with_role_assignment("id-elsewhere@contoso.com", GLOBAL_ADMIN)
        };
        let targeted_directory = directory();
        let targeted = plan_csv(&targeted_directory, targeting::Strategy::Auto).await;
        assert_eq!(
            targeted_directory.calls(Op::ListRoleAssignments),
            0,
            "every grant of the tenant was listed"
        );
        let listed_directory = directory();
        let listed = plan_csv(&listed_directory, targeting::Strategy::Listing).await;
        assert_eq!(listed_directory.calls(Op::ListRoleAssignments), 1);
        let buckets = |plan: &Plan| -> Vec<(String, Bucket, String)> {
            plan.users
                .iter()
                .map(|u| (u.upn.clone(), u.bucket, u.reason.to_string()))
                .collect()
        };
        assert_eq!(buckets(&targeted), buckets(&listed));
        let bucket = |upn: &str| {
            targeted
                .users
                .iter()
                .find(|u| u.upn == upn)
                .map(|u| u.bucket)
        };
        assert_eq!(bucket("admin@contoso.com"), Some(Bucket::Privileged));
        assert_eq!(
            bucket("member@contoso.com"),
            Some(Bucket::Privileged),
            "through tier0"
        );
        assert_eq!(bucket("plain@contoso.com"), Some(Bucket::Automated));
        // Each plan read its own copy of the CSV: the users, not the hashes, compare.
        assert_eq!(
            format!("{:?}", targeted.users),
            format!("{:?}", listed.users)
        );
    }

    #[test]
    fn descriptions_name_the_mode_and_channels() {
        let loaded = load_str("t.yaml", PLAYBOOK).unwrap();
        let steps = planned_steps(&loaded.playbook);
        assert!(
            steps[1].description.contains("scramble"),
            "{}",
            steps[1].description
        );
        assert!(
            steps[3].description.contains("sms"),
            "{}",
            steps[3].description
        );
        assert_eq!(steps[2].budget, Budget::IdentityProtection);
        assert_eq!(humanize(std::time::Duration::from_secs(72 * 3600)), "3d");
    }
}
