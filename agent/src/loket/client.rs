//! [`LoketClient`]: one connection to Loket (one Loket user). Builds the HTTP client from
//! [`ConnectionSettings`], and runs every GET through the same path: throttle, bearer token,
//! pinned `Accept` version, status mapping, one refresh on a 401, retries with backoff on
//! transient failures, full body read, then parsing (never partial data).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::auth::{Bearer, TokenEndpoint, TokenManager, TokenStore, transport_class};
use super::error::{ApiMessage, LoketError, forbidden_reason};
use super::models::SingleEnvelope;
use super::resources::Resource;
use super::retry::{RetryPolicy, parse_retry_after};
use super::secret::ClientSecret;
use super::throttle::Throttle;

/// The `User-Agent` sent with every request.
pub const USER_AGENT: &str = concat!("arbosync/", env!("CARGO_PKG_VERSION"));

/// A response body larger than this is refused (a Loket page of 250 items is far smaller).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// How to reach Loket for one connection.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    /// The API base, for example `https://api.loket.nl/v2`.
    pub api_url: Url,
    /// The OAuth server, for example `https://oauth.loket.nl` (the token URL is `{oauth_url}/token`).
    pub oauth_url: Url,
    /// The OAuth client id of the integration.
    pub client_id: String,
    /// The OAuth client secret, if Loket configured the client with one.
    pub client_secret: Option<ClientSecret>,
    /// Extra trusted CA certificates (PEM bundle), added to the system trust store.
    pub ca_file: Option<PathBuf>,
    /// Requests per second on this connection (evenly spaced; `f64::INFINITY` for no limit).
    pub requests_per_second: f64,
    /// Requests in flight at the same time on this connection.
    pub max_parallel_requests: usize,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole request, body included.
    pub request_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    /// The `pageSize` asked for (Loket's default is 250; the server may send fewer).
    pub page_size: u32,
    /// Retries of transient failures inside the client.
    pub retry: RetryPolicy,
}

impl ConnectionSettings {
    /// Settings with the defaults: 5 requests/s, 4 in parallel, 10 s connect, 60 s total,
    /// 30 s read timeout, page size 250, 4 attempts.
    pub fn new(api_url: Url, oauth_url: Url, client_id: impl Into<String>) -> Self {
        ConnectionSettings {
            api_url,
            oauth_url,
            client_id: client_id.into(),
            client_secret: None,
            ca_file: None,
            requests_per_second: 5.0,
            max_parallel_requests: 4,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(30),
            page_size: 250,
            retry: RetryPolicy::default(),
        }
    }
}

/// Accepts `https://`, and `http://` only for a loopback host (the simulator).
fn check_url(what: &str, url: &Url) -> Result<(), LoketError> {
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                None => false,
            };
            if !loopback {
                return Err(LoketError::Config(format!(
                    "{what} uses plain http:// for a host that is not loopback; Loket must be reached over https://"
                )));
            }
        }
        other => {
            return Err(LoketError::Config(format!(
                "{what} has unsupported scheme {other:?}; use https://"
            )));
        }
    }
    if url.host().is_none() {
        return Err(LoketError::Config(format!("{what} has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(LoketError::Config(format!(
            "{what} must not have a query or fragment"
        )));
    }
    Ok(())
}

/// Appends `suffix` (starting with `/`) to the base URL's path.
fn join(base: &Url, suffix: &str) -> Result<Url, LoketError> {
    let mut url = base.clone();
    let path = format!("{}{}", base.path().trim_end_matches('/'), suffix);
    url.set_path(&path);
    Ok(url)
}

struct Inner {
    http: reqwest::Client,
    api_url: Url,
    tokens: TokenManager,
    throttle: Throttle,
    page_size: u32,
    retry: RetryPolicy,
    max_parallel_requests: usize,
    /// HTTP requests sent to the API (every attempt counts), for run statistics.
    requests_sent: std::sync::atomic::AtomicU64,
}

/// A client for one Loket connection. Cheap to clone; clones share the token, the rate limit
/// and the parallelism cap.
#[derive(Clone)]
pub struct LoketClient {
    inner: Arc<Inner>,
    /// Requests sent through this handle and its clones since [`LoketClient::scoped`]; lets
    /// concurrent runs on one connection each count their own requests.
    scoped: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl std::fmt::Debug for LoketClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoketClient")
            .field("api_url", &self.inner.api_url.as_str())
            .finish_non_exhaustive()
    }
}

/// Why one attempt did not produce a body.
enum AttemptError {
    /// 401 with the token of this generation.
    Unauthorized {
        generation: u64,
    },
    Failed(LoketError),
}

