//! Rendering safety: what user data may not smuggle into a message. Names, departments and
//! reasons are context, never template source (Tera sees them only as values); these helpers
//! remove what could still deceive a reader or break the message's format.

use std::io::Write;

/// Whether `c` is removed from every value and every plain-text output: C0 controls except
/// the line feed, DEL and the C1 controls (terminal escapes, carriage returns that overwrite a
/// line), and the bidirectional embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069) that make text display in another order than it reads ("Trojan Source",
/// CVE-2021-42574).
pub fn is_stripped(c: char) -> bool {
    (c < ' ' && c != '\n')
        || ('\u{7f}'..='\u{9f}').contains(&c)
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `text` without the characters of [`is_stripped`].
pub fn clean_text(text: &str) -> String {
    text.chars().filter(|&c| !is_stripped(c)).collect()
}

/// Clean every string inside a context value (the keys are the crate's own field names).
pub fn clean_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.chars().any(is_stripped) => *s = clean_text(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(clean_value),
        serde_json::Value::Object(map) => map.values_mut().for_each(clean_value),
        _ => {}
    }
}

/// Tera's escape function for card templates: a value printed inside a JSON string literal is
/// written as JSON string content (quotes, backslashes and controls escaped), so a display name
/// holding `"` or `\` cannot end the string or add keys to the card.
pub fn escape_json_string(input: &str, out: &mut dyn Write) -> std::io::Result<()> {
    let quoted = serde_json::to_string(input).map_err(std::io::Error::other)?;
    out.write_all(&quoted.as_bytes()[1..quoted.len() - 1])
}

/// One line of text (a subject): whitespace runs, line breaks included, become one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A rendered plain-text body: stripped as [`clean_text`], trailing spaces removed from each
/// line, at most one blank line in a row, no blank lines at either end.
pub fn tidy_text(text: &str) -> String {
    let cleaned = clean_text(text);
    let mut out: Vec<&str> = Vec::new();
    for line in cleaned.lines().map(str::trim_end) {
        if line.is_empty() && out.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        out.push(line);
    }
    while out.last() == Some(&"") {
        out.pop();
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_stripped() {
        let hostile = "a\u{1b}[31mb\rc\u{0}d\u{85}e\u{202e}f\u{2066}g\u{7f}h\ti\nj";
        assert_eq!(clean_text(hostile), "a[31mbcdefghi\nj");
        let mut v = serde_json::json!({"n": ["x\u{202d}y"], "m": {"k": "\u{9b}z"}});
        clean_value(&mut v);
        assert_eq!(v, serde_json::json!({"n": ["xy"], "m": {"k": "z"}}));
    }

    #[test]
    fn json_escaping_keeps_a_string_a_string() {
        let mut out = Vec::new();
        escape_json_string("a\"b\\c\n</at>", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, r#"a\"b\\c\n</at>"#);
        let parsed: String = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(parsed, "a\"b\\c\n</at>");
    }

    #[test]
    fn text_is_tidied() {
        assert_eq!(tidy_text("\n\nA  \n\n\n\nB\n\n"), "A\n\nB");
        assert_eq!(one_line(" Re:\n  hello\tthere "), "Re: hello there");
    }
}
