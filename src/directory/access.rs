//! What each app of a tenant's credential pool was granted, as its access token says: the
//! input of the preflight (`resetctl doctor`, and the check before `--execute`) and of the
//! explanation of a run whose writes are refused.

use jiff::Timestamp;

use super::DirectoryError;

/// One app registration of the credential pool and what its token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAccess {
    /// The application (client) id the pool is configured with.
    pub client_id: String,
    /// The token's claims, or why no token was obtained.
    pub token: Result<TokenGrant, DirectoryError>,
}

/// What an app's access token says about it. Read from the token, never verified: the
/// directory's answers to requests stay the authority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenGrant {
    /// Whether the claims could be read at all (a token need not be readable by its client);
    /// when false, the other fields are empty and nothing can be concluded from them.
    pub readable: bool,
    /// The application id the token names.
    pub app_id: Option<String>,
    /// The tenant the token is for.
    pub tenant_id: Option<String>,
    /// The object id of the app's service principal in the tenant.
    pub service_principal_id: Option<String>,
    /// The granted application permissions (Graph's `roles` claim), e.g. `User.ReadWrite.All`.
    pub permissions: Vec<String>,
    /// Template ids of the directory roles the token carries (`wids`), when it says.
    pub directory_roles: Vec<String>,
    /// When the token expires.
    pub expires: Option<Timestamp>,
}

impl TokenGrant {
    /// Whether the token grants any of `permissions` (permission names compare
    /// case-insensitively).
    pub fn grants_any(&self, permissions: &[&str]) -> bool {
        self.permissions
            .iter()
            .any(|p| permissions.iter().any(|q| q.eq_ignore_ascii_case(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_compare_without_case() {
        let grant = TokenGrant {
            readable: true,
            permissions: vec!["User.ReadWrite.All".into()],
            ..TokenGrant::default()
        };
        assert!(grant.grants_any(&["Directory.ReadWrite.All", "user.readwrite.all"]));
        assert!(!grant.grants_any(&["User-PasswordProfile.ReadWrite.All"]));
        assert!(!grant.grants_any(&[]));
    }
}
