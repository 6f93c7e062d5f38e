//! The snapshot precondition ladder: for one database in one run, whether to take a snapshot, what the run's
//! outcome for it is, and whether retention (deleting, copying, sharing) may follow.
//!
//! The rungs, in order: this run's snapshot already exists (a redelivered or retried event) → nothing new is
//! made and the run counts as done, unless that snapshot is `failed`, which is the run's failure; the database is not `available` → skipped; another snapshot of it is still
//! being made → skipped (RDS would refuse a second); otherwise create, and classify what RDS answered.
//! Invariant: nothing is deleted, copied or shared for a database whose own snapshot failed or was skipped in
//! this run ([`may_apply_retention`]).
//!
//! A snapshot with the run's identifier in state `failed` is a failed run, as AWS Backup reports a job whose
//! recovery point failed as `FAILED`, never `COMPLETED`: counting it as `already_exists` would report a backup
//! that does not exist and let retention delete older, good snapshots on its strength.
//!
//! Pure: this module never calls AWS and never logs; the `snapshot` handler gathers the facts and acts.

use serde::Serialize;

use crate::core::error::Error;
use crate::rds::retention::Retained;
use crate::rds::snapshots::{CreateResult, Snapshot};

/// What happened to one database's snapshot in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    /// The snapshot for this time exists already (a redelivered or retried event): nothing new was made.
    AlreadyExists,
    /// Another snapshot of this database is still being made; RDS would refuse a second one.
    InProgress,
    NotAvailable,
    QuotaExceeded,
    NotFound,
    Failed,
    /// For the snapshot-finished event: copied, shared, or nothing to do.
    Copied,
    CopyDeferred,
    Shared,
    Ignored,
}

impl Outcome {
    /// The snapshot this run was meant to have exists (or is being made by this run).
    pub fn succeeded(self) -> bool {
        matches!(self, Outcome::Created | Outcome::AlreadyExists)
    }

    pub fn failed(self) -> bool {
        matches!(
            self,
            Outcome::NotAvailable | Outcome::QuotaExceeded | Outcome::NotFound | Outcome::Failed
        )
    }
}

/// The ladder's answer before any RDS call is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// This run's snapshot is already there, in `status`.
    AlreadyExists { status: String },
    /// This run's snapshot is there but `failed` (status `status`): the run failed, and nothing is retried under the
    /// same identifier until someone deletes it.
    Failed { status: String },
    /// The database is in `db_status`, not `available`: no snapshot is taken.
    NotAvailable { db_status: String },
    /// Snapshot `other` of the database is still `status`: none is started.
    InProgress { other: String, status: String },
    /// Take the snapshot.
    Create,
}

/// An outcome and the line that explains it in the run's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub detail: Option<String>,
}

impl Verdict {
    fn new(outcome: Outcome, detail: Option<String>) -> Self {
        Self { outcome, detail }
    }
}

/// RDS's status of a snapshot it could not make.
fn is_failed(status: &str) -> bool {
    status == "failed"
}

/// Climbs the ladder for the snapshot `snapshot_id` of a database in `db_status`, given the database's
/// existing manual snapshots.
pub fn precondition<S: Retained>(snapshot_id: &str, db_status: &str, existing: &[S]) -> Precondition {
    if let Some(s) = existing.iter().find(|s| s.id() == snapshot_id) {
        let status = s.status().to_owned();
        if is_failed(&status) {
            Precondition::Failed { status }
        } else {
            Precondition::AlreadyExists { status }
        }
    } else if db_status != "available" {
        Precondition::NotAvailable {
            db_status: db_status.to_owned(),
        }
    } else if let Some(busy) = existing.iter().find(|s| s.is_in_progress()) {
        Precondition::InProgress {
            other: busy.id().to_owned(),
            status: busy.status().to_owned(),
        }
    } else {
        Precondition::Create
    }
}

