//! Caches in a monitoring run: the ElastiCache caches the same selector chooses, observed like databases (the
//! newest Lifeboat snapshot, the newest verified RDB copy, the newest cache restore-test report), published under
//! `CacheIdentifier`, with one alarm set per cache and their compliance findings. The rules are
//! `lifeboat::monitoring::caches`; this file gathers the facts.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use lifeboat::bucket::layout;
use lifeboat::caches::elasticache::{self, Cache, CacheSnapshot};
use lifeboat::caches::records::CacheRestoreReport;
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{Metrics, CACHE_DIMENSION};
use lifeboat::monitoring::caches::{self as cache_monitor, CacheFacts, CacheView};
use lifeboat::monitoring::monitor::Thresholds;
use lifeboat::watch::record::CACHE;

use crate::alarms::put_alarm;
use crate::deps::Deps;

/// What one run found over the chosen caches.
#[derive(Debug, Default)]
pub struct CacheFleet {
    pub views: Vec<CacheView>,
    pub notes: Vec<String>,
    pub wanted: BTreeSet<String>,
    pub failures: Vec<String>,
}

/// The newest cache restore-test report's time and whether it passed. A report that cannot be read as a
/// `CacheRestoreReport` counts as failed (and says so in the log), as for databases: it proves nothing.
async fn newest_restore_test(deps: &Deps, cache: &str) -> Result<Option<(DateTime<Utc>, bool)>, Error> {
    let bucket_name = &deps.settings.bucket;
    let prefix = layout::cache_restore_report_prefix(cache);
    let Some((key, t)) = layout::newest_key(&deps.s3, bucket_name, &prefix, layout::REPORT_SUFFIX).await? else {
        return Ok(None);
    };
    match layout::get_json::<CacheRestoreReport>(&deps.s3, bucket_name, &key).await {
        Ok(report) => Ok(Some((t, report.passed))),
        Err(e @ Error::Aws { .. }) => Err(e),
        Err(e) => {
            tracing::warn!(cache = %cache, key = %key, error = %e, "cache restore-test report unreadable; counted as failed");
            Ok(Some((t, false)))
        }
    }
}

/// Everything monitor reads about one cache.
async fn gather(deps: &Deps, cache: &Cache, snapshots: &[CacheSnapshot]) -> Result<CacheFacts, Error> {
    let s = &deps.settings;
    let newest_snapshot = snapshots
        .iter()
        .filter(|s| s.belongs_to(&cache.id) && s.owned() && s.status == "available")
        .filter_map(CacheSnapshot::created_at)
        .max();
    let prefix = layout::rdb_prefix(&cache.id);
    let newest_export = layout::newest_key(&deps.s3, &s.bucket, &prefix, layout::MANIFEST_SUFFIX)
        .await?
        .map(|(_, t)| t);
    Ok(CacheFacts {
        newest_snapshot,
        newest_export,
        restore_test: newest_restore_test(deps, &cache.id).await?,
    })
}

/// The caches a legacy run watches (the selector's) and what each is held to (the one policy).
pub fn legacy_targets<'a>(deps: &Deps, all: &'a [Cache]) -> Vec<(&'a Cache, Thresholds)> {
    let s = &deps.settings;
    elasticache::select(all, &s.common.selector)
        .into_iter()
        .map(|c| {
            let t = cache_monitor::legacy_thresholds(&s.policy, c.kind, s.cache_export_max_age_s);
            (c, t)
        })
        .collect()
}

/// Observes every watched cache and keeps its alarm set (one alarm per threshold it has) in place. A cache that
/// cannot be observed is reported at the end; its alarms are still put (missing data breaches).
pub async fn observe(
    deps: &Deps,
    targets: &[(&Cache, Thresholds)],
    now: DateTime<Utc>,
    metrics: &mut Metrics,
) -> Result<CacheFleet, Error> {
    let s = &deps.settings;
    let mut fleet = CacheFleet::default();
    if targets.is_empty() {
        return Ok(fleet);
    }
    // Without the snapshot listing no cache's snapshot age is known: none is published (their alarms fire on
    // missing data) and the run reports the failure.
    let snapshots = elasticache::list_all_snapshots(&deps.ec, s.serverless_caches)
        .await
        .map_err(|e| fleet.failures.push(format!("cache snapshots: {e}")));
    for (cache, thresholds) in targets {
        let Ok(snapshots) = &snapshots else {
            put_alarms(deps, cache, thresholds, &mut fleet.wanted).await?;
            continue;
        };
        match gather(deps, cache, snapshots).await {
            Ok(facts) => {
                facts.metrics(cache, now, metrics);
                fleet
                    .notes
                    .extend(facts.attention(cache, thresholds.min_retention_days));
                fleet.views.push(facts.view(cache, now));
            }
            Err(e) => fleet.failures.push(format!("cache {}: {e}", cache.id)),
        }
        // Content watch: a cache whose RDB copies are compared has its anomalies opened and counted.
        if thresholds.rdb_copy_max_age_s.is_some() {
            if let Err(e) = crate::anomalies::watch(deps, CACHE, &cache.id, metrics, &mut fleet.notes).await {
                fleet.failures.push(format!("cache {} content watch: {e}", cache.id));
            }
        }
        put_alarms(deps, cache, thresholds, &mut fleet.wanted).await?;
    }
    Ok(fleet)
}

async fn put_alarms(
    deps: &Deps,
    cache: &Cache,
    thresholds: &Thresholds,
    wanted: &mut BTreeSet<String>,
) -> Result<(), Error> {
    for spec in cache_monitor::alarm_set_for(&deps.settings.alarm_scope, &cache.id, thresholds) {
        put_alarm(deps, (CACHE_DIMENSION, &cache.id), &spec).await?;
        wanted.insert(spec.name);
    }
    Ok(())
}
