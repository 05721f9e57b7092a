//! Who acts: an operator's name is an identity, compared as one.
//!
//! Approvals count *distinct* operators, so `alice`, `Alice`, ` alice ` and `alice` followed by
//! a zero-width space must be one operator, and a name that hides terminal escapes must never
//! reach the store or a screen. [`OperatorName::parse`] trims, normalises to Unicode NFKC,
//! lower-cases, and refuses control and format characters (Unicode general categories Cc and
//! Cf: escapes, zero-width and bidirectional controls) — so what is stored is what is
//! compared, and it prints as it is. [`escape`] is for the other operator-supplied text that
//! is printed (reasons, origins).

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Longest accepted name, in characters (a UPN is at most 113).
pub const MAX_NAME_CHARS: usize = 256;

/// Why a name is not an operator's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// Nothing left after trimming.
    #[error("an operator name is needed")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`].
    #[error("an operator name is at most {MAX_NAME_CHARS} characters")]
    TooLong,
    /// A control or format character (shown escaped, never raw).
    #[error("operator name {shown} holds the invisible or control character {code}")]
    Invisible {
        /// The name with such characters escaped.
        shown: String,
        /// The first offending character, as `U+XXXX`.
        code: String,
    },
}

/// A normalised operator name: trimmed, NFKC, lower-case, without control or format
/// characters. Two names are the same operator exactly when they are equal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct OperatorName(String);

impl OperatorName {
    /// Normalise and check `raw`.
    pub fn parse(raw: &str) -> Result<OperatorName, OperatorError> {
        if let Some(c) = raw.chars().find(|&c| is_invisible(c)) {
            return Err(OperatorError::Invisible {
                shown: escape(raw),
                code: format!("U+{:04X}", c as u32),
            });
        }
        let normal: String = raw.trim().nfkc().collect::<String>().to_lowercase();
        // NFKC can produce characters the raw text did not have (it never produces Cc/Cf
        // from other categories today, but the check is cheap and keeps the promise).
        if let Some(c) = normal.chars().find(|&c| is_invisible(c)) {
            return Err(OperatorError::Invisible {
                shown: escape(raw),
                code: format!("U+{:04X}", c as u32),
            });
        }
        if normal.is_empty() {
            return Err(OperatorError::Empty);
        }
        if normal.chars().count() > MAX_NAME_CHARS {
            return Err(OperatorError::TooLong);
        }
        Ok(OperatorName(normal))
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OperatorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who performs an action, and through what (for the trail and the approvals list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The operator's name.
    pub name: OperatorName,
    /// Where the action came from, for example `cli alice@ws-042`.
    pub origin: String,
}

impl Operator {
    /// An operator acting through `origin` (escaped: it is printed and recorded).
    pub fn new(name: OperatorName, origin: &str) -> Operator {
        Operator {
            name,
            origin: escape(origin),
        }
    }

    /// Another operator acting through this one's origin (kept as it is: already escaped).
    pub fn named(&self, name: OperatorName) -> Operator {
        Operator {
            name,
            origin: self.origin.clone(),
        }
    }
}

/// `text` with control and format characters (and backslashes) escaped as `\u{..}`, safe to
/// print on a terminal and to record.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_invisible(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Unicode general category Cc (controls) or Cf (format), plus the line and paragraph
/// separators. Cf ranges from the Unicode Character Database, DerivedGeneralCategory.txt
/// (Unicode 15.1): <https://www.unicode.org/Public/15.1.0/ucd/extracted/DerivedGeneralCategory.txt>.
pub fn is_invisible(c: char) -> bool {
    if c.is_control() {
        return true;
    }
    matches!(c as u32,
        0x00AD
        | 0x0600..=0x0605
        | 0x061C
        | 0x06DD
        | 0x070F
        | 0x0890..=0x0891
        | 0x08E2
        | 0x180E
        | 0x200B..=0x200F
        | 0x2028..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x206F
        | 0xFEFF
        | 0xFFF9..=0xFFFB
        | 0x110BD
        | 0x110CD
        | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A
        | 0xE0001
        | 0xE0020..=0xE007F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_width_and_spacing_variants_are_one_operator() {
        let alice = OperatorName::parse("alice").unwrap();
        for variant in ["Alice", " ALICE ", "ａｌｉｃｅ", "alice\u{0020}"] {
            assert_eq!(OperatorName::parse(variant).unwrap(), alice, "{variant:?}");
        }
        assert_ne!(OperatorName::parse("bob").unwrap(), alice);
    }

    #[test]
    fn invisible_and_control_characters_are_refused_and_shown_escaped() {
        for raw in [
            "alice\u{200B}",
            "ops\u{1b}[8m",
            "bob\u{202E}",
            "a\u{0}b",
            "x\u{FEFF}",
        ] {
            let err = OperatorName::parse(raw).unwrap_err();
            let shown = err.to_string();
            assert!(matches!(err, OperatorError::Invisible { .. }), "{raw:?}");
            assert!(!shown.chars().any(is_invisible), "{shown:?}");
        }
        assert_eq!(OperatorName::parse("   "), Err(OperatorError::Empty));
        assert_eq!(
            OperatorName::parse(&"a".repeat(MAX_NAME_CHARS + 1)),
            Err(OperatorError::TooLong)
        );
    }

    #[test]
    fn an_operator_named_through_another_keeps_its_origin_escaped_once() {
        let cli = Operator::new(OperatorName::parse("ops").unwrap(), "cli CORP\\ops@ws");
        assert_eq!(cli.origin, "cli CORP\\\\ops@ws");
        let approver = cli.named(OperatorName::parse("alice").unwrap());
        assert_eq!(approver.origin, cli.origin);
    }

    #[test]
    fn escape_makes_terminal_escapes_visible() {
        assert_eq!(
            escape("mallory\u{1b}[2K\rbob"),
            "mallory\\u{1b}[2K\\u{d}bob"
        );
        assert_eq!(escape("a\\u{1b}"), "a\\\\u{1b}");
        assert_eq!(escape("ünïcødé"), "ünïcødé");
    }
}
