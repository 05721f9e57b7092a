//! Tidy checks: rules about the repository's own text that a reviewer would otherwise enforce
//! by eye. [`source_files`] walks what they read; each rule is one test.

use std::fs;
use std::path::{Path, PathBuf};

/// A file the tidy rules read: its path relative to the repository root, and its text.
struct SourceFile {
    /// Relative path, `/`-separated, for messages (`src/graph/mod.rs`).
    path: String,
    /// The whole file.
    text: String,
}

/// Every `.rs` file under `src/` and `tests/` and every top-level `.md` file, sorted by path
/// so failures read the same on every machine.
fn source_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for dir in ["src", "tests"] {
        walk(&root.join(dir), &mut |p| {
            if p.extension().is_some_and(|e| e == "rs") {
                paths.push(p.to_path_buf());
            }
        });
    }
    for entry in fs::read_dir(root).expect("read the repository root") {
        let p = entry.expect("a root entry").path();
        if p.is_file() && p.extension().is_some_and(|e| e == "md") {
            paths.push(p);
        }
    }
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no source files under {}",
        root.display()
    );
    paths
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let rel: PathBuf = p.strip_prefix(root).expect("under the root").to_path_buf();
            let path = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            SourceFile { path, text }
        })
        .collect()
}

/// Calls `visit` on every regular file below `dir` (symbolic links are not followed).
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            walk(&entry.path(), visit);
        } else if kind.is_file() {
            visit(&entry.path());
        }
    }
}

/// What a line cites that a reader of the repository cannot open: the project's former
/// design and reference notes (by section, or by file name) and numbered issues. The patterns
/// are assembled with `concat!` so this file does not match itself (nor a grep for them).
fn outside_citations(line: &str) -> Vec<&'static str> {
    const FIXED: [&str; 4] = [
        concat!("design ", "\u{a7}"),
        concat!("reference ", "\u{a7}"),
        concat!("design", ".md"),
        concat!("shared", "/reference"),
    ];
    const ISSUE: &str = concat!("(", "issue ");
    let lower = line.to_lowercase();
    let mut found: Vec<&'static str> = FIXED.into_iter().filter(|p| lower.contains(p)).collect();
    let numbered_issue = lower.match_indices(ISSUE).any(|(at, _)| {
        lower[at + ISSUE.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    });
    if numbered_issue {
        found.push(concat!("(", "issue N"));
    }
    found
}

