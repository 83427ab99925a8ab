//! The Loket REST API client: OAuth, paging, versioned Accept headers, throttling, errors, wire models.
//!
//! - [`client`]: [`LoketClient`] and [`ConnectionSettings`]; the request path every call takes.
//! - [`api`]: one method per Loket resource, and [`ListRequest`] constructors.
//! - [`paging`]: [`Pager`] (page by page) and `get_all` (everything or an error).
//! - [`auth`]: OAuth2 (code exchange, rotating refresh tokens, single-flight refresh) and
//!   [`TokenStore`].
//! - [`resources`]: the one table of paths, activities and pinned resource versions.
//! - [`models`]: serde wire models. [`error`]: [`LoketError`]. [`secret`]: redacting secrets.
//! - [`retry`] and [`throttle`]: backoff, `Retry-After`, rate limit and parallelism cap.

pub mod api;
pub mod auth;
pub mod client;
pub mod error;
pub mod models;
pub mod paging;
pub mod resources;
pub mod retry;
pub mod secret;
mod throttle;

pub use auth::{BoxFuture, MemoryTokenStore, TokenStore};
pub use client::{ConnectionSettings, LoketClient, USER_AGENT};
pub use error::{ApiMessage, LoketError, TokenStoreError};
pub use paging::{ListRequest, Page, Pager};
pub use resources::{RESOURCES, Resource, ResourceSpec};
pub use retry::RetryPolicy;
pub use secret::{AccessToken, ClientSecret, RefreshToken};
