//! The `snapshot` function in plan mode against moto: the three-environments policy
//! (`examples/plans/three-environments.json`) in a versioned bucket, a month and a half of quarter-hour ticks, and
//! exactly what the written policy says made, kept and expired; a new version mid-month, an invalid one after it.
//!
//! Every AWS request the handler sends is recorded by an interceptor on its clients, so an idle tick is proved to
//! read the plan document and nothing else, and never to write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_sdk_cloudwatch::types::Statistic;
use aws_sdk_rds::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_rds::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_rds::error::BoxError;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Duration, Utc};
use lifeboat::core::tags;
use lifeboat::plans::store::{Location, PlanVersion};
use lifeboat::rds::settings::SnapshotSettings;
use lifeboat::rds::snapshots::{self as rds, Snapshot};
use lifeboat_tests::fleet::{self, FleetDb};
use lifeboat_tests::moto::Moto;
use serde_json::{json, Value};
use snapshot::handler::{Outcome, Summary};
use snapshot::{handle_at, Deps};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-plans";
const KEY: &str = "plans/three-environments.json";

/// One instance per plan of the example, one in no plan; none carries the legacy selector's tag, so whatever
/// is snapshotted here is the plan's doing.
const FLEET: &[FleetDb] = &[
    FleetDb {
        id: "app-prod",
        cluster: false,
        tags: &[(tags::PLAN, "production")],
    },
    FleetDb {
        id: "app-staging",
        cluster: false,
        tags: &[(tags::PLAN, "staging")],
    },
    FleetDb {
        id: "app-dev",
        cluster: false,
        tags: &[(tags::PLAN, "dev")],
    },
    FleetDb {
        id: "sandbox",
        cluster: false,
        tags: &[("env", "sandbox")],
    },
];

/// An AWS request as sent: the service, the HTTP method, and the query protocol's `Action` (RDS, ElastiCache) or
/// the path (S3, CloudWatch).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    service: &'static str,
    method: String,
    action: String,
}

impl Call {
    /// A request that reads the plan document: S3's ListObjectVersions or GetObject, both GETs.
    fn reads_the_plan(&self) -> bool {
        self.service == "s3" && self.method == "GET"
    }
}

#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[derive(Debug)]
struct Record {
    service: &'static str,
    calls: Calls,
}

impl Intercept for Record {
    fn name(&self) -> &'static str {
        "record-calls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let body = request.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
        let action = body
            .split('&')
            .find_map(|p| p.strip_prefix("Action="))
            .map_or_else(|| request.uri().to_owned(), str::to_owned);
        self.calls.0.lock().unwrap().push(Call {
            service: self.service,
            method: request.method().to_owned(),
            action,
        });
        Ok(())
    }
}

fn settings(pairs: &[(&str, &str)]) -> SnapshotSettings {
    let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    SnapshotSettings::from_env(&move |name: &str| map.get(name).cloned()).unwrap()
}

/// The handler's dependencies in plan mode, every client recording what it sends.
fn deps(moto: &Moto, pairs: &[(&str, &str)], calls: &Calls) -> Deps {
    let config = moto.config(REGION);
    let rec = |service| Record {
        service,
        calls: calls.clone(),
    };
    let mut deps = Deps::new(&config, settings(pairs)).with_plan(Some(Location {
        bucket: BUCKET.into(),
        key: KEY.into(),
    }));
    deps.rds = aws_sdk_rds::Client::from_conf(
        aws_sdk_rds::config::Builder::from(&config)
            .interceptor(rec("rds"))
            .build(),
    )
    .into();
    deps.ec = aws_sdk_elasticache::Client::from_conf(
        aws_sdk_elasticache::config::Builder::from(&config)
            .interceptor(rec("elasticache"))
            .build(),
    )
    .into();
    deps.cw = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(&config)
            .interceptor(rec("cloudwatch"))
            .build(),
    )
    .into();
    deps.s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .interceptor(rec("s3"))
            .build(),
    )
    .into();
    deps
}

fn example() -> Vec<u8> {
    lifeboat_tests::plans::example("three-environments")
}

