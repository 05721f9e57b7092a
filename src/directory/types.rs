//! Plain domain types of the directory: what the engine, targeting and comms work with.
//! No wire details leak out of here (JSON shapes live in `wire.rs`).

use secrecy::SecretString;

/// A directory user with the properties resetctl decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Object id (GUID).
    pub id: String,
    /// `userPrincipalName`.
    pub upn: String,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `givenName` (how a message greets the user).
    pub given_name: Option<String>,
    /// `preferredLanguage` (ISO 639-1 and region, `de-DE`: the language of messages).
    pub preferred_language: Option<String>,
    /// `usageLocation` (ISO 3166 two-letter country: how a national mobile number is read).
    pub usage_location: Option<String>,
    /// `mail`.
    pub mail: Option<String>,
    /// `department` (targeting filters).
    pub department: Option<String>,
    /// `jobTitle`.
    pub job_title: Option<String>,
    /// `mobilePhone` (SMS fallback of the verification flow).
    pub mobile_phone: Option<String>,
    /// `businessPhones`.
    pub business_phones: Vec<String>,
    /// `accountEnabled` (disabled accounts may be skipped).
    pub account_enabled: Option<bool>,
    /// `onPremisesSyncEnabled`: synced (hybrid) users cannot get cloud password writes.
    pub on_premises_sync_enabled: Option<bool>,
    /// `userType` (`Member` / `Guest`).
    pub user_type: Option<String>,
    /// `lastPasswordChangeDateTime` (to verify a reset happened).
    pub last_password_change: Option<jiff::Timestamp>,
    /// `signInSessionsValidFromDateTime` (to verify a revocation happened).
    pub sign_in_sessions_valid_from: Option<jiff::Timestamp>,
    /// `createdDateTime`.
    pub created: Option<jiff::Timestamp>,
}

/// The kind of a directory object, from its `@odata.type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    /// `#microsoft.graph.user`.
    User,
    /// `#microsoft.graph.group` (role-assignable groups make their members privileged).
    Group,
    /// `#microsoft.graph.servicePrincipal`.
    ServicePrincipal,
    /// `#microsoft.graph.orgContact` (a manager may be one).
    OrgContact,
    /// Anything else, with its type name.
    Other(String),
}

impl ObjectKind {
    /// From an `@odata.type` value (absent means the collection's own type: `default`).
    pub fn from_odata_type(t: Option<&str>, default: ObjectKind) -> Self {
        match t.map(|s| {
            s.trim_start_matches('#')
                .trim_start_matches("microsoft.graph.")
        }) {
            None => default,
            Some("user") => ObjectKind::User,
            Some("group") => ObjectKind::Group,
            Some("servicePrincipal") => ObjectKind::ServicePrincipal,
            Some("orgContact") => ObjectKind::OrgContact,
            Some(other) => ObjectKind::Other(other.to_string()),
        }
    }
}

/// A group, as the planner needs it before adding users to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Object id.
    pub id: String,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `isAssignableToRole`: directory roles can be assigned to the group, so membership
    /// can make a user an administrator.
    pub role_assignable: bool,
}

/// A user's manager (a user or an org contact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    /// What the manager object is.
    pub kind: ObjectKind,
    /// Object id.
    pub id: String,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `userPrincipalName` (users only).
    pub upn: Option<String>,
    /// `givenName`.
    pub given_name: Option<String>,
    /// `preferredLanguage` (users only).
    pub preferred_language: Option<String>,
    /// `mail`.
    pub mail: Option<String>,
    /// `mobilePhone` (the manager-approval SMS goes here).
    pub mobile_phone: Option<String>,
}

/// The principal of a role assignment (`$expand=principal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Object id.
    pub id: String,
    /// User, group, service principal...
    pub kind: ObjectKind,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `userPrincipalName` when a user.
    pub upn: Option<String>,
}

