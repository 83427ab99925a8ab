//! `arbosync-bench`: regenerates the performance table of issue 7 (B1–B6) with one command and
//! prints it as markdown.
//!
//! ```text
//! cargo build --release -p arbosync-agent
//! cargo run --release -p arbosync-e2e --bin arbosync-bench -- \
//!     [--employers 100 --employees 100 --latency-ms 20 --runs 3] [--quick]
//! ```
//!
//! It drives the real `arbosync-agent` binary (found next to this executable) against the
//! in-process Loket simulator and a real database. `--quick` is the CI smoke test: a tiny
//! configuration that only checks that every run succeeded; targets are reported, never asserted.
//! The modules under `src/bench/` hold the parts; this file only wires them.

#[path = "../bench/mod.rs"]
mod bench;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = bench::args::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arbosync-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arbosync-bench: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}
