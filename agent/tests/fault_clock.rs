//! A wrong wall clock on the agent's machine (R10 of `reliability-security.md` §4): the real
//! binary runs under libfaketime a day behind, a day ahead and an hour ahead, while the simulator
//! keeps real time. The cursors are Loket's version numbers, not times, so no change may be
//! missed: after each skewed incremental run the journal is exactly the change at the source and
//! every table equals the truth. The token refresh works (one token request per run) and there is
//! no retry storm. Only the wall clock is skewed (`FAKETIME_DONT_FAKE_MONOTONIC`): that is what a
//! wrong system clock does; the monotonic clock the client's timeouts use is unaffected.
//!
//! libfaketime comes from Debian's `faketime` package (`.ci/run` installs it); without it the
//! test fails and says so.

mod common_e2e;
mod fault_common;

use std::path::PathBuf;

use common_e2e::*;
use fault_common::*;

fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!("this test needs libfaketime (Debian package `faketime`; .ci/run installs it)")
    })
}

async fn skewed_clock_misses_nothing(backend: Backend) {
    let lib = libfaketime();
    let lib = lib.to_string_lossy().into_owned();
    let env = Env::start(
        backend,
        sim_sized(97, 2, 30, 7),
        &[Opts::everything(), Opts::default()],
    )
    .await;
    let h = env.handle();
    let ids: Vec<loket_sim::Uuid> = env.employers.iter().map(|(id, _)| *id).collect();
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(97);

    for skew in ["-1d", "+1d", "+1h"] {
        let world = h.truth();
        // A new sick report today and changes of every kind the mutator makes.
        let x = env.employer(0);
        let p = healthy_person(&world, x, &[]);
        h.create_absence(p, world.today, None, None)
            .expect("a new absence");
        mutate(&h, &mut rng, &ids, 6);
        h.reset_stats();
        let seq = env.db.max_seq().await;
        let envs = [
            ("LD_PRELOAD", lib.as_str()),
            ("FAKETIME", skew),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ("FAKETIME_DONT_RESET", "1"),
        ];
        let (out, doc) = env.sync_with(&[], &envs).await;
        let all = text(&out);
        assert!(
            out.status.success(),
            "clock {skew}: the run succeeds: {all}"
        );
        // The skew really applied: the run's start time is recorded from the agent's clock.
        let run_id = outcome_of(&doc, x)["run_id"]
            .as_str()
            .expect("the run's id")
            .to_string();
        let started = env
            .db
            .scalar(&format!(
                "SELECT CAST(started_at AS TEXT) FROM {{s}}sync_run WHERE id = '{run_id}'"
            ))
            .await
            .expect("the run's sync_run row");
        let expected_day = match skew {
            "-1d" => world.today.pred_opt(),
            "+1d" => world.today.succ_opt(),
            _ => None,
        };
        if let Some(day) = expected_day {
            assert!(
                started.starts_with(&day.to_string()),
                "clock {skew}: sync_run.started_at {started} is on {day}"
            );
        }
        env.check_run(&mut tr, &doc, seq, &format!("clock {skew}"))
            .await;
        let stats = h.stats();
        assert_eq!(stats.token_requests, 1, "clock {skew}: one token refresh");
        assert!(
            stats.total < 400,
            "clock {skew}: no retry storm ({} requests): {:#?}",
            stats.total,
            stats.by_template
        );
    }
    assert_converged(&env, "after the skewed clocks").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_clock_misses_nothing_on_sqlite() {
    skewed_clock_misses_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_clock_misses_nothing_on_postgres() {
    skewed_clock_misses_nothing(Backend::Postgres).await;
}
