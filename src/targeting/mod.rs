//! Targeting: from a playbook's target sources to a de-duplicated set of users, and the
//! partition of that set into excluded / privileged / hybrid / disabled / automated.
//!
//! - `csv_source`: the breach-CSV reader (hostile input).
//! - `resolve`: every source to directory users, joined against one listing of the tenant.
//! - `discover`: role holders and excluded-group members, read from the directory.
//! - `partition`: one bucket per user, with the reason.

mod csv_source;
mod discover;
mod partition;
mod resolve;

pub use csv_source::{
    BadRow, CsvError, CsvTargets, TargetKey, TargetRef, read_csv_targets, read_targets,
};
pub use discover::{RoleGrants, check_step_groups, exclusions, privileges, role_grants};
pub use partition::{
    Bucket, Candidate, Exclusions, Placement, Privilege, PrivilegeIndex, RoleGrant, place,
};
pub use resolve::{
    ListingError, Missing, Resolution, ResolveError, ResolveOptions, ResolvedUser, resolve,
};
