//! The sink scenarios on SQLite (a fresh file database in a temp dir per test).

mod sink_common;

use arbosync_agent::sink::{Sink, SinkError};
use sink_common::{Harness, Raw};

async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    // A directory that does not exist yet: the sink creates it.
    let path = dir.path().join("nested").join("arbodienst.db");
    let url = format!("sqlite://{}", path.display());
    let sink = Sink::connect(&url, "arbosync")
        .await
        .expect("connect sqlite");
    Harness {
        sink,
        raw: Raw::Sqlite(path),
        url,
        schema: "arbosync".into(),
        _guard: Box::new(dir),
    }
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let h = harness().await;
                sink_common::$name(&h).await;
            }
        )*
    };
}

scenarios!(
    every_contract_column_exists,
    employer_overview_counts_live_rows,
    migrations_are_idempotent,
    refuses_a_newer_schema,
    insert_update_unchanged_with_exact_journal,
    dedupes_within_a_batch,
    soft_delete_cascades_and_comes_back,
    soft_delete_list_and_scoped_reconciliation,
    purge_bsn_then_sync_without_bsn_is_silent,
    purge_salary_and_absences,
    purge_out_of_scope_keeps_only_kept_employees,
    purge_employer_removes_everything,
    journal_seq_strictly_increases,
    runs_case_watch_and_bookkeeping,
    read_api_for_the_sync,
);

#[tokio::test]
async fn money_and_decimals_are_exact() {
    let h = harness().await;
    sink_common::money_and_decimals_are_exact(&h, "text").await;
}

#[tokio::test]
async fn insert_throughput() {
    let h = harness().await;
    sink_common::futures_are_send(&h.sink);
    sink_common::insert_throughput(&h, 20_000).await;
}

#[tokio::test]
async fn file_is_private_and_in_wal_mode() {
    let h = harness().await;
    let Raw::Sqlite(path) = &h.raw else {
        unreachable!("sqlite harness")
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .expect("db file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let mode = h.raw.text("PRAGMA journal_mode", "").await;
    assert_eq!(mode.as_deref(), Some("wal"));
}

#[tokio::test]
async fn in_memory_and_relative_urls_work() {
    let sink = Sink::connect("sqlite::memory:", "arbosync")
        .await
        .expect("memory");
    sink.apply("r", vec![sink_common::employer()])
        .await
        .expect("apply");
    assert_eq!(sink.journal(None, 0).await.expect("journal").len(), 1);

    for bad in ["mysql://u:pw@h/db", "sqlite:/x.db", ""] {
        let err = Sink::connect(bad, "arbosync").await.expect_err(bad);
        assert!(matches!(err, SinkError::InvalidUrl { .. }), "{bad}: {err}");
    }
}
