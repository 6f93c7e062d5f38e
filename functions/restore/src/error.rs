//! The restore function's errors. Each failure keeps its kind, and each kind is its own Lambda `errorType`
//! (`Lifeboat.Restore.*`), so a failed step can be told apart without reading its message. The run's verdict stays
//! `Lifeboat.PartialFailure`, like every other function's "some databases failed".
//!
//! Owns the kinds and their messages only; it must never decide whether something is a failure.

use lambda_runtime::Diagnostic;
use lifeboat::postgres::archive::ArchiveError;
use lifeboat::postgres::db::DbError;
use lifeboat::postgres::export::{ForeignHost, Refusal};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A shared failure (AWS call, invalid event, configuration, the cleanup guard) with its own `errorType`.
    #[error(transparent)]
    Shared(#[from] lifeboat::core::error::Error),
    /// What the request or the test state names is not there (database, restored instance).
    #[error("{0}")]
    NotFound(String),
    /// No snapshot fit the request: the named one is missing or not available, or there is none.
    #[error("{database}: {reason}")]
    Snapshot { database: String, reason: String },
    /// A restore test from the newest export found no complete export of that profile.
    #[error(
        "{database} has no complete `{profile}` export to restore (no manifest under exports/{database}/{profile}/)"
    )]
    NoExport { database: String, profile: String },
    /// RDS gave up on the restore.
    #[error("restored instance {id} is {status}")]
    RestoreFailed { id: String, status: String },
    /// The restore did not finish within `LIFEBOAT_RESTORE_TIMEOUT_MINUTES`.
    #[error("restored instance {id} is still {status} after {minutes} minutes (LIFEBOAT_RESTORE_TIMEOUT_MINUTES)")]
    TimedOut { id: String, status: String, minutes: u32 },
    /// RDS says available but gives no address to connect to.
    #[error("restored instance {id} is available but has no endpoint")]
    NoEndpoint { id: String },
    /// A step ran before the one it depends on (the state lacks what that step adds).
    #[error("{0}")]
    OutOfOrder(&'static str),
    /// A secret (or the generated password) does not hold what it must.
    #[error("{0}")]
    InvalidSecret(String),
    /// A console restore named a target that exists; nothing was touched.
    #[error("`{0}` already exists; a restore never overwrites or deletes an existing database: choose a new name")]
    TargetExists(String),
    /// `start` found its restore test's name taken by something that is not a restore test of the same database;
    /// it is left alone.
    #[error("{id} already exists and is {}, not a restore test of {database}; it is left alone (wait for its cleanup or monitor's janitor, or test at another time)", owner.as_deref().map_or_else(|| "not tagged as a restore test of any database".to_owned(), |o| format!("a restore test of {o}")))]
    NameTaken {
        id: String,
        database: String,
        owner: Option<String>,
    },
    /// Cleanup asked RDS to delete the restored resource, yet it is still there and not deleting.
    #[error("{id} is still {status} after its deletion was requested")]
    NotDeleted { id: String, status: String },
    /// The run's verdict: some databases' restore tests failed.
    #[error("restore tests failed for {} of {tested} databases: {}", failed.len(), failed.join(", "))]
    TestsFailed { failed: Vec<String>, tested: usize },
    /// The test state could not be written as JSON.
    #[error("serialising the test state: {0}")]
    State(#[source] serde_json::Error),
    /// A restore from an export stopped (which check, or why it was refused).
    #[error(transparent)]
    FromExport(#[from] ExportRestoreError),
    /// A recover stopped (refused, failed, out of time); its scratch instance was deleted unless it says otherwise.
    #[error(transparent)]
    Recover(#[from] lifeboat::recover::RecoverError),
    /// A staging refresh stopped (refused by its masking, or failed a check); nothing it created is left.
    #[error(transparent)]
    Refresh(#[from] lifeboat::refresh::RefreshError),
    /// A refresh that would not finish in this invocation: refused before anything was created.
    #[error(
        "refreshing {rule} from {key} would not finish in this invocation: {} MiB stored at about {} MiB/s needs \
         ~{} s but only {} s remain (LIFEBOAT_RESTORE_MIB_PER_SECOND); nothing was created. Run it from a \
         terminal (no time limit): lifeboat refresh {plan} {rule} --export {key}",
        refusal.size_mib, refusal.mib_per_second, refusal.estimate_secs, refusal.remaining_secs
    )]
    RefreshTooLong {
        plan: String,
        rule: String,
        key: String,
        refusal: Refusal,
    },
    /// What the request asks is not something Lifeboat does yet (a restore test of a sharded cache).
    #[error("{0}")]
    Unsupported(String),
    /// A refresh tick's verdict: some of the refreshes due failed (each wrote its report when it had started).
    #[error("staging refreshes failed: {}", failed.join(", "))]
    RefreshesFailed { failed: Vec<String> },
    /// The report could not be written as JSON.
    #[error("{0}")]
    Report(#[source] serde_json::Error),
    /// An action of the other entry: the steps and the console's actions are separate functions with separate
    /// roles, and each refuses the other's.
    #[error("`{action}` is not served here: this function is the {} entry (LIFEBOAT_RESTORE_ENTRY={}); invoke {} instead", entry.as_str(), entry.as_str(), want.function())]
    WrongEntry {
        action: &'static str,
        entry: crate::settings::Entry,
        want: crate::settings::Entry,
    },
    /// The state names another restored resource than the one its database (or cache) and request time name.
    #[error("the state's {field} `{given}` is not the restore test's own `{derived}` (named by the source and request time); refused")]
    NotOwnTest {
        field: &'static str,
        given: String,
        derived: String,
    },
    /// The restored resource (or its secret) is not a restore test of the source under test; left alone.
    #[error("{id} is not a restore test of {source_id}: {reason}; refused")]
    NotOwned {
        id: String,
        source_id: String,
        reason: String,
    },
}

impl RestoreError {
    /// The Lambda `errorType` of a restore-specific kind; `None` for a shared error, which has its own.
    fn error_type(&self) -> Option<&'static str> {
        Some(match self {
            Self::Shared(_) => return None,
            Self::NotFound(_) => "Lifeboat.Restore.NotFound",
            Self::Snapshot { .. } => "Lifeboat.Restore.NoSnapshot",
            Self::NoExport { .. } => "Lifeboat.Restore.NoExport",
            Self::RestoreFailed { .. } => "Lifeboat.Restore.Failed",
            Self::TimedOut { .. } => "Lifeboat.Restore.Timeout",
            Self::NoEndpoint { .. } => "Lifeboat.Restore.NoEndpoint",
            Self::OutOfOrder(_) => "Lifeboat.Restore.OutOfOrder",
            Self::InvalidSecret(_) => "Lifeboat.Restore.InvalidSecret",
            Self::TargetExists(_) => "Lifeboat.Restore.TargetExists",
            Self::NotDeleted { .. } => "Lifeboat.Restore.NotDeleted",
            Self::NameTaken { .. } => "Lifeboat.Restore.NameTaken",
            Self::TestsFailed { .. } | Self::RefreshesFailed { .. } => "Lifeboat.PartialFailure",
            Self::State(_) | Self::Report(_) => "Lifeboat.Restore.Serialization",
            Self::FromExport(e) => e.error_type(),
            Self::Recover(e) if e.is_refusal() => "Lifeboat.Restore.Refused",
            Self::Recover(_) => "Lifeboat.Restore.RecoverFailed",
            Self::Refresh(e) => refresh_error_type(e),
            Self::RefreshTooLong { .. } => "Lifeboat.Restore.TooLong",
            Self::Unsupported(_) => "Lifeboat.Restore.Unsupported",
            Self::WrongEntry { .. } => "Lifeboat.Restore.WrongEntry",
            Self::NotOwnTest { .. } | Self::NotOwned { .. } => "Lifeboat.Restore.NotOwned",
        })
    }
}

/// A refresh's `errorType`: a masking or export refused before anything was written, an export's check (as a
/// restore from an export names it), a failed proof, or a failed swap (the new database kept).
fn refresh_error_type(e: &lifeboat::refresh::RefreshError) -> &'static str {
    use lifeboat::refresh::RefreshError as R;
    match e {
        R::Rules(_) | R::NoCatalog { .. } => "Lifeboat.Restore.Refused",
        R::Archive(a) => archive_error_type(a),
        R::Proof { .. } => "Lifeboat.Restore.RefreshProof",
        R::NotOurs { .. } | R::Swap { .. } | R::SwapUndo { .. } => "Lifeboat.Restore.RefreshSwap",
        R::NotDropped { cause, .. } => refresh_error_type(cause),
        R::Server { .. } => "Lifeboat.Restore.RefreshFailed",
    }
}

/// An export restore's check, as its own `errorType`.
fn archive_error_type(e: &ArchiveError) -> &'static str {
    match e {
        ArchiveError::TargetExists { .. } => "Lifeboat.Restore.TargetExists",
        ArchiveError::NoExport { .. } | ArchiveError::OtherDatabase { .. } => "Lifeboat.Restore.NoExport",
        ArchiveError::Table(_) => "Lifeboat.Restore.UnknownTable",
        ArchiveError::NoRoom(_) => "Lifeboat.Restore.NoRoom",
        _ => "Lifeboat.Restore.ExportCheck",
    }
}

