//! The AWS SDK configuration every client shares: the usual credential and region chain
//! (`us-east-1` when none is set), bounded timeouts and one retry, so a broken backend fails a
//! request in seconds instead of hanging it; `endpoint` points the client at an emulator (moto).

use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// The time one attempt of a call may take, and the call with its retry.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub attempt: Duration,
    pub operation: Duration,
}

pub async fn sdk_config(endpoint: Option<&str>, timeouts: Timeouts) -> SdkConfig {
    let timeout_config = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(timeouts.attempt)
        .operation_timeout(timeouts.operation)
        .build();
    let region = RegionProviderChain::default_provider().or_else("us-east-1");
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .timeout_config(timeout_config)
        .retry_config(RetryConfig::standard().with_max_attempts(2));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}
