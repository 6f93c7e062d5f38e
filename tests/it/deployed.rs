//! The stack a user deploys, run here (`lifeboat_tests::demo::deployed`; `make demo` tells a longer story the same
//! way): one scheduled run of every function, a rotation, the cache's RDB copy, and restore tests of a database and
//! a cache that pass through the deployed state machine (and one that fails, which notify hears of), all through
//! the stack's own wiring; and the stack's two ECS tasks, run as a person runs them with `aws ecs run-task`.

use lifeboat_tests::demo::deployed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_stack_runs_every_function_a_rotation_and_a_restore_test_through_its_own_wiring() {
    let w = deployed::world().await;
    let logs = tempfile::tempdir().unwrap();
    let functions = deployed::start_functions(&w, logs.path());
    let said = std::sync::Mutex::new(Vec::new());
    deployed::story(&w, &functions, &|line| said.lock().unwrap().push(line)).await;
    let said = said.into_inner().unwrap();
    // The story as the demo tells it is this test's output, beside the permission report.
    println!("{}", said.join("\n"));
    assert!(
        said.iter().any(|l| l.contains("restore test of app-db passed"))
            && said
                .iter()
                .any(|l| l.contains("restore test of app-cache (its keys counted")),
        "the story says what it did: {said:?}"
    );
    // Permissions proven by use: every call each function made is one its deployed role allows, and every grant
    // no call used has its reason in infra/permissions-unused.json.
    let (code, report) = lifeboat_tests::permissions::check(
        w.moto.recording().expect("a recording server"),
        &w.stack.document_path(),
        &["--strict-unused"],
    );
    println!("{report}");
    assert_eq!(
        code, 0,
        "a function called what its role does not allow, or a grant nothing used has no reason:\n{report}"
    );
}

/// The sample event of each deployed schedule, and of each rule's events.
const SCHEDULE_SAMPLES: [(&str, &str); 6] = [
    ("snapshot", "events/snapshot/scheduler.json"),
    ("export-plan-tick", "events/export/plan-tick.json"),
    ("rotate-plan-tick", "events/rotate/plan-tick.json"),
    ("monitor", "events/monitor/scheduled.json"),
    ("evidence-report", "events/monitor/evidence-monthly.json"),
    ("refresh-tick", "events/restore/refresh-tick.json"),
];
const RULE_SAMPLES: [(&str, &[&str]); 3] = [
    (
        "SnapshotFinished",
        &[
            "events/snapshot/rds-snapshot-finished.json",
            "events/snapshot/rds-cluster-snapshot-finished.json",
        ],
    ),
    (
        "AlarmChanged",
        &["events/notify/alarm.json", "events/notify/recovery.json"],
    ),
    ("RestoreTestFailed", &["events/notify/restore-test-failed.json"]),
];

/// The samples in `events/` are what the deployed wiring sends: each schedule's input, with Scheduler's time
/// filled in, is its sample exactly, and each rule's samples match the rule's deployed pattern (with the one value
/// a stack decides, its state machine's ARN, put in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_schedule_and_rule_of_the_deployed_stack_has_a_sample_event_it_would_send() {
    let moto = lifeboat_tests::moto::Moto::start();
    let stack = tokio::task::block_in_place(|| {
        lifeboat_tests::stack::Stack::deploy(&moto, "us-east-1", "lifeboat", &[("PlanBucket", "lifeboat-plans")])
    });
    let schedules = stack.schedules();
    assert_eq!(schedules.len(), SCHEDULE_SAMPLES.len(), "a sample for every schedule");
    for (suffix, path) in SCHEDULE_SAMPLES {
        let schedule = stack.schedule(suffix);
        let sample = lifeboat_tests::demo::sample(path);
        let at = sample["time"]
            .as_str()
            .map_or_else(chrono::Utc::now, |t| t.parse().unwrap());
        assert_eq!(
            schedule.input_at(at),
            sample,
            "{path} is not what schedule {} sends",
            schedule.name
        );
    }
    let (machine, _) = stack.state_machine("restore-test");
    let rules = stack.doc["rules"].as_array().unwrap();
    assert_eq!(rules.len(), RULE_SAMPLES.len(), "samples for every rule");
    for (name, paths) in RULE_SAMPLES {
        let rule = rules
            .iter()
            .find(|r| r["name"].as_str().unwrap().contains(name))
            .unwrap_or_else(|| panic!("the stack has no rule {name}"));
        let pattern: serde_json::Value = serde_json::from_str(rule["pattern"].as_str().unwrap()).unwrap();
        for path in paths {
            let mut sample = lifeboat_tests::demo::sample(path);
            if sample["detail"].get("stateMachineArn").is_some() {
                sample["detail"]["stateMachineArn"] = machine.clone().into();
            }
            assert!(
                deployed::matches(&pattern, &sample),
                "{path} does not match the deployed rule {name}: {pattern}"
            );
        }
    }
}

