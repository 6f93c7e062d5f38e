//! Caches on ElastiCache (Redis OSS and Valkey): which exist, with their tags; which of them a selector picks
//! (the same [`Selector`] as databases); where a snapshot of each is taken from; the snapshots Lifeboat made.
//!
//! Owns: the cache model, the selection of caches, the snapshot-source rule, and the thin ElastiCache adapter
//! (describe, tags, create, list and delete snapshots), serverless caches included ([`discover_all`],
//! [`list_all_snapshots`]; their calls are tested on `aws-smithy-mocks`, moto has none of them).
//!
//! Never: deletes a snapshot Lifeboat did not make ([`delete_snapshot`] checks the ownership tag itself), or
//! decides retention (that is [`crate::rds::retention`], the same rules as for databases).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use aws_sdk_elasticache::operation::create_snapshot::CreateSnapshotError;
use aws_sdk_elasticache::types::{ReplicationGroup, Tag};
use aws_sdk_elasticache::Client;

use crate::core::error::Error;
use crate::rds::retention::Retained;
use crate::rds::selection::Selector;
use crate::rds::snapshot_tags;
use crate::rds::snapshot_tags::Source;

/// A replication group (cluster mode on or off), or a single-node cluster that belongs to no group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheKind {
    ReplicationGroup,
    Node,
    /// An ElastiCache Serverless cache (its name is its identifier; snapshots through the serverless calls).
    Serverless,
}

/// One node of a replication group and its current role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The node's cache cluster identifier (`<group>-001`).
    pub node: String,
    pub primary: bool,
}

/// A cache as the describe calls report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    pub id: String,
    pub kind: CacheKind,
    pub arn: String,
    pub engine: String,
    pub status: String,
    pub tags: BTreeMap<String, String>,
    /// Sharded (cluster mode enabled): one snapshot holds one file per shard.
    pub cluster_mode: bool,
    /// The nodes of a cluster-mode-disabled group's one shard, with their roles; empty for sharded groups,
    /// whose snapshot ElastiCache takes per shard itself.
    pub members: Vec<Member>,
    pub at_rest_encryption: bool,
    pub transit_encryption: bool,
    /// ElastiCache's own automatic backups, in days (0: off).
    pub snapshot_retention_days: i32,
    /// Holds a copy of its data on another node: a group with more nodes than shards (a replica per shard, or
    /// some), or a serverless cache (replicated across zones by ElastiCache); never a single node.
    pub replicated: bool,
}

/// What a snapshot is taken of: a whole group, or one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSource {
    ReplicationGroup(String),
    Node(String),
    /// A serverless cache, snapshotted whole by CreateServerlessCacheSnapshot.
    Serverless(String),
}

/// Where a cache's snapshot is taken from. ElastiCache advises taking it from a replica, since the fork that
/// writes it costs the node memory and latency: a cluster-mode-disabled group with a replica is snapshotted
/// from its first replica (by name, so the choice is stable); a sharded group is given whole (ElastiCache makes
/// one file per shard); a single node is snapshotted itself; a group with no replica, from the group.
pub fn snapshot_source(cache: &Cache) -> SnapshotSource {
    match cache.kind {
        CacheKind::Node => SnapshotSource::Node(cache.id.clone()),
        CacheKind::Serverless => SnapshotSource::Serverless(cache.id.clone()),
        CacheKind::ReplicationGroup if cache.cluster_mode => SnapshotSource::ReplicationGroup(cache.id.clone()),
        CacheKind::ReplicationGroup => cache
            .members
            .iter()
            .filter(|m| !m.primary)
            .map(|m| m.node.clone())
            .min()
            .map_or_else(
                || SnapshotSource::ReplicationGroup(cache.id.clone()),
                SnapshotSource::Node,
            ),
    }
}

