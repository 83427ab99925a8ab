//! Local agent state in sled: per-employer cursors, the retry queue, run history, quarantine of a corrupt store.
//!
//! sled is a cache that makes runs cheap, not the source of truth: everything here can be rebuilt
//! from the database plus a full reconciliation. So a store that will not open or holds garbage is
//! moved aside to `<dir>.corrupt-<UTC timestamp>` and replaced by an empty one, and every employer
//! then gets a full reconciliation (a missing cursor means "fetch everything"). [`OpenReport`]
//! tells the caller so it can alert the dashboard.
//!
//! One [`StateStore`] (one `sled::Db`) per process; it is cheap to clone and share. No sled type
//! leaves this module. Trees:
//! - `cursors`: employer id → [`Cursor`]
//! - `retry`: employer id | entity | NUL | record id → [`RetryEntry`]
//! - `runs`: employer id | big-endian start time | run id → [`RunRecord`] (last N per employer)
//! - `status`: employer id → [`EmployerStatus`]
//! - `options`: employer id → fingerprint of the options of its last run (an option change makes
//!   the next run a full reconciliation, see [`StateStore::note_options`])
//! - `meta`: store format version, installed version floor (for the updater)

mod codec;
mod model;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use model::{
    Cursor, EmployerStatus, MAX_REASON_CHARS, RetryEntry, RetryKey, RunKind, RunRecord, RunStatus,
};

use codec::{DecodeError, decode, employer_from_key, employer_key, encode, retry_key, run_key};
use model::{OptionsEntry, truncate_reason};

/// Format version of the store as a whole (kept in `meta`). A store with another version is
/// treated like a corrupt one: moved aside and rebuilt.
pub const STORE_FORMAT_VERSION: u32 = 1;
/// Default sled page cache size.
pub const DEFAULT_CACHE_CAPACITY: u64 = 16 * 1024 * 1024;
/// Default number of runs kept per employer.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

/// Default of [`StateOptions::lock_wait`].
pub const DEFAULT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

const TREE_CURSORS: &str = "cursors";
const TREE_RETRY: &str = "retry";
const TREE_RUNS: &str = "runs";
const TREE_STATUS: &str = "status";
const TREE_OPTIONS: &str = "options";
const TREE_META: &str = "meta";
const META_FORMAT_VERSION: &[u8] = b"format_version";
const META_VERSION_FLOOR: &[u8] = b"installed_version_floor";

/// Errors of the state store. Messages never contain stored values.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store cannot be opened and moving it aside would not help (permissions, another
    /// process holds it, disk full...).
    #[error("cannot open the state store {}: {message}", path.display())]
    Open { path: PathBuf, message: String },
    #[error("cannot move the corrupt state store {} aside to {}: {source}", from.display(), to.display())]
    MoveAside {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    /// A read or write failed at runtime.
    #[error("state store: {0}")]
    Storage(String),
    /// A stored value could not be decoded.
    #[error("state store: undecodable entry in `{tree}`: {reason}")]
    Undecodable { tree: &'static str, reason: String },
    #[error(
        "state store: invalid retry key (entity and record id must be non-empty and contain no NUL byte)"
    )]
    InvalidKey,
    #[error("state store: cannot encode a value: {0}")]
    Encode(String),
}

impl From<sled::Error> for StateError {
    fn from(e: sled::Error) -> Self {
        StateError::Storage(e.to_string())
    }
}

/// What [`StateStore::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Where the unusable store was moved to, if it was.
    pub recovered_from: Option<PathBuf>,
    /// Why it was moved aside.
    pub reason: Option<String>,
    /// The store is new and empty (first start, deleted directory, lost data, or recovered):
    /// every employer needs a full reconciliation.
    pub fresh: bool,
}

/// Tuning for [`StateStore::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateOptions {
    /// sled page cache size in bytes.
    pub cache_capacity: u64,
    /// Runs kept per employer.
    pub history_limit: usize,
    /// How long to wait for sled's file lock held by another handle (one that is just closing,
    /// or another process) before giving up.
    pub lock_wait: std::time::Duration,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions {
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            history_limit: DEFAULT_HISTORY_LIMIT,
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }
}

