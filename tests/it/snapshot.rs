//! The `snapshot` handler against moto with a fleet: snapshots, tags, retention, DR copies and metrics.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use chrono::{DateTime, Duration, Utc};
use lifeboat::core::tags;
use lifeboat::rds::selection::DbKind;
use lifeboat::rds::settings::SnapshotSettings;
use lifeboat::rds::snapshots::{self as rds, Snapshot};
use lifeboat_tests::fleet;
use lifeboat_tests::moto::Moto;
use serde_json::{json, Value};
use snapshot::handler::Outcome;
use snapshot::{handle_at, Deps};

const REGION: &str = "us-east-1";
const DR_REGION: &str = "us-west-2";

fn settings(pairs: &[(&str, &str)]) -> SnapshotSettings {
    let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    SnapshotSettings::from_env(&move |name: &str| map.get(name).cloned()).unwrap()
}

async fn setup(pairs: &[(&str, &str)]) -> (Moto, Deps) {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let deps = Deps::new(&config, settings(pairs));
    fleet::create(&deps.rds, fleet::STANDARD).await;
    (moto, deps)
}

fn scheduled(time: &str) -> Value {
    json!({"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
           "account": "123456789012", "time": time, "region": REGION, "resources": [], "detail": {}})
}

fn day(n: i64) -> DateTime<Utc> {
    "2026-01-01T02:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::days(n - 1)
}

fn scheduled_day(n: i64) -> Value {
    scheduled(&day(n).to_rfc3339())
}

async fn manual_snapshots(rds: &aws_sdk_rds::Client) -> Vec<Snapshot> {
    rds::list_manual(rds).await.unwrap()
}

fn ids_of<'a>(snaps: &'a [Snapshot], db: &str) -> BTreeSet<&'a str> {
    snaps.iter().filter(|s| s.db == db).map(|s| s.id.as_str()).collect()
}

async fn metric_sum(cw: &aws_sdk_cloudwatch::Client, name: &str, db: &str) -> Option<f64> {
    let now = Utc::now();
    let out = cw
        .get_metric_statistics()
        .namespace("Lifeboat")
        .metric_name(name)
        .dimensions(Dimension::builder().name("DBIdentifier").value(db).build())
        .start_time(aws_smithy_types::DateTime::from_secs(
            (now - Duration::hours(1)).timestamp(),
        ))
        .end_time(aws_smithy_types::DateTime::from_secs(
            (now + Duration::hours(1)).timestamp(),
        ))
        .period(7200)
        .statistics(Statistic::Sum)
        .send()
        .await
        .unwrap();
    let points = out.datapoints();
    (!points.is_empty()).then(|| points.iter().filter_map(|p| p.sum()).sum())
}

#[tokio::test]
async fn scheduled_run_snapshots_the_tagged_fleet_and_publishes_metrics() {
    let (_moto, deps) = setup(&[]).await;
    let summary = handle_at(&deps, scheduled("2026-11-22T02:00:00Z"), Utc::now())
        .await
        .unwrap();

    let dbs: Vec<(&str, Outcome)> = summary.databases.iter().map(|r| (r.db.as_str(), r.outcome)).collect();
    assert_eq!(
        dbs,
        vec![
            ("analytics", Outcome::Created),
            ("app-prod", Outcome::Created),
            ("app-staging", Outcome::Created),
            ("billing", Outcome::Created)
        ],
        "the untagged `sandbox` and the cluster member `analytics-1` are not selected"
    );
    assert_eq!((summary.created, summary.failed), (4, 0));

    let snaps = manual_snapshots(&deps.rds).await;
    let owned: BTreeSet<(&str, DbKind)> = snaps
        .iter()
        .filter(|s| s.owned())
        .map(|s| (s.id.as_str(), s.kind))
        .collect();
    assert_eq!(
        owned,
        BTreeSet::from([
            ("lifeboat-analytics-20261122-0200", DbKind::Cluster),
            ("lifeboat-app-prod-20261122-0200", DbKind::Instance),
            ("lifeboat-app-staging-20261122-0200", DbKind::Instance),
            ("lifeboat-billing-20261122-0200", DbKind::Instance),
        ])
    );
    let s = snaps
        .iter()
        .find(|s| s.id == "lifeboat-app-prod-20261122-0200")
        .unwrap();
    assert_eq!(s.tags.get(tags::SOURCE).map(String::as_str), Some("schedule"));
    assert_eq!(
        s.tags.get(tags::CREATED_AT).map(String::as_str),
        Some("2026-11-22T02:00:00Z")
    );
    assert_eq!(s.tags.get(tags::DATABASE).map(String::as_str), Some("app-prod"));
    assert_eq!(
        s.tags.get(tags::POLICY).map(String::as_str),
        Some("daily=7 weekly=4 monthly=12 yearly=3")
    );

    let cw = aws_sdk_cloudwatch::Client::new(&_moto.config(REGION));
    assert_eq!(metric_sum(&cw, "SnapshotCreated", "app-prod").await, Some(1.0));
    assert_eq!(metric_sum(&cw, "SnapshotFailed", "app-prod").await, Some(0.0));
    assert_eq!(metric_sum(&cw, "SnapshotCreated", "analytics").await, Some(1.0));
    assert_eq!(metric_sum(&cw, "SnapshotCreated", "sandbox").await, None);
    assert_eq!(summary.quota[0].manual_snapshots, 4);
}

