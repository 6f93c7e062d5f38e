//! Restore tests from a verified RDB copy: how a serverless cache is restore-tested. Its newest verified copy
//! (the newest manifest under [`crate::bucket::layout::rdb_prefix`]) seeds an isolated node-based replication group
//! (`CreateReplicationGroup` with `SnapshotArns`, one `arn:aws:s3:::<bucket>/<key>` per shard), which the cache
//! restore test then polls, checks, reports and removes like any restored group.
//!
//! Why a node-based group and not a serverless cache: the point of the test is that the copy outside the cache
//! restores. Seeding a group from the copy proves exactly that, with the same isolated, encrypted, tagged and
//! expiring group (and the same janitor) as every other cache restore test; a serverless cache can be seeded
//! from the same files (`CreateServerlessCache` with `SnapshotArnsToRestore`), so the proof carries over. The
//! key counts are compared with that very manifest, and the RPO is its snapshot's time.
//!
//! Owns: which copy is restored and the S3 ARNs (a copy of several shards seeds a cluster-mode group, a shard per
//! file, checked by the sharded verify). Never: reads S3 or calls
//! ElastiCache (the restore function does; [`crate::caches::restore::create_group`] sends the request).

use chrono::{DateTime, Utc};

use crate::caches::records::RdbManifest;
use crate::caches::restore::GroupSource;

/// What a group is seeded from: a verified RDB copy, by its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdbSeed {
    /// The manifest's key (the test compares key counts with it).
    pub manifest_key: String,
    /// The S3 object ARNs of the copy's files, in shard order.
    pub arns: Vec<String>,
    pub shards: u32,
    /// The snapshot the copy was made of, and its time (the test's RPO).
    pub snapshot: String,
    pub snapshot_time: DateTime<Utc>,
}

impl RdbSeed {
    /// The group source of the create request.
    pub fn source(&self) -> GroupSource<'static> {
        GroupSource::Rdb(self.arns.clone())
    }

    /// Cluster mode on for a copy of several shards (one node group per file), as the contract says.
    pub fn cluster_mode(&self) -> bool {
        self.shards > 1
    }
}

/// The S3 ARN ElastiCache reads an RDB file from.
pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

/// Whether `engine` at `version` (or newer: a restore test's group takes ElastiCache's default version of the
/// cache's engine, at least the one the snapshot was taken with) reads an RDB file of format `rdb_version`.
/// Redis OSS 5 and 6 read up to 9, 7.0 and 7.1 up to 10, 7.2 and later up to 11 (12, Redis 7.4's, is not an
/// engine ElastiCache runs); Valkey 7 and 8 read up to 11, Valkey 9 also its own 80 (`VALKEY080`), never Redis's
/// 12–79. Checked up front so a copy no engine of the test can load is refused with the reason, not left to a
/// restore that fails an hour later. `Err` says why.
pub fn readable_by(engine: &str, version: &str, rdb_version: u32) -> Result<(), String> {
    let mut parts = version.split('.').map(str::parse::<u32>);
    let (Some(Ok(major)), minor) = (parts.next(), parts.next()) else {
        return Err(format!(
            "{engine} version `{version}` is not a version Lifeboat can judge"
        ));
    };
    let minor = minor.and_then(Result::ok).unwrap_or(0);
    let reads = match engine {
        "redis" if major < 7 => rdb_version <= 9,
        "redis" if major == 7 && minor < 2 => rdb_version <= 10,
        "redis" => rdb_version <= 11,
        "valkey" if major >= 9 => rdb_version <= 11 || rdb_version == 80,
        "valkey" => rdb_version <= 11,
        other => return Err(format!("engine `{other}` is not one Lifeboat restores RDB files into")),
    };
    if reads {
        Ok(())
    } else {
        Err(format!(
            "RDB format {rdb_version} cannot be loaded by {engine} {version} (nor by a newer version ElastiCache \
             offers of it that Lifeboat knows): restore it into an engine that reads it"
        ))
    }
}

