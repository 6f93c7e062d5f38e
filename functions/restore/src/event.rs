//! The requests the function serves. The state machine passes the test's state from step to step; each step
//! returns it with its own results added.
//!
//! The state is a record for people, not a source of truth: whoever invokes a step may send any state. A step
//! reads from it only the database (or cache) under test and the request time, which name the restored resource
//! (`lifeboat::rds::restore::test_identifier`, `lifeboat::caches::restore::test_group_id`); everything else it acts on (the resource, its
//! endpoint, its master user, its secret, what it was restored from, a report's checks) it derives from AWS
//! (`restored.rs`). A state naming another restored resource than the derived one is refused. Which requests
//! a deployment serves is [`Request::entry`]'s: the steps and the console's actions are separate functions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lifeboat::caches::restore as cache_rules;
use lifeboat::core::error::Error;
use lifeboat::postgres::archive::plan::{self, ExportChoice};
use lifeboat::rds::naming::validate_db_identifier;
use lifeboat::rds::restore::Check;
use lifeboat::rds::selection::DbKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::settings::Entry;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// First state of a scheduled run: which databases to test (`time` is the schedule's). With `plan` and
    /// `rule` (a run the snapshot function's plan tick started), the members of that plan, for that
    /// restore-test rule, due at `time`.
    Plan {
        time: DateTime<Utc>,
        #[serde(default)]
        databases: Option<Vec<String>>,
        #[serde(default)]
        plan: Option<String>,
        #[serde(default)]
        rule: Option<String>,
    },
    /// Restore the newest (or the named) snapshot into an isolated instance.
    Start {
        database: String,
        #[serde(default)]
        snapshot: Option<String>,
        #[serde(default)]
        requested_at: Option<DateTime<Utc>>,
    },
    /// A restore test from the newest complete export of the `export` profile: an empty, isolated instance is
    /// created for it (the export is chosen here, from the bucket).
    ExportStart {
        database: String,
        requested_at: DateTime<Utc>,
        export: String,
    },
    /// Restores the export the instance's tag names into the empty instance, and records the checks.
    ExportVerify {
        test: TestState,
    },
    Poll {
        test: TestState,
    },
    Prepare {
        test: TestState,
    },
    Verify {
        test: TestState,
    },
    /// Writes the report; `error` is the state machine's caught error when a step failed.
    Report {
        test: TestState,
        #[serde(default)]
        error: Option<Value>,
    },
    Cleanup {
        test: TestState,
    },
    /// Last state of a scheduled run: fails when any database's test failed.
    Summary {
        results: Vec<Value>,
    },
    /// A real restore from the console into a new, named instance or cluster.
    Restore(ManualRestore),
    /// A restore of a complete export (or some of its tables) into a new database.
    #[serde(rename = "restore-export")]
    RestoreExport(ExportRestore),
    /// A database (or some of its tables) back as it was at a time, into a new database.
    Recover(RecoverRequest),
    /// A cache's restore test: restore the newest (or the named) snapshot into an isolated replication group.
    CacheStart {
        cache: String,
        #[serde(default)]
        snapshot: Option<String>,
        requested_at: DateTime<Utc>,
    },
    CachePoll {
        test: CacheTestState,
    },
    CacheVerify {
        test: CacheTestState,
    },
    CacheReport {
        test: CacheTestState,
        #[serde(default)]
        error: Option<Value>,
    },
    CacheCleanup {
        test: CacheTestState,
    },
    /// A real restore of a named cache snapshot into a new, named replication group.
    #[serde(rename = "restore-cache")]
    RestoreCache(CacheRestore),
    /// A staging refresh the plan document describes, run now (`crate::refresh`).
    Refresh(RefreshRequest),
    /// The restore function's plan tick: runs the refreshes due in the quarter of `time` (the scheduled time).
    #[serde(rename = "refresh-tick")]
    RefreshTick {
        time: DateTime<Utc>,
    },
}

/// `{"action": "refresh", "plan": "prod", "refresh": "staging", "export": "<manifest key>"}`: names only. The
/// rule is read from the plan document in force; its server, credentials and key are derived from AWS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub plan: String,
    /// The refresh rule's name within the plan.
    pub refresh: String,
    /// A manifest key of the rule's source and profile, to refresh from an older export; the newest complete
    /// one by default.
    #[serde(default)]
    pub export: Option<String>,
}

