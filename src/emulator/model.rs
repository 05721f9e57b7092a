//! The emulated directory: users, groups, role assignments and eligibilities, authentication
//! methods, risky users and app registrations, in compact in-memory form.
//!
//! A tenant of 1,000,000 users must fit in a few hundred megabytes, so users hold interned
//! string ids (names, departments, titles, offices, domains) and a bitmask of their
//! authentication methods; lookups by id and by lower-case UPN go through sorted hash
//! indexes instead of string-keyed maps. The JSON shapes are built elsewhere (`render`).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use uuid::Uuid;

/// Built-in directory role template ids
/// (<https://learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference>).
/// Only the ones the emulator reasons about are named; any other id is accepted as "some
/// other role".
pub mod roles {
    /// Global Administrator.
    pub const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
    /// Privileged Role Administrator.
    pub const PRIVILEGED_ROLE_ADMIN: &str = "e8611ab8-c189-46e8-94e1-60213ab1f814";
    /// Privileged Authentication Administrator.
    pub const PRIVILEGED_AUTH_ADMIN: &str = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13";
    /// Security Administrator.
    pub const SECURITY_ADMIN: &str = "194ae4cb-b126-40b2-bd5b-6091b380977d";
    /// Conditional Access Administrator.
    pub const CONDITIONAL_ACCESS_ADMIN: &str = "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9";
    /// Hybrid Identity Administrator.
    pub const HYBRID_IDENTITY_ADMIN: &str = "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2";
    /// Application Administrator.
    pub const APPLICATION_ADMIN: &str = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3";
    /// Cloud Application Administrator.
    pub const CLOUD_APPLICATION_ADMIN: &str = "158c047a-c907-4556-b7ef-446551a6b5f7";
    /// User Administrator.
    pub const USER_ADMIN: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
    /// Authentication Administrator.
    pub const AUTH_ADMIN: &str = "c4e39bd9-1100-46d3-8c65-fb160da0071f";
    /// Helpdesk Administrator.
    pub const HELPDESK_ADMIN: &str = "729827e3-9c14-49f7-bb1b-9608f156bbb8";
    /// Password Administrator.
    pub const PASSWORD_ADMIN: &str = "966707d0-3269-4727-9be2-8c3a10f19b9d";
    /// Exchange Administrator.
    pub const EXCHANGE_ADMIN: &str = "29232cdf-9323-42fd-ade2-1d097af3e4de";
    /// Intune Administrator.
    pub const INTUNE_ADMIN: &str = "3a2c62db-5318-420d-8d74-23affee5d9d5";
    /// Groups Administrator.
    pub const GROUPS_ADMIN: &str = "fdd7a751-b60b-444a-984c-02652fe8fa1c";
    /// Directory Readers.
    pub const DIRECTORY_READERS: &str = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b";
    /// Guest Inviter.
    pub const GUEST_INVITER: &str = "95e79109-95c0-4d8e-aee3-d01accf2d47b";

    /// The critical roles the seed spreads its active and eligible admins over.
    pub const CRITICAL: [&str; 14] = [
        GLOBAL_ADMIN,
        PRIVILEGED_ROLE_ADMIN,
        PRIVILEGED_AUTH_ADMIN,
        SECURITY_ADMIN,
        CONDITIONAL_ACCESS_ADMIN,
        HYBRID_IDENTITY_ADMIN,
        APPLICATION_ADMIN,
        CLOUD_APPLICATION_ADMIN,
        USER_ADMIN,
        AUTH_ADMIN,
        HELPDESK_ADMIN,
        PASSWORD_ADMIN,
        EXCHANGE_ADMIN,
        INTUNE_ADMIN,
    ];
}

/// Fixed method ids Graph uses: the password method's
/// (<https://learn.microsoft.com/graph/api/authenticationmethod-resetpassword>), the phone
/// method's (<https://learn.microsoft.com/graph/api/resources/phoneauthenticationmethod>) and
/// the email method's (<https://learn.microsoft.com/graph/api/emailauthenticationmethod-delete>).
pub mod method_ids {
    /// The password method's id, the same for every user.
    pub const PASSWORD: &str = "28c10230-6103-485e-b985-444c60001490";
    /// The mobile phone method.
    pub const PHONE_MOBILE: &str = "3179e48a-750b-4051-897c-87b9720928f7";
    /// The email method.
    pub const EMAIL: &str = "3ddfcfc8-9383-446f-83cc-3ab9be4be18f";
}

