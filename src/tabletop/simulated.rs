//! A tabletop against a real tenant only reads: [`SimulatedWrites`] wraps its directory,
//! passes every read through and answers every write as Graph would (204, or a created
//! Temporary Access Pass) without sending it, recording it as simulated.

use std::sync::{Arc, Mutex};

use crate::directory::{
    AppAccess, AuthMethod, DirFuture, Directory, DirectoryError, DirectoryStats, Group, ItemStream,
    Mail, Manager, PasswordChange, Registration, RiskLevel, RiskyUser, RoleAssignment,
    RoleEligibility, TapRequest, TemporaryAccessPass, User, UserQuery, UserWrite, WriteOp,
};
use futures::FutureExt;

/// One write the tabletop did not send: what and to whom (an object id or a mailbox).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SimulatedWrite {
    /// The operation, e.g. `force_password_change`.
    pub op: &'static str,
    /// The user (or, for mail, the sending mailbox) it was for.
    pub target: String,
}

/// Reads go to `inner`; writes are recorded and answered with Graph's success response.
pub struct SimulatedWrites {
    inner: Arc<dyn Directory>,
    log: Mutex<Vec<SimulatedWrite>>,
}

impl SimulatedWrites {
    /// Wrap `inner`: nothing this directory is asked to write reaches it.
    pub fn new(inner: Arc<dyn Directory>) -> Self {
        SimulatedWrites {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }

    /// Every write simulated so far, in order.
    pub fn writes(&self) -> Vec<SimulatedWrite> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, op: &'static str, target: &str) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(SimulatedWrite {
                op,
                target: target.to_owned(),
            });
    }

    /// Record a write and answer it as Graph answers a successful one (204 No Content).
    fn ok<'a>(&'a self, op: &'static str, target: &str) -> DirFuture<'a, ()> {
        self.record(op, target);
        std::future::ready(Ok(())).boxed()
    }
}

fn op_name(op: &WriteOp) -> &'static str {
    match op {
        WriteOp::ForcePasswordChange(_) => "force_password_change",
        WriteOp::RevokeSessions => "revoke_sessions",
        WriteOp::DeleteAuthMethod(_) => "delete_auth_method",
        WriteOp::AddGroupMember { .. } => "add_group_member",
        WriteOp::RemoveGroupMember { .. } => "remove_group_member",
    }
}

