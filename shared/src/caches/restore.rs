//! Restore tests of caches (and console restores of a cache snapshot): which snapshot is restored, what the
//! restored replication group is called and how it is made (isolated, encrypted in transit and at rest, an AUTH
//! token, one small node, tagged and expiring), what its status means, which counts and keys it is checked
//! against, the report's verdict; and the thin ElastiCache adapter that creates, describes and deletes restored
//! groups, with the one guarded delete (the restore-test tag) that the test's cleanup and the janitor share.
//!
//! Owns the rules of cache restore tests. Never: deletes a group without the restore-test tag, logs or returns
//! an AUTH token, or decides how a cache is checked (that is [`crate::caches::check`]).

use std::collections::BTreeMap;

use aws_sdk_elasticache::types::{ClusterMode, ReplicationGroup, Tag};
use aws_sdk_elasticache::Client;
use chrono::{DateTime, Utc};

use crate::caches::check::KeyCheck;
use crate::caches::elasticache::CacheSnapshot;
use crate::caches::rdb::DbKeys;
use crate::caches::records::{CacheCheckResult, CacheRestoreReport, RdbManifest, FORMAT_VERSION};
use crate::core::error::Error;
use crate::rds::restore::{is_restore_test, Check, CheckResult, Progress, EXPIRES_AT, RESTORE_TEST};
use crate::rds::retention::Retained;

/// ElastiCache's longest replication group identifier.
pub const MAX_GROUP_ID_LEN: usize = 40;
/// Every restore-test group's identifier starts so; IAM lets the restore function create and delete no other.
pub const TEST_GROUP_PREFIX: &str = "lifeboat-rt-";
/// The tag naming the cache a restored group was restored from.
pub const SOURCE_CACHE: &str = "lifeboat:source-cache";
/// The user an AUTH token logs in as (Redis's `default` user).
pub const AUTH_USER: &str = "default";

/// What a cache verify step ran and found, written by the step itself to [`checks_record_key`] and read back by
/// the report step, whose verdict comes from it alone (checks in the state are ignored).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheVerifyRecord {
    pub format_version: u32,
    pub cache: String,
    pub restored_id: String,
    /// The snapshot the group was restored from (from its tags and ElastiCache or the RDB copy's manifest), and
    /// when it was taken; `None` when unknown.
    pub snapshot: Option<String>,
    pub snapshot_time: Option<DateTime<Utc>>,
    pub requested_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub checks: Vec<Check>,
}

/// Where a cache restore test's verify step records its checks:
/// `reports/cache-restore-tests/<cache>/<stamp>.checks.json` (never taken for a report: no time in its name).
pub fn checks_record_key(cache: &str, requested_at: DateTime<Utc>) -> String {
    format!(
        "{}.checks.json",
        crate::bucket::layout::cache_restore_report_base(cache, requested_at)
    )
}

/// The restore-test group of `cache` requested at `at`: `lifeboat-rt-<cache>-<yyyymmddhhmm>`, within
/// ElastiCache's 40 characters, never with two hyphens in a row or a trailing one. A long cache name is shortened
/// by [`crate::rds::naming::shorten`] (a head and a hash of the whole name), so two long names never collide.
pub fn test_group_id(cache: &str, at: DateTime<Utc>) -> String {
    let stamp = at.format("%Y%m%d%H%M").to_string();
    let room = MAX_GROUP_ID_LEN - TEST_GROUP_PREFIX.len() - 1 - stamp.len();
    let part = crate::rds::naming::shorten(&cache.to_ascii_lowercase(), room);
    let mut id = format!("{TEST_GROUP_PREFIX}{part}-{stamp}");
    while id.contains("--") {
        id = id.replace("--", "-");
    }
    id
}

/// The secret holding a cache restore test's AUTH token: `lifeboat/restore-test/cache/<group>`. Apart from a
/// database's test secret (`lifeboat/restore-test/<restored id>`): a database and a cache may share a name, and
/// a scheduled run starts both tests at the same moment, so their restored identifiers are the same.
pub fn test_secret_name(group: &str) -> String {
    format!("{}cache/{group}", crate::rds::restore::TEST_SECRET_PREFIX)
}

/// Whether `id` may name a new replication group: 1 to 40 lowercase letters, digits and hyphens, starting with
/// a letter, no two hyphens in a row, no trailing hyphen. `Err` says what is wrong.
pub fn validate_group_id(id: &str) -> Result<(), String> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if id.is_empty() || id.len() > MAX_GROUP_ID_LEN {
        Err(format!("must be 1 to {MAX_GROUP_ID_LEN} characters"))
    } else if !ok_chars {
        Err("may hold only lowercase letters, digits and hyphens".into())
    } else if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        Err("must start with a letter".into())
    } else if id.contains("--") || id.ends_with('-') {
        Err("must not hold two hyphens in a row or end with one".into())
    } else {
        Ok(())
    }
}

/// The tags of a restore-test group: the restore-test mark, its source cache and its expiry (for the janitor).
pub fn test_tags(cache: &str, expires: DateTime<Utc>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (RESTORE_TEST.to_owned(), "true".to_owned()),
        (SOURCE_CACHE.to_owned(), cache.to_owned()),
        (EXPIRES_AT.to_owned(), expires.to_rfc3339()),
    ])
}

/// Whether `start` may go on with a group that already carries its test's name (a redelivered start): only a
/// restore test of the same cache. `Err` holds the cache it belongs to, `None` when it is no restore test.
pub fn may_reuse(tags: &BTreeMap<String, String>, cache: &str) -> Result<(), Option<String>> {
    match tags.get(SOURCE_CACHE).filter(|_| is_restore_test(tags)) {
        Some(s) if s == cache => Ok(()),
        other => Err(other.cloned()),
    }
}

