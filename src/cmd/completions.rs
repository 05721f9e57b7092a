//! `resetctl completions`: print a completion script for bash, zsh or fish.

use clap::CommandFactory;

use super::{CmdResult, Exit};
use crate::cli::{Cli, CompletionsArgs, Shell};

/// Write the completion script for the chosen shell to stdout.
pub fn run(args: CompletionsArgs) -> CmdResult {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "resetctl",
        &mut std::io::stdout(),
    );
    Ok(Exit::Success)
}
