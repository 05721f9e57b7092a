//! [`GraphDirectory`]: the [`Directory`] trait on top of the Graph client. The only place
//! above `graph/` that sees a [`GraphError`]: each is mapped once into a [`DirectoryError`],
//! and the wire choices (advanced queries and their `ConsistencyLevel: eventual` header)
//! are made here.

use futures::future::FutureExt;
use futures::stream::{self, StreamExt, TryStreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::wire::{
    WireAuthMethod, WireEligibility, WireGroup, WireList, WirePage, WireRegistration,
    WireRiskyUser, WireRoleAssignment, WireTap, WireUser, WireUserWithManager,
};
use super::{
    AppAccess, DirFuture, Directory, DirectoryError, DirectoryErrorKind, DirectoryStats,
    ErrorDetail, ItemStream, TokenGrant, types::*,
};
use crate::graph::{BatchItem, GraphClient, GraphError, GraphErrorKind, MAX_PAGE_SIZE, Request};

/// Properties selected when listing or getting users (the default set lacks
/// `accountEnabled`, `department`, `onPremisesSyncEnabled`:
/// <https://learn.microsoft.com/graph/api/user-list>).
pub const USER_SELECT: &str = "id,userPrincipalName,displayName,givenName,preferredLanguage,usageLocation,mail,department,jobTitle,mobilePhone,\
businessPhones,accountEnabled,onPremisesSyncEnabled,userType,lastPasswordChangeDateTime,\
signInSessionsValidFromDateTime,createdDateTime";

/// Users per page of a listing (`$top`).
pub const LIST_PAGE_SIZE: u32 = MAX_PAGE_SIZE;
/// Lookups per `$batch` in [`Directory::lookup_users`] (Graph's limit).
pub const LOOKUPS_PER_BATCH: usize = crate::graph::batch::MAX_BATCH;
/// `$batch` envelopes [`Directory::lookup_users`] keeps in flight.
pub const LOOKUP_BATCHES_IN_FLIGHT: usize = crate::graph::batch::ENVELOPES_IN_FLIGHT;

/// Above this many users, registration details are read by listing the whole report (999
/// per page) rather than one request per user: the report allows 5 requests per 10 s.
const REGISTRATION_LOOKUPS: usize = 2;

/// The authentication methods activity report: `AuditLog.Read.All` and, for the app, a
/// directory role such as Reports Reader or Global Reader
/// (<https://learn.microsoft.com/graph/api/authenticationmethodsroot-list-userregistrationdetails>).
/// Throttled by Graph at 5 requests per 10 s per app and tenant ("Identity and access
/// reports service limits", <https://learn.microsoft.com/graph/throttling-limits>): read in
/// pages of 999, and a 429's Retry-After is waited out by the client.
const REGISTRATION_DETAILS: &str = "/reports/authenticationMethods/userRegistrationDetails";

/// Active directory role assignments
/// (<https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments>).
const ASSIGNMENTS: &str = "/roleManagement/directory/roleAssignments";
/// PIM eligibility instances
/// (<https://learn.microsoft.com/graph/api/rbacapplication-list-roleeligibilityscheduleinstances>).
const ELIGIBILITIES: &str = "/roleManagement/directory/roleEligibilityScheduleInstances";

/// Properties selected on a manager (user or org contact).
const MANAGER_SELECT: &str =
    "id,displayName,givenName,preferredLanguage,userPrincipalName,mail,mobilePhone";

/// The directory of one tenant, through Graph.
#[derive(Debug, Clone)]
pub struct GraphDirectory {
    /// The tenant's client (shared budgets and tokens).
    client: GraphClient,
}

impl GraphDirectory {
    /// A directory over `client`.
    pub fn new(client: GraphClient) -> Self {
        GraphDirectory { client }
    }

    /// A directory for a configured tenant (credentials loaded from env or files).
    pub fn from_settings(
        settings: &crate::config::TenantSettings,
        env: &crate::config::Env,
    ) -> Result<Self, crate::config::ConfigError> {
        GraphClient::from_settings(settings, env).map(Self::new)
    }

    /// The underlying client.
    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    /// The request of one write (shared by single calls and `batch_writes`).
    fn write_request(&self, user_id: &str, op: &WriteOp) -> Result<Request, DirectoryError> {
        Ok(match op {
            WriteOp::ForcePasswordChange(change) => password_request(user_id, change)?,
            WriteOp::RevokeSessions => {
                // Revoking twice is harmless: safe to retry after an unknown outcome.
                Request::post("/users/{}/revokeSignInSessions", &[user_id]).idempotent(true)
            }
            WriteOp::DeleteAuthMethod(method) => {
                let collection = method.kind.collection().ok_or_else(|| {
                    DirectoryError::new(
                        DirectoryErrorKind::Rejected,
                        format!(
                            "authentication method type '{}' cannot be deleted",
                            method.kind.short_name()
                        ),
                    )
                })?;
                Request::delete(
                    &format!("/users/{{}}/authentication/{collection}/{{}}"),
                    &[user_id, &method.id],
                )
            }
            WriteOp::AddGroupMember { group_id } => {
                let object = format!("{}/directoryObjects/{}", self.client.base_url(), user_id);
                Request::post("/groups/{}/members/$ref", &[group_id])
                    .json(&json!({ "@odata.id": object }))?
            }
            WriteOp::RemoveGroupMember { group_id } => {
                Request::delete("/groups/{}/members/{}/$ref", &[group_id, user_id])
            }
        })
    }

    async fn write(&self, user_id: &str, op: &WriteOp) -> Result<(), DirectoryError> {
        let req = self.write_request(user_id, op)?;
        self.send(req).await.map(|_| ())
    }

    /// Every item of a collection whose first page came back in a `$batch` (`first`, its
    /// request `req`): the items of that page, then the pages its `@odata.nextLink` leads to.
    async fn rest_of_page<T>(
        &self,
        first: Option<crate::graph::BatchOutcome>,
        req: Request,
    ) -> Result<Vec<T>, DirectoryError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let first = first.ok_or_else(|| {
            DirectoryError::new(DirectoryErrorKind::Unavailable, "$batch lost an answer")
        })?;
        let page = first?.json::<WirePage<T>>()?;
        let mut items = page.value;
        if let Some(url) = page.next_link {
            if !self.client.same_origin(&url) {
                return Err(DirectoryError::new(
                    DirectoryErrorKind::Unavailable,
                    "nextLink points to another host",
                ));
            }
            let rest: Vec<T> = self
                .client
                .paged::<T>(req.next_page(url))
                .try_collect()
                .await?;
            items.extend(rest);
        }
        Ok(items)
    }

    /// Send one request, its error mapped.
    async fn send(&self, req: Request) -> Result<crate::graph::Response, DirectoryError> {
        Ok(self.client.send(req).await?)
    }
}

