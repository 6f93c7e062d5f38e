//! The plan document's staging refreshes (`plans.<name>.refresh`) and their masking rules, and the check of a
//! masking against an export's catalogue, which refuses a rule naming a missing table or column, and a column of a
//! strict table that has no rule, before anything is written.
//!
//! ```json
//! "refresh": [{
//!   "name": "staging", "from": "app-prod", "export": "full",
//!   "into": {"instance": "staging-db", "database": "app"},
//!   "schedule": "0 4 * * MON-FRI", "swap": true,
//!   "masking": {
//!     "strict": ["public.users"],
//!     "tables": {
//!       "public.users": {"id": "keep", "email": "fake:email", "name": "fake:name", "phone": "fake:phone",
//!                        "password_hash": {"constant": "x"}, "notes": "redact", "ssn": "hash",
//!                        "birthday": {"sql": "date_trunc('year', birthday::date)::text"}}
//!     }
//!   }
//! }]
//! ```
//!
//! Never reads AWS, a clock or a database.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bucket::manifest::Catalog;

/// One staging refresh: which export, into which server and database, when, and masked how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRule {
    /// Unique within the plan; part of report keys (`refresh/<name>/...`) and of the console action.
    pub name: String,
    /// The source database (an instance or cluster identifier that is a member of the plan).
    pub from: String,
    /// The export profile whose newest complete export is used.
    pub export: String,
    pub into: RefreshTarget,
    /// When it runs on its own (the plan's schedule syntax); without one it runs only when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Rename the new database to `into.database` once every check passes (the previous one is dropped only
    /// when an earlier refresh created it); without it the new database keeps its own name.
    #[serde(default)]
    pub swap: bool,
    #[serde(default)]
    pub masking: Masking,
}

/// The staging server (an RDS instance or cluster identifier, never the source's) and the database name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshTarget {
    pub instance: String,
    pub database: String,
}

/// Per table (`schema.table`), per column: its rule. Tables not named are copied as they are, unless strict.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Masking {
    /// Tables every column of which must have a rule: a column without one (one added since the rules were
    /// written, say) stops the refresh.
    #[serde(default)]
    pub strict: Vec<String>,
    #[serde(default)]
    pub tables: BTreeMap<String, BTreeMap<String, ColumnRule>>,
}

/// What happens to one column's values (NULL stays NULL under every rule). Written as a string (`keep`, `null`,
/// `redact`, `hash`, `fake:<kind>`) or an object (`{"constant": "..."}`, `{"sql": "..."}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RuleText", into = "RuleText")]
pub enum ColumnRule {
    Keep,
    Null,
    Constant(String),
    /// The same number of characters, each an `x`.
    Redact,
    Fake(FakeKind),
    /// HMAC-SHA-256 with the stack's masking key, hex: equal inputs give equal outputs in every table and run.
    Hash,
    /// An SQL expression over the row's columns (as text), evaluated without writing anything.
    Sql(String),
}

/// A rule as the document writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum RuleText {
    Word(String),
    Object(RuleObject),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum RuleObject {
    Constant(String),
    Sql(String),
}

impl TryFrom<RuleText> for ColumnRule {
    type Error = String;
    fn try_from(text: RuleText) -> Result<Self, String> {
        Ok(match text {
            RuleText::Object(RuleObject::Constant(c)) => ColumnRule::Constant(c),
            RuleText::Object(RuleObject::Sql(e)) => ColumnRule::Sql(e),
            RuleText::Word(w) => match w.as_str() {
                "keep" => ColumnRule::Keep,
                "null" => ColumnRule::Null,
                "redact" => ColumnRule::Redact,
                "hash" => ColumnRule::Hash,
                _ => match w.strip_prefix("fake:").and_then(FakeKind::parse) {
                    Some(kind) => ColumnRule::Fake(kind),
                    None => {
                        return Err(format!(
                            "unknown masking rule {w:?}: keep, null, redact, hash, fake:<{}>, \
                             {{\"constant\": ...}} or {{\"sql\": ...}}",
                            FakeKind::ALL.map(FakeKind::name).join("|")
                        ))
                    }
                },
            },
        })
    }
}

impl From<ColumnRule> for RuleText {
    fn from(rule: ColumnRule) -> Self {
        match rule {
            ColumnRule::Constant(c) => RuleText::Object(RuleObject::Constant(c)),
            ColumnRule::Sql(e) => RuleText::Object(RuleObject::Sql(e)),
            other => RuleText::Word(other.name()),
        }
    }
}

