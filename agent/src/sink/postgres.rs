//! The PostgreSQL backend: one tokio-postgres connection (re-opened when lost) behind an async
//! mutex, tables in a configurable schema, set-based statements (`= ANY($n)` lookups and
//! `UNNEST` array inserts/updates) so a batch costs a handful of round trips.
//!
//! Locking: migrations run under a transaction-scoped advisory lock (two agents starting together
//! do not collide); every write takes a per-employer advisory lock; journal rows are inserted under
//! one more advisory lock, held to commit, so `mutation.seq` values become visible in increasing
//! order (a consumer that remembers the last seq never skips a row committed later).
//! Money is bound as text and cast to `numeric` (exact), dates as `DATE`, booleans as `BOOLEAN`.
//!
//! Connections are plain or TLS with full certificate verification, by the URL's `sslmode`
//! (`tls.rs` has the rules: `require`/`verify-ca`/`verify-full` all verify chain and host name).

use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::{self, SinkError};
use super::migrations::{self, BOOTSTRAP, MIGRATIONS, POSTGRES, SUPPORTED_VERSION};
use super::plan::{self, ApplyStats, Classified, Compared, JournalEntry, Op, Stored};
use super::sqlite::check_record;
use super::tls::{self, TlsMode};
use super::{DeleteScope, JournalRow, Purge, RunCounts, RunKind, RunStatus};
use crate::records::{self, ColumnDef, ColumnType, Entity, Record, Value};

/// Advisory lock key serializing migrations ("arbosync" in ASCII).
const MIGRATION_LOCK: i64 = 0x6172_626f_7379_6e63;
/// Advisory lock key serializing journal inserts until commit.
const JOURNAL_LOCK: i64 = MIGRATION_LOCK + 1;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Param = Box<dyn ToSql + Sync + Send>;

/// A bound parameter whose `Debug` shows nothing. tokio-postgres logs every statement's
/// parameters with `{:?}` at debug level (through the `log` bridge into the agent's tracing), and
/// the `UNNEST` arrays of an apply hold names, BSNs and wages: with this wrapper a debug log shows
/// `<redacted>` instead.
struct Redacted<T>(T);

impl<T> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T: ToSql> ToSql for Redacted<T> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut tokio_util::bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        T::accepts(ty)
    }

    fn to_sql_checked(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut tokio_util::bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql_checked(ty, out)
    }

    fn encode_format(&self, ty: &tokio_postgres::types::Type) -> tokio_postgres::types::Format {
        self.0.encode_format(ty)
    }
}

/// Boxes a parameter that may hold personal data, see [`Redacted`].
fn redacted<T: ToSql + Sync + Send + 'static>(value: T) -> Param {
    Box::new(Redacted(value))
}

fn param_refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect()
}

fn q(context: &str) -> impl FnOnce(tokio_postgres::Error) -> SinkError + '_ {
    move |e| error::postgres(context, e)
}

/// The array type an `UNNEST` parameter of this column type is bound as.
fn array_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text | ColumnType::Money | ColumnType::Decimal => "text[]",
        ColumnType::Int => "int8[]",
        ColumnType::Date => "date[]",
        ColumnType::Bool => "bool[]",
    }
}

/// The expression reading an `UNNEST` column into a table column of this type.
fn from_unnest(name: &str, ty: ColumnType) -> String {
    match ty {
        ColumnType::Money | ColumnType::Decimal => format!("u.\"{name}\"::numeric"),
        _ => format!("u.\"{name}\""),
    }
}

/// The select expression reading a stored column (numerics as exact text).
fn select_expr(name: &str, ty: ColumnType) -> String {
    match ty {
        ColumnType::Money | ColumnType::Decimal => format!("\"{name}\"::text"),
        _ => format!("\"{name}\""),
    }
}

struct EntitySql {
    select_state: String,
    select_rows: String,
    insert: String,
    update: String,
    revive: String,
    refresh_hash: String,
    soft_delete: String,
    hard_delete: String,
    rows_with_parent: String,
    children_of: Option<String>,
    live_hashes: String,
}

impl EntitySql {
    fn new(entity: Entity, schema: &str) -> EntitySql {
        let t = format!("{schema}.{}", entity.table());
        let cols = entity.columns();
        let n = cols.len();
        let quoted: Vec<String> = cols.iter().map(|c| format!("\"{}\"", c.name)).collect();
        let unnest_args: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}", i + 1, array_type(c.ty)))
            .collect();
        let unnest = format!(
            "UNNEST({}, ${}::text[]) AS u({}, content_hash)",
            unnest_args.join(", "),
            n + 1,
            quoted.join(", ")
        );
        let values: Vec<String> = cols.iter().map(|c| from_unnest(c.name, c.ty)).collect();
        let sets: Vec<String> = cols
            .iter()
            .skip(2)
            .map(|c| format!("\"{}\" = {}", c.name, from_unnest(c.name, c.ty)))
            .collect();
        let selects: Vec<String> = cols.iter().map(|c| select_expr(c.name, c.ty)).collect();
        let parent = entity
            .parent_column()
            .map_or_else(|| "NULL::text".to_owned(), |p| format!("\"{p}\""));
        EntitySql {
            select_state: format!(
                "SELECT id, content_hash, deleted_at IS NOT NULL FROM {t} \
                 WHERE employer_id = $1 AND id = ANY($2)"
            ),
            select_rows: format!(
                "SELECT {} FROM {t} WHERE employer_id = $1 AND id = ANY($2)",
                selects.join(", ")
            ),
            insert: format!(
                "INSERT INTO {t} ({}, content_hash, first_seen_at, updated_at) \
                 SELECT {}, u.content_hash, ${ts}::timestamptz, ${ts}::timestamptz FROM {unnest}",
                quoted.join(", "),
                values.join(", "),
                ts = n + 2,
            ),
            update: format!(
                "UPDATE {t} AS t SET {}, content_hash = u.content_hash, \
                 updated_at = ${}::timestamptz, deleted_at = NULL FROM {unnest} \
                 WHERE t.employer_id = u.employer_id AND t.id = u.id",
                sets.join(", "),
                n + 2,
            ),
            revive: format!(
                "UPDATE {t} SET deleted_at = NULL, updated_at = $3::timestamptz \
                 WHERE employer_id = $1 AND id = ANY($2)"
            ),
            refresh_hash: format!(
                "UPDATE {t} AS t SET content_hash = u.h FROM UNNEST($2::text[], $3::text[]) AS u(id, h) \
                 WHERE t.employer_id = $1 AND t.id = u.id"
            ),
            soft_delete: format!(
                "UPDATE {t} SET deleted_at = $3::timestamptz, updated_at = $3::timestamptz \
                 WHERE employer_id = $1 AND id = ANY($2) AND deleted_at IS NULL RETURNING id"
            ),
            hard_delete: format!(
                "DELETE FROM {t} WHERE employer_id = $1 AND id = ANY($2) \
                 RETURNING id, deleted_at IS NOT NULL"
            ),
            rows_with_parent: format!(
                "SELECT id, {parent}, deleted_at IS NOT NULL FROM {t} WHERE employer_id = $1 ORDER BY id"
            ),
            children_of: entity.parent_column().map(|p| {
                format!(
                    "SELECT id FROM {t} WHERE employer_id = $1 AND \"{p}\" = ANY($2) \
                     AND deleted_at IS NULL ORDER BY id"
                )
            }),
            live_hashes: format!(
                "SELECT id, content_hash FROM {t} WHERE employer_id = $1 AND deleted_at IS NULL"
            ),
        }
    }
}

