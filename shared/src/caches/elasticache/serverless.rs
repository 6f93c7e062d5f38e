//! ElastiCache Serverless caches in the same [`Cache`] model: discovered with their tags, snapshotted by
//! CreateServerlessCacheSnapshot under the same deterministic name and tags, listed and deleted (only Lifeboat's,
//! guarded by [`super::delete_snapshot`]). A serverless cache is encrypted at rest (always), speaks TLS only and
//! is replicated across zones by ElastiCache, so those facts are set, not read.

use std::collections::BTreeMap;

use aws_sdk_elasticache::operation::create_serverless_cache_snapshot::CreateServerlessCacheSnapshotError;
use aws_sdk_elasticache::types::{ServerlessCache, ServerlessCacheSnapshot, Tag};
use aws_sdk_elasticache::Client;

use super::{tags_of, Cache, CacheKind, CacheSnapshot, Created};
use crate::core::error::Error;

/// A serverless Redis OSS or Valkey cache (Memcached has no snapshots: never a cache of Lifeboat's).
fn from_serverless(c: &ServerlessCache) -> Option<Cache> {
    if c.engine() == Some("memcached") {
        return None;
    }
    Some(Cache {
        id: c.serverless_cache_name()?.to_owned(),
        kind: CacheKind::Serverless,
        arn: c.arn().unwrap_or_default().to_owned(),
        engine: c.engine().unwrap_or("valkey").to_owned(),
        status: c.status().unwrap_or_default().to_owned(),
        tags: BTreeMap::new(),
        cluster_mode: false,
        members: Vec::new(),
        at_rest_encryption: true,
        transit_encryption: true,
        snapshot_retention_days: c.snapshot_retention_limit().unwrap_or(0),
        replicated: true,
    })
}

/// Every serverless cache in the client's region, with its tags.
pub(super) async fn discover(client: &Client) -> Result<Vec<Cache>, Error> {
    let mut out = Vec::new();
    let mut pages = client.describe_serverless_caches().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("DescribeServerlessCaches", e))?;
        out.extend(page.serverless_caches().iter().filter_map(from_serverless));
    }
    for cache in &mut out {
        cache.tags = tags_of(client, &cache.arn).await?;
    }
    Ok(out)
}

fn snapshot_of(s: &ServerlessCacheSnapshot, tags: BTreeMap<String, String>) -> CacheSnapshot {
    CacheSnapshot {
        name: s.serverless_cache_snapshot_name().unwrap_or_default().to_owned(),
        arn: s.arn().unwrap_or_default().to_owned(),
        cache: s
            .serverless_cache_configuration()
            .and_then(|c| c.serverless_cache_name())
            .unwrap_or_default()
            .to_owned(),
        status: s.status().unwrap_or_default().to_owned(),
        source: s.snapshot_type().unwrap_or_default().to_owned(),
        tags,
        // ElastiCache's own time of a serverless snapshot (its RPO anchor when Lifeboat's tag is absent).
        created: crate::rds::snapshots::to_chrono(s.create_time()),
        serverless: true,
    }
}

/// Every serverless cache snapshot in the region; tags are read only under Lifeboat's name prefix, as for the
/// other snapshots.
pub(super) async fn list_snapshots(client: &Client) -> Result<Vec<CacheSnapshot>, Error> {
    let mut out = Vec::new();
    let mut pages = client.describe_serverless_cache_snapshots().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("DescribeServerlessCacheSnapshots", e))?;
        for s in page.serverless_cache_snapshots() {
            let ours = s
                .serverless_cache_snapshot_name()
                .is_some_and(|n| n.starts_with(&format!("{}-", crate::rds::naming::PREFIX)));
            let tags = match s.arn() {
                Some(arn) if ours => tags_of(client, arn).await?,
                _ => BTreeMap::new(),
            };
            out.push(snapshot_of(s, tags));
        }
    }
    Ok(out)
}

/// Starts a snapshot of serverless cache `cache` named `name`, tagged with `tags`; the refusals are the same
/// outcomes as a group's.
pub(super) async fn create_snapshot(
    client: &Client,
    cache: &str,
    name: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Created, Error> {
    let mut req = client
        .create_serverless_cache_snapshot()
        .serverless_cache_name(cache)
        .serverless_cache_snapshot_name(name);
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(k).value(v).build());
    }
    match req.send().await {
        Ok(out) => {
            let made = out.serverless_cache_snapshot().map(|s| snapshot_of(s, tags.clone()));
            Ok(Created::Started(made.unwrap_or_else(|| CacheSnapshot {
                name: name.to_owned(),
                arn: String::new(),
                cache: cache.to_owned(),
                status: "creating".to_owned(),
                source: "manual".to_owned(),
                tags: tags.clone(),
                created: None,
                serverless: true,
            })))
        }
        Err(e) => match e.as_service_error() {
            Some(CreateServerlessCacheSnapshotError::ServerlessCacheSnapshotAlreadyExistsFault(_)) => {
                Ok(Created::AlreadyExists)
            }
            Some(CreateServerlessCacheSnapshotError::InvalidServerlessCacheStateFault(f)) => {
                Ok(Created::InvalidState(f.message().unwrap_or_default().to_owned()))
            }
            Some(CreateServerlessCacheSnapshotError::ServerlessCacheSnapshotQuotaExceededFault(f)) => {
                Ok(Created::QuotaExceeded(f.message().unwrap_or_default().to_owned()))
            }
            _ => Err(Error::aws("CreateServerlessCacheSnapshot", e)),
        },
    }
}

