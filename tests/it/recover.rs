//! `lifeboat recover` against moto (RDS) and real PostgreSQL servers: the source database is an archiving server
//! that stands in for RDS instance `app-prod`, a point-in-time restore of it is PostgreSQL's own recovery of a base
//! backup and the archived WAL to the requested time (`tests/emulator/rds_pitr.py`), and the target is a second,
//! separate server. The rows are changed between two moments; what comes back is what the first moment held.

use std::time::Duration;

use aws_sdk_rds::types::Tag;
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{Postgres, SUPERUSER};

const REGION: &str = "us-east-1";

pub struct World {
    pub moto: Moto,
    pub source: Postgres,
    pub target: Postgres,
    pub rds: aws_sdk_rds::Client,
    /// A moment after the first rows and before the change.
    pub before_change: chrono::DateTime<chrono::Utc>,
}

/// `app-prod` stands in for the archiving server holding the shop; its orders are changed (one deleted, one
/// total changed, lines gone) a little after `before_change`.
pub async fn world() -> World {
    let moto = Moto::start_with_cache_exports();
    let source = Postgres::start_archiving();
    let target = Postgres::start();
    source.psql("postgres", "create database app").unwrap();
    lifeboat_tests::shop::plant(&source, "app");
    let rds = aws_sdk_rds::Client::new(&moto.config(REGION));
    rds.create_db_instance()
        .db_instance_identifier("app-prod")
        .db_instance_class("db.t4g.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username(SUPERUSER)
        .master_user_password("not-the-real-password")
        .backup_retention_period(7)
        .tags(Tag::builder().key("lifeboat:backup").value("true").build())
        .send()
        .await
        .unwrap();
    moto.stand_in_pitr("app-prod", &source);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_change = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    source
        .psql(
            "app",
            "delete from shop_lines; update shop_orders set total = 99 where id = 1; \
             delete from shop_orders where id = 3; drop table shop_customers cascade",
        )
        .unwrap();
    World {
        moto,
        source,
        target,
        rds,
        before_change,
    }
}

#[tokio::test]
async fn the_local_cloud_restores_a_point_in_time_for_real() {
    let w = world().await;
    w.rds
        .restore_db_instance_to_point_in_time()
        .source_db_instance_identifier("app-prod")
        .target_db_instance_identifier("app-prod-then")
        .restore_time(aws_sdk_rds::primitives::DateTime::from_millis(
            w.before_change.timestamp_millis(),
        ))
        .send()
        .await
        .unwrap();
    let described = w
        .rds
        .describe_db_instances()
        .db_instance_identifier("app-prod-then")
        .send()
        .await
        .unwrap();
    let endpoint = described.db_instances()[0].endpoint().unwrap();
    assert_eq!(endpoint.address(), Some("127.0.0.1"));
    let port = endpoint.port().unwrap();
    let then = |sql: &str| {
        let out = std::process::Command::new(lifeboat_tests::postgres::bin_dir().join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                "app",
            ])
            .args(["-c", sql])
            .env("PGPASSWORD", &w.source.password)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(
        then("select string_agg(id || '=' || total, ',' order by id) from shop_orders"),
        "1=10,2=20,3=30"
    );
    assert_eq!(then("select count(*) from shop_lines"), "3");
    assert_eq!(w.source.psql("app", "select count(*) from shop_lines").unwrap(), "0");
    w.rds
        .delete_db_instance()
        .db_instance_identifier("app-prod-then")
        .skip_final_snapshot(true)
        .send()
        .await
        .unwrap();
    assert_eq!(then("select 1"), "", "the restored server is gone with its instance");
}

impl World {
    /// `lifeboat recover app-prod --to <at> --into <new database on the target server>` and `extra`, pointed at
    /// moto, the tools this machine has, and a poll of one second.
    fn command(&self, at: &str, into_db: &str, extra: &[&str]) -> std::process::Command {
        let dir = tempfile::tempdir().unwrap().keep();
        let into = format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{into_db}?sslmode=disable",
            self.target.port
        );
        let mut args = vec![
            "recover",
            "app-prod",
            "--to",
            at,
            "--into",
            &into,
            "--source-database",
            "app",
        ];
        args.extend(["--poll-seconds", "1"]);
        args.extend(extra);
        let mut cmd = crate::cli::command(&self.moto.endpoint, &dir, &args);
        let bin = lifeboat_tests::postgres::bin_dir();
        cmd.env("PGPASSWORD", &self.target.password)
            .env("LIFEBOAT_PG_DUMP", bin.join("pg_dump"))
            .env("LIFEBOAT_PG_RESTORE", bin.join("pg_restore"));
        cmd
    }

    fn at(&self) -> String {
        self.before_change.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// The RDS instances moto holds, by identifier.
    async fn instances(&self) -> Vec<String> {
        let out = self.rds.describe_db_instances().send().await.unwrap();
        out.db_instances()
            .iter()
            .filter_map(|i| i.db_instance_identifier().map(str::to_owned))
            .collect()
    }

    fn target_has(&self, db: &str) -> bool {
        let sql = format!(
            "select (select count(*) from pg_database where datname = '{db}') + \
             (select count(*) from pg_roles where rolname = '{db}_owner')"
        );
        self.target.psql("postgres", &sql).unwrap() != "0"
    }
}

fn texts(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn recover_brings_tables_back_as_they_were_between_two_changes_whole_and_deletes_its_scratch() {
    let w = world().await;
    let out = w
        .command(
            &w.at(),
            "app_orders_then",
            &["--table", "shop_orders", "--table", "shop_lines", "--json"],
        )
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for stage in [
        "window:",
        "restoring to the point in time",
        "scratch available",
        "copying",
        "row counts equal",
        "deleted",
    ] {
        assert!(stderr.contains(stage), "progress names `{stage}`: {stderr}");
    }
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        w.target
            .psql(
                "app_orders_then",
                "select string_agg(id || '=' || total, ',' order by id) from shop_orders"
            )
            .unwrap(),
        "1=10,2=20,3=30",
        "the rows as they were before the change, not as they are"
    );
    assert_eq!(
        w.target
            .psql("app_orders_then", "select count(*) from shop_lines")
            .unwrap(),
        "3"
    );
    assert_eq!(
        lifeboat_tests::shop::shape(&w.target, "app_orders_then"),
        "shop_lines:shop_lines_order_id_fkey:f shop_lines:shop_lines_pkey:index shop_lines:shop_lines_pkey:p \
         shop_orders:shop_orders_customer_total:index shop_orders:shop_orders_pkey:index \
         shop_orders:shop_orders_pkey:p shop_orders:shop_orders_total_check:c",
        "the tables come back with their keys, indexes, check and the foreign key between them"
    );
    lifeboat_tests::shop::assert_whole(&w.target, "app_orders_then");
    assert!(
        doc["left_out"][0]
            .as_str()
            .unwrap()
            .contains("shop_orders_customer_id_fkey"),
        "{doc}"
    );
    assert_eq!(
        doc["tables"],
        serde_json::json!([
            {"schema": "public", "name": "shop_lines", "expected_rows": 3, "restored_rows": 3},
            {"schema": "public", "name": "shop_orders", "expected_rows": 3, "restored_rows": 3}])
    );
    assert!(doc["rto_seconds"].as_f64().unwrap() > 0.0, "{doc}");
    assert!(
        doc["scratch"]["instance"]
            .as_str()
            .unwrap()
            .starts_with("lifeboat-rc-app-prod-"),
        "{doc}"
    );
    assert_eq!(w.instances().await, ["app-prod"], "no scratch instance is left");
    assert_eq!(
        w.source
            .psql(
                "app",
                "select string_agg(id || '=' || total, ',' order by id) from shop_orders"
            )
            .unwrap(),
        "1=99,2=20",
        "the source is as it is now"
    );
    assert!(!stdout.contains(&w.target.password) && !stderr.contains(&w.target.password));
}

#[tokio::test]
async fn recover_refuses_a_time_outside_the_window_and_an_existing_target_creating_nothing() {
    let w = world().await;
    let out = w.command("2020-01-01T00:00:00Z", "app_then", &[]).output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("cannot be recovered to 2020-01-01T00:00:00Z: its restorable window is 20"),
        "the window is in the message: {stderr}"
    );
    w.target.psql("postgres", "create database app_taken").unwrap();
    let out = w.command(&w.at(), "app_taken", &[]).output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(stderr.contains("app_taken already exists"), "{stderr}");
    assert_eq!(w.instances().await, ["app-prod"], "no scratch was made");
    assert!(!w.target_has("app_then"));
}