#[tokio::test]
async fn a_redelivered_event_makes_no_second_snapshot() {
    let (_moto, deps) = setup(&[]).await;
    let event = scheduled("2026-11-22T02:00:00Z");
    handle_at(&deps, event.clone(), Utc::now()).await.unwrap();
    let before = manual_snapshots(&deps.rds).await.len();
    let again = handle_at(&deps, event, Utc::now()).await.unwrap();
    assert!(
        again.databases.iter().all(|r| r.outcome == Outcome::AlreadyExists),
        "{again:#?}"
    );
    assert_eq!(again.created, 0);
    assert_eq!(manual_snapshots(&deps.rds).await.len(), before);
}

#[tokio::test]
async fn retention_keeps_the_gfs_set_and_never_touches_other_snapshots() {
    let (_moto, deps) = setup(&[("LIFEBOAT_RETENTION", "daily=3,weekly=3")]).await;
    // A snapshot someone took by hand: not Lifeboat's, so never deleted.
    deps.rds
        .create_db_snapshot()
        .db_instance_identifier("app-prod")
        .db_snapshot_identifier("before-upgrade-by-hand")
        .send()
        .await
        .unwrap();
    let mut last = None;
    for n in 1..=12 {
        last = Some(handle_at(&deps, scheduled_day(n), Utc::now()).await.unwrap());
    }
    let snaps = manual_snapshots(&deps.rds).await;
    // 2026-01-12 is a Monday. The run of day 12 sees days 1..11 (its own snapshot is still being made, so it
    // does not count yet): the newest (11), two more dailies (10, 9), and the newest of each of three ISO
    // weeks (W02: 11, W01: 4); plus the snapshot the run just made (12).
    let expected: BTreeSet<&str> = [
        "before-upgrade-by-hand",
        "lifeboat-app-prod-20260112-0200",
        "lifeboat-app-prod-20260111-0200",
        "lifeboat-app-prod-20260110-0200",
        "lifeboat-app-prod-20260109-0200",
        "lifeboat-app-prod-20260104-0200",
    ]
    .into();
    assert_eq!(ids_of(&snaps, "app-prod"), expected);

    let last = last.unwrap();
    let app = last.databases.iter().find(|r| r.db == "app-prod").unwrap();
    assert_eq!(app.deleted, vec!["lifeboat-app-prod-20260108-0200"]);
    assert!(
        app.retention.iter().all(|e| e.snapshot != "before-upgrade-by-hand"),
        "unowned snapshots are not even considered"
    );
    // Automated snapshots (moto makes one per instance) are untouched.
    let automated = deps
        .rds
        .describe_db_snapshots()
        .snapshot_type("automated")
        .send()
        .await
        .unwrap();
    assert!(automated
        .db_snapshots()
        .iter()
        .any(|s| s.db_instance_identifier() == Some("app-prod")));
}

#[tokio::test]
async fn a_database_that_is_not_available_fails_alone_and_keeps_its_snapshots() {
    let (moto, deps) = setup(&[("LIFEBOAT_RETENTION", "daily=1")]).await;
    for n in 1..=2 {
        handle_at(&deps, scheduled_day(n), Utc::now()).await.unwrap();
    }
    let billing_before = ids_of(&manual_snapshots(&deps.rds).await, "billing").len();
    assert_eq!(billing_before, 2);
    deps.rds
        .stop_db_instance()
        .db_instance_identifier("billing")
        .send()
        .await
        .unwrap();

    let err = handle_at(&deps, scheduled_day(3), Utc::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("snapshot failed for 1 of 4 databases: billing (NotAvailable: database is `stopped`"),
        "{err}"
    );

    let snaps = manual_snapshots(&deps.rds).await;
    assert_eq!(
        ids_of(&snaps, "billing").len(),
        billing_before,
        "nothing deleted for the failed database"
    );
    assert!(
        ids_of(&snaps, "app-prod").contains("lifeboat-app-prod-20260103-0200"),
        "the others were snapshotted"
    );
    assert!(
        !ids_of(&snaps, "app-prod").contains("lifeboat-app-prod-20260101-0200"),
        "and their retention ran"
    );
    let cw = aws_sdk_cloudwatch::Client::new(&moto.config(REGION));
    assert_eq!(metric_sum(&cw, "SnapshotFailed", "billing").await, Some(1.0));
}

