//! The triggers the `snapshot` function accepts, parsed from the raw invocation payload.
//!
//! Three shapes, told apart by their fields so that a wrong payload gets an error naming what is wrong:
//! - an EventBridge `Scheduled Event` (a rule, or EventBridge Scheduler with the template's input): its `time`
//!   is the logical time of the run and so decides the snapshot identifiers;
//! - an RDS snapshot event saying a Lifeboat snapshot finished (starts its DR copy or share);
//! - a manual invocation from the console: `{"databases": [...], "reason": "...", "retain_days": 30}`, or
//!   `{"caches": ["sessions"], "reason": "..."}` for ElastiCache caches (both lists may be given; a name in
//!   `databases` that is a cache is snapshotted as one too, as it always was).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use lifeboat::core::error::Error;
use lifeboat::rds::naming::validate_db_identifier;
use lifeboat::rds::selection::DbKind;
use serde::Deserialize;
use serde_json::Value;

pub const SCHEDULED: &str = "Scheduled Event";
pub const DB_SNAPSHOT_EVENT: &str = "RDS DB Snapshot Event";
pub const CLUSTER_SNAPSHOT_EVENT: &str = "RDS DB Cluster Snapshot Event";
/// "Manual snapshot created" and "Manual cluster snapshot created": Lifeboat's snapshots are manual snapshots.
pub const SNAPSHOT_CREATED_EVENT_IDS: [&str; 2] = ["RDS-EVENT-0042", "RDS-EVENT-0075"];
/// A tag value allows 256 characters; the reason is stored as one.
pub const MAX_REASON_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Schedule {
        time: DateTime<Utc>,
    },
    Manual {
        databases: Vec<String>,
        /// Names that must be caches (a name here that is no cache is reported as not found).
        caches: Vec<String>,
        reason: String,
        retain_days: Option<u32>,
    },
    SnapshotFinished {
        snapshot_id: String,
        kind: DbKind,
        event_id: String,
    },
}

impl Trigger {
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Schedule { .. } => "schedule",
            Trigger::Manual { .. } => "manual",
            Trigger::SnapshotFinished { .. } => "snapshot_finished",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualRequest {
    #[serde(default)]
    databases: Vec<String>,
    #[serde(default)]
    caches: Vec<String>,
    reason: String,
    #[serde(default)]
    retain_days: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RdsEventDetail {
    #[serde(rename = "EventID")]
    event_id: String,
    source_identifier: String,
}

/// Why a payload is not a trigger this function accepts. Every message names the field that is wrong; the handler
/// reports it as [`Error::InvalidEvent`].
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("expected a JSON object")]
    NotAnObject,
    #[error("{0}")]
    EventBridge(serde_json::Error),
    #[error("a Scheduled Event needs `time` (RFC 3339): it names the snapshots")]
    MissingTime,
    #[error("`detail` of an RDS snapshot event: {0}")]
    RdsDetail(serde_json::Error),
    #[error(
        "unsupported detail-type `{0}` (expected `{SCHEDULED}`, `{DB_SNAPSHOT_EVENT}` or `{CLUSTER_SNAPSHOT_EVENT}`)"
    )]
    UnsupportedDetailType(String),
    #[error("manual invocation: {0}")]
    Manual(serde_json::Error),
    #[error("manual invocation: `databases` names no database (or give `caches`)")]
    NoDatabase,
    #[error("manual invocation: database `{db}`: {reason}")]
    Database { db: String, reason: String },
    #[error("manual invocation: cache `{cache}`: {reason}")]
    Cache { cache: String, reason: String },
    #[error("manual invocation: `reason` is empty; say why (it is kept as a tag on the snapshot)")]
    EmptyReason,
    #[error("manual invocation: `reason` is longer than {MAX_REASON_LEN} characters")]
    ReasonTooLong,
    #[error("manual invocation: `retain_days` must be between 1 and 3650")]
    RetainDays,
    #[error(
        "not a Scheduled Event, an RDS snapshot event or a manual invocation \
         (`{{\"databases\": [...], \"reason\": \"...\"}}`)"
    )]
    Unrecognised,
}

impl From<EventError> for Error {
    fn from(err: EventError) -> Self {
        Error::InvalidEvent(err.to_string())
    }
}

pub fn parse(payload: Value) -> Result<Trigger, Error> {
    Ok(parse_trigger(payload)?)
}

fn parse_trigger(payload: Value) -> Result<Trigger, EventError> {
    if !payload.is_object() {
        return Err(EventError::NotAnObject);
    }
    if payload.get("detail-type").is_some() {
        let event: EventBridgeEvent = serde_json::from_value(payload).map_err(EventError::EventBridge)?;
        return parse_eventbridge(event);
    }
    if payload.get("databases").is_some() || payload.get("caches").is_some() || payload.get("reason").is_some() {
        let req: ManualRequest = serde_json::from_value(payload).map_err(EventError::Manual)?;
        return parse_manual(req);
    }
    Err(EventError::Unrecognised)
}