/// Strings stored once and referred to by index (names, departments, titles, domains).
#[derive(Debug, Default)]
pub struct Interner {
    /// The strings, by id.
    strings: Vec<Box<str>>,
    /// Reverse index for interning.
    ids: HashMap<Box<str>, u32>,
}

impl Interner {
    /// The id of `s`, adding it if new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        self.strings.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    /// The string behind `id` (empty for an unknown id).
    pub fn get(&self, id: u32) -> &str {
        self.strings.get(id as usize).map(|s| &**s).unwrap_or("")
    }
}

/// No interned string: the property is null.
pub const NONE: u32 = u32::MAX;

/// One kind of authentication method; a user has at most one of each seeded kind
/// (a temporary access pass is kept apart, see [`Tap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MethodKind {
    /// microsoftAuthenticatorAuthenticationMethod.
    Authenticator = 0,
    /// phoneAuthenticationMethod (mobile).
    Phone = 1,
    /// fido2AuthenticationMethod.
    Fido2 = 2,
    /// softwareOathAuthenticationMethod.
    SoftwareOath = 3,
    /// emailAuthenticationMethod.
    Email = 4,
    /// windowsHelloForBusinessAuthenticationMethod.
    WindowsHello = 5,
}

impl MethodKind {
    /// Every kind, in listing order.
    pub const ALL: [MethodKind; 6] = [
        MethodKind::Authenticator,
        MethodKind::Phone,
        MethodKind::Fido2,
        MethodKind::SoftwareOath,
        MethodKind::Email,
        MethodKind::WindowsHello,
    ];

    /// The bit of this kind in [`User::methods`].
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The OData type name (without `#microsoft.graph.`).
    pub fn odata_type(self) -> &'static str {
        match self {
            MethodKind::Authenticator => "microsoftAuthenticatorAuthenticationMethod",
            MethodKind::Phone => "phoneAuthenticationMethod",
            MethodKind::Fido2 => "fido2AuthenticationMethod",
            MethodKind::SoftwareOath => "softwareOathAuthenticationMethod",
            MethodKind::Email => "emailAuthenticationMethod",
            MethodKind::WindowsHello => "windowsHelloForBusinessAuthenticationMethod",
        }
    }

    /// The path segment under `/users/{id}/authentication/`
    /// (<https://learn.microsoft.com/graph/api/resources/authenticationmethods-overview>).
    pub fn segment(self) -> &'static str {
        match self {
            MethodKind::Authenticator => "microsoftAuthenticatorMethods",
            MethodKind::Phone => "phoneMethods",
            MethodKind::Fido2 => "fido2Methods",
            MethodKind::SoftwareOath => "softwareOathMethods",
            MethodKind::Email => "emailMethods",
            MethodKind::WindowsHello => "windowsHelloForBusinessMethods",
        }
    }

    /// The kind served under a path segment.
    pub fn from_segment(segment: &str) -> Option<MethodKind> {
        MethodKind::ALL.into_iter().find(|k| k.segment() == segment)
    }

    /// The short name used by tenant files and the inspection API.
    pub fn short(self) -> &'static str {
        match self {
            MethodKind::Authenticator => "authenticator",
            MethodKind::Phone => "phone",
            MethodKind::Fido2 => "fido2",
            MethodKind::SoftwareOath => "softwareOath",
            MethodKind::Email => "email",
            MethodKind::WindowsHello => "windowsHello",
        }
    }

    /// Parse a short name.
    pub fn from_short(name: &str) -> Option<MethodKind> {
        MethodKind::ALL
            .into_iter()
            .find(|k| k.short().eq_ignore_ascii_case(name))
    }
}

