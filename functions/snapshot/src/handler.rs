//! The `snapshot` handler: translate a trigger into per-database work, run it with bounded concurrency,
//! and report.
//!
//! Safety rules this module enforces, on top of the retention rules in `lifeboat::retention`:
//! - one database failing never stops the others; each gets its own outcome;
//! - retention runs only for a database whose snapshot succeeded (created or already there) in this run,
//!   in the source region and in the DR region alike;
//! - at most `LIFEBOAT_MAX_COPIES_IN_FLIGHT` copies are in flight per destination region, counting the ones
//!   earlier runs started; copies that do not fit are picked up by a later run.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use lifeboat::copies;
use lifeboat::error::Error;
use lifeboat::metrics::Metrics;
use lifeboat::naming::{snapshot_id, SnapshotKind};
use lifeboat::rds::{self, CreateResult, Snapshot};
use lifeboat::retention::{self, Decision};
use lifeboat::selection::{self, Database, DbKind, Selector};
use lifeboat::settings::SnapshotSettings;
use lifeboat::tags;
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

use crate::event::{self, Trigger};

/// Clients and settings, built once per cold start and borrowed by every invocation.
#[derive(Debug, Clone)]
pub struct Deps {
    pub rds: aws_sdk_rds::Client,
    /// A client in the DR region, when copies are configured.
    pub dr_rds: Option<aws_sdk_rds::Client>,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub region: String,
    pub settings: SnapshotSettings,
}

impl Deps {
    pub fn new(config: &SdkConfig, settings: SnapshotSettings) -> Self {
        let dr_rds = settings
            .copy
            .region
            .as_deref()
            .map(|region| aws_sdk_rds::Client::new(&lifeboat::aws::for_region(config, region)));
        Self {
            rds: aws_sdk_rds::Client::new(config),
            dr_rds,
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            settings,
        }
    }
}

/// What happened to one database's snapshot in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    /// The snapshot for this time exists already (a redelivered or retried event): nothing new was made.
    AlreadyExists,
    /// Another snapshot of this database is still being made; RDS would refuse a second one.
    InProgress,
    NotAvailable,
    QuotaExceeded,
    NotFound,
    Failed,
    /// For the snapshot-finished event: copied, shared, or nothing to do.
    Copied,
    CopyDeferred,
    Shared,
    Ignored,
}

impl Outcome {
    /// The snapshot this run was meant to have exists (or is being made by this run).
    pub fn succeeded(self) -> bool {
        matches!(self, Outcome::Created | Outcome::AlreadyExists)
    }

    pub fn failed(self) -> bool {
        matches!(
            self,
            Outcome::NotAvailable | Outcome::QuotaExceeded | Outcome::NotFound | Outcome::Failed
        )
    }
}

/// One retention decision, as printed in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionEntry {
    pub snapshot: String,
    pub logical_time: DateTime<Utc>,
    pub decision: Decision,
}

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

#[derive(Debug, Clone, Serialize)]
pub struct QuotaReport {
    pub region: String,
    pub manual_snapshots: usize,
    pub quota: u32,
    pub used_percent: f64,
    pub warning: bool,
}

/// The function's result: one entry per database, the quota figures, and counts for a quick look.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub trigger: &'static str,
    pub run_time: DateTime<Utc>,
    pub policy: String,
    pub databases: Vec<DbReport>,
    pub quota: Vec<QuotaReport>,
    pub created: usize,
    pub failed: usize,
    pub deleted: usize,
    pub copies_started: usize,
    pub metrics_published: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_error: Option<String>,
}

/// Entry point: the Lambda runtime calls this with the raw payload.
pub async fn handle(deps: &Deps, payload: Value) -> Result<Summary, Error> {
    handle_at(deps, payload, Utc::now()).await
}