/// Comments and docs say the fact or cite a public source (a learn.microsoft.com page, an
/// RFC, an issue thread by URL), never a document that is not in the repository.
#[test]
fn no_citations_of_documents_outside_the_repository() {
    // The rule must be able to fail: each pattern is caught, and near misses are not.
    for bad in [
        concat!("// exit codes of design ", "\u{a7}3"),
        concat!("/// quotas (Reference ", "\u{a7}10.2)"),
        concat!("see `design", ".md` in the shared folder"),
        concat!("written from `shared", "/reference", "/graph-api.md`"),
        concat!("//! tests (", "issue ", "3)"),
    ] {
        assert_eq!(outside_citations(bad).len(), 1, "not caught: {bad}");
    }
    for fine in [
        "// RFC 7518 \u{a7}3.5",
        "// issue a new one by hand",
        "// (github.com/microsoftgraph/microsoft-graph-docs/issues/4267)",
        "/// (<https://learn.microsoft.com/graph/throttling-limits>)",
    ] {
        assert_eq!(
            outside_citations(fine),
            Vec::<&str>::new(),
            "flagged: {fine}"
        );
    }

    let mut hits = Vec::new();
    for file in source_files() {
        for (n, line) in file.text.lines().enumerate() {
            for pattern in outside_citations(line) {
                hits.push(format!(
                    "{}:{}: cites `{pattern}`: {}",
                    file.path,
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "say the fact or cite a public source instead of a document outside the repository:\n{}",
        hits.join("\n")
    );
}

/// Code lines of `file` (comments dropped), numbered from 1.
fn code_lines(file: &SourceFile) -> impl Iterator<Item = (usize, &str)> {
    file.text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim_start()))
        .filter(|(_, line)| !line.starts_with("//"))
}

/// Every `file:line` under `dir` (a `src/` prefix) whose code contains one of `needles`.
fn offenders(files: &[SourceFile], dir: &str, needles: &[&str]) -> Vec<String> {
    files
        .iter()
        .filter(|f| f.path.starts_with(dir))
        .flat_map(|f| {
            code_lines(f)
                .filter(|(_, line)| needles.iter().any(|n| line.contains(n)))
                .map(move |(n, line)| format!("{}:{n}: {line}", f.path))
        })
        .collect()
}

/// ARCHITECTURE.md's invariants, as what is deliberately absent from each layer. Each rule
/// names the files that break it.
#[test]
fn the_layers_keep_to_themselves() {
    let files = source_files();
    let rules: [(&str, &str, Vec<&str>); 6] = [
        (
            "engine/ sees the tenant only through the Directory trait",
            "src/engine/",
            vec!["crate::graph", "GraphError"],
        ),
        (
            "targeting/ sees the tenant only through the Directory trait",
            "src/targeting/",
            vec!["crate::graph", "GraphError"],
        ),
        (
            "the emulator shares no type with the client",
            "src/emulator/",
            vec![
                "crate::graph",
                "crate::directory",
                "crate::comms::channels",
                "crate::comms::pace",
                "crate::providers",
            ],
        ),
        (
            "the engine and targeting see messages only through the Notifier seam",
            "src/engine/",
            vec![
                "crate::comms::channels",
                "crate::comms::pace",
                "crate::comms::template",
            ],
        ),
        (
            "cmd/ decides nothing: it never writes to the run store itself",
            "src/cmd/",
            vec![
                "create_run(",
                "set_status(",
                "begin_execution(",
                "record_intent(",
                "record_outcome(",
                "store.approve(",
            ],
        ),
        (
            "only the library's error types decide exit codes: cmd/ maps them in cmd/mod.rs",
            "src/cmd/",
            vec!["std::process::exit(2)", "std::process::exit(3)"],
        ),
    ];
    let mut broken = Vec::new();
    for (rule, dir, needles) in &rules {
        let found = offenders(&files, dir, needles);
        if !found.is_empty() {
            broken.push(format!("{rule}:\n  {}", found.join("\n  ")));
        }
    }
    // playbook/ is data: it names no other module of the crate.
    let outside: Vec<String> = files
        .iter()
        .filter(|f| f.path.starts_with("src/playbook/"))
        .flat_map(|f| {
            code_lines(f)
                .filter(|(_, line)| {
                    line.match_indices("crate::")
                        .any(|(at, _)| !line[at..].starts_with("crate::playbook"))
                })
                .map(move |(n, line)| format!("{}:{n}: {line}", f.path))
        })
        .collect();
    if !outside.is_empty() {
        broken.push(format!(
            "playbook/ depends on nothing else in the crate:\n  {}",
            outside.join("\n  ")
        ));
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The rules above catch what they claim: a line that breaks each is found, one that does not
/// is not (so a rule cannot pass by matching nothing).
#[test]
fn the_layering_rules_catch_what_they_claim() {
    let file = |path: &str, text: &str| SourceFile {
        path: path.into(),
        text: text.into(),
    };
    let files = [
        file(
            "src/engine/x.rs",
            "use crate::graph::GraphError;\n// crate::graph in a comment\n",
        ),
        file(
            "src/cmd/x.rs",
            "store.set_status(&id, s, now).await?;\nlifecycle.approve(id, &op)\n",
        ),
    ];
    assert_eq!(
        offenders(&files, "src/engine/", &["crate::graph"]),
        vec!["src/engine/x.rs:1: use crate::graph::GraphError;".to_owned()]
    );
    assert_eq!(
        offenders(&files, "src/cmd/", &["set_status(", "store.approve("]).len(),
        1
    );
}
