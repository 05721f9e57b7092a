//! Entity JSON as Graph v1.0 returns it. Property names and types follow the CSDL
//! (Graph's v1.0 metadata, `https://graph.microsoft.com/v1.0/$metadata`); the contract test
//! (`tests/csdl.rs`, against the part vendored in `tests/fixtures/graph-csdl/`) checks every
//! one of them.

use serde_json::{Map, Value, json};

use super::errors::Fail;
use super::model::{App, Eligibility, MethodKind, Principal, RoleAssignment, Tenant, method_ids};
use super::odata::{Filterable, Value as FValue};
use super::state::ms_rfc3339;

/// Properties of `user` the emulator serves (a subset of the CSDL's).
pub const USER_PROPERTIES: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "mobilePhone",
    "businessPhones",
    "jobTitle",
    "officeLocation",
    "preferredLanguage",
    "department",
    "companyName",
    "employeeId",
    "accountEnabled",
    "userType",
    "usageLocation",
    "createdDateTime",
    "onPremisesSyncEnabled",
    "onPremisesImmutableId",
    "onPremisesLastSyncDateTime",
    "lastPasswordChangeDateTime",
    "signInSessionsValidFromDateTime",
    "passwordPolicies",
    "passwordProfile",
    "otherMails",
];

/// Graph's default property set for users (<https://learn.microsoft.com/graph/api/user-list>).
pub const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

