//! The plan document: a team's written backup policy as data, parsed and validated in one place.
//!
//! JSON, one object: `{"format": 1, "plans": {"<name>": {<rules>}}}` (the book's reference page lists every
//! field; `examples/plans/` holds three real policies). JSON and not YAML: the one parser the workspace already
//! trusts, no implicit typing (`no` is not `false`, `010` is not eight), and every error carries a line and column.
//!
//! Validation happens here and only here, before anything is scheduled. An error names the field by its path
//! (`plans.product.exports.critical.schedule`) and, when the JSON itself is wrong, the line and column. A
//! document that fails validation is never used: [`crate::plans::store`] keeps following the newest version that
//! passes.
//!
//! Must never: read AWS or a clock, or decide what is due (see [`crate::plans::due`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::mask::rules::RefreshRule;
use crate::plans::schedule::{Schedule, ScheduleError};
use crate::postgres::export::{validate_profile, Profile};
use crate::rds::naming::validate_db_identifier;
use crate::rds::retention::Gfs;
use crate::watch::thresholds::WatchRule;

/// The one document format this code reads. A later format gets a new number, never a new meaning for an old one.
pub const FORMAT: u32 = 1;
/// A written plan name is a tag value (`lifeboat:plan=<name>`) and part of metric dimensions.
pub const MAX_PLAN_NAME: usize = 64;
/// The freshness a rule implies is its longest gap plus this share of it, at least [`MIN_GRACE_HOURS`]: a
/// daily rule alarms after 26 h 24 min, a quarterly one after 101 days.
pub const GRACE_PERCENT: i64 = 10;
pub const MIN_GRACE_HOURS: i64 = 2;
/// Every schedule's gaps are measured over four years from this day (a leap year included).
const GAP_EPOCH: &str = "2024-01-01T00:00:00Z";

/// A schedule as the document holds it: parsed when read, so a bad one is an error at its own line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cron(pub Schedule);

impl TryFrom<String> for Cron {
    type Error = ScheduleError;
    fn try_from(text: String) -> Result<Self, ScheduleError> {
        Schedule::parse(&text).map(Cron)
    }
}

impl From<Cron> for String {
    fn from(c: Cron) -> String {
        c.0.to_string()
    }
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Always [`FORMAT`].
    pub format: u32,
    /// Free text: whose policy this is, where it is written down.
    #[serde(default)]
    pub description: Option<String>,
    pub plans: BTreeMap<String, Plan>,
}

/// One named plan: its members and its rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    #[serde(default)]
    pub description: Option<String>,
    /// Databases (instance or cluster identifiers) in this plan besides those tagged `lifeboat:plan=<name>`.
    #[serde(default)]
    pub databases: Vec<String>,
    /// Caches (replication group or serverless cache names) in this plan besides those tagged.
    #[serde(default)]
    pub caches: Vec<String>,
    /// Why this plan's resources are deliberately not backed up (dev recreated at will, say). A plan has either
    /// this or at least one rule, so "no backups" is always a written decision, never an omission.
    #[serde(default)]
    pub no_backups: Option<String>,
    #[serde(default)]
    pub snapshots: Option<SnapshotRule>,
    #[serde(default)]
    pub pitr: Option<PitrRule>,
    /// Logical exports by profile name; the name is part of object keys (`exports/<db>/<profile>/`).
    #[serde(default)]
    pub exports: BTreeMap<String, ExportRule>,
    #[serde(default)]
    pub cache_snapshots: Option<CacheSnapshotRule>,
    #[serde(default)]
    pub rdb_copies: Option<RdbCopyRule>,
    #[serde(default)]
    pub restore_tests: Vec<RestoreTestRule>,
    #[serde(default)]
    pub rotation: Option<RotationRule>,
    /// How far a backup's content may move before the content watch calls it a finding (on by default, with
    /// defaults for every field: [`crate::watch::thresholds`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchRule>,
    /// Staging databases refreshed from this plan's exports, masked on the way ([`crate::mask::rules`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refresh: Vec<RefreshRule>,
}

/// How many periods of each size grandfather-father-son retention keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default)]
    pub daily: u32,
    #[serde(default)]
    pub weekly: u32,
    #[serde(default)]
    pub monthly: u32,
    #[serde(default)]
    pub yearly: u32,
}

impl Retention {
    pub fn gfs(self) -> Gfs {
        Gfs {
            daily: self.daily,
            weekly: self.weekly,
            monthly: self.monthly,
            yearly: self.yearly,
        }
    }

