//! The proof a refreshed database must pass before anyone uses it: the row counts the restore compared, the
//! masking (every row of a masked table went through it, and no output value of a masked column is a value of the
//! source), and the schema's integrity (no constraint left NOT VALID, every index valid and ready).
//!
//! The masking's figures are pure ([`masking`]); the integrity checks read the new database's catalogue as the
//! administrator in a READ ONLY transaction with `search_path` set to `pg_catalog` first, so no operator or
//! function the archive planted resolves in place of the built-in one.
//! Never: reads a table's rows, or puts anything but object names and counts into a check's text.

use crate::mask::rewrite::Masked;
use crate::mask::rules::{Checked, ColumnRule};
use crate::postgres::archive::restore::RestoredTable;
use crate::postgres::db;

use super::Check;

/// A check that did not pass: its name and why (object names and counts only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub check: &'static str,
    pub detail: String,
}

/// The check names, as reports show them.
pub const ROW_COUNTS: &str = "row-counts";
pub const MASKING: &str = "masking";
pub const LEAK: &str = "no-source-values";
pub const CONSTRAINTS: &str = "constraints";
pub const INDEXES: &str = "indexes";

/// The restore compared every table's count with the manifest's (it fails otherwise): recorded as a check.
pub fn row_counts(tables: &[RestoredTable]) -> Check {
    let rows: i64 = tables.iter().map(|t| t.restored_rows).sum();
    Check {
        name: ROW_COUNTS.to_owned(),
        detail: format!(
            "{} tables, {rows} rows, each table's count equal to the manifest's",
            tables.len()
        ),
    }
}

/// Every masked table's rows all went through the masking, and no masked column's output holds a source value.
pub fn masking(checked: &Checked, masked: &Masked, tables: &[RestoredTable]) -> Result<Vec<Check>, Failed> {
    // Only a table with a rule other than keep must have gone through the masking: one kept whole (a strict
    // table's, say) may hold its rows in partitions the masking does not see, and needs nothing done to it.
    let masked_tables = checked
        .tables
        .iter()
        .filter(|(_, ruled)| ruled.iter().any(|(_, rule)| *rule != ColumnRule::Keep))
        .map(|(table, _)| table);
    for table in masked_tables {
        let restored = tables
            .iter()
            .find(|t| is_table(table, t))
            .map_or(0, |t| t.restored_rows);
        let through = masked.tables.iter().find(|m| &m.table == table).map_or(0, |m| m.rows);
        if u64::try_from(restored).unwrap_or(0) != through {
            return Err(Failed {
                check: MASKING,
                detail: format!("{table}: {restored} rows restored, {through} went through the masking"),
            });
        }
    }
    let columns: Vec<_> = masked
        .tables
        .iter()
        .flat_map(|t| t.columns.iter().map(move |c| (t, c)))
        .collect();
    let leaked: Vec<String> = columns
        .iter()
        .filter(|(_, c)| c.source_values_in_output > 0)
        .map(|(t, c)| {
            format!(
                "{}.{}: {} output values equal a source value",
                t.table, c.column, c.source_values_in_output
            )
        })
        .collect();
    if !leaked.is_empty() {
        return Err(Failed {
            check: LEAK,
            detail: leaked.join("; "),
        });
    }
    let values: u64 = columns.iter().map(|(_, c)| c.values).sum();
    Ok(vec![
        Check {
            name: MASKING.to_owned(),
            detail: format!(
                "{} tables masked ({} rows), every row through the masking",
                masked.tables.len(),
                masked.tables.iter().map(|t| t.rows).sum::<u64>()
            ),
        },
        Check {
            name: LEAK.to_owned(),
            detail: format!(
                "{} masked columns, {values} values masked, none equal to a value of the source",
                // The masking lists a masked table's kept columns too (as `keep`): they are not masked.
                columns.iter().filter(|(_, c)| c.rule != "keep").count()
            ),
        },
    ])
}

/// Whether a restored table is the masking's `schema.table`, as the plan writes it or as reports label it.
fn is_table(label: &str, t: &RestoredTable) -> bool {
    label == format!("{}.{}", t.schema, t.name) || label == crate::bucket::manifest::label(&t.schema, &t.name)
}

/// The new database's constraints and indexes, read from its catalogue.
pub async fn integrity(inside: &tokio_postgres::Client) -> Result<Result<Vec<Check>, Failed>, String> {
    let sql_error = |what: &str, e: tokio_postgres::Error| format!("reading {what}: {}", db::describe(&e));
    inside
        .batch_execute("BEGIN READ ONLY; SET LOCAL search_path = pg_catalog, pg_temp")
        .await
        .map_err(|e| sql_error("the catalogue", e))?;
    let constraints = inside
        .query(
            "SELECT c.conname || CASE WHEN c.conrelid = 0 THEN '' ELSE ' on ' || c.conrelid::regclass::text END, \
             c.convalidated FROM pg_constraint c \
             JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema' ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| sql_error("the constraints", e))?;
    let indexes = inside
        .query(
            "SELECT i.indexrelid::regclass::text, i.indisvalid AND i.indisready FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema' \
             AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| sql_error("the indexes", e))?;
    inside
        .batch_execute("ROLLBACK")
        .await
        .map_err(|e| sql_error("the catalogue", e))?;
    let listed = |rows: &[tokio_postgres::Row]| -> Vec<(String, bool)> {
        rows.iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)))
            .collect()
    };
    Ok(judge_integrity(&listed(&constraints), &listed(&indexes)))
}