impl RefreshRequest {
    /// Refuses what cannot name a refresh before anything is read.
    pub fn validate(&self) -> Result<(), Error> {
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if !name_ok(&self.plan) || !name_ok(&self.refresh) {
            return Err(Error::InvalidEvent(format!(
                "refresh: `plan` `{}` and `refresh` `{}` are names (lowercase letters, digits, hyphens)",
                self.plan, self.refresh
            )));
        }
        match self.export.as_deref() {
            Some(key) if !key.starts_with("exports/") || !key.ends_with(".manifest.json") => Err(Error::InvalidEvent(
                format!("refresh: export `{key}` is not a manifest key (exports/.../<name>.manifest.json)"),
            )),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualRestore {
    pub database: String,
    /// A snapshot id, or `latest`; leave out to restore to `point_in_time`.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// RFC 3339, or `latest` for the latest restorable time (PITR).
    #[serde(default)]
    pub point_in_time: Option<String>,
    /// The new instance (or cluster) identifier. Never an existing one.
    pub target: String,
    #[serde(default)]
    pub instance_class: Option<String>,
    #[serde(default)]
    pub subnet_group: Option<String>,
    #[serde(default)]
    pub security_groups: Option<Vec<String>>,
    #[serde(default)]
    pub parameter_group: Option<String>,
    /// Gives the restored instance a public address; off unless `true` (the log then warns).
    #[serde(default)]
    pub publicly_accessible: bool,
}

/// Where the verify step connects: the restored resource's endpoint and master user as RDS describes them. The
/// password is never printed, and never read from or written to the state: verify fills it in from the test's
/// own password secret.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    #[serde(skip)]
    pub password: String,
    /// Database to connect to first (the export's database is used when there is a manifest).
    #[serde(default = "default_dbname")]
    pub dbname: String,
}

fn default_dbname() -> String {
    "postgres".into()
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }
}

/// A restore test in flight. Only `database` and `requested_at` are read by the steps after start (they name
/// the restored resource); the rest records what the steps found, for people and the execution's history. A
/// start that failed hands on `{"database", "requested_at"}` alone, so that its test is still reported and
/// cleaned up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestState {
    pub database: String,
    pub requested_at: DateTime<Utc>,
    #[serde(default)]
    pub kind: Option<DbKind>,
    /// The restored instance (or cluster) identifier; refused when it is not the one the database and request
    /// time name.
    #[serde(default)]
    pub restored_id: Option<String>,
    /// For a cluster: the instance created in it so that SQL can run.
    #[serde(default)]
    pub restored_instance: Option<String>,
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// When the restored data was taken: the snapshot's time.
    #[serde(default)]
    pub snapshot_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub master_user: Option<String>,
    #[serde(default)]
    pub polls: u32,
    #[serde(default)]
    pub status: Option<String>,
    /// The ARN of the test's password secret (set by prepare, deleted by cleanup), for people: verify reads the
    /// secret by its derived name. The password itself never rides in the state.
    #[serde(default)]
    pub password_secret: Option<String>,
    /// Seconds each step took, by step.
    #[serde(default)]
    pub timings: BTreeMap<String, f64>,
    /// The verify step's checks, for people; the report reads them from the verify step's own record.
    #[serde(default)]
    pub checks: Vec<Check>,
    #[serde(default)]
    pub verified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub passed: Option<bool>,
    #[serde(default)]
    pub report_key: Option<String>,
    /// Set for a test from the newest export: the profile. It picks which of the database's restore tests at that
    /// time a step acts on (each is tagged as a restore test of the database); what was restored is read from the
    /// instance's `lifeboat:restored-from` tag and checked against the database and this profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    /// How start chose what it restored (`random-point-in-time seed=... window=...`), for people: verify reads
    /// it back from the restored resource's `lifeboat:recovery-choice` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_choice: Option<String>,
}

impl TestState {
    /// The restored instance or cluster the database, request time (and, for a test from an export, the
    /// profile) name (never the state's own say).
    pub fn derived_id(&self) -> String {
        match &self.export {
            Some(profile) => lifeboat::rds::restore::export_test_identifier(&self.database, profile, self.requested_at),
            None => lifeboat::rds::restore::test_identifier(&self.database, self.requested_at),
        }
    }

