//! What a new plan document would change, before it is applied: the dry-run `lifeboat plan diff` and
//! `lifeboat plan apply` print.
//!
//! Two kinds of change. Field changes are every leaf of the document that differs, as a path and its old and new
//! values, so nothing a reviewer must see can hide in a summary. Consequences are what the new rules would do
//! to what exists: the snapshots that the new retention would expire and the old one keeps ([`newly_expired`],
//! the same `rds::retention::decide` the snapshot function runs, so the dry-run and the real run cannot differ).
//!
//! Must never: read AWS (the tool gathers the snapshots), or apply anything.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::plans::document::Document;
use crate::rds::retention::{decide, Gfs, Retained};

/// One leaf of the document that differs. `None` is "absent".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub path: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

fn flatten(value: &Value, at: String, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                flatten(v, path, out);
            }
        }
        // A list of plain values (tables, databases) reads best whole; a list of objects by item.
        Value::Array(items) if items.iter().all(|i| !i.is_object()) => {
            if !items.is_empty() {
                out.insert(at, value.to_string());
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, format!("{at}[{i}]"), out);
            }
        }
        Value::Null => {}
        other => {
            out.insert(at, other.to_string());
        }
    }
}

/// Every leaf that differs between two documents, by path.
pub fn field_changes(old: &Document, new: &Document) -> Vec<FieldChange> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    if let (Ok(o), Ok(n)) = (serde_json::to_value(old), serde_json::to_value(new)) {
        flatten(&o, String::new(), &mut a);
        flatten(&n, String::new(), &mut b);
    }
    let mut paths: Vec<&String> = a.keys().chain(b.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| a.get(*p) != b.get(*p))
        .map(|p| FieldChange {
            path: p.clone(),
            old: a.get(p).cloned(),
            new: b.get(p).cloned(),
        })
        .collect()
}

/// The snapshots (of one database) that `new` would expire and `old` keeps. `None` is "no retention": a
/// database in no plan, or in a plan with no such rule, has nothing expired by a plan.
pub fn newly_expired<'s, S: Retained>(
    snapshots: &'s [S],
    old: Option<&Gfs>,
    new: Option<&Gfs>,
    now: DateTime<Utc>,
) -> Vec<&'s S> {
    let Some(new) = new else { return Vec::new() };
    let under_new = decide(snapshots, new, now);
    let under_old = old.map(|g| decide(snapshots, g, now));
    snapshots
        .iter()
        .enumerate()
        .filter(|(i, _)| under_new[*i].expires() && !under_old.as_ref().is_some_and(|o| o[*i].expires()))
        .map(|(_, s)| s)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::document::parse;
    use crate::rds::snapshots::testing::snap;
    use chrono::Duration;

    fn doc(text: &str) -> Document {
        parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn every_differing_leaf_is_listed_with_both_values() {
        let old = doc(
            r#"{"format": 1, "plans": {"prod": {"snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 30}}, "exports": {"critical": {"schedule": "0 */6 * * *", "keep_days": 7, "include": ["users"]}}}}}"#,
        );
        let new = doc(
            r#"{"format": 1, "plans": {"prod": {"snapshots": {"schedule": "0 3 * * *", "retention": {"daily": 20}}, "exports": {"critical": {"schedule": "0 */6 * * *", "keep_days": 7, "include": ["users", "projects"]}}}, "dev": {"no_backups": "seeded"}}}"#,
        );
        let changes: Vec<(String, Option<String>, Option<String>)> = field_changes(&old, &new)
            .into_iter()
            .map(|c| (c.path, c.old, c.new))
            .collect();
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            changes,
            vec![
                ("plans.dev.no_backups".into(), None, s("\"seeded\"")),
                (
                    "plans.prod.exports.critical.include".into(),
                    s("[\"users\"]"),
                    s("[\"users\",\"projects\"]")
                ),
                ("plans.prod.snapshots.retention.daily".into(), s("30"), s("20")),
                (
                    "plans.prod.snapshots.schedule".into(),
                    s("\"0 2 * * *\""),
                    s("\"0 3 * * *\"")
                ),
            ]
        );
        assert!(field_changes(&old, &old).is_empty());
    }

    #[test]
    fn a_shorter_retention_shows_exactly_the_snapshots_it_would_expire() {
        let now: DateTime<Utc> = "2026-12-31T12:00:00Z".parse().unwrap();
        // One scheduled snapshot a day for 40 days, newest first.
        let snaps: Vec<_> = (0..40)
            .map(|d| {
                snap(
                    &format!("lifeboat-db-{d:02}"),
                    now - Duration::days(d) - Duration::hours(10),
                    true,
                )
            })
            .collect();
        let thirty = Gfs {
            daily: 30,
            ..Gfs::default()
        };
        let twenty = Gfs {
            daily: 20,
            ..Gfs::default()
        };
        let expired: Vec<&str> = newly_expired(&snaps, Some(&thirty), Some(&twenty), now)
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(expired.len(), 10, "{expired:?}");
        assert_eq!(expired.first(), Some(&"lifeboat-db-20"));
        assert_eq!(expired.last(), Some(&"lifeboat-db-29"));
        // Longer retention expires nothing new; no new retention expires nothing.
        assert!(newly_expired(&snaps, Some(&twenty), Some(&thirty), now).is_empty());
        assert!(newly_expired(&snaps, Some(&thirty), None, now).is_empty());
        // Joining a plan for the first time: everything its retention does not keep.
        assert_eq!(newly_expired(&snaps, None, Some(&thirty), now).len(), 10);
    }
}
