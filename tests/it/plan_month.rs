//! The small-stack policy (`examples/plans/small-stack.json`, read from the repository) for a month against the
//! local cloud: "a daily full export kept 14 days, cache snapshots daily kept 7, weekly restore tests from the
//! newest export and from the newest cache snapshot", checked for exactly what it says was made, kept, expired,
//! tested and alarmed.
//!
//! Both functions get every tick the plan makes due in October 2026 (31 days of quarter hours; which quarters are
//! due is `lifeboat::plans::due`'s answer, itself checked against the policy's words) and idle ticks around them:
//! the snapshot function (cache snapshots in moto's ElastiCache, restore-test starts on a stand-in state machine)
//! and the export function (real `pg_dump` exports of a real PostgreSQL database behind moto's RDS instance
//! `app-db`). Then monitor, in plan mode, at the month's end and after two days without exports.
//!
//! The restore-test state machine is a stand-in (moto records executions, never runs them), so the restore tests
//! are checked as started with the plan's input; their outcome is the restore tests' own tests' business.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use lifeboat::bucket::manifest::Manifest;
use lifeboat::plans::document::RuleKind;
use lifeboat::plans::store::{Location, PlanVersion};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::Postgres;
use serde_json::{json, Value};
use snapshot::handler::Outcome;

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const PLAN_BUCKET: &str = "lifeboat-plans";
const PLAN_KEY: &str = "lifeboat/plans.json";
/// The freshness a daily rule implies: its longest gap (24 h) and 10 %.
const DAILY_S: f64 = 26.4 * 3600.0;
/// The freshness a weekly rule implies: 7 days and 10 %.
const WEEKLY_S: f64 = 7.7 * 86400.0;

const SCHEMA: &str = r"
create table accounts (id int primary key, email text);
create table orders (id int primary key, account int references accounts(id), total int);
insert into accounts select g, 'a' || g || '@example.com' from generate_series(1, 40) g;
insert into orders select g, 1 + g % 40, g * 3 from generate_series(1, 120) g;
";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct World {
    _moto: Moto,
    _pg: Postgres,
    config: aws_config::SdkConfig,
    export: export::Deps,
    /// The export function's real time: set to each tick's time before it runs.
    clock: std::sync::Arc<std::sync::atomic::AtomicI64>,
    snapshot: snapshot::Deps,
    sfn: aws_sdk_sfn::Client,
    state_machine: String,
}

async fn world() -> World {
    let moto = Moto::start();
    let pg = Postgres::start();
    pg.psql("postgres", "create database app").unwrap();
    pg.psql("app", SCHEMA).unwrap();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    let plan = lifeboat_tests::plans::example("small-stack");
    lifeboat_tests::plans::buckets_with_plan(&s3, BUCKET, PLAN_BUCKET, PLAN_KEY, &plan).await;
    // `app-db` and `app-cache` are the plan's by its lists; `other-db` and `other-cache` are in no plan.
    lifeboat_tests::plans::database_on(&config, &pg, "app-db", "app", &[]).await;
    lifeboat_tests::plans::database_on(&config, &pg, "other-db", "app", &[("lifeboat:backup", "true")]).await;
    let ec = aws_sdk_elasticache::Client::new(&config);
    for id in ["app-cache", "other-cache"] {
        lifeboat_tests::plans::cache(&ec, id, &[]).await;
    }
    let sfn = aws_sdk_sfn::Client::new(&config);
    let state_machine = lifeboat_tests::plans::state_machine(&sfn).await;
    let document = format!("s3://{PLAN_BUCKET}/{PLAN_KEY}");
    let (export, clock) = lifeboat_tests::plans::export_deps(&config, BUCKET, &document);
    let settings = lifeboat::rds::settings::SnapshotSettings::from_env(&|_: &str| None).unwrap();
    let snapshot = snapshot::Deps::new(&config, settings)
        .with_plan(Some(Location {
            bucket: PLAN_BUCKET.into(),
            key: PLAN_KEY.into(),
        }))
        .with_restore_tests(&config, Some(state_machine.clone()));
    World {
        _moto: moto,
        _pg: pg,
        config,
        export,
        clock,
        snapshot,
        sfn,
        state_machine,
    }
}

