//! Logs as Lambda reads them: the real `snapshot` binary under a local Lambda runtime API. Every line it writes
//! must be one JSON object with an RFC 3339 `timestamp` and one of Lambda's `level` names (Lambda gives any other
//! line the level INFO, and drops it when the function's `ApplicationLogLevel` is WARN or ERROR), the level set
//! by `AWS_LAMBDA_LOG_LEVEL` alone, and a failed invocation must leave its ERROR line at every setting. The
//! metrics' Embedded Metric Format documents (`_aws`) are JSON lines of their own and are checked in `emf.rs`.

use lifeboat_tests::lambda::{function_binary, LocalLambda};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::{free_port, repo_root};
use serde_json::Value;

const REGION: &str = "us-east-1";
const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Every line of the function's output as a log record, checked: JSON, a timestamp, a level.
fn records(lambda: &LocalLambda) -> Vec<Value> {
    let stderr = lambda.stderr_lines();
    assert!(
        stderr.is_empty(),
        "lines on standard error, outside the JSON log:\n{}",
        stderr.join("\n")
    );
    lambda
        .stdout_lines()
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}")))
        .filter(|record| record.get("_aws").is_none())
        .inspect(|record| {
            let timestamp = record["timestamp"]
                .as_str()
                .unwrap_or_else(|| panic!("no timestamp: {record}"));
            assert!(
                chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
                "timestamp {timestamp} is not RFC 3339: {record}"
            );
            let level = record["level"].as_str().unwrap_or_else(|| panic!("no level: {record}"));
            assert!(
                LEVELS.contains(&level),
                "level {level} is not one of Lambda's: {record}"
            );
            assert!(record["message"].is_string(), "no message: {record}");
        })
        .collect()
}

/// A manual invocation the function refuses (its reason is empty): it fails before any AWS call.
fn failing_event(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("no-reason.json");
    std::fs::write(&path, r#"{"databases": ["orders"], "reason": ""}"#).unwrap();
    path
}

/// The function's environment with nothing it could reach: AWS at a closed local port.
fn offline_env(level: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", free_port())),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("LIFEBOAT_SERVERLESS_CACHES", "false".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", level.to_owned()),
        // Whatever the log format variable says, the lines are JSON.
        ("AWS_LAMBDA_LOG_FORMAT", "Text".to_owned()),
    ]
}

fn failed_invocation_line(records: &[Value]) -> &Value {
    records
        .iter()
        .find(|r| r["message"] == "invocation failed")
        .unwrap_or_else(|| panic!("no line for the failed invocation among {records:#?}"))
}

#[test]
fn at_error_every_line_is_lambda_json_and_the_failure_is_there() {
    for level in ["ERROR", "WARN"] {
        let dir = tempfile::tempdir().unwrap();
        let mut lambda = LocalLambda::start("snapshot", &function_binary("snapshot"), &offline_env(level));
        let error = lambda
            .invoke(&failing_event(&dir))
            .expect_err("an empty reason is refused");
        assert!(error.contains("reason"), "{error}");

        let records = records(&lambda);
        let failed = failed_invocation_line(&records);
        assert_eq!(failed["level"], "ERROR", "{failed}");
        assert!(
            failed["error"].as_str().unwrap().contains("`reason` is empty"),
            "{failed}"
        );
        // The invocation's request id is on the line, from lambda_runtime's span.
        assert!(failed["requestId"].is_string(), "{failed}");
        let quieter: Vec<&Value> = records
            .iter()
            .filter(|r| ["INFO", "DEBUG", "TRACE"].contains(&r["level"].as_str().unwrap()))
            .collect();
        assert!(quieter.is_empty(), "{level} lets through {quieter:#?}");
    }
}

#[test]
fn an_unknown_level_logs_at_info_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut lambda = LocalLambda::start("snapshot", &function_binary("snapshot"), &offline_env("verbose"));
    lambda
        .invoke(&failing_event(&dir))
        .expect_err("an empty reason is refused");

    let records = records(&lambda);
    let said = records
        .iter()
        .find(|r| r["message"] == "unknown log level; logging at INFO")
        .unwrap_or_else(|| panic!("no line says the level is unknown: {records:#?}"));
    assert_eq!(said["level"], "WARN", "{said}");
    assert_eq!(said["value"], "verbose", "{said}");
    assert_eq!(failed_invocation_line(&records)["level"], "ERROR");
}

#[tokio::test]
async fn at_info_a_run_writes_its_info_lines_as_lambda_json() {
    let moto = Moto::start();
    let rds = aws_sdk_rds::Client::new(&moto.config(REGION));
    lifeboat_tests::plans::instance(&rds, "orders", &[("lifeboat:backup", "true")], 1).await;

    let mut env = offline_env("INFO");
    env[0].1 = moto.endpoint.clone();
    let mut lambda = LocalLambda::start("snapshot", &function_binary("snapshot"), &env);
    let result = lambda
        .invoke(&repo_root().join("events/snapshot/scheduled.json"))
        .unwrap_or_else(|e| panic!("the scheduled run failed: {e}"));
    assert_eq!(result["created"], 1, "{result}");

    let records = records(&lambda);
    let infos: Vec<&Value> = records.iter().filter(|r| r["level"] == "INFO").collect();
    assert!(
        infos.iter().any(|r| r["db"] == "orders" && r["requestId"].is_string()),
        "no INFO line about orders in its invocation: {records:#?}"
    );
    assert!(
        records.iter().all(|r| r["level"] != "DEBUG" && r["level"] != "TRACE"),
        "INFO lets through {records:#?}"
    );
}