impl ColumnRule {
    /// The rule's name as reports show it: never the constant or the expression's text.
    pub fn name(&self) -> String {
        match self {
            ColumnRule::Keep => "keep".into(),
            ColumnRule::Null => "null".into(),
            ColumnRule::Constant(_) => "constant".into(),
            ColumnRule::Redact => "redact".into(),
            ColumnRule::Fake(kind) => format!("fake:{}", kind.name()),
            ColumnRule::Hash => "hash".into(),
            ColumnRule::Sql(_) => "sql".into(),
        }
    }
}

/// The kinds of deterministic fake: the same input (and key) always gives the same fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FakeKind {
    Email,
    Name,
    Phone,
    Address,
    Ip,
    Text,
}

impl FakeKind {
    pub const ALL: [FakeKind; 6] = [
        FakeKind::Email,
        FakeKind::Name,
        FakeKind::Phone,
        FakeKind::Address,
        FakeKind::Ip,
        FakeKind::Text,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FakeKind::Email => "email",
            FakeKind::Name => "name",
            FakeKind::Phone => "phone",
            FakeKind::Address => "address",
            FakeKind::Ip => "ip",
            FakeKind::Text => "text",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Why a masking cannot be used with an export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskRuleError {
    #[error("masking names table {table}, which the export does not hold")]
    NoTable { table: String },
    #[error("masking names column {column} of {table}, which the export's table does not have")]
    NoColumn { table: String, column: String },
    #[error(
        "{table} is strict and its column {column} has no masking rule (a column added since the rules were \
         written?): give it one in the plan's refresh masking"
    )]
    Unruled { table: String, column: String },
    #[error("the export's catalogue does not list the columns of {table}, so its masking cannot be checked")]
    NoColumns { table: String },
    #[error(
        "{table}.{column} is of type {type_name}, which rule {rule} cannot fill ({why}): give the column a rule \
         its type can hold (keep, null, a constant or sql)"
    )]
    Type {
        table: String,
        column: String,
        type_name: String,
        rule: String,
        why: &'static str,
    },
}

/// A masking checked against one export: for each masked table, its columns in the archive's order with their
/// rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checked {
    pub tables: BTreeMap<String, Vec<(String, ColumnRule)>>,
}

/// Checks `masking` against the export's catalogue: every named table and column exists, every column of a
/// strict table has a rule, and no rule is one its column's type obviously cannot hold. The answer lists every
/// masked or strict table with all its columns in the catalogue's order (`keep` for those not named).
pub fn check(masking: &Masking, catalog: &Catalog) -> Result<Checked, MaskRuleError> {
    let mut names: Vec<&String> = masking.tables.keys().collect();
    names.extend(masking.strict.iter().filter(|t| !masking.tables.contains_key(*t)));
    let mut checked = Checked::default();
    for name in names {
        let table = catalog
            .tables
            .iter()
            .find(|t| &t.label() == name)
            .ok_or_else(|| MaskRuleError::NoTable { table: name.clone() })?;
        let columns = table
            .columns
            .as_ref()
            .ok_or_else(|| MaskRuleError::NoColumns { table: name.clone() })?;
        let empty = BTreeMap::new();
        let rules = masking.tables.get(name).unwrap_or(&empty);
        if let Some(column) = rules.keys().find(|c| !columns.iter().any(|col| &col.name == *c)) {
            return Err(MaskRuleError::NoColumn {
                table: name.clone(),
                column: column.clone(),
            });
        }
        let strict = masking.strict.contains(name);
        let mut ruled = Vec::with_capacity(columns.len());
        for column in columns {
            let rule = match rules.get(&column.name) {
                Some(rule) => rule.clone(),
                None if strict => {
                    return Err(MaskRuleError::Unruled {
                        table: name.clone(),
                        column: column.name.clone(),
                    })
                }
                None => ColumnRule::Keep,
            };
            if let Err(why) = fits(&rule, &column.type_name) {
                return Err(MaskRuleError::Type {
                    table: name.clone(),
                    column: column.name.clone(),
                    type_name: column.type_name.clone(),
                    rule: rule.name(),
                    why,
                });
            }
            ruled.push((column.name.clone(), rule));
        }
        checked.tables.insert(name.clone(), ruled);
    }
    Ok(checked)
}

/// What a column's type (as pg_dump writes it) says about the values a rule may put there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeClass {
    /// Character data, with its length limit if it has one (`character varying(20)`).
    Text(Option<usize>),
    /// `inet` or `cidr`.
    Inet,
    /// Numbers, booleans, times, uuids, JSON, bytes: no text a rule makes is one of them.
    NotText,
    /// Arrays: a rule's text is not an array literal.
    Array,
    /// A type this check does not know (an enum, a domain, an extension's): the restore is the judge.
    Unknown,
}

