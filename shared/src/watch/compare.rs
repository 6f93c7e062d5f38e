//! The comparisons: a new manifest against the previous complete one of its series and against the rolling
//! median of the ones before it, and its catalogue against the previous one (the schema drift). Pure functions
//! over manifests: no AWS, no clock.
//!
//! A series is one database's exports of one profile, or one cache's RDB copies. Its history is handed in newest
//! first and already cut where the newest acknowledged anomaly moved the baseline ([`baseline`]), so an accepted
//! change is never compared with what came before it.
//!
//! Growth is normal: a table or a cache database that only grows never makes a finding, nor does an archive that
//! grows within `size_growth_percent`. A table smaller than `min_rows` in the baseline is only checked for
//! vanishing, so that a ten-row table losing three rows is not an alarm.
//!
//! Owns: what is a finding and how its line reads. Never reads the bucket (see [`crate::watch::run`]) nor decides
//! what an anomaly holds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bucket::manifest::{self, Catalog, Manifest};
use crate::caches::records::RdbManifest;
use crate::watch::record::{Anomaly, Finding};
use crate::watch::thresholds::{Limit, Thresholds};

/// One backup of a series, as the comparison reads it: its manifest key, its logical time and the manifest.
#[derive(Debug)]
pub struct Backup<'a, M> {
    pub key: &'a str,
    pub at: DateTime<Utc>,
    pub manifest: &'a M,
}

// By hand: a derive would ask `M: Copy`, and a backup only borrows its manifest.
impl<M> Clone for Backup<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Backup<'_, M> {}

/// What comparing one backup with its history found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub compared_with: Option<String>,
    /// The manifests whose median was taken (the previous one included), newest first.
    pub history: Vec<String>,
    pub findings: Vec<Finding>,
    pub drift: Option<Drift>,
    pub drift_summary: Option<String>,
}

impl Outcome {
    /// A first backup's: nothing to compare with, so nothing found.
    pub fn first() -> Self {
        Outcome {
            compared_with: None,
            history: Vec::new(),
            findings: Vec::new(),
            drift: None,
            drift_summary: None,
        }
    }
}

/// The schema drift between two catalogues.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<Object>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Object>,
    /// Objects whose definition's hash changed (a table whose columns changed is listed under `columns` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<Object>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnChange>,
}

/// A TOC object: pg_dump's kind, its schema and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Object {
    pub desc: String,
    pub schema: String,
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnChange {
    /// The table's label.
    pub table: String,
    pub column: String,
    /// `added`, `removed` or `type-changed`.
    pub change: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty() && self.columns.is_empty()
    }
}

/// The summary of a drift that cannot be computed because a catalogue is missing.
pub const NOT_COMPARABLE: &str =
    "schema drift not comparable: the previous backup's manifest records no catalogue (written before Lifeboat read one)";
/// The summary of a drift with no change.
pub const NO_CHANGE: &str = "no schema change";

/// The history a new backup is compared with: `earlier` (the series' backups before it, any order) from the
/// newest acknowledged anomaly's backup on (an acknowledged change is the new baseline), newest first, at most
/// `n`.
pub fn baseline<'a, M>(earlier: &[Backup<'a, M>], anomalies: &[Anomaly], n: u32) -> Vec<Backup<'a, M>> {
    let from = anomalies.iter().filter(|a| !a.is_open()).map(|a| a.seen_at).max();
    let mut kept: Vec<_> = earlier
        .iter()
        .filter(|b| from.is_none_or(|from| b.at >= from))
        .copied()
        .collect();
    kept.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.key.cmp(a.key)));
    kept.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    kept
}

