//! Restore tests of caches, step by step as the state machine calls them (the cache branch of
//! `infra/restore-test.asl.json`): start (the newest snapshot into an isolated, encrypted replication group with
//! an AUTH token kept in the test's secret), poll, verify (`lifeboat::caches::check` over TLS), report, cleanup.
//! The rules are `lifeboat::caches::restore`'s; this file gathers facts, acts and reports. A sharded (cluster mode)
//! cache is restored with its snapshot's shards (`crate::cache_shards`) and verified through its configuration
//! endpoint and every primary (`lifeboat::caches::check::cluster`). A serverless cache (with
//! `LIFEBOAT_SERVERLESS_CACHES=true`) starts from its verified RDB copy instead ([`crate::cache_rdb`]); the steps
//! after start are the same.
//!
//! After start, a step takes from the state only the cache and the request time: the group is the one they name
//! and must be a restore test of that cache (`crate::restored::group`); verify connects to the endpoint
//! ElastiCache gives, with the AUTH token of the test's own secret (by name, tags checked), compares with the
//! snapshot or RDB copy the group's `lifeboat:restored-from` tag names, and records its checks in the bucket;
//! the report's verdict comes from that record alone.
//!
//! Never logs or puts in the state the AUTH token; deletes only what carries the restore-test tag (the guarded
//! delete is `lifeboat::caches::restore::delete_test_group`).

use std::time::Instant;

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use lifeboat::caches::check::{self as cache_check, CacheTarget};
use lifeboat::caches::elasticache::{self, Cache, CacheKind};
use lifeboat::caches::records::{CacheRestoreReport, RdbManifest};
use lifeboat::caches::restore::{self as rules, Deleted, Expected};
use lifeboat::core::metrics::{self, Metrics, CACHE_DIMENSION};
use lifeboat::rds::restore::{self as db_rules, Check};
use lifeboat::rds::selection::Selector;
use serde_json::{json, Value};

use crate::cache_group::{ensure_restored, newest_manifest, to_value, Seed};
use crate::deps::{error_text, put_report, Deps};
use crate::error::{poll_verdict, Ready, RestoreError};
use crate::event::{CacheTestState, Endpoint};
use crate::password;

/// The caches a scheduled run tests (one test each), and which of the names the selector lists are caches.
/// When ElastiCache cannot be listed the databases' tests still run: the caches asked for
/// ([`rules::unlisted_caches`] of the names that are no database) become tests that carry `plan_error`, which
/// the state machine reports as failed (report, metric, the run's verdict), never a silent skip.
pub async fn plan(
    deps: &Deps,
    selector: &Selector,
    time: DateTime<Utc>,
    not_databases: &[String],
) -> (Vec<Value>, Vec<String>) {
    let all = match elasticache::discover_all(&deps.ec, deps.settings.cache.serverless_caches).await {
        Ok(all) => all,
        Err(e) => {
            let names = rules::unlisted_caches(selector, not_databases);
            let error = format!(
                "ElastiCache could not be listed, so these caches were not tested: {e}; check the restore function's elasticache:Describe* permissions and ElastiCache's health, then run the restore test again"
            );
            tracing::error!(error = %e, caches = ?names, "ElastiCache could not be listed: caches reported as failed tests");
            let tests = names
                .iter()
                .map(|c| json!({"cache": c, "requested_at": time, "plan_error": error}))
                .collect();
            return (tests, names);
        }
    };
    let ids = all.iter().map(|c| c.id.clone()).collect();
    let tests = elasticache::select(&all, selector)
        .iter()
        .map(|c| json!({"cache": c.id, "requested_at": time}))
        .collect();
    (tests, ids)
}

pub(crate) async fn find_cache(deps: &Deps, id: &str) -> Result<Cache, RestoreError> {
    elasticache::discover_all(&deps.ec, deps.settings.cache.serverless_caches)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| RestoreError::NotFound(format!("no replication group or cache cluster `{id}` in this region")))
}

/// Restores the newest available Lifeboat snapshot of the cache (or the named one) into an isolated group.
pub async fn start(
    deps: &Deps,
    cache: &str,
    snapshot: Option<&str>,
    requested_at: DateTime<Utc>,
) -> Result<Value, RestoreError> {
    let source = find_cache(deps, cache).await?;
    start_with(deps, &source, snapshot, requested_at).await
}

