//! The demo's timeline as a function of one moment, the anchor: the plan document's schedules (each rule due at
//! a tick of the story's), the ticks the deployed schedules fire at, which month the evidence report covers, when
//! the sample alarm fired and cleared.
//!
//! Owns: the demo's plan document, written from the anchor, and turning the sample events of `events/` (which
//! keep their fixed dates: they are samples) into the events the demo sends, each re-dated from the anchor. Must
//! never: read a clock (the caller passes the anchor, the moment the demo starts), or leave a date of a sample in
//! an event it sends, so the story told on any day is the same story, that day.
//!
//! Why the plan is written from the anchor: monitor judges every age against the real clock (as it does in AWS),
//! so today's runs must be recent whenever the demo runs; a plan with fixed hours would make them up to a day old.

use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc};
use serde_json::{json, Value};

/// Days of scheduled snapshots before the anchor: two months of history show every kind of retention decision.
pub const BACKFILL_DAYS: i64 = 45;

/// The demo's timeline, anchored at the moment it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Story {
    /// Today's snapshot tick: the last quarter hour at least half an hour before the demo started, so that
    /// today's three ticks ([`Story::today`], [`Story::export_tick`], [`Story::test_tick`]) are all in the past of
    /// the clock the functions measure against (nothing the demo makes is from the future).
    pub today: DateTime<Utc>,
}

