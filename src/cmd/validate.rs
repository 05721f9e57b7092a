//! `resetctl validate`: check playbooks and print diagnostics.

use super::{CmdResult, not_yet};
use crate::cli::{GlobalArgs, ValidateArgs};

/// Validate every playbook named on the command line.
pub fn run(_global: &GlobalArgs, _args: ValidateArgs) -> CmdResult {
    not_yet("validate", "the playbook language")
}