/// The one mapping from the Graph client's errors to the directory's: the kind by what the
/// engine can do about it, the status, code and request id kept, the request body never
/// (a `GraphError` does not hold one).
impl From<GraphError> for DirectoryError {
    fn from(e: GraphError) -> Self {
        let kind = match e.kind {
            GraphErrorKind::NotFound => DirectoryErrorKind::NotFound,
            GraphErrorKind::Forbidden => DirectoryErrorKind::Denied,
            GraphErrorKind::OutcomeUnknown => DirectoryErrorKind::OutcomeUnknown,
            GraphErrorKind::Throttled => DirectoryErrorKind::Throttled,
            GraphErrorKind::BadRequest
            | GraphErrorKind::Conflict
            | GraphErrorKind::DependencyFailed
            | GraphErrorKind::Refused => DirectoryErrorKind::Rejected,
            GraphErrorKind::Config
            | GraphErrorKind::Auth
            | GraphErrorKind::Server
            | GraphErrorKind::Transport
            | GraphErrorKind::Decode => DirectoryErrorKind::Unavailable,
        };
        DirectoryError {
            kind,
            detail: ErrorDetail {
                status: e.status,
                code: e.code,
                request_id: e.request_id,
                operation: e.request,
            },
            message: e.message,
        }
    }
}

