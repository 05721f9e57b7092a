//! A `resetctl` command measured as a child process of the benchmark: wall time, the child's
//! own peak RSS (from the kernel, `wait4`, so the benchmark's in-process emulator is not
//! counted), and its `--output json` document. `bench plan` and `bench tabletop` use it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What one measured command did.
pub(super) struct Measured {
    /// Wall time from spawn to exit.
    pub took: Duration,
    /// The child's peak resident set, in MB.
    pub peak_mb: u64,
    /// Its stdout as JSON (`Null` if it printed none).
    pub summary: Value,
}

/// Run `command` (this binary with its arguments) in `dir`, its stdout and stderr kept in
/// `dir/<name>.stdout|.stderr`; an exit other than 0 is an error quoting its stderr.
pub(super) async fn measure(
    mut command: Command,
    dir: &Path,
    name: &str,
) -> Result<Measured, String> {
    let stdout_path = dir.join(format!("{name}.stdout"));
    let stderr_path = dir.join(format!("{name}.stderr"));
    let file = |path: &Path| std::fs::File::create(path).map_err(|e| format!("output file: {e}"));
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file(&stdout_path)?)
        .stderr(file(&stderr_path)?)
        .env_remove("RESETCTL_CONFIG")
        .env_remove("RUST_LOG");
    let started = Instant::now();
    let (status, peak_kb) = tokio::task::spawn_blocking(move || {
        let child = command.spawn()?;
        wait_with_peak_rss(child.id())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    if status != 0 {
        return Err(format!(
            "exit {status}: {}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        ));
    }
    let summary = std::fs::read_to_string(&stdout_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    Ok(Measured {
        took,
        peak_mb: peak_kb / 1024,
        summary,
    })
}

/// This binary, to run as the child.
pub(super) fn this_binary() -> Result<Command, String> {
    std::env::current_exe()
        .map(Command::new)
        .map_err(|e| format!("own executable: {e}"))
}

/// Wait for the child `pid` and return its exit code and its own peak RSS in KiB (Linux
/// reports KiB), which `wait4` gives for that child alone.
fn wait_with_peak_rss(pid: u32) -> std::io::Result<(i32, u64)> {
    let mut status = 0;
    // SAFETY: wait4 only writes the status and the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if waited < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, usage.ru_maxrss.max(0) as u64))
}