/// Stands in the report and metrics for the caches a tag selects when ElastiCache could not be listed (their
/// names are then unknown).
pub const UNLISTED_CACHES: &str = "elasticache";

/// The caches a run reports as failed tests when ElastiCache could not be listed, so that the databases' tests
/// still run and the fault stays loud: every name the selector lists that is no database (it may be a cache),
/// and [`UNLISTED_CACHES`] for the caches a tag would have selected. Empty when the selector lists only
/// databases (no cache was asked for).
pub fn unlisted_caches(selector: &crate::rds::selection::Selector, not_databases: &[String]) -> Vec<String> {
    let mut out: Vec<String> = selector
        .databases
        .iter()
        .filter(|n| not_databases.contains(n))
        .cloned()
        .collect();
    if selector.tag.is_some() {
        out.push(UNLISTED_CACHES.to_owned());
    }
    out.sort();
    out.dedup();
    out
}

/// Whether a snapshot is of `cache`: taken of it (or of one of its nodes, which ElastiCache records under the
/// group), or tagged by Lifeboat as its.
fn of_cache(s: &CacheSnapshot, cache: &str) -> bool {
    s.cache == cache || s.tags.get(crate::core::tags::DATABASE).is_some_and(|d| d == cache)
}

/// The snapshot a restore test restores: the named one (it must be of the cache and available), else the newest
/// available snapshot Lifeboat made of the cache. `Err` says why there is none, for the failed test's report.
pub fn choose_snapshot<'a>(
    snapshots: &'a [CacheSnapshot],
    cache: &str,
    named: Option<&str>,
) -> Result<&'a CacheSnapshot, String> {
    if let Some(name) = named {
        let s = snapshots
            .iter()
            .find(|s| s.name == name && of_cache(s, cache))
            .ok_or_else(|| format!("no snapshot `{name}` of {cache}"))?;
        return if s.status == "available" {
            Ok(s)
        } else {
            Err(format!("snapshot `{name}` is {}, not available", s.status))
        };
    }
    snapshots
        .iter()
        .filter(|s| of_cache(s, cache) && s.owned() && s.status == "available")
        .max_by(|a, b| a.logical_time().cmp(&b.logical_time()).then_with(|| a.name.cmp(&b.name)))
        .ok_or_else(|| {
            format!("no available snapshot of {cache} made by Lifeboat (the snapshot function makes them; is the cache selected?)")
        })
}

/// When a snapshot's data was taken, for the RPO: Lifeboat's `created-at` tag (its schedule time), else the time
/// ElastiCache took it (a console or named snapshot); `None` when neither is known (never a made-up time: the
/// caller refuses to test a snapshot whose RPO it cannot report).
pub fn snapshot_time(s: &CacheSnapshot) -> Option<DateTime<Utc>> {
    s.tags
        .get(crate::core::tags::CREATED_AT)
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|t| t.with_timezone(&Utc))
        .or(s.created)
}

/// Replication group statuses in which a restore has ended without a usable cache (`deleting`: someone else
/// is removing it).
pub const FAILED_STATES: [&str; 4] = ["create-failed", "restore-failed", "incompatible-network", "deleting"];

/// One look at a restored group: `available` ends the wait, a failed state fails the test, anything else
/// (`creating`, `modifying`, `snapshotting`) waits until the limit.
pub fn progress(status: &str, requested_at: DateTime<Utc>, now: DateTime<Utc>, limit_minutes: u32) -> Progress {
    if FAILED_STATES.contains(&status) {
        Progress::Failed
    } else if status == "available" {
        Progress::Available
    } else if crate::rds::restore::timed_out(requested_at, now, limit_minutes) {
        Progress::TimedOut
    } else {
        Progress::Restoring
    }
}

/// Whether a string may be an ElastiCache AUTH token: 16 to 128 printable ASCII characters without `@`, `"`, `/`
/// or a space.
pub fn valid_auth_token(token: &str) -> bool {
    (16..=128).contains(&token.len())
        && token
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '@' | '"' | '/'))
}

/// What the key counts of a restored cache are compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// The verified RDB copy of the restored snapshot: keys per database.
    Counts(BTreeMap<u64, DbKeys>),
    /// Nothing comparable; the reason is reported as a skipped check.
    NotCompared(String),
}

/// The counts a restored snapshot is checked against: the newest RDB copy's manifest, when it was copied from
/// that very snapshot (another snapshot holds other data, so its counts would prove nothing).
pub fn expected_keys(manifest: Option<(&str, &RdbManifest)>, snapshot: &str) -> Expected {
    match manifest {
        None => Expected::NotCompared("no verified RDB copy of this cache in the bucket".into()),
        Some((key, m)) if m.snapshot != snapshot => Expected::NotCompared(format!(
            "the newest verified RDB copy ({key}) is of snapshot {}, not of the restored {snapshot}",
            m.snapshot
        )),
        Some((_, m)) => Expected::Counts(
            m.keys_per_db()
                .into_iter()
                .map(|(db, keys)| (db, DbKeys { keys, expires: 0 }))
                .collect(),
        ),
    }
}

/// The named keys checked on a restored cache: those configured for every cache (`"*"`), then the cache's own.
pub fn key_checks_for(config: &BTreeMap<String, Vec<KeyCheck>>, cache: &str) -> Vec<KeyCheck> {
    ["*", cache]
        .iter()
        .filter_map(|k| config.get(*k))
        .flatten()
        .cloned()
        .collect()
}

/// What a cache restore test knows when it reports.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub cache: &'a str,
    pub restored_id: &'a str,
    /// `None` when no snapshot could be chosen.
    pub snapshot: Option<(&'a str, DateTime<Utc>)>,
    pub requested_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub timings: &'a BTreeMap<String, f64>,
    pub checks: &'a [Check],
    pub error: Option<String>,
}

