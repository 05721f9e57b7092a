//! Parsing the YAML text into the raw playbook with serde-saphyr, and turning its errors into
//! [`Diagnostic`]s at the offending key or value.
//!
//! serde-saphyr reports exact positions for syntax errors, unknown fields (at the key),
//! duplicate keys (at the second key) and wrong types (at the value); see the tests. Its
//! messages for wrong types are terse (`invalid u32`), so they are rewritten here to name the
//! key and the value found.

use std::sync::Arc;

use super::diagnostic::{Diagnostic, Severity, SourceFile, offset_of};
use super::raw::RawPlaybook;

/// Largest playbook accepted, checked before parsing: a playbook is a page of YAML.
pub const MAX_PLAYBOOK_BYTES: usize = 1024 * 1024;

/// Parser options: duplicate keys are errors (the default, made explicit), merge keys and
/// aliases are bounded by a small budget (a playbook has no business expanding).
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 200_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.flow_nesting_limit = 32;
    serde_saphyr::options! {
        budget: Some(budget),
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
        emit_comments: false,
    }
}

/// Parse the text of `src`; on failure, one diagnostic at the offending node.
pub(super) fn parse(src: &Arc<SourceFile>) -> Result<RawPlaybook, Diagnostic> {
    let text = &src.text;
    if text.len() > MAX_PLAYBOOK_BYTES {
        return Err(Diagnostic::at(
            src,
            Severity::Error,
            0,
            0,
            format!(
                "playbook is larger than {} KiB: refusing to parse it",
                MAX_PLAYBOOK_BYTES / 1024
            ),
        ));
    }
    if is_blank(text) {
        return Err(Diagnostic::at(
            src,
            Severity::Error,
            0,
            0,
            "playbook is empty: expected a mapping with name, targets and steps",
        ));
    }
    serde_saphyr::from_str_with_options::<RawPlaybook>(text, options())
        .map_err(|e| diagnostic(src, &e))
}

/// The keys every playbook must have.
const TOP_LEVEL_REQUIRED: [&str; 3] = ["name", "targets", "steps"];

/// Byte offset of the first line that is not blank or a comment.
fn first_content(text: &str) -> usize {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if !(t.is_empty() || t.starts_with('#') || t == "---") {
            return offset + (line.len() - line.trim_start().len());
        }
        offset += line.len();
    }
    0
}

/// Whether the text holds no YAML content (only blank lines and comments).
fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---")
}

/// A serde-saphyr error as a diagnostic with a readable message.
fn diagnostic(src: &Arc<SourceFile>, err: &serde_saphyr::Error) -> Diagnostic {
    let text = &src.text;
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .filter(|(l, c)| *l > 0 && *c > 0)
        .unwrap_or((1, 1));
    let offset = offset_of(text, line, column);
    let raw = err.without_snippet().to_string();
    let message = strip_location(&raw, line, column);
    // A required top-level key is missing: point at the document, not at whichever key
    // serde-saphyr read last.
    if let Some(field) = TOP_LEVEL_REQUIRED
        .iter()
        .find(|f| message == format!("missing field `{f}`"))
    {
        let start = first_content(text);
        return Diagnostic::at(
            src,
            Severity::Error,
            start,
            0,
            format!("missing key `{field}`: a playbook needs name, targets and steps"),
        );
    }
    // An empty value (`key:` then nothing) is reported by saphyr at the colon: point just
    // after it and name the key.
    let offset = if text[offset..].starts_with(':') {
        offset + 1
    } else {
        offset
    };
    let token = token_at(text, offset).trim_start();
    let key = if message.starts_with("missing field") {
        parent_key(text, offset)
    } else {
        key_before(text, offset)
    };
    let message = rewrite(&message, key, token);
    // saphyr's own span when it knows the bytes (keys, scalars); else the scalar found here.
    let len = err
        .location()
        .map(|l| l.span())
        .filter(|s| s.byte_offset().is_some())
        .and_then(|s| s.byte_len())
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(token.len());
    Diagnostic::at(src, Severity::Error, offset, len.max(1), message)
}

/// serde-saphyr's `Display` ends with ` at line L, column C`; the plain line carries the
/// position already.
fn strip_location(message: &str, line: u64, column: u64) -> String {
    let suffix = format!(" at line {line}, column {column}");
    message.strip_suffix(&suffix).unwrap_or(message).to_owned()
}

