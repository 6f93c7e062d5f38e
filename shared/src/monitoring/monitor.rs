//! Rules of monitoring, as pure functions: the alarm set each database gets (names, metrics, thresholds, how
//! missing data counts), which alarms belong to databases that are gone, how alarm names are read back, what one
//! database's observed facts mean (its view, its metrics, what a human must hear about), whether a restore-test
//! report counts as passed, and which expired restore-test resources the janitor deletes.
//!
//! It must never call AWS: the monitor handler gathers the facts through the adapters and hands them here.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::core::metrics::{self, Metrics, DB_DIMENSION, PROFILE_DIMENSION};
use crate::rds::described::BackupDetails;
use crate::rds::restore::expired_restore_test;
use crate::rds::selection::{Database, DbKind};

/// Every Lifeboat alarm starts with this; a stack's per-database and per-cache alarms are named
/// `lifeboat/<stack>/<subject>/<check>` ([`AlarmScope`]).
pub const ALARM_ROOT: &str = "lifeboat/";

/// The alarms of one Lifeboat stack: `lifeboat/<stack>/<subject>/<check>`, where the subject is a database or
/// `cache:<id>`. Scoped by the stack's name so that two stacks in one account and region (staging and
/// production) each list, keep and delete only their own alarms: with one fixed prefix, each stack's monitor took
/// the other's alarms for those of databases it no longer watched and deleted them. `/` cannot occur in a
/// CloudFormation stack name nor in an RDS or ElastiCache identifier, so the subject reads back unambiguously. A
/// stack-wide alarm of the template is named `lifeboat/<stack>/<name>` (no further `/`), so it never parses as a
/// subject's alarm and is never deleted here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmScope {
    /// `lifeboat/<stack>/`.
    prefix: String,
}

impl AlarmScope {
    /// The scope of the stack named `stack`; `Err` names what is wrong with it (a CloudFormation stack name:
    /// a letter, then letters, digits and hyphens, at most 128 characters).
    pub fn new(stack: &str) -> Result<Self, String> {
        let valid = stack.len() <= 128
            && stack.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && stack.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err("not a CloudFormation stack name (a letter, then letters, digits and hyphens)".into());
        }
        Ok(Self {
            prefix: format!("{ALARM_ROOT}{stack}/"),
        })
    }

    /// `lifeboat/<stack>/`: what monitor lists its alarms by, and all its role may put or delete.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The name of one check's alarm of one subject (a database, or `cache:<id>`).
    pub fn name(&self, subject: &str, check: &str) -> String {
        format!("{}{subject}/{check}", self.prefix)
    }

    /// The subject and check an alarm name stands for, if it is one of this stack's per-subject alarms.
    pub fn parse<'a>(&self, name: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = name.strip_prefix(self.prefix.as_str())?;
        let (subject, check) = rest.split_once('/')?;
        (!subject.is_empty() && !check.is_empty()).then_some((subject, check))
    }
}

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

/// The thresholds one database or cache is held to, in seconds and days. `None` (or a profile not in the map):
/// not alarmed on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Thresholds {
    /// The newest snapshot's age (a database's `snapshots` rule, a cache's `cache_snapshots`).
    pub snapshot_max_age_s: Option<f64>,
    /// A database's newest complete export per profile (`exports.<profile>`).
    pub export_max_age_s: BTreeMap<String, f64>,
    /// A cache's newest verified RDB copy (`rdb_copies`).
    pub rdb_copy_max_age_s: Option<f64>,
    /// The newest restore test's age: the smallest of the resource's restore tests; with it comes the
    /// `restore-test-failed` alarm.
    pub restore_test_max_age_s: Option<f64>,
    /// How far point-in-time recovery may lag (`pitr.max_lag_minutes`).
    pub pitr_lag_max_s: Option<f64>,
    /// How old the newest recovery point a passed restore test proved may be (the verified RPO): what the
    /// resource's restore-test rules promise ([`crate::monitoring::plan`]); with it comes the `verified-rpo` alarm.
    pub verified_rpo_max_s: Option<f64>,
    /// The smallest automated backup retention (`pitr.min_days`; for a cache, ElastiCache's own retention, which a
    /// plan does not state).
    pub min_retention_days: Option<f64>,
}

impl Policy {
    /// Legacy mode: the one policy, every threshold it has set, as a database's thresholds. It states no
    /// verified RPO (its metric is published all the same): the `verified-rpo` alarm is a plan's.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            snapshot_max_age_s: Some(self.snapshot_max_age_s),
            export_max_age_s: self.export_max_age_s.clone(),
            rdb_copy_max_age_s: None,
            restore_test_max_age_s: Some(self.restore_test_max_age_s),
            pitr_lag_max_s: Some(self.pitr_lag_max_s),
            verified_rpo_max_s: None,
            min_retention_days: Some(self.min_retention_days),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Greater,
    Less,
}