impl From<LoketError> for AttemptError {
    fn from(e: LoketError) -> Self {
        AttemptError::Failed(e)
    }
}

#[derive(Deserialize)]
struct MessagesOnly {
    #[serde(default)]
    messages: Option<Vec<ApiMessage>>,
}

#[derive(Deserialize)]
struct MessageOnly {
    message: Option<String>,
}

impl LoketClient {
    /// Builds a client. Fails with [`LoketError::Config`] on unusable settings (plain http to a
    /// remote host, an unreadable CA file, a zero rate...).
    pub fn new(
        settings: ConnectionSettings,
        store: Arc<dyn TokenStore>,
    ) -> Result<Self, LoketError> {
        check_url("api_url", &settings.api_url)?;
        check_url("oauth_url", &settings.oauth_url)?;
        if settings.client_id.trim().is_empty() {
            return Err(LoketError::Config("client_id is empty".into()));
        }
        if settings.page_size == 0 {
            return Err(LoketError::Config("page_size must be at least 1".into()));
        }
        if settings.retry.max_attempts == 0 {
            return Err(LoketError::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        for (name, d) in [
            ("connect_timeout", settings.connect_timeout),
            ("request_timeout", settings.request_timeout),
            ("read_timeout", settings.read_timeout),
        ] {
            if d.is_zero() {
                return Err(LoketError::Config(format!("{name} must be more than zero")));
            }
        }
        let throttle = Throttle::new(settings.requests_per_second, settings.max_parallel_requests)?;

        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .read_timeout(settings.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tls_version_min(reqwest::tls::Version::TLS_1_2);
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                LoketError::Config(format!("cannot read ca_file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
                LoketError::Config(format!(
                    "ca_file {} is not a PEM certificate bundle",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(LoketError::Config(format!(
                    "ca_file {} holds no certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| LoketError::Config(format!("cannot build the HTTP client: {e}")))?;

        let token_url = join(&settings.oauth_url, "/token")?;
        let endpoint = TokenEndpoint::new(
            http.clone(),
            token_url,
            settings.client_id.clone(),
            settings.client_secret.clone(),
        );
        Ok(LoketClient {
            inner: Arc::new(Inner {
                http,
                api_url: settings.api_url,
                tokens: TokenManager::new(endpoint, store),
                throttle,
                page_size: settings.page_size,
                retry: settings.retry,
                max_parallel_requests: settings.max_parallel_requests,
                requests_sent: std::sync::atomic::AtomicU64::new(0),
            }),
            scoped: None,
        })
    }

    /// Exchanges the authorization code from the consent redirect for tokens, and saves the
    /// refresh token in the store.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<(), LoketError> {
        self.inner.tokens.exchange_code(code, redirect_uri).await
    }

    /// API requests sent so far (every attempt counts): by this handle since it was made with
    /// [`LoketClient::scoped`], otherwise by every handle of the connection.
    pub fn requests_sent(&self) -> u64 {
        match &self.scoped {
            Some(c) => c.load(std::sync::atomic::Ordering::Relaxed),
            None => self
                .inner
                .requests_sent
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// A handle sharing the token, rate limit and parallelism cap, that counts its own
    /// requests (one per sync run).
    pub fn scoped(&self) -> LoketClient {
        LoketClient {
            inner: Arc::clone(&self.inner),
            scoped: Some(Arc::default()),
        }
    }

    /// The connection's cap on requests in flight; callers size their own concurrency by it.
    pub fn max_parallel_requests(&self) -> usize {
        self.inner.max_parallel_requests
    }

    /// Makes sure a valid access token is available (refreshing if needed). Useful as a
    /// connection check: `InvalidGrant` here means the connection needs a new consent.
    pub async fn ensure_token(&self) -> Result<(), LoketError> {
        self.inner.tokens.bearer().await.map(|_| ())
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    /// GETs one entity (`content`).
    pub(crate) async fn get_single<T: DeserializeOwned>(
        &self,
        resource: Resource,
        path: &str,
    ) -> Result<T, LoketError> {
        let envelope: SingleEnvelope<T> = self.get_json(resource, path, &[]).await?;
        envelope.content.ok_or_else(|| LoketError::MalformedBody {
            path: path.to_owned(),
            detail: "the response has no content".into(),
        })
    }

    /// GETs `path` and parses the whole body as `T`.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        resource: Resource,
        path: &str,
        query: &[(&'static str, String)],
    ) -> Result<T, LoketError> {
        let body = self.get_body(resource, path, query).await?;
        serde_json::from_slice(&body).map_err(|e| LoketError::MalformedBody {
            path: path.to_owned(),
            detail: describe_json_error(&e),
        })
    }

    /// GETs `path` with retries, returning the complete body of a 2xx response.
    async fn get_body(
        &self,
        resource: Resource,
        path: &str,
        query: &[(&'static str, String)],
    ) -> Result<Vec<u8>, LoketError> {
        let url = join(&self.inner.api_url, path)?;
        let policy = &self.inner.retry;
        let mut attempt: u32 = 0;
        let mut refreshed_after_401 = false;
        let mut next_bearer: Option<Bearer> = None;
        loop {
            attempt += 1;
            let outcome = match next_bearer.take() {
                Some(b) => Ok(b),
                None => self.inner.tokens.bearer().await.map_err(AttemptError::from),
            };
            let outcome = match outcome {
                Ok(bearer) => {
                    self.send_once(resource, path, &url, query, &bearer, attempt)
                        .await
                }
                Err(e) => Err(e),
            };
            let error = match outcome {
                Ok(body) => return Ok(body),
                Err(AttemptError::Unauthorized { generation }) => {
                    if refreshed_after_401 {
                        return Err(LoketError::Unauthorized);
                    }
                    refreshed_after_401 = true;
                    match self
                        .inner
                        .tokens
                        .bearer_after_unauthorized(generation)
                        .await
                    {
                        Ok(b) => {
                            next_bearer = Some(b);
                            // The retry after a refresh is not a transient-failure retry.
                            attempt -= 1;
                            continue;
                        }
                        Err(e) => e,
                    }
                }
                Err(AttemptError::Failed(e)) => e,
            };
            if !error.is_transient() || attempt >= policy.max_attempts {
                return Err(error);
            }
            let retry_after = error.retry_after();
            if retry_after.is_some_and(|ra| ra > policy.max_retry_after) {
                return Err(error);
            }
            let wait = policy.delay(attempt, retry_after);
            tracing::debug!(
                path,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "loket request failed transiently; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        resource: Resource,
        path: &str,
        url: &Url,
        query: &[(&'static str, String)],
        bearer: &Bearer,
        attempt: u32,
    ) -> Result<Vec<u8>, AttemptError> {
        let spec = resource.spec();
        let _in_flight = self.inner.throttle.acquire().await;
        self.inner
            .requests_sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(c) = &self.scoped {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let started = Instant::now();
        let sent = self
            .inner
            .http
            .get(url.clone())
            .query(query)
            .header(reqwest::header::ACCEPT, spec.accept())
            .bearer_auth(bearer.token.expose_secret())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(
                    path,
                    attempt,
                    error = transport_class(&e),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "loket request failed"
                );
                return Err(LoketError::transient(transport_class(&e)).into());
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let body = read_body(response, path).await;
        tracing::debug!(
            operation = spec.operation_id,
            path,
            status,
            attempt,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loket request"
        );
        match status {
            200..=299 => Ok(body?),
            401 => Err(AttemptError::Unauthorized {
                generation: bearer.generation,
            }),
            400 => {
                let messages = body
                    .ok()
                    .and_then(|b| serde_json::from_slice::<MessagesOnly>(&b).ok())
                    .and_then(|m| m.messages)
                    .unwrap_or_default();
                Err(LoketError::BadRequest {
                    path: path.to_owned(),
                    messages,
                }
                .into())
            }
            403 => {
                let message = body
                    .ok()
                    .and_then(|b| serde_json::from_slice::<MessageOnly>(&b).ok())
                    .and_then(|m| m.message)
                    .map(|m| clean_text(&m))
                    .unwrap_or_else(|| "insufficient rights".to_owned());
                let activity = forbidden_reason(&message).unwrap_or_else(|| path.to_owned());
                tracing::warn!(
                    operation = spec.operation_id,
                    path,
                    "loket denied access (403)"
                );
                Err(LoketError::Forbidden { activity, message }.into())
            }
            404 => Err(LoketError::NotFound {
                path: path.to_owned(),
            }
            .into()),
            408 | 429 | 500..=599 => Err(LoketError::Transient {
                reason: format!("HTTP {status} from {path}"),
                retry_after,
            }
            .into()),
            _ => Err(LoketError::UnexpectedStatus {
                path: path.to_owned(),
                status,
            }
            .into()),
        }
    }
}

/// Reads the whole body, bounded. A connection that breaks mid-body is transient.
async fn read_body(mut response: reqwest::Response, path: &str) -> Result<Vec<u8>, LoketError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
    {
        return Err(LoketError::MalformedBody {
            path: path.to_owned(),
            detail: "the body is larger than the client accepts".into(),
        });
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(LoketError::MalformedBody {
                        path: path.to_owned(),
                        detail: "the body is larger than the client accepts".into(),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(LoketError::transient(format!(
                    "{} while reading {path}",
                    transport_class(&e)
                )));
            }
        }
    }
}

/// Keeps Loket's message to printable characters, a sane length and no long numbers.
fn clean_text(text: &str) -> String {
    super::error::scrub_text(text)
}

/// Describes a JSON error by category and position, never by the offending value (serde's
/// "invalid type" messages quote the value, which may be personal data).
pub(crate) fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Eof => format!("the JSON ends early ({at})"),
        Category::Syntax => format!("not valid JSON ({at})"),
        Category::Io => "the body could not be read".to_owned(),
        Category::Data => {
            let message = e.to_string();
            // Messages that name only our own field names or fixed texts are safe to keep.
            let safe = [
                "missing field",
                "a date is not",
                "a number does not",
                "a text is not",
            ];
            match safe.iter().find(|s| message.starts_with(**s)) {
                Some(_) => {
                    let cut = message.find(" at line").unwrap_or(message.len());
                    format!("{} ({at})", &message[..cut])
                }
                None => format!("the JSON does not match the expected model ({at})"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loket::models::Wage;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn only_https_or_loopback_http() {
        assert!(check_url("api_url", &url("https://api.loket.nl/v2")).is_ok());
        assert!(check_url("api_url", &url("http://127.0.0.1:8080/v2")).is_ok());
        assert!(check_url("api_url", &url("http://[::1]:8080/v2")).is_ok());
        assert!(check_url("api_url", &url("http://localhost:1/v2")).is_ok());
        let e = check_url("api_url", &url("http://api.loket.nl/v2")).unwrap_err();
        assert!(matches!(e, LoketError::Config(_)));
        assert!(e.to_string().contains("https://"));
        assert!(check_url("api_url", &url("http://10.0.0.1/v2")).is_err());
        assert!(check_url("api_url", &url("ftp://api.loket.nl/v2")).is_err());
        assert!(check_url("api_url", &url("https://api.loket.nl/v2?x=1")).is_err());
    }

    #[test]
    fn join_keeps_the_base_path() {
        assert_eq!(
            join(&url("https://api.loket.nl/v2"), "/providers/employers")
                .unwrap()
                .as_str(),
            "https://api.loket.nl/v2/providers/employers"
        );
        assert_eq!(
            join(&url("https://oauth.loket.nl/"), "/token")
                .unwrap()
                .as_str(),
            "https://oauth.loket.nl/token"
        );
    }

    #[test]
    fn json_errors_do_not_quote_values() {
        let e = serde_json::from_str::<Wage>(r#"{"id": 123456789}"#).unwrap_err();
        let d = describe_json_error(&e);
        assert!(!d.contains("123456789"), "{d}");
        let e = serde_json::from_str::<Wage>(r#"{"id": "x", "startDate": "Jansen"}"#).unwrap_err();
        let d = describe_json_error(&e);
        assert!(!d.contains("Jansen") && d.contains("a date is not"), "{d}");
        let e = serde_json::from_str::<Wage>(r#"{"grossWage": 1}"#).unwrap_err();
        assert!(describe_json_error(&e).starts_with("missing field `id`"));
        let e = serde_json::from_str::<Wage>(r#"{"id": "x", "#).unwrap_err();
        assert!(describe_json_error(&e).starts_with("the JSON ends early"));
        let e = serde_json::from_str::<Wage>(r#"<html>"#).unwrap_err();
        assert!(describe_json_error(&e).starts_with("not valid JSON"));
    }

    #[test]
    fn settings_are_validated() {
        let store: Arc<dyn TokenStore> = Arc::new(crate::loket::MemoryTokenStore::new(None));
        let base = ConnectionSettings::new(
            url("https://api.loket.nl/v2"),
            url("https://oauth.loket.nl"),
            "client",
        );
        assert!(LoketClient::new(base.clone(), store.clone()).is_ok());
        let mut s = base.clone();
        s.api_url = url("http://api.loket.nl/v2");
        assert!(matches!(
            LoketClient::new(s, store.clone()),
            Err(LoketError::Config(_))
        ));
        let mut s = base.clone();
        s.requests_per_second = 0.0;
        assert!(LoketClient::new(s, store.clone()).is_err());
        let mut s = base.clone();
        s.page_size = 0;
        assert!(LoketClient::new(s, store.clone()).is_err());
        let mut s = base.clone();
        s.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
        assert!(matches!(
            LoketClient::new(s, store.clone()),
            Err(LoketError::Config(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        let mut s = base;
        s.ca_file = Some(bad);
        assert!(matches!(
            LoketClient::new(s, store),
            Err(LoketError::Config(_))
        ));
    }
}
