//! The pure decisions of a restore from an export: which export, which tables, which `pg_restore` arguments
//! select exactly those, how identities are read from text, and whether the restored row counts are the
//! manifest's.
//!
//! Never: calls AWS, opens a connection, runs a process or reads the clock.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::bucket::layout::{newest, time_in_key, MANIFEST_SUFFIX};
use crate::bucket::manifest::TableCount;

/// Which complete export to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// The newest complete export.
    Latest,
    /// The newest complete export made at or before this time.
    Before(DateTime<Utc>),
    /// This manifest's export.
    Manifest(String),
}

/// The manifest key of the export `which` asks for, out of every key under the database's prefix: only
/// manifests are candidates (an export without one is incomplete). `None` when nothing qualifies.
pub fn choose<'a>(keys: impl IntoIterator<Item = &'a str>, which: &Which) -> Option<&'a str> {
    match which {
        Which::Latest => newest(keys, MANIFEST_SUFFIX).map(|(k, _)| k),
        Which::Before(at) => newest(
            keys.into_iter().filter(|k| time_in_key(k).is_some_and(|t| t <= *at)),
            MANIFEST_SUFFIX,
        )
        .map(|(k, _)| k),
        Which::Manifest(key) => keys.into_iter().find(|k| k == key),
    }
}

/// A table the caller named that the export cannot give exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("table `{table}` is not in this export{}", hint(close))]
    Unknown { table: String, close: Vec<String> },
    #[error("table `{table}` matches several tables of this export ({}): name one as \"schema\".\"name\"", candidates.join(", "))]
    Ambiguous { table: String, candidates: Vec<String> },
    #[error(
        "pg_restore selects tables by schema and name separately, so restoring {} in one pass would also restore {}: \
         restore them in separate commands", requested.join(", "), extra.join(", ")
    )]
    NotSelectable { requested: Vec<String>, extra: Vec<String> },
}

fn hint(close: &[String]) -> String {
    if close.is_empty() {
        "; `lifeboat exports <db>` lists exports and the manifest lists their tables".to_owned()
    } else {
        format!(" (close matches: {})", close.join(", "))
    }
}

/// A table's display name, `schema.name`.
pub fn qualified(t: &TableCount) -> String {
    format!("{}.{}", t.schema, t.name)
}

/// One double-quoted identifier at the start of `s` (`""` inside is a quote), and the text after it.
fn quoted_ident(s: &str) -> Option<(String, &str)> {
    let mut rest = s.strip_prefix('"')?;
    let mut out = String::new();
    loop {
        let end = rest.find('"')?;
        out.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix('"') {
            Some(more) => {
                out.push('"');
                rest = more;
            }
            None => return Some((out, rest)),
        }
    }
}

/// `"schema"."name"`: an exact, case-sensitive spelling for names with dots.
fn parse_quoted(text: &str) -> Option<(String, String)> {
    let (schema, rest) = quoted_ident(text)?;
    let (name, rest) = quoted_ident(rest.strip_prefix('.')?)?;
    rest.is_empty().then_some((schema, name))
}