#[tokio::test]
async fn recover_deletes_its_scratch_and_drops_the_target_when_the_copy_fails() {
    let w = world().await;
    let out = w
        .command(
            &w.at(),
            "app_failed",
            &["--table", "shop_orders", "--pg-dump", "/bin/false"],
        )
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("pg_dump failed"), "{stderr}");
    assert_eq!(w.instances().await, ["app-prod"], "the scratch is deleted on failure");
    assert!(!w.target_has("app_failed"), "nothing half-made is left on the target");
}

#[tokio::test]
async fn ctrl_c_mid_stream_deletes_the_scratch_and_leaves_no_half_made_target() {
    let w = world().await;
    // A pg_dump that takes its time before it streams: the interrupt lands while the copy runs.
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow-pg-dump");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\nsleep 20\nexec {} \"$@\"\n",
            lifeboat_tests::postgres::bin_dir().join("pg_dump").display()
        ),
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&slow).unwrap().permissions(), 0o755);
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = dir.path().join("stderr");
    let child = w
        .command(
            &w.at(),
            "app_interrupted",
            &["--table", "shop_orders", "--pg-dump", slow.to_str().unwrap()],
        )
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    // The interrupt comes once the copy runs and the target is being made.
    let made = || {
        let sql = "select count(*) from pg_database where datname = 'app_interrupted'";
        w.target.psql("postgres", sql).unwrap() == "1"
    };
    while !(std::fs::read_to_string(&log).unwrap().contains("copying") && made()) {
        assert!(started.elapsed() < Duration::from_secs(120), "the copy never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = std::time::Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "pg_dump was stopped, not waited for: {stderr}"
    );
    assert_eq!(
        w.instances().await,
        ["app-prod"],
        "no scratch instance is left: {stderr}"
    );
    assert!(
        !w.target_has("app_interrupted"),
        "the half-made database and its role are dropped: {stderr}"
    );
}

