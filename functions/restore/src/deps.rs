//! What every step of the `restore` function is handed: the AWS clients, each built on its first call, and the
//! settings; and the small calls every step makes through them (the source database, whether an identifier
//! exists, the age identity, writing a report, the text of a caught error).
//!
//! Its own module so that the handler and the modules it dispatches to (`console.rs`, `from_export.rs`,
//! `caches.rs`, `cache_rdb.rs`, `cache_shards.rs`, `cache_console.rs`, `restored.rs`) all stand on it and none of
//! them imports the handler back.

use lifeboat::core::client::OnFirstUse;
use lifeboat::core::error::Error;
use lifeboat::rds::instances as rds;
use lifeboat::rds::selection::{self, Database, DbKind};
use serde_json::Value;

use crate::error::RestoreError;
use crate::settings::RestoreSettings;

#[derive(Debug, Clone)]
pub struct Deps {
    pub rds: OnFirstUse<aws_sdk_rds::Client>,
    pub s3: OnFirstUse<aws_sdk_s3::Client>,
    pub sm: OnFirstUse<aws_sdk_secretsmanager::Client>,
    pub cw: OnFirstUse<aws_sdk_cloudwatch::Client>,
    pub ec: OnFirstUse<aws_sdk_elasticache::Client>,
    pub settings: RestoreSettings,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: RestoreSettings) -> Self {
        Self {
            rds: OnFirstUse::new(config, aws_sdk_rds::Client::new),
            s3: OnFirstUse::new(config, aws_sdk_s3::Client::new),
            sm: OnFirstUse::new(config, aws_sdk_secretsmanager::Client::new),
            cw: OnFirstUse::new(config, aws_sdk_cloudwatch::Client::new),
            ec: OnFirstUse::new(config, aws_sdk_elasticache::Client::new),
            settings,
        }
    }
}

/// The source database by identifier (an instance, or a cluster; never a cluster's member instance).
pub(crate) async fn find(deps: &Deps, id: &str) -> Result<Database, RestoreError> {
    let all = selection::discover(&deps.rds).await?;
    all.into_iter()
        .find(|d| d.id == id && d.cluster.is_none())
        .ok_or_else(|| RestoreError::NotFound(format!("no instance or cluster `{id}` in this region")))
}

/// Whether an instance or cluster of that identifier exists.
pub(crate) async fn exists(deps: &Deps, kind: DbKind, id: &str) -> Result<bool, Error> {
    Ok(match kind {
        DbKind::Instance => rds::instance(&deps.rds, id).await?.is_some(),
        DbKind::Cluster => rds::cluster(&deps.rds, id).await?.is_some(),
    })
}

/// A secret's current text (empty when it holds binary only). The callers name what they expected in it, never
/// its value.
pub(crate) async fn secret_text(sm: &aws_sdk_secretsmanager::Client, secret: &str) -> Result<String, Error> {
    let value = sm
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| Error::aws("GetSecretValue", e))?;
    Ok(value.secret_string().unwrap_or_default().to_owned())
}

pub(crate) async fn age_identity(deps: &Deps) -> Result<Option<age::x25519::Identity>, RestoreError> {
    let Some(secret) = &deps.settings.age_identity_secret else {
        return Ok(None);
    };
    let text = secret_text(&deps.sm, secret).await?;
    text.trim().parse::<age::x25519::Identity>().map(Some).map_err(|_| {
        RestoreError::InvalidSecret(format!(
            "secret {secret} does not hold an age identity (AGE-SECRET-KEY-1...)"
        ))
    })
}

pub(crate) fn error_text(error: &Value) -> String {
    // Step Functions' caught error: {"Error": "...", "Cause": "<the function's error JSON or text>"}.
    let cause = error.get("Cause").and_then(Value::as_str).unwrap_or_default();
    let message = serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|c| c.get("errorMessage").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned());
    let kind = error.get("Error").and_then(Value::as_str).unwrap_or("error");
    if message.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {message}")
    }
}

/// Writes one report object, encrypted with the bucket's KMS key.
pub(crate) async fn put_report(deps: &Deps, key: String, body: Vec<u8>, content_type: &str) -> Result<(), Error> {
    deps.s3
        .put_object()
        .bucket(&deps.settings.bucket)
        .key(&key)
        .content_type(content_type)
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(body.into())
        .send()
        .await
        .map_err(|e| Error::aws("PutObject", e))?;
    Ok(())
}
