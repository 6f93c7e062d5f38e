//! De-selection made visible (AWS Backup's stance: coverage never shrinks silently). A database or cache that
//! monitor watched (it holds an alarm set of monitor's, `lifeboat/<db>/...` or `lifeboat/cache:<id>/...`), that
//! still exists and is no longer selected (someone set `lifeboat:backup=false`, or edited `LIFEBOAT_DATABASES`)
//! is a finding of every hourly run and keeps its alarms, which fire on the missing data, until a person confirms
//! with `{"action": "confirm-deselection", "database": "<id>", "by": "<who>"}` (or `"cache"`).
//!
//! "Was watched" is read from the alarms monitor made, never from a tag: a tag is exactly what the person or role
//! that de-selected could also change. The confirmation is recorded first, once, under
//! `records/deselections/<databases|caches>/<id>/<time>.json` (If-None-Match: a record is never replaced), and only
//! then are the subject's alarms deleted; a failed write deletes nothing. A subject still selected, gone from
//! RDS or ElastiCache, or without alarms of monitor's is refused: there is nothing to confirm.
//!
//! A database or cache deleted outright is another case: the hourly run removes its alarms at once and says so
//! once (`gone` in the result, a finding in the log). Deleting one takes a delete right Lifeboat's roles hold only
//! for tag-guarded restore tests, is in CloudTrail, is held back by deletion protection, and leaves its snapshots
//! and exports under their retention; alarms that could never clear again would only teach people to ignore them.
//!
//! Never: reads who confirms from anywhere but the event (the invoker's own identity is CloudTrail's record of the
//! invocation), writes outside its prefix, or deletes an alarm that is not the confirmed subject's.

use chrono::{DateTime, Utc};
use lifeboat::caches::elasticache;
use lifeboat::core::error::Error;
use lifeboat::monitoring::caches::CACHE_ALARM_MARK;
use lifeboat::monitoring::monitor::deselection_record_key;
use lifeboat::rds::selection;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::alarms::{delete_alarms, existing_alarms};
use crate::deps::Deps;
use crate::event::{Confirmation, Subject};

/// What a confirmation did: the record it wrote and the alarms it then deleted.
#[derive(Debug, Clone, Serialize)]
pub struct Confirmed {
    /// `database` or `cache`.
    pub kind: &'static str,
    pub id: String,
    pub by: String,
    pub record: String,
    pub alarms_deleted: Vec<String>,
}

/// The record kept in the bucket, one per confirmation.
#[derive(Debug, Clone, Serialize)]
struct Record<'a> {
    kind: &'static str,
    id: &'a str,
    by: &'a str,
    confirmed_at: DateTime<Utc>,
    /// The subject's tags when the confirmation was made (what de-selected it, as far as tags tell).
    tags: &'a BTreeMap<String, String>,
    alarms: &'a [String],
}

/// Whether the subject exists and is selected, and its tags.
enum State {
    Gone,
    Selected,
    Deselected(BTreeMap<String, String>),
}

async fn state(deps: &Deps, subject: &Subject) -> Result<State, Error> {
    let selector = &deps.settings.common.selector;
    match subject {
        Subject::Database(id) => {
            let all = selection::discover(&deps.rds).await?;
            let Some(db) = all.iter().find(|d| &d.id == id) else {
                return Ok(State::Gone);
            };
            if selection::select(&all, selector).databases.iter().any(|d| &d.id == id) {
                return Ok(State::Selected);
            }
            Ok(State::Deselected(db.tags.clone()))
        }
        Subject::Cache(id) => {
            let all = elasticache::discover_all(&deps.ec, deps.settings.serverless_caches).await?;
            let Some(cache) = all.iter().find(|c| &c.id == id) else {
                return Ok(State::Gone);
            };
            if elasticache::select(&all, selector).iter().any(|c| &c.id == id) {
                return Ok(State::Selected);
            }
            Ok(State::Deselected(cache.tags.clone()))
        }
    }
}

/// Writes the record once: If-None-Match, so an existing record is never replaced.
async fn write_record(deps: &Deps, key: &str, record: &Record<'_>) -> Result<(), Error> {
    let body = serde_json::to_vec_pretty(record)
        .map_err(|e| Error::PartialFailure(format!("the confirmation record could not be written as JSON: {e}")))?;
    deps.s3
        .put_object()
        .bucket(&deps.settings.bucket)
        .key(key)
        .if_none_match("*")
        .content_type("application/json")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(body.into())
        .send()
        .await
        .map_err(|e| Error::aws("PutObject", e))?;
    Ok(())
}

/// Records a person's confirmation, then deletes the subject's alarms. Refuses a subject that is still selected,
/// gone, or has no alarms of monitor's.
pub async fn confirm(deps: &Deps, c: &Confirmation) -> Result<Confirmed, Error> {
    let (kind, id, alarm_subject, what) = match &c.subject {
        Subject::Database(id) => ("database", id, id.clone(), id.clone()),
        Subject::Cache(id) => ("cache", id, format!("{CACHE_ALARM_MARK}{id}"), format!("cache {id}")),
    };
    let tags = match state(deps, &c.subject).await? {
        State::Gone => {
            return Err(Error::InvalidEvent(format!(
                "{what} does not exist: the next monitoring run removes its alarms, nothing to confirm"
            )))
        }
        State::Selected => {
            return Err(Error::InvalidEvent(format!(
                "{what} is still selected for backup: nothing to confirm"
            )))
        }
        State::Deselected(tags) => tags,
    };
    let alarms: Vec<String> = existing_alarms(deps)
        .await?
        .into_iter()
        .filter(|n| {
            deps.settings
                .alarm_scope
                .parse(n)
                .is_some_and(|(s, _)| s == alarm_subject)
        })
        .collect();
    if alarms.is_empty() {
        return Err(Error::InvalidEvent(format!(
            "{what} has no alarms of monitor's: it was not watched, or its de-selection is already confirmed"
        )));
    }
    let now = Utc::now();
    let key = deselection_record_key(kind == "cache", id, now);
    let record = Record {
        kind,
        id,
        by: &c.by,
        confirmed_at: now,
        tags: &tags,
        alarms: &alarms,
    };
    write_record(deps, &key, &record).await?;
    delete_alarms(deps, &alarms).await?;
    tracing::warn!(kind, id = %id, by = %c.by, record = %key, alarms = alarms.len(), "de-selection confirmed; its alarms are deleted");
    Ok(Confirmed {
        kind,
        id: id.clone(),
        by: c.by.clone(),
        record: key,
        alarms_deleted: alarms,
    })
}