/// The restore console function with the tools this machine has, its secrets' hosts the local servers.
async fn console(w: &World) -> restore::Deps {
    let config = w.moto.config(REGION);
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let secret = serde_json::json!({"engine": "postgres", "host": "127.0.0.1", "port": w.source.port,
                                    "username": SUPERUSER, "password": w.source.password, "dbname": "app"});
    sm.create_secret()
        .name("lifeboat/app-prod")
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
    let arn = w
        .rds
        .describe_db_instances()
        .db_instance_identifier("app-prod")
        .send()
        .await
        .unwrap()
        .db_instances()[0]
        .db_instance_arn()
        .unwrap()
        .to_owned();
    w.rds
        .add_tags_to_resource()
        .resource_name(arn)
        .tags(Tag::builder().key("lifeboat:secret").value("lifeboat/app-prod").build())
        .send()
        .await
        .unwrap();
    let bin = lifeboat_tests::postgres::bin_dir();
    let vars: std::collections::BTreeMap<String, String> = [
        ("LIFEBOAT_BUCKET", "lifeboat-backups".to_owned()),
        ("LIFEBOAT_DB_SSLMODE", "disable".to_owned()),
        ("LIFEBOAT_RESTORE_ENTRY", "console".to_owned()),
        // The secret names the local server, not the endpoint moto made up.
        ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned()),
        ("LIFEBOAT_PG_DUMP", bin.join("pg_dump").display().to_string()),
        ("LIFEBOAT_PG_RESTORE", bin.join("pg_restore").display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = restore::settings::RestoreSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
    restore::Deps::new(&config, settings)
}

#[tokio::test]
async fn the_console_recovers_a_table_beside_the_live_one_from_names_alone() {
    let w = world().await;
    let deps = console(&w).await;
    let event = serde_json::json!({"action": "recover", "database": "app-prod", "to": w.at(),
                                   "tables": ["shop_orders"], "into": {"database": "app_orders_then"}});
    let out = restore::handle(&deps, event, None).await.unwrap();
    assert_eq!(
        w.source
            .psql(
                "app_orders_then",
                "select string_agg(id || '=' || total, ',' order by id) from shop_orders"
            )
            .unwrap(),
        "1=10,2=20,3=30",
        "beside the live database, as it was"
    );
    assert_eq!(
        out["tables"],
        serde_json::json!([{"table": "public.shop_orders", "expected_rows": 3, "restored_rows": 3}])
    );
    assert_eq!(out["target"]["instance"], "app-prod");
    assert!(out["rto_seconds"].as_f64().unwrap() > 0.0, "{out}");
    assert!(
        !out.to_string().contains(&w.source.password),
        "no password in the result"
    );
    assert_eq!(w.instances().await, ["app-prod"], "no scratch instance is left");

    let late = serde_json::json!({"action": "recover", "database": "app-prod", "to": "2099-01-01T00:00:00Z",
                                  "into": {"database": "app_future"}});
    let err = restore::handle(&deps, late, None).await.unwrap_err().to_string();
    assert!(err.contains("restorable window is"), "{err}");
    let unknown = serde_json::json!({"action": "recover", "database": "app-prod", "to": w.at(),
                                     "into": {"database": "app_x", "host": "evil.example"}});
    assert!(
        restore::handle(&deps, unknown, None).await.is_err(),
        "a host in the payload is not even read"
    );
    assert_eq!(w.instances().await, ["app-prod"]);
}
