//! Shared harness of the end-to-end sync tests (`sync_*.rs`): the real `arbosync-agent` binary
//! against the in-process Loket simulator and a real database (a SQLite file, or a fresh
//! PostgreSQL database per test), and an oracle that derives every target table from the
//! simulator's truth and the employer's options (`target-schema.md`, `product.md`), plus the
//! journal rows a change between two truths must produce.
//!
//! The oracle is written from the contract, not from the engine: it reads `World` (the
//! simulator's own model) and never the agent's mapping code.

#![allow(dead_code)] // each test binary uses its own subset of the helpers

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::str::FromStr;
use std::sync::Mutex;

use arbosync_agent::records::{ColumnType, Entity};
use chrono::{Days, Months, NaiveDate};
use loket_sim::{RunningSim, SimConfig, SimHandle, Uuid, World, active_on, catalog};
use rust_decimal::Decimal;
use tokio::io::AsyncWriteExt;

pub const BIN: &str = env!("CARGO_BIN_EXE_arbosync-agent");
pub const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";
pub const PG_SCHEMA: &str = "arbosync_e2e";
/// Exit code of the `after-commit` failpoint (see `agent/src/sync/run.rs`).
pub const FAILPOINT_EXIT: i32 = 86;

// ------------------------------------------------------------------------------ options

/// An employer's options as written into the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opts {
    pub all_employments: bool,
    pub absences: bool,
    pub salary: bool,
    pub bsn: bool,
    pub history_months: u32,
}

impl Default for Opts {
    /// The privacy-minimal defaults of `product.md`.
    fn default() -> Self {
        Opts {
            all_employments: false,
            absences: true,
            salary: false,
            bsn: false,
            history_months: 24,
        }
    }
}

impl Opts {
    pub fn everything() -> Opts {
        Opts {
            all_employments: true,
            absences: true,
            salary: true,
            bsn: true,
            history_months: 24,
        }
    }
}

// ------------------------------------------------------------------------------ database

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database under test. A PostgreSQL database is dropped when this is dropped.
pub enum Db {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        name: String,
        client: tokio_postgres::Client,
    },
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Db::Postgres { name, .. } = self {
            let name = name.clone();
            let db = name.clone();
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime for dropping the test database");
                rt.block_on(async {
                    let (admin, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
                        .await
                        .map_err(|e| e.to_string())?;
                    tokio::spawn(conn);
                    admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .await
                        .map_err(|e| e.to_string())
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop the test database {name}");
            }
        }
    }
}

/// One `mutation` row as the tests compare it: `changed_fields` sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct J {
    pub entity: String,
    pub id: String,
    pub op: String,
    pub fields: Vec<String>,
}

impl J {
    pub fn new(entity: Entity, id: &str, op: &str, fields: &[&str]) -> J {
        let mut fields: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
        fields.sort();
        J {
            entity: entity.table().to_string(),
            id: id.to_string(),
            op: op.to_string(),
            fields,
        }
    }
}

/// A journal row read back with its bookkeeping.
#[derive(Debug, Clone)]
pub struct JournalRow {
    pub seq: i64,
    pub employer_id: String,
    pub j: J,
    pub run_id: String,
}

/// Canonical values of a row's contract columns (`None` = SQL NULL).
pub type Row = BTreeMap<&'static str, Option<String>>;
/// Live rows per table, by id.
pub type Model = BTreeMap<Entity, BTreeMap<String, Row>>;

/// A stored row with its bookkeeping columns, to prove that a replay changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbRow {
    pub values: Row,
    pub content_hash: Option<String>,
    pub first_seen_at: Option<String>,
    pub updated_at: Option<String>,
    pub deleted_at: Option<String>,
}

pub type Snapshot = BTreeMap<Entity, BTreeMap<String, DbRow>>;

pub fn empty_model() -> Model {
    Entity::ALL.iter().map(|e| (*e, BTreeMap::new())).collect()
}

