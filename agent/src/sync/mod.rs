//! The sync: one pass over employers, each run planned from Loket's version numbers, fetched,
//! filtered by the employer's options, diffed by content hash and applied in transactions, with
//! the cursor moved only after the commit.
//!
//! - [`map`]: Loket wire models → normalized records (privacy filter included).
//! - [`run`]: one employer's run.
//! - [`calendar`]: the absence calendar window, which people's absences may have changed.
//! - [`connection`]: a Loket client per configured connection, tokens in the secret store.
//! - [`pass`]: one pass over several employers (used by `sync --once`, the demo and the service).

pub mod calendar;
pub mod connection;
pub mod map;
pub mod pass;
pub mod run;

pub use pass::{PassOptions, sync_pass};
pub use run::{RunOutcome, RunRequest, SyncContext, run_employer};
