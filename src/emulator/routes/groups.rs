//! `/groups`: list, get, `members` and `transitiveMembers` (paged, `$select`, `$count`), and
//! membership writes `POST members/$ref` / `DELETE members/{id}/$ref`
//! (<https://learn.microsoft.com/graph/api/group-post-members>,
//! <https://learn.microsoft.com/graph/api/group-delete-members>) of users and nested groups,
//! which check the app's permissions as Graph does.

use axum::http::Method;
use serde_json::{Value, json};

use super::{Ctx, Req, context_with_select, page};
use crate::emulator::errors::{Fail, GraphResponse};
use crate::emulator::model::Principal;
use crate::emulator::permissions;
use crate::emulator::render::{self, USER_PROPERTIES};

/// Dispatch within `/groups`.
pub fn handle(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    let m = req.method;
    match (req.segs.len(), req.seg(2), req.seg(3), req.seg(4)) {
        (1, ..) if *m == Method::GET => list(ctx, req),
        (2, ..) if *m == Method::GET => get_one(ctx, req.seg(1).unwrap_or("")),
        (3, Some(which @ ("members" | "transitiveMembers")), ..) if *m == Method::GET => {
            members(ctx, req, which == "transitiveMembers")
        }
        (4, Some("members"), Some("$ref"), _) if *m == Method::POST => add_member(ctx, req),
        (5, Some("members"), Some(user), Some("$ref")) if *m == Method::DELETE => {
            remove_member(ctx, req.seg(1).unwrap_or(""), user)
        }
        (1..=5, ..) if matches!(req.seg(2), None | Some("members" | "transitiveMembers")) => {
            Err(Fail::method())
        }
        (_, Some(other), ..) => Err(Fail::no_segment(other)),
        _ => Err(Fail::no_segment("groups")),
    }
}

fn list(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    let q = req.query(ctx, "groups")?;
    let t = ctx.emu.read();
    let views: Vec<Value> = (0..t.groups.len() as u32)
        .map(|g| Value::Object(render::group(&t, g)))
        .collect();
    if let Some((_, f)) = &q.filter {
        render::check_filter_props(
            &f.properties(),
            &[
                "id",
                "displayName",
                "mailNickname",
                "isAssignableToRole",
                "securityEnabled",
                "mailEnabled",
            ],
            "group",
        )?;
    }
    let filter = q.filter.as_ref().map(|(_, f)| f);
    let matches = |i: usize| filter.is_none_or(|f| f.matches(&render::JsonView(&views[i])));
    let render_one = |i: usize| views[i].clone();
    Ok(page(
        ctx,
        "groups",
        "groups",
        &q,
        views.len(),
        &matches,
        &render_one,
    ))
}

fn get_one(ctx: &Ctx<'_>, key: &str) -> Result<GraphResponse, Fail> {
    let t = ctx.emu.read();
    let g = t.find_group(key).ok_or_else(|| Fail::not_found(key))?;
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#groups/$entity", ctx.emu.graph_url)),
    );
    body.extend(render::group(&t, g));
    Ok(GraphResponse::json(200, Value::Object(body)))
}

fn members(ctx: &Ctx<'_>, req: &Req<'_>, transitive: bool) -> Result<GraphResponse, Fail> {
    let key = req.seg(1).unwrap_or("");
    let which = if transitive {
        "transitiveMembers"
    } else {
        "members"
    };
    let collection = format!("groups/{key}/{which}");
    let q = req.query(ctx, &collection)?;
    render::check_select(&q.select, USER_PROPERTIES, "user")?;
    let t = ctx.emu.read();
    let g = t.find_group(key).ok_or_else(|| Fail::not_found(key))?;
    let mut list: Vec<Principal> = if transitive {
        t.transitive_members(g)
            .into_iter()
            .map(Principal::User)
            .collect()
    } else {
        t.groups[g as usize]
            .members
            .iter()
            .map(|&u| Principal::User(u))
            .collect()
    };
    // Nested groups are members too (transitively: every nested group once).
    let mut stack = t.groups[g as usize].member_groups.clone();
    let mut seen = Vec::new();
    while let Some(sub) = stack.pop() {
        if seen.contains(&sub) || sub == g {
            continue;
        }
        seen.push(sub);
        list.push(Principal::Group(sub));
        if transitive {
            stack.extend(t.groups[sub as usize].member_groups.iter().copied());
        }
    }
    if let Some((_, f)) = &q.filter {
        render::check_filter_props(&f.properties(), render::USER_FILTERABLE, "directoryObject")?;
    }
    let filter = q.filter.as_ref().map(|(_, f)| f);
    let matches = |i: usize| match (filter, list[i]) {
        (None, _) => true,
        (Some(f), Principal::User(u)) => f.matches(&render::UserView { t: &t, idx: u }),
        (Some(_), Principal::Group(_)) => false,
    };
    let render_one = |i: usize| render::principal(&t, list[i], &q.select);
    let context = context_with_select("directoryObjects", &q);
    Ok(page(
        ctx,
        &collection,
        &context,
        &q,
        list.len(),
        &matches,
        &render_one,
    ))
}

