//! Configuration file (TOML): parsing, validation and line-precise errors.
//!
//! The file format is the contract in `docs/interfaces.md`. [`Config::load`] reads one file and
//! returns either a fully validated, typed [`Config`] or a [`ConfigError`] that lists **every**
//! problem found, each with the file, line, column and key (`file:line:col: key: message`).
//!
//! Parsing happens in three stages so that one mistake does not hide the others:
//! 1. the TOML syntax (all syntax errors are collected),
//! 2. each section and each `[[connection]]` / `[[employer]]` entry is deserialized on its own with
//!    serde (`deny_unknown_fields`, so a misspelt key is an error),
//! 3. semantic checks (durations, URLs, references between sections, readable files, ...).
//!
//! Relative paths in the file are resolved against the directory of the configuration file.
//! The client secret file's content is loaded into a [`SecretString`]; it never shows in `Debug`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use url::Url;
use uuid::Uuid;

use crate::secrets::SecretString;

/// Default configuration file when neither `--config` nor `$ARBOSYNC_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/arbosync/agent.toml";
/// Environment variable naming the configuration file.
pub const CONFIG_ENV_VAR: &str = "ARBOSYNC_CONFIG";
/// Default state directory (sled store, encrypted secrets, default SQLite database).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/arbosync";
/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/arbosync/agent.sock";
/// Default PostgreSQL schema name.
pub const DEFAULT_SCHEMA: &str = "arbosync";

const DEFAULT_INTERVAL: Duration = Duration::from_secs(2 * 3600);
const DEFAULT_FULL_RECONCILE_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// How long running runs get to finish at shutdown (systemd's stop timeout is longer).
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
const DEFAULT_UPDATE_CHECK_INTERVAL: Duration = Duration::from_secs(6 * 3600);
const DEFAULT_MAX_CONCURRENT_EMPLOYERS: usize = 4;
const DEFAULT_REQUESTS_PER_SECOND: f64 = 5.0;
const DEFAULT_MAX_PARALLEL_REQUESTS: usize = 4;
const DEFAULT_HISTORY_MONTHS: u32 = 24;
/// Upper bound for `history_months` (100 years): anything above is certainly a typo.
const MAX_HISTORY_MONTHS: i64 = 1200;

/// The configuration file to use: `$ARBOSYNC_CONFIG` if set (and not empty), else
/// `/etc/arbosync/agent.toml`.
pub fn default_config_path() -> PathBuf {
    match std::env::var_os(CONFIG_ENV_VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

// ---------------------------------------------------------------------------------------------
// Typed configuration
// ---------------------------------------------------------------------------------------------

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub agent: AgentSettings,
    pub database: DatabaseSettings,
    pub update: UpdateSettings,
    pub connections: Vec<ConnectionConfig>,
    pub employers: Vec<EmployerConfig>,
}

/// `[agent]`: the service itself.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// Optional directory for rolling log files; journald/stderr are always used.
    pub log_dir: Option<PathBuf>,
    /// Optional `tracing` filter directive (e.g. `info` or `arbosync_agent=debug,info`).
    pub log_level: Option<String>,
    /// Incremental sync interval per employer.
    pub interval: Duration,
    /// Interval of the full fetch with soft-delete detection.
    pub full_reconcile_interval: Duration,
    /// At SIGTERM, running runs get this long to finish before they are abandoned.
    pub shutdown_grace: Duration,
    /// At least 1.
    pub max_concurrent_employers: usize,
    /// Users allowed to send mutating requests over the control socket.
    pub admin_users: Vec<Principal>,
    /// Groups allowed to send mutating requests over the control socket.
    pub admin_groups: Vec<Principal>,
    /// Users allowed to read over the control socket.
    pub read_users: Vec<Principal>,
    /// Groups allowed to read over the control socket.
    pub read_groups: Vec<Principal>,
}

/// A user or group: a name to be resolved, or a numeric uid/gid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    Name(String),
    Id(u32),
}

/// `[database]`: where the synced data goes.
#[derive(Clone, PartialEq)]
pub struct DatabaseSettings {
    /// `sqlite:///path/to/file.db` or `postgres://user@host/db`. May contain a password: never
    /// log it; the `Debug` impl redacts it.
    pub url: String,
    /// The parsed kind of database (for SQLite: the file, a relative path resolved against the
    /// configuration file's directory; use this rather than re-parsing `url`).
    pub backend: DatabaseBackend,
    /// PostgreSQL schema name (a plain SQL identifier, validated).
    pub schema: String,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url_password(&self.url))
            .field("backend", &self.backend)
            .field("schema", &self.schema)
            .finish()
    }
}

/// The database kind named by `[database] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseBackend {
    /// A SQLite file.
    Sqlite { path: PathBuf },
    /// A PostgreSQL server; connect with [`DatabaseSettings::url`].
    Postgres,
}

