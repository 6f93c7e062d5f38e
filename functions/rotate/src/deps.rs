//! What every rotation step is handed: the Secrets Manager and CloudWatch clients and the settings, built once
//! per cold start. Its own module, so that the steps' modules never import the handler that calls them.

use crate::settings::RotateSettings;

#[derive(Debug)]
pub struct Deps {
    pub sm: aws_sdk_secretsmanager::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub settings: RotateSettings,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: RotateSettings) -> Self {
        Self {
            sm: aws_sdk_secretsmanager::Client::new(config),
            cw: aws_sdk_cloudwatch::Client::new(config),
            settings,
        }
    }
}
