//! What every part of the `export` function is handed: the AWS clients, each built on its first call, and the
//! settings. Its own module so that the handler and the modules it calls (`job.rs`, `caches.rs`) all stand on it
//! and none of them imports the handler back.

use std::sync::Arc;

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use lifeboat::core::client::OnFirstUse;

use crate::settings::ExportSettings;

/// The real time a plan tick's expiry measures by, beside the tick's own (claimed) time. The system clock in a
/// deployment; a test that runs a month of ticks in a few minutes sets its own.
#[derive(Clone)]
pub struct WallClock(pub Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl WallClock {
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self(Arc::new(Utc::now))
    }
}

impl std::fmt::Debug for WallClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WallClock({})", self.now())
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub rds: OnFirstUse<aws_sdk_rds::Client>,
    pub s3: OnFirstUse<aws_sdk_s3::Client>,
    pub secrets: OnFirstUse<aws_sdk_secretsmanager::Client>,
    pub cw: OnFirstUse<aws_sdk_cloudwatch::Client>,
    /// For the `copy-caches` action (`caches.rs`).
    pub ec: OnFirstUse<aws_sdk_elasticache::Client>,
    pub settings: ExportSettings,
    pub clock: WallClock,
}

impl Deps {
    pub fn new(config: &SdkConfig, settings: ExportSettings) -> Self {
        Self {
            rds: OnFirstUse::new(config, aws_sdk_rds::Client::new),
            s3: OnFirstUse::new(config, aws_sdk_s3::Client::new),
            secrets: OnFirstUse::new(config, aws_sdk_secretsmanager::Client::new),
            cw: OnFirstUse::new(config, aws_sdk_cloudwatch::Client::new),
            ec: OnFirstUse::new(config, aws_sdk_elasticache::Client::new),
            settings,
            clock: WallClock::default(),
        }
    }
}