    /// Where the verify step records its checks.
    pub fn record_key(&self) -> String {
        match &self.export {
            Some(profile) => {
                lifeboat::rds::restore::export_checks_record_key(&self.database, profile, self.requested_at)
            }
            None => lifeboat::rds::restore::checks_record_key(&self.database, self.requested_at),
        }
    }

    /// The test's report key without its extension.
    pub fn report_base(&self) -> String {
        match &self.export {
            Some(profile) => {
                lifeboat::bucket::layout::export_test_report_base(&self.database, profile, self.requested_at)
            }
            None => lifeboat::bucket::layout::restore_report_base(&self.database, self.requested_at),
        }
    }
}

/// Where a restored cache listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// A cache restore test in flight. Only `cache` and `requested_at` are needed to clean up: the group and its
/// AUTH secret are named from them, so a start that failed half-way is cleaned up too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheTestState {
    pub cache: String,
    pub requested_at: DateTime<Utc>,
    #[serde(default)]
    pub restored_id: Option<String>,
    #[serde(default)]
    pub snapshot: Option<String>,
    /// When the restored data was taken: the snapshot's schedule time.
    #[serde(default)]
    pub snapshot_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub polls: u32,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    /// The ARN of the secret holding the group's AUTH token, for people: verify reads the secret by its derived
    /// name (the token never rides in the state).
    #[serde(default)]
    pub auth_secret: Option<String>,
    #[serde(default)]
    pub timings: BTreeMap<String, f64>,
    #[serde(default)]
    pub checks: Vec<Check>,
    #[serde(default)]
    pub verified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub passed: Option<bool>,
    #[serde(default)]
    pub report_key: Option<String>,
    /// Set for a sharded (cluster mode) group: its shards, for people (verify reads cluster mode from
    /// ElastiCache, then asks the configuration endpoint for the primaries and checks them all).
    #[serde(default)]
    pub shards: Option<u32>,
    /// The manifest of the verified RDB copy the group was seeded from (a serverless cache's test), for people:
    /// verify reads it from the group's `lifeboat:restored-from` tag.
    #[serde(default)]
    pub rdb_manifest: Option<String>,
}

impl CacheTestState {
    /// A test whose group `group_id` is being restored, its AUTH token in the secret `auth_secret`; the caller
    /// adds what it restored from.
    pub fn started(cache: &str, requested_at: DateTime<Utc>, group_id: String, auth_secret: String) -> Self {
        Self {
            cache: cache.to_owned(),
            requested_at,
            restored_id: Some(group_id),
            snapshot: None,
            snapshot_time: None,
            polls: 0,
            status: Some("restoring".into()),
            endpoint: None,
            auth_secret: Some(auth_secret),
            timings: BTreeMap::new(),
            checks: vec![],
            verified_at: None,
            passed: None,
            report_key: None,
            shards: None,
            rdb_manifest: None,
        }
    }

    /// The restored group its cache and request time name (never the state's own say).
    pub fn group_id(&self) -> String {
        lifeboat::caches::restore::test_group_id(&self.cache, self.requested_at)
    }
}

impl Request {
    /// The entry (function) that serves this request: the state machine's steps, or the console's actions.
    pub fn entry(&self) -> Entry {
        match self {
            Request::Restore(_)
            | Request::RestoreExport(_)
            | Request::Recover(_)
            | Request::RestoreCache(_)
            | Request::Refresh(_)
            | Request::RefreshTick { .. } => Entry::Console,
            _ => Entry::Steps,
        }
    }

    /// The request's `action`, as sent.
    pub fn action(&self) -> &'static str {
        match self {
            Request::Plan { .. } => "plan",
            Request::Start { .. } => "start",
            Request::ExportStart { .. } => "export_start",
            Request::ExportVerify { .. } => "export_verify",
            Request::Poll { .. } => "poll",
            Request::Prepare { .. } => "prepare",
            Request::Verify { .. } => "verify",
            Request::Report { .. } => "report",
            Request::Cleanup { .. } => "cleanup",
            Request::Summary { .. } => "summary",
            Request::Restore(_) => "restore",
            Request::RestoreExport(_) => "restore-export",
            Request::Recover(_) => "recover",
            Request::CacheStart { .. } => "cache_start",
            Request::CachePoll { .. } => "cache_poll",
            Request::CacheVerify { .. } => "cache_verify",
            Request::CacheReport { .. } => "cache_report",
            Request::CacheCleanup { .. } => "cache_cleanup",
            Request::RestoreCache(_) => "restore-cache",
            Request::Refresh(_) => "refresh",
            Request::RefreshTick { .. } => "refresh-tick",
        }
    }
}

