//! `targets.csv` and `manual-queue.csv` of `resetctl plan`, `results.csv` of a run.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use super::write::{Existing, ReportError, write_file};
use crate::engine::execute::StepResult;
use crate::engine::plan::{Plan, PlannedUser};
use crate::targeting::Bucket;

/// The procedure recommended for a user in a manual queue.
pub fn manual_procedure(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Privileged => {
            "Verify identity out of band (call back a known number or in person); reset with a \
             Privileged Authentication Administrator account; revoke sessions; review role \
             assignments and PIM activations of the last 30 days; re-register MFA with a \
             phishing-resistant method."
        }
        Bucket::Hybrid => {
            "Reset in on-premises AD (or through SSPR with password writeback) and let it sync. \
             The playbook's cloud-side steps (revoking sessions, confirming compromise, removing \
             methods) ran for this user unless the playbook says hybrid_users: manual_only; then \
             revoke cloud sessions by hand, which works for synced users."
        }
        _ => "",
    }
}

/// Write every resolved user with bucket and reason.
pub fn write_targets(plan: &Plan, path: &Path, existing: Existing) -> Result<(), ReportError> {
    write_csv(path, existing, |w| {
        w.write_record(["user_id", "upn", "display_name", "bucket", "reason"])?;
        for user in &plan.users {
            w.write_record(row(&[
                &user.id,
                &user.upn,
                &user.display_name,
                user.bucket.as_str(),
                &user.reason,
            ]))?;
        }
        for target in &plan.unresolved {
            w.write_record(row(&[
                "",
                &target.target,
                "",
                "unresolved",
                &format!("{} ({})", target.reason, target.source),
            ]))?;
        }
        Ok(())
    })
}

/// Write one row per (user, step) with its outcome: `results.csv` of a run. Planned steps
/// the run did not get to (it was stopped, the breaker tripped, or a step's writes were
/// refused wholesale and left for the resume) get a `not_started` row, so the file is the
/// complete worklist of what remains.
pub fn write_results(
    plan: &Plan,
    results: &[StepResult],
    path: &Path,
    existing: Existing,
) -> Result<(), ReportError> {
    // Users with some result (a step refused wholesale has none: it was not applied).
    let started: HashSet<&str> = results.iter().map(|r| r.user_id.as_str()).collect();
    let ended: HashSet<(&str, &str)> = results
        .iter()
        .map(|r| (r.user_id.as_str(), r.step.as_str()))
        .collect();
    write_csv(path, existing, |w| {
        w.write_record(["user_id", "upn", "step", "outcome", "detail", "time"])?;
        for r in results {
            w.write_record(row(&[
                &r.user_id,
                &r.upn,
                &r.step,
                r.outcome.as_str(),
                r.detail.as_deref().unwrap_or(""),
                &r.at.to_string(),
            ]))?;
        }
        for user in plan.users.iter() {
            let detail = if started.contains(user.id.as_str()) {
                "not done: the run stopped before this step was applied; resume the run to do it"
            } else {
                "not done: the run stopped before this user's steps were applied; resume the \
                 run to do them"
            };
            let left = user
                .steps
                .iter()
                .filter(|step| !ended.contains(&(user.id.as_str(), step.as_str())));
            for step in left {
                w.write_record(row(&[&user.id, &user.upn, step, "not_started", detail, ""]))?;
            }
        }
        Ok(())
    })
}

/// Write the privileged and hybrid users with roles, reason and the manual procedure.
pub fn write_manual_queue(plan: &Plan, path: &Path, existing: Existing) -> Result<(), ReportError> {
    write_csv(path, existing, |w| {
        w.write_record([
            "user_id",
            "upn",
            "display_name",
            "queue",
            "roles",
            "reason",
            "procedure",
        ])?;
        let queued = |u: &&PlannedUser| matches!(u.bucket, Bucket::Privileged | Bucket::Hybrid);
        for user in plan.users.iter().filter(queued) {
            w.write_record(row(&[
                &user.id,
                &user.upn,
                &user.display_name,
                user.bucket.as_str(),
                &user.roles.join("; "),
                &user.reason,
                manual_procedure(user.bucket),
            ]))?;
        }
        Ok(())
    })
}

