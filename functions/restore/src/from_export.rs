//! The console's `restore-export` action: a complete export (or some of its tables) streamed into a NEW database
//! on the source's server or on another named instance, verified row for row against the manifest.
//!
//! It translates only: the event is read in `event.rs` (`ExportRestore`), its settings in `settings.rs`
//! (`FromExportSettings`) and its error is `error.rs`'s `ExportRestoreError`; the export is chosen and restored by
//! `lifeboat::postgres::archive` (which refuses an existing target and drops what it created on any failure), and
//! the admission against the invocation's deadline and the `lifeboat` command line that runs it instead are
//! `lifeboat::postgres::archive::plan`'s rules. Every restore that starts (export chosen and admitted) leaves a
//! report in the bucket (`lifeboat::postgres::archive::report`), restored or failed.
//! Never: writes to the source database (it connects to the server's `postgres` database to create the target),
//! restores an incomplete export, or returns a password.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use lifeboat::bucket::manifest::Manifest;
use lifeboat::postgres::archive::plan;
use lifeboat::postgres::archive::report;
use lifeboat::postgres::archive::restore::{self as archive_restore, Report, RestoredTable};
use lifeboat::postgres::archive::{find_export, ArchiveError, Counters};
use lifeboat::postgres::db;
use lifeboat::postgres::export::{check_host, stop_at};
use lifeboat::rds::selection::Database;
use serde_json::{json, Value};

use crate::deps::{age_identity, find, Deps};
use crate::error::{ExportRestoreError, RestoreError};
use crate::event::ExportRestore;

/// The server database the target is created from; the source database is never connected to.
const MAINTENANCE_DB: &str = "postgres";

/// Runs the action: target, export, admission, identity, then the streamed and verified restore.
pub async fn run(deps: &Deps, req: ExportRestore, deadline: Option<Instant>) -> Result<Value, RestoreError> {
    let started = Instant::now();
    let started_at = Utc::now();
    req.validate()?;
    let source = find(deps, &req.database).await?;
    let server = match &req.into.instance {
        Some(id) => find(deps, id).await?,
        None => source.clone(),
    };
    let target = target(deps, &source, &server, &req.into.database).await?;
    let s = &deps.settings;
    let profile = req.profile.as_deref().unwrap_or(&s.profile);
    let (key, manifest) = find_export(&deps.s3, &s.bucket, &req.database, Some(profile), &req.export.which())
        .await
        .map_err(ExportRestoreError::from)?;
    admit(deps, &req, &key, &manifest, deadline)?;
    let identities: Vec<_> = age_identity(deps).await?.into_iter().collect();
    let prepared = started.elapsed().as_secs_f64();
    let counters = Arc::new(Counters::default());
    let restored = archive_restore::restore(archive_restore::Request {
        s3: &deps.s3,
        bucket: &s.bucket,
        manifest: &manifest,
        tables: &req.tables,
        identities: &identities,
        pg_restore: &s.pg_restore,
        into: &target,
        maintenance_db: MAINTENANCE_DB,
        counters: &counters,
        interrupt: None,
        jobs: req.jobs.filter(|j| *j > 1).map(|jobs| archive_restore::Jobs {
            jobs,
            workdir: &s.from_export.workdir,
            reserve_bytes: u64::from(s.from_export.workdir_reserve_mib) * 1024 * 1024,
        }),
        // Stopped with the export's margin before the deadline: the drops and the report still happen.
        stop_at: stop_at(deadline),
        rewrite: None,
    })
    .await;
    let attempt = report::Attempt {
        source: &req.database,
        manifest_key: &key,
        manifest: &manifest,
        tables: &req.tables,
        target_server: &server.id,
        target_database: &req.into.database,
        by: "restore-export",
        started_at,
        prepare_seconds: prepared,
    };
    let report_key = write_report(deps, &attempt, &restored).await;
    let report = restored.map_err(ExportRestoreError::from)?;
    let rto = started.elapsed().as_secs_f64();
    tracing::info!(db = %req.database, export = %key, into = %report.database, instance = %server.id,
                   tables = report.tables.len(), rto_seconds = rto, "restored from export");
    let mut out = result(&key, &manifest, &server, &target, &report, prepared, rto);
    out["report"] = report_key.map_or(Value::Null, Value::String);
    Ok(out)
}

/// Writes the restore's report to the bucket, whatever the outcome, and returns its key. A report that cannot be
/// written is logged and does not change the restore's outcome (the database is restored, or already dropped).
async fn write_report(
    deps: &Deps,
    attempt: &report::Attempt<'_>,
    restored: &Result<Report, ArchiveError>,
) -> Option<String> {
    let built = report::build(attempt, restored, Utc::now());
    match report::write(&deps.s3, &deps.settings.bucket, &built).await {
        Ok(key) => {
            tracing::info!(db = %attempt.source, report = %key, outcome = ?built.outcome, "restore report written");
            Some(key)
        }
        Err(e) => {
            tracing::warn!(db = %attempt.source, error = %e, "restore report not written");
            None
        }
    }
}

