//! The `copy-caches` action of the `export` function against moto (ElastiCache, S3, CloudWatch) and RDB files a
//! real `redis-server` wrote: staged files verified, moved under `exports/_caches/<cache>/rdb/...` and described by a
//! manifest written last; damaged files refused, reported, alarmed and never given a manifest; reruns harmless.
//!
//! Where these tests start: moto does not implement `CopySnapshot` to a bucket, so most tests start from the
//! state ElastiCache leaves after an export: the snapshot exists (made in moto, tagged as Lifeboat tags it) and
//! its files are in the bucket under a staging name its request record holds (the predictable name older runs
//! asked for, still honoured), which lets a test stage damaged or foreign files. The harness's emulated export
//! (`tests/emulator/elasticache_export.py`, which the deployed stack's story runs the whole copy through) is
//! proven here against AWS's documented behaviour and the deployed bucket policy
//! (`the_emulated_export_writes_what_redis_saved_at_the_snapshot_only_where_the_bucket_policy_lets_elasticache`). The request step is tested at the adapter with `aws-smithy-mocks`
//! (`lifeboat::caches::rdb_copy`'s `export_requests` tests) and, where the name Lifeboat asks for matters (a file
//! staged by someone else after the request), through the handler with ElastiCache's calls mocked and S3 moto's.
//! Concurrency and the deadline are observed by an interceptor on the test's S3 client ([`Watch`]), never by a seam
//! in the function.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_elasticache::types::{ClusterMode, Tag};
use chrono::{DateTime, TimeZone, Utc};
use export::caches::{self, CopyOutcome};
use export::settings::ExportSettings;
use export::Deps;
use lifeboat::bucket::layout::{rdb_keys, rdb_staging_failure_key, rdb_staging_name};
use lifeboat::caches::records::RdbManifest;
use lifeboat_tests::moto::Moto;
use lifeboat_tests::redis::Redis;
use sha2::{Digest, Sha256};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";

struct World {
    moto: Moto,
    deps: Deps,
}

fn time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap()
}