/// Compares an export with its history (newest first: [`baseline`]).
pub fn compare_exports(current: Backup<'_, Manifest>, history: &[Backup<'_, Manifest>], t: &Thresholds) -> Outcome {
    let Some(previous) = history.first() else {
        return Outcome::first();
    };
    let mut findings = Vec::new();
    let (cur, prev) = (current.manifest, previous.manifest);
    let when = Times::new(current.at, previous.at, history.len());

    // Tables: vanished, appeared, rows dropped against the previous backup or the median.
    let rows = |m: &Manifest| -> BTreeMap<String, i64> { m.tables.iter().map(|t| (t.label(), t.rows)).collect() };
    let (now, before) = (rows(cur), rows(prev));
    for (label, &was) in &before {
        if !now.contains_key(label) {
            findings.push(Finding {
                kind: "table-vanished".into(),
                object: label.clone(),
                before: Some(was as f64),
                after: None,
                line: format!(
                    "{label}: {} rows in the backup of {}, absent from this one ({})",
                    thousands(was as f64),
                    when.previous,
                    when.current
                ),
            });
        }
    }
    for (label, &rows_now) in &now {
        let Some(&was) = before.get(label) else {
            findings.push(Finding {
                kind: "table-appeared".into(),
                object: label.clone(),
                before: None,
                after: Some(rows_now as f64),
                line: format!(
                    "{label}: a new table in this backup ({}) with {} rows, absent from the backup of {}",
                    when.current,
                    thousands(rows_now as f64),
                    when.previous
                ),
            });
            continue;
        };
        let (limit, min_rows) = t.table(label);
        let median = median(
            history
                .iter()
                .filter_map(|b| rows(b.manifest).get(label).map(|&r| r as f64)),
        );
        if let Some(f) = dropped(
            "rows-dropped",
            label,
            "rows",
            was as f64,
            median,
            rows_now as f64,
            limit,
            min_rows as f64,
            &when,
        ) {
            findings.push(f);
        }
    }

    // Large objects: counted together, judged with the plan's rows limit.
    if let Some(f) = dropped(
        "large-objects-dropped",
        "large objects",
        "large objects",
        prev.large_objects as f64,
        median(history.iter().map(|b| b.manifest.large_objects as f64)),
        cur.large_objects as f64,
        t.rows_drop_percent,
        1.0,
        &when,
    ) {
        findings.push(f);
    }

    // The archive's size, both ways.
    let sizes = median(history.iter().map(|b| b.manifest.plaintext.bytes as f64));
    findings.extend(size(
        prev.plaintext.bytes as f64,
        sizes,
        cur.plaintext.bytes as f64,
        t,
        &when,
    ));

    // Versions.
    for (kind, what, was, is) in [
        (
            "server-major-changed",
            "server",
            &prev.source.server_version,
            &cur.source.server_version,
        ),
        (
            "pg-dump-major-changed",
            "pg_dump",
            &prev.pg_dump_version,
            &cur.pg_dump_version,
        ),
    ] {
        if let (Some(a), Some(b)) = (major(was), major(is)) {
            if a != b {
                findings.push(Finding {
                    kind: kind.into(),
                    object: what.into(),
                    before: None,
                    after: None,
                    line: format!(
                        "{what}: major version {a} in the backup of {}, {b} in this one ({})",
                        when.previous, when.current
                    ),
                });
            }
        }
    }

    // Schemas and extensions, from the catalogues.
    let (drift, drift_summary) = match (&prev.catalog, &cur.catalog) {
        (Some(a), Some(b)) => {
            for (kind, object, was, is) in [
                ("schema", "schema", &a.schemas, &b.schemas),
                ("extension", "extension", &a.extensions, &b.extensions),
            ] {
                findings.extend(set_changes(kind, object, was, is, &when));
            }
            let drift = drift(a, b);
            let summary = summary(&drift);
            (Some(drift), Some(summary))
        }
        _ => (None, Some(NOT_COMPARABLE.to_owned())),
    };

    Outcome {
        compared_with: Some(previous.key.to_owned()),
        history: history.iter().map(|b| b.key.to_owned()).collect(),
        findings,
        drift,
        drift_summary,
    }
}

/// Compares a cache's RDB copy with its history (newest first): keys per database number.
pub fn compare_rdb(current: Backup<'_, RdbManifest>, history: &[Backup<'_, RdbManifest>], t: &Thresholds) -> Outcome {
    let Some(previous) = history.first() else {
        return Outcome::first();
    };
    let mut findings = Vec::new();
    let when = Times::new(current.at, previous.at, history.len());
    let now = current.manifest.keys_per_db();
    let before = previous.manifest.keys_per_db();
    for (db, &was) in &before {
        let is = now.get(db).copied().unwrap_or(0);
        let object = format!("db{db}");
        let median = median(
            history
                .iter()
                .map(|b| b.manifest.keys_per_db().get(db).copied().unwrap_or(0) as f64),
        );
        if let Some(f) = dropped(
            "keys-dropped",
            &object,
            "keys",
            was as f64,
            median,
            is as f64,
            t.keys_drop_percent,
            1.0,
            &when,
        ) {
            findings.push(f);
        }
    }
    Outcome {
        compared_with: Some(previous.key.to_owned()),
        history: history.iter().map(|b| b.key.to_owned()).collect(),
        findings,
        drift: None,
        drift_summary: None,
    }
}

