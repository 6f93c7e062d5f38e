//! The four commands, carried out with `lifeboat::postgres::archive` and `lifeboat::evidence`. Results go to stdout, progress and errors to
//! stderr. Nothing here prints a password: the target is only ever shown through [`crate::url::redacted`].

use std::sync::Arc;

use lifeboat::bucket::manifest::Manifest;
use lifeboat::core::settings::ProcessEnv;
use lifeboat::postgres::archive::{self, report, restore, ArchiveError, Counters, Identity};

use crate::args::{Common, IdentitySource, Restore, UsageError};
use crate::progress::{self, Totals};
use crate::url::{self, UrlError};

/// Why a command failed: a usage error exits 2, everything else 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("no bucket: pass --bucket or set LIFEBOAT_BUCKET")]
    NoBucket,
    #[error("reading the identity file {path}: {source}")]
    IdentityFile { path: String, source: std::io::Error },
    #[error("{0} holds no age identity (lines of AGE-SECRET-KEY-1..., as age-keygen writes them)")]
    NotAnIdentity(String),
    #[error("reading secret {secret}: {message}")]
    Secret { secret: String, message: String },
    #[error("interrupted (Ctrl-C) before the restore started: nothing was created")]
    InterruptedEarly,
    #[error("interrupted (Ctrl-C): the restore into {database} stopped, and the database it had created was dropped")]
    Interrupted { database: String },
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{0}")]
    Period(#[from] lifeboat::evidence::period::PeriodError),
    #[error(transparent)]
    Config(#[from] lifeboat::core::error::ConfigError),
    #[error("reading the fleet: {0}")]
    Gather(lifeboat::core::error::Error),
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("the report could not be written as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The exit code of a command stopped by SIGINT, as shells report it (128 + 2).
pub const INTERRUPTED: u8 = 130;

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Url(_) | Self::NoBucket | Self::Period(_) | Self::Config(_) => 2,
            Self::InterruptedEarly | Self::Interrupted { .. } => INTERRUPTED,
            Self::Archive(e) if e.is_interrupted() => INTERRUPTED,
            _ => 1,
        }
    }
}

/// What every command needs: S3 (and Secrets Manager for identities), the bucket, and pg_restore.
struct Context {
    s3: aws_sdk_s3::Client,
    sm: aws_sdk_secretsmanager::Client,
    bucket: String,
    pg_restore: String,
}

async fn context(common: &Common) -> Result<Context, CliError> {
    let bucket = common
        .bucket
        .clone()
        .or_else(|| lifeboat::core::settings::read(&ProcessEnv, lifeboat::core::settings::BUCKET))
        .ok_or(CliError::NoBucket)?;
    let config = lifeboat::core::aws::load_config().await;
    Ok(Context {
        s3: aws_sdk_s3::Client::new(&config),
        sm: aws_sdk_secretsmanager::Client::new(&config),
        bucket,
        pg_restore: common
            .pg_restore
            .clone()
            .unwrap_or_else(|| lifeboat::core::settings::pg_restore(&ProcessEnv)),
    })
}

async fn identities(ctx: &Context, source: Option<&IdentitySource>) -> Result<Vec<Identity>, CliError> {
    let (text, from) = match source {
        None => return Ok(Vec::new()),
        Some(IdentitySource::File(path)) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| CliError::IdentityFile {
                path: shown.clone(),
                source,
            })?;
            (text, shown)
        }
        Some(IdentitySource::Secret(id)) => {
            let out = ctx
                .sm
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| CliError::Secret {
                    secret: id.clone(),
                    message: lifeboat::core::error::aws_error_message(&e),
                })?;
            (
                out.secret_string().unwrap_or_default().to_owned(),
                format!("secret {id}"),
            )
        }
    };
    archive::parse_identities(&text).ok_or(CliError::NotAnIdentity(from))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `lifeboat exports`: one line per complete export.