async fn world() -> World {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let vars: BTreeMap<&str, &str> = [("LIFEBOAT_BUCKET", BUCKET), ("LIFEBOAT_DB_SSLMODE", "disable")].into();
    let settings = ExportSettings::from_env(&move |n: &str| vars.get(n).map(|v| (*v).to_owned())).unwrap();
    let deps = Deps::new(&config, settings);
    World { moto, deps }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// A cache of the given shape in moto (selected by the backup tag) and Lifeboat's snapshot of it; its name.
async fn cache_with_snapshot(w: &World, id: &str, shards: Option<i32>) -> String {
    let ec = &w.deps.ec;
    let snapshot = format!("lifeboat-{id}-20261129-0300");
    let req = ec.create_snapshot().snapshot_name(&snapshot);
    let req = if let Some(n) = shards {
        let group = ec
            .create_replication_group()
            .replication_group_id(id)
            .replication_group_description("test")
            .engine("valkey")
            .engine_version("8.0")
            .tags(tag("lifeboat:backup", "true"));
        let group = if n > 1 {
            group.cluster_mode(ClusterMode::Enabled).num_node_groups(n)
        } else {
            group.replicas_per_node_group(1)
        };
        group.send().await.unwrap();
        req.replication_group_id(id)
    } else {
        ec.create_cache_cluster()
            .cache_cluster_id(id)
            .engine("redis")
            .cache_node_type("cache.t4g.micro")
            .num_cache_nodes(1)
            .tags(tag("lifeboat:backup", "true"))
            .send()
            .await
            .unwrap();
        req.cache_cluster_id(id)
    };
    req.tags(tag(lifeboat::core::tags::MANAGED, "true"))
        .tags(tag(lifeboat::core::tags::DATABASE, id))
        .tags(tag(lifeboat::core::tags::CREATED_AT, &time().to_rfc3339()))
        .send()
        .await
        .unwrap();
    snapshot
}

/// Lifeboat's request record for the export of `snapshot`, as the run writes it before `CopySnapshot` (moto
/// cannot export to S3, so the tests stage the files themselves after it).
async fn requested(w: &World, snapshot: &str) {
    let all = lifeboat::caches::elasticache::discover_all(&w.deps.ec, false)
        .await
        .unwrap();
    let snaps = lifeboat::caches::elasticache::list_all_snapshots(&w.deps.ec, false)
        .await
        .unwrap();
    let chosen = snaps.iter().find(|s| s.name == snapshot).unwrap();
    let cache = all
        .iter()
        .find(|c| Some(&c.id) == chosen.tags.get(lifeboat::core::tags::DATABASE))
        .unwrap();
    let snap = lifeboat::caches::rdb_copy::describe(&w.deps.ec, chosen, cache)
        .await
        .unwrap();
    caches::record_request(&w.deps, &snap, &rdb_staging_name(snapshot))
        .await
        .unwrap();
}

/// Puts a file where ElastiCache's export of `snapshot` puts shard `shard`'s, after Lifeboat's request.
async fn stage(w: &World, snapshot: &str, shard: u32, bytes: Vec<u8>) -> String {
    requested(w, snapshot).await;
    stage_unasked(w, snapshot, shard, bytes).await
}

/// Puts a file where ElastiCache's export of `snapshot` puts shard `shard`'s, whether or not Lifeboat asked.
async fn stage_unasked(w: &World, snapshot: &str, shard: u32, bytes: Vec<u8>) -> String {
    let key = format!("{}-{shard:04}.rdb", rdb_staging_name(snapshot));
    w.deps
        .s3
        .put_object()
        .bucket(BUCKET)
        .key(&key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
    key
}

/// Every data type in database 0 (with expiries and a value of a few MiB), a few keys in databases 2 and 5, and
/// `tag` in each key so two servers' files differ; the keys per database as the server counts them.
fn fill(r: &Redis, tag: &str) -> BTreeMap<u64, u64> {
    r.cli(0, &["SET", &format!("{tag}:s"), "hello"]);
    r.cli(0, &["SET", &format!("{tag}:n"), "12345", "EX", "3600"]);
    let big = "local t = {} for i = 1, 200000 do t[i] = tostring(math.random()) end \
               redis.call('set', KEYS[1], table.concat(t)) return 1";
    r.cli(0, &["EVAL", big, "1", &format!("{tag}:big")]);
    r.cli(0, &["RPUSH", &format!("{tag}:l"), "a", "b", "c"]);
    r.cli(0, &["SADD", &format!("{tag}:set"), "1", "2", "x"]);
    r.cli(0, &["ZADD", &format!("{tag}:z"), "1.5", "a", "2", "b"]);
    r.cli(0, &["HSET", &format!("{tag}:h"), "f", "v", "g", "w"]);
    r.cli(0, &["XADD", &format!("{tag}:queue"), "*", "job", "1"]);
    for db in [2, 5] {
        for i in 0..db {
            r.cli(db, &["SET", &format!("{tag}:db{db}:{i}"), "v"]);
        }
    }
    lifeboat::caches::check::parse_keyspace(&r.cli(0, &["INFO", "keyspace"]))
        .into_iter()
        .map(|(db, k)| (db, k.keys))
        .collect()
}

/// A file a real server wrote, and its keys per database.
fn rdb_file(tag: &str) -> (Vec<u8>, BTreeMap<u64, u64>) {
    let r = Redis::start(&[]);
    let expected = fill(&r, tag);
    (std::fs::read(r.save()).unwrap(), expected)
}

async fn get(w: &World, key: &str) -> Option<Vec<u8>> {
    let out = w.deps.s3.get_object().bucket(BUCKET).key(key).send().await.ok()?;
    Some(out.body.collect().await.unwrap().into_bytes().to_vec())
}

/// Every version of every object, with its ETag: a rerun that writes anything changes this.
async fn versions(w: &World) -> Vec<(String, String)> {
    let out = w.deps.s3.list_object_versions().bucket(BUCKET).send().await.unwrap();
    out.versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap_or_default().to_owned(),
                v.e_tag().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The values of a per-cache metric published in the last minutes.
async fn metric(w: &World, name: &str, cache: &str) -> Vec<f64> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    let cw = aws_sdk_cloudwatch::Client::new(&w.moto.config(REGION));
    let now = std::time::SystemTime::now();
    let out = cw
        .get_metric_statistics()
        .namespace("Lifeboat")
        .metric_name(name)
        .dimensions(Dimension::builder().name("CacheIdentifier").value(cache).build())
        .start_time(DateTime::from(now - Duration::from_secs(600)))
        .end_time(DateTime::from(now + Duration::from_secs(600)))
        .period(60)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .unwrap();
    out.datapoints().iter().filter_map(|d| d.maximum()).collect()
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_files_are_verified_moved_and_described_by_a_manifest_and_a_rerun_changes_nothing() {
    let w = world().await;
    let sessions = cache_with_snapshot(&w, "sessions", Some(1)).await;
    let sharded = cache_with_snapshot(&w, "cache", Some(2)).await;
    let (one, one_keys) = rdb_file("one");
    let (two, two_keys) = rdb_file("two");
    let (three, three_keys) = rdb_file("three");
    let mut files = BTreeMap::new();
    files.insert(
        ("sessions", 1),
        (stage(&w, &sessions, 1, one.clone()).await, one, one_keys.clone()),
    );
    files.insert(
        ("cache", 1),
        (stage(&w, &sharded, 1, two.clone()).await, two, two_keys.clone()),
    );
    files.insert(
        ("cache", 2),
        (stage(&w, &sharded, 2, three.clone()).await, three, three_keys.clone()),
    );

    let summary = caches::handle(&w.deps, None, None).await.unwrap();
    let outcomes: Vec<(&str, CopyOutcome)> = summary.caches.iter().map(|r| (r.cache.as_str(), r.outcome)).collect();
    assert_eq!(
        outcomes,
        [("cache", CopyOutcome::Verified), ("sessions", CopyOutcome::Verified)],
        "{summary:#?}"
    );
    assert_eq!(summary.failed, 0);

    for (cache, snapshot) in [("sessions", &sessions), ("cache", &sharded)] {
        let keys = rdb_keys(cache, time());
        let manifest: RdbManifest = serde_json::from_slice(&get(&w, &keys.manifest()).await.unwrap()).unwrap();
        assert_eq!(
            (manifest.cache.as_str(), manifest.snapshot.as_str()),
            (cache, snapshot.as_str())
        );
        assert_eq!((manifest.snapshot_time, manifest.engine.as_str()), (time(), "valkey"));
        let mut expected_total = BTreeMap::new();
        for shard in &manifest.shards {
            let (staged_key, original, expected) = &files[&(cache, shard.shard)];
            assert_eq!(shard.key, keys.object(shard.shard));
            let stored = get(&w, &shard.key).await.unwrap();
            assert!(&stored == original, "{} holds the bytes the server wrote", shard.key);
            assert_eq!(shard.sha256, hex_sha256(&stored));
            assert_eq!(shard.size, stored.len() as u64);
            assert_eq!(&shard.keys_per_db, expected, "shard {} of {cache}", shard.shard);
            assert!(shard.checksummed && shard.rdb_version >= 9 && shard.server_version.is_some());
            assert!(
                get(&w, staged_key).await.is_some(),
                "the staged file is left to the lifecycle rule"
            );
            for (db, n) in expected {
                *expected_total.entry(*db).or_insert(0) += n;
            }
        }
        assert_eq!(manifest.shards.len(), if cache == "cache" { 2 } else { 1 });
        let report = summary.caches.iter().find(|r| r.cache == cache).unwrap();
        assert_eq!(
            (&report.keys_per_db, report.manifest_key.as_ref()),
            (&expected_total, Some(&keys.manifest()))
        );
    }
    assert_eq!(
        one_keys.keys().copied().collect::<Vec<_>>(),
        [0, 2, 5],
        "several databases"
    );
    assert_eq!(metric(&w, "RdbCopyVerified", "cache").await, [1.0]);
    assert_eq!(metric(&w, "RdbCopyFailed", "sessions").await, [0.0]);

    let before = versions(&w).await;
    let again = caches::run(&w.deps, None, None).await.unwrap();
    assert!(
        again.caches.iter().all(|r| r.outcome == CopyOutcome::AlreadyCopied),
        "{again:#?}"
    );
    assert_eq!(versions(&w).await, before, "a second run writes nothing");
}

/// Anyone with `elasticache:CopySnapshot` can stage files under the predictable staging name. Files Lifeboat did
/// not ask for (no request record), or staged before it asked, are refused with a failure record and the alarm,
/// never verified or published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_staged_without_lifeboats_request_are_refused_not_published() {
    let w = world().await;
    let jobs = cache_with_snapshot(&w, "jobs", None).await;
    let sessions = cache_with_snapshot(&w, "sessions", None).await;
    let (file, _) = rdb_file("foreign");
    let unasked = stage_unasked(&w, &jobs, 1, file.clone()).await;
    stage_unasked(&w, &sessions, 1, file.clone()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    requested(&w, &sessions).await;

    let err = caches::handle(&w.deps, None, None).await.unwrap_err().to_string();
    assert!(err.contains("RDB copy failed for 2 of 2 caches"), "{err}");
    assert!(
        err.contains(&format!("jobs (shard 1 {unasked}: ")) && err.contains("never asked for that export"),
        "{err}"
    );
    assert!(err.contains("before Lifeboat asked for the export"), "{err}");
    for (cache, snapshot) in [("jobs", &jobs), ("sessions", &sessions)] {
        assert!(get(&w, &rdb_keys(cache, time()).manifest()).await.is_none(), "{cache}");
        assert!(get(&w, &rdb_keys(cache, time()).object(1)).await.is_none(), "{cache}");
        assert!(
            get(&w, &rdb_staging_failure_key(&rdb_staging_name(snapshot)))
                .await
                .is_some(),
            "{cache}: refused with a failure record"
        );
        assert_eq!(metric(&w, "RdbCopyFailed", cache).await, [1.0], "{cache}");
    }
}

/// Flips one byte in the middle of a file.
fn bit_flipped(mut bytes: Vec<u8>) -> Vec<u8> {
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_file_gets_no_manifest_and_is_reported_alarmed_and_not_verified_again() {
    let w = world().await;
    let jobs = cache_with_snapshot(&w, "jobs", None).await;
    let sharded = cache_with_snapshot(&w, "cache", Some(2)).await;
    let (good, _) = rdb_file("good");
    let flipped = bit_flipped(good.clone());
    assert!(
        lifeboat::caches::rdb::verify(flipped.as_slice()).is_err(),
        "the flip damages the file"
    );
    let truncated = good[..good.len() - 100].to_vec();
    let flipped_key = stage(&w, &jobs, 1, flipped).await;
    stage(&w, &sharded, 1, good.clone()).await;
    let truncated_key = stage(&w, &sharded, 2, truncated).await;

    let err = caches::handle(&w.deps, None, None).await.unwrap_err().to_string();
    assert!(err.contains("RDB copy failed for 2 of 2 caches"), "{err}");
    assert!(
        err.contains(&format!("jobs (shard 1 {flipped_key}: {flipped_key}: ")),
        "{err}"
    );
    assert!(
        err.contains(&format!("cache (shard 2 {truncated_key}: ")) && err.contains("truncated"),
        "{err}"
    );
    assert!(
        !err.contains("shard 1 rdb-staging-lifeboat-cache"),
        "the good shard is not named: {err}"
    );
    for cache in ["jobs", "cache"] {
        assert_eq!(metric(&w, "RdbCopyFailed", cache).await, [1.0], "{cache}");
        assert!(
            get(&w, &rdb_keys(cache, time()).manifest()).await.is_none(),
            "{cache} has no manifest"
        );
    }
    let exports = w
        .deps
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("exports/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        exports.key_count(),
        Some(0),
        "nothing of a failed copy lands under exports/"
    );
    let record = get(&w, &rdb_staging_failure_key(&rdb_staging_name(&sharded)))
        .await
        .unwrap();
    let record: Vec<caches::FileFailure> = serde_json::from_slice(&record).unwrap();
    assert_eq!((record.len(), record[0].shard, &record[0].key), (1, 2, &truncated_key));
    assert!(
        get(&w, &flipped_key).await.is_some(),
        "the bad file is kept for inspection"
    );

    let before = versions(&w).await;
    let again = caches::run(&w.deps, None, None).await.unwrap();
    assert!(
        again.caches.iter().all(|r| r.outcome == CopyOutcome::FailedEarlier),
        "{again:#?}"
    );
    assert_eq!(again.failed, 0, "an earlier failure is reported, not raised again");
    let mut metrics = lifeboat::core::metrics::Metrics::new();
    caches::record(&again.caches, &mut metrics);
    let failed: Vec<f64> = metrics
        .items()
        .iter()
        .filter(|m| m.name == "RdbCopyFailed")
        .map(|m| m.value)
        .collect();
    assert_eq!(
        failed,
        [1.0, 1.0],
        "the alarm stays on while the newest snapshot's copy is bad"
    );
    assert_eq!(versions(&w).await, before, "a second run writes nothing");
}

/// A file a real server wrote without compression, holding `fill`'s keys and three more values of a few MiB of
/// random digits each: about 14 MiB, enough for three 5 MiB parts.
fn large_rdb_file() -> Vec<u8> {
    let r = Redis::start(&["--rdbcompression", "no"]);
    fill(&r, "large");
    let big = "local t = {} for i = 1, 250000 do t[i] = tostring(math.random()) end \
               redis.call('set', KEYS[1], table.concat(t)) return 1";
    for i in 0..3 {
        r.cli(0, &["EVAL", big, "1", &format!("large:big{i}")]);
    }
    std::fs::read(r.save()).unwrap()
}

/// A file past one copy's limit is moved in parts (the limit and the parts scaled down here, so that a 14 MiB
/// file a real server wrote takes three 5 MiB parts): stored whole and byte for byte, tagged, with S3's composite
/// SHA-256 equal to the one the verifier's part hashes make; a rerun accepts what is stored; a destination
/// holding other bytes, or parts hashed from another file, are refused as not the verified file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_past_one_copy_is_moved_in_parts_and_proven_by_s3s_composite_sha256() {
    use lifeboat::caches::rdb_copy::{self, CopyPlan, Move, RdbCopyError};
    let w = world().await;
    let s3 = &w.deps.s3;
    let bytes = large_rdb_file();
    assert!(
        bytes.len() > 10 << 20,
        "the file must need three parts: {} bytes",
        bytes.len()
    );
    let from = stage_unasked(&w, "lifeboat-large-20261129-0300", 1, bytes.clone()).await;
    let plan = CopyPlan {
        single_max: 6 << 20,
        part_bytes: 5 << 20,
    };
    let file = rdb_copy::verify_object(s3, BUCKET, &from, Some(plan)).await.unwrap();
    assert_eq!(file.parts.len(), 3);
    assert_eq!(file.summary.sha256, hex_sha256(&bytes));
    let to = "exports/large/rdb/2026/11/29/large-20261129-0300-0001.rdb";
    let m = Move {
        bucket: BUCKET,
        from: &from,
        to,
        size: file.summary.bytes,
        sha256: &file.summary.sha256,
        kms_key_id: None,
        plan,
        parts: &file.parts,
    };
    rdb_copy::move_verified(s3, m).await.unwrap();
    assert!(
        get(&w, to).await.unwrap() == bytes,
        "the stored object is the staged file, byte for byte"
    );
    let attrs = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key(to)
        .object_attributes(aws_sdk_s3::types::ObjectAttributes::Checksum)
        .send()
        .await
        .unwrap();
    let stored = attrs.checksum().and_then(|c| c.checksum_sha256()).unwrap().to_owned();
    let composite = rdb_copy::composite_sha256(&file.parts);
    assert_eq!(stored.split('-').next(), composite.split('-').next());
    let tags = s3.get_object_tagging().bucket(BUCKET).key(to).send().await.unwrap();
    assert!(tags
        .tag_set()
        .iter()
        .any(|t| t.key() == "lifeboat-profile" && t.value() == "rdb"));

    let before = versions(&w).await;
    rdb_copy::move_verified(s3, m).await.unwrap();
    assert_eq!(
        versions(&w).await,
        before,
        "a rerun accepts the stored file and writes nothing"
    );

    let taken = "exports/large/rdb/2026/11/29/taken-0001.rdb";
    s3.put_object()
        .bucket(BUCKET)
        .key(taken)
        .body(b"other".to_vec().into())
        .send()
        .await
        .unwrap();
    let err = rdb_copy::move_verified(s3, Move { to: taken, ..m }).await.unwrap_err();
    assert!(
        matches!(err, RdbCopyError::StoredDiffers { .. }) && err.is_final(),
        "{err}"
    );

    let mut wrong = file.parts.clone();
    wrong[1][0] ^= 1;
    let elsewhere = "exports/large/rdb/2026/11/29/wrong-0001.rdb";
    let err = rdb_copy::move_verified(
        s3,
        Move {
            to: elsewhere,
            parts: &wrong,
            ..m
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RdbCopyError::StoredDiffers { .. }), "{err}");
    let uploads = s3.list_multipart_uploads().bucket(BUCKET).send().await.unwrap();
    assert!(uploads.uploads().is_empty(), "no upload is left open");
}

/// A serverless cache as DescribeServerlessCaches gives it, and Lifeboat's snapshot of it (moto has neither).
fn serverless(
    id: &str,
) -> (
    lifeboat::caches::elasticache::Cache,
    lifeboat::caches::elasticache::CacheSnapshot,
) {
    let cache = lifeboat::caches::elasticache::Cache {
        id: id.into(),
        kind: lifeboat::caches::elasticache::CacheKind::Serverless,
        arn: format!("arn:aws:elasticache:{REGION}:123456789012:serverlesscache:{id}"),
        engine: "valkey".into(),
        status: "available".into(),
        tags: BTreeMap::new(),
        cluster_mode: false,
        members: Vec::new(),
        at_rest_encryption: true,
        transit_encryption: true,
        snapshot_retention_days: 7,
        replicated: true,
    };
    let tags = [
        (lifeboat::core::tags::MANAGED, "true".to_owned()),
        (lifeboat::core::tags::CREATED_AT, time().to_rfc3339()),
    ];
    let snapshot = lifeboat::caches::elasticache::CacheSnapshot {
        name: format!("lifeboat-{id}-20261129-0300"),
        arn: String::new(),
        cache: id.into(),
        status: "available".into(),
        source: "manual".into(),
        tags: tags.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        created: None,
        serverless: true,
    };
    (cache, snapshot)
}

async fn put(w: &World, key: &str, bytes: Vec<u8>) {
    w.deps
        .s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
}

/// A serverless cache's copy. moto has no serverless calls, so ElastiCache's two (DescribeServerlessCacheSnapshots,
/// ExportServerlessCacheSnapshot) are answered by `aws-smithy-mocks` at the client; S3 is moto's and the file a
/// real server's. ElastiCache reports no shard count for a serverless snapshot, so a copy cannot be proven
/// complete: with the first of two shards' files staged (a copy missing its last shard, which counting the files
/// used to publish), nothing is requested, verified or published, and the copy is reported failed with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serverless_copy_without_a_shard_count_is_refused_not_published() {
    use aws_sdk_elasticache::operation::describe_serverless_cache_snapshots::DescribeServerlessCacheSnapshotsOutput;
    use aws_sdk_elasticache::operation::export_serverless_cache_snapshot::ExportServerlessCacheSnapshotOutput;
    use aws_sdk_elasticache::types::{ServerlessCacheConfiguration, ServerlessCacheSnapshot};
    use aws_sdk_elasticache::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    let w = world().await;
    let describe = mock!(Client::describe_serverless_cache_snapshots).then_output(|| {
        let config = ServerlessCacheConfiguration::builder()
            .engine("valkey")
            .major_engine_version("8")
            .build();
        DescribeServerlessCacheSnapshotsOutput::builder()
            .serverless_cache_snapshots(
                ServerlessCacheSnapshot::builder()
                    .status("available")
                    .serverless_cache_configuration(config)
                    .build(),
            )
            .build()
    });
    let export = mock!(Client::export_serverless_cache_snapshot)
        .match_requests(|r| {
            r.serverless_cache_snapshot_name() == Some("lifeboat-sessions-20261129-0300")
                && r.s3_bucket_name() == Some(BUCKET)
        })
        .then_output(|| ExportServerlessCacheSnapshotOutput::builder().build());
    let deps = Deps {
        ec: mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, [&describe, &export]).into(),
        ..w.deps.clone()
    };
    let (sessions, sessions_snap) = serverless("sessions");
    let snapshots = [sessions_snap.clone()];
    let r = caches::copy_one(&deps, &sessions, &snapshots).await;
    assert_eq!(r.outcome, CopyOutcome::Failed, "{r:?}");
    assert_eq!(export.num_calls(), 0, "nothing is requested that cannot be proven");
    let (file, _) = rdb_file("serverless");
    put(&w, &format!("{}-0001.rdb", sessions_snap.name), file).await;
    let r = caches::copy_one(&deps, &sessions, &snapshots).await;
    assert_eq!(r.outcome, CopyOutcome::Failed, "{r:?}");
    let detail = r.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("no shard count") && detail.contains("missing its last shard"),
        "{detail}"
    );
    assert!(r.copy_failed(), "the copy's alarm fires");
    assert!(get(&w, &rdb_keys("sessions", time()).manifest()).await.is_none());
    assert!(get(&w, &rdb_keys("sessions", time()).object(1)).await.is_none());
    assert_eq!(export.num_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_out_of_time_steps_no_cache_and_says_so_in_its_metrics_and_its_error() {
    let w = world().await;
    let sessions = cache_with_snapshot(&w, "sessions", Some(1)).await;
    let (one, _) = rdb_file("one");
    stage(&w, &sessions, 1, one).await;
    // The invocation's deadline is inside the margin already: no cache may start, and the run says so rather
    // than being killed by Lambda half-way with nothing published.
    let deadline = std::time::Instant::now() + caches_margin() / 2;
    let err = caches::handle(&w.deps, None, Some(deadline))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("RDB copy failed for 1 of 1 caches"), "{err}");
    assert!(
        err.contains("sessions (not reached before the invocation's deadline"),
        "{err}"
    );
    assert_eq!(metric(&w, "RdbCopyError", "sessions").await, [1.0]);
    assert!(
        get(&w, &rdb_keys("sessions", time()).manifest()).await.is_none(),
        "nothing written"
    );

    // With time, the same copy completes.
    let summary = caches::handle(
        &w.deps,
        None,
        Some(std::time::Instant::now() + Duration::from_secs(900)),
    )
    .await
    .unwrap();
    assert_eq!(summary.caches[0].outcome, CopyOutcome::Verified, "{summary:#?}");
}

fn caches_margin() -> Duration {
    export::handler::DEADLINE_MARGIN
}

/// What the run asked of S3, in order: each request's method and URI, seen by an interceptor on the test's S3
/// client (the production code is unchanged; the interceptor only watches, or, with `hold`, holds one request).
#[derive(Debug, Clone, Default)]
struct Watch {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String, std::time::Instant)>>>,
    /// A URI fragment whose first GET is held back until the instant given, on the thread sending it.
    hold: Option<(String, std::time::Instant)>,
}