/// Check `$select` names against an entity's properties.
pub fn check_select(
    select: &Option<Vec<String>>,
    known: &[&str],
    type_name: &str,
) -> Result<(), Fail> {
    if let Some(names) = select {
        for n in names {
            if !known.iter().any(|k| k.eq_ignore_ascii_case(n)) {
                return Err(Fail::new(
                    400,
                    "BadRequest",
                    format!(
                        "Parsing OData Select and Expand failed: Could not find a property named '{n}' on type 'microsoft.graph.{type_name}'."
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Check `$filter` property names.
pub fn check_filter_props(props: &[&str], known: &[&str], type_name: &str) -> Result<(), Fail> {
    for p in props {
        if !known.contains(p) {
            return Err(Fail::new(
                400,
                "BadRequest",
                format!(
                    "Could not find a property named '{p}' on type 'microsoft.graph.{type_name}'."
                ),
            ));
        }
    }
    Ok(())
}

/// One user property's value.
fn user_prop(t: &Tenant, idx: u32, name: &str) -> Value {
    let u = &t.users[idx as usize];
    match name {
        "id" => json!(u.id.to_string()),
        "userPrincipalName" => json!(t.upn(idx)),
        "displayName" => json!(t.display_name(idx)),
        "givenName" => json!(t.opt(u.given)),
        "surname" => json!(t.opt(u.surname)),
        "mail" => {
            if u.service {
                Value::Null
            } else {
                json!(t.upn(idx))
            }
        }
        "mobilePhone" => json!(u.mobile.as_deref()),
        "businessPhones" => json!(
            u.business_phone
                .as_deref()
                .map(|p| vec![p])
                .unwrap_or_default()
        ),
        "jobTitle" => json!(t.opt(u.job_title)),
        "officeLocation" => json!(t.opt(u.office)),
        "preferredLanguage" => json!(t.opt(u.preferred_language)),
        "department" => json!(t.opt(u.department)),
        "companyName" => Value::Null,
        "employeeId" => Value::Null,
        "accountEnabled" => json!(u.enabled),
        "userType" => json!("Member"),
        "usageLocation" => json!("US"),
        "createdDateTime" => json!(ms_rfc3339(u.created_s * 1000)),
        // Graph returns null, not false, for objects that were never synced.
        "onPremisesSyncEnabled" => {
            if u.synced {
                json!(true)
            } else {
                Value::Null
            }
        }
        "onPremisesImmutableId" => {
            if u.synced {
                use base64::Engine;
                json!(base64::engine::general_purpose::STANDARD.encode(u.id.as_bytes()))
            } else {
                Value::Null
            }
        }
        "onPremisesLastSyncDateTime" => {
            if u.synced {
                json!(ms_rfc3339(
                    jiff::Timestamp::now().as_millisecond() - 20 * 60_000
                ))
            } else {
                Value::Null
            }
        }
        "lastPasswordChangeDateTime" => json!(ms_rfc3339(u.password_changed_ms)),
        "signInSessionsValidFromDateTime" => json!(ms_rfc3339(u.sessions_valid_ms)),
        "passwordPolicies" => {
            if u.service {
                json!("DisablePasswordExpiration")
            } else {
                Value::Null
            }
        }
        // Write-only in practice: Graph never returns the password.
        "passwordProfile" => Value::Null,
        "otherMails" => json!(Vec::<String>::new()),
        _ => Value::Null,
    }
}

/// A user as JSON: `$select`ed properties or the default set.
pub fn user(t: &Tenant, idx: u32, select: &Option<Vec<String>>) -> Map<String, Value> {
    let mut m = Map::new();
    match select {
        Some(names) => {
            for n in names {
                if let Some(canonical) = USER_PROPERTIES.iter().find(|k| k.eq_ignore_ascii_case(n))
                {
                    m.insert((*canonical).to_string(), user_prop(t, idx, canonical));
                }
            }
        }
        None => {
            for n in USER_DEFAULT {
                m.insert((*n).to_string(), user_prop(t, idx, n));
            }
        }
    }
    m
}

/// Properties a user `$filter` may name.
pub const USER_FILTERABLE: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "mobilePhone",
    "jobTitle",
    "department",
    "officeLocation",
    "accountEnabled",
    "onPremisesSyncEnabled",
    "userType",
];

/// A user seen by the filter engine.
pub struct UserView<'a> {
    /// The tenant.
    pub t: &'a Tenant,
    /// The user index.
    pub idx: u32,
}

impl Filterable for UserView<'_> {
    fn property(&self, name: &str) -> Option<FValue<'_>> {
        let u = &self.t.users[self.idx as usize];
        let s = |x: Option<&str>| match x {
            Some(v) => FValue::Str(v.to_string().into()),
            None => FValue::Null,
        };
        Some(match name {
            "id" => FValue::Str(u.id.to_string().into()),
            "userPrincipalName" => FValue::Str(self.t.upn(self.idx).into()),
            "mail" if u.service => FValue::Null,
            "mail" => FValue::Str(self.t.upn(self.idx).into()),
            "displayName" => FValue::Str(self.t.display_name(self.idx).into()),
            "givenName" => s(self.t.opt(u.given)),
            "surname" => s(self.t.opt(u.surname)),
            "mobilePhone" => s(u.mobile.as_deref()),
            "jobTitle" => s(self.t.opt(u.job_title)),
            "department" => s(self.t.opt(u.department)),
            "officeLocation" => s(self.t.opt(u.office)),
            "accountEnabled" => FValue::Bool(u.enabled),
            "onPremisesSyncEnabled" => {
                if u.synced {
                    FValue::Bool(true)
                } else {
                    FValue::Null
                }
            }
            "userType" => FValue::Str("Member".into()),
            _ => return None,
        })
    }
}

/// A group as JSON.
pub fn group(t: &Tenant, idx: u32) -> Map<String, Value> {
    let g = &t.groups[idx as usize];
    let mut m = Map::new();
    m.insert("id".into(), json!(g.id.to_string()));
    m.insert("displayName".into(), json!(g.display_name));
    m.insert("description".into(), json!(g.description));
    m.insert("mailNickname".into(), json!(g.mail_nickname));
    m.insert("mailEnabled".into(), json!(false));
    m.insert("securityEnabled".into(), json!(true));
    m.insert("isAssignableToRole".into(), json!(g.role_assignable));
    m.insert("groupTypes".into(), json!(Vec::<String>::new()));
    m
}

/// A directory object (user or group) with `@odata.type`, for members and principals.
pub fn principal(t: &Tenant, p: Principal, select: &Option<Vec<String>>) -> Value {
    match p {
        Principal::User(u) => {
            let mut m = Map::new();
            m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            m.extend(user(t, u, select));
            Value::Object(m)
        }
        Principal::Group(g) => {
            let mut m = Map::new();
            m.insert("@odata.type".into(), json!("#microsoft.graph.group"));
            m.extend(group(t, g));
            Value::Object(m)
        }
    }
}

fn principal_id(t: &Tenant, p: Principal) -> String {
    match p {
        Principal::User(u) => t.users[u as usize].id.to_string(),
        Principal::Group(g) => t.groups[g as usize].id.to_string(),
    }
}

/// A unifiedRoleAssignment.
pub fn role_assignment(t: &Tenant, a: &RoleAssignment, expand_principal: bool) -> Value {
    let mut v = json!({
        "id": a.id,
        "principalId": principal_id(t, a.principal),
        "roleDefinitionId": a.role,
        "directoryScopeId": "/",
        "appScopeId": null,
        "condition": null,
        "principalOrganizationId": t.tenant_id.to_string(),
    });
    if expand_principal {
        v["principal"] = principal(t, a.principal, &None);
    }
    v
}

/// The unifiedRoleAssignment of an app's directory role to its service principal.
pub fn app_role_assignment(t: &Tenant, app: &App, expand_principal: bool) -> Value {
    let principal = app.service_principal_id();
    let mut v = json!({
        "id": format!("{}-sp", principal.replace('-', "")),
        "principalId": principal,
        "roleDefinitionId": app.role,
        "directoryScopeId": "/",
        "appScopeId": null,
        "condition": null,
        "principalOrganizationId": t.tenant_id.to_string(),
    });
    if expand_principal {
        v["principal"] = json!({
            "@odata.type": "#microsoft.graph.servicePrincipal",
            "id": principal,
            "appId": app.client_id.to_string(),
            "displayName": app.display_name,
            "servicePrincipalType": "Application",
        });
    }
    v
}

/// A filterable view of an assignment or eligibility.
pub struct RoleView<'a> {
    /// Principal id.
    pub principal_id: String,
    /// Role id.
    pub role: &'a str,
}

impl Filterable for RoleView<'_> {
    fn property(&self, name: &str) -> Option<FValue<'_>> {
        match name {
            "principalId" => Some(FValue::Str(self.principal_id.as_str().into())),
            "roleDefinitionId" => Some(FValue::Str(self.role.into())),
            "directoryScopeId" => Some(FValue::Str("/".into())),
            _ => None,
        }
    }
}