/// What both functions answered to one tick.
struct Ticked {
    export: Value,
    snapshot: snapshot::handler::Summary,
}

impl World {
    /// One tick delivered to both functions, each running on time.
    async fn tick(&self, t: DateTime<Utc>) -> Ticked {
        self.clock.store(t.timestamp(), Ordering::SeqCst);
        let export = export::invoke(&self.export, lifeboat_tests::plans::tick(t), None)
            .await
            .unwrap_or_else(|e| panic!("export tick at {t}: {e}"));
        let snapshot = snapshot::handle_at(&self.snapshot, lifeboat_tests::plans::tick(t), t + Duration::minutes(1))
            .await
            .unwrap_or_else(|e| panic!("snapshot tick at {t}: {e}"));
        Ticked { export, snapshot }
    }

    /// Everything a tick could make: current keys under `exports/`, cache snapshots, restore-test executions.
    async fn made(&self) -> (BTreeSet<String>, BTreeSet<String>, Vec<String>) {
        let keys = lifeboat::bucket::layout::list_keys(&self.export.s3, BUCKET, "exports/", "")
            .await
            .unwrap();
        // The content watch's records beside the manifests are about backups, not backups: counted apart.
        (
            keys.into_iter().filter(|k| !k.ends_with(".watch.json")).collect(),
            self.cache_snapshots().await,
            self.executions().await,
        )
    }

    async fn cache_snapshots(&self) -> BTreeSet<String> {
        lifeboat::caches::elasticache::list_snapshots(&self.snapshot.ec)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect()
    }

    /// Every execution's name, sorted, a name started twice listed twice.
    async fn executions(&self) -> Vec<String> {
        let mut names: Vec<String> = self.listed().await.iter().map(|e| e.name().to_owned()).collect();
        names.sort();
        names
    }

    async fn listed(&self) -> Vec<aws_sdk_sfn::types::ExecutionListItem> {
        let out = self
            .sfn
            .list_executions()
            .state_machine_arn(&self.state_machine)
            .send()
            .await
            .unwrap();
        out.executions().to_vec()
    }

    async fn monitor(&self, now: DateTime<Utc>) -> monitor::handler::Summary {
        let document = format!("s3://{PLAN_BUCKET}/{PLAN_KEY}");
        let vars: BTreeMap<&str, String> = [
            ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
            ("LIFEBOAT_PLAN_DOCUMENT", document),
            ("LIFEBOAT_STACK_NAME", "prod".to_owned()),
        ]
        .into();
        let settings = monitor::settings::MonitorSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
        monitor::handle_at(&monitor::Deps::new(&self.config, settings), json!({}), now)
            .await
            .unwrap()
    }

