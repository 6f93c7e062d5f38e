//! The verify step: is the restored database there, complete and usable? It connects to the target in its input
//! (the restored instance, or any PostgreSQL a test points it at), so the checks do not depend on RDS.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lifeboat::db::{self, TlsSettings};
use lifeboat::manifest::Manifest;
use lifeboat::restore::{compare_counts, scratch_check, sql_answer_passes, Check};
use lifeboat::rotation::quote_ident;

use crate::event::Target;
use crate::settings::SqlCheck;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn db_target(t: &Target, dbname: &str, tls: &TlsSettings) -> db::Target {
    db::Target {
        host: t.host.clone(),
        port: t.port,
        dbname: dbname.to_owned(),
        user: t.user.clone(),
        password: t.password.clone(),
        tls: tls.clone(),
    }
}

fn expected_counts(m: &Manifest) -> BTreeMap<String, i64> {
    m.tables
        .iter()
        .map(|t| (format!("{}.{}", t.schema, t.name), t.rows))
        .collect()
}

async fn count_rows(client: &tokio_postgres::Client, tables: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for table in tables.keys() {
        let Some((schema, name)) = table.split_once('.') else {
            continue;
        };
        let sql = format!("SELECT count(*) FROM {}.{}", quote_ident(schema), quote_ident(name));
        // A table that cannot be counted is reported missing by the comparison.
        if let Ok(row) = client.query_one(&sql, &[]).await {
            out.insert(table.clone(), row.get::<_, i64>(0));
        }
    }
    out
}

async fn sql_check(client: &tokio_postgres::Client, check: &SqlCheck) -> Check {
    match client.simple_query(&check.sql).await {
        Err(e) => Check::new(&check.name, false, db::describe(&e)),
        Ok(messages) => {
            let first = messages.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or_default().to_owned()),
                _ => None,
            });
            match first {
                None => Check::new(&check.name, false, "returned no row"),
                Some(v) => Check::new(&check.name, sql_answer_passes(&v), format!("returned {v}")),
            }
        }
    }
}

/// Connects, runs `SELECT 1`, the configured SQL checks, and compares row counts with the manifest.
pub async fn database_checks(
    target: &Target,
    tls: &TlsSettings,
    manifest: Option<&Manifest>,
    tolerance_percent: f64,
    checks: &[SqlCheck],
) -> Vec<Check> {
    let dbname = manifest
        .map(|m| m.source.dbname.clone())
        .unwrap_or_else(|| target.dbname.clone());
    let client = match db::connect(&db_target(target, &dbname, tls), CONNECT_TIMEOUT).await {
        Ok(c) => c,
        Err(e) => return vec![Check::new("connect", false, e.to_string())],
    };
    let mut out = vec![Check::new(
        "connect",
        true,
        format!(
            "{}:{}/{dbname} as {} ({})",
            target.host,
            target.port,
            target.user,
            tls.mode.as_str()
        ),
    )];
    for check in checks {
        out.push(sql_check(&client, check).await);
    }
    match manifest {
        None => out.push(Check::skipped(
            "rows match the latest export",
            "no complete export to compare with",
        )),
        Some(m) => {
            let expected = expected_counts(m);
            let actual = count_rows(&client, &expected).await;
            out.extend(compare_counts(&expected, &actual, tolerance_percent));
        }
    }
    out
}

/// A scratch restore of the latest export: where the export is, how to read it, and where it goes.
#[derive(Clone, Copy)]
pub struct Scratch<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
    pub manifest: &'a Manifest,
    /// Decrypts an age-encrypted export; without it such an export is skipped.
    pub identity: Option<&'a age::x25519::Identity>,
    pub target: &'a Target,
    pub tls: &'a TlsSettings,
    pub pg_restore: &'a str,
    /// The scratch database, created and dropped on the target.
    pub database: &'a str,
}

/// Names where the export comes from and goes to; the identity is a secret and is never printed.
impl std::fmt::Debug for Scratch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("bucket", &self.bucket)
            .field("key", &self.manifest.stored.key)
            .field("identity", &self.identity.map(|_| "<secret>"))
            .field("target", self.target)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

const SCRATCH_CHECK: &str = "the latest export restores with pg_restore";

impl Scratch<'_> {
    /// Restores the export into the scratch database with pg_restore, compares its row counts with the manifest
    /// exactly, and drops the scratch database again.
    pub async fn check(&self) -> Check {
        if self.manifest.encryption.is_some() && self.identity.is_none() {
            return Check::skipped(
                SCRATCH_CHECK,
                "the export is age-encrypted and no identity is configured",
            );
        }
        let admin = db_target(self.target, &self.manifest.source.dbname, self.tls);
        let client = match db::connect(&admin, CONNECT_TIMEOUT).await {
            Ok(c) => c,
            Err(e) => return Check::new(SCRATCH_CHECK, false, e.to_string()),
        };
        let scratch = self.database;
        if let Err(e) = client
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(scratch)))
            .await
        {
            return Check::new(
                SCRATCH_CHECK,
                false,
                format!("creating scratch database {scratch}: {}", db::describe(&e)),
            );
        }
        let check = self.restore_and_count().await;
        if let Err(e) = client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(scratch)
            ))
            .await
        {
            tracing::warn!(database = scratch, error = %db::describe(&e), "could not drop the scratch database");
        }
        check
    }

    /// Restores into the (created) scratch database and judges its row counts.
    async fn restore_and_count(&self) -> Check {
        let scratch = db_target(self.target, self.database, self.tls);
        let bytes = match self.restore_into(&scratch).await {
            Ok(bytes) => bytes,
            Err(e) => return Check::new(SCRATCH_CHECK, false, e.to_string()),
        };
        match db::connect(&scratch, CONNECT_TIMEOUT).await {
            Err(e) => Check::new(SCRATCH_CHECK, false, e.to_string()),
            Ok(client) => {
                let expected = expected_counts(self.manifest);
                let actual = count_rows(&client, &expected).await;
                scratch_check(SCRATCH_CHECK, bytes, &expected, &actual)
            }
        }
    }

    /// Downloads the object to a temporary file, then decrypts and decompresses it straight into pg_restore.
    async fn restore_into(&self, target: &db::Target) -> Result<u64, ScratchError> {
        let file = download(self.s3, self.bucket, &self.manifest.stored.key).await?;
        let identity = self.identity.cloned();
        let env = target.libpq_env();
        let pg_restore = self.pg_restore.to_owned();
        tokio::task::spawn_blocking(move || pipe(file, identity, &env, &pg_restore)).await?
    }
}

