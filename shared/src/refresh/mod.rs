//! A staging database refreshed from the newest verified export, masked on the way: the export is chosen and
//! checked as a restore's is, its masking checked against the export's catalogue before anything is written, the
//! archive masked as it streams into pg_restore (running as a role that owns only what it creates) in a NEW
//! database, then the proof (row counts equal the manifest's, constraints and indexes valid, no source value in a
//! masked column), then, when the rule says so, the swap by rename; and a report of it all (JSON, Markdown).
//!
//! ```text
//! naming   the new database's name, the old one's while swapped out, the mark a refresh leaves
//! eval     the masking's SQL expressions, read-only on the maintenance database
//! proof    the checks after the restore
//! swap     the mark and the swap by rename
//! report   the report (JSON, Markdown) and its write
//! ```
//!
//! The order is the guarantee: the export and its masking are checked before anything exists on the staging
//! server; [`crate::postgres::archive::restore::restore`] creates the new database with its own role and drops
//! both on any failure, interruption or stop time while it runs; after it, the proof runs (raced against the same
//! interruption and stop time) and any failure drops the new database and its role again; only a database that
//! passed is marked as a refresh's and swapped in. A database the swap cannot take the name of is kept under its
//! own name, and the error says so.
//!
//! Uses: mask, postgres (the archive's restore), bucket, core. Feature `archive`.
//! Never: writes an unmasked row anywhere (the rewriter runs before pg_restore), drops a database it did not
//! create (the swap drops only a database an earlier refresh made), or connects to the source database.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::mask::rewrite::{MaskKey, Masked, Masker, SqlEval};
use crate::mask::rules::{Checked, ColumnRule, MaskRuleError, Masking, RefreshRule};
use crate::postgres::archive::owner::{self, Created};
use crate::postgres::archive::restore::{self, RestoredTable, CONNECT_TIMEOUT};
use crate::postgres::archive::stream::Rewrite;
use crate::postgres::archive::{find_export, ArchiveError, Counters, Identity, Which};
use crate::postgres::db;

pub mod eval;
pub mod naming;
pub mod proof;
pub mod report;
pub mod swap;

pub use report::{report_json, report_markdown, write_report};

/// One refresh, everything it needs given (the caller derives the server and its credentials from AWS).
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
    pub rule: &'a RefreshRule,
    /// Which of `rule.from`'s `rule.export` exports: the newest complete one, or a named manifest.
    pub which: &'a Which,
    pub identities: &'a [Identity],
    pub key: &'a MaskKey,
    pub pg_restore: &'a str,
    /// The staging server, logged in as its administrator; `dbname` is the maintenance database.
    pub server: &'a db::Target,
    pub counters: &'a Arc<Counters>,
    pub interrupt: Option<&'a tokio::sync::watch::Receiver<bool>>,
    pub stop_at: Option<Instant>,
    /// The refresh's time: the new database's name and the report's key.
    pub now: DateTime<Utc>,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("rule", &self.rule.name)
            .field("server", self.server)
            .finish_non_exhaustive()
    }
}

/// A refresh that completed and passed every check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refreshed {
    pub rule: String,
    /// The manifest of the export the refresh restored.
    pub export_key: String,
    pub export_logical_time: DateTime<Utc>,
    /// The database the data is in now: `into.database` when swapped, else the new database's own name.
    pub database: String,
    /// The name the refresh created the database under (`<into.database>_<yyyymmddhhmmss>`).
    pub new_database: String,
    pub swapped: bool,
    /// The earlier refresh's database the swap replaced and dropped (by the name that refresh created it with).
    pub replaced: Option<String>,
    pub owner_role: String,
    pub tables: Vec<RestoredTable>,
    pub masked: Masked,
    pub checks: Vec<Check>,
    /// What could not be cleaned up once the data was in place (the replaced database or its role).
    pub warnings: Vec<String>,
    pub seconds: f64,
}

/// One check of the proof, passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub detail: String,
}

