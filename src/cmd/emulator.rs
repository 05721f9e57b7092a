//! `resetctl emulator`: run the emulated tenant on loopback until SIGINT/SIGTERM.

use super::{CmdResult, not_yet};
use crate::cli::{EmulatorArgs, GlobalArgs};

/// Start the emulator and serve until told to stop.
pub async fn run(_global: &GlobalArgs, _args: EmulatorArgs) -> CmdResult {
    not_yet("emulator", "the emulated tenant (issue 3)")
}
