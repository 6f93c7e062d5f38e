//! Metrics: collected during a run, published once at its end.
//!
//! Namespace `Lifeboat` (configurable), dimension `DBIdentifier` on per-database figures (`CacheIdentifier`,
//! `Profile`, ... on others).
//!
//! How they leave the process depends on where it runs ([`Route`]):
//! - **In Lambda** (the runtime sets `AWS_LAMBDA_FUNCTION_NAME`), as CloudWatch Embedded Metric Format: one JSON
//!   line per dimension set on standard output, which Lambda's log pipeline turns into metrics. This is AWS's
//!   recommended path for Lambda: no API call on the hot path, no PutMetricData throttling, no `cloudwatch:`
//!   permission, and no figure lost because a call failed at the end of a run that did its work.
//! - **Anywhere else** (the export ECS task, a local `--event` run, the tests that run a handler in their own
//!   process), with `PutMetricData` in batches: an ECS task's `awslogs` driver does not mark lines as EMF, so a
//!   line there would stay a line. (The restore ECS task publishes no figure.)
//!
//! Owns the metric vocabulary: every metric and dimension name any function publishes is a constant here, and no
//! function spells one as a literal. It must never compute a figure (the rules that do live with their owners,
//! e.g. `monitoring::monitor::db_metrics`) nor publish anywhere but CloudWatch (directly or through its logs).

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_cloudwatch::Client;
use chrono::{DateTime, Utc};

use serde_json::{json, Map, Value};

use crate::core::error::Error;

pub const DB_DIMENSION: &str = "DBIdentifier";
/// The dimension of a cache's metrics: its replication group or cluster identifier (a cache and a database may
/// share a name, so they never share a dimension).
pub const CACHE_DIMENSION: &str = "CacheIdentifier";
/// Dimension of export figures and alarms: the export profile (`full`, `critical`, ...).
pub const PROFILE_DIMENSION: &str = "Profile";
/// Dimension of the manual-snapshot quota figures: the region counted.
pub const REGION_DIMENSION: &str = "Region";
/// Dimension of rotation figures: the secret rotated.
pub const SECRET_DIMENSION: &str = "Secret";
/// Dimension of rotation figures: the rotation step (`createSecret`, ...).
pub const STEP_DIMENSION: &str = "Step";

// The metric vocabulary: every figure any function publishes, named once. Alarms (`monitoring::monitor::alarm_set`),
// the dashboard in `infra/template.yaml` and the book's reference (docs/book/src/reference/metrics.md) refer to these names; renaming one breaks them.

// snapshot
/// 1 when the run created the database's snapshot, else 0 (per `DBIdentifier`).
pub const SNAPSHOT_CREATED: &str = "SnapshotCreated";
/// 1 when the database's snapshot failed, else 0 (per `DBIdentifier`).
pub const SNAPSHOT_FAILED: &str = "SnapshotFailed";
/// Snapshots deleted by retention, here and in the DR region (per `DBIdentifier`).
pub const SNAPSHOTS_DELETED: &str = "SnapshotsDeleted";
/// Cross-region or cross-account copies started (per `DBIdentifier`).
pub const SNAPSHOT_COPIES_STARTED: &str = "SnapshotCopiesStarted";
/// Manual snapshots in the region, counted against the quota (per `Region`).
pub const MANUAL_SNAPSHOT_COUNT: &str = "ManualSnapshotCount";
/// The share of the manual-snapshot quota in use, in percent (per `Region`).
pub const MANUAL_SNAPSHOT_QUOTA_USED_PERCENT: &str = "ManualSnapshotQuotaUsedPercent";
/// How long one snapshot run took (no dimension).
pub const SNAPSHOT_RUN_DURATION_SECONDS: &str = "SnapshotRunDurationSeconds";
/// Newer versions of the plan document a plan run passed over because they fail validation (no dimension; the
/// snapshot and export functions publish it at each plan tick that does work, rotate at each of its plan ticks,
/// monitor at each run).
pub const PLAN_VERSIONS_REFUSED: &str = "PlanVersionsRefused";

