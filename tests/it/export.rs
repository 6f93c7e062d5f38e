//! The `export` handler against moto (S3, Secrets Manager, RDS) and a real PostgreSQL, restored with the
//! standard tools exactly as the restore runbook (docs/book/src/runbooks/export.md) says: `age -d`, `zstd -d`, `pg_restore`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_rds::types::Tag;
use export::handler::Outcome;
use export::settings::ExportSettings;
use export::{handle, Deps};
use lifeboat::bucket::manifest::Manifest;
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{self, Postgres, SUPERUSER};
use lifeboat_tests::repo_root;
use serde_json::{json, Value};
use sha2::Digest as _;

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const TIME: &str = "2026-11-22T02:00:00Z";
const TABLES: [&str; 5] = ["chats", "messages", "projects", "sessions", "users"];

struct World {
    moto: Moto,
    pg: Postgres,
    deps: Deps,
    identity: age::x25519::Identity,
    dir: tempfile::TempDir,
}

fn tool(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "`{name}` is needed for the restore runbook test: install it with `make test` (apt-get install age zstd)"
    );
    PathBuf::from(path)
}

async fn world(extra: &[(&str, &str)]) -> World {
    let moto = Moto::start();
    let pg = Postgres::start();
    pg.psql("postgres", "create database app").unwrap();
    pg.load_file("app", &repo_root().join("tests/demo/app.sql")).unwrap();

    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let secret = json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port, "username": SUPERUSER,
                        "password": pg.password, "dbname": "app"});
    secrets
        .create_secret()
        .name("lifeboat/app-prod")
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
    let rds = aws_sdk_rds::Client::new(&config);
    rds.create_db_instance()
        .db_instance_identifier("app-prod")
        .db_instance_class("db.t4g.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("x")
        .master_user_password("not-a-real-password-1")
        .tags(Tag::builder().key("lifeboat:secret").value("lifeboat/app-prod").build())
        .tags(Tag::builder().key("lifeboat:backup").value("true").build())
        .send()
        .await
        .unwrap();

    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let bin = postgres::bin_dir();
    let pg_dump = bin.join("pg_dump").display().to_string();
    let pg_restore = bin.join("pg_restore").display().to_string();
    let profiles = json!({"full": {}, "critical": {"include": ["users", "public.projects"]},
                          "no-messages": {"exclude": ["messages"]}})
    .to_string();
    let mut vars: BTreeMap<String, String> = [
        ("LIFEBOAT_BUCKET", BUCKET),
        ("LIFEBOAT_DB_SSLMODE", "disable"),
        ("LIFEBOAT_AGE_RECIPIENTS", recipient.as_str()),
        ("LIFEBOAT_PG_DUMP", pg_dump.as_str()),
        ("LIFEBOAT_PG_RESTORE", pg_restore.as_str()),
        ("LIFEBOAT_EXPORT_PROFILES", profiles.as_str()),
        ("LIFEBOAT_PART_SIZE_MIB", "5"),
        // The secrets point at the local PostgreSQL, not at moto's made-up endpoint.
        ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let settings = ExportSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
    let deps = Deps::new(&config, settings);
    World {
        moto,
        pg,
        deps,
        identity,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn scheduled(profile: &str) -> Value {
    json!({"profile": profile, "time": TIME})
}

async fn get(w: &World, key: &str) -> Vec<u8> {
    let out = w.deps.s3.get_object().bucket(BUCKET).key(key).send().await.unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn keys(w: &World) -> Vec<String> {
    let out = w.deps.s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The restore runbook, step by step with the standard tools: decrypt, decompress, restore into a new database.
fn restore_with_standard_tools(w: &World, object: &[u8], into: &str) {
    let dir = w.dir.path();
    let encrypted = dir.join(format!("{into}.dump.zst.age"));
    std::fs::write(&encrypted, object).unwrap();
    let key_file = dir.join("key.txt");
    use age::secrecy::ExposeSecret;
    std::fs::write(&key_file, format!("{}\n", w.identity.to_string().expose_secret())).unwrap();
    let compressed = dir.join(format!("{into}.dump.zst"));
    run(Command::new(tool("age"))
        .arg("-d")
        .arg("-i")
        .arg(&key_file)
        .arg("-o")
        .arg(&compressed)
        .arg(&encrypted));
    let dump = dir.join(format!("{into}.dump"));
    run(Command::new(tool("zstd"))
        .args(["-d", "-q", "-f"])
        .arg(&compressed)
        .arg("-o")
        .arg(&dump));
    w.pg.psql("postgres", &format!("create database {into}")).unwrap();
    run(Command::new(postgres::bin_dir().join("pg_restore"))
        .args([
            "--no-owner",
            "--exit-on-error",
            "-h",
            "127.0.0.1",
            "-p",
            &w.pg.port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            into,
        ])
        .arg(&dump)
        .env("PGPASSWORD", &w.pg.password));
}

fn table_fingerprint(pg: &Postgres, db: &str, table: &str) -> String {
    pg.psql(
        db,
        &format!(
            "select count(*) || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from {table} t"
        ),
    )
    .unwrap()
}

fn tables_in(pg: &Postgres, db: &str) -> Vec<String> {
    let out = pg
        .psql(
            db,
            "select string_agg(tablename, ',' order by tablename) from pg_tables where schemaname = 'public'",
        )
        .unwrap();
    out.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn tables_with_rows(pg: &Postgres, db: &str) -> Vec<String> {
    tables_in(pg, db)
        .into_iter()
        .filter(|t| !table_fingerprint(pg, db, t).starts_with("0:"))
        .collect()
}

#[tokio::test]
async fn full_export_restores_with_standard_tools_to_identical_data() {
    let w = world(&[]).await;
    let summary = handle(&w.deps, scheduled("full"), None).await.unwrap();
    let report = &summary.exports[0];
    assert_eq!(report.outcome, Outcome::Exported);
    assert_eq!(
        report.key,
        "exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.dump.zst.age"
    );

    let manifest: Manifest = serde_json::from_slice(&get(&w, &report.manifest_key).await).unwrap();
    let object = get(&w, &report.key).await;
    assert_eq!(object.len() as u64, manifest.stored.bytes);
    assert_eq!(
        export::pipeline::hex(&sha2::Sha256::digest(&object)),
        manifest.stored.sha256
    );
    assert_eq!(
        manifest.encryption.as_ref().unwrap().recipients,
        vec![w.identity.to_public().to_string()]
    );
    assert!(
        manifest.pg_dump_version.contains("PostgreSQL"),
        "{}",
        manifest.pg_dump_version
    );
    let counted: BTreeMap<&str, i64> = manifest.tables.iter().map(|t| (t.name.as_str(), t.rows)).collect();
    assert_eq!(
        counted,
        BTreeMap::from([
            ("chats", 1200),
            ("messages", 24000),
            ("projects", 60),
            ("sessions", 600),
            ("users", 250)
        ])
    );

    restore_with_standard_tools(&w, &object, "restored");
    for table in TABLES {
        assert_eq!(
            table_fingerprint(&w.pg, "app", table),
            table_fingerprint(&w.pg, "restored", table),
            "{table}"
        );
    }
    let cw = aws_sdk_cloudwatch::Client::new(&w.moto.config(REGION));
    let metrics = cw
        .list_metrics()
        .namespace("Lifeboat")
        .metric_name("ExportSuccess")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.metrics().len(), 1);
    let tags = w
        .deps
        .s3
        .get_object_tagging()
        .bucket(BUCKET)
        .key(&report.key)
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(
        tags,
        vec![("lifeboat-profile", "full")],
        "lifecycle rules select exports by this tag"
    );
}

#[tokio::test]
async fn include_and_exclude_profiles_dump_only_their_tables() {
    let w = world(&[]).await;
    let critical = handle(&w.deps, scheduled("critical"), None).await.unwrap();
    let object = get(&w, &critical.exports[0].key).await;
    restore_with_standard_tools(&w, &object, "critical");
    // The whole schema restores (so the archive restores on its own); only the selected tables have data.
    assert_eq!(tables_in(&w.pg, "critical"), TABLES);
    assert_eq!(tables_with_rows(&w.pg, "critical"), vec!["projects", "users"]);
    assert_eq!(
        table_fingerprint(&w.pg, "app", "users"),
        table_fingerprint(&w.pg, "critical", "users")
    );

    let rest = handle(&w.deps, scheduled("no-messages"), None).await.unwrap();
    let manifest: Manifest = serde_json::from_slice(&get(&w, &rest.exports[0].manifest_key).await).unwrap();
    let names: Vec<&str> = manifest.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["chats", "projects", "sessions", "users"]);
    let object = get(&w, &rest.exports[0].key).await;
    restore_with_standard_tools(&w, &object, "nomessages");
    assert_eq!(tables_in(&w.pg, "nomessages"), TABLES);
    assert_eq!(
        tables_with_rows(&w.pg, "nomessages"),
        vec!["chats", "projects", "sessions", "users"]
    );
}

#[tokio::test]
async fn a_profile_naming_a_missing_table_fails_clearly_and_writes_nothing() {
    let w = world(&[(
        "LIFEBOAT_EXPORT_PROFILES",
        r#"{"full": {}, "typo": {"include": ["userz"]}}"#,
    )])
    .await;
    let err = handle(&w.deps, scheduled("typo"), None).await.unwrap_err().to_string();
    assert!(
        err.contains("profile `typo` names table `userz`, which app-prod does not have"),
        "{err}"
    );
    assert!(keys(&w).await.is_empty());
    let err = handle(&w.deps, scheduled("weekly"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown export profile `weekly` (configured: full, typo)"),
        "{err}"
    );
}

/// pg_restore adds a foreign key after loading the rows; with the referenced rows left out of the archive it
/// fails, so such a profile is refused before anything is written, naming the key and both tables.
#[tokio::test]
async fn a_profile_that_leaves_out_the_rows_its_tables_reference_is_refused_before_writing() {
    let profiles = r#"{"full": {}, "projects-only": {"include": ["projects"]}, "no-users": {"exclude": ["users"]}}"#;
    let w = world(&[("LIFEBOAT_EXPORT_PROFILES", profiles)]).await;
    let err = handle(&w.deps, scheduled("projects-only"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "profile `projects-only` of app-prod exports the rows of \"public\".\"projects\" but not those of \
             \"public\".\"users\", which it references (foreign key `projects_owner_id_fkey`)"
        ),
        "{err}"
    );
    let err = handle(&w.deps, scheduled("no-users"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("but not those of \"public\".\"users\""), "{err}");
    assert!(keys(&w).await.is_empty());
    assert_eq!(multipart_uploads(&w).await, 0);
}

#[tokio::test]
async fn a_duplicate_invocation_for_the_same_time_makes_no_second_export() {
    let w = world(&[]).await;
    handle(&w.deps, scheduled("full"), None).await.unwrap();
    let before = keys(&w).await;
    assert_eq!(
        before.len(),
        3,
        "the dump, its manifest and the content watch's record: {before:?}"
    );
    let again = handle(&w.deps, scheduled("full"), None).await.unwrap();
    assert_eq!(again.exports[0].outcome, Outcome::AlreadyExported);
    assert_eq!(keys(&w).await, before);
}

#[tokio::test]
async fn an_export_that_cannot_finish_before_the_deadline_is_refused_up_front() {
    let w = world(&[("LIFEBOAT_EXPORT_MIB_PER_SECOND", "1")]).await;
    let err = handle(
        &w.deps,
        scheduled("full"),
        Some(Instant::now() + Duration::from_secs(30)),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("before the invocation's deadline"), "{err}");
    assert!(keys(&w).await.is_empty());
}

#[tokio::test]
async fn a_dump_whose_backend_is_terminated_halfway_leaves_nothing_and_reports_failure() {
    let w = world(&[]).await;
    // A table big enough that its COPY takes a while, so the dump can be cut in the middle of it.
    w.pg.psql(
        "app",
        "create table big as select g as id, repeat(md5(g::text), 8) as body from generate_series(1, 600000) g",
    )
    .unwrap();
    let url_pg = (w.pg.password.clone(), w.pg.port);
    let killer = std::thread::spawn(move || {
        let (password, port) = url_pg;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = Command::new(postgres::bin_dir().join("psql"))
                .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", SUPERUSER, "-d", "postgres", "-c"])
                .arg("select count(pg_terminate_backend(pid)) from pg_stat_activity where query like 'COPY public.big %' and pid <> pg_backend_pid()")
                .env("PGPASSWORD", &password)
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).trim() == "1" {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    });
    let err = handle(&w.deps, scheduled("full"), None).await.unwrap_err().to_string();
    assert!(
        killer.join().unwrap(),
        "the dump's COPY was never seen, so it was not cut"
    );
    assert!(err.contains("pg_dump failed"), "{err}");
    assert!(keys(&w).await.is_empty(), "no object and no manifest may remain");
    let uploads = w.deps.s3.list_multipart_uploads().bucket(BUCKET).send().await.unwrap();
    assert!(uploads.uploads().is_empty(), "the multipart upload was aborted");
}

async fn multipart_uploads(w: &World) -> usize {
    let out = w.deps.s3.list_multipart_uploads().bucket(BUCKET).send().await.unwrap();
    out.uploads().len()
}

#[tokio::test]
async fn a_secret_pointing_at_another_host_is_refused_without_echoing_its_password() {
    let w = world(&[("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "false")]).await;
    let rds = aws_sdk_rds::Client::new(&w.moto.config(REGION));
    let described = rds
        .describe_db_instances()
        .db_instance_identifier("app-prod")
        .send()
        .await
        .unwrap();
    let endpoint = described.db_instances()[0]
        .endpoint()
        .and_then(|e| e.address())
        .unwrap()
        .to_owned();
    let err = handle(&w.deps, scheduled("full"), None).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "secret lifeboat/app-prod names host `127.0.0.1`, which is not an endpoint of app-prod (expected {endpoint})"
        )),
        "{err}"
    );
    assert!(err.contains("LIFEBOAT_EXPORT_ALLOW_ANY_HOST=true"), "{err}");
    assert!(!err.contains(&w.pg.password), "the password is never echoed");
    assert!(keys(&w).await.is_empty());
    assert_eq!(multipart_uploads(&w).await, 0);
}

#[tokio::test]
async fn an_object_already_at_the_exports_key_is_never_overwritten() {
    let w = world(&[]).await;
    let key = "exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.dump.zst.age";
    w.deps
        .s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(b"an earlier run's object".to_vec().into())
        .send()
        .await
        .unwrap();
    let err = handle(&w.deps, scheduled("full"), None).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("{key} already exists without a manifest")),
        "{err}"
    );
    assert_eq!(get(&w, key).await, b"an earlier run's object");
    assert_eq!(keys(&w).await, vec![key.to_owned()], "no manifest is written");
    assert_eq!(multipart_uploads(&w).await, 0, "the upload was aborted");
}

/// A `LIFEBOAT_PG_DUMP` that answers `--version` as the real one and otherwise runs `body` (`$REAL` is the real
/// pg_dump), written into `dir`.
fn pg_dump_wrapper(dir: &std::path::Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let real = postgres::bin_dir().join("pg_dump").display().to_string();
    let path = dir.join("pg_dump");
    let script =
        format!("#!/bin/sh\nREAL='{real}'\nif [ \"$1\" = --version ]; then exec \"$REAL\" --version; fi\n{body}\n");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// The `ExportSuccess` values published for a database under the `full` profile.
async fn export_success(w: &World, db: &str) -> Vec<f64> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    let cw = aws_sdk_cloudwatch::Client::new(&w.moto.config(REGION));
    let now = std::time::SystemTime::now();
    let out = cw
        .get_metric_statistics()
        .namespace("Lifeboat")
        .metric_name("ExportSuccess")
        .dimensions(Dimension::builder().name("DBIdentifier").value(db).build())
        .dimensions(Dimension::builder().name("Profile").value("full").build())
        .start_time(DateTime::from(now - Duration::from_secs(600)))
        .end_time(DateTime::from(now + Duration::from_secs(600)))
        .period(60)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .unwrap();
    out.datapoints().iter().filter_map(|d| d.maximum()).collect()
}

#[tokio::test]
async fn an_export_still_running_at_the_deadline_stops_itself_aborts_and_reports() {
    let bin = tempfile::tempdir().unwrap();
    // Slower than any estimate: the dump is all there, then pg_dump does not exit for 40 s.
    let slow = pg_dump_wrapper(bin.path(), "\"$REAL\" \"$@\" || exit $?\nexec sleep 40");
    let w = world(&[
        ("LIFEBOAT_PG_DUMP", slow.as_str()),
        ("LIFEBOAT_EXPORT_MIB_PER_SECOND", "10000"),
    ])
    .await;
    let rds = aws_sdk_rds::Client::new(&w.moto.config(REGION));
    rds.create_db_instance()
        .db_instance_identifier("app-two")
        .db_instance_class("db.t4g.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("x")
        .master_user_password("not-a-real-password-1")
        .tags(Tag::builder().key("lifeboat:secret").value("lifeboat/app-prod").build())
        .tags(Tag::builder().key("lifeboat:backup").value("true").build())
        .send()
        .await
        .unwrap();
    // Admitted (the estimate is tiny and 64 s remain), then stopped at the 60 s margin.
    let started = Instant::now();
    let err = handle(
        &w.deps,
        scheduled("full"),
        Some(Instant::now() + Duration::from_secs(64)),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(err.contains("export failed for 2 of 2 databases"), "{err}");
    assert!(err.contains("stopped 60 s before the invocation's deadline"), "{err}");
    assert!(err.contains("use the ECS task"), "{err}");
    assert!(
        err.contains("not reached: an earlier export ran into the invocation's deadline"),
        "{err}"
    );
    assert!(keys(&w).await.is_empty(), "no object and no manifest");
    assert_eq!(multipart_uploads(&w).await, 0, "the upload was aborted");
    for db in ["app-prod", "app-two"] {
        assert_eq!(export_success(&w, db).await, vec![0.0], "{db}");
    }
}

#[tokio::test]
async fn a_pg_dump_that_fails_at_once_does_not_wait_for_the_row_counts() {
    let bin = tempfile::tempdir().unwrap();
    let failing = pg_dump_wrapper(
        bin.path(),
        "echo 'pg_dump: error: connection to server failed: FATAL: sorry, too many clients already' >&2\nexit 1",
    );
    let w = world(&[("LIFEBOAT_PG_DUMP", failing.as_str())]).await;
    // Another session holds a lock that blocks counting `users` for 25 s.
    let mut locker = Command::new(postgres::bin_dir().join("psql"))
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &w.pg.port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            "app",
            "-c",
        ])
        .arg("begin; lock table users in access exclusive mode; select pg_sleep(25); commit;")
        .env("PGPASSWORD", &w.pg.password)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let held = "select count(*) from pg_locks where mode = 'AccessExclusiveLock' and relation = 'users'::regclass";
    let until = Instant::now() + Duration::from_secs(10);
    while w.pg.psql("app", held).unwrap().trim() != "1" {
        assert!(Instant::now() < until, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let err = handle(&w.deps, scheduled("full"), None).await.unwrap_err().to_string();
    let took = started.elapsed();
    locker.kill().unwrap();
    locker.wait().unwrap();
    assert!(err.contains("pg_dump failed"), "{err}");
    assert!(err.contains("too many clients already"), "{err}");
    assert!(took < Duration::from_secs(15), "waited {took:?} for the counts");
    assert!(keys(&w).await.is_empty());
    assert_eq!(multipart_uploads(&w).await, 0);
}

/// Tables outside `public`, an enum, a domain, an extension's type, a large object, and a table whose name holds
/// a dot next to a schema of the same spelling.
const AWKWARD: &str = "
create extension citext;
create schema audit;
create type audit.level as enum ('info', 'alert');
create domain audit.positive as integer check (value > 0);
create table audit.events (id serial primary key, level audit.level not null, weight audit.positive,
                           actor citext not null);
insert into audit.events (level, weight, actor) select 'alert', g, 'User' || g from generate_series(1, 50) g;
create table public.\"my.table\" (v text);
insert into public.\"my.table\" values ('dotted'), ('name');
create schema my;
create table my.\"table\" (v text);
insert into my.\"table\" values ('schema-qualified');
select lo_from_bytea(0, 'a large object');
";

#[tokio::test]
async fn a_partial_export_restores_into_an_empty_database_with_its_types_schemas_and_large_objects() {
    let profiles = r#"{"full": {}, "partial": {"include": ["audit.events", "\"my.table\""]}}"#;
    let w = world(&[("LIFEBOAT_EXPORT_PROFILES", profiles)]).await;
    w.pg.psql("app", AWKWARD).unwrap();
    let summary = handle(&w.deps, scheduled("partial"), None).await.unwrap();
    let report = &summary.exports[0];
    let manifest: Manifest = serde_json::from_slice(&get(&w, &report.manifest_key).await).unwrap();
    let counted: Vec<(&str, &str, i64)> = manifest
        .tables
        .iter()
        .map(|t| (t.schema.as_str(), t.name.as_str(), t.rows))
        .collect();
    assert_eq!(counted, vec![("audit", "events", 50), ("public", "my.table", 2)]);
    assert_eq!(manifest.large_objects, 1);

    // pg_restore --exit-on-error into a new, empty database: every type, schema and extension comes along.
    restore_with_standard_tools(&w, &get(&w, &report.key).await, "partial");
    for table in ["audit.events", "public.\"my.table\""] {
        assert_eq!(
            table_fingerprint(&w.pg, "app", table),
            table_fingerprint(&w.pg, "partial", table),
            "{table}"
        );
    }
    assert_eq!(
        table_fingerprint(&w.pg, "partial", "my.\"table\"").split(':').next(),
        Some("0")
    );
    assert_eq!(
        table_fingerprint(&w.pg, "partial", "users").split(':').next(),
        Some("0")
    );
    let lo = "select convert_from(lo_get(oid), 'UTF8') from pg_largeobject_metadata";
    assert_eq!(w.pg.psql("partial", lo).unwrap().trim(), "a large object");
}

#[test]
fn every_export_event_parses() {
    let dir = repo_root().join("events/export");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        export::event::parse(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(
        n >= 2,
        "sample events for the schedule and a manual export in {}",
        dir.display()
    );
}

/// Rows the COPY text format makes awkward to count: NULLs, newlines, carriage returns, tabs and backslashes in
/// text, a value that reads `\.`, empty strings, a table without columns (each row an empty line), an empty
/// table, a partitioned table whose partitions hold the rows (one partition empty), and a table a profile
/// leaves out.
const AWKWARD_ROWS: &str = r"
create table public.texts (id int, t text, n int);
insert into public.texts values (1, null, null), (2, E'line\nbreak', 2), (3, E'back\\slash \\. tab\t end', 3),
  (4, '', 4), (5, E'\\.', 5), (6, E'\r\n', 6), (7, E'\\.\n\\.', 7);
create table public.nocols ();
insert into public.nocols default values;
insert into public.nocols default values;
insert into public.nocols default values;
create table public.empty_strings (v text);
insert into public.empty_strings values (''), (''), (null);
create table public.empty (v int);
create table public.measurements (at date not null, v int) partition by range (at);
create table public.measurements_2025 partition of public.measurements
  for values from ('2025-01-01') to ('2026-01-01');
create table public.measurements_2026 partition of public.measurements
  for values from ('2026-01-01') to ('2027-01-01');
create table public.measurements_2027 partition of public.measurements
  for values from ('2027-01-01') to ('2028-01-01');
insert into public.measurements select date '2025-01-01' + g * 3, g from generate_series(0, 199) g;
create table public.left_out (v int);
insert into public.left_out select generate_series(1, 10);
";

/// `count(*)` of every ordinary table of `db`, by schema and name.
fn count_star(pg: &Postgres, db: &str) -> BTreeMap<(String, String), i64> {
    let sql = "select n.nspname, c.relname, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c \
               from %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint \
               from pg_class c join pg_namespace n on n.oid = c.relnamespace \
               where c.relkind = 'r' and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%'";
    pg.psql(db, sql)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            ((f[0].to_owned(), f[1].to_owned()), f[2].parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn row_counts_read_from_the_archive_stream_equal_count_star_on_every_awkward_feature() {
    let profiles = r#"{"full": {}, "most": {"exclude": ["left_out"]}}"#;
    let w = world(&[("LIFEBOAT_EXPORT_PROFILES", profiles)]).await;
    w.pg.psql("app", AWKWARD).unwrap();
    w.pg.psql("app", AWKWARD_ROWS).unwrap();
    let expected = count_star(&w.pg, "app");
    assert_eq!(expected[&("public".to_owned(), "nocols".to_owned())], 3);
    assert_eq!(expected[&("public".to_owned(), "measurements_2027".to_owned())], 0);

    // The parser alone, on pg_dump's own archive (the export's flags): every table, every row.
    let dump = Command::new(postgres::bin_dir().join("pg_dump"))
        .args([
            "--format=custom",
            "--compress=0",
            "-h",
            "127.0.0.1",
            "-p",
            &w.pg.port.to_string(),
        ])
        .args(["-U", SUPERUSER, "-d", "app"])
        .env("PGPASSWORD", &w.pg.password)
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let streamed: BTreeMap<(String, String), i64> = lifeboat::postgres::dump_format::count_rows(&dump.stdout[..])
        .unwrap()
        .into_iter()
        .map(|t| ((t.schema, t.name), i64::try_from(t.rows).unwrap()))
        .collect();
    assert_eq!(streamed, expected);

    // The export's manifest: the same exact counts, and none for the table the profile leaves out.
    let summary = handle(&w.deps, scheduled("most"), None).await.unwrap();
    let report = &summary.exports[0];
    assert_eq!(report.outcome, Outcome::Exported, "{:?}", report.error);
    let manifest: Manifest = serde_json::from_slice(&get(&w, &report.manifest_key).await).unwrap();
    let recorded: BTreeMap<(String, String), i64> = manifest
        .tables
        .iter()
        .map(|t| ((t.schema.clone(), t.name.clone()), t.rows))
        .collect();
    let mut without_left_out = expected.clone();
    without_left_out.remove(&("public".to_owned(), "left_out".to_owned()));
    assert_eq!(recorded, without_left_out);
    assert_eq!(manifest.large_objects, 1);
}
