//! What must hold after every run of `make chaos`, checked against the local cloud itself (never against what a
//! function said): each check returns the violations it found, named by invariant, and none is skipped.
//!
//! - [`Invariant::ReportedGood`]: nothing reported good is not: every manifest's object exists, matches its
//!   checksum, and a sample restores.
//! - [`Invariant::Kept`]: nothing that had to be kept was deleted: the newest snapshot of each resource, anything
//!   not Lifeboat's, anything within policy.
//! - [`Invariant::Cleaned`]: no restore-test resource or secret outlives the janitor's next run.
//! - [`Invariant::Signalled`]: every failure produced its metric, its alarm state and a notification.
//! - [`Invariant::Converges`]: a rerun of an event converges to the same state.
//!
//! Each has its module, which says exactly what it judges and by which of the product's rules. The runner's part:
//! `ledger.foreign = foreign(&w).await` once at the start (after which nothing may delete those things);
//! `ledger.janitor_runs.push(t)`, `t` the real time just before each monitor invocation that succeeded; [`signal`]
//! right after pushing each failure (it does what AWS does between a failure and notify); [`check`] after each
//! day, with a time after that day's ticks as `now`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use lifeboat::caches::elasticache::CacheSnapshot;
use lifeboat::rds::snapshots::Snapshot;
use serde_json::Value;

use crate::demo::deployed::World;

mod cleaned;
mod good;
mod kept;
mod signalled;

pub use kept::{foreign, Foreign};
pub use signalled::signal;

/// The invariants, in the order the figures list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    ReportedGood,
    Kept,
    Cleaned,
    Signalled,
    Converges,
}

impl Invariant {
    pub const ALL: [Invariant; 5] = [
        Invariant::ReportedGood,
        Invariant::Kept,
        Invariant::Cleaned,
        Invariant::Signalled,
        Invariant::Converges,
    ];

    /// The invariant's name in the figures.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::ReportedGood => "reported good is good",
            Invariant::Kept => "kept what policy keeps",
            Invariant::Cleaned => "restore-test resources cleaned",
            Invariant::Signalled => "failures signalled",
            Invariant::Converges => "redelivery converges",
        }
    }
}

/// One violation: which invariant, and what was found (names and keys, never data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub what: String,
}

/// A run that failed: the function (the stack's logical id), the tick's time, what it answered, the database or
/// cache it was about where known, and the restore-test execution's ARN when it was a failed restore test.
#[derive(Debug, Clone)]
pub struct RunFailure {
    pub function: String,
    pub at: DateTime<Utc>,
    pub error: String,
    pub resource: Option<String>,
    pub execution: Option<String>,
}

/// What the harness has seen so far, beyond what the cloud shows now: filled by [`check`] and the runner.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every manifest key seen in the bucket, with the time its age is counted from.
    pub manifests: BTreeMap<String, DateTime<Utc>>,
    /// Every Lifeboat snapshot seen (RDS and cache), with its creation time.
    pub snapshots: BTreeMap<String, DateTime<Utc>>,
    /// Every failed run since the start.
    pub failures: Vec<RunFailure>,
    /// The things not Lifeboat's that [`foreign`] made at the start: the runner sets it once.
    pub foreign: Foreign,
    /// When each monitor run (the janitor's) began, by the real clock, which the janitor judges expiry by: the
    /// runner pushes `Utc::now()` taken just before each monitor invocation that succeeded.
    pub janitor_runs: Vec<DateTime<Utc>>,
    /// Every Lifeboat snapshot of a database seen, as last seen (retention is judged over them all).
    pub db_snapshots: BTreeMap<String, Snapshot>,
    /// Every Lifeboat snapshot of a cache seen, as last seen.
    pub cache_snapshots: BTreeMap<String, CacheSnapshot>,
    /// Objects whose checksum was verified, with the ETag they had then (verified again only when it changes).
    pub verified: BTreeMap<String, String>,
    /// Manifests whose copy was restored for real (one export and one RDB copy per check).
    pub sampled: BTreeSet<String>,
    /// Every message notify published to the stack's topic, as the harness's queue received it.
    pub notifications: Vec<String>,
    /// The time the previous check was made for: what was deleted since, was deleted after it.
    pub checked: Option<DateTime<Utc>>,
    /// How many lines of each function's log file were turned into metrics already, as CloudWatch Logs does once
    /// for each line.
    pub shipped: BTreeMap<std::path::PathBuf, usize>,
}

/// The state a rerun must leave as it found it: keys, snapshots and records, comparable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    pub items: BTreeMap<String, String>,
}

/// Checks the first four invariants against the cloud as it is at `now`, recording what it saw in `ledger`.
pub async fn check(w: &World, ledger: &mut Ledger, now: DateTime<Utc>) -> Vec<Violation> {
    let c = Cloud::of(w).await;
    let mut out = Vec::new();
    good::check(w, &c, ledger, now, &mut out).await;
    kept::check(&c, ledger, now, &mut out).await;
    cleaned::check(&c, ledger, &mut out).await;
    signalled::check(w, &c, ledger, &mut out).await;
    ledger.checked = Some(now);
    out
}

