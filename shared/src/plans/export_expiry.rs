//! Which of a plan's copies expire: complete exports of one database and profile older than the profile's
//! `keep_days`, and complete RDB copies of one cache older than the plan's `rdb_copies.keep_days`.
//!
//! Why the export function expires them itself under a plan, instead of S3 lifecycle: lifecycle rules are fixed
//! in the template (one per profile tag, each with its own day count), and a plan names any profile, and its RDB
//! copies, with any `keep_days` that must take effect at the next tick, with no template edit. So each plan tick
//! that runs an export profile (or the plan's RDB copies) also expires that profile's old exports of the
//! databases in the plan (that rule's old copies of the plan's caches). Removal is a delete *marker* (a plain
//! `DeleteObject` on the versioned bucket): the bytes stay as a noncurrent version that the bucket's lifecycle
//! keeps for a grace period (the template's `ExpiredExportGraceDays`), so a wrong plan or a compromised role
//! hides backups before it can destroy any, and nothing of Lifeboat's may delete a version.
//!
//! The rule, over plain data, the same for both kinds of copy ([`Series`]):
//! - a copy is one complete copy (its manifest exists) of this database and profile, or of this cache, aged by
//!   the time its manifest records (an export's `logical_time`, the due time that named it; an RDB copy's
//!   `snapshot_time`, the time its keys are named by), never by an object's last-modified time;
//! - it expires when strictly older than `keep_days` at the tick's time;
//! - the newest complete copy of the series is always kept, however old (a plan whose runs stopped must still
//!   leave the last one);
//! - a copy whose Object Lock (as its manifest records it, the lock Lifeboat set) is still in force is held:
//!   S3 accepts a delete marker on a locked object, so this rule is what keeps the lock's promise visible (S3
//!   itself still refuses to remove a locked version, lifecycle included, whatever lock an operator added);
//! - so is one whose keys are not exactly the layout's keys for its series and time (under
//!   `exports/<db>/<profile>/` or `exports/_caches/<cache>/rdb/`): nothing outside that prefix is ever named.
//!
//! - a copy an open content anomaly holds ([`with_holds`], `watch::hold`) is kept, manifest and objects, until
//!   a person acknowledges the anomaly; when the anomaly records could not be read, nothing expires.
//!
//! Must never: read AWS or a clock, or expire anything of a series it was not asked about.

use chrono::{DateTime, Duration, Utc};

use crate::watch::hold::{Hold, Holds};

use crate::bucket::layout::{export_keys, export_prefix, profile_in_key, rdb_keys, rdb_prefix};

/// What a tick expires: one database's exports of one profile, or one cache's RDB copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series<'a> {
    Export { db: &'a str, profile: &'a str },
    RdbCopy { cache: &'a str },
}

impl Series<'_> {
    /// Whether a manifest's key is one of this series' (by its place in the layout).
    fn owns(&self, manifest_key: &str) -> bool {
        match *self {
            Series::Export { db, profile } => {
                manifest_key.starts_with(&export_prefix(db, Some(profile)))
                    && profile_in_key(db, manifest_key) == Some(profile)
            }
            Series::RdbCopy { cache } => manifest_key.starts_with(&rdb_prefix(cache)),
        }
    }

    /// Whether the copy's manifest and objects are exactly the layout's keys for this series at its time: an
    /// export's one archive (encrypted or not), or an RDB copy's files numbered from shard 1 without a gap.
    fn in_layout(&self, copy: &Export) -> bool {
        match *self {
            Series::Export { db, profile } => [true, false].into_iter().any(|encrypted| {
                let (dump, manifest) = export_keys(db, profile, copy.at, encrypted);
                copy.stored == [dump] && copy.manifest_key == manifest
            }),
            Series::RdbCopy { cache } => {
                let keys = rdb_keys(cache, copy.at);
                let mut stored = copy.stored.clone();
                stored.sort();
                let expected: Vec<String> = (1..=stored.len())
                    .filter_map(|n| u32::try_from(n).ok())
                    .map(|n| keys.object(n))
                    .collect();
                !stored.is_empty() && stored == expected && copy.manifest_key == keys.manifest()
            }
        }
    }
}

