//! What the handler is handed: the clients (each built on its first call) and settings, made once per cold start,
//! and the webhook's first retry pause (shorter in tests). Its own module, so that the parts never import the
//! handler that calls them.

use std::time::Duration;

use lifeboat::core::client::OnFirstUse;

use crate::settings::NotifySettings;

#[derive(Debug)]
pub struct Deps {
    pub rds: OnFirstUse<aws_sdk_rds::Client>,
    pub s3: OnFirstUse<aws_sdk_s3::Client>,
    pub sns: OnFirstUse<aws_sdk_sns::Client>,
    pub sm: OnFirstUse<aws_sdk_secretsmanager::Client>,
    pub cw: OnFirstUse<aws_sdk_cloudwatch::Client>,
    pub settings: NotifySettings,
    /// The first pause between webhook attempts (doubling after each).
    pub retry_pause: Duration,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: NotifySettings) -> Self {
        Self {
            rds: OnFirstUse::new(config, aws_sdk_rds::Client::new),
            s3: OnFirstUse::new(config, aws_sdk_s3::Client::new),
            sns: OnFirstUse::new(config, aws_sdk_sns::Client::new),
            sm: OnFirstUse::new(config, aws_sdk_secretsmanager::Client::new),
            cw: OnFirstUse::new(config, aws_sdk_cloudwatch::Client::new),
            settings,
            retry_pause: Duration::from_secs(2),
        }
    }
}
