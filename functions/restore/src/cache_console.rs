//! The console's restore of a cache: a named snapshot into a new, named replication group, encrypted in transit
//! and at rest, with a fresh AUTH token kept in its own secret (`lifeboat/restored-cache/<target>`). It is a real
//! restore: never tagged as a restore test, never cleaned up, never written as a restore-test report; the
//! invocation's result and a log line say what was started and where the token is. A sharded snapshot is restored
//! as a sharded group with its shard count and a cluster-mode parameter group (`crate::cache_shards`).
//!
//! Refuses, touching nothing: a target that exists (a replication group or a cache cluster of that name), a
//! snapshot that does not exist or is not available. When ElastiCache refuses the new group after the token's
//! secret was made, that secret is deleted again (the one it created, by the ARN it got back, with no recovery
//! window so the name is free at once): a failed restore leaves no AUTH token behind, and a retry under the same
//! target name starts clean.

use std::collections::BTreeMap;

use lifeboat::caches::elasticache;
use lifeboat::caches::restore::{self as rules, GroupRequest};
use lifeboat::core::error::Error;
use serde_json::{json, Value};

use crate::deps::Deps;
use crate::error::RestoreError;
use crate::event::CacheRestore;

/// Where a console restore's AUTH token is kept.
pub const SECRET_PREFIX: &str = "lifeboat/restored-cache/";

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

/// Creates the group; when ElastiCache refuses it, deletes the token's secret this restore just created (`arn`,
/// never a name from the event) and answers the refusal. A secret that cannot be deleted is logged with the
/// refusal: the refusal is what the caller must hear.
async fn create_or_discard_token(
    deps: &Deps,
    request: &GroupRequest<'_>,
    parameter_group: Option<&str>,
    arn: &str,
) -> Result<(), RestoreError> {
    let Err(refused) = rules::create_group_with(&deps.ec, request, parameter_group).await else {
        return Ok(());
    };
    let deleted = deps
        .sm
        .delete_secret()
        .secret_id(arn)
        .force_delete_without_recovery(true)
        .send()
        .await;
    match deleted {
        Ok(_) => tracing::warn!(target = %request.group_id, secret = %arn, "group refused; its AUTH secret deleted"),
        Err(e) => tracing::error!(target = %request.group_id, secret = %arn, error = %Error::aws("DeleteSecret", e),
            "group refused, and its AUTH secret could not be deleted"),
    }
    Err(refused.into())
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
    let token = crate::cache_group::auth_token(deps).await?;
    let arn = store_token(deps, &r, &cache, &token).await?;
    let s = &deps.settings.cache;
    let security_groups = r
        .security_groups
        .clone()
        .unwrap_or_else(|| s.security_group.iter().cloned().collect());
    let tags = BTreeMap::from([
        (rules::SOURCE_CACHE.to_owned(), cache.clone()),
        (
            lifeboat::core::tags::REASON.to_owned(),
            lifeboat::rds::snapshot_tags::tag_value(&r.reason),
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
    create_or_discard_token(deps, &request, layout.parameter_group.as_deref(), &arn).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticache::operation::create_replication_group::{
        CreateReplicationGroupError, CreateReplicationGroupOutput,
    };
    use aws_sdk_elasticache::types::error::InsufficientCacheClusterCapacityFault;
    use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretOutput;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

    const ARN: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:lifeboat/restored-cache/sessions-new-AbCdEf";

    fn deps(ec: aws_sdk_elasticache::Client, sm: aws_sdk_secretsmanager::Client) -> Deps {
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
            ec: ec.into(),
            sm: sm.into(),
            ..Deps::new(&config, settings)
        }
    }

    fn request<'a>(tags: &'a BTreeMap<String, String>, groups: &'a [String]) -> GroupRequest<'a> {
        GroupRequest {
            group_id: "sessions-new",
            description: "Restored by Lifeboat".to_owned(),
            source: rules::GroupSource::Snapshot("lifeboat-sessions-20261129-0300"),
            cluster_mode: false,
            shards: 1,
            engine: None,
            node_type: "cache.t4g.micro",
            subnet_group: None,
            security_groups: groups,
            auth_token: "a-token-of-thirty-two-characters",
            tags,
        }
    }

    fn delete_rule() -> Rule {
        mock!(aws_sdk_secretsmanager::Client::delete_secret)
            .match_requests(|r| r.secret_id() == Some(ARN) && r.force_delete_without_recovery() == Some(true))
            .then_output(|| DeleteSecretOutput::builder().build())
    }

    /// Issue 22, item 13: a refused group used to leave `lifeboat/restored-cache/<target>` behind, and the next
    /// try under the same name failed on the secret that already existed.
    #[tokio::test]
    async fn a_refused_group_takes_its_auth_secret_with_it_at_once() {
        let refused = mock!(aws_sdk_elasticache::Client::create_replication_group).then_error(|| {
            CreateReplicationGroupError::InsufficientCacheClusterCapacityFault(
                InsufficientCacheClusterCapacityFault::builder()
                    .message("no cache.t4g.micro capacity")
                    .build(),
            )
        });
        let delete = delete_rule();
        let ec = mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, [&refused]);
        let sm = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&delete]);
        let deps = deps(ec, sm);
        let tags = BTreeMap::new();
        let err = create_or_discard_token(&deps, &request(&tags, &[]), None, ARN)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no cache.t4g.micro capacity"), "{err}");
        assert_eq!(
            delete.num_calls(),
            1,
            "the secret it created is deleted, without a recovery window"
        );
    }

    #[tokio::test]
    async fn a_started_group_keeps_its_auth_secret() {
        let created = mock!(aws_sdk_elasticache::Client::create_replication_group)
            .then_output(|| CreateReplicationGroupOutput::builder().build());
        let delete = delete_rule();
        let ec = mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, [&created]);
        let sm = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&delete]);
        let deps = deps(ec, sm);
        let tags = BTreeMap::new();
        create_or_discard_token(&deps, &request(&tags, &[]), None, ARN)
            .await
            .unwrap();
        assert_eq!(delete.num_calls(), 0);
    }
}