/// Why the scratch restore failed; the message becomes the check's detail.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("downloading {key}: {message}")]
    Download { key: String, message: String },
    #[error("temporary file: {0}")]
    TempFile(#[source] std::io::Error),
    /// Reopening or rewinding the downloaded file, or waiting for pg_restore.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not an age file: {0}")]
    NotAge(#[source] age::DecryptError),
    #[error("decrypting: {0}")]
    Decrypt(#[source] age::DecryptError),
    #[error("zstd: {0}")]
    Zstd(#[source] std::io::Error),
    #[error("starting {program}: {source}")]
    Start { program: String, source: std::io::Error },
    #[error("pg_restore has no stdin")]
    NoStdin,
    #[error("pg_restore stopped reading: {0}")]
    Stopped(#[source] std::io::Error),
    #[error("decompressing: {0}")]
    Decompress(#[source] std::io::Error),
    #[error("pg_restore exited {status}: {stderr}")]
    Exited {
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("restore task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Downloads an object into an unlinked temporary file, rewound for reading.
async fn download(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<std::fs::File, ScratchError> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| ScratchError::Download {
            key: key.to_owned(),
            message: lifeboat::error::aws_error_message(&e),
        })?;
    let mut file = tempfile_in_tmp().map_err(ScratchError::TempFile)?;
    let mut body = object.body.into_async_read();
    let mut async_file = tokio::fs::File::from_std(file.try_clone()?);
    tokio::io::copy(&mut body, &mut async_file)
        .await
        .map_err(|e| ScratchError::Download {
            key: key.to_owned(),
            message: e.to_string(),
        })?;
    drop(async_file);
    std::io::Seek::rewind(&mut file)?;
    Ok(file)
}

/// The export's plain pg_dump archive: decrypted when an identity is given, then decompressed.
fn plain_reader(file: std::fs::File, identity: Option<age::x25519::Identity>) -> Result<Box<dyn Read>, ScratchError> {
    let encrypted: Box<dyn Read> = match identity {
        None => Box::new(file),
        Some(id) => {
            let decryptor = age::Decryptor::new(std::io::BufReader::new(file)).map_err(ScratchError::NotAge)?;
            Box::new(
                decryptor
                    .decrypt(std::iter::once(&id as &dyn age::Identity))
                    .map_err(ScratchError::Decrypt)?,
            )
        }
    };
    Ok(Box::new(
        zstd::stream::read::Decoder::new(encrypted).map_err(ScratchError::Zstd)?,
    ))
}

/// Starts pg_restore into the database `env` names, reading the archive from its stdin.
fn spawn_pg_restore(pg_restore: &str, env: &[(&'static str, String)]) -> Result<Child, ScratchError> {
    Command::new(pg_restore)
        .args(["--no-owner", "--no-privileges", "--exit-on-error", "-d"])
        .arg(
            env.iter()
                .find(|(k, _)| *k == "PGDATABASE")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default(),
        )
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ScratchError::Start {
            program: pg_restore.to_owned(),
            source,
        })
}

/// Copies everything `plain` gives into `stdin`; the bytes copied, and why the copy stopped early if it did.
fn pump(plain: &mut dyn Read, stdin: &mut dyn Write) -> (u64, Result<(), ScratchError>) {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match plain.read(&mut buf) {
            Ok(0) => return (total, Ok(())),
            Ok(n) => {
                total += n as u64;
                if let Err(e) = stdin.write_all(&buf[..n]) {
                    return (total, Err(ScratchError::Stopped(e)));
                }
            }
            Err(e) => return (total, Err(ScratchError::Decompress(e))),
        }
    }
}

/// Streams the downloaded export into pg_restore (blocking). pg_restore's own failure is reported before a copy
/// error, since it says why it stopped reading.
fn pipe(
    file: std::fs::File,
    identity: Option<age::x25519::Identity>,
    env: &[(&'static str, String)],
    pg_restore: &str,
) -> Result<u64, ScratchError> {
    let mut plain = plain_reader(file, identity)?;
    let mut child = spawn_pg_restore(pg_restore, env)?;
    let mut stdin = child.stdin.take().ok_or(ScratchError::NoStdin)?;
    let (total, copied) = pump(&mut plain, &mut stdin);
    drop(stdin);
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(ScratchError::Exited {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    copied?;
    Ok(total)
}

fn tempfile_in_tmp() -> std::io::Result<std::fs::File> {
    // Lambda's writable space is /tmp; the file is unlinked at once and lives only as long as the handle.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let path = std::env::temp_dir().join(format!("lifeboat-restore-{}-{nanos}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