    /// The longest a snapshot can be kept, in days: what "kept 30 days" in a written policy is compared with.
    pub fn longest_days(self) -> u32 {
        [self.daily, self.weekly * 7, self.monthly * 31, self.yearly * 366]
            .into_iter()
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRule {
    pub schedule: Cron,
    pub retention: Retention,
    /// Copy each snapshot to the stack's DR region (the deployment's `DrRegion`, `DrKmsKeyArn`).
    #[serde(default)]
    pub dr_copy: bool,
    /// Overrides the freshness the schedule implies; never below its longest gap.
    #[serde(default)]
    pub max_age_hours: Option<u32>,
}

/// Point-in-time recovery is RDS's own (automated backups); the plan states what it must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PitrRule {
    /// The smallest backup retention period (days) the database may have: RDS allows 1 to 35.
    pub min_days: u32,
    /// How far behind "now" the latest restorable time may fall before it alarms.
    #[serde(default)]
    pub max_lag_minutes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRule {
    pub schedule: Cron,
    /// Tables whose data is dumped (`name` or `schema.name`); empty means every table.
    #[serde(default)]
    pub include: Vec<String>,
    /// Tables whose data is left out (their definitions stay).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Days each export's objects are kept.
    pub keep_days: u32,
    /// S3 Object Lock (COMPLIANCE) days for each object; never more than `keep_days`.
    #[serde(default)]
    pub object_lock_days: Option<u32>,
    #[serde(default)]
    pub max_age_hours: Option<u32>,
}

impl ExportRule {
    /// The export profile this rule runs (the tables and the lock), as the export code reads one.
    pub fn profile(&self) -> Profile {
        Profile {
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            object_lock_days: self.object_lock_days,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSnapshotRule {
    pub schedule: Cron,
    pub retention: Retention,
    #[serde(default)]
    pub max_age_hours: Option<u32>,
}

/// Copies of caches' newest snapshots as verified RDB files in the export bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdbCopyRule {
    pub schedule: Cron,
    pub keep_days: u32,
    #[serde(default)]
    pub max_age_hours: Option<u32>,
}

/// Which recovery point a restore test restores.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryPoint {
    /// Each database's newest available Lifeboat snapshot (needs the plan's `snapshots`).
    NewestSnapshot,
    /// Each database's newest complete export of the profile `export`.
    NewestExport,
    /// Each cache's newest available Lifeboat snapshot (needs the plan's `cache_snapshots`).
    NewestCacheSnapshot,
    /// Each database's available snapshot taken in the last `within_days` days, one of them at random (seeded by
    /// the test's name, so a rerun picks the same one); needs the plan's `snapshots`.
    RandomSnapshot,
    /// Each database restored to a random moment of its point-in-time window (the last `within_days` days of it
    /// when given), seeded like `random-snapshot`; needs the plan's `pitr`.
    RandomPointInTime,
    /// Each database restored to its latest restorable time; needs the plan's `pitr`.
    LatestRestorableTime,
}

impl RecoveryPoint {
    /// Whether the test restores a database (every recovery point but a cache's).
    pub fn is_database(&self) -> bool {
        *self != RecoveryPoint::NewestCacheSnapshot
    }

    /// Whether the test restores a database to a point in time rather than from a snapshot or an export.
    pub fn is_point_in_time(&self) -> bool {
        matches!(
            self,
            RecoveryPoint::RandomPointInTime | RecoveryPoint::LatestRestorableTime
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreTestRule {
    pub schedule: Cron,
    pub from: RecoveryPoint,
    /// With `from: newest-export`: the profile whose export is restored.
    #[serde(default)]
    pub export: Option<String>,
    /// With `from: random-snapshot` (required) or `random-point-in-time` (optional): how many days back from the
    /// test's time the random choice may reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_days: Option<u32>,
    #[serde(default)]
    pub max_age_days: Option<u32>,
}

/// The most days a point-in-time window can hold (RDS's longest backup retention).
pub const MAX_PITR_DAYS: u32 = 35;

/// The most days a random snapshot may be chosen from (about ten years, the longest a yearly ladder keeps).
pub const MAX_SNAPSHOT_WINDOW_DAYS: u32 = 3660;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationRule {
    pub every_days: u32,
}

/// Why a document cannot be used. `Invalid` names the field by its path; `Json` also gives line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("{path}: {message} (line {line}, column {column})")]
    Json {
        path: String,
        message: String,
        line: usize,
        column: usize,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl DocumentError {
    fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        DocumentError::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The kinds of rule, as names in records, metrics and `lifeboat plan show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleKind {
    Snapshot,
    Export,
    CacheSnapshot,
    RdbCopy,
    RestoreTest,
    Rotation,
}

/// One rule of a plan, with the identifier records and `lifeboat plan show` use: `snapshots`,
/// `exports.critical`, `cache_snapshots`, `rdb_copies`, `restore_tests.0`, `rotation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef<'a> {
    pub id: String,
    pub kind: RuleKind,
    /// `None` for rotation, which runs a fixed number of days after the last rotation.
    pub schedule: Option<&'a Schedule>,
    /// The freshness the document states (`max_age_hours`, `max_age_days`; rotation's own cadence plus grace).
    stated_max_age: Option<Duration>,
}

impl RuleRef<'_> {
    /// How old the newest result of this rule may be before monitor alarms: as stated, else as the schedule
    /// implies ([`implied_max_age`]). Computed on asking: measuring a schedule's gaps walks four years.
    pub fn max_age(&self) -> Duration {
        match (self.stated_max_age, self.schedule) {
            (Some(d), _) => d,
            (None, Some(s)) => implied_max_age(s),
            (None, None) => Duration::zero(),
        }
    }
}

fn gap_epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(GAP_EPOCH)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// The freshness a schedule implies: its longest gap plus the grace.
pub fn implied_max_age(schedule: &Schedule) -> Duration {
    let gap = schedule.longest_gap(gap_epoch());
    gap + (gap * GRACE_PERCENT as i32 / 100).max(Duration::hours(MIN_GRACE_HOURS))
}

fn hours(h: Option<u32>) -> Option<Duration> {
    h.map(|h| Duration::hours(i64::from(h)))
}

impl Plan {
    /// Every rule of the plan, in a fixed order.
    pub fn rules(&self) -> Vec<RuleRef<'_>> {
        let mut out = Vec::new();
        if let Some(r) = &self.snapshots {
            out.push(RuleRef {
                id: "snapshots".into(),
                kind: RuleKind::Snapshot,
                schedule: Some(&r.schedule.0),
                stated_max_age: hours(r.max_age_hours),
            });
        }
        for (name, r) in &self.exports {
            out.push(RuleRef {
                id: format!("exports.{name}"),
                kind: RuleKind::Export,
                schedule: Some(&r.schedule.0),
                stated_max_age: hours(r.max_age_hours),
            });
        }
        if let Some(r) = &self.cache_snapshots {
            out.push(RuleRef {
                id: "cache_snapshots".into(),
                kind: RuleKind::CacheSnapshot,
                schedule: Some(&r.schedule.0),
                stated_max_age: hours(r.max_age_hours),
            });
        }
        if let Some(r) = &self.rdb_copies {
            out.push(RuleRef {
                id: "rdb_copies".into(),
                kind: RuleKind::RdbCopy,
                schedule: Some(&r.schedule.0),
                stated_max_age: hours(r.max_age_hours),
            });
        }
        for (i, r) in self.restore_tests.iter().enumerate() {
            out.push(RuleRef {
                id: format!("restore_tests.{i}"),
                kind: RuleKind::RestoreTest,
                schedule: Some(&r.schedule.0),
                stated_max_age: r.max_age_days.map(|d| Duration::days(i64::from(d))),
            });
        }
        if let Some(r) = &self.rotation {
            let days = Duration::days(i64::from(r.every_days));
            out.push(RuleRef {
                id: "rotation".into(),
                kind: RuleKind::Rotation,
                schedule: None,
                stated_max_age: Some(days + (days * GRACE_PERCENT as i32 / 100).max(Duration::hours(MIN_GRACE_HOURS))),
            });
        }
        out
    }
}

/// Parses and validates a document. The only way to get a [`Document`] anything acts on.
pub fn parse(text: &[u8]) -> Result<Document, DocumentError> {
    let de = &mut serde_json::Deserializer::from_slice(text);
    let doc: Document = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        DocumentError::Json {
            path: if path == "." { "(document)".into() } else { path },
            // serde_json puts the position at the end of its message; it is reported in its own fields.
            message: strip_position(&inner.to_string()),
            line: inner.line(),
            column: inner.column(),
        }
    })?;
    validate(&doc)?;
    Ok(doc)
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn validate_plan_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PLAN_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "plan name `{name}`: lowercase letters, digits and hyphens, at most {MAX_PLAN_NAME} (it is a tag value)"
        ))
    }
}

