//! The console restore: a real restore into a new, named instance (or cluster) with the source's settings unless
//! the request overrides them. It waits within the invocation's time and returns the endpoint, or the command to
//! go on waiting with. It never touches an existing resource. The new database lands where the source lives (an
//! Aurora source lends its cluster's subnet group and security groups) and is never publicly accessible unless
//! the request says `"publicly_accessible": true`, which the log warns about: RDS's own default would make it
//! public in a subnet group with an internet gateway, and a restored copy of production must not be.

use std::time::Instant;

use lifeboat::core::error::Error;
use lifeboat::rds::described::Placement;
use lifeboat::rds::instances::{self as rds, PointInTimeRequest, RestoreRequest};
use lifeboat::rds::restore::{self as rules, choose_snapshot, ConsoleWait, PlacementChoice, SourcePlacement};
use lifeboat::rds::selection::{Database, DbKind};
use serde_json::{json, Value};

use crate::deps::{exists, find, Deps};
use crate::error::RestoreError;
use crate::event::ManualRestore;

/// Runs a console restore: checks the target is new, starts the restore, waits for it while there is time.
pub async fn restore(deps: &Deps, m: ManualRestore, deadline: Option<Instant>) -> Result<Value, RestoreError> {
    let db = find(deps, &m.database).await?;
    if exists(deps, db.kind, &m.target).await? {
        return Err(RestoreError::TargetExists(m.target));
    }
    let placement = placement(deps, &db, &m).await?;
    if placement.publicly_accessible {
        tracing::warn!(target = %m.target, "publicly_accessible is true in the request: the restored database gets a public address");
    }
    let restored_from = begin(deps, &db, &m, &placement).await?;
    tracing::info!(db = %db.id, target = %m.target, from = %restored_from,
                   publicly_accessible = placement.publicly_accessible, "restore started");
    let watched = rules::console_instance(db.kind, &m.target);
    wait(deps, &m.target, &restored_from, &watched, deadline).await
}

/// Where the restore goes: what the request says, else where the source lives.
async fn placement(deps: &Deps, db: &Database, m: &ManualRestore) -> Result<Placement, Error> {
    let source: Option<SourcePlacement> = match db.kind {
        DbKind::Instance => rds::instance(&deps.rds, &db.id).await?.as_ref().map(Into::into),
        DbKind::Cluster => rds::cluster(&deps.rds, &db.id).await?.as_ref().map(Into::into),
    };
    Ok(rules::console_placement(
        &choice(m),
        source.as_ref(),
        &deps.settings.instance_class,
    ))
}

/// What the request says about placement.
fn choice(m: &ManualRestore) -> PlacementChoice {
    PlacementChoice {
        subnet_group: m.subnet_group.clone(),
        security_groups: m.security_groups.clone(),
        instance_class: m.instance_class.clone(),
        parameter_group: m.parameter_group.clone(),
        publicly_accessible: m.publicly_accessible,
    }
}

/// Starts the restore from the requested snapshot or point in time; says what it restores from.
async fn begin(deps: &Deps, db: &Database, m: &ManualRestore, placement: &Placement) -> Result<String, RestoreError> {
    match (&m.snapshot, &m.point_in_time) {
        (Some(snap), _) => {
            let snapshots = lifeboat::rds::snapshots::list_for_db(&deps.rds, &db.id, db.kind).await?;
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
                tags: &[],
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::operation::describe_db_clusters::DescribeDbClustersOutput;
    use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
    use aws_sdk_rds::types::{DbCluster, VpcSecurityGroupMembership};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn deps(rds: aws_sdk_rds::Client) -> Deps {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let env = |n: &str| match n {
            "LIFEBOAT_BUCKET" => Some("lifeboat-backups".to_owned()),
            "LIFEBOAT_DB_SSLMODE" => Some("disable".to_owned()),
            "LIFEBOAT_RESTORE_ENTRY" => Some("console".to_owned()),
            _ => None,
        };
        let settings = crate::settings::RestoreSettings::from_env(&env).unwrap();
        Deps {
            rds: rds.into(),
            ..Deps::new(&config, settings)
        }
    }

    fn request(event: serde_json::Value) -> ManualRestore {
        match crate::event::parse(event).unwrap() {
            crate::event::Request::Restore(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_aurora_source_lends_its_subnet_group_and_security_groups() {
        let no_instance = mock!(aws_sdk_rds::Client::describe_db_instances)
            .then_output(|| DescribeDbInstancesOutput::builder().build());
        let analytics = mock!(aws_sdk_rds::Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some("analytics"))
            .then_output(|| {
                let sg = VpcSecurityGroupMembership::builder()
                    .vpc_security_group_id("sg-analytics")
                    .status("active")
                    .build();
                let cluster = DbCluster::builder()
                    .db_cluster_identifier("analytics")
                    .status("available")
                    .db_subnet_group("analytics-subnets")
                    .vpc_security_groups(sg)
                    .build();
                DescribeDbClustersOutput::builder().db_clusters(cluster).build()
            });
        let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&no_instance, &analytics]);
        let deps = deps(rds);
        let db = Database {
            id: "analytics".into(),
            kind: DbKind::Cluster,
            arn: "arn:aws:rds:us-east-1:123456789012:cluster:analytics".into(),
            engine: "aurora-postgresql".into(),
            status: "available".into(),
            tags: Default::default(),
            cluster: None,
            endpoint: None,
            aliases: Vec::new(),
            master_secret_arn: None,
        };
        let m = request(
            serde_json::json!({"action": "restore", "database": "analytics", "snapshot": "latest",
                                           "target": "analytics-restored"}),
        );
        let p = placement(&deps, &db, &m).await.unwrap();
        assert_eq!(p.subnet_group.as_deref(), Some("analytics-subnets"));
        assert_eq!(p.security_groups, ["sg-analytics"]);
        assert!(!p.isolated);
    }
}