/// As [`handle`], with the wall-clock time given (tests and the manual path use it).
pub async fn handle_at(deps: &Deps, payload: Value, now: DateTime<Utc>) -> Result<Summary, Error> {
    let started = Instant::now();
    let trigger = event::parse(payload)?;
    let (run_time, mut reports, quota) = match &trigger {
        Trigger::Schedule { time } => {
            let all = selection::discover(&deps.rds).await?;
            let selection = selection::select(&all, &deps.settings.common.selector);
            let (reports, quota) = run(deps, selection, SnapshotKind::Schedule, *time, None).await?;
            (*time, reports, quota)
        }
        Trigger::Manual {
            databases,
            reason,
            retain_days,
        } => {
            let all = selection::discover(&deps.rds).await?;
            let selector = Selector {
                databases: databases.clone(),
                tag: None,
            };
            let selection = selection::select(&all, &selector);
            let days = retain_days.unwrap_or(deps.settings.manual_retain_days);
            let manual = ManualInfo {
                reason: reason.clone(),
                expires_at: now + Duration::days(i64::from(days)),
            };
            let (reports, quota) = run(deps, selection, SnapshotKind::Manual, now, Some(manual)).await?;
            (now, reports, quota)
        }
        Trigger::SnapshotFinished { snapshot_id, kind, .. } => {
            let report = snapshot_finished(deps, snapshot_id, *kind).await?;
            (now, vec![report], Vec::new())
        }
    };
    reports.sort_by(|a, b| a.db.cmp(&b.db));

    let mut metrics = Metrics::new();
    for r in &reports {
        if matches!(trigger, Trigger::SnapshotFinished { .. }) {
            metrics.db(
                &r.db,
                "SnapshotCopiesStarted",
                r.copies_started.len() as f64,
                StandardUnit::Count,
            );
            continue;
        }
        metrics.db(
            &r.db,
            "SnapshotCreated",
            f64::from(u8::from(r.outcome == Outcome::Created)),
            StandardUnit::Count,
        );
        metrics.db(
            &r.db,
            "SnapshotFailed",
            f64::from(u8::from(r.is_failure())),
            StandardUnit::Count,
        );
        metrics.db(
            &r.db,
            "SnapshotsDeleted",
            (r.deleted.len() + r.dr_deleted.len()) as f64,
            StandardUnit::Count,
        );
        metrics.db(
            &r.db,
            "SnapshotCopiesStarted",
            r.copies_started.len() as f64,
            StandardUnit::Count,
        );
    }
    for q in &quota {
        let dims = [("Region", q.region.as_str())];
        metrics.put(
            "ManualSnapshotCount",
            q.manual_snapshots as f64,
            StandardUnit::Count,
            &dims,
        );
        metrics.put(
            "ManualSnapshotQuotaUsedPercent",
            q.used_percent,
            StandardUnit::Percent,
            &dims,
        );
    }
    metrics.put(
        "SnapshotRunDurationSeconds",
        started.elapsed().as_secs_f64(),
        StandardUnit::Seconds,
        &[],
    );
    let (metrics_published, metrics_error) = match metrics
        .publish(&deps.cloudwatch, &deps.settings.common.metrics_namespace, now)
        .await
    {
        Ok(n) => (n, None),
        Err(e) => {
            // The snapshots are made; missing metrics raise the freshness alarms (missing data is breaching).
            tracing::error!(error = %e, "metrics not published");
            (0, Some(e.to_string()))
        }
    };

    let summary = Summary {
        trigger: trigger.name(),
        run_time,
        policy: deps.settings.retention.to_string(),
        created: reports.iter().filter(|r| r.outcome == Outcome::Created).count(),
        failed: reports.iter().filter(|r| r.is_failure()).count(),
        deleted: reports.iter().map(|r| r.deleted.len() + r.dr_deleted.len()).sum(),
        copies_started: reports.iter().map(|r| r.copies_started.len()).sum(),
        databases: reports,
        quota,
        metrics_published,
        metrics_error,
    };
    let json = serde_json::to_string(&summary).unwrap_or_default();
    tracing::info!(
        trigger = summary.trigger,
        databases = summary.databases.len(),
        created = summary.created,
        failed = summary.failed,
        deleted = summary.deleted,
        summary = %json,
        "snapshot run finished"
    );
    if summary.failed > 0 {
        let failures: Vec<String> = summary
            .databases
            .iter()
            .filter(|r| r.is_failure())
            .map(|r| {
                let what = r.detail.clone().unwrap_or_else(|| r.errors.join("; "));
                format!("{} ({:?}: {what})", r.db, r.outcome)
            })
            .collect();
        return Err(Error::PartialFailure(format!(
            "snapshot failed for {} of {} databases: {}; summary: {json}",
            summary.failed,
            summary.databases.len(),
            failures.join(", ")
        )));
    }
    Ok(summary)
}

#[derive(Debug, Clone)]
struct ManualInfo {
    reason: String,
    expires_at: DateTime<Utc>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RDS tag values allow letters, digits, white space and `_ . : / = + - @`; anything else becomes a space.
fn tag_value(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c) {
                c
            } else {
                ' '
            }
        })
        .take(256)
        .collect()
}

