//! The adapter of the evidence report: reads one database's facts from the RDS API and the bucket (snapshots,
//! backup configuration, every complete export's key and, for those in the period, its manifest; every
//! restore-test report in the period and the newest before it); in plan mode also the plan document's versions
//! ([`planned`]), and the content watch's anomaly records ([`anomalies`]), which it hands to [`super::planned`] and [`super::rules`] to judge. Read-only; decides nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::period::Period;
use super::report::{self as evidence_report, ExportFact, Facts, RestoreTestFact, SubjectKind};
use super::rules::{self, Judged};
use crate::bucket::layout;
use crate::bucket::manifest::Manifest;
use crate::core::error::Error;
use crate::plans::store::{self, Location};
use crate::rds::restore::{is_restore_test, CheckResult, Report};
use crate::rds::selection::{Database, DbKind};

/// What gathering needs: the clients and the bucket.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub rds: &'a aws_sdk_rds::Client,
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
}

fn in_period(t: DateTime<Utc>, p: &Period) -> bool {
    t >= p.start_time() && t < p.end_time()
}

/// Every complete export of the database; the manifests of those in the period are read for size and
/// duration. A manifest that cannot be read keeps its export (the key proves it completed) without figures.
async fn exports(src: Sources<'_>, db: &str, period: &Period) -> Result<Vec<ExportFact>, Error> {
    let keys = layout::export_manifest_keys(src.s3, src.bucket, db, None).await?;
    let mut out = Vec::new();
    for key in &keys {
        let (Some(profile), Some(at)) = (layout::profile_in_key(db, key), layout::time_in_key(key)) else {
            continue;
        };
        let mut fact = ExportFact {
            profile: profile.to_owned(),
            at,
            stored_bytes: None,
            duration_seconds: None,
        };
        if in_period(at, period) {
            match layout::get_json::<Manifest>(src.s3, src.bucket, key).await {
                Ok(m) => {
                    fact.stored_bytes = Some(m.stored.bytes);
                    fact.duration_seconds = Some(m.duration_seconds);
                }
                Err(e @ Error::Aws { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "manifest unreadable; the export is shown without figures")
                }
            }
        }
        out.push(fact);
    }
    Ok(out)
}

/// Why a test did not pass, in the report's own words: its error, else its first failed check.
fn why_failed(report: Option<&Report>) -> String {
    let Some(r) = report else {
        return "the report could not be read as a restore-test report".to_owned();
    };
    r.error
        .clone()
        .or_else(|| {
            r.checks
                .iter()
                .find(|c| c.result == CheckResult::Failed)
                .map(|c| format!("check {}: {}", c.name, c.detail))
        })
        .unwrap_or_else(|| "the report says it did not pass".to_owned())
}

/// One restore-test report: whether it passed is monitor's rule on its JSON (an unreadable report proves
/// nothing, so it counts as failed); RTO, RPO and the reason come from the report's shape.
async fn restore_test(src: Sources<'_>, key: &str, at: DateTime<Utc>) -> Result<RestoreTestFact, Error> {
    let json = match layout::get_json::<Value>(src.s3, src.bucket, key).await {
        Ok(v) => Some(v),
        Err(e @ Error::Aws { .. }) => return Err(e),
        Err(e) => {
            tracing::warn!(key = %key, error = %e, "restore-test report unreadable; counted as failed");
            None
        }
    };
    let report: Option<Report> = json.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok());
    let passed = crate::monitoring::monitor::restore_test_passed(json.as_ref());
    Ok(RestoreTestFact {
        at,
        passed,
        rto_seconds: report.as_ref().and_then(|r| r.rto_seconds),
        rpo_seconds: report.as_ref().map(|r| r.rpo_seconds),
        error: (!passed).then(|| why_failed(report.as_ref())),
        key: key.to_owned(),
        recovery_point_time: json.as_ref().and_then(crate::monitoring::monitor::recovery_point_of),
    })
}

/// The restore tests in the period, and the newest one before it (which says how old the proof was).
async fn restore_tests(src: Sources<'_>, db: &str, period: &Period) -> Result<Vec<RestoreTestFact>, Error> {
    let keys = layout::list_keys(
        src.s3,
        src.bucket,
        &layout::restore_report_prefix(db),
        layout::REPORT_SUFFIX,
    )
    .await?;
    let timed: Vec<(&str, DateTime<Utc>)> = keys
        .iter()
        .filter_map(|k| Some((k.as_str(), layout::time_in_key(k)?)))
        .collect();
    let before = timed
        .iter()
        .filter(|(_, t)| *t < period.start_time())
        .max_by_key(|(_, t)| *t);
    let mut out = Vec::new();
    for (key, at) in timed.iter().filter(|(_, t)| in_period(*t, period)).chain(before) {
        out.push(restore_test(src, key, *at).await?);
    }
    Ok(out)
}

