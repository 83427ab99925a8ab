//! The wire protocol between `arbosync-agent` and the `arbosync` dashboard/CLI.
//!
//! Plain serde types and the frame codec, no sockets. These types are an API: change them
//! compatibly and bump [`PROTOCOL_VERSION`] when an old peer could no longer understand a new one.
//! They are deliberately separate from the agent's internal types: the agent converts.
//!
//! A session: the client sends [`ClientFrame::Hello`]; the agent answers [`ServerFrame::Welcome`]
//! (or [`ServerFrame::Refused`] and closes). Then the client sends [`ClientFrame::Request`]s with
//! ids, and each gets one [`ServerFrame::Response`] echoing the id. After [`Request::Subscribe`]
//! the response carries a [`Snapshot`] and [`ServerFrame::Event`]s follow as things happen.

pub mod frame;
pub mod message;
pub mod view;

pub use frame::{FrameError, MAX_FRAME_BYTES, codec, decode, encode};
pub use message::*;
pub use view::*;

/// Version of the control-socket protocol. Checked in the `Hello` handshake.
pub const PROTOCOL_VERSION: u32 = 1;
