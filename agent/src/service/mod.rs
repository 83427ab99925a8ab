//! `arbosync-agent run`: the supervisor. It owns start-up (config, stores, socket), the
//! scheduler, the control socket, signals and shutdown:
//!
//! - SIGTERM/SIGINT: stop scheduling, let running runs finish for up to `shutdown_grace`,
//!   then abandon them (each batch is one transaction, and the cursor only moves after the
//!   commit, so an abandoned run leaves nothing half-applied), flush state, exit 0.
//! - SIGHUP: reload the config; a bad file is reported and the old one kept.
//! - systemd: READY once the socket listens, STATUS as runs come and go, WATCHDOG from the
//!   scheduler loop (so a stuck scheduler gets the service restarted).

pub mod hub;
pub mod notify;
pub mod schedule;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::control::{self, peer::AccessPolicy};
use crate::sync::run::{RunRequest, SyncContext, run_employer};

use hub::{AgentFacts, Hub, Start};

/// The scheduler wakes at least this often (to notice a new consent, and to ping the watchdog).
const MAX_SLEEP: Duration = Duration::from_secs(5);

/// How the service is embedded.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Stops the service like SIGTERM does (the demo uses it when the dashboard quits).
    pub shutdown: CancellationToken,
    /// Log to standard error (off while a dashboard owns the terminal).
    pub stderr_logs: bool,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            shutdown: CancellationToken::new(),
            stderr_logs: true,
        }
    }
}

/// Why the service stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceExit {
    /// SIGTERM/SIGINT or a requested shutdown.
    Stopped,
    /// A newer release was installed; exit with [`crate::update::EXIT_CODE_RESTART`] so the
    /// service manager starts the new binary.
    RestartForUpdate,
}

/// Runs the service until SIGTERM/SIGINT (or an installed update).
pub async fn run(config_path: &Path) -> Result<ServiceExit> {
    run_with(config_path, ServiceOptions::default()).await
}

/// Runs the service until SIGTERM/SIGINT, `options.shutdown` or an installed update.
pub async fn run_with(config_path: &Path, options: ServiceOptions) -> Result<ServiceExit> {
    let config = Config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let _logs = crate::logging::init(
        config.agent.log_level.as_deref(),
        config.agent.log_dir.as_deref(),
        options.stderr_logs,
    )?;
    info!(version = env!("CARGO_PKG_VERSION"), config = %config_path.display(), "arbosync agent starting");
    let config = Arc::new(config);
    let stores = crate::cli::open_stores(&config).await?;
    let state_report = stores.state_report.clone();
    let hub = Hub::new(
        Arc::clone(&config),
        stores,
        AgentFacts {
            config_path: config_path
                .canonicalize()
                .unwrap_or_else(|_| config_path.to_path_buf()),
            started_at: Utc::now(),
        },
    );
    for id in hub.employer_ids() {
        hub.refresh_overview(id).await;
    }
    if let Some(from) = &state_report.recovered_from {
        hub.add_alert(format!(
            "the state store was unusable ({}) and was rebuilt; the old one is at {}; every employer gets a full reconciliation",
            state_report.reason.as_deref().unwrap_or("unknown reason"),
            from.display()
        ));
    }

    let own_uid = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    })?;
    let policy = Arc::new(RwLock::new(resolve_policy(&config, own_uid)));

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let socket_path = config.agent.socket.clone();
    let listener = control::bind(&socket_path).await?;
    info!(socket = %socket_path.display(), "control socket listening");
    tracker.spawn(control::serve(
        listener,
        Arc::clone(&hub),
        Arc::clone(&policy),
        cancel.clone(),
        tracker.clone(),
    ));

    // Runs are abandoned through this token once the grace period is over.
    let abandon = CancellationToken::new();
    let runs = TaskTracker::new();
    let scheduler = tokio::spawn(scheduler_loop(
        Arc::clone(&hub),
        cancel.clone(),
        abandon.clone(),
        runs.clone(),
    ));

    notify::ready(&format!(
        "{} employer(s) configured, {} active",
        config.employers.len(),
        config.employers.iter().filter(|e| e.active).count()
    ));
    info!("agent ready");

    // The updater: confirm this version healthy (a new release that got this far is good; the
    // guard rolls back one that never does), then check the channel on its interval.
    let updater = match crate::update::Updater::new(
        &config.update,
        &config.agent.state_dir,
        hub.stores.state.clone(),
    ) {
        Ok(u) => {
            if let Err(e) = u.confirm_healthy() {
                warn!(error = %e, "could not confirm this version healthy");
            }
            publish_update_status(&hub, &u);
            Some(Arc::new(u))
        }
        Err(e) => {
            let msg = format!("the updater is unavailable: {e}");
            warn!("{msg}");
            hub.add_alert(msg);
            None
        }
    };
    let restart = CancellationToken::new();
    if let Some(u) = &updater {
        tracker.spawn(update_loop(
            Arc::clone(&hub),
            Arc::clone(u),
            cancel.clone(),
            restart.clone(),
        ));
    }

    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    loop {
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { info!("SIGINT: shutting down"); break; }
            _ = options.shutdown.cancelled() => { info!("shutdown requested"); break; }
            _ = restart.cancelled() => { info!("a new release is installed: restarting into it between runs"); break; }
            _ = sighup.recv() => reload(&hub, config_path, &policy, own_uid).await,
        }
    }

    // Shutdown.
    notify::stopping();
    let for_update = restart.is_cancelled();
    // An update restart never cuts a run short; a stop request gives runs the grace period.
    let grace = if for_update {
        Duration::from_secs(6 * 3600)
    } else {
        hub.config().agent.shutdown_grace
    };
    let running = hub.begin_shutdown();
    cancel.cancel();
    let _ = scheduler.await;
    runs.close();
    if running > 0 {
        info!(
            running,
            grace_s = grace.as_secs(),
            "waiting for running runs to finish"
        );
    }
    if tokio::time::timeout(grace, runs.wait()).await.is_err() {
        warn!(
            "runs did not finish within the grace period: abandoning them (nothing half-applied; they run again at the next start)"
        );
        abandon.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), runs.wait()).await;
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    if let Err(e) = hub.stores.state.flush_async().await {
        error!(error = %e, "could not flush the state store at shutdown");
    }
    let _ = std::fs::remove_file(&socket_path);
    info!("agent stopped");
    Ok(if for_update {
        ServiceExit::RestartForUpdate
    } else {
        ServiceExit::Stopped
    })
}

