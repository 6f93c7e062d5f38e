//! The rules of the evidence report, pure: how many backups a day a threshold implies, which days are gaps,
//! how old the newest backup got each day, each database's verdict and the fleet summary.
//!
//! In plan mode the expected backups of each day are the due times of the plan versions in force that day
//! ([`super::planned`]), handed in as a [`SeriesSpec`]'s `planned` counts, and nothing is inferred from a threshold.
//! In legacy mode expected backups come from monitor's thresholds, because they are the policy Lifeboat enforces
//! (the alarms fire on them); schedules live in the template, where no function reads them. A threshold of T hours up to
//! 25 is a schedule every T-1 hours or more often (monitor's thresholds are the interval plus at least an hour
//! of slack: `full=26` for a daily export, `critical=7` for one every 6 hours), so a day expects
//! `floor(24 / (T-1))` of them. A longer threshold (weekly, say) expects one on a day by whose end the newest
//! would otherwise be older than T.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::period::Period;
use super::report::{
    Day, DayStatus, DbReport, ExportFact, Facts, FleetSummary, OldestTest, PlanSection, PolicyView, Report,
    RestoreTestFact, Series, SeriesKind, Verdict, WorstRpo, FORMAT_VERSION,
};
use crate::monitoring::monitor::{self, Observed, Policy, Thresholds};

/// How many backups a day a threshold of `threshold_hours` implies; `None` for thresholds longer than a day
/// and an hour (see the module's doc).
pub fn expected_per_day(threshold_hours: f64) -> Option<u32> {
    if threshold_hours > 25.0 {
        return None;
    }
    let interval = (threshold_hours - 1.0).max(1.0);
    Some(((24.0 / interval).floor() as u32).clamp(1, 24))
}

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

fn hours(d: Duration) -> f64 {
    d.num_seconds() as f64 / 3600.0
}

/// The oldest the newest of `times` (sorted) got during `[start, end)`, in hours: just before each backup of
/// the day arrived, and at the day's end. `None` while nothing was ever made.
pub fn worst_age(times: &[DateTime<Utc>], start: DateTime<Utc>, end: DateTime<Utc>) -> Option<f64> {
    let mut last = times.iter().rev().find(|t| **t < start).copied();
    let mut worst: Option<f64> = None;
    for t in times.iter().filter(|t| **t >= start && **t < end) {
        if let Some(prev) = last {
            worst = Some(worst.unwrap_or(0.0).max(hours(*t - prev)));
        }
        last = Some(*t);
    }
    last.map(|prev| worst.unwrap_or(0.0).max(hours(end - prev)))
}

/// How the days of one series are judged.
struct SeriesRule<'a> {
    times: &'a [DateTime<Utc>],
    threshold_hours: f64,
    per_day: Option<u32>,
    kept_from: Option<NaiveDate>,
}

impl SeriesRule<'_> {
    /// One day; `planned` is the plan's count of due times that day (plan mode), which replaces the threshold's.
    fn day(&self, date: NaiveDate, now: DateTime<Utc>, planned: Option<u32>) -> Day {
        let (start, end) = (day_start(date), day_start(date) + Duration::days(1));
        let count = self.times.iter().filter(|t| **t >= start && **t < end).count() as u32;
        let worst_age_hours = (start < now)
            .then(|| worst_age(self.times, start, end.min(now)))
            .flatten();
        let status = if end > now {
            DayStatus::NotYet
        } else if self.kept_from.is_some_and(|k| date < k) {
            DayStatus::NotKept
        } else {
            DayStatus::Met
        };
        let expected = match (status, planned, self.per_day) {
            (DayStatus::Met, Some(n), _) => n,
            (DayStatus::Met, None, Some(n)) => n,
            (DayStatus::Met, None, None) => {
                let last = self.times.iter().rev().find(|t| **t < start);
                u32::from(last.is_none_or(|t| *t + Duration::seconds((self.threshold_hours * 3600.0) as i64) < end))
            }
            _ => 0,
        };
        let missed = expected.saturating_sub(count);
        Day {
            date,
            count,
            status: if missed > 0 { DayStatus::Gap } else { status },
            missed,
            expected: planned,
            worst_age_hours,
        }
    }
}

