//! Standard output and standard error that a closed pipe cannot crash.
//!
//! `println!` panics when its stream is gone: Rust ignores SIGPIPE, so after
//! `resetctl runs list | head -1` has closed the pipe the next write fails with EPIPE and the
//! macro panics. These macros write the same text and drop write errors instead: a reader
//! that went away ends the output quietly, the command still exits with its own code, and a
//! run goes on to its end (what it did is in its files and the audit trail either way).
//! Every command prints through them (`out!`, `outln!`, `eout!`, `eoutln!`).

use std::fmt;
use std::io::Write;

/// Write to standard output, ignoring a closed or failing stream.
pub fn stdout(args: fmt::Arguments<'_>) {
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// Write to standard error, ignoring a closed or failing stream.
pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `print!` that never panics.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cmd::out::stdout(format_args!($($arg)*)) };
}

/// `println!` that never panics.
macro_rules! outln {
    () => { $crate::cmd::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::cmd::out::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics.
macro_rules! eout {
    ($($arg:tt)*) => { $crate::cmd::out::stderr(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics.
macro_rules! eoutln {
    () => { $crate::cmd::out::stderr(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::cmd::out::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}
