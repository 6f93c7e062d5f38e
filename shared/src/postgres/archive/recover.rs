//! A database (or some of its tables) copied from one server into a NEW database on another, with no file:
//! `pg_dump` of the source database, read as it streams by for the chosen tables' entries, into `pg_restore`
//! logged in as the new database's own role, then every copied table's row count compared with the source's.
//! `lifeboat recover` copies from a scratch instance restored to a point in time (see `crate::recover`).
//!
//! The same rules as a restore from an export, because the data is the same kind of thing: a backup is code. The
//! new database and its role are made and dropped by [`super::restore::Guard`] (refused if either exists; dropped on
//! any failure, interruption or stop time), pg_restore runs as that role with `--no-owner --no-privileges
//! --exit-on-error`, and chosen tables come back whole ([`super::select::whole_tables`]). pg_dump dumps the whole
//! source database and pg_restore's list picks the tables: a foreign key can then be told apart from a table
//! that is merely not chosen (with `pg_dump -t` the referenced table would be missing from the archive, which
//! reads like an object outside it).
//! Never: writes to the source (pg_dump only reads, in one snapshot), or copies into an existing database.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::restore::{count_tables, prepare_inside, Guard, RestoredTable, CONNECT_TIMEOUT};
use super::select::{compare_exact, match_tables};
use super::stream::{pipe, tail, Counters, Sink};
use super::ArchiveError;
use crate::bucket::manifest::TableCount;
use crate::postgres::db;

/// One copy.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The source server, logged in, `dbname` the database to copy.
    pub from: &'a db::Target,
    /// Tables as the caller named them (matched as a restore from an export matches them); empty: every table.
    pub tables: &'a [String],
    pub pg_dump: &'a str,
    pub pg_restore: &'a str,
    /// The target server and the NEW database's name (`dbname`), which must not exist.
    pub into: &'a db::Target,
    /// The database to connect to for `CREATE DATABASE` (`postgres` on RDS).
    pub maintenance_db: &'a str,
    pub counters: &'a Arc<Counters>,
    /// Turns true on Ctrl-C: the copy stops and the new database is dropped.
    pub interrupt: Option<&'a tokio::sync::watch::Receiver<bool>>,
    /// When the copy must have stopped (and the new database been dropped).
    pub stop_at: Option<Instant>,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("from", self.from)
            .field("tables", &self.tables)
            .field("into", self.into)
            .finish_non_exhaustive()
    }
}

/// A copy that completed and was verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Copied {
    pub database: String,
    /// The role that owns the new database (NOLOGIN once done): `GRANT <role> TO <user>` lets a user in.
    pub owner_role: String,
    /// Each copied table with the source's row count (`expected_rows`) and the new database's.
    pub tables: Vec<RestoredTable>,
    /// What belongs to the chosen tables but was left out, and why.
    pub left_out: Vec<String>,
    /// Bytes of archive that went from pg_dump to pg_restore.
    pub archive_bytes: u64,
    pub copy_seconds: f64,
    pub verify_seconds: f64,
}

/// The source database's tables (ordinary and partitioned, outside the system schemas) with their exact row
/// counts, in name order.
pub async fn source_tables(from: &db::Target) -> Result<Vec<TableCount>, ArchiveError> {
    let client = db::connect(from, CONNECT_TIMEOUT).await?;
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' AND NOT c.relispartition ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| ArchiveError::Sql {
            action: format!("listing the tables of {}", from.dbname),
            message: db::describe(&e),
        })?;
    let tables: Vec<TableCount> = rows
        .iter()
        .map(|r| TableCount {
            schema: r.get(0),
            name: r.get(1),
            rows: 0,
        })
        .collect();
    let counted = count_tables(&client, &tables, &std::sync::atomic::AtomicU64::new(0)).await;
    Ok(tables
        .into_iter()
        .map(|t| TableCount {
            rows: counted.get(&t.label()).copied().unwrap_or_default(),
            ..t
        })
        .collect())
}

/// Copies the source database (or `tables` of it) into a new database owned by a new role and verifies the row
/// counts against the source's; on any failure after either was created, drops both again. `source` is what
/// [`source_tables`] answered.
pub async fn copy(req: Request<'_>, source: &[TableCount]) -> Result<Copied, ArchiveError> {
    let (selected, whole) = if req.tables.is_empty() {
        (source.to_vec(), Vec::new())
    } else {
        let selected = match_tables(req.tables, source)?;
        (selected.clone(), selected)
    };
    let guard = Guard {
        into: req.into,
        maintenance_db: req.maintenance_db,
        interrupt: req.interrupt,
        stop_at: req.stop_at,
    };
    guard
        .run(|version, owner| async move {
            let as_owner = prepare_inside(req.into, version, &owner, &whole).await?;
            let started = Instant::now();
            let sink = super::restore::sink(req.pg_restore, req.into, &owner, whole);
            let (archive_bytes, left_out) = dump_into(req, sink).await?;
            let copy_seconds = started.elapsed().as_secs_f64();
            let verifying = Instant::now();
            let counted = count_tables(&as_owner, &selected, &req.counters.counted).await;
            let mismatches = compare_exact(&selected, &counted);
            if !mismatches.is_empty() {
                return Err(ArchiveError::RowCounts { mismatches });
            }
            Ok(Copied {
                database: req.into.dbname.clone(),
                owner_role: owner.role.clone(),
                tables: restored(&selected, &counted),
                left_out,
                archive_bytes,
                copy_seconds,
                verify_seconds: verifying.elapsed().as_secs_f64(),
            })
        })
        .await
}

fn restored(selected: &[TableCount], counted: &BTreeMap<String, i64>) -> Vec<RestoredTable> {
    selected
        .iter()
        .map(|t| RestoredTable {
            schema: t.schema.clone(),
            name: t.name.clone(),
            expected_rows: t.rows,
            restored_rows: counted.get(&t.label()).copied().unwrap_or_default(),
        })
        .collect()
}

/// `pg_dump -Fc -Z0` of the source into pg_restore (the chosen tables' entries only), pumped on a blocking
/// thread; pg_dump's own failure is told before pg_restore's, which then only saw its input end early. pg_dump is
/// killed when this future is dropped (Ctrl-C, the stop time): the pump then sees its input end, and pg_restore
/// ends with the database the guard drops.
async fn dump_into(req: Request<'_>, sink: Sink) -> Result<(u64, Vec<String>), ArchiveError> {
    let mut dump = tokio::process::Command::new(req.pg_dump)
        .args(["--format=custom", "--compress=0", "--no-password"])
        .envs(req.from.libpq_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ArchiveError::StartPgDump {
            program: req.pg_dump.to_owned(),
            source,
        })?;
    let stdout = dump.stdout.take().ok_or(ArchiveError::NoStdin)?;
    // A blocking file: the pump reads it on its own thread, as it reads an export's plaintext.
    let archive = std::fs::File::from(stdout.into_owned_fd().map_err(ArchiveError::Wait)?);
    let counters = req.counters.clone();
    let piped = tokio::task::spawn_blocking(move || pipe(Box::new(archive), sink, &counters)).await?;
    let dumped = dump.wait_with_output().await.map_err(ArchiveError::Wait)?;
    if !dumped.status.success() {
        return Err(ArchiveError::PgDump {
            status: dumped.status.to_string(),
            stderr: tail(&String::from_utf8_lossy(&dumped.stderr)),
        });
    }
    piped
}
