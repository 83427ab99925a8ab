//! State store recovery: a deleted directory, garbled or truncated sled files, undecodable
//! values and a wrong format version all end in a working store that is either intact or empty
//! and reported fresh; an unusable one is moved aside for inspection. Never a panic.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use uuid::Uuid;

use arbosync_agent::state::{Cursor, RetryKey, StateStore};

fn employer() -> Uuid {
    Uuid::from_u128(0x2f3c_0000_0000_4000_8000_0000_0000_0001)
}

/// A store with a cursor and a retry entry, closed again. Returns the cursor.
async fn populated(path: &Path) -> Cursor {
    let (store, _) = StateStore::open(path).unwrap();
    let at = Utc.with_ymd_and_hms(2025, 3, 1, 8, 0, 0).single().unwrap();
    let cursor = Cursor {
        employer_version: 5,
        employment_versions_max: 6,
        last_full_reconcile: Some(at),
        last_incremental: None,
        needs_full: false,
    };
    store.set_cursor(employer(), &cursor).await.unwrap();
    store
        .record_failure(&RetryKey::new(employer(), "employee", "x"), "bad", at)
        .unwrap();
    store.flush().unwrap();
    cursor
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn siblings(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != path)
        .collect();
    out.sort();
    out
}

/// Opening must yield an empty, working store; if the old one was moved aside, it must be next
/// to the original under `<name>.corrupt-<timestamp>`.
async fn assert_usable_and_empty(path: &Path) -> Option<PathBuf> {
    let (store, report) = StateStore::open(path).unwrap_or_else(|e| panic!("open failed: {e}"));
    assert!(
        report.fresh,
        "a recovered or lost store is reported fresh: {report:?}"
    );
    assert_eq!(
        store.cursor(employer()).unwrap(),
        None,
        "all employers need a full sync"
    );
    assert_eq!(store.retry_count_all(), 0);
    // And it works.
    store
        .set_cursor(employer(), &Cursor::default())
        .await
        .unwrap();
    assert_eq!(store.cursor(employer()).unwrap(), Some(Cursor::default()));
    if let Some(aside) = &report.recovered_from {
        assert!(report.reason.is_some());
        assert!(aside.exists(), "the corrupt store is kept for inspection");
        let name = aside.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("sled.corrupt-"), "{name}");
        assert_eq!(aside.parent(), path.parent());
    }
    report.recovered_from
}

#[tokio::test]
async fn deleted_store_directory_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sled");
    populated(&path).await;
    std::fs::remove_dir_all(&path).unwrap();
    let aside = assert_usable_and_empty(&path).await;
    assert_eq!(aside, None, "nothing to move aside");
}

#[tokio::test]
async fn garbled_files_are_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sled");
    populated(&path).await;
    let mut rng = StdRng::seed_from_u64(7);
    let originals = files(&path);
    assert!(!originals.is_empty());
    for file in &originals {
        let len = std::fs::metadata(file).unwrap().len().max(64) as usize;
        let mut junk = vec![0u8; len];
        rng.fill_bytes(&mut junk);
        std::fs::write(file, &junk).unwrap();
    }
    let aside = assert_usable_and_empty(&path)
        .await
        .expect("a garbled store is moved aside");
    // The old files are in the moved directory, untouched.
    assert_eq!(files(&aside).len(), originals.len());
    assert_eq!(siblings(&path), vec![aside]);
}

#[tokio::test]
async fn garbled_data_file_only_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sled");
    populated(&path).await;
    let db = path.join("db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    let mut junk = vec![0u8; len];
    StdRng::seed_from_u64(11).fill_bytes(&mut junk);
    std::fs::write(&db, junk).unwrap();
    assert_usable_and_empty(&path).await;
}

#[tokio::test]
async fn truncated_files_never_panic_and_never_give_a_wrong_cursor() {
    for keep in [0u64, 1, 100, 4096, 70_000] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sled");
        let original = populated(&path).await;
        let mut truncated_any = false;
        for file in files(&path) {
            let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
            let len = f.metadata().unwrap().len();
            truncated_any |= len > keep;
            f.set_len(len.min(keep)).unwrap();
        }
        let (store, report) =
            StateStore::open(&path).unwrap_or_else(|e| panic!("keep {keep}: {e}"));
        match store.cursor(employer()).unwrap() {
            // The data survived the cut: it must be exactly what was written.
            Some(c) => {
                assert_eq!(c, original, "keep {keep}");
                assert!(!report.fresh, "keep {keep}: {report:?}");
            }
            // Lost: the store says so, so every employer gets a full reconciliation.
            None => {
                assert!(truncated_any);
                assert!(report.fresh, "keep {keep}: {report:?}");
            }
        }
        store
            .set_cursor(employer(), &Cursor::default())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn data_file_truncated_to_nothing_is_reported_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sled");
    populated(&path).await;
    for file in files(&path) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(0)
            .unwrap();
    }
    assert_usable_and_empty(&path).await;
}

#[tokio::test]
async fn undecodable_value_moves_the_store_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sled");
    populated(&path).await;
    {
        // Plant a value this agent cannot read, behind the store's back.
        let db = open_raw(&path);
        db.open_tree("runs")
            .unwrap()
            .insert([1u8; 40], &b"{not json"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let aside = assert_usable_and_empty(&path).await;
    assert!(aside.is_some());
}

#[tokio::test]
async fn wrong_format_version_moves_the_store_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sled");
    populated(&path).await;
    {
        let db = open_raw(&path);
        db.open_tree("meta")
            .unwrap()
            .insert("format_version", &99u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let (_, report) = StateStore::open(&path).unwrap();
    assert!(
        report.reason.as_deref().unwrap().contains("99"),
        "{report:?}"
    );
    assert!(report.recovered_from.is_some());
}

#[tokio::test]
async fn future_value_version_moves_the_store_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sled");
    populated(&path).await;
    {
        let db = open_raw(&path);
        let v = br#"{"v":2,"paused":true,"needs_reconnect":false,"last_error":null,"last_error_at":null}"#;
        db.open_tree("status")
            .unwrap()
            .insert(employer().as_bytes(), &v[..])
            .unwrap();
        db.flush().unwrap();
    }
    let (_, report) = StateStore::open(&path).unwrap();
    assert!(report.recovered_from.is_some(), "{report:?}");
}

#[tokio::test]
async fn repeated_recoveries_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sled");
    let mut asides = Vec::new();
    for _ in 0..3 {
        populated(&path).await;
        {
            let db = open_raw(&path);
            db.open_tree("meta")
                .unwrap()
                .insert("format_version", &[0u8][..])
                .unwrap();
            db.flush().unwrap();
        }
        let (_, report) = StateStore::open(&path).unwrap();
        asides.push(report.recovered_from.unwrap());
    }
    asides.sort();
    asides.dedup();
    assert_eq!(asides.len(), 3);
}

/// Opens the store with sled directly, as a tool tampering with it would. sled releases its
/// file lock from background threads shortly after the last handle of the previous opener is
/// dropped, so a lock error right after `populated` is retried for a moment.
fn open_raw(path: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open the sled store for tampering: {e}"),
        }
    }
}
