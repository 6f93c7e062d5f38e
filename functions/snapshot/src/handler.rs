//! The `snapshot` handler: translate a trigger into per-database work, run it with bounded concurrency,
//! and report.
//!
//! It decides nothing itself. The rules it applies live in `shared`: the precondition ladder and when retention
//! may run in `lifeboat::rds::snapshot_ladder`, the tags in `lifeboat::rds::snapshot_tags`, the quota report in
//! `lifeboat::rds::quota`, retention in `lifeboat::rds::retention`, copy slots in `lifeboat::rds::copies`. What it guarantees
//! by how it runs them:
//! - one database failing never stops the others; each gets its own outcome;
//! - retention runs only for a database whose snapshot succeeded (created or already there) in this run,
//!   in the source region and in the DR region alike;
//! - an open content anomaly's snapshots are kept (`lifeboat::watch::hold`; `crate::job::holds_for`), and all
//!   of a resource's when its anomaly records cannot be read;
//! - retention decides by the earlier of the event's time and the wall clock (`lifeboat::rds::retention::clock`), so
//!   an event dated in the future cannot expire anything early;
//! - at most `LIFEBOAT_MAX_COPIES_IN_FLIGHT` copies are in flight per destination region, counting the ones
//!   earlier runs started; copies that do not fit are picked up by a later run.
//!
//! In plan mode (`LIFEBOAT_PLAN_DOCUMENT` set) a scheduled event is a plan tick (`plan.rs` decides what is due
//! and for which resources): each due resource gets its plan's job (retention, tags, whether it is copied), and
//! the same guarantees hold per resource. An idle tick stops after reading the document: no describe call and
//! no write. The RDS event for a finished snapshot follows the plan named on the snapshot (its `lifeboat:plan`
//! tag, written by this function), never anything in the event.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use lifeboat::caches::elasticache;
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{self, Metrics};
use lifeboat::core::tags;
use lifeboat::plans::membership::MembershipError;
use lifeboat::plans::store::Location;
use lifeboat::rds::copies;
use lifeboat::rds::copies::copy_tags;
use lifeboat::rds::naming::{snapshot_id, SnapshotKind};
use lifeboat::rds::quota::quota_report;
pub use lifeboat::rds::quota::QuotaReport;
use lifeboat::rds::retention::{self, Decision, Gfs};
use lifeboat::rds::selection::{self, Database, DbKind, Selector};
pub use lifeboat::rds::snapshot_ladder::Outcome;
use lifeboat::rds::snapshot_ladder::{self, FinishedCopy, Precondition, Verdict};
use lifeboat::rds::snapshot_tags::ManualSnapshot;
use lifeboat::rds::snapshots::{self as rds, Snapshot};
use lifeboat::watch::record::DATABASE;
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

use crate::caches::{self, CacheReport};
use crate::deps::Deps;
use crate::event::{self, Trigger};
use crate::job::{Job, RetentionEntry};
use crate::plan::{self, PlanReport};

#[derive(Debug, Clone, Serialize)]
pub struct DbReport {
    pub db: String,
    pub kind: DbKind,
    pub snapshot_id: Option<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Every eligible snapshot and what retention decided for it (source region).
    pub retention: Vec<RetentionEntry>,
    pub deleted: Vec<String>,
    pub copies_started: Vec<String>,
    pub dr_deleted: Vec<String>,
    pub shared: Vec<String>,
    /// Errors after the snapshot itself (deleting, copying, sharing): the run reports them as failures.
    pub errors: Vec<String>,
}

