//! The four commands, carried out with `lifeboat::postgres::archive` and `lifeboat::evidence`. Each returns what it did as
//! a [`Done`]: a JSON document and the same facts as text; `main` prints one of them on stdout. Progress and
//! messages go to stderr. Nothing here prints a password: the target is only ever shown through
//! [`crate::url::redacted`].
//!
//! Owns: the exit-code classes ([`Kind`]) and which error falls in which. The classes are decided from typed
//! errors only (the library's error variants, the SDK's modelled errors and HTTP statuses), never from message
//! text; an AWS failure the library only keeps as text (`lifeboat::core::error::Error::Aws`) is a plain failure, which
//! is why the bucket and a named manifest are probed here first with `HeadBucket` / `HeadObject`.
//! Never (with `--dry-run`): calls an AWS API that writes, or runs a statement that writes in PostgreSQL.

use std::path::Path;
use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use chrono::{DateTime, NaiveDateTime, Utc};
use lifeboat::bucket::manifest::Manifest;
use lifeboat::core::settings::ProcessEnv;
use lifeboat::postgres::archive::{self, plan, report, restore, select, ArchiveError, Counters, Identity, Which};
use lifeboat::postgres::db::FailureKind;
use serde_json::{json, Value};

use crate::args;
use crate::progress::{self, Totals};
use crate::url::{self, UrlError};

/// What a command failed as: its exit code and its `error.kind` in JSON. The table is in the book's runbook
/// (`docs/book/src/runbooks/lifeboat-tool.md`); a change here is a change of the tool's contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything not classed below: an AWS or PostgreSQL outage, a file that cannot be written.
    Failed,
    /// The command line (or a variable standing for an option) cannot be run; clap's own errors exit 2 too.
    Usage,
    /// What was asked for does not exist: the bucket, an export, a manifest, an identity file or secret.
    NotFound,
    /// The tool, PostgreSQL or AWS refused: bad input (a key that is not a manifest, an unknown table, a wrong
    /// identity, a reserved target name), a target that exists, a permission denied, no room for `--jobs`.
    Refused,
    /// A restore or verification ran and a check failed: a checksum, the decryption, pg_restore's parse (verify)
    /// or a restored row count.
    VerificationFailed,
    /// Ctrl-C; a restore dropped what it had created.
    Interrupted,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Failed => 1,
            Self::Usage => 2,
            Self::NotFound => 3,
            Self::Refused => 4,
            Self::VerificationFailed => 5,
            Self::Interrupted => INTERRUPTED,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Usage => "usage",
            Self::NotFound => "not-found",
            Self::Refused => "refused",
            Self::VerificationFailed => "verification-failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// The exit code of a command stopped by SIGINT, as shells report it (128 + 2).
pub const INTERRUPTED: u8 = 130;

/// Why a command failed; [`CliError::kind`] classes it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("--before {0} is not an RFC 3339 time (e.g. 2026-11-22T12:00:00Z)")]
    Time(String),
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("--into: {0}")]
    TargetName(#[from] plan::TargetNameError),
    #[error("no bucket: pass --bucket or set LIFEBOAT_BUCKET")]
    NoBucket,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("reading the identity file {path}: {source}")]
    IdentityFile { path: String, source: std::io::Error },
    #[error("{0} holds no age identity (lines of AGE-SECRET-KEY-1..., as age-keygen writes them)")]
    NotAnIdentity(String),
    #[error("reading secret {secret}: {message}")]
    Secret { secret: String, message: String },
    #[error("{operation}: {message}")]
    Aws { operation: String, message: String },
    #[error("interrupted (Ctrl-C) before the restore started: nothing was created")]
    InterruptedEarly,
    #[error("interrupted (Ctrl-C): the restore into {database} stopped, and the database it had created was dropped")]
    Interrupted { database: String },
    #[error("--to {0} is not an RFC 3339 time (e.g. 2026-11-22T14:31:00Z)")]
    ToTime(String),
    #[error(transparent)]
    Recover(lifeboat::recover::RecoverError),
    #[error(transparent)]
    Refresh(#[from] lifeboat::refresh::RefreshError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// An error of `verify`, where pg_restore rejecting the archive is the verification failing.
    #[error(transparent)]
    Verify(ArchiveError),
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
    #[error("reading {path}: {source}")]
    ReadFile { path: String, source: std::io::Error },
}