/// The harness's clients (straight to moto: they see the truth), the stack's bucket and the plan in force.
pub(crate) struct Cloud {
    pub s3: aws_sdk_s3::Client,
    pub rds: aws_sdk_rds::Client,
    pub ec: aws_sdk_elasticache::Client,
    pub sm: aws_sdk_secretsmanager::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub bucket: String,
    /// The plan document as the functions read it (`LIFEBOAT_PLAN_DOCUMENT`); `Null` when it cannot be read.
    pub plan: Value,
}

impl Cloud {
    async fn of(w: &World) -> Self {
        let s3 = aws_sdk_s3::Client::new(&w.config);
        let env = &w.stack.function("ExportFunction").env;
        let plan = match env
            .get(lifeboat::plans::store::PLAN_DOCUMENT)
            .map(|uri| lifeboat::plans::store::Location::parse(uri))
        {
            Some(Ok(at)) => lifeboat::bucket::layout::get_json(&s3, &at.bucket, &at.key)
                .await
                .unwrap_or(Value::Null),
            _ => Value::Null,
        };
        Self {
            rds: aws_sdk_rds::Client::new(&w.config),
            ec: aws_sdk_elasticache::Client::new(&w.config),
            sm: aws_sdk_secretsmanager::Client::new(&w.config),
            cw: aws_sdk_cloudwatch::Client::new(&w.config),
            bucket: env["LIFEBOAT_BUCKET"].clone(),
            s3,
            plan,
        }
    }

    /// Every plan's value at `path` (`["databases"]`, `["exports", "full", "keep_days"]`, ...).
    fn in_plans(&self, path: &[&str]) -> Vec<&Value> {
        self.plan["plans"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, p)| path.iter().fold(p, |v, k| &v[*k]))
            .filter(|v| !v.is_null())
            .collect()
    }

    /// The names every plan lists under `field` (`databases`, `caches`).
    fn members(&self, field: &str) -> BTreeSet<String> {
        self.in_plans(&[field])
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    }
}

/// Every object under `prefix` of `bucket`, with its size and ETag.
pub(crate) async fn objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<BTreeMap<String, (u64, String)>, String> {
    let listed = lifeboat::bucket::layout::list_objects(s3, bucket, prefix)
        .await
        .map_err(|e| format!("listing {bucket}/{prefix}: {e}"))?;
    Ok(listed
        .iter()
        .filter_map(|o| {
            let size = o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            let etag = o.e_tag().unwrap_or_default().to_owned();
            o.key().map(|k| (k.to_owned(), (size, etag)))
        })
        .collect())
}

fn violation(invariant: Invariant, what: impl Into<String>) -> Violation {
    Violation {
        invariant,
        what: what.into(),
    }
}

/// The state [`converges`] compares: the bucket's keys and ETags, Lifeboat's snapshots and their status, the
/// restore-test resources, each secret's current version and the restore-test executions started.
pub async fn state(w: &World) -> State {
    let c = Cloud::of(w).await;
    let mut items = BTreeMap::new();
    for (key, (_, etag)) in objects(&c.s3, &c.bucket, "").await.unwrap_or_default() {
        items.insert(format!("s3://{}/{key}", c.bucket), etag);
    }
    for db in c.members("databases") {
        let snaps = lifeboat::rds::snapshots::list_for_db(&c.rds, &db, lifeboat::rds::selection::DbKind::Instance)
            .await
            .unwrap_or_default();
        for s in snaps.iter().filter(|s| s.owned()) {
            items.insert(format!("rds snapshot {}", s.id), s.status.clone());
        }
    }
    let caches = lifeboat::caches::elasticache::list_snapshots(&c.ec)
        .await
        .unwrap_or_default();
    for s in caches.iter().filter(|s| s.owned()) {
        items.insert(format!("cache snapshot {}", s.name), s.status.clone());
    }
    items.extend(cleaned::resources(&c).await);
    items.extend(secret_versions(&c.sm).await);
    let (machine, _) = w.stack.state_machine("restore-test");
    let sfn = aws_sdk_sfn::Client::new(&w.config);
    let started = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await
        .map_or(0, |l| l.executions().len());
    items.insert(format!("executions of {machine}"), started.to_string());
    State { items }
}

/// Each secret's AWSCURRENT version id.
async fn secret_versions(sm: &aws_sdk_secretsmanager::Client) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(listed) = sm.list_secrets().max_results(100).send().await else {
        return out;
    };
    for s in listed.secret_list() {
        let current = s
            .secret_versions_to_stages()
            .into_iter()
            .flatten()
            .find(|(_, stages)| stages.iter().any(|st| st == "AWSCURRENT"))
            .map(|(v, _)| v.clone())
            .unwrap_or_default();
        out.push((format!("secret {}", s.name().unwrap_or_default()), current));
    }
    out
}

/// What a rerun of `event` added or changed between `before` and `after`, as violations. What it removed is not
/// judged here: a rerun may finish what the first delivery rightly left (retention counts a new snapshot once it
/// is available, so the first run keeps one more and a rerun deletes it), and every removal is judged by
/// [`Invariant::Kept`] and [`Invariant::Cleaned`] against policy.
pub fn converges(event: &str, before: &State, after: &State) -> Vec<Violation> {
    after
        .items
        .iter()
        .filter(|(k, v)| before.items.get(*k) != Some(v))
        .map(|(k, _)| Violation {
            invariant: Invariant::Converges,
            what: format!("a rerun of {event} added or changed {k}"),
        })
        .collect()
}
