//! Grandfather-father-son retention, as a pure function over a database's snapshots.
//!
//! Invariants (property-tested below): a snapshot Lifeboat does not own is never expired; an automated
//! snapshot is never expired; a snapshot that is not `available` is never expired; the newest available
//! snapshot Lifeboat owns is never expired. The caller adds the last one: a database whose snapshot failed in
//! this run is not passed here at all.
//!
//! Periods are counted the way borg and restic count them: walking from the newest snapshot back, the newest
//! snapshot of each day is kept for the `daily` most recent days that have one, and likewise for ISO weeks,
//! months and years. If backups stop, the old ones are therefore kept rather than aged out.
//! Manual snapshots are not part of the GFS series: they carry their own expiry time.
//!
//! The clock retention runs by is [`clock`]: the earlier of the run's logical time (a scheduled event's `time`)
//! and the wall clock. The event's time names the run's snapshots (so a redelivered event finds its own), but it is
//! only a claim: an event dated in the future, replayed, forged or sent by a scheduler with a wrong clock, must not
//! make expiry times pass early. AWS Backup works the same way: a recovery point's lifecycle is counted from its
//! creation by the service's own clock, never from a time a caller supplies.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

use crate::rds::snapshot_tags::Source;
use crate::rds::snapshots::Snapshot;

/// What retention and the snapshot ladder read of a snapshot, whatever made it: an RDS instance or cluster
/// snapshot, or an ElastiCache snapshot. Every rule reads the same Lifeboat tags, so a cache's snapshots age
/// exactly as a database's do.
pub trait Retained {
    fn id(&self) -> &str;
    fn status(&self) -> &str;
    /// Lifeboat's ownership tag: the only thing that makes a snapshot Lifeboat's to delete.
    fn owned(&self) -> bool;
    /// Made by the service's own backups, not by anyone's create call.
    fn is_automated(&self) -> bool;
    fn logical_time(&self) -> DateTime<Utc>;
    fn source(&self) -> Source;
    fn expires_at(&self) -> Option<DateTime<Utc>>;

    fn is_available(&self) -> bool {
        self.status() == "available"
    }

    /// Still being made or copied.
    fn is_in_progress(&self) -> bool {
        matches!(self.status(), "creating" | "copying" | "pending")
    }
}

impl Retained for Snapshot {
    fn id(&self) -> &str {
        &self.id
    }
    fn status(&self) -> &str {
        &self.status
    }
    fn owned(&self) -> bool {
        Snapshot::owned(self)
    }
    fn is_automated(&self) -> bool {
        Snapshot::is_automated(self)
    }
    fn logical_time(&self) -> DateTime<Utc> {
        Snapshot::logical_time(self)
    }
    fn source(&self) -> Source {
        Snapshot::source(self)
    }
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        Snapshot::expires_at(self)
    }
}

/// How many periods of each size to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Gfs {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

impl Gfs {
    /// Parses `daily=7,weekly=4,monthly=12,yearly=3`. Periods left out keep nothing.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut gfs = Gfs::default();
        let mut seen = HashSet::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("`{part}` is not `period=count`"));
            };
            let key = key.trim();
            let count: u32 = value
                .trim()
                .parse()
                .map_err(|_| format!("`{}` is not a whole number", value.trim()))?;
            if count > 1000 {
                return Err(format!("{key}={count} is more than 1000"));
            }
            if !seen.insert(key.to_owned()) {
                return Err(format!("period `{key}` is given twice"));
            }
            match key {
                "daily" => gfs.daily = count,
                "weekly" => gfs.weekly = count,
                "monthly" => gfs.monthly = count,
                "yearly" => gfs.yearly = count,
                other => {
                    return Err(format!(
                        "unknown period `{other}` (expected daily, weekly, monthly, yearly)"
                    ))
                }
            }
        }
        if gfs == Gfs::default() {
            return Err("the policy keeps nothing: give at least one of daily, weekly, monthly, yearly".into());
        }
        Ok(gfs)
    }
}

impl std::fmt::Display for Gfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "daily={},weekly={},monthly={},yearly={}",
            self.daily, self.weekly, self.monthly, self.yearly
        )
    }
}

/// Why a snapshot is kept or expired: the demo and the run summary print these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    KeepNewest,
    KeepDaily,
    KeepWeekly,
    KeepMonthly,
    KeepYearly,
    /// A manual snapshot before its expiry time.
    KeepUntilExpiry,
    /// Not Lifeboat's, automated, not available, or dated in the future: never touched.
    NotEligible,
    /// Would expire, but an open content anomaly holds it (`watch::hold`), or its records could not be read.
    KeepHeld,
    Expire,
}

