//! Sink scenarios shared by `sink_sqlite.rs` and `sink_postgres.rs`: every scenario runs against
//! a fresh database of each backend through the public `Sink` API, plus raw SQL where the stored
//! representation itself is the point (money, hard deletes, bookkeeping columns).

#![allow(dead_code)] // each test binary uses its own subset of the helpers

use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use arbosync_agent::records::{
    Absence, AbsenceProgress, Department, DepartmentPeriod, Employee, Employer, Employment, Entity,
    PayrollPeriod, Record, SalaryPeriod, WageType, WorkweekPeriod,
};
use arbosync_agent::sink::{
    ApplyStats, DeleteScope, JournalRow, RunCounts, RunKind, RunStatus, SCHEMA_VERSION, Sink,
    SinkError,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;

pub const ER: &str = "employer-1";
pub const RUN: &str = "run-1";

/// Raw access to the database under test, next to the `Sink`.
pub enum Raw {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

pub struct Harness {
    pub sink: Sink,
    pub raw: Raw,
    pub url: String,
    pub schema: String,
    /// Keeps the temp dir / database alive for the test's duration.
    pub _guard: Box<dyn std::any::Any + Send>,
}

impl Raw {
    /// Replaces `{s}` by the schema prefix (`"schema".` on PostgreSQL, nothing on SQLite).
    fn render(&self, sql: &str) -> String {
        match self {
            Raw::Sqlite(_) => sql.replace("{s}", ""),
            Raw::Postgres { schema, .. } => sql.replace("{s}", &format!("\"{schema}\".")),
        }
    }

    /// Runs a query returning one optional text value.
    pub async fn text(&self, sqlite_sql: &str, pg_sql: &str) -> Option<String> {
        match self {
            Raw::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open raw sqlite");
                let sql = self.render(sqlite_sql);
                conn.query_row(&sql, [], |r| r.get::<_, Option<String>>(0))
                    .unwrap_or_else(|e| panic!("raw query {sql}: {e}"))
            }
            Raw::Postgres { url, .. } => {
                let client = pg_client(url).await;
                let sql = self.render(pg_sql);
                let row = client
                    .query_one(&sql, &[])
                    .await
                    .unwrap_or_else(|e| panic!("raw query {sql}: {e}"));
                row.get::<_, Option<String>>(0)
            }
        }
    }

    /// Runs a statement (same SQL on both backends, `{s}` = schema prefix).
    pub async fn execute(&self, sql: &str) {
        let sql = self.render(sql);
        match self {
            Raw::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open raw sqlite");
                conn.execute_batch(&sql)
                    .unwrap_or_else(|e| panic!("raw statement {sql}: {e}"));
            }
            Raw::Postgres { url, .. } => {
                pg_client(url)
                    .await
                    .batch_execute(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("raw statement {sql}: {e}"));
            }
        }
    }

    /// Number of rows (live or soft-deleted) of a table for the test employer.
    pub async fn count(&self, table: &str) -> i64 {
        let sql =
            format!("SELECT CAST(COUNT(*) AS TEXT) FROM {{s}}{table} WHERE employer_id = '{ER}'");
        let text = self.text(&sql, &sql).await.expect("count");
        text.parse().expect("count is a number")
    }

    /// The column names of a table, in any order.
    pub async fn columns(&self, table: &str) -> HashSet<String> {
        let (sqlite, pg) = (
            format!("SELECT group_concat(name, ',') FROM pragma_table_info('{table}')"),
            format!(
                "SELECT string_agg(column_name, ',') FROM information_schema.columns \
                 WHERE table_schema = '{}' AND table_name = '{table}'",
                match self {
                    Raw::Postgres { schema, .. } => schema.as_str(),
                    Raw::Sqlite(_) => "",
                }
            ),
        );
        self.text(&sqlite, &pg)
            .await
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

pub async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is unreachable at {url}: {e}"));
    tokio::spawn(connection);
    client
}

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("test decimal")
}

pub fn employer() -> Record {
    Employer {
        id: ER.into(),
        source: "loket".into(),
        employer_number: Some(20720),
        name: "Voorbeeld B.V.".into(),
        chamber_of_commerce_number: Some("18124676".into()),
    }
    .into()
}

pub fn department(id: &str, name: &str) -> Record {
    Department {
        id: id.into(),
        employer_id: ER.into(),
        code: Some(2),
        name: Some(name.into()),
        parent_id: None,
    }
    .into()
}