/// [`start`] once the cache is found: a serverless cache is restored from its verified RDB copy
/// ([`crate::cache_rdb`]), any other from its snapshot.
pub async fn start_with(
    deps: &Deps,
    source: &Cache,
    snapshot: Option<&str>,
    requested_at: DateTime<Utc>,
) -> Result<Value, RestoreError> {
    if source.kind == CacheKind::Serverless {
        return crate::cache_rdb::start(deps, source, snapshot, requested_at).await;
    }
    let t = Instant::now();
    let cache = source.id.as_str();
    let snapshots = elasticache::list_snapshots(&deps.ec).await?;
    let chosen = rules::choose_snapshot(&snapshots, cache, snapshot).map_err(|reason| RestoreError::Snapshot {
        database: cache.to_owned(),
        reason,
    })?;
    let snapshot_time = rules::snapshot_time(chosen).ok_or_else(|| RestoreError::Snapshot {
        database: cache.to_owned(),
        reason: format!(
            "snapshot `{}` has neither Lifeboat's created-at tag nor a creation time from ElastiCache, so its RPO cannot be reported; test a snapshot Lifeboat made, or tag this one {}=<RFC 3339 time it was taken>",
            chosen.name,
            lifeboat::core::tags::CREATED_AT
        ),
    })?;
    let layout = crate::cache_shards::layout(deps, source, chosen).await?;
    let group_id = rules::test_group_id(cache, requested_at);
    let seed = Seed {
        source: rules::GroupSource::Snapshot(&chosen.name),
        layout: layout.clone(),
        from: &chosen.name,
    };
    let arn = ensure_restored(deps, source, seed, &group_id).await?;
    tracing::info!(cache, snapshot = %chosen.name, restored = %group_id, "cache restore test started");
    let mut test = CacheTestState {
        snapshot: Some(chosen.name.clone()),
        snapshot_time: Some(snapshot_time),
        shards: layout.shards,
        rdb_manifest: None,
        ..CacheTestState::started(cache, requested_at, group_id, arn)
    };
    test.timings.insert("start".into(), t.elapsed().as_secs_f64());
    to_value(&test)
}

/// The test's restored group, which must exist by now.
async fn restored_group(deps: &Deps, test: &CacheTestState) -> Result<rules::Group, RestoreError> {
    crate::restored::group(deps, test)
        .await?
        .ok_or_else(|| RestoreError::NotFound(format!("restored replication group {} does not exist", test.group_id())))
}

/// One look at the restored group (found by its derived name and tags): `status` becomes `available` with the
/// primary endpoint (a sharded group's configuration endpoint) recorded for people; a failed state or the
/// timeout fails the test.
pub async fn poll(deps: &Deps, mut test: CacheTestState) -> Result<Value, RestoreError> {
    let g = restored_group(deps, &test).await?;
    test.polls += 1;
    let now = Utc::now();
    let minutes = deps.settings.timeout_minutes;
    let progress = rules::progress(&g.status, test.requested_at, now, minutes);
    let verdict = poll_verdict(
        g.id.clone(),
        &g.status,
        progress,
        g.endpoint.clone(),
        test.requested_at,
        minutes,
    )?;
    if let Some(Ready { host, port, seconds }) = verdict {
        test.timings.insert("restore".into(), seconds);
        test.endpoint = Some(Endpoint { host, port });
    }
    test.restored_id = Some(g.id);
    test.status = Some(g.status);
    to_value(&test)
}

/// What ElastiCache says of the restored group's protection: encrypted in transit and at rest, AUTH on.
fn protection_check(g: &rules::Group) -> Check {
    let (transit, at_rest, auth) = (g.transit_encryption, g.at_rest_encryption, g.auth_token_enabled);
    Check::new(
        "encrypted in transit and at rest, AUTH on",
        transit && at_rest && auth,
        format!("transit encryption {transit}, at-rest encryption {at_rest}, AUTH token {auth}"),
    )
}

