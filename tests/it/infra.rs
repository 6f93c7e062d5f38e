//! The restore-test state machine (`infra/restore-test.asl.json`) read as data: one database's failure, cleanup
//! included, never stops its siblings in the Map nor skips the summary, and the summary can still fail the run.
//! (asl-validator checks the file's grammar; these tests check its failure routes.) And the template's own
//! promises read as text: reserved concurrency only behind its parameter, alarms scoped by stack, JSON parameters
//! checked at deploy time as the functions parse them.

use std::collections::{BTreeSet, VecDeque};

use serde_json::{Map, Value};

use lifeboat_tests::repo_root;

fn definition() -> Value {
    let path = repo_root().join("infra/restore-test.asl.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

fn states(machine: &Value) -> &Map<String, Value> {
    machine["States"].as_object().expect("a States object")
}

/// The one Map state (each database's test) and its name.
fn each_database(machine: &Value) -> (&str, &Value) {
    let maps: Vec<_> = states(machine).iter().filter(|(_, s)| s["Type"] == "Map").collect();
    assert_eq!(maps.len(), 1, "one Map state runs the databases' tests");
    (maps[0].0.as_str(), maps[0].1)
}

fn processor(map: &Value) -> &Value {
    if map.get("ItemProcessor").is_some() {
        &map["ItemProcessor"]
    } else {
        &map["Iterator"]
    }
}

fn action(state: &Value) -> Option<&str> {
    state["Parameters"]["Payload"]["action"].as_str()
}

/// The catcher of every error (`States.ALL`) of a state, if any.
fn catch_all(state: &Value) -> Option<&Value> {
    state["Catch"].as_array()?.iter().find(|c| {
        c["ErrorEquals"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e == "States.ALL"))
    })
}

/// Every state a state can move to.
fn successors(state: &Value) -> Vec<&str> {
    let mut out: Vec<&str> = [&state["Next"], &state["Default"]]
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    for list in ["Choices", "Catch"] {
        out.extend(
            state[list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["Next"].as_str()),
        );
    }
    out
}

/// Every state reachable from `start` (itself included), by name.
fn reachable<'a>(states: &'a Map<String, Value>, start: &'a str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([start]);
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name) {
            continue;
        }
        let state = states
            .get(name)
            .unwrap_or_else(|| panic!("{name} is the target of a transition but no state"));
        queue.extend(successors(state));
    }
    seen
}

/// A route that goes on: it reaches an End that yields a result for the summary, and passes no Fail state
/// (a Fail inside the Map fails the Map, which stops every sibling and skips the summary).
fn assert_leads_on(states: &Map<String, Value>, from: &str, target: &str) {
    let route = reachable(states, target);
    for name in &route {
        let state = &states[*name];
        assert_ne!(
            state["Type"], "Fail",
            "{from}'s Catch leads to {name}, a Fail state: one database's failure would stop the others"
        );
        if state["End"] == true {
            let result = &state["Parameters"];
            let named = result.get("database.$").is_some() || result.get("cache.$").is_some();
            assert!(
                named && result.get("passed").is_some(),
                "{name} ends {from}'s failure route without a {{database or cache, passed}} result for the summary: {state}"
            );
        }
    }
    assert!(
        route.iter().any(|name| states[*name]["End"] == true),
        "{from}'s Catch never reaches an End: {route:?}"
    );
}

#[test]
fn every_cleanup_catches_its_failure_and_leads_on() {
    let machine = definition();
    let (_, map) = each_database(&machine);
    let inner = states(processor(map));
    let cleanups: Vec<&str> = inner
        .iter()
        .filter(|(_, s)| s["Type"] == "Task" && matches!(action(s), Some("cleanup" | "cache_cleanup")))
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        cleanups.len() >= 4,
        "a cleanup after the report and a cleanup after a failure, for databases and caches: {cleanups:?}"
    );
    for name in cleanups {
        let catch = catch_all(&inner[name]).unwrap_or_else(|| {
            panic!("{name} has no Catch of States.ALL: its failure would stop every database's test")
        });
        let target = catch["Next"].as_str().expect("a Catch names its Next");
        assert_leads_on(inner, name, target);
    }
}

