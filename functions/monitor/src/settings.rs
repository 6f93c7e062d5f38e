//! The `monitor` function's settings, parsed once at cold start.

use std::collections::BTreeMap;

use lifeboat::error::ConfigError;
use lifeboat::monitor::Policy;
use lifeboat::settings::{self, parse_number, read, CommonSettings, Env, QuotaSettings};

pub const TOPIC: &str = "LIFEBOAT_ALARM_TOPIC_ARN";
pub const SNAPSHOT_MAX_AGE: &str = "LIFEBOAT_SNAPSHOT_MAX_AGE_HOURS";
pub const EXPORT_MAX_AGE: &str = "LIFEBOAT_EXPORT_MAX_AGE_HOURS";
pub const RESTORE_TEST_MAX_AGE: &str = "LIFEBOAT_RESTORE_TEST_MAX_AGE_DAYS";
pub const PITR_LAG_MAX: &str = "LIFEBOAT_PITR_LAG_MAX_MINUTES";
pub const MIN_RETENTION: &str = "LIFEBOAT_MIN_RETENTION_DAYS";

#[derive(Debug, Clone)]
pub struct MonitorSettings {
    pub common: CommonSettings,
    pub bucket: String,
    /// Alarm and OK actions of every alarm.
    pub topic_arn: Option<String>,
    pub policy: Policy,
    pub snapshot_quota: u32,
    pub quota_warn_percent: u32,
}

/// `full=26,critical=7`: hours per export profile.
fn parse_export_ages(raw: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut out = BTreeMap::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (profile, hours) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not profile=hours"))?;
        let hours: u32 = hours
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not a whole number of hours", hours.trim()))?;
        if hours == 0 {
            return Err(format!("profile {}: 0 hours would always alarm", profile.trim()));
        }
        out.insert(profile.trim().to_owned(), f64::from(hours) * 3600.0);
    }
    Ok(out)
}

impl MonitorSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let bucket = settings::bucket(env)?;
        let quota = QuotaSettings::from_env(env)?;
        let raw_exports = env.get(EXPORT_MAX_AGE).unwrap_or_else(|| "full=26".to_owned());
        let export_max_age_s =
            parse_export_ages(&raw_exports).map_err(|r| ConfigError::new(EXPORT_MAX_AGE, &raw_exports, r))?;
        let policy = Policy {
            snapshot_max_age_s: f64::from(parse_number(env, SNAPSHOT_MAX_AGE, 26u32, 1..=8760)?) * 3600.0,
            export_max_age_s,
            restore_test_max_age_s: f64::from(parse_number(env, RESTORE_TEST_MAX_AGE, 100u32, 1..=3650)?) * 86400.0,
            pitr_lag_max_s: f64::from(parse_number(env, PITR_LAG_MAX, 15u32, 1..=10080)?) * 60.0,
            min_retention_days: f64::from(parse_number(env, MIN_RETENTION, 7u32, 0..=35)?),
        };
        Ok(Self {
            common: CommonSettings::from_env(env)?,
            bucket,
            topic_arn: read(env, TOPIC),
            policy,
            snapshot_quota: quota.snapshot_quota,
            quota_warn_percent: quota.warn_percent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat::settings::BUCKET;

    #[test]
    fn export_ages_parse_and_bad_ones_name_the_variable() {
        assert_eq!(parse_export_ages("full=26, critical=7").unwrap().len(), 2);
        assert!(parse_export_ages("").unwrap().is_empty());
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned())
        };
        let err = MonitorSettings::from_env(&env(&[(BUCKET, "b"), (EXPORT_MAX_AGE, "full")])).unwrap_err();
        assert_eq!(err.var, EXPORT_MAX_AGE);
        assert!(err.reason.contains("profile=hours"), "{err}");
        let err = MonitorSettings::from_env(&env(&[(BUCKET, "b"), (EXPORT_MAX_AGE, "full=0")])).unwrap_err();
        assert!(err.reason.contains("always alarm"), "{err}");
        let err = MonitorSettings::from_env(&env(&[])).unwrap_err();
        assert_eq!(err.var, BUCKET);
    }
}
