//! `monitor` and `notify` against moto (RDS, S3, CloudWatch, SNS, SQS, Secrets Manager) and a local HTTP server
//! standing in for the chat webhook.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_rds::types::Tag;
use lifeboat_tests::moto::Moto;
use lifeboat_tests::plans::instance;
use lifeboat_tests::repo_root;
use monitor::settings::MonitorSettings;
use notify::settings::NotifySettings;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";

/// The variables given, over the stack name every monitor and notify needs (`LIFEBOAT_STACK_NAME`, here `prod`: the
/// alarms these tests read are `lifeboat/prod/<subject>/<check>`).
fn env(pairs: &[(&str, &str)]) -> impl lifeboat::core::settings::Env {
    let mut map: BTreeMap<String, String> = BTreeMap::from([("LIFEBOAT_STACK_NAME".to_owned(), "prod".to_owned())]);
    map.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    move |n: &str| map.get(n).cloned()
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, body: Value) {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(body.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

#[tokio::test]
async fn monitor_publishes_freshness_keeps_one_alarm_set_per_database_and_cleans_up_expired_tests() {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let rds = aws_sdk_rds::Client::new(&config);
    let s3 = aws_sdk_s3::Client::new(&config);
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns.create_topic().name("lifeboat-alarms").send().await.unwrap();
    let topic = topic.topic_arn().unwrap().to_owned();

    let backup = [("lifeboat:backup", "true")];
    for db in ["fresh", "stale"] {
        instance(&rds, db, &backup, 7).await;
    }
    instance(&rds, "missing", &backup, 0).await;
    // moto takes an automated snapshot even with retention 0, where RDS takes none: remove it.
    let automated = rds
        .describe_db_snapshots()
        .db_instance_identifier("missing")
        .send()
        .await
        .unwrap();
    for s in automated.db_snapshots() {
        rds.delete_db_snapshot()
            .db_snapshot_identifier(s.db_snapshot_identifier().unwrap())
            .send()
            .await
            .unwrap();
    }
    let now = chrono::Utc::now();
    for db in ["fresh", "stale"] {
        rds.create_db_snapshot()
            .db_instance_identifier(db)
            .db_snapshot_identifier(format!("lifeboat-{db}-1"))
            .send()
            .await
            .unwrap();
    }
    let old = now - chrono::Duration::days(3);
    for (db, at) in [("fresh", now), ("stale", old)] {
        let key = format!(
            "exports/{db}/full/{}/{db}-full-{}.manifest.json",
            at.format("%Y/%m/%d"),
            stamp(at)
        );
        put(&s3, &key, json!({"database": db})).await;
    }
    put(
        &s3,
        &format!("reports/restore-tests/fresh/{}.json", stamp(now)),
        json!({"passed": true}),
    )
    .await;
    put(
        &s3,
        &format!(
            "reports/restore-tests/stale/{}.json",
            stamp(now - chrono::Duration::days(200))
        ),
        json!({"passed": false}),
    )
    .await;
    // Restore-test leftovers: one past its expiry, one still running.
    let past = (now - chrono::Duration::hours(1)).to_rfc3339();
    let future = (now + chrono::Duration::hours(5)).to_rfc3339();
    for (id, expires) in [
        ("lifeboat-rt-fresh-202611220300", past.as_str()),
        ("lifeboat-rt-stale-202611221000", future.as_str()),
    ] {
        instance(
            &rds,
            id,
            &[("lifeboat:restore-test", "true"), ("lifeboat:expires-at", expires)],
            0,
        )
        .await;
    }

    let settings = MonitorSettings::from_env(&env(&[
        ("LIFEBOAT_BUCKET", BUCKET),
        ("LIFEBOAT_ALARM_TOPIC_ARN", &topic),
        ("LIFEBOAT_EXPORT_MAX_AGE_HOURS", "full=26"),
    ]))
    .unwrap();
    let deps = monitor::Deps::new(&config, settings);
    let summary = monitor::handle(&deps, json!({})).await.unwrap();
    let view: BTreeMap<&str, &monitor::handler::DbView> =
        summary.databases.iter().map(|v| (v.db.as_str(), v)).collect();

    let fresh = view["fresh"];
    assert!(fresh.snapshot_age_hours.unwrap() < 1.0);
    assert!(fresh.export_age_hours["full"] < 1.0);
    assert_eq!(fresh.last_restore_test_passed, Some(true));
    let stale = view["stale"];
    assert!((71.0..73.0).contains(&stale.export_age_hours["full"]), "{stale:?}");
    assert_eq!(stale.last_restore_test_passed, Some(false));
    assert!(stale.restore_test_age_days.unwrap() > 199.0);
    let missing = view["missing"];
    assert!(
        missing.snapshot_age_hours.is_none() && missing.export_age_hours.is_empty(),
        "{missing:?}"
    );
    assert!(
        summary
            .attention
            .iter()
            .any(|a| a == "missing: selected for backup but has no snapshot and no export at all"),
        "{:?}",
        summary.attention
    );
    assert_eq!(summary.janitor_deleted, ["lifeboat-rt-fresh-202611220300"]);
    let left: Vec<String> = rds
        .describe_db_instances()
        .send()
        .await
        .unwrap()
        .db_instances()
        .iter()
        .filter_map(|i| i.db_instance_identifier().map(str::to_owned))
        .collect();
    assert!(
        left.contains(&"lifeboat-rt-stale-202611221000".to_owned()),
        "a current test is kept"
    );
    assert!(!left.contains(&"lifeboat-rt-fresh-202611220300".to_owned()));

    // The figures reached CloudWatch with the database as dimension.
    let stats = cw
        .get_metric_statistics()
        .namespace("Lifeboat")
        .metric_name("ExportAgeSeconds")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("DBIdentifier")
                .value("stale")
                .build(),
        )
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("Profile")
                .value("full")
                .build(),
        )
        .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            now.timestamp() - 3600,
        ))
        .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            now.timestamp() + 3600,
        ))
        .period(3600)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
        .send()
        .await
        .unwrap();
    let max = stats
        .datapoints()
        .iter()
        .filter_map(|d| d.maximum())
        .fold(0.0, f64::max);
    assert!(
        (71.0 * 3600.0..73.0 * 3600.0).contains(&max),
        "ExportAgeSeconds for stale: {max}"
    );
    let names: Vec<String> = cw
        .list_metrics()
        .namespace("Lifeboat")
        .send()
        .await
        .unwrap()
        .metrics()
        .iter()
        .filter_map(|m| m.metric_name().map(str::to_owned))
        .collect();
    for m in [
        "SnapshotAgeSeconds",
        "RestoreTestAgeSeconds",
        "LastRestoreTestSuccess",
        "BackupMissing",
        "RestoreTestJanitorDeleted",
    ] {
        assert!(names.iter().any(|n| n == m), "{m} in {names:?}");
    }

    // One alarm set per database, missing data breaching, actions to the topic.
    let alarms = |cw: aws_sdk_cloudwatch::Client| async move {
        cw.describe_alarms()
            .alarm_name_prefix("lifeboat/")
            .send()
            .await
            .unwrap()
            .metric_alarms()
            .to_vec()
    };
    let all = alarms(cw.clone()).await;
    assert_eq!(
        all.len(),
        3 * 7,
        "{:?}",
        all.iter().map(|a| a.alarm_name()).collect::<Vec<_>>()
    );
    for a in &all {
        assert_eq!(a.treat_missing_data(), Some("breaching"));
        assert_eq!(a.alarm_actions(), std::slice::from_ref(&topic));
        assert_eq!(a.ok_actions(), std::slice::from_ref(&topic));
    }
    let snapshot_age = all
        .iter()
        .find(|a| a.alarm_name() == Some("lifeboat/prod/stale/snapshot-age"))
        .unwrap();
    assert_eq!(snapshot_age.threshold(), Some(26.0 * 3600.0));
    assert_eq!(snapshot_age.metric_name(), Some("SnapshotAgeSeconds"));

    // A database that goes away takes its alarms with it.
    rds.delete_db_instance()
        .db_instance_identifier("stale")
        .skip_final_snapshot(true)
        .send()
        .await
        .unwrap();
    let summary = monitor::handle(&deps, json!({})).await.unwrap();
    assert_eq!(summary.alarms_deleted.len(), 7, "{:?}", summary.alarms_deleted);
    assert!(summary
        .alarms_deleted
        .iter()
        .all(|n| n.starts_with("lifeboat/prod/stale/")));
    assert_eq!(alarms(cw).await.len(), 2 * 7);
}