/// Why a refresh stopped. Nothing it created is left behind, except where the error says the new database was
/// kept (the swap could not give it the rule's name) or could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Rules(#[from] MaskRuleError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(
        "export {key} records no catalogue of its tables and columns (it was taken before exports recorded one), \
         so its masking cannot be checked: take a new export of the profile and refresh from that"
    )]
    NoCatalog { key: String },
    /// A check of the proof failed (the new database and its role are dropped).
    #[error("the refresh's {check} check failed on {database}: {detail}")]
    Proof {
        check: &'static str,
        detail: String,
        database: String,
    },
    /// Reading or changing the staging server after the restore failed (SQLSTATE and object, no values).
    #[error("{message} ({database})")]
    Server { message: String, database: String },
    #[error(
        "{database} was not made by a Lifeboat refresh; drop or rename it yourself, or set swap false. The \
         refreshed data is kept in {kept}"
    )]
    NotOurs { database: String, kept: String },
    #[error("swapping {kept} in as {database} failed: {message}; {database} is as it was and the refreshed data is kept in {kept}")]
    Swap {
        database: String,
        kept: String,
        message: String,
    },
    #[error(
        "swapping {kept} in as {database} failed: {message}; and renaming the old database back failed too \
         ({undo}): it is now named {aside}, rename it back to {database} by hand. The refreshed data is kept in {kept}"
    )]
    SwapUndo {
        database: String,
        kept: String,
        aside: String,
        message: String,
        undo: String,
    },
    #[error("{cause}; the new database {database} or its role {role} could not be dropped ({drop_error}): drop them by hand")]
    NotDropped {
        database: String,
        role: String,
        drop_error: String,
        cause: Box<RefreshError>,
    },
}

impl RefreshError {
    /// The check that failed, as reports name it.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Rules(_) => "masking-rules",
            Self::Archive(e) => e.check(),
            Self::NoCatalog { .. } => "export",
            Self::Proof { check, .. } => check,
            Self::Server { .. } => "target",
            Self::NotOurs { .. } | Self::Swap { .. } | Self::SwapUndo { .. } => "swap",
            Self::NotDropped { cause, .. } => cause.check(),
        }
    }

    /// Whether the refresh stopped because its caller was interrupted (whether or not the drop worked).
    pub fn is_interrupted(&self) -> bool {
        match self {
            Self::Archive(e) => e.is_interrupted(),
            Self::NotDropped { cause, .. } => cause.is_interrupted(),
            _ => false,
        }
    }

    /// What became of the new database: kept under its own name (the swap failed), left behind (it could not be
    /// dropped), or gone (dropped, or never created).
    pub fn fate(&self) -> &'static str {
        match self {
            Self::NotOurs { .. } | Self::Swap { .. } | Self::SwapUndo { .. } => "kept under its own name",
            Self::NotDropped { .. } => "left behind: drop it and its role by hand",
            Self::Archive(ArchiveError::NotDropped { .. }) => "left behind: drop it and its role by hand",
            _ => "dropped, or never created",
        }
    }
}