impl Directory for SimulatedWrites {
    fn list_users(&self, query: UserQuery) -> ItemStream<'_, User> {
        self.inner.list_users(query)
    }

    fn registration_details(&self, user_ids: Option<Vec<String>>) -> ItemStream<'_, Registration> {
        self.inner.registration_details(user_ids)
    }

    fn list_users_with_manager(&self, query: UserQuery) -> ItemStream<'_, (User, Option<String>)> {
        self.inner.list_users_with_manager(query)
    }

    fn lookup_users<'a>(
        &'a self,
        keys: &'a [String],
        select: &'a [String],
    ) -> DirFuture<'a, Vec<Option<User>>> {
        self.inner.lookup_users(keys, select)
    }

    fn count_users(&self) -> DirFuture<'_, u64> {
        self.inner.count_users()
    }

    fn list_group_members(&self, group_id: &str, transitive: bool) -> ItemStream<'_, User> {
        self.inner.list_group_members(group_id, transitive)
    }

    fn get_user<'a>(&'a self, id_or_upn: &'a str) -> DirFuture<'a, Option<User>> {
        self.inner.get_user(id_or_upn)
    }

    fn get_group<'a>(&'a self, id: &'a str) -> DirFuture<'a, Option<Group>> {
        self.inner.get_group(id)
    }

    fn get_manager<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, Option<Manager>> {
        self.inner.get_manager(user_id)
    }

    fn list_role_assignments(&self, filter: Option<String>) -> ItemStream<'_, RoleAssignment> {
        self.inner.list_role_assignments(filter)
    }

    fn list_role_eligibilities(&self, filter: Option<String>) -> ItemStream<'_, RoleEligibility> {
        self.inner.list_role_eligibilities(filter)
    }

    fn grants_of<'a>(
        &'a self,
        principal_ids: &'a [String],
        eligible: bool,
    ) -> DirFuture<'a, Vec<crate::directory::PrincipalGrants>> {
        self.inner.grants_of(principal_ids, eligible)
    }

    fn list_role_assignable_groups(&self) -> ItemStream<'_, Group> {
        self.inner.list_role_assignable_groups()
    }

    fn list_risky_users(&self, levels: Vec<RiskLevel>) -> ItemStream<'_, RiskyUser> {
        self.inner.list_risky_users(levels)
    }

    fn force_password_change<'a>(
        &'a self,
        user_id: &'a str,
        _change: &'a PasswordChange,
    ) -> DirFuture<'a, ()> {
        self.ok("force_password_change", user_id)
    }

    fn revoke_sessions<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, ()> {
        self.ok("revoke_sessions", user_id)
    }

    fn list_auth_methods<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, Vec<AuthMethod>> {
        self.inner.list_auth_methods(user_id)
    }

    fn delete_auth_method<'a>(
        &'a self,
        user_id: &'a str,
        _method: &'a AuthMethod,
    ) -> DirFuture<'a, ()> {
        self.ok("delete_auth_method", user_id)
    }

    fn create_tap<'a>(
        &'a self,
        user_id: &'a str,
        request: &'a TapRequest,
    ) -> DirFuture<'a, TemporaryAccessPass> {
        self.record("create_tap", user_id);
        // Graph answers 201 with the pass; a simulated one is a fresh random value, so the
        // rest of the pipeline (delivery by SMS or to the manager) is exercised as it would be.
        // Without `lifetimeInMinutes` Graph takes the policy's default, 60 minutes:
        // https://learn.microsoft.com/en-us/graph/api/authentication-post-temporaryaccesspassmethods
        std::future::ready(Ok(TemporaryAccessPass {
            id: format!("simulated-{}", uuid::Uuid::new_v4()),
            pass: crate::engine::password::temporary(),
            start: request.start,
            lifetime_minutes: Some(request.lifetime_minutes.unwrap_or(60)),
            usable_once: Some(request.usable_once),
        }))
        .boxed()
    }

    fn is_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, bool> {
        self.inner.is_group_member(group_id, user_id)
    }

    fn add_group_member<'a>(&'a self, _group_id: &'a str, user_id: &'a str) -> DirFuture<'a, ()> {
        self.ok("add_group_member", user_id)
    }

    fn remove_group_member<'a>(
        &'a self,
        _group_id: &'a str,
        user_id: &'a str,
    ) -> DirFuture<'a, ()> {
        self.ok("remove_group_member", user_id)
    }

    fn confirm_compromised<'a>(&'a self, user_ids: &'a [String]) -> DirFuture<'a, ()> {
        for id in user_ids {
            self.record("confirm_compromised", id);
        }
        std::future::ready(Ok(())).boxed()
    }

    fn send_mail<'a>(&'a self, sender: &'a str, _mail: &'a Mail) -> DirFuture<'a, ()> {
        self.ok("send_mail", sender)
    }

    fn send_mime<'a>(&'a self, sender: &'a str, _mime: &'a [u8]) -> DirFuture<'a, ()> {
        self.ok("send_mail", sender)
    }

    fn batch_writes(
        &self,
        writes: Vec<UserWrite>,
    ) -> DirFuture<'_, Vec<Result<(), DirectoryError>>> {
        let results = writes
            .iter()
            .map(|w| {
                self.record(op_name(&w.op), &w.user_id);
                Ok(())
            })
            .collect();
        std::future::ready(Ok(results)).boxed()
    }

    fn access(&self) -> DirFuture<'_, Vec<AppAccess>> {
        self.inner.access()
    }

    fn stats(&self) -> DirectoryStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::directory::memory::{MemoryDirectory, Op};

    #[tokio::test]
    async fn reads_go_through_and_writes_never_reach_the_tenant() {
        let inner = Arc::new(
            MemoryDirectory::new()
                .with_user("a@contoso.example")
                .with_group("g1", &[]),
        );
        let sim = SimulatedWrites::new(Arc::clone(&inner) as Arc<dyn Directory>);
        let user = sim.get_user("a@contoso.example").await.unwrap().unwrap();
        assert_eq!(inner.calls(Op::GetUser), 1);

        let change = PasswordChange {
            force_change_next_sign_in: true,
            force_change_with_mfa: true,
            password: Some(crate::engine::password::scramble()),
        };
        sim.force_password_change(&user.id, &change).await.unwrap();
        sim.revoke_sessions(&user.id).await.unwrap();
        sim.add_group_member("g1", &user.id).await.unwrap();
        sim.confirm_compromised(std::slice::from_ref(&user.id))
            .await
            .unwrap();
        sim.send_mime(
            "noreply@contoso.example",
            b"To: a@contoso.example\r\n\r\nhi",
        )
        .await
        .unwrap();
        let request = TapRequest {
            start: None,
            lifetime_minutes: None,
            usable_once: true,
        };
        let tap = sim.create_tap(&user.id, &request).await.unwrap();
        assert_eq!(tap.lifetime_minutes, Some(60));
        assert!(!tap.pass.expose_secret().is_empty());
        let batch = sim
            .batch_writes(vec![UserWrite {
                user_id: user.id.clone(),
                op: WriteOp::RevokeSessions,
                after: None,
            }])
            .await
            .unwrap();
        assert!(batch[0].is_ok());

        for op in [
            Op::ForcePasswordChange,
            Op::RevokeSessions,
            Op::AddGroupMember,
            Op::ConfirmCompromised,
            Op::SendMime,
            Op::CreateTap,
        ] {
            assert_eq!(inner.calls(op), 0, "{op:?} reached the tenant");
        }
        assert!(inner.members("g1").is_empty());
        assert!(inner.sent_mime().is_empty());
        let ops: Vec<&str> = sim.writes().iter().map(|w| w.op).collect();
        assert_eq!(
            ops,
            [
                "force_password_change",
                "revoke_sessions",
                "add_group_member",
                "confirm_compromised",
                "send_mail",
                "create_tap",
                "revoke_sessions"
            ]
        );
        // The log names whom, never the secret.
        assert!(
            sim.writes()
                .iter()
                .all(|w| w.target == user.id || w.target == "noreply@contoso.example")
        );
    }
}
