//! How a run resolves its targets: look each named key up, or list the whole tenant and join.
//! Both give the same users with the same properties (the plan and its hash do not change);
//! only the time and the quota spent differ, so the choice is made per run by a cost model.
//!
//! ## The cost model
//!
//! - **Listing**: `GET /users?$select=…&$top=999` pages one after the other (each page's
//!   `@odata.nextLink` comes with it), so it takes `ceil(N / 999) × t_page` for a tenant of
//!   `N` users, with `t_page` = [`PAGE_SECONDS`] (1 s: Graph often takes over a second for a
//!   999-user page). It spends one resource unit per page.
//! - **Lookup**: `K` keys go as `GET /users/{id | upn}` items, [`LOOKUPS_PER_BATCH`] (20) per
//!   `$batch`, [`LOOKUP_BATCHES_IN_FLIGHT`] (16) envelopes at once, so `ceil(ceil(K / 20) / 16)`
//!   rounds of `t_batch` = [`BATCH_SECONDS`] (1 s, as slow as a page: Graph runs a batch's
//!   items in parallel and answers when the slowest is done). Each item is charged one
//!   resource unit of the app's read budget (`R` per `W`: 3,500 / 5,000 / 8,000 per 10 s by
//!   tenant size, <https://learn.microsoft.com/graph/throttling-limits>), so the lookups
//!   also need at least `K × W / R`. The lookup time is the larger of the two.
//!
//! The run looks up when the lookup time is below the listing's. Both page and batch times
//! scale with the same latency, so the choice does not depend on it. For 500 keys in a
//! 1,000,000-user tenant: 2 rounds (2 s) against 1,002 pages (1,002 s); for 500 keys in a
//! 5,000-user tenant: 2 s against 6 s; for 10,000 keys in a 20,000-user tenant, listing
//! (32 s against 21 s). `all_users` needs every user, so it lists; so does a `filter`
//! source, whose matches come from an eventually consistent advanced query: the listing
//! reads their properties as every other source's are read.
//!
//! Group sources are read as members only either way (a group's pages are never more than
//! the tenant's); with a lookup their members' properties come with them.

use serde::{Deserialize, Serialize};

use crate::directory::{LIST_PAGE_SIZE, LOOKUP_BATCHES_IN_FLIGHT, LOOKUPS_PER_BATCH};
use crate::throttle::Quotas;

/// Seconds one page of 999 users takes (the model's `t_page`).
pub const PAGE_SECONDS: f64 = 1.0;
/// Seconds one `$batch` of 20 lookups takes (the model's `t_batch`).
pub const BATCH_SECONDS: f64 = 1.0;

/// Which way to resolve: chosen by the cost model, or forced (tests, comparisons).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Let the cost model choose.
    #[default]
    Auto,
    /// Look the keys up when the sources allow it.
    Lookup,
    /// List the tenant.
    Listing,
}

/// How the targets were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Each key looked up (`$batch` of `GET /users/{key}`), groups read as members.
    Lookup,
    /// The tenant listed once and every source joined against it.
    Listing,
}

impl Method {
    /// The name plans and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Lookup => "lookup",
            Method::Listing => "listing",
        }
    }
}

/// Which way a plan's targets were resolved, and why: part of the plan, not of its hash
/// (both ways plan the same users).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedBy {
    /// The way chosen.
    pub method: Method,
    /// Why, with the model's figures.
    pub why: String,
}

/// The cost model's inputs that come from the tenant's configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// The app's directory read budget, in resource units per second.
    pub read_units_per_second: f64,
}

impl CostModel {
    /// The model for a tenant with `quotas` (its read budget, already time-scaled).
    pub fn for_quotas(quotas: &Quotas) -> Self {
        let rate = quotas.app_read_units;
        CostModel {
            read_units_per_second: f64::from(rate.count) / rate.window.as_secs_f64().max(1e-9),
        }
    }

    /// Seconds a listing of `tenant_users` takes.
    pub fn listing_seconds(&self, tenant_users: u64) -> f64 {
        pages(tenant_users) as f64 * PAGE_SECONDS
    }

