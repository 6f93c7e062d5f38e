//! CloudWatch metrics: collected during a run, published in batches at its end.
//!
//! Namespace `Lifeboat` (configurable), dimension `DBIdentifier` on per-database figures. Publishing happens
//! once per run so that a run costs a handful of PutMetricData calls whatever the fleet size.
//!
//! Owns the metric vocabulary: every metric and dimension name any function publishes is a constant here, and no
//! function spells one as a literal. It must never compute a figure (the rules that do live with their owners,
//! e.g. `monitoring::monitor::db_metrics`) nor publish anywhere but CloudWatch.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_cloudwatch::Client;
use chrono::{DateTime, Utc};

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
// the dashboard in `infra/template.yaml` and the README refer to these names; renaming one breaks them.

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

// rotate
/// 1 when a rotation step succeeded, else 0 (per `Secret` and `Step`).
pub const ROTATION_SUCCESS: &str = "RotationSuccess";
/// How long a rotation step took (per `Secret` and `Step`).
pub const ROTATION_STEP_DURATION_SECONDS: &str = "RotationStepDurationSeconds";

// restore
/// 1 when the database's restore test passed, else 0 (per `DBIdentifier`).
pub const RESTORE_TEST_SUCCESS: &str = "RestoreTestSuccess";
/// Time to a usable restored database, the measured RTO (per `DBIdentifier`).
pub const RESTORE_TIME_SECONDS: &str = "RestoreTimeSeconds";
/// Age of the data the restore test restored, the measured RPO (per `DBIdentifier`).
pub const RESTORE_DATA_AGE_SECONDS: &str = "RestoreDataAgeSeconds";

// monitor
/// Age of the newest available snapshot (per `DBIdentifier`; absent when there is none).
pub const SNAPSHOT_AGE_SECONDS: &str = "SnapshotAgeSeconds";
/// Age of the newest complete export (per `DBIdentifier` and `Profile`; absent when there is none).
pub const EXPORT_AGE_SECONDS: &str = "ExportAgeSeconds";
/// Age of the newest restore-test report (per `DBIdentifier`; absent when there is none).
pub const RESTORE_TEST_AGE_SECONDS: &str = "RestoreTestAgeSeconds";
/// 1 when the newest restore-test report says it passed, else 0 (per `DBIdentifier`).
pub const LAST_RESTORE_TEST_SUCCESS: &str = "LastRestoreTestSuccess";
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

/// Every metric name above, for tests that check the vocabulary is complete and unique.
pub const ALL: &[&str] = &[
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
    EXPORT_SUCCESS,
    EXPORT_DURATION_SECONDS,
    EXPORT_PLAINTEXT_BYTES,
    EXPORT_STORED_BYTES,
    EXPORT_THROUGHPUT_BYTES_PER_SECOND,
    ROTATION_SUCCESS,
    ROTATION_STEP_DURATION_SECONDS,
    RESTORE_TEST_SUCCESS,
    RESTORE_TIME_SECONDS,
    RESTORE_DATA_AGE_SECONDS,
    SNAPSHOT_AGE_SECONDS,
    EXPORT_AGE_SECONDS,
    RESTORE_TEST_AGE_SECONDS,
    LAST_RESTORE_TEST_SUCCESS,
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
    EVIDENCE_REPORT_WRITTEN,
    EVIDENCE_POLICIES_NOT_MET,
    EVIDENCE_GAP_DAYS,
    NOTIFICATION_DELIVERED,
    NOTIFICATION_SUPPRESSED,
];
/// PutMetricData accepts up to 1,000 datums per call; staying well under also keeps the payload under 1 MB.
pub const BATCH_SIZE: usize = 500;

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

    /// Publishes every figure, timestamped `at`, in as few calls as the API allows.
    pub async fn publish(&self, cw: &Client, namespace: &str, at: DateTime<Utc>) -> Result<usize, Error> {
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
}
