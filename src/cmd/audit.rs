//! `resetctl audit`: verify and export the audit trail.

use super::{CmdResult, not_yet};
use crate::cli::{AuditArgs, GlobalArgs};

/// Verify or export the trail.
pub fn run(_global: &GlobalArgs, _args: AuditArgs) -> CmdResult {
    not_yet("audit", "the audit trail")
}
