//! Rules of restore tests and console restores, as pure functions: which snapshot to restore, what the restored
//! resources are called, where they go and how they are marked, when a restore has failed or taken too long, how
//! restored data is judged against an export's manifest, when a test passed, and the RTO/RPO arithmetic.
//!
//! Owns the decisions only. It must never call AWS or a database, read the clock or the environment: callers
//! gather the facts (statuses, times, settings) and act on the answer.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rds::described::{ClusterInfo, InstanceInfo, Placement};
use crate::rds::selection::DbKind;
use crate::rds::snapshots::Snapshot;

pub use crate::core::tags::{EXPIRES_AT, RESTORE_TEST, SOURCE_DB};

/// The tag naming what a restore-test resource was restored from (a snapshot's identifier, or an RDB copy's
/// manifest key), written by the start step in the create call. The later steps read it back from AWS rather
/// than trusting the state they are handed for what the test restored and how old its data is.
pub const RESTORED_FROM: &str = "lifeboat:restored-from";

/// Whether a restore-test resource is the one a step may act on: tagged as a restore test, and its `source_key`
/// tag naming `source` (the database or cache under test). `Err` says what is wrong, for the refusal.
pub fn owned_test(tags: &BTreeMap<String, String>, source_key: &str, source: &str) -> Result<(), String> {
    if !is_restore_test(tags) {
        return Err(format!("it is not tagged {RESTORE_TEST}=true"));
    }
    match tags.get(source_key) {
        Some(s) if s == source => Ok(()),
        Some(s) => Err(format!("its {source_key} tag names {s}, not {source}")),
        None => Err(format!("it has no {source_key} tag")),
    }
}

/// What a verify step ran and found, written by the step itself to [`checks_record_key`] and read back by the
/// report step: the report's verdict comes from this record, never from checks in the state (which whoever
/// invokes the step could make up). Every fact in it was read from AWS or the restored database by the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyRecord {
    pub format_version: u32,
    pub database: String,
    pub kind: DbKind,
    pub restored_id: String,
    /// The snapshot the restored resource's [`RESTORED_FROM`] tag names, and when RDS says it was taken
    /// (`None` when either is unknown: a failed check then says why).
    pub snapshot_id: Option<String>,
    pub snapshot_time: Option<DateTime<Utc>>,
    pub requested_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub checks: Vec<Check>,
    /// A test from the newest export: the manifest key the restored instance's [`RESTORED_FROM`] tag names
    /// (then `snapshot_time` is the export's logical time, the age of the restored data). Absent for a snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    /// How the recovery point was chosen ([`crate::rds::recovery::Choice::describe`]), as the restored
    /// resource's [`crate::rds::recovery::RECOVERY_CHOICE`] tag says. Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_choice: Option<String>,
    /// A point-in-time test: the restore time its [`RESTORED_FROM`] tag names (`snapshot_time` is then that
    /// time, `snapshot_id` absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<DateTime<Utc>>,
    /// A point-in-time test: how far the restored data reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_reaches: Option<Reach>,
}

/// How far a point-in-time restore's data reaches: the newest commit its heartbeat holds, or (no heartbeat
/// configured) the restore time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    pub time: DateTime<Utc>,
    /// `heartbeat <table.column>` or `restore time`.
    pub from: String,
}

/// Where a database restore test's verify step records its checks: next to the report, under the test's own
/// report base (`reports/restore-tests/<db>/<stamp>.checks.json`). "Newest report" lookups never take it for a
/// report: its name carries no time they read ([`crate::bucket::layout::time_in_key`]).
pub fn checks_record_key(db: &str, requested_at: DateTime<Utc>) -> String {
    format!(
        "{}.checks.json",
        crate::bucket::layout::restore_report_base(db, requested_at)
    )
}

/// Where a restore test from the newest export of `profile` records its checks: beside its report
/// ([`crate::bucket::layout::export_test_report_base`]), never where a snapshot test of the same time records.
pub fn export_checks_record_key(db: &str, profile: &str, requested_at: DateTime<Utc>) -> String {
    format!(
        "{}.checks.json",
        crate::bucket::layout::export_test_report_base(db, profile, requested_at)
    )
}

/// The empty instance a restore test from the newest export of `profile` restores into:
/// `lifeboat-rx-<db>-<6 hex digits of the profile's SHA-256>-<yyyymmddhhmm>`. Its own prefix, so it never
/// takes a snapshot test's name; the profile's digest (not its text), so two profiles tested at the same time
/// get two instances and no pair of database and profile names reads as another pair. The database's name is
/// shortened by [`crate::rds::naming::shorten`], as every derived name is.
pub fn export_test_identifier(db: &str, profile: &str, at: DateTime<Utc>) -> String {
    use sha2::{Digest, Sha256};
    let stamp = at.format("%Y%m%d%H%M").to_string();
    let digest: String = Sha256::digest(profile.as_bytes())
        .iter()
        .take(3)
        .map(|b| format!("{b:02x}"))
        .collect();
    let room = 63 - "lifeboat-rx-".len() - 1 - digest.len() - 1 - stamp.len();
    let part = crate::rds::naming::shorten(db, room);
    let mut id = format!("lifeboat-rx-{part}-{digest}-{stamp}");
    while id.contains("--") {
        id = id.replace("--", "-");
    }
    id
}

