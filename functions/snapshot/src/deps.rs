//! What every part of the `snapshot` function is handed: the AWS clients (the DR region's too), built once per
//! cold start, the settings, and where the plan document lives (plan mode). Its own module so that the handler,
//! `caches.rs` and `plan.rs` all stand on it and none of them imports the handler back.

use aws_config::SdkConfig;
use lifeboat::core::client::OnFirstUse;
use lifeboat::plans::store::Location;
use lifeboat::rds::settings::SnapshotSettings;

/// Clients and settings, made once per cold start (each client built on its first call) and borrowed by every
/// invocation.
#[derive(Debug, Clone)]
pub struct Deps {
    pub rds: OnFirstUse<aws_sdk_rds::Client>,
    /// ElastiCache in the same region: caches are selected and snapshotted beside databases.
    pub ec: OnFirstUse<aws_sdk_elasticache::Client>,
    /// A client in the DR region, when copies are configured.
    pub dr_rds: Option<OnFirstUse<aws_sdk_rds::Client>>,
    pub cw: OnFirstUse<aws_sdk_cloudwatch::Client>,
    /// Reads the plan document's versions (plan mode only).
    pub s3: OnFirstUse<aws_sdk_s3::Client>,
    pub region: String,
    pub settings: SnapshotSettings,
    /// `LIFEBOAT_PLAN_DOCUMENT`: set, a scheduled event is a plan tick; unset, the deployment's settings decide
    /// as they always did.
    pub plan: Option<Location>,
    /// Where a plan tick starts the restore tests its plans' rules make due (`LIFEBOAT_RESTORE_TEST_STATE_MACHINE`).
    pub restore_tests: Option<RestoreTests>,
}

/// The restore-test state machine and the client that starts it.
#[derive(Debug, Clone)]
pub struct RestoreTests {
    pub sfn: OnFirstUse<aws_sdk_sfn::Client>,
    pub state_machine: String,
}

impl Deps {
    pub fn new(config: &SdkConfig, settings: SnapshotSettings) -> Self {
        let dr_rds = settings.copy.region.as_deref().map(|region| {
            OnFirstUse::new(
                &lifeboat::core::aws::for_region(config, region),
                aws_sdk_rds::Client::new,
            )
        });
        Self {
            rds: OnFirstUse::new(config, aws_sdk_rds::Client::new),
            ec: OnFirstUse::new(config, aws_sdk_elasticache::Client::new),
            dr_rds,
            cw: OnFirstUse::new(config, aws_sdk_cloudwatch::Client::new),
            s3: OnFirstUse::new(config, aws_sdk_s3::Client::new),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            settings,
            plan: None,
            restore_tests: None,
        }
    }

    /// The same, starting restore tests on the state machine `arn` (`None`: this deployment has none).
    pub fn with_restore_tests(mut self, config: &SdkConfig, arn: Option<String>) -> Self {
        self.restore_tests = arn.map(|state_machine| RestoreTests {
            sfn: OnFirstUse::new(config, aws_sdk_sfn::Client::new),
            state_machine,
        });
        self
    }

    /// The same clients and settings following the plan document at `plan` (`None`: legacy mode).
    pub fn with_plan(mut self, plan: Option<Location>) -> Self {
        self.plan = plan;
        self
    }
}
