//! The triggers of the `monitor` function: the hourly EventBridge Scheduler event (`events/monitor/scheduled.json`)
//! or any other invocation (a test, the console, `{}`) is a monitoring run; `{"action": "evidence-report",
//! "period": "2026-10"}` (the console, `events/monitor/evidence-report.json`; the monthly schedule sends
//! `"period": "previous-month"`, `events/monitor/evidence-monthly.json`) writes an evidence report.
//!
//! `{"action": "confirm-deselection", "database": "<id>", "by": "<who>"}` (or `"cache": "<id>"`;
//! `events/monitor/confirm-deselection.json`) is a person confirming that a database or cache monitor watched is
//! meant to be no longer backed up (`crate::deselection`). Its fields are checked here: a malformed confirmation is
//! refused, never read as a monitoring run.
//!
//! `{"action": "plan-show", "resource": "<id>"}` (`events/monitor/plan-show.json`) is the console's view of where a
//! database or cache stands under the plan document in force, the same as `lifeboat plan show <id>`
//! (`lifeboat::plans::standing`): it reads, never writes, and the resource is only looked up among the account's own.
//!
//! `{"action": "acknowledge", "resource": "<id>", "series": "<profile>|rdb", "why": "...", "by": "<who>"}`
//! (`events/monitor/console-acknowledge.json`) is a person accepting a content anomaly (`crate::anomalies`):
//! `series` may be left out when only one is open; `why` is required; `by` is recorded as stated.
//!
//! A monitoring run measures against the moment it runs, whatever the event says, so its payload is never
//! refused: the event only tells the log which schedule fired and for when. An `action` monitor does not know
//! is refused, so a typo never passes for an hourly run.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The `action` that asks for an evidence report.
pub const EVIDENCE_REPORT: &str = "evidence-report";
/// The `action` of a person confirming a de-selection.
pub const CONFIRM_DESELECTION: &str = "confirm-deselection";
/// The `action` that asks where a resource stands under its plan.
pub const PLAN_SHOW: &str = "plan-show";

/// The `action` of a person acknowledging a content anomaly.
pub const ACKNOWLEDGE: &str = "acknowledge";

/// A person's acknowledgement of a content anomaly (`events/monitor/console-acknowledge.json`): the resource,
/// the series when it has more than one open, why (required), and who as they state it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledge {
    pub resource: String,
    pub series: Option<String>,
    pub why: String,
    pub by: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcknowledge {
    #[allow(dead_code)]
    action: String,
    resource: Option<String>,
    series: Option<String>,
    why: Option<String>,
    by: Option<String>,
}

fn acknowledgement(payload: &Value) -> Result<Acknowledge, String> {
    let raw: RawAcknowledge = serde_json::from_value(payload.clone()).map_err(|e| format!("{ACKNOWLEDGE}: {e}"))?;
    let resource = raw.resource.unwrap_or_default();
    if !identifier(&resource) {
        return Err(format!(
            "{ACKNOWLEDGE}: `resource` must name an RDS or ElastiCache identifier"
        ));
    }
    let series = match raw.series {
        Some(s) if identifier(&s) => Some(s),
        Some(s) => return Err(format!("{ACKNOWLEDGE}: `{s}` is not an export profile or `rdb`")),
        None => None,
    };
    let why = raw.why.unwrap_or_default();
    let why = why.trim();
    let chars = why.chars().count();
    if chars == 0 || chars > lifeboat::watch::hold::MAX_WHY_CHARS {
        return Err(format!(
            "{ACKNOWLEDGE}: `why` must say why the change is accepted (1 to {} characters)",
            lifeboat::watch::hold::MAX_WHY_CHARS
        ));
    }
    let by = raw.by.unwrap_or_default();
    let by = by.trim();
    if by.is_empty() || by.chars().count() > 128 || by.chars().any(char::is_control) {
        return Err(format!(
            "{ACKNOWLEDGE}: `by` must name who acknowledges (1 to 128 printable characters)"
        ));
    }
    Ok(Acknowledge {
        resource,
        series,
        why: why.to_owned(),
        by: by.to_owned(),
    })
}

/// What a confirmation names: a database (RDS instance or Aurora cluster) or a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Database(String),
    Cache(String),
}

/// A person's confirmation that a de-selected database or cache is meant to stop being backed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub subject: Subject,
    /// Who confirms, as they say (the invocation's principal is in CloudTrail); kept in the record.
    pub by: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfirmation {
    #[allow(dead_code)]
    action: String,
    database: Option<String>,
    cache: Option<String>,
    by: Option<String>,
}