// export
/// 1 when the export is there (made now or already), else 0 (per `DBIdentifier` and `Profile`).
pub const EXPORT_SUCCESS: &str = "ExportSuccess";
/// How long a completed export took (per `DBIdentifier` and `Profile`).
pub const EXPORT_DURATION_SECONDS: &str = "ExportDurationSeconds";
/// Bytes of the dump before compression and encryption (per `DBIdentifier` and `Profile`).
pub const EXPORT_PLAINTEXT_BYTES: &str = "ExportPlaintextBytes";
/// Bytes stored in the bucket (per `DBIdentifier` and `Profile`).
pub const EXPORT_STORED_BYTES: &str = "ExportStoredBytes";
/// Plaintext bytes per second of a completed export (per `DBIdentifier` and `Profile`).
pub const EXPORT_THROUGHPUT_BYTES_PER_SECOND: &str = "ExportThroughputBytesPerSecond";
/// Exports a plan's retention expired in this run (per `DBIdentifier` and `Profile`).
pub const EXPORTS_EXPIRED: &str = "ExportsExpired";
/// 1 when a database's or cache's plan cannot be decided (tagged with a plan the document lacks, or in two
/// plans), so a due run left it out (per `DBIdentifier` or `CacheIdentifier`).
pub const PLAN_MEMBERSHIP_ERROR: &str = "PlanMembershipError";

// rotate
/// 1 when a rotation step succeeded, else 0 (per `Secret` and `Step`).
pub const ROTATION_SUCCESS: &str = "RotationSuccess";
/// How long a rotation step took (per `Secret` and `Step`).
pub const ROTATION_STEP_DURATION_SECONDS: &str = "RotationStepDurationSeconds";
/// 1 when a plan tick configured the database's secret to rotate as its plan says (it was not), else 0 (per
/// `DBIdentifier`; only members of a plan with a rotation rule).
pub const ROTATION_SCHEDULE_CHANGED: &str = "RotationScheduleChanged";
/// 1 when a plan tick could not bring the database's secret in step with its plan's rotation rule, else 0 (per
/// `DBIdentifier`; only members of a plan with a rotation rule).
pub const ROTATION_SCHEDULE_FAILED: &str = "RotationScheduleFailed";
/// Plan members whose plan has no rotation rule and whose secret the rotate function still rotates: left rotating
/// and counted at each plan tick (no dimension).
pub const ROTATION_WITHOUT_PLAN_RULE: &str = "RotationWithoutPlanRule";

// restore
/// 1 when the database's restore test passed, else 0 (per `DBIdentifier`).
pub const RESTORE_TEST_SUCCESS: &str = "RestoreTestSuccess";
/// Time to a usable restored database, the measured RTO (per `DBIdentifier`).
pub const RESTORE_TIME_SECONDS: &str = "RestoreTimeSeconds";
/// Age of the data the restore test restored, the measured RPO (per `DBIdentifier`).
pub const RESTORE_DATA_AGE_SECONDS: &str = "RestoreDataAgeSeconds";
/// 1 when a staging refresh from the database's export completed and passed every check, else 0 (per
/// `DBIdentifier`, the source; the restore function's `refresh` and `refresh-tick`).
pub const REFRESH_SUCCESS: &str = "RefreshSuccess";
/// How long a staging refresh ran, refreshed or failed (per `DBIdentifier`, the source).
pub const REFRESH_DURATION_SECONDS: &str = "RefreshDurationSeconds";

