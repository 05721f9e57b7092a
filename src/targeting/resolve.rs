//! Resolve a playbook's target sources to directory users, one of two ways that give the
//! same users with the same properties (the cost model of [`super::strategy`] picks one):
//!
//! - **Lookup**: each key a CSV or a `risky_users` source names is looked up
//!   (`$batch`es of `GET /users/{key}` with the listing's `$select`; a 404 is a key that did
//!   not resolve), and group sources are read as their members. The tenant's size, which the
//!   `max_fraction_of_tenant` guard needs, is the directory's own count (`/users/$count`).
//! - **Listing**: the tenant is listed once (`$select`, `$top=999`: one resource unit per
//!   999 users) and every source is joined against that list in memory. It is checked
//!   against the directory's count: a listing that names a user twice or disagrees with the
//!   count lost or repeated a page, and nothing is planned on it. Group, filter and
//!   risky-user sources are asked of Graph and joined by object id, so every resolved user
//!   carries the same, complete set of properties.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use futures::TryStreamExt;

use super::csv_source::{BadRow, CsvError, TargetKey, lower, read_csv_targets};
use super::strategy::{CostModel, Method, ResolvedBy, Strategy};
use crate::directory::{
    Directory, DirectoryError, DirectoryErrorKind, RiskLevel as GraphRisk, User, UserQuery,
};
use crate::playbook::{Playbook, RiskLevel, Target, TextAttr};

/// A resolved user: what the partition, the plan and `when:` conditions read, and nothing
/// more. Kept small on purpose: an `all_users` playbook holds one per user of the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// Directory object id.
    pub id: String,
    /// `userPrincipalName`.
    pub upn: String,
    /// `displayName` (empty when unset), for reports.
    pub display_name: String,
    /// `department`, read only when a `when:` condition compares it.
    pub department: Option<String>,
    /// `jobTitle`, read only when a `when:` condition compares it.
    pub job_title: Option<String>,
    /// A mobile number a text message can be addressed to is on record (read in the user's
    /// `usageLocation` when national).
    pub has_mobile: bool,
    /// A `mobilePhone` is on record that no text message can be addressed to (`n/a`, an
    /// extension, a national number without a country): `has_mobile` is false.
    pub unusable_mobile: bool,
    /// `onPremisesSyncEnabled`: synced (hybrid) users cannot get cloud password writes.
    pub synced: bool,
    /// `accountEnabled` (unknown counts as enabled).
    pub account_enabled: bool,
    /// Identity Protection risk level (`none` when not risky or unknown).
    pub risk: RiskLevel,
    /// Order in which a source first named the user (CSV row order first).
    pub first_seen: u64,
}

impl ResolvedUser {
    fn from_user(user: User, first_seen: u64) -> ResolvedUser {
        let on_record = user
            .mobile_phone
            .as_deref()
            .is_some_and(|m| !m.trim().is_empty());
        let has_mobile = on_record
            && user.mobile_phone.as_deref().is_some_and(|m| {
                crate::comms::recipient::textable(m, user.usage_location.as_deref())
            });
        ResolvedUser {
            has_mobile,
            unusable_mobile: on_record && !has_mobile,
            synced: user.on_premises_sync_enabled == Some(true),
            account_enabled: user.account_enabled != Some(false),
            id: user.id,
            upn: user.upn,
            display_name: user.display_name.unwrap_or_default(),
            department: user.department,
            job_title: user.job_title,
            risk: RiskLevel::None,
            first_seen,
        }
    }
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
    /// Which way the targets were resolved, and why.
    pub resolved_by: Option<ResolvedBy>,
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
    /// Accounts or groups the playbook or configuration protects that the directory does not
    /// have: the protection would silently not apply, so nothing is planned.
    #[error(
        "these protected entries match nothing in the directory, so they would protect no one: {}; fix the playbook or the configuration (nothing was planned)",
        .0.join(", ")
    )]
    UnresolvedExclusions(Vec<String>),
    /// `add_to_group` steps whose group would make its new members administrators (or does
    /// not exist): no step may escalate a user, so nothing is planned.
    #[error(
        "these add_to_group steps would grant administrative rights, so nothing was planned: {}; \
         use a group that holds no directory role and is not role-assignable",
        .0.join("; ")
    )]
    GrantingGroups(Vec<String>),
    /// The directory refused or failed a read.
    #[error("reading {what} from the directory: {source}")]
    Directory {
        /// What was being read.
        what: String,
        /// The directory's error.
        #[source]
        source: DirectoryError,
    },
    /// The listing of the tenant's users contradicted itself or the directory's count.
    #[error("the listing of the tenant's users cannot be trusted, so nothing was planned: {0}")]
    Listing(#[from] ListingError),
}

