//! Rules of monitoring, as pure functions: the alarm set each database gets, which alarms belong to databases that
//! are gone, how alarm names are read back, and what a human must hear about.

use std::collections::{BTreeMap, BTreeSet};

/// Every Lifeboat alarm is named `lifeboat/<db>/<check>`: `/` cannot occur in an RDS identifier, so the database
/// can be read back from the name.
pub const ALARM_PREFIX: &str = "lifeboat/";

/// Freshness and compliance policy, in seconds and days.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub snapshot_max_age_s: f64,
    /// Per export profile.
    pub export_max_age_s: BTreeMap<String, f64>,
    pub restore_test_max_age_s: f64,
    pub pitr_lag_max_s: f64,
    pub min_retention_days: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Greater,
    Less,
}

/// One alarm of a database's set.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    pub name: String,
    pub metric: &'static str,
    /// Dimensions besides `DBIdentifier`.
    pub extra_dimensions: Vec<(&'static str, String)>,
    pub comparison: Comparison,
    pub threshold: f64,
    pub description: String,
}

fn hours(s: f64) -> String {
    format!("{:.0} hours", s / 3600.0)
}

/// The alarm set of one database. Missing data counts as breaching for all of them: a metric that stopped
/// arriving means the thing measuring it stopped running.
pub fn alarm_set(db: &str, policy: &Policy) -> Vec<AlarmSpec> {
    let name = |check: &str| format!("{ALARM_PREFIX}{db}/{check}");
    let mut out = vec![AlarmSpec {
        name: name("snapshot-age"),
        metric: "SnapshotAgeSeconds",
        extra_dimensions: vec![],
        comparison: Comparison::Greater,
        threshold: policy.snapshot_max_age_s,
        description: format!(
            "{db}: the newest snapshot is older than {}",
            hours(policy.snapshot_max_age_s)
        ),
    }];
    for (profile, max) in &policy.export_max_age_s {
        out.push(AlarmSpec {
            name: name(&format!("export-age-{profile}")),
            metric: "ExportAgeSeconds",
            extra_dimensions: vec![("Profile", profile.clone())],
            comparison: Comparison::Greater,
            threshold: *max,
            description: format!(
                "{db}: the newest complete `{profile}` export is older than {}",
                hours(*max)
            ),
        });
    }
    out.extend([
        AlarmSpec {
            name: name("restore-test-age"),
            metric: "RestoreTestAgeSeconds",
            extra_dimensions: vec![],
            comparison: Comparison::Greater,
            threshold: policy.restore_test_max_age_s,
            description: format!(
                "{db}: no restore test in the last {:.0} days",
                policy.restore_test_max_age_s / 86400.0
            ),
        },
        AlarmSpec {
            name: name("restore-test-failed"),
            metric: "LastRestoreTestSuccess",
            extra_dimensions: vec![],
            comparison: Comparison::Less,
            threshold: 1.0,
            description: format!("{db}: the last restore test failed"),
        },
        AlarmSpec {
            name: name("pitr-lag"),
            metric: "PitrLagSeconds",
            extra_dimensions: vec![],
            comparison: Comparison::Greater,
            threshold: policy.pitr_lag_max_s,
            description: format!(
                "{db}: point-in-time recovery lags more than {:.0} minutes",
                policy.pitr_lag_max_s / 60.0
            ),
        },
        AlarmSpec {
            name: name("backup-retention"),
            metric: "BackupRetentionDays",
            extra_dimensions: vec![],
            comparison: Comparison::Less,
            threshold: policy.min_retention_days,
            description: format!(
                "{db}: automated backup retention is below {:.0} days",
                policy.min_retention_days
            ),
        },
    ]);
    out
}

/// The database and check an alarm name stands for, if it is one of Lifeboat's.
pub fn parse_alarm_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(ALARM_PREFIX)?;
    let (db, check) = rest.split_once('/')?;
    (!db.is_empty() && !check.is_empty()).then_some((db, check))
}

