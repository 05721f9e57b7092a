//! A small MIME reader for Graph's MIME `sendMail`: enough of RFC 5322 (headers, folded
//! lines), RFC 2045–2046 (multipart bodies by boundary, `base64` and `quoted-printable`
//! transfer encodings, charsets UTF-8, US-ASCII and ISO-8859-1) and RFC 2047 (encoded words
//! in headers) to keep what a message says: sender, recipients, subject, `Message-ID` and
//! each leaf part's content type and text.
//!
//! Lenient the way mail servers are: bare LF line ends are read as CRLF, an unterminated
//! multipart ends at the end of the body, an unknown transfer encoding is read as is. It
//! refuses only what no reader could make sense of: a message without a header section, a
//! multipart without its `boundary` parameter, or with no part.

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use serde::Serialize;

/// What a MIME message held.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MimeMessage {
    /// The `From` addresses.
    pub from: Vec<String>,
    /// The `To` addresses.
    pub to: Vec<String>,
    /// The `Cc` addresses.
    pub cc: Vec<String>,
    /// The `Bcc` addresses.
    pub bcc: Vec<String>,
    /// The decoded subject.
    pub subject: Option<String>,
    /// The `Message-ID`, angle brackets included.
    pub message_id: Option<String>,
    /// Every leaf part in order (a single-part message is one part).
    pub parts: Vec<MimePart>,
}

/// One leaf part.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MimePart {
    /// Its media type, lower case (`text/plain`).
    pub content_type: String,
    /// Its charset parameter, lower case, when given.
    pub charset: Option<String>,
    /// Its decoded content as text.
    pub text: String,
}

/// Why a MIME message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MimeError {
    /// The request body is not base64.
    #[error("invalid base64 string for MIME content")]
    Base64,
    /// The decoded content is not a MIME message.
    #[error("invalid MIME content: {0}")]
    Invalid(&'static str),
}

/// Read a base64-encoded MIME message, as Graph's `sendMail` takes it (line breaks and
/// missing padding allowed).
pub fn parse_base64(body: &[u8]) -> Result<MimeMessage, MimeError> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(MimeError::Base64);
    }
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let raw = lenient.decode(&compact).map_err(|_| MimeError::Base64)?;
    parse(&raw)
}

/// Read a MIME message.
pub fn parse(raw: &[u8]) -> Result<MimeMessage, MimeError> {
    let (headers, body) = split_entity(raw);
    if headers.is_empty() {
        return Err(MimeError::Invalid("no header section"));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let addresses = |name: &str| get(name).map(addresses).unwrap_or_default();
    let mut parts = Vec::new();
    read_entity(&headers, body, &mut parts, 0)?;
    Ok(MimeMessage {
        from: addresses("From"),
        to: addresses("To"),
        cc: addresses("Cc"),
        bcc: addresses("Bcc"),
        subject: get("Subject").map(decode_words),
        message_id: get("Message-ID").map(|v| v.trim().to_string()),
        parts,
    })
}

type Headers = Vec<(String, String)>;

/// Headers (unfolded) and the body of an entity.
fn split_entity(raw: &[u8]) -> (Headers, &[u8]) {
    let mut headers: Headers = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        let line_start = pos;
        let end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| pos + i);
        let line = &raw[pos..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos = (end + 1).min(raw.len());
        if line.is_empty() {
            return (headers, &raw[pos..]);
        }
        let text = String::from_utf8_lossy(line);
        if text.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(text.trim());
            }
        } else if let Some((name, value)) = text.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        } else {
            // Not a header line: the header section ended without its blank line.
            return (headers, &raw[line_start..]);
        }
    }
    (headers, &[])
}

