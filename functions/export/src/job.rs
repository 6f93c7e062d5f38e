//! One database's export, step by step: gather the facts (existing manifest, credentials, server version and
//! size, tool versions, tables), ask `lifeboat::postgres::export` for each verdict, then stream, verify and record.
//!
//! Never completes an upload that is not verified, never writes a manifest before the upload is complete, and
//! aborts the upload on every failure between starting and completing it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat::bucket::manifest::{self, Manifest};
use lifeboat::postgres::db::{self, Target};
use lifeboat::postgres::dump_format::TableRows;
use lifeboat::postgres::export::{self as rules, ForeignKey, Profile, Refusal, Table};
use lifeboat::rds::selection::Database;
use tokio::process::Command;
use tokio_postgres::{Client, IsolationLevel, Transaction};

use crate::deps::Deps;
use crate::error::ExportError;
use crate::pipeline::{self, Options, Output};
use crate::s3::{self, Written};
use crate::settings::ExportSettings;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One database's export: what to dump, under which keys, by when.
#[derive(Debug)]
pub struct ExportJob<'a> {
    pub db: &'a Database,
    pub profile_name: &'a str,
    pub profile: &'a Profile,
    /// The logical time: it names the objects.
    pub at: DateTime<Utc>,
    pub deadline: Option<Instant>,
    pub key: String,
    pub manifest_key: String,
    pub started_at: DateTime<Utc>,
    pub started: Instant,
    /// The plan and plan version a plan tick followed, recorded in the manifest (`None` without a plan).
    pub followed: Option<&'a Followed>,
}

/// The plan an export followed: the plan's name and the label of the document's version in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub plan: String,
    pub version: String,
    /// The plan's `watch` thresholds (every default when it states none).
    pub watch: lifeboat::watch::thresholds::WatchRule,
}

/// How an export ended when nothing went wrong.
#[derive(Debug)]
pub enum Done {
    /// The manifest written, and the CPU each stage took (reported, not recorded).
    Exported(Box<Manifest>, crate::cpu::CpuSeconds),
    AlreadyThere,
    Refused(Refusal),
}

/// The server's own account of itself.
struct Server {
    version: String,
    version_num: i32,
    size: i64,
}

/// The client tools' versions, recorded in the manifest.
struct Tools {
    pg_dump: String,
    pg_restore: String,
}

/// What the manifest records about the source, gathered before the dump.
struct Facts {
    server: Server,
    tools: Tools,
    dbname: String,
}

/// The read-only transaction whose snapshot pg_dump dumps and the counts read, the tables it holds (`all`) and
/// those whose data the profile selects (`tables`), and its large objects.
struct Snapshot<'c> {
    tx: Transaction<'c>,
    id: String,
    all: Vec<Table>,
    tables: Vec<Table>,
    large_objects: i64,
}

/// What the pipeline wrote and the rows counted in the same snapshot.
struct Streamed {
    output: Output,
    counts: Vec<manifest::TableCount>,
    large_objects: i64,
}

pub async fn run(deps: &Deps, job: &ExportJob<'_>) -> Result<Done, ExportError> {
    let settings = &deps.settings;
    if s3::exists(&deps.s3, &settings.bucket, &job.manifest_key).await? {
        return Ok(Done::AlreadyThere);
    }
    let target = target(deps, job.db).await?;
    let mut client = db::connect(&target, CONNECT_TIMEOUT).await?;
    let server = server(&client).await?;
    let time_left = job.deadline.map(|d| d.saturating_duration_since(Instant::now()));
    if let Err(refusal) = rules::admit(server.size, settings.mib_per_second, time_left) {
        return Ok(Done::Refused(refusal));
    }
    let facts = Facts {
        tools: tools(settings, &server).await?,
        server,
        dbname: target.dbname.clone(),
    };
    let sizing = rules::part_sizing(facts.server.size, settings.part_size, settings.parts_in_flight);
    tracing::info!(db = %job.db.id, part_size = sizing.part_size, parts_in_flight = sizing.parts_in_flight,
        memory_bytes = sizing.memory_bytes, "part size for the database's size");
    let snapshot = snapshot(&mut client, job).await?;
    let upload = s3::start(
        &deps.s3,
        &settings.bucket,
        &job.key,
        job.profile_name,
        settings.kms_key_id.as_deref(),
        job.profile.lock_until(job.at),
    )
    .await?;
    let streamed = match stream(settings, job, &target, &snapshot, &upload, sizing).await {
        Ok(s) => s,
        Err(e) => return Err(abort(&upload, e).await),
    };
    // The transaction is read-only and only held the snapshot open while pg_dump and the counts read it; both
    // are done and verified. A failed commit changes nothing in the database or the export, so it is logged,
    // not made a failure of a complete export (the connection closes right after either way).
    if let Err(e) = snapshot.tx.commit().await {
        tracing::warn!(db = %job.db.id, error = %db::describe(&e), "snapshot transaction not committed");
    }
    finish(deps, job, &upload, facts, streamed).await
}

