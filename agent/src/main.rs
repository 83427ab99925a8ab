//! `arbosync-agent`: the service binary. Parses the command line (see `interfaces.md`) and hands
//! each command to the library; errors are reported here, at the edge, with `anyhow`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use arbosync_agent::cli;

#[derive(Parser)]
#[command(
    name = "arbosync-agent",
    version,
    about = "arbosync: Loket → arbodienst database sync agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration file and print its problems (exit 0 when valid, 1 otherwise).
    CheckConfig {
        #[arg(long, env = "ARBOSYNC_CONFIG")]
        config: Option<PathBuf>,
    },
    /// One pass over the active employers (or one), then exit: 0 all ok, 1 any failed or partial.
    Sync {
        /// Run once and exit (the only mode of this command; the service is `run`).
        #[arg(long)]
        once: bool,
        #[arg(long, env = "ARBOSYNC_CONFIG")]
        config: Option<PathBuf>,
        /// Only this employer (its Loket UUID).
        #[arg(long)]
        employer: Option<String>,
        /// Full reconciliation: fetch everything and soft-delete what disappeared at the source.
        #[arg(long)]
        full: bool,
        /// Print one JSON document instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Store credentials for a connection: interactive consent, or a refresh token from stdin.
    Connect {
        /// The connection's `name` in the configuration.
        name: String,
        #[arg(long, env = "ARBOSYNC_CONFIG")]
        config: Option<PathBuf>,
        /// Read a refresh token from standard input instead of the interactive consent.
        #[arg(long)]
        refresh_token_stdin: bool,
    },
    /// Delete every row of an employer from the database, and its local state.
    Purge {
        #[arg(long)]
        employer: String,
        #[arg(long, env = "ARBOSYNC_CONFIG")]
        config: Option<PathBuf>,
        /// Confirm; without it nothing is deleted.
        #[arg(long)]
        yes: bool,
    },
    /// The newcomer's tour: a simulated Loket synced into ./arbosync-demo/arbodienst.db.
    Demo {
        /// Where the demo keeps its database, state and config.
        #[arg(long, default_value = "arbosync-demo")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::CheckConfig { config } => cli::check_config(config).await,
            Command::Sync {
                once,
                config,
                employer,
                full,
                json,
            } => {
                if !once {
                    anyhow::bail!(
                        "`sync` runs one pass and exits: pass --once (the service is `run`)"
                    );
                }
                cli::sync_once(config, employer, full, json).await
            }
            Command::Connect {
                name,
                config,
                refresh_token_stdin,
            } => cli::connect(config, &name, refresh_token_stdin).await,
            Command::Purge {
                employer,
                config,
                yes,
            } => cli::purge(config, &employer, yes).await,
            Command::Demo { dir } => cli::demo(dir).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