/// A profile names keys and tags: refused unless it is a profile name (lowercase letters, digits, hyphens).
fn check_profile(profile: &str) -> Result<(), Error> {
    lifeboat::postgres::export::validate_profile(profile, &lifeboat::postgres::export::Profile::default())
        .map_err(|e| Error::InvalidEvent(format!("export `{profile}`: {e}")))
}

/// A test from an export: its database, and its profile wherever a request carries one.
fn check_export(req: &Request) -> Result<(), Error> {
    match req {
        Request::ExportStart { database, export, .. } => {
            validate_db_identifier(database).map_err(|r| Error::InvalidEvent(format!("database `{database}`: {r}")))?;
            check_profile(export)
        }
        Request::ExportVerify { test }
        | Request::Poll { test }
        | Request::Prepare { test }
        | Request::Verify { test }
        | Request::Report { test, .. }
        | Request::Cleanup { test } => test.export.as_deref().map_or(Ok(()), check_profile),
        _ => Ok(()),
    }
}

pub fn parse(payload: Value) -> Result<Request, Error> {
    let req: Request = serde_json::from_value(payload).map_err(|e| {
        Error::InvalidEvent(format!(
            "expected {{\"action\": plan|start|export_start|poll|prepare|verify|export_verify|report|cleanup|summary|restore|restore-export|recover|cache_start|cache_poll|cache_verify|cache_report|cache_cleanup|restore-cache|refresh|refresh-tick, ...}}: {e}"
        ))
    })?;
    let check = |db: &str| validate_db_identifier(db).map_err(|r| Error::InvalidEvent(format!("database `{db}`: {r}")));
    check_export(&req)?;
    match &req {
        Request::Plan {
            databases, plan, rule, ..
        } => {
            for db in databases.iter().flatten() {
                check(db)?;
            }
            match (plan, rule, databases) {
                (Some(_), Some(_), None) | (None, None, _) => {}
                (Some(_), Some(_), Some(_)) => {
                    return Err(Error::InvalidEvent(
                        "plan: a run for a plan rule tests that plan's members; `databases` cannot be given with it"
                            .into(),
                    ))
                }
                _ => {
                    return Err(Error::InvalidEvent(
                        "plan: `plan` and `rule` are given together (a plan's restore-test rule) or not at all".into(),
                    ))
                }
            }
        }
        Request::Start { database, .. } => check(database)?,
        Request::Restore(m) => {
            check(&m.database)?;
            validate_db_identifier(&m.target)
                .map_err(|r| Error::InvalidEvent(format!("target `{}`: {r}", m.target)))?;
            if m.snapshot.is_some() == m.point_in_time.is_some() {
                return Err(Error::InvalidEvent(
                    "restore: give either `snapshot` (an id or `latest`) or `point_in_time` (RFC 3339 or `latest`)"
                        .into(),
                ));
            }
            if let Some(t) = m.point_in_time.as_deref().filter(|t| *t != "latest") {
                DateTime::parse_from_rfc3339(t)
                    .map_err(|e| Error::InvalidEvent(format!("point_in_time `{t}` is not RFC 3339: {e}")))?;
            }
            if m.target == m.database {
                return Err(Error::InvalidEvent(
                    "restore: `target` must be a new identifier, not the source".into(),
                ));
            }
        }
        Request::RestoreExport(r) => r.validate()?,
        Request::Recover(r) => r.validate()?,
        Request::CacheStart { cache, .. } => lifeboat::caches::restore::validate_group_id(cache)
            .map_err(|r| Error::InvalidEvent(format!("cache `{cache}`: {r}")))?,
        Request::RestoreCache(r) => r.validate()?,
        Request::Refresh(r) => r.validate()?,
        _ => {}
    }
    Ok(req)
}
/// `{"action": "restore-export", "database": "app-prod", "export": "latest", "tables": ["users"],
///   "into": {"database": "app_prod_restore_20261123"}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRestore {
    /// The RDS instance or cluster whose export is restored.
    pub database: String,
    /// `latest` (the default), a manifest key, or `{"before": "<RFC 3339>"}`.
    #[serde(default)]
    pub export: ExportChoice,
    /// The export profile to choose from (default `LIFEBOAT_RESTORE_EXPORT_PROFILE`, `full`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Tables as the manifest names them (`users`, `billing.invoices`, `"we.ird"."x"`); empty restores all.
    #[serde(default)]
    pub tables: Vec<String>,
    pub into: IntoTarget,
    /// `pg_restore --jobs`: 2 or more write the verified plaintext to the work directory first (refused up front
    /// when it would not fit); 1 or none streams with no file.
    #[serde(default)]
    pub jobs: Option<u32>,
}