// monitor
/// Age of the newest available snapshot (per `DBIdentifier`; absent when there is none).
pub const SNAPSHOT_AGE_SECONDS: &str = "SnapshotAgeSeconds";
/// Age of the newest complete export (per `DBIdentifier` and `Profile`; absent when there is none).
pub const EXPORT_AGE_SECONDS: &str = "ExportAgeSeconds";
/// Age of the newest restore-test report (per `DBIdentifier`; absent when there is none).
pub const RESTORE_TEST_AGE_SECONDS: &str = "RestoreTestAgeSeconds";
/// 1 when the newest restore-test report says it passed, else 0 (per `DBIdentifier`).
pub const LAST_RESTORE_TEST_SUCCESS: &str = "LastRestoreTestSuccess";
/// Verified RPO: the age of the newest recovery point a passed restore test proved (its report's
/// `recovery_point_time`), per `DBIdentifier`; absent when no recent restore test passed.
pub const VERIFIED_RPO_SECONDS: &str = "VerifiedRpoSeconds";
/// The automated backup retention period in days (per `DBIdentifier`).
pub const BACKUP_RETENTION_DAYS: &str = "BackupRetentionDays";
/// How far the latest restorable time lags behind now (per `DBIdentifier`).
pub const PITR_LAG_SECONDS: &str = "PitrLagSeconds";
/// 1 when the database's storage is encrypted, else 0 (per `DBIdentifier`).
pub const STORAGE_ENCRYPTED: &str = "StorageEncrypted";
/// 1 when deletion protection is on, else 0 (per `DBIdentifier`).
pub const DELETION_PROTECTION: &str = "DeletionProtection";
/// 1 when a selected database has neither a snapshot nor an export, else 0 (per `DBIdentifier`).
pub const BACKUP_MISSING: &str = "BackupMissing";
/// 1 when the cache encrypts in transit (TLS), else 0 (per `CacheIdentifier`).
pub const TRANSIT_ENCRYPTED: &str = "TransitEncrypted";
/// 1 when a cache tagged as production has no replica, else 0 (per `CacheIdentifier`; see
/// `monitoring::caches::is_production`).
pub const REPLICA_MISSING: &str = "ReplicaMissing";
/// Expired restore-test resources the janitor deleted in one run (no dimension).
pub const RESTORE_TEST_JANITOR_DELETED: &str = "RestoreTestJanitorDeleted";
/// Expired restore-test resources the janitor could not delete in one run (no dimension).
pub const RESTORE_TEST_JANITOR_FAILED: &str = "RestoreTestJanitorFailed";
/// 1 for a database (`DBIdentifier`) or cache (`CacheIdentifier`) that monitor watched, that still exists and is
/// no longer selected, until a person confirms the de-selection.
pub const DESELECTED: &str = "Deselected";
/// How many databases and caches are de-selected and unconfirmed (no dimension; the stack's alarm watches it).
pub const DESELECTED_UNCONFIRMED: &str = "DeselectedUnconfirmed";
/// Plan mode: databases and caches in no plan of the plan document (no dimension; the stack's alarm watches it).
pub const PLAN_UNASSIGNED: &str = "PlanUnassigned";
/// Plan mode: databases and caches whose plan cannot be decided, tagged with one plan and listed in another or
/// tagged with a plan the document does not have (no dimension).
pub const PLAN_CONFLICTS: &str = "PlanConflicts";
/// Databases and caches a plan lists by name that the region does not have: a typo or a renamed resource, whose
/// backups the plan silently does not make (no dimension).
pub const PLAN_MEMBERS_MISSING: &str = "PlanMembersMissing";
/// Plan mode: 1 when a database's credentials are older than its plan's rotation rule allows (the cadence plus
/// 10 %, counted from the secret's last rotation, else its creation), else 0 (per `DBIdentifier`).
pub const ROTATION_OVERDUE: &str = "RotationOverdue";
/// Plan mode: how many databases' rotations are overdue (no dimension; the stack's alarm watches it).
pub const ROTATIONS_OVERDUE: &str = "RotationsOverdue";
/// Plan mode: 1 when no version of the plan document could be used (the run fails with `Lifeboat.PlanError`),
/// else 0 (no dimension).
pub const PLAN_DOCUMENT_UNUSABLE: &str = "PlanDocumentUnusable";
/// 1 when an evidence report was written, 0 when making one failed (no dimension).
pub const EVIDENCE_REPORT_WRITTEN: &str = "EvidenceReportWritten";
/// Databases whose report says "does not meet its policy" (no dimension).
pub const EVIDENCE_POLICIES_NOT_MET: &str = "EvidencePoliciesNotMet";
/// Gap days (a day with fewer backups than the policy expects) of one database in the report's period (per
/// `DBIdentifier`).
pub const EVIDENCE_GAP_DAYS: &str = "EvidenceGapDays";

// notify
/// 1 when a message reached every channel, 0 when one failed (no dimension).
pub const NOTIFICATION_DELIVERED: &str = "NotificationDelivered";
/// 1 when a message was not sent: a repeat within the window, or an OK that follows no alarm (no dimension).
pub const NOTIFICATION_SUPPRESSED: &str = "NotificationSuppressed";

