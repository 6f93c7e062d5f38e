//! `make demo`: Lifeboat end to end on this machine, with no AWS account.
//!
//! Starts moto's server and a real PostgreSQL loaded with the demo application, creates a fleet in the
//! emulator, runs the functions' binaries under the real Lambda runtime (the runtime APIs of
//! `cargo lambda watch --only-lambda-apis`, invoked with `cargo lambda invoke` and the files in `events/`), and prints what happened in words an operator reads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_tests::{fleet, moto::Moto, postgres::Postgres, redis::Redis, repo_root};
use serde_json::Value;

const REGION: &str = "us-east-1";
const DR_REGION: &str = "us-west-2";
/// The demo's policy: small enough that two months of history show every kind of decision.
const RETENTION: &str = "daily=7,weekly=4,monthly=3";
const BACKFILL_DAYS: i64 = 45;
const BUCKET: &str = "lifeboat-demo";
/// The demo's export profiles: the full database, and the critical tables on their own.
/// After a restore: key tables exist and hold rows, and the server answers.
const RESTORE_CHECKS: &str = r#"[{"name": "users not empty", "sql": "select count(*) > 0 from users"}, {"name": "chats not empty", "sql": "select count(*) > 0 from chats"}, {"name": "messages not empty", "sql": "select count(*) > 0 from messages"}, {"name": "sessions not empty", "sql": "select count(*) > 0 from sessions"}, {"name": "SELECT now() answers", "sql": "select now() is not null"}]"#;
const PROFILES: &str = r#"{"full": {}, "critical": {"include": ["users", "projects", "sessions"]}}"#;

/// The functions, each a binary of its own crate; `restore` runs twice, as the template deploys it: the console's
/// function (`restore`) and the restore-test steps' (`restore-test`), each refusing the other's actions.
const FUNCTIONS: [&str; 7] = [
    "snapshot",
    "export",
    "rotate",
    "restore",
    "restore-test",
    "monitor",
    "notify",
];

/// The binary a function runs, and the entry it serves (`LIFEBOAT_RESTORE_ENTRY`) when it is the restore binary.
fn binary_of(function: &str) -> (&str, Option<&str>) {
    match function {
        "restore" => ("restore", Some("console")),
        "restore-test" => ("restore-test", Some("steps")),
        other => (other, None),
    }
}