/// Whether `key` is a complete export of `db` in `profile` (a manifest under its prefix): what the verify step
/// of an export test accepts from the restored instance's [`RESTORED_FROM`] tag.
pub fn is_export_of(key: &str, db: &str, profile: &str) -> bool {
    key.ends_with(crate::bucket::layout::MANIFEST_SUFFIX)
        && crate::bucket::layout::profile_in_key(db, key) == Some(profile)
}

/// The storage of an export test's empty instance, in GiB: twice the source database's size when it was
/// exported (room for the data, its rebuilt indexes and the WAL of the load), at least RDS's 20 GiB minimum for
/// gp3 and at most its 65,536.
pub fn export_test_storage_gib(database_size_bytes: i64) -> i32 {
    const GIB: i64 = 1024 * 1024 * 1024;
    let twice = database_size_bytes.max(0).saturating_mul(2);
    let gib = twice / GIB + i64::from(twice % GIB != 0);
    i32::try_from(gib.clamp(20, 65_536)).unwrap_or(65_536)
}

/// The RDS for PostgreSQL engine version an export test's instance gets: the major version of the server the
/// export was taken from (`16.4` gives `16`; RDS picks that major version's default minor), so pg_restore loads
/// the archive into the PostgreSQL it came from. `None` when the version cannot be read (RDS's default then).
pub fn export_test_engine_version(server_version: &str) -> Option<String> {
    let major = server_version.split(['.', ' ']).next()?;
    (!major.is_empty() && major.chars().all(|c| c.is_ascii_digit())).then(|| major.to_owned())
}

/// The check that names the export an export test restored.
pub fn export_chosen_check_name(profile: &str) -> String {
    format!("the newest `{profile}` export")
}

/// The check that an export test's restore ran through pg_restore with the manifest's exact row counts.
pub fn export_restore_check_name(profile: &str) -> String {
    format!("the newest `{profile}` export restores into an empty instance")
}

/// Whether a resource carries the restore-test tag: the one guard in front of every delete of a restore test.
pub fn is_restore_test(tags: &BTreeMap<String, String>) -> bool {
    tags.get(RESTORE_TEST).is_some_and(|v| v == "true")
}

/// Whether the janitor may delete a resource now: a restore test whose expiry time has passed. A resource without
/// a readable expiry is left alone (and reported by nobody's cleanup but its own test's).
pub fn expired_restore_test(tags: &BTreeMap<String, String>, now: DateTime<Utc>) -> bool {
    is_restore_test(tags)
        && tags
            .get(EXPIRES_AT)
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .is_some_and(|t| t < now)
}

/// The identifier of a restore-test instance or cluster: `lifeboat-rt-<db>-<yyyymmddhhmm>`, within RDS's 63
/// characters, never ending in a hyphen or holding two hyphens in a row. A database name too long for its room is
/// shortened by the snapshot identifiers' rule ([`crate::rds::naming::shorten`]: a head and a hash of the whole name),
/// so two long names that share a head never name the same restore test.
pub fn test_identifier(db: &str, at: DateTime<Utc>) -> String {
    let stamp = at.format("%Y%m%d%H%M").to_string();
    let room = 63 - "lifeboat-rt-".len() - 1 - stamp.len();
    let part = crate::rds::naming::shorten(db, room);
    let mut id = format!("lifeboat-rt-{part}-{stamp}");
    while id.contains("--") {
        id = id.replace("--", "-");
    }
    id
}

/// Where every restore test's password secret is named; the restore role may create, read and delete secrets
/// under this prefix only (and only when tagged `lifeboat:restore-test=true`).
pub const TEST_SECRET_PREFIX: &str = "lifeboat/restore-test/";

/// The Secrets Manager secret holding a restore test's master password: `lifeboat/restore-test/<restored id>`.
/// Derived from the restored identifier, so that cleanup finds it even when prepare failed before the state got
/// its ARN.
pub fn test_secret_name(restored_id: &str) -> String {
    format!("{TEST_SECRET_PREFIX}{restored_id}")
}

/// Whether `start` may go on with a resource that already carries its restore test's name (a redelivered or
/// retried start): only a restore test of the same database. `Err` holds the database the resource belongs to
/// (`None` when it is not a restore test, or names no source), for the error that leaves it alone.
pub fn may_reuse(tags: &BTreeMap<String, String>, db: &str) -> Result<(), Option<String>> {
    let source = tags.get(SOURCE_DB).filter(|_| is_restore_test(tags));
    match source {
        Some(s) if s == db => Ok(()),
        other => Err(other.cloned()),
    }
}

/// The identifier of the instance a restore test creates inside its restored cluster: the cluster's
/// `lifeboat-rt-...` identifier with `lifeboat-ri-` in front instead.
pub fn test_member_identifier(restored_id: &str) -> String {
    restored_id.replacen("lifeboat-rt-", "lifeboat-ri-", 1)
}

/// The instance a restore test creates in a restored cluster (so that SQL can run), `None` for an instance.
pub fn test_member(kind: DbKind, restored_id: &str) -> Option<String> {
    (kind == DbKind::Cluster).then(|| test_member_identifier(restored_id))
}

/// When a restore test's resources may be deleted by the janitor: `hours` after `now`.
pub fn test_expiry(now: DateTime<Utc>, hours: u32) -> DateTime<Utc> {
    now + chrono::Duration::hours(i64::from(hours))
}

/// The instance a console restore creates in a restored cluster: `<target>-1`.
pub fn console_member_identifier(target: &str) -> String {
    format!("{target}-1")
}

