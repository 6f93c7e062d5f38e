//! Message text: which database, what is wrong, since when, the last good backup, what to do. Pure, so the exact
//! text is tested.

use chrono::{DateTime, Utc};
use lifeboat::monitoring::caches::{alarm_subject, AlarmSubject};
use lifeboat::monitoring::monitor::AlarmScope;
use sha2::{Digest, Sha256};

use crate::event::Notice;

/// Problem, recovery or nothing to say: the rule is [`Kind::of_transition`].
pub use lifeboat::monitoring::notify::Kind;

/// The last good backups of a database, looked up when the message is written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastGood {
    pub snapshot: Option<(String, DateTime<Utc>)>,
    pub export: Option<(String, DateTime<Utc>)>,
    /// Where the newest evidence report is (`s3://<bucket>/<key>`), when one has been written.
    pub evidence: Option<String>,
    /// A `content` alarm's open anomalies (read from their records when the message is written): each one's
    /// record key, its findings' lines, and how many snapshots and exports it holds.
    pub anomalies: Vec<OpenAnomaly>,
    /// The stack's RDB copy alarm: the caches whose copy failed (their `RdbCopyFailed` per `CacheIdentifier`, read
    /// when the message is written). The alarm's one series is the maximum over every cache, so it names none.
    pub failing_caches: Vec<String>,
}

/// One open content anomaly as a message names it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenAnomaly {
    pub key: String,
    pub lines: Vec<String>,
    pub snapshots: usize,
    pub exports: usize,
}

/// What the open anomalies found (the tables and their numbers) and what each holds.
fn anomalies_block(last: &LastGood) -> String {
    let mut out = String::new();
    for a in &last.anomalies {
        for line in &a.lines {
            out.push_str(&format!("  - {line}\n"));
        }
        out.push_str(&format!(
            "  Held until acknowledged: {} snapshot(s), {} export(s); record: {}\n",
            a.snapshots, a.exports, a.key
        ));
    }
    if out.is_empty() {
        out
    } else {
        format!("Findings:\n{out}")
    }
}