impl DbReport {
    fn new(db: &str, kind: DbKind, outcome: Outcome) -> Self {
        Self {
            db: db.to_owned(),
            kind,
            snapshot_id: None,
            outcome,
            detail: None,
            retention: Vec::new(),
            deleted: Vec::new(),
            copies_started: Vec::new(),
            dr_deleted: Vec::new(),
            shared: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn is_failure(&self) -> bool {
        self.outcome.failed() || !self.errors.is_empty()
    }
}

/// The function's result: one entry per database, the quota figures, and counts for a quick look.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub trigger: &'static str,
    pub run_time: DateTime<Utc>,
    pub policy: String,
    pub databases: Vec<DbReport>,
    /// ElastiCache replication groups and single-node clusters, chosen by the same selector.
    pub caches: Vec<CacheReport>,
    pub quota: Vec<QuotaReport>,
    pub created: usize,
    pub failed: usize,
    pub deleted: usize,
    pub copies_started: usize,
    pub metrics_published: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_error: Option<String>,
    /// Plan mode: the document version this run followed, what it refused, what was due, what is in no plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanReport>,
}

/// Entry point: the Lambda runtime calls this with the raw payload.
pub async fn handle(deps: &Deps, payload: Value) -> Result<Summary, Error> {
    handle_at(deps, payload, Utc::now()).await
}

/// As [`handle`], with the wall-clock time given (tests and the manual path use it).
pub async fn handle_at(deps: &Deps, payload: Value, now: DateTime<Utc>) -> Result<Summary, Error> {
    let started = Instant::now();
    let trigger = event::parse(payload)?;
    let mut run = dispatch(deps, &trigger, now).await?;
    run.reports.sort_by(|a, b| a.db.cmp(&b.db));
    let metrics = run_metrics(&trigger, &run, started.elapsed().as_secs_f64());
    let (metrics_published, metrics_error) = publish_metrics(deps, &metrics, now).await;
    let summary = Summary {
        trigger: trigger.name(),
        run_time: run.time,
        policy: match &run.plan {
            Some(p) => format!("plan version {}", p.version),
            None => deps.settings.retention.to_string(),
        },
        created: run.reports.iter().filter(|r| r.outcome == Outcome::Created).count()
            + run.caches.iter().filter(|r| r.outcome == Outcome::Created).count(),
        failed: run.reports.iter().filter(|r| r.is_failure()).count()
            + run.caches.iter().filter(|r| r.is_failure()).count()
            + run
                .plan
                .as_ref()
                .map_or(0, |p| p.restore_tests.iter().filter(|t| t.outcome == "failed").count()),
        deleted: run
            .reports
            .iter()
            .map(|r| r.deleted.len() + r.dr_deleted.len())
            .sum::<usize>()
            + run.caches.iter().map(|r| r.deleted.len()).sum::<usize>(),
        copies_started: run.reports.iter().map(|r| r.copies_started.len()).sum(),
        databases: run.reports,
        caches: run.caches,
        quota: run.quota,
        metrics_published,
        metrics_error,
        plan: run.plan,
    };
    report(summary)
}

/// What one invocation did: its logical time, one report per database, and the quota figures.
#[derive(Debug)]
struct Run {
    time: DateTime<Utc>,
    reports: Vec<DbReport>,
    caches: Vec<CacheReport>,
    quota: Vec<QuotaReport>,
    /// Plan mode: what the run followed.
    plan: Option<PlanReport>,
    /// A plan tick with nothing due: it publishes no figure unless a refused version must be counted.
    idle: bool,
}

impl Run {
    fn of(time: DateTime<Utc>, reports: Vec<DbReport>, plan: Option<PlanReport>) -> Self {
        Self {
            time,
            reports,
            caches: Vec::new(),
            quota: Vec::new(),
            plan,
            idle: false,
        }
    }
}

async fn dispatch(deps: &Deps, trigger: &Trigger, now: DateTime<Utc>) -> Result<Run, Error> {
    let retention = deps.settings.retention;
    let (selector, job) = match trigger {
        Trigger::Schedule { time } => {
            if let Some(location) = &deps.plan {
                // Boxed: inlined, the two run paths' futures together nest deeper than the compiler's query
                // depth allows.
                return Box::pin(plan_tick(deps, location, *time, now)).await;
            }
            let job = Job {
                kind: SnapshotKind::Schedule,
                at: *time,
                clock: retention::clock(*time, now),
                retention,
                manual: None,
                plan: None,
            };
            (deps.settings.common.selector.clone(), job)
        }
        Trigger::Manual {
            databases,
            reason,
            retain_days,
            ..
        } => {
            let manual = ManualSnapshot::new(reason, now, *retain_days, deps.settings.manual_retain_days);
            let job = Job {
                kind: SnapshotKind::Manual,
                at: now,
                clock: now,
                retention,
                manual: Some(manual),
                plan: None,
            };
            let selector = Selector {
                databases: databases.clone(),
                tag: None,
            };
            (selector, job)
        }
        Trigger::SnapshotFinished { snapshot_id, kind, .. } => {
            let mut plan = None;
            let report = snapshot_finished(deps, snapshot_id, *kind, &mut plan).await?;
            return Ok(Run::of(now, vec![report], plan));
        }
    };
    selected_run(deps, trigger, &selector, &job).await
}

/// A legacy scheduled run or a manual run: the databases and caches `selector` names, each under `job` (a manual
/// run in plan mode: under its plan's retention).
async fn selected_run(deps: &Deps, trigger: &Trigger, selector: &Selector, job: &Job) -> Result<Run, Error> {
    let all = selection::discover(&deps.rds).await?;
    let all_caches = elasticache::discover_all(&deps.ec, deps.settings.serverless_caches).await?;
    let mut selection = selection::select(&all, selector);
    let cache_selector = caches::reconcile(trigger, selector, &all_caches, &mut selection.missing);
    let mut work = plan::Work {
        databases: selection.databases.into_iter().map(|db| (db, job.clone())).collect(),
        caches: elasticache::select(&all_caches, &cache_selector)
            .into_iter()
            .map(|c| (c.clone(), job.clone()))
            .collect(),
        ..plan::Work::default()
    };
    // A manual run in plan mode keeps each resource by its plan's retention: the deployment's would expire
    // what the plan keeps.
    let mut report = None;
    if let Some(location) = &deps.plan {
        let loaded = plan::load(deps, location).await?;
        work = plan::manual(&loaded.document, loaded.version.label(), work);
        report = Some(plan::report(location, &loaded, &plan::Dues::default()));
    }
    let (reports, caches, quota) = act(deps, work, &selection.missing).await?;
    Ok(Run {
        caches,
        quota,
        ..Run::of(job.at, reports, report)
    })
}

/// Snapshots each resource of `work` under its job (then retention, copies, shares), and reports the refused
/// ones as failures.
async fn act(
    deps: &Deps,
    work: plan::Work,
    missing: &[String],
) -> Result<(Vec<DbReport>, Vec<CacheReport>, Vec<QuotaReport>), Error> {
    let (mut reports, quota) = run(deps, &work.databases, missing).await?;
    reports.extend(work.refused_databases.iter().map(|(db, e)| refused_db(db, e)));
    let chosen: Vec<_> = work.caches.iter().map(|(c, j)| (c, j)).collect();
    let mut caches = caches::run_each(deps, &chosen).await?;
    caches.extend(
        work.refused_caches
            .iter()
            .map(|(c, e)| caches::refused(c, &e.to_string())),
    );
    Ok((reports, caches, quota))
}

/// A plan tick: the document in force, what is due, each due resource under its plan's job. Nothing due:
/// nothing more is read or written. A resource whose plan cannot be decided fails alone.
async fn plan_tick(deps: &Deps, location: &Location, time: DateTime<Utc>, now: DateTime<Utc>) -> Result<Run, Error> {
    let loaded = plan::load(deps, location).await?;
    let due = plan::due(&loaded.document, time);
    let mut report = plan::report(location, &loaded, &due);
    report.restore_tests = start_restore_tests(deps, &loaded.document, time).await;
    if due.is_empty() {
        tracing::info!(plan_version = %report.version, "plan tick: nothing due");
        return Ok(Run {
            idle: true,
            ..Run::of(time, Vec::new(), Some(report))
        });
    }
    let all = selection::discover(&deps.rds).await?;
    let all_caches = elasticache::discover_all(&deps.ec, deps.settings.serverless_caches).await?;
    let mut work = plan::work(&loaded.document, &report.version, &due, &all, &all_caches, now);
    for u in &work.unplanned {
        tracing::info!(kind = u.kind, id = %u.id, "in no plan: not backed up by the plan tick");
    }
    report.unplanned = std::mem::take(&mut work.unplanned);
    let (reports, caches, quota) = act(deps, work, &[]).await?;
    Ok(Run {
        caches,
        quota,
        ..Run::of(time, reports, Some(report))
    })
}

/// Starts the restore tests whose rules are due at this tick (`restore_tests.rs`). A due rule with no state
/// machine to start is reported as not started: the plan asks for a test this deployment cannot run.
async fn start_restore_tests(
    deps: &Deps,
    doc: &lifeboat::plans::document::Document,
    time: DateTime<Utc>,
) -> Vec<crate::restore_tests::Started> {
    let due = lifeboat::plans::due::due_at_tick(doc, lifeboat::plans::document::RuleKind::RestoreTest, time);
    if due.is_empty() {
        return Vec::new();
    }
    match &deps.restore_tests {
        Some(rt) => crate::restore_tests::start_due(&rt.sfn, &rt.state_machine, &due).await,
        None => crate::restore_tests::not_configured(&due),
    }
}

/// The report of a database whose plan cannot be decided: a failure, with the reason, and nothing touched.
fn refused_db(db: &Database, err: &MembershipError) -> DbReport {
    tracing::error!(db = %db.id, error = %err, "database's plan cannot be decided; no snapshot, no retention");
    DbReport::new(&db.id, db.kind, Outcome::Failed).with_detail(err.to_string())
}

/// The run's metrics: per database, per region's quota, and the run's duration; in plan mode, the refused
/// document versions. An idle plan tick publishes nothing but a refused version's count, when there is one: most
/// ticks are idle, and an idle tick writes nothing.
fn run_metrics(trigger: &Trigger, run: &Run, duration_seconds: f64) -> Metrics {
    let mut metrics = Metrics::new();
    if let Some(plan) = &run.plan {
        if !run.idle || !plan.refused.is_empty() {
            let refused = plan.refused.len() as f64;
            metrics.put(metrics::PLAN_VERSIONS_REFUSED, refused, StandardUnit::Count, &[]);
        }
        if run.idle {
            return metrics;
        }
    }
    let finished_event = matches!(trigger, Trigger::SnapshotFinished { .. });
    for r in &run.reports {
        if !finished_event {
            let created = f64::from(u8::from(r.outcome == Outcome::Created));
            metrics.db(&r.db, metrics::SNAPSHOT_CREATED, created, StandardUnit::Count);
            metrics.db(
                &r.db,
                metrics::SNAPSHOT_FAILED,
                f64::from(u8::from(r.is_failure())),
                StandardUnit::Count,
            );
            let deleted = (r.deleted.len() + r.dr_deleted.len()) as f64;
            metrics.db(&r.db, metrics::SNAPSHOTS_DELETED, deleted, StandardUnit::Count);
        }
        let copies = r.copies_started.len() as f64;
        metrics.db(&r.db, metrics::SNAPSHOT_COPIES_STARTED, copies, StandardUnit::Count);
    }
    caches::metrics(&run.caches, &mut metrics);
    for q in &run.quota {
        let dims = [(metrics::REGION_DIMENSION, q.region.as_str())];
        metrics.put(
            metrics::MANUAL_SNAPSHOT_COUNT,
            q.manual_snapshots as f64,
            StandardUnit::Count,
            &dims,
        );
        metrics.put(
            metrics::MANUAL_SNAPSHOT_QUOTA_USED_PERCENT,
            q.used_percent,
            StandardUnit::Percent,
            &dims,
        );
    }
    metrics.put(
        metrics::SNAPSHOT_RUN_DURATION_SECONDS,
        duration_seconds,
        StandardUnit::Seconds,
        &[],
    );
    metrics
}

/// Publishes the metrics; a failure is logged and reported in the summary, not raised: the snapshots are made,
/// and missing metrics raise the freshness alarms (missing data is breaching).
async fn publish_metrics(deps: &Deps, metrics: &Metrics, now: DateTime<Utc>) -> (usize, Option<String>) {
    if metrics.items().is_empty() {
        return (0, None);
    }
    match metrics
        .publish(&deps.cw, &deps.settings.common.metrics_namespace, now)
        .await
    {
        Ok(n) => (n, None),
        Err(e) => {
            tracing::error!(error = %e, "metrics not published");
            (0, Some(e.to_string()))
        }
    }
}

/// Logs the summary and turns any database's failure into the invocation's error.
fn report(summary: Summary) -> Result<Summary, Error> {
    let json = serde_json::to_string(&summary).unwrap_or_else(|e| {
        tracing::error!(error = %e, "summary not serialised");
        String::new()
    });
    tracing::info!(
        trigger = summary.trigger,
        plan_version = summary.plan.as_ref().map_or("", |p| p.version.as_str()),
        databases = summary.databases.len(),
        created = summary.created,
        failed = summary.failed,
        deleted = summary.deleted,
        summary = %json,
        "snapshot run finished"
    );
    if summary.failed == 0 {
        return Ok(summary);
    }
    let failures: Vec<String> = summary
        .databases
        .iter()
        .filter(|r| r.is_failure())
        .map(|r| {
            let what = r.detail.clone().unwrap_or_else(|| r.errors.join("; "));
            format!("{} ({:?}: {what})", r.db, r.outcome)
        })
        .chain(summary.caches.iter().filter(|r| r.is_failure()).map(|r| {
            let what = r.detail.clone().unwrap_or_else(|| r.errors.join("; "));
            format!("cache {} ({:?}: {what})", r.cache, r.outcome)
        }))
        .chain(
            summary
                .plan
                .iter()
                .flat_map(|p| &p.restore_tests)
                .filter(|t| t.outcome == "failed")
                .map(|t| {
                    format!(
                        "restore test {} of plan {} ({})",
                        t.rule,
                        t.plan,
                        t.error.as_deref().unwrap_or_default()
                    )
                }),
        )
        .collect();
    let (total, what) = match summary.caches.len() {
        0 => (summary.databases.len(), "databases"),
        n => (summary.databases.len() + n, "databases and caches"),
    };
    Err(Error::PartialFailure(format!(
        "snapshot failed for {} of {total} {what}: {}; summary: {json}",
        summary.failed,
        failures.join(", ")
    )))
}

type Key = (DbKind, String);

fn group(snapshots: Vec<Snapshot>) -> HashMap<Key, Vec<Snapshot>> {
    let mut map: HashMap<Key, Vec<Snapshot>> = HashMap::new();
    for s in snapshots {
        map.entry((s.kind, s.db.clone())).or_default().push(s);
    }
    map
}

/// The quota rule for one region's count, with the warning logged when it applies.
fn quota(deps: &Deps, region: &str, count: usize) -> QuotaReport {
    let q = quota_report(
        region,
        count,
        deps.settings.snapshot_quota,
        deps.settings.quota_warn_percent,
    );
    if q.warning {
        tracing::warn!(
            region,
            manual_snapshots = count,
            quota = q.quota,
            used_percent = q.used_percent,
            "manual snapshot quota nearly full"
        );
    }
    q
}

/// Scheduled, manual and plan runs: snapshot every database of `work` under its job, apply retention, copy and
/// share; `missing` are the explicitly named databases that do not exist.
async fn run(
    deps: &Deps,
    work: &[(Database, Job)],
    missing: &[String],
) -> Result<(Vec<DbReport>, Vec<QuotaReport>), Error> {
    // One listing of the region's manual snapshots serves every database and the quota figure.
    let source_manual = rds::list_manual(&deps.rds).await?;
    let source_count = source_manual.len();
    let by_db = group(source_manual);
    let jobs: HashMap<Key, &Job> = work.iter().map(|(db, job)| ((db.kind, db.id.clone()), job)).collect();

    let mut reports: Vec<DbReport> = stream::iter(work.iter())
        .map(|(db, job)| {
            let existing = by_db.get(&(db.kind, db.id.clone())).cloned().unwrap_or_default();
            let span = tracing::info_span!("database", db = %db.id, kind = ?db.kind);
            process_db(deps, db, existing, job).instrument(span)
        })
        .buffer_unordered(deps.settings.common.concurrency)
        .collect()
        .await;
    for missing in missing {
        // An explicitly named database that does not exist is a failure: its backups stopped, or the list is stale.
        reports.push(DbReport::new(missing, DbKind::Instance, Outcome::NotFound).with_detail(
            "neither a database (instance or cluster) nor a cache (replication group, node or serverless \
                     cache) with this identifier in the region",
        ));
    }

    let created = reports.iter().filter(|r| r.outcome == Outcome::Created).count();
    let deleted: usize = reports.iter().map(|r| r.deleted.len()).sum();
    let mut quotas = vec![quota(
        deps,
        &deps.region,
        (source_count + created).saturating_sub(deleted),
    )];

    if let (Some(dr), Some(dr_region)) = (&deps.dr_rds, deps.settings.copy.region.as_deref()) {
        let dr_count = copy_phase(deps, dr, &by_db, &mut reports, &jobs).await?;
        quotas.push(quota(deps, dr_region, dr_count));
    } else if !deps.settings.copy.share_accounts.is_empty() {
        share_newest(deps, &deps.rds, &by_db, &mut reports, &jobs).await;
    }
    Ok((reports, quotas))
}

/// One database: climb the precondition ladder, take the snapshot if it says so, then apply retention if the
/// run's own snapshot exists.
async fn process_db(deps: &Deps, db: &Database, existing: Vec<Snapshot>, job: &Job) -> DbReport {
    let id = snapshot_id(&db.id, job.kind, job.at);
    let mut report = DbReport::new(&db.id, db.kind, Outcome::Failed);
    report.snapshot_id = Some(id.clone());

    let precondition = snapshot_ladder::precondition(&id, &db.status, &existing);
    let verdict = match precondition.verdict(&id) {
        Some(verdict) => {
            log_skipped(db, &precondition);
            verdict
        }
        None => take_snapshot(deps, db, &id, job).await,
    };
    report.outcome = verdict.outcome;
    report.detail = verdict.detail;
    if snapshot_ladder::may_apply_retention(report.outcome) {
        apply_retention(deps, &existing, &job.retention, job.clock, &mut report).await;
    }
    report
}

fn log_skipped(db: &Database, precondition: &Precondition) {
    match precondition {
        Precondition::NotAvailable { db_status } => {
            tracing::warn!(db = %db.id, status = %db_status, "database not available; no snapshot taken");
        }
        Precondition::InProgress { other, .. } => {
            tracing::info!(db = %db.id, other = %other, "another snapshot in progress; none started");
        }
        Precondition::Failed { status } => {
            tracing::error!(db = %db.id, status = %status, "this run's snapshot exists but failed; no retention");
        }
        Precondition::AlreadyExists { .. } | Precondition::Create => {}
    }
}

async fn take_snapshot(deps: &Deps, db: &Database, id: &str, job: &Job) -> Verdict {
    let tags = job.tags(&db.id);
    let result = rds::create(&deps.rds, &db.id, db.kind, id, &tags).await;
    let verdict = snapshot_ladder::after_create(id, &result);
    if verdict.outcome == Outcome::Created {
        tracing::info!(db = %db.id, snapshot = %id, "snapshot started");
    }
    if verdict.outcome.failed() {
        tracing::error!(db = %db.id, snapshot = %id, outcome = ?verdict.outcome, detail = verdict.detail.as_deref().unwrap_or(""), "snapshot failed");
    }
    verdict
}

/// Applies the GFS policy to the database's snapshots in the source region, recording every decision.
async fn apply_retention(
    deps: &Deps,
    existing: &[Snapshot],
    policy: &Gfs,
    clock: DateTime<Utc>,
    report: &mut DbReport,
) {
    let decisions = retention::decide(existing, policy, clock);
    let holds = crate::job::holds_for(deps, DATABASE, &report.db, &decisions).await;
    for (snap, decision) in existing.iter().zip(decisions) {
        let decision = holds.decide(decision, &snap.id);
        if decision == Decision::NotEligible {
            continue;
        }
        report.retention.push(RetentionEntry {
            snapshot: snap.id.clone(),
            logical_time: snap.logical_time(),
            decision,
        });
        if decision.expires() {
            match rds::delete(&deps.rds, snap).await {
                Ok(()) => {
                    tracing::info!(db = %report.db, snapshot = %snap.id, "snapshot expired and deleted");
                    report.deleted.push(snap.id.clone());
                }
                Err(e) => report.errors.push(format!("deleting {}: {e}", snap.id)),
            }
        }
    }
    report.retention.sort_by_key(|e| std::cmp::Reverse(e.logical_time));
}

/// The DR region's copies, and how many manual snapshots it holds (for the quota figure).
#[derive(Debug)]
struct DrRegion<'a> {
    client: &'a aws_sdk_rds::Client,
    kms: &'a str,
    slots: u32,
    count: usize,
}

