//! B4: apply throughput of the agent's [`Sink`] into SQLite and PostgreSQL, with generated
//! records in the agent's own batch size, per employer run (`start_run`, batches, `finish_run`),
//! as a sync run writes them. Three passes over the same rows, each timed on its own:
//!
//! - **insert**: an empty database (every row an insert plus its `insert` journal row) — the
//!   headline number, what an initial sync writes;
//! - **unchanged**: the same rows again (the content-hash guard: nothing written);
//! - **update**: every row with one changed column (an update plus an `update` journal row).
//!
//! The generated data is synthetic and contains no real personal data.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use arbosync_agent::records::{
    Absence, AbsenceProgress, Department, DepartmentPeriod, Employee, Employer, Employment,
    PayrollPeriod, Record, SalaryPeriod, WageType, WorkweekPeriod,
};
use arbosync_agent::sink::{RunCounts, RunKind, RunStatus, Sink};
use arbosync_agent::sync::run::BATCH_SIZE;
use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

use super::args::Backend;
use super::db::BenchDb;

/// Rows per generated person: employee, employment, 2 department periods, 2 work-week periods,
/// 3 salary periods, 1 absence and 2 progress periods.
const ROWS_PER_PERSON: usize = 12;
const DEPARTMENTS_PER_EMPLOYER: usize = 5;

/// One B4 measurement on one database.
#[derive(Debug, Clone, Copy)]
pub struct ApplyRun {
    pub rows: u64,
    pub insert: Duration,
    pub unchanged: Duration,
    pub update: Duration,
}

impl ApplyRun {
    pub fn rate(&self, d: Duration) -> f64 {
        self.rows as f64 / d.as_secs_f64().max(1e-9)
    }
}

/// Measures the three passes on a fresh database of `backend`.
pub async fn measure(
    backend: Backend,
    dir: &Path,
    pg_url: &str,
    rows: usize,
    tag: &str,
) -> Result<ApplyRun> {
    let db = BenchDb::create(backend, dir, pg_url, tag).await?;
    let result = measure_on(&db, rows).await;
    let dropped = db.drop_db().await;
    let run = result?;
    dropped?;
    Ok(run)
}

async fn measure_on(db: &BenchDb, rows: usize) -> Result<ApplyRun> {
    let sink = Sink::connect(db.url(), "arbosync")
        .await
        .with_context(|| format!("B4: cannot open the {} database", db_kind(db)))?;
    let employers = generate(rows);
    let total: u64 = employers.iter().map(|(_, r)| r.len() as u64).sum();

    let (insert, stats) = apply_all(&sink, &employers).await?;
    ensure!(
        stats.inserted == total,
        "B4: the insert pass inserted {} of {total} rows",
        stats.inserted
    );
    let (unchanged, stats) = apply_all(&sink, &employers).await?;
    ensure!(
        stats.inserted == 0 && stats.updated == 0,
        "B4: re-applying unchanged rows wrote {} inserts and {} updates",
        stats.inserted,
        stats.updated
    );
    let changed: Vec<(String, Vec<Record>)> = employers
        .into_iter()
        .map(|(id, records)| (id, records.into_iter().map(change).collect()))
        .collect();
    let (update, stats) = apply_all(&sink, &changed).await?;
    ensure!(
        stats.updated == total,
        "B4: the update pass updated {} of {total} rows",
        stats.updated
    );
    Ok(ApplyRun {
        rows: total,
        insert,
        unchanged,
        update,
    })
}

fn db_kind(db: &BenchDb) -> &'static str {
    match db {
        BenchDb::Sqlite { .. } => "SQLite",
        BenchDb::Postgres { .. } => "PostgreSQL",
    }
}

