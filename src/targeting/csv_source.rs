//! Reading a breach CSV into target references, defensively.
//!
//! Breach dumps are hostile input: byte-order marks, stray whitespace, the same address in
//! several spellings, quoted fields with commas, rows from another encoding, megabyte-long
//! junk lines, look-alike characters, `email:password` combo lists. Every row either becomes a
//! [`TargetRef`] or a [`BadRow`] naming its line; nothing is silently dropped except blank
//! lines. Whether bad rows stop the run is the caller's decision (`--skip-bad-rows`).
//!
//! Keys are matched in one form ([`lower`]: lower case, Unicode NFKC). A value that this
//! normalisation would change, such as `fran\u{212A}.ruiz` with a Kelvin sign, is a bad row:
//! it must never silently name the account it looks like.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Longest value accepted in the target column. A UPN is at most 113 characters (64 for the
/// local part, 48 for the domain, per Entra's limits); 256 leaves room for odd exports while
/// refusing junk lines.
const MAX_VALUE_LEN: usize = 256;

/// Longest header row read: a header names a few columns, and a multi-megabyte "header" (a
/// file of commas) would make the parser hold millions of fields.
const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// Longest row read. Junk lines of a megabyte are bad rows; a row of several megabytes stops
/// the file, so one row cannot make the parser buffer without bound.
const MAX_ROW_BYTES: u64 = 4 * 1024 * 1024;

/// What the CSV parser reads ahead of the record it returns (its buffer, set explicitly so
/// that the bounds above hold to within this much).
const READ_AHEAD: usize = 8 * 1024;

/// Characters that separate an identifier from a password in combo lists
/// (`user@domain:password`, `;`, `|`, tab or space). None can appear in a UPN or an id.
const COMBO_DELIMITERS: [char; 5] = [':', ';', '|', '\t', ' '];

/// How a CSV row names its user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum TargetKey {
    /// A user principal name, lower-cased (UPNs are case-insensitive in Entra ID).
    Upn(String),
    /// A directory object id (GUID), lower-cased.
    ObjectId(String),
}

impl std::fmt::Display for TargetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetKey::Upn(upn) => f.write_str(upn),
            TargetKey::ObjectId(id) => f.write_str(id),
        }
    }
}

/// One usable row: who, and where in the file they were named (first occurrence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetRef {
    /// The user's UPN or object id.
    pub key: TargetKey,
    /// 1-based line of the row in the file.
    pub line: u64,
}

/// A row that could not be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRow {
    /// 1-based line of the row in the file.
    pub line: u64,
    /// What is wrong with it (never the whole row: it may hold a leaked password).
    pub reason: String,
}

/// Everything read from one CSV.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CsvTargets {
    /// Distinct targets in file order.
    pub targets: Vec<TargetRef>,
    /// Rows that could not be used.
    pub bad_rows: Vec<BadRow>,
    /// Rows that repeated an earlier target (in any letter case).
    pub duplicates: u64,
    /// Rows whose value held more than an identifier (`user@domain:password`): only the
    /// identifier was kept, the rest dropped unread.
    pub combo_rows: u64,
}

/// Why a CSV could not be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// The file could not be opened.
    #[error("{path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The header row is missing, unreadable or lacks the chosen column.
    #[error("{path}:1: {message}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading failed part-way (I/O error, not a bad row).
    #[error("{path}:{line}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Line where reading stopped.
        line: u64,
        /// What happened.
        message: String,
    },
}

