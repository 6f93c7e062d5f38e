//! Restore tests of caches: the `restore` handler's cache steps against moto (ElastiCache, S3, Secrets Manager,
//! CloudWatch) and a real redis-server with TLS and AUTH standing in for the restored group at the verify step
//! (the endpoint moto describes is reached on it through `LIFEBOAT_RESTORE_RESOLVE`, its password put in the
//! test's AUTH secret, as tests/it/restore.rs does with PostgreSQL). Some tests play the attacker who may invoke
//! a step: a forged endpoint, secret or report gains nothing. The steps run in the state machine's order, failure path included (report the error, then
//! clean up); every path must leave neither the group nor the secret behind.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use lifeboat::caches::elasticache::{self, SnapshotSource};
use lifeboat::caches::records::{CacheRestoreReport, RdbManifest, RdbShard, FORMAT_VERSION};
use lifeboat::rds::naming::SnapshotKind;
use lifeboat::rds::restore::RESTORE_TEST;
use lifeboat_tests::moto::Moto;
use lifeboat_tests::redis::Redis;
use restore::settings::RestoreSettings;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const SNAPSHOT: &str = "lifeboat-sessions-20261129-0300";

fn snapshot_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap()
}

struct World {
    _moto: Moto,
    redis: Redis,
    config: aws_config::SdkConfig,
    ec: aws_sdk_elasticache::Client,
    s3: aws_sdk_s3::Client,
    sm: aws_sdk_secretsmanager::Client,
    vars: BTreeMap<String, String>,
    requested: DateTime<Utc>,
}

