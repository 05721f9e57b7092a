//! The gate between a plan and `--execute`: guards and approvals.
//!
//! Invariant: nothing is written unless `--execute` was given and the playbook's approvals
//! and guards pass, so a refusal here means nothing is written. The checks read only the
//! plan, the playbook and the approvals, so a dry run shows exactly what `--execute` would
//! decide.

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
        /// Users it and this plan both write to.
        shared: usize,
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
        /// Distinct approvers that count.
        have: usize,
        /// Required by the playbook.
        need: u32,
        /// The run to approve.
        run: RunId,
        /// How this plan differs from an approved plan of the same playbook, when the
        /// targets changed after approval.
        drift: Option<Drift>,
    },
    /// An approval the audit trail does not show (a row written straight into the store,
    /// or a trail that lost the record): not counted.
    UnverifiedApproval {
        /// Who it claims approved.
        operator: String,
    },
    /// The executing operator approved: an operator cannot be their own second pair of eyes.
    OwnApproval {
        /// The operator.
        operator: String,
    },
    /// A secret the playbook creates (temporary password, Temporary Access Pass) could not
    /// reach its user: creating it would only lock the user out.
    Undeliverable(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unfinished { run, shared } => write!(
                f,
                "run {run} on this tenant did not finish and writes to {shared} of this plan's \
                 users: continue it with `resetctl run --resume {run}` (a new run would write \
                 to them a second time)"
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
            Refusal::NeedsApprovals {
                have,
                need,
                run,
                drift,
            } => {
                write!(
                    f,
                    "approvals: {have} of {need} required operators approved this plan \
                     (resetctl runs approve {run} --as NAME)"
                )?;
                if let Some(drift) = drift {
                    write!(
                        f,
                        "; the targets changed since run {} was approved: {} user(s) added, {} removed",
                        drift.approved_run,
                        drift.added.len(),
                        drift.removed.len()
                    )?;
                    for (sign, users) in [("+", &drift.added), ("-", &drift.removed)] {
                        for upn in users.iter().take(5) {
                            write!(f, " {sign}{}", super::operator::escape(upn))?;
                        }
                        if users.len() > 5 {
                            write!(f, " ({sign}{} more)", users.len() - 5)?;
                        }
                    }
                }
                Ok(())
            }
            Refusal::UnverifiedApproval { operator } => write!(
                f,
                "the approval by {operator} is not shown by the audit trail; it does not count"
            ),
            Refusal::OwnApproval { operator } => write!(
                f,
                "{operator} approved this plan and is executing it; their approval does not count"
            ),
            Refusal::Undeliverable(message) => f.write_str(message),
        }
    }
}

/// How a plan differs from the approved plan of an earlier run of the same playbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The run whose plan was approved.
    pub approved_run: RunId,
    /// Users this plan writes to that the approved one did not.
    pub added: Vec<String>,
    /// Users the approved plan wrote to that this one does not.
    pub removed: Vec<String>,
}

