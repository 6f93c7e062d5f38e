//! The report of one restore from an export, written to the bucket by the console action (always) and by
//! `lifeboat restore --report`: what was restored from which export into where, each table's counted rows beside
//! the manifest's, the duration of each stage, the RTO, and the outcome (with the check that failed).
//!
//! Owns: the report's shape ([`RestoreReport`], built by [`build`], pure) and its write ([`write`]): under
//! [`crate::bucket::layout::restore_export_report_key`], with If-None-Match so a report is never overwritten.
//! Never: holds a password or a host's credentials (the target is named by instance or host and database only).

use aws_sdk_s3::error::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::restore::Report;
use super::select::{match_tables, qualified};
use super::ArchiveError;
use crate::bucket::layout::restore_export_report_key;
use crate::bucket::manifest::Manifest;
use crate::core::error::Error;

/// How many later keys are tried when a report's key is taken (another restore of the database that second).
pub(crate) const KEY_RETRIES: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Restored, and every table's row count equals the manifest's.
    Restored,
    /// Stopped; `failed_check` says which check, and what the restore created was dropped.
    Failed,
}

/// One table: the manifest's row count and the count found in the new database (`None`: not counted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportTable {
    pub table: String,
    pub expected_rows: i64,
    pub restored_rows: Option<i64>,
}

/// Seconds per stage. The streamed stages overlap: download, decrypt and restore are each counted from the start
/// of the stream, so their sum is not the total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    pub prepare_seconds: f64,
    pub download_seconds: Option<f64>,
    pub decrypt_seconds: Option<f64>,
    pub restore_seconds: Option<f64>,
    pub verify_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The RDS instance or cluster whose export was restored.
    pub source: String,
    pub export_manifest: String,
    pub export_object: String,
    pub export_logical_time: DateTime<Utc>,
    /// The server restored onto: an instance identifier (console) or a host (terminal).
    pub target_server: String,
    pub target_database: String,
    /// The role that owns the restored database (see [`super::owner`]): `GRANT <role> TO <user>` lets a user
    /// in. `None` when the restore failed (the role was dropped with the database) or in older reports.
    #[serde(default)]
    pub owner_role: Option<String>,
    /// `restore-export` (the console action) or `lifeboat` (the terminal tool).
    pub by: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// The check that failed (see [`ArchiveError::check`]), and the error's text.
    pub failed_check: Option<String>,
    pub error: Option<String>,
    pub tables: Vec<ReportTable>,
    /// What belongs to the restored tables but was left out, and why (see [`super::select::whole_tables`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    pub durations: Durations,
    /// From the request to a verified database (also on failure: the time it took to fail).
    pub rto_seconds: f64,
}

/// What a restore was asked to do, for its report.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub source: &'a str,
    pub manifest_key: &'a str,
    pub manifest: &'a Manifest,
    pub tables: &'a [String],
    pub target_server: &'a str,
    pub target_database: &'a str,
    pub by: &'a str,
    pub started_at: DateTime<Utc>,
    pub prepare_seconds: f64,
}

/// The report of `attempt`, which ended at `finished_at` with `result`.
pub fn build(a: &Attempt<'_>, result: &Result<Report, ArchiveError>, finished_at: DateTime<Utc>) -> RestoreReport {
    let (outcome, failed_check, error, tables, durations) = match result {
        Ok(r) => (Outcome::Restored, None, None, restored(r), durations(a, Some(r))),
        Err(e) => (
            Outcome::Failed,
            Some(e.check().to_owned()),
            Some(e.to_string()),
            expected(a, e),
            durations(a, None),
        ),
    };
    RestoreReport {
        source: a.source.to_owned(),
        export_manifest: a.manifest_key.to_owned(),
        export_object: a.manifest.stored.key.clone(),
        export_logical_time: a.manifest.logical_time,
        target_server: a.target_server.to_owned(),
        target_database: a.target_database.to_owned(),
        owner_role: result.as_ref().ok().map(|r| r.owner_role.clone()),
        by: a.by.to_owned(),
        started_at: a.started_at,
        finished_at,
        outcome,
        failed_check,
        error,
        tables,
        left_out: result.as_ref().map(|r| r.left_out.clone()).unwrap_or_default(),
        durations,
        rto_seconds: (finished_at - a.started_at).num_milliseconds().max(0) as f64 / 1000.0,
    }
}