/// The local Lambda runtime APIs (`cargo lambda watch --only-lambda-apis`) and one process per function, started
/// from the binaries `make demo` built beside this one: built once, with the same features as `make test`'s, so
/// the demo compiles nothing again (cargo-lambda's own build selects one package at a time, and each package's
/// feature set rebuilds the AWS SDK).
struct Watch {
    child: Child,
    functions: Vec<Child>,
    port: u16,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for f in &mut self.functions {
            let _ = f.kill();
            let _ = f.wait();
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn heading(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

fn path_with_venv() -> String {
    let venv = repo_root().join(".venv/bin");
    format!("{}:{}", venv.display(), std::env::var("PATH").unwrap_or_default())
}

/// The cargo-lambda executable from the project's virtualenv (PyPI package `cargo-lambda`).
fn cargo_lambda() -> PathBuf {
    let exe = repo_root().join(".venv/bin/cargo-lambda");
    assert!(
        exe.exists(),
        "{} is missing: run `make demo`, which installs cargo-lambda into .venv",
        exe.display()
    );
    exe
}

fn start_watch(env: &BTreeMap<&str, &str>, log: &Path) -> Watch {
    let port = lifeboat_tests::free_port();
    let log_file = std::fs::File::create(log).unwrap();
    let child = Command::new(cargo_lambda())
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--ignore-changes",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
        ])
        .current_dir(repo_root())
        .env("PATH", path_with_venv())
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting `cargo lambda watch`: {e}; run `make demo`, which installs cargo-lambda into .venv")
        });
    let mut watch = Watch {
        child,
        functions: Vec::new(),
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = watch.child.try_wait() {
            panic!(
                "cargo lambda watch exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen within 60 s; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let bin_dir = std::env::current_exe().unwrap().parent().unwrap().to_owned();
    for name in FUNCTIONS {
        let (binary, entry) = binary_of(name);
        let exe = bin_dir.join(binary);
        assert!(
            exe.exists(),
            "{} is missing: run `make demo`, which builds the functions first",
            exe.display()
        );
        let function = Command::new(&exe)
            .envs(env.iter())
            .envs(entry.map(|e| ("LIFEBOAT_RESTORE_ENTRY", e)))
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt/{name}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file.try_clone().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        watch.functions.push(function);
    }
    watch
}

/// Invokes a function through the local Lambda runtime; returns its JSON result or its error text.
fn invoke(watch: &Watch, function: &str, data_file: &Path) -> Result<Value, String> {
    let out = Command::new(cargo_lambda())
        .args([
            "lambda",
            "invoke",
            function,
            "-A",
            "127.0.0.1",
            "-P",
            &watch.port.to_string(),
            "-o",
            "json",
        ])
        .arg("--data-file")
        .arg(data_file)
        .current_dir(repo_root())
        .env("PATH", path_with_venv())
        .stdin(Stdio::null())
        .output()
        .expect("running cargo lambda invoke");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        serde_json::from_str(stdout.trim()).map_err(|e| format!("unreadable result ({e}): {stdout}"))
    } else {
        Err(format!(
            "{}{}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
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
        Command::new(lifeboat_tests::postgres::bin_dir().join("pg_restore"))
            .args([
                "--no-owner",
                "--exit-on-error",
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
            ])
            .args(["-U", lifeboat_tests::postgres::SUPERUSER, "-d", into])
            .arg(&dump)
            .env("PGPASSWORD", &pg.password),
    );
    format!(
        "{} bytes decrypted and decompressed to {} bytes, restored",
        std::fs::metadata(encrypted).map(|m| m.len()).unwrap_or(0),
        std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0)
    )
}

fn scheduled_event_at(template: &Value, time: DateTime<Utc>, dir: &Path) -> PathBuf {
    let mut event = template.clone();
    event["time"] = Value::String(time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let path = dir.join(format!("scheduled-{}.json", time.format("%Y%m%d")));
    std::fs::write(&path, serde_json::to_vec_pretty(&event).unwrap()).unwrap();
    path
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
    for (db, verdict) in summary["verdicts"].as_object().into_iter().flatten() {
        println!("  {db:<12} {}", verdict.as_str().unwrap_or(""));
    }
}

/// The demo's cache: `sessions`, a Valkey replication group, selected by the same tag as the
/// databases. A local TLS `redis-server` with AUTH holds its data and stands in for ElastiCache's nodes (moto has
/// none), exactly as in the integration tests: its RDB file is what ElastiCache's export would write, and it answers
/// the restore test's checks as the restored group would.
const CACHE: &str = "sessions";
/// The restore test's named keys for the cache: an RQ queue and the session keys.
const CACHE_CHECKS: &str = r#"{"sessions": [{"name": "rq default queue", "pattern": "rq:queue:default"}, {"name": "sessions", "pattern": "session:*"}]}"#;

/// Prints a restore-test report's Markdown from the bucket; the demo stops if the test did not pass.
async fn print_passed_report(s3: &aws_sdk_s3::Client, key: &str, what: &str) {
    let report = s3.get_object().bucket(BUCKET).key(key).send().await.unwrap();
    let report = String::from_utf8(report.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    println!("  report s3://{BUCKET}/{key}:");
    for line in report.lines() {
        println!("    {line}");
    }
    assert!(
        report.contains(": PASSED"),
        "the demo's restore test of {what} failed: see its report above"
    );
}

/// The emulator's clients the cache story reads and writes through.
struct Clients {
    s3: aws_sdk_s3::Client,
    sm: aws_sdk_secretsmanager::Client,
    ec: aws_sdk_elasticache::Client,
}

/// Writes the record copy-caches writes before it asks ElastiCache to export `snapshot` (moto cannot export to
/// S3, so the demo plays ElastiCache's part, and Lifeboat's request before it): staged files are verified only
/// when such a record matches the snapshot.
async fn request_recorded(clients: &Clients, snapshot: &str) {
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
    let record = lifeboat::caches::rdb_copy::request_record(&snap, &staging, Utc::now());
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

/// The cache's RDB copy in S3 (verified, with its manifest) and its restore test, through the functions.
async fn cache_story(watch: &Watch, work: &Path, redis: &Redis, clients: &Clients, snapshot: &str) {
    let s3 = &clients.s3;
    heading("The cache's snapshot as RDB files in S3, verified: events/export/copy-caches.json");
    // What ElastiCache's export (CopySnapshot to the bucket) writes, which moto cannot: the server's own RDB file,
    // after Lifeboat's record of the request.
    request_recorded(clients, snapshot).await;
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
    let copied = invoke(watch, "export", &repo_root().join("events/export/copy-caches.json"))
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
    let again = invoke(watch, "export", &repo_root().join("events/export/copy-caches.json")).unwrap();
    let outcomes: Vec<&str> = again["caches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["outcome"].as_str())
        .collect();
    println!("  the next hourly run: {} (nothing new)", outcomes.join(", "));

    heading("Restore test of the cache (the state machine's cache branch): events/restore/cache-*.json");
    let step_file = |name: &str, body: &Value| {
        let file = work.join(format!("cache-{name}.json"));
        std::fs::write(&file, body.to_string()).unwrap();
        file
    };
    let requested = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let start = serde_json::json!({"action": "cache_start", "cache": CACHE, "requested_at": requested});
    let mut test =
        invoke(watch, "restore-test", &step_file("start", &start)).unwrap_or_else(|e| panic!("cache_start: {e}"));
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
        test = invoke(
            watch,
            "restore-test",
            &step_file(action, &serde_json::json!({"action": action, "test": test})),
        )
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
    print_passed_report(s3, &report_key, "the cache").await;
}

#[tokio::main]
async fn main() {
    let work = tempfile::tempdir().unwrap();

    heading("Starting a local AWS (moto) and PostgreSQL");
    let moto = Moto::start();
    let pg = Postgres::start();
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
    let rds = aws_sdk_rds::Client::new(&moto.config(REGION));
    fleet::create(&rds, fleet::STANDARD).await;
    for db in fleet::STANDARD {
        let tags: Vec<String> = db.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "  {:<12} {:<9} {}",
            db.id,
            if db.cluster { "aurora" } else { "instance" },
            tags.join(" ")
        );
    }
    create_cache(&aws_sdk_elasticache::Client::new(&moto.config(REGION)), &redis).await;
    let kms = aws_sdk_kms::Client::new(&moto.config(DR_REGION));
    let key = kms.create_key().description("lifeboat DR copies").send().await.unwrap();
    let key_arn = key.key_metadata().and_then(|k| k.arn()).unwrap().to_owned();
    println!("  DR region {DR_REGION} with KMS key {key_arn}");

    // Every database in the demo fleet is backed by the one local PostgreSQL: each gets a secret in Secrets
    // Manager (the RDS secret JSON) and the `lifeboat:secret` tag that points the export function at it.
    let config = moto.config(REGION);
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
    let backup_password = lifeboat_tests::random_hex(16);
    pg.psql(
        "postgres",
        &format!(
            "CREATE ROLE lifeboat_backup LOGIN PASSWORD '{backup_password}'; GRANT pg_read_all_data TO lifeboat_backup"
        ),
    )
    .unwrap();
    let admin = serde_json::json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port,
        "username": lifeboat_tests::postgres::SUPERUSER, "password": pg.password, "dbname": "app"});
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
    let key_file = repo_root().join(".demo/age-identity.txt");
    std::fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&key_file, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    }
    {
        // The restore test decrypts the latest export with this identity (in production: a secret only the
        // restore function can read, or none, and that check is reported as skipped).
        use age::secrecy::ExposeSecret;
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
    let bin = lifeboat_tests::postgres::bin_dir();
    let pg_dump = bin.join("pg_dump").display().to_string();
    let pg_restore = bin.join("pg_restore").display().to_string();

    let ca_bundle = redis.ca_file.as_ref().unwrap().display().to_string();
    // moto's restored instances and groups have endpoints nothing listens on: the local servers answer for them.
    let resolve = format!(
        ".rds.amazonaws.com=127.0.0.1:{},.cache.amazonaws.com=127.0.0.1:{}",
        pg.port, redis.port
    );
    let env: BTreeMap<&str, &str> = BTreeMap::from([
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("LIFEBOAT_RETENTION", RETENTION),
        ("LIFEBOAT_DR_REGION", DR_REGION),
        ("LIFEBOAT_DR_KMS_KEY_ID", key_arn.as_str()),
        ("LIFEBOAT_BUCKET", BUCKET),
        ("LIFEBOAT_AGE_RECIPIENTS", recipient.as_str()),
        // The fleet's secrets point at the local PostgreSQL, not at the endpoints moto makes up.
        ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true"),
        ("LIFEBOAT_DB_SSLMODE", "disable"),
        ("LIFEBOAT_PG_DUMP", pg_dump.as_str()),
        ("LIFEBOAT_PG_RESTORE", pg_restore.as_str()),
        ("LIFEBOAT_EXPORT_PROFILES", PROFILES),
        ("LIFEBOAT_AGE_IDENTITY_SECRET", "lifeboat/age-identity"),
        ("LIFEBOAT_RESTORE_CHECKS", RESTORE_CHECKS),
        ("LIFEBOAT_ALARM_TOPIC_ARN", topic.as_str()),
        ("LIFEBOAT_NOTIFY_TOPIC_ARN", topic.as_str()),
        ("LIFEBOAT_EXPORT_MAX_AGE_HOURS", "full=26,critical=7"),
        ("LIFEBOAT_CACHE_CA_BUNDLE", ca_bundle.as_str()),
        ("LIFEBOAT_RESTORE_RESOLVE", resolve.as_str()),
        ("LIFEBOAT_CACHE_RESTORE_CHECKS", CACHE_CHECKS),
    ]);

    heading("Starting the functions under the local Lambda runtime (cargo lambda watch's runtime APIs)");
    let log_dir = repo_root().join(".demo");
    std::fs::create_dir_all(&log_dir).unwrap();
    let log = log_dir.join("lambda.log");
    let watch = start_watch(&env, &log);
    println!(
        "  listening on 127.0.0.1:{}; function logs (Lambda JSON format) in {}",
        watch.port,
        log.display()
    );

    let events = repo_root().join("events/snapshot");
    let template: Value = serde_json::from_slice(&std::fs::read(events.join("scheduled.json")).unwrap()).unwrap();
    let today: DateTime<Utc> = template["time"].as_str().unwrap().parse().unwrap();

    heading(&format!(
        "{BACKFILL_DAYS} days of scheduled snapshots before {}",
        today.format("%Y-%m-%d")
    ));
    let started = Instant::now();
    let mut deleted = 0;
    for d in (1..=BACKFILL_DAYS).rev() {
        let file = scheduled_event_at(&template, today - chrono::Duration::days(d), work.path());
        let summary = invoke(&watch, "snapshot", &file).unwrap_or_else(|e| panic!("scheduled run failed: {e}"));
        deleted += summary["deleted"].as_u64().unwrap_or(0);
        print!(".");
        std::io::stdout().flush().ok();
    }
    println!(
        "\n  {BACKFILL_DAYS} runs in {:.1} s; retention deleted {deleted} snapshots along the way",
        started.elapsed().as_secs_f64()
    );

    heading("Today's scheduled run: events/snapshot/scheduled.json");
    let summary = invoke(&watch, "snapshot", &events.join("scheduled.json")).unwrap();
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

    heading("RDS says today's app-prod snapshot finished: events/snapshot/rds-snapshot-finished.json");
    match invoke(&watch, "snapshot", &events.join("rds-snapshot-finished.json")) {
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
    let again = invoke(&watch, "snapshot", &events.join("scheduled.json")).unwrap();
    print_run(&again);

    heading("A manual snapshot before a migration: events/snapshot/manual.json");
    match invoke(&watch, "snapshot", &events.join("manual.json")) {
        Ok(s) => print_run(&s),
        Err(e) => println!("  failed: {e}"),
    }

    heading("Daily full export: events/export/scheduled-full.json");
    let exports = repo_root().join("events/export");
    let summary =
        invoke(&watch, "export", &exports.join("scheduled-full.json")).unwrap_or_else(|e| panic!("export failed: {e}"));
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
    let app = summary["exports"]
        .as_array()
        .and_then(|v| v.iter().find(|e| e["db"] == "app-prod"))
        .unwrap();
    let manifest_key = app["manifest_key"].as_str().unwrap();
    let manifest: Value = serde_json::from_slice(
        &s3.get_object()
            .bucket(BUCKET)
            .key(manifest_key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes(),
    )
    .unwrap();
    println!("  manifest s3://{BUCKET}/{manifest_key} (written last; its presence means the export is complete):");
    for line in serde_json::to_string_pretty(&manifest).unwrap().lines().take(60) {
        println!("    {line}");
    }

    heading("Critical tables every 6 hours: events/export/scheduled-critical.json");
    let critical = invoke(&watch, "export", &exports.join("scheduled-critical.json"))
        .unwrap_or_else(|e| panic!("export failed: {e}"));
    for e in critical["exports"].as_array().into_iter().flatten() {
        println!(
            "  {:<12} {:<16} {} tables  {}",
            e["db"].as_str().unwrap_or(""),
            e["outcome"].as_str().unwrap_or(""),
            e["tables"],
            e["key"].as_str().unwrap_or("")
        );
    }

    heading("Restoring app-prod's export with standard tools (the README runbook)");
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key(app["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let encrypted = work.path().join("app-prod.dump.zst.age");
    std::fs::write(&encrypted, object.body.collect().await.unwrap().into_bytes()).unwrap();
    let restored = restore_runbook(&pg, &encrypted, &key_file, "app_restored");
    println!("  age -d | zstd -d | pg_restore into database app_restored: {restored}");
    let original = pg
        .psql("app", "select string_agg(format('%s=%s', c.relname, c.n), ', ' order by c.relname) from (select relname, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I', relname), false, true, '')))[1]::text::int as n from pg_stat_user_tables) c")
        .unwrap();
    let copy = pg
        .psql("app_restored", "select string_agg(format('%s=%s', c.relname, c.n), ', ' order by c.relname) from (select relname, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I', relname), false, true, '')))[1]::text::int as n from pg_stat_user_tables) c")
        .unwrap();
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
    let mut one_step: Value =
        serde_json::from_slice(&std::fs::read(repo_root().join("events/restore/console-restore-export.json")).unwrap())
            .unwrap();
    // billing's secret is the admin login: restoring into a new database needs a user that may create one (app-prod's
    // is the read-only backup user).
    one_step["database"] = serde_json::json!("billing");
    one_step["tables"] = serde_json::json!(["users", "sessions"]);
    one_step["into"] = serde_json::json!({"database": "app_users_restored"});
    let one_step_file = work.path().join("restore-export.json");
    std::fs::write(&one_step_file, one_step.to_string()).unwrap();
    match invoke(&watch, "restore", &one_step_file) {
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

    heading("Rotating app-prod's credentials (Secrets Manager rotation, alternating users): events/rotate/");
    let secret_id = "lifeboat/app-prod";
    let before = current_user_of(&secrets, secret_id).await;
    let token = lifeboat_tests::stage_rotation(&secrets, secret_id).await;
    let started = Instant::now();
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let template: Value =
            serde_json::from_slice(&std::fs::read(repo_root().join(format!("events/rotate/{step}.json"))).unwrap())
                .unwrap();
        let mut event = template.clone();
        event["SecretId"] = Value::from(secret_id);
        event["ClientRequestToken"] = Value::from(token.as_str());
        let file = work.path().join(format!("{step}.json"));
        std::fs::write(&file, event.to_string()).unwrap();
        let out = invoke(&watch, "rotate", &file).unwrap_or_else(|e| panic!("{step} failed: {e}"));
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
    let who = pg.psql_as(&after.0, &after.1, "app", "select current_user").unwrap();
    println!("  the new AWSCURRENT logs in as {who}");

    heading("An export after the rotation, with nothing redeployed: events/export/manual.json");
    let manual =
        invoke(&watch, "export", &exports.join("manual.json")).unwrap_or_else(|e| panic!("export failed: {e}"));
    for e in manual["exports"].as_array().into_iter().flatten() {
        println!(
            "  {:<12} {:<16} {} tables  {}",
            e["db"].as_str().unwrap_or(""),
            e["outcome"].as_str().unwrap_or(""),
            e["tables"],
            e["key"].as_str().unwrap_or("")
        );
    }

    heading("Restore test of app-prod (the state machine's steps): events/restore/");
    let step_file = |name: &str, body: &Value| {
        let file = work.path().join(format!("restore-{name}.json"));
        std::fs::write(&file, body.to_string()).unwrap();
        file
    };
    let requested = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let plan = invoke(
        &watch,
        "restore-test",
        &step_file("plan", &serde_json::json!({"action": "plan", "time": requested})),
    )
    .unwrap_or_else(|e| panic!("plan failed: {e}"));
    let planned: Vec<&str> = plan["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["database"].as_str())
        .collect();
    println!("  plan: {} (the demo runs app-prod's)", planned.join(", "));
    let mut test = invoke(
        &watch,
        "restore-test",
        &step_file(
            "start",
            &serde_json::json!({"action": "start", "database": "app-prod", "requested_at": requested}),
        ),
    )
    .unwrap_or_else(|e| panic!("start failed: {e}"));
    println!(
        "  start    snapshot {} -> isolated instance {}",
        test["snapshot_id"].as_str().unwrap_or(""),
        test["restored_id"].as_str().unwrap_or("")
    );
    for action in ["poll", "prepare", "verify", "report", "cleanup"] {
        if action == "verify" {
            // The emulator's restored instance has no server behind it: the local PostgreSQL, which holds
            // app-prod's data, answers for its described endpoint (LIFEBOAT_RESTORE_RESOLVE), with its login in
            // the test's own password secret (where prepare put the restored instance's new master password),
            // exactly as the integration tests do.
            let local = serde_json::json!({"username": lifeboat_tests::postgres::SUPERUSER, "password": pg.password});
            let id = test["restored_id"].as_str().unwrap();
            secrets
                .put_secret_value()
                .secret_id(lifeboat::rds::restore::test_secret_name(id))
                .secret_string(local.to_string())
                .send()
                .await
                .unwrap();
        }
        test = invoke(
            &watch,
            "restore-test",
            &step_file(action, &serde_json::json!({"action": action, "test": test})),
        )
        .unwrap_or_else(|e| panic!("{action} failed: {e}"));
        println!("  {action:<8} status {}", test["status"].as_str().unwrap_or(""));
    }
    let report_key = test["report_key"].as_str().unwrap().replace(".json", ".md");
    print_passed_report(&s3, &report_key, "app-prod").await;

    let clients = Clients {
        s3: s3.clone(),
        sm: secrets.clone(),
        ec: aws_sdk_elasticache::Client::new(&moto.config(REGION)),
    };
    cache_story(&watch, work.path(), &redis, &clients, &cache_snapshot).await;

    heading("Monitor's view of the fleet: events/monitor/scheduled.json");
    let view = invoke(&watch, "monitor", &repo_root().join("events/monitor/scheduled.json"))
        .unwrap_or_else(|e| panic!("monitor failed: {e}"));
    let hours = |v: &Value| v.as_f64().map(|h| format!("{h:.1} h")).unwrap_or_else(|| "none".into());
    println!(
        "  {:<12} {:>10} {:>12} {:>12} {:>13} {:>10}",
        "database", "snapshot", "export full", "export crit", "restore test", "retention"
    );
    for d in view["databases"].as_array().into_iter().flatten() {
        let test = match (&d["last_restore_test_passed"], d["restore_test_age_days"].as_f64()) {
            (Value::Bool(p), Some(age)) => format!("{} {:.0} d", if *p { "passed" } else { "FAILED" }, age),
            _ => "none".to_owned(),
        };
        println!(
            "  {:<12} {:>10} {:>12} {:>12} {:>13} {:>8} d",
            d["db"].as_str().unwrap_or(""),
            hours(&d["snapshot_age_hours"]),
            hours(&d["export_age_hours"]["full"]),
            hours(&d["export_age_hours"]["critical"]),
            test,
            d["backup_retention_days"]
        );
    }
    for c in view["caches"].as_array().into_iter().flatten() {
        let test = match (&c["last_restore_test_passed"], c["restore_test_age_days"].as_f64()) {
            (Value::Bool(p), Some(age)) => format!("{} {:.0} d", if *p { "passed" } else { "FAILED" }, age),
            _ => "none".to_owned(),
        };
        println!(
            "  {:<12} {:>10} {:>12} {:>12} {:>13} {:>8} d   (cache; RDB copy in the export column)",
            c["cache"].as_str().unwrap_or(""),
            hours(&c["snapshot_age_hours"]),
            hours(&c["export_age_hours"]),
            "",
            test,
            c["snapshot_retention_days"]
        );
    }
    println!(
        "  alarms kept: {} (one set per database and per cache, missing data breaching); deleted: {}; janitor deleted: {}",
        view["alarms_kept"],
        view["alarms_deleted"].as_array().map(Vec::len).unwrap_or(0),
        view["janitor_deleted"].as_array().map(Vec::len).unwrap_or(0)
    );
    for note in view["attention"].as_array().into_iter().flatten() {
        println!("  needs attention: {}", note.as_str().unwrap_or(""));
    }

    heading("The fleet's evidence report: events/monitor/evidence-report.json's shape, for the last 30 days");
    let evidence = invoke(
        &watch,
        "monitor",
        &step_file("evidence", &serde_json::json!({"action": "evidence-report"})),
    )
    .unwrap_or_else(|e| panic!("evidence report failed: {e}"));
    print_evidence(&evidence);
    let html_key = evidence["html_key"].as_str().unwrap();
    let page = s3.get_object().bucket(BUCKET).key(html_key).send().await.unwrap();
    let local = log_dir.join("evidence-report.html");
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

    heading("A notification as on-call receives it: events/notify/alarm.json");
    let sent = invoke(&watch, "notify", &repo_root().join("events/notify/alarm.json"))
        .unwrap_or_else(|e| panic!("notify failed: {e}"));
    println!("  delivered to: {}", sent["channels"]);
    for line in sent["text"].as_str().unwrap_or("").lines() {
        println!("    {line}");
    }
    let recovered = invoke(&watch, "notify", &repo_root().join("events/notify/recovery.json"))
        .unwrap_or_else(|e| panic!("notify failed: {e}"));
    println!("  and when it clears:");
    for line in recovered["text"].as_str().unwrap_or("").lines() {
        println!("    {line}");
    }

    heading("What the fleet holds now");
    let source = lifeboat::rds::snapshots::list_manual(&rds).await.unwrap();
    let dr = lifeboat::rds::snapshots::list_manual(&aws_sdk_rds::Client::new(&moto.config(DR_REGION)))
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
    let cw = aws_sdk_cloudwatch::Client::new(&moto.config(REGION));
    let metrics = cw.list_metrics().namespace("Lifeboat").send().await.unwrap();
    let mut names: Vec<&str> = metrics.metrics().iter().filter_map(|m| m.metric_name()).collect();
    names.sort();
    names.dedup();
    println!("  CloudWatch metrics in namespace Lifeboat: {}", names.join(", "));
    drop(watch);
    println!(
        "\nDemo finished; the emulator and PostgreSQL are stopped. Function logs: {}",
        log.display()
    );
}
