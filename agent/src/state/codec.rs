//! On-disk encoding of state values and keys.
//!
//! Values are JSON objects carrying a `v` (value format version) field next to their own fields,
//! so a future format can be recognised. Keys start with the 16 bytes of the employer UUID, and
//! numbers in keys are big-endian so that sled's byte order is numeric order.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Format version of every stored value.
pub(crate) const VALUE_VERSION: u32 = 1;

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    v: u32,
    #[serde(flatten)]
    value: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn<T> {
    v: u32,
    #[serde(flatten)]
    value: T,
}

/// Why a stored value could not be read. Never contains the value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    Malformed(String),
    Version(u32),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(m) => write!(f, "malformed value ({m})"),
            DecodeError::Version(v) => write!(
                f,
                "unsupported value version {v} (expected {VALUE_VERSION})"
            ),
        }
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&EnvelopeOut {
        v: VALUE_VERSION,
        value,
    })
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let env: EnvelopeIn<T> =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(describe(&e)))?;
    if env.v != VALUE_VERSION {
        return Err(DecodeError::Version(env.v));
    }
    Ok(env.value)
}

/// A description of a JSON error without the offending data: category and position only
/// (serde_json's own message may quote the value).
fn describe(e: &serde_json::Error) -> String {
    let category = match e.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "truncated",
    };
    format!("{category} at line {} column {}", e.line(), e.column())
}

/// Key of a per-employer entry (cursor, status).
pub(crate) fn employer_key(employer: Uuid) -> [u8; 16] {
    *employer.as_bytes()
}

pub(crate) fn employer_from_key(key: &[u8]) -> Option<Uuid> {
    let bytes: [u8; 16] = key.get(..16)?.try_into().ok()?;
    Some(Uuid::from_bytes(bytes))
}

/// `employer(16) | entity | 0x00 | record_id`. `None` if entity or record id is empty or holds
/// a NUL byte.
pub(crate) fn retry_key(employer: Uuid, entity: &str, record_id: &str) -> Option<Vec<u8>> {
    if entity.is_empty()
        || record_id.is_empty()
        || entity.contains('\0')
        || record_id.contains('\0')
    {
        return None;
    }
    let mut key = Vec::with_capacity(16 + entity.len() + 1 + record_id.len());
    key.extend_from_slice(employer.as_bytes());
    key.extend_from_slice(entity.as_bytes());
    key.push(0);
    key.extend_from_slice(record_id.as_bytes());
    Some(key)
}

/// `employer(16) | started_at micros (order-preserving u64, big-endian) | run_id(16)`.
pub(crate) fn run_key(employer: Uuid, started_at: DateTime<Utc>, run_id: Uuid) -> Vec<u8> {
    let micros = started_at.timestamp_micros();
    // Flipping the sign bit maps i64 order onto u64 order.
    let ordered = (micros as u64) ^ (1u64 << 63);
    let mut key = Vec::with_capacity(40);
    key.extend_from_slice(employer.as_bytes());
    key.extend_from_slice(&ordered.to_be_bytes());
    key.extend_from_slice(run_id.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn run_keys_sort_by_time() {
        let e = Uuid::from_u128(1);
        let early = Utc.with_ymd_and_hms(1969, 1, 1, 0, 0, 0).single().unwrap();
        let mid = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap();
        let late = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 1).single().unwrap();
        let a = run_key(e, early, Uuid::from_u128(9));
        let b = run_key(e, mid, Uuid::from_u128(1));
        let c = run_key(e, late, Uuid::from_u128(0));
        assert!(a < b && b < c);
    }

    #[test]
    fn retry_keys_reject_separators() {
        let e = Uuid::from_u128(1);
        assert!(retry_key(e, "employee", "x").is_some());
        assert!(retry_key(e, "", "x").is_none());
        assert!(retry_key(e, "a\0b", "x").is_none());
        assert!(retry_key(e, "a", "").is_none());
    }

    #[test]
    fn values_carry_a_version() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct X {
            a: i64,
        }
        let bytes = encode(&X { a: 5 }).unwrap();
        assert_eq!(bytes, br#"{"v":1,"a":5}"#);
        assert_eq!(decode::<X>(&bytes), Ok(X { a: 5 }));
        assert_eq!(
            decode::<X>(br#"{"v":2,"a":5}"#),
            Err(DecodeError::Version(2))
        );
        assert!(matches!(
            decode::<X>(b"\x00garbage"),
            Err(DecodeError::Malformed(_))
        ));
    }
}
