//! The preflight: before anything is written, can this tenant's credential pool do what the
//! playbook asks? Each app gets a token; the application permissions its token grants
//! (Graph's `roles` claim) are compared with what each step needs ([`permissions`]); its
//! service principal's directory roles are read; Graph answers. `resetctl doctor` prints the
//! checks; `run --execute` and `run --resume` refuse a run that fails one, before its first
//! write, instead of burning users on 403s.
//!
//! What is not checked, because no read shows it: Conditional Access for workload
//! identities, administrative-unit scoping of a role (only tenant-wide assignments count),
//! the extra permission a role-assignable group needs, and Graph's per-target role
//! hierarchy (admins are never automated).

use std::collections::BTreeSet;

use futures::TryStreamExt;
use serde::Serialize;

use super::permissions::{self, Need};
use crate::directory::{AppAccess, Directory, DirectoryError, TokenGrant};
use crate::playbook::{Playbook, Step};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// As needed.
    Ok,
    /// Something needed is missing or failed: the run would fail.
    Missing,
    /// Could not be checked (the token's claims are unreadable, a read failed): nothing is
    /// concluded, and the run is not refused for it.
    Unknown,
}

impl Status {
    /// The status as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "MISSING",
            Status::Unknown => "unknown",
        }
    }
}

/// What a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// An app's access token.
    Token,
    /// An application permission some operation needs.
    Permission,
    /// The directory role of an app's service principal.
    Role,
    /// Microsoft Graph answering requests.
    Endpoint,
}

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What kind of check.
    pub area: Area,
    /// The app (client id) it is about, when it is about one.
    pub app: Option<String>,
    /// What was checked, e.g. the operation a permission is for and the steps that make it.
    pub subject: String,
    /// The result.
    pub status: Status,
    /// What was found, or what is missing and how to fix it.
    pub detail: String,
}

/// Every check of one preflight, in order: tokens, Graph, permissions, roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
    /// What the preflight cannot see, said once.
    pub not_checked: Vec<&'static str>,
}

impl Report {
    /// The checks that found something missing.
    pub fn missing(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Missing)
    }

    /// True when nothing is missing (unknowns allowed).
    pub fn passed(&self) -> bool {
        self.missing().next().is_none()
    }

    /// True when every check is ok.
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.status == Status::Ok)
    }

    /// One line per missing check, for an error message.
    pub fn missing_lines(&self) -> Vec<String> {
        self.missing().map(Check::line).collect()
    }
}

impl Check {
    /// `subject: detail` (with the app when there are several).
    pub fn line(&self) -> String {
        match &self.app {
            Some(app) => format!("app {app}: {}: {}", self.subject, self.detail),
            None => format!("{}: {}", self.subject, self.detail),
        }
    }
}

/// What a preflight checks.
pub struct Scope<'a> {
    /// The steps to be run, each with the label it is reported under (`0:reset_password`).
    pub steps: Vec<(String, &'a Step)>,
    /// What planning reads, when it is to be checked too (`doctor`; a run has planned
    /// already, so its reads are proven).
    pub planning: Vec<Need>,
    /// Whether to ask Graph for something (a run has just planned: it answered).
    pub reach_graph: bool,
}

impl<'a> Scope<'a> {
    /// Everything `playbook` needs, reads included: what `resetctl doctor PLAYBOOK` checks.
    pub fn playbook(playbook: &'a Playbook) -> Scope<'a> {
        Scope {
            steps: playbook
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("{i}:{}", s.step.key()), &s.step))
                .collect(),
            planning: permissions::for_planning(Some(playbook)),
            reach_graph: true,
        }
    }

    /// Every kind of step resetctl can run, and every read: `resetctl doctor` alone.
    pub fn everything(steps: &'a [Step]) -> Scope<'a> {
        Scope {
            steps: steps.iter().map(|s| (s.key().to_owned(), s)).collect(),
            planning: permissions::for_planning(None),
            reach_graph: true,
        }
    }
}

