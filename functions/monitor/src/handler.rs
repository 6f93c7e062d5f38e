//! One monitoring run: observe every selected database, publish the figures, keep the alarm sets in step with
//! the fleet, and delete expired restore-test resources.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, StandardUnit, Statistic};
use chrono::{DateTime, Utc};
use lifeboat::bucket;
use lifeboat::cache_monitor::{alarm_subject, AlarmSubject};
use lifeboat::error::Error;
use lifeboat::metrics::{Metrics, DB_DIMENSION, RESTORE_TEST_JANITOR_DELETED};
use lifeboat::monitor::{
    alarm_set, attention, expired_tests, restore_test_passed, stale_alarms, AlarmSpec, Comparison, Facts,
    ALARM_DATAPOINTS_TO_ALARM, ALARM_EVALUATION_PERIODS, ALARM_PERIOD_S, ALARM_PREFIX, ALARM_TREAT_MISSING_DATA,
};
use lifeboat::selection::{self, Database};
use serde::Serialize;
use serde_json::Value;

use crate::caches::{self, CacheFleet};
use crate::event;
use crate::settings::MonitorSettings;

/// What monitor saw of one cache (the rule that computes it is `CacheFacts::view`).
pub use lifeboat::cache_monitor::CacheView;
/// What monitor saw of one database (the rule that computes it is [`Facts::view`]).
pub use lifeboat::monitor::DbView;