impl From<RestoreError> for Diagnostic {
    fn from(err: RestoreError) -> Self {
        if let RestoreError::Shared(e) = err {
            return e.into();
        }
        Diagnostic {
            error_type: err.error_type().unwrap_or_default().to_owned(),
            error_message: err.to_string(),
        }
    }
}

/// A restored instance or group that is ready: where it listens, and how long the restore took in seconds.
#[derive(Debug)]
pub struct Ready {
    pub host: String,
    pub port: u16,
    pub seconds: f64,
}

/// A poll's verdict on a restored instance or group, from its `progress`: once available, its address and how
/// long the restore took since the request (in seconds); `None` while it restores; an error when it failed or
/// ran past the timeout.
pub fn poll_verdict(
    id: String,
    status: &str,
    progress: lifeboat::rds::restore::Progress,
    endpoint: Option<(String, u16)>,
    requested_at: chrono::DateTime<chrono::Utc>,
    minutes: u32,
) -> Result<Option<Ready>, RestoreError> {
    use lifeboat::rds::restore::Progress;
    let status = status.to_owned();
    match progress {
        Progress::Failed => Err(RestoreError::RestoreFailed { id, status }),
        Progress::TimedOut => Err(RestoreError::TimedOut { id, status, minutes }),
        Progress::Restoring => Ok(None),
        Progress::Available => {
            let (host, port) = endpoint.ok_or(RestoreError::NoEndpoint { id })?;
            let elapsed = chrono::Utc::now() - requested_at;
            Ok(Some(Ready {
                host,
                port,
                seconds: elapsed.num_milliseconds() as f64 / 1000.0,
            }))
        }
    }
}