fn snapshot_tags(
    db: &Database,
    kind: SnapshotKind,
    at: DateTime<Utc>,
    policy: &str,
    manual: Option<&ManualInfo>,
) -> BTreeMap<String, String> {
    let mut t = BTreeMap::from([
        (tags::MANAGED.to_owned(), "true".to_owned()),
        (
            tags::SOURCE.to_owned(),
            if kind == SnapshotKind::Schedule {
                "schedule"
            } else {
                "manual"
            }
            .to_owned(),
        ),
        (tags::POLICY.to_owned(), tag_value(&policy.replace(',', " "))),
        (tags::CREATED_AT.to_owned(), rfc3339(at)),
        (tags::DATABASE.to_owned(), db.id.clone()),
        (tags::VERSION.to_owned(), lifeboat::VERSION.to_owned()),
    ]);
    if let Some(m) = manual {
        t.insert(tags::REASON.to_owned(), tag_value(&m.reason));
        t.insert(tags::EXPIRES_AT.to_owned(), rfc3339(m.expires_at));
    }
    t
}

type Key = (DbKind, String);

fn group(snapshots: Vec<Snapshot>) -> HashMap<Key, Vec<Snapshot>> {
    let mut map: HashMap<Key, Vec<Snapshot>> = HashMap::new();
    for s in snapshots {
        map.entry((s.kind, s.db.clone())).or_default().push(s);
    }
    map
}

fn quota_report(region: &str, count: usize, settings: &SnapshotSettings) -> QuotaReport {
    let used_percent = (count as f64 * 100.0 / f64::from(settings.snapshot_quota) * 10.0).round() / 10.0;
    let warning = used_percent >= f64::from(settings.quota_warn_percent);
    if warning {
        tracing::warn!(
            region,
            manual_snapshots = count,
            quota = settings.snapshot_quota,
            used_percent,
            "manual snapshot quota nearly full"
        );
    }
    QuotaReport {
        region: region.to_owned(),
        manual_snapshots: count,
        quota: settings.snapshot_quota,
        used_percent,
        warning,
    }
}

/// Scheduled and manual runs: snapshot every selected database, apply retention, copy and share.
async fn run(
    deps: &Deps,
    selection: selection::Selection,
    kind: SnapshotKind,
    at: DateTime<Utc>,
    manual: Option<ManualInfo>,
) -> Result<(Vec<DbReport>, Vec<QuotaReport>), Error> {
    // One listing of the region's manual snapshots serves every database and the quota figure.
    let source_manual = rds::list_manual(&deps.rds).await?;
    let source_count = source_manual.len();
    let by_db = group(source_manual);
    let policy = deps.settings.retention.to_string();

    let mut reports: Vec<DbReport> = stream::iter(selection.databases.iter())
        .map(|db| {
            let existing = by_db.get(&(db.kind, db.id.clone())).cloned().unwrap_or_default();
            let policy = policy.as_str();
            let manual = manual.as_ref();
            let span = tracing::info_span!("database", db = %db.id, kind = ?db.kind);
            process_db(deps, db, existing, kind, at, policy, manual).instrument(span)
        })
        .buffer_unordered(deps.settings.common.concurrency)
        .collect()
        .await;
    for missing in &selection.missing {
        // An explicitly named database that does not exist is a failure: its backups stopped, or the list is stale.
        reports.push(
            DbReport::new(missing, DbKind::Instance, Outcome::NotFound)
                .with_detail("no instance or cluster with this identifier in the region"),
        );
    }

    let created = reports.iter().filter(|r| r.outcome == Outcome::Created).count();
    let deleted: usize = reports.iter().map(|r| r.deleted.len()).sum();
    let mut quota = vec![quota_report(
        &deps.region,
        (source_count + created).saturating_sub(deleted),
        &deps.settings,
    )];

    if let (Some(dr), Some(dr_region)) = (&deps.dr_rds, deps.settings.copy.region.as_deref()) {
        let dr_count = copy_phase(deps, dr, &by_db, &mut reports, at).await?;
        quota.push(quota_report(dr_region, dr_count, &deps.settings));
    } else if !deps.settings.copy.share_accounts.is_empty() {
        share_newest(deps, &deps.rds, &by_db, &mut reports).await;
    }
    Ok((reports, quota))
}

