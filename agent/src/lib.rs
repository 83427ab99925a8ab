//! arbosync-agent: the sync service library. See ARCHITECTURE.md for the map.

pub mod loket;