/// Every constraint validated and every index valid and ready, else the first kind that is not, naming them.
pub fn judge_integrity(constraints: &[(String, bool)], indexes: &[(String, bool)]) -> Result<Vec<Check>, Failed> {
    let bad = |items: &[(String, bool)]| -> Vec<String> {
        items.iter().filter(|(_, ok)| !ok).map(|(n, _)| n.clone()).collect()
    };
    let not_valid = bad(constraints);
    if !not_valid.is_empty() {
        return Err(Failed {
            check: CONSTRAINTS,
            detail: format!("left NOT VALID: {}", not_valid.join(", ")),
        });
    }
    let broken = bad(indexes);
    if !broken.is_empty() {
        return Err(Failed {
            check: INDEXES,
            detail: format!("not valid or not ready: {}", broken.join(", ")),
        });
    }
    Ok(vec![
        Check {
            name: CONSTRAINTS.to_owned(),
            detail: format!("{} constraints, every one validated", constraints.len()),
        },
        Check {
            name: INDEXES.to_owned(),
            detail: format!("{} indexes, every one valid and ready", indexes.len()),
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::rewrite::{MaskedColumn, MaskedTable};

    fn restored(name: &str, rows: i64) -> RestoredTable {
        RestoredTable {
            schema: "public".into(),
            name: name.into(),
            expected_rows: rows,
            restored_rows: rows,
        }
    }

    fn checked() -> Checked {
        let mut c = Checked::default();
        c.tables.insert(
            "public.users".into(),
            vec![("id".into(), ColumnRule::Keep), ("email".into(), ColumnRule::Hash)],
        );
        c
    }

    fn masked(rows: u64, leaked: u64) -> Masked {
        Masked {
            tables: vec![MaskedTable {
                table: "public.users".into(),
                rows,
                columns: vec![
                    MaskedColumn {
                        column: "id".into(),
                        rule: "keep".into(),
                        values: 0,
                        source_values_in_output: 0,
                    },
                    MaskedColumn {
                        column: "email".into(),
                        rule: "hash".into(),
                        values: rows,
                        source_values_in_output: leaked,
                    },
                ],
            }],
        }
    }

    #[test]
    fn a_masking_that_saw_every_row_and_leaked_nothing_passes() {
        let checks = masking(
            &checked(),
            &masked(3, 0),
            &[restored("users", 3), restored("messages", 9)],
        )
        .unwrap();
        let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, [MASKING, LEAK]);
        assert!(
            checks[1].detail.contains("1 masked columns, 3 values masked"),
            "{checks:?}"
        );
    }

    #[test]
    fn a_source_value_in_the_output_fails_naming_the_column_never_the_value() {
        let err = masking(&checked(), &masked(3, 1), &[restored("users", 3)]).unwrap_err();
        assert_eq!(err.check, LEAK);
        assert_eq!(err.detail, "public.users.email: 1 output values equal a source value");
    }

    #[test]
    fn rows_of_a_masked_table_that_bypassed_the_masking_fail() {
        let err = masking(&checked(), &Masked::default(), &[restored("users", 3)]).unwrap_err();
        assert_eq!(err.check, MASKING);
        assert!(
            err.detail.contains("public.users: 3 rows restored, 0 went through"),
            "{err:?}"
        );
        let err = masking(&checked(), &masked(2, 0), &[restored("users", 3)]).unwrap_err();
        assert_eq!(err.check, MASKING, "{err:?}");
    }

    #[test]
    fn a_table_kept_whole_need_not_go_through_the_masking() {
        let mut kept = Checked::default();
        kept.tables
            .insert("public.events".into(), vec![("id".into(), ColumnRule::Keep)]);
        assert!(masking(&kept, &Masked::default(), &[restored("events", 5)]).is_ok());
    }

    #[test]
    fn nothing_to_mask_passes_with_nothing_masked() {
        let checks = masking(&Checked::default(), &Masked::default(), &[restored("users", 3)]).unwrap();
        assert!(checks[1].detail.starts_with("0 masked columns"), "{checks:?}");
    }

    #[test]
    fn a_not_valid_constraint_or_a_broken_index_fails_by_name() {
        let ok = vec![("users_pkey on users".to_owned(), true)];
        assert_eq!(judge_integrity(&ok, &ok).unwrap().len(), 2);
        let not_valid = vec![
            ("users_pkey on users".to_owned(), true),
            ("sessions_user_fkey on sessions".to_owned(), false),
        ];
        let err = judge_integrity(&not_valid, &ok).unwrap_err();
        assert_eq!(err.check, CONSTRAINTS);
        assert_eq!(err.detail, "left NOT VALID: sessions_user_fkey on sessions");
        let err = judge_integrity(&ok, &[("users_email_key".to_owned(), false)]).unwrap_err();
        assert_eq!(err.check, INDEXES);
        assert!(err.detail.contains("users_email_key"));
    }
}
