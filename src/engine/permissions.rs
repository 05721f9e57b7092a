//! What each thing resetctl does through Microsoft Graph needs: the application permissions
//! (any one of a documented set) and, for password resets and session revocation, a
//! directory role of the app's service principal. One table, read by the preflight
//! (`resetctl doctor`, and the check before `--execute`) and by the explanation of a run
//! whose writes are refused wholesale.
//!
//! Each entry names the Graph page that documents it. The sets list, least privileged first,
//! every application permission the page says allows the call; a permission not listed here
//! is reported as not allowing it.

use crate::playbook::{MethodType, Playbook, Step, Target};

/// One Graph operation and the application permissions that allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Need {
    /// What resetctl does, as an operator reads it.
    pub operation: &'static str,
    /// Any one of these application permissions allows it (least privileged first).
    pub any_of: &'static [&'static str],
    /// What the permissions do not cover, when something else is needed in some cases.
    pub note: Option<&'static str>,
    /// Where Graph documents the permissions.
    pub source: &'static str,
}

/// `PATCH /users/{id}` with `passwordProfile`. Application-only access needs `User.ReadWrite.All`
/// "and at least the User Administrator Microsoft Entra role"; `User-PasswordProfile.ReadWrite.All`
/// is the permission scoped to exactly this property
/// (<https://learn.microsoft.com/graph/permissions-reference#user-passwordprofilereadwriteall>).
pub const PASSWORD_PROFILE: Need = Need {
    operation: "set the password profile (PATCH /users/{id} passwordProfile)",
    any_of: &[
        "User-PasswordProfile.ReadWrite.All",
        "User.ReadWrite.All",
        "Directory.ReadWrite.All",
    ],
    note: None,
    source: "https://learn.microsoft.com/graph/api/user-update",
};

/// `POST /users/{id}/revokeSignInSessions`.
pub const REVOKE_SESSIONS: Need = Need {
    operation: "revoke sign-in sessions (POST /users/{id}/revokeSignInSessions)",
    any_of: &[
        "User.RevokeSessions.All",
        "User.ReadWrite.All",
        "Directory.ReadWrite.All",
    ],
    note: None,
    source: "https://learn.microsoft.com/graph/api/user-revokesigninsessions",
};

/// `GET /users/{id}/authentication/methods` (the methods are listed before any is deleted).
pub const LIST_METHODS: Need = Need {
    operation: "list authentication methods (GET /users/{id}/authentication/methods)",
    any_of: &[
        "UserAuthenticationMethod.Read.All",
        "UserAuthenticationMethod.ReadWrite.All",
    ],
    note: None,
    source: "https://learn.microsoft.com/graph/api/authentication-list-methods",
};

/// `POST /users/{id}/authentication/temporaryAccessPassMethods`.
pub const CREATE_TAP: Need = Need {
    operation: "create a Temporary Access Pass (POST /users/{id}/authentication/temporaryAccessPassMethods)",
    any_of: &[
        "UserAuthenticationMethod.ReadWrite.All",
        "UserAuthMethod-TAP.ReadWrite.All",
    ],
    note: None,
    source: "https://learn.microsoft.com/graph/api/authentication-post-temporaryaccesspassmethods",
};

/// `GET /groups/{id}/members`: reading a group's members (direct or transitive).
pub const READ_MEMBERS: Need = Need {
    operation: "read group members (GET /groups/{id}/members)",
    any_of: &[
        "GroupMember.Read.All",
        "Group.Read.All",
        "Directory.Read.All",
        "GroupMember.ReadWrite.All",
        "Group.ReadWrite.All",
        "Directory.ReadWrite.All",
    ],
    note: None,
    source: "https://learn.microsoft.com/graph/api/group-list-members",
};

/// `POST /groups/{id}/members/$ref` (and the removal `runs expire` makes).
pub const WRITE_MEMBERS: Need = Need {
    operation: "add and remove group members (POST /groups/{id}/members/$ref)",
    any_of: &[
        "GroupMember.ReadWrite.All",
        "Group.ReadWrite.All",
        "Directory.ReadWrite.All",
    ],
    note: Some("a role-assignable group also needs RoleManagement.ReadWrite.Directory"),
    source: "https://learn.microsoft.com/graph/api/group-post-members",
};

