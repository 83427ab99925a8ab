//! The values kept in the state store: cursors, retry entries, run records, employer status.
//!
//! These are plain data types; how they are encoded on disk is `codec`'s business. None of them
//! holds personal data: only ids, counters, timestamps and operator-facing reasons.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How far an employer has been synced. A missing cursor means "fetch everything".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The employer's `lastModifiedVersionNumber` covered by committed data.
    pub employer_version: i64,
    /// The highest employment `lastModifiedVersionNumber` covered by committed data.
    pub employment_versions_max: i64,
    pub last_full_reconcile: Option<DateTime<Utc>>,
    pub last_incremental: Option<DateTime<Utc>>,
    /// Set when the next run must be a full reconciliation (e.g. after an option change).
    pub needs_full: bool,
}

/// The fingerprint of the options an employer was last synced with (`options` tree). Opaque: a
/// hash, never the options' values themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OptionsEntry {
    pub fingerprint: String,
}

/// Identifies one record in the retry queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RetryKey {
    pub employer_id: Uuid,
    /// The kind of record, e.g. `employment`, `employee`, `absence`. Not empty, no NUL byte.
    pub entity: String,
    /// The record's Loket id. Not empty, no NUL byte.
    pub record_id: String,
}

impl RetryKey {
    pub fn new(employer_id: Uuid, entity: impl Into<String>, record_id: impl Into<String>) -> Self {
        RetryKey {
            employer_id,
            entity: entity.into(),
            record_id: record_id.into(),
        }
    }
}

/// A record that failed permanently in a run and is retried on later runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryEntry {
    pub employer_id: Uuid,
    pub entity: String,
    pub record_id: String,
    /// Why it failed, for operators. Must never contain personal data (no names, BSNs, salaries,
    /// free text): describe the problem, not the values. Truncated to [`MAX_REASON_CHARS`].
    pub reason: String,
    /// Failed attempts since it was queued or last requeued by an operator.
    pub attempts: u32,
    pub first_failed: DateTime<Utc>,
    pub last_failed: DateTime<Utc>,
}

impl RetryEntry {
    pub fn key(&self) -> RetryKey {
        RetryKey::new(
            self.employer_id,
            self.entity.clone(),
            self.record_id.clone(),
        )
    }
}

/// Longest kept retry reason or run error, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Whether a run fetched everything or only what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Incremental,
    Full,
}

/// How a run ended (or that it is still going).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Everything applied.
    Ok,
    /// Finished, but some records went to the retry queue.
    Partial,
    Failed,
    Cancelled,
}

/// One sync run of one employer, for the run history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: Uuid,
    pub employer_id: Uuid,
    pub kind: RunKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub failed: u64,
    /// HTTP requests made to Loket.
    pub requests: u64,
    /// Operator-facing error, never personal data. Truncated to [`MAX_REASON_CHARS`].
    pub error: Option<String>,
}

/// The persistent per-employer status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmployerStatus {
    /// Paused by an operator: no scheduled runs.
    pub paused: bool,
    /// Its connection's refresh token was rejected: a new consent is needed.
    pub needs_reconnect: bool,
    /// The last error, never personal data.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// Cuts `text` to at most [`MAX_REASON_CHARS`] characters.
pub(crate) fn truncate_reason(text: &str) -> String {
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