/// `[update]`: the release channel.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateSettings {
    pub channel: UpdateChannel,
    /// Manifest URL template; `{channel}` is replaced by the channel name.
    pub manifest_url: Option<String>,
    pub check_interval: Duration,
    pub enabled: bool,
}

/// A release channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateChannel {
    Stable,
    Beta,
    /// A pinned version like `1.4.2`.
    Pinned(String),
}

impl UpdateChannel {
    /// The name used in the manifest URL.
    pub fn as_str(&self) -> &str {
        match self {
            UpdateChannel::Stable => "stable",
            UpdateChannel::Beta => "beta",
            UpdateChannel::Pinned(v) => v,
        }
    }
}

/// The Loket environment of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Production,
    Acceptance,
}

impl Environment {
    /// The API base URL of this environment.
    pub fn api_url(self) -> &'static str {
        match self {
            Environment::Production => "https://api.loket.nl/v2",
            Environment::Acceptance => "https://api.loket-acc.nl/v2",
        }
    }

    /// The OAuth server URL of this environment.
    pub fn oauth_url(self) -> &'static str {
        match self {
            Environment::Production => "https://oauth.loket.nl",
            Environment::Acceptance => "https://oauth.loket-acc.nl",
        }
    }
}

/// `[[connection]]`: one Loket user that gave consent.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Unique; also the file name of its encrypted refresh token (see [`is_valid_connection_name`]).
    pub name: String,
    /// `None` when both URLs were given explicitly.
    pub environment: Option<Environment>,
    pub api_url: Url,
    pub oauth_url: Url,
    pub client_id: String,
    pub client_secret_file: Option<PathBuf>,
    /// The content of `client_secret_file` (trimmed), if one was given.
    pub client_secret: Option<SecretString>,
    /// Extra trust anchor (PEM), checked readable at load time.
    pub ca_file: Option<PathBuf>,
    /// Greater than zero.
    pub requests_per_second: f64,
    /// At least 1.
    pub max_parallel_requests: usize,
}

/// `[[employer]]`: one Loket employer synced through a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct EmployerConfig {
    /// The Loket employer UUID.
    pub id: Uuid,
    /// Name of the `[[connection]]` used for this employer (validated to exist).
    pub connection: String,
    /// Display name until the first sync.
    pub name: Option<String>,
    /// Synced on a schedule only once the helpdesk activated it.
    pub active: bool,
    pub options: EmployerOptions,
}

/// What is synced for an employer (product.md, "Per-employer options").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmployerOptions {
    /// All employments, or only those of employees with an absence dossier.
    pub all_employments: bool,
    pub absences: bool,
    pub salary: bool,
    pub bsn: bool,
    /// Absences ended longer ago than this are out of scope.
    pub history_months: u32,
}

impl Default for EmployerOptions {
    /// The privacy-minimal defaults.
    fn default() -> Self {
        EmployerOptions {
            all_employments: false,
            absences: true,
            salary: false,
            bsn: false,
            history_months: DEFAULT_HISTORY_MONTHS,
        }
    }
}

impl Config {
    /// Where the agent writes on this machine: the state directory and, for SQLite, the
    /// database file (see [`crate::diskspace`]).
    pub fn write_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.agent.state_dir.clone()];
        if let DatabaseBackend::Sqlite { path } = &self.database.backend {
            paths.push(path.clone());
        }
        paths
    }

    /// Reads and validates the configuration file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            problems: vec![Problem {
                line: 0,
                column: 0,
                key: String::new(),
                message: format!("cannot read the configuration file: {e}"),
            }],
        })?;
        Config::from_str(&text, path)
    }

    /// Parses and validates configuration `text`; `path_for_messages` names it in errors and is
    /// the base for relative paths.
    #[allow(clippy::should_implement_trait)] // needs the path as well; FromStr cannot take it
    pub fn from_str(
        text: &str,
        path_for_messages: impl AsRef<Path>,
    ) -> Result<Config, ConfigError> {
        let file = path_for_messages.as_ref().to_path_buf();
        let mut parser = Parser::new(text, &file);
        match parser.parse() {
            Some(config) if parser.problems.is_empty() => Ok(config),
            _ => {
                let mut problems = parser.into_problems();
                if problems.is_empty() {
                    // Every failing check records a problem; this only guards that invariant.
                    problems.push(Problem {
                        line: 0,
                        column: 0,
                        key: String::new(),
                        message: "the configuration is invalid".to_string(),
                    });
                }
                Err(ConfigError { file, problems })
            }
        }
    }

    /// The connection with this name.
    pub fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections.iter().find(|c| c.name == name)
    }

    /// The employer with this id.
    pub fn employer(&self, id: Uuid) -> Option<&EmployerConfig> {
        self.employers.iter().find(|e| e.id == id)
    }
}

