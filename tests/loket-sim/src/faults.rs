//! Injected faults (`POST /_sim/faults`): which requests they hit and the broken
//! responses they produce, and the arrival log of `/v2` requests (with timestamps and the
//! status answered) that tests use to measure waits between requests.
//!
//! A fault matches a request when its `path_contains` is a substring of the request path
//! and, when given, its `query_contains` a substring of the raw query string (for example
//! `pageNumber=2`); without `path_contains` it matches every `/v2` path (never `/oauth`).
//! The first matching fault (in creation order) is used, and `times` counts down (0 = until
//! cleared); when it is a `patch`, every other matching `patch` is applied too. Kinds:
//! * `latency`: sleep `latency_ms` then serve normally (from the dataset as it is when the
//!   sleep ends, so a test can change the data while a page request is held);
//! * `status`: answer `status` (default 503), with `Retry-After` when `retry_after_secs` is
//!   given: delta-seconds, or an HTTP date that many seconds ahead when
//!   `retry_after_http_date` is true; bodies are `{"message": ...}` JSON;
//! * `drop`: the response head is followed by a failing body, so the connection is
//!   aborted and the client sees a transport error instead of a response body;
//! * `malformed`: 200 with a body that is not JSON;
//! * `truncated`: the normal response with its body cut in half (a JSON prefix);
//! * `expire_tokens`: invalidate every access token; without `path_contains` this
//!   happens immediately when the fault is posted, with it when a matching request
//!   arrives (that request then gets 401);
//! * `patch` (schema drift): the normal response with one field of the list items (or
//!   of the single `content`) changed: `field` is a dotted path inside the item (for
//!   example `personalDetails.lastName`), `value` the new JSON value (absent or `null`:
//!   the field is removed); only the item whose `id` equals `item_id` when given;
//! * `body`: answer `status` (default 200) with `content_type` (default JSON) and the raw
//!   `body` (default empty): an HTML "200" from a proxy, a JSON `null` page...;
//! * `repeat_item`: the normal list page with one item (`item_id`, default the first)
//!   repeated right after itself and `totalSize` one higher, as a server whose query
//!   joins a row twice would answer (meant for lists that fit on one page).
//!
//! The kinds `patch`, `body` and `repeat_item`, and every fault with `query_contains`, are
//! applied by [`routed_layer`] (a middleware around the `/v2` routes, which sees the whole
//! request and response); the others by [`gate`] inside the `/v2` handler.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::state::{REQUEST_LOG_CAPACITY, Shared, lock};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Latency,
    Status,
    Drop,
    Malformed,
    Truncated,
    ExpireTokens,
    Patch,
    Body,
    RepeatItem,
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
    /// Also required in the raw query string (for example `pageNumber=2`).
    #[serde(default)]
    pub query_contains: Option<String>,
    /// `status`: send `Retry-After` as an HTTP date instead of delta-seconds.
    #[serde(default)]
    pub retry_after_http_date: bool,
    /// `patch`, `repeat_item`: the item (by its `id`) to change; default every item
    /// (`patch`) or the first (`repeat_item`).
    #[serde(default)]
    pub item_id: Option<String>,
    /// `patch`: a dotted path inside the item.
    #[serde(default)]
    pub field: Option<String>,
    /// `patch`: the new value; absent or `null` removes the field.
    #[serde(default)]
    pub value: Option<Value>,
    /// `body`: the raw response body.
    #[serde(default)]
    pub body: Option<String>,
    /// `body`: the `Content-Type` (default `application/json; charset=utf-8`).
    #[serde(default)]
    pub content_type: Option<String>,
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
            query_contains: None,
            retry_after_http_date: false,
            item_id: None,
            field: None,
            value: None,
            body: None,
            content_type: None,
        }
    }

    /// Whether [`routed_layer`] (rather than [`gate`]) applies this fault.
    fn is_routed(&self) -> bool {
        self.query_contains.is_some()
            || matches!(
                self.kind,
                FaultKind::Patch | FaultKind::Body | FaultKind::RepeatItem
            )
    }

    fn matches(&self, path: &str, query: &str, is_v2: bool) -> bool {
        let path_ok = match &self.path_contains {
            Some(s) => path.contains(s.as_str()),
            None => is_v2,
        };
        path_ok
            && self
                .query_contains
                .as_ref()
                .is_none_or(|q| query.contains(q.as_str()))
    }
}

