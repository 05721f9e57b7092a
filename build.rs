//! Build script: the commit `resetctl --version` names.
//!
//! `RESETCTL_COMMIT` is `git rev-parse --short HEAD`, with `-dirty` when tracked files have
//! changes, or `unknown` where there is no git or no repository (a source tarball). It never
//! fails the build.

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = commit().unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=RESETCTL_COMMIT={commit}");
    // Run again when the commit or the work tree changes: HEAD, the branch it points at,
    // and the sources (dirty or not).
    for path in ["HEAD", "packed-refs"] {
        if let Some(file) = git_path(path) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(file) = git_path(&branch)
    {
        println!("cargo:rerun-if-changed={file}");
    }
    for path in ["src", "tests", "Cargo.toml", "Cargo.lock", "build.rs"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// The short commit, `-dirty` when tracked files differ from it.
fn commit() -> Option<String> {
    let hash = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|status| !status.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// Where git keeps `path` (`HEAD`, `refs/heads/main`, ...), absolute.
fn git_path(path: &str) -> Option<String> {
    let file = git(&["rev-parse", "--path-format=absolute", "--git-path", path])?;
    Path::new(&file).exists().then_some(file)
}

/// The trimmed standard output of a successful `git ARGS`, or `None`.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim().to_owned();
    (!text.is_empty() || args.first() == Some(&"status")).then_some(text)
}
