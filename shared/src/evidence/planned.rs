//! The evidence report's "expected" in plan mode: which plan version was in force on each day of the period, what
//! each database was expected to have each day under it, and which databases no plan backs up. Pure: the caller
//! reads the document's history (`crate::plans::store::history`) and the databases' tags.
//!
//! Expectations are counted due time by due time: a backup due at `t` is expected when the version in force at
//! `t` (the newest valid version written at or before it, [`crate::plans::store::in_force_at`]) places the database
//! in a plan whose rule's schedule is due at `t`. A plan change in the middle of a day therefore counts the
//! morning under the old version and the evening under the new one, and a day before any valid version expects
//! nothing. Nothing is inferred from a threshold: the thresholds (a series' age line, restore-test age, PITR) are
//! the plan's ([`crate::monitoring::plan`]), from the last version in the period that placed the database in a plan.
//!
//! Must never: read AWS or a clock, or judge a day (that is [`super::rules`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::report::{PlanDay, PlanSection, SeriesKind, VersionRef};
use super::rules::{Judged, SeriesSpec};
use crate::monitoring::plan::{database_thresholds, not_backed_up_note, place, Placement};
use crate::plans::document::{Document, RuleKind};
use crate::plans::membership::Resource;
use crate::plans::store::{in_force_at, PlanVersion};

/// The document's versions, newest first, each with its document when it passes validation.
pub type History = [(PlanVersion, Option<Document>)];

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// The valid versions in force over `[from, to)`, as consecutive spans `(start, end, version, document)`.
fn spans(
    history: &History,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>, &PlanVersion, &Document)> {
    let mut written: Vec<(&PlanVersion, &Document)> = history
        .iter()
        .filter(|(v, _)| v.modified > from && v.modified < to)
        .filter_map(|(v, d)| Some((v, d.as_ref()?)))
        .collect();
    written.sort_by_key(|(v, _)| v.modified);
    let mut out = Vec::new();
    let mut start = from;
    let mut current = in_force_at(history, from);
    for (v, d) in written {
        if let Some((cv, cd)) = current {
            out.push((start, v.modified, cv, cd));
        }
        start = v.modified;
        current = Some((v, d));
    }
    if let Some((cv, cd)) = current {
        out.push((start, to, cv, cd));
    }
    out
}

fn version_ref(v: &PlanVersion) -> VersionRef {
    VersionRef {
        label: v.label().to_owned(),
        version_id: v.version_id.clone(),
        modified: v.modified,
    }
}

/// The versions in force on each day: the one in force at its start, then each valid one written during it.
pub fn plan_days(history: &History, days: &[NaiveDate]) -> Vec<PlanDay> {
    days.iter()
        .map(|d| PlanDay {
            date: *d,
            versions: spans(history, day_start(*d), day_start(*d) + Duration::days(1))
                .into_iter()
                .map(|(_, _, v, _)| version_ref(v))
                .collect(),
        })
        .collect()
}

/// One series being counted: its kind, its expected backups per day, and the last version's document and plan
/// that had its rule (whose schedule and freshness the report shows).
struct Tally<'d> {
    kind: SeriesKind,
    per_day: Vec<u32>,
    doc: &'d Document,
    plan: String,
    rule_id: String,
}