/// What the group was restored from, by its `lifeboat:restored-from` tag: a verified RDB copy's manifest (a
/// serverless cache's test) or a snapshot of the cache. Answers the snapshot and its time (when known) and the
/// counts to compare with.
async fn restored_from(
    deps: &Deps,
    cache: &str,
    g: &rules::Group,
) -> Result<(Option<(String, DateTime<Utc>)>, Expected), RestoreError> {
    let Some(from) = g.tags.get(db_rules::RESTORED_FROM) else {
        let reason = format!("{} carries no {} tag", g.id, db_rules::RESTORED_FROM);
        return Ok((None, Expected::NotCompared(reason)));
    };
    let prefix = lifeboat::bucket::layout::rdb_prefix(cache);
    if from.starts_with(&prefix) && from.ends_with(lifeboat::bucket::layout::MANIFEST_SUFFIX) {
        let m: RdbManifest = lifeboat::bucket::layout::get_json(&deps.s3, &deps.settings.bucket, from).await?;
        let expected = rules::expected_keys(Some((from, &m)), &m.snapshot);
        return Ok((Some((m.snapshot.clone(), m.snapshot_time)), expected));
    }
    let snapshots = elasticache::list_snapshots(&deps.ec).await?;
    let time = snapshots
        .iter()
        .find(|s| &s.name == from && s.cache == cache)
        .and_then(rules::snapshot_time);
    let manifest = newest_manifest(deps, cache).await?;
    let expected = rules::expected_keys(manifest.as_ref().map(|(k, m)| (k.as_str(), m)), from);
    Ok((time.map(|t| (from.clone(), t)), expected))
}

/// Connects to the endpoint ElastiCache gives for the test's own group over TLS with the AUTH token of the
/// test's own secret, and checks it: PING, keys per database against the verified RDB copy of the restored
/// snapshot (skipped, and then the test cannot pass, when there is none), the named keys, the protection;
/// records the checks in the bucket for the report.
pub async fn verify(deps: &Deps, mut test: CacheTestState) -> Result<Value, RestoreError> {
    let t = Instant::now();
    let s = &deps.settings.cache;
    let g = restored_group(deps, &test).await?;
    let (host, port) = g
        .endpoint
        .clone()
        .filter(|_| g.status == "available")
        .ok_or(RestoreError::OutOfOrder(
            "cache_verify before the restored group was available (no endpoint yet)",
        ))?;
    let (host, port) = deps.settings.redirects.reach(&host, port);
    let target = CacheTarget {
        host,
        port,
        user: None,
        password: Some(password::read_own(&deps.sm, &rules::test_secret_name(&g.id), &test.cache).await?),
        tls: s.tls.clone(),
    };
    let (snapshot, expected) = restored_from(deps, &test.cache, &g).await?;
    let counts = match &expected {
        Expected::Counts(c) => Some(c),
        Expected::NotCompared(_) => None,
    };
    let keys = rules::key_checks_for(&s.checks, &test.cache);
    let tolerance = s.key_tolerance_percent;
    let mut checks = match g.shards {
        Some(_) => cache_check::cluster::checks_with(&target, counts, tolerance, &keys).await,
        None => cache_check::checks_with(&target, counts, tolerance, &keys).await,
    };
    if let Expected::NotCompared(reason) = expected {
        checks.push(Check::skipped(cache_check::KEY_COUNT_CHECK, reason));
    }
    checks.push(protection_check(&g));
    let verified_at = db_rules::connected(&checks).then(Utc::now);
    let record = rules::CacheVerifyRecord {
        format_version: 1,
        cache: test.cache.clone(),
        restored_id: g.id.clone(),
        snapshot: snapshot.as_ref().map(|(n, _)| n.clone()),
        snapshot_time: snapshot.as_ref().map(|(_, t)| *t),
        requested_at: test.requested_at,
        verified_at,
        checks: checks.clone(),
    };
    let body = serde_json::to_vec_pretty(&record).map_err(RestoreError::Report)?;
    let key = rules::checks_record_key(&test.cache, test.requested_at);
    put_report(deps, key, body, "application/json").await?;
    test.restored_id = Some(g.id);
    test.shards = g.shards;
    test.snapshot = record.snapshot;
    test.snapshot_time = record.snapshot_time;
    test.verified_at = verified_at;
    test.checks = checks;
    test.status = Some("verified".into());
    test.timings.insert("verify".into(), t.elapsed().as_secs_f64());
    to_value(&test)
}

