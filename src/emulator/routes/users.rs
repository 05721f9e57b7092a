//! `/users`: list with `$filter`/`$select`/`$top`/`$count` and paging, `/users/$count`,
//! `/users/{id|upn}`, `/manager`, `PATCH` (passwordProfile and a few sensitive
//! properties, role-gated) and `revokeSignInSessions`
//! (<https://learn.microsoft.com/graph/api/user-list>,
//! <https://learn.microsoft.com/graph/api/user-update>,
//! <https://learn.microsoft.com/graph/api/user-revokesigninsessions>).

use axum::http::Method;
use serde_json::{Value, json};

use super::{Ctx, Req, context_with_select, page};
use crate::emulator::errors::{Body, Fail, GraphResponse};
use crate::emulator::render::{self, USER_FILTERABLE, USER_PROPERTIES, UserView};
use crate::emulator::{body, permissions};

/// Dispatch within `/users`.
pub fn handle(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    let m = req.method;
    match (req.segs.len(), req.seg(1), req.seg(2)) {
        (1, _, _) if *m == Method::GET => list(ctx, req),
        (1, _, _) => Err(Fail::method()),
        (2, Some("$count"), _) if *m == Method::GET => count(ctx, req),
        (2, Some(key), _) if *m == Method::GET => get_one(ctx, req, key),
        (2, Some(key), _) if *m == Method::PATCH => patch(ctx, req, key),
        (2, _, _) => Err(Fail::method()),
        (3, Some(key), Some("manager")) if *m == Method::GET => manager(ctx, req, key),
        (3, Some(key), Some("revokeSignInSessions")) if *m == Method::POST => revoke(ctx, key),
        (3, _, Some("manager" | "revokeSignInSessions")) => Err(Fail::method()),
        (_, _, Some(other)) => Err(Fail::no_segment(other)),
        _ => Err(Fail::no_segment("users")),
    }
}

/// `$expand=manager` (optionally `manager($select=...)`): the only user expansion served.
fn manager_expand(expand: &[String]) -> Result<Option<Option<Vec<String>>>, Fail> {
    let mut out = None;
    for item in expand {
        let (name, select) = crate::emulator::odata::expand_item(item);
        if name != "manager" {
            return Err(Fail::new(
                400,
                "BadRequest",
                format!(
                    "Parsing OData Select and Expand failed: Could not find a property named '{name}' on type 'microsoft.graph.user'."
                ),
            ));
        }
        render::check_select(&select, USER_PROPERTIES, "user")?;
        out = Some(select);
    }
    Ok(out)
}

/// A user with its manager expanded when asked (absent when the user has none).
fn user_with_manager(
    t: &crate::emulator::model::Tenant,
    idx: u32,
    select: &Option<Vec<String>>,
    manager: &Option<Option<Vec<String>>>,
) -> serde_json::Map<String, Value> {
    let mut m = render::user(t, idx, select);
    if let Some(mgr_select) = manager {
        let mgr = t.users[idx as usize].manager;
        if mgr != crate::emulator::model::NONE {
            m.insert(
                "manager".into(),
                render::principal(t, crate::emulator::model::Principal::User(mgr), mgr_select),
            );
        }
    }
    m
}

fn list(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    let q = req.query(ctx, "users")?;
    render::check_select(&q.select, USER_PROPERTIES, "user")?;
    let manager = manager_expand(&q.expand)?;
    if let Some((_, f)) = &q.filter {
        render::check_filter_props(&f.properties(), USER_FILTERABLE, "user")?;
    }
    let t = ctx.emu.read();
    let filter = q.filter.as_ref().map(|(_, f)| f);
    let matches = |i: usize| {
        filter.is_none_or(|f| {
            f.matches(&UserView {
                t: &t,
                idx: i as u32,
            })
        })
    };
    let render_one = |i: usize| Value::Object(user_with_manager(&t, i as u32, &q.select, &manager));
    let context = context_with_select("users", &q);
    Ok(page(
        ctx,
        "users",
        &context,
        &q,
        t.users.len(),
        &matches,
        &render_one,
    ))
}

fn count(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    if !ctx.eventual {
        // Graph's answer without the advanced-query header
        // (https://learn.microsoft.com/graph/aad-advanced-queries).
        return Err(Fail::new(
            400,
            "Request_BadRequest",
            "$count is not currently supported.",
        ));
    }
    let q = crate::emulator::odata::parse_query("users", &req.pairs, true)?;
    let t = ctx.emu.read();
    let n = match &q.filter {
        None => t.users.len(),
        Some((_, f)) => {
            render::check_filter_props(&f.properties(), USER_FILTERABLE, "user")?;
            (0..t.users.len() as u32)
                .filter(|&i| f.matches(&UserView { t: &t, idx: i }))
                .count()
        }
    };
    Ok(GraphResponse {
        status: 200,
        headers: Vec::new(),
        body: Body::Text(n.to_string()),
    })
}

