//! Which recovery point a restore test proves, as pure functions: the newest snapshot, a random available
//! snapshot within a window of days, a random moment of the point-in-time window, or the latest restorable time;
//! how that choice is written on the restored resource's tags and read back; and how far a point-in-time
//! window reaches.
//!
//! Design: the choice is random but reproducible. Its seed is a hash of the restore test's own name
//! ([`crate::rds::restore::test_identifier`]: the database and the request time), never an RNG's state: over
//! the same window the same test picks the same point, and the report can say which seed picked it. (A retried
//! start finds its restored instance and keeps what that restored; the window itself moves as RDS's latest
//! restorable time does.) The window comes from the
//! describe calls (the snapshots that exist and are `available`; `EarliestRestorableTime`/`LatestRestorableTime`)
//! and the plan's `within_days`, never from an invocation's payload. A chosen point is never outside its window.
//!
//! Must never call AWS, read the clock or the environment: the restore function gathers the facts.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::rds::snapshots::Snapshot;

/// The prefix of a point-in-time restore's [`crate::rds::restore::RESTORED_FROM`] tag value:
/// `point-in-time:<RFC 3339>` (a snapshot's is its identifier; an automated snapshot's `rds:` holds a colon too,
/// so the whole prefix is matched, never a colon alone).
pub const POINT_IN_TIME_PREFIX: &str = "point-in-time:";

/// The tag that says how the recovery point was chosen (the `from`, the seed and the window), written by the
/// start step beside [`crate::rds::restore::RESTORED_FROM`] and copied into the report by verify.
pub const RECOVERY_CHOICE: &str = "lifeboat:recovery-choice";

/// The tag a database's owner may set to name a heartbeat: `[<dbname>/][<schema>.]<table>.<column>`, a
/// timestamp column whose newest value says how far a point-in-time restore's data reaches.
pub const HEARTBEAT: &str = "lifeboat:heartbeat";

/// What a restore test restores, as the restore function asks for it (the plan rule's `from`, mapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    NewestSnapshot,
    /// The snapshot a `start` request named (a test run by hand).
    NamedSnapshot,
    RandomSnapshot {
        within_days: u32,
    },
    RandomPointInTime {
        within_days: Option<u32>,
    },
    LatestRestorableTime,
}

impl Wanted {
    /// The plan's name for it (`from`).
    pub fn name(&self) -> &'static str {
        match self {
            Wanted::NewestSnapshot => "newest-snapshot",
            Wanted::NamedSnapshot => "named-snapshot",
            Wanted::RandomSnapshot { .. } => "random-snapshot",
            Wanted::RandomPointInTime { .. } => "random-point-in-time",
            Wanted::LatestRestorableTime => "latest-restorable-time",
        }
    }
}

/// The recovery point chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    Snapshot { id: String, created: DateTime<Utc> },
    Time(DateTime<Utc>),
}

/// A choice and why: what was asked, the seed (random choices only) and the window chosen in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub wanted: Wanted,
    pub seed: Option<u64>,
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub point: Point,
}

impl Choice {
    /// When the chosen recovery point stands for: the snapshot's creation, or the restore time.
    pub fn time(&self) -> DateTime<Utc> {
        match &self.point {
            Point::Snapshot { created, .. } => *created,
            Point::Time(t) => *t,
        }
    }

    /// The [`crate::rds::restore::RESTORED_FROM`] tag's value.
    pub fn restored_from(&self) -> String {
        match &self.point {
            Point::Snapshot { id, .. } => id.clone(),
            Point::Time(t) => format!("{POINT_IN_TIME_PREFIX}{}", stamp(*t)),
        }
    }

    /// The [`RECOVERY_CHOICE`] tag's value (RDS tag values allow letters, digits, spaces and `_.:/=+-@`):
    /// `random-point-in-time seed=<16 hex> window=<from>/<to>`.
    pub fn describe(&self) -> String {
        let mut out = self.wanted.name().to_owned();
        if let Some(seed) = self.seed {
            out.push_str(&format!(" seed={seed:016x}"));
        }
        if let Some((from, to)) = self.window {
            out.push_str(&format!(" window={}/{}", stamp(from), stamp(to)));
        }
        out
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The restore time a [`crate::rds::restore::RESTORED_FROM`] tag names, `None` for a snapshot's identifier.
pub fn point_in_time_of(restored_from: &str) -> Option<DateTime<Utc>> {
    let t = restored_from.strip_prefix(POINT_IN_TIME_PREFIX)?;
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc))
}

