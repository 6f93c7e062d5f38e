//! The content watch in monitor: every run, each watched database (with exports) and cache (with RDB copies) has
//! any anomaly its newest comparisons call for opened (so one the export function missed is opened within the
//! hour), and its open anomalies published as `ContentAnomalies` (its `content` alarm); and the console's
//! `acknowledge` action, which releases an anomaly's hold (`lifeboat::watch::hold` holds the rules).
//!
//! Must never: take the acknowledger's identity as more than stated (the record marks it `by_stated`), nor
//! publish a count it could not read (the metric is missing, and the alarm treats missing data as breaching).

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::Utc;
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{Metrics, CACHE_DIMENSION, CONTENT_ANOMALIES, DB_DIMENSION};
use lifeboat::watch::hold::{self, Clients};
use lifeboat::watch::record::{Acknowledgement, CACHE};
use serde::Serialize;

use crate::deps::Deps;
use crate::event::Acknowledge;

/// One resource's pass: open what its newest comparisons call for, publish its open anomalies, and note them.
/// A failure is returned for the run's report (the metric is then not published).
pub async fn watch(
    deps: &Deps,
    kind: &str,
    resource: &str,
    metrics: &mut Metrics,
    notes: &mut Vec<String>,
) -> Result<(), Error> {
    let s = &deps.settings;
    let clients = Clients {
        s3: &deps.s3,
        rds: &deps.rds,
        ec: &deps.ec,
        bucket: &s.bucket,
        serverless: s.serverless_caches,
    };
    for opened in hold::open_missed(clients, kind, resource).await? {
        if matches!(opened, hold::Opened::Opened(_) | hold::Opened::Appended(_)) {
            tracing::warn!(resource = %resource, outcome = ?opened, "content anomaly opened by monitor");
        }
    }
    let open = hold::open_anomalies(&deps.s3, &s.bucket, kind, resource).await?;
    let dimension = if kind == CACHE { CACHE_DIMENSION } else { DB_DIMENSION };
    metrics.put(
        CONTENT_ANOMALIES,
        open.len() as f64,
        StandardUnit::Count,
        &[(dimension, resource)],
    );
    for (key, a) in &open {
        let first = a.findings.first().map_or("", |f| f.line.as_str());
        notes.push(format!(
            "{resource}: content anomaly in `{}` ({first}); {} snapshot(s) and {} export(s) held until acknowledged ({key})",
            a.series,
            a.held.snapshots.len(),
            a.held.manifests.len()
        ));
    }
    Ok(())
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Serialize)]
pub struct Acknowledged {
    pub key: String,
    pub resource: String,
    pub series: String,
    pub acknowledgement: Acknowledgement,
    /// The restore points released to retention.
    pub released_snapshots: Vec<String>,
    pub released_manifests: Vec<String>,
}

/// The console's `acknowledge`: the open anomaly of the resource (and series) gets who (as stated), why and
/// when. Refused, with why, when nothing is open.
pub async fn acknowledge(deps: &Deps, req: &Acknowledge) -> Result<Acknowledged, Error> {
    let ack = Acknowledgement {
        by: req.by.clone(),
        by_stated: true,
        why: req.why.clone(),
        at: Utc::now(),
    };
    match hold::acknowledge_open(
        &deps.s3,
        &deps.settings.bucket,
        &req.resource,
        req.series.as_deref(),
        ack,
    )
    .await?
    {
        Ok((key, a)) => Ok(Acknowledged {
            key,
            resource: a.resource,
            series: a.series,
            acknowledgement: a.acknowledged.unwrap_or_else(|| Acknowledgement {
                by: String::new(),
                by_stated: true,
                why: String::new(),
                at: Utc::now(),
            }),
            released_snapshots: a.held.snapshots,
            released_manifests: a.held.manifests,
        }),
        Err(refused) => Err(Error::InvalidEvent(refused.to_string())),
    }
}