/// How a listing of the tenant's users showed it lost or repeated pages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListingError {
    /// A user came twice: a page was served more than once. Believing it would count the
    /// tenant too large (loosening the fraction guard) and act on the user twice.
    #[error("user {id} was listed twice (a page was served more than once); plan again")]
    Duplicate {
        /// The repeated object id.
        id: String,
    },
    /// The listing and the directory's count disagree, even counted again after the listing:
    /// pages were lost (a dropped `@odata.nextLink` ends a listing early) or repeated.
    #[error(
        "it returned {listed} users but the directory counts {counted} (/users/$count): pages \
         were lost or repeated; plan again"
    )]
    CountMismatch {
        /// Users the listing returned.
        listed: u64,
        /// Users the directory counts.
        counted: u64,
    },
}

/// Wrap a failed directory read with what was being read.
pub(super) fn read_error(what: impl Into<String>) -> impl FnOnce(DirectoryError) -> ResolveError {
    let what = what.into();
    move |source| ResolveError::Directory { what, source }
}

/// Options of one resolution.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// `--targets CSV`: replaces the path of the playbook's csv sources.
    pub csv_override: Option<PathBuf>,
    /// `--skip-bad-rows`: go on without unusable CSV rows (they are reported in the plan).
    pub skip_bad_rows: bool,
    /// Look up or list: the cost model's choice unless forced (both plan the same).
    pub strategy: Strategy,
}

/// The playbook's CSV sources, read before any Graph traffic: a broken CSV fails first.
#[derive(Debug, Default)]
pub struct CsvSources {
    /// Every key the CSVs named, ranked in source and row order.
    join: Join,
    /// The files, in playbook order (for the unresolved rows' `file:line`).
    paths: Vec<PathBuf>,
    /// Rows that could not be read (only with `--skip-bad-rows`).
    bad_rows: Vec<(PathBuf, BadRow)>,
}

impl CsvSources {
    /// How many distinct keys the CSVs named.
    pub fn keys(&self) -> usize {
        self.join.by_upn.len() + self.join.by_id.len()
    }
}

/// Read every CSV source of `playbook` (or the `--targets` override).
// The one error type of every resolution step (the async ones return it too); it is built
// at most once per plan, so its size costs nothing.
#[allow(clippy::result_large_err)]
pub fn read_csv_sources(
    playbook: &Playbook,
    options: &ResolveOptions,
) -> Result<CsvSources, ResolveError> {
    let mut out = CsvSources::default();
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
            let source = out.join.next_source();
            out.join.by_upn.reserve(rows.targets.len());
            for (position, target) in rows.targets.into_iter().enumerate() {
                let origin = Origin {
                    file: out.paths.len(),
                    line: target.line,
                };
                out.join
                    .want(target.key, rank(source, position as u64), Some(origin));
            }
            out.bad_rows
                .extend(rows.bad_rows.into_iter().map(|row| (path.clone(), row)));
            out.paths.push(path);
        }
    }
    Ok(out)
}

/// Resolve every target source of `playbook`, its CSVs already read, by looking the named
/// keys up or by listing the tenant, as `model` and `options` choose (see
/// [`super::strategy`]). Either way the tenant's size is the directory's own count.
///
/// Memory stays proportional to the targets, not the tenant: the listing is streamed and
/// only named users are kept, so planning a breach CSV against a tenant of millions holds
/// the CSV's keys and the resolved users, nothing else.
pub async fn resolve(
    directory: &dyn Directory,
    playbook: &Playbook,
    csv: CsvSources,
    options: &ResolveOptions,
    model: &CostModel,
) -> Result<Resolution, ResolveError> {
    let none = |_| async { Ok(()) };
    let ids = Ids::Unwanted;
    let (resolution, ()) =
        resolve_with(directory, playbook, csv, options, model, none, ids).await?;
    Ok(resolution)
}

/// Whether the continuation of [`resolve_with`] wants the found users' ids (a million of
/// them are tens of megabytes: not built for nothing).
#[derive(Clone, Copy, PartialEq)]
enum Ids {
    Wanted,
    Unwanted,
}

