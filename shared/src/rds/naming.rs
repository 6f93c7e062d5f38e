//! Deterministic snapshot identifiers.
//!
//! The identifier is a function of the database and the logical time (the schedule's time, to the minute), so a
//! redelivered or retried event asks for the same snapshot again and RDS answers "already exists" instead of
//! making a second one. Identifiers stay within the tightest RDS limit (cluster snapshots: 63 characters; letters,
//! digits and single hyphens; starting with a letter): a long database name is shortened and given a hash of the
//! full name, so two long names never collide.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "lifeboat";
/// RDS's limit for DB cluster snapshot identifiers; instance snapshots allow 255, we keep one rule for both.
pub const MAX_SNAPSHOT_ID_LEN: usize = 63;

/// Checks an RDS DB instance or cluster identifier: 1 to 63 letters, digits or hyphens, starting with a letter,
/// no two hyphens in a row, not ending with a hyphen.
pub fn validate_db_identifier(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 63 {
        return Err("an RDS identifier has 1 to 63 characters".into());
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err("an RDS identifier has only letters, digits and hyphens".into());
    }
    if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("an RDS identifier starts with a letter".into());
    }
    if id.ends_with('-') || id.contains("--") {
        return Err("an RDS identifier has no trailing or doubled hyphens".into());
    }
    Ok(())
}

/// Which trigger a snapshot came from; part of its identifier so a manual snapshot never collides with a
/// scheduled one taken in the same minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    Schedule,
    Manual,
}

/// `lifeboat-<db>-<yyyymmdd-hhmm>` for scheduled snapshots, `lifeboat-<db>-manual-<yyyymmdd-hhmmss>` for manual.
pub fn snapshot_id(db: &str, kind: SnapshotKind, at: DateTime<Utc>) -> String {
    let suffix = match kind {
        SnapshotKind::Schedule => at.format("%Y%m%d-%H%M").to_string(),
        SnapshotKind::Manual => at.format("manual-%Y%m%d-%H%M%S").to_string(),
    };
    let room = MAX_SNAPSHOT_ID_LEN - PREFIX.len() - suffix.len() - 2;
    let db_part = shorten(&db.to_ascii_lowercase(), room);
    format!("{PREFIX}-{db_part}-{suffix}")
}

/// The one shortening rule of every identifier Lifeboat derives from a database's name: the name itself when it
/// fits in `room` characters, else a readable head of it, a hyphen and six hex digits of the SHA-256 of the whole
/// name, so two long names that share a head never collide. `room` must be at least 8.
pub fn shorten(name: &str, room: usize) -> String {
    if name.len() <= room {
        return name.to_owned();
    }
    let hash = Sha256::digest(name.as_bytes());
    let tag: String = hash.iter().take(3).map(|b| format!("{b:02x}")).collect();
    let head: String = name.chars().take(room - tag.len() - 1).collect();
    format!("{}-{tag}", head.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 37).unwrap()
    }

    #[test]
    fn scheduled_ids_are_minute_precise() {
        assert_eq!(
            snapshot_id("app-prod", SnapshotKind::Schedule, at()),
            "lifeboat-app-prod-20261122-0200"
        );
        assert_eq!(
            snapshot_id("App-Prod", SnapshotKind::Schedule, at()),
            "lifeboat-app-prod-20261122-0200"
        );
    }

    #[test]
    fn manual_ids_are_second_precise_and_distinct_from_scheduled() {
        assert_eq!(
            snapshot_id("app-prod", SnapshotKind::Manual, at()),
            "lifeboat-app-prod-manual-20261122-020037"
        );
    }

    #[test]
    fn long_names_are_shortened_with_a_hash() {
        let long = "a-very-long-database-identifier-that-uses-all-sixty-three-chars";
        assert_eq!(long.len(), 63);
        let id = snapshot_id(long, SnapshotKind::Schedule, at());
        assert_eq!(id.len(), MAX_SNAPSHOT_ID_LEN, "{id}");
        assert!(id.starts_with("lifeboat-a-very-long-database-identifier"), "{id}");
    }

    #[test]
    fn validates_rds_identifiers() {
        assert!(validate_db_identifier("app-prod-1").is_ok());
        for bad in ["", "1app", "app--prod", "app-", "app_prod", &"a".repeat(64)] {
            assert!(validate_db_identifier(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    fn db_identifier() -> impl Strategy<Value = String> {
        "[a-z]([a-z0-9]|-[a-z0-9]){0,31}"
    }

    proptest! {
        #[test]
        fn ids_are_valid_rds_cluster_snapshot_identifiers(db in db_identifier(), secs in 0i64..4_000_000_000, manual: bool) {
            let kind = if manual { SnapshotKind::Manual } else { SnapshotKind::Schedule };
            let t = Utc.timestamp_opt(secs, 0).unwrap();
            let id = snapshot_id(&db, kind, t);
            prop_assert!(id.len() <= MAX_SNAPSHOT_ID_LEN, "{} is {} long", id, id.len());
            prop_assert!(validate_db_identifier(&id).is_ok(), "{} is not a valid identifier", id);
            prop_assert!(id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            prop_assert!(!id.contains("--") && !id.ends_with('-'));
        }

        #[test]
        fn distinct_databases_get_distinct_ids(a in db_identifier(), b in db_identifier()) {
            prop_assume!(a != b);
            prop_assert_ne!(snapshot_id(&a, SnapshotKind::Schedule, at()), snapshot_id(&b, SnapshotKind::Schedule, at()));
        }

        #[test]
        fn the_same_minute_gives_the_same_id(db in db_identifier(), s1 in 0u32..60, s2 in 0u32..60) {
            let t1 = Utc.with_ymd_and_hms(2026, 3, 1, 6, 0, s1).unwrap();
            let t2 = Utc.with_ymd_and_hms(2026, 3, 1, 6, 0, s2).unwrap();
            prop_assert_eq!(snapshot_id(&db, SnapshotKind::Schedule, t1), snapshot_id(&db, SnapshotKind::Schedule, t2));
        }
    }
}
