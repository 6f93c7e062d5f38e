//! The evidence report end to end: a fleet with 24 days of history in moto (a missed day, a failed restore
//! test, a database never exported), the report written by `monitor` on a console event, read back from the
//! bucket and checked: each verdict, each gap, the numbers in the tables; the same report from the `lifeboat`
//! tool as a real process; and refusals for a period or an action that cannot be read.

use std::collections::BTreeMap;
use std::process::Command;

use chrono::{DateTime, Utc};
use lifeboat_tests::history::{self, day, FAILED_TEST_DAYS_AGO, MISSED_DAYS_AGO};
use lifeboat_tests::moto::Moto;
use monitor::settings::MonitorSettings;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";

/// The variables given, over the stack name every monitor and notify needs (`LIFEBOAT_STACK_NAME`, here `prod`: the
/// alarms these tests read are `lifeboat/prod/<subject>/<check>`).
fn env(pairs: &[(&str, &str)]) -> impl lifeboat::core::settings::Env {
    let mut map: BTreeMap<String, String> = BTreeMap::from([("LIFEBOAT_STACK_NAME".to_owned(), "prod".to_owned())]);
    map.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    move |n: &str| map.get(n).cloned()
}

pub(crate) struct World {
    pub moto: Moto,
    pub deps: monitor::Deps,
    pub s3: aws_sdk_s3::Client,
    pub now: DateTime<Utc>,
}

/// moto with the bucket and the seeded fleet, and monitor's dependencies pointed at it.
pub(crate) async fn world() -> World {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let now = Utc::now();
    history::seed(&config, BUCKET, now).await;
    let settings = MonitorSettings::from_env(&env(&[("LIFEBOAT_BUCKET", BUCKET)])).unwrap();
    World {
        deps: monitor::Deps::new(&config, settings),
        moto,
        s3,
        now,
    }
}

pub(crate) async fn get(s3: &aws_sdk_s3::Client, key: &str) -> String {
    let body = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    String::from_utf8(body.into_bytes().to_vec()).unwrap()
}

/// The report monitor writes for the last 30 days: its summary, the page and the JSON.
pub(crate) async fn written_report(w: &World) -> (Value, String, Value) {
    let summary = monitor::run(&w.deps, json!({"action": "evidence-report"}))
        .await
        .unwrap();
    let html = get(&w.s3, summary["html_key"].as_str().unwrap()).await;
    let data: Value = serde_json::from_str(&get(&w.s3, summary["json_key"].as_str().unwrap()).await).unwrap();
    (summary, html, data)
}

fn db<'a>(data: &'a Value, name: &str) -> &'a Value {
    data["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["db"] == name)
        .unwrap()
}