/// What `id` (with `tags`) was expected to have over `days`, and the plan and thresholds it is judged by. `None`
/// when no version in force on any day placed it in a plan with backups.
pub fn judge(history: &History, id: &str, tags: &BTreeMap<String, String>, days: &[NaiveDate]) -> Option<Judged> {
    let mut counts: BTreeMap<(u8, String), Tally<'_>> = BTreeMap::new();
    let mut last: Option<(&Document, String)> = None;
    for (i, day) in days.iter().enumerate() {
        for (start, end, _, doc) in spans(history, day_start(*day), day_start(*day) + Duration::days(1)) {
            let Placement::Follows { plan, .. } = place(doc, Resource::Database, id, tags, None) else {
                continue;
            };
            let Some(rules) = doc.plans.get(&plan) else { continue };
            for rule in rules.rules() {
                let (order, kind, name) = match rule.kind {
                    RuleKind::Snapshot => (0, SeriesKind::Snapshot, "snapshots".to_owned()),
                    RuleKind::Export => match rule.id.strip_prefix("exports.") {
                        Some(p) => (1, SeriesKind::Export, p.to_owned()),
                        None => continue,
                    },
                    _ => continue,
                };
                let Some(schedule) = rule.schedule else { continue };
                // Due times in [start, end): every due time is on a quarter hour.
                let due = schedule
                    .due_between(start - Duration::minutes(1), end - Duration::minutes(1))
                    .len() as u32;
                let entry = counts.entry((order, name)).or_insert_with(|| Tally {
                    kind,
                    per_day: vec![0; days.len()],
                    doc,
                    plan: plan.clone(),
                    rule_id: rule.id.clone(),
                });
                entry.per_day[i] += due;
                (entry.doc, entry.plan) = (doc, plan.clone());
            }
            last = Some((doc, plan));
        }
    }
    let (doc, plan) = last?;
    let series = counts
        .into_iter()
        .map(|((_, name), t)| {
            let rule = t
                .doc
                .plans
                .get(&t.plan)
                .and_then(|p| p.rules().into_iter().find(|r| r.id == t.rule_id));
            SeriesSpec {
                kind: t.kind,
                name,
                threshold_hours: rule.as_ref().map_or(0.0, |r| r.max_age().num_seconds() as f64 / 3600.0),
                planned: Some(t.per_day),
                schedule: rule.and_then(|r| r.schedule.map(ToString::to_string)),
            }
        })
        .collect();
    Some(Judged {
        series,
        thresholds: doc.plans.get(&plan).map(database_thresholds).unwrap_or_default(),
        plan: Some(plan),
    })
}