/// `POST /identityProtection/riskyUsers/confirmCompromised`.
pub const CONFIRM_COMPROMISED: Need = Need {
    operation: "confirm users compromised (POST /identityProtection/riskyUsers/confirmCompromised)",
    any_of: &["IdentityRiskyUser.ReadWrite.All"],
    note: None,
    source: "https://learn.microsoft.com/graph/api/riskyuser-confirmcompromised",
};

/// `GET /users` and `GET /users/{id}`: planning lists the tenant.
pub const READ_USERS: Need = Need {
    operation: "list and read users (GET /users)",
    any_of: &[
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
    note: None,
    source: "https://learn.microsoft.com/graph/api/user-list",
};

/// `GET /roleManagement/directory/roleAssignments`: who holds a directory role.
pub const READ_ROLE_ASSIGNMENTS: Need = Need {
    operation: "read directory role assignments (GET /roleManagement/directory/roleAssignments)",
    any_of: &[
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "Directory.Read.All",
        "RoleManagement.ReadWrite.Directory",
        "Directory.ReadWrite.All",
    ],
    note: None,
    source: "https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments",
};

/// `GET /roleManagement/directory/roleEligibilityScheduleInstances`: PIM eligibilities.
pub const READ_ROLE_ELIGIBILITIES: Need = Need {
    operation: "read PIM role eligibilities (GET /roleManagement/directory/roleEligibilityScheduleInstances)",
    any_of: &[
        "RoleEligibilitySchedule.Read.Directory",
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "RoleEligibilitySchedule.ReadWrite.Directory",
        "RoleManagement.ReadWrite.Directory",
    ],
    note: None,
    source: "https://learn.microsoft.com/graph/api/rbacapplication-list-roleeligibilityscheduleinstances",
};

/// `GET /identityProtection/riskyUsers`: the `risky_users` target.
pub const READ_RISKY_USERS: Need = Need {
    operation: "list risky users (GET /identityProtection/riskyUsers)",
    any_of: &[
        "IdentityRiskyUser.Read.All",
        "IdentityRiskyUser.ReadWrite.All",
    ],
    note: None,
    source: "https://learn.microsoft.com/graph/api/riskyuser-list",
};

/// `GET /reports/authenticationMethods/userRegistrationDetails`: who can reset their own
/// password, for `when: sspr_capable` / `has_authenticator` (and the plan's recovery counts,
/// which are left out when it is missing).
pub const READ_REGISTRATION: Need = Need {
    operation: "read registration details (GET /reports/authenticationMethods/userRegistrationDetails)",
    any_of: &["AuditLog.Read.All"],
    note: None,
    source: "https://learn.microsoft.com/graph/api/authenticationmethodsroot-list-userregistrationdetails",
};

/// Deleting one kind of authentication method. Each kind has its own page and its own
/// narrow permission besides `UserAuthenticationMethod.ReadWrite.All`
/// (<https://learn.microsoft.com/graph/permissions-reference>).
pub fn delete_method(kind: MethodType) -> Need {
    const ALL: &str = "UserAuthenticationMethod.ReadWrite.All";
    let (operation, any_of, source): (_, &'static [&'static str], _) = match kind {
        MethodType::Phone => (
            "delete phone methods (DELETE /users/{id}/authentication/phoneMethods/{id})",
            &[ALL, "UserAuthMethod-Phone.ReadWrite.All"],
            "https://learn.microsoft.com/graph/api/phoneauthenticationmethod-delete",
        ),
        MethodType::Email => (
            "delete email methods (DELETE /users/{id}/authentication/emailMethods/{id})",
            &[ALL, "UserAuthMethod-Email.ReadWrite.All"],
            "https://learn.microsoft.com/graph/api/emailauthenticationmethod-delete",
        ),
        MethodType::Fido2 => (
            "delete FIDO2 keys (DELETE /users/{id}/authentication/fido2Methods/{id})",
            &[ALL, "UserAuthMethod-Passkey.ReadWrite.All"],
            "https://learn.microsoft.com/graph/api/fido2authenticationmethod-delete",
        ),
        MethodType::MicrosoftAuthenticator => (
            "delete Microsoft Authenticator registrations \
             (DELETE /users/{id}/authentication/microsoftAuthenticatorMethods/{id})",
            &[ALL, "UserAuthMethod-MicrosoftAuthApp.ReadWrite.All"],
            "https://learn.microsoft.com/graph/api/microsoftauthenticatorauthenticationmethod-delete",
        ),
        MethodType::SoftwareOath => (
            "delete software OATH tokens (DELETE /users/{id}/authentication/softwareOathMethods/{id})",
            &[ALL, "UserAuthMethod-SoftwareOATH.ReadWrite.All"],
            "https://learn.microsoft.com/graph/api/softwareoathauthenticationmethod-delete",
        ),
        MethodType::WindowsHelloForBusiness => (
            "delete Windows Hello for Business keys \
             (DELETE /users/{id}/authentication/windowsHelloForBusinessMethods/{id})",
            &[ALL, "UserAuthMethod-WindowsHello.ReadWrite.All"],
            "https://learn.microsoft.com/graph/api/windowshelloforbusinessauthenticationmethod-delete",
        ),
        MethodType::TemporaryAccessPass => (
            "delete Temporary Access Passes \
             (DELETE /users/{id}/authentication/temporaryAccessPassMethods/{id})",
            &[ALL, "UserAuthMethod-TAP.ReadWrite.All"],
            "https://learn.microsoft.com/graph/api/temporaryaccesspassauthenticationmethod-delete",
        ),
    };
    Need {
        operation,
        any_of,
        note: None,
        source,
    }
}

