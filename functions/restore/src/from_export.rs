//! The console's `restore-export` action: a complete export (or some of its tables) streamed into a NEW database
//! on the source's server or on another named instance, verified row for row against the manifest.
//!
//! It translates only: the event is read here, the export is chosen and restored by `lifeboat::postgres::archive` (which
//! refuses an existing target and drops what it created on any failure), and the admission against the
//! invocation's deadline and the `lifeboat` command line that runs it instead are `lifeboat::postgres::archive::plan`'s rules.
//! Every restore that starts (export chosen and admitted) leaves a report in the bucket (`lifeboat::postgres::archive::report`),
//! restored or failed.
//! Never: writes to the source database (it connects to the server's `postgres` database to create the target),
//! restores an incomplete export, or returns a password.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use lifeboat::bucket::manifest::Manifest;
use lifeboat::core::error::{ConfigError, Error};
use lifeboat::core::settings::{parse_number, read, Env};
use lifeboat::postgres::archive::plan::{self, ExportChoice};
use lifeboat::postgres::archive::report;
use lifeboat::postgres::archive::restore::{self as archive_restore, Report};
use lifeboat::postgres::archive::{find_export, ArchiveError, Counters};
use lifeboat::postgres::db::{self, DbError};
use lifeboat::postgres::export::{check_host, stop_at, ForeignHost, Refusal, ALLOW_ANY_HOST};
use lifeboat::rds::naming::validate_db_identifier;
use lifeboat::rds::selection::Database;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::RestoreError;
use crate::handler::{age_identity, find, Deps};

pub const MIB_PER_SECOND: &str = "LIFEBOAT_RESTORE_MIB_PER_SECOND";
pub const WORKDIR: &str = "LIFEBOAT_RESTORE_WORKDIR";
pub const WORKDIR_RESERVE_MIB: &str = "LIFEBOAT_RESTORE_WORKDIR_RESERVE_MIB";
pub const TASK_CLUSTER: &str = "LIFEBOAT_RESTORE_TASK_CLUSTER";
pub const TASK_DEFINITION: &str = "LIFEBOAT_RESTORE_TASK_DEFINITION";
pub const TASK_SUBNETS: &str = "LIFEBOAT_RESTORE_TASK_SUBNETS";
pub const TASK_SECURITY_GROUP: &str = "LIFEBOAT_RESTORE_TASK_SECURITY_GROUP";

/// The speed assumed unless configured: no faster than `make bench-restore` measured. Its slowest streamed run
/// (docs/bench/restore-2026-11-30-1gb.txt: 177.3 MiB stored in 14.2 s, median 12.6 s) is 12.5 stored MiB/s; an
/// assumption faster than what was measured admits restores that then run out of time.
pub const DEFAULT_MIB_PER_SECOND: u32 = 12;

/// The server database the target is created from; the source database is never connected to.
const MAINTENANCE_DB: &str = "postgres";

/// How fast a restore is assumed to go (what is too long for an invocation is run with the `lifeboat` tool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Stored (compressed, encrypted) MiB per second through download, decryption and pg_restore.
    pub mib_per_second: u32,
    /// Where a `jobs` restore writes the plaintext archive: the function's ephemeral storage (`/tmp`), or the
    /// ECS task's volume.
    pub workdir: PathBuf,
    /// Space kept free there beside the archive.
    pub workdir_reserve_mib: u32,
    /// The ECS task that runs what an invocation cannot finish (when the stack deploys it).
    pub task: Option<plan::EcsTask>,
    /// `LIFEBOAT_EXPORT_ALLOW_ANY_HOST`, the export's own setting: a secret's host may be other than the
    /// database's endpoints (a proxy, a tunnel). Off, a restore onto the source's server connects only to it.
    pub allow_any_host: bool,
}

impl Settings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let reserve = plan::WORKDIR_RESERVE_BYTES / (1024 * 1024);
        Ok(Self {
            mib_per_second: parse_number(env, MIB_PER_SECOND, DEFAULT_MIB_PER_SECOND, 1..=10_000)?,
            workdir: read(env, WORKDIR).map_or_else(std::env::temp_dir, PathBuf::from),
            workdir_reserve_mib: parse_number(env, WORKDIR_RESERVE_MIB, reserve as u32, 0..=u32::MAX)?,
            task: match (read(env, TASK_CLUSTER), read(env, TASK_DEFINITION)) {
                (Some(cluster), Some(task_definition)) => Some(plan::EcsTask {
                    cluster,
                    task_definition,
                    subnets: read(env, TASK_SUBNETS).unwrap_or_else(|| "<subnet-id>".to_owned()),
                    security_group: read(env, TASK_SECURITY_GROUP).unwrap_or_else(|| "<security group>".to_owned()),
                }),
                _ => None,
            },
            allow_any_host: parse_flag(env, ALLOW_ANY_HOST)?,
        })
    }
}