#[tokio::test]
async fn manual_invocation_tags_the_reason_and_reports_unknown_databases() {
    let (_moto, deps) = setup(&[]).await;
    let now: DateTime<Utc> = "2026-11-22T10:15:30Z".parse().unwrap();
    let event =
        json!({"databases": ["app-prod", "sandbox", "ghost"], "reason": "before migration 0042", "retain_days": 7});
    let err = handle_at(&deps, event, now).await.unwrap_err().to_string();
    assert!(err.contains("ghost (NotFound"), "{err}");

    let snaps = manual_snapshots(&deps.rds).await;
    for db in ["app-prod", "sandbox"] {
        let id = format!("lifeboat-{db}-manual-20261122-101530");
        let s = snaps
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(s.tags.get(tags::SOURCE).map(String::as_str), Some("manual"));
        assert_eq!(
            s.tags.get(tags::REASON).map(String::as_str),
            Some("before migration 0042")
        );
        assert_eq!(
            s.tags.get(tags::EXPIRES_AT).map(String::as_str),
            Some("2026-11-29T10:15:30Z")
        );
    }
    assert_eq!(
        snaps.iter().filter(|s| s.owned()).count(),
        2,
        "only the named databases"
    );
}

#[tokio::test]
async fn finished_snapshots_are_copied_to_the_dr_region_with_retention_there() {
    let moto = Moto::start();
    let kms = aws_sdk_kms::Client::new(&moto.config(DR_REGION));
    let key = kms.create_key().send().await.unwrap();
    let key_arn = key.key_metadata().and_then(|k| k.arn()).unwrap().to_owned();
    let deps = Deps::new(
        &moto.config(REGION),
        settings(&[
            ("LIFEBOAT_RETENTION", "daily=2"),
            ("LIFEBOAT_DR_REGION", DR_REGION),
            ("LIFEBOAT_DR_KMS_KEY_ID", &key_arn),
        ]),
    );
    fleet::create(&deps.rds, fleet::STANDARD).await;
    let dr = deps.dr_rds.clone().unwrap();

    handle_at(&deps, scheduled_day(1), Utc::now()).await.unwrap();
    // RDS announces the finished snapshot; the event starts its copy.
    let event = json!({"version": "0", "id": "e2", "detail-type": "RDS DB Snapshot Event", "source": "aws.rds",
        "account": "123456789012", "time": "2026-01-01T02:09:00Z", "region": REGION,
        "resources": ["arn:aws:rds:us-east-1:123456789012:snapshot:lifeboat-app-prod-20260101-0200"],
        "detail": {"EventCategories": ["creation"], "SourceType": "SNAPSHOT",
                   "SourceArn": "arn:aws:rds:us-east-1:123456789012:snapshot:lifeboat-app-prod-20260101-0200",
                   "Date": "2026-01-01T02:09:00Z", "Message": "Manual snapshot created",
                   "SourceIdentifier": "lifeboat-app-prod-20260101-0200", "EventID": "RDS-EVENT-0042"}});
    let summary = handle_at(&deps, event.clone(), Utc::now()).await.unwrap();
    assert_eq!(summary.databases[0].outcome, Outcome::Copied);
    let copies = manual_snapshots(&dr).await;
    let copy = copies
        .iter()
        .find(|s| s.id == "lifeboat-app-prod-20260101-0200")
        .expect("copy in the DR region");
    assert!(copy.owned());
    assert_eq!(
        copy.tags.get(tags::COPY_OF).map(String::as_str),
        Some("arn:aws:rds:us-east-1:123456789012:snapshot:lifeboat-app-prod-20260101-0200")
    );
    // The same event again is a no-op.
    let again = handle_at(&deps, event, Utc::now()).await.unwrap();
    assert_eq!(
        again.databases[0].detail.as_deref(),
        Some("already copied to the DR region")
    );

    // Later scheduled runs copy what the DR region lacks (clusters too) and expire copies by the same policy.
    for n in 2..=5 {
        handle_at(&deps, scheduled_day(n), Utc::now()).await.unwrap();
    }
    let copies = manual_snapshots(&dr).await;
    // Run 5 copies day 4 (day 5's snapshot is still being made when the run lists the source) and applies
    // daily=2 to the copies it found (days 1-3): the newest (3) and one more daily (2) stay.
    assert_eq!(
        ids_of(&copies, "app-prod"),
        BTreeSet::from([
            "lifeboat-app-prod-20260102-0200",
            "lifeboat-app-prod-20260103-0200",
            "lifeboat-app-prod-20260104-0200"
        ]),
    );
    assert!(ids_of(&copies, "analytics").contains("lifeboat-analytics-20260104-0200"));
    assert!(copies.iter().all(|s| s.owned()));
    let cw = aws_sdk_cloudwatch::Client::new(&moto.config(REGION));
    assert!(metric_sum(&cw, "SnapshotCopiesStarted", "app-prod").await.unwrap() >= 3.0);
}

