//! The per-tenant throttle governor: budgets per (tenant, app, bucket), the shared per-bucket
//! Retry-After gate, the adaptive in-flight limit, and app selection for the credential pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use std::sync::Mutex;

use tokio::time::Instant;

use super::backoff::equal_jitter;
use super::bucket::TokenBucket;
use super::gate::Gate;
use super::inflight::{InFlight, Supply};
use super::quota::{Quotas, Rate};
use super::window::GrantLog;

/// Which Graph throttling budget a request draws on
/// (<https://learn.microsoft.com/graph/throttling-limits>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Identity and access reads: resource units per app and tenant.
    DirectoryRead,
    /// Identity and access writes: per app and tenant, and per tenant across apps.
    DirectoryWrite,
    /// Identity Protection and Conditional Access: 1 request/s per tenant, no Retry-After.
    IdentityProtection,
    /// Outlook (sendMail): per app and mailbox, 4 concurrent.
    Mail,
}

impl Bucket {
    /// All buckets, in index order.
    pub const ALL: [Bucket; 4] = [
        Bucket::DirectoryRead,
        Bucket::DirectoryWrite,
        Bucket::IdentityProtection,
        Bucket::Mail,
    ];

    fn index(self) -> usize {
        match self {
            Bucket::DirectoryRead => 0,
            Bucket::DirectoryWrite => 1,
            Bucket::IdentityProtection => 2,
            Bucket::Mail => 3,
        }
    }

    /// Short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::DirectoryRead => "directory_read",
            Bucket::DirectoryWrite => "directory_write",
            Bucket::IdentityProtection => "identity_protection",
            Bucket::Mail => "mail",
        }
    }
}

/// What one request (or one `$batch` envelope) costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// The budget it draws on.
    pub bucket: Bucket,
    /// Cells: writes for write buckets, resource units for reads, requests otherwise.
    pub cost: u32,
    /// Whether it also draws on the optional authentication-methods budget.
    pub auth_methods: bool,
}

impl Charge {
    /// A charge of `cost` on `bucket`.
    pub fn new(bucket: Bucket, cost: u32) -> Self {
        Charge {
            bucket,
            cost: cost.max(1),
            auth_methods: false,
        }
    }
}

/// One documented limit as the token bucket Graph meters it with, and this runner's estimate
/// of its level (see `bucket.rs` for the model).
struct Budget {
    /// The estimate, what it granted over the last window, and the rule in force.
    state: Mutex<BudgetState>,
    /// The documented capacity (`N` of "`N` per `W`"): a limit-percentage is a fraction of it.
    documented: f64,
    /// The limit's window `W`.
    window: Duration,
    /// One token's refill time: the unit of the early slow-down.
    period: Duration,
}

/// The mutable part of a [`Budget`].
struct BudgetState {
    /// The estimate, at `headroom` of the documented capacity and refill.
    bucket: TokenBucket,
    /// Every grant of the last window.
    log: GrantLog,
    /// The server showed it counts a sliding window (`window.rs`): admit by the log.
    windowed: bool,
}

