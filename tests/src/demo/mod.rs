//! The demo's world and story: a fleet in a local AWS (moto) backed by a real PostgreSQL and a real Redis, put
//! under a tiered plan document, and **the stack a user deploys** (`infra/template.yaml`, deployed into moto's
//! CloudFormation by `crate::stack`) doing the work: every function runs with the environment and the role the
//! stack gave it, and is invoked the way the stack's wiring invokes it: its schedules' own inputs at the story's
//! ticks, its EventBridge rules (each event checked against the rule's pattern first), the rotation its rotate
//! tick configured, and the restore tests run by the deployed state machine's definition (`crate::asl`). What a
//! person invokes by hand (a manual snapshot, a one-step restore, the evidence report for a month) goes to the
//! function a person would invoke. `make demo` (`tests/src/bin/demo.rs`) and `tests/it/demo.rs` tell it.
//!
//! The story is anchored to the moment it runs ([`story::Story`]): the plan's schedules, every tick and the report
//! period are derived from it, never from a date in `events/` (those stay samples). The fleet is healthy where the
//! story means it healthy (encrypted storage and snapshots under a KMS key, seven days of automated backups, fresh
//! exports, every restore test passing; deletion protection stays off, see `crate::fleet::Protection`) and broken
//! only where the story breaks it on purpose, and says so: [`UNENCRYPTED_ON_PURPOSE`]. [`Verdicts::story`] is
//! what the story means; [`run`] returns what the functions said.
//!
//! The local world adds to the stack only what points the functions at this machine's servers
//! (`deployed::world_settings`, each setting with its reason), and plays two parts AWS would: it puts each
//! restored copy's login into the restore test's own secret before Verify (moto's restored copies have no server:
//! the local ones answer for them), and it stages a rotation the way Secrets Manager does before invoking the
//! rotation's four steps.
//!
//! Never: reads the clock for anything the story makes but through [`story::Story`], invokes a function with an
//! input the stack's wiring or a person would not send, or hides a verdict: the demo prints every one and
//! [`Verdicts::differences`] names each that is not what the story means.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod deployed;
pub mod plans;
pub mod story;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::Utc;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::stack::{Deployed, Stack};
use crate::{fleet, moto::Moto, postgres::Postgres, redis::Redis, repo_root};
use story::Story;

pub const REGION: &str = "us-east-1";
pub const DR_REGION: &str = "us-west-2";
/// The stack's name, as `make deploy` would name it.
pub const STACK: &str = "lifeboat";
/// The versioned bucket the plan document lives in (the stack's `PlanBucket`), and its key (`PlanKey`).
pub const PLAN_BUCKET: &str = "lifeboat-demo-config";
pub const PLAN_KEY: &str = "lifeboat/plans.json";
/// After a restore: key tables exist and hold rows, and the server answers (the stack's `RestoreChecks`).
const RESTORE_CHECKS: &str = r#"[{"name": "users not empty", "sql": "select count(*) > 0 from users"}, {"name": "chats not empty", "sql": "select count(*) > 0 from chats"}, {"name": "messages not empty", "sql": "select count(*) > 0 from messages"}, {"name": "sessions not empty", "sql": "select count(*) > 0 from sessions"}, {"name": "SELECT now() answers", "sql": "select now() is not null"}]"#;
/// The demo's cache: `sessions`, a Valkey replication group. A local TLS `redis-server` with AUTH holds its data
/// and stands in for ElastiCache's nodes (moto has none), exactly as in the integration tests: its RDB file is
/// what ElastiCache's export writes, and it answers the restore test's checks as the restored group would.
pub const CACHE: &str = "sessions";
/// The restore test's named keys for the cache (the stack's `CacheRestoreChecks`): an RQ queue and the sessions.
const CACHE_CHECKS: &str = r#"{"sessions": [{"name": "rq default queue", "pattern": "rq:queue:default"}, {"name": "sessions", "pattern": "session:*"}]}"#;
/// The one database the story leaves unencrypted, on purpose, to show the finding: staging, created before the
/// fleet's encryption rule. Everything else in the fleet is encrypted.
pub const UNENCRYPTED_ON_PURPOSE: &str = "app-staging";
/// The master user the fleet's databases were created with (`crate::fleet`), which a restored copy keeps: the
/// local server's superuser, so that a restore test logs in as the copy's master user, as it would on RDS.
const MASTER_USER: &str = crate::postgres::SUPERUSER;
/// How old a daily rule's newest result may be before monitor alarms (its gap plus 10 %, at least 2 hours).
const DAILY_MAX_AGE_HOURS: f64 = 26.4;

