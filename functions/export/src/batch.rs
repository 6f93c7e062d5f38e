//! One profile's exports of a resolved set of databases, in turn: each verified export (`job.rs`), its metrics,
//! and the run's summary. The handler resolves what a manual or scheduled event asks for, the plan tick
//! (`plan.rs`) what its plan makes due; both hand the result here, so neither imports the other.
//!
//! An export is complete only when pg_dump exited 0, pg_restore parsed the whole stream, and every part is
//! uploaded; only then is the multipart upload completed and, last, the manifest written. On any failure the
//! upload is aborted and no manifest is written, so a truncated dump never looks like a backup. An export still
//! running `DEADLINE_MARGIN` before the invocation's deadline stops itself the same way, and the databases after
//! it are reported as not reached.

use std::time::Instant;

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use lifeboat::bucket::layout::export_keys;
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{self, Metrics};
use lifeboat::postgres::export::{self as rules, Profile};
use lifeboat::rds::selection::{Database, Selection};
use serde::Serialize;

use crate::deps::Deps;
use crate::job::{self, Done, ExportJob, Followed};
use crate::settings::ExportSettings;

pub use lifeboat::postgres::export::{Outcome, DEADLINE_MARGIN};

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub db: String,
    pub outcome: Outcome,
    pub key: String,
    pub manifest_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub plaintext_bytes: u64,
    pub stored_bytes: u64,
    pub seconds: f64,
    pub tables: usize,
    /// CPU seconds per stage of the export (pg_dump, pg_restore, hashing, compression, encryption, upload,
    /// pipes, other; see `cpu`), for aiming a change at the stage that costs most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<crate::cpu::CpuSeconds>,
    /// What the content watch found in this export (its lines), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_findings: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_summary: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub trigger: &'static str,
    pub profile: String,
    pub logical_time: DateTime<Utc>,
    pub exports: Vec<ExportReport>,
    pub failed: usize,
    pub plaintext_bytes: u64,
    pub stored_bytes: u64,
    pub seconds: f64,
    /// This process's own peak resident memory (pg_dump and pg_restore are separate processes).
    pub peak_rss_bytes: u64,
}

/// What an event (or a plan's due run) asks for: which profile, under which logical time, for which databases,
/// following which plan.
#[derive(Debug)]
pub(crate) struct Run {
    pub trigger: &'static str,
    pub profile_name: String,
    pub profile: Profile,
    pub at: DateTime<Utc>,
    pub selection: Selection,
    pub followed: Option<Followed>,
}

/// Every database of `run` exported in turn, its metrics published; `stopped` says whether an export already
/// ran into the deadline (then, and once one here does, the rest are reported as not reached).
pub(crate) async fn export_all(
    deps: &Deps,
    plan: Run,
    deadline: Option<Instant>,
    stopped: &mut bool,
    started: Instant,
) -> Summary {
    let mut reports = Vec::new();
    let mut metrics = Metrics::new();
    // One export at a time: each already keeps pg_dump, the compressor and the uploads busy. Once one runs into
    // the deadline, the rest are reported as not reached rather than started.
    for db in &plan.selection.databases {
        let report = if *stopped {
            not_reached_report(&deps.settings, &db.id, &plan)
        } else {
            let (mut report, hit_deadline) = export_one(deps, db, &plan, deadline).await;
            *stopped = hit_deadline;
            if report.outcome == Outcome::Exported {
                watch(deps, &plan, &mut report, &mut metrics).await;
            }
            report
        };
        record(&mut metrics, &report, &plan.profile_name);
        reports.push(report);
    }
    for missing in &plan.selection.missing {
        let report = missing_report(&deps.settings, missing, &plan);
        record(&mut metrics, &report, &plan.profile_name);
        reports.push(report);
    }
    if let Err(e) = metrics
        .publish(&deps.cw, &deps.settings.common.metrics_namespace, Utc::now())
        .await
    {
        tracing::error!(error = %e, "metrics not published");
    }
    summarize(plan, reports, started)
}

/// The content watch on the export just made, right after its manifest: it never fails or undoes the export
/// (a failure is logged and published, and monitor runs it again within the hour).
async fn watch(deps: &Deps, plan: &Run, report: &mut ExportReport, metrics: &mut Metrics) {
    let rule = plan.followed.as_ref().map(|f| f.watch.clone()).unwrap_or_default();
    let thresholds = rule.thresholds(&report.db);
    let settings = &deps.settings;
    let watched = lifeboat::watch::run::run_and_report(
        &deps.s3,
        &settings.bucket,
        &report.manifest_key,
        thresholds.as_ref(),
        settings.kms_key_id.as_deref(),
        metrics,
    )
    .await;
    if let Some(w) = watched {
        // The comparison just written opens its anomaly (the last good restore points held); a failure is logged
        // and never fails the export (`crate::hold`).
        crate::hold::open(deps, &w.watch).await;
        report.watch_findings = Some(w.watch.findings.iter().map(|f| f.line.clone()).collect());
        report.drift_summary = w.watch.drift_summary;
    }
}

