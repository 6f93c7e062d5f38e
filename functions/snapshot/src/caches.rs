//! Caches in a scheduled, manual or plan run: ElastiCache replication groups, single-node clusters and (with
//! `LIFEBOAT_SERVERLESS_CACHES=true`) serverless caches chosen by the
//! same selector as databases (in plan mode: the members of a plan whose `cache_snapshots` rule is due), with the
//! same snapshot names, ladder, tags and GFS retention, through `lifeboat::caches::elasticache`. A cache's
//! snapshot is taken from a replica where one exists.

use aws_sdk_cloudwatch::types::StandardUnit;
use lifeboat::caches::elasticache::{self, Cache, CacheSnapshot, Created, SnapshotSource};
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{self, Metrics};
use lifeboat::rds::naming::snapshot_id;
use lifeboat::rds::retention::{self, Decision};
use lifeboat::rds::selection::Selector;
use lifeboat::rds::snapshot_ladder::{self, Verdict};
use lifeboat::watch::record::CACHE;
use serde::Serialize;

use crate::deps::Deps;
use crate::event::Trigger;
use crate::job::{Job, RetentionEntry};
use lifeboat::rds::snapshot_ladder::Outcome;

/// What one run did for one cache.
#[derive(Debug, Clone, Serialize)]
pub struct CacheReport {
    pub cache: String,
    pub snapshot_id: String,
    /// What the snapshot is taken of: the group, or the replica node chosen.
    pub source: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub retention: Vec<RetentionEntry>,
    pub deleted: Vec<String>,
    pub errors: Vec<String>,
}

impl CacheReport {
    pub fn is_failure(&self) -> bool {
        self.outcome.failed() || !self.errors.is_empty()
    }
}

/// The identifiers among `names` that are caches (a manual run's list names databases and caches alike).
pub fn known(all: &[Cache], names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| all.iter().any(|c| &c.id == *n))
        .cloned()
        .collect()
}

/// The selector of a run's caches, and the names reported missing set right: a name the database list gives
/// is missing only if it is neither a database nor a cache; a name in a manual run's `caches` must be a cache.
pub fn reconcile(trigger: &Trigger, selector: &Selector, all: &[Cache], missing: &mut Vec<String>) -> Selector {
    let caches_named = known(all, missing);
    missing.retain(|name| !caches_named.contains(name));
    let cache_selector = selector_of(trigger, selector);
    missing.extend(unknown(all, &cache_selector, selector));
    cache_selector
}

/// The selector of a run's caches: a manual run's `caches` beside its `databases` (a name there may be a cache,
/// as it always could); any other run's, the configured one.
pub fn selector_of(trigger: &Trigger, selector: &Selector) -> Selector {
    match trigger {
        Trigger::Manual { caches, .. } => Selector {
            databases: selector.databases.iter().chain(caches).cloned().collect(),
            tag: selector.tag.clone(),
        },
        _ => selector.clone(),
    }
}

/// The names the cache selector lists beyond the database selector's that are no cache: a manual run's
/// `caches` entries that do not exist (reported as not found, named).
pub fn unknown(all: &[Cache], cache_selector: &Selector, selector: &Selector) -> Vec<String> {
    cache_selector
        .databases
        .iter()
        .filter(|n| !selector.databases.contains(n) && !all.iter().any(|c| &c.id == *n))
        .cloned()
        .collect()
}

/// Snapshots every chosen cache under its own job (the run's, or in plan mode its plan's: retention and tags) and
/// applies retention to the ones whose snapshot this run has.
pub(crate) async fn run_each(deps: &Deps, chosen: &[(&Cache, &Job)]) -> Result<Vec<CacheReport>, Error> {
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    let snapshots = elasticache::list_all_snapshots(&deps.ec, deps.settings.serverless_caches).await?;
    let mut reports = Vec::with_capacity(chosen.len());
    for (cache, job) in chosen {
        let existing: Vec<CacheSnapshot> = snapshots.iter().filter(|s| belongs(s, cache)).cloned().collect();
        reports.push(process(deps, cache, &existing, job).await);
    }
    Ok(reports)
}

/// The report of a cache whose plan cannot be decided: a failure, with the reason, and nothing touched.
pub fn refused(cache: &Cache, why: &str) -> CacheReport {
    tracing::error!(cache = %cache.id, error = %why, "cache's plan cannot be decided; no snapshot, no retention");
    CacheReport {
        cache: cache.id.clone(),
        snapshot_id: String::new(),
        source: String::new(),
        outcome: Outcome::Failed,
        detail: Some(why.to_owned()),
        retention: Vec::new(),
        deleted: Vec::new(),
        errors: Vec::new(),
    }
}

