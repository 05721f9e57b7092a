//! The link function of the chain: plain SHA-256 or keyed HMAC-SHA256, the genesis value, and
//! the HMAC key itself.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

use super::error::AuditError;

/// Shortest accepted HMAC key: 32 bytes, the output size of SHA-256 (RFC 2104 §3 recommends a
/// key at least as long as the hash output).
pub const MIN_KEY_BYTES: usize = 32;

/// Domain-separation prefix of the genesis value (see the module documentation of `audit`).
const GENESIS_PREFIX: &[u8] = b"resetctl-audit-genesis-v1:";

/// Domain-separation input of a key's id.
const KEY_ID_INPUT: &[u8] = b"resetctl-audit-key-id-v1";

/// The HMAC key of a keyed trail. Its bytes never appear in `Debug`, errors or logs.
///
/// Only the prepared HMAC state is kept; the raw key bytes pass through a `SecretSlice` that
/// zeroes them when the key has been absorbed.
#[derive(Clone)]
pub struct Key {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key([redacted], id {})", self.id())
    }
}

impl Key {
    /// A key from raw bytes (at least [`MIN_KEY_BYTES`]).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Key, AuditError> {
        let secret = SecretSlice::from(bytes);
        let len = secret.expose_secret().len();
        if len < MIN_KEY_BYTES {
            return Err(AuditError::Key(format!(
                "the key is {len} bytes long; at least {MIN_KEY_BYTES} are required"
            )));
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret())
            .map_err(|_| AuditError::Key("HMAC-SHA256 refused the key".into()))?;
        Ok(Key { mac })
    }

    /// A key from its text form: hexadecimal, surrounding whitespace ignored (the format of a
    /// key file and of a key environment variable; `openssl rand -hex 32` makes one).
    pub fn from_hex(text: &str) -> Result<Key, AuditError> {
        let bytes = hex::decode(text.trim()).map_err(|_| {
            AuditError::Key(
                "the key must be written in hexadecimal (for example `openssl rand -hex 32`)"
                    .into(),
            )
        })?;
        Key::from_bytes(bytes)
    }

    /// Read a key file (hexadecimal text). The error names the file, never its content.
    pub fn from_file(path: &Path) -> Result<Key, AuditError> {
        let text = crate::files::read_to_string_bounded(path, crate::files::MAX_SECRET_BYTES)
            .map_err(AuditError::io("read key file", path))?;
        Key::from_hex(&text).map_err(|e| match e {
            AuditError::Key(reason) => AuditError::Key(format!("{}: {reason}", path.display())),
            other => other,
        })
    }

    /// Make a new key of [`MIN_KEY_BYTES`] random bytes from the operating system and write it
    /// to `path` in hexadecimal, in a new file only its owner can read (mode 0600 on Unix); an
    /// existing file is never overwritten. The key bytes live only in zeroed-on-drop buffers.
    pub fn generate_file(path: &Path) -> Result<Key, AuditError> {
        use rand::TryRngCore;
        use secrecy::ExposeSecretMut;
        use std::io::Write;

        let mut bytes = SecretSlice::from(vec![0u8; MIN_KEY_BYTES]);
        rand::rngs::OsRng
            .try_fill_bytes(bytes.expose_secret_mut())
            .map_err(|e| AuditError::Key(format!("the system random generator failed: {e}")))?;
        let text = secrecy::SecretString::from(hex::encode(bytes.expose_secret()));
        let mut file = crate::files::owner_only()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(AuditError::io("create key file", path))?;
        file.write_all(text.expose_secret().as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(AuditError::io("write key file", path))?;
        Key::from_bytes(bytes.expose_secret().to_vec())
    }

    /// A short public id of the key (first 8 bytes of an HMAC of a fixed label), recorded in the
    /// chain head so that verifying with the wrong key says "wrong key", not "tampered".
    pub fn id(&self) -> String {
        let mut mac = self.mac();
        mac.update(KEY_ID_INPUT);
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

/// Which link function a trail uses, as written in each record's `alg` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// Plain SHA-256: detects edits by anyone who cannot also rewrite every later record and
    /// the head file.
    Sha256,
    /// HMAC-SHA256 with the configured key: whoever can write the files but lacks the key
    /// cannot recompute the chain.
    HmacSha256,
}

impl Alg {
    /// The name written in records and in the head.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Sha256 => "sha256",
            Alg::HmacSha256 => "hmac-sha256",
        }
    }

    /// Parse the name written in records.
    pub fn parse(name: &str) -> Option<Alg> {
        match name {
            "sha256" => Some(Alg::Sha256),
            "hmac-sha256" => Some(Alg::HmacSha256),
            _ => None,
        }
    }
}