#[test]
fn no_task_in_a_database_test_can_stop_its_siblings() {
    let machine = definition();
    let (_, map) = each_database(&machine);
    let inner = states(processor(map));
    for (name, state) in inner.iter().filter(|(_, s)| s["Type"] == "Task") {
        let catch = catch_all(state).unwrap_or_else(|| panic!("{name} has no Catch of States.ALL"));
        assert_leads_on(inner, name, catch["Next"].as_str().expect("a Catch names its Next"));
    }
    assert!(
        inner.values().all(|s| s["Type"] != "Fail"),
        "no Fail state inside the Map: a failed database is a result, not a failed Map"
    );
}

#[test]
fn the_summary_sees_every_result_and_can_fail_the_run() {
    let machine = definition();
    let (map_name, map) = each_database(&machine);
    let next = map["Next"]
        .as_str()
        .unwrap_or_else(|| panic!("{map_name} goes on to the summary"));
    let summary = &states(&machine)[next];
    assert_eq!(
        action(summary),
        Some("summary"),
        "{map_name} is followed by the summary: {summary}"
    );
    assert_eq!(summary["Type"], "Task");
    let results = map["ResultPath"]
        .as_str()
        .expect("the Map keeps its results beside its input");
    assert_eq!(
        summary["Parameters"]["Payload"]["results.$"], results,
        "the summary reads every database's result"
    );
    assert!(
        catch_all(map).is_none()
            || map["Catch"]
                .as_array()
                .is_some_and(|c| c.iter().all(|c| c["Next"] == next)),
        "a Catch on the Map must not route around the summary"
    );
    // The summary's error is the run's verdict: nothing may catch it, and retries are for Lambda's own faults only.
    assert!(
        summary.get("Catch").is_none(),
        "the summary's failure must fail the execution: {summary}"
    );
    let retried: Vec<&Value> = summary["Retry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["ErrorEquals"].as_array().into_iter().flatten())
        .collect();
    assert!(
        retried
            .iter()
            .all(|e| e.as_str().is_some_and(|e| e.starts_with("Lambda."))),
        "the summary's verdict is never retried as if it were a fault: {retried:?}"
    );
    assert_eq!(summary["End"], true, "the summary is the last state");
}

#[test]
fn a_cache_elasticache_could_not_list_is_reported_as_failed_and_cleaned_up() {
    let machine = definition();
    let (_, map) = each_database(&machine);
    let inner = states(processor(map));
    let choice = inner
        .values()
        .find(|s| {
            s["Type"] == "Choice"
                && s["Choices"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["Variable"] == "$.plan_error"))
        })
        .expect("a Choice routes items with plan_error (ElastiCache could not be listed at plan time)");
    let choices = choice["Choices"].as_array().unwrap();
    let position = |pred: &dyn Fn(&Value) -> bool| choices.iter().position(pred).unwrap();
    let cache_error = position(&|c| c["Variable"] == "$.plan_error");
    let cache = position(&|c| c["Variable"] == "$.cache");
    // A database whose plan asks for a test the machine does not run: plan_error together with database.
    let database_error = position(&|c| {
        c["And"].as_array().is_some_and(|a| {
            a.iter().any(|v| v["Variable"] == "$.plan_error") && a.iter().any(|v| v["Variable"] == "$.database")
        })
    });
    assert!(
        database_error < cache_error && cache_error < cache,
        "plan_error is looked at before the cache branch, a database's before a cache's"
    );
    for (which, expected, never) in [
        (cache_error, ["cache_report", "cache_cleanup"], "cache_start"),
        (database_error, ["report", "cleanup"], "start"),
    ] {
        let route = reachable(inner, choices[which]["Next"].as_str().unwrap());
        let actions: Vec<_> = route.iter().filter_map(|n| action(&inner[*n])).collect();
        assert!(
            actions.contains(&expected[0]) && actions.contains(&expected[1]),
            "{actions:?}"
        );
        assert!(!actions.contains(&never), "{actions:?}");
        for name in route.iter().filter(|n| inner[**n]["End"] == true) {
            assert_eq!(
                inner[*name]["Parameters"]["passed"], false,
                "{name} ends a plan failure as passed"
            );
        }
    }
}

