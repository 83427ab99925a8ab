//! R20, the runtime database role is least-privilege: `packaging/postgres-roles.sql` (run with
//! psql, as documented) on a fresh database of the shared server, then the real agent binary:
//! as the writer before any migration it refuses with "permission denied"; once as the owner
//! (migrations); the roles file again; then `sync --once` as the writer works, including an
//! options change that purges rows (DELETE). As the writer, CREATE, DROP, TRUNCATE, ALTER and
//! writes to `schema_migrations` fail with SQLSTATE 42501; the reader cannot select
//! `employee.bsn` but can read the rest. A table a later migration adds is writable by the writer
//! at once (default privileges) and hidden from the reader until the file is run again.
//! The database and the three roles are dropped afterwards, also when the test fails.

mod security_common;

use std::path::{Path, PathBuf};

use security_common::*;
use tokio_postgres::error::SqlState;

const SCHEMA: &str = "arbosync";

/// A database and three roles on the shared server, dropped on drop.
struct Roles {
    db: String,
    owner: String,
    writer: String,
    reader: String,
}

impl Roles {
    async fn create() -> Roles {
        let id = unique();
        let r = Roles {
            db: format!("arbosync_roles_{id}"),
            owner: format!("arbosync_{id}_owner"),
            writer: format!("arbosync_{id}_writer"),
            reader: format!("arbosync_{id}_reader"),
        };
        pg_admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {}", r.db))
            .await
            .expect("create the test database");
        r
    }

    fn url(&self, role: &str) -> String {
        format!("postgres://{role}@127.0.0.1:5432/{}", self.db)
    }

    async fn as_role(&self, role: &str) -> tokio_postgres::Client {
        pg_connect(&format!(
            "host=127.0.0.1 port=5432 user={role} dbname={}",
            self.db
        ))
        .await
    }

    /// Runs `packaging/postgres-roles.sql` with psql as `postgres`, the way the docs say.
    fn apply_sql_file(&self) {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/postgres-roles.sql");
        let out = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                "5432",
                "-U",
                "postgres",
                "-X",
                "-q",
            ])
            .args(["-d", &self.db, "-v", "ON_ERROR_STOP=1"])
            .arg("-v")
            .arg(format!("owner={}", self.owner))
            .arg("-v")
            .arg(format!("writer={}", self.writer))
            .arg("-v")
            .arg(format!("reader={}", self.reader))
            .arg("-v")
            .arg(format!("schema={SCHEMA}"))
            .arg("-f")
            .arg(&file)
            .output()
            .expect("psql (postgresql-client) must be installed for this test");
        assert!(
            out.status.success(),
            "{} failed: {}",
            file.display(),
            text(&out)
        );
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        pg_cleanup_blocking(vec![
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
            format!("DROP ROLE IF EXISTS {}", self.owner),
            format!("DROP ROLE IF EXISTS {}", self.writer),
            format!("DROP ROLE IF EXISTS {}", self.reader),
        ]);
    }
}

