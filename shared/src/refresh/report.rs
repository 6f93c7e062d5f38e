//! The report every refresh that started ends in, refreshed or failed, for the team and for privacy audits: the
//! rule and its masking policy (rule names per column), the export, the database and the swap, each table's rows
//! beside the manifest's, what was masked per table and column and how many values, the leak check, the
//! constraint and index checks, and, on failure, the check that failed.
//!
//! Owns the report's shape ([`report_json`], [`report_markdown`], pure) and its write ([`write_report`]: JSON and
//! Markdown under [`crate::bucket::layout::refresh_report_base`], never overwritten, through the restore
//! reports' own write).
//! Never: holds a masking constant or SQL expression (only the rule's name), a row's value (errors keep SQLSTATE
//! and object names), or a password.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{naming, Check, RefreshError, Refreshed};
use crate::bucket::layout::{refresh_report_base, REPORT_SUFFIX};
use crate::core::error::Error;
use crate::mask::rewrite::MaskedTable;
use crate::mask::rules::RefreshRule;
use crate::postgres::archive::report::{put_new, KEY_RETRIES};

/// The report's format, for readers that outlive it.
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Report<'a> {
    format: u32,
    rule: &'a str,
    from: &'a str,
    export_profile: &'a str,
    into_instance: &'a str,
    into_database: &'a str,
    swap_requested: bool,
    at: DateTime<Utc>,
    /// `refreshed` or `failed`.
    outcome: &'static str,
    failed_check: Option<&'static str>,
    error: Option<String>,
    export_key: Option<&'a str>,
    export_logical_time: Option<DateTime<Utc>>,
    /// The name the refresh created its database under (dropped again on failure).
    new_database: String,
    /// On failure, what became of it: dropped (or never created), kept, or left behind.
    new_database_fate: Option<&'static str>,
    /// Where the data is now (`into_database` when swapped).
    database: Option<&'a str>,
    swapped: bool,
    replaced: Option<&'a str>,
    owner_role: Option<&'a str>,
    policy: Policy,
    tables: Vec<Table>,
    masked: &'a [MaskedTable],
    checks: &'a [Check],
    warnings: &'a [String],
    seconds: Option<f64>,
}

/// The masking as the plan states it, by rule name only (never a constant or an expression).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Policy {
    strict: Vec<String>,
    tables: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Table {
    table: String,
    expected_rows: i64,
    restored_rows: i64,
}

