//! State store round trips: cursors, retry queue, run history (with trimming), status, meta.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use arbosync_agent::state::{
    Cursor, EmployerStatus, RetryKey, RunKind, RunRecord, RunStatus, StateError, StateOptions,
    StateStore,
};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 8, 0, 0).single().unwrap() + Duration::seconds(secs)
}

fn employer(n: u128) -> Uuid {
    Uuid::from_u128(0x2f3c_0000_0000_4000_8000_0000_0000_0000 + n)
}

fn open(dir: &std::path::Path) -> StateStore {
    let (store, report) = StateStore::open(dir).unwrap();
    assert_eq!(report.recovered_from, None);
    store
}

fn run(employer_id: Uuid, n: i64) -> RunRecord {
    RunRecord {
        run_id: Uuid::from_u128(n as u128 + 1),
        employer_id,
        kind: if n % 2 == 0 {
            RunKind::Incremental
        } else {
            RunKind::Full
        },
        started_at: t(n * 60),
        finished_at: Some(t(n * 60 + 5)),
        status: RunStatus::Ok,
        inserted: n as u64,
        updated: 2,
        deleted: 0,
        failed: 0,
        requests: 10,
        error: None,
    }
}

#[tokio::test]
async fn new_store_is_fresh_and_reopened_store_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sled");
    let (store, report) = StateStore::open(&path).unwrap();
    assert!(report.fresh && report.recovered_from.is_none() && report.reason.is_none());
    let cursor = Cursor {
        employer_version: 42,
        employment_versions_max: 9_000_000_000,
        last_full_reconcile: Some(t(0)),
        last_incremental: Some(t(10)),
        needs_full: false,
    };
    store.set_cursor(employer(1), &cursor).await.unwrap();
    store.set_paused(employer(1), true).unwrap();
    drop(store);

    let (store, report) = StateStore::open(&path).unwrap();
    assert!(!report.fresh && report.recovered_from.is_none());
    assert_eq!(store.cursor(employer(1)).unwrap(), Some(cursor));
    assert!(store.status(employer(1)).unwrap().paused);
}

#[tokio::test]
async fn cursor_round_trip_clear_and_needs_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.cursor(employer(1)).unwrap(), None);
    let cursor = Cursor {
        employer_version: 7,
        employment_versions_max: 11,
        last_full_reconcile: None,
        last_incremental: Some(t(5)),
        needs_full: false,
    };
    store.set_cursor(employer(1), &cursor).await.unwrap();
    store
        .set_cursor(employer(2), &Cursor::default())
        .await
        .unwrap();
    assert_eq!(store.cursor(employer(1)).unwrap(), Some(cursor.clone()));

    store.mark_needs_full(employer(1)).await.unwrap();
    let marked = store.cursor(employer(1)).unwrap().unwrap();
    assert!(marked.needs_full);
    assert_eq!(marked.employer_version, 7, "high-water marks are kept");
    // No cursor stays no cursor (that already means a full sync).
    store.mark_needs_full(employer(3)).await.unwrap();
    assert_eq!(store.cursor(employer(3)).unwrap(), None);

    let all = store.cursors().unwrap();
    assert_eq!(
        all.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
        vec![employer(1), employer(2)]
    );

    store.clear_cursor(employer(1)).await.unwrap();
    assert_eq!(store.cursor(employer(1)).unwrap(), None);
    store.flush().unwrap();
}

#[tokio::test]
async fn cursor_future_can_be_spawned() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = store.clone();
    tokio::spawn(async move { s.set_cursor(employer(1), &Cursor::default()).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.cursor(employer(1)).unwrap(), Some(Cursor::default()));
}

#[test]
fn retry_queue_records_lists_requeues_and_drops() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a1 = RetryKey::new(employer(1), "employment", "e-1");
    let a2 = RetryKey::new(employer(1), "absence", "a-9");
    let b1 = RetryKey::new(employer(2), "employment", "e-1");

    let first = store
        .record_failure(&a1, "department missing", t(0))
        .unwrap();
    assert_eq!(first.attempts, 1);
    assert_eq!((first.first_failed, first.last_failed), (t(0), t(0)));
    let again = store
        .record_failure(&a1, "department still missing", t(60))
        .unwrap();
    assert_eq!(again.attempts, 2);
    assert_eq!((again.first_failed, again.last_failed), (t(0), t(60)));
    assert_eq!(again.reason, "department still missing");
    store.record_failure(&a2, "404 on child", t(1)).unwrap();
    store.record_failure(&b1, "bad date", t(2)).unwrap();

    let listed = store.retry_entries(employer(1)).unwrap();
    assert_eq!(
        listed.iter().map(|e| e.key()).collect::<Vec<_>>(),
        vec![a2.clone(), a1.clone()]
    );
    assert_eq!(store.retry_count(employer(1)).unwrap(), 2);
    assert_eq!(store.retry_count(employer(2)).unwrap(), 1);
    assert_eq!(store.retry_count(employer(3)).unwrap(), 0);
    assert_eq!(store.retry_count_all(), 3);
    assert_eq!(store.all_retry_entries().unwrap().len(), 3);

    assert!(store.requeue_retry(&a1).unwrap());
    assert_eq!(store.retry_entry(&a1).unwrap().unwrap().attempts, 0);
    assert!(
        !store
            .requeue_retry(&RetryKey::new(employer(1), "employment", "nope"))
            .unwrap()
    );

    assert!(store.drop_retry(&a1).unwrap());
    assert!(!store.drop_retry(&a1).unwrap());
    assert_eq!(store.retry_entry(&a1).unwrap(), None);
    assert_eq!(store.retry_count(employer(1)).unwrap(), 1);
}

