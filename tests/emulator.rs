//! Integration tests of the emulator module (filled by its issue).