impl aws_sdk_s3::config::Intercept for Watch {
    fn name(&self) -> &'static str {
        "Watch"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let request = context.request();
        let (method, uri) = (request.method().to_owned(), request.uri().to_owned());
        let now = std::time::Instant::now();
        let first = {
            let mut seen = self.seen.lock().unwrap();
            let first = !seen.iter().any(|(m, u, _)| m == &method && u == &uri);
            seen.push((method.clone(), uri.clone(), now));
            first
        };
        if let Some((fragment, until)) = &self.hold {
            if first && method == "GET" && uri.contains(fragment.as_str()) {
                // Blocks this worker thread (an interceptor cannot await): the run's own timer, on the other
                // worker, goes on, as Lambda's clock does while a read is slow.
                std::thread::sleep(until.saturating_duration_since(now));
            }
        }
        Ok(())
    }
}

impl Watch {
    /// `deps` with an S3 client that reports to this watch.
    fn on(&self, deps: &Deps) -> Deps {
        let config = deps.s3.config().to_builder().interceptor(self.clone()).build();
        Deps {
            s3: aws_sdk_s3::Client::from_conf(config).into(),
            ..deps.clone()
        }
    }

    fn requests(&self) -> Vec<(String, String, std::time::Instant)> {
        self.seen.lock().unwrap().clone()
    }
}

