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
            // usage errors are invalid input: exit 1 (README, Exit codes). Under `--output json` a usage error is
            // the one JSON document on stdout, like every other failure.
            if err.use_stderr() && wants_json(std::env::args_os().skip(1)) {
                let doc = serde_json::json!({
                    "error": err.render().to_string().trim_end(),
                    "exit": Exit::Invalid as u8,
                });
                cmd::out::stdout(format_args!("{doc}\n"));
                return ExitCode::from(Exit::Invalid as u8);
            }
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
            let message = format!("cannot start the async runtime: {err}");
            if cli.global.output == cli::OutputFormat::Json {
                let doc = serde_json::json!({ "error": message, "exit": Exit::Config as u8 });
                cmd::out::stdout(format_args!("{doc}\n"));
            } else {
                cmd::out::stderr(format_args!("error: {message}\n"));
            }
            return ExitCode::from(Exit::Config as u8);
        }
    };
    let exit = runtime.block_on(cmd::dispatch(cli));
    ExitCode::from(exit as u8)
}

/// Whether the command line (which clap could not parse) asks for `--output json`.
fn wants_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let mut previous_was_output = false;
    for arg in args {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            return false;
        }
        if arg == "--output=json" || (previous_was_output && arg == "json") {
            return true;
        }
        previous_was_output = arg == "--output";
    }
    false
}

/// Logs go to stderr so that stdout carries only results (`--output json` stays parseable).
/// By default warnings and errors, a run's progress lines (target `progress`, info) and
/// `resetctl serve`'s access log (target `access`, info: one event per request).
fn init_logging(global: &cli::GlobalArgs) {
    let default_level = match (global.verbose, global.quiet) {
        (0, 0) => "warn,progress=info,access=info",
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

#[cfg(test)]
mod tests {
    use super::wants_json;

    #[test]
    fn a_usage_error_knows_whether_json_was_asked_for() {
        let args = |list: &[&str]| {
            list.iter()
                .map(std::ffi::OsString::from)
                .collect::<Vec<_>>()
        };
        assert!(wants_json(args(&["--output", "json", "frob"]).into_iter()));
        assert!(wants_json(
            args(&["runs", "--output=json", "show"]).into_iter()
        ));
        assert!(!wants_json(args(&["--output", "text", "json"]).into_iter()));
        assert!(!wants_json(
            args(&["validate", "--", "--output=json"]).into_iter()
        ));
        assert!(!wants_json(args(&["json"]).into_iter()));
    }
}
