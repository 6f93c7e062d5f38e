//! The stack a user deploys, run here (`lifeboat_tests::demo::deployed`; `make demo` tells a longer story the same
//! way): one scheduled run of every function, a rotation, the cache's RDB copy, and restore tests of a database and
//! a cache that pass through the deployed state machine (and one that fails, which notify hears of), all through
//! the stack's own wiring.

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
const SCHEDULE_SAMPLES: [(&str, &str); 5] = [
    ("snapshot", "events/snapshot/scheduler.json"),
    ("export-plan-tick", "events/export/plan-tick.json"),
    ("rotate-plan-tick", "events/rotate/plan-tick.json"),
    ("monitor", "events/monitor/scheduled.json"),
    ("evidence-report", "events/monitor/evidence-monthly.json"),
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
