//! The partition: every resolved user lands in exactly one bucket, with a reason.
//!
//! Invariant: break-glass accounts, the runner's own accounts and anything
//! the playbook excludes are *excluded* (never written to); holders of a critical role —
//! active, PIM-eligible when the playbook says so, directly or through a group — and members
//! of role-assignable groups are *privileged* and go to the manual queue, never the automated
//! path; users synced from on-premises are *hybrid* (a cloud password write would be
//! rejected) and get their own queue. Precedence is in that order, so a synced Global
//! Administrator is privileged, and a break-glass Global Administrator is excluded.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::playbook::pattern::UpnPattern;
use crate::playbook::roles::role_name;

/// Which queue a user ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// Never touched: break-glass, runner accounts, playbook exclusions.
    Excluded,
    /// Holds a critical role: manual handling only.
    Privileged,
    /// Synced from on-premises AD: cloud password writes fail; handled on-premises.
    Hybrid,
    /// Account disabled: reported; the playbook decides whether sessions are still revoked.
    Disabled,
    /// Goes through the automated steps.
    Automated,
    /// An earlier run on this tenant already wrote to the user within the playbook's
    /// `guards.remediated_within`: not written again unless a second wave is asked for.
    Remediated,
}

impl Bucket {
    /// Every bucket, in the order plans list them.
    pub const ALL: [Bucket; 6] = [
        Bucket::Automated,
        Bucket::Privileged,
        Bucket::Hybrid,
        Bucket::Disabled,
        Bucket::Remediated,
        Bucket::Excluded,
    ];

    /// The name used in CSVs and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Excluded => "excluded",
            Bucket::Privileged => "privileged",
            Bucket::Hybrid => "hybrid",
            Bucket::Disabled => "disabled",
            Bucket::Automated => "automated",
            Bucket::Remediated => "remediated",
        }
    }
}

/// Where one user was placed and why (the reason is shown to operators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// The bucket.
    pub bucket: Bucket,
    /// Why, in words an operator can act on (static for the common buckets).
    pub reason: Cow<'static, str>,
}

/// The facts about one user that placement reads.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Directory object id.
    pub id: &'a str,
    /// User principal name.
    pub upn: &'a str,
    /// `accountEnabled`.
    pub account_enabled: bool,
    /// `onPremisesSyncEnabled`.
    pub synced: bool,
}

/// One directory role grant as Graph lists it: an active assignment or a PIM eligibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    /// The user or group holding the role.
    pub principal_id: String,
    /// The role's template id (`roleDefinitionId`).
    pub role_id: String,
    /// True for a PIM eligibility, false for an active assignment.
    pub eligible: bool,
}

/// Why a user counts as privileged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Privilege {
    /// The role's template id, or `None` for membership of a role-assignable group.
    pub role_id: Option<String>,
    /// A display name for the role (or the group's id).
    pub role_name: String,
    /// Held through PIM eligibility rather than an active assignment.
    pub eligible: bool,
    /// The group through which the role is held, if any.
    pub via_group: Option<String>,
}

impl Privilege {
    fn describe(&self) -> String {
        let mut text = self.role_name.clone();
        if self.eligible {
            text.push_str(" (PIM-eligible)");
        }
        if let Some(group) = &self.via_group {
            text.push_str(&format!(" via group {group}"));
        }
        text
    }
}

/// Every privileged user of the tenant with what makes them so.
#[derive(Debug, Clone, Default)]
pub struct PrivilegeIndex {
    /// User id (lower case) → privileges, in discovery order.
    by_user: HashMap<String, Vec<Privilege>>,
}

impl PrivilegeIndex {
    /// Build the index from role grants. `critical` is the set of role template ids that
    /// count (lower case); `group_members` expands group principals to their (transitive)
    /// user members; eligibilities count only with `include_eligible`.
    pub fn build(
        grants: &[RoleGrant],
        critical: &HashSet<String>,
        include_eligible: bool,
        group_members: &HashMap<String, Vec<String>>,
    ) -> PrivilegeIndex {
        let mut index = PrivilegeIndex::default();
        for grant in grants {
            let role = grant.role_id.to_ascii_lowercase();
            if !critical.contains(&role) || (grant.eligible && !include_eligible) {
                continue;
            }
            let principal = grant.principal_id.to_ascii_lowercase();
            let privilege = |via_group: Option<String>| Privilege {
                role_id: Some(role.clone()),
                role_name: role_name(&role).to_owned(),
                eligible: grant.eligible,
                via_group,
            };
            match group_members.get(&principal) {
                Some(members) => {
                    for member in members {
                        index.add(member, privilege(Some(principal.clone())));
                    }
                }
                None => index.add(&principal, privilege(None)),
            }
        }
        index
    }

