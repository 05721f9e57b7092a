//! Ending temporary group memberships (`add_to_group` with `expiry`).
//!
//! An `add_to_group` step journals, as typed facts of its row, the group, when the
//! membership ends, and whether the user was already a direct member before its write.
//! [`due`] finds the memberships the run made whose time has come and that have not been
//! ended; [`expire`] removes them, journaling each removal as its own row (keyed
//! `<step>#expire.<attempt>`, its facts naming the step it ends) with the same
//! intent-before / outcome-after discipline as every other write. A failed removal is tried
//! again by the next pass under the next attempt's key; an attempt whose outcome was lost is
//! finished under its own key. Every attempt first reads the group, so a removal is never
//! made blindly twice.
//!
//! A membership the user had before the run is never removed: it is not the run's. One
//! whose origin cannot be known (its answer was lost and it was journaled before origins
//! were read) goes to an operator once, and is not removed either.

use futures::TryStreamExt;
use jiff::Timestamp;

use super::EngineError;
use super::journal_key::RemovalKey;
use super::trail;
use crate::audit::{self, AuditHandle, Details, Event};
use crate::directory::{Directory, DirectoryErrorKind};
use crate::store::{
    Facts, IntentRecorded, JournalEntry, Membership, Outcome, Removal, RunId, RunStore,
};

/// A membership to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRemoval {
    /// The user.
    pub user_id: String,
    /// The `add_to_group` step's journal key.
    pub step: String,
    /// The group.
    pub group_id: String,
    /// When the membership was to end.
    pub until: Timestamp,
    /// Whether the run is known to have made it (`false`: an operator must decide).
    pub made_by_run: bool,
}

/// Memberships of a run's journal that end at or before `at` and are not ended yet. Those
/// the user had before the run are not the run's to end and are never due.
pub fn due(journal: &[JournalEntry], at: Timestamp) -> Vec<DueRemoval> {
    // A removal attempt that succeeded, or that handed the membership to an operator, ends it.
    let ended: std::collections::HashSet<(&str, &str)> = journal
        .iter()
        .filter(|e| matches!(e.outcome, Some(Outcome::Succeeded | Outcome::ManualCheck)))
        .filter_map(|e| match &e.facts {
            Some(Facts::Removal(r)) => Some((e.user_id.as_str(), r.of_step.as_str())),
            _ => None,
        })
        .collect();
    journal
        .iter()
        .filter(|e| e.outcome == Some(Outcome::Succeeded))
        .filter(|e| !ended.contains(&(e.user_id.as_str(), e.step.as_str())))
        .filter_map(|e| match &e.facts {
            Some(Facts::Membership(Membership {
                group_id,
                until,
                member_before,
            })) if *until <= at && *member_before != Some(true) => Some(DueRemoval {
                user_id: e.user_id.clone(),
                step: e.step.clone(),
                group_id: group_id.clone(),
                until: *until,
                made_by_run: *member_before == Some(false),
            }),
            _ => None,
        })
        .collect()
}

/// What one expiry pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireSummary {
    /// Memberships removed (or found already gone).
    pub removed: usize,
    /// Removals that failed (retried by the next pass), or memberships of unknown origin
    /// left to an operator.
    pub failed: usize,
}