/// One run per employer, in batches of the agent's `BATCH_SIZE`, timed end to end.
async fn apply_all(
    sink: &Sink,
    employers: &[(String, Vec<Record>)],
) -> Result<(Duration, RunCounts)> {
    let started = Instant::now();
    let mut all = RunCounts::default();
    for (employer_id, records) in employers {
        let run_id = uuid::Uuid::new_v4().to_string();
        sink.start_run(&run_id, employer_id, RunKind::Full)
            .await
            .context("B4: start_run")?;
        let mut counts = RunCounts::default();
        for batch in records.chunks(BATCH_SIZE) {
            let stats = sink
                .apply(&run_id, batch.to_vec())
                .await
                .context("B4: apply")?;
            counts.inserted += stats.inserted;
            counts.updated += stats.updated;
        }
        sink.finish_run(&run_id, RunStatus::Ok, counts)
            .await
            .context("B4: finish_run")?;
        all.inserted += counts.inserted;
        all.updated += counts.updated;
    }
    Ok((started.elapsed(), all))
}

fn dec(units: i64, scale: u32) -> Decimal {
    Decimal::new(units, scale)
}

/// About `rows` records over a few employers (one employer per 1,000 people, at least one).
fn generate(rows: usize) -> Vec<(String, Vec<Record>)> {
    let people = rows.div_ceil(ROWS_PER_PERSON).max(1);
    let employers = people.div_ceil(1_000).max(1);
    let base = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or(NaiveDate::MIN);
    let day = |n: usize| base.checked_add_days(Days::new(n as u64)).unwrap_or(base);
    let id = |kind: &str, e: usize, n: usize| format!("bench-{kind}-{e:04}-{n:07}");
    let mut out = Vec::with_capacity(employers);
    for e in 0..employers {
        let employer_id = format!("00000000-0000-4000-8000-{e:012}");
        let mut records: Vec<Record> = Vec::new();
        records.push(
            Employer {
                id: employer_id.clone(),
                source: "loket".into(),
                employer_number: Some(e as i64 + 1),
                name: format!("Bench employer {e}"),
                chamber_of_commerce_number: Some(format!("{:08}", 10_000_000 + e)),
            }
            .into(),
        );
        for d in 0..DEPARTMENTS_PER_EMPLOYER {
            records.push(
                Department {
                    id: id("dep", e, d),
                    employer_id: employer_id.clone(),
                    code: Some(d as i64 + 1),
                    name: Some(format!("Department {d}")),
                    parent_id: (d > 0).then(|| id("dep", e, 0)),
                }
                .into(),
            );
        }
        let first = e * people / employers;
        let last = (e + 1) * people / employers;
        for p in first..last {
            records.extend(person(&employer_id, e, p, &day, &id));
        }
        out.push((employer_id, records));
    }
    out
}

