//! One monitoring run: observe every selected database, publish the figures, keep the alarm sets in step with
//! the fleet, and delete expired restore-test resources.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, StandardUnit, Statistic};
use chrono::{DateTime, Utc};
use lifeboat::bucket;
use lifeboat::error::Error;
use lifeboat::metrics::Metrics;
use lifeboat::monitor::{alarm_set, attention, stale_alarms, AlarmSpec, Comparison, Observed, ALARM_PREFIX};
use lifeboat::restore::expired_restore_test;
use lifeboat::selection::{self, Database, DbKind};
use serde::Serialize;
use serde_json::Value;

use crate::settings::MonitorSettings;

#[derive(Debug)]
pub struct Deps {
    pub rds: aws_sdk_rds::Client,
    pub s3: aws_sdk_s3::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub settings: MonitorSettings,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: MonitorSettings) -> Self {
        Self {
            rds: aws_sdk_rds::Client::new(config),
            s3: aws_sdk_s3::Client::new(config),
            cw: aws_sdk_cloudwatch::Client::new(config),
            settings,
        }
    }
}

/// What monitor saw of one database.
#[derive(Debug, Clone, Serialize)]
pub struct DbView {
    pub db: String,
    pub snapshot_age_hours: Option<f64>,
    pub export_age_hours: BTreeMap<String, f64>,
    pub restore_test_age_days: Option<f64>,
    pub last_restore_test_passed: Option<bool>,
    pub backup_retention_days: Option<i32>,
    pub pitr_lag_minutes: Option<f64>,
    pub storage_encrypted: bool,
    pub deletion_protection: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub databases: Vec<DbView>,
    pub alarms_kept: usize,
    pub alarms_deleted: Vec<String>,
    pub janitor_deleted: Vec<String>,
    /// What a human must hear about now.
    pub attention: Vec<String>,
}

fn age_s(now: DateTime<Utc>, at: DateTime<Utc>) -> f64 {
    (now - at).num_milliseconds().max(0) as f64 / 1000.0
}

/// The age of the newest restore-test report and whether it passed. A report that cannot be read as one counts
/// as a failed test (and says so in the log): an unreadable report proves nothing.
async fn newest_restore_test(deps: &Deps, db: &str, now: DateTime<Utc>) -> Result<Option<(f64, bool)>, Error> {
    let bucket_name = &deps.settings.bucket;
    let prefix = bucket::restore_report_prefix(db);
    let Some((key, t)) = bucket::newest_key(&deps.s3, bucket_name, &prefix, bucket::REPORT_SUFFIX).await? else {
        return Ok(None);
    };
    let passed = match bucket::get_json::<Value>(&deps.s3, bucket_name, &key).await {
        Ok(report) => report.get("passed").and_then(Value::as_bool).unwrap_or(false),
        Err(Error::Aws { operation, message }) => return Err(Error::Aws { operation, message }),
        Err(e) => {
            tracing::warn!(db = %db, key = %key, error = %e, "restore-test report unreadable; counted as failed");
            false
        }
    };
    Ok(Some((age_s(now, t), passed)))
}

