//! Read from the directory what the partition needs: who holds which role (active and
//! PIM-eligible, directly and through groups) and who is in an excluded group.

use std::collections::{HashMap, HashSet};

use futures::stream::{self, StreamExt, TryStreamExt};

use super::partition::{Exclusions, PrivilegeIndex, RoleGrant};
use super::resolve::{ResolveError, read_error};
use crate::directory::{Directory, DirectoryError, DirectoryErrorKind, ObjectKind, User};
use crate::playbook::{AccountRef, Playbook, Step};

/// Groups read at once (each paged on its own; the read budget paces them all).
const GROUPS_IN_FLIGHT: usize = 8;

/// Transitive user members of a group, lower-case ids; a group that no longer exists has none.
async fn members(directory: &dyn Directory, group: &str) -> Result<Vec<String>, ResolveError> {
    Ok(members_if_found(directory, group)
        .await?
        .unwrap_or_default())
}

/// The (transitive) user members of `group`, or `None` when the group does not exist.
async fn members_if_found(
    directory: &dyn Directory,
    group: &str,
) -> Result<Option<Vec<String>>, ResolveError> {
    let listed: Result<Vec<String>, DirectoryError> = directory
        .list_group_members(group, true)
        .map_ok(|u| u.id.to_ascii_lowercase())
        .try_collect()
        .await;
    match listed {
        Ok(ids) => Ok(Some(ids)),
        Err(err) if err.kind == DirectoryErrorKind::NotFound => Ok(None),
        Err(err) => Err(read_error(format!("members of group {group}"))(err)),
    }
}

/// The tenant's directory role grants as read: active assignments and, with
/// `include_eligible`, PIM eligibilities. Read before the tenant is listed, so the listing
/// can tell which principals are users (eligibility instances do not say).
#[derive(Debug, Clone, Default)]
pub struct RoleGrants {
    /// Each grant, with `Some(true)` when Graph said the principal is a group, `Some(false)`
    /// when it said another kind, and `None` when it did not say.
    grants: Vec<(RoleGrant, Option<bool>)>,
}

impl RoleGrants {
    /// Principals (lower-case ids) whose kind Graph did not give.
    pub fn principals_of_unknown_kind(&self) -> HashSet<String> {
        self.grants
            .iter()
            .filter(|(_, is_group)| is_group.is_none())
            .map(|(grant, _)| grant.principal_id.clone())
            .collect()
    }
}

/// Read the role grants the playbook's `privileged` section counts: active assignments
/// and PIM eligibilities at once.
pub async fn role_grants(
    directory: &dyn Directory,
    playbook: &Playbook,
) -> Result<RoleGrants, ResolveError> {
    let assignments = async {
        directory
            .list_role_assignments(None)
            .try_collect::<Vec<_>>()
            .await
            .map_err(read_error("directory role assignments"))
    };
    let eligibilities = async {
        if !playbook.privileged.include_eligible {
            return Ok(Vec::new());
        }
        directory
            .list_role_eligibilities(None)
            .try_collect::<Vec<_>>()
            .await
            .map_err(read_error("PIM role eligibilities"))
    };
    let (assignments, eligibilities) = futures::try_join!(assignments, eligibilities)?;
    let mut out = RoleGrants::default();
    for assignment in assignments {
        let is_group = assignment
            .principal
            .as_ref()
            .map(|p| p.kind == ObjectKind::Group);
        out.grants.push((
            RoleGrant {
                principal_id: assignment.principal_id.to_ascii_lowercase(),
                role_id: assignment.role_definition_id,
                eligible: false,
            },
            is_group,
        ));
    }
    for eligibility in eligibilities {
        let is_group = eligibility
            .principal
            .as_ref()
            .map(|p| p.kind == ObjectKind::Group);
        out.grants.push((
            RoleGrant {
                principal_id: eligibility.principal_id.to_ascii_lowercase(),
                role_id: eligibility.role_definition_id,
                eligible: true,
            },
            is_group,
        ));
    }
    Ok(out)
}

/// The tenant's role-assignable groups (lower-case ids). Entra ID lets only these hold a
/// directory role, active or eligible ("only groups that have the isAssignableToRole
/// property set to true can be assigned a role",
/// <https://learn.microsoft.com/entra/identity/role-based-access-control/groups-concept>),
/// so they are every group through which a user can hold one.
pub async fn role_assignable_groups(
    directory: &dyn Directory,
) -> Result<Vec<String>, ResolveError> {
    directory
        .list_role_assignable_groups()
        .map_ok(|g| g.id.to_ascii_lowercase())
        .try_collect()
        .await
        .map_err(read_error("the role-assignable groups"))
}

