//! Failures through the real binary, on SQLite and on PostgreSQL:
//! - the process killed between the database commit and the cursor flush (failpoint
//!   `after-commit`, exit 86), then run again: nothing lost, nothing duplicated in the journal;
//! - a deleted and a garbled sled store: rebuilt, same final database, no journal rows;
//! - a 500, a malformed and a truncated page for one employer: that employer fails (exit code 1),
//!   the others are synced, and a later run completes it.

mod common_e2e;
mod fault_common;

use std::io::Write;
use std::path::Path;

use arbosync_agent::records::Entity;
use arbosync_agent::state::StateStore;
use chrono::Days;
use common_e2e::*;
use fault_common::{healthy_person, open_employment_of};
use loket_sim::{FaultKind, FaultSpec, Uuid};

const FAILPOINT: (&str, &str) = ("ARBOSYNC_FAILPOINT", "after-commit");

/// Cursors present in the state store (opened after the agent exited).
fn cursors(sled: &Path) -> Vec<Uuid> {
    let (store, _) = StateStore::open(sled).expect("open the state store");
    store
        .cursors()
        .expect("cursors")
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

async fn killed_between_commit_and_cursor_flush(backend: Backend) {
    let env = Env::start(
        backend,
        sim_config(51, 2, 12),
        &[Opts::everything(), Opts::default()],
    )
    .await;
    let (x, y) = (env.employer(0), env.employer(1));
    let h = env.handle();
    let mut tr = trackers(&env);

    // The initial sync dies right after its first commit of a run.
    let (out, _) = env.sync_with(&[], &[FAILPOINT]).await;
    assert_eq!(
        out.status.code(),
        Some(FAILPOINT_EXIT),
        "the failpoint stops the process: {}",
        text(&out)
    );
    assert!(
        !env.db.journal(0).await.is_empty(),
        "the run had committed its rows"
    );
    let with_cursor = cursors(&env.sled_dir());
    assert!(
        with_cursor.len() < 2,
        "an employer whose run died has no cursor: {with_cursor:?}"
    );
    // Run again: everything is there exactly once (the journal of both runs together is one
    // insert per row).
    let doc = env.sync_ok(&[]).await;
    env.check_run(&mut tr, &doc, 0, "initial sync after a kill")
        .await;

    // The same for an incremental run with changes at both employers.
    let world = h.truth();
    let today = world.today;
    let px = healthy_person(&world, x, &[]);
    h.create_absence(px, today - Days::new(2), None, None)
        .expect("absence");
    let ex = open_employment_of(&world, px);
    h.add_working_hours(ex, today, 28.0).expect("hours");
    let dep = sim_employer(&world, y).departments[0].id;
    h.rename_department(dep, "Binnendienst Zuid")
        .expect("rename");
    let seq = env.db.max_seq().await;
    let (out, _) = env.sync_with(&[], &[FAILPOINT]).await;
    assert_eq!(out.status.code(), Some(FAILPOINT_EXIT), "{}", text(&out));
    assert!(
        env.db.max_seq().await > seq,
        "the killed run committed its changes"
    );
    let doc = env.sync_ok(&[]).await;
    let rows = env
        .check_run(&mut tr, &doc, seq, "incremental run after a kill")
        .await;
    assert_eq!(count(&rows_of(&rows, x), Entity::Absence, "insert"), 1);
    assert_eq!(
        count(&rows_of(&rows, x), Entity::WorkweekPeriod, "insert"),
        1
    );
    assert_eq!(rows_of(&rows, y).len(), 1);

    // The killed runs are closed as failed, the others ended ok.
    let statuses = env
        .db
        .query("SELECT status, CAST(COUNT(*) AS TEXT) FROM {s}sync_run GROUP BY status ORDER BY status")
        .await;
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert_eq!(statuses[0][0].as_deref(), Some("failed"), "{statuses:?}");
    assert_eq!(statuses[1][0].as_deref(), Some("ok"), "{statuses:?}");

    // And nothing is left to do.
    let rows = env.step(&mut tr, &[], "replay").await;
    assert!(rows.is_empty(), "{rows:?}");
    let rows = env.step(&mut tr, &["--full"], "full replay").await;
    assert!(rows.is_empty(), "{rows:?}");
}

/// Overwrites every file under `dir` with garbage of the same length (at least 4 KiB).
fn garble(dir: &Path) -> usize {
    let mut n = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for entry in std::fs::read_dir(dir).expect("read the sled dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            n += garble(&path);
            continue;
        }
        let len = std::fs::metadata(&path)
            .map(|m| m.len() as usize)
            .unwrap_or(0)
            .max(4096);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        let mut f = std::fs::File::create(&path).expect("open for garbling");
        f.write_all(&bytes).expect("garble");
        n += 1;
    }
    n
}