/// Checks the release channel every `check_interval` (when enabled), and watches for an
/// installed newer binary (after our own swap, or the root unit's for package installs).
async fn update_loop(
    hub: Arc<Hub>,
    updater: Arc<crate::update::Updater>,
    cancel: CancellationToken,
    restart: CancellationToken,
) {
    let settings = hub.config().update.clone();
    let check_every = settings.check_interval.max(Duration::from_secs(60));
    let mut next_check = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if settings.enabled
            && settings.manifest_url.is_some()
            && tokio::time::Instant::now() >= next_check
        {
            next_check = tokio::time::Instant::now() + check_every;
            match updater.update().await {
                Ok(outcome) => info!(?outcome, "release channel checked"),
                Err(e) => {
                    warn!(error = %e, "update check failed");
                    hub.record_error(None, None, format!("update: {e}"));
                }
            }
            publish_update_status(&hub, &updater);
        }
        match updater.restart_required() {
            Ok(Some(version)) => {
                info!(%version, "restart required for the installed release");
                publish_update_status(&hub, &updater);
                restart.cancel();
                return;
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot read the update state"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
}

fn publish_update_status(hub: &Hub, updater: &crate::update::Updater) {
    let Ok(status) = updater.status() else {
        return;
    };
    let at = |secs: u64| chrono::DateTime::<Utc>::from_timestamp(secs as i64, 0);
    let mut info = hub.update_info();
    info.pending = status.pending.clone().or(status.staged.clone());
    info.last_check = status.last_check_at.and_then(at);
    info.last_failure = status.last_error.clone().or_else(|| {
        status
            .last_rollback
            .as_ref()
            .map(|r| format!("{} rolled back to {}: {}", r.version, r.restored, r.reason))
    });
    hub.set_update_info(info);
}

fn resolve_policy(config: &Config, own_uid: u32) -> AccessPolicy {
    let (policy, unresolved) = AccessPolicy::from_settings(&config.agent, own_uid);
    for name in unresolved {
        warn!(%name, "a user or group in the socket access lists does not exist; ignored");
    }
    policy
}

async fn reload(hub: &Arc<Hub>, path: &Path, policy: &RwLock<AccessPolicy>, own_uid: u32) {
    info!("SIGHUP: reloading the configuration");
    match Config::load(path) {
        Ok(new) => {
            let old = hub.config();
            if new.agent.socket != old.agent.socket
                || new.agent.state_dir != old.agent.state_dir
                || new.database != old.database
            {
                let msg = "config reload: socket, state_dir and [database] changes need a restart; the other changes were applied".to_string();
                warn!("{msg}");
                hub.add_alert(msg);
            }
            *policy.write().await = resolve_policy(&new, own_uid);
            let report = hub.reload(Arc::new(new));
            info!(
                added = report.added.len(),
                removed = report.removed.len(),
                changed = report.changed.len(),
                "configuration reloaded"
            );
        }
        Err(e) => {
            let msg = format!("config reload failed; keeping the running configuration: {e}");
            error!("{msg}");
            hub.record_error(None, None, msg);
        }
    }
}

async fn scheduler_loop(
    hub: Arc<Hub>,
    cancel: CancellationToken,
    abandon: CancellationToken,
    runs: TaskTracker,
) {
    let watchdog = notify::watchdog_period();
    let mut last_ping = tokio::time::Instant::now();
    loop {
        let now = Utc::now();
        let (starts, next_due) = hub.take_due(now);
        for start in starts {
            runs.spawn(run_one(Arc::clone(&hub), start, abandon.clone()));
        }
        if let Some(period) = watchdog
            && last_ping.elapsed() >= period
        {
            notify::watchdog();
            last_ping = tokio::time::Instant::now();
        }
        let mut sleep = next_due
            .and_then(|t| t.signed_duration_since(Utc::now()).to_std().ok())
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        if let Some(period) = watchdog {
            sleep = sleep.min(period);
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = hub.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

async fn run_one(hub: Arc<Hub>, start: Start, abandon: CancellationToken) {
    let employer_id = start.employer.id;
    let progress_hub = Arc::clone(&hub);
    let ctx = SyncContext {
        client: start.client.scoped(),
        sink: Arc::clone(&hub.stores.sink),
        state: hub.stores.state.clone(),
        today: Utc::now().date_naive(),
        failpoint: std::env::var("ARBOSYNC_FAILPOINT")
            .ok()
            .filter(|s| !s.is_empty()),
        write_paths: hub.config().write_paths().into(),
        progress: Some(Arc::new(move |p| progress_hub.on_progress(p))),
    };
    let request = RunRequest {
        full: start.full,
        manual: start.manual,
    };
    notify::status(&format!("{} run(s) in progress", hub.running_count()));
    let run = run_employer(&ctx, &start.employer, request, None);
    let outcome = tokio::select! {
        o = run => Some(o),
        _ = abandon.cancelled() => {
            warn!(employer = %employer_id, "run abandoned at shutdown");
            record_abandoned(&hub, employer_id).await;
            None
        }
    };
    hub.refresh_overview(employer_id).await;
    hub.on_finished(employer_id, outcome.as_ref());
    notify::status(&format!("{} run(s) in progress", hub.running_count()));
}

/// Closes the books on an abandoned run: `cancelled` in the history, `failed` in `sync_run`
/// (the target schema has no other word for a run that did not finish). Its applied batches
/// stay; the cursor did not move, so the next run covers the rest.
async fn record_abandoned(hub: &Hub, employer: uuid::Uuid) {
    let Some(running) = hub.running_view(employer) else {
        return;
    };
    if running.run_id.is_nil() {
        return;
    }
    let record = crate::state::RunRecord {
        run_id: running.run_id,
        employer_id: employer,
        kind: if running.full {
            crate::state::RunKind::Full
        } else {
            crate::state::RunKind::Incremental
        },
        started_at: running.started_at,
        finished_at: Some(Utc::now()),
        status: crate::state::RunStatus::Cancelled,
        inserted: 0,
        updated: 0,
        deleted: 0,
        failed: 0,
        requests: 0,
        error: Some("abandoned at shutdown".into()),
    };
    if let Err(e) = hub.stores.state.record_run(&record) {
        warn!(error = %e, "could not record the abandoned run");
    }
    let finished = hub
        .stores
        .sink
        .finish_run(
            &running.run_id.to_string(),
            crate::sink::RunStatus::Failed,
            crate::sink::RunCounts::default(),
        )
        .await;
    if let Err(e) = finished {
        warn!(error = %e, "could not close the abandoned run in the database");
    }
}
