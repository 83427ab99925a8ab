//! The database failing under the real binary (R8 of `reliability-security.md` §4):
//! - PostgreSQL, the agent's backend terminated (`pg_terminate_backend`, on the test's own
//!   database of the shared server) while a batch transaction is open and has written: the
//!   batch rolls back whole, the run fails, the next run completes;
//! - PostgreSQL stopped (`pg_ctl stop -m immediate`) while the *service* is in a batch, on a
//!   throw-away cluster of the test's own (initdb in a temp dir, its own port), and started
//!   again 2 s later: the same service process reconnects and completes at a later run;
//! - SQLite locked by another holder of `BEGIN EXCLUSIVE` while the agent runs: 3 s (within the
//!   agent's 10 s busy timeout) is waited out and the run completes; 13 s fails the run cleanly
//!   (nothing written, the cursor unchanged) and the next run completes.
//!
//! Every case ends with the journal a valid history of the rows (no partial batch), and a clean
//! full run whose result equals the truth with no duplicate journal rows.

mod common_e2e;
mod fault_common;

use std::time::{Duration, Instant};

use common_e2e::*;
use fault_common::*;

/// The agent's backend in a transaction that has written rows of a batch (not the bookkeeping
/// of `sync_run`), if there is one. The query is on `db`'s own database.
async fn batch_backend(db: &Db) -> Option<String> {
    db.scalar(
        "SELECT CAST(pid AS TEXT) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND backend_xid IS NOT NULL AND query NOT ILIKE '%sync_run%' \
         LIMIT 1",
    )
    .await
}

/// Polls until the agent is in a batch (at most `limit`).
async fn wait_for_batch(db: &Db, limit: Duration) -> Option<String> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(pid) = batch_backend(db).await {
            return Some(pid);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    None
}

fn big_sim() -> loket_sim::SimConfig {
    // One employer whose initial sync is more than one batch of 2,000 records.
    sim_sized(91, 1, 230, 50)
}

