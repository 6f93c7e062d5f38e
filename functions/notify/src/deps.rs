//! What the handler is handed: the clients and settings, built once per cold start, and the webhook's first
//! retry pause (shorter in tests). Its own module, so that the parts never import the handler that calls them.

use std::time::Duration;

use crate::settings::NotifySettings;

#[derive(Debug)]
pub struct Deps {
    pub rds: aws_sdk_rds::Client,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub sm: aws_sdk_secretsmanager::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub settings: NotifySettings,
    /// The first pause between webhook attempts (doubling after each).
    pub retry_pause: Duration,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: NotifySettings) -> Self {
        Self {
            rds: aws_sdk_rds::Client::new(config),
            s3: aws_sdk_s3::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            sm: aws_sdk_secretsmanager::Client::new(config),
            cw: aws_sdk_cloudwatch::Client::new(config),
            settings,
            retry_pause: Duration::from_secs(2),
        }
    }
}