/// Existing Lifeboat alarms that no wanted alarm set contains: their database is gone or no longer selected, or
/// the policy dropped the check (an export profile, say).
pub fn stale_alarms<'a>(existing: &'a [String], wanted: &BTreeSet<String>) -> Vec<&'a str> {
    existing
        .iter()
        .filter(|n| parse_alarm_name(n).is_some() && !wanted.contains(*n))
        .map(String::as_str)
        .collect()
}

/// What one database looks like to monitor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub snapshot_age_s: Option<f64>,
    pub export_age_s: BTreeMap<String, f64>,
    pub storage_encrypted: bool,
    pub unencrypted_snapshots: usize,
}

/// Findings a human must hear about now, beyond the alarms.
pub fn attention(db: &str, o: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    if o.snapshot_age_s.is_none() && o.export_age_s.is_empty() {
        out.push(format!(
            "{db}: selected for backup but has no snapshot and no export at all"
        ));
    }
    if !o.storage_encrypted {
        out.push(format!("{db}: storage is not encrypted"));
    }
    if o.unencrypted_snapshots > 0 {
        out.push(format!("{db}: {} unencrypted snapshot(s)", o.unencrypted_snapshots));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            snapshot_max_age_s: 26.0 * 3600.0,
            export_max_age_s: [
                ("full".to_owned(), 26.0 * 3600.0),
                ("critical".to_owned(), 7.0 * 3600.0),
            ]
            .into_iter()
            .collect(),
            restore_test_max_age_s: 100.0 * 86400.0,
            pitr_lag_max_s: 900.0,
            min_retention_days: 7.0,
        }
    }

    #[test]
    fn each_database_gets_a_full_alarm_set_with_readable_names() {
        let set = alarm_set("app-prod", &policy());
        let names: Vec<_> = set.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lifeboat/app-prod/snapshot-age",
                "lifeboat/app-prod/export-age-critical",
                "lifeboat/app-prod/export-age-full",
                "lifeboat/app-prod/restore-test-age",
                "lifeboat/app-prod/restore-test-failed",
                "lifeboat/app-prod/pitr-lag",
                "lifeboat/app-prod/backup-retention",
            ]
        );
        assert_eq!(
            set[0].description,
            "app-prod: the newest snapshot is older than 26 hours"
        );
        for a in &set {
            assert_eq!(parse_alarm_name(&a.name).map(|(db, _)| db), Some("app-prod"));
        }
    }

    #[test]
    fn alarms_of_databases_that_are_gone_are_stale() {
        let wanted: BTreeSet<String> = alarm_set("app-prod", &policy()).into_iter().map(|a| a.name).collect();
        let existing = vec![
            "lifeboat/app-prod/snapshot-age".to_owned(),
            "lifeboat/retired-db/snapshot-age".to_owned(),
            "lifeboat/app-prod/export-age-weekly".to_owned(),
            "someone-elses-alarm".to_owned(),
        ];
        assert_eq!(
            stale_alarms(&existing, &wanted),
            [
                "lifeboat/retired-db/snapshot-age",
                "lifeboat/app-prod/export-age-weekly"
            ]
        );
    }

    #[test]
    fn a_database_without_any_backup_is_flagged() {
        let none = Observed {
            storage_encrypted: true,
            ..Default::default()
        };
        assert_eq!(
            attention("db", &none),
            ["db: selected for backup but has no snapshot and no export at all"]
        );
        let fine = Observed {
            snapshot_age_s: Some(10.0),
            storage_encrypted: true,
            ..Default::default()
        };
        assert!(attention("db", &fine).is_empty());
        let leaky = Observed {
            snapshot_age_s: Some(10.0),
            unencrypted_snapshots: 2,
            ..Default::default()
        };
        assert_eq!(attention("db", &leaky).len(), 2);
    }
}
