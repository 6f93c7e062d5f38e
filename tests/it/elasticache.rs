//! The ElastiCache adapter against moto: caches of every shape found with their tags and roles, selected like
//! databases, snapshotted from a replica where one exists, and a repeated snapshot name making nothing new.

use std::collections::BTreeMap;

use aws_sdk_elasticache::types::Tag;
use lifeboat::caches::elasticache::{self, CacheKind, Created, SnapshotSource};
use lifeboat::rds::selection::{Selector, TagSelector};
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
    let tags = BTreeMap::from([(lifeboat::core::tags::MANAGED.to_owned(), "true".to_owned())]);
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

/// A cache's owned snapshot of `day` days before the run, as an earlier scheduled run would have made it.
async fn past_snapshot(
    client: &aws_sdk_elasticache::Client,
    cache: &str,
    day: i64,
    run: chrono::DateTime<chrono::Utc>,
) -> String {
    let at = run - chrono::Duration::days(day);
    let name = lifeboat::rds::naming::snapshot_id(cache, lifeboat::rds::naming::SnapshotKind::Schedule, at);
    let tags = lifeboat::rds::snapshot_tags::snapshot_tags(
        cache,
        lifeboat::rds::naming::SnapshotKind::Schedule,
        at,
        "daily=3",
        None,
    );
    let created = elasticache::create_snapshot(client, &SnapshotSource::Node(cache.into()), &name, &tags)
        .await
        .unwrap();
    assert!(matches!(created, Created::Started(_)), "{created:?}");
    name
}

#[tokio::test]
async fn a_scheduled_run_snapshots_selected_caches_and_applies_retention_once() {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let client = aws_sdk_elasticache::Client::new(&config);
    // moto cannot snapshot a group's member node (see above), so this fleet has no cluster-mode-disabled group
    // with a replica: a sharded group, a single node with history, an unselected group.
    client
        .create_replication_group()
        .replication_group_id("cache")
        .replication_group_description("sharded")
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
    let run: chrono::DateTime<chrono::Utc> = "2026-11-22T02:00:00Z".parse().unwrap();
    let mut history = Vec::new();
    for day in 1..=6 {
        history.push(past_snapshot(&client, "jobs", day, run).await);
    }
    client
        .create_snapshot()
        .snapshot_name("someone-elses")
        .cache_cluster_id("jobs")
        .send()
        .await
        .unwrap();

    let vars: BTreeMap<String, String> = [("LIFEBOAT_RETENTION", "daily=3")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let settings = lifeboat::rds::settings::SnapshotSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
    let deps = snapshot::Deps::new(&config, settings);
    let event = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-11-22T02:00:00Z", "detail": {}});
    let summary = snapshot::handle_at(&deps, event.clone(), run + chrono::Duration::minutes(1))
        .await
        .unwrap();
    let outcomes: Vec<(&str, snapshot::handler::Outcome, &str)> = summary
        .caches
        .iter()
        .map(|c| (c.cache.as_str(), c.outcome, c.source.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("cache", snapshot::handler::Outcome::Created, "replication group cache"),
            ("jobs", snapshot::handler::Outcome::Created, "node jobs")
        ]
    );
    // daily=3 over the snapshots listed before this run (as for databases, whose new snapshot is still
    // `creating` when retention runs): the three newest days stay, the three oldest go.
    let jobs = summary.caches.iter().find(|c| c.cache == "jobs").unwrap();
    let mut deleted = jobs.deleted.clone();
    deleted.sort();
    let mut expected: Vec<String> = history[3..].to_vec();
    expected.sort();
    assert_eq!(deleted, expected, "{jobs:#?}");

    let left: Vec<String> = elasticache::list_snapshots(&client)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        left.contains(&"someone-elses".to_owned()),
        "a foreign snapshot is never touched: {left:?}"
    );
    assert!(history[..3].iter().all(|h| left.contains(h)), "{left:?}");

    let again = snapshot::handle_at(&deps, event, run + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert!(
        again
            .caches
            .iter()
            .all(|c| c.outcome == snapshot::handler::Outcome::AlreadyExists),
        "a redelivered event makes nothing new: {:#?}",
        again.caches
    );
    // Retention converges: the run's own snapshot now counts among the three days, so the oldest kept one goes.
    let after: Vec<String> = elasticache::list_snapshots(&client)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        after.iter().all(|n| left.contains(n)),
        "a new snapshot appeared: {after:?}"
    );
    let jobs = again.caches.iter().find(|c| c.cache == "jobs").unwrap();
    assert_eq!(jobs.deleted, [history[2].clone()], "{jobs:#?}");
}

/// The console's manual snapshot of a named cache: the reason and expiry become tags, the snapshot comes from
/// the replica, and a name that is neither a database nor a cache is reported by name.
#[tokio::test]
async fn a_manual_snapshot_of_a_named_cache_keeps_its_reason_and_names_what_does_not_exist() {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let client = aws_sdk_elasticache::Client::new(&config);
    fleet(&client).await;
    let settings = lifeboat::rds::settings::SnapshotSettings::from_env(&|_: &str| None).unwrap();
    let deps = snapshot::Deps::new(&config, settings);
    let now: chrono::DateTime<chrono::Utc> = "2026-11-22T10:15:30Z".parse().unwrap();
    // As events/snapshot/manual-cache.json, on the single node (moto registers no replica nodes of a group).
    let event = serde_json::json!({"caches": ["jobs"], "reason": "before the Valkey 8 upgrade", "retain_days": 14});
    let summary = snapshot::handle_at(&deps, event, now).await.unwrap();
    assert_eq!(summary.caches.len(), 1, "{:#?}", summary.caches);
    let report = &summary.caches[0];
    assert_eq!(report.cache, "jobs");
    assert_eq!(report.outcome, snapshot::handler::Outcome::Created);
    assert_eq!(report.source, "node jobs");

    let snaps = elasticache::list_snapshots(&client).await.unwrap();
    let made = snaps
        .iter()
        .find(|s| s.name == "lifeboat-jobs-manual-20261122-101530")
        .unwrap_or_else(|| panic!("{snaps:#?}"));
    assert!(made.owned());
    assert_eq!(
        made.tags.get(lifeboat::core::tags::REASON).map(String::as_str),
        Some("before the Valkey 8 upgrade")
    );
    assert_eq!(
        made.tags.get(lifeboat::core::tags::EXPIRES_AT).map(String::as_str),
        Some("2026-12-06T10:15:30Z")
    );
    assert_eq!(snaps.iter().filter(|s| s.owned()).count(), 1, "only the named cache");

    let event = serde_json::json!({"caches": ["ghost-cache"], "databases": ["cache"], "reason": "test"});
    let err = snapshot::handle_at(&deps, event, now + chrono::Duration::minutes(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ghost-cache (NotFound"), "{err}");
    assert!(err.contains("1 of 2"), "a cache named in `databases` is one: {err}");
}