/// Run the checks of `scope` against `directory`.
pub async fn check(directory: &dyn Directory, scope: &Scope<'_>) -> Report {
    let mut report = Report {
        checks: Vec::new(),
        not_checked: vec![
            "Conditional Access policies for workload identities",
            "roles scoped to an administrative unit (only tenant-wide assignments count)",
        ],
    };
    let apps = match directory.access().await {
        Ok(apps) => apps,
        Err(err) => {
            report.checks.push(Check {
                area: Area::Token,
                app: None,
                subject: "access tokens".into(),
                status: Status::Missing,
                detail: err.to_string(),
            });
            return report;
        }
    };
    let several = apps.len() > 1;
    let app_label = |app: &AppAccess| several.then(|| app.client_id.clone());
    for app in &apps {
        report.checks.push(token_check(app, app_label(app)));
    }
    let any_token = apps.iter().any(|a| a.token.is_ok());
    if scope.reach_graph && any_token {
        report.checks.push(graph_check(directory).await);
    }
    let needs = needs_of(scope);
    let reset_steps: Vec<&str> = scope
        .steps
        .iter()
        .filter(|(_, step)| permissions::for_step(step).reset_role)
        .map(|(label, _)| label.as_str())
        .collect();
    for app in &apps {
        let Ok(grant) = &app.token else { continue };
        for (need, used_by) in &needs {
            report
                .checks
                .push(permission_check(grant, need, used_by, app_label(app)));
        }
        if !reset_steps.is_empty() {
            report
                .checks
                .push(role_check(directory, grant, &reset_steps, app_label(app)).await);
        }
    }
    report
}

/// Each distinct operation of `scope` with the steps (or "planning") that make it, in the
/// order first met.
fn needs_of(scope: &Scope<'_>) -> Vec<(Need, Vec<String>)> {
    let mut out: Vec<(Need, Vec<String>)> = Vec::new();
    let mut add = |need: Need, by: &str| match out.iter_mut().find(|(n, _)| *n == need) {
        Some((_, users)) => {
            if !users.iter().any(|u| u == by) {
                users.push(by.to_owned());
            }
        }
        None => out.push((need, vec![by.to_owned()])),
    };
    for need in &scope.planning {
        add(*need, "planning");
    }
    for (label, step) in &scope.steps {
        for need in permissions::for_step(step).needs {
            add(need, label);
        }
    }
    out
}

fn token_check(app: &AppAccess, label: Option<String>) -> Check {
    let subject = format!("access token for app {}", app.client_id);
    match &app.token {
        Err(err) => Check {
            area: Area::Token,
            app: label,
            subject,
            status: Status::Missing,
            detail: err.to_string(),
        },
        Ok(grant) if !grant.readable => Check {
            area: Area::Token,
            app: label,
            subject,
            status: Status::Unknown,
            detail: "obtained, but its claims cannot be read: the permissions it grants \
                     are not checked (Graph's answers will tell)"
                .into(),
        },
        Ok(grant) => {
            let mut detail = format!(
                "obtained; tenant {}, {} application permission(s) granted",
                grant.tenant_id.as_deref().unwrap_or("(not stated)"),
                grant.permissions.len()
            );
            if let Some(id) = &grant.app_id
                && !id.eq_ignore_ascii_case(&app.client_id)
            {
                detail.push_str(&format!("; the token names app {id}"));
            }
            Check {
                area: Area::Token,
                app: label,
                subject,
                status: Status::Ok,
                detail,
            }
        }
    }
}

/// One cheap read proves Graph answers this pool's tokens.
async fn graph_check(directory: &dyn Directory) -> Check {
    let subject = "Microsoft Graph answers (GET /users/$count)".to_owned();
    match directory.count_users().await {
        Ok(n) => Check {
            area: Area::Endpoint,
            app: None,
            subject,
            status: Status::Ok,
            detail: format!("reachable; the tenant has {n} users"),
        },
        Err(err) => Check {
            area: Area::Endpoint,
            app: None,
            subject,
            status: Status::Missing,
            detail: err.to_string(),
        },
    }
}

fn permission_check(
    grant: &TokenGrant,
    need: &Need,
    used_by: &[String],
    label: Option<String>,
) -> Check {
    let subject = format!("{} [{}]", need.operation, used_by.join(", "));
    if !grant.readable {
        return Check {
            area: Area::Permission,
            app: label,
            subject,
            status: Status::Unknown,
            detail: "the token's claims cannot be read".into(),
        };
    }
    let granted: Vec<&str> = grant
        .permissions
        .iter()
        .map(String::as_str)
        .filter(|p| permissions::allows(need, p))
        .collect();
    let mut detail = if granted.is_empty() {
        format!(
            "missing: grant one of {} (application permission, admin consent; {})",
            need.any_of.join(", "),
            need.source
        )
    } else {
        format!("granted by {}", granted.join(", "))
    };
    if let Some(note) = need.note {
        detail.push_str(&format!("; not checked: {note}"));
    }
    Check {
        area: Area::Permission,
        app: label,
        subject,
        status: if granted.is_empty() {
            Status::Missing
        } else {
            Status::Ok
        },
        detail,
    }
}

