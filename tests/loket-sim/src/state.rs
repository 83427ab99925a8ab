//! The state shared by all request handlers: settings, dataset, OAuth tokens, injected
//! faults and request statistics, each behind its own mutex (never held across `.await`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::faults::FaultBook;
use crate::oauth::AuthState;
use crate::store::Store;

/// How many recorded `/v2` requests `GET /_sim/requests` keeps.
pub const REQUEST_LOG_CAPACITY: usize = 10_000;

/// Fixed settings taken from [`crate::SimConfig`].
pub struct Settings {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub access_token_ttl_secs: u64,
    pub latency_ms: u64,
    pub max_page_size: usize,
}

pub struct Shared {
    pub settings: Settings,
    pub store: Mutex<Store>,
    pub auth: Mutex<AuthState>,
    pub faults: Mutex<FaultBook>,
    pub stats: Mutex<Stats>,
}

/// Lock a mutex; a poisoned lock (a panicked holder) is still usable for a simulator.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One recorded `/v2` request.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (without `?`), empty if none.
    pub query: String,
    pub accept: Option<String>,
    /// The route template, e.g. `/v2/providers/employers/{employerId}/departments`
    /// (`(unmatched)` for unknown paths).
    pub template: String,
}

/// Request counters as returned by `GET /_sim/stats`.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct StatsSnapshot {
    pub total: u64,
    /// Keyed by `"GET /v2/providers/employers/{employerId}/departments"` etc.
    pub by_template: BTreeMap<String, u64>,
    pub token_requests: u64,
}

#[derive(Default)]
pub struct Stats {
    pub counters: StatsSnapshot,
    pub requests: VecDeque<RecordedRequest>,
}

impl Stats {
    pub fn record(&mut self, r: RecordedRequest) {
        self.counters.total += 1;
        *self
            .counters
            .by_template
            .entry(format!("{} {}", r.method, r.template))
            .or_insert(0) += 1;
        if self.requests.len() >= REQUEST_LOG_CAPACITY {
            self.requests.pop_front();
        }
        self.requests.push_back(r);
    }

    pub fn reset(&mut self) {
        *self = Stats::default();
    }
}
