//! How many SMS segments a text costs: GSM-7 when every character is in the GSM 03.38 basic
//! set or its extension table, UCS-2 otherwise. A text that fits one segment may use the whole
//! 160 (GSM-7) or 70 (UCS-2) units; a longer one is split into parts of 153 or 67, because each
//! part carries a 6-byte user data header (3GPP TS 23.038 and TS 23.040; summarised at
//! <https://www.twilio.com/docs/glossary/what-sms-character-limit>).

/// The GSM 03.38 basic character set (one septet each). Form feed is not here: it is in the
/// extension table.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table: each costs two septets (escape, then the character).
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// The encoding a text travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// 7-bit GSM alphabet: 160 units alone, 153 per part.
    Gsm7,
    /// UCS-2 (UTF-16 code units): 70 alone, 67 per part.
    Ucs2,
}

/// What a text costs as SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsCost {
    /// The encoding every part uses (one non-GSM character makes the whole text UCS-2).
    pub encoding: Encoding,
    /// Units used: septets for GSM-7 (extension characters count 2), UTF-16 code units for
    /// UCS-2 (an emoji outside the BMP counts 2).
    pub units: usize,
    /// Segments billed and delivered (0 for an empty text).
    pub segments: usize,
}

impl Encoding {
    /// Units one segment holds when the text is not split.
    pub fn single(self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }

    /// Units each part of a split text holds.
    pub fn per_part(self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }
}

/// The encoding, units and segments of `text`.
pub fn cost(text: &str) -> SmsCost {
    let mut septets = Some(0usize);
    for c in text.chars() {
        septets = septets.and_then(|n| {
            if GSM7_BASIC.contains(c) {
                Some(n + 1)
            } else if GSM7_EXTENSION.contains(c) {
                Some(n + 2)
            } else {
                None
            }
        });
    }
    let (encoding, units) = match septets {
        Some(n) => (Encoding::Gsm7, n),
        None => (Encoding::Ucs2, text.encode_utf16().count()),
    };
    let segments = if units == 0 {
        0
    } else if units <= encoding.single() {
        1
    } else {
        units.div_ceil(encoding.per_part())
    };
    SmsCost {
        encoding,
        units,
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_boundaries_are_160_and_153() {
        assert_eq!(cost("").segments, 0);
        let at = |n: usize| cost(&"a".repeat(n));
        assert_eq!(
            at(160),
            SmsCost {
                encoding: Encoding::Gsm7,
                units: 160,
                segments: 1
            }
        );
        assert_eq!(at(161).segments, 2);
        assert_eq!(at(306).segments, 2);
        assert_eq!(at(307).segments, 3);
    }

    #[test]
    fn extension_characters_count_two() {
        for c in ['^', '{', '}', '[', ']', '~', '\\', '|', '€', '\u{c}'] {
            let one = cost(&c.to_string());
            assert_eq!((one.encoding, one.units), (Encoding::Gsm7, 2), "{c:?}");
        }
        // 158 plain + one extension character = 160 septets: still one segment.
        let text = format!("{}€", "a".repeat(158));
        assert_eq!(cost(&text).segments, 1);
        let text = format!("{}€", "a".repeat(159));
        assert_eq!((cost(&text).units, cost(&text).segments), (161, 2));
        // German umlauts are in the basic set.
        assert_eq!(cost("Äpfel für Jürgen").encoding, Encoding::Gsm7);
    }

    #[test]
    fn one_non_gsm_character_makes_ucs2_with_70_and_67() {
        let at = |n: usize| cost(&format!("{}ł", "a".repeat(n - 1)));
        assert_eq!(
            at(70),
            SmsCost {
                encoding: Encoding::Ucs2,
                units: 70,
                segments: 1
            }
        );
        assert_eq!(at(71).segments, 2);
        assert_eq!(at(134).segments, 2);
        assert_eq!(at(135).segments, 3);
    }

    #[test]
    fn an_emoji_is_two_utf16_units() {
        let c = cost("🔒");
        assert_eq!((c.encoding, c.units, c.segments), (Encoding::Ucs2, 2, 1));
        let text = format!("{}🔒", "a".repeat(68));
        assert_eq!((cost(&text).units, cost(&text).segments), (70, 1));
        let text = format!("{}🔒", "a".repeat(69));
        assert_eq!((cost(&text).units, cost(&text).segments), (71, 2));
    }
}
