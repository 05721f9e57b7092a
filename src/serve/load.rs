//! A bounded load generator for the approval server: `clients` concurrent clients work
//! through `total` jobs (a page fetch, a whole verification), and each job's latency is
//! summarised as p50, p99 and max. Bounded twice: never more than `clients` jobs in flight,
//! and a job that outlives `deadline` counts as failed rather than stalling the run.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;

/// What a load run measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Jobs run.
    pub count: usize,
    /// Jobs that failed or ran past the deadline.
    pub failures: usize,
    /// Median latency of the jobs that succeeded.
    pub p50: Duration,
    /// 99th percentile latency (nearest rank) of the jobs that succeeded.
    pub p99: Duration,
    /// Slowest successful job.
    pub max: Duration,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} jobs, {} failed, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {:.1} jobs/s",
            self.count,
            self.failures,
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.count as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Run `job(0..total)` with at most `clients` in flight, each bounded by `deadline`.
pub async fn drive<F, Fut>(clients: usize, total: usize, deadline: Duration, job: F) -> Summary
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    let results: Vec<(Duration, bool)> = futures::stream::iter(0..total)
        .map(|i| {
            let job = job(i);
            async move {
                let t = Instant::now();
                let ok = matches!(tokio::time::timeout(deadline, job).await, Ok(Ok(())));
                (t.elapsed(), ok)
            }
        })
        .buffer_unordered(clients.max(1))
        .collect()
        .await;
    let mut good: Vec<Duration> = results.iter().filter(|r| r.1).map(|r| r.0).collect();
    good.sort();
    Summary {
        count: total,
        failures: total - good.len(),
        p50: percentile(&good, 0.50),
        p99: percentile(&good, 0.99),
        max: good.last().copied().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// The nearest-rank percentile `q` (0..=1) of `sorted`; zero for no samples.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.50), Duration::from_millis(100));
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(198));
        assert_eq!(percentile(&samples[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[tokio::test]
    async fn jobs_are_bounded_and_failures_counted() {
        let in_flight = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let summary = drive(4, 20, Duration::from_millis(200), |i| {
            let (in_flight, peak) = (in_flight.clone(), peak.clone());
            async move {
                use std::sync::atomic::Ordering::SeqCst;
                let now = in_flight.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(if i == 7 { 500 } else { 5 })).await;
                in_flight.fetch_sub(1, SeqCst);
                if i == 3 { Err("no".into()) } else { Ok(()) }
            }
        })
        .await;
        assert_eq!(summary.count, 20);
        assert_eq!(summary.failures, 2, "one error, one past the deadline");
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 4);
        assert!(summary.p50 >= Duration::from_millis(5));
    }
}
