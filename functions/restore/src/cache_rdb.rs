//! The start of a serverless cache's restore test: its newest verified RDB copy (the newest manifest under
//! `exports/_caches/<cache>/rdb/`) seeds an isolated node-based replication group from the copy's files in S3; poll,
//! verify (key counts against that same manifest), report and cleanup are every cache test's
//! (`caches.rs`). Why a node-based group: `lifeboat::caches::rdb_restore`'s module doc. The rules are
//! `lifeboat::caches::rdb_restore`'s; this gathers facts and acts.

use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat::caches::elasticache::Cache;
use lifeboat::caches::rdb_restore;
use lifeboat::caches::restore as rules;
use serde_json::Value;

use crate::cache_group::{ensure_restored, newest_manifest, to_value, Seed};
use crate::deps::Deps;
use crate::error::RestoreError;
use crate::event::CacheTestState;

/// Seeds the test's group from the newest verified RDB copy of serverless cache `cache` (`snapshot`, when given,
/// must be the one that copy was made of); a copy of several shards seeds a cluster-mode group, a shard per file.
/// A cache without a verified copy fails with the reason and what to do.
pub async fn start(
    deps: &Deps,
    cache: &Cache,
    snapshot: Option<&str>,
    requested_at: DateTime<Utc>,
) -> Result<Value, RestoreError> {
    let t = Instant::now();
    let id = cache.id.as_str();
    let refused = |reason: String| RestoreError::Snapshot {
        database: id.to_owned(),
        reason,
    };
    let (key, manifest) = newest_manifest(deps, id).await?.ok_or_else(|| {
        refused(format!(
            "no verified RDB copy of serverless cache {id} under {}: a serverless cache is restore-tested from its \
             copy in S3, which the export function's copy-caches action makes (LIFEBOAT_SERVERLESS_CACHES=true); \
             run it once its newest Lifeboat snapshot is available, then test again",
            lifeboat::bucket::layout::rdb_prefix(id)
        ))
    })?;
    let seed = rdb_restore::seed_of(&deps.settings.bucket, &key, &manifest, snapshot).map_err(refused)?;
    let layout = crate::cache_shards::of_copy(deps, &key, &manifest)?;
    let group_id = rules::test_group_id(id, requested_at);
    let how = Seed {
        source: seed.source(),
        layout: layout.clone(),
        from: &seed.manifest_key,
    };
    let arn = ensure_restored(deps, cache, how, &group_id).await?;
    tracing::info!(cache = id, manifest = %key, restored = %group_id, "serverless cache restore test started from its RDB copy");
    let mut test = CacheTestState {
        snapshot: Some(seed.snapshot.clone()),
        snapshot_time: Some(seed.snapshot_time),
        shards: layout.shards,
        rdb_manifest: Some(key),
        ..CacheTestState::started(id, requested_at, group_id, arn)
    };
    test.timings.insert("start".into(), t.elapsed().as_secs_f64());
    to_value(&test)
}
