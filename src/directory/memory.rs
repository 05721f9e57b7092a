//! [`MemoryDirectory`]: a tenant in plain maps, for unit tests of the engine and targeting
//! without the binary or HTTP. Writes change the state the way Graph's do (a password change
//! moves `lastPasswordChangeDateTime`, an existing membership is refused), every call is
//! counted, and failures are scripted per operation: an error alone, or a write that lands
//! and then answers an error (an outcome lost on the way back).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use futures::FutureExt;
use futures::stream::{self, StreamExt};
use jiff::Timestamp;
use secrecy::SecretString;

use super::{
    AppAccess, AuthMethod, DirFuture, Directory, DirectoryError, DirectoryErrorKind, ErrorDetail,
    Group, ItemStream, Mail, Manager, PasswordChange, Registration, RiskLevel, RiskyUser,
    RoleAssignment, RoleEligibility, TapRequest, TemporaryAccessPass, TokenGrant, User, UserQuery,
    UserWrite,
};

/// The operations of the trait, to script failures and count calls by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `list_users`.
    ListUsers,
    /// `count_users`.
    CountUsers,
    /// `get_user`.
    GetUser,
    /// `lookup_users` (one per call, whatever the number of keys).
    LookupUsers,
    /// `get_group`.
    GetGroup,
    /// `list_group_members`.
    ListGroupMembers,
    /// `is_group_member`.
    IsGroupMember,
    /// `force_password_change`.
    ForcePasswordChange,
    /// `revoke_sessions`.
    RevokeSessions,
    /// `list_auth_methods`.
    ListAuthMethods,
    /// `delete_auth_method`.
    DeleteAuthMethod,
    /// `create_tap`.
    CreateTap,
    /// `add_group_member`.
    AddGroupMember,
    /// `remove_group_member`.
    RemoveGroupMember,
    /// `confirm_compromised`.
    ConfirmCompromised,
    /// `list_risky_users`.
    ListRiskyUsers,
    /// `send_mime`.
    SendMime,
    /// `registration_details`.
    RegistrationDetails,
    /// `list_users_with_manager`.
    ListUsersWithManager,
    /// `list_role_assignments` without a filter: every grant of the tenant.
    ListRoleAssignments,
}

/// A scripted failure of one call.
#[derive(Debug, Clone)]
struct Scripted {
    /// What the call answers.
    error: DirectoryError,
    /// A write is applied before the error is answered.
    applied: bool,
}

#[derive(Debug, Default)]
struct State {
    users: Vec<User>,
    /// Group id → direct member ids.
    groups: HashMap<String, Vec<String>>,
    /// Groups created with `isAssignableToRole`.
    role_assignable: std::collections::HashSet<String>,
    methods: HashMap<String, Vec<AuthMethod>>,
    risky: Vec<RiskyUser>,
    /// What `count_users` answers instead of the number of users.
    count: Option<u64>,
    /// What `access` answers (default: [`MemoryDirectory::APP`] granted
    /// [`MemoryDirectory::GRANTED`], its service principal `sp-memory-app`).
    access: Option<Vec<AppAccess>>,
    /// Active role assignments.
    assignments: Vec<RoleAssignment>,
    scripted: HashMap<Op, VecDeque<Scripted>>,
    calls: HashMap<Op, usize>,
    /// User id → the id of the user's manager.
    managers: HashMap<String, String>,
    /// MIME messages accepted by `send_mime`: (sender, message bytes).
    outbox: Vec<(String, Vec<u8>)>,
    /// Registration details, in the order they were added.
    registrations: Vec<Registration>,
}

/// A tenant in memory. Build it with [`MemoryDirectory::with_user`] and friends.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    state: Mutex<State>,
}

/// The error Graph answers when a membership already exists (`POST members/$ref`).
fn already_a_member() -> DirectoryError {
    DirectoryError::new(
        DirectoryErrorKind::Rejected,
        "One or more added object references already exist for the following modified \
         properties: 'members'.",
    )
    .with_detail(ErrorDetail {
        status: Some(400),
        code: Some("Request_BadRequest".into()),
        request_id: None,
        operation: Some("POST /groups/{}/members/$ref".into()),
    })
}

