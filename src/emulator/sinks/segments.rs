//! How an SMS provider splits a text into segments (what Twilio reports as `num_segments`
//! and bills): GSM-7 when every character is in the GSM 03.38 alphabet (160 septets in one
//! segment, 153 per segment of a longer one, extension characters costing two), otherwise
//! UCS-2 (70 UTF-16 code units, 67 per segment of a longer one); the user data header of a
//! concatenated message takes the difference
//! (<https://www.twilio.com/docs/glossary/what-sms-character-limit>, 3GPP TS 23.038).
//!
//! The emulator's own count, written apart from the template helper's so that the two
//! check each other.

/// The GSM 03.38 basic character set (the escape code excluded).
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table: each costs the escape septet and itself.
const EXTENSION: &str = "^{}\\[~]|€\u{c}";

/// An SMS text's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 7-bit.
    Gsm7,
    /// UCS-2 (UTF-16 code units).
    Ucs2,
}

/// The encoding a text needs and the number of segments it is sent in (at least 1).
pub fn count(text: &str) -> (Encoding, u32) {
    let septets: Option<usize> = text
        .chars()
        .map(|c| {
            if BASIC.contains(c) {
                Some(1)
            } else if EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (encoding, units, single, multi) = match septets {
        Some(n) => (Encoding::Gsm7, n, 160, 153),
        None => (Encoding::Ucs2, text.encode_utf16().count(), 70, 67),
    };
    let segments = if units <= single {
        1
    } else {
        units.div_ceil(multi)
    };
    (encoding, segments as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(count(""), (Encoding::Gsm7, 1));
        assert_eq!(count(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(count(&"a".repeat(161)), (Encoding::Gsm7, 2));
        assert_eq!(count(&"a".repeat(306)), (Encoding::Gsm7, 2));
        assert_eq!(count(&"a".repeat(307)), (Encoding::Gsm7, 3));
        assert_eq!(count("Grüße, Ñandu! @£$"), (Encoding::Gsm7, 1));
    }

    #[test]
    fn extension_characters_cost_two() {
        assert_eq!(count(&"€".repeat(80)), (Encoding::Gsm7, 1));
        assert_eq!(count(&"€".repeat(81)), (Encoding::Gsm7, 2));
        assert_eq!(count(&format!("{}[", "a".repeat(159))), (Encoding::Gsm7, 2));
    }

    #[test]
    fn one_character_outside_gsm_makes_it_ucs2() {
        assert_eq!(count(&"a".repeat(70)), (Encoding::Gsm7, 1));
        let mut text = "a".repeat(69);
        text.push('ç');
        assert_eq!(count(&text), (Encoding::Ucs2, 1));
        text.push('a');
        assert_eq!(count(&text), (Encoding::Ucs2, 2));
        // An emoji is two UTF-16 code units.
        assert_eq!(count(&"😀".repeat(35)), (Encoding::Ucs2, 1));
        assert_eq!(count(&"😀".repeat(36)), (Encoding::Ucs2, 2));
        assert_eq!(count(&"ж".repeat(134)), (Encoding::Ucs2, 2));
        assert_eq!(count(&"ж".repeat(135)), (Encoding::Ucs2, 3));
    }
}
