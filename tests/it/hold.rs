//! What happens on a content anomaly, against moto and a real PostgreSQL: a comparison with findings beside a
//! new export's manifest opens an anomaly that holds the last good export and the snapshots from before it; the
//! export function's and the snapshot function's retention keep them while it is open and expire them normally
//! once a person has acknowledged it (through monitor's console action); monitor publishes `ContentAnomalies`
//! under the database's `content` alarm, refuses an acknowledgement when nothing is open, and opens an anomaly
//! the export missed.
//!
//! The comparison itself (`Watch`) is written here by hand: the comparisons are another module's business.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use chrono::{DateTime, Duration, Utc};
use lifeboat::bucket::layout;
use lifeboat::plans::store::Location;
use lifeboat::watch::record::{anomaly_key, watch_key_of, Anomaly, Finding, Watch, DATABASE, FORMAT_VERSION};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::Postgres;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const PLAN_BUCKET: &str = "lifeboat-plans";
const PLAN_KEY: &str = "lifeboat/plans.json";
const DB: &str = "hold-db";

/// A daily export kept one day, one daily snapshot kept (retention runs over the snapshots before the run's own):
/// without a hold, the restore points from before an anomaly are gone within two days.
const PLAN: &str = r#"{
  "format": 1,
  "plans": {
    "app": {
      "databases": ["hold-db"],
      "snapshots": {"schedule": "0 1 * * *", "retention": {"daily": 1}},
      "exports": {"full": {"schedule": "0 2 * * *", "keep_days": 1}}
    }
  }
}"#;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct World {
    _moto: Moto,
    _pg: Postgres,
    config: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
    export: export::Deps,
    clock: std::sync::Arc<std::sync::atomic::AtomicI64>,
    snapshot: snapshot::Deps,
}

async fn world() -> World {
    let moto = Moto::start();
    let pg = Postgres::start();
    pg.psql("postgres", "create database app").unwrap();
    pg.psql(
        "app",
        "create table users (id int primary key); insert into users select generate_series(1, 50);",
    )
    .unwrap();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    lifeboat_tests::plans::buckets_with_plan(&s3, BUCKET, PLAN_BUCKET, PLAN_KEY, PLAN.as_bytes()).await;
    lifeboat_tests::plans::database_on(&config, &pg, DB, "app", &[]).await;
    let document = format!("s3://{PLAN_BUCKET}/{PLAN_KEY}");
    let (export, clock) = lifeboat_tests::plans::export_deps(&config, BUCKET, &document);
    let settings =
        lifeboat::rds::settings::SnapshotSettings::from_env(&|n: &str| (n == "LIFEBOAT_BUCKET").then(|| BUCKET.into()))
            .unwrap();
    let snapshot = snapshot::Deps::new(&config, settings).with_plan(Some(Location {
        bucket: PLAN_BUCKET.into(),
        key: PLAN_KEY.into(),
    }));
    World {
        _moto: moto,
        _pg: pg,
        s3,
        config,
        export,
        clock,
        snapshot,
    }
}

impl World {
    /// One tick to both functions, each on time.
    async fn tick(&self, t: DateTime<Utc>) -> (Value, snapshot::handler::Summary) {
        self.clock.store(t.timestamp(), Ordering::SeqCst);
        let snap = snapshot::handle_at(&self.snapshot, lifeboat_tests::plans::tick(t), t + Duration::minutes(1))
            .await
            .unwrap_or_else(|e| panic!("snapshot tick at {t}: {e}"));
        let export = export::invoke(&self.export, lifeboat_tests::plans::tick(t), None)
            .await
            .unwrap_or_else(|e| panic!("export tick at {t}: {e}"));
        (export, snap)
    }

    fn monitor_deps(&self) -> monitor::Deps {
        let document = format!("s3://{PLAN_BUCKET}/{PLAN_KEY}");
        let vars: BTreeMap<&str, String> = [
            ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
            ("LIFEBOAT_PLAN_DOCUMENT", document),
            ("LIFEBOAT_STACK_NAME", "prod".to_owned()),
        ]
        .into();
        let settings = monitor::settings::MonitorSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
        monitor::Deps::new(&self.config, settings)
    }

