//! The deployed-stack test's story, and the local world `make demo` shares with it: the stack a user deploys, run
//! here.
//! `infra/template.yaml` is deployed into moto's CloudFormation (`crate::stack`), every function started with the
//! environment and role the stack gave it, and driven only through the stack's own wiring: each schedule's input,
//! an EventBridge rule's pattern, the rotation the rotate tick configured, and the restore tests run by the
//! deployed state machine's definition (`crate::asl`) from the input the snapshot tick started them with.
//!
//! The local world adds only what points the functions at this machine's servers (`world_settings`): moto's
//! endpoints for the restored copies and the databases' hosts are made up, so the local PostgreSQL and Redis
//! answer for them, without TLS for PostgreSQL. The local Redis stands in for the cache's data too
//! (`Moto::stand_in_cache`): a snapshot holds the RDB file it saved when the snapshot was taken, and ElastiCache's
//! export of that snapshot, which moto lacks, is the harness's (`tests/emulator/elasticache_export.py`, judged by the
//! deployed bucket policy), so the cache's RDB copy is requested, verified and moved by the deployed export function
//! and the cache's restore test counts its keys against it. [`story`] asserts what the wiring must do and says each
//! step through `say` (the demo prints it; the test keeps it).

use crate::asl::{self, Failure, Tasks};
use crate::moto::Moto;
use crate::postgres::{self, Postgres};
use crate::redis::Redis;
use crate::stack::{Deployed, Local, Stack};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const STACK: &str = "lifeboat";
/// The plan bucket the stack reads its plan document from.
pub const PLANS: &str = "lifeboat-plans";
const DB: &str = "app-db";
const CACHE: &str = "app-cache";
/// The master user of the instance moto made (`crate::plans::instance`), which a restored copy keeps: a
/// role of the local server, so that the restore test logs in as the copy's master user, as it would on RDS.
const MASTER_USER: &str = "x";

/// One plan, every kind of rule the functions follow: the database's and the cache's snapshots at 01:00, a full
/// export and the cache's RDB copy at 02:00 (the copy is requested then and verified at the next quarter-hour's
/// tick), restore tests of the newest snapshot of each at 03:00, rotation every 30 days. And one cache restore test
/// at 01:30, before the day's RDB copy exists: it fails for want of key counts to compare with, as it would in AWS
/// (the story's honest failed execution, which notify's rule for failed restore tests must match).
pub fn plan() -> Value {
    json!({"format": 1, "plans": {"app": {
        "databases": [DB],
        "caches": [CACHE],
        "snapshots": {"schedule": "0 1 * * *", "retention": {"daily": 7}},
        "cache_snapshots": {"schedule": "0 1 * * *", "retention": {"daily": 7}},
        "exports": {"full": {"schedule": "0 2 * * *", "keep_days": 14}},
        "rdb_copies": {"schedule": "0 2 * * *", "keep_days": 14},
        "restore_tests": [
            {"schedule": "0 3 * * *", "from": "newest-snapshot"},
            {"schedule": "0 3 * * *", "from": "newest-cache-snapshot"},
            {"schedule": "30 1 * * *", "from": "newest-cache-snapshot"}
        ],
        "rotation": {"every_days": 30}
    }}})
}

/// What the local world sets beside the stack's environment, each for the reason given.
pub fn world_settings(pg: &Postgres, redis: &Redis) -> Local {
    let bin = postgres::bin_dir();
    Local::default()
        .with(
            "LIFEBOAT_PG_DUMP",
            bin.join("pg_dump").display().to_string(),
            "the image's pg_dump (its Dockerfile's ENV) is this machine's",
        )
        .with(
            "LIFEBOAT_PG_RESTORE",
            bin.join("pg_restore").display().to_string(),
            "the image's pg_restore is this machine's",
        )
        .with(
            "LIFEBOAT_EXPORT_ALLOW_ANY_HOST",
            "true",
            "the database's secret names the local server, not the endpoint moto made up",
        )
        .with(
            "LIFEBOAT_DB_SSLMODE",
            "disable",
            "the local PostgreSQL has no certificate from the RDS CA the stack's verify-full expects",
        )
        .with(
            "LIFEBOAT_RESTORE_RESOLVE",
            format!(
                ".rds.amazonaws.com=127.0.0.1:{},.cache.amazonaws.com=127.0.0.1:{}",
                pg.port, redis.port
            ),
            "the restored instance and group moto describes have no server: the local ones answer for them",
        )
        .with(
            "LIFEBOAT_CACHE_CA_BUNDLE",
            redis.ca_file.as_ref().expect("a TLS server").display().to_string(),
            "the local Redis's certificate is from the test's own CA, not ElastiCache's",
        )
}