/// Every alarm looks at one-hour periods: monitor runs hourly.
pub const ALARM_PERIOD_S: i32 = 3600;
/// Two periods are evaluated, one breaching datapoint is enough: two hours of silence is missing data.
pub const ALARM_EVALUATION_PERIODS: i32 = 2;
pub const ALARM_DATAPOINTS_TO_ALARM: i32 = 1;
/// Missing data breaches: a metric that stopped arriving means the thing measuring it stopped running.
pub const ALARM_TREAT_MISSING_DATA: &str = "breaching";

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

/// The check of the content watch's alarm (`lifeboat/<stack>/<db>/content`, `.../cache:<id>/content`).
pub const CONTENT_CHECK: &str = "content";

/// The content watch's alarm of a database or cache whose backups are compared (it has exports or RDB copies):
/// in ALARM while any of its content anomalies is open (`ContentAnomalies` above 0, `watch::hold`).
pub fn content_alarm(name: String, what: &str) -> AlarmSpec {
    AlarmSpec {
        name,
        metric: metrics::CONTENT_ANOMALIES,
        extra_dimensions: vec![],
        comparison: Comparison::Greater,
        threshold: 0.0,
        description: format!(
            "{what}: a backup's content changed beyond its thresholds; the last good restore points are held until \
             a person acknowledges (docs/book/src/runbooks/content-anomaly.md)"
        ),
    }
}

/// The alarm set of one database under the one legacy policy (every check).
pub fn alarm_set(scope: &AlarmScope, db: &str, policy: &Policy) -> Vec<AlarmSpec> {
    alarm_set_for(scope, db, &policy.thresholds())
}

/// The alarm set of one database held to `t`: one alarm per threshold it has, none for one it has not
/// ([`crate::monitoring::plan`]). Missing data counts as breaching for all of them: a metric that stopped
/// arriving means the thing measuring it stopped running.
pub fn alarm_set_for(scope: &AlarmScope, db: &str, t: &Thresholds) -> Vec<AlarmSpec> {
    let name = |check: &str| scope.name(db, check);
    let mut out = Vec::new();
    if let Some(max) = t.snapshot_max_age_s {
        out.push(AlarmSpec {
            name: name("snapshot-age"),
            metric: metrics::SNAPSHOT_AGE_SECONDS,
            extra_dimensions: vec![],
            comparison: Comparison::Greater,
            threshold: max,
            description: format!("{db}: the newest snapshot is older than {}", hours(max)),
        });
    }
    for (profile, max) in &t.export_max_age_s {
        out.push(AlarmSpec {
            name: name(&format!("export-age-{profile}")),
            metric: metrics::EXPORT_AGE_SECONDS,
            extra_dimensions: vec![(PROFILE_DIMENSION, profile.clone())],
            comparison: Comparison::Greater,
            threshold: *max,
            description: format!(
                "{db}: the newest complete `{profile}` export is older than {}",
                hours(*max)
            ),
        });
    }
    if !t.export_max_age_s.is_empty() {
        out.push(content_alarm(name(CONTENT_CHECK), db));
    }
    if let Some(max) = t.restore_test_max_age_s {
        out.extend([
            AlarmSpec {
                name: name("restore-test-age"),
                metric: metrics::RESTORE_TEST_AGE_SECONDS,
                extra_dimensions: vec![],
                comparison: Comparison::Greater,
                threshold: max,
                description: format!("{db}: no restore test in the last {:.0} days", max / 86400.0),
            },
            AlarmSpec {
                name: name("restore-test-failed"),
                metric: metrics::LAST_RESTORE_TEST_SUCCESS,
                extra_dimensions: vec![],
                comparison: Comparison::Less,
                threshold: 1.0,
                description: format!("{db}: the last restore test failed"),
            },
        ]);
    }
    if let Some(max) = t.verified_rpo_max_s {
        out.push(AlarmSpec {
            name: name("verified-rpo"),
            metric: metrics::VERIFIED_RPO_SECONDS,
            extra_dimensions: vec![],
            comparison: Comparison::Greater,
            threshold: max,
            description: format!(
                "{db}: the newest backup a restore test proved is older than {} (verified RPO)",
                hours(max)
            ),
        });
    }
    if let Some(max) = t.pitr_lag_max_s {
        out.push(AlarmSpec {
            name: name("pitr-lag"),
            metric: metrics::PITR_LAG_SECONDS,
            extra_dimensions: vec![],
            comparison: Comparison::Greater,
            threshold: max,
            description: format!("{db}: point-in-time recovery lags more than {:.0} minutes", max / 60.0),
        });
    }
    if let Some(min) = t.min_retention_days {
        out.push(AlarmSpec {
            name: name("backup-retention"),
            metric: metrics::BACKUP_RETENTION_DAYS,
            extra_dimensions: vec![],
            comparison: Comparison::Less,
            threshold: min,
            description: format!("{db}: automated backup retention is below {min:.0} days"),
        });
    }
    out
}

