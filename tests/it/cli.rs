//! The `lifeboat` terminal tool as a user runs it: the real binary as a process, real arguments, against moto's
//! server and a real PostgreSQL, on exports the `export` function made. Its exit codes and output are checked,
//! and that no password ever appears in them.
//!
//! The binary is `target/<profile>/lifeboat`, built by `cargo build -p lifeboat-cli` (and by `cargo test
//! --workspace`, which builds it for the cli crate's own tests). It is found next to this test executable's
//! directory, because a test crate cannot depend on another package's binary (`CARGO_BIN_EXE_*` exists only for
//! a package's own binaries, and moving these tests into `cli/` would make it depend on a function crate).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use aws_sdk_rds::types::Tag;
use export::settings::ExportSettings;
use export::{handle, Deps};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{self, Postgres, SUPERUSER};
use lifeboat_tests::repo_root;
use serde_json::json;

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const TABLES: [&str; 5] = ["chats", "messages", "projects", "sessions", "users"];

struct World {
    moto: Moto,
    pg: Postgres,
    deps: Deps,
    key_file: PathBuf,
    dir: tempfile::TempDir,
}

pub(crate) fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|deps| deps.parent()).unwrap().join("lifeboat");
    assert!(
        path.exists(),
        "{} does not exist: build the CLI first with `cargo build -p lifeboat-cli`",
        path.display()
    );
    path
}

/// `lifeboat` with `args`, its environment pointed at the moto at `endpoint` and nothing else of the caller's
/// (no AWS configuration files: `dir` holds none).
pub(crate) fn command(endpoint: &str, dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
        .stdin(Stdio::null());
    cmd
}

fn write_identity(dir: &std::path::Path, name: &str, id: &age::x25519::Identity) -> PathBuf {
    use age::secrecy::ExposeSecret;
    let path = dir.join(name);
    let text = format!("# public key: {}\n{}\n", id.to_public(), id.to_string().expose_secret());
    std::fs::write(&path, text).unwrap();
    path
}

/// moto, PostgreSQL with the demo database `app`, and one `full` export of it made by the export function.
async fn world() -> World {
    world_with("select 1").await
}

/// [`world`], with `sql` run in `app` before the export.
async fn world_with(sql: &str) -> World {
    let moto = Moto::start();
    let pg = Postgres::start();
    pg.psql("postgres", "create database app").unwrap();
    pg.load_file("app", &repo_root().join("tests/demo/app.sql")).unwrap();
    pg.psql("app", sql).unwrap();
    let config = moto.config(REGION);
    aws_sdk_s3::Client::new(&config)
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let secret = json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port, "username": SUPERUSER,
                        "password": pg.password, "dbname": "app"});
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("lifeboat/app-prod")
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
    aws_sdk_rds::Client::new(&config)
        .create_db_instance()
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
    let dir = tempfile::tempdir().unwrap();
    let key_file = write_identity(dir.path(), "key.txt", &identity);
    let bin = postgres::bin_dir();
    let vars: BTreeMap<String, String> = [
        ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
        ("LIFEBOAT_DB_SSLMODE", "disable".to_owned()),
        ("LIFEBOAT_AGE_RECIPIENTS", identity.to_public().to_string()),
        // The fleet's secrets point at the local PostgreSQL, not at the endpoints moto makes up.
        ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned()),
        ("LIFEBOAT_PG_DUMP", bin.join("pg_dump").display().to_string()),
        ("LIFEBOAT_PG_RESTORE", bin.join("pg_restore").display().to_string()),
        ("LIFEBOAT_EXPORT_PROFILES", r#"{"full": {}}"#.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = ExportSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
    let deps = Deps::new(&config, settings);
    handle(&deps, json!({"profile": "full", "time": "2026-11-22T02:00:00Z"}), None)
        .await
        .unwrap();
    World {
        moto,
        pg,
        deps,
        key_file,
        dir,
    }
}

impl World {
    /// Runs `lifeboat` with the AWS environment pointed at moto and nothing else of the caller's.
    fn lifeboat(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        self.assert_no_password(&out);
        out
    }

    fn assert_no_password(&self, out: &Output) {
        let (stdout, stderr) = texts(out);
        assert!(
            !stdout.contains(&self.pg.password) && !stderr.contains(&self.pg.password),
            "a password was printed:\n{stdout}\n{stderr}"
        );
    }

