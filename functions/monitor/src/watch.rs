//! The content watch's catch-up: each watched database's newest export of every profile, and each watched cache's
//! newest RDB copy, that has no `.watch.json` yet (the export's own run failed or never came) is watched now, so a
//! missed trigger is caught within the hour. The comparison and the write are `lifeboat::watch::run`'s; this only
//! chooses the manifests and the thresholds (the plan each resource follows, every default without one).

use lifeboat::bucket::layout;
use lifeboat::caches::elasticache::Cache;
use lifeboat::core::metrics::Metrics;
use lifeboat::monitoring::caches::CacheView;
use lifeboat::monitoring::monitor::Thresholds as MonitorThresholds;
use lifeboat::plans::membership::{plan_of, Resource};
use lifeboat::plans::store::Loaded;
use lifeboat::rds::selection::Database;
use lifeboat::watch::record::Watch;
use lifeboat::watch::run::{get_bounded, run_and_report, watch_key};
use lifeboat::watch::thresholds::{Thresholds, WatchRule};

use crate::deps::Deps;

/// The manifest keys this run watched (their records were missing).
/// Databases come first in a run, before their anomalies are opened and counted, so that a comparison written
/// here opens its anomaly in the same run.
pub async fn catch_up_databases(
    deps: &Deps,
    loaded: Option<&Loaded>,
    targets: &[(&Database, MonitorThresholds)],
    metrics: &mut Metrics,
) -> Vec<String> {
    let bucket = &deps.settings.bucket;
    let mut watched = Vec::new();
    for db in targets.iter().map(|(db, _)| *db) {
        let thresholds = thresholds(loaded, Resource::Database, &db.id, &db.tags);
        let keys = match layout::export_manifest_keys(&deps.s3, bucket, &db.id, None).await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(db = %db.id, error = %e, "content watch catch-up: exports not listed");
                continue;
            }
        };
        for key in layout::newest_per_profile(&db.id, keys.iter().map(String::as_str)).into_values() {
            if missing(deps, key).await {
                run_and_report(&deps.s3, bucket, key, thresholds.as_ref(), None, metrics).await;
                watched.push(key.to_owned());
            }
        }
    }
    watched
}

/// Caches are known only once the run has observed them, after their anomalies were counted: the caller opens
/// what a comparison written here calls for (`crate::anomalies::watch`) for each cache this returns.
pub async fn catch_up_caches(
    deps: &Deps,
    loaded: Option<&Loaded>,
    (all_caches, seen): (&[Cache], &[CacheView]),
    metrics: &mut Metrics,
) -> Vec<(String, String)> {
    let bucket = &deps.settings.bucket;
    // The caches monitor watched (and could observe) this run.
    let caches = all_caches.iter().filter(|c| seen.iter().any(|v| v.cache == c.id));
    let mut watched = Vec::new();
    for cache in caches {
        let thresholds = thresholds(loaded, Resource::Cache, &cache.id, &cache.tags);
        let prefix = layout::rdb_prefix(&cache.id);
        let newest = match layout::newest_key(&deps.s3, bucket, &prefix, layout::MANIFEST_SUFFIX).await {
            Ok(newest) => newest,
            Err(e) => {
                tracing::warn!(cache = %cache.id, error = %e, "content watch catch-up: RDB copies not listed");
                continue;
            }
        };
        if let Some((key, _)) = newest {
            if missing(deps, &key).await {
                run_and_report(&deps.s3, bucket, &key, thresholds.as_ref(), None, metrics).await;
                watched.push((cache.id.clone(), key));
            }
        }
    }
    watched
}

/// Whether a manifest has no watch record (an unreadable one counts as there: it is not overwritten anyway).
async fn missing(deps: &Deps, manifest_key: &str) -> bool {
    let Some(key) = watch_key(manifest_key) else {
        return false;
    };
    match get_bounded::<Watch>(&deps.s3, &deps.settings.bucket, &key).await {
        Ok(found) => found.is_none(),
        Err(e) => {
            tracing::warn!(key = %key, error = %e, "content watch record unreadable");
            false
        }
    }
}

/// A resource's thresholds: its plan's `watch` (every default when the plan states none, or without a plan
/// document); `None` when its plan turns the watch off.
fn thresholds(
    loaded: Option<&Loaded>,
    resource: Resource,
    id: &str,
    tags: &std::collections::BTreeMap<String, String>,
) -> Option<Thresholds> {
    let Some(loaded) = loaded else {
        return Some(Thresholds::default());
    };
    let doc = &loaded.document;
    let rule: WatchRule = match plan_of(doc, resource, id, tags) {
        Ok(Some(plan)) => doc.plans.get(plan).and_then(|p| p.watch.clone()).unwrap_or_default(),
        _ => WatchRule::default(),
    };
    rule.thresholds(id)
}
