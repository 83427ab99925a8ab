//! `loket-sim`: serve the simulator and print its connection details as one JSON line.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use loket_sim::SimConfig;
use loket_sim::chrono::NaiveDate;

/// A simulated Loket REST API (data, OAuth and test-only `/_sim` endpoints).
#[derive(Parser)]
#[command(name = "loket-sim", version)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 3)]
    employers: usize,
    #[arg(long, default_value_t = 20)]
    employees_per_employer: usize,
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, default_value_t = 250)]
    max_page_size: usize,
    #[arg(long, default_value_t = 3599)]
    access_token_ttl_secs: u64,
    #[arg(long, default_value = "arbosync-sim")]
    client_id: String,
    /// Require this client secret at the token endpoint.
    #[arg(long, env = "LOKET_SIM_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// The generator's "today" (YYYY-MM-DD); default today (UTC).
    #[arg(long)]
    today: Option<NaiveDate>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let sim = loket_sim::start(SimConfig {
        listen: a.listen,
        seed: a.seed,
        employers: a.employers,
        employees_per_employer: a.employees_per_employer,
        latency_ms: a.latency_ms,
        max_page_size: a.max_page_size,
        access_token_ttl_secs: a.access_token_ttl_secs,
        client_id: a.client_id,
        client_secret: a.client_secret,
        today: a.today,
    })
    .await?;
    let line = serde_json::json!({
        "api_url": sim.api_url,
        "oauth_url": sim.oauth_url,
        "client_id": sim.client_id,
        "refresh_token": sim.refresh_token,
        "employer_ids": sim.employer_ids,
        "base_url": sim.base_url,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to stdout")?;
    out.flush().context("flushing stdout")?;
    drop(out);
    wait_for_signal().await?;
    sim.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
}