/// Filters Graph serves only as advanced queries: `ne`, `not` and `endsWith` need
/// `ConsistencyLevel: eventual` and `$count=true`
/// (https://learn.microsoft.com/graph/aad-advanced-queries).
fn needs_advanced_query(filter: &str) -> bool {
    let lower = filter.to_ascii_lowercase();
    [" ne ", "not(", "not ", "endswith("]
        .iter()
        .any(|op| lower.contains(op))
}

/// An OData string literal: quotes doubled.
fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `PATCH /users/{id}` with `passwordProfile`
/// (<https://learn.microsoft.com/graph/api/user-update>): both flags explicit, the password
/// when given. The body is serialized straight into the request's secret buffer.
fn password_request(user_id: &str, change: &PasswordChange) -> Result<Request, DirectoryError> {
    let mut profile = serde_json::Map::new();
    profile.insert(
        "forceChangePasswordNextSignIn".into(),
        Value::Bool(change.force_change_next_sign_in),
    );
    profile.insert(
        "forceChangePasswordNextSignInWithMfa".into(),
        Value::Bool(change.force_change_with_mfa),
    );
    if let Some(p) = &change.password {
        profile.insert(
            "password".into(),
            Value::String(p.expose_secret().to_string()),
        );
    }
    Ok(Request::patch("/users/{}", &[user_id]).json(&json!({ "passwordProfile": profile }))?)
}

fn not_found_is_none<T>(r: Result<T, GraphError>) -> Result<Option<T>, DirectoryError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == GraphErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a token's claims say, for the preflight; an unreadable token says nothing.
fn grant_of(token: &SecretString) -> TokenGrant {
    match crate::graph::claims::decode(token) {
        Ok(claims) => TokenGrant {
            readable: true,
            app_id: claims.app_id().map(str::to_owned),
            tenant_id: claims.tid,
            service_principal_id: claims.oid,
            permissions: claims.roles,
            directory_roles: claims.wids,
            expires: claims
                .exp
                .and_then(|s| jiff::Timestamp::from_second(s).ok()),
        },
        Err(_) => TokenGrant::default(),
    }
}