impl Decision {
    pub fn expires(self) -> bool {
        self == Decision::Expire
    }
}

fn is_eligible<S: Retained>(s: &S, now: DateTime<Utc>) -> bool {
    s.owned() && !s.is_automated() && s.is_available() && s.logical_time() <= now
}

/// Maps a time to the period it falls in (day, ISO week, month or year), as a comparable key.
type PeriodOf = fn(DateTime<Utc>) -> (i32, u32);

/// The time retention decides by: the earlier of the run's logical time and `now`, so that a run can expire
/// later than its event says, never earlier. A past event (a late or retried run) keeps its own time: that
/// only keeps more.
pub fn clock(logical_time: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    logical_time.min(now)
}

/// Decides every snapshot of one database. Returns decisions in the order of `snapshots`.
pub fn decide<S: Retained>(snapshots: &[S], policy: &Gfs, now: DateTime<Utc>) -> Vec<Decision> {
    let mut decisions = vec![Decision::NotEligible; snapshots.len()];
    let mut order: Vec<usize> = (0..snapshots.len())
        .filter(|&i| is_eligible(&snapshots[i], now))
        .collect();
    // Newest first; the identifier breaks ties so the result does not depend on input order.
    order.sort_by(|&a, &b| {
        let (sa, sb) = (&snapshots[a], &snapshots[b]);
        sb.logical_time()
            .cmp(&sa.logical_time())
            .then_with(|| sb.id().cmp(sa.id()))
    });
    let Some(&newest) = order.first() else {
        return decisions;
    };

    let series: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| snapshots[i].source() == Source::Schedule)
        .collect();
    let tiers: [(u32, Decision, PeriodOf); 4] = [
        (policy.daily, Decision::KeepDaily, |t| (t.year(), t.ordinal())),
        (policy.weekly, Decision::KeepWeekly, |t| {
            (t.iso_week().year(), t.iso_week().week())
        }),
        (policy.monthly, Decision::KeepMonthly, |t| (t.year(), t.month())),
        (policy.yearly, Decision::KeepYearly, |t| (t.year(), 0)),
    ];
    let mut kept: Vec<Option<Decision>> = vec![None; snapshots.len()];
    for (count, decision, period_of) in tiers {
        let mut periods = HashSet::new();
        for &i in &series {
            if periods.len() as u32 >= count {
                break;
            }
            if periods.insert(period_of(snapshots[i].logical_time())) && kept[i].is_none() {
                kept[i] = Some(decision);
            }
        }
    }

    for &i in &order {
        let s = &snapshots[i];
        decisions[i] = if i == newest {
            Decision::KeepNewest
        } else if let Some(d) = kept[i] {
            d
        } else {
            match s.source() {
                Source::Schedule => Decision::Expire,
                // A manual snapshot without a readable expiry is kept: deleting it would guess.
                Source::Manual | Source::Unknown => match s.expires_at() {
                    Some(at) if at <= now => Decision::Expire,
                    _ => Decision::KeepUntilExpiry,
                },
            }
        };
    }
    decisions
}

/// The snapshots to delete (the `Expire` decisions).
pub fn expired<'a, S: Retained>(snapshots: &'a [S], policy: &Gfs, now: DateTime<Utc>) -> Vec<&'a S> {
    decide(snapshots, policy, now)
        .into_iter()
        .zip(snapshots)
        .filter(|(d, _)| d.expires())
        .map(|(_, s)| s)
        .collect()
}

