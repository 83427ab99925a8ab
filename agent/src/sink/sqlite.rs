//! The SQLite backend: one connection (WAL, `synchronous=FULL`, busy timeout) behind a std
//! `Mutex`, used from `spawn_blocking`. Every operation is one `BEGIN IMMEDIATE` transaction with
//! cached prepared statements.
//!
//! Storage: dates as `'YYYY-MM-DD'`, money as text with two decimals (`'4321.09'`), other decimals
//! as normalized text (`'4.5'`), booleans as `0`/`1`, timestamps as RFC 3339 UTC text.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use rust_decimal::Decimal;

use super::error::{self, SinkError};
use super::migrations::{self, BOOTSTRAP, MIGRATIONS, SQLITE, SUPPORTED_VERSION};
use super::plan::{self, ApplyStats, Classified, Compared, JournalEntry, Op, Stored};
use super::{DeleteScope, JournalRow, Purge, RunCounts, RunKind, RunStatus};
use crate::records::{self, ColumnDef, ColumnType, Entity, Record, Value};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQL text of the per-entity statements (the keys of the prepared-statement cache).
struct EntitySql {
    select_state: String,
    select_row: String,
    insert: String,
    update: String,
    revive: String,
    refresh_hash: String,
    soft_delete: String,
    hard_delete: String,
    rows_with_parent: String,
    live_hashes: String,
}

impl EntitySql {
    fn new(entity: Entity) -> EntitySql {
        let t = entity.table();
        let cols = entity.columns();
        let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
        let n = cols.len();
        let placeholders: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
        let sets: Vec<String> = names
            .iter()
            .enumerate()
            .skip(2)
            .map(|(i, name)| format!("\"{name}\" = ?{}", i + 1))
            .collect();
        let quoted: Vec<String> = names.iter().map(|c| format!("\"{c}\"")).collect();
        let parent = entity.parent_column().unwrap_or("NULL");
        EntitySql {
            select_state: format!(
                "SELECT content_hash, deleted_at IS NOT NULL FROM {t} WHERE employer_id = ?1 AND id = ?2"
            ),
            select_row: format!(
                "SELECT {} FROM {t} WHERE employer_id = ?1 AND id = ?2",
                quoted.join(", ")
            ),
            insert: format!(
                "INSERT INTO {t} ({}, content_hash, first_seen_at, updated_at) VALUES ({}, ?{}, ?{}, ?{})",
                quoted.join(", "),
                placeholders.join(", "),
                n + 1,
                n + 2,
                n + 2
            ),
            update: format!(
                "UPDATE {t} SET {}, content_hash = ?{}, updated_at = ?{}, deleted_at = NULL \
                 WHERE id = ?1 AND employer_id = ?2",
                sets.join(", "),
                n + 1,
                n + 2
            ),
            revive: format!(
                "UPDATE {t} SET deleted_at = NULL, updated_at = ?3 WHERE employer_id = ?1 AND id = ?2"
            ),
            refresh_hash: format!(
                "UPDATE {t} SET content_hash = ?3 WHERE employer_id = ?1 AND id = ?2"
            ),
            soft_delete: format!(
                "UPDATE {t} SET deleted_at = ?3, updated_at = ?3 \
                 WHERE employer_id = ?1 AND id = ?2 AND deleted_at IS NULL"
            ),
            hard_delete: format!(
                "DELETE FROM {t} WHERE employer_id = ?1 AND id = ?2 RETURNING deleted_at IS NOT NULL"
            ),
            rows_with_parent: format!(
                "SELECT id, {parent}, deleted_at IS NOT NULL FROM {t} WHERE employer_id = ?1 ORDER BY id"
            ),
            live_hashes: format!(
                "SELECT id, content_hash FROM {t} WHERE employer_id = ?1 AND deleted_at IS NULL"
            ),
        }
    }
}

struct Statements {
    entities: Vec<(Entity, EntitySql)>,
}

impl Statements {
    fn new() -> Statements {
        Statements {
            entities: Entity::ALL
                .iter()
                .map(|e| (*e, EntitySql::new(*e)))
                .collect(),
        }
    }

    fn of(&self, entity: Entity) -> &EntitySql {
        // Every entity of Entity::ALL is in the list (built from it above).
        match self.entities.iter().find(|(e, _)| *e == entity) {
            Some((_, sql)) => sql,
            None => unreachable!("statements are built for every entity"),
        }
    }
}

