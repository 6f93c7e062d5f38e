//! The verify step: is the restored database there, complete and usable? It connects to the target in its input
//! (the restored instance, or any PostgreSQL a test points it at), so the checks do not depend on RDS.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use lifeboat::db::{self, TlsSettings};
use lifeboat::manifest::Manifest;
use lifeboat::restore::{compare_counts, Check};
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
                Some(v) => {
                    let ok = v == "t" || v.parse::<f64>().is_ok_and(|n| n != 0.0);
                    Check::new(&check.name, ok, format!("returned {v}"))
                }
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

/// Restores the export into a scratch database on the target with pg_restore, compares its row counts with the
/// manifest exactly, and drops the scratch database again.
#[allow(clippy::too_many_arguments)]
pub async fn scratch_restore(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest: &Manifest,
    identity: Option<&age::x25519::Identity>,
    target: &Target,
    tls: &TlsSettings,
    pg_restore: &str,
    scratch: &str,
) -> Check {
    let name = "the latest export restores with pg_restore";
    let encrypted = manifest.encryption.is_some();
    if encrypted && identity.is_none() {
        return Check::skipped(name, "the export is age-encrypted and no identity is configured");
    }
    let admin = db_target(target, &manifest.source.dbname, tls);
    let client = match db::connect(&admin, CONNECT_TIMEOUT).await {
        Ok(c) => c,
        Err(e) => return Check::new(name, false, e.to_string()),
    };
    if let Err(e) = client
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(scratch)))
        .await
    {
        return Check::new(
            name,
            false,
            format!("creating scratch database {scratch}: {}", db::describe(&e)),
        );
    }
    let result = restore_into(
        s3,
        bucket,
        manifest,
        identity,
        &db_target(target, scratch, tls),
        pg_restore,
    )
    .await;
    let check = match result {
        Err(detail) => Check::new(name, false, detail),
        Ok(bytes) => match db::connect(&db_target(target, scratch, tls), CONNECT_TIMEOUT).await {
            Err(e) => Check::new(name, false, e.to_string()),
            Ok(scratch_client) => {
                let expected = expected_counts(manifest);
                let actual = count_rows(&scratch_client, &expected).await;
                let bad: Vec<_> = compare_counts(&expected, &actual, 0.0)
                    .into_iter()
                    .filter(|c| c.result != lifeboat::restore::CheckResult::Passed)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect();
                if bad.is_empty() {
                    Check::new(
                        name,
                        true,
                        format!(
                            "{bytes} bytes restored; {} tables with the manifest's exact row counts",
                            expected.len()
                        ),
                    )
                } else {
                    Check::new(name, false, bad.join("; "))
                }
            }
        },
    };
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

/// Downloads the object to a temporary file, then decrypts and decompresses it straight into pg_restore.
async fn restore_into(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest: &Manifest,
    identity: Option<&age::x25519::Identity>,
    target: &db::Target,
    pg_restore: &str,
) -> Result<u64, String> {
    let key = &manifest.stored.key;
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("downloading {key}: {}", lifeboat::error::aws_error_message(&e)))?;
    let mut file = tempfile_in_tmp().map_err(|e| format!("temporary file: {e}"))?;
    let mut body = object.body.into_async_read();
    let mut async_file = tokio::fs::File::from_std(file.try_clone().map_err(|e| e.to_string())?);
    tokio::io::copy(&mut body, &mut async_file)
        .await
        .map_err(|e| format!("downloading {key}: {e}"))?;
    drop(async_file);
    std::io::Seek::rewind(&mut file).map_err(|e| e.to_string())?;
    let identity = identity.cloned();
    let env = target.libpq_env();
    let pg_restore = pg_restore.to_owned();
    tokio::task::spawn_blocking(move || -> Result<u64, String> {
        let encrypted: Box<dyn Read> = match identity {
            None => Box::new(file),
            Some(id) => {
                let decryptor =
                    age::Decryptor::new(std::io::BufReader::new(file)).map_err(|e| format!("not an age file: {e}"))?;
                Box::new(
                    decryptor
                        .decrypt(std::iter::once(&id as &dyn age::Identity))
                        .map_err(|e| format!("decrypting: {e}"))?,
                )
            }
        };
        let mut plain = zstd::stream::read::Decoder::new(encrypted).map_err(|e| format!("zstd: {e}"))?;
        let mut child = Command::new(&pg_restore)
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
            .map_err(|e| format!("starting {pg_restore}: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("pg_restore has no stdin")?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        let copied = loop {
            match plain.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    total += n as u64;
                    if let Err(e) = stdin.write_all(&buf[..n]) {
                        break Err(format!("pg_restore stopped reading: {e}"));
                    }
                }
                Err(e) => break Err(format!("decompressing: {e}")),
            }
        };
        drop(stdin);
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "pg_restore exited {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        copied?;
        Ok(total)
    })
    .await
    .map_err(|e| format!("restore task: {e}"))?
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