/// The exit class of a recover's failure.
fn recover_kind(e: &lifeboat::recover::RecoverError) -> Kind {
    use lifeboat::recover::RecoverError;
    match e {
        RecoverError::Outside(_) => Kind::Refused,
        RecoverError::Copy(a) => archive_kind(a),
        RecoverError::Interrupted { .. } => Kind::Interrupted,
        RecoverError::NotDeleted { cause, .. } => recover_kind(cause),
        RecoverError::Aws(_) | RecoverError::ScratchFailed { .. } | RecoverError::Deadline { .. } => Kind::Failed,
    }
}

/// The exit class of a refresh's failure. Exhaustive on purpose, as [`archive_kind`] is.
fn refresh_kind(e: &lifeboat::refresh::RefreshError) -> Kind {
    use lifeboat::refresh::RefreshError as R;
    if e.is_interrupted() {
        return Kind::Interrupted;
    }
    match e {
        R::Rules(_) | R::NoCatalog { .. } | R::NotOurs { .. } => Kind::Refused,
        R::Archive(a) => archive_kind(a),
        R::Proof { .. } => Kind::VerificationFailed,
        R::NotDropped { cause, .. } => refresh_kind(cause),
        R::Server { .. } | R::Swap { .. } | R::SwapUndo { .. } => Kind::Failed,
    }
}

impl CliError {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Recover(e) => recover_kind(e),
            Self::Refresh(e) => refresh_kind(e),
            Self::Time(_) | Self::ToTime(_) | Self::Url(_) | Self::NoBucket | Self::Period(_) | Self::Config(_) => {
                Kind::Usage
            }
            Self::TargetName(_) | Self::Refused(_) | Self::NotAnIdentity(_) => Kind::Refused,
            Self::NotFound(_) => Kind::NotFound,
            Self::IdentityFile { source, .. } | Self::ReadFile { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Kind::NotFound,
                std::io::ErrorKind::PermissionDenied => Kind::Refused,
                _ => Kind::Failed,
            },
            Self::InterruptedEarly | Self::Interrupted { .. } => Kind::Interrupted,
            Self::Archive(e) => archive_kind(e),
            Self::Verify(ArchiveError::PgRestore { .. }) => Kind::VerificationFailed,
            Self::Verify(e) => archive_kind(e),
            Self::Gather(e) => aws_kind(e.aws_code()),
            Self::Secret { .. } | Self::Aws { .. } | Self::Write { .. } | Self::Json(_) => Kind::Failed,
        }
    }

    /// The check that failed, for a restore or verification error (`error.check` in JSON).
    pub fn check(&self) -> Option<&'static str> {
        match self {
            Self::Archive(e) | Self::Verify(e) => Some(e.check()),
            Self::Refresh(e) => Some(e.check()),
            _ => None,
        }
    }

    /// The error as the one JSON document of a failed command.
    pub fn to_json(&self) -> Value {
        let kind = self.kind();
        let mut error = json!({
            "kind": kind.as_str(),
            "exit_code": kind.exit_code(),
            "message": self.to_string(),
        });
        if let Some(check) = self.check() {
            error["check"] = json!(check);
        }
        json!({ "error": error })
    }
}

/// The exit class of an AWS failure, from the error code the service sent (never from its message): a refusal
/// (denied, bad credentials) or something missing; anything else, an outage or a fault, is a failure.
fn aws_kind(code: Option<&str>) -> Kind {
    match code {
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "Forbidden"
            | "AllAccessDisabled"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "KMSInvalidStateException"
            | "DisabledException",
        ) => Kind::Refused,
        Some("NoSuchKey" | "NoSuchBucket" | "NotFound" | "ResourceNotFoundException") => Kind::NotFound,
        _ => Kind::Failed,
    }
}

/// The exit class of a library error. Exhaustive on purpose: a new way to fail is classed when it is added.
pub fn archive_kind(e: &ArchiveError) -> Kind {
    use ArchiveError as A;
    match e {
        A::NoExport { .. } => Kind::NotFound,
        A::NotAManifest { .. }
        | A::OtherDatabase { .. }
        | A::Table(_)
        | A::NeedIdentity
        | A::WrongIdentity { .. }
        | A::TargetExists { .. }
        | A::RoleExists { .. }
        | A::NoRoom(_)
        | A::Rewrite(_) => Kind::Refused,
        A::Connect(db) => match db.kind() {
            FailureKind::Authentication | FailureKind::Permission => Kind::Refused,
            _ => Kind::Failed,
        },
        A::StoredChecksum { .. }
        | A::PlaintextChecksum { .. }
        | A::AgeHeader(_)
        | A::Decode(_)
        | A::Toc(_)
        | A::RowCounts { .. } => Kind::VerificationFailed,
        A::NotDropped { cause, .. } => archive_kind(cause),
        A::Interrupted { .. } => Kind::Interrupted,
        A::Aws(e) => aws_kind(e.aws_code()),
        A::Download { .. }
        | A::StartPgRestore { .. }
        | A::StartPgDump { .. }
        | A::PgDump { .. }
        | A::NoStdin
        | A::Wait(_)
        | A::Stopped(_)
        | A::PgRestore { .. }
        | A::Random
        | A::Sql { .. }
        | A::Deadline { .. }
        | A::Workdir { .. }
        | A::WriteFile(_)
        | A::List(_)
        | A::Task(_) => Kind::Failed,
    }
}

