//! Parsing the YAML text into the raw playbook with serde-saphyr, and turning its errors into
//! [`Diagnostic`]s at the offending key or value.
//!
//! serde-saphyr reports exact positions for syntax errors, unknown fields (at the key),
//! duplicate keys (at the second key) and wrong types (at the value); see the tests. Its
//! messages for wrong types are terse (`invalid u32`), so they are rewritten here to name the
//! key and the value found.

use std::collections::HashSet;
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

/// Parse the text of `src`; on failure, the diagnostics at the offending nodes (one per
/// top-level section that fails, see [`per_section`]).
pub(super) fn parse(src: &Arc<SourceFile>) -> Result<RawPlaybook, Vec<Diagnostic>> {
    let text = &src.text;
    if let Some(d) = refuse(src) {
        return Err(vec![d]);
    }
    let first = match serde_saphyr::from_str_with_options::<RawPlaybook>(text, options()) {
        Ok(raw) => return Ok(raw),
        Err(e) => diagnostic(src, &e),
    };
    let more = per_section(src);
    let same = |d: &Diagnostic| {
        (d.line, d.column, &d.message) == (first.line, first.column, &first.message)
    };
    if more.iter().any(same) {
        Err(more)
    } else {
        Err(vec![first])
    }
}

/// Most top-level sections [`per_section`] reads one by one. The language has about a dozen
/// top-level keys; a file with many more is not a playbook worth a per-section report, and
/// one diagnostic per section of a hostile file would cost a scan of the file each.
const MAX_SECTIONS: usize = 64;

/// serde stops at the first error in a document. To report one error per top-level section in
/// one run, each section (`name:`, `targets:`, `guards:`...) is parsed again on its own and its
/// errors' lines shifted back to those of the file, so the whole pass parses the file once more
/// (linear in its size). Only used when the document is a block mapping whose keys start at
/// column 1 and that has at most [`MAX_SECTIONS`] sections, and only trusted when it
/// reproduces the error of the whole-document parse (checked by the caller).
fn per_section(src: &Arc<SourceFile>) -> Vec<Diagnostic> {
    let text = &src.text;
    // (index of the section's first line, byte offset of that line).
    let mut starts: Vec<(usize, usize)> = Vec::new();
    let mut out = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut offset = 0usize;
    for (i, line) in text.split('\n').enumerate() {
        let line_offset = offset;
        offset += line.len() + 1;
        let Some(c) = line.chars().next() else {
            continue;
        };
        if c.is_whitespace() || c == '#' || line.trim_end() == "---" {
            continue;
        }
        let key = line
            .split_once(':')
            .map(|(k, _)| k)
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let Some(key) = key else {
            return Vec::new();
        };
        if starts.len() == MAX_SECTIONS {
            return Vec::new();
        }
        // Sections are parsed apart, so a repeated top-level key is caught here.
        if !seen.insert(key) {
            out.push(Diagnostic::at(
                src,
                Severity::Error,
                line_offset,
                key.len(),
                format!("duplicate key `{key}`: each key may appear once in a mapping"),
            ));
        }
        starts.push((i, line_offset));
    }
    for (n, &(line, start)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(text.len(), |&(_, next)| next);
        let section = &text[start..end];
        if let Err(e) = serde_saphyr::from_str_with_options::<RawPlaybook>(section, options()) {
            out.push(diagnostic_in(src, &e, line as u64));
        }
    }
    out.sort_by_key(|d| (d.line, d.column));
    out
}

/// What is said of a playbook larger than [`MAX_PLAYBOOK_BYTES`].
pub(super) fn too_large_message() -> String {
    format!(
        "playbook is larger than {} KiB: refusing to parse it",
        MAX_PLAYBOOK_BYTES / 1024
    )
}

/// Refuse input that is too large or has no content, before parsing.
fn refuse(src: &Arc<SourceFile>) -> Option<Diagnostic> {
    let text = &src.text;
    if text.len() > MAX_PLAYBOOK_BYTES {
        return Some(Diagnostic::at(
            src,
            Severity::Error,
            0,
            0,
            too_large_message(),
        ));
    }
    if is_blank(text) {
        return Some(Diagnostic::at(
            src,
            Severity::Error,
            0,
            0,
            "playbook is empty: expected a mapping with name, targets and steps",
        ));
    }
    None
}