fn single_select(req: &Req<'_>) -> Result<Option<Vec<String>>, Fail> {
    let select = req
        .pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("$select") || k.eq_ignore_ascii_case("select"))
        .map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        });
    render::check_select(&select, USER_PROPERTIES, "user")?;
    Ok(select)
}

fn get_one(ctx: &Ctx<'_>, req: &Req<'_>, key: &str) -> Result<GraphResponse, Fail> {
    let select = single_select(req)?;
    let expand: Vec<String> = req
        .pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("$expand") || k.eq_ignore_ascii_case("expand"))
        .map(|(_, v)| crate::emulator::odata::split_top_level(v))
        .unwrap_or_default();
    let manager = manager_expand(&expand)?;
    let t = ctx.emu.read();
    let idx = t.find_user(key).ok_or_else(|| Fail::not_found(key))?;
    let mut body = serde_json::Map::new();
    let context = match &select {
        Some(s) => format!("users({})/$entity", s.join(",")),
        None => "users/$entity".to_string(),
    };
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#{context}", ctx.emu.graph_url)),
    );
    body.extend(user_with_manager(&t, idx, &select, &manager));
    Ok(GraphResponse::json(200, Value::Object(body)))
}

fn manager(ctx: &Ctx<'_>, req: &Req<'_>, key: &str) -> Result<GraphResponse, Fail> {
    let select = single_select(req)?;
    let t = ctx.emu.read();
    let idx = t.find_user(key).ok_or_else(|| Fail::not_found(key))?;
    let mgr = t.users[idx as usize].manager;
    if mgr == crate::emulator::model::NONE {
        // No manager is a 404 `Request_ResourceNotFound`, by design
        // (github.com/microsoftgraph/entra-powershell/issues/237).
        return Err(Fail::not_found("manager"));
    }
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#directoryObjects/$entity",
            ctx.emu.graph_url
        )),
    );
    body.insert("@odata.type".into(), json!("#microsoft.graph.user"));
    body.extend(render::user(&t, mgr, &select));
    Ok(GraphResponse::json(200, Value::Object(body)))
}

/// Entra's default password policy: 8 to 256 characters, three of four character classes.
pub fn password_complex_enough(p: &str) -> bool {
    let len = p.chars().count();
    if !(8..=256).contains(&len) {
        return false;
    }
    let lower = p.chars().any(|c| c.is_lowercase());
    let upper = p.chars().any(|c| c.is_uppercase());
    let digit = p.chars().any(|c| c.is_ascii_digit());
    let symbol = p.chars().any(|c| !c.is_alphanumeric());
    [lower, upper, digit, symbol].iter().filter(|b| **b).count() >= 3
}

const SYNCED_MESSAGE: &str = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.";

/// Properties whose change is a "sensitive action", gated by the caller's role like a
/// password reset ("Who can perform sensitive actions" in
/// <https://learn.microsoft.com/entra/identity/role-based-access-control/privileged-roles-permissions>).
/// The properties a PATCH may carry are [`body::USER`]'s.
const SENSITIVE: &[&str] = &[
    "passwordProfile",
    "accountEnabled",
    "mobilePhone",
    "businessPhones",
];

const READ_ONLY: &[&str] = &[
    "id",
    "createdDateTime",
    "lastPasswordChangeDateTime",
    "signInSessionsValidFromDateTime",
    "onPremisesSyncEnabled",
    "onPremisesLastSyncDateTime",
];

/// The directory's answer for a property a user PATCH cannot carry.
fn not_patchable(name: &str) -> Fail {
    if READ_ONLY.contains(&name) {
        return Fail::new(
            400,
            "Request_BadRequest",
            format!("Property '{name}' is read-only and cannot be set."),
        );
    }
    Fail::new(
        400,
        "Request_BadRequest",
        format!("Property '{name}' does not exist as a declared property or extension property."),
    )
}

