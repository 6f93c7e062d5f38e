//! Rules of monitoring caches (ElastiCache, Redis OSS and Valkey), as pure functions: what one cache's observed
//! facts mean (its view, its metrics under `CacheIdentifier`), its compliance findings, its alarm set, which
//! alarm names stand for a cache, and when a cache counts as production.
//!
//! The vocabulary and the shared rules are the databases' ([`crate::monitoring::monitor`]): the same metric names, the same
//! `BackupMissing` rule ([`monitor::backup_missing`]), the same ages ([`monitor::age_s`]), the same alarm
//! period and missing-data treatment. It must never call AWS: monitor gathers the facts and hands them here.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::caches::elasticache::{Cache, CacheKind};
use crate::core::metrics::{self, Metrics, CACHE_DIMENSION};
use crate::monitoring::monitor::{self, age_s, AlarmScope, AlarmSpec, Comparison, Policy, Thresholds};

/// A cache's alarms are named `lifeboat/cache:<cache>/<check>`: `:` occurs in no ElastiCache or RDS identifier,
/// so a cache's alarms never share a name with those of a database of the same name.
pub const CACHE_ALARM_MARK: &str = "cache:";

/// The tag keys (any case) whose value says which environment a resource belongs to.
pub const ENVIRONMENT_TAG_KEYS: [&str; 3] = ["environment", "env", "stage"];

/// Production: a tag `environment`, `env` or `stage` (any case) whose value is `prod` or `production` (any
/// case). One rule for every finding that depends on it.
pub fn is_production(tags: &BTreeMap<String, String>) -> bool {
    tags.iter().any(|(k, v)| {
        ENVIRONMENT_TAG_KEYS.iter().any(|e| k.eq_ignore_ascii_case(e))
            && (v.eq_ignore_ascii_case("prod") || v.eq_ignore_ascii_case("production"))
    })
}

/// What an alarm name stands for: a database's check or a cache's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmSubject<'a> {
    Database(&'a str),
    Cache(&'a str),
}

/// The subject and check of one of this stack's alarm names.
pub fn alarm_subject<'a>(scope: &AlarmScope, name: &'a str) -> Option<(AlarmSubject<'a>, &'a str)> {
    let (who, check) = scope.parse(name)?;
    match who.strip_prefix(CACHE_ALARM_MARK) {
        Some("") => None,
        Some(cache) => Some((AlarmSubject::Cache(cache), check)),
        None => Some((AlarmSubject::Database(who), check)),
    }
}

fn hours(s: f64) -> String {
    format!("{:.0} hours", s / 3600.0)
}

/// Whether Lifeboat copies a cache's snapshots to S3 and restore-tests them, so their age is alarmed: every kind.
/// A serverless cache's snapshot is exported by ExportServerlessCacheSnapshot ([`crate::caches::rdb_copy::serverless`])
/// and its restore test seeds a group from that verified copy ([`crate::caches::rdb_restore`]). A kind added later must
/// say here whether it is copied and tested (alarms on copies and tests never made would only ever fire).
pub fn copies_and_tests_made(kind: CacheKind) -> bool {
    match kind {
        CacheKind::ReplicationGroup | CacheKind::Node | CacheKind::Serverless => true,
    }
}

/// Legacy mode: a cache's thresholds from the one policy and `LIFEBOAT_CACHE_EXPORT_MAX_AGE_HOURS` (`None`:
/// off). A cache whose copies and tests are not made gets no alarm on them.
pub fn legacy_thresholds(policy: &Policy, kind: CacheKind, rdb_copy_max_age_s: Option<f64>) -> Thresholds {
    let tested = copies_and_tests_made(kind);
    Thresholds {
        snapshot_max_age_s: Some(policy.snapshot_max_age_s),
        export_max_age_s: BTreeMap::new(),
        rdb_copy_max_age_s: rdb_copy_max_age_s.filter(|_| tested),
        restore_test_max_age_s: Some(policy.restore_test_max_age_s).filter(|_| tested),
        pitr_lag_max_s: None,
        verified_rpo_max_s: None,
        min_retention_days: Some(policy.min_retention_days),
    }
}

