//! The `export` handler: resolve databases and profile, then for each database run one verified export.
//!
//! An export is complete only when pg_dump exited 0, pg_restore parsed the whole stream, and every part is
//! uploaded; only then is the multipart upload completed and, last, the manifest written. On any failure the
//! upload is aborted and no manifest is written, so a truncated dump never looks like a backup.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use lifeboat::db::{self, Target};
use lifeboat::error::Error;
use lifeboat::metrics::Metrics;
use lifeboat::selection::{self, Database, Selector};
use serde::Serialize;
use serde_json::Value;
use tokio::process::Command;

use crate::event::{self, Trigger};
use crate::pipeline::{self, Options};
use crate::s3;
use crate::settings::{ExportSettings, Profile};
use lifeboat::bucket::export_keys;
use lifeboat::manifest::{self, Manifest};

/// Time kept in hand at the end of an invocation for aborting, metrics and the summary.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Deps {
    pub rds: aws_sdk_rds::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub settings: ExportSettings,
}

impl Deps {
    pub fn new(config: &SdkConfig, settings: ExportSettings) -> Self {
        Self {
            rds: aws_sdk_rds::Client::new(config),
            s3: aws_sdk_s3::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            cw: aws_sdk_cloudwatch::Client::new(config),
            settings,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Exported,
    /// The manifest for this database, profile and time exists: a redelivered event makes no second export.
    AlreadyExported,
    /// Would not finish before the invocation's deadline; nothing was started.
    Refused,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub db: String,
    pub outcome: Outcome,
    pub key: String,
    pub manifest_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub plaintext_bytes: u64,
    pub stored_bytes: u64,
    pub seconds: f64,
    pub tables: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub trigger: &'static str,
    pub profile: String,
    pub logical_time: DateTime<Utc>,
    pub exports: Vec<ExportReport>,
    pub failed: usize,
    pub plaintext_bytes: u64,
    pub stored_bytes: u64,
    pub seconds: f64,
    /// This process's own peak resident memory (pg_dump and pg_restore are separate processes).
    pub peak_rss_bytes: u64,
}

pub async fn handle(deps: &Deps, payload: Value, deadline: Option<Instant>) -> Result<Summary, Error> {
    let started = Instant::now();
    let trigger = event::parse(payload)?;
    let all = selection::discover(&deps.rds).await?;
    let (trigger_name, profile_name, profile, at, selection) = match trigger {
        Trigger::Schedule {
            profile,
            time,
            databases,
        } => {
            let p = deps
                .settings
                .profiles
                .get(&profile)
                .cloned()
                .ok_or_else(|| unknown_profile(deps, &profile))?;
            let selector = match databases {
                Some(list) => Selector {
                    databases: list,
                    tag: None,
                },
                None => deps.settings.common.selector.clone(),
            };
            ("schedule", profile, p, time, selection::select(&all, &selector))
        }
        Trigger::Manual {
            database,
            profile,
            tables,
        } => {
            let (name, p) = if tables.is_empty() {
                let name = profile.unwrap_or_else(|| "full".to_owned());
                let p = deps
                    .settings
                    .profiles
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| unknown_profile(deps, &name))?;
                (name, p)
            } else {
                (
                    "manual".to_owned(),
                    Profile {
                        include: tables,
                        ..Profile::default()
                    },
                )
            };
            let selector = Selector {
                databases: vec![database],
                tag: None,
            };
            ("manual", name, p, Utc::now(), selection::select(&all, &selector))
        }
    };

    let mut reports = Vec::new();
    let mut metrics = Metrics::new();
    // One export at a time: each already keeps pg_dump, the compressor and the uploads busy.
    for db in &selection.databases {
        let report = export_one(deps, db, &profile_name, &profile, at, deadline).await;
        let dims = [("DBIdentifier", db.id.as_str()), ("Profile", profile_name.as_str())];
        let ok = matches!(report.outcome, Outcome::Exported | Outcome::AlreadyExported);
        metrics.put("ExportSuccess", f64::from(u8::from(ok)), StandardUnit::Count, &dims);
        if report.outcome == Outcome::Exported {
            metrics.put("ExportDurationSeconds", report.seconds, StandardUnit::Seconds, &dims);
            metrics.put(
                "ExportPlaintextBytes",
                report.plaintext_bytes as f64,
                StandardUnit::Bytes,
                &dims,
            );
            metrics.put(
                "ExportStoredBytes",
                report.stored_bytes as f64,
                StandardUnit::Bytes,
                &dims,
            );
            let rate = report.plaintext_bytes as f64 / report.seconds.max(0.001);
            metrics.put("ExportThroughputBytesPerSecond", rate, StandardUnit::BytesSecond, &dims);
        }
        reports.push(report);
    }
    for missing in &selection.missing {
        let (key, manifest_key) = export_keys(missing, &profile_name, at, !deps.settings.recipients.is_empty());
        metrics.put(
            "ExportSuccess",
            0.0,
            StandardUnit::Count,
            &[("DBIdentifier", missing), ("Profile", &profile_name)],
        );
        reports.push(ExportReport {
            db: missing.clone(),
            outcome: Outcome::Failed,
            key,
            manifest_key,
            error: Some("no instance or cluster with this identifier in the region".into()),
            plaintext_bytes: 0,
            stored_bytes: 0,
            seconds: 0.0,
            tables: 0,
        });
    }
    if let Err(e) = metrics
        .publish(&deps.cw, &deps.settings.common.metrics_namespace, Utc::now())
        .await
    {
        tracing::error!(error = %e, "metrics not published");
    }

    let summary = Summary {
        trigger: trigger_name,
        profile: profile_name,
        logical_time: at,
        failed: reports
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Refused))
            .count(),
        plaintext_bytes: reports.iter().map(|r| r.plaintext_bytes).sum(),
        stored_bytes: reports.iter().map(|r| r.stored_bytes).sum(),
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
        exports: reports,
    };
    let json = serde_json::to_string(&summary).unwrap_or_default();
    tracing::info!(failed = summary.failed, exports = summary.exports.len(), summary = %json, "export run finished");
    if summary.failed > 0 {
        let failures: Vec<String> = summary
            .exports
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Refused))
            .map(|r| format!("{} ({})", r.db, r.error.as_deref().unwrap_or("failed")))
            .collect();
        return Err(Error::PartialFailure(format!(
            "export failed for {} of {} databases: {}; summary: {json}",
            summary.failed,
            summary.exports.len(),
            failures.join(", ")
        )));
    }
    Ok(summary)
}

