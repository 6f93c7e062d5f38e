//! Restore tests of caches, step by step as the state machine calls them (the cache branch of
//! `infra/restore-test.asl.json`): start (the newest snapshot into an isolated, encrypted replication group with
//! an AUTH token kept in the test's secret), poll, verify (`lifeboat::cache_check` over TLS), report, cleanup.
//! The rules are `lifeboat::cache_restore`'s; this file gathers facts, acts and reports. A sharded (cluster mode)
//! cache is restored with its snapshot's shards (`crate::cache_shards`) and verified through its configuration
//! endpoint and every primary (`lifeboat::cache_check::cluster`). A serverless cache (with
//! `LIFEBOAT_SERVERLESS_CACHES=true`) starts from its verified RDB copy instead ([`crate::cache_rdb`]); the steps
//! after start are the same.
//!
//! Never logs or puts in the state the AUTH token; deletes only what carries the restore-test tag (the guarded
//! delete is `cache_restore::delete_test_group`).

use std::time::Instant;

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use lifeboat::cache_check::{self, CacheTarget};
use lifeboat::cache_records::{CacheRestoreReport, RdbManifest};
use lifeboat::cache_restore::{self as rules, Deleted, Expected, GroupRequest};
use lifeboat::elasticache::{self, Cache, CacheKind};
use lifeboat::error::Error;
use lifeboat::metrics::{self, Metrics, CACHE_DIMENSION};
use lifeboat::restore::{self as db_rules, Check};
use lifeboat::selection::Selector;
use serde_json::{json, Value};

use crate::error::{poll_verdict, Ready, RestoreError};
use crate::event::{CacheTestState, Endpoint};
use crate::handler::Deps;
use crate::password;

pub(crate) fn to_value(test: &CacheTestState) -> Result<Value, RestoreError> {
    serde_json::to_value(test).map_err(RestoreError::State)
}

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
    let name = db_rules::test_secret_name(group_id);
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
    let owner = password::Owner {
        restored_id: group_id,
        database: &cache.id,
        expires,
    };
    let arn = password::store(&deps.sm, &owner, rules::AUTH_USER, &token).await?;
    let tags = rules::test_tags(&cache.id, expires);
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
            lifeboat::tags::CREATED_AT
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

/// One look at the restored group: `status` becomes `available` with the primary endpoint (a sharded group's
/// configuration endpoint) recorded; a failed
/// state or the timeout fails the test.
pub async fn poll(deps: &Deps, mut test: CacheTestState) -> Result<Value, RestoreError> {
    let id = test.group_id();
    let g = rules::group(&deps.ec, &id)
        .await?
        .ok_or_else(|| RestoreError::NotFound(format!("restored replication group {id} does not exist")))?;
    test.polls += 1;
    let now = Utc::now();
    let minutes = deps.settings.timeout_minutes;
    let progress = rules::progress(&g.status, test.requested_at, now, minutes);
    let verdict = poll_verdict(id, &g.status, progress, g.endpoint, test.requested_at, minutes)?;
    if let Some(Ready { host, port, seconds }) = verdict {
        test.timings.insert("restore".into(), seconds);
        test.endpoint = Some(Endpoint { host, port });
    }
    test.status = Some(g.status);
    to_value(&test)
}

/// The newest verified RDB copy of the cache, with its key.
pub(crate) async fn newest_manifest(deps: &Deps, cache: &str) -> Result<Option<(String, RdbManifest)>, Error> {
    let s = &deps.settings;
    let prefix = lifeboat::bucket::rdb_prefix(cache);
    let suffix = lifeboat::bucket::MANIFEST_SUFFIX;
    let Some((key, _)) = lifeboat::bucket::newest_key(&deps.s3, &s.bucket, &prefix, suffix).await? else {
        return Ok(None);
    };
    let manifest = lifeboat::bucket::get_json(&deps.s3, &s.bucket, &key).await?;
    Ok(Some((key, manifest)))
}

