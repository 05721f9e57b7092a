//! The `Directory` trait: every directory read and write the engine, targeting,
//! verification and comms need, as typed operations. The engine talks to Graph only through
//! it, so tests and the emulator can plug in behind the same trait.
//!
//! - [`types`]: plain domain types ([`User`], [`Manager`], [`RoleAssignment`], ...).
//! - [`graph_directory`]: [`GraphDirectory`], the implementation on the Graph client.
//!
//! - [`error`]: [`DirectoryError`], the one error type of every operation, and
//!   [`DirectoryStats`].
//! - [`access`]: [`AppAccess`], what each app's access token says it was granted.
//!
//! The trait is object-safe: methods return boxed futures and streams, so callers can hold an
//! `Arc<dyn Directory>` (or be generic over `D: Directory`). Errors are [`DirectoryError`]s,
//! whatever client is behind the directory: its own errors are mapped once, in the
//! implementation; [`DirectoryErrorKind::OutcomeUnknown`] on a write means "read the state
//! back before retrying". Wire details (headers, query options) stay inside implementations.

pub mod access;
pub mod error;
mod graph_directory;
#[cfg(test)]
pub mod memory;
pub mod types;
mod wire;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use access::{AppAccess, TokenGrant};
pub use error::{DirectoryError, DirectoryErrorKind, DirectoryStats, ErrorDetail};
pub use graph_directory::{
    GraphDirectory, LIST_PAGE_SIZE, LOOKUP_BATCHES_IN_FLIGHT, LOOKUPS_PER_BATCH, USER_SELECT,
};
pub use types::*;

/// A boxed stream of directory items.
pub type ItemStream<'a, T> = BoxStream<'a, Result<T, DirectoryError>>;
/// A boxed future of a directory result.
pub type DirFuture<'a, T> = BoxFuture<'a, Result<T, DirectoryError>>;

/// Directory operations of resetctl. Reads stream their results; writes return `()` or
/// the created object. Every implementation must keep secrets (passwords, TAPs) out of
/// logs and errors.
pub trait Directory: Send + Sync {
    /// Users matching `query` (all users when it has no filter).
    fn list_users(&self, query: UserQuery) -> ItemStream<'_, User>;

    /// How many users the tenant has, as the directory counts them (not by listing): a
    /// listing that disagrees with it lost or repeated pages.
    fn count_users(&self) -> DirFuture<'_, u64>;

    /// User members of a group; `transitive` includes members of nested groups. Non-user
    /// members (devices, service principals, groups) are skipped.
    fn list_group_members(&self, group_id: &str, transitive: bool) -> ItemStream<'_, User>;

    /// One user by object id or UPN; `None` when it does not exist.
    fn get_user<'a>(&'a self, id_or_upn: &'a str) -> DirFuture<'a, Option<User>>;

