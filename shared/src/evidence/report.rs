//! The evidence report's shape: what one report holds per database and for the fleet, serialised as its JSON.
//!
//! Plain data only, in its own file so that the rules that build it ([`super::rules`]), the page that shows it
//! ([`super::html`]) and the adapter that gathers its facts ([`super::gather`]) all stand on it without importing
//! each other. It must never compute a verdict or read anything.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::rds::described::BackupDetails;

use super::period::Period;

/// The format of the JSON report; raised when a field changes meaning.
pub const FORMAT_VERSION: u32 = 1;

/// What a report covers. Caches (ElastiCache replication groups) join as another kind when they are backed up:
/// the rules only need their series, restore tests and findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectKind {
    RdsInstance,
    AuroraCluster,
}

/// One complete export, from its manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportFact {
    pub profile: String,
    /// The export's logical time (its key's).
    pub at: DateTime<Utc>,
    /// Stored size and duration: `None` when only the key was read (outside the period).
    pub stored_bytes: Option<u64>,
    pub duration_seconds: Option<f64>,
}

/// One restore test, from its report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreTestFact {
    pub at: DateTime<Utc>,
    /// Passed only when its report says `"passed": true` ([`crate::monitoring::monitor::restore_test_passed`]).
    pub passed: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    /// Why it failed, as its report says.
    pub error: Option<String>,
    /// The report's key.
    pub key: String,
    /// When the recovery point it tested stands for (the report's `recovery_point_time`, else its
    /// `snapshot_time`): a passed test's is what the verified RPO is measured from.
    pub recovery_point_time: Option<DateTime<Utc>>,
}

/// Everything gathered about one database.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub db: String,
    pub kind: SubjectKind,
    /// Times of its available snapshots (a Lifeboat snapshot's schedule time; RDS's creation time otherwise).
    pub snapshots: Vec<DateTime<Utc>>,
    pub unencrypted_snapshots: usize,
    /// The `lifeboat:policy` tag of its newest scheduled Lifeboat snapshot (the GFS retention it was made under).
    pub retention: Option<String>,
    pub exports: Vec<ExportFact>,
    pub restore_tests: Vec<RestoreTestFact>,
    pub backup: BackupDetails,
}

/// The report: the JSON is this, serialised; the HTML is drawn from it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub lifeboat_version: String,
    pub generated_at: DateTime<Utc>,
    pub period: Period,
    pub days: Vec<NaiveDate>,
    pub summary: FleetSummary,
    pub databases: Vec<DbReport>,
    /// Databases Lifeboat watched that still exist and are no longer selected, their de-selection not yet
    /// confirmed by a person (monitor's rule, `crate::monitoring::monitor::plan_alarms`): a finding, never silently dropped.
    pub deselected: Vec<String>,
    /// The content watch's anomalies of the period (seen in it, acknowledged in it, or still open), what each
    /// held, and who acknowledged it, when and why ([`AnomalyEvidence::in_period`]).
    pub anomalies: Vec<AnomalyEvidence>,
    /// Plan mode only: which plan version was in force each day, and the databases no plan backs up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanSection>,
}

/// A plan version as the report names it: its label (12 hex digits of its SHA-256), S3 version id and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionRef {
    pub label: String,
    pub version_id: String,
    pub modified: DateTime<Utc>,
}

/// The plan versions in force on one day: the one in force at its start, then each valid one written during it.
/// Empty: no valid version was in force (nothing was expected that day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanDay {
    pub date: NaiveDate,
    pub versions: Vec<VersionRef>,
}

/// Plan mode's part of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanSection {
    /// `s3://bucket/key` of the plan document.
    pub document: String,
    pub days: Vec<PlanDay>,
    /// Databases in no plan at the period's end (and in none during it).
    pub unplanned: Vec<String>,
    /// Databases whose plan cannot be decided at the period's end, each with both names.
    pub conflicts: Vec<String>,
    /// Databases their plan deliberately does not back up, with the plan and the reason.
    pub not_backed_up: Vec<String>,
}