/// The caches a selector names (sorted by identifier), and the names it lists that exist neither as a
/// database nor as a cache are the caller's to report.
pub fn select<'a>(all: &'a [Cache], selector: &Selector) -> Vec<&'a Cache> {
    let mut out: Vec<&Cache> = all
        .iter()
        .filter(|c| selector.databases.contains(&c.id) || selector.tag.as_ref().is_some_and(|t| t.matches(&c.tags)))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

pub(crate) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect()
}

pub(crate) async fn tags_of(client: &Client, arn: &str) -> Result<BTreeMap<String, String>, Error> {
    let out = client
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| Error::aws("ListTagsForResource", e))?;
    Ok(tag_map(out.tag_list()))
}

fn from_group(g: &ReplicationGroup) -> Option<Cache> {
    let cluster_mode = g.cluster_enabled().unwrap_or(false);
    let members = if cluster_mode {
        Vec::new()
    } else {
        g.node_groups()
            .iter()
            .flat_map(|ng| ng.node_group_members())
            .filter_map(|m| {
                Some(Member {
                    node: m.cache_cluster_id()?.to_owned(),
                    primary: m.current_role() == Some("primary"),
                })
            })
            .collect()
    };
    Some(Cache {
        id: g.replication_group_id()?.to_owned(),
        kind: CacheKind::ReplicationGroup,
        arn: g.arn().unwrap_or_default().to_owned(),
        engine: g.engine().unwrap_or("redis").to_owned(),
        status: g.status().unwrap_or_default().to_owned(),
        tags: BTreeMap::new(),
        cluster_mode,
        members,
        at_rest_encryption: g.at_rest_encryption_enabled().unwrap_or(false),
        transit_encryption: g.transit_encryption_enabled().unwrap_or(false),
        snapshot_retention_days: g.snapshot_retention_limit().unwrap_or(0),
        replicated: g.member_clusters().len() > g.node_groups().len().max(1),
    })
}

/// Every replication group and every single-node cluster outside a group in the client's region, with tags.
pub async fn discover(client: &Client) -> Result<Vec<Cache>, Error> {
    let mut out = Vec::new();
    let mut pages = client.describe_replication_groups().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("DescribeReplicationGroups", e))?;
        out.extend(page.replication_groups().iter().filter_map(from_group));
    }
    let mut pages = client.describe_cache_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("DescribeCacheClusters", e))?;
        for c in page.cache_clusters() {
            let Some(id) = c.cache_cluster_id() else { continue };
            // A member of a group is not a cache of its own; Memcached has no snapshots.
            if c.replication_group_id().is_some() || c.engine() == Some("memcached") {
                continue;
            }
            out.push(Cache {
                id: id.to_owned(),
                kind: CacheKind::Node,
                arn: c.arn().unwrap_or_default().to_owned(),
                engine: c.engine().unwrap_or("redis").to_owned(),
                status: c.cache_cluster_status().unwrap_or_default().to_owned(),
                tags: BTreeMap::new(),
                cluster_mode: false,
                members: Vec::new(),
                at_rest_encryption: c.at_rest_encryption_enabled().unwrap_or(false),
                transit_encryption: c.transit_encryption_enabled().unwrap_or(false),
                snapshot_retention_days: c.snapshot_retention_limit().unwrap_or(0),
                replicated: false,
            });
        }
    }
    for cache in &mut out {
        cache.tags = tags_of(client, &cache.arn).await?;
    }
    Ok(out)
}

/// Every cache, serverless caches included when `serverless` (a deployment where ElastiCache Serverless is not
/// offered, or an emulator without it, sets `LIFEBOAT_SERVERLESS_CACHES=false`).
pub async fn discover_all(client: &Client, serverless: bool) -> Result<Vec<Cache>, Error> {
    let mut out = discover(client).await?;
    if serverless {
        out.extend(serverless::discover(client).await?);
    }
    Ok(out)
}

/// Every snapshot, serverless caches' included when `serverless` (see [`discover_all`]).
pub async fn list_all_snapshots(client: &Client, serverless: bool) -> Result<Vec<CacheSnapshot>, Error> {
    let mut out = list_snapshots(client).await?;
    if serverless {
        out.extend(serverless::list_snapshots(client).await?);
    }
    Ok(out)
}

