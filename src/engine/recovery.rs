//! Who can recover after the plan: the users' registration state (Graph's
//! `userRegistrationDetails` report), read during planning for the planned users only, and
//! what the plan makes of it. A `scramble` sets a password nobody knows, so a user who is
//! not SSPR-capable is locked out until the help desk gets to them: the plan counts them
//! and warns.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::plan::PlannedUser;
use crate::directory::{Directory, DirectoryError, Registration};
use crate::playbook::{PasswordMode, Playbook, Step};
use crate::targeting::Bucket;

/// Registration state by lower-case user id.
pub type Registrations = HashMap<String, Registration>;

/// Read the registration details of `user_ids` (lower-case object ids).
pub async fn read(
    directory: &dyn Directory,
    user_ids: Vec<String>,
) -> Result<Registrations, DirectoryError> {
    directory
        .registration_details(Some(user_ids))
        .map_ok(|r| (r.id.to_ascii_lowercase(), r))
        .try_collect()
        .await
}

/// Graph's identity and access reports limit, which `userRegistrationDetails` falls under:
/// 5 requests per 10 s per app per tenant
/// (<https://learn.microsoft.com/graph/throttling-limits#identity-and-access-reports-service-limits>).
const REPORT_REQUESTS_PER_SECOND: f64 = 0.5;
/// Users a page of the report holds (`$top=999`).
const REPORT_PAGE: u64 = 999;
/// Users read one `GET` each rather than by listing the report (the directory's choice).
const REPORT_LOOKUPS: u64 = 2;
/// The longest a plan waits for the report when only its recovery counts use it: beyond
/// this, containment would wait on an advisory figure.
pub const REPORT_ONLY_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// How long reading the registration state of `users` planned users takes at Graph's
/// reports limit in a tenant of `tenant_users`: one request per user for the few the
/// directory reads one by one, else every page of the report (it filters on no id).
pub fn read_time(users: u64, tenant_users: u64) -> std::time::Duration {
    let requests = if users <= REPORT_LOOKUPS {
        users
    } else {
        tenant_users.max(users).div_ceil(REPORT_PAGE)
    };
    // The first requests of a window go at once; the rest at the refill rate.
    let paced = requests.saturating_sub(5) as f64 / REPORT_REQUESTS_PER_SECOND;
    std::time::Duration::from_secs_f64(paced)
}

/// Why a trigger's plan has no recovery counts: every plan's read of the report shares
/// Graph's budget of 5 requests per 10 s, so a storm of incidents would answer one every 2 s.
pub const SKIPPED_FOR_A_TRIGGER: &str = "not read: a plan made by an incident trigger does \
    not wait on Graph's reports budget (5 requests per 10 s, shared by every plan) for \
    advisory counts; `resetctl plan` of the same playbook and list shows them";

/// Why a report-only read is skipped, when it would take longer than
/// [`REPORT_ONLY_BUDGET`].
pub fn too_slow_for_report(users: u64, tenant_users: u64) -> Option<String> {
    let time = read_time(users, tenant_users);
    (time > REPORT_ONLY_BUDGET).then(|| {
        format!(
            "not read: the registration report of a {tenant_users}-user tenant takes about {} \
             min at Graph's reports limit (5 requests per 10 s), longer than a plan waits for \
             recovery counts ({} s); run `resetctl readiness` ahead of an incident, or add \
             `when: sspr_capable` to a step to make the read part of the plan",
            time.as_secs().div_ceil(60),
            REPORT_ONLY_BUDGET.as_secs()
        )
    })
}

/// Whether planning must read the registration state: a `when:` reads `sspr_capable` or
/// `has_authenticator` (then it is required), or a step resets passwords (then the plan
/// reports who can recover).
pub fn needed(playbook: &Playbook) -> Need {
    if playbook
        .steps
        .iter()
        .any(|s| s.when.as_ref().is_some_and(|c| c.reads_registration()))
    {
        Need::Required
    } else if playbook
        .steps
        .iter()
        .any(|s| matches!(s.step, Step::ResetPassword { .. }))
    {
        Need::ForReport
    } else {
        Need::No
    }
}

/// How much planning depends on the registration state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Conditions read it: planning fails without it.
    Required,
    /// Only the plan's recovery counts use it: unreadable is reported, not fatal.
    ForReport,
    /// Not read.
    No,
}

/// One bucket's recovery counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecovery {
    /// The bucket.
    pub bucket: Bucket,
    /// Users who can reset their own password (`isSsprCapable`).
    pub sspr_capable: u64,
    /// Users who cannot (or whom the report does not list).
    pub not_sspr_capable: u64,
}

/// What the plan says about recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// Per bucket, in the partition's order (excluded, privileged, ... automated); buckets
    /// without users are left out.
    pub buckets: Vec<BucketRecovery>,
    /// Users a `scramble` step applies to who are not SSPR-capable: locked out.
    pub scrambled_not_sspr_capable: u64,
    /// Why the registration state could not be read (then every count is zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<String>,
}