/// Databases by the plan that lists them (`lifeboat:plan` tags would do the same).
pub const PRODUCTION: [&str; 3] = ["app-prod", "billing", "analytics"];
pub const STAGING: [&str; 1] = ["app-staging"];
/// The critical tables, dumped every 6 hours in production.
pub const CRITICAL_TABLES: [&str; 3] = ["users", "projects", "sessions"];

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Story {
    pub fn at(anchor: DateTime<Utc>) -> Self {
        let quarter = anchor.duration_trunc(Duration::minutes(15)).unwrap_or(anchor);
        Self {
            today: quarter - Duration::minutes(30),
        }
    }

    /// Today's export tick: full and critical exports, and the cache's RDB copy requested.
    pub fn export_tick(&self) -> DateTime<Utc> {
        self.today + Duration::minutes(15)
    }

    /// Today's restore tests; the export tick at the same time finishes the RDB copy requested before.
    pub fn test_tick(&self) -> DateTime<Utc> {
        self.today + Duration::minutes(30)
    }

    /// The team's policy as a plan document, tiered as such policies are: production's snapshots kept 30 days,
    /// then weekly and monthly, and copied to the DR region, its full dump daily and its critical tables every 6
    /// hours, credentials rotated every 30 days; staging's snapshots kept 14 days and one daily dump; the session
    /// cache snapshotted, copied to S3 as verified RDB files, and restore-tested; every database restore-tested
    /// daily; `sandbox` never backed up. Each daily rule is due at today's tick for it.
    pub fn plan(&self) -> Value {
        let daily = |t: DateTime<Utc>| format!("{} {} * * *", t.minute(), t.hour());
        let export = self.export_tick();
        let six_hourly = format!("{} {}-23/6 * * *", export.minute(), export.hour() % 6);
        let test = [{ json!({"schedule": daily(self.test_tick()), "from": "newest-snapshot"}) }];
        json!({
            "format": 1,
            "description": "The demo team's backup policy (make demo): tiered by environment.",
            "plans": {
                "production": {
                    "databases": PRODUCTION,
                    "snapshots": {"schedule": daily(self.today), "retention": {"daily": 30, "weekly": 8, "monthly": 12},
                                  "dr_copy": true},
                    "pitr": {"min_days": 7},
                    "exports": {
                        "full": {"schedule": daily(export), "keep_days": 30},
                        "critical": {"schedule": six_hourly, "include": CRITICAL_TABLES, "keep_days": 7}
                    },
                    "restore_tests": test,
                    "rotation": {"every_days": 30},
                    // Staging's copy of app: production's newest export, personal data masked on the way, swapped
                    // in once proven. Run by hand in the demo (no schedule).
                    "refresh": [{
                        "name": "staging-app", "from": "app-prod", "export": "full",
                        "into": {"instance": "app-staging", "database": "app_staging"}, "swap": true,
                        "masking": {
                            "strict": ["public.users"],
                            "tables": {
                                "public.users": {"id": "keep", "email": "fake:email", "name": "fake:name",
                                                 "created_at": "keep"},
                                "public.messages": {"body": "fake:text"},
                                "public.sessions": {"user_agent": "redact"}
                            }
                        }
                    }]
                },
                "staging": {
                    "databases": STAGING,
                    "snapshots": {"schedule": daily(self.today), "retention": {"daily": 14}},
                    "exports": {"full": {"schedule": daily(export), "keep_days": 14}},
                    "restore_tests": test
                },
                "sessions": {
                    "caches": [super::CACHE],
                    "cache_snapshots": {"schedule": daily(self.today), "retention": {"daily": 7}},
                    "rdb_copies": {"schedule": daily(export), "keep_days": 7},
                    "restore_tests": [{"schedule": daily(self.test_tick()), "from": "newest-cache-snapshot"}]
                },
                "dev": {"databases": ["sandbox"], "no_backups": "recreated at will from seed data"}
            }
        })
    }

    /// The export profiles each database's plan dumps, with how old its newest export may be before monitor
    /// alarms (the schedule's longest gap plus 10 %, at least 2 hours: `docs/book/src/reference/plans.md`).
    pub fn export_max_age_hours(db: &str) -> Vec<(&'static str, f64)> {
        if PRODUCTION.contains(&db) {
            vec![("full", 26.4), ("critical", 8.0)]
        } else {
            vec![("full", 26.4)]
        }
    }

    /// The logical times of the scheduled snapshot runs before today's, oldest first, at today's time of day.
    pub fn backfill(&self) -> Vec<DateTime<Utc>> {
        (1..=BACKFILL_DAYS)
            .rev()
            .map(|d| self.today - Duration::days(d))
            .collect()
    }

    /// RDS's "snapshot finished" event (`events/snapshot/rds-snapshot-finished.json`'s shape) for `snapshot` (an
    /// identifier of today's run), a few minutes after the run fired.
    pub fn snapshot_finished(&self, template: &Value, snapshot: &str) -> Value {
        let at = self.today + Duration::seconds(3);
        let mut event = template.clone();
        let arn = |old: &Value| -> Value {
            let old = old.as_str().unwrap_or_default();
            let prefix = old.rsplit_once(':').map(|(p, _)| p).unwrap_or(old);
            Value::String(format!("{prefix}:{snapshot}"))
        };
        event["time"] = Value::String(rfc3339(at));
        event["resources"] = Value::Array(vec![arn(&template["resources"][0])]);
        event["detail"]["SourceArn"] = arn(&template["detail"]["SourceArn"]);
        event["detail"]["SourceIdentifier"] = Value::String(snapshot.to_owned());
        event["detail"]["Date"] = Value::String(rfc3339_ms(at));
        event
    }

    /// The export ticks since yesterday's: every 6 hours up to today's (the first and the last run the full
    /// dump too, the cache's RDB copy is requested at them), oldest first.
    pub fn export_ticks(&self) -> Vec<DateTime<Utc>> {
        (0..=4)
            .rev()
            .map(|k| self.export_tick() - Duration::hours(6 * k))
            .collect()
    }

    /// The evidence report's period: the anchor's month so far. The default period (the last 30 days) ends at
    /// the start of today, so it would show none of what the demo does today (its exports and restore tests).
    pub fn evidence_period(&self) -> String {
        format!("{:04}-{:02}", self.today.year(), self.today.month())
    }

    /// The sample alarm (`events/notify/alarm.json`) and its recovery (`events/notify/recovery.json`), re-dated:
    /// the alarm fired two hours before today's run, and cleared at it.
    pub fn alarm_and_recovery(&self, alarm: &Value, recovery: &Value) -> (Value, Value) {
        let fired = self.today - Duration::hours(2);
        let before = fired - Duration::hours(30);
        let cleared = self.today;
        let datapoint = |t: DateTime<Utc>| t.format("%d/%m/%y %H:00:00").to_string();
        let restamp = |e: &Value, at: DateTime<Utc>, previous: DateTime<Utc>| {
            let mut e = e.clone();
            e["time"] = Value::String(rfc3339(at));
            e["detail"]["state"]["timestamp"] = Value::String(format!("{}+0000", at.format("%Y-%m-%dT%H:%M:%S%.3f")));
            e["detail"]["previousState"]["timestamp"] =
                Value::String(format!("{}+0000", previous.format("%Y-%m-%dT%H:%M:%S%.3f")));
            e
        };
        let mut a = restamp(alarm, fired, before);
        a["detail"]["state"]["reason"] = Value::String(format!(
            "Threshold Crossed: 1 out of the last 2 datapoints [111600.0 ({})] was greater than the threshold \
             (93600.0) (minimum 1 datapoint for OK -> ALARM transition).",
            datapoint(fired - Duration::hours(1))
        ));
        a["detail"]["previousState"]["reason"] = Value::String(format!(
            "Threshold Crossed: 1 out of the last 2 datapoints [7200.0 ({})] was not greater than the threshold \
             (93600.0).",
            datapoint(fired - Duration::hours(2))
        ));
        let mut r = restamp(recovery, cleared, fired);
        r["detail"]["state"]["reason"] = Value::String(format!(
            "Threshold Crossed: 1 out of the last 2 datapoints [3600.0 ({})] was not greater than the threshold \
             (93600.0).",
            datapoint(cleared - Duration::hours(1))
        ));
        r["detail"]["previousState"]["reason"] = a["detail"]["state"]["reason"].clone();
        (a, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo_root;
    use chrono::TimeZone;

    fn sample(path: &str) -> Value {
        serde_json::from_slice(&std::fs::read(repo_root().join(path)).unwrap()).unwrap()
    }

    /// Every event and document the story writes itself, as text (the ticks' inputs are the stack's schedules').
    fn told(story: &Story) -> String {
        let finished = sample("events/snapshot/rds-snapshot-finished.json");
        let (alarm, recovery) = story.alarm_and_recovery(
            &sample("events/notify/alarm.json"),
            &sample("events/notify/recovery.json"),
        );
        let events = vec![
            story.snapshot_finished(&finished, "lifeboat-app-prod-x"),
            alarm,
            recovery,
            Value::String(story.evidence_period()),
        ];
        serde_json::to_string(&events).unwrap()
    }

    #[test]
    fn no_event_keeps_a_date_of_the_samples() {
        let story = Story::at(Utc.with_ymd_and_hms(2031, 3, 14, 9, 26, 53).unwrap());
        let text = told(&story);
        for sample_date in ["2026-11", "2026-10", "/11/26", "20261122"] {
            assert!(!text.contains(sample_date), "{sample_date} is left in {text}");
        }
        assert!(text.contains("2031-03-14T08:45:03Z"), "{text}");
        assert_eq!(story.evidence_period(), "2031-03");
    }

    #[test]
    fn every_tick_is_in_the_past_and_every_rule_is_due_at_a_tick_of_the_story() {
        for (h, m) in [(0, 0), (0, 1), (1, 59), (2, 0), (5, 59), (6, 0), (13, 7), (23, 59)] {
            let now = Utc.with_ymd_and_hms(2027, 1, 1, h, m, 0).unwrap();
            let story = Story::at(now);
            let ticks = story.export_ticks();
            assert!(story.backfill().iter().all(|t| *t < story.today), "{now}");
            assert!(
                story.test_tick() <= now && *ticks.last().unwrap() <= now,
                "{now}: {ticks:?}"
            );
            assert!(now - story.today < Duration::hours(1), "{now}");
            // Monitor looks minutes later: the critical tables' last export is within their 8 hours.
            assert_eq!(ticks.len(), 5);
            assert_eq!(ticks[4] - ticks[0], Duration::hours(24), "{now}");

            let plan = lifeboat::plans::document::parse(story.plan().to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{now}: the demo's plan is refused: {e}"));
            let due = |t: DateTime<Utc>| -> Vec<String> {
                let mut ids: Vec<String> = plan
                    .plans
                    .iter()
                    .flat_map(|(name, p)| {
                        p.rules()
                            .into_iter()
                            .filter(|r| r.schedule.is_some_and(|s| s.matches(t)))
                            .map(move |r| format!("{name}/{}", r.id))
                    })
                    .collect();
                ids.sort();
                ids
            };
            assert!(
                due(story.today).iter().any(|r| r == "production/snapshots"),
                "{now}: {:?}",
                due(story.today)
            );
            let at_export = due(story.export_tick());
            for r in [
                "production/exports.full",
                "production/exports.critical",
                "staging/exports.full",
                "sessions/rdb_copies",
            ] {
                assert!(at_export.contains(&r.to_owned()), "{now}: {r} not in {at_export:?}");
            }
            assert!(
                due(ticks[1]).iter().any(|r| r == "production/exports.critical"),
                "{now}"
            );
            assert!(!due(ticks[1]).iter().any(|r| r == "production/exports.full"), "{now}");
            assert_eq!(
                due(story.test_tick())
                    .iter()
                    .filter(|r| r.contains("restore_tests"))
                    .count(),
                3,
                "{now}: {:?}",
                due(story.test_tick())
            );
        }
    }
}