/// The book's "two at a time": four caches whose copies each take several S3 round trips and a few MiB of
/// verification. Each cache's span runs from its first S3 request to its last (every request names its cache:
/// its staging name or its `exports/_caches/<cache>/` key); at some request two spans are open, and at none are
/// three. One at a time would never open two, an unbounded run would open four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_caches_steps_two_caches_at_a_time() {
    let w = world().await;
    let ids = ["alpha", "bravo", "charlie", "delta"];
    let (file, _) = rdb_file("shared");
    for id in ids {
        let snapshot = cache_with_snapshot(&w, id, None).await;
        stage(&w, &snapshot, 1, file.clone()).await;
    }
    let watch = Watch::default();
    let summary = caches::handle(&watch.on(&w.deps), None, None).await.unwrap();
    assert!(
        summary.caches.iter().all(|r| r.outcome == CopyOutcome::Verified),
        "{summary:#?}"
    );
    let requests = watch.requests();
    let owner = |uri: &str| {
        ids.iter()
            .position(|id| uri.contains(&format!("lifeboat-{id}-")) || uri.contains(&format!("_caches/{id}/")))
    };
    let mut spans = [(usize::MAX, 0); 4];
    for (at, (_, uri, _)) in requests.iter().enumerate() {
        if let Some(i) = owner(uri) {
            spans[i] = (spans[i].0.min(at), spans[i].1.max(at));
        }
    }
    assert!(
        spans.iter().all(|(first, _)| *first != usize::MAX),
        "every cache was stepped: {spans:?}"
    );
    let open_at = |at: usize| spans.iter().filter(|(first, last)| *first <= at && at <= *last).count();
    let most = (0..requests.len()).map(open_at).max().unwrap_or(0);
    assert_eq!(most, 2, "caches in flight at once, spans by request number {spans:?}");
}

