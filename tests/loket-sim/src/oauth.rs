//! The simulated Loket OAuth server under `/oauth`.
//!
//! * `GET /oauth/authorize?client_id&redirect_uri&response_type=code&scope=all&state`
//!   consents automatically and redirects (302) to `redirect_uri?code=...&state=...`.
//!   An unknown `client_id` or a missing/invalid `redirect_uri` is a 400 JSON error (no
//!   redirect); another `response_type` redirects with `error=unsupported_response_type`.
//! * `POST /oauth/token`, body form-encoded (any content type, e.g. `text/plain`, is read
//!   as form content). Client credentials come from the body (`client_id`,
//!   `client_secret`) or HTTP Basic auth. Grants: `authorization_code` (code single use,
//!   `redirect_uri` must equal the authorize one) and `refresh_token`.
//!   Success: `{"access_token","token_type":"bearer","expires_in","refresh_token","two_factor_state":"None"}`.
//!   Refresh tokens ROTATE: a used refresh token is invalid afterwards.
//!   Errors (RFC 6749): unknown client or wrong secret -> 401 `invalid_client`; bad,
//!   used or revoked code/refresh token -> 400 `invalid_grant`; missing parameters ->
//!   400 `invalid_request`; other grants -> 400 `unsupported_grant_type`.
//! * Refresh tokens never expire by time; access tokens expire after
//!   `access_token_ttl_secs` measured with `tokio::time::Instant` (paused-time friendly).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use crate::faults;
use crate::state::{Shared, lock};

/// Issued codes and tokens.
#[derive(Default)]
pub struct AuthState {
    /// code -> redirect_uri
    codes: HashMap<String, String>,
    refresh_tokens: HashSet<String>,
    /// access token -> expiry
    access_tokens: HashMap<String, Instant>,
}

fn random_token() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

impl AuthState {
    pub fn mint_refresh_token(&mut self) -> String {
        let t = random_token();
        self.refresh_tokens.insert(t.clone());
        t
    }

    pub fn issue_code(&mut self, redirect_uri: String) -> String {
        let c = random_token();
        self.codes.insert(c.clone(), redirect_uri);
        c
    }

    /// Mint an access token valid for `ttl_secs` and a fresh refresh token.
    pub fn issue_tokens(&mut self, ttl_secs: u64) -> (String, String) {
        let now = Instant::now();
        self.access_tokens.retain(|_, exp| *exp > now);
        let access = random_token();
        self.access_tokens
            .insert(access.clone(), now + Duration::from_secs(ttl_secs));
        (access, self.mint_refresh_token())
    }

    pub fn access_token_valid(&self, token: &str) -> bool {
        self.access_tokens
            .get(token)
            .is_some_and(|exp| *exp > Instant::now())
    }

    pub fn expire_access_tokens(&mut self) {
        self.access_tokens.clear();
    }

    pub fn revoke_refresh_tokens(&mut self) {
        self.refresh_tokens.clear();
    }

    /// Use (and so invalidate) a refresh token.
    fn consume_refresh_token(&mut self, token: &str) -> bool {
        self.refresh_tokens.remove(token)
    }

    fn consume_code(&mut self, code: &str) -> Option<String> {
        self.codes.remove(code)
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

fn form(raw: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.trim().as_bytes())
        .into_owned()
        .collect()
}

pub async fn authorize(State(sh): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    if let faults::Gate::Respond(r) = faults::gate(&sh, "/oauth/authorize", false).await {
        return r;
    }
    let p = form(q.as_deref().unwrap_or(""));
    if p.get("client_id").map(String::as_str) != Some(sh.settings.client_id.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Unknown client_id.",
        );
    }
    let Some(redirect) = p.get("redirect_uri") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri is required.",
        );
    };
    let Ok(mut target) = url::Url::parse(redirect) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri is not a valid absolute URL.",
        );
    };
    if p.get("response_type").map(String::as_str) == Some("code") {
        let code = lock(&sh.auth).issue_code(redirect.clone());
        target.query_pairs_mut().append_pair("code", &code);
    } else {
        target
            .query_pairs_mut()
            .append_pair("error", "unsupported_response_type");
    }
    if let Some(state) = p.get("state") {
        target.query_pairs_mut().append_pair("state", state);
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// Decode standard base64 (for HTTP Basic credentials); `None` on invalid input.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0u32;
    for c in s.trim().bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(rest)?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

pub async fn token(State(sh): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    lock(&sh.stats).counters.token_requests += 1;
    if let faults::Gate::Respond(r) = faults::gate(&sh, "/oauth/token", false).await {
        return r;
    }
    let p = form(&body);
    let (client_id, secret) = match basic_credentials(&headers) {
        Some((id, s)) => (Some(id), Some(s)),
        None => (p.get("client_id").cloned(), p.get("client_secret").cloned()),
    };
    if client_id.as_deref() != Some(sh.settings.client_id.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unknown client.",
        );
    }
    if let Some(expected) = &sh.settings.client_secret
        && secret.as_deref() != Some(expected.as_str())
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client credentials.",
        );
    }
    let ttl = sh.settings.access_token_ttl_secs;
    let issued = match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let (Some(code), Some(redirect)) = (p.get("code"), p.get("redirect_uri")) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code and redirect_uri are required.",
                );
            };
            let mut auth = lock(&sh.auth);
            match auth.consume_code(code) {
                Some(expected) if expected == *redirect => auth.issue_tokens(ttl),
                Some(_) => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "redirect_uri does not match.",
                    );
                }
                None => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "The authorization code is invalid or was already used.",
                    );
                }
            }
        }
        Some("refresh_token") => {
            let Some(rt) = p.get("refresh_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required.",
                );
            };
            let mut auth = lock(&sh.auth);
            if !auth.consume_refresh_token(rt) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The refresh token is invalid, expired or was already used.",
                );
            }
            auth.issue_tokens(ttl)
        }
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Unsupported grant_type.",
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required.",
            );
        }
    };
    let (access, refresh) = issued;
    axum::Json(json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": ttl,
        "refresh_token": refresh,
        "two_factor_state": "None",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_basic() {
        assert_eq!(
            base64_decode("YXJib3N5bmMtc2ltOnNlY3JldA==").as_deref(),
            Some(&b"arbosync-sim:secret"[..])
        );
        assert!(base64_decode("!!").is_none());
    }
}
