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
    /// The service: scheduler, control socket and updater; stops cleanly on SIGTERM/SIGINT.
    Run {
        #[arg(long, env = "ARBOSYNC_CONFIG")]
        config: Option<PathBuf>,
    },
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
        /// The redirect URI registered with the Loket client. A loopback http URI gets a
        /// listener; otherwise paste the URL the browser ends on.
        #[arg(long, conflicts_with = "refresh_token_stdin")]
        redirect_uri: Option<String>,
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
    /// The release channel by hand: check, apply, roll back.
    Update {
        #[command(subcommand)]
        action: UpdateAction,
    },
    /// The newcomer's tour: a simulated Loket synced into ./arbosync-demo/arbodienst.db.
    Demo {
        /// Where the demo keeps its database, state and config.
        #[arg(long, default_value = "arbosync-demo")]
        dir: PathBuf,
        /// Print the scripted tour instead of opening the dashboard (the default without a
        /// terminal).
        #[arg(long)]
        tour: bool,
    },
}

#[derive(Subcommand)]
enum UpdateAction {
    /// Ask the channel; print the outcome and the updater's state (`--json` for scripts).
    Check {
        #[arg(long, env = "ARBOSYNC_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Check, download, verify and install a newer release; the service restarts into it.
    Apply {
        #[arg(long, env = "ARBOSYNC_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Put the previous binaries back and keep the current version from coming back.
    Rollback {
        #[arg(long, env = "ARBOSYNC_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, default_value = "rolled back by hand")]
        reason: String,
    },
    /// Root side of a package install (run by arbosync-agent-update.service): verify the staged
    /// release again and swap it into place.
    InstallStaged {
        #[arg(long, default_value = "/var/lib/arbosync")]
        state_dir: PathBuf,
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
            Command::Run { config } => arbosync_agent::service::run(&cli::config_path(config))
                .await
                .map(|exit| match exit {
                    arbosync_agent::service::ServiceExit::Stopped => ExitCode::SUCCESS,
                    // systemd restarts on this code (RestartForceExitStatus) into the new binary.
                    arbosync_agent::service::ServiceExit::RestartForUpdate => {
                        ExitCode::from(arbosync_agent::update::EXIT_CODE_RESTART)
                    }
                }),
            Command::Update { action } => match action {
                UpdateAction::Check { config, json } => cli::update_check(config, json).await,
                UpdateAction::Apply { config } => cli::update_apply(config).await,
                UpdateAction::Rollback { config, reason } => {
                    cli::update_rollback(config, &reason).await
                }
                UpdateAction::InstallStaged { state_dir } => {
                    cli::update_install_staged(&state_dir).await
                }
            },
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
                redirect_uri,
            } => cli::connect(config, &name, refresh_token_stdin, redirect_uri).await,
            Command::Purge {
                employer,
                config,
                yes,
            } => cli::purge(config, &employer, yes).await,
            Command::Demo { dir, tour } => cli::demo(dir, tour).await,
        }
    });
    // A blocking read of standard input (the consent's paste prompt) may still be waiting;
    // everything the command awaited is done, so do not wait for it forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