/// [`resolve`], and `then` given the object ids of the users found as soon as they are
/// found: it runs alongside the risk levels (Identity Protection's one request a second,
/// paged, often the longest read of a short list), not after them. Its output comes back
/// with the resolution.
pub async fn resolve_then<T, F, Fut>(
    directory: &dyn Directory,
    playbook: &Playbook,
    csv: CsvSources,
    options: &ResolveOptions,
    model: &CostModel,
    then: F,
) -> Result<(Resolution, T), ResolveError>
where
    F: FnOnce(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<T, ResolveError>>,
{
    resolve_with(directory, playbook, csv, options, model, then, Ids::Wanted).await
}

/// [`resolve_then`], handing `then` the ids only when `ids` says so.
async fn resolve_with<T, F, Fut>(
    directory: &dyn Directory,
    playbook: &Playbook,
    csv: CsvSources,
    options: &ResolveOptions,
    model: &CostModel,
    then: F,
    wanted: Ids,
) -> Result<(Resolution, T), ResolveError>
where
    F: FnOnce(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<T, ResolveError>>,
{
    let CsvSources {
        mut join,
        paths: csv_paths,
        bad_rows,
    } = csv;
    let mut out = Resolution {
        bad_rows,
        ..Resolution::default()
    };

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
    let reads = join.number_sources(playbook);
    let needs_listing = playbook.targets.iter().find_map(|t| match t {
        Target::AllUsers => Some("all_users"),
        Target::Filter(_) => Some("a filter source"),
        _ => None,
    });
    let select = user_select(playbook);
    let find = Find {
        directory,
        select: &select,
        reads: &reads,
        strategy: options.strategy,
        model,
        needs_listing,
    };
    // Risk levels spend Identity Protection's budget (1 request/s), the rest the
    // directory's: read both at once, unless a `risky_users` source must be joined too.
    let ids = |found: &Found| match wanted {
        Ids::Wanted => found.users.iter().map(|u| u.id.clone()).collect(),
        Ids::Unwanted => Vec::new(),
    };
    let ((risk, risk_known), ((found, resolved_by), then_out)) = if targets_risk {
        let risk = risk_levels(directory, levels, true).await?;
        join.risky_sources(playbook, &risk.0);
        let found = find.run(&mut join).await?;
        let then_out = then(ids(&found.0)).await?;
        (risk, (found, then_out))
    } else {
        futures::try_join!(risk_levels(directory, levels, false), async {
            let found = find.run(&mut join).await?;
            let then_out = then(ids(&found.0)).await?;
            Ok((found, then_out))
        })?
    };
    tracing::info!(
        message = "Targets resolved.",
        method = resolved_by.method.as_str(),
        why = %resolved_by.why,
        users = found.users.len()
    );
    let Found {
        users: mut chosen,
        tenant_users,
    } = found;
    out.tenant_users = tenant_users;
    out.resolved_by = Some(resolved_by);
    for user in &mut chosen {
        if let Some(level) = risk.get(lower(&user.id).as_ref()) {
            user.risk = *level;
        }
    }
    chosen.sort_unstable_by_key(|u| (std::cmp::Reverse(u.risk), u.first_seen));
    out.users = chosen;
    out.missing = join.missing(&csv_paths);
    out.risk_known = risk_known;
    Ok((out, then_out))
}

/// Everything the directory part of a resolution needs, besides the join it fills.
struct Find<'a> {
    directory: &'a dyn Directory,
    /// The properties planning reads.
    select: &'a [String],
    /// The group and filter sources to read.
    reads: &'a [(u32, SourceRead)],
    strategy: Strategy,
    model: &'a CostModel,
    /// The source that needs the listing, if any.
    needs_listing: Option<&'static str>,
}

impl Find<'_> {
    /// Count the tenant, choose the way, and find every user some source named.
    async fn run(&self, join: &mut Join) -> Result<(Found, ResolvedBy), ResolveError> {
        let counted = self
            .directory
            .count_users()
            .await
            .map_err(read_error("the number of the tenant's users"))?;
        let keys = (join.by_upn.len() + join.by_id.len()) as u64;
        let by = self
            .model
            .choose(self.strategy, counted, keys, self.needs_listing);
        let found = match by.method {
            Method::Listing => {
                for (source, ids) in
                    read_sources(self.directory, self.reads, None, |u| u.id).await?
                {
                    for (position, id) in ids.into_iter().enumerate() {
                        let id = lower(&id).into_owned();
                        join.want(TargetKey::ObjectId(id), rank(source, position as u64), None);
                    }
                }
                list_and_join(self.directory, self.select, join, counted).await?
            }
            Method::Lookup => Found {
                users: look_up(self.directory, self.select, self.reads, join).await?,
                tenant_users: counted,
            },
        };
        Ok((found, by))
    }
}

