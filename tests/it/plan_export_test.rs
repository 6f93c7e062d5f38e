//! A plan's restore test from the newest export, against moto (RDS, S3, Secrets Manager, CloudWatch) and a real
//! PostgreSQL, driven through the steps in the order the state machine runs them (plan, export_start, poll
//! until available, export_verify, report, cleanup; on a failure: report the error, then clean up). The empty
//! instance export_start creates is answered for by the local PostgreSQL (`LIFEBOAT_RESTORE_RESOLVE`), which
//! also holds the `app` database the exports were taken from; the restore goes into a new database on it.

use std::collections::BTreeMap;

use aws_sdk_rds::types::Tag;
use lifeboat::rds::restore::{CheckResult, RESTORED_FROM, RESTORE_TEST, SOURCE_DB};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{self, Postgres, SUPERUSER};
use lifeboat_tests::repo_root;
use restore::settings::RestoreSettings;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const CONFIG: &str = "acme-config";
const KEY: &str = "lifeboat/plans.json";
/// The rule's due time: an hour after the newer export.
const DUE: &str = "2026-11-22T03:00:00Z";

const DOCUMENT: &str = r#"{"format": 1, "plans": {
  "product": {
    "exports": {"full": {"schedule": "0 2 * * *", "keep_days": 30},
                "critical": {"schedule": "0 2 * * *", "keep_days": 30}},
    "restore_tests": [{"schedule": "0 3 * * *", "from": "newest-export", "export": "full"},
                      {"schedule": "0 3 * * *", "from": "newest-export", "export": "critical"}]}}}"#;

struct World {
    _moto: Moto,
    pg: Postgres,
    rds: aws_sdk_rds::Client,
    s3: aws_sdk_s3::Client,
    sm: aws_sdk_secretsmanager::Client,
    deps: restore::Deps,
    /// The users of `app` when the newer `full` export was taken (the older one had fewer).
    users: String,
}

