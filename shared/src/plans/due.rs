//! What is due: the runs a tick makes, and the next runs `lifeboat plan show` lists.
//!
//! A tick at `t` runs every rule whose due time falls in `(t - 15 min, t]`, each under its *due time*: the due
//! time names what the run makes (a snapshot identifier, an export's keys), so a redelivered or retried tick finds
//! its own work already there and makes nothing twice, and a tick that arrives late still makes what was due
//! then. Why a tick and not one scheduler entry per rule: the design notes (`docs/book/src/design/notes.md`).
//!
//! Must never: read a clock, or decide which resources a plan covers (see [`crate::plans::membership`]).

use chrono::{DateTime, Duration, Utc};

use crate::mask::rules::RefreshRule;
use crate::plans::document::{Document, RestoreTestRule, RuleKind};
use crate::plans::schedule::{quarter_at_or_before, Schedule, TICK_MINUTES};

/// One run a tick makes: a plan's rule at its due time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub plan: String,
    /// The rule's identifier within its plan (`snapshots`, `exports.critical`, ...).
    pub rule: String,
    pub at: DateTime<Utc>,
}

/// The window a tick delivered at `tick` stands for: `(q - 15 min, q]` with `q` the tick's quarter hour.
pub fn window(tick: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let until = quarter_at_or_before(tick);
    (until - Duration::minutes(i64::from(TICK_MINUTES)), until)
}

/// Every run of rules of `kind` due in `(after, until]`, oldest first, then by plan and rule.
pub fn due_between(doc: &Document, kind: RuleKind, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Due> {
    let mut out = Vec::new();
    for (name, plan) in &doc.plans {
        for rule in plan.rules().into_iter().filter(|r| r.kind == kind) {
            let Some(schedule) = rule.schedule else { continue };
            for at in schedule.due_between(after, until) {
                out.push(Due {
                    plan: name.clone(),
                    rule: rule.id.clone(),
                    at,
                });
            }
        }
    }
    out.sort_by(|a, b| (a.at, &a.plan, &a.rule).cmp(&(b.at, &b.plan, &b.rule)));
    out
}

/// The runs of rules of `kind` a tick delivered at `tick` makes.
pub fn due_at_tick(doc: &Document, kind: RuleKind, tick: DateTime<Utc>) -> Vec<Due> {
    let (after, until) = window(tick);
    due_between(doc, kind, after, until)
}

/// Each scheduled rule of `plan` with its next due time after `now`.
pub fn next_runs(doc: &Document, plan: &str, now: DateTime<Utc>) -> Vec<(String, Option<DateTime<Utc>>)> {
    let Some(p) = doc.plans.get(plan) else {
        return Vec::new();
    };
    p.rules()
        .into_iter()
        .filter_map(|r| r.schedule.map(|s| (r.id.clone(), s.next_after(now))))
        .collect()
}

/// The restore-test rule `rule` (`restore_tests.<n>`) of `plan`, checked to be due at `at`: a restore-test run
/// started for a plan rule is one the document scheduled, never one a payload made up.
pub fn restore_test_due<'d>(
    doc: &'d Document,
    plan: &str,
    rule: &str,
    at: DateTime<Utc>,
) -> Result<&'d RestoreTestRule, String> {
    let p = doc
        .plans
        .get(plan)
        .ok_or_else(|| format!("the plan document in force has no plan `{plan}`"))?;
    let index: usize = rule
        .strip_prefix("restore_tests.")
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| format!("`{rule}` is not a restore-test rule (restore_tests.<n>)"))?;
    let r = p.restore_tests.get(index).ok_or_else(|| {
        format!(
            "plan `{plan}` has no rule `{rule}` ({} restore tests)",
            p.restore_tests.len()
        )
    })?;
    if !r.schedule.0.matches(at) {
        return Err(format!(
            "rule `{rule}` of plan `{plan}` ({}) is not due at {}",
            r.schedule.0,
            at.to_rfc3339()
        ));
    }
    Ok(r)
}