fn build<'a>(
    rule: &'a RefreshRule,
    now: DateTime<Utc>,
    chosen: Option<&'a str>,
    result: &'a Result<Refreshed, RefreshError>,
) -> Report<'a> {
    let ok = result.as_ref().ok();
    let err = result.as_ref().err();
    Report {
        format: FORMAT,
        rule: &rule.name,
        from: &rule.from,
        export_profile: &rule.export,
        into_instance: &rule.into.instance,
        into_database: &rule.into.database,
        swap_requested: rule.swap,
        at: now,
        outcome: if ok.is_some() { "refreshed" } else { "failed" },
        failed_check: err.map(RefreshError::check),
        error: err.map(ToString::to_string),
        export_key: ok.map(|r| r.export_key.as_str()).or(chosen),
        export_logical_time: ok.map(|r| r.export_logical_time),
        new_database: naming::new_database(&rule.into.database, now),
        new_database_fate: err.map(RefreshError::fate),
        database: ok.map(|r| r.database.as_str()),
        swapped: ok.is_some_and(|r| r.swapped),
        replaced: ok.and_then(|r| r.replaced.as_deref()),
        owner_role: ok.map(|r| r.owner_role.as_str()),
        policy: Policy {
            strict: rule.masking.strict.clone(),
            tables: rule
                .masking
                .tables
                .iter()
                .map(|(t, cols)| (t.clone(), cols.iter().map(|(c, r)| (c.clone(), r.name())).collect()))
                .collect(),
        },
        tables: ok
            .map(|r| {
                r.tables
                    .iter()
                    .map(|t| Table {
                        table: crate::bucket::manifest::label(&t.schema, &t.name),
                        expected_rows: t.expected_rows,
                        restored_rows: t.restored_rows,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        masked: ok.map(|r| r.masked.tables.as_slice()).unwrap_or_default(),
        checks: ok.map(|r| r.checks.as_slice()).unwrap_or_default(),
        warnings: ok.map(|r| r.warnings.as_slice()).unwrap_or_default(),
        seconds: ok.map(|r| r.seconds),
    }
}

/// The report as JSON.
pub fn report_json(
    rule: &RefreshRule,
    now: DateTime<Utc>,
    chosen: Option<&str>,
    result: &Result<Refreshed, RefreshError>,
) -> serde_json::Value {
    // Plain strings, numbers and maps with string keys: serialising cannot fail.
    serde_json::to_value(build(rule, now, chosen, result)).unwrap_or_default()
}

/// The report as Markdown, for people.
pub fn report_markdown(
    rule: &RefreshRule,
    now: DateTime<Utc>,
    chosen: Option<&str>,
    result: &Result<Refreshed, RefreshError>,
) -> String {
    let r = build(rule, now, chosen, result);
    let mut out = String::new();
    let verdict = match result {
        Ok(_) => "refreshed",
        Err(_) => "FAILED",
    };
    out.push_str(&format!("# Staging refresh `{}`: {verdict}\n\n", cell(r.rule)));
    out.push_str(&format!("- Time: {}\n", r.at.to_rfc3339()));
    out.push_str(&format!(
        "- From: `{}`, export profile `{}`\n",
        cell(r.from),
        cell(r.export_profile)
    ));
    if let Some(key) = r.export_key {
        let logical = r.export_logical_time.map(|t| t.to_rfc3339()).unwrap_or_default();
        out.push_str(&format!("- Export: `{}` (taken {logical})\n", cell(key)));
    }
    out.push_str(&format!(
        "- Into: `{}` on `{}`\n",
        cell(r.into_database),
        cell(r.into_instance)
    ));
    match result {
        Ok(ok) => {
            out.push_str(&format!("- Database: `{}`", cell(&ok.database)));
            if ok.swapped {
                out.push_str(&format!(" (swapped in; created as `{}`)", cell(&ok.new_database)));
            } else if r.swap_requested {
                out.push_str(" (not swapped)");
            }
            out.push('\n');
            if let Some(old) = &ok.replaced {
                out.push_str(&format!("- Replaced: `{}` (dropped with its role)\n", cell(old)));
            }
            out.push_str(&format!("- Owner role: `{}`\n", cell(&ok.owner_role)));
            out.push_str(&format!("- Took: {:.1} s\n", ok.seconds));
        }
        Err(e) => {
            out.push_str(&format!("- Failed check: `{}`\n", e.check()));
            out.push_str(&format!("- Error: {}\n", cell(&e.to_string())));
            out.push_str(&format!("- New database `{}`: {}\n", cell(&r.new_database), e.fate()));
        }
    }
    out.push_str("\n## Masking policy\n\n");
    if r.policy.tables.is_empty() {
        out.push_str("Nothing is masked: every table is copied as exported.\n");
    } else {
        out.push_str("| table | column | rule |\n|---|---|---|\n");
        for (table, columns) in &r.policy.tables {
            for (column, rule) in columns {
                out.push_str(&format!("| {} | {} | {} |\n", cell(table), cell(column), cell(rule)));
            }
        }
    }
    if !r.policy.strict.is_empty() {
        let strict: Vec<String> = r.policy.strict.iter().map(|t| format!("`{}`", cell(t))).collect();
        out.push_str(&format!(
            "\nStrict (every column must have a rule): {}\n",
            strict.join(", ")
        ));
    }
    if !r.masked.is_empty() {
        out.push_str("\n## Masked\n\n| table | rows | column | rule | values masked | source values in output |\n");
        out.push_str("|---|---:|---|---|---:|---:|\n");
        for t in r.masked {
            for c in &t.columns {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    cell(&t.table),
                    t.rows,
                    cell(&c.column),
                    cell(&c.rule),
                    c.values,
                    c.source_values_in_output
                ));
            }
        }
    }
    if !r.tables.is_empty() {
        out.push_str("\n## Tables\n\n| table | manifest rows | restored rows |\n|---|---:|---:|\n");
        for t in &r.tables {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                cell(&t.table),
                t.expected_rows,
                t.restored_rows
            ));
        }
    }
    if !r.checks.is_empty() {
        out.push_str("\n## Checks\n\n| check | result |\n|---|---|\n");
        for c in r.checks {
            out.push_str(&format!("| {} | passed: {} |\n", cell(&c.name), cell(&c.detail)));
        }
    }
    if !r.warnings.is_empty() {
        out.push_str("\n## Warnings\n\n");
        for w in r.warnings {
            out.push_str(&format!("- {}\n", cell(w)));
        }
    }
    out
}

