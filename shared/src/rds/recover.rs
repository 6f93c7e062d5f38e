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

/// The window of an instance or a cluster, and its retention in days. A cluster describes both ends; an instance
/// describes its latest restorable time, and its earliest is the later of its creation and that time less the
/// retention (what RDS keeps of its backups and WAL). `None` when backups are off or RDS describes no latest time.
pub async fn restorable_window(
    rds: &aws_sdk_rds::Client,
    kind: DbKind,
    id: &str,
) -> Result<(Option<Window>, i32), Error> {
    let at = |t: Option<&aws_sdk_rds::primitives::DateTime>| {
        t.and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
    };
    let (earliest, latest, retention) = match kind {
        DbKind::Instance => {
            let out = rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
                .map_err(|e| Error::aws("DescribeDBInstances", e))?;
            let i = out.db_instances().first();
            let retention = i.and_then(|i| i.backup_retention_period()).unwrap_or(0);
            let latest = at(i.and_then(|i| i.latest_restorable_time()));
            let created = at(i.and_then(|i| i.instance_create_time()));
            let kept = latest.map(|l| l - chrono::Duration::days(i64::from(retention)));
            (kept.max(created), latest, retention)
        }
        DbKind::Cluster => {
            let out = rds
                .describe_db_clusters()
                .db_cluster_identifier(id)
                .send()
                .await
                .map_err(|e| Error::aws("DescribeDBClusters", e))?;
            let c = out.db_clusters().first();
            (
                at(c.and_then(|c| c.earliest_restorable_time())),
                at(c.and_then(|c| c.latest_restorable_time())),
                c.and_then(|c| c.backup_retention_period()).unwrap_or(0),
            )
        }
    };
    let window = match (earliest, latest) {
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
