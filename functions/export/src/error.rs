//! Why one database's export failed. Each variant keeps the message the export has always reported (the
//! summary's `error` field and the run's `PartialFailure` carry it), and the cause stays a typed value until
//! then.

use lifeboat::core::error::Error;
use lifeboat::postgres::db::DbError;
use lifeboat::postgres::export::{
    DeadlineStop, ForeignHost, MissingTable, SizeMismatch, UnsatisfiedForeignKey, VersionError,
};

use crate::pipeline::PipelineError;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An S3 call (the adapters in `s3.rs` return the shared error type).
    #[error(transparent)]
    Lifeboat(#[from] Error),
    #[error(
        "no credentials: tag the database with `{}=<secret name or ARN>` or let RDS manage its master password",
        lifeboat::core::tags::SECRET
    )]
    NoCredentials,
    /// Reading the secret or connecting.
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    ForeignHost(#[from] ForeignHost),
    #[error("secret {0} has no host and the database reports no endpoint")]
    NoAddress(String),
    /// A query in the export's own session; `what` says which.
    #[error("{what}: {source}")]
    Query {
        what: String,
        source: tokio_postgres::Error,
    },
    #[error("running `{program} --version`: {source} (set LIFEBOAT_PG_DUMP / LIFEBOAT_PG_RESTORE)")]
    ToolVersion { program: String, source: std::io::Error },
    /// A table's row count from the archive does not fit the manifest's signed 64-bit count.
    #[error("{table} holds {rows} rows in the archive, more than the manifest can record")]
    RowCount { table: String, rows: u64 },
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error(transparent)]
    MissingTable(#[from] MissingTable),
    #[error(transparent)]
    ForeignKey(#[from] UnsatisfiedForeignKey),
    /// pg_dump or pg_restore could not be started.
    #[error("starting {tool} ({program}): {source}")]
    Spawn {
        tool: &'static str,
        program: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    SizeMismatch(#[from] SizeMismatch),
    /// Still running at the deadline's margin: stopped, and its upload aborted.
    #[error(transparent)]
    Deadline(#[from] DeadlineStop),
    #[error(transparent)]
    Manifest(#[from] serde_json::Error),
    /// The export's object already exists (a retried or concurrent run stored it); the export never overwrites.
    #[error(
        "{0} already exists without a manifest (an earlier or concurrent run stored it) and is never overwritten: \
         check it and delete it if it is incomplete, or export again under another time"
    )]
    ObjectExists(String),
    /// The manifest's key already holds an object; the export never overwrites it.
    #[error("manifest {0} already exists and is never overwritten")]
    ManifestExists(String),
    /// The export failed and so did aborting its upload; the first failure is the one that matters.
    #[error("{cause} (and aborting the upload failed: {abort}; the bucket's lifecycle rule removes it)")]
    AbortFailed { cause: Box<ExportError>, abort: Error },
    /// The standalone binary's `--event` (or `LIFEBOAT_EVENT`) is not JSON.
    #[error("--event is not JSON: {0}")]
    EventNotJson(serde_json::Error),
}

impl ExportError {
    /// Whether this export ran into the invocation's deadline (the rest of the run is then not reached).
    pub fn is_deadline(&self) -> bool {
        match self {
            Self::Deadline(_) => true,
            Self::AbortFailed { cause, .. } => cause.is_deadline(),
            _ => false,
        }
    }

    /// A failed query, named by what it was for.
    pub fn query(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let what = what.into();
        move |source| Self::Query { what, source }
    }
}

/// The Lambda error type of an export failure: AWS errors keep their own, a bad event is an invalid event,
/// everything else fails the database (as `handle` reports it, inside its `PartialFailure`).
impl From<ExportError> for Error {
    fn from(err: ExportError) -> Self {
        match err {
            ExportError::Lifeboat(e) => e,
            e @ ExportError::EventNotJson(_) => Error::InvalidEvent(e.to_string()),
            e => Error::PartialFailure(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_lambda_error_types() {
        assert_eq!(
            ExportError::NoCredentials.to_string(),
            "no credentials: tag the database with `lifeboat:secret=<secret name or ARN>` or let RDS manage its \
             master password"
        );
        let aborted = ExportError::AbortFailed {
            cause: Box::new(ExportError::NoAddress("s".into())),
            abort: Error::Aws {
                operation: "AbortMultipartUpload",
                code: None,
                message: "gone".into(),
            },
        };
        assert_eq!(
            aborted.to_string(),
            "secret s has no host and the database reports no endpoint (and aborting the upload failed: \
             AbortMultipartUpload failed: gone; the bucket's lifecycle rule removes it)"
        );
        assert!(matches!(Error::from(aborted), Error::PartialFailure(_)));
        let aws = ExportError::from(Error::Aws {
            operation: "HeadObject",
            code: None,
            message: "denied".into(),
        });
        assert!(matches!(
            Error::from(aws),
            Error::Aws {
                operation: "HeadObject",
                ..
            }
        ));
    }
}