/// The example with production's daily retention changed.
fn with_production_daily(days: u32) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(&example()).unwrap();
    doc["plans"]["production"]["snapshots"]["retention"]["daily"] = json!(days);
    serde_json::to_vec_pretty(&doc).unwrap()
}

/// Uploads a version and returns its label. A second apart: S3 orders versions by their time.
async fn upload(s3: &aws_sdk_s3::Client, body: Vec<u8>) -> String {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s3.put_object()
        .bucket(BUCKET)
        .key(KEY)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    PlanVersion::new("", Utc::now(), &body).label().to_owned()
}

async fn versioned_bucket(s3: &aws_sdk_s3::Client) {
    lifeboat_tests::plans::versioned_bucket(s3, BUCKET).await;
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The scheduled ids of `db` for the days `from..=to` at 02:00.
fn ids(db: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut t = from;
    while t <= to {
        out.insert(format!("lifeboat-{db}-{}", t.format("%Y%m%d-%H%M")));
        t += Duration::days(1);
    }
    out
}

async fn owned(rds: &aws_sdk_rds::Client) -> Vec<Snapshot> {
    rds::list_manual(rds)
        .await
        .unwrap()
        .into_iter()
        .filter(Snapshot::owned)
        .collect()
}

async fn owned_ids(rds: &aws_sdk_rds::Client, db: &str) -> BTreeSet<String> {
    owned(rds)
        .await
        .into_iter()
        .filter(|s| s.db == db)
        .map(|s| s.id)
        .collect()
}

/// Ticks that are not 02:00: the quarters either side of it and a spread over the day.
fn idle_ticks(day: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    [-15, 15, 30, 60 * 10 + 45, 60 * 21 + 15]
        .into_iter()
        .map(|m| day + Duration::minutes(m))
        .collect()
}

/// One idle tick: it reads the plan document, answers with nothing due, and sends no other request.
async fn idle(deps: &Deps, calls: &Calls, t: DateTime<Utc>) {
    calls.take();
    let summary = handle_at(deps, lifeboat_tests::plans::tick(t), t + Duration::minutes(1))
        .await
        .unwrap();
    let sent = calls.take();
    assert!(
        !sent.is_empty() && sent.iter().all(Call::reads_the_plan),
        "the idle tick at {t} sent {sent:?}"
    );
    let plan = summary.plan.as_ref().unwrap();
    assert!(plan.due.is_empty() && summary.databases.is_empty() && summary.caches.is_empty());
    assert_eq!((summary.created, summary.metrics_published), (0, 0));
}

/// The 02:00 tick of `day`, delivered `late` after it.
async fn due(deps: &Deps, day: DateTime<Utc>, late: Duration) -> Summary {
    handle_at(
        deps,
        lifeboat_tests::plans::tick(day + late),
        day + late + Duration::minutes(1),
    )
    .await
    .unwrap()
}

fn report<'a>(summary: &'a Summary, db: &str) -> &'a snapshot::handler::DbReport {
    summary.databases.iter().find(|r| r.db == db).unwrap()
}

/// The tag keys the snapshot role's statement `sid` allows (`aws:TagKeys`, a list that may span lines).
fn allowed_tag_keys(sid: &str) -> BTreeSet<String> {
    let template = std::fs::read_to_string(lifeboat_tests::repo_root().join("infra/template.yaml")).unwrap();
    let role = &template[template.find("\n  SnapshotRole:\n").unwrap()..];
    let statement = &role[role.find(&format!("- Sid: {sid}\n")).unwrap()..];
    let list = &statement[statement.find("aws:TagKeys: [").unwrap() + "aws:TagKeys: [".len()..];
    let list = &list[..list.find(']').unwrap()];
    list.split(',').map(|k| k.trim().to_owned()).collect()
}

/// Every tag key of `written` is one the snapshot role may write with `sid`: what the code wrote in moto, IAM
/// would let it write in AWS.
fn allowed(sid: &str, written: &BTreeMap<String, String>) {
    let allowed = allowed_tag_keys(sid);
    let refused: Vec<&String> = written.keys().filter(|k| !allowed.contains(*k)).collect();
    assert!(refused.is_empty(), "SnapshotRole.{sid} does not allow {refused:?}");
}

