//! What every part of the `monitor` function is handed: the AWS clients, each built on its first call, and the
//! settings. Its own module so that the handler and the modules it calls (`caches.rs`, `deselection.rs`,
//! `evidence.rs`) all stand on it and none of them imports the handler back.

use lifeboat::core::client::OnFirstUse;

use crate::settings::MonitorSettings;

#[derive(Debug)]
pub struct Deps {
    pub rds: OnFirstUse<aws_sdk_rds::Client>,
    /// ElastiCache in the same region: caches are observed beside databases.
    pub ec: OnFirstUse<aws_sdk_elasticache::Client>,
    pub s3: OnFirstUse<aws_sdk_s3::Client>,
    pub cw: OnFirstUse<aws_sdk_cloudwatch::Client>,
    pub sm: OnFirstUse<aws_sdk_secretsmanager::Client>,
    pub settings: MonitorSettings,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: MonitorSettings) -> Self {
        Self {
            rds: OnFirstUse::new(config, aws_sdk_rds::Client::new),
            ec: OnFirstUse::new(config, aws_sdk_elasticache::Client::new),
            s3: OnFirstUse::new(config, aws_sdk_s3::Client::new),
            cw: OnFirstUse::new(config, aws_sdk_cloudwatch::Client::new),
            sm: OnFirstUse::new(config, aws_sdk_secretsmanager::Client::new),
            settings,
        }
    }
}
