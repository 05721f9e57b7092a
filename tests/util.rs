//! Helpers shared by the integration tests: run the binary, capture its output.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// Path of the binary under test, built by cargo for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_resetctl")
}

/// Run `resetctl` with `args` in `dir`, with no configuration and no colour.
pub fn resetctl_in(dir: &Path, args: &[&str]) -> Output {
    resetctl_env(dir, args, &[])
}

/// Run `resetctl` with `args` in `dir` and extra environment variables.
pub fn resetctl_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(bin());
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RESETCTL_CONFIG")
        .env_remove("RESETCTL_DATA_DIR")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the resetctl binary runs")
}

/// Run `resetctl` with `args` in the crate root.
pub fn resetctl(args: &[&str]) -> Output {
    resetctl_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The process exit code (panics if it was killed by a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

/// A tracing writer appending to a shared buffer, for tests that search log output.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything logged so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Capture every log line of this thread, at TRACE, until the guard drops.
pub fn capture_logs() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Other tests in this binary run without a subscriber; callsites they registered first
    // cached "never interested". Recompute so this thread's subscriber sees every event.
    tracing::callsite::rebuild_interest_cache();
    (capture, guard)
}