fn restored(r: &Report) -> Vec<ReportTable> {
    r.tables
        .iter()
        .map(|t| ReportTable {
            table: format!("{}.{}", t.schema, t.name),
            expected_rows: t.expected_rows,
            restored_rows: Some(t.restored_rows),
        })
        .collect()
}

/// The tables a failed restore was to bring back; counted only when the count comparison is what failed.
fn expected(a: &Attempt<'_>, e: &ArchiveError) -> Vec<ReportTable> {
    let selected = if a.tables.is_empty() {
        a.manifest.tables.clone()
    } else {
        match_tables(a.tables, &a.manifest.tables).unwrap_or_default()
    };
    let mismatches = match e {
        ArchiveError::RowCounts { mismatches } => Some(mismatches),
        _ => None,
    };
    selected
        .iter()
        .map(|t| {
            let table = qualified(t);
            let restored_rows = mismatches.and_then(|m| match m.iter().find(|m| m.table == table) {
                Some(m) => m.actual,
                None => Some(t.rows),
            });
            ReportTable {
                table,
                expected_rows: t.rows,
                restored_rows,
            }
        })
        .collect()
}

fn durations(a: &Attempt<'_>, r: Option<&Report>) -> Durations {
    let s = r.map(|r| &r.stages);
    Durations {
        prepare_seconds: a.prepare_seconds,
        download_seconds: s.map(|s| s.download_seconds),
        decrypt_seconds: s.map(|s| s.decrypt_seconds),
        restore_seconds: s.map(|s| s.restore_seconds),
        verify_seconds: s.map(|s| s.verify_seconds),
    }
}

/// Writes the report (SSE-KMS, If-None-Match) and returns its key; a key taken in the same second moves to the
/// next free `<n>-<stamp>` key rather than overwrite.
pub async fn write(s3: &aws_sdk_s3::Client, bucket: &str, report: &RestoreReport) -> Result<String, Error> {
    let body = serde_json::to_vec_pretty(report).map_err(|e| Error::Aws {
        operation: "PutObject",
        code: None,
        message: format!("serialising the restore report: {e}"),
    })?;
    for retry in 0..=KEY_RETRIES {
        let key = restore_export_report_key(&report.source, report.finished_at, retry);
        if put_new(s3, bucket, &key, "application/json", body.clone()).await? {
            return Ok(key);
        }
    }
    Err(Error::Aws {
        operation: "PutObject",
        code: None,
        message: format!(
            "every report key of {} at {} is taken ({KEY_RETRIES} tried)",
            report.source, report.finished_at
        ),
    })
}