async fn refused_metric(cw: &aws_sdk_cloudwatch::Client, t: DateTime<Utc>) -> Option<f64> {
    let out = cw
        .get_metric_statistics()
        .namespace("Lifeboat")
        .metric_name(lifeboat::core::metrics::PLAN_VERSIONS_REFUSED)
        .start_time(aws_smithy_types::DateTime::from_secs(
            (t - Duration::hours(1)).timestamp(),
        ))
        .end_time(aws_smithy_types::DateTime::from_secs(
            (t + Duration::hours(1)).timestamp(),
        ))
        .period(7200)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .unwrap();
    out.datapoints().iter().filter_map(|p| p.maximum()).reduce(f64::max)
}

#[tokio::test]
async fn a_month_of_ticks_makes_keeps_and_expires_what_the_three_environments_policy_says() {
    let moto = Moto::start();
    let calls = Calls::default();
    let deps = deps(&moto, &[], &calls);
    let s3 = aws_sdk_s3::Client::new(&moto.config(REGION));
    versioned_bucket(&s3).await;
    let v1 = upload(&s3, example()).await;
    fleet::create(&deps.rds, FLEET).await;
    deps.ec
        .create_replication_group()
        .replication_group_id("scratch")
        .replication_group_description("in no plan")
        .num_cache_clusters(1)
        .send()
        .await
        .unwrap();
    calls.take();

    // October 1 to November 1, 2026: every 02:00 tick, the idle ticks around it and across the day.
    let first = at("2026-10-01T02:00:00Z");
    let mut day = first;
    let mut last = None;
    while day <= at("2026-11-01T02:00:00Z") {
        for t in idle_ticks(day) {
            idle(&deps, &calls, t).await;
        }
        let summary = due(&deps, day, Duration::zero()).await;
        calls.take();
        let plan = summary.plan.as_ref().unwrap();
        assert_eq!(plan.version, v1);
        assert!(plan.refused.is_empty());
        let due_plans: Vec<&str> = plan.due.iter().map(|d| d.plan.as_str()).collect();
        assert_eq!(due_plans, ["production", "staging"], "{day}");
        let made: Vec<(&str, Outcome)> = summary.databases.iter().map(|r| (r.db.as_str(), r.outcome)).collect();
        assert_eq!(
            made,
            [("app-prod", Outcome::Created), ("app-staging", Outcome::Created)]
        );
        let unplanned: Vec<(&str, &str)> = plan.unplanned.iter().map(|u| (u.kind, u.id.as_str())).collect();
        assert_eq!(unplanned, [("database", "sandbox"), ("cache", "scratch")]);
        assert_eq!(summary.policy, format!("plan version {v1}"));
        last = Some(summary);
        day += Duration::days(1);
    }
    let last_day = day - Duration::days(1);

    // The run of November 1 sees October's 31 snapshots (its own is being made): production keeps its 30
    // dailies, the newest (Oct 31) and 29 more, and expires October 1; staging keeps 14.
    let last = last.unwrap();
    let prod = report(&last, "app-prod");
    let kept = prod.retention.iter().filter(|e| !e.decision.expires()).count();
    assert_eq!(
        (kept, prod.deleted.clone()),
        (30, vec!["lifeboat-app-prod-20261001-0200".to_owned()])
    );
    assert_eq!(
        owned_ids(&deps.rds, "app-prod").await,
        ids("app-prod", at("2026-10-02T02:00:00Z"), last_day)
    );
    let staging = report(&last, "app-staging");
    assert_eq!(staging.retention.iter().filter(|e| !e.decision.expires()).count(), 14);
    assert_eq!(
        owned_ids(&deps.rds, "app-staging").await,
        ids("app-staging", at("2026-10-18T02:00:00Z"), last_day)
    );
    // Dev is never backed up, the database in no plan neither; the deployment's selector plays no part.
    assert!(owned_ids(&deps.rds, "app-dev").await.is_empty());
    assert!(owned_ids(&deps.rds, "sandbox").await.is_empty());

    // Each snapshot is named by its due time and carries the plan, the version and the plan's policy.
    let s = owned(&deps.rds)
        .await
        .into_iter()
        .find(|s| s.id == "lifeboat-app-prod-20261101-0200")
        .unwrap();
    assert_eq!(s.tags[tags::PLAN], "production");
    assert_eq!(s.tags[tags::PLAN_VERSION], v1);
    assert_eq!(s.tags[tags::POLICY], "daily=30 weekly=0 monthly=0 yearly=0");
    assert_eq!(s.tags[tags::CREATED_AT], "2026-11-01T02:00:00Z");
    allowed("TagOwnSnapshots", &s.tags);
    let staging_snap = owned(&deps.rds)
        .await
        .into_iter()
        .find(|s| s.id == "lifeboat-app-staging-20261101-0200")
        .unwrap();
    assert_eq!(staging_snap.tags[tags::PLAN], "staging");
    assert_eq!(staging_snap.tags[tags::POLICY], "daily=14 weekly=0 monthly=0 yearly=0");

    // A redelivered tick, and one delivered seven minutes late (it stands for its quarter), make nothing twice.
    // (Their retention now counts the run's own snapshot, so each policy's oldest goes a day early: 30 and 14.)
    let ids_of = |snaps: Vec<Snapshot>| snaps.into_iter().map(|s| s.id).collect::<BTreeSet<String>>();
    let before = ids_of(owned(&deps.rds).await);
    for late in [Duration::zero(), Duration::minutes(7)] {
        let again = due(&deps, last_day, late).await;
        assert!(
            again.databases.iter().all(|r| r.outcome == Outcome::AlreadyExists),
            "{again:#?}"
        );
        assert_eq!(
            report(&again, "app-prod").snapshot_id.as_deref(),
            Some("lifeboat-app-prod-20261101-0200")
        );
        assert_eq!(again.created, 0);
    }
    let after = ids_of(owned(&deps.rds).await);
    assert!(after.is_subset(&before), "{after:?}");
    assert_eq!(
        before.difference(&after).collect::<Vec<_>>(),
        ["lifeboat-app-prod-20261002-0200", "lifeboat-app-staging-20261018-0200"]
    );

    // A manual snapshot keeps working, and the retention after it is the plan's (30 dailies), not the
    // deployment's default (7 dailies, 4 weeklies, 12 monthlies, which would expire most of October).
    let manual = json!({"databases": ["app-prod"], "reason": "before migration 42"});
    let summary = handle_at(&deps, manual, at("2026-11-01T03:00:00Z")).await.unwrap();
    let manual_report = report(&summary, "app-prod");
    assert_eq!(manual_report.outcome, Outcome::Created);
    assert!(manual_report.deleted.is_empty(), "{manual_report:#?}");
    assert_eq!(summary.plan.as_ref().unwrap().version, v1);
    let manual_id = manual_report.snapshot_id.clone().unwrap();
    let s = owned(&deps.rds).await.into_iter().find(|s| s.id == manual_id).unwrap();
    assert_eq!(s.tags[tags::PLAN], "production");
    assert_eq!(s.tags[tags::PLAN_VERSION], v1);
    assert_eq!(s.tags[tags::POLICY], "daily=30 weekly=0 monthly=0 yearly=0");
    assert_eq!(s.tags[tags::REASON], "before migration 42");
    allowed("TagOwnSnapshots", &s.tags);
    // Out of the way of the counts below (it is kept until its own expiry).
    deps.rds
        .delete_db_snapshot()
        .db_snapshot_identifier(&manual_id)
        .send()
        .await
        .unwrap();

    // November 2 to 10 under the first version, then a version that keeps production 7 days.
    let mut day = last_day + Duration::days(1);
    while day <= at("2026-11-10T02:00:00Z") {
        due(&deps, day, Duration::zero()).await;
        day += Duration::days(1);
    }
    let v2 = upload(&s3, with_production_daily(7)).await;
    assert_ne!(v2, v1);
    idle(&deps, &calls, day - Duration::minutes(15)).await;
    let eleventh = due(&deps, day, Duration::zero()).await;
    assert_eq!(eleventh.plan.as_ref().unwrap().version, v2);
    // The run of November 11 sees October 11 to November 10 and keeps the newest 7 days of them.
    let expected_deleted: Vec<String> = ids("app-prod", at("2026-10-11T02:00:00Z"), at("2026-11-03T02:00:00Z"))
        .into_iter()
        .rev()
        .collect();
    let mut deleted = report(&eleventh, "app-prod").deleted.clone();
    deleted.sort_by(|a, b| b.cmp(a));
    assert_eq!(deleted, expected_deleted);
    assert_eq!(
        owned_ids(&deps.rds, "app-prod").await,
        ids("app-prod", at("2026-11-04T02:00:00Z"), day)
    );
    // Staging's rule did not change: one expiry, as every day.
    assert_eq!(
        report(&eleventh, "app-staging").deleted,
        vec!["lifeboat-app-staging-20261027-0200".to_owned()]
    );
    let s = owned(&deps.rds)
        .await
        .into_iter()
        .find(|s| s.id == "lifeboat-app-prod-20261111-0200")
        .unwrap();
    assert_eq!(s.tags[tags::PLAN_VERSION], v2);
    assert_eq!(s.tags[tags::POLICY], "daily=7 weekly=0 monthly=0 yearly=0");

    // An invalid version: refused and reported, and the previous one keeps working.
    let bad = upload(
        &s3,
        br#"{"format": 1, "plans": {"production": {"snapshots": {"schedule": "0 2 * * *", "retention": {}}}}}"#
            .to_vec(),
    )
    .await;
    let twelfth_day = day + Duration::days(1);
    let twelfth = due(&deps, twelfth_day, Duration::zero()).await;
    let plan = twelfth.plan.as_ref().unwrap();
    assert_eq!(plan.version, v2);
    assert_eq!(plan.refused.len(), 1);
    assert_eq!(plan.refused[0].version, bad);
    assert!(
        plan.refused[0]
            .error
            .starts_with("plans.production.snapshots.retention: keeps nothing"),
        "{}",
        plan.refused[0].error
    );
    assert_eq!(report(&twelfth, "app-prod").outcome, Outcome::Created);
    assert_eq!(
        report(&twelfth, "app-prod").deleted,
        vec!["lifeboat-app-prod-20261104-0200".to_owned()]
    );
    let s = owned(&deps.rds)
        .await
        .into_iter()
        .find(|s| s.id == "lifeboat-app-prod-20261112-0200")
        .unwrap();
    assert_eq!(s.tags[tags::PLAN_VERSION], v2);
    let cw = aws_sdk_cloudwatch::Client::new(&moto.config(REGION));
    assert_eq!(refused_metric(&cw, twelfth_day).await, Some(1.0));
    assert_eq!(refused_metric(&cw, at("2026-11-01T02:00:00Z")).await, Some(0.0));
}

