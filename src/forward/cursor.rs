//! [`Cursor`]: how far a sink has received the trail, kept in a small file per sink
//! (`<data dir>/forward/<sink>.cursor`), replaced atomically after each accepted batch. So a
//! SIEM outage loses nothing (the cursor waits) and a restart sends nothing twice (it resumes
//! after the last accepted record). A cursor names the trail it belongs to: a new trail (a
//! recovered or replaced one) starts from its first record, and says so.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The last record a sink accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The trail's id.
    pub trail: uuid::Uuid,
    /// The record's sequence number.
    pub seq: u64,
    /// The record's hash (a cursor is checked against the trail, not trusted).
    pub hash: String,
    /// When it was written (RFC 3339).
    pub at: String,
}

/// Where the cursor of sink `name` lives under `dir`.
pub fn cursor_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.cursor"))
}

/// The stored cursor, or `None` before the first batch.
pub fn load(path: &Path) -> std::io::Result<Option<Cursor>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replace the stored cursor: write a temporary file, sync it, rename it over the old one,
/// sync the directory. A crash leaves the old cursor or the new one, never a torn one.
pub fn store(path: &Path, cursor: &Cursor) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("cursor.tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(cursor).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Ok(d) = fs::File::open(dir) {
        d.sync_all().ok();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_a_restart_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = cursor_path(dir.path(), "siem");
        assert_eq!(load(&path).unwrap(), None);
        let mut c = Cursor {
            trail: uuid::Uuid::nil(),
            seq: 7,
            hash: "ab".into(),
            at: "2026-11-26T00:00:00Z".into(),
        };
        store(&path, &c).unwrap();
        c.seq = 9;
        store(&path, &c).unwrap();
        assert_eq!(load(&path).unwrap(), Some(c));
        assert!(!path.with_extension("cursor.tmp").exists());
    }
}
