//! Expired-token cleanup: the embedded store deletes blacklist entries and sessions whose
//! tokens have expired (the old service needed a daily `flushexpiredtokens` cron job; DynamoDB
//! does the same with its TTL attribute).

use std::time::Duration;

use super::SharedStore;

/// How often a long-running process purges.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Purges once now, then every `interval`, for as long as the runtime lives.
pub fn spawn_periodic_purge(store: SharedStore, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            match store.purge_expired(crate::domain::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "purged expired sessions and blacklist entries"),
                Err(e) => tracing::warn!(error = %e, "purge of expired tokens failed"),
            }
        }
    })
}
