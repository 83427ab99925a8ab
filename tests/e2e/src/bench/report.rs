//! The markdown report: the B1–B6 table with medians and verdicts against issue 7's targets, the
//! machine and the command, every run's raw values, and the request mix per endpoint.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::agent::REQUESTS_PER_SECOND;
use super::apply::ApplyRun;
use super::args::Settings;
use super::machine::Machine;
use super::scenario::Repetition;
use super::stats::{all, int, median, median_of, ratio, secs};

/// B1 wall time may be at most this multiple of the lower bound.
pub const B1_MAX_RATIO: f64 = 1.3;
/// B6 must need at least this many times the requests of B2.
pub const B2_MIN_FACTOR: f64 = 20.0;
/// B4 insert throughput into SQLite, rows per second.
pub const B4_MIN_SQLITE_ROWS_PER_S: f64 = 20_000.0;
/// B5 peak RSS budget in MB (MiB).
pub const B5_MAX_MB: f64 = 64.0;

/// Everything the report needs.
pub struct Inputs<'a> {
    pub settings: &'a Settings,
    pub machine: &'a Machine,
    pub command: &'a str,
    pub agent_bin: &'a str,
    pub revision: Option<&'a str>,
    pub load_start: &'a str,
    pub load_end: &'a str,
    pub reps: &'a [Repetition],
    pub sqlite: &'a [ApplyRun],
    pub postgres: &'a [ApplyRun],
}

/// The B1 lower bound in seconds: every request costs the latency, and at most
/// `max_parallel_requests` are in flight on the one connection all employers share.
pub fn lower_bound_s(requests: f64, latency_ms: u64, parallel: usize) -> f64 {
    requests * latency_ms as f64 / 1000.0 / parallel as f64
}

fn verdict(s: &Settings, met: bool) -> &'static str {
    if s.quick {
        "not judged (--quick)"
    } else if met {
        "**met**"
    } else {
        "**missed**"
    }
}

