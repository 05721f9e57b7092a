//! Retry timing: `Retry-After` parsing (decimal seconds or HTTP-date) and exponential
//! back-off with jitter.

use std::time::Duration;

use rand::Rng;

/// Parses a `Retry-After` value: decimal seconds (Graph sends e.g. `2.128`) or an HTTP-date
/// (RFC 9110 §10.2.3). A date in the past yields zero. `None` when unparseable.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let delta = when.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(delta.clamp(0, 86_400_000) as u64))
}

/// Full jitter (AWS architecture blog "Exponential Backoff And Jitter"): a uniform random
/// delay in `[0, min(cap, base * 2^attempt)]`. Used for transient 5xx and connection errors.
pub fn full_jitter(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = exp(attempt, base, cap);
    let nanos = ceiling.as_nanos().min(u128::from(u64::MAX)) as u64;
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// "Equal jitter": half the exponential delay fixed, half random. Used when a 429 carries no
/// Retry-After, where waiting at least something is required.
pub fn equal_jitter(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = exp(attempt, base, cap);
    let half = ceiling / 2;
    let nanos = half.as_nanos().min(u128::from(u64::MAX)) as u64;
    half + Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

fn exp(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(30));
    base.saturating_mul(factor).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now: jiff::Timestamp = "2015-10-21T07:28:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("2.128", now),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:03 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn jitter_bounds() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for attempt in 0..10 {
            let d = full_jitter(attempt, base, cap);
            assert!(d <= cap && d <= base * 2u32.pow(attempt));
            let e = equal_jitter(attempt, base, cap);
            assert!(e >= (base * 2u32.pow(attempt)).min(cap) / 2 && e <= cap);
        }
    }
}
