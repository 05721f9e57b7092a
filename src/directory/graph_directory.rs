//! [`GraphDirectory`]: the [`Directory`] trait on top of the Graph client.

use futures::future::FutureExt;
use futures::stream::{self, StreamExt, TryStreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::wire::{
    WireAuthMethod, WireEligibility, WireList, WireRiskyUser, WireRoleAssignment, WireTap, WireUser,
};
use super::{DirFuture, Directory, ItemStream, types::*};
use crate::graph::{
    BatchItem, ClientStats, GraphClient, GraphError, GraphErrorKind, MAX_PAGE_SIZE, Request,
};

/// Properties selected when listing or getting users (the default set lacks
/// `accountEnabled`, `department`, `onPremisesSyncEnabled`: reference §2).
pub const USER_SELECT: &str = "id,userPrincipalName,displayName,mail,department,jobTitle,mobilePhone,\
businessPhones,accountEnabled,onPremisesSyncEnabled,userType,lastPasswordChangeDateTime,\
signInSessionsValidFromDateTime,createdDateTime";

/// Properties selected on a manager (user or org contact).
const MANAGER_SELECT: &str = "id,displayName,userPrincipalName,mail,mobilePhone";

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
    fn write_request(&self, user_id: &str, op: &WriteOp) -> Result<Request, GraphError> {
        Ok(match op {
            WriteOp::ForcePasswordChange(change) => password_request(user_id, change)?,
            WriteOp::RevokeSessions => {
                // Revoking twice is harmless: safe to retry after an unknown outcome.
                Request::post("/users/{}/revokeSignInSessions", &[user_id]).idempotent(true)
            }
            WriteOp::DeleteAuthMethod(method) => {
                let collection = method.kind.collection().ok_or_else(|| {
                    GraphError::new(
                        GraphErrorKind::Refused,
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

    async fn write(&self, user_id: &str, op: &WriteOp) -> Result<(), GraphError> {
        let req = self.write_request(user_id, op)?;
        self.client.send(req).await.map(|_| ())
    }
}

/// `PATCH /users/{id}` with `passwordProfile` (reference §3): both flags explicit, the
/// password when given. The body is serialized straight into the request's secret buffer.
fn password_request(user_id: &str, change: &PasswordChange) -> Result<Request, GraphError> {
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
    Request::patch("/users/{}", &[user_id]).json(&json!({ "passwordProfile": profile }))
}

fn not_found_is_none<T>(r: Result<T, GraphError>) -> Result<Option<T>, GraphError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == GraphErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Directory for GraphDirectory {
    fn stats(&self) -> ClientStats {
        self.client.stats()
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
            req = req.query("$filter", f);
        }
        if query.advanced {
            req = req.advanced_query();
        }
        self.client
            .paged::<WireUser>(req)
            .map_ok(WireUser::into_user)
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
        let mut req = Request::get("/roleManagement/directory/roleAssignments", &[])
            .query("$expand", "principal");
        if let Some(f) = filter {
            req = req.query("$filter", f);
        }
        self.client
            .paged::<WireRoleAssignment>(req)
            .map_ok(RoleAssignment::from)
            .boxed()
    }

    fn list_role_eligibilities(&self, filter: Option<String>) -> ItemStream<'_, RoleEligibility> {
        let mut req = Request::get(
            "/roleManagement/directory/roleEligibilityScheduleInstances",
            &[],
        );
        if let Some(f) = filter {
            req = req.query("$filter", f);
        }
        self.client
            .paged::<WireEligibility>(req)
            .map_ok(RoleEligibility::from)
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
            .boxed()
    }

    fn force_password_change<'a>(
        &'a self,
        user_id: &'a str,
        change: &'a PasswordChange,
    ) -> DirFuture<'a, ()> {
        async move {
            self.client
                .send(password_request(user_id, change)?)
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
            let list: WireList<WireAuthMethod> = self.client.send(req).await?.json()?;
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
            let wire: WireTap = self.client.send(req).await?.json()?;
            let start = wire.start();
            let pass = wire
                .temporary_access_pass
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    GraphError::new(
                        GraphErrorKind::Decode,
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
            self.client.send(req).await.map(|_| ())
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
            self.client.send(req).await.map(|_| ())
        }
        .boxed()
    }

    fn batch_writes(&self, writes: Vec<UserWrite>) -> DirFuture<'_, Vec<Result<(), GraphError>>> {
        async move {
            // Validation failures (e.g. an undeletable method) become per-item errors; their
            // dependents fail with DependencyFailed without being sent.
            let n = writes.len();
            let mut results: Vec<Option<Result<(), GraphError>>> = vec![None; n];
            let mut position: Vec<Option<usize>> = vec![None; n];
            let mut items = Vec::with_capacity(n);
            let mut index_map = Vec::with_capacity(n);
            for (i, w) in writes.iter().enumerate() {
                let dependency = match w.after {
                    None => Ok(None),
                    Some(d) if d < i => position[d].map(Some).ok_or_else(|| {
                        GraphError::new(
                            GraphErrorKind::DependencyFailed,
                            format!("write {d} it depends on was not sent"),
                        )
                    }),
                    Some(d) => Err(GraphError::new(
                        GraphErrorKind::Refused,
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
                results[index_map[k]] = Some(outcome.map(|_| ()));
            }
            Ok(results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| {
                        Err(GraphError::new(
                            GraphErrorKind::Decode,
                            "write without outcome",
                        ))
                    })
                })
                .collect())
        }
        .boxed()
    }
}
