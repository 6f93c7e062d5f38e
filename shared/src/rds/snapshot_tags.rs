//! The tag set Lifeboat writes on the snapshots it makes and on their DR copies, and when a manual snapshot
//! expires.
//!
//! Owns which `lifeboat:*` tags a new snapshot gets (ownership, source, policy, logical time, database,
//! version; reason and expiry for manual ones), how free text is made into a value RDS accepts, and how a
//! snapshot's tags are read back (its [`Source`], logical time and expiry), for databases and caches alike. The
//! tag keys themselves are [`crate::core::tags`]; which tags a DR copy carries over is [`crate::rds::copies`].
//! Pure: it never calls AWS; it must never mark a snapshot Lifeboat did not make as managed. It knows no
//! snapshot type, so that the snapshot adapter and the retention rules can both read tags through it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;

use crate::core::tags;
use crate::rds::naming::SnapshotKind;

/// What a manual invocation adds to its snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualSnapshot {
    /// Why it was taken (already trimmed and length-checked by the event parser).
    pub reason: String,
    /// When it may be deleted.
    pub expires_at: DateTime<Utc>,
}

impl ManualSnapshot {
    /// A manual snapshot taken at `now` is kept `retain_days` (the invocation's), else `default_days`.
    pub fn new(reason: &str, now: DateTime<Utc>, retain_days: Option<u32>, default_days: u32) -> Self {
        let days = retain_days.unwrap_or(default_days);
        Self {
            reason: reason.to_owned(),
            expires_at: now + Duration::days(i64::from(days)),
        }
    }
}

/// A time as tags carry it: RFC 3339, whole seconds, `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RDS tag values allow letters, digits, white space and `_ . : / = + - @`; anything else becomes a space.
pub fn tag_value(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c) {
                c
            } else {
                ' '
            }
        })
        .take(256)
        .collect()
}

/// The tags of a new snapshot of database `db` with logical time `at`, made under retention `policy`.
pub fn snapshot_tags(
    db: &str,
    kind: SnapshotKind,
    at: DateTime<Utc>,
    policy: &str,
    manual: Option<&ManualSnapshot>,
) -> BTreeMap<String, String> {
    let source = match kind {
        SnapshotKind::Schedule => "schedule",
        SnapshotKind::Manual => "manual",
    };
    let mut t = BTreeMap::from([
        (tags::MANAGED.to_owned(), "true".to_owned()),
        (tags::SOURCE.to_owned(), source.to_owned()),
        (tags::POLICY.to_owned(), tag_value(&policy.replace(',', " "))),
        (tags::CREATED_AT.to_owned(), rfc3339(at)),
        (tags::DATABASE.to_owned(), db.to_owned()),
        (tags::VERSION.to_owned(), crate::core::VERSION.to_owned()),
    ]);
    if let Some(m) = manual {
        t.insert(tags::REASON.to_owned(), tag_value(&m.reason));
        t.insert(tags::EXPIRES_AT.to_owned(), rfc3339(m.expires_at));
    }
    t
}

/// Which trigger made a Lifeboat snapshot (from its `lifeboat:source` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Schedule,
    Manual,
    Unknown,
}

/// How a snapshot's tags say it was made: by the schedule, by hand, or not by Lifeboat.
pub fn source_of(tags: &BTreeMap<String, String>) -> Source {
    match tags.get(tags::SOURCE).map(String::as_str) {
        Some("schedule") => Source::Schedule,
        Some("manual") => Source::Manual,
        _ => Source::Unknown,
    }
}

/// The time a snapshot stands for: the schedule time in its tag, else when the service created it, else the
/// epoch (so an undated snapshot is the oldest, never the newest).
pub fn logical_time_of(tags: &BTreeMap<String, String>, created: Option<DateTime<Utc>>) -> DateTime<Utc> {
    tags.get(tags::CREATED_AT)
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|t| t.with_timezone(&Utc))
        .or(created)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A manual snapshot's expiry, from its tag.
pub fn expires_at_of(tags: &BTreeMap<String, String>) -> Option<DateTime<Utc>> {
    tags.get(tags::EXPIRES_AT)
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 37).unwrap()
    }

    #[test]
    fn tag_values_drop_characters_rds_refuses() {
        assert_eq!(
            tag_value("before migration #42, (urgent)!"),
            "before migration  42   urgent  "
        );
        assert_eq!(tag_value(&"x".repeat(300)).len(), 256);
    }

    #[test]
    fn scheduled_snapshots_get_the_ownership_set() {
        let t = snapshot_tags("app-prod", SnapshotKind::Schedule, at(), "daily=7,weekly=4", None);
        let expected = BTreeMap::from([
            (tags::MANAGED, "true"),
            (tags::SOURCE, "schedule"),
            (tags::POLICY, "daily=7 weekly=4"),
            (tags::CREATED_AT, "2026-11-22T02:00:37Z"),
            (tags::DATABASE, "app-prod"),
            (tags::VERSION, crate::core::VERSION),
        ]);
        let got: BTreeMap<&str, &str> = t.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn manual_snapshots_add_reason_and_expiry() {
        let m = ManualSnapshot::new("before migration #42", at(), Some(3), 30);
        assert_eq!(m.expires_at, at() + Duration::days(3));
        let t = snapshot_tags("app-prod", SnapshotKind::Manual, at(), "daily=7", Some(&m));
        assert_eq!(t[tags::SOURCE], "manual");
        assert_eq!(t[tags::REASON], "before migration  42");
        assert_eq!(t[tags::EXPIRES_AT], "2026-11-25T02:00:37Z");
        assert_eq!(
            ManualSnapshot::new("x", at(), None, 30).expires_at,
            at() + Duration::days(30)
        );
    }
}
