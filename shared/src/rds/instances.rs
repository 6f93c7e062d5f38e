//! RDS calls on instances and clusters: restore tests, console restores, the janitor and monitoring's reads.
//!
//! Every resource this module creates carries the restore-test tags, and [`delete_test`] (the one delete of a
//! restore-test resource, called by `restore`'s cleanup and by `monitor`'s janitor) refuses anything that does not
//! carry [`crate::core::tags::RESTORE_TEST`]`=true`. It translates requests into RDS calls and answers into plain data;
//! it must never decide names, placement or outcomes (`crate::rds::restore` does).

use crate::core::error::Error;
use crate::rds::restore::{console_member_identifier, is_restore_test, EXPIRES_AT, RESTORE_TEST, SOURCE_DB};
use crate::rds::selection::DbKind;
use aws_sdk_rds::types::Tag;
use aws_sdk_rds::Client;
use chrono::{DateTime, Utc};

use crate::rds::described::{BackupDetails, ClusterInfo, InstanceInfo, Placement};
use crate::rds::snapshots::{tag_map, to_chrono};

/// Tags of a restore-test resource.
pub fn test_tags(source: &str, expires: DateTime<Utc>) -> Vec<Tag> {
    [
        (RESTORE_TEST, "true".to_owned()),
        (SOURCE_DB, source.to_owned()),
        (EXPIRES_AT, expires.to_rfc3339()),
        (crate::core::tags::MANAGED, "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| Tag::builder().key(k).value(v).build())
    .collect()
}

/// One restore from a snapshot: what is restored, into what, where, and with which tags.
#[derive(Debug, Clone, Copy)]
pub struct RestoreRequest<'a> {
    pub kind: DbKind,
    pub snapshot_id: &'a str,
    pub engine: &'a str,
    /// The new instance, or the new cluster.
    pub target_id: &'a str,
    /// For a cluster: the instance created in it (the target's identifier when `None`).
    pub cluster_instance: Option<&'a str>,
    pub placement: &'a Placement,
    pub tags: &'a [Tag],
}

/// A new, empty RDS for PostgreSQL instance for a restore test from an export: where it goes, its engine
/// version, storage and master user, and the restore-test tags it is created with.
#[derive(Clone, Copy)]
pub struct EmptyInstance<'a> {
    pub id: &'a str,
    /// The major version (`16`), or `None` for RDS's default.
    pub engine_version: Option<&'a str>,
    pub storage_gib: i32,
    pub master_user: &'a str,
    pub master_password: &'a str,
    pub placement: &'a Placement,
    pub tags: &'a [Tag],
}

/// Never prints the password.
impl std::fmt::Debug for EmptyInstance<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmptyInstance")
            .field("id", &self.id)
            .field("engine_version", &self.engine_version)
            .field("storage_gib", &self.storage_gib)
            .field("master_user", &self.master_user)
            .finish_non_exhaustive()
    }
}

/// Creates the empty instance: encrypted storage, no public address, no Multi-AZ, no deletion protection and
/// no automated backups (a scratch instance that cleanup deletes), tagged in the create call.
pub async fn create_empty(rds: &Client, req: &EmptyInstance<'_>) -> Result<(), Error> {
    let placement = req.placement;
    rds.create_db_instance()
        .db_instance_identifier(req.id)
        .engine("postgres")
        .set_engine_version(req.engine_version.map(str::to_owned))
        .db_instance_class(&placement.instance_class)
        .allocated_storage(req.storage_gib)
        .storage_type("gp3")
        .storage_encrypted(true)
        .master_username(req.master_user)
        .master_user_password(req.master_password)
        .set_db_subnet_group_name(placement.subnet_group.clone())
        .set_vpc_security_group_ids(security_groups(placement))
        .set_db_parameter_group_name(placement.parameter_group.clone())
        .publicly_accessible(placement.publicly_accessible)
        .multi_az(false)
        .deletion_protection(false)
        .backup_retention_period(0)
        .set_tags(Some(req.tags.to_vec()))
        .send()
        .await
        .map_err(|e| Error::aws("CreateDBInstance", e))?;
    Ok(())
}