/// What a content alarm means and what to do about it, for a database (`what` = its id) or `cache <id>`.
fn explain_content(what: &str, resource: &str) -> (String, String) {
    (
        format!("the content of {what}'s backups changed beyond its thresholds"),
        format!(
            "Look at the findings above and the record (aws s3 cp s3://<bucket>/<record> -): if the change is \
             expected, acknowledge it (lifeboat acknowledge {resource} --why \"...\", or the monitor function's \
             acknowledge action); if not, restore from the held restore points. Runbook: \
             docs/book/src/runbooks/content-anomaly.md."
        ),
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// For SNS (at most 100 characters) and the chat message's first line.
    pub subject: String,
    pub text: String,
    /// What makes two messages "the same alarm" for the dedupe window.
    pub fingerprint: String,
    /// The alarm or execution the message is about (the dedupe key).
    pub key: String,
    /// A recovery or an OK that follows no alarm: the latter is not worth a message.
    pub kind: Kind,
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let h = (now - t).num_minutes() as f64 / 60.0;
    if h < 48.0 {
        format!("{h:.0} h ago")
    } else {
        format!("{:.0} days ago", h / 24.0)
    }
}

/// What the check means and what to do about it.
fn explain(db: &str, check: &str) -> (String, String) {
    if let Some(profile) = check.strip_prefix("export-age-") {
        return explain_export(db, profile);
    }
    if check == lifeboat::monitoring::monitor::CONTENT_CHECK {
        return explain_content(db, db);
    }
    match check {
        "snapshot-age" => (
            format!("no snapshot of {db} within the policy"),
            format!(
                "Look at the snapshot function's last runs (metric SnapshotFailed, its log group); take one by hand: \
                 {{\"databases\": [\"{db}\"], \"reason\": \"missed schedule\"}}. Runbook: docs/book/src/guide/snapshot.md."
            ),
        ),
        "restore-test-age" => (
            format!("{db} has not had a restore test within the policy"),
            "Start the restore-test state machine (output RestoreTestStateMachineArn) with {\"time\": \"<now>\"}. \
             Runbook: docs/book/src/guide/restore-tests.md."
                .to_owned(),
        ),
        "restore-test-failed" => (
            format!("the last restore test of {db} failed"),
            format!(
                "Read its report under reports/restore-tests/{db}/ in the export bucket: each failed check says what \
                 was wrong. Until a test passes, treat {db}'s backups as unproven. Runbook: \
                 docs/book/src/guide/restore-tests.md."
            ),
        ),
        _ => explain_compliance(db, check),
    }
}

/// What a cache's check means and what to do about it.
fn explain_cache(cache: &str, check: &str) -> (String, String) {
    let runbook = "Runbook: docs/book/src/guide/caches.md.";
    if check == lifeboat::monitoring::monitor::CONTENT_CHECK {
        return explain_content(&format!("cache {cache}"), cache);
    }
    match check {
        "snapshot-age" => (
            format!("no snapshot of cache {cache} within the policy"),
            format!(
                "Look at the snapshot function's last runs (metric SnapshotFailed with CacheIdentifier={cache}, its \
                 log group); take one by hand: {{\"caches\": [\"{cache}\"], \"reason\": \"missed schedule\"}}. {runbook}"
            ),
        ),
        "export-age" => (
            format!("no verified RDB copy of cache {cache} within the policy"),
            format!(
                "Look at the RDB copy's last runs in its log group: a copy whose file failed verification never gets a \
                 manifest. Copies live under exports/_caches/{cache}/rdb/ in the export bucket. {runbook}"
            ),
        ),
        "restore-test-age" => (
            format!("cache {cache} has not had a restore test within the policy"),
            format!(
                "Start the restore-test state machine (output RestoreTestStateMachineArn) with {{\"time\": \"<now>\"}}. \
                 {runbook}"
            ),
        ),
        "restore-test-failed" => (
            format!("the last restore test of cache {cache} failed"),
            format!(
                "Read its report under reports/cache-restore-tests/{cache}/ in the export bucket: each failed check \
                 says what was wrong. Until a test passes, treat {cache}'s snapshots as unproven. {runbook}"
            ),
        ),
        "backup-retention" => (
            format!("ElastiCache's automatic backups of cache {cache} are off or kept too briefly"),
            format!(
                "Raise them: aws elasticache modify-replication-group --replication-group-id {cache} \
                 --snapshot-retention-limit <days> --apply-immediately (modify-cache-cluster --cache-cluster-id for a \
                 single node, modify-serverless-cache --serverless-cache-name for a serverless cache)."
            ),
        ),
        other => (
            format!("Lifeboat check `{other}` of cache {cache}"),
            "See the alarm's description in CloudWatch and docs/book/src/reference/alarms.md.".to_owned(),
        ),
    }
}

/// A cache's last good copy: its newest verified RDB copy (its snapshots are listed by ElastiCache).
fn cache_last_good_line(cache: &str, last: &LastGood, now: DateTime<Utc>) -> String {
    match &last.export {
        Some((key, t)) => format!("RDB copy {key} at {} ({})", when(*t), ago(now, *t)),
        None => format!(
            "no verified RDB copy found; its snapshots: aws elasticache describe-snapshots --replication-group-id \
             {cache}"
        ),
    }
}

fn explain_export(db: &str, profile: &str) -> (String, String) {
    (
        format!("no complete `{profile}` export of {db} within the policy"),
        format!(
            "Look at the export function's last runs (metric ExportSuccess, its log group) for {db}; run one \
             by hand: {{\"database\": \"{db}\", \"profile\": \"{profile}\"}}. Runbook: docs/book/src/guide/export.md."
        ),
    )
}

/// The configuration checks, and any check this version does not know.
fn explain_compliance(db: &str, check: &str) -> (String, String) {
    match check {
        "pitr-lag" => (
            format!("point-in-time recovery of {db} lags behind"),
            format!(
                "Check {db}'s recent events and backup status in the RDS console (aws rds describe-events \
                 --source-identifier {db}); transaction logs are not reaching backup storage."
            ),
        ),
        "backup-retention" => (
            format!("automated backup retention of {db} is below the minimum"),
            format!(
                "Raise it: aws rds modify-db-instance --db-instance-identifier {db} --backup-retention-period <days> \
                 --apply-immediately (modify-db-cluster for Aurora)."
            ),
        ),
        other => (
            format!("Lifeboat check `{other}` of {db}"),
            "See the alarm's description in CloudWatch and docs/book/src/reference/alarms.md.".to_owned(),
        ),
    }
}

fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The line that links the newest evidence report, or nothing when none has been written.
fn evidence_line(last: &LastGood) -> String {
    last.evidence
        .as_deref()
        .map(|url| format!("Evidence report: {url}\n"))
        .unwrap_or_default()
}

fn last_good_line(last: &LastGood, now: DateTime<Utc>) -> String {
    let mut parts = Vec::new();
    if let Some((id, t)) = &last.snapshot {
        parts.push(format!("snapshot {id} at {} ({})", when(*t), ago(now, *t)));
    }
    if let Some((key, t)) = &last.export {
        parts.push(format!("export {key} at {} ({})", when(*t), ago(now, *t)));
    }
    if parts.is_empty() {
        "none found: no available snapshot and no complete export".to_owned()
    } else {
        parts.join("; ")
    }
}

/// An alarm state change, borrowed from [`Notice::Alarm`].
struct AlarmChange<'a> {
    name: &'a str,
    state: &'a str,
    previous: &'a str,
    reason: &'a str,
    since: DateTime<Utc>,
}

