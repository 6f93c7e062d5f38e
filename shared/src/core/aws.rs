//! AWS configuration, loaded once per cold start.
//!
//! The endpoint comes from the SDK's own `AWS_ENDPOINT_URL`, so the same binary talks to AWS or to a local
//! emulator; there is deliberately no "local mode" here. Throttling and transient errors are retried by the
//! SDK's adaptive retry strategy, never by hand-written loops.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Attempts per call, first included. Adaptive mode also rate-limits the client after throttling responses.
pub const MAX_ATTEMPTS: u32 = 8;

/// Loads the shared SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`).
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .load()
        .await
}

/// The retry configuration every Lifeboat client uses.
pub fn retry_config() -> RetryConfig {
    RetryConfig::adaptive().with_max_attempts(MAX_ATTEMPTS)
}

/// The same configuration pointed at another region (for DR copies).
pub fn for_region(config: &SdkConfig, region: &str) -> SdkConfig {
    config
        .to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .build()
}