/// Copies what the DR region lacks (newest first, within the in-flight limit) for the databases whose job copies,
/// and applies each database's retention there (also when its plan no longer copies: its old copies still age
/// out). Returns the number of manual snapshots in the DR region afterwards.
async fn copy_phase(
    deps: &Deps,
    dr: &aws_sdk_rds::Client,
    source_by_db: &HashMap<Key, Vec<Snapshot>>,
    reports: &mut [DbReport],
    jobs: &HashMap<Key, &Job>,
) -> Result<usize, Error> {
    let dr_manual = rds::list_manual(dr).await?;
    let mut region = DrRegion {
        client: dr,
        kms: deps.settings.copy.kms_key_id.as_deref().unwrap_or_default(),
        slots: copies::free_slots(&dr_manual, deps.settings.copy.max_in_flight),
        count: dr_manual.len(),
    };
    let dr_by_db = group(dr_manual);

    for report in reports
        .iter_mut()
        .filter(|r| snapshot_ladder::may_apply_retention(r.outcome))
    {
        let key = (report.kind, report.db.clone());
        let Some(job) = jobs.get(&key) else { continue };
        let copies = dr_by_db.get(&key).map(Vec::as_slice).unwrap_or_default();
        let source = source_by_db.get(&key).map(Vec::as_slice).unwrap_or_default();
        if job.copies() {
            copy_missing(&mut region, source, copies, report).await;
        }
        dr_retention(&mut region, copies, job, report).await;
    }
    if !deps.settings.copy.share_accounts.is_empty() {
        share_newest(deps, dr, &dr_by_db, reports, jobs).await;
    }
    Ok(region.count)
}