fn message(subject: String, text: String, fingerprint: String, key: &str, kind: Kind) -> Message {
    Message {
        subject: subject.chars().take(100).collect(),
        text,
        fingerprint,
        key: key.to_owned(),
        kind,
    }
}

/// Who an alarm is about, its subject line, what is wrong and what to do, and the last good backup line.
fn alarm_about(
    scope: &AlarmScope,
    name: &str,
    last: &LastGood,
    now: DateTime<Utc>,
) -> (String, String, (String, String), String) {
    match alarm_subject(scope, name) {
        Some((AlarmSubject::Cache(cache), check)) => (
            format!("cache {cache}"),
            format!("Cache: {cache}"),
            explain_cache(cache, check),
            cache_last_good_line(cache, last, now),
        ),
        Some((AlarmSubject::Database(db), check)) => (
            db.to_owned(),
            format!("Database: {db}"),
            explain(db, check),
            last_good_line(last, now),
        ),
        // The stack's RDB copy alarm, with the caches its metric says failed.
        None if !last.failing_caches.is_empty() => {
            let caches = last.failing_caches.join(", ");
            let (who, line) = match last.failing_caches.as_slice() {
                [_] => (format!("cache {caches}"), format!("Cache: {caches}")),
                _ => (format!("caches {caches}"), format!("Caches: {caches}")),
            };
            let last_line = match last.failing_caches.as_slice() {
                [cache] => cache_last_good_line(cache, last, now),
                _ => "each cache's newest verified RDB copy: `lifeboat exports <cache>`".to_owned(),
            };
            let todo = "The export function's copy-caches summary (its log group) names the shard, the staged key \
                        under rdb-staging-* (kept for inspection) and the verifier's error; the next export tick \
                        copies again. Runbook: docs/book/src/guide/caches.md."
                .to_owned();
            (
                who,
                line,
                (
                    format!("the newest snapshot's RDB copy failed verification ({caches})"),
                    todo,
                ),
                last_line,
            )
        }
        // Another alarm of the whole stack (a function's errors), or the RDB copy alarm when its metric could not be
        // read: it names no database, so the message names the alarm and sends the reader to its description.
        None => (
            name.to_owned(),
            format!("Alarm: {name}"),
            (
                format!("the stack's alarm `{name}`"),
                "Its description in CloudWatch says what failed and where to look; \
                 docs/book/src/reference/alarms.md lists every alarm."
                    .to_owned(),
            ),
            last_good_line(last, now),
        ),
    }
}

fn render_alarm(scope: &AlarmScope, a: &AlarmChange<'_>, last: &LastGood, now: DateTime<Utc>) -> Message {
    let AlarmChange {
        name,
        state,
        previous,
        reason,
        since,
    } = *a;
    let (who, line, (what, todo), last_line) = alarm_about(scope, name, last, now);
    // While a content anomaly is open, the newest backups carry the change: the last good ones are those it holds.
    let last_line = if last.anomalies.is_empty() {
        last_line
    } else {
        "the restore points held above (the newest backups carry the change)".to_owned()
    };
    let kind = Kind::of_transition(state, previous);
    let (subject, text) = match kind {
        Kind::Recovery => (
            format!("[RECOVERED] {who}: {what}"),
            format!(
                "[RECOVERED] {who}: {what}: back to normal since {}.\nLast good backup: {last_line}\n{}Alarm: {name}\n",
                when(since),
                evidence_line(last)
            ),
        ),
        _ => (
            format!("[{state}] {who}: {what}"),
            format!(
                "[{state}] {who}: {what}\n{line}\nWhat is wrong: {}\n{}Since: {} (was {previous})\n\
                 Last good backup: {last_line}\nWhat to do: {todo}\n{}Alarm: {name}\n",
                if reason.is_empty() { what.as_str() } else { reason },
                anomalies_block(last),
                when(since),
                evidence_line(last)
            ),
        ),
    };
    message(subject, text, fingerprint(&[name, state, previous]), name, kind)
}