/// The role grants that matter to `users` (lower-case ids of resolved users) and nothing
/// else, read per principal instead of listing every grant of the tenant: the users' own
/// grants, and those of every group that could give them one (the role-assignable
/// `groups`, and the playbook's `add_to_group` groups, which must hold none). Each
/// principal's kind is known, so no lookup tells users from groups. The privileges built
/// from them are the same, for these users, as from the whole tenant's grants.
pub async fn targeted_grants(
    directory: &dyn Directory,
    playbook: &Playbook,
    users: &[String],
    groups: Vec<String>,
) -> Result<RoleGrants, ResolveError> {
    let mut seen = HashSet::new();
    let step_groups = playbook.steps.iter().filter_map(|spec| match &spec.step {
        Step::AddToGroup { group_id, .. } => Some(group_id.to_string().to_ascii_lowercase()),
        _ => None,
    });
    let principals: Vec<(String, bool)> = users
        .iter()
        .map(|id| (id.to_ascii_lowercase(), false))
        .chain(groups.into_iter().chain(step_groups).map(|id| (id, true)))
        .filter(|(id, _)| seen.insert(id.clone()))
        .collect();
    let ids: Vec<String> = principals.iter().map(|(id, _)| id.clone()).collect();
    let held = directory
        .grants_of(&ids, playbook.privileged.include_eligible)
        .await
        .map_err(read_error("the role holders' grants"))?;
    let mut out = RoleGrants::default();
    for ((principal, is_group), grants) in principals.into_iter().zip(held) {
        for assignment in grants.assignments {
            out.grants.push((
                RoleGrant {
                    principal_id: principal.clone(),
                    role_id: assignment.role_definition_id,
                    eligible: false,
                },
                Some(is_group),
            ));
        }
        for eligibility in grants.eligibilities {
            out.grants.push((
                RoleGrant {
                    principal_id: principal.clone(),
                    role_id: eligibility.role_definition_id,
                    eligible: true,
                },
                Some(is_group),
            ));
        }
    }
    Ok(out)
}

/// The role principals whose kind Graph did not give that are users (lower-case ids),
/// looked up by id: a group or a service principal is not found among `/users`.
pub async fn user_principals(
    directory: &dyn Directory,
    grants: &RoleGrants,
) -> Result<HashSet<String>, ResolveError> {
    let mut ids: Vec<String> = grants.principals_of_unknown_kind().into_iter().collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    ids.sort_unstable();
    let found = directory
        .lookup_users(&ids, &["id".to_owned()])
        .await
        .map_err(read_error("the role holders' kinds"))?;
    Ok(ids
        .into_iter()
        .zip(found)
        .filter_map(|(id, user)| user.map(|_| id))
        .collect())
}

/// Refuse `add_to_group` steps whose group grants administrative rights: a role-assignable
/// group, or any group that holds a directory role or a PIM eligibility. Adding a user to
/// one would make them an administrator for the membership's lifetime, and no playbook step
/// may escalate a user. A group that does not exist is refused too (the write would fail
/// for every user). `grants` are the role grants already read (eligibilities only with
/// `include_eligible`; otherwise the group's eligibilities are asked for here).
pub async fn check_step_groups(
    directory: &dyn Directory,
    playbook: &Playbook,
    grants: &RoleGrants,
) -> Result<(), ResolveError> {
    let mut refused = Vec::new();
    for spec in &playbook.steps {
        let Step::AddToGroup { group_id, .. } = &spec.step else {
            continue;
        };
        let id = group_id.to_string();
        let group = directory
            .get_group(&id)
            .await
            .map_err(read_error(format!("group {id}")))?;
        let Some(group) = group else {
            refused.push(format!("add_to_group {id}: no such group"));
            continue;
        };
        let name = group.display_name.as_deref().unwrap_or("");
        if group.role_assignable {
            refused.push(format!(
                "add_to_group {id} ({name}): a role-assignable group; its members can hold \
                 directory roles"
            ));
            continue;
        }
        let holds_role = grants.grants.iter().any(|(g, _)| g.principal_id == id);
        let holds_eligibility = !holds_role
            && !playbook.privileged.include_eligible
            && directory
                .list_role_eligibilities(Some(format!("principalId eq '{id}'")))
                .try_next()
                .await
                .map_err(read_error(format!("PIM eligibilities of group {id}")))?
                .is_some();
        if holds_role || holds_eligibility {
            refused.push(format!(
                "add_to_group {id} ({name}): the group holds a directory role or PIM \
                 eligibility; its members become administrators"
            ));
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ResolveError::GrantingGroups(refused))
    }
}