/// The test's metrics, per `CacheIdentifier`: success, recovery time, the restored data's age.
fn report_metrics(r: &CacheRestoreReport) -> Metrics {
    let mut m = Metrics::new();
    let dims = [(CACHE_DIMENSION, r.cache.as_str())];
    let success = f64::from(u8::from(r.passed));
    m.put(metrics::RESTORE_TEST_SUCCESS, success, StandardUnit::Count, &dims);
    if let Some(rto) = r.rto_seconds {
        m.put(metrics::RESTORE_TIME_SECONDS, rto, StandardUnit::Seconds, &dims);
    }
    if !r.snapshot.is_empty() {
        m.put(
            metrics::RESTORE_DATA_AGE_SECONDS,
            r.rpo_seconds,
            StandardUnit::Seconds,
            &dims,
        );
    }
    m
}

/// Writes the report (JSON and Markdown) and publishes the metrics; `error` is the state machine's caught error
/// (it can only fail a test). The verdict comes from the verify step's own record; without one the test failed.
pub async fn report(deps: &Deps, mut test: CacheTestState, error: Option<Value>) -> Result<Value, RestoreError> {
    let group_id = test.group_id();
    crate::restored::same_id("restored_id", test.restored_id.as_deref(), &group_id)?;
    let key = rules::checks_record_key(&test.cache, test.requested_at);
    let record: Option<rules::CacheVerifyRecord> = crate::restored::record(deps, &key).await?;
    let missing = [Check::new(
        "verify record",
        false,
        format!("no record of a verify step's checks at {key}: the restored cache was not verified"),
    )];
    let (checks, verified_at, snapshot) = match &record {
        Some(r) => (
            r.checks.as_slice(),
            r.verified_at,
            r.snapshot.as_deref().zip(r.snapshot_time),
        ),
        None => (missing.as_slice(), None, None),
    };
    let r = rules::report(&rules::ReportInput {
        cache: &test.cache,
        restored_id: &group_id,
        snapshot,
        requested_at: test.requested_at,
        verified_at,
        timings: &test.timings,
        checks,
        error: error.as_ref().map(error_text),
    });
    let base = lifeboat::bucket::layout::cache_restore_report_base(&test.cache, test.requested_at);
    let body = serde_json::to_vec_pretty(&r).map_err(RestoreError::Report)?;
    put_report(deps, format!("{base}.json"), body, "application/json").await?;
    let md = rules::markdown(&r).into_bytes();
    put_report(deps, format!("{base}.md"), md, "text/markdown; charset=utf-8").await?;
    report_metrics(&r)
        .publish(&deps.cw, &deps.settings.common.metrics_namespace, Utc::now())
        .await?;
    tracing::info!(cache = %test.cache, passed = r.passed, report = %base, "cache restore test reported");
    test.passed = Some(r.passed);
    test.report_key = Some(format!("{base}.json"));
    to_value(&test)
}

/// Deletes the test's AUTH secret and its group (only a restore-test group of this cache), and confirms the
/// group is going.
pub async fn cleanup(deps: &Deps, mut test: CacheTestState) -> Result<Value, RestoreError> {
    let id = test.group_id();
    crate::restored::same_id("restored_id", test.restored_id.as_deref(), &id)?;
    // Refused before anything is deleted when the name is taken by what is not this cache's restore test.
    crate::restored::group(deps, &test).await?;
    password::delete(&deps.sm, &rules::test_secret_name(&id)).await?;
    test.auth_secret = None;
    let outcome = rules::delete_test_group(&deps.ec, &id).await?;
    if let Some(g) = rules::group(&deps.ec, &id).await?.filter(|g| g.status != "deleting") {
        return Err(RestoreError::NotDeleted { id, status: g.status });
    }
    test.status = Some(match outcome {
        Deleted::Deleting => "deleting".into(),
        Deleted::Gone => "deleted".into(),
    });
    to_value(&test)
}
