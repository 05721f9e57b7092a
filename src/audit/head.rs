//! The chain head file beside the trail (`<trail>.head`): the last record's seq and hash, so
//! that dropping records from the end of the trail is detected.
//!
//! One JSON line, keys in this order, sealed like a record:
//! `{"v":1,"trail":"<uuid>","alg":"sha256","kid":null,"seq":S,"hash":"<hex>","file":"<name>","seal":"<hex>"}`
//! where `seal` is the link hash (SHA-256, or HMAC-SHA256 with the trail's key) of the line
//! without its `,"seal":"…"` suffix, closed by `}`. `kid` is the key id of a keyed trail.
//! Written after every fsync'd batch through a temporary file, fsync and rename, so a reader
//! sees either the old head or the new one, never a torn one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chain::{Alg, Linker};
use super::error::AuditError;

const SEAL_SUFFIX_START: &str = ",\"seal\":\"";

/// The chain head: where the trail ended when it was last written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// Format version (1).
    pub v: u32,
    /// Trail id.
    pub trail: uuid::Uuid,
    /// Link algorithm of the trail.
    pub alg: String,
    /// Key id of a keyed trail.
    pub kid: Option<String>,
    /// Sequence number of the last record written.
    pub seq: u64,
    /// Hash of the last record written.
    pub hash: String,
    /// Name of the file that held the last record when the head was written (informational:
    /// a crash between a rotation and the next head write leaves it one file behind).
    pub file: String,
}

/// Path of the head file of the trail at `trail`.
pub fn head_path(trail: &Path) -> PathBuf {
    let mut name = trail.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

impl Head {
    /// Serialize and seal.
    fn to_line(&self, linker: &Linker) -> Result<String, AuditError> {
        let body = serde_json::to_string(self)
            .map_err(|e| AuditError::Config(format!("cannot serialize the chain head: {e}")))?;
        let seal = linker.hash(body.as_bytes());
        let mut line = body;
        line.pop();
        line.push_str(SEAL_SUFFIX_START);
        line.push_str(&seal);
        line.push_str("\"}\n");
        Ok(line)
    }

    /// Write atomically: temporary file, fsync, rename over the head, fsync the directory.
    pub fn store(&self, path: &Path, linker: &Linker) -> Result<(), AuditError> {
        let line = self.to_line(linker)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = crate::files::owner_only()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(AuditError::io("create", &tmp))?;
        file.write_all(line.as_bytes())
            .map_err(AuditError::io("write", &tmp))?;
        file.sync_all().map_err(AuditError::io("fsync", &tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(AuditError::io("rename", path))?;
        super::files::sync_dir(path)
    }

    /// Read and check the head at `path`; `Ok(None)` when there is no head file.
    ///
    /// The seal is checked with `linker` when the head's algorithm matches it. A keyed head read
    /// without a key cannot be checked and yields [`AuditError::KeyRequired`]; a plain head read
    /// with a key yields [`AuditError::NotKeyed`]; a key with another id yields
    /// [`AuditError::WrongKey`].
    pub fn load(path: &Path, linker: &Linker) -> Result<Option<Head>, AuditError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AuditError::io("read", path)(e)),
        };
        let invalid = |reason: String| AuditError::HeadInvalid {
            path: path.to_owned(),
            reason,
        };
        let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let suffix_len = SEAL_SUFFIX_START.len() + 64 + 2;
        if line.len() < suffix_len + 2 {
            return Err(invalid("too short".into()));
        }
        let (body, suffix) = line.split_at(line.len() - suffix_len);
        let seal = suffix
            .strip_prefix(SEAL_SUFFIX_START.as_bytes())
            .and_then(|s| s.strip_suffix(b"\"}"))
            .and_then(|s| std::str::from_utf8(s).ok())
            .ok_or_else(|| invalid("it does not end with its seal".into()))?;
        let mut canonical = body.to_vec();
        canonical.push(b'}');
        let head: Head = serde_json::from_slice(&canonical)
            .map_err(|e| invalid(format!("not a valid chain head ({e})")))?;
        if head.v != 1 {
            return Err(invalid(format!("unknown format version {}", head.v)));
        }
        match (Alg::parse(&head.alg), linker.alg()) {
            (None, _) => return Err(invalid(format!("unknown algorithm {:?}", head.alg))),
            (Some(Alg::HmacSha256), Alg::Sha256) => {
                return Err(AuditError::KeyRequired {
                    file: path.to_owned(),
                    line: 1,
                });
            }
            (Some(Alg::Sha256), Alg::HmacSha256) => {
                return Err(AuditError::NotKeyed {
                    file: path.to_owned(),
                    line: 1,
                    alg: head.alg,
                });
            }
            _ => {}
        }
        if let (Some(given), Some(expected)) = (linker.key_id(), head.kid.as_ref())
            && &given != expected
        {
            return Err(AuditError::WrongKey {
                head: path.to_owned(),
                given,
                expected: expected.clone(),
            });
        }
        if !Linker::same(&linker.hash(&canonical), seal) {
            return Err(invalid(
                "its seal does not match its content (edited or written with another key)".into(),
            ));
        }
        Ok(Some(head))
    }
}

#[cfg(test)]
mod tests {
    use super::super::chain::Key;
    use super::*;

    fn head(alg: Alg, kid: Option<String>) -> Head {
        Head {
            v: 1,
            trail: uuid::Uuid::from_u128(3),
            alg: alg.as_str().into(),
            kid,
            seq: 42,
            hash: "ab".repeat(32),
            file: "audit.jsonl".into(),
        }
    }

    #[test]
    fn round_trip_and_edits_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.head");
        let linker = Linker::new(None);
        assert_eq!(Head::load(&path, &linker).unwrap(), None);
        let h = head(Alg::Sha256, None);
        h.store(&path, &linker).unwrap();
        assert_eq!(Head::load(&path, &linker).unwrap(), Some(h));
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("\"seq\":42", "\"seq\":41")).unwrap();
        assert!(matches!(
            Head::load(&path, &linker),
            Err(AuditError::HeadInvalid { .. })
        ));
    }

    #[test]
    fn keyed_heads_need_the_right_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.head");
        let key = Key::from_bytes(vec![5; 32]).unwrap();
        let keyed = Linker::new(Some(key.clone()));
        head(Alg::HmacSha256, Some(key.id()))
            .store(&path, &keyed)
            .unwrap();
        assert!(Head::load(&path, &keyed).unwrap().is_some());
        assert!(matches!(
            Head::load(&path, &Linker::new(None)),
            Err(AuditError::KeyRequired { .. })
        ));
        let other = Linker::new(Some(Key::from_bytes(vec![6; 32]).unwrap()));
        assert!(matches!(
            Head::load(&path, &other),
            Err(AuditError::WrongKey { .. })
        ));
    }
}