/// Computes link hashes: SHA-256, or HMAC-SHA256 when a key is held.
#[derive(Debug, Clone)]
pub struct Linker {
    key: Option<Key>,
}

impl Linker {
    /// A linker for a plain (`None`) or keyed trail.
    pub fn new(key: Option<Key>) -> Linker {
        Linker { key }
    }

    /// The algorithm this linker computes.
    pub fn alg(&self) -> Alg {
        if self.key.is_some() {
            Alg::HmacSha256
        } else {
            Alg::Sha256
        }
    }

    /// Id of the key, if keyed.
    pub fn key_id(&self) -> Option<String> {
        self.key.as_ref().map(Key::id)
    }

    /// Lowercase hex of SHA-256(bytes) or HMAC-SHA256(key, bytes).
    pub fn hash(&self, bytes: &[u8]) -> String {
        match &self.key {
            None => hex::encode(Sha256::digest(bytes)),
            Some(key) => {
                let mut mac = key.mac();
                mac.update(bytes);
                hex::encode(mac.finalize().into_bytes())
            }
        }
    }

    /// The `prev` of a trail's first record: the link hash of
    /// `"resetctl-audit-genesis-v1:" + trail id` (hyphenated lowercase UUID). Bound to the trail
    /// id so a first record cannot be moved to another trail.
    pub fn genesis(&self, trail: &uuid::Uuid) -> String {
        let mut input = GENESIS_PREFIX.to_vec();
        input.extend_from_slice(trail.hyphenated().to_string().as_bytes());
        self.hash(&input)
    }

    /// Compare two hex hashes in constant time (they are public, but HMAC tags deserve it).
    pub fn same(a: &str, b: &str) -> bool {
        a.len() == b.len()
            && a.bytes()
                .zip(b.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from_bytes(vec![byte; 32]).unwrap()
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        // FIPS 180-2 test vector "abc".
        assert_eq!(
            Linker::new(None).hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_matches_rfc4231_case_6() {
        // RFC 4231 §4.7: 131-byte key of 0xaa (long enough for our 32-byte minimum).
        let k = Key::from_bytes(vec![0xaa; 131]).unwrap();
        let tag =
            Linker::new(Some(k)).hash(b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(
            tag,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn genesis_differs_per_trail_and_per_key() {
        let a = uuid::Uuid::from_u128(1);
        let b = uuid::Uuid::from_u128(2);
        let plain = Linker::new(None);
        assert_ne!(plain.genesis(&a), plain.genesis(&b));
        assert_ne!(Linker::new(Some(key(1))).genesis(&a), plain.genesis(&a));
        assert_ne!(
            Linker::new(Some(key(1))).genesis(&a),
            Linker::new(Some(key(2))).genesis(&a)
        );
    }

    #[test]
    fn keys_are_checked_and_never_shown() {
        assert!(matches!(
            Key::from_bytes(vec![0; 31]),
            Err(AuditError::Key(_))
        ));
        assert!(matches!(Key::from_hex("zz"), Err(AuditError::Key(_))));
        let k = Key::from_hex(&format!("{}\n", "ab".repeat(32))).unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert_eq!(k.id().len(), 16);
        assert_ne!(k.id(), key(1).id());
    }

    #[test]
    fn generated_key_files_are_new_owner_only_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let key = Key::generate_file(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), MIN_KEY_BYTES * 2 + 1, "hex and a newline");
        assert_eq!(Key::from_file(&path).unwrap().id(), key.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Never overwritten; two keys are never the same.
        assert!(Key::generate_file(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let other = Key::generate_file(&dir.path().join("b.key")).unwrap();
        assert_ne!(other.id(), key.id());
    }

    #[test]
    fn same_compares_exactly() {
        assert!(Linker::same("abc", "abc"));
        assert!(!Linker::same("abc", "abd"));
        assert!(!Linker::same("abc", "ab"));
    }
}