fn check_retention(path: &str, r: Retention) -> Result<(), DocumentError> {
    if r == Retention::default() {
        return Err(DocumentError::invalid(
            path,
            "keeps nothing: give at least one of daily, weekly, monthly, yearly",
        ));
    }
    if [r.daily, r.weekly, r.monthly, r.yearly].iter().any(|&n| n > 1000) {
        return Err(DocumentError::invalid(path, "a period count above 1000"));
    }
    Ok(())
}

fn check_max_age(path: &str, schedule: &Schedule, hours: Option<u32>) -> Result<(), DocumentError> {
    let Some(h) = hours else { return Ok(()) };
    let gap = schedule.longest_gap(gap_epoch());
    if Duration::hours(i64::from(h)) < gap {
        return Err(DocumentError::invalid(
            path,
            format!(
                "{h} h is shorter than the schedule's longest gap ({} h): it would alarm between every two runs",
                gap.num_hours()
            ),
        ));
    }
    Ok(())
}

fn check_days(path: &str, days: u32, max: u32) -> Result<(), DocumentError> {
    if days == 0 || days > max {
        return Err(DocumentError::invalid(
            path,
            format!("{days} is not between 1 and {max}"),
        ));
    }
    Ok(())
}

/// `within_days`: required by `random-snapshot`, optional for `random-point-in-time` (at most the longest
/// point-in-time window), refused elsewhere (a newest or latest recovery point has no window to choose in).
fn check_within_days(here: &str, r: &RestoreTestRule) -> Result<(), DocumentError> {
    let path = format!("{here}.within_days");
    match (&r.from, r.within_days) {
        (RecoveryPoint::RandomSnapshot, None) => Err(DocumentError::invalid(
            path,
            "a test from a random snapshot says how many days back it may choose from (1 to 3660)",
        )),
        (RecoveryPoint::RandomSnapshot, Some(d)) => check_days(&path, d, MAX_SNAPSHOT_WINDOW_DAYS),
        (RecoveryPoint::RandomPointInTime, Some(d)) => check_days(&path, d, MAX_PITR_DAYS),
        (RecoveryPoint::RandomPointInTime, None) => Ok(()),
        (_, Some(_)) => Err(DocumentError::invalid(
            path,
            "only a test `from: random-snapshot` or `random-point-in-time` chooses within a window",
        )),
        (_, None) => Ok(()),
    }
}

fn validate(doc: &Document) -> Result<(), DocumentError> {
    if doc.format != FORMAT {
        return Err(DocumentError::invalid(
            "format",
            format!("{} is not a format this version reads (expected {FORMAT})", doc.format),
        ));
    }
    if doc.plans.is_empty() {
        return Err(DocumentError::invalid(
            "plans",
            "no plan: a document names at least one",
        ));
    }
    // Which plan lists each resource, to refuse one listed twice with both names.
    let mut listed: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    // Which plan names each refresh rule: a name is unique in the document (see `check_refresh`).
    let mut refreshes: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, plan) in &doc.plans {
        let at = format!("plans.{name}");
        validate_plan_name(name).map_err(|r| DocumentError::invalid(&at, r))?;
        for (i, r) in plan.refresh.iter().enumerate() {
            if let Some(other) = refreshes.insert(r.name.as_str(), name.as_str()) {
                return Err(DocumentError::invalid(
                    format!("{at}.refresh[{i}].name"),
                    format!(
                        "`{}` is already a refresh of plan `{other}`: a refresh's name is unique in the document \
                         (it names its reports)",
                        r.name
                    ),
                ));
            }
        }
        for (kind, list) in [("databases", &plan.databases), ("caches", &plan.caches)] {
            for (i, id) in list.iter().enumerate() {
                validate_db_identifier(id)
                    .map_err(|r| DocumentError::invalid(format!("{at}.{kind}[{i}]"), format!("`{id}`: {r}")))?;
                if let Some(other) = listed.insert((kind, id.as_str()), name.as_str()) {
                    return Err(DocumentError::invalid(
                        format!("{at}.{kind}[{i}]"),
                        format!("`{id}` is listed in plans `{other}` and `{name}`: a resource follows one plan"),
                    ));
                }
            }
        }
        validate_plan(&at, plan)?;
    }
    Ok(())
}

