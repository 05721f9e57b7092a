//! The readiness report as CSV files in a folder, for the help desk and the identity team:
//! `users.csv` (one row per user with a finding), `privileged.csv` (one row per role held),
//! `departments.csv` (counts). Written owner-only and atomically, cells neutralised.

use std::path::{Path, PathBuf};

use super::{Counts, Readiness};
use crate::report::{Existing, ReportError, write_rows};

/// Why the CSV files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The folder could not be created.
    #[error("cannot create {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error(transparent)]
    File(#[from] ReportError),
}

/// The columns of `users.csv`.
pub const USER_COLUMNS: [&str; 11] = [
    "user_id",
    "upn",
    "display_name",
    "department",
    "not_sspr_capable",
    "no_mobile",
    "unusable_mobile",
    "no_manager",
    "no_authenticator",
    "sms_only",
    "methods_registered",
];

/// The columns of `privileged.csv`.
pub const PRIVILEGED_COLUMNS: [&str; 8] = [
    "user_id",
    "upn",
    "display_name",
    "role",
    "assignment",
    "via_group",
    "sspr_capable",
    "has_authenticator",
];

/// The columns of `departments.csv`.
pub const DEPARTMENT_COLUMNS: [&str; 8] = [
    "department",
    "users",
    "not_sspr_capable",
    "no_mobile",
    "unusable_mobile",
    "no_manager",
    "no_authenticator",
    "sms_only",
];

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

fn counts_row(name: &str, c: &Counts) -> Vec<String> {
    vec![
        name.to_owned(),
        c.users.to_string(),
        c.not_sspr_capable.to_string(),
        c.no_mobile.to_string(),
        c.unusable_mobile.to_string(),
        c.no_manager.to_string(),
        c.no_authenticator.to_string(),
        c.sms_only.to_string(),
    ]
}

/// Write the three files into `dir` (created owner-only when missing); returns their paths.
pub fn write_csv(
    report: &Readiness,
    dir: &Path,
    existing: Existing,
) -> Result<Vec<PathBuf>, ExportError> {
    if !dir.is_dir() {
        crate::files::create_dir_owner_only(dir).map_err(|source| ExportError::Folder {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let users = dir.join("users.csv");
    write_rows(
        &users,
        existing,
        &USER_COLUMNS,
        report.users.iter().map(|u| {
            let f = &u.findings;
            vec![
                u.id.clone(),
                u.upn.clone(),
                u.display_name.clone(),
                u.department.clone(),
                yes(f.not_sspr_capable),
                yes(f.no_mobile),
                yes(f.unusable_mobile),
                yes(f.no_manager),
                yes(f.no_authenticator),
                yes(f.sms_only),
                u.methods.join(" "),
            ]
        }),
    )?;
    let privileged = dir.join("privileged.csv");
    write_rows(
        &privileged,
        existing,
        &PRIVILEGED_COLUMNS,
        report.privileged.iter().flat_map(|p| {
            p.holdings.iter().map(move |h| {
                vec![
                    p.id.clone(),
                    p.upn.clone(),
                    p.display_name.clone(),
                    h.role.clone(),
                    h.assignment.to_owned(),
                    h.via_group.clone().unwrap_or_default(),
                    yes(p.sspr_capable),
                    yes(p.has_authenticator),
                ]
            })
        }),
    )?;
    let departments = dir.join("departments.csv");
    write_rows(
        &departments,
        existing,
        &DEPARTMENT_COLUMNS,
        report
            .departments
            .iter()
            .map(|(name, c)| counts_row(name, c))
            .chain(std::iter::once(counts_row("(all)", &report.totals))),
    )?;
    Ok(vec![users, privileged, departments])
}
