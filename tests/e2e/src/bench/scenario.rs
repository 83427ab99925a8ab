//! One repetition of B1, B2, B6 and B3 on a fresh simulator, state directory and database:
//!
//! 1. B1: `sync --once` on an empty state and database (every employer a full run);
//! 2. B2: `sync --once` again with nothing changed at the source (incremental runs);
//! 3. B6: the naive full-fetch client over the same, unchanged data;
//! 4. B3: 1% of the employments change (new working hours or a department change from today) and
//!    20 employees report sick, then `sync --once`.
//!
//! Requests are counted twice: by the simulator (every `/v2` request it received, the ground
//! truth) and by the agent's `--json` output (per employer; the one employer-version-numbers
//! request of the pass belongs to no employer).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use arbosync_agent::sync::run::{CALENDAR_WINDOW_AFTER_DAYS, CALENDAR_WINDOW_BEFORE_DAYS};
use chrono::Days;
use loket_sim::{SimConfig, SimHandle, Uuid, World, active_on};

use super::agent::{self, ConfigSpec, SyncRun};
use super::args::Settings;
use super::db::BenchDb;
use super::naive::{self, NaiveRun};

/// Sick reports created for B3.
pub const NEW_ABSENCES: usize = 20;

/// The simulator's dataset, counted from its truth.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dataset {
    pub employers: usize,
    pub employees: usize,
    pub employments: usize,
    pub absences: usize,
    /// Absences without an end (`endOfAbsence` empty).
    pub open_absences: usize,
    /// Employees with at least one open absence.
    pub employees_with_open_absence: usize,
    /// Employees with an absence in the agent's calendar window (open, or ended at most
    /// `CALENDAR_WINDOW_BEFORE_DAYS` ago, or starting at most `CALENDAR_WINDOW_AFTER_DAYS` ahead):
    /// the people in the calendar an incremental run reads (it asks only those with an open
    /// absence or changed days).
    pub employees_in_calendar_window: usize,
}

impl Dataset {
    fn of(world: &World) -> Dataset {
        let open = world
            .absences
            .values()
            .filter(|a| a.end_of_absence.is_none())
            .count();
        let with_open = world
            .employees
            .values()
            .filter(|e| {
                e.absence_ids.iter().any(|a| {
                    world
                        .absences
                        .get(a)
                        .is_some_and(|x| x.end_of_absence.is_none())
                })
            })
            .count();
        let from = world.today - Days::new(CALENDAR_WINDOW_BEFORE_DAYS);
        let to = world.today + Days::new(CALENDAR_WINDOW_AFTER_DAYS);
        let in_window = world
            .employees
            .values()
            .filter(|e| {
                e.absence_ids.iter().any(|a| {
                    world.absences.get(a).is_some_and(|x| {
                        x.first_day().is_some_and(|d| d <= to)
                            && x.last_day().is_none_or(|d| d >= from)
                    })
                })
            })
            .count();
        Dataset {
            employees_in_calendar_window: in_window,
            employers: world.employers.len(),
            employees: world.employees.len(),
            employments: world.employments.len(),
            absences: world.absences.len(),
            open_absences: open,
            employees_with_open_absence: with_open,
        }
    }

    /// The B2 target: `1 + 2 × employers + open absences`.
    pub fn b2_target(&self) -> u64 {
        1 + 2 * self.employers as u64 + self.open_absences as u64
    }
}

/// What the simulator saw during one phase.
#[derive(Debug, Clone, Default)]
pub struct SimCount {
    pub requests: u64,
    pub token_requests: u64,
    pub by_template: BTreeMap<String, u64>,
}

impl SimCount {
    fn take(handle: &SimHandle) -> SimCount {
        let s = handle.stats();
        SimCount {
            requests: s.total,
            token_requests: s.token_requests,
            by_template: s.by_template,
        }
    }
}

/// One agent phase (B1, B2 or B3).
#[derive(Debug, Clone)]
pub struct AgentPhase {
    pub run: SyncRun,
    pub sim: SimCount,
}

impl AgentPhase {
    pub fn wall_s(&self) -> f64 {
        self.run.wall.as_secs_f64()
    }
    pub fn rss_mb(&self) -> f64 {
        self.run.peak_rss_kib as f64 / 1024.0
    }
}

