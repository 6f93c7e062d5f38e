//! The demo's world and story: a fleet in a local AWS (moto) backed by a real PostgreSQL and a real Redis, and
//! the story `make demo` tells about it (snapshots, exports, a rotation, restores, restore tests, monitoring, the
//! evidence report, a notification), driven through any [`Invoke`]: the demo binary invokes the functions'
//! binaries under the local Lambda runtime, `tests/it/demo.rs` calls their handlers in this process.
//!
//! The story is anchored to the moment it runs ([`story::Story`]): every scheduled run, export, restore test and
//! report period is derived from [`Clock::now`], never from a date in `events/` (those stay samples). The fleet
//! is healthy where the story means it healthy (encrypted storage and snapshots under a KMS key, seven days of
//! automated backups, fresh exports, every database's restore test passing; deletion protection stays off, see
//! `crate::fleet::Protection`) and broken only where the story
//! breaks it on purpose, and says so: [`UNENCRYPTED_ON_PURPOSE`]. [`Verdicts::story`] is what the story means;
//! [`run`] returns what the functions said.
//!
//! How the clock moves (a design choice): the world is a function of a [`Clock`], this machine's clock plus a
//! fixed offset. A test builds it a year ahead by giving the offset to the three things that read a clock: the
//! story (its anchor), moto (its clock runs ahead too, `crate::moto::Moto::start_ahead`, since AWS's would) and
//! the functions that judge (`snapshot::handle_at` and `monitor::run_at` take `now` as an argument; the
//! in-process invoker passes [`Clock::now`]). No function reads an override from its environment: there is no
//! clock switch a deployed function could be given by accident. What the other functions stamp with their own
//! clock (a manifest's start and end, a restore test's expiry tag, its RTO) decides no verdict.
//!
//! Never: reads `Utc::now()` for anything the story makes (only [`Clock::now`]), or hides a verdict: the demo
//! prints every one and [`Verdicts::differences`] names each that is not what the story means.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod deployed;
pub mod in_process;
pub mod plans;
pub mod story;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use tempfile::TempDir;

use crate::{fleet, moto::Moto, postgres::Postgres, redis::Redis, repo_root};
use story::Story;

pub const REGION: &str = "us-east-1";
pub const DR_REGION: &str = "us-west-2";
/// The demo's policy: small enough that two months of history show every kind of decision.
pub const RETENTION: &str = "daily=7,weekly=4,monthly=3";
pub const BUCKET: &str = "lifeboat-demo";
/// After a restore: key tables exist and hold rows, and the server answers.
const RESTORE_CHECKS: &str = r#"[{"name": "users not empty", "sql": "select count(*) > 0 from users"}, {"name": "chats not empty", "sql": "select count(*) > 0 from chats"}, {"name": "messages not empty", "sql": "select count(*) > 0 from messages"}, {"name": "sessions not empty", "sql": "select count(*) > 0 from sessions"}, {"name": "SELECT now() answers", "sql": "select now() is not null"}]"#;
/// The demo's export profiles: the full database, and the critical tables on their own.
const PROFILES: &str = r#"{"full": {}, "critical": {"include": ["users", "projects", "sessions"]}}"#;
/// The demo's cache: `sessions`, a Valkey replication group, selected by the same tag as the
/// databases. A local TLS `redis-server` with AUTH holds its data and stands in for ElastiCache's nodes (moto has
/// none), exactly as in the integration tests: its RDB file is what ElastiCache's export would write, and it answers
/// the restore test's checks as the restored group would.
pub const CACHE: &str = "sessions";
/// The restore test's named keys for the cache: an RQ queue and the session keys.
const CACHE_CHECKS: &str = r#"{"sessions": [{"name": "rq default queue", "pattern": "rq:queue:default"}, {"name": "sessions", "pattern": "session:*"}]}"#;
/// The one database the story leaves unencrypted, on purpose, to show the finding: staging, created before the
/// fleet's encryption rule. Everything else in the fleet is encrypted.
pub const UNENCRYPTED_ON_PURPOSE: &str = "app-staging";

/// This machine's clock, `ahead` by a fixed offset (zero for `make demo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub ahead: Duration,
}

impl Clock {
    /// The machine's own clock.
    pub fn real() -> Self {
        Self {
            ahead: Duration::zero(),
        }
    }