/// `app-prod` follows the plan `product`; two `full` exports of the local `app` (the newer one holds more
/// users), age-encrypted to an identity the restore function reads from Secrets Manager; no `critical` export.
async fn world() -> World {
    let moto = Moto::start();
    let pg = Postgres::start();
    pg.psql("postgres", "create database app").unwrap();
    pg.load_file("app", &repo_root().join("tests/demo/app.sql")).unwrap();
    let config = moto.config(REGION);
    let rds = aws_sdk_rds::Client::new(&config);
    let s3 = aws_sdk_s3::Client::new(&config);
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    lifeboat_tests::plans::versioned_bucket(&s3, CONFIG).await;
    s3.put_object()
        .bucket(CONFIG)
        .key(KEY)
        .body(DOCUMENT.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let secret = json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port, "username": SUPERUSER,
                        "password": pg.password, "dbname": "app"});
    sm.create_secret()
        .name("lifeboat/app-prod")
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
    rds.create_db_instance()
        .db_instance_identifier("app-prod")
        .db_instance_class("db.r6g.large")
        .engine("postgres")
        .allocated_storage(20)
        // The local PostgreSQL's superuser: the test's instance gets the source's master user.
        .master_username(SUPERUSER)
        .master_user_password("not-a-real-password-1")
        .tags(Tag::builder().key("lifeboat:secret").value("lifeboat/app-prod").build())
        .tags(Tag::builder().key("lifeboat:backup").value("true").build())
        .tags(Tag::builder().key("lifeboat:plan").value("product").build())
        .send()
        .await
        .unwrap();
    let identity = age::x25519::Identity::generate();
    {
        use age::secrecy::ExposeSecret;
        sm.create_secret()
            .name("lifeboat/age-identity")
            .secret_string(identity.to_string().expose_secret())
            .send()
            .await
            .unwrap();
    }
    let bin = postgres::bin_dir();
    let export_vars: BTreeMap<String, String> = [
        ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
        ("LIFEBOAT_DB_SSLMODE", "disable".to_owned()),
        ("LIFEBOAT_AGE_RECIPIENTS", identity.to_public().to_string()),
        // The fleet's secrets point at the local PostgreSQL, not at the endpoints moto makes up.
        ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned()),
        ("LIFEBOAT_PG_DUMP", bin.join("pg_dump").display().to_string()),
        ("LIFEBOAT_PG_RESTORE", bin.join("pg_restore").display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = export::settings::ExportSettings::from_env(&move |n: &str| export_vars.get(n).cloned()).unwrap();
    let export_deps = export::Deps::new(&config, settings);
    for (time, sql) in [
        ("2026-11-22T01:00:00Z", "select 1"),
        (
            "2026-11-22T02:00:00Z",
            "insert into users (email, name) values ('late@example.com', 'Late')",
        ),
    ] {
        pg.psql("app", sql).unwrap();
        let summary = export::handle(&export_deps, json!({"profile": "full", "time": time}), None)
            .await
            .unwrap();
        assert_eq!(summary.failed, 0, "{summary:?}");
    }
    let users = pg.psql("app", "select count(*) from users").unwrap();

    let vars: BTreeMap<String, String> = [
        ("LIFEBOAT_RESTORE_ENTRY", "steps".to_owned()),
        // moto's instances have endpoints nothing listens on: the local PostgreSQL answers for them.
        (
            "LIFEBOAT_RESTORE_RESOLVE",
            format!(".rds.amazonaws.com=127.0.0.1:{}", pg.port),
        ),
        ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
        ("LIFEBOAT_DB_SSLMODE", "disable".to_owned()),
        ("LIFEBOAT_PG_RESTORE", bin.join("pg_restore").display().to_string()),
        ("LIFEBOAT_AGE_IDENTITY_SECRET", "lifeboat/age-identity".to_owned()),
        ("LIFEBOAT_RESTORE_SUBNET_GROUP", "".to_owned()),
        ("LIFEBOAT_SERVERLESS_CACHES", "false".to_owned()),
        ("LIFEBOAT_PLAN_DOCUMENT", format!("s3://{CONFIG}/{KEY}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = RestoreSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
    World {
        _moto: moto,
        pg,
        rds,
        s3,
        sm,
        deps: restore::Deps::new(&config, settings),
        users,
    }
}

async fn step(deps: &restore::Deps, action: &str, test: &Value) -> Result<Value, String> {
    restore::handle(deps, json!({"action": action, "test": test}), None)
        .await
        .map_err(|e| e.to_string())
}

impl World {
    /// The plan step's item for the rule `restore_tests.<n>` at the due time.
    async fn planned(&self, n: usize) -> Value {
        let event = json!({"action": "plan", "time": DUE, "plan": "product", "rule": format!("restore_tests.{n}")});
        let out = restore::handle(&self.deps, event, None).await.unwrap();
        let tests = out["tests"].as_array().unwrap();
        assert_eq!(tests.len(), 1, "{out}");
        tests[0].clone()
    }

    /// The tags of the instance of that identifier, `None` when there is none (or it is being deleted).
    async fn instance_tags(&self, id: &str) -> Option<BTreeMap<String, String>> {
        let out = self.rds.describe_db_instances().send().await.unwrap();
        out.db_instances()
            .iter()
            .filter(|i| i.db_instance_identifier() == Some(id) && i.db_instance_status() != Some("deleting"))
            .map(|i| {
                i.tag_list()
                    .iter()
                    .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
                    .collect()
            })
            .next()
    }

    async fn secret_exists(&self, name: &str) -> bool {
        match self.sm.describe_secret().secret_id(name).send().await {
            Ok(d) => d.deleted_date().is_none(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(e) => panic!("{e:?}"),
        }
    }

    async fn json(&self, key: &str) -> Value {
        let out = self.s3.get_object().bucket(BUCKET).key(key).send().await.unwrap();
        serde_json::from_slice(&out.body.collect().await.unwrap().into_bytes()).unwrap()
    }

    /// The test's password secret, checked and then pointed at the local PostgreSQL's superuser (moto's
    /// instance accepts any password; the local server does not): what the real instance would accept.
    async fn answer_for_the_instance(&self, restored_id: &str) {
        let name = lifeboat::rds::restore::test_secret_name(restored_id);
        let value = self.sm.get_secret_value().secret_id(&name).send().await.unwrap();
        let creds: Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
        assert_eq!(creds["password"].as_str().unwrap().len(), 32, "a generated password");
        assert_eq!(creds["username"], SUPERUSER, "the source's master user");
        let local = json!({"username": SUPERUSER, "password": self.pg.password});
        self.sm
            .put_secret_value()
            .secret_id(&name)
            .secret_string(local.to_string())
            .send()
            .await
            .unwrap();
    }

    /// export_start, then poll until available (moto makes instances available at once).
    async fn started(&self, item: &Value) -> Value {
        let mut start = item.clone();
        start["action"] = json!("export_start");
        let test = restore::handle(&self.deps, start, None).await.unwrap();
        let mut test = step(&self.deps, "poll", &test).await.unwrap();
        while test["status"] != "available" {
            test = step(&self.deps, "poll", &test).await.unwrap();
        }
        test
    }

    /// The failure route: report with the caught error, then cleanup.
    async fn failed(&self, test: &Value, error: &str) -> (Value, Value) {
        let caught = json!({"Error": "Lifeboat.Restore.NoExport", "Cause": json!({"errorMessage": error}).to_string()});
        let event = json!({"action": "report", "test": test, "error": caught});
        let reported = restore::handle(&self.deps, event, None).await.unwrap();
        let cleaned = step(&self.deps, "cleanup", test).await.unwrap();
        (reported, cleaned)
    }
}

#[tokio::test]
async fn a_plan_test_from_the_newest_export_restores_it_into_an_empty_instance_reports_and_cleans_up() {
    let w = world().await;
    let item = w.planned(0).await;
    assert_eq!(
        item,
        json!({"database": "app-prod", "requested_at": DUE, "export": "full"}),
        "a test to run, not a plan_error"
    );
    let test = w.started(&item).await;
    let id = test["restored_id"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with("lifeboat-rx-app-prod-") && id.ends_with("-202611220300"),
        "{id}"
    );
    // The instance is a restore test of app-prod, made for the newest `full` export (chosen from the bucket).
    let newest = "exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.manifest.json";
    let tags = w.instance_tags(&id).await.expect("export_start created the instance");
    assert_eq!(tags[RESTORE_TEST], "true");
    assert_eq!(tags[SOURCE_DB], "app-prod");
    assert_eq!(tags[RESTORED_FROM], newest);
    assert!(tags.contains_key(lifeboat::rds::restore::EXPIRES_AT), "{tags:?}");
    let described = w
        .rds
        .describe_db_instances()
        .db_instance_identifier(&id)
        .send()
        .await
        .unwrap();
    let instance = &described.db_instances()[0];
    assert_eq!(instance.engine(), Some("postgres"));
    assert_eq!(instance.publicly_accessible(), Some(false));
    assert_eq!(instance.storage_encrypted(), Some(true));
    assert_eq!(instance.master_username(), Some(SUPERUSER));
    assert!(instance.allocated_storage().unwrap() >= 20);
    w.answer_for_the_instance(&id).await;
    // A redelivered start goes on with its instance, and keeps the password the instance was made with.
    let mut again = item.clone();
    again["action"] = json!("export_start");
    let redelivered = restore::handle(&w.deps, again, None).await.unwrap();
    assert_eq!(redelivered["restored_id"], id.as_str());
    // A snapshot test's prepare never resets this test's password.
    let e = step(&w.deps, "prepare", &test).await.unwrap_err();
    assert!(e.contains("export_verify"), "{e}");

    let verified = step(&w.deps, "export_verify", &test).await.unwrap();
    let checks = verified["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2, "{verified}");
    assert!(checks[0]["detail"].as_str().unwrap().starts_with(newest), "{verified}");
    assert!(checks.iter().all(|c| c["result"] == "passed"), "{verified}");
    // The newest export's data, restored for real into a new database on the test's instance, owned by its
    // own role.
    let restored = "lifeboat_verify_20261122030000";
    assert_eq!(w.pg.psql(restored, "select count(*) from users").unwrap(), w.users);
    assert_eq!(
        w.pg.psql(
            "postgres",
            &format!("select pg_get_userbyid(datdba) from pg_database where datname = '{restored}'")
        )
        .unwrap(),
        format!("{restored}_owner")
    );

    let reported = step(&w.deps, "report", &verified).await.unwrap();
    assert_eq!(reported["passed"], true, "{reported}");
    let key = "reports/restore-tests/app-prod/export-full-20261122T030000Z.json";
    assert_eq!(reported["report_key"], key);
    let report = w.json(key).await;
    assert_eq!(report["passed"], true);
    assert_eq!(report["export"], newest);
    assert_eq!(report["restored_id"], id.as_str());
    assert_eq!(report["rpo_seconds"], 3600.0, "the data is the export's: an hour old");
    // Monitor and the evidence report read it as app-prod's newest restore test, passed.
    let newest_report = lifeboat::bucket::layout::newest_key(
        &w.s3,
        BUCKET,
        &lifeboat::bucket::layout::restore_report_prefix("app-prod"),
        lifeboat::bucket::layout::REPORT_SUFFIX,
    )
    .await
    .unwrap();
    assert_eq!(newest_report.map(|(k, _)| k).as_deref(), Some(key));
    assert!(lifeboat::monitoring::monitor::restore_test_passed(Some(&report)));

    let cleaned = step(&w.deps, "cleanup", &reported).await.unwrap();
    assert!(
        matches!(cleaned["status"].as_str(), Some("deleting" | "deleted")),
        "{cleaned}"
    );
    assert!(w.instance_tags(&id).await.is_none(), "the instance is gone");
    assert!(!w.secret_exists(&lifeboat::rds::restore::test_secret_name(&id)).await);
    let summary = restore::handle(
        &w.deps,
        json!({"action": "summary", "results": [{"database": "app-prod", "passed": cleaned["passed"], "report": key}]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(summary["failed"], 0, "{summary}");
}

#[tokio::test]
async fn a_broken_or_missing_export_fails_the_test_and_is_still_cleaned_up() {
    let w = world().await;
    // The newest archive is damaged after the test started: its checksum no longer matches the manifest.
    let test = w.started(&w.planned(0).await).await;
    let id = test["restored_id"].as_str().unwrap().to_owned();
    w.answer_for_the_instance(&id).await;
    let newest = "exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.manifest.json";
    let archive = w.json(newest).await["stored"]["key"].as_str().unwrap().to_owned();
    w.s3.put_object()
        .bucket(BUCKET)
        .key(&archive)
        .body(b"not the archive the manifest describes".to_vec().into())
        .send()
        .await
        .unwrap();
    // A forged state naming another instance gains nothing.
    let mut forged = test.clone();
    forged["restored_id"] = json!("app-prod");
    let e = step(&w.deps, "export_verify", &forged).await.unwrap_err();
    assert!(e.contains("refused"), "{e}");
    // Nor does a snapshot test's verify on this test's state.
    let e = step(&w.deps, "verify", &test).await.unwrap_err();
    assert!(e.contains("export_verify"), "{e}");

    let verified = step(&w.deps, "export_verify", &test).await.unwrap();
    let restore_check = &verified["checks"][1];
    assert_eq!(restore_check["result"], "failed", "{verified}");
    assert!(verified["verified_at"].is_null(), "{verified}");
    assert_eq!(
        w.pg.psql(
            "postgres",
            "select count(*) from pg_database where datname like 'lifeboat_verify_%'"
        )
        .unwrap(),
        "0",
        "what the failed restore created is dropped"
    );
    let reported = step(&w.deps, "report", &verified).await.unwrap();
    assert_eq!(reported["passed"], false, "{reported}");
    let report = w
        .json("reports/restore-tests/app-prod/export-full-20261122T030000Z.json")
        .await;
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == serde_json::to_value(CheckResult::Failed).unwrap())
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    let cleaned = step(&w.deps, "cleanup", &reported).await.unwrap();
    assert!(
        matches!(cleaned["status"].as_str(), Some("deleting" | "deleted")),
        "{cleaned}"
    );
    assert!(w.instance_tags(&id).await.is_none());

    // The `critical` rule: no such export. The start fails, the failure route reports it and cleans up.
    let item = w.planned(1).await;
    assert_eq!(item["export"], "critical");
    let mut start = item.clone();
    start["action"] = json!("export_start");
    let e = restore::handle(&w.deps, start, None).await.unwrap_err().to_string();
    assert!(e.contains("no complete `critical` export"), "{e}");
    let (reported, cleaned) = w.failed(&item, &e).await;
    assert_eq!(reported["passed"], false, "{reported}");
    let report = w
        .json("reports/restore-tests/app-prod/export-critical-20261122T030000Z.json")
        .await;
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("no complete `critical` export"),
        "{report}"
    );
    assert_eq!(cleaned["status"], "deleted", "nothing was made: {cleaned}");
    let critical_id = lifeboat::rds::restore::export_test_identifier("app-prod", "critical", DUE.parse().unwrap());
    assert!(w.instance_tags(&critical_id).await.is_none());
}

#[tokio::test]
async fn a_start_leaves_alone_what_already_carries_its_instances_name() {
    let w = world().await;
    let item = w.planned(0).await;
    let id = lifeboat::rds::restore::export_test_identifier("app-prod", "full", DUE.parse().unwrap());
    // Somebody's instance by that name, not a restore test.
    w.rds
        .create_db_instance()
        .db_instance_identifier(&id)
        .db_instance_class("db.t4g.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("someone")
        .master_user_password("not-a-real-password-2")
        .send()
        .await
        .unwrap();
    let mut start = item.clone();
    start["action"] = json!("export_start");
    let e = restore::handle(&w.deps, start, None).await.unwrap_err().to_string();
    assert!(e.contains("left alone"), "{e}");
    // The failure route reports and cleans up, and the cleanup refuses to delete it.
    let caught = json!({"Error": "Lifeboat.Restore.NameTaken", "Cause": json!({"errorMessage": e}).to_string()});
    let reported = restore::handle(
        &w.deps,
        json!({"action": "report", "test": item, "error": caught}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(reported["passed"], false);
    let e = step(&w.deps, "cleanup", &item).await.unwrap_err();
    assert!(e.contains("refused"), "{e}");
    let described = w
        .rds
        .describe_db_instances()
        .db_instance_identifier(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(described.db_instances()[0].db_instance_status(), Some("available"));
}