    /// Each Lifeboat alarm: its threshold, and the metric and dimensions it watches.
    async fn alarms(&self) -> BTreeMap<String, (f64, String, Vec<(String, String)>)> {
        let cw = aws_sdk_cloudwatch::Client::new(&self.config);
        lifeboat_tests::plans::lifeboat_alarms(&cw)
            .await
            .iter()
            .map(|a| {
                let dims = a
                    .dimensions()
                    .iter()
                    .map(|d| {
                        (
                            d.name().unwrap_or_default().to_owned(),
                            d.value().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                let metric = a.metric_name().unwrap_or_default().to_owned();
                (
                    a.alarm_name().unwrap().to_owned(),
                    (a.threshold().unwrap(), metric, dims),
                )
            })
            .collect()
    }

    /// The value an alarm's metric (with the alarm's own dimensions) had in the minute of `t`.
    async fn watched_value(&self, alarm: &(f64, String, Vec<(String, String)>), t: DateTime<Utc>) -> f64 {
        let (_, metric, dims) = alarm;
        let cw = aws_sdk_cloudwatch::Client::new(&self.config);
        let secs = |t: DateTime<Utc>| aws_sdk_cloudwatch::primitives::DateTime::from_secs(t.timestamp());
        let mut req = cw
            .get_metric_statistics()
            .namespace("Lifeboat")
            .metric_name(metric)
            .start_time(secs(t - Duration::minutes(1)))
            .end_time(secs(t + Duration::minutes(1)))
            .period(60)
            .statistics(Statistic::Maximum);
        for (k, v) in dims {
            req = req.dimensions(Dimension::builder().name(k).value(v).build());
        }
        let out = req.send().await.unwrap();
        let values: Vec<f64> = out.datapoints().iter().filter_map(|d| d.maximum()).collect();
        assert_eq!(values.len(), 1, "{metric} {dims:?} at {t}: {values:?}");
        values[0]
    }
}

/// The quarter hours of the month the policy's words make due, for each function.
fn written_policy(t: DateTime<Utc>) -> (bool, bool) {
    let (h, m) = (t.hour(), t.minute());
    let export = (h, m) == (2, 0);
    let snapshot = (h, m) == (3, 0) || ((h, m) == (5, 0) && t.weekday() == Weekday::Mon);
    (export, snapshot)
}

/// The snapshot function's cache snapshot of a day.
fn cache_snapshot(day: DateTime<Utc>) -> String {
    format!("lifeboat-app-cache-{}-0300", day.format("%Y%m%d"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_the_small_stack_policy_makes_keeps_expires_tests_and_alarms_what_it_says() {
    let started = std::time::Instant::now();
    let w = world().await;
    let body = lifeboat_tests::plans::example("small-stack");
    let doc = lifeboat::plans::document::parse(&body).unwrap();
    let version = PlanVersion::new("", Utc::now(), &body).label().to_owned();
    let due = |t: DateTime<Utc>, kinds: &[RuleKind]| -> Vec<lifeboat::plans::due::Due> {
        kinds
            .iter()
            .flat_map(|k| lifeboat::plans::due::due_at_tick(&doc, *k, t))
            .collect()
    };
    let export_kinds = [RuleKind::Export, RuleKind::RdbCopy];
    let snapshot_kinds = [
        RuleKind::Snapshot,
        RuleKind::CacheSnapshot,
        RuleKind::RestoreTest,
        RuleKind::Rotation,
    ];

    // October 2026, every quarter hour: what is due is what the policy says, and nothing else.
    let first_day = at("2026-10-01T00:00:00Z");
    let end = at("2026-11-01T00:00:00Z");
    let mut due_ticks = Vec::new();
    let mut t = first_day;
    while t < end {
        let (e, s) = (!due(t, &export_kinds).is_empty(), !due(t, &snapshot_kinds).is_empty());
        assert_eq!((e, s), written_policy(t), "{t}");
        if e || s {
            due_ticks.push(t);
        }
        t += Duration::minutes(15);
    }
    assert_eq!(due_ticks.len(), 31 + 31 + 4);

    let mut expired_exports = Vec::new();
    for day in (0..31).map(|d| first_day + Duration::days(d)) {
        // Quarters where nothing is due, either side of each due one and across the day: nothing is made.
        for idle in [1.75, 2.25, 2.75, 3.25, 4.75, 5.25, 13.5, 23.75] {
            let t = day + Duration::minutes((idle * 60.0) as i64);
            assert!(due(t, &export_kinds).is_empty() && due(t, &snapshot_kinds).is_empty());
            let before = w.made().await;
            let ticked = w.tick(t).await;
            assert_eq!(ticked.export["due"], json!([]), "{t}");
            let plan = ticked.snapshot.plan.as_ref().unwrap();
            assert!(plan.due.is_empty() && plan.restore_tests.is_empty(), "{t}");
            assert_eq!(w.made().await, before, "the idle tick at {t} made something");
        }
        for t in due_ticks.iter().filter(|t| t.date_naive() == day.date_naive()) {
            let ticked = w.tick(*t).await;
            assert_eq!(ticked.export["plan_version"], version.as_str());
            let plan = ticked.snapshot.plan.as_ref().unwrap();
            assert_eq!(plan.version, version);
            match (t.hour(), t.minute()) {
                (2, 0) => {
                    // The day's full export of app-db, and only app-db's.
                    let runs = ticked.export["exports"].as_array().unwrap();
                    assert_eq!(runs.len(), 1, "{t}: {}", ticked.export);
                    let exports = runs[0]["exports"].as_array().unwrap();
                    assert_eq!(exports.len(), 1, "{t}: {}", ticked.export);
                    assert_eq!(
                        (exports[0]["db"].as_str(), exports[0]["outcome"].as_str()),
                        (Some("app-db"), Some("exported"))
                    );
                    for e in ticked.export["expired"].as_array().unwrap() {
                        assert_eq!(
                            (e["db"].as_str(), e["profile"].as_str()),
                            (Some("app-db"), Some("full"))
                        );
                        expired_exports.push((*t, at(e["at"].as_str().unwrap())));
                    }
                    assert!(ticked.snapshot.caches.is_empty() && plan.due.is_empty());
                }
                (3, 0) => {
                    // The day's cache snapshot of app-cache; the run keeps the newest 7 of those before it.
                    assert_eq!(ticked.export["due"], json!([]));
                    let caches: Vec<(&str, Outcome)> = ticked
                        .snapshot
                        .caches
                        .iter()
                        .map(|c| (c.cache.as_str(), c.outcome))
                        .collect();
                    assert_eq!(caches, [("app-cache", Outcome::Created)], "{t}");
                    assert_eq!(ticked.snapshot.caches[0].snapshot_id, cache_snapshot(*t));
                    let n = (*t - first_day).num_days();
                    let deleted: Vec<String> = (n >= 8)
                        .then(|| cache_snapshot(*t - Duration::days(8)))
                        .into_iter()
                        .collect();
                    assert_eq!(ticked.snapshot.caches[0].deleted, deleted, "{t}");
                    let unplanned: Vec<(&str, &str)> = plan.unplanned.iter().map(|u| (u.kind, u.id.as_str())).collect();
                    assert_eq!(unplanned, [("database", "other-db"), ("cache", "other-cache")], "{t}");
                }
                (5, 0) => {
                    // Monday: the two restore-test rules, each started once on the state machine.
                    assert_eq!(ticked.export["due"], json!([]));
                    let started: Vec<(&str, &str, &str)> = plan
                        .restore_tests
                        .iter()
                        .map(|s| (s.plan.as_str(), s.rule.as_str(), s.outcome))
                        .collect();
                    assert_eq!(
                        started,
                        [
                            ("app", "restore_tests.0", "started"),
                            ("app", "restore_tests.1", "started")
                        ],
                        "{t}"
                    );
                    assert!(ticked.snapshot.caches.is_empty());
                }
                other => panic!("{t}: nothing is due at {other:?}"),
            }
        }
    }
    let month_s = started.elapsed().as_secs_f64();

    // Made: 31 full exports of app-db, each named by its due time, each following this plan and version, each
    // holding the database's rows (read by pg_dump from the real database).
    let days: Vec<DateTime<Utc>> = (0..31)
        .map(|d| first_day + Duration::days(d) + Duration::hours(2))
        .collect();
    let versions = w
        .export
        .s3
        .list_object_versions()
        .bucket(BUCKET)
        .prefix("exports/")
        .send()
        .await
        .unwrap();
    assert_ne!(versions.is_truncated(), Some(true));
    let made: Vec<String> = versions
        .versions()
        .iter()
        .filter_map(|v| v.key().map(str::to_owned))
        .collect();
    let manifests: BTreeSet<String> = made.iter().filter(|k| k.ends_with(".manifest.json")).cloned().collect();
    let named: BTreeSet<String> = days
        .iter()
        .map(|t| lifeboat::bucket::layout::export_keys("app-db", "full", *t, false).1)
        .collect();
    assert_eq!(manifests, named, "exactly one export a day, named by its due time");
    let (watches, made): (Vec<String>, Vec<String>) = made.into_iter().partition(|k| k.ends_with(".watch.json"));
    assert_eq!(
        made.len(),
        2 * 31,
        "an archive and a manifest a day, each written once: {made:?}"
    );
    assert_eq!(watches.len(), 31, "one watch record a day, written once: {watches:?}");
    let watched: BTreeSet<String> = manifests
        .iter()
        .filter_map(|k| lifeboat::watch::run::watch_key(k))
        .collect();
    assert_eq!(
        watches.into_iter().collect::<BTreeSet<_>>(),
        watched,
        "each export's content watch record, written once"
    );

    // Kept and expired: each 02:00 run hid the export it made 15 days earlier (strictly older than 14 days), so
    // at the month's end the exports of October 17 (14 days old at the last run) to 31 are current and October 1
    // to 16 are behind delete markers, their bytes kept for the grace period.
    let expected_expiries: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        days[15..].iter().map(|t| (*t, *t - Duration::days(15))).collect();
    assert_eq!(expired_exports, expected_expiries);
    let (current, snapshots, executions) = w.made().await;
    let current_watches: BTreeSet<String> =
        lifeboat::bucket::layout::list_keys(&w.export.s3, BUCKET, "exports/", ".watch.json")
            .await
            .unwrap()
            .into_iter()
            .collect();
    let kept_watches: BTreeSet<String> = days[16..]
        .iter()
        .filter_map(|t| {
            lifeboat::watch::run::watch_key(&lifeboat::bucket::layout::export_keys("app-db", "full", *t, false).1)
        })
        .collect();
    assert_eq!(
        current_watches, kept_watches,
        "an expired export's content watch record is hidden with it"
    );
    let kept: BTreeSet<String> = days[16..]
        .iter()
        .flat_map(|t| {
            let (dump, manifest) = lifeboat::bucket::layout::export_keys("app-db", "full", *t, false);
            [dump, manifest]
        })
        .collect();
    assert_eq!(current, kept);
    let hidden: Vec<String> = days[..16]
        .iter()
        .flat_map(|t| {
            let (dump, manifest) = lifeboat::bucket::layout::export_keys("app-db", "full", *t, false);
            [dump, manifest]
        })
        .collect();
    lifeboat_tests::plans::assert_hidden(&w.export.s3, BUCKET, "exports/app-db/", &hidden).await;
    for key in kept.iter().filter(|k| k.ends_with(".manifest.json")) {
        let m: Manifest = lifeboat::bucket::layout::get_json(&w.export.s3, BUCKET, key)
            .await
            .unwrap();
        assert_eq!(
            (m.plan.as_deref(), m.plan_version.as_deref()),
            (Some("app"), Some(version.as_str()))
        );
        let rows: BTreeMap<&str, i64> = m.tables.iter().map(|t| (t.name.as_str(), t.rows)).collect();
        assert_eq!(rows, BTreeMap::from([("accounts", 40), ("orders", 120)]), "{key}");
    }

    // Cache snapshots: one a day; the last run kept the 7 before its own, so October 24 to 31 are left, and
    // the cache in no plan has none.
    let cache_days: BTreeSet<String> = (23..31)
        .map(|d| cache_snapshot(first_day + Duration::days(d) + Duration::hours(3)))
        .collect();
    assert_eq!(snapshots, cache_days);

    // Tested: every Monday (October 5, 12, 19 and 26) the two rules started once, with the plan's input only.
    let mondays = ["20261005", "20261012", "20261019", "20261026"];
    let names: Vec<String> = mondays
        .iter()
        .flat_map(|d| (0..2).map(move |n| format!("plan-app-restore_tests-{n}-{d}T0500Z")))
        .collect();
    let names: Vec<String> = names.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
    assert_eq!(executions, names);
    for e in w.listed().await {
        let described = w
            .sfn
            .describe_execution()
            .execution_arn(e.execution_arn())
            .send()
            .await
            .unwrap();
        let input: Value = serde_json::from_str(described.input().unwrap()).unwrap();
        let (rule, time) = (input["rule"].as_str().unwrap(), at(input["time"].as_str().unwrap()));
        assert_eq!(input["plan"], "app");
        assert_eq!(input.as_object().unwrap().len(), 3, "{input}");
        assert_eq!(
            e.name(),
            format!("plan-app-{}-{}", rule.replace('.', "-"), time.format("%Y%m%dT%H%MZ"))
        );
    }
    // Redelivered ticks make nothing twice (Step Functions answers a start of a running execution, same name and
    // input, as it answered the first one, so the proof is in the list of executions).
    let last_export = days[30];
    let again = w.tick(last_export).await;
    assert_eq!(again.export["exports"][0]["exports"][0]["outcome"], "already_exported");
    let again = w.tick(at("2026-10-26T05:00:00Z")).await;
    assert_eq!(again.snapshot.plan.as_ref().unwrap().restore_tests.len(), 2);
    assert_eq!(w.made().await, (kept.clone(), cache_days.clone(), names.clone()));

    // Alarmed, at the month's end: monitor holds app-db and app-cache to the plan's freshness (the daily export,
    // the daily cache snapshot, the weekly restore tests), and every age it publishes is within its alarm.
    let summary = w.monitor(end).await;
    let alarms = w.alarms().await;
    let thresholds: BTreeMap<&str, f64> = alarms.iter().map(|(n, (t, _, _))| (n.as_str(), *t)).collect();
    assert_eq!(
        thresholds,
        BTreeMap::from([
            ("lifeboat/prod/app-db/export-age-full", DAILY_S),
            // The content watch's alarm of a database whose exports are compared: any open anomaly.
            ("lifeboat/prod/app-db/content", 0.0),
            ("lifeboat/prod/app-db/restore-test-age", WEEKLY_S),
            ("lifeboat/prod/app-db/restore-test-failed", 1.0),
            // The weekly test of the newest daily export proves a point at most a week plus a day old.
            ("lifeboat/prod/app-db/verified-rpo", WEEKLY_S + DAILY_S),
            ("lifeboat/prod/cache:app-cache/snapshot-age", DAILY_S),
            ("lifeboat/prod/cache:app-cache/restore-test-age", WEEKLY_S),
            ("lifeboat/prod/cache:app-cache/restore-test-failed", 1.0),
        ])
    );
    let db = summary.databases.iter().find(|d| d.db == "app-db").unwrap();
    assert_eq!(db.export_age_hours.get("full").copied(), Some(22.0));
    let cache = summary.caches.iter().find(|c| c.cache == "app-cache").unwrap();
    assert_eq!(cache.snapshot_age_hours, Some(21.0));
    for name in [
        "lifeboat/prod/app-db/export-age-full",
        "lifeboat/prod/cache:app-cache/snapshot-age",
    ] {
        let alarm = &alarms[name];
        let value = w.watched_value(alarm, end).await;
        assert!(value < alarm.0, "{name}: {value} is past {}", alarm.0);
    }

    // Two days without exports (the cache snapshots go on): app-db's export is 50 hours old, past the 26.4 hours
    // its daily rule implies, and its alarm's metric says so; the cache's stays fresh.
    for d in 0..2 {
        let t = end + Duration::days(d) + Duration::hours(3);
        snapshot::handle_at(&w.snapshot, lifeboat_tests::plans::tick(t), t + Duration::minutes(1))
            .await
            .unwrap();
    }
    let late = end + Duration::days(1) + Duration::hours(4);
    let summary = w.monitor(late).await;
    let db = summary.databases.iter().find(|d| d.db == "app-db").unwrap();
    assert_eq!(db.export_age_hours.get("full").copied(), Some(50.0));
    let stale = &alarms["lifeboat/prod/app-db/export-age-full"];
    assert!(w.watched_value(stale, late).await > stale.0);
    let fresh = &alarms["lifeboat/prod/cache:app-cache/snapshot-age"];
    assert!(w.watched_value(fresh, late).await < fresh.0);
    eprintln!(
        "small-stack month: {month_s:.0} s for the month's ticks, {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
}
