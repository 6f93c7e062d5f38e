//! Failures signalled: every failed run produced (a) its failure metric, (b) an alarm state, (c) a notification.
//!
//! (a) A failure metric is a figure of the failure's resource (its `DBIdentifier` or `CacheIdentifier`; one
//! without dimensions when the failure names none) that says so by the vocabulary's convention: a `...Failed`
//! of 1 or more, or a `...Success` below 1. Functions publish them as Embedded Metric Format lines, which
//! CloudWatch Logs turns into metrics; [`signal`] does that step for the harness (moto has no log pipeline).
//! (b) An alarm of the stack, or one monitor made, watches that metric for that resource and its datapoints
//! breach the alarm's threshold under its statistic and period (moto never evaluates alarms: this does, on
//! moto's datapoints). A failed restore-test execution is signalled by its own EventBridge event instead (the
//! stack routes `Step Functions Execution Status Change` to notify): its (b) is that event.
//! (c) notify published to the stack's topic a message naming the failed execution, or the resource, or (for a
//! failure of no one resource) the alarm that breached.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_sdk_cloudwatch::types::{Dimension, MetricAlarm, MetricDatum, Statistic};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::{violation, Cloud, Invariant, Ledger, RunFailure, Violation};
use crate::demo::deployed::{matches, World};
use crate::stack::Deployed;

/// The harness's queue, subscribed to the stack's topic: what notify published.
const QUEUE: &str = "lifeboat-chaos-notifications";
/// The dimensions a failure's resource is named by.
const RESOURCE_DIMENSIONS: [&str; 2] = [
    lifeboat::core::metrics::DB_DIMENSION,
    lifeboat::core::metrics::CACHE_DIMENSION,
];

pub(super) async fn check(w: &World, c: &Cloud, ledger: &mut Ledger, out: &mut Vec<Violation>) {
    ledger.notifications.extend(drain(w).await);
    let namespace = namespace(w);
    let alarms = alarms(c).await;
    for f in &ledger.failures {
        let what = describe(f);
        let mut failing = failure_metrics(c, &namespace, f.resource.as_deref()).await;
        if f.execution.is_none() {
            failing.extend(lambda_errors(c, w, f).await);
        }
        let alarm = match f.execution {
            Some(_) => None,
            None => breached(c, &alarms, &failing, f.resource.as_deref()).await,
        };
        if failing.is_empty() {
            out.push(violation(
                Invariant::Signalled,
                format!("{what}: no failure metric was published"),
            ));
        } else if f.execution.is_none() && alarm.is_none() {
            let names: Vec<&str> = failing.iter().map(|(m, _)| m.as_str()).collect();
            out.push(violation(
                Invariant::Signalled,
                format!("{what}: no alarm watching {names:?} breached"),
            ));
        }
        // The message names the execution, else the resource, else (a failure of no one resource) its alarm.
        let named = f
            .execution
            .as_deref()
            .map(|e| e.rsplit(':').next().unwrap_or(e))
            .or(f.resource.as_deref())
            .or(alarm.as_ref().and_then(MetricAlarm::alarm_name))
            .unwrap_or(f.function.as_str());
        if !ledger.notifications.iter().any(|n| n.contains(named)) {
            out.push(violation(
                Invariant::Signalled,
                format!("{what}: no notification names {named}"),
            ));
        }
    }
}

fn describe(f: &RunFailure) -> String {
    format!(
        "the failed run of {} at {}{}",
        f.function,
        f.at,
        f.resource.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    )
}

fn namespace(w: &World) -> String {
    w.stack
        .function("NotifyFunction")
        .env
        .get(lifeboat::core::settings::METRICS_NAMESPACE)
        .cloned()
        .unwrap_or_else(|| lifeboat::core::settings::DEFAULT_NAMESPACE.to_owned())
}

