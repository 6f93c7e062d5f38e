//! Typed settings, parsed once at cold start from `LIFEBOAT_*` variables.
//!
//! Every variable has a named constant and a documented default (the README's configuration table lists the
//! same names). An invalid value is a [`ConfigError`] naming the variable and the value it got, so a bad
//! deployment fails at start-up with a message an operator can act on, not halfway through a run.

use crate::error::ConfigError;
use crate::retention::Gfs;
use crate::selection::{Selector, TagSelector};

pub const DATABASES: &str = "LIFEBOAT_DATABASES";
pub const SELECT_TAG: &str = "LIFEBOAT_SELECT_TAG";
pub const CONCURRENCY: &str = "LIFEBOAT_CONCURRENCY";
pub const METRICS_NAMESPACE: &str = "LIFEBOAT_METRICS_NAMESPACE";
pub const RETENTION: &str = "LIFEBOAT_RETENTION";
pub const MANUAL_RETAIN_DAYS: &str = "LIFEBOAT_MANUAL_RETAIN_DAYS";
pub const DR_REGION: &str = "LIFEBOAT_DR_REGION";
pub const DR_KMS_KEY_ID: &str = "LIFEBOAT_DR_KMS_KEY_ID";
pub const SHARE_ACCOUNTS: &str = "LIFEBOAT_SHARE_ACCOUNTS";
pub const MAX_COPIES_IN_FLIGHT: &str = "LIFEBOAT_MAX_COPIES_IN_FLIGHT";
pub const SNAPSHOT_QUOTA: &str = "LIFEBOAT_SNAPSHOT_QUOTA";
pub const QUOTA_WARN_PERCENT: &str = "LIFEBOAT_QUOTA_WARN_PERCENT";
/// The export bucket: exports, manifests, restore-test reports and notification state (see [`crate::bucket`]).
pub const BUCKET: &str = "LIFEBOAT_BUCKET";
/// The `pg_restore` program that proves and restores archives (export and restore).
pub const PG_RESTORE: &str = "LIFEBOAT_PG_RESTORE";

pub const DEFAULT_SELECT_TAG: &str = "lifeboat:backup=true";
pub const DEFAULT_RETENTION: &str = "daily=7,weekly=4,monthly=12,yearly=3";
pub const DEFAULT_NAMESPACE: &str = "Lifeboat";
/// RDS allows at most 5 snapshot copies in flight per destination region by default (a quota that can be raised
/// only by AWS support); more would just fail.
pub const RDS_COPY_LIMIT: u32 = 5;

/// A source of variables: the process environment in production, a map in tests.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Reads a variable, treating an empty or blank value as unset (a SAM parameter left empty arrives as "").
pub fn read(env: &impl Env, name: &str) -> Option<String> {
    env.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

pub fn parse_number<T>(
    env: &impl Env,
    name: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = read(env, name) else {
        return Ok(default);
    };
    let value: T = raw
        .parse()
        .map_err(|_| ConfigError::new(name, &raw, "expected a whole number"))?;
    if !range.contains(&value) {
        return Err(ConfigError::new(
            name,
            &raw,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

pub fn parse_list(env: &impl Env, name: &str) -> Vec<String> {
    read(env, name)
        .map(|raw| {
            raw.split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The export bucket, which every function that reads or writes it requires.
pub fn bucket(env: &impl Env) -> Result<String, ConfigError> {
    read(env, BUCKET).ok_or_else(|| ConfigError::new(BUCKET, "", "required: the bucket holding exports and reports"))
}

/// The `pg_restore` program: the one on the `PATH` unless configured.
pub fn pg_restore(env: &impl Env) -> String {
    read(env, PG_RESTORE).unwrap_or_else(|| "pg_restore".to_owned())
}

/// The account's manual-snapshot quota per region and the share of it at which a run warns; `snapshot` reports
/// against it after each run and `monitor` publishes it, so both read the same two variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSettings {
    /// 100 unless raised.
    pub snapshot_quota: u32,
    pub warn_percent: u32,
}

impl QuotaSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            snapshot_quota: parse_number(env, SNAPSHOT_QUOTA, 100, 1..=100_000)?,
            warn_percent: parse_number(env, QUOTA_WARN_PERCENT, 80, 1..=100)?,
        })
    }
}

/// Settings every function shares: which databases, how many at once, where metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonSettings {
    pub selector: Selector,
    /// How many databases one run works on at once.
    pub concurrency: usize,
    pub metrics_namespace: String,
}

impl CommonSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let databases = parse_list(env, DATABASES);
        for db in &databases {
            crate::naming::validate_db_identifier(db).map_err(|reason| ConfigError::new(DATABASES, db, reason))?;
        }
        // The tag selector is on by default; `none` turns it off so that only the explicit list counts.
        let tag = match env.get(SELECT_TAG).map(|v| v.trim().to_owned()) {
            None => Some(
                TagSelector::parse(DEFAULT_SELECT_TAG)
                    .map_err(|r| ConfigError::new(SELECT_TAG, DEFAULT_SELECT_TAG, r))?,
            ),
            Some(v) if v.eq_ignore_ascii_case("none") || v.is_empty() => None,
            Some(v) => Some(TagSelector::parse(&v).map_err(|reason| ConfigError::new(SELECT_TAG, &v, reason))?),
        };
        if databases.is_empty() && tag.is_none() {
            return Err(ConfigError::new(
                SELECT_TAG,
                &env.get(SELECT_TAG).unwrap_or_default(),
                format!(
                    "no databases would be selected: set {DATABASES} or a tag selector such as `{DEFAULT_SELECT_TAG}`"
                ),
            ));
        }
        Ok(Self {
            selector: Selector { databases, tag },
            concurrency: parse_number(env, CONCURRENCY, 4usize, 1..=32)?,
            metrics_namespace: read(env, METRICS_NAMESPACE).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        })
    }
}

