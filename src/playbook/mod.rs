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
pub mod roles;
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
    /// Every template the playbook names, in file order, with the position of its name.
    pub templates: Vec<TemplateUse>,
    /// The text the playbook was validated from, for diagnostics found later (templates).
    pub source: Arc<SourceFile>,
}

impl Loaded {
    /// A diagnostic at the name of a template the playbook uses.
    pub fn diagnostic_at(
        &self,
        used: &TemplateUse,
        severity: Severity,
        message: impl Into<String>,
    ) -> Diagnostic {
        let len = used.span.end.saturating_sub(used.span.start);
        Diagnostic::at(&self.source, severity, used.span.start, len, message)
    }
}

/// Read and check the playbook at `path`. Diagnostics name the file as `path` displays.
/// Relative CSV target paths are resolved against the playbook's directory. The file is read
/// once, and never past [`MAX_PLAYBOOK_BYTES`] (`/dev/zero` is refused, not exhausted); the
/// playbook's [`Playbook::sha256`] is the digest of exactly the bytes validated.
pub fn load(path: &Path) -> Result<Loaded, Diagnostics> {
    let name = path.display().to_string();
    let bytes = read_bounded(path).map_err(|e| {
        single(
            &name,
            Diagnostic::whole_file(&name, format!("cannot read {name}: {e}")),
        )
    })?;
    if bytes.len() > MAX_PLAYBOOK_BYTES {
        return Err(single(
            &name,
            Diagnostic::whole_file(&name, yaml::too_large_message()),
        ));
    }
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
        Some(playbook) if errors.is_empty() => Ok(Loaded {
            playbook,
            warnings,
            templates: ctx.templates,
            source: src,
        }),
        _ => Err(Diagnostics {
            file: name,
            errors,
            warnings,
        }),
    }
}

/// At most [`MAX_PLAYBOOK_BYTES`] + 1 bytes of `path`: enough to tell a file that is too large.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_PLAYBOOK_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Hex SHA-256 of a playbook's bytes.
fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
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

    #[test]
    fn the_digest_is_of_the_bytes_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, READY[1].1).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.playbook.sha256, digest(READY[1].1.as_bytes()));
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let edited = format!("{}\n# edited\n", READY[1].1);
        assert_ne!(
            load_str("p.yaml", &edited).unwrap().playbook.sha256,
            loaded.playbook.sha256
        );
    }

    #[test]
    fn files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, vec![b'#'; MAX_PLAYBOOK_BYTES + 1]).unwrap();
        let d = load(&path).unwrap_err();
        assert!(
            d.errors[0].message.contains("larger than 1024 KiB"),
            "{d:?}"
        );
        #[cfg(unix)]
        {
            let d = load(Path::new("/dev/zero")).unwrap_err();
            assert!(d.errors[0].message.contains("larger than"), "{d:?}");
        }
    }

    /// The playbook language is data: its modules use nothing else of the crate.
    #[test]
    fn the_playbook_module_depends_on_nothing_else_in_the_crate() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/playbook");
        let mut files = vec![std::path::PathBuf::from(dir)];
        let mut checked = 0;
        // Built here so that this test's own text does not name the crate root.
        let root = ["crate", "::"].concat();
        let up3 = "super::".repeat(3);
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let outside = line
                    .match_indices(root.as_str())
                    .any(|(i, _)| !line[i..].starts_with("crate::playbook"));
                assert!(!outside, "{}:{}: {line}", path.display(), n + 1);
                assert!(!line.contains(&up3), "{}:{}: {line}", path.display(), n + 1);
            }
            checked += 1;
        }
        assert!(checked > 10, "{checked}");
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