/// `sessions` (selected, with a Lifeboat snapshot and a verified RDB copy of it whose counts the seeded server
/// holds) and `jobs` (selected, never snapshotted); the restore function's settings for caches.
async fn world() -> World {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let ec = aws_sdk_elasticache::Client::new(&config);
    let s3 = aws_sdk_s3::Client::new(&config);
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let backup = aws_sdk_elasticache::types::Tag::builder()
        .key("lifeboat:backup")
        .value("true")
        .build();
    for (id, engine) in [("sessions", "valkey"), ("jobs", "redis")] {
        ec.create_replication_group()
            .replication_group_id(id)
            .replication_group_description(id)
            .engine(engine)
            .replicas_per_node_group(1)
            .tags(backup.clone())
            .send()
            .await
            .unwrap();
    }
    let tags =
        lifeboat::rds::snapshot_tags::snapshot_tags("sessions", SnapshotKind::Schedule, snapshot_at(), "7d", None);
    let source = SnapshotSource::ReplicationGroup("sessions".into());
    elasticache::create_snapshot(&ec, &source, SNAPSHOT, &tags)
        .await
        .unwrap();

    let redis = Redis::start_tls(&[]);
    redis.cli(0, &["RPUSH", "rq:queue:default", "job-1"]);
    for i in 0..10 {
        redis.cli(0, &["SET", &format!("session:{i}"), "x"]);
    }
    redis.cli(2, &["SET", "feature:dark-mode", "on"]);
    let summary = lifeboat::caches::rdb::verify(std::fs::File::open(redis.save()).unwrap()).unwrap();
    let manifest = RdbManifest {
        format_version: FORMAT_VERSION,
        lifeboat_version: lifeboat::core::VERSION.into(),
        cache: "sessions".into(),
        engine: "valkey".into(),
        engine_version: "8.0".into(),
        snapshot: SNAPSHOT.into(),
        snapshot_time: snapshot_at(),
        copied_at: snapshot_at(),
        shards: vec![RdbShard {
            shard: 1,
            key: lifeboat::bucket::layout::rdb_keys("sessions", snapshot_at()).object(1),
            size: 1,
            sha256: "00".repeat(32),
            rdb_version: 11,
            server_version: None,
            keys_per_db: summary.databases.iter().map(|(db, k)| (*db, k.keys)).collect(),
            checksummed: true,
        }],
    };
    s3.put_object()
        .bucket(BUCKET)
        .key(lifeboat::bucket::layout::rdb_keys("sessions", snapshot_at()).manifest())
        .body(serde_json::to_vec(&manifest).unwrap().into())
        .send()
        .await
        .unwrap();

    let checks = json!({
        "*": [{"name": "sessions are there", "pattern": "session:*"}],
        "sessions": [{"name": "the default RQ queue is there", "pattern": "rq:queue:default"},
                     {"name": "feature flags are there", "pattern": "feature:*", "db": 2}]
    });
    let vars: BTreeMap<String, String> = [
        ("LIFEBOAT_RESTORE_ENTRY", "steps".to_owned()),
        // moto's groups have endpoints nothing listens on: the local server answers for them.
        (
            "LIFEBOAT_RESTORE_RESOLVE",
            format!(".cache.amazonaws.com=127.0.0.1:{}", redis.port),
        ),
        ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
        ("LIFEBOAT_DB_SSLMODE", "disable".to_owned()),
        (
            "LIFEBOAT_CACHE_RESTORE_SUBNET_GROUP",
            "lifeboat-cache-restore".to_owned(),
        ),
        ("LIFEBOAT_CACHE_RESTORE_SECURITY_GROUP", "sg-0restore".to_owned()),
        (
            "LIFEBOAT_CACHE_CA_BUNDLE",
            redis.ca_file.as_ref().unwrap().display().to_string(),
        ),
        ("LIFEBOAT_CACHE_RESTORE_CHECKS", checks.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    World {
        _moto: moto,
        redis,
        config,
        ec,
        s3,
        sm,
        vars,
        requested: snapshot_at() + chrono::Duration::hours(1),
    }
}

impl World {
    fn deps(&self, overrides: &[(&str, &str)]) -> restore::Deps {
        let mut vars = self.vars.clone();
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let settings = RestoreSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
        restore::Deps::new(&self.config, settings)
    }

    /// The group's status, `None` when there is none.
    async fn group_status(&self, id: &str) -> Option<String> {
        lifeboat::caches::restore::group(&self.ec, id)
            .await
            .unwrap()
            .map(|g| g.status)
    }

    async fn secret_exists(&self, name: &str) -> bool {
        match self.sm.describe_secret().secret_id(name).send().await {
            Ok(d) => d.deleted_date().is_none(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(e) => panic!("{e:?}"),
        }
    }

    async fn report(&self, cache: &str) -> CacheRestoreReport {
        let key = format!(
            "{}.json",
            lifeboat::bucket::layout::cache_restore_report_base(cache, self.requested)
        );
        let out = self.s3.get_object().bucket(BUCKET).key(&key).send().await.unwrap();
        serde_json::from_slice(&out.body.collect().await.unwrap().into_bytes()).unwrap()
    }

    /// Gives the test's own AUTH secret (by its name) the local server's password: the local server answers
    /// for the group's described endpoint (`LIFEBOAT_RESTORE_RESOLVE`).
    async fn point_at_local(&self, test: &Value) {
        let id = test["restored_id"].as_str().expect("start names the group");
        let creds = json!({"username": "default", "password": self.redis.password});
        self.sm
            .put_secret_value()
            .secret_id(lifeboat::caches::restore::test_secret_name(id))
            .secret_string(creds.to_string())
            .send()
            .await
            .unwrap();
    }

    /// The console's function (the same settings, the other entry).
    fn console(&self) -> restore::Deps {
        self.deps(&[("LIFEBOAT_RESTORE_ENTRY", "console")])
    }
}

async fn step(deps: &restore::Deps, action: &str, test: &Value) -> Result<Value, String> {
    restore::handle(deps, json!({"action": action, "test": test}), None)
        .await
        .map_err(|e| e.to_string())
}

/// How a run is disturbed before its verify step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Before {
    /// Pointed at the local server, as a real group would answer.
    Local,
    /// The address ElastiCache (moto) gave, reached as it is: nothing answers there.
    Unreachable,
    /// The test's AUTH secret removed behind the test's back: the verify step itself fails.
    SecretGone,
}

/// The state machine's cache path: start, poll until available, verify, report, cleanup; after a failed step,
/// report the error and clean up. Answers the steps it went through and the last state.
async fn run(w: &World, deps: &restore::Deps, cache: &str, before: Before) -> (Vec<String>, Value) {
    let mut unresolved = deps.clone();
    unresolved.settings.redirects = restore::settings::Redirects::default();
    let mut trail = Vec::new();
    let start = json!({"action": "cache_start", "cache": cache, "requested_at": w.requested});
    let mut test = match restore::handle(deps, start, None).await {
        Ok(t) => {
            trail.push("start".to_owned());
            t
        }
        Err(e) => {
            trail.push(format!("start failed: {e}"));
            json!({"cache": cache, "requested_at": w.requested})
        }
    };
    let mut failure = trail[0].starts_with("start failed").then(|| trail[0].clone());
    for action in ["cache_poll", "cache_verify", "cache_report"] {
        if failure.is_some() {
            break;
        }
        if action == "cache_verify" {
            match before {
                Before::Local => w.point_at_local(&test).await,
                Before::Unreachable => {}
                Before::SecretGone => {
                    let arn = test["auth_secret"].as_str().unwrap();
                    w.sm.delete_secret()
                        .secret_id(arn)
                        .force_delete_without_recovery(true)
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
        let deps = if before == Before::Unreachable {
            &unresolved
        } else {
            deps
        };
        match step(deps, action, &test).await {
            Ok(t) => {
                test = t;
                trail.push(action.to_owned());
            }
            Err(e) => {
                trail.push(format!("{action} failed"));
                failure = Some(e);
            }
        }
    }
    if let Some(e) = failure {
        let error = json!({"Error": "Lifeboat.PartialFailure", "Cause": json!({"errorMessage": e}).to_string()});
        let reported = restore::handle(
            deps,
            json!({"action": "cache_report", "test": test, "error": error}),
            None,
        )
        .await;
        trail.push(format!(
            "report after failure: {}",
            if reported.is_ok() { "written" } else { "failed" }
        ));
    }
    let cleaned = step(deps, "cache_cleanup", &test).await.unwrap();
    trail.push(format!("cleanup: {}", cleaned["status"].as_str().unwrap()));
    (trail, test)
}

#[tokio::test]
async fn a_cache_restore_test_restores_an_isolated_group_verifies_it_over_tls_reports_and_cleans_up() {
    let w = world().await;
    let deps = w.deps(&[]);
    let plan = restore::handle(&deps, json!({"action": "plan", "time": w.requested}), None)
        .await
        .unwrap();
    assert_eq!(
        plan["tests"],
        json!([{"cache": "jobs", "requested_at": w.requested}, {"cache": "sessions", "requested_at": w.requested}])
    );

    // Start, and look at what it made.
    let start = json!({"action": "cache_start", "cache": "sessions", "requested_at": w.requested});
    let test = restore::handle(&deps, start.clone(), None).await.unwrap();
    let id = lifeboat::caches::restore::test_group_id("sessions", w.requested);
    assert_eq!(test["restored_id"], id.as_str());
    assert_eq!(test["snapshot"], SNAPSHOT);
    let g = lifeboat::caches::restore::group(&w.ec, &id).await.unwrap().unwrap();
    assert!(
        g.transit_encryption && g.at_rest_encryption && g.auth_token_enabled,
        "{g:?}"
    );
    assert_eq!(g.node_type, "cache.t4g.micro");
    assert_eq!(g.tags[RESTORE_TEST], "true");
    assert_eq!(g.tags["lifeboat:source-cache"], "sessions");
    assert!(g.tags["lifeboat:expires-at"].parse::<DateTime<Utc>>().is_ok());
    let secret = test["auth_secret"].as_str().unwrap();
    let value = w.sm.get_secret_value().secret_id(secret).send().await.unwrap();
    let token: Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    assert_eq!(token["password"].as_str().unwrap().len(), 32);
    assert!(
        !test.to_string().contains(token["password"].as_str().unwrap()),
        "the token never rides in the state"
    );
    // A redelivered start goes on with the same group and secret.
    let again = restore::handle(&deps, start, None).await.unwrap();
    assert_eq!(
        (&again["restored_id"], &again["auth_secret"]),
        (&test["restored_id"], &test["auth_secret"])
    );
    step(&deps, "cache_cleanup", &test).await.unwrap();
    assert_eq!(w.group_status(&id).await.as_deref(), Some("deleting"));
    assert!(!w.secret_exists(&lifeboat::caches::restore::test_secret_name(&id)).await);

    // The whole path, at another time (moto keeps a deleted group as `deleting`, and a start never reuses
    // a name it finds taken without its secret).
    let mut w = w;
    w.requested += chrono::Duration::minutes(1);
    let id = lifeboat::caches::restore::test_group_id("sessions", w.requested);
    let (trail, _) = run(&w, &deps, "sessions", Before::Local).await;
    assert_eq!(
        trail,
        [
            "start",
            "cache_poll",
            "cache_verify",
            "cache_report",
            "cleanup: deleting"
        ]
    );
    let r = w.report("sessions").await;
    assert!(r.passed, "{r:#?}");
    assert_eq!(r.rpo_seconds, 3660.0, "the snapshot's schedule time to the request");
    assert!(r.rto_seconds.is_some());
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "connect",
            "keys in db0",
            "keys in db2",
            "sessions are there",
            "the default RQ queue is there",
            "feature flags are there",
            "encrypted in transit and at rest, AUTH on"
        ]
    );
    assert_eq!(w.group_status(&id).await.as_deref(), Some("deleting"));
    assert!(!w.secret_exists(&lifeboat::caches::restore::test_secret_name(&id)).await);
}

#[tokio::test]
async fn a_missing_key_fails_the_test_by_name_and_every_failure_path_cleans_up() {
    let w = world().await;
    let id = lifeboat::caches::restore::test_group_id("sessions", w.requested);
    let secret = lifeboat::caches::restore::test_secret_name(&id);

    let checks = json!({"sessions": [{"name": "the mail queue is there", "pattern": "rq:queue:mail"}]}).to_string();
    let deps = w.deps(&[("LIFEBOAT_CACHE_RESTORE_CHECKS", &checks)]);
    let (trail, _) = run(&w, &deps, "sessions", Before::Local).await;
    assert_eq!(trail.last().unwrap(), "cleanup: deleting");
    let r = w.report("sessions").await;
    assert!(!r.passed);
    let failed: Vec<String> = r
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    assert_eq!(
        failed,
        ["the mail queue is there: no key matches `rq:queue:mail` in db0"]
    );
    assert_eq!(w.group_status(&id).await.as_deref(), Some("deleting"));
    assert!(!w.secret_exists(&secret).await);

    // Nothing answers at the address: the connect check fails; still cleaned up. (moto keeps a deleted group
    // as `deleting`, so each run gets its own time.)
    let mut w = w;
    for (n, before) in [Before::Unreachable, Before::SecretGone].into_iter().enumerate() {
        w.requested += chrono::Duration::minutes(1 + n as i64);
        let id = lifeboat::caches::restore::test_group_id("sessions", w.requested);
        let deps = w.deps(&[]);
        let (trail, _) = run(&w, &deps, "sessions", before).await;
        let r = w.report("sessions").await;
        assert!(!r.passed, "{trail:?}");
        match before {
            Before::Unreachable => assert_eq!(r.checks[0].name, "connect", "{r:#?}"),
            _ => {
                assert!(trail.contains(&"cache_verify failed".to_owned()), "{trail:?}");
                assert!(r.error.as_deref().unwrap().contains("DescribeSecret"), "{r:#?}");
            }
        }
        assert_eq!(trail.last().unwrap(), "cleanup: deleting", "{trail:?}");
        assert_eq!(w.group_status(&id).await.as_deref(), Some("deleting"));
        assert!(!w.secret_exists(&lifeboat::caches::restore::test_secret_name(&id)).await);
    }

    // A cache with no snapshot: a failed test whose report says why; nothing made, nothing left.
    let (trail, _) = run(&w, &w.deps(&[]), "jobs", Before::Local).await;
    assert!(trail[0].starts_with("start failed"), "{trail:?}");
    assert_eq!(trail.last().unwrap(), "cleanup: deleted");
    let r = w.report("jobs").await;
    assert!(!r.passed && r.snapshot.is_empty());
    assert!(
        r.error.as_deref().unwrap().contains("no available snapshot of jobs"),
        "{r:#?}"
    );
    let jobs = lifeboat::caches::restore::test_group_id("jobs", w.requested);
    assert_eq!(w.group_status(&jobs).await, None);
    assert!(
        !w.secret_exists(&lifeboat::caches::restore::test_secret_name(&jobs))
            .await
    );
}

#[tokio::test]
async fn the_janitor_removes_an_expired_test_group_and_leaves_a_foreign_one() {
    let w = world().await;
    let tag = |k: &str, v: &str| aws_sdk_elasticache::types::Tag::builder().key(k).value(v).build();
    let make = |id: &'static str, tags: Vec<aws_sdk_elasticache::types::Tag>| {
        w.ec.create_replication_group()
            .replication_group_id(id)
            .replication_group_description(id)
            .set_tags(Some(tags))
            .send()
    };
    let expired = tag("lifeboat:expires-at", "2026-11-01T00:00:00+00:00");
    let later = tag("lifeboat:expires-at", "2099-01-01T00:00:00+00:00");
    make(
        "lifeboat-rt-old-202611010000",
        vec![tag(RESTORE_TEST, "true"), expired.clone()],
    )
    .await
    .unwrap();
    make("lifeboat-rt-new-209901010000", vec![tag(RESTORE_TEST, "true"), later])
        .await
        .unwrap();
    make("lifeboat-rt-foreign-202611010000", vec![expired]).await.unwrap();

    let deleted = lifeboat::caches::restore::sweep_expired(&w.ec, Utc::now())
        .await
        .unwrap()
        .deleted;
    assert_eq!(deleted, ["lifeboat-rt-old-202611010000"]);
    for (id, status) in [
        ("lifeboat-rt-old-202611010000", "deleting"),
        ("lifeboat-rt-new-209901010000", "available"),
        ("lifeboat-rt-foreign-202611010000", "available"),
        ("sessions", "available"),
    ] {
        assert_eq!(w.group_status(id).await.as_deref(), Some(status), "{id}");
    }
    // The guarded delete refuses a group without the restore-test tag, whoever asks.
    let refused = lifeboat::caches::restore::delete_test_group(&w.ec, "lifeboat-rt-foreign-202611010000")
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("not tagged lifeboat:restore-test=true"), "{refused}");
}

#[tokio::test]
async fn the_console_restores_a_named_snapshot_into_a_new_named_group_and_refuses_what_it_must() {
    let w = world().await;
    let deps = w.console();
    let event = |snapshot: &str, target: &str| {
        json!({"action": "restore-cache", "snapshot": snapshot, "target": target,
               "node_type": "cache.r7g.large", "reason": "INC-42 sessions lost"})
    };
    let err = |e: restore::RestoreError| e.to_string();
    let taken = restore::handle(&deps, event(SNAPSHOT, "jobs"), None)
        .await
        .map_err(err)
        .unwrap_err();
    assert!(taken.contains("`jobs` already exists"), "{taken}");
    let missing = restore::handle(&deps, event("nope", "sessions-restored"), None)
        .await
        .map_err(err)
        .unwrap_err();
    assert!(missing.contains("no cache snapshot `nope`"), "{missing}");
    let bad = restore::handle(&deps, event(SNAPSHOT, "Bad--Name"), None)
        .await
        .map_err(err)
        .unwrap_err();
    assert!(bad.contains("target `Bad--Name`"), "{bad}");
    assert_eq!(
        w.group_status("sessions-restored").await,
        None,
        "nothing made by a refusal"
    );

    let out = restore::handle(&deps, event(SNAPSHOT, "sessions-restored"), None)
        .await
        .unwrap();
    assert_eq!(out["status"], "creating");
    let g = lifeboat::caches::restore::group(&w.ec, "sessions-restored")
        .await
        .unwrap()
        .unwrap();
    assert!(
        g.transit_encryption && g.at_rest_encryption && g.auth_token_enabled,
        "{g:?}"
    );
    assert_eq!(g.node_type, "cache.r7g.large");
    assert!(
        !g.tags.contains_key(RESTORE_TEST),
        "a real restore is never a janitor's: {:?}",
        g.tags
    );
    assert!(w.secret_exists("lifeboat/restored-cache/sessions-restored").await);
    let again = restore::handle(&deps, event(SNAPSHOT, "sessions-restored"), None)
        .await
        .map_err(err)
        .unwrap_err();
    assert!(again.contains("already exists"), "{again}");
}

/// ElastiCache unreachable at plan time (a cache-side fault): the databases are still planned, and the caches
/// asked for become tests carrying the listing error, which the state machine's `CachePlanFailed` reports as
/// failed (report and metric), then cleans up.
#[tokio::test]
async fn a_failed_elasticache_listing_still_plans_the_databases_and_fails_the_caches_loudly() {
    let w = world().await;
    let rds = aws_sdk_rds::Client::new(&w.config);
    rds.create_db_instance()
        .db_instance_identifier("app-prod")
        .db_instance_class("db.r6g.large")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("app_admin")
        .master_user_password("not-a-real-password-1")
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("lifeboat:backup")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut broken = w.deps(&[]);
    let ec_config = aws_sdk_elasticache::config::Builder::from(&w.config)
        .endpoint_url("http://127.0.0.1:1")
        .retry_config(aws_sdk_elasticache::config::retry::RetryConfig::disabled())
        .build();
    broken.ec = aws_sdk_elasticache::Client::from_conf(ec_config).into();

    let plan = restore::handle(&broken, json!({"action": "plan", "time": w.requested}), None)
        .await
        .unwrap();
    let tests = plan["tests"].as_array().unwrap();
    assert_eq!(tests[0], json!({"database": "app-prod", "requested_at": w.requested}));
    assert_eq!(tests.len(), 2, "{tests:?}");
    let cache = &tests[1];
    assert_eq!(cache["cache"], lifeboat::caches::restore::UNLISTED_CACHES);
    let plan_error = cache["plan_error"]
        .as_str()
        .expect("the listing error travels with the test");
    assert!(plan_error.contains("ElastiCache could not be listed"), "{plan_error}");
    assert!(plan_error.contains("DescribeReplicationGroups"), "{plan_error}");

    let named = json!({"action": "plan", "time": w.requested, "databases": ["app-prod", "sessions"]});
    let plan = restore::handle(&broken, named, None).await.unwrap();
    assert_eq!(
        plan["missing"],
        json!([]),
        "a name that may be a cache is a failed cache test, not missing"
    );
    let caches: Vec<_> = plan["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["cache"].as_str())
        .collect();
    assert_eq!(caches, ["sessions"]);

    // What CachePlanFailed hands the failure report, then the cleanup (ElastiCache answers again by then).
    let deps = w.deps(&[]);
    let test = json!({"cache": cache["cache"], "requested_at": w.requested});
    let error = json!({"Error": "Lifeboat.Restore.CacheListing", "Cause": plan_error});
    restore::handle(
        &deps,
        json!({"action": "cache_report", "test": test, "error": error}),
        None,
    )
    .await
    .unwrap();
    let r = w.report(lifeboat::caches::restore::UNLISTED_CACHES).await;
    assert!(!r.passed);
    let reported = r.error.unwrap_or_default();
    assert!(
        reported.starts_with("Lifeboat.Restore.CacheListing: ElastiCache could not be listed"),
        "{reported}"
    );
    let cw = aws_sdk_cloudwatch::Client::new(&w.config);
    let metrics = cw
        .list_metrics()
        .namespace("Lifeboat")
        .metric_name("RestoreTestSuccess")
        .send()
        .await
        .unwrap();
    let for_caches: Vec<_> = metrics
        .metrics()
        .iter()
        .flat_map(|m| m.dimensions())
        .filter(|d| d.name() == Some(lifeboat::core::metrics::CACHE_DIMENSION))
        .filter_map(|d| d.value())
        .collect();
    assert_eq!(for_caches, [lifeboat::caches::restore::UNLISTED_CACHES]);
    let cleaned = step(&deps, "cache_cleanup", &test).await.unwrap();
    assert_eq!(cleaned["status"], "deleted");
}

/// A console snapshot (no Lifeboat tags) of which ElastiCache gives no creation time (moto gives none): its RPO
/// is unknown, so its restore test is refused by name before anything is made, never reported with a made-up age.
#[tokio::test]
async fn a_snapshot_of_unknown_age_is_refused_before_anything_is_made() {
    let w = world().await;
    let source = SnapshotSource::ReplicationGroup("sessions".into());
    elasticache::create_snapshot(&w.ec, &source, "console-sessions", &BTreeMap::new())
        .await
        .unwrap();
    let deps = w.deps(&[]);
    let start = json!({"action": "cache_start", "cache": "sessions", "snapshot": "console-sessions",
                       "requested_at": w.requested});
    let err = restore::handle(&deps, start, None).await.unwrap_err().to_string();
    assert!(
        err.contains("console-sessions") && err.contains("RPO cannot be reported"),
        "{err}"
    );
    let id = lifeboat::caches::restore::test_group_id("sessions", w.requested);
    assert_eq!(w.group_status(&id).await, None, "nothing made by a refusal");
}

// Sharded caches (cluster mode enabled): a 2-shard group in moto, a real 2-primary Redis cluster with TLS and
// AUTH standing in for its restore at the verify step.

const SHARDED: &str = "shards";
const SHARDED_SNAPSHOT: &str = "lifeboat-shards-20261129-0300";

/// `shards`: a cluster-mode group of 2 shards (moto) with a Lifeboat snapshot; a real 2-primary cluster seeded
/// with 1000 keys spread over both by their hash slots; the verified RDB copy of the snapshot, one RDB per shard
/// as the cluster's own `SAVE`s wrote them. Answers the cluster and the deps whose checks name its keys.
async fn sharded(w: &World) -> (lifeboat_tests::redis::RedisCluster, restore::Deps) {
    use aws_sdk_elasticache::types::ClusterMode;
    w.ec.create_replication_group()
        .replication_group_id(SHARDED)
        .replication_group_description(SHARDED)
        .engine("redis")
        .engine_version("7.1")
        .cluster_mode(ClusterMode::Enabled)
        .num_node_groups(2)
        .replicas_per_node_group(0)
        .send()
        .await
        .unwrap();
    let tags = lifeboat::rds::snapshot_tags::snapshot_tags(SHARDED, SnapshotKind::Schedule, snapshot_at(), "7d", None);
    let source = SnapshotSource::ReplicationGroup(SHARDED.into());
    elasticache::create_snapshot(&w.ec, &source, SHARDED_SNAPSHOT, &tags)
        .await
        .unwrap();

    let cluster = lifeboat_tests::redis::RedisCluster::start_tls(2);
    let mut commands: String = (0..999).map(|i| format!("SET session:{i} x\n")).collect();
    commands.push_str("RPUSH rq:queue:default job-1\n");
    cluster.load(&commands);
    let per_node = cluster.keys_per_node();
    assert!(per_node.iter().all(|n| *n > 0), "keys on both shards: {per_node:?}");
    assert_eq!(per_node.iter().sum::<u64>(), 1000);
    let keys = lifeboat::bucket::layout::rdb_keys(SHARDED, snapshot_at());
    let shards = cluster
        .save()
        .iter()
        .zip(1..)
        .map(|(rdb, shard)| {
            let summary = lifeboat::caches::rdb::verify(std::fs::File::open(rdb).unwrap()).unwrap();
            RdbShard {
                shard,
                key: keys.object(shard),
                size: summary.bytes,
                sha256: summary.sha256.clone(),
                rdb_version: summary.version,
                server_version: summary.server_version.clone(),
                keys_per_db: summary.databases.iter().map(|(db, k)| (*db, k.keys)).collect(),
                checksummed: true,
            }
        })
        .collect();
    let manifest = RdbManifest {
        format_version: FORMAT_VERSION,
        lifeboat_version: lifeboat::core::VERSION.into(),
        cache: SHARDED.into(),
        engine: "redis".into(),
        engine_version: "7.1".into(),
        snapshot: SHARDED_SNAPSHOT.into(),
        snapshot_time: snapshot_at(),
        copied_at: snapshot_at(),
        shards,
    };
    assert_eq!(manifest.keys_per_db(), BTreeMap::from([(0, 1000)]));
    lifeboat_tests::plans::put_json(&w.s3, BUCKET, &keys.manifest(), &manifest).await;
    let checks = json!({SHARDED: [{"name": "sessions are there", "pattern": "session:*"},
                                  {"name": "the default RQ queue is there", "pattern": "rq:queue:default"}]});
    let ca = cluster.ca_file.display().to_string();
    let deps = w.deps(&[
        ("LIFEBOAT_CACHE_CA_BUNDLE", &ca),
        ("LIFEBOAT_CACHE_RESTORE_CHECKS", &checks.to_string()),
    ]);
    (cluster, deps)
}

/// The state machine's steps for the sharded cache, verify pointed at the local cluster's node 0 by the name
/// `localhost` (the nodes report themselves by IP, so their certificates are verified against that name, as
/// against a configuration endpoint's); asserts the group and its secret are gone after cleanup. Answers the
/// state after start and the state after report.
async fn sharded_run(w: &World, deps: &restore::Deps, cluster: &lifeboat_tests::redis::RedisCluster) -> (Value, Value) {
    let start = json!({"action": "cache_start", "cache": SHARDED, "requested_at": w.requested});
    let started = restore::handle(deps, start, None).await.unwrap();
    let test = sharded_finish(w, deps, cluster, &started).await;
    (started, test)
}

/// The steps after a sharded test's start (poll, verify at the local cluster, report, cleanup); asserts the group
/// and its secret are gone. Answers the state after report.
async fn sharded_finish(
    w: &World,
    deps: &restore::Deps,
    cluster: &lifeboat_tests::redis::RedisCluster,
    started: &Value,
) -> Value {
    // The configuration endpoint moto describes is reached on node 0 of the local cluster, by name.
    let mut local = deps.clone();
    local.settings.redirects = restore::settings::Redirects::default();
    local
        .settings
        .redirects
        .add(".cache.amazonaws.com", "localhost", cluster.ports[0]);
    let deps = &local;
    let test = step(deps, "cache_poll", started).await.unwrap();
    assert_eq!(test["status"], "available", "{test}");
    let id = test["restored_id"].as_str().unwrap();
    let creds = json!({"username": "default", "password": cluster.password});
    w.sm.put_secret_value()
        .secret_id(lifeboat::caches::restore::test_secret_name(id))
        .secret_string(creds.to_string())
        .send()
        .await
        .unwrap();
    let test = step(deps, "cache_verify", &test).await.unwrap();
    let test = step(deps, "cache_report", &test).await.unwrap();
    let cleaned = step(deps, "cache_cleanup", &test).await.unwrap();
    assert_eq!(cleaned["status"], "deleting");
    let id = lifeboat::caches::restore::test_group_id(SHARDED, w.requested);
    assert_eq!(w.group_status(&id).await.as_deref(), Some("deleting"));
    assert!(!w.secret_exists(&lifeboat::caches::restore::test_secret_name(&id)).await);
    test
}

#[tokio::test]
async fn a_sharded_cache_is_restored_as_a_cluster_mode_group_and_verified_on_every_primary() {
    let w = world().await;
    let (cluster, deps) = sharded(&w).await;
    let per_node = cluster.keys_per_node();

    let (started, _) = sharded_run(&w, &deps, &cluster).await;
    assert_eq!(started["shards"], 2, "{started}");
    let id = lifeboat::caches::restore::test_group_id(SHARDED, w.requested);
    let out =
        w.ec.describe_replication_groups()
            .replication_group_id(&id)
            .send()
            .await
            .unwrap();
    let g = &out.replication_groups()[0];
    assert_eq!(g.cluster_enabled(), Some(true), "{g:?}");
    assert_eq!(g.node_groups().len(), 2, "the snapshot's two shards");
    assert_eq!(g.member_clusters().len(), 2, "no replicas: {g:?}");
    let cfg = g.configuration_endpoint().and_then(|e| e.address()).unwrap();
    assert!(cfg.starts_with("clustercfg."), "{cfg}");

    let r = w.report(SHARDED).await;
    assert!(r.passed, "{r:#?}");
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "connect",
            "cluster slots",
            "keys in db0",
            "sessions are there",
            "the default RQ queue is there",
            "encrypted in transit and at rest, AUTH on"
        ]
    );
    assert!(
        r.checks[1].detail.starts_with("2 primaries serve 16384 of 16384 slots"),
        "{}",
        r.checks[1].detail
    );
    let counts = format!("2 shards: {} + {} = 1000 keys; 1000 restored", per_node[0], per_node[1]);
    assert!(r.checks[2].detail.starts_with(&counts), "{}", r.checks[2].detail);
}