fn patch(ctx: &Ctx<'_>, req: &Req<'_>, key: &str) -> Result<GraphResponse, Fail> {
    let body = req.json()?;
    let Value::Object(body) = body else {
        return Err(Fail::bad_json());
    };
    // Annotations (`@odata.type`, `passwordProfile@odata.type`) are accepted as Graph
    // accepts them; see `body`.
    let props: serde_json::Map<String, Value> = body::USER
        .read(&body, not_patchable)?
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    // Each property needs a permission that covers it.
    for name in props.keys() {
        ctx.require_any(permissions::user_property_write(name))?;
    }
    let sensitive = props.keys().any(|k| SENSITIVE.contains(&k.as_str()));
    let app_role = {
        let t = ctx.emu.read();
        t.apps.get(ctx.app as usize).map(|a| a.role).unwrap_or("")
    };
    let mut t = ctx.emu.write();
    let idx = t.find_user(key).ok_or_else(|| Fail::not_found(key))?;
    if sensitive && !t.may_reset(app_role, idx) {
        return Err(Fail::denied());
    }
    if t.users[idx as usize].synced {
        return Err(Fail::new(400, "Request_BadRequest", SYNCED_MESSAGE));
    }
    // Validate everything before changing anything.
    let mut new_password = None;
    if let Some(profile) = props.get("passwordProfile") {
        let Value::Object(profile) = profile else {
            return Err(Fail::bad_json());
        };
        let profile: serde_json::Map<String, Value> = body::PASSWORD_PROFILE
            .read(profile, |name| body::PASSWORD_PROFILE.undeclared(name))?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        if let Some(p) = profile.get("password") {
            let Some(p) = p.as_str() else {
                return Err(Fail::bad_json());
            };
            if !password_complex_enough(p) {
                return Err(Fail::new(
                    400,
                    "Request_BadRequest",
                    "The specified password does not comply with password complexity requirements. Please provide a different password.",
                ));
            }
            let force = profile
                .get("forceChangePasswordNextSignIn")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let force_mfa = profile
                .get("forceChangePasswordNextSignInWithMfa")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            new_password = Some((force, force_mfa));
        }
        // Without a password Graph answers 204 and changes nothing
        // (github.com/microsoftgraph/microsoft-graph-docs/issues/4267).
    }
    let str_or_null = |v: &Value| -> Result<Option<String>, Fail> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(Fail::bad_json()),
        }
    };
    let enabled = match props.get("accountEnabled") {
        Some(v) => Some(v.as_bool().ok_or_else(Fail::bad_json)?),
        None => None,
    };
    let mobile = props.get("mobilePhone").map(str_or_null).transpose()?;
    let business = match props.get("businessPhones") {
        Some(Value::Array(a)) if a.len() <= 1 => {
            Some(a.first().map(str_or_null).transpose()?.flatten())
        }
        Some(Value::Array(_)) => {
            return Err(Fail::new(
                400,
                "Request_BadRequest",
                "Only one business phone number is allowed.",
            ));
        }
        Some(_) => return Err(Fail::bad_json()),
        None => None,
    };
    let mut interned = Vec::new();
    for name in [
        "department",
        "jobTitle",
        "displayName",
        "givenName",
        "surname",
        "officeLocation",
    ] {
        if let Some(v) = props.get(name) {
            let id = match str_or_null(v)? {
                Some(s) => t.strings.intern(&s),
                None => crate::emulator::model::NONE,
            };
            interned.push((name, id));
        }
    }
    let now = jiff::Timestamp::now().as_millisecond();
    let u = &mut t.users[idx as usize];
    if let Some((force, force_mfa)) = new_password {
        u.password_changed_ms = now;
        u.force_change = force;
        u.force_change_mfa = force_mfa;
        u.password_sets = u.password_sets.saturating_add(1);
    }
    if let Some(e) = enabled {
        u.enabled = e;
    }
    if let Some(m) = mobile {
        u.mobile = m.map(Into::into);
    }
    if let Some(b) = business {
        u.business_phone = b.map(Into::into);
    }
    for (name, id) in interned {
        match name {
            "department" => u.department = id,
            "jobTitle" => u.job_title = id,
            "displayName" => u.display = id,
            "givenName" => u.given = id,
            "surname" => u.surname = id,
            _ => u.office = id,
        }
    }
    if new_password.is_some() {
        // An admin-set password remediates user risk (riskDetail adminGeneratedTemporaryPassword).
        if let Some(r) = t.risky.get_mut(&idx)
            && (r.state == "atRisk" || r.state == "confirmedCompromised")
        {
            r.state = "remediated";
            r.level = "none";
            r.detail = "adminGeneratedTemporaryPassword";
            r.updated_ms = now;
        }
    }
    Ok(GraphResponse::empty(204))
}

fn revoke(ctx: &Ctx<'_>, key: &str) -> Result<GraphResponse, Fail> {
    ctx.require_any(permissions::REVOKE_SESSIONS)?;
    let app_role = {
        let t = ctx.emu.read();
        t.apps.get(ctx.app as usize).map(|a| a.role).unwrap_or("")
    };
    let mut t = ctx.emu.write();
    let idx = t.find_user(key).ok_or_else(|| Fail::not_found(key))?;
    // "Reset passwords and invalidate refresh tokens" follow the same role table
    // (privileged-roles-permissions on learn.microsoft.com, see `SENSITIVE`).
    if !t.may_reset(app_role, idx) {
        return Err(Fail::denied());
    }
    let now = jiff::Timestamp::now().as_millisecond();
    t.users[idx as usize].sessions_valid_ms = now;
    Ok(GraphResponse::json(
        200,
        json!({
            "@odata.context": format!("{}/$metadata#Edm.Boolean", ctx.emu.graph_url),
            "value": true,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complexity() {
        assert!(password_complex_enough("Tr0ub4dor&3"));
        assert!(password_complex_enough("abcDEF123"));
        assert!(!password_complex_enough("short1A"));
        assert!(!password_complex_enough("alllowercase"));
        assert!(!password_complex_enough("lowercase123"));
    }
}