impl Recovery {
    /// The recovery of `users` given their registration state.
    pub fn of(playbook: &Playbook, users: &[PlannedUser], registrations: &Registrations) -> Self {
        let scramble_keys: HashSet<String> = playbook
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                matches!(
                    s.step,
                    Step::ResetPassword {
                        mode: PasswordMode::Scramble,
                        ..
                    }
                )
            })
            .map(|(i, s)| super::planner::step_key(i, &s.step))
            .collect();
        let mut by_bucket: Vec<BucketRecovery> = Vec::new();
        let mut scrambled = 0u64;
        for user in users {
            let capable = registrations
                .get(&user.id.to_ascii_lowercase())
                .is_some_and(|r| r.sspr_capable);
            let entry = match by_bucket.iter_mut().position(|b| b.bucket == user.bucket) {
                Some(i) => &mut by_bucket[i],
                None => {
                    by_bucket.push(BucketRecovery {
                        bucket: user.bucket,
                        sspr_capable: 0,
                        not_sspr_capable: 0,
                    });
                    by_bucket.last_mut().expect("just pushed")
                }
            };
            if capable {
                entry.sspr_capable += 1;
            } else {
                entry.not_sspr_capable += 1;
                if user.steps.iter().any(|k| scramble_keys.contains(k)) {
                    scrambled += 1;
                }
            }
        }
        by_bucket.sort_by_key(|b| b.bucket);
        Recovery {
            buckets: by_bucket,
            scrambled_not_sspr_capable: scrambled,
            unread: None,
        }
    }

    /// The registration state could not be read: no counts, and why.
    pub fn unread(reason: String) -> Self {
        Recovery {
            buckets: Vec::new(),
            scrambled_not_sspr_capable: 0,
            unread: Some(reason),
        }
    }

    /// The plan's warnings about recovery, one line each.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.scrambled_not_sspr_capable > 0 {
            out.push(format!(
                "{} user(s) get a scrambled password but are not SSPR-capable: they are locked \
                 out until the help desk resets them (give them `when: not sspr_capable` a \
                 temporary password for their manager, or the help-desk queue)",
                self.scrambled_not_sspr_capable
            ));
        }
        if let Some(reason) = &self.unread {
            out.push(format!(
                "registration state not read ({reason}): the plan cannot say who can recover \
                 by SSPR"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_report_only_read_is_skipped_when_the_report_is_too_long_to_wait_for() {
        // A few users are read one by one; a demo tenant's report is three pages.
        assert_eq!(super::too_slow_for_report(2, 1_000_000), None);
        assert_eq!(super::too_slow_for_report(118, 2_000), None);
        // 1,002 pages at 0.5 requests/s is over half an hour.
        let why = super::too_slow_for_report(500, 1_000_000).unwrap_or_default();
        assert!(why.contains("about 34 min"), "{why}");
        assert!(super::read_time(500, 1_000_000) > super::REPORT_ONLY_BUDGET);
    }

    use std::borrow::Cow;

    use super::*;
    use crate::playbook::load_str;

    fn registration(id: &str, capable: bool) -> Registration {
        Registration {
            id: id.into(),
            upn: None,
            display_name: None,
            is_admin: false,
            sspr_registered: capable,
            sspr_enabled: true,
            sspr_capable: capable,
            mfa_registered: capable,
            mfa_capable: capable,
            passwordless_capable: false,
            methods: vec![],
            preferred_mfa_method: None,
            last_updated: None,
            user_type: None,
        }
    }

    fn user(id: &str, bucket: Bucket, steps: &[&str]) -> PlannedUser {
        PlannedUser {
            id: id.into(),
            upn: format!("{id}@contoso.com"),
            display_name: id.into(),
            bucket,
            reason: Cow::Borrowed(""),
            risk_level: None,
            roles: vec![],
            steps: steps
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into(),
        }
    }

    #[test]
    fn counts_per_bucket_and_scrambled_users_who_cannot_recover() {
        let pb = load_str(
            "t.yaml",
            "name: t\ntargets: [all_users: {}]\nsteps:\n  - revoke_sessions\n  - reset_password: { mode: scramble }\n",
        )
        .unwrap()
        .playbook;
        assert_eq!(needed(&pb), Need::ForReport);
        let users = [
            user(
                "A",
                Bucket::Automated,
                &["0:revoke_sessions", "1:reset_password"],
            ),
            user(
                "b",
                Bucket::Automated,
                &["0:revoke_sessions", "1:reset_password"],
            ),
            user("c", Bucket::Automated, &["0:revoke_sessions"]),
            user("d", Bucket::Privileged, &[]),
        ];
        let regs: Registrations = [registration("a", true), registration("b", false)]
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let r = Recovery::of(&pb, &users, &regs);
        assert_eq!(
            r.buckets,
            [
                BucketRecovery {
                    bucket: Bucket::Privileged,
                    sspr_capable: 0,
                    not_sspr_capable: 1
                },
                BucketRecovery {
                    bucket: Bucket::Automated,
                    sspr_capable: 1,
                    not_sspr_capable: 2
                },
            ]
        );
        assert_eq!(
            r.scrambled_not_sspr_capable, 1,
            "b only: c is not scrambled"
        );
        assert!(r.warnings()[0].starts_with("1 user(s) get a scrambled password"));
    }

    #[test]
    fn conditions_on_registration_require_it() {
        let pb = load_str(
            "t.yaml",
            "name: t\ntargets: [all_users: {}]\nsteps:\n  - revoke_sessions:\n    when: has_authenticator\n",
        )
        .unwrap()
        .playbook;
        assert_eq!(needed(&pb), Need::Required);
        let pb = load_str(
            "t.yaml",
            "name: t\ntargets: [all_users: {}]\nsteps:\n  - revoke_sessions\n",
        )
        .unwrap()
        .playbook;
        assert_eq!(needed(&pb), Need::No);
    }
}