#[test]
fn retry_reasons_are_bounded_and_keys_validated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let long = "x".repeat(5000);
    let e = store
        .record_failure(&RetryKey::new(employer(1), "employee", "1"), &long, t(0))
        .unwrap();
    assert!(e.reason.chars().count() <= 501);
    assert!(matches!(
        store.record_failure(&RetryKey::new(employer(1), "", "1"), "r", t(0)),
        Err(StateError::InvalidKey)
    ));
    assert!(matches!(
        store.drop_retry(&RetryKey::new(employer(1), "a\0b", "1")),
        Err(StateError::InvalidKey)
    ));
}

#[test]
fn run_history_is_newest_first_and_trimmed_per_employer() {
    let dir = tempfile::tempdir().unwrap();
    let options = StateOptions {
        history_limit: 5,
        ..StateOptions::default()
    };
    let (store, _) = StateStore::open_with(dir.path(), options).unwrap();
    for n in 0..12 {
        store.record_run(&run(employer(1), n)).unwrap();
    }
    store.record_run(&run(employer(2), 100)).unwrap();

    let runs = store.runs(employer(1), 100).unwrap();
    assert_eq!(
        runs.iter().map(|r| r.inserted).collect::<Vec<_>>(),
        vec![11, 10, 9, 8, 7]
    );
    assert_eq!(store.runs(employer(1), 2).unwrap().len(), 2);
    assert_eq!(store.last_run(employer(1)).unwrap().unwrap().inserted, 11);
    assert_eq!(
        store.runs(employer(2), 100).unwrap().len(),
        1,
        "other employers are untouched"
    );
    assert_eq!(store.last_run(employer(3)).unwrap(), None);
}

#[test]
fn default_history_limit_keeps_fifty_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in 0..60 {
        store.record_run(&run(employer(1), n)).unwrap();
    }
    let runs = store.runs(employer(1), usize::MAX).unwrap();
    assert_eq!(runs.len(), 50);
    assert_eq!(runs.last().unwrap().inserted, 10);
}

#[test]
fn recording_the_same_run_again_updates_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut r = run(employer(1), 3);
    r.status = RunStatus::Running;
    r.finished_at = None;
    store.record_run(&r).unwrap();
    r.status = RunStatus::Partial;
    r.finished_at = Some(t(999));
    r.error = Some("2 records queued for retry".into());
    store.record_run(&r).unwrap();
    let runs = store.runs(employer(1), 10).unwrap();
    assert_eq!(runs, vec![r]);
}

#[test]
fn status_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(
        store.status(employer(1)).unwrap(),
        EmployerStatus::default()
    );
    store.set_paused(employer(1), true).unwrap();
    store.set_needs_reconnect(employer(1), true).unwrap();
    let s = store
        .set_last_error(employer(1), Some("token rejected"), t(3))
        .unwrap();
    assert_eq!(
        s,
        EmployerStatus {
            paused: true,
            needs_reconnect: true,
            last_error: Some("token rejected".into()),
            last_error_at: Some(t(3)),
        }
    );
    assert_eq!(store.status(employer(1)).unwrap(), s);
    let cleared = store.set_last_error(employer(1), None, t(4)).unwrap();
    assert_eq!((cleared.last_error, cleared.last_error_at), (None, None));
    store.set_paused(employer(2), false).unwrap();
    assert_eq!(store.statuses().unwrap().len(), 2);
}

#[tokio::test]
async fn forget_employer_removes_everything_about_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for e in [employer(1), employer(2)] {
        store.set_cursor(e, &Cursor::default()).await.unwrap();
        store
            .record_failure(&RetryKey::new(e, "employee", "1"), "r", t(0))
            .unwrap();
        store.record_run(&run(e, 1)).unwrap();
        store.set_paused(e, true).unwrap();
    }
    store.forget_employer(employer(1)).await.unwrap();
    assert_eq!(store.cursor(employer(1)).unwrap(), None);
    assert_eq!(store.retry_count(employer(1)).unwrap(), 0);
    assert!(store.runs(employer(1), 10).unwrap().is_empty());
    assert!(!store.status(employer(1)).unwrap().paused);
    assert!(store.cursor(employer(2)).unwrap().is_some());
    assert_eq!(store.retry_count(employer(2)).unwrap(), 1);
}

#[test]
fn installed_version_floor_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = open(&path);
    assert_eq!(store.installed_version_floor().unwrap(), None);
    store.set_installed_version_floor("1.4.2").unwrap();
    drop(store);
    let store = open(&path);
    assert_eq!(
        store.installed_version_floor().unwrap().as_deref(),
        Some("1.4.2")
    );
}

#[test]
fn a_second_open_in_another_process_style_is_refused_not_moved_aside() {
    // sled takes an exclusive file lock; a second handle must fail cleanly and never move the
    // live store aside.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let _store = open(&path);
    let options = StateOptions {
        lock_wait: std::time::Duration::ZERO,
        ..StateOptions::default()
    };
    match StateStore::open_with(&path, options) {
        Err(StateError::Open { .. }) => {}
        other => panic!("expected an Open error, got {other:?}"),
    }
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 1, "nothing moved aside: {entries:?}");
}
