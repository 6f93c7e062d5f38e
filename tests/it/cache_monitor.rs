//! `monitor` on caches against moto (ElastiCache, S3, CloudWatch): a production cache with a fresh Lifeboat
//! snapshot, a verified RDB copy and a passed restore test, and a production single node with none of them and
//! every compliance gap; the published figures are read back from CloudWatch, the findings from the summary.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_sdk_elasticache::types::Tag;
use chrono::{DateTime, Duration, Utc};
use lifeboat::bucket::layout;
use lifeboat::caches::records::{CacheRestoreReport, RdbManifest, RdbShard, FORMAT_VERSION};
use lifeboat_tests::moto::Moto;
use monitor::settings::MonitorSettings;
use serde_json::json;

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// The variables given, over the stack name every monitor and notify needs (`LIFEBOAT_STACK_NAME`, here `prod`: the
/// alarms these tests read are `lifeboat/prod/<subject>/<check>`).
fn env(pairs: &[(&str, &str)]) -> impl lifeboat::core::settings::Env {
    let mut map: BTreeMap<String, String> = BTreeMap::from([("LIFEBOAT_STACK_NAME".to_owned(), "prod".to_owned())]);
    map.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    move |n: &str| map.get(n).cloned()
}

/// `sessions`: a primary and a replica, encrypted, seven days of automatic backups, production. `jobs`: one
/// node, nothing encrypted, automatic backups off, production.
async fn fleet(ec: &aws_sdk_elasticache::Client) {
    ec.create_replication_group()
        .replication_group_id("sessions")
        .replication_group_description("sessions")
        .engine("valkey")
        .replicas_per_node_group(1)
        .at_rest_encryption_enabled(true)
        .transit_encryption_enabled(true)
        .snapshot_retention_limit(7)
        .tags(tag("lifeboat:backup", "true"))
        .tags(tag("Environment", "production"))
        .send()
        .await
        .unwrap();
    ec.create_cache_cluster()
        .cache_cluster_id("jobs")
        .engine("redis")
        .cache_node_type("cache.t4g.micro")
        .num_cache_nodes(1)
        .tags(tag("lifeboat:backup", "true"))
        .tags(tag("env", "prod"))
        .send()
        .await
        .unwrap();
}

/// A Lifeboat snapshot of `sessions` taken an hour ago, tagged as the snapshot function tags it.
async fn snapshot(ec: &aws_sdk_elasticache::Client, at: DateTime<Utc>) {
    let tags = lifeboat::rds::snapshot_tags::snapshot_tags(
        "sessions",
        lifeboat::rds::naming::SnapshotKind::Schedule,
        at,
        "daily=7,weekly=4,monthly=12,yearly=3",
        None,
    );
    let mut req = ec
        .create_snapshot()
        .snapshot_name(lifeboat::rds::naming::snapshot_id(
            "sessions",
            lifeboat::rds::naming::SnapshotKind::Schedule,
            at,
        ))
        .replication_group_id("sessions");
    for (k, v) in &tags {
        req = req.tags(tag(k, v));
    }
    req.send().await.unwrap();
    // A snapshot someone else made of `jobs` is not a Lifeboat backup.
    ec.create_snapshot()
        .snapshot_name("manual-jobs")
        .cache_cluster_id("jobs")
        .send()
        .await
        .unwrap();
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, body: String) {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(body.into_bytes().into())
        .send()
        .await
        .unwrap();
}