/// What a command did: the JSON document `--json` prints, and the text printed otherwise.
#[derive(Debug)]
pub struct Done {
    pub json: Value,
    pub text: String,
}

/// The SDK configuration: the usual chain, with `--profile` (when given) choosing the named profile that
/// `AWS_PROFILE` chooses otherwise, for credentials, region and endpoint alike.
pub async fn aws_config(profile: Option<&str>) -> SdkConfig {
    // The functions' HTTPS client (rustls on ring): the SDK crates are built without a default one, whose
    // aws-lc-rs would otherwise be linked into every function too.
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(lifeboat::core::aws::retry_config())
        .http_client(lifeboat::core::aws::https_client());
    if let Some(name) = profile {
        loader = loader.profile_name(name);
    }
    loader.load().await
}

/// What every command needs: S3 (and Secrets Manager for identities), the bucket, and pg_restore.
pub(crate) struct Context {
    /// `--profile`, when given.
    profile: Option<String>,
    pub(crate) config: SdkConfig,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) sm: aws_sdk_secretsmanager::Client,
    pub(crate) bucket: String,
    pub(crate) pg_restore: String,
}

pub(crate) async fn context(
    profile: Option<&str>,
    bucket: Option<&str>,
    pg_restore: Option<&str>,
) -> Result<Context, CliError> {
    let bucket = bucket
        .map(str::to_owned)
        .or_else(|| lifeboat::core::settings::read(&ProcessEnv, lifeboat::core::settings::BUCKET))
        .ok_or(CliError::NoBucket)?;
    let config = aws_config(profile).await;
    let ctx = Context {
        s3: aws_sdk_s3::Client::new(&config),
        sm: aws_sdk_secretsmanager::Client::new(&config),
        profile: profile.map(str::to_owned),
        config,
        bucket,
        pg_restore: pg_restore
            .map(str::to_owned)
            .unwrap_or_else(|| lifeboat::core::settings::pg_restore(&ProcessEnv)),
    };
    probe_bucket(&ctx).await?;
    Ok(ctx)
}

/// The HTTP status of a failed SDK call, when the service answered.
fn status<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// `HeadBucket` first, so that a missing bucket is "not found" and a denied one "refused" (the listing that
/// follows keeps only the SDK's message).
async fn probe_bucket(ctx: &Context) -> Result<(), CliError> {
    use aws_sdk_s3::operation::head_bucket::HeadBucketError;
    let Err(e) = ctx.s3.head_bucket().bucket(&ctx.bucket).send().await else {
        return Ok(());
    };
    let b = &ctx.bucket;
    match (e.as_service_error(), status(&e)) {
        (Some(HeadBucketError::NotFound(_)), _) | (_, Some(404)) => Err(CliError::NotFound(format!(
            "bucket {b} does not exist (or is in another account)"
        ))),
        (_, Some(403)) => Err(CliError::Refused(format!(
            "access to bucket {b} was denied: the credentials need s3:ListBucket on it"
        ))),
        (None, None) if ctx.profile.is_some() => Err(CliError::Aws {
            operation: format!("HeadBucket {b}"),
            // The likeliest cause after the rename: an export profile given where the AWS profile now goes.
            message: format!(
                "{} (--profile names an AWS named profile; the export profile is --export-profile)",
                lifeboat::core::error::aws_error_message(&e)
            ),
        }),
        _ => Err(CliError::Aws {
            operation: format!("HeadBucket {b}"),
            message: lifeboat::core::error::aws_error_message(&e),
        }),
    }
}