/// `{"action": "recover", "database": "app-prod", "to": "2026-11-22T14:31:00Z", "tables": ["orders"],
/// "into": {"database": "app_orders_1431"}}`: the database (or the tables) as it was at `to`, into a new database
/// on the source's server or on `into.instance`. Only names: the scratch, the hosts and the credentials are
/// derived from RDS and the databases' Lifeboat secrets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    pub database: String,
    /// RFC 3339, inside the restorable window.
    pub to: DateTime<Utc>,
    #[serde(default)]
    pub tables: Vec<String>,
    pub into: IntoTarget,
}

impl RecoverRequest {
    /// Refuses what cannot be a recover before anything is called.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid =
            |what: &str, value: &str, reason: String| Error::InvalidEvent(format!("{what} `{value}`: {reason}"));
        validate_db_identifier(&self.database).map_err(|r| invalid("database", &self.database, r.to_string()))?;
        if let Some(i) = &self.into.instance {
            validate_db_identifier(i).map_err(|r| invalid("into.instance", i, r.to_string()))?;
        }
        plan::check_target_name(&self.into.database)
            .map_err(|e| invalid("into.database", &self.into.database, e.to_string()))
    }
}

/// Where the restore goes: a database that must not exist yet, on the source's server or on `instance`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntoTarget {
    pub database: String,
    #[serde(default)]
    pub instance: Option<String>,
}

impl ExportRestore {
    /// Refuses what cannot be a restore-export before anything is called.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid =
            |what: &str, value: &str, reason: String| Error::InvalidEvent(format!("{what} `{value}`: {reason}"));
        validate_db_identifier(&self.database).map_err(|r| invalid("database", &self.database, r.to_string()))?;
        if let Some(i) = &self.into.instance {
            validate_db_identifier(i).map_err(|r| invalid("into.instance", i, r.to_string()))?;
        }
        if let Some(jobs) = self.jobs.filter(|j| !(1..=plan::MAX_JOBS).contains(j)) {
            return Err(invalid(
                "jobs",
                &jobs.to_string(),
                format!("between 1 and {}", plan::MAX_JOBS),
            ));
        }
        plan::check_target_name(&self.into.database).map_err(|e| Error::InvalidEvent(e.to_string()))
    }
}

/// `{"action": "restore-cache", "snapshot": ..., "target": ..., "node_type": ..., "reason": ...}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRestore {
    /// The ElastiCache snapshot to restore (any available snapshot, Lifeboat's or not).
    pub snapshot: String,
    /// The new replication group's identifier. Never an existing one.
    pub target: String,
    /// The node type of the new group (the source's, for a replacement).
    pub node_type: String,
    /// Default: the restore-test cache subnet group (LIFEBOAT_CACHE_RESTORE_SUBNET_GROUP).
    #[serde(default)]
    pub subnet_group: Option<String>,
    /// Default: the restore-test cache security group (admits only the restore function).
    #[serde(default)]
    pub security_groups: Option<Vec<String>>,
    /// Why, in the new group's tags.
    pub reason: String,
}

impl CacheRestore {
    pub fn validate(&self) -> Result<(), Error> {
        cache_rules::validate_group_id(&self.target)
            .map_err(|r| Error::InvalidEvent(format!("restore-cache: target `{}` {r}", self.target)))?;
        if self.reason.trim().is_empty() {
            return Err(Error::InvalidEvent(
                "restore-cache: give a `reason` (it goes in the tags)".into(),
            ));
        }
        Ok(())
    }
}
