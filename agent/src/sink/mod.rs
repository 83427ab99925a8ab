//! The arbodienst database: migrations, upserts guarded by content hashes, the mutation journal,
//! soft deletes, option purges and run bookkeeping, on SQLite and PostgreSQL.
//!
//! [`Sink`] is the one entry point (cheap to clone, shared by all employer workers). Every write
//! operation is one database transaction, with its journal (`mutation`) rows inside it:
//!
//! - [`Sink::apply`] dedupes the batch by key (last wins), then per record compares the
//!   `content_hash` with the stored one: new → insert + `insert` journal row (all columns);
//!   changed → update + `update` row naming the changed columns (never values); same hash → no write
//!   at all; soft-deleted and back → `deleted_at` cleared + `update` row including `deleted_at`.
//!   If the hash differs but every value is equal (e.g. after a BSN purge, or a new hash encoding),
//!   only the hash is refreshed, without a journal row.
//! - Soft deletes ([`Sink::soft_delete`], [`Sink::soft_delete_missing`]) cascade to the rows hanging
//!   off the deleted ones (employee → employments, absences; employment → its periods; absence →
//!   progress), one `delete` row each (`changed_fields = ["deleted_at"]`); rows already
//!   soft-deleted are left alone (no duplicate journal rows).
//! - Purges hard-delete (the data must be gone) with a `delete` row per row that was still live
//!   (`changed_fields` = all columns); [`Sink::purge_bsn`] instead sets `bsn` to NULL and recomputes
//!   the stored `content_hash` from the remaining values, so the next sync with `bsn` off (whose
//!   records carry `bsn: None`) finds equal hashes and writes nothing.
//!
//! - Gone means gone: SQLite runs with `secure_delete` on and truncates its WAL after a purge, so a
//!   purged BSN or wage is not left in the file bytes; PostgreSQL parameters holding record values
//!   are bound through a wrapper whose `Debug` is redacted, because tokio-postgres logs statement
//!   parameters at debug level.
//!
//! Backends: `sqlite.rs` (rusqlite on the blocking pool) and `postgres.rs` (tokio-postgres,
//! set-based statements over `UNNEST` arrays). Shared decisions live in `plan.rs`, the schema in
//! `migrations.rs`.

mod error;
mod migrations;
mod plan;
mod postgres;
mod sqlite;
mod target;
mod tls;

use std::collections::{HashMap, HashSet};

pub use error::SinkError;
pub use plan::ApplyStats;

use chrono::NaiveDate;

use crate::records::{ColumnDef, Entity, Record, Value};
use target::Target;

/// The newest schema version this binary creates and understands.
pub const SCHEMA_VERSION: i64 = migrations::SUPPORTED_VERSION;

/// A connection to the arbodienst database. Clones share the connection.
#[derive(Clone)]
pub struct Sink {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteSink),
    Postgres(postgres::PgSink),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("backend", &self.backend_name())
            .finish()
    }
}

/// What a run was started for (`sync_run.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Incremental,
    Full,
    Manual,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Incremental => "incremental",
            RunKind::Full => "full",
            RunKind::Manual => "manual",
        }
    }
}

/// How a run ended (`sync_run.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Ok,
    /// Some records went to the retry queue; the rest was synced.
    Partial,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
        }
    }

    /// `ok` and `partial` runs refreshed the employer's data and set `employer.last_synced_at`.
    pub fn is_success(self) -> bool {
        matches!(self, RunStatus::Ok | RunStatus::Partial)
    }
}

/// The counts recorded in `sync_run`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub failed: u64,
}

/// Which stored rows a full reconciliation covers in [`Sink::soft_delete_missing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteScope {
    /// Every row of the employer's entity table.
    Employer,
    /// Only rows whose parent ([`Entity::parent_column`]) is one of these ids, e.g. the absences of
    /// the employees whose absences were fetched completely.
    Parents(HashSet<String>),
}

/// One `mutation` row, as read back by [`Sink::journal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    pub seq: i64,
    pub employer_id: String,
    pub entity: String,
    pub entity_id: String,
    pub op: String,
    pub changed_fields: Vec<String>,
    pub run_id: String,
}

