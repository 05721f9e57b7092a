//! Reading a write back: after a call whose outcome was lost, what the tenant says about
//! whether it landed. One entry per step type; what leaves no trace is unknowable and goes
//! to an operator, never repeated blindly.
//!
//! | step | read | landed when |
//! |---|---|---|
//! | `reset_password` (with a new password) | the user | `lastPasswordChangeDateTime` ≥ intent − skew |
//! | `reset_password: { mode: keep }` | — | unknowable: a flag change leaves no trace |
//! | `revoke_sessions` | the user | `signInSessionsValidFromDateTime` ≥ intent − skew |
//! | `require_mfa_reregistration` | the user's methods | none of the listed types remains |
//! | `add_to_group` | the group's members (not the search index: it may lag) | the user is one |
//! | `confirm_compromised` | high-risk users | `riskState` is `confirmedCompromised` |
//! | `temporary_access_pass` | — | unknowable: a pass may exist that nobody received |
//! | `notify` | — | unknowable: a message may have gone |

use std::time::Duration;

use futures::TryStreamExt;
use jiff::Timestamp;

use crate::directory::{AuthMethodKind, Directory, DirectoryError, RiskLevel};
use crate::playbook::{MethodType, PasswordMode, Step};

/// Clock difference tolerated between this host and the directory.
pub const SKEW: Duration = Duration::from_secs(5);

/// What reading the tenant back says about a write made at an intent's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadBack {
    /// The write landed; the evidence, for the journal.
    Applied(String),
    /// The write did not land.
    NotApplied,
    /// The tenant cannot tell; why, for the operator.
    Unknowable(String),
}

/// Whether a registered method is of a type the playbook lists.
pub fn matches_type(wanted: MethodType, kind: &AuthMethodKind) -> bool {
    matches!(
        (wanted, kind),
        (MethodType::Phone, AuthMethodKind::Phone)
            | (MethodType::Email, AuthMethodKind::Email)
            | (MethodType::Fido2, AuthMethodKind::Fido2)
            | (
                MethodType::MicrosoftAuthenticator,
                AuthMethodKind::MicrosoftAuthenticator
            )
            | (MethodType::SoftwareOath, AuthMethodKind::SoftwareOath)
            | (
                MethodType::WindowsHelloForBusiness,
                AuthMethodKind::WindowsHelloForBusiness
            )
            | (
                MethodType::TemporaryAccessPass,
                AuthMethodKind::TemporaryAccessPass
            )
    )
}