fn parse_eventbridge(event: EventBridgeEvent) -> Result<Trigger, EventError> {
    match event.detail_type.as_str() {
        SCHEDULED => {
            let time = event.time.ok_or(EventError::MissingTime)?;
            Ok(Trigger::Schedule { time })
        }
        DB_SNAPSHOT_EVENT | CLUSTER_SNAPSHOT_EVENT => {
            let detail: RdsEventDetail = serde_json::from_value(event.detail).map_err(EventError::RdsDetail)?;
            let kind = if event.detail_type == DB_SNAPSHOT_EVENT {
                DbKind::Instance
            } else {
                DbKind::Cluster
            };
            Ok(Trigger::SnapshotFinished {
                snapshot_id: detail.source_identifier,
                kind,
                event_id: detail.event_id,
            })
        }
        _ => Err(EventError::UnsupportedDetailType(event.detail_type)),
    }
}

fn parse_manual(req: ManualRequest) -> Result<Trigger, EventError> {
    if req.databases.is_empty() && req.caches.is_empty() {
        return Err(EventError::NoDatabase);
    }
    for db in &req.databases {
        validate_db_identifier(db).map_err(|reason| EventError::Database { db: db.clone(), reason })?;
    }
    // ElastiCache identifiers follow the same shape (letters, digits, single hyphens, a letter first).
    for cache in &req.caches {
        validate_db_identifier(cache).map_err(|reason| EventError::Cache {
            cache: cache.clone(),
            reason,
        })?;
    }
    let reason = req.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(EventError::EmptyReason);
    }
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(EventError::ReasonTooLong);
    }
    if req.retain_days == Some(0) || req.retain_days.is_some_and(|d| d > 3650) {
        return Err(EventError::RetainDays);
    }
    Ok(Trigger::Manual {
        databases: req.databases,
        caches: req.caches,
        reason,
        retain_days: req.retain_days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scheduled_event_time_is_the_logical_time() {
        let t = parse(json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-22T02:00:00Z", "detail": {}})).unwrap();
        assert_eq!(
            t,
            Trigger::Schedule {
                time: "2026-11-22T02:00:00Z".parse().unwrap()
            }
        );
    }

    #[test]
    fn scheduled_event_without_time_is_refused() {
        let err =
            parse(json!({"detail-type": "Scheduled Event", "source": "aws.scheduler", "detail": {}})).unwrap_err();
        assert!(err.to_string().contains("`time`"), "{err}");
    }

    #[test]
    fn manual_invocation_is_validated() {
        let ok = parse(json!({"databases": ["app-prod"], "reason": " before migration 42 "})).unwrap();
        assert_eq!(
            ok,
            Trigger::Manual {
                databases: vec!["app-prod".into()],
                caches: Vec::new(),
                reason: "before migration 42".into(),
                retain_days: None
            }
        );
        let cache = parse(json!({"caches": ["sessions"], "reason": "before the Redis upgrade"})).unwrap();
        assert_eq!(
            cache,
            Trigger::Manual {
                databases: Vec::new(),
                caches: vec!["sessions".into()],
                reason: "before the Redis upgrade".into(),
                retain_days: None
            }
        );
        let cases = [
            (json!({"databases": [], "reason": "x"}), "names no database"),
            (
                json!({"caches": [], "reason": "x"}),
                "names no database (or give `caches`)",
            ),
            (json!({"caches": ["jobs_1"], "reason": "x"}), "cache `jobs_1`"),
            (json!({"caches": ["jobs"]}), "missing field `reason`"),
            (json!({"databases": ["app_prod"], "reason": "x"}), "database `app_prod`"),
            (json!({"databases": ["app"], "reason": "  "}), "`reason` is empty"),
            (json!({"databases": ["app"]}), "missing field `reason`"),
            (
                json!({"databases": ["app"], "reason": "x", "retain": 3}),
                "unknown field `retain`",
            ),
            (
                json!({"databases": ["app"], "reason": "x", "retain_days": 0}),
                "retain_days",
            ),
            (
                json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {}}),
                "unsupported detail-type `Object Created`",
            ),
            (json!({"hello": "world"}), "not a Scheduled Event"),
            (json!([1, 2]), "JSON object"),
        ];
        for (payload, expected) in cases {
            let err = parse(payload.clone()).unwrap_err().to_string();
            assert!(err.contains(expected), "{payload}: {err}");
        }
    }

    #[test]
    fn messages_are_the_ones_users_have_always_seen() {
        let err = parse(json!({"hello": "world"})).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid event: not a Scheduled Event, an RDS snapshot event or a manual invocation \
             (`{\"databases\": [...], \"reason\": \"...\"}`)"
        );
        let err = parse(json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {}}))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid event: unsupported detail-type `Object Created` (expected `Scheduled Event`, \
             `RDS DB Snapshot Event` or `RDS DB Cluster Snapshot Event`)"
        );
        let long = "x".repeat(MAX_REASON_LEN + 1);
        let err = parse(json!({"databases": ["app"], "reason": long}))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid event: manual invocation: `reason` is longer than 256 characters"
        );
    }
}