/// What resolution found in the directory.
struct Found {
    /// The users some source named.
    users: Vec<ResolvedUser>,
    /// Users in the tenant.
    tenant_users: u64,
}

/// Look every key of `join` up (forgetting the keys found) and read the group sources'
/// members, at once: the users they name, each once, at the first rank that named them.
async fn look_up(
    directory: &dyn Directory,
    select: &[String],
    reads: &[(u32, SourceRead)],
    join: &mut Join,
) -> Result<Vec<ResolvedUser>, ResolveError> {
    let upns = join.by_upn.len();
    let keys: Vec<String> = join
        .by_upn
        .keys()
        .chain(join.by_id.keys())
        .cloned()
        .collect();
    let (looked_up, members) = futures::try_join!(
        async {
            directory
                .lookup_users(&keys, select)
                .await
                .map_err(read_error("the targets' users"))
        },
        read_sources(directory, reads, Some(select), |u| u),
    )?;
    let mut chosen: HashMap<String, ResolvedUser, Hasher> = HashMap::default();
    let mut keep = |user: User, rank: u64| {
        let user = keep_selected(user, select);
        chosen
            .entry(lower(&user.id).into_owned())
            .and_modify(|known| known.first_seen = known.first_seen.min(rank))
            .or_insert_with(|| ResolvedUser::from_user(user, rank));
    };
    for (position, (key, user)) in keys.into_iter().zip(looked_up).enumerate() {
        let Some(user) = user else { continue };
        let map = if position < upns {
            &mut join.by_upn
        } else {
            &mut join.by_id
        };
        if let Some(named) = map.remove(&key) {
            keep(user, named.rank);
        }
    }
    for (source, users) in members {
        for (position, user) in users.into_iter().enumerate() {
            keep(user, rank(source, position as u64));
        }
    }
    Ok(chosen.into_values().collect())
}

/// A user with only the `select`ed text attributes a `when:` compares: a group's members
/// come with more, and the plan must not depend on how a user was found.
fn keep_selected(mut user: User, select: &[String]) -> User {
    let selected = |name: &str| select.iter().any(|s| s == name);
    if !selected("department") {
        user.department = None;
    }
    if !selected("jobTitle") {
        user.job_title = None;
    }
    user
}

/// Read every group and filter source at once, each user kept as `keep` makes it; `select`
/// is what a filter source reads (its ids only when `None`).
async fn read_sources<T: Send>(
    directory: &dyn Directory,
    reads: &[(u32, SourceRead)],
    select: Option<&[String]>,
    keep: fn(User) -> T,
) -> Result<Vec<(u32, Vec<T>)>, ResolveError> {
    futures::future::try_join_all(reads.iter().map(|(source, read)| async move {
        let users: Vec<T> = match read {
            SourceRead::Group { id, transitive } => directory
                .list_group_members(id, *transitive)
                .map_ok(keep)
                .try_collect()
                .await
                .map_err(read_error(format!("members of group {id}")))?,
            SourceRead::Filter(filter) => directory
                .list_users(UserQuery {
                    filter: Some(filter.clone()),
                    select: Some(select.map_or_else(|| vec!["id".into()], <[String]>::to_vec)),
                })
                .map_ok(keep)
                .try_collect()
                .await
                .map_err(read_error(format!("users matching `{filter}`")))?,
        };
        Ok::<_, ResolveError>((*source, users))
    }))
    .await
}

/// List the tenant once, keeping only the users `join` wants: memory follows the targets,
/// not the tenant. `counted` is the directory's count from before the listing.
async fn list_and_join(
    directory: &dyn Directory,
    select: &[String],
    join: &mut Join,
    counted: u64,
) -> Result<Found, ResolveError> {
    let mut out = Found {
        users: Vec::new(),
        tenant_users: 0,
    };
    let mut seen = SeenIds::default();
    let mut listing = directory.list_users(UserQuery {
        select: Some(select.to_vec()),
        ..UserQuery::default()
    });
    while let Some(user) = listing
        .try_next()
        .await
        .map_err(read_error("the tenant's users"))?
    {
        if !seen.insert(&user.id) {
            return Err(ListingError::Duplicate { id: user.id }.into());
        }
        let id = lower(&user.id);
        if let Some(first_seen) = join.take(&id, &user.upn, out.tenant_users) {
            out.users.push(ResolvedUser::from_user(user, first_seen));
        }
        out.tenant_users += 1;
    }
    out.tenant_users = tenant_size(directory, counted, out.tenant_users).await?;
    Ok(out)
}