    /// The content alarm's ALARM message as notify writes it (to an SNS topic in moto).
    async fn notify_content_alarm(&self) -> String {
        let sns = aws_sdk_sns::Client::new(&self.config);
        let topic = sns.create_topic().name("lifeboat-alarms").send().await.unwrap();
        let vars: BTreeMap<&str, String> = [
            ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
            ("LIFEBOAT_STACK_NAME", "prod".to_owned()),
            ("LIFEBOAT_NOTIFY_TOPIC_ARN", topic.topic_arn().unwrap().to_owned()),
        ]
        .into();
        let settings = notify::settings::NotifySettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
        let deps = notify::Deps::new(&self.config, settings);
        let name = "lifeboat/prod/hold-db/content";
        let event = json!({
            "version": "0", "id": "content", "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-10-02T03:00:00Z",
            "region": REGION, "resources": [format!("arn:aws:cloudwatch:{REGION}:123456789012:alarm:{name}")],
            "detail": {
                "alarmName": name,
                "state": {"value": "ALARM", "reason": "Threshold Crossed: 1 datapoint [1.0] was greater than the threshold (0.0).",
                          "timestamp": "2026-10-02T03:00:00.000+0000"},
                "previousState": {"value": "OK", "reason": "", "timestamp": "2026-10-01T03:00:00.000+0000"}
            }
        });
        let sent = notify::handle(&deps, event).await.unwrap();
        assert_eq!(sent["sent"], true, "{sent}");
        sent["text"].as_str().unwrap().to_owned()
    }

    async fn snapshots(&self) -> Vec<String> {
        let mut ids: Vec<String> = lifeboat::rds::snapshots::list_manual(&self.snapshot.rds)
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.db == DB)
            .map(|s| s.id)
            .collect();
        ids.sort();
        ids
    }

    async fn manifests(&self) -> Vec<String> {
        layout::export_manifest_keys(&self.s3, BUCKET, DB, Some("full"))
            .await
            .unwrap()
    }

    /// `ContentAnomalies` of the database as published in the minute of `t`.
    async fn content_anomalies(&self, t: DateTime<Utc>) -> Vec<f64> {
        let cw = aws_sdk_cloudwatch::Client::new(&self.config);
        let secs = |t: DateTime<Utc>| aws_sdk_cloudwatch::primitives::DateTime::from_secs(t.timestamp());
        let out = cw
            .get_metric_statistics()
            .namespace("Lifeboat")
            .metric_name("ContentAnomalies")
            .dimensions(Dimension::builder().name("DBIdentifier").value(DB).build())
            .start_time(secs(t - Duration::minutes(1)))
            .end_time(secs(t + Duration::minutes(1)))
            .period(60)
            .statistics(Statistic::Maximum)
            .send()
            .await
            .unwrap();
        out.datapoints().iter().filter_map(|d| d.maximum()).collect()
    }
}

fn manifest_at(t: DateTime<Utc>) -> String {
    layout::export_keys(DB, "full", t, false).1
}

/// The comparison a mass delete would leave beside the manifest of the export at `t` (compared with `before`).
fn mass_delete(t: DateTime<Utc>, before: DateTime<Utc>) -> Watch {
    Watch {
        format_version: FORMAT_VERSION,
        manifest_key: manifest_at(t),
        watched_at: t,
        compared_with: Some(manifest_at(before)),
        history: vec![manifest_at(before)],
        findings: vec![Finding {
            kind: "rows-dropped".into(),
            object: "public.users".into(),
            before: Some(12030.0),
            after: Some(8301.0),
            line: "public.users: 12,030 rows in the backup of 2026-10-01, 8,301 in today's, -31%".into(),
        }],
        drift: None,
        drift_summary: None,
    }
}

async fn anomaly(s3: &aws_sdk_s3::Client, key: &str) -> Anomaly {
    layout::get_json(s3, BUCKET, key).await.unwrap()
}

