//! The console's `recover` action: a database (or some of its tables) back as it was at a time, into a new
//! database, by `lifeboat::recover` (scratch instance restored to the time, streamed copy as the new database's own
//! role, row counts, the scratch always deleted).
//!
//! Translates only. What grants power is derived, never read from the payload: the source and the target server
//! are RDS's (`find`), the target's address and credentials are the restore-export rules' (`from_export::target`:
//! the server's Lifeboat secret, else the source's), the database copied out of the scratch is the one the
//! source's secret names, the scratch is named by the source and the time and placed as restore tests are
//! (`LIFEBOAT_RESTORE_SUBNET_GROUP`, `LIFEBOAT_RESTORE_SECURITY_GROUP`), and its endpoint is the one RDS describes.
//! Every wait has the invocation's deadline; the scratch's delete is given its own margin before it.

use std::time::{Duration, Instant};

use chrono::Utc;
use lifeboat::postgres::archive::restore::RestoredTable;
use lifeboat::postgres::db;
use lifeboat::rds::restore::test_placement;
use lifeboat::recover::{self, Stage};
use serde_json::{json, Value};

use crate::deps::{find, Deps};
use crate::error::{ExportRestoreError, RestoreError};
use crate::event::RecoverRequest;

/// The server database the target is created from.
const MAINTENANCE_DB: &str = "postgres";
/// Between looks at the scratch's status.
const POLL: Duration = Duration::from_secs(15);

/// Runs the action.
pub async fn run(deps: &Deps, req: RecoverRequest, deadline: Option<Instant>) -> Result<Value, RestoreError> {
    req.validate()?;
    let source = find(deps, &req.database).await?;
    let server = match &req.into.instance {
        Some(id) => find(deps, id).await?,
        None => source.clone(),
    };
    let into = crate::from_export::target(deps, &source, &server, &req.into.database).await?;
    let secret_id = source
        .secret_id()
        .ok_or_else(|| ExportRestoreError::NoCredentials { id: source.id.clone() })?;
    let secret = db::read_secret(&deps.sm, secret_id)
        .await
        .map_err(ExportRestoreError::from)?;
    let source_dbname = secret.dbname.clone().unwrap_or_else(|| MAINTENANCE_DB.to_owned());
    let s = &deps.settings;
    let placement = test_placement(
        s.subnet_group.as_deref(),
        s.security_group.as_deref(),
        &s.instance_class,
    );
    let reach = |host: &str, port: u16| s.redirects.reach(host, port);
    let progress = |stage: &Stage| tracing::info!(db = %req.database, stage = ?stage, "recover");
    let done = recover::recover(recover::Request {
        rds: &deps.rds,
        db: &source,
        at: req.to,
        tables: &req.tables,
        source_dbname: &source_dbname,
        into: &into,
        maintenance_db: MAINTENANCE_DB,
        placement: &placement,
        expires: lifeboat::rds::restore::test_expiry(Utc::now(), s.expiry_hours),
        scratch_tls: &s.tls,
        reach: &reach,
        pg_dump: &s.pg_dump,
        pg_restore: &s.pg_restore,
        poll: POLL,
        deadline,
        interrupt: None,
        progress: &progress,
    })
    .await?;
    let c = &done.copied;
    tracing::info!(db = %req.database, into = %c.database, instance = %server.id, tables = c.tables.len(),
                   rto_seconds = done.rto_seconds, "recovered");
    Ok(result(&req.database, &server.id, &into, &done))
}

/// The result: the time, the window, the scratch and its delete, the target, each table's rows, durations, RTO.
fn result(database: &str, server: &str, into: &db::Target, done: &recover::Recovered) -> Value {
    let c = &done.copied;
    let tables: Vec<Value> = c.tables.iter().map(RestoredTable::result).collect();
    json!({
        "database": database,
        "to": done.at,
        "window": {"earliest": done.window.0, "latest": done.window.1},
        "scratch": {"instance": done.scratch, "deleted": done.scratch_deleted},
        "target": {"instance": server, "host": into.host, "port": into.port, "database": c.database,
                   "owner_role": c.owner_role,
                   "access": format!("the database is owned by role {0}, which cannot log in and is the only role \
                                      that may connect: GRANT \"{0}\" TO <user> lets a user in", c.owner_role)},
        "tables": tables,
        "left_out": c.left_out,
        "verified": true,
        "durations": {"restore_seconds": done.restore_seconds, "copy_seconds": c.copy_seconds,
                      "verify_seconds": c.verify_seconds},
        "rto_seconds": done.rto_seconds,
    })
}