struct Statements {
    schema: String,
    entities: Vec<(Entity, EntitySql)>,
}

impl Statements {
    fn of(&self, entity: Entity) -> &EntitySql {
        match self.entities.iter().find(|(e, _)| *e == entity) {
            Some((_, sql)) => sql,
            None => unreachable!("statements are built for every entity"),
        }
    }

    fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.schema)
    }
}

struct Inner {
    config: Config,
    /// The `sslmode` asked for, and the verifying connector when it means TLS.
    tls_mode: TlsMode,
    tls: Option<MakeRustlsConnect>,
    client: Mutex<Option<Client>>,
    sql: Statements,
}

/// The PostgreSQL sink. Cheap to clone; clones share the connection (operations are serialized).
#[derive(Clone)]
pub(crate) struct PgSink {
    inner: Arc<Inner>,
}

/// Opens one connection: TLS through `tls` when given, plain otherwise.
async fn open(
    config: &Config,
    tls: Option<&MakeRustlsConnect>,
) -> Result<Client, tokio_postgres::Error> {
    match tls {
        Some(tls) => {
            let (client, connection) = config.connect(tls.clone()).await?;
            drive(connection);
            Ok(client)
        }
        None => {
            let (client, connection) = config.connect(NoTls).await?;
            drive(connection);
            Ok(client)
        }
    }
}

/// Runs a connection's I/O in the background until it ends.
fn drive<C>(connection: C)
where
    C: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
}

/// Why connecting failed: a clear sentence for TLS failures, the classified error otherwise.
fn connect_reason(context: &str, mode: TlsMode, e: tokio_postgres::Error) -> String {
    tls::failure(&e, mode).unwrap_or_else(|| error::postgres(context, e).to_string())
}

/// The parsed URL (TLS parameters taken out first, see `tls.rs`), its `sslmode`, and the
/// verifying connector when that means TLS. Never echoes the URL (it may hold a password).
fn parse_url(url: &str) -> Result<(Config, TlsMode, Option<MakeRustlsConnect>), SinkError> {
    let (stripped, params) = tls::split_url(url)?;
    let mut config = Config::from_str(&stripped).map_err(|_| SinkError::InvalidUrl {
        reason: "not a valid PostgreSQL connection string".to_owned(),
    })?;
    config.ssl_mode(params.mode.ssl_mode());
    if !params.mode.uses_tls() {
        return Ok((config, params.mode, None));
    }
    let mode = params.mode.name();
    if config.get_hosts().is_empty() {
        return Err(SinkError::InvalidUrl {
            reason: format!(
                "sslmode={mode} verifies the server's host name, but the url names only a \
                 hostaddr: add the host name"
            ),
        });
    }
    if config
        .get_hosts()
        .iter()
        .any(|h| matches!(h, tokio_postgres::config::Host::Unix(_)))
    {
        return Err(SinkError::InvalidUrl {
            reason: format!(
                "sslmode={mode} asks for TLS, which PostgreSQL does not offer on a Unix socket: \
                 connect over TCP to the certificate's host name, or use sslmode=disable"
            ),
        });
    }
    let connector = tls::connector(params.root_cert.as_deref())?;
    Ok((config, params.mode, Some(connector)))
}

/// Whether every host is this machine (a Unix socket or a loopback name/address).
fn all_hosts_local(config: &Config) -> bool {
    config.get_hosts().iter().all(|h| match h {
        tokio_postgres::config::Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        tokio_postgres::config::Host::Unix(_) => true,
    }) && config.get_hostaddrs().iter().all(|ip| ip.is_loopback())
}

impl PgSink {
    /// Connects and migrates. `schema` is the validated, quoted schema identifier.
    pub(crate) async fn connect(url: &str, schema: String) -> Result<PgSink, SinkError> {
        let (mut config, tls_mode, tls) = parse_url(url)?;
        if tls_mode == TlsMode::Prefer && !all_hosts_local(&config) {
            tracing::warn!(
                "the PostgreSQL connection is not encrypted: add sslmode=verify-full to the \
                 [database] url to use TLS (sslmode=disable silences this warning)"
            );
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("arbosync-agent");
        }
        let mut client = open(&config, tls.as_ref())
            .await
            .map_err(|e| SinkError::Connect {
                reason: connect_reason("connecting", tls_mode, e),
            })?;
        migrate(&mut client, &schema).await?;
        let sql = Statements {
            entities: Entity::ALL
                .iter()
                .map(|e| (*e, EntitySql::new(*e, &schema)))
                .collect(),
            schema,
        };
        Ok(PgSink {
            inner: Arc::new(Inner {
                config,
                tls_mode,
                tls,
                client: Mutex::new(Some(client)),
                sql,
            }),
        })
    }

