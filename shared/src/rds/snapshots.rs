//! RDS snapshot adapter: list, create, delete, copy and share instance and cluster snapshots.
//!
//! One [`Snapshot`] type covers both kinds so that the rules in [`crate::rds::retention`] never care which API a
//! snapshot came from. Modelled service errors are matched through the SDK's error enums, never by message.
//! This module deletes only what it is told to; the decision belongs to the retention rules.

use std::collections::BTreeMap;

use aws_sdk_rds::operation::create_db_cluster_snapshot::CreateDBClusterSnapshotError;
use aws_sdk_rds::operation::create_db_snapshot::CreateDBSnapshotError;
use aws_sdk_rds::types::{DbClusterSnapshot, DbSnapshot, Tag};
use aws_sdk_rds::Client;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::core::error::{aws_error_message, Error};
use crate::core::tags;
use crate::rds::selection::DbKind;
use crate::rds::snapshot_tags::{self, Source};

/// An instance or cluster snapshot, as the describe calls report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub id: String,
    pub arn: String,
    /// The instance or cluster it was taken from.
    pub db: String,
    pub kind: DbKind,
    /// `manual`, `automated`, `shared`, `public` or `awsbackup`.
    pub snapshot_type: String,
    pub status: String,
    pub created: Option<DateTime<Utc>>,
    pub encrypted: bool,
    #[serde(skip)]
    pub tags: BTreeMap<String, String>,
}

impl Snapshot {
    /// Lifeboat owns a snapshot only if it carries `lifeboat:managed=true`.
    pub fn owned(&self) -> bool {
        self.tags.get(tags::MANAGED).is_some_and(|v| v == "true")
    }

    pub fn is_automated(&self) -> bool {
        self.snapshot_type != "manual"
    }

    pub fn is_available(&self) -> bool {
        self.status == "available"
    }

    /// Still being made or copied: counts against the copies in flight.
    pub fn is_in_progress(&self) -> bool {
        matches!(self.status.as_str(), "creating" | "copying" | "pending")
    }

    pub fn source(&self) -> Source {
        snapshot_tags::source_of(&self.tags)
    }

    /// The time the snapshot stands for: the schedule time in its tag, else when RDS created it.
    pub fn logical_time(&self) -> DateTime<Utc> {
        snapshot_tags::logical_time_of(&self.tags, self.created)
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        snapshot_tags::expires_at_of(&self.tags)
    }
}

pub(crate) fn to_chrono(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// An RDS tag list as a map (a tag without a value maps to "").
pub fn tag_map(list: &[Tag]) -> BTreeMap<String, String> {
    list.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect()
}

impl From<&DbSnapshot> for Snapshot {
    fn from(s: &DbSnapshot) -> Self {
        Snapshot {
            id: s.db_snapshot_identifier().unwrap_or_default().to_owned(),
            arn: s.db_snapshot_arn().unwrap_or_default().to_owned(),
            db: s.db_instance_identifier().unwrap_or_default().to_owned(),
            kind: DbKind::Instance,
            snapshot_type: s.snapshot_type().unwrap_or_default().to_owned(),
            status: s.status().unwrap_or_default().to_owned(),
            created: to_chrono(s.snapshot_create_time()),
            encrypted: s.encrypted().unwrap_or(false),
            tags: tag_map(s.tag_list()),
        }
    }
}

impl From<&DbClusterSnapshot> for Snapshot {
    fn from(s: &DbClusterSnapshot) -> Self {
        Snapshot {
            id: s.db_cluster_snapshot_identifier().unwrap_or_default().to_owned(),
            arn: s.db_cluster_snapshot_arn().unwrap_or_default().to_owned(),
            db: s.db_cluster_identifier().unwrap_or_default().to_owned(),
            kind: DbKind::Cluster,
            snapshot_type: s.snapshot_type().unwrap_or_default().to_owned(),
            status: s.status().unwrap_or_default().to_owned(),
            created: to_chrono(s.snapshot_create_time()),
            encrypted: s.storage_encrypted().unwrap_or(false),
            tags: tag_map(s.tag_list()),
        }
    }
}

/// Every snapshot (manual and automated) of one database.
pub async fn list_for_db(rds: &Client, db: &str, kind: DbKind) -> Result<Vec<Snapshot>, Error> {
    let mut out = Vec::new();
    match kind {
        DbKind::Instance => {
            let mut pages = rds
                .describe_db_snapshots()
                .db_instance_identifier(db)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| Error::aws("DescribeDBSnapshots", e))?;
                out.extend(page.db_snapshots().iter().map(Snapshot::from));
            }
        }
        DbKind::Cluster => {
            let mut pages = rds
                .describe_db_cluster_snapshots()
                .db_cluster_identifier(db)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| Error::aws("DescribeDBClusterSnapshots", e))?;
                out.extend(page.db_cluster_snapshots().iter().map(Snapshot::from));
            }
        }
    }
    // Filtering by identifier is done by RDS; this guards against an emulator or API that ignores it.
    out.retain(|s| s.db == db);
    Ok(out)
}