/// A snapshot of this cache: taken of it (or of one of its nodes), or tagged with it by Lifeboat.
fn belongs(s: &CacheSnapshot, cache: &Cache) -> bool {
    s.belongs_to(&cache.id)
}

async fn process(deps: &Deps, cache: &Cache, existing: &[CacheSnapshot], job: &Job) -> CacheReport {
    let id = snapshot_id(&cache.id, job.kind, job.at);
    let source = elasticache::snapshot_source(cache);
    let verdict = match snapshot_ladder::precondition(&id, &cache.status, existing).verdict(&id) {
        Some(v) => v,
        None => create(deps, cache, &source, &id, job).await,
    };
    let mut report = CacheReport {
        cache: cache.id.clone(),
        snapshot_id: id,
        source: match source {
            SnapshotSource::ReplicationGroup(g) => format!("replication group {g}"),
            SnapshotSource::Node(n) => format!("node {n}"),
            SnapshotSource::Serverless(c) => format!("serverless cache {c}"),
        },
        outcome: verdict.outcome,
        detail: verdict.detail,
        retention: Vec::new(),
        deleted: Vec::new(),
        errors: Vec::new(),
    };
    if snapshot_ladder::may_apply_retention(report.outcome) {
        apply_retention(deps, existing, job, &mut report).await;
    }
    report
}

async fn create(deps: &Deps, cache: &Cache, source: &SnapshotSource, id: &str, job: &Job) -> Verdict {
    let tags = job.tags(&cache.id);
    let (outcome, detail) = match elasticache::create_snapshot(&deps.ec, source, id, &tags).await {
        Ok(Created::Started(_)) => (Outcome::Created, None),
        Ok(Created::AlreadyExists) => (Outcome::AlreadyExists, Some(format!("snapshot {id} already exists"))),
        Ok(Created::InvalidState(m)) => (Outcome::NotAvailable, Some(m)),
        Ok(Created::QuotaExceeded(m)) => (Outcome::QuotaExceeded, Some(m)),
        Err(e) => (Outcome::Failed, Some(e.to_string())),
    };
    if outcome.failed() {
        tracing::error!(cache = %cache.id, snapshot = %id, outcome = ?outcome, detail = detail.as_deref().unwrap_or(""), "cache snapshot failed");
    } else {
        tracing::info!(cache = %cache.id, snapshot = %id, outcome = ?outcome, "cache snapshot");
    }
    Verdict { outcome, detail }
}

async fn apply_retention(deps: &Deps, existing: &[CacheSnapshot], job: &Job, report: &mut CacheReport) {
    let decisions = retention::decide(existing, &job.retention, job.clock);
    let holds = crate::job::holds_for(deps, CACHE, &report.cache, &decisions).await;
    for (snap, decision) in existing.iter().zip(decisions) {
        let decision = holds.decide(decision, &snap.name);
        if decision == Decision::NotEligible {
            continue;
        }
        report.retention.push(RetentionEntry {
            snapshot: snap.name.clone(),
            logical_time: retention::Retained::logical_time(snap),
            decision,
        });
        if decision.expires() {
            match elasticache::delete_snapshot(&deps.ec, snap).await {
                Ok(()) => report.deleted.push(snap.name.clone()),
                Err(e) => report.errors.push(format!("deleting {}: {e}", snap.name)),
            }
        }
    }
    report.retention.sort_by_key(|e| std::cmp::Reverse(e.logical_time));
}

/// Per cache, under the `CacheIdentifier` dimension: a cache and a database may share a name.
pub fn metrics(reports: &[CacheReport], out: &mut Metrics) {
    for r in reports {
        let dims = [(metrics::CACHE_DIMENSION, r.cache.as_str())];
        let created = f64::from(u8::from(r.outcome == Outcome::Created));
        out.put(metrics::SNAPSHOT_CREATED, created, StandardUnit::Count, &dims);
        let failed = f64::from(u8::from(r.is_failure()));
        out.put(metrics::SNAPSHOT_FAILED, failed, StandardUnit::Count, &dims);
        out.put(
            metrics::SNAPSHOTS_DELETED,
            r.deleted.len() as f64,
            StandardUnit::Count,
            &dims,
        );
    }
}
