//! The plan: every resolved user with its bucket and reason, the steps, the estimate.
//!
//! A plan is what operators approve. Its hash ([`Plan::hash`]) covers what the run will do —
//! the playbook's bytes, the tenant, the steps, and each user with their bucket — and not
//! when it was computed, so planning the same incident twice gives the same hash, and any
//! change in who is touched or how gives a different one (and needs new approvals).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::TenantSize;
use crate::targeting::{BadRow, Bucket, ResolvedBy};
use crate::throttle::{Quotas, Rate};

/// One resolved user in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedUser {
    /// Directory object id.
    pub id: String,
    /// User principal name.
    pub upn: String,
    /// Display name, for reports.
    pub display_name: String,
    /// The bucket the partition chose.
    pub bucket: Bucket,
    /// Why (the common reasons are static text, shared by every user who has them).
    pub reason: Cow<'static, str>,
    /// Identity Protection risk level, when known (`high` users run first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<String>,
    /// Critical roles held, for the manual queue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Journal keys of the steps this user gets, in execution order (empty for every
    /// bucket but automated and, per playbook, disabled). Shared between users with the
    /// same steps: a plan of a million users holds a handful of lists.
    pub steps: Arc<[String]>,
}

/// A target that did not resolve to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unresolved {
    /// The UPN or id as the source named it.
    pub target: String,
    /// Where it came from (e.g. `credential-dump.csv:17`).
    pub source: String,
    /// Why it did not resolve.
    pub reason: String,
}

/// Which Graph budget a step spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// The directory write quota (3,000 / 150 s per app and tenant).
    DirectoryWrite,
    /// Identity Protection (1 request/s per tenant).
    IdentityProtection,
    /// Outlook mail (sendMail).
    Mail,
    /// Nothing on Graph (e.g. a channel outside Graph).
    None,
}

/// One step of the per-user pipeline, as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// Journal key: position and name, e.g. `1:reset_password`.
    pub key: String,
    /// Human description, e.g. `reset_password (scramble, force change with MFA)`.
    pub description: String,
    /// Graph requests this step makes per user (an upper estimate for method removal).
    pub requests_per_user: u32,
    /// Which budget those requests spend.
    pub budget: Budget,
}

/// How long the automated part should take, from the quota: Graph's write limits are token
/// buckets, so full buckets take their capacity at once and then their refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Directory writes in total.
    pub directory_writes: u64,
    /// Directory writes per second the tenant allows this run once its buckets are spent
    /// (apps × per-app quota, capped by the tenant-wide quota, and by the playbook's pace).
    pub writes_per_second: f64,
    /// Writes full buckets take at once: every app's own capacity, at most the tenant's
    /// (and a playbook's pace: its first second's worth). 0 in plans made before it was
    /// recorded.
    #[serde(default)]
    pub at_once: u64,
    /// Seconds the directory writes need: `max(0, W − at_once) / writes_per_second`, the
    /// token-bucket bound with full buckets (latency adds to it; writes by another run in
    /// the last few minutes leave the buckets less full).
    pub seconds: f64,
}

impl Estimate {
    /// Estimate for `users` automated users running all of `steps`, with `apps` app
    /// registrations at Graph's documented quotas (20 writes/s per app and tenant, 60 per
    /// tenant).
    pub fn from_quota(steps: &[PlannedStep], users: u64, apps: u32) -> Estimate {
        let per_user: u64 = steps
            .iter()
            .filter(|s| s.budget == Budget::DirectoryWrite)
            .map(|s| u64::from(s.requests_per_user))
            .sum();
        let quotas = Quotas::graph_defaults(TenantSize::default(), 1.0);
        Self::from_writes(per_user * users, apps, &quotas)
    }

    /// Estimate from each planned user's own steps (`when:` and disabled handling included),
    /// at the tenant's own write quotas: an emulated tenant's `time_scale` and a tenant's
    /// `quotas:` overrides change how fast its writes may go.
    pub fn from_users(
        steps: &[PlannedStep],
        users: &[PlannedUser],
        apps: u32,
        quotas: &Quotas,
    ) -> Estimate {
        let writes_of = |key: &str| {
            steps
                .iter()
                .find(|s| s.key == key && s.budget == Budget::DirectoryWrite)
                .map_or(0, |s| u64::from(s.requests_per_user))
        };
        let directory_writes = users
            .iter()
            .flat_map(|u| u.steps.iter())
            .map(|key| writes_of(key))
            .sum();
        Self::from_writes(directory_writes, apps, quotas)
    }

