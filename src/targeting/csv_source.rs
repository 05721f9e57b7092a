//! Reading a breach CSV into target references, defensively.
//!
//! Breach dumps are hostile input: byte-order marks, stray whitespace, the same address in
//! several spellings, quoted fields with commas, rows from another encoding, megabyte-long
//! junk lines. Every row either becomes a [`TargetRef`] or a [`BadRow`] naming its line;
//! nothing is silently dropped except blank lines. Whether bad rows stop the run is the
//! caller's decision (`--skip-bad-rows`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Longest value accepted in the target column. A UPN is at most 113 characters (64 for the
/// local part, 48 for the domain, per Entra's limits); 256 leaves room for odd exports while
/// refusing junk lines.
const MAX_VALUE_LEN: usize = 256;

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
/// of the CSV at `path`.
pub fn read_csv_targets(path: &Path, column: &str) -> Result<CsvTargets, CsvError> {
    let file = File::open(path).map_err(|source| CsvError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    read_targets(BufReader::new(file), path, column)
}

/// Read targets from any reader; `path` is used only in messages.
pub fn read_targets(input: impl Read, path: &Path, column: &str) -> Result<CsvTargets, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(input);
    let header_error = |message: String| CsvError::Header {
        path: path.to_path_buf(),
        message,
    };
    let headers = reader
        .byte_headers()
        .map_err(|err| header_error(format!("cannot read the header row: {err}")))?
        .clone();
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
        .ok_or_else(|| {
            header_error(format!(
                "no column named `{wanted}`; the header has: {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;

    let mut out = CsvTargets::default();
    // Key -> line of its first row. Sorted back into file order at the end, so each key is
    // held once (a breach CSV can name millions).
    let mut seen: HashMap<TargetKey, u64, foldhash::fast::RandomState> = HashMap::default();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => match err.kind() {
                csv::ErrorKind::Io(_) => {
                    return Err(CsvError::Read {
                        path: path.to_path_buf(),
                        line,
                        message: err.to_string(),
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
            Ok(key) => match seen.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(line);
                }
                Entry::Occupied(_) => out.duplicates += 1,
            },
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

/// Turn one field into a target key, or say why it cannot be one.
fn parse_value(field: Option<&[u8]>) -> Result<TargetKey, String> {
    let Some(raw) = field else {
        return Err("the row has no value in the target column".into());
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err("the value is not valid UTF-8".into());
    };
    let value = text.trim();
    if value.is_empty() {
        return Err("the target column is empty".into());
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(format!(
            "the value is {} bytes long; a UPN or object id is at most {MAX_VALUE_LEN}",
            value.len()
        ));
    }
    if is_guid(value) {
        return Ok(TargetKey::ObjectId(value.to_ascii_lowercase()));
    }
    check_upn(value)?;
    Ok(TargetKey::Upn(lower(value).into_owned()))
}

/// Lower-case a UPN or id (both are case-insensitive in Entra ID), borrowing when it
/// already is (Graph's ids always are): CSV keys and listed users meet in this one form.
pub(super) fn lower(text: &str) -> std::borrow::Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) || !text.is_ascii() {
        std::borrow::Cow::Owned(text.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(text)
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
    fn guid_and_upn_shapes() {
        assert!(is_guid("00000000-0000-0000-0000-000000000000"));
        assert!(!is_guid("00000000-0000-0000-0000-00000000000"));
        assert!(check_upn("a.b@sub.contoso.com").is_ok());
        for bad in ["a@b", "a@@b.c", "@b.c", "a b@c.d", "a@.c.d", "a@c..d"] {
            assert!(check_upn(bad).is_err(), "{bad}");
        }
    }
}