/// Read the targets in `column` (matched case-insensitively, ignoring surrounding spaces)
/// of the CSV at `path`. Rows in combo-list form are reported once, as a count (never their
/// content).
pub fn read_csv_targets(path: &Path, column: &str) -> Result<CsvTargets, CsvError> {
    let file = File::open(path).map_err(|source| CsvError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let targets = read_targets(BufReader::new(file), path, column)?;
    if targets.combo_rows > 0 {
        tracing::warn!(
            message = "Rows hold more than an identifier (a combo list such as user:password); \
                       only the identifier was kept, the rest was dropped.",
            file = %path.display(),
            rows = targets.combo_rows
        );
    }
    Ok(targets)
}

/// Read targets from any reader; `path` is used only in messages.
pub fn read_targets(input: impl Read, path: &Path, column: &str) -> Result<CsvTargets, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .buffer_capacity(READ_AHEAD)
        .from_reader(Bounded::new(input, MAX_HEADER_BYTES + READ_AHEAD as u64));
    let header_error = |message: String| CsvError::Header {
        path: path.to_path_buf(),
        message,
    };
    let too_long = || {
        header_error(format!(
            "the header row is longer than {} KiB: is the first line a header?",
            MAX_HEADER_BYTES / 1024
        ))
    };
    let headers = match reader.byte_headers() {
        Ok(headers) => headers.clone(),
        Err(err) if is_too_long(&err) => return Err(too_long()),
        Err(err) => return Err(header_error(format!("cannot read the header row: {err}"))),
    };
    if reader.position().byte() > MAX_HEADER_BYTES {
        return Err(too_long());
    }
    reader.get_mut().rearm(MAX_ROW_BYTES + READ_AHEAD as u64);
    let names: Vec<String> = headers
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            // A UTF-8 byte-order mark sticks to the first header name.
            let raw = if i == 0 {
                raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
            } else {
                raw
            };
            String::from_utf8_lossy(raw).trim().to_owned()
        })
        .collect();
    if names.iter().all(String::is_empty) {
        return Err(header_error("the file has no header row".into()));
    }
    let wanted = column.trim();
    let index = names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(wanted))
        .ok_or_else(|| header_error(missing_column(wanted, &names)))?;

    let mut out = CsvTargets::default();
    // Key -> line of its first row. Sorted back into file order at the end, so each key is
    // held once (a breach CSV can name millions).
    let mut seen: HashMap<TargetKey, u64, foldhash::fast::RandomState> = HashMap::default();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        let read = reader.read_byte_record(&mut record);
        reader.get_mut().rearm(MAX_ROW_BYTES + READ_AHEAD as u64);
        match read {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => match err.kind() {
                csv::ErrorKind::Io(_) => {
                    let message = if is_too_long(&err) {
                        format!(
                            "a row longer than {} MiB: not a breach CSV row; nothing after it \
                             was read",
                            MAX_ROW_BYTES / (1024 * 1024)
                        )
                    } else {
                        err.to_string()
                    };
                    return Err(CsvError::Read {
                        path: path.to_path_buf(),
                        line,
                        message,
                    });
                }
                _ => {
                    let line = err.position().map_or(line, |p| p.line());
                    out.bad_rows.push(BadRow {
                        line,
                        reason: "malformed CSV row".into(),
                    });
                    continue;
                }
            },
        }
        let line = record.position().map_or(line, |p| p.line());
        if record.iter().all(|field| field.trim_ascii().is_empty()) {
            continue; // blank line
        }
        match parse_value(record.get(index)) {
            Ok((key, combo)) => {
                out.combo_rows += u64::from(combo);
                match seen.entry(key) {
                    Entry::Vacant(slot) => {
                        slot.insert(line);
                    }
                    Entry::Occupied(_) => out.duplicates += 1,
                }
            }
            Err(reason) => out.bad_rows.push(BadRow { line, reason }),
        }
    }
    out.targets = seen
        .into_iter()
        .map(|(key, line)| TargetRef { key, line })
        .collect();
    out.targets.sort_unstable_by_key(|t| t.line);
    Ok(out)
}

/// The header error when `wanted` is not a column: the header's names, unless the first line
/// looks like data (an address in it), which may be a row of a combo list with its password.
fn missing_column(wanted: &str, names: &[String]) -> String {
    if names.iter().any(|n| n.contains('@')) {
        return format!(
            "no column named `{wanted}`, and the first line looks like data, not a header (it \
             holds an address); add a header row that names the column"
        );
    }
    const SHOWN: usize = 20;
    let mut listed: Vec<String> = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("`{}`", n.chars().take(64).collect::<String>()))
        .collect();
    if names.len() > SHOWN {
        listed.push(format!("and {} more", names.len() - SHOWN));
    }
    format!(
        "no column named `{wanted}`; the header has: {}",
        listed.join(", ")
    )
}