/// What AWS does between a failure and notify: the functions' metric lines become metrics; then, for a failed
/// restore-test execution, its status-change event goes through notify's rule for it; for a failed invocation,
/// the state change of an alarm its failure metric breached goes through notify's rule for alarms. `Err` says
/// why nothing reached notify (no rule matched, no alarm breached, notify refused). `shipped` is the ledger's
/// count of log lines already made metrics.
pub async fn signal(
    w: &World,
    deployed: &Deployed,
    shipped: &mut BTreeMap<PathBuf, usize>,
    failure: &RunFailure,
) -> Result<(), String> {
    subscribe(w).await?;
    ship_metrics(w, deployed, shipped).await?;
    let notify = w.stack.function("NotifyFunction");
    let (rule, event) = match &failure.execution {
        Some(execution) => ("RestoreTestFailed", execution_event(w, failure, execution)),
        None => {
            lambda_error(w, failure).await?;
            let c = Cloud::of(w).await;
            let mut failing = failure_metrics(&c, &namespace(w), failure.resource.as_deref()).await;
            failing.extend(lambda_errors(&c, w, failure).await);
            let alarm = breached(&c, &alarms(&c).await, &failing, failure.resource.as_deref())
                .await
                .ok_or_else(|| format!("{}: no alarm breached, nothing tells notify", describe(failure)))?;
            ("AlarmChanged", alarm_event(w, &alarm))
        }
    };
    let pattern = notify_rule(w, rule)?;
    if !matches(&pattern, &event) {
        return Err(format!("notify's rule {rule} does not match {event}"));
    }
    tokio::task::block_in_place(|| deployed.invoke(&notify.arn, &event))
        .map(|_| ())
        .map_err(|e| format!("notify refused {rule}'s event: {e}"))
}

/// The function a failed invocation was of, as Lambda's metrics name it.
fn function_dimension(w: &World, failure: &RunFailure) -> Option<Dimension> {
    let f = w
        .stack
        .functions()
        .into_iter()
        .find(|f| f.logical_id == failure.function)?;
    Some(Dimension::builder().name("FunctionName").value(f.name).build())
}

/// What Lambda publishes for a failed invocation: its function's `Errors`, 1 (moto runs no function, so no
/// metric of Lambda's exists unless the harness puts it).
async fn lambda_error(w: &World, failure: &RunFailure) -> Result<(), String> {
    let Some(dim) = function_dimension(w, failure) else {
        return Err(format!("{}: no such function in the stack", describe(failure)));
    };
    let datum = MetricDatum::builder()
        .metric_name("Errors")
        .value(1.0)
        .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            Utc::now().timestamp(),
        ))
        .dimensions(dim)
        .build();
    aws_sdk_cloudwatch::Client::new(&w.config)
        .put_metric_data()
        .namespace("AWS/Lambda")
        .metric_data(datum)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("PutMetricData AWS/Lambda Errors: {e}"))
}

/// The failed invocation's function's `Errors`, when Lambda counted one or more.
async fn lambda_errors(c: &Cloud, w: &World, failure: &RunFailure) -> Vec<(String, Vec<Dimension>)> {
    let Some(dim) = function_dimension(w, failure) else {
        return Vec::new();
    };
    let dims = vec![dim];
    let sums = datapoints(c, "AWS/Lambda", "Errors", &dims, 86_400, Statistic::Sum).await;
    if sums.iter().any(|v| *v >= 1.0) {
        vec![("Errors".to_owned(), dims)]
    } else {
        Vec::new()
    }
}

fn notify_rule(w: &World, name: &str) -> Result<Value, String> {
    let notify = w.stack.function("NotifyFunction");
    let rule = w
        .stack
        .rules_targeting(&notify)
        .into_iter()
        .find(|r| r["name"].as_str().unwrap_or("").contains(name))
        .ok_or_else(|| format!("notify has no rule {name}"))?;
    serde_json::from_str(rule["pattern"].as_str().unwrap_or("")).map_err(|e| format!("rule {name}: {e}"))
}

