//! The `restore` function's `restore-export` action against moto (RDS, S3, Secrets Manager) and a real
//! PostgreSQL, on an age-encrypted export the `export` function made of the local `app` database (which the
//! `app-prod` instance's secret points at). The restore goes into a new database on the same server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_rds::types::Tag;
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{self, Postgres, SUPERUSER};
use lifeboat_tests::repo_root;
use restore::settings::RestoreSettings;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";

struct World {
    moto: Moto,
    pg: Postgres,
    s3: aws_sdk_s3::Client,
    deps: restore::Deps,
}

/// `app-prod` (its secret points at the local `app`), the age identity in Secrets Manager, and one complete
/// `full` export made by the export function.
async fn world() -> World {
    world_with(&[]).await
}

/// [`world`], with more settings for the restore function. The restore function may connect to the secret's
/// host (the local server) although it is not the endpoint moto makes up, as the export may.
async fn world_with(restore_settings: &[(&str, String)]) -> World {
    let mut settings = vec![("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned())];
    settings.extend(restore_settings.iter().cloned());
    world_planted(&settings, |_| {}).await
}

/// [`world`], with exactly these restore settings, and `plant` run on the source server before the export.
async fn world_planted(restore_settings: &[(&str, String)], plant: impl FnOnce(&Postgres)) -> World {
    let moto = Moto::start();
    let pg = Postgres::start();
    pg.psql("postgres", "create database app").unwrap();
    pg.load_file("app", &repo_root().join("tests/demo/app.sql")).unwrap();
    plant(&pg);
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let secret = json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port, "username": SUPERUSER,
                        "password": pg.password, "dbname": "app"});
    sm.create_secret()
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
        .master_username("app_admin")
        .master_user_password("not-a-real-password-1")
        .tags(Tag::builder().key("lifeboat:secret").value("lifeboat/app-prod").build())
        .tags(Tag::builder().key("lifeboat:backup").value("true").build())
        .send()
        .await
        .unwrap();
    let identity = age::x25519::Identity::generate();
    {
        use age::secrecy::ExposeSecret;
        sm.create_secret()
            .name("lifeboat/age-identity")
            .secret_string(identity.to_string().expose_secret())
            .send()
            .await
            .unwrap();
    }
    let bin = postgres::bin_dir();
    let vars = |extra: &[(&str, String)]| -> BTreeMap<String, String> {
        [
            ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
            ("LIFEBOAT_DB_SSLMODE", "disable".to_owned()),
            ("LIFEBOAT_PG_DUMP", bin.join("pg_dump").display().to_string()),
            ("LIFEBOAT_PG_RESTORE", bin.join("pg_restore").display().to_string()),
        ]
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (*k, v.clone())))
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    };
    // The fleet's secrets point at the local PostgreSQL, not at the endpoints moto makes up.
    let export_vars = vars(&[
        ("LIFEBOAT_AGE_RECIPIENTS", identity.to_public().to_string()),
        ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned()),
    ]);
    let settings = export::settings::ExportSettings::from_env(&move |n: &str| export_vars.get(n).cloned()).unwrap();
    let summary = export::handle(
        &export::Deps::new(&config, settings),
        json!({"profile": "full", "time": "2026-11-22T02:00:00Z"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(summary.failed, 0, "{summary:?}");
    let mut restore_settings = restore_settings.to_vec();
    restore_settings.push(("LIFEBOAT_AGE_IDENTITY_SECRET", "lifeboat/age-identity".to_owned()));
    // restore-export is the console's action.
    restore_settings.push(("LIFEBOAT_RESTORE_ENTRY", "console".to_owned()));
    let restore_vars = vars(&restore_settings);
    let settings = RestoreSettings::from_env(&move |n: &str| restore_vars.get(n).cloned()).unwrap();
    let deps = restore::Deps::new(&config, settings);
    World { moto, pg, s3, deps }
}

impl World {
    async fn restore(&self, event: Value, deadline: Option<Instant>) -> Result<Value, String> {
        restore::handle(&self.deps, event, deadline)
            .await
            .map_err(|e| e.to_string())
    }

    fn exists(&self, db: &str) -> bool {
        let sql = format!("select count(*) from pg_database where datname = '{db}'");
        self.pg.psql("postgres", &sql).unwrap() == "1"
    }

    fn databases(&self) -> String {
        self.pg
            .psql(
                "postgres",
                "select string_agg(datname, ',' order by datname) from pg_database",
            )
            .unwrap()
    }

    /// A restore report, read back from the bucket.
    async fn report(&self, key: &str) -> Value {
        let object = self.s3.get_object().bucket(BUCKET).key(key).send().await.unwrap();
        serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap()
    }

    /// Every restore report of app-prod, oldest first.
    async fn reports(&self) -> Vec<Value> {
        let prefix = lifeboat::bucket::layout::restore_export_report_prefix("app-prod");
        let out = self
            .s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        keys.sort();
        let mut reports = Vec::new();
        for key in keys {
            reports.push(self.report(&key).await);
        }
        reports
    }

    async fn stored_key(&self) -> String {
        let out = self.s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key())
            .find(|k| k.ends_with(".dump.zst.age"))
            .unwrap()
            .to_owned()
    }
}

/// Row count and an MD5 over the table's rows in a fixed order: equal fingerprints, equal contents.
fn fingerprint(pg: &Postgres, db: &str, table: &str) -> String {
    pg.psql(
        db,
        &format!(
            "select count(*) || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from {table} t"
        ),
    )
    .unwrap()
}

fn event(into: &str, tables: &[&str]) -> Value {
    json!({"action": "restore-export", "database": "app-prod", "export": "latest", "profile": "full",
           "tables": tables, "into": {"database": into}})
}

#[tokio::test]
async fn a_single_table_restores_into_a_new_database_equal_to_the_source() {
    let w = world().await;
    let source_before = fingerprint(&w.pg, "app", "users");
    let out = w.restore(event("app_users_restore", &["USERS"]), None).await.unwrap();

    assert_eq!(
        fingerprint(&w.pg, "app_users_restore", "users"),
        source_before,
        "the restored table equals the source's"
    );
    let restored = w.pg.psql(
        "app_users_restore",
        "select string_agg(schemaname || '.' || tablename, ',') from pg_tables where schemaname = 'public'",
    );
    assert_eq!(restored.unwrap(), "public.users", "only the table asked for");
    assert_eq!(
        fingerprint(&w.pg, "app", "users"),
        source_before,
        "the source is untouched"
    );

    assert!(
        out["export"]["manifest"].as_str().unwrap().ends_with(".manifest.json"),
        "{out}"
    );
    assert_eq!(out["export"]["logical_time"], "2026-11-22T02:00:00Z");
    assert_eq!(out["export"]["profile"], "full");
    assert_eq!(out["target"]["instance"], "app-prod");
    assert_eq!(out["target"]["database"], "app_users_restore");
    assert_eq!(
        out["tables"],
        json!([{"table": "public.users", "expected_rows": 250, "restored_rows": 250}])
    );
    assert_eq!(out["verified"], true);
    for stage in ["prepare", "download", "decrypt", "restore", "verify"] {
        assert!(
            out["durations"][format!("{stage}_seconds")].as_f64().unwrap() >= 0.0,
            "{stage}: {out}"
        );
    }
    assert!(out["rto_seconds"].as_f64().unwrap() > 0.0, "{out}");
    assert!(!out.to_string().contains(&w.pg.password), "no password in the result");

    let key = out["report"].as_str().unwrap();
    assert!(key.starts_with("reports/restore-export/app-prod/"), "{key}");
    let report = w.report(key).await;
    assert_eq!(report["outcome"], "restored");
    assert_eq!(report["by"], "restore-export");
    assert_eq!(report["source"], "app-prod");
    assert_eq!(report["export_manifest"], out["export"]["manifest"]);
    assert_eq!(report["target_database"], "app_users_restore");
    assert_eq!(
        report["tables"],
        json!([{"table": "public.users", "expected_rows": 250, "restored_rows": 250}])
    );
    for stage in ["prepare", "download", "decrypt", "restore", "verify"] {
        assert!(
            report["durations"][format!("{stage}_seconds")].as_f64().is_some(),
            "{report}"
        );
    }
    assert!(report["rto_seconds"].as_f64().unwrap() >= 0.0, "{report}");
    assert!(
        !report.to_string().contains(&w.pg.password),
        "no password in the report"
    );
}

#[tokio::test]
async fn an_existing_target_an_unknown_table_and_a_restore_too_long_are_refused_touching_nothing() {
    let w = world_with(&[
        ("LIFEBOAT_RESTORE_TASK_CLUSTER", "lifeboat-cluster".to_owned()),
        ("LIFEBOAT_RESTORE_TASK_DEFINITION", "lifeboat-restore:1".to_owned()),
        ("LIFEBOAT_RESTORE_TASK_SUBNETS", "subnet-a,subnet-b".to_owned()),
        ("LIFEBOAT_RESTORE_TASK_SECURITY_GROUP", "sg-1".to_owned()),
    ])
    .await;
    w.pg.psql("postgres", "create database app_kept").unwrap();
    w.pg.psql("app_kept", "create table keep (x int); insert into keep values (1)")
        .unwrap();
    let err = w.restore(event("app_kept", &["users"]), None).await.unwrap_err();
    assert!(err.contains("app_kept already exists"), "{err}");
    assert_eq!(
        w.pg.psql(
            "app_kept",
            "select string_agg(tablename, ',') from pg_tables where schemaname = 'public'"
        )
        .unwrap(),
        "keep",
        "the existing database is left as it was"
    );
    let err = w.restore(event("app", &[]), None).await.unwrap_err();
    assert!(
        err.contains("app already exists"),
        "the source itself is refused: {err}"
    );

    let before = w.databases();
    let err = w.restore(event("app_typo", &["usres"]), None).await.unwrap_err();
    assert!(err.contains("close matches: public.users"), "{err}");

    // Five seconds left cannot hold the deadline margin: refused before anything is created.
    let deadline = Some(Instant::now() + Duration::from_secs(5));
    let err = w.restore(event("app_late", &["users"]), deadline).await.unwrap_err();
    assert!(err.contains("would not finish in this invocation"), "{err}");
    assert!(
        err.contains("lifeboat restore 'app-prod' --manifest 'exports/app-prod/full/")
            && err.contains("--table 'users'"),
        "{err}"
    );
    assert!(err.contains(".manifest.json' --table"), "pinned to the export: {err}");
    assert!(
        err.contains(
            "aws ecs run-task --cluster 'lifeboat-cluster' --task-definition 'lifeboat-restore:1' --launch-type \
             FARGATE --network-configuration \
             'awsvpcConfiguration={subnets=[subnet-a,subnet-b],securityGroups=[sg-1],assignPublicIp=DISABLED}'"
        ),
        "the ECS task's command beside the terminal's: {err}"
    );
    assert!(
        err.contains(r#"{"name":"LIFEBOAT_EVENT","value":"{\"action\":\"restore-export\""#)
            && err.contains(r#"\"export\":\"exports/app-prod/full/"#),
        "the event, pinned to the export, in LIFEBOAT_EVENT: {err}"
    );
    assert_eq!(w.databases(), before, "nothing created");
}

#[tokio::test]
async fn a_tampered_object_is_refused_with_nothing_left_behind() {
    let w = world().await;
    let key = w.stored_key().await;
    let object = w.s3.get_object().bucket(BUCKET).key(&key).send().await.unwrap();
    let mut bytes = object.body.collect().await.unwrap().into_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    w.s3.put_object()
        .bucket(BUCKET)
        .key(&key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
    let before = w.databases();
    let err = w.restore(event("app_tampered", &[]), None).await.unwrap_err();
    assert!(err.contains("stored checksum failed"), "{err}");
    assert!(!w.exists("app_tampered"), "the half-restored database is dropped");
    assert_eq!(w.databases(), before, "nothing left behind");

    let reports = w.reports().await;
    assert_eq!(reports.len(), 1, "a failed restore writes its report too: {reports:?}");
    let report = &reports[0];
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["failed_check"], "stored-checksum");
    assert!(
        report["error"].as_str().unwrap().contains("stored checksum failed"),
        "{report}"
    );
    assert_eq!(report["target_database"], "app_tampered");
    assert!(
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["restored_rows"].is_null()),
        "{report}"
    );
}

const TABLES: [&str; 5] = ["chats", "messages", "projects", "sessions", "users"];

fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn a_whole_database_restored_with_two_jobs_equals_the_source_and_leaves_no_plaintext_not_even_a_killed_restores()
{
    let workdir = tempfile::tempdir().unwrap();
    // What a restore killed an hour ago left behind (nothing holds its lock): the next restore removes it.
    let abandoned = workdir.path().join("lifeboat-restore-killed.dump");
    std::fs::write(&abandoned, b"a decrypted archive").unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .append(true)
        .open(&abandoned)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let w = world_with(&[("LIFEBOAT_RESTORE_WORKDIR", workdir.path().display().to_string())]).await;
    let mut e = event("app_jobs", &[]);
    e["jobs"] = json!(2);
    let out = w.restore(e, None).await.unwrap();
    for table in TABLES {
        assert_eq!(
            fingerprint(&w.pg, "app_jobs", table),
            fingerprint(&w.pg, "app", table),
            "{table}"
        );
    }
    assert_eq!(out["verified"], true);
    assert_eq!(out["tables"].as_array().unwrap().len(), TABLES.len(), "{out}");
    assert!(
        files_in(workdir.path()).is_empty(),
        "the plaintext file is removed, and the one a killed restore left"
    );

    // A tampered object with jobs: refused by the stored checksum before pg_restore reads the file.
    let key = w.stored_key().await;
    let object = w.s3.get_object().bucket(BUCKET).key(&key).send().await.unwrap();
    let mut bytes = object.body.collect().await.unwrap().into_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    w.s3.put_object()
        .bucket(BUCKET)
        .key(&key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
    let mut e = event("app_jobs_tampered", &[]);
    e["jobs"] = json!(2);
    let err = w.restore(e, None).await.unwrap_err();
    assert!(err.contains("stored checksum failed"), "{err}");
    assert!(!w.exists("app_jobs_tampered"));
    assert!(
        files_in(workdir.path()).is_empty(),
        "the plaintext file is removed on failure too"
    );
}

#[tokio::test]
async fn a_work_directory_too_small_for_the_plaintext_is_refused_up_front() {
    let workdir = tempfile::tempdir().unwrap();
    // No disk keeps 4 PiB free: the archive cannot fit beside that reserve.
    let w = world_with(&[
        ("LIFEBOAT_RESTORE_WORKDIR", workdir.path().display().to_string()),
        ("LIFEBOAT_RESTORE_WORKDIR_RESERVE_MIB", "4000000000".to_owned()),
    ])
    .await;
    let before = w.databases();
    let mut e = event("app_no_room", &[]);
    e["jobs"] = json!(2);
    let err = w.restore(e, None).await.unwrap_err();
    assert!(err.contains("does not fit in the work directory"), "{err}");
    assert!(err.contains("nothing was created"), "{err}");
    assert_eq!(w.databases(), before, "no database created");
    assert!(files_in(workdir.path()).is_empty(), "no file created");

    // Streamed (no jobs), the same restore needs no work directory and goes through.
    w.restore(event("app_streamed", &["users"]), None).await.unwrap();
    assert!(w.exists("app_streamed"));
}

impl World {
    /// The restore binary in its standalone mode (the ECS task's), as a process: `--event` or LIFEBOAT_EVENT.
    fn standalone(&self, how: &str, event: &Value) -> std::process::Output {
        self.standalone_as("restore", "console", how, event)
    }

    /// A binary of the restore package in its standalone mode, under the entry `entry`.
    fn standalone_as(&self, binary: &str, entry: &str, how: &str, event: &Value) -> std::process::Output {
        let bin = postgres::bin_dir();
        let mut cmd = std::process::Command::new(lifeboat_tests::lambda::function_binary(binary));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true")
            .env("AWS_ENDPOINT_URL", &self.moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("LIFEBOAT_BUCKET", BUCKET)
            .env("LIFEBOAT_RESTORE_ENTRY", entry)
            .env("LIFEBOAT_DB_SSLMODE", "disable")
            .env("LIFEBOAT_PG_RESTORE", bin.join("pg_restore"))
            .env("LIFEBOAT_AGE_IDENTITY_SECRET", "lifeboat/age-identity")
            .stdin(std::process::Stdio::null());
        match how {
            "--event" => cmd.args(["--event", &event.to_string()]),
            _ => cmd.env("LIFEBOAT_EVENT", event.to_string()),
        };
        cmd.output().unwrap()
    }
}

#[tokio::test]
async fn the_standalone_binary_restores_from_lifeboat_event_or_event_and_fails_with_a_nonzero_status() {
    let w = world().await;
    let out = w.standalone("LIFEBOAT_EVENT", &event("app_task", &["users"]));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let result: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("verified").is_some())
        .unwrap_or_else(|| panic!("the result on stdout: {stdout}"));
    assert_eq!(result["verified"], true);
    assert_eq!(result["target"]["database"], "app_task");
    assert_eq!(
        fingerprint(&w.pg, "app_task", "users"),
        fingerprint(&w.pg, "app", "users")
    );
    assert!(!stdout.contains(&w.pg.password) && !stderr.contains(&w.pg.password));

    // --event, on a target that now exists: refused, non-zero, with the reason.
    let out = w.standalone("--event", &event("app_task", &["users"]));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("app_task already exists"), "{text}");
}

/// Each binary of the restore package serves one entry, and holds no code of the other's: started under the other
/// entry (a template that points a function at the wrong binary), it stops before reading anything, naming the
/// variable, both binaries and what each serves.
#[tokio::test]
async fn each_restore_binary_refuses_to_start_under_the_other_entry() {
    let w = world().await;
    for (binary, entry, serves, other) in [
        ("restore-test", "console", "steps", "restore"),
        ("restore", "steps", "console", "restore-test"),
    ] {
        let out = w.standalone_as(binary, entry, "--event", &event("app_refused", &["users"]));
        assert!(!out.status.success(), "{binary} under {entry}: {out:?}");
        // The log line that says why the process stopped (its `error`, as written).
        let text: String = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["error"].as_str().map(str::to_owned))
            .collect();
        assert!(
            text.contains(&format!("LIFEBOAT_RESTORE_ENTRY=\"{entry}\"")),
            "{binary}: {text}"
        );
        assert!(
            text.contains(&format!("this binary (/usr/local/bin/{binary}) serves `{serves}` only")),
            "{binary}: {text}"
        );
        assert!(
            text.contains(&format!("runs /usr/local/bin/{other}")),
            "{binary}: {text}"
        );
    }
    assert!(!w.exists("app_refused"), "nothing was restored");
    // Under its own entry the steps' binary starts and serves: a console request is refused as another entry's.
    let out = w.standalone_as("restore-test", "steps", "--event", &event("app_refused", &["users"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains("this binary"), "it started: {text}");
    assert!(text.contains("restore-export"), "the request's action is named: {text}");
    assert!(!w.exists("app_refused"));
}

const ATTACKER: &str = "attacker";
const ATTACKER_PASSWORD: &str = "attacker-password-1";

/// What an ordinary role of the source database plants there (it may create objects in `public`, nothing more):
/// (a) a CHECK constraint whose function, run while COPY loads the row, resets any `SET ROLE` and tries to give
/// its author CREATEDB and CREATEROLE; (b) a SECURITY DEFINER function that would do the same for whoever calls
/// it, with EXECUTE revoked from PUBLIC as its author meant.
fn plant_attack(pg: &Postgres) {
    pg.psql(
        "app",
        &format!(
            "create role {ATTACKER} login password '{ATTACKER_PASSWORD}'; grant create on schema public to {ATTACKER}"
        ),
    )
    .unwrap();
    let escalate = "alter role attacker createdb createrole";
    pg.psql_as(
        ATTACKER,
        ATTACKER_PASSWORD,
        "app",
        &format!(
            "create function public.escalate(n int) returns boolean language plpgsql as $$
             begin
               perform set_config('role', 'none', false);
               execute '{escalate}';
               return true;
             exception when others then return true;
             end $$;
             create table public.planted (n int check (public.escalate(n)));
             insert into public.planted values (1);
             create function public.definer_escalate() returns text language plpgsql security definer as $$
             begin execute '{escalate}'; return current_user; end $$;
             revoke execute on function public.definer_escalate() from public;"
        ),
    )
    .unwrap();
    assert_eq!(attacker_powers(pg), "f|f", "the attacker starts with nothing");
}

/// `rolcreatedb|rolcreaterole` of the attacker.
fn attacker_powers(pg: &Postgres) -> String {
    pg.psql(
        "postgres",
        &format!("select rolcreatedb || '|' || rolcreaterole from pg_roles where rolname = '{ATTACKER}'"),
    )
    .unwrap()
    .replace("false", "f")
    .replace("true", "t")
}

#[tokio::test]
async fn an_archive_s_planted_functions_run_as_the_restore_s_own_role_and_gain_their_author_nothing() {
    let w = world_planted(&[("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned())], plant_attack).await;
    // Restored through restore-export with the admin secret (the local superuser, as an RDS master would be).
    let restored = w.restore(event("app_planted", &[]), None).await;
    assert_eq!(
        attacker_powers(&w.pg),
        "f|f",
        "the CHECK constraint's function ran during COPY without the admin's rights"
    );
    let out = restored.unwrap();
    assert_eq!(out["verified"], true, "{out}");
    let role = out["target"]["owner_role"].as_str().unwrap();
    assert_eq!(role, "app_planted_owner");
    assert!(
        out["target"]["access"]
            .as_str()
            .unwrap()
            .contains("GRANT \"app_planted_owner\" TO"),
        "{out}"
    );
    assert_eq!(
        w.pg.psql(
            "postgres",
            &format!(
                "select concat_ws(',', rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, \
                 (select count(*) from pg_auth_members where member = r.oid)) from pg_roles r where rolname = '{role}'"
            )
        )
        .unwrap(),
        "f,f,f,f,f,0",
        "the owner role cannot log in, holds no power and is a member of no role"
    );
    assert_eq!(
        w.pg.psql(
            "postgres",
            "select pg_get_userbyid(datdba) from pg_database where datname = 'app_planted'"
        )
        .unwrap(),
        role
    );

    let connect = w.pg.psql_as(ATTACKER, ATTACKER_PASSWORD, "app_planted", "select 1");
    let err = connect.unwrap_err();
    assert!(err.contains("permission denied for database"), "{err}");
    let call = w.pg.psql_as(
        ATTACKER,
        ATTACKER_PASSWORD,
        "app_planted",
        "select public.definer_escalate()",
    );
    assert!(call.is_err(), "the attacker cannot reach the definer function");
    assert_eq!(
        w.pg.psql(
            "app_planted",
            "select pg_get_userbyid(proowner) || ' ' || has_function_privilege('attacker', oid, 'execute') || ' ' \
             || has_function_privilege('public', oid, 'execute') from pg_proc where proname = 'definer_escalate'"
        )
        .unwrap(),
        format!("{role} false false"),
        "the definer function runs as the owner role, and its REVOKE FROM PUBLIC holds"
    );
    assert_eq!(attacker_powers(&w.pg), "f|f", "nothing gained in the end");

    let report = w.report(out["report"].as_str().unwrap()).await;
    assert_eq!(report["owner_role"], role, "{report}");
}

#[tokio::test]
async fn a_row_the_restore_rejects_is_named_by_table_constraint_and_line_never_by_its_values() {
    let w = world_planted(&[("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned())], |pg| {
        // Valid where it was written, refused anywhere else: the restore fails on the row.
        pg.psql(
            "app",
            "create function public.only_in_app(text) returns boolean language sql stable
               as $$ select current_database() = 'app' $$;
             create table public.patients (id int, email text, ssn text,
               constraint patients_home check (public.only_in_app(ssn)));
             insert into public.patients values (1, 'alice@example.com', '078-05-1120');",
        )
        .unwrap();
    })
    .await;
    let before = w.databases();
    let err = w.restore(event("app_rejected", &[]), None).await.unwrap_err();
    assert!(err.contains("violates check constraint \"patients_home\""), "{err}");
    assert!(err.contains("COPY patients, line 1"), "{err}");
    let reports = w.reports().await;
    assert_eq!(reports.len(), 1);
    let report = reports[0].to_string();
    assert_eq!(reports[0]["failed_check"], "pg_restore", "{report}");
    for value in ["alice@example.com", "078-05-1120"] {
        assert!(!err.contains(value), "{value} in the error: {err}");
        assert!(!report.contains(value), "{value} in the report: {report}");
    }
    assert_eq!(w.databases(), before, "the half-restored database is dropped");
    assert_eq!(
        w.pg.psql(
            "postgres",
            "select count(*) from pg_roles where rolname = 'app_rejected_owner'"
        )
        .unwrap(),
        "0",
        "and its role"
    );
}

#[tokio::test]
async fn a_secret_naming_another_host_is_refused_before_any_connection() {
    // The export setting is not given to the restore function: its secret's host (the local server) is not
    // app-prod's endpoint in RDS.
    let w = world_planted(&[], |_| {}).await;
    let before = w.databases();
    let err = w.restore(event("app_elsewhere", &["users"]), None).await.unwrap_err();
    assert!(err.contains("names host `127.0.0.1`"), "{err}");
    assert!(err.contains("not an endpoint of app-prod (expected app-prod."), "{err}");
    assert!(err.contains("LIFEBOAT_EXPORT_ALLOW_ANY_HOST=true"), "{err}");
    assert_eq!(w.databases(), before);
    assert!(w.reports().await.is_empty(), "refused before an export was chosen");
}

#[tokio::test]
async fn a_restore_still_running_near_the_deadline_stops_drops_what_it_made_and_reports() {
    let w = world_planted(
        &[
            ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned()),
            // Admitted: the archive is tiny at this speed; the slowness is in its rows.
            ("LIFEBOAT_RESTORE_MIB_PER_SECOND", "10000".to_owned()),
        ],
        |pg| {
            // Each row costs a second to load anywhere but in the source.
            pg.psql(
                "app",
                "create function public.slow_elsewhere(int) returns boolean language sql volatile as $$
                   select current_database() = 'app' or (select true from pg_sleep(1)) $$;
                 create table public.slow (n int check (public.slow_elsewhere(n)));
                 insert into public.slow select generate_series(1, 60);",
            )
            .unwrap();
        },
    )
    .await;
    let before = w.databases();
    // The export's margin (60 s) is kept for the cleanup and the report: the restore has 4 s.
    let started = Instant::now();
    let deadline = Some(started + lifeboat::postgres::export::DEADLINE_MARGIN + Duration::from_secs(4));
    let err = w.restore(event("app_late", &[]), deadline).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.contains("stopped before the invocation's deadline"), "{err}");
    assert!(
        took < Duration::from_secs(30),
        "stopped at its time, not after 60 rows: {took:?}"
    );
    assert_eq!(w.databases(), before, "the half-restored database is dropped");
    assert_eq!(
        w.pg.psql(
            "postgres",
            "select count(*) from pg_roles where rolname = 'app_late_owner'"
        )
        .unwrap(),
        "0",
        "and its role"
    );
    // pg_restore's session ended with the database.
    assert_eq!(
        w.pg.psql(
            "postgres",
            "select count(*) from pg_stat_activity where usename = 'app_late_owner'"
        )
        .unwrap(),
        "0"
    );
    let reports = w.reports().await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["outcome"], "failed");
    assert_eq!(reports[0]["failed_check"], "deadline", "{}", reports[0]);
}

#[tokio::test]
async fn chosen_tables_come_back_whole_and_a_foreign_key_to_a_table_left_behind_is_named() {
    let w = world_planted(&[("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned())], |pg| {
        lifeboat_tests::shop::plant(pg, "app")
    })
    .await;
    let out = w
        .restore(event("app_orders", &["shop_orders", "shop_lines"]), None)
        .await
        .unwrap();
    assert_eq!(
        lifeboat_tests::shop::shape(&w.pg, "app_orders"),
        "shop_lines:shop_lines_order_id_fkey:f shop_lines:shop_lines_pkey:index shop_lines:shop_lines_pkey:p \
         shop_orders:shop_orders_customer_total:index shop_orders:shop_orders_pkey:index \
         shop_orders:shop_orders_pkey:p shop_orders:shop_orders_total_check:c",
        "keys, indexes, the check and the foreign key between the two tables; not the one to customers"
    );
    lifeboat_tests::shop::assert_whole(&w.pg, "app_orders");
    let left_out = out["left_out"].as_array().unwrap();
    assert_eq!(left_out.len(), 1, "{out}");
    assert!(
        left_out[0].as_str().unwrap().contains("shop_orders_customer_id_fkey")
            && left_out[0].as_str().unwrap().contains("TABLE public.shop_customers"),
        "{out}"
    );
    assert_eq!(
        out["tables"],
        json!([{"table": "public.shop_lines", "expected_rows": 3, "restored_rows": 3},
               {"table": "public.shop_orders", "expected_rows": 3, "restored_rows": 3}])
    );
}