/// How the lines name the backups.
struct Times {
    current: String,
    previous: String,
    history: usize,
}

impl Times {
    fn new(current: DateTime<Utc>, previous: DateTime<Utc>, history: usize) -> Self {
        let f = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M").to_string();
        Times {
            current: f(current),
            previous: f(previous),
            history,
        }
    }
}

/// A figure that dropped beyond `limit` against the previous backup, or else against the median of the history:
/// `None` when the baseline is below `min` (only vanishing counts then, and a figure at zero has vanished).
#[allow(clippy::too_many_arguments)]
fn dropped(
    kind: &str,
    object: &str,
    unit: &str,
    previous: f64,
    median: Option<f64>,
    now: f64,
    limit: Limit,
    min: f64,
    when: &Times,
) -> Option<Finding> {
    let Limit::Percent(limit) = limit else {
        return None;
    };
    let beyond = |base: f64| base > 0.0 && base >= min && (base - now) / base * 100.0 > f64::from(limit);
    let (base, line) = if beyond(previous) {
        (
            previous,
            format!(
                "{object}: {} {unit} in the backup of {}, {} in this one ({}), {}",
                thousands(previous),
                when.previous,
                thousands(now),
                when.current,
                percent(previous, now)
            ),
        )
    } else {
        let median = median.filter(|&m| beyond(m))?;
        (
            median,
            format!(
                "{object}: {} {unit} in this backup ({}), the median of the last {} was {}, {}",
                thousands(now),
                when.current,
                when.history,
                thousands(median),
                percent(median, now)
            ),
        )
    };
    Some(Finding {
        kind: kind.into(),
        object: object.into(),
        before: Some(base),
        after: Some(now),
        line,
    })
}

/// The archive's size against the previous backup, or else the median: a drop or a jump beyond the limits.
fn size(previous: f64, median: Option<f64>, now: f64, t: &Thresholds, when: &Times) -> Option<Finding> {
    let change = |base: f64| (now - base) / base * 100.0;
    let judge = |base: f64| -> Option<&'static str> {
        if base <= 0.0 {
            return None;
        }
        match (t.size_drop_percent, t.size_growth_percent) {
            (Limit::Percent(d), _) if -change(base) > f64::from(d) => Some("size-drop"),
            (_, Limit::Percent(g)) if change(base) > f64::from(g) => Some("size-jump"),
            _ => None,
        }
    };
    let mib = |b: f64| format!("{} bytes", thousands(b));
    if let Some(kind) = judge(previous) {
        return Some(Finding {
            kind: kind.into(),
            object: "archive".into(),
            before: Some(previous),
            after: Some(now),
            line: format!(
                "archive: {} in the backup of {}, {} in this one ({}), {}",
                mib(previous),
                when.previous,
                mib(now),
                when.current,
                percent(previous, now)
            ),
        });
    }
    let median = median?;
    let kind = judge(median)?;
    Some(Finding {
        kind: kind.into(),
        object: "archive".into(),
        before: Some(median),
        after: Some(now),
        line: format!(
            "archive: {} in this backup ({}), the median of the last {} was {}, {}",
            mib(now),
            when.current,
            when.history,
            mib(median),
            percent(median, now)
        ),
    })
}

fn set_changes(kind: &str, object: &str, was: &[String], is: &[String], when: &Times) -> Vec<Finding> {
    let (was, is): (BTreeSet<_>, BTreeSet<_>) = (was.iter().collect(), is.iter().collect());
    let gone = was.difference(&is).map(|name| Finding {
        kind: format!("{kind}-vanished"),
        object: (*name).clone(),
        before: None,
        after: None,
        line: format!(
            "{object} {name}: in the backup of {}, absent from this one ({})",
            when.previous, when.current
        ),
    });
    let new = is.difference(&was).map(|name| Finding {
        kind: format!("{kind}-appeared"),
        object: (*name).clone(),
        before: None,
        after: None,
        line: format!(
            "{object} {name}: new in this backup ({}), absent from the backup of {}",
            when.current, when.previous
        ),
    });
    gone.chain(new).collect()
}