    /// The machine's clock, moved `ahead`.
    pub fn ahead(ahead: Duration) -> Self {
        Self { ahead }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.ahead
    }
}

/// Invokes one of the demo's functions (`snapshot`, `export`, `rotate`, `restore`, `restore-test`, `monitor`,
/// `notify`) with a payload; its JSON result or its error text.
pub trait Invoke {
    fn invoke(&self, function: &str, payload: &Value) -> impl Future<Output = Result<Value, String>>;
    /// The names of the metrics the functions published so far: under the Lambda runtime they are Embedded
    /// Metric Format lines in the functions' log; in-process (outside Lambda) they went to moto's CloudWatch.
    fn metric_names(&self, w: &World) -> impl Future<Output = Vec<String>>;
}

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

/// The servers and the fleet, before any function ran: moto, PostgreSQL loaded with the demo application,
/// Redis, the fleet in the emulator with a secret per database, the bucket, the age identity, the topic; and
/// the environment every function runs with.
#[derive(Debug)]
pub struct World {
    pub clock: Clock,
    pub moto: Moto,
    pub pg: Postgres,
    pub redis: Redis,
    /// The functions' environment (their configuration), as the template would set it.
    pub env: BTreeMap<String, String>,
    /// The age identity the exports are encrypted to (the runbook decrypts with it).
    pub key_file: PathBuf,
    /// Where the demo leaves what a person may want to open (the evidence page, the function logs).
    pub out_dir: PathBuf,
    pub work: TempDir,
}

impl World {
    /// Starts the servers and creates the fleet as of `clock`; `out_dir` receives the age identity, the
    /// evidence page and the function logs.
    pub async fn start(clock: Clock, out_dir: &Path) -> Self {
        let work = tempfile::tempdir().unwrap();
        heading("Starting a local AWS (moto) and PostgreSQL");
        let moto = Moto::start_ahead(clock.ahead);
        let pg = Postgres::start();
        let redis = Redis::start_tls(&[]);
        println!(
            "  moto_server on {}; PostgreSQL on 127.0.0.1:{} (scram-sha-256); redis-server on 127.0.0.1:{} (TLS, AUTH)",
            moto.endpoint, pg.port, redis.port
        );
        if !clock.ahead.is_zero() {
            println!(
                "  the world's clock (the story's, moto's and the judging functions') runs {} days ahead of this machine's",
                clock.ahead.num_days()
            );
        }
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
        create_cache(&aws_sdk_elasticache::Client::new(&config), &redis).await;
        let kms = aws_sdk_kms::Client::new(&moto.config(DR_REGION));
        let key = kms.create_key().description("lifeboat DR copies").send().await.unwrap();
        let key_arn = key.key_metadata().and_then(|k| k.arn()).unwrap().to_owned();
        println!("  DR region {DR_REGION} with KMS key {key_arn}");

        // Every database in the demo fleet is backed by the one local PostgreSQL: each gets a secret in Secrets
        // Manager (the RDS secret JSON) and the `lifeboat:secret` tag that points the export function at it.
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
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
        // app-prod's secret is a least-privilege backup user (pg_read_all_data) with a master secret beside it, so
        // the demo can rotate it with alternating users; the other databases use the admin login.
        let backup_password = crate::random_hex(16);
        pg.psql(
            "postgres",
            &format!(
                "CREATE ROLE lifeboat_backup LOGIN PASSWORD '{backup_password}'; GRANT pg_read_all_data TO lifeboat_backup"
            ),
        )
        .unwrap();
        let admin = serde_json::json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port,
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
                serde_json::json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port,
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
        let s3 = aws_sdk_s3::Client::new(&config);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        std::fs::create_dir_all(out_dir).unwrap();
        let key_file = out_dir.join("age-identity.txt");
        {
            use age::secrecy::ExposeSecret;
            std::fs::write(&key_file, format!("{}\n", identity.to_string().expose_secret())).unwrap();
            // The restore test decrypts the latest export with this identity (in production: a secret only the
            // restore function can read, or none, and that check is reported as skipped).
            secrets
                .create_secret()
                .name("lifeboat/age-identity")
                .secret_string(identity.to_string().expose_secret())
                .send()
                .await
                .unwrap();
        }
        let topic = aws_sdk_sns::Client::new(&config)
            .create_topic()
            .name("lifeboat-notifications")
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_owned();
        println!("  S3 bucket {BUCKET}; exports encrypted to age recipient {recipient}");
        println!("  SNS topic {topic} for alarms and notifications");
        println!(
            "  (the demo keeps the matching identity in {}; in production it never goes near AWS)",
            key_file.display()
        );
        let bin = crate::postgres::bin_dir();
        let ca_bundle = redis.ca_file.as_ref().unwrap().display().to_string();
        // moto's restored instances and groups have endpoints nothing listens on: the local servers answer for them.
        let resolve = format!(
            ".rds.amazonaws.com=127.0.0.1:{},.cache.amazonaws.com=127.0.0.1:{}",
            pg.port, redis.port
        );
        let env: BTreeMap<String, String> = [
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
            ("LIFEBOAT_RETENTION", RETENTION.to_owned()),
            ("LIFEBOAT_DR_REGION", DR_REGION.to_owned()),
            ("LIFEBOAT_DR_KMS_KEY_ID", key_arn),
            ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
            // The stack the template would name: monitor's alarms are lifeboat/lifeboat/<subject>/<check>.
            ("LIFEBOAT_STACK_NAME", "lifeboat".to_owned()),
            ("LIFEBOAT_AGE_RECIPIENTS", recipient),
            // The fleet's secrets point at the local PostgreSQL, not at the endpoints moto makes up.
            ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned()),
            ("LIFEBOAT_DB_SSLMODE", "disable".to_owned()),
            ("LIFEBOAT_PG_DUMP", bin.join("pg_dump").display().to_string()),
            ("LIFEBOAT_PG_RESTORE", bin.join("pg_restore").display().to_string()),
            ("LIFEBOAT_EXPORT_PROFILES", PROFILES.to_owned()),
            ("LIFEBOAT_AGE_IDENTITY_SECRET", "lifeboat/age-identity".to_owned()),
            ("LIFEBOAT_RESTORE_CHECKS", RESTORE_CHECKS.to_owned()),
            ("LIFEBOAT_ALARM_TOPIC_ARN", topic.clone()),
            ("LIFEBOAT_NOTIFY_TOPIC_ARN", topic),
            ("LIFEBOAT_EXPORT_MAX_AGE_HOURS", "full=26,critical=7".to_owned()),
            ("LIFEBOAT_CACHE_CA_BUNDLE", ca_bundle),
            ("LIFEBOAT_RESTORE_RESOLVE", resolve),
            ("LIFEBOAT_CACHE_RESTORE_CHECKS", CACHE_CHECKS.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            clock,
            moto,
            pg,
            redis,
            env,
            key_file,
            out_dir: out_dir.to_owned(),
            work,
        }
    }