#[tokio::test]
async fn events_for_snapshots_lifeboat_does_not_own_are_ignored() {
    let (_moto, deps) = setup(&[]).await;
    deps.rds
        .create_db_snapshot()
        .db_instance_identifier("app-prod")
        .db_snapshot_identifier("lifeboat-lookalike")
        .send()
        .await
        .unwrap();
    let event = json!({"detail-type": "RDS DB Snapshot Event", "source": "aws.rds", "time": "2026-01-01T02:09:00Z",
        "detail": {"SourceIdentifier": "lifeboat-lookalike", "EventID": "RDS-EVENT-0042"}});
    let summary = handle_at(&deps, event, Utc::now()).await.unwrap();
    assert_eq!(summary.databases[0].outcome, Outcome::Ignored);
    assert_eq!(summary.databases[0].detail.as_deref(), Some("not a Lifeboat snapshot"));
}

#[tokio::test]
async fn the_newest_snapshot_is_shared_with_the_configured_accounts() {
    let (_moto, deps) = setup(&[("LIFEBOAT_SHARE_ACCOUNTS", "210987654321")]).await;
    handle_at(&deps, scheduled_day(1), Utc::now()).await.unwrap();
    // The second run sees day 1's snapshot available and shares it; day 2's is shared by the next run
    // (or at once by the RDS event).
    let summary = handle_at(&deps, scheduled_day(2), Utc::now()).await.unwrap();
    let app = summary.databases.iter().find(|r| r.db == "app-prod").unwrap();
    assert_eq!(app.shared, vec!["lifeboat-app-prod-20260101-0200"]);
    let attrs = deps
        .rds
        .describe_db_snapshot_attributes()
        .db_snapshot_identifier("lifeboat-app-prod-20260101-0200")
        .send()
        .await
        .unwrap();
    let restore: Vec<&str> = attrs
        .db_snapshot_attributes_result()
        .unwrap()
        .db_snapshot_attributes()
        .iter()
        .filter(|a| a.attribute_name() == Some("restore"))
        .flat_map(|a| a.attribute_values().iter().map(String::as_str))
        .collect();
    assert_eq!(restore, vec!["210987654321"]);
}

/// Issue 12, item 13: a scheduled event dated in the future (a replayed or forged event, a scheduler with a wrong
/// clock) cannot expire anything early: retention runs by the earlier of the event's time and the wall clock.
#[tokio::test]
async fn an_event_dated_in_the_future_expires_nothing_early() {
    let (_moto, deps) = setup(&[("LIFEBOAT_RETENTION", "daily=7")]).await;
    handle_at(&deps, scheduled_day(1), day(1)).await.unwrap();
    // A manual snapshot kept for 7 days: it may go on day 9, not before.
    let manual = json!({"databases": ["app-prod"], "reason": "before migration 0042", "retain_days": 7});
    handle_at(&deps, manual, day(2)).await.unwrap();
    handle_at(&deps, scheduled_day(3), day(3)).await.unwrap();
    let manual_id = "lifeboat-app-prod-manual-20260102-020000";
    assert!(ids_of(&manual_snapshots(&deps.rds).await, "app-prod").contains(manual_id));

    // On day 4, an event that says it is a year later.
    let summary = handle_at(&deps, scheduled_day(400), day(4)).await.unwrap();
    let app = summary.databases.iter().find(|r| r.db == "app-prod").unwrap();
    assert_eq!(app.outcome, Outcome::Created, "the run's own snapshot is still taken");
    assert!(app.deleted.is_empty(), "{app:#?}");
    assert!(
        ids_of(&manual_snapshots(&deps.rds).await, "app-prod").contains(manual_id),
        "the manual snapshot is kept until its own expiry time"
    );

    // On its expiry day, an ordinary run expires it.
    let summary = handle_at(&deps, scheduled_day(9), day(9)).await.unwrap();
    let app = summary.databases.iter().find(|r| r.db == "app-prod").unwrap();
    assert_eq!(app.deleted, vec![manual_id]);
}
