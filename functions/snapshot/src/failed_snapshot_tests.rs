//! The `failed` rung of the ladder through the handler, with RDS's answers mocked: moto never makes a snapshot
//! that fails, so this is the one place the path runs end to end (listing, ladder, retention, metrics).

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
use aws_sdk_rds::operation::create_db_snapshot::CreateDBSnapshotError;
use aws_sdk_rds::operation::delete_db_snapshot::DeleteDBSnapshotError;
use aws_sdk_rds::operation::describe_db_cluster_snapshots::DescribeDbClusterSnapshotsOutput;
use aws_sdk_rds::operation::describe_db_clusters::DescribeDbClustersOutput;
use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
use aws_sdk_rds::operation::describe_db_snapshots::DescribeDbSnapshotsOutput;
use aws_sdk_rds::primitives::DateTime as AwsTime;
use aws_sdk_rds::types::{DbInstance, DbSnapshot, Tag};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use chrono::{TimeZone, Utc};
use lifeboat::rds::naming::{snapshot_id, SnapshotKind};
use lifeboat::rds::settings::SnapshotSettings;
use serde_json::json;

use crate::{handle_at, Deps};

fn snapshot(id: &str, status: &str, days_ago: i64) -> DbSnapshot {
    let created = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap() - chrono::Duration::days(days_ago);
    DbSnapshot::builder()
        .db_snapshot_identifier(id)
        .db_snapshot_arn(format!("arn:aws:rds:us-east-1:123456789012:snapshot:{id}"))
        .db_instance_identifier("db")
        .snapshot_type("manual")
        .status(status)
        .snapshot_create_time(AwsTime::from_secs(created.timestamp()))
        .tag_list(Tag::builder().key(lifeboat::core::tags::MANAGED).value("true").build())
        .build()
}

/// RDS with one available instance `db` whose manual snapshots are `own` (failed) and `old` (available, past
/// every rung of the default policy), and the two calls that must never come: a create and a delete.
fn rds(own: &str, old: &str) -> (aws_sdk_rds::Client, Rule, Rule) {
    let instances = mock!(aws_sdk_rds::Client::describe_db_instances).then_output(|| {
        DescribeDbInstancesOutput::builder()
            .db_instances(
                DbInstance::builder()
                    .db_instance_identifier("db")
                    .db_instance_arn("arn:aws:rds:us-east-1:123456789012:db:db")
                    .engine("postgres")
                    .db_instance_status("available")
                    .tag_list(Tag::builder().key("lifeboat:backup").value("true").build())
                    .build(),
            )
            .build()
    });
    let clusters =
        mock!(aws_sdk_rds::Client::describe_db_clusters).then_output(|| DescribeDbClustersOutput::builder().build());
    let (own, old) = (own.to_owned(), old.to_owned());
    let snapshots = mock!(aws_sdk_rds::Client::describe_db_snapshots).then_output(move || {
        DescribeDbSnapshotsOutput::builder()
            .db_snapshots(snapshot(&own, "failed", 0))
            .db_snapshots(snapshot(&old, "available", 4000))
            .build()
    });
    let cluster_snapshots = mock!(aws_sdk_rds::Client::describe_db_cluster_snapshots)
        .then_output(|| DescribeDbClusterSnapshotsOutput::builder().build());
    let create = mock!(aws_sdk_rds::Client::create_db_snapshot)
        .then_error(|| CreateDBSnapshotError::unhandled("must not be called"));
    let delete = mock!(aws_sdk_rds::Client::delete_db_snapshot)
        .then_error(|| DeleteDBSnapshotError::unhandled("must not be called"));
    let client = mock_client!(
        aws_sdk_rds,
        RuleMode::MatchAny,
        [&instances, &clusters, &snapshots, &cluster_snapshots, &create, &delete]
    );
    (client, create, delete)
}

#[tokio::test]
async fn a_failed_snapshot_with_the_runs_identifier_fails_the_run_and_expires_nothing() {
    let at = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
    let own = snapshot_id("db", SnapshotKind::Schedule, at);
    let old = snapshot_id("db", SnapshotKind::Schedule, at - chrono::Duration::days(4000));
    let (rds, create, delete) = rds(&own, &old);
    let put = mock!(aws_sdk_cloudwatch::Client::put_metric_data).then_output(|| PutMetricDataOutput::builder().build());
    let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&put]);
    let env: BTreeMap<String, String> = BTreeMap::new();
    let groups = mock!(aws_sdk_elasticache::Client::describe_replication_groups).then_output(|| {
        aws_sdk_elasticache::operation::describe_replication_groups::DescribeReplicationGroupsOutput::builder().build()
    });
    let nodes = mock!(aws_sdk_elasticache::Client::describe_cache_clusters).then_output(|| {
        aws_sdk_elasticache::operation::describe_cache_clusters::DescribeCacheClustersOutput::builder().build()
    });
    let ec = mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, [&groups, &nodes]);
    let deps = Deps {
        rds: rds.into(),
        ec: ec.into(),
        dr_rds: None,
        cw: cw.into(),
        // Never called: no plan document in this run.
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .build(),
        )
        .into(),
        region: "us-east-1".to_owned(),
        settings: SnapshotSettings::from_env(&move |n: &str| env.get(n).cloned()).unwrap(),
        plan: None,
        restore_tests: None,
    };

    let event = json!({"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-11-22T02:00:00Z",
                       "detail": {}});
    // The run fails (so Lambda's error metric and the DLQ see it), its summary inside the error.
    let err = handle_at(&deps, event, at).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "snapshot failed for 1 of 1 databases: db (Failed: snapshot {own} exists but is `failed`; delete it to \
             let a retry of this run take it again)"
        )),
        "{err}"
    );
    assert!(err.contains(r#""outcome":"failed""#), "{err}");
    assert!(err.contains(r#""retention":[],"deleted":[]"#), "retention ran: {err}");
    assert!(err.contains(r#""created":0,"failed":1,"deleted":0"#), "{err}");
    assert_eq!(
        create.num_calls(),
        0,
        "a second snapshot was attempted under the failed one's identifier"
    );
    assert_eq!(
        delete.num_calls(),
        0,
        "{old} was expired in a run whose snapshot failed"
    );
    assert!(put.num_calls() > 0, "the run's metrics were not published");
}
