//! One pass over the selected employers: a Loket client per connection, the employer version
//! numbers read once per connection (one request covers every employer of that Loket user), and
//! the employer runs with at most `max_concurrent_employers` at a time. One employer's failure
//! never affects another's.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use futures_util::stream::{self, StreamExt};
use tracing::warn;
use uuid::Uuid;

use crate::config::{Config, EmployerConfig};
use crate::loket::LoketClient;
use crate::secrets::SecretStore;
use crate::sink::Sink;
use crate::state::StateStore;

use super::connection;
use super::run::{RunOutcome, RunRequest, SyncContext, run_employer};

/// What a pass covers.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Only this employer (active or not); otherwise every active employer.
    pub employer: Option<Uuid>,
    pub full: bool,
    pub manual: bool,
    /// "Today" for history windows; `None` means the UTC date now.
    pub today: Option<NaiveDate>,
    /// Test hook, see [`SyncContext::failpoint`].
    pub failpoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("employer {0} is not in the configuration")]
    UnknownEmployer(Uuid),
    #[error("connection `{connection}` cannot be used: {reason}")]
    Connection { connection: String, reason: String },
}

/// The employers a pass covers.
pub fn selected<'a>(
    cfg: &'a Config,
    opts: &PassOptions,
) -> Result<Vec<&'a EmployerConfig>, PassError> {
    match opts.employer {
        Some(id) => cfg
            .employer(id)
            .map(|e| vec![e])
            .ok_or(PassError::UnknownEmployer(id)),
        None => Ok(cfg.employers.iter().filter(|e| e.active).collect()),
    }
}

/// Runs one pass and returns an outcome per employer, in configuration order.
pub async fn sync_pass(
    cfg: &Config,
    sink: Arc<Sink>,
    state: StateStore,
    secrets: Arc<SecretStore>,
    opts: &PassOptions,
) -> Result<Vec<RunOutcome>, PassError> {
    let employers = selected(cfg, opts)?;
    let today = opts
        .today
        .unwrap_or_else(|| chrono::Utc::now().date_naive());

    // One client per connection in use.
    let mut clients: HashMap<&str, LoketClient> = HashMap::new();
    for e in &employers {
        if clients.contains_key(e.connection.as_str()) {
            continue;
        }
        let conn = cfg
            .connection(&e.connection)
            .ok_or_else(|| PassError::Connection {
                connection: e.connection.clone(),
                reason: "not configured".into(),
            })?;
        let client = connection::client(conn, Arc::clone(&secrets)).map_err(|err| {
            PassError::Connection {
                connection: conn.name.clone(),
                reason: err.to_string(),
            }
        })?;
        clients.insert(conn.name.as_str(), client);
    }

    // The employer version numbers, once per connection. A failure here is left to each run,
    // which asks again and reports its own error.
    // On a full disk Loket is not asked at all (a rotated refresh token must be saved); every
    // run then fails with the disk's error.
    let write_paths: Arc<[std::path::PathBuf]> = cfg.write_paths().into();
    let room = crate::diskspace::ensure_room(&write_paths);
    if let Err(e) = &room {
        warn!(error = %e, "not syncing");
    }
    let mut versions: HashMap<&str, HashMap<String, i64>> = HashMap::new();
    for (name, client) in clients.iter().filter(|_| room.is_ok()) {
        match client.employer_version_numbers(None).await {
            Ok(list) => {
                versions.insert(
                    name,
                    list.into_iter()
                        .map(|v| (v.id.to_ascii_lowercase(), v.last_modified_version_number))
                        .collect(),
                );
            }
            Err(e) => {
                warn!(connection = %name, error = %e, "could not read the employer version numbers")
            }
        }
    }

    let request = RunRequest {
        full: opts.full,
        manual: opts.manual,
    };
    let runs = employers.iter().map(|e| {
        let client = clients[e.connection.as_str()].scoped();
        let ctx = SyncContext {
            client,
            sink: Arc::clone(&sink),
            state: state.clone(),
            today,
            failpoint: opts.failpoint.clone(),
            write_paths: Arc::clone(&write_paths),
            progress: None,
        };
        let version = versions
            .get(e.connection.as_str())
            .and_then(|m| m.get(&e.id.to_string()))
            .copied();
        async move { run_employer(&ctx, e, request, version).await }
    });
    let mut outcomes: Vec<RunOutcome> = stream::iter(runs)
        .buffered(cfg.agent.max_concurrent_employers.max(1))
        .collect()
        .await;
    if let Err(e) = state.flush_async().await {
        warn!(error = %e, "could not flush the state store");
    }
    outcomes.sort_by_key(|o| employers.iter().position(|e| e.id == o.employer_id));
    Ok(outcomes)
}