    fn from_writes(directory_writes: u64, apps: u32, quotas: &Quotas) -> Estimate {
        let per_second = |rate: Rate| f64::from(rate.count) / rate.window.as_secs_f64();
        let apps = apps.max(1);
        let writes_per_second =
            (per_second(quotas.app_write) * f64::from(apps)).min(per_second(quotas.tenant_write));
        let at_once = (u64::from(quotas.app_write.count) * u64::from(apps))
            .min(u64::from(quotas.tenant_write.count));
        Estimate {
            directory_writes,
            writes_per_second,
            at_once,
            seconds: directory_writes.saturating_sub(at_once) as f64 / writes_per_second,
        }
    }

    /// The estimate under a playbook's `rate_limit.max_writes_per_second` (in real seconds,
    /// on a tenant whose clock runs `time_scale` times faster): the slower of the two.
    pub fn paced(self, max_writes_per_second: Option<f64>, time_scale: f64) -> Estimate {
        let Some(pace) = max_writes_per_second
            .map(|r| r * time_scale.max(1.0))
            .filter(|r| r.is_finite() && *r > 0.0)
        else {
            return self;
        };
        // The pace is a bucket too (`engine/admit.rs`): its first second's worth at once.
        let at_once = pace.ceil() as u64;
        let seconds = self.directory_writes.saturating_sub(at_once) as f64 / pace;
        Estimate {
            writes_per_second: self.writes_per_second.min(pace),
            at_once: self.at_once.min(at_once),
            seconds: self.seconds.max(seconds),
            ..self
        }
    }

    /// The estimate as a duration.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds.max(0.0))
    }
}

/// Everything `plan` resolved, and what `run` will execute.
/// Whether a count is zero (left out of the plan's JSON).
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The playbook's `name`.
    pub playbook_name: String,
    /// SHA-256 of the playbook file's bytes.
    pub playbook_sha256: String,
    /// Tenant name.
    pub tenant: String,
    /// Users in the tenant (for `max_fraction_of_tenant`).
    pub tenant_users: u64,
    /// The per-user steps in order.
    pub steps: Vec<PlannedStep>,
    /// Every resolved user, in execution order (highest risk first, then source order).
    pub users: Vec<PlannedUser>,
    /// Targets that did not resolve.
    pub unresolved: Vec<Unresolved>,
    /// CSV rows that could not be read (skipped with `--skip-bad-rows`).
    pub bad_rows: Vec<BadRow>,
    /// Duration estimate of the automated part.
    pub estimate: Estimate,
    /// Targets whose `mobilePhone` no text message can be addressed to (`has_mobile` is
    /// false for them): a data-hygiene finding the plan reports.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unusable_mobiles: u64,
    /// How the targets were resolved (looked up or listed) and why. Not in the hash: both
    /// ways plan the same users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<ResolvedBy>,
    /// Who can recover by self-service password reset, per bucket, and the warning about
    /// scrambled users who cannot; `None` when the playbook resets no password and reads no
    /// registration flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<super::recovery::Recovery>,
}

impl Plan {
    /// Users in `bucket`.
    pub fn in_bucket(&self, bucket: Bucket) -> impl Iterator<Item = &PlannedUser> {
        self.users.iter().filter(move |u| u.bucket == bucket)
    }

    /// Number of users in `bucket`.
    pub fn count(&self, bucket: Bucket) -> usize {
        self.in_bucket(bucket).count()
    }

    /// The hash approvals are bound to (hex SHA-256; see the module docs for what it covers).
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        let mut field = |label: &str, value: &str| {
            // Length-prefixed so that no two different plans share a byte stream.
            hasher.update(label.as_bytes());
            hasher.update((value.len() as u64).to_le_bytes());
            hasher.update(value.as_bytes());
        };
        field("playbook", &self.playbook_sha256);
        field("tenant", &self.tenant);
        for step in &self.steps {
            field("step", &step.key);
            field("description", &step.description);
        }
        for user in &self.users {
            field("user", &user.id);
            field("bucket", user.bucket.as_str());
            for step in user.steps.iter() {
                field("user_step", step);
            }
        }
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(key: &str, budget: Budget) -> PlannedStep {
        PlannedStep {
            key: key.into(),
            description: key.into(),
            requests_per_user: 1,
            budget,
        }
    }

    fn user(id: &str, bucket: Bucket) -> PlannedUser {
        PlannedUser {
            id: id.into(),
            upn: format!("{id}@contoso.com"),
            display_name: id.into(),
            bucket,
            reason: Cow::Borrowed(""),
            risk_level: None,
            roles: vec![],
            steps: vec!["0:reset_password".to_owned()].into(),
        }
    }