/// Every manual snapshot in the client's region, instances and clusters: what counts against the quota.
pub async fn list_manual(rds: &Client) -> Result<Vec<Snapshot>, Error> {
    let mut out = Vec::new();
    let mut pages = rds
        .describe_db_snapshots()
        .snapshot_type("manual")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("DescribeDBSnapshots", e))?;
        out.extend(page.db_snapshots().iter().map(Snapshot::from));
    }
    let mut pages = rds
        .describe_db_cluster_snapshots()
        .snapshot_type("manual")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("DescribeDBClusterSnapshots", e))?;
        out.extend(page.db_cluster_snapshots().iter().map(Snapshot::from));
    }
    out.retain(|s| !s.is_automated());
    Ok(out)
}

/// One snapshot by identifier, or `None` if it does not exist.
pub async fn describe(rds: &Client, kind: DbKind, id: &str) -> Result<Option<Snapshot>, Error> {
    match kind {
        DbKind::Instance => match rds.describe_db_snapshots().db_snapshot_identifier(id).send().await {
            Ok(out) => Ok(out.db_snapshots().first().map(Snapshot::from)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_snapshot_not_found_fault()) => Ok(None),
            Err(e) => Err(Error::aws("DescribeDBSnapshots", e)),
        },
        DbKind::Cluster => match rds
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_cluster_snapshots().first().map(Snapshot::from)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_cluster_snapshot_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::aws("DescribeDBClusterSnapshots", e)),
        },
    }
}

/// What RDS said to a create request. The refusals RDS models are outcomes, not errors: the run reports them
/// per database and goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateResult {
    Started(Snapshot),
    AlreadyExists,
    /// The database is in a state that does not allow a snapshot (e.g. another backup is running).
    InvalidState(String),
    QuotaExceeded(String),
    NotFound(String),
}

pub fn to_tags(map: &BTreeMap<String, String>) -> Vec<Tag> {
    map.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Starts a snapshot of an instance or cluster.
pub async fn create(
    rds: &Client,
    db: &str,
    kind: DbKind,
    id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<CreateResult, Error> {
    match kind {
        DbKind::Instance => {
            let res = rds
                .create_db_snapshot()
                .db_instance_identifier(db)
                .db_snapshot_identifier(id)
                .set_tags(Some(to_tags(tags)))
                .send()
                .await;
            match res {
                Ok(out) => Ok(CreateResult::Started(
                    out.db_snapshot()
                        .map(Snapshot::from)
                        .unwrap_or_else(|| pending(id, db, kind)),
                )),
                Err(err) => {
                    let message = aws_error_message(&err);
                    match err.into_service_error() {
                        CreateDBSnapshotError::DbSnapshotAlreadyExistsFault(_) => Ok(CreateResult::AlreadyExists),
                        CreateDBSnapshotError::InvalidDbInstanceStateFault(_) => {
                            Ok(CreateResult::InvalidState(message))
                        }
                        CreateDBSnapshotError::SnapshotQuotaExceededFault(_) => {
                            Ok(CreateResult::QuotaExceeded(message))
                        }
                        CreateDBSnapshotError::DbInstanceNotFoundFault(_) => Ok(CreateResult::NotFound(message)),
                        _ => Err(Error::Aws {
                            operation: "CreateDBSnapshot",
                            code: None,
                            message,
                        }),
                    }
                }
            }
        }
        DbKind::Cluster => {
            let res = rds
                .create_db_cluster_snapshot()
                .db_cluster_identifier(db)
                .db_cluster_snapshot_identifier(id)
                .set_tags(Some(to_tags(tags)))
                .send()
                .await;
            match res {
                Ok(out) => Ok(CreateResult::Started(
                    out.db_cluster_snapshot()
                        .map(Snapshot::from)
                        .unwrap_or_else(|| pending(id, db, kind)),
                )),
                Err(err) => {
                    let message = aws_error_message(&err);
                    match err.into_service_error() {
                        CreateDBClusterSnapshotError::DbClusterSnapshotAlreadyExistsFault(_) => {
                            Ok(CreateResult::AlreadyExists)
                        }
                        CreateDBClusterSnapshotError::InvalidDbClusterStateFault(_) => {
                            Ok(CreateResult::InvalidState(message))
                        }
                        CreateDBClusterSnapshotError::SnapshotQuotaExceededFault(_) => {
                            Ok(CreateResult::QuotaExceeded(message))
                        }
                        CreateDBClusterSnapshotError::DbClusterNotFoundFault(_) => Ok(CreateResult::NotFound(message)),
                        _ => Err(Error::Aws {
                            operation: "CreateDBClusterSnapshot",
                            code: None,
                            message,
                        }),
                    }
                }
            }
        }
    }
}

fn pending(id: &str, db: &str, kind: DbKind) -> Snapshot {
    Snapshot {
        id: id.to_owned(),
        arn: String::new(),
        db: db.to_owned(),
        kind,
        snapshot_type: "manual".into(),
        status: "creating".into(),
        created: None,
        encrypted: false,
        tags: BTreeMap::new(),
    }
}

/// Deletes a snapshot. A snapshot that is already gone counts as deleted, so a retried run converges.
pub async fn delete(rds: &Client, snapshot: &Snapshot) -> Result<(), Error> {
    match snapshot.kind {
        DbKind::Instance => match rds
            .delete_db_snapshot()
            .db_snapshot_identifier(&snapshot.id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_snapshot_not_found_fault()) => Ok(()),
            Err(e) => Err(Error::aws("DeleteDBSnapshot", e)),
        },
        DbKind::Cluster => match rds
            .delete_db_cluster_snapshot()
            .db_cluster_snapshot_identifier(&snapshot.id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_cluster_snapshot_not_found_fault()) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::aws("DeleteDBClusterSnapshot", e)),
        },
    }
}