    /// Drops the connection after a transient error, so the next operation opens a fresh one
    /// (the old one may not know yet that the server closed it).
    pub(crate) async fn reset_on_transient<T>(
        &self,
        result: Result<T, SinkError>,
    ) -> Result<T, SinkError> {
        if result.as_ref().is_err_and(SinkError::is_transient) {
            *self.inner.client.lock().await = None;
        }
        result
    }

    /// The connection, re-opened if it was lost (a failure to re-open is transient).
    async fn lock(&self, context: &str) -> Result<MutexGuard<'_, Option<Client>>, SinkError> {
        let mut guard = self.inner.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = None;
            let client = open(&self.inner.config, self.inner.tls.as_ref())
                .await
                .map_err(|e| SinkError::Transient {
                    context: context.to_owned(),
                    reason: connect_reason("reconnecting", self.inner.tls_mode, e),
                })?;
            *guard = Some(client);
        }
        Ok(guard)
    }

    pub(crate) async fn schema_version(&self) -> Result<i64, SinkError> {
        let context = "reading the schema version";
        let guard = self.lock(context).await?;
        let client = connected(&guard, context)?;
        current_version(client, &self.inner.sql.schema).await
    }

    pub(crate) async fn apply(
        &self,
        run_id: &str,
        batch: Vec<Record>,
    ) -> Result<ApplyStats, SinkError> {
        let context = "applying a batch";
        let mut guard = self.lock(context).await?;
        let tx = begin(&mut guard, context).await?;
        let stats = apply_tx(&tx, &self.inner.sql, run_id, batch, Utc::now()).await?;
        tx.commit().await.map_err(q(context))?;
        Ok(stats)
    }

    pub(crate) async fn soft_delete(
        &self,
        run_id: &str,
        entity: Entity,
        employer_id: &str,
        ids: Vec<String>,
    ) -> Result<u64, SinkError> {
        let context = "soft-deleting rows";
        let mut guard = self.lock(context).await?;
        let tx = begin(&mut guard, context).await?;
        let sql = &self.inner.sql;
        lock_employer(&tx, sql, employer_id).await?;
        let n = soft_delete_tx(&tx, sql, run_id, employer_id, entity, ids, Utc::now()).await?;
        tx.commit().await.map_err(q(context))?;
        Ok(n)
    }

    pub(crate) async fn soft_delete_missing(
        &self,
        run_id: &str,
        employer_id: &str,
        entity: Entity,
        seen_ids: HashSet<String>,
        scope: DeleteScope,
    ) -> Result<u64, SinkError> {
        let context = "soft-deleting missing rows";
        let mut guard = self.lock(context).await?;
        let tx = begin(&mut guard, context).await?;
        let sql = &self.inner.sql;
        lock_employer(&tx, sql, employer_id).await?;
        let rows = rows_with_parent(&tx, sql, employer_id, entity).await?;
        let missing = super::missing_ids(entity, rows, &seen_ids, &scope)?;
        let n = soft_delete_tx(&tx, sql, run_id, employer_id, entity, missing, Utc::now()).await?;
        tx.commit().await.map_err(q(context))?;
        Ok(n)
    }

    pub(crate) async fn purge_bsn(
        &self,
        run_id: &str,
        employer_id: &str,
    ) -> Result<u64, SinkError> {
        let context = "purging BSNs";
        let mut guard = self.lock(context).await?;
        let tx = begin(&mut guard, context).await?;
        let sql = &self.inner.sql;
        lock_employer(&tx, sql, employer_id).await?;
        let entity = Entity::Employee;
        let defs = entity.columns();
        let selects: Vec<String> = defs.iter().map(|c| select_expr(c.name, c.ty)).collect();
        let rows = tx
            .query(
                &format!(
                    "SELECT {} FROM {} WHERE employer_id = $1 AND bsn IS NOT NULL ORDER BY id",
                    selects.join(", "),
                    sql.table("employee")
                ),
                &[&employer_id],
            )
            .await
            .map_err(q(context))?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut hashes = Vec::with_capacity(rows.len());
        for row in &rows {
            let values = decode_row(row, entity)?;
            let columns: Vec<(&'static str, Value)> = defs
                .iter()
                .zip(values)
                .map(|(def, v)| (def.name, if def.name == "bsn" { Value::Null } else { v }))
                .collect();
            hashes.push(records::content_hash(entity, &columns));
            let id: String = row.try_get(0).map_err(q(context))?;
            ids.push(id);
        }
        let now = Utc::now();
        tx.execute(
            &format!(
                "UPDATE {} AS t SET bsn = NULL, content_hash = u.h, updated_at = $4::timestamptz \
                 FROM UNNEST($2::text[], $3::text[]) AS u(id, h) \
                 WHERE t.employer_id = $1 AND t.id = u.id",
                sql.table("employee")
            ),
            &[&employer_id, &ids, &hashes, &now],
        )
        .await
        .map_err(q(context))?;
        let journal: Vec<JournalEntry> = ids
            .iter()
            .map(|id| JournalEntry::new(entity, employer_id, id, Op::Update, vec!["bsn"]))
            .collect();
        write_journal(&tx, sql, &journal, run_id, now).await?;
        tx.commit().await.map_err(q(context))?;
        Ok(journal.len() as u64)
    }

    pub(crate) async fn purge(
        &self,
        run_id: &str,
        employer_id: &str,
        purge: Purge,
    ) -> Result<u64, SinkError> {
        let context = "purging rows";
        let mut guard = self.lock(context).await?;
        let tx = begin(&mut guard, context).await?;
        let sql = &self.inner.sql;
        lock_employer(&tx, sql, employer_id).await?;
        let mut chosen: HashMap<Entity, Vec<String>> = HashMap::new();
        for &entity in purge.entities() {
            let rows = rows_with_parent(&tx, sql, employer_id, entity).await?;
            let ids = purge.select(entity, rows, &chosen);
            chosen.insert(entity, ids);
        }
        let mut journal = Vec::new();
        let mut count = 0u64;
        for entity in purge.entities().iter().rev() {
            let Some(ids) = chosen.get(entity).filter(|ids| !ids.is_empty()) else {
                continue;
            };
            let rows = tx
                .query(&sql.of(*entity).hard_delete, &[&employer_id, ids])
                .await
                .map_err(q(context))?;
            let mut was_soft_deleted: HashMap<String, bool> = HashMap::new();
            for row in &rows {
                was_soft_deleted.insert(
                    row.try_get(0).map_err(q(context))?,
                    row.try_get(1).map_err(q(context))?,
                );
            }
            count += rows.len() as u64;
            for id in ids {
                if was_soft_deleted.get(id) == Some(&false) {
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
        write_journal(&tx, sql, &journal, run_id, Utc::now()).await?;
        tx.commit().await.map_err(q(context))?;
        Ok(count)
    }

    pub(crate) async fn purge_employer(
        &self,
        run_id: &str,
        employer_id: &str,
    ) -> Result<u64, SinkError> {
        let context = "purging an employer";
        let mut guard = self.lock(context).await?;
        let tx = begin(&mut guard, context).await?;
        let sql = &self.inner.sql;
        lock_employer(&tx, sql, employer_id).await?;
        let mut count = 0;
        for entity in Entity::ALL.iter().rev() {
            count += tx
                .execute(
                    &format!(
                        "DELETE FROM {} WHERE employer_id = $1",
                        sql.table(entity.table())
                    ),
                    &[&employer_id],
                )
                .await
                .map_err(q(context))?;
        }
        for table in ["mutation", "sync_run"] {
            tx.execute(
                &format!("DELETE FROM {} WHERE employer_id = $1", sql.table(table)),
                &[&employer_id],
            )
            .await
            .map_err(q(context))?;
        }
        let entry = JournalEntry::new(
            Entity::Employer,
            employer_id,
            employer_id,
            Op::Delete,
            vec![],
        );
        write_journal(&tx, sql, &[entry], run_id, Utc::now()).await?;
        tx.commit().await.map_err(q(context))?;
        Ok(count)
    }

    /// `(id, content_hash, values of columns)` of the employer's live rows of `entity`.
    pub(crate) async fn live_rows(
        &self,
        employer_id: &str,
        entity: Entity,
        columns: Vec<ColumnDef>,
    ) -> Result<Vec<(String, String, Vec<Value>)>, SinkError> {
        let context = "reading stored rows";
        let guard = self.lock(context).await?;
        let client = connected(&guard, context)?;
        let mut selects = vec!["id".to_owned(), "content_hash".to_owned()];
        selects.extend(columns.iter().map(|c| select_expr(c.name, c.ty)));
        let rows = client
            .query(
                &format!(
                    "SELECT {} FROM {} WHERE employer_id = $1 AND deleted_at IS NULL ORDER BY id",
                    selects.join(", "),
                    self.inner.sql.table(entity.table())
                ),
                &[&employer_id],
            )
            .await
            .map_err(q(context))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push((
                row.try_get(0).map_err(q(context))?,
                row.try_get(1).map_err(q(context))?,
                decode_columns(row, &columns, 2)?,
            ));
        }
        Ok(out)
    }

    /// The canonical column values of one row and whether it is soft-deleted.
    pub(crate) async fn row_values(
        &self,
        employer_id: &str,
        entity: Entity,
        id: &str,
    ) -> Result<Option<(Vec<Value>, bool)>, SinkError> {
        let context = "reading a stored row";
        let guard = self.lock(context).await?;
        let client = connected(&guard, context)?;
        let selects: Vec<String> = entity
            .columns()
            .iter()
            .map(|c| select_expr(c.name, c.ty))
            .collect();
        let row = client
            .query_opt(
                &format!(
                    "SELECT {}, deleted_at IS NOT NULL FROM {} WHERE employer_id = $1 AND id = $2",
                    selects.join(", "),
                    self.inner.sql.table(entity.table())
                ),
                &[&employer_id, &id],
            )
            .await
            .map_err(q(context))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let values = decode_row(&row, entity)?;
        let deleted: bool = row.try_get(values.len()).map_err(q(context))?;
        Ok(Some((values, deleted)))
    }

    pub(crate) async fn mark_synced(&self, employer_id: &str) -> Result<(), SinkError> {
        let context = "marking the employer synced";
        let guard = self.lock(context).await?;
        let client = connected(&guard, context)?;
        client
            .execute(
                &format!(
                    "UPDATE {} SET last_synced_at = $2 WHERE employer_id = $1",
                    self.inner.sql.table("employer")
                ),
                &[&employer_id, &Utc::now()],
            )
            .await
            .map_err(q(context))?;
        Ok(())
    }

    pub(crate) async fn stored_hashes(
        &self,
        employer_id: &str,
        entity: Entity,
    ) -> Result<HashMap<String, String>, SinkError> {
        let context = "reading stored hashes";
        let guard = self.lock(context).await?;
        let client = connected(&guard, context)?;
        let rows = client
            .query(&self.inner.sql.of(entity).live_hashes, &[&employer_id])
            .await
            .map_err(q(context))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(q(context))
    }

    pub(crate) async fn employer_overview(
        &self,
        employer_id: &str,
    ) -> Result<super::EmployerOverview, SinkError> {
        let context = "reading the employer overview";
        let guard = self.lock(context).await?;
        let client = connected(&guard, context)?;
        let sql = super::overview_sql(|t| self.inner.sql.table(t), "$1");
        let rows = client
            .query(&sql, &[&employer_id])
            .await
            .map_err(q(context))?;
        let mut out = super::EmployerOverview::default();
        for row in &rows {
            let table: String = row.try_get(0).map_err(q(context))?;
            if table == "employer" {
                out.name = row.try_get(1).map_err(q(context))?;
            } else {
                let n: i64 = row.try_get(2).map_err(q(context))?;
                out.live_rows.insert(table, n.max(0) as u64);
            }
        }
        Ok(out)
    }

    pub(crate) async fn case_watch_employee_numbers(
        &self,
        employer_id: &str,
    ) -> Result<HashSet<i64>, SinkError> {
        let context = "reading case_watch";
        let guard = self.lock(context).await?;
        let client = connected(&guard, context)?;
        let rows = client
            .query(
                &format!(
                    "SELECT employee_number FROM {} WHERE employer_id = $1",
                    self.inner.sql.table("case_watch")
                ),
                &[&employer_id],
            )
            .await
            .map_err(q(context))?;
        rows.iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(q(context))
    }

    pub(crate) async fn add_case_watch(
        &self,
        employer_id: &str,
        employee_number: i64,
    ) -> Result<(), SinkError> {
        let context = "adding a case_watch row";
        let guard = self.lock(context).await?;
        let client = connected(&guard, context)?;
        client
            .execute(
                &format!(
                    "INSERT INTO {} (employer_id, employee_number, created_at) \
                     VALUES ($1, $2, now()) ON CONFLICT DO NOTHING",
                    self.inner.sql.table("case_watch")
                ),
                &[&employer_id, &employee_number],
            )
            .await
            .map_err(q(context))?;
        Ok(())
    }

    pub(crate) async fn open_absences(
        &self,
        employer_id: &str,
    ) -> Result<Vec<(String, String)>, SinkError> {
        let context = "reading open absences";
        let guard = self.lock(context).await?;
        let client = connected(&guard, context)?;
        let rows = client
            .query(
                &format!(
                    "SELECT id, employee_id FROM {} WHERE employer_id = $1 \
                     AND last_day IS NULL AND deleted_at IS NULL ORDER BY id",
                    self.inner.sql.table("absence")
                ),
                &[&employer_id],
            )
            .await
            .map_err(q(context))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(q(context))
    }

    pub(crate) async fn start_run(
        &self,
        run_id: &str,
        employer_id: &str,
        kind: RunKind,
    ) -> Result<(), SinkError> {
        let context = "recording a sync run";
        let mut guard = self.lock(context).await?;
        let tx = begin(&mut guard, context).await?;
        let now = Utc::now();
        tx.execute(
            &format!(
                "UPDATE {} SET status = 'failed', finished_at = $2 \
                 WHERE employer_id = $1 AND status = 'running'",
                self.inner.sql.table("sync_run")
            ),
            &[&employer_id, &now],
        )
        .await
        .map_err(q("closing interrupted sync runs"))?;
        tx.execute(
            &format!(
                "INSERT INTO {} (id, employer_id, kind, started_at, status) \
                 VALUES ($1, $2, $3, $4, 'running')",
                self.inner.sql.table("sync_run")
            ),
            &[&run_id, &employer_id, &kind.as_str(), &now],
        )
        .await
        .map_err(q(context))?;
        tx.commit().await.map_err(q(context))?;
        Ok(())
    }

    pub(crate) async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        counts: RunCounts,
    ) -> Result<(), SinkError> {
        let context = "finishing a sync run";
        let mut guard = self.lock(context).await?;
        let tx = begin(&mut guard, context).await?;
        let sql = &self.inner.sql;
        let now = Utc::now();
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let n = tx
            .execute(
                &format!(
                    "UPDATE {} SET finished_at = $2, status = $3, inserted = $4, updated = $5, \
                     deleted = $6, failed = $7 WHERE id = $1",
                    sql.table("sync_run")
                ),
                &[
                    &run_id,
                    &now,
                    &status.as_str(),
                    &as_i64(counts.inserted),
                    &as_i64(counts.updated),
                    &as_i64(counts.deleted),
                    &as_i64(counts.failed),
                ],
            )
            .await
            .map_err(q(context))?;
        if n == 0 {
            return Err(SinkError::query(
                context,
                "no sync_run row with this run id",
            ));
        }
        if status.is_success() {
            tx.execute(
                &format!(
                    "UPDATE {} SET last_synced_at = $2 WHERE employer_id = \
                     (SELECT employer_id FROM {} WHERE id = $1)",
                    sql.table("employer"),
                    sql.table("sync_run")
                ),
                &[&run_id, &now],
            )
            .await
            .map_err(q(context))?;
        }
        tx.commit().await.map_err(q(context))?;
        Ok(())
    }

    pub(crate) async fn journal(
        &self,
        employer_id: Option<String>,
        after_seq: i64,
    ) -> Result<Vec<JournalRow>, SinkError> {
        let context = "reading the journal";
        let guard = self.lock(context).await?;
        let client = connected(&guard, context)?;
        let rows = client
            .query(
                &format!(
                    "SELECT seq, employer_id, entity, entity_id, op, changed_fields::text, run_id \
                     FROM {} WHERE seq > $1 AND ($2::text IS NULL OR employer_id = $2) ORDER BY seq",
                    self.inner.sql.table("mutation")
                ),
                &[&after_seq, &employer_id],
            )
            .await
            .map_err(q(context))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let fields: String = r.try_get(5).map_err(q(context))?;
            out.push(JournalRow {
                seq: r.try_get(0).map_err(q(context))?,
                employer_id: r.try_get(1).map_err(q(context))?,
                entity: r.try_get(2).map_err(q(context))?,
                entity_id: r.try_get(3).map_err(q(context))?,
                op: r.try_get(4).map_err(q(context))?,
                changed_fields: super::parse_changed_fields(&fields)?,
                run_id: r.try_get(6).map_err(q(context))?,
            });
        }
        Ok(out)
    }
}