#[tokio::test]
async fn a_sharded_restore_test_fails_a_missing_key_by_name_and_counts_off_beyond_the_tolerance() {
    let mut w = world().await;
    let (cluster, _) = sharded(&w).await;
    let ca = cluster.ca_file.display().to_string();
    let checks = json!({SHARDED: [{"name": "the mail queue is there", "pattern": "rq:queue:mail"}]}).to_string();
    let deps = w.deps(&[
        ("LIFEBOAT_CACHE_CA_BUNDLE", &ca),
        ("LIFEBOAT_CACHE_RESTORE_CHECKS", &checks),
    ]);
    sharded_run(&w, &deps, &cluster).await;
    let failed = |r: &CacheRestoreReport| -> Vec<String> {
        r.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    };
    let r = w.report(SHARDED).await;
    assert!(!r.passed);
    assert_eq!(
        failed(&r),
        ["the mail queue is there: no key matches `rq:queue:mail` on any of the 2 primaries"]
    );

    // 60 keys gone of 1000 (6 %, over the 5 % tolerance): the count fails, with each shard's part. (moto keeps
    // a deleted group as `deleting`, so this run gets its own time.)
    w.requested += chrono::Duration::minutes(1);
    let dels: String = (0..60).map(|i| format!("DEL session:{i}\n")).collect();
    cluster.load(&dels);
    let per_node = cluster.keys_per_node();
    let deps = w.deps(&[("LIFEBOAT_CACHE_CA_BUNDLE", &ca)]);
    sharded_run(&w, &deps, &cluster).await;
    let r = w.report(SHARDED).await;
    assert!(!r.passed);
    let expected = format!(
        "keys in db0: 2 shards: {} + {} = 940 keys; 940 restored, 1000 in the snapshot (tolerance -50)",
        per_node[0], per_node[1]
    );
    assert_eq!(failed(&r), [expected]);
}

