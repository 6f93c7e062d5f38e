//! The `monitor` function's settings, parsed once at cold start.

use lifeboat::core::error::ConfigError;
use lifeboat::core::settings::{self, read, Env};
use lifeboat::monitoring::monitor::{AlarmScope, Policy};
use lifeboat::plans::store::Location;
use lifeboat::rds::settings::{CommonSettings, QuotaSettings};

pub const TOPIC: &str = "LIFEBOAT_ALARM_TOPIC_ARN";
/// The maximum age of a cache's newest verified RDB copy, in hours (default 26), or `off` when caches' RDB
/// copies are not made (no `export-age` alarm for caches then; the age is still published when a copy exists).
pub const CACHE_EXPORT_MAX_AGE: &str = "LIFEBOAT_CACHE_EXPORT_MAX_AGE_HOURS";
/// The policy's variables are declared with its parser in `lifeboat::core::settings` (the `lifeboat report` tool
/// reads them too).
pub use lifeboat::monitoring::settings::{
    EXPORT_MAX_AGE, MIN_RETENTION, PITR_LAG_MAX, RESTORE_TEST_MAX_AGE, SNAPSHOT_MAX_AGE,
};

#[derive(Debug, Clone)]
pub struct MonitorSettings {
    pub common: CommonSettings,
    pub bucket: String,
    /// Alarm and OK actions of every alarm.
    pub topic_arn: Option<String>,
    pub policy: Policy,
    pub snapshot_quota: u32,
    pub quota_warn_percent: u32,
    /// See [`CACHE_EXPORT_MAX_AGE`]; `None` when `off`.
    pub cache_export_max_age_s: Option<f64>,
    /// Whether serverless caches are watched too (`LIFEBOAT_SERVERLESS_CACHES`).
    pub serverless_caches: bool,
    /// The plan document (`LIFEBOAT_PLAN_DOCUMENT`): when set, every resource's thresholds come from its plan
    /// (`crate::plan`) and the evidence report's "expected" from the version in force each day; `policy` and
    /// `cache_export_max_age_s` are then unused.
    pub plan: Option<Location>,
    /// This stack's alarms (`LIFEBOAT_STACK_NAME`): the only ones monitor names, lists and deletes.
    pub alarm_scope: AlarmScope,
}

/// [`CACHE_EXPORT_MAX_AGE`]: `off`, or whole hours from 1 to 8760 (26 when unset).
fn cache_export_max_age(env: &impl Env) -> Result<Option<f64>, ConfigError> {
    if read(env, CACHE_EXPORT_MAX_AGE).is_some_and(|v| v.eq_ignore_ascii_case("off")) {
        return Ok(None);
    }
    let hours: u32 = settings::parse_number(env, CACHE_EXPORT_MAX_AGE, 26, 1..=8760)?;
    Ok(Some(f64::from(hours) * 3600.0))
}

impl MonitorSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let bucket = settings::bucket(env)?;
        let quota = QuotaSettings::from_env(env)?;
        let policy = lifeboat::monitoring::settings::monitor_policy(env)?;
        Ok(Self {
            common: CommonSettings::from_env(env)?,
            bucket,
            topic_arn: read(env, TOPIC),
            policy,
            snapshot_quota: quota.snapshot_quota,
            quota_warn_percent: quota.warn_percent,
            cache_export_max_age_s: cache_export_max_age(env)?,
            serverless_caches: settings::serverless_caches(env)?,
            plan: Location::from_env(env)?,
            alarm_scope: lifeboat::monitoring::settings::alarm_scope(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat::core::settings::BUCKET;
    use lifeboat::monitoring::settings::{parse_export_ages, STACK_NAME};

    #[test]
    fn export_ages_parse_and_bad_ones_name_the_variable() {
        assert_eq!(parse_export_ages("full=26, critical=7").unwrap().len(), 2);
        assert!(parse_export_ages("").unwrap().is_empty());
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned())
        };
        let err = MonitorSettings::from_env(&env(&[(BUCKET, "b"), (STACK_NAME, "prod"), (EXPORT_MAX_AGE, "full")]))
            .unwrap_err();
        assert_eq!(err.var, EXPORT_MAX_AGE);
        assert!(err.reason.contains("profile=hours"), "{err}");
        let err = MonitorSettings::from_env(&env(&[(BUCKET, "b"), (STACK_NAME, "prod"), (EXPORT_MAX_AGE, "full=0")]))
            .unwrap_err();
        assert!(err.reason.contains("always alarm"), "{err}");
        let err = MonitorSettings::from_env(&env(&[])).unwrap_err();
        assert_eq!(err.var, BUCKET);
    }

    #[test]
    fn the_cache_export_age_is_hours_or_off() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned())
        };
        let s = MonitorSettings::from_env(&env(&[(BUCKET, "b"), (STACK_NAME, "prod")])).unwrap();
        assert_eq!(s.cache_export_max_age_s, Some(26.0 * 3600.0));
        let s = MonitorSettings::from_env(&env(&[
            (BUCKET, "b"),
            (STACK_NAME, "prod"),
            (CACHE_EXPORT_MAX_AGE, "Off"),
        ]))
        .unwrap();
        assert_eq!(s.cache_export_max_age_s, None);
        let err = MonitorSettings::from_env(&env(&[
            (BUCKET, "b"),
            (STACK_NAME, "prod"),
            (CACHE_EXPORT_MAX_AGE, "0"),
        ]))
        .unwrap_err();
        assert_eq!(err.var, CACHE_EXPORT_MAX_AGE);
    }
}