fn not_found(what: &str) -> DirectoryError {
    DirectoryError::new(
        DirectoryErrorKind::NotFound,
        format!("Resource '{what}' does not exist."),
    )
    .with_detail(ErrorDetail {
        status: Some(404),
        code: Some("Request_ResourceNotFound".into()),
        request_id: None,
        operation: None,
    })
}

impl MemoryDirectory {
    /// An empty tenant.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a user; its id is `id-<upn>`.
    pub fn with_user(self, upn: &str) -> Self {
        self.state().users.push(User {
            id: format!("id-{upn}"),
            upn: upn.to_owned(),
            display_name: None,
            given_name: None,
            preferred_language: None,
            usage_location: None,
            mail: None,
            department: None,
            job_title: None,
            mobile_phone: None,
            business_phones: Vec::new(),
            account_enabled: Some(true),
            on_premises_sync_enabled: None,
            user_type: Some("Member".into()),
            last_password_change: None,
            sign_in_sessions_valid_from: None,
            created: None,
        });
        self
    }

    /// Sets the contact details of the user `upn` (added before): display name, mail, mobile
    /// phone and preferred language, as the directory holds them.
    pub fn with_contact(
        self,
        upn: &str,
        mail: Option<&str>,
        mobile: Option<&str>,
        language: Option<&str>,
    ) -> Self {
        {
            let mut state = self.state();
            let user = state
                .users
                .iter_mut()
                .find(|u| u.upn == upn)
                .unwrap_or_else(|| panic!("with_contact: no user {upn}"));
            user.display_name = Some(upn.split('@').next().unwrap_or(upn).to_owned());
            user.mail = mail.map(str::to_owned);
            user.mobile_phone = mobile.map(str::to_owned);
            user.preferred_language = language.map(str::to_owned);
        }
        self
    }

    /// Makes the user `manager_upn` (added before) the manager of `upn`.
    pub fn with_manager(self, upn: &str, manager_upn: &str) -> Self {
        self.state()
            .managers
            .insert(format!("id-{upn}"), format!("id-{manager_upn}"));
        self
    }

    /// Adds a group with these direct members (user ids).
    pub fn with_group(self, group_id: &str, members: &[&str]) -> Self {
        self.state().groups.insert(
            group_id.to_owned(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        );
        self
    }

    /// Marks a group role-assignable (`isAssignableToRole`).
    pub fn with_role_assignable(self, group_id: &str) -> Self {
        self.state().role_assignable.insert(group_id.to_owned());
        self
    }

    /// Adds a user's registration details (the `userRegistrationDetails` report's row).
    pub fn with_registration(self, registration: Registration) -> Self {
        self.state().registrations.push(registration);
        self
    }

    /// Gives a user these registered methods.
    pub fn with_methods(self, user_id: &str, methods: Vec<AuthMethod>) -> Self {
        self.state().methods.insert(user_id.to_owned(), methods);
        self
    }

    /// The client id of the one app a memory directory has by default.
    pub const APP: &'static str = "memory-app";

    /// The application permissions its token grants by default: every permission resetctl's
    /// steps and planning need.
    pub const GRANTED: &'static [&'static str] = &[
        "User.ReadWrite.All",
        "User.RevokeSessions.All",
        "UserAuthenticationMethod.ReadWrite.All",
        "GroupMember.ReadWrite.All",
        "RoleManagement.Read.Directory",
        "RoleEligibilitySchedule.Read.Directory",
        "IdentityRiskyUser.ReadWrite.All",
        "AuditLog.Read.All",
    ];

    /// The default app's grant with these permissions instead (a readable token of the
    /// memory tenant, service principal `sp-memory-app`).
    pub fn grant(permissions: &[&str]) -> TokenGrant {
        TokenGrant {
            readable: true,
            app_id: Some(Self::APP.into()),
            tenant_id: Some("memory-tenant".into()),
            service_principal_id: Some("sp-memory-app".into()),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            directory_roles: Vec::new(),
            expires: None,
        }
    }

