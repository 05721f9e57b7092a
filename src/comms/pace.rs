//! [`Paced`]: what wraps every channel the same way. A rate limit at the channel's
//! `Limits.per_minute` (a GCRA limiter with a small burst), at most `Limits.concurrency`
//! messages in flight (so messages to one channel go out concurrently up to its budget, never
//! one by one), and retries:
//!
//! - `Throttled`: wait the provider's `Retry-After` (the whole channel waits: every send
//!   would meet the same limit), else exponential back-off with jitter; sent again.
//! - `Unavailable`: back-off with full jitter; sent again (nothing was accepted).
//! - `OutcomeUnknown`: sent again only when the channel is idempotent (ACS repeatability);
//!   otherwise the message may already be with its recipient.
//! - `Rejected`: never sent again. `Denied`: never sent again, and nothing more goes out on
//!   the channel (credentials that were refused are not tried for every recipient).
//!
//! `time_scale` divides every wait and multiplies every rate: an emulated tenant compresses
//! time, and so does the benchmark. Waits use tokio's clock, so a paused test clock makes the
//! tests fast and exact.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::Quota;
use governor::clock::Clock;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::channels::ChannelSet;
use super::{Channel, ChannelError, ChannelErrorKind, Outbound, Receipt};
use crate::playbook::Channel as Kind;
use crate::throttle::{TokioClock, TokioInstant, equal_jitter, full_jitter};

/// The rate limiter of a channel.
type Limiter = governor::RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    TokioClock,
    governor::middleware::NoOpMiddleware<TokioInstant>,
>;

/// How sends are retried and how fast time runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceOptions {
    /// Attempts per message, the first included (at least 1).
    pub max_attempts: u32,
    /// First back-off step (doubled per attempt, jittered).
    pub backoff_base: Duration,
    /// Longest back-off step.
    pub backoff_cap: Duration,
    /// Divides every wait and multiplies every rate (emulated time); at least 1 in practice,
    /// any positive number accepted.
    pub time_scale: f64,
}

impl Default for PaceOptions {
    fn default() -> Self {
        PaceOptions {
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            time_scale: 1.0,
        }
    }
}

/// What one channel's pacing has counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PaceStats {
    /// The channel's name (`sms/acs`).
    pub channel: String,
    /// Messages the provider accepted.
    pub sent: u64,
    /// Messages given up on (after their last attempt, or not attempted after a denial).
    pub failed: u64,
    /// Answers that said "slow down".
    pub throttled: u64,
    /// Attempts beyond each message's first.
    pub retries: u64,
}

/// A message the provider accepted, and how many attempts it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// What the provider said.
    pub receipt: Receipt,
    /// Attempts made (1 when the first one was accepted).
    pub attempts: u32,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    throttled: AtomicU64,
    retries: AtomicU64,
}

/// One channel behind its rate limit, concurrency limit and retry rules.
pub struct Paced {
    channel: Arc<dyn Channel>,
    options: PaceOptions,
    limiter: Limiter,
    slots: Semaphore,
    /// No send starts before this instant (a `Retry-After` the provider gave).
    resume_at: Mutex<Option<Instant>>,
    /// The refusal that stopped the channel.
    denied: Mutex<Option<ChannelError>>,
    counters: Counters,
}

/// A paced channel is a channel: the notifier sends through it without knowing the pacing.
impl Channel for Paced {
    fn name(&self) -> &'static str {
        self.channel.name()
    }

    fn kind(&self) -> Kind {
        self.channel.kind()
    }

    fn traits(&self) -> super::ChannelTraits {
        self.channel.traits()
    }

    fn limits(&self) -> super::Limits {
        self.channel.limits()
    }

    fn send<'a>(
        &'a self,
        message: &'a Outbound,
    ) -> futures::future::BoxFuture<'a, Result<super::Receipt, ChannelError>> {
        Box::pin(async move { Paced::send(self, message).await.map(|d| d.receipt) })
    }

    fn send_when_leaving<'a>(
        &'a self,
        message: &'a Outbound,
        leaving: futures::future::BoxFuture<'a, Result<(), String>>,
    ) -> futures::future::BoxFuture<'a, Result<super::Receipt, ChannelError>> {
        Box::pin(async move {
            self.send_after(message, Some(leaving))
                .await
                .map(|d| d.receipt)
        })
    }
}

impl std::fmt::Debug for Paced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paced")
            .field("channel", &self.channel.name())
            .field("options", &self.options)
            .finish()
    }
}

