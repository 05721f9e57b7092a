//! Each user's `userRegistrationDetails` row, derived from the user's seeded (or tenant
//! file's) authentication methods, so the report can never disagree with
//! `/users/{id}/authentication/methods` or with `mobilePhone` (a phone method exists only for
//! users with a mobile number).
//!
//! The emulated tenant's policies: self-service password reset is enabled for every user
//! and every method is allowed by the authentication methods policy. One SSPR method is
//! enough for a user, two for an administrator: administrators always get the "two-gate"
//! policy (<https://learn.microsoft.com/entra/identity/authentication/concept-sspr-policy>).
//! The methods SSPR accepts are a mobile phone, email and the authenticator app's
//! notification or code (<https://learn.microsoft.com/entra/identity/authentication/concept-sspr-howitworks>);
//! a FIDO2 key and Windows Hello are strong and passwordless but not SSPR methods.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::model::{MethodKind, Principal, Tenant};
use super::state::ms_rfc3339;

/// Properties of `userRegistrationDetails`
/// (<https://learn.microsoft.com/graph/api/resources/userregistrationdetails>).
pub const PROPERTIES: &[&str] = &[
    "id",
    "userPrincipalName",
    "userDisplayName",
    "userType",
    "isAdmin",
    "isSsprRegistered",
    "isSsprEnabled",
    "isSsprCapable",
    "isMfaRegistered",
    "isMfaCapable",
    "isPasswordlessCapable",
    "methodsRegistered",
    "isSystemPreferredAuthenticationMethodEnabled",
    "systemPreferredAuthenticationMethods",
    "userPreferredMethodForSecondaryAuthentication",
    "lastUpdatedDateTime",
];

/// Properties the report filters on (`eq`; the two names also `startsWith`), from the
/// resource page's "Supports `$filter`" notes. `methodsRegistered` (`any` with `eq`) is not
/// served: the emulator's filter language has no lambda operators.
pub const FILTERABLE: &[&str] = &[
    "isAdmin",
    "isSsprRegistered",
    "isSsprEnabled",
    "isSsprCapable",
    "isMfaRegistered",
    "isMfaCapable",
    "isPasswordlessCapable",
    "isSystemPreferredAuthenticationMethodEnabled",
    "userPrincipalName",
    "userDisplayName",
];

/// Users holding an active directory role, directly or through a role-assignable group
/// (`isAdmin`), computed once per request.
pub fn admins(t: &Tenant) -> HashSet<u32> {
    let mut out = HashSet::new();
    for a in &t.assignments {
        match a.principal {
            Principal::User(u) => {
                out.insert(u);
            }
            Principal::Group(g) => out.extend(t.transitive_members(g)),
        }
    }
    out
}

/// The registration state of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `methodsRegistered`, in Graph's names.
    pub methods: Vec<&'static str>,
    /// `isAdmin`.
    pub admin: bool,
    /// `isSsprRegistered`.
    pub sspr_registered: bool,
    /// `isMfaRegistered` (and `isMfaCapable`: every method is allowed).
    pub mfa_registered: bool,
    /// `isPasswordlessCapable`.
    pub passwordless: bool,
    /// `userPreferredMethodForSecondaryAuthentication`.
    pub preferred: &'static str,
}

/// Derive a user's registration state from their methods.
pub fn state(t: &Tenant, idx: u32, admin: bool) -> State {
    let bits = t.users[idx as usize].methods;
    let has = |k: MethodKind| bits & k.bit() != 0;
    let mut methods = Vec::new();
    if has(MethodKind::Phone) {
        methods.push("mobilePhone");
    }
    if has(MethodKind::Email) {
        methods.push("email");
    }
    if has(MethodKind::Authenticator) {
        methods.push("microsoftAuthenticatorPush");
    }
    // The authenticator app also yields codes; a third-party OATH app only codes.
    if has(MethodKind::Authenticator) || has(MethodKind::SoftwareOath) {
        methods.push("softwareOneTimePasscode");
    }
    if has(MethodKind::Fido2) {
        methods.push("fido2");
    }
    if has(MethodKind::WindowsHello) {
        methods.push("windowsHelloForBusiness");
    }
    let sspr_methods = [
        has(MethodKind::Phone),
        has(MethodKind::Email),
        has(MethodKind::Authenticator) || has(MethodKind::SoftwareOath),
    ]
    .into_iter()
    .filter(|&b| b)
    .count();
    let required = if admin { 2 } else { 1 };
    let preferred = if has(MethodKind::Authenticator) {
        "push"
    } else if has(MethodKind::SoftwareOath) {
        "oath"
    } else if has(MethodKind::Phone) {
        "sms"
    } else {
        "none"
    };
    State {
        admin,
        sspr_registered: sspr_methods >= required,
        mfa_registered: [
            MethodKind::Authenticator,
            MethodKind::Phone,
            MethodKind::Fido2,
            MethodKind::SoftwareOath,
            MethodKind::WindowsHello,
        ]
        .into_iter()
        .any(has),
        passwordless: has(MethodKind::Fido2) || has(MethodKind::WindowsHello),
        preferred,
        methods,
    }
}

