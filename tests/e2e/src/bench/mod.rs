//! The parts of `arbosync-bench` (see `src/bin/arbosync-bench.rs`):
//!
//! - [`args`]: the command line and the `--quick` defaults;
//! - [`agent`]: the real agent binary — configuration, `connect`, `sync --once --json` with
//!   wall time and peak RSS;
//! - [`db`]: the SQLite file or fresh PostgreSQL database of a measurement;
//! - [`scenario`]: one repetition of B1, B2, B6 and B3 against the in-process simulator;
//! - [`naive`]: B6, the naive full-fetch client;
//! - [`apply`]: B4, `Sink::apply` throughput with generated records;
//! - [`report`]: the markdown table; [`stats`]: medians and number formats;
//!   [`machine`]: what it ran on.
//!
//! Progress goes to standard error, the report to standard output. Targets are reported with a
//! verdict, never asserted: a run fails only when something did not work.

pub mod agent;
pub mod apply;
pub mod args;
pub mod db;
pub mod machine;
pub mod naive;
pub mod report;
pub mod scenario;
pub mod stats;

use anyhow::{Context, Result};

use args::Backend;

/// Runs every benchmark and prints the report.
pub async fn run(args: args::Args) -> Result<()> {
    let settings = args.settings()?;
    let command = args::command_line();
    let bin = agent::locate(settings.agent_bin.as_deref())?;
    let machine = machine::Machine::detect();
    let load_start = machine::load_average();
    let revision = machine::source_revision();
    eprintln!(
        "arbosync-bench: {} employers × {} employees, {} ms latency, {} run(s); agent {}",
        settings.employers,
        settings.employees,
        settings.latency_ms,
        settings.runs,
        bin.display()
    );

    // B4 first: it is short, and fails early when PostgreSQL is unreachable.
    let scratch = tempfile::Builder::new()
        .prefix("arbosync-bench-apply-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut sqlite = Vec::new();
    let mut postgres = Vec::new();
    for rep in 0..settings.runs {
        for (backend, into) in [
            (Backend::Sqlite, &mut sqlite),
            (Backend::Postgres, &mut postgres),
        ] {
            eprintln!(
                "run {}/{}: B4 apply {} rows into {} ...",
                rep + 1,
                settings.runs,
                settings.apply_rows,
                backend.name()
            );
            let r = apply::measure(
                backend,
                scratch.path(),
                &settings.pg_url,
                settings.apply_rows,
                &format!("apply{rep}"),
            )
            .await
            .with_context(|| format!("B4 on {}", backend.name()))?;
            eprintln!(
                "      insert {:.0} rows/s, unchanged {:.0} rows/s, update {:.0} rows/s",
                r.rate(r.insert),
                r.rate(r.unchanged),
                r.rate(r.update)
            );
            into.push(r);
        }
    }
    drop(scratch);

    let mut reps = Vec::new();
    for rep in 0..settings.runs {
        eprintln!("run {}/{}: sync benchmarks", rep + 1, settings.runs);
        reps.push(scenario::repetition(&settings, &bin, rep).await?);
    }
    let load_end = machine::load_average();

    let text = report::render(&report::Inputs {
        settings: &settings,
        machine: &machine,
        command: &command,
        agent_bin: &bin.display().to_string(),
        revision: revision.as_deref(),
        load_start: &load_start,
        load_end: &load_end,
        reps: &reps,
        sqlite: &sqlite,
        postgres: &postgres,
    });
    println!("{text}");
    if let Some(path) = &settings.out {
        std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
