//! `resetctl readiness`: the SSPR audit and the data-hygiene report in one, read-only.
//!
//! Before an incident, find the users a mass reset would strand: who cannot reset their own
//! password (not SSPR-capable), who has no mobile number an SMS can reach (none, or one that
//! does not parse), no manager to approve or receive a temporary password, no authenticator
//! app, or SMS as the only method; and the privileged accounts (active, PIM-eligible, through
//! groups), which are always handled by hand. Counts per department show where to start.
//!
//! One listing of the users (with their managers), one listing of the registration report,
//! the role grants: a few requests per thousand users, nothing written.

mod export;

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::TryStreamExt;
use serde::Serialize;

pub use export::{ExportError, write_csv};

use crate::directory::{Directory, DirectoryError, Registration, UserQuery};
use crate::targeting::{self, ResolveError};

/// Why the readiness report could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReadinessError {
    /// A directory read failed.
    #[error("reading {what} from the directory: {source}")]
    Directory {
        /// What was being read.
        what: &'static str,
        /// The directory's error.
        #[source]
        source: DirectoryError,
    },
    /// Reading role grants or group members failed.
    #[error(transparent)]
    Roles(#[from] ResolveError),
    /// The built-in definition of "privileged" did not validate (a bug, caught by a test).
    #[error("the built-in privileged-role definition did not validate")]
    Inventory,
}

/// The findings about one user (true: a problem).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    /// Cannot reset their own password (not SSPR-capable, or not in the registration report).
    pub not_sspr_capable: bool,
    /// No `mobilePhone` on record.
    pub no_mobile: bool,
    /// A `mobilePhone` no text message can be addressed to.
    pub unusable_mobile: bool,
    /// No manager.
    pub no_manager: bool,
    /// No Microsoft Authenticator app registered.
    pub no_authenticator: bool,
    /// A mobile phone is the only registered method.
    pub sms_only: bool,
}

impl Findings {
    /// Whether any finding holds.
    pub fn any(&self) -> bool {
        self.not_sspr_capable
            || self.no_mobile
            || self.unusable_mobile
            || self.no_manager
            || self.no_authenticator
            || self.sms_only
    }
}

/// One user with findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserFinding {
    /// Object id.
    pub id: String,
    /// `userPrincipalName`.
    pub upn: String,
    /// `displayName`.
    pub display_name: String,
    /// `department` (empty when unset).
    pub department: String,
    /// `methodsRegistered` from the report.
    pub methods: Vec<String>,
    /// What is wrong.
    pub findings: Findings,
}

/// Counts of users per finding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Enabled users looked at.
    pub users: u64,
    /// Not SSPR-capable.
    pub not_sspr_capable: u64,
    /// No `mobilePhone`.
    pub no_mobile: u64,
    /// A `mobilePhone` that does not parse.
    pub unusable_mobile: u64,
    /// No manager.
    pub no_manager: u64,
    /// No authenticator app.
    pub no_authenticator: u64,
    /// SMS is the only method.
    pub sms_only: u64,
}

impl Counts {
    fn add(&mut self, f: &Findings) {
        self.users += 1;
        self.not_sspr_capable += u64::from(f.not_sspr_capable);
        self.no_mobile += u64::from(f.no_mobile);
        self.unusable_mobile += u64::from(f.unusable_mobile);
        self.no_manager += u64::from(f.no_manager);
        self.no_authenticator += u64::from(f.no_authenticator);
        self.sms_only += u64::from(f.sms_only);
    }
}

/// One role (or role-assignable group membership) of a privileged account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holding {
    /// The role's name (or the role-assignable group's id).
    pub role: String,
    /// `active` or `eligible` (PIM).
    pub assignment: &'static str,
    /// The group the role is held through, if any.
    pub via_group: Option<String>,
}

/// A privileged account, for manual handling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrivilegedAccount {
    /// Object id.
    pub id: String,
    /// `userPrincipalName`.
    pub upn: String,
    /// `displayName`.
    pub display_name: String,
    /// Every role held.
    pub holdings: Vec<Holding>,
    /// Can reset their own password (administrators need two methods).
    pub sspr_capable: bool,
    /// Has the authenticator app.
    pub has_authenticator: bool,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// Users the directory listed.
    pub tenant_users: u64,
    /// Disabled accounts, left out of the findings (they cannot sign in or recover).
    pub disabled: u64,
    /// Totals over the enabled users.
    pub totals: Counts,
    /// Per department (`""`: no department), by name.
    pub departments: BTreeMap<String, Counts>,
    /// Users with at least one finding, in listing order.
    pub users: Vec<UserFinding>,
    /// Privileged accounts (critical roles active or eligible, directly or through groups,
    /// and members of role-assignable groups).
    pub privileged: Vec<PrivilegedAccount>,
}

