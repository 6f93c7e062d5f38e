//! What a restore-test step acts on, found from AWS and never from the state it is handed: the restored
//! instance, cluster or replication group that the source's name and the request time name
//! (`lifeboat::rds::restore::test_identifier`, `lifeboat::caches::restore::test_group_id`), accepted only when it carries the restore-test
//! tag and the source tag naming the database or cache under test; its endpoint, master user and shards as RDS
//! or ElastiCache describe them; the verify step's own record of its checks, read back by the report.
//!
//! Owns the finding and the refusals. It must never take a host, a port, a secret, an identifier or a verdict
//! from the state: whoever may invoke a step may send any state (issue #22).

use std::collections::BTreeMap;

use lifeboat::caches::restore::{self as cache_rules, Group, SOURCE_CACHE};
use lifeboat::core::error::Error;
use lifeboat::rds::instances as rds;
use lifeboat::rds::restore::{owned_test, test_member_identifier, VerifyRecord, SOURCE_DB};
use lifeboat::rds::selection::DbKind;
use serde::de::DeserializeOwned;

use crate::deps::Deps;
use crate::error::RestoreError;
use crate::event::{CacheTestState, TestState};

/// A restored database as RDS describes it.
#[derive(Debug, Clone)]
pub struct RestoredDb {
    pub kind: DbKind,
    pub id: String,
    /// A cluster's member instance (where SQL runs).
    pub member: Option<String>,
    /// The status of the instance that serves SQL (a cluster's member).
    pub status: String,
    pub endpoint: Option<(String, u16)>,
    pub master_user: String,
    pub tags: BTreeMap<String, String>,
}

/// How a step logs in to the test's own instance: the endpoint RDS describes for it (once available, through the
/// configured redirects), as its master user, with the password in the test's own secret.
/// No `Debug`: it holds a password.
pub(crate) struct Login {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl RestoredDb {
    /// [`Login`] to this instance; `too_early` is the step's refusal while it has no endpoint yet.
    pub(crate) async fn login(
        &self,
        deps: &Deps,
        test: &TestState,
        too_early: &'static str,
    ) -> Result<Login, RestoreError> {
        let (host, port) = self
            .endpoint
            .clone()
            .filter(|_| self.status == "available")
            .ok_or(RestoreError::OutOfOrder(too_early))?;
        let (host, port) = deps.settings.redirects.reach(&host, port);
        let secret = lifeboat::rds::restore::test_secret_name(&self.id);
        Ok(Login {
            host,
            port,
            user: self.master_user.clone(),
            password: crate::password::read_own(&deps.sm, &secret, &test.database).await?,
        })
    }
}

/// Refuses a state whose restored identifier is not the derived one.
pub fn same_id(field: &'static str, given: Option<&str>, derived: &str) -> Result<(), RestoreError> {
    match given {
        Some(g) if g != derived => Err(RestoreError::NotOwnTest {
            field,
            given: g.to_owned(),
            derived: derived.to_owned(),
        }),
        _ => Ok(()),
    }
}

fn owned(id: &str, tags: &BTreeMap<String, String>, key: &str, source: &str) -> Result<(), RestoreError> {
    owned_test(tags, key, source).map_err(|reason| RestoreError::NotOwned {
        id: id.to_owned(),
        source_id: source.to_owned(),
        reason,
    })
}

/// The test's restored instance or cluster, `None` when there is none; refused when the state names another or
/// what carries the name is not a restore test of the database.
pub async fn database(deps: &Deps, test: &TestState) -> Result<Option<RestoredDb>, RestoreError> {
    let id = test.derived_id();
    same_id("restored_id", test.restored_id.as_deref(), &id)?;
    if let Some(i) = rds::instance(&deps.rds, &id).await? {
        owned(&id, &i.tags, SOURCE_DB, &test.database)?;
        return Ok(Some(RestoredDb {
            kind: DbKind::Instance,
            id,
            member: None,
            status: i.status,
            endpoint: i.endpoint,
            master_user: i.master_user,
            tags: i.tags,
        }));
    }
    let Some(c) = rds::cluster(&deps.rds, &id).await? else {
        return Ok(None);
    };
    owned(&id, &c.tags, SOURCE_DB, &test.database)?;
    let member = test_member_identifier(&id);
    let instance = rds::instance(&deps.rds, &member).await?;
    Ok(Some(RestoredDb {
        kind: DbKind::Cluster,
        id,
        status: instance
            .as_ref()
            .map_or_else(|| "creating".to_owned(), |i| i.status.clone()),
        endpoint: instance.and_then(|i| i.endpoint),
        member: Some(member),
        master_user: c.master_user,
        tags: c.tags,
    }))
}

/// The test's restored instance or cluster, which must exist by now.
pub async fn existing(deps: &Deps, test: &TestState) -> Result<RestoredDb, RestoreError> {
    database(deps, test).await?.ok_or_else(|| {
        RestoreError::NotFound(format!(
            "restored instance or cluster {} does not exist",
            test.derived_id()
        ))
    })
}

/// Writes a verify step's record of its checks at `key` (the test's own, [`TestState::record_key`]), which the
/// report step reads back.
pub async fn write_record(deps: &Deps, key: &str, record: &VerifyRecord) -> Result<(), RestoreError> {
    let body = serde_json::to_vec_pretty(record).map_err(RestoreError::Report)?;
    Ok(crate::deps::put_report(deps, key.to_owned(), body, "application/json").await?)
}

/// The test's restored group, `None` when there is none; refused when the state names another or the group is
/// not a restore test of the cache.
pub async fn group(deps: &Deps, test: &CacheTestState) -> Result<Option<Group>, RestoreError> {
    let id = test.group_id();
    same_id("restored_id", test.restored_id.as_deref(), &id)?;
    let Some(g) = cache_rules::group(&deps.ec, &id).await? else {
        return Ok(None);
    };
    owned(&id, &g.tags, SOURCE_CACHE, &test.cache)?;
    Ok(Some(g))
}

/// A record the steps wrote to the bucket, `None` when there is none.
pub async fn record<T: DeserializeOwned>(deps: &Deps, key: &str) -> Result<Option<T>, RestoreError> {
    let got = deps.s3.get_object().bucket(&deps.settings.bucket).key(key).send().await;
    let out = match got {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(Error::aws("GetObject", e).into()),
    };
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| Error::aws_other("GetObject", lifeboat::core::error::aws_error_message(&e)))?
        .into_bytes();
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| Error::PartialFailure(format!("{key} is not what Lifeboat wrote: {e}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_naming_another_restored_resource_is_refused() {
        assert!(same_id("restored_id", None, "lifeboat-rt-a-1").is_ok());
        assert!(same_id("restored_id", Some("lifeboat-rt-a-1"), "lifeboat-rt-a-1").is_ok());
        let err = same_id("restored_id", Some("app-prod"), "lifeboat-rt-a-1").unwrap_err();
        assert!(err.to_string().contains("app-prod"), "{err}");
    }
}