/// One series of a database as the report judges it: what it is, the age its newest backup may reach and, in
/// plan mode, how many backups the plan scheduled on each day of the period and the rule's schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSpec {
    pub kind: SeriesKind,
    /// `snapshots`, or the export profile.
    pub name: String,
    pub threshold_hours: f64,
    /// Plan mode: expected backups per day of the period (`None`: inferred from the threshold, legacy mode).
    pub planned: Option<Vec<u32>>,
    pub schedule: Option<String>,
}

/// What one database is judged against: its series, its thresholds (restore tests, retention, PITR) and, in plan
/// mode, its plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub series: Vec<SeriesSpec>,
    pub thresholds: Thresholds,
    pub plan: Option<String>,
}

impl Judged {
    /// Legacy mode: the one policy, for every database.
    pub fn legacy(policy: &Policy) -> Self {
        let mut series = vec![SeriesSpec {
            kind: SeriesKind::Snapshot,
            name: "snapshots".to_owned(),
            threshold_hours: policy.snapshot_max_age_s / 3600.0,
            planned: None,
            schedule: None,
        }];
        series.extend(policy.export_max_age_s.iter().map(|(profile, max)| SeriesSpec {
            kind: SeriesKind::Export,
            name: profile.clone(),
            threshold_hours: max / 3600.0,
            planned: None,
            schedule: None,
        }));
        Self {
            series,
            thresholds: policy.thresholds(),
            plan: None,
        }
    }
}

/// One series over the period's days.
fn series(
    spec: &SeriesSpec,
    times: &[DateTime<Utc>],
    horizon: Option<NaiveDate>,
    days: &[NaiveDate],
    now: DateTime<Utc>,
) -> Series {
    let (kind, name, threshold_hours) = (spec.kind, spec.name.as_str(), spec.threshold_hours);
    let oldest = times.first().map(DateTime::date_naive);
    let kept_from = match (oldest, horizon) {
        (Some(o), Some(h)) => Some(o.max(h)),
        (o, _) => o,
    };
    let planned = spec.planned.as_deref();
    let rule = SeriesRule {
        times,
        threshold_hours,
        per_day: if planned.is_some() {
            None
        } else {
            expected_per_day(threshold_hours)
        },
        kept_from,
    };
    Series {
        kind,
        name: name.to_owned(),
        threshold_hours,
        schedule: spec.schedule.clone(),
        per_day: rule.per_day,
        kept_from,
        days: days
            .iter()
            .enumerate()
            .map(|(i, d)| rule.day(*d, now, planned.map(|p| p.get(i).copied().unwrap_or(0))))
            .collect(),
    }
}

/// The first day of the snapshots' daily window: older days hold only the weekly, monthly and yearly snapshots
/// retention keeps, so a day without one there is retention at work, not a miss.
fn snapshot_horizon(retention: Option<&str>, now: DateTime<Utc>) -> Option<NaiveDate> {
    let gfs = crate::rds::retention::policy_of(retention?)?;
    Some(now.date_naive() - Duration::days(i64::from(gfs.daily.max(1)) - 1))
}

fn all_series(f: &Facts, judged: &Judged, days: &[NaiveDate], now: DateTime<Utc>) -> Vec<Series> {
    let horizon = snapshot_horizon(f.retention.as_deref(), now);
    judged
        .series
        .iter()
        .map(|spec| {
            let mut times: Vec<_> = match spec.kind {
                SeriesKind::Snapshot => f.snapshots.clone(),
                SeriesKind::Export => f
                    .exports
                    .iter()
                    .filter(|e| e.profile == spec.name)
                    .map(|e| e.at)
                    .collect(),
            };
            times.sort();
            let horizon = (spec.kind == SeriesKind::Snapshot).then_some(horizon).flatten();
            series(spec, &times, horizon, days, now)
        })
        .collect()
}