/// Collect the leaf parts of an entity.
fn read_entity(
    headers: &Headers,
    body: &[u8],
    parts: &mut Vec<MimePart>,
    depth: u8,
) -> Result<(), MimeError> {
    if depth > 8 {
        return Err(MimeError::Invalid("multiparts nested too deep"));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let content_type = get("Content-Type").unwrap_or("text/plain; charset=us-ascii");
    let (media, params) = media_type(content_type);
    if media.starts_with("multipart/") {
        let boundary = params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone())
            .ok_or(MimeError::Invalid("a multipart without its boundary"))?;
        let children = split_multipart(body, &boundary);
        if children.is_empty() {
            return Err(MimeError::Invalid("a multipart without parts"));
        }
        for child in children {
            let (h, b) = split_entity(child);
            read_entity(&h, b, parts, depth + 1)?;
        }
        return Ok(());
    }
    let charset = params
        .iter()
        .find(|(k, _)| k == "charset")
        .map(|(_, v)| v.to_ascii_lowercase());
    let encoding = get("Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => {
            let compact: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            general_purpose::STANDARD
                .decode(compact)
                .map_err(|_| MimeError::Invalid("a base64 part that is not base64"))?
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.to_vec(),
    };
    parts.push(MimePart {
        content_type: media,
        text: to_text(&bytes, charset.as_deref()),
        charset,
    });
    Ok(())
}

/// `type/subtype` in lower case and the parameters (names lower case, values unquoted).
fn media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut pieces = value.split(';');
    let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = pieces
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            )
        })
        .collect();
    (media, params)
}

/// The bodies between `--boundary` lines (up to `--boundary--` or the end).
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| pos + i);
        let line = &body[pos..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let trimmed = trim_end_ws(line);
        if let Some(rest) = trimmed.strip_prefix(delimiter.as_bytes())
            && (rest.is_empty() || rest == b"--")
        {
            if let Some(s) = start {
                // The line break before the delimiter belongs to the delimiter.
                let mut e = pos;
                if e > s && body[e - 1] == b'\n' {
                    e -= 1;
                    if e > s && body[e - 1] == b'\r' {
                        e -= 1;
                    }
                }
                parts.push(&body[s..e]);
            }
            if rest == b"--" {
                return parts;
            }
            start = Some((end + 1).min(body.len()));
        }
        pos = end + 1;
    }
    if let Some(s) = start
        && s < body.len()
    {
        parts.push(&body[s..]);
    }
    parts
}

fn trim_end_ws(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    &line[..end]
}

