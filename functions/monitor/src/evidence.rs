//! The evidence report, on demand (a console event) or monthly (the schedule's event): gathers the fleet's
//! facts from RDS and the bucket (and, from monitor's alarms, the databases de-selected and not confirmed, which it
//! lists as findings), has `lifeboat::evidence` judge and draw them (in plan mode by the plan versions in force on
//! each day, `lifeboat::evidence::planned`), and writes the page and its JSON under `reports/evidence/`. No state
//! of its own: every report is rebuilt from what S3 and RDS hold.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use lifeboat::bucket::layout;
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{Metrics, EVIDENCE_GAP_DAYS, EVIDENCE_POLICIES_NOT_MET, EVIDENCE_REPORT_WRITTEN};
use lifeboat::evidence::period::Period;
use lifeboat::evidence::report::{DayStatus, Report};
use lifeboat::evidence::{self, gather};
use lifeboat::monitoring::caches::CACHE_ALARM_MARK;
use lifeboat::monitoring::monitor::{alarm_set_for, plan_alarms, Presence, Thresholds};
use lifeboat::rds::selection::Database;
use serde::Serialize;

use crate::alarms::existing_alarms;
use crate::deps::Deps;

/// What the invocation returns: where the report is, and its verdicts.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceSummary {
    pub period: String,
    pub html_key: String,
    pub json_key: String,
    /// `s3://<bucket>/<html key>`, the line notifications link.
    pub url: String,
    pub databases: usize,
    pub policies_met: usize,
    pub verdicts: BTreeMap<String, String>,
    pub needs_a_human: Vec<String>,
}

async fn put(deps: &Deps, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), Error> {
    deps.s3
        .put_object()
        .bucket(&deps.settings.bucket)
        .key(key)
        .content_type(content_type)
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(body.into())
        .send()
        .await
        .map_err(|e| Error::aws("PutObject", e))?;
    Ok(())
}

/// The alarms the hourly run wants for the databases: the selector's under the one policy, or in plan mode each
/// database's from the plan in force now.
async fn wanted_alarms(deps: &Deps, all: &[Database], now: DateTime<Utc>) -> Result<BTreeSet<String>, Error> {
    let s = &deps.settings;
    let targets: Vec<(String, Thresholds)> = match crate::plan::start(deps, now).await? {
        Some((loaded, mut run)) => run
            .place_databases(&loaded, all)
            .into_iter()
            .map(|(d, t)| (d.id.clone(), t))
            .collect(),
        None => lifeboat::rds::selection::select(all, &s.common.selector)
            .databases
            .into_iter()
            .map(|d| (d.id, s.policy.thresholds()))
            .collect(),
    };
    Ok(targets
        .iter()
        .flat_map(|(id, t)| alarm_set_for(&s.alarm_scope, id, t))
        .map(|a| a.name)
        .collect())
}

/// The databases monitor watched (they hold its alarms) that still exist and are not watched now: the hourly run's
/// rule ([`plan_alarms`]) over the databases alone, so the report lists them instead of dropping them.
async fn deselected(deps: &Deps, all: &[Database], now: DateTime<Utc>) -> Result<Vec<String>, Error> {
    let wanted = wanted_alarms(deps, all, now).await?;
    let existing = existing_alarms(deps).await?;
    let plan = plan_alarms(&deps.settings.alarm_scope, &existing, &wanted, |who| {
        if who.starts_with(CACHE_ALARM_MARK) {
            Presence::Unknown
        } else if all.iter().any(|d| d.id == who) {
            Presence::Exists
        } else {
            Presence::Gone
        }
    });
    Ok(plan.deselected.keys().map(|s| (*s).to_owned()).collect())
}

/// Gathers, builds and writes the report; returns it with its keys.
async fn write(deps: &Deps, period: &Period, now: DateTime<Utc>) -> Result<(Report, String, String), Error> {
    let s = &deps.settings;
    let all = lifeboat::rds::selection::discover(&deps.rds).await?;
    let src = gather::Sources {
        rds: &deps.rds,
        s3: &deps.s3,
        bucket: &s.bucket,
    };
    let mut report = match &s.plan {
        Some(location) => gather::planned(src, location, &all, period, now).await?,
        None => {
            let chosen = lifeboat::rds::selection::select(&all, &s.common.selector);
            let facts = gather::fleet(src, &chosen.databases, period).await?;
            evidence::rules::build(&facts, &s.policy, period, now)
        }
    };
    for db in deselected(deps, &all, now).await? {
        report.add_deselected(&db);
    }
    report.add_anomalies(&gather::anomalies(src).await?);
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| Error::PartialFailure(format!("the evidence report could not be written as JSON: {e}")))?;
    let (year, month) = period.folder_month();
    let (html_key, json_key) = layout::evidence_keys(year, month, &period.slug);
    put(deps, &json_key, json, "application/json").await?;
    put(
        deps,
        &html_key,
        evidence::html::render(&report).into_bytes(),
        "text/html; charset=utf-8",
    )
    .await?;
    Ok((report, html_key, json_key))
}

fn run_metrics(written: Option<&Report>) -> Metrics {
    let mut m = Metrics::new();
    m.put(
        EVIDENCE_REPORT_WRITTEN,
        f64::from(u8::from(written.is_some())),
        StandardUnit::Count,
        &[],
    );
    if let Some(r) = written {
        let not_met = (r.summary.databases_covered - r.summary.policies_met) as f64;
        m.put(EVIDENCE_POLICIES_NOT_MET, not_met, StandardUnit::Count, &[]);
        for db in &r.databases {
            let gaps = db
                .series
                .iter()
                .flat_map(|s| &s.days)
                .filter(|d| d.status == DayStatus::Gap);
            let days: std::collections::BTreeSet<_> = gaps.map(|d| d.date).collect();
            m.db(&db.db, EVIDENCE_GAP_DAYS, days.len() as f64, StandardUnit::Count);
        }
    }
    m
}

/// Writes the fleet's evidence report for `period` (`None`: the last 30 days) and publishes the run's metrics.
/// A period that cannot be read is refused before anything is read.
pub async fn report(deps: &Deps, period: Option<&str>) -> Result<EvidenceSummary, Error> {
    report_at(deps, period, Utc::now()).await
}

/// [`report`] as of `now` (see `crate::handler::run_at`).
pub async fn report_at(deps: &Deps, period: Option<&str>, now: DateTime<Utc>) -> Result<EvidenceSummary, Error> {
    let period = Period::parse(period, now).map_err(|e| Error::InvalidEvent(e.to_string()))?;
    let result = write(deps, &period, now).await;
    let metrics = run_metrics(result.as_ref().ok().map(|(r, _, _)| r));
    metrics
        .publish(&deps.cw, &deps.settings.common.metrics_namespace, now)
        .await?;
    let (report, html_key, json_key) = result?;
    tracing::info!(period = %period.label, report = %html_key, met = report.summary.policies_met, "evidence report written");
    Ok(EvidenceSummary {
        period: period.label,
        url: format!("s3://{}/{html_key}", deps.settings.bucket),
        html_key,
        json_key,
        databases: report.summary.databases_covered,
        policies_met: report.summary.policies_met,
        verdicts: report
            .databases
            .iter()
            .map(|d| (d.db.clone(), d.verdict.line.clone()))
            .collect(),
        needs_a_human: report.summary.needs_a_human,
    })
}