async fn lost_state_is_rebuilt(backend: Backend) {
    let env = Env::start(
        backend,
        sim_config(52, 2, 12),
        &[Opts::everything(), Opts::default()],
    )
    .await;
    let (x, y) = (env.employer(0), env.employer(1));
    let h = env.handle();
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;
    let world = h.truth();
    let px = healthy_person(&world, x, &[]);
    h.create_absence(px, world.today, None, None)
        .expect("absence");
    env.step(&mut tr, &[], "a change").await;
    let before = (env.db.snapshot(x).await, env.db.snapshot(y).await);

    for (what, damage) in [("deleted", false), ("garbled", true)] {
        if damage {
            assert!(garble(&env.sled_dir()) > 0, "the sled store has files");
        } else {
            std::fs::remove_dir_all(env.sled_dir()).expect("delete the sled store");
        }
        let seq = env.db.max_seq().await;
        let (out, doc) = env.sync_with(&[], &[]).await;
        assert!(
            out.status.success(),
            "sync with a {what} sled store failed: {}",
            text(&out)
        );
        for id in [x, y] {
            assert_eq!(
                outcome_of(&doc, id)["kind"],
                "full",
                "{what} store: full reconciliations"
            );
        }
        let rows = env
            .check_run(&mut tr, &doc, seq, &format!("{what} sled store"))
            .await;
        assert!(rows.is_empty(), "{what} store: {rows:?}");
        assert_eq!(
            (env.db.snapshot(x).await, env.db.snapshot(y).await),
            before,
            "{what} store: the database changed"
        );
        if damage {
            let parent = env.state_dir();
            let aside = std::fs::read_dir(&parent)
                .expect("state dir")
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("sled.corrupt-"));
            assert!(
                aside && text(&out).contains("moved aside"),
                "the garbled store was moved aside and reported: {}",
                text(&out)
            );
        }
    }

    // The rebuilt store works: the next change arrives with an incremental run.
    let world = h.truth();
    let e = open_employment_of(&world, px);
    h.add_working_hours(e, world.today, 24.0).expect("hours");
    let seq = env.db.max_seq().await;
    let doc = env.sync_ok(&[]).await;
    assert_eq!(outcome_of(&doc, x)["kind"], "incremental");
    let rows = env.check_run(&mut tr, &doc, seq, "after the rebuild").await;
    assert_eq!(rows_of(&rows, x).len(), 2, "{rows:?}");
}