pub fn employee_struct(id: &str, number: i64) -> Employee {
    Employee {
        id: id.into(),
        employer_id: ER.into(),
        employee_number: number,
        initials: Some("S.L.".into()),
        first_name: Some("Susan".into()),
        prefix: Some("van".into()),
        last_name: Some("Bergen".into()),
        formatted_name: Some("Bergen S.L. van".into()),
        date_of_birth: Some(date("1995-05-21")),
        gender: Some("Vrouw".into()),
        gender_code: Some(2),
        email: Some("s@example.nl".into()),
        phone: None,
        mobile_phone: Some("+31 6-1231456".into()),
        street: Some("Voordijk".into()),
        house_number: Some(12),
        house_number_addition: None,
        postal_code: Some("1234 AA".into()),
        city: Some("Leiden".into()),
        country_code: Some("NL".into()),
        bsn: None,
    }
}

pub fn employee(id: &str, number: i64) -> Record {
    employee_struct(id, number).into()
}

pub fn employment(id: &str, employee_id: &str) -> Record {
    Employment {
        id: id.into(),
        employer_id: ER.into(),
        employee_id: employee_id.into(),
        start_date: date("2021-03-01"),
        end_date: None,
        planned_end_date: Some(date("2022-02-28")),
        contract_type: Some("Onbepaalde tijd".into()),
        contract_type_code: Some(1),
        payroll_tax_number: Some("111111110L46".into()),
    }
    .into()
}

pub fn department_period(id: &str, employment_id: &str) -> Record {
    DepartmentPeriod {
        id: id.into(),
        employer_id: ER.into(),
        employment_id: employment_id.into(),
        department_id: Some("dept-1".into()),
        function_name: Some("Accountmanager".into()),
        start_date: date("2021-03-01"),
        end_date: None,
    }
    .into()
}

pub fn workweek_period(id: &str, employment_id: &str) -> Record {
    WorkweekPeriod {
        id: id.into(),
        employer_id: ER.into(),
        employment_id: employment_id.into(),
        start_date: date("2024-01-01"),
        end_date: None,
        hours_per_week: Some(dec("24")),
        days_per_week: Some(dec("3")),
        parttime_percentage: Some(dec("60.00")),
        work_pattern: Some(r#"{"oddWeeks":{"monday":8},"evenWeeks":{"monday":8}}"#.into()),
    }
    .into()
}

pub fn salary_period(id: &str, employment_id: &str, wage: &str) -> Record {
    SalaryPeriod {
        id: id.into(),
        employer_id: ER.into(),
        employment_id: employment_id.into(),
        start_date: date("2024-01-01"),
        end_date: None,
        gross_wage: Some(dec(wage)),
        wage_type: Some(WageType::Period),
        payroll_period: Some(PayrollPeriod::Month),
        is_full_time_amount: Some(true),
    }
    .into()
}

pub fn absence(id: &str, employee_id: &str, last_day: Option<&str>) -> Record {
    Absence {
        id: id.into(),
        employer_id: ER.into(),
        employee_id: employee_id.into(),
        employment_id: None,
        first_day: date("2025-01-06"),
        last_day: last_day.map(date),
        end_reason: None,
        end_reason_code: None,
        cause: Some("Ziekte".into()),
        cause_code: Some(1),
        expected_duration: None,
        expected_duration_code: None,
        is_work_related: Some(false),
        is_accident: Some(false),
        is_third_party_liability: None,
        current_incapacity_percentage: Some(dec("100")),
    }
    .into()
}

pub fn progress(id: &str, absence_id: &str, percentage: &str) -> Record {
    AbsenceProgress {
        id: id.into(),
        employer_id: ER.into(),
        absence_id: absence_id.into(),
        start_date: date("2025-01-06"),
        end_date: None,
        incapacity_percentage: Some(dec(percentage)),
        work_resumption_type: None,
        work_resumption_type_code: None,
    }
    .into()
}

/// One employee with an employment, its three periods, and an open absence with progress.
pub fn full_person(n: u32) -> Vec<Record> {
    let (ee, em, ab) = (format!("ee-{n}"), format!("em-{n}"), format!("ab-{n}"));
    vec![
        employee(&ee, i64::from(n)),
        employment(&em, &ee),
        department_period(&format!("dp-{n}"), &em),
        workweek_period(&format!("wp-{n}"), &em),
        salary_period(&format!("sp-{n}"), &em, "4321.09"),
        absence(&ab, &ee, None),
        progress(&format!("ap-{n}"), &ab, "100"),
    ]
}

pub fn stats(inserted: u64, updated: u64, unchanged: u64) -> ApplyStats {
    ApplyStats {
        inserted,
        updated,
        deleted: 0,
        unchanged,
    }
}

async fn journal_after(sink: &Sink, seq: i64) -> Vec<JournalRow> {
    sink.journal(Some(ER), seq).await.expect("read journal")
}

async fn last_seq(sink: &Sink) -> i64 {
    sink.journal(None, 0)
        .await
        .expect("read journal")
        .last()
        .map_or(0, |r| r.seq)
}

fn ops(rows: &[JournalRow]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|r| (r.op.clone(), r.entity.clone(), r.entity_id.clone()))
        .collect()
}