/// One snapshot for pg_dump and the row counts: the manifest's counts are exactly what the dump holds.
async fn snapshot<'c>(client: &'c mut Client, job: &ExportJob<'_>) -> Result<Snapshot<'c>, ExportError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(ExportError::query("starting the snapshot transaction"))?;
    let id: String = tx
        .query_one("select pg_export_snapshot()", &[])
        .await
        .map_err(ExportError::query("exporting the snapshot"))?
        .get(0);
    let all = list_tables(&tx).await?;
    let tables = rules::select_tables(all.clone(), job.profile, job.profile_name, &job.db.id)?;
    rules::check_foreign_keys(&tables, &foreign_keys(&tx).await?, job.profile_name, &job.db.id)?;
    let large_objects: i64 = tx
        .query_one("select count(*) from pg_largeobject_metadata", &[])
        .await
        .map_err(ExportError::query("counting large objects"))?
        .get(0);
    Ok(Snapshot {
        tx,
        id,
        all,
        tables,
        large_objects,
    })
}

/// Credentials and address: the secret first, then the database's endpoint.
async fn target(deps: &Deps, db: &Database) -> Result<Target, ExportError> {
    let secret_id = db.secret_id().ok_or(ExportError::NoCredentials)?;
    let secret = db::read_secret(&deps.secrets, secret_id).await?;
    let endpoints: Vec<String> = db
        .endpoint
        .iter()
        .map(|(h, _)| h.clone())
        .chain(db.aliases.clone())
        .collect();
    rules::check_host(
        secret_id,
        &db.id,
        secret.host.as_deref(),
        &endpoints,
        deps.settings.allow_any_host,
    )?;
    let endpoint = db.endpoint.as_ref().map(|(h, p)| (h.as_str(), *p));
    let (host, port) = rules::address(secret.host.as_deref(), secret.port, endpoint)
        .ok_or_else(|| ExportError::NoAddress(secret_id.to_owned()))?;
    Ok(Target {
        host,
        port,
        dbname: secret.dbname.clone().unwrap_or_else(|| "postgres".to_owned()),
        user: secret.username.clone(),
        password: secret.password.clone(),
        tls: deps.settings.tls.clone(),
    })
}

async fn server(client: &Client) -> Result<Server, ExportError> {
    let row = client
        .query_one(
            "select current_setting('server_version'), current_setting('server_version_num')::int, pg_database_size(current_database())",
            &[],
        )
        .await
        .map_err(ExportError::query("reading server version"))?;
    Ok(Server {
        version: row.get(0),
        version_num: row.get(1),
        size: row.get(2),
    })
}

async fn tools(settings: &ExportSettings, server: &Server) -> Result<Tools, ExportError> {
    let pg_dump = tool_version(&settings.pg_dump).await?;
    let pg_restore = tool_version(&settings.pg_restore).await?;
    rules::check_pg_dump(&pg_dump, &server.version, server.version_num)?;
    Ok(Tools { pg_dump, pg_restore })
}

