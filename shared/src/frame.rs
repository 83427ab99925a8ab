//! Framing: `tokio_util` length-delimited frames (4-byte big-endian length) carrying one JSON
//! document each, with a hard size limit on both sides.

use serde::{Serialize, de::DeserializeOwned};
use tokio_util::codec::LengthDelimitedCodec;

/// Largest frame either side accepts. A snapshot of 1,000 employers is well under this.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// The codec both sides use.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is over the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not valid JSON, or not a message this protocol version knows. The text names the
    /// position and the expected shape, never the frame's content.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Decodes one frame's payload.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    if payload.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(payload.len()));
    }
    serde_json::from_slice(payload).map_err(|e| {
        // serde_json's messages can quote a piece of the input (e.g. an unknown variant name);
        // keep only the category and position so a frame's content never reaches a log.
        let category = match e.classify() {
            serde_json::error::Category::Io => "i/o error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "unexpected message shape",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        FrameError::Malformed(format!(
            "{category} at line {} column {}",
            e.line(),
            e.column()
        ))
    })
}

/// Encodes one message as a frame payload.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let bytes = serde_json::to_vec(message).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}
