//! Logging setup: `tracing` to stderr (plain, no colours and no timestamps when stderr is not a
//! terminal, because journald stamps lines itself), and optionally daily rolling files in
//! `log_dir`, at most [`MAX_LOG_FILES`] of them. `RUST_LOG` overrides the configured level.
//!
//! What may be logged is a rule, not a setting: ids, counts and causes; never tokens, BSNs,
//! salaries, names or free text. Every run logs inside one span carrying employer and run id.

use std::io::IsTerminal;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Rolling log files kept in `log_dir` (one per day).
pub const MAX_LOG_FILES: usize = 14;
/// The rolling files' name: `arbosync-agent.YYYY-MM-DD.log`.
pub const LOG_FILE_PREFIX: &str = "arbosync-agent";

/// Keeps the file writer's background thread alive; drop it last (it flushes on drop).
#[must_use = "dropping the guard stops file logging"]
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write log files in {dir}: {message}")]
pub struct LoggingError {
    pub dir: String,
    pub message: String,
}

fn filter(level: Option<&str>) -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::try_new(level.unwrap_or("info")).unwrap_or_else(|_| EnvFilter::new("info"))
    });
    // tokio-postgres logs statement parameters at debug level. The sink already redacts what it
    // binds, and this keeps the driver quiet whatever the configured level.
    match "tokio_postgres=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// Installs the global subscriber. Calling it again is harmless (the first one stays).
/// `stderr: false` keeps standard error clean (the demo draws the dashboard on the terminal).
pub fn init(
    level: Option<&str>,
    log_dir: Option<&Path>,
    stderr: bool,
) -> Result<LogGuard, LoggingError> {
    let tty = std::io::stderr().is_terminal();
    let stderr_layer = if !stderr {
        fmt::layer().with_writer(std::io::sink).boxed()
    } else if tty {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_target(false)
            .without_time()
            .boxed()
    };
    let (file_layer, guard) = match log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| LoggingError {
                dir: dir.display().to_string(),
                message: e.to_string(),
            })?;
            let appender = RollingFileAppender::builder()
                .rotation(Rotation::DAILY)
                .filename_prefix(LOG_FILE_PREFIX)
                .filename_suffix("log")
                .max_log_files(MAX_LOG_FILES)
                .build(dir)
                .map_err(|e| LoggingError {
                    dir: dir.display().to_string(),
                    message: e.to_string(),
                })?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_target(false)
                .boxed();
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(stderr_layer.and_then(file_layer).with_filter(filter(level)))
        .try_init();
    Ok(LogGuard { _file: guard })
}