    /// Makes `access` answer `apps`.
    pub fn with_access(self, apps: Vec<AppAccess>) -> Self {
        self.state().access = Some(apps);
        self
    }

    /// Assigns the directory role `role` (a template id) to `principal_id`, tenant-wide.
    pub fn with_role_assignment(self, principal_id: &str, role: &str) -> Self {
        let mut state = self.state();
        let id = format!("assignment-{}", state.assignments.len());
        state.assignments.push(RoleAssignment {
            id,
            role_definition_id: role.to_owned(),
            principal_id: principal_id.to_owned(),
            directory_scope_id: Some("/".into()),
            principal: None,
        });
        drop(state);
        self
    }

    /// Makes `count_users` answer `count` whatever the users are.
    pub fn with_count(self, count: u64) -> Self {
        self.state().count = Some(count);
        self
    }

    /// The next call of `op` answers `kind` without doing anything.
    pub fn fail_next(&self, op: Op, kind: DirectoryErrorKind) {
        self.script(op, DirectoryError::new(kind, "scripted failure"), false);
    }

    /// The next call of `op` (a write) is applied, then answers "outcome unknown".
    pub fn lose_next_answer(&self, op: Op) {
        self.script(
            op,
            DirectoryError::new(DirectoryErrorKind::OutcomeUnknown, "connection lost"),
            true,
        );
    }

    /// The next call of `op` answers "outcome unknown" without being applied.
    pub fn lose_next_request(&self, op: Op) {
        self.script(
            op,
            DirectoryError::new(DirectoryErrorKind::OutcomeUnknown, "connection lost"),
            false,
        );
    }

    fn script(&self, op: Op, error: DirectoryError, applied: bool) {
        self.state()
            .scripted
            .entry(op)
            .or_default()
            .push_back(Scripted { error, applied });
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: Op) -> usize {
        self.state().calls.get(&op).copied().unwrap_or(0)
    }

    /// The direct members of a group (user ids).
    pub fn members(&self, group_id: &str) -> Vec<String> {
        self.state()
            .groups
            .get(group_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The MIME messages `send_mime` accepted, in order: (sender, message bytes).
    pub fn sent_mime(&self) -> Vec<(String, Vec<u8>)> {
        self.state().outbox.clone()
    }

    /// A user as the tenant holds it now.
    pub fn user(&self, id: &str) -> Option<User> {
        self.state().users.iter().find(|u| u.id == id).cloned()
    }

    /// Counts the call and takes its scripted failure, if any.
    fn begin(&self, op: Op) -> Option<Scripted> {
        let mut state = self.state();
        *state.calls.entry(op).or_default() += 1;
        state.scripted.get_mut(&op).and_then(VecDeque::pop_front)
    }

    /// A write: scripted failure or not, `apply` runs unless the failure says it was lost
    /// before reaching the tenant.
    fn write<T>(
        &self,
        op: Op,
        apply: impl FnOnce(&mut State) -> Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        match self.begin(op) {
            Some(Scripted { error, applied }) => {
                if applied {
                    let _ = apply(&mut self.state());
                }
                Err(error)
            }
            None => apply(&mut self.state()),
        }
    }

    fn read<T>(&self, op: Op, read: impl FnOnce(&State) -> T) -> Result<T, DirectoryError> {
        match self.begin(op) {
            Some(Scripted { error, .. }) => Err(error),
            None => Ok(read(&self.state())),
        }
    }

    fn user_mut<'a>(state: &'a mut State, id: &str) -> Result<&'a mut User, DirectoryError> {
        state
            .users
            .iter_mut()
            .find(|u| u.id == id)
            .ok_or_else(|| not_found(id))
    }
}

fn ready<'a, T: Send + 'a>(r: Result<T, DirectoryError>) -> DirFuture<'a, T> {
    futures::future::ready(r).boxed()
}

