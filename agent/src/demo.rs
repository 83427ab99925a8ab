//! `arbosync-agent demo`: the newcomer's tour. Starts the Loket simulator in-process with a few
//! employers, writes a configuration into the demo directory and stores the simulator's refresh
//! token encrypted. Then, on a terminal, it runs the real service (scheduler, control socket) and
//! opens the dashboard on it while the simulator keeps producing changes (sick reports,
//! recoveries, hours changes); quitting the dashboard stops everything. Without a terminal (or
//! with `--tour`) it prints a scripted tour instead: a full sync, a few changes at the source, and
//! an incremental sync that picks up exactly those. The SQLite file `<dir>/arbodienst.db` stays
//! for inspection either way.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Days;
use uuid::Uuid;

use crate::cli::{exit_code, init_logging, open_stores, print_summary};
use crate::config::Config;
use crate::sync::{PassOptions, sync_pass};

/// Seed of the demo dataset: the same employers and people every time.
const DEMO_SEED: u64 = 2026;
const DEMO_EMPLOYERS: usize = 4;

/// Seconds between two changes the simulator makes while the dashboard is open.
const LIVE_CHANGE_EVERY: Duration = Duration::from_secs(6);

/// The live demo when standard output is a terminal and `tour` is not asked for; else the tour.
pub async fn run(dir: &Path, tour: bool) -> Result<ExitCode> {
    if tour || !std::io::stdout().is_terminal() {
        return run_tour(dir).await;
    }
    run_live(dir).await
}

/// The service and the dashboard on a simulated Loket that keeps changing.
async fn run_live(dir: &Path) -> Result<ExitCode> {
    let (dir, sim, config_path) = prepare(dir, true).await?;
    let socket = dir.join("agent.sock");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let service = tokio::spawn({
        let options = crate::service::ServiceOptions {
            shutdown: shutdown.clone(),
            stderr_logs: false,
        };
        let config_path = config_path.clone();
        async move { crate::service::run_with(&config_path, options).await }
    });
    // Wait for the control socket before the dashboard connects (it would retry anyway).
    for _ in 0..100 {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() || service.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let source = tokio::spawn(keep_changing(sim.state(), sim.employer_ids.clone()));
    let dashboard = arbosync_tui::dashboard::run(socket).await;
    source.abort();
    shutdown.cancel();
    let served = service.await;
    sim.shutdown().await;
    dashboard?;
    match served {
        Ok(result) => {
            result?;
        }
        Err(e) => anyhow::bail!("the demo service task failed: {e}"),
    }
    let db = dir.join("arbodienst.db");
    println!("The demo database stays for inspection: {}", db.display());
    println!(
        "  sqlite3 {} 'select seq, entity, op, changed_fields from mutation order by seq desc limit 10'",
        db.display()
    );
    println!("Logs: {}", dir.join("logs").display());
    Ok(ExitCode::SUCCESS)
}

/// Makes one change at the source every few seconds, cycling through the kinds of change an
/// arbodienst sees: new sick reports, partial and full recoveries, and hours changes.
async fn keep_changing(handle: loket_sim::SimHandle, employers: Vec<String>) {
    let mut step = 0usize;
    loop {
        tokio::time::sleep(LIVE_CHANGE_EVERY).await;
        let world = handle.truth();
        let today = world.today;
        let employer = employers
            .get(step % employers.len().max(1))
            .and_then(|s| Uuid::parse_str(s).ok());
        let of_employer = |employee: Uuid| {
            world
                .employees
                .get(&employee)
                .is_some_and(|e| Some(e.employer_id) == employer)
        };
        let open = world
            .absences
            .values()
            .find(|a| a.end_of_absence.is_none() && of_employer(a.employee_id));
        let _ = match step % 4 {
            0 => world
                .employees
                .values()
                .find(|e| {
                    Some(e.employer_id) == employer
                        && e.absence_ids.iter().all(|a| {
                            world
                                .absences
                                .get(a)
                                .is_none_or(|x| x.end_of_absence.is_some())
                        })
                })
                .map(|e| handle.create_absence(e.id, today, None, None).map(|_| ())),
            1 => open.map(|a| handle.add_absence_progress(a.id, today, 50).map(|_| ())),
            2 => open.map(|a| handle.close_absence(a.id, today, None).map(|_| ())),
            _ => world
                .employments
                .values()
                .find(|e| e.end_date.is_none() && of_employer(e.employee_id))
                .map(|e| {
                    handle
                        .add_working_hours(
                            e.id,
                            today + Days::new(1),
                            32.0 - (step % 3) as f64 * 4.0,
                        )
                        .map(|_| ())
                }),
        };
        step += 1;
    }
}

/// Starts the simulator, writes the configuration and stores the token.
async fn prepare(
    dir: &Path,
    live: bool,
) -> Result<(
    std::path::PathBuf,
    loket_sim::RunningSim,
    std::path::PathBuf,
)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let sim = loket_sim::start(loket_sim::SimConfig {
        seed: DEMO_SEED,
        employers: DEMO_EMPLOYERS,
        employees_per_employer: 40,
        latency_ms: if live { 20 } else { 0 },
        ..Default::default()
    })
    .await
    .context("cannot start the Loket simulator")?;
    let config_path = dir.join("agent.toml");
    std::fs::write(&config_path, demo_config(&dir, &sim, live))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let cfg = Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(&cfg.agent.state_dir)?;
    // A fresh simulator issues a fresh refresh token: store it as `connect --refresh-token-stdin` would.
    crate::secrets::SecretStore::open(&cfg.agent.state_dir)?.save("demo", &sim.refresh_token)?;
    Ok((dir, sim, config_path))
}

