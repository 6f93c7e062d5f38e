//! The restore tests' short-lived password secrets (`lifeboat/restore-test/<restored id>`), as cleanup and the
//! janitor see them: which have expired, and the one delete (no recovery window).
//!
//! Never reads a secret's value; deletes only a name under [`crate::rds::restore::TEST_SECRET_PREFIX`] whose tags make it
//! a restore test ([`crate::rds::restore::expired_restore_test`] decides for the janitor).

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use chrono::{DateTime, Utc};

use crate::core::error::Error;
use crate::rds::restore::{expired_restore_test, TEST_SECRET_PREFIX};

/// The names of the restore-test secrets whose `lifeboat:expires-at` has passed (a cleanup that never ran leaves
/// them behind).
pub async fn expired(sm: &aws_sdk_secretsmanager::Client, now: DateTime<Utc>) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut pages = sm
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values(TEST_SECRET_PREFIX)
                .build(),
        )
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("ListSecrets", e))?;
        for s in page.secret_list() {
            let Some(name) = s.name().filter(|n| n.starts_with(TEST_SECRET_PREFIX)) else {
                continue;
            };
            let tags = s
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
                .collect();
            if expired_restore_test(&tags, now) {
                out.push(name.to_owned());
            }
        }
    }
    Ok(out)
}

/// Deletes a restore-test secret at once (no recovery window); `false` when there was none. Refuses a name outside
/// the restore-test prefix: no caller may turn this into a delete of any other secret.
pub async fn delete(sm: &aws_sdk_secretsmanager::Client, name: &str) -> Result<bool, Error> {
    if !name.starts_with(TEST_SECRET_PREFIX) {
        return Err(Error::PartialFailure(format!(
            "refusing to delete secret {name}: it is not under {TEST_SECRET_PREFIX}"
        )));
    }
    match sm
        .delete_secret()
        .secret_id(name)
        .force_delete_without_recovery(true)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(Error::aws("DeleteSecret", e)),
    }
}