/// The instance whose status tells whether a console restore is done: the target itself, or its cluster's member.
pub fn console_instance(kind: DbKind, target: &str) -> String {
    match kind {
        DbKind::Instance => target.to_owned(),
        DbKind::Cluster => console_member_identifier(target),
    }
}

/// The scratch database the verify step restores the latest export into: `lifeboat_verify_<yyyymmddhhmmss>`.
pub fn scratch_database(requested_at: DateTime<Utc>) -> String {
    format!("lifeboat_verify_{}", requested_at.format("%Y%m%d%H%M%S"))
}

/// The scratch check of the restore test's own profile keeps its name; each other profile's latest export gets
/// its own check, so every profile's archive (a partial one too) is restored for real at every test.
pub fn scratch_check_name(other_profile: Option<&str>) -> String {
    match other_profile {
        None => "the latest export restores with pg_restore".to_owned(),
        Some(p) => format!("the latest `{p}` export restores with pg_restore"),
    }
}

/// The scratch database of another profile's latest export: `lifeboat_verify_<yyyymmddhhmmss>_<n>`, n from 1.
pub fn other_scratch_database(requested_at: DateTime<Utc>, n: usize) -> String {
    format!("{}_{n}", scratch_database(requested_at))
}

/// Where a restore test's instance goes: the configured subnet group, security group and class, isolated.
pub fn test_placement(subnet_group: Option<&str>, security_group: Option<&str>, instance_class: &str) -> Placement {
    Placement {
        subnet_group: subnet_group.map(str::to_owned),
        security_groups: security_group.iter().map(|g| (*g).to_owned()).collect(),
        instance_class: instance_class.to_owned(),
        parameter_group: None,
        isolated: true,
        publicly_accessible: false,
    }
}

/// What a console restore request says about placement; `None` means "like the source".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementChoice {
    pub subnet_group: Option<String>,
    pub security_groups: Option<Vec<String>>,
    pub instance_class: Option<String>,
    pub parameter_group: Option<String>,
    /// Only an explicit `true` in the request makes the restored database public.
    pub publicly_accessible: bool,
}

/// Where a source database lives, as a console restore copies it: an instance's subnet group, security groups,
/// parameter group and class, or a cluster's subnet group and security groups (its new instance takes the
/// default class).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePlacement {
    pub subnet_group: Option<String>,
    pub security_groups: Vec<String>,
    pub parameter_group: Option<String>,
    pub instance_class: String,
}

impl From<&InstanceInfo> for SourcePlacement {
    fn from(i: &InstanceInfo) -> Self {
        Self {
            subnet_group: i.subnet_group.clone(),
            security_groups: i.security_groups.clone(),
            parameter_group: i.parameter_group.clone(),
            instance_class: i.instance_class.clone(),
        }
    }
}

impl From<&ClusterInfo> for SourcePlacement {
    fn from(c: &ClusterInfo) -> Self {
        Self {
            subnet_group: c.subnet_group.clone(),
            security_groups: c.security_groups.clone(),
            parameter_group: None,
            instance_class: String::new(),
        }
    }
}

/// Where a console restore goes: each setting from the request, else from the source, else (the class only)
/// `default_class`. Never isolated: it is a real database. Never public unless the request says so.
pub fn console_placement(choice: &PlacementChoice, source: Option<&SourcePlacement>, default_class: &str) -> Placement {
    Placement {
        subnet_group: choice
            .subnet_group
            .clone()
            .or_else(|| source.and_then(|s| s.subnet_group.clone())),
        security_groups: choice
            .security_groups
            .clone()
            .unwrap_or_else(|| source.map(|s| s.security_groups.clone()).unwrap_or_default()),
        instance_class: choice
            .instance_class
            .clone()
            .or_else(|| source.map(|s| s.instance_class.clone()).filter(|c| !c.is_empty()))
            .unwrap_or_else(|| default_class.to_owned()),
        parameter_group: choice
            .parameter_group
            .clone()
            .or_else(|| source.and_then(|s| s.parameter_group.clone())),
        isolated: false,
        publicly_accessible: choice.publicly_accessible,
    }
}

/// A console restore's point in time: `latest` (None: the latest restorable time) or an RFC 3339 time.
pub fn point_in_time(text: &str) -> Result<Option<DateTime<Utc>>, chrono::ParseError> {
    (text != "latest")
        .then(|| DateTime::parse_from_rfc3339(text).map(|d| d.with_timezone(&Utc)))
        .transpose()
}

/// RDS statuses in which a restore has ended without a usable database.
pub const FAILED_STATES: [&str; 5] = [
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "storage-full",
];

/// Whether an RDS status means the restore has failed for good.
pub fn is_failed_state(status: &str) -> bool {
    FAILED_STATES.contains(&status)
}

/// Whether a restore requested at `requested_at` has run past its limit of `limit_minutes` at `now`.
pub fn timed_out(requested_at: DateTime<Utc>, now: DateTime<Utc>, limit_minutes: u32) -> bool {
    now - requested_at > chrono::Duration::minutes(i64::from(limit_minutes))
}

/// What one look at a restore test's instance means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The instance is available: record its endpoint.
    Available,
    /// RDS gave up on the restore (one of [`FAILED_STATES`]).
    Failed,
    /// Still restoring after the limit.
    TimedOut,
    /// Still restoring; look again later.
    Restoring,
}

