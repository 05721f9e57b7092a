//! `TimedStore`: a [`RunStore`] that measures how long its callers wait on the journal (the
//! intent and outcome writes), for benchmarks that report the journal's share of a run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::{
    Approval, Attempt, AttemptEnd, Facts, IntentRecorded, JournalEntry, NewApproval, NewRun,
    Outcome, Remediated, RunId, RunRecord, RunStatus, RunStore, StoreError,
};

/// Time spent in journal calls.
#[derive(Debug, Clone, Copy)]
pub struct Busy {
    /// Journal calls made.
    pub calls: u64,
    /// Time spent waiting on them.
    pub total: Duration,
}

/// A `RunStore` that measures how long the engine waits on the journal.
pub struct TimedStore<S> {
    inner: S,
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl<S> TimedStore<S> {
    /// Wrap `inner`.
    pub fn new(inner: S) -> Self {
        TimedStore {
            inner,
            calls: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        }
    }

    /// What the journal calls cost so far.
    pub fn busy(&self) -> Busy {
        Busy {
            calls: self.calls.load(Ordering::Relaxed),
            total: Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
        }
    }

    async fn timed<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        result
    }
}

impl<S: RunStore> RunStore for TimedStore<S> {
    async fn create_run(&self, run: NewRun) -> Result<(), StoreError> {
        self.inner.create_run(run).await
    }
    async fn run(&self, id: &RunId) -> Result<RunRecord, StoreError> {
        self.inner.run(id).await
    }
    async fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.inner.runs().await
    }
    async fn plan_json(&self, id: &RunId) -> Result<String, StoreError> {
        self.inner.plan_json(id).await
    }
    async fn set_status(
        &self,
        id: &RunId,
        status: RunStatus,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.set_status(id, status, at).await
    }
    async fn approve(&self, id: &RunId, approval: NewApproval) -> Result<Approval, StoreError> {
        self.inner.approve(id, approval).await
    }

    async fn begin_execution(&self, id: &RunId, at: Timestamp) -> Result<(), StoreError> {
        self.inner.begin_execution(id, at).await
    }

    async fn approvals(&self, id: &RunId) -> Result<Vec<Approval>, StoreError> {
        self.inner.approvals(id).await
    }
    async fn set_ticket(&self, id: &RunId, ticket: Option<String>) -> Result<(), StoreError> {
        self.inner.set_ticket(id, ticket).await
    }
    async fn begin_attempt(
        &self,
        id: &RunId,
        at: Timestamp,
        first_seq: Option<u64>,
    ) -> Result<u32, StoreError> {
        self.inner.begin_attempt(id, at, first_seq).await
    }
    async fn end_attempt(&self, id: &RunId, n: u32, end: AttemptEnd) -> Result<(), StoreError> {
        self.inner.end_attempt(id, n, end).await
    }
    async fn attempts(&self, id: &RunId) -> Result<Vec<Attempt>, StoreError> {
        self.inner.attempts(id).await
    }
    async fn record_intent(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        facts: Option<Facts>,
        at: Timestamp,
    ) -> Result<IntentRecorded, StoreError> {
        self.timed(self.inner.record_intent(run, user_id, step, facts, at))
            .await
    }
    async fn record_facts(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        facts: Facts,
    ) -> Result<(), StoreError> {
        self.timed(self.inner.record_facts(run, user_id, step, facts))
            .await
    }
    async fn record_outcome(
        &self,
        run: &RunId,
        user_id: &str,
        step: &str,
        outcome: Outcome,
        detail: Option<String>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.timed(
            self.inner
                .record_outcome(run, user_id, step, outcome, detail, at),
        )
        .await
    }
    async fn journal(&self, run: &RunId) -> Result<Vec<JournalEntry>, StoreError> {
        self.inner.journal(run).await
    }

    async fn remediated_since(
        &self,
        tenant: &str,
        since: Timestamp,
    ) -> Result<Vec<Remediated>, StoreError> {
        self.inner.remediated_since(tenant, since).await
    }

    async fn writes_since(
        &self,
        tenant: &str,
        since: Timestamp,
    ) -> Result<Vec<Timestamp>, StoreError> {
        self.inner.writes_since(tenant, since).await
    }
}