/// The filter view of a role assignment.
pub fn role_view<'a>(t: &Tenant, p: Principal, role: &'a str) -> RoleView<'a> {
    RoleView {
        principal_id: principal_id(t, p),
        role,
    }
}

/// Filterable properties of assignments and eligibilities.
pub const ROLE_FILTERABLE: &[&str] = &["principalId", "roleDefinitionId", "directoryScopeId"];

/// A unifiedRoleEligibilityScheduleInstance.
pub fn eligibility(t: &Tenant, e: &Eligibility, expand_principal: bool) -> Value {
    let mut v = json!({
        "id": e.id,
        "principalId": principal_id(t, e.principal),
        "roleDefinitionId": e.role,
        "directoryScopeId": "/",
        "appScopeId": null,
        "startDateTime": ms_rfc3339(e.start_s * 1000),
        "endDateTime": null,
        "memberType": "Direct",
        "roleEligibilityScheduleId": e.id,
    });
    if expand_principal {
        v["principal"] = principal(t, e.principal, &None);
    }
    v
}

/// A riskyUser.
pub fn risky_user(t: &Tenant, idx: u32) -> Option<Value> {
    let r = t.risky.get(&idx)?;
    Some(json!({
        "id": t.users[idx as usize].id.to_string(),
        "isDeleted": false,
        "isProcessing": false,
        "riskLastUpdatedDateTime": ms_rfc3339(r.updated_ms),
        "riskLevel": r.level,
        "riskState": r.state,
        "riskDetail": r.detail,
        "userDisplayName": t.display_name(idx),
        "userPrincipalName": t.upn(idx),
    }))
}

/// Filterable properties of riskyUser.
pub const RISKY_FILTERABLE: &[&str] = &[
    "id",
    "riskLevel",
    "riskState",
    "riskDetail",
    "userPrincipalName",
    "userDisplayName",
];

/// The filter view of a risky user (its JSON).
pub struct JsonView<'a>(pub &'a Value);

impl Filterable for JsonView<'_> {
    fn property(&self, name: &str) -> Option<FValue<'_>> {
        match self.0.get(name)? {
            Value::String(s) => Some(FValue::Str(s.as_str().into())),
            Value::Bool(b) => Some(FValue::Bool(*b)),
            Value::Null => Some(FValue::Null),
            _ => None,
        }
    }
}

