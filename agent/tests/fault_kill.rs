//! Crashes of the real binary, on SQLite and on PostgreSQL (R1, R2 of
//! `reliability-security.md` §4):
//! - R1: a SIGKILL loop. Each iteration changes the source (seeded), starts `sync --once`
//!   (every other one `--full`) and kills it with SIGKILL at a random moment within the run's
//!   length (learned from the runs that finished; half of the kills fall in the second half of
//!   the run, where it applies); every tenth iteration the first employer's `salary` option is
//!   switched (a purge, or a large batch). The journal must stay a valid history throughout.
//!   Then one clean full run: every table equals the truth, no duplicate journal row. A kill
//!   between Loket's token response and the save of the rotated refresh token locks the agent
//!   out (R24): the next run must say so (`needs_reconnect`), and a new consent is given.
//!   `ARBOSYNC_KILL_ITERATIONS` (default 50 per backend, so 100 in all) and
//!   `ARBOSYNC_KILL_SEED`.
//! - R2: every failpoint of a run (`before-apply`, `after-first-batch`, `after-commit`,
//!   `after-cursor-flush`), on an incremental and on a full run with changes pending: the
//!   cursor never covers data that is not committed, nothing is half-applied, and the next
//!   run completes with the database equal to the truth and no duplicate journal rows.

mod common_e2e;
mod fault_common;

use std::time::Duration;