/// The metric names the Embedded Metric Format documents among `log`'s lines define.
pub fn emf_metric_names(log: &str) -> Vec<String> {
    let mut names: Vec<String> = log
        .lines()
        .filter(|l| l.contains("\"_aws\""))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|doc| {
            doc["_aws"]["CloudWatchMetrics"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|d| d["Metrics"].as_array().cloned().unwrap_or_default())
                .filter_map(|m| m["Name"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A sample event of `events/`, read as JSON.
pub fn sample(path: &str) -> Value {
    let path = repo_root().join(path);
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn heading(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

/// The servers, the fleet under its plan, and the stack deployed, before any function ran.
#[derive(Debug)]
pub struct World {
    pub story: Story,
    pub moto: Moto,
    pub pg: Postgres,
    pub redis: Redis,
    pub stack: Stack,
    /// The stack's export bucket.
    pub bucket: String,
    /// The age identity the exports are encrypted to (the runbook decrypts with it).
    pub key_file: PathBuf,
    /// Where the demo leaves what a person may want to open (the evidence page, the function logs).
    pub out_dir: PathBuf,
    pub work: TempDir,
}

impl World {
    /// Starts the servers, creates the fleet, writes its plan and deploys the stack, anchored at this moment;
    /// `out_dir` receives the age identity, the evidence page and the function logs.
    pub async fn start(out_dir: &Path) -> Self {
        let story = Story::at(Utc::now());
        let work = tempfile::tempdir().unwrap();
        heading("Starting a local AWS (moto) and PostgreSQL");
        let moto = Moto::start_with_cache_exports();
        // WAL archiving on: RDS's point-in-time recovery is played by this server's own WAL (`Moto::stand_in_pitr`).
        let pg = Postgres::start_archiving();
        let redis = Redis::start_tls(&[]);
        println!(
            "  moto_server on {}; PostgreSQL on 127.0.0.1:{} (scram-sha-256); redis-server on 127.0.0.1:{} (TLS, AUTH)",
            moto.endpoint, pg.port, redis.port
        );
        pg.psql("postgres", "create database app").unwrap();
        pg.load_file("app", &repo_root().join("tests/demo/app.sql")).unwrap();
        let counts = pg
            .psql(
                "app",
                "select string_agg(format('%s=%s', relname, n_live_tup), ', ' order by relname) from pg_stat_user_tables",
            )
            .unwrap();
        println!("  demo application database `app`: {counts}");

        heading("Creating the fleet in the emulator");
        let config = moto.config(REGION);
        let rds = aws_sdk_rds::Client::new(&config);
        // The fleet's storage key, as a real fleet's: every database but the one left unencrypted on purpose.
        let storage_key = aws_sdk_kms::Client::new(&config)
            .create_key()
            .description("demo fleet storage")
            .send()
            .await
            .unwrap();
        let storage_key = storage_key.key_metadata().and_then(|k| k.arn()).unwrap().to_owned();
        let protection = fleet::Protection {
            kms_key_id: &storage_key,
            unencrypted: &[UNENCRYPTED_ON_PURPOSE],
        };
        fleet::create_protected(&rds, fleet::STANDARD, protection).await;
        for db in fleet::STANDARD {
            let tags: Vec<String> = db.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "  {:<12} {:<9} {}",
                db.id,
                if db.cluster { "aurora" } else { "instance" },
                tags.join(" ")
            );
        }
        println!(
            "  every database: storage encrypted with KMS key {storage_key}, {} days of automated backups",
            fleet::RETENTION_DAYS
        );
        println!(
            "  except {UNENCRYPTED_ON_PURPOSE}: its storage is left unencrypted ON PURPOSE, so that monitor and the \
             evidence report show the finding (a staging database created before the fleet's encryption rule)"
        );
        // billing's point-in-time recovery is real: a restore to a time replays this server's base backup and
        // archived WAL to it in a server of its own (`tests/emulator/rds_pitr.py`).
        moto.stand_in_pitr("billing", &pg);
        create_cache(&aws_sdk_elasticache::Client::new(&config), &redis).await;
        // The local Redis holds the cache's data: a snapshot of the cache keeps the RDB file it saves then, and
        // ElastiCache's export of the snapshot (which moto lacks) writes that file, judged by the bucket policy.
        moto.stand_in_cache(CACHE, &[&redis]);
        let kms = aws_sdk_kms::Client::new(&moto.config(DR_REGION));
        let key = kms.create_key().description("lifeboat DR copies").send().await.unwrap();
        let dr_key = key.key_metadata().and_then(|k| k.arn()).unwrap().to_owned();
        println!("  DR region {DR_REGION} with KMS key {dr_key}");
        Self::secrets(&config, &pg).await;

        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        std::fs::create_dir_all(out_dir).unwrap();
        let key_file = out_dir.join("age-identity.txt");
        {
            use age::secrecy::ExposeSecret;
            std::fs::write(&key_file, format!("{}\n", identity.to_string().expose_secret())).unwrap();
            // The restore test decrypts the newest export with this identity (the stack's AgeIdentitySecret; in
            // production a secret only the restore function can read, or none, and that check is reported as
            // skipped).
            aws_sdk_secretsmanager::Client::new(&config)
                .create_secret()
                .name("lifeboat/age-identity")
                .secret_string(identity.to_string().expose_secret())
                .send()
                .await
                .unwrap();
        }
        println!(
            "  exports are encrypted to age recipient {recipient}; the demo keeps the identity in {} (in production \
             it never goes near AWS)",
            key_file.display()
        );

        heading("The team's policy as a plan document, tiered by environment");
        let s3 = aws_sdk_s3::Client::new(&config);
        crate::plans::versioned_bucket(&s3, PLAN_BUCKET).await;
        crate::plans::put_json(&s3, PLAN_BUCKET, PLAN_KEY, &story.plan()).await;
        plans::print(&s3, story.today).await;

        heading("Deploying the stack as a user does: infra/template.yaml into the local cloud's CloudFormation");
        let params = [
            ("PlanBucket", PLAN_BUCKET),
            ("PlanKey", PLAN_KEY),
            ("AgeRecipients", recipient.as_str()),
            ("AgeIdentitySecret", "lifeboat/age-identity"),
            ("DrRegion", DR_REGION),
            ("DrKmsKeyArn", dr_key.as_str()),
            ("RestoreChecks", RESTORE_CHECKS),
            ("CacheRestoreChecks", CACHE_CHECKS),
            // moto has no ElastiCache Serverless API (DescribeServerlessCaches answers nothing it can read).
            ("ServerlessCaches", "false"),
            // Retention keeps more manual snapshots than RDS's default quota of 100 per region (four databases,
            // production's 30 days and more): the team had the quota raised, and says so to the stack.
            ("SnapshotQuota", "500"),
        ];
        let stack = tokio::task::block_in_place(|| Stack::deploy(&moto, REGION, STACK, &params));
        for (k, v) in params.iter().filter(|(k, _)| !k.ends_with("Checks")) {
            println!("  --parameter-overrides {k}={v}");
        }
        println!("  the checks after a restore: RestoreChecks and CacheRestoreChecks (see the book's parameters page)");
        let bucket = stack.function("ExportFunction").env["LIFEBOAT_BUCKET"].clone();
        println!(
            "  stack {STACK}: {} functions, {} schedules, {} rules; the export bucket is {bucket}",
            stack.functions().len(),
            stack.schedules().len(),
            stack.doc["rules"].as_array().map_or(0, Vec::len)
        );
        for s in stack.schedules() {
            println!("  schedule {:<28} {:<22} -> {}", s.name, s.expression, s.target_arn);
        }
        Self {
            story,
            moto,
            pg,
            redis,
            stack,
            bucket,
            key_file,
            out_dir: out_dir.to_owned(),
            work,
        }
    }

    /// Every database of the fleet is backed by the one local PostgreSQL: each gets a secret in Secrets Manager
    /// (the RDS secret JSON) and the `lifeboat:secret` tag that points the functions at it. app-prod's is a
    /// least-privilege backup user (pg_read_all_data) with a master secret beside it, so that it rotates with
    /// alternating users; the others use the admin login.
    async fn secrets(config: &aws_config::SdkConfig, pg: &Postgres) {
        let rds = aws_sdk_rds::Client::new(config);
        let secrets = aws_sdk_secretsmanager::Client::new(config);
        let instances = rds.describe_db_instances().send().await.unwrap();
        let clusters = rds.describe_db_clusters().send().await.unwrap();
        let arns: Vec<(String, String)> = instances
            .db_instances()
            .iter()
            .filter(|i| i.db_cluster_identifier().is_none())
            .filter_map(|i| Some((i.db_instance_identifier()?.to_owned(), i.db_instance_arn()?.to_owned())))
            .chain(
                clusters
                    .db_clusters()
                    .iter()
                    .filter_map(|c| Some((c.db_cluster_identifier()?.to_owned(), c.db_cluster_arn()?.to_owned()))),
            )
            .collect();
        let backup_password = crate::random_hex(16);
        pg.psql(
            "postgres",
            &format!(
                "CREATE ROLE lifeboat_backup LOGIN PASSWORD '{backup_password}'; GRANT pg_read_all_data TO lifeboat_backup"
            ),
        )
        .unwrap();
        let admin = json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port,
            "username": crate::postgres::SUPERUSER, "password": pg.password, "dbname": "app"});
        let master_arn = secrets
            .create_secret()
            .name("lifeboat/master")
            .secret_string(admin.to_string())
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_owned();
        for (id, arn) in &arns {
            let secret = if id == "app-prod" {
                json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port,
                    "username": "lifeboat_backup", "password": backup_password, "dbname": "app", "masterarn": master_arn})
            } else {
                admin.clone()
            };
            let name = format!("lifeboat/{id}");
            secrets
                .create_secret()
                .name(&name)
                .secret_string(secret.to_string())
                .send()
                .await
                .unwrap();
            rds.add_tags_to_resource()
                .resource_name(arn)
                .tags(
                    aws_sdk_rds::types::Tag::builder()
                        .key("lifeboat:secret")
                        .value(&name)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        println!("  a Secrets Manager secret per database (lifeboat/<db>), named by its `lifeboat:secret` tag;");
        println!("  app-prod's is the backup user lifeboat_backup, rotated with alternating users by lifeboat/master");
    }

    pub fn config(&self, region: &str) -> aws_config::SdkConfig {
        self.moto.config(region)
    }
}

/// The deployed stack's functions, started as Lambda would start them (`crate::stack::Deployed`).
#[derive(Debug)]
pub struct Functions {
    pub deployed: Deployed,
}

impl Functions {
    /// Starts every function of `w`'s stack with the local world's settings; their logs go to `logs`.
    pub fn start(w: &World, logs: &Path) -> Self {
        Self {
            deployed: Deployed::start(&w.stack, &w.moto, &deployed::world_settings(&w.pg, &w.redis), logs),
        }
    }

    /// Invokes a function by its ARN or name; its JSON result or its error text.
    pub fn invoke(&self, function: &str, payload: &Value) -> Result<Value, String> {
        tokio::task::block_in_place(|| self.deployed.invoke(function, payload))
    }

    /// [`Functions::invoke`], a failure ending the story with the function's log.
    pub fn must(&self, function: &str, payload: &Value) -> Value {
        self.invoke(function, payload).unwrap_or_else(|e| {
            panic!(
                "{function} refused {payload}: {e}\n{}",
                self.deployed.log_text(function)
            )
        })
    }

    /// The stack's schedule named `<stack>-<suffix>` fires at `at`: its target invoked with its own input.
    pub fn tick(&self, w: &World, suffix: &str, at: chrono::DateTime<Utc>) -> Value {
        let schedule = w.stack.schedule(suffix);
        self.must(&schedule.target_arn, &schedule.input_at(at))
    }

    /// The function `logical_id` names in the stack (a person's invocations: the console's restore, a manual
    /// snapshot, the evidence report for a month).
    pub fn by_hand(&self, w: &World, logical_id: &str, payload: &Value) -> Result<Value, String> {
        self.invoke(&w.stack.function(logical_id).name, payload)
    }

    /// An event through the stack's rule whose name contains `rule` and that targets `logical_id`: checked
    /// against the rule's pattern, then delivered.
    pub fn through_rule(&self, w: &World, logical_id: &str, rule: &str, event: &Value) -> Value {
        let function = w.stack.function(logical_id);
        let found = w
            .stack
            .rules_targeting(&function)
            .into_iter()
            .find(|r| r["name"].as_str().unwrap_or("").contains(rule))
            .unwrap_or_else(|| panic!("{logical_id} has no rule {rule}"));
        let pattern: Value = serde_json::from_str(found["pattern"].as_str().unwrap()).unwrap();
        assert!(
            deployed::matches(&pattern, event),
            "the event does not match {logical_id}'s rule {rule} ({pattern}): {event}"
        );
        self.must(&function.arn, event)
    }

    /// The names of the metrics the functions published: Embedded Metric Format lines in their logs.
    pub fn metric_names(&self, w: &World) -> Vec<String> {
        let logs: String = w
            .stack
            .functions()
            .iter()
            .map(|f| self.deployed.log_text(&f.name))
            .collect::<Vec<_>>()
            .join("\n");
        emf_metric_names(&logs)
    }
}

/// The AWSCURRENT user and password of a secret.
async fn current_user_of(sm: &aws_sdk_secretsmanager::Client, id: &str) -> (String, String) {
    let v = sm
        .get_secret_value()
        .secret_id(id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(v.secret_string().unwrap()).unwrap();
    (
        v["username"].as_str().unwrap().to_owned(),
        v["password"].as_str().unwrap().to_owned(),
    )
}

/// The notification on-call receives, and the one when it clears: the sample alarm, re-dated, for one of the
/// alarms monitor made, through the stack's rule for alarms.
fn notification(w: &World, f: &Functions, alarm_name: &str) {
    heading("A notification as on-call receives it, through the stack's rule for alarms: events/notify/alarm.json, dated two hours ago");
    let (mut alarm, mut recovery) = w.story.alarm_and_recovery(
        &sample("events/notify/alarm.json"),
        &sample("events/notify/recovery.json"),
    );
    for e in [&mut alarm, &mut recovery] {
        e["detail"]["alarmName"] = json!(alarm_name);
        e["region"] = json!(REGION);
    }
    let sent = f.through_rule(w, "NotifyFunction", "AlarmChanged", &alarm);
    println!("  delivered to: {}", sent["channels"]);
    for line in sent["text"].as_str().unwrap_or("").lines() {
        println!("    {line}");
    }
    let recovered = f.through_rule(w, "NotifyFunction", "AlarmChanged", &recovery);
    println!("  and when it clears:");
    for line in recovered["text"].as_str().unwrap_or("").lines() {
        println!("    {line}");
    }
}

/// The next backup carries the damage: a cleanup job with a wrong `WHERE` deletes most of `messages` (and the
/// recover chapter's dropped `sessions` is still gone from the live database); the next export of app-prod is
/// compared with the one before, the anomaly holds the last good restore points, the content alarm's notification
/// names the tables and the numbers, and a person acknowledges it from the console.
async fn content_watch(w: &World, f: &Functions) {
    heading("The next backup carries the damage: a cleanup job's wrong WHERE, then an export by hand of app-prod's full profile");
    let count = |table: &str| w.pg.psql("app", &format!("select count(*) from {table}")).unwrap();
    let before = count("messages");
    w.pg.psql("app", "delete from messages where id % 4 <> 0").unwrap();
    println!(
        "  delete from messages where id % 4 <> 0: {before} rows -> {} (and sessions, dropped above, is still gone)",
        count("messages")
    );
    let export = f
        .by_hand(w, "ExportFunction", &json!({"database": "app-prod", "profile": "full"}))
        .unwrap_or_else(|e| panic!("the export by hand failed: {e}"));
    let report = export["exports"]
        .as_array()
        .and_then(|d| d.iter().find(|r| r["db"] == "app-prod"))
        .unwrap_or_else(|| panic!("the export by hand made no export of app-prod: {export}"));
    println!("  export {}", report["manifest_key"].as_str().unwrap_or("?"));
    println!("  compared with the backup before it (beside the manifest, .watch.json):");
    for line in report["watch_findings"].as_array().into_iter().flatten() {
        println!("    {}", line.as_str().unwrap_or(""));
    }
    println!("  schema drift: {}", report["drift_summary"].as_str().unwrap_or("none"));
    let findings = report["watch_findings"].to_string();
    assert!(
        findings.contains("public.messages: 24,000 rows") && findings.contains("public.sessions"),
        "the comparison names the mass delete and the vanished table: {findings}"
    );

    let s3 = aws_sdk_s3::Client::new(&w.config(REGION));
    let keys = lifeboat::bucket::layout::list_keys(&s3, &w.bucket, "watch/app-prod/full/", ".json")
        .await
        .unwrap();
    let key = keys
        .last()
        .unwrap_or_else(|| panic!("no content anomaly was opened for app-prod"));
    let anomaly: lifeboat::watch::record::Anomaly =
        lifeboat::bucket::layout::get_json(&s3, &w.bucket, key).await.unwrap();
    println!(
        "  anomaly s3://{}/{key}: held from retention until a person acknowledges it:",
        w.bucket
    );
    for m in &anomaly.held.manifests {
        println!("    export   {m}");
    }
    for snapshot in &anomaly.held.snapshots {
        println!("    snapshot {snapshot}");
    }

    heading("The content alarm's notification, through the stack's rule for alarms");
    let cw = aws_sdk_cloudwatch::Client::new(&w.config(REGION));
    let suffix = format!("/app-prod/{}", lifeboat::monitoring::monitor::CONTENT_CHECK);
    let content_alarm = cw
        .describe_alarms()
        .send()
        .await
        .unwrap()
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name())
        .find(|n| n.ends_with(&suffix))
        .unwrap_or_else(|| panic!("monitor made no content alarm for app-prod"))
        .to_owned();
    println!("  {content_alarm}: ContentAnomalies above 0 while the anomaly is open");
    let (mut alarm, _) = w.story.alarm_and_recovery(
        &sample("events/notify/alarm.json"),
        &sample("events/notify/recovery.json"),
    );
    alarm["detail"]["alarmName"] = json!(content_alarm);
    alarm["region"] = json!(REGION);
    let now = Utc::now();
    alarm["time"] = json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    alarm["detail"]["state"]["timestamp"] = json!(now.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    alarm["detail"]["state"]["reason"] = json!(format!(
        "Threshold Crossed: 1 datapoint [1.0 ({})] was greater than the threshold (0.0).",
        now.format("%d/%m/%y %H:%M:%S")
    ));
    let sent = f.through_rule(w, "NotifyFunction", "AlarmChanged", &alarm);
    for line in sent["text"].as_str().unwrap_or("").lines() {
        println!("    {line}");
    }

    heading("A person acknowledges it from the console (events/monitor/console-acknowledge.json)");
    let mut ack = sample("events/monitor/console-acknowledge.json");
    ack["resource"] = json!("app-prod");
    ack["series"] = json!("full");
    ack["why"] = json!("OPS-1402: the messages purge is understood; sessions was recovered beside the live database");
    let acknowledged = f
        .by_hand(w, "MonitorFunction", &ack)
        .unwrap_or_else(|e| panic!("the acknowledgement failed: {e}"));
    println!(
        "  acknowledged by {} (as stated; CloudTrail's Invoke record names the caller): {} snapshot(s) and {} export(s) back under retention",
        acknowledged["acknowledgement"]["by"].as_str().unwrap_or("?"),
        acknowledged["released_snapshots"].as_array().map_or(0, Vec::len),
        acknowledged["released_manifests"].as_array().map_or(0, Vec::len),
    );
    assert!(
        !anomaly.held.manifests.is_empty() && acknowledged["released_manifests"] == json!(anomaly.held.manifests),
        "the acknowledgement releases what the anomaly held: {acknowledged}"
    );
    println!("  later backups are compared from this one on: it is the new baseline");
}

/// A table dropped by mistake on billing, and brought back as it was just before, in one command: the console's
/// `recover` (a point-in-time restore into a scratch instance, the table streamed from it into a new database
/// beside the live one, the scratch deleted).
async fn recover(w: &World, f: &Functions) {
    heading("A table dropped by mistake, brought back as it was before, in one command (events/restore/console-recover.json)");
    let rows = |db: &str| {
        w.pg.psql(
            db,
            "select count(*) || ' rows, last expiry ' || max(expires_at) from sessions",
        )
    };
    let before = rows("app").unwrap();
    // The operator's "it was fine at 14:31": a moment before the mistake, to the millisecond.
    let fine_at = Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    w.pg.psql("app", "drop table sessions").unwrap();
    println!(
        "  {} sessions: {before}; then, by mistake: drop table sessions",
        fine_at.format("%H:%M:%S%.3f UTC")
    );
    let mut event = sample("events/restore/console-recover.json");
    // billing's secret is the admin login, which may create the new database and its owner (app-prod's is the
    // read-only backup user).
    event["database"] = json!("billing");
    event["to"] = json!(fine_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    event["tables"] = json!(["sessions"]);
    event["into"] = json!({"database": "app_sessions_recovered"});
    println!(
        "  lifeboat recover billing --to {} --table sessions --into postgres://.../app_sessions_recovered, here as the \
         console's recover",
        event["to"]
    );
    let out = f
        .by_hand(w, "RestoreFunction", &event)
        .unwrap_or_else(|e| panic!("recover failed: {e}"));
    for t in out["tables"].as_array().into_iter().flatten() {
        println!(
            "  {:<16} {} rows recovered, {} in the scratch copy",
            t["table"].as_str().unwrap_or("?"),
            t["restored_rows"],
            t["expected_rows"]
        );
    }
    let after = rows("app_sessions_recovered").unwrap();
    let rds = aws_sdk_rds::Client::new(&w.config(REGION));
    let left: Vec<String> = rds
        .describe_db_instances()
        .send()
        .await
        .unwrap()
        .db_instances()
        .iter()
        .filter_map(|i| i.db_instance_identifier())
        .filter(|id| id.starts_with("lifeboat-rc-"))
        .map(str::to_owned)
        .collect();
    println!(
        "  app_sessions_recovered.sessions: {after}; RTO {:.1} s; scratch instances left: {}",
        out["rto_seconds"].as_f64().unwrap_or_default(),
        left.len()
    );
    assert_eq!(after, before, "recover brings the table back as it was: {out}");
    assert!(left.is_empty(), "recover left its scratch instance: {left:?}");
    let keys =
        w.pg.psql(
            "app_sessions_recovered",
            "select count(*) from pg_indexes where tablename = 'sessions'",
        )
        .unwrap();
    println!("  with its primary key and indexes ({keys} on the table), not only its rows");
}

/// Staging refreshed from production's newest export with personal data masked in the stream: the console's
/// `refresh` (the rule read from the plan, the staging server's own login, the stack's masking key), then a masked
/// row printed beside its source.
async fn staging_refresh(w: &World, f: &Functions) {
    heading(
        "Staging refreshed from the newest verified export, masked on the way (events/restore/console-refresh.json)",
    );
    let mut event = sample("events/restore/console-refresh.json");
    event["plan"] = json!("production");
    event["refresh"] = json!("staging-app");
    println!("  lifeboat refresh production staging-app, here as the console's refresh");
    let out = f
        .by_hand(w, "RestoreFunction", &event)
        .unwrap_or_else(|e| panic!("refresh failed: {e}"));
    println!(
        "  {} from {} into {} on app-staging (swapped in: {})",
        out["refresh"].as_str().unwrap_or("?"),
        out["export"].as_str().unwrap_or("?"),
        out["database"].as_str().unwrap_or("?"),
        out["swapped"]
    );
    for check in out["checks"].as_array().into_iter().flatten() {
        println!(
            "  check {:<18} {}",
            check["name"].as_str().unwrap_or("?"),
            check["detail"].as_str().unwrap_or("")
        );
    }
    let row = "select email || ' | ' || name from users where id = 1";
    let source = w.pg.psql("app", row).unwrap();
    let masked = w.pg.psql("app_staging", row).unwrap();
    println!("  users row 1 in production: {source}");
    println!("  users row 1 in staging:    {masked}");
    println!(
        "  report: s3://{}/{}",
        w.bucket,
        out["report"].as_str().unwrap_or("(not written)")
    );
    assert_eq!(out["swapped"], true, "the refresh swaps staging in: {out}");
    assert_ne!(source, masked, "staging's users row is masked");
    let leaked =
        w.pg.psql(
            "app_staging",
            "select count(*) from users where email like 'user%@example.com' or name like 'User %'",
        )
        .unwrap();
    assert_eq!(leaked, "0", "no production email or name reached staging");
    let counts = "select (select count(*) from users) || '/' || (select count(*) from messages)";
    assert_eq!(
        w.pg.psql("app_staging", counts).unwrap(),
        w.pg.psql("app", counts).unwrap(),
        "staging has production's rows, masked"
    );
}

/// What the fleet holds at the end: snapshots per region, the metrics published.
async fn holdings(w: &World, f: &Functions) {
    heading("What the fleet holds now");
    let rds = aws_sdk_rds::Client::new(&w.config(REGION));
    let source = lifeboat::rds::snapshots::list_manual(&rds).await.unwrap();
    let dr = lifeboat::rds::snapshots::list_manual(&aws_sdk_rds::Client::new(&w.config(DR_REGION)))
        .await
        .unwrap();
    println!("  {:<12} {:>10} {:>10}  newest", "database", REGION, DR_REGION);
    for db in fleet::STANDARD {
        let mine: Vec<_> = source.iter().filter(|s| s.db == db.id && s.owned()).collect();
        let copies = dr.iter().filter(|s| s.db == db.id && s.owned()).count();
        let newest = mine
            .iter()
            .max_by_key(|s| s.logical_time())
            .map(|s| s.id.as_str())
            .unwrap_or("(none: its plan takes no backups)");
        println!("  {:<12} {:>10} {:>10}  {newest}", db.id, mine.len(), copies);
    }
    println!(
        "  metrics published in namespace Lifeboat: {}",
        f.metric_names(w).join(", ")
    );
}

/// Tells the whole story through the deployed stack's functions; returns what the judges said.
pub async fn run(w: &World, f: &Functions) -> Verdicts {
    history(w, f);
    snapshots(w, f);
    exports(w, f).await;
    rotation(w, f).await;
    let tests = restore_tests(w, f).await;

    heading("The monitor schedule's tick, now: the fleet judged against its plans");
    let now = w.stack.schedule("monitor").latest_at_or_before(Utc::now());
    let view = f.tick(w, "monitor", now);
    print_monitor(&view);

    let period = w.story.evidence_period();
    heading(&format!(
        "The fleet's evidence report for this month so far ({period}), by hand: events/monitor/evidence-report.json's shape"
    ));
    let evidence = f
        .by_hand(
            w,
            "MonitorFunction",
            &json!({"action": "evidence-report", "period": period}),
        )
        .unwrap_or_else(|e| panic!("evidence report failed: {e}"));
    print_evidence(&evidence);
    let s3 = aws_sdk_s3::Client::new(&w.config(REGION));
    let html_key = evidence["html_key"].as_str().unwrap();
    let page = s3.get_object().bucket(&w.bucket).key(html_key).send().await.unwrap();
    let local = w.out_dir.join("evidence-report.html");
    std::fs::write(&local, page.body.collect().await.unwrap().into_bytes()).unwrap();
    println!(
        "  written to {} and copied to {}",
        evidence["url"].as_str().unwrap_or(""),
        local.display()
    );
    println!(
        "  open it in a browser, or print it to PDF: chromium --headless --print-to-pdf=evidence.pdf file://{}",
        local.display()
    );
    let cw = aws_sdk_cloudwatch::Client::new(&w.config(REGION));
    let alarms = cw.describe_alarms().send().await.unwrap();
    let alarm = alarms
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name())
        .find(|n| n.contains("app-prod"))
        .unwrap_or_else(|| panic!("monitor made no alarm for app-prod"))
        .to_owned();
    notification(w, f, &alarm);
    recover(w, f).await;
    staging_refresh(w, f).await;
    content_watch(w, f).await;
    holdings(w, f).await;
    Verdicts::read(&view, &evidence, tests)
}

/// The runbook's steps with the standard tools: `age -d`, `zstd -d`, `pg_restore` into a new database.
fn restore_runbook(pg: &Postgres, encrypted: &Path, identity: &Path, into: &str) -> String {
    let compressed = encrypted.with_extension("");
    let dump = compressed.with_extension("");
    let step = |cmd: &mut Command| {
        let out = cmd.stdin(Stdio::null()).output().expect("running a runbook step");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    step(
        Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(identity)
            .arg("-o")
            .arg(&compressed)
            .arg(encrypted),
    );
    step(
        Command::new("zstd")
            .args(["-d", "-q", "-f"])
            .arg(&compressed)
            .arg("-o")
            .arg(&dump),
    );
    pg.psql("postgres", &format!("create database {into}")).unwrap();
    step(
        Command::new(crate::postgres::bin_dir().join("pg_restore"))
            .args([
                "--no-owner",
                "--exit-on-error",
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
            ])
            .args(["-U", crate::postgres::SUPERUSER, "-d", into])
            .arg(&dump)
            .env("PGPASSWORD", &pg.password),
    );
    format!(
        "{} bytes decrypted and decompressed to {} bytes, restored",
        std::fs::metadata(encrypted).map(|m| m.len()).unwrap_or(0),
        std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0)
    )
}

fn print_run(summary: &Value) {
    let Some(dbs) = summary["databases"].as_array() else {
        return;
    };
    println!("  {:<14} {:<16} {:<40} deleted", "database", "outcome", "snapshot");
    for db in dbs {
        println!(
            "  {:<14} {:<16} {:<40} {}",
            db["db"].as_str().unwrap_or(""),
            db["outcome"].as_str().unwrap_or(""),
            db["snapshot_id"].as_str().unwrap_or("-"),
            db["deleted"].as_array().map(|d| d.len()).unwrap_or(0),
        );
    }
    for cache in summary["caches"].as_array().into_iter().flatten() {
        println!(
            "  {:<14} {:<16} {:<40} {}   (cache, taken of {})",
            cache["cache"].as_str().unwrap_or(""),
            cache["outcome"].as_str().unwrap_or(""),
            cache["snapshot_id"].as_str().unwrap_or("-"),
            cache["deleted"].as_array().map(|d| d.len()).unwrap_or(0),
            cache["source"].as_str().unwrap_or("")
        );
    }
}

fn print_retention(summary: &Value, db: &str) {
    let Some(entry) = summary["databases"]
        .as_array()
        .and_then(|v| v.iter().find(|d| d["db"] == db))
    else {
        return;
    };
    println!("  retention decisions for {db} (its plan's retention; newest first):");
    for e in entry["retention"].as_array().into_iter().flatten() {
        let decision = e["decision"].as_str().unwrap_or("");
        let mark = if decision == "expire" {
            "\x1b[31mdelete\x1b[0m"
        } else {
            "keep  "
        };
        println!(
            "    {mark}  {:<36} {}",
            e["snapshot"].as_str().unwrap_or(""),
            decision.replace('_', " ")
        );
    }
}

/// The evidence report's verdicts, as monitor's invocation returns them.
fn print_evidence(summary: &Value) {
    println!(
        "  {}: {} of {} databases meet their policy",
        summary["period"].as_str().unwrap_or(""),
        summary["policies_met"],
        summary["databases"]
    );
    let story = Verdicts::story();
    for (db, verdict) in summary["verdicts"].as_object().into_iter().flatten() {
        let verdict = verdict.as_str().unwrap_or("");
        let on_purpose = if story.evidence_not_met.get(db) == Some(&counts_as_n(verdict)) {
            "   (on purpose: the story left it unencrypted)"
        } else {
            ""
        };
        println!("  {db:<12} {verdict}{on_purpose}");
    }
}

/// Prints the newest restore-test report under `prefix` (Markdown) from the bucket and returns whether the test
/// passed, by monitor's rule on the report's JSON beside it (`lifeboat::monitoring::monitor::restore_test_passed`).
async fn print_report(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> bool {
    let listed = s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
    let Some(md_key) = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .filter(|k| k.ends_with(".md"))
        .max()
        .map(str::to_owned)
    else {
        println!("  no report under s3://{bucket}/{prefix}");
        return false;
    };
    let report = s3.get_object().bucket(bucket).key(&md_key).send().await.unwrap();
    let report = String::from_utf8(report.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    println!("  report s3://{bucket}/{md_key}:");
    for line in report.lines() {
        println!("    {line}");
    }
    let json_key = md_key.replace(".md", ".json");
    let json = lifeboat::bucket::layout::get_json::<Value>(s3, bucket, &json_key)
        .await
        .ok();
    lifeboat::monitoring::monitor::restore_test_passed(json.as_ref())
}

/// Each export a run made with its profile: a plan tick's summary holds one batch a profile (`exports[].exports`),
/// an export by hand its exports directly.
fn export_rows(summary: &Value) -> Vec<(String, Value)> {
    let mut rows = Vec::new();
    for item in summary["exports"].as_array().into_iter().flatten() {
        match item["exports"].as_array() {
            Some(batch) => {
                let profile = item["profile"].as_str().unwrap_or("");
                rows.extend(batch.iter().map(|e| (profile.to_owned(), e.clone())));
            }
            None => rows.push((summary["profile"].as_str().unwrap_or("").to_owned(), item.clone())),
        }
    }
    rows
}

fn print_exports(summary: &Value) {
    for (profile, e) in export_rows(summary) {
        println!(
            "  {:<12} {:<9} {:<10} {:>9} -> {:>8} bytes in {:.1} s  {}",
            e["db"].as_str().unwrap_or(""),
            profile,
            e["outcome"].as_str().unwrap_or(""),
            e["plaintext_bytes"],
            e["stored_bytes"],
            e["seconds"].as_f64().unwrap_or(0.0),
            e["key"].as_str().unwrap_or("")
        );
    }
    // A plan tick's copy-caches summary is nested (`caches.caches`).
    let caches = summary["caches"]["caches"].as_array().or(summary["caches"].as_array());
    for c in caches.into_iter().flatten() {
        println!(
            "  {:<12} {:<9} {:<10} keys per database {}",
            c["cache"].as_str().unwrap_or(""),
            "rdb",
            c["outcome"].as_str().unwrap_or(""),
            c["keys_per_db"]
        );
    }
}

/// What happened before today, in the order it happened: 45 days of the snapshot schedule's ticks, then the export
/// schedule's ticks since yesterday's snapshot (yesterday's full dumps, the critical tables every 6 hours, the
/// cache's RDB copy requested and verified).
fn history(w: &World, f: &Functions) {
    let story = &w.story;
    heading(&format!(
        "{} days of the snapshot schedule's ticks before today ({}), at today's snapshot time",
        story::BACKFILL_DAYS,
        story.today.format("%Y-%m-%d %H:%M UTC")
    ));
    let started = Instant::now();
    for t in story.backfill() {
        f.tick(w, "snapshot", t);
        print!(".");
        std::io::stdout().flush().ok();
    }
    println!(
        "\n  {} ticks in {:.1} s",
        story::BACKFILL_DAYS,
        started.elapsed().as_secs_f64()
    );

    heading("The export schedule's ticks since yesterday's: full dumps daily, critical tables every 6 hours");
    let ticks = story.export_ticks();
    for t in &ticks[..ticks.len() - 1] {
        let summary = f.tick(w, "export-plan-tick", *t);
        println!("  the tick at {}:", t.format("%Y-%m-%d %H:%M UTC"));
        print_exports(&summary);
    }
}

/// Today's snapshot tick with its retention decisions, RDS's completion event through the stack's rule, a
/// redelivery and a manual snapshot.
fn snapshots(w: &World, f: &Functions) {
    let story = &w.story;
    heading("Today's snapshot tick: the plans' snapshot rules are due");
    let summary = f.tick(w, "snapshot", story.today);
    print_run(&summary);
    print_retention(&summary, "app-prod");
    for q in summary["quota"].as_array().into_iter().flatten() {
        println!(
            "  manual snapshots in {}: {} of {} ({}%)",
            q["region"].as_str().unwrap_or(""),
            q["manual_snapshots"],
            q["quota"],
            q["used_percent"]
        );
    }
    let app_snapshot = summary["databases"]
        .as_array()
        .and_then(|v| v.iter().find(|d| d["db"] == "app-prod"))
        .and_then(|d| d["snapshot_id"].as_str())
        .unwrap_or_else(|| panic!("today's tick took no snapshot of app-prod: {summary}"))
        .to_owned();

    heading("RDS says today's app-prod snapshot finished, through the stack's rule: its copy to the DR region");
    let finished = story.snapshot_finished(&sample("events/snapshot/rds-snapshot-finished.json"), &app_snapshot);
    let s = f.through_rule(w, "SnapshotFunction", "SnapshotFinished", &finished);
    let r = &s["databases"][0];
    println!(
        "  {} -> {} {}",
        r["snapshot_id"].as_str().unwrap_or(""),
        r["outcome"].as_str().unwrap_or(""),
        r["detail"].as_str().unwrap_or("")
    );

    heading("The same tick delivered again (Scheduler retries): nothing new is made");
    print_run(&f.tick(w, "snapshot", story.today));

    heading("A manual snapshot before a migration, by hand: events/snapshot/manual.json");
    match f.by_hand(w, "SnapshotFunction", &sample("events/snapshot/manual.json")) {
        Ok(s) => print_run(&s),
        Err(e) => println!("  failed: {e}"),
    }
}

/// Today's export tick, app-prod's export restored with the standard tools, and billing's tables in one step.
async fn exports(w: &World, f: &Functions) {
    let s3 = aws_sdk_s3::Client::new(&w.config(REGION));
    let at = w.story.export_tick();
    heading(&format!(
        "Today's export tick ({}): the full dumps, the critical tables, the cache's RDB copy requested",
        at.format("%H:%M UTC")
    ));
    let today = f.tick(w, "export-plan-tick", at);
    print_exports(&today);
    let (_, app) = export_rows(&today)
        .into_iter()
        .find(|(profile, e)| e["db"] == "app-prod" && profile == "full")
        .unwrap_or_else(|| panic!("today's export tick made no full export of app-prod: {today}"));
    let manifest_key = app["manifest_key"].as_str().unwrap();
    let manifest: Value = lifeboat::bucket::layout::get_json(&s3, &w.bucket, manifest_key)
        .await
        .unwrap();
    println!(
        "  manifest s3://{}/{manifest_key} (written last; its presence means the export is complete):",
        w.bucket
    );
    for line in serde_json::to_string_pretty(&manifest).unwrap().lines().take(60) {
        println!("    {line}");
    }

    heading("Restoring app-prod's export with standard tools (the runbook)");
    let object = s3
        .get_object()
        .bucket(&w.bucket)
        .key(app["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let encrypted = w.work.path().join("app-prod.dump.zst.age");
    std::fs::write(&encrypted, object.body.collect().await.unwrap().into_bytes()).unwrap();
    let restored = restore_runbook(&w.pg, &encrypted, &w.key_file, "app_restored");
    println!("  age -d | zstd -d | pg_restore into database app_restored: {restored}");
    let original = row_counts(&w.pg, "app");
    let copy = row_counts(&w.pg, "app_restored");
    println!("  rows in app:          {original}");
    println!("  rows in app_restored: {copy}");
    println!(
        "  {}",
        if original == copy {
            "identical row counts"
        } else {
            "ROW COUNTS DIFFER"
        }
    );

    heading("In one step, by hand: billing's users and sessions restored from its export (events/restore/console-restore-export.json)");
    let mut one_step = sample("events/restore/console-restore-export.json");
    // billing's secret is the admin login: restoring into a new database needs a user that may create one (app-prod's
    // is the read-only backup user).
    one_step["database"] = json!("billing");
    one_step["tables"] = json!(["users", "sessions"]);
    one_step["into"] = json!({"database": "app_users_restored"});
    match f.by_hand(w, "RestoreFunction", &one_step) {
        Ok(r) => {
            println!("  export {}", r["export"]["manifest"].as_str().unwrap_or("?"));
            for t in r["tables"].as_array().into_iter().flatten() {
                println!(
                    "  {:<16} {} rows restored, {} in the manifest",
                    t["table"].as_str().unwrap_or("?"),
                    t["restored_rows"],
                    t["expected_rows"]
                );
            }
            println!(
                "  into database {} (verified: {}); RTO {:.1} s",
                r["target"]["database"].as_str().unwrap_or("?"),
                r["verified"],
                r["rto_seconds"].as_f64().unwrap_or_default()
            );
        }
        Err(e) => println!("  FAILED: {e}"),
    }
}

/// The rotate tick sets each production secret to rotate with the stack's function; app-prod's rotated as Secrets
/// Manager runs a rotation (alternating users), then an export by hand with nothing redeployed.
async fn rotation(w: &World, f: &Functions) {
    let secrets = aws_sdk_secretsmanager::Client::new(&w.config(REGION));
    let at = w.stack.schedule("rotate-plan-tick").latest_at_or_before(w.story.today);
    heading(&format!(
        "The rotate schedule's tick ({}): production's secrets rotate every 30 days with the stack's function",
        at.format("%Y-%m-%d %H:%M UTC")
    ));
    f.tick(w, "rotate-plan-tick", at);
    let secret_id = "lifeboat/app-prod";
    let described = secrets.describe_secret().secret_id(secret_id).send().await.unwrap();
    let rotation_function = described
        .rotation_lambda_arn()
        .unwrap_or_else(|| panic!("the rotate tick configured no rotation on {secret_id}"))
        .to_owned();
    println!(
        "  {secret_id}: rotation with {rotation_function}, every {} days",
        described
            .rotation_rules()
            .and_then(|r| r.automatically_after_days())
            .unwrap_or_default()
    );

    heading("A rotation of app-prod's credentials as Secrets Manager runs it (alternating users)");
    let before = current_user_of(&secrets, secret_id).await;
    let token = crate::stage_rotation(&secrets, secret_id).await;
    let started = Instant::now();
    for step in crate::ROTATION_STEPS {
        let mut event = sample(&format!("events/rotate/{step}.json"));
        event["SecretId"] = Value::from(secret_id);
        event["ClientRequestToken"] = Value::from(token.as_str());
        let out = f.must(&rotation_function, &event);
        println!(
            "  {step:<13} {:<22} user {}",
            out["result"].as_str().unwrap_or(""),
            out["user"].as_str().unwrap_or("-")
        );
    }
    crate::end_rotation(&secrets, secret_id, &token).await.unwrap();
    let after = current_user_of(&secrets, secret_id).await;
    println!(
        "  rotated in {:.1} s: AWSCURRENT was {} and is now {} (with the same memberships); {} keeps its password \
         until the next rotation",
        started.elapsed().as_secs_f64(),
        before.0,
        after.0,
        before.0
    );
    let who = w.pg.psql_as(&after.0, &after.1, "app", "select current_user").unwrap();
    println!("  the new AWSCURRENT logs in as {who}");

    heading("An export by hand after the rotation, with nothing redeployed: events/export/manual.json");
    match f.by_hand(w, "ExportFunction", &sample("events/export/manual.json")) {
        Ok(manual) => print_exports(&manual),
        Err(e) => println!("  FAILED: {e}"),
    }
}

/// Today's test tick: the export tick finishes the cache's RDB copy, the snapshot tick starts the plans' restore
/// tests in the deployed state machine, whose definition runs them; each report printed. Whether each passed.
async fn restore_tests(w: &World, f: &Functions) -> BTreeMap<String, bool> {
    let config = w.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    let at = w.story.test_tick();
    heading("The export tick after: the cache's RDB copy verified and moved beside the exports");
    print_exports(&f.tick(w, "export-plan-tick", at));

    heading("The snapshot tick starts the restore tests in the deployed state machine, which runs them");
    f.tick(w, "snapshot", at);
    let (machine_arn, definition) = w.stack.state_machine("restore-test");
    let sfn = aws_sdk_sfn::Client::new(&config);
    let mut steps = deployed::Steps::new(&f.deployed, &config, &w.pg, &w.redis, MASTER_USER);
    let started = Instant::now();
    let ran = deployed::Executions::default()
        .new_ones(&sfn, &machine_arn, &definition, &mut steps)
        .await;
    for (arn, execution, _) in &ran {
        let outcome = match &execution.result {
            Ok(out) => format!("succeeded: {}", out["summary"]),
            Err(failure) => format!("failed: {} {}", failure.error, failure.cause),
        };
        let name = arn.rsplit(':').next().unwrap_or(arn);
        println!("  execution {name} ({} states): {outcome}", execution.trace.len());
    }
    println!(
        "  {} executions run by the deployed definition in {:.1} s",
        ran.len(),
        started.elapsed().as_secs_f64()
    );
    let mut passed = BTreeMap::new();
    for db in story::PRODUCTION.iter().chain(&story::STAGING) {
        heading(&format!("Restore test of {db}"));
        let prefix = lifeboat::bucket::layout::restore_report_prefix(db);
        passed.insert((*db).to_owned(), print_report(&s3, &w.bucket, &prefix).await);
    }
    heading(&format!("Restore test of the cache {CACHE}"));
    let prefix = lifeboat::bucket::layout::cache_restore_report_prefix(CACHE);
    passed.insert(CACHE.to_owned(), print_report(&s3, &w.bucket, &prefix).await);
    passed
}

async fn create_cache(ec: &aws_sdk_elasticache::Client, redis: &Redis) {
    let tag = |k: &str, v: &str| aws_sdk_elasticache::types::Tag::builder().key(k).value(v).build();
    ec.create_replication_group()
        .replication_group_id(CACHE)
        .replication_group_description("demo session store and job queue")
        .engine("valkey")
        .engine_version("8.0")
        .cache_node_type("cache.t4g.small")
        // No replica: moto does not register a group's member nodes as clusters, so a snapshot taken from a
        // replica (what Lifeboat does where one exists) cannot be made in the emulator.
        .replicas_per_node_group(0)
        .transit_encryption_enabled(true)
        .at_rest_encryption_enabled(true)
        .snapshot_retention_limit(7)
        .tags(tag("lifeboat:backup", "true"))
        .send()
        .await
        .unwrap();
    for i in 0..200 {
        redis.cli(
            0,
            &[
                "SET",
                &format!("session:{i:04}"),
                &format!("user-{}", i % 37),
                "EX",
                "86400",
            ],
        );
    }
    for i in 0..25 {
        redis.cli(0, &["RPUSH", "rq:queue:default", &format!("job-{i}")]);
    }
    redis.cli(1, &["HSET", "ratelimit:api", "alice", "17", "bob", "3"]);
    println!(
        "  {CACHE:<12} valkey 8.0, 1 replica, lifeboat:backup=true; served locally by redis-server over TLS with AUTH"
    );
    println!("               (200 sessions and an RQ queue of 25 jobs in db 0, a rate-limit hash in db 1)");
}

/// What the story's judges said: monitor's findings and the freshness of each database and cache against the
/// policy its alarms use, the evidence report's verdicts, and each restore test's. Counts of snapshots in a
/// finding are written `N` (retention keeps a number that depends on the calendar, not on the fleet's health).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdicts {
    /// Monitor's "needs attention" lines.
    pub findings: Vec<String>,
    /// Each age monitor reports that is past the policy (or missing), as `<subject>: <what>`.
    pub stale: Vec<String>,
    /// The evidence report: how many databases meet their policy, of how many.
    pub evidence_met: (u64, u64),
    /// The evidence report's verdict line of each database that does not meet its policy.
    pub evidence_not_met: BTreeMap<String, String>,
    /// Whether each restore test the story ran passed (databases by identifier, the cache by its).
    pub restore_tests: BTreeMap<String, bool>,
}

/// `12 unencrypted snapshot(s)` as `N unencrypted snapshot(s)`.
fn counts_as_n(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        let numeric = !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
        if numeric && words.get(i + 1) == Some(&"unencrypted") {
            out.push("N");
        } else {
            out.push(w);
        }
    }
    out.join(" ")
}

impl Verdicts {
    /// What the story means: every database and the cache fresh and restore-tested, three of four databases
    /// meeting their policy, and one finding, on purpose: [`UNENCRYPTED_ON_PURPOSE`]'s storage and snapshots.
    pub fn story() -> Self {
        let db = UNENCRYPTED_ON_PURPOSE;
        let findings = vec![
            format!("{db}: storage is not encrypted"),
            format!("{db}: N unencrypted snapshot(s)"),
        ];
        let mut restore_tests: BTreeMap<String, bool> = fleet::STANDARD
            .iter()
            .filter(|d| d.tags.contains(&("lifeboat:backup", "true")))
            .map(|d| (d.id.to_owned(), true))
            .collect();
        restore_tests.insert(CACHE.to_owned(), true);
        Self {
            evidence_not_met: BTreeMap::from([(db.to_owned(), format!("does not: {}", findings.join("; ")))]),
            findings,
            stale: vec![],
            evidence_met: (3, 4),
            restore_tests,
        }
    }

    /// Reads the verdicts from monitor's run, its evidence report and the restore tests' results.
    pub fn read(view: &Value, evidence: &Value, restore_tests: BTreeMap<String, bool>) -> Self {
        let mut stale = Vec::new();
        let past = |stale: &mut Vec<String>, who: &str, what: &str, hours: Option<f64>, max_h: f64| match hours {
            Some(h) if h <= max_h => {}
            Some(h) => stale.push(format!("{who}: {what} {h:.1} h old, past {max_h:.1} h")),
            None => stale.push(format!("{who}: no {what}")),
        };
        for d in view["databases"].as_array().into_iter().flatten() {
            let db = d["db"].as_str().unwrap_or("?");
            past(
                &mut stale,
                db,
                "snapshot",
                d["snapshot_age_hours"].as_f64(),
                DAILY_MAX_AGE_HOURS,
            );
            for (profile, max) in Story::export_max_age_hours(db) {
                let what = format!("`{profile}` export");
                past(&mut stale, db, &what, d["export_age_hours"][profile].as_f64(), max);
            }
            let test_hours = d["restore_test_age_days"].as_f64().map(|days| days * 24.0);
            past(&mut stale, db, "restore test", test_hours, DAILY_MAX_AGE_HOURS);
            if d["last_restore_test_passed"] != Value::Bool(true) {
                stale.push(format!("{db}: the last restore test did not pass"));
            }
        }
        for c in view["caches"].as_array().into_iter().flatten() {
            let cache = c["cache"].as_str().unwrap_or("?");
            past(
                &mut stale,
                cache,
                "snapshot",
                c["snapshot_age_hours"].as_f64(),
                DAILY_MAX_AGE_HOURS,
            );
            if c["last_restore_test_passed"] != Value::Bool(true) {
                stale.push(format!("{cache}: the last restore test did not pass"));
            }
        }
        let findings = view["attention"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(counts_as_n)
            .collect();
        let evidence_not_met = evidence["verdicts"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(db, line)| Some((db.clone(), line.as_str()?)))
            .filter(|(_, line)| *line != "meets its policy")
            .map(|(db, line)| (db, counts_as_n(line)))
            .collect();
        Self {
            findings,
            stale,
            evidence_met: (
                evidence["policies_met"].as_u64().unwrap_or(0),
                evidence["databases"].as_u64().unwrap_or(0),
            ),
            evidence_not_met,
            restore_tests,
        }
    }

    /// Each way these verdicts differ from `expected`, in words; empty when they are the same.
    pub fn differences(&self, expected: &Self) -> Vec<String> {
        let mut out = Vec::new();
        let mut compare = |what: &str, got: String, want: String| {
            if got != want {
                out.push(format!("{what}: got {got}, the story means {want}"));
            }
        };
        compare(
            "findings",
            format!("{:?}", self.findings),
            format!("{:?}", expected.findings),
        );
        compare(
            "past the policy",
            format!("{:?}", self.stale),
            format!("{:?}", expected.stale),
        );
        compare(
            "evidence report",
            format!("{} of {}", self.evidence_met.0, self.evidence_met.1),
            format!("{} of {}", expected.evidence_met.0, expected.evidence_met.1),
        );
        compare(
            "evidence verdicts not met",
            format!("{:?}", self.evidence_not_met),
            format!("{:?}", expected.evidence_not_met),
        );
        compare(
            "restore tests",
            format!("{:?}", self.restore_tests),
            format!("{:?}", expected.restore_tests),
        );
        out
    }

    pub fn print(&self) {
        let total = self.restore_tests.len();
        let passed = self.restore_tests.values().filter(|p| **p).count();
        println!("  restore tests passed: {passed} of {total}");
        for (who, p) in &self.restore_tests {
            println!("    {who:<12} {}", if *p { "PASSED" } else { "FAILED" });
        }
        if self.stale.is_empty() {
            println!("  every snapshot, export and restore test is within the policy");
        }
        for s in &self.stale {
            println!("  past the policy: {s}");
        }
        println!(
            "  evidence report: {} of {} databases meet their policy",
            self.evidence_met.0, self.evidence_met.1
        );
        for f in &self.findings {
            println!("  finding: {f}");
        }
    }
}

/// The rows of every user table of `db`, as one line.
fn row_counts(pg: &Postgres, db: &str) -> String {
    pg.psql(db, "select string_agg(format('%s=%s', c.relname, c.n), ', ' order by c.relname) from (select relname, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I', relname), false, true, '')))[1]::text::int as n from pg_stat_user_tables) c")
        .unwrap()
}

fn print_monitor(view: &Value) {
    let hours = |v: &Value| v.as_f64().map(|h| format!("{h:.1} h")).unwrap_or_else(|| "none".into());
    let tested = |v: &Value| match (&v["last_restore_test_passed"], v["restore_test_age_days"].as_f64()) {
        (Value::Bool(p), Some(age)) => format!("{} {:.0} d", if *p { "passed" } else { "FAILED" }, age),
        _ => "none".to_owned(),
    };
    println!(
        "  {:<12} {:>10} {:>12} {:>12} {:>13} {:>10}",
        "database", "snapshot", "export full", "export crit", "restore test", "retention"
    );
    for d in view["databases"].as_array().into_iter().flatten() {
        println!(
            "  {:<12} {:>10} {:>12} {:>12} {:>13} {:>8} d{}",
            d["db"].as_str().unwrap_or(""),
            hours(&d["snapshot_age_hours"]),
            hours(&d["export_age_hours"]["full"]),
            hours(&d["export_age_hours"]["critical"]),
            tested(d),
            d["backup_retention_days"],
            match (
                d["storage_encrypted"] == Value::Bool(false),
                d["db"] == UNENCRYPTED_ON_PURPOSE
            ) {
                (true, true) => "   storage NOT encrypted (on purpose)",
                (true, false) => "   storage NOT encrypted",
                (false, _) => "",
            }
        );
    }
    for c in view["caches"].as_array().into_iter().flatten() {
        println!(
            "  {:<12} {:>10} {:>12} {:>12} {:>13} {:>8} d   (cache; RDB copy in the export column)",
            c["cache"].as_str().unwrap_or(""),
            hours(&c["snapshot_age_hours"]),
            hours(&c["export_age_hours"]),
            "",
            tested(c),
            c["snapshot_retention_days"]
        );
    }
    println!(
        "  alarms kept: {} (one set per database and per cache, missing data breaching); deleted: {}; janitor deleted: {}",
        view["alarms_kept"],
        view["alarms_deleted"].as_array().map(Vec::len).unwrap_or(0),
        view["janitor_deleted"].as_array().map(Vec::len).unwrap_or(0)
    );
    let story = Verdicts::story();
    for note in view["attention"].as_array().into_iter().flatten() {
        let note = note.as_str().unwrap_or("");
        let on_purpose = if story.findings.contains(&counts_as_n(note)) {
            "   (on purpose: the story left it unencrypted)"
        } else {
            ""
        };
        println!("  needs attention: {note}{on_purpose}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emf_metric_names_are_read_from_the_log_and_nothing_else() {
        let log = [
            r#"{"level":"INFO","fields":{"message":"run finished","db":"app-prod"}}"#,
            r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"Lifeboat","Dimensions":[["DBIdentifier"]],"Metrics":[{"Name":"SnapshotCreated","Unit":"Count"},{"Name":"SnapshotFailed","Unit":"Count"}]}]},"DBIdentifier":"app-prod","SnapshotCreated":1,"SnapshotFailed":0}"#,
            r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"Lifeboat","Dimensions":[[]],"Metrics":[{"Name":"SnapshotCreated","Unit":"Count"}]}]},"SnapshotCreated":1}"#,
            "not json, mentioning \"_aws\" in passing",
        ]
        .join("\n");
        assert_eq!(emf_metric_names(&log), vec!["SnapshotCreated", "SnapshotFailed"]);
    }

    fn db(name: &str, full_h: f64, passed: bool) -> Value {
        json!({"db": name, "snapshot_age_hours": 0.5, "export_age_hours": {"full": full_h, "critical": 1.0},
               "restore_test_age_days": 0.0, "last_restore_test_passed": passed})
    }

    #[test]
    fn the_story_is_read_back_from_what_the_judges_said_and_anything_else_is_a_difference() {
        let tests: BTreeMap<String, bool> = ["analytics", "app-prod", "app-staging", "billing", "sessions"]
            .into_iter()
            .map(|t| (t.to_owned(), true))
            .collect();
        let cache = json!({"cache": "sessions", "snapshot_age_hours": 0.1, "last_restore_test_passed": true});
        let view = json!({
            "databases": [db("app-prod", 5.0, true), db("app-staging", 5.0, true), db("billing", 5.0, true),
                          db("analytics", 5.0, true)],
            "caches": [cache],
            "attention": ["app-staging: storage is not encrypted", "app-staging: 12 unencrypted snapshot(s)"]
        });
        let line = "does not: app-staging: storage is not encrypted; app-staging: 12 unencrypted snapshot(s)";
        let evidence = json!({"policies_met": 3, "databases": 4, "verdicts": {
            "analytics": "meets its policy", "app-prod": "meets its policy", "app-staging": line,
            "billing": "meets its policy"}});
        let healthy = Verdicts::read(&view, &evidence, tests.clone());
        assert_eq!(healthy.differences(&Verdicts::story()), Vec::<String>::new());

        // A fleet that decayed with the calendar: an export 336 hours old, a failed test, 0 of 4.
        let mut stale_view = view.clone();
        stale_view["databases"][1] = db("app-staging", 336.0, false);
        let decayed = json!({"policies_met": 0, "databases": 4, "verdicts": {"app-prod": "does not: 13 missed"}});
        let mut failed = tests;
        failed.insert("billing".to_owned(), false);
        let read = Verdicts::read(&stale_view, &decayed, failed);
        assert_eq!(
            read.stale,
            [
                "app-staging: `full` export 336.0 h old, past 26.4 h",
                "app-staging: the last restore test did not pass"
            ]
        );
        let differences = read.differences(&Verdicts::story());
        assert_eq!(differences.len(), 4, "{differences:#?}");
        assert!(
            differences
                .iter()
                .any(|d| d.starts_with("evidence report: got 0 of 4, the story means 3 of 4")),
            "{differences:?}"
        );
    }
}
