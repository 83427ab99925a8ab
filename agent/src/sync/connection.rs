//! Builds a [`LoketClient`] for a configured connection, with its refresh token kept in the
//! encrypted [`SecretStore`] (the rotated token is saved before the new access token is used).

use std::sync::Arc;

use crate::config::ConnectionConfig;
use crate::loket::{
    BoxFuture, ClientSecret, ConnectionSettings, LoketClient, LoketError, RefreshToken, TokenStore,
    TokenStoreError,
};
use crate::secrets::SecretStore;

/// The [`TokenStore`] of one connection, backed by the encrypted secret store.
pub struct SecretTokenStore {
    store: Arc<SecretStore>,
    connection: String,
}

impl SecretTokenStore {
    pub fn new(store: Arc<SecretStore>, connection: impl Into<String>) -> Self {
        SecretTokenStore {
            store,
            connection: connection.into(),
        }
    }
}

impl TokenStore for SecretTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<RefreshToken>, TokenStoreError>> {
        Box::pin(async move {
            let store = Arc::clone(&self.store);
            let name = self.connection.clone();
            let loaded = tokio::task::spawn_blocking(move || store.load(&name))
                .await
                .map_err(|e| TokenStoreError::new(format!("token store task failed: {e}")))?;
            loaded
                .map(|t| t.map(|s| RefreshToken::new(s.expose_secret())))
                .map_err(|e| TokenStoreError::new(e.to_string()))
        })
    }

    fn save<'a>(&'a self, token: &'a RefreshToken) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        Box::pin(async move {
            let store = Arc::clone(&self.store);
            let name = self.connection.clone();
            let value = token.expose_secret().to_string();
            tokio::task::spawn_blocking(move || store.save(&name, &value))
                .await
                .map_err(|e| TokenStoreError::new(format!("token store task failed: {e}")))?
                .map_err(|e| TokenStoreError::new(e.to_string()))
        })
    }

    fn reserve(&self) -> BoxFuture<'_, Result<(), TokenStoreError>> {
        Box::pin(async move {
            let store = Arc::clone(&self.store);
            let name = self.connection.clone();
            tokio::task::spawn_blocking(move || store.reserve(&name))
                .await
                .map_err(|e| TokenStoreError::new(format!("token store task failed: {e}")))?
                .map_err(|e| TokenStoreError::new(e.to_string()))
        })
    }
}

/// The client settings for a configured connection.
pub fn settings(conn: &ConnectionConfig) -> ConnectionSettings {
    let mut s = ConnectionSettings::new(
        conn.api_url.clone(),
        conn.oauth_url.clone(),
        conn.client_id.clone(),
    );
    s.client_secret = conn
        .client_secret
        .as_ref()
        .map(|c| ClientSecret::new(c.expose_secret()));
    s.ca_file = conn.ca_file.clone();
    s.requests_per_second = conn.requests_per_second;
    s.max_parallel_requests = conn.max_parallel_requests;
    s
}

/// A client for `conn` whose refresh token lives in `secrets`.
pub fn client(
    conn: &ConnectionConfig,
    secrets: Arc<SecretStore>,
) -> Result<LoketClient, LoketError> {
    LoketClient::new(
        settings(conn),
        Arc::new(SecretTokenStore::new(secrets, conn.name.clone())),
    )
}
