//! The CloudWatch alarm adapter monitor's parts share: put one alarm of a set, list this stack's alarms, delete
//! alarms. Which alarms exist and with what thresholds is decided in `lifeboat::monitoring::monitor`; this
//! module only carries the decision to CloudWatch, for the handler (databases), `caches.rs` and `deselection.rs`.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
use lifeboat::core::error::Error;
use lifeboat::monitoring::monitor::{
    AlarmSpec, Comparison, ALARM_DATAPOINTS_TO_ALARM, ALARM_EVALUATION_PERIODS, ALARM_PERIOD_S,
    ALARM_TREAT_MISSING_DATA,
};

use crate::deps::Deps;

/// Puts one alarm of a database's or a cache's set; `subject` is its dimension (`DBIdentifier` or
/// `CacheIdentifier`) and identifier.
pub async fn put_alarm(deps: &Deps, subject: (&str, &str), spec: &AlarmSpec) -> Result<(), Error> {
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

/// This stack's alarms: those under its own prefix (`lifeboat/<stack>/`), never another stack's.
pub async fn existing_alarms(deps: &Deps) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut pages = deps
        .cw
        .describe_alarms()
        .alarm_name_prefix(deps.settings.alarm_scope.prefix())
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

/// Deletes alarms, a hundred names per call (the API's limit).
pub async fn delete_alarms(deps: &Deps, names: &[String]) -> Result<(), Error> {
    for chunk in names.chunks(100) {
        deps.cw
            .delete_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| Error::aws("DeleteAlarms", e))?;
    }
    Ok(())
}