/// `HeadObject` on a manifest key the user named, for the same reason as [`probe_bucket`].
async fn probe_manifest(ctx: &Context, key: &str) -> Result<(), CliError> {
    use aws_sdk_s3::operation::head_object::HeadObjectError;
    if !key.ends_with(lifeboat::bucket::layout::MANIFEST_SUFFIX) {
        // The library refuses it, with the message that says what a manifest key is.
        return Ok(());
    }
    let Err(e) = ctx.s3.head_object().bucket(&ctx.bucket).key(key).send().await else {
        return Ok(());
    };
    match (e.as_service_error(), status(&e)) {
        (Some(HeadObjectError::NotFound(_)), _) | (_, Some(404)) => Err(CliError::NotFound(format!(
            "no manifest {key} in s3://{}: `lifeboat exports <db>` lists the complete exports",
            ctx.bucket
        ))),
        (_, Some(403)) => Err(CliError::Refused(format!(
            "reading {key} was denied: the credentials need s3:GetObject on exports/*"
        ))),
        _ => Err(CliError::Aws {
            operation: format!("HeadObject {key}"),
            message: lifeboat::core::error::aws_error_message(&e),
        }),
    }
}

pub(crate) async fn identities(ctx: &Context, identity: &args::Identity) -> Result<Vec<Identity>, CliError> {
    let (text, from) = match (&identity.identity_file, &identity.identity_secret) {
        (Some(path), _) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| CliError::IdentityFile {
                path: shown.clone(),
                source,
            })?;
            (text, shown)
        }
        (None, Some(id)) => (secret(ctx, id).await?, format!("secret {id}")),
        (None, None) => return Ok(Vec::new()),
    };
    archive::parse_identities(&text).ok_or(CliError::NotAnIdentity(from))
}