/// The agent's state store. Clones share the same database.
#[derive(Clone)]
pub struct StateStore {
    path: PathBuf,
    db: sled::Db,
    cursors: sled::Tree,
    retry: sled::Tree,
    runs: sled::Tree,
    status: sled::Tree,
    options: sled::Tree,
    meta: sled::Tree,
    history_limit: usize,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .field("history_limit", &self.history_limit)
            .finish_non_exhaustive()
    }
}

/// Why opening failed.
enum OpenFailure {
    /// Another handle holds sled's file lock (another process, or a handle of this process
    /// whose background threads have not finished closing yet).
    Locked(String),
    /// Not the data's fault: report, do not move anything.
    Fatal(String),
    /// The data is unusable: move it aside and start empty.
    Corrupt(String),
}

impl StateStore {
    /// The store's directory inside the agent's state directory.
    pub fn default_dir(state_dir: &Path) -> PathBuf {
        state_dir.join("sled")
    }

    /// Opens (or creates) the store in `dir` with default options, recovering from a corrupt
    /// store by moving it aside.
    pub fn open(dir: impl AsRef<Path>) -> Result<(StateStore, OpenReport), StateError> {
        StateStore::open_with(dir, StateOptions::default())
    }

    /// [`StateStore::open`] with explicit options.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: StateOptions,
    ) -> Result<(StateStore, OpenReport), StateError> {
        let dir = dir.as_ref();
        let mut attempt = try_open(dir, options);
        // sled releases its file lock from background threads shortly after the last handle is
        // dropped; give a handle that is just closing a moment before calling it a conflict.
        let mut waited = std::time::Duration::ZERO;
        while matches!(attempt, Err(OpenFailure::Locked(_))) && waited < options.lock_wait {
            waited += LOCK_RETRY_PAUSE;
            std::thread::sleep(LOCK_RETRY_PAUSE);
            attempt = try_open(dir, options);
        }
        match attempt {
            Ok((store, fresh)) => {
                let report = OpenReport {
                    fresh,
                    ..OpenReport::default()
                };
                Ok((store, report))
            }
            Err(OpenFailure::Locked(message) | OpenFailure::Fatal(message)) => {
                Err(StateError::Open {
                    path: dir.to_path_buf(),
                    message,
                })
            }
            Err(OpenFailure::Corrupt(reason)) => {
                let aside = move_aside(dir)?;
                tracing::warn!(
                    from = %dir.display(),
                    to = %aside.display(),
                    %reason,
                    "state store unusable: moved aside, starting empty; all employers get a full reconciliation"
                );
                let (store, _) = try_open(dir, options).map_err(|f| StateError::Open {
                    path: dir.to_path_buf(),
                    message: match f {
                        OpenFailure::Locked(m) | OpenFailure::Fatal(m) | OpenFailure::Corrupt(m) => {
                            format!("a fresh store could not be created after moving the old one aside: {m}")
                        }
                    },
                })?;
                Ok((
                    store,
                    OpenReport {
                        recovered_from: Some(aside),
                        reason: Some(reason),
                        fresh: true,
                    },
                ))
            }
        }
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every earlier write durable.
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush()?;
        Ok(())
    }

    /// Makes every earlier write durable without blocking the executor.
    pub async fn flush_async(&self) -> Result<(), StateError> {
        self.db.flush_async().await?;
        Ok(())
    }

    // ----------------------------------------------------------------------------- cursors

    /// The cursor of `employer`; `None` means "fetch everything". An undecodable cursor is
    /// reported in the log and treated as absent (a full reconciliation is always safe).
    pub fn cursor(&self, employer: Uuid) -> Result<Option<Cursor>, StateError> {
        let Some(bytes) = self.cursors.get(employer_key(employer))? else {
            return Ok(None);
        };
        match decode::<Cursor>(&bytes) {
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                tracing::warn!(%employer, reason = %e, "undecodable cursor ignored: the next run is a full reconciliation");
                Ok(None)
            }
        }
    }

    /// Stores the cursor of `employer` and flushes. Call only after the data it covers is
    /// committed to the database.
    pub async fn set_cursor(&self, employer: Uuid, cursor: &Cursor) -> Result<(), StateError> {
        self.cursors
            .insert(employer_key(employer), encode_value(cursor)?)?;
        self.flush_async().await
    }

    /// Removes the cursor of `employer` (the next run fetches everything) and flushes.
    pub async fn clear_cursor(&self, employer: Uuid) -> Result<(), StateError> {
        self.cursors.remove(employer_key(employer))?;
        self.flush_async().await
    }

    /// Asks for a full reconciliation on the next run of `employer`, keeping its version
    /// high-water marks. Flushes.
    pub async fn mark_needs_full(&self, employer: Uuid) -> Result<(), StateError> {
        if let Some(mut cursor) = self.cursor(employer)? {
            cursor.needs_full = true;
            self.cursors
                .insert(employer_key(employer), encode_value(&cursor)?)?;
        }
        self.flush_async().await
    }

    // ----------------------------------------------------------------------------- options

    /// The fingerprint of the options `employer` was last synced with, if one was recorded. An
    /// undecodable entry is logged and reads as absent.
    pub fn options_fingerprint(&self, employer: Uuid) -> Result<Option<String>, StateError> {
        let Some(bytes) = self.options.get(employer_key(employer))? else {
            return Ok(None);
        };
        match decode::<OptionsEntry>(&bytes) {
            Ok(e) => Ok(Some(e.fingerprint)),
            Err(e) => {
                tracing::warn!(%employer, reason = %e, "undecodable options fingerprint ignored");
                Ok(None)
            }
        }
    }

    /// Records the fingerprint of `employer`'s current options before a run. When it differs from
    /// the recorded one and the employer has a cursor, the cursor is marked `needs_full` first, so
    /// the change takes effect (fetching what an option now allows, purging what it no longer
    /// does) at this very run; the mark stays until a run completes, whatever happens in between.
    /// Without a cursor the run is full anyway. Flushes; returns whether a full reconciliation was
    /// scheduled.
    pub async fn note_options(
        &self,
        employer: Uuid,
        fingerprint: &str,
    ) -> Result<bool, StateError> {
        if self.options_fingerprint(employer)?.as_deref() == Some(fingerprint) {
            return Ok(false);
        }
        let scheduled = self.cursor(employer)?.is_some();
        if scheduled {
            self.mark_needs_full(employer).await?;
        }
        let entry = OptionsEntry {
            fingerprint: fingerprint.to_string(),
        };
        self.options
            .insert(employer_key(employer), encode_value(&entry)?)?;
        self.flush_async().await?;
        Ok(scheduled)
    }

    /// All cursors. Undecodable ones are skipped (and logged), like in [`StateStore::cursor`].
    pub fn cursors(&self) -> Result<Vec<(Uuid, Cursor)>, StateError> {
        let mut out = Vec::new();
        for item in self.cursors.iter() {
            let (key, value) = item?;
            let Some(employer) = employer_from_key(&key) else {
                continue;
            };
            match decode::<Cursor>(&value) {
                Ok(c) => out.push((employer, c)),
                Err(e) => tracing::warn!(%employer, reason = %e, "undecodable cursor ignored"),
            }
        }
        Ok(out)
    }

    // ----------------------------------------------------------------------------- retry queue

    /// Records a permanent failure of one record: a new entry, or one more attempt on an
    /// existing one. `reason` must not contain personal data.
    pub fn record_failure(
        &self,
        key: &RetryKey,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<RetryEntry, StateError> {
        let k = retry_key(key.employer_id, &key.entity, &key.record_id)
            .ok_or(StateError::InvalidKey)?;
        let reason = truncate_reason(reason);
        let mut failure = None;
        let updated = self.retry.update_and_fetch(&k, |old| {
            let previous = old.and_then(|bytes| decode::<RetryEntry>(bytes).ok());
            let entry = match previous {
                Some(prev) => RetryEntry {
                    reason: reason.clone(),
                    attempts: prev.attempts.saturating_add(1),
                    last_failed: at,
                    ..prev
                },
                None => RetryEntry {
                    employer_id: key.employer_id,
                    entity: key.entity.clone(),
                    record_id: key.record_id.clone(),
                    reason: reason.clone(),
                    attempts: 1,
                    first_failed: at,
                    last_failed: at,
                },
            };
            match encode(&entry) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    failure = Some(e.to_string());
                    old.map(<[u8]>::to_vec)
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(StateError::Encode(e));
        }
        let bytes = updated.ok_or_else(|| {
            StateError::Storage("retry entry vanished while being written".into())
        })?;
        decode_value(TREE_RETRY, &bytes)
    }

    /// The retry entry for `key`, if any.
    pub fn retry_entry(&self, key: &RetryKey) -> Result<Option<RetryEntry>, StateError> {
        let k = retry_key(key.employer_id, &key.entity, &key.record_id)
            .ok_or(StateError::InvalidKey)?;
        self.retry
            .get(k)?
            .map(|b| decode_value(TREE_RETRY, &b))
            .transpose()
    }

    /// The retry queue of `employer`, ordered by entity and record id.
    pub fn retry_entries(&self, employer: Uuid) -> Result<Vec<RetryEntry>, StateError> {
        self.retry
            .scan_prefix(employer_key(employer))
            .map(|item| {
                let (_, value) = item?;
                decode_value(TREE_RETRY, &value)
            })
            .collect()
    }

    /// The whole retry queue, ordered by employer.
    pub fn all_retry_entries(&self) -> Result<Vec<RetryEntry>, StateError> {
        self.retry
            .iter()
            .map(|item| {
                let (_, value) = item?;
                decode_value(TREE_RETRY, &value)
            })
            .collect()
    }

    /// Number of queued records of `employer`.
    pub fn retry_count(&self, employer: Uuid) -> Result<usize, StateError> {
        let mut n = 0;
        for item in self.retry.scan_prefix(employer_key(employer)).keys() {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Number of queued records of all employers.
    pub fn retry_count_all(&self) -> usize {
        self.retry.len()
    }

    /// Operator action "requeue": resets the attempt counter so the record is retried as if
    /// new. Returns whether the entry exists.
    pub fn requeue_retry(&self, key: &RetryKey) -> Result<bool, StateError> {
        let Some(mut entry) = self.retry_entry(key)? else {
            return Ok(false);
        };
        entry.attempts = 0;
        let k = retry_key(key.employer_id, &key.entity, &key.record_id)
            .ok_or(StateError::InvalidKey)?;
        self.retry.insert(k, encode_value(&entry)?)?;
        Ok(true)
    }

    /// Removes one record from the queue (it succeeded, or an operator dropped it). Returns
    /// whether it was there.
    pub fn drop_retry(&self, key: &RetryKey) -> Result<bool, StateError> {
        let k = retry_key(key.employer_id, &key.entity, &key.record_id)
            .ok_or(StateError::InvalidKey)?;
        Ok(self.retry.remove(k)?.is_some())
    }

    // ----------------------------------------------------------------------------- run history

    /// Records (or updates, same `run_id` and `started_at`) a run, then trims the employer's
    /// history to the newest `history_limit` runs.
    pub fn record_run(&self, run: &RunRecord) -> Result<(), StateError> {
        let mut run = run.clone();
        run.error = run.error.as_deref().map(truncate_reason);
        let key = run_key(run.employer_id, run.started_at, run.run_id);
        self.runs.insert(key, encode_value(&run)?)?;
        let prefix = employer_key(run.employer_id);
        let count = self.runs.scan_prefix(prefix).count();
        if count > self.history_limit {
            let excess: Vec<_> = self
                .runs
                .scan_prefix(prefix)
                .keys()
                .take(count - self.history_limit)
                .collect::<Result<_, _>>()?;
            for key in excess {
                self.runs.remove(key)?;
            }
        }
        Ok(())
    }

    /// The newest `limit` runs of `employer`, newest first.
    pub fn runs(&self, employer: Uuid, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        self.runs
            .scan_prefix(employer_key(employer))
            .rev()
            .take(limit)
            .map(|item| {
                let (_, value) = item?;
                decode_value(TREE_RUNS, &value)
            })
            .collect()
    }

    /// The newest run of `employer`.
    pub fn last_run(&self, employer: Uuid) -> Result<Option<RunRecord>, StateError> {
        Ok(self.runs(employer, 1)?.into_iter().next())
    }

    // ----------------------------------------------------------------------------- status

    /// The status of `employer` (the default when none was stored).
    pub fn status(&self, employer: Uuid) -> Result<EmployerStatus, StateError> {
        match self.status.get(employer_key(employer))? {
            Some(bytes) => decode_value(TREE_STATUS, &bytes),
            None => Ok(EmployerStatus::default()),
        }
    }

    /// Changes the status of `employer` atomically and returns the new one. `change` may run
    /// more than once under contention.
    pub fn update_status(
        &self,
        employer: Uuid,
        mut change: impl FnMut(&mut EmployerStatus),
    ) -> Result<EmployerStatus, StateError> {
        let mut failure = None;
        let updated = self.status.update_and_fetch(employer_key(employer), |old| {
            let mut status = match old.map(decode::<EmployerStatus>) {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    tracing::warn!(%employer, reason = %e, "undecodable employer status replaced");
                    EmployerStatus::default()
                }
                None => EmployerStatus::default(),
            };
            change(&mut status);
            status.last_error = status.last_error.as_deref().map(truncate_reason);
            match encode(&status) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    failure = Some(e.to_string());
                    old.map(<[u8]>::to_vec)
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(StateError::Encode(e));
        }
        match updated {
            Some(bytes) => decode_value(TREE_STATUS, &bytes),
            None => Ok(EmployerStatus::default()),
        }
    }

    /// Pauses or resumes `employer`'s schedule.
    pub fn set_paused(&self, employer: Uuid, paused: bool) -> Result<EmployerStatus, StateError> {
        self.update_status(employer, |s| s.paused = paused)
    }

    /// Marks whether `employer`'s connection needs a new consent.
    pub fn set_needs_reconnect(
        &self,
        employer: Uuid,
        needs: bool,
    ) -> Result<EmployerStatus, StateError> {
        self.update_status(employer, |s| s.needs_reconnect = needs)
    }

    /// Records (or clears, with `None`) the last error of `employer`. No personal data.
    pub fn set_last_error(
        &self,
        employer: Uuid,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<EmployerStatus, StateError> {
        self.update_status(employer, |s| {
            s.last_error = error.map(str::to_string);
            s.last_error_at = error.map(|_| at);
        })
    }

    /// Every stored employer status.
    pub fn statuses(&self) -> Result<Vec<(Uuid, EmployerStatus)>, StateError> {
        let mut out = Vec::new();
        for item in self.status.iter() {
            let (key, value) = item?;
            if let Some(employer) = employer_from_key(&key) {
                out.push((employer, decode_value(TREE_STATUS, &value)?));
            }
        }
        Ok(out)
    }

    // ----------------------------------------------------------------------------- employers

    /// Deletes everything kept about `employer` (cursor, retry queue, runs, status, options
    /// fingerprint) and flushes.
    pub async fn forget_employer(&self, employer: Uuid) -> Result<(), StateError> {
        let prefix = employer_key(employer);
        self.cursors.remove(prefix)?;
        self.status.remove(prefix)?;
        self.options.remove(prefix)?;
        for tree in [&self.retry, &self.runs] {
            let keys: Vec<_> = tree.scan_prefix(prefix).keys().collect::<Result<_, _>>()?;
            for key in keys {
                tree.remove(key)?;
            }
        }
        self.flush_async().await
    }

    // ----------------------------------------------------------------------------- meta

    /// The lowest version the updater may install (anti-rollback floor).
    pub fn installed_version_floor(&self) -> Result<Option<String>, StateError> {
        match self.meta.get(META_VERSION_FLOOR)? {
            None => Ok(None),
            Some(bytes) => {
                String::from_utf8(bytes.to_vec())
                    .map(Some)
                    .map_err(|_| StateError::Undecodable {
                        tree: TREE_META,
                        reason: "installed_version_floor is not UTF-8".into(),
                    })
            }
        }
    }

    /// Sets the anti-rollback floor and flushes.
    pub fn set_installed_version_floor(&self, version: &str) -> Result<(), StateError> {
        self.meta.insert(META_VERSION_FLOOR, version.as_bytes())?;
        self.flush()
    }
}

fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    encode(value).map_err(|e| StateError::Encode(e.to_string()))
}

fn decode_value<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StateError> {
    decode(bytes).map_err(|e: DecodeError| StateError::Undecodable {
        tree,
        reason: e.to_string(),
    })
}

/// Opens sled and checks the whole store; sled panics on some damaged files, so those are
/// caught and treated as corruption. Also returns whether the store was initialized just now.
fn try_open(dir: &Path, options: StateOptions) -> Result<(StateStore, bool), OpenFailure> {
    match catch_unwind(AssertUnwindSafe(|| open_and_check(dir, options))) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(OpenFailure::Corrupt(format!(
                "sled panicked while opening: {what}"
            )))
        }
    }
}

fn open_and_check(dir: &Path, options: StateOptions) -> Result<(StateStore, bool), OpenFailure> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(options.cache_capacity)
        .open()
        .map_err(classify_open_error)?;
    let tree = |name: &str| db.open_tree(name).map_err(classify_open_error);
    let store = StateStore {
        path: dir.to_path_buf(),
        cursors: tree(TREE_CURSORS)?,
        retry: tree(TREE_RETRY)?,
        runs: tree(TREE_RUNS)?,
        status: tree(TREE_STATUS)?,
        options: tree(TREE_OPTIONS)?,
        meta: tree(TREE_META)?,
        history_limit: options.history_limit.max(1),
        db,
    };
    let fresh = check_format_version(&store)?;
    check_values::<Cursor>(&store.cursors, TREE_CURSORS, 16)?;
    check_values::<RetryEntry>(&store.retry, TREE_RETRY, 19)?;
    check_values::<RunRecord>(&store.runs, TREE_RUNS, 40)?;
    check_values::<EmployerStatus>(&store.status, TREE_STATUS, 16)?;
    check_values::<OptionsEntry>(&store.options, TREE_OPTIONS, 16)?;
    Ok((store, fresh))
}

