//! `--tenant-file`: a tenant described in YAML or JSON, so a test or a tabletop can state the
//! exact users, roles, groups, methods, risk and app registrations it needs.
//!
//! ```yaml
//! verified_domain: contoso.example            # optional
//! apps:                                        # optional; default: one User Administrator app
//!   - display_name: runner
//!     client_secret: "test-secret"             # optional: generated when absent
//!     role: User Administrator                 # a role name or template id
//!     certificate_file: app-cert.pem           # optional, relative to the tenant file
//!     permissions: [User.ReadWrite.All, GroupMember.ReadWrite.All]  # optional: the token's
//!                                              # `roles`; default: README's required set
//! users:
//!   - upn: alice@contoso.example
//!     display_name: Alice Jones
//!     department: Finance
//!     mobile_phone: "+1 425 555 0100"
//!     preferred_language: en-US                # optional; absent: null
//!     manager: ceo@contoso.example             # UPN or id of another user in the file
//!     synced: false
//!     account_enabled: true
//!     methods: [authenticator, phone, fido2, softwareOath, email, windowsHello]
//!     roles: [Global Administrator]            # active assignments
//!     eligible_roles: [User Administrator]     # PIM eligibilities
//!     risk: { level: high, state: atRisk }
//! groups:
//!   - display_name: Tier0
//!     role_assignable: true
//!     members: [alice@contoso.example]
//!     roles: [Privileged Role Administrator]
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use uuid::Uuid;

use super::EmulatorError;
use super::model::{
    App, Eligibility, Group, MethodKind, NONE, Principal, Risk, RoleAssignment, Tenant, User,
    roles, static_role,
};
use super::{permissions, seed};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// Tenant id (generated when absent).
    #[serde(default)]
    pub tenant_id: Option<Uuid>,
    /// Verified custom domain.
    #[serde(default)]
    pub verified_domain: Option<String>,
    /// Initial `onmicrosoft.com` domain.
    #[serde(default)]
    pub initial_domain: Option<String>,
    /// App registrations.
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    /// Users.
    #[serde(default)]
    pub users: Vec<UserSpec>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    /// Directory of the file, to resolve relative certificate paths.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// One app registration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// Client id (generated when absent).
    #[serde(default)]
    pub client_id: Option<Uuid>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Client secret (generated when absent).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Directory role name or template id (default User Administrator).
    #[serde(default)]
    pub role: Option<String>,
    /// PEM certificate inline.
    #[serde(default)]
    pub certificate_pem: Option<String>,
    /// PEM certificate file, relative to the tenant file.
    #[serde(default)]
    pub certificate_file: Option<PathBuf>,
    /// Granted application permissions (default: the set README.md lists as required, see
    /// [`permissions::DEFAULT`](super::permissions::DEFAULT)).
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

/// One user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// userPrincipalName (required).
    pub upn: String,
    /// Object id (generated when absent).
    #[serde(default)]
    pub id: Option<Uuid>,
    /// displayName.
    #[serde(default)]
    pub display_name: Option<String>,
    /// givenName.
    #[serde(default)]
    pub given_name: Option<String>,
    /// surname.
    #[serde(default)]
    pub surname: Option<String>,
    /// department.
    #[serde(default)]
    pub department: Option<String>,
    /// jobTitle.
    #[serde(default)]
    pub job_title: Option<String>,
    /// officeLocation.
    #[serde(default)]
    pub office: Option<String>,
    /// mobilePhone.
    #[serde(default)]
    pub mobile_phone: Option<String>,
    /// preferredLanguage (`en-US`, `de-DE`; absent: null).
    #[serde(default)]
    pub preferred_language: Option<String>,
    /// The first (and only settable) entry of `businessPhones`.
    #[serde(default)]
    pub business_phone: Option<String>,
    /// Manager's UPN or id.
    #[serde(default)]
    pub manager: Option<String>,
    /// accountEnabled (default true).
    #[serde(default = "yes")]
    pub account_enabled: bool,
    /// onPremisesSyncEnabled.
    #[serde(default)]
    pub synced: bool,
    /// A service account.
    #[serde(default)]
    pub service: bool,
    /// Registered method kinds.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Active role assignments (names or template ids).
    #[serde(default)]
    pub roles: Vec<String>,
    /// PIM-eligible roles.
    #[serde(default)]
    pub eligible_roles: Vec<String>,
    /// Identity Protection state.
    #[serde(default)]
    pub risk: Option<RiskSpec>,
}

