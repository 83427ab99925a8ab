//! `SinkError`: what can go wrong talking to the arbodienst database, classified so the caller
//! can tell "retry later" (`is_transient`) from "this needs a human".
//!
//! Privacy: no message built here ever contains a row value. PostgreSQL error DETAIL and HINT lines
//! (which quote rows) are never used, and data-exception messages (SQLSTATE class 22, which quote
//! the offending input) are reduced to their SQLSTATE.

use thiserror::Error;

/// An error of the database sink.
#[derive(Debug, Error)]
pub enum SinkError {
    /// The `[database] url` is not one of the supported forms. Never echoes the URL (it may hold a
    /// password).
    #[error(
        "invalid database url: {reason} (expected sqlite:///absolute/path.db, sqlite://relative.db, \
         sqlite::memory: or postgres://user@host/db)"
    )]
    InvalidUrl { reason: String },

    /// The database could not be opened or reached at start-up.
    #[error("cannot connect to the database: {reason}")]
    Connect { reason: String },

    /// A schema migration failed; the transaction was rolled back.
    #[error("database schema migration to version {version} failed: {reason}")]
    Migration { version: i64, reason: String },

    /// The database was migrated by a newer arbosync than this one.
    #[error(
        "the database schema is at version {found}, newer than the newest version this arbosync \
         knows ({supported}); refusing to touch it: upgrade arbosync"
    )]
    SchemaTooNew { found: i64, supported: i64 },

    /// A statement failed for a reason that retrying will not fix by itself.
    #[error("database error while {context}: {reason}")]
    Query { context: String, reason: String },

    /// The database is down, the connection was lost, or it is locked/busy: retry later.
    #[error("database temporarily unavailable while {context}: {reason}")]
    Transient { context: String, reason: String },
}

impl SinkError {
    /// Whether retrying later (with backoff) may succeed: connection lost, database down or locked.
    /// A failed start-up connection counts as transient too (the database may still be starting).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SinkError::Transient { .. } | SinkError::Connect { .. }
        )
    }

    pub(crate) fn query(context: impl Into<String>, reason: impl Into<String>) -> SinkError {
        SinkError::Query {
            context: context.into(),
            reason: reason.into(),
        }
    }

    /// Turns this error into a migration error for `version`, keeping transient errors as they are.
    pub(crate) fn into_migration(self, version: i64) -> SinkError {
        match self {
            SinkError::Query { context, reason } => {
                // A least-privilege runtime role (packaging/postgres-roles.sql) cannot migrate.
                let hint = if reason.starts_with("SQLSTATE 42501") {
                    "; this database role may not change the schema: run arbosync-agent once \
                     as the schema owner (see packaging/postgres-roles.sql)"
                } else {
                    ""
                };
                SinkError::Migration {
                    version,
                    reason: format!("{context}: {reason}{hint}"),
                }
            }
            other => other,
        }
    }
}

/// Classifies a rusqlite error. rusqlite/SQLite messages name tables and columns, never values.
pub(crate) fn sqlite(context: &str, error: rusqlite::Error) -> SinkError {
    use rusqlite::ErrorCode;
    let transient = matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::OutOfMemory
        )
    );
    let reason = error.to_string();
    if transient {
        SinkError::Transient {
            context: context.to_owned(),
            reason,
        }
    } else {
        SinkError::query(context, reason)
    }
}

/// SQLSTATE classes whose server messages never quote row values.
const PG_CLASSES_WITH_SAFE_MESSAGES: &[&str] = &[
    "08", "0A", "23", "25", "28", "3D", "3F", "40", "42", "53", "54", "55", "57", "58",
];

/// Classifies a tokio-postgres error, without DETAIL/HINT lines or value-quoting messages.
pub(crate) fn postgres(context: &str, error: tokio_postgres::Error) -> SinkError {
    let (transient, reason) = match error.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let class = code.get(..2).unwrap_or(code);
            let transient =
                matches!(class, "08" | "53" | "57") || matches!(code, "40001" | "40P01" | "55P03");
            let mut reason = format!("SQLSTATE {code}");
            if PG_CLASSES_WITH_SAFE_MESSAGES.contains(&class) {
                reason.push_str(": ");
                reason.push_str(db.message());
            }
            for (what, name) in [
                ("table", db.table()),
                ("column", db.column()),
                ("constraint", db.constraint()),
            ] {
                if let Some(name) = name {
                    reason.push_str(&format!(" ({what} {name})"));
                }
            }
            (transient, reason)
        }
        None => {
            let mut reason = error.to_string();
            if let Some(source) = std::error::Error::source(&error) {
                reason.push_str(&format!(": {source}"));
            }
            // Anything that is not a server-side error is a connection or protocol problem.
            let transient = error.is_closed()
                || source_is_io(&error)
                || reason.contains("timeout")
                || reason.contains("connecting");
            (transient, reason)
        }
    };
    if transient {
        SinkError::Transient {
            context: context.to_owned(),
            reason,
        }
    } else {
        SinkError::query(context, reason)
    }
}

fn source_is_io(error: &tokio_postgres::Error) -> bool {
    std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classification() {
        assert!(
            SinkError::Transient {
                context: "x".into(),
                reason: "y".into()
            }
            .is_transient()
        );
        assert!(!SinkError::query("x", "y").is_transient());
        assert!(
            !SinkError::SchemaTooNew {
                found: 9,
                supported: 1
            }
            .is_transient()
        );
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(sqlite("applying", busy).is_transient());
    }

    #[test]
    fn schema_too_new_message_is_clear() {
        let text = SinkError::SchemaTooNew {
            found: 7,
            supported: 1,
        }
        .to_string();
        assert!(text.contains("version 7"), "{text}");
        assert!(text.contains("(1)"), "{text}");
        assert!(text.contains("upgrade arbosync"), "{text}");
    }
}