fn connected<'a>(
    guard: &'a MutexGuard<'_, Option<Client>>,
    context: &str,
) -> Result<&'a Client, SinkError> {
    guard.as_ref().ok_or_else(|| SinkError::Transient {
        context: context.to_owned(),
        reason: "not connected".to_owned(),
    })
}

async fn begin<'a>(
    guard: &'a mut MutexGuard<'_, Option<Client>>,
    context: &str,
) -> Result<Transaction<'a>, SinkError> {
    let client = guard.as_mut().ok_or_else(|| SinkError::Transient {
        context: context.to_owned(),
        reason: "not connected".to_owned(),
    })?;
    client.transaction().await.map_err(q(context))
}

async fn current_version(client: &Client, schema: &str) -> Result<i64, SinkError> {
    let row = client
        .query_one(
            &format!("SELECT COALESCE(MAX(version), 0)::bigint FROM {schema}.schema_migrations"),
            &[],
        )
        .await
        .map_err(q("reading the schema version"))?;
    row.try_get(0).map_err(q("reading the schema version"))
}

/// Creates the schema and applies missing migrations, in one transaction under an advisory lock.
/// Objects that already exist are not re-created, so a role without CREATE rights can start
/// against an up-to-date database.
async fn migrate(client: &mut Client, schema: &str) -> Result<(), SinkError> {
    let context = "migrating the schema";
    let fail = |version: i64| move |e| error::postgres(context, e).into_migration(version);
    let tx = client.transaction().await.map_err(fail(0))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail(0))?;
    let bare_schema = schema.trim_matches('"');
    let schema_exists = tx
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
            &[&bare_schema],
        )
        .await
        .map_err(fail(0))?
        .is_some();
    if !schema_exists {
        tx.batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .map_err(fail(0))?;
    }
    let prefix = format!("{schema}.");
    let bookkeeping: Option<String> = tx
        .query_one(
            "SELECT to_regclass($1)::text",
            &[&format!("{schema}.schema_migrations")],
        )
        .await
        .map_err(fail(0))?
        .try_get(0)
        .map_err(fail(0))?;
    if bookkeeping.is_none() {
        tx.batch_execute(&migrations::render(BOOTSTRAP, &POSTGRES, &prefix))
            .await
            .map_err(fail(0))?;
    }
    let current = {
        let row = tx
            .query_one(
                &format!("SELECT COALESCE(MAX(version), 0)::bigint FROM {prefix}schema_migrations"),
                &[],
            )
            .await
            .map_err(fail(0))?;
        row.try_get::<_, i64>(0).map_err(fail(0))?
    };
    if current > SUPPORTED_VERSION {
        return Err(SinkError::SchemaTooNew {
            found: current,
            supported: SUPPORTED_VERSION,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(&m.sql(&POSTGRES, &prefix))
            .await
            .map_err(fail(m.version))?;
        tx.execute(
            &format!(
                "INSERT INTO {prefix}schema_migrations (version, name, applied_at) \
                 VALUES ($1, $2, now())"
            ),
            &[&m.version, &m.name],
        )
        .await
        .map_err(fail(m.version))?;
    }
    tx.commit().await.map_err(fail(SUPPORTED_VERSION))
}

/// Serializes writers of one employer (two agents, or two runs) until this transaction ends.
async fn lock_employer(
    tx: &Transaction<'_>,
    sql: &Statements,
    employer_id: &str,
) -> Result<(), SinkError> {
    let key = format!("arbosync:{}:{employer_id}", sql.schema);
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&key],
    )
    .await
    .map_err(q("locking the employer"))?;
    Ok(())
}