impl Report {
    /// Adds a database that was de-selected and not confirmed: listed, and a finding that needs a human.
    /// Adds the period's content anomalies (those [`AnomalyEvidence::in_period`] keeps); an open one needs a
    /// human.
    pub fn add_anomalies(&mut self, records: &[(String, crate::watch::record::Anomaly)]) {
        for (key, a) in records {
            if !AnomalyEvidence::in_period(a, &self.period) {
                continue;
            }
            if a.is_open() {
                self.summary.needs_a_human.push(format!(
                    "{}: an open content anomaly in `{}` holds {} snapshot(s) and {} export(s) until acknowledged ({key})",
                    a.resource,
                    a.series,
                    a.held.snapshots.len(),
                    a.held.manifests.len()
                ));
            }
            self.anomalies.push(AnomalyEvidence {
                key: key.clone(),
                resource: a.resource.clone(),
                series: a.series.clone(),
                seen_at: a.seen_at,
                findings: a.findings.iter().map(|f| f.line.clone()).collect(),
                held_snapshots: a.held.snapshots.clone(),
                held_manifests: a.held.manifests.clone(),
                acknowledged: a.acknowledged.clone(),
            });
        }
        self.anomalies
            .sort_by(|a, b| (a.seen_at, &a.key).cmp(&(b.seen_at, &b.key)));
    }

    pub fn add_deselected(&mut self, db: &str) {
        self.deselected.push(db.to_owned());
        self.summary
            .needs_a_human
            .push(crate::monitoring::monitor::deselection_note(db, "database", db));
    }
}

/// One content anomaly as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyEvidence {
    pub key: String,
    pub resource: String,
    pub series: String,
    pub seen_at: DateTime<Utc>,
    /// The findings' lines (`public.users: 12,030 rows ..., -31%`).
    pub findings: Vec<String>,
    pub held_snapshots: Vec<String>,
    pub held_manifests: Vec<String>,
    pub acknowledged: Option<crate::watch::record::Acknowledgement>,
}

