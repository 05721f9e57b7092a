//! Diagnostics: one problem in one playbook, with the `FILE:LINE:COL` a script or editor
//! parses, a byte span for the caret, and a severity.
//!
//! Every error the loader finds — YAML syntax, unknown field, wrong type, duplicate key, a
//! semantic rule — becomes a [`Diagnostic`]. [`Diagnostics`] carries all of them for one file
//! so that `resetctl validate` can report every problem in one run.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// How serious a diagnostic is: errors make a playbook invalid, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The playbook works but something in it deserves a second look.
    Warning,
    /// The playbook is invalid and must not run.
    Error,
}

impl Severity {
    /// The lower-case name used in plain lines and JSON (`error`, `warning`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// The text of one playbook file with its display name; shared by all its diagnostics so
/// that a renderer can show a snippet without re-reading the file.
#[derive(Debug)]
pub struct SourceFile {
    /// The name the user gave (the path as typed on the command line).
    pub name: String,
    /// The full text of the file.
    pub text: String,
    /// The same text named, for miette's snippet header.
    named: miette::NamedSource<String>,
}

impl SourceFile {
    /// A file's name and text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let (name, text) = (name.into(), text.into());
        let named = miette::NamedSource::new(name.clone(), text.clone());
        SourceFile { name, text, named }
    }
}

/// One problem found in a playbook, positioned at the offending node.
#[derive(Clone)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line of the offending node.
    pub line: u32,
    /// 1-based column (in characters) of the offending node.
    pub column: u32,
    /// What is wrong, naming the key or value at fault.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
    /// Byte range of the offending node in the file, for the caret of a snippet.
    pub span: Range<usize>,
    /// The file's text, when it could be read (absent for unreadable files).
    source: Option<Arc<SourceFile>>,
}

impl fmt::Debug for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The source text is left out: it is large and adds nothing to a debug line.
        f.debug_struct("Diagnostic")
            .field("file", &self.file)
            .field("line", &self.line)
            .field("column", &self.column)
            .field("message", &self.message)
            .field("severity", &self.severity)
            .field("span", &self.span)
            .finish()
    }
}

impl Diagnostic {
    /// A diagnostic at byte `offset` (length `len`) of `source`; line and column are computed.
    pub fn at(
        source: &Arc<SourceFile>,
        severity: Severity,
        offset: usize,
        len: usize,
        message: impl Into<String>,
    ) -> Self {
        let offset = clamp_to_char_boundary(&source.text, offset);
        let end = clamp_to_char_boundary(&source.text, offset.saturating_add(len));
        let (line, column) = line_col(&source.text, offset);
        Diagnostic {
            file: source.name.clone(),
            line,
            column,
            message: message.into(),
            severity,
            span: offset..end,
            source: Some(Arc::clone(source)),
        }
    }

    /// A diagnostic about a file that has no readable text (missing, unreadable, not UTF-8):
    /// positioned at 1:1.
    pub fn whole_file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: 1,
            column: 1,
            message: message.into(),
            severity: Severity::Error,
            span: 0..0,
            source: None,
        }
    }

    /// The plain one-line form `FILE:LINE:COL: message` (warnings: `FILE:LINE:COL: warning: message`).
    pub fn plain_line(&self) -> String {
        match self.severity {
            Severity::Error => format!(
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            ),
            Severity::Warning => format!(
                "{}:{}:{}: warning: {}",
                self.file, self.line, self.column, self.message
            ),
        }
    }

    /// Whether this diagnostic makes the playbook invalid.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source
            .as_ref()
            .map(|s| &s.named as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let len = self.span.end.saturating_sub(self.span.start);
        Some(Box::new(std::iter::once(miette::LabeledSpan::new(
            Some("here".to_owned()),
            self.span.start,
            len,
        ))))
    }
}

/// Every problem found in one playbook: all errors (at least one) and the warnings.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} has {} error(s)", self.file, self.errors.len())]
pub struct Diagnostics {
    /// The file as the user named it.
    pub file: String,
    /// The errors, in the order of the file.
    pub errors: Vec<Diagnostic>,
    /// The warnings found alongside, in the order of the file.
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Errors and warnings together, sorted by position in the file.
    pub fn all(&self) -> Vec<&Diagnostic> {
        let mut all: Vec<&Diagnostic> = self.errors.iter().chain(&self.warnings).collect();
        all.sort_by_key(|d| (d.line, d.column));
        all
    }
}

impl miette::Diagnostic for Diagnostics {
    /// Every error and warning, so `miette::Report::new(diagnostics)` shows them all.
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        Some(Box::new(
            self.all().into_iter().map(|d| d as &dyn miette::Diagnostic),
        ))
    }
}

/// Line and column (both 1-based; the column counts characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = clamp_to_char_boundary(text, offset);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// Byte offset of 1-based `line` and character `column` in `text` (clamped to the line's end).
pub fn offset_of(text: &str, line: u64, column: u64) -> usize {
    let mut start = 0usize;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let line_text = &text[start..];
    let line_end = line_text.find('\n').unwrap_or(line_text.len());
    let skip = usize::try_from(column.saturating_sub(1)).unwrap_or(usize::MAX);
    let within = line_text[..line_end]
        .char_indices()
        .nth(skip)
        .map_or(line_end, |(i, _)| i);
    start + within
}

/// The largest char boundary at or below `offset`, within `text`.
fn clamp_to_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Arc<SourceFile> {
        Arc::new(SourceFile::new("p.yaml", text))
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let text = "a: é\nbé: x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        let x = text.find('x').unwrap();
        assert_eq!(line_col(text, x), (2, 5));
        assert_eq!(offset_of(text, 2, 5), x);
    }

    #[test]
    fn offset_of_clamps_past_the_end() {
        assert_eq!(offset_of("ab\ncd", 9, 1), 5);
        assert_eq!(offset_of("ab\ncd", 1, 40), 2);
    }

    #[test]
    fn plain_lines_for_errors_and_warnings() {
        let s = src("name: x\nsteps: []\n");
        let e = Diagnostic::at(&s, Severity::Error, 15, 2, "no steps");
        assert_eq!(e.plain_line(), "p.yaml:2:8: no steps");
        assert_eq!(e.span, 15..17);
        let w = Diagnostic::at(&s, Severity::Warning, 0, 4, "hm");
        assert_eq!(w.plain_line(), "p.yaml:1:1: warning: hm");
    }

    #[test]
    fn diagnostics_render_every_problem_in_order() {
        let s = src("name: x\nsteps: []\n");
        let d = Diagnostics {
            file: "p.yaml".into(),
            errors: vec![Diagnostic::at(&s, Severity::Error, 15, 2, "no steps")],
            warnings: vec![Diagnostic::at(&s, Severity::Warning, 0, 4, "odd name")],
        };
        let all: Vec<_> = d.all().iter().map(|x| x.message.as_str()).collect();
        assert_eq!(all, vec!["odd name", "no steps"]);
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &d)
            .unwrap();
        assert!(
            out.contains("p.yaml has 1 error(s)")
                && out.contains("no steps")
                && out.contains("odd name"),
            "{out}"
        );
    }

    #[test]
    fn miette_renders_a_caret_under_the_node() {
        let s = src("name: x\nsteps: []\n");
        let e = Diagnostic::at(&s, Severity::Error, 15, 2, "no steps");
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &e)
            .unwrap();
        assert!(out.contains("steps: []"), "{out}");
        assert!(out.contains("p.yaml:2:8"), "{out}");
        assert!(out.contains("no steps"), "{out}");
    }
}
