//! What every rotation step and plan tick is handed: the clients (Secrets Manager and CloudWatch; RDS and S3 for
//! plan ticks) and the settings, built once per cold start. Its own module, so that the steps' modules never import the handler that calls them.

use crate::settings::RotateSettings;

#[derive(Debug)]
pub struct Deps {
    pub sm: aws_sdk_secretsmanager::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    /// Plan ticks: the databases and their tags (which plan, which secret).
    pub rds: aws_sdk_rds::Client,
    /// Plan ticks: the plan document.
    pub s3: aws_sdk_s3::Client,
    pub settings: RotateSettings,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: RotateSettings) -> Self {
        Self {
            sm: aws_sdk_secretsmanager::Client::new(config),
            cw: aws_sdk_cloudwatch::Client::new(config),
            rds: aws_sdk_rds::Client::new(config),
            s3: aws_sdk_s3::Client::new(config),
            settings,
        }
    }
}