/// The tenant's size: the directory's count, which the listing must agree with. A tenant
/// that changed while it was listed is counted again, and the listing must agree with that.
async fn tenant_size(
    directory: &dyn Directory,
    counted: u64,
    listed: u64,
) -> Result<u64, ResolveError> {
    if listed == counted {
        return Ok(counted);
    }
    let again = directory
        .count_users()
        .await
        .map_err(read_error("the number of the tenant's users"))?;
    if listed == again {
        return Ok(again);
    }
    Err(ListingError::CountMismatch {
        listed,
        counted: again,
    }
    .into())
}

/// The object ids a listing has named so far: GUIDs (every directory object id) in 16
/// bytes, anything else as lower-case text. A million-user tenant costs tens of megabytes.
#[derive(Default)]
struct SeenIds {
    guids: HashSet<u128, Hasher>,
    other: HashSet<String, Hasher>,
}

impl SeenIds {
    /// Remember `id`; false when it was seen before.
    fn insert(&mut self, id: &str) -> bool {
        match uuid::Uuid::try_parse(id) {
            Ok(guid) => self.guids.insert(guid.as_u128()),
            Err(_) => self.other.insert(id.to_lowercase()),
        }
    }
}

/// The properties planning reads: identity, the partition's flags, and only the text
/// attributes `when:` conditions compare (each costs memory per listed user).
fn user_select(playbook: &Playbook) -> Vec<String> {
    let mut select: Vec<String> = [
        "id",
        "userPrincipalName",
        "displayName",
        "accountEnabled",
        "onPremisesSyncEnabled",
        "mobilePhone",
        // How a national mobile number is read (`has_mobile`).
        "usageLocation",
    ]
    .map(String::from)
    .into();
    let conditions = || playbook.steps.iter().filter_map(|s| s.when.as_ref());
    if conditions().any(|c| c.reads_text(TextAttr::Department)) {
        select.push("department".into());
    }
    if conditions().any(|c| c.reads_text(TextAttr::JobTitle)) {
        select.push("jobTitle".into());
    }
    select
}

/// Where a CSV named a target (for the plan's list of targets that did not resolve).
#[derive(Debug, Clone, Copy)]
struct Origin {
    /// Index of the file among the playbook's CSV sources.
    file: usize,
    /// The row's line.
    line: u64,
}

/// A key some source named: when it was first named, and where if from a CSV.
#[derive(Debug, Clone, Copy)]
struct Named {
    rank: u64,
    origin: Option<Origin>,
}

/// A source asked of the directory: its members or matches.
#[derive(Debug, Clone)]
enum SourceRead {
    /// A group's (transitive) user members.
    Group { id: String, transitive: bool },
    /// The users an OData filter matches.
    Filter(String),
}

/// A ranking that keeps sources in order and rows in order within a source.
fn rank(source: u32, position: u64) -> u64 {
    (u64::from(source) << 32) | position
}

/// The join's hasher: fast, and seeded per process so a hostile CSV cannot aim collisions.
type Hasher = foldhash::fast::RandomState;

/// The streaming join: every key the sources named, matched against the tenant's users as
/// the listing goes by. A matched key is removed; what is left at the end did not resolve.
#[derive(Debug, Default)]
struct Join {
    /// Lower-case UPN → where it was named.
    by_upn: HashMap<String, Named, Hasher>,
    /// Lower-case object id → where it was named.
    by_id: HashMap<String, Named, Hasher>,
    /// `all_users`: every listed user, ranked from this source on.
    all_users: Option<u32>,
    /// The source number of each `risky_users` source, in playbook order.
    risky: Vec<u32>,
    /// Sources ranked so far.
    sources: u32,
}

impl Join {
    fn next_source(&mut self) -> u32 {
        self.sources += 1;
        self.sources - 1
    }

