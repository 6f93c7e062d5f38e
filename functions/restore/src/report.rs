//! Restore-test reports: JSON for machines, Markdown for people, both under `reports/restore-tests/<db>/`. The
//! verdict is computed from the verify step's own record (`restore::VerifyRecord`), never from checks a caller
//! hands the report step.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lifeboat::rds::restore::{Check, CheckResult, VerifyRecord};
use lifeboat::rds::selection::DbKind;

/// The report's shape is shared: the evidence report reads these reports back (`lifeboat::evidence`).
pub use lifeboat::rds::restore::Report;

/// What the report step knows, each from where it may be trusted: the database and request time name the test;
/// the record is the verify step's own; the timings are the state's (informational, never part of the verdict).
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub database: &'a str,
    pub requested_at: DateTime<Utc>,
    pub restored_id: &'a str,
    /// The state's kind, used only when there is no record (a start that failed).
    pub kind: DbKind,
    pub timings: &'a BTreeMap<String, f64>,
    pub record: Option<&'a VerifyRecord>,
    /// Where the record is (or was looked for), for the failure's detail.
    pub record_key: &'a str,
}

/// The report. Passed only when the verify step's record says the database was verified and none of its checks
/// failed, and no step failed (`error`). Without a record the test failed, and a check says so.
pub fn build(f: &Facts<'_>, error: Option<String>) -> Report {
    let missing;
    let (checks, verified_at) = match f.record {
        Some(r) => (r.checks.as_slice(), r.verified_at),
        None => {
            missing = [Check::new(
                "verify record",
                false,
                format!(
                    "no record of a verify step's checks at {}: the restored database was not verified",
                    f.record_key
                ),
            )];
            (missing.as_slice(), None)
        }
    };
    let passed = lifeboat::rds::restore::test_passed(checks, verified_at.is_some(), error.is_some());
    let snapshot_time = f.record.and_then(|r| r.snapshot_time);
    let (rto, rpo) = lifeboat::rds::restore::rto_rpo(
        f.requested_at,
        verified_at.unwrap_or(f.requested_at),
        snapshot_time.unwrap_or(f.requested_at),
    );
    Report {
        format_version: 1,
        lifeboat_version: lifeboat::core::VERSION.to_owned(),
        database: f.database.to_owned(),
        kind: f.record.map_or(f.kind, |r| r.kind),
        restored_id: f.restored_id.to_owned(),
        snapshot_id: f.record.and_then(|r| r.snapshot_id.clone()).unwrap_or_default(),
        snapshot_time: snapshot_time.unwrap_or(f.requested_at),
        requested_at: f.requested_at,
        verified_at,
        passed,
        rto_seconds: verified_at.map(|_| rto),
        rpo_seconds: rpo,
        timings_seconds: f.timings.clone(),
        checks: checks.to_vec(),
        error,
        export: f.record.and_then(|r| r.export.clone()),
        recovery_point_time: snapshot_time,
        recovery_choice: f.record.and_then(|r| r.recovery_choice.clone()),
        point_in_time: f.record.and_then(|r| r.point_in_time),
        data_reaches: f.record.and_then(|r| r.data_reaches.clone()),
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds.round() as i64;
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// What was restored, as the report's first lines: the export, point in time or snapshot, when the recovery point
/// stands for, how it was chosen and how far a point-in-time restore's data reaches.
fn recovery_point_lines(r: &Report) -> String {
    let mut md = String::new();
    match (&r.export, r.point_in_time) {
        (Some(key), _) => md.push_str(&format!("- Export: `{key}` taken {}\n", r.snapshot_time.to_rfc3339())),
        (None, Some(t)) => md.push_str(&format!("- Point in time: {}\n", t.to_rfc3339())),
        (None, None) => md.push_str(&format!(
            "- Snapshot: `{}` taken {}\n",
            r.snapshot_id,
            r.snapshot_time.to_rfc3339()
        )),
    }
    match r.recovery_point_time {
        Some(t) => md.push_str(&format!("- Recovery point tested: {}\n", t.to_rfc3339())),
        None => md.push_str("- Recovery point tested: unknown\n"),
    }
    if let Some(c) = &r.recovery_choice {
        md.push_str(&format!("- Chosen as: `{c}`\n"));
    }
    if let Some(reach) = &r.data_reaches {
        md.push_str(&format!(
            "- Restored data reaches: {} ({})\n",
            reach.time.to_rfc3339(),
            reach.from
        ));
    }
    md
}

pub fn markdown(r: &Report) -> String {
    let mut md = format!(
        "# Restore test of {}: {}\n\n",
        r.database,
        if r.passed { "PASSED" } else { "FAILED" }
    );
    md.push_str(&recovery_point_lines(r));
    md.push_str(&format!(
        "- Restored into: `{}` ({})\n- Requested: {}\n",
        r.restored_id,
        serde_json::to_value(r.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        r.requested_at.to_rfc3339()
    ));
    match r.rto_seconds {
        Some(rto) => md.push_str(&format!("- RTO (request to verified database): {}\n", duration(rto))),
        None => md.push_str("- RTO: not reached (the test did not verify a database)\n"),
    }
    md.push_str(&format!(
        "- RPO (age of the restored data): {}\n",
        duration(r.rpo_seconds)
    ));
    if let Some(e) = &r.error {
        md.push_str(&format!("\n**The test stopped early:** {e}\n"));
    }
    md.push_str("\n## Steps\n\n| step | seconds |\n|---|---:|\n");
    for (step, s) in &r.timings_seconds {
        md.push_str(&format!("| {step} | {s:.1} |\n"));
    }
    md.push_str("\n## Checks\n\n| check | result | detail |\n|---|---|---|\n");
    for c in &r.checks {
        let result = match c.result {
            CheckResult::Passed => "passed",
            CheckResult::Failed => "**FAILED**",
            CheckResult::Skipped => "skipped",
        };
        md.push_str(&format!(
            "| {} | {result} | {} |\n",
            c.name,
            c.detail.replace('|', "\\|")
        ));
    }
    md
}

/// `reports/restore-tests/<db>/<yyyymmddThhmmssZ>` (add `.json` / `.md`).
pub fn key_base(r: &Report) -> String {
    lifeboat::bucket::layout::restore_report_base(&r.database, r.requested_at)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
    }

    fn record() -> VerifyRecord {
        VerifyRecord {
            format_version: 1,
            database: "app-prod".into(),
            kind: DbKind::Instance,
            restored_id: "lifeboat-rt-app-prod-202611220300".into(),
            snapshot_id: Some("lifeboat-app-prod-20261122-0200".into()),
            snapshot_time: Some(at(2, 0)),
            requested_at: at(3, 0),
            verified_at: Some(at(3, 20)),
            checks: vec![Check::new("connect", true, "ok")],
            export: None,
            recovery_choice: None,
            point_in_time: None,
            data_reaches: None,
        }
    }

    fn facts<'a>(record: Option<&'a VerifyRecord>, timings: &'a BTreeMap<String, f64>) -> Facts<'a> {
        Facts {
            database: "app-prod",
            requested_at: at(3, 0),
            restored_id: "lifeboat-rt-app-prod-202611220300",
            kind: DbKind::Instance,
            timings,
            record,
            record_key: "reports/restore-tests/app-prod/20261122T030000Z.checks.json",
        }
    }

    #[test]
    fn a_verified_test_passes_with_rto_and_rpo() {
        let timings = BTreeMap::from([("start".to_owned(), 2.0)]);
        let rec = record();
        let r = build(&facts(Some(&rec), &timings), None);
        assert!(r.passed);
        assert_eq!((r.rto_seconds, r.rpo_seconds), (Some(1200.0), 3600.0));
        assert_eq!(key_base(&r), "reports/restore-tests/app-prod/20261122T030000Z");
        let md = markdown(&r);
        assert!(md.starts_with("# Restore test of app-prod: PASSED"), "{md}");
        assert!(md.contains("RTO (request to verified database): 20 min 0 s"), "{md}");
        assert!(md.contains("| connect | passed | ok |"), "{md}");
    }

    #[test]
    fn a_failed_check_or_an_early_stop_fails_the_test() {
        let timings = BTreeMap::new();
        let mut rec = record();
        rec.checks.push(Check::new(
            "rows of public.users",
            false,
            "0 restored, 250 in the export",
        ));
        let r = build(&facts(Some(&rec), &timings), None);
        assert!(!r.passed);
        assert!(markdown(&r).contains("| rows of public.users | **FAILED** |"));
        let r = build(
            &facts(Some(&record()), &timings),
            Some("poll: restore did not finish in 90 minutes".into()),
        );
        assert!(!r.passed, "a caught error fails even a verified test");
        assert!(markdown(&r).contains("**The test stopped early:** poll: restore did not finish"));
    }

    #[test]
    fn a_point_in_time_test_reports_its_time_choice_and_reach() {
        let timings = BTreeMap::new();
        let mut rec = record();
        rec.snapshot_id = None;
        rec.snapshot_time = Some(at(1, 17));
        rec.point_in_time = Some(at(1, 17));
        rec.recovery_choice = Some("random-point-in-time seed=00000000000000ff window=a/b".into());
        rec.data_reaches = Some(lifeboat::rds::restore::Reach {
            time: at(1, 16),
            from: "heartbeat public.heartbeat.beat_at".into(),
        });
        let r = build(&facts(Some(&rec), &timings), None);
        assert!(r.passed);
        assert_eq!(r.recovery_point_time, Some(at(1, 17)));
        assert_eq!(r.verified_point(), Some(at(1, 17)));
        assert_eq!(r.rpo_seconds, 6180.0, "request 03:00, point 01:17");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["recovery_point_time"], "2026-11-22T01:17:00Z");
        assert_eq!(json["data_reaches"]["from"], "heartbeat public.heartbeat.beat_at");
        let md = markdown(&r);
        assert!(md.contains("- Point in time: 2026-11-22T01:17:00+00:00"), "{md}");
        assert!(
            md.contains("- Recovery point tested: 2026-11-22T01:17:00+00:00"),
            "{md}"
        );
        assert!(
            md.contains("- Chosen as: `random-point-in-time seed=00000000000000ff"),
            "{md}"
        );
        assert!(
            md.contains("- Restored data reaches: 2026-11-22T01:16:00+00:00 (heartbeat public.heartbeat.beat_at)"),
            "{md}"
        );
        assert!(!md.contains("Snapshot:"), "{md}");
    }

    #[test]
    fn without_the_verify_steps_record_the_test_failed_and_says_why() {
        let timings = BTreeMap::new();
        let r = build(&facts(None, &timings), None);
        assert!(!r.passed && r.rto_seconds.is_none() && r.verified_at.is_none());
        assert_eq!(r.checks[0].result, CheckResult::Failed);
        assert!(r.checks[0].detail.contains(".checks.json"), "{:?}", r.checks);
        assert_eq!(r.snapshot_id, "");
    }
}