impl Drift {
    /// The difference between `approved` (of `approved_run`) and `current`, by user.
    pub fn between(approved_run: RunId, approved: &Plan, current: &Plan) -> Drift {
        let written = |plan: &Plan| -> BTreeSet<String> {
            plan.users
                .iter()
                .filter(|u| !u.steps.is_empty())
                .map(|u| u.upn.clone())
                .collect()
        };
        let (before, now) = (written(approved), written(current));
        Drift {
            approved_run,
            added: now.difference(&before).cloned().collect(),
            removed: before.difference(&now).cloned().collect(),
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

/// The approvals requirement: distinct operators, other than the one executing, whose
/// unconsumed approval of `plan_hash` on `run` the audit trail shows (`trail_shows`). An
/// approval that does not count for either reason is named when the requirement fails.
pub fn check_approvals(
    playbook: &Playbook,
    run: &RunId,
    plan_hash: &str,
    approvals: &[Approval],
    executing: &str,
    trail_shows: &dyn Fn(&Approval) -> bool,
) -> Vec<Refusal> {
    let need = playbook.guards.approvals_required;
    let mut have = BTreeSet::new();
    let mut notes = Vec::new();
    for approval in approvals
        .iter()
        .filter(|a| a.plan_hash == plan_hash && a.consumed_at.is_none())
    {
        if approval.operator == executing {
            notes.push(Refusal::OwnApproval {
                operator: approval.operator.clone(),
            });
        } else if !trail_shows(approval) {
            notes.push(Refusal::UnverifiedApproval {
                operator: approval.operator.clone(),
            });
        } else {
            have.insert(approval.operator.as_str());
        }
    }
    if have.len() >= need as usize {
        return Vec::new();
    }
    let mut refusals = vec![Refusal::NeedsApprovals {
        have: have.len(),
        need,
        run: run.clone(),
        drift: None,
    }];
    refusals.extend(notes);
    refusals
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
            unusable_mobiles: 0,
            resolved_by: None,
            recovery: None,
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
            origin: "cli test".into(),
            audit: Some((1, "h".into())),
            consumed_at: None,
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
        let run = RunId("r".into());
        let shown = |_: &Approval| true;
        let approvals = [
            approval("alice", "h1"),
            approval("alice", "h1"),
            approval("bob", "old"),
        ];
        assert_eq!(
            check_approvals(&pb, &run, "h1", &approvals, "ops", &shown),
            vec![Refusal::NeedsApprovals {
                have: 1,
                need: 2,
                run: run.clone(),
                drift: None
            }]
        );
        let approvals = [approval("alice", "h1"), approval("bob", "h1")];
        assert!(check_approvals(&pb, &run, "h1", &approvals, "ops", &shown).is_empty());
    }

    #[test]
    fn consumed_own_and_unverified_approvals_do_not_count() {
        let pb = playbook("");
        let run = RunId("r".into());
        let mut used = approval("carol", "h1");
        used.consumed_at = Some(jiff::Timestamp::now());
        let approvals = [approval("alice", "h1"), approval("bob", "h1"), used];
        // bob executes: his own approval does not count.
        let refusals = check_approvals(&pb, &run, "h1", &approvals, "bob", &|_| true);
        assert!(matches!(
            refusals[0],
            Refusal::NeedsApprovals { have: 1, .. }
        ));
        assert_eq!(
            refusals[1],
            Refusal::OwnApproval {
                operator: "bob".into()
            }
        );
        // alice's approval is not in the trail.
        let refusals = check_approvals(&pb, &run, "h1", &approvals, "ops", &|a| {
            a.operator != "alice"
        });
        assert!(matches!(
            refusals[0],
            Refusal::NeedsApprovals { have: 1, .. }
        ));
        assert!(
            refusals[0]
                .to_string()
                .contains("resetctl runs approve r --as")
        );
        assert_eq!(
            refusals[1],
            Refusal::UnverifiedApproval {
                operator: "alice".into()
            }
        );
    }

    #[test]
    fn drift_names_the_users_added_and_removed() {
        let approved = plan(3, 10);
        let mut current = plan(2, 10);
        current.users.push(PlannedUser {
            upn: "new@c.com".into(),
            ..current.users[0].clone()
        });
        let drift = Drift::between(RunId("old".into()), &approved, &current);
        assert_eq!(drift.added, vec!["new@c.com".to_owned()]);
        assert_eq!(drift.removed, vec!["u2@c.com".to_owned()]);
        let refusal = Refusal::NeedsApprovals {
            have: 0,
            need: 1,
            run: RunId("new".into()),
            drift: Some(drift),
        };
        let text = refusal.to_string();
        assert!(text.contains("runs approve new --as"), "{text}");
        assert!(
            text.contains("since run old was approved: 1 user(s) added, 1 removed"),
            "{text}"
        );
        assert!(
            text.contains("+new@c.com") && text.contains("-u2@c.com"),
            "{text}"
        );
    }
}