/// The manifest tables a name means, best spelling first: quoted `"schema"."name"` exactly; else `schema.name`
/// exactly, then in any case; else a bare `name` exactly, then in any case.
fn candidates<'a>(requested: &str, tables: &'a [TableCount]) -> Vec<&'a TableCount> {
    if let Some((schema, name)) = parse_quoted(requested) {
        return tables.iter().filter(|t| t.schema == schema && t.name == name).collect();
    }
    let lower = requested.to_lowercase();
    let tiers: [&dyn Fn(&TableCount) -> bool; 4] = [
        &|t| qualified(t) == requested,
        &|t| qualified(t).to_lowercase() == lower,
        &|t| t.name == requested,
        &|t| t.name.to_lowercase() == lower,
    ];
    for tier in tiers {
        let found: Vec<&TableCount> = tables.iter().filter(|t| tier(t)).collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// The manifest's tables that `requested` names, in the manifest's order, each once. Every name must mean
/// exactly one table; an unknown one is an error listing the close matches.
pub fn match_tables(requested: &[String], tables: &[TableCount]) -> Result<Vec<TableCount>, TableError> {
    let mut chosen = BTreeSet::new();
    for name in requested {
        match candidates(name, tables).as_slice() {
            [] => {
                return Err(TableError::Unknown {
                    table: name.clone(),
                    close: close_matches(name, tables),
                })
            }
            [one] => {
                chosen.insert(one.label());
            }
            many => {
                return Err(TableError::Ambiguous {
                    table: name.clone(),
                    candidates: many.iter().map(|t| t.label()).collect(),
                })
            }
        }
    }
    Ok(tables.iter().filter(|t| chosen.contains(&t.label())).cloned().collect())
}

/// Up to five manifest tables whose name is within a few edits of `requested`, or contains it, nearest first.
pub fn close_matches(requested: &str, tables: &[TableCount]) -> Vec<String> {
    let wanted = requested.to_lowercase();
    let mut scored: Vec<(usize, String)> = tables
        .iter()
        .filter_map(|t| {
            let full = qualified(t).to_lowercase();
            let name = t.name.to_lowercase();
            let d = edit_distance(&wanted, &full).min(edit_distance(&wanted, &name));
            let near = d <= (wanted.chars().count() / 3).max(2);
            let contains = !wanted.is_empty() && (full.contains(&wanted) || wanted.contains(&name));
            (near || contains).then(|| (d, qualified(t)))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, t)| t).collect()
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The `pg_restore` arguments that restore exactly `selected` out of `all`: `-n schema` and `-t name` for
/// each. pg_restore restores every table whose schema is among the `-n` and whose name is among the `-t`, so a
/// selection whose cross product holds another table of the export cannot be made in one pass.
pub fn table_args(selected: &[TableCount], all: &[TableCount]) -> Result<Vec<String>, TableError> {
    let schemas: BTreeSet<&str> = selected.iter().map(|t| t.schema.as_str()).collect();
    let names: BTreeSet<&str> = selected.iter().map(|t| t.name.as_str()).collect();
    let wanted: BTreeSet<String> = selected.iter().map(TableCount::label).collect();
    let extra: Vec<String> = all
        .iter()
        .filter(|t| schemas.contains(t.schema.as_str()) && names.contains(t.name.as_str()))
        .map(TableCount::label)
        .filter(|q| !wanted.contains(q))
        .collect();
    if !extra.is_empty() {
        return Err(TableError::NotSelectable {
            requested: wanted.into_iter().collect(),
            extra,
        });
    }
    let mut args = Vec::new();
    for s in schemas {
        args.extend(["-n".to_owned(), s.to_owned()]);
    }
    for n in names {
        args.extend(["-t".to_owned(), n.to_owned()]);
    }
    Ok(args)
}

/// A restored table whose row count is not the manifest's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountMismatch {
    pub table: String,
    pub expected: i64,
    /// `None`: the table is missing from the restored database.
    pub actual: Option<i64>,
}

impl std::fmt::Display for CountMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.actual {
            Some(n) => write!(f, "{} has {n} rows, the manifest says {}", self.table, self.expected),
            None => write!(
                f,
                "{} is missing (the manifest says {} rows)",
                self.table, self.expected
            ),
        }
    }
}

/// Every expected table whose restored count (keyed by `schema.name`) differs from the manifest's, exactly.
pub fn compare_exact(expected: &[TableCount], actual: &BTreeMap<String, i64>) -> Vec<CountMismatch> {
    expected
        .iter()
        .filter_map(|t| {
            let got = actual.get(&t.label()).copied();
            (got != Some(t.rows)).then(|| CountMismatch {
                table: t.label(),
                expected: t.rows,
                actual: got,
            })
        })
        .collect()
}

