//! How a report file reaches the disk: owner-only, whole or not at all, never through a
//! symbolic link, and over an existing file only when the caller says so.
//!
//! The content goes to a new temporary file beside the target (created with `O_EXCL`, which
//! never follows a link), is fsync'd, then takes the target's name: `rename` when replacing
//! (a link at the target is replaced, not written through), `link` otherwise (which fails if
//! anything, even a dangling link, is already there).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What writing a report does when its path is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Leave what is there alone and fail.
    Refuse,
    /// Replace it atomically (the run's own folder, or `--overwrite`).
    Replace,
}

/// Why a report file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct ReportError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: std::io::Error,
}

/// Write `path` with what `body` writes, as the module says.
pub(super) fn write_file(
    path: &Path,
    existing: Existing,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), ReportError> {
    let error = |source| ReportError {
        path: path.to_path_buf(),
        source,
    };
    if existing == Existing::Refuse && std::fs::symlink_metadata(path).is_ok() {
        return Err(error(taken()));
    }
    let tmp = temporary_beside(path).ok_or_else(|| {
        error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path",
        ))
    })?;
    let written = (|| {
        let file = crate::files::owner_only()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let mut writer = BufWriter::new(file);
        body(&mut writer)?;
        writer.flush()?;
        writer.get_ref().sync_all()?;
        drop(writer);
        match existing {
            Existing::Replace => std::fs::rename(&tmp, path),
            Existing::Refuse => match std::fs::hard_link(&tmp, path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(taken()),
                other => other,
            },
        }
    })();
    // After a rename the temporary name is gone; after a link or a failure it is removed.
    let _ = std::fs::remove_file(&tmp);
    written.map_err(error)?;
    sync_parent(path).map_err(error)
}

/// The error for a path that is already taken.
fn taken() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "something already exists at this path; it is left alone (pass --overwrite to replace it)",
    )
}

/// A fresh hidden name in the target's folder, so the final rename or link stays on one file
/// system.
fn temporary_beside(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy();
    let tmp = format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple());
    Some(path.with_file_name(tmp))
}

/// fsync the folder holding `path`, so the new name survives a crash (Unix; elsewhere folders
/// cannot be opened for syncing).
fn sync_parent(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, existing: Existing, text: &str) -> Result<(), ReportError> {
        write_file(path, existing, |w| w.write_all(text.as_bytes()))
    }

    #[test]
    fn refuse_leaves_an_existing_file_alone_and_replace_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        write(&path, Existing::Refuse, "one").unwrap();
        let err = write(&path, Existing::Refuse, "two").unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("--overwrite"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one");
        write(&path, Existing::Replace, "three").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn links_are_never_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("r.csv");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(write(&path, Existing::Refuse, "x").is_err());
        write(&path, Existing::Replace, "report").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // A dangling link is refused too (it would create the file it points to).
        let dangling = dir.path().join("d.csv");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(write(&dangling, Existing::Refuse, "x").is_err());
        assert!(!dir.path().join("nowhere").exists());
    }
}