impl Precondition {
    /// The verdict the ladder reached without creating anything; `None` for [`Precondition::Create`].
    pub fn verdict(&self, snapshot_id: &str) -> Option<Verdict> {
        let (outcome, detail) = match self {
            Precondition::AlreadyExists { status } => (
                Outcome::AlreadyExists,
                format!("snapshot {snapshot_id} already exists ({status})"),
            ),
            Precondition::Failed { status } => (
                Outcome::Failed,
                format!("snapshot {snapshot_id} exists but is `{status}`; delete it to let a retry of this run take it again"),
            ),
            Precondition::NotAvailable { db_status } => (
                Outcome::NotAvailable,
                format!("database is `{db_status}`, not `available`"),
            ),
            Precondition::InProgress { other, status } => {
                (Outcome::InProgress, format!("snapshot {other} is still `{status}`"))
            }
            Precondition::Create => return None,
        };
        Some(Verdict::new(outcome, Some(detail)))
    }
}

/// Classifies what RDS answered to the create call for `snapshot_id`.
pub fn after_create(snapshot_id: &str, result: &Result<CreateResult, Error>) -> Verdict {
    match result {
        Ok(CreateResult::Started(_)) => Verdict::new(Outcome::Created, None),
        Ok(CreateResult::AlreadyExists) => Verdict::new(
            Outcome::AlreadyExists,
            Some(format!("snapshot {snapshot_id} already exists")),
        ),
        Ok(CreateResult::InvalidState(m)) => Verdict::new(Outcome::NotAvailable, Some(m.clone())),
        Ok(CreateResult::QuotaExceeded(m)) => Verdict::new(Outcome::QuotaExceeded, Some(m.clone())),
        Ok(CreateResult::NotFound(m)) => Verdict::new(Outcome::NotFound, Some(m.clone())),
        Err(e) => Verdict::new(Outcome::Failed, Some(e.to_string())),
    }
}

/// Retention (in the source and the DR region), copies and shares run only for a database whose snapshot this
/// run was meant to have exists: a run whose own snapshot failed or was skipped deletes nothing.
pub fn may_apply_retention(outcome: Outcome) -> bool {
    outcome.succeeded()
}

/// For the event saying a snapshot finished: why it leads to nothing, before any other region is looked at.
pub fn finished_ignored(snap: &Snapshot) -> Option<String> {
    if !snap.owned() {
        return Some("not a Lifeboat snapshot".into());
    }
    if !snap.is_available() {
        return Some(format!("snapshot is `{}`, not `available`", snap.status));
    }
    None
}

/// For a finished Lifeboat snapshot and a DR region: whether to start its copy now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishedCopy {
    /// The DR region has it already.
    AlreadyCopied,
    /// The DR region has the maximum copies in flight; the next scheduled run copies it.
    Deferred,
    Copy,
}