pub(crate) async fn secret(ctx: &Context, id: &str) -> Result<String, CliError> {
    use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
    let e = match ctx.sm.get_secret_value().secret_id(id).send().await {
        Ok(out) => return Ok(out.secret_string().unwrap_or_default().to_owned()),
        Err(e) => e,
    };
    let service = e.as_service_error();
    if let Some(GetSecretValueError::ResourceNotFoundException(_)) = service {
        return Err(CliError::NotFound(format!("secret {id} does not exist")));
    }
    if service.and_then(|s| s.code()) == Some("AccessDeniedException") {
        return Err(CliError::Refused(format!(
            "reading secret {id} was denied: the credentials need secretsmanager:GetSecretValue on it"
        )));
    }
    Err(CliError::Secret {
        secret: id.to_owned(),
        message: lifeboat::core::error::aws_error_message(&e),
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An RFC 3339 time, also without seconds (`2026-11-22T12:00Z`).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, CliError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%#z") {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%MZ")
        .map(|t| t.and_utc())
        .map_err(|_| CliError::Time(text.to_owned()))
}

fn which(r: &args::Restore) -> Result<Which, CliError> {
    Ok(match (&r.before, &r.manifest) {
        (Some(t), _) => Which::Before(parse_time(t)?),
        (None, Some(k)) => Which::Manifest(k.clone()),
        (None, None) => Which::Latest,
    })
}

/// One export as `exports` lists it and a restore plan names it.
fn export_json(key: &str, m: &Manifest) -> Value {
    json!({
        "manifest": key,
        "time": time(m.logical_time),
        "export_profile": m.profile,
        "stored_bytes": m.stored.bytes,
        "plaintext_bytes": m.plaintext.bytes,
        "tables": m.tables.len(),
        "encrypted": m.encryption.is_some(),
        "verified": m.verification.method,
    })
}

/// `lifeboat exports`: one line per complete export.
pub async fn exports(a: &args::Exports, profile: Option<&str>) -> Result<Done, CliError> {
    let ctx = context(profile, a.common.bucket.as_deref(), a.common.pg_restore.as_deref()).await?;
    let (db, export_profile) = (&a.database, a.export_profile.as_deref());
    let list = archive::list_exports(&ctx.s3, &ctx.bucket, db, export_profile).await?;
    let json = json!({
        "command": "exports",
        "database": db,
        "export_profile": export_profile,
        "bucket": ctx.bucket,
        "exports": list.iter().map(|(k, m)| export_json(k, m)).collect::<Vec<_>>(),
    });
    if list.is_empty() {
        eprintln!(
            "no complete export of {db}{} in s3://{}",
            export_profile.map(|p| format!(" ({p})")).unwrap_or_default(),
            ctx.bucket
        );
        return Ok(Done {
            json,
            text: String::new(),
        });
    }
    let mut text = format!(
        "{:<21} {:<12} {:>10} {:>6}  {:<24} MANIFEST\n",
        "TIME", "PROFILE", "SIZE", "TABLES", "VERIFIED"
    );
    for (key, m) in &list {
        text.push_str(&format!(
            "{:<21} {:<12} {:>10} {:>6}  {:<24} {key}\n",
            time(m.logical_time),
            m.profile,
            mib(m.stored.bytes),
            m.tables.len(),
            format!("yes ({})", m.verification.method),
        ));
    }
    Ok(Done { json, text })
}

pub(crate) fn totals(m: &Manifest, tables: u64) -> Totals {
    Totals {
        stored: m.stored.bytes,
        plain: m.plaintext.bytes,
        tables,
    }
}

fn target_json(into: &lifeboat::postgres::db::Target, owner_role: &str) -> Value {
    json!({
        "url": url::redacted(into),
        "host": into.host,
        "port": into.port,
        "database": into.dbname,
        "owner_role": owner_role,
    })
}

/// `lifeboat restore` (and its `--dry-run`).
pub async fn restore(r: &args::Restore, profile: Option<&str>) -> Result<Done, CliError> {
    let started = std::time::Instant::now();
    let started_at = Utc::now();
    // From here on Ctrl-C is ours: before the target exists it stops the command with nothing created.
    let interrupt = on_ctrl_c();
    let env_user = std::env::var("PGUSER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_default();
    let env_password = std::env::var("PGPASSWORD").ok();
    let into = url::parse(&r.into, &env_user, env_password.as_deref())?;
    plan::check_target_name(&into.dbname)?;
    let which = which(r)?;
    let ctx = context(profile, r.common.bucket.as_deref(), r.common.pg_restore.as_deref()).await?;
    let export_profile = match which {
        Which::Manifest(ref key) => {
            probe_manifest(&ctx, key).await?;
            None
        }
        _ => Some(r.export_profile.as_str()),
    };
    let (key, manifest) = archive::find_export(&ctx.s3, &ctx.bucket, &r.database, export_profile, &which).await?;
    let ids = identities(&ctx, &r.identity).await?;
    if *interrupt.borrow() {
        return Err(CliError::InterruptedEarly);
    }
    let workdir = r.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let jobs = r.jobs.filter(|j| *j > 1).map(|jobs| restore::Jobs {
        jobs,
        workdir: &workdir,
        reserve_bytes: plan::WORKDIR_RESERVE_BYTES,
    });
    if r.dry_run {
        return dry_run(r, &key, &manifest, &ids, &into, jobs.as_ref()).await;
    }
    eprintln!("restoring {key} into {}", url::redacted(&into));
    let prepared = started.elapsed().as_secs_f64();
    let counters = Arc::new(Counters::default());
    let n = if r.tables.is_empty() {
        manifest.tables.len()
    } else {
        r.tables.len()
    };
    let reporter = progress::start(counters.clone(), totals(&manifest, n as u64));
    let result = restore::restore(restore::Request {
        s3: &ctx.s3,
        bucket: &ctx.bucket,
        manifest: &manifest,
        tables: &r.tables,
        identities: &ids,
        pg_restore: &ctx.pg_restore,
        into: &into,
        maintenance_db: MAINTENANCE_DB,
        counters: &counters,
        interrupt: Some(&interrupt),
        jobs,
        stop_at: None,
        rewrite: None,
    })
    .await;
    drop(reporter);
    let mut report_key = None;
    if r.report {
        let attempt = report::Attempt {
            source: &r.database,
            manifest_key: &key,
            manifest: &manifest,
            tables: &r.tables,
            target_server: &into.host,
            target_database: &into.dbname,
            by: "lifeboat",
            started_at,
            prepare_seconds: prepared,
        };
        report_key = write_report(&ctx, &attempt, &result).await;
    }
    let done = match result {
        Err(ArchiveError::Interrupted { database }) => return Err(CliError::Interrupted { database }),
        other => other?,
    };
    let s = &done.stages;
    let mut text = format!("restored {key} into {}\n", url::redacted(&into));
    text.push_str(&restored_lines(
        &done.owner_role,
        &done.tables,
        &done.left_out,
        "rows restored",
        "the manifest",
    ));
    text.push_str(&format!(
        "stages: download {:.1}s, decrypt {:.1}s, restore {:.1}s (streamed: each from the start), verify {:.1}s\n",
        s.download_seconds, s.decrypt_seconds, s.restore_seconds, s.verify_seconds
    ));
    text.push_str(&format!(
        "bytes: {} stored, {} plaintext\n",
        mib(done.stored_bytes),
        mib(done.plaintext_bytes)
    ));
    let json = json!({
        "command": "restore",
        "dry_run": false,
        "database": r.database,
        "export": export_json(&key, &manifest),
        "target": target_json(&into, &done.owner_role),
        "tables": done.tables,
        "left_out": done.left_out,
        "stages": done.stages,
        "stored_bytes": done.stored_bytes,
        "plaintext_bytes": done.plaintext_bytes,
        "report": report_key,
    });
    Ok(Done { json, text })
}

/// The database a restore's administrator connects to in order to create the new one.
const MAINTENANCE_DB: &str = "postgres";

/// `restore --dry-run`: every check the restore makes before it creates anything, as reads only, then the plan.
/// The export, the identities and the tables were resolved by the caller; here the tables, identities and
/// work directory are checked as the restore checks them, and the target server is asked (SELECTs only)
/// whether the database or its owner role exists already.
async fn dry_run(
    r: &args::Restore,
    key: &str,
    manifest: &Manifest,
    ids: &[Identity],
    into: &lifeboat::postgres::db::Target,
    jobs: Option<&restore::Jobs<'_>>,
) -> Result<Done, CliError> {
    let tables = if r.tables.is_empty() {
        manifest.tables.clone()
    } else {
        select::match_tables(&r.tables, &manifest.tables).map_err(ArchiveError::from)?
    };
    archive::check_identities(manifest, ids)?;
    if let Some(jobs) = jobs {
        restore::check_workdir(jobs, manifest.plaintext.bytes)?;
    }
    let role = archive::owner::role_name(&into.dbname);
    check_target_free(into, &role).await?;
    let mode = match jobs {
        Some(j) => json!({"jobs": j.jobs, "workdir": j.workdir.display().to_string()}),
        None => json!("stream"),
    };
    let json = json!({
        "command": "restore",
        "dry_run": true,
        "database": r.database,
        "export": export_json(key, manifest),
        "target": target_json(into, &role),
        "tables": tables.iter().map(|t| json!({"schema": t.schema, "name": t.name, "expected_rows": t.rows})).collect::<Vec<_>>(),
        "mode": mode,
        "would_create": {"database": into.dbname, "role": role},
        "would_write_report": r.report,
    });
    let mut text = format!("dry run: nothing was created\nwould restore {key}\n");
    text.push_str(&format!("  into {}\n", url::redacted(into)));
    text.push_str(&format!(
        "  creating database {} owned by a new role {role}\n",
        into.dbname
    ));
    match jobs {
        Some(j) => text.push_str(&format!(
            "  with pg_restore --jobs {} through a file in {}\n",
            j.jobs,
            j.workdir.display()
        )),
        None => text.push_str("  streamed, with no temporary file\n"),
    }
    for t in &tables {
        text.push_str(&format!("  {}: {} rows expected\n", select::qualified(t), t.rows));
    }
    if r.report {
        text.push_str(&format!(
            "  and write its report under s3://<bucket>/{}\n",
            lifeboat::bucket::layout::restore_export_report_prefix(&r.database)
        ));
    }
    Ok(Done { json, text })
}

/// Refuses, as the restore would, a target database or owner role that exists; reads only.
async fn check_target_free(into: &lifeboat::postgres::db::Target, role: &str) -> Result<(), CliError> {
    let admin = lifeboat::postgres::db::Target {
        dbname: MAINTENANCE_DB.to_owned(),
        ..into.clone()
    };
    let client = lifeboat::postgres::db::connect(&admin, restore::CONNECT_TIMEOUT)
        .await
        .map_err(ArchiveError::from)?;
    let database = &into.dbname;
    let taken = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[database])
        .await
        .map_err(|e| ArchiveError::Sql {
            action: format!("checking whether database {database} exists"),
            message: lifeboat::postgres::db::describe(&e),
        })?;
    if taken.is_some() {
        return Err(ArchiveError::TargetExists {
            database: database.clone(),
        }
        .into());
    }
    let taken = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .map_err(|e| ArchiveError::Sql {
            action: format!("checking whether role {role} exists"),
            message: lifeboat::postgres::db::describe(&e),
        })?;
    if taken.is_some() {
        return Err(ArchiveError::RoleExists {
            role: role.to_owned(),
            database: database.clone(),
        }
        .into());
    }
    Ok(())
}

/// Writes the restore's report (`--report`) and says where, on stderr; a report that cannot be written is
/// said too, without changing the restore's outcome. Returns its key when written.
async fn write_report(
    ctx: &Context,
    attempt: &report::Attempt<'_>,
    result: &Result<restore::Report, ArchiveError>,
) -> Option<String> {
    let built = report::build(attempt, result, Utc::now());
    match report::write(&ctx.s3, &ctx.bucket, &built).await {
        Ok(key) => {
            eprintln!("report: s3://{}/{key}", ctx.bucket);
            Some(key)
        }
        Err(e) => {
            eprintln!("lifeboat: the report was not written ({e}); the restore's outcome is unchanged");
            None
        }
    }
}

/// A flag that turns true at the first Ctrl-C (SIGINT). From then on SIGINT no longer kills the process: the
/// restore sees the flag, drops the database it created, and the command exits with [`INTERRUPTED`].
pub fn on_ctrl_c() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: stopping; what this command created is dropped or deleted");
            // No receiver left means the restore is over: nothing to stop.
            let _ = tx.send(true);
        }
    });
    rx
}

