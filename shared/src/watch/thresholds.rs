//! How far a backup's figures may move before the content watch calls it a finding: the `watch` object of a plan
//! (`plans.<name>.watch` in the plan document), with a default for every field, per-database overrides and
//! per-table overrides.
//!
//! ```json
//! "watch": {
//!   "rows_drop_percent": 20, "min_rows": 1000, "size_drop_percent": 30, "size_growth_percent": 100,
//!   "history": 7, "keys_drop_percent": 20,
//!   "tables": {"public.sessions": {"rows_drop_percent": "ignore"}, "public.users": {"rows_drop_percent": 1}},
//!   "databases": {"billing-prod": {"size_growth_percent": 10}}
//! }
//! ```
//!
//! The type lives here, not in `plans`, so that the watch never depends on the plan document: `plans` embeds
//! [`WatchRule`] and validates it through [`WatchRule::check`]; whoever runs the watch resolves one resource's
//! [`Thresholds`] with [`WatchRule::thresholds`] (or takes [`Thresholds::default`] without a plan). A percentage
//! is a whole number, so that the document stays comparable (`Eq`) and a limit reads as written.
//!
//! Owns: the fields, their defaults and bounds, and the one resolution order (table, then database, then plan,
//! then default). Never reads AWS or a document.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const DEFAULT_ROWS_DROP_PERCENT: u32 = 20;
pub const DEFAULT_MIN_ROWS: u64 = 1000;
pub const DEFAULT_SIZE_DROP_PERCENT: u32 = 30;
pub const DEFAULT_SIZE_GROWTH_PERCENT: u32 = 100;
pub const DEFAULT_HISTORY: u32 = 7;
pub const DEFAULT_KEYS_DROP_PERCENT: u32 = 20;
/// The most manifests a rolling median reads (each is one bounded GET per run).
pub const MAX_HISTORY: u32 = 30;
/// The largest growth a limit may name: 100 times the previous size.
pub const MAX_GROWTH_PERCENT: u32 = 10_000;

/// A limit: a whole percentage, or `"ignore"` (never a finding of this kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Percent(u32),
    Ignore,
}

