//! What the dashboard and `arbosync status` show: the agent, its employers, their runs, errors
//! and retry queues. Ids, names of employers, counts, timestamps and operator-facing reasons
//! only: never a BSN, salary, employee name, free text or token.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Everything a client needs to draw its screens, sent on `Snapshot` and `Subscribe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub agent: AgentInfo,
    pub employers: Vec<EmployerView>,
    /// Recent errors across employers, newest first.
    pub errors: Vec<ErrorEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// Where the data goes, without credentials (e.g. `sqlite:/var/lib/arbosync/arbodienst.db`
    /// or `postgres://db.example/arbo (schema arbosync)`).
    pub database: String,
    pub config_path: String,
    pub socket_path: String,
    pub state_dir: String,
    /// Bytes on disk of the state store.
    pub state_store_bytes: u64,
    pub update: UpdateInfo,
    /// Agent-level alerts for operators (e.g. "state store was rebuilt", "config reload failed").
    pub alerts: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateInfo {
    pub channel: String,
    /// A pinned version the agent stays on, if configured.
    pub pinned: Option<String>,
    /// A newer verified release waiting to be installed between runs.
    pub pending: Option<String>,
    pub last_check: Option<DateTime<Utc>>,
    /// Why the last check, install or health check failed (e.g. "signature invalid").
    pub last_failure: Option<String>,
}

/// The status badge the overview shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Configured and active, but never run yet.
    New,
    Ok,
    Running,
    Partial,
    Failed,
    NeedsReconnect,
    Paused,
    Inactive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmployerView {
    pub id: Uuid,
    /// The operator's label from the config (an employer's trade name, not a person).
    pub name: String,
    pub connection: String,
    pub health: Health,
    pub active: bool,
    pub paused: bool,
    pub needs_reconnect: bool,
    pub options: OptionsView,
    /// Set while a run is going.
    pub running: Option<RunningView>,
    /// Newest first, a bounded number.
    pub recent_runs: Vec<RunSummary>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_full_reconcile: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub retry_queue: Vec<RetryEntryView>,
    /// Live rows per target table (e.g. `employment` → 40), from the last run.
    pub entity_counts: BTreeMap<String, u64>,
}

impl EmployerView {
    pub fn last_run(&self) -> Option<&RunSummary> {
        self.recent_runs.first()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionsView {
    pub all_employments: bool,
    pub absences: bool,
    pub salary: bool,
    pub bsn: bool,
    pub history_months: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningView {
    pub run_id: Uuid,
    pub full: bool,
    pub started_at: DateTime<Utc>,
    pub progress: Progress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Progress {
    Queued,
    Started,
    Fetching,
    Applying { done: u64, total: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcomeKind {
    Ok,
    Partial,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: Uuid,
    pub full: bool,
    pub outcome: RunOutcomeKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub failed: u64,
    pub requests: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryEntryView {
    pub employer: Uuid,
    pub entity: String,
    pub record_id: String,
    pub reason: String,
    pub attempts: u32,
    pub first_failed: DateTime<Utc>,
    pub last_failed: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEntry {
    pub at: DateTime<Utc>,
    pub employer: Option<Uuid>,
    pub run_id: Option<Uuid>,
    pub message: String,
}