/// A temporary access pass issued through the API.
#[derive(Clone)]
pub struct Tap {
    /// Method id.
    pub id: Uuid,
    /// The pass itself (a secret: only in the 201 response and the inspection API).
    pub pass: String,
    /// Creation time (Unix ms).
    pub created_ms: i64,
    /// Start of validity (Unix ms).
    pub start_ms: i64,
    /// Lifetime in minutes.
    pub lifetime_minutes: u32,
    /// Single use.
    pub usable_once: bool,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("id", &self.id)
            .field("pass", &"<redacted>")
            .field("start_ms", &self.start_ms)
            .field("lifetime_minutes", &self.lifetime_minutes)
            .finish()
    }
}

/// One directory user. Field order keeps the struct small.
#[derive(Debug, Clone)]
pub struct User {
    /// Object id.
    pub id: Uuid,
    /// Local part of the UPN (before `@`).
    pub upn_local: Box<str>,
    /// Mobile phone (E.164-ish text) or none.
    pub mobile: Option<Box<str>>,
    /// Business phone or none.
    pub business_phone: Option<Box<str>>,
    /// Issued temporary access pass, if any.
    pub tap: Option<Box<Tap>>,
    /// Creation time (Unix seconds).
    pub created_s: i64,
    /// Last password change (Unix ms).
    pub password_changed_ms: i64,
    /// Sessions valid from (Unix ms).
    pub sessions_valid_ms: i64,
    /// Interned UPN domain.
    pub domain: u32,
    /// Interned given name.
    pub given: u32,
    /// Interned surname.
    pub surname: u32,
    /// Interned display name override ([`NONE`]: "given surname").
    pub display: u32,
    /// Interned department.
    pub department: u32,
    /// Interned job title.
    pub job_title: u32,
    /// Interned office location.
    pub office: u32,
    /// Interned `preferredLanguage` (an ISO 639-1 language and ISO 3166 country, `en-US`;
    /// [`NONE`]: null, as Graph serves it for a user nobody set it on).
    pub preferred_language: u32,
    /// Index of the manager ([`NONE`]: no manager).
    pub manager: u32,
    /// Bitmask of [`MethodKind`] bits.
    pub methods: u8,
    /// accountEnabled.
    pub enabled: bool,
    /// onPremisesSyncEnabled.
    pub synced: bool,
    /// A service account (for the inspection API and seeds).
    pub service: bool,
    /// forceChangePasswordNextSignIn.
    pub force_change: bool,
    /// forceChangePasswordNextSignInWithMfa.
    pub force_change_mfa: bool,
    /// How many times the password was set through the API.
    pub password_sets: u16,
}

/// A group (ordinary or role-assignable).
#[derive(Debug, Clone)]
pub struct Group {
    /// Object id.
    pub id: Uuid,
    /// displayName.
    pub display_name: String,
    /// description.
    pub description: String,
    /// mailNickname.
    pub mail_nickname: String,
    /// isAssignableToRole.
    pub role_assignable: bool,
    /// Direct members: user indexes.
    pub members: Vec<u32>,
    /// Direct members that are groups (group indexes), for transitiveMembers.
    pub member_groups: Vec<u32>,
}

/// Who holds a role assignment or eligibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// A user, by index.
    User(u32),
    /// A group, by index.
    Group(u32),
}

/// An active role assignment (unifiedRoleAssignment).
#[derive(Debug, Clone)]
pub struct RoleAssignment {
    /// Assignment id.
    pub id: String,
    /// Role template id (== roleDefinitionId for built-in roles).
    pub role: &'static str,
    /// The principal.
    pub principal: Principal,
}

/// A PIM eligibility (unifiedRoleEligibilityScheduleInstance).
#[derive(Debug, Clone)]
pub struct Eligibility {
    /// Instance id.
    pub id: String,
    /// Role template id.
    pub role: &'static str,
    /// The principal.
    pub principal: Principal,
    /// Start (Unix seconds).
    pub start_s: i64,
}

/// Identity Protection state of one user.
#[derive(Debug, Clone)]
pub struct Risk {
    /// riskLevel.
    pub level: &'static str,
    /// riskState.
    pub state: &'static str,
    /// riskDetail.
    pub detail: &'static str,
    /// riskLastUpdatedDateTime (Unix ms).
    pub updated_ms: i64,
}

