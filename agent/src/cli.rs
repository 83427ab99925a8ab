//! The `arbosync-agent` commands, one function each; `main.rs` only parses arguments.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use uuid::Uuid;

use crate::config::{Config, default_config_path};
use crate::secrets::SecretStore;
use crate::sink::Sink;
use crate::state::{RunStatus, StateStore};
use crate::sync::{PassOptions, RunOutcome, sync_pass};

/// The config path from the command line, `$ARBOSYNC_CONFIG` (clap fills it in), or the default.
pub fn config_path(arg: Option<PathBuf>) -> PathBuf {
    arg.unwrap_or_else(default_config_path)
}

/// Logs go to stderr (journald adds timestamps under systemd), plain when not a terminal.
/// `RUST_LOG` wins over the configured level.
pub fn init_logging(level: Option<&str>) {
    // One-shot commands log to standard error only: no log directory, so no guard to keep.
    let _ = crate::logging::init(level, None, true);
}

fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The database, the state store and the secret store of a configuration.
pub struct Stores {
    pub sink: Arc<Sink>,
    pub state: StateStore,
    pub secrets: Arc<SecretStore>,
    /// How the state store opened (whether it had to be rebuilt).
    pub state_report: crate::state::OpenReport,
}

pub async fn open_stores(cfg: &Config) -> Result<Stores> {
    std::fs::create_dir_all(&cfg.agent.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}",
            cfg.agent.state_dir.display()
        )
    })?;
    let sink = Sink::connect(&cfg.database.url, &cfg.database.schema)
        .await
        .context("cannot open the database")?;
    let (state, report) = StateStore::open(StateStore::default_dir(&cfg.agent.state_dir))
        .context("cannot open the state store")?;
    if let Some(from) = &report.recovered_from {
        tracing::error!(
            moved_to = %from.display(),
            reason = report.reason.as_deref().unwrap_or("unknown"),
            "the state store was unusable; it was moved aside and every employer gets a full reconciliation"
        );
    }
    let secrets =
        SecretStore::open(&cfg.agent.state_dir).context("cannot open the secret store")?;
    Ok(Stores {
        sink: Arc::new(sink),
        state,
        secrets: Arc::new(secrets),
        state_report: report,
    })
}