    fn plan() -> Plan {
        let steps = vec![
            step("0:reset_password", Budget::DirectoryWrite),
            step("1:revoke_sessions", Budget::DirectoryWrite),
            step("2:notify", Budget::Mail),
        ];
        Plan {
            playbook_name: "p".into(),
            playbook_sha256: "abc".into(),
            tenant: "demo".into(),
            tenant_users: 10,
            estimate: Estimate::from_quota(&steps, 2, 1),
            steps,
            users: vec![user("a", Bucket::Automated), user("b", Bucket::Privileged)],
            unresolved: vec![],
            bad_rows: vec![],
            unusable_mobiles: 0,
            resolved_by: None,
            recovery: None,
        }
    }

    #[test]
    fn estimate_of_a_scaled_tenant_uses_its_quotas() {
        let p = plan();
        let users = [user("a", Bucket::Automated)];
        let scaled = Quotas::graph_defaults(TenantSize::Large, 10.0);
        let e = Estimate::from_users(&p.steps, &users, 1, &scaled);
        assert_eq!(e.directory_writes, 1, "a's own step only");
        assert_eq!(e.writes_per_second, 200.0, "3,000 per 15 s");
        let pooled = Estimate::from_users(&p.steps, &users, 5, &scaled);
        assert_eq!(
            pooled.writes_per_second, 600.0,
            "18,000 per 30 s caps the pool"
        );
        let overrides = crate::config::QuotaOverrides {
            writes_per_window: Some(1_500),
            ..Default::default()
        };
        let halved = Quotas::with_overrides(&overrides, TenantSize::Large, 1.0);
        assert_eq!(
            Estimate::from_users(&p.steps, &users, 1, &halved).writes_per_second,
            10.0
        );
    }

    #[test]
    fn estimate_counts_directory_writes_against_the_quota() {
        let p = plan();
        assert_eq!(p.estimate.directory_writes, 4);
        assert_eq!(p.estimate.writes_per_second, 20.0);
        assert_eq!(p.estimate.at_once, 3_000);
        assert_eq!(p.estimate.seconds, 0.0, "4 writes fit in a fresh bucket");
        // The bucket bound: 5,000 writes are 3,000 at once, then 2,000 at 20 a second.
        let big = Estimate::from_quota(&p.steps, 2_500, 1);
        assert_eq!((big.directory_writes, big.seconds), (5_000, 100.0));
        // A playbook's pace is a bucket of a second's worth: 2 at once, then 2 a second.
        let paced = p.estimate.paced(Some(2.0), 1.0);
        assert_eq!(
            (paced.writes_per_second, paced.at_once, paced.seconds),
            (2.0, 2, 1.0)
        );
        // Even at the quota's rate, it takes away the bucket's burst.
        let at_quota = big.paced(Some(20.0), 1.0);
        assert_eq!((at_quota.at_once, at_quota.seconds), (20, 249.0));
        let scaled = p.estimate.paced(Some(1.0), 10.0);
        assert_eq!(scaled.writes_per_second, 10.0);
        let pooled = Estimate::from_quota(&p.steps, 10_000, 5);
        assert_eq!(
            pooled.writes_per_second, 60.0,
            "the tenant-wide quota caps a pool"
        );
    }

    #[test]
    fn hash_ignores_reasons_but_not_who_or_how() {
        let base = plan();
        let mut same = plan();
        same.users[0].reason = "reworded".into();
        assert_eq!(base.hash(), same.hash());

        let mut moved = plan();
        moved.users[1].bucket = Bucket::Automated;
        assert_ne!(base.hash(), moved.hash());

        let mut more = plan();
        more.users.push(user("c", Bucket::Automated));
        assert_ne!(base.hash(), more.hash());

        let mut other_steps = plan();
        other_steps.steps.pop();
        assert_ne!(base.hash(), other_steps.hash());

        let mut edited = plan();
        edited.playbook_sha256 = "abd".into();
        assert_ne!(base.hash(), edited.hash());

        let mut fewer_user_steps = plan();
        fewer_user_steps.users[0].steps = Arc::from(Vec::new());
        assert_ne!(base.hash(), fewer_user_steps.hash());
    }

    #[test]
    fn plan_round_trips_through_json() {
        let p = plan();
        let text = serde_json::to_string(&p).unwrap();
        let back: Plan = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.hash(), p.hash());
    }
}