    /// Many users by object id or UPN, one answer per key in `keys`' order (`None`: no such
    /// user), each with the properties in `select`. Resolving a short breach list this way
    /// costs a request per key, not a listing of the tenant. This default asks
    /// [`Directory::get_user`] a few keys at a time (with its own selection);
    /// [`GraphDirectory`] sends `$batch`es of 20 instead.
    fn lookup_users<'a>(
        &'a self,
        keys: &'a [String],
        select: &'a [String],
    ) -> DirFuture<'a, Vec<Option<User>>> {
        use futures::{FutureExt, StreamExt, TryStreamExt};
        let _ = select;
        futures::stream::iter(keys)
            .map(|key| self.get_user(key))
            .buffered(8)
            .try_collect()
            .boxed()
    }

    /// One group by object id; `None` when it does not exist.
    fn get_group<'a>(&'a self, id: &'a str) -> DirFuture<'a, Option<Group>>;

    /// A user's manager; `None` when the user has none (Graph answers 404).
    fn get_manager<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, Option<Manager>>;

    /// Active role assignments with the principal expanded; `filter` is an OData filter such
    /// as `principalId eq '{id}'` or `roleDefinitionId eq '{templateId}'`.
    fn list_role_assignments(&self, filter: Option<String>) -> ItemStream<'_, RoleAssignment>;

    /// PIM eligibility schedule instances, optionally filtered.
    fn list_role_eligibilities(&self, filter: Option<String>) -> ItemStream<'_, RoleEligibility>;

    /// The grants each of `principal_ids` holds directly, one answer per id in order: active
    /// role assignments and, with `eligible`, PIM eligibilities (`principalId eq '{id}'` on
    /// both collections). Planning a short breach list this way costs two requests per
    /// principal instead of listing every grant of the tenant. This default asks
    /// [`Directory::list_role_assignments`] and [`Directory::list_role_eligibilities`] a few
    /// principals at a time; [`GraphDirectory`] sends `$batch`es of 20 instead.
    fn grants_of<'a>(
        &'a self,
        principal_ids: &'a [String],
        eligible: bool,
    ) -> DirFuture<'a, Vec<PrincipalGrants>> {
        use futures::{FutureExt, StreamExt, TryStreamExt};
        futures::stream::iter(principal_ids)
            .map(move |id| async move {
                let filter = format!("principalId eq '{}'", id.replace('\'', "''"));
                let assignments = self
                    .list_role_assignments(Some(filter.clone()))
                    .try_collect()
                    .await?;
                let eligibilities = if eligible {
                    self.list_role_eligibilities(Some(filter))
                        .try_collect()
                        .await?
                } else {
                    Vec::new()
                };
                Ok(PrincipalGrants {
                    assignments,
                    eligibilities,
                })
            })
            .buffered(8)
            .try_collect()
            .boxed()
    }

    /// The tenant's role-assignable groups (`isAssignableToRole`): the only groups Entra ID
    /// lets hold a directory role, active or eligible. A directory that cannot list them
    /// answers `Unavailable`, and planning then lists every grant instead.
    fn list_role_assignable_groups(&self) -> ItemStream<'_, Group> {
        use futures::StreamExt;
        futures::stream::once(futures::future::ready(Err(DirectoryError::new(
            DirectoryErrorKind::Unavailable,
            "this directory cannot list role-assignable groups",
        ))))
        .boxed()
    }

    /// Risky users at any of `levels` (Identity Protection: paced at 1 request/s).
    fn list_risky_users(&self, levels: Vec<RiskLevel>) -> ItemStream<'_, RiskyUser>;

    /// Authentication-method registration state (the `userRegistrationDetails` report) of
    /// `user_ids`, or of every user when `None`. Users the report does not list are
    /// absent from the stream.
    fn registration_details(&self, user_ids: Option<Vec<String>>) -> ItemStream<'_, Registration>;

    /// Users matching `query`, each with the id of their manager (`None`: no manager).
    /// One listing instead of one manager request per user.
    fn list_users_with_manager(&self, query: UserQuery) -> ItemStream<'_, (User, Option<String>)>;

    /// Forces a password change (`passwordProfile`, both flags explicit).
    fn force_password_change<'a>(
        &'a self,
        user_id: &'a str,
        change: &'a PasswordChange,
    ) -> DirFuture<'a, ()>;

    /// Revokes every refresh token and session cookie of the user.
    fn revoke_sessions<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, ()>;

    /// The user's registered authentication methods.
    fn list_auth_methods<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, Vec<AuthMethod>>;

    /// Deletes one method (refused locally for the password method and unknown types).
    fn delete_auth_method<'a>(
        &'a self,
        user_id: &'a str,
        method: &'a AuthMethod,
    ) -> DirFuture<'a, ()>;

    /// Creates a Temporary Access Pass and returns it (a secret).
    fn create_tap<'a>(
        &'a self,
        user_id: &'a str,
        request: &'a TapRequest,
    ) -> DirFuture<'a, TemporaryAccessPass>;

    /// Whether the user is a direct member of the group (not through a nested group).
    fn is_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, bool>;

    /// Adds a user to a group (e.g. a temporary Conditional Access exclusion group).
    fn add_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, ()>;

    /// Removes a user from a group.
    fn remove_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, ()>;

    /// Marks users as confirmed compromised (risk set to high).
    fn confirm_compromised<'a>(&'a self, user_ids: &'a [String]) -> DirFuture<'a, ()>;

    /// Sends an email as `sender` (a mailbox UPN or id).
    fn send_mail<'a>(&'a self, sender: &'a str, mail: &'a Mail) -> DirFuture<'a, ()>;

    /// Sends a complete MIME message (RFC 5322 bytes: headers, `multipart/alternative`
    /// body) as `sender`, recipients taken from its `To` header. Accepted is not delivered.
    /// The message may hold a secret: it never reaches a log or an error.
    fn send_mime<'a>(&'a self, sender: &'a str, mime: &'a [u8]) -> DirFuture<'a, ()>;

    /// Runs many writes efficiently (`$batch`, `dependsOn` for `after`), one result per write
    /// in order. A write depending on a failed one fails as [`DirectoryErrorKind::Rejected`].
    fn batch_writes(
        &self,
        writes: Vec<UserWrite>,
    ) -> DirFuture<'_, Vec<Result<(), DirectoryError>>>;

    /// Each app of the credential pool with what its access token says it was granted
    /// (fetching a token when none is cached): the preflight's view of permissions. A
    /// token is never returned, only what it says.
    fn access(&self) -> DirFuture<'_, Vec<AppAccess>>;

    /// What the directory has counted so far (429s, for a run's progress line and summary).
    /// Zeros for a directory that counts nothing, such as a test fake.
    fn stats(&self) -> DirectoryStats {
        DirectoryStats::default()
    }

    /// Per app of the credential pool: write requests and 429s so far (`resetctl serve`'s
    /// `/metrics`). Empty for a directory that counts nothing.
    fn app_stats(&self) -> Vec<crate::graph::AppStats> {
        Vec::new()
    }

    /// How many writes the tenant can usefully take at once now: the throttle's in-flight
    /// limit for directory writes (what the write bucket holds and Graph's latency need), so
    /// the engine keeps that many users' pipelines going, not a fixed number. `None` for a
    /// directory that is not throttled.
    fn write_concurrency(&self) -> Option<usize> {
        None
    }

    /// How many times faster than real time this tenant's clock runs (an emulated tenant
    /// at a time scale; 1 for a real one), so a pace a playbook states in real seconds
    /// keeps its meaning in a tabletop exercise.
    fn time_scale(&self) -> f64 {
        1.0
    }

    /// When this runner wrote to the tenant recently (the run store's journal, across runs
    /// and processes), so the directory's throttling starts from how full Graph's write
    /// buckets really are instead of assuming them full. Nothing for a directory that is
    /// not throttled.
    fn recent_writes(&self, _at: &[jiff::Timestamp]) {}
}
