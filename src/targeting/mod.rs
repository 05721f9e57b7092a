//! Targeting: from a playbook's target sources to a de-duplicated set of users, and the
//! partition of that set into excluded / privileged / hybrid / disabled / automated.
//!
//! This file grows with the engine; today it holds the CSV source.

mod csv_source;

pub use csv_source::{
    BadRow, CsvError, CsvTargets, TargetKey, TargetRef, read_csv_targets, read_targets,
};
