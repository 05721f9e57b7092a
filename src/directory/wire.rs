//! Graph JSON shapes (users, authentication methods, roles and PIM, risky users; written from
//! Graph's documentation, not shared with the emulator) and their conversion into the domain
//! types.

use serde::Deserialize;

use super::types::*;

fn ts(s: Option<String>) -> Option<jiff::Timestamp> {
    s.and_then(|v| v.parse().ok())
}

/// `microsoft.graph.group` (the properties we select).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireGroup {
    pub id: String,
    pub display_name: Option<String>,
    pub is_assignable_to_role: Option<bool>,
}

impl WireGroup {
    pub fn into_group(self) -> Group {
        Group {
            id: self.id,
            display_name: self.display_name,
            role_assignable: self.is_assignable_to_role.unwrap_or(false),
        }
    }
}

/// `microsoft.graph.user` (the properties we select).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireUser {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: String,
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub preferred_language: Option<String>,
    pub usage_location: Option<String>,
    pub mail: Option<String>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub mobile_phone: Option<String>,
    #[serde(default)]
    pub business_phones: Option<Vec<String>>,
    pub account_enabled: Option<bool>,
    pub on_premises_sync_enabled: Option<bool>,
    pub user_type: Option<String>,
    pub last_password_change_date_time: Option<String>,
    pub sign_in_sessions_valid_from_date_time: Option<String>,
    pub created_date_time: Option<String>,
}

impl WireUser {
    /// Whether a mixed collection item (group members) is a user.
    pub fn is_user(&self) -> bool {
        ObjectKind::from_odata_type(self.odata_type.as_deref(), ObjectKind::User)
            == ObjectKind::User
    }

    pub fn into_user(self) -> User {
        User {
            id: self.id,
            upn: self.user_principal_name.unwrap_or_default(),
            display_name: self.display_name,
            given_name: self.given_name,
            preferred_language: self.preferred_language,
            usage_location: self.usage_location,
            mail: self.mail,
            department: self.department,
            job_title: self.job_title,
            mobile_phone: self.mobile_phone,
            business_phones: self.business_phones.unwrap_or_default(),
            account_enabled: self.account_enabled,
            on_premises_sync_enabled: self.on_premises_sync_enabled,
            user_type: self.user_type,
            last_password_change: ts(self.last_password_change_date_time),
            sign_in_sessions_valid_from: ts(self.sign_in_sessions_valid_from_date_time),
            created: ts(self.created_date_time),
        }
    }

    pub fn into_manager(self) -> Manager {
        Manager {
            kind: ObjectKind::from_odata_type(self.odata_type.as_deref(), ObjectKind::User),
            id: self.id,
            display_name: self.display_name,
            upn: self.user_principal_name,
            given_name: self.given_name,
            preferred_language: self.preferred_language,
            mail: self.mail,
            mobile_phone: self.mobile_phone,
        }
    }

    pub fn into_principal(self) -> Principal {
        Principal {
            kind: ObjectKind::from_odata_type(
                self.odata_type.as_deref(),
                ObjectKind::Other("directoryObject".into()),
            ),
            id: self.id,
            display_name: self.display_name,
            upn: self.user_principal_name,
        }
    }
}

/// `unifiedRoleAssignment`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireRoleAssignment {
    pub id: String,
    pub role_definition_id: String,
    pub principal_id: String,
    pub directory_scope_id: Option<String>,
    pub principal: Option<WireUser>,
}

impl From<WireRoleAssignment> for RoleAssignment {
    fn from(w: WireRoleAssignment) -> Self {
        RoleAssignment {
            id: w.id,
            role_definition_id: w.role_definition_id,
            principal_id: w.principal_id,
            directory_scope_id: w.directory_scope_id,
            principal: w.principal.map(WireUser::into_principal),
        }
    }
}

/// `unifiedRoleEligibilityScheduleInstance`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireEligibility {
    pub id: String,
    pub role_definition_id: String,
    pub principal_id: String,
    pub directory_scope_id: Option<String>,
    pub member_type: Option<String>,
    pub start_date_time: Option<String>,
    pub end_date_time: Option<String>,
    pub principal: Option<WireUser>,
}

impl From<WireEligibility> for RoleEligibility {
    fn from(w: WireEligibility) -> Self {
        RoleEligibility {
            id: w.id,
            role_definition_id: w.role_definition_id,
            principal_id: w.principal_id,
            directory_scope_id: w.directory_scope_id,
            member_type: w.member_type,
            start: ts(w.start_date_time),
            end: ts(w.end_date_time),
            principal: w.principal.map(WireUser::into_principal),
        }
    }
}