fn items<'a, T: Send + 'a>(r: Result<Vec<T>, DirectoryError>) -> ItemStream<'a, T> {
    match r {
        Ok(items) => stream::iter(items.into_iter().map(Ok)).boxed(),
        Err(e) => stream::iter([Err(e)]).boxed(),
    }
}

impl Directory for MemoryDirectory {
    fn list_users(&self, query: UserQuery) -> ItemStream<'_, User> {
        assert!(
            query.filter.is_none(),
            "the memory directory has no filters"
        );
        items(self.read(Op::ListUsers, |s| s.users.clone()))
    }

    fn count_users(&self) -> DirFuture<'_, u64> {
        ready(self.read(Op::CountUsers, |s| s.count.unwrap_or(s.users.len() as u64)))
    }

    fn list_group_members(&self, group_id: &str, _transitive: bool) -> ItemStream<'_, User> {
        let listed = self.read(Op::ListGroupMembers, |s| match s.groups.get(group_id) {
            Some(ids) => Ok(s
                .users
                .iter()
                .filter(|u| ids.contains(&u.id))
                .cloned()
                .collect()),
            None => Err(not_found(group_id)),
        });
        items(listed.and_then(|r| r))
    }

    fn get_user<'a>(&'a self, id_or_upn: &'a str) -> DirFuture<'a, Option<User>> {
        ready(self.read(Op::GetUser, |s| {
            s.users
                .iter()
                .find(|u| u.id == id_or_upn || u.upn.eq_ignore_ascii_case(id_or_upn))
                .cloned()
        }))
    }

    fn lookup_users<'a>(
        &'a self,
        keys: &'a [String],
        _select: &'a [String],
    ) -> DirFuture<'a, Vec<Option<User>>> {
        // Graph matches an object id or a UPN without regard to case.
        ready(self.read(Op::LookupUsers, |s| {
            keys.iter()
                .map(|key| {
                    s.users
                        .iter()
                        .find(|u| u.id.eq_ignore_ascii_case(key) || u.upn.eq_ignore_ascii_case(key))
                        .cloned()
                })
                .collect()
        }))
    }

    fn get_group<'a>(&'a self, id: &'a str) -> DirFuture<'a, Option<Group>> {
        ready(self.read(Op::GetGroup, |s| {
            s.groups.contains_key(id).then(|| Group {
                id: id.to_owned(),
                display_name: None,
                role_assignable: s.role_assignable.contains(id),
            })
        }))
    }

    fn registration_details(&self, user_ids: Option<Vec<String>>) -> ItemStream<'_, Registration> {
        items(self.read(Op::RegistrationDetails, |s| {
            s.registrations
                .iter()
                .filter(|r| {
                    user_ids
                        .as_ref()
                        .is_none_or(|ids| ids.iter().any(|i| i.eq_ignore_ascii_case(&r.id)))
                })
                .cloned()
                .collect()
        }))
    }

    fn list_users_with_manager(&self, query: UserQuery) -> ItemStream<'_, (User, Option<String>)> {
        assert!(
            query.filter.is_none(),
            "the memory directory has no filters"
        );
        items(self.read(Op::ListUsersWithManager, |s| {
            s.users
                .iter()
                .map(|u| (u.clone(), s.managers.get(&u.id).cloned()))
                .collect()
        }))
    }

    fn get_manager<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, Option<Manager>> {
        let state = self.state();
        let manager = state.managers.get(user_id).and_then(|id| {
            state.users.iter().find(|u| &u.id == id).map(|u| Manager {
                kind: super::ObjectKind::User,
                id: u.id.clone(),
                display_name: u.display_name.clone(),
                upn: Some(u.upn.clone()),
                given_name: u.given_name.clone(),
                preferred_language: u.preferred_language.clone(),
                mail: u.mail.clone(),
                mobile_phone: u.mobile_phone.clone(),
            })
        });
        ready(Ok(manager))
    }

    fn list_role_assignments(&self, filter: Option<String>) -> ItemStream<'_, RoleAssignment> {
        // The one filter the memory directory understands: `principalId eq '{id}'`.
        let principal = filter.map(|f| {
            f.strip_prefix("principalId eq '")
                .and_then(|rest| rest.strip_suffix('\''))
                .unwrap_or_else(|| panic!("the memory directory cannot filter by {f}"))
                .to_owned()
        });
        let all = |s: &State| -> Vec<RoleAssignment> {
            s.assignments
                .iter()
                .filter(|a| principal.as_ref().is_none_or(|p| &a.principal_id == p))
                .cloned()
                .collect()
        };
        if principal.is_none() {
            return items(self.read(Op::ListRoleAssignments, all));
        }
        items(Ok(all(&self.state())))
    }

    fn access(&self) -> DirFuture<'_, Vec<AppAccess>> {
        let apps = self.state().access.clone().unwrap_or_else(|| {
            vec![AppAccess {
                client_id: Self::APP.into(),
                token: Ok(Self::grant(Self::GRANTED)),
            }]
        });
        ready(Ok(apps))
    }

    fn list_role_assignable_groups(&self) -> ItemStream<'_, Group> {
        items(self.read(Op::GetGroup, |s| {
            let mut ids: Vec<&String> = s.role_assignable.iter().collect();
            ids.sort_unstable();
            ids.into_iter()
                .map(|id| Group {
                    id: id.clone(),
                    display_name: None,
                    role_assignable: true,
                })
                .collect()
        }))
    }

    fn list_role_eligibilities(&self, _filter: Option<String>) -> ItemStream<'_, RoleEligibility> {
        items(Ok(Vec::new()))
    }

    fn list_risky_users(&self, levels: Vec<RiskLevel>) -> ItemStream<'_, RiskyUser> {
        items(self.read(Op::ListRiskyUsers, |s| {
            s.risky
                .iter()
                .filter(|r| levels.contains(&r.risk_level))
                .cloned()
                .collect()
        }))
    }

    fn force_password_change<'a>(
        &'a self,
        user_id: &'a str,
        _change: &'a PasswordChange,
    ) -> DirFuture<'a, ()> {
        ready(self.write(Op::ForcePasswordChange, |s| {
            Self::user_mut(s, user_id)?.last_password_change = Some(Timestamp::now());
            Ok(())
        }))
    }

    fn revoke_sessions<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, ()> {
        ready(self.write(Op::RevokeSessions, |s| {
            Self::user_mut(s, user_id)?.sign_in_sessions_valid_from = Some(Timestamp::now());
            Ok(())
        }))
    }

    fn list_auth_methods<'a>(&'a self, user_id: &'a str) -> DirFuture<'a, Vec<AuthMethod>> {
        ready(self.read(Op::ListAuthMethods, |s| {
            s.methods.get(user_id).cloned().unwrap_or_default()
        }))
    }

    fn delete_auth_method<'a>(
        &'a self,
        user_id: &'a str,
        method: &'a AuthMethod,
    ) -> DirFuture<'a, ()> {
        ready(self.write(Op::DeleteAuthMethod, |s| {
            let methods = s.methods.entry(user_id.to_owned()).or_default();
            let before = methods.len();
            methods.retain(|m| m.id != method.id);
            if methods.len() == before {
                return Err(not_found(&method.id));
            }
            Ok(())
        }))
    }

    fn create_tap<'a>(
        &'a self,
        user_id: &'a str,
        request: &'a TapRequest,
    ) -> DirFuture<'a, TemporaryAccessPass> {
        ready(self.write(Op::CreateTap, |s| {
            Self::user_mut(s, user_id)?;
            Ok(TemporaryAccessPass {
                id: format!("tap-{user_id}"),
                pass: SecretString::from("memory-tap".to_owned()),
                start: None,
                lifetime_minutes: request.lifetime_minutes,
                usable_once: Some(request.usable_once),
            })
        }))
    }

    fn is_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, bool> {
        let found = self.read(Op::IsGroupMember, |s| match s.groups.get(group_id) {
            Some(members) => Ok(members.iter().any(|m| m == user_id)),
            None => Err(not_found(group_id)),
        });
        ready(found.and_then(|r| r))
    }

    fn add_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, ()> {
        ready(self.write(Op::AddGroupMember, |s| {
            let members = s
                .groups
                .get_mut(group_id)
                .ok_or_else(|| not_found(group_id))?;
            if members.iter().any(|m| m == user_id) {
                return Err(already_a_member());
            }
            members.push(user_id.to_owned());
            Ok(())
        }))
    }

    fn remove_group_member<'a>(&'a self, group_id: &'a str, user_id: &'a str) -> DirFuture<'a, ()> {
        ready(self.write(Op::RemoveGroupMember, |s| {
            let members = s
                .groups
                .get_mut(group_id)
                .ok_or_else(|| not_found(group_id))?;
            let before = members.len();
            members.retain(|m| m != user_id);
            if members.len() == before {
                return Err(not_found(user_id));
            }
            Ok(())
        }))
    }

    fn confirm_compromised<'a>(&'a self, user_ids: &'a [String]) -> DirFuture<'a, ()> {
        ready(self.write(Op::ConfirmCompromised, |s| {
            for id in user_ids {
                s.risky.retain(|r| &r.id != id);
                s.risky.push(RiskyUser {
                    id: id.clone(),
                    upn: None,
                    display_name: None,
                    risk_level: RiskLevel::High,
                    risk_state: Some("confirmedCompromised".into()),
                    risk_detail: None,
                    last_updated: Some(Timestamp::now()),
                });
            }
            Ok(())
        }))
    }

    fn send_mail<'a>(&'a self, _sender: &'a str, _mail: &'a Mail) -> DirFuture<'a, ()> {
        ready(Err(DirectoryError::new(
            DirectoryErrorKind::Rejected,
            "the memory directory sends no mail",
        )))
    }

    fn send_mime<'a>(&'a self, sender: &'a str, mime: &'a [u8]) -> DirFuture<'a, ()> {
        ready(self.write(Op::SendMime, |state| {
            // Graph answers 404 ErrorInvalidUser for a sender that is not a mailbox.
            if !state
                .users
                .iter()
                .any(|u| u.upn == sender || u.id == sender)
            {
                return Err(not_found(sender));
            }
            state.outbox.push((sender.to_owned(), mime.to_vec()));
            Ok(())
        }))
    }

    fn batch_writes(
        &self,
        _writes: Vec<UserWrite>,
    ) -> DirFuture<'_, Vec<Result<(), DirectoryError>>> {
        ready(Err(DirectoryError::new(
            DirectoryErrorKind::Rejected,
            "the memory directory has no $batch",
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_change_the_state_and_scripted_failures_apply_or_not() {
        let dir = MemoryDirectory::new().with_user("a@x").with_group("g", &[]);
        dir.lose_next_answer(Op::AddGroupMember);
        let err = dir.add_group_member("g", "id-a@x").await.unwrap_err();
        assert_eq!(err.kind, DirectoryErrorKind::OutcomeUnknown);
        assert_eq!(
            dir.members("g"),
            ["id-a@x"],
            "applied before the answer was lost"
        );
        let err = dir.add_group_member("g", "id-a@x").await.unwrap_err();
        assert!(err.to_string().contains("already exist"), "{err}");
        assert!(dir.is_group_member("g", "id-a@x").await.unwrap());
        dir.lose_next_request(Op::RemoveGroupMember);
        dir.remove_group_member("g", "id-a@x").await.unwrap_err();
        assert_eq!(dir.members("g").len(), 1, "lost before it landed");
        dir.remove_group_member("g", "id-a@x").await.unwrap();
        assert_eq!(dir.calls(Op::RemoveGroupMember), 2);
        assert_eq!(dir.count_users().await.unwrap(), 1);
    }
}