async fn broken_pages_fail_one_employer_only(backend: Backend) {
    let env = Env::start(
        backend,
        sim_config(53, 3, 10),
        &[Opts::everything(), Opts::default(), Opts::everything()],
    )
    .await;
    let (a, b, c) = (env.employer(0), env.employer(1), env.employer(2));
    let h = env.handle();
    let mut tr = trackers(&env);

    // A 500 on every request naming employer A (retried by the client, then given up).
    let mut fault = FaultSpec::new(FaultKind::Status);
    fault.status = Some(500);
    fault.path_contains = Some(a.to_string());
    fault.times = Some(0);
    h.add_fault(fault).expect("fault");
    let (out, doc) = env.sync_with(&[], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(doc["ok"], false);
    assert_eq!(outcome_of(&doc, a)["status"], "failed");
    assert!(
        outcome_of(&doc, a)["error"]
            .as_str()
            .is_some_and(|e| e.contains("500"))
    );
    for id in [b, c] {
        assert_eq!(outcome_of(&doc, id)["status"], "ok");
    }
    env.check_run(&mut tr, &doc, 0, "initial sync with A broken")
        .await;
    assert!(env.db.live_model(a).await.values().all(|t| t.is_empty()));

    // A later run completes A (a full run: it has no cursor yet).
    h.clear_faults();
    let seq = env.db.max_seq().await;
    let doc = env.sync_ok(&[]).await;
    assert_eq!(outcome_of(&doc, a)["kind"], "full");
    let rows = env.check_run(&mut tr, &doc, seq, "A completed").await;
    assert!(!rows_of(&rows, a).is_empty());
    assert!(rows_of(&rows, b).is_empty() && rows_of(&rows, c).is_empty());

    // Changes everywhere; A answers a malformed body, C a truncated one.
    let world = h.truth();
    let today = world.today;
    let mut absences = Vec::new();
    for id in [a, b, c] {
        let p = if id == b {
            // B is privacy-minimal: someone already in scope.
            *tr[1]
                .scope
                .as_ref()
                .expect("scoped")
                .iter()
                .next()
                .expect("someone")
        } else {
            healthy_person(&world, id, &[])
        };
        if world.employees[&p]
            .absence_ids
            .iter()
            .any(|x| world.absences[x].end_of_absence.is_none())
        {
            let dep = sim_employer(&world, id).departments[0].id;
            h.rename_department(dep, "Nieuwe afdeling").expect("rename");
        } else {
            absences.push(h.create_absence(p, today, None, None).expect("absence"));
        }
    }
    for (id, kind) in [(a, FaultKind::Malformed), (c, FaultKind::Truncated)] {
        let mut fault = FaultSpec::new(kind);
        fault.path_contains = Some(id.to_string());
        fault.times = Some(0);
        h.add_fault(fault).expect("fault");
    }
    let seq = env.db.max_seq().await;
    let (out, doc) = env.sync_with(&[], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(outcome_of(&doc, a)["status"], "failed");
    assert_eq!(outcome_of(&doc, c)["status"], "failed");
    assert_eq!(outcome_of(&doc, b)["status"], "ok");
    let rows = env
        .check_run(&mut tr, &doc, seq, "A malformed, C truncated")
        .await;
    assert!(!rows_of(&rows, b).is_empty(), "B's change arrived");

    // Once Loket answers properly again, the next (incremental) run completes A and C.
    h.clear_faults();
    let seq = env.db.max_seq().await;
    let doc = env.sync_ok(&[]).await;
    for id in [a, c] {
        assert_eq!(outcome_of(&doc, id)["kind"], "incremental");
    }
    let rows = env.check_run(&mut tr, &doc, seq, "A and C completed").await;
    assert!(!rows_of(&rows, a).is_empty() && !rows_of(&rows, c).is_empty());
    assert!(rows_of(&rows, b).is_empty(), "B is not synced twice");
    let rows = env.step(&mut tr, &["--full"], "full replay").await;
    assert!(rows.is_empty(), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_commit_and_cursor_flush_on_sqlite() {
    killed_between_commit_and_cursor_flush(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_commit_and_cursor_flush_on_postgres() {
    killed_between_commit_and_cursor_flush(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_state_is_rebuilt_on_sqlite() {
    lost_state_is_rebuilt(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_state_is_rebuilt_on_postgres() {
    lost_state_is_rebuilt(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_pages_fail_one_employer_only_on_sqlite() {
    broken_pages_fail_one_employer_only(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_pages_fail_one_employer_only_on_postgres() {
    broken_pages_fail_one_employer_only(Backend::Postgres).await;
}
