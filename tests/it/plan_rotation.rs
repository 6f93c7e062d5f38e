//! Rotation follows the plan document, against moto: the rotate function's daily plan tick configures each plan
//! member's secret (found from the database's own `lifeboat:secret` tag, never from the tick) to rotate on its
//! plan's cadence, leaves one already in step alone, applies a changed cadence at the next tick; and monitor
//! reports a member whose credentials are older than its plan allows.
//!
//! moto's RotateSecret runs the rotation function's testSecret step even with `RotateImmediately=false`, as AWS
//! does, so the function is a stand-in registered in moto's Docker-free Lambda (`Moto::stand_in_function` says
//! why); the tick under test is `rotate::run`, in process.

use std::collections::BTreeMap;

use aws_sdk_rds::types::Tag;
use chrono::{Duration, Utc};
use lifeboat_tests::moto::Moto;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const PLANS: &str = "lifeboat-plans";
const KEY: &str = "lifeboat/plans.json";
const FUNCTION: &str = "lifeboat-rotate";

/// The variables given, over the stack name every monitor and notify needs (`LIFEBOAT_STACK_NAME`, here `prod`: the
/// alarms these tests read are `lifeboat/prod/<subject>/<check>`).
fn env(pairs: &[(&str, &str)]) -> impl lifeboat::core::settings::Env {
    let mut map: BTreeMap<String, String> = BTreeMap::from([("LIFEBOAT_STACK_NAME".to_owned(), "prod".to_owned())]);
    map.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    move |n: &str| map.get(n).cloned()
}

/// The three-environments policy (production and staging rotate every 90 days, dev has no rotation rule), with
/// production's cadence set to `days`.
fn policy(production_days: u32) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(&lifeboat_tests::plans::example("three-environments")).unwrap();
    doc["plans"]["production"]["rotation"]["every_days"] = json!(production_days);
    serde_json::to_vec(&doc).unwrap()
}

struct World {
    _moto: Moto,
    config: aws_config::SdkConfig,
    rds: aws_sdk_rds::Client,
    s3: aws_sdk_s3::Client,
    sm: aws_sdk_secretsmanager::Client,
    /// The stand-in rotate function's ARN, as the template sets `LIFEBOAT_ROTATE_FUNCTION_ARN`.
    function: String,
}

async fn world() -> World {
    let moto = Moto::start();
    let function = moto.stand_in_function(REGION, FUNCTION);
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    lifeboat_tests::plans::versioned_bucket(&s3, PLANS).await;
    World {
        rds: aws_sdk_rds::Client::new(&config),
        sm: aws_sdk_secretsmanager::Client::new(&config),
        s3,
        config,
        function,
        _moto: moto,
    }
}

/// What DescribeSecret says of a secret's rotation, and how many versions it has.
#[derive(Debug, PartialEq)]
struct Rotation {
    enabled: bool,
    lambda: Option<String>,
    days: Option<i64>,
    versions: usize,
}

impl World {
    /// Uploads a version of the plan document; returns the label (`PlanVersion::label`) it will be followed by.
    async fn upload(&self, body: &[u8]) -> String {
        self.s3
            .put_object()
            .bucket(PLANS)
            .key(KEY)
            .body(body.to_vec().into())
            .send()
            .await
            .unwrap();
        lifeboat::plans::store::PlanVersion::new("v", Utc::now(), body)
            .label()
            .to_owned()
    }

    /// A database in `plan` (if any) whose credentials are the secret `lifeboat/<id>`, named by its tag.
    async fn database(&self, id: &str, plan: Option<&str>) {
        let secret = format!("lifeboat/{id}");
        let value = json!({"engine": "postgres", "host": format!("{id}.example.internal"), "port": 5432,
            "username": "app", "password": "not-a-real-password-1", "dbname": "app"});
        self.sm
            .create_secret()
            .name(&secret)
            .secret_string(value.to_string())
            .send()
            .await
            .unwrap();
        let mut req = self
            .rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_instance_class("db.t4g.micro")
            .engine("postgres")
            .allocated_storage(20)
            .master_username("app")
            .master_user_password("not-a-real-password-1")
            .storage_encrypted(true)
            .backup_retention_period(7)
            .tags(Tag::builder().key("lifeboat:secret").value(&secret).build());
        if let Some(p) = plan {
            req = req.tags(Tag::builder().key("lifeboat:plan").value(p).build());
        }
        req.send().await.unwrap();
    }

