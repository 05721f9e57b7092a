//! `/users/{id}/authentication/...`: list methods, get/delete one per type, and issue a
//! temporary access pass
//! (<https://learn.microsoft.com/graph/api/authentication-post-temporaryaccesspassmethods>).
//! Writes follow the password-reset role table (role gating of app-only method writes on
//! admins is not documented; this is the cautious reading).

use axum::http::Method;
use rand::Rng;
use serde_json::{Value, json};

use super::{Ctx, Req};
use crate::emulator::errors::{Fail, GraphResponse};
use crate::emulator::model::{MethodKind, Tap};
use crate::emulator::render;
use crate::emulator::{body, permissions};

/// Dispatch within `/users/{id}/authentication`.
pub fn handle(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    let key = req.seg(1).unwrap_or("");
    let m = req.method;
    match (req.seg(3), req.seg(4), req.segs.len()) {
        (Some("methods"), None, 4) if *m == Method::GET => list(ctx, key),
        (Some("temporaryAccessPassMethods"), None, 4) if *m == Method::POST => {
            create_tap(ctx, req, key)
        }
        (Some("temporaryAccessPassMethods"), None, 4) if *m == Method::GET => list_tap(ctx, key),
        (Some("temporaryAccessPassMethods"), Some(id), 5) if *m == Method::DELETE => {
            delete_tap(ctx, key, id)
        }
        (Some(seg), None, 4) if *m == Method::GET && MethodKind::from_segment(seg).is_some() => {
            list_kind(ctx, key, seg)
        }
        (Some(seg), Some(id), 5) if MethodKind::from_segment(seg).is_some() => match *m {
            Method::GET => get_kind(ctx, key, seg, id),
            Method::DELETE => delete_kind(ctx, key, seg, id),
            _ => Err(Fail::method()),
        },
        (Some("methods" | "temporaryAccessPassMethods"), _, _) => Err(Fail::method()),
        (Some(other), _, _) => Err(Fail::no_segment(other)),
        (None, _, _) => Err(Fail::no_segment("authentication")),
    }
}

fn context(ctx: &Ctx<'_>, user_id: &str, what: &str) -> String {
    format!(
        "{}/$metadata#users('{user_id}')/authentication/{what}",
        ctx.emu.graph_url
    )
}

fn list(ctx: &Ctx<'_>, key: &str) -> Result<GraphResponse, Fail> {
    let t = ctx.emu.read();
    let idx = t.find_user(key).ok_or_else(|| Fail::not_found(key))?;
    let id = t.users[idx as usize].id.to_string();
    Ok(GraphResponse::json(
        200,
        json!({ "@odata.context": context(ctx, &id, "methods"), "value": render::methods(&t, idx) }),
    ))
}

fn list_kind(ctx: &Ctx<'_>, key: &str, seg: &str) -> Result<GraphResponse, Fail> {
    let t = ctx.emu.read();
    let idx = t.find_user(key).ok_or_else(|| Fail::not_found(key))?;
    let kind = MethodKind::from_segment(seg).ok_or_else(|| Fail::no_segment(seg))?;
    let id = t.users[idx as usize].id.to_string();
    let value: Vec<Value> = if t.users[idx as usize].methods & kind.bit() != 0 {
        vec![render::method(&t, idx, kind)]
    } else {
        Vec::new()
    };
    Ok(GraphResponse::json(
        200,
        json!({ "@odata.context": context(ctx, &id, seg), "value": value }),
    ))
}

fn method_missing(id: &str) -> Fail {
    Fail::new(
        404,
        "itemNotFound",
        format!("The requested authentication method '{id}' was not found."),
    )
}

fn get_kind(ctx: &Ctx<'_>, key: &str, seg: &str, id: &str) -> Result<GraphResponse, Fail> {
    let t = ctx.emu.read();
    let idx = t.find_user(key).ok_or_else(|| Fail::not_found(key))?;
    let kind = MethodKind::from_segment(seg).ok_or_else(|| Fail::no_segment(seg))?;
    if t.users[idx as usize].methods & kind.bit() == 0
        || !t.method_id(idx, kind).eq_ignore_ascii_case(id)
    {
        return Err(method_missing(id));
    }
    Ok(GraphResponse::json(200, render::method(&t, idx, kind)))
}