/// The seed of a restore test: the first eight bytes of the SHA-256 of its name.
pub fn seed(test_name: &str) -> u64 {
    let digest = Sha256::digest(test_name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// The point-in-time window of a database, as RDS describes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restorable {
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
}

/// An instance's earliest restorable time, which `DescribeDBInstances` does not give (a cluster's does): the
/// later of `latest` less the backup retention and `oldest_base`, the oldest point a restore can start from (a
/// restore test passes its oldest available automated snapshot; `recover`, which lists none, the instance's
/// creation). `None` when point-in-time recovery is off.
pub fn instance_earliest(
    latest: Option<DateTime<Utc>>,
    retention_days: Option<i32>,
    oldest_base: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let latest = latest?;
    let days = retention_days.filter(|d| *d > 0)?;
    let by_retention = latest - Duration::days(i64::from(days));
    Some(oldest_base.map_or(by_retention, |o| o.max(by_retention)).min(latest))
}

/// The snapshot a test from a snapshot restores: the newest available one, or one at random of those available
/// and taken in the `within_days` days before `at` (never one taken after `at`).
pub fn choose_snapshot(
    snapshots: &[Snapshot],
    wanted: Wanted,
    at: DateTime<Utc>,
    test_name: &str,
) -> Result<Choice, String> {
    let available = snapshots
        .iter()
        .filter_map(|s| Some((s, s.created?)))
        .filter(|(s, _)| s.is_available());
    match wanted {
        Wanted::RandomSnapshot { within_days } => {
            let from = at - Duration::days(i64::from(within_days));
            let mut candidates: Vec<(&Snapshot, DateTime<Utc>)> =
                available.filter(|(_, c)| *c >= from && *c <= at).collect();
            candidates.sort_by(|a, b| (a.1, &a.0.id).cmp(&(b.1, &b.0.id)));
            let seed = seed(test_name);
            let n = candidates.len() as u64;
            let Some(i) = seed.checked_rem(n) else {
                return Err(format!(
                    "no available snapshot was taken in the {within_days} days before {}",
                    stamp(at)
                ));
            };
            let (s, created) = candidates[usize::try_from(i).unwrap_or(0)];
            Ok(Choice {
                wanted,
                seed: Some(seed),
                window: Some((from, at)),
                point: Point::Snapshot {
                    id: s.id.clone(),
                    created,
                },
            })
        }
        _ => {
            let (s, created) = available
                .max_by_key(|(_, c)| *c)
                .ok_or_else(|| "the database has no available snapshot to restore".to_owned())?;
            Ok(Choice {
                wanted,
                seed: None,
                window: None,
                point: Point::Snapshot {
                    id: s.id.clone(),
                    created,
                },
            })
        }
    }
}

/// The moment a point-in-time test restores to: the latest restorable time, or a random whole second of the
/// window (`earliest`..`latest`, narrowed to the `within_days` days before `at`, and never after `at`).
pub fn choose_time(window: Restorable, wanted: Wanted, at: DateTime<Utc>, test_name: &str) -> Result<Choice, String> {
    let (Some(earliest), Some(latest)) = (window.earliest, window.latest) else {
        return Err("point-in-time recovery is off (no restorable window: backup retention 0?)".into());
    };
    let latest = latest.min(at);
    let within = match wanted {
        Wanted::RandomPointInTime { within_days } => within_days,
        _ => None,
    };
    let earliest = within.map_or(earliest, |d| earliest.max(at - Duration::days(i64::from(d))));
    // Whole seconds inside the window: RDS takes the restore time to the second.
    let start = earliest.timestamp() + i64::from(earliest.timestamp_subsec_nanos() > 0);
    let end = latest.timestamp();
    if end < start {
        return Err(format!(
            "the restorable window is empty ({} to {})",
            stamp(earliest),
            stamp(latest)
        ));
    }
    let (seed, second) = match wanted {
        Wanted::RandomPointInTime { .. } => {
            let seed = seed(test_name);
            let span = u64::try_from(end - start).unwrap_or(0) + 1;
            (Some(seed), start + i64::try_from(seed % span).unwrap_or(0))
        }
        _ => (None, end),
    };
    let time = DateTime::from_timestamp(second, 0).ok_or_else(|| format!("{second} is no time"))?;
    let window_start = DateTime::from_timestamp(start, 0).unwrap_or(earliest);
    let window_end = DateTime::from_timestamp(end, 0).unwrap_or(latest);
    Ok(Choice {
        wanted,
        seed,
        window: Some((window_start, window_end)),
        point: Point::Time(time),
    })
}

/// A heartbeat as its tag names it: the database to connect to (`None`: the test's), the schema (`public` by
/// default), the table and the timestamp column. Identifiers only: they are quoted when used, never run as SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub dbname: Option<String>,
    pub schema: String,
    pub table: String,
    pub column: String,
}

