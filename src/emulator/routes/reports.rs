//! `/reports/authenticationMethods/userRegistrationDetails`: the authentication methods
//! activity report, listed (`$filter`, `$select`, `$top`, paging) or by user id
//! (<https://learn.microsoft.com/graph/api/authenticationmethodsroot-list-userregistrationdetails>,
//! <https://learn.microsoft.com/graph/api/userregistrationdetails-get>). Application access
//! needs `AuditLog.Read.All`.

use axum::http::Method;
use serde_json::{Value, json};

use super::{Ctx, Req, context_with_select, page};
use crate::emulator::errors::{Fail, GraphResponse};
use crate::emulator::odata::Filter;
use crate::emulator::registration::{self, FILTERABLE, PROPERTIES};
use crate::emulator::render::{self, JsonView};

/// The permission the report needs in app-only access.
const READ: &[&str] = &["AuditLog.Read.All"];

/// Dispatch within `/reports`.
pub fn handle(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    match (req.seg(1), req.seg(2), req.seg(3), req.segs.len()) {
        (Some("authenticationMethods"), Some("userRegistrationDetails"), None, 3)
            if *req.method == Method::GET =>
        {
            list(ctx, req)
        }
        (Some("authenticationMethods"), Some("userRegistrationDetails"), Some(id), 4)
            if *req.method == Method::GET =>
        {
            get_one(ctx, req, id)
        }
        (Some("authenticationMethods"), Some("userRegistrationDetails"), ..) => Err(Fail::method()),
        (Some("authenticationMethods"), Some(other), ..) => Err(Fail::no_segment(other)),
        (Some(other), ..) => Err(Fail::no_segment(other)),
        _ => Err(Fail::no_segment("reports")),
    }
}

/// The report filters with `eq` (and `startsWith` on the two names), joined by `and`/`or`.
fn check_operators(f: &Filter) -> Result<(), Fail> {
    let unsupported = || {
        Fail::new(
            400,
            "BadRequest",
            "Invalid filter clause: the operator is not supported on userRegistrationDetails.",
        )
    };
    match f {
        Filter::Eq(..) => Ok(()),
        Filter::StartsWith(p, _) if p == "userPrincipalName" || p == "userDisplayName" => Ok(()),
        Filter::And(a, b) | Filter::Or(a, b) => {
            check_operators(a)?;
            check_operators(b)
        }
        _ => Err(unsupported()),
    }
}

fn select(v: Value, select: &Option<Vec<String>>) -> Value {
    match (select, v) {
        (Some(names), Value::Object(all)) => Value::Object(
            all.into_iter()
                .filter(|(k, _)| k == "id" || names.iter().any(|n| n.eq_ignore_ascii_case(k)))
                .collect(),
        ),
        (_, v) => v,
    }
}

fn list(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    ctx.require_any(READ)?;
    let collection = "reports/authenticationMethods/userRegistrationDetails";
    let q = req.query(ctx, collection)?;
    render::check_select(&q.select, PROPERTIES, "userRegistrationDetails")?;
    if !q.expand.is_empty() {
        return Err(Fail::new(
            400,
            "BadRequest",
            "Could not find a navigation property on type 'microsoft.graph.userRegistrationDetails'.",
        ));
    }
    if let Some((_, f)) = &q.filter {
        render::check_filter_props(&f.properties(), FILTERABLE, "userRegistrationDetails")?;
        check_operators(f)?;
    }
    let t = ctx.emu.read();
    let admins = registration::admins(&t);
    let filter = q.filter.as_ref().map(|(_, f)| f);
    let matches = |i: usize| {
        filter.is_none_or(|f| f.matches(&JsonView(&registration::render(&t, i as u32, &admins))))
    };
    let render_one = |i: usize| select(registration::render(&t, i as u32, &admins), &q.select);
    let context = context_with_select(collection, &q);
    Ok(page(
        ctx,
        collection,
        &context,
        &q,
        t.users.len(),
        &matches,
        &render_one,
    ))
}

fn get_one(ctx: &Ctx<'_>, req: &Req<'_>, id: &str) -> Result<GraphResponse, Fail> {
    ctx.require_any(READ)?;
    let selected = req
        .pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("$select"))
        .map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        });
    render::check_select(&selected, PROPERTIES, "userRegistrationDetails")?;
    let t = ctx.emu.read();
    // Keyed by the user's object id only (the report's `id`), never the UPN.
    let idx = uuid::Uuid::parse_str(id)
        .ok()
        .and_then(|_| t.find_user(id))
        .ok_or_else(|| Fail::not_found(id))?;
    let admins = registration::admins(&t);
    let mut v = select(registration::render(&t, idx, &admins), &selected);
    v["@odata.context"] = json!(format!(
        "{}/$metadata#reports/authenticationMethods/userRegistrationDetails/$entity",
        ctx.emu.graph_url
    ));
    Ok(GraphResponse::json(200, v))
}