/// Decides [`FinishedCopy`] from the DR region's manual snapshots and the in-flight limit.
pub fn finished_copy(snap: &Snapshot, dr_manual: &[Snapshot], max_in_flight: u32) -> FinishedCopy {
    if dr_manual.iter().any(|s| s.id == snap.id && s.kind == snap.kind) {
        FinishedCopy::AlreadyCopied
    } else if crate::rds::copies::free_slots(dr_manual, max_in_flight) == 0 {
        FinishedCopy::Deferred
    } else {
        FinishedCopy::Copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::snapshots::testing::snap;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    const ID: &str = "lifeboat-app-prod-20261122-0200";

    fn with_status(id: &str, status: &str) -> Snapshot {
        let mut s = snap(id, Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).unwrap(), true);
        s.status = status.into();
        s
    }

    #[test]
    fn outcomes_classify_success_and_failure() {
        for o in [Outcome::Created, Outcome::AlreadyExists] {
            assert!(o.succeeded() && !o.failed());
        }
        for o in [
            Outcome::NotAvailable,
            Outcome::QuotaExceeded,
            Outcome::NotFound,
            Outcome::Failed,
        ] {
            assert!(o.failed() && !o.succeeded());
        }
        assert!(!Outcome::InProgress.failed() && !Outcome::InProgress.succeeded());
    }

    #[test]
    fn an_existing_snapshot_wins_over_every_other_rung() {
        let existing = [with_status("other", "creating"), with_status(ID, "creating")];
        let p = precondition(ID, "stopped", &existing);
        assert_eq!(
            p,
            Precondition::AlreadyExists {
                status: "creating".into()
            }
        );
        assert_eq!(
            p.verdict(ID),
            Some(Verdict::new(
                Outcome::AlreadyExists,
                Some(format!("snapshot {ID} already exists (creating)"))
            ))
        );
    }

    /// Issue 12, item 13: RDS answered the run's create, but the snapshot it made is `failed`. A retry of the run
    /// must report that, not count the run as done, and must not apply retention.
    #[test]
    fn a_failed_snapshot_of_this_run_is_a_failure_not_already_exists() {
        let existing = [with_status(ID, "failed"), with_status("older", "available")];
        let p = precondition(ID, "available", &existing);
        let v = p.verdict(ID).unwrap();
        assert_eq!(v.outcome, Outcome::Failed);
        assert!(!may_apply_retention(v.outcome));
        assert_eq!(
            v.detail.as_deref(),
            Some(
                "snapshot lifeboat-app-prod-20261122-0200 exists but is `failed`; delete it to let a retry of this \
                 run take it again"
            )
        );
    }

    #[test]
    fn an_unavailable_database_is_skipped_before_a_busy_one() {
        let busy = [with_status("older", "creating")];
        let p = precondition(ID, "stopped", &busy);
        assert_eq!(
            p.verdict(ID),
            Some(Verdict::new(
                Outcome::NotAvailable,
                Some("database is `stopped`, not `available`".into())
            ))
        );
        let p = precondition(ID, "available", &busy);
        assert_eq!(
            p.verdict(ID),
            Some(Verdict::new(
                Outcome::InProgress,
                Some("snapshot older is still `creating`".into())
            ))
        );
    }

    #[test]
    fn an_available_idle_database_is_snapshotted() {
        let done = [with_status("older", "available")];
        let p = precondition(ID, "available", &done);
        assert_eq!(p, Precondition::Create);
        assert_eq!(p.verdict(ID), None);
    }

    #[test]
    fn create_answers_are_classified() {
        let started = Ok(CreateResult::Started(with_status(ID, "creating")));
        assert_eq!(after_create(ID, &started), Verdict::new(Outcome::Created, None));
        assert_eq!(
            after_create(ID, &Ok(CreateResult::AlreadyExists)),
            Verdict::new(Outcome::AlreadyExists, Some(format!("snapshot {ID} already exists")))
        );
        let cases = [
            (CreateResult::InvalidState("busy".into()), Outcome::NotAvailable),
            (CreateResult::QuotaExceeded("full".into()), Outcome::QuotaExceeded),
            (CreateResult::NotFound("gone".into()), Outcome::NotFound),
        ];
        for (answer, outcome) in cases {
            let v = after_create(ID, &Ok(answer));
            assert_eq!(v.outcome, outcome);
            assert!(v.detail.is_some());
        }
        let err = Err(Error::Aws {
            operation: "CreateDBSnapshot",
            code: None,
            message: "throttled".into(),
        });
        assert_eq!(
            after_create(ID, &err),
            Verdict::new(Outcome::Failed, Some("CreateDBSnapshot failed: throttled".into()))
        );
    }

    #[test]
    fn retention_follows_only_a_snapshot_that_exists() {
        assert!(may_apply_retention(Outcome::Created));
        assert!(may_apply_retention(Outcome::AlreadyExists));
        for o in [
            Outcome::InProgress,
            Outcome::NotAvailable,
            Outcome::QuotaExceeded,
            Outcome::NotFound,
            Outcome::Failed,
        ] {
            assert!(!may_apply_retention(o), "{o:?}");
        }
    }

    #[test]
    fn a_finished_snapshot_is_copied_only_if_ours_available_and_missing() {
        assert_eq!(finished_ignored(&with_status(ID, "available")), None);
        let mut theirs = with_status(ID, "available");
        theirs.tags.clear();
        assert_eq!(finished_ignored(&theirs).as_deref(), Some("not a Lifeboat snapshot"));
        assert_eq!(
            finished_ignored(&with_status(ID, "creating")).as_deref(),
            Some("snapshot is `creating`, not `available`")
        );

        let snap = with_status(ID, "available");
        assert_eq!(finished_copy(&snap, &[], 5), FinishedCopy::Copy);
        assert_eq!(
            finished_copy(&snap, &[with_status(ID, "copying")], 1),
            FinishedCopy::AlreadyCopied
        );
        let busy = [with_status("c1", "copying"), with_status("c2", "pending")];
        assert_eq!(finished_copy(&snap, &busy, 2), FinishedCopy::Deferred);
        assert_eq!(finished_copy(&snap, &busy, 3), FinishedCopy::Copy);
    }

    fn arb_status() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "available",
            "creating",
            "copying",
            "pending",
            "failed",
            "stopped",
            "deleting",
        ])
        .prop_map(str::to_owned)
    }

    /// Every answer the create call can give, by index (an `Error` is not `Clone`, so no `Just`).
    fn create_answer(i: u8) -> Result<CreateResult, Error> {
        match i {
            0 => Ok(CreateResult::Started(with_status(ID, "creating"))),
            1 => Ok(CreateResult::AlreadyExists),
            2 => Ok(CreateResult::InvalidState("invalid".into())),
            3 => Ok(CreateResult::QuotaExceeded("quota".into())),
            4 => Ok(CreateResult::NotFound("not found".into())),
            _ => Err(Error::Aws {
                operation: "CreateDBSnapshot",
                code: None,
                message: "boom".into(),
            }),
        }
    }

    /// One database's whole ladder, as the handler climbs it: precondition, then (maybe) the create call.
    fn climb(db_status: &str, existing: &[Snapshot], create: &Result<CreateResult, Error>) -> (Precondition, Verdict) {
        let p = precondition(ID, db_status, existing);
        let v = p.verdict(ID).unwrap_or_else(|| after_create(ID, create));
        (p, v)
    }

    proptest! {
        #[test]
        fn retention_never_runs_when_the_runs_own_snapshot_failed(
            db_status in arb_status(),
            existing in prop::collection::vec((prop::bool::ANY, arb_status()), 0..5),
            create in 0u8..6,
        ) {
            let existing: Vec<Snapshot> = existing
                .iter()
                .enumerate()
                .map(|(i, (ours, status))| with_status(&if *ours { ID.to_owned() } else { format!("other-{i}") }, status))
                .collect();
            let (p, v) = climb(&db_status, &existing, &create_answer(create));
            if v.outcome.failed() || v.outcome == Outcome::InProgress {
                prop_assert!(!may_apply_retention(v.outcome));
            }
            prop_assert_eq!(may_apply_retention(v.outcome), v.outcome.succeeded());
            // The ladder creates only for an available database with nothing in progress and no snapshot of its own.
            if p == Precondition::Create {
                prop_assert_eq!(db_status.as_str(), "available");
                prop_assert!(existing.iter().all(|s| s.id != ID && !s.is_in_progress()));
            }
            // A snapshot already there always counts as done, whatever state the database is in, unless it failed:
            // then the run failed, and retention does not run.
            if let Some(own) = existing.iter().find(|s| s.id == ID) {
                let expected = if own.status == "failed" { Outcome::Failed } else { Outcome::AlreadyExists };
                prop_assert_eq!(v.outcome, expected);
            }
        }
    }
}