/// What ElastiCache says of the restored group's protection: encrypted in transit and at rest, AUTH on.
async fn protection_check(deps: &Deps, id: &str) -> Result<Check, RestoreError> {
    let g = rules::group(&deps.ec, id).await?;
    let (transit, at_rest, auth) = g.map_or((false, false, false), |g| {
        (g.transit_encryption, g.at_rest_encryption, g.auth_token_enabled)
    });
    Ok(Check::new(
        "encrypted in transit and at rest, AUTH on",
        transit && at_rest && auth,
        format!("transit encryption {transit}, at-rest encryption {at_rest}, AUTH token {auth}"),
    ))
}

/// Connects to the endpoint in the state over TLS with the test's AUTH token, and checks it: PING, keys per
/// database against the verified RDB copy of the restored snapshot (when there is one), the named keys.
pub async fn verify(deps: &Deps, mut test: CacheTestState) -> Result<Value, RestoreError> {
    let t = Instant::now();
    let s = &deps.settings.cache;
    let endpoint = test.endpoint.clone().ok_or(RestoreError::OutOfOrder(
        "cache_verify needs the restored group's endpoint (poll records it when the group is available)",
    ))?;
    let secret = test.auth_secret.as_deref().ok_or(RestoreError::OutOfOrder(
        "cache_verify needs the AUTH secret that cache_start creates (auth_secret in the test state)",
    ))?;
    let target = CacheTarget {
        host: endpoint.host,
        port: endpoint.port,
        user: None,
        password: Some(password::read(&deps.sm, secret).await?),
        tls: s.tls.clone(),
    };
    let manifest = match &test.rdb_manifest {
        Some(key) => Some((
            key.clone(),
            lifeboat::bucket::get_json(&deps.s3, &deps.settings.bucket, key).await?,
        )),
        None => newest_manifest(deps, &test.cache).await?,
    };
    let snapshot = test.snapshot.clone().unwrap_or_default();
    let expected = rules::expected_keys(manifest.as_ref().map(|(k, m)| (k.as_str(), m)), &snapshot);
    let counts = match &expected {
        Expected::Counts(c) => Some(c),
        Expected::NotCompared(_) => None,
    };
    let keys = rules::key_checks_for(&s.checks, &test.cache);
    let tolerance = s.key_tolerance_percent;
    let mut checks = match test.shards {
        Some(_) => cache_check::cluster::checks_with(&target, counts, tolerance, &keys).await,
        None => cache_check::checks_with(&target, counts, tolerance, &keys).await,
    };
    if let Expected::NotCompared(reason) = expected {
        checks.push(Check::skipped("keys per database", reason));
    }
    checks.push(protection_check(deps, &test.group_id()).await?);
    if db_rules::connected(&checks) {
        test.verified_at = Some(Utc::now());
    }
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

/// Writes the report (JSON and Markdown) and publishes the metrics; `error` is the state machine's caught error.
pub async fn report(deps: &Deps, mut test: CacheTestState, error: Option<Value>) -> Result<Value, RestoreError> {
    let group_id = test.group_id();
    let r = rules::report(&rules::ReportInput {
        cache: &test.cache,
        restored_id: &group_id,
        snapshot: test.snapshot.as_deref().zip(test.snapshot_time),
        requested_at: test.requested_at,
        verified_at: test.verified_at,
        timings: &test.timings,
        checks: &test.checks,
        error: error.as_ref().map(crate::handler::error_text),
    });
    let base = lifeboat::bucket::cache_restore_report_base(&test.cache, test.requested_at);
    let body = serde_json::to_vec_pretty(&r).map_err(RestoreError::Report)?;
    crate::handler::put_report(deps, format!("{base}.json"), body, "application/json").await?;
    let md = rules::markdown(&r).into_bytes();
    crate::handler::put_report(deps, format!("{base}.md"), md, "text/markdown; charset=utf-8").await?;
    report_metrics(&r)
        .publish(&deps.cw, &deps.settings.common.metrics_namespace, Utc::now())
        .await?;
    tracing::info!(cache = %test.cache, passed = r.passed, report = %base, "cache restore test reported");
    test.passed = Some(r.passed);
    test.report_key = Some(format!("{base}.json"));
    to_value(&test)
}

/// Deletes the test's AUTH secret and its group (only a restore-test group), and confirms the group is going.
pub async fn cleanup(deps: &Deps, mut test: CacheTestState) -> Result<Value, RestoreError> {
    let id = test.group_id();
    password::delete(&deps.sm, &id).await?;
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
