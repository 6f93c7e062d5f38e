//! Rules of notification, as pure functions: which alarm transitions are worth a message (a problem, a recovery,
//! or nothing to say), and when a message is a repeat of one already sent (the dedupe window), with the shape of
//! the record that remembers a sent message (`notifications/<key>.json`, see [`crate::bucket::layout::notification_key`]).
//!
//! It must never call AWS nor write message text: the `notify` function renders and delivers.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What an alarm state change amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Problem,
    Recovery,
    /// OK or INSUFFICIENT_DATA that follows no ALARM (a new alarm settling): nothing to say.
    Quiet,
}

impl Kind {
    /// ALARM is a problem whatever came before; OK after ALARM is a recovery; anything else is quiet.
    pub fn of_transition(state: &str, previous: &str) -> Self {
        match (state, previous) {
            ("ALARM", _) => Self::Problem,
            ("OK", "ALARM") => Self::Recovery,
            _ => Self::Quiet,
        }
    }
}

/// What is remembered of the last message sent about one alarm or execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    pub fingerprint: String,
    pub sent_at: DateTime<Utc>,
    #[serde(default)]
    pub subject: String,
}

impl SentRecord {
    /// The record as stored: `{"fingerprint": ..., "sent_at": ..., "subject": ...}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({"fingerprint": self.fingerprint, "sent_at": self.sent_at, "subject": self.subject})
            .to_string()
    }
}

/// Whether a message with `fingerprint` is a repeat of the `last` one sent: the same fingerprint, sent less than
/// `window` before `now`. A window of zero never dedupes.
pub fn is_repeat(last: &SentRecord, fingerprint: &str, now: DateTime<Utc>, window: Duration) -> bool {
    last.fingerprint == fingerprint && now - last.sent_at < window
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn alarm_after_anything_is_a_problem_ok_after_alarm_a_recovery_the_rest_quiet() {
        assert_eq!(Kind::of_transition("ALARM", "OK"), Kind::Problem);
        assert_eq!(Kind::of_transition("ALARM", "INSUFFICIENT_DATA"), Kind::Problem);
        assert_eq!(Kind::of_transition("OK", "ALARM"), Kind::Recovery);
        assert_eq!(Kind::of_transition("OK", "INSUFFICIENT_DATA"), Kind::Quiet);
        assert_eq!(Kind::of_transition("INSUFFICIENT_DATA", "ALARM"), Kind::Quiet);
    }

    #[test]
    fn the_record_keeps_its_json_shape() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let r = SentRecord {
            fingerprint: "ab".into(),
            sent_at: at,
            subject: "s".into(),
        };
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"fingerprint": "ab", "sent_at": at, "subject": "s"})
        );
        assert_eq!(serde_json::from_value::<SentRecord>(json).unwrap(), r);
        let old: SentRecord =
            serde_json::from_value(serde_json::json!({"fingerprint": "ab", "sent_at": "2026-11-22T10:00:00Z"}))
                .unwrap();
        assert_eq!(old.sent_at, at);
    }

    proptest! {
        /// Only the same message within the window is a repeat.
        #[test]
        fn a_repeat_is_the_same_message_within_the_window(
            minutes_ago in 0i64..10_000,
            window in 0i64..10_000,
            same in any::<bool>(),
        ) {
            let now = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
            let last = SentRecord {
                fingerprint: "f".into(),
                sent_at: now - Duration::minutes(minutes_ago),
                subject: String::new(),
            };
            let fp = if same { "f" } else { "g" };
            prop_assert_eq!(
                is_repeat(&last, fp, now, Duration::minutes(window)),
                same && minutes_ago < window
            );
        }
    }
}
