//! Application permissions (Microsoft Graph app roles) granted to each app registration: what
//! an access token's `roles` claim lists, and what the handlers check before a write that
//! Graph gates on a permission.
//!
//! A client-credentials token carries the app's granted application permissions as a JSON
//! array of names in its `roles` claim
//! (<https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference>).

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
];

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
