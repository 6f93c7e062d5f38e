//! The `restore` handler against moto (RDS, S3, Secrets Manager, CloudWatch) and a real PostgreSQL. The tests
//! drive the steps in the order the state machine does (and its failure path: report the error, then clean up);
//! the verify step reaches the endpoint moto describes for the restored instance on the local PostgreSQL
//! (`LIFEBOAT_RESTORE_RESOLVE`), which holds the database the export was taken from. Some tests play the
//! attacker who may invoke a step or the console: forged states, reports and entries gain nothing.

use std::collections::BTreeMap;

use aws_sdk_rds::types::Tag;
use lifeboat::rds::restore::{CheckResult, RESTORE_TEST};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{self, Postgres, SUPERUSER};
use lifeboat_tests::repo_root;
use restore::settings::RestoreSettings;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";

struct World {
    _moto: Moto,
    pg: Postgres,
    config: aws_config::SdkConfig,
    rds: aws_sdk_rds::Client,
    s3: aws_sdk_s3::Client,
    sm: aws_sdk_secretsmanager::Client,
    vars: BTreeMap<String, String>,
    /// The test's request time: an hour after the snapshot (moto stamps snapshots with the current time), so
    /// the expected RPO is an hour.
    requested: String,
}

/// A fleet with `app-prod` (a snapshot of it, and a complete age-encrypted export of the local `app` database),
/// the age identity in Secrets Manager for the verify step.
async fn world() -> World {
    world_with("").await
}