    pub fn config(&self, region: &str) -> aws_config::SdkConfig {
        self.moto.config(region)
    }

    /// The policy monitor's alarms and the evidence report judge by, read from the functions' environment.
    pub fn policy(&self) -> lifeboat::monitoring::monitor::Policy {
        let env = self.env.clone();
        monitor::settings::MonitorSettings::from_env(&move |n: &str| env.get(n).cloned())
            .unwrap()
            .policy
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
    println!("  retention decisions for {db} (policy {RETENTION}; newest first):");
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

/// Prints a restore-test report's Markdown from the bucket and returns whether the test passed, by monitor's rule
/// on the report's JSON beside it (`lifeboat::monitoring::monitor::restore_test_passed`).
async fn print_report(s3: &aws_sdk_s3::Client, md_key: &str) -> bool {
    let report = s3.get_object().bucket(BUCKET).key(md_key).send().await.unwrap();
    let report = String::from_utf8(report.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    println!("  report s3://{BUCKET}/{md_key}:");
    for line in report.lines() {
        println!("    {line}");
    }
    let json_key = md_key.replace(".md", ".json");
    let json = lifeboat::bucket::layout::get_json::<Value>(s3, BUCKET, &json_key)
        .await
        .ok();
    lifeboat::monitoring::monitor::restore_test_passed(json.as_ref())
}

/// The emulator's clients the cache story reads and writes through.
#[derive(Debug)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub sm: aws_sdk_secretsmanager::Client,
    pub ec: aws_sdk_elasticache::Client,
}

/// Writes the record copy-caches writes before it asks ElastiCache to export `snapshot` (moto cannot export to
/// S3, so the demo plays ElastiCache's part, and Lifeboat's request before it): staged files are verified only
/// when such a record matches the snapshot.
async fn request_recorded(clients: &Clients, snapshot: &str, at: DateTime<Utc>) {
    let all = lifeboat::caches::elasticache::discover_all(&clients.ec, false)
        .await
        .unwrap();
    let snaps = lifeboat::caches::elasticache::list_all_snapshots(&clients.ec, false)
        .await
        .unwrap();
    let chosen = snaps.iter().find(|s| s.name == snapshot).unwrap();
    let cache = all.iter().find(|c| c.id == CACHE).unwrap();
    let snap = lifeboat::caches::rdb_copy::describe(&clients.ec, chosen, cache)
        .await
        .unwrap();
    let staging = lifeboat::bucket::layout::rdb_staging_name(snapshot);
    let record = lifeboat::caches::rdb_copy::request_record(&snap, &staging, at);
    clients
        .s3
        .put_object()
        .bucket(BUCKET)
        .key(lifeboat::bucket::layout::rdb_staging_request_key(&staging))
        .body(serde_json::to_vec(&record).unwrap().into())
        .send()
        .await
        .unwrap();
}

/// Creates the cache in the emulator and fills the local server with what a session store and an RQ queue hold.
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

/// The cache's RDB copy in S3 (verified, with its manifest) and its restore test, through the functions; whether
/// the restore test passed.
async fn cache_story(inv: &impl Invoke, clock: Clock, redis: &Redis, clients: &Clients, snapshot: &str) -> bool {
    let s3 = &clients.s3;
    heading("The cache's snapshot as RDB files in S3, verified: events/export/copy-caches.json");
    // What ElastiCache's export (CopySnapshot to the bucket) writes, which moto cannot: the server's own RDB file,
    // after Lifeboat's record of the request.
    request_recorded(clients, snapshot, clock.now()).await;
    let rdb = std::fs::read(redis.save()).unwrap();
    let staged = format!("{}-0001.rdb", lifeboat::bucket::layout::rdb_staging_name(snapshot));
    s3.put_object()
        .bucket(BUCKET)
        .key(&staged)
        .body(rdb.into())
        .send()
        .await
        .unwrap();
    println!("  staged s3://{BUCKET}/{staged} (as ElastiCache's export of {snapshot} would)");
    let copied = inv
        .invoke("export", &sample("events/export/copy-caches.json"))
        .await
        .unwrap_or_else(|e| panic!("copy-caches failed: {e}"));
    for c in copied["caches"].as_array().into_iter().flatten() {
        println!(
            "  {:<12} {:<10} keys per database {}",
            c["cache"].as_str().unwrap_or(""),
            c["outcome"].as_str().unwrap_or(""),
            c["keys_per_db"]
        );
        if let Some(key) = c["manifest_key"].as_str() {
            let body = s3.get_object().bucket(BUCKET).key(key).send().await.unwrap();
            let body = body.body.collect().await.unwrap().into_bytes();
            let manifest: lifeboat::caches::records::RdbManifest = serde_json::from_slice(&body).unwrap();
            println!("  manifest s3://{BUCKET}/{key}:");
            for shard in &manifest.shards {
                println!(
                    "    shard {} {} {} bytes sha256 {} RDB v{} keys {:?}",
                    shard.shard,
                    shard.key,
                    shard.size,
                    &shard.sha256[..16],
                    shard.rdb_version,
                    shard.keys_per_db
                );
            }
        }
    }
    let again = inv
        .invoke("export", &sample("events/export/copy-caches.json"))
        .await
        .unwrap();
    let outcomes: Vec<&str> = again["caches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["outcome"].as_str())
        .collect();
    println!("  the next hourly run: {} (nothing new)", outcomes.join(", "));

    heading("Restore test of the cache (the state machine's cache branch): events/restore/cache-*.json");
    let requested = clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let start = serde_json::json!({"action": "cache_start", "cache": CACHE, "requested_at": requested});
    let mut test = inv
        .invoke("restore-test", &start)
        .await
        .unwrap_or_else(|e| panic!("cache_start: {e}"));
    println!(
        "  start    snapshot {} -> isolated group {}",
        test["snapshot"].as_str().unwrap_or(""),
        test["restored_id"].as_str().unwrap_or("")
    );
    for action in ["cache_poll", "cache_verify", "cache_report", "cache_cleanup"] {
        if action == "cache_verify" {
            // The emulator's restored group has no server behind it: the local server, which holds the
            // snapshot's data, answers for its described endpoint (LIFEBOAT_RESTORE_RESOLVE), with the password
            // the test's own secret holds.
            let creds = serde_json::json!({"username": "default", "password": redis.password});
            let id = test["restored_id"].as_str().unwrap();
            clients
                .sm
                .put_secret_value()
                .secret_id(lifeboat::caches::restore::test_secret_name(id))
                .secret_string(creds.to_string())
                .send()
                .await
                .unwrap();
        }
        test = inv
            .invoke("restore-test", &serde_json::json!({"action": action, "test": test}))
            .await
            .unwrap_or_else(|e| panic!("{action} failed: {e}"));
        println!(
            "  {:<13} status {}",
            action.trim_start_matches("cache_"),
            test["status"].as_str().unwrap_or("")
        );
    }
    let report_key = format!(
        "{}.md",
        lifeboat::bucket::layout::cache_restore_report_base(CACHE, requested.parse().unwrap())
    );
    print_report(s3, &report_key).await
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
    pub fn read(
        view: &Value,
        evidence: &Value,
        restore_tests: BTreeMap<String, bool>,
        policy: &lifeboat::monitoring::monitor::Policy,
    ) -> Self {
        let mut stale = Vec::new();
        let past = |stale: &mut Vec<String>, who: &str, what: &str, hours: Option<f64>, max_s: f64| match hours {
            Some(h) if h * 3600.0 <= max_s => {}
            Some(h) => stale.push(format!("{who}: {what} {h:.1} h old, past {:.0} h", max_s / 3600.0)),
            None => stale.push(format!("{who}: no {what}")),
        };
        for d in view["databases"].as_array().into_iter().flatten() {
            let db = d["db"].as_str().unwrap_or("?");
            past(
                &mut stale,
                db,
                "snapshot",
                d["snapshot_age_hours"].as_f64(),
                policy.snapshot_max_age_s,
            );
            for (profile, max) in &policy.export_max_age_s {
                let what = format!("`{profile}` export");
                past(&mut stale, db, &what, d["export_age_hours"][profile].as_f64(), *max);
            }
            let test_hours = d["restore_test_age_days"].as_f64().map(|days| days * 24.0);
            past(
                &mut stale,
                db,
                "restore test",
                test_hours,
                policy.restore_test_max_age_s,
            );
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
                policy.snapshot_max_age_s,
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

fn print_exports(summary: &Value) {
    for e in summary["exports"].as_array().into_iter().flatten() {
        println!(
            "  {:<12} {:<16} {} tables  {}",
            e["db"].as_str().unwrap_or(""),
            e["outcome"].as_str().unwrap_or(""),
            e["tables"],
            e["key"].as_str().unwrap_or("")
        );
    }
}

/// The story's snapshots: the backfill, today's run with its retention decisions, RDS's completion event, a
/// redelivery and a manual snapshot. Returns the identifier of today's snapshot of the cache.
async fn snapshots(inv: &impl Invoke, story: &Story) -> String {
    let template = sample("events/snapshot/scheduled.json");
    heading(&format!(
        "{} days of scheduled snapshots before today ({}), at today's time of day",
        story::BACKFILL_DAYS,
        story.today.format("%Y-%m-%d %H:%M UTC")
    ));
    let started = Instant::now();
    let mut deleted = 0;
    for t in story.backfill() {
        let summary = inv
            .invoke("snapshot", &story.scheduled(&template, t))
            .await
            .unwrap_or_else(|e| panic!("scheduled run failed: {e}"));
        deleted += summary["deleted"].as_u64().unwrap_or(0);
        print!(".");
        std::io::stdout().flush().ok();
    }
    println!(
        "\n  {} runs in {:.1} s; retention deleted {deleted} snapshots along the way",
        story::BACKFILL_DAYS,
        started.elapsed().as_secs_f64()
    );

    heading("Today's scheduled run: events/snapshot/scheduled.json, dated now");
    let today = story.scheduled(&template, story.today);
    let summary = inv.invoke("snapshot", &today).await.unwrap();
    print_run(&summary);
    let cache_snapshot = summary["caches"][0]["snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("today's run took no snapshot of the cache: {summary}"))
        .to_owned();
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
        .unwrap_or("")
        .to_owned();

    heading("RDS says today's app-prod snapshot finished: events/snapshot/rds-snapshot-finished.json, dated now");
    let finished = story.snapshot_finished(&sample("events/snapshot/rds-snapshot-finished.json"), &app_snapshot);
    match inv.invoke("snapshot", &finished).await {
        Ok(s) => {
            let r = &s["databases"][0];
            println!(
                "  {} -> {} {}",
                r["snapshot_id"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or(""),
                r["detail"].as_str().unwrap_or("")
            );
        }
        Err(e) => println!("  failed: {e}"),
    }

    heading("The same event delivered again (EventBridge retries): nothing new is made");
    let again = inv.invoke("snapshot", &today).await.unwrap();
    print_run(&again);

    heading("A manual snapshot before a migration: events/snapshot/manual.json");
    match inv.invoke("snapshot", &sample("events/snapshot/manual.json")).await {
        Ok(s) => print_run(&s),
        Err(e) => println!("  failed: {e}"),
    }
    cache_snapshot
}

/// Today's exports (full and critical), app-prod's restored with the standard tools and in one step.
async fn exports(w: &World, inv: &impl Invoke, story: &Story) {
    let s3 = aws_sdk_s3::Client::new(&w.config(REGION));
    heading("Daily full exports at 02:00, yesterday's and today's: events/export/scheduled-full.json, dated from now");
    let mut summary = Value::Null;
    for t in story.full_exports() {
        summary = inv
            .invoke("export", &story.export("full", t))
            .await
            .unwrap_or_else(|e| panic!("export failed: {e}"));
        println!("  the run for {}:", t.format("%Y-%m-%d %H:%M UTC"));
        for e in summary["exports"].as_array().into_iter().flatten() {
            println!(
                "  {:<12} {:<16} {:>9} -> {:>8} bytes in {:.1} s  {}",
                e["db"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or(""),
                e["plaintext_bytes"],
                e["stored_bytes"],
                e["seconds"].as_f64().unwrap_or(0.0),
                e["key"].as_str().unwrap_or("")
            );
        }
    }
    let app = summary["exports"]
        .as_array()
        .and_then(|v| v.iter().find(|e| e["db"] == "app-prod"))
        .unwrap();
    let manifest_key = app["manifest_key"].as_str().unwrap();
    let manifest: Value = lifeboat::bucket::layout::get_json(&s3, BUCKET, manifest_key)
        .await
        .unwrap();
    println!("  manifest s3://{BUCKET}/{manifest_key} (written last; its presence means the export is complete):");
    for line in serde_json::to_string_pretty(&manifest).unwrap().lines().take(60) {
        println!("    {line}");
    }

    heading("Critical tables every 6 hours since yesterday: events/export/scheduled-critical.json, dated from now");
    for t in story.critical_exports() {
        let critical = inv
            .invoke("export", &story.export("critical", t))
            .await
            .unwrap_or_else(|e| panic!("export failed: {e}"));
        println!("  the run for {}:", t.format("%Y-%m-%d %H:%M UTC"));
        print_exports(&critical);
    }

    heading("Restoring app-prod's export with standard tools (the runbook)");
    let object = s3
        .get_object()
        .bucket(BUCKET)
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

    heading("In one step: billing's users and sessions restored from its export (events/restore/console-restore-export.json)");
    let mut one_step = sample("events/restore/console-restore-export.json");
    // billing's secret is the admin login: restoring into a new database needs a user that may create one (app-prod's
    // is the read-only backup user).
    one_step["database"] = serde_json::json!("billing");
    one_step["tables"] = serde_json::json!(["users", "sessions"]);
    one_step["into"] = serde_json::json!({"database": "app_users_restored"});
    match inv.invoke("restore", &one_step).await {
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

/// app-prod's credentials rotated with alternating users, then an export with nothing redeployed.
async fn rotation(w: &World, inv: &impl Invoke) {
    let secrets = aws_sdk_secretsmanager::Client::new(&w.config(REGION));
    heading("Rotating app-prod's credentials (Secrets Manager rotation, alternating users): events/rotate/");
    let secret_id = "lifeboat/app-prod";
    let before = current_user_of(&secrets, secret_id).await;
    let token = crate::stage_rotation(&secrets, secret_id).await;
    let started = Instant::now();
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let mut event = sample(&format!("events/rotate/{step}.json"));
        event["SecretId"] = Value::from(secret_id);
        event["ClientRequestToken"] = Value::from(token.as_str());
        let out = inv
            .invoke("rotate", &event)
            .await
            .unwrap_or_else(|e| panic!("{step} failed: {e}"));
        println!(
            "  {step:<13} {:<22} user {}",
            out["result"].as_str().unwrap_or(""),
            out["user"].as_str().unwrap_or("-")
        );
    }
    // Secrets Manager takes AWSPENDING off the new version once finishSecret succeeds.
    secrets
        .update_secret_version_stage()
        .secret_id(secret_id)
        .version_stage("AWSPENDING")
        .remove_from_version_id(&token)
        .send()
        .await
        .unwrap();
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

    heading("An export after the rotation, with nothing redeployed: events/export/manual.json");
    let manual = inv
        .invoke("export", &sample("events/export/manual.json"))
        .await
        .unwrap_or_else(|e| panic!("export failed: {e}"));
    print_exports(&manual);
}

/// The restore test of every database the plan names, each through the state machine's steps; whether each
/// passed.
async fn restore_tests(w: &World, inv: &impl Invoke) -> BTreeMap<String, bool> {
    let config = w.config(REGION);
    let (s3, secrets) = (
        aws_sdk_s3::Client::new(&config),
        aws_sdk_secretsmanager::Client::new(&config),
    );
    let requested = w.clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    heading("Restore tests of every database (the state machine's steps): events/restore/");
    let plan = inv
        .invoke(
            "restore-test",
            &serde_json::json!({"action": "plan", "time": requested}),
        )
        .await
        .unwrap_or_else(|e| panic!("plan failed: {e}"));
    let planned: Vec<String> = plan["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["database"].as_str().map(str::to_owned))
        .collect();
    println!("  plan: {}", planned.join(", "));
    let mut out = BTreeMap::new();
    for db in &planned {
        heading(&format!("Restore test of {db}"));
        // Each test's own request time: the restored copy's name and its scratch database derive from it.
        let requested = w.clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let start = serde_json::json!({"action": "start", "database": db, "requested_at": requested});
        let mut test = inv
            .invoke("restore-test", &start)
            .await
            .unwrap_or_else(|e| panic!("start of {db} failed: {e}"));
        println!(
            "  start    snapshot {} -> isolated copy {}",
            test["snapshot_id"].as_str().unwrap_or(""),
            test["restored_id"].as_str().unwrap_or("")
        );
        for action in ["poll", "prepare", "verify", "report", "cleanup"] {
            if action == "verify" {
                // The emulator's restored copy has no server behind it: the local PostgreSQL, which holds the
                // databases' data, answers for its described endpoint (LIFEBOAT_RESTORE_RESOLVE), with its login in
                // the test's own password secret (where prepare put the restored copy's new master password),
                // exactly as the integration tests do.
                let local = serde_json::json!({"username": crate::postgres::SUPERUSER, "password": w.pg.password});
                let id = test["restored_id"].as_str().unwrap();
                secrets
                    .put_secret_value()
                    .secret_id(lifeboat::rds::restore::test_secret_name(id))
                    .secret_string(local.to_string())
                    .send()
                    .await
                    .unwrap();
            }
            test = inv
                .invoke("restore-test", &serde_json::json!({"action": action, "test": test}))
                .await
                .unwrap_or_else(|e| panic!("{action} of {db} failed: {e}"));
            println!("  {action:<8} status {}", test["status"].as_str().unwrap_or(""));
        }
        let report_key = test["report_key"].as_str().unwrap().replace(".json", ".md");
        out.insert(db.clone(), print_report(&s3, &report_key).await);
    }
    out
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

/// The notification on-call receives, and the one when it clears: the sample alarm, re-dated.
async fn notification(inv: &impl Invoke, story: &Story) {
    heading("A notification as on-call receives it: events/notify/alarm.json, dated two hours ago");
    let (alarm, recovery) = story.alarm_and_recovery(
        &sample("events/notify/alarm.json"),
        &sample("events/notify/recovery.json"),
    );
    let sent = inv
        .invoke("notify", &alarm)
        .await
        .unwrap_or_else(|e| panic!("notify failed: {e}"));
    println!("  delivered to: {}", sent["channels"]);
    for line in sent["text"].as_str().unwrap_or("").lines() {
        println!("    {line}");
    }
    let recovered = inv
        .invoke("notify", &recovery)
        .await
        .unwrap_or_else(|e| panic!("notify failed: {e}"));
    println!("  and when it clears:");
    for line in recovered["text"].as_str().unwrap_or("").lines() {
        println!("    {line}");
    }
}

/// What the fleet holds at the end: snapshots per region, the metrics published.
async fn holdings(w: &World, inv: &impl Invoke) {
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
            .unwrap_or("(none: not selected)");
        println!("  {:<12} {:>10} {:>10}  {newest}", db.id, mine.len(), copies);
    }
    let names = inv.metric_names(w).await;
    println!("  metrics published in namespace Lifeboat: {}", names.join(", "));
}

/// Tells the whole story through `inv`, anchored at the world's [`Clock::now`] when it starts; returns what the
/// judges said.
pub async fn run(w: &World, inv: &impl Invoke) -> Verdicts {
    let story = Story::at(w.clock.now());
    let cache_snapshot = snapshots(inv, &story).await;
    exports(w, inv, &story).await;
    rotation(w, inv).await;
    let mut tests = restore_tests(w, inv).await;
    let config = w.config(REGION);
    let clients = Clients {
        s3: aws_sdk_s3::Client::new(&config),
        sm: aws_sdk_secretsmanager::Client::new(&config),
        ec: aws_sdk_elasticache::Client::new(&config),
    };
    let cache_passed = cache_story(inv, w.clock, &w.redis, &clients, &cache_snapshot).await;
    tests.insert(CACHE.to_owned(), cache_passed);

    heading("Monitor's view of the fleet: events/monitor/scheduled.json, dated now");
    let scheduled = story.scheduled(&sample("events/monitor/scheduled.json"), w.clock.now());
    let view = inv
        .invoke("monitor", &scheduled)
        .await
        .unwrap_or_else(|e| panic!("monitor failed: {e}"));
    print_monitor(&view);

    let period = story.evidence_period();
    heading(&format!(
        "The fleet's evidence report for this month so far ({period}): events/monitor/evidence-report.json's shape"
    ));
    let evidence = inv
        .invoke(
            "monitor",
            &serde_json::json!({"action": "evidence-report", "period": period}),
        )
        .await
        .unwrap_or_else(|e| panic!("evidence report failed: {e}"));
    print_evidence(&evidence);
    let html_key = evidence["html_key"].as_str().unwrap();
    let page = clients
        .s3
        .get_object()
        .bucket(BUCKET)
        .key(html_key)
        .send()
        .await
        .unwrap();
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
    notification(inv, &story).await;
    holdings(w, inv).await;
    plans::chapter(w, w.clock.now()).await;
    Verdicts::read(&view, &evidence, tests, &w.policy())
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

    fn policy() -> lifeboat::monitoring::monitor::Policy {
        lifeboat::monitoring::monitor::Policy {
            snapshot_max_age_s: 26.0 * 3600.0,
            export_max_age_s: [
                ("full".to_owned(), 26.0 * 3600.0),
                ("critical".to_owned(), 7.0 * 3600.0),
            ]
            .into_iter()
            .collect(),
            restore_test_max_age_s: 100.0 * 86400.0,
            pitr_lag_max_s: 900.0,
            min_retention_days: 7.0,
        }
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
        let healthy = Verdicts::read(&view, &evidence, tests.clone(), &policy());
        assert_eq!(healthy.differences(&Verdicts::story()), Vec::<String>::new());

        // A fleet that decayed with the calendar: an export 336 hours old, a failed test, 0 of 4.
        let mut stale_view = view.clone();
        stale_view["databases"][1] = db("app-staging", 336.0, false);
        let decayed = json!({"policies_met": 0, "databases": 4, "verdicts": {"app-prod": "does not: 13 missed"}});
        let mut failed = tests;
        failed.insert("billing".to_owned(), false);
        let read = Verdicts::read(&stale_view, &decayed, failed, &policy());
        assert_eq!(
            read.stale,
            [
                "app-staging: `full` export 336.0 h old, past 26 h",
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