/// A connection name is used as a file name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting
/// with a dot.
pub fn is_valid_connection_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Everything wrong with one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// In file order; never empty.
    pub problems: Vec<Problem>,
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based; 0 when the problem concerns the whole file (e.g. it cannot be read).
    pub line: usize,
    /// 1-based, in characters; 0 when `line` is 0.
    pub column: usize,
    /// Dotted key path like `connection[0].api_url`; empty for syntax errors outside a key.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{file}:")?;
            if p.line > 0 {
                write!(f, "{}:{}:", p.line, p.column)?;
            }
            if !p.key.is_empty() {
                write!(f, " {}:", p.key)?;
            }
            write!(f, " {}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

/// A duration that is not of the form `<number><s|m|h|d>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{input}`: use a whole number followed by s, m, h or d (e.g. 30s, 15m, 2h, 1d)"
)]
pub struct DurationError {
    pub input: String,
}

/// Parses `30s`, `15m`, `2h`, `1d` (a whole number and one unit; no spaces, no fractions).
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: input.to_string(),
    };
    let unit = input.chars().last().ok_or_else(err)?;
    let digits = &input[..input.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let n: u64 = digits.parse().map_err(|_| err())?;
    let factor: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(err()),
    };
    n.checked_mul(factor)
        .map(Duration::from_secs)
        .ok_or_else(err)
}

// ---------------------------------------------------------------------------------------------
// Raw (serde) shapes
// ---------------------------------------------------------------------------------------------

