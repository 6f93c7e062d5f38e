//! What one run works with, for databases and caches alike: the [`Job`] (what a scheduled or manual run
//! snapshots) and the [`RetentionEntry`] both kinds of report print. Plain data, shared by the handler and
//! `caches.rs` without either importing the other's internals.

use chrono::{DateTime, Utc};
use lifeboat::rds::naming::SnapshotKind;
use lifeboat::rds::retention::Decision;
use lifeboat::rds::snapshot_tags::ManualSnapshot;
use serde::Serialize;

/// One retention decision, as printed in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionEntry {
    pub snapshot: String,
    pub logical_time: DateTime<Utc>,
    pub decision: Decision,
}

/// What a scheduled or manual run snapshots: the kind, the logical time, the retention clock, the policy and the
/// manual extras.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) kind: SnapshotKind,
    /// Names the snapshots and dates their tags.
    pub(crate) at: DateTime<Utc>,
    /// What retention decides by (`lifeboat::rds::retention::clock`): never later than the wall clock.
    pub(crate) clock: DateTime<Utc>,
    pub(crate) policy: String,
    pub(crate) manual: Option<ManualSnapshot>,
}