/// A stand-in chat webhook: answers with the given statuses in turn (the last one repeats) and keeps the bodies.
struct Webhook {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

async fn webhook(statuses: Vec<u16>) -> Webhook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/lifeboat", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    tokio::spawn(async move {
        let mut n = 0usize;
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then as much body as Content-Length says.
            loop {
                let k = sock.read(&mut chunk).await.unwrap_or(0);
                if k == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..k]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(split) = text.find("\r\n\r\n") {
                    let len: usize = text[..split]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= split + 4 + len {
                        seen.lock().unwrap().push(text[split + 4..].to_owned());
                        break;
                    }
                }
            }
            let status = statuses[n.min(statuses.len() - 1)];
            n += 1;
            let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            let _ = sock.write_all(reply.as_bytes()).await;
        }
    });
    Webhook { url, bodies }
}

struct NotifyWorld {
    _moto: Moto,
    config: aws_config::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    topic: String,
}

async fn notify_world() -> NotifyWorld {
    let moto = Moto::start();
    let config = moto.config(REGION);
    aws_sdk_s3::Client::new(&config)
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns
        .create_topic()
        .name("lifeboat")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = sqs
        .create_queue()
        .queue_name("oncall")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    NotifyWorld {
        _moto: moto,
        config,
        sqs,
        queue,
        topic,
    }
}