/// Every route from a start (database or cache), failed or not, passes a report before it ends: a test whose
/// start failed must still publish a failed result, or monitor goes on showing the previous test's (issue #22,
/// item 16).
#[test]
fn every_started_test_ends_in_a_report_even_when_its_start_fails() {
    let machine = definition();
    let (_, map) = each_database(&machine);
    let inner = states(processor(map));
    for (start, report) in [
        ("start", "report"),
        ("export_start", "report"),
        ("cache_start", "cache_report"),
    ] {
        let (name, state) = inner
            .iter()
            .find(|(_, s)| action(s) == Some(start))
            .unwrap_or_else(|| panic!("no {start} task"));
        let catch = catch_all(state).unwrap_or_else(|| panic!("{name} has no Catch of States.ALL"));
        // Walk every route from the catch's target; no End may be reached without passing a report.
        let mut queue = VecDeque::from([(catch["Next"].as_str().unwrap(), false)]);
        let mut seen = BTreeSet::new();
        while let Some((at, reported)) = queue.pop_front() {
            if !seen.insert((at, reported)) {
                continue;
            }
            let s = &inner[at];
            let reported = reported || action(s) == Some(report);
            assert!(
                s["End"] != true || reported,
                "{name}'s failure reaches {at}, an End, without a {report}: monitor would keep the previous result"
            );
            queue.extend(successors(s).into_iter().map(|n| (n, reported)));
        }
    }
}

/// A plan's test from the newest export (an item with `export`) has a branch of its own: export_start, poll,
/// export_verify, never a snapshot test's start, prepare or verify (which would reset or judge the wrong
/// instance); and every failure of its tasks ends in a report and then a cleanup before the item's result, with
/// the profile kept in the state (the cleanup finds the instance by the database, the profile and the time).
#[test]
fn a_test_from_the_newest_export_restores_into_its_own_instance_and_always_reports_and_cleans_up() {
    let machine = definition();
    let (_, map) = each_database(&machine);
    let inner = states(processor(map));
    let to_export = inner
        .values()
        .filter(|s| s["Type"] == "Choice")
        .flat_map(|s| s["Choices"].as_array().into_iter().flatten())
        .find(|c| c["Variable"] == "$.export")
        .expect("a Choice routes items with `export` (a plan's test from the newest export)");
    let start_name = to_export["Next"].as_str().unwrap();
    let start = &inner[start_name];
    assert_eq!(action(start), Some("export_start"), "{start}");
    assert_eq!(start["Parameters"]["Payload"]["export.$"], "$.export");
    let route = reachable(inner, start_name);
    let actions: BTreeSet<&str> = route.iter().filter_map(|n| action(&inner[*n])).collect();
    for needed in ["export_start", "poll", "export_verify", "report", "cleanup"] {
        assert!(
            actions.contains(needed),
            "{needed} is not on the export branch: {actions:?}"
        );
    }
    for never in ["start", "prepare", "verify", "cache_start"] {
        assert!(!actions.contains(never), "{never} is on the export branch: {actions:?}");
    }
    let failed_start = &inner[catch_all(start).unwrap()["Next"].as_str().unwrap()];
    assert_eq!(
        failed_start["Parameters"]["test"]["export.$"], "$.export",
        "a failed export_start hands on its profile: {failed_start}"
    );
    let branch_tasks = route
        .iter()
        .filter(|n| matches!(action(&inner[**n]), Some("export_start" | "poll" | "export_verify")));
    for name in branch_tasks {
        let catch = catch_all(&inner[*name]).unwrap_or_else(|| panic!("{name} has no Catch of States.ALL"));
        assert_leads_on(inner, name, catch["Next"].as_str().unwrap());
        // (state, reported, cleaned): no End before both.
        let mut queue = VecDeque::from([(catch["Next"].as_str().unwrap(), false, false)]);
        let mut seen = BTreeSet::new();
        while let Some((at, reported, cleaned)) = queue.pop_front() {
            if !seen.insert((at, reported, cleaned)) {
                continue;
            }
            let s = &inner[at];
            let reported = reported || action(s) == Some("report");
            let cleaned = cleaned || (reported && action(s) == Some("cleanup"));
            assert!(
                s["End"] != true || (reported && cleaned),
                "{name}'s failure reaches {at}, an End, without a report and then a cleanup"
            );
            queue.extend(successors(s).into_iter().map(|n| (n, reported, cleaned)));
        }
    }
}

