//! Resolve a playbook's target sources to directory users.
//!
//! The tenant is listed once (`$select`, `$top=999`: one resource unit per 999 users) and
//! every source is joined against that list in memory. One lookup per target would cost a
//! request each; above a few hundred targets the listing is cheaper in quota and time, and
//! it also gives the tenant's size, which the `max_fraction_of_tenant` guard needs. Group,
//! filter and risky-user sources are asked of Graph and joined by object id, so every
//! resolved user carries the same, complete set of properties.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use futures::TryStreamExt;

use super::csv_source::{BadRow, CsvError, TargetKey, read_csv_targets};
use crate::directory::{Directory, RiskLevel as GraphRisk, User, UserQuery};
use crate::graph::{GraphError, GraphErrorKind};
use crate::playbook::{Playbook, RiskLevel, Target};

/// A resolved user with what ordering and `when:` conditions need.
#[derive(Debug, Clone)]
pub struct ResolvedUser {
    /// The directory user.
    pub user: User,
    /// Identity Protection risk level (`none` when not risky or unknown).
    pub risk: RiskLevel,
    /// Order in which a source first named the user (CSV row order first).
    pub first_seen: usize,
}

/// A target that named no user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The UPN or id as written.
    pub target: String,
    /// Where it was named (`file:line`).
    pub source: String,
    /// Why it did not resolve.
    pub reason: String,
}

/// Everything resolution found.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// Distinct users, highest risk first, then in the order sources named them.
    pub users: Vec<ResolvedUser>,
    /// Targets that did not resolve.
    pub missing: Vec<Missing>,
    /// CSV rows that could not be read.
    pub bad_rows: Vec<(PathBuf, BadRow)>,
    /// Users in the tenant.
    pub tenant_users: u64,
    /// Whether risk levels could be read (Identity Protection needs a P2 licence).
    pub risk_known: bool,
    /// Every user id of the tenant (lower case): tells user principals from group ones.
    pub tenant_ids: HashSet<String>,
}

/// Why targets could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// A CSV could not be read at all.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// CSV rows were unusable and `--skip-bad-rows` was not given.
    #[error(
        "{count} unusable row(s) in {path}, the first at line {first_line}: {reason}; fix them or pass --skip-bad-rows"
    )]
    BadRows {
        /// The file.
        path: PathBuf,
        /// How many rows.
        count: usize,
        /// The first bad row's line.
        first_line: u64,
        /// The first bad row's reason.
        reason: String,
    },
    /// Graph refused or failed a read.
    #[error("reading {what} from the directory: {source}")]
    Graph {
        /// What was being read.
        what: String,
        /// The Graph error.
        #[source]
        source: GraphError,
    },
}

/// Wrap a failed Graph read with what was being read.
pub(super) fn graph(what: impl Into<String>) -> impl FnOnce(GraphError) -> ResolveError {
    let what = what.into();
    move |source| ResolveError::Graph { what, source }
}

/// Options of one resolution.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// `--targets CSV`: replaces the path of the playbook's csv sources.
    pub csv_override: Option<PathBuf>,
    /// `--skip-bad-rows`: go on without unusable CSV rows (they are reported in the plan).
    pub skip_bad_rows: bool,
}