impl NotifyWorld {
    async fn deps(&self, webhook_url: &str) -> notify::Deps {
        let sm = aws_sdk_secretsmanager::Client::new(&self.config);
        let name = format!("lifeboat/webhook-{}", lifeboat_tests::random_hex(4));
        sm.create_secret()
            .name(&name)
            .secret_string(json!({"url": webhook_url}).to_string())
            .send()
            .await
            .unwrap();
        let settings = NotifySettings::from_env(&env(&[
            // The sample events' alarms are the default stack's (lifeboat/lifeboat/<db>/<check>).
            ("LIFEBOAT_STACK_NAME", "lifeboat"),
            ("LIFEBOAT_BUCKET", BUCKET),
            ("LIFEBOAT_NOTIFY_TOPIC_ARN", &self.topic),
            ("LIFEBOAT_WEBHOOK_SECRET", &name),
        ]))
        .unwrap();
        let mut deps = notify::Deps::new(&self.config, settings);
        deps.retry_pause = std::time::Duration::from_millis(10);
        deps
    }

    async fn queued(&self) -> Vec<String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        out.messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_owned))
            .collect()
    }
}

fn sample(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(repo_root().join("events/notify").join(name)).unwrap()).unwrap()
}

#[tokio::test]
async fn notify_delivers_alarms_and_recoveries_once_to_sns_and_the_webhook() {
    let w = notify_world().await;
    let hook = webhook(vec![500, 200]).await;
    let deps = w.deps(&hook.url).await;

    let sent = notify::handle(&deps, sample("alarm.json")).await.unwrap();
    assert_eq!(sent["sent"], true, "{sent}");
    assert_eq!(
        sent["channels"],
        json!(["sns", "webhook (attempt 2)"]),
        "the 500 was retried"
    );
    let text = sent["text"].as_str().unwrap();
    assert!(
        text.starts_with("[ALARM] app-prod: no snapshot of app-prod within the policy\nDatabase: app-prod\n"),
        "{text}"
    );
    assert!(text.contains("Since: 2026-11-22 10:00 UTC (was OK)"), "{text}");
    assert!(text.contains("Last good backup: none found"), "{text}");
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    let posted: Value = serde_json::from_str(&bodies[1]).unwrap();
    assert_eq!(posted, json!({"text": text}), "Slack-compatible JSON");
    assert_eq!(w.queued().await, [text.to_owned()], "the same text went to SNS");

    // The same alarm again (EventBridge redelivery, or a flapping alarm) within the window: not resent.
    let again = notify::handle(&deps, sample("alarm.json")).await.unwrap();
    assert_eq!(again["sent"], false);
    assert_eq!(hook.bodies.lock().unwrap().len(), 2);

    let recovered = notify::handle(&deps, sample("recovery.json")).await.unwrap();
    assert_eq!(recovered["sent"], true);
    assert!(
        recovered["text"].as_str().unwrap().starts_with("[RECOVERED] app-prod"),
        "{recovered}"
    );

    let failed = notify::handle(&deps, sample("restore-test-failed.json")).await.unwrap();
    assert!(failed["text"]
        .as_str()
        .unwrap()
        .contains("restore tests failed for 1 of 3 databases: billing"));

    // An OK that follows no alarm (a new alarm settling) says nothing.
    let mut settling = sample("recovery.json");
    settling["detail"]["previousState"]["value"] = json!("INSUFFICIENT_DATA");
    let quiet = notify::handle(&deps, settling).await.unwrap();
    assert_eq!(quiet["sent"], false);

    // Every run left a figure: three delivered, two suppressed.
    let cw = aws_sdk_cloudwatch::Client::new(&w.config);
    let now = chrono::Utc::now().timestamp();
    for (metric, expected) in [("NotificationDelivered", 3.0), ("NotificationSuppressed", 2.0)] {
        let stats = cw
            .get_metric_statistics()
            .namespace("Lifeboat")
            .metric_name(metric)
            .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(now - 3600))
            .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(now + 3600))
            .period(7200)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
            .send()
            .await
            .unwrap();
        let sum: f64 = stats.datapoints().iter().filter_map(|d| d.sum()).sum();
        assert_eq!(sum, expected, "{metric}");
    }
}

