//! When an employer runs next: the interval with jitter, backoff after failures, and whether a
//! run must be a full reconciliation. Pure functions of the clock and the config, unit-tested.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The shortest wait after a failed run.
pub const BACKOFF_BASE: Duration = Duration::from_secs(30);

/// Jitter spreads runs of employers that share a connection; ±10% of the interval.
pub fn jittered(interval: Duration, unit: f64) -> Duration {
    let unit = unit.clamp(-1.0, 1.0);
    let secs = interval.as_secs_f64() * (1.0 + 0.1 * unit);
    Duration::from_secs_f64(secs.max(1.0))
}

/// The wait after `failures` consecutive failed runs: 30 s, 60 s, 120 s, … capped at the
/// interval (a failing employer is never retried less often than a healthy one runs).
pub fn backoff(failures: u32, interval: Duration) -> Duration {
    if failures == 0 {
        return interval;
    }
    let exp = failures.saturating_sub(1).min(20);
    let wait = BACKOFF_BASE.saturating_mul(1u32 << exp);
    wait.min(interval.max(BACKOFF_BASE))
}

/// The next scheduled run after a run that ended at `finished` with `failures` consecutive
/// failures so far; `unit` is a random number in [-1, 1].
pub fn next_run(
    finished: DateTime<Utc>,
    interval: Duration,
    failures: u32,
    unit: f64,
) -> DateTime<Utc> {
    let wait = if failures == 0 {
        jittered(interval, unit)
    } else {
        jittered(backoff(failures, interval), unit)
    };
    finished + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(1))
}

/// The first run after start-up: one interval after the last run, or now when never run or
/// overdue. Staggered by up to `stagger` so a restart does not start every employer at once.
pub fn first_run(
    now: DateTime<Utc>,
    last_finished: Option<DateTime<Utc>>,
    interval: Duration,
    stagger: Duration,
) -> DateTime<Utc> {
    let due = last_finished
        .map(|t| t + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::days(1)))
        .unwrap_or(now);
    let due = due.max(now);
    due + chrono::Duration::from_std(stagger).unwrap_or_default()
}

/// Whether a scheduled run must be a full reconciliation.
pub fn full_due(
    now: DateTime<Utc>,
    last_full: Option<DateTime<Utc>>,
    full_interval: Duration,
) -> bool {
    match last_full {
        None => true,
        Some(t) => {
            now.signed_duration_since(t)
                >= chrono::Duration::from_std(full_interval).unwrap_or(chrono::Duration::days(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn backoff_doubles_and_caps_at_the_interval() {
        let hour = Duration::from_secs(3600);
        assert_eq!(backoff(0, hour), hour);
        assert_eq!(backoff(1, hour), Duration::from_secs(30));
        assert_eq!(backoff(2, hour), Duration::from_secs(60));
        assert_eq!(backoff(3, hour), Duration::from_secs(120));
        assert_eq!(backoff(10, hour), hour);
        assert_eq!(backoff(u32::MAX, hour), hour);
        // A very short interval never makes the backoff shorter than the base.
        assert_eq!(backoff(5, Duration::from_secs(2)), BACKOFF_BASE);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let i = Duration::from_secs(1000);
        assert_eq!(jittered(i, 0.0), i);
        assert_eq!(jittered(i, 1.0), Duration::from_secs(1100));
        assert_eq!(jittered(i, -1.0), Duration::from_secs(900));
        assert_eq!(jittered(i, 7.0), Duration::from_secs(1100));
    }

    #[test]
    fn next_run_uses_the_interval_when_healthy_and_backoff_when_failing() {
        let now = t("2026-12-04T10:00:00Z");
        let hour = Duration::from_secs(3600);
        assert_eq!(next_run(now, hour, 0, 0.0), t("2026-12-04T11:00:00Z"));
        assert_eq!(next_run(now, hour, 1, 0.0), t("2026-12-04T10:00:30Z"));
    }

    #[test]
    fn first_run_is_now_when_never_run_or_overdue() {
        let now = t("2026-12-04T10:00:00Z");
        let hour = Duration::from_secs(3600);
        assert_eq!(first_run(now, None, hour, Duration::ZERO), now);
        assert_eq!(
            first_run(now, Some(t("2026-12-04T08:00:00Z")), hour, Duration::ZERO),
            now
        );
        assert_eq!(
            first_run(now, Some(t("2026-12-04T09:30:00Z")), hour, Duration::ZERO),
            t("2026-12-04T10:30:00Z")
        );
        assert_eq!(
            first_run(now, None, hour, Duration::from_secs(5)),
            t("2026-12-04T10:00:05Z")
        );
    }

    #[test]
    fn full_reconciliation_is_due_when_never_done_or_old() {
        let now = t("2026-12-04T10:00:00Z");
        let day = Duration::from_secs(86_400);
        assert!(full_due(now, None, day));
        assert!(full_due(now, Some(t("2026-12-03T10:00:00Z")), day));
        assert!(!full_due(now, Some(t("2026-12-03T10:00:01Z")), day));
    }
}