/// The alarm set of one cache under the one legacy policy (dimension `CacheIdentifier`): snapshot age, RDB copy
/// age (when the policy sets a maximum), restore-test age and result, and ElastiCache's own backup retention; a
/// cache whose copies and tests are not made ([`copies_and_tests_made`]) gets only the snapshot and retention
/// alarms. Missing data breaches, as for databases ([`monitor::ALARM_TREAT_MISSING_DATA`]).
pub fn alarm_set(
    scope: &AlarmScope,
    cache: &str,
    kind: CacheKind,
    policy: &Policy,
    export_max_age_s: Option<f64>,
) -> Vec<AlarmSpec> {
    alarm_set_for(scope, cache, &legacy_thresholds(policy, kind, export_max_age_s))
}

/// The alarm set of one cache held to `t`: one alarm per threshold it has (`rdb_copy_max_age_s` is its
/// `export-age`), none for one it has not.
pub fn alarm_set_for(scope: &AlarmScope, cache: &str, t: &Thresholds) -> Vec<AlarmSpec> {
    let subject = format!("{CACHE_ALARM_MARK}{cache}");
    let name = |check: &str| scope.name(&subject, check);
    let spec = |check: &str, metric, comparison, threshold, description: String| AlarmSpec {
        name: name(check),
        metric,
        extra_dimensions: Vec::new(),
        comparison,
        threshold,
        description,
    };
    let mut out = Vec::new();
    if let Some(max) = t.snapshot_max_age_s {
        out.push(spec(
            "snapshot-age",
            metrics::SNAPSHOT_AGE_SECONDS,
            Comparison::Greater,
            max,
            format!("cache {cache}: the newest snapshot is older than {}", hours(max)),
        ));
    }
    if t.rdb_copy_max_age_s.is_some() {
        out.push(monitor::content_alarm(
            name(monitor::CONTENT_CHECK),
            &format!("cache {cache}"),
        ));
    }
    if let Some(max) = t.rdb_copy_max_age_s {
        out.push(spec(
            "export-age",
            metrics::EXPORT_AGE_SECONDS,
            Comparison::Greater,
            max,
            format!(
                "cache {cache}: the newest verified RDB copy is older than {}",
                hours(max)
            ),
        ));
    }
    if let Some(max) = t.restore_test_max_age_s {
        out.extend(restore_test_alarms(cache, max, spec));
    }
    if let Some(min) = t.min_retention_days {
        out.push(spec(
            "backup-retention",
            metrics::BACKUP_RETENTION_DAYS,
            Comparison::Less,
            min,
            format!("cache {cache}: ElastiCache's automatic backup retention is below {min:.0} days"),
        ));
    }
    out
}

fn restore_test_alarms(
    cache: &str,
    max_age_s: f64,
    spec: impl Fn(&str, &'static str, Comparison, f64, String) -> AlarmSpec,
) -> [AlarmSpec; 2] {
    [
        spec(
            "restore-test-age",
            metrics::RESTORE_TEST_AGE_SECONDS,
            Comparison::Greater,
            max_age_s,
            format!(
                "cache {cache}: no restore test in the last {:.0} days",
                max_age_s / 86400.0
            ),
        ),
        spec(
            "restore-test-failed",
            metrics::LAST_RESTORE_TEST_SUCCESS,
            Comparison::Less,
            1.0,
            format!("cache {cache}: the last restore test failed"),
        ),
    ]
}

/// What monitor gathered about one cache, as points in time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheFacts {
    /// Logical time of the newest available snapshot Lifeboat made of the cache.
    pub newest_snapshot: Option<DateTime<Utc>>,
    /// Time of the newest RDB copy with a manifest (every file verified).
    pub newest_export: Option<DateTime<Utc>>,
    /// Time of the newest cache restore-test report, and whether it says it passed.
    pub restore_test: Option<(DateTime<Utc>, bool)>,
}

/// What monitor saw of one cache (the run's output, in hours and days for a human).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheView {
    pub cache: String,
    pub kind: CacheKind,
    pub snapshot_age_hours: Option<f64>,
    pub export_age_hours: Option<f64>,
    pub restore_test_age_days: Option<f64>,
    pub last_restore_test_passed: Option<bool>,
    pub snapshot_retention_days: i32,
    pub at_rest_encryption: bool,
    pub transit_encryption: bool,
    pub production: bool,
    pub replicated: bool,
    pub backup_missing: bool,
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

impl CacheFacts {
    /// Neither a snapshot nor an RDB copy: the databases' rule.
    pub fn backup_missing(&self) -> bool {
        monitor::backup_missing(self.newest_snapshot.is_some(), self.newest_export.is_some())
    }