/// Checks the stored format version, or writes it into an empty store (returning `true`: a store
/// without a version was never initialized, or lost its data).
fn check_format_version(store: &StateStore) -> Result<bool, OpenFailure> {
    let corrupt = |e: sled::Error| OpenFailure::Corrupt(format!("reading the format version: {e}"));
    match store.meta.get(META_FORMAT_VERSION).map_err(corrupt)? {
        Some(bytes) => {
            let version = <[u8; 4]>::try_from(bytes.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| OpenFailure::Corrupt("the store format version is garbled".into()))?;
            if version != STORE_FORMAT_VERSION {
                return Err(OpenFailure::Corrupt(format!(
                    "store format version {version}, this agent uses {STORE_FORMAT_VERSION}"
                )));
            }
            Ok(false)
        }
        None => {
            let empty = [
                &store.cursors,
                &store.retry,
                &store.runs,
                &store.status,
                &store.options,
            ]
            .iter()
            .all(|t| t.is_empty());
            if !empty {
                return Err(OpenFailure::Corrupt(
                    "the store has data but no format version".into(),
                ));
            }
            store
                .meta
                .insert(META_FORMAT_VERSION, &STORE_FORMAT_VERSION.to_be_bytes())
                .map_err(classify_open_error)?;
            store.db.flush().map_err(classify_open_error)?;
            Ok(true)
        }
    }
}

