//! Whether the planned users can recover on their own (SSPR), for the desk's forecast: the
//! plan's recovery counts (read from Graph's `userRegistrationDetails` while planning) for
//! the automated bucket, or unknown when the plan has none (the playbook resets no password,
//! or the report could not be read), and the forecast then counts every reset user as a
//! caller, and says so.

use super::forecast::Recovery;
use crate::engine::plan::Plan;
use crate::targeting::Bucket;

/// The SSPR capability of `plan`'s automated users.
pub fn sspr_recovery(plan: &Plan) -> Recovery {
    let Some(recovery) = plan.recovery.as_ref().filter(|r| r.unread.is_none()) else {
        return Recovery::Unknown;
    };
    match recovery
        .buckets
        .iter()
        .find(|b| b.bucket == Bucket::Automated)
    {
        Some(b) => Recovery::Known {
            capable: b.sspr_capable,
            total: b.sspr_capable + b.not_sspr_capable,
        },
        None => Recovery::Unknown,
    }
}
