//! What every part of the `monitor` function is handed: the AWS clients, built once per cold start, and the
//! settings. Its own module so that the handler and the modules it calls (`caches.rs`, `deselection.rs`,
//! `evidence.rs`) all stand on it and none of them imports the handler back.

use crate::settings::MonitorSettings;

#[derive(Debug)]
pub struct Deps {
    pub rds: aws_sdk_rds::Client,
    /// ElastiCache in the same region: caches are observed beside databases.
    pub ec: aws_sdk_elasticache::Client,
    pub s3: aws_sdk_s3::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub sm: aws_sdk_secretsmanager::Client,
    pub settings: MonitorSettings,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: MonitorSettings) -> Self {
        Self {
            rds: aws_sdk_rds::Client::new(config),
            ec: aws_sdk_elasticache::Client::new(config),
            s3: aws_sdk_s3::Client::new(config),
            cw: aws_sdk_cloudwatch::Client::new(config),
            sm: aws_sdk_secretsmanager::Client::new(config),
            settings,
        }
    }
}