/// Starts a copy of `source` (in another region) into the region of `dest`, re-encrypted with `kms_key_id`.
/// Returns `false` if a snapshot with that identifier already exists in the destination.
pub async fn copy(
    dest: &Client,
    source: &Snapshot,
    kms_key_id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<bool, Error> {
    match source.kind {
        DbKind::Instance => match dest
            .copy_db_snapshot()
            .source_db_snapshot_identifier(&source.arn)
            .target_db_snapshot_identifier(&source.id)
            .kms_key_id(kms_key_id)
            .set_tags(Some(to_tags(tags)))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_snapshot_already_exists_fault()) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::aws("CopyDBSnapshot", e)),
        },
        DbKind::Cluster => match dest
            .copy_db_cluster_snapshot()
            .source_db_cluster_snapshot_identifier(&source.arn)
            .target_db_cluster_snapshot_identifier(&source.id)
            .kms_key_id(kms_key_id)
            .set_tags(Some(to_tags(tags)))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_cluster_snapshot_already_exists_fault()) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::aws("CopyDBClusterSnapshot", e)),
        },
    }
}

/// Lets other accounts restore a snapshot (adds them to its `restore` attribute; adding twice is harmless).
pub async fn share(rds: &Client, snapshot: &Snapshot, accounts: &[String]) -> Result<(), Error> {
    if accounts.is_empty() {
        return Ok(());
    }
    match snapshot.kind {
        DbKind::Instance => rds
            .modify_db_snapshot_attribute()
            .db_snapshot_identifier(&snapshot.id)
            .attribute_name("restore")
            .set_values_to_add(Some(accounts.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("ModifyDBSnapshotAttribute", e)),
        DbKind::Cluster => rds
            .modify_db_cluster_snapshot_attribute()
            .db_cluster_snapshot_identifier(&snapshot.id)
            .attribute_name("restore")
            .set_values_to_add(Some(accounts.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("ModifyDBClusterSnapshotAttribute", e)),
    }
}

/// Builders for tests in this crate and others.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// An available manual snapshot taken on schedule at `at`, owned by Lifeboat if `owned`.
    pub fn snap(id: &str, at: DateTime<Utc>, owned: bool) -> Snapshot {
        let mut tags = BTreeMap::new();
        if owned {
            tags.insert(tags::MANAGED.to_owned(), "true".to_owned());
            tags.insert(tags::SOURCE.to_owned(), "schedule".to_owned());
            tags.insert(tags::CREATED_AT.to_owned(), at.to_rfc3339());
        }
        Snapshot {
            id: id.to_owned(),
            arn: format!("arn:aws:rds:us-east-1:123456789012:snapshot:{id}"),
            db: "app-prod".to_owned(),
            kind: DbKind::Instance,
            snapshot_type: "manual".to_owned(),
            status: "available".to_owned(),
            created: Some(at),
            encrypted: true,
            tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::operation::create_db_snapshot::CreateDbSnapshotOutput;
    use aws_sdk_rds::operation::delete_db_snapshot::DeleteDBSnapshotError;
    use aws_sdk_rds::types::error::{
        DbSnapshotAlreadyExistsFault, DbSnapshotNotFoundFault, InvalidDbInstanceStateFault, SnapshotQuotaExceededFault,
    };
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn tags() -> BTreeMap<String, String> {
        BTreeMap::from([(tags::MANAGED.to_owned(), "true".to_owned())])
    }

    #[tokio::test]
    async fn create_maps_modelled_refusals_to_outcomes() {
        let exists = mock!(Client::create_db_snapshot).then_error(|| {
            CreateDBSnapshotError::DbSnapshotAlreadyExistsFault(DbSnapshotAlreadyExistsFault::builder().build())
        });
        let busy = mock!(Client::create_db_snapshot).then_error(|| {
            CreateDBSnapshotError::InvalidDbInstanceStateFault(
                InvalidDbInstanceStateFault::builder()
                    .message("DB instance is currently backing-up")
                    .build(),
            )
        });
        let quota = mock!(Client::create_db_snapshot).then_error(|| {
            CreateDBSnapshotError::SnapshotQuotaExceededFault(SnapshotQuotaExceededFault::builder().build())
        });
        let ok = mock!(Client::create_db_snapshot).then_output(|| {
            CreateDbSnapshotOutput::builder()
                .db_snapshot(
                    DbSnapshot::builder()
                        .db_snapshot_identifier("lifeboat-db-20260101-0200")
                        .db_instance_identifier("db")
                        .status("creating")
                        .snapshot_type("manual")
                        .build(),
                )
                .build()
        });
        let rds = mock_client!(aws_sdk_rds, RuleMode::Sequential, [&exists, &busy, &quota, &ok]);
        let id = "lifeboat-db-20260101-0200";
        assert_eq!(
            create(&rds, "db", DbKind::Instance, id, &tags()).await.unwrap(),
            CreateResult::AlreadyExists
        );
        match create(&rds, "db", DbKind::Instance, id, &tags()).await.unwrap() {
            CreateResult::InvalidState(msg) => assert!(msg.contains("backing-up"), "{msg}"),
            other => panic!("expected InvalidState, got {other:?}"),
        }
        assert!(matches!(
            create(&rds, "db", DbKind::Instance, id, &tags()).await.unwrap(),
            CreateResult::QuotaExceeded(_)
        ));
        match create(&rds, "db", DbKind::Instance, id, &tags()).await.unwrap() {
            CreateResult::Started(s) => assert_eq!((s.id.as_str(), s.status.as_str()), (id, "creating")),
            other => panic!("expected Started, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn throttling_is_retried_by_the_sdk_and_other_server_errors_surface() {
        let throttled = mock!(Client::create_db_snapshot)
            .sequence()
            .http_status(400, Some(r#"<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"#.into()))
            .times(2)
            .output(|| CreateDbSnapshotOutput::builder().build())
            .build();
        let rds = mock_client!(aws_sdk_rds, RuleMode::Sequential, [&throttled], |c| c.retry_config(
            // Production's retry configuration with a tiny back-off, which would only slow this test down.
            crate::core::aws::retry_config().with_initial_backoff(std::time::Duration::from_millis(1))
        ));
        let res = create(&rds, "db", DbKind::Instance, "lifeboat-db-1", &tags())
            .await
            .unwrap();
        assert!(matches!(res, CreateResult::Started(_)), "{res:?}");
        assert_eq!(throttled.num_calls(), 3);
    }

    #[tokio::test]
    async fn deleting_a_snapshot_that_is_already_gone_succeeds() {
        let gone = mock!(Client::delete_db_snapshot)
            .then_error(|| DeleteDBSnapshotError::DbSnapshotNotFoundFault(DbSnapshotNotFoundFault::builder().build()));
        let rds = mock_client!(aws_sdk_rds, [&gone]);
        let s = testing::snap("lifeboat-db-1", Utc::now(), true);
        delete(&rds, &s).await.unwrap();
        assert_eq!(gone.num_calls(), 1);
    }

    #[tokio::test]
    async fn unmodelled_errors_keep_the_service_message() {
        let denied = mock!(Client::delete_db_snapshot).sequence().http_status(
            403,
            Some(r#"<ErrorResponse><Error><Code>AccessDenied</Code><Message>not authorized to perform rds:DeleteDBSnapshot</Message></Error></ErrorResponse>"#.into()),
        ).build();
        let rds = mock_client!(aws_sdk_rds, [&denied]);
        let s = testing::snap("lifeboat-db-1", Utc::now(), true);
        let err = delete(&rds, &s).await.unwrap_err().to_string();
        assert!(err.starts_with("DeleteDBSnapshot failed"), "{err}");
        assert!(err.contains("not authorized to perform rds:DeleteDBSnapshot"), "{err}");
    }
}