/// An app registration allowed to call the emulator.
#[derive(Clone)]
pub struct App {
    /// Application (client) id.
    pub client_id: Uuid,
    /// Display name.
    pub display_name: String,
    /// Client secret (test credential for the emulator only).
    pub secret: String,
    /// DER of registered certificates.
    pub certificates: Vec<Vec<u8>>,
    /// The directory role the app's service principal holds (a template id).
    pub role: &'static str,
    /// Granted application permissions (the token's `roles` claim), e.g. `User.ReadWrite.All`.
    pub permissions: Vec<String>,
}

impl App {
    /// The object id of the app's service principal in the emulated tenant: its tokens'
    /// `oid`, and the principal of its directory role assignment. Derived from the client
    /// id, so the same app has the same id in every emulator that serves it.
    pub fn service_principal_id(&self) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(
            [b"servicePrincipal:".as_slice(), self.client_id.as_bytes()].concat(),
        );
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// Whether the app was granted any of `permissions`.
    pub fn granted_any(&self, permissions: &[&str]) -> bool {
        self.permissions
            .iter()
            .any(|p| permissions.contains(&p.as_str()))
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.client_id)
            .field("display_name", &self.display_name)
            .field("secret", &"<redacted>")
            .field("certificates", &self.certificates.len())
            .field("role", &self.role)
            .field("permissions", &self.permissions)
            .finish()
    }
}

/// The whole tenant.
#[derive(Debug, Default)]
pub struct Tenant {
    /// Tenant id.
    pub tenant_id: Uuid,
    /// The verified custom domain.
    pub verified_domain: String,
    /// The `*.onmicrosoft.com` domain.
    pub initial_domain: String,
    /// Interned strings.
    pub strings: Interner,
    /// Users by index.
    pub users: Vec<User>,
    /// Groups by index.
    pub groups: Vec<Group>,
    /// Active role assignments.
    pub assignments: Vec<RoleAssignment>,
    /// PIM eligibilities.
    pub eligibilities: Vec<Eligibility>,
    /// Risky users by user index.
    pub risky: HashMap<u32, Risk>,
    /// App registrations.
    pub apps: Vec<App>,
    /// Sorted (id, index) pairs.
    pub(super) by_id: Vec<(u128, u32)>,
    /// Sorted (hash of lower-case UPN, index) pairs.
    pub(super) by_upn: Vec<(u64, u32)>,
}

/// Hash of a lower-case UPN for the UPN index.
fn upn_hash(upn_lower: &str) -> u64 {
    let mut h = DefaultHasher::new();
    upn_lower.hash(&mut h);
    h.finish()
}

/// Known role ids mapped to their static form, so assignments hold `&'static str`.
pub fn static_role(id: &str) -> Option<&'static str> {
    roles::CRITICAL
        .iter()
        .chain(
            [
                roles::GROUPS_ADMIN,
                roles::DIRECTORY_READERS,
                roles::GUEST_INVITER,
            ]
            .iter(),
        )
        .find(|r| r.eq_ignore_ascii_case(id))
        .copied()
}

/// The caller roles of the "who can reset whose password" table (see [`may_reset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetRole {
    Password,
    Helpdesk,
    Auth,
    User,
    PrivAuth,
    Global,
}

fn reset_role(role: &str) -> Option<ResetRole> {
    Some(match role {
        roles::PASSWORD_ADMIN => ResetRole::Password,
        roles::HELPDESK_ADMIN => ResetRole::Helpdesk,
        roles::AUTH_ADMIN => ResetRole::Auth,
        roles::USER_ADMIN => ResetRole::User,
        roles::PRIVILEGED_AUTH_ADMIN => ResetRole::PrivAuth,
        roles::GLOBAL_ADMIN => ResetRole::Global,
        _ => return None,
    })
}