/// The restore-test steps' tasks, run by the deployed functions; before Verify the test's own secret gets the
/// local server's login (the restored instance moto made has none of its own).
#[derive(Debug)]
pub struct Steps<'a> {
    deployed: &'a Deployed,
    /// The master user of the restored copies: a role of the local server, with its superuser's password.
    master_user: &'a str,
    sm: aws_sdk_secretsmanager::Client,
    pg: &'a Postgres,
    redis: &'a Redis,
    rt: tokio::runtime::Handle,
    /// What each step answered, for a failure's message.
    pub said: Vec<String>,
}

impl<'a> Steps<'a> {
    /// The steps run by `deployed`'s functions, the restored copies logging in as `master_user` (a role of `pg`
    /// with its superuser's password) and the restored caches as `redis`'s default user.
    pub fn new(
        deployed: &'a Deployed,
        config: &aws_config::SdkConfig,
        pg: &'a Postgres,
        redis: &'a Redis,
        master_user: &'a str,
    ) -> Self {
        Self {
            deployed,
            master_user,
            sm: aws_sdk_secretsmanager::Client::new(config),
            pg,
            redis,
            rt: tokio::runtime::Handle::current(),
            said: Vec::new(),
        }
    }
}

impl Tasks for Steps<'_> {
    fn invoke(&mut self, function: &str, payload: &Value) -> Result<Value, Failure> {
        let answer = self.deployed.invoke(function, payload);
        let said = match &answer {
            Ok(v) => v.to_string(),
            Err(e) => e.clone(),
        };
        self.said.push(format!("{}: {said}", payload["action"]));
        answer.map_err(|text| {
            // Lambda reports a function error as its errorType, which cargo lambda prints first: `Error: <type>`.
            let error = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("Error: "))
                .filter(|t| !t.contains(' '))
                .unwrap_or("Lambda.Unknown")
                .to_owned();
            Failure { error, cause: text }
        })
    }

    fn entering(&mut self, state: &str, input: &Value) {
        let id = || {
            input["test"]["restored_id"]
                .as_str()
                .expect("a restored copy")
                .to_owned()
        };
        let (secret, login) = if state.ends_with("/Verify") {
            (
                lifeboat::rds::restore::test_secret_name(&id()),
                json!({"username": self.master_user, "password": self.pg.password}),
            )
        } else if state.ends_with("/CacheVerify") {
            (
                lifeboat::caches::restore::test_secret_name(&id()),
                json!({"username": "default", "password": self.redis.password}),
            )
        } else {
            return;
        };
        let sm = self.sm.clone();
        tokio::task::block_in_place(|| {
            self.rt.block_on(async {
                sm.put_secret_value()
                    .secret_id(secret)
                    .secret_string(login.to_string())
                    .send()
                    .await
                    .unwrap();
            });
        });
    }
}

/// Whether `event` matches an EventBridge `pattern` (the subset the stack's rules use: exact values, prefixes).
pub fn matches(pattern: &Value, event: &Value) -> bool {
    pattern.as_object().into_iter().flatten().all(|(key, want)| {
        let got = &event[key];
        match want {
            Value::Array(options) => options.iter().any(|o| match o {
                Value::Object(op) if op.contains_key("prefix") => got
                    .as_str()
                    .zip(op["prefix"].as_str())
                    .is_some_and(|(g, p)| g.starts_with(p)),
                other => got == other,
            }),
            Value::Object(_) => matches(want, got),
            other => got == other,
        }
    })
}

/// The local cloud with the stack deployed, a PostgreSQL and a Redis behind its database and cache.
#[derive(Debug)]
pub struct World {
    pub moto: Moto,
    pub pg: Postgres,
    pub redis: Redis,
    pub stack: Stack,
    pub config: aws_config::SdkConfig,
    /// The day the story runs on: yesterday, so every tick is in the past of the real clock.
    pub day: DateTime<Utc>,
    /// The identity of the stack's age recipient: what decrypts its exports (the chaos checks restore a sample).
    pub identity: AgeIdentity,
}

