//! Restores from exports (behind the `archive` feature, so functions that never read an archive do not compile
//! age and zstd): choose a complete export, stream it out of S3 through the checksums, age and zstd into
//! `pg_restore`, into a new database, and prove the restored row counts equal the manifest's.
//!
//! Owns: the choice of export ([`find_export`], [`list_exports`]), the streamed read ([`stream`]), the restore
//! into a new database and its cleanup ([`restore::restore`]), the check without a database
//! ([`restore::verify`]), and the errors that say which check failed ([`ArchiveError`]). The pure rules are in
//! [`select`].
//! Never: writes to an existing database (the target must not exist; only a database this module created is ever
//! dropped), runs the archive as the administrator who connects (see [`owner`]), writes a temporary file except for
//! `--jobs` (a 0600 file in the work directory, checked for room first and removed afterwards, or by the next restore
//! when its process was killed: [`plaintext`]) and, for a restore of some tables, pg_restore's `-L` list (dump ids
//! only, no data; see [`select::whole_tables`]), or prints a password.

pub mod owner;
pub mod plaintext;
pub mod plan;
pub mod recover;
pub mod report;
pub mod restore;
pub mod select;
pub mod stream;

use crate::bucket::layout::{get_json, MANIFEST_SUFFIX};
use crate::bucket::manifest::Manifest;
use crate::core::error::Error;

pub use age::x25519::Identity;
pub use select::{parse_identities, Which};
pub use stream::{Counters, Destination};

/// Why a restore or a verification stopped. Each says which check failed and, where there is one, what to do.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Aws(#[from] Error),
    #[error("no complete export of {db} ({profile}) {which}: `lifeboat exports {db}` lists the complete ones")]
    NoExport { db: String, profile: String, which: String },
    #[error("{key} is not a manifest key (it ends in {MANIFEST_SUFFIX}): `lifeboat exports <db>` lists them")]
    NotAManifest { key: String },
    #[error("manifest {key} belongs to database {actual}, not {requested}")]
    OtherDatabase {
        key: String,
        requested: String,
        actual: String,
    },
    #[error(transparent)]
    Table(#[from] select::TableError),
    #[error("the export is age-encrypted: give the identity with --identity-file or --identity-secret")]
    NeedIdentity,
    #[error(
        "wrong identity: none of the given identities is a recipient of this export (recipients: {})",
        recipients.join(", ")
    )]
    WrongIdentity { recipients: Vec<String> },
    #[error("downloading {key}: {message}")]
    Download { key: String, message: String },
    #[error("stored checksum failed: {key} is not the object the export wrote (expected {expected}, got {actual})")]
    StoredChecksum {
        key: String,
        expected: String,
        actual: String,
    },
    #[error(
        "plaintext checksum failed: the decrypted archive is not the one exported (expected {expected}, got {actual})"
    )]
    PlaintextChecksum { expected: String, actual: String },
    #[error("decryption failed: {0}")]
    AgeHeader(#[source] age::DecryptError),
    #[error("decryption or decompression failed: {0}")]
    Decode(#[source] std::io::Error),
    #[error("starting {program}: {source} (set --pg-restore or LIFEBOAT_PG_RESTORE to a PostgreSQL client)")]
    StartPgRestore { program: String, source: std::io::Error },
    #[error("starting {program}: {source} (set --pg-dump or LIFEBOAT_PG_DUMP to a PostgreSQL client)")]
    StartPgDump { program: String, source: std::io::Error },
    #[error("pg_dump failed ({status}): {stderr}")]
    PgDump { status: String, stderr: String },
    #[error("pg_restore has no standard input")]
    NoStdin,
    #[error("waiting for pg_restore: {0}")]
    Wait(#[source] std::io::Error),
    #[error("pg_restore stopped reading: {0}")]
    Stopped(#[source] std::io::Error),
    /// The rewriter (the masked refresh's masking) refused the archive; the text never quotes row data.
    #[error("masking stopped the restore: {0}")]
    Rewrite(String),
    #[error("pg_restore failed ({status}): {stderr}")]
    PgRestore { status: String, stderr: String },
    #[error("target database {database} already exists: Lifeboat restores only into a new database; name another")]
    TargetExists { database: String },
    #[error(
        "role {role} already exists: it would own the new database {database}, and Lifeboat restores only as a \
         role it creates; name another database, or drop that role if it is left from an earlier restore"
    )]
    RoleExists { role: String, database: String },
    #[error("the system's random number generator failed")]
    Random,
    #[error(transparent)]
    Connect(#[from] crate::postgres::db::DbError),
    #[error("{action}: {message}")]
    Sql { action: String, message: String },
    #[error("row counts differ from the manifest: {}", mismatches.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    RowCounts { mismatches: Vec<select::CountMismatch> },
    #[error(
        "{cause}; the half-restored database {database} or its role {role} could not be dropped ({drop_error}): \
         drop them by hand"
    )]
    NotDropped {
        database: String,
        role: String,
        drop_error: String,
        cause: Box<ArchiveError>,
    },
    /// The caller was interrupted (Ctrl-C) after the target was created. The stream is abandoned where it was:
    /// dropping the database ends pg_restore's session, and with it pg_restore and the decoding thread.
    #[error("interrupted before the restore into {database} finished")]
    Interrupted { database: String },
    /// The caller's stop time came (the invocation's deadline, less the time the cleanup and the report need):
    /// pg_restore was stopped and what the restore created dropped, rather than leaving it half-restored when
    /// Lambda ends the process.
    #[error(
        "stopped before the invocation's deadline: the restore into {database} had not finished; it was \
         dropped with its role. Run it where there is no time limit (the ECS restore task or `lifeboat restore`)"
    )]
    Deadline { database: String },
    #[error(transparent)]
    NoRoom(#[from] plan::NoRoom),
    #[error("work directory {dir}: {source} (choose another with --workdir or LIFEBOAT_RESTORE_WORKDIR)")]
    Workdir { dir: String, source: std::io::Error },
    #[error("writing the plaintext archive to the work directory: {0}")]
    WriteFile(#[source] std::io::Error),
    #[error("reading the archive's table of contents: {0}")]
    Toc(#[from] crate::postgres::dump_format::FormatError),
    #[error("writing pg_restore's list of entries: {0}")]
    List(#[source] std::io::Error),
    #[error("restore task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ArchiveError {
    /// An error that may come from a changed object: the download is finished so the stored checksum can say so.
    pub fn is_data_error(&self) -> bool {
        !matches!(
            self,
            Self::StartPgRestore { .. } | Self::StartPgDump { .. } | Self::NoStdin | Self::Wait(_)
        )
    }

    /// The check that failed, as restore reports name it.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Aws(_) | Self::Download { .. } => "download",
            Self::NoExport { .. } | Self::NotAManifest { .. } | Self::OtherDatabase { .. } => "export",
            Self::Table(_) => "tables",
            Self::NeedIdentity | Self::WrongIdentity { .. } | Self::AgeHeader(_) => "identity",
            Self::StoredChecksum { .. } => "stored-checksum",
            Self::PlaintextChecksum { .. } => "plaintext-checksum",
            Self::Decode(_) | Self::Toc(_) => "decryption",
            Self::StartPgDump { .. } | Self::PgDump { .. } => "pg_dump",
            Self::StartPgRestore { .. }
            | Self::List(_)
            | Self::NoStdin
            | Self::Wait(_)
            | Self::Stopped(_)
            | Self::PgRestore { .. } => "pg_restore",
            Self::Rewrite(_) => "masking",
            Self::TargetExists { .. } | Self::RoleExists { .. } => "target-exists",
            Self::Connect(_) | Self::Sql { .. } => "target",
            Self::RowCounts { .. } => "row-counts",
            Self::NotDropped { cause, .. } => cause.check(),
            Self::Interrupted { .. } => "interrupted",
            Self::Deadline { .. } => "deadline",
            Self::NoRoom(_) | Self::Workdir { .. } | Self::WriteFile(_) => "workdir",
            Self::Task(_) | Self::Random => "internal",
        }
    }

    /// Whether the restore stopped because its caller was interrupted (whether or not the drop worked).
    pub fn is_interrupted(&self) -> bool {
        match self {
            Self::Interrupted { .. } => true,
            Self::NotDropped { cause, .. } => cause.is_interrupted(),
            _ => false,
        }
    }
}

/// Refuses up front an encrypted export without identities, or with identities none of which is a recipient.
pub fn check_identities(manifest: &Manifest, identities: &[Identity]) -> Result<(), ArchiveError> {
    let Some(enc) = &manifest.encryption else {
        return Ok(());
    };
    if identities.is_empty() {
        return Err(ArchiveError::NeedIdentity);
    }
    let known = identities
        .iter()
        .any(|i| enc.recipients.contains(&i.to_public().to_string()));
    if !known {
        return Err(ArchiveError::WrongIdentity {
            recipients: enc.recipients.clone(),
        });
    }
    Ok(())
}

/// Every manifest key of the database's exports (never a cache's RDB copy of the same name).
async fn manifest_keys(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    db: &str,
    profile: Option<&str>,
) -> Result<Vec<String>, ArchiveError> {
    Ok(crate::bucket::layout::export_manifest_keys(s3, bucket, db, profile).await?)
}

/// Every complete export of a database (of one profile, or all), oldest first, with its manifest.
pub async fn list_exports(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    db: &str,
    profile: Option<&str>,
) -> Result<Vec<(String, Manifest)>, ArchiveError> {
    let mut keys = manifest_keys(s3, bucket, db, profile).await?;
    keys.sort_by_key(|k| (crate::bucket::layout::time_in_key(k), k.clone()));
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let manifest = get_json(s3, bucket, &key).await?;
        out.push((key, manifest));
    }
    Ok(out)
}