fn opts() -> Opts {
    Opts {
        bsn: false,
        ..Opts::everything()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_terminated_mid_batch() {
    let env = Env::start(Backend::Postgres, big_sim(), &[opts()]).await;
    let x = env.employer(0);
    let mut p = spawn_agent(&env, &["sync", "--once", "--json"], &[], "terminated");
    let pid = wait_for_batch(&env.db, Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("the agent never held a batch open:\n{}", p.output()));
    let killed = env
        .db
        .scalar(&format!("SELECT CAST(pg_terminate_backend({pid}) AS TEXT)"))
        .await;
    assert_eq!(killed.as_deref(), Some("true"), "terminated backend {pid}");
    let (code, _) = p.wait(Duration::from_secs(120)).await;
    assert_eq!(code, Some(1), "the run fails: {}", p.output());
    let doc = p.doc();
    assert_eq!(outcome_of(&doc, x)["status"], "failed", "{doc}");
    assert!(
        !p.output().contains("password") && !p.output().contains("DETAIL"),
        "no connection secrets or row details in the output"
    );
    // The terminated batch is gone whole: what is stored has its journal rows, nothing more.
    assert_journal_valid(&env.db, "after the terminated batch").await;
    assert_eq!(
        state_of(&env).0.get(&x),
        None,
        "no cursor for a run that did not complete"
    );
    let doc = env.sync_ok(&[]).await;
    assert_eq!(outcome_of(&doc, x)["status"], "ok");
    assert_converged(&env, "after pg_terminate_backend").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_batch_under_the_service() {
    let cluster = OwnCluster::start();
    let mut env = env_on_cluster(&cluster, big_sim(), &[opts()]).await;
    let x = env.employer(0);
    let dir = env.dir.path().to_path_buf();
    edit_config(&env, |t| {
        t.replacen(
            "[agent]\n",
            &format!(
                "[agent]\nsocket = \"{}\"\nlog_dir = \"{}\"\ninterval = \"2s\"\n",
                dir.join("agent.sock").display(),
                dir.join("logs").display()
            ),
            1,
        )
    });
    let mut service = spawn_agent(&env, &["run"], &[], "service");
    let pid = wait_for_batch(&env.db, Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("the service never held a batch open:\n{}", service.output()));
    cluster.stop_immediate();
    let stopped_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_server();
    reconnect_db(&mut env, &cluster).await;
    eprintln!("stopped PostgreSQL while backend {pid} held a batch; restarted after 2 s");

    // The same process reconnects and a later run completes: the rows reach the truth.
    let want = expected_after_full(&env).await;
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let ok_runs = env
            .db
            .scalar("SELECT CAST(COUNT(*) AS TEXT) FROM {s}sync_run WHERE status = 'ok'")
            .await
            .unwrap_or_default();
        if ok_runs != "0" && env.db.live_model(x).await == want[&x] {
            break;
        }
        assert!(
            Instant::now() < end,
            "the service did not recover within 120 s of the restart:\n{}",
            service.output()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "the service recovered {:?} after the stop",
        stopped_at.elapsed()
    );
    let failed = env
        .db
        .scalar("SELECT CAST(COUNT(*) AS TEXT) FROM {s}sync_run WHERE status <> 'ok'")
        .await
        .unwrap_or_default();
    assert_ne!(
        failed, "0",
        "the interrupted run is recorded as failed (or running until the next start)"
    );
    // SAFETY: signalling our own child process by its pid.
    let service_pid = service.child.id().expect("the service runs") as libc::pid_t;
    unsafe {
        libc::kill(service_pid, libc::SIGTERM);
    }
    let (code, _) = service.wait(Duration::from_secs(60)).await;
    assert_eq!(code, Some(0), "clean stop: {}", service.output());
    assert_journal_valid(&env.db, "after the stop under the service").await;
    assert_converged(&env, "after pg_ctl stop -m immediate").await;
}

/// Starts a sync and, once it is fetching (the simulator sees requests), holds the SQLite file
/// with `BEGIN EXCLUSIVE` for `hold`. Returns the process.
async fn sync_while_locked(env: &Env, args: &[&str], hold: Duration, tag: &str) -> Spawned {
    let h = env.handle();
    let before = h.stats().total;
    let mut all = vec!["sync", "--once", "--json"];
    all.extend_from_slice(args);
    let p = spawn_agent(env, &all, &[], tag);
    assert!(
        wait_for(Duration::from_secs(30), || h.stats().total > before + 3).await,
        "the agent started fetching"
    );
    let Db::Sqlite { path } = &env.db else {
        panic!("SQLite only");
    };
    let _holder = hold_sqlite_exclusive(path, hold);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_by_another_process() {
    let env = Env::start(
        Backend::Sqlite,
        sim_sized(92, 2, 40, 7),
        &[Opts::everything(), Opts::default()],
    )
    .await;
    let h = env.handle();
    let ids: Vec<loket_sim::Uuid> = env.employers.iter().map(|(id, _)| *id).collect();
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(92);

    // A lock shorter than the busy timeout is waited out.
    mutate(&h, &mut rng, &ids, 6);
    let seq = env.db.max_seq().await;
    let mut p = sync_while_locked(&env, &[], Duration::from_secs(3), "short-lock").await;
    let (code, took) = p.wait(Duration::from_secs(60)).await;
    assert_eq!(code, Some(0), "a 3 s lock is waited out: {}", p.output());
    assert!(took >= Duration::from_secs(2), "it did wait: {took:?}");
    env.check_run(&mut tr, &p.doc(), seq, "3 s lock").await;

    // A lock longer than the busy timeout fails the run without a partial batch. One employer
    // runs (its writes wait on the one connection; another run's bookkeeping would use up the
    // wait first).
    let x = env.employer(0);
    let world = h.truth();
    let p = healthy_person(&world, x, &[]);
    h.create_absence(p, world.today, None, None)
        .expect("absence");
    h.add_working_hours(open_employment_of(&world, p), world.today, 12.0)
        .expect("hours");
    let cursors = state_of(&env).0;
    let seq = env.db.max_seq().await;
    let xs = x.to_string();
    let mut p = sync_while_locked(
        &env,
        &["--employer", &xs],
        Duration::from_secs(13),
        "long-lock",
    )
    .await;
    let (code, _) = p.wait(Duration::from_secs(90)).await;
    assert_eq!(code, Some(1), "a 13 s lock fails the run: {}", p.output());
    let doc = p.doc();
    assert_eq!(outcome_of(&doc, x)["status"], "failed", "{doc}");
    assert!(
        outcome_of(&doc, x)["error"]
            .as_str()
            .is_some_and(|e| e.contains("locked")),
        "the failure names the lock: {doc}"
    );
    assert_eq!(
        env.db.max_seq().await,
        seq,
        "nothing of the batch was written"
    );
    assert_journal_valid(&env.db, "after the long lock").await;
    assert_eq!(state_of(&env).0, cursors, "the cursor did not move");
    assert_converged(&env, "after the SQLite locks").await;
}
