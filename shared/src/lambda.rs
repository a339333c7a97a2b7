//! What each function's `main` runs: configuration, state, then the Lambda runtime.

use crate::config::Config;
use crate::http::{router, Endpoint};
use crate::state::AppState;

pub use lambda_http::Error;

/// Logs for CloudWatch: JSON lines (plain text when `LOG_FORMAT=text`), level from `RUST_LOG`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = if std::env::var("LOG_FORMAT").as_deref() == Ok("text") {
        builder.try_init()
    } else {
        builder.json().without_time().try_init()
    };
    let _ = result; // already initialised (tests): keep the first subscriber
}

/// Serves one endpoint as a Lambda function.
pub async fn serve(endpoint: Endpoint) -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let local = config.is_local();
    let state = AppState::from_config(config).await?;
    if local {
        // No cron job on a laptop: an embedded store is tidied at every cold start.
        if let Err(e) = state.store.purge_expired(crate::domain::accounts::now()).await {
            tracing::warn!(error = %e, "purge of expired tokens failed");
        }
    }
    tracing::info!(function = endpoint.function(), "starting");
    lambda_http::run(router(&[endpoint], state)).await
}