/// Where a de-selection's confirmation is recorded: `records/deselections/<databases|caches>/<id>/<time>.json`,
/// each written once (If-None-Match), the only prefix monitor's role may write records under.
pub const DESELECTION_RECORD_PREFIX: &str = "records/deselections/";

/// The key of the record of one confirmed de-selection. One key per confirmation: a subject that is selected
/// again and later de-selected again needs a new confirmation, never an old one's.
pub fn deselection_record_key(cache: bool, id: &str, at: DateTime<Utc>) -> String {
    let kind = if cache { "caches" } else { "databases" };
    format!(
        "{DESELECTION_RECORD_PREFIX}{kind}/{id}/{}.json",
        at.format("%Y%m%dT%H%M%SZ")
    )
}

/// Whether the subject of an alarm set (a database, or `cache:<id>`) still exists, as far as this run knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Exists,
    Gone,
    /// Its service could not be listed: nothing is concluded about it.
    Unknown,
}

/// What becomes of the Lifeboat alarms no wanted set contains, by one rule: coverage never shrinks silently.
/// "Was selected" is read from what monitor itself made (an alarm set named after the subject), never from a
/// tag, which anyone with a tag-write right could change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlarmPlan<'a> {
    /// Deleted now: a check the policy dropped for a subject still watched, and every alarm of a subject that no
    /// longer exists.
    pub delete: Vec<&'a str>,
    /// Subjects (as alarm names spell them: `<db>` or `cache:<id>`) that still exist, were watched and are no
    /// longer selected, with their alarms: kept (they fire on missing data) until a person confirms.
    pub deselected: BTreeMap<&'a str, Vec<&'a str>>,
    /// Subjects whose alarms go because the subject itself is gone from RDS or ElastiCache.
    pub gone: BTreeSet<&'a str>,
}

/// Sorts the existing Lifeboat alarms that no wanted alarm set contains (see [`AlarmPlan`]). A subject with any
/// wanted alarm is still selected: only its dropped checks go. A subject whose service could not be listed
/// ([`Presence::Unknown`]) keeps its alarms and is no finding.
pub fn plan_alarms<'a>(
    scope: &AlarmScope,
    existing: &'a [String],
    wanted: &BTreeSet<String>,
    presence: impl Fn(&str) -> Presence,
) -> AlarmPlan<'a> {
    let watched: BTreeSet<&str> = wanted.iter().filter_map(|n| scope.parse(n)).map(|(s, _)| s).collect();
    let mut plan = AlarmPlan::default();
    for name in existing.iter().filter(|n| !wanted.contains(*n)) {
        let Some((subject, _)) = scope.parse(name) else {
            continue;
        };
        if watched.contains(subject) {
            plan.delete.push(name);
            continue;
        }
        match presence(subject) {
            Presence::Exists => plan.deselected.entry(subject).or_default().push(name),
            Presence::Gone => {
                plan.gone.insert(subject);
                plan.delete.push(name);
            }
            Presence::Unknown => {}
        }
    }
    plan
}

/// The finding a human reads about a de-selected subject, `what` as a person names it (`app`, `cache sessions`)
/// and `key`/`id` as the confirmation takes them (`database`/`cache`).
pub fn deselection_note(what: &str, key: &str, id: &str) -> String {
    format!(
        "{what}: no longer selected for backup; its alarms are kept and fire until someone confirms with \
         {{\"action\": \"confirm-deselection\", \"{key}\": \"{id}\", \"by\": \"<who>\"}}"
    )
}

/// The finding for a subject that is gone: its alarms are removed once, with this line; its backups stay under
/// their retention.
pub fn gone_note(what: &str) -> String {
    format!("{what}: no longer exists; its alarms are removed, its snapshots and exports kept under their retention")
}

/// What one database looks like to monitor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub snapshot_age_s: Option<f64>,
    pub export_age_s: BTreeMap<String, f64>,
    pub storage_encrypted: bool,
    pub unencrypted_snapshots: usize,
}

/// Selected for backup and holding neither a snapshot nor an export (copy) of any kind: the one rule behind
/// `BackupMissing`, for databases and caches alike.
pub fn backup_missing(has_snapshot: bool, has_export: bool) -> bool {
    !has_snapshot && !has_export
}

/// The finding a human reads when [`backup_missing`] holds for `id` (a database or a cache).
pub fn backup_missing_note(id: &str) -> String {
    format!("{id}: selected for backup but has no snapshot and no export at all")
}