/// A table's columns as `(name, type)`, in order.
type Columns = Vec<(String, String)>;

/// The schema drift from catalogue `a` to catalogue `b`.
pub fn drift(a: &Catalog, b: &Catalog) -> Drift {
    fn index(c: &Catalog) -> BTreeMap<Object, Vec<&str>> {
        let mut map: BTreeMap<Object, Vec<&str>> = BTreeMap::new();
        for e in &c.entries {
            map.entry(Object {
                desc: e.desc.clone(),
                schema: e.schema.clone(),
                tag: e.tag.clone(),
            })
            .or_default()
            .push(&e.sha256);
        }
        for hashes in map.values_mut() {
            hashes.sort_unstable();
        }
        map
    }
    let (was, is) = (index(a), index(b));
    let mut out = Drift::default();

    let tables = |c: &Catalog| -> BTreeMap<(String, String), Option<Columns>> {
        c.tables
            .iter()
            .map(|t| {
                let columns = t
                    .columns
                    .as_ref()
                    .map(|cs| cs.iter().map(|c| (c.name.clone(), c.type_name.clone())).collect());
                ((t.schema.clone(), t.name.clone()), columns)
            })
            .collect()
    };
    let (tables_was, tables_is) = (tables(a), tables(b));
    let mut columns_changed = BTreeSet::new();
    for (table, is_columns) in &tables_is {
        let (Some(Some(old)), Some(new)) = (tables_was.get(table), is_columns) else {
            continue;
        };
        let label = manifest::label(&table.0, &table.1);
        let old_map: BTreeMap<_, _> = old.iter().map(|(n, t)| (n, t)).collect();
        let new_map: BTreeMap<_, _> = new.iter().map(|(n, t)| (n, t)).collect();
        let before = out.columns.len();
        for (name, ty) in old {
            match new_map.get(name) {
                None => out.columns.push(ColumnChange {
                    table: label.clone(),
                    column: name.clone(),
                    change: "removed".into(),
                    before: Some(ty.clone()),
                    after: None,
                }),
                Some(&new_ty) if new_ty != ty => out.columns.push(ColumnChange {
                    table: label.clone(),
                    column: name.clone(),
                    change: "type-changed".into(),
                    before: Some(ty.clone()),
                    after: Some(new_ty.clone()),
                }),
                Some(_) => {}
            }
        }
        for (name, ty) in new {
            if !old_map.contains_key(name) {
                out.columns.push(ColumnChange {
                    table: label.clone(),
                    column: name.clone(),
                    change: "added".into(),
                    before: None,
                    after: Some(ty.clone()),
                });
            }
        }
        if out.columns.len() > before {
            columns_changed.insert(table.clone());
        }
    }

    for (object, hashes) in &was {
        match is.get(object) {
            None => out.removed.push(object.clone()),
            Some(now) if now != hashes => {
                let explained =
                    object.desc == "TABLE" && columns_changed.contains(&(object.schema.clone(), object.tag.clone()));
                if !explained {
                    out.changed.push(object.clone());
                }
            }
            Some(_) => {}
        }
    }
    out.added = is.keys().filter(|o| !was.contains_key(*o)).cloned().collect();
    out
}

/// The drift in one line: `2 tables added, 1 column type changed in public.orders`.
pub fn summary(drift: &Drift) -> String {
    if drift.is_empty() {
        return NO_CHANGE.to_owned();
    }
    let mut parts = Vec::new();
    for (list, verb) in [
        (&drift.added, "added"),
        (&drift.removed, "removed"),
        (&drift.changed, "changed"),
    ] {
        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        for o in list {
            *by_kind.entry(o.desc.as_str()).or_default() += 1;
        }
        for (desc, n) in by_kind {
            parts.push(format!("{n} {} {verb}", noun(desc, n)));
        }
    }
    for (change, words) in [
        ("added", "added"),
        ("removed", "removed"),
        ("type-changed", "type changed"),
    ] {
        let mut tables: BTreeMap<&str, usize> = BTreeMap::new();
        for c in drift.columns.iter().filter(|c| c.change == change) {
            *tables.entry(c.table.as_str()).or_default() += 1;
        }
        if tables.is_empty() {
            continue;
        }
        let n: usize = tables.values().sum();
        let names: Vec<_> = tables.keys().copied().collect();
        let column = if n == 1 { "column" } else { "columns" };
        parts.push(format!("{n} {column} {words} in {}", names.join(", ")));
    }
    parts.join(", ")
}