/// The tables counted in [`EmployerOverview::live_rows`].
pub const COUNTED_TABLES: &[&str] = &[
    "department",
    "employee",
    "employment",
    "employment_department_period",
    "employment_workweek_period",
    "employment_salary_period",
    "absence",
    "absence_progress",
];

/// What the dashboard shows of an employer's stored data: its name and live rows per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmployerOverview {
    /// The employer's name as Loket reports it (after its first sync).
    pub name: Option<String>,
    pub live_rows: std::collections::BTreeMap<String, u64>,
}

/// `SELECT name, count...` over [`COUNTED_TABLES`] for one employer (`$1`/`?1`); `table`
/// qualifies a table name for the backend.
fn overview_sql(table: impl Fn(&str) -> String, param: &str) -> String {
    let mut sql = format!(
        "SELECT 'employer' AS t, (SELECT name FROM {} WHERE id = {param}) AS name, 0 AS n",
        table("employer")
    );
    for t in COUNTED_TABLES {
        sql.push_str(&format!(
            " UNION ALL SELECT '{t}', NULL, count(*) FROM {} WHERE employer_id = {param} AND deleted_at IS NULL",
            table(t)
        ));
    }
    sql
}

/// A stored, live employment as the sync needs it for scoping and absence matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEmployment {
    pub employee_id: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub content_hash: String,
}

/// A stored, live absence as the sync needs it for polling and diffing. No personal details.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredAbsence {
    pub employee_id: String,
    pub employment_id: Option<String>,
    pub first_day: NaiveDate,
    pub last_day: Option<NaiveDate>,
    pub content_hash: String,
}

impl std::fmt::Debug for StoredAbsence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAbsence")
            .field("employee_id", &self.employee_id)
            .finish_non_exhaustive()
    }
}

/// One stored row read back by [`Sink::stored_row`]: canonical columns and the soft-delete flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub columns: Vec<(&'static str, Value)>,
    pub deleted: bool,
}

fn column_defs(entity: Entity, names: &[&str]) -> Vec<ColumnDef> {
    entity
        .columns()
        .iter()
        .filter(|c| names.contains(&c.name))
        .copied()
        .collect()
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Text(s) => Some(s.clone()),
        _ => None,
    }
}

fn date_of(value: &Value) -> Option<NaiveDate> {
    match value {
        Value::Date(d) => Some(*d),
        _ => None,
    }
}

fn missing_column(entity: Entity, column: &str) -> SinkError {
    SinkError::query(
        format!("reading stored {entity} rows"),
        format!("column {column} is empty or of the wrong type"),
    )
}

/// A hard-deleting purge: which entities it touches (parents first) and which rows it picks.
#[derive(Debug, Clone)]
pub(crate) enum Purge {
    Salary,
    Absences,
    /// These absences (e.g. ended before the history window) with their progress.
    AbsenceIds(HashSet<String>),
    OutOfScope {
        keep_employee_ids: HashSet<String>,
    },
}

impl Purge {
    fn entities(&self) -> &'static [Entity] {
        match self {
            Purge::Salary => &[Entity::SalaryPeriod],
            Purge::Absences | Purge::AbsenceIds(_) => &[Entity::Absence, Entity::AbsenceProgress],
            Purge::OutOfScope { .. } => &[
                Entity::Employee,
                Entity::Employment,
                Entity::DepartmentPeriod,
                Entity::WorkweekPeriod,
                Entity::SalaryPeriod,
                Entity::Absence,
                Entity::AbsenceProgress,
            ],
        }
    }

    /// Picks the ids to delete among `rows` (`(id, parent id, soft-deleted)`) of `entity`, knowing
    /// what was already picked for the entities before it.
    fn select(
        &self,
        entity: Entity,
        rows: Vec<(String, Option<String>, bool)>,
        chosen: &HashMap<Entity, Vec<String>>,
    ) -> Vec<String> {
        let keep_employee_ids = match self {
            Purge::Salary | Purge::Absences => {
                return rows.into_iter().map(|(id, _, _)| id).collect();
            }
            Purge::AbsenceIds(ids) => {
                return match entity {
                    Entity::Absence => rows
                        .into_iter()
                        .filter(|(id, _, _)| ids.contains(id))
                        .map(|(id, _, _)| id)
                        .collect(),
                    Entity::AbsenceProgress => {
                        let absences: HashSet<&String> =
                            chosen.get(&Entity::Absence).into_iter().flatten().collect();
                        pick_children(rows, &absences)
                    }
                    _ => Vec::new(),
                };
            }
            Purge::OutOfScope { keep_employee_ids } => keep_employee_ids,
        };
        let parent_chosen = |parent: Entity| -> HashSet<&String> {
            chosen.get(&parent).into_iter().flatten().collect()
        };
        match entity {
            Entity::Employee => rows
                .into_iter()
                .filter(|(id, _, _)| !keep_employee_ids.contains(id))
                .map(|(id, _, _)| id)
                .collect(),
            Entity::Employment | Entity::Absence => rows
                .into_iter()
                .filter(|(_, parent, _)| {
                    parent
                        .as_ref()
                        .is_none_or(|p| !keep_employee_ids.contains(p))
                })
                .map(|(id, _, _)| id)
                .collect(),
            Entity::DepartmentPeriod | Entity::WorkweekPeriod | Entity::SalaryPeriod => {
                let employments = parent_chosen(Entity::Employment);
                pick_children(rows, &employments)
            }
            Entity::AbsenceProgress => {
                let absences = parent_chosen(Entity::Absence);
                pick_children(rows, &absences)
            }
            Entity::Employer | Entity::Department => Vec::new(),
        }
    }
}

