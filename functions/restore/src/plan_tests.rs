//! The first step of a restore-test run that a plan rule scheduled: which databases and caches it tests.
//!
//! The snapshot function's plan tick starts the state machine with `{"time": <due time>, "plan": ..., "rule":
//! "restore_tests.<n>"}`. This step trusts none of it beyond naming a rule: it reads the plan document in force
//! itself, checks that the rule exists and was due at `time` (`lifeboat::plans::due::restore_test_due`), and
//! takes the members from AWS (tags and the document's lists, `lifeboat::plans::membership::plan_of`). A
//! resource whose plan cannot be decided (tagged with one plan and listed in another) is not this plan's and is
//! left to monitor, which reports it.
//!
//! What each recovery point tests:
//! - `newest-snapshot`: each member database, from its newest Lifeboat snapshot (the same test as a scheduled run);
//! - `random-snapshot`, `random-point-in-time`, `latest-restorable-time`: each member database, as a snapshot
//!   test's item (`{"database", "requested_at"}`); the start step finds the rule again from the document and
//!   the request time and makes the choice itself (`crate::recovery`), so nothing about it rides in the state;
//! - `newest-cache-snapshot`: each member cache, from its newest snapshot;
//! - `newest-export`: each member database, from the newest complete export of the rule's profile, restored
//!   into an empty instance of its own (`{"database", "requested_at", "export": <profile>}`; the steps are
//!   `crate::export_tests`'). The profile is the rule's, from the document this step read.

use chrono::{DateTime, Utc};
use lifeboat::caches::elasticache;
use lifeboat::core::error::Error;
use lifeboat::plans::document::RecoveryPoint;
use lifeboat::plans::due::restore_test_due;
use lifeboat::plans::membership::{plan_of, Resource};
use lifeboat::plans::store;
use lifeboat::rds::selection;
use serde_json::{json, Value};

use crate::deps::Deps;
use crate::error::RestoreError;

pub async fn plan(deps: &Deps, time: DateTime<Utc>, plan: &str, rule: &str) -> Result<Value, RestoreError> {
    let location = deps.settings.plan.as_ref().ok_or_else(|| {
        Error::InvalidEvent(format!(
            "a run for plan `{plan}` needs a plan document, and this stack has none ({} is unset)",
            store::PLAN_DOCUMENT
        ))
    })?;
    let loaded = store::load(&deps.s3, location).await?;
    let doc = &loaded.document;
    let chosen = restore_test_due(doc, plan, rule, time).map_err(Error::InvalidEvent)?;
    let version = loaded.version.label().to_owned();
    let mut tests = Vec::new();
    match chosen.from {
        RecoveryPoint::NewestSnapshot
        | RecoveryPoint::NewestExport
        | RecoveryPoint::RandomSnapshot
        | RecoveryPoint::RandomPointInTime
        | RecoveryPoint::LatestRestorableTime => {
            for db in selection::discover(&deps.rds).await? {
                if db.cluster.is_some() {
                    continue;
                }
                if plan_of(doc, Resource::Database, &db.id, &db.tags).ok().flatten() != Some(plan) {
                    continue;
                }
                tests.push(match (&chosen.from, &chosen.export) {
                    (RecoveryPoint::NewestExport, Some(profile)) => {
                        json!({"database": db.id, "requested_at": time, "export": profile})
                    }
                    (RecoveryPoint::NewestExport, None) => {
                        // The document's validation requires the profile; a test without one is never skipped.
                        json!({"database": db.id, "requested_at": time, "plan_error": "a newest-export rule names no `export` profile"})
                    }
                    _ => json!({"database": db.id, "requested_at": time}),
                });
            }
        }
        RecoveryPoint::NewestCacheSnapshot => {
            for cache in elasticache::discover_all(&deps.ec, deps.settings.cache.serverless_caches).await? {
                if plan_of(doc, Resource::Cache, &cache.id, &cache.tags).ok().flatten() == Some(plan) {
                    tests.push(json!({"cache": cache.id, "requested_at": time}));
                }
            }
        }
    }
    tracing::info!(plan, rule, plan_version = %version, tests = tests.len(), "restore tests planned from the plan document");
    Ok(json!({"time": time, "tests": tests, "missing": [], "plan": plan, "rule": rule, "plan_version": version}))
}