/// Turn one field into a target key, or say why it cannot be one. The flag says the value was
/// in combo-list form (`user@domain:password`): the key is its identifier, the rest dropped.
/// A cell neutralised by resetctl's own reports (`'-dash@contoso.com`) reads as its value, so
/// a `results.csv` can be fed back as targets.
fn parse_value(field: Option<&[u8]>) -> Result<(TargetKey, bool), String> {
    let Some(raw) = field else {
        return Err("the row has no value in the target column".into());
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err("the value is not valid UTF-8".into());
    };
    let value = crate::spreadsheet::restore(text.trim()).trim();
    if value.is_empty() {
        return Err("the target column is empty".into());
    }
    let (value, combo) = split_combo(value);
    if value.len() > MAX_VALUE_LEN {
        return Err(format!(
            "the value is {} bytes long; a UPN or object id is at most {MAX_VALUE_LEN}",
            value.len()
        ));
    }
    check_normalised(value)?;
    if is_guid(value) {
        return Ok((TargetKey::ObjectId(value.to_ascii_lowercase()), combo));
    }
    check_upn(value)?;
    Ok((TargetKey::Upn(lower(value).into_owned()), combo))
}

/// `(identifier, true)` when `value` is an identifier followed by a combo-list delimiter and
/// anything (a password); otherwise `(value, false)`.
fn split_combo(value: &str) -> (&str, bool) {
    match value.split_once(COMBO_DELIMITERS) {
        Some((id, _)) if is_guid(id) || check_upn(id).is_ok() => (id, true),
        _ => (value, false),
    }
}

/// A value is matched in NFKC form; one that NFKC would change (compatibility characters such
/// as the Kelvin sign, fullwidth letters, decomposed accents) looks like an address it is not.
fn check_normalised(value: &str) -> Result<(), String> {
    if value.is_ascii() || value.chars().eq(value.nfkc()) {
        return Ok(());
    }
    let culprit = value
        .chars()
        .enumerate()
        .find(|&(_, c)| !std::iter::once(c).eq(std::iter::once(c).nfkc()));
    Err(match culprit {
        Some((i, c)) => format!(
            "character {} of the value (U+{:04X}) changes under Unicode normalisation (NFKC): \
             a look-alike of another address, never matched",
            i + 1,
            u32::from(c)
        ),
        None => "the value changes under Unicode normalisation (NFKC): a look-alike of \
                 another address, never matched"
            .into(),
    })
}

/// The one form in which CSV keys and listed users meet: lower case (UPNs and ids are
/// case-insensitive in Entra ID), then Unicode NFKC. Borrows when the text already is in that
/// form (Graph's ids always are).
pub(super) fn lower(text: &str) -> std::borrow::Cow<'_, str> {
    if text.is_ascii() {
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(text.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(text)
        }
    } else {
        std::borrow::Cow::Owned(text.to_lowercase().nfkc().collect())
    }
}

/// Whether a CSV error is [`Bounded`]'s "read past the limit".
fn is_too_long(err: &csv::Error) -> bool {
    match err.kind() {
        csv::ErrorKind::Io(e) => e.get_ref().is_some_and(|inner| inner.is::<TooLong>()),
        _ => false,
    }
}

/// The error [`Bounded`] returns.
#[derive(Debug, thiserror::Error)]
#[error("read limit reached")]
struct TooLong;

/// A reader that fails once more than `limit` bytes were read since it was last armed: the
/// CSV parser, armed before each record, can then never buffer an unbounded record.
struct Bounded<R> {
    inner: R,
    used: u64,
    limit: u64,
}

impl<R: Read> Bounded<R> {
    fn new(inner: R, limit: u64) -> Self {
        Bounded {
            inner,
            used: 0,
            limit,
        }
    }

    /// Start a new window of `limit` bytes.
    fn rearm(&mut self, limit: u64) {
        self.used = 0;
        self.limit = limit;
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.used >= self.limit {
            // At the limit: fine if the input ends here, an error if there is more.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    TooLong,
                )),
            };
        }
        let room = usize::try_from(self.limit - self.used).unwrap_or(usize::MAX);
        let len = buf.len().min(room);
        let n = self.inner.read(&mut buf[..len])?;
        self.used += n as u64;
        Ok(n)
    }
}

/// `8-4-4-4-12` hexadecimal digits, the form Graph gives object ids.
fn is_guid(value: &str) -> bool {
    value.len() == 36
        && value.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && value.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
}