/// Runs the refresh.
pub async fn refresh(req: Request<'_>) -> Result<Refreshed, RefreshError> {
    let started = Instant::now();
    let rule = req.rule;
    let (export_key, manifest) = find_export(req.s3, req.bucket, &rule.from, Some(&rule.export), req.which).await?;
    let Some(catalog) = &manifest.catalog else {
        return Err(RefreshError::NoCatalog { key: export_key });
    };
    let checked = check_masking(&rule.masking, catalog)?;
    let new = naming::new_database(&rule.into.database, req.now);
    tracing::info!(rule = %rule.name, export = %export_key, database = %new, "refresh started");
    let into = db::Target {
        dbname: new.clone(),
        ..req.server.clone()
    };
    let masker = Arc::new(Mutex::new(Masker::new(
        checked.clone(),
        req.key.clone(),
        evaluator(req.server, &checked).await?,
    )));
    let rewrite: Arc<Mutex<dyn Rewrite>> = masker.clone();
    let restored = restore::restore(restore::Request {
        s3: req.s3,
        bucket: req.bucket,
        manifest: &manifest,
        tables: &[],
        identities: req.identities,
        pg_restore: req.pg_restore,
        into: &into,
        maintenance_db: &req.server.dbname,
        counters: req.counters,
        interrupt: req.interrupt,
        jobs: None,
        stop_at: req.stop_at,
        rewrite: Some(&rewrite),
    })
    .await?;
    // From here the new database exists and passed the restore's own checks; what follows either passes too or
    // drops it again.
    let admin = match db::connect(req.server, CONNECT_TIMEOUT).await {
        Ok(admin) => admin,
        Err(e) => {
            return Err(RefreshError::NotDropped {
                database: new.clone(),
                role: restored.owner_role.clone(),
                drop_error: e.to_string(),
                cause: Box::new(RefreshError::Server {
                    message: format!("connecting to the staging server after the restore: {e}"),
                    database: new,
                }),
            })
        }
    };
    let proved = guarded(
        &req,
        &new,
        prove(&req, &into, &admin, &masker, &checked, &restored.tables),
    )
    .await;
    let (masked, checks) = match proved {
        // An interruption that came as the proof finished still stops the refresh before the swap.
        Ok(_) if req.interrupt.is_some_and(|rx| *rx.borrow()) => {
            let cause = ArchiveError::Interrupted { database: new.clone() }.into();
            return Err(drop_new(&admin, &new, cause).await);
        }
        Ok(done) => done,
        Err(cause) => return Err(drop_new(&admin, &new, cause).await),
    };
    let mut refreshed = Refreshed {
        rule: rule.name.clone(),
        export_key,
        export_logical_time: manifest.logical_time,
        database: new.clone(),
        new_database: new.clone(),
        swapped: false,
        replaced: None,
        owner_role: restored.owner_role,
        tables: restored.tables,
        masked,
        checks,
        warnings: Vec::new(),
        seconds: 0.0,
    };
    if rule.swap {
        let swapped = swap::swap(&admin, &new, &rule.into.database, req.now).await?;
        refreshed.database.clone_from(&rule.into.database);
        refreshed.swapped = true;
        refreshed.replaced = swapped.replaced;
        refreshed.warnings = swapped.warnings;
    }
    refreshed.seconds = started.elapsed().as_secs_f64();
    tracing::info!(rule = %rule.name, database = %refreshed.database, swapped = refreshed.swapped, "refresh done");
    Ok(refreshed)
}

/// The masking checked against the export's catalogue. Nothing to mask needs no catalogue lookup: every table
/// goes through as exported.
fn check_masking(masking: &Masking, catalog: &crate::bucket::manifest::Catalog) -> Result<Checked, MaskRuleError> {
    if masking.tables.is_empty() && masking.strict.is_empty() {
        return Ok(Checked::default());
    }
    crate::mask::rules::check(masking, catalog)
}

/// The SQL expressions' evaluator, on its own connection to the maintenance database; none when no rule has one.
async fn evaluator(server: &db::Target, checked: &Checked) -> Result<Option<Box<dyn SqlEval>>, RefreshError> {
    let needed = checked
        .tables
        .values()
        .flatten()
        .any(|(_, rule)| matches!(rule, ColumnRule::Sql(_)));
    if !needed {
        return Ok(None);
    }
    let client = db::connect(server, CONNECT_TIMEOUT).await.map_err(ArchiveError::from)?;
    Ok(Some(Box::new(eval::ReadOnlyEval::new(
        client,
        tokio::runtime::Handle::current(),
    ))))
}