    /// Seconds looking up `keys` takes.
    pub fn lookup_seconds(&self, keys: u64) -> f64 {
        let rounds = batches(keys).div_ceil(LOOKUP_BATCHES_IN_FLIGHT as u64);
        let by_latency = rounds as f64 * BATCH_SECONDS;
        let by_budget = keys as f64 / self.read_units_per_second.max(1e-9);
        by_latency.max(by_budget)
    }

    /// Choose for `keys` lookups in a tenant of `tenant_users`; `needs_listing` names the
    /// source that needs the listing, if any.
    pub fn choose(
        &self,
        strategy: Strategy,
        tenant_users: u64,
        keys: u64,
        needs_listing: Option<&str>,
    ) -> ResolvedBy {
        let listing = |why: String| ResolvedBy {
            method: Method::Listing,
            why,
        };
        if let Some(source) = needs_listing {
            return listing(format!("{source} needs every user of the tenant listed"));
        }
        match strategy {
            Strategy::Lookup => {
                return ResolvedBy {
                    method: Method::Lookup,
                    why: format!("{keys} lookups, as asked"),
                };
            }
            Strategy::Listing => return listing("listing, as asked".into()),
            Strategy::Auto => {}
        }
        let lookup_s = self.lookup_seconds(keys);
        let listing_s = self.listing_seconds(tenant_users);
        let figures = format!(
            "{keys} lookups in {} $batch requests (about {lookup_s:.0} s at {BATCH_SECONDS} s \
             per batch, {LOOKUP_BATCHES_IN_FLIGHT} in flight, {:.0} reads/s) against {} pages of \
             {LIST_PAGE_SIZE} for {tenant_users} users (about {listing_s:.0} s at \
             {PAGE_SECONDS} s per page)",
            batches(keys),
            self.read_units_per_second,
            pages(tenant_users),
        );
        if lookup_s < listing_s {
            ResolvedBy {
                method: Method::Lookup,
                why: figures,
            }
        } else {
            listing(figures)
        }
    }
}

/// Pages of a listing of `users`.
fn pages(users: u64) -> u64 {
    users.div_ceil(LIST_PAGE_SIZE as u64).max(1)
}

/// `$batch` requests for `keys` lookups.
fn batches(keys: u64) -> u64 {
    keys.div_ceil(LOOKUPS_PER_BATCH as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3,500 resource units per 10 s: a small tenant at Graph's own time scale.
    fn model() -> CostModel {
        CostModel {
            read_units_per_second: 350.0,
        }
    }

    #[test]
    fn a_short_list_in_a_large_tenant_is_looked_up() {
        let chosen = model().choose(Strategy::Auto, 1_000_000, 500, None);
        assert_eq!(chosen.method, Method::Lookup, "{}", chosen.why);
        assert!(
            chosen.why.contains("500 lookups in 25 $batch"),
            "{}",
            chosen.why
        );
        assert!(chosen.why.contains("1002 pages"), "{}", chosen.why);
    }

    #[test]
    fn a_long_list_or_a_small_tenant_is_listed() {
        assert_eq!(
            model()
                .choose(Strategy::Auto, 1_000_000, 1_000_000, None)
                .method,
            Method::Listing
        );
        assert_eq!(
            model().choose(Strategy::Auto, 20_000, 10_000, None).method,
            Method::Listing
        );
        assert_eq!(
            model().choose(Strategy::Auto, 1_000, 500, None).method,
            Method::Listing,
            "one page beats two rounds of batches"
        );
    }

    #[test]
    fn the_read_budget_bounds_the_lookups() {
        // 320 batches, 16 at a time: 20 rounds (20 s); 6,400 reads at 350/s take 18.3 s.
        let model = model();
        assert_eq!(model.lookup_seconds(6_400), 20.0);
        let slow = CostModel {
            read_units_per_second: 100.0,
        };
        assert_eq!(slow.lookup_seconds(6_400), 64.0);
    }

    #[test]
    fn all_users_and_filters_list_whatever_is_asked() {
        let chosen = model().choose(Strategy::Lookup, 1_000_000, 0, Some("all_users"));
        assert_eq!(chosen.method, Method::Listing);
        assert!(chosen.why.contains("all_users"), "{}", chosen.why);
        assert_eq!(
            model().choose(Strategy::Lookup, 10, 5_000, None).method,
            Method::Lookup
        );
        assert_eq!(
            model().choose(Strategy::Listing, 1_000_000, 5, None).method,
            Method::Listing
        );
    }
}
