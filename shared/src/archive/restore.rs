//! A restore from an export into a NEW database, and the end-to-end check of an export without a database.
//!
//! Owns the target's lifecycle: refused if it exists, created, filled by [`super::stream`], its row counts
//! compared with the manifest's exactly, and dropped on any failure after it was created (only the database this
//! call created, never one that existed before).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::plan::check_room;
use super::select::{compare_exact, match_tables, table_args};
use super::stream::{stream, tail, Counters, Destination, Sink, Streamed};
use super::{check_identities, ArchiveError, Identity};
use crate::db;
use crate::export::quote_ident;
use crate::manifest::{Manifest, TableCount};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A restore of one export.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
    pub manifest: &'a Manifest,
    /// Tables as the caller named them; empty restores the whole export.
    pub tables: &'a [String],
    pub identities: &'a [Identity],
    pub pg_restore: &'a str,
    /// The server and the NEW database's name (`dbname`), which must not exist.
    pub into: &'a db::Target,
    /// The database to connect to for `CREATE DATABASE` (`postgres` on RDS).
    pub maintenance_db: &'a str,
    pub counters: &'a Arc<Counters>,
    /// Turns true when the caller is interrupted (the terminal tool's Ctrl-C): the restore stops and the
    /// database it created is dropped. `None` where nothing interrupts (a function invocation).
    pub interrupt: Option<&'a tokio::sync::watch::Receiver<bool>>,
    /// `pg_restore --jobs`: the verified plaintext goes to a file first. `None` streams (no file).
    pub jobs: Option<Jobs<'a>>,
}

/// A parallel restore: the plaintext archive is written to a 0600 file in `workdir` (refused up front when it
/// would not fit with `reserve_bytes` to spare), checked like a streamed one, then read by `pg_restore --jobs`,
/// and removed afterwards whatever happened.
#[derive(Debug, Clone, Copy)]
pub struct Jobs<'a> {
    pub jobs: u32,
    pub workdir: &'a Path,
    pub reserve_bytes: u64,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("key", &self.manifest.stored.key)
            .field("tables", &self.tables)
            .field("into", self.into)
            .finish_non_exhaustive()
    }
}

/// When each stage finished, in seconds from the start of the stream (the streamed stages overlap), and how long
/// the row counting took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stages {
    pub download_seconds: f64,
    pub decrypt_seconds: f64,
    pub restore_seconds: f64,
    pub verify_seconds: f64,
}

/// A restore that completed and was verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub database: String,
    pub export_key: String,
    /// The restored tables, each with the manifest's row count and the count found in the new database.
    pub tables: Vec<RestoredTable>,
    pub stored_bytes: u64,
    pub plaintext_bytes: u64,
    pub stages: Stages,
}

/// One restored table: what the manifest promised and what a `count(*)` found (equal, or the restore failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoredTable {
    pub schema: String,
    pub name: String,
    pub expected_rows: i64,
    pub restored_rows: i64,
}

/// Restores the export (or `tables` of it) into a new database and verifies its row counts; on any failure
/// after the database was created, drops it again.
pub async fn restore(req: Request<'_>) -> Result<Report, ArchiveError> {
    let (selected, args) = if req.tables.is_empty() {
        (req.manifest.tables.clone(), Vec::new())
    } else {
        let selected = match_tables(req.tables, &req.manifest.tables)?;
        let args = table_args(&selected, &req.manifest.tables)?;
        (selected, args)
    };
    check_identities(req.manifest, req.identities)?;
    if let Some(jobs) = req.jobs {
        check_workdir(&jobs, req.manifest.plaintext.bytes)?;
    }
    let admin = connect(req.into, req.maintenance_db).await?;
    let name = &req.into.dbname;
    create_database(&admin, name).await?;
    let filled = match req.interrupt {
        None => fill(req, &selected, args).await,
        Some(interrupt) => tokio::select! {
            filled = fill(req, &selected, args) => filled,
            () = interrupted(interrupt.clone()) => Err(ArchiveError::Interrupted { database: name.clone() }),
        },
    };
    match filled {
        Ok(report) => Ok(report),
        Err(cause) => match drop_database(&admin, name).await {
            Ok(()) => Err(cause),
            Err(e) => Err(ArchiveError::NotDropped {
                database: name.clone(),
                drop_error: e.to_string(),
                cause: Box::new(cause),
            }),
        },
    }
}

