//! The demo's timeline as a function of one moment, the anchor: when each scheduled run fires, which logical
//! time each export carries, which month the evidence report covers, when the sample alarm fired and cleared.
//!
//! Owns: turning the sample events of `events/` (which keep their fixed dates: they are samples) into the events
//! the demo sends, each re-dated from the anchor. Must never: read a clock (the caller passes the anchor, the
//! moment the demo starts), or leave a date of a sample in an event it sends, so the story told on any day is
//! the same story, that day.

use chrono::{DateTime, Datelike, Duration, DurationRound, Utc};
use serde_json::Value;

/// Days of scheduled snapshots before the anchor: two months of history show every kind of retention decision.
pub const BACKFILL_DAYS: i64 = 45;

/// The demo's timeline, anchored at the moment it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Story {
    /// The moment the demo started, to the minute: today's scheduled snapshot run and today's exports fire then
    /// (never later than the moment the functions measure against, so nothing the demo makes is from the future).
    pub today: DateTime<Utc>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Story {
    pub fn at(anchor: DateTime<Utc>) -> Self {
        Self {
            today: anchor.duration_trunc(Duration::minutes(1)).unwrap_or(anchor),
        }
    }

    /// The logical times of the scheduled snapshot runs before today's, oldest first, at today's time of day.
    pub fn backfill(&self) -> Vec<DateTime<Utc>> {
        (1..=BACKFILL_DAYS)
            .rev()
            .map(|d| self.today - Duration::days(d))
            .collect()
    }

    /// The scheduler's event (`events/snapshot/scheduled.json`'s shape) for a run at `time`.
    pub fn scheduled(&self, template: &Value, time: DateTime<Utc>) -> Value {
        let mut event = template.clone();
        event["time"] = Value::String(rfc3339(time));
        event
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

    /// The scheduled export of `profile` at `time` (`events/export/scheduled-*.json`'s shape).
    pub fn export(&self, profile: &str, time: DateTime<Utc>) -> Value {
        serde_json::json!({"profile": profile, "time": rfc3339(time)})
    }

    /// The schedule's times since the start of yesterday up to today's run: `first` after each midnight, then
    /// every `every`. A day and more of history, so the first day the evidence report judges is complete and
    /// whole, even when the demo runs across midnight.
    fn since_yesterday(&self, first: Duration, every: Duration) -> Vec<DateTime<Utc>> {
        let midnight = self.today.duration_trunc(Duration::days(1)).unwrap_or(self.today);
        let mut out = Vec::new();
        let mut t = midnight - Duration::days(1) + first;
        while t <= self.today {
            out.push(t);
            t += every;
        }
        out
    }

    /// The daily full exports (02:00, as `events/export/scheduled-full.json`), oldest first.
    pub fn full_exports(&self) -> Vec<DateTime<Utc>> {
        self.since_yesterday(Duration::hours(2), Duration::days(1))
    }

    /// The critical tables' exports every 6 hours from midnight (as `events/export/scheduled-critical.json`),
    /// oldest first.
    pub fn critical_exports(&self) -> Vec<DateTime<Utc>> {
        self.since_yesterday(Duration::zero(), Duration::hours(6))
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

    /// Every event the story sends, as text.
    fn told(story: &Story) -> String {
        let scheduled = sample("events/snapshot/scheduled.json");
        let finished = sample("events/snapshot/rds-snapshot-finished.json");
        let (alarm, recovery) = story.alarm_and_recovery(
            &sample("events/notify/alarm.json"),
            &sample("events/notify/recovery.json"),
        );
        let mut events: Vec<Value> = story
            .backfill()
            .into_iter()
            .map(|t| story.scheduled(&scheduled, t))
            .collect();
        events.push(story.scheduled(&scheduled, story.today));
        events.push(story.snapshot_finished(&finished, "lifeboat-app-prod-x"));
        events.extend(story.full_exports().into_iter().map(|t| story.export("full", t)));
        events.extend(
            story
                .critical_exports()
                .into_iter()
                .map(|t| story.export("critical", t)),
        );
        events.extend([alarm, recovery]);
        events.push(Value::String(story.evidence_period()));
        serde_json::to_string(&events).unwrap()
    }

    #[test]
    fn no_event_keeps_a_date_of_the_samples() {
        let story = Story::at(Utc.with_ymd_and_hms(2031, 3, 14, 9, 26, 53).unwrap());
        let text = told(&story);
        for sample_date in ["2026-11", "2026-10", "/11/26", "20261122"] {
            assert!(!text.contains(sample_date), "{sample_date} is left in {text}");
        }
        assert!(text.contains("2031-03-14T09:26:00Z"), "{text}");
        assert_eq!(story.evidence_period(), "2031-03");
    }

    #[test]
    fn the_story_a_year_later_is_the_same_story_a_year_later() {
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 7, 0, 30).unwrap();
        let (a, b) = (Story::at(now), Story::at(now + Duration::days(365)));
        assert_eq!(b.today - a.today, Duration::days(365));
        let shifted: Vec<_> = a.backfill().iter().map(|t| *t + Duration::days(365)).collect();
        assert_eq!(b.backfill(), shifted);
        assert!(a.backfill().iter().all(|t| *t < a.today));
        assert!(
            a.today <= now,
            "today's run never fires after the moment the demo starts"
        );
        let shifted: Vec<_> = a.critical_exports().iter().map(|t| *t + Duration::days(365)).collect();
        assert_eq!(b.critical_exports(), shifted);
    }

    #[test]
    fn the_exports_are_a_day_of_the_schedule_and_fresh_at_any_time_of_day() {
        for (h, m) in [(0, 0), (0, 1), (1, 59), (2, 0), (5, 59), (6, 0), (13, 7), (23, 59)] {
            let now = Utc.with_ymd_and_hms(2027, 1, 1, h, m, 0).unwrap();
            let story = Story::at(now);
            let yesterday = Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap();
            let critical = story.critical_exports();
            let full = story.full_exports();
            assert_eq!(
                critical[..4],
                [0, 6, 12, 18].map(|h| yesterday + Duration::hours(h)),
                "{now}"
            );
            assert_eq!(full[0], yesterday + Duration::hours(2), "{now}");
            for times in [&critical, &full] {
                assert!(times.iter().all(|t| *t <= story.today), "{now}: {times:?}");
            }
            // Within the policy's 7 and 26 hours when the demo's monitor looks, minutes later.
            assert!(now - *critical.last().unwrap() <= Duration::hours(6), "{now}");
            assert!(now - *full.last().unwrap() <= Duration::hours(24), "{now}");
        }
    }
}