/// An active directory role assignment (`unifiedRoleAssignment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// Assignment id.
    pub id: String,
    /// Role definition (template) id, e.g. Global Administrator's.
    pub role_definition_id: String,
    /// Assigned principal's id.
    pub principal_id: String,
    /// Scope (`/` = whole directory).
    pub directory_scope_id: Option<String>,
    /// The expanded principal, when Graph returned it.
    pub principal: Option<Principal>,
}

/// A PIM eligibility (`unifiedRoleEligibilityScheduleInstance`): the principal can activate
/// the role, so it counts as privileged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleEligibility {
    /// Instance id.
    pub id: String,
    /// Role definition (template) id.
    pub role_definition_id: String,
    /// Eligible principal's id.
    pub principal_id: String,
    /// Scope.
    pub directory_scope_id: Option<String>,
    /// `memberType` (`Direct`, `Group`, `Inherited`).
    pub member_type: Option<String>,
    /// Start of eligibility.
    pub start: Option<jiff::Timestamp>,
    /// End of eligibility (`None` = permanent).
    pub end: Option<jiff::Timestamp>,
    /// The expanded principal, when Graph returned it (`$expand=principal`).
    pub principal: Option<Principal>,
}

/// The role grants one principal holds directly: what the partition needs of a role
/// holder without listing every grant of the tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalGrants {
    /// Active role assignments whose `principalId` is the principal.
    pub assignments: Vec<RoleAssignment>,
    /// PIM eligibilities whose `principalId` is the principal (empty when not asked for).
    pub eligibilities: Vec<RoleEligibility>,
}

/// Identity Protection risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskLevel {
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `hidden` (no P2 licence).
    Hidden,
    /// `none`.
    None,
    /// Anything else Graph may add.
    Unknown,
}

impl RiskLevel {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Hidden => "hidden",
            RiskLevel::None => "none",
            RiskLevel::Unknown => "unknownFutureValue",
        }
    }

    /// From the wire value.
    pub fn parse(s: &str) -> Self {
        match s {
            "low" => RiskLevel::Low,
            "medium" => RiskLevel::Medium,
            "high" => RiskLevel::High,
            "hidden" => RiskLevel::Hidden,
            "none" => RiskLevel::None,
            _ => RiskLevel::Unknown,
        }
    }
}

/// A risky user (`riskyUser`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskyUser {
    /// The user's object id.
    pub id: String,
    /// `userPrincipalName`.
    pub upn: Option<String>,
    /// `userDisplayName`.
    pub display_name: Option<String>,
    /// `riskLevel`.
    pub risk_level: RiskLevel,
    /// `riskState` (`atRisk`, `confirmedCompromised`, `remediated`, ...).
    pub risk_state: Option<String>,
    /// `riskDetail`.
    pub risk_detail: Option<String>,
    /// `riskLastUpdatedDateTime`.
    pub last_updated: Option<jiff::Timestamp>,
}

/// A forced password change (`PATCH /users/{id}` with `passwordProfile`,
/// <https://learn.microsoft.com/graph/api/resources/passwordprofile>).
/// Both flags are always sent explicitly; the password is sent except in the playbook's
/// `keep` mode. `Debug` never shows the password.
#[derive(Clone)]
pub struct PasswordChange {
    /// `forceChangePasswordNextSignIn`.
    pub force_change_next_sign_in: bool,
    /// `forceChangePasswordNextSignInWithMfa`.
    pub force_change_with_mfa: bool,
    /// The new password; `None` only in `keep` mode (a PATCH without a password has been seen
    /// to answer 204 and do nothing, github.com/microsoftgraph/microsoft-graph-docs/issues/4267:
    /// the engine must verify it).
    pub password: Option<SecretString>,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChange")
            .field("force_change_next_sign_in", &self.force_change_next_sign_in)
            .field("force_change_with_mfa", &self.force_change_with_mfa)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A registered authentication method type
/// (<https://learn.microsoft.com/graph/api/resources/authenticationmethods-overview>).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthMethodKind {
    /// Password (cannot be deleted through this API).
    Password,
    /// Phone (SMS / voice).
    Phone,
    /// Email (SSPR).
    Email,
    /// FIDO2 security key.
    Fido2,
    /// Microsoft Authenticator.
    MicrosoftAuthenticator,
    /// Software OATH token.
    SoftwareOath,
    /// Temporary Access Pass.
    TemporaryAccessPass,
    /// Windows Hello for Business.
    WindowsHelloForBusiness,
    /// A type this client does not know.
    Other(String),
}

