//! The RDB copy of a serverless cache's snapshot: where `ExportServerlessCacheSnapshot` puts the files, when they
//! are complete, and the request. Everything after the files are staged (verification by streaming, the move
//! under `exports/_caches/<cache>/rdb/`, the manifest last, the failure record and alarm) is the node-based copy's, in
//! [`super`] and the export function, unchanged.
//!
//! # What this relies on (and what is assumed)
//!
//! From the ElastiCache API reference (`ExportServerlessCacheSnapshot`, `ServerlessCacheSnapshot`) and the user
//! guide ("Exporting a backup": export is available for serverless Valkey and Redis OSS caches), read for this:
//! - The request takes the snapshot's name and a bucket in the same Region, and **no target name**; the
//!   reference does not say how the objects are named, and a serverless snapshot reports **no shard count**.
//! - Assumed (not documented, not exercised against AWS here): ElastiCache names the objects after the snapshot
//!   as `CopySnapshot` names them after its target, at the bucket's root: `<snapshot>-0001.rdb`, `-0002.rdb`, ...,
//!   or `<snapshot>.rdb` for one file; [`super::staged_shards`] accepts exactly those, nothing else. Lifeboat's
//!   serverless snapshot names are its own deterministic `lifeboat-<cache>-<time>` names (unique in the account,
//!   CreateServerlessCacheSnapshot's rule), so the files of one copy are never mistaken for another's. If AWS
//!   names them otherwise, the copy waits with "ElastiCache is exporting"/"nothing staged" and never writes a
//!   manifest: the export-age alarm fires, nothing wrong is ever verified.
//! - How many files a copy has: ElastiCache does not say. `DescribeServerlessCacheSnapshots` gives a snapshot's
//!   name, ARN, status, times, bytes used and engine, `DescribeServerlessCaches` its engine, limits and endpoints,
//!   and neither a shard count (SDK 1.129). Counting the files that happen to be staged would turn a copy missing
//!   its last shard into a "complete" one with a manifest, so the copy is refused instead ([`next_step`]):
//!   nothing is requested or verified, the run reports the copy failed with the reason, and its alarm fires.
//!   When ElastiCache reports the count, [`describe`] records it in [`ExportableSnapshot::shards`] and the copy
//!   is then exactly the files 1..=n, as a node-based copy is.
//! - Where it may write: since the name is not Lifeboat's to choose, the bucket policy admits ElastiCache to
//!   `lifeboat-*.rdb` at the root as well as to `rdb-staging-*` (only `.rdb` objects; `exports/` stays closed to
//!   it), and a lifecycle rule expires what is left there as it does the staging prefix. The failure record stays
//!   under the staging prefix (`rdb-staging-<snapshot>.failed.json`), where the export role may write it.
//! - Binding to the request: the objects' names derive from the snapshot's, and `ElastiCache` writes `lifeboat-*.rdb`
//!   for anyone's `CopySnapshot` too, so a random part cannot be put in the name as [`super`] does: the request
//!   record, matched to the snapshot, and files written after it ([`super::staged_by_request`]) are the binding, and
//!   someone with `elasticache:CopySnapshot` who stages under `<snapshot>-0001.rdb` after the record and before
//!   ElastiCache's export would not be told apart. Today no serverless copy is published (no shard count, above);
//!   this window must be closed before one is.
//! - Idempotence: a run asks for an export only when nothing is staged and the snapshot is not `exporting`; a
//!   second request while one runs is refused (`InvalidServerlessCacheSnapshotStateFault`) and read as "already
//!   requested". If ElastiCache accepted a second export of the same snapshot it would write the same data; the
//!   manifest is written once (`If-None-Match`) and lists the hashes of the files it verified.
//! - Access: the caller needs `elasticache:ExportServerlessCacheSnapshot` (and
//!   `DescribeServerlessCacheSnapshots`); ElastiCache writes as the service principal
//!   `<region>.elasticache-snapshot.amazonaws.com`. Not checked on AWS: whether that principal sends
//!   `aws:SourceAccount` (so the grant carries no such condition, like the CopySnapshot one) and whether it may
//!   use the bucket's KMS key for the serverless export.