fn plural(n: u32, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// What one series contributes to the verdict: nothing kept at all, or its gaps, consecutive days together.
fn series_reasons(s: &Series) -> Vec<String> {
    let noun = match s.kind {
        SeriesKind::Snapshot => "missed snapshot".to_owned(),
        SeriesKind::Export => format!("missed `{}` export", s.name),
    };
    if s.kept_from.is_none() {
        return vec![format!("no {} at all", &noun["missed ".len()..])];
    }
    let mut runs: Vec<(NaiveDate, NaiveDate, u32)> = Vec::new();
    for d in s.days.iter().filter(|d| d.status == DayStatus::Gap) {
        match runs.last_mut() {
            Some((_, last, missed)) if *last + Duration::days(1) == d.date => {
                *last = d.date;
                *missed += d.missed;
            }
            _ => runs.push((d.date, d.date, d.missed)),
        }
    }
    runs.into_iter()
        .map(|(first, last, missed)| match first == last {
            true => format!("{} on {first}", plural(missed, &noun)),
            false => format!("{} from {first} to {last}", plural(missed, &noun)),
        })
        .collect()
}

/// The newest restore test on record at `at`, and what the policy makes of it. `max_age_s` is `None` when the
/// plan has no restore test: nothing is expected then.
fn restore_reason(tests: &[RestoreTestFact], max_age_s: Option<f64>, at: DateTime<Utc>) -> Option<String> {
    let max_age_s = max_age_s?;
    let newest = tests.iter().filter(|t| t.at <= at).max_by_key(|t| t.at);
    let Some(t) = newest else {
        return Some("no restore test on record".to_owned());
    };
    let max_days = max_age_s / 86400.0;
    if monitor::age_s(at, t.at) > max_age_s {
        return Some(format!(
            "no restore test within {max_days:.0} days (the last on {})",
            t.at.date_naive()
        ));
    }
    (!t.passed).then(|| format!("the last restore test ({}) failed", t.at.date_naive()))
}

/// How many reasons the verdict line spells out; the JSON keeps them all.
const REASONS_SHOWN: usize = 6;

pub fn verdict(reasons: Vec<String>) -> Verdict {
    if reasons.is_empty() {
        return Verdict {
            meets_policy: true,
            line: "meets its policy".to_owned(),
            reasons,
        };
    }
    let mut shown: Vec<&str> = reasons.iter().take(REASONS_SHOWN).map(String::as_str).collect();
    let more = reasons.len().saturating_sub(REASONS_SHOWN);
    let tail = format!("and {more} more");
    if more > 0 {
        shown.push(&tail);
    }
    Verdict {
        meets_policy: false,
        line: format!("does not: {}", shown.join("; ")),
        reasons,
    }
}

/// Findings a human must see, and which of them break the policy (deletion protection is advice: no alarm).
fn findings(f: &Facts, thresholds: &Thresholds, now: DateTime<Utc>) -> (Vec<String>, Vec<String>) {
    // The series say more precisely when there is no backup at all, so that finding is left to them.
    let observed = Observed {
        snapshot_age_s: Some(0.0),
        storage_encrypted: f.backup.encrypted,
        unencrypted_snapshots: f.unencrypted_snapshots,
        ..Default::default()
    };
    let mut breaking = monitor::attention(&f.db, &observed);
    breaking.extend(monitor::compliance_for(&f.db, &f.backup, thresholds, now));
    let mut all = breaking.clone();
    if !f.backup.deletion_protection {
        all.push(format!("{}: deletion protection is off", f.db));
    }
    (all, breaking)
}

fn in_period<T>(items: &[T], at: impl Fn(&T) -> DateTime<Utc>, p: &Period) -> Vec<T>
where
    T: Clone,
{
    let (start, end) = (p.start_time(), p.end_time());
    let mut out: Vec<T> = items
        .iter()
        .filter(|i| at(i) >= start && at(i) < end)
        .cloned()
        .collect();
    out.sort_by_key(|i| at(i));
    out
}

fn policy_view(f: &Facts, judged: &Judged) -> PolicyView {
    let t = &judged.thresholds;
    PolicyView {
        plan: judged.plan.clone(),
        snapshot_max_age_hours: t.snapshot_max_age_s.map(|s| s / 3600.0),
        export_max_age_hours: t
            .export_max_age_s
            .iter()
            .map(|(k, v)| (k.clone(), v / 3600.0))
            .collect(),
        restore_test_max_age_days: t.restore_test_max_age_s.map(|s| s / 86400.0),
        pitr_lag_max_minutes: t.pitr_lag_max_s.map(|s| s / 60.0),
        min_retention_days: t.min_retention_days,
        snapshot_retention: f.retention.clone(),
    }
}

/// Verified RPO at `at`: the age in hours of the newest recovery point a restore test that passed by then proved.
pub fn verified_rpo_hours(f: &Facts, at: DateTime<Utc>) -> Option<f64> {
    f.restore_tests
        .iter()
        .filter(|t| t.passed && t.at <= at)
        .filter_map(|t| t.recovery_point_time)
        .max()
        .map(|p| (at - p).num_seconds().max(0) as f64 / 3600.0)
}

/// The age in hours at `at` of the newest snapshot or export taken by then.
fn newest_backup_age_hours(f: &Facts, at: DateTime<Utc>) -> Option<f64> {
    f.snapshots
        .iter()
        .copied()
        .chain(f.exports.iter().map(|e| e.at))
        .filter(|t| *t <= at)
        .max()
        .map(|t| (at - t).num_seconds().max(0) as f64 / 3600.0)
}

/// One database's part of the report, judged against `judged`.
pub fn database(f: &Facts, judged: &Judged, period: &Period, now: DateTime<Utc>) -> DbReport {
    let days = period.days();
    let series = all_series(f, judged, &days, now);
    let mut reasons: Vec<String> = series.iter().flat_map(series_reasons).collect();
    let at = now.min(period.end_time());
    reasons.extend(restore_reason(
        &f.restore_tests,
        judged.thresholds.restore_test_max_age_s,
        at,
    ));
    let (findings, breaking) = findings(f, &judged.thresholds, now);
    reasons.extend(breaking);
    DbReport {
        db: f.db.clone(),
        kind: f.kind,
        policy: policy_view(f, judged),
        series,
        restore_tests: in_period(&f.restore_tests, |t: &RestoreTestFact| t.at, period),
        verified_rpo_hours: verified_rpo_hours(f, at),
        newest_backup_age_hours: newest_backup_age_hours(f, at),
        exports: in_period(&f.exports, |e: &ExportFact| e.at, period),
        findings,
        verdict: verdict(reasons),
    }
}

fn summary(dbs: &[DbReport], facts: &[Facts]) -> FleetSummary {
    let newest_test = |f: &Facts| f.restore_tests.iter().map(|t| t.at).max();
    let oldest_restore_test = facts
        .iter()
        .min_by_key(|f| (newest_test(f).is_some(), newest_test(f)))
        .map(|f| OldestTest {
            db: f.db.clone(),
            at: newest_test(f),
        });
    let worst_rpo = dbs
        .iter()
        .flat_map(|d| d.restore_tests.iter().map(move |t| (d, t)))
        .filter_map(|(d, t)| Some((d, t, t.rpo_seconds?)))
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(d, t, rpo)| WorstRpo {
            db: d.db.clone(),
            rpo_hours: rpo / 3600.0,
            at: t.at,
        });
    let mut needs_a_human: Vec<String> = dbs
        .iter()
        .filter(|d| !d.verdict.meets_policy)
        .map(|d| format!("{} {}", d.db, d.verdict.line))
        .collect();
    needs_a_human.extend(
        dbs.iter()
            .flat_map(|d| d.findings.iter().filter(|f| !d.verdict.reasons.contains(f)).cloned()),
    );
    FleetSummary {
        databases_covered: dbs.len(),
        policies_met: dbs.iter().filter(|d| d.verdict.meets_policy).count(),
        oldest_restore_test,
        worst_rpo,
        needs_a_human,
    }
}