/// A snapshot of a cache, as ElastiCache lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSnapshot {
    pub name: String,
    pub arn: String,
    /// The replication group, else the node, it was taken of.
    pub cache: String,
    /// `creating`, `available`, `failed`, ...
    pub status: String,
    /// `manual` (a user's, Lifeboat's among them) or `automated` (ElastiCache's own backups).
    pub source: String,
    pub tags: BTreeMap<String, String>,
    /// When ElastiCache took it: the earliest of its node snapshots' creation times (`None` when it gives none).
    pub created: Option<DateTime<Utc>>,
    /// A serverless cache's snapshot (listed, and deleted, through the serverless calls).
    pub serverless: bool,
}

impl CacheSnapshot {
    /// Lifeboat made it: the ownership tag, as on RDS snapshots.
    pub fn owned(&self) -> bool {
        self.tags.get(crate::core::tags::MANAGED).is_some_and(|v| v == "true")
    }

    /// A snapshot of the cache `id`: taken of it (or of one of its nodes, which ElastiCache reports with the
    /// group), or tagged with it by Lifeboat.
    pub fn belongs_to(&self, id: &str) -> bool {
        self.cache == id || self.tags.get(crate::core::tags::DATABASE).is_some_and(|c| c == id)
    }

    /// When Lifeboat made it (its `lifeboat:created-at` tag); `None` for a snapshot without the tag.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.tags
            .get(crate::core::tags::CREATED_AT)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    }
}

/// A cache's snapshots age by the same tags and the same rules as a database's.
impl Retained for CacheSnapshot {
    fn id(&self) -> &str {
        &self.name
    }
    fn status(&self) -> &str {
        &self.status
    }
    fn owned(&self) -> bool {
        CacheSnapshot::owned(self)
    }
    fn is_automated(&self) -> bool {
        self.source != "manual"
    }
    fn logical_time(&self) -> DateTime<Utc> {
        snapshot_tags::logical_time_of(&self.tags, None)
    }
    fn source(&self) -> Source {
        snapshot_tags::source_of(&self.tags)
    }
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        snapshot_tags::expires_at_of(&self.tags)
    }
}

/// What creating a snapshot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Started(CacheSnapshot),
    /// A snapshot of that name exists (a redelivered event): nothing new was made.
    AlreadyExists,
    /// ElastiCache refused because the cache is busy (another snapshot, a modification), with its words.
    InvalidState(String),
    QuotaExceeded(String),
}

/// Starts a snapshot of `source` named `name`, tagged with `tags`.
pub async fn create_snapshot(
    client: &Client,
    source: &SnapshotSource,
    name: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Created, Error> {
    let mut req = client.create_snapshot().snapshot_name(name);
    req = match source {
        SnapshotSource::ReplicationGroup(g) => req.replication_group_id(g),
        SnapshotSource::Node(n) => req.cache_cluster_id(n),
        SnapshotSource::Serverless(c) => return serverless::create_snapshot(client, c, name, tags).await,
    };
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(k).value(v).build());
    }
    match req.send().await {
        Ok(out) => Ok(Created::Started(snapshot_of(out.snapshot(), tags.clone()))),
        Err(e) => match e.as_service_error() {
            Some(CreateSnapshotError::SnapshotAlreadyExistsFault(_)) => Ok(Created::AlreadyExists),
            Some(CreateSnapshotError::InvalidCacheClusterStateFault(f)) => {
                Ok(Created::InvalidState(f.message().unwrap_or_default().to_owned()))
            }
            Some(CreateSnapshotError::InvalidReplicationGroupStateFault(f)) => {
                Ok(Created::InvalidState(f.message().unwrap_or_default().to_owned()))
            }
            Some(CreateSnapshotError::SnapshotQuotaExceededFault(f)) => {
                Ok(Created::QuotaExceeded(f.message().unwrap_or_default().to_owned()))
            }
            _ => Err(Error::aws("CreateSnapshot", e)),
        },
    }
}

