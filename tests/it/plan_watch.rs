//! monitor and the evidence report in plan mode, against moto: the plan document is a versioned S3 object
//! (`examples/plans/three-environments.json`, read from the repository), databases join its plans by tag, and
//! the alarms monitor keeps, the figures it publishes and the report's "expected" all come from the version in
//! force.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_sdk_rds::types::Tag;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use lifeboat::core::error::Error;
use lifeboat_tests::moto::Moto;
use lifeboat_tests::repo_root;
use monitor::settings::MonitorSettings;
use serde_json::json;

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const PLANS: &str = "lifeboat-plans";
const KEY: &str = "lifeboat/plans.json";
/// 24 h + 10 %: the freshness a daily `snapshots` rule implies.
const DAILY_S: f64 = 26.4 * 3600.0;

fn env(pairs: &[(&str, &str)]) -> impl lifeboat::core::settings::Env {
    let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |n: &str| map.get(n).cloned()
}

fn three_environments() -> Vec<u8> {
    std::fs::read(repo_root().join("examples/plans/three-environments.json")).unwrap()
}

struct World {
    _moto: Moto,
    config: aws_config::SdkConfig,
    rds: aws_sdk_rds::Client,
    s3: aws_sdk_s3::Client,
    cw: aws_sdk_cloudwatch::Client,
}

async fn world(moto: Moto) -> World {
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    s3.create_bucket().bucket(PLANS).send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket(PLANS)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    World {
        rds: aws_sdk_rds::Client::new(&config),
        cw: aws_sdk_cloudwatch::Client::new(&config),
        s3,
        config,
        _moto: moto,
    }
}

impl World {
    /// Uploads a version of the plan document; returns its S3 version id.
    async fn upload(&self, body: &[u8]) -> String {
        let out = self
            .s3
            .put_object()
            .bucket(PLANS)
            .key(KEY)
            .body(body.to_vec().into())
            .send()
            .await
            .unwrap();
        out.version_id().unwrap().to_owned()
    }

    async fn instance(&self, id: &str, plan: Option<&str>) {
        let mut req = self
            .rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_instance_class("db.t4g.micro")
            .engine("postgres")
            .allocated_storage(20)
            .master_username("x")
            .master_user_password("not-a-real-password-1")
            .storage_encrypted(true)
            .backup_retention_period(7);
        if let Some(p) = plan {
            req = req.tags(Tag::builder().key("lifeboat:plan").value(p).build());
        }
        req.send().await.unwrap();
    }

    fn deps(&self) -> monitor::Deps {
        let document = format!("s3://{PLANS}/{KEY}");
        let settings = MonitorSettings::from_env(&env(&[
            ("LIFEBOAT_BUCKET", BUCKET),
            ("LIFEBOAT_PLAN_DOCUMENT", &document),
        ]))
        .unwrap();
        monitor::Deps::new(&self.config, settings)
    }

    /// Every Lifeboat alarm of the fleet, by name, with its threshold.
    async fn thresholds(&self) -> BTreeMap<String, f64> {
        let out = self
            .cw
            .describe_alarms()
            .alarm_name_prefix("lifeboat/")
            .send()
            .await
            .unwrap();
        out.metric_alarms()
            .iter()
            .map(|a| (a.alarm_name().unwrap().to_owned(), a.threshold().unwrap()))
            .collect()
    }

    /// The largest value of a metric without dimensions published in the last hour.
    async fn figure(&self, metric: &str) -> Option<f64> {
        let now = chrono::Utc::now().timestamp();
        let stats = self
            .cw
            .get_metric_statistics()
            .namespace("Lifeboat")
            .metric_name(metric)
            .set_dimensions(Some(Vec::<Dimension>::new()))
            .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(now - 3600))
            .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(now + 3600))
            .period(3600)
            .statistics(Statistic::Maximum)
            .send()
            .await
            .unwrap();
        stats.datapoints().iter().filter_map(|d| d.maximum()).reduce(f64::max)
    }
}