/// The report: passed when no step failed, the cache was verified, no check failed and the key counts were
/// compared. A skipped check is reported with `skipped:` in front of its detail (the record has no third state):
/// as passed, except the key-count check ([`crate::caches::check::KEY_COUNT_CHECK`]), which is reported as not
/// passed, since a cache that only answered `PING` proves nothing of its data. Without a snapshot the data's age
/// is 0 and the snapshot empty, and the error says why.
pub fn report(input: &ReportInput<'_>) -> CacheRestoreReport {
    let verified = input.verified_at.is_some();
    let passed = crate::rds::restore::test_passed(input.checks, verified, input.error.is_some())
        && !input.checks.iter().any(key_count_skipped);
    let (snapshot, snapshot_time) = input.snapshot.unwrap_or(("", input.requested_at));
    let (rto, rpo) = crate::rds::restore::rto_rpo(
        input.requested_at,
        input.verified_at.unwrap_or(input.requested_at),
        snapshot_time,
    );
    CacheRestoreReport {
        format_version: FORMAT_VERSION,
        lifeboat_version: crate::core::VERSION.to_owned(),
        cache: input.cache.to_owned(),
        restored_id: input.restored_id.to_owned(),
        snapshot: snapshot.to_owned(),
        snapshot_time,
        requested_at: input.requested_at,
        verified_at: input.verified_at,
        passed,
        rto_seconds: verified.then_some(rto),
        rpo_seconds: rpo,
        timings_seconds: input.timings.clone(),
        checks: input.checks.iter().map(check_result).collect(),
        error: input.error.clone(),
    }
}

/// A key-count check that could not run: the test cannot pass with it.
fn key_count_skipped(c: &Check) -> bool {
    c.result == CheckResult::Skipped && c.name == crate::caches::check::KEY_COUNT_CHECK
}

fn check_result(c: &Check) -> CacheCheckResult {
    CacheCheckResult {
        name: c.name.clone(),
        passed: c.result != CheckResult::Failed && !key_count_skipped(c),
        detail: match c.result {
            CheckResult::Skipped => format!("skipped: {}", c.detail),
            _ => c.detail.clone(),
        },
    }
}

/// The report as a short Markdown page.
pub fn markdown(r: &CacheRestoreReport) -> String {
    let mut out = format!(
        "# Restore test of cache {}: {}\n\n- snapshot: {} ({})\n- restored into: {}\n- requested: {}\n",
        r.cache,
        if r.passed { "PASSED" } else { "FAILED" },
        if r.snapshot.is_empty() { "none" } else { &r.snapshot },
        r.snapshot_time.to_rfc3339(),
        r.restored_id,
        r.requested_at.to_rfc3339(),
    );
    if let Some(rto) = r.rto_seconds {
        out.push_str(&format!("- RTO: {rto:.0} s\n"));
    }
    out.push_str(&format!("- RPO: {:.0} s\n", r.rpo_seconds));
    if let Some(e) = &r.error {
        out.push_str(&format!("- error: {e}\n"));
    }
    out.push_str("\n| check | result | detail |\n|---|---|---|\n");
    for c in &r.checks {
        let result = match (c.passed, c.detail.starts_with("skipped:")) {
            (true, _) => "passed",
            (false, true) => "**SKIPPED** (the test cannot pass without it)",
            (false, false) => "FAILED",
        };
        out.push_str(&format!(
            "| {} | {result} | {} |\n",
            c.name,
            c.detail.replace('|', "\\|")
        ));
    }
    out
}

/// What a restored group is seeded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSource<'a> {
    /// An ElastiCache snapshot, by name.
    Snapshot(&'a str),
    /// RDB files in S3 (`arn:aws:s3:::bucket/key`), one per shard: a verified RDB copy (how a serverless cache's
    /// data is restore-tested, and how a cache is seeded from a copy).
    Rdb(Vec<String>),
}

impl GroupSource<'_> {
    /// The source as a report or log names it: the snapshot's name, or the first RDB file's ARN.
    pub fn name(&self) -> &str {
        match self {
            Self::Snapshot(name) => name,
            Self::Rdb(arns) => arns.first().map_or("", String::as_str),
        }
    }
}

/// A replication group to create from a snapshot or from RDB files.
#[derive(Clone)]
pub struct GroupRequest<'a> {
    pub group_id: &'a str,
    pub description: String,
    pub source: GroupSource<'a>,
    /// Cluster mode on (a sharded group, as the source cache is): `shards` node groups without replicas. Off: one
    /// node.
    pub cluster_mode: bool,
    /// Node groups (shards) of a cluster-mode group, as the snapshot (or the RDB copy) has; ignored with cluster
    /// mode off.
    pub shards: u32,
    pub engine: Option<&'a str>,
    pub node_type: &'a str,
    pub subnet_group: Option<&'a str>,
    pub security_groups: &'a [String],
    pub auth_token: &'a str,
    pub tags: &'a BTreeMap<String, String>,
}

impl std::fmt::Debug for GroupRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupRequest")
            .field("group_id", &self.group_id)
            .field("source", &self.source)
            .field("cluster_mode", &self.cluster_mode)
            .field("shards", &self.shards)
            .field("node_type", &self.node_type)
            .field("auth_token", &"<secret>")
            .finish_non_exhaustive()
    }
}