impl Paced {
    /// `channel` paced at its limits, scaled by `options.time_scale`.
    pub fn new(channel: Arc<dyn Channel>, options: PaceOptions) -> Self {
        let limits = channel.limits();
        let scale = if options.time_scale.is_finite() && options.time_scale > 0.0 {
            options.time_scale
        } else {
            1.0
        };
        let per_second = (limits.per_minute.max(f64::MIN_POSITIVE) * scale) / 60.0;
        let concurrency = limits.concurrency.max(1);
        let period = Duration::from_secs_f64((1.0 / per_second).min(86_400.0));
        // A small burst: at most a second's worth, never more than may be in flight.
        let burst = (per_second.floor() as u32).clamp(1, concurrency as u32);
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Paced {
            channel,
            options: PaceOptions {
                time_scale: scale,
                max_attempts: options.max_attempts.max(1),
                ..options
            },
            limiter: Limiter::direct_with_clock(quota, TokioClock),
            slots: Semaphore::new(concurrency),
            resume_at: Mutex::new(None),
            denied: Mutex::new(None),
            counters: Counters::default(),
        }
    }

    /// The channel behind the pacing.
    pub fn channel(&self) -> &Arc<dyn Channel> {
        &self.channel
    }

    /// What has been counted so far.
    pub fn stats(&self) -> PaceStats {
        let c = &self.counters;
        PaceStats {
            channel: self.channel.name().to_owned(),
            sent: c.sent.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// The refusal that stopped the channel, if one did.
    pub fn denied(&self) -> Option<ChannelError> {
        lock(&self.denied).clone()
    }

    /// Sends `message`, waiting for the rate limit and a free slot, retrying what may be
    /// retried. The error is the last attempt's (or the denial that stopped the channel).
    pub async fn send(&self, message: &Outbound) -> Result<Delivered, ChannelError> {
        self.send_after(message, None).await
    }

    /// As [`Paced::send`], awaiting `leaving` once, after the first attempt's wait for the
    /// pace and a slot and right before the request leaves (see
    /// [`Channel::send_when_leaving`]).
    pub async fn send_after(
        &self,
        message: &Outbound,
        mut leaving: Option<futures::future::BoxFuture<'_, Result<(), String>>>,
    ) -> Result<Delivered, ChannelError> {
        let idempotent = self.channel.traits().idempotent;
        let mut attempt = 0u32;
        loop {
            if let Some(denied) = self.stopped() {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                return Err(denied);
            }
            attempt += 1;
            if attempt > 1 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let result = {
                let _slot = self
                    .slots
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                self.wait_resume().await;
                self.take_rate().await;
                if let Some(denied) = self.stopped() {
                    // Denied while this one waited: it does not go out.
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(denied);
                }
                if let Some(leaving) = leaving.take()
                    && let Err(why) = leaving.await
                {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(ChannelError::new(ChannelErrorKind::Unavailable, why));
                }
                self.channel.send(message).await
            };
            let error = match result {
                Ok(receipt) => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    return Ok(Delivered {
                        receipt,
                        attempts: attempt,
                    });
                }
                Err(e) => e,
            };
            let last = attempt >= self.options.max_attempts;
            let wait = match error.kind {
                ChannelErrorKind::Throttled => {
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    let wait = error.retry_after.unwrap_or_else(|| {
                        equal_jitter(attempt, self.options.backoff_base, self.options.backoff_cap)
                    });
                    let wait = self.scaled(wait);
                    if error.retry_after.is_some() {
                        self.hold_channel(wait);
                    }
                    Some(wait)
                }
                ChannelErrorKind::Unavailable => {
                    Some(self.scaled(error.retry_after.unwrap_or_else(|| {
                        full_jitter(attempt, self.options.backoff_base, self.options.backoff_cap)
                    })))
                }
                ChannelErrorKind::OutcomeUnknown if idempotent => Some(self.scaled(full_jitter(
                    attempt,
                    self.options.backoff_base,
                    self.options.backoff_cap,
                ))),
                ChannelErrorKind::Denied => {
                    lock(&self.denied).get_or_insert_with(|| error.clone());
                    tracing::warn!(
                        message = "A channel's credentials or configuration were refused; \
                                   nothing more is sent on it.",
                        channel = self.channel.name(),
                        error = %error
                    );
                    None
                }
                _ => None,
            };
            match wait {
                Some(wait) if !last => tokio::time::sleep(wait).await,
                _ => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(error);
                }
            }
        }
    }

    /// The denial that stopped the channel, as the error of a message that was not sent.
    fn stopped(&self) -> Option<ChannelError> {
        lock(&self.denied).as_ref().map(|d| ChannelError {
            kind: ChannelErrorKind::Denied,
            status: d.status,
            code: d.code.clone(),
            retry_after: None,
            message: format!("not sent: the channel stopped after a refusal ({d})"),
        })
    }

    fn scaled(&self, wait: Duration) -> Duration {
        wait.div_f64(self.options.time_scale)
    }

    /// No send on the channel starts for `wait`.
    fn hold_channel(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut resume = lock(&self.resume_at);
        if resume.is_none_or(|r| r < until) {
            *resume = Some(until);
        }
    }