/// The complete export `which` names, with its manifest. A manifest key must be one of `db`'s.
pub async fn find_export(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    db: &str,
    profile: Option<&str>,
    which: &Which,
) -> Result<(String, Manifest), ArchiveError> {
    let key = match which {
        Which::Manifest(key) => {
            let manifest = read_manifest(s3, bucket, key).await?;
            if manifest.database != db {
                return Err(ArchiveError::OtherDatabase {
                    key: key.clone(),
                    requested: db.to_owned(),
                    actual: manifest.database,
                });
            }
            return Ok((key.clone(), manifest));
        }
        _ => {
            let keys = manifest_keys(s3, bucket, db, profile).await?;
            select::choose(keys.iter().map(String::as_str), which).map(str::to_owned)
        }
    };
    let Some(key) = key else {
        return Err(ArchiveError::NoExport {
            db: db.to_owned(),
            profile: profile.unwrap_or("any profile").to_owned(),
            which: match which {
                Which::Before(t) => format!("at or before {}", t.to_rfc3339()),
                _ => "yet".to_owned(),
            },
        });
    };
    let manifest = get_json(s3, bucket, &key).await?;
    Ok((key, manifest))
}

/// A manifest by its key; a key that is not a manifest's is refused before any request.
pub async fn read_manifest(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Manifest, ArchiveError> {
    if !key.ends_with(MANIFEST_SUFFIX) {
        return Err(ArchiveError::NotAManifest { key: key.to_owned() });
    }
    Ok(get_json(s3, bucket, key).await?)
}