/// `true` or `false` (any case), as the export reads the same variable; unset is `false`.
fn parse_flag(env: &impl Env, name: &str) -> Result<bool, ConfigError> {
    match read(env, name) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ConfigError::new(name, &v, "expected true or false")),
    }
}

/// `{"action": "restore-export", "database": "app-prod", "export": "latest", "tables": ["users"],
///   "into": {"database": "app_prod_restore_20261123"}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRestore {
    /// The RDS instance or cluster whose export is restored.
    pub database: String,
    /// `latest` (the default), a manifest key, or `{"before": "<RFC 3339>"}`.
    #[serde(default)]
    pub export: ExportChoice,
    /// The export profile to choose from (default `LIFEBOAT_RESTORE_EXPORT_PROFILE`, `full`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Tables as the manifest names them (`users`, `billing.invoices`, `"we.ird"."x"`); empty restores all.
    #[serde(default)]
    pub tables: Vec<String>,
    pub into: IntoTarget,
    /// `pg_restore --jobs`: 2 or more write the verified plaintext to the work directory first (refused up front
    /// when it would not fit); 1 or none streams with no file.
    #[serde(default)]
    pub jobs: Option<u32>,
}

/// Where the restore goes: a database that must not exist yet, on the source's server or on `instance`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntoTarget {
    pub database: String,
    #[serde(default)]
    pub instance: Option<String>,
}

impl ExportRestore {
    /// Refuses what cannot be a restore-export before anything is called.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid =
            |what: &str, value: &str, reason: String| Error::InvalidEvent(format!("{what} `{value}`: {reason}"));
        validate_db_identifier(&self.database).map_err(|r| invalid("database", &self.database, r.to_string()))?;
        if let Some(i) = &self.into.instance {
            validate_db_identifier(i).map_err(|r| invalid("into.instance", i, r.to_string()))?;
        }
        if let Some(jobs) = self.jobs.filter(|j| !(1..=plan::MAX_JOBS).contains(j)) {
            return Err(invalid(
                "jobs",
                &jobs.to_string(),
                format!("between 1 and {}", plan::MAX_JOBS),
            ));
        }
        plan::check_target_name(&self.into.database).map_err(|e| Error::InvalidEvent(e.to_string()))
    }
}

/// Why a restore-export stopped; an [`ArchiveError`] says which check failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportRestoreError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{id} has no credentials: tag it `lifeboat:secret` with the secret of a user that may create databases")]
    NoCredentials { id: String },
    #[error("neither secret {secret} nor RDS says where {id} is")]
    NoAddress { id: String, secret: String },
    /// The secret names a host that is not the server's: refused before any connection, as the export refuses it.
    #[error(transparent)]
    ForeignHost(#[from] ForeignHost),
    #[error(
        "restoring {key} would not finish in this invocation: {} MiB stored at about {} MiB/s needs ~{} s but only \
         {} s remain (LIFEBOAT_RESTORE_MIB_PER_SECOND); nothing was created. {}Or run it from a terminal with the \
         lifeboat tool (no time limit), filling in the server and user:\n{command}",
        refusal.size_mib, refusal.mib_per_second, refusal.estimate_secs, refusal.remaining_secs,
        task_command.as_ref().map_or_else(
            || "No ECS restore task is deployed (the stack's ExportTaskImageUri creates it). ".to_owned(),
            |c| format!("Run it as the ECS restore task (no time limit):\n{c}\n")
        )
    )]
    TooLong {
        key: String,
        refusal: Refusal,
        /// `aws ecs run-task ...`, when the stack deploys the restore task.
        task_command: Option<String>,
        command: String,
    },
}

impl ExportRestoreError {
    /// The Lambda `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::TooLong { .. } => "Lifeboat.Restore.TooLong",
            Self::Archive(ArchiveError::TargetExists { .. }) => "Lifeboat.Restore.TargetExists",
            Self::Archive(ArchiveError::NoExport { .. } | ArchiveError::OtherDatabase { .. }) => {
                "Lifeboat.Restore.NoExport"
            }
            Self::Archive(ArchiveError::Table(_)) => "Lifeboat.Restore.UnknownTable",
            Self::Archive(ArchiveError::NoRoom(_)) => "Lifeboat.Restore.NoRoom",
            Self::Db(_) | Self::NoCredentials { .. } | Self::NoAddress { .. } | Self::ForeignHost(_) => {
                "Lifeboat.Restore.Connect"
            }
            Self::Archive(_) => "Lifeboat.Restore.ExportCheck",
        }
    }
}

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
async fn target(
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
    let tables: Vec<Value> = report
        .tables
        .iter()
        .map(|t| {
            json!({"table": format!("{}.{}", t.schema, t.name), "expected_rows": t.expected_rows,
                   "restored_rows": t.restored_rows})
        })
        .collect();
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