/// Resolves once `interrupt` turns true (at once if it already is); never if its sender is gone without it.
async fn interrupted(mut interrupt: tokio::sync::watch::Receiver<bool>) {
    if interrupt.wait_for(|on| *on).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Streams the export through every check without a database: download, stored checksum, decryption,
/// decompression, plaintext checksum, and a full parse by `pg_restore -f /dev/null`.
pub async fn verify(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest: &Manifest,
    identities: &[Identity],
    pg_restore: &str,
    counters: Arc<Counters>,
) -> Result<Streamed, ArchiveError> {
    check_identities(manifest, identities)?;
    let sink = Destination::PgRestore(Sink::parse_only(pg_restore));
    stream(s3, bucket, manifest, identities, sink, counters).await
}

async fn connect(into: &db::Target, dbname: &str) -> Result<tokio_postgres::Client, ArchiveError> {
    let target = db::Target {
        dbname: dbname.to_owned(),
        ..into.clone()
    };
    Ok(db::connect(&target, CONNECT_TIMEOUT).await?)
}

fn sql_error(action: String) -> impl FnOnce(tokio_postgres::Error) -> ArchiveError {
    move |e| ArchiveError::Sql {
        action,
        message: db::describe(&e),
    }
}

/// Creates the target, refusing one that exists (checked first, and again by the server's own answer).
async fn create_database(admin: &tokio_postgres::Client, name: &str) -> Result<(), ArchiveError> {
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(sql_error(format!("checking whether database {name} exists")))?;
    let refused = || ArchiveError::TargetExists {
        database: name.to_owned(),
    };
    if exists.is_some() {
        return Err(refused());
    }
    match admin
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
        .await
    {
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => Err(refused()),
        other => other.map_err(sql_error(format!("creating database {name}"))),
    }
}

async fn drop_database(admin: &tokio_postgres::Client, name: &str) -> Result<(), ArchiveError> {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)))
        .await
        .map_err(sql_error(format!("dropping database {name}")))
}

/// pg_restore into the new database: objects owned by whoever restores, no grants of the source's roles, and
/// the first error stops it.
fn sink(req: &Request<'_>, tables: Vec<String>) -> Sink {
    let dbname = format!(
        "dbname='{}'",
        req.into.dbname.replace('\\', "\\\\").replace('\'', "\\'")
    );
    let mut args: Vec<String> = ["--no-owner", "--no-privileges", "--exit-on-error", "-d"]
        .map(str::to_owned)
        .into();
    args.push(dbname);
    args.extend(tables);
    Sink {
        program: req.pg_restore.to_owned(),
        args,
        env: req.into.libpq_env(),
    }
}