async fn copy_missing(region: &mut DrRegion<'_>, source: &[Snapshot], copies: &[Snapshot], report: &mut DbReport) {
    for source in copies::candidates(source, copies, &report.deleted) {
        if region.slots == 0 {
            report
                .detail
                .get_or_insert_with(|| "copies deferred: the DR region has the maximum copies in flight".into());
            break;
        }
        match rds::copy(region.client, source, region.kms, &copy_tags(source)).await {
            Ok(true) => {
                region.slots -= 1;
                region.count += 1;
                report.copies_started.push(source.id.clone());
                tracing::info!(db = %report.db, snapshot = %source.id, "DR copy started");
            }
            Ok(false) => {}
            Err(e) => report.errors.push(format!("copying {}: {e}", source.id)),
        }
    }
}

async fn dr_retention(region: &mut DrRegion<'_>, copies: &[Snapshot], job: &Job, report: &mut DbReport) {
    for (snap, decision) in copies.iter().zip(retention::decide(copies, &job.retention, job.clock)) {
        if decision.expires() {
            match rds::delete(region.client, snap).await {
                Ok(()) => {
                    region.count = region.count.saturating_sub(1);
                    report.dr_deleted.push(snap.id.clone());
                }
                Err(e) => report.errors.push(format!("deleting DR copy {}: {e}", snap.id)),
            }
        }
    }
}