/// The playbook whose `privileged` section defines what privileged means here: critical
/// roles, PIM eligibility included (the defaults every shipped playbook uses).
const INVENTORY_PLAYBOOK: &str =
    "name: readiness\ntargets: [all_users: {}]\nsteps:\n  - revoke_sessions\n";

/// Build the report from `directory`; reads only.
pub async fn build(directory: &dyn Directory) -> Result<Readiness, ReadinessError> {
    let listed: Vec<(crate::directory::User, Option<String>)> = directory
        .list_users_with_manager(UserQuery::default())
        .try_collect()
        .await
        .map_err(|source| ReadinessError::Directory {
            what: "users and their managers",
            source,
        })?;
    let registrations: HashMap<String, Registration> = directory
        .registration_details(None)
        .map_ok(|r| (r.id.to_ascii_lowercase(), r))
        .try_collect()
        .await
        .map_err(|source| ReadinessError::Directory {
            what: "registration details",
            source,
        })?;
    let privileged = inventory(directory, &listed, &registrations).await?;

    let mut report = Readiness {
        tenant_users: listed.len() as u64,
        disabled: 0,
        totals: Counts::default(),
        departments: BTreeMap::new(),
        users: Vec::new(),
        privileged,
    };
    for (user, manager) in listed {
        if user.account_enabled == Some(false) {
            report.disabled += 1;
            continue;
        }
        let registration = registrations.get(&user.id.to_ascii_lowercase());
        let mobile = user
            .mobile_phone
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty());
        let findings = Findings {
            not_sspr_capable: !registration.is_some_and(|r| r.sspr_capable),
            no_mobile: mobile.is_none(),
            unusable_mobile: mobile.is_some_and(|m| {
                !crate::comms::recipient::textable(m, user.usage_location.as_deref())
            }),
            no_manager: manager.is_none(),
            no_authenticator: !registration.is_some_and(Registration::has_authenticator),
            sms_only: registration.is_some_and(Registration::sms_only),
        };
        let department = user.department.clone().unwrap_or_default();
        report.totals.add(&findings);
        report
            .departments
            .entry(department.clone())
            .or_default()
            .add(&findings);
        if findings.any() {
            report.users.push(UserFinding {
                id: user.id,
                upn: user.upn,
                display_name: user.display_name.unwrap_or_default(),
                department,
                methods: registration.map(|r| r.methods.clone()).unwrap_or_default(),
                findings,
            });
        }
    }
    Ok(report)
}

/// The privileged accounts, as planning recognises them.
async fn inventory(
    directory: &dyn Directory,
    listed: &[(crate::directory::User, Option<String>)],
    registrations: &HashMap<String, Registration>,
) -> Result<Vec<PrivilegedAccount>, ReadinessError> {
    let playbook = crate::playbook::load_str("readiness", INVENTORY_PLAYBOOK)
        .map_err(|_| ReadinessError::Inventory)?
        .playbook;
    let user_ids: HashSet<String> = listed
        .iter()
        .map(|(u, _)| u.id.to_ascii_lowercase())
        .collect();
    let grants = targeting::role_grants(directory, &playbook).await?;
    let index =
        targeting::privileges(directory, &playbook, grants, &|id| user_ids.contains(id)).await?;
    let mut out = Vec::new();
    for (user, _) in listed {
        let held = index.privileges(&user.id);
        if held.is_empty() {
            continue;
        }
        let registration = registrations.get(&user.id.to_ascii_lowercase());
        out.push(PrivilegedAccount {
            id: user.id.clone(),
            upn: user.upn.clone(),
            display_name: user.display_name.clone().unwrap_or_default(),
            holdings: held
                .iter()
                .map(|p| Holding {
                    role: p.role_name.clone(),
                    assignment: if p.eligible { "eligible" } else { "active" },
                    via_group: p.via_group.clone(),
                })
                .collect(),
            sspr_capable: registration.is_some_and(|r| r.sspr_capable),
            has_authenticator: registration.is_some_and(Registration::has_authenticator),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
