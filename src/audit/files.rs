//! The files of one trail: the live file `<trail>` and its rotated predecessors
//! `<trail>.1`, `<trail>.2`, ... (1 is the oldest). Rotation never renumbers an existing file.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::AuditError;

/// Rotation number of `path` relative to the trail's live file name `base`
/// (`audit.jsonl.3` → `Some(3)`), `None` for any other name.
fn rotation_number(base: &str, name: &str) -> Option<u64> {
    let digits = name.strip_prefix(base)?.strip_prefix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// The trail's files in chain order: rotated files by number, then the live file if it
/// exists. Empty when nothing exists yet.
pub fn discover(trail: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let (dir, base) = split(trail)?;
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuditError::io("list", &dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(AuditError::io("list", &dir))?;
        let name = entry.file_name();
        if let Some(n) = name.to_str().and_then(|n| rotation_number(&base, n)) {
            // Named after the trail path as given (`audit.jsonl.3`, not `./audit.jsonl.3`).
            rotated.push((n, rotated_path(trail, n)));
        }
    }
    rotated.sort();
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if trail.exists() {
        files.push(trail.to_owned());
    }
    Ok(files)
}

/// Highest rotation number in use for `trail` (0 when none).
pub fn last_rotation(trail: &Path) -> Result<u64, AuditError> {
    let (_, base) = split(trail)?;
    Ok(discover(trail)?
        .iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()
                .and_then(|n| rotation_number(&base, n))
        })
        .max()
        .unwrap_or(0))
}

/// Path of rotated file number `n` of `trail`.
pub fn rotated_path(trail: &Path, n: u64) -> PathBuf {
    let mut name = trail.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Put files given on a command line into chain order: each file sorts by (the name without a
/// `.N` rotation suffix, N), a live file (no suffix) after its rotated files. A shell glob gives
/// `audit.jsonl audit.jsonl.1 audit.jsonl.10 audit.jsonl.2`; the chain order is
/// `audit.jsonl.1 audit.jsonl.2 audit.jsonl.10 audit.jsonl`.
pub fn chain_order(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut keyed: Vec<((String, u64), PathBuf)> = files
        .iter()
        .map(|p| {
            let key =
                numeric_suffix(p).unwrap_or_else(|| (p.to_string_lossy().into_owned(), u64::MAX));
            (key, p.clone())
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, p)| p).collect()
}

/// `("dir/audit.jsonl", 3)` for `dir/audit.jsonl.3`.
fn numeric_suffix(path: &Path) -> Option<(String, u64)> {
    let text = path.to_str()?;
    let (stem, digits) = text.rsplit_once('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.to_owned(), digits.parse().ok()?))
}

/// Whether `path` is a rotated file of some trail (its name ends in `.N`).
pub fn is_rotated(path: &Path) -> bool {
    numeric_suffix(path).is_some()
}

/// The directory and file name of a trail path.
fn split(trail: &Path) -> Result<(PathBuf, String), AuditError> {
    let base = trail
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            AuditError::Config(format!(
                "audit trail path {} has no UTF-8 file name",
                trail.display()
            ))
        })?
        .to_owned();
    let dir = match trail.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((dir, base))
}

/// fsync the directory holding `path`, so a rename or a new file survives a crash.
/// (On non-Unix systems directories cannot be opened for syncing; nothing to do there.)
pub fn sync_dir(path: &Path) -> Result<(), AuditError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let handle = fs::File::open(&dir).map_err(AuditError::io("open directory", &dir))?;
        handle
            .sync_all()
            .map_err(AuditError::io("fsync directory", &dir))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn rotation_numbers() {
        assert_eq!(rotation_number("a.jsonl", "a.jsonl.12"), Some(12));
        assert_eq!(rotation_number("a.jsonl", "a.jsonl.head"), None);
        assert_eq!(rotation_number("a.jsonl", "a.jsonl.01"), None);
        assert_eq!(rotation_number("a.jsonl", "a.jsonl"), None);
        assert_eq!(rotation_number("a.jsonl", "b.jsonl.1"), None);
    }

    #[test]
    fn glob_order_becomes_chain_order() {
        let given = [p("t/a"), p("t/a.1"), p("t/a.10"), p("t/a.2")];
        assert_eq!(
            chain_order(&given),
            [p("t/a.1"), p("t/a.2"), p("t/a.10"), p("t/a")]
        );
        let rotated_only = [p("a.10"), p("a.2"), p("a.1")];
        assert_eq!(chain_order(&rotated_only), [p("a.1"), p("a.2"), p("a.10")]);
        let two = [p("y.jsonl"), p("x.jsonl.1"), p("x.jsonl")];
        assert_eq!(
            chain_order(&two),
            [p("x.jsonl.1"), p("x.jsonl"), p("y.jsonl")]
        );
    }

    #[test]
    fn discover_lists_rotated_files_then_the_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join("audit.jsonl");
        assert!(discover(&trail).unwrap().is_empty());
        for name in [
            "audit.jsonl",
            "audit.jsonl.2",
            "audit.jsonl.10",
            "audit.jsonl.1",
            "audit.jsonl.head",
            "other.1",
        ] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        let found: Vec<String> = discover(&trail)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            found,
            [
                "audit.jsonl.1",
                "audit.jsonl.2",
                "audit.jsonl.10",
                "audit.jsonl"
            ]
        );
        assert_eq!(last_rotation(&trail).unwrap(), 10);
    }
}