/// Shares the newest available Lifeboat snapshot of each database whose job copies with the configured accounts.
async fn share_newest(
    deps: &Deps,
    rds_client: &aws_sdk_rds::Client,
    by_db: &HashMap<Key, Vec<Snapshot>>,
    reports: &mut [DbReport],
    jobs: &HashMap<Key, &Job>,
) {
    for report in reports.iter_mut().filter(|r| {
        snapshot_ladder::may_apply_retention(r.outcome) && jobs.get(&(r.kind, r.db.clone())).is_some_and(|j| j.copies())
    }) {
        let Some(newest) = by_db.get(&(report.kind, report.db.clone())).and_then(|v| {
            v.iter()
                .filter(|s| s.owned() && s.is_available())
                .max_by_key(|s| s.logical_time())
        }) else {
            continue;
        };
        match rds::share(rds_client, newest, &deps.settings.copy.share_accounts).await {
            Ok(()) => report.shared.push(newest.id.clone()),
            Err(e) => report.errors.push(format!("sharing {}: {e}", newest.id)),
        }
    }
}

/// The RDS event for a finished Lifeboat snapshot: start its DR copy now, or share it. `plan` receives the plan
/// version followed, when the snapshot's plan was read.
async fn snapshot_finished(
    deps: &Deps,
    snapshot_id: &str,
    kind: DbKind,
    plan: &mut Option<PlanReport>,
) -> Result<DbReport, Error> {
    let Some(snap) = rds::describe(&deps.rds, kind, snapshot_id).await? else {
        return Ok(DbReport::new(snapshot_id, kind, Outcome::Ignored).with_detail("snapshot no longer exists"));
    };
    let mut report = DbReport::new(&snap.db, kind, Outcome::Ignored);
    report.snapshot_id = Some(snap.id.clone());
    if let Some(why) = snapshot_ladder::finished_ignored(&snap) {
        return Ok(report.with_detail(why));
    }
    if let Some(why) = plan_declines_copy(deps, &snap, plan).await? {
        return Ok(report.with_detail(why));
    }
    if let Some(dr) = &deps.dr_rds {
        let dr_manual = rds::list_manual(dr).await?;
        let max_in_flight = deps.settings.copy.max_in_flight;
        match snapshot_ladder::finished_copy(&snap, &dr_manual, max_in_flight) {
            FinishedCopy::AlreadyCopied => return Ok(report.with_detail("already copied to the DR region")),
            FinishedCopy::Deferred => {
                report.outcome = Outcome::CopyDeferred;
                return Ok(report.with_detail(format!(
                    "{max_in_flight} copies already in flight; the next scheduled run copies it"
                )));
            }
            FinishedCopy::Copy => {}
        }
        let kms = deps.settings.copy.kms_key_id.as_deref().unwrap_or_default();
        match rds::copy(dr, &snap, kms, &copy_tags(&snap)).await {
            Ok(_) => {
                report.outcome = Outcome::Copied;
                report.copies_started.push(snap.id.clone());
            }
            Err(e) => return Ok(failed(report, &e)),
        }
    } else if !deps.settings.copy.share_accounts.is_empty() {
        match rds::share(&deps.rds, &snap, &deps.settings.copy.share_accounts).await {
            Ok(()) => {
                report.outcome = Outcome::Shared;
                report.shared.push(snap.id.clone());
            }
            Err(e) => return Ok(failed(report, &e)),
        }
    } else {
        report = report.with_detail("no DR region or share accounts configured");
    }
    Ok(report)
}

/// Plan mode: a snapshot made under a plan (its `lifeboat:plan` tag, which only this function writes) is copied
/// or shared only when that plan's snapshot rule in the document in force says `dr_copy`. A snapshot without
/// the tag, or a stack without a plan document, follows the deployment's settings as before.
async fn plan_declines_copy(
    deps: &Deps,
    snap: &Snapshot,
    followed: &mut Option<PlanReport>,
) -> Result<Option<String>, Error> {
    let (Some(location), Some(name)) = (&deps.plan, snap.tags.get(tags::PLAN)) else {
        return Ok(None);
    };
    if deps.dr_rds.is_none() && deps.settings.copy.share_accounts.is_empty() {
        return Ok(None);
    }
    let loaded = plan::load(deps, location).await?;
    *followed = Some(plan::report(location, &loaded, &plan::Dues::default()));
    Ok(plan::declines_copy(&loaded.document, name))
}

/// A finished-event report whose copy or share failed: the failure is the report's outcome, not the run's error.
fn failed(mut report: DbReport, err: &Error) -> DbReport {
    report.outcome = Outcome::Failed;
    report.detail = Some(err.to_string());
    report
}
