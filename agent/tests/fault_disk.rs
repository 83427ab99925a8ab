//! A full disk under the real binary (R9 of `reliability-security.md` §4). The state directory
//! (and, on SQLite, the database file) live on a small tmpfs of the test's own; after the initial
//! sync a ballast file takes every free byte. Then, with changes waiting at the source:
//! - `sync --once` fails with a clear "disk is full" error and no panic;
//! - nothing of the run is visible (no journal rows, rows unchanged), the SQLite file passes
//!   `PRAGMA integrity_check`, and the cursors did not move;
//! - once the ballast is removed, the next run completes, with the journal a valid history and a
//!   full run equal to the truth.
//!
//! Mounting a tmpfs needs root (CI runs as root); elsewhere the test fails and says so.

mod common_e2e;
mod fault_common;
mod tmpfs;

use common_e2e::*;
use fault_common::*;
use tmpfs::{Tmpfs, fill};

async fn disk_full_fails_safe(backend: Backend) {
    let fs = Tmpfs::mount(48);
    let dir = tempfile::tempdir_in(&fs.path).expect("tempdir on the tmpfs");
    let env = Env::start_in(
        backend,
        sim_sized(95, 2, 40, 7),
        &[Opts::everything(), Opts::default()],
        dir,
    )
    .await;
    let h = env.handle();
    let ids: Vec<loket_sim::Uuid> = env.employers.iter().map(|(id, _)| *id).collect();
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;

    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(95);
    let changed = mutate(&h, &mut rng, &ids, 8);
    assert!(changed > 0, "the source changed");
    let cursors = state_of(&env).0;
    let seq = env.db.max_seq().await;
    let tokens_before = h.stats().token_requests;
    let ballast = fill(&fs.path, "ballast");

    // (The test reads the database only after space is freed: opening a WAL database needs room
    // too.)
    for attempt in ["first", "second"] {
        let (out, doc) = env.sync_with(&[], &[]).await;
        let all = text(&out);
        assert_eq!(
            doc["ok"], false,
            "--json still answers with a document: {all}"
        );
        assert!(
            doc["error"]
                .as_str()
                .is_some_and(|e| e.contains("the disk is full")),
            "{doc}"
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{attempt} run on a full disk fails: {all}"
        );
        assert!(!all.contains("panicked"), "no panic: {all}");
        assert!(
            all.contains("the disk is full"),
            "the error says the disk is full: {all}"
        );
    }
    assert_eq!(
        h.stats().token_requests,
        tokens_before,
        "Loket was not asked for a token (it would rotate one that cannot be saved)"
    );

    std::fs::remove_file(&ballast).expect("remove the ballast");
    assert_eq!(env.db.max_seq().await, seq, "nothing was journalled");
    if backend == Backend::Sqlite {
        assert_eq!(
            env.db.scalar("PRAGMA integrity_check").await.as_deref(),
            Some("ok")
        );
    }
    assert_journal_valid(&env.db, "after the full disk").await;
    assert_eq!(state_of(&env).0, cursors, "the cursors did not move");
    let seq = env.db.max_seq().await;
    let doc = env.sync_ok(&[]).await;
    env.check_run(&mut tr, &doc, seq, "after space was freed")
        .await;
    assert_converged(&env, "after the full disk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_fails_safe_on_sqlite() {
    disk_full_fails_safe(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_fails_safe_on_postgres() {
    disk_full_fails_safe(Backend::Postgres).await;
}

/// The reserve beside a refresh token: on a full disk, a token Loket already rotated is still
/// saved (the reserve is given up for it), and without a reserve the refresh is refused before
/// Loket is asked.
#[test]
fn a_rotated_token_is_saved_on_a_full_disk() {
    use arbosync_agent::secrets::SecretStore;
    let fs = Tmpfs::mount(4);
    let state = fs.path.join("state");
    let store = SecretStore::open(&state).expect("open the secret store");
    store.save("sim", "token-1").expect("first token");
    store.reserve("sim").expect("reserve while there is room");
    let ballast = fill(&fs.path, "ballast");
    store
        .save("sim", "token-2-rotated-by-loket")
        .expect("the rotated token is saved in the reserve's place");
    assert_eq!(
        store
            .load("sim")
            .expect("load")
            .map(|t| t.expose_secret().to_string()),
        Some("token-2-rotated-by-loket".to_string())
    );
    assert!(
        !state.join("secrets/.sim.token.reserve").exists(),
        "the save used the reserve's room"
    );
    let more = fill(&fs.path, "more-ballast");
    let err = store
        .reserve("sim")
        .expect_err("no new reserve on a full disk");
    assert!(err.to_string().contains("No space left"), "{err}");
    std::fs::remove_file(&ballast).expect("remove the ballast");
    std::fs::remove_file(&more).expect("remove the ballast");
    store
        .reserve("sim")
        .expect("a new reserve once there is room");
}