    fn rotate_deps(&self) -> rotate::Deps {
        let document = format!("s3://{PLANS}/{KEY}");
        let settings = rotate::settings::RotateSettings::from_env(&env(&[
            ("LIFEBOAT_DB_SSLMODE", "disable"),
            ("LIFEBOAT_PLAN_DOCUMENT", &document),
            ("LIFEBOAT_ROTATE_FUNCTION_ARN", &self.function),
        ]))
        .unwrap();
        rotate::Deps::new(&self.config, settings)
    }

    /// One plan tick, as the scheduler sends it: nothing in it but its time.
    async fn tick(&self) -> Value {
        let event = json!({"detail-type": "Scheduled Event", "source": "aws.scheduler",
            "time": Utc::now().to_rfc3339(), "detail": {}});
        rotate::run(&self.rotate_deps(), event, None).await.unwrap()
    }

    async fn rotation(&self, db: &str) -> Rotation {
        let d = self
            .sm
            .describe_secret()
            .secret_id(format!("lifeboat/{db}"))
            .send()
            .await
            .unwrap();
        Rotation {
            enabled: d.rotation_enabled().unwrap_or(false),
            lambda: d.rotation_lambda_arn().filter(|a| !a.is_empty()).map(str::to_owned),
            days: d.rotation_rules().and_then(|r| r.automatically_after_days()),
            versions: d.version_ids_to_stages().map_or(0, |v| v.len()),
        }
    }
}