/// The proof, then the mark: what the masking did, each check passed, the database marked as a refresh's.
async fn prove(
    req: &Request<'_>,
    into: &db::Target,
    admin: &tokio_postgres::Client,
    masker: &Mutex<Masker>,
    checked: &Checked,
    tables: &[RestoredTable],
) -> Result<(Masked, Vec<Check>), RefreshError> {
    let database = into.dbname.clone();
    let failed = |f: proof::Failed| RefreshError::Proof {
        check: f.check,
        detail: f.detail,
        database: database.clone(),
    };
    let server = |message: String| RefreshError::Server {
        message,
        database: database.clone(),
    };
    let masked = masker.lock().ok().and_then(|m| m.outcome().cloned()).ok_or_else(|| {
        failed(proof::Failed {
            check: proof::MASKING,
            detail: "the masking did not say what it did".into(),
        })
    })?;
    let mut checks = vec![proof::row_counts(tables)];
    checks.extend(proof::masking(checked, &masked, tables).map_err(failed)?);
    let inside = db::connect(into, CONNECT_TIMEOUT)
        .await
        .map_err(|e| server(format!("connecting to the new database for its checks: {e}")))?;
    checks.extend(proof::integrity(&inside).await.map_err(server)?.map_err(failed)?);
    drop(inside);
    swap::mark(admin, &naming::Mark::new(&req.rule.name, &database))
        .await
        .map_err(server)?;
    Ok((masked, checks))
}

/// `work`, stopped by the caller's interruption or stop time as the restore is.
async fn guarded<T>(
    req: &Request<'_>,
    database: &str,
    work: impl std::future::Future<Output = Result<T, RefreshError>>,
) -> Result<T, RefreshError> {
    let interrupt = async {
        match req.interrupt {
            Some(rx) => {
                let mut rx = rx.clone();
                if rx.wait_for(|on| *on).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    };
    let deadline = async {
        match req.stop_at {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    let database = database.to_owned();
    tokio::select! {
        done = work => done,
        () = interrupt => Err(ArchiveError::Interrupted { database }.into()),
        () = deadline => Err(ArchiveError::Deadline { database }.into()),
    }
}

/// Drops the new database and its role after `cause`; says so in the error when that fails.
async fn drop_new(admin: &tokio_postgres::Client, database: &str, cause: RefreshError) -> RefreshError {
    let role = owner::role_name(database);
    let created = Created {
        role: true,
        database: true,
    };
    match owner::drop_created(admin, database, &role, created).await {
        Ok(()) => {
            tracing::warn!(database = %database, check = cause.check(), "refresh stopped; its database was dropped");
            cause
        }
        Err(drop_error) => RefreshError::NotDropped {
            database: database.to_owned(),
            role,
            drop_error,
            cause: Box::new(cause),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_its_check_and_what_became_of_the_new_database() {
        let interrupted = RefreshError::from(ArchiveError::Interrupted {
            database: "app_1".into(),
        });
        assert!(interrupted.is_interrupted());
        assert_eq!(interrupted.check(), "interrupted");
        let not_dropped = RefreshError::NotDropped {
            database: "app_1".into(),
            role: "app_1_owner".into(),
            drop_error: "dropping database app_1: connection lost".into(),
            cause: Box::new(interrupted),
        };
        assert!(
            not_dropped.is_interrupted(),
            "still an interruption when the drop failed"
        );
        assert_eq!(not_dropped.check(), "interrupted");
        assert_eq!(not_dropped.fate(), "left behind: drop it and its role by hand");
        assert!(not_dropped.to_string().contains("drop them by hand"));
        let refused = RefreshError::from(MaskRuleError::NoTable {
            table: "public.customers".into(),
        });
        assert_eq!(refused.check(), "masking-rules");
        assert_eq!(refused.fate(), "dropped, or never created");
        let kept = RefreshError::Swap {
            database: "app".into(),
            kept: "app_1".into(),
            message: "renaming app_1 to app: database is being accessed by other users (55006)".into(),
        };
        assert_eq!((kept.check(), kept.fate()), ("swap", "kept under its own name"));
        assert!(kept
            .to_string()
            .contains("app is as it was and the refreshed data is kept in app_1"));
    }

    #[test]
    fn nothing_to_mask_needs_no_catalogue_lookup() {
        let catalog = crate::bucket::manifest::Catalog::default();
        assert_eq!(check_masking(&Masking::default(), &catalog), Ok(Checked::default()));
    }
}