/// Whether a caller holding `caller_role` may reset the password of (or revoke sessions of) a
/// target holding `target_roles`, per the "who can reset passwords" table of
/// <https://learn.microsoft.com/entra/identity/role-based-access-control/privileged-roles-permissions>.
/// `in_role_assignable_group` marks a target that is a member of a role-assignable group.
pub fn may_reset(caller_role: &str, target_roles: &[&str], in_role_assignable_group: bool) -> bool {
    use ResetRole::*;
    let Some(caller) = reset_role(caller_role) else {
        return false;
    };
    if matches!(caller, PrivAuth | Global) {
        return true;
    }
    if in_role_assignable_group {
        return false;
    }
    target_roles.iter().all(|role| match *role {
        roles::DIRECTORY_READERS | roles::GUEST_INVITER | roles::PASSWORD_ADMIN => true,
        roles::HELPDESK_ADMIN => matches!(caller, Helpdesk | User),
        roles::USER_ADMIN | roles::GROUPS_ADMIN => caller == User,
        roles::AUTH_ADMIN => caller == Auth,
        _ => false,
    })
}

impl Tenant {
    /// Rebuild the id and UPN indexes; call after adding users.
    pub fn reindex(&mut self) {
        let mut by_id: Vec<(u128, u32)> = self
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.as_u128(), i as u32))
            .collect();
        by_id.sort_unstable();
        let mut by_upn: Vec<(u64, u32)> = self
            .users
            .iter()
            .enumerate()
            .map(|(i, _)| (upn_hash(&self.upn(i as u32).to_lowercase()), i as u32))
            .collect();
        by_upn.sort_unstable();
        self.by_id = by_id;
        self.by_upn = by_upn;
    }

    /// The user's UPN.
    pub fn upn(&self, idx: u32) -> String {
        let u = &self.users[idx as usize];
        format!("{}@{}", u.upn_local, self.strings.get(u.domain))
    }

    /// The user's display name.
    pub fn display_name(&self, idx: u32) -> String {
        let u = &self.users[idx as usize];
        if u.display != NONE {
            return self.strings.get(u.display).to_string();
        }
        match (u.given, u.surname) {
            (NONE, NONE) => u.upn_local.to_string(),
            (g, NONE) => self.strings.get(g).to_string(),
            (NONE, s) => self.strings.get(s).to_string(),
            (g, s) => format!("{} {}", self.strings.get(g), self.strings.get(s)),
        }
    }

    /// An interned string or None for [`NONE`].
    pub fn opt(&self, id: u32) -> Option<&str> {
        (id != NONE).then(|| self.strings.get(id))
    }

    /// Find a user by object id or UPN (case-insensitive), as `/users/{id|upn}` does.
    pub fn find_user(&self, key: &str) -> Option<u32> {
        if let Ok(id) = Uuid::parse_str(key) {
            let id = id.as_u128();
            return self
                .by_id
                .binary_search_by(|probe| probe.0.cmp(&id))
                .ok()
                .map(|pos| self.by_id[pos].1);
        }
        let lower = key.to_lowercase();
        let h = upn_hash(&lower);
        let start = self.by_upn.partition_point(|probe| probe.0 < h);
        self.by_upn[start..]
            .iter()
            .take_while(|probe| probe.0 == h)
            .map(|probe| probe.1)
            .find(|&idx| self.upn(idx).to_lowercase() == lower)
    }

    /// Find a group by id.
    pub fn find_group(&self, key: &str) -> Option<u32> {
        let id = Uuid::parse_str(key).ok()?;
        self.groups
            .iter()
            .position(|g| g.id == id)
            .map(|i| i as u32)
    }

    /// Role-assignable groups the user is a direct member of.
    pub fn role_assignable_groups_of(&self, idx: u32) -> Vec<u32> {
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.role_assignable && g.members.contains(&idx))
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// Active roles of a user: direct assignments plus those of role-assignable groups.
    pub fn active_roles(&self, idx: u32) -> Vec<&'static str> {
        let groups = self.role_assignable_groups_of(idx);
        self.assignments
            .iter()
            .filter(|a| match a.principal {
                Principal::User(u) => u == idx,
                Principal::Group(g) => groups.contains(&g),
            })
            .map(|a| a.role)
            .collect()
    }

    /// Whether the app's role may reset this user's password (the "who can reset passwords"
    /// table).
    pub fn may_reset(&self, app_role: &str, idx: u32) -> bool {
        let in_group = !self.role_assignable_groups_of(idx).is_empty();
        may_reset(app_role, &self.active_roles(idx), in_group)
    }

    /// Transitive user members of a group (each once, in discovery order).
    pub fn transitive_members(&self, group: u32) -> Vec<u32> {
        let mut seen_groups = vec![group];
        let mut stack = vec![group];
        let mut seen_users = std::collections::HashSet::new();
        let mut out = Vec::new();
        while let Some(g) = stack.pop() {
            let Some(grp) = self.groups.get(g as usize) else {
                continue;
            };
            for &m in &grp.members {
                if seen_users.insert(m) {
                    out.push(m);
                }
            }
            for &sub in &grp.member_groups {
                if !seen_groups.contains(&sub) {
                    seen_groups.push(sub);
                    stack.push(sub);
                }
            }
        }
        out
    }

    /// Tenant size class for the resource-unit quota: under 50 users small, 50 to 500
    /// medium, above 500 large (<https://learn.microsoft.com/graph/throttling-limits>).
    pub fn size_class(&self) -> SizeClass {
        match self.users.len() {
            0..50 => SizeClass::Small,
            50..=500 => SizeClass::Medium,
            _ => SizeClass::Large,
        }
    }

    /// A deterministic id for a seeded authentication method of a user.
    pub fn method_id(&self, idx: u32, kind: MethodKind) -> String {
        match kind {
            MethodKind::Phone => method_ids::PHONE_MOBILE.to_string(),
            MethodKind::Email => method_ids::EMAIL.to_string(),
            _ => {
                let u = &self.users[idx as usize];
                let mut h = DefaultHasher::new();
                (u.id.as_u128(), kind as u8, "method").hash(&mut h);
                let a = h.finish();
                (a, "second").hash(&mut h);
                let b = h.finish();
                Uuid::from_u128(((a as u128) << 64) | b as u128).to_string()
            }
        }
    }
}

