//! The installed headless Chromium, shared by the tests that render in a real browser (the
//! approval pages, the tabletop report).

use std::path::PathBuf;

/// `chromium` on `PATH`; without it the browser test is skipped with a reason, except under
/// CI (`CI` set), where `.ci/run` installs it and its absence is a failure.
pub fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !ci,
            "CI: chromium is not on PATH (.ci/run installs Debian's chromium)"
        );
        eprintln!("skipped: chromium is not on PATH (apt-get install chromium to run this test)");
    }
    found
}

/// Width and height of a PNG, from its IHDR chunk; None when `bytes` is not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some((be(16), be(20)))
}