/// A membership write needs one of the group-member write permissions, and for a
/// role-assignable group `RoleManagement.ReadWrite.Directory` too
/// (https://learn.microsoft.com/graph/api/group-post-members,
/// https://learn.microsoft.com/graph/api/group-delete-members). Both are checked before the
/// member is looked at.
fn may_write_members(ctx: &Ctx<'_>, role_assignable: bool) -> Result<(), Fail> {
    ctx.require_any(permissions::GROUP_MEMBER_WRITE)?;
    if role_assignable {
        ctx.require_any(&[permissions::ROLE_ASSIGNABLE_MEMBER_WRITE])?;
    }
    Ok(())
}

fn add_member(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    let key = req.seg(1).unwrap_or("");
    let body = req.json()?;
    let Some(reference) = body.get("@odata.id").and_then(Value::as_str) else {
        return Err(Fail::new(
            400,
            "Request_BadRequest",
            "The request body must contain '@odata.id'.",
        ));
    };
    let member_id = reference
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    let role_assignable = {
        let t = ctx.emu.read();
        let g = t.find_group(key).ok_or_else(|| Fail::not_found(key))?;
        t.groups[g as usize].role_assignable
    };
    may_write_members(ctx, role_assignable)?;
    let mut t = ctx.emu.write();
    let g = t.find_group(key).ok_or_else(|| Fail::not_found(key))?;
    let member = match uuid::Uuid::parse_str(member_id) {
        Ok(_) => t
            .find_user(member_id)
            .map(Principal::User)
            .or_else(|| t.find_group(member_id).map(Principal::Group)),
        Err(_) => None,
    };
    let already = match member {
        None => return Err(Fail::not_found(member_id)),
        Some(Principal::User(u)) => t.groups[g as usize].members.contains(&u),
        // A security group may be a member of another group
        // (https://learn.microsoft.com/graph/api/group-post-members), but not of a
        // role-assignable one: "Group nesting isn't supported. A group can't be added as a
        // member of a role-assignable group"
        // (https://learn.microsoft.com/entra/identity/role-based-access-control/groups-concept).
        // Graph's wording of these refusals is not documented.
        Some(Principal::Group(_)) if role_assignable => {
            return Err(Fail::new(
                400,
                "Request_BadRequest",
                "A group can't be added as a member of a role-assignable group.",
            ));
        }
        Some(Principal::Group(sub)) if sub == g => {
            return Err(Fail::new(
                400,
                "Request_BadRequest",
                "A group can't be added as a member of itself.",
            ));
        }
        Some(Principal::Group(sub)) => t.groups[g as usize].member_groups.contains(&sub),
    };
    if already {
        return Err(Fail::new(
            400,
            "Request_BadRequest",
            "One or more added object references already exist for the following modified properties: 'members'.",
        ));
    }
    let group = &mut t.groups[g as usize];
    match member {
        Some(Principal::User(u)) => group.members.push(u),
        Some(Principal::Group(sub)) => group.member_groups.push(sub),
        None => {}
    }
    Ok(GraphResponse::empty(204))
}

fn remove_member(ctx: &Ctx<'_>, key: &str, member: &str) -> Result<GraphResponse, Fail> {
    let role_assignable = {
        let t = ctx.emu.read();
        let g = t.find_group(key).ok_or_else(|| Fail::not_found(key))?;
        t.groups[g as usize].role_assignable
    };
    may_write_members(ctx, role_assignable)?;
    let mut t = ctx.emu.write();
    let g = t.find_group(key).ok_or_else(|| Fail::not_found(key))?;
    // The member is a user or a nested group, as Graph's members are directory objects.
    let removed = match (t.find_user(member), t.find_group(member)) {
        (Some(u), _) => {
            let members = &mut t.groups[g as usize].members;
            members
                .iter()
                .position(|&m| m == u)
                .map(|pos| members.remove(pos))
                .is_some()
        }
        (None, Some(sub)) => {
            let nested = &mut t.groups[g as usize].member_groups;
            nested
                .iter()
                .position(|&m| m == sub)
                .map(|pos| nested.remove(pos))
                .is_some()
        }
        (None, None) => false,
    };
    if !removed {
        return Err(Fail::not_found(member));
    }
    Ok(GraphResponse::empty(204))
}