/// Each member's result in a tick's summary, by database.
fn results(summary: &Value) -> BTreeMap<String, String> {
    summary["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["db"].as_str().unwrap().to_owned(),
                d["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Production rotates every 90 days and dev has no rotation rule: a tick configures exactly production's secret
/// (this function, 90 days), a second tick changes nothing, and a new version of the document that says 30 days
/// is applied at the next tick. A database in no plan is never touched; a dev secret this function already
/// rotates (set up before plans drove rotation) is left rotating and reported.
#[tokio::test]
async fn a_tick_configures_exactly_the_members_whose_plan_rotates_and_follows_a_changed_cadence() {
    let w = world().await;
    let first = w.upload(&policy(90)).await;
    for (db, plan) in [
        ("app-prod", Some("production")),
        ("app-dev", Some("dev")),
        ("orphan", None),
    ] {
        w.database(db, plan).await;
    }
    let untouched = Rotation {
        enabled: false,
        lambda: None,
        days: None,
        versions: 1,
    };
    assert_eq!(w.rotation("app-prod").await, untouched, "moto starts with no rotation");

    let summary = w.tick().await;
    assert_eq!(
        summary["plan_version"], first,
        "the run records the version it followed"
    );
    assert_eq!(
        results(&summary),
        BTreeMap::from([
            ("app-prod".to_owned(), "configured".to_owned()),
            ("app-dev".to_owned(), "no_rule".to_owned())
        ]),
        "{summary:#}"
    );
    let prod = w.rotation("app-prod").await;
    assert!(prod.enabled, "{prod:?}");
    assert_eq!(prod.lambda.as_deref(), Some(w.function.as_str()));
    assert_eq!(prod.days, Some(90));
    assert_eq!(w.rotation("app-dev").await, untouched);
    assert_eq!(w.rotation("orphan").await, untouched);

    // Redelivered or the next day: nothing changes (RotateSecret would add a version in moto).
    let again = w.tick().await;
    assert_eq!(results(&again)["app-prod"], "in_step");
    assert_eq!(w.rotation("app-prod").await, prod);

    // A new version of the document: 30 days for production, followed from the next tick on.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = w.upload(&policy(30)).await;
    let changed = w.tick().await;
    assert_eq!(changed["plan_version"], second);
    assert_eq!(results(&changed)["app-prod"], "configured");
    let prod = w.rotation("app-prod").await;
    assert_eq!(
        (prod.enabled, prod.lambda.as_deref(), prod.days),
        (true, Some(w.function.as_str()), Some(30))
    );

    // dev's secret rotated by this function before plans drove rotation: left rotating, reported.
    w.sm.rotate_secret()
        .secret_id("lifeboat/app-dev")
        .rotation_lambda_arn(&w.function)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(90)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .unwrap();
    let later = w.tick().await;
    assert_eq!(results(&later)["app-dev"], "rotating_without_rule");
    assert_eq!(results(&later)["app-prod"], "in_step");
    assert!(
        w.rotation("app-dev").await.enabled,
        "a plan without the rule never turns rotation off"
    );
}

/// Monitor, read-only: production's secret, never rotated since it was created, is within 90 days + 10 % today
/// and overdue 100 days from now (monitor measures against the time it is given); dev, whose plan has no rotation
/// rule, is never overdue.
#[tokio::test]
async fn monitor_reports_a_rotation_older_than_the_plan_allows() {
    let w = world().await;
    w.upload(&policy(90)).await;
    w.database("app-prod", Some("production")).await;
    w.database("app-dev", Some("dev")).await;
    let document = format!("s3://{PLANS}/{KEY}");
    let settings = monitor::settings::MonitorSettings::from_env(&env(&[
        ("LIFEBOAT_BUCKET", BUCKET),
        ("LIFEBOAT_PLAN_DOCUMENT", &document),
    ]))
    .unwrap();
    let deps = monitor::Deps::new(&w.config, settings);

    let today = monitor::handler::handle_at(&deps, json!({}), Utc::now()).await.unwrap();
    assert!(today.plan.unwrap().rotations_overdue.is_empty());

    let later = monitor::handler::handle_at(&deps, json!({}), Utc::now() + Duration::days(100))
        .await
        .unwrap();
    let overdue = later.plan.unwrap().rotations_overdue;
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert!(
        overdue[0].starts_with("app-prod: rotation overdue under plan `production`: secret lifeboat/app-prod"),
        "{overdue:?}"
    );
    assert!(overdue[0].contains("past the plan's 99 days"), "{overdue:?}");
    assert!(
        later.attention.iter().any(|a| a == &overdue[0]),
        "{:?}",
        later.attention
    );
    let prod =
        w.sm.describe_secret()
            .secret_id("lifeboat/app-prod")
            .send()
            .await
            .unwrap();
    assert!(
        !prod.rotation_enabled().unwrap_or(false),
        "monitor never changes a rotation"
    );
}

/// A member of a rotating plan with no secret Lifeboat can find fails the tick (named, `Lifeboat.PartialFailure`)
/// while the others are still brought in step; nothing in the tick's payload could have named one instead.
#[tokio::test]
async fn a_member_without_a_secret_fails_the_tick_and_the_others_proceed() {
    let w = world().await;
    w.upload(&policy(90)).await;
    w.database("app-prod", Some("production")).await;
    w.rds
        .create_db_instance()
        .db_instance_identifier("app-staging")
        .db_instance_class("db.t4g.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("app")
        .master_user_password("not-a-real-password-1")
        .tags(Tag::builder().key("lifeboat:plan").value("staging").build())
        .send()
        .await
        .unwrap();
    // Extra keys naming a secret are not read: the tick takes its time and nothing else.
    let event = json!({"detail-type": "Scheduled Event", "source": "aws.scheduler", "time": Utc::now().to_rfc3339(),
        "detail": {"SecretId": "lifeboat/app-staging"}, "SecretId": "lifeboat/app-staging"});
    let e = rotate::run(&w.rotate_deps(), event, None).await.unwrap_err();
    assert_eq!(e.kind, rotate::ErrorKind::PartialFailure);
    assert!(
        e.message
            .contains("app-staging: no secret to rotate: tag the database `lifeboat:secret="),
        "{}",
        e.message
    );
    assert_eq!(w.rotation("app-prod").await.days, Some(90), "the others proceed");
}
