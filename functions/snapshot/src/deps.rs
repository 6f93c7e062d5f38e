//! What every part of the `snapshot` function is handed: the AWS clients (the DR region's too), built once per
//! cold start, and the settings. Its own module so that the handler and `caches.rs` both stand on it and
//! `caches.rs` never imports the handler back.

use aws_config::SdkConfig;
use lifeboat::rds::settings::SnapshotSettings;

/// Clients and settings, built once per cold start and borrowed by every invocation.
#[derive(Debug, Clone)]
pub struct Deps {
    pub rds: aws_sdk_rds::Client,
    /// ElastiCache in the same region: caches are selected and snapshotted beside databases.
    pub ec: aws_sdk_elasticache::Client,
    /// A client in the DR region, when copies are configured.
    pub dr_rds: Option<aws_sdk_rds::Client>,
    pub cw: aws_sdk_cloudwatch::Client,
    pub region: String,
    pub settings: SnapshotSettings,
}

impl Deps {
    pub fn new(config: &SdkConfig, settings: SnapshotSettings) -> Self {
        let dr_rds = settings
            .copy
            .region
            .as_deref()
            .map(|region| aws_sdk_rds::Client::new(&lifeboat::core::aws::for_region(config, region)));
        Self {
            rds: aws_sdk_rds::Client::new(config),
            ec: aws_sdk_elasticache::Client::new(config),
            dr_rds,
            cw: aws_sdk_cloudwatch::Client::new(config),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            settings,
        }
    }
}