/// The B3 changes made at the source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Changes {
    pub hours: usize,
    pub departments: usize,
    pub absences: usize,
    pub employers_touched: usize,
}

impl Changes {
    pub fn employments(&self) -> usize {
        self.hours + self.departments
    }
}

/// Everything one repetition measured.
#[derive(Debug, Clone)]
pub struct Repetition {
    pub data: Dataset,
    pub b1: AgentPhase,
    pub b2: AgentPhase,
    pub b6: NaiveRun,
    pub b6_sim: SimCount,
    pub changes: Changes,
    pub b3: AgentPhase,
}

/// Runs one repetition; `rep` numbers the temporary files.
pub async fn repetition(settings: &Settings, bin: &Path, rep: usize) -> Result<Repetition> {
    let sim = loket_sim::start(SimConfig {
        seed: settings.seed,
        employers: settings.employers,
        employees_per_employer: settings.employees,
        latency_ms: settings.latency_ms,
        ..Default::default()
    })
    .await
    .context("the simulator does not start")?;
    let handle = sim.state();
    let dir = tempfile::Builder::new()
        .prefix(&format!("arbosync-bench-{rep}-"))
        .tempdir()
        .context("cannot create a temporary directory")?;
    let db = BenchDb::create(settings.db, dir.path(), &settings.pg_url, "sync").await?;
    let result = async {
        let config = agent::write_config(
            dir.path(),
            &ConfigSpec {
                state_dir: &dir.path().join("state"),
                db_url: db.url(),
                api_url: &sim.api_url,
                oauth_url: &sim.oauth_url,
                client_id: &sim.client_id,
                employer_ids: &sim.employer_ids,
            },
            settings,
        )?;
        let bin = bin.to_path_buf();
        {
            let (bin, config, token) = (bin.clone(), config.clone(), sim.refresh_token.clone());
            tokio::task::spawn_blocking(move || agent::connect(&bin, &config, &token))
                .await
                .context("the connect task panicked")??;
        }
        let timeout = Duration::from_secs(settings.timeout_secs);
        let data = handle.with_world(Dataset::of);

        eprintln!("  B1: initial sync of {} employers ...", data.employers);
        let b1 = phase(&handle, &bin, &config, dir.path(), "b1", timeout).await?;
        expect_kinds(&b1, "full", settings.employers, "B1")?;
        eprintln!("      {:.1} s, {} requests", b1.wall_s(), b1.sim.requests);

        eprintln!("  B2: no-change incremental run ...");
        let b2 = phase(&handle, &bin, &config, dir.path(), "b2", timeout).await?;
        expect_kinds(&b2, "incremental", settings.employers, "B2")?;
        eprintln!("      {:.1} s, {} requests", b2.wall_s(), b2.sim.requests);

        eprintln!("  B6: naive full fetch ...");
        let client = naive::client(&sim, handle.mint_refresh_token(), settings.parallel)?;
        handle.reset_stats();
        let b6 = naive::full_fetch(&client, settings.concurrent_employers).await?;
        let b6_sim = SimCount::take(&handle);
        eprintln!(
            "      {:.1} s, {} requests",
            b6.wall.as_secs_f64(),
            b6_sim.requests
        );

        let changes = change_source(&handle)?;
        eprintln!(
            "  B3: {} employments changed, {} new absences ...",
            changes.employments(),
            changes.absences
        );
        let b3 = phase(&handle, &bin, &config, dir.path(), "b3", timeout).await?;
        eprintln!("      {:.1} s, {} requests", b3.wall_s(), b3.sim.requests);
        Ok::<_, anyhow::Error>(Repetition {
            data,
            b1,
            b2,
            b6,
            b6_sim,
            changes,
            b3,
        })
    }
    .await;
    let dropped = db.drop_db().await;
    sim.shutdown().await;
    let rep = result?;
    dropped?;
    Ok(rep)
}