/// The console restores a sharded cache's snapshot as a sharded group with the snapshot's shards.
#[tokio::test]
async fn the_console_restores_a_sharded_snapshot_as_a_cluster_mode_group() {
    let w = world().await;
    let (_cluster, mut deps) = sharded(&w).await;
    deps.settings.entry = restore::settings::Entry::Console;
    let event = json!({"action": "restore-cache", "snapshot": SHARDED_SNAPSHOT, "target": "shards-restored",
                       "node_type": "cache.r7g.large", "reason": "INC-43 shards lost"});
    let out = restore::handle(&deps, event, None).await.unwrap();
    assert_eq!(out["shards"], 2, "{out}");
    let described =
        w.ec.describe_replication_groups()
            .replication_group_id("shards-restored")
            .send()
            .await
            .unwrap();
    let g = &described.replication_groups()[0];
    assert_eq!((g.cluster_enabled(), g.node_groups().len()), (Some(true), 2), "{g:?}");
}

/// A serverless cache as ElastiCache's DescribeServerlessCaches would give it (moto has no serverless calls, so
/// the test builds the value the lookup would find and drives the steps after it).
fn serverless(id: &str) -> lifeboat::caches::elasticache::Cache {
    lifeboat::caches::elasticache::Cache {
        id: id.into(),
        kind: lifeboat::caches::elasticache::CacheKind::Serverless,
        arn: format!("arn:aws:elasticache:{REGION}:123456789012:serverlesscache:{id}"),
        engine: "valkey".into(),
        status: "available".into(),
        tags: BTreeMap::new(),
        cluster_mode: false,
        members: Vec::new(),
        at_rest_encryption: true,
        transit_encryption: true,
        snapshot_retention_days: 7,
        replicated: true,
    }
}