/// RDS and ElastiCache identifiers: letters, digits and hyphens, at most 255 characters here (the services'
/// own limits are lower); anything else could not have alarms of Lifeboat's and is refused.
fn identifier(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn confirmation(payload: &Value) -> Result<Confirmation, String> {
    let raw: RawConfirmation =
        serde_json::from_value(payload.clone()).map_err(|e| format!("{CONFIRM_DESELECTION}: {e}"))?;
    let subject = match (raw.database, raw.cache) {
        (Some(db), None) if identifier(&db) => Subject::Database(db),
        (None, Some(cache)) if identifier(&cache) => Subject::Cache(cache),
        (Some(id), None) | (None, Some(id)) => {
            return Err(format!(
                "{CONFIRM_DESELECTION}: `{id}` is not an RDS or ElastiCache identifier"
            ))
        }
        _ => {
            return Err(format!(
                "{CONFIRM_DESELECTION}: name exactly one of `database` and `cache`"
            ))
        }
    };
    let by = raw.by.unwrap_or_default();
    let by = by.trim();
    if by.is_empty() || by.chars().count() > 128 || by.chars().any(char::is_control) {
        return Err(format!(
            "{CONFIRM_DESELECTION}: `by` must name who confirms (1 to 128 printable characters)"
        ));
    }
    Ok(Confirmation {
        subject,
        by: by.to_owned(),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Request {
    /// The hourly run: metrics, alarms, janitor.
    #[default]
    Monitor,
    /// An evidence report for a period (`None`: the last 30 days).
    Evidence { period: Option<String> },
    /// A person confirms a de-selection.
    ConfirmDeselection(Confirmation),
    /// Where a database or cache stands under its plan.
    PlanShow { resource: String },
    /// A person acknowledges a content anomaly.
    Acknowledge(Acknowledge),
    /// A known `action` whose fields are wrong: the message says which.
    Invalid(String),
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
        Some(Value::String(a)) if a == CONFIRM_DESELECTION => match confirmation(payload) {
            Ok(c) => Request::ConfirmDeselection(c),
            Err(e) => Request::Invalid(e),
        },
        Some(Value::String(a)) if a == ACKNOWLEDGE => match acknowledgement(payload) {
            Ok(a) => Request::Acknowledge(a),
            Err(e) => Request::Invalid(e),
        },
        Some(Value::String(a)) if a == PLAN_SHOW => match payload.get("resource").and_then(Value::as_str) {
            Some(id) if identifier(id) => Request::PlanShow {
                resource: id.to_owned(),
            },
            Some(id) => Request::Invalid(format!("{PLAN_SHOW}: `{id}` is not an RDS or ElastiCache identifier")),
            None => Request::Invalid(format!(
                "{PLAN_SHOW}: name the database or cache: {{\"action\": \"{PLAN_SHOW}\", \"resource\": \"<id>\"}}"
            )),
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

    #[test]
    fn a_confirmation_names_one_subject_and_who_and_anything_else_is_refused() {
        let t = parse(&json!({"action": "confirm-deselection", "database": "app-prod", "by": "jane@example.com"}));
        assert_eq!(
            t.request,
            Request::ConfirmDeselection(Confirmation {
                subject: Subject::Database("app-prod".to_owned()),
                by: "jane@example.com".to_owned()
            })
        );
        let t = parse(&json!({"action": "confirm-deselection", "cache": "sessions", "by": "ops"}));
        assert!(
            matches!(t.request, Request::ConfirmDeselection(Confirmation { subject: Subject::Cache(ref c), .. }) if c == "sessions")
        );
        for bad in [
            json!({"action": "confirm-deselection", "database": "a", "cache": "b", "by": "x"}),
            json!({"action": "confirm-deselection", "by": "x"}),
            json!({"action": "confirm-deselection", "database": "app"}),
            json!({"action": "confirm-deselection", "database": "app", "by": "  "}),
            json!({"action": "confirm-deselection", "database": "../app", "by": "x"}),
            json!({"action": "confirm-deselection", "database": "app", "by": "x", "force": true}),
        ] {
            assert!(matches!(parse(&bad).request, Request::Invalid(_)), "{bad}");
        }
    }

    #[test]
    fn an_acknowledgement_names_a_resource_why_and_who_and_anything_else_is_refused() {
        let t = parse(&json!({"action": "acknowledge", "resource": "product-db", "why": "planned purge", "by": "ana"}));
        assert_eq!(
            t.request,
            Request::Acknowledge(Acknowledge {
                resource: "product-db".into(),
                series: None,
                why: "planned purge".into(),
                by: "ana".into()
            })
        );
        let t =
            parse(&json!({"action": "acknowledge", "resource": "sessions", "series": "rdb", "why": "x", "by": "ana"}));
        assert!(matches!(t.request, Request::Acknowledge(Acknowledge { series: Some(ref s), .. }) if s == "rdb"));
        for bad in [
            json!({"action": "acknowledge", "resource": "db", "by": "ana"}),
            json!({"action": "acknowledge", "resource": "db", "why": "  ", "by": "ana"}),
            json!({"action": "acknowledge", "resource": "db", "why": "x".repeat(1001), "by": "ana"}),
            json!({"action": "acknowledge", "resource": "db", "why": "x"}),
            json!({"action": "acknowledge", "why": "x", "by": "ana"}),
            json!({"action": "acknowledge", "resource": "../db", "why": "x", "by": "ana"}),
            json!({"action": "acknowledge", "resource": "db", "series": "a/b", "why": "x", "by": "ana"}),
            json!({"action": "acknowledge", "resource": "db", "why": "x", "by": "ana", "held": []}),
        ] {
            assert!(matches!(parse(&bad).request, Request::Invalid(_)), "{bad}");
        }
    }
}
