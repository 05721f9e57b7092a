//! Build script: the commit `resetctl --version` names.
//!
//! `RESETCTL_COMMIT` is `git rev-parse --short HEAD`, with `-dirty` when tracked files have
//! changes, or `unknown` where there is no git or no repository (a source tarball). It never
//! fails the build.
//!
//! It also lists every file under `templates/` into `$OUT_DIR/embedded_templates.rs`, so the
//! binary embeds all of them (a file added to the directory cannot be silently left out).

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
    embed_templates();
    for path in [
        "src",
        "tests",
        "templates",
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
    ] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// Write `EMBEDDED: &[(&str, &str)]`: every file under `templates/` as (relative path with
/// `/`, `include_str!` of it), sorted by path.
fn embed_templates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(relative) = path.strip_prefix(&root) {
                let name: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                files.push((name.join("/"), path.clone()));
            }
        }
    }
    files.sort();
    let mut out = String::from("/// Every file under `templates/`, by relative path.\n");
    out.push_str("pub(crate) const EMBEDDED: &[(&str, &str)] = &[\n");
    for (name, path) in &files {
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("embedded_templates.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
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