/// Findings a human must hear about now, beyond the alarms.
pub fn attention(db: &str, o: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    if backup_missing(o.snapshot_age_s.is_some(), !o.export_age_s.is_empty()) {
        out.push(backup_missing_note(db));
    }
    if !o.storage_encrypted {
        out.push(format!("{db}: storage is not encrypted"));
    }
    if o.unencrypted_snapshots > 0 {
        out.push(format!("{db}: {} unencrypted snapshot(s)", o.unencrypted_snapshots));
    }
    out
}

/// What monitor gathered about one database, as points in time (ages are computed here, against one `now`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Creation time of the newest available snapshot.
    pub newest_snapshot: Option<DateTime<Utc>>,
    pub unencrypted_snapshots: usize,
    /// Time of the newest complete export, per profile that has one.
    pub exports: BTreeMap<String, DateTime<Utc>>,
    /// Time of the newest restore-test report, and whether it counts as passed.
    pub restore_test: Option<(DateTime<Utc>, bool)>,
    /// The newest recovery point a passed restore test proved (its report's `recovery_point_time`).
    pub verified_point: Option<DateTime<Utc>>,
    pub backup: BackupDetails,
}

/// What monitor saw of one database (the run's output, in hours, minutes and days for a human).
#[derive(Debug, Clone, Serialize)]
pub struct DbView {
    pub db: String,
    pub snapshot_age_hours: Option<f64>,
    pub export_age_hours: BTreeMap<String, f64>,
    pub restore_test_age_days: Option<f64>,
    pub last_restore_test_passed: Option<bool>,
    /// The age of the newest backup taken (snapshot or export), beside the verified RPO.
    pub newest_backup_age_hours: Option<f64>,
    /// Verified RPO: the age of the newest backup a passed restore test proved.
    pub verified_rpo_hours: Option<f64>,
    pub backup_retention_days: Option<i32>,
    pub pitr_lag_minutes: Option<f64>,
    pub storage_encrypted: bool,
    pub deletion_protection: bool,
}

/// Seconds from `at` to `now`, never negative (a clock a little ahead of ours is no age at all).
pub fn age_s(now: DateTime<Utc>, at: DateTime<Utc>) -> f64 {
    (now - at).num_milliseconds().max(0) as f64 / 1000.0
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

impl Facts {
    fn export_ages(&self, now: DateTime<Utc>) -> BTreeMap<String, f64> {
        self.exports.iter().map(|(p, t)| (p.clone(), age_s(now, *t))).collect()
    }

    /// The newest backup taken: the newest available snapshot or complete export.
    pub fn newest_backup(&self) -> Option<DateTime<Utc>> {
        self.exports.values().copied().chain(self.newest_snapshot).max()
    }

    /// Neither a snapshot nor an export: the database is selected for backup and has none.
    pub fn backup_missing(&self) -> bool {
        backup_missing(self.newest_snapshot.is_some(), !self.exports.is_empty())
    }

    /// The database's view, as the run's output reports it.
    pub fn view(&self, db: &str, now: DateTime<Utc>) -> DbView {
        DbView {
            db: db.to_owned(),
            snapshot_age_hours: self.newest_snapshot.map(|t| age_s(now, t) / 3600.0),
            export_age_hours: self
                .exports
                .iter()
                .map(|(p, t)| (p.clone(), age_s(now, *t) / 3600.0))
                .collect(),
            restore_test_age_days: self.restore_test.map(|(t, _)| age_s(now, t) / 86400.0),
            last_restore_test_passed: self.restore_test.map(|(_, p)| p),
            newest_backup_age_hours: self.newest_backup().map(|t| age_s(now, t) / 3600.0),
            verified_rpo_hours: self.verified_point.map(|t| age_s(now, t) / 3600.0),
            backup_retention_days: self.backup.retention_days,
            pitr_lag_minutes: self.backup.latest_restorable.map(|t| age_s(now, t) / 60.0),
            storage_encrypted: self.backup.encrypted,
            deletion_protection: self.backup.deletion_protection,
        }
    }

    /// The facts [`attention`] reads.
    pub fn observed(&self, now: DateTime<Utc>) -> Observed {
        Observed {
            snapshot_age_s: self.newest_snapshot.map(|t| age_s(now, t)),
            export_age_s: self.export_ages(now),
            storage_encrypted: self.backup.encrypted,
            unencrypted_snapshots: self.unencrypted_snapshots,
        }
    }

    /// The database's figures. An age with nothing to measure is left out (its alarm, missing data breaching,
    /// fires); the compliance flags and `BackupMissing` are always there.
    pub fn metrics(&self, db: &str, now: DateTime<Utc>, out: &mut Metrics) {
        if let Some(t) = self.newest_snapshot {
            out.db(db, metrics::SNAPSHOT_AGE_SECONDS, age_s(now, t), StandardUnit::Seconds);
        }
        for (profile, age) in &self.export_ages(now) {
            let dims = [(DB_DIMENSION, db), (PROFILE_DIMENSION, profile.as_str())];
            out.put(metrics::EXPORT_AGE_SECONDS, *age, StandardUnit::Seconds, &dims);
        }
        if let Some((t, passed)) = self.restore_test {
            out.db(
                db,
                metrics::RESTORE_TEST_AGE_SECONDS,
                age_s(now, t),
                StandardUnit::Seconds,
            );
            out.db(
                db,
                metrics::LAST_RESTORE_TEST_SUCCESS,
                flag(passed),
                StandardUnit::Count,
            );
        }
        if let Some(t) = self.verified_point {
            out.db(db, metrics::VERIFIED_RPO_SECONDS, age_s(now, t), StandardUnit::Seconds);
        }
        if let Some(days) = self.backup.retention_days {
            out.db(db, metrics::BACKUP_RETENTION_DAYS, f64::from(days), StandardUnit::Count);
        }
        if let Some(t) = self.backup.latest_restorable {
            out.db(db, metrics::PITR_LAG_SECONDS, age_s(now, t), StandardUnit::Seconds);
        }
        out.db(
            db,
            metrics::STORAGE_ENCRYPTED,
            flag(self.backup.encrypted),
            StandardUnit::Count,
        );
        out.db(
            db,
            metrics::DELETION_PROTECTION,
            flag(self.backup.deletion_protection),
            StandardUnit::Count,
        );
        out.db(
            db,
            metrics::BACKUP_MISSING,
            flag(self.backup_missing()),
            StandardUnit::Count,
        );
    }
}

/// How many of a database's newest restore-test reports monitor reads for its verified RPO: a test of a random
/// (older) recovery point after one of the newest snapshot must not hide what the earlier test proved, and the
/// reads stay bounded however many reports the bucket keeps.
pub const VERIFIED_RPO_REPORTS: usize = 10;

/// The newest recovery point a passed report among `reports` proved: `recovery_point_time`, or (an older
/// report) `snapshot_time`. A report that is not one (no `passed: true`, no readable time) proves nothing.
pub fn verified_point<'a>(reports: impl IntoIterator<Item = &'a Value>) -> Option<DateTime<Utc>> {
    reports
        .into_iter()
        .filter(|r| restore_test_passed(Some(r)))
        .filter_map(recovery_point_of)
        .max()
}