async fn process_db(
    deps: &Deps,
    db: &Database,
    existing: Vec<Snapshot>,
    kind: SnapshotKind,
    at: DateTime<Utc>,
    policy: &str,
    manual: Option<&ManualInfo>,
) -> DbReport {
    let id = snapshot_id(&db.id, kind, at);
    let mut report = DbReport::new(&db.id, db.kind, Outcome::Failed);
    report.snapshot_id = Some(id.clone());

    if let Some(s) = existing.iter().find(|s| s.id == id) {
        report.outcome = Outcome::AlreadyExists;
        report.detail = Some(format!("snapshot {id} already exists ({})", s.status));
    } else if db.status != "available" {
        report.outcome = Outcome::NotAvailable;
        report.detail = Some(format!("database is `{}`, not `available`", db.status));
        tracing::warn!(db = %db.id, status = %db.status, "database not available; no snapshot taken");
        return report;
    } else if let Some(busy) = existing.iter().find(|s| s.is_in_progress()) {
        report.outcome = Outcome::InProgress;
        report.detail = Some(format!("snapshot {} is still `{}`", busy.id, busy.status));
        tracing::info!(db = %db.id, other = %busy.id, "another snapshot in progress; none started");
        return report;
    } else {
        let tags = snapshot_tags(db, kind, at, policy, manual);
        match rds::create(&deps.rds, &db.id, db.kind, &id, &tags).await {
            Ok(CreateResult::Started(_)) => {
                report.outcome = Outcome::Created;
                tracing::info!(db = %db.id, snapshot = %id, "snapshot started");
            }
            Ok(CreateResult::AlreadyExists) => {
                report.outcome = Outcome::AlreadyExists;
                report.detail = Some(format!("snapshot {id} already exists"));
            }
            Ok(CreateResult::InvalidState(m)) => {
                report.outcome = Outcome::NotAvailable;
                report.detail = Some(m);
            }
            Ok(CreateResult::QuotaExceeded(m)) => {
                report.outcome = Outcome::QuotaExceeded;
                report.detail = Some(m);
            }
            Ok(CreateResult::NotFound(m)) => {
                report.outcome = Outcome::NotFound;
                report.detail = Some(m);
            }
            Err(e) => {
                report.outcome = Outcome::Failed;
                report.detail = Some(e.to_string());
            }
        }
        if report.outcome.failed() {
            tracing::error!(db = %db.id, snapshot = %id, outcome = ?report.outcome, detail = report.detail.as_deref().unwrap_or(""), "snapshot failed");
        }
    }
    if !report.outcome.succeeded() {
        return report;
    }

    let decisions = retention::decide(&existing, &deps.settings.retention, at);
    for (snap, decision) in existing.iter().zip(decisions) {
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
                    tracing::info!(db = %db.id, snapshot = %snap.id, "snapshot expired and deleted");
                    report.deleted.push(snap.id.clone());
                }
                Err(e) => report.errors.push(format!("deleting {}: {e}", snap.id)),
            }
        }
    }
    report.retention.sort_by_key(|e| std::cmp::Reverse(e.logical_time));
    report
}

/// Copies what the DR region lacks (newest first, within the in-flight limit) and applies retention there.
/// Returns the number of manual snapshots in the DR region afterwards.
async fn copy_phase(
    deps: &Deps,
    dr: &aws_sdk_rds::Client,
    source_by_db: &HashMap<Key, Vec<Snapshot>>,
    reports: &mut [DbReport],
    at: DateTime<Utc>,
) -> Result<usize, Error> {
    let kms = deps.settings.copy.kms_key_id.as_deref().unwrap_or_default();
    let dr_manual = rds::list_manual(dr).await?;
    let mut dr_count = dr_manual.len();
    let mut slots = copies::free_slots(&dr_manual, deps.settings.copy.max_in_flight);
    let dr_by_db = group(dr_manual);

    for report in reports.iter_mut().filter(|r| r.outcome.succeeded()) {
        let key = (report.kind, report.db.clone());
        let copies = dr_by_db.get(&key).cloned().unwrap_or_default();
        let source = source_by_db.get(&key).map(Vec::as_slice).unwrap_or_default();
        for source in copies::candidates(source, &copies, &report.deleted) {
            if slots == 0 {
                report
                    .detail
                    .get_or_insert_with(|| "copies deferred: the DR region has the maximum copies in flight".into());
                break;
            }
            match rds::copy(dr, source, kms, &copy_tags(source)).await {
                Ok(true) => {
                    slots -= 1;
                    dr_count += 1;
                    report.copies_started.push(source.id.clone());
                    tracing::info!(db = %report.db, snapshot = %source.id, "DR copy started");
                }
                Ok(false) => {}
                Err(e) => report.errors.push(format!("copying {}: {e}", source.id)),
            }
        }

        for (snap, decision) in copies
            .iter()
            .zip(retention::decide(&copies, &deps.settings.retention, at))
        {
            if decision.expires() {
                match rds::delete(dr, snap).await {
                    Ok(()) => {
                        dr_count = dr_count.saturating_sub(1);
                        report.dr_deleted.push(snap.id.clone());
                    }
                    Err(e) => report.errors.push(format!("deleting DR copy {}: {e}", snap.id)),
                }
            }
        }
    }
    if !deps.settings.copy.share_accounts.is_empty() {
        share_newest(deps, dr, &dr_by_db, reports).await;
    }
    Ok(dr_count)
}