/// The issue's promise: the pre-anomaly snapshot and export survive a retention run while the anomaly is
/// unacknowledged, and expire normally after the acknowledgement.
#[tokio::test]
async fn the_last_good_export_and_snapshots_are_held_until_a_person_acknowledges() {
    let w = world().await;
    let (d1, d2, d3, d4) = (
        at("2026-10-01T00:00:00Z"),
        at("2026-10-02T00:00:00Z"),
        at("2026-10-03T00:00:00Z"),
        at("2026-10-04T00:00:00Z"),
    );
    let (e1, e2) = (d1 + Duration::hours(2), d2 + Duration::hours(2));
    w.tick(d1 + Duration::hours(1)).await;
    w.tick(e1).await;
    w.tick(d2 + Duration::hours(1)).await;
    let before = w.snapshots().await;
    assert_eq!(before.len(), 2, "{before:?}");

    // The comparison of the day-2 export finds a mass delete: written where the watch writes it (beside the
    // manifest the tick is about to write), the export function opens the anomaly right after its manifest.
    let watch = mass_delete(e2, e1);
    lifeboat_tests::plans::put_json(&w.s3, BUCKET, &watch_key_of(&manifest_at(e2)).unwrap(), &watch).await;
    w.tick(e2).await;
    let key = anomaly_key(DATABASE, DB, "full", e2);
    let opened = anomaly(&w.s3, &key).await;
    assert!(opened.is_open());
    assert_eq!(opened.held.manifests, [manifest_at(e1)]);
    assert_eq!(
        opened.held.snapshots, before,
        "the snapshot before the baseline and the one up to the anomaly"
    );
    assert_eq!(opened.findings, watch.findings);

    // Monitor: one open anomaly, published under the database's content alarm, named in the findings.
    let monitor = w.monitor_deps();
    let now = d2 + Duration::hours(3);
    let summary = monitor::handle_at(&monitor, json!({}), now).await.unwrap();
    assert_eq!(w.content_anomalies(now).await, [1.0]);
    assert!(
        summary
            .attention
            .iter()
            .any(|n| n.contains("content anomaly") && n.contains("public.users")),
        "{:?}",
        summary.attention
    );
    let cw = aws_sdk_cloudwatch::Client::new(&w.config);
    let alarms = lifeboat_tests::plans::lifeboat_alarms(&cw).await;
    let content = alarms
        .iter()
        .find(|a| a.alarm_name() == Some("lifeboat/prod/hold-db/content"))
        .expect("the content alarm");
    assert_eq!(content.metric_name(), Some("ContentAnomalies"));
    assert_eq!(content.threshold(), Some(0.0));

    // The content alarm's notification names the table and both counts, from the open anomaly's record.
    let text = w.notify_content_alarm().await;
    assert!(
        text.starts_with("[ALARM] hold-db: the content of hold-db's backups changed beyond its thresholds\n"),
        "{text}"
    );
    assert!(
        text.contains("  - public.users: 12,030 rows in the backup of 2026-10-01, 8,301 in today's, -31%\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Held until acknowledged: 2 snapshot(s), 1 export(s); record: {key}"
        )),
        "{text}"
    );

    // Day 3: retention would expire the day-1 snapshot (daily=1) and the day-1 export (keep_days=1); both stay.
    let (_, snap3) = w.tick(d3 + Duration::hours(1)).await;
    assert!(w.snapshots().await.contains(&before[0]), "the held snapshot expired");
    let decisions = serde_json::to_value(&snap3.databases).unwrap();
    assert_eq!(decisions[0]["deleted"], json!([]), "{decisions}");
    let kept = decisions[0]["retention"].as_array().unwrap();
    assert!(
        kept.iter()
            .any(|e| e["snapshot"] == before[0].as_str() && e["decision"] == "keep_held"),
        "{decisions}"
    );
    let held = serde_json::to_string(&w.tick(d3 + Duration::hours(2)).await.0["held"]).unwrap();
    assert!(
        held.contains(&key),
        "the export's summary says why it kept the day-1 export: {held}"
    );
    assert!(w.manifests().await.contains(&manifest_at(e1)));

    // A person acknowledges through the console action; a second acknowledgement finds nothing open.
    let ack = json!({"action": "acknowledge", "resource": DB, "why": "OPS-1311: the purge was planned", "by": "ana"});
    let done = monitor::run_at(&monitor, ack.clone(), d3 + Duration::hours(3))
        .await
        .unwrap();
    assert_eq!(done["key"], key.as_str());
    let closed = anomaly(&w.s3, &key).await;
    let recorded = closed.acknowledged.expect("acknowledged");
    assert_eq!((recorded.by.as_str(), recorded.by_stated), ("ana", true));
    assert_eq!(recorded.why, "OPS-1311: the purge was planned");
    // The evidence report of the month has the anomaly: what it found and held, who acknowledged it, when, why.
    let written = monitor::run_at(
        &monitor,
        json!({"action": "evidence-report", "period": "2026-10"}),
        at("2026-11-02T00:00:00Z"),
    )
    .await
    .unwrap();
    let report: Value = layout::get_json(&w.s3, BUCKET, written["json_key"].as_str().unwrap())
        .await
        .unwrap();
    let section = &report["anomalies"][0];
    assert_eq!(section["key"], key.as_str(), "{report}");
    assert_eq!(section["held_snapshots"], json!(before));
    assert_eq!(section["acknowledged"]["by"], "ana");
    assert_eq!(section["acknowledged"]["why"], "OPS-1311: the purge was planned");
    let refused = monitor::run_at(&monitor, ack, d3 + Duration::hours(3))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("no open content anomaly"), "{refused}");
    let now = d3 + Duration::hours(4);
    monitor::handle_at(&monitor, json!({}), now).await.unwrap();
    assert_eq!(w.content_anomalies(now).await, [0.0]);

    // Day 4: released, they expire as the plan says.
    let (_, snap4) = w.tick(d4 + Duration::hours(1)).await;
    let left = w.snapshots().await;
    assert!(!left.contains(&before[0]) && !left.contains(&before[1]), "{left:?}");
    let mut deleted = snap4.databases[0].deleted.clone();
    deleted.sort();
    assert_eq!(deleted, before);
    w.tick(d4 + Duration::hours(2)).await;
    let manifests = w.manifests().await;
    assert!(!manifests.contains(&manifest_at(e1)), "{manifests:?}");
}