/// Plan mode's section of the report: the versions of each day, and where each database that no plan backed up
/// during the period stands under the version in force at `at` (the period's end, or now).
pub fn section<'a>(
    history: &History,
    document: &str,
    days: &[NaiveDate],
    unjudged: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, String>)>,
    at: DateTime<Utc>,
) -> PlanSection {
    let mut out = PlanSection {
        document: document.to_owned(),
        days: plan_days(history, days),
        ..PlanSection::default()
    };
    let doc = in_force_at(history, at).map(|(_, d)| d);
    for (id, tags) in unjudged {
        match doc.map(|d| place(d, Resource::Database, id, tags, None)) {
            None | Some(Placement::Unplanned) | Some(Placement::Follows { .. }) => out.unplanned.push(id.to_owned()),
            Some(Placement::Conflict(e)) => out.conflicts.push(e.to_string()),
            Some(Placement::NotBackedUp { plan, reason }) => {
                out.not_backed_up.push(not_backed_up_note(id, &plan, &reason))
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::plans::document::parse;
    use crate::plans::membership::PLAN_TAG;
    use chrono::TimeZone;

    const V1: &str = r#"{"format": 1, "plans": {
        "production": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 30}}},
        "dev": {"no_backups": "seeded"}}}"#;
    /// Twice a day from the change on, and a weekly export.
    const V2: &str = r#"{"format": 1, "plans": {
        "production": {"snapshots": {"schedule": "0 2,14 * * *", "retention": {"daily": 30}},
                       "exports": {"weekly": {"schedule": "0 4 * * MON", "keep_days": 60}}},
        "dev": {"no_backups": "seeded"}}}"#;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    fn history() -> Vec<(PlanVersion, Option<Document>)> {
        [
            ("v3", at(12, 0), "not json"),
            ("v2", at(10, 9), V2),
            ("v1", at(3, 12), V1),
        ]
        .into_iter()
        .map(|(id, t, body)| (PlanVersion::new(id, t, body.as_bytes()), parse(body.as_bytes()).ok()))
        .collect()
    }

    fn days() -> Vec<NaiveDate> {
        (1..=14).map(|d| at(d, 0).date_naive()).collect()
    }

    fn tagged(plan: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(PLAN_TAG.to_owned(), plan.to_owned())])
    }

    #[test]
    fn each_day_names_the_versions_in_force_and_an_invalid_one_changes_nothing() {
        let h = history();
        let d = plan_days(&h, &days());
        let ids = |i: usize| d[i].versions.iter().map(|v| v.version_id.as_str()).collect::<Vec<_>>();
        assert!(ids(0).is_empty() && ids(1).is_empty(), "before the first version");
        assert_eq!(ids(2), ["v1"], "written at noon on the 3rd");
        assert_eq!(ids(8), ["v1"]);
        assert_eq!(ids(9), ["v1", "v2"], "the 10th: v1 until 09:00, then v2");
        assert_eq!(ids(10), ["v2"]);
        assert_eq!(ids(12), ["v2"], "v3 fails validation: v2 stays in force");
        assert_eq!(d[9].versions[1].label, h[1].0.label());
        assert_eq!(d[9].versions[1].modified, at(10, 9));
    }

    #[test]
    fn expected_backups_are_the_due_times_of_the_version_in_force_at_each() {
        let h = history();
        let j = judge(&h, "app-prod", &tagged("production"), &days()).unwrap();
        assert_eq!(j.plan.as_deref(), Some("production"));
        let snaps = &j.series[0];
        assert_eq!((snaps.kind, snaps.name.as_str()), (SeriesKind::Snapshot, "snapshots"));
        // Nothing before v1; its 02:00 on the 3rd is before noon, when v1 was written; the 10th: 02:00 under v1,
        // 14:00 under v2; twice a day after.
        assert_eq!(
            snaps.planned.as_deref().unwrap(),
            [0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
        );
        assert_eq!(snaps.schedule.as_deref(), Some("0 2,14 * * *"), "the last version's");
        assert!(
            (snaps.threshold_hours - 14.0).abs() < 1e-9,
            "12 h gap plus 2 h: {}",
            snaps.threshold_hours
        );
        let weekly = &j.series[1];
        assert_eq!(weekly.name, "weekly");
        // Mondays in the range after v2: the 16th is outside; the 10th was a Tuesday, so none until then.
        let mondays: Vec<usize> = weekly
            .planned
            .as_deref()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, _)| i + 1)
            .collect();
        assert!(mondays.is_empty(), "{mondays:?}");
        let longer: Vec<NaiveDate> = (1..=16).map(|d| at(d, 0).date_naive()).collect();
        let j = judge(&h, "app-prod", &tagged("production"), &longer).unwrap();
        assert_eq!(j.series[1].planned.as_deref().unwrap()[15], 1, "Monday the 16th");
        assert_eq!(j.thresholds.export_max_age_s.keys().collect::<Vec<_>>(), ["weekly"]);
        assert_eq!(j.thresholds.restore_test_max_age_s, None);
    }

    #[test]
    fn databases_no_plan_backs_up_are_named_with_why() {
        let h = history();
        assert!(judge(&h, "app-dev", &tagged("dev"), &days()).is_none());
        assert!(judge(&h, "orphan", &BTreeMap::new(), &days()).is_none());
        let (dev, none, odd) = (tagged("dev"), BTreeMap::new(), tagged("qa"));
        let s = section(
            &h,
            "s3://b/plans.json",
            &days(),
            [("app-dev", &dev), ("orphan", &none), ("odd", &odd)],
            at(14, 23),
        );
        assert_eq!(
            s.not_backed_up,
            ["app-dev: not backed up by policy (plan `dev`: seeded)"]
        );
        assert_eq!(s.unplanned, ["orphan"]);
        assert_eq!(s.conflicts.len(), 1);
        assert_eq!(s.days.len(), 14);
    }
}
