//! CloudWatch metrics: collected during a run, published in batches at its end.
//!
//! Namespace `Lifeboat` (configurable), dimension `DBIdentifier` on per-database figures. Publishing happens
//! once per run so that a run costs a handful of PutMetricData calls whatever the fleet size.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_cloudwatch::Client;
use chrono::{DateTime, Utc};

use crate::error::Error;

pub const DB_DIMENSION: &str = "DBIdentifier";
/// PutMetricData accepts up to 1,000 datums per call; staying well under also keeps the payload under 1 MB.
pub const BATCH_SIZE: usize = 500;

/// One figure, kept as plain data so tests can inspect what a run would publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: StandardUnit,
    pub dimensions: Vec<(String, String)>,
}

/// The metrics of one run.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    items: Vec<Metric>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// A per-database figure.
    pub fn db(&mut self, db: &str, name: &str, value: f64, unit: StandardUnit) {
        self.items.push(Metric {
            name: name.to_owned(),
            value,
            unit,
            dimensions: vec![(DB_DIMENSION.to_owned(), db.to_owned())],
        });
    }

    /// A figure with explicit dimensions (or none, for account/region-wide figures).
    pub fn put(&mut self, name: &str, value: f64, unit: StandardUnit, dimensions: &[(&str, &str)]) {
        self.items.push(Metric {
            name: name.to_owned(),
            value,
            unit,
            dimensions: dimensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
    }

    pub fn items(&self) -> &[Metric] {
        &self.items
    }

    /// Looks up a figure by name and `DBIdentifier` (for tests and summaries).
    pub fn value_for(&self, db: &str, name: &str) -> Option<f64> {
        self.items
            .iter()
            .find(|m| m.name == name && m.dimensions.iter().any(|(k, v)| k == DB_DIMENSION && v == db))
            .map(|m| m.value)
    }

    /// Publishes every figure, timestamped `at`, in as few calls as the API allows.
    pub async fn publish(&self, cw: &Client, namespace: &str, at: DateTime<Utc>) -> Result<usize, Error> {
        let timestamp = aws_sdk_cloudwatch::primitives::DateTime::from_millis(at.timestamp_millis());
        for chunk in self.items.chunks(BATCH_SIZE) {
            let data: Vec<MetricDatum> = chunk
                .iter()
                .map(|m| {
                    MetricDatum::builder()
                        .metric_name(&m.name)
                        .value(m.value)
                        .unit(m.unit.clone())
                        .timestamp(timestamp)
                        .set_dimensions(Some(
                            m.dimensions
                                .iter()
                                .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                                .collect(),
                        ))
                        .build()
                })
                .collect();
            cw.put_metric_data()
                .namespace(namespace)
                .set_metric_data(Some(data))
                .send()
                .await
                .map_err(|e| Error::aws("PutMetricData", e))?;
        }
        Ok(self.items.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    #[tokio::test]
    async fn publishes_in_batches_with_the_db_dimension() {
        let rule = mock!(Client::put_metric_data)
            .match_requests(|r| {
                r.namespace() == Some("Lifeboat")
                    && r.metric_data().len() <= BATCH_SIZE
                    && r.metric_data()
                        .iter()
                        .all(|d| d.dimensions().len() == 1 && d.dimensions()[0].name() == Some(DB_DIMENSION))
            })
            .then_output(|| PutMetricDataOutput::builder().build());
        let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let mut m = Metrics::new();
        for i in 0..1_200 {
            m.db(&format!("db-{i}"), "SnapshotCreated", 1.0, StandardUnit::Count);
        }
        assert_eq!(m.publish(&cw, "Lifeboat", Utc::now()).await.unwrap(), 1_200);
        assert_eq!(rule.num_calls(), 3);
        assert_eq!(m.value_for("db-7", "SnapshotCreated"), Some(1.0));
        assert_eq!(m.value_for("db-7", "SnapshotFailed"), None);
    }
}