use aws_sdk_elasticache::operation::export_serverless_cache_snapshot::ExportServerlessCacheSnapshotError;

use super::{CopyState, ExportableSnapshot, RdbCopyError, Requested, Step};
use crate::caches::elasticache::{Cache, CacheSnapshot};
use crate::core::error::Error;
use crate::rds::retention::Retained;

/// The name the export's objects start with: the snapshot's own (the request takes no target name).
pub fn staging_name(snapshot: &str) -> String {
    snapshot.to_owned()
}

/// Why a serverless copy is refused while ElastiCache reports no shard count for the snapshot.
pub const UNKNOWN_SHARDS: &str = "ElastiCache reports no shard count for a serverless snapshot \
    (DescribeServerlessCacheSnapshots and DescribeServerlessCaches have none), so a copy's completeness cannot be \
    proven: counting the staged files would publish a copy missing its last shard; export it by hand \
    (`aws elasticache export-serverless-cache-snapshot`) and check the files, or restore from the snapshot itself";

/// The copy's next step: a copy with a manifest is done and a recorded failure stays reported; otherwise the
/// snapshot's own shard count (`state.shards`, 0 when ElastiCache reports none) decides, exactly as for a
/// node-based copy, and without one the copy is refused.
pub fn next_step(state: &CopyState) -> Step {
    if state.manifest_exists {
        return Step::Done;
    }
    if state.failure_recorded {
        return Step::FailedEarlier;
    }
    if state.shards == 0 {
        return Step::Refused(UNKNOWN_SHARDS.into());
    }
    super::next_step(state)
}

/// The chosen serverless snapshot with its engine and current status (one `DescribeServerlessCacheSnapshots` by
/// name); its shard count is unknown (0): ElastiCache reports none, and [`next_step`] refuses such a copy.
pub async fn describe(
    client: &aws_sdk_elasticache::Client,
    chosen: &CacheSnapshot,
    cache: &Cache,
) -> Result<ExportableSnapshot, Error> {
    let out = client
        .describe_serverless_cache_snapshots()
        .serverless_cache_snapshot_name(&chosen.name)
        .send()
        .await
        .map_err(|e| Error::aws("DescribeServerlessCacheSnapshots", e))?;
    let s = out.serverless_cache_snapshots().first();
    let config = s.and_then(|s| s.serverless_cache_configuration());
    Ok(ExportableSnapshot {
        name: chosen.name.clone(),
        cache: cache.id.clone(),
        status: s.and_then(|s| s.status()).unwrap_or(&chosen.status).to_owned(),
        engine: config.and_then(|c| c.engine()).unwrap_or(&cache.engine).to_owned(),
        engine_version: config
            .and_then(|c| c.major_engine_version())
            .unwrap_or_default()
            .to_owned(),
        shards: 0,
        time: chosen.logical_time(),
        arn: s.and_then(|s| s.arn()).unwrap_or(&chosen.arn).to_owned(),
        created: s
            .and_then(|s| crate::rds::snapshots::to_chrono(s.create_time()))
            .or(chosen.created),
    })
}