/// The days of a series with the given status.
fn days_with(data: &Value, name: &str, series: &str, status: &str) -> Vec<String> {
    let s = db(data, name)["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == series)
        .unwrap();
    s["days"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == status)
        .map(|d| d["date"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn monitor_writes_a_report_whose_verdicts_gaps_and_tables_match_the_history() {
    let w = world().await;
    let (summary, html, data) = written_report(&w).await;
    let missed = day(w.now, MISSED_DAYS_AGO).to_string();
    let failed = day(w.now, FAILED_TEST_DAYS_AGO).to_string();
    let period = lifeboat::evidence::period::Period::parse(None, w.now).unwrap();
    let (y, m) = period.folder_month();
    assert_eq!(
        summary["html_key"],
        lifeboat::bucket::layout::evidence_keys(y, m, &period.slug).0
    );
    assert_eq!(
        summary["url"],
        format!("s3://{BUCKET}/{}", summary["html_key"].as_str().unwrap())
    );
    // Each verdict.
    let verdicts = &summary["verdicts"];
    assert_eq!(
        verdicts["app-prod"],
        format!("does not: 1 missed snapshot on {missed}; 1 missed `full` export on {missed}; the last restore test ({failed}) failed")
    );
    assert_eq!(verdicts["billing"], "does not: no `full` export at all");
    assert_eq!(verdicts["analytics"], "meets its policy");
    assert_eq!(
        (summary["databases"].as_u64(), summary["policies_met"].as_u64()),
        (Some(3), Some(1))
    );
    // Each gap: app-prod's one day in both series, billing's every judged day, nothing for analytics.
    assert_eq!(days_with(&data, "app-prod", "snapshots", "gap"), [missed.as_str()]);
    assert_eq!(days_with(&data, "app-prod", "full", "gap"), [missed.as_str()]);
    assert_eq!(
        days_with(&data, "billing", "full", "gap").len(),
        30,
        "never exported: every day of the period is a gap"
    );
    assert!(days_with(&data, "analytics", "full", "gap").is_empty());
    assert_eq!(
        days_with(&data, "analytics", "full", "met").len(),
        history::DAYS as usize
    );
    assert_eq!(
        days_with(&data, "analytics", "full", "not-kept").len(),
        30 - history::DAYS as usize,
        "before the oldest kept export"
    );
    // The fleet summary on top of the page.
    assert_eq!(data["summary"]["oldest_restore_test"]["db"], "billing");
    assert_eq!(data["summary"]["worst_rpo"]["rpo_hours"], 26.0);
    assert!(
        html.contains(&format!("✕ app-prod does not: 1 missed snapshot on {missed}")),
        "needs a human"
    );
    assert!(html.contains("<div class=\"value\">1 of 3</div>"));
    assert!(html.contains("<div class=\"value\">26.0 h</div>"), "the worst RPO card");
    // The numbers in the tables: the gap cell, the age over its threshold, the failed test, RTO and sizes.
    assert!(html.contains("<td class=\"gap\" title=\"missed 1\">✕0</td>"));
    assert!(
        html.contains("<td class=\"gap\">✕46.0</td>"),
        "46 hours old at the end of the missed day"
    );
    assert!(
        html.contains("<td class=\"gap\">✕48.0</td>"),
        "48 hours old when the next one came"
    );
    assert!(
        html.contains(
            "<td class=\"gap\">✕ FAILED</td><td>–</td><td>1.5</td>\
             <td>check row-count:public.users: 0 rows restored, 1200 in the manifest</td>"
        ),
        "the failed test, RTO not measured, RPO 1.5 h, and why"
    );
    assert!(
        html.contains("<td>✓ passed</td><td>25.0</td><td>1.5</td>"),
        "app-prod's passed test: RTO 25 min, RPO 1.5 h"
    );
    let newest_app_size = (180 + 2 * (history::DAYS - 1)) as f64;
    assert!(
        html.contains(&format!("<td>{newest_app_size:.0}</td>")),
        "yesterday's app-prod export, {newest_app_size} MiB"
    );
    let app = db(&data, "app-prod");
    assert_eq!(app["exports"].as_array().unwrap().len(), history::DAYS as usize - 1);
    assert_eq!(app["restore_tests"].as_array().unwrap().len(), 2);
    assert_eq!(
        db(&data, "billing")["findings"],
        json!(["billing: deletion protection is off"])
    );
    // The run's metrics.
    let written = w
        .deps
        .cw
        .list_metrics()
        .metric_name(lifeboat::core::metrics::EVIDENCE_REPORT_WRITTEN)
        .send()
        .await
        .unwrap();
    assert_eq!(written.metrics().len(), 1);
}

#[tokio::test]
async fn a_period_or_an_action_that_cannot_be_read_is_refused_before_anything_is_written() {
    let w = world().await;
    let err = monitor::run(&w.deps, json!({"action": "evidence-report", "period": "2026-13"}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid event: `2026-13` is not a period: use YYYY-MM (2026-10), YYYY-Qn (2026-Q3), last-30-days or previous-month"
    );
    let err = monitor::run(&w.deps, json!({"action": "evidence"})).await.unwrap_err();
    assert!(err.to_string().contains("unknown action \"evidence\""), "{err}");
    let listed =
        w.s3.list_objects_v2()
            .bucket(BUCKET)
            .prefix("reports/evidence/")
            .send()
            .await
            .unwrap();
    assert!(listed.contents().is_empty());
    // A month: its folder and name.
    let month = monitor::run(&w.deps, json!({"action": "evidence-report", "period": "2026-10"}))
        .await
        .unwrap();
    assert_eq!(month["html_key"], "reports/evidence/2026-10/fleet-2026-10.html");
}

#[tokio::test]
async fn the_lifeboat_tool_writes_the_same_report_locally() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("evidence.html");
    let out = Command::new(crate::cli::binary())
        .args(["report", "--out", out_file.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", &w.moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", dir.path().join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("no-aws-credentials"))
        .env("LIFEBOAT_BUCKET", BUCKET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "evidence report for 30 days to {}: {}",
            day(w.now, 1),
            out_file.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("  analytics: meets its policy\n"), "{stdout}");
    assert!(
        stdout.contains("  billing: does not: no `full` export at all\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  1 of 3 databases meet their policy\n"), "{stdout}");
    let local = std::fs::read_to_string(&out_file).unwrap();
    let (_, from_monitor, _) = written_report(&w).await;
    // The same page but for the minute it was made in.
    let strip = |s: &str| s.lines().filter(|l| !l.contains(" UTC")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&local), strip(&from_monitor));
    let data: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("evidence.json")).unwrap()).unwrap();
    assert_eq!(data["summary"]["policies_met"], 1);

    // With --json: one document on stdout naming the files and the verdicts.
    let out = Command::new(crate::cli::binary())
        .args(["report", "--json", "--out", out_file.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", &w.moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", dir.path().join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("no-aws-credentials"))
        .env("LIFEBOAT_BUCKET", BUCKET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["command"], "report");
    assert_eq!(doc["html"], out_file.display().to_string());
    assert_eq!(doc["json"], dir.path().join("evidence.json").display().to_string());
    assert_eq!(doc["policies_met"], 1);
    assert_eq!(doc["databases_covered"], 3);
    let analytics = doc["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["database"] == "analytics")
        .unwrap();
    assert_eq!(analytics["meets_policy"], true);
    assert_eq!(analytics["verdict"], "meets its policy");
}