    pub fn view(&self, cache: &Cache, now: DateTime<Utc>) -> CacheView {
        CacheView {
            cache: cache.id.clone(),
            kind: cache.kind,
            snapshot_age_hours: self.newest_snapshot.map(|t| age_s(now, t) / 3600.0),
            export_age_hours: self.newest_export.map(|t| age_s(now, t) / 3600.0),
            restore_test_age_days: self.restore_test.map(|(t, _)| age_s(now, t) / 86400.0),
            last_restore_test_passed: self.restore_test.map(|(_, p)| p),
            snapshot_retention_days: cache.snapshot_retention_days,
            at_rest_encryption: cache.at_rest_encryption,
            transit_encryption: cache.transit_encryption,
            production: is_production(&cache.tags),
            replicated: cache.replicated,
            backup_missing: self.backup_missing(),
        }
    }

    /// The cache's figures under `CacheIdentifier`. As for databases, an age with nothing to measure is left
    /// out (its alarm, missing data breaching, fires); the configuration flags and `BackupMissing` are always
    /// there.
    pub fn metrics(&self, cache: &Cache, now: DateTime<Utc>, out: &mut Metrics) {
        let dims = [(CACHE_DIMENSION, cache.id.as_str())];
        let mut put = |name: &str, value: f64, unit: StandardUnit| out.put(name, value, unit, &dims);
        if let Some(t) = self.newest_snapshot {
            put(metrics::SNAPSHOT_AGE_SECONDS, age_s(now, t), StandardUnit::Seconds);
        }
        if let Some(t) = self.newest_export {
            put(metrics::EXPORT_AGE_SECONDS, age_s(now, t), StandardUnit::Seconds);
        }
        if let Some((t, passed)) = self.restore_test {
            put(metrics::RESTORE_TEST_AGE_SECONDS, age_s(now, t), StandardUnit::Seconds);
            put(metrics::LAST_RESTORE_TEST_SUCCESS, flag(passed), StandardUnit::Count);
        }
        let retention = f64::from(cache.snapshot_retention_days);
        put(metrics::BACKUP_RETENTION_DAYS, retention, StandardUnit::Count);
        put(
            metrics::STORAGE_ENCRYPTED,
            flag(cache.at_rest_encryption),
            StandardUnit::Count,
        );
        put(
            metrics::TRANSIT_ENCRYPTED,
            flag(cache.transit_encryption),
            StandardUnit::Count,
        );
        put(
            metrics::REPLICA_MISSING,
            flag(replica_missing(cache)),
            StandardUnit::Count,
        );
        put(
            metrics::BACKUP_MISSING,
            flag(self.backup_missing()),
            StandardUnit::Count,
        );
    }

    /// Everything a human must hear about this cache now: no backup at all, then its compliance findings.
    /// `min_retention_days` is `None` when nothing states it (plan mode): no retention finding then.
    pub fn attention(&self, cache: &Cache, min_retention_days: Option<f64>) -> Vec<String> {
        let mut out = Vec::new();
        if self.backup_missing() {
            out.push(monitor::backup_missing_note(&cache.id));
        }
        out.extend(compliance(cache, min_retention_days));
        out
    }
}

/// A cache tagged as production ([`is_production`]) with no replica: losing its one node loses the data
/// written since the last snapshot.
pub fn replica_missing(cache: &Cache) -> bool {
    is_production(&cache.tags) && !cache.replicated
}