/// An open anomaly of `db`'s `full` exports, written as `open_for` writes one.
fn open_anomaly(db: &str, seen_at: DateTime<Utc>) -> (String, Anomaly) {
    let watch = Watch {
        manifest_key: layout::export_keys(db, "full", seen_at, false).1,
        compared_with: Some(layout::export_keys(db, "full", seen_at - Duration::days(1), false).1),
        ..mass_delete(seen_at, seen_at - Duration::days(1))
    };
    match lifeboat::watch::hold::opening(&watch, &[], vec!["lifeboat-snap-1".into()]) {
        Some(lifeboat::watch::hold::Opening::Open { key, anomaly }) => (key, anomaly),
        other => panic!("not opened: {other:?}"),
    }
}

/// `lifeboat acknowledge` records the caller's AWS identity (moto's STS answer), never a typed name; with
/// nothing open it is refused (exit 4) and writes nothing.
#[tokio::test]
async fn the_lifeboat_tool_acknowledges_as_the_callers_arn_and_refuses_when_nothing_is_open() {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    lifeboat_tests::plans::versioned_bucket(&s3, BUCKET).await;
    let (key, open) = open_anomaly("app-db", at("2026-10-02T02:00:00Z"));
    lifeboat_tests::plans::put_json(&s3, BUCKET, &key, &open).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--json", "acknowledge"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--bucket", BUCKET]);
        crate::cli::command(&moto.endpoint, dir.path(), &all).output().unwrap()
    };

    let out = run(&["app-db", "--why", "OPS-1311: the purge was planned"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["key"], key.as_str());
    assert_eq!(result["released"]["snapshots"], json!(["lifeboat-snap-1"]));
    let done = anomaly(&s3, &key).await.acknowledged.expect("acknowledged");
    assert!(
        done.by.starts_with("arn:aws:"),
        "the caller's ARN, from STS: {}",
        done.by
    );
    assert!(!done.by_stated);
    assert_eq!(done.why, "OPS-1311: the purge was planned");

    let again = run(&["app-db", "--why", "again"]);
    assert_eq!(
        again.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("no open content anomaly"));
    assert_eq!(
        anomaly(&s3, &key).await.acknowledged.unwrap().why,
        done.why,
        "nothing rewritten"
    );
    let nobody = run(&["other-db", "--why", "x"]);
    assert_eq!(nobody.status.code(), Some(4));
}

/// A comparison with findings that no anomaly covers (the export's own step failed, or never ran) is opened by
/// monitor's next run, holding the baseline and Lifeboat's snapshots from it; a second run opens nothing more.
#[tokio::test]
async fn monitor_opens_an_anomaly_the_export_missed_within_the_hour() {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    lifeboat_tests::plans::versioned_bucket(&s3, BUCKET).await;
    let rds = aws_sdk_rds::Client::new(&config);
    lifeboat_tests::plans::instance(&rds, "app-db", &[("lifeboat:backup", "true")], 7).await;
    let seen = at("2026-10-02T02:00:00Z");
    let watch = Watch {
        manifest_key: layout::export_keys("app-db", "full", seen, false).1,
        compared_with: Some(layout::export_keys("app-db", "full", seen - Duration::days(1), false).1),
        ..mass_delete(seen, seen - Duration::days(1))
    };
    lifeboat_tests::plans::put_json(&s3, BUCKET, &watch_key_of(&watch.manifest_key).unwrap(), &watch).await;
    let vars: BTreeMap<&str, String> = [
        ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
        ("LIFEBOAT_STACK_NAME", "prod".to_owned()),
        ("LIFEBOAT_EXPORT_MAX_AGE_HOURS", "full=26".to_owned()),
    ]
    .into();
    let settings = monitor::settings::MonitorSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
    let deps = monitor::Deps::new(&config, settings);
    monitor::handle(&deps, json!({})).await.unwrap();
    let key = anomaly_key(DATABASE, "app-db", "full", seen);
    let opened = anomaly(&s3, &key).await;
    assert!(opened.is_open());
    assert_eq!(opened.held.manifests, [watch.compared_with.clone().unwrap()]);
    assert_eq!(opened.findings, watch.findings);
    monitor::handle(&deps, json!({})).await.unwrap();
    let records = lifeboat::watch::hold::read_anomalies(&s3, BUCKET, DATABASE, "app-db", None)
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "one episode, one record");
    assert!(
        records[0].1.also_seen_in.is_empty(),
        "the same backup is not added twice"
    );
}