const INSERT_JOURNAL: &str = "INSERT INTO mutation \
    (employer_id, entity, entity_id, op, changed_fields, run_id, recorded_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// The SQLite sink. Cheap to clone; all clones share the one connection.
#[derive(Clone)]
pub(crate) struct SqliteSink {
    conn: Arc<Mutex<Connection>>,
    sql: Arc<Statements>,
}

fn timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn q(context: &str) -> impl FnOnce(rusqlite::Error) -> SinkError + '_ {
    move |e| error::sqlite(context, e)
}

impl SqliteSink {
    pub(crate) async fn open(path: Option<std::path::PathBuf>) -> Result<SqliteSink, SinkError> {
        tokio::task::spawn_blocking(move || open_blocking(path.as_deref()))
            .await
            .map_err(|e| SinkError::Connect {
                reason: format!("the database task failed: {e}"),
            })?
    }

    /// Runs `f` with the connection on the blocking thread pool.
    async fn run<T, F>(&self, f: F) -> Result<T, SinkError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Statements) -> Result<T, SinkError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let sql = Arc::clone(&self.sql);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a transaction open (rusqlite rolls back
            // on drop), so a poisoned connection is still consistent.
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard, &sql)
        })
        .await
        .map_err(|e| SinkError::query("running a database task", e.to_string()))?
    }

    /// Runs `f` inside one immediate transaction, committed when `f` succeeds.
    async fn in_tx<T, F>(&self, context: &'static str, f: F) -> Result<T, SinkError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &Statements) -> Result<T, SinkError> + Send + 'static,
    {
        self.run(move |conn, sql| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(q(context))?;
            let out = f(&tx, sql)?;
            tx.commit().map_err(q(context))?;
            Ok(out)
        })
        .await
    }

    pub(crate) async fn schema_version(&self) -> Result<i64, SinkError> {
        self.run(|conn, _| current_version(conn)).await
    }

    pub(crate) async fn apply(
        &self,
        run_id: &str,
        batch: Vec<Record>,
    ) -> Result<ApplyStats, SinkError> {
        let run_id = run_id.to_owned();
        let now = timestamp(Utc::now());
        self.in_tx("applying a batch", move |tx, sql| {
            apply_tx(tx, sql, &run_id, batch, &now)
        })
        .await
    }

    pub(crate) async fn soft_delete(
        &self,
        run_id: &str,
        entity: Entity,
        employer_id: &str,
        ids: Vec<String>,
    ) -> Result<u64, SinkError> {
        let (run_id, employer_id) = (run_id.to_owned(), employer_id.to_owned());
        let now = timestamp(Utc::now());
        self.in_tx("soft-deleting rows", move |tx, sql| {
            soft_delete_tx(tx, sql, &run_id, &employer_id, entity, ids, &now)
        })
        .await
    }

    pub(crate) async fn soft_delete_missing(
        &self,
        run_id: &str,
        employer_id: &str,
        entity: Entity,
        seen_ids: HashSet<String>,
        scope: DeleteScope,
    ) -> Result<u64, SinkError> {
        let (run_id, employer_id) = (run_id.to_owned(), employer_id.to_owned());
        let now = timestamp(Utc::now());
        self.in_tx("soft-deleting missing rows", move |tx, sql| {
            let rows = rows_with_parent(tx, sql, &employer_id, entity)?;
            let missing = super::missing_ids(entity, rows, &seen_ids, &scope)?;
            soft_delete_tx(tx, sql, &run_id, &employer_id, entity, missing, &now)
        })
        .await
    }

    pub(crate) async fn purge_bsn(
        &self,
        run_id: &str,
        employer_id: &str,
    ) -> Result<u64, SinkError> {
        let (run_id, employer_id) = (run_id.to_owned(), employer_id.to_owned());
        let now = timestamp(Utc::now());
        let n = self
            .in_tx("purging BSNs", move |tx, sql| {
                purge_bsn_tx(tx, sql, &run_id, &employer_id, &now)
            })
            .await?;
        self.scrub(n).await;
        Ok(n)
    }

    /// After a purge that removed something: the pages are already zeroed (`secure_delete`), but
    /// older WAL frames still hold the purged values. A `TRUNCATE` checkpoint copies the current
    /// pages into the database file and empties the WAL. A failure (another reader keeps the WAL
    /// busy) is logged; the next purge or SQLite's own checkpoints catch up.
    async fn scrub(&self, purged: u64) {
        if purged == 0 {
            return;
        }
        let result = self
            .run(|conn, _| {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(q("checkpointing the WAL after a purge"))
            })
            .await;
        match result {
            Ok(0) => {}
            Ok(_) => tracing::warn!(
                "the WAL could not be truncated after a purge (busy); purged values stay in it until the next checkpoint"
            ),
            Err(e) => tracing::warn!(error = %e, "checkpointing the WAL after a purge failed"),
        }
    }

    /// Hard-deletes the rows `purge` selects, with journal rows.
    pub(crate) async fn purge(
        &self,
        run_id: &str,
        employer_id: &str,
        purge: Purge,
    ) -> Result<u64, SinkError> {
        let (run_id, employer_id) = (run_id.to_owned(), employer_id.to_owned());
        let now = timestamp(Utc::now());
        let n = self
            .in_tx("purging rows", move |tx, sql| {
                purge_tx(tx, sql, &run_id, &employer_id, &purge, &now)
            })
            .await?;
        self.scrub(n).await;
        Ok(n)
    }

    pub(crate) async fn purge_employer(
        &self,
        run_id: &str,
        employer_id: &str,
    ) -> Result<u64, SinkError> {
        let (run_id, employer_id) = (run_id.to_owned(), employer_id.to_owned());
        let now = timestamp(Utc::now());
        let n = self
            .in_tx("purging an employer", move |tx, _| {
                let mut count = 0u64;
                for entity in Entity::ALL.iter().rev() {
                    let n = tx
                        .execute(
                            &format!("DELETE FROM {} WHERE employer_id = ?1", entity.table()),
                            [&employer_id],
                        )
                        .map_err(q("purging an employer"))?;
                    count += n as u64;
                }
                for table in ["mutation", "sync_run"] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE employer_id = ?1"),
                        [&employer_id],
                    )
                    .map_err(q("purging an employer"))?;
                }
                let entry = JournalEntry::new(
                    Entity::Employer,
                    &employer_id,
                    &employer_id,
                    Op::Delete,
                    vec![],
                );
                write_journal(tx, &[entry], &run_id, &now)?;
                Ok(count)
            })
            .await?;
        self.scrub(n).await;
        Ok(n)
    }

    /// `(id, content_hash, values of columns)` of the employer's live rows of `entity`.
    pub(crate) async fn live_rows(
        &self,
        employer_id: &str,
        entity: Entity,
        columns: Vec<ColumnDef>,
    ) -> Result<Vec<(String, String, Vec<Value>)>, SinkError> {
        let employer_id = employer_id.to_owned();
        self.run(move |conn, _| {
            let context = "reading stored rows";
            let mut selects = vec!["id".to_owned(), "content_hash".to_owned()];
            selects.extend(columns.iter().map(|c| format!("\"{}\"", c.name)));
            let sql = format!(
                "SELECT {} FROM {} WHERE employer_id = ?1 AND deleted_at IS NULL ORDER BY id",
                selects.join(", "),
                entity.table()
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(q(context))?;
            let mut rows = stmt.query([&employer_id]).map_err(q(context))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(q(context))? {
                let mut values = Vec::with_capacity(columns.len());
                for (i, def) in columns.iter().enumerate() {
                    let raw = row.get_ref(i + 2).map_err(q(context))?;
                    values.push(from_sql(raw, def.ty, def.name)?);
                }
                out.push((
                    row.get(0).map_err(q(context))?,
                    row.get(1).map_err(q(context))?,
                    values,
                ));
            }
            Ok(out)
        })
        .await
    }

    /// The canonical column values of one row and whether it is soft-deleted.
    pub(crate) async fn row_values(
        &self,
        employer_id: &str,
        entity: Entity,
        id: &str,
    ) -> Result<Option<(Vec<Value>, bool)>, SinkError> {
        let (employer_id, id) = (employer_id.to_owned(), id.to_owned());
        self.run(move |conn, sql| {
            let context = "reading a stored row";
            let deleted: Option<bool> = conn
                .prepare_cached(&sql.of(entity).select_state)
                .map_err(q(context))?
                .query_row([&employer_id, &id], |r| r.get(1))
                .optional()
                .map_err(q(context))?;
            let Some(deleted) = deleted else {
                return Ok(None);
            };
            let tx = conn.transaction().map_err(q(context))?;
            let values = read_row(&tx, sql.of(entity), entity, &employer_id, &id)?;
            Ok(Some((values, deleted)))
        })
        .await
    }

    pub(crate) async fn mark_synced(&self, employer_id: &str) -> Result<(), SinkError> {
        let employer_id = employer_id.to_owned();
        let now = timestamp(Utc::now());
        self.in_tx("marking the employer synced", move |tx, _| {
            tx.execute(
                "UPDATE employer SET last_synced_at = ?2 WHERE employer_id = ?1",
                params![employer_id, now],
            )
            .map_err(q("marking the employer synced"))?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn stored_hashes(
        &self,
        employer_id: &str,
        entity: Entity,
    ) -> Result<HashMap<String, String>, SinkError> {
        let employer_id = employer_id.to_owned();
        self.run(move |conn, sql| {
            let context = "reading stored hashes";
            let mut stmt = conn
                .prepare_cached(&sql.of(entity).live_hashes)
                .map_err(q(context))?;
            let rows = stmt
                .query_map([&employer_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(q(context))?;
            rows.collect::<Result<_, _>>().map_err(q(context))
        })
        .await
    }

    pub(crate) async fn employer_overview(
        &self,
        employer_id: &str,
    ) -> Result<super::EmployerOverview, SinkError> {
        let employer_id = employer_id.to_owned();
        self.run(move |conn, _| {
            let context = "reading the employer overview";
            let sql = super::overview_sql(|t| t.to_string(), "?1");
            let mut stmt = conn.prepare_cached(&sql).map_err(q(context))?;
            let rows = stmt
                .query_map([&employer_id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(q(context))?;
            let mut out = super::EmployerOverview::default();
            for row in rows {
                let (table, name, n) = row.map_err(q(context))?;
                if table == "employer" {
                    out.name = name;
                } else {
                    out.live_rows.insert(table, n.max(0) as u64);
                }
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn case_watch_employee_numbers(
        &self,
        employer_id: &str,
    ) -> Result<HashSet<i64>, SinkError> {
        let employer_id = employer_id.to_owned();
        self.run(move |conn, _| {
            let context = "reading case_watch";
            let mut stmt = conn
                .prepare_cached("SELECT employee_number FROM case_watch WHERE employer_id = ?1")
                .map_err(q(context))?;
            let rows = stmt
                .query_map([&employer_id], |r| r.get(0))
                .map_err(q(context))?;
            rows.collect::<Result<_, _>>().map_err(q(context))
        })
        .await
    }

    pub(crate) async fn add_case_watch(
        &self,
        employer_id: &str,
        employee_number: i64,
    ) -> Result<(), SinkError> {
        let employer_id = employer_id.to_owned();
        let now = timestamp(Utc::now());
        self.in_tx("adding a case_watch row", move |tx, _| {
            tx.execute(
                "INSERT INTO case_watch (employer_id, employee_number, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO NOTHING",
                params![employer_id, employee_number, now],
            )
            .map_err(q("adding a case_watch row"))?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn open_absences(
        &self,
        employer_id: &str,
    ) -> Result<Vec<(String, String)>, SinkError> {
        let employer_id = employer_id.to_owned();
        self.run(move |conn, _| {
            let context = "reading open absences";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, employee_id FROM absence WHERE employer_id = ?1 \
                     AND last_day IS NULL AND deleted_at IS NULL ORDER BY id",
                )
                .map_err(q(context))?;
            let rows = stmt
                .query_map([&employer_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(q(context))?;
            rows.collect::<Result<_, _>>().map_err(q(context))
        })
        .await
    }

    pub(crate) async fn start_run(
        &self,
        run_id: &str,
        employer_id: &str,
        kind: RunKind,
    ) -> Result<(), SinkError> {
        let (run_id, employer_id) = (run_id.to_owned(), employer_id.to_owned());
        let now = timestamp(Utc::now());
        self.in_tx("recording a sync run", move |tx, _| {
            tx.execute(
                "UPDATE sync_run SET status = 'failed', finished_at = ?2 \
                 WHERE employer_id = ?1 AND status = 'running'",
                params![employer_id, now],
            )
            .map_err(q("closing interrupted sync runs"))?;
            tx.execute(
                "INSERT INTO sync_run (id, employer_id, kind, started_at, status) \
                 VALUES (?1, ?2, ?3, ?4, 'running')",
                params![run_id, employer_id, kind.as_str(), now],
            )
            .map_err(q("recording a sync run"))?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        counts: RunCounts,
    ) -> Result<(), SinkError> {
        let run_id = run_id.to_owned();
        let now = timestamp(Utc::now());
        self.in_tx("finishing a sync run", move |tx, _| {
            let context = "finishing a sync run";
            let n = tx
                .execute(
                    "UPDATE sync_run SET finished_at = ?2, status = ?3, inserted = ?4, \
                     updated = ?5, deleted = ?6, failed = ?7 WHERE id = ?1",
                    params![
                        run_id,
                        now,
                        status.as_str(),
                        counts.inserted as i64,
                        counts.updated as i64,
                        counts.deleted as i64,
                        counts.failed as i64
                    ],
                )
                .map_err(q(context))?;
            if n == 0 {
                return Err(SinkError::query(
                    context,
                    "no sync_run row with this run id",
                ));
            }
            if status.is_success() {
                tx.execute(
                    "UPDATE employer SET last_synced_at = ?2 \
                     WHERE employer_id = (SELECT employer_id FROM sync_run WHERE id = ?1)",
                    params![run_id, now],
                )
                .map_err(q(context))?;
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn journal(
        &self,
        employer_id: Option<String>,
        after_seq: i64,
    ) -> Result<Vec<JournalRow>, SinkError> {
        self.run(move |conn, _| {
            let context = "reading the journal";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, employer_id, entity, entity_id, op, changed_fields, run_id \
                     FROM mutation WHERE seq > ?1 AND (?2 IS NULL OR employer_id = ?2) ORDER BY seq",
                )
                .map_err(q(context))?;
            let rows = stmt
                .query_map(params![after_seq, employer_id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                })
                .map_err(q(context))?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, employer_id, entity, entity_id, op, fields, run_id) =
                    row.map_err(q(context))?;
                out.push(JournalRow {
                    seq,
                    employer_id,
                    entity,
                    entity_id,
                    op,
                    changed_fields: super::parse_changed_fields(&fields)?,
                    run_id,
                });
            }
            Ok(out)
        })
        .await
    }
}

fn open_blocking(path: Option<&Path>) -> Result<SqliteSink, SinkError> {
    let connect = |e: rusqlite::Error| SinkError::Connect {
        reason: format!("cannot open the SQLite database: {e}"),
    };
    let mut conn = match path {
        Some(path) => {
            prepare_file(path)?;
            let conn = Connection::open(path).map_err(connect)?;
            conn.busy_timeout(BUSY_TIMEOUT).map_err(connect)?;
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(connect)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(SinkError::Connect {
                    reason: format!("the SQLite database refused WAL mode (got {mode})"),
                });
            }
            conn
        }
        None => Connection::open_in_memory().map_err(connect)?,
    };
    // FULL: a committed batch survives power loss, so the sled cursor is never ahead of the data.
    conn.execute_batch("PRAGMA synchronous = FULL;")
        .map_err(connect)?;
    // Deleted and overwritten content is zeroed in the pages, so a purged BSN or wage does not
    // survive in free space of the file (see `SqliteSink::scrub` for the WAL).
    let secure: i64 = conn
        .query_row("PRAGMA secure_delete = ON", [], |r| r.get(0))
        .map_err(connect)?;
    if secure != 1 {
        return Err(SinkError::Connect {
            reason: "the SQLite library refused secure_delete".into(),
        });
    }
    conn.set_prepared_statement_cache_capacity(256);
    migrate(&mut conn)?;
    Ok(SqliteSink {
        conn: Arc::new(Mutex::new(conn)),
        sql: Arc::new(Statements::new()),
    })
}

/// Creates the parent directory and (on Unix) the database file with mode 0600 if missing.
fn prepare_file(path: &Path) -> Result<(), SinkError> {
    let io = |what: &str, e: std::io::Error| SinkError::Connect {
        reason: format!("cannot {what} for the SQLite database: {e}"),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io("create the directory", e))?;
    }
    if !path.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(path).map_err(|e| io("create the file", e))?;
    }
    Ok(())
}

fn current_version(conn: &Connection) -> Result<i64, SinkError> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
    .map_err(q("reading the schema version"))
}

fn migrate(conn: &mut Connection) -> Result<(), SinkError> {
    let context = "migrating the schema";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(q(context))?;
    tx.execute_batch(&migrations::render(BOOTSTRAP, &SQLITE, ""))
        .map_err(|e| error::sqlite(context, e).into_migration(0))?;
    let current = current_version(&tx)?;
    if current > SUPPORTED_VERSION {
        return Err(SinkError::SchemaTooNew {
            found: current,
            supported: SUPPORTED_VERSION,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(&m.sql(&SQLITE, ""))
            .map_err(|e| error::sqlite(context, e).into_migration(m.version))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, timestamp(Utc::now())],
        )
        .map_err(|e| error::sqlite(context, e).into_migration(m.version))?;
    }
    tx.commit()
        .map_err(|e| error::sqlite(context, e).into_migration(SUPPORTED_VERSION))
}

/// The SQLite value stored for `value` in a column of type `ty`.
fn to_sql(value: &Value, ty: ColumnType) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Int(i) => SqlValue::Integer(*i),
        Value::Decimal(d) if ty == ColumnType::Money => {
            let mut d = *d;
            d.rescale(2);
            SqlValue::Text(d.to_string())
        }
        Value::Decimal(d) => SqlValue::Text(d.normalize().to_string()),
        Value::Date(d) => SqlValue::Text(d.format("%Y-%m-%d").to_string()),
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
    }
}

/// Decodes a stored SQLite value of a column of type `ty`.
fn from_sql(raw: ValueRef<'_>, ty: ColumnType, column: &str) -> Result<Value, SinkError> {
    let bad = |what: &str| {
        SinkError::query(
            format!("reading stored column {column}"),
            format!("the stored value is not {what}"),
        )
    };
    let text = |raw: ValueRef<'_>| -> Option<String> {
        match raw {
            ValueRef::Text(t) => std::str::from_utf8(t).ok().map(str::to_owned),
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Real(f) => Some(f.to_string()),
            _ => None,
        }
    };
    if matches!(raw, ValueRef::Null) {
        return Ok(Value::Null);
    }
    Ok(match ty {
        ColumnType::Text => Value::Text(text(raw).ok_or_else(|| bad("text"))?),
        ColumnType::Int => match raw {
            ValueRef::Integer(i) => Value::Int(i),
            _ => return Err(bad("an integer")),
        },
        ColumnType::Money | ColumnType::Decimal => Value::Decimal(
            text(raw)
                .and_then(|t| Decimal::from_str(&t).ok())
                .ok_or_else(|| bad("a decimal"))?,
        ),
        ColumnType::Date => Value::Date(
            text(raw)
                .and_then(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d").ok())
                .ok_or_else(|| bad("a date"))?,
        ),
        ColumnType::Bool => match raw {
            ValueRef::Integer(i) => Value::Bool(i != 0),
            _ => return Err(bad("a boolean")),
        },
    })
}

fn read_row(
    tx: &Transaction<'_>,
    sql: &EntitySql,
    entity: Entity,
    employer_id: &str,
    id: &str,
) -> Result<Vec<Value>, SinkError> {
    let context = "reading a stored row";
    let defs = entity.columns();
    let mut stmt = tx.prepare_cached(&sql.select_row).map_err(q(context))?;
    let mut rows = stmt.query([employer_id, id]).map_err(q(context))?;
    let row = rows
        .next()
        .map_err(q(context))?
        .ok_or_else(|| SinkError::query(context, "the row disappeared during the transaction"))?;
    defs.iter()
        .enumerate()
        .map(|(i, def)| {
            let raw = row.get_ref(i).map_err(q(context))?;
            from_sql(raw, def.ty, def.name)
        })
        .collect()
}

fn row_params(
    entity: Entity,
    columns: &[(&'static str, Value)],
    hash: &str,
    now: &str,
) -> Vec<SqlValue> {
    let mut params: Vec<SqlValue> = columns
        .iter()
        .zip(entity.columns())
        .map(|((_, v), def)| to_sql(v, def.ty))
        .collect();
    params.push(SqlValue::Text(hash.to_owned()));
    params.push(SqlValue::Text(now.to_owned()));
    params
}

fn apply_tx(
    tx: &Transaction<'_>,
    sql: &Statements,
    run_id: &str,
    batch: Vec<Record>,
    now: &str,
) -> Result<ApplyStats, SinkError> {
    let mut stats = ApplyStats::default();
    let mut journal = Vec::new();
    for record in plan::dedupe(batch) {
        let entity = record.entity();
        let context = entity_context(entity);
        let es = sql.of(entity);
        let (employer_id, id) = (record.employer_id(), record.id());
        let columns = record.columns();
        check_record(entity, &columns)?;
        let hash = records::content_hash(entity, &columns);
        let stored: Option<Stored> = tx
            .prepare_cached(&es.select_state)
            .map_err(q(context))?
            .query_row([employer_id, id], |r| {
                Ok(Stored {
                    hash: r.get(0)?,
                    deleted: r.get(1)?,
                })
            })
            .optional()
            .map_err(q(context))?;
        match plan::classify(stored.as_ref(), &hash) {
            Classified::Unchanged => stats.unchanged += 1,
            Classified::Insert => {
                tx.prepare_cached(&es.insert)
                    .map_err(q(context))?
                    .execute(rusqlite::params_from_iter(row_params(
                        entity, &columns, &hash, now,
                    )))
                    .map_err(q(context))?;
                stats.inserted += 1;
                journal.push(JournalEntry::new(
                    entity,
                    employer_id,
                    id,
                    Op::Insert,
                    plan::all_columns(entity),
                ));
            }
            Classified::Revive => {
                tx.prepare_cached(&es.revive)
                    .map_err(q(context))?
                    .execute([employer_id, id, now])
                    .map_err(q(context))?;
                stats.updated += 1;
                journal.push(JournalEntry::new(
                    entity,
                    employer_id,
                    id,
                    Op::Update,
                    plan::SOFT_DELETE_FIELDS.to_vec(),
                ));
            }
            Classified::Compare { deleted } => {
                let old = read_row(tx, es, entity, employer_id, id)?;
                match plan::compare(&columns, &old, deleted) {
                    Compared::RefreshHash => {
                        tx.prepare_cached(&es.refresh_hash)
                            .map_err(q(context))?
                            .execute([employer_id, id, &hash])
                            .map_err(q(context))?;
                        stats.unchanged += 1;
                    }
                    Compared::Update(changed) => {
                        tx.prepare_cached(&es.update)
                            .map_err(q(context))?
                            .execute(rusqlite::params_from_iter(row_params(
                                entity, &columns, &hash, now,
                            )))
                            .map_err(q(context))?;
                        stats.updated += 1;
                        journal.push(JournalEntry::new(
                            entity,
                            employer_id,
                            id,
                            Op::Update,
                            changed,
                        ));
                    }
                }
            }
        }
    }
    write_journal(tx, &journal, run_id, now)?;
    Ok(stats)
}

fn entity_context(entity: Entity) -> &'static str {
    match entity {
        Entity::Employer => "applying employer rows",
        Entity::Department => "applying department rows",
        Entity::Employee => "applying employee rows",
        Entity::Employment => "applying employment rows",
        Entity::DepartmentPeriod => "applying employment_department_period rows",
        Entity::WorkweekPeriod => "applying employment_workweek_period rows",
        Entity::SalaryPeriod => "applying employment_salary_period rows",
        Entity::Absence => "applying absence rows",
        Entity::AbsenceProgress => "applying absence_progress rows",
    }
}

/// Checks that every value fits its column's type (a wrong type is a bug in the record mapping).
pub(crate) fn check_record(
    entity: Entity,
    columns: &[(&'static str, Value)],
) -> Result<(), SinkError> {
    let defs = entity.columns();
    let fits = columns.len() == defs.len()
        && columns
            .iter()
            .zip(defs)
            .all(|((name, value), def)| *name == def.name && value.fits(def.ty));
    if fits {
        Ok(())
    } else {
        Err(SinkError::query(
            format!("applying {entity} rows"),
            "a record does not match the table's columns",
        ))
    }
}

fn write_journal(
    tx: &Transaction<'_>,
    entries: &[JournalEntry],
    run_id: &str,
    now: &str,
) -> Result<(), SinkError> {
    let context = "writing the journal";
    let mut stmt = tx.prepare_cached(INSERT_JOURNAL).map_err(q(context))?;
    for e in entries {
        stmt.execute(params![
            e.employer_id,
            e.entity.table(),
            e.entity_id,
            e.op.as_str(),
            e.changed_fields_json(),
            run_id,
            now
        ])
        .map_err(q(context))?;
    }
    Ok(())
}

/// `(id, parent id, soft-deleted)` of every row of an employer's entity table.
fn rows_with_parent(
    tx: &Transaction<'_>,
    sql: &Statements,
    employer_id: &str,
    entity: Entity,
) -> Result<Vec<(String, Option<String>, bool)>, SinkError> {
    let context = "reading stored ids";
    let mut stmt = tx
        .prepare_cached(&sql.of(entity).rows_with_parent)
        .map_err(q(context))?;
    let rows = stmt
        .query_map([employer_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(q(context))?;
    rows.collect::<Result<_, _>>().map_err(q(context))
}

/// Soft-deletes `ids` of `entity` and, recursively, the rows hanging off them.
fn soft_delete_tx(
    tx: &Transaction<'_>,
    sql: &Statements,
    run_id: &str,
    employer_id: &str,
    entity: Entity,
    ids: Vec<String>,
    now: &str,
) -> Result<u64, SinkError> {
    let context = "soft-deleting rows";
    let mut journal = Vec::new();
    let mut queue = VecDeque::from([(entity, ids)]);
    while let Some((entity, ids)) = queue.pop_front() {
        {
            let mut stmt = tx
                .prepare_cached(&sql.of(entity).soft_delete)
                .map_err(q(context))?;
            for id in &ids {
                if stmt
                    .execute([employer_id, id.as_str(), now])
                    .map_err(q(context))?
                    == 1
                {
                    journal.push(JournalEntry::new(
                        entity,
                        employer_id,
                        id,
                        Op::Delete,
                        plan::SOFT_DELETE_FIELDS.to_vec(),
                    ));
                }
            }
        }
        let parents: HashSet<&String> = ids.iter().collect();
        for child in entity.children() {
            let child_ids: Vec<String> = rows_with_parent(tx, sql, employer_id, *child)?
                .into_iter()
                .filter(|(_, parent, deleted)| {
                    !deleted && parent.as_ref().is_some_and(|p| parents.contains(p))
                })
                .map(|(id, _, _)| id)
                .collect();
            if !child_ids.is_empty() {
                queue.push_back((*child, child_ids));
            }
        }
    }
    write_journal(tx, &journal, run_id, now)?;
    Ok(journal.len() as u64)
}

fn purge_bsn_tx(
    tx: &Transaction<'_>,
    sql: &Statements,
    run_id: &str,
    employer_id: &str,
    now: &str,
) -> Result<u64, SinkError> {
    let context = "purging BSNs";
    let entity = Entity::Employee;
    let ids: Vec<String> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id FROM employee WHERE employer_id = ?1 AND bsn IS NOT NULL ORDER BY id",
            )
            .map_err(q(context))?;
        let rows = stmt
            .query_map([employer_id], |r| r.get(0))
            .map_err(q(context))?;
        rows.collect::<Result<_, _>>().map_err(q(context))?
    };
    let mut journal = Vec::new();
    for id in &ids {
        let values = read_row(tx, sql.of(entity), entity, employer_id, id)?;
        let columns: Vec<(&'static str, Value)> = entity
            .columns()
            .iter()
            .zip(values)
            .map(|(def, v)| (def.name, if def.name == "bsn" { Value::Null } else { v }))
            .collect();
        let hash = records::content_hash(entity, &columns);
        tx.prepare_cached(
            "UPDATE employee SET bsn = NULL, content_hash = ?3, updated_at = ?4 \
             WHERE employer_id = ?1 AND id = ?2",
        )
        .map_err(q(context))?
        .execute([employer_id, id.as_str(), &hash, now])
        .map_err(q(context))?;
        journal.push(JournalEntry::new(
            entity,
            employer_id,
            id,
            Op::Update,
            vec!["bsn"],
        ));
    }
    write_journal(tx, &journal, run_id, now)?;
    Ok(journal.len() as u64)
}

/// Hard-deletes, children first, the rows `purge` selects; a `delete` journal row for each row
/// that was not already soft-deleted. Returns the number of rows removed.
fn purge_tx(
    tx: &Transaction<'_>,
    sql: &Statements,
    run_id: &str,
    employer_id: &str,
    purge: &Purge,
    now: &str,
) -> Result<u64, SinkError> {
    let context = "purging rows";
    let mut chosen: HashMap<Entity, Vec<String>> = HashMap::new();
    for &entity in purge.entities() {
        let rows = rows_with_parent(tx, sql, employer_id, entity)?;
        let ids = purge.select(entity, rows, &chosen);
        chosen.insert(entity, ids);
    }
    let mut journal = Vec::new();
    let mut count = 0u64;
    for entity in purge.entities().iter().rev() {
        let Some(ids) = chosen.get(entity) else {
            continue;
        };
        let mut stmt = tx
            .prepare_cached(&sql.of(*entity).hard_delete)
            .map_err(q(context))?;
        for id in ids {
            let deleted: Option<bool> = stmt
                .query_row([employer_id, id.as_str()], |r| r.get(0))
                .optional()
                .map_err(q(context))?;
            if let Some(was_soft_deleted) = deleted {
                count += 1;
                if !was_soft_deleted {
                    journal.push(JournalEntry::new(
                        *entity,
                        employer_id,
                        id,
                        Op::Delete,
                        plan::all_columns(*entity),
                    ));
                }
            }
        }
    }
    write_journal(tx, &journal, run_id, now)?;
    Ok(count)
}