/// The poll decision: a failed state fails the test, `available` ends the wait, anything else waits until the limit.
pub fn progress(status: &str, requested_at: DateTime<Utc>, now: DateTime<Utc>, limit_minutes: u32) -> Progress {
    if is_failed_state(status) {
        Progress::Failed
    } else if status == "available" {
        Progress::Available
    } else if timed_out(requested_at, now, limit_minutes) {
        Progress::TimedOut
    } else {
        Progress::Restoring
    }
}

/// How long before the invocation's deadline a console restore stops waiting, and how long it sleeps between looks.
pub const CONSOLE_WAIT_MARGIN: Duration = Duration::from_secs(40);
pub const CONSOLE_WAIT_INTERVAL: Duration = Duration::from_secs(20);

/// What a console restore does after one look at its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleWait {
    /// Available: answer with the endpoint.
    Ready,
    /// Out of time, or failed: answer with the status and the command to wait with.
    Handover,
    /// Sleep [`CONSOLE_WAIT_INTERVAL`] and look again.
    Again,
}

/// The console restore's wait decision, given the instance's status and the invocation's time left (`None`: no
/// deadline known, so never wait).
pub fn console_wait(status: &str, time_left: Option<Duration>) -> ConsoleWait {
    if status == "available" {
        ConsoleWait::Ready
    } else if time_left.is_none_or(|l| l < CONSOLE_WAIT_MARGIN) || is_failed_state(status) {
        ConsoleWait::Handover
    } else {
        ConsoleWait::Again
    }
}

/// The snapshot to restore: the one named (which must exist and be available), else the newest available one,
/// Lifeboat's or automated.
pub fn choose_snapshot<'a>(snapshots: &'a [Snapshot], named: Option<&str>) -> Result<&'a Snapshot, String> {
    if let Some(id) = named.filter(|n| *n != "latest") {
        let s = snapshots
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| format!("snapshot {id} does not exist for this database"))?;
        if !s.is_available() {
            return Err(format!("snapshot {id} is {}, not available", s.status));
        }
        return Ok(s);
    }
    snapshots
        .iter()
        .filter(|s| s.is_available() && s.created.is_some())
        .max_by_key(|s| s.created)
        .ok_or_else(|| "the database has no available snapshot to restore".to_owned())
}

/// The result of one check of a restore test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub result: CheckResult,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    Passed,
    Failed,
    /// Could not be run (e.g. no export to compare with); never counts as passed, and is reported.
    Skipped,
}

impl Check {
    pub fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            result: if ok { CheckResult::Passed } else { CheckResult::Failed },
            detail: detail.into(),
        }
    }

    pub fn skipped(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            result: CheckResult::Skipped,
            detail: detail.into(),
        }
    }
}

/// Compares the row counts of a restored database with an export's manifest (`schema.table` → rows). A table of
/// the manifest that is missing fails; a count further from the manifest's than `tolerance_percent` (the snapshot
/// and the export were taken at different times) fails. Tables the manifest does not list are not judged.
pub fn compare_counts(
    expected: &BTreeMap<String, i64>,
    actual: &BTreeMap<String, i64>,
    tolerance_percent: f64,
) -> Vec<Check> {
    expected
        .iter()
        .map(|(table, &want)| {
            let name = format!("rows of {table}");
            match actual.get(table) {
                None => Check::new(name, false, format!("table missing (the export has {want} rows)")),
                Some(&got) => {
                    let allowed = (want as f64 * tolerance_percent / 100.0).ceil() as i64;
                    let ok = (got - want).abs() <= allowed && (want == 0 || got > 0);
                    Check::new(
                        name,
                        ok,
                        format!("{got} restored, {want} in the export (tolerance ±{allowed})"),
                    )
                }
            }
        })
        .collect()
}

/// Whether a SQL check's answer (the first column of its first row, as text) is a pass: true, or a non-zero number.
pub fn sql_answer_passes(value: &str) -> bool {
    value == "t" || value.parse::<f64>().is_ok_and(|n| n != 0.0)
}