async fn observe(
    deps: &Deps,
    db: &Database,
    now: DateTime<Utc>,
    metrics: &mut Metrics,
) -> Result<(DbView, Observed), Error> {
    let s = &deps.settings;
    let snapshots = lifeboat::rds::list_for_db(&deps.rds, &db.id, db.kind).await?;
    let newest = snapshots
        .iter()
        .filter(|s| s.is_available())
        .filter_map(|s| s.created)
        .max();
    let unencrypted = snapshots.iter().filter(|s| !s.encrypted).count();
    let d = lifeboat::rds::instances::backup_details(&deps.rds, db.kind, &db.id).await?;

    let mut export_age = BTreeMap::new();
    for profile in s.policy.export_max_age_s.keys() {
        if let Some((_, t)) = bucket::newest_export(&deps.s3, &s.bucket, &db.id, Some(profile)).await? {
            export_age.insert(profile.clone(), age_s(now, t));
        }
    }
    let restore_test = newest_restore_test(deps, &db.id, now).await?;

    let id = db.id.as_str();
    if let Some(t) = newest {
        metrics.db(id, "SnapshotAgeSeconds", age_s(now, t), StandardUnit::Seconds);
    }
    for (profile, age) in &export_age {
        metrics.put(
            "ExportAgeSeconds",
            *age,
            StandardUnit::Seconds,
            &[("DBIdentifier", id), ("Profile", profile.as_str())],
        );
    }
    if let Some((age, passed)) = restore_test {
        metrics.db(id, "RestoreTestAgeSeconds", age, StandardUnit::Seconds);
        metrics.db(
            id,
            "LastRestoreTestSuccess",
            f64::from(u8::from(passed)),
            StandardUnit::Count,
        );
    }
    if let Some(days) = d.retention_days {
        metrics.db(id, "BackupRetentionDays", f64::from(days), StandardUnit::Count);
    }
    let pitr_lag = d.latest_restorable.map(|t| age_s(now, t));
    if let Some(lag) = pitr_lag {
        metrics.db(id, "PitrLagSeconds", lag, StandardUnit::Seconds);
    }
    metrics.db(
        id,
        "StorageEncrypted",
        f64::from(u8::from(d.encrypted)),
        StandardUnit::Count,
    );
    metrics.db(
        id,
        "DeletionProtection",
        f64::from(u8::from(d.deletion_protection)),
        StandardUnit::Count,
    );
    let missing = newest.is_none() && export_age.is_empty();
    metrics.db(id, "BackupMissing", f64::from(u8::from(missing)), StandardUnit::Count);

    let view = DbView {
        db: db.id.clone(),
        snapshot_age_hours: newest.map(|t| age_s(now, t) / 3600.0),
        export_age_hours: export_age.iter().map(|(p, a)| (p.clone(), a / 3600.0)).collect(),
        restore_test_age_days: restore_test.map(|(a, _)| a / 86400.0),
        last_restore_test_passed: restore_test.map(|(_, p)| p),
        backup_retention_days: d.retention_days,
        pitr_lag_minutes: pitr_lag.map(|l| l / 60.0),
        storage_encrypted: d.encrypted,
        deletion_protection: d.deletion_protection,
    };
    let observed = Observed {
        snapshot_age_s: newest.map(|t| age_s(now, t)),
        export_age_s: export_age,
        storage_encrypted: d.encrypted,
        unencrypted_snapshots: unencrypted,
    };
    Ok((view, observed))
}

async fn put_alarm(deps: &Deps, db: &str, spec: &AlarmSpec) -> Result<(), Error> {
    let mut dims = vec![Dimension::builder().name("DBIdentifier").value(db).build()];
    dims.extend(
        spec.extra_dimensions
            .iter()
            .map(|(k, v)| Dimension::builder().name(*k).value(v).build()),
    );
    let actions: Option<Vec<String>> = deps.settings.topic_arn.clone().map(|t| vec![t]);
    deps.cw
        .put_metric_alarm()
        .alarm_name(&spec.name)
        .alarm_description(&spec.description)
        .namespace(&deps.settings.common.metrics_namespace)
        .metric_name(spec.metric)
        .set_dimensions(Some(dims))
        .statistic(match spec.comparison {
            Comparison::Greater => Statistic::Maximum,
            Comparison::Less => Statistic::Minimum,
        })
        // monitor runs hourly; two hours of silence is missing data, and missing data breaches.
        .period(3600)
        .evaluation_periods(2)
        .datapoints_to_alarm(1)
        .threshold(spec.threshold)
        .comparison_operator(match spec.comparison {
            Comparison::Greater => ComparisonOperator::GreaterThanThreshold,
            Comparison::Less => ComparisonOperator::LessThanThreshold,
        })
        .treat_missing_data("breaching")
        .set_alarm_actions(actions.clone())
        .set_ok_actions(actions)
        .send()
        .await
        .map_err(|e| Error::aws("PutMetricAlarm", e))?;
    Ok(())
}