/// Fills the created database and verifies it.
async fn fill(req: Request<'_>, selected: &[TableCount], args: Vec<String>) -> Result<Report, ArchiveError> {
    let partial = !args.is_empty();
    if partial {
        // pg_restore -n/-t restores tables, not their schemas.
        let client = connect(req.into, &req.into.dbname).await?;
        for schema in selected
            .iter()
            .map(|t| &t.schema)
            .collect::<std::collections::BTreeSet<_>>()
        {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)))
                .await
                .map_err(sql_error(format!("creating schema {schema}")))?;
        }
    }
    let sink = sink(&req, args);
    let streamed = match req.jobs {
        None => {
            let to = Destination::PgRestore(sink);
            stream(
                req.s3,
                req.bucket,
                req.manifest,
                req.identities,
                to,
                req.counters.clone(),
            )
            .await?
        }
        Some(jobs) => through_file(req, sink, &jobs).await?,
    };
    let started = Instant::now();
    let counted = count_rows(req, selected).await?;
    let mismatches = compare_exact(selected, &counted);
    if !mismatches.is_empty() {
        return Err(ArchiveError::RowCounts { mismatches });
    }
    Ok(Report {
        database: req.into.dbname.clone(),
        export_key: req.manifest.stored.key.clone(),
        tables: selected
            .iter()
            .map(|t| RestoredTable {
                schema: t.schema.clone(),
                name: t.name.clone(),
                expected_rows: t.rows,
                restored_rows: counted.get(&t.label()).copied().unwrap_or_default(),
            })
            .collect(),
        stored_bytes: streamed.stored_bytes,
        plaintext_bytes: streamed.plain_bytes,
        stages: Stages {
            download_seconds: streamed.download.as_secs_f64(),
            decrypt_seconds: streamed.decrypt.as_secs_f64(),
            restore_seconds: streamed.restore.as_secs_f64(),
            verify_seconds: started.elapsed().as_secs_f64(),
        },
    })
}

/// Refuses up front a work directory without room for the plaintext archive (the manifest records its exact size).
fn check_workdir(jobs: &Jobs<'_>, plaintext_bytes: u64) -> Result<(), ArchiveError> {
    let dir = jobs.workdir.display().to_string();
    let stat = rustix::fs::statvfs(jobs.workdir).map_err(|e| ArchiveError::Workdir {
        dir: dir.clone(),
        source: e.into(),
    })?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    Ok(check_room(&dir, plaintext_bytes, free, jobs.reserve_bytes)?)
}

/// The plaintext into a 0600 file in the work directory, every check of the stream passed, then
/// `pg_restore --jobs` on it. The file is removed when this returns or is dropped (failure, interruption).
async fn through_file(req: Request<'_>, sink: Sink, jobs: &Jobs<'_>) -> Result<Streamed, ArchiveError> {
    use std::os::unix::fs::PermissionsExt;
    let workdir = |source| ArchiveError::Workdir {
        dir: jobs.workdir.display().to_string(),
        source,
    };
    let file = tempfile::Builder::new()
        .prefix("lifeboat-restore-")
        .suffix(".dump")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(jobs.workdir)
        .map_err(workdir)?;
    let writer = file.as_file().try_clone().map_err(workdir)?;
    let start = Instant::now();
    let to = Destination::File(writer);
    let mut streamed = stream(
        req.s3,
        req.bucket,
        req.manifest,
        req.identities,
        to,
        req.counters.clone(),
    )
    .await?;
    let out = tokio::process::Command::new(&sink.program)
        .args(&sink.args)
        .arg(format!("--jobs={}", jobs.jobs))
        .arg(file.path())
        .envs(sink.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| ArchiveError::StartPgRestore {
            program: sink.program.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(ArchiveError::PgRestore {
            status: out.status.to_string(),
            stderr: tail(&String::from_utf8_lossy(&out.stderr)),
        });
    }
    streamed.restore = start.elapsed();
    drop(file);
    Ok(streamed)
}

/// Counts every restored table's rows exactly; a table that cannot be counted is left out (and so reported
/// missing by the comparison).
async fn count_rows(req: Request<'_>, tables: &[TableCount]) -> Result<BTreeMap<String, i64>, ArchiveError> {
    let client = connect(req.into, &req.into.dbname).await?;
    let mut out = BTreeMap::new();
    for t in tables {
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&t.schema),
            quote_ident(&t.name)
        );
        if let Ok(row) = client.query_one(&sql, &[]).await {
            out.insert(t.label(), row.get::<_, i64>(0));
        }
        req.counters.counted.fetch_add(1, Ordering::Relaxed);
    }
    Ok(out)
}