    /// Name `key`; the first naming keeps its rank, and a CSV origin is never lost.
    fn want(&mut self, key: TargetKey, rank: u64, origin: Option<Origin>) {
        let (map, key) = match key {
            TargetKey::Upn(upn) => (&mut self.by_upn, upn),
            TargetKey::ObjectId(id) => (&mut self.by_id, id),
        };
        let named = map.entry(key).or_insert(Named { rank, origin });
        named.rank = named.rank.min(rank);
        named.origin = named.origin.or(origin);
    }

    /// Number the sources after the CSVs in playbook order (`all_users` and `risky_users`
    /// remembered here) and return the group and filter sources to read from the directory.
    fn number_sources(&mut self, playbook: &Playbook) -> Vec<(u32, SourceRead)> {
        let mut reads = Vec::new();
        for target in &playbook.targets {
            match target {
                Target::Csv { .. } => {}
                Target::AllUsers => self.all_users = Some(self.next_source()),
                // Ranked now, filled once risk levels are read.
                Target::RiskyUsers { .. } => {
                    let source = self.next_source();
                    self.risky.push(source);
                }
                Target::Group { id, transitive } => reads.push((
                    self.next_source(),
                    SourceRead::Group {
                        id: id.to_string(),
                        transitive: *transitive,
                    },
                )),
                Target::Filter(filter) => {
                    reads.push((self.next_source(), SourceRead::Filter(filter.clone())));
                }
            }
        }
        reads
    }

    /// Name the users of `risky_users` sources at the levels they ask for.
    fn risky_sources(&mut self, playbook: &Playbook, risk: &HashMap<String, RiskLevel>) {
        let risky = playbook.targets.iter().filter_map(|t| match t {
            Target::RiskyUsers { levels } => Some(levels),
            _ => None,
        });
        for (source, levels) in std::mem::take(&mut self.risky).into_iter().zip(risky) {
            let mut ids: Vec<&String> = risk
                .iter()
                .filter(|(_, level)| levels.contains(level))
                .map(|(id, _)| id)
                .collect();
            ids.sort_unstable();
            for (position, id) in ids.into_iter().enumerate() {
                self.want(
                    TargetKey::ObjectId(id.clone()),
                    rank(source, position as u64),
                    None,
                );
            }
        }
    }

    /// The rank of a listed user if any source named them (forgetting the keys that did).
    fn take(&mut self, id: &str, upn: &str, position: u64) -> Option<u64> {
        let by_id = self.by_id.remove(id).map(|n| n.rank);
        let by_upn = if self.by_upn.is_empty() {
            None
        } else {
            self.by_upn.remove(lower(upn).as_ref()).map(|n| n.rank)
        };
        let all = self.all_users.map(|source| rank(source, position));
        [by_id, by_upn, all].into_iter().flatten().min()
    }

    /// The CSV keys no listed user matched, by file and line.
    fn missing(self, csv_paths: &[PathBuf]) -> Vec<Missing> {
        let mut missing: Vec<(usize, u64, String)> = self
            .by_upn
            .into_iter()
            .chain(self.by_id)
            .filter_map(|(key, named)| named.origin.map(|o| (o.file, o.line, key)))
            .collect();
        missing.sort_unstable();
        missing
            .into_iter()
            .map(|(file, line, target)| Missing {
                target,
                source: format!("{}:{line}", csv_paths[file].display()),
                reason: "no such user in the tenant".into(),
            })
            .collect()
    }
}

