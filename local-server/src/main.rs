//! The whole account API on one local HTTP server: the same routers the Lambdas serve, on the
//! embedded store by default (`STORAGE=dynamodb` and friends switch it, see docs/operations.md).
//!
//! `local-server --create-tables` makes the DynamoDB tables of the configuration (when missing)
//! and exits: for an emulator (moto, DynamoDB Local) that the server or `cargo lambda watch`
//! then uses. In AWS the tables come from `template.yaml`.

use std::net::SocketAddr;

use accounts::config::Config;
use accounts::state::AppState;
use accounts::store::cleanup::{spawn_periodic_purge, PURGE_INTERVAL};

/// `BIND` overrides the address; the default is the one the README promises (`cargo run -p local-server`).
const DEFAULT_BIND: &str = "127.0.0.1:8000";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("LOG_FORMAT", std::env::var("LOG_FORMAT").unwrap_or_else(|_| "text".into()));
    accounts::lambda::init_tracing();
    let config = Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("--create-tables") => return create_tables(&config).await,
        Some(other) => return Err(format!("unknown argument {other:?} (the only one is --create-tables)").into()),
    }
    let state = AppState::from_config(config).await?;
    if state.config.is_local() {
        spawn_periodic_purge(state.store.clone(), PURGE_INTERVAL);
    }
    let bind = std::env::var("BIND").unwrap_or_else(|_| DEFAULT_BIND.into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    tracing::info!("account API listening on http://{}", listener.local_addr()?);
    let app = accounts::http::app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn create_tables(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    use accounts::config::StorageConfig;
    use accounts::store::dynamodb::{client, DynamoStore};
    let StorageConfig::DynamoDb { tables, endpoint } = &config.storage else {
        return Err("--create-tables is for STORAGE=dynamodb (the embedded store makes its own)".into());
    };
    DynamoStore::new(client(endpoint.as_deref()).await, tables.clone()).create_tables().await?;
    tracing::info!(users = %tables.users, sessions = %tables.sessions, blacklist = %tables.blacklist, throttle = %tables.throttle, "tables ready");
    Ok(())
}