/// The scratch restore's verdict: every table of the manifest restored with exactly its row count.
pub fn scratch_check(
    name: &str,
    bytes: u64,
    expected: &BTreeMap<String, i64>,
    actual: &BTreeMap<String, i64>,
) -> Check {
    let bad: Vec<_> = compare_counts(expected, actual, 0.0)
        .into_iter()
        .filter(|c| c.result != CheckResult::Passed)
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

/// Whether the first check (the connection) passed: only then is the database verified.
pub fn connected(checks: &[Check]) -> bool {
    checks.first().is_some_and(|c| c.result == CheckResult::Passed)
}

/// A restore test passes when it did not stop early, verified a database, ran checks, and none of them failed.
pub fn test_passed(checks: &[Check], verified: bool, stopped_early: bool) -> bool {
    let failed_check = checks.iter().any(|c| c.result == CheckResult::Failed);
    !stopped_early && !failed_check && verified && !checks.is_empty()
}

/// The databases (and caches) of a run whose test did not pass (`passed` must be `true`; `?` for a result
/// without a name).
pub fn failed_databases(results: &[Value]) -> Vec<&str> {
    results
        .iter()
        .filter(|r| r.get("passed").and_then(Value::as_bool) != Some(true))
        .map(|r| {
            r.get("database")
                .or_else(|| r.get("cache"))
                .and_then(Value::as_str)
                .unwrap_or("?")
        })
        .collect()
}

/// Recovery time (request to verified database) and recovery point (age of the restored data at the request).
pub fn rto_rpo(requested: DateTime<Utc>, verified: DateTime<Utc>, data_time: DateTime<Utc>) -> (f64, f64) {
    let rto = (verified - requested).num_milliseconds() as f64 / 1000.0;
    let rpo = (requested - data_time).num_milliseconds().max(0) as f64 / 1000.0;
    (rto, rpo)
}

/// A restore test's report, as the restore function writes it under `reports/restore-tests/<db>/` (JSON) and
/// the evidence report reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format_version: u32,
    pub lifeboat_version: String,
    pub database: String,
    pub kind: DbKind,
    pub restored_id: String,
    pub snapshot_id: String,
    pub snapshot_time: DateTime<Utc>,
    pub requested_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub passed: bool,
    /// Request to verified database, in seconds (absent when the test did not get that far).
    pub rto_seconds: Option<f64>,
    /// Age of the restored data when the test was requested, in seconds.
    pub rpo_seconds: f64,
    pub timings_seconds: BTreeMap<String, f64>,
    pub checks: Vec<Check>,
    /// The failure that ended the test early, if one did.
    pub error: Option<String>,
    /// A test from the newest export: the export's manifest key (`snapshot_id` is then empty and
    /// `snapshot_time` the export's logical time). Absent for a test from a snapshot, and in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    /// When the recovery point tested stands for, for every kind of test: a snapshot's creation time, an
    /// export's logical time, a point-in-time test's restore time; `null` when unknown (a test that failed
    /// before verify). What the verified RPO is measured from. Absent in older reports (read `snapshot_time`).
    #[serde(default)]
    pub recovery_point_time: Option<DateTime<Utc>>,
    /// How the recovery point was chosen: `random-point-in-time seed=<hex> window=<from>/<to>` and the like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_choice: Option<String>,
    /// A point-in-time test's restore time (`snapshot_id` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<DateTime<Utc>>,
    /// A point-in-time test: how far the restored data reaches (its heartbeat's newest commit, or the
    /// restore time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_reaches: Option<Reach>,
}