/// The state machine invokes the steps' function only (RestoreTestFunction), never the console's.
#[test]
fn every_task_invokes_the_steps_function() {
    let machine = definition();
    let (_, map) = each_database(&machine);
    let tasks = states(&machine)
        .values()
        .chain(states(processor(map)).values())
        .filter(|s| s["Type"] == "Task");
    for task in tasks {
        assert_eq!(
            task["Parameters"]["FunctionName"], "${RestoreTestFunctionArn}",
            "{task}"
        );
    }
}

/// The `aws:TagKeys` a statement of the template (by its `Sid`, in the role that follows `role:`) allows.
fn allowed_tag_keys(template: &str, role: &str, sid: &str) -> BTreeSet<String> {
    let from = template
        .find(&format!("\n  {role}:\n"))
        .unwrap_or_else(|| panic!("no {role} in the template"));
    let rest = &template[from..];
    let at = rest
        .find(&format!("- Sid: {sid}\n"))
        .unwrap_or_else(|| panic!("no statement {sid} in {role}"));
    let statement = &rest[at..];
    let end = statement[1..].find("- Sid: ").map_or(statement.len(), |e| e + 1);
    let line = statement[..end]
        .lines()
        .find(|l| l.trim_start().starts_with("aws:TagKeys:"))
        .unwrap_or_else(|| panic!("{role}.{sid} has no aws:TagKeys condition"));
    let list = line.split_once('[').and_then(|(_, l)| l.split_once(']')).unwrap().0;
    list.split(',').map(|k| k.trim().to_owned()).collect()
}

/// The restore roles may write exactly the tag keys the code writes, no more (issue #22, item 3): a role that
/// could add `lifeboat:backup=false`, mark snapshots expired or tag a real instance as a restore test cannot.
#[test]
fn the_restore_roles_may_write_exactly_the_tag_keys_the_code_writes() {
    let template = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    let keys = |tags: Vec<String>| -> BTreeSet<String> { tags.into_iter().collect() };
    let at = chrono::Utc::now();
    let mut rds: Vec<String> = lifeboat::rds::instances::test_tags("db", at)
        .iter()
        .filter_map(|t| t.key().map(str::to_owned))
        .collect();
    rds.push(lifeboat::rds::restore::RESTORED_FROM.to_owned());
    rds.push(lifeboat::rds::recovery::RECOVERY_CHOICE.to_owned());
    assert_eq!(
        allowed_tag_keys(&template, "RestoreTestRole", "TagRestoreTests"),
        keys(rds)
    );
    let mut caches: Vec<String> = lifeboat::caches::restore::test_tags("c", at).into_keys().collect();
    caches.push(lifeboat::rds::restore::RESTORED_FROM.to_owned());
    assert_eq!(
        allowed_tag_keys(&template, "RestoreTestRole", "TagRestoreTestCaches"),
        keys(caches)
    );
    let secrets = [
        lifeboat::rds::restore::RESTORE_TEST,
        lifeboat::rds::restore::SOURCE_DB,
        lifeboat::rds::restore::EXPIRES_AT,
    ];
    assert_eq!(
        allowed_tag_keys(&template, "RestoreTestRole", "TagRestoreTestPasswordSecrets"),
        keys(secrets.iter().map(|k| (*k).to_owned()).collect())
    );
    let console = allowed_tag_keys(&template, "RestoreRole", "TagConsoleRestoredCaches");
    assert_eq!(
        console,
        keys(vec![
            lifeboat::caches::restore::SOURCE_CACHE.to_owned(),
            lifeboat::core::tags::REASON.to_owned()
        ])
    );
    for never in [
        lifeboat::rds::restore::RESTORE_TEST,
        "lifeboat:backup",
        lifeboat::core::tags::MANAGED,
        lifeboat::core::tags::POLICY,
        lifeboat::core::tags::EXPIRES_AT,
    ] {
        assert!(!console.contains(never), "the console may write {never}");
    }
    let restore_role =
        &template[template.find("\n  RestoreRole:\n").unwrap()..template.find("\n  RestoreTestRole:\n").unwrap()];
    assert_eq!(
        restore_role
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter(|l| l.contains("rds:AddTagsToResource"))
            .count(),
        1,
        "a console restore writes no RDS tag; only recover's scratch is tagged"
    );
    let scratch: Vec<String> = lifeboat::rds::recover::scratch_tags("db", at, at)
        .iter()
        .filter_map(|t| t.key().map(str::to_owned))
        .collect();
    assert_eq!(
        allowed_tag_keys(&template, "RestoreRole", "TagRecoverScratch"),
        keys(scratch),
        "recover's scratch is tagged as a restore test, and with nothing else"
    );
}

