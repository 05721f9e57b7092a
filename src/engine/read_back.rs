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
