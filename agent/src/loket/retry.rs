//! When and how long to wait before retrying a transient failure: bounded exponential backoff
//! with jitter, and `Retry-After` (seconds or an HTTP date) as a minimum.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// The client's retry behaviour for transient failures (429, 5xx, timeouts, broken connections).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (at least 1).
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles per retry.
    pub base_delay: Duration,
    /// The backoff never exceeds this (before `Retry-After` is applied).
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited out inside the client: the error goes back
    /// to the caller at once (with its `retry_after`) so the scheduler can come back later.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry): an exponential backoff with
    /// "equal jitter" (half fixed, half random), at least `retry_after` when the server sent one.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.max_delay);
        let half = exp / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        let jitter = if jitter_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
        };
        let backoff = half + jitter;
        match retry_after {
            Some(min) => backoff.max(min),
            None => backoff,
        }
    }
}

/// Parses a `Retry-After` value: delta-seconds, or an HTTP date (compared with `now`).
/// A date in the past means "now" (zero). Unparseable values give `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let delta = date.with_timezone(&Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn backoff_grows_is_bounded_and_honours_retry_after() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let d1 = p.delay(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.delay(3, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d20 = p.delay(20, None);
            assert!(d20 <= Duration::from_secs(1));
            assert!(p.delay(1, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        }
        // Enormous retry numbers must not overflow.
        assert!(p.delay(u32::MAX, None) <= Duration::from_secs(1));
    }
}