type S<T> = Option<Spanned<T>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    state_dir: S<String>,
    socket: S<String>,
    log_dir: S<String>,
    log_level: S<String>,
    interval: S<String>,
    full_reconcile_interval: S<String>,
    shutdown_grace: S<String>,
    max_concurrent_employers: S<i64>,
    admin_users: S<Vec<Principal>>,
    admin_groups: S<Vec<Principal>>,
    read_users: S<Vec<Principal>>,
    read_groups: S<Vec<Principal>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: S<String>,
    schema: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUpdate {
    channel: S<String>,
    manifest_url: S<String>,
    check_interval: S<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    name: Spanned<String>,
    environment: S<String>,
    api_url: S<String>,
    oauth_url: S<String>,
    client_id: Spanned<String>,
    client_secret_file: S<String>,
    ca_file: S<String>,
    requests_per_second: S<f64>,
    max_parallel_requests: S<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmployer {
    id: Spanned<String>,
    connection: Spanned<String>,
    name: Option<String>,
    active: Option<bool>,
    all_employments: Option<bool>,
    absences: Option<bool>,
    salary: Option<bool>,
    bsn: Option<bool>,
    history_months: S<i64>,
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PrincipalVisitor;
        impl Visitor<'_> for PrincipalVisitor {
            type Value = Principal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user/group name or a numeric uid/gid")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Principal, E> {
                u32::try_from(v)
                    .map(Principal::Id)
                    .map_err(|_| E::custom(format!("{v} is not a valid uid/gid")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Principal, E> {
                u32::try_from(v)
                    .map(Principal::Id)
                    .map_err(|_| E::custom(format!("{v} is not a valid uid/gid")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Principal, E> {
                if v.trim().is_empty() {
                    Err(E::custom("an empty user/group name"))
                } else {
                    Ok(Principal::Name(v.to_string()))
                }
            }
        }
        deserializer.deserialize_any(PrincipalVisitor)
    }
}

// ---------------------------------------------------------------------------------------------
// The parser
// ---------------------------------------------------------------------------------------------

/// Maps byte offsets to 1-based line and column.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset); // >= 1: starts[0] == 0
        let start = self.starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (line, column)
    }
}

struct Parser<'a> {
    text: &'a str,
    file: &'a Path,
    lines: LineIndex<'a>,
    problems: Vec<(usize, Problem)>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, file: &'a Path) -> Self {
        Parser {
            text,
            file,
            lines: LineIndex::new(text),
            problems: Vec::new(),
        }
    }

    fn into_problems(mut self) -> Vec<Problem> {
        self.problems.sort_by_key(|(offset, _)| *offset);
        self.problems.into_iter().map(|(_, p)| p).collect()
    }

    fn problem_at(
        &mut self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (offset, line, column) = match span {
            Some(span) => {
                let (line, column) = self.lines.locate(span.start);
                (span.start, line, column)
            }
            None => (usize::MAX, 0, 0),
        };
        self.problems.push((
            offset,
            Problem {
                line,
                column,
                key: key.into(),
                message: message.into(),
            },
        ));
    }

    fn problem<T>(&mut self, at: &Spanned<T>, key: impl Into<String>, message: impl Into<String>) {
        self.problem_at(Some(at.span()), key, message);
    }

    /// Records a serde/toml error found while deserializing `value` (located at `path`).
    fn serde_problem(&mut self, err: &toml::de::Error, path: &str, value: &Spanned<DeValue<'_>>) {
        let span = err.span();
        let mut key = path.to_string();
        if let Some(inner) = span.as_ref().and_then(|s| key_at(value.get_ref(), s.start)) {
            key = join_key(path, &inner);
        }
        let message = err.message().trim().to_string();
        // "missing field `x`" / "unknown field `x`": the span is the table, name the field.
        if let Some(field) = field_in_message(&message)
            && key == path
        {
            key = join_key(path, field);
        }
        self.problem_at(span, key, message);
    }

    fn parse(&mut self) -> Option<Config> {
        let (root, syntax_errors) = DeTable::parse_recoverable(self.text);
        if !syntax_errors.is_empty() {
            for err in &syntax_errors {
                let key = err
                    .span()
                    .and_then(|s| key_at_table(root.get_ref(), s.start))
                    .unwrap_or_default();
                self.problem_at(err.span(), key, err.message().trim().to_string());
            }
            return None;
        }

        let mut agent = None;
        let mut database = None;
        let mut update = None;
        let mut connections = Vec::new();
        let mut employers = Vec::new();
        let mut complete = true;
        for (k, v) in root.get_ref().iter() {
            let name: &str = k.get_ref();
            match name {
                "agent" => agent = self.section::<RawAgent>(v, "agent"),
                "database" => database = self.section::<RawDatabase>(v, "database"),
                "update" => update = self.section::<RawUpdate>(v, "update"),
                "connection" => complete &= self.entries(v, "connection", &mut connections),
                "employer" => complete &= self.entries(v, "employer", &mut employers),
                other => self.problem(
                    k,
                    other,
                    "unknown key; expected one of: agent, database, update, connection, employer",
                ),
            }
        }
        // A section that failed to deserialize was reported; validate the rest with its
        // defaults so that every other problem is still found.
        let has = |n: &str| root.get_ref().iter().any(|(k, _)| &**k.get_ref() == n);
        complete &= agent.is_some() || !has("agent");
        complete &= database.is_some() || !has("database");
        complete &= update.is_some() || !has("update");
        let agent = agent.unwrap_or_default();
        let database = database.unwrap_or_default();
        let update = update.unwrap_or_default();
        let base = self
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let agent = self.validate_agent(agent, &base);
        let database = self.validate_database(database, agent.as_ref(), &base);
        let update = self.validate_update(update);
        let connections = self.validate_connections(connections, &base);
        let known = connection_names(root.get_ref());
        let employers = self.validate_employers(employers, &known);
        if !complete {
            return None;
        }
        Some(Config {
            path: self.file.to_path_buf(),
            agent: agent?,
            database: database?,
            update: update?,
            connections: connections
                .into_iter()
                .map(|(_, c)| c)
                .collect::<Option<Vec<_>>>()?,
            employers: employers?,
        })
    }

    /// Deserializes a `[section]` table on its own, so its errors do not hide others.
    fn section<T: for<'de> Deserialize<'de>>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &str,
    ) -> Option<T> {
        if !value.get_ref().is_table() {
            self.problem(
                value,
                path,
                format!(
                    "expected a table [{path}], found {}",
                    value.get_ref().type_str()
                ),
            );
            return None;
        }
        self.deserialize_all(value, path)
    }

    /// Deserializes each `[[path]]` entry on its own. Returns false when one failed entirely.
    fn entries<T: for<'de> Deserialize<'de>>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &str,
        out: &mut Vec<(String, T)>,
    ) -> bool {
        let Some(items) = value.get_ref().as_array() else {
            self.problem(
                value,
                path,
                format!(
                    "expected an array of tables [[{path}]], found {}",
                    value.get_ref().type_str()
                ),
            );
            return false;
        };
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            if !item.get_ref().is_table() {
                self.problem(
                    item,
                    item_path,
                    format!("expected a table, found {}", item.get_ref().type_str()),
                );
                ok = false;
                continue;
            }
            match self.deserialize_all(item, &item_path) {
                Some(v) => out.push((item_path, v)),
                None => ok = false,
            }
        }
        ok
    }

    /// Deserializes a table, reporting every bad key: after an error located at one of the
    /// table's keys, that key is reported, removed, and deserialization is tried again. Returns
    /// `None` when an error cannot be pinned to a key (e.g. a missing required key).
    fn deserialize_all<T: for<'de> Deserialize<'de>>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &str,
    ) -> Option<T> {
        let mut value = value.clone();
        loop {
            let err = match T::deserialize(toml::de::ValueDeserializer::from(value.clone())) {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            self.serde_problem(&err, path, &value);
            let offset = err.span()?.start;
            let DeValue::Table(table) = value.get_mut() else {
                return None;
            };
            let culprit = table
                .iter()
                .find(|(k, v)| k.span().contains(&offset) || v.span().contains(&offset))
                .map(|(k, _)| k.get_ref().to_string())?;
            table.remove(culprit.as_str())?;
        }
    }

    fn duration(&mut self, raw: &S<String>, key: &str, default: Duration) -> Option<Duration> {
        let Some(raw) = raw else {
            return Some(default);
        };
        match parse_duration(raw.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.problem(raw, key, "must be longer than zero");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(raw, key, e.to_string());
                None
            }
        }
    }

    fn positive_count(&mut self, raw: &S<i64>, key: &str, default: usize) -> Option<usize> {
        let Some(raw) = raw else {
            return Some(default);
        };
        match usize::try_from(*raw.get_ref()) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                self.problem(
                    raw,
                    key,
                    format!("must be at least 1, found {}", raw.get_ref()),
                );
                None
            }
        }
    }

    fn path(&mut self, raw: &Spanned<String>, key: &str, base: &Path) -> Option<PathBuf> {
        if raw.get_ref().trim().is_empty() {
            self.problem(raw, key, "must not be empty");
            return None;
        }
        let p = Path::new(raw.get_ref());
        Some(if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        })
    }

    fn principals(&mut self, raw: Option<Spanned<Vec<Principal>>>) -> Vec<Principal> {
        raw.map(Spanned::into_inner).unwrap_or_default()
    }

    fn validate_agent(&mut self, raw: RawAgent, base: &Path) -> Option<AgentSettings> {
        let state_dir = match &raw.state_dir {
            Some(p) => self.path(p, "agent.state_dir", base),
            None => Some(PathBuf::from(DEFAULT_STATE_DIR)),
        };
        let socket = match &raw.socket {
            Some(p) => self.path(p, "agent.socket", base),
            None => Some(PathBuf::from(DEFAULT_SOCKET)),
        };
        let log_dir = match &raw.log_dir {
            Some(p) => self.path(p, "agent.log_dir", base).map(Some),
            None => Some(None),
        };
        let log_level = match &raw.log_level {
            Some(l) => match tracing_subscriber::EnvFilter::try_new(l.get_ref()) {
                Ok(_) if !l.get_ref().trim().is_empty() => Some(Some(l.get_ref().clone())),
                Ok(_) => {
                    self.problem(l, "agent.log_level", "must not be empty");
                    None
                }
                Err(e) => {
                    self.problem(l, "agent.log_level", format!("not a valid log filter: {e}"));
                    None
                }
            },
            None => Some(None),
        };
        let interval = self.duration(&raw.interval, "agent.interval", DEFAULT_INTERVAL);
        let full = self.duration(
            &raw.full_reconcile_interval,
            "agent.full_reconcile_interval",
            DEFAULT_FULL_RECONCILE_INTERVAL,
        );
        let grace = self.duration(
            &raw.shutdown_grace,
            "agent.shutdown_grace",
            DEFAULT_SHUTDOWN_GRACE,
        );
        let max = self.positive_count(
            &raw.max_concurrent_employers,
            "agent.max_concurrent_employers",
            DEFAULT_MAX_CONCURRENT_EMPLOYERS,
        );
        let admin_users = self.principals(raw.admin_users);
        let admin_groups = self.principals(raw.admin_groups);
        let read_users = self.principals(raw.read_users);
        let read_groups = self.principals(raw.read_groups);
        Some(AgentSettings {
            state_dir: state_dir?,
            socket: socket?,
            log_dir: log_dir?,
            log_level: log_level?,
            interval: interval?,
            full_reconcile_interval: full?,
            shutdown_grace: grace?,
            max_concurrent_employers: max?,
            admin_users,
            admin_groups,
            read_users,
            read_groups,
        })
    }

    fn validate_database(
        &mut self,
        raw: RawDatabase,
        agent: Option<&AgentSettings>,
        base: &Path,
    ) -> Option<DatabaseSettings> {
        let schema = match &raw.schema {
            Some(s) if is_sql_identifier(s.get_ref()) => Some(s.get_ref().clone()),
            Some(s) => {
                self.problem(
                    s,
                    "database.schema",
                    "must be a plain SQL identifier (letters, digits and _, not starting with a digit, at most 63 characters)",
                );
                None
            }
            None => Some(DEFAULT_SCHEMA.to_string()),
        };
        let (url, backend) = match &raw.url {
            Some(u) => match parse_database_url(u.get_ref(), base) {
                Ok(backend) => (Some(u.get_ref().clone()), Some(backend)),
                Err(msg) => {
                    self.problem(u, "database.url", msg);
                    (None, None)
                }
            },
            None => {
                let state_dir =
                    agent.map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), |a| a.state_dir.clone());
                let path = state_dir.join("arbodienst.db");
                (
                    Some(format!("sqlite://{}", path.display())),
                    Some(DatabaseBackend::Sqlite { path }),
                )
            }
        };
        Some(DatabaseSettings {
            url: url?,
            backend: backend?,
            schema: schema?,
        })
    }

    fn validate_update(&mut self, raw: RawUpdate) -> Option<UpdateSettings> {
        let channel = match &raw.channel {
            None => Some(UpdateChannel::Stable),
            Some(c) => match c.get_ref().as_str() {
                "stable" => Some(UpdateChannel::Stable),
                "beta" => Some(UpdateChannel::Beta),
                v if is_version(v) => Some(UpdateChannel::Pinned(v.to_string())),
                _ => {
                    self.problem(
                        c,
                        "update.channel",
                        "expected \"stable\", \"beta\" or a version like \"1.4.2\"",
                    );
                    None
                }
            },
        };
        let manifest_url = match &raw.manifest_url {
            None => Some(None),
            Some(u) => {
                let concrete = u.get_ref().replace("{channel}", "stable");
                match check_remote_url(&concrete) {
                    Ok(_) => Some(Some(u.get_ref().clone())),
                    Err(msg) => {
                        self.problem(u, "update.manifest_url", msg);
                        None
                    }
                }
            }
        };
        let check_interval = self.duration(
            &raw.check_interval,
            "update.check_interval",
            DEFAULT_UPDATE_CHECK_INTERVAL,
        );
        Some(UpdateSettings {
            channel: channel?,
            manifest_url: manifest_url?,
            check_interval: check_interval?,
            enabled: raw.enabled.unwrap_or(true),
        })
    }

    /// Returns `(name, validated connection)` per entry, so employers can be checked against the
    /// names even when a connection has another problem.
    fn validate_connections(
        &mut self,
        raw: Vec<(String, RawConnection)>,
        base: &Path,
    ) -> Vec<(String, Option<ConnectionConfig>)> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        for (path, c) in raw {
            let key = |k: &str| format!("{path}.{k}");
            let name = c.name.get_ref().clone();
            let mut ok = true;
            if !is_valid_connection_name(&name) {
                self.problem(
                    &c.name,
                    key("name"),
                    "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-', not starting with '.'",
                );
                ok = false;
            }
            if let Some(first_line) = seen.get(&name) {
                let msg = format!(
                    "duplicate connection name `{name}` (first defined on line {first_line})"
                );
                self.problem(&c.name, key("name"), msg);
                ok = false;
            } else {
                seen.insert(name.clone(), self.lines.locate(c.name.span().start).0);
            }
            let environment = match &c.environment {
                None => None,
                Some(e) => match e.get_ref().as_str() {
                    "production" => Some(Environment::Production),
                    "acceptance" => Some(Environment::Acceptance),
                    _ => {
                        self.problem(
                            e,
                            key("environment"),
                            "expected \"production\" or \"acceptance\"",
                        );
                        ok = false;
                        None
                    }
                },
            };
            if c.environment.is_none() && (c.api_url.is_none() || c.oauth_url.is_none()) {
                self.problem(
                    &c.name,
                    path.clone(),
                    "set `environment` (\"production\" or \"acceptance\") or both `api_url` and `oauth_url`",
                );
                ok = false;
            }
            let api_url = self.connection_url(
                &c.api_url,
                &key("api_url"),
                environment.map(Environment::api_url),
            );
            let oauth_url = self.connection_url(
                &c.oauth_url,
                &key("oauth_url"),
                environment.map(Environment::oauth_url),
            );
            if c.client_id.get_ref().trim().is_empty() {
                self.problem(&c.client_id, key("client_id"), "must not be empty");
                ok = false;
            }
            let mut client_secret_file = None;
            let mut client_secret = None;
            if let Some(f) = &c.client_secret_file {
                match self.path(f, &key("client_secret_file"), base) {
                    Some(p) => match std::fs::read_to_string(&p) {
                        Ok(s) if s.trim().is_empty() => {
                            self.problem(
                                f,
                                key("client_secret_file"),
                                format!("{} is empty", p.display()),
                            );
                            ok = false;
                        }
                        Ok(s) => {
                            client_secret = Some(SecretString::new(s.trim().to_string()));
                            client_secret_file = Some(p);
                        }
                        Err(e) => {
                            self.problem(
                                f,
                                key("client_secret_file"),
                                format!("cannot read {}: {e}", p.display()),
                            );
                            ok = false;
                        }
                    },
                    None => ok = false,
                }
            }
            let mut ca_file = None;
            if let Some(f) = &c.ca_file {
                match self.path(f, &key("ca_file"), base) {
                    Some(p) => match std::fs::read(&p) {
                        Ok(bytes) if !contains(&bytes, b"-----BEGIN CERTIFICATE-----") => {
                            self.problem(
                                f,
                                key("ca_file"),
                                format!("{} contains no PEM certificate", p.display()),
                            );
                            ok = false;
                        }
                        Ok(_) => ca_file = Some(p),
                        Err(e) => {
                            self.problem(
                                f,
                                key("ca_file"),
                                format!("cannot read {}: {e}", p.display()),
                            );
                            ok = false;
                        }
                    },
                    None => ok = false,
                }
            }
            let rps = match &c.requests_per_second {
                None => Some(DEFAULT_REQUESTS_PER_SECOND),
                Some(r) if r.get_ref().is_finite() && *r.get_ref() > 0.0 => Some(*r.get_ref()),
                Some(r) => {
                    let msg = format!("must be a number greater than zero, found {}", r.get_ref());
                    self.problem(r, key("requests_per_second"), msg);
                    None
                }
            };
            let parallel = self.positive_count(
                &c.max_parallel_requests,
                &key("max_parallel_requests"),
                DEFAULT_MAX_PARALLEL_REQUESTS,
            );
            let config = match (ok, api_url, oauth_url, rps, parallel) {
                (
                    true,
                    Some(api_url),
                    Some(oauth_url),
                    Some(requests_per_second),
                    Some(max_parallel_requests),
                ) => Some(ConnectionConfig {
                    name: name.clone(),
                    environment,
                    api_url,
                    oauth_url,
                    client_id: c.client_id.into_inner(),
                    client_secret_file,
                    client_secret,
                    ca_file,
                    requests_per_second,
                    max_parallel_requests,
                }),
                _ => None,
            };
            out.push((name, config));
        }
        out
    }

    /// An explicit URL (validated) or the environment's default; `None` after a problem or when
    /// neither is there (reported by the caller).
    fn connection_url(&mut self, raw: &S<String>, key: &str, default: Option<&str>) -> Option<Url> {
        match raw {
            Some(u) => match check_remote_url(u.get_ref()) {
                Ok(url) => Some(url),
                Err(msg) => {
                    self.problem(u, key, msg);
                    None
                }
            },
            None => default.and_then(|d| Url::parse(d).ok()),
        }
    }

    fn validate_employers(
        &mut self,
        raw: Vec<(String, RawEmployer)>,
        known_connections: &[String],
    ) -> Option<Vec<EmployerConfig>> {
        let mut seen: HashMap<Uuid, usize> = HashMap::new();
        let mut out = Vec::new();
        let mut ok = true;
        for (path, e) in raw {
            let key = |k: &str| format!("{path}.{k}");
            let id = match Uuid::parse_str(e.id.get_ref().trim()) {
                Ok(id) => {
                    if let Some(first_line) = seen.get(&id) {
                        let msg = format!(
                            "duplicate employer id {id} (first defined on line {first_line})"
                        );
                        self.problem(&e.id, key("id"), msg);
                        ok = false;
                    } else {
                        seen.insert(id, self.lines.locate(e.id.span().start).0);
                    }
                    Some(id)
                }
                Err(_) => {
                    self.problem(
                        &e.id,
                        key("id"),
                        format!("`{}` is not a UUID (the Loket employer id)", e.id.get_ref()),
                    );
                    ok = false;
                    None
                }
            };
            let connection = e.connection.get_ref();
            if !known_connections.iter().any(|name| name == connection) {
                let known = known_connections;
                let msg = if known.is_empty() {
                    format!("no [[connection]] named `{connection}` (none is defined)")
                } else {
                    format!(
                        "no [[connection]] named `{connection}` (defined: {})",
                        known.join(", ")
                    )
                };
                self.problem(&e.connection, key("connection"), msg);
                ok = false;
            }
            let history_months = match &e.history_months {
                None => Some(DEFAULT_HISTORY_MONTHS),
                Some(h) if (0..=MAX_HISTORY_MONTHS).contains(h.get_ref()) => {
                    u32::try_from(*h.get_ref()).ok()
                }
                Some(h) => {
                    let msg = format!(
                        "must be between 0 and {MAX_HISTORY_MONTHS}, found {}",
                        h.get_ref()
                    );
                    self.problem(h, key("history_months"), msg);
                    None
                }
            };
            let defaults = EmployerOptions::default();
            if let (Some(id), Some(history_months)) = (id, history_months) {
                out.push(EmployerConfig {
                    id,
                    connection: connection.clone(),
                    name: e.name,
                    active: e.active.unwrap_or(false),
                    options: EmployerOptions {
                        all_employments: e.all_employments.unwrap_or(defaults.all_employments),
                        absences: e.absences.unwrap_or(defaults.absences),
                        salary: e.salary.unwrap_or(defaults.salary),
                        bsn: e.bsn.unwrap_or(defaults.bsn),
                        history_months,
                    },
                });
            } else {
                ok = false;
            }
        }
        ok.then_some(out)
    }
}