// export: RDB copies of caches
/// 1 when the newest snapshot's RDB copy of a cache failed verification (now or in an earlier run), else 0 (per
/// `CacheIdentifier`).
pub const RDB_COPY_FAILED: &str = "RdbCopyFailed";
/// 1 when a run verified a cache's RDB copy and wrote its manifest, else 0 (per `CacheIdentifier`).
pub const RDB_COPY_VERIFIED: &str = "RdbCopyVerified";
/// 1 when a run could not take a cache's copy step (an AWS error, or the invocation's deadline came first, or
/// the cache was not reached before it), else 0 (per `CacheIdentifier`).
pub const RDB_COPY_ERROR: &str = "RdbCopyError";

// the content watch (export and monitor)
/// Findings of one backup's content watch (per `DBIdentifier` and `Profile`, or `CacheIdentifier` and `Profile`
/// `rdb`); 0 when it found nothing.
pub const CONTENT_FINDINGS: &str = "ContentFindings";
/// 1 when a backup's content watch could not run (its record is not written; monitor tries again), else 0 (same
/// dimensions as `ContentFindings`).
pub const CONTENT_WATCH_FAILED: &str = "ContentWatchFailed";
/// The content anomalies of a database or cache still open (not acknowledged), per `DBIdentifier` or
/// `CacheIdentifier` (monitor, every run; `watch::hold`).
pub const CONTENT_ANOMALIES: &str = "ContentAnomalies";

/// Every metric name above, for tests that check the vocabulary is complete and unique.
pub const ALL: &[&str] = &[
    CONTENT_FINDINGS,
    CONTENT_WATCH_FAILED,
    RDB_COPY_FAILED,
    RDB_COPY_VERIFIED,
    RDB_COPY_ERROR,
    SNAPSHOT_CREATED,
    SNAPSHOT_FAILED,
    SNAPSHOTS_DELETED,
    SNAPSHOT_COPIES_STARTED,
    MANUAL_SNAPSHOT_COUNT,
    MANUAL_SNAPSHOT_QUOTA_USED_PERCENT,
    SNAPSHOT_RUN_DURATION_SECONDS,
    PLAN_VERSIONS_REFUSED,
    EXPORT_SUCCESS,
    EXPORT_DURATION_SECONDS,
    EXPORT_PLAINTEXT_BYTES,
    EXPORT_STORED_BYTES,
    EXPORT_THROUGHPUT_BYTES_PER_SECOND,
    EXPORTS_EXPIRED,
    PLAN_MEMBERSHIP_ERROR,
    ROTATION_SUCCESS,
    ROTATION_STEP_DURATION_SECONDS,
    ROTATION_SCHEDULE_CHANGED,
    ROTATION_SCHEDULE_FAILED,
    ROTATION_WITHOUT_PLAN_RULE,
    RESTORE_TEST_SUCCESS,
    RESTORE_TIME_SECONDS,
    RESTORE_DATA_AGE_SECONDS,
    SNAPSHOT_AGE_SECONDS,
    EXPORT_AGE_SECONDS,
    RESTORE_TEST_AGE_SECONDS,
    LAST_RESTORE_TEST_SUCCESS,
    VERIFIED_RPO_SECONDS,
    BACKUP_RETENTION_DAYS,
    PITR_LAG_SECONDS,
    STORAGE_ENCRYPTED,
    DELETION_PROTECTION,
    BACKUP_MISSING,
    TRANSIT_ENCRYPTED,
    REPLICA_MISSING,
    RESTORE_TEST_JANITOR_DELETED,
    RESTORE_TEST_JANITOR_FAILED,
    DESELECTED,
    DESELECTED_UNCONFIRMED,
    PLAN_UNASSIGNED,
    PLAN_CONFLICTS,
    PLAN_MEMBERS_MISSING,
    PLAN_DOCUMENT_UNUSABLE,
    ROTATION_OVERDUE,
    ROTATIONS_OVERDUE,
    EVIDENCE_REPORT_WRITTEN,
    EVIDENCE_POLICIES_NOT_MET,
    EVIDENCE_GAP_DAYS,
    NOTIFICATION_DELIVERED,
    NOTIFICATION_SUPPRESSED,
    CONTENT_ANOMALIES,
    REFRESH_SUCCESS,
    REFRESH_DURATION_SECONDS,
];
/// PutMetricData accepts up to 1,000 datums per call; staying well under also keeps the payload under 1 MB.
pub const BATCH_SIZE: usize = 500;
/// An EMF document names at most 100 metrics, and a metric carries at most 100 values.
pub const EMF_MAX_METRICS: usize = 100;
pub const EMF_MAX_VALUES: usize = 100;

