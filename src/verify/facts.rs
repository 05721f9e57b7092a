//! [`Facts`]: what the runtime looks up about a user before any path starts — whether
//! Identity Protection rates them high risk, whether a mass-reset run that is not finished
//! targets them, whether they hold a directory role. The caller of a request never supplies
//! these: a help-desk form that could say "not an admin" would be the hole this flow closes.
//!
//! [`LiveFacts`] reads them from the directory and the run store. A lookup that fails stops
//! the request (fail closed): a flow that cannot tell whether the user is an administrator
//! must not reset them.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};

use crate::directory::{Directory, DirectoryErrorKind, ObjectKind, RiskLevel};

/// The facts about one user that decide whether the automated paths may run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFacts {
    /// Identity Protection rates the user high risk.
    pub high_risk: bool,
    /// Unfinished mass-reset runs that target the user (their ids).
    pub open_runs: Vec<String>,
    /// The user holds a directory role (active or PIM-eligible, directly or through a
    /// group), or is one of the runner's own accounts.
    pub privileged: bool,
}

/// Why facts could not be looked up.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct FactsError {
    /// What was being read (`directory role assignments`, `open runs`).
    pub what: &'static str,
    /// Why it failed.
    pub detail: String,
}

/// Looks facts up about a user, by directory object id.
pub trait Facts: Send + Sync {
    /// The facts about `user_id` (with `upn` for the checks that name accounts).
    fn about<'a>(
        &'a self,
        user_id: &'a str,
        upn: &'a str,
    ) -> BoxFuture<'a, Result<UserFacts, FactsError>>;
}

/// The unfinished mass-reset runs of a tenant that target a user: the run store answers.
pub trait OpenRuns: Send + Sync {
    /// Ids of runs of `tenant` that began executing and did not finish, and whose plan
    /// names `user_id`.
    fn targeting<'a>(
        &'a self,
        tenant: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, String>>;
}

/// Facts from the tenant's directory and the run store.
pub struct LiveFacts {
    tenant: String,
    directory: Arc<dyn Directory>,
    runs: Arc<dyn OpenRuns>,
    /// The runner's own accounts (never reset by the runner), lower-case UPNs or ids.
    runner_accounts: BTreeSet<String>,
}

/// How many group-membership checks run at once.
const MEMBERSHIP_CHECKS_IN_FLIGHT: usize = 8;

impl LiveFacts {
    /// Facts about users of `tenant`.
    pub fn new(
        tenant: impl Into<String>,
        directory: Arc<dyn Directory>,
        runs: Arc<dyn OpenRuns>,
        runner_accounts: &[String],
    ) -> Self {
        LiveFacts {
            tenant: tenant.into(),
            directory,
            runs,
            runner_accounts: runner_accounts
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect(),
        }
    }

    async fn high_risk(&self, user_id: &str) -> Result<bool, FactsError> {
        let risky: Vec<_> = self
            .directory
            .list_risky_users(vec![RiskLevel::High])
            .try_collect()
            .await
            .map_err(|e| FactsError {
                what: "Identity Protection risky users",
                detail: e.to_string(),
            })?;
        Ok(risky.iter().any(|r| r.id.eq_ignore_ascii_case(user_id)))
    }

