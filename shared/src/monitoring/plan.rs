//! monitor's thresholds when a plan document is in force ("plan mode"): which plan each database and cache
//! follows, and the per-resource [`Thresholds`] its plan implies. Pure: the `monitor` function loads the document
//! and gathers the tags; this file decides.
//!
//! One rule for every threshold: a freshness the plan states or implies ([`RuleRef::max_age`]) is alarmed on, and
//! a threshold the plan does not have is not (no `exports` rule, no export-age alarm; no `pitr`, no PITR alarms;
//! no restore test, neither restore-test alarm). A resource in no plan, in two plans or in a plan the document
//! does not have is never held to a default: it is a [`Placement`] the caller reports. A plan with `no_backups`
//! is a written decision: its members get no thresholds, no `BackupMissing` finding, and are listed with the
//! reason; so is a resource whose plan has no rule for its kind (a cache in a plan of database rules only).
//!
//! Legacy mode (no plan document) keeps `Policy`, one set of thresholds for every resource;
//! `Policy::thresholds` and `monitoring::caches::legacy_thresholds` turn it into the same per-resource shape, so the alarm
//! sets are built by one function either way.
//!
//! Must never: read AWS or the plan store, or choose a threshold a plan does not state or imply.

use std::collections::BTreeMap;

use chrono::Duration;

use crate::caches::elasticache::CacheKind;
use crate::monitoring::caches::copies_and_tests_made;
use crate::monitoring::monitor::Thresholds;
use crate::plans::document::{
    Document, Plan, RecoveryPoint, RestoreTestRule, RuleKind, MAX_PITR_DAYS, MAX_SNAPSHOT_WINDOW_DAYS,
};
use crate::plans::membership::{plan_of, MembershipError, Resource};

fn seconds(d: Duration) -> f64 {
    d.num_seconds() as f64
}

/// The max age of each rule of `kind`, by rule id.
fn max_ages(plan: &Plan, kind: RuleKind) -> Vec<(String, f64)> {
    plan.rules()
        .into_iter()
        .filter(|r| r.kind == kind)
        .map(|r| {
            let max = seconds(r.max_age());
            (r.id, max)
        })
        .collect()
}

/// The smallest max age of the plan's restore tests of `resource` (a database's restore the newest snapshot or
/// export; a cache's, the newest cache snapshot).
fn restore_test_max_age(plan: &Plan, resource: Resource) -> Option<f64> {
    // `rules()` lists restore tests in the document's order, so the n-th rule is `restore_tests[n]`.
    max_ages(plan, RuleKind::RestoreTest)
        .into_iter()
        .zip(&plan.restore_tests)
        .filter(|(_, t)| match resource {
            Resource::Database => t.from != RecoveryPoint::NewestCacheSnapshot,
            Resource::Cache => t.from == RecoveryPoint::NewestCacheSnapshot,
        })
        .map(|((_, s), _)| s)
        .min_by(f64::total_cmp)
}

/// How old the recovery point a database restore test of `rule` proves may be when the test runs: the newest
/// snapshot or export at most its rule's freshness, a random snapshot or moment at most `within_days` (a random
/// moment without it: RDS's longest window), the latest restorable time at most `pitr.max_lag_minutes` (an hour
/// when unstated). `None` for a cache's test.
fn reach_back_s(plan: &Plan, rule: &RestoreTestRule) -> Option<f64> {
    let days = |d: u32| f64::from(d) * 86_400.0;
    let first = |kind| max_ages(plan, kind).first().map(|(_, s)| *s);
    Some(match rule.from {
        RecoveryPoint::NewestSnapshot => first(RuleKind::Snapshot).unwrap_or(0.0),
        RecoveryPoint::NewestExport => max_ages(plan, RuleKind::Export)
            .into_iter()
            .find(|(id, _)| {
                rule.export
                    .as_deref()
                    .is_some_and(|p| id.strip_prefix("exports.") == Some(p))
            })
            .map_or(0.0, |(_, s)| s),
        RecoveryPoint::RandomSnapshot => days(rule.within_days.unwrap_or(MAX_SNAPSHOT_WINDOW_DAYS)),
        RecoveryPoint::RandomPointInTime => days(rule.within_days.unwrap_or(MAX_PITR_DAYS)),
        RecoveryPoint::LatestRestorableTime => plan
            .pitr
            .and_then(|p| p.max_lag_minutes)
            .map_or(3600.0, |m| f64::from(m) * 60.0),
        RecoveryPoint::NewestCacheSnapshot => return None,
    })
}

