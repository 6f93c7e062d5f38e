//! The EventBridge events notify acts on.

use chrono::{DateTime, NaiveDateTime, Utc};
use lifeboat::core::error::Error;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A Lifeboat alarm changed state.
    Alarm {
        name: String,
        state: String,
        previous: String,
        reason: String,
        since: DateTime<Utc>,
    },
    /// A restore-test execution ended without success.
    RestoreTestFailed {
        execution: String,
        status: String,
        since: DateTime<Utc>,
        cause: Option<String>,
    },
}

fn invalid(m: impl Into<String>) -> Error {
    Error::InvalidEvent(m.into())
}

/// CloudWatch writes `2026-11-22T10:00:00.000+0000`.
fn alarm_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| raw.parse().ok())
        .or_else(|| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

pub fn parse(payload: Value) -> Result<Notice, Error> {
    let kind = payload.get("detail-type").and_then(Value::as_str).unwrap_or_default();
    let detail = payload
        .get("detail")
        .ok_or_else(|| invalid("expected an EventBridge event with `detail`"))?;
    let event_time = payload
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<DateTime<Utc>>().ok())
        .unwrap_or_else(Utc::now);
    let text = |v: &Value, path: &[&str]| {
        path.iter()
            .try_fold(v, |v, k| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match kind {
        "CloudWatch Alarm State Change" => {
            let name = text(detail, &["alarmName"]).ok_or_else(|| invalid("alarm event without detail.alarmName"))?;
            let state = text(detail, &["state", "value"]).ok_or_else(|| invalid("alarm event without detail.state.value"))?;
            Ok(Notice::Alarm {
                name,
                state,
                previous: text(detail, &["previousState", "value"]).unwrap_or_else(|| "INSUFFICIENT_DATA".into()),
                reason: text(detail, &["state", "reason"]).unwrap_or_default(),
                since: text(detail, &["state", "timestamp"])
                    .and_then(|t| alarm_time(&t))
                    .unwrap_or(event_time),
            })
        }
        "Step Functions Execution Status Change" => {
            let status = text(detail, &["status"]).ok_or_else(|| invalid("execution event without detail.status"))?;
            if status == "SUCCEEDED" || status == "RUNNING" {
                return Err(invalid(format!(
                    "execution status {status}: notify is for executions that failed (the rule should filter these)"
                )));
            }
            let cause = match (text(detail, &["error"]), text(detail, &["cause"])) {
                (Some(e), Some(c)) => Some(format!("{e}: {c}")),
                (e, c) => e.or(c),
            };
            Ok(Notice::RestoreTestFailed {
                execution: text(detail, &["name"]).or_else(|| text(detail, &["executionArn"])).unwrap_or_default(),
                status,
                since: detail
                    .get("stopDate")
                    .and_then(Value::as_i64)
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or(event_time),
                cause,
            })
        }
        other => Err(invalid(format!(
            "unsupported event `{other}`: expected `CloudWatch Alarm State Change` or `Step Functions Execution Status Change`"
        ))),
    }
}