fn snapshot_of(s: Option<&aws_sdk_elasticache::types::Snapshot>, tags: BTreeMap<String, String>) -> CacheSnapshot {
    CacheSnapshot {
        name: s.and_then(|s| s.snapshot_name()).unwrap_or_default().to_owned(),
        arn: s.and_then(|s| s.arn()).unwrap_or_default().to_owned(),
        cache: s
            .and_then(|s| s.replication_group_id().or(s.cache_cluster_id()))
            .unwrap_or_default()
            .to_owned(),
        status: s.and_then(|s| s.snapshot_status()).unwrap_or_default().to_owned(),
        source: s.and_then(|s| s.snapshot_source()).unwrap_or_default().to_owned(),
        tags,
        created: s.and_then(created_of),
        serverless: false,
    }
}

/// When ElastiCache took a snapshot: the earliest `SnapshotCreateTime` of its node snapshots (a sharded cache's
/// nodes are snapshotted one after the other; the earliest is when its data is at least as old as).
pub fn created_of(s: &aws_sdk_elasticache::types::Snapshot) -> Option<DateTime<Utc>> {
    s.node_snapshots()
        .iter()
        .filter_map(|n| crate::rds::snapshots::to_chrono(n.snapshot_create_time()))
        .min()
}

/// Every snapshot in the client's region. ElastiCache filters snapshots by nothing Lifeboat could tag, so
/// ownership is read from each snapshot's tags; only a snapshot under Lifeboat's name prefix can be Lifeboat's
/// (it names every snapshot so, and IAM lets it delete no other), so only those cost a tag call.
pub async fn list_snapshots(client: &Client) -> Result<Vec<CacheSnapshot>, Error> {
    let mut out = Vec::new();
    let mut pages = client.describe_snapshots().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("DescribeSnapshots", e))?;
        for s in page.snapshots() {
            let ours = s
                .snapshot_name()
                .is_some_and(|n| n.starts_with(&format!("{}-", crate::rds::naming::PREFIX)));
            let tags = match s.arn() {
                Some(arn) if ours => tags_of(client, arn).await?,
                _ => BTreeMap::new(),
            };
            out.push(snapshot_of(Some(s), tags));
        }
    }
    Ok(out)
}

/// Deletes a snapshot Lifeboat made; refuses any other, whatever the caller decided (the one guarded delete of
/// cache snapshots). A snapshot already gone is not an error.
pub async fn delete_snapshot(client: &Client, snap: &CacheSnapshot) -> Result<(), Error> {
    if !snap.owned() || snap.is_automated() {
        return Err(Error::PartialFailure(format!(
            "refusing to delete cache snapshot {}: Lifeboat did not make it",
            snap.name
        )));
    }
    if snap.serverless {
        return serverless::delete_snapshot(client, &snap.name).await;
    }
    match client.delete_snapshot().snapshot_name(&snap.name).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_snapshot_not_found_fault()) => Ok(()),
        Err(e) => Err(Error::aws("DeleteSnapshot", e)),
    }
}

