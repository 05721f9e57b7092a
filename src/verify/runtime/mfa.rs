//! The actions of an MFA reset (`Outcome::MfaReset`), as the runtime carries them out: read
//! the approver group, ask each member, remove the user's methods, issue and deliver the
//! Temporary Access Pass, hold the user in the temporary access group, tell the requester
//! and the security channel.
//!
//! Each is one saved action and idempotent, so a crash resumes it without doing it twice:
//! removing methods lists what is left and deletes only that; the access group is read
//! before every write (and whether the user was a member before is saved by the flow before
//! the add, so a membership the user already had is never removed).
//!
//! The pass exists only in memory while [`Runtime::issue_tap`] runs: it goes into the
//! rendered message (marked as carrying a secret) and nowhere else (not the trail, the
//! store, a ticket or an error). Graph returns the pass only in the answer to its creation
//! (<https://learn.microsoft.com/graph/api/authentication-post-temporaryaccesspassmethods>),
//! so a pass whose delivery a crash interrupted cannot be delivered later: the resumed action
//! deletes it and issues a new one, and a pass that reached nobody is deleted.

use futures::TryStreamExt;

use super::{PendingAction, Runtime};
use crate::audit::Details;
use crate::audit::Outcome as AuditOutcome;
use crate::comms::context::{Person as MessagePerson, SecretContext};
use crate::comms::message::Address;
use crate::comms::recipient::Contact;
use crate::directory::{AuthMethodKind, DirectoryError, DirectoryErrorKind, TapRequest};
use crate::playbook::Channel as Kind;
use crate::verify::context::Person;
use crate::verify::machine::Flow;
use crate::verify::state::Event;

impl Runtime {
    /// The approver group's user members now (transitively: a nested team counts), without
    /// disabled accounts.
    pub(super) async fn find_approvers(&self, group: &str) -> Event {
        let members: Result<Vec<_>, DirectoryError> = self
            .inner
            .directory
            .list_group_members(group, true)
            .try_collect()
            .await;
        match members {
            Ok(users) => Event::ApproversFound {
                members: users
                    .into_iter()
                    .filter(|u| u.account_enabled != Some(false))
                    .map(|u| Person {
                        id: u.id,
                        upn: u.upn,
                    })
                    .collect(),
            },
            Err(e) => Event::ApproversUnavailable {
                detail: e.to_string(),
            },
        }
    }

    /// One approver's own signed links, by mail to their directory mailbox when a mail
    /// channel exists, else as a Teams card that mentions them.
    pub(super) async fn approver_request(
        &self,
        flow: &Flow,
        pending: &PendingAction,
        approver: &Person,
        user: &Person,
        expires: jiff::Timestamp,
    ) {
        let p = &self.inner;
        let recipient = self.contact(approver).await;
        let links = match p.links.mint(&flow.id, approver, expires).await {
            Ok(links) => Some(links),
            Err(e) => {
                tracing::error!(request = %flow.id, "approval links not minted: {e}");
                None
            }
        };
        let ctx = self
            .message_context(flow, &recipient, user, links, Some(expires), None, None)
            .await;
        let has_mail = p.channels.iter().any(|c| c.kind() == Kind::Email);
        let (kind, to) = match &recipient.mail {
            Some(mail) if has_mail => (Kind::Email, Address::Email(mail.clone())),
            _ => (
                Kind::Teams,
                Address::Teams {
                    mention: Some((
                        recipient.person.upn.clone(),
                        recipient.person.display_name.clone(),
                    )),
                },
            ),
        };
        self.send(
            flow,
            &pending.id,
            "verify-mfa-approval",
            kind,
            to,
            recipient.language.as_deref(),
            &ctx,
            false,
        )
        .await;
    }