/// Builds the `UNNEST` array parameters of `rows` (column values + content hash).
fn unnest_params(
    entity: Entity,
    rows: &[(Vec<(&'static str, Value)>, String)],
) -> Result<Vec<Param>, SinkError> {
    let wrong = |name: &str| {
        SinkError::query(
            format!("applying {entity} rows"),
            format!("column {name} got a value of the wrong type"),
        )
    };
    let mut params: Vec<Param> = Vec::with_capacity(entity.columns().len() + 1);
    for (i, def) in entity.columns().iter().enumerate() {
        let values = rows.iter().map(|(cols, _)| cols.get(i).map(|c| &c.1));
        let param: Param = match def.ty {
            ColumnType::Text => redacted(
                values
                    .map(|v| match v {
                        Some(Value::Null) => Ok(None),
                        Some(Value::Text(s)) => Ok(Some(s.clone())),
                        _ => Err(wrong(def.name)),
                    })
                    .collect::<Result<Vec<Option<String>>, _>>()?,
            ),
            ColumnType::Money | ColumnType::Decimal => redacted(
                values
                    .map(|v| match v {
                        Some(Value::Null) => Ok(None),
                        Some(Value::Decimal(d)) if def.ty == ColumnType::Money => {
                            let mut d = *d;
                            d.rescale(2);
                            Ok(Some(d.to_string()))
                        }
                        Some(Value::Decimal(d)) => Ok(Some(d.normalize().to_string())),
                        _ => Err(wrong(def.name)),
                    })
                    .collect::<Result<Vec<Option<String>>, _>>()?,
            ),
            ColumnType::Int => redacted(
                values
                    .map(|v| match v {
                        Some(Value::Null) => Ok(None),
                        Some(Value::Int(i)) => Ok(Some(*i)),
                        _ => Err(wrong(def.name)),
                    })
                    .collect::<Result<Vec<Option<i64>>, _>>()?,
            ),
            ColumnType::Date => redacted(
                values
                    .map(|v| match v {
                        Some(Value::Null) => Ok(None),
                        Some(Value::Date(d)) => Ok(Some(*d)),
                        _ => Err(wrong(def.name)),
                    })
                    .collect::<Result<Vec<Option<NaiveDate>>, _>>()?,
            ),
            ColumnType::Bool => redacted(
                values
                    .map(|v| match v {
                        Some(Value::Null) => Ok(None),
                        Some(Value::Bool(b)) => Ok(Some(*b)),
                        _ => Err(wrong(def.name)),
                    })
                    .collect::<Result<Vec<Option<bool>>, _>>()?,
            ),
        };
        params.push(param);
    }
    params.push(Box::new(
        rows.iter().map(|(_, h)| h.clone()).collect::<Vec<String>>(),
    ));
    Ok(params)
}

/// Decodes a row selected with `select_expr` columns in canonical order.
fn decode_row(row: &tokio_postgres::Row, entity: Entity) -> Result<Vec<Value>, SinkError> {
    decode_columns(row, entity.columns(), 0)
}

/// Decodes `defs` from the row's columns starting at `offset` (selected with `select_expr`).
fn decode_columns(
    row: &tokio_postgres::Row,
    defs: &[ColumnDef],
    offset: usize,
) -> Result<Vec<Value>, SinkError> {
    let context = "reading a stored row";
    defs.iter()
        .enumerate()
        .map(|(i, def)| {
            let i = i + offset;
            let value = match def.ty {
                ColumnType::Text => row
                    .try_get::<_, Option<String>>(i)
                    .map_err(q(context))?
                    .map(Value::Text),
                ColumnType::Int => row
                    .try_get::<_, Option<i64>>(i)
                    .map_err(q(context))?
                    .map(Value::Int),
                ColumnType::Money | ColumnType::Decimal => {
                    match row.try_get::<_, Option<String>>(i).map_err(q(context))? {
                        None => None,
                        Some(text) => {
                            Some(Value::Decimal(Decimal::from_str(&text).map_err(|_| {
                                SinkError::query(
                                    format!("reading stored column {}", def.name),
                                    "the stored value is not a decimal",
                                )
                            })?))
                        }
                    }
                }
                ColumnType::Date => row
                    .try_get::<_, Option<NaiveDate>>(i)
                    .map_err(q(context))?
                    .map(Value::Date),
                ColumnType::Bool => row
                    .try_get::<_, Option<bool>>(i)
                    .map_err(q(context))?
                    .map(Value::Bool),
            };
            Ok(value.unwrap_or(Value::Null))
        })
        .collect()
}

async fn apply_tx(
    tx: &Transaction<'_>,
    sql: &Statements,
    run_id: &str,
    batch: Vec<Record>,
    now: DateTime<Utc>,
) -> Result<ApplyStats, SinkError> {
    let records = plan::dedupe(batch);
    let mut employers: Vec<&str> = records.iter().map(Record::employer_id).collect();
    employers.sort_unstable();
    employers.dedup();
    for employer_id in employers {
        lock_employer(tx, sql, employer_id).await?;
    }
    // Groups of one entity and employer, in the (parents-first) order of the deduped batch.
    let mut groups: Vec<((Entity, &str), Vec<&Record>)> = Vec::new();
    for r in &records {
        let key = (r.entity(), r.employer_id());
        match groups.last_mut() {
            Some((k, group)) if *k == key => group.push(r),
            _ => match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, group)) => group.push(r),
                None => groups.push((key, vec![r])),
            },
        }
    }
    let mut stats = ApplyStats::default();
    let mut journal = Vec::new();
    for ((entity, employer_id), group) in groups {
        stats += apply_group(tx, sql, entity, employer_id, &group, now, &mut journal).await?;
    }
    write_journal(tx, sql, &journal, run_id, now).await?;
    Ok(stats)
}