#[derive(Debug)]
pub struct Deps {
    pub rds: aws_sdk_rds::Client,
    /// ElastiCache in the same region: caches are observed beside databases.
    pub ec: aws_sdk_elasticache::Client,
    pub s3: aws_sdk_s3::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub sm: aws_sdk_secretsmanager::Client,
    pub settings: MonitorSettings,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: MonitorSettings) -> Self {
        Self {
            rds: aws_sdk_rds::Client::new(config),
            ec: aws_sdk_elasticache::Client::new(config),
            s3: aws_sdk_s3::Client::new(config),
            cw: aws_sdk_cloudwatch::Client::new(config),
            sm: aws_sdk_secretsmanager::Client::new(config),
            settings,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub databases: Vec<DbView>,
    /// What monitor saw of each selected cache (`lifeboat::cache_monitor`).
    pub caches: Vec<CacheView>,
    pub alarms_kept: usize,
    pub alarms_deleted: Vec<String>,
    pub janitor_deleted: Vec<String>,
    /// What a human must hear about now.
    pub attention: Vec<String>,
}

/// The time of the newest restore-test report and whether it passed. A report that cannot be read as one counts
/// as a failed test (and says so in the log): an unreadable report proves nothing.
async fn newest_restore_test(deps: &Deps, db: &str) -> Result<Option<(DateTime<Utc>, bool)>, Error> {
    let bucket_name = &deps.settings.bucket;
    let prefix = bucket::restore_report_prefix(db);
    let Some((key, t)) = bucket::newest_key(&deps.s3, bucket_name, &prefix, bucket::REPORT_SUFFIX).await? else {
        return Ok(None);
    };
    let report = match bucket::get_json::<Value>(&deps.s3, bucket_name, &key).await {
        Ok(report) => Some(report),
        Err(Error::Aws { operation, message }) => return Err(Error::Aws { operation, message }),
        Err(e) => {
            tracing::warn!(db = %db, key = %key, error = %e, "restore-test report unreadable; counted as failed");
            None
        }
    };
    Ok(Some((t, restore_test_passed(report.as_ref()))))
}

/// Everything monitor reads about one database: its snapshots, its backup configuration, its newest export per
/// profile of the policy and its newest restore-test report.
async fn gather(deps: &Deps, db: &Database) -> Result<Facts, Error> {
    let s = &deps.settings;
    let snapshots = lifeboat::rds::list_for_db(&deps.rds, &db.id, db.kind).await?;
    let backup = lifeboat::rds::instances::backup_details(&deps.rds, db.kind, &db.id).await?;
    let mut exports = BTreeMap::new();
    for profile in s.policy.export_max_age_s.keys() {
        if let Some((_, t)) = bucket::newest_export(&deps.s3, &s.bucket, &db.id, Some(profile)).await? {
            exports.insert(profile.clone(), t);
        }
    }
    Ok(Facts {
        newest_snapshot: snapshots
            .iter()
            .filter(|s| s.is_available())
            .filter_map(|s| s.created)
            .max(),
        unencrypted_snapshots: snapshots.iter().filter(|s| !s.encrypted).count(),
        exports,
        restore_test: newest_restore_test(deps, &db.id).await?,
        backup,
    })
}

/// What one run found over the chosen databases.
#[derive(Default)]
struct Fleet {
    views: Vec<DbView>,
    notes: Vec<String>,
    wanted: BTreeSet<String>,
    failures: Vec<String>,
}

/// Observes every chosen database and keeps its alarm set in place. A database that cannot be observed is
/// reported at the end; its alarms are still put (missing data breaches).
async fn observe_fleet(
    deps: &Deps,
    databases: &[Database],
    now: DateTime<Utc>,
    metrics: &mut Metrics,
) -> Result<Fleet, Error> {
    let mut fleet = Fleet::default();
    for db in databases {
        match gather(deps, db).await {
            Ok(facts) => {
                facts.metrics(&db.id, now, metrics);
                fleet.notes.extend(attention(&db.id, &facts.observed(now)));
                fleet.views.push(facts.view(&db.id, now));
            }
            Err(e) => fleet.failures.push(format!("{}: {e}", db.id)),
        }
        for spec in alarm_set(&db.id, &deps.settings.policy) {
            put_alarm(deps, (DB_DIMENSION, &db.id), &spec).await?;
            fleet.wanted.insert(spec.name);
        }
    }
    Ok(fleet)
}

/// Puts one alarm of a database's or a cache's set; `subject` is its dimension (`DBIdentifier` or
/// `CacheIdentifier`) and identifier.
pub(crate) async fn put_alarm(deps: &Deps, subject: (&str, &str), spec: &AlarmSpec) -> Result<(), Error> {
    let mut dims = vec![Dimension::builder().name(subject.0).value(subject.1).build()];
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
        .period(ALARM_PERIOD_S)
        .evaluation_periods(ALARM_EVALUATION_PERIODS)
        .datapoints_to_alarm(ALARM_DATAPOINTS_TO_ALARM)
        .threshold(spec.threshold)
        .comparison_operator(match spec.comparison {
            Comparison::Greater => ComparisonOperator::GreaterThanThreshold,
            Comparison::Less => ComparisonOperator::LessThanThreshold,
        })
        .treat_missing_data(ALARM_TREAT_MISSING_DATA)
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

/// Deletes the existing alarms no wanted set contains (a hundred names per call, the API's limit). When the
/// caches could not be listed, their alarms are kept: a cache is not gone because ElastiCache did not answer.
async fn delete_stale_alarms(
    deps: &Deps,
    wanted: &BTreeSet<String>,
    keep_cache_alarms: bool,
) -> Result<Vec<String>, Error> {
    let existing = existing_alarms(&deps.cw).await?;
    let stale: Vec<String> = stale_alarms(&existing, wanted)
        .into_iter()
        .filter(|n| !(keep_cache_alarms && matches!(alarm_subject(n), Some((AlarmSubject::Cache(_), _)))))
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
    Ok(stale)
}

/// Restore-test instances, clusters and cache groups past their expiry tag, deleted through the one tag-checked
/// cleanup that the restore function uses too. A failed deletion is logged; the next run tries again.
async fn janitor(deps: &Deps, all: &[Database], now: DateTime<Utc>) -> Vec<String> {
    let mut deleted = Vec::new();
    for d in expired_tests(all, now) {
        match lifeboat::rds::instances::delete_test(&deps.rds, d.kind, d.id, d.member).await {
            Ok(_) => {
                tracing::warn!(resource = %d.id, "deleted an expired restore-test resource");
                deleted.push(d.id.to_owned());
            }
            Err(e) => {
                tracing::error!(resource = %d.id, error = %e, "could not delete an expired restore-test resource")
            }
        }
    }
    match lifeboat::cache_restore::sweep_expired(&deps.ec, now).await {
        Ok(groups) => {
            for g in &groups {
                tracing::warn!(resource = %g, "deleted an expired cache restore-test group");
            }
            deleted.extend(groups);
        }
        Err(e) => tracing::error!(error = %e, "could not sweep expired cache restore-test groups"),
    }
    deleted.extend(expired_test_secrets(deps, now).await);
    deleted
}

/// The password secrets of restore tests whose cleanup never ran, once their expiry has passed.
async fn expired_test_secrets(deps: &Deps, now: DateTime<Utc>) -> Vec<String> {
    let names = match lifeboat::test_secrets::expired(&deps.sm, now).await {
        Ok(names) => names,
        Err(e) => {
            tracing::error!(error = %e, "could not list restore-test secrets");
            return Vec::new();
        }
    };
    let mut deleted = Vec::new();
    for name in names {
        match lifeboat::test_secrets::delete(&deps.sm, &name).await {
            Ok(_) => {
                tracing::warn!(secret = %name, "deleted an expired restore-test secret");
                deleted.push(name);
            }
            Err(e) => tracing::error!(secret = %name, error = %e, "could not delete an expired restore-test secret"),
        }
    }
    deleted
}

/// The manual-snapshot quota warning: the same rule (`lifeboat::quota`) that `snapshot` reports after each run.
async fn quota_note(deps: &Deps) -> Result<Option<String>, Error> {
    let s = &deps.settings;
    let manual = lifeboat::rds::list_manual(&deps.rds).await?.len();
    let region = deps.rds.config().region().map(|r| r.to_string()).unwrap_or_default();
    let q = lifeboat::quota::quota_report(&region, manual, s.snapshot_quota, s.quota_warn_percent);
    Ok(q.warning.then(|| {
        format!(
            "manual snapshots: {manual} of the quota of {} ({:.0}%)",
            q.quota, q.used_percent
        )
    }))
}

/// The Lambda entry: an evidence report when the event asks for one, else the monitoring run.
pub async fn run(deps: &Deps, payload: Value) -> Result<Value, Error> {
    let json = |v: Result<serde_json::Value, serde_json::Error>| {
        v.map_err(|e| Error::PartialFailure(format!("the run's summary could not be written as JSON: {e}")))
    };
    match event::parse(&payload).request {
        event::Request::Monitor => json(serde_json::to_value(handle(deps, payload).await?)),
        event::Request::Evidence { period } => {
            json(serde_json::to_value(crate::evidence::report(deps, period.as_deref()).await?))
        }
        event::Request::Unknown(action) => Err(Error::InvalidEvent(format!(
            "unknown action {action}: send {{}} for a monitoring run, or {{\"action\": \"{}\", \"period\": \"2026-10\"}} \
             for an evidence report",
            event::EVIDENCE_REPORT
        ))),
    }
}

/// Every cache and what was seen of the selected ones. A failed discovery does not stop the databases' run:
/// it is reported as a failure at the end, and the caches' alarms, finding no data, fire.
async fn observe_caches(
    deps: &Deps,
    now: DateTime<Utc>,
    metrics: &mut Metrics,
) -> Result<(Option<Vec<lifeboat::elasticache::Cache>>, CacheFleet), Error> {
    match lifeboat::elasticache::discover_all(&deps.ec, deps.settings.serverless_caches).await {
        Ok(all) => {
            let fleet = caches::observe(deps, &all, now, metrics).await?;
            Ok((Some(all), fleet))
        }
        Err(e) => Ok((
            None,
            CacheFleet {
                failures: vec![format!("caches: {e}")],
                ..CacheFleet::default()
            },
        )),
    }
}

/// Parse the event, observe the chosen databases (metrics and alarm sets), delete the alarms of databases that
/// are gone and the expired restore tests, warn about the quota, publish, report.
pub async fn handle(deps: &Deps, payload: Value) -> Result<Summary, Error> {
    let trigger = event::parse(&payload);
    tracing::info!(source = ?trigger.source, scheduled_at = ?trigger.time, "monitor run");
    let now = Utc::now();
    let s = &deps.settings;
    let all = selection::discover(&deps.rds).await?;
    let chosen = selection::select(&all, &s.common.selector);
    let mut metrics = Metrics::new();
    let Fleet {
        views,
        mut notes,
        mut wanted,
        mut failures,
    } = observe_fleet(deps, &chosen.databases, now, &mut metrics).await?;
    let (all_caches, cache_fleet) = observe_caches(deps, now, &mut metrics).await?;
    let keep_cache_alarms = all_caches.is_none();
    let all_caches = all_caches.unwrap_or_default();
    notes.extend(cache_fleet.notes);
    wanted.extend(cache_fleet.wanted);
    failures.extend(cache_fleet.failures);
    for missing in chosen
        .missing
        .iter()
        .filter(|m| !all_caches.iter().any(|c| &c.id == *m))
    {
        notes.push(format!("{missing}: named in LIFEBOAT_DATABASES but does not exist"));
    }
    let stale = delete_stale_alarms(deps, &wanted, keep_cache_alarms).await?;
    let janitor_deleted = janitor(deps, &all, now).await;
    let janitor_count = janitor_deleted.len() as f64;
    metrics.put(RESTORE_TEST_JANITOR_DELETED, janitor_count, StandardUnit::Count, &[]);
    notes.extend(quota_note(deps).await?);
    metrics.publish(&deps.cw, &s.common.metrics_namespace, now).await?;
    for note in &notes {
        tracing::warn!(finding = %note, "needs attention");
    }
    if !failures.is_empty() {
        return Err(Error::PartialFailure(format!(
            "could not observe {} database(s) or cache(s): {}",
            failures.len(),
            failures.join("; ")
        )));
    }
    Ok(Summary {
        databases: views,
        caches: cache_fleet.views,
        alarms_kept: wanted.len(),
        alarms_deleted: stale,
        janitor_deleted,
        attention: notes,
    })
}