/// Risk level by lower-case user id. A playbook that targets risky users needs them (an
/// error is fatal); otherwise they only order the run and feed `when:`, and a tenant
/// without Identity Protection (403) simply has none.
async fn risk_levels(
    directory: &dyn Directory,
    levels: Vec<GraphRisk>,
    required: bool,
) -> Result<(HashMap<String, RiskLevel>, bool), ResolveError> {
    let listed: Result<Vec<_>, DirectoryError> =
        directory.list_risky_users(levels).try_collect().await;
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
                    DirectoryErrorKind::Denied | DirectoryErrorKind::NotFound
                ) =>
        {
            tracing::warn!(message = "Risk levels unavailable; ordering by source only.", %err);
            Ok((HashMap::new(), false))
        }
        Err(err) => Err(read_error("risky users")(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::memory::{MemoryDirectory, Op};

    fn all_users() -> Playbook {
        crate::playbook::load_str(
            "p.yaml",
            "name: p\ntargets: [all_users: {}]\nguards: { max_fraction_of_tenant: 1.0 }\n\
             steps:\n  - revoke_sessions\n",
        )
        .unwrap()
        .playbook
    }

    /// A small tenant's read budget (3,500 per 10 s).
    const MODEL: CostModel = CostModel {
        read_units_per_second: 350.0,
    };

    async fn resolve_all(directory: &MemoryDirectory) -> Result<Resolution, ResolveError> {
        let playbook = all_users();
        let options = ResolveOptions::default();
        let csv = read_csv_sources(&playbook, &options)?;
        resolve(directory, &playbook, csv, &options, &MODEL).await
    }

    #[tokio::test]
    async fn a_short_list_in_a_large_tenant_is_looked_up_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.csv"),
            "upn\nB@contoso.com\nnobody@contoso.com\n",
        )
        .unwrap();
        let playbook = crate::playbook::load_str(
            "p.yaml",
            &format!(
                "name: p\ntargets: [csv: {{ path: '{}', column: upn }}]\nsteps:\n  - revoke_sessions\n",
                dir.path().join("t.csv").display()
            ),
        )
        .unwrap()
        .playbook;
        let directory = MemoryDirectory::new()
            .with_user("a@contoso.com")
            .with_user("b@contoso.com")
            .with_count(1_000_000);
        let options = ResolveOptions::default();
        let csv = read_csv_sources(&playbook, &options).unwrap();
        let resolution = resolve(&directory, &playbook, csv, &options, &MODEL)
            .await
            .unwrap();
        let by = resolution.resolved_by.unwrap();
        assert_eq!(by.method, Method::Lookup, "{}", by.why);
        assert_eq!(
            directory.calls(Op::ListUsers),
            0,
            "the tenant was not listed"
        );
        assert_eq!(directory.calls(Op::LookupUsers), 1);
        assert_eq!(resolution.tenant_users, 1_000_000, "the directory's count");
        let upns: Vec<&str> = resolution.users.iter().map(|u| u.upn.as_str()).collect();
        assert_eq!(upns, ["b@contoso.com"]);
        assert_eq!(resolution.missing.len(), 1);
        assert_eq!(resolution.missing[0].target, "nobody@contoso.com");
        assert!(
            resolution.missing[0].source.ends_with("t.csv:3"),
            "{}",
            resolution.missing[0].source
        );
        assert_eq!(resolution.missing[0].reason, "no such user in the tenant");
    }

    #[tokio::test]
    async fn the_tenant_size_is_the_directory_count_the_listing_agrees_with() {
        let directory = MemoryDirectory::new().with_user("a@x").with_user("b@x");
        let resolution = resolve_all(&directory).await.unwrap();
        assert_eq!(resolution.tenant_users, 2);
        assert_eq!(resolution.users.len(), 2);
        assert_eq!(directory.calls(Op::CountUsers), 1);
    }

    #[tokio::test]
    async fn a_user_listed_twice_is_an_error() {
        let directory = MemoryDirectory::new()
            .with_user("a@x")
            .with_user("b@x")
            .with_user("a@x")
            .with_count(2);
        let err = resolve_all(&directory).await.unwrap_err();
        assert!(
            matches!(&err, ResolveError::Listing(ListingError::Duplicate { id }) if id == "id-a@x"),
            "{err}"
        );
        assert!(err.to_string().contains("listed twice"), "{err}");
    }

    #[tokio::test]
    async fn a_listing_shorter_than_the_count_is_an_error() {
        let directory = MemoryDirectory::new()
            .with_user("a@x")
            .with_user("b@x")
            .with_count(1_000);
        let err = resolve_all(&directory).await.unwrap_err();
        assert!(
            matches!(
                err,
                ResolveError::Listing(ListingError::CountMismatch {
                    listed: 2,
                    counted: 1_000
                })
            ),
            "{err}"
        );
        assert_eq!(
            directory.calls(Op::CountUsers),
            2,
            "counted again before refusing, in case the tenant changed meanwhile"
        );
    }

    #[test]
    fn guids_are_seen_once_whatever_their_spelling() {
        let mut seen = SeenIds::default();
        assert!(seen.insert("6F1C1D7E-0000-4000-8000-000000000001"));
        assert!(!seen.insert("6f1c1d7e-0000-4000-8000-000000000001"));
        assert!(seen.insert("not-a-guid"));
        assert!(!seen.insert("NOT-A-GUID"));
    }
}
