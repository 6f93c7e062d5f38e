//! The restore test's master password, kept in a short-lived Secrets Manager secret instead of the execution's
//! state: Step Functions keeps every state's input and output for 90 days, readable by anyone with
//! `states:GetExecutionHistory`, so only the secret's ARN rides there (as AWS's own `ManageMasterUserPassword`
//! keeps only a secret's ARN on the instance). Prepare creates the secret, verify reads it, cleanup deletes it
//! without recovery window on every path; it is tagged as a restore test with an expiry, for monitor's janitor.
//!
//! A step reads one secret only: its own test's, by the name its restored identifier gives
//! (`lifeboat/restore-test/<restored id>`), and only when that secret's tags say it is a restore test of the
//! source under test ([`read_own`]). An ARN in the state is never followed.
//!
//! Owns creating and reading the secret (the delete is `lifeboat::rds::test_secrets`', shared with the janitor). It must never log, return in an error message, or put in the
//! state the password itself.

use chrono::{DateTime, Utc};
use lifeboat::core::error::Error;
use lifeboat::rds::restore::{EXPIRES_AT, RESTORE_TEST, SOURCE_DB};
use serde::{Deserialize, Serialize};

use crate::error::RestoreError;

/// What the secret holds, in the shape RDS's managed master secrets have.
#[derive(Serialize, Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// The restore test a secret belongs to, and the secret's name (`lifeboat::rds::restore::test_secret_name` of the
/// restored instance, `lifeboat::caches::restore::test_secret_name` of a cache's group).
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub name: &'a str,
    pub restored_id: &'a str,
    pub database: &'a str,
    pub expires: DateTime<Utc>,
}

/// Deliberately without `lifeboat:managed`: that tag admits a secret to the export's and rotate's roles, and a
/// restore test's master password is for the restore function alone.
fn tags(owner: &Owner<'_>) -> Vec<aws_sdk_secretsmanager::types::Tag> {
    [
        (RESTORE_TEST, "true".to_owned()),
        (SOURCE_DB, owner.database.to_owned()),
        (EXPIRES_AT, owner.expires.to_rfc3339()),
    ]
    .into_iter()
    .map(|(k, v)| aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build())
    .collect()
}

/// A fresh random password from Secrets Manager, of characters every RDS engine accepts in a master password.
pub async fn random(sm: &aws_sdk_secretsmanager::Client) -> Result<String, RestoreError> {
    sm.get_random_password()
        .password_length(32)
        .exclude_characters(lifeboat::postgres::rotation::DEFAULT_EXCLUDED_CHARACTERS)
        .send()
        .await
        .map_err(|e| Error::aws("GetRandomPassword", e))?
        .random_password()
        .map(str::to_owned)
        .ok_or_else(|| RestoreError::InvalidSecret("GetRandomPassword returned no password".into()))
}

/// Stores the password in the test's secret (created, or given a new value when a retried prepare finds it);
/// answers the secret's ARN.
pub async fn store(
    sm: &aws_sdk_secretsmanager::Client,
    owner: &Owner<'_>,
    username: &str,
    password: &str,
) -> Result<String, RestoreError> {
    let name = owner.name;
    let value = serde_json::to_string(&Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
    .map_err(RestoreError::State)?;
    let created = sm
        .create_secret()
        .name(name)
        .description(format!(
            "Lifeboat restore test {}: master password of the restored copy of {}; deleted by its cleanup",
            owner.restored_id, owner.database
        ))
        .secret_string(&value)
        .set_tags(Some(tags(owner)))
        .send()
        .await;
    let arn = match created {
        Ok(out) => out.arn().map(str::to_owned),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_exists_exception()) => sm
            .put_secret_value()
            .secret_id(name)
            .secret_string(&value)
            .send()
            .await
            .map_err(|e| Error::aws("PutSecretValue", e))?
            .arn()
            .map(str::to_owned),
        Err(e) => return Err(Error::aws("CreateSecret", e).into()),
    };
    arn.ok_or_else(|| RestoreError::InvalidSecret(format!("Secrets Manager returned no ARN for {name}")))
}

/// The password in the test's own secret `name` (derived by the caller from the restored identifier, never
/// taken from a payload), read only when its tags say `lifeboat:restore-test=true` and name `source` (the
/// database or cache under test).
pub async fn read_own(sm: &aws_sdk_secretsmanager::Client, name: &str, source: &str) -> Result<String, RestoreError> {
    let name = name.to_owned();
    let described = sm
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .map_err(|e| Error::aws("DescribeSecret", e))?;
    let tags = described
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect();
    lifeboat::rds::restore::owned_test(&tags, SOURCE_DB, source).map_err(|reason| RestoreError::NotOwned {
        id: name.clone(),
        source_id: source.to_owned(),
        reason,
    })?;
    let text = crate::deps::secret_text(sm, &name).await?;
    serde_json::from_str::<Credentials>(&text)
        .map(|c| c.password)
        // Never the value: it is the password.
        .map_err(|_| RestoreError::InvalidSecret(format!("{name} does not hold {{\"username\", \"password\"}}")))
}

/// Deletes the test's secret `name` at once (no recovery window); `false` when there was none.
pub async fn delete(sm: &aws_sdk_secretsmanager::Client, name: &str) -> Result<bool, Error> {
    lifeboat::rds::test_secrets::delete(sm, name).await
}
