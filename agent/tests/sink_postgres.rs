//! The sink scenarios on PostgreSQL. Each test creates its own database on
//! postgres://postgres@127.0.0.1:5432 and drops it afterwards (also when the test fails).
//! An unreachable PostgreSQL FAILS these tests with a clear message.

mod sink_common;

use std::sync::atomic::{AtomicU32, Ordering};

use arbosync_agent::sink::{SCHEMA_VERSION, Sink, SinkError};
use sink_common::{Harness, Raw, pg_client};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Drops the test database when the test ends, whether it passed or panicked.
struct DbGuard {
    name: String,
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await; use a private runtime on a plain thread (works inside a test runtime).
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping the test database");
            rt.block_on(async {
                let admin = pg_client(ADMIN_URL).await;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

async fn create_database() -> (DbGuard, String) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "arbosync_sink_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let admin = match tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        Err(e) => panic!(
            "PostgreSQL is unreachable at {ADMIN_URL} ({e}); the PostgreSQL sink tests need a \
             running server with trust auth for user postgres"
        ),
    };
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    (DbGuard { name }, url)
}

async fn harness_with_schema(schema: &str) -> Harness {
    let (guard, url) = create_database().await;
    let sink = Sink::connect(&url, schema).await.expect("connect postgres");
    Harness {
        sink,
        raw: Raw::Postgres {
            url: url.clone(),
            schema: schema.to_owned(),
        },
        url,
        schema: schema.to_owned(),
        _guard: Box::new(guard),
    }
}

async fn harness() -> Harness {
    harness_with_schema("arbosync").await
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_and_decimals_are_exact() {
    let h = harness().await;
    sink_common::money_and_decimals_are_exact(&h, "numeric").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_throughput() {
    let h = harness().await;
    sink_common::futures_are_send(&h.sink);
    sink_common::insert_throughput(&h, 20_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_types_are_native() {
    let h = harness_with_schema("arbo_custom").await;
    let sql = "SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' ORDER BY 1) \
               FROM information_schema.columns WHERE table_schema = 'arbo_custom' AND column_name IN \
               ('gross_wage','hours_per_week','start_date','is_accident','first_seen_at','seq','changed_fields')";
    let types = h.raw.text("", sql).await.unwrap_or_default();
    for expected in [
        "employment_salary_period.gross_wage:numeric",
        "employment_workweek_period.hours_per_week:numeric",
        "employment.start_date:date",
        "absence.is_accident:boolean",
        "employee.first_seen_at:timestamp with time zone",
        "mutation.seq:bigint",
        "mutation.changed_fields:jsonb",
    ] {
        assert!(types.contains(expected), "{expected} not in {types}");
    }
    let scale = h
        .raw
        .text(
            "",
            "SELECT numeric_precision || ',' || numeric_scale FROM information_schema.columns \
             WHERE table_schema = 'arbo_custom' AND column_name = 'gross_wage'",
        )
        .await;
    assert_eq!(scale.as_deref(), Some("12,2"));
    // Nothing leaked into the default schema.
    let public = h
        .raw
        .text(
            "",
            "SELECT CAST(COUNT(*) AS TEXT) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .await;
    assert_eq!(public.as_deref(), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_start_up_does_not_break() {
    let (_guard, url) = create_database().await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            Sink::connect(&url, "arbosync").await
        }));
    }
    for task in tasks {
        let sink = task.await.expect("join").expect("concurrent connect");
        assert_eq!(
            sink.schema_version().await.expect("version"),
            SCHEMA_VERSION
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_keep_the_journal_consistent() {
    let h = harness().await;
    let other = Sink::connect(&h.url, "arbosync")
        .await
        .expect("second agent");
    let (a, b) = tokio::join!(
        h.sink.apply("run-a", sink_common::full_person(1)),
        other.apply("run-b", sink_common::full_person(1)),
    );
    let (a, b) = (a.expect("apply a"), b.expect("apply b"));
    assert_eq!(a.inserted + b.inserted, 7, "each row inserted exactly once");
    assert_eq!(a.unchanged + b.unchanged, 7);
    assert_eq!(h.sink.journal(None, 0).await.expect("journal").len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schema_name_and_unreachable_server_are_clear_errors() {
    let (_guard, url) = create_database().await;
    for bad in ["Arbosync", "a-b", "x\"; DROP TABLE y; --", ""] {
        let err = Sink::connect(&url, bad).await.expect_err(bad);
        assert!(matches!(err, SinkError::Connect { .. }), "{bad}: {err}");
    }
    // Nothing listens on port 1: a connect error, classified as transient.
    let err = Sink::connect("postgres://postgres@127.0.0.1:1/x", "arbosync")
        .await
        .expect_err("port 1");
    assert!(matches!(err, SinkError::Connect { .. }), "{err}");
    assert!(err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_transient_then_recovers() {
    let h = harness().await;
    h.sink
        .apply("r", vec![sink_common::employer()])
        .await
        .expect("apply");
    let Raw::Postgres { url, .. } = &h.raw else {
        unreachable!("postgres harness")
    };
    let admin = pg_client(url).await;
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'arbosync-agent' \
             AND pid <> pg_backend_pid()",
        )
        .await
        .expect("terminate");
    let first = h
        .sink
        .apply("r", vec![sink_common::department("d", "x")])
        .await;
    match first {
        Err(e) => assert!(e.is_transient(), "{e}"),
        // The connection task may already have noticed and the sink reconnected.
        Ok(stats) => assert_eq!(stats.inserted, 1),
    }
    let second = h
        .sink
        .apply("r", vec![sink_common::department("d", "x")])
        .await
        .expect("apply after reconnect");
    assert_eq!(second.inserted + second.unchanged, 1);
}