fn yes() -> bool {
    true
}

/// Risk of a user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSpec {
    /// riskLevel: low, medium, high, none.
    pub level: String,
    /// riskState (default atRisk).
    #[serde(default)]
    pub state: Option<String>,
}

/// One group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group id (generated when absent).
    #[serde(default)]
    pub id: Option<Uuid>,
    /// displayName.
    pub display_name: String,
    /// description.
    #[serde(default)]
    pub description: Option<String>,
    /// isAssignableToRole.
    #[serde(default)]
    pub role_assignable: bool,
    /// Member users (UPNs or ids).
    #[serde(default)]
    pub members: Vec<String>,
    /// Nested member groups (display names of other groups in the file).
    #[serde(default)]
    pub member_groups: Vec<String>,
    /// Roles assigned to the group.
    #[serde(default)]
    pub roles: Vec<String>,
    /// PIM eligibilities of the group (a role-assignable group can be made eligible).
    #[serde(default)]
    pub eligible_roles: Vec<String>,
}

const ROLE_NAMES: &[(&str, &str)] = &[
    ("Global Administrator", roles::GLOBAL_ADMIN),
    (
        "Privileged Role Administrator",
        roles::PRIVILEGED_ROLE_ADMIN,
    ),
    (
        "Privileged Authentication Administrator",
        roles::PRIVILEGED_AUTH_ADMIN,
    ),
    ("Security Administrator", roles::SECURITY_ADMIN),
    (
        "Conditional Access Administrator",
        roles::CONDITIONAL_ACCESS_ADMIN,
    ),
    (
        "Hybrid Identity Administrator",
        roles::HYBRID_IDENTITY_ADMIN,
    ),
    ("Application Administrator", roles::APPLICATION_ADMIN),
    (
        "Cloud Application Administrator",
        roles::CLOUD_APPLICATION_ADMIN,
    ),
    ("User Administrator", roles::USER_ADMIN),
    ("Authentication Administrator", roles::AUTH_ADMIN),
    ("Helpdesk Administrator", roles::HELPDESK_ADMIN),
    ("Password Administrator", roles::PASSWORD_ADMIN),
    ("Exchange Administrator", roles::EXCHANGE_ADMIN),
    ("Intune Administrator", roles::INTUNE_ADMIN),
    ("Groups Administrator", roles::GROUPS_ADMIN),
    ("Directory Readers", roles::DIRECTORY_READERS),
    ("Guest Inviter", roles::GUEST_INVITER),
];

/// A role given by display name or template id.
pub fn role_by_name(name: &str) -> Option<&'static str> {
    ROLE_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(_, id)| *id)
        .or_else(|| static_role(name.trim()))
}

/// A role's display name.
pub fn role_name(id: &str) -> &'static str {
    ROLE_NAMES
        .iter()
        .find(|(_, rid)| rid.eq_ignore_ascii_case(id))
        .map(|(n, _)| *n)
        .unwrap_or("Directory role")
}

fn invalid(path: &Path, msg: impl Into<String>) -> EmulatorError {
    EmulatorError::TenantFile {
        path: path.to_path_buf(),
        message: msg.into(),
    }
}