/// pg_dump's kind as a noun: `TABLE` → `table(s)`, `FK CONSTRAINT` → `fk constraint(s)`, `INDEX` → `index(es)`.
fn noun(desc: &str, n: usize) -> String {
    let word = desc.to_lowercase();
    match n {
        1 => word,
        _ if word.ends_with('x') || word.ends_with('s') => format!("{word}es"),
        _ => format!("{word}s"),
    }
}

/// The median of some figures; `None` for none.
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// A PostgreSQL version's major from what a manifest records (`16.4 (Debian ...)`, `pg_dump (PostgreSQL) 17.2`,
/// `9.6.24`): the first number, with its minor before 10.
fn major(version: &str) -> Option<String> {
    let start = version.find(|c: char| c.is_ascii_digit())?;
    let mut parts = version[start..].split(|c: char| !c.is_ascii_digit());
    let first = parts.next()?;
    let n: u32 = first.parse().ok()?;
    if n >= 10 {
        return Some(first.to_owned());
    }
    Some(format!("{first}.{}", parts.next().unwrap_or("0")))
}

/// `12030` → `12,030` (a fraction, from a median, is rounded).
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// `-31%`, `+120%`: the change from `base` to `now`, rounded.
fn percent(base: f64, now: f64) -> String {
    let p = ((now - base) / base * 100.0).round() as i64;
    if p > 0 {
        format!("+{p}%")
    } else {
        format!("{p}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::manifest::{CatalogEntry, CatalogTable, Column, TableCount};
    use crate::caches::records::RdbShard;
    use crate::watch::record::{Acknowledgement, Held};
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    const MANIFEST: &str = r#"{
        "format_version": 1, "lifeboat_version": "0.1.0", "database": "app", "profile": "full",
        "logical_time": "2026-12-05T03:00:00Z", "started_at": "2026-12-05T03:00:00Z",
        "finished_at": "2026-12-05T03:01:00Z", "duration_seconds": 60.0,
        "source": {"engine": "postgres", "server_version": "16.4", "dbname": "app", "database_size_bytes": 1},
        "pg_dump_version": "pg_dump (PostgreSQL) 16.4", "tables": [],
        "plaintext": {"bytes": 1000000, "sha256": "p"},
        "stored": {"bucket": "b", "key": "k", "bytes": 9, "sha256": "s",
                   "parts": 1, "sse": "aws:kms", "kms_key_id": null, "object_lock_until": null},
        "compression": {"algorithm": "zstd", "level": 1}, "encryption": null,
        "verification": {"method": "m", "pg_restore_version": "16"}
    }"#;

    fn at(day: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap() + Duration::days(day)
    }

    fn manifest(tables: &[(&str, i64)]) -> Manifest {
        let mut m: Manifest = serde_json::from_str(MANIFEST).unwrap();
        m.tables = tables
            .iter()
            .map(|(name, rows)| TableCount {
                schema: "public".into(),
                name: (*name).into(),
                rows: *rows,
            })
            .collect();
        m
    }

    /// Compares the last of `series` (oldest first, one a day) with the ones before it.
    fn run(series: &[Manifest], t: &Thresholds) -> Outcome {
        let keys: Vec<String> = (0..series.len()).map(|i| format!("k{i}")).collect();
        let backups: Vec<_> = series
            .iter()
            .enumerate()
            .map(|(i, m)| Backup {
                key: &keys[i],
                at: at(i as i64),
                manifest: m,
            })
            .collect();
        let (current, earlier) = backups.split_last().unwrap();
        let history = baseline(earlier, &[], t.history);
        compare_exports(*current, &history, t)
    }

    fn kinds(o: &Outcome) -> Vec<(&str, &str)> {
        o.findings
            .iter()
            .map(|f| (f.kind.as_str(), f.object.as_str()))
            .collect()
    }

    #[test]
    fn a_mass_delete_names_the_table_and_both_counts() {
        let o = run(
            &[manifest(&[("users", 12_030)]), manifest(&[("users", 8_301)])],
            &Thresholds::default(),
        );
        assert_eq!(kinds(&o), [("rows-dropped", "public.users")]);
        assert_eq!(
            o.findings[0].line,
            "public.users: 12,030 rows in the backup of 2026-12-01 03:00, 8,301 in this one (2026-12-02 03:00), -31%"
        );
        assert_eq!(
            (o.findings[0].before, o.findings[0].after),
            (Some(12_030.0), Some(8_301.0))
        );
        assert_eq!(o.compared_with.as_deref(), Some("k0"));
    }

    #[test]
    fn a_slow_decline_is_caught_against_the_median() {
        // Each day loses 10% (under the 20% limit), but the median of the week before is far above.
        let series: Vec<_> = [10_000, 10_000, 10_000, 10_000, 9_000, 8_100, 7_290]
            .iter()
            .map(|&r| manifest(&[("orders", r)]))
            .collect();
        let o = run(&series, &Thresholds::default());
        assert_eq!(kinds(&o), [("rows-dropped", "public.orders")]);
        assert!(
            o.findings[0].line.contains("the median of the last 6 was 10,000"),
            "{}",
            o.findings[0].line
        );
    }

    #[test]
    fn thresholds_per_table_and_min_rows_are_honoured() {
        let before = manifest(&[("sessions", 50_000), ("users", 5_000), ("tiny", 10)]);
        let after = manifest(&[("sessions", 10), ("users", 4_990), ("tiny", 0)]);
        let mut t = Thresholds::default();
        let o = run(&[before.clone(), after.clone()], &t);
        assert_eq!(kinds(&o), [("rows-dropped", "public.sessions")]);
        t.tables.insert(
            "public.sessions".into(),
            crate::watch::thresholds::TableRule {
                rows_drop_percent: Some(Limit::Ignore),
                min_rows: None,
            },
        );
        t.tables.insert(
            "public.users".into(),
            crate::watch::thresholds::TableRule {
                rows_drop_percent: Some(Limit::Percent(0)),
                min_rows: None,
            },
        );
        let o = run(&[before, after], &t);
        assert_eq!(kinds(&o), [("rows-dropped", "public.users")]);
    }

    #[test]
    fn vanished_and_appeared_tables_schemas_extensions_and_versions() {
        let mut a = manifest(&[("users", 5), ("old", 5)]);
        let mut b = manifest(&[("users", 5), ("new", 1)]);
        a.large_objects = 40;
        b.large_objects = 0;
        b.source.server_version = "17.2".into();
        b.pg_dump_version = "pg_dump (PostgreSQL) 17.2".into();
        a.catalog = Some(Catalog {
            schemas: vec!["billing".into()],
            extensions: vec!["pgcrypto".into()],
            ..Default::default()
        });
        b.catalog = Some(Catalog {
            schemas: vec!["audit".into()],
            extensions: vec!["pgcrypto".into(), "postgis".into()],
            ..Default::default()
        });
        let o = run(&[a, b], &Thresholds::default());
        assert_eq!(
            kinds(&o),
            [
                ("table-vanished", "public.old"),
                ("table-appeared", "public.new"),
                ("large-objects-dropped", "large objects"),
                ("server-major-changed", "server"),
                ("pg-dump-major-changed", "pg_dump"),
                ("schema-vanished", "billing"),
                ("schema-appeared", "audit"),
                ("extension-appeared", "postgis"),
            ]
        );
        assert!(o.findings[4]
            .line
            .contains("major version 16 in the backup of 2026-12-01 03:00, 17"));
    }

    #[test]
    fn the_archive_size_drop_and_jump_follow_their_limits() {
        let mut a = manifest(&[]);
        let mut b = manifest(&[]);
        a.plaintext.bytes = 1_000_000;
        b.plaintext.bytes = 1_150_000;
        let mut t = Thresholds::default();
        assert!(run(&[a.clone(), b.clone()], &t).findings.is_empty());
        t.size_growth_percent = Limit::Percent(10);
        assert_eq!(kinds(&run(&[a.clone(), b.clone()], &t)), [("size-jump", "archive")]);
        b.plaintext.bytes = 600_000;
        assert_eq!(kinds(&run(&[a, b], &t)), [("size-drop", "archive")]);
    }

    #[test]
    fn no_history_no_finding_and_an_old_manifest_is_not_comparable() {
        let o = run(&[manifest(&[("users", 1)])], &Thresholds::default());
        assert_eq!((o.compared_with, o.findings.len()), (None, 0));
        let o = run(&[manifest(&[]), manifest(&[])], &Thresholds::default());
        assert_eq!(o.drift, None);
        assert_eq!(o.drift_summary.as_deref(), Some(NOT_COMPARABLE));
    }

    fn catalog(tables: &[(&str, &[(&str, &str)])], extra: &[(&str, &str, &str)]) -> Catalog {
        let mut c = Catalog::default();
        for (name, cols) in tables {
            c.entries.push(CatalogEntry {
                desc: "TABLE".into(),
                schema: "public".into(),
                tag: (*name).into(),
                sha256: format!("{cols:?}"),
            });
            c.tables.push(CatalogTable {
                schema: "public".into(),
                name: (*name).into(),
                columns: Some(
                    cols.iter()
                        .map(|(n, t)| Column {
                            name: (*n).into(),
                            type_name: (*t).into(),
                        })
                        .collect(),
                ),
            });
        }
        for (desc, tag, sha) in extra {
            c.entries.push(CatalogEntry {
                desc: (*desc).into(),
                schema: "public".into(),
                tag: (*tag).into(),
                sha256: (*sha).into(),
            });
        }
        c
    }

    #[test]
    fn drift_lists_objects_and_columns_and_sums_them_up_in_one_line() {
        let a = catalog(
            &[
                ("orders", &[("id", "integer"), ("total", "integer"), ("note", "text")]),
                ("gone", &[("id", "integer")]),
            ],
            &[("FUNCTION", "f()", "1"), ("INDEX", "orders_idx", "1")],
        );
        let b = catalog(
            &[
                (
                    "orders",
                    &[("id", "integer"), ("total", "numeric(10,2)"), ("at", "date")],
                ),
                ("a", &[]),
                ("b", &[]),
            ],
            &[("FUNCTION", "f()", "2"), ("INDEX", "orders_idx", "1")],
        );
        let d = drift(&a, &b);
        let tags = |l: &[Object]| l.iter().map(|o| o.tag.clone()).collect::<Vec<_>>();
        assert_eq!(tags(&d.added), ["a", "b"]);
        assert_eq!(tags(&d.removed), ["gone"]);
        // The orders table's own change is told by its columns.
        assert_eq!(tags(&d.changed), ["f()"]);
        let changes: Vec<_> = d
            .columns
            .iter()
            .map(|c| (c.column.as_str(), c.change.as_str()))
            .collect();
        assert_eq!(
            changes,
            [("total", "type-changed"), ("note", "removed"), ("at", "added")]
        );
        assert_eq!(
            summary(&d),
            "2 tables added, 1 table removed, 1 function changed, 1 column added in public.orders, \
             1 column removed in public.orders, 1 column type changed in public.orders"
        );
        assert_eq!(summary(&drift(&a, &a)), NO_CHANGE);
    }

    #[test]
    fn an_acknowledged_anomaly_moves_the_baseline_and_an_open_one_does_not() {
        let ms: Vec<_> = (0..5).map(|i| manifest(&[("t", i)])).collect();
        let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
        let earlier: Vec<_> = (0..5)
            .map(|i| Backup {
                key: &keys[i],
                at: at(i as i64),
                manifest: &ms[i],
            })
            .collect();
        let mut anomaly = Anomaly {
            format_version: 1,
            resource_kind: "database".into(),
            resource: "app".into(),
            series: "full".into(),
            manifest_key: "k2".into(),
            seen_at: at(2),
            also_seen_in: vec![],
            findings: vec![],
            held: Held::default(),
            acknowledged: None,
        };
        let keys_of = |h: Vec<Backup<'_, Manifest>>| h.iter().map(|b| b.key.to_owned()).collect::<Vec<_>>();
        assert_eq!(
            keys_of(baseline(&earlier, std::slice::from_ref(&anomaly), 3)),
            ["k4", "k3", "k2"]
        );
        assert_eq!(keys_of(baseline(&earlier, std::slice::from_ref(&anomaly), 9)).len(), 5);
        anomaly.acknowledged = Some(Acknowledgement {
            by: "arn:aws:iam::1:user/ana".into(),
            by_stated: false,
            why: "cleanup".into(),
            at: at(3),
        });
        assert_eq!(keys_of(baseline(&earlier, &[anomaly], 9)), ["k4", "k3", "k2"]);
    }

    fn rdb(keys: &[(u64, u64)]) -> RdbManifest {
        RdbManifest {
            format_version: 1,
            lifeboat_version: "0".into(),
            cache: "sessions".into(),
            engine: "redis".into(),
            engine_version: "7".into(),
            snapshot: "s".into(),
            snapshot_time: at(0),
            copied_at: at(0),
            shards: vec![RdbShard {
                shard: 1,
                key: "k".into(),
                size: 1,
                sha256: "x".into(),
                rdb_version: 11,
                server_version: None,
                keys_per_db: keys.iter().copied().collect(),
                checksummed: true,
            }],
        }
    }

    #[test]
    fn a_cache_database_losing_keys_is_a_finding() {
        let (a, b) = (rdb(&[(0, 10_000), (1, 50)]), rdb(&[(0, 2_000), (1, 60)]));
        let history = [Backup {
            key: "a",
            at: at(0),
            manifest: &a,
        }];
        let o = compare_rdb(
            Backup {
                key: "b",
                at: at(1),
                manifest: &b,
            },
            &history,
            &Thresholds::default(),
        );
        assert_eq!(kinds(&o), [("keys-dropped", "db0")]);
        assert_eq!(
            o.findings[0].line,
            "db0: 10,000 keys in the backup of 2026-12-01 03:00, 2,000 in this one (2026-12-02 03:00), -80%"
        );
    }

    #[test]
    fn numbers_read_with_thousands_separators() {
        assert_eq!(thousands(12_030.0), "12,030");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(major("16.4 (Debian 16.4-1)").as_deref(), Some("16"));
        assert_eq!(major("9.6.24").as_deref(), Some("9.6"));
    }

    proptest! {
        #[test]
        fn growing_tables_and_caches_never_raise_anything(
            start in prop::collection::vec(0i64..1_000_000, 1..6),
            growth in prop::collection::vec(prop::collection::vec(0i64..10_000, 6), 1..10),
        ) {
            let names = ["a", "b", "c", "d", "e", "f"];
            let mut rows = start.clone();
            let mut series = Vec::new();
            let mut caches = Vec::new();
            for step in std::iter::once(vec![0; 6]).chain(growth) {
                for (r, g) in rows.iter_mut().zip(&step) {
                    *r += g;
                }
                let tables: Vec<_> = names.iter().zip(&rows).map(|(n, r)| (*n, *r)).collect();
                let mut m = manifest(&tables);
                // The archive grows with the rows, within the default growth limit.
                m.plaintext.bytes = 1_000_000 + rows.iter().sum::<i64>() as u64;
                m.large_objects = rows[0];
                series.push(m);
                caches.push(rdb(&rows.iter().enumerate().map(|(i, &r)| (i as u64, r as u64)).collect::<Vec<_>>()));
            }
            let o = run(&series, &Thresholds::default());
            prop_assert!(o.findings.is_empty(), "{:?}", o.findings);
            let keys: Vec<String> = (0..caches.len()).map(|i| format!("c{i}")).collect();
            let backups: Vec<_> = caches.iter().enumerate().map(|(i, m)| Backup { key: &keys[i], at: at(i as i64), manifest: m }).collect();
            let (current, earlier) = backups.split_last().unwrap();
            let o = compare_rdb(*current, &baseline(earlier, &[], 7), &Thresholds::default());
            prop_assert!(o.findings.is_empty(), "{:?}", o.findings);
        }

        #[test]
        fn a_drop_beyond_the_limit_is_always_named(before in 1_000i64..10_000_000, keep in 0i64..79) {
            let after = before * keep / 100;
            let o = run(&[manifest(&[("t", before)]), manifest(&[("t", after)])], &Thresholds::default());
            prop_assert_eq!(kinds(&o), [("rows-dropped", "public.t")]);
            prop_assert_eq!(o.findings[0].before, Some(before as f64));
        }
    }
}
