//! What every rotation step and plan tick is handed: the clients (Secrets Manager and CloudWatch; RDS and S3 for
//! plan ticks) and the settings, made once per cold start (each client built on its first call). Its own module,
//! so that the steps' modules never import the handler that calls them.

use lifeboat::core::client::OnFirstUse;

use crate::settings::RotateSettings;

#[derive(Debug)]
pub struct Deps {
    pub sm: OnFirstUse<aws_sdk_secretsmanager::Client>,
    pub cw: OnFirstUse<aws_sdk_cloudwatch::Client>,
    /// Plan ticks: the databases and their tags (which plan, which secret).
    pub rds: OnFirstUse<aws_sdk_rds::Client>,
    /// Plan ticks: the plan document.
    pub s3: OnFirstUse<aws_sdk_s3::Client>,
    pub settings: RotateSettings,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: RotateSettings) -> Self {
        Self {
            sm: OnFirstUse::new(config, aws_sdk_secretsmanager::Client::new),
            cw: OnFirstUse::new(config, aws_sdk_cloudwatch::Client::new),
            rds: OnFirstUse::new(config, aws_sdk_rds::Client::new),
            s3: OnFirstUse::new(config, aws_sdk_s3::Client::new),
            settings,
        }
    }
}
