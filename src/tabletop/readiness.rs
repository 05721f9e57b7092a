//! Whether the planned users can recover on their own (SSPR), for the desk's forecast.
//!
//! Reading Graph's registration state (`userRegistrationDetails`) is the readiness work; until
//! it is connected here, the capability is unknown and the forecast counts every reset user
//! as a caller, and says so.

use super::forecast::Recovery;
use crate::engine::plan::Plan;

/// The SSPR capability of `plan`'s automated users. The one place the readiness state is
/// connected to the tabletop.
pub fn sspr_recovery(plan: &Plan) -> Recovery {
    let _ = plan;
    Recovery::Unknown
}