/// Resolve every target source of `playbook`.
pub async fn resolve(
    directory: &dyn Directory,
    playbook: &Playbook,
    options: &ResolveOptions,
) -> Result<Resolution, ResolveError> {
    // Read local input first: a broken CSV should fail before any Graph traffic.
    let mut csv_sources = Vec::new();
    for target in &playbook.targets {
        if let Target::Csv { path, column } = target {
            let path = options.csv_override.clone().unwrap_or_else(|| path.clone());
            let rows = read_csv_targets(&path, column)?;
            if let Some(first) = rows.bad_rows.first().filter(|_| !options.skip_bad_rows) {
                return Err(ResolveError::BadRows {
                    path,
                    count: rows.bad_rows.len(),
                    first_line: first.line,
                    reason: first.reason.clone(),
                });
            }
            csv_sources.push((path, rows));
        }
    }

    let tenant: Vec<User> = directory
        .list_users(UserQuery::default())
        .try_collect()
        .await
        .map_err(graph("the tenant's users"))?;
    let by_id: HashMap<String, usize> = tenant
        .iter()
        .enumerate()
        .map(|(i, u)| (u.id.to_ascii_lowercase(), i))
        .collect();
    let by_upn: HashMap<String, usize> = tenant
        .iter()
        .enumerate()
        .map(|(i, u)| (u.upn.to_lowercase(), i))
        .collect();

    // Identity Protection serves one request a second: read every level only when a source
    // or a `when:` needs it; otherwise the high-risk users alone, who run first.
    let targets_risk = playbook
        .targets
        .iter()
        .any(|t| matches!(t, Target::RiskyUsers { .. }));
    let conditions_read_risk = playbook
        .steps
        .iter()
        .any(|s| s.when.as_ref().is_some_and(|c| c.reads_risk()));
    let levels = if targets_risk || conditions_read_risk {
        vec![GraphRisk::Low, GraphRisk::Medium, GraphRisk::High]
    } else {
        vec![GraphRisk::High]
    };
    let (risk, risk_known) = risk_levels(directory, levels, targets_risk).await?;

    let mut chosen: HashMap<usize, usize> = HashMap::new(); // tenant index -> first_seen
    let mut seen = 0usize;
    let mut choose = |index: usize| {
        chosen.entry(index).or_insert_with(|| {
            seen += 1;
            seen
        });
    };
    let mut out = Resolution {
        tenant_users: tenant.len() as u64,
        risk_known,
        ..Resolution::default()
    };

    for (path, rows) in csv_sources {
        for target in rows.targets {
            let index = match &target.key {
                TargetKey::Upn(upn) => by_upn.get(upn),
                TargetKey::ObjectId(id) => by_id.get(id),
            };
            match index {
                Some(&i) => choose(i),
                None => out.missing.push(Missing {
                    target: target.key.to_string(),
                    source: format!("{}:{}", path.display(), target.line),
                    reason: "no such user in the tenant".into(),
                }),
            }
        }
        out.bad_rows
            .extend(rows.bad_rows.into_iter().map(|row| (path.clone(), row)));
    }

    for target in &playbook.targets {
        let ids: Vec<String> = match target {
            Target::Csv { .. } => continue,
            Target::AllUsers => {
                (0..tenant.len()).for_each(&mut choose);
                continue;
            }
            Target::Group { id, transitive } => directory
                .list_group_members(&id.to_string(), *transitive)
                .map_ok(|u| u.id)
                .try_collect()
                .await
                .map_err(graph(format!("members of group {id}")))?,
            Target::Filter(filter) => directory
                .list_users(UserQuery {
                    filter: Some(filter.clone()),
                    advanced: needs_advanced_query(filter),
                    select: Some(vec!["id".into()]),
                })
                .map_ok(|u| u.id)
                .try_collect()
                .await
                .map_err(graph(format!("users matching `{filter}`")))?,
            Target::RiskyUsers { levels } => risk
                .iter()
                .filter(|(_, level)| levels.contains(level))
                .map(|(id, _)| id.clone())
                .collect(),
        };
        for id in ids {
            if let Some(&i) = by_id.get(&id.to_ascii_lowercase()) {
                choose(i);
            }
        }
    }

    let mut users: Vec<ResolvedUser> = chosen
        .into_iter()
        .map(|(i, first_seen)| {
            let user = tenant[i].clone();
            let risk = risk
                .get(&user.id.to_ascii_lowercase())
                .copied()
                .unwrap_or(RiskLevel::None);
            ResolvedUser {
                user,
                risk,
                first_seen,
            }
        })
        .collect();
    users.sort_by_key(|u| (std::cmp::Reverse(u.risk), u.first_seen));
    out.users = users;
    out.tenant_ids = by_id.into_keys().collect();
    Ok(out)
}

/// Risk level by lower-case user id. A playbook that targets risky users needs them (an
/// error is fatal); otherwise they only order the run and feed `when:`, and a tenant
/// without Identity Protection (403) simply has none.
async fn risk_levels(
    directory: &dyn Directory,
    levels: Vec<GraphRisk>,
    required: bool,
) -> Result<(HashMap<String, RiskLevel>, bool), ResolveError> {
    let listed: Result<Vec<_>, GraphError> = directory.list_risky_users(levels).try_collect().await;
    match listed {
        Ok(risky) => Ok((
            risky
                .into_iter()
                .map(|r| {
                    let level = match r.risk_level {
                        GraphRisk::High => RiskLevel::High,
                        GraphRisk::Medium => RiskLevel::Medium,
                        GraphRisk::Low => RiskLevel::Low,
                        _ => RiskLevel::None,
                    };
                    (r.id.to_ascii_lowercase(), level)
                })
                .collect(),
            true,
        )),
        Err(err)
            if !required
                && matches!(
                    err.kind,
                    GraphErrorKind::Forbidden | GraphErrorKind::NotFound
                ) =>
        {
            tracing::warn!(message = "Risk levels unavailable; ordering by source only.", %err);
            Ok((HashMap::new(), false))
        }
        Err(err) => Err(graph("risky users")(err)),
    }
}

/// Filters Graph serves only as advanced queries (reference §2): `ne`, `not`, `endsWith`.
fn needs_advanced_query(filter: &str) -> bool {
    let lower = filter.to_ascii_lowercase();
    [" ne ", "not(", "not ", "endswith("]
        .iter()
        .any(|op| lower.contains(op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advanced_query_detection() {
        assert!(needs_advanced_query("department ne 'IT'"));
        assert!(needs_advanced_query("endsWith(mail,'@contoso.com')"));
        assert!(!needs_advanced_query("department eq 'Finance'"));
        assert!(!needs_advanced_query("startswith(displayName,'A')"));
    }
}