async fn phase(
    handle: &SimHandle,
    bin: &Path,
    config: &Path,
    dir: &Path,
    name: &str,
    timeout: Duration,
) -> Result<AgentPhase> {
    handle.reset_stats();
    let (bin, config): (PathBuf, PathBuf) = (bin.to_path_buf(), config.to_path_buf());
    let log = dir.join(format!("{name}.log"));
    let run = tokio::task::spawn_blocking(move || agent::sync_once(&bin, &config, &log, timeout))
        .await
        .context("the sync task panicked")?
        .with_context(|| format!("{} failed", name.to_uppercase()))?;
    Ok(AgentPhase {
        run,
        sim: SimCount::take(handle),
    })
}

fn expect_kinds(p: &AgentPhase, kind: &str, employers: usize, what: &str) -> Result<()> {
    ensure!(
        p.run.doc.employers.len() == employers,
        "{what}: the agent reported {} employers, expected {employers}",
        p.run.doc.employers.len()
    );
    if let Some(other) = p.run.doc.employers.iter().find(|e| e.kind != kind) {
        bail!(
            "{what}: employer {} ran as `{}`, expected `{kind}`",
            other.employer_id,
            other.kind
        );
    }
    Ok(())
}

/// B3's changes: 1% of the employments (at least one) — alternately new working hours and a
/// department change, both from today — spread evenly over the employments active today, and
/// [`NEW_ABSENCES`] new sick reports of employees without an open absence.
fn change_source(handle: &SimHandle) -> Result<Changes> {
    let world = handle.truth();
    let today = world.today;
    let active: Vec<Uuid> = world
        .employments
        .values()
        .filter(|e| e.start_date < today && e.end_date.is_none_or(|end| end >= today))
        .map(|e| e.id)
        .collect();
    ensure!(
        !active.is_empty(),
        "B3: the dataset has no employment active today"
    );
    let wanted = world
        .employments
        .len()
        .div_ceil(100)
        .max(1)
        .min(active.len());
    let stride = (active.len() / wanted).max(1);
    let mut changes = Changes::default();
    let mut employers = std::collections::BTreeSet::new();
    for (i, id) in active.iter().step_by(stride).take(wanted).enumerate() {
        let e = &world.employments[id];
        employers.insert(e.employer_id);
        let other_department = world
            .employers
            .iter()
            .find(|x| x.id == e.employer_id)
            .and_then(|x| {
                let current = active_on(&e.organizational_entities, today).map(|o| o.department_id);
                x.departments
                    .iter()
                    .find(|d| Some(d.id) != current)
                    .map(|d| d.id)
            });
        match other_department {
            Some(dep) if i % 2 == 1 => {
                handle
                    .change_department(*id, today, dep)
                    .map_err(|e| anyhow::anyhow!("B3: change_department: {e}"))?;
                changes.departments += 1;
            }
            _ => {
                let current = active_on(&e.working_hours, today)
                    .map(|w| w.aggregated_hours_per_week)
                    .unwrap_or(32.0);
                let hours = if current >= 36.0 {
                    current - 8.0
                } else {
                    current + 4.0
                };
                handle
                    .add_working_hours(*id, today, hours)
                    .map_err(|e| anyhow::anyhow!("B3: add_working_hours: {e}"))?;
                changes.hours += 1;
            }
        }
    }
    let healthy: Vec<Uuid> = world
        .employees
        .values()
        .filter(|p| {
            p.employment_ids.iter().any(|id| {
                world
                    .employments
                    .get(id)
                    .is_some_and(|e| e.start_date <= today && e.end_date.is_none_or(|x| x >= today))
            }) && p.absence_ids.iter().all(|a| {
                world
                    .absences
                    .get(a)
                    .is_none_or(|x| x.end_of_absence.is_some())
            })
        })
        .map(|p| p.id)
        .collect();
    let n = NEW_ABSENCES.min(healthy.len());
    if let Some(stride) = healthy.len().checked_div(n) {
        for id in healthy.iter().step_by(stride).take(n) {
            handle
                .create_absence(*id, today, None, None)
                .map_err(|e| anyhow::anyhow!("B3: create_absence: {e}"))?;
            employers.insert(world.employees[id].employer_id);
            changes.absences += 1;
        }
    }
    changes.employers_touched = employers.len();
    Ok(changes)
}
