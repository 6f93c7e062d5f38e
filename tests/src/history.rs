//! A fleet with three weeks and more of backup history in the emulator, for the evidence report's tests, its browser test
//! and the book's picture: snapshots tagged as the snapshot function tags them, export manifests where the
//! export function writes them, and restore-test reports where the restore function writes them, with one
//! missed day, one failed restore test and one database that was never exported.

use aws_sdk_rds::types::Tag;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use lifeboat::bucket::layout;
use lifeboat::bucket::manifest::{self, Manifest};
use lifeboat::rds::restore::{Check, Report};
use lifeboat::rds::selection::DbKind;
use serde_json::json;

/// Days of history before today.
pub const DAYS: i64 = 24;
/// app-prod's snapshot and export of this many days ago never happened.
pub const MISSED_DAYS_AGO: i64 = 5;
/// app-prod's restore test of this many days ago failed (its last one).
pub const FAILED_TEST_DAYS_AGO: i64 = 3;
pub const RETENTION: &str = "daily=30,weekly=4,monthly=12,yearly=3";

/// The day `days_ago` days before `now`'s day.
pub fn day(now: DateTime<Utc>, days_ago: i64) -> NaiveDate {
    now.date_naive() - Duration::days(days_ago)
}

fn at(now: DateTime<Utc>, days_ago: i64, hour: i64) -> DateTime<Utc> {
    day(now, days_ago).and_time(chrono::NaiveTime::MIN).and_utc() + Duration::hours(hour)
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

async fn instance(rds: &aws_sdk_rds::Client, id: &str) {
    rds.create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t4g.micro")
        .engine("postgres")
        .engine_version("16.4")
        .allocated_storage(20)
        .master_username("lifeboat_admin")
        .master_user_password("not-a-real-password-1")
        .storage_encrypted(true)
        .backup_retention_period(7)
        .deletion_protection(id != "billing")
        .tags(tag("lifeboat:backup", "true"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating instance {id}: {e:?}"));
}

async fn snapshot(rds: &aws_sdk_rds::Client, db: &str, t: DateTime<Utc>) {
    let id = lifeboat::rds::naming::snapshot_id(db, lifeboat::rds::naming::SnapshotKind::Schedule, t);
    let tags = lifeboat::rds::snapshot_tags::snapshot_tags(
        db,
        lifeboat::rds::naming::SnapshotKind::Schedule,
        t,
        RETENTION,
        None,
    );
    rds.create_db_snapshot()
        .db_instance_identifier(db)
        .db_snapshot_identifier(&id)
        .set_tags(Some(lifeboat::rds::snapshots::to_tags(&tags)))
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating snapshot {id}: {e:?}"));
}

/// A manifest as the export function writes it, with a stored size and duration that grow a little each day.
fn manifest(bucket_name: &str, db: &str, t: DateTime<Utc>, base_mib: u64, days_ago: i64) -> (String, Manifest) {
    let (dump, key) = layout::export_keys(db, "full", t, false);
    let growth = (DAYS - days_ago) as u64;
    let stored = (base_mib + 2 * growth) * 1024 * 1024;
    let duration = 60.0 + 1.5 * growth as f64;
    let digest = manifest::Digest {
        bytes: stored * 4,
        sha256: "0".repeat(64),
    };
    let m = serde_json::from_value(json!({
        "format_version": manifest::FORMAT_VERSION, "lifeboat_version": lifeboat::core::VERSION, "database": db,
        "profile": "full", "logical_time": t, "started_at": t, "finished_at": t + Duration::seconds(duration as i64),
        "duration_seconds": duration,
        "source": {"engine": "postgres", "server_version": "16.4", "dbname": "app", "database_size_bytes": stored * 5},
        "pg_dump_version": "16.4", "tables": [{"schema": "public", "name": "users", "rows": 1200}],
        "plaintext": digest,
        "stored": {"bucket": bucket_name, "key": dump, "bytes": stored, "sha256": "0".repeat(64), "parts": 1,
                   "sse": "aws:kms", "kms_key_id": null, "object_lock_until": null},
        "compression": {"algorithm": "zstd", "level": 1}, "encryption": null,
        "verification": {"method": "pg_restore -f /dev/null over the whole stream", "pg_restore_version": "16.4"}
    }))
    .unwrap();
    (key, m)
}

async fn put(s3: &aws_sdk_s3::Client, bucket_name: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket_name)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("putting {key}: {e:?}"));
}

/// A restore-test report as the restore function writes it (its shared type), passed or failed on a check.
async fn restore_test(
    s3: &aws_sdk_s3::Client,
    bucket_name: &str,
    db: &str,
    t: DateTime<Utc>,
    result: (bool, f64, f64),
) {
    let (passed, rto, rpo) = result;
    let check = match passed {
        true => Check::new("row-count:public.users", true, "1200 rows, as the manifest says"),
        false => Check::new("row-count:public.users", false, "0 rows restored, 1200 in the manifest"),
    };
    let report = Report {
        format_version: 1,
        lifeboat_version: lifeboat::core::VERSION.to_owned(),
        database: db.to_owned(),
        kind: DbKind::Instance,
        restored_id: lifeboat::rds::restore::test_identifier(db, t),
        snapshot_id: lifeboat::rds::naming::snapshot_id(db, lifeboat::rds::naming::SnapshotKind::Schedule, t),
        snapshot_time: t - Duration::seconds(rpo as i64),
        requested_at: t,
        verified_at: Some(t + Duration::seconds(rto as i64)),
        passed,
        rto_seconds: passed.then_some(rto),
        rpo_seconds: rpo,
        timings_seconds: Default::default(),
        checks: vec![check],
        error: None,
        export: None,
        recovery_point_time: Some(t - Duration::seconds(rpo as i64)),
        recovery_choice: None,
        point_in_time: None,
        data_reaches: None,
    };
    let key = format!("{}.json", layout::restore_report_base(db, t));
    put(s3, bucket_name, &key, serde_json::to_vec(&report).unwrap()).await;
}

/// app-prod (misses a day, its last restore test failed), billing (never exported), analytics (meets its
/// policy): created, with `DAYS` days of history before `now`. The bucket must exist.
pub async fn seed(config: &aws_config::SdkConfig, bucket_name: &str, now: DateTime<Utc>) {
    let rds = aws_sdk_rds::Client::new(config);
    let s3 = aws_sdk_s3::Client::new(config);
    for (db, base_mib) in [("app-prod", 180), ("billing", 0), ("analytics", 40)] {
        instance(&rds, db).await;
        for days_ago in 1..=DAYS {
            if db == "app-prod" && days_ago == MISSED_DAYS_AGO {
                continue;
            }
            let t = at(now, days_ago, 2);
            snapshot(&rds, db, t).await;
            if db != "billing" {
                let (key, m) = manifest(bucket_name, db, t, base_mib, days_ago);
                put(&s3, bucket_name, &key, serde_json::to_vec(&m).unwrap()).await;
            }
        }
    }
    let tests = [
        ("app-prod", 10, (true, 1500.0, 5400.0)),
        ("app-prod", FAILED_TEST_DAYS_AGO, (false, 0.0, 5400.0)),
        ("billing", 6, (true, 2400.0, 93600.0)),
        ("analytics", 2, (true, 1200.0, 3600.0)),
    ];
    for (db, days_ago, result) in tests {
        restore_test(&s3, bucket_name, db, at(now, days_ago, 3), result).await;
    }
}
