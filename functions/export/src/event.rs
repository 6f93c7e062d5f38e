//! Triggers of the `export` function.
//!
//! - Scheduled (EventBridge Scheduler input from the template): `{"profile": "critical", "time": "<scheduled time>"}`,
//!   optionally with `"databases": [...]` to override selection. The time names the objects, so a redelivered
//!   event finds its export already there and makes no second one.
//! - Manual (console): `{"database": "app-prod", "profile": "full"}` or with `"tables": ["users", "projects"]`.
//! - Scheduled copy of caches' RDB files (`caches.rs`): `{"action": "copy-caches"}`, optionally with
//!   `"caches": [...]` to override selection.
//! - A plan tick (`plan.rs`, only with `LIFEBOAT_PLAN_DOCUMENT` set): an EventBridge Scheduled Event,
//!   `{"detail-type": "Scheduled Event", "source": "aws.scheduler", "time": "<scheduled time>", "detail": {}}`.
//!   Only its time is read: what runs, on which databases and caches, comes from the plan document and AWS.

use chrono::{DateTime, Utc};
use lifeboat::core::error::Error;
use lifeboat::rds::naming::validate_db_identifier;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Schedule {
        profile: String,
        time: DateTime<Utc>,
        databases: Option<Vec<String>>,
    },
    Manual {
        database: String,
        profile: Option<String>,
        tables: Vec<String>,
    },
    /// Export, verify and move the newest snapshot of each selected cache (or of the caches named).
    CopyCaches { caches: Option<Vec<String>> },
    /// Run what the plan document says is due at `time` (the scheduled time, never the delivery time).
    PlanTick { time: DateTime<Utc> },
}

/// The `detail-type` of a plan tick.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// An EventBridge Scheduled Event (from Scheduler with the template's input, or a rule): only its type and time
/// matter; the envelope's other fields (`id`, `account`, `resources`, ...) are accepted and ignored.
#[derive(Deserialize)]
struct Tick {
    #[serde(rename = "detail-type")]
    detail_type: String,
    time: Option<DateTime<Utc>>,
}

/// The action that copies caches' RDB files.
pub const COPY_CACHES: &str = "copy-caches";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    action: String,
    #[serde(default)]
    caches: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scheduled {
    profile: String,
    time: DateTime<Utc>,
    #[serde(default)]
    databases: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manual {
    database: String,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    tables: Vec<String>,
}

fn invalid(m: impl Into<String>) -> Error {
    Error::InvalidEvent(m.into())
}

pub fn parse(payload: Value) -> Result<Trigger, Error> {
    if !payload.is_object() {
        return Err(invalid("expected a JSON object"));
    }
    if payload.get("action").is_some() {
        let a: Action = serde_json::from_value(payload).map_err(|e| invalid(format!("action: {e}")))?;
        if a.action != COPY_CACHES {
            return Err(invalid(format!(
                "unknown action `{}` (the one action is `{COPY_CACHES}`)",
                a.action
            )));
        }
        for cache in a.caches.iter().flatten() {
            validate_db_identifier(cache).map_err(|r| invalid(format!("{COPY_CACHES}: cache `{cache}`: {r}")))?;
        }
        return Ok(Trigger::CopyCaches { caches: a.caches });
    }
    if payload.get("detail-type").is_some() {
        let t: Tick = serde_json::from_value(payload).map_err(|e| invalid(format!("plan tick: {e}")))?;
        if t.detail_type != SCHEDULED_EVENT {
            return Err(invalid(format!(
                "unsupported detail-type `{}` (a plan tick is a `{SCHEDULED_EVENT}`)",
                t.detail_type
            )));
        }
        let time = t
            .time
            .ok_or_else(|| invalid("plan tick: a Scheduled Event needs `time` (RFC 3339): it names the exports"))?;
        return Ok(Trigger::PlanTick { time });
    }
    if payload.get("time").is_some() {
        let s: Scheduled = serde_json::from_value(payload).map_err(|e| invalid(format!("scheduled export: {e}")))?;
        for db in s.databases.iter().flatten() {
            validate_db_identifier(db).map_err(|r| invalid(format!("scheduled export: database `{db}`: {r}")))?;
        }
        return Ok(Trigger::Schedule {
            profile: s.profile,
            time: s.time,
            databases: s.databases,
        });
    }
    if payload.get("database").is_some() {
        let m: Manual = serde_json::from_value(payload).map_err(|e| invalid(format!("manual export: {e}")))?;
        validate_db_identifier(&m.database)
            .map_err(|r| invalid(format!("manual export: database `{}`: {r}", m.database)))?;
        if m.profile.is_some() && !m.tables.is_empty() {
            return Err(invalid("manual export: give `profile` or `tables`, not both"));
        }
        if m.tables.iter().any(|t| t.trim().is_empty()) {
            return Err(invalid("manual export: `tables` has an empty name"));
        }
        return Ok(Trigger::Manual {
            database: m.database,
            profile: m.profile,
            tables: m.tables,
        });
    }
    Err(invalid(
        "not a scheduled export (`{\"profile\": ..., \"time\": ...}`) or a manual one (`{\"database\": ...}`)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_both_shapes_and_names_what_is_wrong() {
        assert!(matches!(
            parse(json!({"profile": "full", "time": "2026-11-22T02:00:00Z"})).unwrap(),
            Trigger::Schedule { .. }
        ));
        assert!(matches!(
            parse(json!({"database": "app-prod", "tables": ["users"]})).unwrap(),
            Trigger::Manual { .. }
        ));
        assert_eq!(
            parse(json!({"action": "copy-caches"})).unwrap(),
            Trigger::CopyCaches { caches: None }
        );
        assert_eq!(
            parse(json!({"detail-type": "Scheduled Event", "source": "aws.scheduler",
                         "time": "2026-12-06T02:00:00Z", "detail": {}}))
            .unwrap(),
            Trigger::PlanTick {
                time: "2026-12-06T02:00:00Z".parse().unwrap()
            }
        );
        for (payload, expected) in [
            (json!({"profile": "full", "time": "yesterday"}), "scheduled export"),
            (json!({"time": "2026-11-22T02:00:00Z"}), "missing field `profile`"),
            (json!({"database": "app_prod"}), "database `app_prod`"),
            (
                json!({"database": "app", "profile": "full", "tables": ["users"]}),
                "not both",
            ),
            (json!({"database": "app", "table": ["users"]}), "unknown field `table`"),
            (json!({"hello": 1}), "not a scheduled export"),
            (json!({"action": "copy"}), "unknown action `copy`"),
            (json!({"action": "copy-caches", "time": "x"}), "unknown field `time`"),
            (json!({"action": "copy-caches", "caches": ["a_b"]}), "cache `a_b`"),
            (json!({"detail-type": "Scheduled Event", "detail": {}}), "needs `time`"),
            (
                json!({"detail-type": "Object Created", "time": "2026-12-06T02:00:00Z"}),
                "unsupported detail-type `Object Created`",
            ),
            (json!({"detail-type": "Scheduled Event", "time": "soon"}), "plan tick"),
        ] {
            let err = parse(payload.clone()).unwrap_err().to_string();
            assert!(err.contains(expected), "{payload}: {err}");
        }
    }
}