/// The built-in roles whose holders may reset the password of a user without an admin role,
/// and revoke their sessions (template ids; "Who can reset passwords",
/// <https://learn.microsoft.com/entra/identity/role-based-access-control/privileged-roles-permissions#who-can-reset-passwords>).
/// resetctl never resets admins automatically, so any of these suffices; User Administrator
/// is the one README recommends.
pub const RESET_ROLES: &[(&str, &str)] = &[
    (
        "966707d0-3269-4727-9be2-8c3a10f19b9d",
        "Password Administrator",
    ),
    (
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        "Helpdesk Administrator",
    ),
    (
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
        "Authentication Administrator",
    ),
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    (
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        "Privileged Authentication Administrator",
    ),
    (
        "62e90394-69f5-4237-9190-012177145e10",
        "Global Administrator",
    ),
];

/// The name of a reset-capable role from its template id.
pub fn reset_role_name(template_id: &str) -> Option<&'static str> {
    RESET_ROLES
        .iter()
        .find(|(id, _)| id.eq_ignore_ascii_case(template_id))
        .map(|(_, name)| *name)
}

/// What one playbook step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepNeeds {
    /// The Graph operations the step makes.
    pub needs: Vec<Need>,
    /// Whether the app's service principal must hold one of [`RESET_ROLES`].
    pub reset_role: bool,
}

/// What `step` needs. A notify step makes no Graph call in this build (notices are recorded).
pub fn for_step(step: &Step) -> StepNeeds {
    let (needs, reset_role) = match step {
        Step::ResetPassword { .. } => (vec![PASSWORD_PROFILE], true),
        Step::RevokeSessions => (vec![REVOKE_SESSIONS], true),
        Step::RequireMfaReregistration { remove } => {
            let mut needs = vec![LIST_METHODS];
            needs.extend(remove.iter().map(|kind| delete_method(*kind)));
            (needs, false)
        }
        Step::TemporaryAccessPass { .. } => (vec![CREATE_TAP], false),
        Step::AddToGroup { .. } => (vec![READ_MEMBERS, WRITE_MEMBERS], false),
        Step::ConfirmCompromised => (vec![CONFIRM_COMPROMISED], false),
        Step::Notify { .. } => (Vec::new(), false),
    };
    StepNeeds { needs, reset_role }
}

/// What planning `playbook` reads; with no playbook, what planning any playbook may read.
pub fn for_planning(playbook: Option<&Playbook>) -> Vec<Need> {
    // Role assignments are always read (privileged users are kept apart), and the groups
    // that hold roles are expanded.
    let mut needs = vec![READ_USERS, READ_ROLE_ASSIGNMENTS, READ_MEMBERS];
    let eligible = playbook.is_none_or(|p| p.privileged.include_eligible);
    if eligible {
        needs.push(READ_ROLE_ELIGIBILITIES);
    }
    let risky = playbook.is_none_or(|p| {
        p.targets
            .iter()
            .any(|t| matches!(t, Target::RiskyUsers { .. }))
    });
    if risky {
        needs.push(READ_RISKY_USERS);
    }
    if playbook.is_some_and(|p| super::recovery::needed(p) == super::recovery::Need::Required) {
        needs.push(READ_REGISTRATION);
    }
    needs
}

