//! What the plan tests and the demo share: a versioned bucket for the plan document, the example policies, and a
//! stand-in for the restore-test state machine (moto records its executions; it never runs them).

/// Creates `bucket` with versioning on, as the stack's `PlanBucket` must be.
pub async fn versioned_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The bytes of `examples/plans/<name>.json`.
pub fn example(name: &str) -> Vec<u8> {
    std::fs::read(crate::repo_root().join("examples/plans").join(format!("{name}.json"))).unwrap()
}

/// A one-state machine standing in for the restore-test state machine; returns its ARN.
pub async fn state_machine(sfn: &aws_sdk_sfn::Client) -> String {
    sfn.create_state_machine()
        .name("lifeboat-restore-test")
        .definition(r#"{"StartAt": "Plan", "States": {"Plan": {"Type": "Pass", "End": true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/lifeboat-restore-test")
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_owned()
}

/// A PostgreSQL database `dbname` on the local server `pg`, seen by Lifeboat as the RDS instance `id` in moto:
/// the instance carries `lifeboat:secret=lifeboat/<id>` (and `tags`), and that secret points at the local
/// server, so the export function dumps the real database (it needs `LIFEBOAT_EXPORT_ALLOW_ANY_HOST`, since moto's
/// endpoint is not the server's).
pub async fn database_on(
    config: &aws_config::SdkConfig,
    pg: &crate::postgres::Postgres,
    id: &str,
    dbname: &str,
    tags: &[(&str, &str)],
) {
    let secret_name = format!("lifeboat/{id}");
    let secret = serde_json::json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port,
        "username": crate::postgres::SUPERUSER, "password": pg.password, "dbname": dbname});
    aws_sdk_secretsmanager::Client::new(config)
        .create_secret()
        .name(&secret_name)
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
    let mut all = vec![("lifeboat:secret", secret_name.as_str())];
    all.extend_from_slice(tags);
    instance(&aws_sdk_rds::Client::new(config), id, &all, 1).await;
}

/// A PostgreSQL instance `id` in moto's RDS (encrypted), with `tags` and automated backups kept `retention` days;
/// with automated backups on, moto, like RDS, takes an automated snapshot at once.
pub async fn instance(rds: &aws_sdk_rds::Client, id: &str, tags: &[(&str, &str)], retention: i32) {
    let mut req = rds
        .create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t4g.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("x")
        .master_user_password("not-a-real-password-1")
        .storage_encrypted(true)
        .backup_retention_period(retention);
    for (k, v) in tags {
        req = req.tags(aws_sdk_rds::types::Tag::builder().key(*k).value(*v).build());
    }
    req.send().await.unwrap();
}

/// A single-node Redis cache `id` in moto's ElastiCache, with `tags` (no snapshot yet).
pub async fn cache(ec: &aws_sdk_elasticache::Client, id: &str, tags: &[(&str, &str)]) {
    let mut req = ec
        .create_cache_cluster()
        .cache_cluster_id(id)
        .engine("redis")
        .cache_node_type("cache.t4g.micro")
        .num_cache_nodes(1);
    for (k, v) in tags {
        req = req.tags(aws_sdk_elasticache::types::Tag::builder().key(*k).value(*v).build());
    }
    req.send().await.unwrap();
}

/// The export function's dependencies in plan mode against moto and the local PostgreSQL's tools, and the real
/// time it sees (unix seconds): a test sets it to each tick's time before invoking, so a month of ticks runs in
/// minutes and expiry counts as it would have on the day.
pub fn export_deps(
    config: &aws_config::SdkConfig,
    bucket: &str,
    plan_document: &str,
) -> (export::Deps, std::sync::Arc<std::sync::atomic::AtomicI64>) {
    use std::sync::atomic::{AtomicI64, Ordering};
    let bin = crate::postgres::bin_dir();
    let pg_dump = bin.join("pg_dump").display().to_string();
    let pg_restore = bin.join("pg_restore").display().to_string();
    let vars: std::collections::BTreeMap<String, String> = [
        ("LIFEBOAT_BUCKET", bucket),
        ("LIFEBOAT_DB_SSLMODE", "disable"),
        ("LIFEBOAT_PG_DUMP", pg_dump.as_str()),
        ("LIFEBOAT_PG_RESTORE", pg_restore.as_str()),
        ("LIFEBOAT_PART_SIZE_MIB", "5"),
        ("LIFEBOAT_SELECT_TAG", "lifeboat:backup=true"),
        ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true"),
        ("LIFEBOAT_PLAN_DOCUMENT", plan_document),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let settings = export::settings::ExportSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
    let clock = std::sync::Arc::new(AtomicI64::new(chrono::Utc::now().timestamp()));
    let mut deps = export::Deps::new(config, settings);
    let read = clock.clone();
    deps.clock = export::deps::WallClock(std::sync::Arc::new(move || {
        chrono::DateTime::from_timestamp(read.load(Ordering::SeqCst), 0).unwrap_or_default()
    }));
    (deps, clock)
}

/// Each of `keys` is hidden, not destroyed: a delete marker is its latest version, and a version of its bytes
/// is still there (for the bucket's lifecycle to remove after the grace period).
pub async fn assert_hidden(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str, keys: &[String]) {
    let page = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    assert_ne!(
        page.is_truncated(),
        Some(true),
        "more versions under {prefix} than one listing holds"
    );
    let versions: Vec<&str> = page.versions().iter().filter_map(|v| v.key()).collect();
    let markers: Vec<&str> = page
        .delete_markers()
        .iter()
        .filter(|d| d.is_latest() == Some(true))
        .filter_map(|d| d.key())
        .collect();
    for key in keys {
        assert!(versions.contains(&key.as_str()), "{key} destroyed");
        assert!(markers.contains(&key.as_str()), "{key} has no delete marker");
    }
}

/// Every alarm monitor keeps (named `lifeboat/...`).
pub async fn lifeboat_alarms(cw: &aws_sdk_cloudwatch::Client) -> Vec<aws_sdk_cloudwatch::types::MetricAlarm> {
    let out = cw
        .describe_alarms()
        .alarm_name_prefix("lifeboat/")
        .send()
        .await
        .unwrap();
    out.metric_alarms().to_vec()
}

/// Writes `value` as JSON at `key`, as a function writes a record or manifest.
pub async fn put_json(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, value: &impl serde::Serialize) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(serde_json::to_vec(value).unwrap().into())
        .send()
        .await
        .unwrap();
}

/// The stack's two buckets for a plan test: `bucket` (exports) and `plan_bucket`, both versioned, with `plan` as
/// the document at `plan_key`.
pub async fn buckets_with_plan(s3: &aws_sdk_s3::Client, bucket: &str, plan_bucket: &str, plan_key: &str, plan: &[u8]) {
    for b in [bucket, plan_bucket] {
        versioned_bucket(s3, b).await;
    }
    s3.put_object()
        .bucket(plan_bucket)
        .key(plan_key)
        .body(plan.to_vec().into())
        .send()
        .await
        .unwrap();
}

/// EventBridge Scheduler's event for a tick at `t`, as the stack's schedules deliver it.
pub fn tick(t: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    serde_json::json!({"version": "0", "id": "tick", "detail-type": "Scheduled Event", "source": "aws.scheduler",
        "account": "123456789012", "time": t.to_rfc3339(), "region": "us-east-1", "resources": [], "detail": {}})
}
