//! `plan.json`: the whole plan, for review and for tools.

use std::path::Path;

use super::write::{Existing, ReportError, write_file};
use crate::engine::plan::Plan;

/// Write the plan as pretty JSON, streamed (a million-user plan is hundreds of megabytes).
pub fn write_plan_json(plan: &Plan, path: &Path, existing: Existing) -> Result<(), ReportError> {
    write_file(path, existing, |out| {
        serde_json::to_writer_pretty(out, plan).map_err(std::io::Error::other)
    })
}