/// The retention a snapshot was made under, read back from its `lifeboat:policy` tag (written with spaces for
/// commas, which tag values cannot hold); `None` when the tag is not a GFS policy.
pub fn policy_of(tag: &str) -> Option<Gfs> {
    Gfs::parse(&tag.split_whitespace().collect::<Vec<_>>().join(",")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::tags;
    use crate::rds::naming::SnapshotKind;
    use crate::rds::snapshot_tags::snapshot_tags;
    use crate::rds::snapshots::testing::snap;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn day(n: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap() + Duration::days(n)
    }

    #[test]
    fn the_policy_tag_reads_back_as_the_policy_it_was_written_from() {
        let written = snapshot_tags("db", SnapshotKind::Schedule, Utc::now(), "daily=7,weekly=4", None);
        let gfs = policy_of(&written[tags::POLICY]).unwrap();
        assert_eq!((gfs.daily, gfs.weekly, gfs.monthly), (7, 4, 0));
        assert!(policy_of("whatever").is_none());
    }

    #[test]
    fn parses_and_prints_policies() {
        let g = Gfs::parse("daily=7, weekly=4,monthly=12,yearly=3").unwrap();
        assert_eq!(
            g,
            Gfs {
                daily: 7,
                weekly: 4,
                monthly: 12,
                yearly: 3
            }
        );
        assert_eq!(g.to_string(), "daily=7,weekly=4,monthly=12,yearly=3");
        assert_eq!(
            Gfs::parse("daily=14").unwrap(),
            Gfs {
                daily: 14,
                ..Gfs::default()
            }
        );
        assert!(Gfs::parse("daily=0").unwrap_err().contains("keeps nothing"));
        assert!(Gfs::parse("daily=7,daily=3").unwrap_err().contains("twice"));
        assert!(Gfs::parse("daily").unwrap_err().contains("period=count"));
        assert!(Gfs::parse("daily=-1").unwrap_err().contains("whole number"));
    }

    #[test]
    fn a_year_of_dailies_keeps_exactly_the_gfs_set() {
        // 400 daily snapshots ending on day 399.
        let snaps: Vec<Snapshot> = (0..400).map(|d| snap(&format!("s{d:03}"), day(d), true)).collect();
        let policy = Gfs {
            daily: 7,
            weekly: 4,
            monthly: 12,
            yearly: 3,
        };
        let decisions = decide(&snaps, &policy, day(400));
        let kept: Vec<&str> = snaps
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| !d.expires())
            .map(|(s, _)| s.id.as_str())
            .collect();
        // 7 dailies (the newest is "newest"); weekly and monthly overlap some of them.
        assert_eq!(decisions[399], Decision::KeepNewest);
        for (d, decision) in decisions.iter().enumerate().take(399).skip(393) {
            assert_eq!(*decision, Decision::KeepDaily, "day {d}");
        }
        // At most 7 + 4 + 12 + 3 snapshots survive, and at least the 7 dailies.
        assert!(kept.len() >= 7 && kept.len() <= 26, "{kept:?}");
        // The last day of 2026 (day 364) is the newest of its month and of its year: kept by the monthly rule first.
        assert_eq!(decisions[364], Decision::KeepMonthly);
        assert_eq!(decisions[0], Decision::Expire);
    }

    #[test]
    fn manual_snapshots_expire_by_their_own_time() {
        let mut old = snap("manual-old", day(0), true);
        old.tags.insert(crate::core::tags::SOURCE.into(), "manual".into());
        old.tags
            .insert(crate::core::tags::EXPIRES_AT.into(), day(30).to_rfc3339());
        let mut forever = snap("manual-noexpiry", day(1), true);
        forever.tags.insert(crate::core::tags::SOURCE.into(), "manual".into());
        let newest = snap("sched", day(40), true);
        let snaps = vec![old, forever, newest];
        let d = decide(
            &snaps,
            &Gfs {
                daily: 1,
                ..Gfs::default()
            },
            day(40),
        );
        assert_eq!(
            d,
            vec![Decision::Expire, Decision::KeepUntilExpiry, Decision::KeepNewest]
        );
        let d = decide(
            &snaps,
            &Gfs {
                daily: 1,
                ..Gfs::default()
            },
            day(29),
        );
        assert_eq!(d[0], Decision::KeepUntilExpiry);
    }

    #[test]
    fn an_event_dated_in_the_future_expires_nothing_early() {
        assert_eq!(clock(day(400), day(4)), day(4));
        assert_eq!(clock(day(3), day(4)), day(3), "a late run keeps its own time");
        // A manual snapshot kept until day 9, seen by a run on day 4 whose event claims day 400.
        let mut manual = snap("manual", day(2), true);
        manual.tags.insert(crate::core::tags::SOURCE.into(), "manual".into());
        manual
            .tags
            .insert(crate::core::tags::EXPIRES_AT.into(), day(9).to_rfc3339());
        let snaps = vec![snap("s1", day(1), true), manual, snap("s3", day(3), true)];
        let policy = Gfs {
            daily: 7,
            ..Gfs::default()
        };
        assert_eq!(
            decide(&snaps, &policy, day(400))[1],
            Decision::Expire,
            "what the event alone would do"
        );
        assert_eq!(
            decide(&snaps, &policy, clock(day(400), day(4)))[1],
            Decision::KeepUntilExpiry
        );
    }

    proptest! {
        /// Whatever time an event claims, retention by [`clock`] expires nothing that retention by the wall clock
        /// keeps.
        #[test]
        fn a_claimed_time_never_expires_more_than_the_wall_clock(
            snaps in arb_snapshots(), policy in arb_policy(), now_day in 0i64..900, claimed_day in 0i64..2000,
        ) {
            let now = day(now_day);
            let by_wall: HashSet<&str> = expired(&snaps, &policy, now).into_iter().map(|s| s.id.as_str()).collect();
            for s in expired(&snaps, &policy, clock(day(claimed_day), now)) {
                prop_assert!(by_wall.contains(s.id.as_str()), "{} expired early", s.id);
            }
        }
    }

    #[test]
    fn unowned_automated_and_unavailable_snapshots_are_not_eligible() {
        let mut automated = snap("rds:app-2026", day(1), true);
        automated.snapshot_type = "automated".into();
        let unowned = snap("someone-elses", day(2), false);
        let mut creating = snap("creating", day(3), true);
        creating.status = "creating".into();
        let snaps = vec![
            automated,
            unowned,
            creating,
            snap("a", day(4), true),
            snap("b", day(5), true),
        ];
        let d = decide(
            &snaps,
            &Gfs {
                daily: 1,
                ..Gfs::default()
            },
            day(10),
        );
        assert_eq!(
            d,
            vec![
                Decision::NotEligible,
                Decision::NotEligible,
                Decision::NotEligible,
                Decision::Expire,
                Decision::KeepNewest
            ]
        );
    }

    fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
        (0i64..800, 0i64..24, any::<bool>(), 0u8..10, any::<bool>(), 0i64..900).prop_map(
            |(d, h, owned, kind, manual, expiry_day)| {
                let mut s = snap(&format!("s-{d}-{h}-{kind}"), day(d) + Duration::hours(h), owned);
                match kind {
                    0 => s.snapshot_type = "automated".into(),
                    1 => s.status = "creating".into(),
                    2 => s.status = "failed".into(),
                    _ => {}
                }
                if manual {
                    s.tags.insert(crate::core::tags::SOURCE.into(), "manual".into());
                    s.tags
                        .insert(crate::core::tags::EXPIRES_AT.into(), day(expiry_day).to_rfc3339());
                }
                s
            },
        )
    }

    /// Snapshots with unique identifiers, as RDS guarantees within a region.
    fn arb_snapshots() -> impl Strategy<Value = Vec<Snapshot>> {
        prop::collection::vec(arb_snapshot(), 0..60).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, mut s)| {
                    s.id = format!("{}-{i}", s.id);
                    s
                })
                .collect()
        })
    }

    fn arb_policy() -> impl Strategy<Value = Gfs> {
        (0u32..10, 0u32..6, 0u32..14, 0u32..4).prop_map(|(daily, weekly, monthly, yearly)| Gfs {
            daily,
            weekly,
            monthly,
            yearly,
        })
    }

    proptest! {
        #[test]
        fn never_expires_what_it_must_keep(snaps in arb_snapshots(), policy in arb_policy(), now_day in 0i64..900) {
            let now = day(now_day);
            let expired = expired(&snaps, &policy, now);
            let newest_available_owned = snaps
                .iter()
                .filter(|s| s.owned() && !s.is_automated() && s.is_available() && s.logical_time() <= now)
                .max_by(|a, b| a.logical_time().cmp(&b.logical_time()).then_with(|| a.id.cmp(&b.id)));
            for s in &expired {
                prop_assert!(s.owned(), "expired an unowned snapshot {}", s.id);
                prop_assert!(!s.is_automated(), "expired an automated snapshot {}", s.id);
                prop_assert!(s.is_available(), "expired a snapshot in state {}", s.status);
                prop_assert!(Some(s.id.as_str()) != newest_available_owned.map(|n| n.id.as_str()), "expired the newest available snapshot");
            }
        }

        #[test]
        fn applying_the_policy_twice_expires_nothing_more(snaps in arb_snapshots(), policy in arb_policy(), now_day in 0i64..900) {
            let now = day(now_day);
            let gone: HashSet<String> = expired(&snaps, &policy, now).into_iter().map(|s| s.id.clone()).collect();
            let rest: Vec<Snapshot> = snaps.iter().filter(|s| !gone.contains(&s.id)).cloned().collect();
            prop_assert!(expired(&rest, &policy, now).is_empty());
        }

        #[test]
        fn keeps_one_snapshot_per_recent_day(n in 1i64..60, daily in 1u32..20) {
            let snaps: Vec<Snapshot> = (0..n).map(|d| snap(&format!("s{d}"), day(d), true)).collect();
            let gone = expired(&snaps, &Gfs { daily, ..Gfs::default() }, day(n));
            prop_assert_eq!(snaps.len() - gone.len(), (n as usize).min(daily as usize));
        }
    }
}