impl Budget {
    fn new(rate: Rate, headroom: f64) -> Self {
        let headroom = if headroom.is_finite() && headroom > 0.0 {
            headroom.min(1.0)
        } else {
            1.0
        };
        let documented = f64::from(rate.count);
        let capacity = (documented * headroom).floor().max(1.0);
        let refill = documented * headroom / rate.window.as_secs_f64();
        let bucket = TokenBucket::full(capacity, refill, Instant::now());
        Budget {
            period: Duration::from_secs_f64(1.0 / bucket.refill_per_sec()),
            state: Mutex::new(BudgetState {
                bucket,
                log: GrantLog::default(),
                windowed: false,
            }),
            documented,
            window: rate.window,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `cost` tokens now, or says how long until they could be taken.
    fn try_take(&self, cost: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let mut st = self.lock();
        let st = &mut *st;
        if st.windowed {
            let capacity = st.bucket.capacity() as u64;
            st.log.fits(cost, capacity, self.window, now)?;
            // Keep the estimate in step (it may go below zero: it is not the rule now).
            let _ = st.bucket.try_take(cost, now);
        } else {
            st.bucket.try_take(cost, now)?;
        }
        st.log.granted(cost);
        Ok(())
    }

    /// The answer to a grant of `cost` came back (or the request was given up).
    fn answered(&self, cost: u32) {
        let mut st = self.lock();
        st.log.answered(cost, self.window, Instant::now());
    }

    /// Waits until `cost` tokens are taken (answered when [`Budget::answered`] is called).
    async fn take(&self, cost: u32) {
        while let Err(wait) = self.try_take(cost) {
            tokio::time::sleep(wait).await;
        }
    }

    /// The estimated level now.
    fn level(&self) -> f64 {
        self.lock().bucket.level(Instant::now())
    }

    /// What the estimate can grant: its level now (never below zero) and its refill.
    fn supply(&self) -> Supply {
        let mut st = self.lock();
        Supply {
            ready: st.bucket.level(Instant::now()).max(0.0),
            per_sec: st.bucket.refill_per_sec(),
        }
    }

    /// The fraction of the documented limit our estimate says is used.
    fn used_fraction(&self) -> f64 {
        let mut st = self.lock();
        let level = st.bucket.level(Instant::now());
        // The estimate's capacity is below the documented one by the headroom's margin.
        let server_level = level + (self.documented - st.bucket.capacity());
        (1.0 - server_level / self.documented).clamp(0.0, 1.0)
    }

    /// The server says a fraction `p` of the documented limit is used: at most
    /// `N·(1 − p)` is left there, so at most that less the headroom's margin here.
    fn lower_to_percentage(&self, p: f64) {
        let mut st = self.lock();
        let level = st.bucket.capacity() - p.clamp(0.0, 1.0) * self.documented;
        st.bucket.lower_to(level, Instant::now());
    }

    /// A 429: the server's bucket is empty; and a `Retry-After` longer than a bucket's
    /// refill shows the server counts a sliding window (`window.rs`).
    fn throttled(&self, retry_after: Option<Duration>) {
        let mut st = self.lock();
        st.bucket.lower_to(0.0, Instant::now());
        if !st.windowed && GrantLog::shows_a_window(retry_after, self.window) {
            tracing::warn!(
                message = "The server counts a sliding window, not a token bucket: pacing by it.",
                window_ms = self.window.as_millis() as u64
            );
            st.windowed = true;
        }
    }

    /// A 429 that says nothing of the server's rule (a learned budget starts empty).
    fn drain(&self) {
        self.throttled(None);
    }

    /// Lowers the estimate to what `writes` (instants, one token each) leave of a full bucket.
    fn account(&self, writes: &[Instant]) {
        let now = Instant::now();
        let mut st = self.lock();
        let from_history = st.bucket.clone().after_writes(writes, now).level(now);
        st.bucket.lower_to(from_history, now);
    }
}

/// Per-app budgets.
struct AppBudgets {
    /// Directory writes of this app in this tenant.
    write: Budget,
    /// Directory resource units of this app in this tenant.
    read: Budget,
    /// Mail requests of this app.
    mail: Budget,
    /// Optional authentication-methods budget.
    auth_methods: Option<Budget>,
    /// The authentication-methods budget learned from 429s when none is configured, and
    /// when it was learned.
    learned: Mutex<Option<(Arc<Budget>, Instant)>>,
    /// When this app's recent authentication-method requests were granted (one learning
    /// window's worth), to learn that budget from.
    auth_log: Mutex<std::collections::VecDeque<Instant>>,
}

impl AppBudgets {
    /// The authentication-methods budget in force: the configured one, else the learned.
    fn auth_budget(&self) -> Option<Arc<Budget>> {
        if self.auth_methods.is_some() {
            return None;
        }
        self.learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(b, _)| Arc::clone(b))
    }

    /// Notes an authentication-method request granted now (keeps one window).
    fn log_auth(&self, window: Duration) {
        let now = Instant::now();
        let mut log = self.auth_log.lock().unwrap_or_else(|e| e.into_inner());
        while log
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            log.pop_front();
        }
        log.push_back(now);
    }

    /// An authentication-method request was answered 429 although no documented budget
    /// says so: learn the limit from what Graph admitted in the last window (the requests
    /// granted before this one), or, when a limit learned over a window ago was overrun,
    /// lower it by a third (429s of requests already in flight when it was learned only
    /// empty it). The learned bucket starts empty (the server just said so).
    fn learn_auth(&self, window: Duration, headroom: f64) {
        if self.auth_methods.is_some() {
            return;
        }
        let now = Instant::now();
        let admitted = {
            let log = self.auth_log.lock().unwrap_or_else(|e| e.into_inner());
            log.iter()
                .filter(|t| now.saturating_duration_since(**t) <= window)
                .count()
                .saturating_sub(1) as u32
        };
        let mut learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        let count = match learned.as_ref() {
            Some((known, at)) if now.saturating_duration_since(*at) <= window => {
                known.drain();
                return;
            }
            Some((known, _)) => ((known.documented * 2.0 / 3.0).floor() as u32).max(1),
            None => admitted.max(1),
        };
        let budget = Budget::new(Rate { count, window }, headroom);
        budget.drain();
        tracing::warn!(
            message = "Learned an undocumented authentication-methods limit from a 429.",
            per_window = count,
            window_ms = window.as_millis() as u64
        );
        *learned = Some((Arc::new(budget), now));
    }
}

/// Per-bucket shared state.
struct BucketState {
    /// Retry-After gate shared by every app.
    gate: Gate,
    /// Adaptive in-flight limit (`inflight.rs`).
    in_flight: InFlight,
    /// Serializes cell acquisition (FIFO) and holds the round-robin cursor over apps.
    pick: tokio::sync::Mutex<usize>,
    /// Consecutive 429s without Retry-After, for the own back-off.
    no_retry_after_streak: AtomicU32,
    /// Unit of the early slow-down delay (one token's refill time in the app's bucket).
    slowdown_unit: Duration,
    /// Per app: the last `x-ms-throttle-limit-percentage` seen, in thousandths (0 when the
    /// last answer had none), to tell a rising limit from a steady or recovering one.
    last_pct: Vec<AtomicU32>,
}

struct Inner {
    /// The tenant's quotas.
    quotas: Quotas,
    /// One entry per app of the credential pool.
    apps: Vec<AppBudgets>,
    /// Writes of all apps in the tenant.
    tenant_write: Budget,
    /// Identity Protection requests of all apps in the tenant.
    identity_protection: Budget,
    /// Indexed by `Bucket::index`.
    buckets: [BucketState; 4],
}

/// The throttle governor of one tenant: cheap to clone, shared by every request to it.
#[derive(Clone)]
pub struct TenantGovernor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TenantGovernor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantGovernor")
            .field("apps", &self.inner.apps.len())
            .field("quotas", &self.inner.quotas)
            .finish()
    }
}