/// `lifeboat verify`.
pub async fn verify(a: &args::Verify, profile: Option<&str>) -> Result<Done, CliError> {
    let ctx = context(profile, a.common.bucket.as_deref(), a.common.pg_restore.as_deref()).await?;
    let key = &a.manifest;
    probe_manifest(&ctx, key).await?;
    let manifest = archive::read_manifest(&ctx.s3, &ctx.bucket, key).await?;
    let ids = identities(&ctx, &a.identity).await?;
    let counters = Arc::new(Counters::default());
    let reporter = progress::start(counters.clone(), totals(&manifest, 0));
    let result = restore::verify(&ctx.s3, &ctx.bucket, &manifest, &ids, &ctx.pg_restore, counters).await;
    drop(reporter);
    let s = result.map_err(CliError::Verify)?;
    let seconds = s.restore.as_secs_f64();
    let text = format!(
        "verified {key}\n  stored: {} bytes, sha256 {} (as the manifest says)\n  plaintext: {} bytes, sha256 {} \
         (as the manifest says)\n  pg_restore parsed the whole archive ({} tables in the manifest)\n  took {seconds:.1}s\n",
        s.stored_bytes,
        manifest.stored.sha256,
        s.plain_bytes,
        manifest.plaintext.sha256,
        manifest.tables.len(),
    );
    let json = json!({
        "command": "verify",
        "verified": true,
        "database": manifest.database,
        "export": export_json(key, &manifest),
        "stored": {"bytes": s.stored_bytes, "sha256": manifest.stored.sha256},
        "plaintext": {"bytes": s.plain_bytes, "sha256": manifest.plaintext.sha256},
        "seconds": seconds,
    });
    Ok(Done { json, text })
}

