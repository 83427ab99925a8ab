//! The wire protocol between `arbosync-agent` and the `arbosync` dashboard/CLI.
//!
//! Plain serde types, no I/O. These types are an API: change them compatibly and bump
//! [`PROTOCOL_VERSION`] when an old peer could no longer understand a new one.

/// Version of the control-socket protocol. Checked in the `Hello` handshake.
pub const PROTOCOL_VERSION: u32 = 1;
