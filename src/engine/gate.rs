//! The gate between a plan and `--execute`: guards and approvals.
//!
//! Invariant (design §6, 4): a refusal here means nothing is written. The checks read only
//! the plan, the playbook and the approvals, so a dry run shows exactly what `--execute`
//! would decide.

use std::collections::BTreeSet;

use super::notify::{Notifier, undeliverable};
use super::plan::Plan;
use crate::playbook::Playbook;
use crate::store::{Approval, RunId};

/// Why the gate refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// An earlier execution of this exact plan did not finish: it must be resumed, or it
    /// would write a second time to every user it already did.
    Unfinished {
        /// The run to resume.
        run: RunId,
    },
    /// More users would be automated than `guards.max_users`.
    TooManyUsers {
        /// Users the run would write to.
        automated: usize,
        /// The guard.
        max: u32,
    },
    /// The run would cover more of the tenant than `guards.max_fraction_of_tenant`.
    TooLargeFraction {
        /// Users the run would write to.
        automated: usize,
        /// Users in the tenant.
        tenant: u64,
        /// The guard.
        max: f64,
    },
    /// Fewer distinct operators approved this exact plan than required.
    NeedsApprovals {
        /// Distinct approvers of this plan hash.
        have: usize,
        /// Required by the playbook.
        need: u32,
    },
    /// A secret the playbook creates (temporary password, Temporary Access Pass) could not
    /// reach its user: creating it would only lock the user out.
    Undeliverable(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unfinished { run } => write!(
                f,
                "run {run} of this exact plan did not finish; continue it with \
                 `resetctl run --resume {run}`"
            ),
            Refusal::TooManyUsers { automated, max } => write!(
                f,
                "guard max_users: the run would write to {automated} users, the playbook allows {max}"
            ),
            Refusal::TooLargeFraction {
                automated,
                tenant,
                max,
            } => write!(
                f,
                "guard max_fraction_of_tenant: {automated} of {tenant} users is {:.1} %, the playbook allows {:.1} %",
                100.0 * *automated as f64 / (*tenant).max(1) as f64,
                100.0 * max
            ),
            Refusal::NeedsApprovals { have, need } => write!(
                f,
                "approvals: {have} of {need} required operators approved this plan \
                 (resetctl runs approve RUN --as NAME)"
            ),
            Refusal::Undeliverable(message) => f.write_str(message),
        }
    }
}

/// Users the plan writes to.
pub fn automated(plan: &Plan) -> usize {
    plan.users.iter().filter(|u| !u.steps.is_empty()).count()
}

/// The guards of the playbook against the plan, and whether `notifier` can deliver the
/// secrets the playbook creates.
pub fn check_guards(playbook: &Playbook, plan: &Plan, notifier: &dyn Notifier) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    let count = automated(plan);
    if let Some(max) = playbook.guards.max_users
        && count > max as usize
    {
        refusals.push(Refusal::TooManyUsers {
            automated: count,
            max,
        });
    }
    let fraction = count as f64 / plan.tenant_users.max(1) as f64;
    if count > 0 && fraction > playbook.guards.max_fraction_of_tenant {
        refusals.push(Refusal::TooLargeFraction {
            automated: count,
            tenant: plan.tenant_users,
            max: playbook.guards.max_fraction_of_tenant,
        });
    }
    refusals.extend(undeliverable(playbook, notifier).map(Refusal::Undeliverable));
    refusals
}

/// The approvals requirement: distinct operators who approved `plan_hash`.
pub fn check_approvals(
    playbook: &Playbook,
    plan_hash: &str,
    approvals: &[Approval],
) -> Option<Refusal> {
    let have: BTreeSet<&str> = approvals
        .iter()
        .filter(|a| a.plan_hash == plan_hash)
        .map(|a| a.operator.as_str())
        .collect();
    let need = playbook.guards.approvals_required;
    (have.len() < need as usize).then_some(Refusal::NeedsApprovals {
        have: have.len(),
        need,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::notify::RecordOnly;
    use crate::engine::plan::{Estimate, PlannedUser};
    use crate::playbook::load_str;
    use crate::targeting::Bucket;

    fn playbook(extra: &str) -> Playbook {
        let text = format!(
            "name: g\ntargets: [all_users: {{}}]\nguards: {{ max_users: 2, max_fraction_of_tenant: 0.5, approvals_required: 2 }}\nsteps: [revoke_sessions]\n{extra}"
        );
        load_str("g.yaml", &text).unwrap().playbook
    }

    fn plan(automated: usize, tenant: u64) -> Plan {
        let user = |i: usize| PlannedUser {
            id: format!("u{i}"),
            upn: format!("u{i}@c.com"),
            display_name: String::new(),
            bucket: Bucket::Automated,
            reason: "".into(),
            risk_level: None,
            roles: vec![],
            steps: vec!["0:revoke_sessions".to_owned()].into(),
        };
        Plan {
            playbook_name: "g".into(),
            playbook_sha256: String::new(),
            tenant: "demo".into(),
            tenant_users: tenant,
            steps: vec![],
            users: (0..automated).map(user).collect(),
            unresolved: vec![],
            bad_rows: vec![],
            estimate: Estimate::from_quota(&[], 0, 1),
        }
    }

    fn approval(operator: &str, hash: &str) -> Approval {
        Approval {
            operator: operator.into(),
            plan_hash: hash.into(),
            approved_at: jiff::Timestamp::now(),
        }
    }

    #[test]
    fn guards_refuse_too_many_users_and_too_much_of_the_tenant() {
        let pb = playbook("");
        assert!(check_guards(&pb, &plan(2, 10), &RecordOnly).is_empty());
        let refusals = check_guards(&pb, &plan(3, 4), &RecordOnly);
        assert!(matches!(
            refusals[0],
            Refusal::TooManyUsers {
                automated: 3,
                max: 2
            }
        ));
        assert!(matches!(refusals[1], Refusal::TooLargeFraction { .. }));
        assert!(
            refusals[1].to_string().contains("75.0 %"),
            "{}",
            refusals[1]
        );
    }

    #[test]
    fn approvals_count_distinct_operators_of_this_plan_only() {
        let pb = playbook("");
        let approvals = [
            approval("alice", "h1"),
            approval("alice", "h1"),
            approval("bob", "old"),
        ];
        assert_eq!(
            check_approvals(&pb, "h1", &approvals),
            Some(Refusal::NeedsApprovals { have: 1, need: 2 })
        );
        let approvals = [approval("alice", "h1"), approval("bob", "h1")];
        assert_eq!(check_approvals(&pb, "h1", &approvals), None);
    }
}
