//! The manifest: written last, so its presence means the export is complete and verified.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub lifeboat_version: String,
    pub database: String,
    pub profile: String,
    /// The schedule's time (or the invocation's, for manual exports): it names the objects.
    pub logical_time: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_seconds: f64,
    pub source: Source,
    pub pg_dump_version: String,
    pub tables: Vec<TableCount>,
    /// Large objects in the dump (every export holds them all), counted in the same snapshot. Absent (0) in
    /// manifests written before it was recorded.
    #[serde(default)]
    pub large_objects: i64,
    pub plaintext: Digest,
    pub stored: Stored,
    pub compression: Compression,
    pub encryption: Option<Encryption>,
    pub verification: Verification,
    /// The plan the export followed (`plans.<name>` of the plan document), when a plan tick made it. Absent in
    /// manifests of exports made without a plan, and in every manifest written before plans existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The label of the plan document's version in force when the export was made (the first 12 hex digits of
    /// its SHA-256, `plans::store::PlanVersion::label`), beside [`Manifest::plan`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_version: Option<String>,
    /// What the archive's table of contents holds (objects, schemas, extensions, each table's columns), read as
    /// it streamed by: the content watch's schema drift compares it with the previous export's. Absent in
    /// manifests written before it was recorded (their drift is "not comparable").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<Catalog>,
}

/// The archive's table of contents as the schema drift compares it: every object's kind, schema, name and a
/// SHA-256 of its definition, never the definition itself (a view's or a function's text may quote data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Every entry but data and per-row ones (table data, large objects, sequence values), in TOC order.
    pub entries: Vec<CatalogEntry>,
    /// The schemas the archive creates (`public` may be absent: pg_dump leaves it to the new database).
    pub schemas: Vec<String>,
    /// The extensions it creates.
    pub extensions: Vec<String>,
    /// Every table and its columns, as pg_dump's `CREATE TABLE` says.
    pub tables: Vec<CatalogTable>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// pg_dump's kind: `TABLE`, `INDEX`, `FK CONSTRAINT`, `FUNCTION`, `ACL`, ...
    pub desc: String,
    pub schema: String,
    pub tag: String,
    /// The SHA-256 of its definition (hex).
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogTable {
    pub schema: String,
    pub name: String,
    /// The columns in order; `None` when the definition could not be read (only its hash is compared then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<Column>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The type as pg_dump writes it: `integer`, `character varying(20)`, `public."Mood"[]`.
    #[serde(rename = "type")]
    pub type_name: String,
}

impl CatalogTable {
    /// The table's label, as [`TableCount::label`] writes it.
    pub fn label(&self) -> String {
        label(&self.schema, &self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub engine: String,
    pub server_version: String,
    pub dbname: String,
    pub database_size_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    pub schema: String,
    pub name: String,
    /// Exact, counted in the same snapshot pg_dump dumped.
    pub rows: i64,
}

impl TableCount {
    /// The table's name as reports show it and key it: `schema.name`, a part that holds a dot or a quote in
    /// double quotes (`public."my.table"`, `"a.b".c`), so that no two tables ever read alike.
    pub fn label(&self) -> String {
        label(&self.schema, &self.name)
    }
}

/// `schema.name` as [`TableCount::label`] writes it.
pub fn label(schema: &str, name: &str) -> String {
    format!("{}.{}", label_part(schema), label_part(name))
}

fn label_part(part: &str) -> String {
    if part.contains(['.', '"']) {
        format!("\"{}\"", part.replace('"', "\"\""))
    } else {
        part.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub bucket: String,
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
    pub parts: usize,
    pub sse: String,
    pub kms_key_id: Option<String>,
    pub object_lock_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    pub algorithm: String,
    pub level: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    pub algorithm: String,
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// How the archive was proven parseable: the whole plaintext stream through `pg_restore -f /dev/null`.
    pub method: String,
    pub pg_restore_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(schema: &str, name: &str) -> TableCount {
        TableCount {
            schema: schema.into(),
            name: name.into(),
            rows: 0,
        }
    }

    /// A manifest as an export wrote it before plans existed: no `plan`, no `plan_version`.
    const BEFORE_PLANS: &str = r#"{
        "format_version": 1, "lifeboat_version": "0.1.0", "database": "app-prod", "profile": "full",
        "logical_time": "2026-11-22T02:00:00Z", "started_at": "2026-11-22T02:00:00Z",
        "finished_at": "2026-11-22T02:01:00Z", "duration_seconds": 60.0,
        "source": {"engine": "postgres", "server_version": "16", "dbname": "app", "database_size_bytes": 1},
        "pg_dump_version": "16", "tables": [{"schema": "public", "name": "users", "rows": 250}],
        "plaintext": {"bytes": 10, "sha256": "p"},
        "stored": {"bucket": "b", "key": "exports/app-prod/full/x.dump.zst", "bytes": 9, "sha256": "s",
                   "parts": 1, "sse": "aws:kms", "kms_key_id": null, "object_lock_until": null},
        "compression": {"algorithm": "zstd", "level": 1}, "encryption": null,
        "verification": {"method": "pg_restore -f /dev/null", "pg_restore_version": "16"}
    }"#;

    #[test]
    fn a_manifest_written_before_plans_still_parses_and_says_no_plan() {
        let m: Manifest = serde_json::from_str(BEFORE_PLANS).unwrap();
        assert_eq!((m.plan.as_deref(), m.plan_version.as_deref()), (None, None));
        // Written back without a plan, it stays the shape older readers know: no new fields appear.
        let json = serde_json::to_value(&m).unwrap();
        assert!(
            json.get("plan").is_none() && json.get("plan_version").is_none(),
            "{json}"
        );
    }

    #[test]
    fn a_manifest_records_the_plan_and_version_it_followed() {
        let mut m: Manifest = serde_json::from_str(BEFORE_PLANS).unwrap();
        m.plan = Some("product".into());
        m.plan_version = Some("0123456789ab".into());
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["plan"], "product");
        assert_eq!(json["plan_version"], "0123456789ab");
        assert_eq!(serde_json::from_value::<Manifest>(json).unwrap(), m);
    }

    #[test]
    fn labels_quote_only_the_parts_that_hold_a_dot_or_a_quote() {
        assert_eq!(t("public", "users").label(), "public.users");
        assert_eq!(t("public", "my.table").label(), "public.\"my.table\"");
        assert_eq!(t("my", "table").label(), "my.table");
        assert_eq!(t("a.b", "c").label(), "\"a.b\".c");
        assert_eq!(t("a", "b.c").label(), "a.\"b.c\"");
        assert_eq!(t("public", "we\"ird").label(), "public.\"we\"\"ird\"");
    }

    proptest! {
        #[test]
        fn no_two_tables_share_a_label(
            a in "[a-c.\"]{1,4}", b in "[a-c.\"]{1,4}", c in "[a-c.\"]{1,4}", d in "[a-c.\"]{1,4}",
        ) {
            prop_assert_eq!(t(&a, &b).label() == t(&c, &d).label(), a == c && b == d);
        }
    }
}