/// Reads a [`HEARTBEAT`] tag's value; `Err` says what is wrong with it.
pub fn parse_heartbeat(value: &str) -> Result<Heartbeat, String> {
    let (dbname, rest) = match value.split_once('/') {
        Some((d, r)) => (Some(d.to_owned()), r),
        None => (None, value),
    };
    let parts: Vec<&str> = rest.split('.').collect();
    let (schema, table, column) = match parts.as_slice() {
        [t, c] => ("public", *t, *c),
        [s, t, c] => (*s, *t, *c),
        _ => return Err(format!("`{value}` is not [<dbname>/][<schema>.]<table>.<column>")),
    };
    if dbname.as_deref() == Some("") || [schema, table, column].iter().any(|p| p.is_empty()) {
        return Err(format!("`{value}` has an empty name"));
    }
    Ok(Heartbeat {
        dbname,
        schema: schema.to_owned(),
        table: table.to_owned(),
        column: column.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::rds::snapshots::testing::snap;
    use chrono::TimeZone;
    use std::collections::BTreeSet;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    fn name(i: u32) -> String {
        crate::rds::restore::test_identifier("app-prod", at(22, 3) + Duration::minutes(i64::from(i)))
    }

    #[test]
    fn a_random_moment_over_many_seeds_stays_in_the_window_and_covers_it() {
        let window = Restorable {
            earliest: Some(at(15, 3) + Duration::milliseconds(400)),
            latest: Some(at(22, 2) + Duration::minutes(55)),
        };
        let wanted = Wanted::RandomPointInTime { within_days: None };
        let times: Vec<DateTime<Utc>> = (0..1000)
            .map(|i| choose_time(window, wanted, at(22, 3), &name(i)).unwrap().time())
            .collect();
        let (min, max) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
        assert!(
            min >= window.earliest.unwrap() && max <= window.latest.unwrap(),
            "{min} {max}"
        );
        let span = window.latest.unwrap() - window.earliest.unwrap();
        assert!(
            min - window.earliest.unwrap() < span / 100,
            "the earliest pick {min} is near the start"
        );
        assert!(
            window.latest.unwrap() - max < span / 100,
            "the latest pick {max} is near the end"
        );
        assert!(times.iter().all(|t| t.timestamp_subsec_nanos() == 0), "whole seconds");
        // Reproducible: the same test's name gives the same moment.
        let again = choose_time(window, wanted, at(22, 3), &name(7)).unwrap();
        assert_eq!(again.time(), times[7]);
        assert_eq!(again.seed, Some(seed(&name(7))));
    }

    #[test]
    fn within_days_narrows_the_window_and_the_request_time_bounds_it() {
        let window = Restorable {
            earliest: Some(at(1, 0)),
            latest: Some(at(22, 5)),
        };
        let wanted = Wanted::RandomPointInTime { within_days: Some(2) };
        for i in 0..1000 {
            let c = choose_time(window, wanted, at(22, 3), &name(i)).unwrap();
            assert!(c.time() >= at(20, 3) && c.time() <= at(22, 3), "{}", c.time());
            assert_eq!(c.window, Some((at(20, 3), at(22, 3))));
        }
        let latest = choose_time(window, Wanted::LatestRestorableTime, at(23, 0), "x").unwrap();
        assert_eq!((latest.time(), latest.seed), (at(22, 5), None));
        assert_eq!(latest.restored_from(), "point-in-time:2026-11-22T05:00:00Z");
        assert_eq!(point_in_time_of(&latest.restored_from()), Some(at(22, 5)));
        assert_eq!(point_in_time_of("rds:app-prod-2026-11-22-03-00"), None);
        assert_eq!(
            latest.describe(),
            "latest-restorable-time window=2026-11-01T00:00:00Z/2026-11-22T05:00:00Z"
        );
        let none = Restorable::default();
        assert!(choose_time(none, wanted, at(22, 3), "x")
            .unwrap_err()
            .contains("point-in-time recovery is off"));
        let empty = Restorable {
            earliest: Some(at(22, 4)),
            latest: Some(at(22, 5)),
        };
        assert!(choose_time(empty, Wanted::LatestRestorableTime, at(22, 3), "x")
            .unwrap_err()
            .contains("window is empty"));
    }

    #[test]
    fn a_random_snapshot_over_many_seeds_is_every_available_one_in_the_window_and_no_other() {
        let mut creating = snap("lifeboat-app-prod-20261121-0200", at(21, 2), true);
        creating.status = "creating".into();
        let all = vec![
            snap("lifeboat-app-prod-20261110-0200", at(10, 2), true),
            snap("lifeboat-app-prod-20261116-0200", at(16, 2), true),
            snap("lifeboat-app-prod-20261118-0200", at(18, 2), true),
            snap("lifeboat-app-prod-20261120-0200", at(20, 2), true),
            creating,
            snap("lifeboat-app-prod-20261123-0200", at(23, 2), true),
        ];
        let wanted = Wanted::RandomSnapshot { within_days: 7 };
        let chosen: BTreeSet<String> = (0..1000)
            .map(
                |i| match choose_snapshot(&all, wanted, at(22, 3), &name(i)).unwrap().point {
                    Point::Snapshot { id, .. } => id,
                    Point::Time(_) => unreachable!(),
                },
            )
            .collect();
        let expected: BTreeSet<String> = [
            "lifeboat-app-prod-20261116-0200",
            "lifeboat-app-prod-20261118-0200",
            "lifeboat-app-prod-20261120-0200",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(chosen, expected);
        let c = choose_snapshot(&all, wanted, at(22, 3), &name(3)).unwrap();
        assert_eq!(c.window, Some((at(15, 3), at(22, 3))));
        assert!(c.describe().starts_with("random-snapshot seed="), "{}", c.describe());
        assert!(choose_snapshot(&all, wanted, at(9, 3), "x")
            .unwrap_err()
            .contains("no available snapshot"));
        let newest = choose_snapshot(&all, Wanted::NewestSnapshot, at(22, 3), "x").unwrap();
        assert_eq!(newest.restored_from(), "lifeboat-app-prod-20261123-0200");
        assert_eq!(newest.describe(), "newest-snapshot");
    }

    #[test]
    fn an_instances_window_starts_at_its_oldest_automated_backup_within_retention() {
        assert_eq!(instance_earliest(Some(at(22, 3)), Some(7), None), Some(at(15, 3)));
        assert_eq!(
            instance_earliest(Some(at(22, 3)), Some(7), Some(at(16, 1))),
            Some(at(16, 1))
        );
        assert_eq!(
            instance_earliest(Some(at(22, 3)), Some(7), Some(at(1, 1))),
            Some(at(15, 3))
        );
        assert_eq!(instance_earliest(Some(at(22, 3)), Some(0), None), None);
        assert_eq!(instance_earliest(None, Some(7), None), None);
    }

    #[test]
    fn a_heartbeat_tag_names_identifiers_only() {
        assert_eq!(
            parse_heartbeat("app/ops.heartbeat.beat_at").unwrap(),
            Heartbeat {
                dbname: Some("app".into()),
                schema: "ops".into(),
                table: "heartbeat".into(),
                column: "beat_at".into()
            }
        );
        let h = parse_heartbeat("heartbeat.at").unwrap();
        assert_eq!((h.dbname, h.schema.as_str()), (None, "public"));
        for bad in ["heartbeat", "a.b.c.d", "/a.b", "a..b", ""] {
            assert!(parse_heartbeat(bad).is_err(), "{bad}");
        }
    }
}
