//! Metrics the Lambda way, as Lambda runs a function: the real `snapshot` binary under a local Lambda runtime
//! API, against moto. Its figures must arrive as CloudWatch Embedded Metric Format lines on standard output
//! (what Lambda hands to CloudWatch Logs, which turns them into metrics), one JSON document a line, and never as
//! a `PutMetricData` call: moto's CloudWatch must hold no metric afterwards.

use lifeboat::core::metrics;
use lifeboat_tests::lambda::{function_binary, LocalLambda};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::repo_root;
use serde_json::Value;

const REGION: &str = "us-east-1";

#[tokio::test]
async fn a_lambda_run_writes_its_figures_as_emf_lines_and_calls_no_metrics_api() {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let rds = aws_sdk_rds::Client::new(&config);
    lifeboat_tests::plans::instance(&rds, "orders", &[("lifeboat:backup", "true")], 1).await;

    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("LIFEBOAT_SERVERLESS_CACHES", "false".to_owned()),
    ];
    let mut lambda = LocalLambda::start("snapshot", &function_binary("snapshot"), &env);
    let result = lambda
        .invoke(&repo_root().join("events/snapshot/scheduled.json"))
        .unwrap_or_else(|e| panic!("the scheduled run failed: {e}"));
    assert_eq!(result["created"], 1, "{result}");

    // Every line that names `_aws` is a whole EMF document (a line split by another writer would not parse).
    let lines = lambda.stdout_lines();
    let docs: Vec<Value> = lines
        .iter()
        .filter(|l| l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON document ({e}): {l}")))
        .collect();
    assert!(
        !docs.is_empty(),
        "no EMF line among the function's output:\n{}",
        lines.join("\n")
    );
    for doc in &docs {
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Lifeboat", "{doc}");
        assert!(doc["_aws"]["Timestamp"].as_i64().is_some(), "{doc}");
        // Every dimension and metric the directive names is a member of the document.
        for name in directive["Dimensions"][0].as_array().unwrap() {
            assert!(doc[name.as_str().unwrap()].is_string(), "{doc}");
        }
        for def in directive["Metrics"].as_array().unwrap() {
            let name = def["Name"].as_str().unwrap();
            assert!(metrics::ALL.contains(&name), "{name} is not in the vocabulary");
            assert!(doc[name].is_number() || doc[name].is_array(), "{doc}");
        }
    }
    let of_orders = docs
        .iter()
        .find(|d| d[metrics::DB_DIMENSION] == "orders")
        .unwrap_or_else(|| panic!("no document for orders: {docs:?}"));
    assert_eq!(of_orders[metrics::SNAPSHOT_CREATED], 1.0, "{of_orders}");
    assert_eq!(of_orders[metrics::SNAPSHOT_FAILED], 0.0, "{of_orders}");
    assert!(
        docs.iter()
            .any(|d| d[metrics::SNAPSHOT_RUN_DURATION_SECONDS].is_number()
                && d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == serde_json::json!([[]])),
        "the run's duration has no dimension: {docs:?}"
    );

    // Nothing went through the API.
    let listed = aws_sdk_cloudwatch::Client::new(&config)
        .list_metrics()
        .namespace("Lifeboat")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.metrics().len(), 0, "{:?}", listed.metrics());
}