fn copy_tags(source: &Snapshot) -> BTreeMap<String, String> {
    let mut t: BTreeMap<String, String> = source
        .tags
        .iter()
        .filter(|(k, _)| k.starts_with("lifeboat:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    t.insert(tags::COPY_OF.to_owned(), source.arn.clone());
    t
}

/// Shares the newest available Lifeboat snapshot of each database with the configured accounts.
async fn share_newest(
    deps: &Deps,
    rds_client: &aws_sdk_rds::Client,
    by_db: &HashMap<Key, Vec<Snapshot>>,
    reports: &mut [DbReport],
) {
    for report in reports.iter_mut().filter(|r| r.outcome.succeeded()) {
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

/// The RDS event for a finished Lifeboat snapshot: start its DR copy now, or share it.
async fn snapshot_finished(deps: &Deps, snapshot_id: &str, kind: DbKind) -> Result<DbReport, Error> {
    let Some(snap) = rds::describe(&deps.rds, kind, snapshot_id).await? else {
        return Ok(DbReport::new(snapshot_id, kind, Outcome::Ignored).with_detail("snapshot no longer exists"));
    };
    let mut report = DbReport::new(&snap.db, kind, Outcome::Ignored);
    report.snapshot_id = Some(snap.id.clone());
    if !snap.owned() {
        return Ok(report.with_detail("not a Lifeboat snapshot"));
    }
    if !snap.is_available() {
        return Ok(report.with_detail(format!("snapshot is `{}`, not `available`", snap.status)));
    }
    if let Some(dr) = &deps.dr_rds {
        let dr_manual = rds::list_manual(dr).await?;
        if dr_manual.iter().any(|s| s.id == snap.id && s.kind == kind) {
            return Ok(report.with_detail("already copied to the DR region"));
        }
        if copies::free_slots(&dr_manual, deps.settings.copy.max_in_flight) == 0 {
            report.outcome = Outcome::CopyDeferred;
            return Ok(report.with_detail(format!(
                "{} copies already in flight; the next scheduled run copies it",
                deps.settings.copy.max_in_flight
            )));
        }
        let kms = deps.settings.copy.kms_key_id.as_deref().unwrap_or_default();
        match rds::copy(dr, &snap, kms, &copy_tags(&snap)).await {
            Ok(_) => {
                report.outcome = Outcome::Copied;
                report.copies_started.push(snap.id.clone());
            }
            Err(e) => {
                report.outcome = Outcome::Failed;
                report.detail = Some(e.to_string());
            }
        }
    } else if !deps.settings.copy.share_accounts.is_empty() {
        match rds::share(&deps.rds, &snap, &deps.settings.copy.share_accounts).await {
            Ok(()) => {
                report.outcome = Outcome::Shared;
                report.shared.push(snap.id.clone());
            }
            Err(e) => {
                report.outcome = Outcome::Failed;
                report.detail = Some(e.to_string());
            }
        }
    } else {
        report = report.with_detail("no DR region or share accounts configured");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_values_drop_characters_rds_refuses() {
        assert_eq!(
            tag_value("before migration #42, (urgent)!"),
            "before migration  42   urgent  "
        );
        assert_eq!(tag_value(&"x".repeat(300)).len(), 256);
    }

    #[test]
    fn outcomes_classify_success_and_failure() {
        for o in [Outcome::Created, Outcome::AlreadyExists] {
            assert!(o.succeeded() && !o.failed());
        }
        for o in [
            Outcome::NotAvailable,
            Outcome::QuotaExceeded,
            Outcome::NotFound,
            Outcome::Failed,
        ] {
            assert!(o.failed() && !o.succeeded());
        }
        assert!(!Outcome::InProgress.failed() && !Outcome::InProgress.succeeded());
    }
}
