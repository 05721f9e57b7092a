//! Ending temporary group memberships (`add_to_group` with `expiry`).
//!
//! When `add_to_group` succeeds, its journal detail records the group and the end of the
//! membership as `member of <group id> until <RFC 3339 time>`. [`due`] finds the memberships
//! whose time has come and that have not been removed; [`expire`] removes them, journaling
//! each removal as its own step (`<step>#expire`) with the same intent-before / outcome-after
//! discipline as every other write. A failed removal is tried again by the next pass under a
//! new key (`<step>#expire.2`, ...); an attempt whose outcome was lost is finished under its
//! own key. Every attempt first reads the group, so a removal is never made blindly twice.

use futures::TryStreamExt;
use jiff::Timestamp;

use super::EngineError;
use crate::audit::{self, AuditHandle, Details, Event};
use crate::directory::Directory;
use crate::graph::GraphErrorKind;
use crate::store::{IntentRecorded, JournalEntry, Outcome, RunId, RunStore};

/// Marks the journal key of a removal attempt: `<step>#expire.<attempt>`.
const EXPIRE_MARK: &str = "#expire.";

/// The journal detail of a successful `add_to_group`.
pub fn membership_detail(group_id: &str, until: Timestamp) -> String {
    format!("member of {group_id} until {until}")
}

fn parse_detail(detail: &str) -> Option<(String, Timestamp)> {
    // Also found inside a read-back note ("read back: member of ...").
    let rest = &detail[detail.find("member of ")? + "member of ".len()..];
    let (group, until) = rest.split_once(" until ")?;
    Some((group.to_owned(), until.parse().ok()?))
}

/// A membership to remove.
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
}

/// Memberships of a run's journal that end at or before `at` and are not removed yet.
pub fn due(journal: &[JournalEntry], at: Timestamp) -> Vec<DueRemoval> {
    let removed: std::collections::HashSet<(&str, &str)> = journal
        .iter()
        .filter(|e| e.outcome == Some(Outcome::Succeeded))
        .filter_map(|e| Some((e.user_id.as_str(), e.step.split_once(EXPIRE_MARK)?.0)))
        .collect();
    journal
        .iter()
        .filter(|e| e.outcome == Some(Outcome::Succeeded) && e.step.ends_with(":add_to_group"))
        .filter(|e| !removed.contains(&(e.user_id.as_str(), e.step.as_str())))
        .filter_map(|e| {
            let (group_id, until) = parse_detail(e.detail.as_deref()?)?;
            (until <= at).then(|| DueRemoval {
                user_id: e.user_id.clone(),
                step: e.step.clone(),
                group_id,
                until,
            })
        })
        .collect()
}

/// What one expiry pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireSummary {
    /// Memberships removed (or found already gone).
    pub removed: usize,
    /// Removals that failed (retried by the next pass).
    pub failed: usize,
}

/// Remove every due membership of `run`.
pub async fn expire<S: RunStore>(
    store: &S,
    directory: &dyn Directory,
    audit: &AuditHandle,
    run: &RunId,
    at: Timestamp,
) -> Result<ExpireSummary, EngineError> {
    let journal = store.journal(run).await?;
    let mut summary = ExpireSummary::default();
    for removal in due(&journal, at) {
        let prefix = format!("{}{EXPIRE_MARK}", removal.step);
        let attempts: Vec<&JournalEntry> = journal
            .iter()
            .filter(|e| e.user_id == removal.user_id && e.step.starts_with(&prefix))
            .collect();
        // Finish an attempt whose outcome was lost; otherwise start the next one.
        let attempt = match attempts.iter().find(|e| e.outcome.is_none()) {
            Some(open) => open.step.clone(),
            None => format!("{prefix}{}", attempts.len() + 1),
        };
        match store
            .record_intent(run, &removal.user_id, &attempt, Timestamp::now())
            .await?
        {
            IntentRecorded::Existing(JournalEntry {
                outcome: Some(_), ..
            }) => continue,
            IntentRecorded::Existing(_) | IntentRecorded::New => {}
        }
        let key = attempt;
        let (outcome, detail) = remove(directory, &removal).await;
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
        let details = Details::new()
            .with("run", run.0.as_str())?
            .with("group", removal.group_id.as_str())?
            .with("user_id", removal.user_id.as_str())?
            .with("detail", detail.as_str())?;
        let audit_outcome = if outcome == Outcome::Succeeded {
            audit::Outcome::Success
        } else {
            audit::Outcome::Failure
        };
        let event = Event::new(
            "resetctl",
            "user.group_membership_expire",
            removal.user_id.as_str(),
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
                format!("reading members of {}: {:?}", removal.group_id, err.kind),
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
        Err(err) if err.kind == GraphErrorKind::NotFound => (
            Outcome::Succeeded,
            format!("no longer a member of {}", removal.group_id),
        ),
        Err(err) => (
            Outcome::Failed,
            format!("{:?} {}", err.kind, err.code.unwrap_or_default()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        user: &str,
        step: &str,
        outcome: Option<Outcome>,
        detail: Option<String>,
    ) -> JournalEntry {
        JournalEntry {
            user_id: user.into(),
            step: step.into(),
            intent_at: Timestamp::now(),
            outcome,
            outcome_at: None,
            detail,
        }
    }

    #[test]
    fn due_memberships_are_those_ended_and_not_yet_removed() {
        let t0: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let detail = Some(membership_detail("g1", t0));
        let journal = vec![
            entry(
                "a",
                "2:add_to_group",
                Some(Outcome::Succeeded),
                detail.clone(),
            ),
            entry(
                "b",
                "2:add_to_group",
                Some(Outcome::Succeeded),
                detail.clone(),
            ),
            entry(
                "b",
                "2:add_to_group#expire.1",
                Some(Outcome::Failed),
                Some("Forbidden".into()),
            ),
            entry(
                "b",
                "2:add_to_group#expire.2",
                Some(Outcome::Succeeded),
                Some("removed".into()),
            ),
            entry("c", "2:add_to_group", Some(Outcome::Failed), detail.clone()),
            entry(
                "d",
                "2:add_to_group",
                Some(Outcome::Succeeded),
                Some(membership_detail("g1", later)),
            ),
        ];
        let due = due(&journal, t0);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].user_id, "a");
        assert_eq!(due[0].group_id, "g1");
        assert_eq!(due[0].until, t0);
    }

    #[test]
    fn details_round_trip() {
        let t: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        assert_eq!(
            parse_detail(&membership_detail("g", t)),
            Some(("g".into(), t))
        );
        assert_eq!(parse_detail("removed"), None);
        let read_back = format!("read back: {}", membership_detail("g", t));
        assert_eq!(parse_detail(&read_back), Some(("g".into(), t)));
    }
}