/// The verified RPO a database following `plan` is held to: each database restore-test rule promises a proven
/// recovery point no older than its own freshness plus how far back it reaches ([`reach_back_s`]); the
/// database is held to the best of those promises (any one rule keeping it is enough).
fn verified_rpo_max(plan: &Plan) -> Option<f64> {
    max_ages(plan, RuleKind::RestoreTest)
        .into_iter()
        .zip(&plan.restore_tests)
        .filter_map(|((_, age), rule)| Some(age + reach_back_s(plan, rule)?))
        .min_by(f64::total_cmp)
}

/// What a database following `plan` is held to.
pub fn database_thresholds(plan: &Plan) -> Thresholds {
    let first = |kind| max_ages(plan, kind).first().map(|(_, s)| *s);
    Thresholds {
        snapshot_max_age_s: first(RuleKind::Snapshot),
        export_max_age_s: max_ages(plan, RuleKind::Export)
            .into_iter()
            .filter_map(|(id, s)| Some((id.strip_prefix("exports.")?.to_owned(), s)))
            .collect(),
        rdb_copy_max_age_s: None,
        restore_test_max_age_s: restore_test_max_age(plan, Resource::Database),
        pitr_lag_max_s: plan.pitr.and_then(|p| p.max_lag_minutes).map(|m| f64::from(m) * 60.0),
        verified_rpo_max_s: verified_rpo_max(plan),
        min_retention_days: plan.pitr.map(|p| f64::from(p.min_days)),
    }
}

/// What a cache following `plan` is held to. A plan states nothing about ElastiCache's own backup retention, so
/// there is no cache `backup-retention` alarm in plan mode.
pub fn cache_thresholds(plan: &Plan, kind: CacheKind) -> Thresholds {
    let first = |kind| max_ages(plan, kind).first().map(|(_, s)| *s);
    let tested = copies_and_tests_made(kind);
    Thresholds {
        snapshot_max_age_s: first(RuleKind::CacheSnapshot),
        export_max_age_s: BTreeMap::new(),
        rdb_copy_max_age_s: first(RuleKind::RdbCopy).filter(|_| tested),
        restore_test_max_age_s: restore_test_max_age(plan, Resource::Cache).filter(|_| tested),
        pitr_lag_max_s: None,
        verified_rpo_max_s: None,
        min_retention_days: None,
    }
}

/// Where one database or cache stands under the document in force.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// It follows `plan` and is held to `thresholds`.
    Follows { plan: String, thresholds: Thresholds },
    /// Its plan says it is deliberately not backed up, and why.
    NotBackedUp { plan: String, reason: String },
    /// It is in no plan: reported, never backed up under a default.
    Unplanned,
    /// Two plans, or a tag naming a plan the document does not have: refused with the names.
    Conflict(MembershipError),
}

/// Places one resource (`kind` only matters for a cache) under `doc`.
pub fn place(
    doc: &Document,
    resource: Resource,
    id: &str,
    tags: &BTreeMap<String, String>,
    kind: Option<CacheKind>,
) -> Placement {
    let name = match plan_of(doc, resource, id, tags) {
        Err(e) => return Placement::Conflict(e),
        Ok(None) => return Placement::Unplanned,
        Ok(Some(name)) => name,
    };
    let Some(plan) = doc.plans.get(name) else {
        return Placement::Unplanned;
    };
    if let Some(reason) = &plan.no_backups {
        return Placement::NotBackedUp {
            plan: name.to_owned(),
            reason: reason.clone(),
        };
    }
    let thresholds = match (resource, kind) {
        (Resource::Cache, Some(kind)) => cache_thresholds(plan, kind),
        (Resource::Cache, None) => cache_thresholds(plan, CacheKind::ReplicationGroup),
        (Resource::Database, _) => database_thresholds(plan),
    };
    // A plan whose rules are all for the other kind (a cache in a plan of database rules only) expects nothing
    // of this resource: it is not backed up by that plan, and saying so beats a `BackupMissing` that could never
    // clear.
    if thresholds == Thresholds::default() {
        return Placement::NotBackedUp {
            plan: name.to_owned(),
            reason: format!("the plan has no rule for {}s", resource.noun()),
        };
    }
    Placement::Follows {
        plan: name.to_owned(),
        thresholds,
    }
}

/// The line a run's summary and log give a resource its plan does not back up.
pub fn not_backed_up_note(what: &str, plan: &str, reason: &str) -> String {
    format!("{what}: not backed up by policy (plan `{plan}`: {reason})")
}

