//! The service's shared picture: the configuration in force, each employer's schedule and
//! current run, recent errors, and the event stream the control socket forwards. The scheduler
//! and the socket both work through it; it converts the agent's internal types into the wire
//! types of `arbosync-shared`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arbosync_shared as wire;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, broadcast};
use tracing::warn;
use uuid::Uuid;

use crate::cli::Stores;
use crate::config::{Config, DatabaseBackend, EmployerConfig};
use crate::loket::LoketClient;
use crate::state::{RetryEntry, RetryKey, RunRecord, RunStatus};
use crate::sync::run::{RunOutcome, RunPhase, RunProgress};

use super::schedule;

/// Errors kept for the dashboard's error list.
const ERROR_HISTORY: usize = 200;
/// Runs per employer in a snapshot.
const RUN_HISTORY: usize = 20;
/// Pushed events a slow client may fall behind by before it gets a resync.
const EVENT_CAPACITY: usize = 1024;

/// One employer's schedule and current run (not persisted: rebuilt from the state store).
#[derive(Debug, Clone)]
struct Slot {
    next_run_at: DateTime<Utc>,
    running: Option<wire::RunningView>,
    /// Consecutive failed runs, for the backoff.
    failures: u32,
    /// An operator asked for a run; `Some(full)`.
    manual: Option<bool>,
    /// When `needs_reconnect` was seen: the token file's modification time then, so a new
    /// consent (which rewrites the file) lets the schedule resume.
    reconnect_token_mtime: Option<Option<SystemTime>>,
    /// Name and live rows from the database, refreshed after each run.
    overview: crate::sink::EmployerOverview,
}

/// A run the scheduler should start now.
#[derive(Debug, Clone)]
pub struct Start {
    pub employer: EmployerConfig,
    pub full: bool,
    pub manual: bool,
    pub client: LoketClient,
}

/// Static facts about the running agent.
#[derive(Debug, Clone)]
pub struct AgentFacts {
    pub config_path: PathBuf,
    pub started_at: DateTime<Utc>,
}

struct Inner {
    config: Arc<Config>,
    slots: HashMap<Uuid, Slot>,
    errors: VecDeque<wire::ErrorEntry>,
    alerts: Vec<String>,
    clients: HashMap<String, LoketClient>,
    update: wire::UpdateInfo,
    shutting_down: bool,
}

pub struct Hub {
    inner: Mutex<Inner>,
    events: broadcast::Sender<wire::Event>,
    /// Wakes the scheduler (manual trigger, resume, reload, a run ended).
    pub wake: Notify,
    pub stores: Stores,
    facts: AgentFacts,
}

