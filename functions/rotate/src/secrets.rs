//! Secrets Manager calls of the rotation protocol. Thin: the decisions are in `lifeboat::postgres::rotation`.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::Client;
use lifeboat::postgres::rotation::{AWSCURRENT, AWSPENDING};

use crate::credentials::{Credentials, Role};
use crate::error::RotateError;

/// What DescribeSecret says about a secret.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub name: String,
    pub rotation_enabled: bool,
    pub versions: BTreeMap<String, Vec<String>>,
}

pub async fn describe(sm: &Client, secret_id: &str) -> Result<Metadata, RotateError> {
    let out = sm
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| RotateError::aws("DescribeSecret", &e))?;
    let versions = out
        .version_ids_to_stages()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(Metadata {
        name: out.name().unwrap_or(secret_id).to_owned(),
        rotation_enabled: out.rotation_enabled().unwrap_or(false),
        versions,
    })
}

/// Reads one version of a secret, by stage (and version id). `Ok(None)` when that version has no value yet or
/// the stage is not attached to any version: the two answers the protocol expects for AWSPENDING and AWSPREVIOUS.
pub async fn get(
    sm: &Client,
    secret_id: &str,
    stage: &str,
    version_id: Option<&str>,
    role: Role,
) -> Result<Option<Credentials>, RotateError> {
    let out = match sm
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage(stage)
        .set_version_id(version_id.map(str::to_owned))
        .send()
        .await
    {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(RotateError::aws("GetSecretValue", &e).about(role)),
    };
    let Some(text) = out.secret_string() else {
        return Ok(None);
    };
    Credentials::parse(text)
        .map(Some)
        .map_err(|reason| RotateError::invalid_secret(role, reason))
}

/// Reads a version that must exist.
pub async fn require(
    sm: &Client,
    secret_id: &str,
    stage: &str,
    version_id: Option<&str>,
    role: Role,
) -> Result<Credentials, RotateError> {
    get(sm, secret_id, stage, version_id, role)
        .await?
        .ok_or_else(|| RotateError::invalid_secret(role, format!("the secret has no {} value", role.source())))
}

pub async fn random_password(sm: &Client, length: i64, exclude: &str) -> Result<String, RotateError> {
    let out = sm
        .get_random_password()
        .password_length(length)
        .exclude_characters(exclude)
        .require_each_included_type(true)
        .send()
        .await
        .map_err(|e| RotateError::aws("GetRandomPassword", &e))?;
    out.random_password()
        .map(str::to_owned)
        .ok_or_else(|| RotateError::aws_message("GetRandomPassword", "no password in the response"))
}

/// Stores the pending value under the rotation's token. With the same token and the same value this is a no-op
/// in Secrets Manager, so a retried createSecret cannot create a second version.
pub async fn put_pending(sm: &Client, secret_id: &str, token: &str, value: &Credentials) -> Result<(), RotateError> {
    sm.put_secret_value()
        .secret_id(secret_id)
        .client_request_token(token)
        .secret_string(value.to_json())
        .version_stages(AWSPENDING)
        .send()
        .await
        .map_err(|e| RotateError::aws("PutSecretValue", &e))?;
    Ok(())
}

/// Moves AWSCURRENT to the rotation's version; Secrets Manager moves AWSPREVIOUS to the version it left.
pub async fn promote(sm: &Client, secret_id: &str, token: &str, from_version: &str) -> Result<(), RotateError> {
    sm.update_secret_version_stage()
        .secret_id(secret_id)
        .version_stage(AWSCURRENT)
        .move_to_version_id(token)
        .remove_from_version_id(from_version)
        .send()
        .await
        .map_err(|e| RotateError::aws("UpdateSecretVersionStage", &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use aws_sdk_secretsmanager::operation::get_secret_value::{GetSecretValueError, GetSecretValueOutput};
    use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn a_version_without_a_value_reads_as_none() {
        let missing = mock!(Client::get_secret_value).then_error(|| {
            GetSecretValueError::ResourceNotFoundException(ResourceNotFoundException::builder().build())
        });
        let sm = mock_client!(aws_sdk_secretsmanager, [&missing]);
        let got = get(&sm, "s", AWSPENDING, Some("t"), Role::Pending).await.unwrap();
        assert!(got.is_none());
    }

    #[tokio::test]
    async fn access_denied_names_the_credential_and_keeps_the_service_message() {
        let denied = mock!(Client::get_secret_value)
            .sequence()
            .http_status(
                400,
                Some(
                    r#"{"__type":"AccessDeniedException","message":"not authorized to perform secretsmanager:GetSecretValue"}"#
                        .into(),
                ),
            )
            .build();
        let sm = mock_client!(aws_sdk_secretsmanager, [&denied]);
        let err = require(&sm, "m", AWSCURRENT, None, Role::Master).await.unwrap_err();
        assert_eq!(err.role, Some(Role::Master));
        assert!(err.message.starts_with("master credentials"), "{}", err.message);
        assert!(
            err.message
                .contains("not authorized to perform secretsmanager:GetSecretValue"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_secret_that_is_not_the_rds_shape_is_refused_without_echoing_it() {
        let binary = mock!(Client::get_secret_value).then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string(r#"{"user":"a","pass":"hunter2"}"#)
                .build()
        });
        let sm = mock_client!(aws_sdk_secretsmanager, [&binary]);
        let err = require(&sm, "s", AWSCURRENT, None, Role::Current).await.unwrap_err();
        assert!(err.message.contains("`username` is missing"), "{}", err.message);
        assert!(!err.message.contains("hunter2"));
    }
}
