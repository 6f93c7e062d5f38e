//! Rules of restore tests, as pure functions: which snapshot to restore, what the restored instance is called
//! and how it is marked, how restored data is compared with an export's manifest, and the RTO/RPO arithmetic.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::rds::Snapshot;

pub use crate::tags::{EXPIRES_AT, RESTORE_TEST, SOURCE_DB};

/// Whether a resource carries the restore-test tag: the one guard in front of every delete of a restore test.
pub fn is_restore_test(tags: &BTreeMap<String, String>) -> bool {
    tags.get(RESTORE_TEST).is_some_and(|v| v == "true")
}

/// Whether the janitor may delete a resource now: a restore test whose expiry time has passed. A resource without
/// a readable expiry is left alone (and reported by nobody's cleanup but its own test's).
pub fn expired_restore_test(tags: &BTreeMap<String, String>, now: DateTime<Utc>) -> bool {
    is_restore_test(tags)
        && tags
            .get(EXPIRES_AT)
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .is_some_and(|t| t < now)
}

/// The identifier of a restore-test instance or cluster: `lifeboat-rt-<db>-<yyyymmddhhmm>`, within RDS's 63
/// characters (the database part is cut), never ending in a hyphen or holding two hyphens in a row.
pub fn test_identifier(db: &str, at: DateTime<Utc>) -> String {
    let stamp = at.format("%Y%m%d%H%M").to_string();
    let room = 63 - "lifeboat-rt-".len() - 1 - stamp.len();
    let mut part: String = db.chars().take(room).collect();
    while part.ends_with('-') {
        part.pop();
    }
    let mut id = format!("lifeboat-rt-{part}-{stamp}");
    while id.contains("--") {
        id = id.replace("--", "-");
    }
    id
}

/// The snapshot to restore: the one named (which must exist and be available), else the newest available one,
/// Lifeboat's or automated.
pub fn choose_snapshot<'a>(snapshots: &'a [Snapshot], named: Option<&str>) -> Result<&'a Snapshot, String> {
    if let Some(id) = named.filter(|n| *n != "latest") {
        let s = snapshots
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| format!("snapshot {id} does not exist for this database"))?;
        if !s.is_available() {
            return Err(format!("snapshot {id} is {}, not available", s.status));
        }
        return Ok(s);
    }
    snapshots
        .iter()
        .filter(|s| s.is_available() && s.created.is_some())
        .max_by_key(|s| s.created)
        .ok_or_else(|| "the database has no available snapshot to restore".to_owned())
}

/// The result of one check of a restore test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub result: CheckResult,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    Passed,
    Failed,
    /// Could not be run (e.g. no export to compare with); never counts as passed, and is reported.
    Skipped,
}

impl Check {
    pub fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            result: if ok { CheckResult::Passed } else { CheckResult::Failed },
            detail: detail.into(),
        }
    }

    pub fn skipped(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            result: CheckResult::Skipped,
            detail: detail.into(),
        }
    }
}

/// Compares the row counts of a restored database with an export's manifest (`schema.table` → rows). A table of
/// the manifest that is missing fails; a count further from the manifest's than `tolerance_percent` (the snapshot
/// and the export were taken at different times) fails. Tables the manifest does not list are not judged.
pub fn compare_counts(
    expected: &BTreeMap<String, i64>,
    actual: &BTreeMap<String, i64>,
    tolerance_percent: f64,
) -> Vec<Check> {
    expected
        .iter()
        .map(|(table, &want)| {
            let name = format!("rows of {table}");
            match actual.get(table) {
                None => Check::new(name, false, format!("table missing (the export has {want} rows)")),
                Some(&got) => {
                    let allowed = (want as f64 * tolerance_percent / 100.0).ceil() as i64;
                    let ok = (got - want).abs() <= allowed && (want == 0 || got > 0);
                    Check::new(
                        name,
                        ok,
                        format!("{got} restored, {want} in the export (tolerance ±{allowed})"),
                    )
                }
            }
        })
        .collect()
}

/// Recovery time (request to verified database) and recovery point (age of the restored data at the request).
pub fn rto_rpo(requested: DateTime<Utc>, verified: DateTime<Utc>, data_time: DateTime<Utc>) -> (f64, f64) {
    let rto = (verified - requested).num_milliseconds() as f64 / 1000.0;
    let rpo = (requested - data_time).num_milliseconds().max(0) as f64 / 1000.0;
    (rto, rpo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::testing::snap;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    #[test]
    fn the_newest_available_snapshot_is_chosen_unless_one_is_named() {
        let mut creating = snap("lifeboat-db-3", at(22, 2), true);
        creating.status = "creating".into();
        let mut automated = snap("rds:db-2026-11-21-03-00", at(21, 3), false);
        automated.snapshot_type = "automated".into();
        let all = vec![snap("lifeboat-db-1", at(20, 2), true), automated, creating];
        assert_eq!(choose_snapshot(&all, None).unwrap().id, "rds:db-2026-11-21-03-00");
        assert_eq!(
            choose_snapshot(&all, Some("latest")).unwrap().id,
            "rds:db-2026-11-21-03-00"
        );
        assert_eq!(
            choose_snapshot(&all, Some("lifeboat-db-1")).unwrap().id,
            "lifeboat-db-1"
        );
        assert!(choose_snapshot(&all, Some("lifeboat-db-3"))
            .unwrap_err()
            .contains("creating"));
        assert!(choose_snapshot(&all, Some("nope"))
            .unwrap_err()
            .contains("does not exist"));
        assert!(choose_snapshot(&[], None)
            .unwrap_err()
            .contains("no available snapshot"));
    }

    #[test]
    fn counts_within_tolerance_pass_and_missing_tables_fail() {
        let expected: BTreeMap<String, i64> = [("public.users", 1000), ("public.chats", 0), ("public.messages", 500)]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        let actual: BTreeMap<String, i64> = [("public.users", 1040), ("public.chats", 0), ("public.extra", 3)]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        let checks = compare_counts(&expected, &actual, 5.0);
        let by_name: BTreeMap<_, _> = checks.iter().map(|c| (c.name.as_str(), c.result)).collect();
        assert_eq!(by_name["rows of public.users"], CheckResult::Passed);
        assert_eq!(by_name["rows of public.chats"], CheckResult::Passed);
        assert_eq!(by_name["rows of public.messages"], CheckResult::Failed);
        assert_eq!(checks.len(), 3, "tables outside the manifest are not judged");
        let strict = compare_counts(&expected, &actual, 1.0);
        assert_eq!(strict[2].result, CheckResult::Failed, "{:?}", strict[2]);
    }

    #[test]
    fn rto_and_rpo() {
        assert_eq!(rto_rpo(at(22, 3), at(22, 4), at(22, 2)), (3600.0, 3600.0));
    }

    proptest! {
        #[test]
        fn identifiers_are_valid_rds_identifiers(db in "[a-z][a-z0-9-]{0,62}", minute in 0i64..10_000_000) {
            let id = test_identifier(&db, at(1, 0) + chrono::Duration::minutes(minute));
            prop_assert!(id.len() <= 63);
            prop_assert!(id.starts_with("lifeboat-rt-"));
            prop_assert!(!id.ends_with('-') && !id.contains("--"));
            prop_assert!(id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
    }
}