impl AnomalyEvidence {
    /// An anomaly belongs to a period when it was seen in it, acknowledged in it, or is still open and was seen
    /// before its end.
    pub fn in_period(a: &crate::watch::record::Anomaly, p: &Period) -> bool {
        let within = |t: DateTime<Utc>| t >= p.start_time() && t < p.end_time();
        within(a.seen_at)
            || a.acknowledged.as_ref().is_some_and(|ack| within(ack.at))
            || (a.is_open() && a.seen_at < p.end_time())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetSummary {
    pub databases_covered: usize,
    pub policies_met: usize,
    /// The database whose newest restore test is oldest (never tested comes first).
    pub oldest_restore_test: Option<OldestTest>,
    /// The largest RPO a restore test measured in the period.
    pub worst_rpo: Option<WorstRpo>,
    pub needs_a_human: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OldestTest {
    pub db: String,
    /// `None`: never tested.
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorstRpo {
    pub db: String,
    pub rpo_hours: f64,
    pub at: DateTime<Utc>,
}

/// The written policy of one database, as monitor and snapshot know it (in plan mode, its plan's at the period's
/// end; a threshold the plan does not have is `null`).
#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    /// Plan mode: the plan it followed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    pub snapshot_max_age_hours: Option<f64>,
    pub export_max_age_hours: BTreeMap<String, f64>,
    pub restore_test_max_age_days: Option<f64>,
    pub pitr_lag_max_minutes: Option<f64>,
    pub min_retention_days: Option<f64>,
    /// GFS retention of its snapshots, from their `lifeboat:policy` tag.
    pub snapshot_retention: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DbReport {
    pub db: String,
    pub kind: SubjectKind,
    pub policy: PolicyView,
    /// Snapshots first, then one series per export profile.
    pub series: Vec<Series>,
    pub restore_tests: Vec<RestoreTestFact>,
    /// Verified RPO at the period's end (or now, for the period under way): the age in hours of the newest
    /// recovery point a passed restore test proved; `None` when none passed.
    pub verified_rpo_hours: Option<f64>,
    /// Beside it, the age in hours of the newest backup taken (snapshot or export) at the same moment.
    pub newest_backup_age_hours: Option<f64>,
    /// Exports made in the period (with their manifests' size and duration), oldest first.
    pub exports: Vec<ExportFact>,
    pub findings: Vec<String>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeriesKind {
    Snapshot,
    Export,
}

/// One kind of backup of a database over the period, day by day.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub kind: SeriesKind,
    /// `snapshots`, or the export profile.
    pub name: String,
    pub threshold_hours: f64,
    /// Plan mode: the rule's schedule (UTC cron) in the version in force at the period's end; each day's
    /// `expected` counts its due times under the version in force at each of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// How many a day the threshold implies (see [`super::rules::expected_per_day`]); `None`: one whenever the newest
    /// would otherwise pass its threshold by the day's end (thresholds longer than a day).
    pub per_day: Option<u32>,
    /// The first day whose backups are still kept (the oldest kept backup's, or the snapshot retention's daily
    /// window); `None` when nothing is kept at all.
    pub kept_from: Option<NaiveDate>,
    pub days: Vec<Day>,
}

/// One day of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub count: u32,
    pub status: DayStatus,
    /// Expected backups that did not happen (only on a gap).
    pub missed: u32,
    /// Plan mode: how many the plan versions in force scheduled that day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<u32>,
    /// The oldest the newest backup got during the day, in hours; `None` before the first backup known.
    pub worst_age_hours: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DayStatus {
    /// Everything the policy expected is there.
    Met,
    /// The policy expected more than there is.
    Gap,
    /// Before the oldest kept backup: no evidence either way.
    NotKept,
    /// The day is not over (or not begun).
    NotYet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub meets_policy: bool,
    /// `meets its policy` or `does not: ...`.
    pub line: String,
    /// Each reason, on its own.
    pub reasons: Vec<String>,
}

/// A small fleet with history, shared by the rules' and the page's tests.
#[cfg(test)]
pub(crate) mod fixtures {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::monitoring::monitor::Policy;
    use chrono::{Duration, TimeZone};

    pub fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 16, 50, 0).unwrap()
    }

    pub fn at(m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap()
    }

    pub fn policy() -> Policy {
        Policy {
            snapshot_max_age_s: 26.0 * 3600.0,
            export_max_age_s: [
                ("full".to_owned(), 26.0 * 3600.0),
                ("critical".to_owned(), 7.0 * 3600.0),
            ]
            .into_iter()
            .collect(),
            restore_test_max_age_s: 100.0 * 86400.0,
            pitr_lag_max_s: 900.0,
            min_retention_days: 7.0,
        }
    }

    fn daily(from: DateTime<Utc>, days: i64, skip: &[DateTime<Utc>]) -> Vec<DateTime<Utc>> {
        (0..days)
            .map(|i| from + Duration::days(i))
            .filter(|t| !skip.contains(t))
            .collect()
    }

    pub fn healthy_backup() -> BackupDetails {
        BackupDetails {
            retention_days: Some(7),
            latest_restorable: Some(now() - Duration::minutes(5)),
            encrypted: true,
            deletion_protection: true,
        }
    }

    fn export(profile: &str, at: DateTime<Utc>) -> ExportFact {
        ExportFact {
            profile: profile.to_owned(),
            at,
            stored_bytes: Some(
                50 * 1024 * 1024 + u64::from(at.format("%d").to_string().parse::<u32>().unwrap()) * 1024 * 1024,
            ),
            duration_seconds: Some(40.0),
        }
    }

    pub fn test(at: DateTime<Utc>, passed: bool, rto_min: f64, rpo_h: f64) -> RestoreTestFact {
        RestoreTestFact {
            at,
            passed,
            rto_seconds: passed.then_some(rto_min * 60.0),
            rpo_seconds: Some(rpo_h * 3600.0),
            error: (!passed).then(|| "table users: 0 rows, the manifest says 1200".to_owned()),
            key: format!("reports/restore-tests/x/{}.json", at.format("%Y%m%dT%H%M%SZ")),
            recovery_point_time: Some(at - chrono::Duration::seconds((rpo_h * 3600.0) as i64)),
        }
    }

    /// app-prod misses its snapshot and `full` export on 2026-11-03 and three `critical` exports on 2026-11-25,
    /// and its last restore test failed; billing has no export at all; `<script>` is healthy but for its name.
    fn every_six_hours(skip_day: u32) -> Vec<ExportFact> {
        let mut out = Vec::new();
        for day in 20..=28 {
            for h in [0, 6, 12, 18] {
                if day != skip_day || h == 0 {
                    out.push(export("critical", at(11, day, h)));
                }
            }
        }
        out
    }

    pub fn fleet() -> Vec<Facts> {
        let critical = every_six_hours(25);
        let mut app_exports: Vec<ExportFact> = daily(at(11, 1, 2), 28, &[at(11, 3, 2)])
            .into_iter()
            .map(|t| export("full", t))
            .collect();
        app_exports.extend(critical.clone());
        let snapshots = daily(at(10, 20, 2), 40, &[at(11, 3, 2)]);
        vec![
            Facts {
                db: "app-prod".to_owned(),
                kind: SubjectKind::RdsInstance,
                snapshots: snapshots.clone(),
                unencrypted_snapshots: 0,
                retention: Some("daily=30 weekly=4 monthly=12 yearly=3".to_owned()),
                exports: app_exports,
                restore_tests: vec![
                    test(at(11, 10, 3), true, 31.0, 25.0),
                    test(at(11, 20, 3), false, 0.0, 25.0),
                ],
                backup: healthy_backup(),
            },
            Facts {
                db: "billing".to_owned(),
                kind: SubjectKind::AuroraCluster,
                snapshots: daily(at(10, 20, 2), 40, &[]),
                unencrypted_snapshots: 0,
                retention: Some("daily=30".to_owned()),
                exports: vec![],
                restore_tests: vec![test(at(11, 15, 3), true, 45.0, 49.0)],
                backup: BackupDetails {
                    deletion_protection: false,
                    ..healthy_backup()
                },
            },
            Facts {
                db: "<script>alert(1)</script>".to_owned(),
                kind: SubjectKind::RdsInstance,
                snapshots: daily(at(10, 20, 2), 40, &[]),
                unencrypted_snapshots: 0,
                retention: Some("daily=30".to_owned()),
                exports: daily(at(10, 20, 2), 40, &[])
                    .into_iter()
                    .map(|t| export("full", t))
                    .chain(every_six_hours(0))
                    .collect(),
                restore_tests: vec![test(at(11, 12, 3), true, 20.0, 1.0)],
                backup: healthy_backup(),
            },
        ]
    }
}

#[cfg(test)]
mod anomaly_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::watch::record::{Acknowledgement, Anomaly, Finding, Held};
    use chrono::TimeZone;

    fn anomaly(seen: DateTime<Utc>, acked: Option<DateTime<Utc>>) -> Anomaly {
        Anomaly {
            format_version: 1,
            resource_kind: "database".into(),
            resource: "app".into(),
            series: "full".into(),
            manifest_key: "exports/app/full/m.manifest.json".into(),
            seen_at: seen,
            also_seen_in: vec![],
            findings: vec![Finding {
                kind: "table-vanished".into(),
                object: "public.orders".into(),
                before: None,
                after: None,
                line: "public.orders vanished".into(),
            }],
            held: Held {
                manifests: vec!["exports/app/full/old.manifest.json".into()],
                snapshots: vec!["lifeboat-app-1".into()],
            },
            acknowledged: acked.map(|at| Acknowledgement {
                by: "arn:aws:iam::1:user/ana".into(),
                by_stated: false,
                why: "planned".into(),
                at,
            }),
        }
    }

    #[test]
    fn the_period_keeps_anomalies_seen_or_acknowledged_in_it_and_those_still_open() {
        let october = Period::parse(Some("2026-10"), Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()).unwrap();
        let t = |m: u32, d: u32| Utc.with_ymd_and_hms(2026, m, d, 2, 0, 0).unwrap();
        assert!(AnomalyEvidence::in_period(&anomaly(t(10, 5), Some(t(11, 2))), &october));
        assert!(AnomalyEvidence::in_period(&anomaly(t(9, 20), Some(t(10, 2))), &october));
        assert!(
            AnomalyEvidence::in_period(&anomaly(t(9, 20), None), &october),
            "still open"
        );
        assert!(!AnomalyEvidence::in_period(
            &anomaly(t(9, 20), Some(t(9, 21))),
            &october
        ));
        assert!(
            !AnomalyEvidence::in_period(&anomaly(t(11, 5), None), &october),
            "after the period"
        );
    }
}