/// A serverless cache's restore test: its newest verified RDB copy (the manifest and the RDB file a real server
/// wrote, in moto's S3) seeds an isolated group; verify compares the real server's keys with that same manifest;
/// the RPO is the copy's snapshot time; cleanup leaves nothing. Without a copy the test fails clearly and makes
/// nothing. (moto does not echo SnapshotArns: `lifeboat::caches::rdb_restore`'s unit test checks the request carries them.)
#[tokio::test]
async fn a_serverless_cache_is_restore_tested_from_its_verified_rdb_copy() {
    let w = world().await;
    let deps = w.deps(&[]);
    let rdb = std::fs::read(w.redis.save()).unwrap();
    let key = lifeboat::bucket::layout::rdb_keys("sessions", snapshot_at()).object(1);
    w.s3.put_object()
        .bucket(BUCKET)
        .key(&key)
        .body(rdb.into())
        .send()
        .await
        .unwrap();
    let manifest_key = lifeboat::bucket::layout::rdb_keys("sessions", snapshot_at()).manifest();

    let test = restore::caches::start_with(&deps, &serverless("sessions"), None, w.requested)
        .await
        .unwrap();
    let id = lifeboat::caches::restore::test_group_id("sessions", w.requested);
    assert_eq!(
        (&test["restored_id"], &test["snapshot"], &test["rdb_manifest"]),
        (&json!(id), &json!(SNAPSHOT), &json!(manifest_key))
    );
    let g = lifeboat::caches::restore::group(&w.ec, &id).await.unwrap().unwrap();
    assert!(
        g.transit_encryption && g.at_rest_encryption && g.auth_token_enabled,
        "{g:?}"
    );
    assert_eq!(g.tags["lifeboat:source-cache"], "sessions");
    // A redelivered start goes on with the same group and secret.
    let again = restore::caches::start_with(&deps, &serverless("sessions"), None, w.requested)
        .await
        .unwrap();
    assert_eq!(again["auth_secret"], test["auth_secret"]);

    let test = step(&deps, "cache_poll", &test).await.unwrap();
    assert_eq!(test["status"], "available", "{test}");
    w.point_at_local(&test).await;
    let test = step(&deps, "cache_verify", &test).await.unwrap();
    let test = step(&deps, "cache_report", &test).await.unwrap();
    let cleaned = step(&deps, "cache_cleanup", &test).await.unwrap();
    assert_eq!(cleaned["status"], "deleting");
    let r = w.report("sessions").await;
    assert!(r.passed, "{r:#?}");
    assert_eq!((r.snapshot.as_str(), r.snapshot_time), (SNAPSHOT, snapshot_at()));
    assert_eq!(r.rpo_seconds, 3600.0, "the copy's snapshot time to the request");
    let counts: Vec<(&str, bool)> = r
        .checks
        .iter()
        .filter(|c| c.name.starts_with("keys in"))
        .map(|c| (c.name.as_str(), c.passed))
        .collect();
    assert_eq!(counts, [("keys in db0", true), ("keys in db2", true)], "{r:#?}");
    assert_eq!(w.group_status(&id).await.as_deref(), Some("deleting"));
    assert!(!w.secret_exists(&lifeboat::caches::restore::test_secret_name(&id)).await);

    // No verified copy: the start fails by name, the report says why, nothing is made or left.
    let err = restore::caches::start_with(&deps, &serverless("jobs"), None, w.requested)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no verified RDB copy of serverless cache jobs"), "{err}");
    let failed = json!({"cache": "jobs", "requested_at": w.requested});
    let error = json!({"Error": "Lifeboat.Restore.NoSnapshot", "Cause": json!({"errorMessage": err}).to_string()});
    restore::handle(
        &deps,
        json!({"action": "cache_report", "test": failed, "error": error}),
        None,
    )
    .await
    .unwrap();
    let cleaned = step(&deps, "cache_cleanup", &failed).await.unwrap();
    assert_eq!(cleaned["status"], "deleted");
    let r = w.report("jobs").await;
    assert!(
        !r.passed && r.error.as_deref().unwrap().contains("no verified RDB copy"),
        "{r:#?}"
    );
    let jobs = lifeboat::caches::restore::test_group_id("jobs", w.requested);
    assert_eq!(w.group_status(&jobs).await, None);
    assert!(
        !w.secret_exists(&lifeboat::caches::restore::test_secret_name(&jobs))
            .await
    );
}

