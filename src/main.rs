//! The `resetctl` binary: parse the command line, set up logging, call the library, print.
//!
//! Everything that decides anything lives in the library (`resetctl::*`); this file and
//! `cli.rs`/`cmd/` are the edge where typed errors become messages and exit codes.

mod cli;
mod cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, LogFormat};
use crate::cmd::Exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr;
            // usage errors are invalid input: exit 1 (README, Exit codes).
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(Exit::Invalid as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(&cli.global);
    // Error messages carry run ids and commands to copy: never wrap them mid-command.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(Exit::Config as u8);
        }
    };
    let exit = runtime.block_on(cmd::dispatch(cli));
    ExitCode::from(exit as u8)
}

/// Logs go to stderr so that stdout carries only results (`--output json` stays parseable).
fn init_logging(global: &cli::GlobalArgs) {
    let default_level = match (global.verbose, global.quiet) {
        (0, 0) => "warn",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "error",
        _ => "off",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
