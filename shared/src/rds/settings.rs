//! The RDS side's settings: which databases a run works on, how many at once, and the `snapshot` function's
//! retention, manual expiry, DR copies and quota, parsed once at cold start.
//!
//! Here and not in `core::settings` because they parse into this domain's types ([`Selector`], [`Gfs`]); the
//! machinery and the variables several domains share stay in the core. An invalid value is a [`ConfigError`]
//! naming the variable and the value it got.

use crate::core::error::ConfigError;
use crate::core::settings::{
    parse_list, parse_number, read, serverless_caches, Env, BUCKET, DEFAULT_NAMESPACE, METRICS_NAMESPACE,
};
use crate::rds::retention::Gfs;
use crate::rds::selection::{Selector, TagSelector};

pub const DATABASES: &str = "LIFEBOAT_DATABASES";
pub const SELECT_TAG: &str = "LIFEBOAT_SELECT_TAG";
pub const CONCURRENCY: &str = "LIFEBOAT_CONCURRENCY";
pub const RETENTION: &str = "LIFEBOAT_RETENTION";
pub const MANUAL_RETAIN_DAYS: &str = "LIFEBOAT_MANUAL_RETAIN_DAYS";
pub const DR_REGION: &str = "LIFEBOAT_DR_REGION";
pub const DR_KMS_KEY_ID: &str = "LIFEBOAT_DR_KMS_KEY_ID";
pub const SHARE_ACCOUNTS: &str = "LIFEBOAT_SHARE_ACCOUNTS";
pub const MAX_COPIES_IN_FLIGHT: &str = "LIFEBOAT_MAX_COPIES_IN_FLIGHT";
pub const SNAPSHOT_QUOTA: &str = "LIFEBOAT_SNAPSHOT_QUOTA";
pub const QUOTA_WARN_PERCENT: &str = "LIFEBOAT_QUOTA_WARN_PERCENT";

pub const DEFAULT_SELECT_TAG: &str = "lifeboat:backup=true";
pub const DEFAULT_RETENTION: &str = "daily=7,weekly=4,monthly=12,yearly=3";
/// RDS allows at most 5 snapshot copies in flight per destination region by default (a quota that can be raised
/// only by AWS support); more would just fail.
pub const RDS_COPY_LIMIT: u32 = 5;

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
            crate::rds::naming::validate_db_identifier(db).map_err(|reason| ConfigError::new(DATABASES, db, reason))?;
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
    /// The export bucket (`LIFEBOAT_BUCKET`), where retention reads the content watch's holds (`watch::hold`).
    /// The stack always sets it; a run without it has no bucket where a hold could be, and reads none.
    pub bucket: Option<String>,
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
            bucket: read(env, BUCKET),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::settings::SERVERLESS_CACHES;
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