fn write_config(
    dir: &Path,
    name: &str,
    url: &str,
    sim: &loket_sim::RunningSim,
    employer: Option<&str>,
) -> PathBuf {
    let mut text = format!(
        r#"[agent]
state_dir = "{state}"

[database]
url = "{url}"
schema = "{SCHEMA}"

[[connection]]
name = "sim"
api_url = "{api}"
oauth_url = "{oauth}"
client_id = "{client}"
requests_per_second = 1000.0
"#,
        state = dir.join("state").display(),
        api = sim.api_url,
        oauth = sim.oauth_url,
        client = sim.client_id,
    );
    if let Some(options) = employer {
        text.push_str(&format!(
            "\n[[employer]]\nid = \"{}\"\nconnection = \"sim\"\nname = \"Roles test\"\nactive = true\n{options}\n",
            sim.employer_ids[0]
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// The SQLSTATE of a failed statement (`None` when it succeeded).
async fn sqlstate(client: &tokio_postgres::Client, sql: &str) -> Option<SqlState> {
    match client.batch_execute(sql).await {
        Ok(()) => None,
        Err(e) => Some(
            e.code()
                .cloned()
                .unwrap_or_else(|| panic!("{sql}: not a server error: {e}")),
        ),
    }
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_role_syncs_but_cannot_change_the_schema_and_the_reader_cannot_see_bsn() {
    let roles = Roles::create().await;
    let sim = loket_sim::start(loket_sim::SimConfig {
        seed: 81,
        employers: 1,
        employees_per_employer: 6,
        max_page_size: 50,
        ..Default::default()
    })
    .await
    .expect("the simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    roles.apply_sql_file();

    // The writer cannot migrate: a clear refusal, nothing created, no panic.
    let all_on = "all_employments = true\nsalary = true\nbsn = true";
    let writer_cfg = write_config(
        dir.path(),
        "writer.toml",
        &roles.url(&roles.writer),
        &sim,
        Some(all_on),
    );
    let out = agent(&writer_cfg, &["sync", "--once"], &[], None).await;
    let all = text(&out);
    assert_no_panic("writer before migrations", &all);
    assert!(!out.status.success(), "the writer migrated: {all}");
    assert!(
        all.contains("permission denied")
            && all.contains("migration")
            && all.contains("as the schema owner"),
        "no clear refusal: {all}"
    );
    let admin = pg_connect(&format!(
        "host=127.0.0.1 port=5432 user=postgres dbname={}",
        roles.db
    ))
    .await;
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'arbosync'"
        )
        .await,
        0,
        "the writer created tables"
    );

    // The owner migrates (no employers: only the schema), then the grants are re-applied.
    let owner_cfg = write_config(
        dir.path(),
        "owner.toml",
        &roles.url(&roles.owner),
        &sim,
        None,
    );
    let out = agent(&owner_cfg, &["sync", "--once"], &[], None).await;
    assert!(out.status.success(), "owner migration: {}", text(&out));
    roles.apply_sql_file();
    let owners: Vec<String> = admin
        .query(
            "SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = 'arbosync'",
            &[],
        )
        .await
        .expect("table owners")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        owners,
        vec![roles.owner.clone()],
        "tables belong to the owner"
    );

    // The service as the writer: a full sync (inserts, journal, sync_run).
    connect(&writer_cfg, "sim", &sim.refresh_token).await;
    let out = agent(&writer_cfg, &["sync", "--once", "--json"], &[], None).await;
    assert!(out.status.success(), "sync as writer: {}", text(&out));
    let writer = roles.as_role(&roles.writer).await;
    let employees = count(&writer, "SELECT count(*) FROM arbosync.employee").await;
    let salaries = count(
        &writer,
        "SELECT count(*) FROM arbosync.employment_salary_period",
    )
    .await;
    assert!(
        employees > 0 && salaries > 0,
        "the writer's sync wrote rows"
    );
    assert!(count(&writer, "SELECT count(*) FROM arbosync.mutation").await > 0);
    assert!(
        count(
            &writer,
            "SELECT count(*) FROM arbosync.sync_run WHERE status = 'ok'"
        )
        .await
            > 0
    );

    // Options narrowed: the purge (UPDATE bsn = NULL, DELETE salary periods) works as writer.
    write_config(
        dir.path(),
        "writer.toml",
        &roles.url(&roles.writer),
        &sim,
        Some("all_employments = true"),
    );
    let out = agent(&writer_cfg, &["sync", "--once", "--json"], &[], None).await;
    assert!(
        out.status.success(),
        "purging sync as writer: {}",
        text(&out)
    );
    assert_eq!(
        count(
            &writer,
            "SELECT count(*) FROM arbosync.employment_salary_period"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &writer,
            "SELECT count(*) FROM arbosync.employee WHERE bsn IS NOT NULL"
        )
        .await,
        0
    );

    // DDL as the writer: permission denied (42501), every time.
    let denied = [
        "CREATE TABLE arbosync.evil (x int)",
        "CREATE TABLE public.evil (x int)",
        "CREATE SCHEMA evil",
        "CREATE INDEX evil_idx ON arbosync.employee (city)",
        "CREATE VIEW arbosync.evil AS SELECT 1",
        "DROP TABLE arbosync.employee",
        "DROP TABLE arbosync.mutation",
        "DROP SCHEMA arbosync CASCADE",
        "TRUNCATE arbosync.mutation",
        "TRUNCATE arbosync.employee",
        "ALTER TABLE arbosync.employee ADD COLUMN evil int",
        "ALTER TABLE arbosync.employee DROP COLUMN bsn",
        "ALTER TABLE arbosync.mutation DISABLE TRIGGER ALL",
        "ALTER SCHEMA arbosync RENAME TO evil",
        "INSERT INTO arbosync.schema_migrations (version, name, applied_at) VALUES (99, 'x', now())",
        "DELETE FROM arbosync.schema_migrations",
    ];
    for sql in denied {
        assert_eq!(
            sqlstate(&writer, sql).await,
            Some(SqlState::INSUFFICIENT_PRIVILEGE),
            "as writer: {sql}"
        );
    }
    // ...while DML on the sync tables works.
    for sql in [
        "UPDATE arbosync.employee SET city = city",
        "INSERT INTO arbosync.case_watch (employer_id, employee_number, created_at) VALUES ('x', 1, now())",
        "DELETE FROM arbosync.case_watch WHERE employer_id = 'x'",
        "SELECT bsn FROM arbosync.employee",
    ] {
        assert_eq!(sqlstate(&writer, sql).await, None, "as writer: {sql}");
    }

    // The reader: everything but employee.bsn, and no writes.
    let reader = roles.as_role(&roles.reader).await;
    assert_eq!(
        count(
            &reader,
            "SELECT count(*) FROM (SELECT id, employee_number, last_name, city FROM arbosync.employee) e"
        )
        .await,
        employees
    );
    assert!(count(&reader, "SELECT count(*) FROM arbosync.mutation").await > 0);
    for sql in [
        "SELECT bsn FROM arbosync.employee",
        "SELECT * FROM arbosync.employee",
        "UPDATE arbosync.employee SET city = city",
        "DELETE FROM arbosync.mutation",
        "CREATE TABLE arbosync.evil (x int)",
    ] {
        assert_eq!(
            sqlstate(&reader, sql).await,
            Some(SqlState::INSUFFICIENT_PRIVILEGE),
            "as reader: {sql}"
        );
    }

    // A later migration's table (created by the owner): the writer may use it at once, the
    // reader only after the roles file ran again.
    let owner = roles.as_role(&roles.owner).await;
    owner
        .batch_execute("CREATE TABLE arbosync.future_table (x int)")
        .await
        .expect("the owner can create tables");
    assert_eq!(
        sqlstate(&writer, "INSERT INTO arbosync.future_table VALUES (1)").await,
        None
    );
    assert_eq!(
        sqlstate(&reader, "SELECT * FROM arbosync.future_table").await,
        Some(SqlState::INSUFFICIENT_PRIVILEGE)
    );
    roles.apply_sql_file();
    assert_eq!(
        sqlstate(&reader, "SELECT * FROM arbosync.future_table").await,
        None
    );
    assert_eq!(
        sqlstate(&reader, "SELECT bsn FROM arbosync.employee").await,
        Some(SqlState::INSUFFICIENT_PRIVILEGE),
        "re-running the file keeps bsn hidden"
    );

    // And the agent still starts as the writer (no DDL at an up-to-date schema).
    let out = agent(&writer_cfg, &["sync", "--once"], &[], None).await;
    assert!(out.status.success(), "third sync as writer: {}", text(&out));
    drop((writer, reader, owner, admin));
}