/// When the recovery point a restore-test report tested stands for: its `recovery_point_time`, else (an older
/// report) its `snapshot_time`; `None` when neither is a time.
pub fn recovery_point_of(report: &Value) -> Option<DateTime<Utc>> {
    let t = report
        .get("recovery_point_time")
        .filter(|v| !v.is_null())
        .or_else(|| report.get("snapshot_time"))?;
    t.as_str()?.parse::<DateTime<Utc>>().ok()
}

/// Whether a restore-test report counts as passed: only one that says `"passed": true`. `None` is a report that
/// could not be read as JSON: an unreadable report proves nothing, so it counts as failed.
pub fn restore_test_passed(report: Option<&Value>) -> bool {
    report
        .and_then(|r| r.get("passed"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// One resource the janitor deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired<'a> {
    pub kind: DbKind,
    pub id: &'a str,
    /// For a cluster: its member instance, deleted with it.
    pub member: Option<&'a str>,
}

/// The restore-test instances and clusters past their expiry tag. An instance in a cluster goes with its cluster
/// (it is never a target of its own); a cluster takes its member instance along.
pub fn expired_tests(all: &[Database], now: DateTime<Utc>) -> Vec<Expired<'_>> {
    all.iter()
        .filter(|d| expired_restore_test(&d.tags, now))
        .filter(|d| !(d.kind == DbKind::Instance && d.cluster.is_some()))
        .map(|d| Expired {
            kind: d.kind,
            id: d.id.as_str(),
            member: all
                .iter()
                .find(|m| m.kind == DbKind::Instance && m.cluster.as_deref() == Some(d.id.as_str()))
                .map(|m| m.id.as_str()),
        })
        .collect()
}

/// The compliance thresholds of the policy as a human reads them: automated backup retention below the minimum
/// and point-in-time recovery lagging (what the `backup-retention` and `pitr-lag` alarms measure). A fact RDS
/// did not report is not a finding.
pub fn compliance(db: &str, backup: &BackupDetails, policy: &Policy, now: DateTime<Utc>) -> Vec<String> {
    compliance_for(db, backup, &policy.thresholds(), now)
}

/// [`compliance`] against one resource's thresholds: a threshold it does not have is no finding.
pub fn compliance_for(db: &str, backup: &BackupDetails, t: &Thresholds, now: DateTime<Utc>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((days, min)) = backup
        .retention_days
        .zip(t.min_retention_days)
        .filter(|(d, min)| f64::from(*d) < *min)
    {
        out.push(format!(
            "{db}: automated backup retention is {days} days, below the minimum of {min:.0}"
        ));
    }
    if let Some((lag, max)) = backup
        .latest_restorable
        .map(|at| age_s(now, at))
        .zip(t.pitr_lag_max_s)
        .filter(|(s, max)| s > max)
    {
        out.push(format!(
            "{db}: point-in-time recovery lags {:.0} minutes, more than {:.0}",
            lag / 60.0,
            max / 60.0
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> AlarmScope {
        AlarmScope::new("prod").unwrap()
    }

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
        let set = alarm_set(&scope(), "app-prod", &policy());
        let names: Vec<_> = set.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lifeboat/prod/app-prod/snapshot-age",
                "lifeboat/prod/app-prod/export-age-critical",
                "lifeboat/prod/app-prod/export-age-full",
                "lifeboat/prod/app-prod/content",
                "lifeboat/prod/app-prod/restore-test-age",
                "lifeboat/prod/app-prod/restore-test-failed",
                "lifeboat/prod/app-prod/pitr-lag",
                "lifeboat/prod/app-prod/backup-retention",
            ]
        );
        assert_eq!(
            set[0].description,
            "app-prod: the newest snapshot is older than 26 hours"
        );
        for a in &set {
            assert_eq!(scope().parse(&a.name).map(|(db, _)| db), Some("app-prod"));
        }
    }

    #[test]
    fn a_deselected_database_keeps_its_alarms_a_gone_one_loses_them_and_a_dropped_check_goes() {
        let mut wanted: BTreeSet<String> = alarm_set(&scope(), "app-prod", &policy())
            .into_iter()
            .map(|a| a.name)
            .collect();
        wanted.insert("lifeboat/prod/cache:sessions/snapshot-age".to_owned());
        let existing: Vec<String> = [
            "lifeboat/prod/app-prod/snapshot-age",
            "lifeboat/prod/app-prod/export-age-weekly",
            "lifeboat/prod/retagged/snapshot-age",
            "lifeboat/prod/retagged/pitr-lag",
            "lifeboat/prod/retired-db/snapshot-age",
            "lifeboat/prod/cache:unlisted/snapshot-age",
            "lifeboat/prod/cache:sessions/snapshot-age",
            "lifeboat/prod/rdb-copy-failed",
            "lifeboat/staging/app-prod/snapshot-age",
            "lifeboat/staging/gone-from-prod/snapshot-age",
            "someone-elses-alarm",
        ]
        .map(str::to_owned)
        .to_vec();
        let plan = plan_alarms(&scope(), &existing, &wanted, |subject| match subject {
            "retagged" => Presence::Exists,
            "cache:unlisted" => Presence::Unknown,
            _ => Presence::Gone,
        });
        assert_eq!(
            plan.delete,
            [
                "lifeboat/prod/app-prod/export-age-weekly",
                "lifeboat/prod/retired-db/snapshot-age"
            ],
            "a dropped check of a watched database, and a database that is gone"
        );
        assert_eq!(
            plan.deselected,
            BTreeMap::from([(
                "retagged",
                vec!["lifeboat/prod/retagged/snapshot-age", "lifeboat/prod/retagged/pitr-lag"]
            )]),
            "de-selected while it still exists: kept, and a finding"
        );
        assert_eq!(plan.gone, BTreeSet::from(["retired-db"]));
        assert!(
            deselection_note("retagged", "database", "retagged").contains(r#""database": "retagged""#),
            "the finding says how to confirm"
        );
    }

    proptest! {
        /// Whatever the alarms and the fleet, an alarm of an existing subject that has no wanted alarm is never
        /// deleted: coverage never shrinks silently.
        #[test]
        fn an_existing_unselected_subject_never_loses_an_alarm(
            subjects in proptest::collection::btree_map("[a-c]", (any::<bool>(), 0u8..3), 1..4),
            checks in proptest::collection::btree_set("[x-z]", 1..4),
        ) {
            let existing: Vec<String> = subjects
                .keys()
                .flat_map(|s| checks.iter().map(move |c| scope().name(s, c)))
                .collect();
            let wanted: BTreeSet<String> = subjects
                .iter()
                .filter(|(_, (selected, _))| *selected)
                .map(|(s, _)| scope().name(s, checks.iter().next().unwrap()))
                .collect();
            let presence = |s: &str| match subjects.get(s).map(|(_, p)| *p) {
                Some(0) => Presence::Exists,
                Some(1) => Presence::Gone,
                _ => Presence::Unknown,
            };
            let plan = plan_alarms(&scope(), &existing, &wanted, presence);
            for name in &plan.delete {
                let (s, _) = scope().parse(name).unwrap();
                let (selected, p) = subjects[s];
                prop_assert!(selected || p == 1, "{} deleted", name);
                prop_assert!(!wanted.contains(*name));
            }
            for (s, names) in &plan.deselected {
                prop_assert_eq!(subjects[*s], (false, 0));
                prop_assert_eq!(names.len(), checks.len());
            }
        }
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

    use chrono::TimeZone;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    fn hours_ago(h: i64) -> DateTime<Utc> {
        now() - chrono::Duration::hours(h)
    }

    #[test]
    fn the_verified_point_is_the_newest_a_passed_report_proved() {
        let reports = [
            serde_json::json!({"passed": true, "recovery_point_time": "2026-11-20T02:00:00Z", "snapshot_time": "2026-11-21T00:00:00Z"}),
            // A random, older point tested later does not hide the newer one.
            serde_json::json!({"passed": true, "recovery_point_time": "2026-11-16T09:13:27Z"}),
            serde_json::json!({"passed": false, "recovery_point_time": "2026-11-22T02:00:00Z"}),
            // An older report without the field: its snapshot time.
            serde_json::json!({"passed": true, "recovery_point_time": null, "snapshot_time": "2026-11-19T02:00:00Z"}),
            serde_json::json!({"passed": true, "recovery_point_time": "not a time"}),
        ];
        assert_eq!(verified_point(&reports), Some("2026-11-20T02:00:00Z".parse().unwrap()));
        assert_eq!(verified_point(&reports[2..3]), None, "a failed test proves nothing");
        let mut m = Metrics::new();
        Facts::default().metrics("app", now(), &mut m);
        assert_eq!(
            m.value_for("app", metrics::VERIFIED_RPO_SECONDS),
            None,
            "nothing proved: missing data"
        );
    }

    #[test]
    fn facts_become_a_view_and_metrics_in_the_units_each_wants() {
        let facts = Facts {
            newest_snapshot: Some(hours_ago(3)),
            unencrypted_snapshots: 0,
            exports: [("full".to_owned(), hours_ago(30))].into_iter().collect(),
            restore_test: Some((hours_ago(48), true)),
            verified_point: Some(hours_ago(50)),
            backup: BackupDetails {
                retention_days: Some(7),
                latest_restorable: Some(now() - chrono::Duration::minutes(5)),
                encrypted: true,
                deletion_protection: false,
            },
        };
        let v = facts.view("app", now());
        assert_eq!(v.snapshot_age_hours, Some(3.0));
        assert_eq!(v.export_age_hours["full"], 30.0);
        assert_eq!(v.restore_test_age_days, Some(2.0));
        assert_eq!(v.last_restore_test_passed, Some(true));
        assert_eq!(v.verified_rpo_hours, Some(50.0));
        assert_eq!(
            v.newest_backup_age_hours,
            Some(3.0),
            "the snapshot, newer than the export"
        );
        assert_eq!(v.pitr_lag_minutes, Some(5.0));
        let mut m = Metrics::new();
        facts.metrics("app", now(), &mut m);
        assert_eq!(m.value_for("app", metrics::SNAPSHOT_AGE_SECONDS), Some(3.0 * 3600.0));
        assert_eq!(m.value_for("app", metrics::LAST_RESTORE_TEST_SUCCESS), Some(1.0));
        assert_eq!(m.value_for("app", metrics::VERIFIED_RPO_SECONDS), Some(50.0 * 3600.0));
        assert_eq!(m.value_for("app", metrics::PITR_LAG_SECONDS), Some(300.0));
        assert_eq!(m.value_for("app", metrics::BACKUP_RETENTION_DAYS), Some(7.0));
        assert_eq!(m.value_for("app", metrics::DELETION_PROTECTION), Some(0.0));
        assert_eq!(m.value_for("app", metrics::BACKUP_MISSING), Some(0.0));
        let export = m
            .items()
            .iter()
            .find(|i| i.name == metrics::EXPORT_AGE_SECONDS)
            .unwrap();
        assert_eq!(export.value, 30.0 * 3600.0);
        assert_eq!(
            export.dimensions,
            [
                (DB_DIMENSION.to_owned(), "app".to_owned()),
                (PROFILE_DIMENSION.to_owned(), "full".to_owned())
            ]
        );
        assert!(attention("app", &facts.observed(now())).is_empty());
    }

    #[test]
    fn a_database_with_nothing_gets_no_ages_but_backup_missing() {
        let facts = Facts::default();
        let mut m = Metrics::new();
        facts.metrics("new", now(), &mut m);
        let names: Vec<&str> = m.items().iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                metrics::STORAGE_ENCRYPTED,
                metrics::DELETION_PROTECTION,
                metrics::BACKUP_MISSING
            ]
        );
        assert_eq!(m.value_for("new", metrics::BACKUP_MISSING), Some(1.0));
        assert_eq!(
            attention("new", &facts.observed(now())).len(),
            2,
            "no backup, not encrypted"
        );
    }

    #[test]
    fn compliance_names_retention_and_pitr_lag_beyond_the_policy() {
        let lagging = BackupDetails {
            retention_days: Some(1),
            latest_restorable: Some(now() - chrono::Duration::minutes(40)),
            encrypted: true,
            deletion_protection: true,
        };
        assert_eq!(
            compliance("db", &lagging, &policy(), now()),
            [
                "db: automated backup retention is 1 days, below the minimum of 7",
                "db: point-in-time recovery lags 40 minutes, more than 15"
            ]
        );
        assert!(compliance("db", &BackupDetails::default(), &policy(), now()).is_empty());
    }

    #[test]
    fn only_a_report_that_says_passed_counts_as_passed() {
        assert!(restore_test_passed(Some(&serde_json::json!({"passed": true}))));
        assert!(!restore_test_passed(Some(&serde_json::json!({"passed": false}))));
        assert!(!restore_test_passed(Some(&serde_json::json!({"passed": "yes"}))));
        assert!(!restore_test_passed(Some(&serde_json::json!({}))));
        assert!(!restore_test_passed(None), "an unreadable report proves nothing");
    }

    fn db(id: &str, kind: DbKind, expires: Option<DateTime<Utc>>, cluster: Option<&str>) -> Database {
        let mut tags = BTreeMap::new();
        if let Some(t) = expires {
            tags.insert(crate::core::tags::RESTORE_TEST.to_owned(), "true".to_owned());
            tags.insert(crate::core::tags::EXPIRES_AT.to_owned(), t.to_rfc3339());
        }
        Database {
            id: id.to_owned(),
            kind,
            arn: format!("arn:aws:rds:us-east-1:1:db:{id}"),
            engine: "postgres".to_owned(),
            status: "available".to_owned(),
            tags,
            cluster: cluster.map(str::to_owned),
            endpoint: None,
            aliases: Vec::new(),
            master_secret_arn: None,
        }
    }

    #[test]
    fn the_janitor_takes_expired_tests_and_clusters_take_their_member_along() {
        let past = Some(hours_ago(1));
        let future = Some(now() + chrono::Duration::hours(1));
        let all = [
            db("app", DbKind::Instance, None, None),
            db("lifeboat-rt-a", DbKind::Instance, past, None),
            db("lifeboat-rt-b", DbKind::Instance, future, None),
            db("lifeboat-rt-c", DbKind::Cluster, past, None),
            db("lifeboat-rt-c-1", DbKind::Instance, past, Some("lifeboat-rt-c")),
        ];
        assert_eq!(
            expired_tests(&all, now()),
            [
                Expired {
                    kind: DbKind::Instance,
                    id: "lifeboat-rt-a",
                    member: None
                },
                Expired {
                    kind: DbKind::Cluster,
                    id: "lifeboat-rt-c",
                    member: Some("lifeboat-rt-c-1")
                },
            ]
        );
    }

    proptest! {
        /// Whatever the facts, the view and the metrics tell the same story: each age is the same figure in
        /// another unit, a figure is there exactly when its fact is, and `BackupMissing` matches the view.
        #[test]
        fn view_and_metrics_agree(
            snap in proptest::option::of(-100i64..100_000),
            exports in proptest::collection::btree_map("[a-z]{1,8}", -100i64..100_000, 0..3),
            test in proptest::option::of((0i64..10_000_000, any::<bool>())),
        ) {
            let at = |m: i64| now() - chrono::Duration::minutes(m);
            let facts = Facts {
                newest_snapshot: snap.map(at),
                exports: exports.iter().map(|(p, m)| (p.clone(), at(*m))).collect(),
                restore_test: test.map(|(m, p)| (at(m), p)),
                ..Default::default()
            };
            let view = facts.view("d", now());
            let mut m = Metrics::new();
            facts.metrics("d", now(), &mut m);
            let snapshot = m.value_for("d", metrics::SNAPSHOT_AGE_SECONDS);
            prop_assert_eq!(snapshot.is_some(), view.snapshot_age_hours.is_some());
            if let (Some(s), Some(h)) = (snapshot, view.snapshot_age_hours) {
                prop_assert!((s - h * 3600.0).abs() < 1e-6, "{} s vs {} h", s, h);
            }
            prop_assert!(snapshot.unwrap_or(0.0) >= 0.0);
            let export_figures = m.items().iter().filter(|i| i.name == metrics::EXPORT_AGE_SECONDS).count();
            prop_assert_eq!(export_figures, view.export_age_hours.len());
            prop_assert_eq!(
                m.value_for("d", metrics::LAST_RESTORE_TEST_SUCCESS),
                view.last_restore_test_passed.map(|p| if p { 1.0 } else { 0.0 })
            );
            let missing = view.snapshot_age_hours.is_none() && view.export_age_hours.is_empty();
            prop_assert_eq!(m.value_for("d", metrics::BACKUP_MISSING), Some(if missing { 1.0 } else { 0.0 }));
        }
    }
}