/// The three-environments policy in force, a newer version that fails validation above it, five databases:
/// production and staging get the plan's daily freshness (26.4 h), production its PITR minimum (7 days), its
/// monthly export and its quarterly restore test; dev is not backed up by policy and gets nothing; a database in
/// no plan and one tagged with a plan the document does not have are reported, published and get no alarms.
#[tokio::test]
async fn monitor_takes_each_databases_thresholds_from_its_plan_and_reports_what_no_plan_covers() {
    let w = world(Moto::start()).await;
    let in_force = w.upload(&three_environments()).await;
    // S3 stamps versions to the second: the newer one is a second later.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refused = w
        .upload(br#"{"format": 1, "plans": {"production": {"snapshots": {"schedule": "0 2 * * *"}}}}"#)
        .await;
    for (db, plan) in [
        ("app-prod", Some("production")),
        ("app-staging", Some("staging")),
        ("app-dev", Some("dev")),
        ("orphan", None),
        ("mistagged", Some("qa")),
    ] {
        w.instance(db, plan).await;
    }

    let summary = monitor::handle(&w.deps(), json!({})).await.unwrap();

    let plan = summary.plan.as_ref().expect("plan mode reports the plan it followed");
    assert_eq!(plan.document, format!("s3://{PLANS}/{KEY}"));
    let version = plan.version.as_ref().unwrap();
    assert_eq!(version.version_id, in_force);
    assert_eq!(plan.label, version.label());
    assert_eq!(plan.refused.len(), 1);
    assert_eq!(plan.refused[0].version.version_id, refused);
    assert!(
        plan.refused[0]
            .error
            .starts_with("plans.production.snapshots: missing field `retention`"),
        "{}",
        plan.refused[0].error
    );
    assert_eq!(
        plan.databases,
        BTreeMap::from([
            ("app-prod".to_owned(), "production".to_owned()),
            ("app-staging".to_owned(), "staging".to_owned())
        ])
    );
    assert_eq!(plan.unplanned, ["orphan"]);
    assert_eq!(plan.conflicts.len(), 1);
    assert!(
        plan.conflicts[0].contains("`mistagged` is tagged `lifeboat:plan=qa`, and the plan document has no plan `qa`"),
        "{:?}",
        plan.conflicts
    );
    assert_eq!(plan.not_backed_up.len(), 1);
    assert_eq!(
        (
            plan.not_backed_up[0].resource.as_str(),
            plan.not_backed_up[0].plan.as_str()
        ),
        ("app-dev", "dev")
    );
    assert_eq!(
        plan.not_backed_up[0].reason,
        "recreated at will from seed data; never backed up"
    );
    let watched: Vec<&str> = summary.databases.iter().map(|v| v.db.as_str()).collect();
    assert_eq!(watched, ["app-prod", "app-staging"]);
    for finding in [
        "orphan: in no plan",
        "mistagged` is tagged",
        "fails validation and is not used",
    ] {
        assert!(
            summary.attention.iter().any(|a| a.contains(finding)),
            "{finding} in {:?}",
            summary.attention
        );
    }
    assert!(
        !summary.attention.iter().any(|a| a.starts_with("app-dev")),
        "not backed up by policy is no finding: {:?}",
        summary.attention
    );

    // The alarms are the plan's: production's five, staging's one, nothing else.
    let quarterly = (92.0 + 9.2) * 86400.0;
    let expected: BTreeMap<String, f64> = [
        ("lifeboat/app-prod/snapshot-age", DAILY_S),
        ("lifeboat/app-prod/export-age-monthly", (31.0 * 24.0 + 74.4) * 3600.0),
        ("lifeboat/app-prod/restore-test-age", quarterly),
        ("lifeboat/app-prod/restore-test-failed", 1.0),
        ("lifeboat/app-prod/backup-retention", 7.0),
        ("lifeboat/app-staging/snapshot-age", DAILY_S),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_owned(), t))
    .collect();
    let got = w.thresholds().await;
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (name, t) in &expected {
        assert!((got[name] - t).abs() < 1.0, "{name}: {} is not {t}", got[name]);
    }

    // The run's plan figures.
    assert_eq!(w.figure("PlanUnassigned").await, Some(1.0));
    assert_eq!(w.figure("PlanConflicts").await, Some(1.0));
    assert_eq!(w.figure("PlanVersionsRefused").await, Some(1.0));
    assert_eq!(w.figure("PlanDocumentUnusable").await, Some(0.0));
}

/// No version passes validation: the run fails with the plan's error (Lifeboat.PlanError, a failed invocation)
/// and `PlanDocumentUnusable` = 1 is published for its alarm; nothing else is touched.
#[tokio::test]
async fn monitor_fails_with_the_plan_error_and_its_own_figure_when_no_version_is_usable() {
    let w = world(Moto::start()).await;
    w.instance("app-prod", Some("production")).await;
    let deps = w.deps();
    let e = monitor::handle(&deps, json!({})).await.unwrap_err();
    assert!(matches!(e, Error::Plan(_)), "{e}");
    assert!(e.to_string().contains("has no version"), "{e}");

    w.upload(b"{\"format\": 1, \"plans\": {}}").await;
    let e = monitor::run(&deps, json!({})).await.unwrap_err();
    assert!(matches!(e, Error::Plan(_)), "{e}");
    assert!(e.to_string().contains("passes validation"), "{e}");
    assert_eq!(w.figure("PlanDocumentUnusable").await, Some(1.0));
    assert!(w.thresholds().await.is_empty(), "no alarm set is made without a plan");
}