use arbosync_agent::records::Entity;
use arbosync_agent::sync::run::{BATCH_SIZE, FAILPOINTS};
use chrono::Days;
use common_e2e::*;
use fault_common::*;
use loket_sim::{EmployeePatch, Uuid};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn iterations() -> usize {
    std::env::var("ARBOSYNC_KILL_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
}

/// Every employer whose cursor reached the source's current version holds exactly the truth
/// (the cursor never covers data that is not committed). Only for employers with all options
/// and no deletion pending (an incremental run does not look for deletions).
async fn cursor_never_ahead(env: &Env, what: &str) {
    let world = env.handle().truth();
    for (id, version) in cursor_versions(env) {
        let current = env.handle().employer_version(id).expect("employer");
        if version < current {
            continue;
        }
        let opts = env
            .employers
            .iter()
            .find(|(e, _)| *e == id)
            .map(|(_, o)| *o)
            .expect("configured");
        let want = expected(&world, id, opts, None);
        let diff = model_diff(&want, &env.db.live_model(id).await);
        assert!(
            diff.is_empty(),
            "{what}: the cursor of {id} is at the source's version but the data is not:\n{diff}"
        );
    }
}

async fn kill_loop(backend: Backend) {
    let n = iterations();
    let seed = seed_from_env("ARBOSYNC_KILL_SEED", &format!("kill loop on {backend:?}"));
    let mut rng = StdRng::seed_from_u64(seed);
    let opts = [Opts::everything(), Opts::default(), Opts::everything()];
    let mut env = Env::start(backend, sim_sized(seed, 3, 60, 7), &opts).await;
    let h = env.handle();
    let ids: Vec<Uuid> = env.employers.iter().map(|(id, _)| *id).collect();

    // The window a kill is drawn from, per kind of run: learned from runs that finished before
    // their kill, widened when kills keep landing at the end of the window.
    let mut window_ms = [1500u64, 800u64];
    let (mut killed, mut finished, mut changes, mut lockouts) = (0usize, 0, 0, 0);
    for i in 0..n {
        if i > 0 {
            changes += mutate(&h, &mut rng, &ids, 4);
        }
        if i % 10 == 5 {
            // Salary off purges every salary row of the first employer, on again writes them
            // all: runs with large batches to kill.
            let mut o = env.employers[0].1;
            o.salary = !o.salary;
            env.set_opts(0, o);
        }
        let full = i % 2 == 0;
        let k = usize::from(!full);
        // Half the kills anywhere in the run, half in its second half (where it applies).
        let low = if rng.random_bool(0.5) {
            window_ms[k] / 2
        } else {
            0
        };
        let delay = rng.random_range(low..=window_ms[k]);
        let args: &[&str] = if full {
            &["sync", "--once", "--json", "--full"]
        } else {
            &["sync", "--once", "--json"]
        };
        let mut p = spawn_agent(&env, args, &[], &format!("kill-{i}"));
        match p.kill_after(Duration::from_millis(delay)).await {
            Ended::Killed(_) => {
                killed += 1;
                if delay * 5 > window_ms[k] * 4 {
                    window_ms[k] = window_ms[k] * 5 / 4;
                }
            }
            Ended::Exited(code, took) => {
                finished += 1;
                if code == Some(1) && locked_out(&p.doc()) {
                    // An earlier kill landed between Loket's token response and the save of
                    // the rotated refresh token (R24): reported, and a new consent fixes it.
                    lockouts += 1;
                    reconnect(&env).await;
                } else {
                    assert_eq!(
                        code,
                        Some(0),
                        "iteration {i} (seed {seed}): a run that was not killed must succeed:\n{}",
                        p.output()
                    );
                    window_ms[k] = (took.as_millis() as u64).max(20);
                }
            }
        }
        if i % 10 == 9 {
            // Even between kills the journal is a valid history of the stored rows: no batch
            // is ever half-applied.
            assert_journal_valid(&env.db, &format!("after iteration {i} (seed {seed})")).await;
        }
    }
    let interrupted = env
        .db
        .scalar(
            "SELECT CAST(COUNT(DISTINCT m.run_id) AS TEXT) FROM {s}mutation m \
             JOIN {s}sync_run r ON r.id = m.run_id WHERE r.status <> 'ok'",
        )
        .await
        .unwrap_or_default();
    let (out, doc) = env.sync_with(&[], &[]).await;
    if locked_out(&doc) {
        lockouts += 1;
        reconnect(&env).await;
    } else {
        assert!(out.status.success(), "the first clean run: {}", text(&out));
    }
    eprintln!(
        "kill loop on {backend:?}: {n} iterations, {killed} killed, {finished} finished, \
         {changes} source changes, {interrupted} killed runs had committed rows, {lockouts} \
         lockouts by a kill between token response and save, windows {window_ms:?} ms \
         (seed {seed})"
    );
    assert!(
        killed * 2 >= n,
        "most runs must really be killed ({killed} of {n}, seed {seed})"
    );
    assert_converged(&env, &format!("after the kill loop (seed {seed})")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loop_on_sqlite() {
    kill_loop(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loop_on_postgres() {
    kill_loop(Backend::Postgres).await;
}

/// Changes every employer sees on the next run (no deletions: an incremental run must be able
/// to reach the truth).
fn change_everything(env: &Env, round: u32) {
    let h = env.handle();
    let world = h.truth();
    let today = world.today;
    for (n, (id, _)) in env.employers.iter().enumerate() {
        let er = sim_employer(&world, *id);
        let p = healthy_person(&world, *id, &[]);
        h.create_absence(p, today - Days::new(u64::from(round % 3)), None, None)
            .expect("absence");
        let e = open_employment_of(&world, p);
        h.add_working_hours(e, today, 20.0 + f64::from(round))
            .expect("hours");
        h.rename_department(
            er.departments[n % er.departments.len()].id,
            &format!("Afd {round}"),
        )
        .expect("rename");
        let other = er.employee_ids[(round as usize * 7 + n) % er.employee_ids.len()];
        h.patch_employee(
            other,
            EmployeePatch {
                last_name: Some(format!("Ronde{round}")),
                ..Default::default()
            },
        )
        .expect("patch");
    }
}

async fn failpoints(backend: Backend) {
    // One employer with enough rows that its full run needs two batches (over 2,000 records).
    let opts = Opts {
        bsn: false,
        ..Opts::everything()
    };
    let env = Env::start(backend, sim_sized(61, 1, 230, 50), &[opts]).await;
    let h = env.handle();
    let x = env.employer(0);
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;
    let rows: usize = env.db.live_model(x).await.values().map(|t| t.len()).sum();
    assert!(
        rows > BATCH_SIZE,
        "a full run spans more than one batch ({rows} rows)"
    );

    let mut round = 0;
    for full in [false, true] {
        for point in FAILPOINTS {
            round += 1;
            let what = format!(
                "{point} on a {} run",
                if full { "full" } else { "incremental" }
            );
            change_everything(&env, round);
            if full {
                // A deletion that only a full run sees, so it is pending when the run dies.
                let world = h.truth();
                let victim = sim_employer(&world, x).employment_ids[round as usize];
                h.delete_employment(victim).expect("delete an employment");
            }
            let cursors = cursor_versions(&env);
            let seq = env.db.max_seq().await;
            let before = live_models(&env).await;
            let args: &[&str] = if full { &["--full"] } else { &[] };
            let (out, _) = env.sync_with(args, &[("ARBOSYNC_FAILPOINT", point)]).await;
            assert_eq!(
                out.status.code(),
                Some(FAILPOINT_EXIT),
                "{what}: the failpoint stops the process: {}",
                text(&out)
            );
            assert!(
                text(&out).contains(&format!("failpoint {point}")),
                "{what}: {}",
                text(&out)
            );
            let after = cursor_versions(&env);
            match point {
                "before-apply" => {
                    assert_eq!(env.db.max_seq().await, seq, "{what}: nothing applied");
                    assert_eq!(live_models(&env).await, before, "{what}: nothing applied");
                    assert_eq!(after, cursors, "{what}: the cursor did not move");
                }
                "after-first-batch" | "after-commit" => {
                    assert!(env.db.max_seq().await > seq, "{what}: rows were committed");
                    assert_eq!(after, cursors, "{what}: the cursor did not move");
                }
                _ => {
                    assert_ne!(after, cursors, "{what}: the cursor was flushed");
                }
            }
            // No batch is half-applied, and a cursor at the source's version means its data is
            // all there.
            assert_journal_valid(&env.db, &what).await;
            if !full {
                cursor_never_ahead(&env, &what).await;
            }
            // The next run (of the same kind) completes; nothing is lost or doubled.
            let doc = env.sync_ok(args).await;
            assert_eq!(doc["ok"], true, "{what}: the next run: {doc}");
            assert_matches_truth(&env, &what).await;
        }
    }
    // Each full-run round deleted one employment: soft-deleted once, with one journal row each.
    let deletes = env
        .db
        .journal(0)
        .await
        .into_iter()
        .filter(|r| r.j.entity == Entity::Employment.table() && r.j.op == "delete")
        .count();
    assert_eq!(
        deletes,
        FAILPOINTS.len(),
        "one delete row per deleted employment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failpoints_on_sqlite() {
    failpoints(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failpoints_on_postgres() {
    failpoints(Backend::Postgres).await;
}