/// One `/v2` request as the fault layer saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub path: String,
    /// The raw query string (without `?`), empty if none.
    pub query: String,
    /// The status answered (0 while the request is still being served; a `drop` fault
    /// answers 200 and then breaks the body).
    pub status: u16,
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
    /// Faults applied by [`routed_layer`].
    routed: Vec<ActiveFault>,
    arrivals: VecDeque<Arrival>,
}

/// Takes the first fault of `list` that `matches`, counting it down.
fn take_from(
    list: &mut Vec<ActiveFault>,
    matches: impl Fn(&FaultSpec) -> bool,
) -> Option<FaultSpec> {
    let idx = list.iter().position(|f| matches(&f.spec))?;
    let f = &mut list[idx];
    let spec = f.spec.clone();
    if let Some(n) = f.remaining.as_mut() {
        *n -= 1;
        if *n == 0 {
            list.remove(idx);
        }
    }
    Some(spec)
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
        if spec.kind == FaultKind::Patch && spec.field.as_deref().is_none_or(str::is_empty) {
            return Err("a patch fault needs a field".into());
        }
        self.next_id += 1;
        let remaining = match spec.times.unwrap_or(1) {
            0 => None,
            n => Some(n),
        };
        if spec.is_routed() {
            self.routed.push(ActiveFault { spec, remaining });
        } else {
            self.active.push(ActiveFault { spec, remaining });
        }
        Ok(self.next_id)
    }

    /// Removes every fault (the arrival log stays).
    pub fn clear(&mut self) {
        self.active.clear();
        self.routed.clear();
    }

    /// Take the first [`gate`] fault matching `path` (counting it down).
    pub fn take(&mut self, path: &str, is_v2: bool) -> Option<FaultSpec> {
        take_from(&mut self.active, |s| s.matches(path, "", is_v2))
    }

    /// Take the first [`routed_layer`] fault matching `path` and `query` (counting it down);
    /// when it is a `patch`, also every other matching `patch`.
    pub fn take_routed(&mut self, path: &str, query: &str) -> Vec<FaultSpec> {
        let matching: Vec<usize> = self
            .routed
            .iter()
            .enumerate()
            .filter(|(_, f)| f.spec.matches(path, query, true))
            .map(|(i, _)| i)
            .collect();
        let Some(&first) = matching.first() else {
            return Vec::new();
        };
        let chosen: Vec<usize> = if self.routed[first].spec.kind == FaultKind::Patch {
            matching
                .into_iter()
                .filter(|i| self.routed[*i].spec.kind == FaultKind::Patch)
                .collect()
        } else {
            vec![first]
        };
        let specs = chosen
            .iter()
            .map(|i| self.routed[*i].spec.clone())
            .collect();
        // Count down, removing from the back so the indices stay valid.
        for i in chosen.into_iter().rev() {
            if let Some(n) = self.routed[i].remaining.as_mut() {
                *n -= 1;
                if *n == 0 {
                    self.routed.remove(i);
                }
            }
        }
        specs
    }

    fn arrived(&mut self, a: Arrival) {
        if self.arrivals.len() >= REQUEST_LOG_CAPACITY {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(a);
    }

    /// Fills in the status of the newest unanswered arrival with these values.
    fn answered(&mut self, at_ms: u64, path: &str, query: &str, status: u16) {
        if let Some(a) = self
            .arrivals
            .iter_mut()
            .rev()
            .find(|a| a.status == 0 && a.at_ms == at_ms && a.path == path && a.query == query)
        {
            a.status = status;
        }
    }

    /// The last `/v2` requests (at most [`REQUEST_LOG_CAPACITY`]), oldest first.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.iter().cloned().collect()
    }

    pub fn clear_arrivals(&mut self) {
        self.arrivals.clear();
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
    if let Some(secs) = spec.retry_after_secs {
        let value = if spec.retry_after_http_date {
            let at = chrono::Utc::now()
                + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2));
            at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
        } else {
            secs.to_string()
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
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
        // Routed kinds never reach the gate's book (see `FaultBook::add`).
        FaultKind::Patch | FaultKind::Body | FaultKind::RepeatItem => {
            Gate::Continue { truncate: false }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The middleware around the `/v2` routes: records the arrival of every request and applies
/// the routed faults (see the module documentation).
pub async fn routed_layer(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let at_ms = now_ms();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let spec = {
        let mut book = lock(&sh.faults);
        book.arrived(Arrival {
            at_ms,
            path: path.clone(),
            query: query.clone(),
            status: 0,
        });
        book.take_routed(&path, &query)
    };
    let resp = if spec.is_empty() {
        next.run(req).await
    } else {
        apply_routed(&sh, spec, req, next).await
    };
    lock(&sh.faults).answered(at_ms, &path, &query, resp.status().as_u16());
    resp
}

async fn apply_routed(sh: &Shared, specs: Vec<FaultSpec>, req: Request, next: Next) -> Response {
    let Some(spec) = specs.first().cloned() else {
        return next.run(req).await;
    };
    match spec.kind {
        FaultKind::Latency => {
            tokio::time::sleep(Duration::from_millis(spec.latency_ms.unwrap_or(1000))).await;
            next.run(req).await
        }
        FaultKind::Status => status_response(&spec),
        FaultKind::Drop => drop_response(),
        FaultKind::Malformed => malformed_response(),
        FaultKind::ExpireTokens => {
            lock(&sh.auth).expire_access_tokens();
            next.run(req).await
        }
        FaultKind::Body => {
            let status = StatusCode::from_u16(spec.status.unwrap_or(200)).unwrap_or(StatusCode::OK);
            Response::builder()
                .status(status)
                .header(
                    header::CONTENT_TYPE,
                    spec.content_type
                        .as_deref()
                        .unwrap_or("application/json; charset=utf-8"),
                )
                .body(Body::from(spec.body.clone().unwrap_or_default()))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        FaultKind::Truncated | FaultKind::Patch | FaultKind::RepeatItem => {
            let resp = next.run(req).await;
            let (parts, body) = resp.into_parts();
            let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
            if spec.kind == FaultKind::Truncated {
                return truncated_response(parts.status, &bytes);
            }
            if !parts.status.is_success() {
                return Response::from_parts(parts, Body::from(bytes));
            }
            let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) else {
                return Response::from_parts(parts, Body::from(bytes));
            };
            if spec.kind == FaultKind::Patch {
                for p in &specs {
                    patch_items(&mut doc, p);
                }
            } else {
                repeat_item(&mut doc, spec.item_id.as_deref());
            }
            let mut resp = Response::from_parts(parts, Body::from(doc.to_string()));
            // The length changed; the server computes it again from the new body.
            resp.headers_mut().remove(header::CONTENT_LENGTH);
            resp.headers_mut().remove(header::ETAG);
            resp
        }
    }
}

fn item_matches(item: &Value, id: Option<&str>) -> bool {
    id.is_none_or(|id| {
        item.get("id")
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case(id))
    })
}

/// Applies a `patch` fault to the list items (`_embedded`) or the single `content`.
fn patch_items(doc: &mut Value, spec: &FaultSpec) {
    let Some(field) = spec.field.as_deref() else {
        return;
    };
    let items: Vec<&mut Value> = match doc {
        Value::Object(m) => match (m.contains_key("_embedded"), m.contains_key("content")) {
            (true, _) => m
                .get_mut("_embedded")
                .and_then(Value::as_array_mut)
                .map(|a| a.iter_mut().collect())
                .unwrap_or_default(),
            (false, true) => m.get_mut("content").into_iter().collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    for item in items {
        if item_matches(item, spec.item_id.as_deref()) {
            set_field(item, field, spec.value.clone());
        }
    }
}

/// Sets (or with `None`/`null` removes) the dotted `path` inside `item`, creating objects on
/// the way when setting.
fn set_field(item: &mut Value, path: &str, value: Option<Value>) {
    let value = value.filter(|v| !v.is_null());
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return;
    };
    let mut at = item;
    for p in parts {
        let Value::Object(m) = at else {
            return;
        };
        if value.is_none() && !m.contains_key(p) {
            return;
        }
        let next = m
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
        if next.is_null() {
            *next = Value::Object(Default::default());
        }
        at = next;
    }
    if let Value::Object(m) = at {
        match value {
            Some(v) => {
                m.insert(last.to_string(), v);
            }
            None => {
                m.remove(last);
            }
        }
    }
}

/// Applies a `repeat_item` fault to a list page.
fn repeat_item(doc: &mut Value, id: Option<&str>) {
    let Some(items) = doc.get_mut("_embedded").and_then(Value::as_array_mut) else {
        return;
    };
    let Some(pos) = items.iter().position(|i| item_matches(i, id)) else {
        return;
    };
    let copy = items[pos].clone();
    items.insert(pos + 1, copy);
    if let Some(total) = doc.get("totalSize").and_then(Value::as_u64) {
        doc["totalSize"] = Value::from(total + 1);
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
        assert!(b.add(FaultSpec::new(FaultKind::Patch)).is_err());
    }

    #[test]
    fn routed_faults_match_the_query_and_stay_apart() {
        let mut b = FaultBook::default();
        let mut s = FaultSpec::new(FaultKind::Latency);
        s.path_contains = Some("/employees".into());
        s.query_contains = Some("pageNumber=2".into());
        b.add(s).unwrap();
        assert!(
            b.take("/v2/x/employees", true).is_none(),
            "not a gate fault"
        );
        assert!(b.take_routed("/v2/x/employees", "pageNumber=1").is_empty());
        assert_eq!(
            b.take_routed("/v2/x/employees", "pageSize=7&pageNumber=2")
                .len(),
            1
        );
        assert!(b.take_routed("/v2/x/employees", "pageNumber=2").is_empty());
        let mut p = FaultSpec::new(FaultKind::Patch);
        p.field = Some("id".into());
        b.add(p.clone()).unwrap();
        p.times = Some(0);
        b.add(p.clone()).unwrap();
        p.path_contains = Some("/other".into());
        b.add(p).unwrap();
        assert_eq!(
            b.take_routed("/v2/anything", "").len(),
            2,
            "every matching patch"
        );
        assert_eq!(
            b.take_routed("/v2/anything", "").len(),
            1,
            "the first one ran out"
        );
        assert_eq!(b.take_routed("/v2/other", "").len(), 2);
        b.clear();
        assert!(b.take_routed("/v2/anything", "").is_empty());
    }

    #[test]
    fn patches_set_and_remove_fields_of_matching_items() {
        let mut doc = serde_json::json!({
            "_embedded": [
                {"id": "A", "personalDetails": {"lastName": "x"}},
                {"id": "b", "personalDetails": null}
            ],
            "totalSize": 2
        });
        let mut s = FaultSpec::new(FaultKind::Patch);
        s.field = Some("personalDetails.lastName".into());
        s.value = Some(Value::from("y"));
        s.item_id = Some("B".into());
        patch_items(&mut doc, &s);
        assert_eq!(doc["_embedded"][0]["personalDetails"]["lastName"], "x");
        assert_eq!(doc["_embedded"][1]["personalDetails"]["lastName"], "y");
        s.item_id = None;
        s.value = None;
        patch_items(&mut doc, &s);
        assert!(
            doc["_embedded"][0]["personalDetails"]
                .get("lastName")
                .is_none()
        );
        s.field = Some("id".into());
        s.item_id = Some("a".into());
        patch_items(&mut doc, &s);
        assert!(doc["_embedded"][0].get("id").is_none());
        let mut single = serde_json::json!({"content": {"id": "c", "n": 1}});
        s.item_id = None;
        s.field = Some("n".into());
        s.value = Some(Value::from(2));
        patch_items(&mut single, &s);
        assert_eq!(single["content"]["n"], 2);

        let mut page = serde_json::json!({"_embedded": [{"id": "1"}, {"id": "2"}], "totalSize": 2});
        repeat_item(&mut page, Some("2"));
        assert_eq!(page["_embedded"].as_array().unwrap().len(), 3);
        assert_eq!(page["_embedded"][2]["id"], "2");
        assert_eq!(page["totalSize"], 3);
    }

    #[test]
    fn retry_after_as_http_date() {
        let mut s = FaultSpec::new(FaultKind::Status);
        s.status = Some(429);
        s.retry_after_secs = Some(3);
        s.retry_after_http_date = true;
        let r = status_response(&s);
        let v = r.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .to_string();
        let at = chrono::DateTime::parse_from_rfc2822(&v).expect("an HTTP date");
        let ahead = at.timestamp() - chrono::Utc::now().timestamp();
        assert!((1..=3).contains(&ahead), "{v}: {ahead}");
    }
}