impl Directory for GraphDirectory {
    fn access(&self) -> DirFuture<'_, Vec<AppAccess>> {
        async move {
            let mut apps = Vec::new();
            for source in self.client.token_sources() {
                let token = match source.token().await {
                    Ok(token) => Ok(grant_of(&token)),
                    Err(err) => Err(DirectoryError::from(err)),
                };
                apps.push(AppAccess {
                    client_id: source.client_id().to_owned(),
                    token,
                });
            }
            Ok(apps)
        }
        .boxed()
    }

    fn recent_writes(&self, at: &[jiff::Timestamp]) {
        self.client
            .governor()
            .account_recent_writes(at, jiff::Timestamp::now());
    }

    fn write_concurrency(&self) -> Option<usize> {
        let limit = self
            .client
            .governor()
            .in_flight_limit(crate::throttle::Bucket::DirectoryWrite);
        Some(limit as usize)
    }

    fn time_scale(&self) -> f64 {
        self.client.governor().quotas().time_scale
    }

    fn stats(&self) -> DirectoryStats {
        DirectoryStats {
            throttled: self.client.stats().throttled,
        }
    }

    fn app_stats(&self) -> Vec<crate::graph::AppStats> {
        self.client.app_stats()
    }

    fn list_users(&self, query: UserQuery) -> ItemStream<'_, User> {
        let select = query
            .select
            .map(|s| s.join(","))
            .unwrap_or_else(|| USER_SELECT.to_string());
        let mut req = Request::get("/users", &[])
            .query("$select", select)
            .query("$top", MAX_PAGE_SIZE.to_string());
        if let Some(f) = query.filter {
            let advanced = needs_advanced_query(&f);
            req = req.query("$filter", f);
            if advanced {
                req = req.advanced_query();
            }
        }
        self.client
            .paged::<WireUser>(req)
            .map_ok(WireUser::into_user)
            .map_err(DirectoryError::from)
            .boxed()
    }

    fn count_users(&self) -> DirFuture<'_, u64> {
        async move {
            // `/users/$count` answers in text/plain and needs `ConsistencyLevel: eventual`
            // (https://learn.microsoft.com/graph/api/user-list, "Get only a count of users").
            let req = Request::get("/users/$count", &[]).header("ConsistencyLevel", "eventual");
            let response = self.send(req).await?;
            let text = String::from_utf8_lossy(response.body());
            text.trim().parse::<u64>().map_err(|_| {
                DirectoryError::new(
                    DirectoryErrorKind::Unavailable,
                    "/users/$count did not answer a number",
                )
                .with_detail(ErrorDetail {
                    status: Some(response.status),
                    code: None,
                    request_id: response.request_id.clone(),
                    operation: Some("GET /users/$count".into()),
                })
            })
        }
        .boxed()
    }

    fn list_group_members(&self, group_id: &str, transitive: bool) -> ItemStream<'_, User> {
        let template = if transitive {
            "/groups/{}/transitiveMembers"
        } else {
            "/groups/{}/members"
        };
        // Non-users come back with just `@odata.type` and `id`; keep the users (no cast
        // segment, which would make this an advanced query).
        let req = Request::get(template, &[group_id])
            .query("$select", USER_SELECT)
            .query("$top", MAX_PAGE_SIZE.to_string());
        self.client
            .paged::<WireUser>(req)
            .try_filter(|u| futures::future::ready(u.is_user()))
            .map_ok(WireUser::into_user)
            .map_err(DirectoryError::from)
            .boxed()
    }

    fn get_user<'a>(&'a self, id_or_upn: &'a str) -> DirFuture<'a, Option<User>> {
        async move {
            let req = Request::get("/users/{}", &[id_or_upn]).query("$select", USER_SELECT);
            let r = self
                .client
                .send(req)
                .await
                .and_then(|r| r.json::<WireUser>());
            not_found_is_none(r).map(|o| o.map(WireUser::into_user))
        }
        .boxed()
    }

    fn lookup_users<'a>(
        &'a self,
        keys: &'a [String],
        select: &'a [String],
    ) -> DirFuture<'a, Vec<Option<User>>> {
        async move {
            // `GET /users/{id | userPrincipalName}` (https://learn.microsoft.com/graph/api/user-get)
            // in `$batch`es of 20 (https://learn.microsoft.com/graph/json-batching): each item
            // answers on its own, a missing user with its own 404 inside a 200 envelope. The
            // client packs the envelopes, sends several at once and re-sends throttled items.
            let select = if select.is_empty() {
                USER_SELECT.to_string()
            } else {
                select.join(",")
            };
            let items = keys
                .iter()
                .map(|key| {
                    BatchItem::new(Request::get("/users/{}", &[key]).query("$select", &select))
                })
                .collect();
            let outcomes = self.client.batch(items).await?;
            outcomes
                .into_iter()
                .map(|outcome| {
                    not_found_is_none(outcome.and_then(|r| r.json::<WireUser>()))
                        .map(|user| user.map(WireUser::into_user))
                })
                .collect()
        }
        .boxed()
    }

    fn get_group<'a>(&'a self, id: &'a str) -> DirFuture<'a, Option<Group>> {
        async move {
            // https://learn.microsoft.com/graph/api/group-get: `isAssignableToRole` is
            // returned only when selected.
            let req = Request::get("/groups/{}", &[id])
                .query("$select", "id,displayName,isAssignableToRole");
            let r = self
                .client
                .send(req)
                .await
                .and_then(|r| r.json::<WireGroup>());
            not_found_is_none(r).map(|o| o.map(WireGroup::into_group))
        }
        .boxed()
    }

    fn get_manager<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, Option<Manager>> {
        async move {
            let req =
                Request::get("/users/{}/manager", &[user_id]).query("$select", MANAGER_SELECT);
            let r = self
                .client
                .send(req)
                .await
                .and_then(|r| r.json::<WireUser>());
            not_found_is_none(r).map(|o| o.map(WireUser::into_manager))
        }
        .boxed()
    }

    fn list_role_assignments(&self, filter: Option<String>) -> ItemStream<'_, RoleAssignment> {
        let mut req = Request::get(ASSIGNMENTS, &[]).query("$expand", "principal");
        if let Some(f) = filter {
            req = req.query("$filter", f);
        }
        self.client
            .paged::<WireRoleAssignment>(req)
            .map_ok(RoleAssignment::from)
            .map_err(DirectoryError::from)
            .boxed()
    }

    fn list_role_eligibilities(&self, filter: Option<String>) -> ItemStream<'_, RoleEligibility> {
        // `principal` supports `$expand` on eligibility instances as on assignments
        // (https://learn.microsoft.com/graph/api/resources/unifiedroleeligibilityscheduleinstance):
        // the principal's `@odata.type` says whether it is a user or a group, so no
        // lookup per role holder is needed to tell them apart.
        let mut req = Request::get(ELIGIBILITIES, &[]).query("$expand", "principal");
        if let Some(f) = filter {
            req = req.query("$filter", f);
        }
        self.client
            .paged::<WireEligibility>(req)
            .map_ok(RoleEligibility::from)
            .map_err(DirectoryError::from)
            .boxed()
    }

    fn grants_of<'a>(
        &'a self,
        principal_ids: &'a [String],
        eligible: bool,
    ) -> DirFuture<'a, Vec<PrincipalGrants>> {
        async move {
            // `principalId eq` is a documented filter of both collections
            // (https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments,
            // https://learn.microsoft.com/graph/api/resources/unifiedroleeligibilityscheduleinstance:
            // "Supports $filter (eq, ne)"), sent in `$batch`es of 20, several in flight.
            let request = |collection: &str, id: &str| {
                Request::get(collection, &[])
                    .query("$filter", format!("principalId eq {}", odata_string(id)))
            };
            let mut items = Vec::with_capacity(principal_ids.len() * 2);
            for id in principal_ids {
                items.push(BatchItem::new(request(ASSIGNMENTS, id)));
                if eligible {
                    items.push(BatchItem::new(request(ELIGIBILITIES, id)));
                }
            }
            let mut outcomes = self.client.batch(items).await?.into_iter();
            let mut out = Vec::with_capacity(principal_ids.len());
            for id in principal_ids {
                let assignments = self
                    .rest_of_page::<WireRoleAssignment>(outcomes.next(), request(ASSIGNMENTS, id))
                    .await?
                    .into_iter()
                    .map(RoleAssignment::from)
                    .collect();
                let eligibilities = if eligible {
                    self.rest_of_page::<WireEligibility>(
                        outcomes.next(),
                        request(ELIGIBILITIES, id),
                    )
                    .await?
                    .into_iter()
                    .map(RoleEligibility::from)
                    .collect()
                } else {
                    Vec::new()
                };
                out.push(PrincipalGrants {
                    assignments,
                    eligibilities,
                });
            }
            Ok(out)
        }
        .boxed()
    }

    fn list_role_assignable_groups(&self) -> ItemStream<'_, Group> {
        // `isAssignableToRole` supports `$filter` (eq)
        // (https://learn.microsoft.com/graph/api/resources/group).
        let req = Request::get("/groups", &[])
            .query("$filter", "isAssignableToRole eq true")
            .query("$select", "id,displayName,isAssignableToRole")
            .query("$top", MAX_PAGE_SIZE.to_string());
        self.client
            .paged::<WireGroup>(req)
            .map_ok(WireGroup::into_group)
            .map_err(DirectoryError::from)
            .boxed()
    }

    fn list_risky_users(&self, levels: Vec<RiskLevel>) -> ItemStream<'_, RiskyUser> {
        let client = self.client.clone();
        stream::iter(levels)
            .map(move |level| {
                // Identity Protection answers 1 request/s per tenant: ask for the largest page
                // it serves ("The maximum page size with $top is 500 objects", riskyuser-list).
                let req = Request::get("/identityProtection/riskyUsers", &[])
                    .query("$filter", format!("riskLevel eq '{}'", level.as_str()))
                    .query("$top", "500");
                client.paged::<WireRiskyUser>(req)
            })
            .flatten()
            .map_ok(RiskyUser::from)
            .map_err(DirectoryError::from)
            .boxed()
    }

    fn registration_details(&self, user_ids: Option<Vec<String>>) -> ItemStream<'_, Registration> {
        match user_ids {
            // A few users: one `GET .../userRegistrationDetails/{id}` each; a user the
            // report does not hold (404) is absent.
            Some(ids) if ids.len() <= REGISTRATION_LOOKUPS => {
                let client = self.client.clone();
                stream::iter(ids)
                    .then(move |id| {
                        let client = client.clone();
                        async move {
                            let req = Request::get(&format!("{REGISTRATION_DETAILS}/{{}}"), &[&id]);
                            let r = client
                                .send(req)
                                .await
                                .and_then(|r| r.json::<WireRegistration>());
                            not_found_is_none(r).map(|o| o.map(Registration::from))
                        }
                    })
                    .try_filter_map(|r| futures::future::ready(Ok(r)))
                    .boxed()
            }
            // Many users: list the report and keep theirs (`id` is not among the
            // properties the report filters on).
            wanted => {
                let wanted: Option<std::collections::HashSet<String>> =
                    wanted.map(|ids| ids.into_iter().map(|i| i.to_ascii_lowercase()).collect());
                let req = Request::get(REGISTRATION_DETAILS, &[])
                    .query("$top", MAX_PAGE_SIZE.to_string());
                self.client
                    .paged::<WireRegistration>(req)
                    .map_err(DirectoryError::from)
                    .try_filter(move |w| {
                        futures::future::ready(
                            wanted
                                .as_ref()
                                .is_none_or(|set| set.contains(&w.id.to_ascii_lowercase())),
                        )
                    })
                    .map_ok(Registration::from)
                    .boxed()
            }
        }
    }

    fn list_users_with_manager(&self, query: UserQuery) -> ItemStream<'_, (User, Option<String>)> {
        let select = query
            .select
            .map(|s| s.join(","))
            .unwrap_or_else(|| USER_SELECT.to_string());
        // https://learn.microsoft.com/graph/api/user-list-manager: `$expand=manager` on the
        // users collection returns each user's manager inline (absent: none).
        let mut req = Request::get("/users", &[])
            .query("$select", select)
            .query("$expand", "manager($select=id)")
            .query("$top", MAX_PAGE_SIZE.to_string());
        if let Some(f) = query.filter {
            let advanced = needs_advanced_query(&f);
            req = req.query("$filter", f);
            if advanced {
                req = req.advanced_query();
            }
        }
        self.client
            .paged::<WireUserWithManager>(req)
            .map_ok(|w| (w.user.into_user(), w.manager.map(|m| m.id)))
            .map_err(DirectoryError::from)
            .boxed()
    }

    fn force_password_change<'a>(
        &'a self,
        user_id: &'a str,
        change: &'a PasswordChange,
    ) -> DirFuture<'a, ()> {
        async move {
            self.send(password_request(user_id, change)?)
                .await
                .map(|_| ())
        }
        .boxed()
    }

    fn revoke_sessions<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, ()> {
        async move { self.write(user_id, &WriteOp::RevokeSessions).await }.boxed()
    }

    fn list_auth_methods<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, Vec<AuthMethod>> {
        async move {
            let req = Request::get("/users/{}/authentication/methods", &[user_id]);
            let list: WireList<WireAuthMethod> = self.send(req).await?.json()?;
            Ok(list.value.into_iter().map(AuthMethod::from).collect())
        }
        .boxed()
    }

    fn delete_auth_method<'a>(
        &'a self,
        user_id: &'a str,
        method: &'a AuthMethod,
    ) -> DirFuture<'a, ()> {
        async move {
            self.write(user_id, &WriteOp::DeleteAuthMethod(method.clone()))
                .await
        }
        .boxed()
    }

    fn create_tap<'a>(
        &'a self,
        user_id: &'a str,
        request: &'a TapRequest,
    ) -> DirFuture<'a, TemporaryAccessPass> {
        async move {
            let mut body = serde_json::Map::new();
            if let Some(start) = request.start {
                body.insert("startDateTime".into(), Value::String(start.to_string()));
            }
            if let Some(minutes) = request.lifetime_minutes {
                body.insert("lifetimeInMinutes".into(), Value::from(minutes));
            }
            body.insert("isUsableOnce".into(), Value::Bool(request.usable_once));
            let req = Request::post(
                "/users/{}/authentication/temporaryAccessPassMethods",
                &[user_id],
            )
            .json(&body)?;
            let wire: WireTap = self.send(req).await?.json()?;
            let start = wire.start();
            let pass = wire
                .temporary_access_pass
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    DirectoryError::new(
                        DirectoryErrorKind::Unavailable,
                        "created Temporary Access Pass has no temporaryAccessPass value",
                    )
                })?;
            Ok(TemporaryAccessPass {
                id: wire.id,
                pass: SecretString::from(pass),
                start,
                lifetime_minutes: wire.lifetime_in_minutes,
                usable_once: wire.is_usable_once,
            })
        }
        .boxed()
    }

    fn is_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, bool> {
        async move {
            // `$filter` on a group's members is an advanced query
            // (https://learn.microsoft.com/graph/aad-advanced-queries): one small page instead
            // of listing the whole group.
            let req = Request::get("/groups/{}/members", &[group_id])
                .query("$filter", format!("id eq {}", odata_string(user_id)))
                .query("$select", "id")
                .advanced_query();
            let list: WireList<WireUser> = self.send(req).await?.json()?;
            Ok(list
                .value
                .iter()
                .any(|m| m.id.eq_ignore_ascii_case(user_id)))
        }
        .boxed()
    }

    fn add_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, ()> {
        async move {
            self.write(
                user_id,
                &WriteOp::AddGroupMember {
                    group_id: group_id.to_string(),
                },
            )
            .await
        }
        .boxed()
    }

    fn remove_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, ()> {
        async move {
            self.write(
                user_id,
                &WriteOp::RemoveGroupMember {
                    group_id: group_id.to_string(),
                },
            )
            .await
        }
        .boxed()
    }

    fn confirm_compromised<'a>(&'a self, user_ids: &'a [String]) -> DirFuture<'a, ()> {
        async move {
            let req = Request::post("/identityProtection/riskyUsers/confirmCompromised", &[])
                .json(&json!({ "userIds": user_ids }))?;
            self.send(req).await.map(|_| ())
        }
        .boxed()
    }

    fn send_mail<'a>(&'a self, sender: &'a str, mail: &'a Mail) -> DirFuture<'a, ()> {
        async move {
            let to: Vec<Value> = mail
                .to
                .iter()
                .map(|a| json!({"emailAddress": {"address": a}}))
                .collect();
            let body = json!({
                "message": {
                    "subject": mail.subject,
                    "body": {"contentType": "HTML", "content": mail.html_body},
                    "toRecipients": to,
                },
                "saveToSentItems": mail.save_to_sent_items,
            });
            let req = Request::post("/users/{}/sendMail", &[sender]).json(&body)?;
            self.send(req).await.map(|_| ())
        }
        .boxed()
    }

    fn send_mime<'a>(&'a self, sender: &'a str, mime: &'a [u8]) -> DirFuture<'a, ()> {
        async move {
            // "Send mail in MIME format": `Content-Type: text/plain`, the body the base64 of
            // the MIME message; 202 Accepted (bad base64 is 400
            // ErrorMimeContentInvalidBase64String)
            // (<https://learn.microsoft.com/graph/api/user-sendmail>).
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(mime);
            let req = Request::post("/users/{}/sendMail", &[sender]).text_body(encoded);
            self.send(req).await.map(|_| ())
        }
        .boxed()
    }

    fn batch_writes(
        &self,
        writes: Vec<UserWrite>,
    ) -> DirFuture<'_, Vec<Result<(), DirectoryError>>> {
        async move {
            // Validation failures (e.g. an undeletable method) become per-item errors; their
            // dependents fail as rejected without being sent.
            let n = writes.len();
            let mut results: Vec<Option<Result<(), DirectoryError>>> = vec![None; n];
            let mut position: Vec<Option<usize>> = vec![None; n];
            let mut items = Vec::with_capacity(n);
            let mut index_map = Vec::with_capacity(n);
            for (i, w) in writes.iter().enumerate() {
                let dependency = match w.after {
                    None => Ok(None),
                    Some(d) if d < i => position[d].map(Some).ok_or_else(|| {
                        DirectoryError::new(
                            DirectoryErrorKind::Rejected,
                            format!("write {d} it depends on was not sent"),
                        )
                    }),
                    Some(d) => Err(DirectoryError::new(
                        DirectoryErrorKind::Rejected,
                        format!("write {i} depends on write {d}, which is not earlier"),
                    )),
                };
                match (self.write_request(&w.user_id, &w.op), dependency) {
                    (Ok(request), Ok(dep)) => {
                        position[i] = Some(items.len());
                        items.push(BatchItem {
                            request,
                            depends_on: dep.into_iter().collect(),
                        });
                        index_map.push(i);
                    }
                    (Err(e), _) | (_, Err(e)) => results[i] = Some(Err(e)),
                }
            }
            let outcomes = self.client.batch(items).await?;
            for (k, outcome) in outcomes.into_iter().enumerate() {
                results[index_map[k]] = Some(outcome.map(|_| ()).map_err(DirectoryError::from));
            }
            Ok(results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| {
                        Err(DirectoryError::new(
                            DirectoryErrorKind::Unavailable,
                            "write without outcome",
                        ))
                    })
                })
                .collect())
        }
        .boxed()
    }
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

    #[test]
    fn graph_errors_map_to_what_the_engine_acts_on() {
        let cases = [
            (404, DirectoryErrorKind::NotFound),
            (403, DirectoryErrorKind::Denied),
            (429, DirectoryErrorKind::Throttled),
            (400, DirectoryErrorKind::Rejected),
            (409, DirectoryErrorKind::Rejected),
            (424, DirectoryErrorKind::Rejected),
            (401, DirectoryErrorKind::Unavailable),
            (503, DirectoryErrorKind::Unavailable),
        ];
        for (status, kind) in cases {
            let body = br#"{"error":{"code":"Some_Code","message":"what happened"}}"#;
            let e = DirectoryError::from(GraphError::from_response(status, body, Some("r".into())));
            assert_eq!(e.kind, kind, "HTTP {status}");
            assert_eq!(e.detail.status, Some(status));
            assert_eq!(e.detail.code.as_deref(), Some("Some_Code"));
            assert_eq!(e.detail.request_id.as_deref(), Some("r"));
            assert_eq!(e.message, "what happened");
        }
        let lost = GraphError::new(GraphErrorKind::OutcomeUnknown, "timed out");
        assert_eq!(
            DirectoryError::from(lost).kind,
            DirectoryErrorKind::OutcomeUnknown
        );
    }

    #[test]
    fn odata_strings_double_their_quotes() {
        assert_eq!(odata_string("o'brien"), "'o''brien'");
    }
}