/// The scalar token starting at `offset` (up to the end of a plain or quoted scalar).
fn token_at(text: &str, offset: usize) -> &str {
    let rest = text.get(offset..).unwrap_or("");
    let end = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => rest[1..].find(q).map_or(rest.len(), |i| i + 2),
        _ => rest.find(['\n', ',', '}', ']', '#']).unwrap_or(rest.len()),
    };
    rest[..end].trim_end()
}

/// The mapping key whose value starts at `offset`, when written on the same line (`key: value`,
/// `{ a: 1, key: value }`, or `key: { first: ...` for an error at a mapping's first key).
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    key_ending(&text[line_start..offset])
}

/// The key of the mapping whose first entry is at `offset`: on the same line (`key: { a: ..`)
/// or, for a block mapping, on the line above (`key:` then an indented entry).
fn parent_key(text: &str, offset: usize) -> Option<&str> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..offset];
    if let Some(k) = key_ending(before) {
        return Some(k);
    }
    if !before
        .trim_matches(|c: char| c.is_whitespace() || c == '-')
        .is_empty()
        || line_start == 0
    {
        return None;
    }
    let prev_start = text[..line_start - 1].rfind('\n').map_or(0, |i| i + 1);
    key_ending(&text[prev_start..line_start - 1])
}

/// The key in `before` when it ends with `key:` (optionally followed by `{`).
fn key_ending(before: &str) -> Option<&str> {
    let before = before.trim_end();
    let before = before.strip_suffix('{').map_or(before, str::trim_end);
    let before = before.strip_suffix(':')?;
    let start = before
        .rfind(|c: char| c.is_whitespace() || matches!(c, '{' | ',' | '-'))
        .map_or(0, |i| i + 1);
    let key = &before[start..];
    (!key.is_empty()).then_some(key)
}