fn pick_children(
    rows: Vec<(String, Option<String>, bool)>,
    parents: &HashSet<&String>,
) -> Vec<String> {
    rows.into_iter()
        .filter(|(_, parent, _)| parent.as_ref().is_some_and(|p| parents.contains(p)))
        .map(|(id, _, _)| id)
        .collect()
}

/// The live rows (`(id, parent, soft-deleted)`) that a reconciliation did not see, within `scope`.
fn missing_ids(
    entity: Entity,
    rows: Vec<(String, Option<String>, bool)>,
    seen: &HashSet<String>,
    scope: &DeleteScope,
) -> Result<Vec<String>, SinkError> {
    if matches!(scope, DeleteScope::Parents(_)) && entity.parent_column().is_none() {
        return Err(SinkError::query(
            format!("soft-deleting missing {entity} rows"),
            "this entity has no parent to scope by",
        ));
    }
    Ok(rows
        .into_iter()
        .filter(|(id, parent, deleted)| {
            !deleted
                && !seen.contains(id)
                && match scope {
                    DeleteScope::Employer => true,
                    DeleteScope::Parents(parents) => {
                        parent.as_ref().is_some_and(|p| parents.contains(p))
                    }
                }
        })
        .map(|(id, _, _)| id)
        .collect())
}

fn parse_changed_fields(json: &str) -> Result<Vec<String>, SinkError> {
    serde_json::from_str(json).map_err(|_| {
        SinkError::query(
            "reading the journal",
            "changed_fields is not a JSON array of names",
        )
    })
}