/// Decode quoted-printable (soft line breaks dropped, `=XX` decoded).
fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    while i < body.len() {
        if body[i] == b'=' {
            match (body.get(i + 1), body.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => i += 3,
                (Some(b'\n'), _) => i += 2,
                (Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                    out.push(hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0));
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            }
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

/// Bytes in `charset` as text (UTF-8 when unknown; Latin-1 byte for byte).
fn to_text(bytes: &[u8], charset: Option<&str>) -> String {
    match charset {
        Some("iso-8859-1" | "latin1" | "windows-1252") => {
            bytes.iter().map(|&b| b as char).collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// A header value with its RFC 2047 encoded words decoded (white space between two encoded
/// words dropped, as the RFC says).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, from) = rest.split_at(start);
        let Some(word) = encoded_word(from) else {
            out.push_str(before);
            out.push_str("=?");
            rest = &from[2..];
            last_was_word = false;
            continue;
        };
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&word.0);
        rest = &from[word.1..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

/// One `=?charset?B|Q?text?=` at the start of `s`: its text and length.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, rest) = inner.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let text = &rest[..end];
    let bytes = match encoding {
        "B" | "b" => general_purpose::STANDARD.decode(text).ok()?,
        "Q" | "q" => quoted_printable(text.replace('_', " ").as_bytes()),
        _ => return None,
    };
    let len = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    Some((to_text(&bytes, Some(&charset.to_ascii_lowercase())), len))
}

/// The addresses of an address-list header (`Name <a@b>, c@d`).
fn addresses(value: &str) -> Vec<String> {
    let mut list = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => list.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    list.push(current);
    list.iter()
        .filter_map(|entry| {
            let entry = entry.trim();
            let address = match (entry.rfind('<'), entry.rfind('>')) {
                (Some(open), Some(close)) if open < close => &entry[open + 1..close],
                _ => entry,
            };
            let address = address.trim();
            (!address.is_empty()).then(|| address.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALTERNATIVE: &str = "From: Contoso Security <security@contoso.com>\r\n\
To: \"Jones, Alice\" <alice@contoso.com>, bob@contoso.com\r\n\
Subject: =?utf-8?b?UGFzc3dvcnQgenVyw7xja2dlc2V0enQ=?=\r\n\
Message-ID: <abc.123@contoso.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative;\r\n boundary=\"XYZ\"\r\n\
\r\n\
--XYZ\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Gr=C3=BC=C3=9Fe, your password was reset. A long line that is =\r\n\
softly broken.\r\n\
--XYZ\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+SGVsbG88L3A+\r\n\
--XYZ--\r\n";

    #[test]
    fn both_parts_of_an_alternative_are_read() {
        let m = parse(ALTERNATIVE.as_bytes()).unwrap();
        assert_eq!(m.from, ["security@contoso.com"]);
        assert_eq!(m.to, ["alice@contoso.com", "bob@contoso.com"]);
        assert_eq!(m.subject.as_deref(), Some("Passwort zurückgesetzt"));
        assert_eq!(m.message_id.as_deref(), Some("<abc.123@contoso.com>"));
        assert_eq!(m.parts.len(), 2);
        assert_eq!(m.parts[0].content_type, "text/plain");
        assert_eq!(m.parts[0].charset.as_deref(), Some("utf-8"));
        assert_eq!(
            m.parts[0].text,
            "Grüße, your password was reset. A long line that is softly broken."
        );
        assert_eq!(m.parts[1].content_type, "text/html");
        assert_eq!(m.parts[1].text, "<p>Hello</p>");
    }

    #[test]
    fn base64_with_line_breaks_and_bare_lf_is_read() {
        let lf = ALTERNATIVE.replace("\r\n", "\n");
        let encoded = general_purpose::STANDARD.encode(lf.as_bytes());
        let wrapped: String = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let m = parse_base64(wrapped.as_bytes()).unwrap();
        assert_eq!(m.parts.len(), 2);
        assert_eq!(m.parts[1].text, "<p>Hello</p>");
    }

    #[test]
    fn a_single_part_message_is_one_part() {
        let m = parse(b"To: a@b.example\nSubject: hi\n\nplain body\n").unwrap();
        assert_eq!(m.to, ["a@b.example"]);
        assert_eq!(m.parts.len(), 1);
        assert_eq!(m.parts[0].content_type, "text/plain");
        assert_eq!(m.parts[0].text, "plain body\n");
    }

    #[test]
    fn nested_multiparts_are_flattened() {
        let raw = "To: a@b.example\nContent-Type: multipart/mixed; boundary=out\n\n--out\n\
Content-Type: multipart/alternative; boundary=in\n\n--in\nContent-Type: text/plain\n\nA\n--in\n\
Content-Type: text/html\n\n<b>A</b>\n--in--\n--out\nContent-Type: application/pdf\n\
Content-Transfer-Encoding: base64\n\nJVBERg==\n--out--\n";
        let m = parse(raw.as_bytes()).unwrap();
        let types: Vec<&str> = m.parts.iter().map(|p| p.content_type.as_str()).collect();
        assert_eq!(types, ["text/plain", "text/html", "application/pdf"]);
        assert_eq!(m.parts[0].text, "A");
        assert_eq!(m.parts[2].text, "%PDF");
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        assert_eq!(parse_base64(b"not base64 at all!"), Err(MimeError::Base64));
        assert_eq!(parse_base64(b"  \r\n"), Err(MimeError::Base64));
        assert!(matches!(parse(b"\nbody only"), Err(MimeError::Invalid(_))));
        assert!(matches!(
            parse(b"To: a@b.example\nContent-Type: multipart/mixed\n\n--x\n\nA\n--x--\n"),
            Err(MimeError::Invalid(_))
        ));
        assert!(matches!(
            parse(b"To: a@b.example\nContent-Type: multipart/mixed; boundary=x\n\nno parts\n"),
            Err(MimeError::Invalid(_))
        ));
    }
}
