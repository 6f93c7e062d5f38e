//! A restore from an export into a NEW database, and the end-to-end check of an export without a database.
//!
//! Owns the target's lifecycle: refused if it (or its owner role) exists, created with its own role
//! ([`super::owner`]: the archive's code never runs as the administrator), filled by [`super::stream`] with
//! pg_restore logged in as that role, its row counts compared with the manifest's exactly, and, on any failure
//! or when the caller's stop time comes, dropped with its role (only what this call created, never anything that
//! existed before).
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::owner::{self, Created, Owner};
use super::plaintext;
use super::plan::check_room;
use super::select::{compare_exact, match_tables};
use super::stream::{stream, tail, Counters, Destination, Rewrite, Sink, Streamed};
use super::{check_identities, ArchiveError, Identity};
use crate::bucket::manifest::{Manifest, TableCount};
use crate::postgres::db;
use crate::postgres::export::quote_ident;

/// How long connecting to the target server may take (also the CLI's `restore --dry-run` check).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// When the restore must have stopped (an invocation's deadline less the time the cleanup and the report
    /// need): then pg_restore is stopped, the database and its role are dropped, and the error is
    /// [`ArchiveError::Deadline`]. `None`: no deadline (a terminal, the ECS task).
    pub stop_at: Option<Instant>,
    /// Rewrites the verified archive on its way into pg_restore (the masked refresh); `None` restores it as
    /// exported. Not with `jobs`: the file would hold what was not yet rewritten.
    pub rewrite: Option<&'a Arc<Mutex<dyn Rewrite>>>,
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
    /// The role that owns the new database and that the restore ran as (NOLOGIN once it is done):
    /// `GRANT <role> TO <user>` lets a user in.
    pub owner_role: String,
    pub export_key: String,
    /// The restored tables, each with the manifest's row count and the count found in the new database.
    pub tables: Vec<RestoredTable>,
    /// What belongs to the chosen tables but could not come with them (a foreign key to a table not restored),
    /// each with why; empty for a whole database.
    pub left_out: Vec<String>,
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

impl RestoredTable {
    /// The table as results and reports list it: its label and both counts.
    pub fn result(&self) -> serde_json::Value {
        serde_json::json!({"table": format!("{}.{}", self.schema, self.name), "expected_rows": self.expected_rows,
                           "restored_rows": self.restored_rows})
    }
}

/// Restores the export (or `tables` of it) into a new database owned by a new role and verifies its row
/// counts; on any failure after either was created, drops both again.
pub async fn restore(req: Request<'_>) -> Result<Report, ArchiveError> {
    let (selected, whole) = if req.tables.is_empty() {
        (req.manifest.tables.clone(), Vec::new())
    } else {
        let selected = match_tables(req.tables, &req.manifest.tables)?;
        (selected.clone(), selected)
    };
    check_identities(req.manifest, req.identities)?;
    if req.jobs.is_some() && req.rewrite.is_some() {
        return Err(ArchiveError::Rewrite(
            "a rewritten restore streams: the --jobs file would hold the archive before its rewrite".into(),
        ));
    }
    if let Some(jobs) = req.jobs {
        // Before the room check: a file an interrupted restore left takes room this one needs.
        for left in plaintext::sweep(jobs.workdir, std::time::SystemTime::now()) {
            tracing::warn!(
                file = %left.file.display(),
                bytes = left.bytes,
                "removed a plaintext archive an interrupted restore left in the work directory"
            );
        }
        check_workdir(&jobs, req.manifest.plaintext.bytes)?;
    }
    let guard = Guard {
        into: req.into,
        maintenance_db: req.maintenance_db,
        interrupt: req.interrupt,
        stop_at: req.stop_at,
    };
    guard
        .run(|version, owner| async move { fill(req, version, &owner, &selected, whole).await })
        .await
}