fn unknown_profile(deps: &Deps, name: &str) -> Error {
    let known: Vec<&str> = deps.settings.profiles.keys().map(String::as_str).collect();
    Error::InvalidEvent(format!(
        "unknown export profile `{name}` (configured: {})",
        known.join(", ")
    ))
}

/// The process's peak resident set size, from `/proc/self/status` (0 where unavailable).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

async fn export_one(
    deps: &Deps,
    db: &Database,
    profile_name: &str,
    profile: &Profile,
    at: DateTime<Utc>,
    deadline: Option<Instant>,
) -> ExportReport {
    let started = Instant::now();
    let (key, manifest_key) = export_keys(&db.id, profile_name, at, !deps.settings.recipients.is_empty());
    let mut report = ExportReport {
        db: db.id.clone(),
        outcome: Outcome::Failed,
        key: key.clone(),
        manifest_key: manifest_key.clone(),
        error: None,
        plaintext_bytes: 0,
        stored_bytes: 0,
        seconds: 0.0,
        tables: 0,
    };
    let result = run_export(deps, db, profile_name, profile, at, deadline, &key, &manifest_key).await;
    report.seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(Done::Exported(m)) => {
            report.outcome = Outcome::Exported;
            report.plaintext_bytes = m.plaintext.bytes;
            report.stored_bytes = m.stored.bytes;
            report.tables = m.tables.len();
            tracing::info!(db = %db.id, profile = profile_name, key = %key, bytes = m.stored.bytes, "export complete");
        }
        Ok(Done::AlreadyThere) => report.outcome = Outcome::AlreadyExported,
        Ok(Done::Refused(why)) => {
            report.outcome = Outcome::Refused;
            tracing::error!(db = %db.id, reason = %why, "export refused");
            report.error = Some(why);
        }
        Err(e) => {
            tracing::error!(db = %db.id, profile = profile_name, error = %e, "export failed");
            report.error = Some(e);
        }
    }
    report
}

