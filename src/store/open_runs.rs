//! The run store answers the verification flow's "is this user in an open mass-reset run?"
//! ([`OpenRuns`]): a single-user reset in the middle of an incident's mass reset would race
//! it, and could hand an attacker who holds the user's session a fresh credential.

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{RunStore, SqliteStore};
use crate::verify::facts::OpenRuns;

/// Only the users' ids of a stored plan (the rest of the document is skipped unread).
#[derive(Deserialize)]
struct PlanUsers {
    users: Vec<PlanUser>,
}

#[derive(Deserialize)]
struct PlanUser {
    id: String,
}

impl OpenRuns for SqliteStore {
    fn targeting<'a>(
        &'a self,
        tenant: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(async move {
            let runs = self.runs().await.map_err(|e| e.to_string())?;
            let mut open = Vec::new();
            // Open runs are few (an incident's one or two); their plans are read one by one.
            for run in runs
                .iter()
                .filter(|r| r.tenant == tenant && r.status.unfinished())
            {
                let json = self.plan_json(&run.id).await.map_err(|e| e.to_string())?;
                let plan: PlanUsers = serde_json::from_str(&json)
                    .map_err(|e| format!("plan of run {}: {e}", run.id))?;
                if plan
                    .users
                    .iter()
                    .any(|u| u.id.eq_ignore_ascii_case(user_id))
                {
                    open.push(run.id.to_string());
                }
            }
            Ok(open)
        })
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::store::{NewRun, PlanDocument, RunId, RunStatus};

    async fn run(store: &SqliteStore, id: &str, tenant: &str, users: &[&str], status: RunStatus) {
        let users: Vec<String> = users.iter().map(|u| format!(r#"{{"id":"{u}"}}"#)).collect();
        store
            .create_run(NewRun {
                id: RunId(id.into()),
                created_at: Timestamp::now(),
                playbook_name: "credential-dump-reset".into(),
                playbook_path: "playbooks/credential-dump.yaml".into(),
                tenant: tenant.into(),
                plan_hash: "h".into(),
                plan: PlanDocument::text(format!(r#"{{"users":[{}]}}"#, users.join(","))),
            })
            .await
            .unwrap();
        store
            .set_status(&RunId(id.into()), status, Timestamp::now())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn only_unfinished_runs_of_the_tenant_that_plan_the_user_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("runs.db")).unwrap();
        run(&store, "r-open", "demo", &["u1", "u2"], RunStatus::Stopped).await;
        run(&store, "r-done", "demo", &["u1"], RunStatus::Finished).await;
        run(&store, "r-dry", "demo", &["u1"], RunStatus::Planned).await;
        run(&store, "r-other", "fabrikam", &["u1"], RunStatus::Running).await;
        assert_eq!(store.targeting("demo", "U1").await.unwrap(), vec!["r-open"]);
        assert!(store.targeting("demo", "u3").await.unwrap().is_empty());
    }
}