pub async fn exports(db: &str, profile: Option<&str>, common: &Common) -> Result<(), CliError> {
    let ctx = context(common).await?;
    let list = archive::list_exports(&ctx.s3, &ctx.bucket, db, profile).await?;
    if list.is_empty() {
        eprintln!(
            "no complete export of {db}{} in s3://{}",
            profile.map(|p| format!(" ({p})")).unwrap_or_default(),
            ctx.bucket
        );
        return Ok(());
    }
    println!(
        "{:<21} {:<12} {:>10} {:>6}  {:<24} MANIFEST",
        "TIME", "PROFILE", "SIZE", "TABLES", "VERIFIED"
    );
    for (key, m) in &list {
        println!(
            "{:<21} {:<12} {:>10} {:>6}  {:<24} {key}",
            m.logical_time.format("%Y-%m-%dT%H:%M:%SZ"),
            m.profile,
            mib(m.stored.bytes),
            m.tables.len(),
            verified(m),
        );
    }
    Ok(())
}

/// How the export was proven readable when it was made.
fn verified(m: &Manifest) -> String {
    format!("yes ({})", m.verification.method)
}

fn totals(m: &Manifest, tables: u64) -> Totals {
    Totals {
        stored: m.stored.bytes,
        plain: m.plaintext.bytes,
        tables,
    }
}

/// `lifeboat restore`.
pub async fn restore(args: &Restore) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let started_at = chrono::Utc::now();
    // From here on Ctrl-C is ours: before the target exists it stops the command with nothing created.
    let interrupt = on_ctrl_c();
    let env_user = std::env::var("PGUSER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_default();
    let env_password = std::env::var("PGPASSWORD").ok();
    let into = url::parse(&args.into, &env_user, env_password.as_deref())?;
    let ctx = context(&args.common).await?;
    let profile = match args.which {
        archive::Which::Manifest(_) => None,
        _ => Some(args.profile.as_str()),
    };
    let (key, manifest) = archive::find_export(&ctx.s3, &ctx.bucket, &args.db, profile, &args.which).await?;
    let ids = identities(&ctx, args.identity.as_ref()).await?;
    if *interrupt.borrow() {
        return Err(CliError::InterruptedEarly);
    }
    eprintln!("restoring {key} into {}", url::redacted(&into));
    let prepared = started.elapsed().as_secs_f64();
    let workdir = args.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let counters = Arc::new(Counters::default());
    let n = if args.tables.is_empty() {
        manifest.tables.len()
    } else {
        args.tables.len()
    };
    let reporter = progress::start(counters.clone(), totals(&manifest, n as u64));
    let result = restore::restore(restore::Request {
        s3: &ctx.s3,
        bucket: &ctx.bucket,
        manifest: &manifest,
        tables: &args.tables,
        identities: &ids,
        pg_restore: &ctx.pg_restore,
        into: &into,
        maintenance_db: "postgres",
        counters: &counters,
        interrupt: Some(&interrupt),
        jobs: args.jobs.filter(|j| *j > 1).map(|jobs| restore::Jobs {
            jobs,
            workdir: &workdir,
            reserve_bytes: archive::plan::WORKDIR_RESERVE_BYTES,
        }),
        stop_at: None,
    })
    .await;
    drop(reporter);
    if args.report {
        let attempt = report::Attempt {
            source: &args.db,
            manifest_key: &key,
            manifest: &manifest,
            tables: &args.tables,
            target_server: &into.host,
            target_database: &into.dbname,
            by: "lifeboat",
            started_at,
            prepare_seconds: prepared,
        };
        write_report(&ctx, &attempt, &result).await;
    }
    let report = match result {
        Err(ArchiveError::Interrupted { database }) => return Err(CliError::Interrupted { database }),
        other => other?,
    };
    println!("restored {key} into {}", url::redacted(&into));
    println!(
        "owned by role {0} (it cannot log in; `GRANT \"{0}\" TO <user>` lets a user in)",
        report.owner_role
    );
    for t in &report.tables {
        println!(
            "  {}.{}: {} rows restored, {} in the manifest",
            t.schema, t.name, t.restored_rows, t.expected_rows
        );
    }
    let s = &report.stages;
    println!(
        "stages: download {:.1}s, decrypt {:.1}s, restore {:.1}s (streamed: each from the start), verify {:.1}s",
        s.download_seconds, s.decrypt_seconds, s.restore_seconds, s.verify_seconds
    );
    println!(
        "bytes: {} stored, {} plaintext",
        mib(report.stored_bytes),
        mib(report.plaintext_bytes)
    );
    Ok(())
}