/// The scripted tour, printed.
async fn run_tour(dir: &Path) -> Result<ExitCode> {
    init_logging(Some("warn"));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (_, sim, config_path) = prepare(dir, false).await?;
    let cfg = Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stores = open_stores(&cfg).await?;

    println!(
        "arbosync demo: simulated Loket at {} with {} employers",
        sim.api_url,
        sim.employer_ids.len()
    );
    println!("configuration: {}", config_path.display());
    println!();
    println!("1. Full sync of every active employer:");
    let full = PassOptions {
        full: true,
        ..Default::default()
    };
    let outcomes = sync_pass(
        &cfg,
        stores.sink.clone(),
        stores.state.clone(),
        stores.secrets.clone(),
        &full,
    )
    .await?;
    print_summary(&cfg, &outcomes);

    println!();
    println!("2. At the source: a new sick report, a partial recovery and an hours change.");
    let changes = change_the_source(&sim).context("cannot change the simulated data")?;
    for c in &changes {
        println!("   - {c}");
    }
    println!();
    println!("3. Incremental sync (only what changed is fetched):");
    let incremental = PassOptions::default();
    let outcomes = sync_pass(
        &cfg,
        stores.sink.clone(),
        stores.state.clone(),
        stores.secrets.clone(),
        &incremental,
    )
    .await?;
    print_summary(&cfg, &outcomes);

    let db = cfg
        .agent
        .state_dir
        .parent()
        .unwrap_or(&cfg.agent.state_dir)
        .join("arbodienst.db");
    println!();
    println!("The database stays for inspection: {}", db.display());
    println!(
        "  sqlite3 {} 'select seq, entity, op, changed_fields from mutation order by seq desc limit 10'",
        db.display()
    );
    sim.shutdown().await;
    Ok(exit_code(&outcomes))
}

fn demo_config(dir: &Path, sim: &loket_sim::RunningSim, live: bool) -> String {
    // Live: short intervals so the dashboard shows runs coming and going.
    let schedule = if live {
        format!(
            "interval = \"15s\"\nfull_reconcile_interval = \"5m\"\nlog_dir = \"{}\"\nshutdown_grace = \"3s\"\n",
            dir.join("logs").display()
        )
    } else {
        String::new()
    };
    let mut text = format!(
        r#"# Written by `arbosync-agent demo`; the simulator's address changes every run.
[agent]
state_dir = "{state}"
socket = "{socket}"
max_concurrent_employers = 2
{schedule}
[database]
url = "sqlite://{db}"

[[connection]]
name = "demo"
api_url = "{api}"
oauth_url = "{oauth}"
client_id = "{client}"
requests_per_second = 200.0
max_parallel_requests = 8
"#,
        state = dir.join("state").display(),
        socket = dir.join("agent.sock").display(),
        db = dir.join("arbodienst.db").display(),
        api = sim.api_url,
        oauth = sim.oauth_url,
        client = sim.client_id,
    );
    // Four employers, four option sets: from privacy-minimal to everything allowed.
    let options = [
        (
            "all_employments = true\nsalary = true\nbsn = true",
            "all data",
        ),
        ("", "privacy-minimal defaults"),
        ("all_employments = true", "all employments"),
        ("all_employments = true\nabsences = false", "no absences"),
    ];
    for (i, id) in sim.employer_ids.iter().enumerate() {
        let (opts, label) = options[i % options.len()];
        text.push_str(&format!(
            "\n[[employer]]\nid = \"{id}\"\nconnection = \"demo\"\nname = \"Demo {n} ({label})\"\nactive = true\n{opts}\n",
            n = i + 1
        ));
    }
    text
}

/// Changes a little data in the simulator and says what, in words an operator understands.
fn change_the_source(sim: &loket_sim::RunningSim) -> Result<Vec<String>> {
    let handle = sim.state();
    let world = handle.truth();
    let today = world.today;
    let mut said = Vec::new();
    let first_employer = sim
        .employer_ids
        .first()
        .and_then(|s| Uuid::parse_str(s).ok())
        .context("the simulator has no employers")?;
    // A new sick report for someone without an open absence.
    if let Some(emp) = world.employees.values().find(|e| {
        e.employer_id == first_employer
            && e.absence_ids.iter().all(|a| {
                world
                    .absences
                    .get(a)
                    .is_none_or(|x| x.end_of_absence.is_some())
            })
    }) {
        handle.create_absence(emp.id, today, None, None)?;
        said.push(format!(
            "employee #{} reported sick today",
            emp.employee_number
        ));
    }
    // A partial recovery of an open absence.
    if let Some(absence) = world.absences.values().find(|a| {
        a.end_of_absence.is_none()
            && a.progress
                .last()
                .is_some_and(|p| p.incapacity_percentage == 100 && p.start_date < today)
            && world
                .employees
                .get(&a.employee_id)
                .is_some_and(|e| e.employer_id == first_employer)
    }) {
        handle.add_absence_progress(absence.id, today, 50)?;
        said.push("an open absence became a 50% partial recovery".to_string());
    }
    // An hours change from tomorrow.
    if let Some(employment) = world
        .employments
        .values()
        .find(|e| e.end_date.is_none() && e.start_date <= today)
    {
        handle.add_working_hours(employment.id, today + Days::new(1), 24.0)?;
        said.push("an employment goes to 24 hours a week from tomorrow".to_string());
    }
    Ok(said)
}
