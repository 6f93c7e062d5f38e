//! The triggers of the `monitor` function: the hourly EventBridge Scheduler event (`events/monitor/scheduled.json`)
//! or any other invocation (a test, the console, `{}`) is a monitoring run; `{"action": "evidence-report",
//! "period": "2026-10"}` (the console, `events/monitor/evidence-report.json`; the monthly schedule sends
//! `"period": "previous-month"`, `events/monitor/evidence-monthly.json`) writes an evidence report.
//!
//! A monitoring run measures against the moment it runs, whatever the event says, so its payload is never
//! refused: the event only tells the log which schedule fired and for when. An `action` monitor does not know
//! is refused, so a typo never passes for an hourly run.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The `action` that asks for an evidence report.
pub const EVIDENCE_REPORT: &str = "evidence-report";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Request {
    /// The hourly run: metrics, alarms, janitor.
    #[default]
    Monitor,
    /// An evidence report for a period (`None`: the last 30 days).
    Evidence { period: Option<String> },
    /// An `action` monitor does not know.
    Unknown(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trigger {
    /// `source` of an EventBridge event (`aws.scheduler`, `aws.events`).
    pub source: Option<String>,
    /// `time` of an EventBridge event: when the schedule fired.
    pub time: Option<DateTime<Utc>>,
    pub request: Request,
}

fn request(payload: &Value) -> Request {
    match payload.get("action") {
        None | Some(Value::Null) => Request::Monitor,
        Some(Value::String(a)) if a == EVIDENCE_REPORT => Request::Evidence {
            period: payload.get("period").and_then(Value::as_str).map(str::to_owned),
        },
        Some(other) => Request::Unknown(other.to_string()),
    }
}

pub fn parse(payload: &Value) -> Trigger {
    Trigger {
        source: payload.get("source").and_then(Value::as_str).map(str::to_owned),
        time: payload.get("time").and_then(Value::as_str).and_then(|t| t.parse().ok()),
        request: request(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_scheduled_event_names_its_source_and_time_and_anything_else_is_accepted() {
        let t = parse(&json!({"source": "aws.scheduler", "time": "2026-11-22T10:00:00Z", "detail": {}}));
        assert_eq!(t.source.as_deref(), Some("aws.scheduler"));
        assert_eq!(t.time, "2026-11-22T10:00:00Z".parse().ok());
        assert_eq!(t.request, Request::Monitor);
        assert_eq!(parse(&json!({})), Trigger::default());
        assert_eq!(parse(&json!({"time": "soon"})).time, None);
        assert_eq!(parse(&Value::Null), Trigger::default());
    }

    #[test]
    fn an_evidence_report_is_asked_for_by_action_and_unknown_actions_are_kept_to_be_refused() {
        let t = parse(&json!({"action": "evidence-report", "period": "2026-10"}));
        assert_eq!(
            t.request,
            Request::Evidence {
                period: Some("2026-10".to_owned())
            }
        );
        assert_eq!(
            parse(&json!({"action": "evidence-report"})).request,
            Request::Evidence { period: None }
        );
        assert_eq!(
            parse(&json!({"action": "evidnce-report"})).request,
            Request::Unknown("\"evidnce-report\"".to_owned())
        );
    }
}