/// Friendlier wording for serde-saphyr's terse messages; the key is named when known.
fn rewrite(message: &str, key: Option<&str>, found: &str) -> String {
    let found_part = if found.is_empty() {
        "nothing".to_owned()
    } else {
        format!("`{found}`")
    };
    let typed = |expected: &str| match key {
        Some(k) => format!("`{k}` expects {expected}, found {found_part}"),
        None => format!("expected {expected}, found {found_part}"),
    };
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let k = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("duplicate key `{k}`: each key may appear once in a mapping");
    }
    if message.starts_with("multiple YAML documents") {
        return "a playbook holds one YAML document; a second one starts here".to_owned();
    }
    if message == "expected mapping end"
        || message == "expected end of mapping after enum variant value"
    {
        return "one entry per list item: start this one with its own `- `".to_owned();
    }
    if message.starts_with("tabs disallowed") {
        return "tab character in indentation: YAML indents with spaces only".to_owned();
    }
    match message {
        m if m.starts_with("invalid u") || m.starts_with("invalid i") => {
            typed("a whole number (0 or more)")
        }
        "invalid floating point" => typed("a number"),
        "invalid boolean" => typed("true or false"),
        "expected string scalar" => typed("a string"),
        "expected sequence start" => typed("a list"),
        "expected mapping start" => typed("a mapping (key: value)"),
        m => match key {
            Some(k)
                if m.starts_with("missing field")
                    || m.starts_with("unknown variant")
                    || m.starts_with("invalid type")
                    || m.starts_with("unexpected value") =>
            {
                format!("`{k}`: {m}")
            }
            _ => m.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> Diagnostic {
        let src = Arc::new(SourceFile::new("p.yaml", text));
        parse(&src).expect_err("invalid")
    }

    fn at(d: &Diagnostic) -> (u32, u32) {
        (d.line, d.column)
    }

    const OK_TAIL: &str = "targets: [all_users: {}]\nsteps: [revoke_sessions]\n";

    #[test]
    fn unknown_field_points_at_the_key() {
        let d = err(&format!("name: t\n{OK_TAIL}guards:\n  max_user: 3\n"));
        assert_eq!(at(&d), (5, 3));
        assert!(
            d.message
                .starts_with("unknown field `max_user`, expected one of max_users"),
            "{}",
            d.message
        );
        assert_eq!(d.span.len(), "max_user".len());
    }

    #[test]
    fn duplicate_key_points_at_the_second_key() {
        let d = err(&format!("name: t\n{OK_TAIL}name: u\n"));
        assert_eq!(at(&d), (4, 1));
        assert_eq!(
            d.message,
            "duplicate key `name`: each key may appear once in a mapping"
        );
    }

    #[test]
    fn wrong_type_points_at_the_value_and_names_the_key() {
        let d = err(&format!("name: t\n{OK_TAIL}guards:\n  max_users: lots\n"));
        assert_eq!(at(&d), (5, 14));
        assert_eq!(
            d.message,
            "`max_users` expects a whole number (0 or more), found `lots`"
        );
        let d = err(&format!(
            "name: t\n{OK_TAIL}guards: {{ max_fraction_of_tenant: half }}\n"
        ));
        assert_eq!(
            d.message,
            "`max_fraction_of_tenant` expects a number, found `half`"
        );
        let d = err(&format!(
            "name: t\n{OK_TAIL}privileged: {{ include_eligible: maybe }}\n"
        ));
        assert_eq!(
            d.message,
            "`include_eligible` expects true or false, found `maybe`"
        );
    }

    #[test]
    fn tabs_and_syntax_errors() {
        let d = err("name: t\nguards:\n\tmax_users: 3\n");
        assert_eq!(at(&d), (3, 2));
        assert!(d.message.contains("tab character"), "{}", d.message);
        let d = err("name: 'open\n");
        assert_eq!(at(&d), (1, 7));
        assert!(d.message.contains("unclosed quote"), "{}", d.message);
    }

    #[test]
    fn empty_values_name_their_key() {
        let d = err("name: t\ntargets:\nsteps: [revoke_sessions]\n");
        assert_eq!(at(&d), (2, 9));
        assert_eq!(d.message, "`targets` expects a list, found nothing");
    }

    #[test]
    fn a_second_document_is_an_error() {
        let d = err("name: t\ntargets: [all_users]\nsteps: [revoke_sessions]\n---\nname: u\n");
        assert_eq!(at(&d), (5, 1));
        assert!(d.message.contains("one YAML document"), "{}", d.message);
    }

    #[test]
    fn two_targets_in_one_item() {
        let d = err(
            "name: t\ntargets: [{csv: {path: a.csv}, group: {id: x}}]\nsteps: [revoke_sessions]\n",
        );
        assert_eq!(at(&d), (2, 32));
        assert!(
            d.message.contains("one entry per list item"),
            "{}",
            d.message
        );
    }

    #[test]
    fn bare_target_names() {
        let d = err("name: t\ntargets: [csv]\nsteps: [revoke_sessions]\n");
        assert_eq!(at(&d), (2, 11));
        assert!(
            d.message.contains("target `csv` needs a value"),
            "{}",
            d.message
        );
        let d = err("name: t\ntargets:\n  - everyone\nsteps: [revoke_sessions]\n");
        assert_eq!(at(&d), (3, 5));
        assert!(
            d.message.contains("unknown target `everyone`"),
            "{}",
            d.message
        );
    }

    #[test]
    fn empty_and_huge_files() {
        assert!(err("# nothing\n\n").message.contains("playbook is empty"));
        let big = format!("name: t\n#{}\n", "x".repeat(MAX_PLAYBOOK_BYTES));
        assert!(err(&big).message.contains("larger than"));
    }

    #[test]
    fn key_before_finds_block_and_flow_keys() {
        let t = "a:\n  max_users: x\nb: { c: 1, mode: y }\n";
        assert_eq!(key_before(t, t.find(": x").unwrap() + 2), Some("max_users"));
        assert_eq!(key_before(t, t.find('y').unwrap()), Some("mode"));
        assert_eq!(key_before(t, 0), None);
        let t = "a:\n  csv: { path: x }\n  notify:\n    template: y\n";
        assert_eq!(parent_key(t, t.find("path").unwrap()), Some("csv"));
        assert_eq!(parent_key(t, t.find("template").unwrap()), Some("notify"));
    }

    #[test]
    fn missing_keys_name_their_mapping() {
        let d = err("# c\nname: t\ntargets: [all_users: {}]\n");
        assert_eq!(at(&d), (2, 1));
        assert_eq!(
            d.message,
            "missing key `steps`: a playbook needs name, targets and steps"
        );
        let d = err("name: t\ntargets:\n  - csv: { column: upn }\nsteps: [revoke_sessions]\n");
        assert_eq!(at(&d), (3, 12));
        assert_eq!(d.message, "`csv`: missing field `path`");
        let d =
            err("name: t\ntargets: [all_users: {}]\nsteps:\n  - notify:\n      channels: [sms]\n");
        assert_eq!(at(&d), (5, 7));
        assert_eq!(d.message, "`notify`: missing field `template`");
    }
}
