//! The pure decisions of a restore from an export: which export, which tables, which archive entries restore
//! those whole, how identities are read from text, and whether the restored row counts are the
//! manifest's.
//!
//! Never: calls AWS, opens a connection, runs a process or reads the clock.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::bucket::layout::{newest, time_in_key, MANIFEST_SUFFIX};
use crate::bucket::manifest::TableCount;
use crate::postgres::dump_format::TocEntry;

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

/// The kinds of archive entry that belong to a table and come back with it: its rows, defaults, constraints,
/// indexes, triggers, policies, comments and the sequences it owns or draws from. `pg_restore -t` restores the
/// table and its rows only.
const COMES_WITH_A_TABLE: &[&str] = &[
    "TABLE DATA",
    "DEFAULT",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "FK CONSTRAINT",
    "INDEX",
    "INDEX ATTACH",
    "TRIGGER",
    "POLICY",
    "ROW SECURITY",
    "RULE",
    "STATISTICS",
    "COMMENT",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
];

/// The archive entries that restore `selected` whole, in the archive's order (the order pg_restore's `-L` list
/// keeps), and what belongs to them but is left out, each with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeTables {
    pub ids: Vec<i64>,
    pub left_out: Vec<String>,
}

impl WholeTables {
    /// The list pg_restore reads with `-L`: one dump id per line (the rest of a line is a comment to it).
    pub fn list(&self) -> String {
        self.ids.iter().map(|id| format!("{id};\n")).collect()
    }
}