async fn apply_group(
    tx: &Transaction<'_>,
    sql: &Statements,
    entity: Entity,
    employer_id: &str,
    group: &[&Record],
    now: DateTime<Utc>,
    journal: &mut Vec<JournalEntry>,
) -> Result<ApplyStats, SinkError> {
    let context = "applying a batch";
    let es = sql.of(entity);
    let columns: Vec<Vec<(&'static str, Value)>> = group.iter().map(|r| r.columns()).collect();
    for cols in &columns {
        check_record(entity, cols)?;
    }
    let hashes: Vec<String> = group
        .iter()
        .zip(&columns)
        .map(|(r, cols)| records::content_hash(r.entity(), cols))
        .collect();
    let ids: Vec<String> = group.iter().map(|r| r.id().to_owned()).collect();

    let mut stored: HashMap<String, Stored> = HashMap::new();
    for row in tx
        .query(&es.select_state, &[&employer_id, &ids])
        .await
        .map_err(q(context))?
    {
        stored.insert(
            row.try_get(0).map_err(q(context))?,
            Stored {
                hash: row.try_get(1).map_err(q(context))?,
                deleted: row.try_get(2).map_err(q(context))?,
            },
        );
    }

    let mut stats = ApplyStats::default();
    let mut entries: Vec<Option<JournalEntry>> = vec![None; group.len()];
    let (mut inserts, mut updates, mut revives, mut refresh) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut to_compare: Vec<(usize, bool)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match plan::classify(stored.get(id), &hashes[i]) {
            Classified::Unchanged => stats.unchanged += 1,
            Classified::Insert => {
                inserts.push(i);
                entries[i] = Some(JournalEntry::new(
                    entity,
                    employer_id,
                    id,
                    Op::Insert,
                    plan::all_columns(entity),
                ));
            }
            Classified::Revive => {
                revives.push(i);
                entries[i] = Some(JournalEntry::new(
                    entity,
                    employer_id,
                    id,
                    Op::Update,
                    plan::SOFT_DELETE_FIELDS.to_vec(),
                ));
            }
            Classified::Compare { deleted } => to_compare.push((i, deleted)),
        }
    }
    if !to_compare.is_empty() {
        let compare_ids: Vec<&String> = to_compare.iter().map(|(i, _)| &ids[*i]).collect();
        let mut old_rows: HashMap<String, Vec<Value>> = HashMap::new();
        for row in tx
            .query(&es.select_rows, &[&employer_id, &compare_ids])
            .await
            .map_err(q(context))?
        {
            let values = decode_row(&row, entity)?;
            if let Some(Value::Text(id)) = values.first() {
                old_rows.insert(id.clone(), values);
            }
        }
        for (i, deleted) in to_compare {
            let old = old_rows.get(&ids[i]).ok_or_else(|| {
                SinkError::query(context, "a stored row disappeared during the transaction")
            })?;
            match plan::compare(&columns[i], old, deleted) {
                Compared::RefreshHash => refresh.push(i),
                Compared::Update(changed) => {
                    updates.push(i);
                    entries[i] = Some(JournalEntry::new(
                        entity,
                        employer_id,
                        &ids[i],
                        Op::Update,
                        changed,
                    ));
                }
            }
        }
    }

    let rows_of = |idx: &[usize]| -> Vec<(Vec<(&'static str, Value)>, String)> {
        idx.iter()
            .map(|&i| (columns[i].clone(), hashes[i].clone()))
            .collect()
    };
    for (statement, idx) in [(&es.insert, &inserts), (&es.update, &updates)] {
        if idx.is_empty() {
            continue;
        }
        let mut params = unnest_params(entity, &rows_of(idx))?;
        params.push(Box::new(now));
        tx.execute(statement, &param_refs(&params))
            .await
            .map_err(q(context))?;
    }
    if !revives.is_empty() {
        let revive_ids: Vec<&String> = revives.iter().map(|&i| &ids[i]).collect();
        tx.execute(&es.revive, &[&employer_id, &revive_ids, &now])
            .await
            .map_err(q(context))?;
    }
    if !refresh.is_empty() {
        let refresh_ids: Vec<&String> = refresh.iter().map(|&i| &ids[i]).collect();
        let refresh_hashes: Vec<&String> = refresh.iter().map(|&i| &hashes[i]).collect();
        tx.execute(
            &es.refresh_hash,
            &[&employer_id, &refresh_ids, &refresh_hashes],
        )
        .await
        .map_err(q(context))?;
    }
    stats.inserted += inserts.len() as u64;
    stats.updated += (updates.len() + revives.len()) as u64;
    stats.unchanged += refresh.len() as u64;
    journal.extend(entries.into_iter().flatten());
    Ok(stats)
}

async fn write_journal(
    tx: &Transaction<'_>,
    sql: &Statements,
    entries: &[JournalEntry],
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<(), SinkError> {
    if entries.is_empty() {
        return Ok(());
    }
    let context = "writing the journal";
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&JOURNAL_LOCK])
        .await
        .map_err(q(context))?;
    let employer_ids: Vec<&str> = entries.iter().map(|e| e.employer_id.as_str()).collect();
    let entities: Vec<&str> = entries.iter().map(|e| e.entity.table()).collect();
    let entity_ids: Vec<&str> = entries.iter().map(|e| e.entity_id.as_str()).collect();
    let ops: Vec<&str> = entries.iter().map(|e| e.op.as_str()).collect();
    let fields: Vec<String> = entries
        .iter()
        .map(JournalEntry::changed_fields_json)
        .collect();
    tx.execute(
        &format!(
            "INSERT INTO {} (employer_id, entity, entity_id, op, changed_fields, run_id, recorded_at) \
             SELECT u.employer_id, u.entity, u.entity_id, u.op, u.changed_fields::jsonb, \
                    $6::text, $7::timestamptz \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                  WITH ORDINALITY AS u(employer_id, entity, entity_id, op, changed_fields, ord) \
             ORDER BY u.ord",
            sql.table("mutation")
        ),
        &[&employer_ids, &entities, &entity_ids, &ops, &fields, &run_id, &now],
    )
    .await
    .map_err(q(context))?;
    Ok(())
}

