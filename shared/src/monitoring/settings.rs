//! monitor's thresholds read from the environment: the policy its alarms enforce and the one the evidence report
//! judges by (`lifeboat report` reads the same variables, so a report made on a laptop judges as monitor does).
//!
//! Here and not in `core::settings` because they parse into this domain's [`Policy`]. An invalid value is a
//! [`ConfigError`] naming the variable and the value it got.

use crate::core::error::ConfigError;
use crate::core::settings::{parse_number, read, Env};
use crate::monitoring::monitor::{AlarmScope, Policy};

/// monitor's thresholds: the policy its alarms enforce, and the one the evidence report judges by (the
/// `lifeboat report` tool reads the same variables, so a report made on a laptop judges as monitor does).
pub const SNAPSHOT_MAX_AGE: &str = "LIFEBOAT_SNAPSHOT_MAX_AGE_HOURS";
pub const EXPORT_MAX_AGE: &str = "LIFEBOAT_EXPORT_MAX_AGE_HOURS";
pub const RESTORE_TEST_MAX_AGE: &str = "LIFEBOAT_RESTORE_TEST_MAX_AGE_DAYS";
pub const PITR_LAG_MAX: &str = "LIFEBOAT_PITR_LAG_MAX_MINUTES";
pub const MIN_RETENTION: &str = "LIFEBOAT_MIN_RETENTION_DAYS";

/// The CloudFormation stack's name (the template sets it to `${AWS::StackName}`): monitor names, lists and deletes
/// only the alarms under `lifeboat/<stack>/`, and notify reads only those ([`AlarmScope`]). Required: without it a
/// monitor could not tell its own alarms from another stack's in the same account and region.
pub const STACK_NAME: &str = "LIFEBOAT_STACK_NAME";

/// [`STACK_NAME`] as the scope of this stack's alarms; missing or not a stack name is an error naming the variable.
pub fn alarm_scope(env: &impl Env) -> Result<AlarmScope, ConfigError> {
    let Some(stack) = read(env, STACK_NAME) else {
        return Err(ConfigError::new(
            STACK_NAME,
            "",
            "required: the name of the Lifeboat stack whose alarms this function manages (the template sets it)",
        ));
    };
    AlarmScope::new(&stack).map_err(|reason| ConfigError::new(STACK_NAME, &stack, reason))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_name_is_required_and_scopes_the_alarms() {
        let missing = alarm_scope(&|_: &str| None).unwrap_err();
        assert_eq!(missing.var, STACK_NAME);
        assert!(missing.reason.contains("required"), "{missing}");
        let bad = alarm_scope(&|_: &str| Some("prod/eu".to_owned())).unwrap_err();
        assert_eq!((bad.var.as_str(), bad.value.as_str()), (STACK_NAME, "prod/eu"));
        let scope = alarm_scope(&|_: &str| Some("prod-eu".to_owned())).unwrap();
        assert_eq!(scope.prefix(), "lifeboat/prod-eu/");
        assert_eq!(
            scope.parse("lifeboat/prod-eu/app/snapshot-age"),
            Some(("app", "snapshot-age"))
        );
        assert_eq!(
            scope.parse("lifeboat/prod/app/snapshot-age"),
            None,
            "another stack's alarm"
        );
        assert_eq!(
            scope.parse("lifeboat/prod-eu/plan-unusable"),
            None,
            "a stack-wide alarm is no subject's"
        );
    }
}
