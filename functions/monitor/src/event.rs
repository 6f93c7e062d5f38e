//! The trigger of the `monitor` function: the hourly EventBridge Scheduler event (`events/monitor/scheduled.json`)
//! or any other invocation (a test, the console, `{}`).
//!
//! monitor measures against the moment it runs, whatever the event says, so no payload is refused: the event only
//! tells the log which schedule fired and for when.

use chrono::{DateTime, Utc};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trigger {
    /// `source` of an EventBridge event (`aws.scheduler`, `aws.events`).
    pub source: Option<String>,
    /// `time` of an EventBridge event: when the schedule fired.
    pub time: Option<DateTime<Utc>>,
}

pub fn parse(payload: &Value) -> Trigger {
    Trigger {
        source: payload.get("source").and_then(Value::as_str).map(str::to_owned),
        time: payload.get("time").and_then(Value::as_str).and_then(|t| t.parse().ok()),
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
        assert_eq!(parse(&json!({})), Trigger::default());
        assert_eq!(parse(&json!({"time": "soon"})).time, None);
        assert_eq!(parse(&Value::Null), Trigger::default());
    }
}
