//! `lifeboat recover`: the command line of `lifeboat::recover` (one database, or some tables, back as it was at a
//! time). Translates only: the arguments into a request, the stages into progress on stderr, the outcome into the
//! result or an exit code. The source, its kind and engine come from RDS (`discover`), never from the arguments.
//! Ctrl-C turns the interrupt flag on: the copy drops the database it created, the scratch is deleted, and the
//! command exits 130.

use std::time::Duration;

use chrono::Utc;
use lifeboat::core::settings::ProcessEnv;
use lifeboat::postgres::archive::plan;
use lifeboat::rds::restore::test_placement;
use lifeboat::recover::{self, Stage};
use serde_json::json;

use crate::args;
use crate::run::{aws_config, on_ctrl_c, parse_time, CliError, Done};
use crate::url;

/// The database a recover's administrator connects to in order to create the new one.
const MAINTENANCE_DB: &str = "postgres";

/// `lifeboat recover`.
pub async fn recover(r: &args::Recover, profile: Option<&str>) -> Result<Done, CliError> {
    let interrupt = on_ctrl_c();
    let at = parse_time(&r.to).map_err(|_| CliError::ToTime(r.to.clone()))?;
    let env_user = std::env::var("PGUSER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_default();
    let env_password = std::env::var("PGPASSWORD").ok();
    let into = url::parse(&r.into, &env_user, env_password.as_deref())?;
    plan::check_target_name(&into.dbname)?;
    let config = aws_config(profile).await;
    let rds = aws_sdk_rds::Client::new(&config);
    let db = lifeboat::rds::selection::discover(&rds)
        .await
        .map_err(CliError::Gather)?
        .into_iter()
        .find(|d| d.id == r.database && d.cluster.is_none())
        .ok_or_else(|| CliError::NotFound(format!("no instance or cluster `{}` in this region", r.database)))?;
    let source_dbname = match &r.source_database {
        Some(name) => name.clone(),
        None => described_dbname(&rds, &db).await.unwrap_or_else(|| "postgres".into()),
    };
    let env = |name: &str| lifeboat::core::settings::read(&ProcessEnv, name);
    let subnet_group = r.subnet_group.clone().or_else(|| env("LIFEBOAT_RESTORE_SUBNET_GROUP"));
    let security_group = r
        .security_group
        .clone()
        .or_else(|| env("LIFEBOAT_RESTORE_SECURITY_GROUP"));
    let placement = test_placement(subnet_group.as_deref(), security_group.as_deref(), &r.instance_class);
    let pg_dump = r
        .pg_dump
        .clone()
        .or_else(|| env("LIFEBOAT_PG_DUMP"))
        .unwrap_or_else(|| "pg_dump".into());
    let pg_restore = r
        .pg_restore
        .clone()
        .unwrap_or_else(|| lifeboat::core::settings::pg_restore(&ProcessEnv));
    if *interrupt.borrow() {
        return Err(CliError::InterruptedEarly);
    }
    eprintln!(
        "recovering {} as it was at {} into {}",
        db.id,
        at.format("%Y-%m-%dT%H:%M:%SZ"),
        url::redacted(&into)
    );
    let progress = |stage: &Stage| match stage {
        Stage::Window(w) => eprintln!("  window: {w}; the time is inside it"),
        Stage::Restoring(scratch) => eprintln!("  restoring to the point in time into scratch instance {scratch}"),
        Stage::Ready => eprintln!("  scratch available, with a password only this command holds"),
        Stage::Copying => eprintln!("  copying (pg_dump | pg_restore, as the new database's own role)"),
        Stage::Verified => eprintln!("  row counts equal the scratch's"),
        Stage::Deleted(scratch) => eprintln!("  scratch instance {scratch} deleted"),
    };
    let reach = |host: &str, port: u16| (host.to_owned(), port);
    let result = recover::recover(recover::Request {
        rds: &rds,
        db: &db,
        at,
        tables: &r.tables,
        source_dbname: &source_dbname,
        into: &into,
        maintenance_db: MAINTENANCE_DB,
        placement: &placement,
        expires: Utc::now() + chrono::Duration::hours(i64::from(r.expires_hours)),
        scratch_tls: &into.tls,
        reach: &reach,
        pg_dump: &pg_dump,
        pg_restore: &pg_restore,
        poll: Duration::from_secs(r.poll_seconds.max(1)),
        deadline: None,
        interrupt: Some(&interrupt),
        progress: &progress,
    })
    .await;
    let done = match result {
        Ok(done) => done,
        Err(e) if e.is_interrupted() => return Err(CliError::Recover(e)),
        Err(e) => return Err(CliError::Recover(e)),
    };
    let c = &done.copied;
    let mut text = format!(
        "recovered {} as it was at {} into {}\n",
        db.id,
        done.at.format("%Y-%m-%dT%H:%M:%SZ"),
        url::redacted(&into)
    );
    text.push_str(&crate::run::restored_lines(
        &c.owner_role,
        &c.tables,
        &c.left_out,
        "rows",
        "the scratch",
    ));
    text.push_str(&format!(
        "scratch {} ({}); restore {:.1}s, copy {:.1}s, verify {:.1}s; RTO {:.1}s\n",
        done.scratch, done.scratch_deleted, done.restore_seconds, c.copy_seconds, c.verify_seconds, done.rto_seconds
    ));
    let json = json!({
        "command": "recover",
        "database": db.id,
        "to": done.at,
        "window": {"earliest": done.window.0, "latest": done.window.1},
        "scratch": {"instance": done.scratch, "deleted": done.scratch_deleted},
        "target": {"host": into.host, "port": into.port, "database": c.database, "owner_role": c.owner_role},
        "tables": c.tables,
        "left_out": c.left_out,
        "durations": {"restore_seconds": done.restore_seconds, "copy_seconds": c.copy_seconds,
                      "verify_seconds": c.verify_seconds},
        "rto_seconds": done.rto_seconds,
    });
    Ok(Done { json, text })
}

/// The database RDS says the instance (or cluster) was created with, if any.
async fn described_dbname(rds: &aws_sdk_rds::Client, db: &lifeboat::rds::selection::Database) -> Option<String> {
    match db.kind {
        lifeboat::rds::selection::DbKind::Instance => rds
            .describe_db_instances()
            .db_instance_identifier(&db.id)
            .send()
            .await
            .ok()?
            .db_instances()
            .first()?
            .db_name()
            .map(str::to_owned),
        lifeboat::rds::selection::DbKind::Cluster => rds
            .describe_db_clusters()
            .db_cluster_identifier(&db.id)
            .send()
            .await
            .ok()?
            .db_clusters()
            .first()?
            .database_name()
            .map(str::to_owned),
    }
}