/// One `userRegistrationDetails` object, every property.
pub fn render(t: &Tenant, idx: u32, admins: &HashSet<u32>) -> Value {
    let u = &t.users[idx as usize];
    let s = state(t, idx, admins.contains(&idx));
    let system: Vec<&str> = (s.preferred != "none")
        .then_some(s.preferred)
        .into_iter()
        .collect();
    json!({
        "id": u.id.to_string(),
        "userPrincipalName": t.upn(idx),
        "userDisplayName": t.display_name(idx),
        "userType": "member",
        "isAdmin": s.admin,
        "isSsprRegistered": s.sspr_registered,
        // SSPR is enabled for everyone in the emulated tenant.
        "isSsprEnabled": true,
        "isSsprCapable": s.sspr_registered,
        "isMfaRegistered": s.mfa_registered,
        "isMfaCapable": s.mfa_registered,
        "isPasswordlessCapable": s.passwordless,
        "methodsRegistered": s.methods,
        "isSystemPreferredAuthenticationMethodEnabled": true,
        "systemPreferredAuthenticationMethods": system,
        "userPreferredMethodForSecondaryAuthentication": s.preferred,
        // The seeded methods were registered a day after the account was created.
        "lastUpdatedDateTime": ms_rfc3339(u.created_s * 1000 + 86_400_000),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::seed::{SeedSpec, generate};

    #[test]
    fn derived_state_agrees_with_methods_and_mobile() {
        let t = generate(&SeedSpec {
            seed: 7,
            users: 2_000,
            missing_mobile: 0.1,
            apps: 1,
        });
        let admins = admins(&t);
        let (mut capable, mut sms_only, mut nothing) = (0, 0, 0);
        for idx in 0..t.users.len() as u32 {
            let u = &t.users[idx as usize];
            let s = state(&t, idx, admins.contains(&idx));
            if s.methods.contains(&"mobilePhone") {
                assert!(u.mobile.is_some(), "a phone method needs a mobile number");
            }
            capable += usize::from(s.sspr_registered);
            sms_only += usize::from(s.methods == ["mobilePhone"]);
            nothing += usize::from(s.methods.is_empty());
            if s.methods.is_empty() {
                assert!(!s.sspr_registered && !s.mfa_registered);
            }
        }
        let n = t.users.len();
        assert!(
            capable * 100 > n * 70,
            "most users can reset: {capable}/{n}"
        );
        assert!(sms_only * 100 > n * 3, "some are SMS-only: {sms_only}/{n}");
        assert!(nothing * 100 > n * 4, "some have nothing: {nothing}/{n}");
    }

    #[test]
    fn an_admin_needs_two_methods() {
        let mut t = generate(&SeedSpec {
            seed: 1,
            users: 20,
            missing_mobile: 0.0,
            apps: 1,
        });
        t.users[3].methods = MethodKind::Phone.bit();
        assert!(state(&t, 3, false).sspr_registered);
        assert!(!state(&t, 3, true).sspr_registered);
        t.users[3].methods |= MethodKind::Authenticator.bit();
        assert!(state(&t, 3, true).sspr_registered);
        t.users[3].methods = MethodKind::Fido2.bit();
        let s = state(&t, 3, false);
        assert!(!s.sspr_registered && s.mfa_registered && s.passwordless);
    }
}