/// Seeded details of a method, derived from the user id so they stay stable.
fn detail(t: &Tenant, idx: u32, salt: u64, choices: &[&'static str]) -> &'static str {
    let id = t.users[idx as usize].id.as_u128();
    let h = (id as u64 ^ (id >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15 ^ salt);
    choices[(h >> 33) as usize % choices.len()]
}

/// One seeded authentication method as JSON.
pub fn method(t: &Tenant, idx: u32, kind: MethodKind) -> Value {
    let u = &t.users[idx as usize];
    let id = t.method_id(idx, kind);
    let created = ms_rfc3339(u.created_s * 1000 + 86_400_000);
    let odata_type = format!("#microsoft.graph.{}", kind.odata_type());
    match kind {
        MethodKind::Authenticator => json!({
            "@odata.type": odata_type, "id": id, "createdDateTime": created,
            "displayName": detail(t, idx, 1, &["iPhone 15", "Pixel 8", "Galaxy S23", "iPhone 13", "Surface Duo"]),
            "deviceTag": "SoftwareTokenActivated",
            "phoneAppVersion": detail(t, idx, 2, &["6.8.7", "6.2405.3421", "6.7.12"]),
        }),
        MethodKind::Phone => json!({
            "@odata.type": odata_type, "id": id,
            // The method's number is registered apart from the directory's `mobilePhone`,
            // which may hold text no phone could be registered with (`n/a`).
            "phoneNumber": u.mobile.as_deref().filter(|m| m.chars().filter(char::is_ascii_digit).count() >= 7).unwrap_or("+1 425 555 0100"),
            "phoneType": "mobile",
            "smsSignInState": "notAllowedByPolicy",
        }),
        MethodKind::Fido2 => json!({
            "@odata.type": odata_type, "id": id, "createdDateTime": created,
            "displayName": detail(t, idx, 3, &["Red key", "YubiKey", "Backup key"]),
            "model": detail(t, idx, 4, &["YubiKey 5 NFC", "YubiKey 5C", "Feitian ePass K9"]),
            "aaGuid": "cb69481e-8ff7-4039-93ec-0a2729a154a8",
            "attestationCertificates": [],
            "attestationLevel": "attested",
        }),
        MethodKind::SoftwareOath => json!({
            "@odata.type": odata_type, "id": id, "secretKey": null,
        }),
        MethodKind::Email => json!({
            "@odata.type": odata_type, "id": id,
            "emailAddress": format!("{}@personal-mail.example", u.upn_local),
        }),
        MethodKind::WindowsHello => json!({
            "@odata.type": odata_type, "id": id, "createdDateTime": created,
            "displayName": format!("DESKTOP-{:04X}", (u.id.as_u128() & 0xffff) as u16),
            "keyStrength": "normal",
        }),
    }
}

/// The password method every user has.
pub fn password_method(t: &Tenant, idx: u32) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
        "id": method_ids::PASSWORD,
        "password": null,
        "createdDateTime": ms_rfc3339(t.users[idx as usize].password_changed_ms),
    })
}

/// The user's temporary access pass as JSON; `reveal` includes the pass (201 only).
pub fn tap(t: &Tenant, idx: u32, reveal: bool) -> Option<Value> {
    let tap = t.users[idx as usize].tap.as_ref()?;
    let now = jiff::Timestamp::now().as_millisecond();
    let end = tap.start_ms + tap.lifetime_minutes as i64 * 60_000;
    let (usable, reason) = if now < tap.start_ms {
        (false, "NotYetValid")
    } else if now >= end {
        (false, "Expired")
    } else {
        (true, "EnabledByPolicy")
    };
    Some(json!({
        "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
        "id": tap.id.to_string(),
        "temporaryAccessPass": if reveal { Value::String(tap.pass.clone()) } else { Value::Null },
        "createdDateTime": ms_rfc3339(tap.created_ms),
        "startDateTime": ms_rfc3339(tap.start_ms),
        "lifetimeInMinutes": tap.lifetime_minutes,
        "isUsableOnce": tap.usable_once,
        "isUsable": usable,
        "methodUsabilityReason": reason,
    }))
}

/// Every method of a user, as `GET /users/{id}/authentication/methods` lists them.
pub fn methods(t: &Tenant, idx: u32) -> Vec<Value> {
    let u = &t.users[idx as usize];
    let mut out = vec![password_method(t, idx)];
    for kind in MethodKind::ALL {
        if u.methods & kind.bit() != 0 {
            out.push(method(t, idx, kind));
        }
    }
    if let Some(tap) = tap(t, idx, false) {
        out.push(tap);
    }
    out
}