/// The secret the stack's `AgeIdentitySecret` names in the ECS test: the identity the restore task decrypts with.
const IDENTITY_SECRET: &str = "lifeboat/age-identity";

/// The words of a POSIX shell command line of plain words and single-quoted strings (what
/// `lifeboat::postgres::archive::plan::ecs_command` writes), as the shell hands them to the AWS CLI.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The value of `flag` in `aws ecs run-task` words.
fn flag<'a>(words: &'a [String], flag: &str) -> &'a str {
    let i = words
        .iter()
        .position(|w| w == flag)
        .unwrap_or_else(|| panic!("no {flag} in {words:?}"));
    &words[i + 1]
}

/// The stack's two ECS tasks, run as a person runs them with `aws ecs run-task` (`Task::run`: the binary the
/// container's entry point names, the task definition's environment, the run's overrides, the task role's
/// credentials): a full export of the database with the overrides the export guide shows, whose manifest lands in
/// the stack's bucket; then the restore task with the command the restore function's refusal prints, word for
/// word, which restores that export into a new database, verified row for row. Every call of both tasks is then
/// proven against their task roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecs_tasks_export_and_restore_as_a_person_runs_them_with_their_task_roles() {
    use age::secrecy::ExposeSecret;
    use serde_json::{json, Value};
    use std::time::{Duration, Instant};

    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let w = deployed::world_with(&[("AgeRecipients", &recipient), ("AgeIdentitySecret", IDENTITY_SECRET)]).await;
    let sm = aws_sdk_secretsmanager::Client::new(&w.config);
    sm.create_secret()
        .name(IDENTITY_SECRET)
        .secret_string(identity.to_string().expose_secret())
        .send()
        .await
        .unwrap();
    // A restore from an export logs in with the database's Lifeboat secret, which must create the new database and
    // its owner role (docs/book/src/runbooks/export.md); the world's backup user only reads.
    w.pg.psql("postgres", "ALTER ROLE lifeboat_backup CREATEDB CREATEROLE")
        .unwrap();
    let local = deployed::world_settings(&w.pg, &w.redis);
    let logs = tempfile::tempdir().unwrap();
    let bucket = w.stack.physical_id("ExportBucket");
    let cluster = w.stack.physical_id("ExportCluster");

    // The export task: the image's ENTRYPOINT, the overrides of docs/book/src/guide/export.md for one database.
    let export = w.stack.task("ExportTaskDefinition");
    assert_eq!(export.binary, "export", "the image's ENTRYPOINT is the export binary");
    assert_eq!(export.env["LIFEBOAT_BUCKET"], bucket);
    let export_overrides = json!({"containerOverrides": [{"name": "export", "environment": [
        {"name": "LIFEBOAT_EVENT", "value": json!({"database": "app-db", "profile": "full"}).to_string()}]}]});
    let run = export
        .run(
            &w.stack,
            &w.moto,
            &local,
            &export_overrides,
            &logs.path().join("export"),
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "the export task failed: {}\n{}",
        run.stdout,
        run.stderr
    );
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["exports"][0]["outcome"], "exported", "{summary}");
    let manifest_key = summary["exports"][0]["manifest_key"].as_str().unwrap().to_owned();
    let s3 = aws_sdk_s3::Client::new(&w.config);
    let manifest = s3
        .get_object()
        .bucket(&bucket)
        .key(&manifest_key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("no manifest {manifest_key} in the stack's bucket {bucket}: {e}"));
    let manifest: Value = serde_json::from_slice(&manifest.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(manifest["profile"], "full", "{manifest}");

    // The restore function refuses a restore from that export too long for its invocation and prints the run-task
    // command. The local runtime API gives no deadline (cargo lambda watch sends a fixed one long past, which the
    // functions read as none), and an export the stack's 900 s at 12 MiB/s cannot restore is ~10 GB: so the deployed
    // function's code runs here with the stack's environment and its role, invoked with 30 s left, which cannot
    // hold the 60 s margin.
    let function = w.stack.function("RestoreFunction");
    let mut vars = function.env.clone();
    vars.extend(local.vars.iter().map(|(k, v, _)| (k.clone(), v.clone())));
    let settings = restore::settings::RestoreSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
    let as_role = lifeboat_tests::sdk_config(&w.moto.endpoint, &w.stack.region)
        .into_builder()
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new(&function.role_name, "local", None, None, "lambda"),
        ))
        .build();
    let event = json!({"action": "restore-export", "database": "app-db", "export": "latest",
                       "into": {"database": "app_restored"}});
    let refused = restore::handle(
        &restore::Deps::new(&as_role, settings),
        event,
        Some(Instant::now() + Duration::from_secs(30)),
    )
    .await
    .expect_err("30 s left cannot hold a restore")
    .to_string();
    let line = refused
        .lines()
        .find(|l| l.starts_with("aws ecs run-task "))
        .unwrap_or_else(|| panic!("the refusal prints no run-task command: {refused}"));
    let words = shell_words(line);
    // The command names the deployed cluster and restore task definition.
    let restore_task = w.stack.task("RestoreTaskDefinition");
    assert_eq!(flag(&words, "--cluster"), cluster, "{line}");
    assert_eq!(flag(&words, "--task-definition"), restore_task.arn, "{line}");
    let overrides: Value = serde_json::from_str(flag(&words, "--overrides")).unwrap();
    let pinned: Value = serde_json::from_str(
        overrides["containerOverrides"][0]["environment"][0]["value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        pinned["export"],
        manifest_key.as_str(),
        "pinned to the export the function chose: {pinned}"
    );

    let run = restore_task
        .run(
            &w.stack,
            &w.moto,
            &local,
            &overrides,
            &logs.path().join("restore"),
            Duration::from_secs(300),
        )
        .await
        .unwrap_or_else(|e| panic!("ECS would not run the printed command: {e}"));
    assert!(
        run.status.success(),
        "the restore task failed: {}\n{}",
        run.stdout,
        run.stderr
    );
    let result: Value = serde_json::from_str(run.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert_eq!(result["verified"], true, "{result}");
    assert_eq!(result["export"]["manifest"], manifest_key.as_str(), "{result}");
    assert_eq!(
        result["tables"],
        json!([{"table": "public.orders", "expected_rows": 500, "restored_rows": 500}]),
        "{result}"
    );
    assert_eq!(w.pg.psql("app_restored", "select count(*) from orders").unwrap(), "500");
    let report = result["report"]
        .as_str()
        .unwrap_or_else(|| panic!("no report: {result}"));
    assert!(report.starts_with("reports/restore-export/app-db/"), "{report}");

    // Permissions proven by use: every call of the tasks (and of the refusing function) against its role, and every
    // grant of the task roles that no call used has its reason in infra/permissions-unused.json (the function's
    // unused grants are its console restores', which this test does not run).
    let (code, report) = lifeboat_tests::permissions::check(
        w.moto.recording().expect("a recording server"),
        &w.stack.document_path(),
        &[],
    );
    println!("{report}");
    assert_eq!(code, 0, "a task called what its role does not allow:\n{report}");
    let unreasoned: Vec<&str> = report
        .lines()
        .filter(|l| {
            [
                "ExportTaskRole",
                "RestoreTaskRole",
                "ExportTaskExecutionRole",
                "RestoreTaskExecutionRole",
            ]
            .iter()
            .any(|r| l.starts_with(&format!("unused\t{r}\t")))
                && l.ends_with("no reason given")
        })
        .collect();
    assert!(
        unreasoned.is_empty(),
        "a task role's grant no call used has no reason:\n{}",
        unreasoned.join("\n")
    );
    for (task, action) in [
        ("ExportTaskDefinition", "s3:PutObject"),
        ("RestoreTaskDefinition", "s3:GetObject"),
        ("RestoreTaskDefinition", "secretsmanager:GetSecretValue"),
        // The awslogs driver, with the execution role.
        ("ExportTaskDefinition/execution", "logs:PutLogEvents"),
        ("RestoreTaskDefinition/execution", "logs:CreateLogStream"),
    ] {
        assert!(
            report.contains(&format!("allowed\t{task}\t{action}\t")),
            "{task}'s {action} was checked against its task role:\n{report}"
        );
    }

    // The age identity decrypts every export, and the export side may never read it, though the default secret
    // pattern (lifeboat/*) covers it: a lifeboat:secret tag aimed at it is denied to the export task's role.
    let rds = aws_sdk_rds::Client::new(&w.config);
    let described = rds
        .describe_db_instances()
        .db_instance_identifier("app-db")
        .send()
        .await
        .unwrap();
    let arn = described.db_instances()[0].db_instance_arn().unwrap().to_owned();
    rds.add_tags_to_resource()
        .resource_name(arn)
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("lifeboat:secret")
                .value(IDENTITY_SECRET)
                .build(),
        )
        .send()
        .await
        .unwrap();
    w.moto.reset_recording();
    let run = export
        .run(
            &w.stack,
            &w.moto,
            &local,
            &export_overrides,
            &logs.path().join("aimed"),
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    assert!(
        !run.status.success(),
        "an age identity is no database login: {}",
        run.stdout
    );
    let (code, report) = lifeboat_tests::permissions::check(
        w.moto.recording().expect("a recording server"),
        &w.stack.document_path(),
        &[],
    );
    assert_eq!(code, 1, "the export task's role may read the age identity:\n{report}");
    let denied = report
        .lines()
        .find(|l| l.starts_with("denied\tExportTaskDefinition\tsecretsmanager:GetSecretValue\t"))
        .unwrap_or_else(|| panic!("no denied read of the identity:\n{report}"));
    assert!(
        denied.contains(":secret:lifeboat/age-identity-") && denied.contains("NeverAgeIdentity"),
        "{denied}"
    );

    // Nor may the rotate function's role touch it: the rotate tick, told by the same tag to give the identity a
    // rotation, is denied at its first call on it.
    let functions = deployed::start_functions(&w, &logs.path().join("functions"));
    w.moto.reset_recording();
    let rotate = w.stack.schedule("rotate-plan-tick");
    let at = rotate.latest_at_or_before(chrono::Utc::now());
    let ticked = tokio::task::block_in_place(|| functions.invoke(&rotate.target_arn, &rotate.input_at(at)));
    let (code, report) = lifeboat_tests::permissions::check(
        w.moto.recording().expect("a recording server"),
        &w.stack.document_path(),
        &[],
    );
    assert_eq!(
        code, 1,
        "the rotate role may touch the age identity: {ticked:?}\n{report}"
    );
    let denied = report
        .lines()
        .find(|l| {
            l.starts_with("denied\tRotateFunction\tsecretsmanager:") && l.contains(":secret:lifeboat/age-identity-")
        })
        .unwrap_or_else(|| panic!("no denied call of the rotate function on the identity:\n{report}"));
    assert!(denied.contains("NeverAgeIdentityOrRestoreTestSecrets"), "{denied}");
}

/// The console's `refresh` through the deployed stack's own wiring: the restore function, with the stack's
/// environment and role, reads the refresh rule from the plan document, finds the staging server in RDS and logs in
/// with its own secret, reads the stack's masking key (the secret the template made) and the rule's newest export,
/// and writes the refresh's report under `refresh/<name>/` in the export bucket. The refresh itself fails here (no
/// PostgreSQL behind moto's endpoint; before the refresh is built, its stub's error); the report must say so. Every
/// call it made must be one its role allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_refresh_reads_its_rule_server_and_secrets_and_reports_as_the_role_allows() {
    let moto = lifeboat_tests::moto::Moto::start_recording();
    let config = moto.config("us-east-1");
    let s3 = aws_sdk_s3::Client::new(&config);
    let plans = "lifeboat-plans";
    lifeboat_tests::plans::versioned_bucket(&s3, plans).await;
    let document = serde_json::json!({"format": 1, "plans": {"product": {
        "databases": ["app-prod"],
        "exports": {"full": {"schedule": "0 2 * * *", "keep_days": 30}},
        "refresh": [{"name": "staging", "from": "app-prod", "export": "full",
                     "into": {"instance": "staging-db", "database": "app"},
                     "masking": {"tables": {"public.users": {"email": "fake:email"}}}}]}}});
    lifeboat_tests::plans::put_json(&s3, plans, "lifeboat/plans.json", &document).await;
    let rds = aws_sdk_rds::Client::new(&config);
    lifeboat_tests::plans::instance(&rds, "app-prod", &[("lifeboat:secret", "lifeboat/app-prod")], 1).await;
    lifeboat_tests::plans::instance(&rds, "staging-db", &[("lifeboat:secret", "lifeboat/staging-db")], 1).await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    for name in ["lifeboat/app-prod", "lifeboat/staging-db"] {
        sm.create_secret()
            .name(name)
            .secret_string(r#"{"username": "admin", "password": "p"}"#)
            .send()
            .await
            .unwrap();
    }
    let stack = tokio::task::block_in_place(|| {
        lifeboat_tests::stack::Stack::deploy(&moto, "us-east-1", "lifeboat", &[("PlanBucket", plans)])
    });
    let bucket = stack.physical_id("ExportBucket");
    let (key, manifest) = crate::refresh_entry::manifest("full", chrono::Utc::now() - chrono::Duration::hours(2));
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(manifest.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
    moto.reset_recording();
    let logs = tempfile::tempdir().unwrap();
    let functions = lifeboat_tests::stack::Deployed::start(
        &stack,
        &moto,
        &lifeboat_tests::stack::Local::default().with(
            "LIFEBOAT_DB_SSLMODE",
            "disable",
            "no server behind moto's endpoints has a certificate from the RDS CA the stack's verify-full expects",
        ),
        logs.path(),
    );
    let event = serde_json::json!({"action": "refresh", "plan": "product", "refresh": "staging"});
    let out = tokio::task::block_in_place(|| functions.invoke("RestoreFunction", &event));
    let log = functions.log_text("RestoreFunction");
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("refresh/staging/")
        .send()
        .await
        .unwrap();
    let reports: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        reports.len(),
        2,
        "one report (JSON and Markdown) of the started refresh ({out:?}):\n{log}"
    );
    let json_key = reports.iter().find(|k| k.ends_with(".json")).unwrap();
    let body = s3.get_object().bucket(&bucket).key(*json_key).send().await.unwrap();
    let report: serde_json::Value = serde_json::from_slice(&body.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(report["export_key"], key.as_str(), "the rule's newest export: {report}");
    assert_eq!(report["into_instance"], "staging-db");
    assert_eq!(
        report["outcome"],
        if out.is_ok() { "refreshed" } else { "failed" },
        "{report}"
    );
    assert!(log.contains("refresh started"), "the refresh started:\n{log}");
    let (code, permissions) =
        lifeboat_tests::permissions::check(moto.recording().unwrap(), &stack.document_path(), &[]);
    assert_eq!(
        code, 0,
        "the refresh called what its role does not allow:\n{permissions}"
    );
}
