//! What one run works with, for databases and caches alike: the [`Job`] (what a scheduled, manual or plan run
//! snapshots, and by which retention) and the [`RetentionEntry`] both kinds of report print. Plain data, shared by
//! the handler, `caches.rs` and `plan.rs` without any of them importing another's internals; and the one read
//! of the content watch's holds that both kinds' retention applies ([`holds_for`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lifeboat::core::tags;
use lifeboat::rds::naming::SnapshotKind;
use lifeboat::rds::retention::{Decision, Gfs};
use lifeboat::rds::snapshot_tags::{snapshot_tags, ManualSnapshot};
use lifeboat::watch::hold::{self, Holds};
use serde::Serialize;

use crate::deps::Deps;

/// One retention decision, as printed in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionEntry {
    pub snapshot: String,
    pub logical_time: DateTime<Utc>,
    pub decision: Decision,
}

/// The plan a snapshot is made under (plan mode only): written on it as tags, and what decides its DR copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlanTag {
    pub(crate) plan: String,
    /// `PlanVersion::label()` of the document version the run followed.
    pub(crate) version: String,
    /// The plan's snapshot rule says `dr_copy: true`.
    pub(crate) dr_copy: bool,
}

/// What a scheduled, manual or plan run snapshots: the kind, the logical time, the retention clock, the
/// retention policy, the manual extras and the plan.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) kind: SnapshotKind,
    /// Names the snapshots and dates their tags (a plan run: the due time).
    pub(crate) at: DateTime<Utc>,
    /// What retention decides by (`lifeboat::rds::retention::clock`): never later than the wall clock.
    pub(crate) clock: DateTime<Utc>,
    /// The GFS policy the resource's snapshots are kept by: the deployment's, or its plan's.
    pub(crate) retention: Gfs,
    pub(crate) manual: Option<ManualSnapshot>,
    pub(crate) plan: Option<PlanTag>,
}

impl Job {
    /// The tags of this job's snapshot of `resource`: Lifeboat's usual set (its `lifeboat:policy` is the
    /// retention above), plus the plan and its version in plan mode.
    pub(crate) fn tags(&self, resource: &str) -> BTreeMap<String, String> {
        let mut t = snapshot_tags(
            resource,
            self.kind,
            self.at,
            &self.retention.to_string(),
            self.manual.as_ref(),
        );
        if let Some(p) = &self.plan {
            t.insert(tags::PLAN.to_owned(), p.plan.clone());
            t.insert(tags::PLAN_VERSION.to_owned(), p.version.clone());
        }
        t
    }

    /// Whether this job's snapshots are copied to the DR region or shared: always without a plan (the
    /// deployment's settings decide, as they always did), else only when the plan's rule says `dr_copy`.
    pub(crate) fn copies(&self) -> bool {
        self.plan.as_ref().is_none_or(|p| p.dr_copy)
    }
}

/// The content watch's holds on a resource's snapshots (`lifeboat::watch::hold`), read only when retention would
/// expire something: an open anomaly keeps what it names, and records that cannot be read keep everything.
pub(crate) async fn holds_for(deps: &Deps, kind: &str, resource: &str, decisions: &[Decision]) -> Holds {
    match &deps.settings.bucket {
        Some(bucket) if decisions.iter().any(|d| d.expires()) => hold::holds_of(&deps.s3, bucket, kind, resource).await,
        _ => Holds::Known(Default::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(plan: Option<PlanTag>) -> Job {
        let at = "2026-12-06T02:00:00Z".parse().unwrap();
        Job {
            kind: SnapshotKind::Schedule,
            at,
            clock: at,
            retention: Gfs::parse("daily=30").unwrap(),
            manual: None,
            plan,
        }
    }

    #[test]
    fn a_plan_job_tags_its_plan_version_and_policy() {
        let t = job(Some(PlanTag {
            plan: "production".into(),
            version: "0123456789ab".into(),
            dr_copy: false,
        }))
        .tags("app-prod");
        assert_eq!(t[tags::PLAN], "production");
        assert_eq!(t[tags::PLAN_VERSION], "0123456789ab");
        assert_eq!(t[tags::POLICY], "daily=30 weekly=0 monthly=0 yearly=0");
        assert_eq!(t[tags::CREATED_AT], "2026-12-06T02:00:00Z");
        let legacy = job(None).tags("app-prod");
        assert!(!legacy.contains_key(tags::PLAN) && !legacy.contains_key(tags::PLAN_VERSION));
    }

    #[test]
    fn only_a_plan_that_says_dr_copy_copies() {
        assert!(job(None).copies());
        let plan = |dr_copy| {
            Some(PlanTag {
                plan: "p".into(),
                version: "v".into(),
                dr_copy,
            })
        };
        assert!(job(plan(true)).copies());
        assert!(!job(plan(false)).copies());
    }
}