/// Writes the restore's report (`--report`) and says where, on stderr; a report that cannot be written is
/// said too, without changing the restore's outcome.
async fn write_report(ctx: &Context, attempt: &report::Attempt<'_>, result: &Result<restore::Report, ArchiveError>) {
    let built = report::build(attempt, result, chrono::Utc::now());
    match report::write(&ctx.s3, &ctx.bucket, &built).await {
        Ok(key) => eprintln!("report: s3://{}/{key}", ctx.bucket),
        Err(e) => eprintln!("lifeboat: the report was not written ({e}); the restore's outcome is unchanged"),
    }
}

/// A flag that turns true at the first Ctrl-C (SIGINT). From then on SIGINT no longer kills the process: the
/// restore sees the flag, drops the database it created, and the command exits with [`INTERRUPTED`].
fn on_ctrl_c() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: stopping; a database this restore created is dropped");
            // No receiver left means the restore is over: nothing to stop.
            let _ = tx.send(true);
        }
    });
    rx
}

/// `lifeboat verify`.
pub async fn verify(key: &str, identity: Option<&IdentitySource>, common: &Common) -> Result<(), CliError> {
    let ctx = context(common).await?;
    let manifest = archive::read_manifest(&ctx.s3, &ctx.bucket, key).await?;
    let ids = identities(&ctx, identity).await?;
    let counters = Arc::new(Counters::default());
    let reporter = progress::start(counters.clone(), totals(&manifest, 0));
    let result = restore::verify(&ctx.s3, &ctx.bucket, &manifest, &ids, &ctx.pg_restore, counters).await;
    drop(reporter);
    let s = result?;
    println!("verified {key}");
    println!(
        "  stored: {} bytes, sha256 {} (as the manifest says)",
        s.stored_bytes, manifest.stored.sha256
    );
    println!(
        "  plaintext: {} bytes, sha256 {} (as the manifest says)",
        s.plain_bytes, manifest.plaintext.sha256
    );
    println!(
        "  pg_restore parsed the whole archive ({} tables in the manifest)",
        manifest.tables.len()
    );
    println!("  took {:.1}s", s.restore.as_secs_f64());
    Ok(())
}

fn write_file(path: &std::path::Path, body: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, body).map_err(|source| CliError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// `lifeboat report`: the fleet's evidence report, written to a local file (and its JSON beside it).
pub async fn report(period: Option<&str>, out: Option<std::path::PathBuf>, common: &Common) -> Result<(), CliError> {
    use lifeboat::evidence::period::Period;
    use lifeboat::evidence::{self, gather};
    let now = chrono::Utc::now();
    let period = Period::parse(period, now)?;
    let selector = lifeboat::rds::settings::CommonSettings::from_env(&ProcessEnv)?.selector;
    let policy = lifeboat::monitoring::settings::monitor_policy(&ProcessEnv)?;
    let ctx = context(common).await?;
    let rds = aws_sdk_rds::Client::new(&lifeboat::core::aws::load_config().await);
    let all = lifeboat::rds::selection::discover(&rds)
        .await
        .map_err(CliError::Gather)?;
    let chosen = lifeboat::rds::selection::select(&all, &selector);
    let src = gather::Sources {
        rds: &rds,
        s3: &ctx.s3,
        bucket: &ctx.bucket,
    };
    let facts = gather::fleet(src, &chosen.databases, &period)
        .await
        .map_err(CliError::Gather)?;
    let report = evidence::rules::build(&facts, &policy, &period, now);
    let html_path = out.unwrap_or_else(|| format!("lifeboat-evidence-{}.html", period.slug).into());
    let json_path = html_path.with_extension("json");
    write_file(&html_path, evidence::html::render(&report).as_bytes())?;
    write_file(&json_path, &serde_json::to_vec_pretty(&report)?)?;
    println!("evidence report for {}: {}", period.label, html_path.display());
    println!("  data: {}", json_path.display());
    for db in &report.databases {
        println!("  {}: {}", db.db, db.verdict.line);
    }
    println!(
        "  {} of {} databases meet their policy",
        report.summary.policies_met, report.summary.databases_covered
    );
    Ok(())
}