/// A UPN is `local@domain` with no whitespace, one `@`, and a dotted domain.
fn check_upn(value: &str) -> Result<(), String> {
    let Some((local, domain)) = value.split_once('@') else {
        return Err("the value is neither a UPN (user@domain) nor an object id".into());
    };
    if local.is_empty() || domain.contains('@') {
        return Err("the value is not a valid UPN".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the UPN contains whitespace or control characters".into());
    }
    if !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err("the UPN's domain is not a valid domain name".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8]) -> CsvTargets {
        read_targets(text, Path::new("breach.csv"), "upn").unwrap()
    }

    fn upns(targets: &CsvTargets) -> Vec<String> {
        targets.targets.iter().map(|t| t.key.to_string()).collect()
    }

    #[test]
    fn bom_whitespace_case_and_blank_lines() {
        let csv = b"\xEF\xBB\xBFUPN ,source\n  Alice@Contoso.com ,dump\n\n   \nbob@contoso.com,dump\nALICE@contoso.COM,dump\n";
        let t = read(csv);
        assert_eq!(upns(&t), ["alice@contoso.com", "bob@contoso.com"]);
        assert_eq!(t.duplicates, 1);
        assert!(t.bad_rows.is_empty(), "{:?}", t.bad_rows);
        assert_eq!(t.targets[0].line, 2);
        assert_eq!(t.targets[1].line, 5);
    }

    #[test]
    fn quoted_commas_and_object_ids() {
        let csv =
            b"name,upn\n\"Doe, Jane\",jane@contoso.com\nx,0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0\n";
        let t = read(csv);
        assert_eq!(
            t.targets.iter().map(|t| t.key.clone()).collect::<Vec<_>>(),
            [
                TargetKey::Upn("jane@contoso.com".into()),
                TargetKey::ObjectId("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into())
            ]
        );
    }

    #[test]
    fn bad_rows_name_their_line_and_never_echo_the_row() {
        let long = "a".repeat(1 << 20);
        let csv = format!(
            "upn,password\nnot-an-address,Hunter2!\n,Secret1\nok@contoso.com,x\n{long}@contoso.com,y\nshort\n"
        );
        let mut bytes = csv.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe@contoso.com,z\n");
        let t = read(&bytes);
        assert_eq!(upns(&t), ["ok@contoso.com"]);
        let lines: Vec<u64> = t.bad_rows.iter().map(|b| b.line).collect();
        assert_eq!(lines, [2, 3, 5, 6, 7]);
        for bad in &t.bad_rows {
            assert!(!bad.reason.contains("Hunter2") && !bad.reason.contains("Secret1"));
            assert!(
                bad.reason.len() < 200,
                "reason echoes input: {}",
                bad.reason.len()
            );
        }
    }

    #[test]
    fn missing_column_lists_the_header() {
        let err =
            read_targets(&b"email,name\na@b.c,A\n"[..], Path::new("dump.csv"), "upn").unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("dump.csv:1:"), "{message}");
        assert!(
            message.contains("`email`") && message.contains("`upn`"),
            "{message}"
        );
    }

    #[test]
    fn empty_file_is_a_header_error() {
        let err = read_targets(&b""[..], Path::new("e.csv"), "upn").unwrap_err();
        assert!(matches!(err, CsvError::Header { .. }), "{err}");
    }

    #[test]
    fn values_that_change_under_nfkc_are_bad_rows() {
        // Kelvin sign, fullwidth letters, a decomposed accent: look-alikes of other keys.
        let csv = "upn\nfran\u{212A}.ruiz@contoso.com\n\u{FF41}lice@contoso.com\nre\u{301}mi@contoso.com\nr\u{e9}mi@contoso.com\n\u{C9}MILE@contoso.com\n";
        let t = read(csv.as_bytes());
        assert_eq!(
            upns(&t),
            ["r\u{e9}mi@contoso.com", "\u{e9}mile@contoso.com"]
        );
        let lines: Vec<u64> = t.bad_rows.iter().map(|b| b.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(
            t.bad_rows[0]
                .reason
                .contains("character 5 of the value (U+212A)")
        );
        assert!(t.bad_rows[1].reason.contains("U+FF41"));
        assert!(t.bad_rows[2].reason.contains("NFKC"));
        // Both sides of the join meet in one form.
        assert_eq!(lower("\u{C9}MILE@X.COM"), "\u{e9}mile@x.com");
        assert_eq!(lower("fran\u{212A}.ruiz"), "frank.ruiz");
        assert!(matches!(lower("abc"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn combo_list_rows_keep_only_the_identifier() {
        let csv = "upn\nalice@contoso.com:Hunter2\nbob@contoso.com;p;w\ncarol@contoso.com|x\n\"dave@contoso.com\tpw\"\nerin@contoso.com pass word\n0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0:pw\nfrank@contoso.com:\nnot an address:pw\n";
        let t = read(csv.as_bytes());
        assert_eq!(
            upns(&t),
            [
                "alice@contoso.com",
                "bob@contoso.com",
                "carol@contoso.com",
                "dave@contoso.com",
                "erin@contoso.com",
                "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                "frank@contoso.com",
            ]
        );
        assert_eq!(t.combo_rows, 7);
        assert_eq!(t.bad_rows.len(), 1);
        let shown = format!("{t:?}");
        for secret in ["Hunter2", "p;w", "pass word", ":pw"] {
            assert!(!shown.contains(secret), "{secret}: {shown}");
        }
        // The password does not count against the identifier's length.
        let long = format!("upn\nalice@contoso.com:{}\n", "p".repeat(1000));
        assert_eq!(upns(&read(long.as_bytes())), ["alice@contoso.com"]);
    }

    #[test]
    fn a_headerless_combo_list_is_not_echoed() {
        let err = read_targets(
            &b"alice@contoso.com:Hunter2\n"[..],
            Path::new("d.csv"),
            "upn",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("looks like data"), "{err}");
        assert!(!err.contains("Hunter2"), "{err}");
    }

    #[test]
    fn cells_neutralised_by_a_report_read_back_as_their_value() {
        let csv = "user_id,upn\nx,'-dash@contoso.com\ny,'=eq@contoso.com\nz,o'brien@contoso.com\n";
        assert_eq!(
            upns(&read(csv.as_bytes())),
            [
                "-dash@contoso.com",
                "=eq@contoso.com",
                "o'brien@contoso.com"
            ]
        );
    }

    #[test]
    fn headers_and_rows_are_read_with_limits() {
        let mut header = String::from("upn");
        header.push_str(&",".repeat(MAX_HEADER_BYTES as usize));
        header.push_str("\na@b.c\n");
        let err = read_targets(header.as_bytes(), Path::new("h.csv"), "upn").unwrap_err();
        assert!(matches!(err, CsvError::Header { .. }), "{err}");
        assert!(err.to_string().contains("longer than 64 KiB"), "{err}");
        // A header just under the limit is fine.
        let mut header = String::from("upn");
        header.push_str(&",x".repeat(MAX_HEADER_BYTES as usize / 2 - 100));
        header.push_str("\na@b.c\n");
        assert_eq!(upns(&read(header.as_bytes())), ["a@b.c"]);
        // A row of more than MAX_ROW_BYTES stops the file at its line.
        let row = ",".repeat(MAX_ROW_BYTES as usize + 2 * READ_AHEAD);
        let csv = format!("upn\na@b.c\n{row}\nd@e.f\n");
        let err = read_targets(csv.as_bytes(), Path::new("r.csv"), "upn").unwrap_err();
        assert!(matches!(err, CsvError::Read { line: 3, .. }), "{err}");
        assert!(err.to_string().contains("longer than 4 MiB"), "{err}");
        // A list of many header names is cut short.
        let err = read_targets(
            "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w\n".as_bytes(),
            Path::new("m.csv"),
            "upn",
        )
        .unwrap_err();
        assert!(err.to_string().ends_with("`t`, and 3 more"), "{err}");
    }

    #[test]
    fn guid_and_upn_shapes() {
        assert!(is_guid("00000000-0000-0000-0000-000000000000"));
        assert!(!is_guid("00000000-0000-0000-0000-00000000000"));
        assert!(check_upn("a.b@sub.contoso.com").is_ok());
        for bad in ["a@b", "a@@b.c", "@b.c", "a b@c.d", "a@.c.d", "a@c..d"] {
            assert!(check_upn(bad).is_err(), "{bad}");
        }
    }
}