fn validate_plan(at: &str, plan: &Plan) -> Result<(), DocumentError> {
    let has_rules = !plan.rules().is_empty() || plan.pitr.is_some();
    match (&plan.no_backups, has_rules) {
        (Some(_), true) => {
            return Err(DocumentError::invalid(
                format!("{at}.no_backups"),
                "a plan with `no_backups` has no rules: remove one or the other",
            ))
        }
        (Some(why), false) if why.trim().is_empty() => {
            return Err(DocumentError::invalid(
                format!("{at}.no_backups"),
                "say why these resources are not backed up",
            ))
        }
        (None, false) => {
            return Err(DocumentError::invalid(
                at,
                "has no rule: give at least one, or `no_backups` with the reason its resources are not backed up",
            ))
        }
        _ => {}
    }
    if let Some(w) = &plan.watch {
        w.check(&format!("{at}.watch"))
            .map_err(|(path, reason)| DocumentError::invalid(path, reason))?;
    }
    if let Some(r) = &plan.snapshots {
        check_retention(&format!("{at}.snapshots.retention"), r.retention)?;
        check_max_age(&format!("{at}.snapshots.max_age_hours"), &r.schedule.0, r.max_age_hours)?;
    }
    if let Some(r) = &plan.pitr {
        check_days(&format!("{at}.pitr.min_days"), r.min_days, 35)?;
        if let Some(m) = r.max_lag_minutes {
            check_days(&format!("{at}.pitr.max_lag_minutes"), m, 10080)?;
        }
    }
    for (profile, r) in &plan.exports {
        let here = format!("{at}.exports.{profile}");
        validate_profile(profile, &r.profile()).map_err(|e| DocumentError::invalid(&here, e.to_string()))?;
        check_days(&format!("{here}.keep_days"), r.keep_days, 36500)?;
        if let Some(lock) = r.object_lock_days {
            check_days(&format!("{here}.object_lock_days"), lock, 36500)?;
            if lock > r.keep_days {
                return Err(DocumentError::invalid(
                    format!("{here}.object_lock_days"),
                    format!(
                        "{lock} days of lock is longer than keep_days ({}): the objects could not expire when the policy says",
                        r.keep_days
                    ),
                ));
            }
        }
        check_max_age(&format!("{here}.max_age_hours"), &r.schedule.0, r.max_age_hours)?;
    }
    if let Some(r) = &plan.cache_snapshots {
        check_retention(&format!("{at}.cache_snapshots.retention"), r.retention)?;
        check_max_age(
            &format!("{at}.cache_snapshots.max_age_hours"),
            &r.schedule.0,
            r.max_age_hours,
        )?;
    }
    if let Some(r) = &plan.rdb_copies {
        check_days(&format!("{at}.rdb_copies.keep_days"), r.keep_days, 36500)?;
        check_max_age(
            &format!("{at}.rdb_copies.max_age_hours"),
            &r.schedule.0,
            r.max_age_hours,
        )?;
    }
    for (i, r) in plan.restore_tests.iter().enumerate() {
        let here = format!("{at}.restore_tests[{i}]");
        match (&r.from, &r.export) {
            (RecoveryPoint::NewestSnapshot | RecoveryPoint::NewestCacheSnapshot, Some(_)) => {
                return Err(DocumentError::invalid(
                    format!("{here}.export"),
                    "only a test `from: newest-export` names an export profile",
                ))
            }
            (RecoveryPoint::NewestExport, None) => {
                return Err(DocumentError::invalid(
                    format!("{here}.export"),
                    "a test from the newest export names the profile whose export it restores",
                ))
            }
            (RecoveryPoint::NewestExport, Some(p)) if !plan.exports.contains_key(p) => {
                let known: Vec<&str> = plan.exports.keys().map(String::as_str).collect();
                return Err(DocumentError::invalid(
                    format!("{here}.export"),
                    format!("`{p}` is no export profile of this plan (it has: {})", known.join(", ")),
                ));
            }
            (RecoveryPoint::NewestSnapshot, None) if plan.snapshots.is_none() => {
                return Err(DocumentError::invalid(
                    format!("{here}.from"),
                    "this plan takes no database snapshots (`snapshots`), so there is no newest snapshot to test",
                ))
            }
            (
                RecoveryPoint::RandomSnapshot | RecoveryPoint::RandomPointInTime | RecoveryPoint::LatestRestorableTime,
                Some(_),
            ) => {
                return Err(DocumentError::invalid(
                    format!("{here}.export"),
                    "only a test `from: newest-export` names an export profile",
                ))
            }
            (RecoveryPoint::RandomSnapshot, None) if plan.snapshots.is_none() => {
                return Err(DocumentError::invalid(
                    format!("{here}.from"),
                    "this plan takes no database snapshots (`snapshots`), so there is no snapshot to choose from",
                ))
            }
            (RecoveryPoint::RandomPointInTime | RecoveryPoint::LatestRestorableTime, None) if plan.pitr.is_none() => {
                return Err(DocumentError::invalid(
                    format!("{here}.from"),
                    "this plan states no point-in-time recovery (`pitr`), so there is no restorable window to test",
                ))
            }
            (RecoveryPoint::NewestCacheSnapshot, None) if plan.cache_snapshots.is_none() => {
                return Err(DocumentError::invalid(
                    format!("{here}.from"),
                    "this plan takes no cache snapshots (`cache_snapshots`), so there is no newest one to test",
                ))
            }
            _ => {}
        }
        check_within_days(&here, r)?;
        if let Some(d) = r.max_age_days {
            let gap = r.schedule.0.longest_gap(gap_epoch());
            if Duration::days(i64::from(d)) < gap {
                return Err(DocumentError::invalid(
                    format!("{here}.max_age_days"),
                    format!(
                        "{d} days is shorter than the schedule's longest gap ({} days)",
                        gap.num_days()
                    ),
                ));
            }
        }
    }
    if let Some(r) = &plan.rotation {
        check_days(&format!("{at}.rotation.every_days"), r.every_days, 365)?;
    }
    for (i, r) in plan.refresh.iter().enumerate() {
        check_refresh(&format!("{at}.refresh[{i}]"), plan, r)?;
    }
    Ok(())
}

/// A refresh rule's name: it names the console action, the report keys (`refresh/<name>/`) and metrics.
pub const MAX_REFRESH_NAME: usize = 40;
/// What a refresh appends to `into.database` to name the new database it restores into: `_yyyymmddhhmmss`.
pub const REFRESH_SUFFIX_BYTES: usize = "_yyyymmddhhmmss".len();
/// The longest `into.database`: with the suffix, within PostgreSQL's 63 bytes (NAMEDATALEN - 1), which would
/// otherwise truncate the new database's name into another.
pub const MAX_REFRESH_DATABASE: usize = 63 - REFRESH_SUFFIX_BYTES;

/// A staging refresh rule, each refusal by the field's path. Its name is unique in the whole document, not only
/// in its plan: the report keys and the console action name a refresh by its name alone.
fn check_refresh(here: &str, plan: &Plan, r: &RefreshRule) -> Result<(), DocumentError> {
    let name_ok = !r.name.is_empty()
        && r.name.len() <= MAX_REFRESH_NAME
        && r.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !r.name.starts_with('-');
    if !name_ok {
        return Err(DocumentError::invalid(
            format!("{here}.name"),
            format!(
                "`{}`: lowercase letters, digits and hyphens, at most {MAX_REFRESH_NAME} (it names the report keys)",
                r.name
            ),
        ));
    }
    validate_db_identifier(&r.from)
        .map_err(|reason| DocumentError::invalid(format!("{here}.from"), format!("`{}`: {reason}", r.from)))?;
    if !plan.exports.contains_key(&r.export) {
        let known: Vec<&str> = plan.exports.keys().map(String::as_str).collect();
        return Err(DocumentError::invalid(
            format!("{here}.export"),
            format!(
                "`{}` is no export profile of this plan (it has: {}): a refresh restores this plan's exports",
                r.export,
                known.join(", ")
            ),
        ));
    }
    if let Some(text) = &r.schedule {
        Schedule::parse(text).map_err(|e| DocumentError::invalid(format!("{here}.schedule"), e.to_string()))?;
    }
    validate_db_identifier(&r.into.instance).map_err(|reason| {
        DocumentError::invalid(
            format!("{here}.into.instance"),
            format!("`{}`: {reason}", r.into.instance),
        )
    })?;
    if r.into.instance == r.from {
        return Err(DocumentError::invalid(
            format!("{here}.into.instance"),
            format!(
                "`{}` is the source: a refresh goes onto a staging server, never the production one",
                r.from
            ),
        ));
    }
    check_refresh_database(&r.into.database)
        .map_err(|reason| DocumentError::invalid(format!("{here}.into.database"), reason))?;
    check_masking(&format!("{here}.masking"), &r.masking)
}

