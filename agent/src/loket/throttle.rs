//! Per-connection request pacing: a rate limit (requests per second, evenly spaced) and a cap on
//! requests in flight. Built on `tokio::time`, so tests with paused time see exact waits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::LoketError;

/// Spaces requests at least `1 / requests_per_second` apart and limits how many are in flight.
#[derive(Debug)]
pub(crate) struct Throttle {
    interval: Option<Duration>,
    next_slot: Mutex<Option<Instant>>,
    in_flight: Arc<Semaphore>,
}

/// Held while a request is in flight.
pub(crate) struct InFlight {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Throttle {
    /// `requests_per_second` must be positive (`f64::INFINITY` means unlimited);
    /// `max_parallel` must be at least 1.
    pub(crate) fn new(requests_per_second: f64, max_parallel: usize) -> Result<Self, LoketError> {
        if requests_per_second.is_nan() || requests_per_second <= 0.0 {
            return Err(LoketError::Config(
                "requests_per_second must be greater than zero".into(),
            ));
        }
        if max_parallel == 0 || max_parallel > Semaphore::MAX_PERMITS {
            return Err(LoketError::Config(
                "max_parallel_requests must be at least 1".into(),
            ));
        }
        let interval = if requests_per_second.is_infinite() {
            None
        } else {
            Some(
                Duration::try_from_secs_f64(1.0 / requests_per_second).map_err(|_| {
                    LoketError::Config("requests_per_second is out of range".into())
                })?,
            )
        };
        Ok(Throttle {
            interval,
            next_slot: Mutex::new(None),
            in_flight: Arc::new(Semaphore::new(max_parallel)),
        })
    }

    /// Waits for a free slot in the rate limit and then for a free in-flight permit.
    pub(crate) async fn acquire(&self) -> InFlight {
        if let Some(wait_until) = self.reserve_slot() {
            tokio::time::sleep_until(wait_until).await;
        }
        // The semaphore is owned by this struct and never closed, so acquiring cannot fail; if it
        // ever did, going ahead without a permit is the harmless fallback.
        let permit = self.in_flight.clone().acquire_owned().await.ok();
        InFlight { _permit: permit }
    }

    /// Reserves the next slot and returns when it starts (None: now).
    fn reserve_slot(&self) -> Option<Instant> {
        let interval = self.interval?;
        let now = Instant::now();
        // A poisoned lock only means another task panicked while holding it; the slot value
        // inside is still a valid instant.
        let mut next = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match *next {
            Some(t) if t > now => t,
            _ => now,
        };
        *next = Some(slot + interval);
        (slot > now).then_some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_settings() {
        assert!(Throttle::new(0.0, 1).is_err());
        assert!(Throttle::new(-1.0, 1).is_err());
        assert!(Throttle::new(f64::NAN, 1).is_err());
        assert!(Throttle::new(1.0, 0).is_err());
        assert!(Throttle::new(f64::INFINITY, 4).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_evenly() {
        let t = Throttle::new(4.0, 8).unwrap();
        let start = Instant::now();
        for _ in 0..5 {
            let _p = t.acquire().await;
        }
        // Five requests at 4/s: the fifth starts 4 × 250 ms after the first.
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn caps_requests_in_flight() {
        let t = Arc::new(Throttle::new(f64::INFINITY, 2).unwrap());
        let a = t.acquire().await;
        let _b = t.acquire().await;
        let t2 = t.clone();
        let third = tokio::spawn(async move {
            let _c = t2.acquire().await;
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!third.is_finished());
        drop(a);
        tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("third request gets a permit once one is released")
            .unwrap();
    }
}