/// The `name` of every `[[connection]]` entry, in order and without duplicates, including
/// entries that have other problems (so employers naming them get no misleading error).
fn connection_names(root: &DeTable<'_>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let entries = root
        .iter()
        .find(|(k, _)| &**k.get_ref() == "connection")
        .and_then(|(_, v)| v.get_ref().as_array());
    for entry in entries.into_iter().flatten() {
        let name = entry
            .get_ref()
            .as_table()
            .and_then(|t| t.iter().find(|(k, _)| &**k.get_ref() == "name"))
            .and_then(|(_, v)| v.get_ref().as_str());
        if let Some(name) = name
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_string());
        }
    }
    names
}

/// The deepest key path (relative to `value`) whose key or value contains `offset`.
fn key_at(value: &DeValue<'_>, offset: usize) -> Option<String> {
    match value {
        DeValue::Table(t) => key_at_table(t, offset),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            if !item.span().contains(&offset) {
                return None;
            }
            Some(match key_at(item.get_ref(), offset) {
                Some(inner) if !inner.starts_with('[') => format!("[{i}].{inner}"),
                Some(inner) => format!("[{i}]{inner}"),
                None => format!("[{i}]"),
            })
        }),
        _ => None,
    }
}

fn key_at_table(table: &DeTable<'_>, offset: usize) -> Option<String> {
    // A key's own span, or its value's span (which may be a nested table or array).
    for (k, v) in table.iter() {
        let name: &str = k.get_ref();
        if k.span().contains(&offset) {
            return Some(name.to_string());
        }
        if v.span().contains(&offset) {
            return Some(match key_at(v.get_ref(), offset) {
                Some(inner) if inner.starts_with('[') => format!("{name}{inner}"),
                Some(inner) => format!("{name}.{inner}"),
                None => name.to_string(),
            });
        }
    }
    None
}

