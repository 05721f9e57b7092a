//! The shared state of a running emulator: the tenant behind a read-write lock (reads are
//! concurrent, writes are short), issued tokens, throttling buckets, the write log, the
//! outbox of every message sink, the sinks' credentials and counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::EmulatorConfig;
use super::faults::Faults;
use super::model::Tenant;
use super::outbox::Outbox;
use super::sinks::SinkCredentials;
use super::sinks::acs::AcsRepeat;
use super::sinks::push::Pushes;
use super::throttle::Throttle;

/// An issued access token.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The app index it was issued to.
    pub app: u32,
    /// When it stops being accepted.
    pub expires: Instant,
}

/// One write attempt, for `/_emulator/writes`.
#[derive(Debug, Clone, Serialize)]
pub struct WriteRecord {
    /// Order of arrival, from 1.
    pub seq: u64,
    /// RFC 3339 time, to the millisecond (a run paced at a few writes a second is read
    /// back from these).
    pub time: String,
    /// Calling app's client id.
    pub client_id: String,
    /// HTTP method.
    pub method: String,
    /// Path under `/v1.0`.
    pub path: String,
    /// Target user id, when the write targets a user.
    pub target: Option<String>,
    /// Status returned (0 when the connection was reset).
    pub status: u16,
    /// Whether the directory changed.
    pub applied: bool,
    /// Injected fault, if any (`503`, `504`, `reset`, `403`).
    pub fault: Option<&'static str>,
    /// Whether it came inside a `$batch`.
    pub batch: bool,
}

/// Request counters (atomics: no lock on the request path).
#[derive(Debug)]
pub struct Counters {
    /// Graph requests (batch items count one each; the envelope too).
    pub requests: AtomicU64,
    /// 429 answers.
    pub throttled: AtomicU64,
    /// Token requests.
    pub token_requests: AtomicU64,
    /// Faults injected.
    pub faults: AtomicU64,
    /// Answers by status code (index = status, 0 = connection reset).
    pub by_status: Vec<AtomicU64>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            by_status: (0..600).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// Everything a handler needs. Its `Debug` shows no tokens, secrets or passes.
pub struct Emu {
    /// The directory.
    pub tenant: RwLock<Tenant>,
    /// `http://host:port`.
    pub base: String,
    /// `{base}/v1.0`.
    pub graph_url: String,
    /// Issued tokens.
    pub tokens: RwLock<HashMap<String, Grant>>,
    /// Throttling buckets.
    pub throttle: Throttle,
    /// Faults and latency.
    pub faults: Faults,
    /// The write log.
    pub writes: Mutex<Vec<WriteRecord>>,
    /// What every message sink received (sendMail, Twilio, ACS, Teams, webhooks).
    pub outbox: Outbox,
    /// The sinks' credentials.
    pub sinks: SinkCredentials,
    /// Pushes in flight at the emulated Duo and Okta.
    pub pushes: Pushes,
    /// The emulated PSAs' tickets.
    pub desk: super::sinks::psa::Desk,
    /// ACS SMS repeatable requests seen so far (by `repeatabilityRequestId`).
    pub acs_repeats: Mutex<HashMap<String, AcsRepeat>>,
    /// Counters.
    pub counters: Counters,
    /// The time scale.
    pub scale: f64,
    /// Token lifetime in real time.
    pub token_lifetime: Duration,
}

impl std::fmt::Debug for Emu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emu")
            .field("graph_url", &self.graph_url)
            .field("scale", &self.scale)
            .finish_non_exhaustive()
    }
}

impl Emu {
    /// State for `tenant` served at `base`.
    pub fn new(tenant: Tenant, config: &EmulatorConfig, base: &str) -> Self {
        let size = tenant.size_class();
        Emu {
            tenant: RwLock::new(tenant),
            base: base.to_string(),
            graph_url: format!("{base}/v1.0"),
            tokens: RwLock::new(HashMap::new()),
            throttle: Throttle::new(
                config.throttle,
                config.time_scale,
                size,
                config.auth_methods_per_10s,
            )
            .with_storm(config.faults.write_storm),
            faults: Faults::new(
                config.faults,
                config.latency_ms,
                config.time_scale,
                config.seed,
            ),
            writes: Mutex::new(Vec::new()),
            outbox: Outbox::default(),
            sinks: SinkCredentials::generate(config.seed),
            pushes: Pushes::default(),
            desk: super::sinks::psa::Desk::default(),
            acs_repeats: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            scale: config.time_scale,
            token_lifetime: Duration::from_secs_f64(3599.0 / config.time_scale),
        }
    }

    /// Read access to the tenant (a poisoned lock is recovered: the data stays consistent
    /// because every write is a few field assignments).
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Tenant> {
        self.tenant.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access to the tenant.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tenant> {
        self.tenant.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Append to the write log.
    pub fn record_write(&self, mut record: WriteRecord) {
        let mut log = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        record.seq = log.len() as u64 + 1;
        log.push(record);
    }

    /// Number of write attempts so far.
    pub fn write_count(&self) -> usize {
        self.writes.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Count an answer.
    pub fn count_status(&self, status: u16) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        if status == 429 {
            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(c) = self.counters.by_status.get(status as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Now in RFC 3339 with milliseconds: when a sink received a message. A tabletop compresses
/// time (at a time scale of 667 a wall-clock second is 11 projected minutes), so its timeline
/// needs more than whole seconds.
pub fn now_rfc3339_ms() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Now in RFC 3339 with whole seconds and `Z` (Graph's DateTimeOffset form).
pub fn now_rfc3339() -> String {
    ms_rfc3339(jiff::Timestamp::now().as_millisecond())
}

/// Unix milliseconds as RFC 3339 with `Z` (Graph's DateTimeOffset form).
pub fn ms_rfc3339(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "1970-01-01T00:00:00Z".to_string(),
    }
}