/// One step of every kind resetctl can run, each as broad as it goes (every method type):
/// what `resetctl doctor` checks when no playbook is named.
pub fn every_step() -> Vec<Step> {
    vec![
        Step::ResetPassword {
            mode: crate::playbook::PasswordMode::Scramble,
            force_change: true,
            require_mfa: true,
        },
        Step::RevokeSessions,
        Step::RequireMfaReregistration {
            remove: MethodType::ALL.to_vec(),
        },
        Step::TemporaryAccessPass {
            lifetime_minutes: 60,
            usable_once: true,
        },
        Step::AddToGroup {
            group_id: uuid::Uuid::nil(),
            expiry: std::time::Duration::from_secs(3600),
        },
        Step::ConfirmCompromised,
    ]
}

/// Whether a permission name is in `need`'s set (names compare case-insensitively).
pub fn allows(need: &Need, permission: &str) -> bool {
    need.any_of
        .iter()
        .any(|p| p.eq_ignore_ascii_case(permission))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_names_what_it_calls() {
        let reset = for_step(&every_step()[0]);
        assert_eq!(reset.needs, [PASSWORD_PROFILE]);
        assert!(reset.reset_role, "a password reset needs a directory role");
        assert!(allows(
            &PASSWORD_PROFILE,
            "user-passwordprofile.readwrite.all"
        ));
        assert!(!allows(&PASSWORD_PROFILE, "User.RevokeSessions.All"));
        let methods = for_step(&Step::RequireMfaReregistration {
            remove: vec![MethodType::Phone, MethodType::SoftwareOath],
        });
        let operations: Vec<_> = methods.needs.iter().map(|n| n.operation).collect();
        assert_eq!(operations.len(), 3, "list, then one delete per kind");
        assert!(operations[1].contains("phoneMethods"));
        assert!(allows(
            &methods.needs[2],
            "UserAuthMethod-SoftwareOATH.ReadWrite.All"
        ));
        assert!(allows(
            &methods.needs[2],
            "UserAuthenticationMethod.ReadWrite.All"
        ));
        assert!(!allows(
            &methods.needs[2],
            "UserAuthMethod-Phone.ReadWrite.All"
        ));
        let notify = Step::Notify {
            template: "t".into(),
            channels: Vec::new(),
            to: crate::playbook::Recipient::User,
            out_of_band: false,
        };
        assert_eq!(for_step(&notify).needs, []);
    }

    #[test]
    fn the_readme_set_allows_every_step_and_all_planning() {
        // README.md's list of permissions must cover everything resetctl can do.
        let readme = [
            "User.ReadWrite.All",
            "User.RevokeSessions.All",
            "UserAuthenticationMethod.ReadWrite.All",
            "GroupMember.ReadWrite.All",
            "RoleManagement.Read.Directory",
            "RoleEligibilitySchedule.Read.Directory",
            "IdentityRiskyUser.ReadWrite.All",
            "AuditLog.Read.All",
        ];
        let needs = every_step()
            .into_iter()
            .flat_map(|s| for_step(&s).needs)
            .chain(for_planning(None));
        for need in needs {
            assert!(
                readme.iter().any(|p| allows(&need, p)),
                "{}",
                need.operation
            );
        }
    }

    #[test]
    fn every_permission_and_role_is_well_formed() {
        let needs = every_step()
            .into_iter()
            .flat_map(|s| for_step(&s).needs)
            .chain(for_planning(None));
        for need in needs {
            assert!(need.source.starts_with("https://learn.microsoft.com/"));
            for p in need.any_of {
                let parts: Vec<&str> = p.split('.').collect();
                assert!(
                    parts.len() >= 2 && parts.iter().all(|s| !s.is_empty()),
                    "{p}"
                );
            }
        }
        assert_eq!(
            reset_role_name("FE930BE7-5E62-47DB-91AF-98C3A49A38B1"),
            Some("User Administrator")
        );
        assert_eq!(
            reset_role_name("62e90394-69f5-4237-9190-012177145e11"),
            None
        );
    }
}
