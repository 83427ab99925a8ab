//! OAuth2 for one Loket connection: the refresh-token store, the authorization-code exchange,
//! and single-flight refresh of the access token.
//!
//! Loket rotates refresh tokens: each refresh returns a new one and the old one stops working.
//! The new refresh token is therefore saved through the [`TokenStore`] **before** the new access
//! token is handed out. If saving fails, the new refresh token is kept in memory (it is the only
//! valid one) and saving is retried before anything else happens on this connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::error::{LoketError, TokenStoreError};
use super::retry::parse_retry_after;
use super::secret::{AccessToken, ClientSecret, RefreshToken};

/// A boxed, sendable future, as returned by [`TokenStore`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a connection's refresh token lives (the encrypted secrets store in production).
pub trait TokenStore: Send + Sync {
    /// The current refresh token, or `None` if the connection never got consent.
    fn load(&self) -> BoxFuture<'_, Result<Option<RefreshToken>, TokenStoreError>>;
    /// Replaces the refresh token durably. Must not return before the token is safely stored.
    fn save<'a>(&'a self, token: &'a RefreshToken) -> BoxFuture<'a, Result<(), TokenStoreError>>;
    /// Makes sure the next `save` will find room (called before Loket rotates the token). A
    /// failure stops the refresh before Loket is asked.
    fn reserve(&self) -> BoxFuture<'_, Result<(), TokenStoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// An in-memory [`TokenStore`] for tests and the demo. Clones share the same token.
#[derive(Clone, Default)]
pub struct MemoryTokenStore {
    inner: Arc<StdMutex<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    current: Option<RefreshToken>,
    saves: usize,
    fail_saves: bool,
    fail_reserves: bool,
}

impl std::fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTokenStore").finish_non_exhaustive()
    }
}

impl MemoryTokenStore {
    /// A store holding `initial`.
    pub fn new(initial: Option<RefreshToken>) -> Self {
        MemoryTokenStore {
            inner: Arc::new(StdMutex::new(MemoryInner {
                current: initial,
                ..MemoryInner::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A poisoned lock only means a test panicked while holding it; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token currently stored.
    pub fn current(&self) -> Option<RefreshToken> {
        self.lock().current.clone()
    }

    /// How many times `save` succeeded.
    pub fn save_count(&self) -> usize {
        self.lock().saves
    }

    /// Makes every following `save` fail (to test what happens when persisting is impossible).
    pub fn set_fail_saves(&self, fail: bool) {
        self.lock().fail_saves = fail;
    }

    /// Makes every following `reserve` fail (as on a full disk).
    pub fn set_fail_reserves(&self, fail: bool) {
        self.lock().fail_reserves = fail;
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<RefreshToken>, TokenStoreError>> {
        let current = self.current();
        Box::pin(async move { Ok(current) })
    }

    fn save<'a>(&'a self, token: &'a RefreshToken) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        let result = {
            let mut inner = self.lock();
            if inner.fail_saves {
                Err(TokenStoreError::new("saving is switched off (test)"))
            } else {
                inner.current = Some(token.clone());
                inner.saves += 1;
                Ok(())
            }
        };
        Box::pin(async move { result })
    }

    fn reserve(&self) -> BoxFuture<'_, Result<(), TokenStoreError>> {
        let result = if self.lock().fail_reserves {
            Err(TokenStoreError::new("no room to save a token (test)"))
        } else {
            Ok(())
        };
        Box::pin(async move { result })
    }
}

/// An access token handed to a request, with the generation it belongs to. A caller that gets
/// a 401 passes the generation back, so only the first of many concurrent callers refreshes.
#[derive(Clone, Debug)]
pub(crate) struct Bearer {
    pub(crate) token: AccessToken,
    pub(crate) generation: u64,
}

/// The OAuth token endpoint of one Loket environment.
pub(crate) struct TokenEndpoint {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    client_secret: Option<ClientSecret>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: Option<String>,
}

/// A successful token response, with the secrets wrapped.
struct Issued {
    access: AccessToken,
    expires_in: Option<u64>,
    refresh: Option<RefreshToken>,
}

impl TokenEndpoint {
    pub(crate) fn new(
        http: reqwest::Client,
        token_url: Url,
        client_id: String,
        client_secret: Option<ClientSecret>,
    ) -> Self {
        TokenEndpoint {
            http,
            token_url,
            client_id,
            client_secret,
        }
    }

    async fn refresh(&self, refresh: &RefreshToken) -> Result<Issued, LoketError> {
        self.post(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose_secret()),
        ])
        .await
    }

    async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<Issued, LoketError> {
        self.post(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ])
        .await
    }