    /// Delete every registered method Graph lets an app delete. The password method cannot
    /// be deleted through the API, and a type this build does not know has no delete
    /// address: both are kept and named in the event and the trail. Graph refuses to delete
    /// the user's default method while others remain (400 "Cannot delete default method
    /// with other methods configured"), so a method refused that way is deleted again after
    /// the others. A method already gone (404) counts as removed by an earlier attempt.
    pub(super) async fn remove_methods(&self, flow: &Flow, user: &Person) -> Event {
        let dir = &self.inner.directory;
        let methods = match dir.list_auth_methods(&user.id).await {
            Ok(methods) => methods,
            Err(e) => return failed("listing the methods", &e),
        };
        let mut removed = 0u32;
        let mut kept = Vec::new();
        let mut default_last = Vec::new();
        for method in &methods {
            if method.kind.collection().is_none() {
                kept.push(method.kind.short_name().to_owned());
                continue;
            }
            match dir.delete_auth_method(&user.id, method).await {
                Ok(()) => removed += 1,
                Err(e) if e.kind == DirectoryErrorKind::NotFound => {}
                Err(e) if is_default_method(&e) => default_last.push(method),
                Err(e) => {
                    return failed(
                        &format!("deleting the {} method", method.kind.short_name()),
                        &e,
                    );
                }
            }
        }
        for method in default_last {
            match dir.delete_auth_method(&user.id, method).await {
                Ok(()) => removed += 1,
                Err(e) if e.kind == DirectoryErrorKind::NotFound => {}
                Err(e) => {
                    return failed(
                        &format!("deleting the {} method", method.kind.short_name()),
                        &e,
                    );
                }
            }
        }
        let details = Details::new()
            .with("request", &flow.id)
            .and_then(|d| d.with("removed", u64::from(removed)))
            .and_then(|d| d.with("kept", kept.join(",")));
        self.record(
            &user.id,
            "verify.mfa_methods",
            AuditOutcome::Success,
            details,
        )
        .await;
        Event::MethodsRemoved { removed, kept }
    }

    /// Create the pass and deliver it to the recipients only (the requester and the
    /// manager), each over their directory mail or mobile.
    pub(super) async fn issue_tap(
        &self,
        flow: &Flow,
        pending: &PendingAction,
        user: &Person,
        recipients: &[Person],
        lifetime_minutes: u32,
        usable_once: bool,
    ) -> Event {
        let dir = &self.inner.directory;
        // A pass left by an interrupted attempt was perhaps never delivered, and Graph will
        // not show it again: delete it, so the only pass is the one delivered now.
        match dir.list_auth_methods(&user.id).await {
            Ok(methods) => {
                for m in methods
                    .iter()
                    .filter(|m| m.kind == AuthMethodKind::TemporaryAccessPass)
                {
                    if let Err(e) = dir.delete_auth_method(&user.id, m).await
                        && e.kind != DirectoryErrorKind::NotFound
                    {
                        return failed("deleting an earlier pass", &e);
                    }
                }
            }
            Err(e) => return failed("listing the methods", &e),
        }
        let request = TapRequest {
            start: None,
            lifetime_minutes: Some(lifetime_minutes),
            usable_once,
        };
        let tap = match dir.create_tap(&user.id, &request).await {
            Ok(tap) => tap,
            Err(e) => return failed("creating the Temporary Access Pass", &e),
        };
        let secret = SecretContext {
            kind: "temporary_access_pass",
            value: tap.pass.clone(),
            lifetime_minutes: tap.lifetime_minutes.or(Some(lifetime_minutes)),
            usable_once: tap.usable_once.or(Some(usable_once)),
        };
        let mut delivered = 0u32;
        for (i, person) in recipients.iter().enumerate() {
            let contact = self.contact(person).await;
            let Some((kind, to)) = self.directory_channel(&contact) else {
                tracing::warn!(request = %flow.id, "no directory channel reaches a pass recipient");
                continue;
            };
            let mut ctx = self
                .message_context(flow, &contact, user, None, None, None, None)
                .await;
            ctx.secret = Some(secret.clone());
            let sent = self
                .send(
                    flow,
                    &format!("{}.{i}", pending.id),
                    "verify-mfa-access-pass",
                    kind,
                    to,
                    contact.language.as_deref(),
                    &ctx,
                    true,
                )
                .await;
            if sent {
                delivered += 1;
            }
        }
        if delivered == 0 {
            // Nobody can hand it on: it must not stay usable.
            if let Ok(methods) = dir.list_auth_methods(&user.id).await {
                for m in methods.iter().filter(|m| m.id == tap.id) {
                    let _ = dir.delete_auth_method(&user.id, m).await;
                }
            }
            return Event::ResetFailed {
                detail: "the Temporary Access Pass reached neither the requester nor the \
                         manager over a directory channel; it was deleted"
                    .into(),
            };
        }
        Event::TapIssued { delivered }
    }

    /// Whether the user is a direct member of the access group now (read before the add,
    /// and saved by the flow, so a resumed add cannot mistake its own write for an earlier
    /// membership).
    pub(super) async fn check_group(&self, user: &Person, group: &str) -> Event {
        match self.inner.directory.is_group_member(group, &user.id).await {
            Ok(member_before) => Event::GroupChecked { member_before },
            Err(e) => failed("reading the access group", &e),
        }
    }