impl Sink {
    /// Opens the database and brings its schema up to date.
    ///
    /// `url`: `sqlite:///abs/path.db`, `sqlite://relative.db`, `sqlite::memory:`, or
    /// `postgres://…` / `postgresql://…`. `pg_schema` is the PostgreSQL schema holding the tables
    /// (`[a-z_][a-z0-9_]*`); it is ignored for SQLite. The SQLite file (mode 0600) and its
    /// directory are created when missing.
    pub async fn connect(url: &str, pg_schema: &str) -> Result<Sink, SinkError> {
        let backend = match Target::parse(url)? {
            Target::SqliteFile(path) => {
                Backend::Sqlite(sqlite::SqliteSink::open(Some(path)).await?)
            }
            Target::SqliteMemory => Backend::Sqlite(sqlite::SqliteSink::open(None).await?),
            Target::Postgres(url) => {
                let schema = target::quoted_schema(pg_schema)?;
                Backend::Postgres(postgres::PgSink::connect(&url, schema).await?)
            }
        };
        Ok(Sink { backend })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The schema version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64, SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.schema_version().await,
            Backend::Postgres(p) => p.reset_on_transient(p.schema_version().await).await,
        }
    }

    /// Writes a batch in one transaction (see the module docs for the rules).
    pub async fn apply(&self, run_id: &str, batch: Vec<Record>) -> Result<ApplyStats, SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.apply(run_id, batch).await,
            Backend::Postgres(p) => p.reset_on_transient(p.apply(run_id, batch).await).await,
        }
    }

    /// Full reconciliation: soft-deletes the live rows of `employer_id`'s `entity` table (within
    /// `scope`) whose id is not in `seen_ids`, cascading to their children. Returns the number of
    /// rows soft-deleted (one `delete` journal row each).
    pub async fn soft_delete_missing(
        &self,
        run_id: &str,
        employer_id: &str,
        entity: Entity,
        seen_ids: &HashSet<String>,
        scope: &DeleteScope,
    ) -> Result<u64, SinkError> {
        let (seen, scope) = (seen_ids.clone(), scope.clone());
        match &self.backend {
            Backend::Sqlite(s) => {
                s.soft_delete_missing(run_id, employer_id, entity, seen, scope)
                    .await
            }
            Backend::Postgres(p) => {
                p.reset_on_transient(
                    p.soft_delete_missing(run_id, employer_id, entity, seen, scope)
                        .await,
                )
                .await
            }
        }
    }

    /// Soft-deletes these rows (e.g. an absence withdrawn at the source) and the rows hanging off
    /// them. Unknown and already deleted ids are skipped. Returns the number of rows soft-deleted.
    pub async fn soft_delete(
        &self,
        run_id: &str,
        entity: Entity,
        employer_id: &str,
        ids: &[String],
    ) -> Result<u64, SinkError> {
        let ids = ids.to_vec();
        match &self.backend {
            Backend::Sqlite(s) => s.soft_delete(run_id, entity, employer_id, ids).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.soft_delete(run_id, entity, employer_id, ids).await)
                    .await
            }
        }
    }

    /// `bsn` option off: sets every `employee.bsn` of the employer to NULL (soft-deleted rows too),
    /// recomputing `content_hash`; one `update` row (`["bsn"]`) each. Returns the rows changed.
    pub async fn purge_bsn(&self, run_id: &str, employer_id: &str) -> Result<u64, SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.purge_bsn(run_id, employer_id).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.purge_bsn(run_id, employer_id).await)
                    .await
            }
        }
    }

    /// `salary` option off: hard-deletes the employer's salary periods. Returns the rows removed.
    pub async fn purge_salary(&self, run_id: &str, employer_id: &str) -> Result<u64, SinkError> {
        self.purge(run_id, employer_id, Purge::Salary).await
    }

    /// `absences` option off: hard-deletes the employer's absences and their progress rows.
    pub async fn purge_absences(&self, run_id: &str, employer_id: &str) -> Result<u64, SinkError> {
        self.purge(run_id, employer_id, Purge::Absences).await
    }

    /// Hard-deletes these absences of the employer with their progress rows (absences that ended
    /// before the history window are not stored). Returns the rows removed.
    pub async fn purge_absence_ids(
        &self,
        run_id: &str,
        employer_id: &str,
        ids: &HashSet<String>,
    ) -> Result<u64, SinkError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.purge(run_id, employer_id, Purge::AbsenceIds(ids.clone()))
            .await
    }

    /// `all_employments` off: hard-deletes the employees not in `keep_employee_ids`, with their
    /// employments, those employments' periods, their absences and those absences' progress.
    pub async fn purge_out_of_scope(
        &self,
        run_id: &str,
        employer_id: &str,
        keep_employee_ids: &HashSet<String>,
    ) -> Result<u64, SinkError> {
        let purge = Purge::OutOfScope {
            keep_employee_ids: keep_employee_ids.clone(),
        };
        self.purge(run_id, employer_id, purge).await
    }

    async fn purge(&self, run_id: &str, employer_id: &str, purge: Purge) -> Result<u64, SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.purge(run_id, employer_id, purge).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.purge(run_id, employer_id, purge).await)
                    .await
            }
        }
    }

    /// The explicit purge command: deletes every row of the employer from the entity tables, its
    /// `sync_run` rows and its earlier journal rows, then writes ONE journal row
    /// (`delete`, entity `employer`, `changed_fields` `[]`) telling consumers to drop the employer.
    /// `case_watch` (owned by the case-management application) is left alone. Returns the number of
    /// entity rows removed.
    pub async fn purge_employer(&self, run_id: &str, employer_id: &str) -> Result<u64, SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.purge_employer(run_id, employer_id).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.purge_employer(run_id, employer_id).await)
                    .await
            }
        }
    }

    /// Ids of the employer's live (not soft-deleted) rows of `entity`.
    pub async fn stored_ids(
        &self,
        employer_id: &str,
        entity: Entity,
    ) -> Result<HashSet<String>, SinkError> {
        Ok(self
            .stored_hashes(employer_id, entity)
            .await?
            .into_keys()
            .collect())
    }

    /// `id → content_hash` of the employer's live rows of `entity`. Soft-deleted rows are left out
    /// on purpose: a record that comes back must reach [`Sink::apply`] to be revived.
    pub async fn stored_hashes(
        &self,
        employer_id: &str,
        entity: Entity,
    ) -> Result<HashMap<String, String>, SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.stored_hashes(employer_id, entity).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.stored_hashes(employer_id, entity).await)
                    .await
            }
        }
    }

    /// `id → parent id` ([`Entity::parent_column`]) of the employer's live rows of `entity`
    /// (empty for entities without a parent).
    pub async fn stored_parents(
        &self,
        employer_id: &str,
        entity: Entity,
    ) -> Result<HashMap<String, String>, SinkError> {
        let Some(parent) = entity.parent_column() else {
            return Ok(HashMap::new());
        };
        let rows = self
            .live_rows(employer_id, entity, column_defs(entity, &[parent]))
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, _, values)| values.first().and_then(text_of).map(|p| (id, p)))
            .collect())
    }

    /// The employer's live employments by id.
    pub async fn stored_employments(
        &self,
        employer_id: &str,
    ) -> Result<HashMap<String, StoredEmployment>, SinkError> {
        let entity = Entity::Employment;
        let defs = column_defs(entity, &["employee_id", "start_date", "end_date"]);
        let mut out = HashMap::new();
        for (id, content_hash, v) in self.live_rows(employer_id, entity, defs).await? {
            let employee_id = v
                .first()
                .and_then(text_of)
                .ok_or_else(|| missing_column(entity, "employee_id"))?;
            let start_date = v
                .get(1)
                .and_then(date_of)
                .ok_or_else(|| missing_column(entity, "start_date"))?;
            let end_date = v.get(2).and_then(date_of);
            out.insert(
                id,
                StoredEmployment {
                    employee_id,
                    start_date,
                    end_date,
                    content_hash,
                },
            );
        }
        Ok(out)
    }

    /// The employer's live absences by id.
    pub async fn stored_absences(
        &self,
        employer_id: &str,
    ) -> Result<HashMap<String, StoredAbsence>, SinkError> {
        let entity = Entity::Absence;
        let defs = column_defs(
            entity,
            &["employee_id", "employment_id", "first_day", "last_day"],
        );
        let mut out = HashMap::new();
        for (id, content_hash, v) in self.live_rows(employer_id, entity, defs).await? {
            let employee_id = v
                .first()
                .and_then(text_of)
                .ok_or_else(|| missing_column(entity, "employee_id"))?;
            let first_day = v
                .get(2)
                .and_then(date_of)
                .ok_or_else(|| missing_column(entity, "first_day"))?;
            out.insert(
                id,
                StoredAbsence {
                    employee_id,
                    employment_id: v.get(1).and_then(text_of),
                    first_day,
                    last_day: v.get(3).and_then(date_of),
                    content_hash,
                },
            );
        }
        Ok(out)
    }

    /// `employee id → BSN` of the employer's live employees that have one stored.
    pub async fn stored_bsns(
        &self,
        employer_id: &str,
    ) -> Result<HashMap<String, String>, SinkError> {
        let entity = Entity::Employee;
        let rows = self
            .live_rows(employer_id, entity, column_defs(entity, &["bsn"]))
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, _, values)| values.first().and_then(text_of).map(|b| (id, b)))
            .collect())
    }

    /// The stored BSN of one employee, if any.
    pub async fn stored_bsn(
        &self,
        employer_id: &str,
        employee_id: &str,
    ) -> Result<Option<String>, SinkError> {
        let row = self
            .stored_row(employer_id, Entity::Employee, employee_id)
            .await?;
        Ok(row.and_then(|r| {
            r.columns
                .into_iter()
                .find(|(name, _)| *name == "bsn")
                .and_then(|(_, v)| text_of(&v))
        }))
    }

    /// One stored row (live or soft-deleted), decoded into canonical columns.
    pub async fn stored_row(
        &self,
        employer_id: &str,
        entity: Entity,
        id: &str,
    ) -> Result<Option<StoredRow>, SinkError> {
        let found = match &self.backend {
            Backend::Sqlite(s) => s.row_values(employer_id, entity, id).await?,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.row_values(employer_id, entity, id).await)
                    .await?
            }
        };
        Ok(found.map(|(values, deleted)| StoredRow {
            columns: entity
                .columns()
                .iter()
                .map(|c| c.name)
                .zip(values)
                .collect(),
            deleted,
        }))
    }

    async fn live_rows(
        &self,
        employer_id: &str,
        entity: Entity,
        columns: Vec<ColumnDef>,
    ) -> Result<Vec<(String, String, Vec<Value>)>, SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.live_rows(employer_id, entity, columns).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.live_rows(employer_id, entity, columns).await)
                    .await
            }
        }
    }

    /// Sets `employer.last_synced_at` to now (no journal row: bookkeeping, not source data).
    /// [`Sink::finish_run`] does this too for `ok`/`partial` runs.
    pub async fn mark_synced(&self, employer_id: &str) -> Result<(), SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.mark_synced(employer_id).await,
            Backend::Postgres(p) => p.reset_on_transient(p.mark_synced(employer_id).await).await,
        }
    }

    /// The employee numbers the case-management application watches for this employer.
    /// The employer's name and live rows per table, for the dashboard.
    pub async fn employer_overview(
        &self,
        employer_id: &str,
    ) -> Result<EmployerOverview, SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.employer_overview(employer_id).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.employer_overview(employer_id).await)
                    .await
            }
        }
    }

    pub async fn case_watch_employee_numbers(
        &self,
        employer_id: &str,
    ) -> Result<HashSet<i64>, SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.case_watch_employee_numbers(employer_id).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.case_watch_employee_numbers(employer_id).await)
                    .await
            }
        }
    }

    /// Adds a `case_watch` row (normally written by the case-management application; for tests and
    /// the demo). Adding an existing row is a no-op.
    pub async fn add_case_watch(
        &self,
        employer_id: &str,
        employee_number: i64,
    ) -> Result<(), SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.add_case_watch(employer_id, employee_number).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.add_case_watch(employer_id, employee_number).await)
                    .await
            }
        }
    }

    /// `(absence id, employee id)` of the employer's live absences without a last day.
    pub async fn open_absences(
        &self,
        employer_id: &str,
    ) -> Result<Vec<(String, String)>, SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.open_absences(employer_id).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.open_absences(employer_id).await)
                    .await
            }
        }
    }

    /// Records the start of a run (`sync_run` row with status `running`). Earlier runs of the same
    /// employer still marked `running` were interrupted (the process died; one agent runs an
    /// employer at a time): they are closed as `failed` first.
    pub async fn start_run(
        &self,
        run_id: &str,
        employer_id: &str,
        kind: RunKind,
    ) -> Result<(), SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.start_run(run_id, employer_id, kind).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.start_run(run_id, employer_id, kind).await)
                    .await
            }
        }
    }

    /// Records the end of a run; on `ok`/`partial` also sets `employer.last_synced_at` (no journal
    /// row: it is bookkeeping, not source data). Unknown run ids are an error.
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        counts: RunCounts,
    ) -> Result<(), SinkError> {
        match &self.backend {
            Backend::Sqlite(s) => s.finish_run(run_id, status, counts).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.finish_run(run_id, status, counts).await)
                    .await
            }
        }
    }

    /// Journal rows with `seq > after_seq` (of one employer, or all), in `seq` order.
    pub async fn journal(
        &self,
        employer_id: Option<&str>,
        after_seq: i64,
    ) -> Result<Vec<JournalRow>, SinkError> {
        let employer_id = employer_id.map(str::to_owned);
        match &self.backend {
            Backend::Sqlite(s) => s.journal(employer_id, after_seq).await,
            Backend::Postgres(p) => {
                p.reset_on_transient(p.journal(employer_id, after_seq).await)
                    .await
            }
        }
    }
}
