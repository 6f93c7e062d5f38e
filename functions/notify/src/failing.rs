//! Which caches the stack's RDB copy alarm is about. Its one series is a Metrics Insights query, the maximum of
//! `RdbCopyFailed` over every cache, so the alarm itself names none; each cache's own series says which failed.

use std::collections::BTreeSet;

use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricStat};
use chrono::{DateTime, Duration, Utc};
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{CACHE_DIMENSION, RDB_COPY_FAILED};
use lifeboat::monitoring::monitor::AlarmScope;

/// How far before the state change the caches' series are read: the alarm's period (an hour) and the one before,
/// since the hour that breached may have started up to an hour before the change.
const LOOK_BACK: Duration = Duration::hours(2);
/// The resolution of the read (CloudWatch keeps 5-minute data for 63 days).
const PERIOD_SECONDS: i32 = 300;
/// GetMetricData takes at most 500 queries a request.
const QUERIES_PER_REQUEST: usize = 500;

/// `lifeboat/<stack>/rdb-copy-failed`: the template's `RdbCopyFailedAlarm`.
pub fn rdb_copy_alarm(scope: &AlarmScope) -> String {
    format!("{}rdb-copy-failed", scope.prefix())
}

/// The caches whose `RdbCopyFailed` reached 1 in the two hours up to `since` (the alarm's change), sorted. Best
/// effort: a read that fails is logged and names none, and the message then names the alarm alone.
pub async fn caches(cw: &aws_sdk_cloudwatch::Client, namespace: &str, since: DateTime<Utc>) -> Vec<String> {
    match read(cw, namespace, since).await {
        Ok(caches) => caches.into_iter().collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read RdbCopyFailed per cache; the message names the alarm alone");
            Vec::new()
        }
    }
}

/// The cache a series of `RdbCopyFailed` is of: the alarm's query reads the series with that one dimension.
fn cache_of(m: &Metric) -> Option<&str> {
    match m.dimensions() {
        [d] if d.name() == Some(CACHE_DIMENSION) => d.value(),
        _ => None,
    }
}

async fn read(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    since: DateTime<Utc>,
) -> Result<BTreeSet<String>, Error> {
    let mut series = Vec::new();
    let mut pages = cw
        .list_metrics()
        .namespace(namespace)
        .metric_name(RDB_COPY_FAILED)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("ListMetrics", e))?;
        series.extend(page.metrics().iter().filter(|m| cache_of(m).is_some()).cloned());
    }
    let time = |t: DateTime<Utc>| aws_sdk_cloudwatch::primitives::DateTime::from_secs(t.timestamp());
    let mut failing = BTreeSet::new();
    for chunk in series.chunks(QUERIES_PER_REQUEST) {
        let queries = chunk.iter().enumerate().map(|(i, m)| {
            let stat = MetricStat::builder()
                .metric(m.clone())
                .period(PERIOD_SECONDS)
                .stat("Maximum")
                .build();
            MetricDataQuery::builder().id(format!("m{i}")).metric_stat(stat).build()
        });
        let mut pages = cw
            .get_metric_data()
            .set_metric_data_queries(Some(queries.collect()))
            .start_time(time(since - LOOK_BACK))
            .end_time(time(since + Duration::minutes(5)))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws("GetMetricData", e))?;
            for result in page.metric_data_results() {
                let index = result.id().and_then(|id| id.strip_prefix('m')?.parse::<usize>().ok());
                let cache = index.and_then(|i| chunk.get(i)).and_then(cache_of);
                if let Some(cache) = cache.filter(|_| result.values().iter().any(|v| *v >= 1.0)) {
                    failing.insert(cache.to_owned());
                }
            }
        }
    }
    Ok(failing)
}