/// The parameter group a cluster-mode group is created with. ElastiCache creates a group with the engine's
/// default parameter group when none is named, and that default has cluster mode off, so a sharded group must
/// name one whose `cluster-enabled` is `yes`: the configured one (`setting`), else ElastiCache's default
/// cluster-mode group of the snapshot's engine and version, `default.<family>.cluster.on` (`default.redis7.cluster.on`,
/// `default.redis6.x.cluster.on`, `default.valkey8.cluster.on`, ...). `None` when neither is known (a version
/// too old for cluster mode or unreadable): the caller says so.
pub fn cluster_parameter_group(setting: Option<&str>, engine: &str, version: &str) -> Option<String> {
    if let Some(name) = setting.filter(|s| !s.trim().is_empty()) {
        return Some(name.to_owned());
    }
    let mut parts = version.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().and_then(Result::ok);
    let family = match (engine, major, minor) {
        ("valkey", m, _) if m >= 7 => format!("valkey{m}"),
        ("redis", m, _) if m >= 7 => format!("redis{m}"),
        ("redis", 6, _) => "redis6.x".to_owned(),
        ("redis", 4 | 5, Some(0)) => format!("redis{major}.0"),
        ("redis", 3, Some(2)) => "redis3.2".to_owned(),
        _ => return None,
    };
    Some(format!("default.{family}.cluster.on"))
}

/// Creates the group: one node of the small type, no replica, no failover, encrypted in transit and at rest,
/// the AUTH token, no automatic backups, in the given subnet group and security groups, tagged.
pub async fn create_group(client: &Client, req: &GroupRequest<'_>) -> Result<(), Error> {
    create_group_with(client, req, None).await
}

/// [`create_group`] with a cache parameter group (a sharded group's: [`cluster_parameter_group`]); `None` leaves
/// ElastiCache's default for the engine.
pub async fn create_group_with(
    client: &Client,
    req: &GroupRequest<'_>,
    parameter_group: Option<&str>,
) -> Result<(), Error> {
    let mut call = client
        .create_replication_group()
        .replication_group_id(req.group_id)
        .replication_group_description(&req.description)
        .cache_node_type(req.node_type)
        .automatic_failover_enabled(false)
        .multi_az_enabled(false)
        .transit_encryption_enabled(true)
        .at_rest_encryption_enabled(true)
        .auth_token(req.auth_token)
        .snapshot_retention_limit(0)
        .set_engine(req.engine.map(str::to_owned))
        .set_cache_parameter_group_name(parameter_group.map(str::to_owned))
        .set_cache_subnet_group_name(req.subnet_group.map(str::to_owned))
        .set_security_group_ids((!req.security_groups.is_empty()).then(|| req.security_groups.to_vec()));
    call = match &req.source {
        GroupSource::Snapshot(name) => call.snapshot_name(*name),
        GroupSource::Rdb(arns) => call.set_snapshot_arns(Some(arns.clone())),
    };
    call = if req.cluster_mode {
        call.cluster_mode(ClusterMode::Enabled)
            .num_node_groups(i32::try_from(req.shards.max(1)).unwrap_or(i32::MAX))
            .replicas_per_node_group(0)
    } else {
        call.num_cache_clusters(1)
    };
    for (k, v) in req.tags {
        call = call.tags(Tag::builder().key(k).value(v).build());
    }
    call.send().await.map_err(|e| Error::aws("CreateReplicationGroup", e))?;
    Ok(())
}

/// A replication group as a restore test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub status: String,
    /// The primary endpoint (address, port), once ElastiCache gives one; a cluster-mode group's configuration
    /// endpoint (it has no primary endpoint: its clients ask it for the shards' primaries).
    pub endpoint: Option<(String, u16)>,
    pub tags: BTreeMap<String, String>,
    pub transit_encryption: bool,
    pub at_rest_encryption: bool,
    pub auth_token_enabled: bool,
    pub node_type: String,
    /// Cluster mode on: its shards (node groups); `None` with cluster mode off.
    pub shards: Option<u32>,
}

fn endpoint_of(g: &ReplicationGroup) -> Option<(String, u16)> {
    let primary = g.node_groups().first().and_then(|n| n.primary_endpoint());
    let e = if g.cluster_enabled() == Some(true) {
        g.configuration_endpoint().or(primary)?
    } else {
        primary.or(g.configuration_endpoint())?
    };
    Some((e.address()?.to_owned(), u16::try_from(e.port()?).ok()?))
}

async fn tags_of(client: &Client, arn: &str) -> Result<BTreeMap<String, String>, Error> {
    let out = client
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| Error::aws("ListTagsForResource", e))?;
    Ok(out
        .tag_list()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect())
}

async fn group_of(client: &Client, g: &ReplicationGroup) -> Result<Group, Error> {
    let tags = match g.arn() {
        Some(arn) => tags_of(client, arn).await?,
        None => BTreeMap::new(),
    };
    Ok(Group {
        id: g.replication_group_id().unwrap_or_default().to_owned(),
        status: g.status().unwrap_or_default().to_owned(),
        endpoint: endpoint_of(g),
        tags,
        transit_encryption: g.transit_encryption_enabled().unwrap_or(false),
        at_rest_encryption: g.at_rest_encryption_enabled().unwrap_or(false),
        auth_token_enabled: g.auth_token_enabled().unwrap_or(false),
        node_type: g.cache_node_type().unwrap_or_default().to_owned(),
        shards: (g.cluster_enabled() == Some(true)).then(|| u32::try_from(g.node_groups().len()).unwrap_or(u32::MAX)),
    })
}

/// The replication group of that identifier, with its tags; `None` when there is none.
pub async fn group(client: &Client, id: &str) -> Result<Option<Group>, Error> {
    let out = client
        .describe_replication_groups()
        .replication_group_id(id)
        .send()
        .await;
    match out {
        Ok(out) => match out.replication_groups().first() {
            Some(g) => Ok(Some(group_of(client, g).await?)),
            None => Ok(None),
        },
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_replication_group_not_found_fault()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::aws("DescribeReplicationGroups", e)),
    }
}

