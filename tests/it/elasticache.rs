//! The ElastiCache adapter against moto: caches of every shape found with their tags and roles, selected like
//! databases, snapshotted from a replica where one exists, and a repeated snapshot name making nothing new.

use std::collections::BTreeMap;

use aws_sdk_elasticache::types::Tag;
use lifeboat::elasticache::{self, CacheKind, Created, SnapshotSource};
use lifeboat::selection::{Selector, TagSelector};
use lifeboat_tests::moto::Moto;

const REGION: &str = "us-east-1";

fn backup_tag() -> Tag {
    Tag::builder().key("lifeboat:backup").value("true").build()
}

async fn fleet(client: &aws_sdk_elasticache::Client) {
    client
        .create_replication_group()
        .replication_group_id("sessions")
        .replication_group_description("sessions, one primary and one replica")
        .engine("valkey")
        // A primary and one replica (moto reads the replica count, not NumCacheClusters, for this shape).
        .replicas_per_node_group(1)
        .tags(backup_tag())
        .send()
        .await
        .unwrap();
    client
        .create_replication_group()
        .replication_group_id("cache")
        .replication_group_description("sharded")
        .engine("redis")
        .cluster_mode(aws_sdk_elasticache::types::ClusterMode::Enabled)
        .num_node_groups(2)
        .replicas_per_node_group(1)
        .tags(backup_tag())
        .send()
        .await
        .unwrap();
    client
        .create_cache_cluster()
        .cache_cluster_id("jobs")
        .engine("redis")
        .cache_node_type("cache.t4g.micro")
        .num_cache_nodes(1)
        .tags(backup_tag())
        .send()
        .await
        .unwrap();
    client
        .create_replication_group()
        .replication_group_id("scratch")
        .replication_group_description("not selected")
        .num_cache_clusters(1)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn caches_are_found_selected_and_snapshotted_from_a_replica() {
    let moto = Moto::start();
    let client = aws_sdk_elasticache::Client::new(&moto.config(REGION));
    fleet(&client).await;

    let all = elasticache::discover(&client).await.unwrap();
    let selector = Selector {
        databases: Vec::new(),
        tag: Some(TagSelector::parse("lifeboat:backup=true").unwrap()),
    };
    let chosen = elasticache::select(&all, &selector);
    let shapes: Vec<(&str, CacheKind, bool)> = chosen.iter().map(|c| (c.id.as_str(), c.kind, c.cluster_mode)).collect();
    assert_eq!(
        shapes,
        [
            ("cache", CacheKind::ReplicationGroup, true),
            ("jobs", CacheKind::Node, false),
            ("sessions", CacheKind::ReplicationGroup, false)
        ],
        "{all:#?}"
    );
    let sources: BTreeMap<&str, SnapshotSource> = chosen
        .iter()
        .map(|c| (c.id.as_str(), elasticache::snapshot_source(c)))
        .collect();
    assert_eq!(sources["cache"], SnapshotSource::ReplicationGroup("cache".into()));
    assert_eq!(sources["jobs"], SnapshotSource::Node("jobs".into()));
    let SnapshotSource::Node(node) = &sources["sessions"] else {
        panic!("sessions is snapshotted from its replica: {:?}", sources["sessions"]);
    };
    let sessions = chosen.iter().find(|c| c.id == "sessions").unwrap();
    assert!(
        sessions.members.iter().any(|m| &m.node == node && !m.primary),
        "{sessions:#?}"
    );

    // moto does not register a group's member nodes as cache clusters, so a snapshot of `sessions-002` is
    // refused there (ElastiCache takes it); the node path is exercised on the single-node cluster instead.
    let tags = BTreeMap::from([(lifeboat::tags::MANAGED.to_owned(), "true".to_owned())]);
    let mut names = Vec::new();
    for id in ["jobs", "cache"] {
        let name = format!("lifeboat-{id}-20261122-0200");
        let first = elasticache::create_snapshot(&client, &sources[id], &name, &tags)
            .await
            .unwrap();
        assert!(
            matches!(&first, Created::Started(s) if s.name == name && s.cache == id),
            "{first:?}"
        );
        let again = elasticache::create_snapshot(&client, &sources[id], &name, &tags)
            .await
            .unwrap();
        assert_eq!(again, Created::AlreadyExists, "a redelivered event makes nothing new");
        names.push(name);
    }
    client
        .create_snapshot()
        .snapshot_name("someone-elses")
        .cache_cluster_id("jobs")
        .send()
        .await
        .unwrap();
    let snapshots = elasticache::list_snapshots(&client).await.unwrap();
    let mut ours: Vec<String> = snapshots.iter().filter(|s| s.owned()).map(|s| s.name.clone()).collect();
    ours.sort();
    names.sort();
    assert_eq!(ours, names, "{snapshots:#?}");
    assert_eq!(snapshots.len(), 3);
}