/// `into.database`: an unquoted PostgreSQL identifier (lowercase letters, digits, underscores, not starting
/// with a digit), so it reads the same in every tool without quoting, short enough for the new database's
/// suffix, and never a database every server has.
pub fn check_refresh_database(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(format!(
            "`{name}`: lowercase letters, digits and underscores, not starting with a digit (a PostgreSQL name \
             that needs no quoting)"
        ));
    }
    if name.len() > MAX_REFRESH_DATABASE {
        return Err(format!(
            "`{name}` is longer than {MAX_REFRESH_DATABASE} bytes: the new database is named \
             `{name}_yyyymmddhhmmss`, and PostgreSQL truncates names past 63 bytes"
        ));
    }
    if ["postgres", "template0", "template1", "rdsadmin"].contains(&name) {
        return Err(format!("`{name}` is a template or maintenance database"));
    }
    Ok(())
}

/// `schema.table` as an export's manifest labels a table (a part holding a dot or a quote in double quotes):
/// the parts, when `label` is written exactly that way, so that a masking key always meets the catalogue's.
pub fn parse_table_label(label: &str) -> Option<(String, String)> {
    fn part(text: &str) -> Option<(String, &str)> {
        if let Some(rest) = text.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = rest.char_indices();
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if rest[i + 1..].starts_with('"') {
                        out.push('"');
                        chars.next();
                    } else {
                        return Some((out, &rest[i + 1..]));
                    }
                } else {
                    out.push(c);
                }
            }
            None
        } else {
            let end = text.find('.').unwrap_or(text.len());
            Some((text[..end].to_owned(), &text[end..]))
        }
    }
    let (schema, rest) = part(label)?;
    let (name, rest) = part(rest.strip_prefix('.')?)?;
    let canonical = !schema.is_empty()
        && !name.is_empty()
        && rest.is_empty()
        && crate::bucket::manifest::label(&schema, &name) == label;
    canonical.then_some((schema, name))
}