/// A verified RDB copy of `sessions` made five hours ago and a restore test two days ago that passed.
async fn records(s3: &aws_sdk_s3::Client, now: DateTime<Utc>) {
    let copied = now - Duration::hours(5);
    let keys = layout::rdb_keys("sessions", copied);
    let manifest = RdbManifest {
        format_version: FORMAT_VERSION,
        lifeboat_version: lifeboat::core::VERSION.into(),
        cache: "sessions".into(),
        engine: "valkey".into(),
        engine_version: "8.0".into(),
        snapshot: "lifeboat-sessions-x".into(),
        snapshot_time: copied,
        copied_at: copied,
        shards: vec![RdbShard {
            shard: 1,
            key: keys.object(1),
            size: 10,
            sha256: "00".repeat(32),
            rdb_version: 11,
            server_version: Some("8.0.1".into()),
            keys_per_db: BTreeMap::from([(0, 3)]),
            checksummed: true,
        }],
    };
    put(s3, &keys.manifest(), serde_json::to_string(&manifest).unwrap()).await;
    let tested = now - Duration::days(2);
    let report = CacheRestoreReport {
        format_version: FORMAT_VERSION,
        lifeboat_version: lifeboat::core::VERSION.into(),
        cache: "sessions".into(),
        restored_id: "lifeboat-rt-sessions".into(),
        snapshot: "lifeboat-sessions-x".into(),
        snapshot_time: tested,
        requested_at: tested,
        verified_at: Some(tested),
        passed: true,
        rto_seconds: Some(300.0),
        rpo_seconds: 60.0,
        timings_seconds: BTreeMap::new(),
        checks: Vec::new(),
        error: None,
    };
    let key = format!("{}.json", layout::cache_restore_report_base("sessions", tested));
    put(s3, &key, serde_json::to_string(&report).unwrap()).await;
}

async fn max_of(cw: &aws_sdk_cloudwatch::Client, metric: &str, cache: &str, now: DateTime<Utc>) -> Option<f64> {
    let stats = cw
        .get_metric_statistics()
        .namespace("Lifeboat")
        .metric_name(metric)
        .dimensions(Dimension::builder().name("CacheIdentifier").value(cache).build())
        .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            now.timestamp() - 3600,
        ))
        .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            now.timestamp() + 3600,
        ))
        .period(3600)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .unwrap();
    stats.datapoints().iter().filter_map(|d| d.maximum()).reduce(f64::max)
}