/// RDS's event for a finished snapshot.
fn finished(id: &str) -> Value {
    json!({"version": "0", "id": "e2", "detail-type": "RDS DB Snapshot Event", "source": "aws.rds",
        "account": "123456789012", "time": "2026-10-01T02:09:00Z", "region": REGION, "resources": [],
        "detail": {"SourceIdentifier": id, "EventID": "RDS-EVENT-0042"}})
}

#[tokio::test]
async fn only_plans_that_say_dr_copy_are_copied_and_a_membership_error_fails_alone() {
    let moto = Moto::start();
    let kms = aws_sdk_kms::Client::new(&moto.config("us-west-2"));
    let key = kms.create_key().send().await.unwrap();
    let key_arn = key.key_metadata().and_then(|k| k.arn()).unwrap().to_owned();
    let calls = Calls::default();
    let deps = deps(
        &moto,
        &[
            ("LIFEBOAT_DR_REGION", "us-west-2"),
            ("LIFEBOAT_DR_KMS_KEY_ID", &key_arn),
        ],
        &calls,
    );
    let dr = deps.dr_rds.clone().unwrap();
    let s3 = aws_sdk_s3::Client::new(&moto.config(REGION));
    versioned_bucket(&s3).await;
    const DBS: &[FleetDb] = &[
        FleetDb {
            id: "app-prod",
            cluster: false,
            tags: &[(tags::PLAN, "production")],
        },
        FleetDb {
            id: "app-staging",
            cluster: false,
            tags: &[(tags::PLAN, "staging")],
        },
        FleetDb {
            id: "typo",
            cluster: false,
            tags: &[(tags::PLAN, "prod")],
        },
    ];
    fleet::create(&deps.rds, DBS).await;
    let day1 = at("2026-10-01T02:00:00Z");

    // No version of the document yet: the run fails and nothing is made.
    let err = handle_at(&deps, lifeboat_tests::plans::tick(day1), day1)
        .await
        .unwrap_err();
    assert!(matches!(err, lifeboat::core::error::Error::Plan(_)), "{err}");
    assert!(owned(&deps.rds).await.is_empty());

    let version = upload(
        &s3,
        br#"{"format": 1, "plans": {
            "production": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}, "dr_copy": true}},
            "staging": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}}}}}"#
            .to_vec(),
    )
    .await;
    // `typo` names a plan the document does not have: it fails, named, and the others are made.
    let err = handle_at(&deps, lifeboat_tests::plans::tick(day1), day1)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("snapshot failed for 1 of 3 databases: typo (Failed: database `typo` is tagged `lifeboat:plan=prod`, and the plan document has no plan `prod`"),
        "{err}"
    );
    let made = ids_of_all(&deps.rds).await;
    assert_eq!(
        made,
        BTreeSet::from([
            "lifeboat-app-prod-20261001-0200".to_owned(),
            "lifeboat-app-staging-20261001-0200".to_owned()
        ])
    );

    // The finished events: production's plan copies, staging's does not (read from the snapshot's plan tag and
    // the document, not from the event).
    let prod = handle_at(&deps, finished("lifeboat-app-prod-20261001-0200"), Utc::now())
        .await
        .unwrap();
    assert_eq!(prod.databases[0].outcome, Outcome::Copied);
    assert_eq!(prod.plan.as_ref().map(|p| p.version.as_str()), Some(version.as_str()));
    let staging = handle_at(&deps, finished("lifeboat-app-staging-20261001-0200"), Utc::now())
        .await
        .unwrap();
    assert_eq!(staging.databases[0].outcome, Outcome::Ignored);
    assert_eq!(
        staging.databases[0].detail.as_deref(),
        Some("plan `staging` does not copy its snapshots (`dr_copy` is off)")
    );
    // The next tick's copy phase copies what the DR region lacks only for production.
    let day2 = day1 + Duration::days(1);
    let _ = handle_at(&deps, lifeboat_tests::plans::tick(day2), day2).await;
    let _ = handle_at(
        &deps,
        lifeboat_tests::plans::tick(day2 + Duration::days(1)),
        day2 + Duration::days(1),
    )
    .await;
    assert_eq!(
        ids_of_all(&dr).await,
        BTreeSet::from([
            "lifeboat-app-prod-20261001-0200".to_owned(),
            "lifeboat-app-prod-20261002-0200".to_owned()
        ])
    );
}