/// The world, with `sql` run in the source database before its export.
async fn world_with(sql: &str) -> World {
    let moto = Moto::start();
    let pg = Postgres::start();
    pg.psql("postgres", "create database app").unwrap();
    pg.load_file("app", &repo_root().join("tests/demo/app.sql")).unwrap();
    if !sql.is_empty() {
        pg.psql("app", sql).unwrap();
    }
    let config = moto.config(REGION);
    let rds = aws_sdk_rds::Client::new(&config);
    let s3 = aws_sdk_s3::Client::new(&config);
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
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
        // The local PostgreSQL's superuser: the verify step logs in as the restored copy's master user.
        .master_username(SUPERUSER)
        .master_user_password("not-a-real-password-1")
        .tags(Tag::builder().key("lifeboat:secret").value("lifeboat/app-prod").build())
        .tags(Tag::builder().key("lifeboat:backup").value("true").build())
        .send()
        .await
        .unwrap();
    rds.create_db_snapshot()
        .db_instance_identifier("app-prod")
        .db_snapshot_identifier("lifeboat-app-prod-20261122-0200")
        .send()
        .await
        .unwrap();

    // A real export of `app`, encrypted to an identity the restore function can read from Secrets Manager.
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
        (
            "LIFEBOAT_EXPORT_PROFILES",
            r#"{"full": {}, "critical": {"include": ["users", "projects"]}}"#.to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = export::settings::ExportSettings::from_env(&move |n: &str| export_vars.get(n).cloned()).unwrap();
    let export_deps = export::Deps::new(&config, settings);
    for profile in ["full", "critical"] {
        let event = json!({"profile": profile, "time": "2026-11-22T02:30:00Z"});
        let summary = export::handle(&export_deps, event, None).await.unwrap();
        assert_eq!(summary.failed, 0, "{summary:?}");
    }

    let vars: BTreeMap<String, String> = [
        ("LIFEBOAT_RESTORE_ENTRY", "steps".to_owned()),
        // moto's restored instances have endpoints nothing listens on: the local PostgreSQL answers for them.
        (
            "LIFEBOAT_RESTORE_RESOLVE",
            format!(".rds.amazonaws.com=127.0.0.1:{}", pg.port),
        ),
        ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
        ("LIFEBOAT_DB_SSLMODE", "disable".to_owned()),
        ("LIFEBOAT_PG_RESTORE", bin.join("pg_restore").display().to_string()),
        ("LIFEBOAT_AGE_IDENTITY_SECRET", "lifeboat/age-identity".to_owned()),
        ("LIFEBOAT_RESTORE_SUBNET_GROUP", "".to_owned()),
        (
            "LIFEBOAT_RESTORE_CHECKS",
            json!([{"name": "users not empty", "sql": "select count(*) > 0 from users"},
                   {"name": "now() answers", "sql": "select now() is not null"}])
            .to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let requested = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    World {
        _moto: moto,
        pg,
        config,
        rds,
        s3,
        sm,
        vars,
        requested,
    }
}

impl World {
    fn deps(&self, overrides: &[(&str, &str)]) -> restore::Deps {
        let mut vars = self.vars.clone();
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let settings = RestoreSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
        restore::Deps::new(&self.config, settings)
    }

    /// The console's function (the same settings, the other entry).
    fn console(&self) -> restore::Deps {
        self.deps(&[("LIFEBOAT_RESTORE_ENTRY", "console")])
    }

    /// The password the test's secret holds, after checking the secret is one of Lifeboat's restore tests.
    async fn secret_password(&self, arn: &str) -> String {
        let described = self.sm.describe_secret().secret_id(arn).send().await.unwrap();
        assert!(
            described
                .name()
                .unwrap()
                .starts_with("lifeboat/restore-test/lifeboat-rt-"),
            "{described:?}"
        );
        let tags: BTreeMap<_, _> = described
            .tags()
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()))
            .collect();
        assert_eq!(tags[RESTORE_TEST], "true");
        // The tag that would admit the secret to the export's and rotate's roles is absent.
        assert!(!tags.contains_key("lifeboat:managed"), "{tags:?}");
        let value = self.sm.get_secret_value().secret_id(arn).send().await.unwrap();
        let creds: Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
        creds["password"].as_str().unwrap().to_owned()
    }

    /// Whether the secret of that ARN still exists.
    async fn secret_exists(&self, arn: &str) -> bool {
        match self.sm.describe_secret().secret_id(arn).send().await {
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

    async fn test_instances(&self) -> Vec<String> {
        let out = self.rds.describe_db_instances().send().await.unwrap();
        out.db_instances()
            .iter()
            .filter(|i| i.tag_list().iter().any(|t| t.key() == Some(RESTORE_TEST)))
            .filter(|i| i.db_instance_status() != Some("deleting"))
            .filter_map(|i| i.db_instance_identifier().map(str::to_owned))
            .collect()
    }

    async fn object(&self, key: &str) -> Vec<u8> {
        let out = self.s3.get_object().bucket(BUCKET).key(key).send().await.unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }
}

async fn step(deps: &restore::Deps, action: &str, test: &Value) -> Result<Value, String> {
    restore::handle(deps, json!({"action": action, "test": test}), None)
        .await
        .map_err(|e| e.to_string())
}

/// What one pass along the state machine's path left behind.
struct Ran {
    done: Option<Value>,
    trail: Vec<String>,
    /// Every step's output, as the execution's history keeps it.
    outputs: Vec<Value>,
    /// The generated master password and the ARN of the secret holding it, read after prepare.
    password: Option<(String, String)>,
}

/// The state machine's path for one database: start, poll until available, prepare, verify (the local
/// PostgreSQL answers for the endpoint moto describes; its password goes in the test's secret), report, cleanup;
/// on a failure after start: report the error, then clean up. `fault` may replace the function's dependencies for one step, to make
/// that step fail.
async fn run(w: &World, deps: &restore::Deps, fault: Option<(&str, &restore::Deps)>) -> Ran {
    let mut trail = Vec::new();
    let mut outputs = Vec::new();
    let mut password = None;
    let pick = |name: &str| match fault {
        Some((at, bad)) if at == name => bad,
        _ => deps,
    };
    let started = restore::handle(
        pick("start"),
        json!({"action": "start", "database": "app-prod", "requested_at": w.requested}),
        None,
    )
    .await;
    let mut test = match started {
        Ok(t) => t,
        Err(e) => {
            trail.push(format!("start failed: {e}"));
            return Ran {
                done: None,
                trail,
                outputs,
                password,
            };
        }
    };
    outputs.push(test.clone());
    trail.push("start".into());
    let mut failure: Option<String> = None;
    for action in ["poll", "prepare", "verify", "report"] {
        if action == "poll" {
            // moto makes restored instances available at once; the state machine would wait and poll again.
            loop {
                match step(pick("poll"), "poll", &test).await {
                    Ok(t) if t["status"] == "available" => {
                        outputs.push(t.clone());
                        test = t;
                        break;
                    }
                    Ok(t) => {
                        outputs.push(t.clone());
                        test = t;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        } else {
            if action == "verify" {
                let arn = test["password_secret"]
                    .as_str()
                    .expect("prepare puts its secret's ARN in the state")
                    .to_owned();
                let generated = w.secret_password(&arn).await;
                assert_eq!(generated.len(), 32, "prepare set a password");
                let local = json!({"username": SUPERUSER, "password": w.pg.password});
                let name = lifeboat::rds::restore::test_secret_name(test["restored_id"].as_str().unwrap());
                w.sm.put_secret_value()
                    .secret_id(&name)
                    .secret_string(local.to_string())
                    .send()
                    .await
                    .unwrap();
                password = Some((generated, arn));
            }
            match step(pick(action), action, &test).await {
                Ok(t) => {
                    outputs.push(t.clone());
                    test = t;
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = &failure {
            trail.push(format!("{action} failed: {e}"));
            let error = json!({"Error": "Lifeboat.PartialFailure", "Cause": json!({"errorMessage": e}).to_string()});
            let reported = restore::handle(deps, json!({"action": "report", "test": test, "error": error}), None).await;
            if let Ok(r) = &reported {
                outputs.push(r.clone());
            }
            trail.push(format!(
                "report after failure: {}",
                if reported.is_ok() { "written" } else { "failed" }
            ));
            break;
        }
        trail.push(action.into());
    }
    let cleaned = step(deps, "cleanup", &test).await.unwrap();
    outputs.push(cleaned.clone());
    trail.push(format!("cleanup: {}", cleaned["status"]));
    Ran {
        done: Some(if failure.is_none() { cleaned } else { test }),
        trail,
        outputs,
        password,
    }
}

#[tokio::test]
async fn a_restore_test_restores_verifies_reports_and_cleans_up() {
    let w = world().await;
    let deps = w.deps(&[]);

    let plan = restore::handle(&deps, json!({"action": "plan", "time": w.requested}), None)
        .await
        .unwrap();
    assert_eq!(
        plan["tests"],
        json!([{"database": "app-prod", "requested_at": w.requested}])
    );

    // Start, and look at what it made before anything else happens.
    let test = restore::handle(
        &deps,
        json!({"action": "start", "database": "app-prod", "requested_at": w.requested}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(test["snapshot_id"], "lifeboat-app-prod-20261122-0200");
    let id = test["restored_id"].as_str().unwrap().to_owned();
    let at: chrono::DateTime<chrono::Utc> = w.requested.parse().unwrap();
    assert_eq!(id, lifeboat::rds::restore::test_identifier("app-prod", at));
    let described = w
        .rds
        .describe_db_instances()
        .db_instance_identifier(&id)
        .send()
        .await
        .unwrap();
    let instance = &described.db_instances()[0];
    // moto does not echo PubliclyAccessible or DeletionProtection for restored instances (the adapter test in
    // shared/src/rds/instances.rs checks the request); they must at least not be on.
    assert_ne!(instance.publicly_accessible(), Some(true));
    assert_ne!(instance.deletion_protection(), Some(true));
    assert_eq!(
        instance.db_instance_class(),
        Some("db.t4g.micro"),
        "a small class, not the source's"
    );
    let tags: BTreeMap<_, _> = instance
        .tag_list()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags[RESTORE_TEST], "true");
    assert_eq!(tags["lifeboat:source-db"], "app-prod");
    assert!(tags["lifeboat:expires-at"]
        .parse::<chrono::DateTime<chrono::Utc>>()
        .is_ok());
    // A redelivered start reuses the instance.
    let again = restore::handle(
        &deps,
        json!({"action": "start", "database": "app-prod", "requested_at": w.requested}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(again["restored_id"], id.as_str());
    step(&deps, "cleanup", &test).await.unwrap();

    let Ran { done, trail, .. } = run(&w, &deps, None).await;
    let done = done.unwrap();
    assert_eq!(
        trail,
        ["start", "poll", "prepare", "verify", "report", "cleanup: \"deleting\""],
        "{trail:?}"
    );
    assert_eq!(done["passed"], true, "{done}");
    assert!(
        w.test_instances().await.is_empty(),
        "the restored instance is going away"
    );

    let report: Value = serde_json::from_slice(&w.object(done["report_key"].as_str().unwrap()).await).unwrap();
    assert_eq!(report["passed"], true);
    let checks: BTreeMap<String, String> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for name in [
        "connect",
        "users not empty",
        "now() answers",
        "rows of public.users",
        "rows of public.messages",
        "the latest export restores with pg_restore",
        // A partial profile's archive is restored for real too, not only parsed.
        "the latest `critical` export restores with pg_restore",
    ] {
        assert_eq!(
            checks.get(name).map(String::as_str),
            Some("passed"),
            "{name}: {report:#}"
        );
    }
    assert!(report["rto_seconds"].as_f64().is_some());
    let rpo = report["rpo_seconds"].as_f64().unwrap();
    assert!(
        (3500.0..3700.0).contains(&rpo),
        "the snapshot's age at the request: {rpo}"
    );
    let md = String::from_utf8(
        w.object(&done["report_key"].as_str().unwrap().replace(".json", ".md"))
            .await,
    )
    .unwrap();
    assert!(md.starts_with("# Restore test of app-prod: PASSED"), "{md}");
    // The scratch database is gone again.
    assert_eq!(
        w.pg.psql(
            "postgres",
            "select count(*) from pg_database where datname like 'lifeboat_verify_%'"
        )
        .unwrap(),
        "0"
    );
    assert_eq!(
        w.pg.psql(
            "postgres",
            "select count(*) from pg_roles where rolname like 'lifeboat_verify_%'"
        )
        .unwrap(),
        "0",
        "and so are the roles that owned them"
    );
    // Metrics.
    let cw = aws_sdk_cloudwatch::Client::new(&w.config);
    let metrics = cw.list_metrics().namespace("Lifeboat").send().await.unwrap();
    let names: Vec<_> = metrics.metrics().iter().filter_map(|m| m.metric_name()).collect();
    for m in ["RestoreTestSuccess", "RestoreTimeSeconds", "RestoreDataAgeSeconds"] {
        assert!(names.contains(&m), "{m} in {names:?}");
    }
    // And the run's verdict.
    let summary = restore::handle(
        &deps,
        json!({"action": "summary", "results": [{"database": "app-prod", "passed": true}]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(summary["failed"], 0);
}

/// `"a.b".c` and `a."b.c"` both read `a.b.c` when schema and name are joined with a dot: verification keeps them
/// apart, counts each by its own schema and name, and shows the dotted part quoted.
#[tokio::test]
async fn verification_tells_a_dot_inside_a_name_from_the_schema_dot() {
    let w = world_with(
        "create schema \"a.b\"; create table \"a.b\".c (v int); insert into \"a.b\".c select generate_series(1, 3);
         create schema a; create table a.\"b.c\" (v int); insert into a.\"b.c\" select generate_series(1, 5);",
    )
    .await;
    let deps = w.deps(&[]);
    let Ran { done, trail, .. } = run(&w, &deps, None).await;
    let done = done.unwrap();
    let report: Value = serde_json::from_slice(&w.object(done["report_key"].as_str().unwrap()).await).unwrap();
    assert_eq!(done["passed"], true, "{trail:?} {report:#}");
    let checks: BTreeMap<&str, (&str, &str)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap();
            (field("name"), (field("result"), field("detail")))
        })
        .collect();
    for (name, rows) in [("rows of \"a.b\".c", "3"), ("rows of a.\"b.c\"", "5")] {
        let (result, detail) = checks.get(name).unwrap_or_else(|| panic!("{name}: {report:#}"));
        assert_eq!(*result, "passed", "{name}: {detail}");
        assert!(detail.starts_with(rows), "{name}: {detail}");
    }
    assert_eq!(checks["the latest export restores with pg_restore"].0, "passed");
}

#[tokio::test]
async fn a_failing_verification_fails_the_report_and_still_cleans_up() {
    let w = world().await;
    let checks = json!([{"name": "no users at all", "sql": "select count(*) = 0 from users"}]).to_string();
    let deps = w.deps(&[("LIFEBOAT_RESTORE_CHECKS", &checks)]);
    let Ran { done, trail, .. } = run(&w, &deps, None).await;
    let done = done.unwrap();
    assert_eq!(done["passed"], false, "{trail:?}");
    assert!(w.test_instances().await.is_empty());
    let report: Value = serde_json::from_slice(&w.object(done["report_key"].as_str().unwrap()).await).unwrap();
    let failed: Vec<_> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "failed")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["no users at all"]);
    let err = restore::handle(
        &deps,
        json!({"action": "summary", "results": [{"database": "app-prod", "passed": false}, {"database": "billing", "passed": true}]}),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("failed for 1 of 2 databases: app-prod"),
        "{err}"
    );
}

#[tokio::test]
async fn a_fault_at_any_step_leaves_no_instance_behind() {
    let w = world().await;
    let deps = w.deps(&[]);
    // A bucket that does not exist makes the steps that touch S3 fail; a missing snapshot makes start fail.
    let no_bucket = w.deps(&[("LIFEBOAT_BUCKET", "no-such-bucket")]);
    for at in ["start", "poll", "prepare", "verify", "report"] {
        // Faults moto cannot produce: start from a snapshot that does not exist, poll and prepare a test whose
        // instance is not there (the steps find it by name, whatever the state says).
        let (done, trail) = match at {
            "start" => {
                let r = restore::handle(
                    &deps,
                    json!({"action": "start", "database": "app-prod", "snapshot": "no-such-snapshot",
                           "requested_at": w.requested}),
                    None,
                )
                .await;
                let e = r.unwrap_err().to_string();
                assert!(e.contains("snapshot no-such-snapshot does not exist"), "{e}");
                (None, vec![format!("start failed: {e}")])
            }
            "poll" | "prepare" => {
                let test = json!({"database": "app-prod", "requested_at": "2026-01-01T00:00:00Z"});
                let e = step(&deps, at, &test).await.unwrap_err();
                assert!(e.contains("does not exist"), "{e}");
                step(&deps, "cleanup", &test).await.unwrap();
                (Some(test), vec![format!("{at} failed: {e}")])
            }
            _ => {
                let ran = run(&w, &deps, Some((at, &no_bucket))).await;
                (ran.done, ran.trail)
            }
        };
        assert!(
            trail.iter().any(|t| t.starts_with(&format!("{at} failed"))),
            "{at}: the fault did not happen: {trail:?}"
        );
        assert!(
            w.test_instances().await.is_empty(),
            "{at}: an instance was left behind: {trail:?}"
        );
        let _ = done;
    }
}

#[tokio::test]
async fn cleanup_never_deletes_what_is_not_a_restore_test() {
    let w = world().await;
    let deps = w.deps(&[]);
    let test = restore::handle(
        &deps,
        json!({"action": "start", "database": "app-prod", "requested_at": w.requested}),
        None,
    )
    .await
    .unwrap();
    let mut forged = test.clone();
    forged["restored_id"] = json!("app-prod");
    let err = step(&deps, "cleanup", &forged).await.unwrap_err();
    assert!(err.contains("`app-prod` is not the restore test's own"), "{err}");

    let source = w
        .rds
        .describe_db_instances()
        .db_instance_identifier("app-prod")
        .send()
        .await
        .unwrap();
    assert_eq!(source.db_instances()[0].db_instance_status(), Some("available"));
    step(&deps, "cleanup", &test).await.unwrap();
}

#[tokio::test]
async fn a_console_restore_makes_a_new_instance_with_the_source_settings_and_never_overwrites() {
    let w = world().await;
    let deps = w.console();
    let out = restore::handle(
        &deps,
        json!({"action": "restore", "database": "app-prod", "snapshot": "latest", "target": "app-prod-restored"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(out["status"], "available", "{out}");
    assert_eq!(out["restored_from"], "snapshot lifeboat-app-prod-20261122-0200");
    assert!(out["endpoint"].as_str().is_some_and(|e| e.contains(':')), "{out}");
    let d = w
        .rds
        .describe_db_instances()
        .db_instance_identifier("app-prod-restored")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.db_instances()[0].db_instance_class(),
        Some("db.r6g.large"),
        "the source's class"
    );

    for (event, expected) in [
        (
            json!({"action": "restore", "database": "app-prod", "snapshot": "latest", "target": "app-prod-restored"}),
            "already exists",
        ),
        (
            json!({"action": "restore", "database": "app-prod", "snapshot": "latest", "target": "app-prod"}),
            "must be a new identifier",
        ),
        (
            json!({"action": "restore", "database": "app-prod", "target": "x-1"}),
            "either `snapshot`",
        ),
        (
            json!({"action": "restore", "database": "app-prod", "point_in_time": "yesterday", "target": "x-1"}),
            "not RFC 3339",
        ),
    ] {
        let err = restore::handle(&deps, event, None).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
    assert_eq!(
        CheckResult::Passed,
        serde_json::from_value::<CheckResult>(json!("passed")).unwrap()
    );
}

#[tokio::test]
async fn an_aurora_cluster_is_restored_with_an_instance_and_both_are_cleaned_up() {
    let w = world().await;
    let deps = w.deps(&[]);
    w.rds
        .create_db_cluster()
        .db_cluster_identifier("analytics")
        .engine("aurora-postgresql")
        .master_username("analytics_admin")
        .master_user_password("not-a-real-password-1")
        .tags(Tag::builder().key("lifeboat:backup").value("true").build())
        .send()
        .await
        .unwrap();
    w.rds
        .create_db_cluster_snapshot()
        .db_cluster_identifier("analytics")
        .db_cluster_snapshot_identifier("lifeboat-analytics-20261122-0200")
        .send()
        .await
        .unwrap();
    let mut test = restore::handle(
        &deps,
        json!({"action": "start", "database": "analytics", "requested_at": w.requested}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(test["kind"], "cluster");
    assert_eq!(test["snapshot_id"], "lifeboat-analytics-20261122-0200");
    assert_eq!(test["master_user"], "analytics_admin");
    let cluster = test["restored_id"].as_str().unwrap().to_owned();
    let member = test["restored_instance"].as_str().unwrap().to_owned();
    assert!(member.starts_with("lifeboat-ri-analytics-"), "{member}");
    let described = w
        .rds
        .describe_db_instances()
        .db_instance_identifier(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.db_instances()[0].db_cluster_identifier(),
        Some(cluster.as_str())
    );

    test = step(&deps, "poll", &test).await.unwrap();
    assert_eq!(test["status"], "available", "{test}");
    test = step(&deps, "prepare", &test).await.unwrap();
    assert_eq!(test["status"], "prepared");
    let cleaned = step(&deps, "cleanup", &test).await.unwrap();
    assert_eq!(cleaned["status"], "deleting");
    let clusters = w.rds.describe_db_clusters().send().await.unwrap();
    let left: Vec<_> = clusters
        .db_clusters()
        .iter()
        .filter(|c| c.db_cluster_identifier() == Some(cluster.as_str()) && c.status() != Some("deleting"))
        .collect();
    assert!(left.is_empty(), "the restored cluster is going away");
    assert!(w.test_instances().await.is_empty(), "and its instance");
}

#[tokio::test]
async fn start_reuses_only_a_restore_test_of_the_same_database() {
    let w = world().await;
    let deps = w.deps(&[]);
    let at: chrono::DateTime<chrono::Utc> = w.requested.parse().unwrap();
    let taken = lifeboat::rds::restore::test_identifier("app-prod", at);
    // Another database's restore test (or anything else) under the name app-prod's test would take.
    w.rds
        .create_db_instance()
        .db_instance_identifier(&taken)
        .db_instance_class("db.t4g.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("someone")
        .master_user_password("not-a-real-password-1")
        .tags(Tag::builder().key(RESTORE_TEST).value("true").build())
        .tags(Tag::builder().key("lifeboat:source-db").value("billing").build())
        .send()
        .await
        .unwrap();
    let err = restore::handle(
        &deps,
        json!({"action": "start", "database": "app-prod", "requested_at": w.requested}),
        None,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&taken) && err.contains("billing") && err.contains("app-prod"),
        "{err}"
    );
    // And the other test's instance is untouched.
    let d = w
        .rds
        .describe_db_instances()
        .db_instance_identifier(&taken)
        .send()
        .await
        .unwrap();
    assert_eq!(d.db_instances()[0].master_username(), Some("someone"));
}

#[tokio::test]
async fn the_password_lives_in_a_short_lived_secret_and_never_in_the_state() {
    let w = world().await;
    let deps = w.deps(&[]);
    let no_bucket = w.deps(&[("LIFEBOAT_BUCKET", "no-such-bucket")]);
    for fault in [None, Some(("verify", &no_bucket))] {
        let ran = run(&w, &deps, fault).await;
        let failed = ran.trail.iter().any(|t| t.starts_with("verify failed"));
        assert_eq!(failed, fault.is_some(), "{:?}", ran.trail);
        let (password, arn) = ran.password.expect("prepare made a password secret");
        for out in &ran.outputs {
            let text = out.to_string();
            assert!(!text.contains(&password), "the password in a step's output: {text}");
            assert!(!text.contains(&w.pg.password), "a password in a step's output: {text}");
        }
        assert!(
            ran.outputs.iter().any(|o| o["password_secret"] == arn.as_str()),
            "the state carries the secret's ARN"
        );
        assert!(
            !w.secret_exists(&arn).await,
            "cleanup deleted the secret: {:?}",
            ran.trail
        );
    }
    // A prepare that fails after making its secret leaves none behind either: cleanup finds it by name.
    let test = restore::handle(
        &deps,
        json!({"action": "start", "database": "app-prod", "requested_at": w.requested}),
        None,
    )
    .await
    .unwrap();
    let name = lifeboat::rds::restore::test_secret_name(test["restored_id"].as_str().unwrap());
    w.sm.create_secret()
        .name(&name)
        .secret_string("{}")
        .send()
        .await
        .unwrap();
    step(&deps, "cleanup", &test).await.unwrap();
    assert!(!w.secret_exists(&name).await);
}

/// Whether anything connected to the listener (it is non-blocking: a pending connection is accepted at once).
fn was_contacted(listener: &std::net::TcpListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    listener.accept().is_ok()
}

/// Start, poll and prepare app-prod's test as the state machine would; the state verify is handed next.
async fn prepared(w: &World, deps: &restore::Deps) -> Value {
    let mut test = restore::handle(
        deps,
        json!({"action": "start", "database": "app-prod", "requested_at": w.requested}),
        None,
    )
    .await
    .unwrap();
    test = step(deps, "poll", &test).await.unwrap();
    assert_eq!(test["status"], "available", "{test}");
    test = step(deps, "prepare", &test).await.unwrap();
    let name = lifeboat::rds::restore::test_secret_name(test["restored_id"].as_str().unwrap());
    let local = json!({"username": SUPERUSER, "password": w.pg.password});
    w.sm.put_secret_value()
        .secret_id(&name)
        .secret_string(local.to_string())
        .send()
        .await
        .unwrap();
    test
}

/// An attacker who may invoke the verify step hands it a state naming a host of their own and another secret
/// (the source database's login): verify connects only to the endpoint RDS describes for the test's own
/// instance, with the test's own secret, and a state naming another restored instance is refused.
#[tokio::test]
async fn a_forged_verify_state_is_not_followed() {
    let w = world().await;
    let deps = w.deps(&[]);
    let test = prepared(&w, &deps).await;
    let attacker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = attacker.local_addr().unwrap().port();
    let source_secret =
        w.sm.describe_secret()
            .secret_id("lifeboat/app-prod")
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_owned();
    let mut forged = test.clone();
    forged["target"] = json!({"host": "127.0.0.1", "port": port, "user": "postgres", "dbname": "postgres"});
    forged["password_secret"] = json!(source_secret);
    forged["master_user"] = json!("postgres");
    let verified = step(&deps, "verify", &forged).await.unwrap();
    assert!(
        !was_contacted(&attacker),
        "verify connected to the host the state named"
    );
    let connect = &verified["checks"][0];
    assert_eq!(connect["result"], "passed", "{verified:#}");
    let detail = connect["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(":{}/", w.pg.port)) && detail.contains(SUPERUSER),
        "the described endpoint, as the restored copy's master user: {detail}"
    );
    // Another restored identifier in the state: refused before anything is read.
    let mut other = test.clone();
    other["restored_id"] = json!("app-prod");
    let err = step(&deps, "verify", &other).await.unwrap_err();
    assert!(err.contains("`app-prod` is not the restore test's own"), "{err}");
    step(&deps, "cleanup", &test).await.unwrap();
}

/// An attacker who may invoke the report step hands it made-up passing checks: without the verify step's own
/// record the report is FAILED, and with one (a verification that failed), the record's checks decide.
#[tokio::test]
async fn a_forged_report_never_writes_a_pass() {
    let w = world().await;
    let failing = json!([{"name": "no users at all", "sql": "select count(*) = 0 from users"}]).to_string();
    let deps = w.deps(&[("LIFEBOAT_RESTORE_CHECKS", &failing)]);
    let made_up = json!([{"name": "connect", "result": "passed", "detail": "trust me"},
                         {"name": "no users at all", "result": "passed", "detail": "trust me"}]);
    // No test ran at all: a report with made-up checks, a verified time and a pass.
    let forged = json!({"database": "app-prod", "kind": "instance", "requested_at": w.requested,
                        "snapshot_id": "lifeboat-app-prod-20261122-0200", "snapshot_time": w.requested,
                        "checks": made_up, "verified_at": w.requested, "passed": true});
    let out = step(&deps, "report", &forged).await.unwrap();
    assert_eq!(out["passed"], false, "{out}");
    let report: Value = serde_json::from_slice(&w.object(out["report_key"].as_str().unwrap()).await).unwrap();
    assert_eq!(report["passed"], false, "{report:#}");
    assert_eq!(report["checks"][0]["name"], "verify record", "{report:#}");
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["detail"] != "trust me"),
        "{report:#}"
    );

    // A real verification that failed, then a report handed passing checks: the record's checks decide.
    let test = prepared(&w, &deps).await;
    let verified = step(&deps, "verify", &test).await.unwrap();
    let mut forged = verified.clone();
    forged["checks"] = made_up;
    let out = step(&deps, "report", &forged).await.unwrap();
    assert_eq!(out["passed"], false, "{out}");
    let report: Value = serde_json::from_slice(&w.object(out["report_key"].as_str().unwrap()).await).unwrap();
    let failed: Vec<_> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "failed")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["no users at all"], "{report:#}");
    step(&deps, "cleanup", &test).await.unwrap();
}

/// The console's function refuses the steps and the steps' function refuses the console's actions, naming the
/// function to use; nothing is touched.
#[tokio::test]
async fn each_entry_refuses_the_others_actions() {
    let w = world().await;
    let steps = w.deps(&[]);
    let console = w.console();
    let restore_event =
        json!({"action": "restore", "database": "app-prod", "snapshot": "latest", "target": "app-prod-copy"});
    let err = restore::handle(&steps, restore_event, None).await.unwrap_err();
    assert!(matches!(err, restore::RestoreError::WrongEntry { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("steps entry") && message.contains("RestoreFunction"),
        "{message}"
    );
    assert!(w
        .rds
        .describe_db_instances()
        .db_instance_identifier("app-prod-copy")
        .send()
        .await
        .is_err());
    for event in [
        json!({"action": "report", "test": {"database": "app-prod", "requested_at": w.requested}}),
        json!({"action": "cache_verify", "test": {"cache": "sessions", "requested_at": w.requested}}),
        json!({"action": "start", "database": "app-prod", "requested_at": w.requested}),
    ] {
        let err = restore::handle(&console, event, None).await.unwrap_err().to_string();
        assert!(
            err.contains("console entry") && err.contains("RestoreTestFunction"),
            "{err}"
        );
    }
    assert!(w.test_instances().await.is_empty(), "the refused start made nothing");
}

/// A test whose start fails after it was requested still ends in a FAILED report and a failure metric (the
/// state machine's StartFailed hands report and cleanup the database and request time alone), so monitor never
/// goes on showing the previous test's result.
#[tokio::test]
async fn a_failed_start_ends_in_a_failed_report_and_metric() {
    let w = world().await;
    let deps = w.deps(&[]);
    let err = restore::handle(
        &deps,
        json!({"action": "start", "database": "app-prod", "snapshot": "no-such-snapshot", "requested_at": w.requested}),
        None,
    )
    .await
    .unwrap_err()
    .to_string();
    let test = json!({"database": "app-prod", "requested_at": w.requested});
    let error = json!({"Error": "Lifeboat.Restore.NoSnapshot", "Cause": json!({"errorMessage": err}).to_string()});
    let out = restore::handle(&deps, json!({"action": "report", "test": test, "error": error}), None)
        .await
        .unwrap();
    assert_eq!(out["passed"], false);
    let at: chrono::DateTime<chrono::Utc> = w.requested.parse().unwrap();
    let key = format!("{}.json", lifeboat::bucket::layout::restore_report_base("app-prod", at));
    assert_eq!(out["report_key"], key.as_str());
    let report: Value = serde_json::from_slice(&w.object(&key).await).unwrap();
    assert_eq!(report["passed"], false);
    assert!(
        report["error"].as_str().unwrap().contains("no-such-snapshot"),
        "{report:#}"
    );
    let cw = aws_sdk_cloudwatch::Client::new(&w.config);
    let metrics = cw
        .list_metrics()
        .namespace("Lifeboat")
        .metric_name("RestoreTestSuccess")
        .send()
        .await
        .unwrap();
    assert!(!metrics.metrics().is_empty(), "the failure is published");
    let names: Vec<_> = cw
        .list_metrics()
        .namespace("Lifeboat")
        .send()
        .await
        .unwrap()
        .metrics()
        .iter()
        .filter_map(|m| m.metric_name().map(str::to_owned))
        .collect();
    assert!(
        !names.iter().any(|n| n == "RestoreDataAgeSeconds"),
        "no data age for a snapshot never restored: {names:?}"
    );
    let cleaned = step(&deps, "cleanup", &test).await.unwrap();
    assert_eq!(cleaned["status"], "deleted");
}

/// Stores a plan document that puts `app-prod` under `rule` (a restore test due every quarter hour), moves the
/// world's request time to the next quarter hour after it (a rule is due at quarter hours only) and returns the
/// restore function's settings that read the document.
async fn plan_with(w: &mut World, rule: Value) -> restore::Deps {
    plan_for(w, &["app-prod"], rule).await
}

/// [`plan_with`] for the databases listed.
async fn plan_for(w: &mut World, databases: &[&str], rule: Value) -> restore::Deps {
    let at: chrono::DateTime<chrono::Utc> = w.requested.parse().unwrap();
    let quarter = at.timestamp() - at.timestamp() % 900 + 900;
    w.requested = chrono::DateTime::from_timestamp(quarter, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    const CONFIG: &str = "acme-config";
    lifeboat_tests::plans::versioned_bucket(&w.s3, CONFIG).await;
    let doc = json!({"format": 1, "plans": {"production": {
        "databases": databases,
        "snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}},
        "pitr": {"min_days": 1},
        "restore_tests": [rule]}}});
    w.s3.put_object()
        .bucket(CONFIG)
        .key("lifeboat/plans.json")
        .body(serde_json::to_vec(&doc).unwrap().into())
        .send()
        .await
        .unwrap();
    w.deps(&[("LIFEBOAT_PLAN_DOCUMENT", "s3://acme-config/lifeboat/plans.json")])
}

/// A plan's `random-point-in-time` test runs end to end: start restores the database itself to a moment of its
/// restorable window (chosen from RDS's describe calls, seeded by the test's name), tags what it chose, and the
/// report gives that moment as `recovery_point_time`, the choice, and how far the data reaches by the owner's
/// heartbeat; the same data checks pass and the restored instance goes away.
#[tokio::test]
async fn a_point_in_time_restore_test_reports_its_moment_and_how_far_the_data_reaches() {
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut w = world_with(
        "create table heartbeat (beat_at timestamptz not null);
         insert into heartbeat values ('2026-11-22T01:00:00Z'), ('2026-11-22T01:30:00Z');",
    )
    .await;
    w.rds
        .add_tags_to_resource()
        .resource_name(rds_arn(&w, "app-prod").await)
        .tags(
            Tag::builder()
                .key("lifeboat:heartbeat")
                .value("public.heartbeat.beat_at")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let deps = plan_with(
        &mut w,
        json!({"schedule": "0,15,30,45 * * * *", "from": "random-point-in-time"}),
    )
    .await;

    let started = restore::handle(
        &deps,
        json!({"action": "start", "database": "app-prod", "requested_at": w.requested}),
        None,
    )
    .await
    .unwrap();
    let after = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(started["snapshot_id"], Value::Null, "{started}");
    let moment: chrono::DateTime<chrono::Utc> = started["snapshot_time"].as_str().unwrap().parse().unwrap();
    assert!(
        moment >= before && moment <= after,
        "{moment} is in the window {before}..{after}"
    );
    assert!(
        started["recovery_choice"]
            .as_str()
            .unwrap()
            .starts_with("random-point-in-time seed="),
        "{started}"
    );
    let id = started["restored_id"].as_str().unwrap().to_owned();
    let described = w
        .rds
        .describe_db_instances()
        .db_instance_identifier(&id)
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<_, _> = described.db_instances()[0]
        .tag_list()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(
        tags[RESTORE_TEST], "true",
        "the restore-test guards hold for a point-in-time restore"
    );
    assert_eq!(tags["lifeboat:source-db"], "app-prod");
    assert!(tags.contains_key("lifeboat:expires-at"));
    assert_eq!(
        tags[lifeboat::rds::restore::RESTORED_FROM],
        format!(
            "point-in-time:{}",
            moment.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    );
    // A redelivered start reuses the instance, and what it restored stays the moment the tag names.
    let again = restore::handle(
        &deps,
        json!({"action": "start", "database": "app-prod", "requested_at": w.requested}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(again["restored_id"], id.as_str());
    let described = w
        .rds
        .describe_db_instances()
        .db_instance_identifier(&id)
        .send()
        .await
        .unwrap();
    let restored_from = described.db_instances()[0]
        .tag_list()
        .iter()
        .find(|t| t.key() == Some(lifeboat::rds::restore::RESTORED_FROM))
        .and_then(|t| t.value())
        .map(str::to_owned);
    assert_eq!(
        restored_from,
        Some(format!(
            "point-in-time:{}",
            moment.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
    );
    step(&deps, "cleanup", &started).await.unwrap();

    let Ran {
        done, trail, outputs, ..
    } = run(&w, &deps, None).await;
    let ended = chrono::Utc::now();
    let done = done.unwrap();
    assert_eq!(
        trail,
        ["start", "poll", "prepare", "verify", "report", "cleanup: \"deleting\""],
        "{trail:?}"
    );
    assert_eq!(done["passed"], true, "{done}");
    let report: Value = serde_json::from_slice(&w.object(done["report_key"].as_str().unwrap()).await).unwrap();
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["point_in_time"], report["recovery_point_time"]);
    let tested: chrono::DateTime<chrono::Utc> = report["recovery_point_time"].as_str().unwrap().parse().unwrap();
    // The moment this run's start chose (moto's window grew since the first start, so the seed may land elsewhere).
    let chosen: chrono::DateTime<chrono::Utc> = outputs[0]["snapshot_time"].as_str().unwrap().parse().unwrap();
    assert_eq!(tested, chosen, "the report names the moment start restored: {report:#}");
    assert!(tested >= before && tested <= ended, "{tested} in {before}..{ended}");
    assert_eq!(report["snapshot_id"], "");
    assert!(
        report["recovery_choice"].as_str().unwrap().contains(" window="),
        "{report:#}"
    );
    assert_eq!(report["data_reaches"]["from"], "heartbeat public.heartbeat.beat_at");
    assert_eq!(report["data_reaches"]["time"], "2026-11-22T01:30:00Z");
    let checks: BTreeMap<&str, &str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["result"].as_str().unwrap()))
        .collect();
    for name in ["connect", "users not empty", "rows of public.users", "heartbeat"] {
        assert_eq!(checks.get(name), Some(&"passed"), "{name}: {report:#}");
    }
    let md = String::from_utf8(
        w.object(&done["report_key"].as_str().unwrap().replace(".json", ".md"))
            .await,
    )
    .unwrap();
    assert!(md.contains("- Point in time: "), "{md}");
    assert!(
        md.contains("- Restored data reaches: 2026-11-22T01:30:00+00:00 (heartbeat public.heartbeat.beat_at)"),
        "{md}"
    );
    assert!(
        w.test_instances().await.is_empty(),
        "the restored instance is going away"
    );
}

/// `latest-restorable-time` restores to the moment RDS describes as latest, and without a heartbeat the data is
/// said to reach the restore time; a random snapshot in a window with no snapshot fails start with the reason.
#[tokio::test]
async fn the_latest_restorable_time_reaches_its_restore_time_and_an_empty_window_is_refused() {
    let mut w = world().await;
    let deps = plan_with(
        &mut w,
        json!({"schedule": "0,15,30,45 * * * *", "from": "latest-restorable-time"}),
    )
    .await;
    let Ran { done, trail, .. } = run(&w, &deps, None).await;
    let done = done.unwrap();
    assert_eq!(done["passed"], true, "{trail:?} {done}");
    let report: Value = serde_json::from_slice(&w.object(done["report_key"].as_str().unwrap()).await).unwrap();
    assert!(report["recovery_choice"]
        .as_str()
        .unwrap()
        .starts_with("latest-restorable-time window="));
    assert_eq!(report["data_reaches"]["from"], "restore time");
    assert_eq!(report["data_reaches"]["time"], report["recovery_point_time"]);
    assert!(!report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "heartbeat"));

    // A heartbeat that is not a table's timestamp column is never read (objects in a restored copy are code):
    // its check fails, and the data is said to reach the restore time.
    w.rds
        .add_tags_to_resource()
        .resource_name(rds_arn(&w, "app-prod").await)
        .tags(
            Tag::builder()
                .key("lifeboat:heartbeat")
                .value("app/public.users.email")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let deps = plan_with(
        &mut w,
        json!({"schedule": "0,15,30,45 * * * *", "from": "latest-restorable-time"}),
    )
    .await;
    let Ran { done, trail, .. } = run(&w, &deps, None).await;
    let done = done.unwrap();
    assert_eq!(done["passed"], false, "{trail:?} {done}");
    let report: Value = serde_json::from_slice(&w.object(done["report_key"].as_str().unwrap()).await).unwrap();
    let heartbeat = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "heartbeat")
        .unwrap();
    assert_eq!(heartbeat["result"], "failed", "{report:#}");
    assert!(
        heartbeat["detail"]
            .as_str()
            .unwrap()
            .contains("not a table's timestamp column"),
        "{heartbeat}"
    );
    assert_eq!(report["data_reaches"]["from"], "restore time");

    // Snapshots only before the window: nothing to choose, and start says so.
    let deps = plan_with(
        &mut w,
        json!({"schedule": "0,15,30,45 * * * *", "from": "random-snapshot", "within_days": 1}),
    )
    .await;
    let later = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%dT%H:00:00Z")
        .to_string();
    let refused = restore::handle(
        &deps,
        json!({"action": "start", "database": "app-prod", "requested_at": later}),
        None,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("no available snapshot was taken in the 1 days before"),
        "{refused}"
    );
    assert!(w.test_instances().await.is_empty());
}

async fn rds_arn(w: &World, id: &str) -> String {
    let out = w
        .rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .unwrap();
    out.db_instances()[0].db_instance_arn().unwrap().to_owned()
}

/// A point-in-time test of an Aurora cluster restores the cluster to the chosen moment, then its writer instance
/// (SQL runs on an instance, as after a snapshot restore), both carrying the restore-test tags, and cleanup
/// deletes both.
#[tokio::test]
async fn an_aurora_cluster_is_restored_to_a_point_in_time_with_its_writer_and_cleaned_up() {
    let mut w = world().await;
    w.rds
        .create_db_cluster()
        .db_cluster_identifier("analytics")
        .engine("aurora-postgresql")
        .master_username("analytics_admin")
        .master_user_password("not-a-real-password-1")
        .backup_retention_period(7)
        .send()
        .await
        .unwrap();
    // moto's window opens when the cluster is made: let it hold a whole second to restore to.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let deps = plan_for(
        &mut w,
        &["analytics"],
        json!({"schedule": "0,15,30,45 * * * *", "from": "latest-restorable-time"}),
    )
    .await;
    let mut test = restore::handle(
        &deps,
        json!({"action": "start", "database": "analytics", "requested_at": w.requested}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(test["kind"], "cluster", "{test}");
    assert_eq!(test["snapshot_id"], Value::Null, "{test}");
    assert!(test["recovery_choice"]
        .as_str()
        .unwrap()
        .starts_with("latest-restorable-time window="));
    let cluster = test["restored_id"].as_str().unwrap().to_owned();
    let member = test["restored_instance"].as_str().unwrap().to_owned();
    let described = w
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(&cluster)
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<_, _> = described.db_clusters()[0]
        .tag_list()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags[RESTORE_TEST], "true", "{tags:?}");
    assert!(
        tags[lifeboat::rds::restore::RESTORED_FROM].starts_with("point-in-time:"),
        "{tags:?}"
    );
    let writer = w
        .rds
        .describe_db_instances()
        .db_instance_identifier(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(writer.db_instances()[0].db_cluster_identifier(), Some(cluster.as_str()));

    test = step(&deps, "poll", &test).await.unwrap();
    assert_eq!(test["status"], "available", "{test}");
    let cleaned = step(&deps, "cleanup", &test).await.unwrap();
    assert_eq!(cleaned["status"], "deleting");
    let clusters = w.rds.describe_db_clusters().send().await.unwrap();
    assert!(
        !clusters
            .db_clusters()
            .iter()
            .any(|c| c.db_cluster_identifier() == Some(cluster.as_str()) && c.status() != Some("deleting")),
        "the restored cluster is going away"
    );
    assert!(w.test_instances().await.is_empty(), "and its writer");
}
