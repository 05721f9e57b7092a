//! The playbook language: what an incident response does, to whom, in which order and under
//! which limits — loaded from YAML with `FILE:LINE:COL` diagnostics and checked before anything
//! runs. The language is documented in `PLAYBOOKS.md`.
//!
//! Loading goes in two stages, like ripgrep's low-level → high-level arguments:
//!
//! 1. [`raw`]: serde types mirroring the YAML, every node of interest wrapped in
//!    `serde_saphyr::Spanned` (parsed by [`yaml`], which also turns syntax, unknown-field,
//!    wrong-type and duplicate-key errors into diagnostics);
//! 2. [`validate`]: semantic rules over the raw form, all of them run so that one pass reports
//!    every problem, producing the plain [`Playbook`] of [`model`] that the engine consumes.
//!
//! `when:` conditions are a small language of their own ([`condition`]), parsed and
//! type-checked here and evaluated by the engine against [`UserFacts`].

pub mod condition;
pub mod diagnostic;
pub mod model;
pub mod pattern;
pub mod raw;
mod validate;
mod yaml;

use std::path::Path;
use std::sync::Arc;

pub use condition::{Condition, TextAttr, UserFacts};
pub use diagnostic::{Diagnostic, Diagnostics, Severity, SourceFile};
pub use model::*;
pub use validate::DEFAULT_TAP_MINUTES;
pub use yaml::MAX_PLAYBOOK_BYTES;

/// A playbook that passed every check, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated playbook.
    pub playbook: Playbook,
    /// Things worth a second look that do not make the playbook invalid.
    pub warnings: Vec<Diagnostic>,
}

/// Read and check the playbook at `path`. Diagnostics name the file as `path` displays.
/// Relative CSV target paths are resolved against the playbook's directory.
pub fn load(path: &Path) -> Result<Loaded, Diagnostics> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        single(
            &name,
            Diagnostic::whole_file(&name, format!("cannot read {name}: {e}")),
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        single(
            &name,
            Diagnostic::whole_file(
                &name,
                format!(
                    "{name} is not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            ),
        )
    })?;
    check(name, text, path.parent().unwrap_or(Path::new("")))
}

/// Check playbook `text` as if read from a file called `name` (tests, stdin, webhooks).
/// Relative CSV paths are resolved against `name`'s directory.
pub fn load_str(name: &str, text: &str) -> Result<Loaded, Diagnostics> {
    let base = Path::new(name).parent().unwrap_or(Path::new(""));
    check(name.to_owned(), text.to_owned(), base)
}

fn check(name: String, text: String, base_dir: &Path) -> Result<Loaded, Diagnostics> {
    let src = Arc::new(SourceFile::new(name.clone(), text));
    let raw = yaml::parse(&src).map_err(|errors| Diagnostics {
        file: name.clone(),
        errors,
        warnings: Vec::new(),
    })?;
    let mut ctx = validate::Ctx::new(Arc::clone(&src));
    let playbook = validate::playbook(&mut ctx, raw, base_dir);
    let sort = |v: &mut Vec<Diagnostic>| v.sort_by_key(|d| (d.line, d.column));
    let (mut errors, mut warnings) = (ctx.errors, ctx.warnings);
    sort(&mut errors);
    sort(&mut warnings);
    match playbook {
        Some(playbook) if errors.is_empty() => Ok(Loaded { playbook, warnings }),
        _ => Err(Diagnostics {
            file: name,
            errors,
            warnings,
        }),
    }
}

fn single(name: &str, d: Diagnostic) -> Diagnostics {
    Diagnostics {
        file: name.to_owned(),
        errors: vec![d],
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: [(&str, &str); 5] = [
        (
            "credential-dump.yaml",
            include_str!("../../playbooks/credential-dump.yaml"),
        ),
        (
            "password-spray.yaml",
            include_str!("../../playbooks/password-spray.yaml"),
        ),
        (
            "ransomware.yaml",
            include_str!("../../playbooks/ransomware.yaml"),
        ),
        (
            "privileged-compromise.yaml",
            include_str!("../../playbooks/privileged-compromise.yaml"),
        ),
        (
            "mfa-reset.yaml",
            include_str!("../../playbooks/mfa-reset.yaml"),
        ),
    ];

    #[test]
    fn ready_playbooks_load_into_the_expected_shape() {
        for (name, text) in READY {
            let loaded = load_str(&format!("playbooks/{name}"), text)
                .unwrap_or_else(|d| panic!("{name}: {:#?}", d.errors));
            assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
        }
        let spray = load_str("p.yaml", READY[1].1).unwrap().playbook;
        assert_eq!(
            spray.targets,
            vec![Target::RiskyUsers {
                levels: vec![RiskLevel::Medium, RiskLevel::High]
            }]
        );
        let dump = load_str("playbooks/credential-dump.yaml", READY[0].1)
            .unwrap()
            .playbook;
        assert_eq!(
            dump.targets,
            vec![Target::Csv {
                path: "playbooks/credential-dump.csv".into(),
                column: "upn".into()
            }]
        );
    }

    /// Every prefix and many one-byte corruptions of the ready playbooks load without a panic
    /// and, when invalid, with every diagnostic inside the text.
    #[test]
    fn truncated_or_corrupted_playbooks_never_panic() {
        for (name, text) in READY {
            let mut cuts: Vec<usize> = (0..text.len()).step_by(5).collect();
            cuts.push(text.len());
            for cut in cuts.into_iter().filter(|&c| text.is_char_boundary(c)) {
                check_no_panic(name, &text[..cut]);
            }
            for (i, _) in text.char_indices().step_by(17) {
                for replacement in ["\t", ":", "{", "'", "é", "-", "\n"] {
                    let mut corrupted = text.to_owned();
                    let end = i + text[i..].chars().next().map_or(0, char::len_utf8);
                    corrupted.replace_range(i..end, replacement);
                    check_no_panic(name, &corrupted);
                }
            }
        }
    }

    fn check_no_panic(name: &str, text: &str) {
        if let Err(d) = load_str(name, text) {
            assert!(!d.errors.is_empty());
            for e in d.all() {
                assert!(e.span.end <= text.len(), "{name}: {e:?}");
                assert!(e.line >= 1 && e.column >= 1, "{name}: {e:?}");
            }
        }
    }
}