/// One entry of the template's Parameters or Resources as text: from its `  Name:` line to the next entry's.
fn template_resource<'a>(template: &'a str, name: &str) -> &'a str {
    let from = template
        .find(&format!("\n  {name}:\n"))
        .unwrap_or_else(|| panic!("no {name} in the template"))
        + 1;
    let rest = &template[from..];
    let mut offset = rest.find('\n').map_or(rest.len(), |i| i + 1);
    for line in rest[offset..].split_inclusive('\n') {
        let entry = line.starts_with("  ") && !line[2..].starts_with([' ', '#', '\n']);
        if entry || !(line.starts_with(' ') || line.trim().is_empty() || line.starts_with('#')) {
            break;
        }
        offset += line.len();
    }
    &rest[..offset]
}

/// Reserved concurrency is the `ReserveConcurrency` parameter's, off by default: a fixed reservation (they added up
/// to 20) fails to deploy on an account whose concurrency limit was lowered.
#[test]
fn no_function_reserves_concurrency_unless_the_parameter_says_so() {
    let template = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    let reservations: Vec<&str> = template
        .lines()
        .filter(|l| l.trim_start().starts_with("ReservedConcurrentExecutions:"))
        .collect();
    assert_eq!(reservations.len(), 7, "one per function: {reservations:?}");
    for line in reservations {
        assert!(
            line.contains("!If [ReservesConcurrency, ") && line.trim_end().ends_with(", !Ref AWS::NoValue]"),
            "a reservation not behind ReserveConcurrency: {line}"
        );
    }
    let parameter = template_resource(&template, "ReserveConcurrency");
    assert!(parameter.contains("Default: \"false\""), "{parameter}");
    assert!(template.contains("ReservesConcurrency: !Equals [!Ref ReserveConcurrency, \"true\"]"));
}

/// Monitor and notify are told their stack, and notify hears only its own stack's alarms: two stacks in one account
/// and region never act on each other's (tests/it/monitor.rs runs two monitors side by side).
#[test]
fn monitor_and_notify_know_their_stack_and_notify_hears_only_its_alarms() {
    let template = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    for function in ["MonitorFunction", "NotifyFunction"] {
        assert!(
            template_resource(&template, function).contains("LIFEBOAT_STACK_NAME: !Ref AWS::StackName"),
            "{function} is not given its stack's name"
        );
    }
    let notify = template_resource(&template, "NotifyFunction");
    assert!(
        notify.contains(r#"alarmName: [{prefix: !Sub "lifeboat/${AWS::StackName}/"}]"#),
        "notify's alarm rule is not scoped to the stack"
    );
    let monitor_role = template_resource(&template, "MonitorRole");
    assert!(
        monitor_role.contains(":alarm:lifeboat/${AWS::StackName}/*"),
        "{monitor_role}"
    );
    for line in template.lines().filter(|l| l.trim_start().starts_with("AlarmName:")) {
        assert!(
            line.contains("lifeboat/${AWS::StackName}/"),
            "a stack alarm outside the stack's prefix: {line}"
        );
    }
}

/// A parameter's `Default` or `AllowedPattern` as CloudFormation reads it (single-quoted YAML unquoted).
fn parameter_field(template: &str, parameter: &str, field: &str) -> String {
    let entry = template_resource(template, parameter);
    let line = entry
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{field}: ")))
        .unwrap_or_else(|| panic!("{parameter} has no {field}"));
    match line.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')) {
        Some(quoted) => quoted.replace("''", "'"),
        None => line.trim_matches('"').to_owned(),
    }
}