async fn tool_version(program: &str) -> Result<String, ExportError> {
    let out = Command::new(program)
        .arg("--version")
        .output()
        .await
        .map_err(|source| ExportError::ToolVersion {
            program: program.to_owned(),
            source,
        })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn list_tables(tx: &Transaction<'_>) -> Result<Vec<Table>, ExportError> {
    let rows = tx
        .query(
            "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind = 'r' and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%' \
             order by 1, 2",
            &[],
        )
        .await
        .map_err(ExportError::query("listing tables"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The validated foreign keys between ordinary tables (a partitioned table's keys are read on its partitions,
/// which hold the rows and are what a profile selects).
async fn foreign_keys(tx: &Transaction<'_>) -> Result<Vec<ForeignKey>, ExportError> {
    let rows = tx
        .query(
            "select k.conname, fn.nspname, f.relname, tn.nspname, t.relname from pg_constraint k \
             join pg_class f on f.oid = k.conrelid join pg_namespace fn on fn.oid = f.relnamespace \
             join pg_class t on t.oid = k.confrelid join pg_namespace tn on tn.oid = t.relnamespace \
             where k.contype = 'f' and k.convalidated and f.relkind = 'r' and t.relkind = 'r' \
             order by 2, 3, 1",
            &[],
        )
        .await
        .map_err(ExportError::query("listing foreign keys"))?;
    Ok(rows
        .iter()
        .map(|r| ForeignKey {
            name: r.get(0),
            from: (r.get(1), r.get(2)),
            to: (r.get(3), r.get(4)),
        })
        .collect())
}

/// pg_dump into the pipeline (pg_restore verifying it, the rows counted from the archive's own COPY data).
///
/// Nothing runs past [`rules::stop_at`]: at the deadline's margin the children are killed (dropped) and the
/// caller aborts the upload.
async fn stream(
    settings: &ExportSettings,
    job: &ExportJob<'_>,
    target: &Target,
    snapshot: &Snapshot<'_>,
    upload: &s3::Upload,
    sizing: rules::PartSizing,
) -> Result<Streamed, ExportError> {
    let (dump, verify) = spawn_tools(settings, target, snapshot)?;
    let options = Options {
        zstd_level: settings.zstd_level,
        zstd_workers: settings.zstd_workers,
        recipients: settings.recipients.clone(),
        // Bounded by S3's 5 GiB part, which fits a usize on the 64-bit targets Lambda and ECS run.
        part_size: usize::try_from(sizing.part_size).unwrap_or(settings.part_size),
        parts_in_flight: sizing.parts_in_flight,
        max_parts: i32::try_from(rules::MAX_PARTS).unwrap_or(i32::MAX),
        count_rows: true,
    };
    let work = async {
        let output = pipeline::run(dump, verify, upload, &options).await?;
        let counts = table_counts(&snapshot.tx, &snapshot.tables, &output.tables).await?;
        Ok::<_, ExportError>((output, counts))
    };
    let (output, counts) = match rules::stop_at(job.deadline) {
        Some(at) => tokio::time::timeout_at(at.into(), work)
            .await
            .map_err(|_| ExportError::Deadline(rules::DeadlineStop::after(job.started.elapsed())))??,
        None => work.await?,
    };
    Ok(Streamed {
        output,
        counts,
        large_objects: snapshot.large_objects,
    })
}

/// Starts pg_dump on the snapshot and pg_restore to parse its output.
fn spawn_tools(
    settings: &ExportSettings,
    target: &Target,
    snapshot: &Snapshot<'_>,
) -> Result<(tokio::process::Child, tokio::process::Child), ExportError> {
    let mut dump = Command::new(&settings.pg_dump);
    dump.args(["--format=custom", "--compress=0", "--no-password"])
        .arg(format!("--snapshot={}", snapshot.id))
        .args(rules::table_args(&snapshot.all, &snapshot.tables))
        .envs(target.libpq_env());
    let mut verify = Command::new(&settings.pg_restore);
    verify.args(["--file=/dev/null"]);
    let dump = pipeline::spawn(dump, false).map_err(|source| ExportError::Spawn {
        tool: "pg_dump",
        program: settings.pg_dump.clone(),
        source,
    })?;
    let verify = pipeline::spawn(verify, true).map_err(|source| ExportError::Spawn {
        tool: "pg_restore",
        program: settings.pg_restore.clone(),
        source,
    })?;
    Ok((dump, verify))
}

/// The manifest's count of each selected table: the rows its data holds in the archive, counted as it streamed
/// by. A selected table the archive holds no data for (an extension's own table, whose rows pg_dump leaves to
/// the extension) is counted with `count(*)` in the same snapshot, so every count stays exact.
async fn table_counts(
    tx: &Transaction<'_>,
    tables: &[Table],
    streamed: &[TableRows],
) -> Result<Vec<manifest::TableCount>, ExportError> {
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let (schema, name) = table;
        let in_archive = streamed.iter().find(|t| &t.schema == schema && &t.name == name);
        let rows = match in_archive {
            Some(t) => i64::try_from(t.rows).map_err(|_| ExportError::RowCount {
                table: format!("{schema}.{name}"),
                rows: t.rows,
            })?,
            None => count_one(tx, table).await?,
        };
        out.push(manifest::TableCount {
            schema: schema.clone(),
            name: name.clone(),
            rows,
        });
    }
    Ok(out)
}

async fn count_one(tx: &Transaction<'_>, table: &Table) -> Result<i64, ExportError> {
    let (schema, name) = table;
    tracing::info!(schema = %schema, table = %name, "no data in the archive for a selected table: counted with count(*)");
    Ok(tx
        .query_one(&rules::count_sql(table), &[])
        .await
        .map_err(ExportError::query(format!("counting {schema}.{name}")))?
        .get(0))
}

/// Completes the upload, checks what S3 stored, and writes the manifest last.
async fn finish(
    deps: &Deps,
    job: &ExportJob<'_>,
    upload: &s3::Upload,
    facts: Facts,
    streamed: Streamed,
) -> Result<Done, ExportError> {
    let settings = &deps.settings;
    match upload.complete(&streamed.output.parts).await {
        Ok(Written::Created) => {}
        Ok(Written::Exists) => return taken(deps, job, upload).await,
        Err(e) => return Err(abort(upload, e.into()).await),
    }
    let stored = s3::size(&deps.s3, &settings.bucket, &job.key).await?;
    rules::check_stored_size(stored, streamed.output.stored_bytes)?;
    let cpu = streamed.output.cpu;
    let manifest = manifest(settings, job, facts, streamed);
    let body = serde_json::to_vec_pretty(&manifest)?;
    let written = s3::put_json(
        &deps.s3,
        &settings.bucket,
        &job.manifest_key,
        job.profile_name,
        body,
        settings.kms_key_id.as_deref(),
    )
    .await?;
    if written == Written::Exists {
        return Err(ExportError::ManifestExists(job.manifest_key.clone()));
    }
    Ok(Done::Exported(Box::new(manifest), cpu))
}

/// The export's key already holds an object (a retried or concurrent run): it is never overwritten. The upload
/// is aborted; if that run's manifest is there by now, the export exists and this run made no second one,
/// otherwise the object is unproven and the run fails naming it.
async fn taken(deps: &Deps, job: &ExportJob<'_>, upload: &s3::Upload) -> Result<Done, ExportError> {
    let err = abort(upload, ExportError::ObjectExists(job.key.clone())).await;
    match s3::exists(&deps.s3, &deps.settings.bucket, &job.manifest_key).await {
        Ok(true) => Ok(Done::AlreadyThere),
        Ok(false) => Err(err),
        Err(e) => {
            tracing::warn!(db = %job.db.id, error = %e, "manifest not checked after a taken key");
            Err(err)
        }
    }
}

/// Aborts the upload after `cause`; the cause is what is reported, with the abort's own failure if it failed.
async fn abort(upload: &s3::Upload, cause: ExportError) -> ExportError {
    match upload.abort().await {
        Ok(()) => cause,
        Err(abort) => ExportError::AbortFailed {
            cause: Box::new(cause),
            abort,
        },
    }
}

fn manifest(settings: &ExportSettings, job: &ExportJob<'_>, facts: Facts, streamed: Streamed) -> Manifest {
    let Facts { server, tools, dbname } = facts;
    let Streamed {
        output,
        counts,
        large_objects,
    } = streamed;
    let catalog = output.catalog;
    Manifest {
        format_version: manifest::FORMAT_VERSION,
        lifeboat_version: lifeboat::core::VERSION.to_owned(),
        database: job.db.id.clone(),
        profile: job.profile_name.to_owned(),
        logical_time: job.at,
        started_at: job.started_at,
        finished_at: Utc::now(),
        duration_seconds: job.started.elapsed().as_secs_f64(),
        source: manifest::Source {
            engine: job.db.engine.clone(),
            server_version: server.version,
            dbname,
            database_size_bytes: server.size,
        },
        pg_dump_version: tools.pg_dump,
        tables: counts,
        large_objects,
        plaintext: manifest::Digest {
            bytes: output.plaintext_bytes,
            sha256: output.plaintext_sha256,
        },
        stored: manifest::Stored {
            bucket: settings.bucket.clone(),
            key: job.key.clone(),
            bytes: output.stored_bytes,
            sha256: output.stored_sha256,
            parts: output.parts.len(),
            sse: "aws:kms".to_owned(),
            kms_key_id: settings.kms_key_id.clone(),
            object_lock_until: job.profile.lock_until(job.at),
        },
        compression: manifest::Compression {
            algorithm: "zstd".to_owned(),
            level: settings.zstd_level,
        },
        encryption: (!settings.recipients.is_empty()).then(|| manifest::Encryption {
            algorithm: "age-x25519".to_owned(),
            recipients: settings.recipient_keys.clone(),
        }),
        verification: manifest::Verification {
            method: "whole plaintext stream parsed by pg_restore --file=/dev/null".to_owned(),
            pg_restore_version: tools.pg_restore,
        },
        plan: job.followed.map(|f| f.plan.clone()),
        plan_version: job.followed.map(|f| f.version.clone()),
        catalog,
    }
}
