//! `recover`: one database, or some of its tables, back as it was at a time, in one step. The instance (or
//! cluster) is restored to that time into an isolated, private scratch instance tagged as a restore test, its
//! master password is replaced by one only this process holds, the database (or the chosen tables, whole) is
//! streamed from it into a NEW database on the target server as that database's own role, the row counts of the
//! target are compared with the scratch's, and the scratch is deleted: always (done, refused after the restore
//! started, failed, interrupted, out of time). The janitor deletes an expired scratch should even that delete
//! fail, because it carries the restore-test tags.
//!
//! Refused up front, before anything is created: a time outside the restorable window (the message has the
//! window), a target database or owner role that exists. Every wait has the caller's deadline; the copy stops
//! before it with the new database dropped.
//!
//! Uses `rds` (the window, the scratch's name, tags and restore, the delete that refuses anything not tagged as a
//! restore test) and `postgres` (the copy, `postgres::archive::recover`). Behind the `archive` feature, as the
//! copy is. Never: takes the scratch's host or the source's identity from anything but RDS (the caller passes
//! the database as RDS described it), prints a password, or writes to the source.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::core::error::Error;
use crate::postgres::archive::recover::{self as copy, Copied};
use crate::postgres::archive::{owner, ArchiveError, Counters};
use crate::postgres::db;
use crate::rds::described::Placement;
use crate::rds::instances::{self, PointInTimeRequest};
use crate::rds::recover::{self as rules, OutsideWindow, Window};
use crate::rds::restore::{console_member_identifier, is_failed_state};
use crate::rds::selection::{Database, DbKind};

/// The stages a recover reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// The time is inside this window.
    Window(Window),
    /// The point-in-time restore into this scratch started.
    Restoring(String),
    /// The scratch is available with a password only this process holds.
    Ready,
    /// Copying from the scratch into the target.
    Copying,
    /// The target's row counts equal the scratch's.
    Verified,
    /// The scratch's delete was started (or it was gone).
    Deleted(String),
}

/// One recover.
pub struct Request<'a> {
    pub rds: &'a aws_sdk_rds::Client,
    /// The source as RDS described it.
    pub db: &'a Database,
    pub at: DateTime<Utc>,
    /// Tables as the caller named them; empty: the whole database.
    pub tables: &'a [String],
    /// The database to copy out of the scratch (the source's database name).
    pub source_dbname: &'a str,
    /// The target server and the NEW database's name.
    pub into: &'a db::Target,
    pub maintenance_db: &'a str,
    /// Where the scratch goes: the restore tests' subnet group, security group and class, isolated.
    pub placement: &'a Placement,
    /// When the janitor may delete the scratch, should this process not.
    pub expires: DateTime<Utc>,
    /// How the scratch is reached: the TLS of its connection, and where its described endpoint is reached (the
    /// identity outside local runs).
    pub scratch_tls: &'a db::TlsSettings,
    pub reach: &'a (dyn Fn(&str, u16) -> (String, u16) + Sync),
    pub pg_dump: &'a str,
    pub pg_restore: &'a str,
    pub poll: Duration,
    /// When everything, the scratch's delete included, must be done.
    pub deadline: Option<Instant>,
    pub interrupt: Option<&'a tokio::sync::watch::Receiver<bool>>,
    pub progress: &'a (dyn Fn(&Stage) + Sync),
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("db", &self.db.id)
            .field("at", &self.at)
            .field("tables", &self.tables)
            .field("into", self.into)
            .finish_non_exhaustive()
    }
}