fn op(o: &str, entity: &str, id: &str) -> (String, String, String) {
    (o.to_owned(), entity.to_owned(), id.to_owned())
}

fn all_columns(entity: Entity) -> Vec<String> {
    entity.columns().iter().map(|c| c.name.to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// Scenarios

pub async fn every_contract_column_exists(h: &Harness) {
    for entity in Entity::ALL {
        let have = h.raw.columns(entity.table()).await;
        for c in entity.columns() {
            assert!(
                have.contains(c.name),
                "{}.{} missing",
                entity.table(),
                c.name
            );
        }
        for c in ["content_hash", "first_seen_at", "updated_at", "deleted_at"] {
            assert!(have.contains(c), "{}.{c} missing", entity.table());
        }
    }
    let expected: &[(&str, &[&str])] = &[
        ("employer", &["last_synced_at"]),
        (
            "mutation",
            &[
                "seq",
                "employer_id",
                "entity",
                "entity_id",
                "op",
                "changed_fields",
                "run_id",
                "recorded_at",
            ],
        ),
        (
            "case_watch",
            &["employer_id", "employee_number", "created_at"],
        ),
        (
            "sync_run",
            &[
                "id",
                "employer_id",
                "kind",
                "started_at",
                "finished_at",
                "status",
                "inserted",
                "updated",
                "deleted",
                "failed",
            ],
        ),
    ];
    for (table, cols) in expected {
        let have = h.raw.columns(table).await;
        for c in *cols {
            assert!(have.contains(*c), "{table}.{c} missing");
        }
    }
}

pub async fn migrations_are_idempotent(h: &Harness) {
    assert_eq!(
        h.sink.schema_version().await.expect("version"),
        SCHEMA_VERSION
    );
    for _ in 0..2 {
        let again = Sink::connect(&h.url, &h.schema).await.expect("reconnect");
        assert_eq!(
            again.schema_version().await.expect("version"),
            SCHEMA_VERSION
        );
    }
    let rows = h
        .raw
        .text(
            "SELECT CAST(COUNT(*) AS TEXT) FROM {s}schema_migrations",
            "SELECT CAST(COUNT(*) AS TEXT) FROM {s}schema_migrations",
        )
        .await;
    assert_eq!(rows.as_deref(), Some(SCHEMA_VERSION.to_string().as_str()));
}

pub async fn refuses_a_newer_schema(h: &Harness) {
    h.raw
        .execute(
            "INSERT INTO {s}schema_migrations (version, name, applied_at) \
             VALUES (999, 'from the future', '2030-01-01T00:00:00Z')",
        )
        .await;
    match Sink::connect(&h.url, &h.schema).await {
        Err(SinkError::SchemaTooNew { found, supported }) => {
            assert_eq!(found, 999);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

pub async fn insert_update_unchanged_with_exact_journal(h: &Harness) {
    let sink = &h.sink;
    let mut batch = vec![employer(), department("dept-1", "Verkoop")];
    batch.extend(full_person(1));
    let n = batch.len() as u64;
    assert_eq!(
        sink.apply(RUN, batch.clone()).await.expect("apply"),
        stats(n, 0, 0)
    );
    let rows = journal_after(sink, 0).await;
    assert_eq!(rows.len() as u64, n);
    for (row, record) in rows.iter().zip(&batch) {
        assert_eq!(row.op, "insert");
        assert_eq!(row.entity, record.entity().table());
        assert_eq!(row.entity_id, record.id());
        assert_eq!(row.employer_id, ER);
        assert_eq!(row.run_id, RUN);
        assert_eq!(row.changed_fields, all_columns(record.entity()));
    }

    // Replaying the same batch changes nothing and journals nothing.
    let seq = last_seq(sink).await;
    assert_eq!(
        sink.apply("run-2", batch.clone()).await.expect("replay"),
        stats(0, 0, n)
    );
    assert!(
        journal_after(sink, seq).await.is_empty(),
        "replay wrote journal rows"
    );

    // A real change: exactly the changed column names, never values.
    let mut changed = employee_struct("ee-1", 1);
    changed.last_name = Some("Jansen".into());
    changed.email = Some("j@example.nl".into());
    let out = sink
        .apply(
            "run-3",
            vec![changed.into(), department("dept-1", "Verkoop")],
        )
        .await
        .expect("update");
    assert_eq!(out, stats(0, 1, 1));
    let rows = journal_after(sink, seq).await;
    assert_eq!(ops(&rows), vec![op("update", "employee", "ee-1")]);
    assert_eq!(rows[0].changed_fields, vec!["last_name", "email"]);
    assert_eq!(rows[0].run_id, "run-3");
    let hashes = sink
        .stored_hashes(ER, Entity::Employee)
        .await
        .expect("hashes");
    let mut expected = employee_struct("ee-1", 1);
    expected.last_name = Some("Jansen".into());
    expected.email = Some("j@example.nl".into());
    assert_eq!(
        hashes.get("ee-1"),
        Some(&Record::from(expected).content_hash())
    );
}

pub async fn dedupes_within_a_batch(h: &Harness) {
    let sink = &h.sink;
    let batch = vec![
        department("dept-1", "first"),
        department("dept-2", "other"),
        department("dept-1", "last"),
    ];
    assert_eq!(sink.apply(RUN, batch).await.expect("apply"), stats(2, 0, 0));
    let rows = journal_after(sink, 0).await;
    assert_eq!(rows.len(), 2);
    let hashes = sink
        .stored_hashes(ER, Entity::Department)
        .await
        .expect("hashes");
    assert_eq!(
        hashes.get("dept-1"),
        Some(&department("dept-1", "last").content_hash())
    );
    // Same key twice against an existing row (an upsert touching a row twice on PostgreSQL).
    let seq = last_seq(sink).await;
    let batch = vec![department("dept-1", "again"), department("dept-1", "final")];
    assert_eq!(sink.apply(RUN, batch).await.expect("apply"), stats(0, 1, 0));
    assert_eq!(journal_after(sink, seq).await.len(), 1);
    let name = h
        .raw
        .text(
            "SELECT name FROM {s}department WHERE id = 'dept-1'",
            "SELECT name FROM {s}department WHERE id = 'dept-1'",
        )
        .await;
    assert_eq!(name.as_deref(), Some("final"));
}

pub async fn soft_delete_cascades_and_comes_back(h: &Harness) {
    let sink = &h.sink;
    let mut batch = full_person(1);
    batch.extend(full_person(2));
    sink.apply(RUN, batch).await.expect("apply");
    let seq = last_seq(sink).await;

    // Full reconciliation sees only employment em-2: em-1 and its periods are soft-deleted.
    let seen: HashSet<String> = ["em-2".to_owned()].into();
    let n = sink
        .soft_delete_missing(
            "run-2",
            ER,
            Entity::Employment,
            &seen,
            &DeleteScope::Employer,
        )
        .await
        .expect("soft delete");
    assert_eq!(n, 4);
    let rows = journal_after(sink, seq).await;
    assert_eq!(
        ops(&rows),
        vec![
            op("delete", "employment", "em-1"),
            op("delete", "employment_department_period", "dp-1"),
            op("delete", "employment_workweek_period", "wp-1"),
            op("delete", "employment_salary_period", "sp-1"),
        ]
    );
    assert!(rows.iter().all(|r| r.changed_fields == vec!["deleted_at"]));
    let ids = sink.stored_ids(ER, Entity::Employment).await.expect("ids");
    assert_eq!(ids, ["em-2".to_owned()].into());
    assert!(
        !sink
            .stored_hashes(ER, Entity::WorkweekPeriod)
            .await
            .expect("h")
            .contains_key("wp-1")
    );
    assert_eq!(
        h.raw.count("employment").await,
        2,
        "soft delete keeps the row"
    );

    // Deleting again adds nothing.
    let seq = last_seq(sink).await;
    let n = sink
        .soft_delete_missing(
            "run-3",
            ER,
            Entity::Employment,
            &seen,
            &DeleteScope::Employer,
        )
        .await
        .expect("soft delete again");
    assert_eq!(n, 0);
    let n = sink
        .soft_delete(
            "run-3",
            Entity::Employment,
            ER,
            &["em-1".to_owned(), "nope".to_owned()],
        )
        .await
        .expect("soft delete list");
    assert_eq!(n, 0);
    assert!(journal_after(sink, seq).await.is_empty());

    // It comes back unchanged: deleted_at cleared, one update naming deleted_at.
    let out = sink
        .apply("run-4", vec![employment("em-1", "ee-1")])
        .await
        .expect("back");
    assert_eq!(out, stats(0, 1, 0));
    let rows = journal_after(sink, seq).await;
    assert_eq!(ops(&rows), vec![op("update", "employment", "em-1")]);
    assert_eq!(rows[0].changed_fields, vec!["deleted_at"]);
    // A period comes back changed: the changed columns plus deleted_at.
    let seq = last_seq(sink).await;
    let out = sink
        .apply("run-4", vec![salary_period("sp-1", "em-1", "5000.00")])
        .await
        .expect("back changed");
    assert_eq!(out, stats(0, 1, 0));
    let rows = journal_after(sink, seq).await;
    assert_eq!(rows[0].changed_fields, vec!["gross_wage", "deleted_at"]);
    assert!(
        sink.stored_ids(ER, Entity::SalaryPeriod)
            .await
            .expect("ids")
            .contains("sp-1")
    );
}

pub async fn soft_delete_list_and_scoped_reconciliation(h: &Harness) {
    let sink = &h.sink;
    let mut batch = full_person(1);
    batch.push(absence("ab-1b", "ee-1", Some("2025-01-10")));
    batch.extend(full_person(2));
    sink.apply(RUN, batch).await.expect("apply");

    // An absence withdrawn at the source: it and its progress go.
    let seq = last_seq(sink).await;
    let n = sink
        .soft_delete("run-2", Entity::Absence, ER, &["ab-2".to_owned()])
        .await
        .expect("withdraw");
    assert_eq!(n, 2);
    assert_eq!(
        ops(&journal_after(sink, seq).await),
        vec![
            op("delete", "absence", "ab-2"),
            op("delete", "absence_progress", "ap-2")
        ]
    );

    // Reconciling the absences of ee-1 only: ab-1b is missing, ee-2's rows are out of scope.
    let seq = last_seq(sink).await;
    let seen: HashSet<String> = ["ab-1".to_owned()].into();
    let scope = DeleteScope::Parents(["ee-1".to_owned()].into());
    let n = sink
        .soft_delete_missing("run-3", ER, Entity::Absence, &seen, &scope)
        .await
        .expect("scoped");
    assert_eq!(n, 1);
    assert_eq!(
        ops(&journal_after(sink, seq).await),
        vec![op("delete", "absence", "ab-1b")]
    );
    let open = sink.open_absences(ER).await.expect("open absences");
    assert_eq!(open, vec![("ab-1".to_owned(), "ee-1".to_owned())]);

    // An entity without a parent cannot be scoped by parent.
    let err = sink
        .soft_delete_missing("run-3", ER, Entity::Department, &seen, &scope)
        .await
        .expect_err("no parent");
    assert!(matches!(err, SinkError::Query { .. }));
}

pub async fn purge_bsn_then_sync_without_bsn_is_silent(h: &Harness) {
    let sink = &h.sink;
    let mut with_bsn = employee_struct("ee-1", 1);
    with_bsn.bsn = Some("111222333".into());
    sink.apply(RUN, vec![with_bsn.into(), employee("ee-2", 2)])
        .await
        .expect("apply");
    let seq = last_seq(sink).await;
    assert_eq!(sink.purge_bsn("run-2", ER).await.expect("purge"), 1);
    let rows = journal_after(sink, seq).await;
    assert_eq!(ops(&rows), vec![op("update", "employee", "ee-1")]);
    assert_eq!(rows[0].changed_fields, vec!["bsn"]);
    let left = h
        .raw
        .text(
            "SELECT CAST(COUNT(*) AS TEXT) FROM {s}employee WHERE bsn IS NOT NULL",
            "SELECT CAST(COUNT(*) AS TEXT) FROM {s}employee WHERE bsn IS NOT NULL",
        )
        .await;
    assert_eq!(left.as_deref(), Some("0"));

    // The next incremental run, with the bsn option off, writes nothing at all.
    let seq = last_seq(sink).await;
    let out = sink
        .apply("run-3", vec![employee("ee-1", 1), employee("ee-2", 2)])
        .await
        .expect("apply");
    assert_eq!(out, stats(0, 0, 2));
    assert!(journal_after(sink, seq).await.is_empty());
    assert_eq!(sink.purge_bsn("run-4", ER).await.expect("purge again"), 0);
}

pub async fn purge_salary_and_absences(h: &Harness) {
    let sink = &h.sink;
    let mut batch = full_person(1);
    batch.extend(full_person(2));
    sink.apply(RUN, batch).await.expect("apply");
    sink.soft_delete("run-2", Entity::SalaryPeriod, ER, &["sp-2".to_owned()])
        .await
        .expect("soft delete");

    let seq = last_seq(sink).await;
    assert_eq!(
        sink.purge_salary("run-3", ER).await.expect("purge salary"),
        2
    );
    assert_eq!(h.raw.count("employment_salary_period").await, 0);
    let rows = journal_after(sink, seq).await;
    // sp-2 was already journaled as deleted; only sp-1 gets a delete row now.
    assert_eq!(
        ops(&rows),
        vec![op("delete", "employment_salary_period", "sp-1")]
    );
    assert_eq!(rows[0].changed_fields, all_columns(Entity::SalaryPeriod));
    let wages = h
        .raw
        .text(
            "SELECT CAST(COUNT(*) AS TEXT) FROM {s}employment_salary_period",
            "SELECT CAST(COUNT(*) AS TEXT) FROM {s}employment_salary_period",
        )
        .await;
    assert_eq!(wages.as_deref(), Some("0"));

    let seq = last_seq(sink).await;
    assert_eq!(
        sink.purge_absences("run-4", ER)
            .await
            .expect("purge absences"),
        4
    );
    assert_eq!(h.raw.count("absence").await, 0);
    assert_eq!(h.raw.count("absence_progress").await, 0);
    assert_eq!(
        ops(&journal_after(sink, seq).await),
        vec![
            op("delete", "absence_progress", "ap-1"),
            op("delete", "absence_progress", "ap-2"),
            op("delete", "absence", "ab-1"),
            op("delete", "absence", "ab-2"),
        ]
    );
    assert_eq!(
        h.raw.count("employment").await,
        2,
        "employments are untouched"
    );
}

pub async fn purge_out_of_scope_keeps_only_kept_employees(h: &Harness) {
    let sink = &h.sink;
    let mut batch = vec![employer(), department("dept-1", "Verkoop")];
    batch.extend(full_person(1));
    batch.extend(full_person(2));
    sink.apply(RUN, batch).await.expect("apply");
    let seq = last_seq(sink).await;
    let keep: HashSet<String> = ["ee-1".to_owned()].into();
    assert_eq!(
        sink.purge_out_of_scope("run-2", ER, &keep)
            .await
            .expect("purge"),
        7
    );
    let rows = journal_after(sink, seq).await;
    assert_eq!(rows.len(), 7);
    assert!(
        rows.iter()
            .all(|r| r.op == "delete" && r.entity_id.ends_with("-2"))
    );
    assert_eq!(rows.last().map(|r| r.entity.as_str()), Some("employee"));
    for table in ["employee", "employment", "absence", "absence_progress"] {
        assert_eq!(h.raw.count(table).await, 1, "{table}");
    }
    assert_eq!(h.raw.count("department").await, 1);
    assert_eq!(h.raw.count("employer").await, 1);
}

pub async fn purge_employer_removes_everything(h: &Harness) {
    let sink = &h.sink;
    let mut batch = vec![employer(), department("dept-1", "Verkoop")];
    batch.extend(full_person(1));
    sink.apply(RUN, batch).await.expect("apply");
    sink.start_run(RUN, ER, RunKind::Full).await.expect("start");
    let other = Department {
        id: "other-dept".into(),
        employer_id: "employer-2".into(),
        code: None,
        name: None,
        parent_id: None,
    };
    sink.apply(RUN, vec![other.into()])
        .await
        .expect("apply other");

    assert_eq!(sink.purge_employer("purge-1", ER).await.expect("purge"), 9);
    for entity in Entity::ALL {
        assert_eq!(h.raw.count(entity.table()).await, 0, "{entity}");
    }
    assert_eq!(h.raw.count("sync_run").await, 0);
    let rows = journal_after(sink, 0).await;
    assert_eq!(ops(&rows), vec![op("delete", "employer", ER)]);
    assert!(rows[0].changed_fields.is_empty());
    assert_eq!(
        sink.stored_ids("employer-2", Entity::Department)
            .await
            .expect("ids"),
        ["other-dept".to_owned()].into()
    );
}

pub async fn journal_seq_strictly_increases(h: &Harness) {
    let sink = &h.sink;
    for round in 0..3u32 {
        let mut batch = Vec::new();
        for n in 0..5 {
            batch.extend(full_person(round * 10 + n));
        }
        sink.apply(RUN, batch).await.expect("apply");
        sink.soft_delete(RUN, Entity::Employee, ER, &[format!("ee-{}", round * 10)])
            .await
            .expect("delete");
    }
    let rows = sink.journal(None, 0).await.expect("journal");
    assert!(rows.len() > 100);
    assert!(
        rows.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq not increasing"
    );
    // A purge removes journal rows, but seq values are never reused.
    let max_before = rows.last().map_or(0, |r| r.seq);
    sink.purge_employer("purge", ER).await.expect("purge");
    let after = sink.journal(None, 0).await.expect("journal");
    assert_eq!(after.len(), 1);
    assert!(after[0].seq > max_before);
}

pub async fn money_and_decimals_are_exact(h: &Harness, expected_type: &str) {
    let sink = &h.sink;
    sink.apply(
        RUN,
        vec![
            salary_period("sp-1", "em-1", "4321.09"),
            salary_period("sp-2", "em-1", "3200"),
            workweek_period("wp-1", "em-1"),
        ],
    )
    .await
    .expect("apply");
    let (sqlite_sql, pg_sql) = (
        "SELECT gross_wage || '|' || typeof(gross_wage) FROM {s}employment_salary_period WHERE id = '%'",
        "SELECT gross_wage::text || '|' || pg_typeof(gross_wage)::text FROM {s}employment_salary_period WHERE id = '%'",
    );
    for (id, wage) in [("sp-1", "4321.09"), ("sp-2", "3200.00")] {
        let got = h
            .raw
            .text(&sqlite_sql.replace('%', id), &pg_sql.replace('%', id))
            .await;
        assert_eq!(got, Some(format!("{wage}|{expected_type}")));
    }
    let days = h
        .raw
        .text(
            "SELECT days_per_week || '|' || parttime_percentage FROM {s}employment_workweek_period",
            "SELECT days_per_week::text || '|' || parttime_percentage::text FROM {s}employment_workweek_period",
        )
        .await;
    assert_eq!(days.as_deref(), Some("3|60"));
    let first_day = h
        .raw
        .text(
            "SELECT start_date FROM {s}employment_salary_period WHERE id = 'sp-1'",
            "SELECT start_date::text FROM {s}employment_salary_period WHERE id = 'sp-1'",
        )
        .await;
    assert_eq!(first_day.as_deref(), Some("2024-01-01"));
    // Re-reading and comparing decimals of another scale is not a change.
    let seq = last_seq(sink).await;
    let out = sink
        .apply(RUN, vec![salary_period("sp-2", "em-1", "3200.000")])
        .await
        .expect("apply");
    assert_eq!(out, stats(0, 0, 1));
    assert!(journal_after(sink, seq).await.is_empty());
}

pub async fn runs_case_watch_and_bookkeeping(h: &Harness) {
    let sink = &h.sink;
    sink.apply(RUN, vec![employer()]).await.expect("apply");
    sink.start_run(RUN, ER, RunKind::Incremental)
        .await
        .expect("start");
    let status = "SELECT status FROM {s}sync_run WHERE id = 'run-1'";
    assert_eq!(h.raw.text(status, status).await.as_deref(), Some("running"));
    let synced = "SELECT CAST(last_synced_at AS TEXT) FROM {s}employer";
    assert_eq!(h.raw.text(synced, synced).await, None);
    let counts = RunCounts {
        inserted: 1,
        updated: 2,
        deleted: 3,
        failed: 4,
    };
    sink.finish_run(RUN, RunStatus::Ok, counts)
        .await
        .expect("finish");
    assert_eq!(h.raw.text(status, status).await.as_deref(), Some("ok"));
    let c = "SELECT CAST(inserted AS TEXT) || CAST(updated AS TEXT) || CAST(deleted AS TEXT) \
             || CAST(failed AS TEXT) FROM {s}sync_run";
    assert_eq!(h.raw.text(c, c).await.as_deref(), Some("1234"));
    assert!(
        h.raw.text(synced, synced).await.is_some(),
        "last_synced_at not set"
    );

    sink.start_run("run-f", ER, RunKind::Manual)
        .await
        .expect("start");
    sink.finish_run("run-f", RunStatus::Failed, RunCounts::default())
        .await
        .expect("finish failed run");
    let err = sink
        .finish_run("no-such-run", RunStatus::Ok, counts)
        .await
        .expect_err("unknown run");
    assert!(matches!(err, SinkError::Query { .. }));

    assert!(
        sink.case_watch_employee_numbers(ER)
            .await
            .expect("cw")
            .is_empty()
    );
    sink.add_case_watch(ER, 156).await.expect("add");
    sink.add_case_watch(ER, 156).await.expect("add twice");
    sink.add_case_watch("employer-2", 7)
        .await
        .expect("add other");
    assert_eq!(
        sink.case_watch_employee_numbers(ER).await.expect("cw"),
        [156].into()
    );
}

pub async fn insert_throughput(h: &Harness, rows: u32) {
    let sink = &h.sink;
    let batch: Vec<Record> = (0..rows)
        .map(|n| workweek_period(&format!("wp-{n}"), &format!("em-{}", n / 3)))
        .collect();
    let started = Instant::now();
    for chunk in batch.chunks(2000) {
        sink.apply(RUN, chunk.to_vec()).await.expect("apply");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "[{}] inserted {rows} rows in {secs:.2}s: {:.0} rows/s (with journal)",
        sink.backend_name(),
        f64::from(rows) / secs
    );
    let started = Instant::now();
    for chunk in batch.chunks(2000) {
        let out = sink.apply(RUN, chunk.to_vec()).await.expect("replay");
        assert_eq!(out.unchanged, chunk.len() as u64);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "[{}] replayed {rows} unchanged rows in {secs:.2}s: {:.0} rows/s",
        sink.backend_name(),
        f64::from(rows) / secs
    );
    assert_eq!(
        sink.journal(Some(ER), 0).await.expect("journal").len(),
        rows as usize
    );
}

/// Sink futures can be spawned on a multi-threaded runtime.
pub fn futures_are_send(sink: &Sink) {
    fn is_send<T: Send>(_: &T) {}
    is_send(&sink.apply(RUN, Vec::new()));
    is_send(&sink.soft_delete(RUN, Entity::Absence, ER, &[]));
    is_send(&sink.purge_employer(RUN, ER));
    is_send(&sink.stored_hashes(ER, Entity::Employee));
}

pub async fn read_api_for_the_sync(h: &Harness) {
    let sink = &h.sink;
    let mut batch = vec![employer()];
    batch.extend(full_person(1));
    batch.extend(full_person(2));
    let mut with_bsn = employee_struct("ee-2", 2);
    with_bsn.bsn = Some("123456782".into());
    batch.push(with_bsn.into());
    batch.push(absence("ab-old", "ee-1", Some("2025-01-10")));
    sink.apply(RUN, batch).await.expect("apply");
    sink.soft_delete(RUN, Entity::Employment, ER, &["em-2".to_owned()])
        .await
        .expect("soft delete");

    let employments = sink.stored_employments(ER).await.expect("employments");
    assert_eq!(employments.len(), 1);
    let em = &employments["em-1"];
    assert_eq!(em.employee_id, "ee-1");
    assert_eq!(em.start_date, date("2021-03-01"));
    assert_eq!(em.end_date, None);
    assert_eq!(em.content_hash, employment("em-1", "ee-1").content_hash());

    let absences = sink.stored_absences(ER).await.expect("absences");
    assert_eq!(absences.len(), 3);
    assert_eq!(absences["ab-old"].last_day, Some(date("2025-01-10")));
    assert_eq!(absences["ab-1"].first_day, date("2025-01-06"));
    assert_eq!(absences["ab-1"].employee_id, "ee-1");

    let parents = sink
        .stored_parents(ER, Entity::WorkweekPeriod)
        .await
        .expect("parents");
    assert_eq!(parents, [("wp-1".to_owned(), "em-1".to_owned())].into());
    assert!(
        sink.stored_parents(ER, Entity::Department)
            .await
            .expect("none")
            .is_empty()
    );

    assert_eq!(
        sink.stored_bsns(ER).await.expect("bsns"),
        [("ee-2".to_owned(), "123456782".to_owned())].into()
    );
    assert_eq!(
        sink.stored_bsn(ER, "ee-2").await.expect("bsn").as_deref(),
        Some("123456782")
    );
    assert_eq!(sink.stored_bsn(ER, "ee-1").await.expect("bsn"), None);
    assert_eq!(sink.stored_bsn(ER, "nobody").await.expect("bsn"), None);

    let row = sink
        .stored_row(ER, Entity::Employment, "em-2")
        .await
        .expect("row")
        .expect("exists");
    assert!(row.deleted);
    assert_eq!(row.columns, employment("em-2", "ee-2").columns());
    let wage = sink
        .stored_row(ER, Entity::SalaryPeriod, "sp-1")
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(
        wage.columns,
        salary_period("sp-1", "em-1", "4321.09").columns()
    );

    let synced = "SELECT CAST(last_synced_at AS TEXT) FROM {s}employer";
    assert_eq!(h.raw.text(synced, synced).await, None);
    sink.mark_synced(ER).await.expect("mark synced");
    assert!(h.raw.text(synced, synced).await.is_some());
}

pub async fn employer_overview_counts_live_rows(h: &Harness) {
    let sink = &h.sink;
    let empty = sink.employer_overview(ER).await.expect("overview");
    assert_eq!(empty.name, None);
    assert!(empty.live_rows.values().all(|n| *n == 0), "{empty:?}");
    let mut batch = vec![employer(), department("dept-1", "Verkoop")];
    batch.extend(full_person(1));
    batch.extend(full_person(2));
    sink.apply(RUN, batch).await.expect("apply");
    sink.soft_delete(RUN, Entity::Absence, ER, &["ab-2".to_owned()])
        .await
        .expect("soft delete");
    let o = sink.employer_overview(ER).await.expect("overview");
    assert_eq!(o.name.as_deref(), Some("Voorbeeld B.V."));
    let n = |t: &str| o.live_rows.get(t).copied();
    assert_eq!(n("department"), Some(1));
    assert_eq!(n("employee"), Some(2));
    assert_eq!(n("employment"), Some(2));
    assert_eq!(n("employment_salary_period"), Some(2));
    // The soft-deleted absence and its progress are not live.
    assert_eq!(n("absence"), Some(1));
    assert_eq!(n("absence_progress"), Some(1));
    assert_eq!(
        o.live_rows.len(),
        arbosync_agent::sink::COUNTED_TABLES.len()
    );
}