/// The stack's one RDB copy alarm (`events/notify/rdb-copy-failed.json`, re-dated to now) names no cache itself: the
/// message names the cache whose own `RdbCopyFailed` series reached 1, and not one whose copy succeeded.
#[tokio::test]
async fn the_rdb_copy_alarm_sample_names_the_cache_whose_copy_failed_and_no_other() {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let w = notify_world().await;
    let hook = webhook(vec![200]).await;
    let deps = w.deps(&hook.url).await;
    let cw = aws_sdk_cloudwatch::Client::new(&w.config);
    let now = chrono::Utc::now();
    for (cache, value) in [("sessions", 1.0), ("queue", 0.0)] {
        let dimension = Dimension::builder().name("CacheIdentifier").value(cache).build();
        let datum = MetricDatum::builder()
            .metric_name("RdbCopyFailed")
            .dimensions(dimension)
            .value(value)
            .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                now.timestamp() - 600,
            ))
            .build();
        cw.put_metric_data()
            .namespace("Lifeboat")
            .metric_data(datum)
            .send()
            .await
            .unwrap();
    }
    let mut event = sample("rdb-copy-failed.json");
    event["time"] = json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    event["detail"]["state"]["timestamp"] = json!(now.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());

    let sent = notify::handle(&deps, event).await.unwrap();
    assert_eq!(sent["sent"], true, "{sent}");
    let text = sent["text"].as_str().unwrap();
    assert!(
        text.starts_with("[ALARM] cache sessions: the newest snapshot's RDB copy failed verification"),
        "{text}"
    );
    assert!(text.contains("\nCache: sessions\n"), "{text}");
    assert!(
        !text.contains("queue"),
        "a cache whose copy succeeded is not named: {text}"
    );
    assert!(text.ends_with("Alarm: lifeboat/lifeboat/rdb-copy-failed\n"), "{text}");
    assert_eq!(w.queued().await, [text.to_owned()], "the same text went to SNS");
}

#[tokio::test]
async fn a_failing_webhook_is_retried_and_the_failure_reported_never_dropped() {
    let w = notify_world().await;
    let hook = webhook(vec![503]).await;
    let deps = w.deps(&hook.url).await;
    let err = notify::handle(&deps, sample("alarm.json"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("webhook: the webhook answered 503"), "{err}");
    assert!(err.contains("(3 attempts)"), "{err}");
    assert!(err.contains("delivered: sns"), "{err}");
    assert!(!err.contains(&hook.url), "the webhook URL is a secret: {err}");
    assert_eq!(hook.bodies.lock().unwrap().len(), 3);
    // Nothing was recorded as sent, so the retry EventBridge makes delivers it.
    let retry = notify::handle(&deps, sample("alarm.json"))
        .await
        .unwrap_err()
        .to_string();
    assert!(retry.contains("503"), "{retry}");
    assert_eq!(hook.bodies.lock().unwrap().len(), 6);
}

/// The world of one monitor test: moto, the bucket, and the clients the assertions read with.
struct MonitorWorld {
    _moto: Moto,
    config: aws_config::SdkConfig,
    rds: aws_sdk_rds::Client,
    s3: aws_sdk_s3::Client,
    cw: aws_sdk_cloudwatch::Client,
}

async fn monitor_world() -> MonitorWorld {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    MonitorWorld {
        rds: aws_sdk_rds::Client::new(&config),
        cw: aws_sdk_cloudwatch::Client::new(&config),
        s3,
        config,
        _moto: moto,
    }
}

impl MonitorWorld {
    fn deps(&self, vars: &[(&str, &str)]) -> monitor::Deps {
        let mut all = vec![("LIFEBOAT_BUCKET", BUCKET)];
        all.extend_from_slice(vars);
        monitor::Deps::new(&self.config, MonitorSettings::from_env(&env(&all)).unwrap())
    }

    async fn alarms(&self) -> Vec<aws_sdk_cloudwatch::types::MetricAlarm> {
        self.cw.describe_alarms().send().await.unwrap().metric_alarms().to_vec()
    }

    /// The (metric, DBIdentifier) pairs published to the `Lifeboat` namespace.
    async fn published(&self) -> Vec<(String, String)> {
        let out = self.cw.list_metrics().namespace("Lifeboat").send().await.unwrap();
        out.metrics()
            .iter()
            .map(|m| {
                let db = m
                    .dimensions()
                    .iter()
                    .find(|d| d.name() == Some("DBIdentifier"))
                    .and_then(|d| d.value())
                    .unwrap_or_default();
                (m.metric_name().unwrap_or_default().to_owned(), db.to_owned())
            })
            .collect()
    }
}

#[tokio::test]
async fn monitor_without_an_export_publishes_no_export_age_but_keeps_its_alarm_breaching_on_missing_data() {
    let w = monitor_world().await;
    instance(&w.rds, "lonely", &[("lifeboat:backup", "true")], 7).await;
    // A restore-test report that cannot be read as one: it proves nothing, so the test counts as failed.
    let now = chrono::Utc::now();
    w.s3.put_object()
        .bucket(BUCKET)
        .key(format!("reports/restore-tests/lonely/{}.json", stamp(now)))
        .body(b"<html>not a report</html>".to_vec().into())
        .send()
        .await
        .unwrap();
    // One manual snapshot of a quota of two: at the 50% warning level.
    w.rds
        .create_db_snapshot()
        .db_instance_identifier("lonely")
        .db_snapshot_identifier("someone-elses-manual-snapshot")
        .send()
        .await
        .unwrap();
    let deps = w.deps(&[
        ("LIFEBOAT_EXPORT_MAX_AGE_HOURS", "full=26,critical=7"),
        ("LIFEBOAT_SNAPSHOT_QUOTA", "2"),
        ("LIFEBOAT_QUOTA_WARN_PERCENT", "50"),
    ]);
    let summary = monitor::handle(&deps, json!({})).await.unwrap();

    assert_eq!(summary.databases.len(), 1);
    let view = &summary.databases[0];
    assert_eq!(view.db, "lonely");
    assert!(view.export_age_hours.is_empty(), "{view:?}");
    assert!(view.snapshot_age_hours.unwrap() < 1.0, "{view:?}");
    assert_eq!(
        view.last_restore_test_passed,
        Some(false),
        "an unreadable report is a failed test"
    );
    assert!(view.restore_test_age_days.unwrap() < 0.1, "{view:?}");
    assert_eq!(
        summary.attention,
        ["manual snapshots: 1 of the quota of 2 (50%)"],
        "a snapshot is a backup: no `no backup` finding"
    );

    let published = w.published().await;
    let of_lonely = |metric: &str| published.iter().any(|(m, db)| m == metric && db == "lonely");
    assert!(!of_lonely("ExportAgeSeconds"), "no export, no age: {published:?}");
    for metric in [
        "SnapshotAgeSeconds",
        "LastRestoreTestSuccess",
        "RestoreTestAgeSeconds",
        "BackupMissing",
    ] {
        assert!(of_lonely(metric), "{metric} in {published:?}");
    }
    let stats =
        w.cw.get_metric_statistics()
            .namespace("Lifeboat")
            .metric_name("LastRestoreTestSuccess")
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("DBIdentifier")
                    .value("lonely")
                    .build(),
            )
            .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                now.timestamp() - 3600,
            ))
            .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                now.timestamp() + 3600,
            ))
            .period(3600)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .send()
            .await
            .unwrap();
    let values: Vec<f64> = stats.datapoints().iter().filter_map(|d| d.maximum()).collect();
    assert_eq!(values, [0.0], "the unreadable report was published as a failure");

    // Each export profile's alarm exists all the same, and fires on the missing data.
    let alarms = w.alarms().await;
    assert_eq!(
        alarms.len(),
        8,
        "{:?}",
        alarms.iter().map(|a| a.alarm_name()).collect::<Vec<_>>()
    );
    for (profile, hours) in [("full", 26.0), ("critical", 7.0)] {
        let name = format!("lifeboat/prod/lonely/export-age-{profile}");
        let a = alarms
            .iter()
            .find(|a| a.alarm_name() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(a.metric_name(), Some("ExportAgeSeconds"));
        assert_eq!(a.namespace(), Some("Lifeboat"));
        assert_eq!(a.treat_missing_data(), Some("breaching"));
        assert_eq!(a.threshold(), Some(hours * 3600.0));
        let dims: BTreeMap<&str, &str> = a
            .dimensions()
            .iter()
            .filter_map(|d| Some((d.name()?, d.value()?)))
            .collect();
        assert_eq!(dims, BTreeMap::from([("DBIdentifier", "lonely"), ("Profile", profile)]));
        assert!(a.alarm_actions().is_empty(), "no topic configured, no actions");
    }
}