/// A recover that was verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recovered {
    pub scratch: String,
    pub at: DateTime<Utc>,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub copied: Copied,
    pub restore_seconds: f64,
    /// From the request to a verified target.
    pub rto_seconds: f64,
    /// The scratch's delete: `deleting` (started) or `gone`.
    pub scratch_deleted: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Outside(#[from] OutsideWindow),
    #[error(transparent)]
    Aws(#[from] Error),
    #[error(transparent)]
    Copy(#[from] ArchiveError),
    #[error("the scratch instance {scratch} is {status}: the point-in-time restore failed")]
    ScratchFailed { scratch: String, status: String },
    #[error("out of time while {stage}; the scratch instance {scratch} was deleted")]
    Deadline { stage: &'static str, scratch: String },
    #[error("interrupted while {stage}; the scratch instance {scratch} was deleted")]
    Interrupted { stage: &'static str, scratch: String },
    #[error("{cause}; and the scratch instance {scratch} could not be deleted ({error}): the janitor deletes it once its lifeboat:expires-at tag has passed, or delete it by hand")]
    NotDeleted {
        scratch: String,
        error: String,
        cause: Box<RecoverError>,
    },
}

impl RecoverError {
    /// Whether nothing was created: refused before the scratch's restore was asked for.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Outside(_) | Self::Copy(ArchiveError::TargetExists { .. } | ArchiveError::RoleExists { .. })
        )
    }

    /// Whether the caller was interrupted.
    pub fn is_interrupted(&self) -> bool {
        match self {
            Self::Interrupted { .. } => true,
            Self::Copy(e) => e.is_interrupted(),
            Self::NotDeleted { cause, .. } => cause.is_interrupted(),
            _ => false,
        }
    }
}

/// How long the scratch's delete is given at the end (taken off the caller's deadline for everything before).
const DELETE_MARGIN: Duration = Duration::from_secs(20);

/// Runs one recover (see the module's doc).
pub async fn recover(req: Request<'_>) -> Result<Recovered, RecoverError> {
    let started = Instant::now();
    let (window, retention) = rules::restorable_window(req.rds, req.db.kind, &req.db.id).await?;
    rules::check_time(&req.db.id, req.at, window, retention)?;
    let Some(window) = window else {
        return Err(OutsideWindow::Off { db: req.db.id.clone() }.into());
    };
    (req.progress)(&Stage::Window(window));
    check_target_free(req.into, req.maintenance_db).await?;
    let scratch = rules::scratch_identifier(&req.db.id, Utc::now());
    let tags = rules::scratch_tags(&req.db.id, req.at, req.expires);
    let restore = PointInTimeRequest {
        kind: req.db.kind,
        source_id: &req.db.id,
        engine: &req.db.engine,
        target_id: &scratch,
        at: Some(req.at),
        placement: req.placement,
        tags: &tags,
    };
    let stop_at = req.deadline.map(|d| d.checked_sub(DELETE_MARGIN).unwrap_or(d));
    let outcome = match instances::restore_to_time(req.rds, &restore).await {
        Ok(()) => {
            (req.progress)(&Stage::Restoring(scratch.clone()));
            from_scratch(&req, &scratch, stop_at)
                .await
                .map(|(copied, restore_seconds)| (copied, restore_seconds, started.elapsed().as_secs_f64()))
        }
        Err(e) => Err(e.into()),
    };
    let member = (req.db.kind == DbKind::Cluster).then(|| console_member_identifier(&scratch));
    let deleted = instances::delete_test(req.rds, req.db.kind, &scratch, member.as_deref()).await;
    let deleted = match (outcome, deleted) {
        (Ok(done), Ok(d)) => Ok((done, d)),
        (Err(cause), Ok(_)) => Err(cause),
        (outcome, Err(e)) => Err(RecoverError::NotDeleted {
            scratch: scratch.clone(),
            error: e.to_string(),
            cause: Box::new(outcome.err().unwrap_or(RecoverError::Aws(Error::PartialFailure(
                "the recover itself was verified".into(),
            )))),
        }),
    };
    (req.progress)(&Stage::Deleted(scratch.clone()));
    let ((copied, restore_seconds, rto), d) = deleted?;
    Ok(Recovered {
        scratch,
        at: req.at,
        window: (window.earliest, window.latest),
        copied,
        restore_seconds,
        rto_seconds: rto,
        scratch_deleted: match d {
            instances::Deleted::Deleting => "deleting".into(),
            instances::Deleted::Gone => "gone".into(),
        },
    })
}

/// Refuses up front a target database or owner role that exists (the copy refuses them again, atomically).
async fn check_target_free(into: &db::Target, maintenance_db: &str) -> Result<(), ArchiveError> {
    let admin = db::connect(
        &db::Target {
            dbname: maintenance_db.to_owned(),
            ..into.clone()
        },
        crate::postgres::archive::restore::CONNECT_TIMEOUT,
    )
    .await?;
    let role = owner::role_name(&into.dbname);
    let sql = "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1), \
               (SELECT count(*) FROM pg_roles WHERE rolname = $2)";
    let row = admin
        .query_one(sql, &[&into.dbname, &role])
        .await
        .map_err(|e| ArchiveError::Sql {
            action: "checking the target is new".into(),
            message: db::describe(&e),
        })?;
    if row.get::<_, i64>(0) > 0 {
        return Err(ArchiveError::TargetExists {
            database: into.dbname.clone(),
        });
    }
    if row.get::<_, i64>(1) > 0 {
        return Err(ArchiveError::RoleExists {
            role,
            database: into.dbname.clone(),
        });
    }
    Ok(())
}

/// Waits for the scratch, gives it a password only this process holds, and copies from it. Answers the copy and
/// the seconds the scratch took to be ready.
async fn from_scratch(
    req: &Request<'_>,
    scratch: &str,
    stop_at: Option<Instant>,
) -> Result<(Copied, f64), RecoverError> {
    let started = Instant::now();
    let stopped = |stage: &'static str| RecoverError::Deadline {
        stage,
        scratch: scratch.to_owned(),
    };
    let interrupted = |stage: &'static str| RecoverError::Interrupted {
        stage,
        scratch: scratch.to_owned(),
    };
    let ready = async {
        let from = ready(req, scratch).await?;
        let source = loop {
            // A new master password takes a moment to apply: its first logins may still be refused.
            match copy::source_tables(&from).await {
                Ok(tables) => break tables,
                Err(ArchiveError::Connect(e)) if stop_at.is_none_or(|at| Instant::now() + req.poll < at) => {
                    tracing::info!(scratch = %scratch, error = %e, "the scratch does not take the new password yet");
                    tokio::time::sleep(req.poll).await;
                }
                Err(e) => return Err(RecoverError::from(e)),
            }
        };
        Ok::<_, RecoverError>((from, source))
    };
    let (from, source) = tokio::select! {
        r = ready => r?,
        () = until(stop_at) => return Err(stopped("waiting for the scratch instance")),
        () = interrupt(req.interrupt) => return Err(interrupted("waiting for the scratch instance")),
    };
    let restore_seconds = started.elapsed().as_secs_f64();
    (req.progress)(&Stage::Ready);
    (req.progress)(&Stage::Copying);
    let counters = Arc::new(Counters::default());
    let copied = copy::copy(
        copy::Request {
            from: &from,
            tables: req.tables,
            pg_dump: req.pg_dump,
            pg_restore: req.pg_restore,
            into: req.into,
            maintenance_db: req.maintenance_db,
            counters: &counters,
            interrupt: req.interrupt,
            stop_at,
        },
        &source,
    )
    .await?;
    (req.progress)(&Stage::Verified);
    Ok((copied, restore_seconds))
}