fn render_failed_run(
    execution: &str,
    status: &str,
    since: DateTime<Utc>,
    cause: Option<&str>,
    last: &LastGood,
) -> Message {
    let subject = format!("[{status}] restore test run {execution}");
    let text = format!(
        "[{status}] Lifeboat restore test run {execution}\nWhat is wrong: {}\nSince: {}\n\
         What to do: read the reports under reports/restore-tests/ in the export bucket (one per database, \
         each failed check says why) and the execution's history in the Step Functions console. Every test \
         cleans up after itself; restore-test instances carry lifeboat:expires-at in case one could not.\n{}",
        cause.unwrap_or("the execution did not succeed"),
        when(since),
        evidence_line(last)
    );
    message(
        subject,
        text,
        fingerprint(&[execution, status]),
        execution,
        Kind::Problem,
    )
}

/// `scope`: this stack's alarms, the only ones whose subject a message names.
pub fn render(scope: &AlarmScope, notice: &Notice, last: &LastGood, now: DateTime<Utc>) -> Message {
    match notice {
        Notice::Alarm {
            name,
            state,
            previous,
            reason,
            since,
        } => {
            let change = AlarmChange {
                name,
                state,
                previous,
                reason,
                since: *since,
            };
            render_alarm(scope, &change, last, now)
        }
        Notice::RestoreTestFailed {
            execution,
            status,
            since,
            cause,
        } => render_failed_run(execution, status, *since, cause.as_deref(), last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn scope() -> AlarmScope {
        AlarmScope::new("prod").unwrap()
    }

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    fn alarm(state: &str, previous: &str) -> Notice {
        Notice::Alarm {
            name: "lifeboat/prod/app-prod/snapshot-age".into(),
            state: state.into(),
            previous: previous.into(),
            reason: "Threshold Crossed: 1 datapoint [111600.0] was greater than the threshold (93600.0).".into(),
            since: at(22, 10),
        }
    }

    fn last() -> LastGood {
        LastGood {
            snapshot: Some(("lifeboat-app-prod-20261121-0200".into(), at(21, 2))),
            export: None,
            evidence: None,
            anomalies: Vec::new(),
            failing_caches: Vec::new(),
        }
    }

    #[test]
    fn the_stacks_rdb_copy_alarm_names_the_caches_whose_copy_failed() {
        let mut notice = alarm("ALARM", "OK");
        if let Notice::Alarm { name, reason, .. } = &mut notice {
            *name = "lifeboat/prod/rdb-copy-failed".into();
            *reason = String::new();
        }
        let one = LastGood {
            failing_caches: vec!["sessions".into()],
            export: Some(("exports/_caches/sessions/rdb/20261121T0200Z.json".into(), at(21, 2))),
            ..LastGood::default()
        };
        let m = render(&scope(), &notice, &one, at(22, 10));
        assert_eq!(
            m.subject,
            "[ALARM] cache sessions: the newest snapshot's RDB copy failed verification (sessions)"
        );
        assert!(m.text.contains("\nCache: sessions\n"), "{}", m.text);
        assert!(
            m.text
                .contains("Last good backup: RDB copy exports/_caches/sessions/rdb/20261121T0200Z.json at 2026-11-21"),
            "{}",
            m.text
        );
        assert!(m.text.ends_with("Alarm: lifeboat/prod/rdb-copy-failed\n"), "{}", m.text);

        let two = LastGood {
            failing_caches: vec!["queue".into(), "sessions".into()],
            ..LastGood::default()
        };
        let m = render(&scope(), &notice, &two, at(22, 10));
        assert!(
            m.subject.starts_with("[ALARM] caches queue, sessions: "),
            "{}",
            m.subject
        );
        assert!(m.text.contains("\nCaches: queue, sessions\n"), "{}", m.text);

        // Its metric unread (or another stack-wide alarm): the alarm is named, and no cache.
        let m = render(&scope(), &notice, &LastGood::default(), at(22, 10));
        assert_eq!(
            m.subject,
            "[ALARM] lifeboat/prod/rdb-copy-failed: the stack's alarm `lifeboat/prod/rdb-copy-failed`"
        );
        assert!(!m.text.contains("Cache"), "{}", m.text);
    }

    #[test]
    fn a_content_alarm_names_the_table_both_counts_and_what_is_held() {
        let mut notice = alarm("ALARM", "OK");
        if let Notice::Alarm { name, .. } = &mut notice {
            *name = "lifeboat/prod/app-prod/content".into();
        }
        let with = LastGood {
            anomalies: vec![OpenAnomaly {
                key: "watch/app-prod/full/20261122T020000Z.json".into(),
                lines: vec!["public.users: 12,030 rows in the backup of 2026-11-21, 8,301 in today's, -31%".into()],
                snapshots: 2,
                exports: 1,
            }],
            ..last()
        };
        let m = render(&scope(), &notice, &with, at(22, 10));
        assert_eq!(
            m.subject,
            "[ALARM] app-prod: the content of app-prod's backups changed beyond its thresholds"
        );
        assert!(
            m.text.contains(
                "Findings:\n  - public.users: 12,030 rows in the backup of 2026-11-21, 8,301 in today's, -31%\n  \
                 Held until acknowledged: 2 snapshot(s), 1 export(s); record: watch/app-prod/full/20261122T020000Z.json\n"
            ),
            "{}",
            m.text
        );
        assert!(m.text.contains("lifeboat acknowledge app-prod --why"), "{}", m.text);
        assert!(
            m.text.contains("Last good backup: the restore points held above"),
            "the newest backup carries the change, so it is not the last good one: {}",
            m.text
        );
    }

    #[test]
    fn an_alarm_reads_like_a_page() {
        let m = render(&scope(), &alarm("ALARM", "OK"), &last(), at(22, 10));
        assert_eq!(m.kind, Kind::Problem);
        assert_eq!(m.subject, "[ALARM] app-prod: no snapshot of app-prod within the policy");
        assert_eq!(
            m.text,
            "[ALARM] app-prod: no snapshot of app-prod within the policy\n\
             Database: app-prod\n\
             What is wrong: Threshold Crossed: 1 datapoint [111600.0] was greater than the threshold (93600.0).\n\
             Since: 2026-11-22 10:00 UTC (was OK)\n\
             Last good backup: snapshot lifeboat-app-prod-20261121-0200 at 2026-11-21 02:00 UTC (32 h ago)\n\
             What to do: Look at the snapshot function's last runs (metric SnapshotFailed, its log group); take one \
             by hand: {\"databases\": [\"app-prod\"], \"reason\": \"missed schedule\"}. Runbook: \
             docs/book/src/guide/snapshot.md.\n\
             Alarm: lifeboat/prod/app-prod/snapshot-age\n"
        );
    }

    #[test]
    fn ok_after_alarm_is_a_recovery_and_ok_after_nothing_is_quiet() {
        let m = render(&scope(), &alarm("OK", "ALARM"), &last(), at(22, 11));
        assert_eq!(m.kind, Kind::Recovery);
        assert_eq!(
            m.text,
            "[RECOVERED] app-prod: no snapshot of app-prod within the policy: back to normal since 2026-11-22 10:00 \
             UTC.\nLast good backup: snapshot lifeboat-app-prod-20261121-0200 at 2026-11-21 02:00 UTC (33 h ago)\n\
             Alarm: lifeboat/prod/app-prod/snapshot-age\n"
        );
        assert_eq!(
            render(&scope(), &alarm("OK", "INSUFFICIENT_DATA"), &last(), at(22, 11)).kind,
            Kind::Quiet
        );
        // The same transition twice has the same fingerprint; another transition does not.
        let a = render(&scope(), &alarm("ALARM", "OK"), &last(), at(22, 10));
        let b = render(&scope(), &alarm("ALARM", "OK"), &LastGood::default(), at(22, 12));
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, m.fingerprint);
        assert!(b.text.contains("Last good backup: none found"));
    }

    #[test]
    fn messages_link_the_newest_evidence_report_when_there_is_one() {
        let with = LastGood {
            evidence: Some("s3://lifeboat-backups/reports/evidence/2026-10/fleet-2026-10.html".into()),
            ..last()
        };
        let m = render(&scope(), &alarm("ALARM", "OK"), &with, at(22, 10));
        assert!(
            m.text.ends_with(
                "Evidence report: s3://lifeboat-backups/reports/evidence/2026-10/fleet-2026-10.html\n\
                 Alarm: lifeboat/prod/app-prod/snapshot-age\n"
            ),
            "{}",
            m.text
        );
        let r = render(&scope(), &alarm("OK", "ALARM"), &with, at(22, 11));
        assert!(r
            .text
            .contains("\nEvidence report: s3://lifeboat-backups/reports/evidence/2026-10/fleet-2026-10.html\n"));
        // The link is not part of what makes two messages the same alarm.
        assert_eq!(
            m.fingerprint,
            render(&scope(), &alarm("ALARM", "OK"), &last(), at(22, 10)).fingerprint
        );
    }

    #[test]
    fn a_failed_restore_test_run_says_where_to_look() {
        let n = Notice::RestoreTestFailed {
            execution: "quarterly-2026-10-01".into(),
            status: "FAILED".into(),
            since: at(1, 4),
            cause: Some("Lifeboat.RestoreTestFailed: restore tests failed for 1 of 3 databases: billing".into()),
        };
        let m = render(&scope(), &n, &LastGood::default(), at(1, 5));
        assert_eq!(m.subject, "[FAILED] restore test run quarterly-2026-10-01");
        assert!(m.text.contains(
            "What is wrong: Lifeboat.RestoreTestFailed: restore tests failed for 1 of 3 databases: billing\n"
        ));
        assert!(m.text.contains("reports/restore-tests/"));
    }

    #[test]
    fn a_cache_alarm_names_the_cache_what_is_stale_and_what_to_do() {
        let n = Notice::Alarm {
            name: "lifeboat/prod/cache:sessions/export-age".into(),
            state: "ALARM".into(),
            previous: "OK".into(),
            reason: String::new(),
            since: at(22, 10),
        };
        let last = LastGood {
            export: Some((
                "exports/_caches/sessions/rdb/2026/11/20/sessions-rdb-20261120T030000Z.manifest.json".into(),
                at(20, 3),
            )),
            ..LastGood::default()
        };
        let m = render(&scope(), &n, &last, at(22, 10));
        assert_eq!(m.kind, Kind::Problem);
        assert_eq!(
            m.subject,
            "[ALARM] cache sessions: no verified RDB copy of cache sessions within the policy"
        );
        assert_eq!(
            m.text,
            "[ALARM] cache sessions: no verified RDB copy of cache sessions within the policy\n\
             Cache: sessions\n\
             What is wrong: no verified RDB copy of cache sessions within the policy\n\
             Since: 2026-11-22 10:00 UTC (was OK)\n\
             Last good backup: RDB copy exports/_caches/sessions/rdb/2026/11/20/sessions-rdb-20261120T030000Z.manifest.json \
             at 2026-11-20 03:00 UTC (2 days ago)\n\
             What to do: Look at the RDB copy's last runs in its log group: a copy whose file failed verification \
             never gets a manifest. Copies live under exports/_caches/sessions/rdb/ in the export bucket. Runbook: \
             docs/book/src/guide/caches.md.\n\
             Alarm: lifeboat/prod/cache:sessions/export-age\n"
        );
        let snapshot = Notice::Alarm {
            name: "lifeboat/prod/cache:sessions/snapshot-age".into(),
            state: "ALARM".into(),
            previous: "OK".into(),
            reason: String::new(),
            since: at(22, 10),
        };
        let m = render(&scope(), &snapshot, &LastGood::default(), at(22, 10));
        assert!(
            m.text
                .contains("{\"caches\": [\"sessions\"], \"reason\": \"missed schedule\"}"),
            "{}",
            m.text
        );
        assert!(
            m.text
                .contains("Last good backup: no verified RDB copy found; its snapshots: aws elasticache"),
            "{}",
            m.text
        );
        // A cache and a database of the same name are different alarms.
        let db = render(&scope(), &alarm("ALARM", "OK"), &LastGood::default(), at(22, 10));
        assert_ne!(db.fingerprint, m.fingerprint);
    }

    #[test]
    fn export_alarms_name_their_profile() {
        let n = Notice::Alarm {
            name: "lifeboat/prod/billing/export-age-critical".into(),
            state: "ALARM".into(),
            previous: "OK".into(),
            reason: String::new(),
            since: at(22, 10),
        };
        let m = render(&scope(), &n, &LastGood::default(), at(22, 10));
        assert_eq!(
            m.subject,
            "[ALARM] billing: no complete `critical` export of billing within the policy"
        );
        assert!(
            m.text
                .contains("{\"database\": \"billing\", \"profile\": \"critical\"}"),
            "{}",
            m.text
        );
    }
}