fn classify(type_name: &str) -> TypeClass {
    let t = type_name.trim().to_ascii_lowercase();
    if t.ends_with(']') {
        return TypeClass::Array;
    }
    let (base, modifier) = match t.split_once('(') {
        Some((base, rest)) => (base.trim(), rest.split(')').next()),
        None => (t.as_str(), None),
    };
    let limit = modifier.and_then(|m| m.trim().parse().ok());
    match base {
        "text" | "citext" | "name" | "character varying" | "varchar" | "character" | "char" | "bpchar"
        | "public.citext" => TypeClass::Text(limit),
        "inet" | "cidr" => TypeClass::Inet,
        "smallint" | "integer" | "bigint" | "int" | "int2" | "int4" | "int8" | "numeric" | "decimal" | "real"
        | "double precision" | "float4" | "float8" | "money" | "boolean" | "bool" | "date" | "interval" | "uuid"
        | "json" | "jsonb" | "bytea" | "oid" | "macaddr" | "macaddr8" | "bit" | "bit varying" | "point"
        | "tsvector" | "xml" => TypeClass::NotText,
        b if b.starts_with("timestamp") || b.starts_with("time ") || b == "time" => TypeClass::NotText,
        _ => TypeClass::Unknown,
    }
}

/// The longest value each fake makes, in characters (the text fake keeps the source's length, but makes at
/// least 8 characters of an empty or shorter value, which would otherwise come back as itself).
pub(crate) fn fake_max_len(kind: FakeKind) -> usize {
    match kind {
        FakeKind::Email => 2 * crate::mask::words::LONGEST_WORD + 14 + "@example.com".len(),
        FakeKind::Name => 2 * crate::mask::words::LONGEST_WORD + 1,
        FakeKind::Phone => "+1-999-555-0199".len(),
        FakeKind::Address => crate::mask::words::LONGEST_ADDRESS,
        FakeKind::Ip => "10.255.255.255".len(),
        FakeKind::Text => crate::mask::words::TEXT_MIN,
    }
}