/// The whole report over the gathered facts, every database judged by the one legacy policy: the databases that
/// do not meet their policy first (what a reader must see), each group in name order.
pub fn build(facts: &[Facts], policy: &Policy, period: &Period, now: DateTime<Utc>) -> Report {
    let judged = Judged::legacy(policy);
    build_with(facts, |_| judged.clone(), None, period, now)
}

/// The whole report, each database judged by `judge` (plan mode: by its plan, [`super::planned`]), with plan
/// mode's section.
pub fn build_with(
    facts: &[Facts],
    judge: impl Fn(&Facts) -> Judged,
    plan: Option<PlanSection>,
    period: &Period,
    now: DateTime<Utc>,
) -> Report {
    let mut facts = facts.to_vec();
    facts.sort_by(|a, b| a.db.cmp(&b.db));
    let mut databases: Vec<DbReport> = facts.iter().map(|f| database(f, &judge(f), period, now)).collect();
    databases.sort_by_key(|d| d.verdict.meets_policy);
    let mut summary = summary(&databases, &facts);
    if let Some(p) = &plan {
        summary
            .needs_a_human
            .extend(p.unplanned.iter().map(|db| crate::monitoring::plan::unplanned_note(db)));
        summary.needs_a_human.extend(p.conflicts.iter().cloned());
    }
    Report {
        format_version: FORMAT_VERSION,
        lifeboat_version: crate::core::VERSION.to_owned(),
        generated_at: now,
        period: period.clone(),
        days: period.days(),
        summary,
        databases,
        deselected: Vec::new(),
        anomalies: Vec::new(),
        plan,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::evidence::report::fixtures::{at, fleet, now, policy};
    use proptest::prelude::*;

    fn report() -> Report {
        build(&fleet(), &policy(), &Period::parse(None, now()).unwrap(), now())
    }

    #[test]
    fn a_deselected_database_is_listed_and_needs_a_human() {
        let mut r = report();
        let before = r.summary.needs_a_human.len();
        r.add_deselected("old-billing");
        assert_eq!(r.deselected, ["old-billing"]);
        assert_eq!(r.summary.needs_a_human.len(), before + 1);
        assert!(r.summary.needs_a_human[before].starts_with("old-billing: no longer selected for backup"));
    }

    fn db<'a>(r: &'a Report, name: &str) -> &'a DbReport {
        r.databases.iter().find(|d| d.db == name).unwrap()
    }

    fn gaps(d: &DbReport, series: &str) -> Vec<(String, u32)> {
        let s = d.series.iter().find(|s| s.name == series).unwrap();
        s.days
            .iter()
            .filter(|d| d.status == DayStatus::Gap)
            .map(|d| (d.date.to_string(), d.missed))
            .collect()
    }

    #[test]
    fn the_verified_rpo_is_the_age_of_the_newest_point_a_passed_test_proved() {
        let facts = fleet();
        // app-prod's test of 11-10 proved 11-09 02:00; its failed test of 11-20 proves nothing.
        assert_eq!(verified_rpo_hours(&facts[0], at(11, 21, 3)), Some(12.0 * 24.0 + 1.0));
        assert_eq!(verified_rpo_hours(&facts[1], at(11, 21, 3)), Some(8.0 * 24.0 + 1.0));
        assert_eq!(
            verified_rpo_hours(&facts[0], at(11, 1, 0)),
            None,
            "no test passed by then"
        );
        let r = report();
        let app = db(&r, "app-prod");
        assert!(app.verified_rpo_hours.unwrap() > app.newest_backup_age_hours.unwrap());
    }

    #[test]
    fn thresholds_imply_backups_per_day() {
        assert_eq!(expected_per_day(26.0), None);
        assert_eq!(expected_per_day(25.0), Some(1));
        assert_eq!(expected_per_day(7.0), Some(4));
        assert_eq!(expected_per_day(13.0), Some(2));
        assert_eq!(expected_per_day(2.0), Some(24));
        assert_eq!(expected_per_day(0.5), Some(24));
    }

    #[test]
    fn gaps_are_the_days_the_policy_expected_more() {
        let r = report();
        let app = db(&r, "app-prod");
        assert_eq!(gaps(app, "snapshots"), [("2026-11-03".to_owned(), 1)]);
        assert_eq!(gaps(app, "full"), [("2026-11-03".to_owned(), 1)]);
        assert_eq!(gaps(app, "critical"), [("2026-11-25".to_owned(), 3)]);
        // Before the oldest kept export there is no evidence either way: not kept, never missed.
        let full = app.series.iter().find(|s| s.name == "full").unwrap();
        assert_eq!(full.kept_from, Some(at(11, 1, 0).date_naive()));
        assert_eq!(full.days[0].status, DayStatus::NotKept);
        // The age chart's numbers: 46 hours at the end of the missed day, 48 when the next one arrived.
        let snaps = &app.series[0];
        let day = |d: u32| snaps.days.iter().find(|x| x.date == at(11, d, 0).date_naive()).unwrap();
        assert_eq!(day(3).worst_age_hours, Some(46.0));
        assert_eq!(day(4).worst_age_hours, Some(48.0));
        assert_eq!(day(5).worst_age_hours, Some(24.0));
        assert_eq!((day(5).count, day(5).status), (1, DayStatus::Met));
    }

    #[test]
    fn verdicts_name_every_gap_and_the_failed_test() {
        let r = report();
        assert_eq!(
            db(&r, "app-prod").verdict.line,
            "does not: 1 missed snapshot on 2026-11-03; 3 missed `critical` exports on 2026-11-25; \
             1 missed `full` export on 2026-11-03; the last restore test (2026-11-20) failed"
        );
        assert_eq!(
            db(&r, "billing").verdict.line,
            "does not: no `critical` export at all; no `full` export at all"
        );
        let ok = db(&r, "<script>alert(1)</script>");
        assert_eq!(ok.verdict.line, "meets its policy");
        assert!(ok.verdict.meets_policy);
        assert_eq!(db(&r, "billing").findings, ["billing: deletion protection is off"]);
    }

    #[test]
    fn the_fleet_summary_counts_and_points_at_the_worst() {
        let s = report().summary;
        assert_eq!((s.databases_covered, s.policies_met), (3, 1));
        let oldest = s.oldest_restore_test.unwrap();
        assert_eq!(
            (oldest.db.as_str(), oldest.at),
            ("<script>alert(1)</script>", Some(at(11, 12, 3)))
        );
        let worst = s.worst_rpo.unwrap();
        assert_eq!((worst.db.as_str(), worst.rpo_hours), ("billing", 49.0));
        assert_eq!(s.needs_a_human.len(), 3, "{:?}", s.needs_a_human);
        let order: Vec<String> = report().databases.into_iter().map(|d| d.db).collect();
        assert_eq!(
            order,
            ["app-prod", "billing", "<script>alert(1)</script>"],
            "those that do not meet their policy first"
        );
        assert!(s.needs_a_human[0].starts_with("app-prod does not: 1 missed snapshot"));
        assert_eq!(s.needs_a_human[2], "billing: deletion protection is off");
    }

    #[test]
    fn an_old_or_missing_restore_test_breaks_the_policy_and_long_verdicts_are_cut() {
        let p = Some(policy().restore_test_max_age_s);
        assert_eq!(restore_reason(&[], p, now()).unwrap(), "no restore test on record");
        assert_eq!(
            restore_reason(&[], None, now()),
            None,
            "a plan without restore tests expects none"
        );
        let old = crate::evidence::report::fixtures::test(at(7, 1, 3), true, 10.0, 1.0);
        assert_eq!(
            restore_reason(&[old], p, now()).unwrap(),
            "no restore test within 100 days (the last on 2026-07-01)"
        );
        let v = verdict((1..=8).map(|i| format!("r{i}")).collect());
        assert_eq!(v.line, "does not: r1; r2; r3; r4; r5; r6; and 2 more");
        assert_eq!(v.reasons.len(), 8);
    }

    #[test]
    fn consecutive_gap_days_make_one_reason() {
        let mut facts = fleet();
        facts[0].snapshots.retain(|t| !(at(11, 6, 0)..at(11, 9, 0)).contains(t));
        let r = build(&facts, &policy(), &Period::parse(None, now()).unwrap(), now());
        assert_eq!(
            db(&r, "app-prod").verdict.reasons[..2],
            [
                "1 missed snapshot on 2026-11-03",
                "3 missed snapshots from 2026-11-06 to 2026-11-08"
            ]
        );
    }

    #[test]
    fn days_not_over_are_not_judged() {
        let p = Period::parse(Some("2026-11"), now()).unwrap();
        let r = build(&fleet(), &policy(), &p, now());
        let snaps = &db(&r, "billing").series[0];
        assert_eq!(snaps.days.last().unwrap().status, DayStatus::NotYet);
        assert_eq!(
            snaps.days[28].status,
            DayStatus::NotYet,
            "today, 2026-11-29, is not over"
        );
        assert_eq!(snaps.days[27].status, DayStatus::Met);
    }

    proptest! {
        /// Whatever the history: a gap day is a judged day with fewer backups than expected, and one more
        /// backup never makes more missed ones.
        #[test]
        fn gaps_are_shortfalls_and_more_backups_never_miss_more(
            hours in proptest::collection::btree_set(0i64..(40 * 24), 0..60),
            extra in 0i64..(40 * 24),
            threshold in prop_oneof![Just(7.0), Just(13.0), Just(26.0), Just(170.0)],
        ) {
            let start = at(10, 20, 0);
            let times: Vec<_> = hours.iter().map(|h| start + Duration::hours(*h)).collect();
            let period = Period::parse(None, now()).unwrap();
            let days = period.days();
            let spec = SeriesSpec {
                kind: SeriesKind::Export,
                name: "p".to_owned(),
                threshold_hours: threshold,
                planned: None,
                schedule: None,
            };
            let s = series(&spec, &times, None, &days, now());
            for d in &s.days {
                if d.status == DayStatus::Gap {
                    prop_assert!(d.missed > 0);
                    prop_assert!(s.kept_from.is_none_or(|k| d.date >= k));
                    if let Some(n) = s.per_day { prop_assert_eq!(d.missed, n - d.count); }
                }
            }
            let mut more = times.clone();
            more.push(start + Duration::hours(extra));
            more.sort();
            // Judged on the same days: an earlier oldest backup brings days into view, which is not a miss.
            let judged = |d: &&Day| s.kept_from.is_none_or(|k| d.date >= k);
            let before = s.days.iter().filter(judged).map(|d| d.missed).sum::<u32>();
            let s2 = series(&spec, &more, None, &days, now());
            let after = s2.days.iter().filter(judged).map(|d| d.missed).sum::<u32>();
            prop_assert!(after <= before, "{} > {}", after, before);
        }
    }
}
