//! `resetctl completions` and `resetctl man`: a completion script for bash, zsh, fish or
//! PowerShell, and the manual page in roff, both generated from the command line's
//! definition so they never drift from it.
//!
//! Both are written whole to memory first and then to standard output, so a closed pipe
//! (`resetctl man | head`) ends quietly instead of panicking in the generator.

use std::path::Path;

use clap::CommandFactory;

use super::{CmdResult, Exit, Failure};
use crate::cli::{Cli, CompletionsArgs, GlobalArgs, ManArgs, OutputFormat, Shell};

/// Write the completion script for the chosen shell to stdout.
pub fn run(args: CompletionsArgs) -> CmdResult {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "resetctl", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(Exit::Success)
}

/// Print `resetctl.1`, or with `--out DIR` write it and a page per subcommand there.
pub fn man(global: &GlobalArgs, args: ManArgs) -> CmdResult {
    let command = Cli::command();
    if let Some(dir) = &args.out {
        return man_pages(global, command, dir);
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| Failure::new(Exit::Config, format!("cannot render the manual page: {e}")))?;
    out!("{}", String::from_utf8_lossy(&page));
    Ok(Exit::Success)
}

/// `resetctl.1`, `resetctl-run.1`, `resetctl-runs-show.1`, ... in `dir`.
fn man_pages(global: &GlobalArgs, command: clap::Command, dir: &Path) -> CmdResult {
    let fail = |e: std::io::Error| {
        Failure::new(
            Exit::Config,
            format!("cannot write the manual pages to {}: {e}", dir.display()),
        )
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    clap_mangen::generate_to(command, dir).map_err(fail)?;
    match global.output {
        OutputFormat::Text => outln!("wrote the manual pages to {}", dir.display()),
        OutputFormat::Json => outln!("{}", serde_json::json!({ "dir": dir })),
    }
    Ok(Exit::Success)
}
