//! Every sample event in `events/` is parsed by the function it belongs to.

use std::collections::BTreeMap;
use std::path::Path;

use lifeboat_tests::repo_root;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    out
}

#[test]
fn every_snapshot_event_parses() {
    let dir = repo_root().join("events/snapshot");
    let files = files(&dir);
    assert!(
        files.len() >= 4,
        "expected sample events for every trigger in {}",
        dir.display()
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
        snapshot::event::parse(value).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

#[test]
fn every_rotate_event_parses() {
    let dir = repo_root().join("events/rotate");
    let mut steps = Vec::new();
    let mut ticks = 0;
    for file in files(&dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
        match rotate::event::request(value).unwrap_or_else(|e| panic!("{}: {e}", file.display())) {
            rotate::event::Request::Step(event) => steps.push(event.step),
            rotate::event::Request::PlanTick { .. } => ticks += 1,
        }
    }
    assert_eq!(ticks, 1, "one sample plan tick");
    steps.sort();
    use lifeboat::postgres::rotation::Step;
    assert_eq!(
        steps,
        [Step::Create, Step::Set, Step::Test, Step::Finish],
        "one sample event per step"
    );
}

#[test]
fn every_restore_event_parses() {
    let dir = repo_root().join("events/restore");
    let mut actions = Vec::new();
    for file in files(&dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
        if file
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("scheduled-"))
        {
            // The schedule (or a plan tick) starts the state machine, whose first state passes `time`, `plan` and
            // `rule` to the plan step.
            let plan = serde_json::json!({"action": "plan", "time": value["time"], "plan": value["plan"], "rule": value["rule"]});
            restore::event::parse(plan).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            continue;
        }
        restore::event::parse(value.clone()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            value["test"]["target"].get("password").is_none(),
            "{}: a restore test's password lives in its secret, never in the state",
            file.display()
        );
        actions.push(value["action"].as_str().unwrap().to_owned());
    }
    actions.sort();
    actions.dedup();
    assert_eq!(
        actions,
        [
            "cache_cleanup",
            "cache_poll",
            "cache_report",
            "cache_start",
            "cache_verify",
            "cleanup",
            "export_start",
            "export_verify",
            "plan",
            "poll",
            "prepare",
            "recover",
            "refresh",
            "refresh-tick",
            "report",
            "restore",
            "restore-cache",
            "restore-export",
            "start",
            "summary",
            "verify"
        ],
        "a sample event for every step and for console restores"
    );
}

#[test]
fn the_refresh_events_carry_names_only_and_refuse_anything_else() {
    use restore::event::Request;
    let parse = |name: &str| {
        let file = repo_root().join("events/restore").join(name);
        restore::event::parse(json(&file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    };
    let Request::Refresh(r) = parse("console-refresh.json") else {
        panic!("not a refresh")
    };
    assert_eq!(
        (r.plan.as_str(), r.refresh.as_str(), r.export),
        ("app", "staging", None)
    );
    let Request::Refresh(r) = parse("console-refresh-export.json") else {
        panic!("not a refresh")
    };
    assert!(r.export.unwrap().ends_with(".manifest.json"));
    let Request::RefreshTick { time } = parse("refresh-tick.json") else {
        panic!("not a refresh tick")
    };
    assert_eq!(time.to_rfc3339(), "2026-12-07T04:00:00+00:00");
    for r in ["console-refresh.json", "refresh-tick.json"] {
        assert_eq!(
            parse(r).entry(),
            restore::settings::Entry::Console,
            "{r}: the console's function runs refreshes"
        );
    }
    let bad = |event: serde_json::Value| restore::event::parse(event).unwrap_err().to_string();
    // Whatever grants power is derived: a payload naming a server, a secret or a key is refused whole.
    for extra in [
        serde_json::json!({"instance": "prod-db"}),
        serde_json::json!({"secret": "arn:aws:secretsmanager:eu-west-1:1:secret:x"}),
        serde_json::json!({"into": {"instance": "prod-db", "database": "app"}}),
    ] {
        let mut event = serde_json::json!({"action": "refresh", "plan": "app", "refresh": "staging"});
        event
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert!(bad(event).contains("unknown field"));
    }
    let e = bad(serde_json::json!({"action": "refresh", "plan": "App", "refresh": "staging"}));
    assert!(e.contains("`plan` `App`"), "{e}");
    let e = bad(serde_json::json!({"action": "refresh", "plan": "app", "refresh": "staging", "export": "latest"}));
    assert!(e.contains("export `latest` is not a manifest key"), "{e}");
    assert!(bad(serde_json::json!({"action": "refresh-tick"})).contains("time"));
    // The template's tick is this event, with Scheduler's scheduled time in it.
    let template = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    let input = template
        .lines()
        .find_map(|l| l.trim().strip_prefix("Input: '{\"action\":\"refresh-tick\""))
        .expect("the refresh tick's input in infra/template.yaml");
    let input = format!("{{\"action\":\"refresh-tick\"{}", input.trim_end_matches('\''))
        .replace("<aws.scheduler.scheduled-time>", "2026-12-07T04:00:00Z");
    let Request::RefreshTick { time } = restore::event::parse(serde_json::from_str(&input).unwrap()).unwrap() else {
        panic!("the template's refresh tick is not a refresh-tick: {input}")
    };
    assert_eq!(time.to_rfc3339(), "2026-12-07T04:00:00+00:00");
}

#[test]
fn the_restore_export_events_say_which_export_which_tables_and_where() {
    use lifeboat::postgres::archive::Which;
    use restore::event::Request;
    let parse = |name: &str| {
        let file = repo_root().join("events/restore").join(name);
        match restore::event::parse(json(&file)).unwrap_or_else(|e| panic!("{}: {e}", file.display())) {
            Request::RestoreExport(r) => r,
            other => panic!("{name}: parsed as {other:?}"),
        }
    };
    let whole = parse("console-restore-export.json");
    assert_eq!(whole.database, "app-prod");
    assert_eq!(whole.export.which(), Which::Latest);
    assert_eq!(whole.profile.as_deref(), Some("full"));
    assert!(whole.tables.is_empty(), "no tables: the whole export");
    assert_eq!(whole.into.database, "app_prod_restore_20261123");
    assert_eq!(whole.into.instance, None, "onto the source's own server");

    let tables = parse("console-restore-export-tables.json");
    let noon = "2026-11-22T12:00:00Z".parse().unwrap();
    assert_eq!(tables.export.which(), Which::Before(noon));
    assert_eq!(tables.tables, ["users", "billing.invoices"]);
    assert_eq!(tables.into.database, "app_prod_users_20261123");
    assert_eq!(tables.into.instance.as_deref(), Some("app-prod-scratch"));
    assert_eq!(tables.jobs, None, "streamed unless jobs are asked for");

    let jobs = parse("console-restore-export-jobs.json");
    assert_eq!(jobs.database, "warehouse");
    assert_eq!(jobs.jobs, Some(4), "pg_restore --jobs 4 through the work directory");
    assert!(jobs.tables.is_empty());

    let bad = |event: serde_json::Value| restore::event::parse(event).unwrap_err().to_string();
    let err = bad(serde_json::json!({"action": "restore-export", "database": "app-prod",
                                     "into": {"database": "template1"}}));
    assert!(err.contains("template"), "{err}");
    let err = bad(
        serde_json::json!({"action": "restore-export", "database": "app-prod", "into": {"database": "x"},
                                     "overwrite": true}),
    );
    assert!(err.contains("overwrite"), "unknown fields are refused: {err}");
    let err = bad(
        serde_json::json!({"action": "restore-export", "database": "app-prod", "into": {"database": "x"}, "jobs": 0}),
    );
    assert!(err.contains("jobs `0`: between 1 and 32"), "{err}");
}

#[test]
fn every_notify_event_parses() {
    let files = files(&repo_root().join("events/notify"));
    assert_eq!(
        files.len(),
        4,
        "an alarm, a recovery, the RDB copy alarm and a failed restore-test run"
    );
    for file in files {
        let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        notify::event::parse(value).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

fn json(file: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(file).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()))
}

#[test]
fn every_export_event_parses() {
    use export::event::Trigger;
    let mut seen = Vec::new();
    for file in files(&repo_root().join("events/export")) {
        let trigger = export::event::parse(json(&file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match (name.as_str(), trigger) {
            (
                "manual.json",
                Trigger::Manual {
                    database,
                    profile,
                    tables,
                },
            ) => {
                assert_eq!(database, "app-prod");
                assert_eq!(profile, None);
                assert_eq!(tables, ["users", "projects"]);
            }
            (
                "scheduled-critical.json",
                Trigger::Schedule {
                    profile,
                    time,
                    databases,
                },
            ) => {
                assert_eq!(profile, "critical");
                assert_eq!(time.to_rfc3339(), "2026-11-22T06:00:00+00:00");
                assert_eq!(databases, None);
            }
            (
                "scheduled-full.json",
                Trigger::Schedule {
                    profile,
                    time,
                    databases,
                },
            ) => {
                assert_eq!(profile, "full");
                assert_eq!(time.to_rfc3339(), "2026-11-22T02:00:00+00:00");
                assert_eq!(databases, None);
            }
            ("copy-caches.json", Trigger::CopyCaches { caches }) => assert_eq!(caches, None),
            ("plan-tick.json", Trigger::PlanTick { time }) => {
                assert_eq!(time.to_rfc3339(), "2026-12-13T01:00:00+00:00");
            }
            (other, trigger) => panic!("events/export/{other}: unexpected sample or shape: {trigger:?}"),
        }
        seen.push(name);
    }
    assert_eq!(
        seen,
        [
            "copy-caches.json",
            "manual.json",
            "plan-tick.json",
            "scheduled-critical.json",
            "scheduled-full.json"
        ],
        "a manual export, one scheduled export per profile the template schedules, the caches' RDB copy and the plan tick"
    );
}

#[test]
fn every_monitor_event_parses() {
    use monitor::event::Request;
    let dir = repo_root().join("events/monitor");
    let names: Vec<String> = files(&dir)
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "confirm-deselection.json",
            "console-acknowledge.json",
            "evidence-monthly.json",
            "evidence-report.json",
            "plan-show.json",
            "scheduled.json"
        ],
        "the hourly schedule, the monthly evidence report, one on demand, a confirmed de-selection, a plan view, \
         an acknowledged content anomaly"
    );
    let ack = monitor::event::parse(&json(&dir.join("console-acknowledge.json"))).request;
    assert!(
        matches!(ack, Request::Acknowledge(ref a) if a.resource == "product-db" && a.series.as_deref() == Some("critical")),
        "{ack:?}"
    );
    assert_eq!(
        monitor::event::parse(&json(&dir.join("plan-show.json"))).request,
        Request::PlanShow {
            resource: "app-prod".to_owned()
        }
    );
    let confirm = monitor::event::parse(&json(&dir.join("confirm-deselection.json"))).request;
    assert!(
        matches!(confirm, Request::ConfirmDeselection(ref c) if c.subject == monitor::event::Subject::Database("app-staging".to_owned())),
        "{confirm:?}"
    );
    let trigger = monitor::event::parse(&json(&dir.join("scheduled.json")));
    assert_eq!(trigger.source.as_deref(), Some("aws.scheduler"));
    assert_eq!(
        trigger.time.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-11-22T10:00:00+00:00")
    );
    assert_eq!(trigger.request, Request::Monitor);
    for (file, period) in [
        ("evidence-report.json", "2026-10"),
        ("evidence-monthly.json", "previous-month"),
    ] {
        let request = monitor::event::parse(&json(&dir.join(file))).request;
        assert_eq!(
            request,
            Request::Evidence {
                period: Some(period.to_owned())
            },
            "{file}"
        );
        lifeboat::evidence::period::Period::parse(Some(period), chrono::Utc::now()).unwrap();
    }
}

#[test]
fn notify_sample_events_carry_what_the_message_names() {
    use notify::event::Notice;
    let dir = repo_root().join("events/notify");
    let parse = |name: &str| notify::event::parse(json(&dir.join(name))).unwrap();
    let Notice::Alarm {
        name,
        state,
        previous,
        since,
        ..
    } = parse("alarm.json")
    else {
        panic!("alarm.json is not an alarm")
    };
    assert_eq!(
        (name.as_str(), state.as_str(), previous.as_str()),
        ("lifeboat/lifeboat/app-prod/snapshot-age", "ALARM", "OK")
    );
    assert_eq!(since.to_rfc3339(), "2026-11-22T10:00:00+00:00");
    let Notice::Alarm { state, previous, .. } = parse("recovery.json") else {
        panic!("recovery.json is not an alarm")
    };
    assert_eq!((state.as_str(), previous.as_str()), ("OK", "ALARM"));
    let Notice::Alarm { name, state, .. } = parse("rdb-copy-failed.json") else {
        panic!("rdb-copy-failed.json is not an alarm")
    };
    assert_eq!(
        (name.as_str(), state.as_str()),
        ("lifeboat/lifeboat/rdb-copy-failed", "ALARM"),
        "the stack's RdbCopyFailedAlarm, by the default stack's name"
    );
    let Notice::RestoreTestFailed {
        execution,
        status,
        cause,
        ..
    } = parse("restore-test-failed.json")
    else {
        panic!("restore-test-failed.json is not a failed execution")
    };
    assert_eq!(
        (execution.as_str(), status.as_str()),
        ("quarterly-2026-10-01", "FAILED")
    );
    assert_eq!(
        cause.as_deref(),
        Some("Lifeboat.PartialFailure: restore tests failed for 1 of 3 databases: billing")
    );
}

#[test]
fn every_function_has_sample_events() {
    for entry in std::fs::read_dir(repo_root().join("functions")).unwrap() {
        let name = entry.unwrap().file_name();
        let dir = repo_root().join("events").join(&name);
        assert!(
            !files(&dir).is_empty(),
            "no sample events for function {name:?} in {}",
            dir.display()
        );
    }
}

/// The event sources of `infra/template.yaml`, as (resource, event) pairs: the `Events:` of each function and
/// state machine. Read from the text (the template's CloudFormation tags need no YAML library for this).
fn template_event_sources() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    let mut out = Vec::new();
    let mut resource = String::new();
    let mut in_events = false;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let key = line.trim().strip_suffix(':');
        match (indent, key) {
            (2, Some(k)) => {
                resource = k.to_owned();
                in_events = false;
            }
            (6, Some("Events")) => in_events = true,
            (6, _) => in_events = false,
            (8, Some(k)) if in_events => out.push((resource.clone(), k.to_owned())),
            _ => {}
        }
    }
    out
}

#[test]
fn every_function_has_a_template_resource_and_every_event_source_a_sample_event() {
    let template = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    let image = std::fs::read_to_string(repo_root().join("infra/pg-tools.Dockerfile")).unwrap();
    for entry in std::fs::read_dir(repo_root().join("functions")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        // A zip `make package` builds, or a binary of the image an image function runs (its entry point).
        let entry_point = format!("/usr/local/bin/{name}");
        let built = template.contains(&format!("CodeUri: ../dist/{name}.zip\n"))
            || (template.contains(&format!("EntryPoint: [{entry_point}]"))
                || image.contains(&format!("ENTRYPOINT [\"{entry_point}\"]")));
        assert!(
            built,
            "functions/{name} has no resource in infra/template.yaml (CodeUri: ../dist/{name}.zip, or the image's \
             {entry_point})"
        );
    }
    // Each event source and the sample event that stands for it.
    let samples: BTreeMap<(&str, &str), &str> = BTreeMap::from([
        (("SnapshotFunction", "Schedule"), "snapshot/scheduler.json"),
        (
            ("SnapshotFunction", "SnapshotFinished"),
            "snapshot/rds-snapshot-finished.json",
        ),
        (("ExportFunction", "PlanTick"), "export/plan-tick.json"),
        (("RotateFunction", "PlanTick"), "rotate/plan-tick.json"),
        (("RestoreFunction", "RefreshTick"), "restore/refresh-tick.json"),
        (("MonitorFunction", "Hourly"), "monitor/scheduled.json"),
        (("MonitorFunction", "Monthly"), "monitor/evidence-monthly.json"),
        (("NotifyFunction", "AlarmChanged"), "notify/alarm.json"),
        (
            ("NotifyFunction", "RestoreTestFailed"),
            "notify/restore-test-failed.json",
        ),
    ]);
    let sources = template_event_sources();
    assert!(
        sources.len() >= samples.len(),
        "the template's event sources were not found: {sources:?}"
    );
    for (resource, event) in &sources {
        let sample = samples
            .get(&(resource.as_str(), event.as_str()))
            .unwrap_or_else(|| panic!("{resource}.Events.{event} has no sample event: add one to events/ and here"));
        assert!(
            repo_root().join("events").join(sample).is_file(),
            "events/{sample} is missing"
        );
    }
}
