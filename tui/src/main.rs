//! `arbosync`: the operator's dashboard (no subcommand) and scripting CLI, talking to the
//! agent's control socket. See `interfaces.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use uuid::Uuid;

use arbosync_tui::{cli, dashboard};

/// The socket when neither `--socket` nor `$ARBOSYNC_SOCKET` says otherwise.
const DEFAULT_SOCKET: &str = "/run/arbosync/agent.sock";

#[derive(Parser)]
#[command(
    name = "arbosync",
    version,
    about = "arbosync dashboard and control CLI"
)]
struct Cli {
    /// The agent's control socket.
    #[arg(long, global = true, env = "ARBOSYNC_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Agent version, employers with status, last and next run, errors.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Run an employer (or all active ones) now, ahead of the schedule.
    Sync {
        /// The employer's Loket UUID.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        employer: Option<Uuid>,
        #[arg(long)]
        all: bool,
        /// Full reconciliation instead of an incremental run.
        #[arg(long)]
        full: bool,
        /// Wait for the run(s) to end; exit 0 when all were ok, 1 otherwise.
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Stop an employer's schedule (kept across restarts).
    Pause { employer: Uuid },
    /// Restart an employer's schedule.
    Resume { employer: Uuid },
    /// Recent errors and the retry queue.
    Errors {
        employer: Option<Uuid>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_UNREACHABLE);
        }
    };
    runtime.block_on(async move {
        let socket = args.socket;
        let result = match args.command {
            None => {
                return match dashboard::run(socket).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        ExitCode::from(1)
                    }
                };
            }
            Some(Command::Status { json }) => cli::status(&socket, json).await,
            Some(Command::Sync {
                employer,
                all: _,
                full,
                wait,
                json,
            }) => cli::sync(&socket, employer, full, wait, json).await,
            Some(Command::Pause { employer }) => cli::pause(&socket, employer, true).await,
            Some(Command::Resume { employer }) => cli::pause(&socket, employer, false).await,
            Some(Command::Errors { employer, json }) => cli::errors(&socket, employer, json).await,
        };
        result.unwrap_or_else(|e| cli::report(&e))
    })
}
