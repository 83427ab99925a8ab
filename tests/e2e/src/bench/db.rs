//! The databases a measurement writes into: a SQLite file in a temporary directory, or a fresh
//! PostgreSQL database on the shared server that the bench creates and drops itself.

use std::path::Path;

use anyhow::{Context, Result};

use super::args::Backend;

/// A database for one measurement. Call [`BenchDb::drop_db`] when done (PostgreSQL).
pub enum BenchDb {
    Sqlite {
        url: String,
    },
    Postgres {
        url: String,
        server: String,
        name: String,
    },
}

impl BenchDb {
    /// A new, empty database: `dir/name.db`, or `CREATE DATABASE` on `pg_url`.
    pub async fn create(backend: Backend, dir: &Path, pg_url: &str, tag: &str) -> Result<BenchDb> {
        match backend {
            Backend::Sqlite => Ok(BenchDb::Sqlite {
                url: format!("sqlite://{}", dir.join(format!("{tag}.db")).display()),
            }),
            Backend::Postgres => {
                let name = format!("arbosync_bench_{tag}_{}", uuid::Uuid::new_v4().simple());
                let admin = admin(pg_url).await?;
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .with_context(|| format!("cannot create the database {name}"))?;
                Ok(BenchDb::Postgres {
                    url: format!("{pg_url}/{name}"),
                    server: pg_url.to_string(),
                    name,
                })
            }
        }
    }

    /// The URL for `[database] url` and `Sink::connect`.
    pub fn url(&self) -> &str {
        match self {
            BenchDb::Sqlite { url } | BenchDb::Postgres { url, .. } => url,
        }
    }

    /// Drops a PostgreSQL database (forcing out any connection left); a SQLite file goes with
    /// its temporary directory.
    pub async fn drop_db(self) -> Result<()> {
        if let BenchDb::Postgres { server, name, .. } = self {
            let admin = admin(&server).await?;
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .with_context(|| format!("cannot drop the database {name}"))?;
        }
        Ok(())
    }
}

/// A connection to the server's `postgres` database; fails clearly when the server is down.
async fn admin(pg_url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(&format!("{pg_url}/postgres"), tokio_postgres::NoTls)
        .await
        .with_context(|| {
            format!(
                "PostgreSQL must be reachable at {} (a user allowed to CREATE DATABASE) for this benchmark",
                redact(pg_url)
            )
        })?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped; an error then is of no interest.
        let _ = conn.await;
    });
    Ok(client)
}

/// `postgres://user:secret@host` → `postgres://user:***@host` (for messages).
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}