impl Hub {
    pub fn new(config: Arc<Config>, stores: Stores, facts: AgentFacts) -> Arc<Hub> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let update = wire::UpdateInfo {
            channel: config.update.channel.as_str().to_string(),
            pinned: match &config.update.channel {
                crate::config::UpdateChannel::Pinned(v) => Some(v.clone()),
                _ => None,
            },
            ..Default::default()
        };
        let hub = Arc::new(Hub {
            inner: Mutex::new(Inner {
                config: Arc::clone(&config),
                slots: HashMap::new(),
                errors: VecDeque::new(),
                alerts: Vec::new(),
                clients: HashMap::new(),
                update,
                shutting_down: false,
            }),
            events,
            wake: Notify::new(),
            stores,
            facts,
        });
        let now = Utc::now();
        {
            let mut inner = hub.lock();
            for (i, e) in config.employers.iter().enumerate() {
                let slot = hub.new_slot(&config, e, now, i);
                inner.slots.insert(e.id, slot);
            }
            inner.errors = hub.errors_of_earlier_runs(&config);
        }
        hub
    }

    /// The errors of earlier runs, newest first, from the run history in the state store: what
    /// went wrong before a restart stays visible after it.
    fn errors_of_earlier_runs(&self, config: &Config) -> VecDeque<wire::ErrorEntry> {
        let mut errors: Vec<wire::ErrorEntry> = config
            .employers
            .iter()
            .flat_map(|e| {
                self.stores
                    .state
                    .runs(e.id, ERROR_HISTORY)
                    .unwrap_or_default()
            })
            .filter_map(|r| {
                r.error.map(|message| wire::ErrorEntry {
                    at: r.finished_at.unwrap_or(r.started_at),
                    employer: Some(r.employer_id),
                    run_id: Some(r.run_id),
                    message,
                })
            })
            .collect();
        errors.sort_by_key(|e| std::cmp::Reverse(e.at));
        errors.truncate(ERROR_HISTORY);
        errors.into()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a panic elsewhere while holding it; the data is plain values
        // that stay consistent field by field, so carrying on is better than taking the
        // service down.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_slot(
        &self,
        config: &Config,
        e: &EmployerConfig,
        now: DateTime<Utc>,
        index: usize,
    ) -> Slot {
        // A run that did not complete (abandoned at shutdown, failed) is due again at once.
        let last = self
            .stores
            .state
            .last_run(e.id)
            .ok()
            .flatten()
            .filter(|r| matches!(r.status, RunStatus::Ok | RunStatus::Partial))
            .and_then(|r| r.finished_at);
        // Stagger start-up by a second per employer so a restart does not start them all at once.
        let stagger = Duration::from_secs((index as u64).min(60));
        Slot {
            next_run_at: schedule::first_run(now, last, config.agent.interval, stagger),
            running: None,
            failures: 0,
            manual: None,
            reconnect_token_mtime: None,
            overview: Default::default(),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.lock().config)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<wire::Event> {
        self.events.subscribe()
    }

    fn emit(&self, event: wire::Event) {
        // No subscribers is fine.
        let _ = self.events.send(event);
    }

    pub fn add_alert(&self, alert: String) {
        let agent = {
            let mut inner = self.lock();
            inner.alerts.push(alert);
            self.agent_info(&inner)
        };
        self.emit(wire::Event::AgentChanged {
            agent: Box::new(agent),
        });
    }

    pub fn record_error(&self, employer: Option<Uuid>, run_id: Option<Uuid>, message: String) {
        let entry = wire::ErrorEntry {
            at: Utc::now(),
            employer,
            run_id,
            message,
        };
        {
            let mut inner = self.lock();
            inner.errors.push_front(entry.clone());
            inner.errors.truncate(ERROR_HISTORY);
        }
        self.emit(wire::Event::ErrorRecorded { error: entry });
    }

    pub fn set_update_info(&self, update: wire::UpdateInfo) {
        let agent = {
            let mut inner = self.lock();
            inner.update = update;
            self.agent_info(&inner)
        };
        self.emit(wire::Event::AgentChanged {
            agent: Box::new(agent),
        });
    }

    pub fn update_info(&self) -> wire::UpdateInfo {
        self.lock().update.clone()
    }

    /// Stop handing out runs; returns the number still running.
    pub fn begin_shutdown(&self) -> usize {
        let mut inner = self.lock();
        inner.shutting_down = true;
        inner.slots.values().filter(|s| s.running.is_some()).count()
    }

    pub fn running_count(&self) -> usize {
        self.lock()
            .slots
            .values()
            .filter(|s| s.running.is_some())
            .count()
    }

    /// Replaces the configuration (SIGHUP). Added employers are scheduled now, removed ones
    /// dropped, employers with changed options or connection are run now so an option switched
    /// off is purged promptly. Clients of changed connections are rebuilt.
    pub fn reload(&self, config: Arc<Config>) -> ReloadReport {
        let now = Utc::now();
        let mut report = ReloadReport::default();
        let mut changed_views = Vec::new();
        {
            let mut inner = self.lock();
            let old = Arc::clone(&inner.config);
            for conn in &config.connections {
                if !old
                    .connection(&conn.name)
                    .is_some_and(|o| same_connection(o, conn))
                {
                    inner.clients.remove(&conn.name);
                }
            }
            inner
                .clients
                .retain(|name, _| config.connection(name).is_some());
            for e in &old.employers {
                if config.employer(e.id).is_none() {
                    inner.slots.remove(&e.id);
                    report.removed.push(e.id);
                }
            }
            for (i, e) in config.employers.iter().enumerate() {
                match old.employer(e.id) {
                    None => {
                        let mut slot = self.new_slot(&config, e, now, i);
                        slot.next_run_at = now;
                        inner.slots.insert(e.id, slot);
                        report.added.push(e.id);
                        changed_views.push(e.id);
                    }
                    Some(prev) if prev != e => {
                        if let Some(slot) = inner.slots.get_mut(&e.id) {
                            slot.next_run_at = now;
                            slot.failures = 0;
                        }
                        report.changed.push(e.id);
                        changed_views.push(e.id);
                    }
                    Some(_) => {}
                }
            }
            inner.config = config;
        }
        for id in &report.removed {
            self.emit(wire::Event::EmployerRemoved { employer: *id });
        }
        for id in changed_views {
            self.emit_employer(id);
        }
        self.wake.notify_one();
        report
    }

    /// The runs to start now, marked as running. At most `max_concurrent_employers` run at once;
    /// operator requests go first, then due schedules in due order.
    pub fn take_due(&self, now: DateTime<Utc>) -> (Vec<Start>, Option<DateTime<Utc>>) {
        let mut starts = Vec::new();
        let mut next_wake: Option<DateTime<Utc>> = None;
        let mut changed = Vec::new();
        {
            let mut inner = self.lock();
            if inner.shutting_down {
                return (starts, None);
            }
            let config = Arc::clone(&inner.config);
            let running = inner.slots.values().filter(|s| s.running.is_some()).count();
            let mut free = config
                .agent
                .max_concurrent_employers
                .max(1)
                .saturating_sub(running);

            // (priority, due time, employer): manual first.
            let mut candidates: Vec<(u8, DateTime<Utc>, Uuid)> = Vec::new();
            for e in &config.employers {
                let Some(slot) = inner.slots.get(&e.id) else {
                    continue;
                };
                if slot.running.is_some() {
                    continue;
                }
                let next_run_at = slot.next_run_at;
                if slot.manual.is_some() {
                    candidates.push((0, next_run_at, e.id));
                    continue;
                }
                if !e.active {
                    continue;
                }
                let status = self.stores.state.status(e.id).unwrap_or_default();
                if status.paused {
                    continue;
                }
                if status.needs_reconnect && !self.reconnected(&mut inner, e) {
                    continue;
                }
                if next_run_at <= now {
                    candidates.push((1, next_run_at, e.id));
                } else {
                    next_wake = Some(next_wake.map_or(next_run_at, |w| w.min(next_run_at)));
                }
            }
            candidates.sort();
            for (_, _, id) in candidates {
                if free == 0 {
                    break;
                }
                let Some(employer) = config.employer(id).cloned() else {
                    continue;
                };
                let client = match self.client_for(&mut inner, &config, &employer.connection) {
                    Ok(c) => c,
                    Err(message) => {
                        if let Some(slot) = inner.slots.get_mut(&id) {
                            slot.manual = None;
                            slot.failures = slot.failures.saturating_add(1);
                            slot.next_run_at = schedule::next_run(
                                now,
                                config.agent.interval,
                                slot.failures,
                                rand::random_range(-1.0..=1.0),
                            );
                        }
                        drop(inner);
                        self.record_error(Some(id), None, message);
                        inner = self.lock();
                        continue;
                    }
                };
                let Some(slot) = inner.slots.get_mut(&id) else {
                    continue;
                };
                let manual = slot.manual.take();
                let last_full = self
                    .stores
                    .state
                    .cursor(id)
                    .ok()
                    .flatten()
                    .and_then(|c| c.last_full_reconcile);
                let full = manual.unwrap_or(false)
                    || schedule::full_due(now, last_full, config.agent.full_reconcile_interval);
                slot.running = Some(wire::RunningView {
                    run_id: Uuid::nil(),
                    full,
                    started_at: now,
                    progress: wire::Progress::Queued,
                });
                starts.push(Start {
                    employer,
                    full,
                    manual: manual.is_some(),
                    client,
                });
                changed.push(id);
                free -= 1;
            }
        }
        for id in changed {
            self.emit_employer(id);
        }
        (starts, next_wake)
    }

    /// Whether an employer flagged `needs_reconnect` got a new consent since (its token file
    /// was rewritten); if so the flag is cleared and the cached client dropped.
    fn reconnected(&self, inner: &mut Inner, e: &EmployerConfig) -> bool {
        let mtime = self
            .stores
            .secrets
            .token_path(&e.connection)
            .ok()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok());
        let Some(slot) = inner.slots.get_mut(&e.id) else {
            return false;
        };
        match slot.reconnect_token_mtime {
            None => {
                // Flagged before this process started: remember the token as it is now.
                slot.reconnect_token_mtime = Some(mtime);
                false
            }
            Some(seen) if seen == mtime => false,
            Some(_) => {
                slot.reconnect_token_mtime = None;
                slot.failures = 0;
                inner.clients.remove(&e.connection);
                if let Err(err) = self.stores.state.set_needs_reconnect(e.id, false) {
                    warn!(employer = %e.id, error = %err, "could not clear needs_reconnect");
                }
                true
            }
        }
    }

    fn client_for(
        &self,
        inner: &mut Inner,
        config: &Config,
        connection: &str,
    ) -> Result<LoketClient, String> {
        if let Some(c) = inner.clients.get(connection) {
            return Ok(c.clone());
        }
        let conn = config
            .connection(connection)
            .ok_or_else(|| format!("connection `{connection}` is not configured"))?;
        let client = crate::sync::connection::client(conn, Arc::clone(&self.stores.secrets))
            .map_err(|e| format!("connection `{connection}` cannot be used: {e}"))?;
        inner.clients.insert(connection.to_string(), client.clone());
        Ok(client)
    }

    /// Reads the employer's name and live row counts from the database (after a run, and at
    /// start-up). A failure only leaves the previous figures.
    pub async fn refresh_overview(&self, employer: Uuid) {
        match self
            .stores
            .sink
            .employer_overview(&employer.to_string())
            .await
        {
            Ok(overview) => {
                if let Some(slot) = self.lock().slots.get_mut(&employer) {
                    slot.overview = overview;
                }
            }
            Err(e) => {
                tracing::debug!(%employer, error = %e, "could not read the employer overview")
            }
        }
    }

    /// Every configured employer, for start-up refreshes.
    pub fn employer_ids(&self) -> Vec<Uuid> {
        self.lock().config.employers.iter().map(|e| e.id).collect()
    }

    /// The run going on for `employer`, if any.
    pub fn running_view(&self, employer: Uuid) -> Option<wire::RunningView> {
        self.lock().slots.get(&employer)?.running.clone()
    }

    /// A run reported progress.
    pub fn on_progress(&self, p: RunProgress) {
        let progress = match p.phase {
            RunPhase::Started => wire::Progress::Started,
            RunPhase::Fetching => wire::Progress::Fetching,
            RunPhase::Applying { done, total } => wire::Progress::Applying { done, total },
        };
        let started = {
            let mut inner = self.lock();
            let Some(running) = inner
                .slots
                .get_mut(&p.employer_id)
                .and_then(|s| s.running.as_mut())
            else {
                return;
            };
            running.run_id = p.run_id;
            running.progress = progress;
            (p.phase == RunPhase::Started).then_some((running.full, running.started_at))
        };
        if let Some((full, at)) = started {
            self.emit(wire::Event::RunStarted {
                employer: p.employer_id,
                run_id: p.run_id,
                full,
                at,
            });
        } else {
            self.emit(wire::Event::RunProgress {
                employer: p.employer_id,
                run_id: p.run_id,
                progress,
            });
        }
    }

    /// A run ended (or was abandoned at shutdown: `outcome` is `None`).
    pub fn on_finished(&self, employer: Uuid, outcome: Option<&RunOutcome>) {
        let now = Utc::now();
        let mut reconnect_connection = None;
        {
            let mut inner = self.lock();
            let config = Arc::clone(&inner.config);
            let Some(slot) = inner.slots.get_mut(&employer) else {
                return;
            };
            slot.running = None;
            if let Some(o) = outcome {
                if o.status == RunStatus::Failed {
                    slot.failures = slot.failures.saturating_add(1);
                } else {
                    slot.failures = 0;
                }
                slot.next_run_at = schedule::next_run(
                    now,
                    config.agent.interval,
                    slot.failures,
                    rand::random_range(-1.0..=1.0),
                );
                if o.needs_reconnect {
                    reconnect_connection = config.employer(employer).map(|e| e.connection.clone());
                }
            }
            if let Some(conn) = &reconnect_connection {
                // The refresh token is dead for the whole connection: stop every employer on it
                // until a new consent, and forget the client holding the dead token.
                inner.clients.remove(conn);
                let mtime = self
                    .stores
                    .secrets
                    .token_path(conn)
                    .ok()
                    .and_then(|p| std::fs::metadata(p).ok())
                    .and_then(|m| m.modified().ok());
                for e in config.employers.iter().filter(|e| &e.connection == conn) {
                    if let Some(s) = inner.slots.get_mut(&e.id) {
                        s.reconnect_token_mtime = Some(mtime);
                    }
                    if let Err(err) = self.stores.state.set_needs_reconnect(e.id, true) {
                        warn!(employer = %e.id, error = %err, "could not record needs_reconnect");
                    }
                }
            }
        }
        if let Some(o) = outcome {
            let run = self
                .stores
                .state
                .runs(employer, 1)
                .ok()
                .and_then(|mut r| r.pop())
                .filter(|r| r.run_id == o.run_id)
                .map(|r| run_summary(&r, Some(o.duration_ms)))
                .unwrap_or_else(|| outcome_summary(o, now));
            self.emit(wire::Event::RunFinished { employer, run });
            if let Some(err) = &o.error {
                self.record_error(Some(employer), Some(o.run_id), err.clone());
            }
        }
        self.emit_employer(employer);
        if let Some(conn) = reconnect_connection {
            let cfg = self.config();
            for e in cfg
                .employers
                .iter()
                .filter(|e| e.connection == conn && e.id != employer)
            {
                self.emit_employer(e.id);
            }
        }
        self.wake.notify_one();
    }

    fn emit_employer(&self, id: Uuid) {
        if let Some(view) = self.employer_view(id) {
            self.emit(wire::Event::EmployerChanged {
                employer: Box::new(view),
            });
        }
    }

    // ----- requests from the control socket -----

    pub async fn handle(&self, request: wire::Request) -> Result<wire::Reply, wire::RequestError> {
        use wire::{Reply, Request, RequestError};
        match request {
            Request::Snapshot | Request::Subscribe => Ok(Reply::Snapshot {
                snapshot: Box::new(self.snapshot()),
            }),
            Request::Errors { employer } => {
                let errors = self
                    .lock()
                    .errors
                    .iter()
                    .filter(|e| employer.is_none() || e.employer == employer)
                    .cloned()
                    .collect();
                let entries = match employer {
                    Some(id) => self.stores.state.retry_entries(id),
                    None => self.stores.state.all_retry_entries(),
                }
                .map_err(internal)?;
                Ok(Reply::Errors {
                    errors,
                    retry_queue: entries.iter().map(retry_view).collect(),
                })
            }
            Request::SyncNow { employer, full } => {
                let queued = self.queue_manual(employer, full)?;
                self.wake.notify_one();
                for id in &queued {
                    self.emit_employer(*id);
                }
                Ok(Reply::SyncQueued { employers: queued })
            }
            Request::Pause { employer } => self.set_paused(employer, true),
            Request::Resume { employer } => self.set_paused(employer, false),
            Request::Requeue {
                employer,
                entity,
                record_id,
            } => {
                self.known(employer)?;
                let key = RetryKey::new(employer, entity, record_id);
                if !self.stores.state.requeue_retry(&key).map_err(internal)? {
                    return Err(RequestError::UnknownRetryEntry);
                }
                self.view_reply(employer)
            }
        }
    }

    fn known(&self, employer: Uuid) -> Result<EmployerConfig, wire::RequestError> {
        self.lock()
            .config
            .employer(employer)
            .cloned()
            .ok_or(wire::RequestError::UnknownEmployer { employer })
    }

    fn queue_manual(
        &self,
        employer: Option<Uuid>,
        full: bool,
    ) -> Result<Vec<Uuid>, wire::RequestError> {
        let mut inner = self.lock();
        if inner.shutting_down {
            return Err(wire::RequestError::ShuttingDown);
        }
        let config = Arc::clone(&inner.config);
        let ids: Vec<Uuid> = match employer {
            Some(id) => {
                let e = config
                    .employer(id)
                    .ok_or(wire::RequestError::UnknownEmployer { employer: id })?;
                if !e.active {
                    return Err(wire::RequestError::Inactive { employer: id });
                }
                vec![id]
            }
            None => config
                .employers
                .iter()
                .filter(|e| e.active)
                .filter(|e| {
                    let s = self.stores.state.status(e.id).unwrap_or_default();
                    !s.paused && !s.needs_reconnect
                })
                .map(|e| e.id)
                .collect(),
        };
        for id in &ids {
            if let Some(slot) = inner.slots.get_mut(id) {
                slot.manual = Some(slot.manual.unwrap_or(false) || full);
            }
        }
        Ok(ids)
    }

    fn set_paused(&self, employer: Uuid, paused: bool) -> Result<wire::Reply, wire::RequestError> {
        self.known(employer)?;
        self.stores
            .state
            .set_paused(employer, paused)
            .map_err(internal)?;
        if !paused {
            let mut inner = self.lock();
            if let Some(slot) = inner.slots.get_mut(&employer) {
                slot.next_run_at = slot.next_run_at.min(Utc::now());
            }
        }
        self.wake.notify_one();
        let reply = self.view_reply(employer)?;
        self.emit_employer(employer);
        Ok(reply)
    }

    fn view_reply(&self, employer: Uuid) -> Result<wire::Reply, wire::RequestError> {
        self.employer_view(employer)
            .map(|v| wire::Reply::Employer {
                employer: Box::new(v),
            })
            .ok_or(wire::RequestError::UnknownEmployer { employer })
    }

    // ----- views -----

    pub fn snapshot(&self) -> wire::Snapshot {
        let (ids, errors, agent) = {
            let inner = self.lock();
            (
                inner
                    .config
                    .employers
                    .iter()
                    .map(|e| e.id)
                    .collect::<Vec<_>>(),
                inner.errors.iter().cloned().collect(),
                self.agent_info(&inner),
            )
        };
        wire::Snapshot {
            agent,
            employers: ids
                .into_iter()
                .filter_map(|id| self.employer_view(id))
                .collect(),
            errors,
        }
    }

    fn agent_info(&self, inner: &Inner) -> wire::AgentInfo {
        let cfg = &inner.config;
        let database = match &cfg.database.backend {
            DatabaseBackend::Sqlite { path } => format!("sqlite:{}", path.display()),
            DatabaseBackend::Postgres => format!(
                "{} (schema {})",
                postgres_target(&cfg.database.url),
                cfg.database.schema
            ),
        };
        wire::AgentInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.facts.started_at,
            database,
            config_path: self.facts.config_path.display().to_string(),
            socket_path: cfg.agent.socket.display().to_string(),
            state_dir: cfg.agent.state_dir.display().to_string(),
            state_store_bytes: dir_size(self.stores.state.path()),
            update: inner.update.clone(),
            alerts: inner.alerts.clone(),
        }
    }

    pub fn employer_view(&self, id: Uuid) -> Option<wire::EmployerView> {
        let (e, slot) = {
            let inner = self.lock();
            let e = inner.config.employer(id)?.clone();
            (e, inner.slots.get(&id).cloned())
        };
        let state = &self.stores.state;
        let status = state.status(id).unwrap_or_default();
        let runs: Vec<wire::RunSummary> = state
            .runs(id, RUN_HISTORY)
            .unwrap_or_default()
            .iter()
            .map(|r| run_summary(r, None))
            .collect();
        let retry: Vec<wire::RetryEntryView> = state
            .retry_entries(id)
            .unwrap_or_default()
            .iter()
            .map(retry_view)
            .collect();
        let cursor = state.cursor(id).ok().flatten();
        let running = slot.as_ref().and_then(|s| s.running.clone());
        let health = if !e.active {
            wire::Health::Inactive
        } else if running.is_some() {
            wire::Health::Running
        } else if status.needs_reconnect {
            wire::Health::NeedsReconnect
        } else if status.paused {
            wire::Health::Paused
        } else {
            match runs.first().map(|r| r.outcome) {
                None => wire::Health::New,
                Some(wire::RunOutcomeKind::Ok) => wire::Health::Ok,
                Some(wire::RunOutcomeKind::Partial) => wire::Health::Partial,
                Some(wire::RunOutcomeKind::Failed | wire::RunOutcomeKind::Cancelled) => {
                    wire::Health::Failed
                }
            }
        };
        let schedulable = e.active && !status.paused && !status.needs_reconnect;
        Some(wire::EmployerView {
            id,
            // Loket's name once synced; the config's label before that.
            name: slot
                .as_ref()
                .and_then(|s| s.overview.name.clone())
                .or_else(|| e.name.clone())
                .unwrap_or_else(|| id.to_string()),
            connection: e.connection.clone(),
            health,
            active: e.active,
            paused: status.paused,
            needs_reconnect: status.needs_reconnect,
            options: wire::OptionsView {
                all_employments: e.options.all_employments,
                absences: e.options.absences,
                salary: e.options.salary,
                bsn: e.options.bsn,
                history_months: e.options.history_months,
            },
            running,
            recent_runs: runs,
            entity_counts: slot
                .as_ref()
                .map(|s| s.overview.live_rows.clone())
                .unwrap_or_default(),
            next_run_at: slot.filter(|_| schedulable).map(|s| s.next_run_at),
            last_full_reconcile: cursor.and_then(|c| c.last_full_reconcile),
            last_error: status.last_error,
            last_error_at: status.last_error_at,
            retry_queue: retry,
        })
    }
}