/// One complete copy, as its manifest describes it: an export or an RDB copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub manifest_key: String,
    /// The manifest's `logical_time` (an export's) or `snapshot_time` (an RDB copy's).
    pub at: DateTime<Utc>,
    /// The objects the manifest names: an export's archive (`stored.key`), an RDB copy's file per shard.
    pub stored: Vec<String>,
    /// The manifest's `stored.object_lock_until` (an RDB copy has none).
    pub lock_until: Option<DateTime<Utc>>,
}

/// A copy to remove: its objects first, then its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub at: DateTime<Utc>,
    pub objects: Vec<String>,
    pub manifest_key: String,
}

/// Why a copy old enough to expire is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Held {
    #[error("its Object Lock is in force until {0}")]
    Locked(DateTime<Utc>),
    #[error("its keys are not the layout's for its series and time")]
    NotLayout,
    /// An open content anomaly holds it (`watch::hold`): the manifest and every object it names are kept.
    #[error("held by the open content anomaly {0} until it is acknowledged")]
    Anomaly(String),
    /// The series' anomaly records could not be read: a hold that cannot be read keeps, never deletes.
    #[error("the content anomaly records could not be read ({0}); kept this run")]
    HoldsUnreadable(String),
}

/// What a tick does with one series' copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expiry {
    pub expire: Vec<Expired>,
    /// Old enough, and kept, with why (the caller logs them).
    pub held: Vec<(String, Held)>,
}

/// The copies of `series` among `copies` that expire at the tick `now` under `keep_days`. Age is measured from
/// the earlier of the tick's time and `clock` (the real time), as snapshot retention counts
/// (`rds::retention::clock`): a tick's time is only a claim, and one dated in the future, forged or replayed,
/// must not make copies old early; a late tick only keeps more. A lock is in force while it outlasts that same
/// time, so neither a late nor an early tick lifts a lock.
pub fn expiry(
    series: Series<'_>,
    copies: &[Export],
    keep_days: u32,
    now: DateTime<Utc>,
    clock: DateTime<Utc>,
) -> Expiry {
    let ours: Vec<&Export> = copies.iter().filter(|e| series.owns(&e.manifest_key)).collect();
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
        if !series.in_layout(e) {
            out.held.push((e.manifest_key.clone(), Held::NotLayout));
            continue;
        }
        out.expire.push(Expired {
            at: e.at,
            objects: e.stored.clone(),
            manifest_key: e.manifest_key.clone(),
        });
    }
    out.expire.sort_by_key(|a| a.at);
    out
}

