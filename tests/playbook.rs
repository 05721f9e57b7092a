//! Integration tests of the playbook module (filled by its issue).
