//! Which snapshots to copy to the DR region, how many copies may start now, and which tags a copy carries.
//! Pure rules.
//!
//! RDS allows a limited number of snapshot copies in flight per destination region; copies that earlier runs
//! started count against it, so a run never starts more than the free slots and the rest wait for the next run.

use std::collections::{BTreeMap, HashSet};

use crate::core::tags;
use crate::rds::snapshots::Snapshot;

/// Free copy slots in a destination region, given its manual snapshots and the limit.
pub fn free_slots(destination: &[Snapshot], max_in_flight: u32) -> u32 {
    let in_flight = destination.iter().filter(|s| s.owned() && s.is_in_progress()).count();
    max_in_flight.saturating_sub(u32::try_from(in_flight).unwrap_or(u32::MAX))
}

/// Lifeboat's available source snapshots that the destination lacks and retention did not just delete,
/// newest first (the newest copy matters most when slots are short).
pub fn candidates<'a>(source: &'a [Snapshot], destination: &[Snapshot], deleted: &[String]) -> Vec<&'a Snapshot> {
    let have: HashSet<&str> = destination.iter().map(|s| s.id.as_str()).collect();
    let mut out: Vec<&Snapshot> = source
        .iter()
        .filter(|s| s.owned() && s.is_available())
        .filter(|s| !have.contains(s.id.as_str()) && !deleted.contains(&s.id))
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.logical_time()));
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::snapshots::testing::snap;
    use chrono::{DateTime, Duration, TimeZone, Utc};

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 37).unwrap()
    }

    #[test]
    fn copies_in_flight_use_up_slots() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut dest: Vec<Snapshot> = (0..4).map(|i| snap(&format!("c{i}"), t, true)).collect();
        dest[0].status = "copying".into();
        dest[1].status = "creating".into();
        assert_eq!(free_slots(&dest, 5), 3);
        dest[2].status = "pending".into();
        dest[3].status = "copying".into();
        assert_eq!(free_slots(&dest, 3), 0, "never negative");
        // Someone else's copies do not count against Lifeboat's share.
        let foreign = vec![{
            let mut s = snap("theirs", t, false);
            s.status = "copying".into();
            s
        }];
        assert_eq!(free_slots(&foreign, 5), 5);
    }

    #[test]
    fn candidates_are_missing_available_owned_and_newest_first() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut source: Vec<Snapshot> = (0..5)
            .map(|i| snap(&format!("s{i}"), t + Duration::days(i), true))
            .collect();
        source[4].status = "creating".into();
        source.push(snap("unowned", t + Duration::days(9), false));
        let dest = vec![snap("s1", t, true)];
        let picked: Vec<&str> = candidates(&source, &dest, &["s0".to_owned()])
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(picked, vec!["s3", "s2"]);
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
