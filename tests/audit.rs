//! Integration tests of the audit module (filled by its issue).
