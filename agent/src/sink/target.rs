//! Parsing the `[database] url` and the PostgreSQL schema name into a validated target.

use std::path::PathBuf;

use super::error::SinkError;

/// Where the sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An SQLite file (absolute or relative to the working directory).
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database (tests, demos).
    SqliteMemory,
    /// A PostgreSQL connection string (`postgres://` or `postgresql://`), passed to tokio-postgres.
    Postgres(String),
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, SinkError> {
        let url = url.trim();
        let invalid = |reason: &str| SinkError::InvalidUrl {
            reason: reason.to_owned(),
        };
        if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            return Ok(Target::SqliteMemory);
        }
        if let Some(rest) = url.strip_prefix("sqlite://") {
            // `sqlite:///abs/path.db` leaves `/abs/path.db`; `sqlite://rel.db` leaves `rel.db`.
            if rest.is_empty() || rest.ends_with('/') {
                return Err(invalid("the sqlite url names no file"));
            }
            if rest.contains('?') || rest.contains('#') {
                return Err(invalid("sqlite urls take no query parameters"));
            }
            return Ok(Target::SqliteFile(PathBuf::from(rest)));
        }
        if url.starts_with("sqlite:") {
            return Err(invalid(
                "an sqlite url starts with sqlite:// (or is sqlite::memory:)",
            ));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_owned()));
        }
        if url.is_empty() {
            return Err(invalid("the url is empty"));
        }
        Err(invalid("unsupported scheme"))
    }
}

/// Validates a PostgreSQL schema name (`[a-z_][a-z0-9_]*`, at most 63 bytes) and returns it quoted.
pub(crate) fn quoted_schema(schema: &str) -> Result<String, SinkError> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || schema.len() > 63 {
        return Err(SinkError::Connect {
            reason: format!(
                "invalid PostgreSQL schema name {schema:?}: use lowercase letters, digits and \
                 underscores, starting with a letter or underscore, at most 63 characters"
            ),
        });
    }
    Ok(format!("\"{schema}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_urls() {
        assert_eq!(
            Target::parse("sqlite:///var/lib/arbosync/a.db").ok(),
            Some(Target::SqliteFile("/var/lib/arbosync/a.db".into()))
        );
        assert_eq!(
            Target::parse("sqlite://data/a.db").ok(),
            Some(Target::SqliteFile("data/a.db".into()))
        );
        assert_eq!(
            Target::parse("sqlite::memory:").ok(),
            Some(Target::SqliteMemory)
        );
        assert!(matches!(
            Target::parse("postgres://postgres@127.0.0.1/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(matches!(
            Target::parse("postgresql://u:pw@h/db"),
            Ok(Target::Postgres(_))
        ));
    }

    #[test]
    fn refuses_others_without_echoing_them() {
        for bad in [
            "",
            "mysql://u:secretpw@h/db",
            "sqlite:",
            "sqlite:/x.db",
            "sqlite://",
            "sqlite:///tmp/",
            "sqlite:///x.db?mode=ro",
            "/var/lib/a.db",
        ] {
            let err = Target::parse(bad).expect_err(bad);
            assert!(matches!(err, SinkError::InvalidUrl { .. }), "{bad}");
            assert!(!err.to_string().contains("secretpw"));
        }
    }

    #[test]
    fn validates_schema_names() {
        assert_eq!(
            quoted_schema("arbosync").ok().as_deref(),
            Some("\"arbosync\"")
        );
        assert!(quoted_schema("_a1").is_ok());
        for bad in ["", "1a", "Arbosync", "a-b", "a\"b", "a b", &"a".repeat(64)] {
            assert!(quoted_schema(bad).is_err(), "{bad}");
        }
    }
}