fn join_key(path: &str, inner: &str) -> String {
    if path.is_empty() {
        inner.to_string()
    } else if inner.starts_with('[') {
        format!("{path}{inner}")
    } else {
        format!("{path}.{inner}")
    }
}

/// The field named in serde's "missing field `x`" / "unknown field `x`, expected ..." messages.
fn field_in_message(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn is_sql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

fn is_version(s: &str) -> bool {
    let s = s.strip_prefix('v').unwrap_or(s);
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// HTTPS, or plain HTTP to a loopback host (the simulator). Anything else is refused.
fn check_remote_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "plain http is only allowed for loopback hosts (127.0.0.1, ::1, localhost); use https for {}",
                url.host_str().unwrap_or("")
            ));
        }
        other => return Err(format!("unsupported scheme `{other}`: use https")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_string());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not allowed".to_string());
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The backend named by a database URL; a relative SQLite path is resolved against `base`.
fn parse_database_url(raw: &str, base: &Path) -> Result<DatabaseBackend, String> {
    if let Some(path) = raw.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(
                "the sqlite URL has no file path (use sqlite:///path/to/file.db)".to_string(),
            );
        }
        return Ok(DatabaseBackend::Sqlite {
            path: base.join(path),
        });
    }
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        let url = Url::parse(raw).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the PostgreSQL URL has no host".to_string());
        }
        return Ok(DatabaseBackend::Postgres);
    }
    Err("expected a sqlite:///path URL or a postgres://user@host/db URL".to_string())
}

/// `url` with any password replaced by `***`, for Debug output.
fn redact_url_password(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            if url.set_password(Some("***")).is_ok() {
                url.to_string()
            } else {
                "<redacted>".to_string()
            }
        }
        Ok(_) => raw.to_string(),
        // Not parseable: it might still hold a password, show only the scheme.
        Err(_) => raw
            .split("://")
            .next()
            .map_or_else(String::new, |s| format!("{s}://<redacted>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_locates_offsets() {
        let idx = LineIndex::new("ab\ncd\n\nxé");
        assert_eq!(idx.locate(0), (1, 1));
        assert_eq!(idx.locate(1), (1, 2));
        assert_eq!(idx.locate(3), (2, 1));
        assert_eq!(idx.locate(6), (3, 1));
        assert_eq!(idx.locate(7), (4, 1));
        assert_eq!(idx.locate(8), (4, 2));
    }

    #[test]
    fn redacts_database_password() {
        assert_eq!(
            redact_url_password("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            redact_url_password("postgres://u@h/db"),
            "postgres://u@h/db"
        );
    }
}