mod serverless;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::selection::TagSelector;

    #[test]
    fn a_snapshot_was_created_when_its_earliest_node_snapshot_was() {
        use aws_sdk_elasticache::types::{NodeSnapshot, Snapshot};
        let node = |secs: i64| {
            NodeSnapshot::builder()
                .snapshot_create_time(aws_smithy_types::DateTime::from_secs(secs))
                .build()
        };
        let s = Snapshot::builder()
            .snapshot_name("console-backup")
            .node_snapshots(node(1_795_000_100))
            .node_snapshots(node(1_795_000_000))
            .node_snapshots(NodeSnapshot::builder().build())
            .build();
        assert_eq!(created_of(&s), DateTime::from_timestamp(1_795_000_000, 0));
        assert_eq!(snapshot_of(Some(&s), BTreeMap::new()).created, created_of(&s));
        assert_eq!(created_of(&Snapshot::builder().build()), None);
    }

    fn group(id: &str, cluster_mode: bool, members: &[(&str, bool)]) -> Cache {
        Cache {
            id: id.into(),
            kind: CacheKind::ReplicationGroup,
            arn: format!("arn:aws:elasticache:us-east-1:123456789012:replicationgroup:{id}"),
            engine: "valkey".into(),
            status: "available".into(),
            tags: BTreeMap::new(),
            cluster_mode,
            members: members
                .iter()
                .map(|(n, primary)| Member {
                    node: (*n).into(),
                    primary: *primary,
                })
                .collect(),
            at_rest_encryption: true,
            transit_encryption: true,
            snapshot_retention_days: 1,
            replicated: members.len() > 1,
        }
    }

    #[test]
    fn a_snapshot_comes_from_a_replica_where_one_exists() {
        let g = group(
            "sessions",
            false,
            &[("sessions-002", false), ("sessions-001", true), ("sessions-003", false)],
        );
        assert_eq!(snapshot_source(&g), SnapshotSource::Node("sessions-002".into()));
        let alone = group("jobs", false, &[("jobs-001", true)]);
        assert_eq!(snapshot_source(&alone), SnapshotSource::ReplicationGroup("jobs".into()));
        let sharded = group("cache", true, &[]);
        assert_eq!(
            snapshot_source(&sharded),
            SnapshotSource::ReplicationGroup("cache".into())
        );
        let mut node = group("single", false, &[]);
        node.kind = CacheKind::Node;
        assert_eq!(snapshot_source(&node), SnapshotSource::Node("single".into()));
    }

    /// The refusals moto cannot make: a busy group and the snapshot quota become outcomes with ElastiCache's
    /// words, anything else an error naming the call.
    #[tokio::test]
    async fn create_maps_refusals_to_outcomes() {
        use aws_sdk_elasticache::types::error::{InvalidReplicationGroupStateFault, SnapshotQuotaExceededFault};
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        let busy = mock!(Client::create_snapshot).then_error(|| {
            CreateSnapshotError::InvalidReplicationGroupStateFault(
                InvalidReplicationGroupStateFault::builder()
                    .message("Replication group is snapshotting")
                    .build(),
            )
        });
        let quota = mock!(Client::create_snapshot).then_error(|| {
            CreateSnapshotError::SnapshotQuotaExceededFault(
                SnapshotQuotaExceededFault::builder()
                    .message("quota of 20 reached")
                    .build(),
            )
        });
        let other = mock!(Client::create_snapshot).then_error(|| CreateSnapshotError::unhandled("boom"));
        let client = mock_client!(aws_sdk_elasticache, RuleMode::Sequential, [&busy, &quota, &other]);
        let source = SnapshotSource::ReplicationGroup("g".into());
        let tags = BTreeMap::new();
        assert_eq!(
            create_snapshot(&client, &source, "n", &tags).await.unwrap(),
            Created::InvalidState("Replication group is snapshotting".into())
        );
        assert_eq!(
            create_snapshot(&client, &source, "n", &tags).await.unwrap(),
            Created::QuotaExceeded("quota of 20 reached".into())
        );
        let err = create_snapshot(&client, &source, "n", &tags)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("CreateSnapshot"), "{err}");
    }

    #[test]
    fn caches_are_selected_like_databases() {
        let mut tagged = group("a", false, &[]);
        tagged.tags.insert("lifeboat:backup".into(), "TRUE".into());
        let named = group("b", false, &[]);
        let other = group("c", false, &[]);
        let all = [other, named, tagged];
        let selector = Selector {
            databases: vec!["b".into(), "nope".into()],
            tag: Some(TagSelector::parse("lifeboat:backup=true").unwrap()),
        };
        let ids: Vec<&str> = select(&all, &selector).iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }
}
