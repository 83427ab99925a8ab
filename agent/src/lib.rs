//! arbosync-agent: the sync service library. See ARCHITECTURE.md for the map.

pub mod cli;
pub mod config;
pub mod consent;
pub mod control;
#[cfg(feature = "demo")]
pub mod demo;
pub mod diskspace;
pub mod logging;
pub mod loket;
pub mod records;
pub mod secrets;
pub mod service;
pub mod sink;
pub mod state;
pub mod sync;
pub mod update;