/// The app's service principal must hold, tenant-wide, a role that may reset passwords.
async fn role_check(
    directory: &dyn Directory,
    grant: &TokenGrant,
    reset_steps: &[&str],
    label: Option<String>,
) -> Check {
    let subject = format!(
        "directory role of the service principal [{}]",
        reset_steps.join(", ")
    );
    let unknown = |detail: String| Check {
        area: Area::Role,
        app: label.clone(),
        subject: subject.clone(),
        status: Status::Unknown,
        detail,
    };
    let Some(principal) = grant.service_principal_id.as_deref() else {
        return unknown("the token does not name the app's service principal (`oid`)".into());
    };
    if !is_object_id(principal) {
        return unknown(format!(
            "the token's service principal id {principal:?} is not an object id"
        ));
    }
    let filter = format!("principalId eq '{principal}'");
    let assignments: Result<Vec<_>, DirectoryError> = directory
        .list_role_assignments(Some(filter))
        .try_collect()
        .await;
    let assignments = match assignments {
        Ok(a) => a,
        Err(err) => {
            return unknown(format!(
                "the role assignments of service principal {principal} could not be read: {err}"
            ));
        }
    };
    let tenant_wide = |scope: &Option<String>| scope.as_deref().is_none_or(|s| s == "/");
    let held: BTreeSet<&str> = assignments
        .iter()
        .filter(|a| tenant_wide(&a.directory_scope_id))
        .filter_map(|a| permissions::reset_role_name(&a.role_definition_id))
        .collect();
    if held.is_empty() {
        Check {
            area: Area::Role,
            app: label,
            subject,
            status: Status::Missing,
            detail: format!(
                "service principal {principal} holds no tenant-wide role that may reset \
                 passwords: assign it User Administrator (any of {} will do)",
                permissions::RESET_ROLES
                    .iter()
                    .map(|(_, name)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    } else {
        Check {
            area: Area::Role,
            app: label,
            subject,
            status: Status::Ok,
            detail: format!(
                "service principal {principal} holds {}",
                held.into_iter().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// A GUID-shaped id: the only thing interpolated into a filter.
fn is_object_id(id: &str) -> bool {
    id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Why a step's writes were refused wholesale, in terms an operator acts on: what the step
/// needs, and what the pool's tokens say they were granted.
pub async fn explain_refusal(directory: &dyn Directory, step: &Step) -> String {
    let step_needs = permissions::for_step(step);
    let mut parts: Vec<String> = step_needs
        .needs
        .iter()
        .map(|need| format!("one of {} to {}", need.any_of.join(", "), need.operation))
        .collect();
    if step_needs.reset_role {
        parts.push(
            "a tenant-wide directory role that may reset passwords (User Administrator)".into(),
        );
    }
    let mut text = format!("the step needs {}", parts.join(", and "));
    let apps = directory.access().await.unwrap_or_default();
    for app in apps {
        let Ok(grant) = &app.token else { continue };
        if !grant.readable {
            continue;
        }
        let lacking: Vec<&str> = step_needs
            .needs
            .iter()
            .filter(|need| {
                !grant
                    .permissions
                    .iter()
                    .any(|p| permissions::allows(need, p))
            })
            .map(|need| need.any_of[0])
            .collect();
        if lacking.is_empty() {
            text.push_str(&format!(
                ". App {}'s token grants the application permissions, so the refusal comes \
                 from elsewhere: its directory role, or a policy (check with `resetctl doctor`)",
                app.client_id
            ));
        } else {
            text.push_str(&format!(
                ". App {}'s token lacks {} (grant it, with admin consent)",
                app.client_id,
                lacking.join(", ")
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::memory::MemoryDirectory;
    use crate::playbook::MethodType;

    const USER_ADMIN: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";

    fn reset_and_revoke() -> Vec<Step> {
        vec![
            Step::ResetPassword {
                mode: crate::playbook::PasswordMode::Scramble,
                force_change: true,
                require_mfa: true,
            },
            Step::RevokeSessions,
        ]
    }

    fn with_access(directory: MemoryDirectory, permissions: &[&str]) -> MemoryDirectory {
        directory.with_access(vec![AppAccess {
            client_id: MemoryDirectory::APP.into(),
            token: Ok(MemoryDirectory::grant(permissions)),
        }])
    }

    #[tokio::test]
    async fn all_granted_and_a_reset_role_pass() {
        let directory = MemoryDirectory::new()
            .with_user("a@x")
            .with_role_assignment("sp-memory-app", USER_ADMIN);
        let steps = permissions::every_step();
        let report = check(&directory, &Scope::everything(&steps)).await;
        assert!(report.all_ok(), "{report:#?}");
        let role = report.checks.iter().find(|c| c.area == Area::Role).unwrap();
        assert!(
            role.detail.ends_with("holds User Administrator"),
            "{role:?}"
        );
        let graph = report
            .checks
            .iter()
            .find(|c| c.area == Area::Endpoint)
            .unwrap();
        assert!(graph.detail.contains("1 users"), "{graph:?}");
    }

    #[tokio::test]
    async fn a_missing_permission_is_named_with_its_step() {
        let directory = with_access(
            MemoryDirectory::new().with_role_assignment("sp-memory-app", USER_ADMIN),
            &["User.ReadWrite.All", "RoleManagement.Read.Directory"],
        );
        let steps = [
            Step::RevokeSessions,
            Step::RequireMfaReregistration {
                remove: vec![MethodType::Phone],
            },
        ];
        let scope = Scope {
            steps: steps
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("{i}:{}", s.key()), s))
                .collect(),
            planning: Vec::new(),
            reach_graph: false,
        };
        let report = check(&directory, &scope).await;
        assert!(!report.passed());
        let missing = report.missing_lines();
        assert_eq!(missing.len(), 2, "{missing:#?}");
        assert!(
            missing[0].starts_with("list authentication methods")
                && missing[0].contains("[1:require_mfa_reregistration]")
                && missing[0].contains("grant one of UserAuthenticationMethod.Read.All"),
            "{}",
            missing[0]
        );
        assert!(missing[1].contains("phoneMethods"), "{}", missing[1]);
        // User.ReadWrite.All allows revoking sessions.
        let revoke = report
            .checks
            .iter()
            .find(|c| c.subject.contains("[0:revoke_sessions]"))
            .unwrap();
        assert_eq!(revoke.status, Status::Ok);
        assert_eq!(revoke.detail, "granted by User.ReadWrite.All");
    }

    #[tokio::test]
    async fn no_reset_role_is_missing_and_a_scoped_one_does_not_count() {
        let steps = reset_and_revoke();
        let directory = MemoryDirectory::new();
        let report = check(&directory, &Scope::everything(&steps)).await;
        let role = report.checks.iter().find(|c| c.area == Area::Role).unwrap();
        assert_eq!(role.status, Status::Missing);
        assert!(
            role.detail.contains("assign it User Administrator"),
            "{role:?}"
        );
        assert!(role.subject.contains("reset_password, revoke_sessions"));
        // A role held by someone else does not count either.
        let other = MemoryDirectory::new().with_role_assignment("someone-else", USER_ADMIN);
        let report = check(&other, &Scope::everything(&steps)).await;
        assert!(!report.passed());
        // Steps that need no role are not held up by it.
        let confirm = [Step::ConfirmCompromised];
        let report = check(&MemoryDirectory::new(), &Scope::everything(&confirm)).await;
        assert!(report.checks.iter().all(|c| c.area != Area::Role));
        assert!(report.passed(), "{report:#?}");
    }

    #[tokio::test]
    async fn a_failed_token_is_missing_and_an_unreadable_one_is_unknown() {
        let steps = reset_and_revoke();
        let failed = MemoryDirectory::new().with_access(vec![AppAccess {
            client_id: "c1".into(),
            token: Err(DirectoryError::new(
                crate::directory::DirectoryErrorKind::Unavailable,
                "token endpoint refused app c1: invalid_client",
            )),
        }]);
        let report = check(&failed, &Scope::everything(&steps)).await;
        assert_eq!(
            report.checks.len(),
            1,
            "nothing else can be checked: {report:#?}"
        );
        assert_eq!(
            report.missing_lines()[0],
            "access token for app c1: unavailable: token endpoint refused app c1: invalid_client"
        );
        let opaque = MemoryDirectory::new()
            .with_role_assignment("sp-memory-app", USER_ADMIN)
            .with_access(vec![AppAccess {
                client_id: "c1".into(),
                token: Ok(TokenGrant::default()),
            }]);
        let report = check(&opaque, &Scope::everything(&steps)).await;
        assert!(report.passed(), "unknowns do not refuse a run: {report:#?}");
        assert!(!report.all_ok());
    }

    #[tokio::test]
    async fn the_refusal_explanation_names_what_the_token_lacks() {
        let step = &reset_and_revoke()[0];
        let lacking = with_access(MemoryDirectory::new(), &["User.RevokeSessions.All"]);
        let text = explain_refusal(&lacking, step).await;
        assert!(
            text.starts_with(
                "the step needs one of User-PasswordProfile.ReadWrite.All, User.ReadWrite.All, \
                 Directory.ReadWrite.All to set the password profile"
            ),
            "{text}"
        );
        assert!(
            text.contains("token lacks User-PasswordProfile.ReadWrite.All"),
            "{text}"
        );
        let granted = MemoryDirectory::new();
        let text = explain_refusal(&granted, step).await;
        assert!(
            text.contains("grants the application permissions"),
            "{text}"
        );
        assert!(text.contains("User Administrator"), "{text}");
    }
}