/// A deadline that passes while a cache's files are being verified: its first shard's file read and verified,
/// its second shard's read held back (as a slow read would be) until past the run's stop time. The step is
/// stopped there: reported `deadline`, `RdbCopyError` 1 published, the invocation failed (after the metrics);
/// nothing moved, no manifest, no failure record, the staged files left where they are; the next run with time
/// verifies them again and completes the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_passing_while_a_cache_is_verified_stops_it_and_leaves_its_files_to_the_next_run() {
    let w = world().await;
    let sharded = cache_with_snapshot(&w, "cache", Some(2)).await;
    let (one, _) = rdb_file("one");
    let (two, _) = rdb_file("two");
    let first = stage(&w, &sharded, 1, one).await;
    let second = stage(&w, &sharded, 2, two).await;
    let deadline = std::time::Instant::now() + caches_margin() + Duration::from_secs(8);
    let stop = deadline - caches_margin();
    let watch = Watch {
        hold: Some((second.clone(), stop + Duration::from_millis(500))),
        ..Watch::default()
    };
    let err = caches::handle(&watch.on(&w.deps), None, Some(deadline))
        .await
        .unwrap_err()
        .to_string();
    let requests = watch.requests();
    let got = |key: &str| {
        requests
            .iter()
            .find(|(m, u, _)| m == "GET" && u.contains(key))
            .map(|(_, _, at)| *at)
    };
    assert!(
        got(&first).is_some_and(|at| at < stop),
        "the first shard's file was read before the stop: {requests:?}"
    );
    assert!(
        got(&second).is_some(),
        "the second shard's file was being read at the stop"
    );
    assert!(err.contains("RDB copy failed for 1 of 1 caches"), "{err}");
    assert!(
        err.contains("cache (stopped 60 s before the invocation's deadline; no manifest was written"),
        "{err}"
    );
    assert_eq!(metric(&w, "RdbCopyError", "cache").await, [1.0]);
    assert_eq!(
        metric(&w, "RdbCopyFailed", "cache").await,
        [0.0],
        "a stopped copy is not a bad copy"
    );
    assert!(get(&w, &rdb_keys("cache", time()).manifest()).await.is_none());
    let exports = w
        .deps
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("exports/")
        .send()
        .await
        .unwrap();
    assert_eq!(exports.key_count(), Some(0), "nothing moved under exports/");
    assert!(
        get(&w, &rdb_staging_failure_key(&rdb_staging_name(&sharded)))
            .await
            .is_none(),
        "a stopped verify is not a failed one: no failure record"
    );
    for key in [&first, &second] {
        assert!(get(&w, key).await.is_some(), "{key} is left for the next run");
    }

    let summary = caches::handle(&w.deps, None, None).await.unwrap();
    assert_eq!(summary.caches[0].outcome, CopyOutcome::Verified, "{summary:#?}");
}

