//! `resetctl bench`'s measurement of a child process's own peak memory.

use std::process::{Command, Stdio};

use crate::util;

/// What this test process holds while it spawns `resetctl`, in MiB.
const BALLAST_MIB: u64 = 256;

/// `wait4` of `pid`: its exit code and `ru_maxrss` in KiB.
fn wait_rusage(pid: u32) -> (i32, u64) {
    let mut status = 0;
    // SAFETY: wait4 only writes the status and the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(
        waited,
        pid as libc::pid_t,
        "{}",
        std::io::Error::last_os_error()
    );
    (libc::WEXITSTATUS(status), usage.ru_maxrss.max(0) as u64)
}

/// A child spawned by a large process reports that process's peak as its own (Linux folds
/// the pre-exec address space's high-water mark into `ru_maxrss`): `bench plan` once
/// reported the emulated tenant it serves as the memory of a 500-user plan. Through
/// `bench-child` the figure is the child's own.
#[cfg(target_os = "linux")]
#[test]
fn bench_child_reports_the_child_s_own_peak_not_its_spawner_s() {
    let ballast = vec![1u8; (BALLAST_MIB << 20) as usize];
    let ballast_kib = BALLAST_MIB * 1024;

    // Measured the old way, `resetctl --version` "peaks" at this process's size.
    // Reaped by `wait_rusage`, which reads its resource usage (`Child::wait` would not).
    let direct = Command::new(util::bin())
        .arg("--version")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
        .id();
    let (code, direct_kib) = wait_rusage(direct);
    assert_eq!(code, 0);
    assert!(
        direct_kib >= ballast_kib,
        "a directly spawned child reported {direct_kib} KiB, less than its spawner's {ballast_kib}"
    );

    let dir = tempfile::tempdir().unwrap();
    let peak = dir.path().join("version.peak");
    let out = Command::new(util::bin())
        .arg("bench-child")
        .arg("--peak-file")
        .arg(&peak)
        .args(["--", "--version"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", util::stderr(&out));
    assert!(
        util::stdout(&out).starts_with("resetctl "),
        "{}",
        util::stdout(&out)
    );
    let text = std::fs::read_to_string(&peak).unwrap();
    let (code, kib) = text.trim().split_once(' ').unwrap();
    assert_eq!(code, "0");
    let kib: u64 = kib.parse().unwrap();
    assert!(
        kib > 0 && kib < ballast_kib / 4,
        "through bench-child `resetctl --version` peaked at {kib} KiB (spawner: {ballast_kib} KiB)"
    );
    std::hint::black_box(&ballast);
}

/// The child's exit code is written, not taken as the thin parent's own.
#[test]
fn bench_child_writes_the_child_s_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let peak = dir.path().join("bad.peak");
    let out = Command::new(util::bin())
        .arg("bench-child")
        .arg("--peak-file")
        .arg(&peak)
        .args(["--", "validate", "no-such-playbook.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", util::stderr(&out));
    let text = std::fs::read_to_string(&peak).unwrap();
    let code = text.split_once(' ').unwrap().0;
    assert_ne!(code, "0", "{text}");
}