/// `check-config`: print every problem with file, line and key; exit 0 when valid.
pub async fn check_config(config: Option<PathBuf>) -> Result<ExitCode> {
    let path = config_path(config);
    match Config::load(&path) {
        Ok(cfg) => {
            println!(
                "{}: ok ({} connection(s), {} employer(s), {} active)",
                path.display(),
                cfg.connections.len(),
                cfg.employers.len(),
                cfg.employers.iter().filter(|e| e.active).count()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `sync --once`: one pass, a summary, exit 0 when every run was ok.
pub async fn sync_once(
    config: Option<PathBuf>,
    employer: Option<String>,
    full: bool,
    json: bool,
) -> Result<ExitCode> {
    let cfg = load_config(&config_path(config))?;
    init_logging(cfg.agent.log_level.as_deref());
    let employer = employer
        .map(|e| Uuid::parse_str(&e).with_context(|| format!("--employer {e:?} is not a UUID")))
        .transpose()?;
    // A full disk is a failed run (exit 1) with a clear cause, not a store that cannot open.
    if let Err(e) = crate::diskspace::ensure_room(&cfg.write_paths()) {
        eprintln!("error: {e}");
        if json {
            let doc = serde_json::json!({ "ok": false, "error": e.to_string(), "employers": [] });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        return Ok(ExitCode::from(1));
    }
    let stores = open_stores(&cfg).await?;
    let opts = PassOptions {
        employer,
        full,
        manual: employer.is_some(),
        failpoint: std::env::var("ARBOSYNC_FAILPOINT")
            .ok()
            .filter(|s| !s.is_empty()),
        ..Default::default()
    };
    let outcomes = sync_pass(&cfg, stores.sink, stores.state, stores.secrets, &opts).await?;
    if json {
        let doc = serde_json::json!({
            "ok": outcomes.iter().all(|o| o.status == RunStatus::Ok),
            "employers": outcomes,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_summary(&cfg, &outcomes);
    }
    Ok(exit_code(&outcomes))
}

pub fn exit_code(outcomes: &[RunOutcome]) -> ExitCode {
    if outcomes.iter().all(|o| o.status == RunStatus::Ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A table of the pass: one line per employer with counts; errors carry ids and causes only.
pub fn print_summary(cfg: &Config, outcomes: &[RunOutcome]) {
    println!(
        "{:<36}  {:<24}  {:<11}  {:<8}  {:>6} {:>6} {:>6} {:>6}  {:>8}  {:>8}",
        "employer", "name", "kind", "status", "+ins", "~upd", "-del", "failed", "requests", "ms"
    );
    for o in outcomes {
        let name = cfg
            .employer(o.employer_id)
            .and_then(|e| e.name.clone())
            .unwrap_or_default();
        let status = if o.needs_reconnect {
            "reconnect".to_string()
        } else {
            format!("{:?}", o.status).to_lowercase()
        };
        println!(
            "{:<36}  {:<24.24}  {:<11}  {:<8}  {:>6} {:>6} {:>6} {:>6}  {:>8}  {:>8}",
            o.employer_id,
            name,
            format!("{:?}", o.kind).to_lowercase(),
            status,
            o.inserted,
            o.updated,
            o.deleted,
            o.failed,
            o.requests,
            o.duration_ms
        );
        if let Some(err) = &o.error {
            println!("    error: {err}");
        }
    }
}

/// `connect NAME`: the interactive consent, or a refresh token from standard input.
pub async fn connect(
    config: Option<PathBuf>,
    name: &str,
    refresh_token_stdin: bool,
    redirect_uri: Option<String>,
) -> Result<ExitCode> {
    let cfg = load_config(&config_path(config))?;
    init_logging(cfg.agent.log_level.as_deref());
    let Some(conn) = cfg.connection(name) else {
        bail!("connection `{name}` is not in the configuration");
    };
    std::fs::create_dir_all(&cfg.agent.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}",
            cfg.agent.state_dir.display()
        )
    })?;
    let secrets =
        Arc::new(SecretStore::open(&cfg.agent.state_dir).context("cannot open the secret store")?);
    if refresh_token_stdin {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("cannot read the refresh token from standard input")?;
        let token = input.trim();
        if token.is_empty() || token.contains(char::is_whitespace) {
            bail!("standard input must hold exactly one refresh token");
        }
        secrets
            .save(name, token)
            .context("cannot store the refresh token")?;
    } else {
        let redirect = redirect_uri.unwrap_or_else(|| crate::consent::DEFAULT_REDIRECT_URI.into());
        let mut out = std::io::stdout();
        crate::consent::run(conn, Arc::clone(&secrets), &redirect, &mut out).await?;
    }
    // Clear `needs_reconnect`. While the service runs it holds the state store; it then sees
    // the rewritten token file and resumes the connection's employers by itself.
    let options = crate::state::StateOptions {
        lock_wait: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    match StateStore::open_with(StateStore::default_dir(&cfg.agent.state_dir), options) {
        Ok((state, _)) => {
            for e in cfg.employers.iter().filter(|e| e.connection == name) {
                state.set_needs_reconnect(e.id, false)?;
            }
            state.flush_async().await?;
        }
        Err(e) => {
            tracing::info!(error = %e, "state store busy (the agent is running); it picks up the new token itself")
        }
    }
    println!("stored the refresh token of connection `{name}` (encrypted)");
    Ok(ExitCode::SUCCESS)
}

/// `purge --employer ID --yes`: delete every row of the employer and its local state.
pub async fn purge(config: Option<PathBuf>, employer: &str, yes: bool) -> Result<ExitCode> {
    let cfg = load_config(&config_path(config))?;
    init_logging(cfg.agent.log_level.as_deref());
    let id = Uuid::parse_str(employer)
        .with_context(|| format!("--employer {employer:?} is not a UUID"))?;
    if !yes {
        eprintln!(
            "this deletes every row of employer {id} from the database and its local state; pass --yes to do it"
        );
        return Ok(ExitCode::from(1));
    }
    let stores = open_stores(&cfg).await?;
    let run_id = Uuid::new_v4().to_string();
    let rows = stores.sink.purge_employer(&run_id, &id.to_string()).await?;
    stores.state.forget_employer(id).await?;
    stores.state.flush_async().await?;
    println!("purged employer {id}: {rows} row(s) deleted");
    Ok(ExitCode::SUCCESS)
}

/// The updater of a configuration. The state store holds the version floor; while the service
/// runs it holds the store, so these commands are for a stopped service (the running one checks
/// on its own and shows the result in `arbosync status`).
fn updater(cfg: &Config) -> Result<crate::update::Updater> {
    let options = crate::state::StateOptions {
        lock_wait: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let (state, _) = StateStore::open_with(StateStore::default_dir(&cfg.agent.state_dir), options)
        .context("cannot open the state store (is the service running? it checks for updates by itself; see `arbosync status`)")?;
    Ok(crate::update::Updater::new(
        &cfg.update,
        &cfg.agent.state_dir,
        state,
    )?)
}

/// `update check`.
pub async fn update_check(config: Option<PathBuf>, json: bool) -> Result<ExitCode> {
    let cfg = load_config(&config_path(config))?;
    init_logging(cfg.agent.log_level.as_deref());
    let updater = updater(&cfg)?;
    let outcome = updater.check().await;
    let status = updater.status()?;
    if json {
        let doc = serde_json::json!({
            "outcome": outcome.as_ref().map(|o| o.to_string()).map_err(|e| e.to_string()),
            "status": status,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        match &outcome {
            Ok(o) => println!("{o}"),
            Err(e) => println!("check failed: {e}"),
        }
        println!(
            "running {} on channel {} ({}); floor {}",
            status.running_version,
            status.channel,
            status.target,
            status.floor.as_deref().unwrap_or("none")
        );
        if let Some(p) = &status.pending {
            println!("pending: {p}");
        }
        if let Some(r) = &status.last_rollback {
            println!(
                "last rollback: {} → {} ({})",
                r.version, r.restored, r.reason
            );
        }
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `update apply`.
pub async fn update_apply(config: Option<PathBuf>) -> Result<ExitCode> {
    let cfg = load_config(&config_path(config))?;
    init_logging(cfg.agent.log_level.as_deref());
    let updater = updater(&cfg)?;
    match updater.update().await? {
        crate::update::UpdateOutcome::NotApplied(o) => {
            println!("{o}");
            Ok(ExitCode::SUCCESS)
        }
        crate::update::UpdateOutcome::Applied(a) => {
            println!("{a:?}");
            println!(
                "start (or restart) the service to run the new version; it rolls back by itself if the new version does not become healthy"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `update rollback`.
pub async fn update_rollback(config: Option<PathBuf>, reason: &str) -> Result<ExitCode> {
    let cfg = load_config(&config_path(config))?;
    init_logging(cfg.agent.log_level.as_deref());
    let record = updater(&cfg)?.rollback(reason)?;
    println!(
        "rolled back {} → {}: {}",
        record.version, record.restored, record.reason
    );
    Ok(ExitCode::SUCCESS)
}

/// `update install-staged` (root, package installs).
pub async fn update_install_staged(state_dir: &Path) -> Result<ExitCode> {
    init_logging(None);
    let opts = crate::update::StagedInstall::package_defaults(state_dir);
    match crate::update::install_staged(&opts).await? {
        crate::update::StagedInstallOutcome::NothingStaged => println!("nothing staged"),
        crate::update::StagedInstallOutcome::Installed(p) => println!("installed {}", p.version),
    }
    Ok(ExitCode::SUCCESS)
}

/// `demo`: see [`crate::demo`].
#[cfg(feature = "demo")]
pub async fn demo(dir: PathBuf, tour: bool) -> Result<ExitCode> {
    crate::demo::run(&dir, tour).await
}

#[cfg(not(feature = "demo"))]
pub async fn demo(_dir: PathBuf, _tour: bool) -> Result<ExitCode> {
    bail!("this build has no demo (built without the `demo` feature)")
}