/// What deleting a restore-test group did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleting,
    Gone,
}

/// Deletes a restore-test group; refuses any group without the restore-test tag, whatever the caller decided
/// (the one guarded delete of restored caches). A group already gone or already deleting is not an error.
pub async fn delete_test_group(client: &Client, id: &str) -> Result<Deleted, Error> {
    let Some(g) = group(client, id).await? else {
        return Ok(Deleted::Gone);
    };
    if !is_restore_test(&g.tags) {
        return Err(Error::PartialFailure(format!(
            "refusing to delete replication group {id}: it is not tagged {RESTORE_TEST}=true"
        )));
    }
    if g.status == "deleting" {
        return Ok(Deleted::Deleting);
    }
    match client.delete_replication_group().replication_group_id(id).send().await {
        Ok(_) => Ok(Deleted::Deleting),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_replication_group_not_found_fault()) =>
        {
            Ok(Deleted::Gone)
        }
        Err(e) => Err(Error::aws("DeleteReplicationGroup", e)),
    }
}

/// What one sweep of expired cache restore-test groups did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    pub deleted: Vec<String>,
    /// Each group that could not be read or deleted, and why: one failure never stops the others.
    pub failed: Vec<(String, String)>,
}

/// The janitor's part for caches: deletes every restore-test group whose expiry has passed (a test whose cleanup
/// failed). A group that cannot be read or deleted is reported in [`Sweep::failed`] and the sweep goes on, so one
/// stuck group never shelters the others; only a listing that fails is an error. A group without the
/// restore-test tag is never touched.
pub async fn sweep_expired(client: &Client, now: DateTime<Utc>) -> Result<Sweep, Error> {
    let mut sweep = Sweep::default();
    let mut expired = Vec::new();
    let mut pages = client.describe_replication_groups().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("DescribeReplicationGroups", e))?;
        for g in page.replication_groups() {
            let Some(id) = g.replication_group_id().filter(|id| id.starts_with(TEST_GROUP_PREFIX)) else {
                continue;
            };
            if g.status() == Some("deleting") {
                continue;
            }
            match group_of(client, g).await {
                Ok(g) if crate::rds::restore::expired_restore_test(&g.tags, now) => expired.push(g.id),
                Ok(_) => {}
                Err(e) => sweep.failed.push((id.to_owned(), e.to_string())),
            }
        }
    }
    for id in expired {
        match delete_test_group(client, &id).await {
            Ok(_) => sweep.deleted.push(id),
            Err(e) => sweep.failed.push((id, e.to_string())),
        }
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 37).unwrap()
    }

    /// What moto does not echo (the snapshot, the subnet and security groups, the token, one node): the request
    /// itself carries them.
    #[tokio::test]
    async fn the_create_request_is_isolated_encrypted_small_and_tagged() {
        use aws_sdk_elasticache::operation::create_replication_group::CreateReplicationGroupOutput;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        let token = "a".repeat(32);
        let expected = token.clone();
        let create = mock!(Client::create_replication_group)
            .match_requests(move |r| {
                r.snapshot_name() == Some("lifeboat-sessions-20261129-0300")
                    && r.cache_subnet_group_name() == Some("private-caches")
                    && r.security_group_ids() == ["sg-restore"]
                    && r.auth_token() == Some(expected.as_str())
                    && r.transit_encryption_enabled() == Some(true)
                    && r.at_rest_encryption_enabled() == Some(true)
                    && r.num_cache_clusters() == Some(1)
                    && r.automatic_failover_enabled() == Some(false)
                    && r.cache_node_type() == Some("cache.t4g.micro")
                    && r.tags()
                        .iter()
                        .any(|t| t.key() == Some(RESTORE_TEST) && t.value() == Some("true"))
            })
            .then_output(|| CreateReplicationGroupOutput::builder().build());
        let client = mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, [&create]);
        let tags = test_tags("sessions", at());
        let groups = ["sg-restore".to_owned()];
        let req = GroupRequest {
            group_id: "lifeboat-rt-sessions-202611290300",
            description: "test".into(),
            source: GroupSource::Snapshot("lifeboat-sessions-20261129-0300"),
            cluster_mode: false,
            shards: 1,
            engine: Some("valkey"),
            node_type: "cache.t4g.micro",
            subnet_group: Some("private-caches"),
            security_groups: &groups,
            auth_token: &token,
            tags: &tags,
        };
        create_group(&client, &req).await.unwrap();
        assert_eq!(create.num_calls(), 1);
        assert!(!format!("{req:?}").contains(&token), "the token is never printed");
    }

    /// A sharded group: cluster mode on, the snapshot's shards without replicas, a cluster-enabled parameter
    /// group; never NumCacheClusters (ElastiCache refuses it beside NumNodeGroups).
    #[tokio::test]
    async fn the_create_request_of_a_sharded_group_has_cluster_mode_its_shards_and_a_cluster_parameter_group() {
        use aws_sdk_elasticache::operation::create_replication_group::CreateReplicationGroupOutput;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        let create = mock!(Client::create_replication_group)
            .match_requests(|r| {
                r.cluster_mode() == Some(&ClusterMode::Enabled)
                    && r.num_node_groups() == Some(3)
                    && r.replicas_per_node_group() == Some(0)
                    && r.num_cache_clusters().is_none()
                    && r.cache_parameter_group_name() == Some("default.valkey8.cluster.on")
                    && r.snapshot_name() == Some("lifeboat-shards-20261129-0300")
                    && r.transit_encryption_enabled() == Some(true)
            })
            .then_output(|| CreateReplicationGroupOutput::builder().build());
        let client = mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, [&create]);
        let tags = test_tags("shards", at());
        let token = "b".repeat(32);
        let req = GroupRequest {
            group_id: "lifeboat-rt-shards-202611290300",
            description: "test".into(),
            source: GroupSource::Snapshot("lifeboat-shards-20261129-0300"),
            cluster_mode: true,
            shards: 3,
            engine: Some("valkey"),
            node_type: "cache.t4g.micro",
            subnet_group: None,
            security_groups: &[],
            auth_token: &token,
            tags: &tags,
        };
        let group = cluster_parameter_group(None, "valkey", "8.0.1");
        create_group_with(&client, &req, group.as_deref()).await.unwrap();
        assert_eq!(create.num_calls(), 1);
    }

    #[test]
    fn a_sharded_group_gets_the_configured_parameter_group_else_the_engines_cluster_default() {
        let pg = |setting, engine, version| cluster_parameter_group(setting, engine, version);
        assert_eq!(
            pg(Some("my-cluster-params"), "redis", "7.1").as_deref(),
            Some("my-cluster-params")
        );
        assert_eq!(
            pg(Some(" "), "redis", "7.1").as_deref(),
            Some("default.redis7.cluster.on")
        );
        assert_eq!(pg(None, "redis", "7.1.0").as_deref(), Some("default.redis7.cluster.on"));
        assert_eq!(
            pg(None, "redis", "6.2.6").as_deref(),
            Some("default.redis6.x.cluster.on")
        );
        assert_eq!(
            pg(None, "redis", "5.0.6").as_deref(),
            Some("default.redis5.0.cluster.on")
        );
        assert_eq!(
            pg(None, "redis", "4.0.10").as_deref(),
            Some("default.redis4.0.cluster.on")
        );
        assert_eq!(
            pg(None, "redis", "3.2.10").as_deref(),
            Some("default.redis3.2.cluster.on")
        );
        assert_eq!(pg(None, "valkey", "7.2").as_deref(), Some("default.valkey7.cluster.on"));
        assert_eq!(pg(None, "valkey", "8.0").as_deref(), Some("default.valkey8.cluster.on"));
        for (engine, version) in [
            ("redis", "2.8.24"),
            ("redis", "3.0"),
            ("redis", ""),
            ("redis", "x"),
            ("memcached", "1.6"),
        ] {
            assert_eq!(pg(None, engine, version), None, "{engine} {version}");
        }
    }

    #[test]
    fn an_unlisted_elasticache_fails_the_named_non_databases_and_the_tags_caches() {
        use crate::rds::selection::{Selector, TagSelector};
        let names = Selector {
            databases: vec!["app-prod".into(), "sessions".into()],
            tag: None,
        };
        assert_eq!(unlisted_caches(&names, &["sessions".into()]), ["sessions"]);
        assert!(unlisted_caches(&names, &[]).is_empty(), "only databases were asked for");
        let tagged = Selector {
            databases: vec![],
            tag: Some(TagSelector {
                key: "lifeboat:backup".into(),
                value: Some("true".into()),
            }),
        };
        assert_eq!(unlisted_caches(&tagged, &[]), [UNLISTED_CACHES]);
        assert_eq!(validate_group_id(&test_group_id(UNLISTED_CACHES, at())), Ok(()));
    }

    #[test]
    fn group_ids_are_deterministic_valid_and_within_40_characters() {
        assert_eq!(test_group_id("sessions", at()), "lifeboat-rt-sessions-202611290300");
        let long = test_group_id("a-very-long-cache-name-for-jobs", at());
        assert_eq!(long.len(), MAX_GROUP_ID_LEN, "{long}");
        assert_eq!(long, test_group_id("a-very-long-cache-name-for-jobs", at()));
        assert_ne!(long, test_group_id("a-very-long-cache-name-for-mail", at()));
        for id in [long, test_group_id("x-", at()), test_group_id("Jobs", at())] {
            assert_eq!(validate_group_id(&id), Ok(()), "{id}");
        }
        assert!(validate_group_id("1abc").is_err());
        assert!(validate_group_id("a--b").is_err());
        assert!(validate_group_id("Upper").is_err());
        assert!(validate_group_id(&"a".repeat(41)).is_err());
    }

    fn snap(name: &str, cache: &str, status: &str, owned: bool, created: &str) -> CacheSnapshot {
        let mut tags = BTreeMap::from([(crate::core::tags::CREATED_AT.to_owned(), created.to_owned())]);
        if owned {
            tags.insert(crate::core::tags::MANAGED.into(), "true".into());
        }
        CacheSnapshot {
            name: name.into(),
            arn: format!("arn:aws:elasticache:us-east-1:1:snapshot:{name}"),
            cache: cache.into(),
            status: status.into(),
            source: "manual".into(),
            tags,
            created: None,
            serverless: false,
        }
    }

    #[test]
    fn a_snapshots_time_is_its_tag_else_elasticaches_else_unknown() {
        let mut s = snap("console", "sessions", "available", false, "2026-11-28T03:00:00Z");
        let taken = at() - chrono::Duration::hours(2);
        s.created = Some(taken);
        assert_eq!(
            snapshot_time(&s),
            Some(Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap()),
            "Lifeboat's tag first"
        );
        s.tags.clear();
        assert_eq!(snapshot_time(&s), Some(taken), "no tag: when ElastiCache took it");
        s.created = None;
        assert_eq!(snapshot_time(&s), None, "neither: unknown, never the epoch");
        s.tags.insert(crate::core::tags::CREATED_AT.into(), "not a time".into());
        assert_eq!(snapshot_time(&s), None);
    }

    #[test]
    fn the_newest_available_lifeboat_snapshot_of_the_cache_is_chosen() {
        let all = [
            snap(
                "lifeboat-sessions-1",
                "sessions",
                "available",
                true,
                "2026-11-27T03:00:00Z",
            ),
            snap(
                "lifeboat-sessions-2",
                "sessions",
                "available",
                true,
                "2026-11-28T03:00:00Z",
            ),
            snap(
                "lifeboat-sessions-3",
                "sessions",
                "creating",
                true,
                "2026-11-29T03:00:00Z",
            ),
            snap("theirs", "sessions", "available", false, "2026-11-29T04:00:00Z"),
            snap("lifeboat-jobs-1", "jobs", "available", true, "2026-11-29T03:00:00Z"),
        ];
        assert_eq!(
            choose_snapshot(&all, "sessions", None).unwrap().name,
            "lifeboat-sessions-2"
        );
        assert_eq!(
            choose_snapshot(&all, "sessions", Some("theirs")).unwrap().name,
            "theirs"
        );
        let err = choose_snapshot(&all, "sessions", Some("lifeboat-sessions-3")).unwrap_err();
        assert!(err.contains("creating"), "{err}");
        assert!(choose_snapshot(&all, "sessions", Some("lifeboat-jobs-1")).is_err());
        let none = choose_snapshot(&all, "queue", None).unwrap_err();
        assert!(none.contains("no available snapshot of queue"), "{none}");
    }

    #[test]
    fn available_ends_the_wait_failed_states_and_the_limit_fail_it() {
        let later = at() + chrono::Duration::minutes(30);
        assert_eq!(progress("available", at(), later, 60), Progress::Available);
        assert_eq!(progress("creating", at(), later, 60), Progress::Restoring);
        assert_eq!(progress("creating", at(), later, 20), Progress::TimedOut);
        assert_eq!(progress("create-failed", at(), later, 60), Progress::Failed);
        assert_eq!(progress("deleting", at(), later, 60), Progress::Failed);
    }

    #[test]
    fn tags_mark_a_restore_test_of_its_cache_and_reuse_needs_them() {
        let tags = test_tags("sessions", at());
        assert!(is_restore_test(&tags));
        assert_eq!(may_reuse(&tags, "sessions"), Ok(()));
        assert_eq!(may_reuse(&tags, "jobs"), Err(Some("sessions".into())));
        assert_eq!(may_reuse(&BTreeMap::new(), "jobs"), Err(None));
        assert!(crate::rds::restore::expired_restore_test(
            &tags,
            at() + chrono::Duration::seconds(1)
        ));
    }

    #[test]
    fn auth_tokens_follow_elasticache_rules() {
        assert!(valid_auth_token(&"a".repeat(32)));
        assert!(!valid_auth_token("short"));
        assert!(!valid_auth_token(&format!("{}@", "a".repeat(20))));
        assert!(!valid_auth_token(&format!("{} x", "a".repeat(20))));
    }

    fn manifest(snapshot: &str) -> RdbManifest {
        RdbManifest {
            format_version: FORMAT_VERSION,
            lifeboat_version: "0".into(),
            cache: "sessions".into(),
            engine: "valkey".into(),
            engine_version: "8.0".into(),
            snapshot: snapshot.into(),
            snapshot_time: at(),
            copied_at: at(),
            shards: vec![crate::caches::records::RdbShard {
                shard: 1,
                key: "k".into(),
                size: 1,
                sha256: String::new(),
                rdb_version: 11,
                server_version: None,
                keys_per_db: BTreeMap::from([(0, 21), (2, 3)]),
                checksummed: true,
            }],
        }
    }

    #[test]
    fn counts_come_only_from_a_copy_of_the_restored_snapshot() {
        let m = manifest("lifeboat-sessions-2");
        match expected_keys(Some(("k.manifest.json", &m)), "lifeboat-sessions-2") {
            Expected::Counts(c) => assert_eq!(c[&0].keys, 21),
            other => panic!("{other:?}"),
        }
        let other = expected_keys(Some(("k.manifest.json", &m)), "lifeboat-sessions-3");
        assert!(matches!(other, Expected::NotCompared(r) if r.contains("lifeboat-sessions-2")));
        assert!(matches!(expected_keys(None, "x"), Expected::NotCompared(_)));
    }

    #[test]
    fn key_checks_are_every_caches_then_the_caches_own() {
        let k = |p: &str| KeyCheck {
            name: p.into(),
            pattern: p.into(),
            db: 0,
        };
        let config = BTreeMap::from([
            ("*".to_owned(), vec![k("any")]),
            ("jobs".to_owned(), vec![k("rq:queue:default")]),
        ]);
        let names: Vec<String> = key_checks_for(&config, "jobs").into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["any", "rq:queue:default"]);
        assert_eq!(key_checks_for(&config, "sessions").len(), 1);
    }

    #[test]
    fn a_report_passes_only_when_verified_without_a_failed_check_or_an_error() {
        let timings = BTreeMap::new();
        let checks = [
            Check::new("connect", true, "PONG"),
            Check::new("keys in db0", true, "10 restored, 10 in the snapshot"),
            Check::skipped("a named key", "not configured"),
        ];
        let snapshot_time = at() - chrono::Duration::hours(1);
        let mut input = ReportInput {
            cache: "sessions",
            restored_id: "lifeboat-rt-sessions-202611290300",
            snapshot: Some(("lifeboat-sessions-2", snapshot_time)),
            requested_at: at(),
            verified_at: Some(at() + chrono::Duration::minutes(12)),
            timings: &timings,
            checks: &checks,
            error: None,
        };
        let r = report(&input);
        assert!(r.passed);
        assert_eq!(r.rpo_seconds, 3600.0);
        assert_eq!(r.rto_seconds, Some(720.0));
        assert!(r.checks[2].passed && r.checks[2].detail.starts_with("skipped: "));
        assert!(markdown(&r).contains("PASSED"));
        input.error = Some("Lifeboat.Restore.NoSnapshot: none".into());
        input.snapshot = None;
        input.verified_at = None;
        let r = report(&input);
        assert!(!r.passed);
        assert_eq!((r.rpo_seconds, r.rto_seconds), (0.0, None));
        assert!(markdown(&r).contains("snapshot: none"));
    }

    #[test]
    fn a_test_whose_key_count_was_skipped_never_passes_on_ping_alone() {
        let timings = BTreeMap::new();
        let checks = [
            Check::new("connect", true, "PONG"),
            Check::skipped(
                crate::caches::check::KEY_COUNT_CHECK,
                "no verified RDB copy of this cache",
            ),
        ];
        let r = report(&ReportInput {
            cache: "sessions",
            restored_id: "lifeboat-rt-sessions-202611290300",
            snapshot: Some(("lifeboat-sessions-2", at())),
            requested_at: at(),
            verified_at: Some(at()),
            timings: &timings,
            checks: &checks,
            error: None,
        });
        assert!(!r.passed, "PING alone proves nothing of the data");
        assert!(
            !r.checks[1].passed && r.checks[1].detail.starts_with("skipped: "),
            "{:?}",
            r.checks[1]
        );
        let md = markdown(&r);
        assert!(
            md.contains("FAILED") && md.contains("**SKIPPED** (the test cannot pass without it)"),
            "{md}"
        );
    }

    #[test]
    fn a_cache_and_a_database_of_the_same_name_tested_at_once_never_share_a_secret() {
        let group = test_group_id("orders", at());
        let instance = crate::rds::restore::test_identifier("orders", at());
        assert_eq!(
            group, instance,
            "the same restored identifier, so the secret must differ by kind"
        );
        let cache_secret = test_secret_name(&group);
        assert_ne!(cache_secret, crate::rds::restore::test_secret_name(&instance));
        assert!(
            cache_secret.starts_with(crate::rds::restore::TEST_SECRET_PREFIX),
            "{cache_secret}"
        );
    }

    #[test]
    fn a_checks_record_is_never_taken_for_the_newest_report() {
        let key = checks_record_key("sessions", at());
        assert_eq!(key, "reports/cache-restore-tests/sessions/20261129T030037Z.checks.json");
        assert_eq!(crate::bucket::layout::time_in_key(&key), None);
        let db_key = crate::rds::restore::checks_record_key("sessions", at());
        assert!(db_key.starts_with("reports/restore-tests/sessions/"), "{db_key}");
        assert_eq!(crate::bucket::layout::time_in_key(&db_key), None);
    }

    /// Issue 22, item 15: the first group ElastiCache refuses to delete used to end the sweep, sheltering every
    /// expired group after it. Now each is tried and each failure reported.
    #[tokio::test]
    async fn a_group_that_cannot_be_deleted_is_reported_and_the_sweep_goes_on() {
        use aws_sdk_elasticache::operation::delete_replication_group::{
            DeleteReplicationGroupError, DeleteReplicationGroupOutput,
        };
        use aws_sdk_elasticache::operation::describe_replication_groups::DescribeReplicationGroupsOutput;
        use aws_sdk_elasticache::operation::list_tags_for_resource::ListTagsForResourceOutput;
        use aws_sdk_elasticache::types::error::InvalidReplicationGroupStateFault;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        const STUCK: &str = "lifeboat-rt-a-202611290300";
        const NEXT: &str = "lifeboat-rt-b-202611290300";
        let group = |id: &str| {
            ReplicationGroup::builder()
                .replication_group_id(id)
                .arn(format!("arn:aws:elasticache:us-east-1:1:replicationgroup:{id}"))
                .status("available")
                .build()
        };
        let listing = mock!(Client::describe_replication_groups)
            .match_requests(|r| r.replication_group_id().is_none())
            .then_output(move || {
                DescribeReplicationGroupsOutput::builder()
                    .replication_groups(group(STUCK))
                    .replication_groups(group(NEXT))
                    .build()
            });
        let one = mock!(Client::describe_replication_groups)
            .match_requests(|r| r.replication_group_id().is_some())
            .then_compute_output(move |r| {
                DescribeReplicationGroupsOutput::builder()
                    .replication_groups(group(r.replication_group_id().unwrap_or_default()))
                    .build()
            });
        let expired = (at() - chrono::Duration::hours(1)).to_rfc3339();
        let tags = mock!(Client::list_tags_for_resource).then_output(move || {
            ListTagsForResourceOutput::builder()
                .tag_list(Tag::builder().key(RESTORE_TEST).value("true").build())
                .tag_list(Tag::builder().key(EXPIRES_AT).value(&expired).build())
                .build()
        });
        let refused = mock!(Client::delete_replication_group)
            .match_requests(|r| r.replication_group_id() == Some(STUCK))
            .then_error(|| {
                DeleteReplicationGroupError::InvalidReplicationGroupStateFault(
                    InvalidReplicationGroupStateFault::builder()
                        .message("snapshotting")
                        .build(),
                )
            });
        let deleted = mock!(Client::delete_replication_group)
            .match_requests(|r| r.replication_group_id() == Some(NEXT))
            .then_output(|| DeleteReplicationGroupOutput::builder().build());
        let client = mock_client!(
            aws_sdk_elasticache,
            RuleMode::MatchAny,
            [&listing, &one, &tags, &refused, &deleted]
        );
        let sweep = sweep_expired(&client, at()).await.unwrap();
        assert_eq!(sweep.deleted, [NEXT]);
        assert_eq!(sweep.failed.len(), 1, "{:?}", sweep.failed);
        assert_eq!(sweep.failed[0].0, STUCK);
        assert!(sweep.failed[0].1.contains("snapshotting"), "{:?}", sweep.failed);
        assert_eq!(deleted.num_calls(), 1, "the group after the stuck one is deleted too");
    }
}
