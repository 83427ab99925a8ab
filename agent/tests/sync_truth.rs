//! The initial sync, through the real binary, equals the simulator's truth table by table for
//! several option combinations, on SQLite and on PostgreSQL; replaying it (incremental, full, and
//! with the cursors reset by deleting the sled store) adds zero journal rows and changes zero rows.

mod common_e2e;

use std::collections::BTreeSet;

use arbosync_agent::records::Entity;
use common_e2e::*;

fn combos() -> Vec<Opts> {
    vec![
        // Privacy-minimal defaults, with two dossiers opened by hand (case_watch).
        Opts::default(),
        // Everything, BSN and salary included.
        Opts::everything(),
        // All employments, no absences.
        Opts {
            all_employments: true,
            absences: false,
            ..Opts::default()
        },
        // Scope by absence with a short history window.
        Opts {
            history_months: 1,
            ..Opts::default()
        },
        // Scope by absence, absences themselves not stored, salary and BSN on.
        Opts {
            all_employments: false,
            absences: false,
            salary: true,
            bsn: true,
            history_months: 3,
        },
    ]
}

async fn initial_sync_equals_truth(backend: Backend) {
    let combos = combos();
    let env = Env::start(backend, sim_config(11, combos.len(), 12), &combos).await;
    let world = env.handle().truth();

    // Two people without any absence get a dossier at the arbodienst: they are in scope.
    let watched: Vec<i64> = world.employers[0]
        .employee_ids
        .iter()
        .filter_map(|id| world.employees.get(id))
        .filter(|e| e.absence_ids.is_empty())
        .take(2)
        .map(|e| i64::from(e.employee_number))
        .collect();
    assert_eq!(watched.len(), 2, "the dataset has people without absences");
    for n in &watched {
        env.add_case_watch(env.employer(0), *n).await;
    }

    // The oracle itself must be meaningful: scopes and windows really exclude something.
    let cw = env.db.case_watch(env.employer(0)).await;
    let scope0 = source_scope(&world, env.employer(0), combos[0], &cw).expect("scoped");
    let everyone = world.employers[0].employee_ids.len();
    assert!(scope0.len() < everyone && scope0.len() >= 4 + watched.len());
    let all_absences = expected(&world, env.employer(3), Opts::everything(), None);
    let short = expected(
        &world,
        env.employer(3),
        Opts {
            all_employments: true,
            ..combos[3]
        },
        None,
    );
    assert!(
        short[&Entity::Absence].len() < all_absences[&Entity::Absence].len(),
        "history_months = 1 leaves older absences out"
    );

    let mut tr = trackers(&env);
    let doc = env.sync_ok(&[]).await;
    assert_eq!(doc["ok"], true);
    for (id, _) in &env.employers {
        assert_eq!(
            outcome_of(&doc, *id)["kind"],
            "full",
            "the first run is full"
        );
    }
    // The journal of the initial sync: one insert per stored row, nothing else.
    let rows = env.check_run(&mut tr, &doc, 0, "initial sync").await;
    for t in &tr {
        let stored: usize = t.model.values().map(|m| m.len()).sum();
        assert_eq!(rows_of(&rows, t.employer).len(), stored);
        assert!(rows_of(&rows, t.employer).iter().all(|j| j.op == "insert"));
    }
    // Option semantics, spelled out on top of the oracle.
    let m = |i: usize| &tr[i].model;
    assert!(m(0)[&Entity::SalaryPeriod].is_empty() && m(0)[&Entity::Absence].len() >= 4);
    assert!(m(0)[&Entity::Employee].values().all(|r| r["bsn"].is_none()));
    let watched_in: BTreeSet<i64> = m(0)[&Entity::Employee]
        .values()
        .filter_map(|r| r["employee_number"].as_deref().and_then(|n| n.parse().ok()))
        .filter(|n| watched.contains(n))
        .collect();
    assert_eq!(watched_in.len(), 2, "case_watch pulls people in");
    assert!(m(1)[&Entity::Employee].values().all(|r| r["bsn"].is_some()));
    assert!(!m(1)[&Entity::SalaryPeriod].is_empty());
    assert_eq!(m(1)[&Entity::Employee].len(), everyone);
    assert!(m(2)[&Entity::Absence].is_empty() && m(2)[&Entity::AbsenceProgress].is_empty());
    assert!(m(4)[&Entity::Absence].is_empty() && !m(4)[&Entity::SalaryPeriod].is_empty());
    for i in 0..combos.len() {
        let last_synced = env
            .db
            .scalar(&format!(
                "SELECT CAST(last_synced_at AS TEXT) FROM {{s}}employer WHERE id = '{}'",
                env.employer(i)
            ))
            .await;
        assert!(last_synced.is_some(), "employer.last_synced_at is set");
    }

    // Replays: incremental, full, and with the cursors gone. Zero journal rows, zero changes.
    let mut before = Vec::new();
    for (id, _) in &env.employers {
        before.push(env.db.snapshot(*id).await);
    }
    for (args, what) in [
        (&[][..], "incremental replay"),
        (&["--full"][..], "full replay"),
    ] {
        let rows = env.step(&mut tr, args, what).await;
        assert!(rows.is_empty(), "{what} wrote journal rows: {rows:?}");
    }
    std::fs::remove_dir_all(env.sled_dir()).expect("remove the sled store");
    let doc = env.sync_ok(&[]).await;
    for (id, _) in &env.employers {
        assert_eq!(
            outcome_of(&doc, *id)["kind"],
            "full",
            "no cursor: a full run"
        );
    }
    let seq = env.db.max_seq().await;
    let rows = env.check_run(&mut tr, &doc, seq, "cursors reset").await;
    assert!(rows.is_empty(), "a run after a cursor reset wrote {rows:?}");
    assert_eq!(
        env.db.journal(0).await.len(),
        tr.iter()
            .map(|t| t.model.values().map(|m| m.len()).sum::<usize>())
            .sum::<usize>(),
        "the journal still holds only the initial inserts"
    );
    for (n, (id, _)) in env.employers.iter().enumerate() {
        assert_eq!(
            env.db.snapshot(*id).await,
            before[n],
            "a replay changed stored rows (hash, timestamps or values) of employer {id}"
        );
    }
    let running = env
        .db
        .scalar("SELECT CAST(COUNT(*) AS TEXT) FROM {s}sync_run WHERE status <> 'ok'")
        .await;
    assert_eq!(running.as_deref(), Some("0"), "every sync_run ended ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_equals_truth_on_sqlite() {
    initial_sync_equals_truth(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_equals_truth_on_postgres() {
    initial_sync_equals_truth(Backend::Postgres).await;
}