/// The run's metrics for one database: success always, the figures only for an export made now.
fn record(metrics: &mut Metrics, report: &ExportReport, profile: &str) {
    let dims = [
        (metrics::DB_DIMENSION, report.db.as_str()),
        (metrics::PROFILE_DIMENSION, profile),
    ];
    let ok = report.outcome.succeeded();
    metrics.put(
        metrics::EXPORT_SUCCESS,
        f64::from(u8::from(ok)),
        StandardUnit::Count,
        &dims,
    );
    if report.outcome != Outcome::Exported {
        return;
    }
    metrics.put(
        metrics::EXPORT_DURATION_SECONDS,
        report.seconds,
        StandardUnit::Seconds,
        &dims,
    );
    metrics.put(
        metrics::EXPORT_PLAINTEXT_BYTES,
        report.plaintext_bytes as f64,
        StandardUnit::Bytes,
        &dims,
    );
    metrics.put(
        metrics::EXPORT_STORED_BYTES,
        report.stored_bytes as f64,
        StandardUnit::Bytes,
        &dims,
    );
    let rate = rules::throughput(report.plaintext_bytes, report.seconds);
    metrics.put(
        metrics::EXPORT_THROUGHPUT_BYTES_PER_SECOND,
        rate,
        StandardUnit::BytesSecond,
        &dims,
    );
}

impl ExportReport {
    /// A report before anything happened: failed, with nothing written.
    fn new(settings: &ExportSettings, db: &str, plan: &Run) -> Self {
        let (key, manifest_key) = export_keys(db, &plan.profile_name, plan.at, !settings.recipients.is_empty());
        Self {
            db: db.to_owned(),
            outcome: Outcome::Failed,
            key,
            manifest_key,
            error: None,
            plaintext_bytes: 0,
            stored_bytes: 0,
            seconds: 0.0,
            tables: 0,
            cpu_seconds: None,
            watch_findings: None,
            drift_summary: None,
        }
    }
}

/// A database named explicitly that does not exist.
fn missing_report(settings: &ExportSettings, missing: &str, plan: &Run) -> ExportReport {
    ExportReport {
        error: Some("no instance or cluster with this identifier in the region".into()),
        ..ExportReport::new(settings, missing, plan)
    }
}

/// A database the run did not start because an earlier export ran into the deadline.
fn not_reached_report(settings: &ExportSettings, db: &str, plan: &Run) -> ExportReport {
    tracing::error!(db = %db, "export not reached before the deadline");
    ExportReport {
        outcome: Outcome::Refused,
        error: Some(rules::NotReached.to_string()),
        ..ExportReport::new(settings, db, plan)
    }
}

fn summarize(plan: Run, reports: Vec<ExportReport>, started: Instant) -> Summary {
    Summary {
        trigger: plan.trigger,
        profile: plan.profile_name,
        logical_time: plan.at,
        failed: reports.iter().filter(|r| r.outcome.failed()).count(),
        plaintext_bytes: reports.iter().map(|r| r.plaintext_bytes).sum(),
        stored_bytes: reports.iter().map(|r| r.stored_bytes).sum(),
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
        exports: reports,
    }
}

/// Logs the summary; any failed database fails the run, naming each one and why.
pub(crate) fn conclude(summary: Summary) -> Result<Summary, Error> {
    let json = match serde_json::to_string(&summary) {
        Ok(json) => json,
        Err(e) => {
            // Plain numbers and strings always serialize; should that ever change, say so rather than hide it.
            tracing::error!(error = %e, "summary not serialized");
            String::new()
        }
    };
    tracing::info!(failed = summary.failed, exports = summary.exports.len(), summary = %json, "export run finished");
    if summary.failed == 0 {
        return Ok(summary);
    }
    let failures: Vec<String> = summary
        .exports
        .iter()
        .filter(|r| r.outcome.failed())
        .map(|r| format!("{} ({})", r.db, r.error.as_deref().unwrap_or("failed")))
        .collect();
    Err(Error::PartialFailure(format!(
        "export failed for {} of {} databases: {}; summary: {json}",
        summary.failed,
        summary.exports.len(),
        failures.join(", ")
    )))
}

/// The process's peak resident set size, from `/proc/self/status` (0 where unavailable).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// One database's report, and whether its export ran into the invocation's deadline.
async fn export_one(deps: &Deps, db: &Database, plan: &Run, deadline: Option<Instant>) -> (ExportReport, bool) {
    let mut report = ExportReport::new(&deps.settings, &db.id, plan);
    let job = ExportJob {
        db,
        profile_name: &plan.profile_name,
        profile: &plan.profile,
        at: plan.at,
        deadline,
        key: report.key.clone(),
        manifest_key: report.manifest_key.clone(),
        started_at: Utc::now(),
        started: Instant::now(),
        followed: plan.followed.as_ref(),
    };
    let result = job::run(deps, &job).await;
    report.seconds = job.started.elapsed().as_secs_f64();
    match result {
        Ok(Done::Exported(m, cpu)) => {
            report.outcome = Outcome::Exported;
            report.cpu_seconds = Some(cpu);
            report.plaintext_bytes = m.plaintext.bytes;
            report.stored_bytes = m.stored.bytes;
            report.tables = m.tables.len();
            tracing::info!(db = %db.id, profile = plan.profile_name.as_str(), key = %report.key, bytes = m.stored.bytes, "export complete");
        }
        Ok(Done::AlreadyThere) => report.outcome = Outcome::AlreadyExported,
        Ok(Done::Refused(why)) => {
            report.outcome = Outcome::Refused;
            tracing::error!(db = %db.id, reason = %why, "export refused");
            report.error = Some(why.to_string());
        }
        Err(e) => {
            tracing::error!(db = %db.id, profile = plan.profile_name.as_str(), error = %e, "export failed");
            report.error = Some(e.to_string());
            return (report, e.is_deadline());
        }
    }
    (report, false)
}
