//! `arbosync-agent demo`: the newcomer's tour. Starts the Loket simulator in-process with a few
//! employers, writes a configuration into the demo directory, stores the simulator's refresh token
//! encrypted, runs a full sync into `<dir>/arbodienst.db`, then changes some data at the "source"
//! (a new sick report, a partial recovery, an hours change) and runs an incremental sync that picks
//! up exactly those changes. Everything stays in the directory for inspection.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::Days;
use uuid::Uuid;

use crate::cli::{exit_code, init_logging, open_stores, print_summary};
use crate::config::Config;
use crate::sync::{PassOptions, sync_pass};

/// Seed of the demo dataset: the same employers and people every time.
const DEMO_SEED: u64 = 2026;
const DEMO_EMPLOYERS: usize = 4;

pub async fn run(dir: &Path) -> Result<ExitCode> {
    init_logging(Some("warn"));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;

    let sim = loket_sim::start(loket_sim::SimConfig {
        seed: DEMO_SEED,
        employers: DEMO_EMPLOYERS,
        employees_per_employer: 40,
        ..Default::default()
    })
    .await
    .context("cannot start the Loket simulator")?;

    let config_path = dir.join("agent.toml");
    std::fs::write(&config_path, demo_config(&dir, &sim))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let cfg = Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stores = open_stores(&cfg).await?;
    // A fresh simulator issues a fresh refresh token: store it as `connect --refresh-token-stdin` would.
    stores.secrets.save("demo", &sim.refresh_token)?;

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

    let db = dir.join("arbodienst.db");
    println!();
    println!("The database stays for inspection: {}", db.display());
    println!(
        "  sqlite3 {} 'select seq, entity, op, changed_fields from mutation order by seq desc limit 10'",
        db.display()
    );
    sim.shutdown().await;
    Ok(exit_code(&outcomes))
}

fn demo_config(dir: &Path, sim: &loket_sim::RunningSim) -> String {
    let mut text = format!(
        r#"# Written by `arbosync-agent demo`; the simulator's address changes every run.
[agent]
state_dir = "{state}"
socket = "{socket}"
max_concurrent_employers = 2

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
