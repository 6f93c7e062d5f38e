//! Which of a plan's exports expire: complete exports of one database and profile older than the profile's
//! `keep_days`.
//!
//! Why the export function expires exports itself under a plan, instead of S3 lifecycle: lifecycle rules are
//! fixed in the template (one per profile tag, each with its own day count), and a plan names any profile with
//! any `keep_days` that must take effect at the next tick, with no template edit. So each plan tick that runs an
//! export profile also expires that profile's old exports of the databases in the plan. Removal is a delete
//! *marker* (a plain `DeleteObject` on the versioned bucket): the bytes stay as a noncurrent version that the
//! bucket's lifecycle keeps for a grace period (the template's `ExpiredExportGraceDays`), so a wrong plan or a
//! compromised role hides backups before it can destroy any, and nothing of Lifeboat's may delete a version.
//!
//! The rule, over plain data:
//! - an export is one complete export (its manifest exists) of this database and profile, aged by the time its
//!   manifest records (`logical_time`, the due time that named it), never by an object's last-modified time;
//! - it expires when strictly older than `keep_days` at the tick's time;
//! - the newest complete export of the profile is always kept, however old (a plan whose exports stopped must
//!   still leave the last one);
//! - an export whose Object Lock (as its manifest records it, the lock Lifeboat set) is still in force is held:
//!   S3 accepts a delete marker on a locked object, so this rule is what keeps the lock's promise visible (S3
//!   itself still refuses to remove a locked version, lifecycle included, whatever lock an operator added);
//! - so is one whose keys are not exactly the layout's keys for its database, profile and time under
//!   `exports/<db>/<profile>/`: nothing outside that prefix is ever named.
//!
//! Must never: read AWS or a clock, or expire anything of a database or profile it was not asked about.

use chrono::{DateTime, Duration, Utc};

use crate::bucket::layout::{export_keys, export_prefix, profile_in_key};

/// One complete export, as its manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub manifest_key: String,
    /// The manifest's `logical_time`.
    pub at: DateTime<Utc>,
    /// The manifest's `stored.key`: the archive.
    pub stored_key: String,
    /// The manifest's `stored.object_lock_until`.
    pub lock_until: Option<DateTime<Utc>>,
}

/// An export to remove: its archive first, then its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub at: DateTime<Utc>,
    pub dump_key: String,
    pub manifest_key: String,
}

/// Why an export old enough to expire is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Held {
    #[error("its Object Lock is in force until {0}")]
    Locked(DateTime<Utc>),
    #[error("its keys are not the export layout's for its database, profile and time")]
    NotLayout,
}

/// What a tick does with one database's exports of one profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expiry {
    pub expire: Vec<Expired>,
    /// Old enough, and kept, with why (the caller logs them).
    pub held: Vec<(String, Held)>,
}

