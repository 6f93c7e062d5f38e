//! monitor's thresholds read from the environment: the policy its alarms enforce and the one the evidence report
//! judges by (`lifeboat report` reads the same variables, so a report made on a laptop judges as monitor does).
//!
//! Here and not in `core::settings` because they parse into this domain's [`Policy`]. An invalid value is a
//! [`ConfigError`] naming the variable and the value it got.

use crate::core::error::ConfigError;
use crate::core::settings::{parse_number, Env};
use crate::monitoring::monitor::Policy;

/// monitor's thresholds: the policy its alarms enforce, and the one the evidence report judges by (the
/// `lifeboat report` tool reads the same variables, so a report made on a laptop judges as monitor does).
pub const SNAPSHOT_MAX_AGE: &str = "LIFEBOAT_SNAPSHOT_MAX_AGE_HOURS";
pub const EXPORT_MAX_AGE: &str = "LIFEBOAT_EXPORT_MAX_AGE_HOURS";
pub const RESTORE_TEST_MAX_AGE: &str = "LIFEBOAT_RESTORE_TEST_MAX_AGE_DAYS";
pub const PITR_LAG_MAX: &str = "LIFEBOAT_PITR_LAG_MAX_MINUTES";
pub const MIN_RETENTION: &str = "LIFEBOAT_MIN_RETENTION_DAYS";

/// `full=26,critical=7`: hours per export profile.
pub fn parse_export_ages(raw: &str) -> Result<std::collections::BTreeMap<String, f64>, String> {
    let mut out = std::collections::BTreeMap::new();
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

/// The freshness and compliance policy from its five variables (defaults: 26 h, `full=26`, 100 days, 15 min,
/// 7 days).
pub fn monitor_policy(env: &impl Env) -> Result<Policy, ConfigError> {
    let raw_exports = env.get(EXPORT_MAX_AGE).unwrap_or_else(|| "full=26".to_owned());
    let export_max_age_s =
        parse_export_ages(&raw_exports).map_err(|r| ConfigError::new(EXPORT_MAX_AGE, &raw_exports, r))?;
    Ok(Policy {
        snapshot_max_age_s: f64::from(parse_number(env, SNAPSHOT_MAX_AGE, 26u32, 1..=8760)?) * 3600.0,
        export_max_age_s,
        restore_test_max_age_s: f64::from(parse_number(env, RESTORE_TEST_MAX_AGE, 100u32, 1..=3650)?) * 86400.0,
        pitr_lag_max_s: f64::from(parse_number(env, PITR_LAG_MAX, 15u32, 1..=10080)?) * 60.0,
        min_retention_days: f64::from(parse_number(env, MIN_RETENTION, 7u32, 0..=35)?),
    })
}