/// The finding for a resource in no plan.
pub fn unplanned_note(what: &str) -> String {
    format!(
        "{what}: in no plan of the plan document (tag it `{}=<plan>` or list it in a plan); nothing is backed up \
         or alarmed on for it",
        crate::core::tags::PLAN
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::monitoring::caches::{alarm_set_for as cache_alarms, legacy_thresholds as legacy_cache_thresholds};
    use crate::monitoring::monitor::{alarm_set_for, AlarmScope, Policy};
    use crate::plans::document::parse;
    use crate::plans::membership::PLAN_TAG;

    fn scope() -> AlarmScope {
        AlarmScope::new("prod").unwrap()
    }

    fn three_environments() -> Document {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/plans/three-environments.json");
        parse(&std::fs::read(path).unwrap()).unwrap()
    }

    const DAILY_S: f64 = (26.0 * 60.0 + 24.0) * 60.0;

    fn tagged(plan: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(PLAN_TAG.to_owned(), plan.to_owned())])
    }

    #[test]
    fn production_is_held_to_its_snapshots_exports_pitr_and_quarterly_restore_test() {
        let doc = three_environments();
        let t = database_thresholds(&doc.plans["production"]);
        assert_eq!(t.snapshot_max_age_s, Some(DAILY_S), "26.4 h: a daily rule plus 10%");
        assert_eq!(t.export_max_age_s.keys().collect::<Vec<_>>(), ["monthly"]);
        assert_eq!(t.min_retention_days, Some(7.0));
        assert_eq!(t.pitr_lag_max_s, None, "the plan states no lag: none is alarmed on");
        // Quarterly: the longest gap is 92 days, plus 10%.
        let days = t.restore_test_max_age_s.unwrap() / 86400.0;
        assert!((101.0..102.0).contains(&days), "{days}");
        let names: Vec<String> = alarm_set_for(&scope(), "app-prod", &t)
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(
            names,
            [
                "lifeboat/prod/app-prod/snapshot-age",
                "lifeboat/prod/app-prod/export-age-monthly",
                "lifeboat/prod/app-prod/content",
                "lifeboat/prod/app-prod/restore-test-age",
                "lifeboat/prod/app-prod/restore-test-failed",
                "lifeboat/prod/app-prod/verified-rpo",
                "lifeboat/prod/app-prod/backup-retention",
            ]
        );
        // A quarterly test of the newest snapshot proves a point at most a snapshot's freshness old when it runs.
        assert_eq!(t.verified_rpo_max_s, Some(t.restore_test_max_age_s.unwrap() + DAILY_S));
    }

    #[test]
    fn the_verified_rpo_threshold_is_the_best_promise_of_the_database_restore_tests() {
        let doc = parse(
            br#"{"format": 1, "plans": {"p": {
                "snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}},
                "pitr": {"min_days": 7, "max_lag_minutes": 30},
                "cache_snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}},
                "restore_tests": [
                    {"schedule": "0 3 * * 0", "from": "random-snapshot", "within_days": 7, "max_age_days": 8},
                    {"schedule": "0 3 * * *", "from": "newest-cache-snapshot", "max_age_days": 1}]}}}"#,
        )
        .unwrap();
        let day = 86_400.0;
        let t = database_thresholds(&doc.plans["p"]);
        assert_eq!(
            t.verified_rpo_max_s,
            Some(8.0 * day + 7.0 * day),
            "the cache's test proves no database"
        );
        assert_eq!(
            cache_thresholds(&doc.plans["p"], CacheKind::ReplicationGroup).verified_rpo_max_s,
            None
        );
        let rules = |tests: &str| {
            let text = format!(
                r#"{{"format": 1, "plans": {{"p": {{"snapshots": {{"schedule": "0 2 * * *", "retention": {{"daily": 7}}}},
                   "pitr": {{"min_days": 7, "max_lag_minutes": 30}}, "restore_tests": {tests}}}}}}}"#
            );
            database_thresholds(&parse(text.as_bytes()).unwrap().plans["p"]).verified_rpo_max_s
        };
        assert_eq!(
            rules(r#"[{"schedule": "0 3 * * *", "from": "latest-restorable-time", "max_age_days": 2}]"#),
            Some(2.0 * day + 1800.0)
        );
        assert_eq!(
            rules(r#"[{"schedule": "0 3 * * *", "from": "random-point-in-time", "max_age_days": 2}]"#),
            Some(2.0 * day + 35.0 * day),
            "a random moment of the whole window may be as old as RDS's longest window"
        );
        assert_eq!(
            rules(
                r#"[{"schedule": "0 3 * * 0", "from": "random-point-in-time", "within_days": 7, "max_age_days": 8},
                    {"schedule": "0 3 * * *", "from": "latest-restorable-time", "max_age_days": 2}]"#
            ),
            Some(2.0 * day + 1800.0),
            "the daily test of the latest time keeps the tighter promise"
        );
    }

    #[test]
    fn a_threshold_the_plan_does_not_have_is_not_alarmed_on() {
        let doc = three_environments();
        let t = database_thresholds(&doc.plans["staging"]);
        assert_eq!(
            t,
            Thresholds {
                snapshot_max_age_s: Some(DAILY_S),
                ..Thresholds::default()
            }
        );
        let set = alarm_set_for(&scope(), "app-staging", &t);
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].threshold, DAILY_S);
        assert_eq!(
            set[0].description,
            "app-staging: the newest snapshot is older than 26 hours"
        );
        assert!(alarm_set_for(&scope(), "x", &Thresholds::default()).is_empty());
    }

    #[test]
    fn pitr_lag_and_cache_rules_come_from_their_own_rules() {
        let doc = parse(
            br#"{"format": 1, "plans": {"p": {
                "pitr": {"min_days": 14, "max_lag_minutes": 30},
                "cache_snapshots": {"schedule": "0 3 * * *", "retention": {"daily": 7}, "max_age_hours": 30},
                "rdb_copies": {"schedule": "0 */6 * * *", "keep_days": 7},
                "restore_tests": [
                    {"schedule": "0 5 1 * *", "from": "newest-cache-snapshot", "max_age_days": 40},
                    {"schedule": "0 5 * * SUN", "from": "newest-cache-snapshot"}]}}}"#,
        )
        .unwrap();
        let plan = &doc.plans["p"];
        let db = database_thresholds(plan);
        assert_eq!(
            (db.pitr_lag_max_s, db.min_retention_days, db.snapshot_max_age_s),
            (Some(1800.0), Some(14.0), None)
        );
        assert_eq!(db.restore_test_max_age_s, None, "both tests are the cache's");
        let c = cache_thresholds(plan, CacheKind::ReplicationGroup);
        assert_eq!(c.snapshot_max_age_s, Some(30.0 * 3600.0));
        assert_eq!(
            c.rdb_copy_max_age_s,
            Some(8.0 * 3600.0),
            "6 h gap plus the 2 h minimum grace"
        );
        // The smaller of 40 days and a week plus 10%.
        assert_eq!(c.restore_test_max_age_s, Some((168.0 + 16.8) * 3600.0));
        let names: Vec<String> = cache_alarms(&scope(), "sessions", &c)
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(
            names,
            [
                "lifeboat/prod/cache:sessions/snapshot-age",
                "lifeboat/prod/cache:sessions/content",
                "lifeboat/prod/cache:sessions/export-age",
                "lifeboat/prod/cache:sessions/restore-test-age",
                "lifeboat/prod/cache:sessions/restore-test-failed",
            ],
            "no backup-retention: a plan does not state ElastiCache's own retention"
        );
    }

    #[test]
    fn every_resource_is_placed_or_reported() {
        let doc = three_environments();
        let place_db = |tags| place(&doc, Resource::Database, "db", &tags, None);
        assert!(matches!(
            place_db(tagged("production")),
            Placement::Follows { ref plan, .. } if plan == "production"
        ));
        assert_eq!(
            place_db(tagged("dev")),
            Placement::NotBackedUp {
                plan: "dev".into(),
                reason: "recreated at will from seed data; never backed up".into()
            }
        );
        assert_eq!(place_db(BTreeMap::new()), Placement::Unplanned);
        // Production's rules are all for databases: a cache in it is not backed up by it, and says why.
        assert_eq!(
            place(
                &doc,
                Resource::Cache,
                "sessions",
                &tagged("production"),
                Some(CacheKind::Serverless)
            ),
            Placement::NotBackedUp {
                plan: "production".into(),
                reason: "the plan has no rule for caches".into()
            }
        );
        let Placement::Conflict(e) = place_db(tagged("prod")) else {
            panic!("an unknown plan is a conflict")
        };
        assert!(e.to_string().contains("has no plan `prod`"), "{e}");
        assert_eq!(
            not_backed_up_note("db", "dev", "seeded"),
            "db: not backed up by policy (plan `dev`: seeded)"
        );
    }

    #[test]
    fn legacy_thresholds_set_every_alarm_as_before() {
        let policy = Policy {
            snapshot_max_age_s: 26.0 * 3600.0,
            export_max_age_s: [("full".to_owned(), 26.0 * 3600.0)].into(),
            restore_test_max_age_s: 100.0 * 86400.0,
            pitr_lag_max_s: 900.0,
            min_retention_days: 7.0,
        };
        // Every check, and the content watch's alarm of a database with exports (of a cache with RDB copies).
        assert_eq!(alarm_set_for(&scope(), "a", &policy.thresholds()).len(), 7);
        let c = legacy_cache_thresholds(&policy, CacheKind::Serverless, Some(3600.0));
        assert_eq!(cache_alarms(&scope(), "s", &c).len(), 6);
        assert_eq!(
            cache_alarms(&scope(), "s", &legacy_cache_thresholds(&policy, CacheKind::Node, None)).len(),
            4
        );
    }
}