/// The seed of a restore test from the copy at `key`; `named` is the snapshot the test was asked for (a copy of
/// another snapshot is refused, naming both). A manifest's files must be shards 1..n without a gap.
pub fn seed_of(bucket: &str, key: &str, m: &RdbManifest, named: Option<&str>) -> Result<RdbSeed, String> {
    if let Some(name) = named.filter(|n| *n != m.snapshot) {
        return Err(format!(
            "the newest verified RDB copy of {} ({key}) is of snapshot {}, not of {name}: a serverless cache is \
             restore-tested from its newest verified copy; leave the snapshot out, or copy {name} first",
            m.cache, m.snapshot
        ));
    }
    for shard in &m.shards {
        readable_by(&m.engine, &m.engine_version, shard.rdb_version).map_err(|why| {
            format!(
                "the RDB copy {key} cannot seed a group: shard {} ({}): {why}",
                shard.shard, shard.key
            )
        })?;
    }
    let numbers: Vec<u32> = m.shards.iter().map(|s| s.shard).collect();
    let want: Vec<u32> = (1..=u32::try_from(numbers.len()).unwrap_or(u32::MAX)).collect();
    if numbers.is_empty() || numbers != want {
        return Err(format!(
            "the RDB copy's manifest {key} lists shards {numbers:?}, not 1..n: it cannot seed a group; copy the \
             snapshot again"
        ));
    }
    Ok(RdbSeed {
        manifest_key: key.to_owned(),
        arns: m.shards.iter().map(|s| object_arn(bucket, &s.key)).collect(),
        shards: u32::try_from(want.len()).unwrap_or(u32::MAX),
        snapshot: m.snapshot.clone(),
        snapshot_time: m.snapshot_time,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;
    use crate::caches::records::{RdbShard, FORMAT_VERSION};
    use crate::caches::restore::{create_group, GroupRequest};
    use chrono::TimeZone;

    fn manifest(shards: &[u32]) -> RdbManifest {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
        RdbManifest {
            format_version: FORMAT_VERSION,
            lifeboat_version: "t".into(),
            cache: "sessions".into(),
            engine: "valkey".into(),
            engine_version: "8".into(),
            snapshot: "lifeboat-sessions-20261129-0300".into(),
            snapshot_time: at,
            copied_at: at,
            shards: shards
                .iter()
                .map(|n| RdbShard {
                    shard: *n,
                    key: format!("exports/sessions/rdb/x-{n:04}.rdb"),
                    size: 1,
                    sha256: String::new(),
                    rdb_version: 11,
                    server_version: None,
                    keys_per_db: BTreeMap::new(),
                    checksummed: true,
                })
                .collect(),
        }
    }

    #[test]
    fn a_copy_an_engine_cannot_read_is_refused_up_front() {
        for (engine, version, rdb, ok) in [
            ("redis", "6.2", 9, true),
            ("redis", "6.2", 10, false),
            ("redis", "7.0", 10, true),
            ("redis", "7.1", 11, false),
            ("redis", "7.2", 11, true),
            ("redis", "7.2", 12, false),
            ("valkey", "7.2", 11, true),
            ("valkey", "8", 11, true),
            ("valkey", "8.1", 80, false),
            ("valkey", "9.0", 80, true),
            ("valkey", "9", 12, false),
            ("redis", "7.1", 80, false),
        ] {
            assert_eq!(
                readable_by(engine, version, rdb).is_ok(),
                ok,
                "{engine} {version} RDB {rdb}"
            );
        }
        assert!(readable_by("memcached", "1.6", 9).unwrap_err().contains("memcached"));
        assert!(readable_by("redis", "", 9).unwrap_err().contains("not a version"));
        let mut valkey9 = manifest(&[1, 2]);
        valkey9.shards[1].rdb_version = 80;
        let err = seed_of("backups", "k", &valkey9, None).unwrap_err();
        assert!(
            err.contains("shard 2") && err.contains("RDB format 80 cannot be loaded by valkey 8"),
            "{err}"
        );
        valkey9.engine_version = "9.0".into();
        assert!(seed_of("backups", "k", &valkey9, None).is_ok());
    }

    #[test]
    fn a_copy_seeds_from_its_files_in_shard_order_and_only_the_asked_for_snapshot() {
        let key = "exports/sessions/rdb/x.manifest.json";
        let seed = seed_of("backups", key, &manifest(&[1]), None).unwrap();
        assert_eq!(seed.arns, ["arn:aws:s3:::backups/exports/sessions/rdb/x-0001.rdb"]);
        assert_eq!((seed.shards, seed.cluster_mode()), (1, false));
        assert_eq!(seed.snapshot, "lifeboat-sessions-20261129-0300");
        let same = seed_of("backups", key, &manifest(&[1]), Some("lifeboat-sessions-20261129-0300"));
        assert_eq!(same.unwrap(), seed);
        let other = seed_of("backups", key, &manifest(&[1]), Some("lifeboat-sessions-20261128-0300")).unwrap_err();
        assert!(other.contains("not of lifeboat-sessions-20261128-0300"), "{other}");
        let three = seed_of("backups", key, &manifest(&[1, 2, 3]), None).unwrap();
        assert_eq!((three.shards, three.cluster_mode(), three.arns.len()), (3, true, 3));
        for bad in [&[][..], &[1, 3][..]] {
            let err = seed_of("backups", key, &manifest(bad), None).unwrap_err();
            assert!(err.contains("not 1..n"), "{err}");
        }
    }

    /// moto does not echo `SnapshotArns`: the request itself must carry them, and no snapshot name, one node.
    #[tokio::test]
    async fn the_group_is_created_from_the_rdb_arns() {
        use aws_sdk_elasticache::operation::create_replication_group::CreateReplicationGroupOutput;
        use aws_sdk_elasticache::Client;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        let create = mock!(Client::create_replication_group)
            .match_requests(|r| {
                r.snapshot_arns() == ["arn:aws:s3:::backups/exports/sessions/rdb/x-0001.rdb"]
                    && r.snapshot_name().is_none()
                    && r.num_cache_clusters() == Some(1)
                    && r.num_node_groups().is_none()
            })
            .then_output(|| CreateReplicationGroupOutput::builder().build());
        let client = mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, [&create]);
        let seed = seed_of("backups", "k", &manifest(&[1]), None).unwrap();
        let token = "a".repeat(32);
        let tags = BTreeMap::new();
        let req = GroupRequest {
            group_id: "lifeboat-rt-sessions-202611290400",
            description: "test".into(),
            source: seed.source(),
            cluster_mode: seed.cluster_mode(),
            shards: seed.shards,
            engine: Some("valkey"),
            node_type: "cache.t4g.micro",
            subnet_group: None,
            security_groups: &[],
            auth_token: &token,
            tags: &tags,
        };
        create_group(&client, &req).await.unwrap();
        assert_eq!(create.num_calls(), 1);
    }
}
