//! The whole account API on one local HTTP server: the same routers the Lambdas serve, on the
//! embedded store by default (`STORAGE=dynamodb` and friends switch it, see README).

use std::net::SocketAddr;

use accounts::config::Config;
use accounts::state::AppState;
use accounts::store::cleanup::{spawn_periodic_purge, PURGE_INTERVAL};

/// `BIND` overrides the address; the default is the one the README promises.
const DEFAULT_BIND: &str = "127.0.0.1:8000";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("LOG_FORMAT", std::env::var("LOG_FORMAT").unwrap_or_else(|_| "text".into()));
    accounts::lambda::init_tracing();
    let config = Config::from_env()?;
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