/// Restores a snapshot into a new instance, or a new cluster plus one instance in it.
pub async fn restore_snapshot(rds: &Client, req: &RestoreRequest<'_>) -> Result<(), Error> {
    let placement = req.placement;
    match req.kind {
        DbKind::Instance => {
            let mut call = rds
                .restore_db_instance_from_db_snapshot()
                .db_instance_identifier(req.target_id)
                .db_snapshot_identifier(req.snapshot_id)
                .db_instance_class(&placement.instance_class)
                .set_db_subnet_group_name(placement.subnet_group.clone())
                .set_vpc_security_group_ids(security_groups(placement))
                .set_db_parameter_group_name(placement.parameter_group.clone())
                .publicly_accessible(placement.publicly_accessible)
                .set_tags(Some(req.tags.to_vec()));
            if placement.isolated {
                call = call.deletion_protection(false).multi_az(false);
            }
            call.send()
                .await
                .map_err(|e| Error::aws("RestoreDBInstanceFromDBSnapshot", e))?;
        }
        DbKind::Cluster => {
            let mut call = rds
                .restore_db_cluster_from_snapshot()
                .db_cluster_identifier(req.target_id)
                .snapshot_identifier(req.snapshot_id)
                .engine(req.engine)
                .set_db_subnet_group_name(placement.subnet_group.clone())
                .set_vpc_security_group_ids(security_groups(placement))
                .set_tags(Some(req.tags.to_vec()));
            if placement.isolated {
                call = call.deletion_protection(false);
            }
            call.send()
                .await
                .map_err(|e| Error::aws("RestoreDBClusterFromSnapshot", e))?;
            let member = ClusterMember {
                cluster: req.target_id,
                instance: req.cluster_instance.unwrap_or(req.target_id),
                engine: req.engine,
                placement,
                tags: req.tags,
            };
            add_cluster_instance(rds, &member).await?;
        }
    }
    Ok(())
}

/// One point-in-time restore of a database into a new instance or cluster (a cluster gets the instance
/// [`console_member_identifier`] names).
#[derive(Debug, Clone, Copy)]
pub struct PointInTimeRequest<'a> {
    pub kind: DbKind,
    pub source_id: &'a str,
    pub engine: &'a str,
    pub target_id: &'a str,
    /// `None` means the latest restorable time.
    pub at: Option<DateTime<Utc>>,
    pub placement: &'a Placement,
    /// Set in the restore call (a recover's scratch is tagged as a restore test); a cluster's instance gets them too.
    pub tags: &'a [Tag],
}

/// Point-in-time restore into a new instance or cluster.
pub async fn restore_to_time(rds: &Client, req: &PointInTimeRequest<'_>) -> Result<(), Error> {
    let placement = req.placement;
    let time = req
        .at
        .map(|t| aws_sdk_rds::primitives::DateTime::from_secs(t.timestamp()));
    match req.kind {
        DbKind::Instance => {
            rds.restore_db_instance_to_point_in_time()
                .source_db_instance_identifier(req.source_id)
                .target_db_instance_identifier(req.target_id)
                .set_restore_time(time)
                .use_latest_restorable_time(req.at.is_none())
                .db_instance_class(&placement.instance_class)
                .set_db_subnet_group_name(placement.subnet_group.clone())
                .set_vpc_security_group_ids(security_groups(placement))
                .set_db_parameter_group_name(placement.parameter_group.clone())
                .publicly_accessible(placement.publicly_accessible)
                .set_tags(Some(req.tags.to_vec()).filter(|t| !t.is_empty()))
                .set_deletion_protection(placement.isolated.then_some(false))
                .set_multi_az(placement.isolated.then_some(false))
                .send()
                .await
                .map_err(|e| Error::aws("RestoreDBInstanceToPointInTime", e))?;
        }
        DbKind::Cluster => {
            rds.restore_db_cluster_to_point_in_time()
                .source_db_cluster_identifier(req.source_id)
                .db_cluster_identifier(req.target_id)
                .set_restore_to_time(time)
                .use_latest_restorable_time(req.at.is_none())
                .set_db_subnet_group_name(placement.subnet_group.clone())
                .set_vpc_security_group_ids(security_groups(placement))
                .set_tags(Some(req.tags.to_vec()).filter(|t| !t.is_empty()))
                .set_deletion_protection(placement.isolated.then_some(false))
                .send()
                .await
                .map_err(|e| Error::aws("RestoreDBClusterToPointInTime", e))?;
            let member = ClusterMember {
                cluster: req.target_id,
                instance: &console_member_identifier(req.target_id),
                engine: req.engine,
                placement,
                tags: req.tags,
            };
            add_cluster_instance(rds, &member).await?;
        }
    }
    Ok(())
}