    /// `lifeboat` with `args`, its environment pointed at moto and nothing else of the caller's.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = command(&self.moto.endpoint, self.dir.path(), args);
        cmd.env("LIFEBOAT_BUCKET", BUCKET)
            .env("LIFEBOAT_PG_RESTORE", postgres::bin_dir().join("pg_restore"));
        cmd
    }

    fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{db}?sslmode=disable",
            self.pg.password, self.pg.port
        )
    }

    fn restore(&self, into: &str, extra: &[&str]) -> Output {
        let out = self.restore_command(into, extra).output().unwrap();
        self.assert_no_password(&out);
        out
    }

    fn restore_command(&self, into: &str, extra: &[&str]) -> Command {
        let url = self.url(into);
        let key = self.key_file.display().to_string();
        let mut args = vec!["restore", "app-prod", "--into", &url, "--identity-file", &key];
        args.extend_from_slice(extra);
        self.command(&args)
    }

    fn exists(&self, db: &str) -> bool {
        let n = self
            .pg
            .psql(
                "postgres",
                &format!("select count(*) from pg_database where datname = '{db}'"),
            )
            .unwrap();
        n == "1"
    }

    async fn manifest_key(&self) -> String {
        let out = self.deps.s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key())
            .find(|k| k.ends_with(".manifest.json"))
            .unwrap()
            .to_owned()
    }
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn fingerprint(pg: &Postgres, db: &str, table: &str) -> String {
    pg.psql(
        db,
        &format!(
            "select count(*) || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from {table} t"
        ),
    )
    .unwrap()
}

fn tables_in(pg: &Postgres, db: &str) -> String {
    pg.psql(
        db,
        "select string_agg(tablename, ',' order by tablename) from pg_tables where schemaname = 'public'",
    )
    .unwrap()
}