/// Read back the write `step` makes on `user_id`, intended at `intent_at`.
pub async fn read_back(
    directory: &dyn Directory,
    user_id: &str,
    step: &Step,
    intent_at: Timestamp,
) -> Result<ReadBack, DirectoryError> {
    let since = intent_at
        .checked_sub(jiff::SignedDuration::try_from(SKEW).unwrap_or_default())
        .unwrap_or(intent_at);
    let after = |t: Option<Timestamp>| t.filter(|t| *t >= since);
    Ok(match step {
        Step::ResetPassword {
            mode: PasswordMode::Keep,
            ..
        } => ReadBack::Unknowable(
            "outcome unknown: a force-change without a new password leaves no trace to read \
             back"
                .into(),
        ),
        Step::ResetPassword { .. } => {
            let user = directory.get_user(user_id).await?;
            match after(user.and_then(|u| u.last_password_change)) {
                Some(t) => ReadBack::Applied(format!("password changed at {t}")),
                None => ReadBack::NotApplied,
            }
        }
        Step::RevokeSessions => {
            let user = directory.get_user(user_id).await?;
            match after(user.and_then(|u| u.sign_in_sessions_valid_from)) {
                Some(t) => ReadBack::Applied(format!("sessions valid from {t}")),
                None => ReadBack::NotApplied,
            }
        }
        Step::RequireMfaReregistration { remove } => {
            let methods = directory.list_auth_methods(user_id).await?;
            if methods
                .iter()
                .any(|m| remove.iter().any(|t| matches_type(*t, &m.kind)))
            {
                ReadBack::NotApplied
            } else {
                ReadBack::Applied("no listed method remains".into())
            }
        }
        Step::AddToGroup { group_id, .. } => {
            let group = group_id.to_string();
            let members: Vec<String> = directory
                .list_group_members(&group, false)
                .map_ok(|u| u.id.to_ascii_lowercase())
                .try_collect()
                .await?;
            if members.contains(&user_id.to_ascii_lowercase()) {
                ReadBack::Applied(format!("member of {group}"))
            } else {
                ReadBack::NotApplied
            }
        }
        Step::ConfirmCompromised => {
            let risky: Vec<_> = directory
                .list_risky_users(vec![RiskLevel::High])
                .try_collect()
                .await?;
            let confirmed = risky.iter().any(|r| {
                r.id.eq_ignore_ascii_case(user_id)
                    && r.risk_state.as_deref() == Some("confirmedCompromised")
            });
            if confirmed {
                ReadBack::Applied("risk state confirmedCompromised".into())
            } else {
                ReadBack::NotApplied
            }
        }
        Step::TemporaryAccessPass { .. } => ReadBack::Unknowable(
            "outcome unknown: a pass may exist that was never delivered; delete it or issue \
             one by hand"
                .into(),
        ),
        Step::Notify { .. } => {
            ReadBack::Unknowable("outcome unknown: a message may or may not have been sent".into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::memory::MemoryDirectory;
    use crate::directory::{AuthMethod, PasswordChange};
    use crate::playbook::{Channel, Recipient};

    fn reset(mode: PasswordMode) -> Step {
        Step::ResetPassword {
            mode,
            force_change: true,
            require_mfa: false,
        }
    }

    fn phone() -> AuthMethod {
        AuthMethod {
            id: "3179e48a-750b-4051-897c-87b9720928f7".into(),
            kind: AuthMethodKind::Phone,
            display_name: None,
        }
    }

    const GROUP: &str = "7d0c3f5e-1b2a-4c6d-8e9f-0a1b2c3d4e5f";

    fn add_to_group() -> Step {
        Step::AddToGroup {
            group_id: GROUP.parse().unwrap(),
            expiry: Duration::from_secs(3600),
        }
    }

    /// Not applied before `write`, applied after it.
    async fn lands_with(
        dir: &MemoryDirectory,
        step: Step,
        write: impl std::future::Future<Output = ()>,
    ) {
        let intent = Timestamp::now();
        let before = read_back(dir, "id-a@x", &step, intent).await.unwrap();
        assert_eq!(before, ReadBack::NotApplied, "{step:?} before its write");
        write.await;
        let after = read_back(dir, "id-a@x", &step, intent).await.unwrap();
        assert!(
            matches!(after, ReadBack::Applied(_)),
            "{step:?} after its write: {after:?}"
        );
    }

    /// The table: each step with a trace reads back what its write changes.
    #[tokio::test]
    async fn each_step_reads_back_what_its_write_changes() {
        let dir = MemoryDirectory::new()
            .with_user("a@x")
            .with_group(GROUP, &[])
            .with_methods("id-a@x", vec![phone()]);
        let user = "id-a@x";
        let change = PasswordChange {
            force_change_next_sign_in: true,
            force_change_with_mfa: false,
            password: None,
        };
        lands_with(&dir, reset(PasswordMode::Scramble), async {
            dir.force_password_change(user, &change).await.unwrap();
        })
        .await;
        lands_with(&dir, Step::RevokeSessions, async {
            dir.revoke_sessions(user).await.unwrap();
        })
        .await;
        let remove = Step::RequireMfaReregistration {
            remove: vec![MethodType::Phone],
        };
        lands_with(&dir, remove, async {
            dir.delete_auth_method(user, &phone()).await.unwrap();
        })
        .await;
        lands_with(&dir, add_to_group(), async {
            dir.add_group_member(GROUP, user).await.unwrap();
        })
        .await;
        lands_with(&dir, Step::ConfirmCompromised, async {
            dir.confirm_compromised(&[user.to_owned()]).await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn a_write_older_than_the_intent_is_not_this_one() {
        let dir = MemoryDirectory::new().with_user("a@x");
        dir.revoke_sessions("id-a@x").await.unwrap();
        let later = Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(60))
            .unwrap();
        let found = read_back(&dir, "id-a@x", &Step::RevokeSessions, later)
            .await
            .unwrap();
        assert_eq!(found, ReadBack::NotApplied);
    }

    #[tokio::test]
    async fn writes_that_leave_no_trace_are_unknowable() {
        let dir = MemoryDirectory::new().with_user("a@x");
        let notify = Step::Notify {
            template: "t".into(),
            channels: vec![Channel::Email],
            to: Recipient::User,
            out_of_band: false,
        };
        let tap = Step::TemporaryAccessPass {
            lifetime_minutes: 60,
            usable_once: true,
        };
        for step in [reset(PasswordMode::Keep), tap, notify] {
            let found = read_back(&dir, "id-a@x", &step, Timestamp::now())
                .await
                .unwrap();
            assert!(matches!(found, ReadBack::Unknowable(_)), "{step:?}");
        }
    }
}
