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