/// What a reload changed.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub added: Vec<Uuid>,
    pub removed: Vec<Uuid>,
    pub changed: Vec<Uuid>,
}

fn internal(e: impl std::fmt::Display) -> wire::RequestError {
    wire::RequestError::Internal {
        message: e.to_string(),
    }
}

/// `postgres://user:secret@host:5432/db?x` → `postgres://host:5432/db`: no credentials.
fn postgres_target(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path()
        ),
        Err(_) => "postgres".to_string(),
    }
}

fn outcome_kind(s: RunStatus) -> wire::RunOutcomeKind {
    match s {
        RunStatus::Ok => wire::RunOutcomeKind::Ok,
        RunStatus::Partial => wire::RunOutcomeKind::Partial,
        RunStatus::Cancelled => wire::RunOutcomeKind::Cancelled,
        RunStatus::Failed | RunStatus::Running => wire::RunOutcomeKind::Failed,
    }
}

fn run_summary(r: &RunRecord, duration_ms: Option<u64>) -> wire::RunSummary {
    let finished = r.finished_at.unwrap_or(r.started_at);
    wire::RunSummary {
        run_id: r.run_id,
        full: r.kind == crate::state::RunKind::Full,
        outcome: outcome_kind(r.status),
        started_at: r.started_at,
        finished_at: finished,
        duration_ms: duration_ms.unwrap_or_else(|| {
            finished
                .signed_duration_since(r.started_at)
                .num_milliseconds()
                .max(0) as u64
        }),
        inserted: r.inserted,
        updated: r.updated,
        deleted: r.deleted,
        failed: r.failed,
        requests: r.requests,
        error: r.error.clone(),
    }
}