/// Puts a report at `key` (SSE-KMS) only if nothing is there (If-None-Match): `false` when the key is taken, so
/// that a report is never overwritten. Also the staging refresh's reports' write (`crate::refresh::report`).
pub(crate) async fn put_new(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<bool, Error> {
    let sent = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(body.into())
        .if_none_match("*")
        .send()
        .await;
    match sent {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("PreconditionFailed") => Ok(false),
        Err(e) => Err(Error::aws("PutObject", e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::postgres::archive::restore::{RestoredTable, Stages};
    use crate::postgres::archive::select::CountMismatch;
    use chrono::TimeZone;

    fn manifest() -> Manifest {
        serde_json::from_value(serde_json::json!({
            "format_version": 1, "lifeboat_version": "0.1.0", "database": "app-prod", "profile": "full",
            "logical_time": "2026-11-22T02:00:00Z", "started_at": "2026-11-22T02:00:00Z",
            "finished_at": "2026-11-22T02:01:00Z", "duration_seconds": 60.0,
            "source": {"engine": "postgres", "server_version": "16", "dbname": "app", "database_size_bytes": 1},
            "pg_dump_version": "16", "tables": [
                {"schema": "public", "name": "users", "rows": 250},
                {"schema": "public", "name": "chats", "rows": 10}],
            "plaintext": {"bytes": 10, "sha256": "p"},
            "stored": {"bucket": "b", "key": "exports/app-prod/full/x.dump.zst.age", "bytes": 9, "sha256": "s",
                       "parts": 1, "sse": "aws:kms", "kms_key_id": null, "object_lock_until": null},
            "compression": {"algorithm": "zstd", "level": 1}, "encryption": null,
            "verification": {"method": "pg_restore -f /dev/null", "pg_restore_version": "16"}
        }))
        .unwrap()
    }

    fn attempt<'a>(m: &'a Manifest, tables: &'a [String]) -> Attempt<'a> {
        Attempt {
            source: "app-prod",
            manifest_key: "exports/app-prod/full/x.manifest.json",
            manifest: m,
            tables,
            target_server: "app-prod",
            target_database: "app_restore",
            by: "restore-export",
            started_at: Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap(),
            prepare_seconds: 0.5,
        }
    }

    #[test]
    fn a_verified_restore_reports_counts_stages_and_rto() {
        let m = manifest();
        let tables = vec!["users".to_owned()];
        let ok = Report {
            database: "app_restore".into(),
            owner_role: "app_restore_owner".into(),
            export_key: m.stored.key.clone(),
            left_out: Vec::new(),
            tables: vec![RestoredTable {
                schema: "public".into(),
                name: "users".into(),
                expected_rows: 250,
                restored_rows: 250,
            }],
            stored_bytes: 9,
            plaintext_bytes: 10,
            stages: Stages {
                download_seconds: 1.0,
                decrypt_seconds: 2.0,
                restore_seconds: 3.0,
                verify_seconds: 0.25,
            },
        };
        let end = Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 4).unwrap();
        let r = build(&attempt(&m, &tables), &Ok(ok), end);
        assert_eq!(r.outcome, Outcome::Restored);
        assert_eq!(r.failed_check, None);
        assert_eq!(r.rto_seconds, 4.0);
        assert_eq!(r.durations.restore_seconds, Some(3.0));
        assert_eq!(
            r.tables,
            vec![ReportTable {
                table: "public.users".into(),
                expected_rows: 250,
                restored_rows: Some(250)
            }]
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["outcome"], "restored");
        assert_eq!(
            json["owner_role"], "app_restore_owner",
            "who to grant to use the database"
        );
        assert_eq!(json["export_manifest"], "exports/app-prod/full/x.manifest.json");
    }

    #[test]
    fn a_failed_restore_names_the_check_and_what_it_was_to_restore() {
        let m = manifest();
        let end = Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 1).unwrap();
        let tampered = ArchiveError::StoredChecksum {
            key: "k".into(),
            expected: "a".into(),
            actual: "b".into(),
        };
        let r = build(&attempt(&m, &[]), &Err(tampered), end);
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.failed_check.as_deref(), Some("stored-checksum"));
        assert!(r.error.unwrap().contains("stored checksum failed"));
        assert_eq!(r.tables.len(), 2);
        assert!(r.tables.iter().all(|t| t.restored_rows.is_none()));
        assert_eq!(r.durations.download_seconds, None);

        let counts = ArchiveError::RowCounts {
            mismatches: vec![CountMismatch {
                table: "public.users".into(),
                expected: 250,
                actual: Some(249),
            }],
        };
        let r = build(&attempt(&m, &[]), &Err(counts), end);
        assert_eq!(r.failed_check.as_deref(), Some("row-counts"));
        let counted: Vec<_> = r.tables.iter().map(|t| (t.table.as_str(), t.restored_rows)).collect();
        assert_eq!(counted, vec![("public.users", Some(249)), ("public.chats", Some(10))]);
    }
}