/// Refuses up front a restore that would not finish before the deadline, with the command that runs it.
fn admit(
    deps: &Deps,
    req: &ExportRestore,
    key: &str,
    manifest: &Manifest,
    deadline: Option<Instant>,
) -> Result<(), ExportRestoreError> {
    let s = &deps.settings.from_export;
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    plan::admit_restore(manifest.stored.bytes, s.mib_per_second, left).map_err(|refusal| ExportRestoreError::TooLong {
        key: key.to_owned(),
        refusal,
        task_command: s.task.as_ref().map(|t| plan::ecs_command(t, &pinned(req, key))),
        command: plan::cli_command(&plan::CliRestore {
            database: &req.database,
            manifest_key: key,
            tables: &req.tables,
            into_database: &req.into.database,
            identity_secret: deps.settings.age_identity_secret.as_deref(),
        }),
    })
}

/// The request as an event for the ECS task, pinned to the export the function chose.
fn pinned(req: &ExportRestore, manifest_key: &str) -> Value {
    let mut event = json!({"action": "restore-export", "database": req.database, "export": manifest_key,
                           "into": {"database": req.into.database}});
    if let Some(profile) = &req.profile {
        event["profile"] = json!(profile);
    }
    if !req.tables.is_empty() {
        event["tables"] = json!(req.tables);
    }
    if let Some(instance) = &req.into.instance {
        event["into"]["instance"] = json!(instance);
    }
    if let Some(jobs) = req.jobs {
        event["jobs"] = json!(jobs);
    }
    event
}

/// The new database on `server`: its address (see [`plan::restore_address`]) and the credentials of its
/// Lifeboat secret, else the source's.
pub(crate) async fn target(
    deps: &Deps,
    source: &Database,
    server: &Database,
    name: &str,
) -> Result<db::Target, ExportRestoreError> {
    let secret_id = server
        .secret_id()
        .or(source.secret_id())
        .ok_or_else(|| ExportRestoreError::NoCredentials { id: server.id.clone() })?;
    let secret = db::read_secret(&deps.sm, secret_id).await?;
    let endpoint = server.endpoint.as_ref().map(|(h, p)| (h.as_str(), *p));
    let into_source = server.id == source.id;
    if into_source {
        // Onto the source's server the secret's host is used, so it must be that server (another instance is
        // reached at its own endpoint only; see `plan::restore_address`).
        let endpoints: Vec<String> = server
            .endpoint
            .iter()
            .map(|(h, _)| h.clone())
            .chain(server.aliases.clone())
            .collect();
        check_host(
            secret_id,
            &server.id,
            secret.host.as_deref(),
            &endpoints,
            deps.settings.from_export.allow_any_host,
        )?;
    }
    let (host, port) =
        plan::restore_address(into_source, secret.host.as_deref(), secret.port, endpoint).ok_or_else(|| {
            ExportRestoreError::NoAddress {
                id: server.id.clone(),
                secret: secret_id.to_owned(),
            }
        })?;
    Ok(db::Target {
        host,
        port,
        dbname: name.to_owned(),
        user: secret.username.clone(),
        password: secret.password.clone(),
        tls: deps.settings.tls.clone(),
    })
}

/// The result: the export chosen, the target, each table's expected and restored rows, durations, RTO.
fn result(
    key: &str,
    manifest: &Manifest,
    server: &Database,
    target: &db::Target,
    report: &Report,
    prepared: f64,
    rto: f64,
) -> Value {
    let tables: Vec<Value> = report.tables.iter().map(RestoredTable::result).collect();
    let st = &report.stages;
    json!({
        "export": {"manifest": key, "object": manifest.stored.key, "profile": manifest.profile,
                   "logical_time": manifest.logical_time, "stored_bytes": report.stored_bytes,
                   "plaintext_bytes": report.plaintext_bytes},
        "target": {"instance": server.id, "host": target.host, "port": target.port, "database": report.database,
                   "owner_role": report.owner_role,
                   "access": format!("the database is owned by role {0}, which cannot log in and is the only role \
                                      that may connect: GRANT \"{0}\" TO <user> lets a user in", report.owner_role)},
        "tables": tables,
        "left_out": report.left_out,
        "verified": true,
        "durations": {"prepare_seconds": prepared, "download_seconds": st.download_seconds,
                      "decrypt_seconds": st.decrypt_seconds, "restore_seconds": st.restore_seconds,
                      "verify_seconds": st.verify_seconds},
        "rto_seconds": rto,
        "peak_rss_bytes": peak_rss_bytes(),
    })
}

/// This process's peak resident set size, from `/proc/self/status` (0 where unavailable): what a restore costs
/// in memory, without its pg_restore child.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
