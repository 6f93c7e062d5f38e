//! monitor and the evidence report in plan mode, against moto: the plan document is a versioned S3 object
//! (`examples/plans/three-environments.json`, read from the repository), databases join its plans by tag, and
//! the alarms monitor keeps, the figures it publishes and the report's "expected" all come from the version in
//! force.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use lifeboat::core::error::Error;
use lifeboat_tests::moto::Moto;
use monitor::settings::MonitorSettings;
use serde_json::json;

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const PLANS: &str = "lifeboat-plans";
const KEY: &str = "lifeboat/plans.json";
/// 24 h + 10 %: the freshness a daily `snapshots` rule implies.
const DAILY_S: f64 = 26.4 * 3600.0;

/// The variables given, over the stack name every monitor and notify needs (`LIFEBOAT_STACK_NAME`, here `prod`: the
/// alarms these tests read are `lifeboat/prod/<subject>/<check>`).
fn env(pairs: &[(&str, &str)]) -> impl lifeboat::core::settings::Env {
    let mut map: BTreeMap<String, String> = BTreeMap::from([("LIFEBOAT_STACK_NAME".to_owned(), "prod".to_owned())]);
    map.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    move |n: &str| map.get(n).cloned()
}

fn three_environments() -> Vec<u8> {
    lifeboat_tests::plans::example("three-environments")
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
    lifeboat_tests::plans::versioned_bucket(&s3, PLANS).await;
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
        let tags: Vec<(&str, &str)> = plan.map(|p| ("lifeboat:plan", p)).into_iter().collect();
        lifeboat_tests::plans::instance(&self.rds, id, &tags, 7).await;
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
        lifeboat_tests::plans::lifeboat_alarms(&self.cw)
            .await
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
    // Staging also lists, by name, a database the region does not have (a typo for app-staging).
    let text = String::from_utf8(three_environments()).unwrap();
    let listed = text.replacen(r#""staging": {"#, r#""staging": {"databases": ["app-stagin"], "#, 1);
    assert_ne!(listed, text);
    let in_force = w.upload(listed.as_bytes()).await;
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
    assert_eq!(plan.missing.len(), 1);
    assert!(
        plan.missing[0].starts_with("app-stagin: listed in plan `staging` and not in this region"),
        "{:?}",
        plan.missing
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
        "app-stagin: listed in plan `staging`",
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

    // The alarms are the plan's: production's seven (the content watch's among them), staging's one, nothing else.
    let quarterly = (92.0 + 9.2) * 86400.0;
    let expected: BTreeMap<String, f64> = [
        ("lifeboat/prod/app-prod/snapshot-age", DAILY_S),
        (
            "lifeboat/prod/app-prod/export-age-monthly",
            (31.0 * 24.0 + 74.4) * 3600.0,
        ),
        ("lifeboat/prod/app-prod/content", 0.0),
        ("lifeboat/prod/app-prod/restore-test-age", quarterly),
        ("lifeboat/prod/app-prod/restore-test-failed", 1.0),
        // The quarterly test of the newest daily snapshot.
        ("lifeboat/prod/app-prod/verified-rpo", quarterly + DAILY_S),
        ("lifeboat/prod/app-prod/backup-retention", 7.0),
        ("lifeboat/prod/app-staging/snapshot-age", DAILY_S),
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
    assert_eq!(w.figure("PlanMembersMissing").await, Some(1.0));
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

fn label(body: &[u8]) -> String {
    lifeboat::plans::store::PlanVersion::new("-", chrono::Utc::now(), body)
        .label()
        .to_owned()
}

async fn get(s3: &aws_sdk_s3::Client, key: &str) -> String {
    let body = s3.get_object().bucket(BUCKET).key(key).send().await.unwrap().body;
    String::from_utf8(body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
}

/// A plan change in the middle of the period: the three-environments policy written 20 days ago, then a version
/// 10 days ago in which staging snapshots twice a day. The report names, for each day, the version(s) in force
/// (label, S3 version id, time), counts each day's expected snapshots under them (nothing before the first
/// version, one a day, then two a day for staging), gives each database its plan and lists the one not backed up
/// by policy and the one in no plan. `lifeboat report` with the same variable says the same.
#[tokio::test]
async fn the_evidence_report_expects_what_the_version_in_force_each_day_scheduled_and_names_it() {
    let moto = Moto::start_with_clock();
    let now = chrono::Utc::now();
    let v1_body = three_environments();
    let v2_body = String::from_utf8(v1_body.clone())
        .unwrap()
        .replacen(
            r#""0 2 * * *", "retention": {"daily": 14}"#,
            r#""0 2,14 * * *", "retention": {"daily": 14}"#,
            1,
        )
        .into_bytes();
    assert_ne!(v1_body, v2_body);
    moto.set_ahead(-chrono::Duration::days(20));
    let w = world(moto).await;
    let v1 = w.upload(&v1_body).await;
    w._moto.set_ahead(-chrono::Duration::days(10));
    let v2 = w.upload(&v2_body).await;
    w._moto.set_ahead(chrono::Duration::zero());
    for (db, plan) in [
        ("app-prod", Some("production")),
        ("app-staging", Some("staging")),
        ("app-dev", Some("dev")),
        ("orphan", None),
    ] {
        w.instance(db, plan).await;
    }

    let summary = monitor::run(&w.deps(), json!({"action": "evidence-report"}))
        .await
        .unwrap();
    let data: serde_json::Value =
        serde_json::from_str(&get(&w.s3, summary["json_key"].as_str().unwrap()).await).unwrap();
    let html = get(&w.s3, summary["html_key"].as_str().unwrap()).await;

    let (v1_day, v2_day) = (
        (now - chrono::Duration::days(20)).date_naive(),
        (now - chrono::Duration::days(10)).date_naive(),
    );
    let plan = &data["plan"];
    assert_eq!(plan["document"], format!("s3://{PLANS}/{KEY}"));
    let days = plan["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    for day in days {
        let date: chrono::NaiveDate = day["date"].as_str().unwrap().parse().unwrap();
        let ids: Vec<&str> = day["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version_id"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = if date < v1_day {
            vec![]
        } else if date < v2_day {
            vec![v1.as_str()]
        } else if date == v2_day {
            vec![v1.as_str(), v2.as_str()]
        } else {
            vec![v2.as_str()]
        };
        assert_eq!(ids, expected, "on {date}");
        for v in day["versions"].as_array().unwrap() {
            let want = if v["version_id"] == v1.as_str() {
                &v1_body
            } else {
                &v2_body
            };
            assert_eq!(v["label"], label(want));
        }
    }

    // Each day's expected snapshots, from the version in force (days of a change depend on the hour it ran).
    let expected_of = |db: &str| -> BTreeMap<chrono::NaiveDate, u64> {
        let d = data["databases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["db"] == db)
            .unwrap();
        let s = d["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "snapshots")
            .unwrap();
        s["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["date"].as_str().unwrap().parse().unwrap(),
                    x["expected"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    for (db, after_change) in [("app-prod", 1), ("app-staging", 2)] {
        for (date, n) in expected_of(db) {
            let want = if date < v1_day {
                0
            } else if date > v1_day && date < v2_day {
                1
            } else if date > v2_day {
                after_change
            } else {
                continue;
            };
            assert_eq!(n, want, "{db} on {date}");
        }
    }
    let policy_of = |db: &str| {
        data["databases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["db"] == db)
            .unwrap()["policy"]
            .clone()
    };
    assert_eq!(policy_of("app-prod")["plan"], "production");
    assert_eq!(policy_of("app-prod")["min_retention_days"], 7.0);
    assert_eq!(policy_of("app-staging")["plan"], "staging");
    assert!(
        policy_of("app-staging")["restore_test_max_age_days"].is_null(),
        "staging has no restore test"
    );
    let staging = data["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["db"] == "app-staging")
        .unwrap();
    assert_eq!(staging["series"][0]["schedule"], "0 2,14 * * *");
    assert_eq!(
        plan["not_backed_up"],
        json!(["app-dev: not backed up by policy (plan `dev`: recreated at will from seed data; never backed up)"])
    );
    assert_eq!(plan["unplanned"], json!(["orphan"]));
    assert_eq!(data["databases"].as_array().unwrap().len(), 2);

    // The page says it too.
    assert!(html.contains("<h2>Plan in force</h2>"), "{html}");
    assert!(html.contains(&format!("version {} (S3 version {v1}, written ", label(&v1_body))));
    assert!(html.contains(&format!(
        "{v2_day}</span>: version {} (S3 version {v1}",
        label(&v1_body)
    )));
    assert!(html.contains(&format!("then version {} (S3 version {v2}", label(&v2_body))));
    assert!(html.contains("no valid plan version in force: nothing expected"));
    assert!(html.contains("`production` of the plan document"));

    // `lifeboat report` with the same variable judges the same way and names the same versions.
    let cli_out = tempfile::tempdir().unwrap();
    let out_file = cli_out.path().join("report.html");
    let document = format!("s3://{PLANS}/{KEY}");
    let out = std::process::Command::new(crate::cli::binary())
        .args(["report", "--json", "--out", out_file.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", &w._moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", cli_out.path().join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", cli_out.path().join("no-aws-credentials"))
        .env("LIFEBOAT_BUCKET", BUCKET)
        .env("LIFEBOAT_PLAN_DOCUMENT", &document)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["plan"]["days"], plan["days"]);
    let dbs: Vec<&str> = printed["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["database"].as_str().unwrap())
        .collect();
    assert_eq!(dbs.len(), 2);
    assert!(dbs.contains(&"app-prod") && dbs.contains(&"app-staging"), "{dbs:?}");

    // And a real browser opens it with its plan section as it does any report: no complaint, no request.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("plan-evidence.html");
    std::fs::write(&page, &html).unwrap();
    let (complaints, urls, png) = crate::evidence_browser::open(&page, dir.path());
    assert!(complaints.is_empty(), "{complaints:#?}");
    assert_eq!(crate::evidence_browser::fetched_elsewhere(&urls), Vec::<String>::new());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

/// The console's `plan-show` action says what `lifeboat plan show` says: a database's plan, each rule's next run,
/// freshness and last outcome found in AWS; a member of a plan that backs nothing up, with the reason; and a name
/// that is no database or cache of the account is refused.
#[tokio::test]
async fn the_consoles_plan_show_gives_a_resources_plan_next_runs_and_last_outcomes() {
    let w = world(Moto::start()).await;
    w.upload(&three_environments()).await;
    w.instance("app-prod", Some("production")).await;
    w.instance("app-dev", Some("dev")).await;
    // app-prod's monthly export, made two days ago (its manifest is what counts as complete).
    let made = chrono::Utc::now() - chrono::Duration::days(2);
    let (_, manifest) = lifeboat::bucket::layout::export_keys("app-prod", "monthly", made, false);
    w.s3.put_object()
        .bucket(BUCKET)
        .key(&manifest)
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();

    let deps = w.deps();
    let show = |resource: &str| monitor::run(&deps, json!({"action": "plan-show", "resource": resource}));
    let prod = show("app-prod").await.unwrap();
    assert_eq!(prod["version"], label(&three_environments()).as_str());
    assert_eq!(
        (prod["resource"].as_str(), prod["plan"].as_str()),
        (Some("app-prod"), Some("production"))
    );
    let rules: BTreeMap<&str, &serde_json::Value> = prod["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["rule"].as_str().unwrap(), r))
        .collect();
    assert_eq!(
        rules.keys().copied().collect::<Vec<_>>(),
        ["exports.monthly", "restore_tests.0", "rotation", "snapshots"]
    );
    let snapshots = rules["snapshots"];
    assert_eq!(snapshots["max_age_hours"], 26.4);
    assert!(snapshots["next"].as_str().unwrap().ends_with("T02:00Z"), "{snapshots}");
    assert_eq!(snapshots["last"], serde_json::Value::Null, "no snapshot yet: never");
    let monthly = rules["exports.monthly"];
    assert_eq!(
        monthly["last"]["time"],
        lifeboat::plans::standing::minute(made).as_str()
    );
    assert_eq!(monthly["last"]["outcome"], format!("complete ({manifest})").as_str());
    assert_eq!(monthly["late"], false);
    assert!(rules["rotation"]["last"]["outcome"]
        .as_str()
        .unwrap()
        .starts_with("no secret"));

    let dev = show("app-dev").await.unwrap();
    assert_eq!(dev["plan"], "dev");
    assert_eq!(dev["no_backups"], "recreated at will from seed data; never backed up");
    assert_eq!(dev["rules"], json!([]));

    for (resource, words) in [
        ("ghost", "no database or cache `ghost`"),
        ("a b", "not an RDS or ElastiCache identifier"),
    ] {
        let err = show(resource).await.unwrap_err();
        assert!(matches!(err, Error::InvalidEvent(_)), "{err}");
        assert!(err.to_string().contains(words), "{err}");
    }
}
