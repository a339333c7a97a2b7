//! What every request handler shares: built once per process (once per Lambda cold start).

use std::sync::Arc;

use crate::config::{Config, StorageConfig};
use crate::domain::tokens::TokenService;
use crate::store::dynamodb::{self, DynamoStore};
use crate::store::sqlite::SqliteStore;
use crate::store::{SharedStore, StoreError};

#[derive(Clone)]
pub struct AppState {
    pub store: SharedStore,
    pub tokens: Arc<TokenService>,
    pub config: Arc<Config>,
}

impl AppState {
    pub fn new(store: SharedStore, config: Config) -> Self {
        let tokens = TokenService::new(&config.jwt_secret, config.access_lifetime, config.refresh_lifetime);
        Self { store, tokens: Arc::new(tokens), config: Arc::new(config) }
    }

    /// Opens the configured store (the SDK client is built here, once).
    pub async fn from_config(config: Config) -> Result<Self, StoreError> {
        let store: SharedStore = match &config.storage {
            StorageConfig::Embedded { data_dir } => Arc::new(SqliteStore::open(data_dir)?),
            StorageConfig::DynamoDb { tables, endpoint } => {
                let client = dynamodb::client(endpoint.as_deref()).await;
                Arc::new(DynamoStore::new(client, tables.clone()))
            }
        };
        Ok(Self::new(store, config))
    }
}
