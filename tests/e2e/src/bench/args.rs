//! The command line of `arbosync-bench` and the resolved settings (`--quick` changes the defaults
//! of the sizes, never a value given explicitly).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Regenerates the arbosync performance table (issue 7, B1–B6) and prints it as markdown.
#[derive(Parser, Debug, Clone)]
#[command(name = "arbosync-bench")]
pub struct Args {
    /// Employers at the simulator [default: 100; --quick: 5].
    #[arg(long)]
    pub employers: Option<usize>,
    /// Employees per employer [default: 100; --quick: 10].
    #[arg(long)]
    pub employees: Option<usize>,
    /// Latency the simulator adds to every API request, in ms [default: 20; --quick: 2].
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Repetitions, each on a fresh simulator, state and database; the table shows medians
    /// [default: 3; --quick: 1].
    #[arg(long)]
    pub runs: Option<usize>,
    /// The CI smoke test: 5 × 10, 2 ms, 1 run, 5,000 rows for B4.
    #[arg(long)]
    pub quick: bool,
    /// `max_parallel_requests` of the connection in the agent's configuration (also used by the
    /// naive client of B6).
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// `max_concurrent_employers` in the agent's configuration (also used by B6).
    #[arg(long, default_value_t = 4)]
    pub concurrent_employers: usize,
    /// Rows written per B4 measurement [default: 100000; --quick: 5000].
    #[arg(long)]
    pub apply_rows: Option<usize>,
    /// The database of B1–B3 (B4 always measures both).
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    pub db: Backend,
    /// PostgreSQL server (without a database name); the bench creates and drops its own
    /// databases there.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pub pg_url: String,
    /// The agent binary [default: `arbosync-agent` next to this executable].
    #[arg(long)]
    pub agent_bin: Option<PathBuf>,
    /// Simulator seed (the dataset is a pure function of seed, sizes and today).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Longest an agent process may run before it is killed and the bench fails, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
    /// Also write the markdown to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// The settings in force after `--quick` and the defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    pub employers: usize,
    pub employees: usize,
    pub latency_ms: u64,
    pub runs: usize,
    pub quick: bool,
    pub parallel: usize,
    pub concurrent_employers: usize,
    pub apply_rows: usize,
    pub db: Backend,
    pub pg_url: String,
    pub agent_bin: Option<PathBuf>,
    pub seed: u64,
    pub timeout_secs: u64,
    pub out: Option<PathBuf>,
}

impl Args {
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let q = self.quick;
        let s = Settings {
            employers: self.employers.unwrap_or(if q { 5 } else { 100 }),
            employees: self.employees.unwrap_or(if q { 10 } else { 100 }),
            latency_ms: self.latency_ms.unwrap_or(if q { 2 } else { 20 }),
            runs: self.runs.unwrap_or(if q { 1 } else { 3 }),
            quick: q,
            parallel: self.parallel,
            concurrent_employers: self.concurrent_employers,
            apply_rows: self.apply_rows.unwrap_or(if q { 5_000 } else { 100_000 }),
            db: self.db,
            pg_url: self.pg_url.trim_end_matches('/').to_string(),
            agent_bin: self.agent_bin.clone(),
            seed: self.seed,
            timeout_secs: self.timeout_secs,
            out: self.out.clone(),
        };
        anyhow::ensure!(s.employers >= 1, "--employers must be at least 1");
        anyhow::ensure!(s.employees >= 1, "--employees must be at least 1");
        anyhow::ensure!(s.runs >= 1, "--runs must be at least 1");
        anyhow::ensure!(s.parallel >= 1, "--parallel must be at least 1");
        anyhow::ensure!(
            s.concurrent_employers >= 1,
            "--concurrent-employers must be at least 1"
        );
        anyhow::ensure!(s.apply_rows >= 1, "--apply-rows must be at least 1");
        anyhow::ensure!(s.timeout_secs >= 1, "--timeout-secs must be at least 1");
        Ok(s)
    }
}

/// The command line as typed, for the report.
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut line = String::from("cargo run --release -p arbosync-e2e --bin arbosync-bench");
    if !args.is_empty() {
        line.push_str(" --");
        for a in args {
            line.push(' ');
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                line.push_str(&format!("{a:?}"));
            } else {
                line.push_str(&a);
            }
        }
    }
    line
}