/// [`expiry`]'s verdict with the content watch's holds applied: a copy an open anomaly holds (by its manifest's
/// key) moves from `expire` to `held`, and so does every copy when the holds could not be read.
pub fn with_holds(mut verdict: Expiry, holds: &Holds) -> Expiry {
    let (held, expire): (Vec<Expired>, Vec<Expired>) = std::mem::take(&mut verdict.expire)
        .into_iter()
        .partition(|e| holds.hold(&e.manifest_key).is_some());
    verdict.expire = expire;
    for e in held {
        let why = match holds.hold(&e.manifest_key) {
            Some(Hold::Anomaly(key)) => Held::Anomaly(key),
            Some(Hold::Unreadable(why)) => Held::HoldsUnreadable(why),
            None => continue,
        };
        verdict.held.push((e.manifest_key, why));
    }
    verdict
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
            stored: vec![dump],
            lock_until: None,
        }
    }

    fn export_of<'a>(db: &'a str, profile: &'a str) -> Series<'a> {
        Series::Export { db, profile }
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
        let e = expiry(export_of("product-db", "critical"), &exports, 7, day(8, 6), day(8, 6));
        assert_eq!(expired_times(&e), [day(1, 0)]);
        assert_eq!(
            e.expire[0].objects,
            ["exports/product-db/critical/2026/12/01/product-db-critical-20261201T000000Z.dump.zst.age"]
        );
        assert!(e.held.is_empty());
        let e = expiry(export_of("product-db", "critical"), &exports, 1, day(8, 6), day(8, 6));
        assert_eq!(expired_times(&e), [day(1, 0), day(1, 6), day(3, 0)]);
    }

    #[test]
    fn the_newest_export_is_kept_however_old() {
        let exports = vec![export("db", "full", day(1, 2)), export("db", "full", day(2, 2))];
        let e = expiry(export_of("db", "full"), &exports, 1, day(30, 0), day(30, 0));
        assert_eq!(expired_times(&e), [day(1, 2)]);
        let e = expiry(export_of("db", "full"), &exports[..1], 1, day(30, 0), day(30, 0));
        assert!(e.expire.is_empty());
    }

    #[test]
    fn a_locked_export_is_held_until_its_lock_ends() {
        let mut locked = export("db", "full", day(1, 2));
        locked.lock_until = Some(day(20, 2));
        let exports = vec![locked, export("db", "full", day(19, 2))];
        let e = expiry(export_of("db", "full"), &exports, 7, day(19, 3), day(19, 3));
        assert!(e.expire.is_empty());
        assert_eq!(e.held, [(exports[0].manifest_key.clone(), Held::Locked(day(20, 2)))]);
        let e = expiry(export_of("db", "full"), &exports, 7, day(20, 3), day(20, 3));
        assert_eq!(expired_times(&e), [day(1, 2)]);
        // A tick whose time is past the lock, run while the real clock is still before it, lifts nothing.
        let e = expiry(export_of("db", "full"), &exports, 7, day(20, 3), day(19, 3));
        assert!(e.expire.is_empty());
    }

    #[test]
    fn a_tick_dated_in_the_future_makes_nothing_old_early() {
        let exports: Vec<Export> = (1..=20).map(|d| export("db", "full", day(d, 2))).collect();
        // At the real time (day 20), keep_days 7 expires days 1 to 13 (older than day 13, 03:00).
        assert_eq!(
            expiry(export_of("db", "full"), &exports, 7, day(20, 3), day(20, 3))
                .expire
                .len(),
            13
        );
        // A tick claiming day 30 while the real clock says day 20 expires no more than a tick on time.
        assert_eq!(
            expiry(export_of("db", "full"), &exports, 7, day(30, 3), day(20, 3))
                .expire
                .len(),
            13
        );
        // A late tick (day 15, run on day 20) keeps more: it counts from its own time.
        assert_eq!(
            expiry(export_of("db", "full"), &exports, 7, day(15, 3), day(20, 3))
                .expire
                .len(),
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
            stored: vec!["reports/evidence/2026-12/fleet-2026-12.html".into()],
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
        let e = expiry(export_of("db", "full"), &exports, 1, day(30, 0), day(30, 0));
        assert!(e.expire.is_empty(), "{e:?}");
        assert_eq!(
            e.held,
            [
                (elsewhere.manifest_key, Held::NotLayout),
                (mistimed.manifest_key, Held::NotLayout)
            ]
        );
    }

    /// A cache's RDB copy of `shards` files, as the copy-caches action names it.
    fn rdb_copy(cache: &str, at: DateTime<Utc>, shards: u32) -> Export {
        let keys = rdb_keys(cache, at);
        Export {
            manifest_key: keys.manifest(),
            at,
            stored: (1..=shards).map(|n| keys.object(n)).collect(),
            lock_until: None,
        }
    }

    #[test]
    fn rdb_copies_past_keep_days_expire_every_shards_file_and_the_newest_stays() {
        let sessions = Series::RdbCopy { cache: "sessions" };
        let copies: Vec<Export> = (1..=10).map(|d| rdb_copy("sessions", day(d, 3), 2)).collect();
        // At 12-10 04:00 with 7 days: 12-01 and 12-02 03:00 are older than 12-03 04:00, 12-03 03:00 too.
        let e = expiry(sessions, &copies, 7, day(10, 4), day(10, 4));
        assert_eq!(expired_times(&e), [day(1, 3), day(2, 3), day(3, 3)]);
        assert_eq!(
            e.expire[0].objects,
            [
                "exports/_caches/sessions/rdb/2026/12/01/sessions-rdb-20261201T030000Z-0001.rdb",
                "exports/_caches/sessions/rdb/2026/12/01/sessions-rdb-20261201T030000Z-0002.rdb"
            ]
        );
        assert_eq!(
            e.expire[0].manifest_key,
            "exports/_caches/sessions/rdb/2026/12/01/sessions-rdb-20261201T030000Z.manifest.json"
        );
        assert!(e.held.is_empty());
        // A tick dated later than the real clock expires no more; the newest is kept however old.
        assert_eq!(expiry(sessions, &copies, 7, day(30, 4), day(10, 4)), e);
        let e = expiry(sessions, &copies, 1, day(30, 4), day(30, 4));
        assert_eq!(e.expire.len(), 9);
        assert!(e.expire.iter().all(|x| x.at < day(10, 3)));
    }

    #[test]
    fn an_rdb_copy_series_names_only_its_caches_copies_in_the_layout() {
        let newest = rdb_copy("orders", day(20, 3), 1);
        let other_cache = rdb_copy("orders-2", day(1, 3), 1);
        // A database of the same name, and a copy an older Lifeboat kept at `exports/<cache>/rdb/`.
        let database = export("orders", "full", day(1, 2));
        let legacy = Export {
            manifest_key: "exports/orders/rdb/2026/12/01/orders-rdb-20261201T030000Z.manifest.json".into(),
            stored: vec!["exports/orders/rdb/2026/12/01/orders-rdb-20261201T030000Z-0001.rdb".into()],
            ..rdb_copy("orders", day(1, 3), 1)
        };
        // A manifest in place whose files are elsewhere, or numbered with a gap, is never followed.
        let elsewhere = Export {
            stored: vec!["exports/app-db/full/2026/12/02/app-db-full-20261202T020000Z.dump.zst".into()],
            ..rdb_copy("orders", day(2, 3), 1)
        };
        let mut gap = rdb_copy("orders", day(3, 3), 3);
        gap.stored.remove(1);
        let copies = vec![newest, other_cache, database, legacy, elsewhere.clone(), gap.clone()];
        let e = expiry(Series::RdbCopy { cache: "orders" }, &copies, 1, day(30, 0), day(30, 0));
        assert!(e.expire.is_empty(), "{e:?}");
        assert_eq!(
            e.held,
            [
                (elsewhere.manifest_key, Held::NotLayout),
                (gap.manifest_key, Held::NotLayout)
            ]
        );
        // And an export series never names an RDB copy of a cache of the database's name.
        let e = expiry(export_of("orders", "rdb"), &copies, 1, day(30, 0), day(30, 0));
        assert!(e.expire.is_empty() && e.held.is_empty(), "{e:?}");
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
            let e = expiry(export_of("db", "full"), &exports, keep_days, now, clock);
            let newest = exports.iter().map(|x| x.at).max().unwrap();
            for x in &e.expire {
                prop_assert!(x.at < newest);
                prop_assert!(x.at < now.min(clock) - Duration::days(i64::from(keep_days)));
                let source = exports.iter().find(|s| s.manifest_key == x.manifest_key).unwrap();
                prop_assert!(source.lock_until.is_none_or(|u| u <= now && u <= clock));
            }
        }
    }

    #[test]
    fn a_copy_an_open_anomaly_holds_is_kept_and_an_unreadable_hold_keeps_all() {
        let exports: Vec<Export> = [day(1, 0), day(2, 0), day(8, 0)]
            .into_iter()
            .map(|t| export("product-db", "critical", t))
            .collect();
        let verdict = || expiry(export_of("product-db", "critical"), &exports, 1, day(8, 6), day(8, 6));
        assert_eq!(expired_times(&verdict()), [day(1, 0), day(2, 0)]);
        let key = "watch/product-db/critical/20261203T000000Z.json".to_owned();
        let holds = Holds::Known([(exports[1].manifest_key.clone(), key.clone())].into_iter().collect());
        let e = with_holds(verdict(), &holds);
        assert_eq!(expired_times(&e), [day(1, 0)]);
        assert_eq!(e.held, [(exports[1].manifest_key.clone(), Held::Anomaly(key))]);
        let e = with_holds(verdict(), &Holds::Unknown("ListObjectsV2: AccessDenied".into()));
        assert!(e.expire.is_empty());
        assert_eq!(e.held.len(), 2);
        assert!(with_holds(verdict(), &Holds::Known(Default::default())).held.is_empty());
    }
}