async fn ids_of_all(rds: &aws_sdk_rds::Client) -> BTreeSet<String> {
    owned(rds).await.into_iter().map(|s| s.id).collect()
}

#[tokio::test]
async fn the_small_stack_plan_snapshots_its_cache_and_only_its_cache() {
    let moto = Moto::start();
    let calls = Calls::default();
    let deps = deps(&moto, &[], &calls);
    let s3 = aws_sdk_s3::Client::new(&moto.config(REGION));
    versioned_bucket(&s3).await;
    let body = lifeboat_tests::plans::example("small-stack");
    let version = upload(&s3, body).await;
    // `app-db` and `app-cache` are the plan's by its lists; `other-cache` is in no plan.
    const DB: &[FleetDb] = &[FleetDb {
        id: "app-db",
        cluster: false,
        tags: &[],
    }];
    fleet::create(&deps.rds, DB).await;
    for id in ["app-cache", "other-cache"] {
        lifeboat_tests::plans::cache(&deps.ec, id, &[]).await;
    }

    let mut last = None;
    for n in 0..9 {
        let day = at("2026-10-01T03:00:00Z") + Duration::days(n);
        // 02:00 is the plan's export time: the export function's, nothing for this one.
        idle(&deps, &calls, day - Duration::hours(1)).await;
        let summary = handle_at(&deps, lifeboat_tests::plans::tick(day), day + Duration::minutes(1))
            .await
            .unwrap();
        let plan = summary.plan.as_ref().unwrap();
        assert_eq!(plan.version, version);
        let due: Vec<(&str, &str)> = plan.due.iter().map(|d| (d.plan.as_str(), d.rule.as_str())).collect();
        assert_eq!(due, [("app", "cache_snapshots")]);
        assert!(summary.databases.is_empty(), "{summary:#?}");
        let caches: Vec<(&str, Outcome)> = summary.caches.iter().map(|c| (c.cache.as_str(), c.outcome)).collect();
        assert_eq!(caches, [("app-cache", Outcome::Created)]);
        let unplanned: Vec<(&str, &str)> = plan.unplanned.iter().map(|u| (u.kind, u.id.as_str())).collect();
        assert_eq!(unplanned, [("cache", "other-cache")]);
        last = Some(summary);
    }
    // The ninth run sees eight days and keeps seven.
    let last = last.unwrap();
    assert_eq!(last.caches[0].deleted, ["lifeboat-app-cache-20261001-0300"]);
    let snaps = lifeboat::caches::elasticache::list_snapshots(&deps.ec).await.unwrap();
    let names: BTreeSet<String> = snaps.iter().map(|s| s.name.clone()).collect();
    assert_eq!(
        names,
        ids("app-cache", at("2026-10-02T03:00:00Z"), at("2026-10-09T03:00:00Z"))
    );
    let newest = snaps
        .iter()
        .find(|s| s.name == "lifeboat-app-cache-20261009-0300")
        .unwrap();
    assert_eq!(newest.tags[tags::PLAN], "app");
    assert_eq!(newest.tags[tags::PLAN_VERSION], version);
    assert_eq!(newest.tags[tags::POLICY], "daily=7 weekly=0 monthly=0 yearly=0");
    allowed("TagOwnCacheSnapshots", &newest.tags);
    assert!(owned(&deps.rds).await.is_empty(), "the plan takes no database snapshot");
}