impl TenantGovernor {
    /// A governor for a tenant with `apps` app registrations (at least one is assumed).
    pub fn new(quotas: Quotas, apps: usize) -> Self {
        let h = quotas.headroom;
        let apps: Vec<AppBudgets> = (0..apps.max(1))
            .map(|_| AppBudgets {
                write: Budget::new(quotas.app_write, h),
                read: Budget::new(quotas.app_read_units, h),
                mail: Budget::new(quotas.mail, h),
                auth_methods: quotas.auth_methods.map(|r| Budget::new(r, h)),
                learned: Mutex::new(None),
                auth_log: Mutex::new(std::collections::VecDeque::new()),
            })
            .collect();
        let tenant_write = Budget::new(quotas.tenant_write, h);
        let identity_protection = Budget::new(quotas.identity_protection, h);
        let coalesce = quotas.no_retry_after_base;
        let app_count = apps.len();
        let state = |max: u32, unit: Duration| BucketState {
            gate: Gate::default(),
            in_flight: InFlight::new(max.min(8), max, coalesce),
            pick: tokio::sync::Mutex::new(0),
            no_retry_after_streak: AtomicU32::new(0),
            slowdown_unit: unit,
            last_pct: (0..app_count).map(|_| AtomicU32::new(0)).collect(),
        };
        let buckets = [
            state(quotas.max_in_flight, apps[0].read.period),
            state(quotas.max_in_flight, apps[0].write.period),
            state(quotas.max_in_flight.min(4), identity_protection.period),
            state(quotas.mail_concurrency, apps[0].mail.period),
        ];
        TenantGovernor {
            inner: Arc::new(Inner {
                quotas,
                apps,
                tenant_write,
                identity_protection,
                buckets,
            }),
        }
    }

    /// Reports a 429 that did not come through a [`Permit`] (a throttled item inside a
    /// `$batch` whose envelope succeeded): same effect as [`Permit::throttled`], with every
    /// app's estimate drained since which app's bucket ran out is not known.
    pub fn throttled(&self, bucket: Bucket, retry_after: Option<Duration>) -> Duration {
        throttle_bucket(&self.inner, bucket, None, retry_after)
    }

    /// Lowers the directory-write estimates to what this runner's own recent writes to the
    /// tenant leave (`writes`: when each was made, from the run store's journal, across runs
    /// and processes), so a run that starts right after another does not spend a bucket the
    /// first one emptied. The journal does not say which app of the pool sent a write: the
    /// pool spreads writes round robin, so the `i`-th oldest is counted against app
    /// `i mod apps`; the tenant-wide bucket counts them all. Only lowers: the writes of this
    /// governor itself are already in its estimate.
    pub fn account_recent_writes(&self, writes: &[jiff::Timestamp], now: jiff::Timestamp) {
        let here = Instant::now();
        let mut instants: Vec<Instant> = writes
            .iter()
            .filter_map(|t| {
                let age = now.duration_since(*t).as_secs_f64().max(0.0);
                here.checked_sub(Duration::try_from_secs_f64(age).ok()?)
            })
            .collect();
        instants.sort_unstable();
        let inner = &self.inner;
        inner.tenant_write.account(&instants);
        let n = inner.apps.len();
        for (a, app) in inner.apps.iter().enumerate() {
            let own: Vec<Instant> = instants.iter().skip(a).step_by(n).copied().collect();
            app.write.account(&own);
        }
    }

    /// The estimated level of the directory-write buckets: (this app's, the tenant's), in
    /// tokens at the estimate's headroom. For metrics and tests.
    pub fn write_levels(&self, app: usize) -> (f64, f64) {
        let inner = &self.inner;
        let app = inner.apps.get(app).map_or(0.0, |a| a.write.level());
        (app, inner.tenant_write.level())
    }

    /// The quotas in force.
    pub fn quotas(&self) -> &Quotas {
        &self.inner.quotas
    }

    /// Number of apps in the pool.
    pub fn app_count(&self) -> usize {
        self.inner.apps.len()
    }

    /// The in-flight limit of a bucket now: what its budgets and the latency need, under
    /// the AIMD cap and the ceiling (`inflight.rs`).
    pub fn in_flight_limit(&self, bucket: Bucket) -> f64 {
        self.inner.buckets[bucket.index()]
            .in_flight
            .limit(supply_of(&self.inner, bucket))
    }

    /// The mean latency of a bucket's answered requests, once one was answered.
    pub fn latency(&self, bucket: Bucket) -> Option<Duration> {
        self.inner.buckets[bucket.index()].in_flight.latency()
    }

    /// The moment before which the bucket sends nothing, if in the future.
    pub fn not_before(&self, bucket: Bucket) -> Option<Instant> {
        self.inner.buckets[bucket.index()].gate.deadline()
    }