/// Where and how snapshots are copied for disaster recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySettings {
    /// Destination region for copies; `None` keeps snapshots in the source region only.
    pub region: Option<String>,
    /// KMS key (id, alias or ARN in the destination) that copies are re-encrypted with. Required with a region.
    pub kms_key_id: Option<String>,
    /// Accounts the destination snapshots are shared with (the restore attribute).
    pub share_accounts: Vec<String>,
    pub max_in_flight: u32,
}

/// Settings of the `snapshot` function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSettings {
    pub common: CommonSettings,
    pub retention: Gfs,
    /// How long a manual (console) snapshot is kept unless the invocation says otherwise.
    pub manual_retain_days: u32,
    pub copy: CopySettings,
    /// The account's manual-snapshot quota per region (100 unless raised).
    pub snapshot_quota: u32,
    /// Percentage of the quota at which the run warns.
    pub quota_warn_percent: u32,
    /// Whether ElastiCache Serverless caches are read too ([`serverless_caches`]).
    pub serverless_caches: bool,
}

impl SnapshotSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let common = CommonSettings::from_env(env)?;
        let retention_raw = read(env, RETENTION).unwrap_or_else(|| DEFAULT_RETENTION.to_owned());
        let retention =
            Gfs::parse(&retention_raw).map_err(|reason| ConfigError::new(RETENTION, &retention_raw, reason))?;

        let region = read(env, DR_REGION);
        if let Some(r) = &region {
            let valid = r.split('-').count() >= 3
                && r.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                return Err(ConfigError::new(
                    DR_REGION,
                    r,
                    "expected an AWS region name such as `eu-west-1`",
                ));
            }
        }
        let kms_key_id = read(env, DR_KMS_KEY_ID);
        if region.is_some() && kms_key_id.is_none() {
            return Err(ConfigError::new(
                DR_KMS_KEY_ID,
                "",
                format!("required when {DR_REGION} is set: copies are re-encrypted with an explicit key in the destination region"),
            ));
        }
        let share_accounts = parse_list(env, SHARE_ACCOUNTS);
        for account in &share_accounts {
            if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
                return Err(ConfigError::new(
                    SHARE_ACCOUNTS,
                    account,
                    "expected 12-digit AWS account ids, comma-separated",
                ));
            }
        }
        let quota = QuotaSettings::from_env(env)?;
        Ok(Self {
            serverless_caches: serverless_caches(env)?,
            common,
            retention,
            manual_retain_days: parse_number(env, MANUAL_RETAIN_DAYS, 30, 1..=3650)?,
            copy: CopySettings {
                region,
                kms_key_id,
                share_accounts,
                max_in_flight: parse_number(env, MAX_COPIES_IN_FLIGHT, RDS_COPY_LIMIT, 1..=RDS_COPY_LIMIT)?,
            },
            snapshot_quota: quota.snapshot_quota,
            quota_warn_percent: quota.warn_percent,
        })
    }
}

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
pub fn monitor_policy(env: &impl Env) -> Result<crate::monitor::Policy, ConfigError> {
    let raw_exports = env.get(EXPORT_MAX_AGE).unwrap_or_else(|| "full=26".to_owned());
    let export_max_age_s =
        parse_export_ages(&raw_exports).map_err(|r| ConfigError::new(EXPORT_MAX_AGE, &raw_exports, r))?;
    Ok(crate::monitor::Policy {
        snapshot_max_age_s: f64::from(parse_number(env, SNAPSHOT_MAX_AGE, 26u32, 1..=8760)?) * 3600.0,
        export_max_age_s,
        restore_test_max_age_s: f64::from(parse_number(env, RESTORE_TEST_MAX_AGE, 100u32, 1..=3650)?) * 86400.0,
        pitr_lag_max_s: f64::from(parse_number(env, PITR_LAG_MAX, 15u32, 1..=10080)?) * 60.0,
        min_retention_days: f64::from(parse_number(env, MIN_RETENTION, 7u32, 0..=35)?),
    })
}