/// A restore test's point-in-time restore: the source database restored to `at` into the test's own tagged
/// instance, or cluster plus writer instance (a cluster's SQL runs on an instance, as after a snapshot restore).
#[derive(Debug, Clone, Copy)]
pub struct PointInTimeTest<'a> {
    pub kind: DbKind,
    pub source_id: &'a str,
    pub engine: &'a str,
    pub target_id: &'a str,
    /// For a cluster: the instance created in it.
    pub cluster_instance: Option<&'a str>,
    /// An explicit time (never "latest": the report names the moment restored, so the caller chose it).
    pub at: DateTime<Utc>,
    pub placement: &'a Placement,
    pub tags: &'a [Tag],
}

/// Restores a restore test to a point in time, tagged in the create call (so the restore-test role's tag
/// grant, which only names restore-test identifiers, also bounds what it may create).
pub async fn restore_test_to_time(rds: &Client, req: &PointInTimeTest<'_>) -> Result<(), Error> {
    let placement = req.placement;
    let time = aws_sdk_rds::primitives::DateTime::from_secs(req.at.timestamp());
    match req.kind {
        DbKind::Instance => {
            rds.restore_db_instance_to_point_in_time()
                .source_db_instance_identifier(req.source_id)
                .target_db_instance_identifier(req.target_id)
                .restore_time(time)
                .db_instance_class(&placement.instance_class)
                .set_db_subnet_group_name(placement.subnet_group.clone())
                .set_vpc_security_group_ids(security_groups(placement))
                .set_db_parameter_group_name(placement.parameter_group.clone())
                .publicly_accessible(placement.publicly_accessible)
                .deletion_protection(false)
                .multi_az(false)
                .set_tags(Some(req.tags.to_vec()))
                .send()
                .await
                .map_err(|e| Error::aws("RestoreDBInstanceToPointInTime", e))?;
        }
        DbKind::Cluster => {
            rds.restore_db_cluster_to_point_in_time()
                .source_db_cluster_identifier(req.source_id)
                .db_cluster_identifier(req.target_id)
                .restore_to_time(time)
                .set_db_subnet_group_name(placement.subnet_group.clone())
                .set_vpc_security_group_ids(security_groups(placement))
                .deletion_protection(false)
                .set_tags(Some(req.tags.to_vec()))
                .send()
                .await
                .map_err(|e| Error::aws("RestoreDBClusterToPointInTime", e))?;
            let member = ClusterMember {
                cluster: req.target_id,
                instance: req.cluster_instance.unwrap_or(req.target_id),
                engine: req.engine,
                placement,
                tags: req.tags,
            };
            add_cluster_instance(rds, &member).await?;
        }
    }
    Ok(())
}

/// What RDS says of a database's point-in-time window: the latest restorable time, the backup retention, when
/// the database was created, and (a cluster only: `DescribeDBInstances` does not give an instance's) the earliest
/// restorable time (an instance's is `crate::rds::recovery::instance_earliest`'s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestorableFacts {
    pub latest: Option<DateTime<Utc>>,
    pub earliest: Option<DateTime<Utc>>,
    pub retention_days: Option<i32>,
    pub created: Option<DateTime<Utc>>,
}

pub async fn restorable(rds: &Client, kind: DbKind, id: &str) -> Result<RestorableFacts, Error> {
    match kind {
        DbKind::Instance => {
            let out = rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
                .map_err(|e| Error::aws("DescribeDBInstances", e))?;
            let i = out.db_instances().first();
            Ok(RestorableFacts {
                latest: to_chrono(i.and_then(|i| i.latest_restorable_time())),
                earliest: None,
                retention_days: i.and_then(|i| i.backup_retention_period()),
                created: to_chrono(i.and_then(|i| i.instance_create_time())),
            })
        }
        DbKind::Cluster => {
            let out = rds
                .describe_db_clusters()
                .db_cluster_identifier(id)
                .send()
                .await
                .map_err(|e| Error::aws("DescribeDBClusters", e))?;
            let c = out.db_clusters().first();
            Ok(RestorableFacts {
                latest: to_chrono(c.and_then(|c| c.latest_restorable_time())),
                earliest: to_chrono(c.and_then(|c| c.earliest_restorable_time())),
                retention_days: c.and_then(|c| c.backup_retention_period()),
                created: to_chrono(c.and_then(|c| c.cluster_create_time())),
            })
        }
    }
}

/// The security groups of a placement as RDS wants them: none given means the default.
fn security_groups(placement: &Placement) -> Option<Vec<String>> {
    Some(placement.security_groups.clone()).filter(|v| !v.is_empty())
}