    /// Waits for room: the bucket's gate, an in-flight slot, the tenant-wide budget, then an
    /// app with room (round robin over the pool, skipping apps whose budget is empty).
    /// Cancel-safe: dropping the future releases whatever it held.
    pub async fn acquire(&self, charge: Charge) -> Permit {
        let inner = &self.inner;
        let b = &inner.buckets[charge.bucket.index()];
        b.gate.wait().await;
        b.in_flight
            .acquire(charge.cost, || supply_of(inner, charge.bucket))
            .await;
        let mut permit = Permit {
            inner: self.inner.clone(),
            bucket: charge.bucket,
            app: 0,
            auth_methods: false,
            cost: charge.cost,
            taken: false,
            done: false,
            granted: Instant::now(),
        };
        {
            let mut cursor = b.pick.lock().await;
            match charge.bucket {
                Bucket::DirectoryWrite => inner.tenant_write.take(charge.cost).await,
                Bucket::IdentityProtection => inner.identity_protection.take(charge.cost).await,
                Bucket::DirectoryRead | Bucket::Mail => {}
            }
            let n = inner.apps.len();
            let app = loop {
                let mut shortest: Option<Duration> = None;
                let mut chosen = None;
                for k in 0..n {
                    let i = (*cursor + k) % n;
                    let budget = match charge.bucket {
                        Bucket::DirectoryWrite => Some(&inner.apps[i].write),
                        Bucket::DirectoryRead => Some(&inner.apps[i].read),
                        Bucket::Mail => Some(&inner.apps[i].mail),
                        Bucket::IdentityProtection => None,
                    };
                    match budget.map(|bg| bg.try_take(charge.cost)) {
                        None | Some(Ok(())) => {
                            chosen = Some(i);
                            break;
                        }
                        Some(Err(wait)) => shortest = Some(shortest.map_or(wait, |s| s.min(wait))),
                    }
                }
                if let Some(i) = chosen {
                    break i;
                }
                tokio::time::sleep(shortest.unwrap_or(Duration::from_millis(1))).await;
            };
            *cursor = (app + 1) % n;
            if charge.auth_methods {
                let budgets = &inner.apps[app];
                // These never fall back to a window: their grants count as answered at once.
                if let Some(extra) = &budgets.auth_methods {
                    extra.take(1).await;
                    extra.answered(1);
                } else if let Some(learned) = budgets.auth_budget() {
                    learned.take(1).await;
                    learned.answered(1);
                }
                budgets.log_auth(inner.quotas.learn_window);
                permit.auth_methods = true;
            }
            permit.app = app;
            // Both budgets granted: answered when the permit is released. (Dropped between
            // the two, the shared grant stays pending: it only holds back a budget that
            // fell back to a window, by one request's cost.)
            permit.taken = true;
        }
        // A 429 may have closed the gate while we waited for cells.
        b.gate.wait().await;
        permit.granted = Instant::now();
        permit
    }
}

/// How far above our own estimate's used fraction a limit-percentage may be and still be
/// ours (the server refills between our count and its own).
const EXPLAINED_TOLERANCE: f64 = 0.02;

/// The budgets a request of `bucket` sent with app `app` draws on: the app's own, then the
/// tenant-wide one.
fn budgets_of(inner: &Inner, bucket: Bucket, app: usize) -> [Option<&Budget>; 2] {
    let own = inner.apps.get(app);
    match bucket {
        Bucket::DirectoryWrite => [own.map(|a| &a.write), Some(&inner.tenant_write)],
        Bucket::DirectoryRead => [own.map(|a| &a.read), None],
        Bucket::Mail => [own.map(|a| &a.mail), None],
        Bucket::IdentityProtection => [None, Some(&inner.identity_protection)],
    }
}

/// What the budgets a request of `bucket` draws on can grant together: the pool's own
/// budgets summed, under the tenant-wide one.
fn supply_of(inner: &Inner, bucket: Bucket) -> Supply {
    let pool = |own: fn(&AppBudgets) -> &Budget| {
        inner.apps.iter().fold(
            Supply {
                ready: 0.0,
                per_sec: 0.0,
            },
            |sum, app| {
                let s = own(app).supply();
                Supply {
                    ready: sum.ready + s.ready,
                    per_sec: sum.per_sec + s.per_sec,
                }
            },
        )
    };
    let under = |a: Supply, b: Supply| Supply {
        ready: a.ready.min(b.ready),
        per_sec: a.per_sec.min(b.per_sec),
    };
    match bucket {
        Bucket::DirectoryWrite => under(pool(|a| &a.write), inner.tenant_write.supply()),
        Bucket::DirectoryRead => pool(|a| &a.read),
        // Outlook's ceiling is its documented 4 concurrent requests per mailbox.
        Bucket::Mail => Supply::UNBOUNDED,
        Bucket::IdentityProtection => inner.identity_protection.supply(),
    }
}

/// After a 429: drains the estimates of the buckets the request drew on (of `app`, or of
/// every app when not known: the server's bucket is empty, whatever our count said — other
/// apps drained it), closes `bucket`'s gate and halves its in-flight limit; returns the wait.
fn throttle_bucket(
    inner: &Inner,
    bucket: Bucket,
    app: Option<usize>,
    retry_after: Option<Duration>,
) -> Duration {
    let apps: Vec<usize> = match app {
        Some(a) => vec![a],
        None => (0..inner.apps.len()).collect(),
    };
    for a in apps {
        for budget in budgets_of(inner, bucket, a).into_iter().flatten() {
            budget.throttled(retry_after);
        }
    }
    throttle_gate(inner, bucket, retry_after)
}

/// Closes `bucket`'s gate for the Retry-After (or the own back-off when Graph sent none)
/// and halves its in-flight limit; returns the wait.
fn throttle_gate(inner: &Inner, bucket: Bucket, retry_after: Option<Duration>) -> Duration {
    let b = &inner.buckets[bucket.index()];
    let wait = match retry_after {
        Some(d) => d,
        None => {
            let streak = b.no_retry_after_streak.fetch_add(1, Ordering::Relaxed);
            equal_jitter(
                streak,
                inner.quotas.no_retry_after_base,
                inner.quotas.no_retry_after_cap,
            )
        }
    };
    b.gate.close_until(Instant::now() + wait);
    b.in_flight.decrease(0.5);
    wait
}