impl MonitorWorld {
    async fn alarm_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .alarms()
            .await
            .iter()
            .filter_map(|a| a.alarm_name().map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    async fn arn(&self, db: &str) -> String {
        let out = self
            .rds
            .describe_db_instances()
            .db_instance_identifier(db)
            .send()
            .await
            .unwrap();
        out.db_instances()[0].db_instance_arn().unwrap().to_owned()
    }
}

/// The re-tagging attack of issue 22: whoever may tag a database sets `lifeboat:backup=false` to stop its backups.
/// Monitor keeps its alarms (they fire on the missing data), reports it every run, lists it in the evidence
/// report, and lets go only when a person confirms, with a record in the bucket. A database deleted outright
/// loses its alarms at once, with a finding; a dropped check goes; no one else's alarm is touched.
#[tokio::test]
async fn a_deselected_database_keeps_its_alarms_and_is_a_finding_until_a_person_confirms() {
    let w = monitor_world().await;
    let backup = [("lifeboat:backup", "true")];
    for db in ["keep", "retagged", "deleted"] {
        instance(&w.rds, db, &backup, 7).await;
    }
    w.cw.put_metric_alarm()
        .alarm_name("someone-elses-alarm")
        .namespace("AWS/RDS")
        .metric_name("CPUUtilization")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(90.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    let before = monitor::handle(
        &w.deps(&[("LIFEBOAT_EXPORT_MAX_AGE_HOURS", "full=26,weekly=170")]),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(before.alarms_kept, 3 * 8);
    assert!(before.alarms_deleted.is_empty(), "{:?}", before.alarms_deleted);
    assert!(before.deselected.is_empty() && before.gone.is_empty());
    assert_eq!(w.alarm_names().await.len(), 3 * 8 + 1);

    // The attacker's move, and a database really retired; the policy drops the weekly export.
    w.rds
        .add_tags_to_resource()
        .resource_name(w.arn("retagged").await)
        .tags(Tag::builder().key("lifeboat:backup").value("false").build())
        .send()
        .await
        .unwrap();
    w.rds
        .delete_db_instance()
        .db_instance_identifier("deleted")
        .skip_final_snapshot(true)
        .send()
        .await
        .unwrap();
    let deps = w.deps(&[("LIFEBOAT_EXPORT_MAX_AGE_HOURS", "full=26")]);
    let after = monitor::handle(&deps, json!({})).await.unwrap();
    assert_eq!(
        after.databases.iter().map(|v| v.db.as_str()).collect::<Vec<_>>(),
        ["keep"]
    );
    assert_eq!(after.deselected, ["retagged"]);
    assert_eq!(after.gone, ["deleted"]);
    let mut deleted = after.alarms_deleted.clone();
    deleted.sort();
    assert_eq!(
        deleted,
        [
            "lifeboat/prod/deleted/backup-retention",
            "lifeboat/prod/deleted/content",
            "lifeboat/prod/deleted/export-age-full",
            "lifeboat/prod/deleted/export-age-weekly",
            "lifeboat/prod/deleted/pitr-lag",
            "lifeboat/prod/deleted/restore-test-age",
            "lifeboat/prod/deleted/restore-test-failed",
            "lifeboat/prod/deleted/snapshot-age",
            "lifeboat/prod/keep/export-age-weekly",
        ]
    );
    let deselection = after
        .attention
        .iter()
        .find(|n| n.starts_with("retagged: no longer selected for backup"))
        .unwrap_or_else(|| panic!("no de-selection finding in {:?}", after.attention));
    assert!(deselection.contains(r#""database": "retagged""#), "{deselection}");
    assert!(
        after
            .attention
            .iter()
            .any(|n| n.starts_with("deleted: no longer exists")),
        "{:?}",
        after.attention
    );
    let left = w.alarm_names().await;
    assert_eq!(
        left.iter().filter(|n| n.starts_with("lifeboat/prod/retagged/")).count(),
        8,
        "{left:?}"
    );
    assert_eq!(
        left.iter().filter(|n| n.starts_with("lifeboat/prod/keep/")).count(),
        7,
        "{left:?}"
    );
    assert!(left.contains(&"someone-elses-alarm".to_owned()), "{left:?}");
    assert!(
        !left.iter().any(|n| n.starts_with("lifeboat/prod/deleted/")),
        "{left:?}"
    );
    let published = w.published().await;
    assert!(
        published.contains(&("Deselected".to_owned(), "retagged".to_owned())),
        "{published:?}"
    );
    assert!(
        published.iter().any(|(m, _)| m == "DeselectedUnconfirmed"),
        "{published:?}"
    );

    // Every run says it again, and the evidence report lists it rather than dropping it.
    let again = monitor::handle(&deps, json!({})).await.unwrap();
    assert_eq!(again.deselected, ["retagged"]);
    assert!(again.alarms_deleted.is_empty(), "{:?}", again.alarms_deleted);
    let evidence = monitor::run(&deps, json!({"action": "evidence-report"})).await.unwrap();
    let findings: Vec<&str> = evidence["needs_a_human"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        findings
            .iter()
            .any(|f| f.starts_with("retagged: no longer selected for backup")),
        "{findings:?}"
    );

    // Nothing to confirm for a database still selected, one that is gone, or a confirmation that names no one.
    for (bad, why) in [
        (
            json!({"action": "confirm-deselection", "database": "keep", "by": "jane"}),
            "still selected",
        ),
        (
            json!({"action": "confirm-deselection", "database": "deleted", "by": "jane"}),
            "does not exist",
        ),
        (json!({"action": "confirm-deselection", "database": "retagged"}), "`by`"),
    ] {
        let err = monitor::run(&deps, bad.clone()).await.unwrap_err();
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
    assert_eq!(w.alarm_names().await, left, "a refused confirmation deletes nothing");

    let confirmed = monitor::run(
        &deps,
        json!({"action": "confirm-deselection", "database": "retagged", "by": "jane@example.com"}),
    )
    .await
    .unwrap();
    let key = confirmed["record"].as_str().unwrap();
    assert!(key.starts_with("records/deselections/databases/retagged/"), "{key}");
    let record = w.s3.get_object().bucket(BUCKET).key(key).send().await.unwrap();
    let record: Value = serde_json::from_slice(&record.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(record["by"], "jane@example.com");
    assert_eq!(record["tags"]["lifeboat:backup"], "false");
    assert_eq!(record["alarms"].as_array().unwrap().len(), 8);
    let left = w.alarm_names().await;
    assert!(
        !left.iter().any(|n| n.starts_with("lifeboat/prod/retagged/")),
        "{left:?}"
    );
    assert_eq!(left.len(), 7 + 1, "{left:?}");

    let last = monitor::handle(&deps, json!({})).await.unwrap();
    assert!(last.deselected.is_empty(), "{:?}", last.deselected);
    assert!(
        !last.attention.iter().any(|n| n.starts_with("retagged")),
        "{:?}",
        last.attention
    );
    let err = monitor::run(
        &deps,
        json!({"action": "confirm-deselection", "database": "retagged", "by": "jane"}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no alarms of monitor's"), "{err}");
}

/// Two Lifeboat stacks in one account and region (production, and a staging stack that also watches the shared
/// `app` database with a laxer export policy): each monitor names, lists and deletes only its own
/// `lifeboat/<stack>/` alarms. With one fixed `lifeboat/` prefix the two wrote the same names for `app`, each deleted
/// the other's export-age check as a dropped check, and staging reported production's databases as de-selected.
#[tokio::test]
async fn two_stacks_in_one_account_never_touch_each_others_alarms() {
    let w = monitor_world().await;
    let backup = [("lifeboat:backup", "true")];
    for db in ["app", "app-prod"] {
        instance(&w.rds, db, &backup, 7).await;
    }
    let production = w.deps(&[
        ("LIFEBOAT_STACK_NAME", "production"),
        ("LIFEBOAT_EXPORT_MAX_AGE_HOURS", "full=26"),
    ]);
    let staging = w.deps(&[
        ("LIFEBOAT_STACK_NAME", "staging"),
        ("LIFEBOAT_SELECT_TAG", "none"),
        ("LIFEBOAT_DATABASES", "app"),
        ("LIFEBOAT_EXPORT_MAX_AGE_HOURS", "weekly=170"),
    ]);
    let first = monitor::handle(&production, json!({})).await.unwrap();
    assert_eq!(first.alarms_kept, 2 * 7);
    for (stack, deps) in [
        ("staging", &staging),
        ("production", &production),
        ("staging", &staging),
    ] {
        let run = monitor::handle(deps, json!({})).await.unwrap();
        assert!(
            run.alarms_deleted.is_empty(),
            "{stack} deleted {:?}",
            run.alarms_deleted
        );
        assert!(
            run.deselected.is_empty() && run.gone.is_empty(),
            "{stack} took the other stack's alarms for its own: {:?} {:?}",
            run.deselected,
            run.gone
        );
    }
    let names = w.alarm_names().await;
    assert_eq!(of_names(&names, "lifeboat/production/app/"), 7, "{names:?}");
    assert_eq!(of_names(&names, "lifeboat/production/app-prod/"), 7, "{names:?}");
    assert_eq!(of_names(&names, "lifeboat/staging/app/"), 7, "{names:?}");
    assert_eq!(names.len(), 21, "{names:?}");
    assert!(names.contains(&"lifeboat/production/app/export-age-full".to_owned()));
    assert!(names.contains(&"lifeboat/staging/app/export-age-weekly".to_owned()));

    // A database gone takes only the alarms of the stack that runs next with it; the other stack's wait for its
    // own run.
    w.rds
        .delete_db_instance()
        .db_instance_identifier("app")
        .skip_final_snapshot(true)
        .send()
        .await
        .unwrap();
    let run = monitor::handle(&staging, json!({})).await.unwrap();
    assert_eq!(run.alarms_deleted.len(), 7, "{:?}", run.alarms_deleted);
    assert!(run
        .alarms_deleted
        .iter()
        .all(|n| n.starts_with("lifeboat/staging/app/")));
    let names = w.alarm_names().await;
    assert_eq!(of_names(&names, "lifeboat/production/"), 14, "{names:?}");
}

/// How many of `names` start with `prefix`.
fn of_names(names: &[String], prefix: &str) -> usize {
    names.iter().filter(|n| n.starts_with(prefix)).count()
}

#[tokio::test]
async fn monitor_reports_a_named_database_that_does_not_exist_and_still_observes_the_rest() {
    let w = monitor_world().await;
    instance(&w.rds, "present", &[], 7).await;
    let deps = w.deps(&[
        ("LIFEBOAT_DATABASES", "present,vanished"),
        ("LIFEBOAT_SELECT_TAG", "none"),
    ]);
    let summary = monitor::handle(&deps, json!({})).await.unwrap();
    assert_eq!(
        summary.databases.iter().map(|v| v.db.as_str()).collect::<Vec<_>>(),
        ["present"]
    );
    assert_eq!(
        summary.attention,
        ["vanished: named in LIFEBOAT_DATABASES but does not exist"]
    );
    let names: Vec<String> = w
        .alarms()
        .await
        .iter()
        .filter_map(|a| a.alarm_name().map(str::to_owned))
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("lifeboat/prod/present/")),
        "{names:?}"
    );
}

#[tokio::test]
async fn the_janitor_deletes_expired_restore_test_secrets_and_no_other_secret() {
    let w = monitor_world().await;
    let sm = aws_sdk_secretsmanager::Client::new(&w.config);
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let future = (chrono::Utc::now() + chrono::Duration::hours(5)).to_rfc3339();
    let secret = |name: &'static str, expires: String| {
        let sm = sm.clone();
        async move {
            let tag = |k: &str, v: &str| aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build();
            sm.create_secret()
                .name(name)
                .secret_string(r#"{"username": "postgres", "password": "x"}"#)
                .tags(tag("lifeboat:restore-test", "true"))
                .tags(tag("lifeboat:expires-at", &expires))
                .send()
                .await
                .unwrap();
        }
    };
    // A cleanup that never ran, a test still running, and a secret outside the prefix that merely carries the tags.
    secret("lifeboat/restore-test/lifeboat-rt-gone-202611220300", past.clone()).await;
    secret("lifeboat/restore-test/lifeboat-rt-running-202611290300", future).await;
    secret("lifeboat/app-prod", past).await;

    let summary = monitor::handle(&w.deps(&[]), json!({})).await.unwrap();
    assert_eq!(
        summary.janitor_deleted,
        ["lifeboat/restore-test/lifeboat-rt-gone-202611220300"]
    );
    let left: Vec<String> = sm
        .list_secrets()
        .send()
        .await
        .unwrap()
        .secret_list()
        .iter()
        .filter_map(|s| s.name().map(str::to_owned))
        .collect();
    assert!(
        left.contains(&"lifeboat/restore-test/lifeboat-rt-running-202611290300".to_owned())
            && left.contains(&"lifeboat/app-prod".to_owned())
            && !left.iter().any(|n| n.ends_with("gone-202611220300")),
        "{left:?}"
    );
}

/// Verified RPO end to end through monitor, in plan mode: the newest recovery point a passed restore test proved
/// (a random, older point tested last does not hide a newer one tested before; a failed test proves nothing)
/// is in monitor's view beside the newest backup's age, published as `VerifiedRpoSeconds`, alarmed on at the
/// threshold the plan's restore-test rule promises, and shown in the evidence report.
#[tokio::test]
async fn monitor_shows_publishes_and_alarms_on_the_verified_rpo() {
    let w = monitor_world().await;
    instance(&w.rds, "app", &[("lifeboat:plan", "production")], 7).await;
    lifeboat_tests::plans::versioned_bucket(&w.s3, "acme-config").await;
    let doc = json!({"format": 1, "plans": {"production": {
        "snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}},
        "pitr": {"min_days": 7},
        "restore_tests": [{"schedule": "0 3 * * 0", "from": "random-point-in-time", "within_days": 7,
                           "max_age_days": 8}]}}});
    w.s3.put_object()
        .bucket("acme-config")
        .key("plans.json")
        .body(doc.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let hours = |h: i64| now - chrono::Duration::hours(h);
    let rfc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (at, passed, point) in [
        (hours(100), true, hours(150)),
        (hours(50), true, hours(60)),
        // Tested last, a random older moment: the newer point proved before still counts.
        (hours(2), true, hours(120)),
        // A failed test of a newer point proves nothing.
        (hours(1), false, hours(3)),
    ] {
        let report = json!({"passed": passed, "recovery_point_time": rfc(point), "snapshot_time": rfc(point)});
        put(&w.s3, &format!("reports/restore-tests/app/{}.json", stamp(at)), report).await;
    }
    let deps = w.deps(&[("LIFEBOAT_PLAN_DOCUMENT", "s3://acme-config/plans.json")]);
    let summary = monitor::handle(&deps, json!({})).await.unwrap();
    let view = summary.databases.iter().find(|v| v.db == "app").unwrap();
    let verified = view.verified_rpo_hours.unwrap();
    assert!((59.9..60.2).contains(&verified), "{view:?}");
    assert!(
        view.newest_backup_age_hours.unwrap() < 1.0,
        "moto's automated snapshot: {view:?}"
    );
    assert_eq!(view.last_restore_test_passed, Some(false), "the newest test failed");
    let shown = serde_json::to_value(view).unwrap();
    assert!(shown["verified_rpo_hours"].as_f64().is_some(), "{shown}");

    assert!(
        w.published()
            .await
            .contains(&("VerifiedRpoSeconds".to_owned(), "app".to_owned())),
        "{:?}",
        w.published().await
    );
    let alarms = w.alarms().await;
    let alarm = alarms
        .iter()
        .find(|a| a.alarm_name() == Some("lifeboat/prod/app/verified-rpo"))
        .unwrap_or_else(|| panic!("{alarms:?}"));
    assert_eq!(alarm.metric_name(), Some("VerifiedRpoSeconds"));
    // The weekly test's freshness (8 days) plus how far back it may reach (7 days).
    assert_eq!(alarm.threshold(), Some(15.0 * 86_400.0));

    // This month's report: the plan document in force now (written just above) places the database.
    let month = now.format("%Y-%m").to_string();
    let evidence = monitor::run(&deps, json!({"action": "evidence-report", "period": month}))
        .await
        .unwrap();
    let html_key = evidence["html_key"].as_str().unwrap().to_owned();
    let html = w.s3.get_object().bucket(BUCKET).key(&html_key).send().await;
    let html = html.unwrap().body.collect().await.unwrap().into_bytes();
    let html = String::from_utf8_lossy(&html);
    assert!(
        html.contains("Verified RPO (age of the newest backup a restore test proved): <strong>60.0 h</strong>"),
        "{evidence} {}",
        html.lines().find(|l| l.contains("verified-rpo")).unwrap_or_default()
    );
}