/// The instance created in a restored cluster so that SQL can run.
struct ClusterMember<'a> {
    cluster: &'a str,
    instance: &'a str,
    engine: &'a str,
    placement: &'a Placement,
    tags: &'a [Tag],
}

async fn add_cluster_instance(rds: &Client, member: &ClusterMember<'_>) -> Result<(), Error> {
    rds.create_db_instance()
        .db_instance_identifier(member.instance)
        .db_cluster_identifier(member.cluster)
        .engine(member.engine)
        .db_instance_class(&member.placement.instance_class)
        .publicly_accessible(member.placement.publicly_accessible)
        .set_tags(Some(member.tags.to_vec()).filter(|t| !t.is_empty()))
        .send()
        .await
        .map_err(|e| Error::aws("CreateDBInstance", e))?;
    Ok(())
}

pub async fn instance(rds: &Client, id: &str) -> Result<Option<InstanceInfo>, Error> {
    match rds.describe_db_instances().db_instance_identifier(id).send().await {
        Ok(out) => Ok(out.db_instances().first().map(|i| InstanceInfo {
            status: i.db_instance_status().unwrap_or_default().to_owned(),
            endpoint: i
                .endpoint()
                .and_then(|e| Some((e.address()?.to_owned(), u16::try_from(e.port()?).ok()?))),
            tags: tag_map(i.tag_list()),
            master_user: i.master_username().unwrap_or_default().to_owned(),
            engine: i.engine().unwrap_or_default().to_owned(),
            subnet_group: i
                .db_subnet_group()
                .and_then(|g| g.db_subnet_group_name())
                .map(str::to_owned),
            security_groups: i
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                .collect(),
            parameter_group: i
                .db_parameter_groups()
                .first()
                .and_then(|g| g.db_parameter_group_name())
                .map(str::to_owned),
            instance_class: i.db_instance_class().unwrap_or_default().to_owned(),
        })),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_db_instance_not_found_fault()) => Ok(None),
        Err(e) => Err(Error::aws("DescribeDBInstances", e)),
    }
}

/// A cluster, or `None` if it does not exist.
pub async fn cluster(rds: &Client, id: &str) -> Result<Option<ClusterInfo>, Error> {
    match rds.describe_db_clusters().db_cluster_identifier(id).send().await {
        Ok(out) => Ok(out.db_clusters().first().map(|c| ClusterInfo {
            status: c.status().unwrap_or_default().to_owned(),
            tags: tag_map(c.tag_list()),
            master_user: c.master_username().unwrap_or_default().to_owned(),
            subnet_group: c.db_subnet_group().map(str::to_owned),
            security_groups: c
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                .collect(),
        })),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_db_cluster_not_found_fault()) => Ok(None),
        Err(e) => Err(Error::aws("DescribeDBClusters", e)),
    }
}

/// The backup configuration of an instance or a cluster (all defaults when it no longer exists).
pub async fn backup_details(rds: &Client, kind: DbKind, id: &str) -> Result<BackupDetails, Error> {
    match kind {
        DbKind::Instance => {
            let out = rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
                .map_err(|e| Error::aws("DescribeDBInstances", e))?;
            let i = out.db_instances().first();
            Ok(BackupDetails {
                retention_days: i.and_then(|i| i.backup_retention_period()),
                latest_restorable: to_chrono(i.and_then(|i| i.latest_restorable_time())),
                encrypted: i.and_then(|i| i.storage_encrypted()).unwrap_or(false),
                deletion_protection: i.and_then(|i| i.deletion_protection()).unwrap_or(false),
            })
        }
        DbKind::Cluster => {
            let out = rds
                .describe_db_clusters()
                .db_cluster_identifier(id)
                .send()
                .await
                .map_err(|e| Error::aws("DescribeDBClusters", e))?;
            let c = out.db_clusters().first();
            Ok(BackupDetails {
                retention_days: c.and_then(|c| c.backup_retention_period()),
                latest_restorable: to_chrono(c.and_then(|c| c.latest_restorable_time())),
                encrypted: c.and_then(|c| c.storage_encrypted()).unwrap_or(false),
                deletion_protection: c.and_then(|c| c.deletion_protection()).unwrap_or(false),
            })
        }
    }
}

/// Sets a new master password on the restored instance or cluster, applied at once.
pub async fn set_master_password(rds: &Client, kind: DbKind, id: &str, password: &str) -> Result<(), Error> {
    match kind {
        DbKind::Instance => rds
            .modify_db_instance()
            .db_instance_identifier(id)
            .master_user_password(password)
            .apply_immediately(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("ModifyDBInstance", e)),
        DbKind::Cluster => rds
            .modify_db_cluster()
            .db_cluster_identifier(id)
            .master_user_password(password)
            .apply_immediately(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("ModifyDBCluster", e)),
    }
}