/// Where a run's figures go: see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Embedded Metric Format lines on standard output (in Lambda).
    Emf,
    /// `PutMetricData` (outside Lambda).
    Api,
}

impl Route {
    /// The route for this process: EMF when the Lambda runtime started it, else the API.
    pub fn of_process() -> Self {
        Self::of(std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some())
    }

    fn of(in_lambda: bool) -> Self {
        if in_lambda {
            Self::Emf
        } else {
            Self::Api
        }
    }
}

/// One figure, kept as plain data so tests can inspect what a run would publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: StandardUnit,
    pub dimensions: Vec<(String, String)>,
}

/// The metrics of one run.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    items: Vec<Metric>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// A per-database figure.
    pub fn db(&mut self, db: &str, name: &str, value: f64, unit: StandardUnit) {
        self.items.push(Metric {
            name: name.to_owned(),
            value,
            unit,
            dimensions: vec![(DB_DIMENSION.to_owned(), db.to_owned())],
        });
    }

    /// A figure with explicit dimensions (or none, for account/region-wide figures).
    pub fn put(&mut self, name: &str, value: f64, unit: StandardUnit, dimensions: &[(&str, &str)]) {
        self.items.push(Metric {
            name: name.to_owned(),
            value,
            unit,
            dimensions: dimensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
    }

    pub fn items(&self) -> &[Metric] {
        &self.items
    }

    /// Looks up a figure by name and `DBIdentifier` (for tests and summaries).
    pub fn value_for(&self, db: &str, name: &str) -> Option<f64> {
        self.items
            .iter()
            .find(|m| m.name == name && m.dimensions.iter().any(|(k, v)| k == DB_DIMENSION && v == db))
            .map(|m| m.value)
    }

    /// Publishes every figure, timestamped `at`, by this process's [`Route`]: EMF lines on standard output in
    /// Lambda, else `PutMetricData` through `cw`. Returns how many figures were published.
    pub async fn publish(&self, cw: &Client, namespace: &str, at: DateTime<Utc>) -> Result<usize, Error> {
        match Route::of_process() {
            Route::Emf => {
                use std::io::Write as _;
                // One write per line under the lock, so a log line of another thread never splits a document.
                let mut out = std::io::stdout().lock();
                for doc in self.emf_documents(namespace, at) {
                    writeln!(out, "{doc}").map_err(|e| Error::Metrics(e.to_string()))?;
                }
                out.flush().map_err(|e| Error::Metrics(e.to_string()))?;
                Ok(self.items.len())
            }
            Route::Api => self.put_metric_data(cw, namespace, at).await,
        }
    }

    /// The figures as CloudWatch Embedded Metric Format documents: one per set of dimension values (figures
    /// without dimensions share one with an empty dimension set), at most [`EMF_MAX_METRICS`] metrics each; a
    /// metric recorded more than once under the same dimensions carries its values as an array (up to
    /// [`EMF_MAX_VALUES`]), which CloudWatch counts as that many samples. Documents come in the order their
    /// first figure was recorded.
    pub fn emf_documents(&self, namespace: &str, at: DateTime<Utc>) -> Vec<Value> {
        struct Doc<'a> {
            dimensions: &'a [(String, String)],
            /// Metric name, unit, values, in the order first seen.
            metrics: Vec<(&'a str, &'a str, Vec<f64>)>,
        }
        let mut docs: Vec<Doc<'_>> = Vec::new();
        for m in &self.items {
            let unit = m.unit.as_str();
            let fits = |d: &Doc<'_>| {
                d.dimensions == m.dimensions.as_slice()
                    && match d.metrics.iter().find(|(n, _, _)| *n == m.name) {
                        Some((_, u, values)) => *u == unit && values.len() < EMF_MAX_VALUES,
                        None => d.metrics.len() < EMF_MAX_METRICS,
                    }
            };
            let doc = match docs.iter().position(fits) {
                Some(i) => &mut docs[i],
                None => {
                    docs.push(Doc {
                        dimensions: &m.dimensions,
                        metrics: Vec::new(),
                    });
                    let last = docs.len() - 1;
                    &mut docs[last]
                }
            };
            match doc.metrics.iter_mut().find(|(n, _, _)| *n == m.name) {
                Some((_, _, values)) => values.push(m.value),
                None => doc.metrics.push((&m.name, unit, vec![m.value])),
            }
        }
        docs.into_iter()
            .map(|d| {
                let mut root = Map::new();
                for (k, v) in d.dimensions {
                    root.insert(k.clone(), Value::from(v.as_str()));
                }
                let names: Vec<&str> = d.dimensions.iter().map(|(k, _)| k.as_str()).collect();
                let definitions: Vec<Value> = d
                    .metrics
                    .iter()
                    .map(|(n, u, _)| json!({"Name": n, "Unit": u}))
                    .collect();
                for (name, _, values) in d.metrics {
                    let value = match values.as_slice() {
                        [one] => json!(one),
                        many => json!(many),
                    };
                    root.insert(name.to_owned(), value);
                }
                root.insert(
                    "_aws".to_owned(),
                    json!({
                        "Timestamp": at.timestamp_millis(),
                        "CloudWatchMetrics": [{
                            "Namespace": namespace,
                            "Dimensions": [names],
                            "Metrics": definitions,
                        }],
                    }),
                );
                Value::Object(root)
            })
            .collect()
    }

    /// Publishes every figure with `PutMetricData`, in as few calls as the API allows.
    async fn put_metric_data(&self, cw: &Client, namespace: &str, at: DateTime<Utc>) -> Result<usize, Error> {
        let timestamp = aws_sdk_cloudwatch::primitives::DateTime::from_millis(at.timestamp_millis());
        for chunk in self.items.chunks(BATCH_SIZE) {
            let data: Vec<MetricDatum> = chunk
                .iter()
                .map(|m| {
                    MetricDatum::builder()
                        .metric_name(&m.name)
                        .value(m.value)
                        .unit(m.unit.clone())
                        .timestamp(timestamp)
                        .set_dimensions(Some(
                            m.dimensions
                                .iter()
                                .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                                .collect(),
                        ))
                        .build()
                })
                .collect();
            cw.put_metric_data()
                .namespace(namespace)
                .set_metric_data(Some(data))
                .send()
                .await
                .map_err(|e| Error::aws("PutMetricData", e))?;
        }
        Ok(self.items.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_is_unique_and_pascal_case() {
        let unique: std::collections::BTreeSet<_> = ALL.iter().collect();
        assert_eq!(unique.len(), ALL.len(), "a metric name is listed twice");
        for name in ALL {
            assert!(
                name.starts_with(|c: char| c.is_ascii_uppercase()) && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name}"
            );
        }
    }
    use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    #[tokio::test]
    async fn publishes_in_batches_with_the_db_dimension() {
        let rule = mock!(Client::put_metric_data)
            .match_requests(|r| {
                r.namespace() == Some("Lifeboat")
                    && r.metric_data().len() <= BATCH_SIZE
                    && r.metric_data()
                        .iter()
                        .all(|d| d.dimensions().len() == 1 && d.dimensions()[0].name() == Some(DB_DIMENSION))
            })
            .then_output(|| PutMetricDataOutput::builder().build());
        let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let mut m = Metrics::new();
        for i in 0..1_200 {
            m.db(&format!("db-{i}"), "SnapshotCreated", 1.0, StandardUnit::Count);
        }
        assert_eq!(m.publish(&cw, "Lifeboat", Utc::now()).await.unwrap(), 1_200);
        assert_eq!(rule.num_calls(), 3);
        assert_eq!(m.value_for("db-7", "SnapshotCreated"), Some(1.0));
        assert_eq!(m.value_for("db-7", "SnapshotFailed"), None);
    }

    #[test]
    fn the_route_is_emf_only_under_the_lambda_runtime() {
        assert_eq!(Route::of(true), Route::Emf);
        assert_eq!(Route::of(false), Route::Api);
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_780_000_000_123).unwrap()
    }

    #[test]
    fn emf_documents_group_figures_by_their_dimension_values() {
        let mut m = Metrics::new();
        m.db("app-prod", SNAPSHOT_CREATED, 1.0, StandardUnit::Count);
        m.db("app-staging", SNAPSHOT_CREATED, 0.0, StandardUnit::Count);
        m.db("app-prod", SNAPSHOTS_DELETED, 3.0, StandardUnit::Count);
        m.put(SNAPSHOT_RUN_DURATION_SECONDS, 12.5, StandardUnit::Seconds, &[]);
        m.put(
            EXPORT_DURATION_SECONDS,
            60.0,
            StandardUnit::Seconds,
            &[(DB_DIMENSION, "app-prod"), (PROFILE_DIMENSION, "full")],
        );
        let docs = m.emf_documents("Lifeboat", at());
        assert_eq!(docs.len(), 4, "{docs:#?}");
        assert_eq!(
            docs[0],
            json!({
                "DBIdentifier": "app-prod",
                "SnapshotCreated": 1.0,
                "SnapshotsDeleted": 3.0,
                "_aws": {
                    "Timestamp": 1_780_000_000_123i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "Lifeboat",
                        "Dimensions": [["DBIdentifier"]],
                        "Metrics": [
                            {"Name": "SnapshotCreated", "Unit": "Count"},
                            {"Name": "SnapshotsDeleted", "Unit": "Count"},
                        ],
                    }],
                },
            })
        );
        assert_eq!(docs[1]["DBIdentifier"], "app-staging");
        assert_eq!(docs[1]["SnapshotCreated"], 0.0);
        // A run-wide figure: an empty dimension set, as EMF spells "no dimension".
        assert_eq!(docs[2]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(docs[2]["SnapshotRunDurationSeconds"], 12.5);
        assert_eq!(docs[2]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Seconds");
        assert_eq!(
            docs[3]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["DBIdentifier", "Profile"]])
        );
        assert_eq!(
            (docs[3]["DBIdentifier"].clone(), docs[3]["Profile"].clone()),
            (json!("app-prod"), json!("full"))
        );
    }

    #[test]
    fn emf_documents_keep_to_the_format_limits() {
        let mut m = Metrics::new();
        // 150 distinct metrics under one dimension set: two documents, 100 and 50.
        let names: Vec<String> = (0..150).map(|i| format!("Figure{i}")).collect();
        for name in &names {
            m.db("app-prod", name, 1.0, StandardUnit::Count);
        }
        // One metric 250 times: values as arrays of at most 100.
        for i in 0..250 {
            m.put(
                EXPORT_STORED_BYTES,
                f64::from(i),
                StandardUnit::Bytes,
                &[(DB_DIMENSION, "big")],
            );
        }
        let docs = m.emf_documents("Lifeboat", at());
        let defined = |d: &Value| d["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len();
        assert_eq!(docs.iter().map(defined).collect::<Vec<_>>(), vec![100, 50, 1, 1, 1]);
        let values: Vec<usize> = docs[2..]
            .iter()
            .map(|d| d[EXPORT_STORED_BYTES].as_array().unwrap().len())
            .collect();
        assert_eq!(values, vec![100, 100, 50]);
        // Every figure is in exactly one document, with its value.
        let total: usize = docs
            .iter()
            .map(|d| {
                d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|def| match &d[def["Name"].as_str().unwrap()] {
                        Value::Array(a) => a.len(),
                        _ => 1,
                    })
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(total, 400);
        assert_eq!(docs[4][EXPORT_STORED_BYTES][49], 249.0);
    }

    #[test]
    fn a_metric_seen_with_another_unit_goes_to_its_own_document() {
        let mut m = Metrics::new();
        m.db("app-prod", EXPORT_STORED_BYTES, 10.0, StandardUnit::Bytes);
        m.db("app-prod", EXPORT_STORED_BYTES, 1.0, StandardUnit::Megabytes);
        let docs = m.emf_documents("Lifeboat", at());
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Megabytes"
        );
    }
}
