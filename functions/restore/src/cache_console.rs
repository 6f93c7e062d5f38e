//! The console's restore of a cache: a named snapshot into a new, named replication group, encrypted in transit
//! and at rest, with a fresh AUTH token kept in its own secret (`lifeboat/restored-cache/<target>`). It is a real
//! restore: never tagged as a restore test, never cleaned up, never written as a restore-test report; the
//! invocation's result and a log line say what was started and where the token is. A sharded snapshot is restored
//! as a sharded group with its shard count and a cluster-mode parameter group (`crate::cache_shards`).
//!
//! Refuses, touching nothing: a target that exists (a replication group or a cache cluster of that name), a
//! snapshot that does not exist or is not available.

use std::collections::BTreeMap;

use lifeboat::cache_restore::{self as rules, GroupRequest};
use lifeboat::elasticache;
use lifeboat::error::Error;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::RestoreError;
use crate::handler::Deps;

/// Where a console restore's AUTH token is kept.
pub const SECRET_PREFIX: &str = "lifeboat/restored-cache/";

/// `{"action": "restore-cache", "snapshot": ..., "target": ..., "node_type": ..., "reason": ...}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRestore {
    /// The ElastiCache snapshot to restore (any available snapshot, Lifeboat's or not).
    pub snapshot: String,
    /// The new replication group's identifier. Never an existing one.
    pub target: String,
    /// The node type of the new group (the source's, for a replacement).
    pub node_type: String,
    /// Default: the restore-test cache subnet group (LIFEBOAT_CACHE_RESTORE_SUBNET_GROUP).
    #[serde(default)]
    pub subnet_group: Option<String>,
    /// Default: the restore-test cache security group (admits only the restore function).
    #[serde(default)]
    pub security_groups: Option<Vec<String>>,
    /// Why, in the new group's tags.
    pub reason: String,
}

impl CacheRestore {
    pub fn validate(&self) -> Result<(), Error> {
        rules::validate_group_id(&self.target)
            .map_err(|r| Error::InvalidEvent(format!("restore-cache: target `{}` {r}", self.target)))?;
        if self.reason.trim().is_empty() {
            return Err(Error::InvalidEvent(
                "restore-cache: give a `reason` (it goes in the tags)".into(),
            ));
        }
        Ok(())
    }
}

/// Whether a replication group or a cache cluster of that identifier exists.
async fn taken(deps: &Deps, id: &str) -> Result<bool, RestoreError> {
    if rules::group(&deps.ec, id).await?.is_some() {
        return Ok(true);
    }
    Ok(elasticache::discover(&deps.ec).await?.iter().any(|c| c.id == id))
}

/// Creates the secret holding the new group's AUTH token; answers its ARN.
async fn store_token(deps: &Deps, r: &CacheRestore, cache: &str, token: &str) -> Result<String, RestoreError> {
    let name = format!("{SECRET_PREFIX}{}", r.target);
    let value = json!({"username": rules::AUTH_USER, "password": token}).to_string();
    let tag = |k: &str, v: &str| aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build();
    let out = deps
        .sm
        .create_secret()
        .name(&name)
        .description(format!(
            "AUTH token of {}, restored by Lifeboat from snapshot {}",
            r.target, r.snapshot
        ))
        .secret_string(value)
        .tags(tag(rules::SOURCE_CACHE, cache))
        .send()
        .await
        .map_err(|e| Error::aws("CreateSecret", e))?;
    out.arn()
        .map(str::to_owned)
        .ok_or_else(|| RestoreError::InvalidSecret(format!("Secrets Manager returned no ARN for {name}")))
}

/// Restores the snapshot into the new group and answers at once (ElastiCache takes minutes; the answer says
/// how to follow it).
pub async fn restore(deps: &Deps, r: CacheRestore) -> Result<Value, RestoreError> {
    let snapshots = elasticache::list_snapshots(&deps.ec).await?;
    let snap = snapshots
        .iter()
        .find(|s| s.name == r.snapshot)
        .ok_or_else(|| RestoreError::NotFound(format!("no cache snapshot `{}` in this region", r.snapshot)))?;
    let cache = snap.cache.clone();
    rules::choose_snapshot(&snapshots, &cache, Some(&r.snapshot)).map_err(|reason| RestoreError::Snapshot {
        database: cache.clone(),
        reason,
    })?;
    if taken(deps, &r.target).await? {
        return Err(RestoreError::TargetExists(r.target.clone()));
    }
    let layout = crate::cache_shards::console_layout(deps, snap).await?;
    let token = crate::caches::auth_token(deps).await?;
    let arn = store_token(deps, &r, &cache, &token).await?;
    let s = &deps.settings.cache;
    let security_groups = r
        .security_groups
        .clone()
        .unwrap_or_else(|| s.security_group.iter().cloned().collect());
    let tags = BTreeMap::from([
        (rules::SOURCE_CACHE.to_owned(), cache.clone()),
        (
            lifeboat::tags::REASON.to_owned(),
            lifeboat::snapshot_tags::tag_value(&r.reason),
        ),
    ]);
    let request = GroupRequest {
        group_id: &r.target,
        description: format!("Restored by Lifeboat from {}: {}", r.snapshot, r.reason),
        source: rules::GroupSource::Snapshot(&r.snapshot),
        cluster_mode: layout.cluster_mode(),
        shards: layout.shard_count(),
        engine: None,
        node_type: &r.node_type,
        subnet_group: r.subnet_group.as_deref().or(s.subnet_group.as_deref()),
        security_groups: &security_groups,
        auth_token: &token,
        tags: &tags,
    };
    rules::create_group_with(&deps.ec, &request, layout.parameter_group.as_deref()).await?;
    tracing::info!(target = %r.target, snapshot = %r.snapshot, cache = %cache, reason = %r.reason, "cache restore started");
    Ok(json!({
        "target": r.target,
        "snapshot": r.snapshot,
        "cache": cache,
        "status": "creating",
        "shards": layout.shards,
        "auth_secret": arn,
        "next": format!("aws elasticache describe-replication-groups --replication-group-id {} (available: connect over TLS with the AUTH token in {arn})", r.target),
    }))
}