/// Asks ElastiCache to export serverless snapshot `snapshot` into `bucket` (`ExportServerlessCacheSnapshot`).
pub async fn request_export(
    client: &aws_sdk_elasticache::Client,
    snapshot: &str,
    bucket: &str,
) -> Result<Requested, RdbCopyError> {
    let sent = client
        .export_serverless_cache_snapshot()
        .serverless_cache_snapshot_name(snapshot)
        .s3_bucket_name(bucket)
        .send()
        .await;
    let err = match sent {
        Ok(_) => return Ok(Requested::Started),
        Err(e) => e,
    };
    let (message, denied) = super::export_refusal(&err);
    match err.as_service_error() {
        Some(ExportServerlessCacheSnapshotError::InvalidServerlessCacheSnapshotStateFault(_)) if !denied => {
            Ok(Requested::AlreadyRequested(message))
        }
        Some(ExportServerlessCacheSnapshotError::InvalidParameterValueException(_))
            if message.contains("already contains") =>
        {
            Ok(Requested::AlreadyRequested(message))
        }
        _ if denied => Err(RdbCopyError::ServerlessBucketAccess {
            bucket: bucket.to_owned(),
            message,
        }),
        _ => Err(Error::aws("ExportServerlessCacheSnapshot", err).into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;
    use aws_sdk_elasticache::operation::describe_serverless_cache_snapshots::DescribeServerlessCacheSnapshotsOutput;
    use aws_sdk_elasticache::operation::export_serverless_cache_snapshot::ExportServerlessCacheSnapshotOutput;
    use aws_sdk_elasticache::types::error::{InvalidParameterValueException, InvalidServerlessCacheSnapshotStateFault};
    use aws_sdk_elasticache::types::{ServerlessCacheConfiguration, ServerlessCacheSnapshot};
    use aws_sdk_elasticache::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use chrono::{TimeZone, Utc};

    const NAME: &str = "lifeboat-sessions-20261129-0300";

    /// A copy missing its last shard never gets a manifest: without the snapshot's own count it is refused
    /// whatever is staged; with one, exactly the files 1..=n are the copy.
    #[test]
    fn a_serverless_copy_without_its_shard_count_is_refused_whatever_is_staged() {
        let files = |ns: &[u32]| -> BTreeMap<u32, String> { ns.iter().map(|n| (*n, format!("k{n}"))).collect() };
        let step = |status: &str, shards: u32, manifest: bool, failed: bool, staged: &[u32]| {
            next_step(&CopyState {
                snapshot_status: status,
                shards,
                manifest_exists: manifest,
                failure_recorded: failed,
                staged: &files(staged),
            })
        };
        for staged in [&[][..], &[1], &[1, 2], &[1, 3]] {
            for status in ["available", "exporting"] {
                assert_eq!(
                    step(status, 0, false, false, staged),
                    Step::Refused(UNKNOWN_SHARDS.into()),
                    "{status} {staged:?}"
                );
            }
        }
        assert!(UNKNOWN_SHARDS.contains("no shard count") && UNKNOWN_SHARDS.contains("missing its last shard"));
        assert_eq!(step("exporting", 0, true, false, &[1]), Step::Done);
        assert_eq!(step("available", 0, false, true, &[1]), Step::FailedEarlier);
        assert_eq!(step("available", 2, false, false, &[1, 2]), Step::Verify);
        assert_eq!(
            step("available", 2, false, false, &[1]),
            Step::Waiting("1 of 2 files staged".into()),
            "a missing last shard waits"
        );
        assert_eq!(step("available", 2, false, false, &[]), Step::Request);
        let keys = [
            format!("{NAME}-0001.rdb"),
            format!("{NAME}-0002.rdb"),
            format!("{NAME}-0002-x.rdb"),
        ];
        let staged = super::super::staged_shards(&staging_name(NAME), keys.iter().map(String::as_str));
        assert_eq!(staged.keys().copied().collect::<Vec<_>>(), [1, 2]);
    }

    fn snapshot(status: &str) -> ServerlessCacheSnapshot {
        ServerlessCacheSnapshot::builder()
            .serverless_cache_snapshot_name(NAME)
            .status(status)
            .serverless_cache_configuration(
                ServerlessCacheConfiguration::builder()
                    .serverless_cache_name("sessions")
                    .engine("valkey")
                    .major_engine_version("8")
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn a_serverless_snapshot_is_described_with_its_engine_and_current_status() {
        let describe = mock!(Client::describe_serverless_cache_snapshots)
            .match_requests(|r| r.serverless_cache_snapshot_name() == Some(NAME))
            .then_output(|| {
                DescribeServerlessCacheSnapshotsOutput::builder()
                    .serverless_cache_snapshots(snapshot("exporting"))
                    .build()
            });
        let client = mock_client!(aws_sdk_elasticache, RuleMode::Sequential, [&describe]);
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
        let tags = BTreeMap::from([(crate::core::tags::CREATED_AT.to_owned(), at.to_rfc3339())]);
        let chosen = CacheSnapshot {
            name: NAME.into(),
            arn: String::new(),
            cache: "sessions".into(),
            status: "available".into(),
            source: "manual".into(),
            tags,
            created: None,
            serverless: true,
        };
        let cache = Cache {
            id: "sessions".into(),
            kind: crate::caches::elasticache::CacheKind::Serverless,
            arn: String::new(),
            engine: "redis".into(),
            status: "available".into(),
            tags: BTreeMap::new(),
            cluster_mode: false,
            members: Vec::new(),
            at_rest_encryption: true,
            transit_encryption: true,
            snapshot_retention_days: 1,
            replicated: true,
        };
        let s = describe_snapshot(&client, &chosen, &cache).await;
        assert_eq!(
            (
                s.status.as_str(),
                s.engine.as_str(),
                s.engine_version.as_str(),
                s.shards,
                s.time
            ),
            ("exporting", "valkey", "8", 0, at)
        );
    }

    async fn describe_snapshot(client: &Client, chosen: &CacheSnapshot, cache: &Cache) -> ExportableSnapshot {
        describe(client, chosen, cache).await.unwrap()
    }

    /// The request names the snapshot and the bucket; "already exporting" and "already there" are "already
    /// requested"; a missing grant names the serverless grant in the bucket policy.
    #[tokio::test]
    async fn serverless_export_requests_are_idempotent_and_access_errors_name_the_grant() {
        let started = mock!(Client::export_serverless_cache_snapshot)
            .match_requests(|r| {
                r.serverless_cache_snapshot_name() == Some(NAME) && r.s3_bucket_name() == Some("backups")
            })
            .then_output(|| {
                ExportServerlessCacheSnapshotOutput::builder()
                    .serverless_cache_snapshot(snapshot("exporting"))
                    .build()
            });
        let busy = mock!(Client::export_serverless_cache_snapshot).then_error(|| {
            ExportServerlessCacheSnapshotError::InvalidServerlessCacheSnapshotStateFault(
                InvalidServerlessCacheSnapshotStateFault::builder()
                    .message("Snapshot is exporting")
                    .build(),
            )
        });
        let exists = mock!(Client::export_serverless_cache_snapshot).then_error(|| {
            ExportServerlessCacheSnapshotError::InvalidParameterValueException(
                InvalidParameterValueException::builder()
                    .message(format!(
                        "The S3 bucket backups already contains an object with key {NAME}-0001.rdb."
                    ))
                    .build(),
            )
        });
        let not_granted = mock!(Client::export_serverless_cache_snapshot).then_error(|| {
            ExportServerlessCacheSnapshotError::InvalidParameterValueException(
                InvalidParameterValueException::builder()
                    .message("ElastiCache has not been granted WRITE permissions backups on the S3 Bucket.")
                    .build(),
            )
        });
        let other = mock!(Client::export_serverless_cache_snapshot).then_error(|| {
            ExportServerlessCacheSnapshotError::InvalidParameterValueException(
                InvalidParameterValueException::builder()
                    .message("The S3 bucket backups is outside of the region.")
                    .build(),
            )
        });
        let client = mock_client!(
            aws_sdk_elasticache,
            RuleMode::Sequential,
            [&started, &busy, &exists, &not_granted, &other]
        );
        assert_eq!(
            request_export(&client, NAME, "backups").await.unwrap(),
            Requested::Started
        );
        for _ in 0..2 {
            let again = request_export(&client, NAME, "backups").await.unwrap();
            assert!(matches!(again, Requested::AlreadyRequested(_)), "{again:?}");
        }
        let err = request_export(&client, NAME, "backups").await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, RdbCopyError::ServerlessBucketAccess { .. }) && !err.is_final(),
            "{text}"
        );
        assert!(
            text.contains("not been granted WRITE") && text.contains("lifeboat-*.rdb"),
            "{text}"
        );
        let err = request_export(&client, NAME, "backups").await.unwrap_err().to_string();
        assert!(
            err.contains("ExportServerlessCacheSnapshot failed") && err.contains("outside of the region"),
            "{err}"
        );
    }
}