impl TenantFile {
    /// Read and parse a tenant file (YAML, or JSON when the name ends in `.json`).
    pub fn load(path: &Path) -> Result<TenantFile, EmulatorError> {
        let text = crate::files::read_to_string_bounded(path, crate::files::MAX_TENANT_FILE_BYTES)
            .map_err(|e| invalid(path, e.to_string()))?;
        let mut file: TenantFile = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            serde_json::from_str(&text).map_err(|e| invalid(path, e.to_string()))?
        } else {
            serde_saphyr::from_str(&text).map_err(|e| invalid(path, e.to_string()))?
        };
        file.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // Build once now so that every mistake is reported at load time.
        file.build(0, path)?;
        Ok(file)
    }

    /// Turn the description into a tenant. `seed` fills generated ids and secrets.
    pub fn build(&self, seed: u64, path: &Path) -> Result<Tenant, EmulatorError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7e4a_17f1);
        let mut fresh =
            || uuid::Builder::from_random_bytes(rand::Rng::random(&mut rng)).into_uuid();
        let verified = self
            .verified_domain
            .clone()
            .unwrap_or_else(|| seed::VERIFIED_DOMAIN.to_string());
        let initial = self
            .initial_domain
            .clone()
            .unwrap_or_else(|| seed::INITIAL_DOMAIN.to_string());
        let mut t = Tenant {
            tenant_id: self.tenant_id.unwrap_or_else(&mut fresh),
            verified_domain: verified,
            initial_domain: initial,
            ..Tenant::default()
        };
        let now_ms = jiff::Timestamp::now().as_millisecond();
        for u in &self.users {
            let Some((local, domain)) = u.upn.split_once('@') else {
                return Err(invalid(
                    path,
                    format!("user `{}`: a UPN needs an @domain", u.upn),
                ));
            };
            let mut methods = 0u8;
            for m in &u.methods {
                let kind = MethodKind::from_short(m).ok_or_else(|| {
                    invalid(path, format!("user `{}`: unknown method `{m}` (authenticator, phone, fido2, softwareOath, email, windowsHello)", u.upn))
                })?;
                methods |= kind.bit();
            }
            let mut intern = |s: &Option<String>| match s {
                Some(s) => t.strings.intern(s),
                None => NONE,
            };
            let user = User {
                id: u.id.unwrap_or_else(&mut fresh),
                upn_local: local.into(),
                mobile: u.mobile_phone.as_deref().map(Into::into),
                business_phone: u.business_phone.as_deref().map(Into::into),
                tap: None,
                created_s: now_ms / 1000 - 86_400 * 400,
                password_changed_ms: now_ms - 86_400_000 * 90,
                sessions_valid_ms: now_ms - 86_400_000 * 90,
                domain: NONE,
                given: intern(&u.given_name),
                surname: intern(&u.surname),
                display: intern(&u.display_name),
                department: intern(&u.department),
                job_title: intern(&u.job_title),
                office: intern(&u.office),
                preferred_language: intern(&u.preferred_language),
                manager: NONE,
                methods,
                enabled: u.account_enabled,
                synced: u.synced,
                service: u.service,
                force_change: false,
                force_change_mfa: false,
                password_sets: 0,
            };
            let mut user = user;
            user.domain = t.strings.intern(domain);
            t.users.push(user);
        }
        t.reindex();
        let lookup = |t: &Tenant, key: &str, what: &str| {
            t.find_user(key)
                .ok_or_else(|| invalid(path, format!("{what}: no user `{key}` in the file")))
        };
        let role = |name: &str| {
            role_by_name(name).ok_or_else(|| invalid(path, format!("unknown role `{name}`")))
        };
        for (i, u) in self.users.iter().enumerate() {
            if t.find_user(&u.upn) != Some(i as u32) {
                return Err(invalid(path, format!("user `{}` appears twice", u.upn)));
            }
            if let Some(m) = &u.manager {
                t.users[i].manager = lookup(&t, m, &format!("manager of `{}`", u.upn))?;
            }
            for r in &u.roles {
                let role = role(r)?;
                let id = format!("{}-{}", fresh().simple(), t.assignments.len());
                t.assignments.push(RoleAssignment {
                    id,
                    role,
                    principal: Principal::User(i as u32),
                });
            }
            for r in &u.eligible_roles {
                let role = role(r)?;
                let id = format!("{}-{}", fresh().simple(), t.eligibilities.len());
                t.eligibilities.push(Eligibility {
                    id,
                    role,
                    principal: Principal::User(i as u32),
                    start_s: now_ms / 1000 - 86_400,
                });
            }
            if let Some(r) = &u.risk {
                let level = ["none", "low", "medium", "high", "hidden"]
                    .into_iter()
                    .find(|l| l.eq_ignore_ascii_case(&r.level))
                    .ok_or_else(|| {
                        invalid(
                            path,
                            format!("user `{}`: unknown risk level `{}`", u.upn, r.level),
                        )
                    })?;
                let state = match r.state.as_deref() {
                    None => "atRisk",
                    Some(s) => [
                        "none",
                        "confirmedSafe",
                        "remediated",
                        "dismissed",
                        "atRisk",
                        "confirmedCompromised",
                    ]
                    .into_iter()
                    .find(|x| x.eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        invalid(path, format!("user `{}`: unknown risk state `{s}`", u.upn))
                    })?,
                };
                t.risky.insert(
                    i as u32,
                    Risk {
                        level,
                        state,
                        detail: "none",
                        updated_ms: now_ms - 3_600_000,
                    },
                );
            }
        }
        for g in &self.groups {
            let mut members = Vec::new();
            for m in &g.members {
                members.push(lookup(&t, m, &format!("group `{}`", g.display_name))?);
            }
            t.groups.push(Group {
                id: g.id.unwrap_or_else(&mut fresh),
                display_name: g.display_name.clone(),
                description: g.description.clone().unwrap_or_default(),
                mail_nickname: g
                    .display_name
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .collect(),
                role_assignable: g.role_assignable,
                members,
                member_groups: Vec::new(),
            });
        }
        for (gi, g) in self.groups.iter().enumerate() {
            for name in &g.member_groups {
                let sub = self
                    .groups
                    .iter()
                    .position(|x| &x.display_name == name)
                    .ok_or_else(|| {
                        invalid(
                            path,
                            format!("group `{}`: no group `{name}`", g.display_name),
                        )
                    })?;
                t.groups[gi].member_groups.push(sub as u32);
            }
            for r in &g.roles {
                let role = role(r)?;
                let id = format!("{}-{}", fresh().simple(), t.assignments.len());
                t.assignments.push(RoleAssignment {
                    id,
                    role,
                    principal: Principal::Group(gi as u32),
                });
            }
            for r in &g.eligible_roles {
                let role = role(r)?;
                let id = format!("{}-{}", fresh().simple(), t.eligibilities.len());
                t.eligibilities.push(Eligibility {
                    id,
                    role,
                    principal: Principal::Group(gi as u32),
                    start_s: now_ms / 1000 - 86_400,
                });
            }
        }
        let mut seen_ids = HashMap::new();
        for (i, app) in self.apps.iter().enumerate() {
            let mut certificates = Vec::new();
            let pem = match (&app.certificate_pem, &app.certificate_file) {
                (Some(pem), _) => Some(pem.clone()),
                (None, Some(file)) => {
                    let full = self.base_dir.join(file);
                    Some(
                        crate::files::read_to_string_bounded(&full, crate::files::MAX_PEM_BYTES)
                            .map_err(|e| {
                                invalid(path, format!("certificate {}: {e}", full.display()))
                            })?,
                    )
                }
                (None, None) => None,
            };
            if let Some(pem) = pem {
                use rustls_pki_types::pem::PemObject;
                let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
                    .map_err(|e| {
                        invalid(path, format!("app {}: certificate is not PEM: {e}", i + 1))
                    })?;
                webpki::EndEntityCert::try_from(&der).map_err(|e| {
                    invalid(
                        path,
                        format!("app {}: certificate does not parse: {e}", i + 1),
                    )
                })?;
                certificates.push(der.to_vec());
            }
            let client_id = app.client_id.unwrap_or_else(&mut fresh);
            if seen_ids.insert(client_id, i).is_some() {
                return Err(invalid(
                    path,
                    format!("app client id {client_id} appears twice"),
                ));
            }
            t.apps.push(App {
                client_id,
                display_name: app
                    .display_name
                    .clone()
                    .unwrap_or_else(|| format!("resetctl-runner-{:02}", i + 1)),
                secret: app.client_secret.clone().unwrap_or_else(|| {
                    seed::app_secret(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
                        seed ^ i as u64 ^ 0x5ec,
                    ))
                }),
                certificates,
                role: match &app.role {
                    Some(r) => role(r)?,
                    None => roles::USER_ADMIN,
                },
                permissions: match &app.permissions {
                    Some(list) => {
                        if let Some(bad) = list.iter().find(|p| !permissions::well_formed(p)) {
                            return Err(invalid(
                                path,
                                format!("app {}: `{bad}` is not a permission name (e.g. GroupMember.ReadWrite.All)", i + 1),
                            ));
                        }
                        list.clone()
                    }
                    None => permissions::default_set(),
                },
            });
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_tenant_builds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(
            &path,
            "users:\n  - upn: ceo@contoso.example\n    display_name: The Boss\n    roles: [Global Administrator]\n  - upn: a@contoso.example\n    manager: ceo@contoso.example\n    methods: [phone, fido2]\n    risk: { level: high }\ngroups:\n  - display_name: T0\n    role_assignable: true\n    members: [a@contoso.example]\n    roles: [Privileged Role Administrator]\napps:\n  - client_secret: s3cret\n    role: Helpdesk Administrator\n  - permissions: [GroupMember.ReadWrite.All, RoleManagement.ReadWrite.Directory]\n",
        )
        .unwrap();
        let file = TenantFile::load(&path).unwrap();
        let t = file.build(1, &path).unwrap();
        assert_eq!(t.users.len(), 2);
        assert_eq!(t.users[1].manager, 0);
        assert_eq!(t.display_name(0), "The Boss");
        assert_eq!(t.active_roles(0), vec![roles::GLOBAL_ADMIN]);
        assert_eq!(t.active_roles(1), vec![roles::PRIVILEGED_ROLE_ADMIN]);
        assert_eq!(t.apps[0].secret, "s3cret");
        assert_eq!(t.apps[0].role, roles::HELPDESK_ADMIN);
        assert_eq!(t.apps[0].permissions, permissions::default_set());
        assert_eq!(
            t.apps[1].permissions,
            [
                "GroupMember.ReadWrite.All",
                "RoleManagement.ReadWrite.Directory"
            ]
        );
        assert_eq!(t.risky[&1].level, "high");
    }

    #[test]
    fn json_tenant_builds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        std::fs::write(
            &path,
            r#"{"verified_domain": "fabrikam.example", "users": [{"upn": "x@fabrikam.example", "synced": true, "eligible_roles": ["Global Administrator"]}]}"#,
        )
        .unwrap();
        let t = TenantFile::load(&path).unwrap().build(3, &path).unwrap();
        assert!(t.users[0].synced);
        assert_eq!(t.eligibilities.len(), 1);
        assert_eq!(t.verified_domain, "fabrikam.example");
        assert!(t.apps.is_empty(), "the caller adds default apps");
    }

    #[test]
    fn mistakes_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(
            &path,
            "users:\n  - upn: a@x.example\n    manager: nobody@x.example\n",
        )
        .unwrap();
        let err = TenantFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("nobody@x.example"), "{err}");
        std::fs::write(
            &path,
            "users:\n  - upn: a@x.example\n    roles: [Chief Wizard]\n",
        )
        .unwrap();
        assert!(
            TenantFile::load(&path)
                .unwrap_err()
                .to_string()
                .contains("Chief Wizard")
        );
        std::fs::write(
            &path,
            "apps:\n  - permissions: [User.ReadWrite.All, Read everything]\n",
        )
        .unwrap();
        let err = TenantFile::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("`Read everything` is not a permission name"),
            "{err}"
        );
    }
}