/// The right to send one request: an in-flight slot and the cells it consumed. Report the
/// outcome with [`Permit::throttled`] or [`Permit::succeeded`]; dropping it just frees the slot.
pub struct Permit {
    inner: Arc<Inner>,
    bucket: Bucket,
    app: usize,
    /// An authentication-method request (its 429 may be the undocumented limit).
    auth_methods: bool,
    /// The cost taken from the bucket's budgets (answered on release).
    cost: u32,
    /// Whether the budgets took it (an acquisition dropped midway took only some).
    taken: bool,
    done: bool,
    /// When the request was let through: its answer's latency is measured from here.
    granted: Instant,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("bucket", &self.bucket)
            .field("app", &self.app)
            .finish()
    }
}

impl Permit {
    /// Index of the app of the pool whose budget was charged: send with its token.
    pub fn app(&self) -> usize {
        self.app
    }

    /// The bucket charged.
    pub fn bucket(&self) -> Bucket {
        self.bucket
    }

    /// Graph answered 429: close the bucket's gate for `retry_after` (or for an own
    /// exponential back-off when Graph sent none, as Identity Protection does) and halve the
    /// in-flight limit. Returns how long the gate is closed from now.
    pub fn throttled(mut self, retry_after: Option<Duration>) -> Duration {
        let inner = &self.inner;
        let own = budgets_of(inner, self.bucket, self.app)[0];
        // An authentication-method request refused while the documented buckets have room
        // (below where Graph starts warning) ran into the undocumented limit: learn it, and
        // leave the documented estimates alone.
        let undocumented = self.auth_methods
            && own.is_some_and(|b| b.used_fraction() < inner.quotas.early_slowdown_at);
        let wait = if undocumented {
            inner.apps[self.app].learn_auth(inner.quotas.learn_window, inner.quotas.headroom);
            throttle_gate(inner, self.bucket, retry_after)
        } else {
            throttle_bucket(inner, self.bucket, Some(self.app), retry_after)
        };
        self.release();
        wait
    }

    /// Graph answered without throttling. `limit_percentage` is
    /// `x-ms-throttle-limit-percentage` when present: the fraction of a limit in use.
    ///
    /// A percentage our own estimate of the app's bucket explains (we spent that much of it
    /// ourselves: the point of spending it) changes nothing. One above it means others drain the
    /// bucket too: the estimates of the buckets the request drew on drop at once to what
    /// the percentage leaves, and while the percentage is **rising** (above the last value
    /// this app saw) the bucket also pauses in proportion (up to 5 refill periods at 1.0)
    /// and the in-flight limit shrinks a little, so the client eases off before Graph
    /// throttles. A percentage that is high but steady or falling (a bucket another tool
    /// used that is now recovering) only stops the in-flight limit from growing: pausing on
    /// every such answer cost ~20 % of the quota against a tenant whose write bucket stood
    /// at 92 % used and was recovering.
    pub fn succeeded(mut self, limit_percentage: Option<f64>) {
        let inner = &self.inner;
        let b = &inner.buckets[self.bucket.index()];
        b.in_flight
            .observe(Instant::now().saturating_duration_since(self.granted));
        b.no_retry_after_streak.store(0, Ordering::Relaxed);
        let threshold = inner.quotas.early_slowdown_at;
        let last = b.last_pct.get(self.app);
        match limit_percentage {
            Some(p) if p.is_finite() && p > threshold => {
                let milli = (p.clamp(0.0, 4.0) * 1000.0).round() as u32;
                let previous = last.map_or(0, |l| l.swap(milli, Ordering::Relaxed));
                let budgets = budgets_of(inner, self.bucket, self.app);
                // What our own spending explains: the app's own bucket (only we draw on
                // it), or the shared one for a limit that has no per-app bucket.
                let explained = budgets[0]
                    .or(budgets[1])
                    .map_or(0.0, |bg| bg.used_fraction());
                if p <= explained + EXPLAINED_TOLERANCE {
                    b.in_flight.grow();
                } else {
                    for budget in budgets.into_iter().flatten() {
                        budget.lower_to_percentage(p);
                    }
                    if milli > previous {
                        let pressure = ((p - threshold) / (1.0 - threshold).max(0.01)).min(2.0);
                        b.gate.close_until(
                            Instant::now() + b.slowdown_unit.mul_f64(1.0 + 4.0 * pressure),
                        );
                        b.in_flight.decrease(0.9);
                    }
                }
            }
            _ => {
                if let Some(l) = last {
                    l.store(0, Ordering::Relaxed);
                }
                b.in_flight.grow();
            }
        }
        self.release();
    }

