//! `/identityProtection/riskyUsers` (`$filter=riskLevel eq '…'`), `confirmCompromised` and
//! `dismiss` (<https://learn.microsoft.com/graph/api/riskyuser-list>,
//! <https://learn.microsoft.com/graph/api/riskyuser-confirmcompromised>,
//! <https://learn.microsoft.com/graph/api/riskyuser-dismiss>). Throttled at 1 request/s per
//! tenant without Retry-After (<https://learn.microsoft.com/graph/throttling-limits>).

use axum::http::Method;
use serde_json::{Value, json};

use super::{Ctx, Req, page};
use crate::emulator::errors::{Fail, GraphResponse};
use crate::emulator::permissions;
use crate::emulator::render::{self, RISKY_FILTERABLE};

/// Dispatch within `/identityProtection`.
pub fn handle(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    let m = req.method;
    match (req.seg(1), req.seg(2), req.segs.len()) {
        (Some("riskyUsers"), None, 2) if *m == Method::GET => list(ctx, req),
        (Some("riskyUsers"), Some(action @ ("confirmCompromised" | "dismiss")), 3)
            if *m == Method::POST =>
        {
            act(ctx, req, action == "confirmCompromised")
        }
        (Some("riskyUsers"), Some(id), 3) if *m == Method::GET => get_one(ctx, id),
        (Some("riskyUsers"), ..) => Err(Fail::method()),
        (Some(other), ..) => Err(Fail::no_segment(other)),
        _ => Err(Fail::no_segment("identityProtection")),
    }
}

fn list(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    let collection = "identityProtection/riskyUsers";
    let q = req.query(ctx, collection)?;
    if let Some((_, f)) = &q.filter {
        render::check_filter_props(&f.properties(), RISKY_FILTERABLE, "riskyUser")?;
    }
    let t = ctx.emu.read();
    let mut idx: Vec<u32> = t.risky.keys().copied().collect();
    idx.sort_unstable();
    let views: Vec<Value> = idx
        .iter()
        .filter_map(|&i| render::risky_user(&t, i))
        .collect();
    let filter = q.filter.as_ref().map(|(_, f)| f);
    let matches = |i: usize| filter.is_none_or(|f| f.matches(&render::JsonView(&views[i])));
    let render_one = |i: usize| views[i].clone();
    Ok(page(
        ctx,
        collection,
        collection,
        &q,
        views.len(),
        &matches,
        &render_one,
    ))
}

fn get_one(ctx: &Ctx<'_>, id: &str) -> Result<GraphResponse, Fail> {
    let t = ctx.emu.read();
    let idx = t.find_user(id).ok_or_else(|| Fail::not_found(id))?;
    let mut v = render::risky_user(&t, idx).ok_or_else(|| Fail::not_found(id))?;
    v["@odata.context"] = json!(format!(
        "{}/$metadata#identityProtection/riskyUsers/$entity",
        ctx.emu.graph_url
    ));
    Ok(GraphResponse::json(200, v))
}

fn act(ctx: &Ctx<'_>, req: &Req<'_>, confirm: bool) -> Result<GraphResponse, Fail> {
    ctx.require_any(permissions::RISKY_USER_WRITE)?;
    let body = req.json()?;
    let Some(ids) = body.get("userIds").and_then(Value::as_array) else {
        return Err(Fail::new(
            400,
            "BadRequest",
            "The request body must contain 'userIds'.",
        ));
    };
    let mut t = ctx.emu.write();
    let mut targets = Vec::new();
    for id in ids {
        let id = id.as_str().ok_or_else(Fail::bad_json)?;
        let idx = uuid::Uuid::parse_str(id)
            .ok()
            .and_then(|_| t.find_user(id))
            .ok_or_else(|| Fail::not_found(id))?;
        targets.push(idx);
    }
    let now = jiff::Timestamp::now().as_millisecond();
    for idx in targets {
        let r = t.risky.entry(idx).or_insert(crate::emulator::model::Risk {
            level: "none",
            state: "none",
            detail: "none",
            updated_ms: now,
        });
        if confirm {
            r.level = "high";
            r.state = "confirmedCompromised";
            r.detail = "adminConfirmedUserCompromised";
        } else {
            r.level = "none";
            r.state = "dismissed";
            r.detail = "adminDismissedAllRiskForUser";
        }
        r.updated_ms = now;
    }
    Ok(GraphResponse::empty(204))
}