/// Whether ElastiCache Serverless caches are selected, snapshotted and watched: `true` or `false`. Unset is
/// `false`, so that a deployment in a region without ElastiCache Serverless (or an emulator without it) never
/// calls it; the template sets it from its `ServerlessCaches` parameter (default `true`).
pub const SERVERLESS_CACHES: &str = "LIFEBOAT_SERVERLESS_CACHES";

/// [`SERVERLESS_CACHES`], parsed.
pub fn serverless_caches(env: &impl Env) -> Result<bool, ConfigError> {
    match read(env, SERVERLESS_CACHES).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(ConfigError::new(SERVERLESS_CACHES, &v, "expected `true` or `false`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Env {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn serverless_caches_are_read_only_when_asked_for() {
        assert!(!serverless_caches(&env(&[])).unwrap());
        assert!(serverless_caches(&env(&[(SERVERLESS_CACHES, "TRUE")])).unwrap());
        assert!(!serverless_caches(&env(&[(SERVERLESS_CACHES, "false")])).unwrap());
        let err = serverless_caches(&env(&[(SERVERLESS_CACHES, "yes")])).unwrap_err();
        assert_eq!(err.var, SERVERLESS_CACHES);
        assert!(
            SnapshotSettings::from_env(&env(&[(SERVERLESS_CACHES, "true")]))
                .unwrap()
                .serverless_caches
        );
    }

    #[test]
    fn defaults_select_by_tag_and_keep_a_sensible_gfs() {
        let s = SnapshotSettings::from_env(&env(&[])).unwrap();
        assert_eq!(
            s.common.selector.tag,
            Some(TagSelector {
                key: "lifeboat:backup".into(),
                value: Some("true".into())
            })
        );
        assert!(s.common.selector.databases.is_empty());
        assert_eq!(
            s.retention,
            Gfs {
                daily: 7,
                weekly: 4,
                monthly: 12,
                yearly: 3
            }
        );
        assert_eq!(s.copy.max_in_flight, 5);
        assert_eq!(s.common.concurrency, 4);
        assert_eq!(s.common.metrics_namespace, "Lifeboat");
    }

    #[test]
    fn explicit_list_only() {
        let s = CommonSettings::from_env(&env(&[(DATABASES, "app-prod, billing"), (SELECT_TAG, "none")])).unwrap();
        assert_eq!(s.selector.databases, vec!["app-prod", "billing"]);
        assert_eq!(s.selector.tag, None);
    }

    #[test]
    fn nothing_selected_is_an_error_naming_the_variables() {
        let err = CommonSettings::from_env(&env(&[(SELECT_TAG, "none")])).unwrap_err();
        assert_eq!(err.var, SELECT_TAG);
        assert!(err.reason.contains(DATABASES), "{err}");
    }

    #[test]
    fn invalid_values_name_variable_and_value() {
        let cases = [
            (CONCURRENCY, "lots", "expected a whole number"),
            (CONCURRENCY, "0", "between 1 and 32"),
            (RETENTION, "daily=7,hourly=3", "unknown period `hourly`"),
            (MAX_COPIES_IN_FLIGHT, "9", "between 1 and 5"),
            (SHARE_ACCOUNTS, "12345", "12-digit"),
            (DATABASES, "Bad_Name!", "letters, digits and hyphens"),
            (DR_REGION, "Mars", "AWS region"),
        ];
        for (var, value, expected) in cases {
            let err = SnapshotSettings::from_env(&env(&[(var, value)])).unwrap_err();
            assert_eq!(err.var, var, "{err}");
            assert_eq!(err.value, value, "{err}");
            assert!(err.reason.contains(expected), "{var}={value}: {err}");
        }
    }

    #[test]
    fn dr_region_requires_an_explicit_key() {
        let err = SnapshotSettings::from_env(&env(&[(DR_REGION, "eu-west-1")])).unwrap_err();
        assert_eq!(err.var, DR_KMS_KEY_ID);
        let ok = SnapshotSettings::from_env(&env(&[(DR_REGION, "eu-west-1"), (DR_KMS_KEY_ID, "alias/lifeboat-dr")]))
            .unwrap();
        assert_eq!(ok.copy.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn blank_values_count_as_unset() {
        let s = SnapshotSettings::from_env(&env(&[(RETENTION, "  "), (DR_REGION, "")])).unwrap();
        assert_eq!(s.retention, Gfs::parse(DEFAULT_RETENTION).unwrap());
        assert_eq!(s.copy.region, None);
    }
}