/// Item 4's race: Lifeboat has written its request record and asked for the export, and someone else with
/// `elasticache:CopySnapshot` stages another cache's data where Lifeboat's predictable name would put it, after
/// the record and before ElastiCache's own export lands. That file is never verified or published: Lifeboat asked
/// for a name with a random part, recorded in its request record, and looks for files under that name only.
/// When ElastiCache's own file arrives there, it is the one published. ElastiCache's calls are answered by
/// `aws-smithy-mocks` (moto does not export to S3); S3 is moto's, the files a real server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_staged_by_someone_else_after_lifeboats_request_is_not_published() {
    use aws_sdk_elasticache::operation::copy_snapshot::CopySnapshotOutput;
    use aws_sdk_elasticache::operation::describe_snapshots::DescribeSnapshotsOutput;
    use aws_sdk_elasticache::types::{NodeSnapshot, Snapshot};
    use aws_sdk_elasticache::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use std::sync::{Arc, Mutex};
    let w = world().await;
    let name = "lifeboat-sessions-20261129-0300";
    let arn = format!("arn:aws:elasticache:{REGION}:123456789012:snapshot:{name}");
    let created = aws_sdk_elasticache::primitives::DateTime::from_secs(time().timestamp());
    let described = arn.clone();
    let describe = mock!(Client::describe_snapshots).then_output(move || {
        let node = NodeSnapshot::builder()
            .node_group_id("0001")
            .snapshot_create_time(created)
            .build();
        DescribeSnapshotsOutput::builder()
            .snapshots(
                Snapshot::builder()
                    .snapshot_name(name)
                    .arn(&described)
                    .engine("valkey")
                    .engine_version("8.0")
                    .num_node_groups(1)
                    .node_snapshots(node)
                    .build(),
            )
            .build()
    });
    let targets = Arc::new(Mutex::new(Vec::new()));
    let asked = targets.clone();
    let copy = mock!(Client::copy_snapshot)
        .match_requests(move |r| {
            asked
                .lock()
                .unwrap()
                .push(r.target_snapshot_name().unwrap_or_default().to_owned());
            r.source_snapshot_name() == Some(name) && r.target_bucket() == Some(BUCKET)
        })
        .then_output(|| CopySnapshotOutput::builder().build());
    let deps = Deps {
        ec: mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, [&describe, &copy]).into(),
        ..w.deps.clone()
    };
    let cache = lifeboat::caches::elasticache::Cache {
        kind: lifeboat::caches::elasticache::CacheKind::ReplicationGroup,
        arn: format!("arn:aws:elasticache:{REGION}:123456789012:replicationgroup:sessions"),
        ..serverless("sessions").0
    };
    let snapshot = lifeboat::caches::elasticache::CacheSnapshot {
        arn: arn.clone(),
        serverless: false,
        ..serverless("sessions").1
    };
    let snapshots = [snapshot];

    let r = caches::copy_one(&deps, &cache, &snapshots).await;
    assert_eq!(r.outcome, CopyOutcome::Requested, "{r:?}");
    let target = targets.lock().unwrap().first().cloned().unwrap();

    // Someone else's export, after Lifeboat's record, under the name they can guess.
    let (foreign, _) = rdb_file("foreign");
    put(&w, &format!("{}-0001.rdb", rdb_staging_name(name)), foreign).await;
    let r = caches::copy_one(&deps, &cache, &snapshots).await;
    assert!(
        matches!(r.outcome, CopyOutcome::Requested | CopyOutcome::Waiting),
        "{r:?}"
    );
    assert!(
        get(&w, &rdb_keys("sessions", time()).manifest()).await.is_none(),
        "nothing published"
    );
    assert!(
        targets.lock().unwrap().iter().all(|t| *t == target),
        "a rerun asks for the recorded name again: {targets:?}"
    );
    assert!(
        target.starts_with(&format!("{}-", rdb_staging_name(name))) && target.len() > rdb_staging_name(name).len() + 16,
        "the name asked for cannot be guessed from the snapshot's: {target}"
    );

    // ElastiCache's own export lands under the name Lifeboat asked for: that is the copy published.
    let (own, _) = rdb_file("own");
    put(&w, &format!("{target}-0001.rdb"), own.clone()).await;
    let r = caches::copy_one(&deps, &cache, &snapshots).await;
    assert_eq!(r.outcome, CopyOutcome::Verified, "{r:?}");
    let manifest: RdbManifest =
        serde_json::from_slice(&get(&w, &rdb_keys("sessions", time()).manifest()).await.unwrap()).unwrap();
    assert_eq!(
        manifest.shards[0].sha256,
        hex_sha256(&own),
        "the copy is ElastiCache's export for Lifeboat"
    );
    assert!(get(&w, &manifest.shards[0].key).await.unwrap() == own);
}