/// Remove every due membership of `run` (each removal is audited with the run's ticket,
/// when it has one).
pub async fn expire<S: RunStore>(
    store: &S,
    directory: &dyn Directory,
    audit: &AuditHandle,
    run: &RunId,
    at: Timestamp,
) -> Result<ExpireSummary, EngineError> {
    let journal = store.journal(run).await?;
    let ticket = store.run(run).await?.ticket;
    let mut summary = ExpireSummary::default();
    for removal in due(&journal, at) {
        let attempts: Vec<&JournalEntry> = journal
            .iter()
            .filter(|e| e.user_id == removal.user_id)
            .filter(|e| matches!(&e.facts, Some(Facts::Removal(r)) if r.of_step == removal.step))
            .collect();
        // Finish an attempt whose outcome was lost; otherwise start the next one.
        let key = match attempts.iter().find(|e| e.outcome.is_none()) {
            Some(open) => open.step.clone(),
            None => RemovalKey {
                of_step: &removal.step,
                attempt: attempts.len() + 1,
            }
            .to_string(),
        };
        let facts = Facts::Removal(Removal {
            group_id: removal.group_id.clone(),
            of_step: removal.step.clone(),
        });
        match store
            .record_intent(run, &removal.user_id, &key, Some(facts), Timestamp::now())
            .await?
        {
            IntentRecorded::Existing(JournalEntry {
                outcome: Some(_), ..
            }) => continue,
            IntentRecorded::Existing(_) | IntentRecorded::New => {}
        }
        let (outcome, detail) = if removal.made_by_run {
            remove(directory, &removal).await
        } else {
            (
                Outcome::ManualCheck,
                format!(
                    "cannot tell whether this run made the membership of {} (its answer was \
                     lost and the group was not read before the write): not removed; check by \
                     hand",
                    removal.group_id
                ),
            )
        };
        if outcome == Outcome::Succeeded {
            summary.removed += 1;
        } else {
            summary.failed += 1;
        }
        store
            .record_outcome(
                run,
                &removal.user_id,
                &key,
                outcome,
                Some(detail.clone()),
                Timestamp::now(),
            )
            .await?;
        let mut details = Details::new()
            .with("run", run.0.as_str())?
            .with("group", removal.group_id.as_str())?
            .with("user_id", removal.user_id.as_str())?
            .with("detail", detail.as_str())?;
        if let Some(ticket) = &ticket {
            details = details.with("ticket", ticket.as_str())?;
        }
        let audit_outcome = if outcome == Outcome::Succeeded {
            audit::Outcome::Success
        } else {
            audit::Outcome::Failure
        };
        let event = Event::new(
            "resetctl",
            "user.group_membership_expire",
            trail::escaped(&removal.user_id),
            audit_outcome,
        )?
        .with_details(details);
        audit.record(event).await?;
    }
    Ok(summary)
}