impl Serialize for Limit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Percent(p) => s.serialize_u32(*p),
            Limit::Ignore => s.serialize_str("ignore"),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Limit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole percentage or \"ignore\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Limit, E> {
                u32::try_from(v)
                    .map(Limit::Percent)
                    .map_err(|_| E::custom(format!("{v} is too large a percentage")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Limit, E> {
                match v {
                    "ignore" => Ok(Limit::Ignore),
                    other => Err(E::custom(format!(
                        "`{other}`: a limit is a whole percentage or \"ignore\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The `watch` object of a plan; the same fields (without `enabled` and `databases`) override it per database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchRule {
    /// `false` turns the watch off for the plan's resources (it is on by default, with every default below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// A table's rows may drop by at most this share of the previous backup's (or of the rolling median).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_drop_percent: Option<Limit>,
    /// Tables with fewer rows than this in the baseline are only checked for vanishing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rows: Option<u64>,
    /// The archive (plaintext) may shrink by at most this share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_drop_percent: Option<Limit>,
    /// The archive may grow by at most this share (anomalous growth: a team may set 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_growth_percent: Option<Limit>,
    /// How many earlier backups the rolling median is taken over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<u32>,
    /// A cache database's keys may drop by at most this share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_drop_percent: Option<Limit>,
    /// Per table, by label (`public.users`, `public."my.table"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, TableRule>,
    /// Per database or cache identifier: the same fields, overriding the plan's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub databases: BTreeMap<String, WatchRule>,
}

/// One table's overrides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_drop_percent: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rows: Option<u64>,
}

/// One resource's thresholds, every field resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    pub rows_drop_percent: Limit,
    pub min_rows: u64,
    pub size_drop_percent: Limit,
    pub size_growth_percent: Limit,
    pub history: u32,
    pub keys_drop_percent: Limit,
    /// Per table, by label.
    pub tables: BTreeMap<String, TableRule>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            rows_drop_percent: Limit::Percent(DEFAULT_ROWS_DROP_PERCENT),
            min_rows: DEFAULT_MIN_ROWS,
            size_drop_percent: Limit::Percent(DEFAULT_SIZE_DROP_PERCENT),
            size_growth_percent: Limit::Percent(DEFAULT_SIZE_GROWTH_PERCENT),
            history: DEFAULT_HISTORY,
            keys_drop_percent: Limit::Percent(DEFAULT_KEYS_DROP_PERCENT),
            tables: BTreeMap::new(),
        }
    }
}

impl Thresholds {
    /// A table's rows limit and minimum, its own override first.
    pub fn table(&self, label: &str) -> (Limit, u64) {
        let own = self.tables.get(label).copied().unwrap_or_default();
        (
            own.rows_drop_percent.unwrap_or(self.rows_drop_percent),
            own.min_rows.unwrap_or(self.min_rows),
        )
    }
}

impl WatchRule {
    /// The thresholds of one database or cache (`resource`): its override's fields, then the plan's, then the
    /// defaults; `None` when the watch is turned off for it.
    pub fn thresholds(&self, resource: &str) -> Option<Thresholds> {
        let own = self.databases.get(resource);
        let enabled = own.and_then(|o| o.enabled).or(self.enabled).unwrap_or(true);
        if !enabled {
            return None;
        }
        let mut t = Thresholds::default();
        for rule in std::iter::once(self).chain(own) {
            rule.apply(&mut t);
        }
        Some(t)
    }

    fn apply(&self, t: &mut Thresholds) {
        if let Some(v) = self.rows_drop_percent {
            t.rows_drop_percent = v;
        }
        if let Some(v) = self.min_rows {
            t.min_rows = v;
        }
        if let Some(v) = self.size_drop_percent {
            t.size_drop_percent = v;
        }
        if let Some(v) = self.size_growth_percent {
            t.size_growth_percent = v;
        }
        if let Some(v) = self.history {
            t.history = v;
        }
        if let Some(v) = self.keys_drop_percent {
            t.keys_drop_percent = v;
        }
        for (label, rule) in &self.tables {
            let entry = t.tables.entry(label.clone()).or_default();
            if rule.rows_drop_percent.is_some() {
                entry.rows_drop_percent = rule.rows_drop_percent;
            }
            if rule.min_rows.is_some() {
                entry.min_rows = rule.min_rows;
            }
        }
    }

    /// Checks the bounds of every field; an error is `(path below `at`, reason)`.
    pub fn check(&self, at: &str) -> Result<(), (String, String)> {
        self.check_level(at, true)
    }

    fn check_level(&self, at: &str, top: bool) -> Result<(), (String, String)> {
        let drop = |field: &str, v: Option<Limit>| match v {
            Some(Limit::Percent(p)) if !(1..=100).contains(&p) => Err((
                format!("{at}.{field}"),
                format!("{p}: a drop limit is a percentage from 1 to 100"),
            )),
            _ => Ok(()),
        };
        drop("rows_drop_percent", self.rows_drop_percent)?;
        drop("size_drop_percent", self.size_drop_percent)?;
        drop("keys_drop_percent", self.keys_drop_percent)?;
        if let Some(Limit::Percent(p)) = self.size_growth_percent {
            if !(1..=MAX_GROWTH_PERCENT).contains(&p) {
                return Err((
                    format!("{at}.size_growth_percent"),
                    format!("{p}: a growth limit is a percentage from 1 to {MAX_GROWTH_PERCENT}"),
                ));
            }
        }
        if let Some(h) = self.history {
            if !(1..=MAX_HISTORY).contains(&h) {
                return Err((
                    format!("{at}.history"),
                    format!("{h}: the history is 1 to {MAX_HISTORY} earlier backups"),
                ));
            }
        }
        for (label, rule) in &self.tables {
            if let Some(Limit::Percent(p)) = rule.rows_drop_percent {
                if !(1..=100).contains(&p) {
                    return Err((
                        format!("{at}.tables.{label}.rows_drop_percent"),
                        format!("{p}: a drop limit is a percentage from 1 to 100"),
                    ));
                }
            }
            if !label.contains('.') {
                return Err((
                    format!("{at}.tables.{label}"),
                    "a table is named with its schema: `public.users`".to_owned(),
                ));
            }
        }
        if !top && !self.databases.is_empty() {
            return Err((
                format!("{at}.databases"),
                "a database's overrides do not nest".to_owned(),
            ));
        }
        for (id, rule) in &self.databases {
            rule.check_level(&format!("{at}.databases.{id}"), false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> WatchRule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn no_rule_is_every_default_and_the_watch_is_on() {
        let t = WatchRule::default().thresholds("app").unwrap();
        assert_eq!(t, Thresholds::default());
        assert_eq!(t.table("public.users"), (Limit::Percent(20), 1000));
    }

    #[test]
    fn a_table_overrides_its_database_which_overrides_the_plan() {
        let r = rule(
            r#"{"rows_drop_percent": 25, "size_growth_percent": 10,
                "tables": {"public.sessions": {"rows_drop_percent": "ignore"}, "public.users": {"rows_drop_percent": 1}},
                "databases": {"billing": {"rows_drop_percent": 50, "history": 3,
                                          "tables": {"public.users": {"min_rows": 10}}},
                              "dev": {"enabled": false}}}"#,
        );
        let app = r.thresholds("app").unwrap();
        assert_eq!(
            (app.rows_drop_percent, app.size_growth_percent, app.history),
            (Limit::Percent(25), Limit::Percent(10), 7)
        );
        assert_eq!(app.table("public.sessions").0, Limit::Ignore);
        assert_eq!(app.table("public.users"), (Limit::Percent(1), 1000));
        assert_eq!(app.table("public.orders"), (Limit::Percent(25), 1000));
        let billing = r.thresholds("billing").unwrap();
        assert_eq!(billing.history, 3);
        assert_eq!(billing.table("public.orders").0, Limit::Percent(50));
        assert_eq!(billing.table("public.users"), (Limit::Percent(1), 10));
        assert_eq!(r.thresholds("dev"), None);
    }

    #[test]
    fn bounds_are_checked_and_errors_name_the_field() {
        let err = |json: &str| rule(json).check("plans.p.watch").unwrap_err();
        assert_eq!(err(r#"{"rows_drop_percent": 0}"#).0, "plans.p.watch.rows_drop_percent");
        assert_eq!(err(r#"{"history": 31}"#).0, "plans.p.watch.history");
        assert_eq!(
            err(r#"{"size_growth_percent": 0}"#).0,
            "plans.p.watch.size_growth_percent"
        );
        assert_eq!(
            err(r#"{"databases": {"a": {"tables": {"t": {}}}}}"#).0,
            "plans.p.watch.databases.a.tables.t"
        );
        assert_eq!(
            err(r#"{"databases": {"a": {"databases": {"b": {}}}}}"#).0,
            "plans.p.watch.databases.a.databases"
        );
        assert!(serde_json::from_str::<WatchRule>(r#"{"rows_drop_percent": "off"}"#).is_err());
        assert!(serde_json::from_str::<WatchRule>(r#"{"rows": 1}"#).is_err());
        assert!(
            rule(r#"{"rows_drop_percent": "ignore", "tables": {"public.t": {"rows_drop_percent": 100}}}"#)
                .check("w")
                .is_ok()
        );
    }
}