impl AuthMethodKind {
    /// From `@odata.type`.
    pub fn from_odata_type(t: &str) -> Self {
        match t
            .trim_start_matches('#')
            .trim_start_matches("microsoft.graph.")
        {
            "passwordAuthenticationMethod" => Self::Password,
            "phoneAuthenticationMethod" => Self::Phone,
            "emailAuthenticationMethod" => Self::Email,
            "fido2AuthenticationMethod" => Self::Fido2,
            "microsoftAuthenticatorAuthenticationMethod" => Self::MicrosoftAuthenticator,
            "softwareOathAuthenticationMethod" => Self::SoftwareOath,
            "temporaryAccessPassAuthenticationMethod" => Self::TemporaryAccessPass,
            "windowsHelloForBusinessAuthenticationMethod" => Self::WindowsHelloForBusiness,
            other => Self::Other(other.to_string()),
        }
    }

    /// The playbook's short name (`phone`, `softwareOath`, ...).
    pub fn short_name(&self) -> &str {
        match self {
            Self::Password => "password",
            Self::Phone => "phone",
            Self::Email => "email",
            Self::Fido2 => "fido2",
            Self::MicrosoftAuthenticator => "microsoftAuthenticator",
            Self::SoftwareOath => "softwareOath",
            Self::TemporaryAccessPass => "temporaryAccessPass",
            Self::WindowsHelloForBusiness => "windowsHelloForBusiness",
            Self::Other(s) => s,
        }
    }

    /// The collection under `/users/{id}/authentication/` used to delete such a method;
    /// `None` when it cannot be deleted.
    pub fn collection(&self) -> Option<&'static str> {
        Some(match self {
            Self::Phone => "phoneMethods",
            Self::Email => "emailMethods",
            Self::Fido2 => "fido2Methods",
            Self::MicrosoftAuthenticator => "microsoftAuthenticatorMethods",
            Self::SoftwareOath => "softwareOathMethods",
            Self::TemporaryAccessPass => "temporaryAccessPassMethods",
            Self::WindowsHelloForBusiness => "windowsHelloForBusinessMethods",
            Self::Password | Self::Other(_) => return None,
        })
    }
}

/// One registered method of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMethod {
    /// Method id (fixed ids for phone types and email).
    pub id: String,
    /// Its type.
    pub kind: AuthMethodKind,
    /// `displayName` when the type has one.
    pub display_name: Option<String>,
}

/// Options of a new Temporary Access Pass (all optional on the wire; policy defaults apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapRequest {
    /// `startDateTime`.
    pub start: Option<jiff::Timestamp>,
    /// `lifetimeInMinutes` (10-43200).
    pub lifetime_minutes: Option<u32>,
    /// `isUsableOnce`.
    pub usable_once: bool,
}

/// A created Temporary Access Pass. The pass itself is a secret: deliver it over a verified
/// channel only; `Debug` never shows it.
pub struct TemporaryAccessPass {
    /// Method id.
    pub id: String,
    /// The pass.
    pub pass: SecretString,
    /// `startDateTime`.
    pub start: Option<jiff::Timestamp>,
    /// `lifetimeInMinutes`.
    pub lifetime_minutes: Option<u32>,
    /// `isUsableOnce`.
    pub usable_once: Option<bool>,
}

impl std::fmt::Debug for TemporaryAccessPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryAccessPass")
            .field("id", &self.id)
            .field("pass", &"[redacted]")
            .field("start", &self.start)
            .field("lifetime_minutes", &self.lifetime_minutes)
            .field("usable_once", &self.usable_once)
            .finish()
    }
}