/// An age identity, printed as its recipient only.
#[derive(Clone)]
pub struct AgeIdentity(pub age::x25519::Identity);

impl std::fmt::Debug for AgeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgeIdentity({})", self.0.to_public())
    }
}

/// Starts the servers, puts a database and a cache under a plan, and deploys the stack.
pub async fn world() -> World {
    world_with(&[]).await
}

/// As [`world`], the stack deployed with `params` besides the world's own (a parameter given twice takes the later
/// value).
pub async fn world_with(params: &[(&str, &str)]) -> World {
    // Every request moto gets is recorded, so a test can prove each function's calls against its role.
    let moto = Moto::start_recording();
    let config = moto.config(REGION);
    let pg = Postgres::start();
    pg.psql("postgres", "create database app").unwrap();
    pg.psql(
        "app",
        "create table orders (id int primary key, total numeric); insert into orders select g, g * 1.5 from generate_series(1, 500) g",
    )
    .unwrap();
    let s3 = aws_sdk_s3::Client::new(&config);
    crate::plans::versioned_bucket(&s3, PLANS).await;
    crate::plans::put_json(&s3, PLANS, "lifeboat/plans.json", &plan()).await;
    // The database, as a user puts it under Lifeboat: an RDS instance whose `lifeboat:secret` tag names a
    // secret. Its secret is a backup user with a master secret beside it, so a rotation alternates users and
    // the local superuser keeps its password.
    let backup_password = crate::random_hex(16);
    pg.psql(
        "postgres",
        &format!(
            "CREATE ROLE lifeboat_backup LOGIN PASSWORD '{backup_password}'; GRANT pg_read_all_data TO lifeboat_backup"
        ),
    )
    .unwrap();
    pg.psql(
        "postgres",
        &format!(
            "CREATE ROLE {MASTER_USER} LOGIN PASSWORD '{}'; GRANT pg_read_all_data TO {MASTER_USER}",
            pg.password
        ),
    )
    .unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let admin = json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port,
        "username": postgres::SUPERUSER, "password": pg.password, "dbname": "app"});
    let master = sm
        .create_secret()
        .name("app-db/master")
        .secret_string(admin.to_string())
        .send()
        .await
        .unwrap();
    let secret = json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port, "username": "lifeboat_backup",
        "password": backup_password, "dbname": "app", "masterarn": master.arn().unwrap()});
    sm.create_secret()
        .name(format!("lifeboat/{DB}"))
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
    let secret_tag = format!("lifeboat/{DB}");
    crate::plans::instance(
        &aws_sdk_rds::Client::new(&config),
        DB,
        &[("lifeboat:secret", &secret_tag)],
        1,
    )
    .await;

    // The cache, listed by the plan, with what a restore test checks in it.
    let redis = Redis::start_tls(&[]);
    for i in 0..20 {
        redis.cli(0, &["SET", &format!("session:{i}"), "x"]);
    }
    redis.cli(1, &["HSET", "ratelimit:api", "alice", "17"]);
    crate::plans::cache(&aws_sdk_elasticache::Client::new(&config), CACHE, &[]).await;
    // The local Redis is the cache's data: a snapshot of it holds the file the server writes when the snapshot is
    // taken, and ElastiCache's export of that snapshot (the RDB copy) writes it into the bucket.
    moto.stand_in_cache(CACHE, &[&redis]);
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let stack = tokio::task::block_in_place(|| {
        Stack::deploy(
            &moto,
            REGION,
            STACK,
            &[
                ("PlanBucket", PLANS),
                ("AgeRecipients", &recipient),
                // moto has no ElastiCache Serverless API (DescribeServerlessCaches answers nothing it can read).
                ("ServerlessCaches", "false"),
            ]
            .iter()
            .chain(params)
            .copied()
            .collect::<Vec<_>>(),
        )
    });
    // What the functions do from here on, without the set-up's and the deploy's own requests.
    moto.reset_recording();
    let day = Utc::now().date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc() - Duration::days(1);
    World {
        moto,
        pg,
        redis,
        stack,
        config,
        day,
        identity: AgeIdentity(identity),
    }
}

/// The keys in `bucket`.
async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .map(str::to_owned)
        .collect()
}