/// The quarterly restore test of the three-environments policy: the tick at its due time starts one execution of
/// the restore-test state machine for production's rule, a redelivered tick no second one, a tick at another time
/// none; without a state machine the due rule fails the run, named, rather than vanishing.
#[tokio::test]
async fn a_due_restore_test_rule_starts_the_state_machine_once() {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    versioned_bucket(&s3).await;
    upload(&s3, example()).await;
    lifeboat_tests::fleet::create(&aws_sdk_rds::Client::new(&config), FLEET).await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    let arn = lifeboat_tests::plans::state_machine(&sfn).await;
    let calls = Calls::default();
    let with_machine = deps(&moto, &[], &calls).with_restore_tests(&config, Some(arn.clone()));

    // 1 January 2027, 06:00: production's quarterly rule (and no snapshot rule) is due.
    let summary = snapshot::handle(&with_machine, lifeboat_tests::plans::tick(at("2027-01-01T06:00:00Z")))
        .await
        .unwrap();
    let started = &summary.plan.as_ref().unwrap().restore_tests;
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(
        (started[0].plan.as_str(), started[0].rule.as_str()),
        ("production", "restore_tests.0")
    );
    assert_eq!(started[0].outcome, "started");
    assert!(
        summary.databases.is_empty(),
        "no snapshot rule is due at 06:00: {summary:?}"
    );
    snapshot::handle(&with_machine, lifeboat_tests::plans::tick(at("2027-01-01T06:07:00Z")))
        .await
        .unwrap();
    let summary = snapshot::handle(&with_machine, lifeboat_tests::plans::tick(at("2027-01-02T06:00:00Z")))
        .await
        .unwrap();
    assert!(summary.plan.unwrap().restore_tests.is_empty());
    let executions = sfn.list_executions().state_machine_arn(&arn).send().await.unwrap();
    let names: Vec<&str> = executions.executions().iter().map(|e| e.name()).collect();
    assert_eq!(names, ["plan-production-restore_tests-0-20270101T0600Z"]);

    // No state machine in this deployment: the due rule is a named failure of the run.
    let e = snapshot::handle(
        &deps(&moto, &[], &calls),
        lifeboat_tests::plans::tick(at("2027-04-01T06:00:00Z")),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("restore test restore_tests.0 of plan production")
            && e.contains("LIFEBOAT_RESTORE_TEST_STATE_MACHINE is unset"),
        "{e}"
    );
}