/// Whether `rule` can fill a column of `type_name`: `Err` says why not.
fn fits(rule: &ColumnRule, type_name: &str) -> Result<(), &'static str> {
    let class = classify(type_name);
    let needs = match rule {
        ColumnRule::Constant(constant) => {
            return match class {
                TypeClass::Text(Some(limit)) if constant.chars().count() > limit => {
                    Err("the constant is longer than the column's length limit")
                }
                _ => Ok(()),
            }
        }
        ColumnRule::Keep | ColumnRule::Null | ColumnRule::Sql(_) => return Ok(()),
        ColumnRule::Redact => 0,
        ColumnRule::Hash => 64,
        ColumnRule::Fake(kind) => fake_max_len(*kind),
    };
    match (class, rule) {
        (TypeClass::Unknown, _) => Ok(()),
        (TypeClass::Array, _) => Err("its values are arrays, and the rule writes plain text"),
        (TypeClass::NotText, _) => Err("the rule writes text the type does not accept"),
        (TypeClass::Inet, ColumnRule::Fake(FakeKind::Ip)) => Ok(()),
        (TypeClass::Inet, _) => Err("the rule writes text that is not an address"),
        (TypeClass::Text(Some(limit)), _) if limit < needs => {
            Err("the rule's values can be longer than the column's length limit")
        }
        (TypeClass::Text(_), _) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::manifest::{CatalogTable, Column};

    fn catalog() -> Catalog {
        let col = |name: &str, type_name: &str| Column {
            name: name.into(),
            type_name: type_name.into(),
        };
        Catalog {
            tables: vec![
                CatalogTable {
                    schema: "public".into(),
                    name: "users".into(),
                    columns: Some(vec![
                        col("id", "integer"),
                        col("email", "text"),
                        col("name", "character varying(20)"),
                        col("code", "character varying(40)"),
                        col("born", "date"),
                        col("ip", "inet"),
                        col("tags", "text[]"),
                        col("mood", "public.mood"),
                    ]),
                },
                CatalogTable {
                    schema: "public".into(),
                    name: "opaque".into(),
                    columns: None,
                },
            ],
            ..Catalog::default()
        }
    }

    fn masking(strict: &[&str], rules: &[(&str, &str, ColumnRule)]) -> Masking {
        let mut m = Masking {
            strict: strict.iter().map(|s| s.to_string()).collect(),
            ..Masking::default()
        };
        for (table, column, rule) in rules {
            m.tables
                .entry(table.to_string())
                .or_default()
                .insert(column.to_string(), rule.clone());
        }
        m
    }

    #[test]
    fn a_checked_table_lists_every_column_in_catalogue_order_unnamed_ones_kept() {
        let m = masking(&[], &[("public.users", "email", ColumnRule::Fake(FakeKind::Email))]);
        let checked = check(&m, &catalog()).unwrap();
        let users = &checked.tables["public.users"];
        let names: Vec<_> = users.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["id", "email", "name", "code", "born", "ip", "tags", "mood"]);
        assert_eq!(users[1].1, ColumnRule::Fake(FakeKind::Email));
        assert!(users
            .iter()
            .filter(|(c, _)| c != "email")
            .all(|(_, r)| *r == ColumnRule::Keep));
        assert_eq!(checked.tables.len(), 1);
        // Nothing masked, nothing strict: nothing to rewrite.
        assert!(check(&Masking::default(), &catalog()).unwrap().tables.is_empty());
    }

    #[test]
    fn missing_tables_and_columns_are_refused_by_name() {
        let m = masking(&[], &[("public.ghosts", "email", ColumnRule::Null)]);
        assert_eq!(
            check(&m, &catalog()),
            Err(MaskRuleError::NoTable {
                table: "public.ghosts".into()
            })
        );
        let m = masking(&["public.ghosts"], &[]);
        assert_eq!(
            check(&m, &catalog()),
            Err(MaskRuleError::NoTable {
                table: "public.ghosts".into()
            })
        );
        let m = masking(&[], &[("public.users", "ssn", ColumnRule::Null)]);
        assert_eq!(
            check(&m, &catalog()),
            Err(MaskRuleError::NoColumn {
                table: "public.users".into(),
                column: "ssn".into()
            })
        );
        let m = masking(&[], &[("public.opaque", "x", ColumnRule::Null)]);
        assert_eq!(
            check(&m, &catalog()),
            Err(MaskRuleError::NoColumns {
                table: "public.opaque".into()
            })
        );
    }

    #[test]
    fn a_strict_table_with_an_unruled_column_stops_with_a_message_that_says_how_to_fix_it() {
        let mut rules: Vec<(&str, &str, ColumnRule)> = ["id", "email", "name", "code", "born", "ip", "tags"]
            .iter()
            .map(|c| ("public.users", *c, ColumnRule::Keep))
            .collect();
        let err = check(&masking(&["public.users"], &rules), &catalog()).unwrap_err();
        assert_eq!(
            err,
            MaskRuleError::Unruled {
                table: "public.users".into(),
                column: "mood".into()
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("public.users") && message.contains("mood"),
            "{message}"
        );
        assert!(message.contains("give it one"), "{message}");
        rules.push(("public.users", "mood", ColumnRule::Null));
        let checked = check(&masking(&["public.users"], &rules), &catalog()).unwrap();
        assert_eq!(checked.tables["public.users"].len(), 8);
    }

    #[test]
    fn rules_a_columns_type_cannot_hold_are_refused_naming_table_column_type_and_rule() {
        let refused = |column: &str, rule: ColumnRule| match check(
            &masking(&[], &[("public.users", column, rule.clone())]),
            &catalog(),
        ) {
            Err(e @ MaskRuleError::Type { .. }) => e.to_string(),
            other => panic!("{column} {rule:?}: {other:?}"),
        };
        let m = refused("born", ColumnRule::Redact);
        assert!(
            m.contains("public.users.born") && m.contains("date") && m.contains("redact"),
            "{m}"
        );
        refused("id", ColumnRule::Fake(FakeKind::Name));
        refused("id", ColumnRule::Hash);
        refused("born", ColumnRule::Fake(FakeKind::Ip));
        refused("ip", ColumnRule::Redact);
        refused("tags", ColumnRule::Redact);
        let m = refused("code", ColumnRule::Hash);
        assert!(m.contains("character varying(40)") && m.contains("hash"), "{m}");
        refused("name", ColumnRule::Fake(FakeKind::Email));
        let m = refused("name", ColumnRule::Constant("x".repeat(21)));
        assert!(
            m.contains("constant") && !m.contains("xxx"),
            "the constant itself is never quoted: {m}"
        );
        // What fits: fakes of the right kind, redact on text of any limit, anything on a type the check does not
        // know, and the rules that write whatever the plan says.
        let fine = [
            ("ip", ColumnRule::Fake(FakeKind::Ip)),
            ("email", ColumnRule::Fake(FakeKind::Ip)),
            ("email", ColumnRule::Hash),
            ("name", ColumnRule::Redact),
            ("name", ColumnRule::Fake(FakeKind::Text)),
            ("code", ColumnRule::Fake(FakeKind::Name)),
            ("mood", ColumnRule::Redact),
            ("born", ColumnRule::Null),
            ("id", ColumnRule::Constant("0".into())),
            ("name", ColumnRule::Constant("x".repeat(20))),
            ("born", ColumnRule::Sql("date_trunc('year', born)".into())),
        ];
        for (column, rule) in fine {
            assert!(
                check(&masking(&[], &[("public.users", column, rule.clone())]), &catalog()).is_ok(),
                "{column} {rule:?}"
            );
        }
    }
}