/// The age identities in an identity file's text (`age-keygen`'s output): one `AGE-SECRET-KEY-1...` per line,
/// `#` comments and blank lines ignored. `None` when a line is not an identity or there is none.
pub fn parse_identities(text: &str) -> Option<Vec<age::x25519::Identity>> {
    let ids: Option<Vec<age::x25519::Identity>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.parse().ok())
        .collect();
    ids.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn t(schema: &str, name: &str, rows: i64) -> TableCount {
        TableCount {
            schema: schema.into(),
            name: name.into(),
            rows,
        }
    }

    fn tables() -> Vec<TableCount> {
        vec![
            t("billing", "invoices", 3),
            t("public", "Users", 10),
            t("public", "sessions", 4),
            t("audit", "users", 7),
            t("public", "odd.name with space", 1),
            t("we.ird", "x", 2),
        ]
    }

    fn names(v: &[TableCount]) -> Vec<String> {
        v.iter().map(qualified).collect()
    }

    #[test]
    fn choose_takes_the_newest_manifest_at_or_before_the_time() {
        let keys = [
            "exports/db/full/2026/11/21/db-full-20261121T020000Z.manifest.json",
            "exports/db/full/2026/11/22/db-full-20261122T020000Z.manifest.json",
            "exports/db/full/2026/11/23/db-full-20261123T020000Z.dump.zst.age",
        ];
        assert_eq!(choose(keys, &Which::Latest), Some(keys[1]));
        let noon = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        assert_eq!(choose(keys, &Which::Before(noon)), Some(keys[0]));
        let exact = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
        assert_eq!(choose(keys, &Which::Before(exact)), Some(keys[1]));
        let early = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(choose(keys, &Which::Before(early)), None);
        assert_eq!(choose(keys, &Which::Manifest(keys[0].into())), Some(keys[0]));
        assert_eq!(choose(keys, &Which::Manifest("nope".into())), None);
        assert_eq!(
            choose([keys[2]], &Which::Latest),
            None,
            "an export without a manifest is incomplete"
        );
    }

    #[test]
    fn tables_match_qualified_bare_any_case_and_quoted() {
        let all = tables();
        let got = match_tables(&["BILLING.Invoices".into(), "sessions".into()], &all).unwrap();
        assert_eq!(names(&got), vec!["billing.invoices", "public.sessions"]);
        let got = match_tables(&["public.odd.name with space".into()], &all).unwrap();
        assert_eq!(names(&got), vec!["public.odd.name with space"]);
        let got = match_tables(&["\"we.ird\".\"x\"".into(), "we.ird.x".into()], &all).unwrap();
        assert_eq!(names(&got), vec!["we.ird.x"], "each table once");
        // Exact case wins over a case-insensitive match.
        let got = match_tables(&["users".into()], &all).unwrap();
        assert_eq!(names(&got), vec!["audit.users"]);
        let got = match_tables(&["Users".into()], &all).unwrap();
        assert_eq!(names(&got), vec!["public.Users"]);
    }

    #[test]
    fn unknown_and_ambiguous_tables_are_errors_that_help() {
        let all = tables();
        let err = match_tables(&["invoice".into()], &all).unwrap_err();
        assert_eq!(
            err,
            TableError::Unknown {
                table: "invoice".into(),
                close: vec!["billing.invoices".into()]
            }
        );
        assert!(err.to_string().contains("close matches: billing.invoices"), "{err}");
        let err = match_tables(&["USERS".into()], &all).unwrap_err();
        assert!(matches!(err, TableError::Ambiguous { .. }), "{err:?}");
        let err = match_tables(&["zzzzzzzz".into()], &all).unwrap_err();
        assert!(err.to_string().contains("lifeboat exports"), "{err}");
    }

    #[test]
    fn table_args_select_exactly_or_refuse() {
        let all = tables();
        let sel = match_tables(&["public.Users".into(), "billing.invoices".into()], &all).unwrap();
        assert_eq!(
            table_args(&sel, &all).unwrap(),
            ["-n", "billing", "-n", "public", "-t", "Users", "-t", "invoices"]
        );
        let sel = match_tables(&["public.sessions".into(), "audit.users".into()], &all).unwrap();
        let err = table_args(&sel, &[sel.clone(), vec![t("public", "users", 1)]].concat()).unwrap_err();
        assert!(err.to_string().contains("public.users"), "{err}");
    }

    #[test]
    fn counts_must_match_exactly() {
        let expected = vec![t("public", "a", 3), t("public", "b", 0), t("public", "c", 1)];
        let actual = BTreeMap::from([("public.a".into(), 3), ("public.b".into(), 1)]);
        let bad = compare_exact(&expected, &actual);
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].to_string(), "public.b has 1 rows, the manifest says 0");
        assert_eq!(bad[1].to_string(), "public.c is missing (the manifest says 1 rows)");
        let all = BTreeMap::from([("public.a".into(), 3), ("public.b".into(), 0), ("public.c".into(), 1)]);
        assert!(compare_exact(&expected, &all).is_empty());
    }

    #[test]
    fn identity_files_are_read_like_age_keygen_writes_them() {
        use age::secrecy::ExposeSecret;
        let id = age::x25519::Identity::generate();
        let text = format!(
            "# created: 2026-11-22\n# public key: {}\n{}\n",
            id.to_public(),
            id.to_string().expose_secret()
        );
        let ids = parse_identities(&text).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].to_public().to_string(), id.to_public().to_string());
        assert!(parse_identities("# nothing\n").is_none());
        assert!(parse_identities("not-a-key\n").is_none());
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("users", "users"), 0);
    }
}
