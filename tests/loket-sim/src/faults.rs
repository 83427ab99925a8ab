//! Injected faults (`POST /_sim/faults`): which requests they hit and the broken
//! responses they produce.
//!
//! A fault matches a request when its `path_contains` is a substring of the request path;
//! without `path_contains` it matches every `/v2` path (never `/oauth`). The first
//! matching fault (in creation order) is used, and `times` counts down (0 = until
//! cleared). Kinds:
//! * `latency`: sleep `latency_ms` then serve normally;
//! * `status`: answer `status` (default 503); 429 carries `Retry-After` when
//!   `retry_after_secs` is given; bodies are `{"message": ...}` JSON;
//! * `drop`: the response head is followed by a failing body, so the connection is
//!   aborted and the client sees a transport error instead of a response body;
//! * `malformed`: 200 with a body that is not JSON;
//! * `truncated`: the normal response with its body cut in half (a JSON prefix);
//! * `expire_tokens`: invalidate every access token; without `path_contains` this
//!   happens immediately when the fault is posted, with it when a matching request
//!   arrives (that request then gets 401).

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::state::{Shared, lock};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Latency,
    Status,
    Drop,
    Malformed,
    Truncated,
    ExpireTokens,
}

/// A fault as posted to `/_sim/faults`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub kind: FaultKind,
    #[serde(default)]
    pub path_contains: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// How many requests it hits (default 1; 0 = until cleared).
    #[serde(default)]
    pub times: Option<u32>,
}

impl FaultSpec {
    pub fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            path_contains: None,
            status: None,
            retry_after_secs: None,
            latency_ms: None,
            times: None,
        }
    }
}

struct ActiveFault {
    spec: FaultSpec,
    /// `None` = until cleared.
    remaining: Option<u32>,
}

#[derive(Default)]
pub struct FaultBook {
    next_id: u64,
    active: Vec<ActiveFault>,
}

impl FaultBook {
    /// Register a fault; returns its id. Fails on an invalid status code.
    pub fn add(&mut self, spec: FaultSpec) -> Result<u64, String> {
        if spec.kind == FaultKind::Status {
            let code = spec.status.unwrap_or(503);
            if StatusCode::from_u16(code).is_err() || code < 200 {
                return Err(format!("invalid status {code}"));
            }
        }
        self.next_id += 1;
        let remaining = match spec.times.unwrap_or(1) {
            0 => None,
            n => Some(n),
        };
        self.active.push(ActiveFault { spec, remaining });
        Ok(self.next_id)
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// Take the first fault matching `path` (counting it down).
    pub fn take(&mut self, path: &str, is_v2: bool) -> Option<FaultSpec> {
        let idx = self
            .active
            .iter()
            .position(|f| match &f.spec.path_contains {
                Some(s) => path.contains(s.as_str()),
                None => is_v2,
            })?;
        let f = &mut self.active[idx];
        let spec = f.spec.clone();
        if let Some(n) = f.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.active.remove(idx);
            }
        }
        Some(spec)
    }
}

/// The response for a `status` fault.
pub fn status_response(spec: &FaultSpec) -> Response {
    let status =
        StatusCode::from_u16(spec.status.unwrap_or(503)).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let message = match status.as_u16() {
        401 => "Authorization has been denied for this request.".to_string(),
        403 => "Insufficient rights for this request, reason \"simulated\"".to_string(),
        429 => "Too many requests, please try again later.".to_string(),
        s if s >= 500 => "An error has occurred.".to_string(),
        _ => format!("Simulated status {}", status.as_u16()),
    };
    let mut resp = (
        status,
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response();
    if let Some(secs) = spec.retry_after_secs
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// A response whose body fails immediately: hyper aborts the connection.
pub fn drop_response() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "simulated connection drop",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// 200 with a body that is not JSON.
pub fn malformed_response() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(
            "{\"_embedded\": [ {\"id\": <html>Service Unavailable</html>",
        ))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The first half of a JSON body, as a complete 200 response.
pub fn truncated_response(status: StatusCode, full: &[u8]) -> Response {
    let cut = &full[..full.len() / 2];
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(cut.to_vec()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// What to do with a request after consulting the fault book.
pub enum Gate {
    /// Serve normally; `truncate` = cut the body in half afterwards.
    Continue { truncate: bool },
    /// Answer with this response instead.
    Respond(Response),
}

/// Consult the fault book for `path` and apply latency / token expiry side effects.
pub async fn gate(sh: &Shared, path: &str, is_v2: bool) -> Gate {
    let spec = lock(&sh.faults).take(path, is_v2);
    let Some(spec) = spec else {
        return Gate::Continue { truncate: false };
    };
    match spec.kind {
        FaultKind::Latency => {
            tokio::time::sleep(Duration::from_millis(spec.latency_ms.unwrap_or(1000))).await;
            Gate::Continue { truncate: false }
        }
        FaultKind::Status => Gate::Respond(status_response(&spec)),
        FaultKind::Drop => Gate::Respond(drop_response()),
        FaultKind::Malformed => Gate::Respond(malformed_response()),
        FaultKind::Truncated => Gate::Continue { truncate: true },
        FaultKind::ExpireTokens => {
            lock(&sh.auth).expire_access_tokens();
            Gate::Continue { truncate: false }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_and_countdown() {
        let mut b = FaultBook::default();
        let mut s = FaultSpec::new(FaultKind::Drop);
        s.path_contains = Some("/departments".into());
        s.times = Some(2);
        b.add(s).unwrap();
        assert!(b.take("/v2/providers/employers", true).is_none());
        assert!(b.take("/v2/x/departments", true).is_some());
        assert!(b.take("/v2/x/departments", true).is_some());
        assert!(b.take("/v2/x/departments", true).is_none());
        b.add(FaultSpec::new(FaultKind::Malformed)).unwrap();
        assert!(b.take("/oauth/token", false).is_none());
        assert!(b.take("/v2/anything", true).is_some());
        let mut bad = FaultSpec::new(FaultKind::Status);
        bad.status = Some(42);
        assert!(b.add(bad).is_err());
    }
}