    fn release(&mut self) {
        if !self.done {
            self.done = true;
            if self.taken {
                for budget in budgets_of(&self.inner, self.bucket, self.app)
                    .into_iter()
                    .flatten()
                {
                    budget.answered(self.cost);
                }
            }
            self.inner.buckets[self.bucket.index()].in_flight.release();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{QuotaOverrides, TenantSize};

    /// Sends `total` acquisitions and checks every sliding window of `window` holds at most
    /// `quota` of them; returns the instants.
    async fn run(gov: &TenantGovernor, total: usize, bucket: Bucket) -> Vec<Instant> {
        let mut times = Vec::with_capacity(total);
        for _ in 0..total {
            let p = gov.acquire(Charge::new(bucket, 1)).await;
            times.push(Instant::now());
            p.succeeded(None);
        }
        times
    }

    /// The lowest level Graph's bucket (`capacity`, refilled at `per_sec`, full at the
    /// first instant) reaches when charged one token at each of `times`: below zero means
    /// Graph would have answered 429.
    fn lowest_level(times: &[Instant], capacity: f64, per_sec: f64) -> f64 {
        let Some(first) = times.first() else {
            return capacity;
        };
        let (mut level, mut at, mut lowest) = (capacity, *first, capacity);
        for t in times {
            level = (level + t.duration_since(at).as_secs_f64() * per_sec).min(capacity);
            at = *t;
            level -= 1.0;
            lowest = lowest.min(level);
        }
        lowest
    }

    #[tokio::test(start_paused = true)]
    async fn writes_spend_the_bucket_then_pace_at_its_refill_never_overdrawing_it() {
        // 3,000 / 150 s at time scale 10: a bucket of 3,000 refilled at 200/s.
        let q = Quotas::graph_defaults(TenantSize::Small, 10.0);
        let gov = TenantGovernor::new(q.clone(), 1);
        let start = Instant::now();
        let times = run(&gov, 7_500, Bucket::DirectoryWrite).await;
        let elapsed = Instant::now().duration_since(start).as_secs_f64();
        assert!(lowest_level(&times, 3_000.0, 200.0) >= 0.0);
        // The whole bucket (at 98 %) went at once.
        let at_once = times.iter().filter(|t| **t == start).count();
        assert_eq!(at_once, 2_940);
        // Then the refill: the bucket bound (7,500 − 3,000) / 200 = 22.5 s at the 98 %
        // headroom is (7,500 − 2,940) / 196 = 23.27 s.
        let bound = (7_500.0 - 3_000.0) / 200.0;
        let expected = (7_500.0 - 2_940.0) / 196.0;
        eprintln!("one app: {elapsed:.2} s against the bucket bound {bound:.2} s");
        assert!(
            elapsed >= expected && elapsed <= 1.01 * expected,
            "{elapsed}"
        );
    }

    /// `senders` concurrent senders, each write answered after `latency`, after the bucket
    /// was spent: (writes per second, the rate the bucket allows, the most requests on the
    /// wire at once, the median in-flight limit seen at the grants).
    async fn paced_with_latency(latency: Duration, senders: usize) -> (f64, f64, usize, f64) {
        let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 1.0), 1);
        run(&gov, 2_940, Bucket::DirectoryWrite).await;
        // Answers at this latency teach the mean (a jump from instant answers costs about a
        // round trip of rate while it catches up).
        for _ in 0..5 {
            let p = gov.acquire(Charge::new(Bucket::DirectoryWrite, 1)).await;
            tokio::time::sleep(latency).await;
            p.succeeded(None);
        }
        let holding = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let limits = Arc::new(Mutex::new(Vec::new()));
        let refilled = gov.write_levels(0).0;
        let start = Instant::now();
        let tasks: Vec<_> = (0..senders)
            .map(|_| {
                let (gov, holding, most) = (gov.clone(), holding.clone(), most.clone());
                let limits = limits.clone();
                tokio::spawn(async move {
                    for _ in 0..4 {
                        let p = gov.acquire(Charge::new(Bucket::DirectoryWrite, 1)).await;
                        let limit = gov.in_flight_limit(Bucket::DirectoryWrite);
                        limits.lock().unwrap().push(limit);
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        // Past the tokens refilled while the mean was taught.
                        if Instant::now().duration_since(start) > 2 * latency {
                            most.fetch_max(now, Ordering::SeqCst);
                        }
                        tokio::time::sleep(latency).await;
                        holding.fetch_sub(1, Ordering::SeqCst);
                        p.succeeded(None);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let writes = (4 * senders) as f64;
        let rate = writes / Instant::now().duration_since(start).as_secs_f64();
        // What refilled while the mean was taught goes at once, the rest at 19.6/s, and the
        // last answer comes one latency later.
        let ideal = writes / ((writes - refilled).max(0.0) / 19.6 + latency.as_secs_f64());
        let mut limits = limits.lock().unwrap().clone();
        limits.sort_by(f64::total_cmp);
        let most = most.load(Ordering::SeqCst) as usize;
        (rate, ideal, most, limits[limits.len() / 2])
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_bucket_holds_what_its_latency_needs_and_keeps_its_rate() {
        // 20 writes/s at 98 %: 19.6/s. At 100 ms, 1 + ⌈19.6 · 0.1 · 1.5⌉ = 4 slots, two of
        // them on the wire; at 1 s, 31 (a fixed 128 held every sender's slot). Either way
        // the refill is what the run gets.
        for (latency, limit) in [(100, 4.0), (1_000, 31.0)] {
            let latency = Duration::from_millis(latency);
            let (rate, ideal, most, now) = paced_with_latency(latency, 100).await;
            eprintln!(
                "{latency:?}: {rate:.2} writes/s (ideal {ideal:.2}), limit {now}, {most} on the wire"
            );
            // A grant leaves a fraction of a token, rounded up: one slot more at most.
            assert!(now == limit || now == limit + 1.0, "{latency:?}: {now}");
            // (At 1 s the step from the burst to the pacing costs about half a second.)
            assert!(
                rate >= 0.95 * ideal && rate <= 1.01 * ideal,
                "{latency:?}: {rate}"
            );
            assert!(most <= now as usize, "{latency:?}: {most} on the wire");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pool_shares_the_tenant_bucket() {
        // Three apps (3,000 + 200/s each at scale 10) under a tenant bucket shrunk to
        // 9,000 / 300 s (9,000 + 300/s): the tenant bucket binds all apps together.
        let o = QuotaOverrides {
            tenant_writes_per_window: Some(9_000),
            ..Default::default()
        };
        let q = Quotas::with_overrides(&o, TenantSize::Small, 10.0);
        let gov = TenantGovernor::new(q.clone(), 3);
        let mut per_app = [0usize; 3];
        let mut times = Vec::new();
        let start = Instant::now();
        for _ in 0..15_000 {
            let p = gov.acquire(Charge::new(Bucket::DirectoryWrite, 1)).await;
            per_app[p.app()] += 1;
            times.push(Instant::now());
            p.succeeded(None);
        }
        let elapsed = Instant::now().duration_since(start).as_secs_f64();
        assert!(lowest_level(&times, 9_000.0, 300.0) >= 0.0);
        let expected = (15_000.0 - 8_820.0) / 294.0;
        assert!(
            elapsed >= expected && elapsed <= 1.01 * expected,
            "{elapsed}"
        );
        assert!(per_app.iter().all(|&n| n >= 4_900), "{per_app:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn pool_of_three_spends_every_app_bucket() {
        let q = Quotas::graph_defaults(TenantSize::Small, 10.0);
        let gov = TenantGovernor::new(q.clone(), 3);
        let start = Instant::now();
        let times = run(&gov, 12_000, Bucket::DirectoryWrite).await;
        let elapsed = Instant::now().duration_since(start).as_secs_f64();
        assert!(lowest_level(&times, 18_000.0, 600.0) >= 0.0);
        // Three app buckets of 3,000 then 3 × 200/s (the tenant's 600/s is not binding).
        let bound = (12_000.0 - 9_000.0) / 600.0;
        let expected = (12_000.0 - 8_820.0) / 588.0;
        eprintln!("pool of 3: {elapsed:.2} s against the bucket bound {bound:.2} s");
        assert!(
            elapsed >= expected && elapsed <= 1.01 * expected,
            "{elapsed}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn recent_writes_from_the_store_lower_the_estimate() {
        let q = Quotas::graph_defaults(TenantSize::Small, 1.0);
        let gov = TenantGovernor::new(q, 2);
        assert_eq!(gov.write_levels(0), (2_940.0, 17_640.0), "fresh: full");
        let now = jiff::Timestamp::now();
        let ten_ago = now - jiff::SignedDuration::from_secs(10);
        // 2,600 writes ten seconds ago, spread round robin over two apps: 1,300 each.
        let writes = vec![ten_ago; 2_600];
        gov.account_recent_writes(&writes, now);
        let (app, tenant) = gov.write_levels(0);
        // 2,940 − 1,300 + 10 × 19.6 and 17,640 − 2,600 + 10 × 58.8.
        assert!((app - 1_836.0).abs() < 1.0, "{app}");
        assert!((tenant - 15_628.0).abs() < 1.0, "{tenant}");
        // Accounting again (this governor's own writes are in the store too) only lowers.
        gov.account_recent_writes(&[], now);
        assert!((gov.write_levels(1).0 - 1_836.0).abs() < 1.0);
        // Writes older than the window do not count.
        let fresh = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 1.0), 1);
        let old = vec![now - jiff::SignedDuration::from_secs(400); 2_600];
        fresh.account_recent_writes(&old, now);
        assert_eq!(fresh.write_levels(0), (2_940.0, 17_640.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_drains_the_estimate_and_pacing_resumes_from_empty() {
        let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 1.0), 1);
        let p = gov.acquire(Charge::new(Bucket::DirectoryWrite, 1)).await;
        p.throttled(Some(Duration::from_secs(1)));
        let (app, tenant) = gov.write_levels(0);
        assert!(app <= 0.0 && tenant <= 0.0, "{app} {tenant}");
        // After the Retry-After the bucket has refilled one second's worth, not the capacity.
        let t0 = Instant::now();
        let times = run(&gov, 60, Bucket::DirectoryWrite).await;
        let took = times.last().unwrap().duration_since(t0).as_secs_f64();
        assert!(took >= 2.0, "paced from empty: {took}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_percentage_our_writes_do_not_explain_lowers_the_estimate() {
        let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 1.0), 1);
        // Spend 2,550 of our own: Graph saying 85 % is us; nothing changes.
        let times = run(&gov, 2_550, Bucket::DirectoryWrite).await;
        assert_eq!(times.last(), times.first(), "spent at once");
        let p = gov.acquire(Charge::new(Bucket::DirectoryWrite, 1)).await;
        p.succeeded(Some(0.85));
        assert!(gov.not_before(Bucket::DirectoryWrite).is_none());
        assert!((gov.write_levels(0).0 - 389.0).abs() < 1.0);
        // A fresh app told 90 % is used: others drain the tenant; 2,940 − 2,700 left here
        // and 17,640 − 16,200 in the tenant estimate, and a pause.
        let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 1.0), 1);
        let p = gov.acquire(Charge::new(Bucket::DirectoryWrite, 1)).await;
        p.succeeded(Some(0.9));
        let (app, tenant) = gov.write_levels(0);
        assert!((app - 240.0).abs() < 1.0, "{app}");
        assert!((tenant - 1_440.0).abs() < 1.0, "{tenant}");
        assert!(gov.not_before(Bucket::DirectoryWrite).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_undocumented_limit_is_learned_from_its_first_429() {
        // No authentication-methods budget configured; Graph admits 20 per 10 s and refuses
        // the 21st.
        let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 1.0), 1);
        let auth = Charge {
            auth_methods: true,
            ..Charge::new(Bucket::DirectoryWrite, 1)
        };
        for _ in 0..20 {
            gov.acquire(auth).await.succeeded(None);
        }
        let p = gov.acquire(auth).await;
        p.throttled(Some(Duration::from_secs(1)));
        // The documented write bucket had room: it was not drained.
        assert!(gov.write_levels(0).0 > 2_900.0);
        // From now on authentication-method requests go at the learned 20 × 98 % per 10 s
        // (1.96/s from empty), not into the limit again.
        let t0 = Instant::now();
        for _ in 0..10 {
            gov.acquire(auth).await.succeeded(None);
        }
        let took = Instant::now().duration_since(t0).as_secs_f64();
        assert!(took >= 10.0 / 1.96 - 0.01, "{took}");
        // Other writes are not held to it.
        let t1 = Instant::now();
        for _ in 0..100 {
            gov.acquire(Charge::new(Bucket::DirectoryWrite, 1))
                .await
                .succeeded(None);
        }
        assert_eq!(Instant::now(), t1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_as_long_as_a_window_switches_the_budget_to_the_window() {
        // 3,000 / 150 s at time scale 10: a 15 s window.
        let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 10.0), 1);
        let t0 = Instant::now();
        run(&gov, 2_940, Bucket::DirectoryWrite).await;
        let p = gov.acquire(Charge::new(Bucket::DirectoryWrite, 1)).await;
        // A token bucket would ask for a few milliseconds; this server counts a window.
        p.throttled(Some(Duration::from_secs(14)));
        // The refill would allow a write at 14 s; the window allows one only when the
        // first grants leave it, 15 s after they were answered.
        gov.acquire(Charge::new(Bucket::DirectoryWrite, 1))
            .await
            .succeeded(None);
        let waited = Instant::now().duration_since(t0);
        assert!(waited >= Duration::from_secs(15), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_gate_blocks_every_app_and_halves_in_flight() {
        let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 1.0), 2);
        let before = gov.in_flight_limit(Bucket::DirectoryWrite);
        let p = gov.acquire(Charge::new(Bucket::DirectoryWrite, 1)).await;
        let t0 = Instant::now();
        p.throttled(Some(Duration::from_millis(2_500)));
        assert_eq!(gov.in_flight_limit(Bucket::DirectoryWrite), before / 2.0);
        for _ in 0..2 {
            let p = gov.acquire(Charge::new(Bucket::DirectoryWrite, 1)).await;
            assert!(Instant::now().duration_since(t0) >= Duration::from_millis(2_500));
            p.succeeded(None);
        }
        // Other buckets are not gated.
        let t1 = Instant::now();
        gov.acquire(Charge::new(Bucket::DirectoryRead, 1))
            .await
            .succeeded(None);
        assert!(Instant::now().duration_since(t1) < Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_after_backs_off_exponentially() {
        let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 1.0), 1);
        let mut waits = Vec::new();
        for _ in 0..4 {
            let p = gov
                .acquire(Charge::new(Bucket::IdentityProtection, 1))
                .await;
            waits.push(p.throttled(None));
        }
        // Equal jitter: attempt k waits in [2^k/2, 2^k] seconds.
        for (k, w) in waits.iter().enumerate() {
            let full = Duration::from_secs(1 << k);
            assert!(*w >= full / 2 && *w <= full, "attempt {k}: {w:?}");
        }
        let p = gov
            .acquire(Charge::new(Bucket::IdentityProtection, 1))
            .await;
        p.succeeded(None);
        let p = gov
            .acquire(Charge::new(Bucket::IdentityProtection, 1))
            .await;
        let w = p.throttled(None);
        assert!(
            w <= Duration::from_secs(1),
            "streak reset on success: {w:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn identity_protection_paced_one_per_second() {
        let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 1.0), 3);
        let times = run(&gov, 10, Bucket::IdentityProtection).await;
        for pair in times.windows(2) {
            assert!(pair[1].duration_since(pair[0]) >= Duration::from_secs(1));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn high_limit_percentage_slows_down() {
        let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 1.0), 1);
        let p = gov.acquire(Charge::new(Bucket::DirectoryWrite, 1)).await;
        p.succeeded(Some(0.95));
        assert!(gov.not_before(Bucket::DirectoryWrite).is_some());
        assert!(gov.in_flight_limit(Bucket::DirectoryWrite) < 8.0);
        let p = gov.acquire(Charge::new(Bucket::DirectoryRead, 1)).await;
        p.succeeded(Some(0.5));
        assert!(gov.not_before(Bucket::DirectoryRead).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn steady_or_falling_limit_percentage_does_not_pause() {
        let gov = TenantGovernor::new(Quotas::graph_defaults(TenantSize::Small, 1.0), 2);
        let answer = |pct: Option<f64>| {
            let gov = gov.clone();
            async move {
                let p = gov.acquire(Charge::new(Bucket::DirectoryWrite, 1)).await;
                let app = p.app();
                p.succeeded(pct);
                app
            }
        };
        // App 0 sees 0.92 (rising from nothing): pause.
        assert_eq!(answer(Some(0.92)).await, 0);
        let first = gov.not_before(Bucket::DirectoryWrite).expect("paused");
        tokio::time::sleep_until(first).await;
        // App 1 sees 0.85 for the first time: rising for app 1, pause.
        assert_eq!(answer(Some(0.85)).await, 1);
        let second = gov.not_before(Bucket::DirectoryWrite).expect("paused");
        tokio::time::sleep_until(second).await;
        // Steady or recovering values, per app: no pause, however high.
        assert_eq!(answer(Some(0.92)).await, 0);
        assert_eq!(answer(Some(0.85)).await, 1);
        assert_eq!(answer(Some(0.91)).await, 0);
        assert_eq!(answer(Some(0.84)).await, 1);
        assert!(gov.not_before(Bucket::DirectoryWrite).is_none());
        // Climbing again: pause.
        assert_eq!(answer(Some(0.95)).await, 0);
        assert!(gov.not_before(Bucket::DirectoryWrite).is_some());
    }
}