/// What cleanup found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Deletion started, or was already under way.
    Deleting,
    /// Nothing by that name exists (any more).
    Gone,
}

/// Deletes a restore-test instance, or a cluster and its instance, without a final snapshot. Refuses anything that
/// does not carry the restore-test tag: a bug or a hand-edited execution input must never delete a real database.
pub async fn delete_test(
    rds: &Client,
    kind: DbKind,
    id: &str,
    cluster_instance: Option<&str>,
) -> Result<Deleted, Error> {
    let refuse = |what: &str| {
        Err(Error::PartialFailure(format!(
            "refusing to delete {what} {id}: it is not tagged {RESTORE_TEST}=true, so it is not a restore test"
        )))
    };
    let delete_instance = |iid: String| async move {
        match instance(rds, &iid).await? {
            None => Ok(Deleted::Gone),
            Some(i) if !is_restore_test(&i.tags) => refuse("instance"),
            Some(i) if i.status == "deleting" => Ok(Deleted::Deleting),
            Some(_) => match rds
                .delete_db_instance()
                .db_instance_identifier(&iid)
                .skip_final_snapshot(true)
                .delete_automated_backups(true)
                .send()
                .await
            {
                Ok(_) => Ok(Deleted::Deleting),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_db_instance_not_found_fault()) => Ok(Deleted::Gone),
                Err(e) => Err(Error::aws("DeleteDBInstance", e)),
            },
        }
    };
    match kind {
        DbKind::Instance => delete_instance(id.to_owned()).await,
        DbKind::Cluster => {
            let Some(ClusterInfo { status, tags, .. }) = cluster(rds, id).await? else {
                return Ok(Deleted::Gone);
            };
            if !is_restore_test(&tags) {
                return refuse("cluster");
            }
            if let Some(member) = cluster_instance {
                delete_instance(member.to_owned()).await?;
            }
            if status == "deleting" {
                return Ok(Deleted::Deleting);
            }
            match rds
                .delete_db_cluster()
                .db_cluster_identifier(id)
                .skip_final_snapshot(true)
                .send()
                .await
            {
                Ok(_) => Ok(Deleted::Deleting),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_db_cluster_not_found_fault()) => Ok(Deleted::Gone),
                Err(e) => Err(Error::aws("DeleteDBCluster", e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use aws_sdk_rds::operation::restore_db_instance_from_db_snapshot::RestoreDbInstanceFromDbSnapshotOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use std::collections::BTreeMap;

    #[tokio::test]
    async fn a_restore_test_instance_is_isolated_small_and_tagged() {
        let isolated = mock!(Client::restore_db_instance_from_db_snapshot)
            .match_requests(|r| {
                let tags: BTreeMap<_, _> = tag_map(r.tags());
                r.publicly_accessible() == Some(false)
                    && r.deletion_protection() == Some(false)
                    && r.multi_az() == Some(false)
                    && r.db_instance_class() == Some("db.t4g.micro")
                    && r.db_subnet_group_name() == Some("lifeboat-restore")
                    && r.vpc_security_group_ids() == ["sg-0123456789abcdef0"]
                    && tags.get(RESTORE_TEST).map(String::as_str) == Some("true")
                    && tags.get(SOURCE_DB).map(String::as_str) == Some("app-prod")
                    && tags.contains_key(EXPIRES_AT)
            })
            .then_output(|| RestoreDbInstanceFromDbSnapshotOutput::builder().build());
        let rds = mock_client!(aws_sdk_rds, [&isolated]);
        let placement = Placement {
            subnet_group: Some("lifeboat-restore".into()),
            security_groups: vec!["sg-0123456789abcdef0".into()],
            instance_class: "db.t4g.micro".into(),
            parameter_group: None,
            isolated: true,
            publicly_accessible: false,
        };
        let request = RestoreRequest {
            kind: DbKind::Instance,
            snapshot_id: "lifeboat-app-prod-20261122-0200",
            engine: "postgres",
            target_id: "lifeboat-rt-app-prod-202611220300",
            cluster_instance: None,
            placement: &placement,
            tags: &test_tags("app-prod", Utc::now()),
        };
        restore_snapshot(&rds, &request).await.unwrap();
        assert_eq!(isolated.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_point_in_time_restore_test_is_isolated_tagged_and_names_its_moment() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-19T13:27:51Z")
            .unwrap()
            .with_timezone(&Utc);
        let isolated = mock!(Client::restore_db_instance_to_point_in_time)
            .match_requests(move |r| {
                let tags: BTreeMap<_, _> = tag_map(r.tags());
                r.source_db_instance_identifier() == Some("app-prod")
                    && r.target_db_instance_identifier() == Some("lifeboat-rt-app-prod-202611220400")
                    && r.restore_time().map(|t| t.secs()) == Some(at.timestamp())
                    && r.use_latest_restorable_time().is_none()
                    && r.publicly_accessible() == Some(false)
                    && r.deletion_protection() == Some(false)
                    && r.multi_az() == Some(false)
                    && r.db_instance_class() == Some("db.t4g.micro")
                    && r.db_subnet_group_name() == Some("lifeboat-restore")
                    && tags.get(RESTORE_TEST).map(String::as_str) == Some("true")
                    && tags.get(SOURCE_DB).map(String::as_str) == Some("app-prod")
            })
            .then_output(|| {
                aws_sdk_rds::operation::restore_db_instance_to_point_in_time::RestoreDbInstanceToPointInTimeOutput::builder()
                    .build()
            });
        let rds = mock_client!(aws_sdk_rds, [&isolated]);
        let placement = Placement {
            subnet_group: Some("lifeboat-restore".into()),
            security_groups: vec![],
            instance_class: "db.t4g.micro".into(),
            parameter_group: None,
            isolated: true,
            publicly_accessible: false,
        };
        let request = PointInTimeTest {
            kind: DbKind::Instance,
            source_id: "app-prod",
            engine: "postgres",
            target_id: "lifeboat-rt-app-prod-202611220400",
            cluster_instance: None,
            at,
            placement: &placement,
            tags: &test_tags("app-prod", Utc::now()),
        };
        restore_test_to_time(&rds, &request).await.unwrap();
        assert_eq!(isolated.num_calls(), 1);
    }

    fn console_placement() -> Placement {
        Placement {
            subnet_group: Some("app-subnets".into()),
            security_groups: vec!["sg-app".into()],
            instance_class: "db.r6g.large".into(),
            parameter_group: None,
            isolated: false,
            publicly_accessible: false,
        }
    }

    #[tokio::test]
    async fn a_console_restore_is_never_public_unless_asked() {
        let private = mock!(Client::restore_db_instance_from_db_snapshot)
            .match_requests(|r| {
                r.publicly_accessible() == Some(false)
                    && r.db_subnet_group_name() == Some("app-subnets")
                    && r.vpc_security_group_ids() == ["sg-app"]
            })
            .then_output(|| RestoreDbInstanceFromDbSnapshotOutput::builder().build());
        let private_pitr = mock!(Client::restore_db_instance_to_point_in_time)
            .match_requests(|r| r.publicly_accessible() == Some(false))
            .then_output(|| {
                aws_sdk_rds::operation::restore_db_instance_to_point_in_time::RestoreDbInstanceToPointInTimeOutput::builder()
                    .build()
            });
        let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&private, &private_pitr]);
        let placement = console_placement();
        let request = RestoreRequest {
            kind: DbKind::Instance,
            snapshot_id: "lifeboat-app-prod-20261122-0200",
            engine: "postgres",
            target_id: "app-prod-restored",
            cluster_instance: None,
            placement: &placement,
            tags: &[],
        };
        restore_snapshot(&rds, &request).await.unwrap();
        let pitr = PointInTimeRequest {
            kind: DbKind::Instance,
            source_id: "app-prod",
            engine: "postgres",
            target_id: "app-prod-restored",
            at: None,
            placement: &placement,
            tags: &[],
        };
        restore_to_time(&rds, &pitr).await.unwrap();
        assert_eq!((private.num_calls(), private_pitr.num_calls()), (1, 1));

        let public = mock!(Client::restore_db_instance_from_db_snapshot)
            .match_requests(|r| r.publicly_accessible() == Some(true))
            .then_output(|| RestoreDbInstanceFromDbSnapshotOutput::builder().build());
        let rds = mock_client!(aws_sdk_rds, [&public]);
        let asked = Placement {
            publicly_accessible: true,
            ..console_placement()
        };
        restore_snapshot(
            &rds,
            &RestoreRequest {
                placement: &asked,
                ..request
            },
        )
        .await
        .unwrap();
        assert_eq!(public.num_calls(), 1);
    }
}
