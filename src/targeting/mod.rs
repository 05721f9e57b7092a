//! Targeting: from a playbook's target sources to a de-duplicated set of users, and the
//! partition of that set into excluded / privileged / hybrid / disabled / automated.

mod csv_source;
mod partition;
pub mod roles;

pub use csv_source::{
    BadRow, CsvError, CsvTargets, TargetKey, TargetRef, read_csv_targets, read_targets,
};
pub use partition::{
    Bucket, Candidate, Exclusions, Placement, Privilege, PrivilegeIndex, RoleGrant, place,
};