/// Build the privilege index for `playbook` from its role grants. `is_user` tells a user
/// principal from a group where Graph did not say.
///
/// Invariant: every group that holds any directory role is role-assignable (only those can
/// be assigned roles), so its members are privileged whatever the role; members of a group
/// holding a critical role get that role's name in their reason.
pub async fn privileges(
    directory: &dyn Directory,
    playbook: &Playbook,
    grants: RoleGrants,
    is_user: &(dyn Fn(&str) -> bool + Sync),
) -> Result<PrivilegeIndex, ResolveError> {
    let critical: HashSet<String> = playbook
        .privileged
        .roles
        .template_ids()
        .iter()
        .map(|id| id.to_string())
        .collect();
    let mut group_principals: HashSet<String> = HashSet::new();
    let mut plain: Vec<RoleGrant> = Vec::with_capacity(grants.grants.len());
    for (grant, is_group) in grants.grants {
        if is_group.unwrap_or_else(|| !is_user(&grant.principal_id)) {
            group_principals.insert(grant.principal_id.clone());
        }
        plain.push(grant);
    }

    let group_members: HashMap<String, Vec<String>> =
        stream::iter(group_principals.iter().map(|group| async move {
            Ok::<_, ResolveError>((group.clone(), members(directory, group).await?))
        }))
        .buffer_unordered(GROUPS_IN_FLIGHT)
        .try_collect()
        .await?;
    let mut index = PrivilegeIndex::build(
        &plain,
        &critical,
        playbook.privileged.include_eligible,
        &group_members,
    );
    for (group, members) in &group_members {
        index.add_role_assignable_group(group, members);
    }
    Ok(index)
}

/// The exclusions of `playbook` plus the configuration's runner accounts, with excluded
/// groups expanded to their (transitive) members. Every break-glass and runner account must
/// be one directory object, and every excluded group must exist: an entry that matches
/// nothing (a typo in a domain) would leave the real account unprotected, so it is an error
/// naming the entry ([`ResolveError::UnresolvedExclusions`]). A resolved account is excluded
/// by its UPN and by its object id.
pub async fn exclusions(
    directory: &dyn Directory,
    playbook: &Playbook,
    runner_accounts: &[String],
) -> Result<Exclusions, ResolveError> {
    let mut out = Exclusions {
        upn_patterns: playbook.exclude.upn_patterns.clone(),
        ..Exclusions::default()
    };
    // Every account in one lookup and every group at once: none depends on another.
    let accounts: Vec<(String, bool)> = playbook
        .exclude
        .break_glass
        .iter()
        .map(|account| match account {
            AccountRef::Upn(upn) => (upn.to_lowercase(), true),
            AccountRef::Id(id) => (id.to_string(), true),
        })
        .chain(runner_accounts.iter().map(|a| (a.to_lowercase(), false)))
        .collect();
    let keys: Vec<String> = accounts.iter().map(|(key, _)| key.clone()).collect();
    let select = ["id".to_owned(), "userPrincipalName".to_owned()];
    let groups: Vec<String> = playbook
        .exclude
        .groups
        .iter()
        .map(|g| g.to_string())
        .collect();
    let (found, members) = futures::try_join!(
        async {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            directory
                .lookup_users(&keys, &select)
                .await
                .map_err(read_error("the excluded accounts"))
        },
        stream::iter(
            groups
                .iter()
                .map(|group| members_if_found(directory, group))
        )
        .buffered(GROUPS_IN_FLIGHT)
        .try_collect::<Vec<_>>(),
    )?;
    let mut unresolved = Vec::new();
    for ((key, break_glass), user) in accounts.into_iter().zip(found) {
        match (user, break_glass) {
            (Some(u), true) => out.break_glass.extend(account_keys(&u)),
            (Some(u), false) => out.runner_accounts.extend(account_keys(&u)),
            (None, true) => unresolved.push(format!("exclude.break_glass: {key}")),
            (None, false) => unresolved.push(format!("runner_accounts: {key}")),
        }
    }
    for (group, members) in groups.into_iter().zip(members) {
        let Some(members) = members else {
            unresolved.push(format!("exclude.groups: {group}"));
            continue;
        };
        for member in members {
            out.excluded_group_members
                .entry(member)
                .or_insert_with(|| group.clone());
        }
    }
    if !unresolved.is_empty() {
        return Err(ResolveError::UnresolvedExclusions(unresolved));
    }
    Ok(out)
}

/// The lower-case UPN and object id of an account: it is excluded by both.
fn account_keys(user: &User) -> [String; 2] {
    [user.upn.to_lowercase(), user.id.to_ascii_lowercase()]
}