    async fn post(&self, grant: &[(&str, &str)]) -> Result<Issued, LoketError> {
        let mut form: Vec<(&str, &str)> = grant.to_vec();
        form.push(("client_id", &self.client_id));
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose_secret()));
        }
        let started = Instant::now();
        let response = self
            .http
            .post(self.token_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                LoketError::transient(format!("token endpoint: {}", transport_class(&e)))
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let body = response.bytes().await.map_err(|e| {
            LoketError::transient(format!("token endpoint: {}", transport_class(&e)))
        })?;
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loket token request"
        );
        if status.is_success() {
            let parsed: TokenResponse =
                serde_json::from_slice(&body).map_err(|_| LoketError::OAuth {
                    status: status.as_u16(),
                    error: "the token response is not valid JSON".into(),
                })?;
            let access = parsed
                .access_token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| LoketError::OAuth {
                    status: status.as_u16(),
                    error: "the token response has no access_token".into(),
                })?;
            return Ok(Issued {
                access: AccessToken::new(access),
                expires_in: parsed.expires_in,
                refresh: parsed
                    .refresh_token
                    .filter(|t| !t.is_empty())
                    .map(RefreshToken::new),
            });
        }
        if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
            return Err(LoketError::Transient {
                reason: format!("token endpoint answered {}", status.as_u16()),
                retry_after,
            });
        }
        let code = serde_json::from_slice::<OAuthErrorBody>(&body)
            .ok()
            .and_then(|b| b.error)
            .map(|e| sanitize_error_code(&e));
        match code.as_deref() {
            Some(c)
                if c.eq_ignore_ascii_case("invalid_grant")
                    || c.eq_ignore_ascii_case("invalid_client") =>
            {
                Err(LoketError::InvalidGrant {
                    error: c.to_owned(),
                })
            }
            Some(c) => Err(LoketError::OAuth {
                status: status.as_u16(),
                error: c.to_owned(),
            }),
            None => Err(LoketError::OAuth {
                status: status.as_u16(),
                error: "no OAuth error code in the answer".into(),
            }),
        }
    }
}

/// Test hook: with `ARBOSYNC_FAILPOINT=after-token-response` the process exits (code 86, no
/// destructors) after Loket answered with a rotated refresh token and before it is saved, as a
/// crash at that moment would. The variable is read once.
fn failpoint_after_token_response() {
    static ARMED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ARMED.get_or_init(|| {
        std::env::var("ARBOSYNC_FAILPOINT").is_ok_and(|v| v == "after-token-response")
    }) {
        eprintln!("failpoint after-token-response: exiting");
        std::process::exit(86);
    }
}

/// Keeps an OAuth error code to the RFC 6749 character set and a sane length, so nothing else
/// from the body can travel in an error message.
fn sanitize_error_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
        .take(64)
        .collect()
}

/// A short class of a transport error, without its message (which may contain the URL).
pub(crate) fn transport_class(e: &reqwest::Error) -> &'static str {
    if let Some(class) = tls_class(e) {
        return class;
    }
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the body was cut off"
    } else if e.is_request() {
        "the request failed in transit"
    } else {
        "transport error"
    }
}

