//! arbosync-agent: the sync service library. See ARCHITECTURE.md for the map.

pub mod config;
pub mod loket;
pub mod secrets;
pub mod state;