/// Deletes a serverless snapshot; the caller ([`super::delete_snapshot`]) has checked it is Lifeboat's. A
/// snapshot already gone is not an error.
pub(super) async fn delete_snapshot(client: &Client, name: &str) -> Result<(), Error> {
    match client
        .delete_serverless_cache_snapshot()
        .serverless_cache_snapshot_name(name)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_serverless_cache_snapshot_not_found_fault()) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::aws("DeleteServerlessCacheSnapshot", e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_sdk_elasticache::operation::delete_serverless_cache_snapshot::{
        DeleteServerlessCacheSnapshotError, DeleteServerlessCacheSnapshotOutput,
    };
    use aws_sdk_elasticache::operation::describe_serverless_cache_snapshots::DescribeServerlessCacheSnapshotsOutput;
    use aws_sdk_elasticache::operation::describe_serverless_caches::DescribeServerlessCachesOutput;
    use aws_sdk_elasticache::operation::list_tags_for_resource::ListTagsForResourceOutput;
    use aws_sdk_elasticache::types::error::{
        InvalidServerlessCacheStateFault, ServerlessCacheSnapshotAlreadyExistsFault,
        ServerlessCacheSnapshotNotFoundFault,
    };
    use aws_sdk_elasticache::types::ServerlessCacheConfiguration;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const ARN: &str = "arn:aws:elasticache:us-east-1:123456789012:serverlesscache:sessions";

    #[tokio::test]
    async fn serverless_caches_are_discovered_with_their_tags_and_selected_like_the_rest() {
        let describe = mock!(Client::describe_serverless_caches).then_output(|| {
            DescribeServerlessCachesOutput::builder()
                .serverless_caches(
                    ServerlessCache::builder()
                        .serverless_cache_name("sessions")
                        .arn(ARN)
                        .engine("valkey")
                        .status("available")
                        .snapshot_retention_limit(3)
                        .build(),
                )
                .serverless_caches(
                    ServerlessCache::builder()
                        .serverless_cache_name("memo")
                        .arn("arn:aws:elasticache:us-east-1:123456789012:serverlesscache:memo")
                        .engine("memcached")
                        .build(),
                )
                .build()
        });
        let tags = mock!(Client::list_tags_for_resource)
            .match_requests(|r| r.resource_name() == Some(ARN))
            .then_output(|| {
                ListTagsForResourceOutput::builder()
                    .tag_list(Tag::builder().key("lifeboat:backup").value("true").build())
                    .build()
            });
        let client = mock_client!(aws_sdk_elasticache, RuleMode::Sequential, [&describe, &tags]);
        let all = discover(&client).await.unwrap();
        assert_eq!(all.len(), 1);
        let c = &all[0];
        assert_eq!(
            (c.id.as_str(), c.kind, c.engine.as_str()),
            ("sessions", CacheKind::Serverless, "valkey")
        );
        assert!(c.at_rest_encryption && c.transit_encryption && c.replicated);
        assert_eq!(c.snapshot_retention_days, 3);
        assert_eq!(
            super::super::snapshot_source(c),
            super::super::SnapshotSource::Serverless("sessions".into())
        );
        let selector = crate::rds::selection::Selector {
            databases: Vec::new(),
            tag: Some(crate::rds::selection::TagSelector::parse("lifeboat:backup=true").unwrap()),
        };
        assert_eq!(super::super::select(&all, &selector).len(), 1);
    }

    #[tokio::test]
    async fn a_serverless_snapshot_is_named_and_tagged_and_refusals_are_outcomes() {
        let tags = BTreeMap::from([(crate::core::tags::MANAGED.to_owned(), "true".to_owned())]);
        let made = mock!(Client::create_serverless_cache_snapshot)
            .match_requests(|r| {
                r.serverless_cache_name() == Some("sessions")
                    && r.serverless_cache_snapshot_name() == Some("lifeboat-sessions-20261122-0200")
                    && r.tags().iter().any(|t| t.key() == Some("lifeboat:managed") && t.value() == Some("true"))
            })
            .then_output(|| {
                aws_sdk_elasticache::operation::create_serverless_cache_snapshot::CreateServerlessCacheSnapshotOutput::builder()
                    .serverless_cache_snapshot(
                        ServerlessCacheSnapshot::builder()
                            .serverless_cache_snapshot_name("lifeboat-sessions-20261122-0200")
                            .status("creating")
                            .snapshot_type("manual")
                            .build(),
                    )
                    .build()
            });
        let again = mock!(Client::create_serverless_cache_snapshot).then_error(|| {
            CreateServerlessCacheSnapshotError::ServerlessCacheSnapshotAlreadyExistsFault(
                ServerlessCacheSnapshotAlreadyExistsFault::builder().build(),
            )
        });
        let busy = mock!(Client::create_serverless_cache_snapshot).then_error(|| {
            CreateServerlessCacheSnapshotError::InvalidServerlessCacheStateFault(
                InvalidServerlessCacheStateFault::builder().message("modifying").build(),
            )
        });
        let client = mock_client!(aws_sdk_elasticache, RuleMode::Sequential, [&made, &again, &busy]);
        let source = super::super::SnapshotSource::Serverless("sessions".into());
        let name = "lifeboat-sessions-20261122-0200";
        let Created::Started(s) = super::super::create_snapshot(&client, &source, name, &tags)
            .await
            .unwrap()
        else {
            panic!("expected a started snapshot");
        };
        assert!(s.serverless && s.owned());
        assert_eq!(
            super::super::create_snapshot(&client, &source, name, &tags)
                .await
                .unwrap(),
            Created::AlreadyExists
        );
        assert_eq!(
            super::super::create_snapshot(&client, &source, name, &tags)
                .await
                .unwrap(),
            Created::InvalidState("modifying".into())
        );
    }

    #[tokio::test]
    async fn only_lifeboat_serverless_snapshots_are_listed_with_tags_and_deleted() {
        let snap = |name: &str, kind: &str| {
            ServerlessCacheSnapshot::builder()
                .serverless_cache_snapshot_name(name)
                .arn(format!(
                    "arn:aws:elasticache:us-east-1:1:serverlesscachesnapshot:{name}"
                ))
                .status("available")
                .snapshot_type(kind)
                .serverless_cache_configuration(
                    ServerlessCacheConfiguration::builder()
                        .serverless_cache_name("sessions")
                        .build(),
                )
                .build()
        };
        let list = mock!(Client::describe_serverless_cache_snapshots).then_output(move || {
            DescribeServerlessCacheSnapshotsOutput::builder()
                .serverless_cache_snapshots(snap("lifeboat-sessions-20261122-0200", "manual"))
                .serverless_cache_snapshots(snap("someone-elses", "manual"))
                .build()
        });
        let tags = mock!(Client::list_tags_for_resource).then_output(|| {
            ListTagsForResourceOutput::builder()
                .tag_list(Tag::builder().key("lifeboat:managed").value("true").build())
                .build()
        });
        let delete = mock!(Client::delete_serverless_cache_snapshot)
            .match_requests(|r| r.serverless_cache_snapshot_name() == Some("lifeboat-sessions-20261122-0200"))
            .then_output(|| DeleteServerlessCacheSnapshotOutput::builder().build());
        let gone = mock!(Client::delete_serverless_cache_snapshot).then_error(|| {
            DeleteServerlessCacheSnapshotError::ServerlessCacheSnapshotNotFoundFault(
                ServerlessCacheSnapshotNotFoundFault::builder().build(),
            )
        });
        let client = mock_client!(
            aws_sdk_elasticache,
            RuleMode::Sequential,
            [&list, &tags, &delete, &gone]
        );
        let snaps = list_snapshots(&client).await.unwrap();
        assert_eq!(
            tags.num_calls(),
            1,
            "only the snapshot under Lifeboat's prefix costs a tag call"
        );
        assert_eq!(snaps.len(), 2);
        assert!(snaps
            .iter()
            .all(|s| s.serverless && s.cache == "sessions" && s.belongs_to("sessions")));
        let (ours, theirs) = (&snaps[0], &snaps[1]);
        assert!(ours.owned() && !theirs.owned());
        let err = super::super::delete_snapshot(&client, theirs).await.unwrap_err();
        assert!(err.to_string().contains("Lifeboat did not make it"), "{err}");
        super::super::delete_snapshot(&client, ours).await.unwrap();
        super::super::delete_snapshot(&client, ours).await.unwrap();
        assert_eq!(delete.num_calls(), 1);
        assert_eq!(gone.num_calls(), 1, "a snapshot already gone is no error");
    }
}