/// The class of a TLS failure found in the error's source chain, if it is one. Classified from
/// rustls' error text (the agent does not depend on rustls directly), into fixed phrases: the
/// certificate details rustls prints (names, times) are not repeated.
fn tls_class(e: &reqwest::Error) -> Option<&'static str> {
    let mut chain: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        chain.push(err.to_string());
        current = err.source();
    }
    let text = chain.join(" / ");
    if text.contains("invalid peer certificate") {
        let reason = [
            ("xpired", "TLS certificate rejected: expired"),
            ("ot valid yet", "TLS certificate rejected: not valid yet"),
            ("NotValidYet", "TLS certificate rejected: not valid yet"),
            (
                "ot valid for name",
                "TLS certificate rejected: not valid for this host name",
            ),
            (
                "NotValidForName",
                "TLS certificate rejected: not valid for this host name",
            ),
            ("evoked", "TLS certificate rejected: revoked"),
            (
                "Signature",
                "TLS certificate rejected: its signature does not verify",
            ),
            (
                "UnknownIssuer",
                "TLS certificate rejected: unknown issuer (not signed by a trusted CA; a private \
                 CA must be named in the connection's ca_file)",
            ),
        ];
        return Some(
            reason
                .iter()
                .find(|(needle, _)| text.contains(needle))
                .map_or("TLS certificate rejected", |(_, class)| class),
        );
    }
    let handshake = [
        "received fatal alert",
        "peer is incompatible",
        "peer misbehaved",
        "HandshakeFailure",
        "InvalidMessage",
        "corrupt message",
    ];
    handshake
        .iter()
        .any(|n| text.contains(n))
        .then_some("TLS handshake failed")
}

struct Current {
    bearer: Bearer,
    refresh_at: Instant,
}

struct Unsaved {
    refresh: RefreshToken,
    current: Option<Current>,
}

#[derive(Default)]
struct TokenState {
    current: Option<Current>,
    generation: u64,
    /// A rotated refresh token that could not be saved yet.
    unsaved: Option<Unsaved>,
    /// The refresh token Loket rejected, so it is not sent again.
    rejected: Option<RefreshToken>,
}

/// Hands out access tokens for one connection, refreshing them single-flight.
pub struct TokenManager {
    endpoint: TokenEndpoint,
    store: Arc<dyn TokenStore>,
    state: Mutex<TokenState>,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager").finish_non_exhaustive()
    }
}

/// How long before the access token expires it is renewed: a quarter of its lifetime, at most
/// one minute (so Loket's 3599 s tokens are renewed at 3539 s).
fn refresh_margin(expires_in: Duration) -> Duration {
    (expires_in / 4).min(Duration::from_secs(60))
}

/// Assumed lifetime when the token response has no `expires_in` (Loket documents 3599 s).
const DEFAULT_EXPIRES_IN: u64 = 3599;

impl TokenManager {
    pub(crate) fn new(endpoint: TokenEndpoint, store: Arc<dyn TokenStore>) -> Self {
        TokenManager {
            endpoint,
            store,
            state: Mutex::new(TokenState::default()),
        }
    }

