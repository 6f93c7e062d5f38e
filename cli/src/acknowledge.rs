//! `lifeboat acknowledge`: a person accepts a content anomaly (`lifeboat::watch::hold`). Translates only: who is
//! the caller's AWS identity (STS `GetCallerIdentity`, its ARN), never a name typed on the command line; the rule
//! (which anomaly, why required and bounded, nothing open refused) and the write are the library's, the same the
//! monitor function's console action uses.

use chrono::Utc;
use lifeboat::core::settings::ProcessEnv;
use lifeboat::watch::hold;
use lifeboat::watch::record::Acknowledgement;
use serde_json::json;

use crate::args;
use crate::run::{aws_config, CliError, Done};

/// `lifeboat acknowledge`.
pub async fn acknowledge(a: &args::Acknowledge, profile: Option<&str>) -> Result<Done, CliError> {
    let bucket = a
        .bucket
        .clone()
        .or_else(|| lifeboat::core::settings::read(&ProcessEnv, lifeboat::core::settings::BUCKET))
        .ok_or(CliError::NoBucket)?;
    let config = aws_config(profile).await;
    let caller = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| CliError::Aws {
            operation: "GetCallerIdentity".into(),
            message: lifeboat::core::error::aws_error_message(&e),
        })?;
    let by = caller
        .arn()
        .map(str::to_owned)
        .ok_or_else(|| CliError::Refused("STS named no caller ARN: who acknowledges cannot be recorded".into()))?;
    let s3 = aws_sdk_s3::Client::new(&config);
    let ack = Acknowledgement {
        by,
        by_stated: false,
        why: a.why.clone(),
        at: Utc::now(),
    };
    let (key, anomaly) = hold::acknowledge_open(&s3, &bucket, &a.resource, a.series.as_deref(), ack)
        .await
        .map_err(CliError::Gather)?
        .map_err(|refused| CliError::Refused(refused.to_string()))?;
    let done = anomaly.acknowledged.as_ref();
    let json = json!({
        "command": "acknowledge",
        "key": key,
        "resource": anomaly.resource,
        "series": anomaly.series,
        "by": done.map(|d| d.by.as_str()),
        "why": done.map(|d| d.why.as_str()),
        "at": done.map(|d| d.at),
        "released": {"snapshots": anomaly.held.snapshots, "manifests": anomaly.held.manifests},
    });
    let text = format!(
        "acknowledged {key}\n  {} `{}`: {} snapshot(s) and {} export(s) released to retention\n",
        anomaly.resource,
        anomaly.series,
        anomaly.held.snapshots.len(),
        anomaly.held.manifests.len()
    );
    Ok(Done { json, text })
}