/// Byte offset of the first line that is not blank or a comment.
pub(super) fn first_content(text: &str) -> usize {
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
    diagnostic_in(src, err, 0)
}

/// [`diagnostic`] for an error found parsing a part of the file that starts on line
/// `lines_before + 1`.
fn diagnostic_in(
    src: &Arc<SourceFile>,
    err: &serde_saphyr::Error,
    lines_before: u64,
) -> Diagnostic {
    let text = &src.text;
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .filter(|(l, c)| *l > 0 && *c > 0)
        .unwrap_or((1, 1));
    let raw = err.without_snippet().to_string();
    let message = strip_location(&raw, line, column);
    let line = line + lines_before;
    let offset = offset_of(text, line, column);
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
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace() || matches!(c, '{' | ',' | '-'))
        .map_or(0, |(i, c)| i + c.len_utf8());
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
        let mut all = parse(&src).expect_err("invalid");
        assert_eq!(all.len(), 1, "{all:#?}");
        all.remove(0)
    }

    fn errs(text: &str) -> Vec<(u32, u32, String)> {
        let src = Arc::new(SourceFile::new("p.yaml", text));
        parse(&src)
            .expect_err("invalid")
            .into_iter()
            .map(|d| (d.line, d.column, d.message))
            .collect()
    }

    #[test]
    fn one_error_per_top_level_section() {
        let e = errs(
            "name: t\ntargets:\n  - everyone\nguards:\n  max_user: 3\nsteps:\n  - reset_password: { mode: random }\nrate_limit: { batch_size: many }\n",
        );
        let pos: Vec<_> = e.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(pos, vec![(3, 5), (5, 3), (7, 29), (8, 27)], "{e:#?}");
        assert!(e[3].2.contains("`batch_size` expects a whole number"));
        let e = errs("name: t\nguards: {max_user: 3}\nname: u\n");
        assert_eq!(e.len(), 2, "{e:#?}");
        assert_eq!((e[1].0, e[1].1), (3, 1));
        assert!(e[1].2.starts_with("duplicate key `name`"));
    }

    #[test]
    fn many_sections_give_one_error_in_linear_time() {
        // Hundreds of kilobytes of top-level keys: the whole-document error alone, quickly
        // (each section re-parsed from the start of the file took minutes).
        let mut text = String::from("name: t\nsteps: [revoke_sessions]\n");
        for n in 0..40_000 {
            text.push_str(&format!("k{n}: 1\n"));
        }
        let started = std::time::Instant::now();
        let e = errs(&text);
        assert_eq!(e.len(), 1, "{:?}", &e[..e.len().min(3)]);
        assert_eq!((e[0].0, e[0].1), (3, 1));
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // Up to the cap, every section is still reported, at its line.
        let mut text = String::from("name: t\n");
        for n in 0..MAX_SECTIONS - 1 {
            text.push_str(&format!("k{n}:\n  x: 1\n"));
        }
        let e = errs(&text);
        assert_eq!(e.len(), MAX_SECTIONS - 1);
        assert_eq!((e[10].0, e[10].1), (2 + 2 * 10, 1));
    }

    #[test]
    fn sections_are_not_used_when_the_layout_is_unusual() {
        // A flow mapping at the top: one error, from the whole-document parse.
        let e = errs("{name: t, guards: {max_user: 3}, rate_limit: {batch_size: x}}\n");
        assert_eq!(e.len(), 1, "{e:#?}");
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
        // Multi-byte whitespace before a key must not split a character.
        let t = "a:\u{3000}max_users: x\n";
        assert_eq!(key_before(t, t.find(": x").unwrap() + 2), Some("max_users"));
        let t = "a:\n  csv: { path: x }\n  notify:\n    template: y\n";
        assert_eq!(parent_key(t, t.find("path").unwrap()), Some("csv"));
        assert_eq!(parent_key(t, t.find("template").unwrap()), Some("notify"));
    }

    #[test]
    fn missing_keys_name_their_mapping() {
        let d = err("name: t\ntargets:\n  - csv: { column: upn }\nsteps: [revoke_sessions]\n");
        assert_eq!(at(&d), (3, 12));
        assert_eq!(d.message, "`csv`: missing field `path`");
        let d =
            err("name: t\ntargets: [all_users: {}]\nsteps:\n  - notify:\n      channels: [sms]\n");
        assert_eq!(at(&d), (5, 7));
        assert_eq!(d.message, "`notify`: missing field `template`");
    }
}