    /// Add the user to the access group (a member already there, after a resumed attempt,
    /// is the add done).
    pub(super) async fn add_to_group(&self, user: &Person, group: &str) -> Event {
        match self.inner.directory.add_group_member(group, &user.id).await {
            Ok(()) => Event::GroupAdded,
            Err(e) if already_a_member(&e) => Event::GroupAdded,
            Err(e) => failed("adding the user to the access group", &e),
        }
    }

    /// End the temporary membership: read the group first, so a removal is never made
    /// twice (and one already gone is done).
    pub(super) async fn remove_from_group(&self, user: &Person, group: &str) -> Event {
        let dir = &self.inner.directory;
        match dir.is_group_member(group, &user.id).await {
            Ok(false) => Event::GroupRemoved,
            Ok(true) => match dir.remove_group_member(group, &user.id).await {
                Ok(()) => Event::GroupRemoved,
                Err(e) if e.kind == DirectoryErrorKind::NotFound => Event::GroupRemoved,
                Err(e) => failed("removing the user from the access group", &e),
            },
            Err(e) => failed("reading the access group", &e),
        }
    }

    /// Tell the requester how the request ended (their directory mail or mobile).
    pub(super) async fn tell_requester(&self, flow: &Flow, pending: &PendingAction, result: &str) {
        let contact = self.contact(&flow.context.requester).await;
        let Some((kind, to)) = self.directory_channel(&contact) else {
            tracing::info!(request = %flow.id, "no channel reaches the requester");
            return;
        };
        let ctx = self
            .message_context(
                flow,
                &contact,
                &flow.context.user,
                None,
                None,
                Some(result.to_owned()),
                None,
            )
            .await;
        self.send(
            flow,
            &pending.id,
            "verify-outcome",
            kind,
            to,
            contact.language.as_deref(),
            &ctx,
            false,
        )
        .await;
    }

    /// The security channel's notice of a finished MFA reset (a Teams card to the
    /// organisation's security team; it never carries the pass).
    pub(super) async fn notify_security(
        &self,
        flow: &Flow,
        pending: &PendingAction,
        user: &Person,
    ) {
        let p = &self.inner;
        let recipient = Contact {
            person: MessagePerson {
                display_name: format!("{} security", p.organisation.name),
                given_name: None,
                upn: String::new(),
            },
            mail: None,
            mobile: None,
            language: None,
        };
        let ctx = self
            .message_context(
                flow,
                &recipient,
                user,
                None,
                None,
                Some("completed".into()),
                None,
            )
            .await;
        self.send(
            flow,
            &pending.id,
            "verify-mfa-done",
            Kind::Teams,
            Address::Teams { mention: None },
            None,
            &ctx,
            false,
        )
        .await;
    }

    /// A directory channel to a person: mail to their directory mailbox when a mail channel
    /// exists, else SMS to their directory mobile; never an address a caller supplied.
    fn directory_channel(&self, contact: &Contact) -> Option<(Kind, Address)> {
        let has = |kind| self.inner.channels.iter().any(|c| c.kind() == kind);
        match (&contact.mail, &contact.mobile) {
            (Some(mail), _) if has(Kind::Email) => {
                Some((Kind::Email, Address::Email(mail.clone())))
            }
            (_, Some(Ok(mobile))) if has(Kind::Sms) => {
                Some((Kind::Sms, Address::Phone(mobile.clone())))
            }
            _ => None,
        }
    }
}

/// A directory failure as the flow's event (the error carries no secret: Graph's message
/// and status, never a request body).
fn failed(what: &str, e: &DirectoryError) -> Event {
    Event::ResetFailed {
        detail: format!("{what}: {e}"),
    }
}

/// Graph's answer to adding a member the group already has: 400 "One or more added object
/// references already exist for the following modified properties: 'members'."
/// (<https://learn.microsoft.com/graph/api/group-post-members>).
fn already_a_member(err: &DirectoryError) -> bool {
    err.kind == DirectoryErrorKind::Rejected
        && err.detail.status == Some(400)
        && err
            .message
            .contains("added object references already exist")
}

/// Graph's refusal to delete the default method while the user has others (400 "Cannot
/// delete default method with other methods configured. Please change default method
/// before deletion.").
fn is_default_method(err: &DirectoryError) -> bool {
    err.kind == DirectoryErrorKind::Rejected
        && err.detail.status == Some(400)
        && err.message.contains("default method")
}