/// A serverless cache's RDB copy of two shards seeds a cluster-mode group of two shards (a shard per file, the
/// cluster-mode parameter group of the copy's engine and version) and is verified on every primary, its keys
/// summed and compared with that copy's manifest, like a sharded cache's snapshot.
#[tokio::test]
async fn a_serverless_copy_of_two_shards_is_restore_tested_as_a_sharded_group() {
    let w = world().await;
    let (cluster, deps) = sharded(&w).await;
    let started = restore::caches::start_with(&deps, &serverless(SHARDED), None, w.requested)
        .await
        .unwrap();
    let manifest = lifeboat::bucket::layout::rdb_keys(SHARDED, snapshot_at()).manifest();
    assert_eq!(
        (&started["shards"], &started["rdb_manifest"]),
        (&json!(2), &json!(manifest))
    );
    let id = lifeboat::caches::restore::test_group_id(SHARDED, w.requested);
    let described =
        w.ec.describe_replication_groups()
            .replication_group_id(&id)
            .send()
            .await
            .unwrap();
    let g = &described.replication_groups()[0];
    assert_eq!((g.cluster_enabled(), g.node_groups().len()), (Some(true), 2), "{g:?}");

    sharded_finish(&w, &deps, &cluster, &started).await;
    let r = w.report(SHARDED).await;
    assert!(r.passed, "{r:#?}");
    let keys = r.checks.iter().find(|c| c.name == "keys in db0").unwrap();
    assert!(
        keys.detail.starts_with("2 shards: ") && keys.detail.contains("= 1000 keys"),
        "{}",
        keys.detail
    );
}