enum Done {
    Exported(Box<Manifest>),
    AlreadyThere,
    Refused(String),
}

#[allow(clippy::too_many_arguments)]
async fn run_export(
    deps: &Deps,
    db: &Database,
    profile_name: &str,
    profile: &Profile,
    at: DateTime<Utc>,
    deadline: Option<Instant>,
    key: &str,
    manifest_key: &str,
) -> Result<Done, String> {
    let settings = &deps.settings;
    let started_at = Utc::now();
    let started = Instant::now();
    if s3::exists(&deps.s3, &settings.bucket, manifest_key)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(Done::AlreadyThere);
    }
    let secret_id = db.secret_id().ok_or_else(|| {
        format!(
            "no credentials: tag the database with `{}=<secret name or ARN>` or let RDS manage its master password",
            lifeboat::tags::SECRET
        )
    })?;
    let secret = db::read_secret(&deps.secrets, secret_id)
        .await
        .map_err(|e| e.to_string())?;
    let (host, port) = match (&secret.host, secret.port, &db.endpoint) {
        (Some(h), p, _) => (h.clone(), p.unwrap_or(5432)),
        (None, p, Some((h, ep))) => (h.clone(), p.unwrap_or(*ep)),
        (None, _, None) => {
            return Err(format!(
                "secret {secret_id} has no host and the database reports no endpoint"
            ))
        }
    };
    let target = Target {
        host,
        port,
        dbname: secret.dbname.clone().unwrap_or_else(|| "postgres".to_owned()),
        user: secret.username.clone(),
        password: secret.password.clone(),
        tls: settings.tls.clone(),
    };
    let mut client = db::connect(&target, CONNECT_TIMEOUT).await.map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "select current_setting('server_version'), current_setting('server_version_num')::int, pg_database_size(current_database())",
            &[],
        )
        .await
        .map_err(|e| format!("reading server version: {e}"))?;
    let server_version: String = row.get(0);
    let server_num: i32 = row.get(1);
    let size: i64 = row.get(2);

    if let Some(deadline) = deadline {
        let estimate = Duration::from_secs_f64(size as f64 / (f64::from(settings.mib_per_second) * 1024.0 * 1024.0));
        let remaining = deadline.saturating_duration_since(Instant::now());
        if estimate + DEADLINE_MARGIN > remaining {
            return Ok(Done::Refused(format!(
                "{} MiB at about {} MiB/s needs ~{} s but only {} s remain before the invocation's deadline: run this \
                 export as the ECS task (see README) or raise the function's timeout",
                size / (1024 * 1024),
                settings.mib_per_second,
                estimate.as_secs(),
                remaining.as_secs()
            )));
        }
    }

    let pg_dump_version = tool_version(&settings.pg_dump).await?;
    let pg_restore_version = tool_version(&settings.pg_restore).await?;
    let dump_major =
        major(&pg_dump_version).ok_or_else(|| format!("cannot read pg_dump's version from `{pg_dump_version}`"))?;
    if dump_major < server_num / 10000 {
        return Err(format!(
            "pg_dump {pg_dump_version} is older than the server ({server_version}); an older pg_dump cannot dump a newer server: \
             use a PostgreSQL client at least as new as the server (LIFEBOAT_PG_DUMP)"
        ));
    }

    // One snapshot for pg_dump and the row counts: the manifest's counts are exactly what the dump holds.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| format!("starting the snapshot transaction: {e}"))?;
    let snapshot: String = tx
        .query_one("select pg_export_snapshot()", &[])
        .await
        .map_err(|e| format!("exporting the snapshot: {e}"))?
        .get(0);
    let tables = list_tables(&tx, profile, profile_name, &db.id).await?;

    let mut dump = Command::new(&settings.pg_dump);
    dump.args(["--format=custom", "--compress=0", "--no-password"])
        .arg(format!("--snapshot={snapshot}"));
    if !profile.include.is_empty() {
        for (schema, name) in &tables {
            dump.arg(format!("--table={}.{}", quote_pattern(schema), quote_pattern(name)));
        }
    }
    for pattern in &profile.exclude {
        let (schema, name) = split_name(pattern);
        match schema {
            Some(s) => dump.arg(format!("--exclude-table={}.{}", quote_pattern(s), quote_pattern(name))),
            None => dump.arg(format!("--exclude-table=*.{}", quote_pattern(name))),
        };
    }
    dump.envs(target.libpq_env());
    let mut verify = Command::new(&settings.pg_restore);
    verify.args(["--file=/dev/null"]);

    let lock_until = profile
        .object_lock_days
        .map(|d| at + chrono::Duration::days(i64::from(d)));
    let upload = s3::start(
        &deps.s3,
        &settings.bucket,
        key,
        profile_name,
        settings.kms_key_id.as_deref(),
        lock_until,
    )
    .await
    .map_err(|e| e.to_string())?;
    let dump = match pipeline::spawn(dump, false) {
        Ok(c) => c,
        Err(e) => return Err(abort(&upload, format!("starting pg_dump ({}): {e}", settings.pg_dump)).await),
    };
    let verify = match pipeline::spawn(verify, true) {
        Ok(c) => c,
        Err(e) => return Err(abort(&upload, format!("starting pg_restore ({}): {e}", settings.pg_restore)).await),
    };
    let options = Options {
        zstd_level: settings.zstd_level,
        zstd_workers: settings.zstd_workers,
        recipients: settings.recipients.clone(),
        part_size: settings.part_size,
        parts_in_flight: settings.parts_in_flight,
    };
    let (output, counts) = tokio::join!(pipeline::run(dump, verify, &upload, &options), count_rows(&tx, &tables));
    let output = match output {
        Ok(o) => o,
        Err(e) => return Err(abort(&upload, e.to_string()).await),
    };
    let counts = match counts {
        Ok(c) => c,
        Err(e) => return Err(abort(&upload, e).await),
    };
    tx.commit().await.ok();

    if let Err(e) = upload.complete(&output.parts).await {
        return Err(abort(&upload, e.to_string()).await);
    }
    let stored = s3::size(&deps.s3, &settings.bucket, key)
        .await
        .map_err(|e| e.to_string())?;
    if stored != output.stored_bytes as i64 {
        return Err(format!(
            "the stored object has {stored} bytes, the pipeline wrote {}",
            output.stored_bytes
        ));
    }

    let finished_at = Utc::now();
    let manifest = Manifest {
        format_version: manifest::FORMAT_VERSION,
        lifeboat_version: lifeboat::VERSION.to_owned(),
        database: db.id.clone(),
        profile: profile_name.to_owned(),
        logical_time: at,
        started_at,
        finished_at,
        duration_seconds: started.elapsed().as_secs_f64(),
        source: manifest::Source {
            engine: db.engine.clone(),
            server_version,
            dbname: target.dbname.clone(),
            database_size_bytes: size,
        },
        pg_dump_version,
        tables: counts,
        plaintext: manifest::Digest {
            bytes: output.plaintext_bytes,
            sha256: output.plaintext_sha256,
        },
        stored: manifest::Stored {
            bucket: settings.bucket.clone(),
            key: key.to_owned(),
            bytes: output.stored_bytes,
            sha256: output.stored_sha256,
            parts: output.parts.len(),
            sse: "aws:kms".to_owned(),
            kms_key_id: settings.kms_key_id.clone(),
            object_lock_until: lock_until,
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
            pg_restore_version,
        },
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    s3::put_json(
        &deps.s3,
        &settings.bucket,
        manifest_key,
        profile_name,
        body,
        settings.kms_key_id.as_deref(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Done::Exported(Box::new(manifest)))
}

async fn abort(upload: &s3::Upload, cause: String) -> String {
    match upload.abort().await {
        Ok(()) => cause,
        Err(e) => format!("{cause} (and aborting the upload failed: {e}; the bucket's lifecycle rule removes it)"),
    }
}

async fn tool_version(program: &str) -> Result<String, String> {
    let out = Command::new(program)
        .arg("--version")
        .output()
        .await
        .map_err(|e| format!("running `{program} --version`: {e} (set LIFEBOAT_PG_DUMP / LIFEBOAT_PG_RESTORE)"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The major version in `pg_dump (PostgreSQL) 16.4 (Debian ...)`.
pub fn major(version: &str) -> Option<i32> {
    version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .and_then(|w| w.split('.').next())
        .and_then(|m| m.parse().ok())
}

fn split_name(name: &str) -> (Option<&str>, &str) {
    match name.split_once('.') {
        Some((s, n)) => (Some(s), n),
        None => (None, name),
    }
}

/// Quotes a name for a pg_dump pattern, so it matches exactly that name.
pub fn quote_pattern(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn list_tables(
    tx: &tokio_postgres::Transaction<'_>,
    profile: &Profile,
    profile_name: &str,
    db: &str,
) -> Result<Vec<(String, String)>, String> {
    let rows = tx
        .query(
            "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind = 'r' and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%' \
             order by 1, 2",
            &[],
        )
        .await
        .map_err(|e| format!("listing tables: {e}"))?;
    let all: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let matches = |pattern: &str, (schema, name): &(String, String)| match split_name(pattern) {
        (Some(s), n) => s == schema && n == name,
        (None, n) => n == name,
    };
    for pattern in profile.include.iter().chain(&profile.exclude) {
        if !all.iter().any(|t| matches(pattern, t)) {
            return Err(format!(
                "profile `{profile_name}` names table `{pattern}`, which {db} does not have"
            ));
        }
    }
    Ok(all
        .into_iter()
        .filter(|t| profile.include.is_empty() || profile.include.iter().any(|p| matches(p, t)))
        .filter(|t| !profile.exclude.iter().any(|p| matches(p, t)))
        .collect())
}

async fn count_rows(
    tx: &tokio_postgres::Transaction<'_>,
    tables: &[(String, String)],
) -> Result<Vec<manifest::TableCount>, String> {
    let mut out = Vec::with_capacity(tables.len());
    for (schema, name) in tables {
        let sql = format!("select count(*) from {}.{}", quote_ident(schema), quote_ident(name));
        let rows: i64 = tx
            .query_one(&sql, &[])
            .await
            .map_err(|e| format!("counting {schema}.{name}: {e}"))?
            .get(0);
        out.push(manifest::TableCount {
            schema: schema.clone(),
            name: name.clone(),
            rows,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pg_dump_versions() {
        assert_eq!(major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"), Some(15));
        assert_eq!(major("pg_dump (PostgreSQL) 17.2"), Some(17));
        assert_eq!(major("nonsense"), None);
    }

    #[test]
    fn patterns_match_exact_names() {
        assert_eq!(quote_pattern("users"), "\"users\"");
        assert_eq!(quote_pattern("we\"ird*"), "\"we\"\"ird*\"");
    }
}
