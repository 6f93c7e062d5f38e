//! The console restore: a real restore into a new, named instance (or cluster) with the source's settings unless
//! the request overrides them. It waits within the invocation's time and returns the endpoint, or the command to
//! go on waiting with. It never touches an existing resource.

use std::time::Instant;

use lifeboat::error::Error;
use lifeboat::rds::instances::{self as rds, Placement, PointInTimeRequest, RestoreRequest};
use lifeboat::restore::{self as rules, choose_snapshot, ConsoleWait, PlacementChoice};
use lifeboat::selection::Database;
use serde_json::{json, Value};

use crate::error::RestoreError;
use crate::event::ManualRestore;
use crate::handler::{exists, find, Deps};

/// Runs a console restore: checks the target is new, starts the restore, waits for it while there is time.
pub async fn restore(deps: &Deps, m: ManualRestore, deadline: Option<Instant>) -> Result<Value, RestoreError> {
    let db = find(deps, &m.database).await?;
    if exists(deps, db.kind, &m.target).await? {
        return Err(RestoreError::TargetExists(m.target));
    }
    let source = rds::instance(&deps.rds, &m.database).await?;
    let placement = rules::console_placement(&choice(&m), source.as_ref(), &deps.settings.instance_class);
    let restored_from = begin(deps, &db, &m, &placement).await?;
    tracing::info!(db = %db.id, target = %m.target, from = %restored_from, "restore started");
    let watched = rules::console_instance(db.kind, &m.target);
    wait(deps, &m.target, &restored_from, &watched, deadline).await
}

/// What the request says about placement.
fn choice(m: &ManualRestore) -> PlacementChoice {
    PlacementChoice {
        subnet_group: m.subnet_group.clone(),
        security_groups: m.security_groups.clone(),
        instance_class: m.instance_class.clone(),
        parameter_group: m.parameter_group.clone(),
    }
}

/// Starts the restore from the requested snapshot or point in time; says what it restores from.
async fn begin(deps: &Deps, db: &Database, m: &ManualRestore, placement: &Placement) -> Result<String, RestoreError> {
    match (&m.snapshot, &m.point_in_time) {
        (Some(snap), _) => {
            let snapshots = lifeboat::rds::list_for_db(&deps.rds, &db.id, db.kind).await?;
            let chosen = choose_snapshot(&snapshots, Some(snap)).map_err(|reason| RestoreError::Snapshot {
                database: db.id.clone(),
                reason,
            })?;
            let member = rules::console_member_identifier(&m.target);
            let request = RestoreRequest {
                kind: db.kind,
                snapshot_id: &chosen.id,
                engine: &db.engine,
                target_id: &m.target,
                cluster_instance: Some(&member),
                placement,
                tags: &[],
            };
            rds::restore_snapshot(&deps.rds, &request).await?;
            Ok(format!("snapshot {}", chosen.id))
        }
        (None, Some(t)) => {
            let at = rules::point_in_time(t).map_err(|e| Error::InvalidEvent(format!("point_in_time: {e}")))?;
            let request = PointInTimeRequest {
                kind: db.kind,
                source_id: &db.id,
                engine: &db.engine,
                target_id: &m.target,
                at,
                placement,
            };
            rds::restore_to_time(&deps.rds, &request).await?;
            Ok(format!("point in time {t}"))
        }
        (None, None) => Err(Error::InvalidEvent("restore: `snapshot` or `point_in_time` is required".into()).into()),
    }
}

/// Waits while the invocation has time; the restore goes on in RDS either way.
async fn wait(
    deps: &Deps,
    target: &str,
    restored_from: &str,
    watched: &str,
    deadline: Option<Instant>,
) -> Result<Value, RestoreError> {
    loop {
        let info = rds::instance(&deps.rds, watched).await?;
        let status = info
            .as_ref()
            .map(|i| i.status.clone())
            .unwrap_or_else(|| "creating".into());
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match rules::console_wait(&status, left) {
            ConsoleWait::Ready => {
                let endpoint = info.and_then(|i| i.endpoint);
                return Ok(
                    json!({"target": target, "restored_from": restored_from, "status": status,
                                 "endpoint": endpoint.map(|(h, p)| format!("{h}:{p}"))}),
                );
            }
            ConsoleWait::Handover => {
                return Ok(
                    json!({"target": target, "restored_from": restored_from, "status": status,
                                 "endpoint": null,
                                 "next": format!("aws rds wait db-instance-available --db-instance-identifier {watched}")}),
                );
            }
            ConsoleWait::Again => tokio::time::sleep(rules::CONSOLE_WAIT_INTERVAL).await,
        }
    }
}