    /// Mark the members of a role-assignable group as privileged: only a Privileged
    /// Authentication Administrator may reset them, and they are one step from a role.
    pub fn add_role_assignable_group(&mut self, group_id: &str, members: &[String]) {
        for member in members {
            self.add(
                member,
                Privilege {
                    role_id: None,
                    role_name: "member of role-assignable group".into(),
                    eligible: false,
                    via_group: Some(group_id.to_ascii_lowercase()),
                },
            );
        }
    }

    /// Add `privilege` to the user's, kept in one order whatever order the grants were
    /// read in (a listing of every grant and a read per principal give the same plan):
    /// direct before through a group, active before eligible, then by role name.
    fn add(&mut self, user_id: &str, privilege: Privilege) {
        let entry = self
            .by_user
            .entry(user_id.to_ascii_lowercase())
            .or_default();
        let key = |p: &Privilege| {
            (
                p.via_group.clone(),
                p.eligible,
                p.role_name.clone(),
                p.role_id.clone(),
            )
        };
        if let Err(at) = entry.binary_search_by_key(&key(&privilege), key) {
            entry.insert(at, privilege);
        }
    }

    /// What makes `user_id` privileged (empty when nothing does).
    pub fn privileges(&self, user_id: &str) -> &[Privilege] {
        self.by_user
            .get(&user_id.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// Number of privileged users.
    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    /// True when no user is privileged.
    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }
}

/// The playbook's and the configuration's exclusions, resolved to ids and patterns.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    /// Break-glass accounts by lower-case UPN or object id.
    pub break_glass: HashSet<String>,
    /// The runner's own accounts (configuration `runner_accounts`), by UPN or id.
    pub runner_accounts: HashSet<String>,
    /// User id (lower case) → the excluded group that contains them.
    pub excluded_group_members: HashMap<String, String>,
    /// UPN patterns from the playbook.
    pub upn_patterns: Vec<UpnPattern>,
}

impl Exclusions {
    fn reason(&self, user: &Candidate<'_>) -> Option<String> {
        let id = user.id.to_ascii_lowercase();
        let upn = user.upn.to_lowercase();
        let named = |set: &HashSet<String>| set.contains(&id) || set.contains(&upn);
        if named(&self.break_glass) {
            return Some("break-glass account (playbook exclude.break_glass)".into());
        }
        if named(&self.runner_accounts) {
            return Some("the runner's own account (configuration runner_accounts)".into());
        }
        if let Some(group) = self.excluded_group_members.get(&id) {
            return Some(format!("member of excluded group {group}"));
        }
        self.upn_patterns
            .iter()
            .find(|p| p.matches(&upn))
            .map(|p| format!("UPN matches excluded pattern `{}`", p.as_str()))
    }
}