fn outcome_summary(o: &RunOutcome, now: DateTime<Utc>) -> wire::RunSummary {
    wire::RunSummary {
        run_id: o.run_id,
        full: o.kind == crate::state::RunKind::Full,
        outcome: outcome_kind(o.status),
        started_at: now - chrono::Duration::milliseconds(o.duration_ms as i64),
        finished_at: now,
        duration_ms: o.duration_ms,
        inserted: o.inserted,
        updated: o.updated,
        deleted: o.deleted,
        failed: o.failed,
        requests: o.requests,
        error: o.error.clone(),
    }
}

fn retry_view(r: &RetryEntry) -> wire::RetryEntryView {
    wire::RetryEntryView {
        employer: r.employer_id,
        entity: r.entity.clone(),
        record_id: r.record_id.clone(),
        reason: r.reason.clone(),
        attempts: r.attempts,
        first_failed: r.first_failed,
        last_failed: r.last_failed,
    }
}

/// Bytes of the regular files under `dir` (one level deep is all sled uses, plus its `snap.*`).
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| if m.is_dir() { 0 } else { m.len() })
        .sum()
}

/// Whether two connection configs would build the same client (the secret is compared by the
/// file it came from; a changed file content needs a restart or a new file name).
fn same_connection(
    a: &crate::config::ConnectionConfig,
    b: &crate::config::ConnectionConfig,
) -> bool {
    a.name == b.name
        && a.api_url == b.api_url
        && a.oauth_url == b.oauth_url
        && a.client_id == b.client_id
        && a.client_secret_file == b.client_secret_file
        && a.client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_string())
            == b.client_secret
                .as_ref()
                .map(|s| s.expose_secret().to_string())
        && a.ca_file == b.ca_file
        && a.requests_per_second == b.requests_per_second
        && a.max_parallel_requests == b.max_parallel_requests
}