/// The event Step Functions sends when `execution` fails, as `story()` builds it.
fn execution_event(w: &World, failure: &RunFailure, execution: &str) -> Value {
    let (machine, _) = w.stack.state_machine("restore-test");
    let mut event = crate::demo::sample("events/notify/restore-test-failed.json");
    let now = Utc::now();
    event["region"] = json!(w.stack.region);
    event["time"] = json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    event["resources"] = json!([execution]);
    let detail = &mut event["detail"];
    detail["executionArn"] = json!(execution);
    detail["stateMachineArn"] = json!(machine);
    detail["name"] = json!(execution.rsplit(':').next().unwrap_or(execution));
    detail["stopDate"] = json!(now.timestamp_millis());
    detail["error"] = json!("Lifeboat.PartialFailure");
    detail["cause"] = json!(format!(
        "{}{}",
        failure.error,
        failure
            .resource
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    ));
    event
}

/// The state-change event CloudWatch sends when `alarm` goes into ALARM.
fn alarm_event(w: &World, alarm: &MetricAlarm) -> Value {
    let mut event = crate::demo::sample("events/notify/alarm.json");
    let now = Utc::now();
    let name = alarm.alarm_name().unwrap_or_default();
    event["region"] = json!(w.stack.region);
    event["time"] = json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    event["resources"] = json!([alarm.alarm_arn().unwrap_or_default()]);
    let detail = &mut event["detail"];
    detail["alarmName"] = json!(name);
    detail["state"]["timestamp"] = json!(now.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    detail["state"]["reason"] = json!("Threshold Crossed: the harness evaluated the alarm on moto's datapoints");
    detail["configuration"] = json!({"description": alarm.alarm_description().unwrap_or_default()});
    event
}

/// What CloudWatch Logs does with Embedded Metric Format lines: every function's new lines, as metrics.
/// `shipped` holds how many lines of each log file are metrics already: a line is shipped once.
async fn ship_metrics(w: &World, deployed: &Deployed, shipped: &mut BTreeMap<PathBuf, usize>) -> Result<(), String> {
    let cw = aws_sdk_cloudwatch::Client::new(&w.config);
    for f in w.stack.functions() {
        let path = deployed.log_dir.join(format!("{}.log", f.name));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = shipped.get(&path).copied().unwrap_or(0).min(lines.len());
        shipped.insert(path.clone(), lines.len());
        for line in &lines[from..] {
            let Ok(doc) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            for (namespace, data) in emf_data(&doc) {
                for chunk in data.chunks(500) {
                    cw.put_metric_data()
                        .namespace(&namespace)
                        .set_metric_data(Some(chunk.to_vec()))
                        .send()
                        .await
                        .map_err(|e| format!("PutMetricData for {}: {e}", f.logical_id))?;
                }
            }
        }
    }
    Ok(())
}

/// The metric data an EMF document defines, by namespace.
fn emf_data(doc: &Value) -> Vec<(String, Vec<MetricDatum>)> {
    let Some(at) = doc["_aws"]["Timestamp"].as_i64() else {
        return Vec::new();
    };
    let timestamp = aws_sdk_cloudwatch::primitives::DateTime::from_millis(at);
    let mut out = Vec::new();
    for def in doc["_aws"]["CloudWatchMetrics"].as_array().into_iter().flatten() {
        let namespace = def["Namespace"].as_str().unwrap_or_default().to_owned();
        let sets: Vec<Vec<&str>> = def["Dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|set| set.as_array().into_iter().flatten().filter_map(Value::as_str).collect())
            .collect();
        let mut data = Vec::new();
        for metric in def["Metrics"].as_array().into_iter().flatten() {
            let name = metric["Name"].as_str().unwrap_or_default();
            let values: Vec<f64> = match &doc[name] {
                Value::Array(many) => many.iter().filter_map(Value::as_f64).collect(),
                one => one.as_f64().into_iter().collect(),
            };
            for set in &sets {
                let dims: Vec<Dimension> = set
                    .iter()
                    .map(|k| {
                        Dimension::builder()
                            .name(*k)
                            .value(doc[*k].as_str().unwrap_or_default())
                            .build()
                    })
                    .collect();
                for v in &values {
                    data.push(
                        MetricDatum::builder()
                            .metric_name(name)
                            .value(*v)
                            .timestamp(timestamp)
                            .set_dimensions(Some(dims.clone()))
                            .build(),
                    );
                }
            }
        }
        out.push((namespace, data));
    }
    out
}

/// The failure metrics of `resource` that say it failed: each metric's name and its dimensions.
async fn failure_metrics(c: &Cloud, namespace: &str, resource: Option<&str>) -> Vec<(String, Vec<Dimension>)> {
    let mut out = Vec::new();
    let mut listed = Vec::new();
    let mut pages = c.cw.list_metrics().namespace(namespace).into_paginator().send();
    while let Some(Ok(page)) = pages.next().await {
        listed.extend(page.metrics().iter().cloned());
    }
    for m in &listed {
        let name = m.metric_name().unwrap_or_default();
        let dims = m.dimensions().to_vec();
        let of_resource = match resource {
            Some(r) => dims
                .iter()
                .any(|d| RESOURCE_DIMENSIONS.contains(&d.name().unwrap_or_default()) && d.value() == Some(r)),
            None => dims.is_empty(),
        };
        let (failed, succeeded) = (name.ends_with("Failed"), name.ends_with("Success"));
        if !of_resource || !(failed || succeeded) {
            continue;
        }
        let values = datapoints(c, namespace, name, &dims, 86_400, Statistic::Maximum).await;
        let lows = datapoints(c, namespace, name, &dims, 86_400, Statistic::Minimum).await;
        if (failed && values.iter().any(|v| *v >= 1.0)) || (succeeded && lows.iter().any(|v| *v < 1.0)) {
            out.push((name.to_owned(), dims));
        }
    }
    out
}

/// The values of `statistic` per `period` seconds over the last 45 days.
async fn datapoints(
    c: &Cloud,
    namespace: &str,
    metric: &str,
    dims: &[Dimension],
    period: i32,
    statistic: Statistic,
) -> Vec<f64> {
    let now: DateTime<Utc> = Utc::now();
    let time = |t: DateTime<Utc>| aws_sdk_cloudwatch::primitives::DateTime::from_secs(t.timestamp());
    let got =
        c.cw.get_metric_statistics()
            .namespace(namespace)
            .metric_name(metric)
            .set_dimensions(Some(dims.to_vec()))
            .start_time(time(now - Duration::days(45)))
            .end_time(time(now + Duration::days(1)))
            .period(period)
            .statistics(statistic.clone())
            .send()
            .await;
    got.map(|g| {
        g.datapoints()
            .iter()
            .filter_map(|d| match statistic {
                Statistic::Minimum => d.minimum(),
                Statistic::Sum => d.sum(),
                Statistic::Average => d.average(),
                Statistic::SampleCount => d.sample_count(),
                _ => d.maximum(),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Every metric alarm in the region: the stack's and monitor's.
async fn alarms(c: &Cloud) -> Vec<MetricAlarm> {
    let mut out = Vec::new();
    let mut pages = c.cw.describe_alarms().into_paginator().send();
    while let Some(Ok(page)) = pages.next().await {
        out.extend(page.metric_alarms().iter().cloned());
    }
    out
}

/// What an alarm watches: namespace, metric, statistic, period and dimensions (a Metrics Insights alarm over a
/// schema is read as watching each value of its one dimension, `resource`'s among them).
fn watched(alarm: &MetricAlarm, resource: Option<&str>) -> Option<(String, String, Statistic, i32, Vec<Dimension>)> {
    if let Some(metric) = alarm.metric_name() {
        return Some((
            alarm.namespace()?.to_owned(),
            metric.to_owned(),
            alarm.statistic().cloned().unwrap_or(Statistic::Maximum),
            alarm.period()?,
            alarm.dimensions().to_vec(),
        ));
    }
    // SELECT MAX(RdbCopyFailed) FROM SCHEMA(Lifeboat, CacheIdentifier)
    let q = alarm.metrics().iter().find_map(|m| m.expression())?;
    let period = alarm.metrics().iter().find_map(|m| m.period())?;
    let (stat, rest) = q.strip_prefix("SELECT ")?.split_once('(')?;
    let (metric, rest) = rest.split_once(')')?;
    let schema = rest.split_once("SCHEMA(")?.1.split_once(')')?.0;
    let mut parts = schema.split(',').map(str::trim);
    let namespace = parts.next()?.to_owned();
    let dims = match (parts.next(), resource) {
        (Some(key), Some(r)) => vec![Dimension::builder().name(key).value(r).build()],
        _ => Vec::new(),
    };
    let statistic = match stat.trim() {
        "MIN" => Statistic::Minimum,
        "SUM" => Statistic::Sum,
        "AVG" => Statistic::Average,
        _ => Statistic::Maximum,
    };
    Some((namespace, metric.trim().to_owned(), statistic, period, dims))
}

/// The first alarm watching one of `failing` (for `resource`) whose datapoints breach its threshold.
async fn breached(
    c: &Cloud,
    alarms: &[MetricAlarm],
    failing: &[(String, Vec<Dimension>)],
    resource: Option<&str>,
) -> Option<MetricAlarm> {
    for alarm in alarms {
        let Some((namespace, metric, statistic, period, dims)) = watched(alarm, resource) else {
            continue;
        };
        let same = |d: &[Dimension]| {
            let mut a: Vec<_> = d.iter().map(|x| (x.name(), x.value())).collect();
            let mut b: Vec<_> = dims.iter().map(|x| (x.name(), x.value())).collect();
            a.sort();
            b.sort();
            a == b
        };
        if !failing.iter().any(|(m, d)| *m == metric && same(d)) {
            continue;
        }
        let threshold = alarm.threshold().unwrap_or(0.0);
        let op = alarm
            .comparison_operator()
            .map(|o| o.as_str().to_owned())
            .unwrap_or_default();
        let breaches = |v: f64| match op.as_str() {
            "GreaterThanOrEqualToThreshold" => v >= threshold,
            "GreaterThanThreshold" => v > threshold,
            "LessThanThreshold" => v < threshold,
            "LessThanOrEqualToThreshold" => v <= threshold,
            _ => false,
        };
        let values = datapoints(c, &namespace, &metric, &dims, period, statistic).await;
        if values.into_iter().any(breaches) {
            return Some(alarm.clone());
        }
    }
    None
}

fn topic(w: &World) -> Result<String, String> {
    w.stack
        .function("NotifyFunction")
        .env
        .get("LIFEBOAT_NOTIFY_TOPIC_ARN")
        .cloned()
        .ok_or_else(|| "notify has no topic".to_owned())
}

/// Subscribes the harness's queue to the stack's topic, once.
async fn subscribe(w: &World) -> Result<(), String> {
    let sqs = aws_sdk_sqs::Client::new(&w.config);
    let sns = aws_sdk_sns::Client::new(&w.config);
    let topic = topic(w)?;
    let url = sqs
        .create_queue()
        .queue_name(QUEUE)
        .send()
        .await
        .map_err(|e| format!("CreateQueue: {e}"))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let arn_name = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(arn_name.clone())
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes: {e}"))?;
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&arn_name))
        .cloned()
        .unwrap_or_default();
    let subscribed = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .map_err(|e| format!("ListSubscriptionsByTopic: {e}"))?;
    if subscribed
        .subscriptions()
        .iter()
        .any(|s| s.endpoint() == Some(arn.as_str()))
    {
        return Ok(());
    }
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .map_err(|e| format!("Subscribe: {e}"))?;
    Ok(())
}

/// Every message waiting in the harness's queue, taken off it; none when nothing subscribed it yet.
async fn drain(w: &World) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(&w.config);
    let mut out = Vec::new();
    let Ok(url) = sqs.get_queue_url().queue_name(QUEUE).send().await else {
        return out;
    };
    let url = url.queue_url().unwrap_or_default().to_owned();
    loop {
        let Ok(got) = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
        else {
            return out;
        };
        if got.messages().is_empty() {
            return out;
        }
        for m in got.messages() {
            out.push(m.body().unwrap_or_default().to_owned());
            if let Some(handle) = m.receipt_handle() {
                let _ = sqs.delete_message().queue_url(&url).receipt_handle(handle).send().await;
            }
        }
    }
}