/// Why a restore-export stopped; an [`ArchiveError`] says which check failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportRestoreError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{id} has no credentials: tag it `lifeboat:secret` with the secret of a user that may create databases")]
    NoCredentials { id: String },
    #[error("neither secret {secret} nor RDS says where {id} is")]
    NoAddress { id: String, secret: String },
    /// The secret names a host that is not the server's: refused before any connection, as the export refuses it.
    #[error(transparent)]
    ForeignHost(#[from] ForeignHost),
    #[error(
        "restoring {key} would not finish in this invocation: {} MiB stored at about {} MiB/s needs ~{} s but only \
         {} s remain (LIFEBOAT_RESTORE_MIB_PER_SECOND); nothing was created. {}Or run it from a terminal with the \
         lifeboat tool (no time limit), filling in the server and user:\n{command}",
        refusal.size_mib, refusal.mib_per_second, refusal.estimate_secs, refusal.remaining_secs,
        task_command.as_ref().map_or_else(
            || "No ECS restore task is configured (LIFEBOAT_RESTORE_TASK_*; the stack sets them). ".to_owned(),
            |c| format!("Run it as the ECS restore task (no time limit):\n{c}\n")
        )
    )]
    TooLong {
        key: String,
        refusal: Refusal,
        /// `aws ecs run-task ...`, when the stack deploys the restore task.
        task_command: Option<String>,
        command: String,
    },
}

impl ExportRestoreError {
    /// The Lambda `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::TooLong { .. } => "Lifeboat.Restore.TooLong",
            Self::Archive(e) => archive_error_type(e),
            Self::Db(_) | Self::NoCredentials { .. } | Self::NoAddress { .. } | Self::ForeignHost(_) => {
                "Lifeboat.Restore.Connect"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_its_own_error_type_and_keeps_its_message() {
        let d: Diagnostic = RestoreError::RestoreFailed {
            id: "lifeboat-rt-app-prod-202611220300".into(),
            status: "incompatible-restore".into(),
        }
        .into();
        assert_eq!(d.error_type, "Lifeboat.Restore.Failed");
        assert_eq!(
            d.error_message,
            "restored instance lifeboat-rt-app-prod-202611220300 is incompatible-restore"
        );
        let d: Diagnostic = RestoreError::TestsFailed {
            failed: vec!["billing".into()],
            tested: 3,
        }
        .into();
        assert_eq!(d.error_type, "Lifeboat.PartialFailure");
        assert_eq!(d.error_message, "restore tests failed for 1 of 3 databases: billing");
        let d: Diagnostic = RestoreError::RefreshesFailed {
            failed: vec!["staging".into()],
        }
        .into();
        assert_eq!(d.error_type, "Lifeboat.PartialFailure");
        assert_eq!(d.error_message, "staging refreshes failed: staging");
        let refused = lifeboat::mask::rules::MaskRuleError::NoTable {
            table: "public.users".into(),
        };
        let d: Diagnostic = RestoreError::from(lifeboat::refresh::RefreshError::from(refused)).into();
        assert_eq!(
            d.error_type, "Lifeboat.Restore.Refused",
            "a masking refused before anything was written"
        );
        let d: Diagnostic = RestoreError::from(lifeboat::core::error::Error::InvalidEvent("x".into())).into();
        assert_eq!(d.error_type, "Lifeboat.InvalidEvent");
        assert_eq!(d.error_message, "invalid event: x");
    }
}
