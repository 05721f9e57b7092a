//! Spreadsheet formula neutralisation ("CSV injection", OWASP): one rule for the cells resetctl
//! writes and for the identifiers it reads back, so a `results.csv` can be a targets CSV.
//!
//! A cell a spreadsheet would evaluate gets a leading apostrophe, which spreadsheets show as
//! text and do not display. The rule also prefixes a cell that starts with apostrophes
//! followed by such a start, so that [`restore`] is exact: `restore(&neutralise(x)) == x` for
//! every `x`, and a value that never needed the prefix is read back unchanged.

use std::borrow::Cow;

/// Characters that make a spreadsheet read a cell as a formula or a DDE command when they
/// start it: `=`, `+`, `-`, `@`, `|` (DDE), `%`, and the fullwidth forms of `=`, `+`, `-` and
/// `@`, which some spreadsheets fold to ASCII before evaluating.
const FORMULA_START: [char; 10] = [
    '=', '+', '-', '@', '|', '%', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// Whether a spreadsheet could evaluate `cell`, or `cell` is apostrophes before such a start.
pub fn needs_prefix(cell: &str) -> bool {
    let cell = cell.trim_start_matches('\'');
    match cell.chars().next() {
        None => false,
        // Tab, CR and LF: spreadsheets skip or split on them and evaluate what follows.
        Some('\t' | '\r' | '\n') => true,
        Some(c) if FORMULA_START.contains(&c) => true,
        // Leading spaces (any Unicode space) are skipped by some spreadsheets: ` =1+1`.
        Some(c) if c.is_whitespace() => cell.trim_start().starts_with(FORMULA_START),
        Some(_) => false,
    }
}

/// `cell` as written to a report: with a leading apostrophe when [`needs_prefix`] says so.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if needs_prefix(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The value a cell written by [`neutralise`] stands for: the apostrophe it added, removed.
pub fn restore(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_prefix(rest) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_prefixed() {
        for cell in [
            "=HYPERLINK(\"http://evil\")",
            "+1",
            "-2",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "\n=1+1",
            " =1+1",
            "\u{3000}\u{a0}+1",
            "\u{FF1D}1+1",
            "\u{FF20}x",
            "|calc!A1",
            "%0A",
            "'=1",
            "''-x",
        ] {
            assert_eq!(neutralise(cell), format!("'{cell}"), "{cell:?}");
        }
        for cell in [
            "alice@contoso.com",
            "Grace, Admin",
            " x",
            "",
            "'quoted",
            "a=b",
            "#x",
        ] {
            assert_eq!(neutralise(cell), cell, "{cell:?}");
        }
    }

    #[test]
    fn restore_undoes_neutralise_exactly() {
        for cell in [
            "-dash@contoso.com",
            "=x",
            "'=x",
            "''=x",
            "'",
            "''",
            "'-",
            "o'brien@contoso.com",
            "'quoted",
            "plain",
            "",
            " =1",
        ] {
            assert_eq!(restore(&neutralise(cell)), cell, "{cell:?}");
        }
        // A value nobody neutralised reads as itself.
        assert_eq!(restore("'quoted"), "'quoted");
        assert_eq!(restore("'-dash@contoso.com"), "-dash@contoso.com");
    }

    #[test]
    fn long_runs_of_apostrophes_do_not_recurse() {
        let cell = format!("{}=1", "'".repeat(1 << 20));
        assert!(needs_prefix(&cell));
        assert_eq!(restore(&neutralise(&cell)), cell);
    }
}