/// The exports of `db` and `profile` among `exports` that expire at the tick `now` under `keep_days`. Age is
/// measured from the earlier of the tick's time and `clock` (the real time), as snapshot retention counts
/// (`rds::retention::clock`): a tick's time is only a claim, and one dated in the future, forged or replayed,
/// must not make exports old early; a late tick only keeps more. A lock is in force while it outlasts that same
/// time, so neither a late nor an early tick lifts a lock.
pub fn expiry(
    db: &str,
    profile: &str,
    exports: &[Export],
    keep_days: u32,
    now: DateTime<Utc>,
    clock: DateTime<Utc>,
) -> Expiry {
    let prefix = export_prefix(db, Some(profile));
    let ours: Vec<&Export> = exports
        .iter()
        .filter(|e| e.manifest_key.starts_with(&prefix) && profile_in_key(db, &e.manifest_key) == Some(profile))
        .collect();
    let newest = ours
        .iter()
        .max_by(|a, b| (a.at, &a.manifest_key).cmp(&(b.at, &b.manifest_key)))
        .map(|e| e.manifest_key.as_str());
    let now = crate::rds::retention::clock(now, clock);
    let cutoff = now - Duration::days(i64::from(keep_days));
    let mut out = Expiry::default();
    for e in ours {
        if e.at >= cutoff || Some(e.manifest_key.as_str()) == newest {
            continue;
        }
        if let Some(until) = e.lock_until.filter(|until| *until > now) {
            out.held.push((e.manifest_key.clone(), Held::Locked(until)));
            continue;
        }
        let layout = [true, false].map(|encrypted| export_keys(db, profile, e.at, encrypted));
        if !layout
            .iter()
            .any(|(dump, manifest)| *dump == e.stored_key && *manifest == e.manifest_key)
        {
            out.held.push((e.manifest_key.clone(), Held::NotLayout));
            continue;
        }
        out.expire.push(Expired {
            at: e.at,
            dump_key: e.stored_key.clone(),
            manifest_key: e.manifest_key.clone(),
        });
    }
    out.expire.sort_by_key(|a| a.at);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn day(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, 0, 0).unwrap()
    }

    fn export(db: &str, profile: &str, at: DateTime<Utc>) -> Export {
        let (dump, manifest) = export_keys(db, profile, at, true);
        Export {
            manifest_key: manifest,
            at,
            stored_key: dump,
            lock_until: None,
        }
    }

    fn expired_times(e: &Expiry) -> Vec<DateTime<Utc>> {
        e.expire.iter().map(|x| x.at).collect()
    }

    #[test]
    fn exports_strictly_older_than_keep_days_expire_oldest_first() {
        let exports: Vec<Export> = [day(1, 0), day(1, 6), day(3, 0), day(8, 0)]
            .into_iter()
            .rev()
            .map(|t| export("product-db", "critical", t))
            .collect();
        // At 12-08 06:00 with 7 days: 12-01 00:00 is 7 days 6 h old, 12-01 06:00 exactly 7 days (kept).
        let e = expiry("product-db", "critical", &exports, 7, day(8, 6), day(8, 6));
        assert_eq!(expired_times(&e), [day(1, 0)]);
        assert_eq!(
            e.expire[0].dump_key,
            "exports/product-db/critical/2026/12/01/product-db-critical-20261201T000000Z.dump.zst.age"
        );
        assert!(e.held.is_empty());
        let e = expiry("product-db", "critical", &exports, 1, day(8, 6), day(8, 6));
        assert_eq!(expired_times(&e), [day(1, 0), day(1, 6), day(3, 0)]);
    }

    #[test]
    fn the_newest_export_is_kept_however_old() {
        let exports = vec![export("db", "full", day(1, 2)), export("db", "full", day(2, 2))];
        let e = expiry("db", "full", &exports, 1, day(30, 0), day(30, 0));
        assert_eq!(expired_times(&e), [day(1, 2)]);
        let e = expiry("db", "full", &exports[..1], 1, day(30, 0), day(30, 0));
        assert!(e.expire.is_empty());
    }

    #[test]
    fn a_locked_export_is_held_until_its_lock_ends() {
        let mut locked = export("db", "full", day(1, 2));
        locked.lock_until = Some(day(20, 2));
        let exports = vec![locked, export("db", "full", day(19, 2))];
        let e = expiry("db", "full", &exports, 7, day(19, 3), day(19, 3));
        assert!(e.expire.is_empty());
        assert_eq!(e.held, [(exports[0].manifest_key.clone(), Held::Locked(day(20, 2)))]);
        let e = expiry("db", "full", &exports, 7, day(20, 3), day(20, 3));
        assert_eq!(expired_times(&e), [day(1, 2)]);
        // A tick whose time is past the lock, run while the real clock is still before it, lifts nothing.
        let e = expiry("db", "full", &exports, 7, day(20, 3), day(19, 3));
        assert!(e.expire.is_empty());
    }

    #[test]
    fn a_tick_dated_in_the_future_makes_nothing_old_early() {
        let exports: Vec<Export> = (1..=20).map(|d| export("db", "full", day(d, 2))).collect();
        // At the real time (day 20), keep_days 7 expires days 1 to 13 (older than day 13, 03:00).
        assert_eq!(
            expiry("db", "full", &exports, 7, day(20, 3), day(20, 3)).expire.len(),
            13
        );
        // A tick claiming day 30 while the real clock says day 20 expires no more than a tick on time.
        assert_eq!(
            expiry("db", "full", &exports, 7, day(30, 3), day(20, 3)).expire.len(),
            13
        );
        // A late tick (day 15, run on day 20) keeps more: it counts from its own time.
        assert_eq!(
            expiry("db", "full", &exports, 7, day(15, 3), day(20, 3)).expire.len(),
            8
        );
    }

    #[test]
    fn nothing_outside_the_database_and_profile_or_the_layout_is_named() {
        let newest = export("db", "full", day(20, 2));
        let other_profile = export("db", "critical", day(1, 2));
        let other_db = export("db2", "full", day(1, 2));
        let cache = Export {
            manifest_key: "exports/_caches/db/rdb/2026/12/01/db-rdb-20261201T020000Z.manifest.json".into(),
            ..export("db", "full", day(1, 2))
        };
        // A manifest in the right place whose archive key points elsewhere is never followed.
        let elsewhere = Export {
            stored_key: "reports/evidence/2026-12/fleet-2026-12.html".into(),
            ..export("db", "full", day(2, 2))
        };
        // Nor one whose recorded time is not the time in its key.
        let mistimed = Export {
            at: day(3, 1),
            ..export("db", "full", day(3, 2))
        };
        let exports = vec![
            newest,
            other_profile,
            other_db,
            cache,
            elsewhere.clone(),
            mistimed.clone(),
        ];
        let e = expiry("db", "full", &exports, 1, day(30, 0), day(30, 0));
        assert!(e.expire.is_empty(), "{e:?}");
        assert_eq!(
            e.held,
            [
                (elsewhere.manifest_key, Held::NotLayout),
                (mistimed.manifest_key, Held::NotLayout)
            ]
        );
    }

    proptest! {
        #[test]
        fn never_the_newest_never_a_young_one_never_a_locked_one(
            // One export per time, as the layout names them.
            hours in proptest::collection::btree_set(0i64..24 * 60, 1..30),
            locks in proptest::collection::vec(proptest::option::of(0i64..24 * 90), 30),
            keep_days in 0u32..40,
            now_h in 0i64..24 * 90,
            clock_h in 0i64..24 * 90,
        ) {
            let start = day(1, 0);
            let now = start + Duration::hours(now_h);
            let exports: Vec<Export> = hours.iter().zip(&locks).map(|(h, lock)| Export {
                lock_until: lock.map(|l| start + Duration::hours(l)),
                ..export("db", "full", start + Duration::hours(*h))
            }).collect();
            let clock = start + Duration::hours(clock_h);
            let e = expiry("db", "full", &exports, keep_days, now, clock);
            let newest = exports.iter().map(|x| x.at).max().unwrap();
            for x in &e.expire {
                prop_assert!(x.at < newest);
                prop_assert!(x.at < now.min(clock) - Duration::days(i64::from(keep_days)));
                let source = exports.iter().find(|s| s.manifest_key == x.manifest_key).unwrap();
                prop_assert!(source.lock_until.is_none_or(|u| u <= now && u <= clock));
            }
        }
    }
}