/// An email sent as a mailbox through Graph `sendMail`
/// (<https://learn.microsoft.com/graph/api/user-sendmail>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Subject line.
    pub subject: String,
    /// HTML body.
    pub html_body: String,
    /// Recipient addresses.
    pub to: Vec<String>,
    /// `saveToSentItems`.
    pub save_to_sent_items: bool,
}

/// Which users to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// OData `$filter`; `None` lists every user. The implementation sends what the filter
    /// needs on the wire (an advanced query for `ne`, `not`, `endsWith`).
    pub filter: Option<String>,
    /// Properties to `$select`; `None` uses [`super::USER_SELECT`].
    pub select: Option<Vec<String>>,
}

/// One write of a batched write list ([`super::Directory::batch_writes`]).
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// `PATCH passwordProfile`.
    ForcePasswordChange(PasswordChange),
    /// `revokeSignInSessions`.
    RevokeSessions,
    /// Delete one authentication method.
    DeleteAuthMethod(AuthMethod),
    /// Add the user to a group.
    AddGroupMember {
        /// The group.
        group_id: String,
    },
    /// Remove the user from a group.
    RemoveGroupMember {
        /// The group.
        group_id: String,
    },
}

/// A write on one user, optionally after an earlier write of the same list (`dependsOn`).
#[derive(Debug, Clone)]
pub struct UserWrite {
    /// Target user id.
    pub user_id: String,
    /// The write.
    pub op: WriteOp,
    /// Index of an earlier write that must succeed first.
    pub after: Option<usize>,
}

/// A user's authentication-method registration state, as the authentication methods
/// activity report serves it (`userRegistrationDetails`,
/// <https://learn.microsoft.com/graph/api/resources/userregistrationdetails>): whether the
/// user can recover by self-service password reset, and with which methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The user's object id.
    pub id: String,
    /// `userPrincipalName`.
    pub upn: Option<String>,
    /// `userDisplayName`.
    pub display_name: Option<String>,
    /// `isAdmin`: the user holds an admin role.
    pub is_admin: bool,
    /// `isSsprRegistered`: enough methods registered for SSPR.
    pub sspr_registered: bool,
    /// `isSsprEnabled`: SSPR allowed by policy.
    pub sspr_enabled: bool,
    /// `isSsprCapable`: registered and allowed, so the user can reset their own password.
    pub sspr_capable: bool,
    /// `isMfaRegistered`.
    pub mfa_registered: bool,
    /// `isMfaCapable`.
    pub mfa_capable: bool,
    /// `isPasswordlessCapable`.
    pub passwordless_capable: bool,
    /// `methodsRegistered` (`mobilePhone`, `microsoftAuthenticatorPush`, `email`, ...).
    pub methods: Vec<String>,
    /// `userPreferredMethodForSecondaryAuthentication` (`push`, `sms`, `none`, ...).
    pub preferred_mfa_method: Option<String>,
    /// `lastUpdatedDateTime`.
    pub last_updated: Option<jiff::Timestamp>,
    /// `userType` (`member`, `guest`).
    pub user_type: Option<String>,
}

impl Registration {
    /// `methodsRegistered` values that mean the Microsoft Authenticator app.
    pub const AUTHENTICATOR_METHODS: [&'static str; 2] = [
        "microsoftAuthenticatorPush",
        "microsoftAuthenticatorPasswordless",
    ];

    /// The Microsoft Authenticator app is registered (push or passwordless).
    pub fn has_authenticator(&self) -> bool {
        self.methods
            .iter()
            .any(|m| Self::AUTHENTICATOR_METHODS.contains(&m.as_str()))
    }

    /// A mobile phone (SMS or voice) is the only registered method: the weakest way to
    /// recover, and the first one an attacker with the number can use.
    pub fn sms_only(&self) -> bool {
        matches!(self.methods.as_slice(), [only] if only == "mobilePhone")
    }
}