/// Every key has at least `min_key_len` bytes and every value decodes.
fn check_values<T: DeserializeOwned>(
    tree: &sled::Tree,
    name: &str,
    min_key_len: usize,
) -> Result<(), OpenFailure> {
    for item in tree.iter() {
        let (key, value) =
            item.map_err(|e| OpenFailure::Corrupt(format!("reading `{name}`: {e}")))?;
        if key.len() < min_key_len {
            return Err(OpenFailure::Corrupt(format!(
                "a key in `{name}` is too short"
            )));
        }
        if let Err(e) = decode::<T>(&value) {
            return Err(OpenFailure::Corrupt(format!(
                "undecodable entry in `{name}`: {e}"
            )));
        }
    }
    Ok(())
}

/// Environment problems are fatal; anything that points at the data is corruption.
fn classify_open_error(e: sled::Error) -> OpenFailure {
    use std::io::ErrorKind;
    match &e {
        sled::Error::Io(io)
            if io.kind() == ErrorKind::WouldBlock
                || io.to_string().contains("could not acquire lock") =>
        {
            OpenFailure::Locked(e.to_string())
        }
        sled::Error::Io(io) => {
            let environmental = matches!(
                io.kind(),
                ErrorKind::PermissionDenied
                    | ErrorKind::StorageFull
                    | ErrorKind::ReadOnlyFilesystem
                    | ErrorKind::QuotaExceeded
                    | ErrorKind::NotADirectory
                    | ErrorKind::OutOfMemory
            );
            if environmental {
                OpenFailure::Fatal(e.to_string())
            } else {
                OpenFailure::Corrupt(e.to_string())
            }
        }
        _ => OpenFailure::Corrupt(e.to_string()),
    }
}