/// Whether CloudFormation's AllowedPattern (a whole-value match) admits `value`, by Python's `re`, whose syntax for
/// the constructs used (classes, groups, lookaheads) is Java's.
fn pattern_admits(pattern: &str, value: &str) -> bool {
    let out = std::process::Command::new(repo_root().join(".venv/bin/python"))
        .args([
            "-c",
            "import re, sys; print(re.fullmatch(sys.argv[1], sys.argv[2]) is not None)",
            pattern,
            value,
        ])
        .output()
        .expect("the project's virtualenv (make tools)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}

/// A parameter, whether the function parses a value, and values to try.
type Case<'a> = (&'a str, &'a dyn Fn(&str) -> bool, &'a [&'a str]);

/// The parameters that are JSON inside a string are checked at deploy time: their AllowedPattern admits the
/// default and well-formed values and refuses what the restore function would refuse at start-up (not JSON, the
/// wrong shape, a check without its name or its query), so a typo fails the deployment, not every restore test.
#[test]
fn json_parameters_are_checked_at_deploy_time_as_the_function_parses_them() {
    let template = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    let sql = |v: &str| serde_json::from_str::<Vec<restore::settings::SqlCheck>>(v).is_ok();
    let keys = |v: &str| {
        serde_json::from_str::<std::collections::BTreeMap<String, Vec<lifeboat::caches::check::KeyCheck>>>(v).is_ok()
    };
    let cases: [Case; 2] = [
        (
            "RestoreChecks",
            &sql,
            &[
                "[]",
                r#"[{"name": "users", "sql": "select count(*) > 0 from users"}]"#,
                r#"[ {"sql": "select 1 = 1", "name": "order does not matter"} ]"#,
                "select 1 = 1",
                r#"{"name": "one", "sql": "select 1 = 1"}"#,
                r#"[{"name": "no query"}]"#,
                r#"[{"name": "a", "sql": "select 1 = 1"}"#,
            ],
        ),
        (
            "CacheRestoreChecks",
            &keys,
            &[
                "{}",
                r#"{"jobs": [{"name": "RQ queue", "pattern": "rq:queue:default", "db": 0}]}"#,
                r#"{"*": [{"pattern": "session:*", "name": "sessions"}], "jobs": []}"#,
                r#"[{"name": "q", "pattern": "x"}]"#,
                r#"{"jobs": [{"name": "no pattern"}]}"#,
                r#"{"jobs": {"name": "q", "pattern": "x"}}"#,
                "jobs=rq:queue:default",
            ],
        ),
    ];
    for (parameter, parses, samples) in cases {
        let pattern = parameter_field(&template, parameter, "AllowedPattern");
        let default = parameter_field(&template, parameter, "Default");
        assert!(parses(&default), "{parameter}'s default does not parse: {default}");
        for value in samples.iter().copied().chain([default.as_str()]) {
            assert_eq!(
                pattern_admits(&pattern, value),
                parses(value),
                "{parameter}: the deploy-time check and the function disagree on {value}"
            );
        }
    }
}

/// The metrics are Embedded Metric Format lines without a level, which Lambda files as INFO: a `LogLevel` above
/// INFO would drop every metric and starve the alarms, so the template allows none.
#[test]
fn no_log_level_that_drops_the_metrics_can_be_deployed() {
    let template = std::fs::read_to_string(lifeboat_tests::repo_root().join("infra/template.yaml")).unwrap();
    let block = template_resource(&template, "LogLevel");
    let allowed = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("AllowedValues: ["))
        .expect("LogLevel lists its allowed values");
    let allowed: Vec<&str> = allowed.trim_end_matches(']').split(',').map(str::trim).collect();
    assert_eq!(allowed, ["TRACE", "DEBUG", "INFO"]);
}

/// Every function that runs without a person watching (a schedule, a rotation, the state machine) has an alarm on
/// its own failed invocations, so a failed run is told when it happens: `make chaos` found failed exports that
/// only a freshness alarm a day later would have told (tests/it/chaos_run.rs proves the alarm breached and notify
/// told; tests/it/chaos.rs that the check misses nothing).
#[test]
fn every_unattended_function_has_an_alarm_on_its_failed_invocations() {
    let template = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    for function in ["Snapshot", "Export", "Rotate", "RestoreTest", "Monitor"] {
        let alarm = template_resource(&template, &format!("{function}ErrorsAlarm"));
        for line in [
            "Namespace: AWS/Lambda",
            "MetricName: Errors",
            &format!("Value: !Ref {function}Function"),
            "Threshold: 1",
            "ComparisonOperator: GreaterThanOrEqualToThreshold",
            "TreatMissingData: notBreaching",
        ] {
            assert!(alarm.contains(line), "{function}ErrorsAlarm lacks `{line}`:\n{alarm}");
        }
    }
}
