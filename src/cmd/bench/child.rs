//! A `resetctl` command measured as a child process of the benchmark: wall time, the child's
//! own peak RSS, and its `--output json` document. `bench plan` and `bench tabletop` use it.
//!
//! The peak is not the benchmark's `wait4` of the child: Linux folds the high-water RSS of
//! the address space a process had before `execve` into the `ru_maxrss` of the new image
//! (`exec_mmap` calls `setmax_mm_hiwater_rss(&tsk->signal->maxrss, old_mm)`,
//! <https://github.com/torvalds/linux/blob/master/fs/exec.c>), and that address space is a
//! copy of the benchmark's, or the benchmark's own under `vfork`. A child spawned by a
//! benchmark that holds a 1,000,000-user emulated tenant therefore reported that tenant's
//! memory (about 400 MB) as its own. The child is spawned instead by `resetctl bench-child`,
//! a freshly started process of a few MB, which writes the `wait4` figure of its own child
//! to a file: that child's `ru_maxrss` starts from the thin parent's few MB, not from the
//! benchmark's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::BenchChildArgs;
use crate::cmd::{CmdResult, Exit, Failure};

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
pub(super) async fn measure(command: Command, dir: &Path, name: &str) -> Result<Measured, String> {
    let stdout_path = dir.join(format!("{name}.stdout"));
    let stderr_path = dir.join(format!("{name}.stderr"));
    let peak_path = std::path::absolute(dir.join(format!("{name}.peak")))
        .map_err(|e| format!("peak file: {e}"))?;
    let _ = std::fs::remove_file(&peak_path);
    let file = |path: &Path| std::fs::File::create(path).map_err(|e| format!("output file: {e}"));
    let mut command = through_thin_parent(&command, &peak_path);
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file(&stdout_path)?)
        .stderr(file(&stderr_path)?)
        .env_remove("RESETCTL_CONFIG")
        .env_remove("RUST_LOG");
    let started = Instant::now();
    let thin = tokio::task::spawn_blocking(move || command.status())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let (status, peak_kb) = std::fs::read_to_string(&peak_path)
        .ok()
        .and_then(|text| parse_peak(&text))
        .ok_or_else(|| {
            format!(
                "`resetctl bench-child` ({thin}) left no figures in {}: {}",
                peak_path.display(),
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            )
        })?;
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

/// `command` (this binary and its arguments, environment and folder) as the child of
/// `resetctl bench-child --peak-file PEAK -- ARGS...`.
fn through_thin_parent(command: &Command, peak_file: &Path) -> Command {
    let mut thin = Command::new(command.get_program());
    thin.arg("bench-child")
        .arg("--peak-file")
        .arg(peak_file)
        .arg("--")
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => thin.env(key, value),
            None => thin.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        thin.current_dir(dir);
    }
    thin
}

/// `EXIT PEAK_KIB`, as `bench-child` writes it.
fn parse_peak(text: &str) -> Option<(i32, u64)> {
    let (code, peak) = text.trim().split_once(' ')?;
    Some((code.parse().ok()?, peak.parse().ok()?))
}

/// `resetctl bench-child --peak-file FILE -- ARGS...`: run this binary with `ARGS` (stdio,
/// folder and environment inherited) and write `EXIT PEAK_KIB` of that child to `FILE`.
/// Its own exit is 0 whenever the child ran, whatever the child's exit.
pub fn main(args: BenchChildArgs) -> CmdResult {
    let fail = |what: &str, e: std::io::Error| {
        Failure::new(Exit::Config, format!("bench-child: {what}: {e}"))
    };
    let mut command = this_binary().map_err(|e| Failure::new(Exit::Config, e))?;
    let child = command
        .args(&args.args)
        .spawn()
        .map_err(|e| fail("spawn", e))?;
    let (code, peak_kb) = wait_with_peak_rss(child.id()).map_err(|e| fail("wait", e))?;
    std::fs::write(&args.peak_file, format!("{code} {peak_kb}\n"))
        .map_err(|e| fail("peak file", e))?;
    Ok(Exit::Success)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thin_parent_runs_the_same_command_in_the_same_place() {
        let mut command = Command::new("/bin/resetctl");
        command
            .args(["--output", "json", "plan", "p.yaml", "--", "x"])
            .env("RESETCTL_DATA_DIR", "/d")
            .env_remove("RUST_LOG")
            .current_dir("/w");
        let thin = through_thin_parent(&command, Path::new("/w/plan.peak"));
        assert_eq!(thin.get_program(), "/bin/resetctl");
        let args: Vec<_> = thin.get_args().collect();
        assert_eq!(
            args,
            [
                "bench-child",
                "--peak-file",
                "/w/plan.peak",
                "--",
                "--output",
                "json",
                "plan",
                "p.yaml",
                "--",
                "x"
            ]
        );
        let envs: Vec<_> = thin.get_envs().collect();
        assert!(envs.contains(&("RESETCTL_DATA_DIR".as_ref(), Some("/d".as_ref()))));
        assert!(envs.contains(&("RUST_LOG".as_ref(), None)));
        assert_eq!(thin.get_current_dir(), Some(Path::new("/w")));
    }

    #[test]
    fn the_peak_file_is_the_exit_and_the_peak() {
        assert_eq!(parse_peak("0 61234\n"), Some((0, 61234)));
        assert_eq!(parse_peak("3 10"), Some((3, 10)));
        assert_eq!(parse_peak(""), None);
        assert_eq!(parse_peak("0"), None);
        assert_eq!(parse_peak("x 1"), None);
    }
}
