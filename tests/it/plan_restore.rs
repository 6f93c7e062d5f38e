//! The restore-test state machine's first step for a plan's restore-test rule, against moto: it reads the plan
//! document itself, tests exactly that plan's members, refuses a rule the plan did not schedule at that time,
//! and plans a test from the newest export with the rule's profile.

use std::collections::BTreeMap;

use lifeboat_tests::fleet::{self, FleetDb};
use lifeboat_tests::moto::Moto;
use restore::settings::RestoreSettings;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const CONFIG: &str = "acme-config";
const KEY: &str = "lifeboat/plans.json";

const DOCUMENT: &str = r#"{"format": 1, "plans": {
  "production": {
    "databases": ["billing"],
    "snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 30}},
    "restore_tests": [{"schedule": "0 6 1 1,4,7,10 *", "from": "newest-snapshot"}]},
  "product": {
    "exports": {"full": {"schedule": "0 2 * * *", "keep_days": 30}},
    "restore_tests": [{"schedule": "0 3 * * *", "from": "newest-export", "export": "full"}]},
  "dev": {"no_backups": "seeded"}}}"#;

const FLEET: &[FleetDb] = &[
    FleetDb {
        id: "app-prod",
        cluster: false,
        tags: &[("lifeboat:plan", "production")],
    },
    FleetDb {
        id: "billing",
        cluster: false,
        tags: &[],
    },
    FleetDb {
        id: "app-dev",
        cluster: false,
        tags: &[("lifeboat:plan", "dev")],
    },
    FleetDb {
        id: "product-db",
        cluster: false,
        tags: &[("lifeboat:plan", "product")],
    },
    // Tagged staging, listed nowhere: not production's, whatever a payload says.
    FleetDb {
        id: "app-staging",
        cluster: false,
        tags: &[("lifeboat:plan", "staging")],
    },
];

