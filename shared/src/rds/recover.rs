//! The RDS half of `recover` (one database, or some of its tables, back as it was at a time): the restorable
//! window and whether a time is inside it, and the scratch instance the point-in-time restore goes into, named,
//! tagged and placed as a restore test's (so the janitor deletes it should every other cleanup fail).
//!
//! Owns those rules and the one describe call that reads the window. Never restores or deletes anything (see
//! `rds::instances`) and never connects to a database.

use chrono::{DateTime, Utc};

use aws_sdk_rds::types::Tag;

use crate::core::error::Error;
use crate::rds::restore::{EXPIRES_AT, RESTORED_FROM, RESTORE_TEST, SOURCE_DB};
use crate::rds::selection::DbKind;

/// The times a database can be restored to, as RDS describes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to {}",
            self.earliest.format("%Y-%m-%dT%H:%M:%SZ"),
            self.latest.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

/// Why a time cannot be recovered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutsideWindow {
    #[error(
        "{db} cannot be recovered to {at}: its restorable window is {window} (point-in-time recovery keeps \
         {retention_days} days)"
    )]
    Outside {
        db: String,
        at: String,
        window: String,
        retention_days: i32,
    },
    #[error("{db} has no point-in-time recovery (automated backups are off: backup retention is 0 days)")]
    Off { db: String },
}

/// Whether `at` is inside the window RDS describes; `None` when RDS describes none (backups off).
pub fn check_time(
    db: &str,
    at: DateTime<Utc>,
    window: Option<Window>,
    retention_days: i32,
) -> Result<(), OutsideWindow> {
    let Some(window) = window else {
        return Err(OutsideWindow::Off { db: db.to_owned() });
    };
    if at < window.earliest || at > window.latest {
        return Err(OutsideWindow::Outside {
            db: db.to_owned(),
            at: at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            window: window.to_string(),
            retention_days,
        });
    }
    Ok(())
}

/// The window of an instance or a cluster, and its retention in days, by the one rule restore tests choose in too:
/// a cluster's as RDS describes it; an instance's latest restorable time back to the later of that time less the
/// retention and the instance's creation (`crate::rds::recovery::instance_earliest`). `None` when backups are off
/// or RDS describes no latest time.
pub async fn restorable_window(
    rds: &aws_sdk_rds::Client,
    kind: DbKind,
    id: &str,
) -> Result<(Option<Window>, i32), Error> {
    let facts = crate::rds::instances::restorable(rds, kind, id).await?;
    let retention = facts.retention_days.unwrap_or(0);
    let earliest = match kind {
        DbKind::Cluster => facts.earliest,
        DbKind::Instance => crate::rds::recovery::instance_earliest(facts.latest, facts.retention_days, facts.created),
    };
    let window = match (earliest, facts.latest) {
        (Some(earliest), Some(latest)) if retention > 0 => Some(Window { earliest, latest }),
        _ => None,
    };
    Ok((window, retention))
}

/// The scratch instance (or cluster) of one recover: `lifeboat-rc-<db>-<yyyymmddhhmmss>`, its own prefix so it
/// never takes a restore test's name, within RDS's 63 characters.
pub fn scratch_identifier(db: &str, now: DateTime<Utc>) -> String {
    let stamp = now.format("%Y%m%d%H%M%S").to_string();
    let room = 63 - "lifeboat-rc-".len() - 1 - stamp.len();
    let part = crate::rds::naming::shorten(db, room);
    let mut id = format!("lifeboat-rc-{part}-{stamp}");
    while id.contains("--") {
        id = id.replace("--", "-");
    }
    id
}

/// The scratch's tags, in the restore call: a restore test of `db` (what the janitor deletes once `expires` has
/// passed, and what the delete refuses without), restored from the point in time.
pub fn scratch_tags(db: &str, at: DateTime<Utc>, expires: DateTime<Utc>) -> Vec<Tag> {
    [
        (RESTORE_TEST, "true".to_owned()),
        (SOURCE_DB, db.to_owned()),
        (EXPIRES_AT, expires.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        (
            RESTORED_FROM,
            format!("point in time {}", at.format("%Y-%m-%dT%H:%M:%SZ")),
        ),
    ]
    .into_iter()
    .map(|(k, v)| Tag::builder().key(k).value(v).build())
    .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
    }

    #[test]
    fn a_time_outside_the_window_is_refused_with_the_window() {
        let w = Some(Window {
            earliest: t(2, 0),
            latest: t(14, 35),
        });
        assert!(check_time("app-prod", t(14, 31), w, 7).is_ok());
        assert!(check_time("app-prod", t(2, 0), w, 7).is_ok());
        let late = check_time("app-prod", t(14, 36), w, 7).unwrap_err();
        assert_eq!(
            late.to_string(),
            "app-prod cannot be recovered to 2026-11-22T14:36:00Z: its restorable window is 2026-11-22T02:00:00Z \
             to 2026-11-22T14:35:00Z (point-in-time recovery keeps 7 days)"
        );
        assert!(check_time("app-prod", t(1, 59), w, 7).is_err());
        assert!(check_time("app-prod", t(3, 0), None, 0)
            .unwrap_err()
            .to_string()
            .contains("no point-in-time"));
    }

    #[test]
    fn the_scratch_is_named_and_tagged_as_a_restore_test() {
        let id = scratch_identifier("app-prod", t(14, 40));
        assert_eq!(id, "lifeboat-rc-app-prod-20261122144000");
        assert!(scratch_identifier(&"x".repeat(80), t(14, 40)).len() <= 63);
        let tags = scratch_tags("app-prod", t(14, 31), t(20, 40));
        let get = |k: &str| {
            tags.iter()
                .find(|t| t.key() == Some(k))
                .and_then(|t| t.value())
                .unwrap()
        };
        assert_eq!(get(RESTORE_TEST), "true");
        assert_eq!(get(SOURCE_DB), "app-prod");
        assert_eq!(get(EXPIRES_AT), "2026-11-22T20:40:00Z");
        assert_eq!(get(RESTORED_FROM), "point in time 2026-11-22T14:31:00Z");
    }
}