async fn existing_alarms(cw: &aws_sdk_cloudwatch::Client) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut pages = cw
        .describe_alarms()
        .alarm_name_prefix(ALARM_PREFIX)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("DescribeAlarms", e))?;
        out.extend(
            page.metric_alarms()
                .iter()
                .filter_map(|a| a.alarm_name().map(str::to_owned)),
        );
    }
    Ok(out)
}

/// Restore-test instances and clusters past their expiry tag, deleted through the restore function's own
/// tag-checked cleanup.
async fn janitor(deps: &Deps, all: &[Database], now: DateTime<Utc>) -> Vec<String> {
    let expired = |d: &Database| expired_restore_test(&d.tags, now);
    let mut deleted = Vec::new();
    for d in all.iter().filter(|d| expired(d)) {
        // An instance in an expired cluster goes with its cluster.
        if d.kind == DbKind::Instance && d.cluster.is_some() {
            continue;
        }
        let member = all
            .iter()
            .find(|m| m.kind == DbKind::Instance && m.cluster.as_deref() == Some(d.id.as_str()))
            .map(|m| m.id.as_str());
        match lifeboat::rds::instances::delete_test(&deps.rds, d.kind, &d.id, member).await {
            Ok(_) => {
                tracing::warn!(resource = %d.id, "deleted an expired restore-test resource");
                deleted.push(d.id.clone());
            }
            Err(e) => {
                tracing::error!(resource = %d.id, error = %e, "could not delete an expired restore-test resource")
            }
        }
    }
    deleted
}

pub async fn handle(deps: &Deps, _payload: Value) -> Result<Summary, Error> {
    let now = Utc::now();
    let s = &deps.settings;
    let all = selection::discover(&deps.rds).await?;
    let chosen = selection::select(&all, &s.common.selector);
    let mut metrics = Metrics::new();
    let mut views = Vec::new();
    let mut notes = Vec::new();
    let mut wanted = BTreeSet::new();
    let mut failures = Vec::new();
    for db in &chosen.databases {
        match observe(deps, db, now, &mut metrics).await {
            Ok((view, observed)) => {
                notes.extend(attention(&db.id, &observed));
                views.push(view);
            }
            Err(e) => failures.push(format!("{}: {e}", db.id)),
        }
        for spec in alarm_set(&db.id, &s.policy) {
            put_alarm(deps, &db.id, &spec).await?;
            wanted.insert(spec.name);
        }
    }
    for missing in &chosen.missing {
        notes.push(format!("{missing}: named in LIFEBOAT_DATABASES but does not exist"));
    }
    let existing = existing_alarms(&deps.cw).await?;
    let stale: Vec<String> = stale_alarms(&existing, &wanted)
        .into_iter()
        .map(str::to_owned)
        .collect();
    for chunk in stale.chunks(100) {
        deps.cw
            .delete_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| Error::aws("DeleteAlarms", e))?;
    }
    let janitor_deleted = janitor(deps, &all, now).await;
    metrics.put(
        "RestoreTestJanitorDeleted",
        janitor_deleted.len() as f64,
        StandardUnit::Count,
        &[],
    );
    let manual = lifeboat::rds::list_manual(&deps.rds).await?.len() as f64;
    let used = 100.0 * manual / f64::from(s.snapshot_quota);
    if used >= f64::from(s.quota_warn_percent) {
        notes.push(format!(
            "manual snapshots: {manual:.0} of the quota of {} ({used:.0}%)",
            s.snapshot_quota
        ));
    }
    metrics.publish(&deps.cw, &s.common.metrics_namespace, now).await?;
    for note in &notes {
        tracing::warn!(finding = %note, "needs attention");
    }
    let summary = Summary {
        databases: views,
        alarms_kept: wanted.len(),
        alarms_deleted: stale,
        janitor_deleted,
        attention: notes,
    };
    if !failures.is_empty() {
        return Err(Error::PartialFailure(format!(
            "could not observe {} database(s): {}",
            failures.len(),
            failures.join("; ")
        )));
    }
    Ok(summary)
}