fn app_role(ctx: &Ctx<'_>) -> &'static str {
    ctx.emu
        .read()
        .apps
        .get(ctx.app as usize)
        .map(|a| a.role)
        .unwrap_or("")
}

fn delete_kind(ctx: &Ctx<'_>, key: &str, seg: &str, id: &str) -> Result<GraphResponse, Fail> {
    let kind = MethodKind::from_segment(seg).ok_or_else(|| Fail::no_segment(seg))?;
    ctx.require_any(&permissions::method_write(kind))?;
    let role = app_role(ctx);
    let mut t = ctx.emu.write();
    let idx = t.find_user(key).ok_or_else(|| Fail::not_found(key))?;
    if !t.may_reset(role, idx) {
        return Err(Fail::denied());
    }
    if t.users[idx as usize].methods & kind.bit() == 0
        || !t.method_id(idx, kind).eq_ignore_ascii_case(id)
    {
        return Err(method_missing(id));
    }
    t.users[idx as usize].methods &= !kind.bit();
    Ok(GraphResponse::empty(204))
}

fn list_tap(ctx: &Ctx<'_>, key: &str) -> Result<GraphResponse, Fail> {
    let t = ctx.emu.read();
    let idx = t.find_user(key).ok_or_else(|| Fail::not_found(key))?;
    let id = t.users[idx as usize].id.to_string();
    let value: Vec<Value> = render::tap(&t, idx, false).into_iter().collect();
    Ok(GraphResponse::json(
        200,
        json!({ "@odata.context": context(ctx, &id, "temporaryAccessPassMethods"), "value": value }),
    ))
}

fn delete_tap(ctx: &Ctx<'_>, key: &str, id: &str) -> Result<GraphResponse, Fail> {
    ctx.require_any(permissions::TAP_WRITE)?;
    let role = app_role(ctx);
    let mut t = ctx.emu.write();
    let idx = t.find_user(key).ok_or_else(|| Fail::not_found(key))?;
    if !t.may_reset(role, idx) {
        return Err(Fail::denied());
    }
    let u = &mut t.users[idx as usize];
    match &u.tap {
        Some(tap) if tap.id.to_string().eq_ignore_ascii_case(id) => {
            u.tap = None;
            Ok(GraphResponse::empty(204))
        }
        _ => Err(method_missing(id)),
    }
}

fn create_tap(ctx: &Ctx<'_>, req: &Req<'_>, key: &str) -> Result<GraphResponse, Fail> {
    ctx.require_any(permissions::TAP_WRITE)?;
    let body = req.json()?;
    let Value::Object(body) = body else {
        return Err(Fail::bad_json());
    };
    // Annotations (`@odata.type` as the SDKs send it) are accepted; an undeclared property
    // is refused. Of the declared ones, Graph documents three as settable: the others are
    // computed and ignored (https://learn.microsoft.com/graph/api/authentication-post-temporaryaccesspassmethods).
    let ty = &body::TEMPORARY_ACCESS_PASS;
    let body: serde_json::Map<String, Value> = ty
        .read(&body, |name| ty.undeclared(name))?
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let now = jiff::Timestamp::now().as_millisecond();
    let start_ms = match body.get("startDateTime") {
        None | Some(Value::Null) => now,
        Some(Value::String(s)) => s
            .parse::<jiff::Timestamp>()
            .map_err(|_| Fail::new(400, "badRequest", format!("Cannot convert the literal '{s}' to the expected type 'Edm.DateTimeOffset'.")))?
            .as_millisecond(),
        Some(_) => return Err(Fail::bad_json()),
    };
    let lifetime = match body.get("lifetimeInMinutes") {
        None | Some(Value::Null) => 60,
        Some(v) => v.as_u64().ok_or_else(Fail::bad_json)?,
    };
    if !(10..=43_200).contains(&lifetime) {
        return Err(Fail::new(
            400,
            "badRequest",
            "The lifetimeInMinutes value is outside of the range allowed by the Temporary Access Pass policy (10 - 43200).",
        ));
    }
    let usable_once = match body.get("isUsableOnce") {
        None | Some(Value::Null) => false,
        Some(v) => v.as_bool().ok_or_else(Fail::bad_json)?,
    };
    let role = app_role(ctx);
    let mut t = ctx.emu.write();
    let idx = t.find_user(key).ok_or_else(|| Fail::not_found(key))?;
    if !t.may_reset(role, idx) {
        return Err(Fail::denied());
    }
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789+-=#@";
    let mut rng = rand::rng();
    let pass: String = (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    // One usable TAP per user: a new one replaces the old.
    t.users[idx as usize].tap = Some(Box::new(Tap {
        id: uuid::Uuid::new_v4(),
        pass,
        created_ms: now,
        start_ms,
        lifetime_minutes: lifetime as u32,
        usable_once,
    }));
    let mut v = render::tap(&t, idx, true).unwrap_or_default();
    let id = t.users[idx as usize].id.to_string();
    if let Value::Object(m) = &mut v {
        m.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/$metadata#users('{id}')/authentication/temporaryAccessPassMethods/$entity",
                ctx.emu.graph_url
            )),
        );
    }
    Ok(GraphResponse::json(201, v))
}
