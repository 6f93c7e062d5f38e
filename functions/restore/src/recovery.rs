//! Which recovery point a database's snapshot-or-PITR restore test proves (`lifeboat::rds::recovery`), decided
//! by the start step from the plan document and AWS alone.
//!
//! The state machine hands `start` only the database and the request time. The rule is found again here: the
//! database's plan (its tags and the document's lists, as the plan step decides membership) and that plan's
//! database restore-test rule due at the request time (the first in the document's order; two such rules due at
//! the same minute would name the same restored instance, so they share one test). No plan document, no plan or
//! no such rule: the newest snapshot, as before plans. A `snapshot` named in the request is restored as asked.
//! The window each choice is made in is read from RDS (the snapshots and their status, the restorable times),
//! never from the payload; the seed is the restore test's own name.

use chrono::{DateTime, Utc};
use lifeboat::plans::document::{RecoveryPoint, RestoreTestRule};
use lifeboat::plans::membership::{plan_of, Resource};
use lifeboat::plans::store;
use lifeboat::rds::instances as rds;
use lifeboat::rds::recovery::{self, Choice, Restorable, Wanted};
use lifeboat::rds::restore::{choose_snapshot, test_identifier};
use lifeboat::rds::selection::{Database, DbKind};
use lifeboat::rds::snapshots::Snapshot;

use crate::deps::Deps;
use crate::error::RestoreError;

/// What a rule asks for, `None` for a rule that restores no snapshot or point in time (an export, a cache).
pub fn wanted_of(rule: &RestoreTestRule) -> Option<Wanted> {
    Some(match rule.from {
        RecoveryPoint::NewestSnapshot => Wanted::NewestSnapshot,
        RecoveryPoint::RandomSnapshot => Wanted::RandomSnapshot {
            within_days: rule.within_days?,
        },
        RecoveryPoint::RandomPointInTime => Wanted::RandomPointInTime {
            within_days: rule.within_days,
        },
        RecoveryPoint::LatestRestorableTime => Wanted::LatestRestorableTime,
        RecoveryPoint::NewestExport | RecoveryPoint::NewestCacheSnapshot => return None,
    })
}

/// What the database's plan asks its restore test at `requested_at` to prove.
async fn wanted(deps: &Deps, db: &Database, requested_at: DateTime<Utc>) -> Result<Wanted, RestoreError> {
    let Some(location) = deps.settings.plan.as_ref() else {
        return Ok(Wanted::NewestSnapshot);
    };
    let loaded = store::load(&deps.s3, location).await?;
    let doc = &loaded.document;
    let Some(plan) = plan_of(doc, Resource::Database, &db.id, &db.tags)
        .ok()
        .flatten()
        .and_then(|name| doc.plans.get(name))
    else {
        return Ok(Wanted::NewestSnapshot);
    };
    Ok(plan
        .restore_tests
        .iter()
        .filter(|r| r.schedule.0.matches(requested_at))
        .find_map(wanted_of)
        .unwrap_or(Wanted::NewestSnapshot))
}

/// The window a point-in-time test chooses in: a cluster's as RDS gives it; an instance's from its latest
/// restorable time, backup retention and oldest available automated snapshot.
async fn window(deps: &Deps, db: &Database, snapshots: &[Snapshot]) -> Result<Restorable, RestoreError> {
    let facts = rds::restorable(&deps.rds, db.kind, &db.id).await?;
    let earliest = match db.kind {
        DbKind::Cluster => facts.earliest,
        DbKind::Instance => {
            let oldest = snapshots
                .iter()
                .filter(|s| s.is_automated() && s.is_available())
                .filter_map(|s| s.created)
                .min();
            recovery::instance_earliest(facts.latest, facts.retention_days, oldest)
        }
    };
    Ok(Restorable {
        earliest,
        latest: facts.latest,
    })
}

/// The recovery point the test restores, and how it was chosen.
pub async fn choose(
    deps: &Deps,
    db: &Database,
    snapshots: &[Snapshot],
    named: Option<&str>,
    requested_at: DateTime<Utc>,
) -> Result<Choice, RestoreError> {
    let refused = |reason: String| RestoreError::Snapshot {
        database: db.id.clone(),
        reason,
    };
    if let Some(id) = named.filter(|n| *n != "latest") {
        let s = choose_snapshot(snapshots, Some(id)).map_err(refused)?;
        return Ok(Choice {
            wanted: Wanted::NamedSnapshot,
            seed: None,
            window: None,
            point: recovery::Point::Snapshot {
                id: s.id.clone(),
                created: s.created.unwrap_or(requested_at),
            },
        });
    }
    let wanted = wanted(deps, db, requested_at).await?;
    let name = test_identifier(&db.id, requested_at);
    match wanted {
        Wanted::RandomPointInTime { .. } | Wanted::LatestRestorableTime => {
            let window = window(deps, db, snapshots).await?;
            recovery::choose_time(window, wanted, requested_at, &name).map_err(refused)
        }
        _ => recovery::choose_snapshot(snapshots, wanted, requested_at, &name).map_err(refused),
    }
}
