//! `resetctl validate`: check playbooks and print diagnostics.
//!
//! Text mode: every problem first as one plain line `FILE:LINE:COL: message` on stderr (the
//! line editors and scripts parse), then — only when stderr is a terminal — a snippet with a
//! caret; `FILE: ok` on stdout for each valid file. JSON mode (`--output json`): one array of
//! `{file, line, column, message, severity}` on stdout, nothing else. Validation writes no file.

use std::io::{IsTerminal, Write};
use std::path::Path;

use super::context::Context;
use super::{CmdResult, Exit, Failure};
use crate::cli::{GlobalArgs, OutputFormat, ValidateArgs};
use resetctl::comms::context::Organisation;
use resetctl::comms::template::{self, Catalog};
use resetctl::config::Config;
use resetctl::engine::lifecycle::PlaybookSource;
use resetctl::playbook::{self, Diagnostic, Loaded};

/// The templates playbooks are checked against: the catalog (embedded, with `--templates` or
/// the configuration's `templates:` over it) and the organisation the samples name.
pub struct Templates {
    catalog: std::sync::Arc<Catalog>,
    org: Organisation,
}

impl Templates {
    /// The catalog `--templates DIR` (else the configuration's `templates:`) gives.
    pub fn new(config: &Config, cli: Option<&Path>) -> Result<Templates, Failure> {
        let dir = cli
            .map(Path::to_path_buf)
            .or_else(|| config.templates.clone());
        let catalog = Catalog::load(dir.as_deref())
            .map_err(|e| Failure::new(Exit::Invalid, e.to_string()))?;
        let org = config
            .organisation
            .clone()
            .unwrap_or_else(template::sample_organisation);
        Ok(Templates {
            catalog: std::sync::Arc::new(catalog),
            org,
        })
    }

    /// The catalog, shared with the notifier of a run.
    pub fn catalog(&self) -> std::sync::Arc<Catalog> {
        std::sync::Arc::clone(&self.catalog)
    }

    /// The template findings of a loaded playbook: errors first, then warnings.
    fn check(&self, loaded: &Loaded) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        let found = template::check_playbook(loaded, &self.catalog, &self.org);
        (found.errors, found.warnings)
    }
}

/// Validate every playbook named on the command line; exit 0 when all are valid, 1 otherwise.
pub fn run(global: &GlobalArgs, args: ValidateArgs) -> CmdResult {
    let context = Context::load(global)?;
    let templates = Templates::new(&context.config, args.templates.as_deref())?;
    let mut all_valid = true;
    let mut json = Vec::new();
    let snippets = global.output == OutputFormat::Text && std::io::stderr().is_terminal();
    let mut stdout = std::io::stdout().lock();
    for path in &args.playbooks {
        let (valid, diagnostics) = match playbook::load(path) {
            Ok(loaded) => {
                let (errors, warnings) = templates.check(&loaded);
                let mut all: Vec<Diagnostic> = loaded.warnings;
                all.extend(errors.iter().cloned());
                all.extend(warnings);
                all.sort_by_key(|d| (d.line, d.column));
                (errors.is_empty(), all)
            }
            Err(d) => {
                let all = d.all().into_iter().cloned().collect();
                (false, all)
            }
        };
        all_valid &= valid;
        match global.output {
            OutputFormat::Json => json.extend(diagnostics.iter().map(to_json)),
            OutputFormat::Text => {
                for d in &diagnostics {
                    report(d, snippets);
                }
                if valid {
                    // A closed stdout (e.g. `| head`) is not a validation failure.
                    let _ = writeln!(stdout, "{}: ok", path.display());
                }
            }
        }
    }
    if global.output == OutputFormat::Json {
        let text = serde_json::to_string_pretty(&serde_json::Value::Array(json))
            .unwrap_or_else(|_| "[]".to_owned());
        let _ = writeln!(stdout, "{text}");
    }
    Ok(if all_valid {
        Exit::Success
    } else {
        Exit::Invalid
    })
}

/// Load one playbook for a command that acts on it: diagnostics are printed as `validate`
/// prints them, and an invalid playbook (its templates included) is a failure with exit 1
/// (nothing has started). The stored path is absolute, so `run --resume` works from any
/// directory.
pub fn load_playbook(
    path: &std::path::Path,
    templates: &Templates,
) -> Result<PlaybookSource, super::Failure> {
    let snippets = std::io::stderr().is_terminal();
    match playbook::load(path) {
        Ok(loaded) => {
            let (errors, warnings) = templates.check(&loaded);
            let mut all: Vec<&Diagnostic> = loaded
                .warnings
                .iter()
                .chain(&errors)
                .chain(&warnings)
                .collect();
            all.sort_by_key(|d| (d.line, d.column));
            for d in all {
                report(d, snippets);
            }
            if !errors.is_empty() {
                return Err(invalid_playbook(path));
            }
            let unreadable = |err: std::io::Error| {
                super::Failure::new(Exit::Invalid, format!("{}: {err}", path.display()))
            };
            // The file is not read again: the digest is of the bytes validated.
            let absolute = std::fs::canonicalize(path).map_err(unreadable)?;
            Ok(PlaybookSource {
                playbook: std::sync::Arc::new(loaded.playbook),
                path: absolute,
            })
        }
        Err(diagnostics) => {
            for d in diagnostics.all() {
                report(d, snippets);
            }
            Err(invalid_playbook(path))
        }
    }
}

fn invalid_playbook(path: &Path) -> Failure {
    Failure::new(
        Exit::Invalid,
        format!(
            "{} is not a valid playbook; nothing was done",
            path.display()
        ),
    )
}

/// Print one diagnostic: the plain line, then the snippet when stderr is a terminal.
fn report(d: &Diagnostic, snippet: bool) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", d.plain_line());
    if snippet {
        // Only called when stderr is a terminal; colour unless NO_COLOR is set (no-color.org).
        let theme = match std::env::var_os("NO_COLOR") {
            Some(v) if !v.is_empty() => miette::GraphicalTheme::unicode_nocolor(),
            _ => miette::GraphicalTheme::unicode(),
        };
        let mut out = String::new();
        if miette::GraphicalReportHandler::new_themed(theme)
            .render_report(&mut out, d)
            .is_ok()
        {
            let _ = writeln!(stderr, "{out}");
        }
    }
}

fn to_json(d: &Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "file": d.file,
        "line": d.line,
        "column": d.column,
        "message": d.message,
        "severity": d.severity.as_str(),
    })
}