impl Report {
    /// The recovery point this report proved, when it passed: its `recovery_point_time`, else (an older
    /// report) its `snapshot_time`.
    pub fn verified_point(&self) -> Option<DateTime<Utc>> {
        self.passed
            .then(|| self.recovery_point_time.unwrap_or(self.snapshot_time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::snapshots::testing::snap;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    #[test]
    fn the_newest_available_snapshot_is_chosen_unless_one_is_named() {
        let mut creating = snap("lifeboat-db-3", at(22, 2), true);
        creating.status = "creating".into();
        let mut automated = snap("rds:db-2026-11-21-03-00", at(21, 3), false);
        automated.snapshot_type = "automated".into();
        let all = vec![snap("lifeboat-db-1", at(20, 2), true), automated, creating];
        assert_eq!(choose_snapshot(&all, None).unwrap().id, "rds:db-2026-11-21-03-00");
        assert_eq!(
            choose_snapshot(&all, Some("latest")).unwrap().id,
            "rds:db-2026-11-21-03-00"
        );
        assert_eq!(
            choose_snapshot(&all, Some("lifeboat-db-1")).unwrap().id,
            "lifeboat-db-1"
        );
        assert!(choose_snapshot(&all, Some("lifeboat-db-3"))
            .unwrap_err()
            .contains("creating"));
        assert!(choose_snapshot(&all, Some("nope"))
            .unwrap_err()
            .contains("does not exist"));
        assert!(choose_snapshot(&[], None)
            .unwrap_err()
            .contains("no available snapshot"));
    }

    #[test]
    fn counts_within_tolerance_pass_and_missing_tables_fail() {
        let expected: BTreeMap<String, i64> = [("public.users", 1000), ("public.chats", 0), ("public.messages", 500)]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        let actual: BTreeMap<String, i64> = [("public.users", 1040), ("public.chats", 0), ("public.extra", 3)]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        let checks = compare_counts(&expected, &actual, 5.0);
        let by_name: BTreeMap<_, _> = checks.iter().map(|c| (c.name.as_str(), c.result)).collect();
        assert_eq!(by_name["rows of public.users"], CheckResult::Passed);
        assert_eq!(by_name["rows of public.chats"], CheckResult::Passed);
        assert_eq!(by_name["rows of public.messages"], CheckResult::Failed);
        assert_eq!(checks.len(), 3, "tables outside the manifest are not judged");
        let strict = compare_counts(&expected, &actual, 1.0);
        assert_eq!(strict[2].result, CheckResult::Failed, "{:?}", strict[2]);
    }

    #[test]
    fn an_export_test_has_its_own_instance_per_profile_never_a_snapshot_tests_name() {
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap();
        let full = export_test_identifier("app-prod", "full", t);
        assert!(
            full.starts_with("lifeboat-rx-app-prod-") && full.ends_with("-202611220300"),
            "{full}"
        );
        assert_ne!(full, export_test_identifier("app-prod", "critical", t));
        assert_ne!(full, test_identifier("app-prod", t));
        // A database name that holds a hyphen and a profile never read as another pair.
        assert_ne!(
            export_test_identifier("a-b", "c", t),
            export_test_identifier("a", "b-c", t)
        );
        let long = "a".repeat(63);
        for db in [long.as_str(), "x", "db-with-a-rather-long-name-indeed-yes-it-is-long"] {
            let id = export_test_identifier(db, "full", t);
            assert!(id.len() <= 63 && !id.contains("--") && !id.ends_with('-'), "{id}");
            assert!(crate::rds::naming::validate_db_identifier(&id).is_ok(), "{id}");
        }
        assert_eq!(
            export_checks_record_key("app-prod", "full", t),
            "reports/restore-tests/app-prod/export-full-20261122T030000Z.checks.json"
        );
    }

    #[test]
    fn an_export_test_accepts_only_a_manifest_of_its_database_and_profile() {
        let key = "exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.manifest.json";
        assert!(is_export_of(key, "app-prod", "full"));
        assert!(!is_export_of(key, "app-prod", "critical"));
        assert!(!is_export_of(key, "app", "full"));
        assert!(!is_export_of(
            "exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.dump.zst",
            "app-prod",
            "full"
        ));
        assert!(!is_export_of("lifeboat-app-prod-20261122-0200", "app-prod", "full"));
    }

    #[test]
    fn an_export_tests_instance_fits_the_data_and_its_server_version() {
        const GIB: i64 = 1024 * 1024 * 1024;
        assert_eq!(export_test_storage_gib(0), 20);
        assert_eq!(export_test_storage_gib(-5), 20);
        assert_eq!(export_test_storage_gib(10 * GIB), 20);
        assert_eq!(export_test_storage_gib(15 * GIB + 1), 31);
        assert_eq!(export_test_storage_gib(i64::MAX), 65_536);
        assert_eq!(export_test_engine_version("16.4").as_deref(), Some("16"));
        assert_eq!(
            export_test_engine_version("15.8 (Debian 15.8-1)").as_deref(),
            Some("15")
        );
        assert_eq!(export_test_engine_version("17").as_deref(), Some("17"));
        assert_eq!(export_test_engine_version(""), None);
        assert_eq!(export_test_engine_version("devel"), None);
    }

    #[test]
    fn rto_and_rpo() {
        assert_eq!(rto_rpo(at(22, 3), at(22, 4), at(22, 2)), (3600.0, 3600.0));
    }

    #[test]
    fn restored_resources_are_named_by_rule() {
        assert_eq!(
            test_member_identifier("lifeboat-rt-analytics-202611220300"),
            "lifeboat-ri-analytics-202611220300"
        );
        assert_eq!(test_member(DbKind::Instance, "lifeboat-rt-db-202611220300"), None);
        assert_eq!(
            test_member(DbKind::Cluster, "lifeboat-rt-db-202611220300").as_deref(),
            Some("lifeboat-ri-db-202611220300")
        );
        assert_eq!(console_member_identifier("app-restored"), "app-restored-1");
        assert_eq!(console_instance(DbKind::Instance, "app-restored"), "app-restored");
        assert_eq!(console_instance(DbKind::Cluster, "app-restored"), "app-restored-1");
        let requested = Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 7).unwrap();
        assert_eq!(scratch_database(requested), "lifeboat_verify_20261122030007");
        assert_eq!(other_scratch_database(requested, 2), "lifeboat_verify_20261122030007_2");
        assert_eq!(scratch_check_name(None), "the latest export restores with pg_restore");
        assert_eq!(
            scratch_check_name(Some("critical")),
            "the latest `critical` export restores with pg_restore"
        );
        assert_eq!(
            test_secret_name("lifeboat-rt-db-202611220300"),
            "lifeboat/restore-test/lifeboat-rt-db-202611220300"
        );
        assert_eq!(test_expiry(at(22, 3), 6), at(22, 9));
    }

    fn source() -> SourcePlacement {
        SourcePlacement::from(&InstanceInfo {
            status: "available".into(),
            endpoint: None,
            tags: BTreeMap::new(),
            master_user: "postgres".into(),
            engine: "postgres".into(),
            subnet_group: Some("app-subnets".into()),
            security_groups: vec!["sg-app".into()],
            parameter_group: Some("app-params".into()),
            instance_class: "db.r6g.large".into(),
        })
    }

    #[test]
    fn a_console_restore_is_private_unless_asked_and_a_cluster_lends_its_network() {
        let private = console_placement(&PlacementChoice::default(), Some(&source()), "db.t4g.micro");
        assert!(!private.publicly_accessible);
        let asked = PlacementChoice {
            publicly_accessible: true,
            ..PlacementChoice::default()
        };
        assert!(console_placement(&asked, Some(&source()), "db.t4g.micro").publicly_accessible);
        assert!(!test_placement(None, None, "db.t4g.micro").publicly_accessible);
        let cluster = ClusterInfo {
            status: "available".into(),
            tags: BTreeMap::new(),
            master_user: "postgres".into(),
            subnet_group: Some("analytics-subnets".into()),
            security_groups: vec!["sg-analytics".into()],
        };
        let p = console_placement(
            &PlacementChoice::default(),
            Some(&SourcePlacement::from(&cluster)),
            "db.t4g.micro",
        );
        assert_eq!(p.subnet_group.as_deref(), Some("analytics-subnets"));
        assert_eq!(p.security_groups, ["sg-analytics"]);
        assert_eq!((p.instance_class.as_str(), p.parameter_group), ("db.t4g.micro", None));
    }

    #[test]
    fn a_restore_test_is_isolated_where_it_was_told() {
        let p = test_placement(Some("lifeboat-restore"), Some("sg-1"), "db.t4g.micro");
        assert_eq!(p.subnet_group.as_deref(), Some("lifeboat-restore"));
        assert_eq!(p.security_groups, ["sg-1"]);
        assert_eq!(
            (p.instance_class.as_str(), p.parameter_group, p.isolated),
            ("db.t4g.micro", None, true)
        );
        assert!(test_placement(None, None, "db.t4g.micro").security_groups.is_empty());
    }

    #[test]
    fn a_console_restore_takes_the_request_then_the_source_then_the_default() {
        let like_source = console_placement(&PlacementChoice::default(), Some(&source()), "db.t4g.micro");
        assert_eq!(like_source.subnet_group.as_deref(), Some("app-subnets"));
        assert_eq!(like_source.security_groups, ["sg-app"]);
        assert_eq!(like_source.instance_class, "db.r6g.large");
        assert_eq!(like_source.parameter_group.as_deref(), Some("app-params"));
        assert!(!like_source.isolated);
        let choice = PlacementChoice {
            subnet_group: Some("other".into()),
            security_groups: Some(vec![]),
            instance_class: Some("db.m7g.large".into()),
            parameter_group: Some("p".into()),
            publicly_accessible: false,
        };
        let chosen = console_placement(&choice, Some(&source()), "db.t4g.micro");
        assert_eq!(
            (
                chosen.subnet_group.as_deref(),
                chosen.security_groups.len(),
                chosen.instance_class.as_str()
            ),
            (Some("other"), 0, "db.m7g.large")
        );
        let mut classless = source();
        classless.instance_class = String::new();
        let defaulted = console_placement(&PlacementChoice::default(), Some(&classless), "db.t4g.micro");
        assert_eq!(defaulted.instance_class, "db.t4g.micro");
        let nothing = console_placement(&PlacementChoice::default(), None, "db.t4g.micro");
        assert_eq!(
            (nothing.subnet_group, nothing.instance_class.as_str()),
            (None, "db.t4g.micro")
        );
    }

    #[test]
    fn a_point_in_time_is_latest_or_rfc3339() {
        assert_eq!(point_in_time("latest").unwrap(), None);
        assert_eq!(point_in_time("2026-11-22T03:00:00+01:00").unwrap(), Some(at(22, 2)));
        assert!(point_in_time("yesterday").is_err());
    }

    #[test]
    fn failed_states_fail_available_ends_and_the_rest_waits_until_the_limit() {
        for s in FAILED_STATES {
            assert!(is_failed_state(s));
            assert_eq!(progress(s, at(22, 3), at(22, 3), 90), Progress::Failed);
        }
        assert!(!is_failed_state("creating") && !is_failed_state("available"));
        assert_eq!(progress("available", at(22, 3), at(23, 3), 90), Progress::Available);
        assert_eq!(progress("creating", at(22, 3), at(22, 4), 90), Progress::Restoring);
        assert_eq!(progress("creating", at(22, 3), at(22, 5), 90), Progress::TimedOut);
    }

    #[test]
    fn the_timeout_is_strictly_after_the_limit() {
        let start = at(22, 3);
        assert!(!timed_out(start, start + chrono::Duration::minutes(90), 90));
        assert!(timed_out(start, start + chrono::Duration::seconds(90 * 60 + 1), 90));
        assert!(
            !timed_out(start, start - chrono::Duration::minutes(5), 5),
            "a clock behind the request"
        );
    }

    #[test]
    fn a_console_restore_waits_while_it_has_time() {
        let long = Some(Duration::from_secs(600));
        assert_eq!(console_wait("available", None), ConsoleWait::Ready);
        assert_eq!(console_wait("creating", long), ConsoleWait::Again);
        assert_eq!(console_wait("creating", None), ConsoleWait::Handover);
        assert_eq!(
            console_wait("creating", Some(Duration::from_secs(39))),
            ConsoleWait::Handover
        );
        assert_eq!(console_wait("creating", Some(CONSOLE_WAIT_MARGIN)), ConsoleWait::Again);
        assert_eq!(console_wait("incompatible-network", long), ConsoleWait::Handover);
    }

    #[test]
    fn sql_answers_pass_when_true_or_non_zero() {
        for v in ["t", "1", "42", "-0.5"] {
            assert!(sql_answer_passes(v), "{v}");
        }
        for v in ["f", "0", "0.0", "", "true", "yes"] {
            assert!(!sql_answer_passes(v), "{v}");
        }
    }

    #[test]
    fn the_scratch_restore_needs_exact_counts() {
        let expected: BTreeMap<String, i64> = [("public.users".to_owned(), 10), ("public.chats".to_owned(), 2)].into();
        let exact = scratch_check("scratch", 99, &expected, &expected.clone());
        assert_eq!(exact.result, CheckResult::Passed);
        assert_eq!(
            exact.detail,
            "99 bytes restored; 2 tables with the manifest's exact row counts"
        );
        let mut off = expected.clone();
        off.insert("public.users".into(), 11);
        off.remove("public.chats");
        let bad = scratch_check("scratch", 99, &expected, &off);
        assert_eq!(bad.result, CheckResult::Failed);
        assert_eq!(
            bad.detail,
            "rows of public.chats: table missing (the export has 2 rows); \
             rows of public.users: 11 restored, 10 in the export (tolerance ±0)"
        );
    }

    #[test]
    fn a_test_passes_only_verified_complete_and_clean() {
        let ok = vec![Check::new("connect", true, ""), Check::skipped("rows", "no export")];
        assert!(connected(&ok));
        assert!(test_passed(&ok, true, false));
        assert!(!test_passed(&ok, false, false), "not verified");
        assert!(!test_passed(&ok, true, true), "stopped early");
        assert!(!test_passed(&[], true, false), "no checks");
        let mut failed = ok.clone();
        failed.push(Check::new("rows of public.users", false, ""));
        assert!(!test_passed(&failed, true, false));
        assert!(!connected(&[Check::new("connect", false, "refused")]) && !connected(&[]));
    }

    #[test]
    fn a_run_fails_the_databases_not_marked_passed() {
        let results = vec![
            serde_json::json!({"database": "a", "passed": true}),
            serde_json::json!({"database": "b", "passed": false}),
            serde_json::json!({"database": "c"}),
            serde_json::json!({"passed": "true"}),
            serde_json::json!({"cache": "sessions", "passed": false}),
            serde_json::json!({"cache": "jobs", "passed": true}),
        ];
        assert_eq!(failed_databases(&results), ["b", "c", "?", "sessions"]);
        assert!(failed_databases(&[]).is_empty());
    }

    #[test]
    fn only_a_restore_test_of_the_same_database_is_reused() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        assert_eq!(
            may_reuse(&tags(&[(RESTORE_TEST, "true"), (SOURCE_DB, "app-prod")]), "app-prod"),
            Ok(())
        );
        assert_eq!(
            may_reuse(&tags(&[(RESTORE_TEST, "true"), (SOURCE_DB, "billing")]), "app-prod"),
            Err(Some("billing".into()))
        );
        assert_eq!(may_reuse(&tags(&[(SOURCE_DB, "app-prod")]), "app-prod"), Err(None));
        assert_eq!(may_reuse(&tags(&[(RESTORE_TEST, "true")]), "app-prod"), Err(None));
    }

    #[test]
    fn long_names_that_share_a_head_get_different_restore_test_names() {
        let a = "billing-reporting-warehouse-replica-eu-west-1-primary";
        let b = "billing-reporting-warehouse-replica-eu-west-1-standby";
        let (ia, ib) = (test_identifier(a, at(22, 3)), test_identifier(b, at(22, 3)));
        assert_ne!(ia, ib);
        assert_ne!(test_member_identifier(&ia), test_member_identifier(&ib));
        assert!(ia.len() <= 63 && ib.len() <= 63, "{ia} {ib}");
        assert!(ia.starts_with("lifeboat-rt-billing-reporting-"), "{ia}");
        assert_eq!(
            test_identifier("app-prod", at(22, 3)),
            "lifeboat-rt-app-prod-202611220300",
            "a short name is kept whole"
        );
    }

    proptest! {
        #[test]
        fn distinct_databases_get_distinct_restore_test_names(
            head in "[a-z]([a-z0-9]|-[a-z0-9]){0,45}",
            a in "[a-z0-9]{1,8}",
            b in "[a-z0-9]{1,8}",
            minute in 0i64..10_000_000,
        ) {
            // Names that share a (often long) head, as the fleet's naming conventions make them.
            prop_assume!(a != b);
            let (a, b) = (format!("{head}-{a}"), format!("{head}-{b}"));
            let t = at(1, 0) + chrono::Duration::minutes(minute);
            prop_assert_ne!(test_identifier(&a, t), test_identifier(&b, t));
        }

        #[test]
        fn a_restore_is_never_both_done_and_waiting(status in "[a-z-]{0,24}", minutes in -60i64..1000, limit in 5u32..720) {
            let now = at(22, 3) + chrono::Duration::minutes(minutes);
            let p = progress(&status, at(22, 3), now, limit);
            prop_assert_eq!(p == Progress::Failed, is_failed_state(&status));
            prop_assert_eq!(p == Progress::Available, status == "available");
            if p == Progress::TimedOut {
                prop_assert!(minutes > i64::from(limit));
            }
        }

        #[test]
        fn a_console_restore_never_sleeps_past_the_margin(status in "[a-z-]{0,24}", left in proptest::option::of(0u64..900)) {
            let d = console_wait(&status, left.map(Duration::from_secs));
            if d == ConsoleWait::Again {
                prop_assert!(left.is_some_and(|l| l >= CONSOLE_WAIT_MARGIN.as_secs()));
                prop_assert!(!is_failed_state(&status) && status != "available");
            }
        }

        #[test]
        fn member_names_stay_valid_rds_identifiers(db in "[a-z][a-z0-9-]{0,62}", minute in 0i64..10_000_000) {
            let id = test_member_identifier(&test_identifier(&db, at(1, 0) + chrono::Duration::minutes(minute)));
            prop_assert!(id.len() <= 63 && id.starts_with("lifeboat-ri-"));
            prop_assert!(!id.ends_with('-') && !id.contains("--"));
        }

        #[test]
        fn identifiers_are_valid_rds_identifiers(db in "[a-z][a-z0-9-]{0,62}", minute in 0i64..10_000_000) {
            let id = test_identifier(&db, at(1, 0) + chrono::Duration::minutes(minute));
            prop_assert!(id.len() <= 63);
            prop_assert!(id.starts_with("lifeboat-rt-"));
            prop_assert!(!id.ends_with('-') && !id.contains("--"));
            prop_assert!(id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
    }
}