/// A world whose export function follows a plan document: plan `cache` copies its caches' RDB files daily at
/// 03:00 UTC; `sessions` and `queue` are its members.
async fn plan_world() -> World {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    lifeboat_tests::plans::versioned_bucket(&s3, "lifeboat-plans").await;
    let plan = r#"{"format": 1, "plans": {"cache": {"caches": ["sessions", "queue"],
        "rdb_copies": {"schedule": "0 3 * * *", "keep_days": 7}}}}"#;
    s3.put_object()
        .bucket("lifeboat-plans")
        .key("plans.json")
        .body(plan.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let vars: BTreeMap<&str, &str> = [
        ("LIFEBOAT_BUCKET", BUCKET),
        ("LIFEBOAT_DB_SSLMODE", "disable"),
        ("LIFEBOAT_PLAN_DOCUMENT", "s3://lifeboat-plans/plans.json"),
    ]
    .into();
    let settings = ExportSettings::from_env(&move |n: &str| vars.get(n).map(|v| (*v).to_owned())).unwrap();
    let deps = Deps::new(&config, settings);
    World { moto, deps }
}

/// The plan's rule says when a copy is asked for; ElastiCache's export lands minutes later, and the next tick,
/// though the rule is not due then, verifies it and writes the manifest. A cache with no copy in progress is not
/// asked for anything between due times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_requested_at_its_due_time_is_finished_by_the_next_tick() {
    let w = plan_world().await;
    let sessions = cache_with_snapshot(&w, "sessions", None).await;
    let queue = cache_with_snapshot(&w, "queue", None).await;
    // What the 03:00 tick asked for (moto cannot export to a bucket): `sessions`' files arrive after it.
    let (bytes, keys_per_db) = rdb_file("sessions");
    stage(&w, &sessions, 1, bytes).await;
    let before = versions(&w).await;

    let tick = |t: &str| export::plan::tick(&w.deps, DateTime::parse_from_rfc3339(t).unwrap().into(), None);
    let summary = tick("2026-11-29T03:15:00Z").await.unwrap();
    assert!(summary.due.is_empty(), "nothing is due at 03:15: {summary:?}");
    let copied = summary.caches.expect("the copy in progress was stepped");
    let outcomes: Vec<(&str, CopyOutcome)> = copied.caches.iter().map(|r| (r.cache.as_str(), r.outcome)).collect();
    assert_eq!(
        outcomes,
        [("sessions", CopyOutcome::Verified)],
        "queue has none in progress"
    );
    assert_eq!(copied.caches[0].keys_per_db, keys_per_db);
    let manifest = rdb_keys("sessions", time()).manifest();
    assert!(get(&w, &manifest).await.is_some());
    // `queue` was not asked for: no request record, nothing staged for it.
    let written: Vec<String> = versions(&w)
        .await
        .into_iter()
        .filter(|v| !before.contains(v))
        .map(|(k, _)| k)
        .collect();
    assert!(written.iter().all(|k| !k.contains(&queue)), "{written:?}");

    // Once copied, a tick between due times steps nothing and writes nothing.
    let before = versions(&w).await;
    let idle = tick("2026-11-29T03:30:00Z").await.unwrap();
    assert!(idle.caches.is_none(), "{idle:?}");
    assert_eq!(versions(&w).await, before);
}

/// `bucket_policies` of a deployed stack, with `action` taken out of every statement that grants ElastiCache's
/// export service something: what the template would deploy if it stopped granting that action.
fn without_elasticache_grant(policies: &serde_json::Value, action: &str) -> serde_json::Value {
    let mut policies = policies.clone();
    for policy in policies.as_object_mut().unwrap().values_mut() {
        for s in policy["Statement"].as_array_mut().unwrap() {
            if s["Principal"]["Service"]
                .as_str()
                .is_some_and(|p| p.ends_with(".elasticache-snapshot.amazonaws.com"))
            {
                let actions = match &s["Action"] {
                    serde_json::Value::String(a) => vec![serde_json::Value::String(a.clone())],
                    other => other.as_array().unwrap().clone(),
                };
                s["Action"] = actions.into_iter().filter(|a| a != action).collect();
            }
        }
    }
    policies
}