/// Everything the report needs about one database.
pub async fn facts(src: Sources<'_>, db: &Database, period: &Period) -> Result<Facts, Error> {
    let snapshots = crate::rds::snapshots::list_for_db(src.rds, &db.id, db.kind).await?;
    let available: Vec<_> = snapshots.iter().filter(|s| s.is_available()).collect();
    let retention = available
        .iter()
        .filter(|s| s.owned() && s.source() == crate::rds::snapshot_tags::Source::Schedule)
        .max_by_key(|s| s.logical_time())
        .and_then(|s| s.tags.get(crate::core::tags::POLICY).cloned());
    Ok(Facts {
        db: db.id.clone(),
        kind: match db.kind {
            DbKind::Instance => SubjectKind::RdsInstance,
            DbKind::Cluster => SubjectKind::AuroraCluster,
        },
        snapshots: available.iter().map(|s| s.logical_time()).collect(),
        unencrypted_snapshots: snapshots.iter().filter(|s| !s.encrypted).count(),
        retention,
        exports: exports(src, &db.id, period).await?,
        restore_tests: restore_tests(src, &db.id, period).await?,
        backup: crate::rds::instances::backup_details(src.rds, db.kind, &db.id).await?,
    })
}

/// Every content anomaly record of the stack (`watch/`), at most `watch::hold::MAX_RECORDS`, for
/// [`evidence_report::Report::add_anomalies`].
pub async fn anomalies(src: Sources<'_>) -> Result<Vec<(String, crate::watch::record::Anomaly)>, Error> {
    let keys = layout::list_keys(
        src.s3,
        src.bucket,
        crate::watch::record::WATCH_PREFIX,
        layout::REPORT_SUFFIX,
    )
    .await?;
    if keys.len() > crate::watch::hold::MAX_RECORDS {
        return Err(Error::PartialFailure(format!(
            "more than {} content anomaly records under {}",
            crate::watch::hold::MAX_RECORDS,
            crate::watch::record::WATCH_PREFIX
        )));
    }
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let a = layout::get_json(src.s3, src.bucket, &key).await?;
        out.push((key, a));
    }
    Ok(out)
}

/// The facts of every database, in the order given.
pub async fn fleet(src: Sources<'_>, databases: &[Database], period: &Period) -> Result<Vec<Facts>, Error> {
    let mut out = Vec::with_capacity(databases.len());
    for db in databases {
        out.push(facts(src, db, period).await?);
    }
    Ok(out)
}

/// Plan mode's report: reads the plan document's versions, has [`super::planned`] judge each database by the plan
/// versions in force on each day, gathers the facts of those a plan backed up on some day of the period (the
/// others are named in the report's plan section, never judged by a default), and builds the report.
pub async fn planned(
    src: Sources<'_>,
    location: &Location,
    all: &[Database],
    period: &Period,
    now: DateTime<Utc>,
) -> Result<evidence_report::Report, Error> {
    let history = store::history(src.s3, location).await?;
    let days = period.days();
    let mut judged: BTreeMap<&str, Judged> = BTreeMap::new();
    let mut unjudged = Vec::new();
    for db in all.iter().filter(|d| d.cluster.is_none() && !is_restore_test(&d.tags)) {
        match super::planned::judge(&history, &db.id, &db.tags, &days) {
            Some(j) => {
                judged.insert(db.id.as_str(), j);
            }
            None => unjudged.push((db.id.as_str(), &db.tags)),
        }
    }
    let chosen: Vec<Database> = all
        .iter()
        .filter(|d| d.cluster.is_none() && judged.contains_key(d.id.as_str()))
        .cloned()
        .collect();
    let facts = fleet(src, &chosen, period).await?;
    let section = super::planned::section(
        &history,
        &location.to_string(),
        &days,
        unjudged,
        now.min(period.end_time()),
    );
    let judge = |f: &Facts| {
        judged.get(f.db.as_str()).cloned().unwrap_or(Judged {
            series: Vec::new(),
            thresholds: Default::default(),
            plan: None,
        })
    };
    Ok(rules::build_with(&facts, judge, Some(section), period, now))
}
