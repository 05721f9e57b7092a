//! `/roleManagement/directory/roleAssignments` (`$filter` on principalId/roleDefinitionId,
//! `$expand=principal`) and `/roleEligibilityScheduleInstances`
//! (<https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments>,
//! <https://learn.microsoft.com/graph/api/rbacapplication-list-roleeligibilityscheduleinstances>).

use axum::http::Method;
use serde_json::Value;

use super::{Ctx, Req, page};
use crate::emulator::errors::{Fail, GraphResponse};
use crate::emulator::render::{self, ROLE_FILTERABLE};

/// Dispatch within `/roleManagement`.
pub fn handle(ctx: &Ctx<'_>, req: &Req<'_>) -> Result<GraphResponse, Fail> {
    match (req.seg(1), req.seg(2), req.segs.len()) {
        (
            Some("directory"),
            Some(which @ ("roleAssignments" | "roleEligibilityScheduleInstances")),
            3,
        ) => {
            if *req.method != Method::GET {
                return Err(Fail::method());
            }
            list(ctx, req, which)
        }
        (Some("directory"), Some(other), _) => Err(Fail::no_segment(other)),
        (Some(other), ..) if other != "directory" => Err(Fail::no_segment(other)),
        _ => Err(Fail::no_segment("roleManagement")),
    }
}

fn list(ctx: &Ctx<'_>, req: &Req<'_>, which: &str) -> Result<GraphResponse, Fail> {
    let collection = format!("roleManagement/directory/{which}");
    let q = req.query(ctx, &collection)?;
    let entity = if which == "roleAssignments" {
        "unifiedRoleAssignment"
    } else {
        "unifiedRoleEligibilityScheduleInstance"
    };
    if let Some((_, f)) = &q.filter {
        render::check_filter_props(&f.properties(), ROLE_FILTERABLE, entity)?;
    }
    let mut expand = false;
    for e in &q.expand {
        let (e, _) = crate::emulator::odata::expand_item(e);
        if e == "principal" {
            expand = true;
        } else {
            return Err(Fail::new(
                400,
                "BadRequest",
                format!(
                    "Parsing OData Select and Expand failed: Could not find a property named '{e}' on type 'microsoft.graph.{entity}'."
                ),
            ));
        }
    }
    let t = ctx.emu.read();
    let filter = q.filter.as_ref().map(|(_, f)| f);
    let assignments = which == "roleAssignments";
    // Assignments list users', groups' and then the apps' service principals' roles: an
    // app's directory role is an assignment to its service principal, listed like any
    // other (https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments).
    let people = t.assignments.len();
    let total = if assignments {
        people + t.apps.len()
    } else {
        t.eligibilities.len()
    };
    let matches = |i: usize| {
        let view = if !assignments {
            let e = &t.eligibilities[i];
            render::role_view(&t, e.principal, e.role)
        } else if i < people {
            let a = &t.assignments[i];
            render::role_view(&t, a.principal, a.role)
        } else {
            let app = &t.apps[i - people];
            render::RoleView {
                principal_id: app.service_principal_id(),
                role: app.role,
            }
        };
        filter.is_none_or(|f| f.matches(&view))
    };
    let render_one = |i: usize| -> Value {
        if !assignments {
            render::eligibility(&t, &t.eligibilities[i], expand)
        } else if i < people {
            render::role_assignment(&t, &t.assignments[i], expand)
        } else {
            render::app_role_assignment(&t, &t.apps[i - people], expand)
        }
    };
    Ok(page(
        ctx,
        &collection,
        &collection,
        &q,
        total,
        &matches,
        &render_one,
    ))
}
