//! Application permissions (Microsoft Graph app roles) granted to each app registration: what
//! an access token's `roles` claim lists, and what the handlers check before a write that
//! Graph gates on a permission.
//!
//! A client-credentials token carries the app's granted application permissions as a JSON
//! array of names in its `roles` claim
//! (<https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference>).
//! A write whose permission the token lacks is refused with 403 `Authorization_RequestDenied`
//! "Insufficient privileges to complete the operation."; the handlers check it before they
//! look the target up, unless the permission depends on the target (a role-assignable
//! group). Which of a missing permission and a missing target Graph reports first is not
//! documented.

use super::model::MethodKind;

/// The application permissions resetctl's README lists as required: every app registration
/// holds exactly these unless a tenant file states its own `permissions`.
pub const DEFAULT: &[&str] = &[
    "User.ReadWrite.All",
    "User.RevokeSessions.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "RoleManagement.Read.Directory",
    "RoleEligibilitySchedule.Read.Directory",
    "IdentityRiskyUser.ReadWrite.All",
    "AuditLog.Read.All",
];

/// Any one of these lets an app set a user's `passwordProfile` (`PATCH /users/{id}`):
/// "In application-only access, the calling app must be assigned the User.ReadWrite.All
/// application permission and at least the User Administrator Microsoft Entra role"
/// (<https://learn.microsoft.com/graph/api/user-update>), Directory.ReadWrite.All being the
/// page's higher privileged permission, and User-PasswordProfile.ReadWrite.All the
/// permission to "read and write password profiles and reset passwords for all users"
/// (<https://learn.microsoft.com/graph/permissions-reference#user-passwordprofilereadwriteall>).
pub const PASSWORD_PROFILE_WRITE: &[&str] = &[
    "User-PasswordProfile.ReadWrite.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];

/// Any one of these lets an app update other properties of a user
/// (<https://learn.microsoft.com/graph/api/user-update>).
pub const USER_WRITE: &[&str] = &["User.ReadWrite.All", "Directory.ReadWrite.All"];

/// Any one of these lets an app set `mobilePhone` and `businessPhones`: the user-update set,
/// or User-Phone.ReadWrite.All, scoped to those properties
/// (<https://learn.microsoft.com/graph/permissions-reference#user-phonereadwriteall>).
pub const PHONE_WRITE: &[&str] = &[
    "User-Phone.ReadWrite.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];

/// Any one of these lets an app set `accountEnabled`: the user-update set, or
/// User.EnableDisableAccount.All, scoped to that property
/// (<https://learn.microsoft.com/graph/permissions-reference#userenabledisableaccountall>).
pub const ACCOUNT_ENABLED_WRITE: &[&str] = &[
    "User.EnableDisableAccount.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];

/// The permissions that allow a `PATCH /users/{id}` to carry the property `name`.
pub fn user_property_write(name: &str) -> &'static [&'static str] {
    match name {
        "passwordProfile" => PASSWORD_PROFILE_WRITE,
        "mobilePhone" | "businessPhones" => PHONE_WRITE,
        "accountEnabled" => ACCOUNT_ENABLED_WRITE,
        _ => USER_WRITE,
    }
}

/// Any one of these lets an app revoke a user's sign-in sessions
/// (<https://learn.microsoft.com/graph/api/user-revokesigninsessions>: least privileged
/// User.RevokeSessions.All; higher Directory.ReadWrite.All, User.ReadWrite.All).
pub const REVOKE_SESSIONS: &[&str] = &[
    "User.RevokeSessions.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];

/// The permission that writes every kind of authentication method
/// (e.g. <https://learn.microsoft.com/graph/api/phoneauthenticationmethod-delete>).
pub const METHODS_WRITE: &str = "UserAuthenticationMethod.ReadWrite.All";

/// Any one of these lets an app create or delete a Temporary Access Pass
/// (<https://learn.microsoft.com/graph/api/authentication-post-temporaryaccesspassmethods>,
/// <https://learn.microsoft.com/graph/api/temporaryaccesspassauthenticationmethod-delete>).
pub const TAP_WRITE: &[&str] = &[METHODS_WRITE, "UserAuthMethod-TAP.ReadWrite.All"];

/// Any one of these lets an app delete a method of `kind`: the all-methods permission, or
/// the one for that kind alone (<https://learn.microsoft.com/graph/permissions-reference>,
/// `UserAuthMethod-*`; each kind's delete page, e.g.
/// <https://learn.microsoft.com/graph/api/softwareoathauthenticationmethod-delete>).
pub fn method_write(kind: MethodKind) -> [&'static str; 2] {
    let narrow = match kind {
        MethodKind::Authenticator => "UserAuthMethod-MicrosoftAuthApp.ReadWrite.All",
        MethodKind::Phone => "UserAuthMethod-Phone.ReadWrite.All",
        MethodKind::Fido2 => "UserAuthMethod-Passkey.ReadWrite.All",
        MethodKind::SoftwareOath => "UserAuthMethod-SoftwareOATH.ReadWrite.All",
        MethodKind::Email => "UserAuthMethod-Email.ReadWrite.All",
        MethodKind::WindowsHello => "UserAuthMethod-WindowsHello.ReadWrite.All",
    };
    [METHODS_WRITE, narrow]
}

/// The one permission that lets an app confirm users compromised or dismiss their risk
/// (<https://learn.microsoft.com/graph/api/riskyuser-confirmcompromised>,
/// <https://learn.microsoft.com/graph/api/riskyuser-dismiss>).
pub const RISKY_USER_WRITE: &[&str] = &["IdentityRiskyUser.ReadWrite.All"];

/// Any one of these lets an app add or remove group members
/// (<https://learn.microsoft.com/graph/api/group-post-members>,
/// <https://learn.microsoft.com/graph/api/group-delete-members>).
pub const GROUP_MEMBER_WRITE: &[&str] = &[
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
];

/// Needed besides [`GROUP_MEMBER_WRITE`] to add members to, or remove them from, a
/// role-assignable group (same pages: "the calling user must also be assigned the
/// RoleManagement.ReadWrite.Directory permission"; "The Group.ReadWrite.All permission won't
/// work": <https://learn.microsoft.com/entra/identity/role-based-access-control/groups-concept>).
pub const ROLE_ASSIGNABLE_MEMBER_WRITE: &str = "RoleManagement.ReadWrite.Directory";

/// Whether `name` has the shape of a Graph permission name (`User.ReadWrite.All`,
/// `User-PasswordProfile.ReadWrite.All`): dot-separated words of letters, digits and `-`.
/// Names the emulator does not check are carried in tokens and grant nothing else.
pub fn well_formed(name: &str) -> bool {
    let mut parts = 0;
    for part in name.split('.') {
        parts += 1;
        if part.is_empty()
            || !part.starts_with(|c: char| c.is_ascii_alphabetic())
            || !part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return false;
        }
    }
    parts >= 2
}

/// The default set as owned names.
pub fn default_set() -> Vec<String> {
    DEFAULT.iter().map(|p| (*p).to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names() {
        let kinds = MethodKind::ALL.iter().flat_map(|k| method_write(*k));
        let sets = DEFAULT
            .iter()
            .chain(GROUP_MEMBER_WRITE)
            .chain(PASSWORD_PROFILE_WRITE)
            .chain(USER_WRITE)
            .chain(PHONE_WRITE)
            .chain(ACCOUNT_ENABLED_WRITE)
            .chain(REVOKE_SESSIONS)
            .chain(TAP_WRITE)
            .chain(RISKY_USER_WRITE)
            .copied()
            .chain(kinds);
        for name in sets {
            assert!(well_formed(name), "{name}");
        }
        for name in DEFAULT.iter().chain(GROUP_MEMBER_WRITE) {
            assert!(well_formed(name), "{name}");
        }
        assert!(well_formed("User-PasswordProfile.ReadWrite.All"));
        assert!(well_formed(ROLE_ASSIGNABLE_MEMBER_WRITE));
        for bad in [
            "",
            "User",
            "User..All",
            "User.Read All",
            ".User.Read",
            "User.Read.",
        ] {
            assert!(!well_formed(bad), "{bad:?}");
        }
    }
}