/// Renames `dir` to `<dir>.corrupt-<UTC timestamp>` (with a counter if that exists).
fn move_aside(dir: &Path) -> Result<PathBuf, StateError> {
    let mut base = dir.as_os_str().to_owned();
    base.push(format!(".corrupt-{}", Utc::now().format("%Y%m%dT%H%M%SZ")));
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.exists() {
        n += 1;
        let mut numbered = base.clone();
        numbered.push(format!("-{n}"));
        target = PathBuf::from(numbered);
    }
    std::fs::rename(dir, &target).map_err(|source| StateError::MoveAside {
        from: dir.to_path_buf(),
        to: target.clone(),
        source,
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    //! Values that become undecodable while the store is open (planted through the trees,
    //! which only this module can reach).
    use super::*;

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = StateStore::open(dir.path().join("s")).unwrap();
        (dir, store)
    }

    const GARBAGE: &[u8] = b"{\"v\":1,\"employer_version\":\"CANARY-not-a-number\"}";

    #[test]
    fn undecodable_cursor_reads_as_absent() {
        let (_dir, store) = store();
        let e = Uuid::from_u128(1);
        store.cursors.insert(employer_key(e), GARBAGE).unwrap();
        assert_eq!(store.cursor(e).unwrap(), None);
        assert!(store.cursors().unwrap().is_empty());
    }

    #[test]
    fn undecodable_retry_entry_is_an_error_without_the_value_and_is_overwritten() {
        let (_dir, store) = store();
        let key = RetryKey::new(Uuid::from_u128(1), "employee", "1");
        let k = retry_key(key.employer_id, &key.entity, &key.record_id).unwrap();
        store.retry.insert(&k, GARBAGE).unwrap();
        let err = store.retry_entries(key.employer_id).unwrap_err();
        assert!(
            matches!(err, StateError::Undecodable { tree: "retry", .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains("CANARY"), "{err}");
        assert!(store.retry_entry(&key).is_err());
        // A new failure replaces the garbage with a fresh entry.
        let at = Utc::now();
        let entry = store.record_failure(&key, "r", at).unwrap();
        assert_eq!(entry.attempts, 1);
        assert_eq!(store.retry_entries(key.employer_id).unwrap(), vec![entry]);
    }

    #[test]
    fn undecodable_status_and_runs_are_errors_and_status_updates_recover() {
        let (_dir, store) = store();
        let e = Uuid::from_u128(1);
        store
            .status
            .insert(employer_key(e), &b"\xff\xfe"[..])
            .unwrap();
        assert!(matches!(
            store.status(e),
            Err(StateError::Undecodable { tree: "status", .. })
        ));
        assert!(store.statuses().is_err());
        let s = store.set_paused(e, true).unwrap();
        assert!(s.paused && !s.needs_reconnect);
        assert_eq!(store.status(e).unwrap(), s);

        store
            .runs
            .insert(run_key(e, Utc::now(), Uuid::nil()), GARBAGE)
            .unwrap();
        let err = store.runs(e, 10).unwrap_err();
        assert!(!err.to_string().contains("CANARY"), "{err}");
        assert!(store.last_run(e).is_err());
    }

    #[tokio::test]
    async fn an_options_change_schedules_a_full_reconciliation_once() {
        let (_dir, store) = store();
        let e = Uuid::from_u128(7);
        // No cursor yet: the first run is full anyway; the fingerprint is recorded.
        assert!(!store.note_options(e, "a").await.unwrap());
        assert_eq!(store.options_fingerprint(e).unwrap().as_deref(), Some("a"));
        store.set_cursor(e, &Cursor::default()).await.unwrap();
        assert!(!store.note_options(e, "a").await.unwrap());
        assert!(!store.cursor(e).unwrap().unwrap().needs_full);
        // Changed: the cursor keeps its marks and asks for a full run, until a run moves it.
        assert!(store.note_options(e, "b").await.unwrap());
        assert!(store.cursor(e).unwrap().unwrap().needs_full);
        assert!(!store.note_options(e, "b").await.unwrap());
        assert!(store.cursor(e).unwrap().unwrap().needs_full);
        // Garbage reads as unknown (and so as a change); forgetting removes it.
        store.options.insert(employer_key(e), GARBAGE).unwrap();
        assert_eq!(store.options_fingerprint(e).unwrap(), None);
        store.forget_employer(e).await.unwrap();
        assert_eq!(store.options_fingerprint(e).unwrap(), None);
    }

    #[test]
    fn garbled_version_floor_is_an_error() {
        let (_dir, store) = store();
        store.meta.insert(META_VERSION_FLOOR, &b"\xff"[..]).unwrap();
        assert!(store.installed_version_floor().is_err());
    }
}
