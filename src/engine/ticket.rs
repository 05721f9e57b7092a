//! The incident ticket a run is carried out under (`--ticket INC-1234`): stored with the run,
//! written into every audit record the run writes and into its summary, so the trail, the
//! report and the ticketing system can be joined on it.
//!
//! A ticket id is plain text of a known shape — letters, digits and `-_.:/#`, at most 64
//! characters, starting with a letter or digit — so it cannot smuggle a line break into a
//! record, a Markdown table or a terminal, and never reads as a spreadsheet formula or a
//! command-line flag.

use std::fmt;

/// Longest accepted ticket id, in characters.
pub const MAX_TICKET_CHARS: usize = 64;

/// Why a text is not a ticket id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Nothing given.
    #[error("a ticket id is needed (for example INC-1234)")]
    Empty,
    /// Longer than [`MAX_TICKET_CHARS`].
    #[error("a ticket id is at most {MAX_TICKET_CHARS} characters")]
    TooLong,
    /// A character outside letters, digits and `-_.:/#`.
    #[error(
        "a ticket id holds only letters, digits and - _ . : / # (found {found} at position {position})"
    )]
    BadCharacter {
        /// The character, escaped (`U+XXXX` for anything not printable ASCII).
        found: String,
        /// Its 1-based position.
        position: usize,
    },
    /// Starts with punctuation (`-` reads as a formula in a spreadsheet, as a flag in a shell).
    #[error("a ticket id starts with a letter or digit")]
    LeadingPunctuation,
}

/// A checked ticket id, for example `INC-1234` or `SEC/2026:17#3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Ticket(String);

impl Ticket {
    /// Check `raw` (trimmed of surrounding white space).
    pub fn parse(raw: &str) -> Result<Ticket, TicketError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(TicketError::Empty);
        }
        if let Some((i, c)) = text.chars().enumerate().find(|(_, c)| !allowed(*c)) {
            let found = if c.is_ascii_graphic() {
                format!("`{c}`")
            } else {
                format!("U+{:04X}", c as u32)
            };
            return Err(TicketError::BadCharacter {
                found,
                position: i + 1,
            });
        }
        if text.chars().count() > MAX_TICKET_CHARS {
            return Err(TicketError::TooLong);
        }
        if !text.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(TicketError::LeadingPunctuation);
        }
        Ok(Ticket(text.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// ASCII letters and digits and the separators ticket systems use.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '#')
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Ticket {
    type Err = TicketError;
    fn from_str(s: &str) -> Result<Ticket, TicketError> {
        Ticket::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_ids_of_common_systems_are_accepted() {
        for id in [
            "INC-1234",
            "INC0012345",
            "SEC/2026:17#3",
            "jira.PROJ-9_b",
            "7",
        ] {
            assert_eq!(Ticket::parse(id).unwrap().as_str(), id);
        }
        assert_eq!(Ticket::parse("  INC-1 ").unwrap().as_str(), "INC-1");
        assert_eq!(Ticket::parse(&"A".repeat(64)).unwrap().as_str().len(), 64);
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        assert_eq!(Ticket::parse(" "), Err(TicketError::Empty));
        assert_eq!(Ticket::parse(&"A".repeat(65)), Err(TicketError::TooLong));
        assert_eq!(
            Ticket::parse("INC 1"),
            Err(TicketError::BadCharacter {
                found: "U+0020".into(),
                position: 4
            })
        );
        assert_eq!(
            Ticket::parse("INC-1\nforged: yes"),
            Err(TicketError::BadCharacter {
                found: "U+000A".into(),
                position: 6
            })
        );
        for bad in ["=HYPERLINK(1)", "INC|1", "INC`1`", "INC-1\u{202e}", "ÍNC-1"] {
            assert!(
                matches!(Ticket::parse(bad), Err(TicketError::BadCharacter { .. })),
                "{bad}"
            );
        }
        assert_eq!(Ticket::parse("-INC"), Err(TicketError::LeadingPunctuation));
        assert_eq!(Ticket::parse("#1"), Err(TicketError::LeadingPunctuation));
    }
}