/// The harness's ElastiCache export (`tests/emulator/elasticache_export.py`, which the deployed stack's story relies
/// on) behaves as AWS documents, asked through Lifeboat's own adapter: into the deployed stack's bucket it writes
/// `<target>-0001.rdb`, byte for byte the file the cache's real `redis-server` wrote when the snapshot was taken
/// (not the data written since), and one file per shard of a sharded cache; a target already there is "already requested"; an unknown snapshot is
/// `SnapshotNotFoundFault`; and a bucket policy that stops granting ElastiCache write access (the template's
/// statements without `s3:PutObject`), or a bucket with no policy, is refused as AWS refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulated_export_writes_what_redis_saved_at_the_snapshot_only_where_the_bucket_policy_lets_elasticache() {
    use lifeboat::caches::rdb_copy::{request_export, RdbCopyError, Requested};
    let moto = Moto::start_with_cache_exports();
    let config = moto.config(REGION);
    let stack = tokio::task::block_in_place(|| {
        lifeboat_tests::stack::Stack::deploy(&moto, REGION, "lifeboat", &[("PlanBucket", "lifeboat-plans")])
    });
    let bucket = stack.function("ExportFunction").env["LIFEBOAT_BUCKET"].clone();
    let ec = aws_sdk_elasticache::Client::new(&config);
    let s3 = aws_sdk_s3::Client::new(&config);
    let redis = Redis::start_tls(&[]);
    let at_snapshot = fill(&redis, "then");
    lifeboat_tests::plans::cache(&ec, "sessions", &[]).await;
    moto.stand_in_cache("sessions", &[&redis]);
    let snapshot = "lifeboat-sessions-20261129-0300";
    ec.create_snapshot()
        .snapshot_name(snapshot)
        .cache_cluster_id("sessions")
        .send()
        .await
        .unwrap();
    let written = std::fs::read(redis.rdb()).unwrap();
    // The cache takes writes after its snapshot, and saves them: the export must still carry the snapshot's data.
    redis.cli(0, &["SET", "later", "x"]);
    redis.save();
    assert_ne!(std::fs::read(redis.rdb()).unwrap(), written);

    let staging = "rdb-staging-lifeboat-sessions-20261129-0300";
    let asked = request_export(&ec, snapshot, staging, &bucket).await.unwrap();
    assert_eq!(asked, Requested::Started);
    let key = format!("{staging}-0001.rdb");
    let exported = s3.get_object().bucket(&bucket).key(&key).send().await.unwrap();
    let exported = exported.body.collect().await.unwrap().into_bytes().to_vec();
    assert!(
        exported == written,
        "{key} holds the file the server wrote at the snapshot"
    );
    let summary = lifeboat::caches::rdb::verify(exported.as_slice()).unwrap();
    let counted: BTreeMap<u64, u64> = summary.databases.iter().map(|(db, k)| (*db, k.keys)).collect();
    assert_eq!(counted, at_snapshot);
    assert!(matches!(
        request_export(&ec, snapshot, staging, &bucket).await.unwrap(),
        Requested::AlreadyRequested(m) if m.contains("already contains an object with key")
    ));

    let unknown = ec
        .copy_snapshot()
        .source_snapshot_name("lifeboat-nothing")
        .target_snapshot_name("rdb-staging-lifeboat-nothing")
        .target_bucket(&bucket)
        .send()
        .await
        .unwrap_err();
    assert!(
        unknown
            .as_service_error()
            .is_some_and(|e| e.is_snapshot_not_found_fault()),
        "{unknown:?}"
    );

    // A sharded cache: one file per shard, numbered in the order of its node groups.
    let shards = [Redis::start(&[]), Redis::start(&[])];
    let per_shard: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(i, r)| fill(r, &format!("shard{i}")))
        .collect();
    ec.create_replication_group()
        .replication_group_id("carts")
        .replication_group_description("test")
        .engine("valkey")
        .cluster_mode(ClusterMode::Enabled)
        .num_node_groups(2)
        .send()
        .await
        .unwrap();
    moto.stand_in_cache("carts", &[&shards[0], &shards[1]]);
    ec.create_snapshot()
        .snapshot_name("lifeboat-carts-1")
        .replication_group_id("carts")
        .send()
        .await
        .unwrap();
    let asked = request_export(&ec, "lifeboat-carts-1", "rdb-staging-lifeboat-carts-1", &bucket).await;
    assert_eq!(asked.unwrap(), Requested::Started);
    for (i, (server, keys)) in shards.iter().zip(&per_shard).enumerate() {
        let key = format!("rdb-staging-lifeboat-carts-1-{:04}.rdb", i + 1);
        let got = s3.get_object().bucket(&bucket).key(&key).send().await.unwrap();
        let got = got.body.collect().await.unwrap().into_bytes().to_vec();
        assert!(
            got == std::fs::read(server.rdb()).unwrap(),
            "{key} is shard {}'s file",
            i + 1
        );
        let summary = lifeboat::caches::rdb::verify(got.as_slice()).unwrap();
        let counted: BTreeMap<u64, u64> = summary.databases.iter().map(|(db, k)| (*db, k.keys)).collect();
        assert_eq!(&counted, keys);
    }

    // A template that stops granting ElastiCache s3:PutObject: refused, and nothing is written.
    moto.keep_bucket_policies(&without_elasticache_grant(
        &stack.doc["bucket_policies"],
        "s3:PutObject",
    ));
    let refused = request_export(&ec, snapshot, &format!("{staging}-again"), &bucket).await;
    match refused {
        Err(RdbCopyError::BucketAccess { message, .. }) => {
            assert!(message.contains("has not been granted WRITE permissions"), "{message}");
        }
        other => panic!("a bucket that does not let ElastiCache write is refused: {other:?}"),
    }
    let again = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(format!("{staging}-again"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.key_count(), Some(0));
    // A bucket with no policy at all grants ElastiCache nothing.
    s3.create_bucket().bucket("no-policy-bucket").send().await.unwrap();
    let refused = request_export(&ec, snapshot, staging, "no-policy-bucket").await;
    assert!(
        matches!(&refused, Err(RdbCopyError::BucketAccess { message, .. }) if message.contains("READ")),
        "{refused:?}"
    );
}