#[tokio::test]
async fn monitor_publishes_cache_ages_findings_and_one_alarm_set_per_cache() {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let ec = aws_sdk_elasticache::Client::new(&config);
    let s3 = aws_sdk_s3::Client::new(&config);
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    fleet(&ec).await;
    let now = Utc::now();
    snapshot(&ec, now - Duration::hours(1)).await;
    records(&s3, now).await;

    let settings = MonitorSettings::from_env(&env(&[("LIFEBOAT_BUCKET", BUCKET)])).unwrap();
    let deps = monitor::Deps::new(&config, settings);
    let summary = monitor::handle(&deps, json!({})).await.unwrap();

    let views: BTreeMap<&str, &monitor::handler::CacheView> =
        summary.caches.iter().map(|v| (v.cache.as_str(), v)).collect();
    assert_eq!(views.keys().copied().collect::<Vec<_>>(), ["jobs", "sessions"]);
    let sessions = views["sessions"];
    assert!(
        (0.9..1.1).contains(&sessions.snapshot_age_hours.unwrap()),
        "{sessions:?}"
    );
    assert!((4.9..5.1).contains(&sessions.export_age_hours.unwrap()), "{sessions:?}");
    assert_eq!(sessions.last_restore_test_passed, Some(true));
    assert!(
        sessions.production && sessions.replicated && !sessions.backup_missing,
        "{sessions:?}"
    );
    let jobs = views["jobs"];
    assert!(
        jobs.snapshot_age_hours.is_none(),
        "a foreign snapshot is no Lifeboat backup: {jobs:?}"
    );
    assert!(jobs.backup_missing && !jobs.replicated);

    let about_jobs: Vec<&str> = summary
        .attention
        .iter()
        .filter(|a| a.contains("jobs"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        about_jobs,
        [
            "jobs: selected for backup but has no snapshot and no export at all",
            "cache jobs: ElastiCache's automatic backups are off (SnapshotRetentionLimit 0); set a retention of at \
             least 7 days",
            "cache jobs: encryption at rest is off (its snapshots and RDB files are unencrypted)",
            "cache jobs: encryption in transit is off (clients and replicas talk in plain text)",
            "cache jobs: tagged as production but has no replica (a node failure loses every write since the last \
             snapshot)",
        ]
    );
    assert!(
        !summary.attention.iter().any(|a| a.contains("sessions")),
        "{:?}",
        summary.attention
    );

    // The figures reached CloudWatch under CacheIdentifier.
    let snapshot_age = max_of(&cw, "SnapshotAgeSeconds", "sessions", now).await.unwrap();
    assert!((3500.0..3700.0).contains(&snapshot_age), "{snapshot_age}");
    let export_age = max_of(&cw, "ExportAgeSeconds", "sessions", now).await.unwrap();
    assert!(
        (5.0 * 3600.0 - 100.0..5.0 * 3600.0 + 100.0).contains(&export_age),
        "{export_age}"
    );
    let test_age = max_of(&cw, "RestoreTestAgeSeconds", "sessions", now).await.unwrap();
    assert!(
        (2.0 * 86400.0 - 100.0..2.0 * 86400.0 + 100.0).contains(&test_age),
        "{test_age}"
    );
    assert_eq!(max_of(&cw, "LastRestoreTestSuccess", "sessions", now).await, Some(1.0));
    assert_eq!(max_of(&cw, "BackupMissing", "sessions", now).await, Some(0.0));
    assert_eq!(max_of(&cw, "BackupMissing", "jobs", now).await, Some(1.0));
    assert_eq!(max_of(&cw, "SnapshotAgeSeconds", "jobs", now).await, None);
    assert_eq!(max_of(&cw, "BackupRetentionDays", "jobs", now).await, Some(0.0));
    assert_eq!(max_of(&cw, "BackupRetentionDays", "sessions", now).await, Some(7.0));
    assert_eq!(max_of(&cw, "StorageEncrypted", "jobs", now).await, Some(0.0));
    assert_eq!(max_of(&cw, "TransitEncrypted", "jobs", now).await, Some(0.0));
    assert_eq!(max_of(&cw, "TransitEncrypted", "sessions", now).await, Some(1.0));
    assert_eq!(max_of(&cw, "ReplicaMissing", "jobs", now).await, Some(1.0));
    assert_eq!(max_of(&cw, "ReplicaMissing", "sessions", now).await, Some(0.0));

    // One alarm set per cache, on CacheIdentifier, missing data breaching.
    let alarms = cw
        .describe_alarms()
        .alarm_name_prefix("lifeboat/prod/cache:")
        .send()
        .await
        .unwrap()
        .metric_alarms()
        .to_vec();
    let mut names: Vec<&str> = alarms.iter().filter_map(|a| a.alarm_name()).collect();
    names.sort_unstable();
    // Five checks each, and the content watch's alarm of a cache whose RDB copies are compared.
    assert_eq!(names.len(), 2 * 6, "{names:?}");
    assert!(names.contains(&"lifeboat/prod/cache:jobs/snapshot-age"));
    assert!(names.contains(&"lifeboat/prod/cache:sessions/export-age"));
    for a in &alarms {
        assert_eq!(a.treat_missing_data(), Some("breaching"));
        let dims: Vec<(&str, &str)> = a
            .dimensions()
            .iter()
            .filter_map(|d| Some((d.name()?, d.value()?)))
            .collect();
        assert_eq!(dims.len(), 1);
        assert_eq!(dims[0].0, "CacheIdentifier");
    }

    // A cache no longer selected while it still exists keeps its alarms (they fire on the missing data) and is a
    // finding until a person confirms (`a_deselected_cache_keeps_its_alarms_until_a_person_confirms`).
    let jobs = ec
        .describe_cache_clusters()
        .cache_cluster_id("jobs")
        .send()
        .await
        .unwrap();
    let arn = jobs.cache_clusters()[0].arn().unwrap().to_owned();
    ec.remove_tags_from_resource()
        .resource_name(arn)
        .tag_keys("lifeboat:backup")
        .send()
        .await
        .unwrap();
    let summary = monitor::handle(&deps, json!({})).await.unwrap();
    assert_eq!(summary.caches.len(), 1);
    assert!(summary.alarms_deleted.is_empty(), "{:?}", summary.alarms_deleted);
    assert_eq!(summary.deselected, ["cache:jobs"]);
}

/// monitor's janitor sweeps cache restore-test groups too: an expired one (a test whose cleanup never ran) is
/// deleted and reported, a live one and a group without the restore-test tag are left alone.
#[tokio::test]
async fn the_janitor_deletes_expired_cache_restore_test_groups_and_nothing_else() {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let ec = aws_sdk_elasticache::Client::new(&config);
    let s3 = aws_sdk_s3::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let expired = || tag("lifeboat:expires-at", "2026-11-01T00:00:00+00:00");
    for (id, tags) in [
        (
            "lifeboat-rt-old-202611010000",
            vec![tag("lifeboat:restore-test", "true"), expired()],
        ),
        (
            "lifeboat-rt-live-209901010000",
            vec![
                tag("lifeboat:restore-test", "true"),
                tag("lifeboat:expires-at", "2099-01-01T00:00:00+00:00"),
            ],
        ),
        ("lifeboat-rt-foreign-202611010000", vec![expired()]),
    ] {
        ec.create_replication_group()
            .replication_group_id(id)
            .replication_group_description(id)
            .set_tags(Some(tags))
            .send()
            .await
            .unwrap();
    }
    let settings = MonitorSettings::from_env(&env(&[("LIFEBOAT_BUCKET", BUCKET)])).unwrap();
    let deps = monitor::Deps::new(&config, settings);
    let summary = monitor::handle(&deps, json!({})).await.unwrap();
    assert_eq!(summary.janitor_deleted, ["lifeboat-rt-old-202611010000"]);
    let groups = ec.describe_replication_groups().send().await.unwrap();
    let status: BTreeMap<&str, &str> = groups
        .replication_groups()
        .iter()
        .map(|g| (g.replication_group_id().unwrap(), g.status().unwrap()))
        .collect();
    assert_eq!(status["lifeboat-rt-old-202611010000"], "deleting");
    assert_eq!(status["lifeboat-rt-live-209901010000"], "available");
    assert_eq!(status["lifeboat-rt-foreign-202611010000"], "available");
}

/// The re-tagging attack on a cache: `lifeboat:backup=false` on `sessions` keeps its alarms and makes it a finding
/// of every run until a person confirms with `"cache"`; then its alarms go, and only its.
#[tokio::test]
async fn a_deselected_cache_keeps_its_alarms_until_a_person_confirms() {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let ec = aws_sdk_elasticache::Client::new(&config);
    let s3 = aws_sdk_s3::Client::new(&config);
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    fleet(&ec).await;
    let settings = MonitorSettings::from_env(&env(&[("LIFEBOAT_BUCKET", BUCKET)])).unwrap();
    let deps = monitor::Deps::new(&config, settings);
    let alarms = || async {
        let out = cw.describe_alarms().send().await.unwrap();
        let mut names: Vec<String> = out
            .metric_alarms()
            .iter()
            .filter_map(|a| a.alarm_name().map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    monitor::handle(&deps, json!({})).await.unwrap();
    let of = |names: &[String], cache: &str| {
        names
            .iter()
            .filter(|n| n.starts_with(&format!("lifeboat/prod/cache:{cache}/")))
            .count()
    };
    let before = alarms().await;
    let watched = of(&before, "sessions");
    assert!(watched > 0 && of(&before, "jobs") > 0, "{before:?}");

    let arn = ec
        .describe_replication_groups()
        .replication_group_id("sessions")
        .send()
        .await
        .unwrap()
        .replication_groups()[0]
        .arn()
        .unwrap()
        .to_owned();
    ec.add_tags_to_resource()
        .resource_name(arn)
        .tags(tag("lifeboat:backup", "false"))
        .send()
        .await
        .unwrap();
    let after = monitor::handle(&deps, json!({})).await.unwrap();
    assert_eq!(after.deselected, ["cache:sessions"]);
    assert!(
        after
            .attention
            .iter()
            .any(|n| n.starts_with("cache sessions: no longer selected for backup")
                && n.contains(r#""cache": "sessions""#)),
        "{:?}",
        after.attention
    );
    assert_eq!(alarms().await, before, "nothing deleted while unconfirmed");

    let confirmed = monitor::run(
        &deps,
        json!({"action": "confirm-deselection", "cache": "sessions", "by": "ops on call"}),
    )
    .await
    .unwrap();
    assert!(
        confirmed["record"]
            .as_str()
            .unwrap()
            .starts_with("records/deselections/caches/sessions/"),
        "{confirmed}"
    );
    assert_eq!(confirmed["alarms_deleted"].as_array().unwrap().len(), watched);
    let left = alarms().await;
    assert_eq!(of(&left, "sessions"), 0, "{left:?}");
    assert_eq!(of(&left, "jobs"), of(&before, "jobs"), "{left:?}");
    let last = monitor::handle(&deps, json!({})).await.unwrap();
    assert!(last.deselected.is_empty(), "{:?}", last.deselected);
}