fn person(
    employer_id: &str,
    e: usize,
    p: usize,
    day: &impl Fn(usize) -> NaiveDate,
    id: &impl Fn(&str, usize, usize) -> String,
) -> Vec<Record> {
    let employee_id = id("emp", e, p);
    let employment_id = id("dvb", e, p);
    let absence_id = id("abs", e, p);
    let start = p % 1500;
    let mut v: Vec<Record> = Vec::with_capacity(ROWS_PER_PERSON);
    v.push(
        Employee {
            id: employee_id.clone(),
            employer_id: employer_id.into(),
            employee_number: p as i64 + 1,
            initials: Some("A.B.".into()),
            first_name: Some(format!("Person{p}")),
            prefix: None,
            last_name: Some(format!("Bench{p}")),
            formatted_name: Some(format!("Bench{p} A.B.")),
            date_of_birth: Some(day(p % 3000)),
            gender: Some("Vrouw".into()),
            gender_code: Some(2),
            email: Some(format!("person{p}@example.invalid")),
            phone: None,
            mobile_phone: Some("0600000000".into()),
            street: Some("Benchstraat".into()),
            house_number: Some((p % 200) as i64 + 1),
            house_number_addition: None,
            postal_code: Some("1234AB".into()),
            city: Some("Utrecht".into()),
            country_code: Some("NL".into()),
            bsn: None,
        }
        .into(),
    );
    v.push(
        Employment {
            id: employment_id.clone(),
            employer_id: employer_id.into(),
            employee_id: employee_id.clone(),
            start_date: day(start),
            end_date: None,
            planned_end_date: None,
            contract_type: Some("Onbepaalde tijd".into()),
            contract_type_code: Some(1),
            payroll_tax_number: Some("123456782L01".into()),
        }
        .into(),
    );
    for k in 0..2 {
        v.push(
            DepartmentPeriod {
                id: format!("{employment_id}-org{k}"),
                employer_id: employer_id.into(),
                employment_id: employment_id.clone(),
                department_id: Some(id("dep", e, (p + k) % DEPARTMENTS_PER_EMPLOYER)),
                function_name: Some("Medewerker".into()),
                start_date: day(start + 200 * k),
                end_date: (k == 0).then(|| day(start + 199)),
            }
            .into(),
        );
        v.push(
            WorkweekPeriod {
                id: format!("{employment_id}-hrs{k}"),
                employer_id: employer_id.into(),
                employment_id: employment_id.clone(),
                start_date: day(start + 300 * k),
                end_date: (k == 0).then(|| day(start + 299)),
                hours_per_week: Some(dec(3200 + 400 * k as i64, 2)),
                days_per_week: Some(dec(4, 0)),
                parttime_percentage: Some(dec(8000 + 1000 * k as i64, 2)),
                work_pattern: Some("{\"odd\":[8,8,8,8,0,0,0],\"even\":[8,8,8,8,0,0,0]}".into()),
            }
            .into(),
        );
    }
    for k in 0..3 {
        v.push(
            SalaryPeriod {
                id: format!("{employment_id}-wage{k}"),
                employer_id: employer_id.into(),
                employment_id: employment_id.clone(),
                start_date: day(start + 365 * k),
                end_date: (k < 2).then(|| day(start + 365 * k + 364)),
                gross_wage: Some(dec(300_000 + 10_000 * k as i64 + p as i64 % 1000, 2)),
                wage_type: Some(WageType::Period),
                payroll_period: Some(PayrollPeriod::Month),
                is_full_time_amount: Some(true),
            }
            .into(),
        );
    }
    v.push(
        Absence {
            id: absence_id.clone(),
            employer_id: employer_id.into(),
            employee_id,
            employment_id: Some(employment_id),
            first_day: day(start + 400),
            last_day: Some(day(start + 420)),
            end_reason: Some("Volledig hersteld".into()),
            end_reason_code: Some(1),
            cause: Some("Ziekte".into()),
            cause_code: Some(1),
            expected_duration: None,
            expected_duration_code: None,
            is_work_related: Some(false),
            is_accident: Some(false),
            is_third_party_liability: Some(false),
            current_incapacity_percentage: Some(dec(50, 0)),
        }
        .into(),
    );
    for k in 0..2 {
        v.push(
            AbsenceProgress {
                id: format!("{absence_id}-p{k}"),
                employer_id: employer_id.into(),
                absence_id: absence_id.clone(),
                start_date: day(start + 400 + 10 * k),
                end_date: Some(day(start + 409 + 11 * k)),
                incapacity_percentage: Some(dec(100 - 50 * k as i64, 0)),
                work_resumption_type: None,
                work_resumption_type_code: None,
            }
            .into(),
        );
    }
    v
}

/// The same record with one column changed (for the update pass).
fn change(r: Record) -> Record {
    match r {
        Record::Employer(mut x) => {
            x.name.push_str(" (renamed)");
            x.into()
        }
        Record::Department(mut x) => {
            x.name = Some("Renamed department".into());
            x.into()
        }
        Record::Employee(mut x) => {
            x.email = Some("changed@example.invalid".into());
            x.into()
        }
        Record::Employment(mut x) => {
            x.contract_type_code = Some(2);
            x.into()
        }
        Record::DepartmentPeriod(mut x) => {
            x.function_name = Some("Senior medewerker".into());
            x.into()
        }
        Record::WorkweekPeriod(mut x) => {
            x.days_per_week = Some(dec(5, 0));
            x.into()
        }
        Record::SalaryPeriod(mut x) => {
            x.is_full_time_amount = Some(false);
            x.into()
        }
        Record::Absence(mut x) => {
            x.cause_code = Some(2);
            x.into()
        }
        Record::AbsenceProgress(mut x) => {
            x.work_resumption_type_code = Some(1);
            x.into()
        }
    }
}
