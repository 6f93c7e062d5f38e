//! Triggers of the `export` function.
//!
//! - Scheduled (EventBridge Scheduler input from the template): `{"profile": "critical", "time": "<scheduled time>"}`,
//!   optionally with `"databases": [...]` to override selection. The time names the objects, so a redelivered
//!   event finds its export already there and makes no second one.
//! - Manual (console): `{"database": "app-prod", "profile": "full"}` or with `"tables": ["users", "projects"]`.
//! - Scheduled copy of caches' RDB files (`caches.rs`): `{"action": "copy-caches"}`, optionally with
//!   `"caches": [...]` to override selection.

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
        ] {
            let err = parse(payload.clone()).unwrap_err().to_string();
            assert!(err.contains(expected), "{payload}: {err}");
        }
    }
}
