//! A measurement for issue 3's closing note, not a test of speed (nothing about time is asserted):
//! the requests and wall time of an initial `sync --once --json` and of a no-change run of the real
//! binary, for a simulated dataset of 20 employers with 40 employees each, at 0 ms and at 20 ms
//! simulated latency per request, into SQLite; median of 3 (each on a fresh simulator and database).
//!
//! Run by hand: `cargo test -p arbosync-agent --release --test sync_bench -- --ignored --nocapture`
//! (`ARBOSYNC_BENCH_REPS=1` for a quick look).

mod common_e2e;

use std::time::{Duration, Instant};

use common_e2e::*;
use loket_sim::SimConfig;

const EMPLOYERS: usize = 20;
const EMPLOYEES: usize = 40;

#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    /// `/v2` requests counted by the simulator (faulted and 401s included; none here).
    requests: u64,
    token_requests: u64,
    /// Rows written (inserted + updated + deleted) as the agent reports them.
    rows: u64,
}

fn median(mut v: Vec<Sample>) -> Sample {
    v.sort_by_key(|s| s.wall);
    v[v.len() / 2]
}

async fn measured(env: &Env) -> Sample {
    let h = env.handle();
    h.reset_stats();
    let t = Instant::now();
    let doc = env.sync_ok(&[]).await;
    let wall = t.elapsed();
    let stats = h.stats();
    let rows = doc["employers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            o["inserted"].as_u64().unwrap_or(0)
                + o["updated"].as_u64().unwrap_or(0)
                + o["deleted"].as_u64().unwrap_or(0)
        })
        .sum();
    Sample {
        wall,
        requests: stats.total,
        token_requests: stats.token_requests,
        rows,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for the closing note; run by hand with --ignored --nocapture"]
async fn twenty_employers() {
    let reps: u64 = std::env::var("ARBOSYNC_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!(
        "{EMPLOYERS} employers x {EMPLOYEES} employees, SQLite, requests_per_second = 1000, \
         max_parallel_requests = 4, max_concurrent_employers = 4, median of {reps}"
    );
    println!(
        "{:<11} {:>7} | {:>9} {:>9} {:>7} | {:>9} {:>9} {:>7}",
        "options", "latency", "init ms", "init req", "rows", "noop ms", "noop req", "rows"
    );
    for latency_ms in [0, 20] {
        for (label, opts) in [
            ("defaults", Opts::default()),
            ("everything", Opts::everything()),
        ] {
            let mut initial = Vec::new();
            let mut no_change = Vec::new();
            for rep in 0..reps {
                let sim = SimConfig {
                    seed: 1000 + rep,
                    employers: EMPLOYERS,
                    employees_per_employer: EMPLOYEES,
                    latency_ms,
                    ..Default::default()
                };
                let env = Env::start(Backend::Sqlite, sim, &[opts; EMPLOYERS]).await;
                initial.push(measured(&env).await);
                let again = measured(&env).await;
                assert_eq!(again.rows, 0, "a no-change run writes nothing");
                no_change.push(again);
            }
            let (i, n) = (median(initial), median(no_change));
            println!(
                "{label:<11} {latency_ms:>5}ms | {:>9} {:>9} {:>7} | {:>9} {:>9} {:>7}   (token requests {}/{})",
                i.wall.as_millis(),
                i.requests,
                i.rows,
                n.wall.as_millis(),
                n.requests,
                n.rows,
                i.token_requests,
                n.token_requests,
            );
        }
    }
}