    async fn wait_resume(&self) {
        let until = *lock(&self.resume_at);
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    async fn take_rate(&self) {
        loop {
            match self.limiter.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(TokioClock.now());
                    tokio::time::sleep(wait.max(Duration::from_micros(50))).await;
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every channel of a [`ChannelSet`], each paced on its own.
#[derive(Debug, Clone, Default)]
pub struct PacedSet {
    paced: Vec<Arc<Paced>>,
}

impl PacedSet {
    /// Paces each channel of `set` with `options`.
    pub fn new(set: &ChannelSet, options: PaceOptions) -> Self {
        PacedSet {
            paced: set
                .all()
                .iter()
                .map(|c| Arc::new(Paced::new(c.clone(), options)))
                .collect(),
        }
    }

    /// The paced channels serving `kind`, most preferred first.
    pub fn for_kind(&self, kind: Kind) -> Vec<Arc<Paced>> {
        self.paced
            .iter()
            .filter(|p| p.channel().kind() == kind)
            .cloned()
            .collect()
    }

    /// The paced channel named `name`.
    pub fn by_name(&self, name: &str) -> Option<Arc<Paced>> {
        self.paced
            .iter()
            .find(|p| p.channel().name() == name)
            .cloned()
    }

    /// Each channel's counts, in the set's order.
    pub fn stats(&self) -> Vec<PaceStats> {
        self.paced.iter().map(|p| p.stats()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;

    use futures::FutureExt;
    use futures::future::BoxFuture;

    use super::*;
    use crate::comms::{Address, ChannelTraits, Content, Limits};

    /// A channel that answers from a script (then accepts), takes `latency` per send, and
    /// records when each send started and how many were in flight.
    struct Scripted {
        limits: Limits,
        idempotent: bool,
        latency: Duration,
        script: Mutex<VecDeque<ChannelError>>,
        starts: Mutex<Vec<Instant>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
    }

    impl Scripted {
        fn new(per_minute: f64, concurrency: usize, latency: Duration) -> Self {
            Scripted {
                limits: Limits {
                    per_minute,
                    concurrency,
                    recipients_per_request: 1,
                },
                idempotent: false,
                latency,
                script: Mutex::new(VecDeque::new()),
                starts: Mutex::new(Vec::new()),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
            }
        }

        fn then(self, kind: ChannelErrorKind, retry_after: Option<Duration>) -> Self {
            self.script.lock().unwrap().push_back(ChannelError {
                retry_after,
                ..ChannelError::new(kind, "scripted")
            });
            self
        }

        fn sends(&self) -> usize {
            self.starts.lock().unwrap().len()
        }
    }

    impl Channel for Scripted {
        fn name(&self) -> &'static str {
            "test/scripted"
        }
        fn kind(&self) -> Kind {
            Kind::Sms
        }
        fn traits(&self) -> ChannelTraits {
            ChannelTraits {
                in_tenant: false,
                idempotent: self.idempotent,
                carries_secrets: false,
            }
        }
        fn limits(&self) -> Limits {
            self.limits
        }
        fn send<'a>(&'a self, _: &'a Outbound) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
            async move {
                self.starts.lock().unwrap().push(Instant::now());
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(self.latency).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                match self.script.lock().unwrap().pop_front() {
                    Some(e) => Err(e),
                    None => Ok(Receipt {
                        provider_id: Some("id".into()),
                    }),
                }
            }
            .boxed()
        }
    }

    fn message() -> Outbound {
        Outbound {
            key: uuid::Uuid::new_v4(),
            first_sent: jiff::Timestamp::now(),
            to: Address::Phone("+14155550100".into()),
            content: Content::Sms { text: "hi".into() },
            carries_secret: false,
        }
    }

    async fn send_all(paced: &Paced, n: usize) -> Vec<Result<Delivered, ChannelError>> {
        let messages: Vec<Outbound> = (0..n).map(|_| message()).collect();
        futures::future::join_all(messages.iter().map(|m| paced.send(m))).await
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_is_honoured_and_sends_overlap_up_to_the_concurrency() {
        // 120 per minute = one every 500 ms (burst 2); each send takes 3 s, so up to 4 overlap.
        let channel = Arc::new(Scripted::new(120.0, 4, Duration::from_secs(3)));
        let paced = Paced::new(channel.clone(), PaceOptions::default());
        let start = Instant::now();
        let results = send_all(&paced, 12).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(channel.max_in_flight.load(Ordering::SeqCst), 4);
        let starts = channel.starts.lock().unwrap().clone();
        // Over any window, no more than burst + window / period sends began.
        for (i, a) in starts.iter().enumerate() {
            let in_second = starts[i..]
                .iter()
                .filter(|b| b.duration_since(*a) < Duration::from_secs(1))
                .count();
            assert!(in_second <= 3, "{in_second} sends within 1 s of send {i}");
        }
        // 12 sends of 3 s, 4 at a time: at least 9 s, and not one by one (36 s).
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(9) && took < Duration::from_secs(12),
            "{took:?}"
        );
        assert_eq!(paced.stats().sent, 12);
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_scale_multiplies_the_rate() {
        let channel = Arc::new(Scripted::new(6.0, 1, Duration::ZERO));
        let paced = Paced::new(
            channel.clone(),
            PaceOptions {
                time_scale: 10.0,
                ..PaceOptions::default()
            },
        );
        let start = Instant::now();
        send_all(&paced, 4).await;
        // 6 per minute scaled by 10 = one per second: 4 sends take 3 s, not 30.
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_by_the_whole_channel() {
        let channel = Arc::new(
            Scripted::new(6000.0, 4, Duration::ZERO)
                .then(ChannelErrorKind::Throttled, Some(Duration::from_secs(7))),
        );
        let paced = Paced::new(channel.clone(), PaceOptions::default());
        let start = Instant::now();
        let first = paced.send(&message()).await.unwrap();
        assert_eq!(first.attempts, 2);
        let starts = channel.starts.lock().unwrap().clone();
        assert_eq!(starts[1].duration_since(starts[0]), Duration::from_secs(7));
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        let stats = paced.stats();
        assert_eq!((stats.sent, stats.throttled, stats.retries), (1, 1, 1));
        // The time scale divides the wait.
        let channel = Arc::new(
            Scripted::new(6000.0, 4, Duration::ZERO)
                .then(ChannelErrorKind::Throttled, Some(Duration::from_secs(7))),
        );
        let scaled = Paced::new(
            channel,
            PaceOptions {
                time_scale: 7.0,
                ..PaceOptions::default()
            },
        );
        let start = Instant::now();
        scaled.send(&message()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_outcome_is_retried_only_on_an_idempotent_channel() {
        let once = Arc::new(
            Scripted::new(6000.0, 4, Duration::ZERO).then(ChannelErrorKind::OutcomeUnknown, None),
        );
        let paced = Paced::new(once.clone(), PaceOptions::default());
        let err = paced.send(&message()).await.unwrap_err();
        assert_eq!(err.kind, ChannelErrorKind::OutcomeUnknown);
        assert_eq!(once.sends(), 1, "never sent twice");
        assert_eq!(paced.stats().failed, 1);

        let mut idempotent = Scripted::new(6000.0, 4, Duration::ZERO)
            .then(ChannelErrorKind::OutcomeUnknown, None)
            .then(ChannelErrorKind::Unavailable, None);
        idempotent.idempotent = true;
        let idempotent = Arc::new(idempotent);
        let paced = Paced::new(idempotent.clone(), PaceOptions::default());
        let ok = paced.send(&message()).await.unwrap();
        assert_eq!(ok.attempts, 3);
        assert_eq!(idempotent.sends(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn rejected_is_not_retried_and_attempts_are_bounded() {
        let channel = Arc::new(
            Scripted::new(6000.0, 4, Duration::ZERO).then(ChannelErrorKind::Rejected, None),
        );
        let paced = Paced::new(channel.clone(), PaceOptions::default());
        assert_eq!(
            paced.send(&message()).await.unwrap_err().kind,
            ChannelErrorKind::Rejected
        );
        assert_eq!(channel.sends(), 1);
        let mut busy = Scripted::new(6000.0, 4, Duration::ZERO);
        for _ in 0..10 {
            busy = busy.then(ChannelErrorKind::Unavailable, None);
        }
        let busy = Arc::new(busy);
        let paced = Paced::new(
            busy.clone(),
            PaceOptions {
                max_attempts: 3,
                ..PaceOptions::default()
            },
        );
        assert_eq!(
            paced.send(&message()).await.unwrap_err().kind,
            ChannelErrorKind::Unavailable
        );
        assert_eq!(busy.sends(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_denial_stops_the_channel() {
        let channel =
            Arc::new(Scripted::new(60.0, 1, Duration::ZERO).then(ChannelErrorKind::Denied, None));
        let paced = Paced::new(channel.clone(), PaceOptions::default());
        let results = send_all(&paced, 5).await;
        assert!(results.iter().all(|r| {
            r.as_ref()
                .is_err_and(|e| e.kind == ChannelErrorKind::Denied)
        }));
        assert_eq!(
            channel.sends(),
            1,
            "nothing more went out after the refusal"
        );
        assert!(paced.denied().is_some());
        assert_eq!(paced.stats().failed, 5);
        assert!(
            results[1]
                .as_ref()
                .unwrap_err()
                .message
                .contains("stopped after a refusal")
        );
    }
}