/// The executions of the deployed machine the story has run, so that each tick's are run once.
#[derive(Debug, Default)]
pub struct Executions {
    run: std::collections::BTreeSet<String>,
}

impl Executions {
    /// Runs the definition for each execution started since the last call, from the input it was started with:
    /// its ARN, what ran, and the states its one test passed through.
    pub async fn new_ones(
        &mut self,
        sfn: &aws_sdk_sfn::Client,
        machine: &str,
        definition: &Value,
        steps: &mut Steps<'_>,
    ) -> Vec<(String, asl::Execution, Vec<String>)> {
        let mut ran = Vec::new();
        for (arn, input) in started_since(sfn, machine, &mut self.run).await.unwrap() {
            let done = asl::run(definition, input, steps);
            let path = done.states_under("EachDatabase[0]/");
            ran.push((arn, done, path));
        }
        ran
    }
}

/// The executions of `machine` not in `seen`, oldest ARN first, each with the input it was started with; each is
/// added to `seen` once its input is read, so a failed call leaves the rest for the next one.
pub async fn started_since(
    sfn: &aws_sdk_sfn::Client,
    machine: &str,
    seen: &mut std::collections::BTreeSet<String>,
) -> Result<Vec<(String, Value)>, String> {
    let listed = sfn
        .list_executions()
        .state_machine_arn(machine)
        .send()
        .await
        .map_err(|e| format!("ListExecutions: {e:?}"))?;
    let mut arns: Vec<&str> = listed
        .executions()
        .iter()
        .map(|e| e.execution_arn())
        .filter(|a| !seen.contains(*a))
        .collect();
    arns.sort_unstable();
    let mut out = Vec::new();
    for arn in arns {
        let described = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| format!("DescribeExecution {arn}: {e:?}"))?;
        let input = described
            .input()
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or(Value::Null);
        seen.insert(arn.to_owned());
        out.push((arn.to_owned(), input));
    }
    Ok(out)
}

fn at(day: DateTime<Utc>, h: u32, m: u32) -> DateTime<Utc> {
    day + Duration::hours(h.into()) + Duration::minutes(m.into())
}

/// Starts every function of the deployed stack, with its output in `logs`.
pub fn start_functions(w: &World, logs: &std::path::Path) -> Deployed {
    Deployed::start(&w.stack, &w.moto, &world_settings(&w.pg, &w.redis), logs)
}