/// The compliance findings of one cache, each a sentence: automatic backups off, their retention under the
/// policy's minimum, encryption at rest off, encryption in transit off, no replica in a production cache.
/// Serverless caches keep their snapshots by the same setting and are always replicated.
pub fn compliance(cache: &Cache, min_retention_days: Option<f64>) -> Vec<String> {
    let id = &cache.id;
    let mut out = Vec::new();
    match (cache.snapshot_retention_days, min_retention_days) {
        (_, None) => {}
        (0, Some(min_retention_days)) => out.push(format!(
            "cache {id}: ElastiCache's automatic backups are off (SnapshotRetentionLimit 0); set a retention of at \
             least {min_retention_days:.0} days"
        )),
        (d, Some(min_retention_days)) if f64::from(d) < min_retention_days => out.push(format!(
            "cache {id}: automatic backup retention is {d} days, below the minimum of {min_retention_days:.0}"
        )),
        _ => {}
    }
    if !cache.at_rest_encryption {
        out.push(format!(
            "cache {id}: encryption at rest is off (its snapshots and RDB files are unencrypted)"
        ));
    }
    if !cache.transit_encryption {
        out.push(format!(
            "cache {id}: encryption in transit is off (clients and replicas talk in plain text)"
        ));
    }
    if replica_missing(cache) {
        out.push(format!(
            "cache {id}: tagged as production but has no replica (a node failure loses every write since the last \
             snapshot)"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
    }

    fn hours_ago(h: i64) -> DateTime<Utc> {
        now() - chrono::Duration::hours(h)
    }

    fn scope() -> AlarmScope {
        AlarmScope::new("prod").unwrap()
    }

    fn policy() -> Policy {
        Policy {
            snapshot_max_age_s: 26.0 * 3600.0,
            export_max_age_s: BTreeMap::new(),
            restore_test_max_age_s: 100.0 * 86400.0,
            pitr_lag_max_s: 900.0,
            min_retention_days: 7.0,
        }
    }

    fn cache(id: &str, tags: &[(&str, &str)]) -> Cache {
        Cache {
            id: id.into(),
            kind: CacheKind::ReplicationGroup,
            arn: format!("arn:aws:elasticache:us-east-1:1:replicationgroup:{id}"),
            engine: "valkey".into(),
            status: "available".into(),
            tags: tags.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            cluster_mode: false,
            members: Vec::new(),
            at_rest_encryption: true,
            transit_encryption: true,
            snapshot_retention_days: 7,
            replicated: true,
        }
    }

    #[test]
    fn production_is_an_environment_tag_saying_prod() {
        let tags = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(is_production(&tags("Environment", "Production")));
        assert!(is_production(&tags("env", "prod")));
        assert!(is_production(&tags("STAGE", "PROD")));
        assert!(!is_production(&tags("environment", "staging")));
        assert!(!is_production(&tags("team", "prod")));
        assert!(!is_production(&BTreeMap::new()));
    }

    #[test]
    fn cache_alarms_are_named_apart_from_databases_and_read_back() {
        let set = alarm_set(
            &scope(),
            "sessions",
            CacheKind::ReplicationGroup,
            &policy(),
            Some(26.0 * 3600.0),
        );
        let names: Vec<&str> = set.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lifeboat/prod/cache:sessions/snapshot-age",
                "lifeboat/prod/cache:sessions/content",
                "lifeboat/prod/cache:sessions/export-age",
                "lifeboat/prod/cache:sessions/restore-test-age",
                "lifeboat/prod/cache:sessions/restore-test-failed",
                "lifeboat/prod/cache:sessions/backup-retention",
            ]
        );
        for a in &set {
            assert!(matches!(
                alarm_subject(&scope(), &a.name),
                Some((AlarmSubject::Cache("sessions"), _))
            ));
        }
        assert_eq!(
            set[0].description,
            "cache sessions: the newest snapshot is older than 26 hours"
        );
        assert_eq!(
            alarm_set(&scope(), "sessions", CacheKind::ReplicationGroup, &policy(), None).len(),
            4,
            "no RDB copy age to alarm on"
        );
        let serverless: Vec<String> = alarm_set(&scope(), "sessions", CacheKind::Serverless, &policy(), Some(3600.0))
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(
            serverless, names,
            "a serverless cache's RDB copies and restore tests are made, so their age is alarmed too"
        );
        assert_eq!(
            alarm_subject(&scope(), "lifeboat/prod/sessions/snapshot-age"),
            Some((AlarmSubject::Database("sessions"), "snapshot-age"))
        );
        assert_eq!(alarm_subject(&scope(), "lifeboat/prod/cache:/snapshot-age"), None);
        assert_eq!(alarm_subject(&scope(), "other"), None);
        assert_eq!(
            alarm_subject(&scope(), "lifeboat/staging/cache:sessions/snapshot-age"),
            None,
            "another stack's alarm is not this stack's"
        );
        // A database's alarm set never holds a cache's alarm name.
        let db: Vec<String> = monitor::alarm_set(&scope(), "sessions", &policy())
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert!(names.iter().all(|n| !db.iter().any(|d| d == n)));
    }

    #[test]
    fn a_fresh_cache_reports_its_ages_and_no_findings() {
        let c = cache("sessions", &[("environment", "production")]);
        let facts = CacheFacts {
            newest_snapshot: Some(hours_ago(2)),
            newest_export: Some(hours_ago(5)),
            restore_test: Some((hours_ago(48), true)),
        };
        let v = facts.view(&c, now());
        assert_eq!(v.snapshot_age_hours, Some(2.0));
        assert_eq!(v.export_age_hours, Some(5.0));
        assert_eq!(v.restore_test_age_days, Some(2.0));
        assert!(v.production && !v.backup_missing);
        let mut m = Metrics::new();
        facts.metrics(&c, now(), &mut m);
        let value = |name: &str| {
            m.items()
                .iter()
                .find(|i| i.name == name)
                .map(|i| (i.value, i.dimensions.clone()))
        };
        let dims = vec![(CACHE_DIMENSION.to_owned(), "sessions".to_owned())];
        assert_eq!(value(metrics::SNAPSHOT_AGE_SECONDS), Some((7200.0, dims.clone())));
        assert_eq!(value(metrics::EXPORT_AGE_SECONDS), Some((18000.0, dims.clone())));
        assert_eq!(value(metrics::LAST_RESTORE_TEST_SUCCESS), Some((1.0, dims.clone())));
        assert_eq!(value(metrics::BACKUP_MISSING), Some((0.0, dims.clone())));
        assert_eq!(value(metrics::REPLICA_MISSING), Some((0.0, dims)));
        assert_eq!(
            m.value_for("sessions", metrics::SNAPSHOT_AGE_SECONDS),
            None,
            "never under DBIdentifier"
        );
        assert!(facts.attention(&c, Some(7.0)).is_empty());
    }

    /// A serverless cache is copied and restore-tested now: a fresh one needs no attention, and nothing says its
    /// copies or tests are not made.
    #[test]
    fn a_fresh_serverless_cache_needs_no_attention() {
        let c = Cache {
            kind: CacheKind::Serverless,
            ..cache("sessions", &[("environment", "production")])
        };
        assert!(copies_and_tests_made(c.kind));
        let facts = CacheFacts {
            newest_snapshot: Some(hours_ago(2)),
            newest_export: Some(hours_ago(5)),
            restore_test: Some((hours_ago(48), true)),
        };
        assert_eq!(facts.attention(&c, Some(7.0)), Vec::<String>::new());
        let nothing = CacheFacts::default().attention(&c, Some(7.0));
        assert_eq!(nothing, [monitor::backup_missing_note("sessions")]);
        assert!(nothing.iter().all(|n| !n.contains("serverless")), "{nothing:?}");
    }

    #[test]
    fn a_cache_with_nothing_is_backup_missing_like_a_database() {
        let c = cache("jobs", &[]);
        let facts = CacheFacts::default();
        let mut m = Metrics::new();
        facts.metrics(&c, now(), &mut m);
        let names: Vec<&str> = m.items().iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                metrics::BACKUP_RETENTION_DAYS,
                metrics::STORAGE_ENCRYPTED,
                metrics::TRANSIT_ENCRYPTED,
                metrics::REPLICA_MISSING,
                metrics::BACKUP_MISSING
            ]
        );
        assert_eq!(m.items().last().map(|i| i.value), Some(1.0));
        assert_eq!(
            facts.attention(&c, Some(7.0)),
            ["jobs: selected for backup but has no snapshot and no export at all"]
        );
        assert_eq!(facts.attention(&c, Some(7.0))[0], monitor::backup_missing_note("jobs"));
        let exported = CacheFacts {
            newest_export: Some(hours_ago(1)),
            ..Default::default()
        };
        assert!(!exported.backup_missing(), "an RDB copy is a backup");
    }

    #[test]
    fn compliance_names_each_finding_in_a_sentence() {
        let mut c = cache("queue", &[("Environment", "prod")]);
        c.snapshot_retention_days = 0;
        c.at_rest_encryption = false;
        c.transit_encryption = false;
        c.replicated = false;
        assert_eq!(
            compliance(&c, Some(7.0)),
            [
                "cache queue: ElastiCache's automatic backups are off (SnapshotRetentionLimit 0); set a retention of \
                 at least 7 days",
                "cache queue: encryption at rest is off (its snapshots and RDB files are unencrypted)",
                "cache queue: encryption in transit is off (clients and replicas talk in plain text)",
                "cache queue: tagged as production but has no replica (a node failure loses every write since the \
                 last snapshot)",
            ]
        );
        c.snapshot_retention_days = 3;
        assert_eq!(
            compliance(&c, Some(7.0))[0],
            "cache queue: automatic backup retention is 3 days, below the minimum of 7"
        );
        c.tags.clear();
        assert!(!replica_missing(&c), "only production caches need a replica");
        assert_eq!(compliance(&c, Some(7.0)).len(), 3);
    }
}
