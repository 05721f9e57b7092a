//! ArcSight Common Event Format (CEF) lines for SIEMs (`resetctl audit export --format cef`).
//!
//! Layout and escaping (sources: ArcSight "Implementing ArcSight Common Event Format", as
//! summarised in docs.rs `rsigma_runtime` parse::cef and support.kaspersky.com/KWTS/6.1 267200):
//! `CEF:0|Vendor|Product|Version|Signature ID|Name|Severity|Extension`; in header fields `\` →
//! `\\` and `|` → `\|`; in extension values `\` → `\\`, `=` → `\=`, newlines `\n`/`\r`;
//! spaces need no escaping. Extension keys are names of the CEF extension dictionary
//! (knowledgebase.autorabit.com "Common Event Format (CEF) Data"; Trend Micro TMES "CEF Audit
//! Logs"): `rt` (a time stamp, milliseconds since the epoch), `suser` (actor), `duser`
//! (subject), `act`, `outcome`, `externalId` (seq), and labelled custom strings `cs1`..`cs3`
//! for the trail id, the record's hash and its details (compact JSON). Severity is 0–10.

use super::record::Record;
use super::value::Outcome;

/// CEF severity (0–10) of an outcome: failures and refusals stand out, routine work does not.
pub fn severity(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Attempt | Outcome::Skipped => 2,
        Outcome::Success => 3,
        Outcome::Refused => 6,
        Outcome::Failure => 7,
    }
}

/// Escape a header field.
fn header(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escape an extension value.
fn value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// One CEF line (no newline) for a verified record.
pub fn line(record: &Record) -> String {
    let rt = record
        .time
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond().to_string())
        .unwrap_or_default();
    let details = serde_json::Value::Object(record.details.clone()).to_string();
    let name = format!("{} {}", record.action, record.outcome.as_str());
    let ext: [(&str, String); 12] = [
        ("rt", rt),
        ("suser", record.actor.clone()),
        ("duser", record.subject.clone()),
        ("act", record.action.clone()),
        ("outcome", record.outcome.as_str().to_owned()),
        ("externalId", record.seq.to_string()),
        ("cs1Label", "trail".into()),
        ("cs1", record.trail.to_string()),
        ("cs2Label", "hash".into()),
        ("cs2", record.hash.clone()),
        ("cs3Label", "details".into()),
        ("cs3", details),
    ];
    let extension: Vec<String> = ext
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", value(v)))
        .collect();
    format!(
        "CEF:0|resetctl|resetctl|{}|{}|{}|{}|{}",
        header(env!("CARGO_PKG_VERSION")),
        header(&record.action),
        header(&name),
        severity(record.outcome),
        extension.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::chain::Linker;
    use super::super::record::{Event, write_record};
    use super::super::value::Details;
    use super::*;

    #[test]
    fn a_record_becomes_one_escaped_cef_line() {
        let event = Event::new(
            "ops|lead@contoso.com",
            "password.reset",
            "a=b\\c",
            Outcome::Failure,
        )
        .unwrap()
        .with_details(Details::new().with("reason", "x=y").unwrap());
        let time = jiff::Timestamp::from_second(1_767_323_045).unwrap();
        let w = write_record(
            &Linker::new(None),
            &uuid::Uuid::nil(),
            7,
            &time,
            &event,
            "p",
        )
        .unwrap();
        let record = Record::parse(w.line.as_bytes()).unwrap();
        let line = line(&record);
        let expected = format!(
            concat!(
                "CEF:0|resetctl|resetctl|{}|password.reset|password.reset failure|7|",
                "rt=1767323045000 suser=ops|lead@contoso.com duser=a\\=b\\\\c act=password.reset ",
                "outcome=failure externalId=7 cs1Label=trail cs1=00000000-0000-0000-0000-000000000000 ",
                "cs2Label=hash cs2={} cs3Label=details cs3={{\"reason\":\"x\\=y\"}}"
            ),
            env!("CARGO_PKG_VERSION"),
            w.hash
        );
        assert_eq!(line, expected);
    }

    #[test]
    fn header_fields_escape_pipes_and_backslashes() {
        assert_eq!(header("a|b\\c\nd"), "a\\|b\\\\c d");
        assert_eq!(value("a=b\\c\r\n"), "a\\=b\\\\c\\r\\n");
    }
}