pub fn render(i: &Inputs<'_>) -> String {
    let s = i.settings;
    let reps = i.reps;
    let mut out = String::new();
    let n = reps.len();
    let data = reps.first().map(|r| r.data).unwrap_or_default();

    // --- medians
    let b1_wall = median_of(reps, |r| r.b1.wall_s());
    let b1_req = median_of(reps, |r| r.b1.sim.requests as f64);
    let b1_bounds: Vec<f64> = reps
        .iter()
        .map(|r| lower_bound_s(r.b1.sim.requests as f64, s.latency_ms, s.parallel))
        .collect();
    let b1_ratios: Vec<f64> = reps
        .iter()
        .zip(&b1_bounds)
        .map(|(r, b)| r.b1.wall_s() / b)
        .collect();
    let b1_bound = median(&b1_bounds);
    let b1_ratio = median(&b1_ratios);
    let b1_rows = median_of(reps, |r| r.b1.run.doc.inserted() as f64);
    let b2_req = median_of(reps, |r| r.b2.sim.requests as f64);
    let b2_wall = median_of(reps, |r| r.b2.wall_s());
    let b2_changed = reps
        .iter()
        .map(|r| r.b2.run.doc.inserted() + r.b2.run.doc.updated() + r.b2.run.doc.deleted())
        .max()
        .unwrap_or(0);
    let b2_target = median_of(reps, |r| r.data.b2_target() as f64);
    let b6_req = median_of(reps, |r| r.b6_sim.requests as f64);
    let b6_wall = median_of(reps, |r| r.b6.wall.as_secs_f64());
    let b6_over_b2: Vec<f64> = reps
        .iter()
        .map(|r| r.b6_sim.requests as f64 / (r.b2.sim.requests.max(1)) as f64)
        .collect();
    let b1_over_b6: Vec<f64> = reps
        .iter()
        .map(|r| r.b1.wall_s() / r.b6.wall.as_secs_f64().max(1e-9))
        .collect();
    let b3_req = median_of(reps, |r| r.b3.sim.requests as f64);
    let b3_wall = median_of(reps, |r| r.b3.wall_s());
    let b5 = median_of(reps, |r| r.b1.rss_mb());
    let b5_max = reps.iter().map(|r| r.b1.rss_mb()).fold(0.0, f64::max);
    let changes = reps.first().map(|r| r.changes).unwrap_or_default();
    let sqlite_insert = median_of(i.sqlite, |a| a.rate(a.insert));
    let pg_insert = median_of(i.postgres, |a| a.rate(a.insert));

    // --- header
    let _ = writeln!(out, "## arbosync benchmarks (issue 7, B1–B6)\n");
    let _ = writeln!(out, "- Command: `{}`", i.command);
    let _ = writeln!(out, "- Machine: {}", i.machine.describe());
    let _ = writeln!(
        out,
        "- Load average (1/5/15 min) at start: {}, at end: {} (the machine is shared)",
        i.load_start, i.load_end
    );
    let _ = writeln!(
        out,
        "- Agent binary: `{}`{}",
        i.agent_bin,
        i.revision
            .map(|r| format!(", source tree at git {r}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "- Data: loket-sim seed {}, {} employers × {} employees = {} employees, {} employments, {} absences ({} open, {} employees with an open absence, {} with an absence in the agent's calendar window); page size 250",
        s.seed,
        s.employers,
        s.employees,
        int(data.employees as f64),
        int(data.employments as f64),
        int(data.absences as f64),
        int(data.open_absences as f64),
        int(data.employees_with_open_absence as f64),
        int(data.employees_in_calendar_window as f64),
    );
    let _ = writeln!(
        out,
        "- Agent configuration: one connection with `max_parallel_requests = {}` and `requests_per_second = {}` (so the rate limit never binds), `max_concurrent_employers = {}`; every employer with `all_employments`, `absences` and `salary` on (BSN off); B1–B3 write into {}",
        s.parallel,
        REQUESTS_PER_SECOND,
        s.concurrent_employers,
        s.db.name()
    );
    let _ = writeln!(
        out,
        "- {}: each on a fresh simulator, state directory and database; the table shows medians",
        if n == 1 {
            "1 run".to_string()
        } else {
            format!("{n} runs")
        }
    );
    let _ = writeln!(
        out,
        "- Requests are counted by the simulator (every `/v2` request it received, retries included; the OAuth token request is not a `/v2` request)\n"
    );

    // --- the table
    let _ = writeln!(out, "| # | Benchmark | Result | Target | Verdict |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "| B1 | Initial sync, {} × {} at {} ms latency | **{}** wall, {} requests, {} rows inserted; lower bound {} req × {} ms / {} = {} → **{}** | ≤ {:.1}× lower bound | {} |",
        s.employers,
        s.employees,
        s.latency_ms,
        secs(b1_wall),
        int(b1_req),
        int(b1_rows),
        int(b1_req),
        s.latency_ms,
        s.parallel,
        secs(b1_bound),
        ratio(b1_ratio),
        B1_MAX_RATIO,
        verdict(s, b1_ratio <= B1_MAX_RATIO)
    );
    let _ = writeln!(
        out,
        "| B2 | No-change incremental run | **{} requests**, {} wall, {} rows written; the absence lists of {} employees were read ({} have an open absence; of the {} with an absence between {} days ago and {} days ahead, the others' days were unchanged in the calendar) | ≤ 1 + 2 × {} + {} open absences = {} | {} |",
        int(b2_req),
        secs(b2_wall),
        int(b2_changed as f64),
        int(median_of(reps, |r| {
            r.b2.sim
                .by_template
                .iter()
                .filter(|(k, _)| k.ends_with("/{employeeId}/absences"))
                .map(|(_, v)| *v as f64)
                .sum()
        })),
        int(data.employees_with_open_absence as f64),
        int(data.employees_in_calendar_window as f64),
        arbosync_agent::sync::run::CALENDAR_WINDOW_BEFORE_DAYS,
        arbosync_agent::sync::run::CALENDAR_WINDOW_AFTER_DAYS,
        data.employers,
        data.open_absences,
        int(b2_target),
        verdict(s, b2_req <= b2_target)
    );
    let _ = writeln!(
        out,
        "| B2 : B6 | Requests of the no-change run vs the naive full fetch | **{} fewer** ({} vs {}) | ≥ {:.0}× fewer | {} |",
        ratio(median(&b6_over_b2)),
        int(b2_req),
        int(b6_req),
        B2_MIN_FACTOR,
        verdict(s, median(&b6_over_b2) >= B2_MIN_FACTOR)
    );
    let _ = writeln!(
        out,
        "| B3 | After changes to 1% of employments ({} hours, {} departments) and {} new absences, in {} employers | **{} requests**, {} wall; {} inserted, {} updated | — | — |",
        changes.hours,
        changes.departments,
        changes.absences,
        changes.employers_touched,
        int(b3_req),
        secs(b3_wall),
        int(median_of(reps, |r| r.b3.run.doc.inserted() as f64)),
        int(median_of(reps, |r| r.b3.run.doc.updated() as f64)),
    );
    let apply_cell = |runs: &[ApplyRun]| -> String {
        let rows = runs.first().map(|a| a.rows).unwrap_or(0);
        format!(
            "**{} rows/s** insert; {} rows/s unchanged (hash guard), {} rows/s update ({} rows, batches of {})",
            int(median_of(runs, |a| a.rate(a.insert))),
            int(median_of(runs, |a| a.rate(a.unchanged))),
            int(median_of(runs, |a| a.rate(a.update))),
            int(rows as f64),
            arbosync_agent::sync::run::BATCH_SIZE,
        )
    };
    let _ = writeln!(
        out,
        "| B4 | Apply throughput into SQLite (`Sink::apply`) | {} | ≥ {} rows/s | {} |",
        apply_cell(i.sqlite),
        int(B4_MIN_SQLITE_ROWS_PER_S),
        verdict(s, sqlite_insert >= B4_MIN_SQLITE_ROWS_PER_S)
    );
    let _ = writeln!(
        out,
        "| B4 | Apply throughput into PostgreSQL (`Sink::apply`) | {} | — | {} |",
        apply_cell(i.postgres),
        if pg_insert.is_finite() { "—" } else { "n/a" }
    );
    let _ = writeln!(
        out,
        "| B5 | Agent peak RSS during B1 (`VmHWM`) | **{:.1} MB** (max of runs {:.1} MB) | ≤ {:.0} MB | {} |",
        b5,
        b5_max,
        B5_MAX_MB,
        verdict(s, b5 <= B5_MAX_MB)
    );
    let _ = writeln!(
        out,
        "| B6 | Naive full fetch of the same data (peer) | {} requests, {} wall; B1 wall / B6 wall = **{}**, B6 requests / B2 requests = **{}** | — | — |",
        int(b6_req),
        secs(b6_wall),
        ratio(median(&b1_over_b6)),
        ratio(median(&b6_over_b2)),
    );
    let _ = writeln!(out);

    // --- raw values
    let _ = writeln!(out, "Every run (in order):\n");
    let w = |f: &dyn Fn(&Repetition) -> f64| reps.iter().map(f).collect::<Vec<f64>>();
    let _ = writeln!(
        out,
        "- B1 wall: {}; requests: {}; ratio to the bound: {}",
        all(&w(&|r| r.b1.wall_s()), secs),
        all(&w(&|r| r.b1.sim.requests as f64), int),
        all(&b1_ratios, ratio)
    );
    let _ = writeln!(
        out,
        "- B1 requests per the agent's `--json` (sum over employers; the pass's one version-number request belongs to none): {}",
        all(&w(&|r| r.b1.run.doc.requests() as f64), int)
    );
    let _ = writeln!(
        out,
        "- B1 longest single employer run (`duration_ms`): {}; records sent to the retry queue (`failed`): {}; OAuth token requests: {}",
        all(
            &w(&|r| r.b1.run.doc.max_duration_ms() as f64 / 1000.0),
            secs
        ),
        all(&w(&|r| r.b1.run.doc.failed() as f64), int),
        all(&w(&|r| r.b1.sim.token_requests as f64), int)
    );
    let _ = writeln!(
        out,
        "- B2 wall: {}; requests: {}",
        all(&w(&|r| r.b2.wall_s()), secs),
        all(&w(&|r| r.b2.sim.requests as f64), int)
    );
    let _ = writeln!(
        out,
        "- B3 wall: {}; requests: {}",
        all(&w(&|r| r.b3.wall_s()), secs),
        all(&w(&|r| r.b3.sim.requests as f64), int)
    );
    let _ = writeln!(
        out,
        "- B5 peak RSS (MB) in B1: {}; in B2: {}; in B3: {}",
        all(&w(&|r| r.b1.rss_mb()), |v| format!("{v:.1}")),
        all(&w(&|r| r.b2.rss_mb()), |v| format!("{v:.1}")),
        all(&w(&|r| r.b3.rss_mb()), |v| format!("{v:.1}"))
    );
    let _ = writeln!(
        out,
        "- `wait4` ru_maxrss (MB) in B1, for comparison only — it includes the bench's own peak, inherited at `exec` through `posix_spawn`: {}",
        all(
            &w(&|r| r.b1.run.ru_maxrss_kib as f64 / 1024.0),
            |v| format!("{v:.1}")
        )
    );
    let _ = writeln!(
        out,
        "- B6 wall: {}; requests: {} (the client's own count: {}); items read: {}",
        all(&w(&|r| r.b6.wall.as_secs_f64()), secs),
        all(&w(&|r| r.b6_sim.requests as f64), int),
        all(&w(&|r| r.b6.requests as f64), int),
        all(&w(&|r| r.b6.items as f64), int)
    );
    let rates = |runs: &[ApplyRun], f: &dyn Fn(&ApplyRun) -> f64| {
        all(&runs.iter().map(f).collect::<Vec<_>>(), int)
    };
    let _ = writeln!(
        out,
        "- B4 SQLite insert rows/s: {}; PostgreSQL insert rows/s: {}",
        rates(i.sqlite, &|a| a.rate(a.insert)),
        rates(i.postgres, &|a| a.rate(a.insert))
    );
    let _ = writeln!(out);

    // --- request mix (last run)
    if let Some(last) = reps.last() {
        let _ = writeln!(out, "Requests per endpoint (last run):\n");
        let _ = writeln!(out, "| endpoint | B1 | B2 | B3 | B6 |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let keys: BTreeSet<&String> = [
            &last.b1.sim.by_template,
            &last.b2.sim.by_template,
            &last.b3.sim.by_template,
            &last.b6_sim.by_template,
        ]
        .into_iter()
        .flat_map(|m| m.keys())
        .collect();
        let get = |m: &std::collections::BTreeMap<String, u64>, k: &String| {
            m.get(k).map_or("".to_string(), |v| int(*v as f64))
        };
        for k in keys {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                k.trim_start_matches("GET ")
                    .trim_start_matches("/v2/providers"),
                get(&last.b1.sim.by_template, k),
                get(&last.b2.sim.by_template, k),
                get(&last.b3.sim.by_template, k),
                get(&last.b6_sim.by_template, k),
            );
        }
        let _ = writeln!(
            out,
            "| **total** | {} | {} | {} | {} |",
            int(last.b1.sim.requests as f64),
            int(last.b2.sim.requests as f64),
            int(last.b3.sim.requests as f64),
            int(last.b6_sim.requests as f64)
        );
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "The B1 lower bound is `requests × latency / max_parallel_requests`: all employers share one connection, and its in-flight cap holds across the {} concurrent employers, so no schedule can beat it; it leaves out the server's and the agent's processing time, process start, the token request and the database work, which the measured wall time (spawn to exit of `arbosync-agent sync --once --json`) includes.",
        s.concurrent_employers
    );
    out
}