/// Whether anything connected to the listener (it is non-blocking: a pending connection is accepted at once).
fn was_contacted(listener: &std::net::TcpListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    listener.accept().is_ok()
}

/// An attacker who may invoke `cache_verify` hands it a state naming a host of their own and another secret
/// (here one that holds the right password): the host gets no connection, the other secret is not used (the
/// step logs in with its own test's secret, which fails while it holds the wrong password and passes once it
/// holds the right one), and only the derived group's described endpoint is checked. A state naming another
/// group is refused.
#[tokio::test]
async fn a_forged_cache_verify_state_is_not_followed() {
    let w = world().await;
    let deps = w.deps(&[]);
    let start = json!({"action": "cache_start", "cache": "sessions", "requested_at": w.requested});
    let test = restore::handle(&deps, start, None).await.unwrap();
    let test = step(&deps, "cache_poll", &test).await.unwrap();
    assert_eq!(test["status"], "available", "{test}");

    let attacker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = attacker.local_addr().unwrap().port();
    let other =
        w.sm.create_secret()
            .name("lifeboat/app-prod")
            .secret_string(json!({"username": "default", "password": w.redis.password}).to_string())
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_owned();
    let mut forged = test.clone();
    forged["endpoint"] = json!({"host": "127.0.0.1", "port": port});
    forged["auth_secret"] = json!(other);
    forged["shards"] = json!(3);
    forged["rdb_manifest"] = json!("exports/evil/rdb/x.manifest.json");

    // The test's own secret still holds the token start generated: AUTH fails on the real group.
    let out = step(&deps, "cache_verify", &forged).await.unwrap();
    assert!(
        !was_contacted(&attacker),
        "cache_verify connected to the host the state named"
    );
    let connect = &out["checks"][0];
    assert_eq!(connect["result"], "failed", "{out:#}");
    // The real group's server (the described endpoint) refused the test's own token: the forged secret, which
    // holds the right password, was not used.
    assert!(connect["detail"].as_str().unwrap().contains("WRONGPASS"), "{out:#}");

    // With the right password in its own secret, the same forged state verifies the real group only.
    w.point_at_local(&test).await;
    let out = step(&deps, "cache_verify", &forged).await.unwrap();
    assert!(!was_contacted(&attacker));
    let results: BTreeMap<&str, &str> = out["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["result"].as_str().unwrap()))
        .collect();
    assert_eq!(results["connect"], "passed", "{out:#}");
    assert_eq!(
        results["keys in db0"], "passed",
        "the real snapshot's copy, not the forged manifest: {out:#}"
    );
    assert_eq!(
        out["shards"],
        Value::Null,
        "cluster mode from ElastiCache, not the state"
    );

    let mut other_group = test.clone();
    other_group["restored_id"] = json!("sessions");
    let err = step(&deps, "cache_verify", &other_group).await.unwrap_err();
    assert!(err.contains("`sessions` is not the restore test's own"), "{err}");
    step(&deps, "cache_cleanup", &test).await.unwrap();
}

/// A forged `cache_report` with made-up passing checks and no verify record writes a FAILED report.
#[tokio::test]
async fn a_forged_cache_report_without_a_verify_record_fails() {
    let w = world().await;
    let deps = w.deps(&[]);
    let forged = json!({"cache": "sessions", "requested_at": w.requested, "snapshot": SNAPSHOT,
                        "snapshot_time": snapshot_at(), "verified_at": w.requested,
                        "checks": [{"name": "connect", "result": "passed", "detail": "trust me"},
                                   {"name": "keys in db0", "result": "passed", "detail": "trust me"}],
                        "passed": true});
    let out = step(&deps, "cache_report", &forged).await.unwrap();
    assert_eq!(out["passed"], false, "{out}");
    let r = w.report("sessions").await;
    assert!(!r.passed, "{r:#?}");
    assert_eq!(r.checks.len(), 1, "{r:#?}");
    assert_eq!(r.checks[0].name, "verify record");
    assert!(!r.checks[0].passed);
}

/// Without a verified RDB copy of the restored snapshot the key counts cannot be compared: the check is
/// reported skipped and the test does not pass on PING and named keys alone.
#[tokio::test]
async fn a_cache_test_whose_key_counts_could_not_be_compared_does_not_pass() {
    let w = world().await;
    w.s3.delete_object()
        .bucket(BUCKET)
        .key(lifeboat::bucket::layout::rdb_keys("sessions", snapshot_at()).manifest())
        .send()
        .await
        .unwrap();
    let deps = w.deps(&[]);
    let (trail, _) = run(&w, &deps, "sessions", Before::Local).await;
    assert_eq!(trail.last().unwrap(), "cleanup: deleting", "{trail:?}");
    let r = w.report("sessions").await;
    assert!(!r.passed, "{r:#?}");
    let skipped = r.checks.iter().find(|c| c.name == "keys per database").unwrap();
    assert!(
        !skipped.passed && skipped.detail.starts_with("skipped: "),
        "{skipped:?}"
    );
    assert!(
        r.checks
            .iter()
            .filter(|c| c.name != "keys per database")
            .all(|c| c.passed),
        "{r:#?}"
    );
}

/// Without a named bundle a restored cache's certificate is checked against Amazon's root CAs only: the local
/// server's certificate (signed by a throwaway CA, as a certificate for the name from any other CA would be) is
/// refused before the AUTH token is sent, and the test fails.
#[tokio::test]
async fn without_a_named_bundle_only_amazons_roots_are_trusted() {
    let w = world().await;
    let deps = w.deps(&[("LIFEBOAT_CACHE_CA_BUNDLE", "")]);
    let (trail, _) = run(&w, &deps, "sessions", Before::Local).await;
    assert_eq!(trail.last().unwrap(), "cleanup: deleting", "{trail:?}");
    let r = w.report("sessions").await;
    assert!(!r.passed, "{r:#?}");
    assert_eq!(r.checks[0].name, "connect");
    assert!(r.checks[0].detail.contains("TLS handshake"), "{:?}", r.checks[0]);
}