#[tokio::test]
async fn a_table_and_the_whole_database_restore_from_the_latest_export_equal_the_source() {
    let w = world().await;
    let out = w.lifeboat(&["exports", "app-prod"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(code(&out), 0, "{stderr}");
    assert!(
        stdout.contains("2026-11-22T02:00:00Z") && stdout.contains("full"),
        "{stdout}"
    );
    assert!(stdout.contains(&w.manifest_key().await), "{stdout}");

    let out = w.restore("app_users", &["--latest", "--table", "USERS"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(code(&out), 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("public.users: 250 rows"), "{stdout}");
    assert!(stdout.contains("stages: download"), "{stdout}");
    assert!(
        stderr.contains("download") && stderr.contains("MiB"),
        "progress on stderr: {stderr}"
    );
    assert!(stdout.contains("***"), "the URL is shown redacted: {stdout}");
    assert!(
        stdout.contains("owned by role app_users_owner"),
        "the CLI restores through the same owner role as the console: {stdout}"
    );
    assert_eq!(
        w.pg.psql(
            "postgres",
            "select pg_get_userbyid(datdba) || ' ' || has_database_privilege('public', oid, 'connect') \
             from pg_database where datname = 'app_users'"
        )
        .unwrap(),
        "app_users_owner false"
    );
    assert_eq!(tables_in(&w.pg, "app_users"), "users");
    assert_eq!(
        fingerprint(&w.pg, "app", "users"),
        fingerprint(&w.pg, "app_users", "users")
    );

    let workdir = w.dir.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    let work = workdir.display().to_string();
    let out = w.restore(
        "app_all",
        &["--before", "2026-11-22T12:00Z", "--jobs", "2", "--workdir", &work],
    );
    assert_eq!(code(&out), 0, "{:?}", texts(&out));
    assert_eq!(
        std::fs::read_dir(&workdir).unwrap().count(),
        0,
        "the --jobs file is removed"
    );
    for table in TABLES {
        assert_eq!(
            fingerprint(&w.pg, "app", table),
            fingerprint(&w.pg, "app_all", table),
            "{table}"
        );
    }

    let key = w.manifest_key().await;
    let id = w.key_file.display().to_string();
    let out = w.lifeboat(&["verify", &key, "--identity-file", &id]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(code(&out), 0, "{stderr}");
    assert!(stdout.contains("pg_restore parsed the whole archive"), "{stdout}");
}

#[tokio::test]
async fn a_tampered_object_and_a_wrong_identity_are_refused_leaving_nothing() {
    let w = world().await;
    let wrong = write_identity(w.dir.path(), "wrong.txt", &age::x25519::Identity::generate());
    let url = w.url("app_wrong");
    let wrong = wrong.display().to_string();
    let out = w.lifeboat(&["restore", "app-prod", "--into", &url, "--identity-file", &wrong]);
    let (_, stderr) = texts(&out);
    assert_eq!(code(&out), 4, "refused: {stderr}");
    assert!(stderr.contains("wrong identity"), "{stderr}");
    assert!(!w.exists("app_wrong"));

    // One byte changed in the middle of the stored object.
    let key = w.manifest_key().await.replace(".manifest.json", ".dump.zst.age");
    let object = w.deps.s3.get_object().bucket(BUCKET).key(&key).send().await.unwrap();
    let mut bytes = object.body.collect().await.unwrap().into_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    w.deps
        .s3
        .put_object()
        .bucket(BUCKET)
        .key(&key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
    let out = w.restore("app_tampered", &["--report"]);
    let (_, stderr) = texts(&out);
    assert_eq!(code(&out), 5, "verification failed: {stderr}");
    assert!(stderr.contains("stored checksum failed"), "{stderr}");
    let report_key = stderr
        .lines()
        .find_map(|l| l.strip_prefix(&format!("report: s3://{BUCKET}/")))
        .unwrap_or_else(|| panic!("--report says where the report went: {stderr}"));
    let object = w
        .deps
        .s3
        .get_object()
        .bucket(BUCKET)
        .key(report_key)
        .send()
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(report["by"], "lifeboat");
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["failed_check"], "stored-checksum");
    assert_eq!(report["target_server"], "127.0.0.1");
    assert!(!w.exists("app_tampered"), "the half-restored database is dropped");

    let manifest = w.manifest_key().await;
    let id = w.key_file.display().to_string();
    let out = w.lifeboat(&["verify", &manifest, "--identity-file", &id]);
    assert_eq!(code(&out), 5, "verification failed");
    assert!(texts(&out).1.contains("stored checksum failed"), "{:?}", texts(&out));
    let out = w.lifeboat(&["verify", &manifest, "--identity-file", &id, "--json"]);
    assert_eq!(code(&out), 5);
    let d = doc(&out);
    assert_eq!(d["error"]["kind"], "verification-failed");
    assert_eq!(d["error"]["check"], "stored-checksum");
}

#[tokio::test]
async fn an_existing_target_an_unknown_table_and_bad_usage_are_refused() {
    let w = world().await;
    w.pg.psql("postgres", "create database taken").unwrap();
    w.pg.psql("taken", "create table keep (x int); insert into keep values (1)")
        .unwrap();
    let out = w.restore("taken", &[]);
    let (_, stderr) = texts(&out);
    assert_eq!(code(&out), 4, "refused: {stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(
        w.pg.psql("taken", "select count(*) from keep").unwrap(),
        "1",
        "left untouched"
    );

    let out = w.restore("app_typo", &["--table", "userz"]);
    let (_, stderr) = texts(&out);
    assert_eq!(code(&out), 4, "refused: {stderr}");
    assert!(stderr.contains("close matches: public.users"), "{stderr}");
    assert!(!w.exists("app_typo"));

    let out = w.lifeboat(&["restore", "app-prod"]);
    assert_eq!(code(&out), 2, "{:?}", texts(&out));
    assert!(texts(&out).1.contains("--into"), "{:?}", texts(&out));
    let out = w.lifeboat(&["restore", "--help"]);
    assert_eq!(code(&out), 0);
    assert!(texts(&out).0.contains("Example"));
    let out = w.lifeboat(&["exports", "no-such-db"]);
    assert_eq!(code(&out), 0);
    assert!(
        texts(&out).1.contains("no complete export of no-such-db"),
        "{:?}",
        texts(&out)
    );
}

/// A table big enough that its restore takes a few seconds (about 300 MB of rows).
const BIG_TABLE: &str = "create table big as select g as id, md5(g::text) || repeat(md5((g * 7)::text), 6) as payload \
                         from generate_series(1, 1000000) g";

#[tokio::test]
async fn ctrl_c_during_a_restore_drops_the_database_it_created_and_exits_130() {
    let w = world_with(BIG_TABLE).await;
    let mut child = w
        .restore_command("app_interrupted", &["--table", "big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-restore: the new database exists and pg_restore has created the table it is filling.
    let started = std::time::Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the restore ended before it could be interrupted: make BIG_TABLE bigger"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the restore never started"
        );
        let filling = w.exists("app_interrupted")
            && w.pg
                .psql(
                    "app_interrupted",
                    "select count(*) from pg_tables where tablename = 'big'",
                )
                .is_ok_and(|n| n == "1");
        if filling {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    w.assert_no_password(&out);
    let (stdout, stderr) = texts(&out);
    assert_eq!(code(&out), 130, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("interrupted (Ctrl-C): the restore into app_interrupted stopped, and the database it had created was dropped"),
        "{stderr}"
    );
    assert!(!w.exists("app_interrupted"), "the half-restored database is dropped");
    assert_eq!(
        w.pg.psql(
            "postgres",
            "select count(*) from pg_roles where rolname = 'app_interrupted_owner'"
        )
        .unwrap(),
        "0",
        "and so is its role"
    );
    assert!(!stdout.contains("restored "), "{stdout}");
}

/// Parses the one JSON document `--json` prints on stdout.
fn doc(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {:?}", texts(out)))
}

/// The HTTP methods of the requests moto logged after the first `from` bytes of its log.
fn methods_since(moto: &Moto, from: usize) -> Vec<String> {
    // The log is written after each answer: give the last one a moment to land.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = moto.log_text();
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let request = line.split_once('"')?.1;
            let (method, rest) = request.split_once(' ')?;
            rest.starts_with('/').then(|| method.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn with_json_exports_restore_and_verify_print_one_document_of_the_documented_shape() {
    let w = world().await;
    let key = w.manifest_key().await;
    let out = w.lifeboat(&["exports", "app-prod", "--json"]);
    assert_eq!(code(&out), 0, "{:?}", texts(&out));
    let d = doc(&out);
    assert_eq!(d["command"], "exports");
    assert_eq!(d["database"], "app-prod");
    assert_eq!(d["bucket"], BUCKET);
    assert_eq!(d["exports"].as_array().unwrap().len(), 1);
    let e = &d["exports"][0];
    assert_eq!(e["manifest"], key.as_str());
    assert_eq!(e["time"], "2026-11-22T02:00:00Z");
    assert_eq!(e["export_profile"], "full");
    assert_eq!(e["tables"], TABLES.len());
    assert_eq!(e["encrypted"], true);
    assert!(e["stored_bytes"].as_u64().unwrap() > 0);

    let out = w.lifeboat(&["--json", "exports", "no-such-db"]);
    assert_eq!(code(&out), 0);
    assert_eq!(doc(&out)["exports"], json!([]));

    let out = w.restore("app_json", &["--table", "users", "--json"]);
    assert_eq!(code(&out), 0, "{:?}", texts(&out));
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("download"), "progress stays on stderr: {stderr}");
    let d = doc(&out);
    assert_eq!(d["command"], "restore");
    assert_eq!(d["dry_run"], false);
    assert_eq!(d["database"], "app-prod");
    assert_eq!(d["export"]["manifest"], key.as_str());
    assert_eq!(d["target"]["database"], "app_json");
    assert_eq!(d["target"]["owner_role"], "app_json_owner");
    assert!(d["target"]["url"].as_str().unwrap().contains(":***@"), "{d}");
    assert_eq!(
        d["tables"],
        json!([{"schema": "public", "name": "users", "expected_rows": 250, "restored_rows": 250}])
    );
    assert!(d["stages"]["download_seconds"].is_number(), "{d}");
    assert_eq!(d["report"], serde_json::Value::Null);
    assert!(w.exists("app_json"));

    let id = w.key_file.display().to_string();
    let out = w.lifeboat(&["verify", &key, "--identity-file", &id, "--json"]);
    assert_eq!(code(&out), 0, "{:?}", texts(&out));
    let d = doc(&out);
    assert_eq!(d["command"], "verify");
    assert_eq!(d["verified"], true);
    assert_eq!(d["database"], "app-prod");
    assert_eq!(d["export"]["manifest"], key.as_str());
    assert_eq!(d["stored"]["bytes"], d["export"]["stored_bytes"]);
    assert_eq!(d["plaintext"]["sha256"].as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn what_does_not_exist_exits_3_and_says_so_in_json() {
    let w = world().await;
    let out = w.lifeboat(&["--json", "restore", "no-such-db", "--into", &w.url("app_none")]);
    assert_eq!(code(&out), 3, "{:?}", texts(&out));
    let d = doc(&out);
    assert_eq!(d["error"]["kind"], "not-found");
    assert_eq!(d["error"]["exit_code"], 3);
    assert_eq!(d["error"]["check"], "export");
    assert!(
        d["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no complete export of no-such-db"),
        "{d}"
    );
    let out = w.restore("app_none", &["--before", "2020-01-01T00:00Z"]);
    assert_eq!(code(&out), 3, "{:?}", texts(&out));

    let missing = w.manifest_key().await.replace("20261122T02", "20261121T02");
    let id = w.key_file.display().to_string();
    let out = w.lifeboat(&["verify", &missing, "--identity-file", &id, "--json"]);
    assert_eq!(code(&out), 3, "{:?}", texts(&out));
    assert!(
        doc(&out)["error"]["message"].as_str().unwrap().contains("no manifest"),
        "{:?}",
        texts(&out)
    );
    let out = w.restore("app_none", &["--manifest", &missing]);
    assert_eq!(code(&out), 3, "{:?}", texts(&out));

    let key = w.manifest_key().await;
    let gone = w.dir.path().join("no-such-key.txt").display().to_string();
    let out = w.lifeboat(&["verify", &key, "--identity-file", &gone]);
    assert_eq!(code(&out), 3, "{:?}", texts(&out));
    let out = w.lifeboat(&["verify", &key, "--identity-secret", "lifeboat/no-such-secret", "--json"]);
    assert_eq!(code(&out), 3, "{:?}", texts(&out));
    assert_eq!(doc(&out)["error"]["kind"], "not-found");
    let out = w.lifeboat(&["exports", "app-prod", "--bucket", "no-such-bucket"]);
    assert_eq!(code(&out), 3, "{:?}", texts(&out));
    assert!(!w.exists("app_none"));
}

#[tokio::test]
async fn a_dry_run_checks_everything_prints_the_plan_and_only_reads() {
    let w = world().await;
    let key = w.manifest_key().await;
    let workdir = w.dir.path().display().to_string();
    let dry = [
        "--table",
        "users",
        "--report",
        "--jobs",
        "2",
        "--workdir",
        &workdir,
        "--dry-run",
    ];
    let before = w.moto.log_text().len();
    let out = w.restore("app_dry", &[&dry[..], &["--json"]].concat());
    assert_eq!(code(&out), 0, "{:?}", texts(&out));
    let methods = methods_since(&w.moto, before);
    assert!(!methods.is_empty(), "the dry run read the bucket");
    assert!(
        methods.iter().all(|m| m == "GET" || m == "HEAD"),
        "a dry run only reads: {methods:?}"
    );
    let d = doc(&out);
    assert_eq!(d["command"], "restore");
    assert_eq!(d["dry_run"], true);
    assert_eq!(d["export"]["manifest"], key.as_str());
    assert_eq!(
        d["would_create"],
        json!({"database": "app_dry", "role": "app_dry_owner"})
    );
    assert_eq!(
        d["tables"],
        json!([{"schema": "public", "name": "users", "expected_rows": 250}])
    );
    assert_eq!(d["mode"]["jobs"], 2);
    assert_eq!(d["would_write_report"], true);
    assert!(!w.exists("app_dry"), "nothing was created");
    assert_eq!(
        w.pg.psql(
            "postgres",
            "select count(*) from pg_roles where rolname = 'app_dry_owner'"
        )
        .unwrap(),
        "0"
    );
    let reports = w
        .deps
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("reports/")
        .send()
        .await
        .unwrap();
    assert!(reports.contents().is_empty(), "no report was written");

    let out = w.restore("app_dry", &dry);
    let (stdout, _) = texts(&out);
    assert_eq!(code(&out), 0);
    assert!(
        stdout.starts_with("dry run: nothing was created\nwould restore "),
        "{stdout}"
    );
    assert!(stdout.contains("public.users: 250 rows expected"), "{stdout}");

    // What the dry run refuses, the restore would refuse: a target that exists, a table that does not.
    w.pg.psql("postgres", "create database taken").unwrap();
    let out = w.restore("taken", &["--dry-run", "--json"]);
    assert_eq!(code(&out), 4, "{:?}", texts(&out));
    assert_eq!(doc(&out)["error"]["check"], "target-exists");
    let out = w.restore("app_dry", &["--dry-run", "--table", "userz"]);
    assert_eq!(code(&out), 4, "{:?}", texts(&out));
    let wrong = format!(
        "postgres://{SUPERUSER}:not-the-password@127.0.0.1:{}/app_dry?sslmode=disable",
        w.pg.port
    );
    let key_file = w.key_file.display().to_string();
    let out = w.lifeboat(&[
        "restore",
        "app-prod",
        "--into",
        &wrong,
        "--identity-file",
        &key_file,
        "--dry-run",
        "--json",
    ]);
    assert_eq!(code(&out), 4, "a server that refuses the login: {:?}", texts(&out));
    assert_eq!(doc(&out)["error"]["check"], "target");

    // The same command without --dry-run does write (so the log above would have shown it).
    let before = w.moto.log_text().len();
    let out = w.restore("app_dry", &["--table", "users", "--report"]);
    assert_eq!(code(&out), 0, "{:?}", texts(&out));
    assert!(methods_since(&w.moto, before).iter().any(|m| m == "PUT"));
    assert!(w.exists("app_dry"));
}