/// What every restore into a new database shares, whatever fills it (an export here, a scratch server in
/// [`super::recover`]): the new database and its owner role are created, filled as that role, and, on any
/// failure, interruption or the stop time, dropped again (only what this call created); on success the role's
/// login is retired.
#[derive(Clone, Copy)]
pub(super) struct Guard<'a> {
    pub into: &'a db::Target,
    pub maintenance_db: &'a str,
    pub interrupt: Option<&'a tokio::sync::watch::Receiver<bool>>,
    pub stop_at: Option<Instant>,
}

impl Guard<'_> {
    /// Creates the database and its role, runs `fill` (given the server's version and the role), retires the
    /// role's login; drops both on any failure.
    pub async fn run<T, F, Fut>(self, fill: F) -> Result<T, ArchiveError>
    where
        F: FnOnce(i32, Owner) -> Fut,
        Fut: std::future::Future<Output = Result<T, ArchiveError>>,
    {
        let admin = connect(self.into, self.maintenance_db).await?;
        let name = &self.into.dbname;
        let version = owner::server_version(&admin).await?;
        let mut created = Created::default();
        // Not raced against the interrupt: a CREATE cut off mid-statement would leave a role or a database that
        // `created` does not know of, and only what it knows of is ever dropped.
        let owner = owner::create(&admin, version, name, &mut created).await;
        let work = async {
            let owner = owner?;
            let role = owner.role.clone();
            let done = fill(version, owner).await?;
            let retire = owner::retire_statement(&role);
            admin.batch_execute(&retire).await.map_err(sql_error(retire))?;
            Ok(done)
        };
        let interrupt = async {
            match self.interrupt {
                Some(interrupt) => interrupted(interrupt.clone()).await,
                None => std::future::pending().await,
            }
        };
        let deadline = async {
            match self.stop_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let filled = tokio::select! {
            filled = work => filled,
            () = interrupt => Err(ArchiveError::Interrupted { database: name.clone() }),
            () = deadline => Err(ArchiveError::Deadline { database: name.clone() }),
        };
        let cause = match filled {
            Ok(done) => return Ok(done),
            Err(cause) if created == Created::default() => return Err(cause),
            Err(cause) => cause,
        };
        let role = owner::role_name(name);
        match owner::drop_created(&admin, name, &role, created).await {
            Ok(()) => Err(cause),
            Err(drop_error) => Err(ArchiveError::NotDropped {
                database: name.clone(),
                role,
                drop_error,
                cause: Box::new(cause),
            }),
        }
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

pub(super) async fn connect(into: &db::Target, dbname: &str) -> Result<tokio_postgres::Client, ArchiveError> {
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

/// pg_restore into the new database, logged in as its owner role: objects owned by that role, none of the
/// archive's grants (they name the source's roles; see [`super::owner`]), and the first error stops it. Chosen
/// `tables` come back whole: with their defaults, constraints, indexes and sequences
/// ([`super::select::whole_tables`]), not only their rows as `pg_restore -t` gives them.
pub(super) fn sink(pg_restore: &str, into: &db::Target, owner: &Owner, tables: Vec<TableCount>) -> Sink {
    let dbname = format!("dbname='{}'", into.dbname.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut args: Vec<String> = ["--no-owner", "--no-privileges", "--exit-on-error", "-d"]
        .map(str::to_owned)
        .into();
    args.push(dbname);
    Sink {
        program: pg_restore.to_owned(),
        args,
        env: owner.target(into, &into.dbname).libpq_env(),
        tables,
        rewrite: None,
    }
}

/// Fences the created database, fills it as its owner role, verifies it, and retires the role's login.
async fn fill(
    req: Request<'_>,
    version: i32,
    owner: &Owner,
    selected: &[TableCount],
    whole: Vec<TableCount>,
) -> Result<Report, ArchiveError> {
    let as_owner = prepare_inside(req.into, version, owner, &whole).await?;
    let sink = Sink {
        rewrite: req.rewrite.cloned(),
        ..sink(req.pg_restore, req.into, owner, whole)
    };
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
    let counted = count_rows(req, &as_owner, selected).await;
    let mismatches = compare_exact(selected, &counted);
    if !mismatches.is_empty() {
        return Err(ArchiveError::RowCounts { mismatches });
    }
    drop(as_owner);
    Ok(Report {
        left_out: streamed.left_out,
        database: req.into.dbname.clone(),
        owner_role: owner.role.clone(),
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

/// Fences the new database (servers older than 15), then, logged in as its owner role, revokes PUBLIC's EXECUTE
/// on what the restore will create and creates the schemas of the chosen `tables` (a list of tables restores
/// tables, not their schemas). Answers the owner's connection, for the row counts.
pub(super) async fn prepare_inside(
    into: &db::Target,
    version: i32,
    owner: &Owner,
    tables: &[TableCount],
) -> Result<tokio_postgres::Client, ArchiveError> {
    let fence = owner::fence_public_statements(version, &owner.role);
    if !fence.is_empty() {
        let inside = connect(into, &into.dbname).await?;
        for statement in fence {
            inside
                .batch_execute(&statement)
                .await
                .map_err(sql_error(format!("{statement} in {}", into.dbname)))?;
        }
    }
    let as_owner = db::connect(&owner.target(into, &into.dbname), CONNECT_TIMEOUT).await?;
    as_owner
        .batch_execute(owner::DEFAULT_PRIVILEGES)
        .await
        .map_err(sql_error(owner::DEFAULT_PRIVILEGES.to_owned()))?;
    for schema in tables
        .iter()
        .map(|t| &t.schema)
        .collect::<std::collections::BTreeSet<_>>()
    {
        as_owner
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)))
            .await
            .map_err(sql_error(format!("creating schema {schema}")))?;
    }
    Ok(as_owner)
}

/// Refuses up front a work directory without room for the plaintext archive (the manifest records its exact size).
/// Public for the CLI's `restore --dry-run`, which makes every check the restore makes before it creates anything.
pub fn check_workdir(jobs: &Jobs<'_>, plaintext_bytes: u64) -> Result<(), ArchiveError> {
    let dir = jobs.workdir.display().to_string();
    let stat = rustix::fs::statvfs(jobs.workdir).map_err(|e| ArchiveError::Workdir {
        dir: dir.clone(),
        source: e.into(),
    })?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    Ok(check_room(&dir, plaintext_bytes, free, jobs.reserve_bytes)?)
}

/// The plaintext into a 0600 file in the work directory, every check of the stream passed, then
/// `pg_restore --jobs` on it. The file is removed when this returns or is dropped (failure, interruption); one
/// left by a restore whose process was killed is removed by the next restore's sweep ([`restore`]).
async fn through_file(req: Request<'_>, sink: Sink, jobs: &Jobs<'_>) -> Result<Streamed, ArchiveError> {
    let workdir = |source| ArchiveError::Workdir {
        dir: jobs.workdir.display().to_string(),
        source,
    };
    let file = plaintext::create(jobs.workdir).map_err(workdir)?;
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
    let reread = std::fs::File::open(file.path()).map_err(workdir)?;
    let (_, chosen) = super::stream::choose_entries(Box::new(reread), &sink.tables)?;
    streamed.left_out.clone_from(&chosen.left_out);
    let out = tokio::process::Command::new(&sink.program)
        .args(&sink.args)
        .args(chosen.list_args())
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
/// Counted as the owner role, like everything else that runs in the new database.
async fn count_rows(req: Request<'_>, client: &tokio_postgres::Client, tables: &[TableCount]) -> BTreeMap<String, i64> {
    count_tables(client, tables, &req.counters.counted).await
}

/// Counts each table's rows exactly (keyed by `schema.name`); a table that cannot be counted is left out.
pub(super) async fn count_tables(
    client: &tokio_postgres::Client,
    tables: &[TableCount],
    counted: &std::sync::atomic::AtomicU64,
) -> BTreeMap<String, i64> {
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
        counted.fetch_add(1, Ordering::Relaxed);
    }
    out
}