/// Remove one membership unless the group no longer holds the user.
async fn remove(directory: &dyn Directory, removal: &DueRemoval) -> (Outcome, String) {
    let members: Result<Vec<String>, _> = directory
        .list_group_members(&removal.group_id, false)
        .map_ok(|u| u.id.to_ascii_lowercase())
        .try_collect()
        .await;
    match members {
        Ok(ids) if !ids.contains(&removal.user_id.to_ascii_lowercase()) => {
            return (
                Outcome::Succeeded,
                format!("no longer a member of {}", removal.group_id),
            );
        }
        Ok(_) => {}
        Err(err) => {
            return (
                Outcome::Failed,
                format!("reading members of {}: {err}", removal.group_id),
            );
        }
    }
    match directory
        .remove_group_member(&removal.group_id, &removal.user_id)
        .await
    {
        Ok(()) => (
            Outcome::Succeeded,
            format!("removed from {}", removal.group_id),
        ),
        Err(err) if err.kind == DirectoryErrorKind::NotFound => (
            Outcome::Succeeded,
            format!("no longer a member of {}", removal.group_id),
        ),
        Err(err) => (Outcome::Failed, err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditConfig;
    use crate::directory::memory::{MemoryDirectory, Op};
    use crate::store::{NewRun, PlanDocument, SqliteStore};

    fn entry(
        user: &str,
        step: &str,
        outcome: Option<Outcome>,
        facts: Option<Facts>,
    ) -> JournalEntry {
        JournalEntry {
            user_id: user.into(),
            step: step.into(),
            intent_at: Timestamp::now(),
            outcome,
            outcome_at: None,
            detail: None,
            facts,
        }
    }

    fn membership(group: &str, until: Timestamp, member_before: Option<bool>) -> Option<Facts> {
        Some(Facts::Membership(Membership {
            group_id: group.into(),
            until,
            member_before,
        }))
    }

    fn removal(of_step: &str) -> Option<Facts> {
        Some(Facts::Removal(Removal {
            group_id: "g1".into(),
            of_step: of_step.into(),
        }))
    }

    #[test]
    fn due_memberships_are_those_the_run_made_ended_and_not_yet_removed() {
        let t0: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let made = membership("g1", t0, Some(false));
        let step = "2:add_to_group";
        let journal = vec![
            entry("a", step, Some(Outcome::Succeeded), made.clone()),
            entry("b", step, Some(Outcome::Succeeded), made.clone()),
            entry(
                "b",
                "2:add_to_group#expire.1",
                Some(Outcome::Failed),
                removal(step),
            ),
            entry(
                "b",
                "2:add_to_group#expire.2",
                Some(Outcome::Succeeded),
                removal(step),
            ),
            entry("c", step, Some(Outcome::Failed), made.clone()),
            entry(
                "d",
                step,
                Some(Outcome::Succeeded),
                membership("g1", later, Some(false)),
            ),
            entry(
                "e",
                step,
                Some(Outcome::Succeeded),
                membership("g1", t0, Some(true)),
            ),
            entry(
                "f",
                step,
                Some(Outcome::Succeeded),
                membership("g1", t0, None),
            ),
            entry(
                "g",
                step,
                Some(Outcome::Succeeded),
                membership("g1", t0, None),
            ),
            entry(
                "g",
                "2:add_to_group#expire.1",
                Some(Outcome::ManualCheck),
                removal(step),
            ),
            // A key that merely looks like a removal is not one without its facts.
            entry(
                "a",
                "2:add_to_group#expire.1",
                Some(Outcome::Succeeded),
                None,
            ),
        ];
        let due = due(&journal, t0);
        let users: Vec<(&str, bool)> = due
            .iter()
            .map(|d| (d.user_id.as_str(), d.made_by_run))
            .collect();
        assert_eq!(users, [("a", true), ("f", false)]);
        assert_eq!(due[0].group_id, "g1");
        assert_eq!(due[0].until, t0);
        assert_eq!(due[0].step, step);
    }

    struct Setup {
        _dir: tempfile::TempDir,
        store: SqliteStore,
        audit: AuditHandle,
        run: RunId,
    }

    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("runs.sqlite")).unwrap();
        let run = RunId("r1".into());
        store
            .create_run(NewRun {
                id: run.clone(),
                created_at: Timestamp::now(),
                playbook_name: "p".into(),
                playbook_path: "p.yaml".into(),
                tenant: "t".into(),
                plan_hash: "h".into(),
                plan: PlanDocument::text("{}"),
            })
            .await
            .unwrap();
        let audit = AuditHandle::open(&AuditConfig::new(dir.path().join("audit.jsonl")))
            .await
            .unwrap();
        Setup {
            _dir: dir,
            store,
            audit,
            run,
        }
    }

    async fn journal_add(s: &Setup, user: &str, facts: Option<Facts>) {
        let step = "0:add_to_group";
        s.store
            .record_intent(&s.run, user, step, facts, Timestamp::now())
            .await
            .unwrap();
        s.store
            .record_outcome(
                &s.run,
                user,
                step,
                Outcome::Succeeded,
                None,
                Timestamp::now(),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn only_memberships_the_run_made_are_removed_and_each_once() {
        let s = setup().await;
        let t0 = Timestamp::now();
        let dir = MemoryDirectory::new()
            .with_user("made@x")
            .with_user("before@x")
            .with_user("unknown@x")
            .with_group("g1", &["id-made@x", "id-before@x", "id-unknown@x"]);
        journal_add(&s, "id-made@x", membership("g1", t0, Some(false))).await;
        journal_add(&s, "id-before@x", membership("g1", t0, Some(true))).await;
        journal_add(&s, "id-unknown@x", membership("g1", t0, None)).await;

        let first = expire(&s.store, &dir, &s.audit, &s.run, t0).await.unwrap();
        assert_eq!(
            first,
            ExpireSummary {
                removed: 1,
                failed: 1
            }
        );
        assert_eq!(
            dir.members("g1"),
            ["id-before@x", "id-unknown@x"],
            "neither a membership from before the run nor one of unknown origin is removed"
        );
        let again = expire(&s.store, &dir, &s.audit, &s.run, t0).await.unwrap();
        assert_eq!(again, ExpireSummary::default(), "each is handled once");
        assert_eq!(dir.calls(Op::RemoveGroupMember), 1);
        let journal = s.store.journal(&s.run).await.unwrap();
        let manual: Vec<_> = journal
            .iter()
            .filter(|e| e.outcome == Some(Outcome::ManualCheck))
            .collect();
        assert_eq!(manual.len(), 1);
        assert_eq!(manual[0].user_id, "id-unknown@x");
        s.audit.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_removal_is_tried_again_under_the_next_key() {
        let s = setup().await;
        let t0 = Timestamp::now();
        let dir = MemoryDirectory::new()
            .with_user("a@x")
            .with_group("g1", &["id-a@x"]);
        journal_add(&s, "id-a@x", membership("g1", t0, Some(false))).await;
        dir.fail_next(Op::RemoveGroupMember, DirectoryErrorKind::Denied);
        let first = expire(&s.store, &dir, &s.audit, &s.run, t0).await.unwrap();
        assert_eq!(first.failed, 1);
        let second = expire(&s.store, &dir, &s.audit, &s.run, t0).await.unwrap();
        assert_eq!(second.removed, 1);
        assert!(dir.members("g1").is_empty());
        let keys: Vec<String> = s
            .store
            .journal(&s.run)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.step)
            .collect();
        assert_eq!(
            keys,
            [
                "0:add_to_group",
                "0:add_to_group#expire.1",
                "0:add_to_group#expire.2"
            ]
        );
        s.audit.close().await.unwrap();
    }
}