/// `riskyUser`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireRiskyUser {
    pub id: String,
    pub user_principal_name: Option<String>,
    pub user_display_name: Option<String>,
    pub risk_level: Option<String>,
    pub risk_state: Option<String>,
    pub risk_detail: Option<String>,
    pub risk_last_updated_date_time: Option<String>,
}

impl From<WireRiskyUser> for RiskyUser {
    fn from(w: WireRiskyUser) -> Self {
        RiskyUser {
            id: w.id,
            upn: w.user_principal_name,
            display_name: w.user_display_name,
            risk_level: w
                .risk_level
                .as_deref()
                .map_or(RiskLevel::Unknown, RiskLevel::parse),
            risk_state: w.risk_state,
            risk_detail: w.risk_detail,
            last_updated: ts(w.risk_last_updated_date_time),
        }
    }
}

/// `authenticationMethod` (any subtype).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAuthMethod {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: String,
    pub display_name: Option<String>,
}

impl From<WireAuthMethod> for AuthMethod {
    fn from(w: WireAuthMethod) -> Self {
        AuthMethod {
            kind: AuthMethodKind::from_odata_type(w.odata_type.as_deref().unwrap_or("")),
            id: w.id,
            display_name: w.display_name,
        }
    }
}

/// `{"value": [...]}` without paging (authentication methods take no query options).
#[derive(Deserialize)]
pub(crate) struct WireList<T> {
    pub value: Vec<T>,
}

/// One page of a collection: its items and the link to the next page, absent on the last.
#[derive(Deserialize)]
pub(crate) struct WirePage<T> {
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

/// `temporaryAccessPassAuthenticationMethod` as returned on creation (201).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireTap {
    pub id: String,
    pub temporary_access_pass: Option<String>,
    pub start_date_time: Option<String>,
    pub lifetime_in_minutes: Option<u32>,
    pub is_usable_once: Option<bool>,
}

impl WireTap {
    pub fn start(&self) -> Option<jiff::Timestamp> {
        self.start_date_time.clone().and_then(|v| v.parse().ok())
    }
}

/// A user listed with `$expand=manager($select=id)`.
#[derive(Deserialize)]
pub(crate) struct WireUserWithManager {
    #[serde(flatten)]
    pub user: WireUser,
    pub manager: Option<WireObjectRef>,
}

/// A directory object reduced to its id.
#[derive(Deserialize)]
pub(crate) struct WireObjectRef {
    pub id: String,
}

/// `userRegistrationDetails`
/// (<https://learn.microsoft.com/graph/api/resources/userregistrationdetails>).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireRegistration {
    pub id: String,
    pub user_principal_name: Option<String>,
    pub user_display_name: Option<String>,
    pub is_admin: Option<bool>,
    pub is_sspr_registered: Option<bool>,
    pub is_sspr_enabled: Option<bool>,
    pub is_sspr_capable: Option<bool>,
    pub is_mfa_registered: Option<bool>,
    pub is_mfa_capable: Option<bool>,
    pub is_passwordless_capable: Option<bool>,
    #[serde(default)]
    pub methods_registered: Option<Vec<String>>,
    pub user_preferred_method_for_secondary_authentication: Option<String>,
    pub last_updated_date_time: Option<String>,
    pub user_type: Option<String>,
}

impl From<WireRegistration> for Registration {
    fn from(w: WireRegistration) -> Self {
        Registration {
            id: w.id,
            upn: w.user_principal_name,
            display_name: w.user_display_name,
            is_admin: w.is_admin.unwrap_or(false),
            sspr_registered: w.is_sspr_registered.unwrap_or(false),
            sspr_enabled: w.is_sspr_enabled.unwrap_or(false),
            sspr_capable: w.is_sspr_capable.unwrap_or(false),
            mfa_registered: w.is_mfa_registered.unwrap_or(false),
            mfa_capable: w.is_mfa_capable.unwrap_or(false),
            passwordless_capable: w.is_passwordless_capable.unwrap_or(false),
            methods: w.methods_registered.unwrap_or_default(),
            preferred_mfa_method: w
                .user_preferred_method_for_secondary_authentication
                .filter(|m| !m.is_empty()),
            last_updated: ts(w.last_updated_date_time),
            user_type: w.user_type,
        }
    }
}
