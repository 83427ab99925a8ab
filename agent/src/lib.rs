//! arbosync-agent: the sync service library. See ARCHITECTURE.md for the map.

pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod loket;
pub mod records;
pub mod secrets;
pub mod sink;
pub mod state;
pub mod sync;