/// Waits until the scratch is available, sets its master password, and answers how to log in to it: its
/// described endpoint and master user, the password only this process holds.
async fn ready(req: &Request<'_>, scratch: &str) -> Result<db::Target, RecoverError> {
    let watched = match req.db.kind {
        DbKind::Instance => scratch.to_owned(),
        DbKind::Cluster => console_member_identifier(scratch),
    };
    let available = wait_available(req, &watched).await?;
    let master_user = match req.db.kind {
        DbKind::Instance => available.master_user.clone(),
        DbKind::Cluster => instances::cluster(req.rds, scratch)
            .await?
            .map(|c| c.master_user)
            .unwrap_or_default(),
    };
    let password = owner::one_time_password()?;
    instances::set_master_password(req.rds, req.db.kind, scratch, &password).await?;
    let info = wait_available(req, &watched).await?;
    let (host, port) = info.endpoint.ok_or_else(|| RecoverError::ScratchFailed {
        scratch: scratch.to_owned(),
        status: "available without an endpoint".into(),
    })?;
    let (host, port) = (req.reach)(&host, port);
    Ok(db::Target {
        host,
        port,
        dbname: req.source_dbname.to_owned(),
        user: master_user,
        password,
        tls: req.scratch_tls.clone(),
    })
}

async fn wait_available(req: &Request<'_>, watched: &str) -> Result<crate::rds::described::InstanceInfo, RecoverError> {
    loop {
        match instances::instance(req.rds, watched).await? {
            Some(i) if i.status == "available" => return Ok(i),
            Some(i) if is_failed_state(&i.status) => {
                return Err(RecoverError::ScratchFailed {
                    scratch: watched.to_owned(),
                    status: i.status,
                })
            }
            _ => tokio::time::sleep(req.poll).await,
        }
    }
}

async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn interrupt(interrupt: Option<&tokio::sync::watch::Receiver<bool>>) {
    match interrupt {
        Some(i) => {
            let mut i = i.clone();
            if i.wait_for(|on| *on).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