async fn world() -> (Moto, aws_config::SdkConfig) {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    fleet::create(&aws_sdk_rds::Client::new(&config), FLEET).await;
    lifeboat_tests::plans::versioned_bucket(&s3, CONFIG).await;
    s3.create_bucket().bucket("lifeboat-backups").send().await.unwrap();
    s3.put_object()
        .bucket(CONFIG)
        .key(KEY)
        .body(DOCUMENT.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    (moto, config)
}

fn deps(config: &aws_config::SdkConfig, plan: bool) -> restore::Deps {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("LIFEBOAT_RESTORE_ENTRY".into(), "steps".into());
    vars.insert("LIFEBOAT_BUCKET".into(), "lifeboat-backups".into());
    vars.insert("LIFEBOAT_SERVERLESS_CACHES".into(), "false".into());
    vars.insert("LIFEBOAT_DB_SSLMODE".into(), "disable".into());
    if plan {
        vars.insert("LIFEBOAT_PLAN_DOCUMENT".into(), format!("s3://{CONFIG}/{KEY}"));
    }
    let settings = RestoreSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
    restore::Deps::new(config, settings)
}

async fn plan(deps: &restore::Deps, time: &str, plan: &str, rule: &str) -> Result<Value, String> {
    let event = json!({"action": "plan", "time": time, "plan": plan, "rule": rule});
    restore::handle(deps, event, None).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_plan_rule_tests_exactly_its_plans_members_when_it_is_due() {
    let (_moto, config) = world().await;
    let d = deps(&config, true);
    let out = plan(&d, "2027-01-01T06:00:00Z", "production", "restore_tests.0")
        .await
        .unwrap();
    let tested: Vec<&str> = out["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["database"].as_str().unwrap())
        .collect();
    assert_eq!(tested, ["app-prod", "billing"], "{out}");
    assert_eq!(out["tests"][0]["requested_at"], "2027-01-01T06:00:00Z");
    assert_eq!(out["plan_version"].as_str().unwrap().len(), 12);

    // A test from the newest export is planned for each member with the rule's profile: the export branch runs
    // it (tests/it/plan_export_test.rs).
    let out = plan(&d, "2027-01-01T03:00:00Z", "product", "restore_tests.0")
        .await
        .unwrap();
    assert_eq!(
        out["tests"],
        json!([{"database": "product-db", "requested_at": "2027-01-01T03:00:00Z", "export": "full"}]),
        "{out}"
    );

    // What the plan did not schedule is refused: not due then, no such rule, no such plan.
    for (time, p, rule, expected) in [
        ("2027-01-02T06:00:00Z", "production", "restore_tests.0", "is not due at"),
        (
            "2027-01-01T06:00:00Z",
            "production",
            "restore_tests.3",
            "has no rule `restore_tests.3`",
        ),
        (
            "2027-01-01T06:00:00Z",
            "staging",
            "restore_tests.0",
            "no plan `staging`",
        ),
    ] {
        let e = plan(&d, time, p, rule).await.unwrap_err();
        assert!(e.contains(expected), "{p} {rule} {time}: {e}");
    }
    // `plan` without `rule`, or with a database list, is not a request this step takes.
    for bad in [
        json!({"action": "plan", "time": "2027-01-01T06:00:00Z", "plan": "production"}),
        json!({"action": "plan", "time": "2027-01-01T06:00:00Z", "plan": "production", "rule": "restore_tests.0", "databases": ["app-dev"]}),
    ] {
        let e = restore::handle(&d, bad.clone(), None).await.unwrap_err().to_string();
        assert!(e.starts_with("invalid event: plan:"), "{bad}: {e}");
    }
    // A stack without a plan document says so.
    let e = plan(
        &deps(&config, false),
        "2027-01-01T06:00:00Z",
        "production",
        "restore_tests.0",
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("this stack has none (LIFEBOAT_PLAN_DOCUMENT is unset)"),
        "{e}"
    );
    // The schedule's own input (plan and rule null) is the legacy run, as before.
    let out = restore::handle(
        &deps(&config, false),
        json!({"action": "plan", "time": "2027-01-01T06:00:00Z", "plan": null, "rule": null}),
        None,
    )
    .await
    .unwrap();
    assert!(out.get("plan").is_none(), "{out}");
}

#[tokio::test]
async fn a_due_rule_starts_one_execution_and_a_redelivered_tick_none() {
    let (_moto, config) = world().await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    let arn = lifeboat_tests::plans::state_machine(&sfn).await;
    let doc = lifeboat::plans::document::parse(DOCUMENT.as_bytes()).unwrap();
    let tick = "2027-01-01T06:00:00Z".parse().unwrap();
    let due = lifeboat::plans::due::due_at_tick(&doc, lifeboat::plans::document::RuleKind::RestoreTest, tick);
    assert_eq!(due.len(), 1, "{due:?}");
    let first = snapshot::restore_tests::start_due(&sfn, &arn, &due).await;
    assert_eq!(first[0].outcome, "started", "{first:?}");
    // Redelivered while the run goes on, Step Functions hands back the same execution (after it ended, it answers
    // ExecutionAlreadyExists): either way there is one execution.
    let again = snapshot::restore_tests::start_due(&sfn, &arn, &due).await;
    assert!(matches!(again[0].outcome, "started" | "already-started"), "{again:?}");
    let executions = sfn.list_executions().state_machine_arn(&arn).send().await.unwrap();
    let names: Vec<&str> = executions.executions().iter().map(|e| e.name()).collect();
    assert_eq!(names, ["plan-production-restore_tests-0-20270101T0600Z"]);
    let described = sfn
        .describe_execution()
        .execution_arn(executions.executions()[0].execution_arn())
        .send()
        .await
        .unwrap();
    let input: Value = serde_json::from_str(described.input().unwrap()).unwrap();
    assert_eq!(
        input,
        json!({"time": "2027-01-01T06:00:00Z", "plan": "production", "rule": "restore_tests.0"})
    );
    // The input is the state machine's, and its first step takes it: the members are the plan's.
    let mut step = input.clone();
    step["action"] = json!("plan");
    let planned = restore::handle(&deps(&config, true), step, None).await.unwrap();
    assert_eq!(planned["tests"].as_array().unwrap().len(), 2, "{planned}");
}
