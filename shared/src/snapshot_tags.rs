//! The tag set Lifeboat writes on the snapshots it makes and on their DR copies, and when a manual snapshot
//! expires.
//!
//! Owns which `lifeboat:*` tags a new snapshot gets (ownership, source, policy, logical time, database,
//! version; reason and expiry for manual ones), how free text is made into a value RDS accepts, and which tags a
//! copy carries over. The tag keys themselves are [`crate::tags`]. Pure: it never calls AWS; it must never
//! mark a snapshot Lifeboat did not make as managed.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::naming::SnapshotKind;
use crate::rds::Snapshot;
use crate::tags;

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
        (tags::VERSION.to_owned(), crate::VERSION.to_owned()),
    ]);
    if let Some(m) = manual {
        t.insert(tags::REASON.to_owned(), tag_value(&m.reason));
        t.insert(tags::EXPIRES_AT.to_owned(), rfc3339(m.expires_at));
    }
    t
}

/// How a snapshot's tags say it was made: by the schedule, by hand, or not by Lifeboat.
pub fn source_of(tags: &BTreeMap<String, String>) -> crate::rds::Source {
    match tags.get(tags::SOURCE).map(String::as_str) {
        Some("schedule") => crate::rds::Source::Schedule,
        Some("manual") => crate::rds::Source::Manual,
        _ => crate::rds::Source::Unknown,
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

/// The tags of a DR copy: the source's `lifeboat:*` tags and the source's ARN.
pub fn copy_tags(source: &Snapshot) -> BTreeMap<String, String> {
    let mut t: BTreeMap<String, String> = source
        .tags
        .iter()
        .filter(|(k, _)| k.starts_with("lifeboat:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    t.insert(tags::COPY_OF.to_owned(), source.arn.clone());
    t
}

/// The retention a snapshot was made under, read back from its `lifeboat:policy` tag (written with spaces for
/// commas, which tag values cannot hold); `None` when the tag is not a GFS policy.
pub fn policy_of(tag: &str) -> Option<crate::retention::Gfs> {
    crate::retention::Gfs::parse(&tag.split_whitespace().collect::<Vec<_>>().join(",")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::testing::snap;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 37).unwrap()
    }

    #[test]
    fn the_policy_tag_reads_back_as_the_policy_it_was_written_from() {
        let written = snapshot_tags("db", SnapshotKind::Schedule, Utc::now(), "daily=7,weekly=4", None);
        let gfs = policy_of(&written[tags::POLICY]).unwrap();
        assert_eq!((gfs.daily, gfs.weekly, gfs.monthly), (7, 4, 0));
        assert!(policy_of("whatever").is_none());
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
            (tags::VERSION, crate::VERSION),
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

    #[test]
    fn copies_carry_lifeboat_tags_and_their_source() {
        let mut source = snap("s1", at(), true);
        source.tags.insert("team".into(), "payments".into());
        let t = copy_tags(&source);
        assert_eq!(t[tags::MANAGED], "true");
        assert_eq!(t[tags::COPY_OF], source.arn);
        assert!(!t.contains_key("team"));
        assert!(!copy_tags(&snap("theirs", at(), false)).contains_key(tags::MANAGED));
    }
}