/// The refresh rule `name` of `plan` in the document in force: a refresh runs only what the document says.
pub fn refresh_rule<'d>(doc: &'d Document, plan: &str, name: &str) -> Result<&'d RefreshRule, String> {
    let p = doc
        .plans
        .get(plan)
        .ok_or_else(|| format!("the plan document in force has no plan `{plan}`"))?;
    p.refresh.iter().find(|r| r.name == name).ok_or_else(|| {
        let known: Vec<&str> = p.refresh.iter().map(|r| r.name.as_str()).collect();
        format!(
            "plan `{plan}` has no refresh `{name}` (it has: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )
    })
}

/// The scheduled refreshes a tick delivered at `tick` runs, each under its due time (`rule` is the refresh's
/// name), oldest first, then by plan and name. A refresh without a schedule runs only when asked.
pub fn refreshes_due_at_tick(doc: &Document, tick: DateTime<Utc>) -> Vec<Due> {
    let (after, until) = window(tick);
    let mut out = Vec::new();
    for (name, plan) in &doc.plans {
        for r in &plan.refresh {
            // Validated with the document; a schedule that does not parse is never due.
            let Some(schedule) = r.schedule.as_deref().and_then(|s| Schedule::parse(s).ok()) else {
                continue;
            };
            for at in schedule.due_between(after, until) {
                out.push(Due {
                    plan: name.clone(),
                    rule: r.name.clone(),
                    at,
                });
            }
        }
    }
    out.sort_by(|a, b| (a.at, &a.plan, &a.rule).cmp(&(b.at, &b.plan, &b.rule)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::document::parse;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn doc() -> Document {
        parse(
            br#"{"format": 1, "plans": {
              "product": {
                "snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 30}},
                "exports": {
                  "full": {"schedule": "0 2 * * *", "keep_days": 30},
                  "critical": {"schedule": "0 */6 * * *", "keep_days": 7, "include": ["users"]},
                  "embeddings": {"schedule": "0 1 * * SUN", "keep_days": 28, "include": ["context_chunks"]}}},
              "staging": {"snapshots": {"schedule": "30 2 * * *", "retention": {"daily": 14}}}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_tick_runs_what_fell_due_in_its_quarter_under_the_due_time() {
        let d = doc();
        let due = due_at_tick(&d, RuleKind::Export, at("2026-12-06T02:00:00Z"));
        let rules: Vec<&str> = due.iter().map(|d| d.rule.as_str()).collect();
        assert_eq!(rules, ["exports.full"]);
        // A tick delivered late stands for its own quarter: 02:07 is the 02:00 tick.
        assert_eq!(due_at_tick(&d, RuleKind::Export, at("2026-12-06T02:07:31Z")), due);
        // Sunday 2026-12-06 00:00: the 6-hourly run; 01:00: the weekly embeddings.
        let midnight = due_at_tick(&d, RuleKind::Export, at("2026-12-06T00:00:00Z"));
        assert_eq!(
            midnight.iter().map(|d| d.rule.as_str()).collect::<Vec<_>>(),
            ["exports.critical"]
        );
        let one = due_at_tick(&d, RuleKind::Export, at("2026-12-06T01:00:00Z"));
        assert_eq!(
            one.iter().map(|d| (d.rule.as_str(), d.at)).collect::<Vec<_>>(),
            [("exports.embeddings", at("2026-12-06T01:00:00Z"))]
        );
        assert!(due_at_tick(&d, RuleKind::Export, at("2026-12-06T01:15:00Z")).is_empty());
        let snaps = due_at_tick(&d, RuleKind::Snapshot, at("2026-12-06T02:30:00Z"));
        assert_eq!(snaps.iter().map(|d| d.plan.as_str()).collect::<Vec<_>>(), ["staging"]);
    }

    #[test]
    fn a_month_of_ticks_makes_each_due_run_exactly_once() {
        let d = doc();
        let start = at("2026-12-01T00:00:00Z");
        let mut runs = Vec::new();
        let mut t = start;
        while t < at("2027-01-01T00:00:00Z") {
            t += Duration::minutes(15);
            runs.extend(due_at_tick(&d, RuleKind::Export, t));
        }
        let count = |rule: &str| runs.iter().filter(|r| r.rule == rule).count();
        assert_eq!(count("exports.full"), 31);
        assert_eq!(count("exports.critical"), 31 * 4);
        // Sundays in December 2026: 6, 13, 20, 27.
        assert_eq!(count("exports.embeddings"), 4);
        assert_eq!(runs, due_between(&d, RuleKind::Export, start, t));
    }

    #[test]
    fn a_restore_test_run_must_be_one_the_plan_scheduled() {
        let d = parse(
            br#"{"format": 1, "plans": {"p": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 7}},
                "restore_tests": [{"schedule": "0 6 1 1,4,7,10 *", "from": "newest-snapshot"}]}}}"#,
        )
        .unwrap();
        assert!(restore_test_due(&d, "p", "restore_tests.0", at("2027-01-01T06:00:00Z")).is_ok());
        let e = |plan: &str, rule: &str, t: &str| restore_test_due(&d, plan, rule, at(t)).unwrap_err();
        assert!(e("p", "restore_tests.0", "2027-01-02T06:00:00Z").contains("is not due at 2027-01-02T06:00:00+00:00"));
        assert!(e("q", "restore_tests.0", "2027-01-01T06:00:00Z").contains("no plan `q`"));
        assert!(e("p", "restore_tests.1", "2027-01-01T06:00:00Z")
            .contains("has no rule `restore_tests.1` (1 restore tests)"));
        assert!(e("p", "snapshots", "2027-01-01T06:00:00Z").contains("not a restore-test rule"));
    }

    #[test]
    fn next_runs_list_each_scheduled_rule() {
        let d = doc();
        let next = next_runs(&d, "product", at("2026-12-06T02:00:00Z"));
        assert_eq!(
            next,
            vec![
                ("snapshots".to_owned(), Some(at("2026-12-07T02:00:00Z"))),
                ("exports.critical".to_owned(), Some(at("2026-12-06T06:00:00Z"))),
                ("exports.embeddings".to_owned(), Some(at("2026-12-13T01:00:00Z"))),
                ("exports.full".to_owned(), Some(at("2026-12-07T02:00:00Z"))),
            ]
        );
        assert!(next_runs(&d, "nope", at("2026-12-06T02:00:00Z")).is_empty());
    }

    #[test]
    fn a_tick_runs_the_refreshes_due_in_its_quarter_and_finds_a_rule_by_name() {
        let d = parse(
            br#"{"format": 1, "plans": {"prod": {
              "exports": {"full": {"schedule": "0 2 * * *", "keep_days": 7}},
              "refresh": [
                {"name": "staging", "from": "app-prod", "export": "full", "schedule": "0 4 * * MON-FRI",
                 "into": {"instance": "staging-db", "database": "app"}},
                {"name": "qa", "from": "app-prod", "export": "full",
                 "into": {"instance": "qa-db", "database": "app"}}]}}}"#,
        )
        .unwrap();
        // Monday 2026-12-07 04:00, delivered late: the 04:00 run, named by its due time.
        let due = refreshes_due_at_tick(&d, at("2026-12-07T04:09:00Z"));
        assert_eq!(
            due,
            [Due {
                plan: "prod".into(),
                rule: "staging".into(),
                at: at("2026-12-07T04:00:00Z")
            }]
        );
        assert!(refreshes_due_at_tick(&d, at("2026-12-07T04:15:00Z")).is_empty());
        // Sunday: not due; the unscheduled `qa` never is.
        assert!(refreshes_due_at_tick(&d, at("2026-12-06T04:00:00Z")).is_empty());
        assert_eq!(refresh_rule(&d, "prod", "qa").unwrap().into.instance, "qa-db");
        assert_eq!(
            refresh_rule(&d, "prod", "dev").unwrap_err(),
            "plan `prod` has no refresh `dev` (it has: staging, qa)"
        );
        assert!(refresh_rule(&d, "other", "qa").unwrap_err().contains("no plan `other`"));
    }
}
