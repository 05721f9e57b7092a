//! Files an operator hands resetctl, and files it keeps for them, handled defensively.
//!
//! Reads stop at a size limit while reading, so a path to `/dev/zero` or to a huge file is
//! refused instead of exhausting memory. Files and folders that hold run data (the run store,
//! the run folders and their reports) are created owner-only: they name the users of an
//! incident and sometimes hold secrets' metadata.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Read;
use std::path::Path;

/// Largest `resetctl.yaml` read: a configuration is a page of YAML.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Largest emulator tenant file read: a hundred thousand described users fit.
pub const MAX_TENANT_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest client secret file read: a secret is a line of text.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;
/// Largest certificate or private key PEM file read: a certificate chain and a 4096-bit key
/// are a few kilobytes.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The whole file at `path`, reading no more than `limit` bytes (and one more to tell that
/// the file is larger, which is an error of kind `FileTooLarge`).
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {} KiB: refusing to read it", limit / 1024),
        ));
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text (invalid UTF-8 is an error of kind `InvalidData`).
pub fn read_to_string_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Options that create a file readable and writable by its owner only (0600 on Unix).
pub fn owner_only() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Create `dir` and its missing parents owner-only (0700 on Unix). Folders that already
/// exist are left as they are.
pub fn create_dir_owner_only(dir: &Path) -> std::io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Whether users other than the owner and group may read the file at `path` (Unix mode bit
/// 0o004). Always `false` where modes do not exist or the file cannot be examined.
pub fn is_world_readable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, vec![b'a'; 2048]).unwrap();
        assert_eq!(read_bounded(&file, 2048).unwrap().len(), 2048);
        let err = read_bounded(&file, 2047).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
        std::fs::write(&file, b"\xff").unwrap();
        assert!(read_to_string_bounded(&file, 10).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn endless_files_are_refused_not_exhausted() {
        let err = read_bounded(Path::new("/dev/zero"), 4096).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
    }

    #[cfg(unix)]
    #[test]
    fn created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_owner_only(&nested).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        let file = nested.join("f");
        owner_only()
            .write(true)
            .create_new(true)
            .open(&file)
            .unwrap();
        assert_eq!(mode(&file), 0o600);
        assert!(!is_world_readable(&file));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(is_world_readable(&file));
    }
}