fn write_file(path: &Path, body: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, body).map_err(|source| CliError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// `lifeboat report`: the fleet's evidence report, written to a local file (and its JSON beside it).
pub async fn report(a: &args::Report, profile: Option<&str>) -> Result<Done, CliError> {
    use lifeboat::evidence::period::Period;
    use lifeboat::evidence::{self, gather};
    let now = Utc::now();
    let period = Period::parse(a.period.as_deref(), now)?;
    let selector = lifeboat::rds::settings::CommonSettings::from_env(&ProcessEnv)?.selector;
    let policy = lifeboat::monitoring::settings::monitor_policy(&ProcessEnv)?;
    // Plan mode, as monitor: "expected" comes from the plan versions in force each day, never the thresholds.
    let plan = lifeboat::plans::store::Location::from_env(&ProcessEnv)?;
    let ctx = context(profile, a.bucket.as_deref(), None).await?;
    let rds = aws_sdk_rds::Client::new(&ctx.config);
    let all = lifeboat::rds::selection::discover(&rds)
        .await
        .map_err(CliError::Gather)?;
    let src = gather::Sources {
        rds: &rds,
        s3: &ctx.s3,
        bucket: &ctx.bucket,
    };
    let report = match &plan {
        Some(location) => gather::planned(src, location, &all, &period, now)
            .await
            .map_err(CliError::Gather)?,
        None => {
            let chosen = lifeboat::rds::selection::select(&all, &selector);
            let facts = gather::fleet(src, &chosen.databases, &period)
                .await
                .map_err(CliError::Gather)?;
            evidence::rules::build(&facts, &policy, &period, now)
        }
    };
    let mut report = report;
    report.add_anomalies(&gather::anomalies(src).await.map_err(CliError::Gather)?);
    let html_path = a
        .out
        .clone()
        .unwrap_or_else(|| format!("lifeboat-evidence-{}.html", period.slug).into());
    let json_path = html_path.with_extension("json");
    write_file(&html_path, evidence::html::render(&report).as_bytes())?;
    write_file(&json_path, &serde_json::to_vec_pretty(&report)?)?;
    let mut text = format!("evidence report for {}: {}\n", period.label, html_path.display());
    text.push_str(&format!("  data: {}\n", json_path.display()));
    for db in &report.databases {
        text.push_str(&format!("  {}: {}\n", db.db, db.verdict.line));
    }
    text.push_str(&format!(
        "  {} of {} databases meet their policy\n",
        report.summary.policies_met, report.summary.databases_covered
    ));
    if let Some(p) = &report.plan {
        let labels: std::collections::BTreeSet<&str> = p
            .days
            .iter()
            .flat_map(|d| d.versions.iter().map(|v| v.label.as_str()))
            .collect();
        text.push_str(&format!(
            "  plan document {}: version(s) in force in the period: {}\n",
            p.document,
            labels.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let json = json!({
        "command": "report",
        "period": period.label,
        "html": html_path.display().to_string(),
        "json": json_path.display().to_string(),
        "databases": report.databases.iter().map(|d| json!({
            "database": d.db,
            "meets_policy": d.verdict.meets_policy,
            "verdict": d.verdict.line,
        })).collect::<Vec<_>>(),
        "policies_met": report.summary.policies_met,
        "databases_covered": report.summary.databases_covered,
        "plan": report.plan,
    });
    Ok(Done { json, text })
}

/// What a restore into a new database says of it: the role that owns it, each table's rows (`rows` words them,
/// `against` names where the expected count came from) and what was left out of the chosen tables.
pub(crate) fn restored_lines(
    owner_role: &str,
    tables: &[lifeboat::postgres::archive::restore::RestoredTable],
    left_out: &[String],
    rows: &str,
    against: &str,
) -> String {
    let mut text =
        format!("owned by role {owner_role} (it cannot log in; `GRANT \"{owner_role}\" TO <user>` lets a user in)\n");
    for t in tables {
        text.push_str(&format!(
            "  {}.{}: {} {rows}, {} in {against}\n",
            t.schema, t.name, t.restored_rows, t.expected_rows
        ));
    }
    for note in left_out {
        text.push_str(&format!("  {note}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_parse_with_and_without_seconds() {
        let noon = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        assert_eq!(parse_time("2026-11-22T12:00:00Z").unwrap(), noon);
        assert_eq!(parse_time("2026-11-22T12:00Z").unwrap(), noon);
        assert_eq!(parse_time("2026-11-22T13:00+01:00").unwrap(), noon);
        assert_eq!(parse_time("yesterday").unwrap_err().kind(), Kind::Usage);
    }

    #[test]
    fn exit_codes_are_distinct_and_errors_are_classed_by_type() {
        let kinds = [
            Kind::Failed,
            Kind::Usage,
            Kind::NotFound,
            Kind::Refused,
            Kind::VerificationFailed,
            Kind::Interrupted,
        ];
        let codes: std::collections::BTreeSet<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes.len(), kinds.len());
        let no_export = CliError::Archive(ArchiveError::NoExport {
            db: "d".into(),
            profile: "full".into(),
            which: "yet".into(),
        });
        assert_eq!(no_export.kind(), Kind::NotFound);
        let exists = CliError::Archive(ArchiveError::NotDropped {
            database: "d".into(),
            role: "d_owner".into(),
            drop_error: "x".into(),
            cause: Box::new(ArchiveError::RowCounts { mismatches: vec![] }),
        });
        assert_eq!(exists.kind(), Kind::VerificationFailed, "the cause decides");
        let pg = || ArchiveError::PgRestore {
            status: "exit 1".into(),
            stderr: "bad".into(),
        };
        assert_eq!(CliError::Archive(pg()).kind(), Kind::Failed);
        assert_eq!(CliError::Verify(pg()).kind(), Kind::VerificationFailed);
        let missing = CliError::IdentityFile {
            path: "k".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(missing.kind(), Kind::NotFound);
        let json = missing.to_json();
        assert_eq!(json["error"]["kind"], "not-found");
        assert_eq!(json["error"]["exit_code"], 3);
    }

    #[test]
    fn an_aws_failure_is_classed_by_the_code_the_service_sent() {
        let aws = |code: Option<&str>| {
            CliError::Archive(ArchiveError::Aws(lifeboat::core::error::Error::Aws {
                operation: "GetObject",
                // The same words each time: only the code may decide.
                message: "AccessDenied NoSuchKey".into(),
                code: code.map(str::to_owned),
            }))
        };
        assert_eq!(aws(Some("AccessDenied")).kind(), Kind::Refused);
        assert_eq!(aws(Some("AccessDeniedException")).kind(), Kind::Refused);
        assert_eq!(aws(Some("NoSuchKey")).kind(), Kind::NotFound);
        assert_eq!(aws(Some("ResourceNotFoundException")).kind(), Kind::NotFound);
        assert_eq!(aws(Some("SlowDown")).kind(), Kind::Failed);
        assert_eq!(aws(None).kind(), Kind::Failed);
    }
}