    /// Any directory role grant, active or eligible, to the user or to a group the user
    /// is a member of (transitively: `checkMemberGroups`-style membership).
    async fn privileged(&self, user_id: &str) -> Result<bool, FactsError> {
        let read = |what: &'static str| {
            move |e: crate::directory::DirectoryError| FactsError {
                what,
                detail: e.to_string(),
            }
        };
        let assignments: Vec<_> = self
            .directory
            .list_role_assignments(None)
            .try_collect()
            .await
            .map_err(read("directory role assignments"))?;
        let eligibilities: Vec<_> = self
            .directory
            .list_role_eligibilities(None)
            .try_collect()
            .await
            .map_err(read("PIM role eligibilities"))?;
        let mut others = BTreeSet::new();
        for a in &assignments {
            if a.principal_id.eq_ignore_ascii_case(user_id) {
                return Ok(true);
            }
            // A principal Graph says is not a group (a service principal, another user)
            // cannot make this user privileged.
            if a.principal
                .as_ref()
                .is_none_or(|p| p.kind == ObjectKind::Group)
            {
                others.insert(a.principal_id.to_ascii_lowercase());
            }
        }
        for e in &eligibilities {
            if e.principal_id.eq_ignore_ascii_case(user_id) {
                return Ok(true);
            }
            others.insert(e.principal_id.to_ascii_lowercase());
        }
        let directory = &self.directory;
        let mut checks = futures::stream::iter(others)
            .map(|group| async move {
                match directory.is_group_member(&group, user_id).await {
                    Ok(member) => Ok(member),
                    // Not a group (an eligible user or service principal), or gone.
                    Err(e) if e.kind == DirectoryErrorKind::NotFound => Ok(false),
                    Err(e) => Err(read("role-holding group membership")(e)),
                }
            })
            .buffer_unordered(MEMBERSHIP_CHECKS_IN_FLIGHT);
        while let Some(member) = checks.next().await {
            if member? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Facts for LiveFacts {
    fn about<'a>(
        &'a self,
        user_id: &'a str,
        upn: &'a str,
    ) -> BoxFuture<'a, Result<UserFacts, FactsError>> {
        Box::pin(async move {
            let runner = self.runner_accounts.contains(&upn.to_ascii_lowercase())
                || self.runner_accounts.contains(&user_id.to_ascii_lowercase());
            let runs = async {
                self.runs
                    .targeting(&self.tenant, user_id)
                    .await
                    .map_err(|detail| FactsError {
                        what: "open mass-reset runs",
                        detail,
                    })
            };
            let (high_risk, privileged, open_runs) =
                futures::try_join!(self.high_risk(user_id), self.privileged(user_id), runs)?;
            Ok(UserFacts {
                high_risk,
                open_runs,
                privileged: privileged || runner,
            })
        })
    }
}

/// No run store: no runs are open (a process that never runs mass resets).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRuns;

impl OpenRuns for NoRuns {
    fn targeting<'a>(
        &'a self,
        _tenant: &'a str,
        _user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::memory::MemoryDirectory;

    const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";

    fn tenant() -> MemoryDirectory {
        MemoryDirectory::new()
            .with_user("ann@contoso.test")
            .with_user("bob@contoso.test")
            .with_user("cat@contoso.test")
            .with_group("g-admins", &["id-cat@contoso.test"])
            .with_role_assignable("g-admins")
            .with_role_assignment("id-bob@contoso.test", GLOBAL_ADMIN)
            .with_role_assignment("g-admins", GLOBAL_ADMIN)
    }

    async fn facts_of(dir: MemoryDirectory, upn: &str, runner: &[String]) -> UserFacts {
        let facts = LiveFacts::new("demo", Arc::new(dir), Arc::new(NoRuns), runner);
        facts.about(&format!("id-{upn}"), upn).await.unwrap()
    }

    #[tokio::test]
    async fn roles_direct_or_through_a_group_make_a_user_privileged() {
        assert_eq!(
            facts_of(tenant(), "ann@contoso.test", &[]).await,
            UserFacts::default()
        );
        assert!(facts_of(tenant(), "bob@contoso.test", &[]).await.privileged);
        assert!(facts_of(tenant(), "cat@contoso.test", &[]).await.privileged);
    }

    #[tokio::test]
    async fn the_runners_own_account_is_privileged() {
        let runner = vec!["ANN@contoso.test".to_owned()];
        assert!(
            facts_of(tenant(), "ann@contoso.test", &runner)
                .await
                .privileged
        );
    }

    #[tokio::test]
    async fn a_failed_lookup_stops_the_request() {
        let dir = tenant();
        dir.fail_next(
            crate::directory::memory::Op::ListRiskyUsers,
            DirectoryErrorKind::Unavailable,
        );
        let facts = LiveFacts::new("demo", Arc::new(dir), Arc::new(NoRuns), &[]);
        let err = facts
            .about("id-ann@contoso.test", "ann@contoso.test")
            .await
            .unwrap_err();
        assert_eq!(err.what, "Identity Protection risky users");
    }
}