fn write_csv(
    path: &Path,
    existing: Existing,
    body: impl FnOnce(&mut csv::Writer<&mut BufWriter<File>>) -> csv::Result<()>,
) -> Result<(), ReportError> {
    write_file(path, existing, |out| {
        let mut writer = csv::Writer::from_writer(out);
        body(&mut writer).map_err(std::io::Error::other)?;
        writer
            .into_inner()
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
}

/// Write a CSV file of `header` and `rows`, every cell neutralised: for reports built
/// outside this module (`readiness`).
pub fn write_rows(
    path: &Path,
    existing: Existing,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Result<(), ReportError> {
    write_csv(path, existing, |w| {
        w.write_record(header)?;
        for r in rows {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            w.write_record(row(&cells))?;
        }
        Ok(())
    })
}

/// Neutralise each cell of a row ([`crate::spreadsheet::neutralise`]).
fn row(cells: &[&str]) -> Vec<String> {
    cells
        .iter()
        .map(|cell| crate::spreadsheet::neutralise(cell).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::{Estimate, Unresolved};

    fn user(id: &str, name: &str, bucket: Bucket, roles: &[&str]) -> PlannedUser {
        PlannedUser {
            id: id.into(),
            upn: format!("{id}@contoso.com"),
            display_name: name.into(),
            bucket,
            reason: format!("reason of {id}").into(),
            risk_level: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            steps: Vec::new().into(),
        }
    }

    fn plan() -> Plan {
        Plan {
            unusable_mobiles: 0,
            resolved_by: None,
            recovery: None,
            playbook_name: "p".into(),
            playbook_sha256: "h".into(),
            tenant: "demo".into(),
            tenant_users: 4,
            steps: vec![],
            users: vec![
                user("a", "=HYPERLINK(\"http://evil\")", Bucket::Automated, &[]),
                user(
                    "g",
                    "Grace, Admin",
                    Bucket::Privileged,
                    &["Global Administrator", "Security Administrator"],
                ),
                user("h", "Hybrid Hank", Bucket::Hybrid, &[]),
                user("b", "Break Glass", Bucket::Excluded, &[]),
            ],
            unresolved: vec![Unresolved {
                target: "ghost@contoso.com".into(),
                source: "dump.csv:9".into(),
                reason: "no such user".into(),
            }],
            bad_rows: vec![],
            estimate: Estimate::from_quota(&[], 0, 1),
        }
    }

    fn read(path: &Path) -> Vec<Vec<String>> {
        csv::Reader::from_path(path)
            .unwrap()
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn targets_lists_every_user_and_the_unresolved_with_formulas_neutralised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.csv");
        write_targets(&plan(), &path, Existing::Refuse).unwrap();
        let rows = read(&path);
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0][2], "'=HYPERLINK(\"http://evil\")");
        assert_eq!(rows[1][2], "Grace, Admin");
        assert_eq!(rows[4][3], "unresolved");
        assert!(rows[4][4].contains("dump.csv:9"));
    }

    #[test]
    fn manual_queue_holds_privileged_and_hybrid_with_roles_and_procedure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manual-queue.csv");
        write_manual_queue(&plan(), &path, Existing::Refuse).unwrap();
        let rows = read(&path);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0], "g");
        assert_eq!(rows[0][4], "Global Administrator; Security Administrator");
        assert!(rows[0][6].contains("Privileged Authentication Administrator"));
        assert_eq!(rows[1][3], "hybrid");
        assert!(rows[1][6].contains("on-premises"));
    }

    #[test]
    fn results_list_every_step_not_done() {
        let mut plan = plan();
        let steps: std::sync::Arc<[String]> = vec![
            "0:reset_password".to_owned(),
            "1:revoke_sessions".to_owned(),
        ]
        .into();
        plan.users[0].steps = steps.clone();
        let mut second = user("c", "Carl", Bucket::Automated, &[]);
        second.steps = steps;
        plan.users.push(second);
        let done = StepResult {
            user_id: "a".into(),
            upn: "a@contoso.com".into(),
            step: "0:reset_password".into(),
            outcome: crate::store::Outcome::Succeeded,
            detail: None,
            at: jiff::Timestamp::UNIX_EPOCH,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        write_results(&plan, &[done], &path, Existing::Refuse).unwrap();
        let rows = read(&path);
        let summary: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r[0].as_str(), r[2].as_str(), r[3].as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("a", "0:reset_password", "succeeded"),
                ("a", "1:revoke_sessions", "not_started"),
                ("c", "0:reset_password", "not_started"),
                ("c", "1:revoke_sessions", "not_started"),
            ]
        );
        assert!(
            rows[1][4].contains("before this step was applied"),
            "{:?}",
            rows[1]
        );
        assert!(
            rows[2][4].contains("user's steps were applied"),
            "{:?}",
            rows[2]
        );
    }

    #[test]
    fn unwritable_path_names_the_file() {
        let err = write_targets(
            &plan(),
            Path::new("/nonexistent/dir/targets.csv"),
            Existing::Replace,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/dir/targets.csv"),
            "{err}"
        );
    }
}