/// Tenant size for the resource-unit quota: S < 50 users, M 50-500, L > 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeClass {
    /// Fewer than 50 users.
    Small,
    /// 50 to 500 users.
    Medium,
    /// More than 500 users.
    Large,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_table_matches_reference() {
        // User Administrator resets ordinary users and helpdesk admins, not GAs.
        assert!(may_reset(roles::USER_ADMIN, &[], false));
        assert!(may_reset(
            roles::USER_ADMIN,
            &[roles::HELPDESK_ADMIN],
            false
        ));
        assert!(may_reset(roles::USER_ADMIN, &[roles::GROUPS_ADMIN], false));
        assert!(!may_reset(roles::USER_ADMIN, &[roles::GLOBAL_ADMIN], false));
        assert!(!may_reset(roles::USER_ADMIN, &[roles::AUTH_ADMIN], false));
        assert!(!may_reset(roles::USER_ADMIN, &[], true));
        // Helpdesk cannot touch User Administrators.
        assert!(!may_reset(
            roles::HELPDESK_ADMIN,
            &[roles::USER_ADMIN],
            false
        ));
        assert!(may_reset(
            roles::PASSWORD_ADMIN,
            &[roles::PASSWORD_ADMIN],
            false
        ));
        assert!(!may_reset(
            roles::PASSWORD_ADMIN,
            &[roles::HELPDESK_ADMIN],
            false
        ));
        assert!(may_reset(roles::AUTH_ADMIN, &[roles::AUTH_ADMIN], false));
        // Privileged Authentication Administrator and GA reach everyone.
        assert!(may_reset(
            roles::PRIVILEGED_AUTH_ADMIN,
            &[roles::GLOBAL_ADMIN],
            true
        ));
        assert!(may_reset(
            roles::GLOBAL_ADMIN,
            &[roles::GLOBAL_ADMIN],
            false
        ));
        // A role outside the table resets nobody.
        assert!(!may_reset(roles::SECURITY_ADMIN, &[], false));
        // Every role of the target must be reachable.
        assert!(!may_reset(
            roles::USER_ADMIN,
            &[roles::HELPDESK_ADMIN, roles::SECURITY_ADMIN],
            false
        ));
    }

    #[test]
    fn interner_dedups() {
        let mut i = Interner::default();
        let a = i.intern("Finance");
        let b = i.intern("Sales");
        assert_eq!(i.intern("Finance"), a);
        assert_ne!(a, b);
        assert_eq!(i.get(b), "Sales");
    }
}
