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
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_ENDPOINT_URL", &self.moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_CONFIG_FILE", self.dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join("no-aws-credentials"),
            )
            .env("LIFEBOAT_BUCKET", BUCKET)
            .env("LIFEBOAT_PG_RESTORE", postgres::bin_dir().join("pg_restore"))
            .stdin(Stdio::null());
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
    assert_eq!(code(&out), 1, "{stderr}");
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
    assert_eq!(code(&out), 1, "{stderr}");
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
    assert_eq!(code(&out), 1);
    assert!(texts(&out).1.contains("stored checksum failed"), "{:?}", texts(&out));
}

#[tokio::test]
async fn an_existing_target_an_unknown_table_and_bad_usage_are_refused() {
    let w = world().await;
    w.pg.psql("postgres", "create database taken").unwrap();
    w.pg.psql("taken", "create table keep (x int); insert into keep values (1)")
        .unwrap();
    let out = w.restore("taken", &[]);
    let (_, stderr) = texts(&out);
    assert_eq!(code(&out), 1, "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(
        w.pg.psql("taken", "select count(*) from keep").unwrap(),
        "1",
        "left untouched"
    );

    let out = w.restore("app_typo", &["--table", "userz"]);
    let (_, stderr) = texts(&out);
    assert_eq!(code(&out), 1, "{stderr}");
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