/// A value in a Markdown table cell or line: pipes and line breaks would break the table.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Writes the report, JSON and Markdown side by side, never over another report (a key taken moves to the next
/// `<n>-<stamp>`); answers the JSON's key. `chosen` is the export the caller chose, so that a refresh that failed
/// still names what it restored from.
pub async fn write_report(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    rule: &RefreshRule,
    now: DateTime<Utc>,
    chosen: Option<&str>,
    result: &Result<Refreshed, RefreshError>,
) -> Result<String, Error> {
    let json = serde_json::to_vec_pretty(&report_json(rule, now, chosen, result)).map_err(|e| Error::Aws {
        operation: "PutObject",
        code: None,
        message: format!("serialising the refresh report: {e}"),
    })?;
    let markdown = report_markdown(rule, now, chosen, result).into_bytes();
    for retry in 0..=KEY_RETRIES {
        let base = refresh_report_base(&rule.name, now, retry);
        let key = format!("{base}{REPORT_SUFFIX}");
        if !put_new(s3, bucket, &key, "application/json", json.clone()).await? {
            continue;
        }
        let md = format!("{base}.md");
        if !put_new(s3, bucket, &md, "text/markdown; charset=utf-8", markdown).await? {
            return Err(Error::Aws {
                operation: "PutObject",
                code: None,
                message: format!("{md} exists already although {key} did not: the report's Markdown was not written"),
            });
        }
        return Ok(key);
    }
    Err(Error::Aws {
        operation: "PutObject",
        code: None,
        message: format!(
            "every report key of refresh {} at {now} is taken ({KEY_RETRIES} tried)",
            rule.name
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mask::rewrite::{Masked, MaskedColumn};
    use crate::postgres::archive::restore::RestoredTable;

    fn rule() -> RefreshRule {
        serde_json::from_value(serde_json::json!({
            "name": "staging", "from": "app-prod", "export": "full",
            "into": {"instance": "staging-db", "database": "app"}, "swap": true,
            "masking": {"strict": ["public.users"], "tables": {"public.users": {
                "id": "keep", "email": "fake:email", "pin": {"constant": "SECRET-CONSTANT"},
                "born": {"sql": "left(born, 4) || 'SECRET-EXPRESSION'"}}}}
        }))
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-12-07T04:05:06Z".parse().unwrap()
    }

    fn refreshed() -> Refreshed {
        Refreshed {
            rule: "staging".into(),
            export_key: "exports/app-prod/full/2026/12/07/app-prod-full-20261207T020000Z.manifest.json".into(),
            export_logical_time: "2026-12-07T02:00:00Z".parse().unwrap(),
            database: "app".into(),
            new_database: "app_20261207040506".into(),
            swapped: true,
            replaced: Some("app_20261206040506".into()),
            owner_role: "app_20261207040506_owner".into(),
            tables: vec![RestoredTable {
                schema: "public".into(),
                name: "users".into(),
                expected_rows: 3,
                restored_rows: 3,
            }],
            masked: Masked {
                tables: vec![MaskedTable {
                    table: "public.users".into(),
                    rows: 3,
                    columns: vec![MaskedColumn {
                        column: "email".into(),
                        rule: "fake:email".into(),
                        values: 3,
                        source_values_in_output: 0,
                    }],
                }],
            },
            checks: vec![Check {
                name: "no-source-values".into(),
                detail: "1 masked columns".into(),
            }],
            warnings: Vec::new(),
            seconds: 1.5,
        }
    }

    #[test]
    fn a_refresh_reports_what_was_masked_how_and_its_checks_never_a_constant_or_expression() {
        let result = Ok(refreshed());
        let json = report_json(&rule(), now(), None, &result);
        assert_eq!(json["outcome"], "refreshed");
        assert_eq!(json["database"], "app");
        assert_eq!(json["swapped"], true);
        assert_eq!(json["replaced"], "app_20261206040506");
        assert_eq!(json["policy"]["tables"]["public.users"]["pin"], "constant");
        assert_eq!(json["policy"]["tables"]["public.users"]["born"], "sql");
        assert_eq!(json["masked"][0]["columns"][0]["source_values_in_output"], 0);
        assert_eq!(json["tables"][0]["table"], "public.users");
        assert_eq!(json["checks"][0]["name"], "no-source-values");
        let markdown = report_markdown(&rule(), now(), None, &result);
        assert!(
            markdown.contains("| public.users | 3 | email | fake:email | 3 | 0 |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("swapped in; created as `app_20261207040506`"),
            "{markdown}"
        );
        for text in [json.to_string(), markdown] {
            assert!(
                !text.contains("SECRET"),
                "a constant or an expression in the report: {text}"
            );
        }
    }

    #[test]
    fn a_failed_refresh_reports_the_check_and_what_became_of_its_database() {
        let result = Err(RefreshError::Proof {
            check: "constraints",
            detail: "left NOT VALID: sessions_user_email_fkey on sessions".into(),
            database: "app_20261207040506".into(),
        });
        let json = report_json(&rule(), now(), None, &result);
        assert_eq!(json["outcome"], "failed");
        assert_eq!(json["failed_check"], "constraints");
        assert_eq!(json["new_database"], "app_20261207040506");
        assert_eq!(json["new_database_fate"], "dropped, or never created");
        assert!(json["error"].as_str().unwrap().contains("sessions_user_email_fkey"));
        let markdown = report_markdown(&rule(), now(), None, &result);
        assert!(
            markdown.contains("FAILED") && markdown.contains("- Failed check: `constraints`"),
            "{markdown}"
        );

        let kept = Err(RefreshError::NotOurs {
            database: "app".into(),
            kept: "app_20261207040506".into(),
        });
        let json = report_json(&rule(), now(), None, &kept);
        assert_eq!(json["failed_check"], "swap");
        assert_eq!(json["new_database_fate"], "kept under its own name");
        assert!(json["error"]
            .as_str()
            .unwrap()
            .contains("not made by a Lifeboat refresh"));
    }

    #[test]
    fn a_pipe_in_a_name_does_not_break_the_markdown_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