    /// Exchanges an authorization code (from the consent redirect) for tokens and saves the
    /// refresh token. After this the connection works without a person.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<(), LoketError> {
        let mut state = self.state.lock().await;
        let issued = self.endpoint.exchange_code(code, redirect_uri).await?;
        if issued.refresh.is_none() {
            return Err(LoketError::OAuth {
                status: 200,
                error: "the code exchange returned no refresh_token".into(),
            });
        }
        state.unsaved = None;
        state.rejected = None;
        self.adopt(&mut state, issued).await.map(|_| ())
    }

    /// A valid access token, refreshed first if it is missing or about to expire.
    pub(crate) async fn bearer(&self) -> Result<Bearer, LoketError> {
        let mut state = self.state.lock().await;
        self.save_unsaved(&mut state).await?;
        if let Some(current) = &state.current
            && Instant::now() < current.refresh_at
        {
            return Ok(current.bearer.clone());
        }
        self.refresh_locked(&mut state).await
    }

    /// After a 401 on the token of `generation`: refreshes, unless another caller already did.
    pub(crate) async fn bearer_after_unauthorized(
        &self,
        generation: u64,
    ) -> Result<Bearer, LoketError> {
        let mut state = self.state.lock().await;
        self.save_unsaved(&mut state).await?;
        if let Some(current) = &state.current
            && current.bearer.generation != generation
            && Instant::now() < current.refresh_at
        {
            return Ok(current.bearer.clone());
        }
        self.refresh_locked(&mut state).await
    }

    async fn refresh_locked(&self, state: &mut TokenState) -> Result<Bearer, LoketError> {
        state.current = None;
        let refresh = self
            .store
            .load()
            .await?
            .ok_or(LoketError::MissingRefreshToken)?;
        if state.rejected.as_ref() == Some(&refresh) {
            return Err(LoketError::InvalidGrant {
                error: "invalid_grant".into(),
            });
        }
        // Loket rotates the refresh token on use: make sure the new one can be saved first.
        self.store.reserve().await?;
        match self.endpoint.refresh(&refresh).await {
            Ok(issued) => self.adopt(state, issued).await,
            Err(e @ LoketError::InvalidGrant { .. }) => {
                tracing::warn!("loket refresh token rejected; the connection needs a new consent");
                state.rejected = Some(refresh);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Saves a rotated refresh token, then makes the access token current.
    async fn adopt(&self, state: &mut TokenState, issued: Issued) -> Result<Bearer, LoketError> {
        let expires_in = Duration::from_secs(issued.expires_in.unwrap_or(DEFAULT_EXPIRES_IN));
        state.generation += 1;
        let current = Current {
            bearer: Bearer {
                token: issued.access,
                generation: state.generation,
            },
            refresh_at: Instant::now() + expires_in - refresh_margin(expires_in),
        };
        if let Some(refresh) = issued.refresh {
            failpoint_after_token_response();
            if let Err(e) = self.store.save(&refresh).await {
                tracing::error!(
                    "could not save the rotated loket refresh token; holding it in memory"
                );
                state.unsaved = Some(Unsaved {
                    refresh,
                    current: Some(current),
                });
                return Err(e.into());
            }
            state.rejected = None;
        }
        let bearer = current.bearer.clone();
        state.current = Some(current);
        Ok(bearer)
    }

    /// Retries saving a rotated refresh token that could not be saved before.
    async fn save_unsaved(&self, state: &mut TokenState) -> Result<(), LoketError> {
        let Some(unsaved) = state.unsaved.take() else {
            return Ok(());
        };
        if let Err(e) = self.store.save(&unsaved.refresh).await {
            state.unsaved = Some(unsaved);
            return Err(e.into());
        }
        tracing::info!("saved the rotated loket refresh token on a later attempt");
        state.current = unsaved.current;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_a_quarter_capped_at_a_minute() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3599)),
            Duration::from_secs(60)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(40)),
            Duration::from_secs(10)
        );
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn error_codes_are_sanitized() {
        assert_eq!(sanitize_error_code("invalid_grant"), "invalid_grant");
        assert_eq!(sanitize_error_code("bad \"stuff\" <b>"), "badstuffb");
        assert_eq!(sanitize_error_code(&"x".repeat(500)).len(), 64);
    }

    #[tokio::test]
    async fn memory_store_saves_and_can_fail() {
        let store = MemoryTokenStore::new(None);
        assert!(store.load().await.unwrap().is_none());
        store.save(&RefreshToken::new("a")).await.unwrap();
        assert_eq!(store.current(), Some(RefreshToken::new("a")));
        store.set_fail_saves(true);
        assert!(store.save(&RefreshToken::new("b")).await.is_err());
        assert_eq!(store.current(), Some(RefreshToken::new("a")));
        assert_eq!(store.save_count(), 1);
    }
}