/// Place one user. Precedence: excluded, privileged, hybrid, disabled, automated.
pub fn place(
    user: &Candidate<'_>,
    exclusions: &Exclusions,
    privileged: &PrivilegeIndex,
) -> Placement {
    if let Some(reason) = exclusions.reason(user) {
        return Placement {
            bucket: Bucket::Excluded,
            reason: reason.into(),
        };
    }
    let privileges = privileged.privileges(user.id);
    if !privileges.is_empty() {
        let roles: Vec<String> = privileges.iter().map(Privilege::describe).collect();
        let mut reason = format!("privileged: {}", roles.join("; "));
        if user.synced {
            reason.push_str(" (also synced from on-premises)");
        }
        return Placement {
            bucket: Bucket::Privileged,
            reason: reason.into(),
        };
    }
    if user.synced {
        return Placement {
            bucket: Bucket::Hybrid,
            reason: "synced from on-premises AD: reset in AD (or via SSPR writeback), then sync"
                .into(),
        };
    }
    if !user.account_enabled {
        return Placement {
            bucket: Bucket::Disabled,
            reason: "account disabled".into(),
        };
    }
    Placement {
        bucket: Bucket::Automated,
        reason: "automated".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GA: &str = "62e90394-69f5-4237-9190-012177145e10";
    const READER: &str = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b";

    fn user<'a>(id: &'a str, upn: &'a str) -> Candidate<'a> {
        Candidate {
            id,
            upn,
            account_enabled: true,
            synced: false,
        }
    }

    fn critical() -> HashSet<String> {
        crate::playbook::roles::CRITICAL_ROLES
            .iter()
            .map(|(id, _)| id.to_string())
            .collect()
    }

    fn grant(principal: &str, role: &str, eligible: bool) -> RoleGrant {
        RoleGrant {
            principal_id: principal.into(),
            role_id: role.into(),
            eligible,
        }
    }

    #[test]
    fn precedence_excluded_then_privileged_then_hybrid_then_disabled() {
        let grants = [grant("bg", GA, false), grant("admin", GA, false)];
        let index = PrivilegeIndex::build(&grants, &critical(), true, &HashMap::new());
        let exclusions = Exclusions {
            break_glass: ["bg-01@contoso.com".to_string()].into(),
            ..Exclusions::default()
        };
        let bg = place(&user("bg", "BG-01@contoso.com"), &exclusions, &index);
        assert_eq!(bg.bucket, Bucket::Excluded, "{}", bg.reason);

        let mut admin = user("admin", "admin@contoso.com");
        admin.synced = true;
        let placed = place(&admin, &exclusions, &index);
        assert_eq!(placed.bucket, Bucket::Privileged);
        assert!(
            placed.reason.contains("Global Administrator"),
            "{}",
            placed.reason
        );
        assert!(placed.reason.contains("synced"), "{}", placed.reason);

        let mut hybrid = user("h", "h@contoso.com");
        hybrid.synced = true;
        hybrid.account_enabled = false;
        assert_eq!(place(&hybrid, &exclusions, &index).bucket, Bucket::Hybrid);

        let mut disabled = user("d", "d@contoso.com");
        disabled.account_enabled = false;
        assert_eq!(
            place(&disabled, &exclusions, &index).bucket,
            Bucket::Disabled
        );
        assert_eq!(
            place(&user("u", "u@contoso.com"), &exclusions, &index).bucket,
            Bucket::Automated
        );
    }

    #[test]
    fn eligible_roles_count_only_when_asked() {
        let grants = [grant("e", GA, true)];
        let without = PrivilegeIndex::build(&grants, &critical(), false, &HashMap::new());
        assert!(without.is_empty());
        let with = PrivilegeIndex::build(&grants, &critical(), true, &HashMap::new());
        let reason = place(&user("e", "e@x.com"), &Exclusions::default(), &with).reason;
        assert!(reason.contains("PIM-eligible"), "{reason}");
    }

    #[test]
    fn roles_through_groups_reach_every_member_and_non_critical_roles_do_not_count() {
        let grants = [grant("grp", GA, false), grant("reader", READER, false)];
        let members =
            HashMap::from([("grp".to_string(), vec!["m1".to_string(), "M2".to_string()])]);
        let index = PrivilegeIndex::build(&grants, &critical(), true, &members);
        assert_eq!(index.len(), 2);
        assert_eq!(index.privileges("m2")[0].via_group.as_deref(), Some("grp"));
        assert!(index.privileges("reader").is_empty());
    }

    #[test]
    fn role_assignable_group_members_are_privileged() {
        let mut index = PrivilegeIndex::default();
        index.add_role_assignable_group("rag", &["x".to_string()]);
        let placed = place(&user("x", "x@c.com"), &Exclusions::default(), &index);
        assert_eq!(placed.bucket, Bucket::Privileged);
        assert!(
            placed.reason.contains("role-assignable"),
            "{}",
            placed.reason
        );
    }

    #[test]
    fn exclusion_reasons_name_their_source() {
        let exclusions = Exclusions {
            runner_accounts: ["svc-resetctl@c.com".to_string()].into(),
            excluded_group_members: [("g1".to_string(), "grp-svc".to_string())].into(),
            upn_patterns: vec![UpnPattern::new("svc-*@c.com").unwrap()],
            ..Exclusions::default()
        };
        let index = PrivilegeIndex::default();
        let runner = place(&user("r", "SVC-resetctl@c.com"), &exclusions, &index);
        assert!(runner.reason.contains("runner"), "{}", runner.reason);
        let grouped = place(&user("g1", "g@c.com"), &exclusions, &index);
        assert!(grouped.reason.contains("grp-svc"), "{}", grouped.reason);
        let patterned = place(&user("p", "svc-backup@c.com"), &exclusions, &index);
        assert!(
            patterned.reason.contains("svc-*@c.com"),
            "{}",
            patterned.reason
        );
    }
}
