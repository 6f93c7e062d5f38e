//! What every part of the `export` function is handed: the AWS clients, built once per cold start, and the
//! settings. Its own module so that the handler and the modules it calls (`job.rs`, `caches.rs`) all stand on it
//! and none of them imports the handler back.

use aws_config::SdkConfig;

use crate::settings::ExportSettings;

#[derive(Debug, Clone)]
pub struct Deps {
    pub rds: aws_sdk_rds::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    /// For the `copy-caches` action (`caches.rs`).
    pub ec: aws_sdk_elasticache::Client,
    pub settings: ExportSettings,
}

impl Deps {
    pub fn new(config: &SdkConfig, settings: ExportSettings) -> Self {
        Self {
            rds: aws_sdk_rds::Client::new(config),
            s3: aws_sdk_s3::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            cw: aws_sdk_cloudwatch::Client::new(config),
            ec: aws_sdk_elasticache::Client::new(config),
            settings,
        }
    }
}
