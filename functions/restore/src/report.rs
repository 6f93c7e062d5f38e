//! Restore-test reports: JSON for machines, Markdown for people, both under `reports/restore-tests/<db>/`.

use lifeboat::restore::CheckResult;

use crate::event::TestState;

/// The report's shape is shared: the evidence report reads these reports back (`lifeboat::evidence`).
pub use lifeboat::restore::Report;

pub fn build(test: &TestState, error: Option<String>) -> Report {
    let failed_check = test.checks.iter().any(|c| c.result == CheckResult::Failed);
    let passed = error.is_none() && !failed_check && test.verified_at.is_some() && !test.checks.is_empty();
    let (rto, rpo) = lifeboat::restore::rto_rpo(
        test.requested_at,
        test.verified_at.unwrap_or(test.requested_at),
        test.snapshot_time,
    );
    Report {
        format_version: 1,
        lifeboat_version: lifeboat::VERSION.to_owned(),
        database: test.database.clone(),
        kind: test.kind,
        restored_id: test.restored_id.clone(),
        snapshot_id: test.snapshot_id.clone(),
        snapshot_time: test.snapshot_time,
        requested_at: test.requested_at,
        verified_at: test.verified_at,
        passed,
        rto_seconds: test.verified_at.map(|_| rto),
        rpo_seconds: rpo,
        timings_seconds: test.timings.clone(),
        checks: test.checks.clone(),
        error,
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

pub fn markdown(r: &Report) -> String {
    let mut md = format!(
        "# Restore test of {}: {}\n\n",
        r.database,
        if r.passed { "PASSED" } else { "FAILED" }
    );
    md.push_str(&format!(
        "- Snapshot: `{}` taken {}\n- Restored into: `{}` ({})\n- Requested: {}\n",
        r.snapshot_id,
        r.snapshot_time.to_rfc3339(),
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
    lifeboat::bucket::restore_report_base(&r.database, r.requested_at)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::{TimeZone, Utc};
    use lifeboat::restore::Check;

    fn state() -> TestState {
        serde_json::from_value(serde_json::json!({
            "database": "app-prod", "kind": "instance", "restored_id": "lifeboat-rt-app-prod-202611220300",
            "snapshot_id": "lifeboat-app-prod-20261122-0200", "snapshot_time": "2026-11-22T02:00:00Z",
            "requested_at": "2026-11-22T03:00:00Z", "master_user": "postgres",
            "timings": {"start": 2.0, "poll": 600.0},
            "checks": [{"name": "connect", "result": "passed", "detail": "ok"}],
            "verified_at": "2026-11-22T03:20:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn a_verified_test_passes_with_rto_and_rpo() {
        let r = build(&state(), None);
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
        let mut s = state();
        s.checks.push(Check::new(
            "rows of public.users",
            false,
            "0 restored, 250 in the export",
        ));
        let r = build(&s, None);
        assert!(!r.passed);
        assert!(markdown(&r).contains("| rows of public.users | **FAILED** |"));
        let mut early = state();
        early.verified_at = None;
        let r = build(&early, Some("poll: restore did not finish in 90 minutes".into()));
        assert!(!r.passed && r.rto_seconds.is_none());
        assert!(markdown(&r).contains("**The test stopped early:** poll: restore did not finish"));
        let _ = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0);
    }
}
