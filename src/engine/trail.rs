//! Directory values on their way into the audit trail. The trail refuses a control character
//! in a record's subject (it could forge a line in a terminal or a SIEM), but a value read
//! from the directory is whatever the tenant holds, and one odd UPN must not abort a run
//! after its writes. Such values are escaped for the trail, never refused.

use std::borrow::Cow;

/// `value` with each control character written `\u{..}` and each backslash doubled, so the
/// escaped form reads back unambiguously; unchanged (and not copied) when it has neither.
pub fn escaped(value: &str) -> Cow<'_, str> {
    if !value.chars().any(|c| c.is_control() || c == '\\') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_backslashes_are_escaped_the_rest_kept() {
        assert!(matches!(escaped("alice@contoso.com"), Cow::Borrowed(_)));
        assert_eq!(escaped("ev\u{7}il@x.com"), "ev\\u{7}il@x.com");
        assert_eq!(escaped("a\r\nb\u{85}"), "a\\u{d}\\u{a}b\\u{85}");
        assert_eq!(
            escaped("a\\u{7}"),
            "a\\\\u{7}",
            "a literal escape stays distinct"
        );
        assert!(!escaped("x\u{1b}[31m").chars().any(char::is_control));
    }
}