fn check_masking(at: &str, m: &crate::mask::rules::Masking) -> Result<(), DocumentError> {
    use crate::mask::rules::ColumnRule;
    let table_error = |path: String, table: &str| {
        DocumentError::invalid(
            path,
            format!(
                "`{table}`: a table is named `schema.table` as the export's manifest names it (a part holding a \
                 dot or a quote in double quotes: `public.\"my.table\"`)"
            ),
        )
    };
    for (table, columns) in &m.tables {
        let path = format!("{at}.tables.{table}");
        if parse_table_label(table).is_none() {
            return Err(table_error(path, table));
        }
        if columns.is_empty() {
            return Err(DocumentError::invalid(
                path,
                "no column: give each masked column its rule",
            ));
        }
        for (column, rule) in columns {
            if column.is_empty() {
                return Err(DocumentError::invalid(path, "a column with an empty name"));
            }
            if let ColumnRule::Sql(expression) = rule {
                if expression.trim().is_empty() {
                    return Err(DocumentError::invalid(
                        format!("{path}.{column}"),
                        "an empty `sql` expression: write the expression, or use a `constant`",
                    ));
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (i, table) in m.strict.iter().enumerate() {
        let path = format!("{at}.strict[{i}]");
        if parse_table_label(table).is_none() {
            return Err(table_error(path, table));
        }
        if !seen.insert(table) {
            return Err(DocumentError::invalid(path, format!("`{table}` is listed twice")));
        }
        if !m.tables.contains_key(table) {
            return Err(DocumentError::invalid(
                path,
                format!("`{table}` is strict but has no rules in `tables`: every column of it needs one"),
            ));
        }
    }
    Ok(())
}

impl Document {
    /// The plans that list `id` explicitly as a database (`caches == false`) or a cache.
    pub fn listing(&self, id: &str, cache: bool) -> Option<&str> {
        self.plans
            .iter()
            .find(|(_, p)| if cache { &p.caches } else { &p.databases }.iter().any(|d| d == id))
            .map(|(n, _)| n.as_str())
    }

    /// Every explicitly listed resource, to report those that do not exist.
    pub fn listed(&self) -> BTreeSet<(&str, &str)> {
        self.plans
            .iter()
            .flat_map(|(n, p)| {
                p.databases
                    .iter()
                    .map(move |d| (n.as_str(), d.as_str()))
                    .chain(p.caches.iter().map(move |c| (n.as_str(), c.as_str())))
            })
            .collect()
    }
}

/// Every field a document may have, as paths with `<name>` for a plan, `<profile>` for an export profile and
/// `[]` for a list item (`plans.<name>.restore_tests[].schedule`): what the book's reference page must list.
/// Read from what serialising a document writes, so a field added to a type is listed without anyone's help.
pub fn field_paths() -> BTreeSet<String> {
    const ONE_OF_EACH: &str = r#"{"format": 1, "plans": {"p": {
        "snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 1}},
        "exports": {"x": {"schedule": "0 2 * * *", "keep_days": 1}},
        "pitr": {"min_days": 1},
        "cache_snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 1}},
        "rdb_copies": {"schedule": "0 2 * * *", "keep_days": 1},
        "restore_tests": [{"schedule": "0 2 * * *", "from": "newest-snapshot"},
                          {"schedule": "0 2 * * *", "from": "random-snapshot", "within_days": 7}],
        "rotation": {"every_days": 1},
        "refresh": [{"name": "r", "from": "a", "export": "x", "into": {"instance": "b", "database": "d"},
                     "schedule": "0 4 * * *", "swap": true,
                     "masking": {"strict": ["public.t"], "tables": {"public.t": {"c": "keep"}}}}],
        "watch": {"enabled": true, "rows_drop_percent": 20, "min_rows": 1000, "size_drop_percent": 30,
                  "size_growth_percent": 100, "history": 7, "keys_drop_percent": 20,
                  "tables": {"public.t": {"rows_drop_percent": 1, "min_rows": 1}},
                  "databases": {"d": {"rows_drop_percent": 1}}}}}}"#;
    let mut out = BTreeSet::new();
    if let Ok(doc) = parse(ONE_OF_EACH.as_bytes()) {
        if let Ok(value) = serde_json::to_value(doc) {
            walk(&value, "", &mut out);
        }
    }
    out
}

fn walk(value: &serde_json::Value, at: &str, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                let key = match at {
                    "plans" => "<name>",
                    _ if at.ends_with(".exports") => "<profile>",
                    _ if at.ends_with(".watch.tables") => "<table>",
                    _ if at.ends_with(".watch.databases") => "<id>",
                    _ if at.ends_with(".masking.tables") => "<table>",
                    _ if at.ends_with(".masking.tables.<table>") => "<column>",
                    _ => key.as_str(),
                };
                let path = if at.is_empty() {
                    key.to_owned()
                } else {
                    format!("{at}.{key}")
                };
                out.insert(path.clone());
                walk(inner, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                walk(item, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_reach_every_level() {
        let paths = field_paths();
        for p in [
            "format",
            "plans.<name>.snapshots.retention.yearly",
            "plans.<name>.exports.<profile>.object_lock_days",
            "plans.<name>.restore_tests[].export",
            "plans.<name>.rotation.every_days",
            "plans.<name>.pitr.max_lag_minutes",
            "plans.<name>.cache_snapshots.retention.daily",
            "plans.<name>.rdb_copies.keep_days",
            "plans.<name>.no_backups",
        ] {
            assert!(paths.contains(p), "{p} missing from {paths:?}");
        }
    }

    fn err(text: &str) -> String {
        parse(text.as_bytes()).unwrap_err().to_string()
    }

    const MINIMAL: &str =
        r#"{"format": 1, "plans": {"prod": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 30}}}}}"#;

    #[test]
    fn restore_tests_choose_what_they_prove() {
        let doc = parse(
            br#"{"format": 1, "plans": {"p": {
                "snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}},
                "pitr": {"min_days": 7},
                "restore_tests": [
                    {"schedule": "0 3 * * *", "from": "random-snapshot", "within_days": 7},
                    {"schedule": "0 4 * * *", "from": "random-point-in-time"},
                    {"schedule": "0 5 * * *", "from": "random-point-in-time", "within_days": 35},
                    {"schedule": "0 6 * * *", "from": "latest-restorable-time"}]}}}"#,
        )
        .unwrap();
        let tests = &doc.plans["p"].restore_tests;
        assert_eq!(tests[0].from, RecoveryPoint::RandomSnapshot);
        assert_eq!(tests[0].within_days, Some(7));
        assert_eq!(
            (tests[1].from.clone(), tests[1].within_days),
            (RecoveryPoint::RandomPointInTime, None)
        );
        assert!(tests[1].from.is_point_in_time() && tests[3].from.is_point_in_time());
        assert!(!tests[0].from.is_point_in_time() && tests[0].from.is_database());
        assert!(!RecoveryPoint::NewestCacheSnapshot.is_database());
        assert_eq!(tests[3].from, RecoveryPoint::LatestRestorableTime);
        assert!(field_paths().contains("plans.<name>.restore_tests[].within_days"));
    }

    #[test]
    fn a_plans_watch_is_read_resolved_and_checked_by_path() {
        let doc = parse(
            br#"{"format": 1, "plans": {"prod": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}},
                "watch": {"size_growth_percent": 10, "tables": {"public.sessions": {"rows_drop_percent": "ignore"}},
                          "databases": {"billing": {"rows_drop_percent": 5}}}}}}"#,
        )
        .unwrap();
        let watch = doc.plans["prod"].watch.as_ref().unwrap();
        let t = watch.thresholds("billing").unwrap();
        assert_eq!(t.size_growth_percent, crate::watch::thresholds::Limit::Percent(10));
        assert_eq!(t.table("public.users").0, crate::watch::thresholds::Limit::Percent(5));
        assert_eq!(t.table("public.sessions").0, crate::watch::thresholds::Limit::Ignore);
        let err = parse(
            br#"{"format": 1, "plans": {"prod": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}},
                "watch": {"databases": {"billing": {"history": 0}}}}}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("plans.prod.watch.databases.billing.history: 0"),
            "{err}"
        );
        let err = parse(
            br#"{"format": 1, "plans": {"prod": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}},
                "watch": {"rows_drop": 5}}}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("plans.prod.watch.rows_drop: unknown field `rows_drop`"),
            "{err}"
        );
        assert!(field_paths().contains("plans.<name>.watch.tables.<table>.rows_drop_percent"));
    }

    #[test]
    fn a_minimal_document_is_one_daily_rule() {
        let doc = parse(MINIMAL.as_bytes()).unwrap();
        let rules = doc.plans["prod"].rules();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].id, "snapshots");
        // 24 h + max(2 h, 2.4 h).
        assert_eq!(rules[0].max_age(), Duration::hours(24) + Duration::minutes(144));
    }

    #[test]
    fn json_errors_name_the_field_path_line_and_column() {
        let text = "{\"format\": 1,\n \"plans\": {\"prod\": {\"snapshots\": {\n   \"schedule\": \"0 24 * * *\", \"retention\": {\"daily\": 30}}}}}";
        let e = parse(text.as_bytes()).unwrap_err();
        let DocumentError::Json {
            path, message, line, ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(path, "plans.prod.snapshots.schedule");
        assert!(message.contains("hour field: `24` is out of range"), "{message}");
        assert_eq!(*line, 3);

        let e = err(r#"{"format": 1, "plans": {"prod": {"snapshot": {}}}}"#);
        assert!(e.starts_with("plans.prod.snapshot: unknown field `snapshot`"), "{e}");
        let e = err(
            r#"{"format": 1, "plans": {"prod": {"exports": {"full": {"schedule": "0 2 * * *", "keep_days": "30"}}}}}"#,
        );
        assert!(e.starts_with("plans.prod.exports.full.keep_days: invalid type"), "{e}");
        let e = err(
            r#"{"format": 1, "plans": {"prod": {"restore_tests": [{"schedule": "0 2 * * *", "from": "latest"}]}}}"#,
        );
        assert!(
            e.contains("plans.prod.restore_tests[0].from: unknown variant `latest`"),
            "{e}"
        );
        assert!(err("{\"format\": 1,").contains("(line 1, column 13)"));
    }

    #[test]
    fn invalid_documents_name_the_field_and_the_reason() {
        let cases = [
            (
                r#"{"format": 2, "plans": {}}"#,
                "format: 2 is not a format this version reads",
            ),
            (r#"{"format": 1, "plans": {}}"#, "plans: no plan"),
            (
                r#"{"format": 1, "plans": {"Prod": {"no_backups": "x"}}}"#,
                "plans.Prod: plan name `Prod`",
            ),
            (r#"{"format": 1, "plans": {"dev": {}}}"#, "plans.dev: has no rule"),
            (
                r#"{"format": 1, "plans": {"dev": {"no_backups": " "}}}"#,
                "plans.dev.no_backups: say why",
            ),
            (
                r#"{"format": 1, "plans": {"dev": {"no_backups": "seeded", "rotation": {"every_days": 90}}}}"#,
                "plans.dev.no_backups: a plan with `no_backups` has no rules",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"databases": ["db1"], "no_backups": "x"}, "b": {"databases": ["db1"], "no_backups": "y"}}}"#,
                "plans.b.databases[0]: `db1` is listed in plans `a` and `b`",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"databases": ["bad_name"], "no_backups": "x"}}}"#,
                "plans.a.databases[0]: `bad_name`",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"snapshots": {"schedule": "0 2 * * *", "retention": {}}}}}"#,
                "plans.a.snapshots.retention: keeps nothing",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}, "max_age_hours": 12}}}}"#,
                "plans.a.snapshots.max_age_hours: 12 h is shorter than the schedule's longest gap (24 h)",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"exports": {"full": {"schedule": "0 2 * * *", "keep_days": 7, "object_lock_days": 30}}}}}"#,
                "plans.a.exports.full.object_lock_days: 30 days of lock is longer than keep_days (7)",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"exports": {"rdb": {"schedule": "0 2 * * *", "keep_days": 7}}}}}"#,
                "plans.a.exports.rdb: the profile name `rdb` is reserved",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"exports": {"x": {"schedule": "0 2 * * *", "keep_days": 7, "include": ["a"], "exclude": ["b"]}}}}}"#,
                "plans.a.exports.x: a profile has either `include` or `exclude`",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"exports": {"x": {"schedule": "0 2 * * *", "keep_days": 0}}}}}"#,
                "plans.a.exports.x.keep_days: 0 is not between 1 and 36500",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"exports": {"full": {"schedule": "0 2 * * *", "keep_days": 7}}, "restore_tests": [{"schedule": "0 3 * * *", "from": "newest-export", "export": "critical"}]}}}"#,
                "plans.a.restore_tests[0].export: `critical` is no export profile of this plan (it has: full)",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}}, "restore_tests": [{"schedule": "0 3 * * *", "from": "random-snapshot"}]}}}"#,
                "plans.a.restore_tests[0].within_days: a test from a random snapshot says how many days back",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}}, "restore_tests": [{"schedule": "0 3 * * *", "from": "random-snapshot", "within_days": 0}]}}}"#,
                "plans.a.restore_tests[0].within_days: 0 is not between 1 and 3660",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"pitr": {"min_days": 7}, "restore_tests": [{"schedule": "0 3 * * *", "from": "random-point-in-time", "within_days": 36}]}}}"#,
                "plans.a.restore_tests[0].within_days: 36 is not between 1 and 35",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"pitr": {"min_days": 7}, "restore_tests": [{"schedule": "0 3 * * *", "from": "latest-restorable-time", "within_days": 3}]}}}"#,
                "plans.a.restore_tests[0].within_days: only a test `from: random-snapshot` or `random-point-in-time`",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}}, "restore_tests": [{"schedule": "0 3 * * *", "from": "random-point-in-time"}]}}}"#,
                "plans.a.restore_tests[0].from: this plan states no point-in-time recovery (`pitr`)",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"pitr": {"min_days": 7}, "restore_tests": [{"schedule": "0 3 * * *", "from": "random-snapshot", "within_days": 7}]}}}"#,
                "plans.a.restore_tests[0].from: this plan takes no database snapshots (`snapshots`), so there is no snapshot to choose from",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"pitr": {"min_days": 7}, "restore_tests": [{"schedule": "0 3 * * *", "from": "latest-restorable-time", "export": "full"}]}}}"#,
                "plans.a.restore_tests[0].export: only a test `from: newest-export` names an export profile",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"restore_tests": [{"schedule": "0 3 * * *", "from": "newest-snapshot"}]}}}"#,
                "plans.a.restore_tests[0].from: this plan takes no database snapshots",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}}, "restore_tests": [{"schedule": "0 3 * * *", "from": "newest-cache-snapshot"}]}}}"#,
                "plans.a.restore_tests[0].from: this plan takes no cache snapshots",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"pitr": {"min_days": 40}}}}"#,
                "plans.a.pitr.min_days: 40 is not between 1 and 35",
            ),
            (
                r#"{"format": 1, "plans": {"a": {"rotation": {"every_days": 0}}}}"#,
                "plans.a.rotation.every_days: 0 is not between 1 and 365",
            ),
        ];
        for (text, expected) in cases {
            let e = err(text);
            assert!(e.starts_with(expected), "{text}\n  got: {e}\n  expected: {expected}");
        }
    }

    /// A plan with one export profile and the refresh rule `rule` (JSON of one `refresh` item).
    fn with_refresh(rule: &str) -> String {
        format!(
            r#"{{"format": 1, "plans": {{"prod": {{"exports": {{"full": {{"schedule": "0 2 * * *", "keep_days": 7}}}},
                "refresh": [{rule}]}}}}}}"#
        )
    }

    const GOOD_REFRESH: &str = r#"{"name": "staging", "from": "app-prod", "export": "full",
        "into": {"instance": "staging-db", "database": "app"}, "schedule": "0 4 * * MON-FRI", "swap": true,
        "masking": {"strict": ["public.users"], "tables": {"public.users": {"id": "keep", "email": "fake:email",
            "pw": {"constant": ""}, "born": {"sql": "date_trunc('year', born)"}}, "public.\"my.t\"": {"x": "hash"}}}}"#;

    #[test]
    fn a_refresh_rule_is_read_with_its_masking() {
        let doc = parse(with_refresh(GOOD_REFRESH).as_bytes()).unwrap();
        let r = &doc.plans["prod"].refresh[0];
        assert_eq!(r.name, "staging");
        assert_eq!(r.into.database, "app");
        assert!(r.swap);
        assert_eq!(r.masking.tables.len(), 2);
        assert_eq!(r.masking.tables["public.users"].len(), 4);
        let paths = field_paths();
        for p in [
            "plans.<name>.refresh[].name",
            "plans.<name>.refresh[].into.database",
            "plans.<name>.refresh[].masking.strict",
            "plans.<name>.refresh[].masking.tables.<table>.<column>",
        ] {
            assert!(paths.contains(p), "{p} missing from {paths:?}");
        }
    }

    #[test]
    fn refresh_rules_are_refused_by_the_field_that_is_wrong() {
        let good: serde_json::Value = serde_json::from_str(GOOD_REFRESH).unwrap();
        let with = |pointer: &str, value: serde_json::Value| {
            let mut rule = good.clone();
            *rule.pointer_mut(pointer).unwrap() = value;
            err(&with_refresh(&rule.to_string()))
        };
        use serde_json::json;
        let at = "plans.prod.refresh[0]";
        let cases = [
            (
                with("/name", json!("Staging")),
                format!("{at}.name: `Staging`: lowercase letters"),
            ),
            (with("/name", json!("")), format!("{at}.name: ``: lowercase")),
            (
                with("/name", json!("a".repeat(41))),
                format!("{at}.name: `{}`", "a".repeat(41)),
            ),
            (
                with("/from", json!("app_prod")),
                format!("{at}.from: `app_prod`: an RDS identifier"),
            ),
            (
                with("/export", json!("critical")),
                format!("{at}.export: `critical` is no export profile of this plan (it has: full)"),
            ),
            (with("/schedule", json!("0 25 * * *")), format!("{at}.schedule: ")),
            (with("/schedule", json!("7 4 * * *")), format!("{at}.schedule: ")),
            (
                with("/into/instance", json!("app-prod")),
                format!("{at}.into.instance: `app-prod` is the source"),
            ),
            (
                with("/into/instance", json!("-x")),
                format!("{at}.into.instance: `-x`: an RDS identifier"),
            ),
            (
                with("/into/database", json!("App")),
                format!("{at}.into.database: `App`: lowercase letters, digits and underscores"),
            ),
            (
                with("/into/database", json!("1app")),
                format!("{at}.into.database: `1app`"),
            ),
            (
                with("/into/database", json!("a-b")),
                format!("{at}.into.database: `a-b`"),
            ),
            (with("/into/database", json!("")), format!("{at}.into.database: ``")),
            (
                with("/into/database", json!("a".repeat(49))),
                format!("{at}.into.database: `{}` is longer than 48 bytes", "a".repeat(49)),
            ),
            (
                with("/into/database", json!("postgres")),
                format!("{at}.into.database: `postgres` is a template or maintenance database"),
            ),
            (
                with("/masking/tables", json!({"users": {"a": "keep"}})),
                format!("{at}.masking.tables.users: `users`: a table is named `schema.table`"),
            ),
            (
                with("/masking/tables", json!({"public.my.t": {"a": "keep"}})),
                format!("{at}.masking.tables.public.my.t: `public.my.t`"),
            ),
            (
                with("/masking/tables", json!({"public.": {"a": "keep"}})),
                format!("{at}.masking.tables.public.: `public.`"),
            ),
            (
                with("/masking/tables", json!({"public.t": {}})),
                format!("{at}.masking.tables.public.t: no column"),
            ),
            (
                with("/masking/tables", json!({"public.t": {"": "keep"}})),
                format!("{at}.masking.tables.public.t: a column with an empty name"),
            ),
            (
                with("/masking/tables", json!({"public.t": {"c": {"sql": "  "}}})),
                format!("{at}.masking.tables.public.t.c: an empty `sql` expression"),
            ),
            (
                with("/masking/strict", json!(["users"])),
                format!("{at}.masking.strict[0]: `users`: a table is named"),
            ),
            (
                with("/masking/strict", json!(["public.users", "public.users"])),
                format!("{at}.masking.strict[1]: `public.users` is listed twice"),
            ),
            (
                with("/masking/strict", json!(["public.other"])),
                format!("{at}.masking.strict[0]: `public.other` is strict but has no rules"),
            ),
        ];
        for (got, expected) in cases {
            assert!(got.starts_with(&expected), "got: {got}\n  expected: {expected}");
        }
        // A name is unique in the whole document, across plans as within one.
        let twice = format!(
            r#"{{"format": 1, "plans": {{"prod": {{"exports": {{"full": {{"schedule": "0 2 * * *", "keep_days": 7}}}},
                "refresh": [{GOOD_REFRESH}, {GOOD_REFRESH}]}}}}}}"#
        );
        assert!(err(&twice).starts_with("plans.prod.refresh[1].name: `staging` is already a refresh of plan `prod`"));
        let across = format!(
            r#"{{"format": 1, "plans": {{"a": {{"exports": {{"full": {{"schedule": "0 2 * * *", "keep_days": 7}}}},
                "refresh": [{GOOD_REFRESH}]}}, "b": {{"exports": {{"full": {{"schedule": "0 2 * * *", "keep_days": 7}}}},
                "refresh": [{GOOD_REFRESH}]}}}}}}"#
        );
        assert!(err(&across).starts_with("plans.b.refresh[0].name: `staging` is already a refresh of plan `a`"));
        // An unknown rule or field is the parser's error, by path.
        let e = with("/masking/tables", json!({"public.t": {"c": "scramble"}}));
        assert!(e.contains("unknown masking rule"), "{e}");
        let e = with("/swap", json!("yes"));
        assert!(e.starts_with(&format!("{at}.swap: invalid type")), "{e}");
    }

    #[test]
    fn table_labels_are_read_only_as_the_manifest_writes_them() {
        let p = |l: &str| parse_table_label(l);
        assert_eq!(p("public.users"), Some(("public".into(), "users".into())));
        assert_eq!(p("public.\"my.t\""), Some(("public".into(), "my.t".into())));
        assert_eq!(p("\"a.b\".\"x\"\"y\""), Some(("a.b".into(), "x\"y".into())));
        for bad in [
            "users",
            "public.",
            ".users",
            "a.b.c",
            "public.\"users\"",
            "\"a.b.c",
            "public.\"a\"b",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
        assert_eq!(MAX_REFRESH_DATABASE + REFRESH_SUFFIX_BYTES, 63);
        assert!(check_refresh_database(&"a".repeat(48)).is_ok());
    }

    #[test]
    fn rules_carry_ids_and_the_freshness_they_imply() {
        let doc = parse(
            br#"{"format": 1, "plans": {"p": {
                "snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 14}, "max_age_hours": 30},
                "exports": {"critical": {"schedule": "0 */6 * * *", "keep_days": 7, "include": ["users"]},
                            "embeddings": {"schedule": "0 1 * * SUN", "keep_days": 28, "include": ["context_chunks"]}},
                "restore_tests": [{"schedule": "0 5 1 1,4,7,10 *", "from": "newest-snapshot"}],
                "rotation": {"every_days": 90}}}}"#,
        )
        .unwrap();
        let rules: Vec<(String, i64)> = doc.plans["p"]
            .rules()
            .iter()
            .map(|r| (r.id.clone(), r.max_age().num_minutes()))
            .collect();
        assert_eq!(
            rules,
            vec![
                ("snapshots".into(), 30 * 60),
                ("exports.critical".into(), 8 * 60),
                ("exports.embeddings".into(), (168 + 16) * 60 + 48),
                ("restore_tests.0".into(), (92 * 24 + 220) * 60 + 48),
                ("rotation".into(), (90 * 24 + 216) * 60),
            ]
        );
    }

    #[test]
    fn retention_in_days_is_its_longest_tier() {
        let r = Retention {
            daily: 7,
            weekly: 4,
            monthly: 0,
            yearly: 0,
        };
        assert_eq!(r.longest_days(), 28);
        assert_eq!(
            Retention {
                daily: 30,
                ..Retention::default()
            }
            .longest_days(),
            30
        );
    }
}