/// A day of the plan through the deployed wiring, asserted, each step said through `say`.
pub async fn story(w: &World, deployed: &Deployed, say: &dyn Fn(String)) {
    let invoke = |function: &str, event: &Value| {
        tokio::task::block_in_place(|| deployed.invoke(function, event))
            .unwrap_or_else(|e| panic!("{function} refused {event}: {e}\n{}", deployed.log_text(function)))
    };
    // Every function's entry is one of the stack's schedules or rules.
    let snapshot = w.stack.schedule("snapshot");
    let export = w.stack.schedule("export-plan-tick");
    let rotate = w.stack.schedule("rotate-plan-tick");
    let monitor = w.stack.schedule("monitor");
    let evidence = w.stack.schedule("evidence-report");
    say(format!(
        "stack {} deployed: {} functions, {} schedules, {} rules; what moto's CloudFormation lacks, done by the \
         harness (the bucket policy kept for the permission check): {}",
        w.stack.name,
        w.stack.functions().len(),
        w.stack.schedules().len(),
        w.stack.doc["rules"].as_array().map_or(0, Vec::len),
        w.stack.doc["applied"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["type"].as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for s in w.stack.schedules() {
        say(format!(
            "schedule {:<28} {:<22} -> {}",
            s.name, s.expression, s.target_arn
        ));
    }

    // 01:00: the snapshot tick takes the plan's snapshot.
    let out = invoke(&snapshot.target_arn, &snapshot.input_at(at(w.day, 1, 0)));
    let rds = aws_sdk_rds::Client::new(&w.config);
    let snaps = rds
        .describe_db_snapshots()
        .db_instance_identifier(DB)
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    assert_eq!(
        snaps.db_snapshots().len(),
        1,
        "the 01:00 tick takes one snapshot: {out}"
    );
    let ec = aws_sdk_elasticache::Client::new(&w.config);
    let cache_snaps = ec.describe_snapshots().cache_cluster_id(CACHE).send().await.unwrap();
    assert_eq!(cache_snaps.snapshots().len(), 1, "and the cache's: {out}");
    say(format!(
        "01:00 {} tick: snapshot {} of {DB} and {} of {CACHE}",
        snapshot.name,
        snaps.db_snapshots()[0].db_snapshot_identifier().unwrap_or(""),
        cache_snaps.snapshots()[0].snapshot_name().unwrap_or("")
    ));

    let bucket = w.stack.function("ExportFunction").env["LIFEBOAT_BUCKET"].clone();
    let s3 = aws_sdk_s3::Client::new(&w.config);
    let (machine_arn, definition) = w.stack.state_machine("restore-test");
    let sfn = aws_sdk_sfn::Client::new(&w.config);
    let mut steps = Steps::new(deployed, &w.config, &w.pg, &w.redis, MASTER_USER);
    let mut run = Executions::default();

    // 01:30: the snapshot tick starts the cache test the plan runs before the day's RDB copy, and the deployed
    // machine runs it: it fails as it would in AWS, with no verified copy to count the restored keys against.
    invoke(&snapshot.target_arn, &snapshot.input_at(at(w.day, 1, 30)));
    let early = run.new_ones(&sfn, &machine_arn, &definition, &mut steps).await;
    assert_eq!(early.len(), 1, "one execution for the rule due at 01:30");
    let (failed_arn, ran, path) = &early[0];
    let failure = ran
        .result
        .clone()
        .expect_err("a cache test before the day's RDB copy cannot pass");
    assert_eq!(failure.error, "Lifeboat.PartialFailure", "{}", steps.said.join("\n"));
    assert!(failure.cause.contains(CACHE), "{failure:?}");
    let report = steps
        .said
        .iter()
        .rev()
        .find(|s| s.starts_with("\"cache_report\""))
        .unwrap();
    assert!(
        report.contains("no verified RDB copy of this cache in the bucket"),
        "the cache's report says why it did not pass: {report}"
    );
    say(format!(
        "01:30 restore test of {CACHE} through the deployed machine ({}): failed, as the plan runs it before the \
         day's RDB copy: no verified copy to count keys against",
        path.join(" > ")
    ));

    // 02:00: the export tick dumps the database into the stack's bucket and asks ElastiCache to export the cache's
    // snapshot (CopySnapshot with the bucket as its target), whose files land under the staging prefix.
    let out = invoke(&export.target_arn, &export.input_at(at(w.day, 2, 0)));
    let keys = list_keys(&s3, &bucket).await;
    assert!(
        keys.iter()
            .any(|k| k.ends_with("manifest.json") && !k.contains("/_caches/")),
        "the 02:00 export tick leaves a manifest in {bucket}: {out}; keys {keys:?}"
    );
    let staged: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with(lifeboat::bucket::layout::RDB_STAGING_PREFIX) && k.ends_with("-0001.rdb"))
        .collect();
    assert_eq!(
        staged.len(),
        1,
        "ElastiCache exported the cache's snapshot: {out}; keys {keys:?}"
    );
    say(format!(
        "02:00 {} tick: {} written to s3://{bucket}; ElastiCache exported {CACHE}'s snapshot to {}",
        export.name,
        keys.iter()
            .find(|k| k.ends_with(".dump.zst.age"))
            .map_or("?", String::as_str),
        staged[0]
    ));

    // 02:15: the next tick verifies the staged file, moves it under exports/ and writes the copy's manifest last.
    let out = invoke(&export.target_arn, &export.input_at(at(w.day, 2, 15)));
    let copy = lifeboat::bucket::layout::rdb_keys(CACHE, at(w.day, 1, 0));
    let manifest = s3
        .get_object()
        .bucket(&bucket)
        .key(copy.manifest())
        .send()
        .await
        .unwrap_or_else(|e| panic!("the 02:15 tick verified no RDB copy of {CACHE}: {e}; {out}"));
    let manifest: lifeboat::caches::records::RdbManifest =
        serde_json::from_slice(&manifest.body.collect().await.unwrap().into_bytes()).unwrap();
    let counted: std::collections::BTreeMap<u64, u64> =
        lifeboat::caches::check::parse_keyspace(&w.redis.cli(0, &["INFO", "keyspace"]))
            .into_iter()
            .map(|(db, k)| (db, k.keys))
            .collect();
    assert_eq!(
        manifest.keys_per_db(),
        counted,
        "the copy holds the keys the cache held"
    );
    say(format!(
        "02:15 {} tick: the RDB copy verified and described by {} (keys per database {:?})",
        export.name,
        copy.manifest(),
        manifest.keys_per_db()
    ));

    // 03:00: the snapshot tick starts the restore tests due, and the deployed machine runs its definition for each.
    invoke(&snapshot.target_arn, &snapshot.input_at(at(w.day, 3, 0)));
    let tests = run.new_ones(&sfn, &machine_arn, &definition, &mut steps).await;
    assert_eq!(tests.len(), 2, "one execution for each rule due at 03:00");
    let mut paths = vec![path.clone()];
    for (_, ran, path) in &tests {
        let output = ran
            .result
            .clone()
            .unwrap_or_else(|f| panic!("a restore test failed: {f:?}\n{}", steps.said.join("\n")));
        assert_eq!(output["summary"], json!({"failed": 0, "tested": 1}), "{output}");
        let what = if path.iter().any(|s| s == "CacheStart") {
            format!("{CACHE} (its keys counted against the verified RDB copy)")
        } else {
            DB.to_owned()
        };
        say(format!(
            "03:00 restore test of {what} passed through the deployed machine ({})",
            path.join(" > ")
        ));
        paths.push(path.clone());
    }
    paths.sort();
    let cache_path = |end: &str| {
        [
            "DatabaseOrCache?",
            "CacheStart",
            "CacheWaitForRestore",
            "CachePoll",
            "CacheAvailable?",
            "CacheVerify",
            "CacheReport",
            "CacheCleanup",
            "CachePassed?",
            end,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    assert_eq!(
        paths,
        [
            cache_path("CacheTestFailed"),
            cache_path("CacheTestPassed"),
            [
                "DatabaseOrCache?",
                "Start",
                "WaitForRestore",
                "Poll",
                "Available?",
                "Prepare",
                "WaitForPassword",
                "Verify",
                "Report",
                "Cleanup",
                "Passed?",
                "TestPassed"
            ]
            .map(str::to_owned)
            .to_vec()
        ]
    );

    // notify hears of the 01:30 failed execution through the stack's rule for it.
    let notify = w.stack.function("NotifyFunction");
    let rule = |name: &str| -> Value {
        let r = w
            .stack
            .rules_targeting(&notify)
            .into_iter()
            .find(|r| r["name"].as_str().unwrap_or("").contains(name))
            .unwrap_or_else(|| panic!("notify has no rule {name}"));
        serde_json::from_str(r["pattern"].as_str().unwrap()).unwrap()
    };
    let mut event = crate::demo::sample("events/notify/restore-test-failed.json");
    event["region"] = json!(REGION);
    event["resources"] = json!([failed_arn]);
    event["detail"]["executionArn"] = json!(failed_arn);
    event["detail"]["stateMachineArn"] = json!(machine_arn);
    event["detail"]["error"] = json!(failure.error);
    event["detail"]["cause"] = json!(format!("restore tests failed for 1 of 1 databases: {CACHE}"));
    let pattern = rule("RestoreTestFailed");
    assert!(
        matches(&pattern, &event),
        "a failed execution of the deployed machine does not match {pattern}"
    );
    let told = invoke(&notify.arn, &event);
    assert!(!told.is_null(), "{told}");

    say(format!(
        "notify told of the failed execution through rule {}",
        "RestoreTestFailed"
    ));
    // The rotate tick configures rotation with the stack's rotate function; a rotation, as Secrets Manager runs it.
    invoke(&rotate.target_arn, &rotate.input_at(at(w.day, 3, 15)));
    let sm = aws_sdk_secretsmanager::Client::new(&w.config);
    let secret_id = format!("lifeboat/{DB}");
    let described = sm.describe_secret().secret_id(&secret_id).send().await.unwrap();
    let rotation_function = described.rotation_lambda_arn().unwrap().to_owned();
    assert_eq!(rotation_function, w.stack.function("RotateFunction").arn);
    assert_eq!(
        described.rotation_rules().and_then(|r| r.automatically_after_days()),
        Some(30)
    );
    let before = super::current_user_of(&sm, &secret_id).await;
    let token = crate::stage_rotation(&sm, &secret_id).await;
    let mut steps_said = Vec::new();
    for step in crate::ROTATION_STEPS {
        let said = invoke(
            &rotation_function,
            &json!({"SecretId": secret_id, "ClientRequestToken": token, "Step": step}),
        );
        steps_said.push(said);
    }
    crate::end_rotation(&sm, &secret_id, &token).await.unwrap();
    let after = super::current_user_of(&sm, &secret_id).await;
    assert_ne!(
        before.0,
        after.0,
        "a rotation with alternating users switches the user: {steps_said:?}\n{:?}",
        sm.describe_secret()
            .secret_id(&secret_id)
            .send()
            .await
            .unwrap()
            .version_ids_to_stages()
    );
    assert_eq!(
        w.pg.psql_as(&after.0, &after.1, "app", "select count(*) from orders")
            .unwrap(),
        "500"
    );
    say(format!(
        "03:15 {} tick: {secret_id} rotates every 30 days with {}; a rotation as Secrets Manager runs it: \
         AWSCURRENT was {} and is now {}",
        rotate.name, rotation_function, before.0, after.0
    ));

    // 04:00: monitor judges the fleet by what the functions left: the export and the passed restore test.
    let view = invoke(&monitor.target_arn, &monitor.input_at(at(w.day, 4, 0)));
    let judged = &view["databases"][0];
    assert_eq!(judged["db"], json!(DB), "{view}");
    assert_eq!(judged["last_restore_test_passed"], json!(true), "{view}");
    assert!(judged["export_age_hours"]["full"].as_f64().is_some(), "{view}");
    say(format!(
        "04:00 {} run: {DB} export age {:.1} h, last restore test passed: {}",
        monitor.name,
        judged["export_age_hours"]["full"].as_f64().unwrap_or(0.0),
        judged["last_restore_test_passed"]
    ));
    // ... and the cache by its RDB copy and its 03:00 test, the newest, which passed.
    let cache = view["caches"]
        .as_array()
        .and_then(|c| c.iter().find(|v| v["cache"] == json!(CACHE)))
        .unwrap_or_else(|| panic!("monitor saw no {CACHE}: {view}"));
    assert_eq!(cache["last_restore_test_passed"], json!(true), "{view}");
    let copy_age = cache["export_age_hours"]
        .as_f64()
        .unwrap_or_else(|| panic!("monitor found no RDB copy of {CACHE}: {view}"));
    say(format!(
        "04:00 {} run: {CACHE} RDB copy age {copy_age:.1} h, last restore test passed: true",
        monitor.name
    ));
    // The monthly evidence report.
    let report = invoke(&evidence.target_arn, &evidence.input_at(at(w.day, 6, 0)));
    assert!(report.to_string().contains("report"), "{report}");
    say(format!("06:00 {} run: {report}", evidence.name));

    // ... and of an alarm through its rule for alarms: a monitor alarm's state change matches its pattern.
    let pattern = rule("AlarmChanged");
    let cw = aws_sdk_cloudwatch::Client::new(&w.config);
    let alarms = cw.describe_alarms().send().await.unwrap();
    let names: Vec<&str> = alarms.metric_alarms().iter().filter_map(|a| a.alarm_name()).collect();
    let per_db = names
        .iter()
        .find(|n| n.contains(DB))
        .unwrap_or_else(|| panic!("monitor made no alarm for {DB}: {names:?}"));
    let mut event = crate::demo::sample("events/notify/alarm.json");
    event["detail"]["alarmName"] = json!(per_db);
    event["region"] = json!(REGION);
    assert!(
        matches(&pattern, &event),
        "the alarm {per_db} monitor made does not match notify's rule {pattern}"
    );
    let told = invoke(&notify.arn, &event);
    assert!(!told.is_null(), "{told}");
    say(format!("notify told of alarm {per_db} through rule AlarmChanged"));
    // Every function ran: each one's log has lines.
    for f in w.stack.functions() {
        if f.logical_id == "RestoreFunction" {
            continue; // the console's function: a person invokes it, no schedule or rule does
        }
        assert!(
            !deployed.log_text(&f.name).trim().is_empty(),
            "{} wrote nothing",
            f.logical_id
        );
    }
}
