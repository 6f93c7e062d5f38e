//! The restored group of a cache's restore test, as every step that makes one needs it: the test's state as the
//! state machine carries it ([`to_value`]), a fresh AUTH token, the group restored once (a redelivered start
//! reuses it only when it is a restore test of the same cache) with its token kept in the test's own secret, and
//! the newest verified RDB copy a serverless cache's test is seeded from.
//!
//! Its own module so that the snapshot path (`caches.rs`), the RDB-copy path (`cache_rdb.rs`) and the console's
//! `restore-cache` (`cache_console.rs`) share it without importing each other. Never logs or returns the token
//! except to store it in the secret and hand it to ElastiCache.

use chrono::Utc;
use lifeboat::caches::elasticache::Cache;
use lifeboat::caches::records::RdbManifest;
use lifeboat::caches::restore::{self as rules, GroupRequest};
use lifeboat::core::error::Error;
use lifeboat::rds::restore as db_rules;
use serde_json::Value;

use crate::deps::Deps;
use crate::error::RestoreError;
use crate::event::CacheTestState;
use crate::password;

pub(crate) fn to_value(test: &CacheTestState) -> Result<Value, RestoreError> {
    serde_json::to_value(test).map_err(RestoreError::State)
}

/// A fresh AUTH token: 32 letters and digits from Secrets Manager.
pub(crate) async fn auth_token(deps: &Deps) -> Result<String, RestoreError> {
    let token = deps
        .sm
        .get_random_password()
        .password_length(32)
        .exclude_punctuation(true)
        .include_space(false)
        .send()
        .await
        .map_err(|e| Error::aws("GetRandomPassword", e))?
        .random_password()
        .map(str::to_owned)
        .unwrap_or_default();
    if rules::valid_auth_token(&token) {
        Ok(token)
    } else {
        // Never the value: it would be the token.
        Err(RestoreError::InvalidSecret(
            "GetRandomPassword returned no valid AUTH token (16 to 128 printable characters)".into(),
        ))
    }
}

/// The ARN of the test's AUTH secret that an earlier (redelivered) start created.
async fn existing_secret(deps: &Deps, group_id: &str) -> Result<String, RestoreError> {
    let name = rules::test_secret_name(group_id);
    let out = deps.sm.describe_secret().secret_id(&name).send().await;
    out.ok().and_then(|d| d.arn().map(str::to_owned)).ok_or_else(|| {
        RestoreError::InvalidSecret(format!(
            "{group_id} exists but its AUTH secret {name} does not; its cleanup (or the janitor) removes it, test again later"
        ))
    })
}

/// What a test's group is restored from: a snapshot, or (a serverless cache's test) a verified RDB copy.
pub(crate) struct Seed<'a> {
    pub source: rules::GroupSource<'a>,
    /// One node, or cluster mode with shards and a parameter group.
    pub layout: crate::cache_shards::Layout,
    /// The snapshot's name or the copy's manifest key, for the group's description.
    pub from: &'a str,
}

/// Restores `seed` into the test's group, unless a redelivered start already did (reused only when it is a
/// restore test of the same cache); answers the AUTH secret's ARN.
pub(crate) async fn ensure_restored(
    deps: &Deps,
    cache: &Cache,
    seed: Seed<'_>,
    group_id: &str,
) -> Result<String, RestoreError> {
    if let Some(g) = rules::group(&deps.ec, group_id).await? {
        rules::may_reuse(&g.tags, &cache.id).map_err(|owner| RestoreError::NameTaken {
            id: group_id.to_owned(),
            database: cache.id.clone(),
            owner,
        })?;
        return existing_secret(deps, group_id).await;
    }
    let s = &deps.settings;
    let expires = db_rules::test_expiry(Utc::now(), s.expiry_hours);
    let token = auth_token(deps).await?;
    let secret = rules::test_secret_name(group_id);
    let owner = password::Owner {
        name: &secret,
        restored_id: group_id,
        database: &cache.id,
        expires,
    };
    let arn = password::store(&deps.sm, &owner, rules::AUTH_USER, &token).await?;
    let mut tags = rules::test_tags(&cache.id, expires);
    // What verify reads back to know what the group holds (never from the state it is handed).
    tags.insert(db_rules::RESTORED_FROM.to_owned(), seed.from.to_owned());
    let security_groups: Vec<String> = s.cache.security_group.iter().cloned().collect();
    let request = GroupRequest {
        group_id,
        description: format!("Lifeboat restore test of {} from {}", cache.id, seed.from),
        source: seed.source,
        cluster_mode: seed.layout.cluster_mode(),
        shards: seed.layout.shard_count(),
        engine: Some(&cache.engine),
        node_type: &s.cache.node_type,
        subnet_group: s.cache.subnet_group.as_deref(),
        security_groups: &security_groups,
        auth_token: &token,
        tags: &tags,
    };
    rules::create_group_with(&deps.ec, &request, seed.layout.parameter_group.as_deref()).await?;
    Ok(arn)
}

/// The newest verified RDB copy of the cache, with its key.
pub(crate) async fn newest_manifest(deps: &Deps, cache: &str) -> Result<Option<(String, RdbManifest)>, Error> {
    let s = &deps.settings;
    let prefix = lifeboat::bucket::layout::rdb_prefix(cache);
    let suffix = lifeboat::bucket::layout::MANIFEST_SUFFIX;
    let Some((key, _)) = lifeboat::bucket::layout::newest_key(&deps.s3, &s.bucket, &prefix, suffix).await? else {
        return Ok(None);
    };
    let manifest = lifeboat::bucket::layout::get_json(&deps.s3, &s.bucket, &key).await?;
    Ok(Some((key, manifest)))
}