async fn rows_with_parent(
    tx: &Transaction<'_>,
    sql: &Statements,
    employer_id: &str,
    entity: Entity,
) -> Result<Vec<(String, Option<String>, bool)>, SinkError> {
    let context = "reading stored ids";
    tx.query(&sql.of(entity).rows_with_parent, &[&employer_id])
        .await
        .map_err(q(context))?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(q(context))
}

/// Soft-deletes `ids` and, recursively, the live rows hanging off them; journal rows in order.
async fn soft_delete_tx(
    tx: &Transaction<'_>,
    sql: &Statements,
    run_id: &str,
    employer_id: &str,
    entity: Entity,
    ids: Vec<String>,
    now: DateTime<Utc>,
) -> Result<u64, SinkError> {
    let context = "soft-deleting rows";
    let mut journal = Vec::new();
    let mut queue = VecDeque::from([(entity, ids)]);
    while let Some((entity, ids)) = queue.pop_front() {
        if ids.is_empty() {
            continue;
        }
        let deleted: HashSet<String> = tx
            .query(&sql.of(entity).soft_delete, &[&employer_id, &ids, &now])
            .await
            .map_err(q(context))?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(q(context))?;
        for id in &ids {
            if deleted.contains(id) {
                journal.push(JournalEntry::new(
                    entity,
                    employer_id,
                    id,
                    Op::Delete,
                    plan::SOFT_DELETE_FIELDS.to_vec(),
                ));
            }
        }
        for child in entity.children() {
            let Some(children_of) = &sql.of(*child).children_of else {
                continue;
            };
            let child_ids: Vec<String> = tx
                .query(children_of, &[&employer_id, &ids])
                .await
                .map_err(q(context))?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()
                .map_err(q(context))?;
            queue.push_back((*child, child_ids));
        }
    }
    write_journal(tx, sql, &journal, run_id, now).await?;
    Ok(journal.len() as u64)
}
