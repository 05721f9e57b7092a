//! Targeting: from a playbook's target sources to a de-duplicated set of users, and the
//! partition of that set into excluded / privileged / hybrid / disabled / automated.
//!
//! - `csv_source`: the breach-CSV reader (hostile input).
//! - `resolve`: every source to directory users, looked up or joined against one listing.
//! - `strategy`: look the targets up or list the tenant, by a stated cost model.
//! - `discover`: role holders and excluded-group members, read from the directory.
//! - `partition`: one bucket per user, with the reason.

mod csv_source;
mod discover;
mod partition;
mod resolve;
mod strategy;

pub use csv_source::{
    BadRow, CsvError, CsvTargets, TargetKey, TargetRef, read_csv_targets, read_targets,
};
pub use discover::{
    RoleGrants, check_step_groups, exclusions, privileges, role_assignable_groups, role_grants,
    targeted_grants, user_principals,
};
pub use partition::{
    Bucket, Candidate, Exclusions, Placement, Privilege, PrivilegeIndex, RoleGrant, place,
};
pub use resolve::{
    CsvSources, ListingError, Missing, Resolution, ResolveError, ResolveOptions, ResolvedUser,
    read_csv_sources, resolve, resolve_then,
};
pub use strategy::{BATCH_SECONDS, CostModel, Method, PAGE_SECONDS, ResolvedBy, Strategy};