/// Which entries of the archive's table of contents restore `selected` as tables, not only rows: each table
/// and every entry of a kind in [`COMES_WITH_A_TABLE`] that depends on one, taken when everything it depends on
/// is restored too (or is a schema, which the restore creates, or is not in the archive). A sequence comes
/// when a chosen table owns it or an entry of a chosen table draws from it.
///
/// Design choice: what depends on a table that is not restored (a foreign key to a table left out, a trigger
/// calling a function) is left out and named in `left_out`, not refused: the caller asked for these tables' rows
/// as they were, and a constraint that cannot hold in the new database is something to tell, not a reason to
/// give nothing back. The restore's result carries the notes.
pub fn whole_tables(entries: &[TocEntry], selected: &[TableCount]) -> Result<WholeTables, TableError> {
    let by_id: BTreeMap<i64, &TocEntry> = entries.iter().map(|e| (e.id, e)).collect();
    let mut included = BTreeSet::new();
    for t in selected {
        let table = entries
            .iter()
            .find(|e| e.desc == "TABLE" && e.schema == t.schema && e.tag == t.name)
            .ok_or_else(|| TableError::Unknown {
                table: t.label(),
                close: Vec::new(),
            })?;
        included.insert(table.id);
    }
    let along = |e: &TocEntry| COMES_WITH_A_TABLE.contains(&e.desc.as_str());
    let attached = |e: &TocEntry, included: &BTreeSet<i64>| {
        e.deps.iter().any(|d| included.contains(d))
            || (e.desc == "SEQUENCE"
                && entries.iter().any(|x| {
                    x.deps.contains(&e.id) && (included.contains(&x.id) || x.deps.iter().any(|d| included.contains(d)))
                }))
    };
    let missing = |e: &TocEntry, included: &BTreeSet<i64>| -> Vec<i64> {
        e.deps
            .iter()
            .copied()
            .filter(|d| !included.contains(d) && by_id.get(d).is_some_and(|x| x.desc != "SCHEMA"))
            .collect()
    };
    loop {
        let next: Vec<i64> = entries
            .iter()
            .filter(|e| !included.contains(&e.id) && along(e) && attached(e, &included))
            .filter(|e| missing(e, &included).is_empty())
            .map(|e| e.id)
            .collect();
        if next.is_empty() {
            break;
        }
        included.extend(next);
    }
    let name = |e: &TocEntry| match e.schema.as_str() {
        "" => format!("{} {}", e.desc, e.tag),
        schema => format!("{} {schema}.{}", e.desc, e.tag),
    };
    // A constraint, trigger, policy or rule of a table that was not chosen (a foreign key into a chosen table)
    // is not the chosen tables' to miss: its tag starts with its own table's name.
    let of_unchosen = |e: &TocEntry| {
        ["CONSTRAINT", "FK CONSTRAINT", "TRIGGER", "POLICY", "RULE", "DEFAULT"].contains(&e.desc.as_str())
            && e.tag
                .split_once(' ')
                .is_some_and(|(table, _)| !selected.iter().any(|t| t.schema == e.schema && t.name == table))
    };
    let left_out = entries
        .iter()
        .filter(|e| !included.contains(&e.id) && along(e) && attached(e, &included) && !of_unchosen(e))
        .map(|e| {
            let needs: Vec<String> = missing(e, &included)
                .iter()
                .filter_map(|d| by_id.get(d).map(|x| name(x)))
                .collect();
            format!(
                "{} left out: it needs {}, which is not restored",
                name(e),
                needs.join(", ")
            )
        })
        .collect();
    Ok(WholeTables {
        ids: entries
            .iter()
            .map(|e| e.id)
            .filter(|id| included.contains(id))
            .collect(),
        left_out,
    })
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

    /// The table of contents pg_dump 15 writes for customers (serial key, unique email), orders (identity key,
    /// a unique index, a foreign key to customers) and audit (serial key, a foreign key to orders).
    fn toc() -> Vec<TocEntry> {
        let e = |id, desc: &str, tag: &str, deps: &[i64]| TocEntry {
            id,
            desc: desc.into(),
            schema: if desc == "DATABASE" {
                String::new()
            } else {
                "public".into()
            },
            tag: tag.into(),
            deps: deps.to_vec(),
        };
        vec![
            e(3382, "DATABASE", "s", &[]),
            e(219, "TABLE", "audit", &[]),
            e(218, "SEQUENCE", "audit_id_seq", &[219]),
            e(3383, "SEQUENCE OWNED BY", "audit_id_seq", &[218]),
            e(215, "TABLE", "customers", &[]),
            e(214, "SEQUENCE", "customers_id_seq", &[215]),
            e(3384, "SEQUENCE OWNED BY", "customers_id_seq", &[214]),
            e(217, "TABLE", "orders", &[]),
            e(216, "SEQUENCE", "orders_id_seq", &[217]),
            e(3214, "DEFAULT", "audit id", &[218, 219, 219]),
            e(3211, "DEFAULT", "customers id", &[214, 215, 215]),
            e(3375, "TABLE DATA", "audit", &[219]),
            e(3371, "TABLE DATA", "customers", &[215]),
            e(3373, "TABLE DATA", "orders", &[217]),
            e(3385, "SEQUENCE SET", "audit_id_seq", &[218]),
            e(3386, "SEQUENCE SET", "customers_id_seq", &[214]),
            e(3387, "SEQUENCE SET", "orders_id_seq", &[216]),
            e(3225, "CONSTRAINT", "audit audit_pkey", &[219]),
            e(3218, "CONSTRAINT", "customers customers_email_key", &[215]),
            e(3220, "CONSTRAINT", "customers customers_pkey", &[215]),
            e(3222, "CONSTRAINT", "orders orders_pkey", &[217]),
            e(3223, "INDEX", "orders_total_idx", &[217, 217]),
            e(3227, "FK CONSTRAINT", "audit audit_order_id_fkey", &[219, 3222, 217]),
            e(
                3226,
                "FK CONSTRAINT",
                "orders orders_customer_id_fkey",
                &[3220, 217, 215],
            ),
        ]
    }

    #[test]
    fn tables_come_back_whole_and_what_needs_a_table_left_out_is_named() {
        let chosen = [t("public", "orders", 1), t("public", "audit", 0)];
        let got = whole_tables(&toc(), &chosen).unwrap();
        assert_eq!(
            got.ids,
            [219, 218, 3383, 217, 216, 3214, 3375, 3373, 3385, 3387, 3225, 3222, 3223, 3227],
            "tables, owned sequences, defaults, rows, sequence values, keys, indexes and the foreign key between them"
        );
        assert_eq!(
            got.left_out,
            [
                "FK CONSTRAINT public.orders orders_customer_id_fkey left out: it needs CONSTRAINT public.customers \
              customers_pkey, TABLE public.customers, which is not restored"
            ]
        );
        assert_eq!(
            got.list(),
            "219;\n218;\n3383;\n217;\n216;\n3214;\n3375;\n3373;\n3385;\n3387;\n3225;\n3222;\n3223;\n3227;\n"
        );
        let all = whole_tables(&toc(), &[t("public", "orders", 1), t("public", "customers", 2)]).unwrap();
        assert!(all.ids.contains(&3226) && all.left_out.is_empty(), "{all:?}");
        assert!(matches!(
            whole_tables(&toc(), &[t("public", "nope", 0)]),
            Err(TableError::Unknown { .. })
        ));
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