impl Db {
    pub async fn create(backend: Backend, dir: &Path) -> Db {
        match backend {
            Backend::Sqlite => Db::Sqlite {
                path: dir.join("arbodienst.db"),
            },
            Backend::Postgres => {
                let (admin, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL must be reachable at 127.0.0.1:5432 (user postgres, trust) \
                             for this test: {e}"
                        )
                    });
                tokio::spawn(conn);
                let name = format!("arbosync_e2e_{}", Uuid::new_v4().simple());
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create the test database");
                let (client, conn) = tokio_postgres::connect(
                    &format!("host=127.0.0.1 port=5432 user=postgres dbname={name}"),
                    tokio_postgres::NoTls,
                )
                .await
                .expect("connect to the test database");
                tokio::spawn(conn);
                Db::Postgres { name, client }
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            Db::Sqlite { path } => format!("sqlite://{}", path.display()),
            Db::Postgres { name, .. } => format!("postgres://postgres@127.0.0.1:5432/{name}"),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres { .. } => Backend::Postgres,
        }
    }

    fn render(&self, sql: &str) -> String {
        match self {
            Db::Sqlite { .. } => sql.replace("{s}", ""),
            Db::Postgres { .. } => sql.replace("{s}", &format!("{PG_SCHEMA}.")),
        }
    }

    /// Runs a query whose every column is text (use `CAST(x AS TEXT)`); `{s}` is the schema prefix.
    pub async fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let sql = self.render(sql);
        match self {
            Db::Sqlite { path } => {
                let conn = rusqlite::Connection::open(path).expect("open the SQLite database");
                let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let n = stmt.column_count();
                let rows = stmt
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| r.get::<_, Option<String>>(i))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.collect::<Result<_, _>>()
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Db::Postgres { client, .. } => {
                let rows = client
                    .query(&sql, &[])
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.get::<_, Option<String>>(i))
                            .collect()
                    })
                    .collect()
            }
        }
    }

    pub async fn execute(&self, sql: &str) {
        let sql = self.render(sql);
        match self {
            Db::Sqlite { path } => {
                let conn = rusqlite::Connection::open(path).expect("open the SQLite database");
                conn.execute_batch(&sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Db::Postgres { client, .. } => client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    pub async fn scalar(&self, sql: &str) -> Option<String> {
        self.query(sql)
            .await
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .flatten()
    }

    /// The highest journal `seq` (0 for an empty journal).
    pub async fn max_seq(&self) -> i64 {
        self.scalar("SELECT CAST(COALESCE(MAX(seq), 0) AS TEXT) FROM {s}mutation")
            .await
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Journal rows after `seq`, in order.
    pub async fn journal(&self, after: i64) -> Vec<JournalRow> {
        let rows = self
            .query(&format!(
                // `m.seq`, not `seq`: in PostgreSQL a bare name in ORDER BY picks the output
                // column first, which is the text cast (so 10 would sort before 9).
                "SELECT CAST(m.seq AS TEXT), m.employer_id, m.entity, m.entity_id, m.op, \
                 CAST(m.changed_fields AS TEXT), m.run_id FROM {{s}}mutation m \
                 WHERE m.seq > {after} ORDER BY m.seq"
            ))
            .await;
        rows.into_iter()
            .map(|r| {
                let get = |i: usize| r[i].clone().unwrap_or_default();
                let mut fields: Vec<String> =
                    serde_json::from_str(&get(5)).expect("changed_fields is a JSON array");
                fields.sort();
                JournalRow {
                    seq: get(0).parse().expect("seq"),
                    employer_id: get(1),
                    j: J {
                        entity: get(2),
                        id: get(3),
                        op: get(4),
                        fields,
                    },
                    run_id: get(6),
                }
            })
            .collect()
    }

    /// Every stored row of an employer's entity table, live and soft-deleted.
    pub async fn table(&self, entity: Entity, employer: Uuid) -> BTreeMap<String, DbRow> {
        let cols = entity.columns();
        let select: Vec<String> = cols
            .iter()
            .map(|c| format!("CAST({} AS TEXT)", c.name))
            .chain(
                ["content_hash", "first_seen_at", "updated_at", "deleted_at"]
                    .iter()
                    .map(|c| format!("CAST({c} AS TEXT)")),
            )
            .collect();
        let sql = format!(
            "SELECT {} FROM {{s}}{} WHERE employer_id = '{employer}'",
            select.join(", "),
            entity.table()
        );
        let mut out = BTreeMap::new();
        for raw in self.query(&sql).await {
            let n = cols.len();
            let values: Row = cols
                .iter()
                .zip(raw.iter())
                .map(|(c, v)| (c.name, normalize(c.ty, c.name, v.clone())))
                .collect();
            let id = raw[0].clone().expect("id is set");
            out.insert(
                id,
                DbRow {
                    values,
                    content_hash: raw[n].clone(),
                    first_seen_at: raw[n + 1].clone(),
                    updated_at: raw[n + 2].clone(),
                    deleted_at: raw[n + 3].clone(),
                },
            );
        }
        out
    }

    pub async fn snapshot(&self, employer: Uuid) -> Snapshot {
        let mut s = Snapshot::new();
        for e in Entity::ALL {
            s.insert(e, self.table(e, employer).await);
        }
        s
    }

    /// The live rows of an employer, as the oracle describes them.
    pub async fn live_model(&self, employer: Uuid) -> Model {
        let mut m = Model::new();
        for e in Entity::ALL {
            let rows = self
                .table(e, employer)
                .await
                .into_iter()
                .filter(|(_, r)| r.deleted_at.is_none())
                .map(|(id, r)| (id, r.values))
                .collect();
            m.insert(e, rows);
        }
        m
    }

    /// Ids of the soft-deleted rows of an employer's entity table.
    pub async fn soft_deleted(&self, entity: Entity, employer: Uuid) -> BTreeSet<String> {
        self.table(entity, employer)
            .await
            .into_iter()
            .filter(|(_, r)| r.deleted_at.is_some())
            .map(|(id, _)| id)
            .collect()
    }

    pub async fn case_watch(&self, employer: Uuid) -> HashSet<i64> {
        self.query(&format!(
            "SELECT CAST(employee_number AS TEXT) FROM {{s}}case_watch WHERE employer_id = '{employer}'"
        ))
        .await
        .into_iter()
        .filter_map(|r| r[0].as_ref().and_then(|s| s.parse().ok()))
        .collect()
    }

    /// Everything stored in the database, as text (SQLite: the file bytes including the WAL;
    /// PostgreSQL: every row of every table as JSON).
    pub async fn everything(&self) -> String {
        match self {
            Db::Sqlite { path } => {
                let mut all = Vec::new();
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    all.extend(std::fs::read(&p).unwrap_or_default());
                }
                String::from_utf8_lossy(&all).into_owned()
            }
            Db::Postgres { .. } => {
                let tables = self
                    .query(&format!(
                        "SELECT table_name::text FROM information_schema.tables \
                         WHERE table_schema = '{PG_SCHEMA}'"
                    ))
                    .await;
                let mut out = String::new();
                for t in tables.into_iter().filter_map(|r| r[0].clone()) {
                    let sql = format!(
                        "SELECT COALESCE(string_agg(row_to_json(t)::text, ' '), '') FROM {{s}}{t} t"
                    );
                    out.push_str(&self.scalar(&sql).await.unwrap_or_default());
                    out.push(' ');
                }
                out
            }
        }
    }
}

/// Canonical text of a stored value of a column of type `ty`, the same for both backends.
fn normalize(ty: ColumnType, name: &str, raw: Option<String>) -> Option<String> {
    let raw = raw?;
    Some(match ty {
        ColumnType::Text if name == "work_pattern" => canonical_pattern_json(&raw),
        ColumnType::Text | ColumnType::Date => raw,
        ColumnType::Int => raw.parse::<i64>().map(|i| i.to_string()).unwrap_or(raw),
        ColumnType::Money | ColumnType::Decimal => dec_text(&raw),
        ColumnType::Bool => match raw.as_str() {
            "1" | "t" | "true" => "true".into(),
            "0" | "f" | "false" => "false".into(),
            _ => raw,
        },
    })
}

fn dec_text(s: &str) -> String {
    Decimal::from_str(s)
        .map(|d| d.round_dp(4).normalize().to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// An f64 from the simulator as the canonical decimal text (shortest round-trip form).
fn dec_f64(x: f64) -> Decimal {
    Decimal::from_str(&format!("{x}")).expect("a finite number")
}

fn dec_canon(d: Decimal) -> String {
    d.round_dp(4).normalize().to_string()
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn canonical_pattern_json(raw: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(raw) else {
        return raw.to_string();
    };
    let week = |w: &str| -> Option<Vec<String>> {
        WEEKDAYS
            .iter()
            .map(|d| v.get(w)?.get(d)?.as_f64().map(|x| dec_canon(dec_f64(x))))
            .collect()
    };
    match (week("odd"), week("even")) {
        (Some(o), Some(e)) => format!("odd={};even={}", o.join(","), e.join(",")),
        _ => raw.to_string(),
    }
}

fn canonical_pattern(odd: &[f64; 7], even: &[f64; 7]) -> String {
    let w = |d: &[f64; 7]| {
        d.iter()
            .map(|x| dec_canon(dec_f64(*x)))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("odd={};even={}", w(odd), w(even))
}

// ------------------------------------------------------------------------------ the oracle

fn t(s: &str) -> Option<String> {
    Some(s.to_string())
}
fn ot(s: &Option<String>) -> Option<String> {
    s.clone()
}
fn i<N: ToString>(n: N) -> Option<String> {
    Some(n.to_string())
}
fn d(x: NaiveDate) -> Option<String> {
    Some(x.format("%Y-%m-%d").to_string())
}
fn od(x: Option<NaiveDate>) -> Option<String> {
    x.and_then(d)
}
fn b(x: bool) -> Option<String> {
    Some(x.to_string())
}
fn dec(x: Decimal) -> Option<String> {
    Some(dec_canon(x))
}

fn put(m: &mut Model, entity: Entity, values: Vec<Option<String>>) {
    let cols = entity.columns();
    assert_eq!(cols.len(), values.len(), "oracle row of {entity}");
    let id = values[0].clone().expect("id");
    let row: Row = cols.iter().map(|c| c.name).zip(values).collect();
    m.get_mut(&entity).expect("entity").insert(id, row);
}

pub fn history_start(today: NaiveDate, opts: Opts) -> NaiveDate {
    today
        .checked_sub_months(Months::new(opts.history_months))
        .unwrap_or(NaiveDate::MIN)
}

fn in_window(a: &loket_sim::Absence, start: NaiveDate) -> bool {
    a.last_day().is_none_or(|l| l >= start)
}

pub fn sim_employer(world: &World, employer: Uuid) -> &loket_sim::Employer {
    world
        .employers
        .iter()
        .find(|e| e.id == employer)
        .expect("employer in the simulator")
}

/// `None` = every employee (`all_employments`); otherwise the employees with an absence in the
/// history window (open, or ended within `history_months`) or listed in `case_watch`.
pub fn source_scope(
    world: &World,
    employer: Uuid,
    opts: Opts,
    case_watch: &HashSet<i64>,
) -> Option<BTreeSet<Uuid>> {
    if opts.all_employments {
        return None;
    }
    let start = history_start(world.today, opts);
    let horizon = world.today + Days::new(60);
    let er = sim_employer(world, employer);
    Some(
        er.employee_ids
            .iter()
            .filter(|id| {
                let Some(e) = world.employees.get(id) else {
                    return false;
                };
                case_watch.contains(&i64::from(e.employee_number))
                    || e.absence_ids
                        .iter()
                        .filter_map(|a| world.absences.get(a))
                        .any(|a| in_window(a, start) && a.first_day().is_some_and(|f| f <= horizon))
            })
            .copied()
            .collect(),
    )
}

/// Every live row the database must hold for `employer`, derived from the simulator's truth.
pub fn expected(
    world: &World,
    employer: Uuid,
    opts: Opts,
    scope: Option<&BTreeSet<Uuid>>,
) -> Model {
    let er = sim_employer(world, employer);
    let eid = employer.to_string();
    let today = world.today;
    let mut m = empty_model();
    put(
        &mut m,
        Entity::Employer,
        vec![
            t(&eid),
            t(&eid),
            t("loket"),
            i(er.employer_number),
            t(&er.company_name),
            t(&er.chamber_of_commerce_number),
        ],
    );
    for dep in &er.departments {
        put(
            &mut m,
            Entity::Department,
            vec![
                i(dep.id),
                t(&eid),
                i(dep.code),
                t(&dep.description),
                dep.parent_id.and_then(i),
            ],
        );
    }
    let in_scope = |id: &Uuid| scope.is_none_or(|s| s.contains(id));
    for id in er.employee_ids.iter().filter(|id| in_scope(id)) {
        let Some(e) = world.employees.get(id) else {
            continue;
        };
        put(
            &mut m,
            Entity::Employee,
            vec![
                i(e.id),
                t(&eid),
                i(e.employee_number),
                t(&e.initials),
                t(&e.first_name),
                ot(&e.prefix),
                t(&e.last_name),
                t(&e.formatted_name()),
                d(e.date_of_birth),
                t(catalog::value(catalog::GENDER, e.gender_key)),
                i(e.gender_key),
                e.email_address
                    .clone()
                    .or_else(|| e.business_email_address.clone()),
                e.phone_number
                    .clone()
                    .or_else(|| e.business_phone_number.clone()),
                ot(&e.mobile_phone_number),
                t(&e.address.street),
                i(e.address.house_number),
                ot(&e.address.house_number_addition),
                t(&e.address.postal_code),
                t(&e.address.city),
                t("NL"),
                if opts.bsn { ot(&e.bsn) } else { None },
            ],
        );
    }
    for id in &er.employment_ids {
        let Some(emp) = world.employments.get(id) else {
            continue;
        };
        if !in_scope(&emp.employee_id) {
            continue;
        }
        let tax = er
            .payroll_administrations
            .iter()
            .find(|a| a.id == emp.payroll_administration_id)
            .map(|a| a.payroll_taxes_number.clone());
        put(
            &mut m,
            Entity::Employment,
            vec![
                i(emp.id),
                t(&eid),
                i(emp.employee_id),
                d(emp.start_date),
                od(emp.end_date),
                od(emp.commission_until_date),
                t(catalog::value(
                    catalog::DURATION_TYPE,
                    emp.employment_duration_type_key,
                )),
                i(emp.employment_duration_type_key),
                tax,
            ],
        );
        for o in &emp.organizational_entities {
            let function = er
                .functions
                .iter()
                .find(|f| f.id == o.function_id)
                .map(|f| f.description.clone());
            let department = er
                .departments
                .iter()
                .find(|x| x.id == o.department_id)
                .map(|x| x.id.to_string());
            put(
                &mut m,
                Entity::DepartmentPeriod,
                vec![
                    i(o.id),
                    t(&eid),
                    i(emp.id),
                    department,
                    function,
                    d(o.start_date),
                    od(o.end_date),
                ],
            );
        }
        for w in &emp.working_hours {
            let hours = dec_f64(w.aggregated_hours_per_week);
            let full_time = dec_f64(w.full_time_hours_per_week);
            let parttime = match w.average_parttime_factor {
                Some(f) => Some(dec_f64(f).round_dp(2)),
                None if full_time > Decimal::ZERO => {
                    Some((hours / full_time * Decimal::from(100)).round_dp(2))
                }
                None => None,
            };
            let (days, pattern) = match &w.work_pattern {
                Some(p) => {
                    let n = |wk: &[f64; 7]| wk.iter().filter(|h| **h > 0.0).count() as i64;
                    let days = Decimal::from(n(&p.odd_weeks) + n(&p.even_weeks)) / Decimal::from(2);
                    (
                        dec(days),
                        Some(canonical_pattern(&p.odd_weeks, &p.even_weeks)),
                    )
                }
                None => (None, None),
            };
            put(
                &mut m,
                Entity::WorkweekPeriod,
                vec![
                    i(w.id),
                    t(&eid),
                    i(emp.id),
                    d(w.start_date),
                    od(w.end_date),
                    dec(hours),
                    days,
                    parttime.and_then(dec),
                    pattern,
                ],
            );
        }
        if opts.salary {
            for w in &emp.wages {
                let payroll_period = match w.payroll_period_type_key {
                    1 => t("month"),
                    3 => t("four_weeks"),
                    4 => t("week"),
                    _ => None,
                };
                put(
                    &mut m,
                    Entity::SalaryPeriod,
                    vec![
                        i(w.id),
                        t(&eid),
                        i(emp.id),
                        d(w.start_date),
                        od(w.end_date),
                        dec(Decimal::new(w.gross_wage_cents, 2)),
                        t(if w.gross_wage_type_key == 1 {
                            "period"
                        } else {
                            "hourly"
                        }),
                        payroll_period,
                        b(w.is_gross_wage_full_time),
                    ],
                );
            }
        }
    }
    if opts.absences {
        let start = history_start(today, opts);
        for id in er.employee_ids.iter().filter(|id| in_scope(id)) {
            let Some(e) = world.employees.get(id) else {
                continue;
            };
            for a in e.absence_ids.iter().filter_map(|a| world.absences.get(a)) {
                if !in_window(a, start) {
                    continue;
                }
                let first = a.first_day().expect("an absence has a first day");
                let covering: Vec<Uuid> = e
                    .employment_ids
                    .iter()
                    .filter_map(|x| world.employments.get(x))
                    .filter(|x| x.start_date <= first && x.end_date.is_none_or(|end| end >= first))
                    .map(|x| x.id)
                    .collect();
                let employment = (covering.len() == 1).then(|| covering[0].to_string());
                let current = active_on(&a.progress, today).or(a.progress.last());
                let end = a.end_of_absence.as_ref();
                put(
                    &mut m,
                    Entity::Absence,
                    vec![
                        i(a.id),
                        t(&eid),
                        i(e.id),
                        employment,
                        d(first),
                        od(a.last_day()),
                        end.and_then(|x| {
                            t(catalog::value(catalog::END_OF_ABSENCE_REASON, x.reason_key))
                        }),
                        end.and_then(|x| i(x.reason_key)),
                        t(catalog::value(
                            catalog::CAUSE_OF_ABSENCE,
                            a.cause_of_absence_key,
                        )),
                        i(a.cause_of_absence_key),
                        a.expected_duration_key
                            .and_then(|k| t(catalog::value(catalog::EXPECTED_DURATION, k))),
                        a.expected_duration_key.and_then(i),
                        b(a.is_work_related_illness),
                        b(false),
                        None,
                        current.and_then(|p| dec(Decimal::from(p.incapacity_percentage))),
                    ],
                );
                for p in &a.progress {
                    put(
                        &mut m,
                        Entity::AbsenceProgress,
                        vec![
                            i(p.id),
                            t(&eid),
                            i(a.id),
                            d(p.start_date),
                            od(p.end_date),
                            dec(Decimal::from(p.incapacity_percentage)),
                            p.type_of_work_resumption_key.and_then(|k| {
                                t(catalog::value(catalog::TYPE_OF_WORK_RESUMPTION, k))
                            }),
                            p.type_of_work_resumption_key.and_then(i),
                        ],
                    );
                }
            }
        }
    }
    m
}

/// Every id the source holds, per entity (whatever the scope and options).
pub fn source_ids(world: &World) -> HashMap<Entity, HashSet<String>> {
    let mut s: HashMap<Entity, HashSet<String>> =
        Entity::ALL.iter().map(|e| (*e, HashSet::new())).collect();
    let mut add = |e: Entity, id: Uuid| {
        s.get_mut(&e).expect("entity").insert(id.to_string());
    };
    for er in &world.employers {
        add(Entity::Employer, er.id);
        for dep in &er.departments {
            add(Entity::Department, dep.id);
        }
    }
    for id in world.employees.keys() {
        add(Entity::Employee, *id);
    }
    for emp in world.employments.values() {
        add(Entity::Employment, emp.id);
        for o in &emp.organizational_entities {
            add(Entity::DepartmentPeriod, o.id);
        }
        for w in &emp.working_hours {
            add(Entity::WorkweekPeriod, w.id);
        }
        for w in &emp.wages {
            add(Entity::SalaryPeriod, w.id);
        }
    }
    for a in world.absences.values() {
        add(Entity::Absence, a.id);
        for p in &a.progress {
            add(Entity::AbsenceProgress, p.id);
        }
    }
    s
}

/// The journal rows that take the database from `before` to `after`: an insert (all columns) per
/// new row, an update naming the changed columns, and for a row that went away a soft delete
/// (`["deleted_at"]`) when it disappeared at the source, or a purge (all columns) when it still
/// exists there but the options or the scope no longer allow it.
pub fn expected_journal(
    before: &Model,
    after: &Model,
    source: &HashMap<Entity, HashSet<String>>,
) -> Vec<J> {
    let mut out = Vec::new();
    for entity in Entity::ALL {
        let all: Vec<&str> = entity.columns().iter().map(|c| c.name).collect();
        let empty = BTreeMap::new();
        let old = before.get(&entity).unwrap_or(&empty);
        let new = after.get(&entity).unwrap_or(&empty);
        for (id, row) in new {
            match old.get(id) {
                None => out.push(J::new(entity, id, "insert", &all)),
                Some(prev) if prev != row => {
                    let changed: Vec<&str> = row
                        .iter()
                        .filter(|(k, v)| prev.get(*k) != Some(*v))
                        .map(|(k, _)| *k)
                        .collect();
                    out.push(J::new(entity, id, "update", &changed));
                }
                Some(_) => {}
            }
        }
        for id in old.keys().filter(|id| !new.contains_key(*id)) {
            if source[&entity].contains(id) {
                out.push(J::new(entity, id, "delete", &all));
            } else {
                out.push(J::new(entity, id, "delete", &["deleted_at"]));
            }
        }
    }
    out.sort();
    out
}

/// A readable difference of two models (empty when equal).
pub fn model_diff(expected: &Model, actual: &Model) -> String {
    let mut s = String::new();
    for entity in Entity::ALL {
        let empty = BTreeMap::new();
        let e = expected.get(&entity).unwrap_or(&empty);
        let a = actual.get(&entity).unwrap_or(&empty);
        for (id, row) in e {
            match a.get(id) {
                None => {
                    let _ = writeln!(s, "{entity} {id}: missing in the database");
                }
                Some(got) if got != row => {
                    for (k, v) in row {
                        let g = got.get(k).cloned().flatten();
                        if g != *v {
                            let _ = writeln!(
                                s,
                                "{entity} {id}.{k}: expected {v:?}, database has {g:?}"
                            );
                        }
                    }
                }
                Some(_) => {}
            }
        }
        for id in a.keys().filter(|id| !e.contains_key(*id)) {
            let _ = writeln!(s, "{entity} {id}: in the database but not expected");
        }
    }
    s
}

/// A readable difference of two journal multisets (empty when equal).
pub fn journal_diff(expected: &[J], actual: &[J]) -> String {
    let mut e = expected.to_vec();
    let mut a = actual.to_vec();
    e.sort();
    a.sort();
    let mut s = String::new();
    let mut rest = a.clone();
    for j in &e {
        if let Some(pos) = rest.iter().position(|x| x == j) {
            rest.remove(pos);
        } else {
            let _ = writeln!(s, "missing journal row: {j:?}");
        }
    }
    for j in rest {
        let _ = writeln!(s, "unexpected journal row: {j:?}");
    }
    s
}

/// What the database holds for one employer according to the oracle, run after run.
pub struct Tracker {
    pub employer: Uuid,
    pub opts: Opts,
    /// The employees whose data is stored (`None` = all).
    pub scope: Option<BTreeSet<Uuid>>,
    pub model: Model,
}

impl Tracker {
    pub fn new(employer: Uuid, opts: Opts) -> Tracker {
        Tracker {
            employer,
            opts,
            scope: if opts.all_employments {
                None
            } else {
                Some(BTreeSet::new())
            },
            model: empty_model(),
        }
    }
}

// ------------------------------------------------------------------------------ the environment

/// A simulator, a database, a state directory and a configuration, driven through the binary.
pub struct Env {
    pub sim: RunningSim,
    pub db: Db,
    pub config: PathBuf,
    pub employers: Vec<(Uuid, Opts)>,
    /// stdout and stderr of every agent process, for canary checks.
    pub output: Mutex<String>,
    pub dir: tempfile::TempDir,
}

/// A small simulator: `employers` × `employees` employees, pages of 7, today = the UTC date (the
/// agent's own "today").
pub fn sim_config(seed: u64, employers: usize, employees: usize) -> SimConfig {
    SimConfig {
        seed,
        employers,
        employees_per_employer: employees,
        max_page_size: 7,
        ..Default::default()
    }
}

impl Env {
    /// Starts the simulator and creates the database; the first `opts.len()` simulated employers
    /// are configured (active) with these options. The schema is created and the refresh token
    /// stored, so the first `sync` is the initial sync.
    pub async fn start(backend: Backend, sim: SimConfig, opts: &[Opts]) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        Env::start_in(backend, sim, opts, dir).await
    }

    /// [`Env::start`] with the configuration, state directory and SQLite file in `dir`.
    pub async fn start_in(
        backend: Backend,
        sim: SimConfig,
        opts: &[Opts],
        dir: tempfile::TempDir,
    ) -> Env {
        let sim = loket_sim::start(sim).await.expect("the simulator starts");
        let db = Db::create(backend, dir.path()).await;
        let env = Env::assemble(sim, db, dir, opts);
        // Creates the schema (migrations run at connect).
        let sink = env.sink().await;
        drop(sink);
        env.connect_sim().await;
        env
    }

    /// An environment of these parts, its configuration written (the first `opts.len()`
    /// simulated employers active with these options); no schema or token yet.
    pub fn assemble(sim: RunningSim, db: Db, dir: tempfile::TempDir, opts: &[Opts]) -> Env {
        let employers = sim
            .employer_ids
            .iter()
            .zip(opts)
            .map(|(id, o)| (Uuid::parse_str(id).expect("uuid"), *o))
            .collect();
        let env = Env {
            config: dir.path().join("agent.toml"),
            sim,
            db,
            employers,
            output: Mutex::new(String::new()),
            dir,
        };
        env.write_config();
        env
    }

    /// Stores the simulator's refresh token for connection `sim` (`connect --refresh-token-stdin`).
    pub async fn connect_sim(&self) {
        let token = self.sim.refresh_token.clone();
        let out = self
            .agent(
                &["connect", "sim", "--refresh-token-stdin"],
                &[],
                Some(&token),
            )
            .await;
        assert!(out.status.success(), "connect failed: {}", text(&out));
    }

    pub fn handle(&self) -> SimHandle {
        self.sim.state()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn sled_dir(&self) -> PathBuf {
        self.state_dir().join("sled")
    }

    pub fn employer(&self, i: usize) -> Uuid {
        self.employers[i].0
    }

    pub fn write_config(&self) {
        let mut s = format!(
            r#"[agent]
state_dir = "{state}"
max_concurrent_employers = 4

[database]
url = "{url}"
schema = "{PG_SCHEMA}"

[[connection]]
name = "sim"
api_url = "{api}"
oauth_url = "{oauth}"
client_id = "{client}"
requests_per_second = 1000.0
max_parallel_requests = 4
"#,
            state = self.state_dir().display(),
            url = self.db.url(),
            api = self.sim.api_url,
            oauth = self.sim.oauth_url,
            client = self.sim.client_id,
        );
        for (n, (id, o)) in self.employers.iter().enumerate() {
            let _ = write!(
                s,
                r#"
[[employer]]
id = "{id}"
connection = "sim"
name = "Employer {n}"
active = true
all_employments = {}
absences = {}
salary = {}
bsn = {}
history_months = {}
"#,
                o.all_employments, o.absences, o.salary, o.bsn, o.history_months
            );
        }
        std::fs::write(&self.config, s).expect("write the configuration");
    }

    /// Changes an employer's options in the configuration file.
    pub fn set_opts(&mut self, i: usize, opts: Opts) {
        self.employers[i].1 = opts;
        self.write_config();
    }

    /// A library `Sink` on the same database (for `case_watch`, which the case-management
    /// application writes).
    pub async fn sink(&self) -> arbosync_agent::sink::Sink {
        arbosync_agent::sink::Sink::connect(&self.db.url(), PG_SCHEMA)
            .await
            .expect("the sink connects")
    }

    pub async fn add_case_watch(&self, employer: Uuid, employee_number: i64) {
        self.sink()
            .await
            .add_case_watch(&employer.to_string(), employee_number)
            .await
            .expect("add case_watch");
    }

    /// Runs the binary with `args` (plus `--config`), debug logging, and extra environment.
    pub async fn agent(&self, args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args)
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "debug")
            .env_remove("ARBOSYNC_FAILPOINT")
            .env_remove("ARBOSYNC_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the agent binary starts");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).await.expect("write stdin");
        }
        drop(input);
        let out = child.wait_with_output().await.expect("the agent finishes");
        self.output
            .lock()
            .expect("output lock")
            .push_str(&text(&out));
        out
    }

    /// `sync --once --json [args]`: the exit code and the JSON document.
    pub async fn sync_with(
        &self,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> (Output, serde_json::Value) {
        let mut all = vec!["sync", "--once", "--json"];
        all.extend_from_slice(args);
        let out = self.agent(&all, envs, None).await;
        let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out, doc)
    }

    /// `sync --once --json [args]`, which must succeed for every employer.
    pub async fn sync_ok(&self, args: &[&str]) -> serde_json::Value {
        let (out, doc) = self.sync_with(args, &[]).await;
        assert!(
            out.status.success(),
            "sync {args:?} failed ({:?}): {}",
            out.status.code(),
            text(&out)
        );
        doc
    }

    /// Checks the run that just ended against the oracle: for every tracked employer whose run
    /// succeeded, the journal rows after `seq_before` are exactly the difference between the
    /// previous and the new expected state, and the live rows equal the new expected state.
    /// An employer whose run failed must have no journal rows and keeps its previous state.
    /// Returns the new journal rows per employer.
    pub async fn check_run(
        &self,
        trackers: &mut [Tracker],
        doc: &serde_json::Value,
        seq_before: i64,
        what: &str,
    ) -> HashMap<Uuid, Vec<J>> {
        let world = self.handle().truth();
        let source = source_ids(&world);
        let journal = self.db.journal(seq_before).await;
        let mut by_employer: HashMap<Uuid, Vec<J>> = HashMap::new();
        for row in &journal {
            let id = Uuid::parse_str(&row.employer_id).expect("employer uuid");
            by_employer.entry(id).or_default().push(row.j.clone());
        }
        for tr in trackers.iter_mut() {
            let outcome = outcome_of(doc, tr.employer);
            let got = by_employer.get(&tr.employer).cloned().unwrap_or_default();
            let status = outcome["status"].as_str().unwrap_or("missing");
            if status != "ok" {
                assert!(
                    got.is_empty(),
                    "{what}: employer {} failed ({status}) but wrote journal rows: {got:?}",
                    tr.employer
                );
                let live = self.db.live_model(tr.employer).await;
                let diff = model_diff(&tr.model, &live);
                assert!(
                    diff.is_empty(),
                    "{what}: employer {} failed but its rows changed:\n{diff}",
                    tr.employer
                );
                continue;
            }
            let full = outcome["kind"] == "full";
            let case_watch = self.db.case_watch(tr.employer).await;
            let src = source_scope(&world, tr.employer, tr.opts, &case_watch);
            let scope = match (src, &tr.scope) {
                (None, _) => None,
                (Some(s), _) if full => Some(s),
                (Some(s), Some(prev)) => Some(
                    s.union(prev)
                        .filter(|id| world.employees.contains_key(*id))
                        .copied()
                        .collect(),
                ),
                (Some(s), None) => Some(s),
            };
            let model = expected(&world, tr.employer, tr.opts, scope.as_ref());
            let want = expected_journal(&tr.model, &model, &source);
            let diff = journal_diff(&want, &got);
            assert!(
                diff.is_empty(),
                "{what}: journal of employer {} ({}) is wrong:\n{diff}",
                tr.employer,
                self.db.url()
            );
            let live = self.db.live_model(tr.employer).await;
            let diff = model_diff(&model, &live);
            assert!(
                diff.is_empty(),
                "{what}: tables of employer {} differ from the source:\n{diff}",
                tr.employer
            );
            tr.scope = scope;
            tr.model = model;
        }
        by_employer
    }

    /// One `sync --once --json [args]` that must succeed, checked with [`Env::check_run`].
    pub async fn step(
        &self,
        trackers: &mut [Tracker],
        args: &[&str],
        what: &str,
    ) -> HashMap<Uuid, Vec<J>> {
        let seq = self.db.max_seq().await;
        let doc = self.sync_ok(args).await;
        self.check_run(trackers, &doc, seq, what).await
    }

    pub fn all_output(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }
}

pub fn trackers(env: &Env) -> Vec<Tracker> {
    env.employers
        .iter()
        .map(|(id, o)| Tracker::new(*id, *o))
        .collect()
}

/// The outcome of one employer in a `--json` document.
pub fn outcome_of(doc: &serde_json::Value, employer: Uuid) -> serde_json::Value {
    doc["employers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["employer_id"] == employer.to_string())
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The journal rows of the latest check for one employer, sorted.
pub fn rows_of(map: &HashMap<Uuid, Vec<J>>, employer: Uuid) -> Vec<J> {
    let mut v = map.get(&employer).cloned().unwrap_or_default();
    v.sort();
    v
}

pub fn count(rows: &[J], entity: Entity, op: &str) -> usize {
    rows.iter()
        .filter(|j| j.entity == entity.table() && j.op == op)
        .count()
}

/// Runs `f` once per backend: on SQLite, then on PostgreSQL.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
