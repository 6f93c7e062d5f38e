//! What Lifeboat writes to the bucket about caches: the manifest of an RDB copy (written last, after every
//! shard's file was verified by [`crate::caches::rdb::verify`]) and the report of a cache restore test. The keys are
//! [`crate::bucket::layout::rdb_keys`] and [`crate::bucket::layout::cache_restore_report_base`].
//!
//! Owns: the records' shapes and the sums read from them (keys per database across shards). Never decides
//! whether a copy is good or a test passed: the writer does, and says so in the record.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The version of both records' format.
pub const FORMAT_VERSION: u32 = 1;

/// The manifest of one RDB copy of a cache: one entry per shard's file, each verified before this was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RdbManifest {
    pub format_version: u32,
    pub lifeboat_version: String,
    /// The cache (replication group, single-node cluster or serverless cache) the snapshot was taken of.
    pub cache: String,
    /// `redis` or `valkey`.
    pub engine: String,
    pub engine_version: String,
    /// The ElastiCache snapshot the files were exported from, and when it was taken (the copy's RPO anchor).
    pub snapshot: String,
    pub snapshot_time: DateTime<Utc>,
    pub copied_at: DateTime<Utc>,
    pub shards: Vec<RdbShard>,
}

/// One shard's RDB file in the bucket, as verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RdbShard {
    /// 1-based, as ElastiCache numbers the files (`-0001.rdb`).
    pub shard: u32,
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// The RDB format version in the file's header.
    pub rdb_version: u32,
    /// The server's version from the file's auxiliary fields, `valkey-ver` before `redis-ver`, when present.
    pub server_version: Option<String>,
    /// Keys per database number, counted while verifying (and cross-checked with RESIZEDB where present).
    pub keys_per_db: BTreeMap<u64, u64>,
    /// Whether the file carried a CRC-64 that was checked (a file written with `rdbchecksum no` has none).
    pub checksummed: bool,
}

impl RdbManifest {
    /// Keys per database number, summed over every shard (a sharded cache has only database 0).
    pub fn keys_per_db(&self) -> BTreeMap<u64, u64> {
        let mut sum = BTreeMap::new();
        for shard in &self.shards {
            for (db, keys) in &shard.keys_per_db {
                *sum.entry(*db).or_insert(0) += keys;
            }
        }
        sum
    }

    /// Every key in the copy.
    pub fn total_keys(&self) -> u64 {
        self.keys_per_db().values().sum()
    }
}

/// The record of Lifeboat's request to export a snapshot (written before `CopySnapshot`, next to where the files
/// will be staged): what Lifeboat asked for, so staged files that Lifeboat did not ask for are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdbCopyRequest {
    pub format_version: u32,
    /// The snapshot exported, its ARN and creation time as ElastiCache described them, and its cache.
    pub snapshot: String,
    pub snapshot_arn: String,
    pub snapshot_created: Option<DateTime<Utc>>,
    pub cache: String,
    /// The target name ElastiCache was asked to write under.
    pub staging_name: String,
    pub requested_at: DateTime<Utc>,
}

/// The report of one cache restore test (or console restore), JSON at `cache_restore_report_base(..) + ".json"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRestoreReport {
    pub format_version: u32,
    pub lifeboat_version: String,
    pub cache: String,
    /// The replication group the snapshot was restored into.
    pub restored_id: String,
    pub snapshot: String,
    pub snapshot_time: DateTime<Utc>,
    pub requested_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub passed: bool,
    /// Request to verified cache, in seconds (absent when the test did not get that far).
    pub rto_seconds: Option<f64>,
    /// Age of the restored data when the test was requested, in seconds.
    pub rpo_seconds: f64,
    pub timings_seconds: BTreeMap<String, f64>,
    /// Each check by name, and whether it passed with what detail.
    pub checks: Vec<CacheCheckResult>,
    /// The failure that ended the test early, if one did.
    pub error: Option<String>,
}

/// One check of a restored cache, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCheckResult {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn shard(n: u32, dbs: &[(u64, u64)]) -> RdbShard {
        RdbShard {
            shard: n,
            key: format!("k-{n:04}.rdb"),
            size: 10,
            sha256: "00".repeat(32),
            rdb_version: 11,
            server_version: Some("7.2.4".into()),
            keys_per_db: dbs.iter().copied().collect(),
            checksummed: true,
        }
    }

    #[test]
    fn keys_are_summed_over_shards_per_database() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
        let m = RdbManifest {
            format_version: FORMAT_VERSION,
            lifeboat_version: "0".into(),
            cache: "sessions".into(),
            engine: "valkey".into(),
            engine_version: "8.0".into(),
            snapshot: "lifeboat-sessions-20261129-0300".into(),
            snapshot_time: at,
            copied_at: at,
            shards: vec![shard(1, &[(0, 5), (2, 1)]), shard(2, &[(0, 7)]), shard(3, &[])],
        };
        assert_eq!(m.keys_per_db(), BTreeMap::from([(0, 12), (2, 1)]));
        assert_eq!(m.total_keys(), 13);
        let back: RdbManifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
